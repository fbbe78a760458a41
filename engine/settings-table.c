/* The sampling settings table: every setting a user chooses, declared
 * once.  Validation (sample.c, sampler.c), presets (presets.c), the CLI's
 * options (cli/cli-sample.c) and the plug-in's arguments (plugin/args.c)
 * are all made from this table.
 *
 * Ranges (one per setting; README's "The diffuse command" lists them):
 *   sampler    ddim | ddpm                      default ddim
 *   steps      1..4000, and at most the model's diffusion_steps T
 *                                               default 50
 *   respacing  guided-diffusion timestep_respacing, checked against T
 *   eta        0..10                            default 1
 *   variance   auto | learned | fixed-small | fixed-large   default auto
 *   guidance   0..100 (w; the "scale" s = 1 + w) default 2 where the model
 *              can be guided (a null class, or a null model), else 0
 *   strength   (0, 1]                           default 0.5 (img2img only)
 *   count      1..64                            default 1
 *   classifier-scale  0..1000 (guided-diffusion's classifier_scale s;
 *              used with a classifier only)      default 1
 *   precision  auto | fp32 | bf16 (DiffusePrecision; not in presets: it
 *              is about the machine, not the picture) default auto

 *   resample-count  1..100 (RePaint's r; 1 = none; inpainting only)
 *                                               default 1
 *   resample-jump   1..4000, and below the steps run (RePaint's j;
 *              inpainting only)                 default 10
 *   tile       none | x | y | both (seamless tiles) default none
 * The defaults of steps, sampler, eta and guidance are the best measured
 * settings, the shipped preset "balanced" (DDIM 50, eta 1, w 2: the
 * highest class accuracy on both shipped models, and eta 1 beat eta 0 at
 * every w and step count measured; presets/README.md).  Guidance needs a
 * null class, so its default is fitted to the model
 * (DIFFUSE_SETTING_GUIDED_DEFAULT, diffuse_settings_fit_model): 2 where the
 * model can be guided, 0 where it cannot (an unconditional model, or a
 * class model without a null class such as OpenAI's ImageNet ones), so the
 * defaults work with every model; a value a user gives is kept.
 * 4000 is the largest T of guided-diffusion's models; 64 images are one
 * batch in memory.  Values are doubles in the engine: nan, inf and text
 * that overflows a double are refused by diffuse_setting_parse, and
 * non-finite values by diffuse_setting_check.
 */
#include "diffuse-private.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

G_STATIC_ASSERT (sizeof (DiffuseSamplerKind) == sizeof (gint));
G_STATIC_ASSERT (sizeof (DiffuseVarianceKind) == sizeof (gint));
G_STATIC_ASSERT (sizeof (DiffuseTileMode) == sizeof (gint));

static const char *const sampler_nicks[] = { "ddim", "ddpm", NULL };
static const char *const sampler_labels[] = { "DDIM (fast)", "DDPM (classic)" };
static const char *const sampler_help[] = {
  "DDIM: good pictures in few steps; its randomness (eta) is free",
  "DDPM: ancestral sampling, always fully random; needs more steps",
};
static const char *const variance_nicks[] = { "auto", "learned", "fixed-small",
                                              "fixed-large", NULL };
static const char *const variance_labels[] = {
  "Automatic",
  "Learned by the model",
  "Small",
  "Large",
};
static const char *const variance_help[] = {
  "The model's learned variance when it has one, else the large one",
  "The model's learned variance (models trained with learn_sigma)",
  "Fixed small: the posterior variance beta tilde",
  "Fixed large: beta",
};

static const char *const precision_nicks[] = { "auto", "fp32", "bf16", NULL };
static const char *const precision_labels[] = { "Automatic", "Exact", "Fast" };
static const char *const precision_help[] = {
  "Fast for large models where the processor has bfloat16 instructions, "
  "else exact",
  "32-bit floats: the same image on every computer",
  "bfloat16 arithmetic: about twice as fast where the processor has it; "
  "images differ slightly from exact, and between computers",
};

static const char *const tile_nicks[] = { "none", "x", "y", "both", NULL };
static const char *const tile_labels[] = { "Off", "Left-right", "Top-bottom",
                                           "Both" };
static const char *const tile_help[] = {
  "Ordinary image, edges not joined",
  "The left and right edges join: repeats side by side without a seam",
  "The top and bottom edges join: repeats vertically without a seam",
  "Every edge joins: a texture that tiles in both directions",
};

