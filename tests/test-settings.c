/* The settings table's agreement test (issue 9): for every setting, at
 * and just past each bound, and for nan / inf / values that overflow a
 * float or a double, the engine's validation, the diffuse CLI, a preset
 * file and the plug-in's argument spec all accept or all refuse, and a
 * refusal names the setting.
 *
 *   test-settings PATH/TO/diffuse
 *
 * The model is a small UNet made here with T = 4000 (so that the largest
 * steps value is valid); the CLI runs are real one-step runs on it. */
#include "diffuse-private.h"
#include "args.h"
#include "testutil-safetensors.h"

#include <math.h>
#include <string.h>
#include <sys/wait.h>

#include <glib/gstdio.h>

static const char *diffuse_path;
static gchar *tmp_dir, *model_path, *input_path, *mask_path;

/* What the table says, computed here from its numbers. */
static gboolean
expected (const DiffuseSetting *s, double v)
{
  if (!isfinite (v) || v > s->max)
    return FALSE;
  if (s->type == DIFFUSE_SETTING_INT && v != floor (v))
    return FALSE;
  return (s->flags & DIFFUSE_SETTING_MIN_EXCLUSIVE) ? v > s->min : v >= s->min;
}

static gboolean
engine_accepts (const DiffuseSetting *s, const char *text,
                const DiffuseModel *model, DiffuseSampleParams *out)
{
  g_autoptr (GError) error = NULL;
  DiffuseSampleParams p;

  diffuse_sample_params_init (&p);
  if (!diffuse_setting_parse (s, text, &p, &error))
    {
      g_assert_nonnull (strstr (error->message, s->name));
      return FALSE;
    }
  if (!diffuse_settings_validate (&p, &error))
    {
      g_assert_nonnull (strstr (error->message, s->name));
      g_assert_false (diffuse_sample_params_validate (&p, model, NULL));
      return FALSE;
    }
  g_assert_true (diffuse_sample_params_validate (&p, model, &error));
  g_assert_no_error (error);
  *out = p;
  return TRUE;
}

static gboolean
preset_accepts (const DiffuseSetting *s, const char *text,
                const DiffuseSampleParams *want)
{
  g_autofree gchar *path = g_build_filename (tmp_dir, "t.preset", NULL);
  g_autofree gchar *body = g_strdup_printf ("[preset]\n%s=%s\n", s->name, text);
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffusePreset) p = NULL;

  g_assert_true (g_file_set_contents (path, body, -1, NULL));
  p = diffuse_preset_load_file (path, &error);
  if (p == NULL)
    {
      g_assert_nonnull (strstr (error->message, s->name));
      return FALSE;
    }
  g_assert_true (diffuse_preset_has (p, s->name));
  if (want != NULL)
    {
      g_autofree gchar *a = diffuse_setting_to_string (s, &p->values);
      g_autofree gchar *b = diffuse_setting_to_string (s, want);

      g_assert_cmpstr (a, ==, b);
    }
  return TRUE;
}

