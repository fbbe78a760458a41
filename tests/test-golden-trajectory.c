/* Whole sampling runs (diffuse_sample: UNet, guidance, DDIM/DDPM, img2img)
 * against tools/make_golden.py's float64 reference trajectories
 * (tests/data/golden/traj-*.ini; format in docs/DESIGN.md and the
 * README.md there).  Each case runs twice: with the stored noise as
 * init_noise (the sampler alone) and from the seed alone (the PRNG too).
 * Tolerance 1e-3: max |a − b| / max(1, max |b|). */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"

static const char *
golden_dir (void)
{
  static char *dir = NULL;

  if (dir == NULL)
    {
      const char *data = g_getenv ("DIFFUSE_TEST_DATA");

      dir =
          g_build_filename (data != NULL ? data : "tests/data", "golden", NULL);
    }
  return dir;
}

static float *
load_npy (const char *name, gint64 expect_n)
{
  g_autofree char *path = g_build_filename (golden_dir (), name, NULL);
  g_autoptr (GError) error = NULL;
  gint ndim = 0;
  gint64 shape[4] = { 0 };
  float *data = diffuse_npy_load (path, &ndim, shape, &error);

  g_assert_no_error (error);
  gint64 n = 1;
  for (gint d = 0; d < ndim; d++)
    n *= shape[d];
  g_assert_cmpint (n, ==, expect_n);
  return data;
}

static double
max_rel_diff (const float *a, const float *b, gsize n, gsize *where)
{
  double diff = 0, scale = 1;

  for (gsize j = 0; j < n; j++)
    {
      scale = MAX (scale, fabs (b[j]));
      if (fabs ((double) a[j] - b[j]) > diff)
        {
          diff = fabs ((double) a[j] - b[j]);
          *where = j;
        }
    }
  return diff / scale;
}

static void
test_trajectory (gconstpointer data)
{
  const char *ini = data;
  g_autofree char *ini_path = g_build_filename (golden_dir (), ini, NULL);
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) error = NULL;
  const char *g = "trajectory";

  g_assert_true (
      g_key_file_load_from_file (kf, ini_path, G_KEY_FILE_NONE, &error));
  g_assert_no_error (error);

