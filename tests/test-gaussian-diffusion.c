/* The named formulas of engine/gaussian-diffusion.c against identities of
 * the seed notes and papers, on the real linear and cosine schedules:
 *  - q_sample then predict_x0_from_eps with the same ε gives x_0 back;
 *  - the posterior mean at the x_0 predicted from ε is the seed's
 *    ε-parameterised mean μθ = (x_t − β / sqrt(1 − ᾱ) ε) / sqrt(α)
 *    (Ho et al. 2020 eq. 11);
 *  - DDIM's σ at η = 1 is the posterior's sqrt(β̃) (Song et al. 2021,
 *    below eq. 16), and the DDIM step at η = 0 moves x_t to
 *    sqrt(ᾱ') x_0 + sqrt(1 − ᾱ') ε;
 *  - the learned variance is β̃ at v = −1 and β at v = 1;
 *  - respaced β keep ᾱ: ∏ (1 − β_i) over the kept steps equals the full
 *    schedule's ᾱ at each kept t;
 *  - guidance at w = 0 is ε(y), and ε̄ − ε(y) = w (ε(y) − ε(∅)). */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"
#include "gaussian-diffusion.h"

#define N 64

static void
fill (float *x, gsize n, guint64 seed, guint64 stream)
{
  diffuse_rng_normal (seed, stream, 0, x, n);
}

/* ᾱ and β of kept step i of a schedule ("ddim10" of T = 1000) */
static DiffuseSchedule *
schedule (DiffuseScheduleKind kind)
{
  g_autoptr (GError) error = NULL;
  DiffuseSchedule *s = diffuse_schedule_new (kind, 1000, "ddim10", &error);

  g_assert_no_error (error);
  return s;
}

static void
test_q_sample_inverts (void)
{
  for (gint kind = 0; kind < DIFFUSE_SCHEDULE_COUNT; kind++)
    {
      g_autoptr (DiffuseSchedule) s = schedule (kind);
      const double *abars = diffuse_schedule_get_alphas_cumprod (s);
      float x0[N], eps[N], xt[N], back[N];

      fill (x0, N, 1, 0);
      fill (eps, N, 1, 1);
      for (gint i = 0; i < diffuse_schedule_get_n_steps (s); i++)
        {
          diffuse__q_sample (x0, eps, abars[i], N, xt);
          diffuse__predict_x0_from_eps (xt, eps, abars[i], FALSE, N, back);
          for (gint j = 0; j < N; j++)
            g_assert_cmpfloat_with_epsilon (
                back[j], x0[j], 1e-5 * (1.0 + 1.0 / sqrt (abars[i])));
        }
    }
}

static void
test_posterior_mean_is_eps_mean (void)
{
  for (gint kind = 0; kind < DIFFUSE_SCHEDULE_COUNT; kind++)
    {
      g_autoptr (DiffuseSchedule) s = schedule (kind);
      const double *abars = diffuse_schedule_get_alphas_cumprod (s);
      const double *betas = diffuse_schedule_get_betas (s);
      float xt[N], eps[N], x0[N];

      fill (xt, N, 2, 0);
      fill (eps, N, 2, 1);
      for (gint i = 1; i < diffuse_schedule_get_n_steps (s); i++)
        {
          DiffusePosterior q;

          diffuse__predict_x0_from_eps (xt, eps, abars[i], FALSE, N, x0);
          diffuse__q_posterior (betas[i], abars[i], abars[i - 1], &q);
          g_assert_cmpfloat_with_epsilon (
              q.variance, (1 - abars[i - 1]) / (1 - abars[i]) * betas[i],
              1e-12);
          for (gint j = 0; j < N; j++)
            {
              double mu = (xt[j] - betas[i] / sqrt (1 - abars[i]) * eps[j]) /
                          sqrt (1 - betas[i]);
              double got = diffuse__q_posterior_mean (&q, x0[j], xt[j]);

              g_assert_cmpfloat_with_epsilon (
                  got, mu, 1e-5 * (1 + fabs (mu)) / sqrt (abars[i]));
            }
        }
    }
}

static void
test_ddim (void)
{
  for (gint kind = 0; kind < DIFFUSE_SCHEDULE_COUNT; kind++)
    {
      g_autoptr (DiffuseSchedule) s = schedule (kind);
      const double *abars = diffuse_schedule_get_alphas_cumprod (s);
      const double *betas = diffuse_schedule_get_betas (s);
      float x0[N], eps[N], x[N];

      fill (x0, N, 3, 0);
      fill (eps, N, 3, 1);
      for (gint i = 1; i < diffuse_schedule_get_n_steps (s); i++)
        {
          DiffusePosterior q;
          double sigma = diffuse__ddim_sigma (abars[i], abars[i - 1], 1.0);

          diffuse__q_posterior (betas[i], abars[i], abars[i - 1], &q);
          g_assert_cmpfloat_with_epsilon (sigma * sigma, q.variance, 1e-12);
          g_assert_cmpfloat (diffuse__ddim_sigma (abars[i], abars[i - 1], 0.0),
                             ==, 0.0);

          /* x_t from (x_0, ε), one deterministic step: the same ε at ᾱ' */
          diffuse__q_sample (x0, eps, abars[i], N, x);
          diffuse__ddim_step (x, x0, NULL, N, abars[i], abars[i - 1], 0.0,
                              FALSE);
          for (gint j = 0; j < N; j++)
            {
              double want = sqrt (abars[i - 1]) * x0[j] +
                            sqrt (1 - abars[i - 1]) * eps[j];

              g_assert_cmpfloat_with_epsilon (
                  x[j], want, 1e-5 * (1 + fabs (want)) / sqrt (abars[i]));
            }
        }
    }
}