static gboolean
cli_accepts (const DiffuseSetting *s, const char *text)
{
  gboolean img2img = (s->flags & DIFFUSE_SETTING_IMG2IMG) != 0;
  gboolean inpaint = (s->flags & DIFFUSE_SETTING_INPAINT) != 0;
  g_autofree gchar *out = g_build_filename (tmp_dir, "out.npy", NULL);
  g_autofree gchar *opt = g_strdup_printf ("--%s=%s", s->name, text);
  const char *argv[16];
  gint argc = 0, status = -1;
  g_autofree gchar *err = NULL;
  g_autoptr (GError) error = NULL;

  argv[argc++] = diffuse_path;
  argv[argc++] = inpaint ? "inpaint" : img2img ? "img2img" : "sample";
  argv[argc++] = "--model";
  argv[argc++] = model_path;
  if (img2img || inpaint)
    {
      argv[argc++] = "--input";
      argv[argc++] = input_path;
    }
  if (inpaint)
    {
      argv[argc++] = "--mask";
      argv[argc++] = mask_path;
    }
  /* one step: runs stay short.  For steps itself, a respacing of one
   * step runs while --steps is still checked against the table (the
   * model's T is checked by engine_accepts) */
  argv[argc++] = strcmp (s->name, "steps") != 0 ? "--steps=1" : "--respacing=1";
  /* the jump must fit in the one step run (the engine's check against
   * the schedule, past the table's range) */
  if (strcmp (s->name, "resample-count") == 0)
    argv[argc++] = "--resample-jump=1";
  argv[argc++] = opt;
  argv[argc++] = "--seed=1";
  argv[argc++] = "--quiet";
  argv[argc++] = "--out-npy";
  argv[argc++] = out;
  argv[argc] = NULL;
  g_assert_true (g_spawn_sync (NULL, (gchar **) argv, NULL,
                               G_SPAWN_STDOUT_TO_DEV_NULL, NULL, NULL, NULL,
                               &err, &status, &error));
  g_assert_no_error (error);
  if (g_spawn_check_wait_status (status, NULL))
    return TRUE;
  /* a refusal: one line naming the setting and quoting the value as given */
  g_test_message ("  CLI: %s", err);
  g_assert_true (g_str_has_prefix (err, "diffuse: "));
  g_assert_nonnull (strstr (err, s->name));
  g_assert_nonnull (strstr (err, text));
  g_assert_cmpint (WEXITSTATUS (status), >=, 1);
  g_assert_cmpint (WEXITSTATUS (status), <=, 2);
  return FALSE;
}

/* The plug-in: its argument spec (GParamSpec bounds: min <= v <= max,
 * which lets nan through) and then its table validation. */
static void
check_plugin (const DiffuseSetting *s, gint index, const char *text, double v,
              gboolean want)
{
  for (DpKind kind = DP_GENERATE; kind <= DP_INPAINT; kind++)
    {
      DpArgSpec specs[32];
      gint n = dp_arg_specs (kind, specs, G_N_ELEMENTS (specs));
      const DpArgSpec *a = NULL;
      gboolean spec_ok, plugin_ok;
      DiffuseSampleParams p;

      for (gint i = 0; i < n; i++)
        if (specs[i].index == index)
          a = &specs[i];
      if (a == NULL)
        continue;
      g_assert_true (a->setting == s);
      g_assert_cmpfloat (a->min, ==, s->min);
      g_assert_cmpfloat (a->max, ==, s->max);
      /* inpaint's strength defaults to 1 (redraw the selection) */
      if (kind == DP_INPAINT && strcmp (s->name, "strength") == 0)
        g_assert_cmpfloat (a->default_value, ==, 1.0);
      else
        g_assert_cmpfloat (a->default_value, ==, s->default_value);
      if (s->type == DIFFUSE_SETTING_ENUM)
        {
          gint k;

          for (k = 0; s->nicks[k] != NULL; k++)
            ;
          g_assert_cmpint (k, ==, (gint) s->max + 1);
          continue;
        }
      /* GParamSpecDouble / Int clamp to [min, max]; a value outside it
       * never reaches the plug-in (the PDB refuses it) */
      spec_ok = !(v < a->min || v > a->max);
      if (s->type == DIFFUSE_SETTING_INT && (v != floor (v) || !isfinite (v)))
        spec_ok = FALSE;
      diffuse_sample_params_init (&p);
      plugin_ok = spec_ok && diffuse_setting_parse (s, text, &p, NULL) &&
                  dp_settings_validate (kind, &p, NULL);
      g_assert_cmpint (plugin_ok, ==, want);
      /* the spec itself differs from the table only at an exclusive bound
       * (strength 0) and for nan, both refused by the validation */
      if (spec_ok != want)
        g_assert_true (
            isnan (v) ||
            ((s->flags & DIFFUSE_SETTING_MIN_EXCLUSIVE) && v == s->min));
    }
}

