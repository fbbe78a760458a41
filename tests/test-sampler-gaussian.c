/* The sampler loop (engine/sampler.c) with closed-form optimal denoisers.
 *
 * For data x0 ~ N(μ, s²) per pixel, x_t = sqrt(ᾱ)x0 + sqrt(1−ᾱ)ε is
 * Gaussian too and the optimal ε predictor is linear:
 *   E[ε | x_t] = sqrt(1−ᾱ)(x_t − sqrt(ᾱ)μ) / (ᾱs² + 1 − ᾱ).
 * Every sampler step is then x' = a·x + b + σz, so this file propagates
 * the mean and variance of x through the steps with its own recurrence
 * (written with the seed's μθ = (x − (1−α)/sqrt(1−ᾱ)·ε)/sqrt(α) form, not
 * the engine's posterior-coefficient form) and compares the samples with
 * it, and with the data distribution where the sampler should reach it.
 * A two-component mixture uses the responsibility-weighted predictor.
 *
 * Pixels are independent, so one run of count × 1 × 64 × 64 gives many
 * independent draws; tolerances are 5 standard errors.
 */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"

#define H 64
#define W 64
#define COUNT 8
#define N_SEEDS 2
#define N_PIX ((gsize) COUNT * H * W)

typedef struct
{
  const DiffuseSchedule *schedule;
  gint n_comp;
  double mu[2], s[2], pi[2];
  /* learned variance: raw output 2v − 1 per respaced index, or NULL */
  const double *raw_var;
  gint calls;
} Oracle;

/* Optimal ε̂ for the mixture Σ π_k N(μ_k, s_k²): Σ r_k(x) ε̂_k(x) with
 * responsibilities r_k ∝ π_k N(x; sqrt(ᾱ)μ_k, ᾱs_k² + 1 − ᾱ). */
static gboolean
oracle_denoise (gpointer user_data, gint batch, const float *x_t, gint t_index,
                double t_model, float *eps_out, float *var_out, GError **error)
{
  Oracle *o = user_data;
  double abar = diffuse_schedule_get_alphas_cumprod (o->schedule)[t_index];
  gsize n = (gsize) batch * H * W;

  (void) error;
  g_assert_cmpfloat (t_model, ==,
                     diffuse_schedule_get_timesteps (o->schedule)[t_index]);
  o->calls++;
  for (gsize j = 0; j < n; j++)
    {
      double x = x_t[j], num = 0, den = 0;
      double logp[2], lmax = -INFINITY;

      for (gint k = 0; k < o->n_comp; k++)
        {
          double v = abar * o->s[k] * o->s[k] + 1.0 - abar;
          double d = x - sqrt (abar) * o->mu[k];

          logp[k] = log (o->pi[k]) - 0.5 * log (v) - 0.5 * d * d / v;
          lmax = MAX (lmax, logp[k]);
        }
      for (gint k = 0; k < o->n_comp; k++)
        {
          double v = abar * o->s[k] * o->s[k] + 1.0 - abar;
          double r = exp (logp[k] - lmax);

          num += r * sqrt (1.0 - abar) * (x - sqrt (abar) * o->mu[k]) / v;
          den += r;
        }
      eps_out[j] = (float) (num / den);
      if (var_out != NULL)
        var_out[j] = (float) o->raw_var[t_index];
    }
  return TRUE;
}

/* The true reverse variance of a Gaussian: Var(x_{t'} | x_t) =
 * β̃ + coef² Var(x0 | x_t), coef = sqrt(ᾱ')β/(1−ᾱ), Var(x0 | x_t) =
 * s²(1−ᾱ)/(ᾱs² + 1 − ᾱ).  The learned output v that gives it solves
 * exp(v log β + (1−v) log β̃) = that; the network's raw output is 2v − 1. */
