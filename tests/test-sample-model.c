/* diffuse_sample with real (random-weight) models from tests/data/golden:
 * every bad parameter is its own GError, guidance without a null class is
 * refused with a message that says so, the progress callback sees every
 * step and can cancel (CANCELLED, nothing leaked: run under ASan), and
 * the batching conventions hold (first image independent of count; w = 0
 * equals no guidance; the guided batch equals two separate passes). */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"

static DiffuseModel *
load_model (const char *name)
{
  const char *data = g_getenv ("DIFFUSE_TEST_DATA");
  g_autofree char *path = g_build_filename (data != NULL ? data : "tests/data", "golden",
                                            name, NULL);
  g_autoptr (GError) error = NULL;
  DiffuseModel *m = diffuse_model_new_from_file (path, &error);

  g_assert_no_error (error);
  return m;
}

typedef void (*Mutate) (DiffuseSampleParams *p);

#define BAD(fn, body) \
  static void fn (DiffuseSampleParams *p) { body; }
BAD (steps_0, p->steps = 0)
BAD (steps_over, p->steps = 1001)
BAD (eta_neg, p->eta = -0.5)
BAD (eta_big, p->eta = 10.01)
BAD (eta_nan, p->eta = NAN)
BAD (eta_inf, p->eta = INFINITY)
BAD (guid_neg, p->guidance = -1)
BAD (guid_big, p->guidance = 100.5)
BAD (guid_nan, p->guidance = NAN)
BAD (guid_inf, p->guidance = INFINITY)
BAD (class_low, p->class_label = -2)
BAD (class_high, p->class_label = 5)
BAD (count_0, p->count = 0)
BAD (count_65, p->count = 65)
BAD (size_odd, p->height = 15)
BAD (size_neg, p->width = -16)
BAD (strength_0, p->strength = 0)
BAD (strength_big, p->strength = 1.01)
BAD (strength_nan, p->strength = NAN)
BAD (sampler_bad, p->sampler = DIFFUSE_SAMPLER_COUNT)
BAD (variance_bad, p->variance = DIFFUSE_VARIANCE_COUNT)
BAD (variance_learned, p->variance = DIFFUSE_VARIANCE_LEARNED)
BAD (respacing_garbage, p->respacing = "fast")
BAD (respacing_big, p->respacing = "ddim999")
BAD (threads_neg, p->n_threads = -1)
#undef BAD