G_STATIC_ASSERT (G_N_ELEMENTS (tile_nicks) == DIFFUSE_TILE_COUNT + 1);
G_STATIC_ASSERT (G_N_ELEMENTS (sampler_nicks) == DIFFUSE_SAMPLER_COUNT + 1);
G_STATIC_ASSERT (G_N_ELEMENTS (precision_nicks) == DIFFUSE_PRECISION_COUNT + 1);
G_STATIC_ASSERT (sizeof (DiffusePrecision) == sizeof (gint));
G_STATIC_ASSERT (G_N_ELEMENTS (variance_nicks) == DIFFUSE_VARIANCE_COUNT + 1);
G_STATIC_ASSERT (G_N_ELEMENTS (variance_labels) == DIFFUSE_VARIANCE_COUNT);

#define FIELD(f) offsetof (DiffuseSampleParams, f)
#define ALL                                                                    \
  (DIFFUSE_SETTING_PRESET | DIFFUSE_SETTING_CLI | DIFFUSE_SETTING_PLUGIN)

/* Adding a setting: a field in DiffuseSampleParams and a row here; the
 * CLI option, the preset key and the plug-in argument follow from the
 * flags.  Rows keep their order (a row's index is its bit in masks). */
static const DiffuseSetting settings[] = {
  { .name = "steps",
    .type = DIFFUSE_SETTING_INT,
    .flags = ALL,
    .offset = FIELD (steps),
    .min = 1,
    .max = 4000,
    .default_value = 50,
    .label = "S_teps",
    .metavar = "N",
    .short_name = 's',
    .help = "Reverse steps, spread evenly over the model's T (at most T); "
            "with a classifier, DDIM takes them as ddimN (no t = T-1)" },
  { .name = "sampler",
    .type = DIFFUSE_SETTING_ENUM,
    .flags = ALL | DIFFUSE_SETTING_LOOP,
    .offset = FIELD (sampler),
    .min = 0,
    .max = DIFFUSE_SAMPLER_COUNT - 1,
    .default_value = DIFFUSE_SAMPLER_DDIM,
    .nicks = sampler_nicks,
    .nick_labels = sampler_labels,
    .nick_help = sampler_help,
    .label = "Sa_mpler",
    .metavar = "NAME",
    .help = "DDIM or DDPM" },
  { .name = "eta",
    .type = DIFFUSE_SETTING_DOUBLE,
    .flags = ALL | DIFFUSE_SETTING_LOOP,
    .offset = FIELD (eta),
    .min = 0,
    .max = 10,
    .default_value = 1, /* the best measured (presets/README.md) */
    .label = "Randomn_ess",
    .metavar = "E",
    .help = "DDIM eta: how much fresh noise each step adds; "
            "0 = deterministic, 1 = as noisy as DDPM" },
  { .name = "guidance",
    .type = DIFFUSE_SETTING_DOUBLE,
    .flags = ALL | DIFFUSE_SETTING_GUIDED_DEFAULT,
    .offset = FIELD (guidance),
    .min = 0,
    .max = 100,
    /* the best measured; 0 for a model that cannot be guided */
    .default_value = 2,
    .label = "_Follow the class",
    .metavar = "W",
    .short_name = 'w',
    .help = "How closely the picture follows the class: classifier-free "
            "guidance w, (1+w) eps(x,y) - w eps(x,none); 0 = none; the "
            "'scale' s of other tools is 1 + w" },
  { .name = "variance",
    .type = DIFFUSE_SETTING_ENUM,
    .flags = ALL | DIFFUSE_SETTING_LOOP,
    .offset = FIELD (variance),
    .min = 0,
    .max = DIFFUSE_VARIANCE_COUNT - 1,
    .default_value = DIFFUSE_VARIANCE_AUTO,
    .nicks = variance_nicks,
    .nick_labels = variance_labels,
    .nick_help = variance_help,
    .label = "Step no_ise",
    .metavar = "KIND",
    .help = "DDPM only: the noise each step adds back (the reverse-step "
            "variance)" },
  { .name = "count",
    .type = DIFFUSE_SETTING_INT,
    .flags = DIFFUSE_SETTING_CLI | DIFFUSE_SETTING_PLUGIN,
    .offset = FIELD (count),
    .min = 1,
    .max = 64,
    .default_value = 1,
    .label = "Variatio_ns",
    .metavar = "K",
    .short_name = 'n',
    .help = "Images in one batch (variations, one layer each)" },
  { .name = "strength",
    .type = DIFFUSE_SETTING_DOUBLE,
    .flags = ALL | DIFFUSE_SETTING_IMG2IMG | DIFFUSE_SETTING_MIN_EXCLUSIVE |
             DIFFUSE_SETTING_LOOP,
    .offset = FIELD (strength),
    .min = 0,
    .max = 1,
    .default_value = 0.5,
    .label = "Stre_ngth",
    .metavar = "S",
    .help = "How far to noise the input before denoising: small keeps it, "
            "1 redraws it" },
  { .name = "respacing",
    .type = DIFFUSE_SETTING_STRING,
    .flags = DIFFUSE_SETTING_CLI,
    .offset = FIELD (respacing),
    .label = "_Respacing",
    .metavar = "STR",
    .help = "guided-diffusion timestep_respacing (\"ddim25\", \"10,10,10\"); "
            "overrides steps" },
  { .name = "classifier-scale",
    .type = DIFFUSE_SETTING_DOUBLE,
    .flags =
        DIFFUSE_SETTING_PRESET | DIFFUSE_SETTING_CLI | DIFFUSE_SETTING_PLUGIN,
    .offset = FIELD (classifier_scale),
    .min = 0,
    .max = 1000,
    .default_value = 1,
    .label = "How _hard to steer",
    .metavar = "S",
    .help = "How hard the classifier steers towards the class: classifier "
            "guidance scale s (guided-diffusion's classifier_scale), the mean "
            "moves by s * Sigma * grad log p(y|x_t); needs a classifier" },
  { .name = "precision",
    .type = DIFFUSE_SETTING_ENUM,
    .flags = DIFFUSE_SETTING_CLI | DIFFUSE_SETTING_PLUGIN,
    .offset = FIELD (precision),
    .min = 0,
    .max = DIFFUSE_PRECISION_COUNT - 1,
    .default_value = DIFFUSE_PRECISION_AUTO,
    .nicks = precision_nicks,
    .nick_labels = precision_labels,
    .nick_help = precision_help,
    .label = "_Speed",
    .metavar = "P",
    .help = "Arithmetic: fp32 (exact, the same on every computer), bf16 "
            "(fast where the processor has it) or auto (bf16 there for "
            "models of 1.5 GFLOP or more per image, else fp32)" },

  { .name = "resample-count",
    .type = DIFFUSE_SETTING_INT,
    .flags = ALL | DIFFUSE_SETTING_INPAINT | DIFFUSE_SETTING_LOOP,
    .offset = FIELD (resample_count),
    .min = 1,
    .max = 100,
    .default_value = 1,
    .label = "Harmoni_zing passes",
    .metavar = "R",
    .help = "Inpainting: sample each stretch of jump steps this many times, "
            "going back up between passes, so the new part fits its "
            "surroundings (RePaint's resampling r; 1 = none; each pass costs "
            "as many steps)" },
  { .name = "resample-jump",
    .type = DIFFUSE_SETTING_INT,
    .flags = ALL | DIFFUSE_SETTING_INPAINT | DIFFUSE_SETTING_LOOP,
    .offset = FIELD (resample_jump),
    .min = 1,
    .max = 4000,
    .default_value = 10,
    .label = "Harmonizing _jump",
    .metavar = "J",
    .help = "Inpainting: steps to go back up between harmonizing passes "
            "(RePaint's jump length j; below the steps run)" },
  { .name = "tile",
    .type = DIFFUSE_SETTING_ENUM,
    .flags = ALL,
    .offset = FIELD (tile),
    .min = 0,
    .max = DIFFUSE_TILE_COUNT - 1,
    .default_value = DIFFUSE_TILE_NONE,
    .nicks = tile_nicks,
    .nick_labels = tile_labels,
    .nick_help = tile_help,
    .label = "Seam_less tiles",
    .metavar = "x|y|both",
    .help = "Seamless tiles: the network wraps around the image's edges "
            "(circular padding), so the result repeats without a seam "
            "(none, x = left-right, y = top-bottom, both)" },
};

