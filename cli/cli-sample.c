/* diffuse sample / diffuse img2img / diffuse inpaint */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* count's "not given yet" inside run () (load_noise fills it) */
#define NOT_GIVEN G_MININT

typedef struct
{
  gchar *model, *null_model, *classifier, *klass, *noise, *preset;
  gchar *out, *out_npy, *input, *seed, *mask;
  gint width, height, threads, margin;
  gboolean width_given, height_given, threads_given, margin_given;
  gboolean quiet;
  /* the settings table's options (--steps, --eta, ...): their values and
   * which were given (a flag per setting, never a sentinel value) */
  DiffuseSampleParams values;
  DiffuseSettingsMask given;
  GPtrArray *strings; /* owned copies of string settings */
  gchar *texts[32];   /* each given setting's text, as given */
} Options;

static void
options_clear (Options *o)
{
  g_free (o->model);
  g_free (o->null_model);
  g_free (o->classifier);
  g_free (o->klass);
  g_free (o->noise);
  g_free (o->preset);
  g_free (o->out);
  g_free (o->out_npy);
  g_free (o->input);
  g_free (o->seed);
  g_free (o->mask);
  g_clear_pointer (&o->strings, g_ptr_array_unref);
  for (gsize i = 0; i < G_N_ELEMENTS (o->texts); i++)
    g_free (o->texts[i]);
}

/* The options' values against the table's ranges, quoting each value as
 * it was typed ("--eta 10.0000001", not 10). */
static gboolean
check_given (const Options *o, GError **error)
{
  gint n;
  const DiffuseSetting *table = diffuse_settings (&n);

  for (gint i = 0; i < n; i++)
    if ((o->given & (1u << i)) &&
        !diffuse_setting_check (&table[i], &o->values, NULL))
      {
        g_autofree gchar *range = diffuse_setting_describe_range (&table[i]);
        g_autofree gchar *shown = diffuse_text_escape (o->texts[i]);

        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                     "--%s %s is out of range %s%s%s", table[i].name, shown,
                     range[0] == '(' ? "" : "(", range,
                     range[0] == '(' ? "" : ")");
        return FALSE;
      }
  return TRUE;
}

static gboolean
given (const Options *o, const char *name)
{
  gint index;

  return diffuse_setting_find (name, &index) != NULL &&
         (o->given & (1u << index)) != 0;
}

/* GOptionArgFunc for --width, --height, --threads and --margin: the
 * value and a given flag (every int is a possible value, so none marks
 * "not given"). */
static gboolean
on_int_option (const gchar *option_name, const gchar *value, gpointer data,
               GError **error)
{
  Options *o = data;
  gint *field = &o->threads;
  gboolean *was_given = &o->threads_given;
  gint64 v;

  if (strcmp (option_name, "--width") == 0)
    field = &o->width, was_given = &o->width_given;
  else if (strcmp (option_name, "--height") == 0)
    field = &o->height, was_given = &o->height_given;
  else if (strcmp (option_name, "--margin") == 0)
    field = &o->margin, was_given = &o->margin_given;
  if (!g_ascii_string_to_signed (value, 10, G_MININT, G_MAXINT, &v, NULL))
    {
      g_autofree gchar *shown = diffuse_text_escape (value);

      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                   "%s: '%s' is not an integer", option_name, shown);
      return FALSE;
    }
  *field = (gint) v;
  *was_given = TRUE;
  return TRUE;
}

/* GOptionArgFunc for every table option: "--eta VALUE" or "-s VALUE". */
static gboolean
on_setting (const gchar *option_name, const gchar *value, gpointer data,
            GError **error)
{
  Options *o = data;
  gint n, i;
  const DiffuseSetting *table = diffuse_settings (&n);
  GError *local = NULL;

  for (i = 0; i < n; i++)
    if (option_name[1] == '-'
            ? strcmp (option_name + 2, table[i].name) == 0
            : (option_name[1] == table[i].short_name && option_name[2] == '\0'))
      break;
  if (i == n)
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_FAILED,
                   "%s is not a setting", option_name);
      return FALSE;
    }
  if (table[i].type == DIFFUSE_SETTING_STRING)
    {
      /* the params keep a pointer: keep a copy alive */
      value = g_strdup (value);
      g_ptr_array_add (o->strings, (gpointer) value);
    }
  if (!diffuse_setting_parse (&table[i], value, &o->values, &local))
    {
      g_set_error (error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE, "--%s",
                   local->message);
      g_error_free (local);
      return FALSE;
    }
  o->given |= 1u << i;
  g_free (o->texts[i]);
  o->texts[i] = g_strdup (value);
  return TRUE;
}

