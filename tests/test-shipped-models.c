/* Every model shipped in models/ loads in the engine, has the metadata the
 * plug-in relies on (class names, a null class for guidance) and samples a
 * finite, non-constant batch whose images differ from each other.
 *
 * Every shipped classifier (models/NAME-classifier.safetensors) fits its
 * model NAME.safetensors (size, channels, classes and their names, T and
 * schedule) and classifies held-out images (tests/data/heldout/NAME-test.png,
 * never seen in training; tools/eval/classifier_bands.py --export-test)
 * noised to a low timestep far above chance: random or untrained weights
 * fail. */
#include <math.h>
#include <stdlib.h>
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

/* Held-out images at t in [0, 250) (the cards' lowest band): at least
 * this share must be classified right.  Chance is 1/classes (0.10 for
 * fashion, 0.11 for emoji: about 3 of these 27-30 images); the shipped
 * classifiers get 28 of 30 (fashion) and 14 of 27 (emoji, class-balanced
 * here; 0.6-0.8 on the full test split, the classifier cards), and
 * untrained weights at chance reach 12 of 30 with a probability below
 * 1e-4. */
#define MIN_LOW_T_ACCURACY 0.4

static void
test_classifier (gconstpointer data)
{
  const char *path = data;
  GError *error = NULL;
  g_autoptr (DiffuseModel) clf_model = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  g_autoptr (DiffuseClassifier) clf = NULL;
  g_autoptr (DiffuseSchedule) sched = NULL;
  g_autofree char *dir = g_path_get_dirname (path);
  g_autofree char *base = g_path_get_basename (path);
  g_autofree char *name = NULL, *model_path = NULL, *png = NULL;
  g_autofree char *labels_path = NULL, *labels_text = NULL;
  g_autofree float *img = NULL, *x = NULL, *logits = NULL, *t = NULL;
  g_auto (GStrv) words = NULL;
  const DiffuseModelConfig *cc, *mc;
  const double *abar;
  gint channels, h, w, n, right = 0;

  g_assert_true (g_str_has_suffix (base, "-classifier.safetensors"));
  name = g_strndup (base, strlen (base) - strlen ("-classifier.safetensors"));
  model_path = g_strdup_printf ("%s/%s.safetensors", dir, name);
  clf_model = diffuse_model_new_from_file (path, &error);
  g_assert_no_error (error);
  model = diffuse_model_new_from_file (model_path, &error);
  g_assert_no_error (error);
  cc = diffuse_model_get_config (clf_model);
  mc = diffuse_model_get_config (model);
  g_assert_cmpint (cc->model_type, ==, DIFFUSE_MODEL_CLASSIFIER);
  g_assert_cmpint (cc->image_size, ==, mc->image_size);
  g_assert_cmpint (cc->in_channels, ==, mc->in_channels);
  /* One logit per real class of the model (its null class has none). */
  g_assert_cmpint (cc->num_classes, ==, mc->num_classes - 1);
  for (gint c = 0; c < cc->num_classes; c++)
    g_assert_cmpstr (diffuse_model_get_class_name (clf_model, c), ==,
                     diffuse_model_get_class_name (model, c));
  g_assert_cmpint (cc->diffusion_steps, ==, mc->diffusion_steps);
  g_assert_cmpint (cc->noise_schedule, ==, mc->noise_schedule);
  /* the header alone tells the two apart (the plug-in's model and
   * classifier lists), and that this classifier fits this model */
  {
    DiffuseModelConfig hc, hm;

    g_assert_true (diffuse_model_file_read_config (path, &hc, &error));
    g_assert_true (diffuse_model_file_read_config (model_path, &hm, &error));
    g_assert_no_error (error);
    g_assert_cmpint (hc.model_type, ==, DIFFUSE_MODEL_CLASSIFIER);
    g_assert_cmpint (hm.model_type, ==, DIFFUSE_MODEL_UNET);
    g_assert_cmpint (hc.num_classes, ==, cc->num_classes);
    g_assert_cmpint (hc.in_channels, ==, cc->in_channels);
    g_assert_cmpint (hc.pool, ==, cc->pool);
    g_assert_cmpint (hm.num_classes, ==, mc->num_classes);
    g_assert_true (diffuse_classifier_check_model (&hc, &hm, &error));
    g_assert_no_error (error);
    g_assert_false (diffuse_classifier_check_model (&hm, &hm, &error));
    g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
    g_clear_error (&error);
    g_assert_false (diffuse_classifier_check_model (&hc, &hc, &error));
    g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
    g_clear_error (&error);
  }
  {
    GStatBuf st;

    g_assert_cmpint (g_stat (path, &st), ==, 0);
    g_assert_cmpint (st.st_size, <=, 5 * 1000 * 1000); /* a few MB */
  }

  png = g_strdup_printf ("%s/heldout/%s-test.png",
                         g_getenv ("DIFFUSE_TEST_DATA"), name);
  labels_path = g_strdup_printf ("%s/heldout/%s-test.labels",
                                 g_getenv ("DIFFUSE_TEST_DATA"), name);
  g_assert_true (g_file_get_contents (labels_path, &labels_text, NULL, NULL));
  words = g_strsplit_set (g_strstrip (labels_text), " ", -1);
  n = (gint) g_strv_length (words);
  img = diffuse_png_load (png, cc->in_channels, &channels, &h, &w, &error);
  g_assert_no_error (error);
  g_assert_cmpint (h, ==, cc->image_size);
  g_assert_cmpint (w, ==, n * cc->image_size);

  /* The strip [C, S, n·S] -> n images [C, S, S], noised to x_t =
   * sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps at t = 0, 10, ..., 240. */
  gint s = cc->image_size, per = cc->in_channels * s * s;
  x = g_new (float, (gsize) n *per);
  t = g_new (float, n);
  logits = g_new (float, (gsize) n * cc->num_classes);
  diffuse_rng_normal (20261207, 0, 0, x, (gsize) n * per);
  sched = diffuse_schedule_new (mc->noise_schedule, mc->diffusion_steps, NULL,
                                &error);
  g_assert_no_error (error);
  abar = diffuse_schedule_get_alphas_cumprod (sched);
  for (gint k = 0; k < n; k++)
    {
      gint tk = (k * 10) % 250;
      double a = sqrt (abar[tk]), b = sqrt (1.0 - abar[tk]);

      t[k] = (float) tk;
      for (gint c = 0; c < cc->in_channels; c++)
        for (gint i = 0; i < s; i++)
          for (gint j = 0; j < s; j++)
            {
              float *v = x + (gsize) k * per + ((gsize) c * s + i) * s + j;
              *v = (float) (a * img[((gsize) c * s + i) * w + k * s + j] +
                            b * *v);
            }
    }
  clf = diffuse_classifier_new (clf_model, n, s, s, 1, &error);
  g_assert_no_error (error);
  g_assert_true (diffuse_classifier_forward (clf, n, x, t, logits, &error));
  g_assert_no_error (error);
  for (gint k = 0; k < n; k++)
    {
      gint best = 0;

      for (gint c = 1; c < cc->num_classes; c++)
        if (logits[k * cc->num_classes + c] >
            logits[k * cc->num_classes + best])
          best = c;
      right += best == atoi (words[k]);
    }
  g_test_message ("%s: %d of %d held-out images right at t < 250 (chance "
                  "%.2f)",
                  base, right, n, 1.0 / cc->num_classes);
  g_assert_cmpfloat ((double) right / n, >=, MIN_LOW_T_ACCURACY);
}