G_STATIC_ASSERT (G_N_ELEMENTS (settings) <= 8 * sizeof (DiffuseSettingsMask));

const DiffuseSetting *
diffuse_settings (gint *n_settings)
{
  if (n_settings != NULL)
    *n_settings = G_N_ELEMENTS (settings);
  return settings;
}

const DiffuseSetting *
diffuse_setting_find (const char *name, gint *index)
{
  for (gsize i = 0; name != NULL && i < G_N_ELEMENTS (settings); i++)
    if (strcmp (settings[i].name, name) == 0)
      {
        if (index != NULL)
          *index = (gint) i;
        return &settings[i];
      }
  return NULL;
}

/* ---- fields ----------------------------------------------------------- */

static gint *
int_field (const DiffuseSetting *s, DiffuseSampleParams *p)
{
  return (gint *) ((char *) p + s->offset);
}

static double *
double_field (const DiffuseSetting *s, DiffuseSampleParams *p)
{
  return (double *) ((char *) p + s->offset);
}

static const char **
string_field (const DiffuseSetting *s, DiffuseSampleParams *p)
{
  return (const char **) ((char *) p + s->offset);
}

/* the const accessors */
#define INT_OF(s, p) (*int_field ((s), (DiffuseSampleParams *) (p)))
#define DOUBLE_OF(s, p) (*double_field ((s), (DiffuseSampleParams *) (p)))
#define STRING_OF(s, p) (*string_field ((s), (DiffuseSampleParams *) (p)))