static void
check_value (const DiffuseSetting *s, gint index, const DiffuseModel *model,
             const char *text, double v)
{
  gboolean want = s->type == DIFFUSE_SETTING_ENUM ? FALSE : expected (s, v);
  DiffuseSampleParams parsed;
  gboolean got;

  if (s->type == DIFFUSE_SETTING_ENUM)
    for (gint k = 0; s->nicks[k] != NULL; k++)
      want |= strcmp (s->nicks[k], text) == 0;
  g_test_message ("%s = %s: %s", s->name, text, want ? "accepted" : "refused");

  got = engine_accepts (s, text, model, &parsed);
  g_assert_cmpint (got, ==, want);
  if (s->flags & DIFFUSE_SETTING_PRESET)
    g_assert_cmpint (preset_accepts (s, text, want ? &parsed : NULL), ==, want);
  if (s->flags & DIFFUSE_SETTING_CLI)
    g_assert_cmpint (cli_accepts (s, text), ==, want);
  if (s->flags & DIFFUSE_SETTING_PLUGIN)
    check_plugin (s, index, text, v, want);
}

static void
test_agreement (gconstpointer data)
{
  gint index = GPOINTER_TO_INT (data);
  const DiffuseSetting *s = &diffuse_settings (NULL)[index];
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model =
      diffuse_model_new_from_file (model_path, &error);

  g_assert_no_error (error);
  if (s->type == DIFFUSE_SETTING_ENUM)
    {
      for (gint k = 0; s->nicks[k] != NULL; k++)
        check_value (s, index, model, s->nicks[k], k);
      check_value (s, index, model, "bogus", NAN);
      check_value (s, index, model, "", NAN);
      return;
    }
  if (s->type == DIFFUSE_SETTING_STRING)
    {
      /* respacing: any text passes the table; the model checks it */
      DiffuseSampleParams p;

      diffuse_sample_params_init (&p);
      g_assert_true (diffuse_setting_parse (s, "ddim7x", &p, NULL));
      g_assert_true (diffuse_setting_check (s, &p, NULL));
      g_assert_false (diffuse_sample_params_validate (&p, model, NULL));
      g_assert_false (cli_accepts (s, "ddim7x"));
      g_assert_true (cli_accepts (s, "ddim2"));
      return;
    }

  {
    double lo = s->min, hi = s->max;
    double below =
        s->type == DIFFUSE_SETTING_INT ? lo - 1 : nextafter (lo, -INFINITY);
    double above =
        s->type == DIFFUSE_SETTING_INT ? hi + 1 : nextafter (hi, INFINITY);
    double values[] = { lo, hi, below, above, (lo + hi) / 2 };

    for (gsize i = 0; i < G_N_ELEMENTS (values); i++)
      {
        gchar text[64];

        if (s->type == DIFFUSE_SETTING_INT)
          g_snprintf (text, sizeof text, "%.0f", floor (values[i]));
        else
          g_ascii_formatd (text, sizeof text, "%.17g", values[i]);
        check_value (s, index, model, text,
                     s->type == DIFFUSE_SETTING_INT ? floor (values[i])
                                                    : values[i]);
      }
    check_value (s, index, model, "nan", NAN);
    check_value (s, index, model, "inf", INFINITY);
    check_value (s, index, model, "-inf", -INFINITY);
    if (s->type == DIFFUSE_SETTING_DOUBLE)
      {
        check_value (s, index, model, "1e39", 1e39); /* overflows a float */
        check_value (s, index, model, "1e999",
                     INFINITY); /* overflows a double */
        check_value (s, index, model, "0x1p-1", 0.5);
      }
    else
      check_value (s, index, model, "99999999999", 99999999999.0);
    check_value (s, index, model, "abc", NAN);
  }
}

/* The defaults: the engine's, the plug-in's, and what --help says
 * (img2img's; inpaint's for the inpainting settings). */