static double *
true_raw_variance (const DiffuseSchedule *sched, double s)
{
  gint n = diffuse_schedule_get_n_steps (sched);
  const double *beta = diffuse_schedule_get_betas (sched);
  const double *abar = diffuse_schedule_get_alphas_cumprod (sched);
  double *raw = g_new0 (double, n);

  for (gint i = 1; i < n; i++)
    {
      double ap = abar[i - 1], a = abar[i];
      double post = beta[i] * (1 - ap) / (1 - a);
      double coef = sqrt (ap) * beta[i] / (1 - a);
      double var = post + coef * coef * s * s * (1 - a) / (a * s * s + 1 - a);
      double v = log (var / post) / log (beta[i] / post);

      raw[i] = 2 * v - 1;
    }
  return raw;
}

typedef struct
{
  double mean, var;
} Moments;

/* Mean and variance of x after the steps start … 0, for x0 ~ N(μ, s²),
 * x_start ~ N(m, v), sampler without clipping. */
static Moments
propagate (const DiffuseSchedule *sched, const DiffuseSampleParams *p,
           double mu, double s, gint start, double m, double v,
           const double *raw_var)
{
  const double *beta = diffuse_schedule_get_betas (sched);
  const double *abar = diffuse_schedule_get_alphas_cumprod (sched);

  for (gint i = start; i >= 0; i--)
    {
      double a = abar[i], ap = i > 0 ? abar[i - 1] : 1.0;
      double g = sqrt (1 - a) / (a * s * s + 1 - a);
      /* ε̂ = ea·x + eb, x0̂ = (x − sqrt(1−ᾱ)ε̂)/sqrt(ᾱ) */
      double ea = g, eb = -g * sqrt (a) * mu;
      double xa = (1 - sqrt (1 - a) * ea) / sqrt (a),
             xb = -sqrt (1 - a) * eb / sqrt (a);
      double ka, kb, var_noise = 0;

      if (p->sampler == DIFFUSE_SAMPLER_DDIM)
        {
          /* DDIM eq. 12 with eq. 16's σ */
          double sig = p->eta * sqrt ((1 - ap) / (1 - a)) * sqrt (1 - a / ap);
          double dir = sqrt (1 - ap - sig * sig);

          ka = sqrt (ap) * xa + dir * ea;
          kb = sqrt (ap) * xb + dir * eb;
          var_noise = i > 0 ? sig * sig : 0;
        }
      else
        {
          /* seed: μθ = (x − (1−α)/sqrt(1−ᾱ)·ε̂)/sqrt(α), α = 1 − β */
          double alpha = 1 - beta[i];
          double post = beta[i] * (1 - ap) / (1 - a);

          ka = (1 - (1 - alpha) / sqrt (1 - a) * ea) / sqrt (alpha);
          kb = -(1 - alpha) / sqrt (1 - a) * eb / sqrt (alpha);
          if (i > 0)
            {
              if (p->variance == DIFFUSE_VARIANCE_FIXED_SMALL)
                var_noise = post;
              else if (p->variance == DIFFUSE_VARIANCE_FIXED_LARGE)
                var_noise = beta[i];
              else
                {
                  double vv = (raw_var[i] + 1) / 2;
                  var_noise = exp (vv * log (beta[i]) + (1 - vv) * log (post));
                }
            }
        }
      m = ka * m + kb;
      v = ka * ka * v + var_noise;
    }
  return (Moments){ m, v };
}

static Moments
sample_moments (const float *x, gsize n)
{
  double sum = 0, sq = 0;

  for (gsize j = 0; j < n; j++)
    sum += x[j];
  double m = sum / n;
  for (gsize j = 0; j < n; j++)
    sq += (x[j] - m) * (x[j] - m);
  return (Moments){ m, sq / (n - 1) };
}

static void
params_for (DiffuseSampleParams *p, DiffuseSamplerKind sampler, double eta,
            DiffuseVarianceKind variance)
{
  diffuse_sample_params_init (p);
  p->sampler = sampler;
  p->eta = eta;
  p->variance = variance;
  p->clip_denoised = FALSE;
}

