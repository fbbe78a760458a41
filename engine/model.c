/* DiffuseModel: a safetensors file, its __metadata__ turned into a checked
 * DiffuseModelConfig, and the UNet's tensors bound by name (unet-weights.c).
 *
 * The metadata uses guided-diffusion's option names with string values
 * (docs/DESIGN.md, "Model file").  Everything the forward pass relies on
 * is validated here, so unet.c can trust the config: channel counts are
 * multiples of the 32 GroupNorm groups, every attention resolution is one
 * the UNet passes through, and the head counts divide the channels of
 * every attention block. */
#include <math.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "diffuse-private.h"

#define GROUPS 32 /* GroupNorm32 in guided-diffusion's nn.py */
#define MAX_CLASSES 100000
#define MAX_MULT 16
#define MAX_LEVEL_CHANNELS 16384

struct _DiffuseModel
{
  gchar *name; /* the path as given, for messages */
  DiffuseSafetensors *st;
  DiffuseModelConfig config;
  gchar **class_names; /* [num_classes], entries NULL when unnamed;
                                 NULL when the file gives no names */
  DiffuseUNetWeights *weights;
  DiffuseClassifierWeights *clf_weights; /* model_type classifier */
  guint64 n_params;
  gboolean scan_cached; /* the finite-weights scan was skipped: the cache
                           had a record of it (model-cache.c) */
};

