/* Every model shipped in models/ loads in the engine, has the metadata the
 * plug-in relies on (class names, a null class for guidance) and samples a
 * finite, non-constant batch whose images differ from each other. */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "diffuse.h"

static char *
models_dir (void)
{
  const char *root = g_getenv ("DIFFUSE_SOURCE_ROOT");

  g_assert_nonnull (root);
  return g_build_filename (root, "models", NULL);
}

static void
check_metadata (DiffuseModel *model, const char *path)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);

  g_test_message ("%s: %d classes, %" G_GUINT64_FORMAT " parameters, %dx%d, "
                  "%d channels",
                  path, cfg->num_classes, diffuse_model_get_n_params (model),
                  cfg->image_size, cfg->image_size, cfg->in_channels);
  g_assert_cmpint (cfg->num_classes, >=, 3);
  g_assert_cmpint (cfg->null_class, ==, cfg->num_classes - 1);
  g_assert_true (cfg->learn_sigma);
  g_assert_cmpint (cfg->noise_schedule, ==, DIFFUSE_SCHEDULE_COSINE);
  for (gint c = 0; c < cfg->num_classes; c++)
    {
      const char *name = diffuse_model_get_class_name (model, c);
      gint back = -1;

      g_assert_nonnull (name);
      g_assert_cmpuint (strlen (name), >, 0);
      if (c == cfg->null_class)
        continue;
      /* The name leads back to its index, as the plug-in's menu needs. */
      g_assert_true (diffuse_model_find_class (model, name, &back, NULL));
      g_assert_cmpint (back, ==, c);
    }
  /* 25 MB limit of the repository. */
  {
    GStatBuf st;

    g_assert_cmpint (g_stat (path, &st), ==, 0);
    g_assert_cmpint (st.st_size, <=, 25 * 1000 * 1000);
  }
}

static void
sample_and_check (DiffuseModel *model, DiffuseSamplerKind sampler, gint label)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);
  DiffuseSampleParams p;
  GError *error = NULL;
  const gint count = 2;
  gsize per = (gsize) cfg->in_channels * cfg->image_size * cfg->image_size;
  g_autofree float *out = g_new0 (float, count *per);

  diffuse_sample_params_init (&p);
  p.sampler = sampler;
  p.steps = 5;
  p.guidance = 1.0;
  p.class_label = label;
  p.seed = 20261125;
  p.count = count;
  p.n_threads = 1;
  g_assert_true (diffuse_sample_params_validate (&p, model, &error));
  g_assert_no_error (error);
  g_assert_true (diffuse_sample (model, &p, out, NULL, &error));
  g_assert_no_error (error);

  for (gint k = 0; k < count; k++)
    {
      const float *x = out + k * per;
      double sum = 0, sq = 0;

      for (gsize i = 0; i < per; i++)
        {
          g_assert_true (isfinite (x[i]));
          g_assert_cmpfloat (x[i], >=, -1.0f);
          g_assert_cmpfloat (x[i], <=, 1.0f);
          sum += x[i];
          sq += (double) x[i] * x[i];
        }
      double mean = sum / per, sd = sqrt (MAX (0.0, sq / per - mean * mean));
      g_test_message ("sampler %s class %d image %d: mean %.3f sd %.3f",
                      diffuse_sampler_kind_to_string (sampler), label, k, mean,
                      sd);
      /* A trained model makes images with structure, not a flat field. */
      g_assert_cmpfloat (sd, >, 0.05);
    }
  /* Two seeds' worth of noise give two different images. */
  double diff = 0;
  for (gsize i = 0; i < per; i++)
    diff = MAX (diff, fabs (out[i] - out[per + i]));
  g_assert_cmpfloat (diff, >, 0.1);
}

static void
test_model (gconstpointer data)
{
  const char *path = data;
  GError *error = NULL;
  g_autoptr (DiffuseModel) model = diffuse_model_new_from_file (path, &error);
  const DiffuseModelConfig *cfg;

  g_assert_no_error (error);
  g_assert_nonnull (model);
  check_metadata (model, path);
  cfg = diffuse_model_get_config (model);
  sample_and_check (model, DIFFUSE_SAMPLER_DDIM, 0);
  sample_and_check (model, DIFFUSE_SAMPLER_DDPM, cfg->null_class - 1);
}

static gint
compare_paths (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

int
main (int argc, char **argv)
{
  g_autofree char *dir = NULL;
  g_autoptr (GDir) d = NULL;
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  gboolean have_fashion = FALSE, have_emoji = FALSE;

  g_test_init (&argc, &argv, NULL);
  dir = models_dir ();
  d = g_dir_open (dir, 0, NULL);
  g_assert_nonnull (d);
  while ((name = g_dir_read_name (d)))
    if (g_str_has_suffix (name, ".safetensors"))
      {
        g_ptr_array_add (paths, g_build_filename (dir, name, NULL));
        have_fashion |= strcmp (name, "fashion.safetensors") == 0;
        have_emoji |= strcmp (name, "emoji.safetensors") == 0;
      }
  /* Both models must ship; a missing file is a failure. */
  g_assert_true (have_fashion);
  g_assert_true (have_emoji);
  g_ptr_array_sort (paths, compare_paths);
  for (guint i = 0; i < paths->len; i++)
    {
      g_autofree char *base = g_path_get_basename (paths->pdata[i]);
      g_autofree char *test = g_strdup_printf ("/shipped-models/%s", base);

      g_test_add_data_func (test, paths->pdata[i], test_model);
    }
  return g_test_run ();
}
