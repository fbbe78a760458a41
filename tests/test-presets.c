/* Presets: the shipped files, applying, saving, overriding, bad files. */
#include "diffuse.h"

#include <math.h>
#include <string.h>

#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#define HAS(p, key) diffuse_preset_has ((p), #key)

static gchar *
source_presets_dir (void)
{
  const char *root = g_getenv ("DIFFUSE_SOURCE_ROOT");

  g_assert_nonnull (root);
  return g_build_filename (root, "presets", NULL);
}

static const DiffusePreset *
find (GPtrArray *presets, const char *name)
{
  for (guint i = 0; i < presets->len; i++)
    if (strcmp (((DiffusePreset *) presets->pdata[i])->name, name) == 0)
      return presets->pdata[i];
  g_error ("preset %s not found", name);
  return NULL;
}

static void
write_file (const char *path, const char *text)
{
  g_autoptr (GError) error = NULL;

  g_file_set_contents (path, text, -1, &error);
  g_assert_no_error (error);
}

/* The six shipped presets, with the settings the project promises (the
 * values measured best: presets/README.md). */
static void
test_shipped (void)
{
  g_autofree gchar *dir = source_presets_dir ();
  const char *dirs[] = { dir, NULL };
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) presets = diffuse_presets_load_dirs (dirs, warnings);
  const DiffusePreset *p;

  g_assert_cmpuint (warnings->len, ==, 0);
  g_assert_cmpuint (presets->len, ==, 6);
  for (guint i = 1; i < presets->len; i++)
    g_assert_cmpstr (((DiffusePreset *) presets->pdata[i - 1])->name, <,
                     ((DiffusePreset *) presets->pdata[i])->name);
  for (guint i = 0; i < presets->len; i++)
    g_assert_cmpstr (((DiffusePreset *) presets->pdata[i])->description, !=,
                     "");

  /* every noise-to-image preset is stochastic DDIM (eta 1): eta 0 gives
   * blown-out white squares with the shipped models */
  p = find (presets, "draft");
  g_assert_true (HAS (p, sampler) && p->values.sampler == DIFFUSE_SAMPLER_DDIM);
  g_assert_true (HAS (p, steps) && p->values.steps == 10);
  g_assert_true (HAS (p, eta) && HAS (p, guidance));
  g_assert_cmpfloat (p->values.eta, ==, 1.0);
  g_assert_cmpfloat (p->values.guidance, ==, 0.0);
  g_assert_false (HAS (p, strength));

  p = find (presets, "balanced");
  g_assert_true (HAS (p, sampler) && p->values.sampler == DIFFUSE_SAMPLER_DDIM);
  g_assert_true (HAS (p, steps) && p->values.steps == 50);
  g_assert_true (HAS (p, eta) && HAS (p, guidance));
  g_assert_cmpfloat (p->values.eta, ==, 1.0);
  g_assert_cmpfloat (p->values.guidance, ==, 2.0);

  p = find (presets, "faithful-to-class");
  g_assert_true (HAS (p, steps) && p->values.steps == 50);
  g_assert_true (HAS (p, eta) && HAS (p, guidance));
  g_assert_cmpfloat (p->values.eta, ==, 1.0);
  g_assert_cmpfloat (p->values.guidance, ==, 4.0);

  p = find (presets, "diverse");
  g_assert_true (HAS (p, sampler) && p->values.sampler == DIFFUSE_SAMPLER_DDIM);
  g_assert_true (HAS (p, eta) && HAS (p, guidance));
  g_assert_cmpfloat (p->values.eta, ==, 1.0);
  g_assert_cmpfloat (p->values.guidance, ==, 0.0);

  p = find (presets, "img2img-light");
  g_assert_true (HAS (p, strength));
  g_assert_cmpfloat (p->values.strength, ==, 0.3);
  g_assert_false (HAS (p, steps) || HAS (p, sampler) || HAS (p, guidance));

  p = find (presets, "img2img-strong");
  g_assert_true (HAS (p, strength));
  g_assert_cmpfloat (p->values.strength, ==, 0.7);
}