/* Runs n_seeds × COUNT images and returns all pixels. */
static float *
run_seeds (const DiffuseSchedule *sched, Oracle *o, DiffuseSampleParams *p,
           gboolean has_var, gint n_seeds)
{
  float *all = g_new (float, n_seeds *N_PIX);

  for (gint k = 0; k < n_seeds; k++)
    {
      g_autoptr (GError) error = NULL;
      DiffuseSampleInfo info;

      p->seed = 1000 + 17 * k;
      o->calls = 0;
      g_assert_true (diffuse_sample_with (sched, oracle_denoise, o, has_var, p,
                                          COUNT, 1, H, W, all + k * N_PIX,
                                          &info, &error));
      g_assert_no_error (error);
      g_assert_cmpint (o->calls, ==, info.n_steps_run);
    }
  return all;
}

static float *
run (const DiffuseSchedule *sched, Oracle *o, DiffuseSampleParams *p,
     gboolean has_var)
{
  return run_seeds (sched, o, p, has_var, N_SEEDS);
}

static const double MU = 0.3, S = 0.5;

typedef struct
{
  DiffuseSamplerKind sampler;
  double eta;
  DiffuseVarianceKind variance;
  const char *respacing;
  double
      target_tol; /* relative tolerance on the variance vs s², or 0 = report only */
} GaussCase;

/* Returns the sample variance. */
static double
gaussian_case (const GaussCase *c)
{
  g_autoptr (DiffuseSchedule) sched =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 1000, c->respacing, NULL);
  g_autofree double *raw = true_raw_variance (sched, S);
  Oracle o = { sched, 1, { MU }, { S }, { 1.0 }, raw, 0 };
  DiffuseSampleParams p;

  params_for (&p, c->sampler, c->eta, c->variance);
  gboolean learned = c->variance == DIFFUSE_VARIANCE_LEARNED;
  g_autofree float *x = run (sched, &o, &p, learned);
  gsize n = N_SEEDS * N_PIX;
  Moments got = sample_moments (x, n);
  Moments want =
      propagate (sched, &p, MU, S, diffuse_schedule_get_n_steps (sched) - 1,
                 0.0, 1.0, raw);
  double se_m = sqrt (want.var / n), se_v = want.var * sqrt (2.0 / (n - 1));

  g_test_message (
      "%s eta=%.1f %-11s %-7s: mean %.4f (recurrence %.4f, data %.2f), "
      "var %.4f (recurrence %.4f, data %.4f)",
      diffuse_sampler_kind_to_string (c->sampler), c->eta,
      diffuse_variance_kind_to_string (c->variance), c->respacing, got.mean,
      want.mean, MU, got.var, want.var, S * S);
  g_assert_cmpfloat (fabs (got.mean - want.mean), <, 5 * se_m);
  g_assert_cmpfloat (fabs (got.var - want.var), <, 5 * se_v);
  /* the sampler reaches the data distribution itself where it should */
  if (c->target_tol > 0)
    {
      g_assert_cmpfloat (fabs (got.mean - MU), <, 5 * se_m + 0.005);
      g_assert_cmpfloat (fabs (got.var - S * S), <,
                         c->target_tol * S * S + 5 * se_v);
    }
  return got.var;
}

static void
test_gaussian_ddim (void)
{
  const GaussCase cases[] = {
    { DIFFUSE_SAMPLER_DDIM, 0.0, DIFFUSE_VARIANCE_AUTO, "ddim10", 0 },
    { DIFFUSE_SAMPLER_DDIM, 0.0, DIFFUSE_VARIANCE_AUTO, "ddim50", 0 },
    { DIFFUSE_SAMPLER_DDIM, 0.0, DIFFUSE_VARIANCE_AUTO, "200", 0.05 },
    { DIFFUSE_SAMPLER_DDIM, 0.5, DIFFUSE_VARIANCE_AUTO, "ddim10", 0 },
    { DIFFUSE_SAMPLER_DDIM, 0.5, DIFFUSE_VARIANCE_AUTO, "ddim50", 0 },
    { DIFFUSE_SAMPLER_DDIM, 0.5, DIFFUSE_VARIANCE_AUTO, "200", 0.05 },
    { DIFFUSE_SAMPLER_DDIM, 1.0, DIFFUSE_VARIANCE_AUTO, "ddim10", 0 },
    { DIFFUSE_SAMPLER_DDIM, 1.0, DIFFUSE_VARIANCE_AUTO, "ddim50", 0 },
    { DIFFUSE_SAMPLER_DDIM, 1.0, DIFFUSE_VARIANCE_AUTO, "200", 0.08 },
  };
  double var[G_N_ELEMENTS (cases)];

  for (guint k = 0; k < G_N_ELEMENTS (cases); k++)
    var[k] = gaussian_case (&cases[k]);
  /* DDIM's discretisation shrinks the variance of s < 1 data (each step
   * is a Cauchy-Schwarz contraction); more steps must come closer to s² */
  for (guint k = 0; k < G_N_ELEMENTS (cases); k += 3)
    {
      g_assert_cmpfloat (var[k], <, var[k + 1]);
      g_assert_cmpfloat (var[k + 1], <, var[k + 2]);
      g_assert_cmpfloat (var[k + 2], <, S * S);
    }
}