static void
test_bad_params (void)
{
  /* grey-cond: 1 channel, 16 px, 2 levels, 5 classes (null 4), T = 1000,
   * no learn_sigma */
  g_autoptr (DiffuseModel) m = load_model ("forward-grey-cond.safetensors");
  const struct
  {
    const char *what;
    Mutate mutate;
  } bad[] = {
    { "steps 0", steps_0 },          { "steps > T", steps_over },
    { "eta < 0", eta_neg },          { "eta > 10", eta_big },
    { "eta NaN", eta_nan },          { "eta inf", eta_inf },
    { "guidance < 0", guid_neg },    { "guidance > 100", guid_big },
    { "guidance NaN", guid_nan },    { "guidance inf", guid_inf },
    { "class -2", class_low },       { "class = num_classes", class_high },
    { "count 0", count_0 },          { "count 65", count_65 },
    { "height 15", size_odd },       { "width -16", size_neg },
    { "strength 0", strength_0 },    { "strength > 1", strength_big },
    { "strength NaN", strength_nan }, { "sampler", sampler_bad },
    { "variance", variance_bad },    { "learned, no learn_sigma", variance_learned },
    { "respacing fast", respacing_garbage }, { "respacing ddim999", respacing_big },
    { "n_threads -1", threads_neg },
  };
  float out[16 * 16];

  for (guint k = 0; k < G_N_ELEMENTS (bad); k++)
    {
      g_autoptr (GError) error = NULL;
      DiffuseSampleParams p;

      diffuse_sample_params_init (&p);
      p.steps = 2;
      p.class_label = 1;
      bad[k].mutate (&p);
      g_assert_false (diffuse_sample_params_validate (&p, m, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
      g_test_message ("%s: %s", bad[k].what, error->message);
      g_clear_error (&error);
      out[0] = 42.0f;
      g_assert_false (diffuse_sample (m, &p, out, NULL, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
      g_assert_cmpfloat (out[0], ==, 42.0f);
    }

  /* the defaults themselves are valid, and so are the edges */
  DiffuseSampleParams p;
  diffuse_sample_params_init (&p);
  g_assert_true (diffuse_sample_params_validate (&p, m, NULL));
  p.steps = 1000, p.eta = 10, p.guidance = 100, p.class_label = 4, p.count = 64;
  p.height = 32, p.width = 48, p.strength = 1e-9;
  g_assert_true (diffuse_sample_params_validate (&p, m, NULL));
}

static void
test_null_class_rules (void)
{
  /* ga-3level: conditional (3 classes) WITHOUT a null class */
  g_autoptr (DiffuseModel) m = load_model ("forward-ga-3level.safetensors");
  g_autoptr (DiffuseModel) u = load_model ("forward-rgb-uncond.safetensors");
  g_autoptr (DiffuseModel) s = load_model ("forward-rgba-sigma.safetensors");
  g_autoptr (GError) error = NULL;
  DiffuseSampleParams p;

  diffuse_sample_params_init (&p);
  p.class_label = 1;
  g_assert_true (diffuse_sample_params_validate (&p, m, NULL));
  p.guidance = 2.0;
  g_assert_false (diffuse_sample_params_validate (&p, m, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_test_message ("guidance without null class: %s", error->message);
  g_assert_nonnull (strstr (error->message, "no null class"));
  g_clear_error (&error);

  /* class -1 means "the null class", which this model lacks */
  p.guidance = 0;
  p.class_label = -1;
  g_assert_false (diffuse_sample_params_validate (&p, m, &error));
  g_assert_nonnull (strstr (error->message, "no null class"));
  g_clear_error (&error);

  /* unconditional: no class, no guidance */
  diffuse_sample_params_init (&p);
  p.steps = 10;
  g_assert_true (diffuse_sample_params_validate (&p, u, NULL));
  p.class_label = 0;
  g_assert_false (diffuse_sample_params_validate (&p, u, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_clear_error (&error);
  p.class_label = -1;
  p.guidance = 1;
  g_assert_false (diffuse_sample_params_validate (&p, u, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_clear_error (&error);

  /* learned variance is fine with a learn_sigma model (T = 1000 there) */
  diffuse_sample_params_init (&p);
  p.variance = DIFFUSE_VARIANCE_LEARNED;
  p.sampler = DIFFUSE_SAMPLER_DDPM;
  g_assert_true (diffuse_sample_params_validate (&p, s, NULL));
  /* the rgb model has T = 200 */
  p.variance = DIFFUSE_VARIANCE_AUTO;
  p.steps = 201;
  g_assert_false (diffuse_sample_params_validate (&p, u, &error));
  g_test_message ("steps > T = 200: %s", error->message);
}

typedef struct
{
  gint calls, last, n_steps, cancel_at;
  gboolean ok;
} Progress;

static gboolean
on_progress (gint step, gint n_steps, const float *x0, gint count, gint channels,
             gint height, gint width, gpointer user_data)
{
  Progress *pr = user_data;

  pr->calls++;
  pr->ok = pr->ok && step == pr->last + 1 && count == 2 && channels == 1 && height == 16
           && width == 16 && x0 != NULL;
  for (gint j = 0; j < count * channels * height * width; j++)
    pr->ok = pr->ok && isfinite (x0[j]) && fabsf (x0[j]) <= 1.0f;
  pr->last = step;
  pr->n_steps = n_steps;
  return step != pr->cancel_at;
}

static void
test_progress_and_cancel (void)
{
  g_autoptr (DiffuseModel) m = load_model ("forward-grey-cond.safetensors");
  float out[2 * 16 * 16];
  DiffuseSampleParams p;
  DiffuseSampleInfo info;
  Progress pr = { 0, 0, 0, -1, TRUE };
  g_autoptr (GError) error = NULL;

  diffuse_sample_params_init (&p);
  p.steps = 7;
  p.count = 2;
  p.class_label = 3;
  p.guidance = 1.0;
  p.sampler = DIFFUSE_SAMPLER_DDPM;
  p.n_threads = 1;
  p.progress = on_progress;
  p.user_data = &pr;
  g_assert_true (diffuse_sample (m, &p, out, &info, &error));
  g_assert_no_error (error);
  g_assert_cmpint (pr.calls, ==, 7);
  g_assert_cmpint (pr.last, ==, 7);
  g_assert_cmpint (pr.n_steps, ==, 7);
  g_assert_cmpint (info.n_steps_run, ==, 7);
  g_assert_cmpint (info.start_timestep, ==, 999); /* "7": 0 … 999 */
  g_assert_true (pr.ok);

  /* img2img: fewer steps, all reported */
  g_autofree float *init = g_new0 (float, 2 * 16 * 16);
  p.init_image = init;
  p.strength = 0.4;
  pr = (Progress){ 0, 0, 0, -1, TRUE };
  g_assert_true (diffuse_sample (m, &p, out, &info, &error));
  /* "7" keeps 0 166 333 500 666 832 999: 400 is nearest 333, index 2 */
  g_assert_cmpint (info.start_index, ==, 2);
  g_assert_cmpint (info.start_timestep, ==, 333);
  g_assert_cmpint (pr.calls, ==, 3);
  g_assert_cmpint (pr.n_steps, ==, 3);
  p.init_image = NULL;

  /* cancel at step 2 of 7 */
  pr = (Progress){ 0, 0, 0, 2, TRUE };
  g_assert_false (diffuse_sample (m, &p, out, &info, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_CANCELLED);
  g_assert_cmpint (pr.calls, ==, 2);
  g_test_message ("cancel: %s", error->message);
}

static double
max_abs_diff (const float *a, const float *b, gsize n)
{
  double d = 0;

  for (gsize j = 0; j < n; j++)
    d = MAX (d, fabs ((double) a[j] - b[j]));
  return d;
}

/* The guided batch (conditional + null as one batch of 2·count) equals
 * ε̄ = (1+w)ε(x,y) − wε(x,∅) built from separate unguided passes; here
 * through one DDIM step (x_T → x_0 at t = 999) where x0 = (x − sqrt(1−ᾱ)ε̄)
 * / sqrt(ᾱ) is linear in ε̄, without clipping. */
static void
test_guidance_batch (void)
{
  g_autoptr (DiffuseModel) m = load_model ("forward-grey-cond.safetensors");
  const gsize img = 16 * 16;
  float xT[2 * 16 * 16], guided[2 * 16 * 16], cond[2 * 16 * 16], null[2 * 16 * 16];
  float one[16 * 16];
  DiffuseSampleParams p;
  g_autoptr (GError) error = NULL;

  diffuse_rng_normal (3, 0, 0, xT, 2 * img);
  diffuse_sample_params_init (&p);
  p.steps = 1;
  p.count = 2;
  p.clip_denoised = FALSE;
  p.init_noise = xT;
  p.class_label = 2;
  p.guidance = 3.0;
  g_assert_true (diffuse_sample (m, &p, guided, NULL, &error));
  p.guidance = 0.0;
  g_assert_true (diffuse_sample (m, &p, cond, NULL, &error));
  p.class_label = 4; /* the null class */
  g_assert_true (diffuse_sample (m, &p, null, NULL, &error));
  g_assert_no_error (error);

  /* x0 is affine in ε̄, so the same combination of the x0s holds */
  double d = 0, scale = 0;
  for (gsize j = 0; j < 2 * img; j++)
    {
      double want = 4.0 * cond[j] - 3.0 * null[j];

      d = MAX (d, fabs (guided[j] - want));
      scale = MAX (scale, fabs (want));
    }
  g_test_message ("guided x0 vs (1+w) cond - w null: max diff %.3g (scale %.3g); "
                  "cond vs guided differ by %.3g",
                  d, scale, max_abs_diff (cond, guided, 2 * img));
  g_assert_cmpfloat (d, <, 1e-4 * MAX (1.0, scale));
  g_assert_cmpfloat (max_abs_diff (cond, guided, 2 * img), >, 1e-2);

  /* the first image does not depend on count */
  p.class_label = 2;
  p.guidance = 3.0;
  p.count = 1;
  g_assert_true (diffuse_sample (m, &p, one, NULL, &error));
  g_assert_cmpfloat (max_abs_diff (one, guided, img), <, 1e-5);

  /* and from the seed: count 1 vs count 2, DDPM (reverse-step noise too) */
  float a[16 * 16], b[2 * 16 * 16];
  diffuse_sample_params_init (&p);
  p.steps = 5;
  p.sampler = DIFFUSE_SAMPLER_DDPM;
  p.seed = 99;
  p.class_label = 0;
  p.guidance = 0.5;
  g_assert_true (diffuse_sample (m, &p, a, NULL, &error));
  p.count = 2;
  g_assert_true (diffuse_sample (m, &p, b, NULL, &error));
  g_test_message ("count 1 vs first of count 2: max diff %.3g", max_abs_diff (a, b, img));
  g_assert_cmpfloat (max_abs_diff (a, b, img), <, 1e-5);
  g_assert_cmpfloat (max_abs_diff (b, b + img, img), >, 1e-2);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sample-model/bad-params", test_bad_params);
  g_test_add_func ("/sample-model/null-class-rules", test_null_class_rules);
  g_test_add_func ("/sample-model/progress-and-cancel", test_progress_and_cancel);
  g_test_add_func ("/sample-model/guidance-batch", test_guidance_batch);
  return g_test_run ();
}