#define STR(key)                                                               \
  g_autofree char *key = g_key_file_get_string (kf, g, #key, &error);          \
  g_assert_no_error (error)
#define INT(key)                                                               \
  gint key = g_key_file_get_integer (kf, g, #key, &error);                     \
  g_assert_no_error (error)
#define DBL(key)                                                               \
  double key = g_key_file_get_double (kf, g, #key, &error);                    \
  g_assert_no_error (error)
  STR (model);
  STR (sampler);
  STR (respacing);
  STR (variance);
  DBL (eta);
  DBL (guidance);
  DBL (strength);
  INT (class_label);
  INT (count);
  INT (height);
  INT (width);
  INT (start_index);
  INT (start_timestep);
  INT (n_steps);
  guint64 seed = g_key_file_get_uint64 (kf, g, "seed", &error);
  g_assert_no_error (error);
  gboolean clip = g_key_file_get_boolean (kf, g, "clip_denoised", &error);
  g_assert_no_error (error);
  g_autofree char *init_name =
      g_key_file_get_string (kf, g, "init_image", NULL);
  g_autofree char *null_name =
      g_key_file_get_string (kf, g, "null_model", NULL);
  /* classifier guidance (tools/make_classifier_golden.py's traj-clf-*) */
  g_autofree char *clf_name = g_key_file_get_string (kf, g, "classifier", NULL);
  double clf_scale =
      clf_name != NULL
          ? g_key_file_get_double (kf, g, "classifier_scale", &error)
          : 0.0;
  g_assert_no_error (error);
#undef STR
#undef INT
#undef DBL

  g_autofree char *model_path = g_build_filename (golden_dir (), model, NULL);
  g_autoptr (DiffuseModel) m = diffuse_model_new_from_file (model_path, &error);
  g_assert_no_error (error);
  const DiffuseModelConfig *cfg = diffuse_model_get_config (m);
  gint64 n = (gint64) count * cfg->in_channels * height * width;
  g_autofree char *null_path =
      null_name != NULL ? g_build_filename (golden_dir (), null_name, NULL)
                        : NULL;
  g_autoptr (DiffuseModel) null_model = NULL;
  g_autoptr (DiffuseModel) classifier = NULL;

  if (clf_name != NULL)
    {
      g_autofree char *clf_path =
          g_build_filename (golden_dir (), clf_name, NULL);

      classifier = diffuse_model_new_from_file (clf_path, &error);
      g_assert_no_error (error);
    }
  if (null_path != NULL)
    {
      null_model = diffuse_model_new_from_file (null_path, &error);
      g_assert_no_error (error);
    }

  g_autofree char *stem = g_strndup (ini, strlen (ini) - strlen (".ini"));
  g_autofree char *noise_name = g_strconcat (stem, ".noise.npy", NULL);
  g_autofree char *x0_name = g_strconcat (stem, ".x0.npy", NULL);
  g_autofree float *noise = load_npy (noise_name, n);
  g_autofree float *expect = load_npy (x0_name, n);
  g_autofree float *init = init_name != NULL ? load_npy (init_name, n) : NULL;
  g_autofree float *out = g_new (float, n);

  DiffuseSampleParams p;
  diffuse_sample_params_init (&p);
  g_assert_true (diffuse_sampler_kind_from_string (sampler, &p.sampler));
  g_assert_true (diffuse_variance_kind_from_string (variance, &p.variance));
  p.respacing = respacing;
  p.eta = eta;
  p.guidance = guidance;
  p.class_label = class_label;
  p.seed = seed;
  p.count = count;
  p.height = height;
  p.width = width;
  p.clip_denoised = clip;
  p.strength = strength;
  p.init_image = init;
  p.null_model = null_model;
  p.classifier = classifier;
  p.classifier_scale = clf_scale;

  for (gint pass = 0; pass < 2; pass++)
    {
      DiffuseSampleInfo info = { 0 };
      gsize where = 0;

      p.init_noise = pass == 0 ? noise : NULL;
      g_assert_true (diffuse_sample (m, &p, out, &info, &error));
      g_assert_no_error (error);
      double d = max_rel_diff (out, expect, n, &where);
      g_test_message ("%s (%s): max rel diff %.3g at %" G_GSIZE_FORMAT
                      " (%g vs %g); "
                      "start index %d t %d, %d steps",
                      stem, pass == 0 ? "init_noise" : "seed", d, where,
                      out[where], expect[where], info.start_index,
                      info.start_timestep, info.n_steps_run);
      g_assert_cmpfloat (d, <, 1e-3);
      g_assert_cmpint (info.start_index, ==, start_index);
      g_assert_cmpint (info.start_timestep, ==, start_timestep);
      g_assert_cmpint (info.n_steps_run, ==, n_steps);
    }
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);

  g_autoptr (GError) error = NULL;
  g_autoptr (GDir) dir = g_dir_open (golden_dir (), 0, &error);
  g_assert_no_error (error);
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (dir)) != NULL)
    if (g_str_has_prefix (name, "traj-") && g_str_has_suffix (name, ".ini"))
      g_ptr_array_add (names, g_strdup (name));
  g_ptr_array_sort (names, compare_names);
  /* the golden set is part of the repository: none found is a failure */
  g_assert_cmpuint (names->len, >=, 6);

  for (guint k = 0; k < names->len; k++)
    {
      const char *ini = g_ptr_array_index (names, k);
      g_autofree char *path = g_strdup_printf ("/golden-trajectory/%.*s",
                                               (int) (strlen (ini) - 4), ini);

      g_test_add_data_func (path, ini, test_trajectory);
    }
  return g_test_run ();
}