/* One GOptionEntry per table setting with DIFFUSE_SETTING_CLI (img2img's
 * only for img2img and inpaint, inpaint's only for inpaint); help with
 * range and default from the table (inpaint's strength: 1).  The
 * descriptions are kept in keep (freed with it). */
static void
add_setting_entries (GArray *entries, CliSampleMode mode, GPtrArray *keep)
{
  gint n;
  const DiffuseSetting *table = diffuse_settings (&n);
  DiffuseSampleParams defaults;

  diffuse_sample_params_init (&defaults);
  if (mode == CLI_INPAINT)
    defaults.strength = 1.0;
  for (gint i = 0; i < n; i++)
    {
      const DiffuseSetting *s = &table[i];
      g_autofree gchar *range = diffuse_setting_describe_range (s);
      g_autofree gchar *def = diffuse_setting_to_string (s, &defaults);
      gchar *help;
      GOptionEntry e = { 0 };

      if (!(s->flags & DIFFUSE_SETTING_CLI) ||
          (mode == CLI_SAMPLE && (s->flags & DIFFUSE_SETTING_IMG2IMG)) ||
          (mode != CLI_INPAINT && (s->flags & DIFFUSE_SETTING_INPAINT)))
        continue;
      if (s->type == DIFFUSE_SETTING_STRING)
        help = g_strdup (s->help);
      else
        help = g_strdup_printf (
            "%s (%s%s); default %s%s%s", s->help,
            s->type == DIFFUSE_SETTING_ENUM ? "" : "range ", range, def,
            s->flags & DIFFUSE_SETTING_GUIDED_DEFAULT
                ? " (0 for a model without a null class and without "
                  "--null-model)"
                : "",
            s->flags & DIFFUSE_SETTING_PRESET ? " unless a preset sets it"
                                              : "");
      g_ptr_array_add (keep, help);
      e.long_name = s->name;
      e.short_name = s->short_name;
      e.arg = G_OPTION_ARG_CALLBACK;
      e.arg_data = (gpointer) on_setting;
      e.description = help;
      e.arg_description = s->metavar;
      g_array_append_val (entries, e);
    }
}

typedef struct
{
  gboolean quiet, tty;
} Progress;

static gboolean
on_progress (gint step, gint n_steps, const float *x0_pred, gint count,
             gint channels, gint height, gint width, gpointer user_data)
{
  Progress *p = user_data;

  (void) x0_pred;
  (void) count;
  (void) channels;
  (void) height;
  (void) width;
  if (p->quiet)
    return TRUE;
  if (p->tty)
    fprintf (stderr, "\rstep %d/%d%s", step, n_steps,
             step == n_steps ? "\n" : "");
  else
    fprintf (stderr, "step %d/%d\n", step, n_steps);
  return TRUE;
}

/* out.png -> out-3.png (the index goes before the extension). */
static gchar *
numbered_path (const char *path, gint index, gint count)
{
  const char *base = strrchr (path, '/');
  const char *dot;

  if (count == 1)
    return g_strdup (path);
  base = base ? base + 1 : path;
  dot = strrchr (base, '.');
  if (dot == NULL || dot == base)
    return g_strdup_printf ("%s-%d", path, index);
  return g_strdup_printf ("%.*s-%d%s", (int) (dot - path), path, index, dot);
}

/* --preset NAME (searched in the preset directories) or a .preset file. */
static DiffusePreset *
find_preset (const char *name, GError **error)
{
  g_autoptr (GPtrArray) all = NULL;
  g_autoptr (GString) names = NULL;
  g_autofree gchar *shown = NULL;

  if (strchr (name, '/') != NULL || g_str_has_suffix (name, ".preset"))
    return diffuse_preset_load_file (name, error);

  all = cli_load_presets (NULL);
  names = g_string_new (NULL);
  for (guint i = 0; i < all->len; i++)
    {
      DiffusePreset *p = all->pdata[i];
      g_autofree gchar *pname = diffuse_text_escape (p->name);

      if (g_ascii_strcasecmp (p->name, name) == 0)
        return g_steal_pointer (&all->pdata[i]);
      g_string_append_printf (names, "%s%s", i ? ", " : "", pname);
    }
  shown = diffuse_text_escape (name);
  g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
               "no preset named '%s' (available: %s)", shown,
               names->len ? names->str : "none");
  return NULL;
}

