/* Test helper: builds safetensors files in memory (see the header). */
#include <unistd.h>
#include <string.h>

#include <glib/gstdio.h>

#include "diffuse-private.h"
#include "testutil-safetensors.h"

typedef struct
{
  gchar *name;
  gchar *dtype;
  gint ndim;
  gint64 shape[4];
  GBytes *data;
} Entry;

struct _TestSt
{
  GPtrArray *entries; /* Entry *, file order */
  GPtrArray *md_keys; /* gchar *, insertion order */
  GHashTable *md;     /* key -> value */
};

static void
entry_free (gpointer p)
{
  Entry *e = p;

  g_free (e->name);
  g_free (e->dtype);
  g_bytes_unref (e->data);
  g_free (e);
}

TestSt *
test_st_new (void)
{
  TestSt *b = g_new0 (TestSt, 1);

  b->entries = g_ptr_array_new_with_free_func (entry_free);
  b->md_keys = g_ptr_array_new_with_free_func (g_free);
  b->md = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return b;
}

void
test_st_free (TestSt *b)
{
  if (b == NULL)
    return;
  g_ptr_array_unref (b->entries);
  g_ptr_array_unref (b->md_keys);
  g_hash_table_unref (b->md);
  g_free (b);
}

static gint64
count_elements (gint ndim, const gint64 *shape)
{
  gint64 n = 1;
  gint i;

  for (i = 0; i < ndim; i++)
    n *= shape[i];
  return n;
}

/* Deterministic values in [-0.05, 0.05]: a multiplicative hash of a
 * running index, so no two neighbouring tensors look alike. */
static GBytes *
pattern_f32 (gint64 n, guint32 seed)
{
  float *v = g_new (float, n > 0 ? n : 1);
  gint64 i;

  for (i = 0; i < n; i++)
    {
      guint32 h = (guint32) (i + 1) * 2654435761u ^ seed * 40503u;

      h ^= h >> 15;
      v[i] = ((gint) (h % 2001u) - 1000) * 5e-5f;
    }
  return g_bytes_new_take (v, (gsize) n * sizeof (float));
}

void
test_st_add_raw (TestSt *b, const char *name, const char *dtype, gint ndim,
                 const gint64 *shape, const void *raw, gsize n_bytes)
{
  Entry *e = g_new0 (Entry, 1);

  g_assert (ndim >= 0 && ndim <= 4);
  e->name = g_strdup (name);
  e->dtype = g_strdup (dtype);
  e->ndim = ndim;
  if (ndim > 0)
    memcpy (e->shape, shape, ndim * sizeof (gint64));
  e->data = g_bytes_new (raw, n_bytes);
  g_ptr_array_add (b->entries, e);
}

void
test_st_add_bf16_of (TestSt *b, const DiffuseSafetensors *f32)
{
  for (guint i = 0; i < diffuse__safetensors_get_n_tensors (f32); i++)
    {
      const DiffuseTensorInfo *t = diffuse__safetensors_get_nth (f32, i);
      g_autofree guint16 *h = g_new (guint16, t->n_elements);

      for (gint64 k = 0; k < t->n_elements; k++)
        {
          guint32 bits;

          memcpy (&bits, &t->data[k], 4);
          h[k] = GUINT16_TO_LE ((guint16) (bits >> 16));
        }
      test_st_add_raw (b, t->name, "BF16", t->ndim, t->shape, h,
                       t->n_elements * 2);
    }
}

void
test_st_add_f32 (TestSt *b, const char *name, gint ndim, const gint64 *shape,
                 const float *data)
{
  gint64 n = count_elements (ndim, shape);
  g_autoptr (GBytes) bytes = NULL;

  if (data == NULL)
    bytes = pattern_f32 (n, b->entries->len);
  else
    bytes = g_bytes_new (data, (gsize) n * sizeof (float));
  test_st_add_raw (b, name, "F32", ndim, shape, g_bytes_get_data (bytes, NULL),
                   g_bytes_get_size (bytes));
}

