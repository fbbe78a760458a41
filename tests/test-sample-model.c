/* diffuse_sample with real (random-weight) models from tests/data/golden:
 * every bad parameter is its own GError, guidance without a null class is
 * refused with a message that says so, the progress callback sees every
 * step and can cancel (CANCELLED, nothing leaked: run under ASan), and
 * the batching conventions hold (first image independent of count; w = 0
 * equals no guidance; the guided batch equals two separate passes), and a
 * separate null model (params->null_model) is checked for compatibility
 * and gives ε̄ = (1+w)ε(x,y) − wε_null(x) with the conditional model's
 * learned variance. */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"

static DiffuseModel *
load_model (const char *name)
{
  const char *data = g_getenv ("DIFFUSE_TEST_DATA");
  g_autofree char *path = g_build_filename (data != NULL ? data : "tests/data",
                                            "golden", name, NULL);
  g_autoptr (GError) error = NULL;
  DiffuseModel *m = diffuse_model_new_from_file (path, &error);

  g_assert_no_error (error);
  return m;
}

typedef void (*Mutate) (DiffuseSampleParams *p);

#define BAD(fn, body)                                                          \
  static void fn (DiffuseSampleParams *p)                                      \
  {                                                                            \
    body;                                                                      \
  }
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
    { "steps 0", steps_0 },
    { "steps > T", steps_over },
    { "eta < 0", eta_neg },
    { "eta > 10", eta_big },
    { "eta NaN", eta_nan },
    { "eta inf", eta_inf },
    { "guidance < 0", guid_neg },
    { "guidance > 100", guid_big },
    { "guidance NaN", guid_nan },
    { "guidance inf", guid_inf },
    { "class -2", class_low },
    { "class = num_classes", class_high },
    { "count 0", count_0 },
    { "count 65", count_65 },
    { "height 15", size_odd },
    { "width -16", size_neg },
    { "strength 0", strength_0 },
    { "strength > 1", strength_big },
    { "strength NaN", strength_nan },
    { "sampler", sampler_bad },
    { "variance", variance_bad },
    { "learned, no learn_sigma", variance_learned },
    { "respacing fast", respacing_garbage },
    { "respacing ddim999", respacing_big },
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

  /* the defaults fitted to the model (guidance 0: it cannot be guided)
   * are valid; an explicit w is refused */
  diffuse_sample_params_init (&p);
  p.class_label = 1;
  diffuse_settings_fit_model (&p, 0, m);
  g_assert_cmpfloat (p.guidance, ==, 0.0);
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
  diffuse_settings_fit_model (&p, 0, u);
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
  diffuse_settings_fit_model (&p, 0, s);
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
on_progress (gint step, gint n_steps, const float *x0, gint count,
             gint channels, gint height, gint width, gpointer user_data)
{
  Progress *pr = user_data;

  pr->calls++;
  pr->ok = pr->ok && step == pr->last + 1 && count == 2 && channels == 1 &&
           height == 16 && width == 16 && x0 != NULL;
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
max_abs_value (const float *a, gsize n)
{
  double m = 0;

  for (gsize j = 0; j < n; j++)
    m = MAX (m, fabs ((double) a[j]));
  return m;
}

/* Paths that batch the network differently (count 1 against 2, guidance in
 * one batch against a separate null-model pass) agree up to rounding:
 * OpenBLAS's sums may be ordered differently for another batch size (not
 * on its AVX-512 kernels, but on its Zen/AVX2 ones: seen 4e-4 after three
 * clipped steps), which the first steps at ᾱ near 0 amplify.  Errors of
 * the kind these tests look for (a wrong label, variance or count) are
 * above 1e-2. */
#define BATCHING_TOL 2e-3

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
  float xT[2 * 16 * 16], guided[2 * 16 * 16], cond[2 * 16 * 16],
      null[2 * 16 * 16];
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
  g_test_message (
      "guided x0 vs (1+w) cond - w null: max diff %.3g (scale %.3g); "
      "cond vs guided differ by %.3g",
      d, scale, max_abs_diff (cond, guided, 2 * img));
  g_assert_cmpfloat (d, <, 1e-4 * MAX (1.0, scale));
  g_assert_cmpfloat (max_abs_diff (cond, guided, 2 * img), >, 1e-2);

  /* the first image does not depend on count, up to rounding (see
   * BATCHING_TOL); the unclipped x0 amplifies ε by 1/sqrt(ᾱ) and the
   * guidance by 1 + w, so here the tolerance is relative to its size */
  p.class_label = 2;
  p.guidance = 3.0;
  p.count = 1;
  g_assert_true (diffuse_sample (m, &p, one, NULL, &error));
  double x0_size = max_abs_value (guided, img);
  g_test_message (
      "count 1 vs first of count 2 (unclipped x0 up to %.3g): max diff %.3g",
      x0_size, max_abs_diff (one, guided, img));
  g_assert_cmpfloat (max_abs_diff (one, guided, img), <,
                     1e-5 * MAX (1.0, x0_size));

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
  g_test_message ("count 1 vs first of count 2: max diff %.3g",
                  max_abs_diff (a, b, img));
  g_assert_cmpfloat (max_abs_diff (a, b, img), <, BATCHING_TOL);
  g_assert_cmpfloat (max_abs_diff (b, b + img, img), >, 1e-2);
}