static void
test_gaussian_ddpm (void)
{
  const GaussCase cases[] = {
    /* fixed variances: β̃ too small, β too large for a coarse grid; both
     * approach s² as the steps grow */
    { DIFFUSE_SAMPLER_DDPM, 0, DIFFUSE_VARIANCE_FIXED_SMALL, "50", 0 },
    { DIFFUSE_SAMPLER_DDPM, 0, DIFFUSE_VARIANCE_FIXED_SMALL, "250", 0.08 },
    { DIFFUSE_SAMPLER_DDPM, 0, DIFFUSE_VARIANCE_FIXED_LARGE, "50", 0 },
    { DIFFUSE_SAMPLER_DDPM, 0, DIFFUSE_VARIANCE_FIXED_LARGE, "250", 0.03 },
    /* the true reverse variance makes ancestral sampling exact at any
     * step count: only x_T ~ N(0, 1) instead of N(sqrt(ᾱ_T)μ, …) is off */
    { DIFFUSE_SAMPLER_DDPM, 0, DIFFUSE_VARIANCE_LEARNED, "10", 0.001 },
    { DIFFUSE_SAMPLER_DDPM, 0, DIFFUSE_VARIANCE_LEARNED, "50", 0.001 },
    /* AUTO with a variance-predicting denoiser is LEARNED */
    { DIFFUSE_SAMPLER_DDPM, 0, DIFFUSE_VARIANCE_AUTO, "25,15,10", 0 },
  };

  double var[G_N_ELEMENTS (cases)];

  for (guint k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      GaussCase c = cases[k];

      if (c.variance == DIFFUSE_VARIANCE_AUTO)
        {
          /* run as AUTO, propagate as LEARNED: the same numbers */
          g_autoptr (DiffuseSchedule) sched = diffuse_schedule_new (
              DIFFUSE_SCHEDULE_LINEAR, 1000, c.respacing, NULL);
          g_autofree double *raw = true_raw_variance (sched, S);
          Oracle o = { sched, 1, { MU }, { S }, { 1.0 }, raw, 0 };
          DiffuseSampleParams p, pl;

          params_for (&p, c.sampler, 0, DIFFUSE_VARIANCE_AUTO);
          params_for (&pl, c.sampler, 0, DIFFUSE_VARIANCE_LEARNED);
          g_autofree float *a = run (sched, &o, &p, TRUE);
          g_autofree float *b = run (sched, &o, &pl, TRUE);
          g_assert_cmpmem (a, N_SEEDS * N_PIX * sizeof (float), b,
                           N_SEEDS * N_PIX * sizeof (float));
          c.variance = DIFFUSE_VARIANCE_LEARNED;
        }
      var[k] = gaussian_case (&c);
    }
  g_assert_cmpfloat (var[0], <, var[1]);
  g_assert_cmpfloat (var[1], <, S * S);
  g_assert_cmpfloat (var[2], >, var[3]);
  g_assert_cmpfloat (var[3], >, S * S);
}