static gint
n_nicks (const DiffuseSetting *s)
{
  gint n = 0;

  while (s->nicks[n] != NULL)
    n++;
  return n;
}

/* ---- text --------------------------------------------------------------- */

/* The shortest %.Ng (N = 1..17) that reads back as v, '.' as the decimal
 * point whatever the locale. */
static gchar *
format_double (double v)
{
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];

  if (!isfinite (v))
    return g_strdup (isnan (v) ? "nan" : v > 0 ? "inf" : "-inf");
  if (v == floor (v) && fabs (v) < 1e15)
    return g_strdup_printf ("%.0f", v); /* 4000, not 4e+03 */
  for (int digits = 1; digits <= 17; digits++)
    {
      gchar format[8];

      snprintf (format, sizeof format, "%%.%dg", digits);
      g_ascii_formatd (buf, sizeof buf, format, v);
      if (g_ascii_strtod (buf, NULL) == v)
        break;
    }
  return g_strdup (buf);
}

gchar *
diffuse_text_escape (const char *text)
{
  GString *out = g_string_new (NULL);
  const char *p = text != NULL ? text : "";
  const char *end = p + strlen (p);

  while (p < end)
    {
      gunichar c = g_utf8_get_char_validated (p, end - p);

      if (c == (gunichar) -1 || c == (gunichar) -2)
        {
          g_string_append_printf (out, "\\x%02x", (guchar) *p);
          p++;
          continue;
        }
      if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
        g_string_append_printf (out, "\\x%02x", (guint) c);
      else if (c == '\\')
        g_string_append (out, "\\\\");
      else
        g_string_append_len (out, p, g_utf8_next_char (p) - p);
      p = g_utf8_next_char (p);
    }
  return g_string_free (out, FALSE);
}

gchar *
diffuse_setting_to_string (const DiffuseSetting *s,
                           const DiffuseSampleParams *p)
{
  g_return_val_if_fail (s != NULL && p != NULL, NULL);

  switch (s->type)
    {
    case DIFFUSE_SETTING_INT:
      return g_strdup_printf ("%d", INT_OF (s, p));
    case DIFFUSE_SETTING_DOUBLE:
      return format_double (DOUBLE_OF (s, p));
    case DIFFUSE_SETTING_ENUM:
      {
        gint v = INT_OF (s, p);

        if (v >= 0 && v < n_nicks (s))
          return g_strdup (s->nicks[v]);
        return g_strdup_printf ("%d", v);
      }
    case DIFFUSE_SETTING_STRING:
      return g_strdup (STRING_OF (s, p));
    }
  g_return_val_if_reached (NULL);
}