static DiffuseModel *
golden_model (const char *name)
{
  const char *data = g_getenv ("DIFFUSE_TEST_DATA");
  g_autofree gchar *path = NULL;
  g_autoptr (GError) error = NULL;
  DiffuseModel *model;

  g_assert_nonnull (data);
  path = g_build_filename (data, "golden", name, NULL);
  model = diffuse_model_new_from_file (path, &error);
  g_assert_no_error (error);
  return model;
}

/* The defaults are the best measured settings, the shipped "balanced"
 * (issue 13): with a model that has a null class, every setting balanced
 * sets equals the default fitted to the model; with a model without one
 * (a class model without a null class, an unconditional model) the same
 * except guidance 0, so the defaults sample with every model.  A value
 * given is never fitted. */
static void
test_defaults_are_balanced (void)
{
  g_autofree gchar *dir = source_presets_dir ();
  g_autofree gchar *path = g_build_filename (dir, "balanced.preset", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffusePreset) balanced = diffuse_preset_load_file (path, &error);
  g_autoptr (DiffuseModel) with_null =
      golden_model ("forward-grey-cond.safetensors");
  g_autoptr (DiffuseModel) without_null =
      golden_model ("forward-onelevel.safetensors");
  g_autoptr (DiffuseModel) uncond =
      golden_model ("forward-rgb-uncond.safetensors");
  const DiffuseModel *models[] = { with_null, without_null, uncond };
  gint n, guidance_index;
  const DiffuseSetting *table = diffuse_settings (&n);
  DiffusePreset *empty;
  DiffuseSampleParams p;

  g_assert_no_error (error);
  g_assert_nonnull (diffuse_setting_find ("guidance", &guidance_index));
  /* balanced sets the sampling settings the defaults are about */
  g_assert_true (HAS (balanced, sampler) && HAS (balanced, steps) &&
                 HAS (balanced, eta) && HAS (balanced, guidance));
  g_assert_cmpfloat (balanced->values.guidance, >, 0.0);
  g_assert_true (diffuse_model_can_guide (with_null, NULL));
  g_assert_false (diffuse_model_can_guide (without_null, NULL));
  g_assert_false (diffuse_model_can_guide (uncond, NULL));
  /* with a separate null model a class model without a null class can */
  g_assert_true (diffuse_model_can_guide (without_null, uncond));

  for (gsize m = 0; m < G_N_ELEMENTS (models); m++)
    {
      gboolean can = diffuse_model_can_guide (models[m], NULL);

      diffuse_sample_params_init (&p);
      diffuse_settings_fit_model (&p, 0, models[m]);
      for (gint i = 0; i < n; i++)
        {
          g_autofree gchar *want = NULL, *got = NULL;

          if (!(balanced->given & (1u << i)))
            continue;
          want = diffuse_setting_to_string (&table[i], &balanced->values);
          got = diffuse_setting_to_string (&table[i], &p);
          if (i == guidance_index && !can)
            g_assert_cmpstr (got, ==, "0");
          else
            g_assert_cmpstr (got, ==, want);
        }
      /* and they sample with this model: nothing to refuse */
      if (diffuse_model_get_config (models[m])->num_classes > 0)
        p.class_label = 0;
      g_assert_true (diffuse_sample_params_validate (&p, models[m], &error));
      g_assert_no_error (error);
    }

  /* a null model makes guidance possible: the default w comes back */
  diffuse_sample_params_init (&p);
  p.null_model = uncond;
  diffuse_settings_fit_model (&p, 0, without_null);
  g_assert_cmpfloat (p.guidance, ==, balanced->values.guidance);

  /* a value given is kept: w = 0 with a null class ... */
  diffuse_sample_params_init (&p);
  p.guidance = 0.0;
  diffuse_settings_fit_model (&p, 1u << guidance_index, with_null);
  g_assert_cmpfloat (p.guidance, ==, 0.0);
  /* ... and w = 3 without one, which validation then refuses clearly */
  diffuse_sample_params_init (&p);
  p.guidance = 3.0;
  p.class_label = 1;
  diffuse_settings_fit_model (&p, 1u << guidance_index, without_null);
  g_assert_cmpfloat (p.guidance, ==, 3.0);
  g_assert_false (diffuse_sample_params_validate (&p, without_null, &error));
  g_assert_nonnull (strstr (error->message, "no null class"));
  g_clear_error (&error);

  /* a preset's keys count as given: diverse's w = 0 stays 0 */
  {
    g_autofree gchar *dpath = g_build_filename (dir, "diverse.preset", NULL);
    g_autoptr (DiffusePreset) diverse =
        diffuse_preset_load_file (dpath, &error);

    g_assert_no_error (error);
    diffuse_sample_params_init (&p);
    diffuse_preset_apply (diverse, &p);
    diffuse_settings_fit_model (&p, diverse->given, with_null);
    g_assert_cmpfloat (p.guidance, ==, 0.0);
    /* a preset without a guidance key gets the fitted default */
    empty = diffuse_preset_new ("no-keys", NULL);
    diffuse_sample_params_init (&p);
    diffuse_preset_apply (empty, &p);
    diffuse_settings_fit_model (&p, empty->given, without_null);
    g_assert_cmpfloat (p.guidance, ==, 0.0);
    diffuse_settings_fit_model (&p, empty->given, with_null);
    g_assert_cmpfloat (p.guidance, ==, balanced->values.guidance);
    diffuse_preset_free (empty);
  }
}