static void
test_defaults (void)
{
  gint n;
  const DiffuseSetting *table = diffuse_settings (&n);
  DiffuseSampleParams p;
  const char *argv[] = { diffuse_path, "img2img", "--help", NULL };
  const char *argv_inpaint[] = { diffuse_path, "inpaint", "--help", NULL };
  g_autofree gchar *img2img_help = NULL, *inpaint_help = NULL;

  g_assert_true (g_spawn_sync (NULL, (gchar **) argv, NULL,
                               G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                               &img2img_help, NULL, NULL, NULL));
  g_assert_true (g_spawn_sync (NULL, (gchar **) argv_inpaint, NULL,
                               G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL,
                               &inpaint_help, NULL, NULL, NULL));
  diffuse_sample_params_init (&p);
  for (gint i = 0; i < n; i++)
    {
      const DiffuseSetting *s = &table[i];
      g_autofree gchar *value = diffuse_setting_to_string (s, &p);
      g_autofree gchar *range = diffuse_setting_describe_range (s);
      g_autofree gchar *option =
          g_strdup_printf ("--%s=%s", s->name, s->metavar);
      const char *line;

      g_assert_nonnull (diffuse_setting_find (s->name, NULL));
      g_assert_true (diffuse_setting_check (s, &p, NULL));
      if (s->type == DIFFUSE_SETTING_STRING)
        {
          g_assert_null (value);
          continue;
        }
      if (s->type == DIFFUSE_SETTING_ENUM)
        g_assert_cmpstr (value, ==, s->nicks[(gint) s->default_value]);
      line = strstr ((s->flags & DIFFUSE_SETTING_INPAINT) ? inpaint_help
                                                          : img2img_help,
                     option);
      g_assert_nonnull (line);
      g_assert_nonnull (strstr (line, range));
      {
        g_autofree gchar *def = g_strdup_printf ("default %s", value);

        g_assert_nonnull (strstr (line, def));
      }
    }
}

/* The plug-in's guidance argument (issue 13): its default is the table's
 * (2, the best measured), and that default counts as "not given" so that
 * it is fitted to the model (0 without a null class); any other value, or
 * a preset's, counts as given and is kept. */
static void
test_plugin_guidance_default (void)
{
  gint guidance_index;
  const DiffuseSetting *w = diffuse_setting_find ("guidance", &guidance_index);
  DiffuseSettingsMask bit = 1u << guidance_index;

  g_assert_true (w->flags & DIFFUSE_SETTING_GUIDED_DEFAULT);
  for (DpKind kind = DP_GENERATE; kind <= DP_INPAINT; kind++)
    {
      DiffuseSampleParams p;
      DiffuseSettingsMask all = dp_arg_mask (kind);

      diffuse_sample_params_init (&p);
      if (!(all & bit))
        {
          /* the sweep has its own list of values */
          g_assert_cmpint (kind, ==, DP_SWEEP);
          g_assert_cmpuint (dp_args_given (kind, &p, 0), ==, all);
          continue;
        }
      g_assert_cmpfloat (p.guidance, ==, w->default_value);
      g_assert_cmpuint (dp_args_given (kind, &p, 0), ==, all & ~bit);
      g_assert_cmpuint (dp_args_given (kind, &p, bit), ==, all);
      p.guidance = 0.0;
      g_assert_cmpuint (dp_args_given (kind, &p, 0), ==, all);
      p.guidance = 1.0;
      g_assert_cmpuint (dp_args_given (kind, &p, 0), ==, all);
    }
}

/* A preset written by the plug-in's "Save as..." path (every setting of
 * its procedure) reads back through the CLI's `diffuse presets`. */