static gint
compare_paths (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(char *const *) a, *(char *const *) b);
}

/* "auto" precision: bf16 only where the CPU has it and the network is
 * large enough to gain from it (diffuse.h); the shipped 32 px models stay
 * fp32 on every machine, whatever the batch.  DIFFUSE_PRECISION (which
 * the suite sets to fp32) overrides auto and is unset here. */
static void
test_auto_precision (gconstpointer data)
{
  const char *path = data;
  gboolean hw = diffuse_have_onednn () && diffuse_cpu_has_bf16 ();
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  g_autofree gchar *saved = g_strdup (g_getenv ("DIFFUSE_PRECISION"));
  DiffusePrecision p = DIFFUSE_PRECISION_COUNT;

  g_unsetenv ("DIFFUSE_PRECISION");
  g_assert_true (
      diffuse_precision_resolve (DIFFUSE_PRECISION_AUTO, 0, &p, &error));
  g_assert_cmpint (p, ==, DIFFUSE_PRECISION_FP32);
  g_assert_true (diffuse_precision_resolve (
      DIFFUSE_PRECISION_AUTO, DIFFUSE_BF16_MIN_FLOPS - 1, &p, &error));
  g_assert_cmpint (p, ==, DIFFUSE_PRECISION_FP32);
  g_assert_true (diffuse_precision_resolve (
      DIFFUSE_PRECISION_AUTO, DIFFUSE_BF16_MIN_FLOPS, &p, &error));
  g_assert_cmpint (p, ==, hw ? DIFFUSE_PRECISION_BF16 : DIFFUSE_PRECISION_FP32);
  /* asked for by name, either is what it says */
  g_assert_true (
      diffuse_precision_resolve (DIFFUSE_PRECISION_BF16, 0, &p, &error));
  g_assert_cmpint (p, ==, DIFFUSE_PRECISION_BF16);
  g_assert_true (diffuse_precision_resolve (DIFFUSE_PRECISION_FP32, G_MAXUINT64,
                                            &p, &error));
  g_assert_cmpint (p, ==, DIFFUSE_PRECISION_FP32);

  model = diffuse_model_new_from_file (path, &error);
  g_assert_no_error (error);
  for (gint batch = 1; batch <= 16; batch *= 4)
    {
      const DiffuseModelConfig *cfg = diffuse_model_get_config (model);
      g_autoptr (DiffuseUNet) unet = diffuse_unet_new (
          model, batch, cfg->image_size, cfg->image_size, 1, &error);

      g_assert_no_error (error);
      g_assert_true (
          diffuse_unet_set_precision (unet, DIFFUSE_PRECISION_AUTO, &error));
      g_assert_cmpint (diffuse_unet_get_precision (unet), ==,
                       DIFFUSE_PRECISION_FP32);
    }
  /* the variable decides over the size */
  g_setenv ("DIFFUSE_PRECISION", "bf16", TRUE);
  g_assert_true (
      diffuse_precision_resolve (DIFFUSE_PRECISION_AUTO, 0, &p, &error));
  g_assert_cmpint (p, ==, DIFFUSE_PRECISION_BF16);
  if (saved)
    g_setenv ("DIFFUSE_PRECISION", saved, TRUE);
  else
    g_unsetenv ("DIFFUSE_PRECISION");
}