gchar *
diffuse_setting_describe_range (const DiffuseSetting *s)
{
  g_autofree gchar *lo = NULL, *hi = NULL;

  g_return_val_if_fail (s != NULL, NULL);
  switch (s->type)
    {
    case DIFFUSE_SETTING_INT:
    case DIFFUSE_SETTING_DOUBLE:
      lo = format_double (s->min);
      hi = format_double (s->max);
      if (s->flags & DIFFUSE_SETTING_MIN_EXCLUSIVE)
        return g_strdup_printf ("(%s, %s]", lo, hi);
      return g_strdup_printf ("%s..%s", lo, hi);
    case DIFFUSE_SETTING_ENUM:
      return g_strjoinv (", ", (gchar **) s->nicks);
    case DIFFUSE_SETTING_STRING:
      return g_strdup ("text");
    }
  g_return_val_if_reached (NULL);
}

/* ---- parse and check ----------------------------------------------------- */

static gboolean
fail_text (GError **error, const DiffuseSetting *s, const char *text,
           const char *what)
{
  g_autofree gchar *shown = diffuse_text_escape (text);

  g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID, "%s: '%s' is %s",
               s->name, shown, what);
  return FALSE;
}

static gboolean
fail_range (GError **error, const DiffuseSetting *s, const char *shown)
{
  g_autofree gchar *range = diffuse_setting_describe_range (s);

  /* "(0..10)"; an interval with an open end shows as itself: "(0, 1]" */
  if (range[0] == '(')
    g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                 "%s = %s is out of range %s", s->name, shown, range);
  else
    g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                 "%s = %s is out of range (%s)", s->name, shown, range);
  return FALSE;
}

static gboolean
in_range (const DiffuseSetting *s, double v)
{
  if (!isfinite (v) || v > s->max)
    return FALSE;
  if (s->flags & DIFFUSE_SETTING_MIN_EXCLUSIVE)
    return v > s->min;
  return v >= s->min;
}

gboolean
diffuse_setting_parse (const DiffuseSetting *s, const char *text,
                       DiffuseSampleParams *p, GError **error)
{
  g_autofree gchar *t = NULL;

  g_return_val_if_fail (s != NULL && p != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (text == NULL)
    return fail_text (error, s, "", "missing");
  if (s->type == DIFFUSE_SETTING_STRING)
    {
      *string_field (s, p) = text;
      return TRUE;
    }
  t = g_strstrip (g_strdup (text));
  switch (s->type)
    {
    case DIFFUSE_SETTING_INT:
      {
        gint64 v;

        if (!g_ascii_string_to_signed (t, 10, G_MININT64, G_MAXINT64, &v, NULL))
          return fail_text (error, s, text, "not an integer");
        if (v < G_MININT || v > G_MAXINT)
          {
            g_autofree gchar *shown = diffuse_text_escape (t);

            return fail_range (error, s, shown);
          }
        *int_field (s, p) = (gint) v;
        return TRUE;
      }
    case DIFFUSE_SETTING_DOUBLE:
      {
        gchar *end = NULL;
        double v;

        errno = 0;
        v = g_ascii_strtod (t, &end);
        if (*t == '\0' || end == NULL || *end != '\0')
          return fail_text (error, s, text, "not a number");
        if (!isfinite (v))
          return fail_text (error, s, text, "not a finite number");
        *double_field (s, p) = v;
        return TRUE;
      }
    case DIFFUSE_SETTING_ENUM:
      for (gint i = 0; s->nicks[i] != NULL; i++)
        if (g_ascii_strcasecmp (s->nicks[i], t) == 0)
          {
            *int_field (s, p) = i;
            return TRUE;
          }
      {
        g_autofree gchar *what = NULL,
                         *range = diffuse_setting_describe_range (s);

        what = g_strdup_printf ("not one of %s", range);
        return fail_text (error, s, text, what);
      }
    case DIFFUSE_SETTING_STRING:
      break;
    }
  g_return_val_if_reached (FALSE);
}

gboolean
diffuse_setting_check (const DiffuseSetting *s, const DiffuseSampleParams *p,
                       GError **error)
{
  g_return_val_if_fail (s != NULL && p != NULL, FALSE);

  switch (s->type)
    {
    case DIFFUSE_SETTING_INT:
      if (!in_range (s, INT_OF (s, p)))
        {
          g_autofree gchar *shown = diffuse_setting_to_string (s, p);

          return fail_range (error, s, shown);
        }
      return TRUE;
    case DIFFUSE_SETTING_DOUBLE:
      if (!isfinite (DOUBLE_OF (s, p)))
        {
          g_autofree gchar *shown = diffuse_setting_to_string (s, p);

          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "%s = %s is not a finite number", s->name, shown);
          return FALSE;
        }
      if (!in_range (s, DOUBLE_OF (s, p)))
        {
          g_autofree gchar *shown = diffuse_setting_to_string (s, p);

          return fail_range (error, s, shown);
        }
      return TRUE;
    case DIFFUSE_SETTING_ENUM:
      if (INT_OF (s, p) < 0 || INT_OF (s, p) >= n_nicks (s))
        {
          g_autofree gchar *range = diffuse_setting_describe_range (s);

          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "unknown %s %d (%s)", s->name, INT_OF (s, p), range);
          return FALSE;
        }
      return TRUE;
    case DIFFUSE_SETTING_STRING:
      return TRUE; /* respacing: parsed against the model's T (sample.c) */
    }
  g_return_val_if_reached (FALSE);
}

