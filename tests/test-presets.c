/* Presets: the shipped files, applying, saving, overriding, bad files. */
#include "diffuse.h"

#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

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

/* The seven shipped presets, with the settings the project promises. */
static void
test_shipped (void)
{
  g_autofree gchar *dir = source_presets_dir ();
  const char *dirs[] = { dir, NULL };
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) presets = diffuse_presets_load_dirs (dirs, &error);
  const DiffusePreset *p;

  g_assert_no_error (error);
  g_assert_cmpuint (presets->len, ==, 7);
  for (guint i = 1; i < presets->len; i++)
    g_assert_cmpstr (((DiffusePreset *) presets->pdata[i - 1])->name, <,
                     ((DiffusePreset *) presets->pdata[i])->name);
  for (guint i = 0; i < presets->len; i++)
    g_assert_cmpstr (((DiffusePreset *) presets->pdata[i])->description, !=, "");

  p = find (presets, "draft");
  g_assert_true (p->has_sampler && p->sampler == DIFFUSE_SAMPLER_DDIM);
  g_assert_true (p->has_steps && p->steps == 10);
  g_assert_false (p->has_strength);

  p = find (presets, "balanced");
  g_assert_true (p->has_sampler && p->sampler == DIFFUSE_SAMPLER_DDIM);
  g_assert_true (p->has_steps && p->steps == 50);
  g_assert_true (p->has_guidance);
  g_assert_cmpfloat (p->guidance, ==, 1.0);

  p = find (presets, "faithful-to-class");
  g_assert_true (p->has_steps && p->steps == 50);
  g_assert_true (p->has_guidance);
  g_assert_cmpfloat (p->guidance, ==, 4.0);

  p = find (presets, "diverse");
  g_assert_true (p->has_sampler && p->sampler == DIFFUSE_SAMPLER_DDIM);
  g_assert_true (p->has_eta && p->has_guidance);
  g_assert_cmpfloat (p->eta, ==, 1.0);
  g_assert_cmpfloat (p->guidance, ==, 0.0);

  p = find (presets, "ddpm-quality");
  g_assert_true (p->has_sampler && p->sampler == DIFFUSE_SAMPLER_DDPM);
  g_assert_true (p->has_steps && p->steps == 100);
  g_assert_true (p->has_variance && p->variance == DIFFUSE_VARIANCE_LEARNED);

  p = find (presets, "img2img-light");
  g_assert_true (p->has_strength);
  g_assert_cmpfloat (p->strength, ==, 0.3);
  g_assert_false (p->has_steps || p->has_sampler || p->has_guidance);

  p = find (presets, "img2img-strong");
  g_assert_true (p->has_strength);
  g_assert_cmpfloat (p->strength, ==, 0.7);
}

/* Only the fields a preset has change. */
static void
test_apply (void)
{
  DiffusePreset partial = { .name = (gchar *) "p", .has_guidance = TRUE,
                            .guidance = 2.5, .has_strength = TRUE,
                            .strength = 0.4 };
  DiffusePreset full = { .name = (gchar *) "f", .has_sampler = TRUE,
                         .sampler = DIFFUSE_SAMPLER_DDPM, .has_steps = TRUE,
                         .steps = 77, .has_eta = TRUE, .eta = 0.5,
                         .has_variance = TRUE,
                         .variance = DIFFUSE_VARIANCE_FIXED_SMALL };
  DiffuseSampleParams params;

  memset (&params, 0, sizeof params);
  params.sampler = DIFFUSE_SAMPLER_DDIM;
  params.steps = 13;
  params.eta = 0.25;
  params.variance = DIFFUSE_VARIANCE_FIXED_LARGE;
  params.guidance = 7.0;
  params.strength = 1.0;
  params.seed = 99;

  diffuse_preset_apply (&partial, &params);
  g_assert_cmpint (params.sampler, ==, DIFFUSE_SAMPLER_DDIM);
  g_assert_cmpint (params.steps, ==, 13);
  g_assert_cmpfloat (params.eta, ==, 0.25);
  g_assert_cmpint (params.variance, ==, DIFFUSE_VARIANCE_FIXED_LARGE);
  g_assert_cmpfloat (params.guidance, ==, 2.5);
  g_assert_cmpfloat (params.strength, ==, 0.4);

  diffuse_preset_apply (&full, &params);
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
  g_assert_cmpstr (a->name, ==, b->name);
  g_assert_cmpstr (a->description ? a->description : "", ==,
                   b->description ? b->description : "");
  g_assert_cmpint (a->has_sampler, ==, b->has_sampler);
  g_assert_cmpint (a->has_steps, ==, b->has_steps);
  g_assert_cmpint (a->has_eta, ==, b->has_eta);
  g_assert_cmpint (a->has_guidance, ==, b->has_guidance);
  g_assert_cmpint (a->has_strength, ==, b->has_strength);
  g_assert_cmpint (a->has_variance, ==, b->has_variance);
  if (a->has_sampler)
    g_assert_cmpint (a->sampler, ==, b->sampler);
  if (a->has_steps)
    g_assert_cmpint (a->steps, ==, b->steps);
  /* exact: the file holds %.17g */
  if (a->has_eta)
    g_assert_cmpfloat (a->eta, ==, b->eta);
  if (a->has_guidance)
    g_assert_cmpfloat (a->guidance, ==, b->guidance);
  if (a->has_strength)
    g_assert_cmpfloat (a->strength, ==, b->strength);
  if (a->has_variance)
    g_assert_cmpint (a->variance, ==, b->variance);
}