static Entry *
find_entry (const TestSt *b, const char *name, guint *index)
{
  guint i;

  for (i = 0; i < b->entries->len; i++)
    {
      Entry *e = g_ptr_array_index (b->entries, i);

      if (strcmp (e->name, name) == 0)
        {
          if (index != NULL)
            *index = i;
          return e;
        }
    }
  return NULL;
}

gboolean
test_st_reshape (TestSt *b, const char *name, gint ndim, const gint64 *shape)
{
  Entry *e = find_entry (b, name, NULL);

  if (e == NULL)
    return FALSE;
  e->ndim = ndim;
  memcpy (e->shape, shape, ndim * sizeof (gint64));
  g_bytes_unref (e->data);
  e->data = pattern_f32 (count_elements (ndim, shape), 7);
  return TRUE;
}

gboolean
test_st_remove (TestSt *b, const char *name)
{
  guint i;

  if (find_entry (b, name, &i) == NULL)
    return FALSE;
  g_ptr_array_remove_index (b->entries, i);
  return TRUE;
}

guint
test_st_get_n_tensors (const TestSt *b)
{
  return b->entries->len;
}

const char *
test_st_get_name (const TestSt *b, guint index)
{
  g_assert (index < b->entries->len);
  return ((Entry *) g_ptr_array_index (b->entries, index))->name;
}

void
test_st_set_metadata (TestSt *b, const char *key, const char *value)
{
  guint i;

  if (value == NULL)
    {
      if (g_hash_table_remove (b->md, key))
        for (i = 0; i < b->md_keys->len; i++)
          if (strcmp (g_ptr_array_index (b->md_keys, i), key) == 0)
            {
              g_ptr_array_remove_index (b->md_keys, i);
              break;
            }
      return;
    }
  if (!g_hash_table_contains (b->md, key))
    g_ptr_array_add (b->md_keys, g_strdup (key));
  g_hash_table_insert (b->md, g_strdup (key), g_strdup (value));
}

static void
append_json_string (GString *out, const char *s)
{
  g_string_append_c (out, '"');
  for (; *s != '\0'; s++)
    {
      if (*s == '"' || *s == '\\')
        g_string_append_printf (out, "\\%c", *s);
      else if ((guchar) *s < 0x20)
        g_string_append_printf (out, "\\u%04x", (guchar) *s);
      else
        g_string_append_c (out, *s);
    }
  g_string_append_c (out, '"');
}

GBytes *
test_st_bytes_from_header (const char *header, const void *data, gsize data_len)
{
  gsize n = strlen (header);
  guint8 *buf = g_malloc (8 + n + data_len + 1);
  gint i;

  for (i = 0; i < 8; i++)
    buf[i] = (guint8) ((guint64) n >> (8 * i));
  memcpy (buf + 8, header, n);
  if (data_len > 0)
    memcpy (buf + 8 + n, data, data_len);
  return g_bytes_new_take (buf, 8 + n + data_len);
}

GBytes *
test_st_serialize (const TestSt *b)
{
  g_autoptr (GString) h = g_string_new ("{");
  g_autoptr (GByteArray) data = g_byte_array_new ();
  guint i;
  gint d;

  if (b->md_keys->len > 0)
    {
      g_string_append (h, "\"__metadata__\":{");
      for (i = 0; i < b->md_keys->len; i++)
        {
          const char *key = g_ptr_array_index (b->md_keys, i);

          if (i > 0)
            g_string_append_c (h, ',');
          append_json_string (h, key);
          g_string_append_c (h, ':');
          append_json_string (h, g_hash_table_lookup (b->md, key));
        }
      g_string_append_c (h, '}');
    }
  for (i = 0; i < b->entries->len; i++)
    {
      Entry *e = g_ptr_array_index (b->entries, i);
      gsize size;
      gconstpointer p = g_bytes_get_data (e->data, &size);

      if (h->len > 1)
        g_string_append_c (h, ',');
      append_json_string (h, e->name);
      g_string_append_printf (h, ":{\"dtype\":\"%s\",\"shape\":[", e->dtype);
      for (d = 0; d < e->ndim; d++)
        g_string_append_printf (h, "%s%" G_GINT64_FORMAT, d > 0 ? "," : "",
                                e->shape[d]);
      g_string_append_printf (h, "],\"data_offsets\":[%u,%" G_GSIZE_FORMAT "]}",
                              data->len, data->len + size);
      g_byte_array_append (data, p, size);
    }
  g_string_append_c (h, '}');
  /* as the reference writer does: pad with spaces so the data is aligned */
  while ((8 + h->len) % 8 != 0)
    g_string_append_c (h, ' ');
  return test_st_bytes_from_header (h->str, data->data, data->len);
}