/* --noise: [K, C, H, W] or [C, H, W]; fills count/height/width when the
 * options left them open and checks them otherwise. */
static float *
load_noise (const Options *o, const DiffuseModelConfig *cfg, gint *count,
            gint *height, gint *width, GError **error)
{
  gint ndim;
  gint64 shape[4], k, c, h, w;
  g_autofree float *noise = diffuse_npy_load (o->noise, &ndim, shape, error);

  if (noise == NULL)
    return NULL;
  if (ndim != 3 && ndim != 4)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: noise must be [count, C, H, W] or [C, H, W], got %d "
                   "dimensions",
                   o->noise, ndim);
      return NULL;
    }
  k = ndim == 4 ? shape[0] : 1;
  c = shape[ndim - 3];
  h = shape[ndim - 2];
  w = shape[ndim - 1];
  if (*count == NOT_GIVEN && k >= 1 && k <= G_MAXINT)
    *count = (gint) k;
  if (*height <= 0 && h <= G_MAXINT)
    *height = (gint) h;
  if (*width <= 0 && w <= G_MAXINT)
    *width = (gint) w;
  if (k != (*count == NOT_GIVEN ? 1 : *count) || c != cfg->in_channels ||
      h != *height || w != *width)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: noise has shape [%" G_GINT64_FORMAT
                   ", %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                   ", %" G_GINT64_FORMAT "], the run needs "
                   "[%d, %d, %d, %d]",
                   o->noise, k, c, h, w, *count == NOT_GIVEN ? 1 : *count,
                   cfg->in_channels, *height, *width);
      return NULL;
    }
  return g_steal_pointer (&noise);
}

/* An .npy input: exact floats [C, H, W] or [1, C, H, W], C = the model's. */
static float *
load_input_npy (const char *path, const DiffuseModelConfig *cfg, gint *h,
                gint *w, GError **error)
{
  gint ndim;
  gint64 s[4];
  g_autofree float *x = diffuse_npy_load (path, &ndim, s, error);
  gint64 *chw = ndim == 4 ? s + 1 : s;

  if (x == NULL)
    return NULL;
  if (!(ndim == 3 || (ndim == 4 && s[0] == 1)) || chw[0] != cfg->in_channels ||
      chw[1] < 1 || chw[1] > G_MAXINT || chw[2] < 1 || chw[2] > G_MAXINT)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: need an array [%d, H, W] or [1, %d, H, W]", path,
                   cfg->in_channels, cfg->in_channels);
      return NULL;
    }
  *h = (gint) chw[1];
  *w = (gint) chw[2];
  return g_steal_pointer (&x);
}

/* img2img's input (a PNG converted to the model's channels, or an .npy),
 * at the run size. */
static float *
load_input (const Options *o, const DiffuseModelConfig *cfg, gint *height,
            gint *width, GError **error)
{
  gint c = cfg->in_channels, h, w;
  g_autofree float *image =
      g_str_has_suffix (o->input, ".npy")
          ? load_input_npy (o->input, cfg, &h, &w, error)
          : diffuse_png_load (o->input, c, NULL, &h, &w, error);
  float *sized;

  if (image == NULL)
    return NULL;
  if (*height <= 0)
    *height = h;
  if (*width <= 0)
    *width = w;
  if (*height == h && *width == w)
    return g_steal_pointer (&image);
  sized = g_try_new (float, (gsize) c **height **width);
  if (sized == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "out of memory resizing %s", o->input);
      return NULL;
    }
  diffuse_resample (image, c, h, w, sized, *height, *width,
                    DIFFUSE_RESAMPLE_BILINEAR);
  return sized;
}

/* Every output file of the run (the PNGs, then the .npy), made before
 * sampling so that a missing folder, an unwritable one or a target that
 * is not a regular file is refused before any work. */
static gchar **
output_paths (const Options *o, gint count)
{
  GPtrArray *paths = g_ptr_array_new ();

  for (gint k = 0; o->out != NULL && k < count; k++)
    g_ptr_array_add (paths, numbered_path (o->out, k, count));
  if (o->out_npy != NULL)
    g_ptr_array_add (paths, g_strdup (o->out_npy));
  g_ptr_array_add (paths, NULL);
  return (gchar **) g_ptr_array_free (paths, FALSE);
}