static void
test_shared_folder (void)
{
  g_autofree gchar *dir = g_build_filename (tmp_dir, "user", NULL);
  g_autofree gchar *path = g_build_filename (dir, "mine.preset", NULL);
  g_autoptr (DiffusePreset) p = diffuse_preset_new ("mine", "saved by a test");
  g_autofree gchar *out = NULL;
  const char *argv[] = { diffuse_path, "presets", NULL };
  g_auto (GStrv) envp = g_environ_setenv (
      g_get_environ (), "DIFFUSE_USER_PRESETS_DIR", dir, TRUE);
  DpArgSpec specs[32];
  gint n = dp_arg_specs (DP_IMG2IMG, specs, G_N_ELEMENTS (specs));

  g_assert_cmpint (g_mkdir_with_parents (dir, 0700), ==, 0);
  for (gint i = 0; i < n; i++)
    if (specs[i].setting->flags & DIFFUSE_SETTING_PRESET)
      p->given |= 1u << specs[i].index;
  p->values.steps = 33;
  p->values.strength = 0.25;
  g_assert_true (diffuse_preset_save_file (p, path, NULL));
  g_assert_true (g_spawn_sync (NULL, (gchar **) argv, envp,
                               G_SPAWN_STDERR_TO_DEV_NULL, NULL, NULL, &out,
                               NULL, NULL, NULL));
  g_test_message ("%s", out);
  g_assert_nonnull (strstr (out, "mine "));
  g_assert_nonnull (strstr (out, "steps=33"));
  g_assert_nonnull (strstr (out, "strength=0.25"));
  g_unlink (path);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  DiffuseModelConfig cfg;
  g_autoptr (TestSt) b = test_st_new ();
  gint n, status;
  const DiffuseSetting *table = diffuse_settings (&n);
  float input[1 * 8 * 8];
  const gint64 shape[3] = { 1, 8, 8 };

  g_test_init (&argc, &argv, NULL);
  g_assert_cmpint (argc, ==, 2);
  diffuse_path = argv[1];

  tmp_dir = g_dir_make_tmp ("diffuse-settings-XXXXXX", NULL);
  test_unet_config_init (&cfg);
  cfg.image_size = 8;
  cfg.diffusion_steps = 4000;
  test_unet_set_metadata (b, &cfg);
  test_unet_add_tensors (b, &cfg);
  model_path = test_st_write_temp (b);
  input_path = g_build_filename (tmp_dir, "in.npy", NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (input); i++)
    input[i] = (float) i / G_N_ELEMENTS (input) - 0.5f;
  g_assert_true (diffuse_npy_save (input_path, input, 3, shape, NULL));
  /* inpaint's mask: the right half of the 8 x 8 input */
  mask_path = g_build_filename (tmp_dir, "mask.png", NULL);
  for (gsize i = 0; i < G_N_ELEMENTS (input); i++)
    input[i] = i % 8 >= 4 ? 1.0f : -1.0f;
  g_assert_true (diffuse_png_save (mask_path, input, 1, 8, 8, NULL));
  /* the user's own folder must not leak into the CLI runs */
  g_setenv ("DIFFUSE_USER_PRESETS_DIR", tmp_dir, TRUE);

  for (gint i = 0; i < n; i++)
    {
      g_autofree gchar *name =
          g_strdup_printf ("/settings/agree/%s", table[i].name);

      g_test_add_data_func (name, GINT_TO_POINTER (i), test_agreement);
    }
  g_test_add_func ("/settings/defaults", test_defaults);
  g_test_add_func ("/settings/plugin-guidance-default",
                   test_plugin_guidance_default);
  g_test_add_func ("/settings/shared-folder", test_shared_folder);
  status = g_test_run ();

  g_unlink (model_path);
  g_unlink (input_path);
  g_unlink (mask_path);
  {
    g_autofree gchar *o = g_build_filename (tmp_dir, "out.npy", NULL);
    g_autofree gchar *t = g_build_filename (tmp_dir, "t.preset", NULL);

    g_unlink (o);
    g_unlink (t);
  }
  g_rmdir (tmp_dir);
  return status;
}