gchar *
test_st_write_temp (const TestSt *b)
{
  g_autoptr (GBytes) bytes = test_st_serialize (b);
  g_autoptr (GError) error = NULL;
  gchar *path = NULL;
  gint fd = g_file_open_tmp ("diffuse-test-XXXXXX.safetensors", &path, &error);
  gsize size;
  const guint8 *p = g_bytes_get_data (bytes, &size);

  g_assert_no_error (error);
  close (fd);
  g_file_set_contents (path, (const char *) p, size, &error);
  g_assert_no_error (error);
  return path;
}

/* ---- guided-diffusion's UNetModel parameter list -------------------------- */

void
test_unet_config_init (DiffuseModelConfig *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->image_size = 16;
  cfg->in_channels = 1;
  cfg->model_channels = 32;
  cfg->out_channels = 2;
  cfg->num_res_blocks = 1;
  cfg->n_levels = 2;
  cfg->channel_mult[0] = 1;
  cfg->channel_mult[1] = 2;
  cfg->n_attention_resolutions = 1;
  cfg->attention_resolutions[0] = 8;
  cfg->num_heads = 2;
  cfg->num_head_channels = -1;
  cfg->num_heads_upsample = -1;
  cfg->use_scale_shift_norm = TRUE;
  cfg->learn_sigma = TRUE;
  cfg->num_classes = 3;
  cfg->null_class = 2;
  cfg->diffusion_steps = 100;
  cfg->noise_schedule = DIFFUSE_SCHEDULE_COSINE;
}

static void
set_int (TestSt *b, const char *key, gint v)
{
  g_autofree gchar *s = g_strdup_printf ("%d", v);

  test_st_set_metadata (b, key, s);
}

static void
set_list (TestSt *b, const char *key, const gint *v, gint n)
{
  g_autoptr (GString) s = g_string_new (NULL);
  gint i;

  for (i = 0; i < n; i++)
    g_string_append_printf (s, "%s%d", i > 0 ? "," : "", v[i]);
  test_st_set_metadata (b, key, s->str);
}

/* channel_mult with every digit a double needs ("%.17g" round-trips):
 * "1,2" or "0.5,1" as guided-diffusion's str() would give them. */
static void
set_mult (TestSt *b, const char *key, const double *v, gint n)
{
  g_autoptr (GString) s = g_string_new (NULL);
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];
  gint i;

  for (i = 0; i < n; i++)
    g_string_append_printf (s, "%s%s", i > 0 ? "," : "",
                            g_ascii_formatd (buf, sizeof buf, "%.17g", v[i]));
  test_st_set_metadata (b, key, s->str);
}

void
test_unet_set_metadata (TestSt *b, const DiffuseModelConfig *cfg)
{
  set_int (b, "image_size", cfg->image_size);
  set_int (b, "in_channels", cfg->in_channels);
  set_int (b, "model_channels", cfg->model_channels);
  set_int (b, "out_channels", cfg->out_channels);
  set_int (b, "num_res_blocks", cfg->num_res_blocks);
  set_list (b, "attention_resolutions", cfg->attention_resolutions,
            cfg->n_attention_resolutions);
  set_mult (b, "channel_mult", cfg->channel_mult, cfg->n_levels);
  set_int (b, "num_heads", cfg->num_heads);
  set_int (b, "num_head_channels", cfg->num_head_channels);
  set_int (b, "num_heads_upsample", cfg->num_heads_upsample);
  test_st_set_metadata (b, "use_scale_shift_norm",
                        cfg->use_scale_shift_norm ? "True" : "False");
  test_st_set_metadata (b, "resblock_updown",
                        cfg->resblock_updown ? "True" : "False");
  test_st_set_metadata (b, "use_new_attention_order",
                        cfg->use_new_attention_order ? "True" : "False");
  test_st_set_metadata (b, "learn_sigma", cfg->learn_sigma ? "True" : "False");
  set_int (b, "num_classes", cfg->num_classes);
  if (cfg->null_class >= 0)
    set_int (b, "null_class", cfg->null_class);
  else
    test_st_set_metadata (b, "null_class", NULL);
  set_int (b, "diffusion_steps", cfg->diffusion_steps);
  test_st_set_metadata (b, "noise_schedule",
                        diffuse_schedule_kind_to_string (cfg->noise_schedule));
  test_st_set_metadata (b, "rescale_timesteps",
                        cfg->rescale_timesteps ? "True" : "False");
}