/* Writes the batch all or nothing: every file is written to its
 * temporary file first, and only when all are complete are they renamed
 * into place. */
static gboolean
write_outputs (const Options *o, gchar **paths, const float *out, gint count,
               gint channels, gint height, gint width, guint64 seed,
               GError **error)
{
  const gsize image_floats = (gsize) channels * height * width;
  g_autoptr (GPtrArray) outs =
      g_ptr_array_new_with_free_func ((GDestroyNotify) diffuse_output_free);
  g_autofree gchar *seed_text = g_strdup_printf ("%" G_GUINT64_FORMAT, seed);
  guint n = g_strv_length (paths);

  for (guint i = 0; i < n; i++)
    {
      DiffuseOutput *f = diffuse_output_new (paths[i], error);

      if (f == NULL)
        return FALSE;
      g_ptr_array_add (outs, f);
      if (o->out != NULL && (gint) i < count)
        {
          g_autofree gchar *batch =
              g_strdup_printf ("image %u of %d", i, count);
          /* the seed (and the image's place in its batch) reproduce it */
          const char *text[] = { "Software",
                                 "gimp-diffusion diffuse " DIFFUSE_VERSION,
                                 "Seed",
                                 seed_text,
                                 count > 1 ? "Batch" : NULL,
                                 batch,
                                 NULL };

          if (!diffuse_output_write_png (f, out + i * image_floats, channels,
                                         height, width, text, error))
            return FALSE;
        }
      else
        {
          gint64 shape[4] = { count, channels, height, width };

          if (!diffuse_output_write_npy (f, out, 4, shape, error))
            return FALSE;
        }
    }
  for (guint i = 0; i < n; i++)
    if (!diffuse_output_commit (outs->pdata[i], error))
      {
        if (i > 0)
          g_prefix_error (error, "after writing %u of %u files: ", i, n);
        return FALSE;
      }
  for (guint i = 0; !o->quiet && i < n; i++)
    printf ("wrote %s\n", paths[i]);
  return TRUE;
}

/* inpaint: the input at its own size and the mask, the plan of the
 * context window, and the window's image and mask at the run size (into
 * *run_input, *run_mask); *image and *mask keep the whole originals. */
static gboolean
prepare_inpaint (const Options *o, const DiffuseModelConfig *cfg, float **image,
                 float **mask, gint *height, gint *width,
                 DiffuseInpaintPlan *plan, float **run_input, float **run_mask,
                 GError **error)
{
  gint c = cfg->in_channels, h = 0, w = 0;
  g_autofree float *win = NULL, *win_mask = NULL;

  *image = load_input (o, cfg, &h, &w, error);
  if (*image == NULL)
    return FALSE;
  *mask = cli_load_mask (o->mask, h, w, error);
  if (*mask == NULL)
    return FALSE;
  if (!diffuse_inpaint_plan (cfg, *mask, h, w,
                             o->margin_given ? o->margin
                                             : DIFFUSE_INPAINT_DEFAULT_MARGIN,
                             plan, error))
    {
      g_prefix_error (error, "%s: ", o->mask);
      return FALSE;
    }
  win = cli_crop_window (plan, *image, c, h, w);
  win_mask = cli_crop_window (plan, *mask, 1, h, w);
  *run_input = g_new (float, (gsize) c * plan->run_height * plan->run_width);
  *run_mask = g_new (float, (gsize) plan->run_height * plan->run_width);
  diffuse_inpaint_to_run (plan, win, c, *run_input);
  diffuse_inpaint_to_run (plan, win_mask, 1, *run_mask);
  *height = h;
  *width = w;
  return TRUE;
}

/* inpaint: every image of out [count, C, run size] back into a copy of
 * the whole original, by the plan; returns [count, C, H, W]. */
static float *
finish_inpaint (const DiffuseInpaintPlan *plan, const float *out, gint count,
                gint channels, const float *image, const float *mask,
                gint height, gint width)
{
  gsize n_image = (gsize) channels * height * width;
  gsize n_run = (gsize) channels * plan->run_height * plan->run_width;
  g_autofree float *win =
      cli_crop_window (plan, image, channels, height, width);
  g_autofree float *win_mask = cli_crop_window (plan, mask, 1, height, width);
  g_autofree float *win_out =
      g_new (float, (gsize) channels * plan->height * plan->width);
  float *full = g_try_new (float, n_image *count);

  for (gint k = 0; full != NULL && k < count; k++)
    {
      memcpy (full + k * n_image, image, n_image * sizeof (float));
      diffuse_inpaint_from_run (plan, out + k * n_run, win, win_mask, channels,
                                win_out);
      cli_paste_window (plan, win_out, channels, height, width,
                        full + k * n_image);
    }
  return full;
}