/* A preset with the named settings given, values from text. */
static DiffusePreset *
make (const char *name, const char *const *kv)
{
  DiffusePreset *p = diffuse_preset_new (name, NULL);

  for (; kv[0] != NULL; kv += 2)
    {
      gint index;
      const DiffuseSetting *s = diffuse_setting_find (kv[0], &index);

      g_assert_nonnull (s);
      g_assert_true (diffuse_setting_parse (s, kv[1], &p->values, NULL));
      p->given |= 1u << index;
    }
  return p;
}

/* Only the fields a preset has change. */
static void
test_apply (void)
{
  static const char *const partial_kv[] = { "guidance", "2.5", "strength",
                                            "0.4", NULL };
  static const char *const full_kv[] = { "sampler",  "ddpm",        "steps",
                                         "77",       "eta",         "0.5",
                                         "variance", "fixed-small", NULL };
  g_autoptr (DiffusePreset) partial = make ("p", partial_kv);
  g_autoptr (DiffusePreset) full = make ("f", full_kv);
  DiffuseSampleParams params;

  memset (&params, 0, sizeof params);
  params.sampler = DIFFUSE_SAMPLER_DDIM;
  params.steps = 13;
  params.eta = 0.25;
  params.variance = DIFFUSE_VARIANCE_FIXED_LARGE;
  params.guidance = 7.0;
  params.strength = 1.0;
  params.seed = 99;

  diffuse_preset_apply (partial, &params);
  g_assert_cmpint (params.sampler, ==, DIFFUSE_SAMPLER_DDIM);
  g_assert_cmpint (params.steps, ==, 13);
  g_assert_cmpfloat (params.eta, ==, 0.25);
  g_assert_cmpint (params.variance, ==, DIFFUSE_VARIANCE_FIXED_LARGE);
  g_assert_cmpfloat (params.guidance, ==, 2.5);
  g_assert_cmpfloat (params.strength, ==, 0.4);

  diffuse_preset_apply (full, &params);
  g_assert_cmpint (params.sampler, ==, DIFFUSE_SAMPLER_DDPM);
  g_assert_cmpint (params.steps, ==, 77);
  g_assert_cmpfloat (params.eta, ==, 0.5);
  g_assert_cmpint (params.variance, ==, DIFFUSE_VARIANCE_FIXED_SMALL);
  g_assert_cmpfloat (params.guidance, ==, 2.5);
  g_assert_cmpfloat (params.strength, ==, 0.4);
  g_assert_cmpuint (params.seed, ==, 99);
}