/* ---- a separate null model (params->null_model) --------------------- */

/* onelevel: 2 channels, 16 px, 3 classes WITHOUT a null class, learn_sigma,
 * T = 1000 linear (like OpenAI's ImageNet models); frac: 2 channels,
 * unconditional, learn_sigma, T = 1000 linear (its null model). */
static void
test_null_model_rules (void)
{
  g_autoptr (DiffuseModel) m = load_model ("forward-onelevel.safetensors");
  g_autoptr (DiffuseModel) frac = load_model ("forward-frac.safetensors");
  g_autoptr (DiffuseModel) ga = load_model ("forward-ga-3level.safetensors");
  g_autoptr (DiffuseModel) rgb = load_model ("forward-rgb-uncond.safetensors");
  g_autoptr (DiffuseModel) wide = load_model ("forward-nonsquare.safetensors");
  const struct
  {
    const DiffuseModel *model, *null_model;
    gint size;
    const char *want;
  } bad[] = {
    /* no null class and no null model: the old clear error */
    { m, NULL, 16, "has no null class; give a separate unconditional model" },
    { m, ga, 16, "the null model is class-conditional without a null class" },
    { m, rgb, 16, "the null model has 3 input channels, the model 2" },
    /* nonsquare: 3 channels, T = 1000 linear; rgb-uncond: T = 200 cosine */
    { wide, rgb, 16,
      "the null model has diffusion_steps = 200, the model 1000" },
    /* onelevel runs at any size, frac (3 levels) at multiples of 4 */
    { m, frac, 18, "null model: " },
  };
  float out[2 * 18 * 18];

  for (guint k = 0; k < G_N_ELEMENTS (bad); k++)
    {
      g_autoptr (GError) error = NULL;
      DiffuseSampleParams p;

      diffuse_sample_params_init (&p);
      p.steps = 2;
      p.class_label =
          diffuse_model_get_config (bad[k].model)->num_classes > 0 ? 1 : -1;
      p.guidance = 2.0;
      p.null_model = bad[k].null_model;
      p.height = p.width = bad[k].size;
      g_assert_false (
          diffuse_sample_params_validate (&p, bad[k].model, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
      g_test_message ("null model case %u: %s", k, error->message);
      if (strstr (error->message, bad[k].want) == NULL)
        g_error ("case %u: \"%s\" lacks \"%s\"", k, error->message,
                 bad[k].want);
      g_clear_error (&error);
      out[0] = 42.0f;
      g_assert_false (diffuse_sample (bad[k].model, &p, out, NULL, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
      g_assert_cmpfloat (out[0], ==, 42.0f);
    }

  /* the size message names the multiple the null model needs */
  {
    g_autoptr (GError) error = NULL;
    DiffuseSampleParams p;

    diffuse_sample_params_init (&p);
    p.class_label = 0;
    p.guidance = 1.0;
    p.null_model = frac;
    p.height = 18;
    g_assert_false (diffuse_sample_params_validate (&p, m, &error));
    g_assert_nonnull (strstr (error->message, "multiples of 4"));
  }

  DiffuseSampleParams p;
  diffuse_sample_params_init (&p);
  p.class_label = 1;
  p.guidance = 2.0;
  p.null_model = frac;
  g_assert_true (diffuse_sample_params_validate (&p, m, NULL));
  p.height = 20, p.width = 12;
  g_assert_true (diffuse_sample_params_validate (&p, m, NULL));
  /* class -1 still needs the model's own null class */
  p.class_label = -1;
  g_assert_false (diffuse_sample_params_validate (&p, m, NULL));
  /* an unconditional model may be guided away from another model */
  diffuse_sample_params_init (&p);
  p.guidance = 1.0;
  g_assert_false (diffuse_sample_params_validate (&p, frac, NULL));
  p.null_model = m;
  g_assert_false (
      diffuse_sample_params_validate (&p, frac, NULL)); /* no null class */
  p.null_model = frac;
  g_assert_true (diffuse_sample_params_validate (&p, frac, NULL));
  /* without guidance the null model is still checked, never run */
  diffuse_sample_params_init (&p);
  p.class_label = 1;
  p.null_model = rgb;
  g_assert_false (diffuse_sample_params_validate (&p, m, NULL));
}

static gboolean
keep_first_x0 (gint step, gint n_steps, const float *x0, gint count,
               gint channels, gint height, gint width, gpointer user_data)
{
  (void) n_steps;
  if (step == 1)
    memcpy (user_data, x0,
            (gsize) count * channels * height * width * sizeof (float));
  return TRUE;
}

/* ε̄ = (1+w)ε_m(x, y) − w·ε_null(x) computed here from two
 * diffuse_unet_forward calls, against diffuse_sample with null_model: steps
 * 2 keeps t = 999 and 0, and the progress callback's first x0 prediction
 * (at t = 999, no clipping) is x0 = sqrt(1/ᾱ)x − sqrt(1/ᾱ − 1)ε̄, so
 * ε̄ = (sqrt(1/ᾱ)x − x0) / sqrt(1/ᾱ − 1). */
static void
test_null_model_eps (void)
{
  g_autoptr (DiffuseModel) m = load_model ("forward-onelevel.safetensors");
  g_autoptr (DiffuseModel) frac = load_model ("forward-frac.safetensors");
  enum
  {
    N = 2,
    C = 2,
    HW = 16 * 16,
    IMG = C * HW
  };
  const double w = 2.5;
  float xT[N * IMG], out[N * IMG], cond[N * 2 * IMG], null[N * 2 * IMG];
  const float t[N] = { 999.0f, 999.0f };
  const gint y[N] = { 1, 1 }, no_label[N] = { 0, 0 };
  DiffuseSampleParams p;
  g_autoptr (GError) error = NULL;

  float final[N * IMG];

  diffuse_rng_normal (21, 0, 0, xT, N * IMG);
  diffuse_sample_params_init (&p);
  p.steps = 2;
  p.count = N;
  p.clip_denoised = FALSE;
  p.init_noise = xT;
  p.class_label = 1;
  p.guidance = w;
  p.null_model = frac;
  p.progress = keep_first_x0;
  p.user_data = out;
  g_assert_true (diffuse_sample (m, &p, final, NULL, &error));
  g_assert_no_error (error);

  g_autoptr (DiffuseUNet) um = diffuse_unet_new (m, N, 16, 16, 0, &error);
  g_autoptr (DiffuseUNet) un = diffuse_unet_new (frac, N, 16, 16, 0, &error);
  g_assert_no_error (error);
  g_assert_true (diffuse_unet_forward (um, N, xT, t, y, cond, &error));
  g_assert_true (diffuse_unet_forward (un, N, xT, t, no_label, null, &error));
  g_assert_no_error (error);

  g_autoptr (DiffuseSchedule) sched =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 1000, "2", &error);
  g_assert_no_error (error);
  g_assert_cmpint (diffuse_schedule_get_timesteps (sched)[1], ==, 999);
  double abar = diffuse_schedule_get_alphas_cumprod (sched)[1];
  double c1 = sqrt (1.0 / abar), c2 = sqrt (1.0 / abar - 1.0);
  double d = 0, d_cond = 0, d_null = 0, scale = 0;

  for (gint k = 0; k < N; k++)
    for (gint j = 0; j < IMG; j++)
      {
        /* both models output 2C channels (learn_sigma): ε is the first C */
        double ec = cond[k * 2 * IMG + j], en = null[k * 2 * IMG + j];
        double want = (1.0 + w) * ec - w * en;
        double got = (c1 * xT[k * IMG + j] - out[k * IMG + j]) / c2;

        d = MAX (d, fabs (got - want));
        d_cond = MAX (d_cond, fabs (got - ec));
        d_null = MAX (d_null, fabs (got - en));
        scale = MAX (scale, fabs (want));
      }
  g_test_message (
      "null model guidance, w = %g: ε̄ max diff %.3g (|ε̄| max %.3g); "
      "differs from ε(x,y) by %.3g, from the null model's ε by %.3g",
      w, d, scale, d_cond, d_null);
  g_assert_cmpfloat (d, <, 2e-6 * MAX (1.0, scale));
  g_assert_cmpfloat (d_cond, >, 0.1);
  g_assert_cmpfloat (d_null, >, 0.1);
}

/* The model denoiser of diffuse_sample rebuilt from the public API: ε̄ from
 * two UNets, and the learned variance from the conditional one (or, to
 * show the check can tell, from the null model). */
typedef struct
{
  DiffuseUNet *cond, *null;
  gint label, hw;
  double w;
  gboolean var_from_null;
} PairDenoiser;

static gboolean
pair_denoise (gpointer user_data, gint count, const float *x_t, gint t_index,
              double t_model, float *eps_out, float *var_out, GError **error)
{
  PairDenoiser *pd = user_data;
  gsize img = 2 * (gsize) pd->hw;
  g_autofree float *c = g_new (float, count * 2 * img);
  g_autofree float *n = g_new (float, count * 2 * img);
  g_autofree float *t = g_new (float, count);
  g_autofree gint *y = g_new (gint, count);
  g_autofree gint *none = g_new0 (gint, count);

  (void) t_index;
  for (gint k = 0; k < count; k++)
    t[k] = (float) t_model, y[k] = pd->label;
  if (!diffuse_unet_forward (pd->cond, count, x_t, t, y, c, error) ||
      !diffuse_unet_forward (pd->null, count, x_t, t, none, n, error))
    return FALSE;
  for (gint k = 0; k < count; k++)
    for (gsize j = 0; j < img; j++)
      {
        eps_out[k * img + j] = (float) ((1.0 + pd->w) * c[k * 2 * img + j] -
                                        pd->w * n[k * 2 * img + j]);
        if (var_out != NULL)
          var_out[k * img + j] =
              (pd->var_from_null ? n : c)[k * 2 * img + img + j];
      }
  return TRUE;
}

/* DDPM with learned variance over respacing "3" (t = 999, 500, 0), seeded
 * noise at every step: diffuse_sample with null_model equals the sampler
 * loop over pair_denoise, whose variance comes from the conditional model. */
static void
test_null_model_learned_variance (void)
{
  g_autoptr (DiffuseModel) m = load_model ("forward-onelevel.safetensors");
  g_autoptr (DiffuseModel) frac = load_model ("forward-frac.safetensors");
  enum
  {
    N = 2,
    IMG = 2 * 16 * 16
  };
  float got[N * IMG], want[N * IMG], wrong[N * IMG];
  DiffuseSampleParams p;
  g_autoptr (GError) error = NULL;
  PairDenoiser pd = { NULL, NULL, 2, 16 * 16, 1.5, FALSE };

  diffuse_sample_params_init (&p);
  p.sampler = DIFFUSE_SAMPLER_DDPM;
  p.variance = DIFFUSE_VARIANCE_LEARNED;
  p.steps = 3;
  p.count = N;
  p.seed = 77;
  p.class_label = pd.label;
  p.guidance = pd.w;
  p.null_model = frac;
  g_assert_true (diffuse_sample (m, &p, got, NULL, &error));
  g_assert_no_error (error);

  g_autoptr (DiffuseSchedule) sched =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 1000, "3", &error);
  pd.cond = diffuse_unet_new (m, N, 16, 16, 0, &error);
  pd.null = diffuse_unet_new (frac, N, 16, 16, 0, &error);
  g_assert_no_error (error);
  g_assert_true (diffuse_sample_with (sched, pair_denoise, &pd, TRUE, &p, N, 2,
                                      16, 16, want, NULL, &error));
  pd.var_from_null = TRUE;
  g_assert_true (diffuse_sample_with (sched, pair_denoise, &pd, TRUE, &p, N, 2,
                                      16, 16, wrong, NULL, &error));
  g_assert_no_error (error);
  diffuse_unet_free (pd.cond);
  diffuse_unet_free (pd.null);

  double d = max_abs_diff (got, want, N * IMG);
  double d_wrong = max_abs_diff (got, wrong, N * IMG);
  g_test_message ("DDPM learned, null model: vs reference loop %.3g; "
                  "vs variance from the null model %.3g",
                  d, d_wrong);
  g_assert_cmpfloat (d, <, 1e-5);
  g_assert_cmpfloat (d_wrong, >, 1e-2);
}

/* A class-conditional null model contributes its null class: grey-cond as
 * its own null model gives exactly its built-in guidance (two batches of
 * count instead of one of 2·count). */
static void
test_null_model_null_class (void)
{
  g_autoptr (DiffuseModel) m = load_model ("forward-grey-cond.safetensors");
  g_autoptr (DiffuseModel) again = load_model ("forward-grey-cond.safetensors");
  float a[2 * 16 * 16], b[2 * 16 * 16], c[2 * 16 * 16];
  DiffuseSampleParams p;
  g_autoptr (GError) error = NULL;

  diffuse_sample_params_init (&p);
  p.steps = 3;
  p.count = 2;
  p.seed = 5;
  p.class_label = 2;
  p.guidance = 1.5;
  g_assert_true (diffuse_sample (m, &p, a, NULL, &error));
  p.null_model = again;
  g_assert_true (diffuse_sample (m, &p, b, NULL, &error));
  p.guidance = 0.0;
  g_assert_true (diffuse_sample (m, &p, c, NULL, &error));
  g_assert_no_error (error);
  g_test_message ("own null class vs the same model as null model: %.3g "
                  "(unguided differs by %.3g)",
                  max_abs_diff (a, b, 2 * 16 * 16),
                  max_abs_diff (a, c, 2 * 16 * 16));
  g_assert_cmpfloat (max_abs_diff (a, b, 2 * 16 * 16), <, BATCHING_TOL);
  g_assert_cmpfloat (max_abs_diff (a, c, 2 * 16 * 16), >, 1e-2);
}

/* Classifier-guided DDIM spaces `steps` as guided-diffusion's "ddimN"
 * (sample.c, schedule_for; issue 11): bit for bit the run with respacing
 * "ddimN", starting at t = 900 for N = 10 of T = 1000 rather than at
 * t = 999.  DDPM with a classifier, DDIM without one (or with scale 0)
 * keep the even spacing "N" that ends at T−1.  An N no integer stride
 * gives is refused before any work, naming the nearest N that work. */
typedef struct
{
  float out[2 * 16 * 16];
  gint start_timestep, n_steps;
} SpacingRun;

static void
spacing_run (const DiffuseModel *m, DiffuseSampleParams *p, SpacingRun *r)
{
  g_autoptr (GError) error = NULL;
  DiffuseSampleInfo info;

  g_assert_true (diffuse_sample (m, p, r->out, &info, &error));
  g_assert_no_error (error);
  r->start_timestep = info.start_timestep;
  r->n_steps = info.n_steps_run;
}

static void
test_classifier_ddim_spacing (void)
{
  g_autoptr (DiffuseModel) m = load_model ("forward-grey-cond.safetensors");
  g_autoptr (DiffuseModel) clf =
      load_model ("clf-grey-attn-ss-updown.safetensors");
  g_autoptr (GError) error = NULL;
  DiffuseSampleParams p;
  SpacingRun a, b;

  diffuse_sample_params_init (&p);
  p.steps = 10;
  p.count = 2;
  p.class_label = 1;
  p.guidance = 1.0;
  p.seed = 3;
  p.n_threads = 1;
  p.sampler = DIFFUSE_SAMPLER_DDIM;
  p.classifier = clf;
  p.classifier_scale = 4.0;

  /* classifier + DDIM: steps = 10 is "ddim10" (0, 100, …, 900) */
  spacing_run (m, &p, &a);
  p.respacing = "ddim10";
  spacing_run (m, &p, &b);
  g_assert_cmpint (a.start_timestep, ==, 900);
  g_assert_cmpint (b.start_timestep, ==, 900);
  g_assert_cmpint (a.n_steps, ==, 10);
  g_assert_cmpmem (a.out, sizeof a.out, b.out, sizeof b.out);
  /* and not the even spacing, which the explicit "10" still gives */
  p.respacing = "10";
  spacing_run (m, &p, &b);
  g_assert_cmpint (b.start_timestep, ==, 999);
  g_test_message ("classifier DDIM: ddim10 vs even \"10\" differ by %.3g",
                  max_abs_diff (a.out, b.out, 2 * 16 * 16));
  g_assert_cmpfloat (max_abs_diff (a.out, b.out, 2 * 16 * 16), >, 1e-3);
  p.respacing = NULL;

  /* the estimate sees the same schedule: 10 steps, twice (guided) */
  DiffuseRunEstimate est;
  g_assert_true (diffuse_sample_estimate (m, &p, &est, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (est.n_evals, ==, 2 * 10 * 2);
  /* and counts the classifier: the memory of the state diffuse_sample
   * makes for it (the real one's arena, its logits, timestep and label
   * arrays, the sampler's gradient buffer), its weights, and a forward
   * pass and an input gradient per image and step */
  {
    DiffuseSampleParams q = p;
    DiffuseRunEstimate none;
    g_autoptr (DiffuseClassifier) state =
        diffuse_classifier_new (clf, 2, 16, 16, 1, &error);
    const DiffuseModelConfig *cc = diffuse_model_get_config (clf);
    guint64 img = 16 * 16 * diffuse_model_get_config (m)->in_channels;

    g_assert_no_error (error);
    q.classifier_scale = 0.0;
    g_assert_true (diffuse_sample_estimate (m, &q, &none, &error));
    g_assert_cmpuint (est.bytes - none.bytes, ==,
                      diffuse_classifier_get_scratch_bytes (state) +
                          2 * cc->num_classes * sizeof (double) + 4 * 2 * 2 +
                          4 * 2 * img);
    g_assert_cmpuint (est.weight_bytes - none.weight_bytes, ==,
                      4 * diffuse_model_get_n_params (clf));
    g_assert_cmpuint (est.n_evals, ==, none.n_evals);
    g_assert_cmpfloat (est.flops - none.flops, ==,
                       10.0 * 2.0 *
                           (double) diffuse__classifier_get_flops (state, 2));
    g_assert_cmpfloat (est.flops - none.flops, >, 0.0);
  }

  /* even spacing: DDPM with a classifier, scale 0, and no classifier */
  for (gint k = 0; k < 3; k++)
    {
      DiffuseSampleParams q = p;

      if (k == 0)
        q.sampler = DIFFUSE_SAMPLER_DDPM;
      else if (k == 1)
        q.classifier_scale = 0.0;
      else
        q.classifier = NULL;
      spacing_run (m, &q, &a);
      q.respacing = "10";
      spacing_run (m, &q, &b);
      g_assert_cmpint (a.start_timestep, ==, 999);
      g_assert_cmpint (b.start_timestep, ==, 999);
      g_assert_cmpmem (a.out, sizeof a.out, b.out, sizeof b.out);
    }

  /* steps T = 1000 cannot take 60 (strides 17 and 16 give 59 and 63) nor
   * 1 (no stride below T gives one step): refused before any work, naming
   * the counts that work; an explicit respacing or DDPM still run them */
  const struct
  {
    gint steps;
    const char *names;
  } bad[] = { { 60, "steps = 59 or 63" }, { 1, "steps = 2," } };
  for (guint k = 0; k < G_N_ELEMENTS (bad); k++)
    {
      p.steps = bad[k].steps;
      g_assert_false (diffuse_sample_params_validate (&p, m, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
      g_test_message ("steps %d: %s", bad[k].steps, error->message);
      g_assert_nonnull (strstr (error->message, bad[k].names));
      g_assert_nonnull (strstr (error->message, "respacing"));
      g_clear_error (&error);
      a.out[0] = 42.0f;
      g_assert_false (diffuse_sample (m, &p, a.out, NULL, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
      g_assert_cmpfloat (a.out[0], ==, 42.0f);
      g_clear_error (&error);
      g_assert_false (diffuse_sample_estimate (m, &p, &est, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
      g_clear_error (&error);
      p.respacing = bad[k].steps == 60 ? "60" : "1";
      g_assert_true (diffuse_sample_params_validate (&p, m, NULL));
      p.respacing = NULL;
      p.sampler = DIFFUSE_SAMPLER_DDPM;
      g_assert_true (diffuse_sample_params_validate (&p, m, NULL));
      p.sampler = DIFFUSE_SAMPLER_DDIM;
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sample-model/bad-params", test_bad_params);
  g_test_add_func ("/sample-model/null-class-rules", test_null_class_rules);
  g_test_add_func ("/sample-model/progress-and-cancel",
                   test_progress_and_cancel);
  g_test_add_func ("/sample-model/guidance-batch", test_guidance_batch);
  g_test_add_func ("/sample-model/null-model-rules", test_null_model_rules);
  g_test_add_func ("/sample-model/null-model-eps", test_null_model_eps);
  g_test_add_func ("/sample-model/null-model-learned-variance",
                   test_null_model_learned_variance);
  g_test_add_func ("/sample-model/null-model-null-class",
                   test_null_model_null_class);
  g_test_add_func ("/sample-model/classifier-ddim-spacing",
                   test_classifier_ddim_spacing);
  return g_test_run ();
}