/* A user's preset survives save + load, for every subset of the fields. */
static void
test_save_round_trip (void)
{
  g_autofree gchar *dir = g_dir_make_tmp ("diffuse-presets-XXXXXX", NULL);
  g_autofree gchar *path = g_build_filename (dir, "mine.preset", NULL);

  for (guint mask = 0; mask < 64; mask++)
    {
      DiffusePreset p = { 0 };
      g_autoptr (DiffusePreset) back = NULL;
      g_autoptr (GError) error = NULL;

      p.name = (gchar *) "my own = settings; #1";
      p.description = (gchar *) (mask & 1 ? "Description with\nnewline, ü and \\" : "");
      p.has_sampler = (mask & 1) != 0;
      p.sampler = mask & 2 ? DIFFUSE_SAMPLER_DDPM : DIFFUSE_SAMPLER_DDIM;
      p.has_steps = (mask & 2) != 0;
      p.steps = 1 + mask * 7;
      p.has_eta = (mask & 4) != 0;
      p.eta = 0.1 * mask + 1e-13;
      p.has_guidance = (mask & 8) != 0;
      p.guidance = 1.0 / 3.0 + mask;
      p.has_strength = (mask & 16) != 0;
      p.strength = 0.3 + 0.01 * (mask % 50);
      p.has_variance = (mask & 32) != 0;
      p.variance = (DiffuseVarianceKind) (mask % DIFFUSE_VARIANCE_COUNT);

      g_assert_true (diffuse_preset_save_file (&p, path, &error));
      g_assert_no_error (error);
      back = diffuse_preset_load_file (path, &error);
      g_assert_no_error (error);
      assert_presets_equal (&p, back);
    }

  {
    DiffusePreset nameless = { 0 };
    g_autoptr (GError) error = NULL;

    g_assert_false (diffuse_preset_save_file (&nameless, path, &error));
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
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) presets = NULL;
  const DiffusePreset *p;

  write_file (a, "[preset]\nname=draft\nsteps=20\n");
  write_file (b, "# comment\n[preset]\nguidance=3\ndescription[de]=Beschreibung\n");
  write_file (c, "not a preset");

  presets = diffuse_presets_load_dirs (dirs, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (presets->len, ==, 8);
  p = find (presets, "draft");
  g_assert_true (p->has_steps && p->steps == 20);
  g_assert_false (p->has_sampler);
  p = find (presets, "unnamed");
  g_assert_true (p->has_guidance);
  g_assert_cmpfloat (p->guidance, ==, 3.0);

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

      /* one bad file makes the whole directory load fail, naming it */
      all = diffuse_presets_load_dirs (dirs, &error);
      g_assert_null (all);
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
    }
  g_unlink (path);

  {
    g_autoptr (GError) error = NULL;

    g_assert_null (diffuse_preset_load_file (path, &error));
    g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
  }
  g_rmdir (dir);
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
  balanced = g_build_filename (diffuse_presets_system_dir (),
                               "balanced.preset", NULL);
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
  g_test_add_func ("/presets/apply", test_apply);
  g_test_add_func ("/presets/save-round-trip", test_save_round_trip);
  g_test_add_func ("/presets/override", test_override);
  g_test_add_func ("/presets/bad-files", test_bad_files);
  g_test_add_func ("/presets/system-dir", test_system_dir);
  return g_test_run ();
}
