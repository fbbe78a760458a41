/* Inpainting in the sampler loop (engine/inpaint.c, sampler.c) with a
 * closed-form optimal denoiser.
 *
 * Data: pixel pairs (columns 2c, 2c + 1) jointly Gaussian, mean 0,
 * variance S², correlation RHO, independent across pairs.  For x_t =
 * sqrt(ᾱ)x0 + sqrt(1−ᾱ)ε the optimal ε predictor of a pair is
 *   E[ε | x_t] = sqrt(1−ᾱ)·C⁻¹x_t,   C = ᾱΣ + (1−ᾱ)I.
 * The mask regenerates the odd columns given the even ones: the exact
 * conditional is x_b | x_a ~ N(RHO·x_a, S²(1 − RHO²)), which the inpainted
 * pixels should approach (RePaint's resampling brings them closer).
 */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"

#define H 64
#define W 64
#define COUNT 8
#define HW ((gsize) H * W)
#define N_PIX ((gsize) COUNT * HW)

static const double S = 0.5, RHO = 0.9;

typedef struct
{
  const DiffuseSchedule *schedule;
  gint calls;
  /* kept-path check: the original, its forward noise and the mask */
  const float *x0, *mask;
  guint64 seed;
  gint start;        /* img2img's start index */
  gint visits[1000]; /* calls so far per index */
  double max_err;
} PairOracle;

static gboolean
pair_denoise (gpointer user_data, gint batch, const float *x_t, gint t_index,
              double t_model, float *eps_out, float *var_out, GError **error)
{
  PairOracle *o = user_data;
  double abar = diffuse_schedule_get_alphas_cumprod (o->schedule)[t_index];
  double v = abar * S * S + 1.0 - abar, c = abar * RHO * S * S;
  double det = v * v - c * c, k = sqrt (1.0 - abar);
  gsize n = (gsize) batch * HW;

  (void) t_model;
  (void) var_out;
  (void) error;
  o->calls++;
  for (gsize j = 0; j < n; j++)
    {
      double self = x_t[j], other = x_t[j ^ 1];

      eps_out[j] = (float) (k * (v * self - c * other) / det);
    }
  /* every x_t the network sees has the kept pixels on the noised
   * original's path, sqrt(ᾱ)x0 + sqrt(1−ᾱ)ε, with the run's ε */
  if (o->x0 != NULL)
    {
      /* ε: img2img's stream 1 at the start, then fresh on every landing */
      g_autofree float *eps = g_new (float, n);
      gint v = o->visits[t_index]++;

      if (t_index == o->start && v == 0)
        diffuse_rng_normal (o->seed, 1, 0, eps, n);
      else
        diffuse_rng_normal (o->seed,
                            DIFFUSE__STREAM_KEPT0 + (guint64) t_index +
                                ((guint64) v << 32),
                            0, eps, n);
      for (gsize j = 0; j < n; j++)
        if (o->mask[j % HW] == 0.0f)
          {
            double want = sqrt (abar) * o->x0[j] + sqrt (1.0 - abar) * eps[j];

            o->max_err = MAX (o->max_err, fabs (x_t[j] - want));
          }
    }
  return TRUE;
}

/* Pairs drawn from the data distribution. */
static void
draw_pairs (float *x, guint64 seed)
{
  g_autofree float *z = g_new (float, N_PIX);

  diffuse_rng_normal (seed, 9, 0, z, N_PIX);
  for (gsize j = 0; j < N_PIX; j += 2)
    {
      x[j] = (float) (S * z[j]);
      x[j + 1] = (float) (S * (RHO * z[j] + sqrt (1.0 - RHO * RHO) * z[j + 1]));
    }
}

static void
odd_column_mask (float *mask)
{
  for (gsize j = 0; j < HW; j++)
    mask[j] = (j % W) % 2 == 1 ? 1.0f : 0.0f;
}