void
diffuse_setting_copy (const DiffuseSetting *s, DiffuseSampleParams *dst,
                      const DiffuseSampleParams *src)
{
  g_return_if_fail (s != NULL && dst != NULL && src != NULL);

  switch (s->type)
    {
    case DIFFUSE_SETTING_INT:
    case DIFFUSE_SETTING_ENUM:
      *int_field (s, dst) = INT_OF (s, src);
      break;
    case DIFFUSE_SETTING_DOUBLE:
      *double_field (s, dst) = DOUBLE_OF (s, src);
      break;
    case DIFFUSE_SETTING_STRING:
      *string_field (s, dst) = STRING_OF (s, src);
      break;
    }
}

void
diffuse_settings_copy (DiffuseSettingsMask mask, DiffuseSampleParams *dst,
                       const DiffuseSampleParams *src)
{
  for (gsize i = 0; i < G_N_ELEMENTS (settings); i++)
    if (mask & (1u << i))
      diffuse_setting_copy (&settings[i], dst, src);
}

gboolean
diffuse__settings_check_flags (const DiffuseSampleParams *params,
                               DiffuseSettingFlags need,
                               DiffuseSettingFlags skip, GError **error)
{
  for (gsize i = 0; i < G_N_ELEMENTS (settings); i++)
    if ((settings[i].flags & need) == need && !(settings[i].flags & skip) &&
        !diffuse_setting_check (&settings[i], params, error))
      return FALSE;
  return TRUE;
}

gboolean
diffuse_settings_validate (const DiffuseSampleParams *params, GError **error)
{
  g_return_val_if_fail (params != NULL, FALSE);

  return diffuse__settings_check_flags (params, 0, 0, error);
}

gboolean
diffuse_model_can_guide (const DiffuseModel *model,
                         const DiffuseModel *null_model)
{
  const DiffuseModelConfig *cfg;

  g_return_val_if_fail (model != NULL, FALSE);
  cfg = diffuse_model_get_config (model);
  return cfg->model_type == DIFFUSE_MODEL_UNET && cfg->num_classes > 0 &&
         (cfg->null_class >= 0 || null_model != NULL);
}

void
diffuse_settings_fit_model (DiffuseSampleParams *params,
                            DiffuseSettingsMask given,
                            const DiffuseModel *model)
{
  gboolean guided;

  g_return_if_fail (params != NULL && model != NULL);

  guided = diffuse_model_can_guide (model, params->null_model);
  for (gsize i = 0; i < G_N_ELEMENTS (settings); i++)
    {
      const DiffuseSetting *s = &settings[i];

      if ((given & (1u << i)) || !(s->flags & DIFFUSE_SETTING_GUIDED_DEFAULT))
        continue;
      g_assert (s->type == DIFFUSE_SETTING_DOUBLE);
      *double_field (s, params) = guided ? s->default_value : 0.0;
    }
}

/* The table's defaults; every other field zero / NULL. */
void
diffuse__settings_init (DiffuseSampleParams *params)
{
  for (gsize i = 0; i < G_N_ELEMENTS (settings); i++)
    {
      const DiffuseSetting *s = &settings[i];

      switch (s->type)
        {
        case DIFFUSE_SETTING_INT:
        case DIFFUSE_SETTING_ENUM:
          *int_field (s, params) = (gint) s->default_value;
          break;
        case DIFFUSE_SETTING_DOUBLE:
          *double_field (s, params) = s->default_value;
          break;
        case DIFFUSE_SETTING_STRING:
          *string_field (s, params) = NULL;
          break;
        }
    }
}