static void
test_learned_variance_ends (void)
{
  double lb = log (0.02), lbt = log (0.005);

  g_assert_cmpfloat (diffuse__learned_log_variance (-1.0, lb, lbt), ==, lbt);
  g_assert_cmpfloat (diffuse__learned_log_variance (1.0, lb, lbt), ==, lb);
  g_assert_cmpfloat_with_epsilon (diffuse__learned_log_variance (0.0, lb, lbt),
                                  0.5 * (lb + lbt), 1e-15);
}

static void
test_respaced_beta_keeps_alpha_bar (void)
{
  for (gint kind = 0; kind < DIFFUSE_SCHEDULE_COUNT; kind++)
    {
      g_autoptr (DiffuseSchedule) full = NULL, s = NULL;
      g_autoptr (GError) error = NULL;
      const double *abar_full, *abars;
      const gint *ts;

      full = diffuse_schedule_new (kind, 1000, NULL, &error);
      s = diffuse_schedule_new (kind, 1000, "7,3,5", &error);
      g_assert_no_error (error);
      abar_full = diffuse_schedule_get_alphas_cumprod (full);
      abars = diffuse_schedule_get_alphas_cumprod (s);
      ts = diffuse_schedule_get_timesteps (s);
      for (gint i = 0; i < diffuse_schedule_get_n_steps (s); i++)
        g_assert_cmpfloat_with_epsilon (abars[i], abar_full[ts[i]],
                                        1e-9 * abar_full[ts[i]]);
      /* and the rule itself, at the first two kept steps */
      g_assert_cmpfloat (
          diffuse_schedule_get_betas (s)[1], ==,
          diffuse__respaced_beta (abar_full[ts[1]], abar_full[ts[0]]));
    }
}

static void
test_guidance (void)
{
  float c[N], u[N], e[N];

  fill (c, N, 4, 0);
  fill (u, N, 4, 1);
  diffuse__guided_eps (c, u, 0.0, N, e);
  for (gint j = 0; j < N; j++)
    g_assert_cmpfloat (e[j], ==, c[j]);
  diffuse__guided_eps (c, u, 2.5, N, e);
  for (gint j = 0; j < N; j++)
    g_assert_cmpfloat_with_epsilon (e[j] - c[j], 2.5 * (c[j] - u[j]),
                                    1e-5 * (1 + fabs (e[j])));
}

/* RePaint's join at ᾱ = 1 gives the kept pixels exactly x0 and never reads
 * ε (a one-step inpaint reaches it before any ε was drawn: an unset
 * buffer once made such runs NaN) */
static void
test_repaint_join_end (void)
{
  float x[N], x0[N], eps[N], mask[N];

  fill (x, N, 4, 2);
  fill (x0, N, 4, 3);
  for (gint j = 0; j < N; j++)
    {
      eps[j] = j % 2 ? NAN : INFINITY;
      mask[j] = j % 3 == 0 ? 1.0f : j % 3 == 1 ? 0.0f : 0.25f;
    }
  float before[N];
  memcpy (before, x, sizeof x);
  diffuse__repaint_join (x, x0, eps, mask, N, N, 1.0);
  for (gint j = 0; j < N; j++)
    {
      double want = mask[j] * (double) before[j] + (1.0 - mask[j]) * x0[j];

      g_assert_true (isfinite (x[j]));
      g_assert_cmpfloat (x[j], ==, (float) want);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/gaussian-diffusion/q-sample-inverts",
                   test_q_sample_inverts);
  g_test_add_func ("/gaussian-diffusion/posterior-mean-is-eps-mean",
                   test_posterior_mean_is_eps_mean);
  g_test_add_func ("/gaussian-diffusion/ddim", test_ddim);
  g_test_add_func ("/gaussian-diffusion/learned-variance-ends",
                   test_learned_variance_ends);
  g_test_add_func ("/gaussian-diffusion/respaced-beta-keeps-alpha-bar",
                   test_respaced_beta_keeps_alpha_bar);
  g_test_add_func ("/gaussian-diffusion/guidance", test_guidance);
  g_test_add_func ("/gaussian-diffusion/repaint-join-end",
                   test_repaint_join_end);
  return g_test_run ();
}