static gboolean md_error (GError **error, const DiffuseModel *model,
                          const char *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
md_error (GError **error, const DiffuseModel *model, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  diffuse__set_named_errorv (error, DIFFUSE_ERROR_MODEL, model->name, format,
                             args);
  va_end (args);
  return FALSE;
}

/* ---- metadata values ---------------------------------------------------- */

static gboolean
parse_int (const char *s, gint min, gint max, gint *out)
{
  gint64 v;

  if (s == NULL || !g_ascii_string_to_signed (s, 10, min, max, &v, NULL))
    return FALSE;
  *out = (gint) v;
  return TRUE;
}

/* Required integer metadata in min..max. */
static gboolean
get_int (const DiffuseModel *model, const char *key, gint min, gint max,
         gint *out, GError **error)
{
  const char *s = diffuse__safetensors_get_metadata (model->st, key);

  if (s == NULL)
    return md_error (error, model, "metadata lacks \"%s\"", key);
  if (!parse_int (s, min, max, out))
    return md_error (error, model,
                     "metadata %s = \"%s\" is not an integer in %d..%d", key, s,
                     min, max);
  return TRUE;
}

/* Python's str(bool) and the usual spellings. */
static gboolean
get_bool (const DiffuseModel *model, const char *key, gboolean required,
          gboolean *out, GError **error)
{
  const char *s = diffuse__safetensors_get_metadata (model->st, key);

  if (s == NULL)
    {
      if (required)
        return md_error (error, model, "metadata lacks \"%s\"", key);
      *out = FALSE;
      return TRUE;
    }
  if (strcmp (s, "True") == 0 || strcmp (s, "true") == 0 ||
      strcmp (s, "1") == 0)
    *out = TRUE;
  else if (strcmp (s, "False") == 0 || strcmp (s, "false") == 0 ||
           strcmp (s, "0") == 0)
    *out = FALSE;
  else
    return md_error (error, model, "metadata %s = \"%s\" is not True or False",
                     key, s);
  return TRUE;
}

/* "1,2,3" -> up to max_n integers in min..max.  An empty string gives
 * no entries when allow_empty. */
static gboolean
get_int_list (const DiffuseModel *model, const char *key, gint min, gint max,
              gint max_n, gboolean allow_empty, gint *out, gint *n_out,
              GError **error)
{
  const char *s = diffuse__safetensors_get_metadata (model->st, key);
  g_auto (GStrv) parts = NULL;
  gint i, n;

  if (s == NULL)
    return md_error (error, model, "metadata lacks \"%s\"", key);
  parts = g_strsplit (s, ",", -1);
  n = (gint) g_strv_length (parts);
  if (n == 1 && *g_strstrip (parts[0]) == '\0')
    n = 0;
  if (n == 0 && !allow_empty)
    return md_error (error, model, "metadata %s is empty", key);
  if (n > max_n)
    return md_error (error, model,
                     "metadata %s = \"%s\" has %d entries, at most %d "
                     "are supported",
                     key, s, n, max_n);
  for (i = 0; i < n; i++)
    if (!parse_int (g_strstrip (parts[i]), min, max, &out[i]))
      return md_error (error, model,
                       "metadata %s = \"%s\": entry %d (\"%s\") is not "
                       "an integer in %d..%d",
                       key, s, i + 1, parts[i], min, max);
  *n_out = n;
  return TRUE;
}

/* channel_mult: "0.5,1,2" -> decimal numbers in (0, MAX_MULT], written
 * with digits and at most one '.' (what Python's str() gives for such
 * values), and each level's channels int(mult·model_channels) as
 * guided-diffusion computes them: truncated, a positive multiple of the
 * GroupNorm groups.  g_ascii_strtod rounds correctly, as Python's float()
 * does, so the product and its truncation agree with the reference. */
static gboolean
get_channel_mult (const DiffuseModel *model, DiffuseModelConfig *c,
                  GError **error)
{
  const char *s = diffuse__safetensors_get_metadata (model->st, "channel_mult");
  g_auto (GStrv) parts = NULL;
  gint i, n;

  /* the time embedding's width; every published model has such a width */
  if (c->model_channels % GROUPS != 0)
    return md_error (error, model,
                     "model_channels %d is not a multiple of the %d "
                     "GroupNorm groups",
                     c->model_channels, GROUPS);
  if (s == NULL)
    return md_error (error, model, "metadata lacks \"channel_mult\"");
  parts = g_strsplit (s, ",", -1);
  n = (gint) g_strv_length (parts);
  if (n == 0 || (n == 1 && *g_strstrip (parts[0]) == '\0'))
    return md_error (error, model, "metadata channel_mult is empty");
  if (n > DIFFUSE_MAX_LEVELS)
    return md_error (error, model,
                     "metadata channel_mult = \"%s\" has %d entries, at "
                     "most %d are supported",
                     s, n, DIFFUSE_MAX_LEVELS);
  for (i = 0; i < n; i++)
    {
      const char *p = g_strstrip (parts[i]);
      gint digits = 0, dots = 0;
      double m, ch;

      for (const char *q = p; *q != '\0'; q++)
        {
          if (g_ascii_isdigit (*q))
            digits++;
          else if (*q == '.')
            dots++;
          else
            dots = 2;
        }
      m = digits > 0 && dots <= 1 ? g_ascii_strtod (p, NULL) : -1.0;
      if (!(m > 0.0 && m <= MAX_MULT))
        return md_error (error, model,
                         "metadata channel_mult = \"%s\": entry %d "
                         "(\"%s\") is not a number in (0, %d]",
                         s, i + 1, p, MAX_MULT);
      ch = m * c->model_channels;
      if (ch > MAX_LEVEL_CHANNELS)
        return md_error (error, model,
                         "channel_mult %g x model_channels %d is too "
                         "wide (at most %d channels)",
                         m, c->model_channels, MAX_LEVEL_CHANNELS);
      c->channel_mult[i] = m;
      c->level_channels[i] = (gint) ch;
      if (c->level_channels[i] < GROUPS || c->level_channels[i] % GROUPS != 0)
        return md_error (
            error, model,
            "channel_mult %g x model_channels %d = %d "
            "channels (entry %d), not a positive multiple of the %d "
            "GroupNorm groups",
            m, c->model_channels, c->level_channels[i], i + 1, GROUPS);
    }
  c->n_levels = n;
  return TRUE;
}

/* ---- config checks ------------------------------------------------------ */

static gboolean
level_has_attention (const DiffuseModelConfig *c, gint level)
{
  gint i;

  for (i = 0; i < c->n_attention_resolutions; i++)
    if (c->attention_resolutions[i] << level == c->image_size)
      return TRUE;
  return FALSE;
}

/* QKVAttention splits the channels into heads: with num_head_channels
 * the heads are ch / num_head_channels, else num_heads (num_heads_upsample
 * on the way up); either way they must divide ch. */
static gboolean
check_heads (const DiffuseModel *model, const char *where, gint ch,
             gint heads_key_value, const char *heads_key, GError **error)
{
  const DiffuseModelConfig *c = &model->config;

  if (c->num_head_channels > 0)
    {
      if (ch % c->num_head_channels != 0)
        return md_error (error, model,
                         "num_head_channels %d does not divide the %d "
                         "channels of the attention block %s",
                         c->num_head_channels, ch, where);
    }
  else if (ch % heads_key_value != 0)
    return md_error (error, model,
                     "%s %d does not divide the %d channels of the "
                     "attention block %s",
                     heads_key, heads_key_value, ch, where);
  return TRUE;
}

static gboolean
check_attention (const DiffuseModel *model, GError **error)
{
  const DiffuseModelConfig *c = &model->config;
  gint heads_up =
      c->num_heads_upsample > 0 ? c->num_heads_upsample : c->num_heads;
  gint i, j, level;

  for (i = 0; i < c->n_attention_resolutions; i++)
    {
      gint r = c->attention_resolutions[i];
      gboolean reachable = FALSE;

      for (level = 0; level < c->n_levels; level++)
        if (r << level == c->image_size)
          reachable = TRUE;
      if (!reachable)
        {
          g_autoptr (GString) ok = g_string_new (NULL);

          for (level = 0; level < c->n_levels; level++)
            g_string_append_printf (ok, "%s%d", level > 0 ? ", " : "",
                                    c->image_size >> level);
          return md_error (error, model,
                           "attention resolution %d is not one the UNet "
                           "passes through (%s)",
                           r, ok->str);
        }
      for (j = 0; j < i; j++)
        if (c->attention_resolutions[j] == r)
          return md_error (error, model,
                           "attention resolution %d is listed twice", r);
    }

  for (level = 0; level < c->n_levels; level++)
    {
      gint ch = c->level_channels[level];
      g_autofree gchar *where =
          g_strdup_printf ("at resolution %d", c->image_size >> level);

      if (!level_has_attention (c, level))
        continue;
      if (!check_heads (model, where, ch, c->num_heads, "num_heads", error) ||
          !check_heads (model, where, ch, heads_up, "num_heads_upsample",
                        error))
        return FALSE;
    }
  return check_heads (model, "in the middle block",
                      c->level_channels[c->n_levels - 1], c->num_heads,
                      "num_heads", error);
}

static gboolean
parse_class_names (DiffuseModel *model, GError **error)
{
  const DiffuseModelConfig *c = &model->config;
  const char *s = diffuse__safetensors_get_metadata (model->st, "class_names");
  g_autoptr (JsonParser) parser = NULL;
  JsonNode *root;
  JsonArray *arr;
  guint n, i, j;

  if (s == NULL)
    return TRUE;
  parser = json_parser_new ();
  /* an array of strings nests one level */
  if (diffuse__json_check (s, strlen (s), 1) != NULL ||
      !json_parser_load_from_data (parser, s, -1, NULL) ||
      (root = json_parser_get_root (parser)) == NULL ||
      !JSON_NODE_HOLDS_ARRAY (root))
    return md_error (error, model,
                     "metadata class_names is not a JSON array of strings");
  arr = json_node_get_array (root);
  n = json_array_get_length (arr);
  if (n > (guint) c->num_classes)
    return md_error (error, model,
                     "metadata class_names has %u names for %d classes", n,
                     c->num_classes);
  if (c->num_classes == 0)
    return TRUE;
  model->class_names = g_new0 (gchar *, c->num_classes + 1);
  for (i = 0; i < n; i++)
    {
      JsonNode *node = json_array_get_element (arr, i);
      const char *name;

      if (!JSON_NODE_HOLDS_VALUE (node) ||
          json_node_get_value_type (node) != G_TYPE_STRING)
        return md_error (error, model,
                         "metadata class_names: entry %u is not a string", i);
      name = json_node_get_string (node);
      if (*name == '\0')
        return md_error (error, model,
                         "metadata class_names: entry %u is empty", i);
      for (j = 0; j < i; j++)
        if (g_ascii_strcasecmp (model->class_names[j], name) == 0)
          return md_error (error, model,
                           "metadata class_names: \"%s\" appears twice", name);
      model->class_names[i] = g_strdup (name);
    }
  return TRUE;
}

/* A classifier file (model_type "classifier", docs/DESIGN.md "Classifier
 * file"): guided-diffusion's EncoderUNetModel options. */
static gboolean
parse_classifier_config (DiffuseModel *model, GError **error)
{
  DiffuseModelConfig *c = &model->config;
  const char *s;

  c->model_type = DIFFUSE_MODEL_CLASSIFIER;
  if (!get_int (model, "image_size", 8, 1024, &c->image_size, error) ||
      !get_int (model, "in_channels", 1, 4, &c->in_channels, error) ||
      !get_int (model, "model_channels", GROUPS, 4096, &c->model_channels,
                error) ||
      !get_int (model, "num_classes", 1, MAX_CLASSES, &c->num_classes, error) ||
      !get_int (model, "num_res_blocks", 1, 16, &c->num_res_blocks, error) ||
      !get_channel_mult (model, c, error) ||
      !get_int_list (model, "attention_resolutions", 1, 1024,
                     DIFFUSE_MAX_LEVELS, TRUE, c->attention_resolutions,
                     &c->n_attention_resolutions, error) ||
      !get_int (model, "num_heads", -1, 1024, &c->num_heads, error) ||
      !get_int (model, "num_head_channels", -1, 4096, &c->num_head_channels,
                error) ||
      !get_bool (model, "use_scale_shift_norm", TRUE, &c->use_scale_shift_norm,
                 error) ||
      !get_bool (model, "resblock_updown", TRUE, &c->resblock_updown, error) ||
      !get_bool (model, "use_new_attention_order", TRUE,
                 &c->use_new_attention_order, error) ||
      !get_bool (model, "rescale_timesteps", FALSE, &c->rescale_timesteps,
                 error))
    return FALSE;
  c->out_channels = c->num_classes;
  s = diffuse__safetensors_get_metadata (model->st, "out_channels");
  if (s != NULL && (!parse_int (s, 1, MAX_CLASSES, &c->out_channels) ||
                    c->out_channels != c->num_classes))
    return md_error (error, model,
                     "metadata out_channels = \"%s\" differs from "
                     "num_classes %d (a classifier's outputs are its classes)",
                     s, c->num_classes);
  s = diffuse__safetensors_get_metadata (model->st, "pool");
  if (s == NULL)
    return md_error (error, model, "metadata lacks \"pool\"");
  if (strcmp (s, "attention") == 0)
    c->pool = DIFFUSE_POOL_ATTENTION;
  else if (strcmp (s, "adaptive") == 0)
    c->pool = DIFFUSE_POOL_ADAPTIVE;
  else
    return md_error (
        error, model,
        "metadata pool = \"%s\" is neither \"attention\" "
        "nor \"adaptive\" (guided-diffusion's spatial pools are not "
        "supported)",
        s);
  if (c->image_size % (1 << (c->n_levels - 1)) != 0)
    return md_error (error, model,
                     "image_size %d cannot be halved %d times "
                     "(channel_mult has %d levels)",
                     c->image_size, c->n_levels - 1, c->n_levels);
  if (c->num_head_channels == 0 || c->num_head_channels < -1)
    return md_error (error, model,
                     "num_head_channels %d is neither -1 nor positive",
                     c->num_head_channels);
  if (c->num_head_channels > 0)
    c->num_heads = -1;
  else if (c->num_heads < 1)
    return md_error (error, model,
                     "num_heads %d must be positive when "
                     "num_head_channels is -1",
                     c->num_heads);
  c->num_heads_upsample = -1;
  if (c->pool == DIFFUSE_POOL_ATTENTION &&
      (c->num_head_channels <= 0 ||
       c->level_channels[c->n_levels - 1] % c->num_head_channels != 0))
    return md_error (error, model,
                     "the attention pool needs num_head_channels "
                     "dividing the %d channels of the last level",
                     c->level_channels[c->n_levels - 1]);
  if (!check_attention (model, error))
    return FALSE;
  c->null_class = -1;
  s = diffuse__safetensors_get_metadata (model->st, "diffusion_steps");
  if (s != NULL && !get_int (model, "diffusion_steps", 1, 100000,
                             &c->diffusion_steps, error))
    return FALSE;
  s = diffuse__safetensors_get_metadata (model->st, "noise_schedule");
  if (s != NULL && !diffuse_schedule_kind_from_string (s, &c->noise_schedule))
    return md_error (error, model,
                     "metadata noise_schedule = \"%s\" is neither "
                     "\"linear\" nor \"cosine\"",
                     s);
  return parse_class_names (model, error);
}

static gboolean
parse_config (DiffuseModel *model, GError **error)
{
  DiffuseModelConfig *c = &model->config;
  const char *s;

  memset (c, 0, sizeof *c);
  s = diffuse__safetensors_get_metadata (model->st, "model_type");
  if (s != NULL && strcmp (s, "classifier") == 0)
    return parse_classifier_config (model, error);
  if (s != NULL && strcmp (s, "unet") != 0)
    return md_error (error, model,
                     "metadata model_type = \"%s\" is neither "
                     "\"unet\" nor \"classifier\"",
                     s);
  c->model_type = DIFFUSE_MODEL_UNET;
  c->pool = DIFFUSE_POOL_NONE;
  if (!get_int (model, "image_size", 8, 1024, &c->image_size, error) ||
      !get_int (model, "in_channels", 1, 4, &c->in_channels, error) ||
      !get_int (model, "model_channels", GROUPS, 4096, &c->model_channels,
                error) ||
      !get_int (model, "out_channels", 1, 8, &c->out_channels, error) ||
      !get_int (model, "num_res_blocks", 1, 16, &c->num_res_blocks, error) ||
      !get_channel_mult (model, c, error) ||
      !get_int_list (model, "attention_resolutions", 1, 1024,
                     DIFFUSE_MAX_LEVELS, TRUE, c->attention_resolutions,
                     &c->n_attention_resolutions, error) ||
      !get_int (model, "num_heads", -1, 1024, &c->num_heads, error) ||
      !get_int (model, "num_head_channels", -1, 4096, &c->num_head_channels,
                error) ||
      !get_int (model, "num_heads_upsample", -1, 1024, &c->num_heads_upsample,
                error) ||
      !get_bool (model, "use_scale_shift_norm", TRUE, &c->use_scale_shift_norm,
                 error) ||
      !get_bool (model, "resblock_updown", TRUE, &c->resblock_updown, error) ||
      !get_bool (model, "use_new_attention_order", TRUE,
                 &c->use_new_attention_order, error) ||
      !get_bool (model, "learn_sigma", TRUE, &c->learn_sigma, error) ||
      !get_int (model, "num_classes", 0, MAX_CLASSES, &c->num_classes, error) ||
      !get_int (model, "diffusion_steps", 1, 100000, &c->diffusion_steps,
                error) ||
      !get_bool (model, "rescale_timesteps", FALSE, &c->rescale_timesteps,
                 error))
    return FALSE;

  if (c->out_channels != c->in_channels * (c->learn_sigma ? 2 : 1))
    return md_error (error, model,
                     "out_channels %d does not match in_channels %d with "
                     "learn_sigma %s (expected %d)",
                     c->out_channels, c->in_channels,
                     c->learn_sigma ? "True" : "False",
                     c->in_channels * (c->learn_sigma ? 2 : 1));
  if (c->image_size % (1 << (c->n_levels - 1)) != 0)
    return md_error (error, model,
                     "image_size %d cannot be halved %d times "
                     "(channel_mult has %d levels)",
                     c->image_size, c->n_levels - 1, c->n_levels);

  /* guided-diffusion: num_head_channels != -1 overrides the head counts */
  if (c->num_head_channels == 0 || c->num_head_channels < -1)
    return md_error (error, model,
                     "num_head_channels %d is neither -1 nor positive",
                     c->num_head_channels);
  if (c->num_head_channels > 0)
    {
      c->num_heads = -1;
      c->num_heads_upsample = -1;
    }
  else
    {
      if (c->num_heads < 1)
        return md_error (error, model,
                         "num_heads %d must be positive when "
                         "num_head_channels is -1",
                         c->num_heads);
      if (c->num_heads_upsample == 0)
        return md_error (error, model,
                         "num_heads_upsample 0 is neither -1 nor positive");
    }
  if (!check_attention (model, error))
    return FALSE;

  c->null_class = -1;
  s = diffuse__safetensors_get_metadata (model->st, "null_class");
  if (s != NULL)
    {
      if (c->num_classes == 0)
        return md_error (error, model,
                         "null_class is set but the model is "
                         "unconditional (num_classes 0)");
      if (!parse_int (s, 0, c->num_classes - 1, &c->null_class))
        return md_error (error, model,
                         "metadata null_class = \"%s\" is not a class index "
                         "in 0..%d",
                         s, c->num_classes - 1);
    }

  s = diffuse__safetensors_get_metadata (model->st, "noise_schedule");
  if (s == NULL)
    return md_error (error, model, "metadata lacks \"noise_schedule\"");
  if (!diffuse_schedule_kind_from_string (s, &c->noise_schedule))
    return md_error (error, model,
                     "metadata noise_schedule = \"%s\" is neither "
                     "\"linear\" nor \"cosine\"",
                     s);

  return parse_class_names (model, error);
}

/* ---- loading ------------------------------------------------------------ */

const float *
diffuse__model_tensor (const DiffuseModel *model, const char *name, gint ndim,
                       const gint64 *shape, GError **error)
{
  const DiffuseTensorInfo *t;

  g_return_val_if_fail (model != NULL && name != NULL, NULL);
  g_return_val_if_fail (ndim >= 0 && ndim <= 4 && (ndim == 0 || shape != NULL),
                        NULL);

  t = diffuse__safetensors_get_shaped (model->st, model->name, name, ndim,
                                       shape, error);
  return t ? t->data : NULL;
}

void
diffuse_model_free (DiffuseModel *model)
{
  if (model == NULL)
    return;
  diffuse__unet_weights_free (model->weights);
  diffuse__classifier_weights_free (model->clf_weights);
  diffuse__safetensors_free (model->st);
  g_strfreev (model->class_names);
  g_free (model->name);
  g_free (model);
}

/* Whether none of the n floats is a NaN or an infinity (all exponent
 * bits set), with integer operations gcc vectorises: at memory speed,
 * where isfinite () per element took a third of a second on ImageNet-64's
 * 296 M weights. */
static gboolean
all_finite (const float *data, gint64 n)
{
  guint32 bad = 0;

  for (gint64 i = 0; i < n; i++)
    {
      guint32 bits;

      memcpy (&bits, data + i, sizeof bits);
      bad |= (guint32) ((bits & 0x7f800000u) == 0x7f800000u);
    }
  return bad == 0;
}

/* Binds the UNet's tensors (unet-weights.c), which uses all of them. */
static gboolean
bind_weights (DiffuseModel *model, GError **error)
{
  guint n = diffuse__safetensors_get_n_tensors (model->st);
  guint8 key[32];
  gboolean keyed = diffuse__model_cache_key (model->st, key);

  if (model->config.model_type == DIFFUSE_MODEL_CLASSIFIER)
    model->clf_weights = diffuse__classifier_weights_new (
        model->st, &model->config, model->name, error);
  else
    model->weights = diffuse__unet_weights_new (model->st, &model->config,
                                                model->name, error);
  if (model->weights == NULL && model->clf_weights == NULL)
    return FALSE;
  model->scan_cached = keyed && diffuse__model_cache_has (key);
  for (guint i = 0; i < n; i++)
    {
      const DiffuseTensorInfo *t = diffuse__safetensors_get_nth (model->st, i);

      /* a NaN or Inf weight would turn every image into NaN: refused at
       * load, naming the tensor (one vectorised pass over the weights,
       * skipped when model-cache.c has a record of this very file passing
       * it) */
      model->n_params += (guint64) t->n_elements;
      if (model->scan_cached)
        continue;
      if (!all_finite (t->data, t->n_elements))
        for (gint64 j = 0; j < t->n_elements; j++)
          if (!isfinite (t->data[j]))
            {
              g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL,
                           "%s: tensor '%s' holds a non-finite value (%g) at "
                           "index %" G_GINT64_FORMAT,
                           model->name, t->name, t->data[j], j);
              return FALSE;
            }
      /* the scan's pages leave the process again (they stay in the page
       * cache): a bf16 run never reads most of them, an fp32 run maps
       * them back as it goes */
      diffuse__safetensors_release (model->st, t->data,
                                    (gsize) t->n_elements * sizeof (float));
    }
  if (keyed && !model->scan_cached)
    diffuse__model_cache_add (key);
  return TRUE;
}

