/* diffuse info MODEL, diffuse presets */
#include "cli.h"

#include <stdio.h>

static const char *const channel_names[] = { "", "grey", "grey+alpha", "RGB",
                                             "RGBA" };

static void
print_ints (const char *key, const gint *v, gint n)
{
  printf ("%s: ", key);
  for (gint i = 0; i < n; i++)
    printf ("%s%d", i ? "," : "", v[i]);
  printf (n == 0 ? "none\n" : "\n");
}

/* channel_mult as guided-diffusion writes it (0.5, 1, 2), then the
 * channels per level it gives. */
static void
print_levels (const DiffuseModelConfig *c)
{
  printf ("channel_mult: ");
  for (gint i = 0; i < c->n_levels; i++)
    printf ("%s%g", i ? "," : "", c->channel_mult[i]);
  printf (" (channels ");
  for (gint i = 0; i < c->n_levels; i++)
    printf ("%s%d", i ? "," : "", c->level_channels[i]);
  printf (")\n");
}

static const char *
yes_no (gboolean b)
{
  return b ? "True" : "False";
}

/* "1234567" -> "1,234,567" */
static gchar *
with_commas (guint64 v)
{
  g_autofree gchar *digits = g_strdup_printf ("%" G_GUINT64_FORMAT, v);
  GString *s = g_string_new (NULL);
  gsize len = strlen (digits);

  for (gsize i = 0; i < len; i++)
    {
      if (i > 0 && (len - i) % 3 == 0)
        g_string_append_c (s, ',');
      g_string_append_c (s, digits[i]);
    }
  return g_string_free (s, FALSE);
}

/* A classifier file: guided-diffusion's EncoderUNetModel options. */
static int
print_classifier (const DiffuseModel *model, const char *path G_GNUC_UNUSED,
                  const char *n_params)
{
  const DiffuseModelConfig *c = diffuse_model_get_config (model);

  printf ("type: classifier (noisy-image classifier for classifier guidance: "
          "--classifier)\n");
  printf ("parameters: %s\n", n_params);
  printf ("image_size: %d\n", c->image_size);
  printf ("in_channels: %d (%s)\n", c->in_channels,
          channel_names[c->in_channels]);
  printf ("model_channels: %d\n", c->model_channels);
  print_levels (c);
  printf ("num_res_blocks: %d\n", c->num_res_blocks);
  print_ints ("attention_resolutions", c->attention_resolutions,
              c->n_attention_resolutions);
  printf ("num_heads: %d\n", c->num_heads);
  printf ("num_head_channels: %d\n", c->num_head_channels);
  printf ("use_scale_shift_norm: %s\n", yes_no (c->use_scale_shift_norm));
  printf ("resblock_updown: %s\n", yes_no (c->resblock_updown));
  printf ("use_new_attention_order: %s\n", yes_no (c->use_new_attention_order));
  if (c->pool == DIFFUSE_POOL_ATTENTION)
    printf ("pool: attention (inputs must be %dx%d)\n", c->image_size,
            c->image_size);
  else
    printf ("pool: adaptive (sizes: multiples of %d)\n",
            1 << (c->n_levels - 1));
  if (c->diffusion_steps > 0)
    printf ("diffusion_steps: %d\nnoise_schedule: %s\n", c->diffusion_steps,
            diffuse_schedule_kind_to_string (c->noise_schedule));
  else
    printf ("diffusion_steps: not recorded\n");
  printf ("num_classes: %d\nclasses:\n", c->num_classes);
  for (gint i = 0; i < c->num_classes; i++)
    {
      const char *name = diffuse_model_get_class_name (model, i);

      g_autofree gchar *safe = name ? cli_escape (name) : NULL;

      printf ("  %d: %s\n", i, safe ? safe : "(unnamed)");
    }
  return 0;
}

/* What one image of a class at the model's own size takes with the
 * defaults (DDIM, 50 steps, guidance w = 2 when the model has a null
 * class): memory and compute. */
static void
print_estimate (const DiffuseModel *model)
{
  const DiffuseModelConfig *c = diffuse_model_get_config (model);
  DiffuseSampleParams params;
  DiffuseRunEstimate e;
  g_autofree gchar *mem = NULL, *weights = NULL;

  diffuse_sample_params_init (&params);
  params.steps = MIN (50, c->diffusion_steps);
  if (c->num_classes > 0)
    params.class_label = c->null_class == 0 && c->num_classes > 1 ? 1 : 0;
  diffuse_settings_fit_model (&params, 0, model);
  if (!diffuse_sample_estimate (model, &params, &e, NULL))
    return;
  mem = cli_format_bytes (e.bytes);
  weights = cli_format_bytes (e.weight_bytes);
  printf ("run at %dx%d: about %s of memory besides the %s of weights, "
          "%.3g GFLOP per network evaluation (%" G_GUINT64_FORMAT
          " evaluations for %d steps%s)\n",
          c->image_size, c->image_size, mem, weights, e.flops_per_eval / 1e9,
          e.n_evals, params.steps, params.guidance > 0 ? " with guidance" : "");
}