int
main (int argc, char **argv)
{
  g_autofree char *dir = NULL;
  g_autoptr (GDir) d = NULL;
  g_autoptr (GPtrArray) paths = g_ptr_array_new_with_free_func (g_free);
  g_autoptr (GPtrArray) classifiers = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  gboolean have_fashion = FALSE, have_emoji = FALSE;

  g_test_init (&argc, &argv, NULL);
  dir = models_dir ();
  d = g_dir_open (dir, 0, NULL);
  g_assert_nonnull (d);
  while ((name = g_dir_read_name (d)))
    if (g_str_has_suffix (name, "-classifier.safetensors"))
      g_ptr_array_add (classifiers, g_build_filename (dir, name, NULL));
    else if (g_str_has_suffix (name, ".safetensors"))
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
      g_free (test);
      test = g_strdup_printf ("/shipped-models/%s/auto-precision", base);
      g_test_add_data_func (test, paths->pdata[i], test_auto_precision);
    }
  g_ptr_array_sort (classifiers, compare_paths);
  for (guint i = 0; i < classifiers->len; i++)
    {
      g_autofree char *base = g_path_get_basename (classifiers->pdata[i]);
      g_autofree char *test = g_strdup_printf ("/shipped-classifiers/%s", base);

      g_test_add_data_func (test, classifiers->pdata[i], test_classifier);
    }
  return g_test_run ();
}