gboolean
diffuse__model_scan_was_cached (const DiffuseModel *model)
{
  g_return_val_if_fail (model != NULL, FALSE);
  return model->scan_cached;
}

static DiffuseModel *
model_new (const char *name, DiffuseSafetensors *st, GError **error)
{
  DiffuseModel *model;

  if (st == NULL)
    return NULL;
  model = g_new0 (DiffuseModel, 1);
  model->name = g_strdup (name);
  model->st = st;
  if (!parse_config (model, error) || !bind_weights (model, error))
    {
      diffuse_model_free (model);
      return NULL;
    }
  return model;
}

DiffuseModel *
diffuse_model_new_from_file (const char *path, GError **error)
{
  g_autofree gchar *display = NULL;

  g_return_val_if_fail (path != NULL, NULL);
  display = g_filename_display_name (path);
  return model_new (display, diffuse__safetensors_open (path, error), error);
}

gboolean
diffuse_model_file_read_config (const char *path, DiffuseModelConfig *config,
                                GError **error)
{
  g_autofree gchar *display = NULL;
  DiffuseModel model = { 0 };
  gboolean ok;

  g_return_val_if_fail (path != NULL && config != NULL, FALSE);
  display = g_filename_display_name (path);
  model.name = display;
  model.st = diffuse__safetensors_open_header (path, error);
  if (model.st == NULL)
    return FALSE;
  ok = parse_config (&model, error);
  if (ok)
    *config = model.config;
  g_strfreev (model.class_names);
  diffuse__safetensors_free (model.st);
  return ok;
}