typedef struct
{
  TestSt *b;
  guint64 n;
} Adder;

static void
add (Adder *a, const char *name, gint ndim, gint64 d0, gint64 d1, gint64 d2,
     gint64 d3)
{
  gint64 shape[4] = { d0, d1, d2, d3 };

  test_st_add_f32 (a->b, name, ndim, shape, NULL);
  a->n += (guint64) count_elements (ndim, shape);
}

/* nn.GroupNorm / nn.Linear / conv_nd parameters under prefix */
static void
add_norm (Adder *a, const char *prefix, gint64 ch)
{
  g_autofree gchar *w = g_strconcat (prefix, ".weight", NULL);
  g_autofree gchar *bias = g_strconcat (prefix, ".bias", NULL);

  add (a, w, 1, ch, 0, 0, 0);
  add (a, bias, 1, ch, 0, 0, 0);
}

static void
add_layer (Adder *a, const char *prefix, gint ndim, gint64 cout, gint64 cin,
           gint64 k)
{
  g_autofree gchar *w = g_strconcat (prefix, ".weight", NULL);
  g_autofree gchar *bias = g_strconcat (prefix, ".bias", NULL);

  add (a, w, ndim, cout, cin, k, k);
  add (a, bias, 1, cout, 0, 0, 0);
}

/* ResBlock: in_layers (GroupNorm, SiLU, conv3x3), emb_layers (SiLU,
 * Linear to out or 2·out for scale-shift), out_layers (GroupNorm, SiLU,
 * Dropout, conv3x3), skip_connection conv1x1 when the width changes.
 * up/down resampling inside the block has no parameters. */
static void
add_resblock (Adder *a, const DiffuseModelConfig *cfg, const char *p,
              gint64 cin, gint64 cout)
{
  gint64 emb = 4 * cfg->model_channels;
  g_autofree gchar *n1 = g_strconcat (p, ".in_layers.0", NULL);
  g_autofree gchar *c1 = g_strconcat (p, ".in_layers.2", NULL);
  g_autofree gchar *e = g_strconcat (p, ".emb_layers.1", NULL);
  g_autofree gchar *n2 = g_strconcat (p, ".out_layers.0", NULL);
  g_autofree gchar *c2 = g_strconcat (p, ".out_layers.3", NULL);
  g_autofree gchar *s = g_strconcat (p, ".skip_connection", NULL);

  add_norm (a, n1, cin);
  add_layer (a, c1, 4, cout, cin, 3);
  add_layer (a, e, 2, (cfg->use_scale_shift_norm ? 2 : 1) * cout, emb, 0);
  add_norm (a, n2, cout);
  add_layer (a, c2, 4, cout, cout, 3);
  if (cout != cin)
    add_layer (a, s, 4, cout, cin, 1);
}

/* AttentionBlock: norm, qkv (conv1d ch -> 3ch), proj_out (conv1d). */
static void
add_attention (Adder *a, const char *p, gint64 ch)
{
  g_autofree gchar *n = g_strconcat (p, ".norm", NULL);
  g_autofree gchar *q = g_strconcat (p, ".qkv", NULL);
  g_autofree gchar *o = g_strconcat (p, ".proj_out", NULL);

  add_norm (a, n, ch);
  add_layer (a, q, 3, 3 * ch, ch, 1);
  add_layer (a, o, 3, ch, ch, 1);
}