/* 0.3·N(−0.6, 0.15²) + 0.7·N(0.5, 0.2²) */
static void
test_mixture (void)
{
  const double mu[2] = { -0.6, 0.5 }, s[2] = { 0.15, 0.2 },
               pi[2] = { 0.3, 0.7 };
  double mean = pi[0] * mu[0] + pi[1] * mu[1];
  double ex2 = pi[0] * (mu[0] * mu[0] + s[0] * s[0]) +
               pi[1] * (mu[1] * mu[1] + s[1] * s[1]);
  double var = ex2 - mean * mean;
  const struct
  {
    DiffuseSamplerKind sampler;
    double eta;
    DiffuseVarianceKind variance;
    const char *respacing;
  } cases[] = {
    { DIFFUSE_SAMPLER_DDPM, 0, DIFFUSE_VARIANCE_FIXED_SMALL, "250" },
    { DIFFUSE_SAMPLER_DDIM, 0, DIFFUSE_VARIANCE_AUTO, "200" },
    { DIFFUSE_SAMPLER_DDIM, 1.0, DIFFUSE_VARIANCE_AUTO, "200" },
  };

  for (guint k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      g_autoptr (DiffuseSchedule) sched = diffuse_schedule_new (
          DIFFUSE_SCHEDULE_COSINE, 1000, cases[k].respacing, NULL);
      Oracle o = { sched, 2, { mu[0], mu[1] }, { s[0], s[1] }, { pi[0], pi[1] },
                   NULL,  0 };
      DiffuseSampleParams p;

      params_for (&p, cases[k].sampler, cases[k].eta, cases[k].variance);
      /* one seed: the mixture denoiser is the slow part of this file */
      g_autofree float *x = run_seeds (sched, &o, &p, FALSE, 1);
      gsize n = N_PIX, low = 0, near = 0;
      Moments got = sample_moments (x, n);

      for (gsize j = 0; j < n; j++)
        {
          low += x[j] < -0.05;
          /* within 3 sd of either mode */
          near +=
              fabs (x[j] - mu[0]) < 3 * s[0] || fabs (x[j] - mu[1]) < 3 * s[1];
        }
      double frac = (double) low / n, fnear = (double) near / n;
      g_test_message (
          "mixture %s eta=%.1f %s: mean %.4f (%.4f), var %.4f (%.4f), "
          "P(x < -0.05) %.4f (%.2f), within 3 sd of a mode %.4f (0.997)",
          diffuse_sampler_kind_to_string (cases[k].sampler), cases[k].eta,
          cases[k].respacing, got.mean, mean, got.var, var, frac, pi[0], fnear);
      /* discretisation error of 200+ steps is well under these */
      g_assert_cmpfloat (fabs (got.mean - mean), <, 0.02);
      g_assert_cmpfloat (fabs (got.var - var), <, 0.05 * var);
      g_assert_cmpfloat (fabs (frac - pi[0]), <, 0.02);
      g_assert_cmpfloat (fnear, >, 0.98);
    }
}

/* img2img: x_t = sqrt(ᾱ)x0 + sqrt(1−ᾱ)ε at the kept step nearest
 * strength·T, then DDIM η = 0 back: an affine map out = A·x_t + B whose
 * A, B this test composes from the same recurrence as above. */