static void
params_for (DiffuseSampleParams *p, DiffuseSamplerKind sampler,
            const float *init, const float *mask)
{
  diffuse_sample_params_init (p);
  p->sampler = sampler;
  p->clip_denoised = FALSE;
  p->init_image = init;
  p->mask = mask;
  p->seed = 11;
}

/* Kept pixels follow the noised original at every step and equal it at
 * the end, bit for bit; for DDIM, DDPM, η > 0, img2img strength < 1 and
 * with resampling. */
static void
test_kept_path (void)
{
  g_autoptr (DiffuseSchedule) sched =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_COSINE, 1000, "20", NULL);
  g_autofree float *init = g_new (float, N_PIX);
  g_autofree float *out = g_new (float, N_PIX);
  float mask[HW];
  struct
  {
    DiffuseSamplerKind sampler;
    double eta, strength;
    gint r, j;
  } cases[] = {
    { DIFFUSE_SAMPLER_DDIM, 0.0, 1.0, 1, 10 },
    { DIFFUSE_SAMPLER_DDIM, 1.0, 0.6, 1, 10 },
    { DIFFUSE_SAMPLER_DDPM, 0.0, 1.0, 3, 4 },
    { DIFFUSE_SAMPLER_DDIM, 0.5, 0.7, 2, 3 },
  };

  draw_pairs (init, 3);
  odd_column_mask (mask);
  /* a soft edge: one column at 0.25 */
  for (gsize r = 0; r < H; r++)
    mask[r * W + 3] = 0.25f;

  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      PairOracle o = {
        .schedule = sched, .x0 = init, .mask = mask, .seed = 11
      };
      DiffuseSampleParams p;
      DiffuseSampleInfo info;
      g_autoptr (GError) error = NULL;

      params_for (&p, cases[c].sampler, init, mask);
      p.eta = cases[c].eta;
      p.strength = cases[c].strength;
      p.resample_count = cases[c].r;
      p.resample_jump = cases[c].j;
      o.start = diffuse_schedule_index_for_strength (sched, p.strength);
      g_assert_true (diffuse_sample_with (sched, pair_denoise, &o, FALSE, &p,
                                          COUNT, 1, H, W, out, &info, &error));
      g_assert_no_error (error);
      g_assert_cmpint (o.calls, ==, info.n_steps_run);
      g_test_message ("%s eta %.1f strength %.1f r %d j %d: %d network calls, "
                      "kept path error %.2g",
                      diffuse_sampler_kind_to_string (p.sampler), p.eta,
                      p.strength, p.resample_count, p.resample_jump, o.calls,
                      o.max_err);
      g_assert_cmpfloat (o.max_err, <, 1e-6);
      gsize changed = 0;
      for (gsize j = 0; j < N_PIX; j++)
        {
          if (mask[j % HW] == 0.0f)
            g_assert_true (out[j] == init[j]);
          else
            changed += out[j] != init[j];
        }
      g_assert_cmpuint (changed, ==, N_PIX / 2);
      if (p.resample_count > 1)
        g_assert_cmpint (info.n_steps_run, >, info.start_index + 1);
      else
        g_assert_cmpint (info.n_steps_run, ==, info.start_index + 1);
    }
}

/* A mask of ones regenerates everything: the very img2img run without a
 * mask. */
static void
test_all_ones (void)
{
  g_autoptr (DiffuseSchedule) sched =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 1000, "ddim25", NULL);
  g_autofree float *init = g_new (float, N_PIX);
  g_autofree float *a = g_new (float, N_PIX);
  g_autofree float *b = g_new (float, N_PIX);
  float ones[HW];
  PairOracle o = { .schedule = sched };
  DiffuseSampleParams p;

  draw_pairs (init, 4);
  for (gsize j = 0; j < HW; j++)
    ones[j] = 1.0f;
  params_for (&p, DIFFUSE_SAMPLER_DDIM, init, NULL);
  p.eta = 1.0;
  p.strength = 0.8;
  g_assert_true (diffuse_sample_with (sched, pair_denoise, &o, FALSE, &p, COUNT,
                                      1, H, W, a, NULL, NULL));
  p.mask = ones;
  g_assert_true (diffuse_sample_with (sched, pair_denoise, &o, FALSE, &p, COUNT,
                                      1, H, W, b, NULL, NULL));
  g_assert_cmpmem (a, N_PIX * sizeof (float), b, N_PIX * sizeof (float));
}