static int
run (Options *o, CliSampleMode mode)
{
  gboolean img2img = mode == CLI_IMG2IMG, inpaint = mode == CLI_INPAINT;
  g_autofree float *image = NULL, *mask = NULL, *run_mask = NULL;
  g_autofree float *full = NULL;
  DiffuseInpaintPlan plan = { 0 };
  gint full_h = 0, full_w = 0;
  g_auto (GStrv) paths = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  g_autoptr (DiffuseModel) null_model = NULL;
  g_autoptr (DiffuseModel) classifier = NULL;
  g_autoptr (DiffusePreset) preset = NULL;
  g_autofree float *noise = NULL, *input = NULL, *init = NULL, *out = NULL;
  const DiffuseModelConfig *cfg;
  DiffuseSampleParams params;
  DiffuseSampleInfo info = { 0 };
  Progress progress = { o->quiet, isatty (2) };
  guint64 seed;
  gint height = o->height_given ? o->height : 0;
  gint width = o->width_given ? o->width : 0;
  gint count = given (o, "count") ? o->values.count : NOT_GIVEN;
  gsize image_floats;
  DiffuseRunEstimate estimate;
  DiffusePrecision resolved;
  guint64 need, available;
  gint64 t0;

  /* --- everything that is a usage error comes first --- */
  if (o->model == NULL)
    return cli_usage ("--model is required");
  if ((img2img || inpaint) && o->input == NULL)
    return cli_usage ("--input is required");
  if (inpaint && o->mask == NULL)
    return cli_usage ("--mask is required (white = the pixels to regenerate)");
  if (inpaint && o->margin_given && o->margin < 0)
    return cli_usage ("--margin must be 0 or more, not %d", o->margin);
  if (o->out == NULL && o->out_npy == NULL)
    return cli_usage ("--out (or --out-npy) is required");
  if (o->out != NULL && !cli_has_extension (o->out, ".png"))
    return cli_usage ("--out writes a PNG image: give it a .png name, not "
                      "'%s' (convert to other formats afterwards)",
                      o->out);
  if (o->seed != NULL)
    {
      if (!g_ascii_string_to_unsigned (o->seed, 10, 0, G_MAXUINT64, &seed,
                                       NULL))
        return cli_usage ("--seed must be an integer in 0..%" G_GUINT64_FORMAT
                          ", not '%s'",
                          G_MAXUINT64, o->seed);
    }
  else
    seed = ((guint64) g_random_int () << 32) | g_random_int ();
  if ((o->height_given && o->height < 1) || (o->width_given && o->width < 1))
    return cli_failf ("--width and --height must be positive");

  /* a preset first, explicit options over it; every setting checked
   * against the table before any file is loaded */
  if (!check_given (o, &error))
    return cli_fail (error);
  /* the outputs can be written (before any work); --noise may set count */
  paths = output_paths (o, count == NOT_GIVEN ? 1 : count);
  for (gint i = 0; paths[i] != NULL; i++)
    if (!diffuse_output_check (paths[i], &error))
      return cli_fail (error);

  if (o->preset != NULL && (preset = find_preset (o->preset, &error)) == NULL)
    return cli_fail (error);
  diffuse_sample_params_init (&params);
  /* inpainting regenerates the masked part from pure noise unless a
   * preset or --strength says otherwise */
  if (inpaint)
    params.strength = 1.0;
  if (preset != NULL)
    diffuse_preset_apply (preset, &params);
  if (mode == CLI_SAMPLE)
    params.strength = 1.0;
  diffuse_settings_copy (o->given, &params, &o->values);
  if (o->threads_given)
    params.n_threads = o->threads;
  if (!diffuse_settings_validate (&params, &error))
    return cli_fail (error);

  model = diffuse_model_new_from_file (o->model, &error);
  if (model == NULL)
    return cli_fail (error);
  cfg = diffuse_model_get_config (model);
  if (o->null_model != NULL && (null_model = diffuse_model_new_from_file (
                                    o->null_model, &error)) == NULL)
    return cli_fail (error);

  if (o->classifier != NULL && (classifier = diffuse_model_new_from_file (
                                    o->classifier, &error)) == NULL)
    return cli_fail (error);

  params.seed = seed;
  params.null_model = null_model;
  /* classifier guidance (its scale is a setting of the table, default 1
   * as guided-diffusion's classifier_scale; unused without a classifier) */
  params.classifier = classifier;
  /* the label names a class of the model, or of the classifier when the
   * model is unconditional */
  if (o->klass != NULL &&
      !diffuse_model_find_class (
          cfg->num_classes == 0 && classifier != NULL ? classifier : model,
          o->klass, &params.class_label, &error))
    return cli_fail (error);
  /* the defaults that depend on the model (guidance: 2 where it can be
   * guided, else 0) for the settings neither an option nor the preset
   * gave; a given value is kept */
  diffuse_settings_fit_model (
      &params, o->given | (preset != NULL ? preset->given : 0), model);
  if (params.guidance > 0.0 && null_model == NULL && cfg->num_classes > 0 &&
      cfg->null_class < 0)
    {
      if (!given (o, "guidance"))
        {
          g_autofree gchar *pname = diffuse_text_escape (preset->name);

          return cli_failf (
              "the preset %s sets guidance %g, which needs the model's null "
              "class, but %s has no null class: give --guidance 0, or an "
              "unconditional model with --null-model FILE",
              pname, params.guidance, o->model);
        }
      return cli_failf ("--guidance %g needs the model's null class, but %s "
                        "has no null class: give an unconditional model with "
                        "--null-model FILE",
                        params.guidance, o->model);
    }

  /* inpaint: the window and its size come first, the noise must fit it */
  if (inpaint)
    {
      if (!prepare_inpaint (o, cfg, &image, &mask, &full_h, &full_w, &plan,
                            &input, &run_mask, &error))
        return cli_fail (error);
      height = plan.run_height;
      width = plan.run_width;
    }
  if (o->noise != NULL &&
      (noise = load_noise (o, cfg, &count, &height, &width, &error)) == NULL)
    return cli_fail (error);
  if (count == NOT_GIVEN)
    count = 1;
  if (count != (given (o, "count") ? o->values.count : 1))
    {
      g_strfreev (paths);
      paths = output_paths (o, count);
      for (gint i = 0; paths[i] != NULL; i++)
        if (!diffuse_output_check (paths[i], &error))
          return cli_fail (error);
    }
  if (img2img && (input = load_input (o, cfg, &height, &width, &error)) == NULL)
    return cli_fail (error);
  if (input != NULL)
    {
      /* the engine checks init_image too, but only once the run is set
       * up: refuse a NaN input before anything else is said or done */
      gsize n = (gsize) cfg->in_channels * height * width;

      for (gsize i = 0; i < n; i++)
        if (!(fabsf (input[i]) <= 1000.0f))
          return cli_failf (
              "%s: the input image value %g at index %" G_GSIZE_FORMAT
              " is %s (need finite values within ±1000)",
              o->input, input[i], i,
              isfinite (input[i]) ? "too large" : "not finite");
    }
  params.count = count;
  params.height = height;
  params.width = width;
  params.init_noise = noise;
  params.progress = on_progress;
  params.user_data = &progress;
  if (!diffuse_sample_params_validate (&params, model, &error))
    return cli_fail (error);
  if (height == 0)
    height = cfg->image_size;
  if (width == 0)
    width = cfg->image_size;

  /* what the run takes, before anything large is allocated; the CLI adds
   * its copy of the input for every image */
  if (!diffuse_sample_estimate (model, &params, &estimate, &error))
    return cli_fail (error);
  image_floats = (gsize) cfg->in_channels * height * width;
  need =
      estimate.bytes + (input != NULL ? (guint64) count * image_floats * 4 : 0);
  available = cli_available_memory ();
  if (need > available)
    {
      g_autofree gchar *need_text = cli_format_bytes (need);
      g_autofree gchar *avail_text = cli_format_bytes (available);

      return cli_failf (
          "%d image%s of %d x %d need about %s of memory, more than "
          "the %s available: reduce --width/--height%s",
          count, count == 1 ? "" : "s", width, height, need_text, avail_text,
          count > 1 ? " or --count" : "");
    }

  out = g_try_new (float, image_floats *count);
  if (input != NULL)
    {
      /* init_image is [count, C, H, W]: the same input for every image */
      init = g_try_new (float, image_floats *count);
      for (gint k = 0; init != NULL && k < count; k++)
        memcpy (init + k * image_floats, input, image_floats * sizeof (float));
      params.init_image = init;
    }
  if (out == NULL || (input != NULL && init == NULL))
    return cli_failf ("out of memory for %d images of %d x %d", count, width,
                      height);
  /* the mask needs the original: checked again with both (resample-jump
   * against the steps run) */
  params.mask = run_mask;
  if (inpaint && !diffuse_sample_params_validate (&params, model, &error))
    return cli_fail (error);

  if (inpaint && !o->quiet)
    fprintf (stderr,
             "inpaint: context window %d x %d at (%d, %d), sampled at %d x "
             "%d%s\n",
             plan.width, plan.height, plan.x, plan.y, plan.run_width,
             plan.run_height, plan.scaled ? " (scaled)" : "");
  if (!o->quiet)
    {
      g_autofree gchar *need_text = cli_format_bytes (need);

      fprintf (stderr,
               "seed %" G_GUINT64_FORMAT ", %d image%s of %d x %d: "
               "about %s of memory, %.3g GFLOP (%" G_GUINT64_FORMAT
               " network evaluations)\n",
               seed, count, count == 1 ? "" : "s", width, height, need_text,
               estimate.flops / 1e9, estimate.n_evals);
      /* bf16 asked for (auto never picks it without the instructions) */
      if (diffuse_precision_resolve (params.precision, G_MAXUINT64, &resolved,
                                     NULL))
        cli_note_precision (resolved);
    }
  else if (o->seed == NULL)
    /* a random seed is always told, so that every image can be made again */
    fprintf (stderr, "seed %" G_GUINT64_FORMAT "\n", seed);
  t0 = g_get_monotonic_time ();
  if (!diffuse_sample (model, &params, out, &info, &error))
    return cli_fail (error);
  if (!o->quiet)
    fprintf (stderr, "%d steps in %.1f s\n", info.n_steps_run,
             (g_get_monotonic_time () - t0) / 1e6);
  if (img2img)
    printf ("img2img: strength %g -> %d reverse steps from t = %d\n",
            params.strength, info.n_steps_run, info.start_timestep);

  if (inpaint)
    {
      /* the window back into the whole image: mask 0 pixels stay */
      full = finish_inpaint (&plan, out, count, cfg->in_channels, image, mask,
                             full_h, full_w);
      if (full == NULL)
        return cli_failf ("out of memory for %d images of %d x %d", count,
                          full_w, full_h);
      if (!write_outputs (o, paths, full, count, cfg->in_channels, full_h,
                          full_w, seed, &error))
        return cli_fail (error);
      return 0;
    }
  if (!write_outputs (o, paths, out, count, cfg->in_channels, height, width,
                      seed, &error))
    return cli_fail (error);
  return 0;
}