static void
test_img2img (void)
{
  g_autoptr (DiffuseSchedule) sched =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 1000, "ddim50", NULL);
  Oracle o = { sched, 1, { MU }, { S }, { 1.0 }, NULL, 0 };
  g_autofree float *init = g_new (float, N_PIX);
  g_autofree float *out = g_new (float, N_PIX);
  g_autofree float *out1 = g_new (float, N_PIX);
  DiffuseSampleParams p;
  DiffuseSampleInfo info;
  g_autoptr (GError) error = NULL;

  /* an input drawn from the data distribution */
  diffuse_rng_normal (77, 0, 0, init, N_PIX);
  for (gsize j = 0; j < N_PIX; j++)
    init[j] = (float) (MU + S * init[j]);

  params_for (&p, DIFFUSE_SAMPLER_DDIM, 0.0, DIFFUSE_VARIANCE_AUTO);
  p.init_image = init;
  p.strength = 0.05;
  p.seed = 5;
  g_assert_true (diffuse_sample_with (sched, oracle_denoise, &o, FALSE, &p,
                                      COUNT, 1, H, W, out, &info, &error));
  g_assert_no_error (error);
  /* 0.05·1000 = 50: 40 and 60 tie, the smaller wins */
  g_assert_cmpint (info.start_index, ==, 2);
  g_assert_cmpint (info.start_timestep, ==, 40);
  g_assert_cmpint (info.n_steps_run, ==, 3);
  g_assert_cmpint (o.calls, ==, 3);

  /* out = A x_t + B: propagate (a, b) as a mean with zero variance */
  Moments zero = propagate (sched, &p, MU, S, info.start_index, 0.0, 0.0, NULL);
  Moments one = propagate (sched, &p, MU, S, info.start_index, 1.0, 0.0, NULL);
  double B = zero.mean, A = one.mean - zero.mean;
  double a = diffuse_schedule_get_alphas_cumprod (sched)[info.start_index];
  double msd = 0, msd_expect = 0;
  for (gsize j = 0; j < N_PIX; j++)
    {
      double bias = (A * sqrt (a) - 1) * init[j] + B;

      msd += (out[j] - init[j]) * (out[j] - init[j]);
      msd_expect += bias * bias + A * A * (1 - a);
    }
  msd /= N_PIX;
  msd_expect /= N_PIX;

  p.strength = 1.0;
  g_assert_true (diffuse_sample_with (sched, oracle_denoise, &o, FALSE, &p,
                                      COUNT, 1, H, W, out1, &info, &error));
  g_assert_cmpint (info.start_index, ==, 49);
  g_assert_cmpint (info.start_timestep, ==, 980);
  g_assert_cmpint (info.n_steps_run, ==, 50);
  double msd1 = 0;
  for (gsize j = 0; j < N_PIX; j++)
    msd1 += (out1[j] - init[j]) * (out1[j] - init[j]);
  msd1 /= N_PIX;

  g_test_message (
      "img2img strength 0.05: RMS(out - in) %.4f (affine map predicts %.4f); "
      "strength 1: %.4f (independent draws: sqrt(2) s = %.4f)",
      sqrt (msd), sqrt (msd_expect), sqrt (msd1), sqrt (2.0) * S);
  /* MSD is a mean of N_PIX terms with relative sd ≈ sqrt(2/N_PIX) */
  g_assert_cmpfloat (fabs (msd - msd_expect), <,
                     5 * sqrt (2.0 / N_PIX) * msd_expect);
  g_assert_cmpfloat (sqrt (msd), <, 0.25 * sqrt (msd1));
  g_assert_cmpfloat (fabs (sqrt (msd1) - sqrt (2.0) * S), <, 0.1 * S);
}

/* Same seed, same output; the first image does not depend on count; a
 * given x_T (init_noise) is the seeded stream-0 noise. */