/* Regression of the inpainted x_b on the kept x_a: slope and residual
 * variance against the exact conditional N(RHO·x_a, S²(1−RHO²)). */
static void
regress (const float *x, double *slope, double *resid)
{
  double saa = 0, sab = 0, sbb = 0;
  gsize n = 0;

  for (gsize j = 0; j < N_PIX; j += 2)
    {
      saa += (double) x[j] * x[j];
      sab += (double) x[j] * x[j + 1];
      sbb += (double) x[j + 1] * x[j + 1];
      n++;
    }
  *slope = sab / saa;
  *resid = (sbb - sab * sab / saa) / n;
}

static void
converge_case (const char *respacing, DiffuseSamplerKind sampler, double eta,
               gint r, gint jump, double *slope, double *resid)
{
  g_autoptr (DiffuseSchedule) sched =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 1000, respacing, NULL);
  g_autofree float *init = g_new (float, N_PIX);
  g_autofree float *out = g_new (float, N_PIX);
  float mask[HW];
  PairOracle o = { .schedule = sched };
  DiffuseSampleParams p;
  g_autoptr (GError) error = NULL;

  draw_pairs (init, 5);
  odd_column_mask (mask);
  params_for (&p, sampler, init, mask);
  p.eta = eta;
  p.resample_count = r;
  p.resample_jump = jump;
  g_assert_true (diffuse_sample_with (sched, pair_denoise, &o, FALSE, &p, COUNT,
                                      1, H, W, out, NULL, &error));
  g_assert_no_error (error);
  for (gsize j = 0; j < N_PIX; j += 2)
    g_assert_true (out[j] == init[j]);
  regress (out, slope, resid);
  g_test_message (
      "%s steps %s eta %.1f, resample %d x jump %d: slope %.4f (exact %.2f), "
      "residual variance %.4f (exact %.4f)",
      diffuse_sampler_kind_to_string (sampler), respacing, eta, r, jump, *slope,
      RHO, *resid, S * S * (1 - RHO * RHO));
}

/* Measured here (pairs of 8·64·64/2 = 16384; standard error of the slope
 * ≈ 0.004): plain replacement (DDPM 50) gives slope 0.59 and residual
 * variance 0.102 against the exact 0.90 and 0.0475, a bias RePaint's
 * resampling is for; 10 resamplings with jump 1 give 0.86 / 0.058
 * (DDPM 50), 0.87 / 0.051 (DDPM 200), 0.86 (DDIM η = 1).  Fresh noise for
 * the kept pixels at every step matters: one ε for the whole run left the
 * residual variance at 0.065 (DDPM 50, r = 10). */
static void
test_converges (void)
{
  double want_resid = S * S * (1 - RHO * RHO);
  double slope0, resid0, slope, resid;

  /* plain replacement: a biased conditional */
  converge_case ("50", DIFFUSE_SAMPLER_DDPM, 0.0, 1, 10, &slope0, &resid0);
  g_assert_cmpfloat (fabs (slope0 - RHO), >, 0.2);
  /* resampling: most of the way to the exact conditional */
  converge_case ("50", DIFFUSE_SAMPLER_DDPM, 0.0, 10, 1, &slope, &resid);
  g_assert_cmpfloat (fabs (slope - RHO), <, fabs (slope0 - RHO) / 4);
  g_assert_cmpfloat (fabs (resid - want_resid), <,
                     fabs (resid0 - want_resid) / 4);
  g_assert_cmpfloat (fabs (slope - RHO), <, 0.06);
  /* more steps: closer still */
  converge_case ("200", DIFFUSE_SAMPLER_DDPM, 0.0, 10, 1, &slope, &resid);
  g_assert_cmpfloat (fabs (slope - RHO), <, 0.04);
  g_assert_cmpfloat (fabs (resid - want_resid), <, 0.15 * want_resid);
  /* DDIM with η = 1 too */
  converge_case ("50", DIFFUSE_SAMPLER_DDIM, 1.0, 10, 1, &slope, &resid);
  g_assert_cmpfloat (fabs (slope - RHO), <, 0.06);
}