int
cli_sample (int argc, char **argv, CliSampleMode mode)
{
  gboolean img2img = mode != CLI_SAMPLE;
  Options o = { 0 };
  GOptionEntry first[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &o.model,
      "Model file (.safetensors)", "FILE" },
    { "class", 'c', 0, G_OPTION_ARG_STRING, &o.klass,
      "Class: an index or a name from 'diffuse info' (\"none\" = the null "
      "class); default: the null class",
      "C" },
  };
  GOptionEntry img2img_entries[] = {
    { "input", 'i', 0, G_OPTION_ARG_FILENAME, &o.input,
      "Input PNG (converted to the model's channels) or .npy [C,H,W] in "
      "[-1,1]; resized with bilinear filtering when --width/--height "
      "differ",
      "FILE" },
  };
  GOptionEntry inpaint_entries[] = {
    { "input", 'i', 0, G_OPTION_ARG_FILENAME, &o.input,
      "Input PNG (converted to the model's channels) or .npy [C,H,W] in "
      "[-1,1]; its pixels where the mask is black are kept exactly",
      "FILE" },
    { "mask", 0, 0, G_OPTION_ARG_FILENAME, &o.mask,
      "Mask PNG of the input's size: white (or opaque, when it has alpha) = "
      "regenerate, black = keep, grey = a soft edge",
      "FILE" },
    { "margin", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer) on_int_option,
      "Context the model sees around the mask's bounds, in pixels (the "
      "window then grows to at least the model's size); default 16",
      "N" },
  };
  GOptionEntry rest[] = {
    { "null-model", 0, 0, G_OPTION_ARG_FILENAME, &o.null_model,
      "Take eps(null) for guidance from this model (unconditional, or with a "
      "null class; same channels, T and noise schedule), for class models "
      "without a null class such as OpenAI's ImageNet ones",
      "FILE" },
    { "classifier", 0, 0, G_OPTION_ARG_FILENAME, &o.classifier,
      "Classifier guidance: a noisy-image classifier file "
      "(convert_checkpoint.py "
      "--classifier) whose gradient of log p(class | x_t) steers sampling "
      "(with --classifier-scale); needs --class",
      "FILE" },
    { "seed", 0, 0, G_OPTION_ARG_STRING, &o.seed,
      "Random seed (0..2^64-1); default: a random one, printed (also with "
      "--quiet, on stderr) and kept in the PNG's Seed text",
      "N" },
    { "noise", 0, 0, G_OPTION_ARG_FILENAME, &o.noise,
      "Use this .npy [K,C,H,W] as x_T (img2img: as the forward noise) "
      "instead of seeded noise",
      "FILE" },
    { "width", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer) on_int_option,
      "Width in pixels (a multiple of the model's size multiple); default: "
      "the model's image_size (img2img: the input's width)",
      "W" },
    { "height", 0, 0, G_OPTION_ARG_CALLBACK, (gpointer) on_int_option,
      "Height in pixels", "H" },
    { "threads", 't', 0, G_OPTION_ARG_CALLBACK, (gpointer) on_int_option,
      "Threads; default: as many as OpenBLAS would use (OPENBLAS_NUM_THREADS, "
      "else the cores)",
      "N" },
    { "preset", 'p', 0, G_OPTION_ARG_STRING, &o.preset,
      "Apply a preset (see 'diffuse presets') or a .preset file first; "
      "explicit options override it",
      "NAME" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &o.out,
      "Output PNG, named .png (the model's channels: grey, grey+alpha, RGB or "
      "RGBA); with --count K > 1, out.png becomes out-0.png, out-1.png, ...; "
      "written whole or not at all, with --count all files or none",
      "FILE" },
    { "out-npy", 0, 0, G_OPTION_ARG_FILENAME, &o.out_npy,
      "Also write the float samples [K,C,H,W] in [-1,1] as .npy", "FILE" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &o.quiet,
      "No progress or messages, only errors", NULL },
  };
  g_autoptr (GArray) entries = g_array_new (TRUE, TRUE, sizeof (GOptionEntry));
  g_autoptr (GPtrArray) keep = g_ptr_array_new_with_free_func (g_free);
  GOptionGroup *group;
  g_autoptr (GOptionContext) context = g_option_context_new (
      mode == CLI_INPAINT ? "- regenerate the masked part of an image, "
                            "continuing the rest"
      : img2img           ? "- re-imagine an image with a diffusion model"
                          : "- generate images with a diffusion model");
  int status;

  o.strings = g_ptr_array_new_with_free_func (g_free);
  diffuse_sample_params_init (&o.values);
  if (mode == CLI_IMG2IMG)
    g_array_append_vals (entries, img2img_entries,
                         G_N_ELEMENTS (img2img_entries));
  if (mode == CLI_INPAINT)
    g_array_append_vals (entries, inpaint_entries,
                         G_N_ELEMENTS (inpaint_entries));
  g_array_append_vals (entries, first, G_N_ELEMENTS (first));
  add_setting_entries (entries, mode, keep);
  /* inpaint's size is the context window's */
  for (gsize i = 0; i < G_N_ELEMENTS (rest); i++)
    if (mode != CLI_INPAINT || (g_strcmp0 (rest[i].long_name, "width") != 0 &&
                                g_strcmp0 (rest[i].long_name, "height") != 0))
      g_array_append_val (entries, rest[i]);
  /* a main group whose callbacks get &o */
  group = g_option_group_new ("main", "", "", &o, NULL);
  g_option_group_add_entries (group, (GOptionEntry *) entries->data);
  g_option_context_set_main_group (context, group);
  if (!cli_parse (context, &argc, &argv))
    status = CLI_EXIT_USAGE;
  else if (argc > 1)
    status = cli_usage ("unexpected argument '%s'", argv[1]);
  else
    status = run (&o, mode);
  options_clear (&o);
  return status;
}