int
cli_info (int argc, char **argv)
{
  g_autoptr (GOptionContext) context =
      g_option_context_new ("MODEL - print a model's configuration");
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  g_autofree gchar *n_params = NULL;
  const DiffuseModelConfig *c;

  g_option_context_set_summary (
      context, "Prints the configuration read from the model's metadata "
               "(guided-diffusion\n"
               "option names), the class names and the number of parameters.");
  if (!cli_parse (context, &argc, &argv))
    return CLI_EXIT_USAGE;
  if (argc != 2)
    return cli_usage (
        "info needs exactly one MODEL file (see 'diffuse info --help')");

  model = diffuse_model_new_from_file (argv[1], &error);
  if (model == NULL)
    return cli_fail (error);
  c = diffuse_model_get_config (model);
  n_params = with_commas (diffuse_model_get_n_params (model));

  {
    g_autofree gchar *path = diffuse_text_escape (argv[1]);

    printf ("model: %s\n", path);
    if (c->model_type == DIFFUSE_MODEL_CLASSIFIER)
      return print_classifier (model, path, n_params);
  }
  printf ("type: diffusion UNet\n");
  printf ("parameters: %s\n", n_params);
  printf ("image_size: %d\n", c->image_size);
  printf ("in_channels: %d (%s)\n", c->in_channels,
          c->in_channels >= 1 && c->in_channels <= 4
              ? channel_names[c->in_channels]
              : "?");
  printf ("out_channels: %d\n", c->out_channels);
  printf ("model_channels: %d\n", c->model_channels);
  print_levels (c);
  printf ("num_res_blocks: %d\n", c->num_res_blocks);
  print_ints ("attention_resolutions", c->attention_resolutions,
              c->n_attention_resolutions);
  printf ("num_heads: %d\n", c->num_heads);
  printf ("num_head_channels: %d\n", c->num_head_channels);
  printf ("num_heads_upsample: %d\n", c->num_heads_upsample);
  printf ("use_scale_shift_norm: %s\n", yes_no (c->use_scale_shift_norm));
  printf ("resblock_updown: %s\n", yes_no (c->resblock_updown));
  printf ("use_new_attention_order: %s\n", yes_no (c->use_new_attention_order));
  printf ("learn_sigma: %s\n", yes_no (c->learn_sigma));
  printf ("diffusion_steps: %d\n", c->diffusion_steps);
  printf ("noise_schedule: %s\n",
          diffuse_schedule_kind_to_string (c->noise_schedule));
  printf ("rescale_timesteps: %s\n", yes_no (c->rescale_timesteps));
  printf ("size multiple: %d (sample sizes must be multiples of it)\n",
          1 << (c->n_levels - 1));
  print_estimate (model);
  if (c->num_classes == 0)
    printf ("num_classes: 0 (unconditional)\n");
  else
    {
      printf ("num_classes: %d\n", c->num_classes);
      if (c->null_class >= 0)
        printf ("null_class: %d (guidance available)\n", c->null_class);
      else
        printf ("null_class: none (guidance needs a separate null model: "
                "--null-model)\n");
      printf ("classes:\n");
      for (gint i = 0; i < c->num_classes; i++)
        {
          const char *name = diffuse_model_get_class_name (model, i);
          /* names come from the file: no terminal escapes */
          g_autofree gchar *shown = name ? diffuse_text_escape (name) : NULL;

          printf ("  %d: %s%s\n", i, shown ? shown : "(unnamed)",
                  i == c->null_class ? " [null class]" : "");
        }
    }
  return 0;
}

/* " sampler=ddim steps=50 ..." in the table's order */
static gchar *
preset_settings (const DiffusePreset *p)
{
  GString *s = g_string_new (NULL);
  gint n;
  const DiffuseSetting *table = diffuse_settings (&n);

  for (gint i = 0; i < n; i++)
    if (p->given & (1u << i))
      {
        g_autofree gchar *value =
            diffuse_setting_to_string (&table[i], &p->values);

        g_string_append_printf (s, " %s=%s", table[i].name, value);
      }
  return g_string_free (s, FALSE);
}

int
cli_presets (int argc, char **argv)
{
  g_autoptr (GOptionContext) context =
      g_option_context_new ("- list the sampling presets");
  g_autoptr (GPtrArray) presets = NULL;
  g_auto (GStrv) dirs = NULL;

  g_option_context_set_summary (
      context,
      "Lists the presets usable with --preset NAME. Presets are read from the\n"
      "system directory, then the user's directory (same name: the user's "
      "wins):\n"
      "$XDG_CONFIG_HOME/gimp-diffusion/presets (~/.config/...), shared with "
      "the\n"
      "GIMP plug-in. DIFFUSE_PRESETS_DIR replaces the system directory,\n"
      "DIFFUSE_USER_PRESETS_DIR the user's.");
  if (!cli_parse (context, &argc, &argv))
    return CLI_EXIT_USAGE;
  if (argc != 1)
    return cli_usage ("presets takes no arguments");

  presets = cli_load_presets (&dirs);
  {
    g_autofree gchar *d0 = diffuse_text_escape (dirs[0]);
    g_autofree gchar *d1 = diffuse_text_escape (dirs[1]);

    printf ("# from %s and %s\n", d0, d1);
  }
  for (guint i = 0; i < presets->len; i++)
    {
      const DiffusePreset *p = presets->pdata[i];
      g_autofree gchar *settings = preset_settings (p);
      g_autofree gchar *name = diffuse_text_escape (p->name);

      printf ("%-18s%s\n", name, settings);
      if (p->description && *p->description)
        {
          g_autofree gchar *description = diffuse_text_escape (p->description);

          printf ("%-18s%s\n", "", description);
        }
    }
  return 0;
}