static void
assert_presets_equal (const DiffusePreset *a, const DiffusePreset *b)
{
  gint n;
  const DiffuseSetting *table = diffuse_settings (&n);

  g_assert_cmpstr (a->name, ==, b->name);
  g_assert_cmpstr (a->description ? a->description : "", ==,
                   b->description ? b->description : "");
  g_assert_cmphex (a->given, ==, b->given);
  for (gint i = 0; i < n; i++)
    if (a->given & (1u << i))
      {
        g_autofree gchar *va =
            diffuse_setting_to_string (&table[i], &a->values);
        g_autofree gchar *vb =
            diffuse_setting_to_string (&table[i], &b->values);

        /* exact: the shortest text that reads back is unique */
        g_assert_cmpstr (va, ==, vb);
      }
}

/* A user's preset survives save + load, for every subset of the preset
 * settings of the table. */
static void
test_save_round_trip (void)
{
  g_autofree gchar *dir = g_dir_make_tmp ("diffuse-presets-XXXXXX", NULL);
  g_autofree gchar *path = g_build_filename (dir, "mine.preset", NULL);
  gint n;
  const DiffuseSetting *table = diffuse_settings (&n);
  DiffuseSettingsMask preset_bits = 0;

  for (gint i = 0; i < n; i++)
    if (table[i].flags & DIFFUSE_SETTING_PRESET)
      preset_bits |= 1u << i;

  for (guint mask = 0; mask < 64; mask++)
    {
      g_autoptr (DiffusePreset) p =
          diffuse_preset_new ("my own = settings; #1", NULL);
      g_autoptr (DiffusePreset) back = NULL;
      g_autoptr (GError) error = NULL;
      guint bit = 0;

      g_free (p->description);
      p->description =
          g_strdup (mask & 1 ? "Description with\nnewline, ü and \\" : "");
      /* the k-th preset setting is given when bit k of mask is set */
      for (gint i = 0; i < n; i++)
        if (preset_bits & (1u << i))
          {
            if (mask & (1u << bit))
              p->given |= 1u << i;
            bit++;
          }
      p->values.sampler =
          mask & 2 ? DIFFUSE_SAMPLER_DDPM : DIFFUSE_SAMPLER_DDIM;
      p->values.steps = 1 + mask * 7;
      p->values.eta = 0.1 * (mask % 64) + 1e-13;
      p->values.guidance = 1.0 / 3.0 + mask;
      p->values.strength = 0.3 + 0.01 * (mask % 50);
      p->values.variance =
          (DiffuseVarianceKind) (mask % DIFFUSE_VARIANCE_COUNT);

      g_assert_true (diffuse_preset_save_file (p, path, &error));
      g_assert_no_error (error);
      back = diffuse_preset_load_file (path, &error);
      g_assert_no_error (error);
      assert_presets_equal (p, back);
    }

  {
    g_autoptr (DiffusePreset) nameless = diffuse_preset_new (NULL, NULL);
    g_autoptr (DiffusePreset) escape =
        diffuse_preset_new ("a\033[31mred", NULL);
    g_autoptr (GError) error = NULL;

    g_assert_false (diffuse_preset_save_file (nameless, path, &error));
    g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
    g_clear_error (&error);
    g_assert_false (diffuse_preset_save_file (escape, path, &error));
    g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  }
  g_unlink (path);
  g_rmdir (dir);
}

/* A later directory's preset replaces an earlier one of the same name;
 * missing directories are skipped; the name defaults to the file name. */