static void
test_reproducible (void)
{
  g_autoptr (DiffuseSchedule) sched =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_COSINE, 1000, "20", NULL);
  g_autofree double *raw = true_raw_variance (sched, S);
  Oracle o = { sched, 1, { MU }, { S }, { 1.0 }, raw, 0 };
  const gsize img = H * W;
  g_autofree float *a = g_new (float, 3 * img);
  g_autofree float *b = g_new (float, 3 * img);
  g_autofree float *c = g_new (float, img);
  g_autofree float *xT = g_new (float, 3 * img);
  const DiffuseSamplerKind samplers[] = { DIFFUSE_SAMPLER_DDPM,
                                          DIFFUSE_SAMPLER_DDIM };

  for (guint k = 0; k < G_N_ELEMENTS (samplers); k++)
    {
      DiffuseSampleParams p;

      params_for (&p, samplers[k], 0.7, DIFFUSE_VARIANCE_LEARNED);
      p.clip_denoised = TRUE;
      p.seed = G_GUINT64_CONSTANT (0xfeedface12345678);
      g_assert_true (diffuse_sample_with (sched, oracle_denoise, &o, TRUE, &p,
                                          3, 1, H, W, a, NULL, NULL));
      g_assert_true (diffuse_sample_with (sched, oracle_denoise, &o, TRUE, &p,
                                          3, 1, H, W, b, NULL, NULL));
      g_assert_cmpmem (a, 3 * img * sizeof (float), b,
                       3 * img * sizeof (float));

      g_assert_true (diffuse_sample_with (sched, oracle_denoise, &o, TRUE, &p,
                                          1, 1, H, W, c, NULL, NULL));
      g_assert_cmpmem (a, img * sizeof (float), c, img * sizeof (float));

      /* images 2 and 3 differ from image 1 */
      g_assert_true (memcmp (a, a + img, img * sizeof (float)) != 0);
      g_assert_true (memcmp (a + img, a + 2 * img, img * sizeof (float)) != 0);

      diffuse_rng_normal (p.seed, 0, 0, xT, 3 * img);
      p.init_noise = xT;
      p.seed = 1; /* x_T given; the later noise still comes from the seed */
      g_assert_true (diffuse_sample_with (sched, oracle_denoise, &o, TRUE, &p,
                                          3, 1, H, W, b, NULL, NULL));
      if (samplers[k] == DIFFUSE_SAMPLER_DDPM)
        g_assert_true (memcmp (a, b, 3 * img * sizeof (float)) != 0);
      p.seed = G_GUINT64_CONSTANT (0xfeedface12345678);
      g_assert_true (diffuse_sample_with (sched, oracle_denoise, &o, TRUE, &p,
                                          3, 1, H, W, b, NULL, NULL));
      g_assert_cmpmem (a, 3 * img * sizeof (float), b,
                       3 * img * sizeof (float));

      /* clipping keeps every output in [−1, 1] */
      for (gsize j = 0; j < 3 * img; j++)
        g_assert_true (a[j] >= -1.0f && a[j] <= 1.0f);
    }
}

typedef struct
{
  gint calls, cancel_at, n_steps;
  gint last_step;
  gboolean x0_ok;
} Progress;

static gboolean
on_progress (gint step, gint n_steps, const float *x0, gint count,
             gint channels, gint height, gint width, gpointer user_data)
{
  Progress *pr = user_data;

  pr->calls++;
  pr->x0_ok = pr->x0_ok && step == pr->last_step + 1 && x0 != NULL &&
              count == 2 && channels == 1 && height == H && width == W;
  pr->last_step = step;
  pr->n_steps = n_steps;
  for (gsize j = 0; j < (gsize) count * H * W; j++)
    pr->x0_ok = pr->x0_ok && x0[j] >= -1.0f && x0[j] <= 1.0f;
  return step != pr->cancel_at;
}

static void
test_progress_cancel (void)
{
  g_autoptr (DiffuseSchedule) sched =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 1000, "ddim25", NULL);
  Oracle o = { sched, 1, { MU }, { S }, { 1.0 }, NULL, 0 };
  g_autofree float *out = g_new (float, 2 * H * W);
  DiffuseSampleParams p;
  Progress pr = { 0, -1, 0, 0, TRUE };

  params_for (&p, DIFFUSE_SAMPLER_DDPM, 0, DIFFUSE_VARIANCE_FIXED_LARGE);
  p.clip_denoised = TRUE;
  p.progress = on_progress;
  p.user_data = &pr;
  g_assert_true (diffuse_sample_with (sched, oracle_denoise, &o, FALSE, &p, 2,
                                      1, H, W, out, NULL, NULL));
  g_assert_cmpint (pr.calls, ==, 25);
  g_assert_cmpint (pr.n_steps, ==, 25);
  g_assert_cmpint (pr.last_step, ==, 25);
  g_assert_true (pr.x0_ok);

  /* cancel at step 3: CANCELLED, no more denoiser calls; ASan checks leaks */
  g_autoptr (GError) error = NULL;
  pr = (Progress){ 0, 3, 0, 0, TRUE };
  o.calls = 0;
  g_assert_false (diffuse_sample_with (sched, oracle_denoise, &o, FALSE, &p, 2,
                                       1, H, W, out, NULL, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_CANCELLED);
  g_assert_cmpint (pr.calls, ==, 3);
  g_assert_cmpint (o.calls, ==, 3);
}