static gboolean
has_attention (const DiffuseModelConfig *cfg, gint ds)
{
  gint i;

  for (i = 0; i < cfg->n_attention_resolutions; i++)
    if (cfg->image_size / cfg->attention_resolutions[i] == ds &&
        cfg->image_size % cfg->attention_resolutions[i] == 0)
      return TRUE;
  return FALSE;
}

guint64
test_unet_add_tensors (TestSt *b, const DiffuseModelConfig *cfg)
{
  Adder a = { b, 0 };
  gint64 mc = cfg->model_channels, emb = 4 * mc;
  /* int(mult·mc), truncated as guided-diffusion's Python does */
  gint64 ch = (gint64) (cfg->channel_mult[0] * mc), ch0 = ch;
  gint64 chans[DIFFUSE_MAX_LEVELS * 17 + 1]; /* num_res_blocks <= 16 */
  gint n_chans = 0, idx = 1, ds = 1, level, i;
  gchar p[64];

  add_layer (&a, "time_embed.0", 2, emb, mc, 0);
  add_layer (&a, "time_embed.2", 2, emb, emb, 0);
  if (cfg->num_classes > 0)
    add (&a, "label_emb.weight", 2, cfg->num_classes, emb, 0, 0);

  add_layer (&a, "input_blocks.0.0", 4, ch, cfg->in_channels, 3);
  chans[n_chans++] = ch;
  for (level = 0; level < cfg->n_levels; level++)
    {
      gint64 out = (gint64) (cfg->channel_mult[level] * mc);

      for (i = 0; i < cfg->num_res_blocks; i++)
        {
          g_snprintf (p, sizeof p, "input_blocks.%d.0", idx);
          add_resblock (&a, cfg, p, ch, out);
          ch = out;
          if (has_attention (cfg, ds))
            {
              g_snprintf (p, sizeof p, "input_blocks.%d.1", idx);
              add_attention (&a, p, ch);
            }
          idx++;
          chans[n_chans++] = ch;
        }
      if (level != cfg->n_levels - 1)
        {
          g_snprintf (p, sizeof p, "input_blocks.%d.0", idx);
          if (cfg->resblock_updown)
            add_resblock (&a, cfg, p, ch, ch);
          else
            {
              g_strlcat (p, ".op", sizeof p);
              add_layer (&a, p, 4, ch, ch, 3);
            }
          idx++;
          chans[n_chans++] = ch;
          ds *= 2;
        }
    }

  add_resblock (&a, cfg, "middle_block.0", ch, ch);
  add_attention (&a, "middle_block.1", ch);
  add_resblock (&a, cfg, "middle_block.2", ch, ch);

  idx = 0;
  for (level = cfg->n_levels - 1; level >= 0; level--)
    {
      gint64 out = (gint64) (cfg->channel_mult[level] * mc);

      for (i = 0; i <= cfg->num_res_blocks; i++)
        {
          gint64 ich = chans[--n_chans];
          gint sub = 1;

          g_snprintf (p, sizeof p, "output_blocks.%d.0", idx);
          add_resblock (&a, cfg, p, ch + ich, out);
          ch = out;
          if (has_attention (cfg, ds))
            {
              g_snprintf (p, sizeof p, "output_blocks.%d.1", idx);
              add_attention (&a, p, ch);
              sub = 2;
            }
          if (level > 0 && i == cfg->num_res_blocks)
            {
              g_snprintf (p, sizeof p, "output_blocks.%d.%d", idx, sub);
              if (cfg->resblock_updown)
                add_resblock (&a, cfg, p, ch, ch);
              else
                {
                  g_strlcat (p, ".conv", sizeof p);
                  add_layer (&a, p, 4, ch, ch, 3);
                }
              ds /= 2;
            }
          idx++;
        }
    }

  add_norm (&a, "out.0", ch);
  add_layer (&a, "out.2", 4, cfg->out_channels, ch0, 3);
  return a.n;
}