static void
test_override (void)
{
  g_autofree gchar *system = source_presets_dir ();
  g_autofree gchar *user = g_dir_make_tmp ("diffuse-presets-XXXXXX", NULL);
  g_autofree gchar *a = g_build_filename (user, "zz-my-draft.preset", NULL);
  g_autofree gchar *b = g_build_filename (user, "unnamed.preset", NULL);
  g_autofree gchar *c = g_build_filename (user, "ignored.txt", NULL);
  const char *dirs[] = { "/nonexistent/presets", system, user, NULL };
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) presets = NULL;
  const DiffusePreset *p;

  write_file (a, "[preset]\nname=draft\nsteps=20\n");
  write_file (
      b, "# comment\n[preset]\nguidance=3\ndescription[de]=Beschreibung\n");
  write_file (c, "not a preset");

  presets = diffuse_presets_load_dirs (dirs, warnings);
  g_assert_cmpuint (warnings->len, ==, 0);
  g_assert_cmpuint (presets->len, ==,
                    7); /* 6 shipped (draft replaced) + unnamed */
  p = find (presets, "draft");
  g_assert_true (HAS (p, steps) && p->values.steps == 20);
  g_assert_false (HAS (p, sampler));
  p = find (presets, "unnamed");
  g_assert_true (HAS (p, guidance));
  g_assert_cmpfloat (p->values.guidance, ==, 3.0);

  g_unlink (a);
  g_unlink (b);
  g_unlink (c);
  g_rmdir (user);
}

static void
test_bad_files (void)
{
  static const struct
  {
    const char *text;
    const char *word; /* expected in the message */
  } cases[] = {
    { "[preset]\nstpes=10\n", "stpes" },
    { "[preset]\nsampler=euler\n", "sampler" },
    { "[preset]\nvariance=big\n", "variance" },
    { "[preset]\nsteps=0\n", "steps" },
    { "[preset]\nsteps=ten\n", "steps" },
    { "[preset]\nsteps=-5\n", "steps" },
    { "[preset]\nsteps=1000001\n", "steps" },
    { "[preset]\nsteps=4001\n", "steps" },
    { "[preset]\ncount=2\n", "count" },
    { "[preset]\neta=10.0000001\n",
      "eta = 10.0000001 is out of range (0..10)" },
    { "[preset]\neta=1e999\n", "not a finite number" },
    { "[preset]\nguidance=-0.5\n", "guidance" },
    { "[preset]\nguidance=100.5\n", "guidance" },
    { "[preset]\nname=bad\x1b[2Jname\n", "control characters" },
    { "[preset]\neta=-1\n", "eta" },
    { "[preset]\neta=abc\n", "eta" },
    { "[preset]\nguidance=nan\n", "guidance" },
    { "[preset]\nguidance=inf\n", "guidance" },
    { "[preset]\nguidance=1.5x\n", "guidance" },
    { "[preset]\nstrength=0\n", "strength" },
    { "[preset]\nstrength=1.5\n", "strength" },
    { "[other]\nsteps=10\n", "[preset]" },
    { "this is not a key file\n", "bad.preset" },
    { "", "[preset]" },
  };
  g_autofree gchar *dir = g_dir_make_tmp ("diffuse-presets-XXXXXX", NULL);
  g_autofree gchar *path = g_build_filename (dir, "bad.preset", NULL);

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      const char *dirs[] = { dir, NULL };
      DiffusePreset *p;
      GPtrArray *all;

      write_file (path, cases[i].text);
      p = diffuse_preset_load_file (path, &error);
      g_assert_null (p);
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
      g_test_message ("%s", error->message);
      g_assert_nonnull (strstr (error->message, path));
      g_assert_nonnull (strstr (error->message, cases[i].word));
      g_clear_error (&error);

      /* one bad file is skipped with a warning naming it; the folder's
       * good files still load */
      {
        g_autofree gchar *good = g_build_filename (dir, "good.preset", NULL);
        g_autoptr (GPtrArray) warnings =
            g_ptr_array_new_with_free_func (g_free);

        write_file (good, "[preset]\nsteps=7\n");
        all = diffuse_presets_load_dirs (dirs, warnings);
        g_assert_cmpuint (all->len, ==, 1);
        g_assert_cmpstr (((DiffusePreset *) all->pdata[0])->name, ==, "good");
        g_assert_cmpuint (warnings->len, ==, 1);
        g_assert_nonnull (strstr (warnings->pdata[0], path));
        g_ptr_array_unref (all);
        g_unlink (good);
      }
    }
  g_unlink (path);

  {
    g_autoptr (GError) error = NULL;

    g_assert_null (diffuse_preset_load_file (path, &error));
    g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
  }
  g_rmdir (dir);
}