static gboolean
failing_denoise (gpointer user_data, gint batch, const float *x_t, gint t_index,
                 double t_model, float *eps_out, float *var_out, GError **error)
{
  gint *calls = user_data;

  (void) batch, (void) x_t, (void) t_model, (void) eps_out, (void) var_out;
  if (++*calls == 4)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL,
                   "denoiser failed at %d", t_index);
      return FALSE;
    }
  memset (eps_out, 0, (gsize) batch * H * W * sizeof (float));
  return TRUE;
}

/* Bad model-free parameters are GErrors, and a denoiser's error comes back. */
static void
test_bad_params (void)
{
  g_autoptr (DiffuseSchedule) sched =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 1000, "ddim10", NULL);
  Oracle o = { sched, 1, { MU }, { S }, { 1.0 }, NULL, 0 };
  g_autofree float *out = g_new (float, H *W);
  g_autofree float *init = g_new0 (float, H *W);
  const struct
  {
    const char *what;
    DiffuseSamplerKind sampler;
    double eta;
    DiffuseVarianceKind variance;
    double strength;
    gint count;
  } bad[] = {
    { "eta < 0", DIFFUSE_SAMPLER_DDIM, -0.1, DIFFUSE_VARIANCE_AUTO, 1, 1 },
    { "eta > 10", DIFFUSE_SAMPLER_DDIM, 10.5, DIFFUSE_VARIANCE_AUTO, 1, 1 },
    { "eta NaN", DIFFUSE_SAMPLER_DDIM, NAN, DIFFUSE_VARIANCE_AUTO, 1, 1 },
    { "sampler", DIFFUSE_SAMPLER_COUNT, 0, DIFFUSE_VARIANCE_AUTO, 1, 1 },
    { "variance", DIFFUSE_SAMPLER_DDPM, 0, DIFFUSE_VARIANCE_COUNT, 1, 1 },
    { "learned without v", DIFFUSE_SAMPLER_DDPM, 0, DIFFUSE_VARIANCE_LEARNED, 1,
      1 },
    { "strength 0", DIFFUSE_SAMPLER_DDIM, 0, DIFFUSE_VARIANCE_AUTO, 0, 1 },
    { "strength > 1", DIFFUSE_SAMPLER_DDIM, 0, DIFFUSE_VARIANCE_AUTO, 1.5, 1 },
    { "strength NaN", DIFFUSE_SAMPLER_DDIM, 0, DIFFUSE_VARIANCE_AUTO, NAN, 1 },
    { "count 0", DIFFUSE_SAMPLER_DDIM, 0, DIFFUSE_VARIANCE_AUTO, 1, 0 },
  };

  for (guint k = 0; k < G_N_ELEMENTS (bad); k++)
    {
      g_autoptr (GError) error = NULL;
      DiffuseSampleParams p;

      params_for (&p, bad[k].sampler, bad[k].eta, bad[k].variance);
      p.strength = bad[k].strength;
      p.init_image = init;
      g_assert_false (diffuse_sample_with (sched, oracle_denoise, &o, FALSE, &p,
                                           bad[k].count, 1, H, W, out, NULL,
                                           &error));
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
      g_test_message ("%s: %s", bad[k].what, error->message);
    }

  g_autoptr (GError) error = NULL;
  DiffuseSampleParams p;
  gint calls = 0;
  params_for (&p, DIFFUSE_SAMPLER_DDIM, 0.5, DIFFUSE_VARIANCE_AUTO);
  g_assert_false (diffuse_sample_with (sched, failing_denoise, &calls, FALSE,
                                       &p, 1, 1, H, W, out, NULL, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL);
  g_assert_cmpint (calls, ==, 4);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/sampler/gaussian-ddim", test_gaussian_ddim);
  g_test_add_func ("/sampler/gaussian-ddpm", test_gaussian_ddpm);
  g_test_add_func ("/sampler/mixture", test_mixture);
  g_test_add_func ("/sampler/img2img", test_img2img);
  g_test_add_func ("/sampler/reproducible", test_reproducible);
  g_test_add_func ("/sampler/progress-cancel", test_progress_cancel);
  g_test_add_func ("/sampler/bad-params", test_bad_params);
  return g_test_run ();
}