DiffuseModel *
diffuse__model_new_from_bytes (const guint8 *bytes, gsize len, const char *name,
                               GError **error)
{
  return model_new (name != NULL ? name : "<memory>",
                    diffuse__safetensors_open_bytes (bytes, len, error), error);
}

/* ---- accessors ---------------------------------------------------------- */

const DiffuseModelConfig *
diffuse_model_get_config (const DiffuseModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return &model->config;
}

const DiffuseUNetWeights *
diffuse__model_get_weights (const DiffuseModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return model->weights;
}

const DiffuseClassifierWeights *
diffuse__model_get_classifier_weights (const DiffuseModel *model)
{
  g_return_val_if_fail (model != NULL, NULL);
  return model->clf_weights;
}

guint64
diffuse_model_get_n_params (const DiffuseModel *model)
{
  g_return_val_if_fail (model != NULL, 0);
  return model->n_params;
}

const char *
diffuse_model_get_class_name (const DiffuseModel *model, gint index)
{
  g_return_val_if_fail (model != NULL, NULL);
  if (model->class_names == NULL || index < 0 ||
      index >= model->config.num_classes)
    return NULL;
  return model->class_names[index];
}

/* "a, b, c" of the first few names, for error messages. */
static gchar *
some_class_names (const DiffuseModel *model)
{
  GString *out = g_string_new (NULL);
  gint i, shown = 0;

  for (i = 0; i < model->config.num_classes && shown < 5; i++)
    if (model->class_names != NULL && model->class_names[i] != NULL)
      g_string_append_printf (out, "%s\"%s\"", shown++ > 0 ? ", " : "",
                              model->class_names[i]);
  if (shown > 0 && i < model->config.num_classes)
    g_string_append (out, ", ...");
  return g_string_free (out, FALSE);
}