/* Hostile entries in a preset folder: each is refused on its own without
 * hanging or reading without bound, and skipped with a warning naming it
 * when the folder is loaded (issue 10). */
static void
test_hostile_files (void)
{
  g_autofree gchar *dir = g_dir_make_tmp ("diffuse-presets-XXXXXX", NULL);
  g_autofree gchar *fifo = g_build_filename (dir, "fifo.preset", NULL);
  g_autofree gchar *big = g_build_filename (dir, "big.preset", NULL);
  g_autofree gchar *folder = g_build_filename (dir, "folder.preset", NULL);
  g_autofree gchar *loop = g_build_filename (dir, "loop.preset", NULL);
  g_autofree gchar *shadow = g_build_filename (dir, "shadow.preset", NULL);
  g_autofree gchar *good = g_build_filename (dir, "good.preset", NULL);
  const char *bad[] = { fifo, big, folder, loop, shadow };
  const char *dirs[] = { dir, NULL };
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) all = NULL;
  GString *huge = g_string_new ("[preset]\n");

  g_assert_cmpint (mkfifo (fifo, 0600), ==, 0);
  while (huge->len <= DIFFUSE_PRESET_MAX_BYTES)
    g_string_append (huge, "# padding padding padding padding padding\n");
  write_file (big, huge->str);
  g_string_free (huge, TRUE);
  g_assert_cmpint (g_mkdir (folder, 0700), ==, 0);
  g_assert_cmpint (symlink ("loop.preset", loop), ==, 0);
  write_file (shadow, "root:$6$secretHASH$xyz:19000:0:99999:7:::\n");
  write_file (good, "[preset]\nsteps=7\n");

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      g_autoptr (GError) error = NULL;

      g_assert_null (diffuse_preset_load_file (bad[i], &error));
      g_assert_nonnull (error);
      g_test_message ("%s", error->message);
      g_assert_nonnull (strstr (error->message, bad[i]));
      g_assert_null (strstr (error->message, "secretHASH"));
      g_assert_null (strstr (error->message, "root:"));
    }

  all = diffuse_presets_load_dirs (dirs, warnings);
  g_assert_cmpuint (all->len, ==, 1);
  g_assert_cmpuint (warnings->len, ==, G_N_ELEMENTS (bad));
  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    {
      gboolean named = FALSE;

      for (guint j = 0; j < warnings->len; j++)
        named |= strstr (warnings->pdata[j], bad[i]) != NULL;
      g_assert_true (named);
    }

  /* saving over a FIFO or a folder is refused; over a file it replaces it
   * through a temporary file (nothing else left in the folder) */
  {
    g_autoptr (DiffusePreset) p = diffuse_preset_new ("mine", NULL);
    g_autoptr (GError) error = NULL;
    g_autoptr (GDir) d = NULL;
    const char *entry;
    guint n_entries = 0;

    g_assert_false (diffuse_preset_save_file (p, fifo, &error));
    g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
    g_clear_error (&error);
    g_assert_false (diffuse_preset_save_file (p, folder, &error));
    g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
    g_clear_error (&error);
    g_assert_true (diffuse_preset_save_file (p, good, &error));
    g_assert_no_error (error);
    d = g_dir_open (dir, 0, NULL);
    while ((entry = g_dir_read_name (d)) != NULL)
      n_entries++;
    g_assert_cmpuint (n_entries, ==, 6);
  }

  for (gsize i = 0; i < G_N_ELEMENTS (bad); i++)
    if (bad[i] == folder)
      g_rmdir (bad[i]);
    else
      g_unlink (bad[i]);
  g_unlink (good);
  g_rmdir (dir);
}