/* RePaint's schedule: levels visited for start 5, jump 2, count 2. */
static void
test_levels (void)
{
  gint n;
  g_autofree gint *l = diffuse__inpaint_levels (5, 2, 2, &n);
  /* 5 4 3 2 | up to 4 | 3 2 1 0 | up to 2 | 1 0 −1 */
  gint want[] = { 5, 4, 3, 2, 4, 3, 2, 1, 0, 2, 1, 0, -1 };

  g_assert_cmpmem (l, n * sizeof (gint), want, sizeof want);
  g_autofree gint *plain = diffuse__inpaint_levels (3, 2, 1, &n);
  gint want_plain[] = { 3, 2, 1, 0, -1 };
  g_assert_cmpmem (plain, n * sizeof (gint), want_plain, sizeof want_plain);
}

static void
test_bad_params (void)
{
  g_autoptr (DiffuseSchedule) sched =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 1000, "10", NULL);
  g_autofree float *init = g_new0 (float, N_PIX);
  g_autofree float *out = g_new (float, N_PIX);
  float mask[HW];
  PairOracle o = { .schedule = sched };
  DiffuseSampleParams p;

  odd_column_mask (mask);
  struct
  {
    const char *what;
    gint field;
    float value;
  } cases[] = {
    { "no init_image", 0, 0 },
    { "mask above 1", 1, 1.5f },
    { "mask NaN", 1, NAN },
    { "negative mask", 1, -0.1f },
    { "resample_count 0", 3, 0 },
    { "resample_jump 0", 4, 0 },
    { "resample_jump past the schedule", 5, 0 },
  };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++)
    {
      g_autoptr (GError) error = NULL;
      float bad[HW];

      memcpy (bad, mask, sizeof mask);
      params_for (&p, DIFFUSE_SAMPLER_DDIM, init, mask);
      switch (cases[c].field)
        {
        case 0:
          p.init_image = NULL;
          break;
        case 1:
          bad[77] = cases[c].value;
          p.mask = bad;
          break;
        case 3:
          p.resample_count = 0;
          break;
        case 4:
          p.resample_count = 2;
          p.resample_jump = 0;
          break;
        case 5:
          p.resample_count = 2;
          p.resample_jump = 10;
          break;
        }
      o.calls = 0;
      g_assert_false (diffuse_sample_with (sched, pair_denoise, &o, FALSE, &p,
                                           COUNT, 1, H, W, out, NULL, &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
      g_assert_cmpint (o.calls, ==, 0);
      g_test_message ("%s: %s", cases[c].what, error->message);
    }

  /* without a mask the resampling settings are not used (a preset may
   * set them), as strength is not without an init image */
  {
    g_autoptr (GError) error = NULL;

    params_for (&p, DIFFUSE_SAMPLER_DDIM, init, NULL);
    p.resample_count = 3;
    p.resample_jump = 2;
    o.calls = 0;
    g_assert_true (diffuse_sample_with (sched, pair_denoise, &o, FALSE, &p,
                                        COUNT, 1, H, W, out, NULL, &error));
    g_assert_no_error (error);
  }
}

/* The context window: the mask's bounds plus the margin, at least
 * image_size on each side, within the image. */
static void
test_window (void)
{
  DiffuseModelConfig cfg = { 0 };
  g_autofree float *mask = g_new0 (float, 100 * 200);
  gint x, y, w, h;

  cfg.image_size = 32;
  g_assert_false (
      diffuse_inpaint_window (&cfg, mask, 100, 200, 8, &x, &y, &w, &h));
  /* a 4 x 6 blob at (x 100..105, y 50..53) */
  for (gint r = 50; r < 54; r++)
    for (gint c = 100; c < 106; c++)
      mask[r * 200 + c] = 0.5f;
  g_assert_true (
      diffuse_inpaint_window (&cfg, mask, 100, 200, 8, &x, &y, &w, &h));
  g_assert_cmpint (w, ==, 32);
  g_assert_cmpint (h, ==, 32);
  g_assert_cmpint (x, <=, 92);
  g_assert_cmpint (x + w, >=, 114);
  g_assert_cmpint (y, <=, 42);
  g_assert_cmpint (y + h, >=, 62);
  /* a big blob near the corner: its bounds plus margin, clamped */
  for (gint r = 0; r < 60; r++)
    for (gint c = 150; c < 200; c++)
      mask[r * 200 + c] = 1.0f;
  g_assert_true (
      diffuse_inpaint_window (&cfg, mask, 100, 200, 8, &x, &y, &w, &h));
  g_assert_cmpint (x, ==, 92);
  g_assert_cmpint (y, ==, 0);
  g_assert_cmpint (x + w, ==, 200);
  g_assert_cmpint (y + h, ==, 68);
  /* an image smaller than the model: the whole image */
  g_assert_true (
      diffuse_inpaint_window (&cfg, mask + 150, 20, 20, 8, &x, &y, &w, &h));
  g_assert_cmpint (x, ==, 0);
  g_assert_cmpint (w, ==, 20);
  /* a model of 4 levels samples natively at multiples of 8: the big
   * blob's 108 x 68 window grows to 112 x 72 */
  cfg.n_levels = 4;
  g_assert_true (
      diffuse_inpaint_window (&cfg, mask, 100, 200, 8, &x, &y, &w, &h));
  g_assert_cmpint (w, ==, 112);
  g_assert_cmpint (h, ==, 72);
  g_assert_cmpint (x + w, ==, 200);
  g_assert_cmpint (y, ==, 0);
}

/* The plan: the window, the run size, and the errors of a bad mask. */
static void
test_plan (void)
{
  DiffuseModelConfig cfg = { 0 };
  g_autofree float *mask = g_new0 (float, 40 * 50);
  DiffuseInpaintPlan plan;
  g_autoptr (GError) error = NULL;

  cfg.image_size = 32;
  cfg.n_levels = 3;
  g_assert_false (diffuse_inpaint_plan (&cfg, mask, 40, 50, 4, &plan, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_clear_error (&error);
  mask[10 * 50 + 20] = 1.0f;
  g_assert_true (diffuse_inpaint_plan (&cfg, mask, 40, 50, 4, &plan, &error));
  g_assert_no_error (error);
  g_assert_cmpint (plan.width, ==, 32);
  g_assert_cmpint (plan.height, ==, 32);
  g_assert_false (plan.scaled);
  g_assert_cmpint (plan.run_width, ==, 32);
  /* 1 at the top-left pixel of a 33 x 33 image: a 33 x 33 window does
   * not fit the size step 4, so it is sampled at 32 x 32, scaled */
  g_assert_true (diffuse_inpaint_plan (&cfg, mask, 33, 33, 40, &plan, &error));
  g_assert_true (plan.scaled);
  g_assert_cmpint (plan.run_height, ==, 32);
  mask[3] = 1.5f;
  g_assert_false (diffuse_inpaint_plan (&cfg, mask, 40, 50, 4, &plan, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_clear_error (&error);
  mask[3] = 0.0f;
  g_assert_false (diffuse_inpaint_plan (&cfg, mask, 40, 50, -1, &plan, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/inpaint/levels", test_levels);
  g_test_add_func ("/inpaint/window", test_window);
  g_test_add_func ("/inpaint/plan", test_plan);
  g_test_add_func ("/inpaint/bad-params", test_bad_params);
  g_test_add_func ("/inpaint/all-ones", test_all_ones);
  g_test_add_func ("/inpaint/kept-path", test_kept_path);
  g_test_add_func ("/inpaint/converges", test_converges);
  return g_test_run ();
}