gboolean
diffuse_model_find_class (const DiffuseModel *model, const char *text,
                          gint *out_index, GError **error)
{
  const DiffuseModelConfig *c;
  g_autofree gchar *stripped = NULL;
  g_autofree gchar *names = NULL;
  gint64 v;
  gint i;

  g_return_val_if_fail (model != NULL && text != NULL, FALSE);
  c = &model->config;
  stripped = g_strstrip (g_strdup (text));

  if (c->num_classes == 0)
    {
      g_set_error (
          error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
          "%s: the model is unconditional and has no classes (got \"%s\")",
          model->name, stripped);
      return FALSE;
    }
  if (g_ascii_string_to_signed (stripped, 10, G_MININT64, G_MAXINT64, &v, NULL))
    {
      if (v < 0 || v >= c->num_classes)
        {
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "%s: class %s is out of range 0..%d", model->name,
                       stripped, c->num_classes - 1);
          return FALSE;
        }
      *out_index = (gint) v;
      return TRUE;
    }
  for (i = 0; model->class_names != NULL && i < c->num_classes; i++)
    if (model->class_names[i] != NULL &&
        g_ascii_strcasecmp (model->class_names[i], stripped) == 0)
      {
        *out_index = i;
        return TRUE;
      }
  if (g_ascii_strcasecmp (stripped, "none") == 0 ||
      g_ascii_strcasecmp (stripped, "null") == 0)
    {
      if (c->null_class >= 0)
        {
          *out_index = c->null_class;
          return TRUE;
        }
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: the model has no null class, so \"%s\" cannot be used; "
                   "give a class index 0..%d",
                   model->name, stripped, c->num_classes - 1);
      return FALSE;
    }
  names = some_class_names (model);
  if (*names != '\0')
    g_set_error (
        error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
        "%s: unknown class \"%s\"; give an index 0..%d or a name such as %s",
        model->name, stripped, c->num_classes - 1, names);
  else
    g_set_error (
        error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
        "%s: unknown class \"%s\"; the model has no class names, give an "
        "index 0..%d",
        model->name, stripped, c->num_classes - 1);
  return FALSE;
}

gboolean
diffuse_model_check_size (const DiffuseModel *model, gint height, gint width,
                          GError **error)
{
  gint step;

  g_return_val_if_fail (model != NULL, FALSE);
  step = 1 << (model->config.n_levels - 1);
  if (height > DIFFUSE_MAX_SIDE || width > DIFFUSE_MAX_SIDE)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: size %dx%d is over the limit of %d pixels a side",
                   model->name, width, height, DIFFUSE_MAX_SIDE);
      return FALSE;
    }
  if (height <= 0 || width <= 0 || height % step != 0 || width % step != 0)
    {
      g_set_error (
          error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
          "%s: size %dx%d cannot be run; width and height must be positive "
          "multiples of %d (the UNet halves them %d times)",
          model->name, width, height, step, model->config.n_levels - 1);
      return FALSE;
    }
  return TRUE;
}