/* Names with control characters are refused; escaping for printing. */
static void
test_escape (void)
{
  g_autofree gchar *a = diffuse_text_escape ("plain ü");
  g_autofree gchar *b = diffuse_text_escape ("a\033[2Jb\\c\x7f\xc2\x9b\xff");

  g_assert_cmpstr (a, ==, "plain ü");
  g_assert_cmpstr (b, ==, "a\\x1b[2Jb\\\\c\\x7f\\x9b\\xff");
}

/* The user's folder: DIFFUSE_USER_PRESETS_DIR, else
 * $XDG_CONFIG_HOME/gimp-diffusion/presets. */
static void
test_user_dir (void)
{
  g_autofree gchar *saved = g_strdup (g_getenv ("DIFFUSE_USER_PRESETS_DIR"));
  g_autofree gchar *dir = NULL, *want = NULL;

  g_setenv ("DIFFUSE_USER_PRESETS_DIR", "/some/presets", TRUE);
  dir = diffuse_presets_user_dir ();
  g_assert_cmpstr (dir, ==, "/some/presets");
  g_clear_pointer (&dir, g_free);
  g_unsetenv ("DIFFUSE_USER_PRESETS_DIR");
  dir = diffuse_presets_user_dir ();
  want = g_build_filename (g_get_user_config_dir (), "gimp-diffusion",
                           "presets", NULL);
  g_assert_cmpstr (dir, ==, want);
  if (saved != NULL)
    g_setenv ("DIFFUSE_USER_PRESETS_DIR", saved, TRUE);
}

/* The environment variable wins; without it the directory exists (the
 * installed one, or the source tree's for an uninstalled build) and holds
 * the shipped presets. */
static void
test_system_dir (void)
{
  g_autofree gchar *saved = g_strdup (g_getenv ("DIFFUSE_PRESETS_DIR"));
  g_autofree gchar *balanced = NULL;

  g_setenv ("DIFFUSE_PRESETS_DIR", "/some/where/else", TRUE);
  g_assert_cmpstr (diffuse_presets_system_dir (), ==, "/some/where/else");

  g_unsetenv ("DIFFUSE_PRESETS_DIR");
  balanced =
      g_build_filename (diffuse_presets_system_dir (), "balanced.preset", NULL);
  g_test_message ("system dir without the variable: %s",
                  diffuse_presets_system_dir ());
  g_assert_true (g_file_test (balanced, G_FILE_TEST_IS_REGULAR));

  if (saved != NULL)
    g_setenv ("DIFFUSE_PRESETS_DIR", saved, TRUE);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/presets/shipped", test_shipped);
  g_test_add_func ("/presets/defaults-are-balanced",
                   test_defaults_are_balanced);
  g_test_add_func ("/presets/apply", test_apply);
  g_test_add_func ("/presets/save-round-trip", test_save_round_trip);
  g_test_add_func ("/presets/override", test_override);
  g_test_add_func ("/presets/bad-files", test_bad_files);
  g_test_add_func ("/presets/system-dir", test_system_dir);
  g_test_add_func ("/presets/hostile-files", test_hostile_files);
  g_test_add_func ("/presets/escape", test_escape);
  g_test_add_func ("/presets/user-dir", test_user_dir);
  return g_test_run ();
}
