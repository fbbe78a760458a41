/* The formulas of Gaussian diffusion: ᾱ and respaced β, q(x_t | x_0),
 * q(x_t' | x_t) and RePaint's masked join, x_0 from ε, the posterior q(x_{t−1} | x_t, x_0), the learned variance,
 * the DDPM and DDIM updates and classifier-free guidance.  Each function
 * says which formula it implements (gaussian-diffusion.h gives the
 * sources).  The order of every operation follows guided-diffusion, so
 * that the numpy reference (tools/ref_diffusion.py) gets the same numbers
 * up to rounding. */
#include <math.h>

#include "gaussian-diffusion.h"

void
diffuse__alphas_cumprod (const double *betas, gint n, double *alphas_cumprod)
{
  double acc = 1.0;

  for (gint i = 0; i < n; i++)
    {
      acc *= 1.0 - betas[i];
      alphas_cumprod[i] = acc;
    }
}

double
diffuse__respaced_beta (double alpha_bar, double alpha_bar_prev)
{
  return 1.0 - alpha_bar / alpha_bar_prev;
}

double
diffuse__q_sample_1 (double x0, double eps, double alpha_bar)
{
  return sqrt (alpha_bar) * x0 + sqrt (1.0 - alpha_bar) * eps;
}

void
diffuse__q_sample (const float *x0, const float *eps, double alpha_bar, gsize n,
                   float *x_t)
{
  for (gsize j = 0; j < n; j++)
    x_t[j] = (float) diffuse__q_sample_1 (x0[j], eps[j], alpha_bar);
}

double
diffuse__x0_from_eps_1 (double x_t, double eps, double alpha_bar, gboolean clip)
{
  double v = sqrt (1.0 / alpha_bar) * x_t - sqrt (1.0 / alpha_bar - 1.0) * eps;

  return clip ? CLAMP (v, -1.0, 1.0) : v;
}

double
diffuse__eps_from_x0_1 (double x_t, double x0, double alpha_bar)
{
  return (sqrt (1.0 / alpha_bar) * x_t - x0) / sqrt (1.0 / alpha_bar - 1.0);
}

void
diffuse__q_sample_from (float *x, const float *z, gsize n,
                        double alpha_bar_from, double alpha_bar_to)
{
  double r = alpha_bar_to / alpha_bar_from, a = sqrt (r), s = sqrt (1.0 - r);

  for (gsize j = 0; j < n; j++)
    x[j] = (float) (a * x[j] + s * z[j]);
}

void
diffuse__repaint_join (float *x, const float *x0, const float *eps,
                       const float *mask, gsize n, gsize hw, double alpha_bar)
{
  double a = sqrt (alpha_bar), s = sqrt (1.0 - alpha_bar);

  for (gsize j = 0; j < n; j++)
    {
      double m = mask[j % hw];
      /* at ᾱ = 1 (the end of the run) the kept pixels are x0 itself: eps
       * is not read, so a level never noised (a one-step run) cannot put
       * an unset or non-finite ε into them as 0·ε */
      double kept = s > 0.0 ? a * x0[j] + s * eps[j] : (double) x0[j];

      if (m == 1.0)
        continue;
      if (m == 0.0)
        x[j] = (float) kept;
      else
        x[j] = (float) (m * x[j] + (1.0 - m) * kept);
    }
}

void
diffuse__predict_x0_from_eps (const float *x_t, const float *eps,
                              double alpha_bar, gboolean clip, gsize n,
                              float *x0)
{
  for (gsize j = 0; j < n; j++)
    x0[j] = (float) diffuse__x0_from_eps_1 (x_t[j], eps[j], alpha_bar, clip);
}

void
diffuse__q_posterior (double beta, double alpha_bar, double alpha_bar_prev,
                      DiffusePosterior *q)
{
  q->coef_x0 = beta * sqrt (alpha_bar_prev) / (1.0 - alpha_bar);
  q->coef_xt = (1.0 - alpha_bar_prev) * sqrt (1.0 - beta) / (1.0 - alpha_bar);
  q->variance = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar);
}

double
diffuse__q_posterior_mean (const DiffusePosterior *q, double x0, double x_t)
{
  return q->coef_x0 * x0 + q->coef_xt * x_t;
}

double
diffuse__learned_log_variance (double raw, double log_beta,
                               double log_beta_tilde)
{
  double v = (raw + 1.0) / 2.0;

  return v * log_beta + (1.0 - v) * log_beta_tilde;
}

void
diffuse__ddpm_step (float *x, const float *x0, const float *raw_var,
                    const float *grad, const float *noise, gsize n, double beta,
                    double alpha_bar, double alpha_bar_prev,
                    double beta_tilde_1, DiffuseVarianceKind variance,
                    gboolean add_noise)
{
  DiffusePosterior q;
  double log_beta_tilde = 0.0, log_beta, sigma_fixed, var_fixed;
  gboolean first = alpha_bar_prev >= 1.0;
  gboolean need_log =
      variance == DIFFUSE_VARIANCE_LEARNED && (add_noise || grad != NULL);

  diffuse__q_posterior (beta, alpha_bar, alpha_bar_prev, &q);
  /* guided-diffusion's posterior_log_variance_clipped: β̃ = 0 at the first
   * step, where log β̃₁ stands in (only the guidance term Σ·g reads it
   * there, since no noise is added) */
  if (need_log)
    log_beta_tilde = log (first ? beta_tilde_1 : q.variance);
  log_beta = log (beta);
  sigma_fixed =
      sqrt (variance == DIFFUSE_VARIANCE_FIXED_SMALL ? q.variance : beta);
  /* condition_mean's Σ for the fixed variances: β̃ (FIXED_SMALL, 0 at the
   * first step) or β with β̃₁ at the first step (FIXED_LARGE) */
  var_fixed = variance == DIFFUSE_VARIANCE_FIXED_SMALL ? q.variance
              : first                                  ? beta_tilde_1
                                                       : beta;

  for (gsize j = 0; j < n; j++)
    {
      double v = diffuse__q_posterior_mean (&q, x0[j], x[j]);
      double log_var = 0.0;

      if (need_log)
        log_var = diffuse__learned_log_variance (raw_var[j], log_beta,
                                                 log_beta_tilde);
      /* classifier guidance, guided-diffusion's condition_mean (seed
       * "Classifier Guidance"): μ ← μ + s·Σ·∇ log p(y|x_t); grad holds s·∇ */
      if (grad != NULL)
        v +=
            (variance == DIFFUSE_VARIANCE_LEARNED ? exp (log_var) : var_fixed) *
            grad[j];
      if (add_noise)
        {
          double sigma = sigma_fixed;

          if (variance == DIFFUSE_VARIANCE_LEARNED)
            sigma = exp (0.5 * log_var);
          v += sigma * noise[j];
        }
      x[j] = (float) v;
    }
}

void
diffuse__condition_score (const float *x, const float *grad, gsize n,
                          double alpha_bar, float *x0)
{
  /* guided-diffusion's condition_score (seed "Classifier Guidance", the
   * score view of Song et al. 2021): ε from the (clipped) x̂0,
   * ε ← ε − sqrt(1 − ᾱ)·g, then x̂0 again from that ε, unclipped; the
   * DDIM step re-derives the same ε from it.  grad holds s·∇. */
  double c1 = sqrt (1.0 / alpha_bar), c2 = sqrt (1.0 / alpha_bar - 1.0);
  double s = sqrt (1.0 - alpha_bar);

  for (gsize j = 0; j < n; j++)
    {
      double eps = (c1 * x[j] - x0[j]) / c2 - s * grad[j];

      x0[j] = (float) (c1 * x[j] - c2 * eps);
    }
}

double
diffuse__ddim_sigma (double alpha_bar, double alpha_bar_prev, double eta)
{
  return eta * sqrt ((1.0 - alpha_bar_prev) / (1.0 - alpha_bar)) *
         sqrt (1.0 - alpha_bar / alpha_bar_prev);
}

void
diffuse__ddim_step (float *x, const float *x0, const float *noise, gsize n,
                    double alpha_bar, double alpha_bar_prev, double eta,
                    gboolean add_noise)
{
  /* ε = (x_t / sqrt(ᾱ) − x_0) / sqrt(1/ᾱ − 1) (guided-diffusion
   * _predict_eps_from_xstart) */
  double c1 = sqrt (1.0 / alpha_bar), c2 = sqrt (1.0 / alpha_bar - 1.0);
  double sigma = diffuse__ddim_sigma (alpha_bar, alpha_bar_prev, eta);
  double dir = sqrt (MAX (1.0 - alpha_bar_prev - sigma * sigma, 0.0));
  double a0 = sqrt (alpha_bar_prev);

  for (gsize j = 0; j < n; j++)
    {
      double eps = (c1 * x[j] - x0[j]) / c2;
      double v = a0 * x0[j] + dir * eps;

      if (add_noise)
        v += sigma * noise[j];
      x[j] = (float) v;
    }
}

void
diffuse__guided_eps (const float *eps_cond, const float *eps_null, double w,
                     gsize n, float *eps)
{
  for (gsize j = 0; j < n; j++)
    eps[j] = (float) ((1.0 + w) * eps_cond[j] - w * eps_null[j]);
}

/* ---- the variational bound ---------------------------------------------- */

#define PROB_FLOOR 1e-12
#define BIN_HALF (1.0 / 255.0)

/* Φ(z) − Φ(a) for a < z, without cancellation in either tail. */
static double
normal_cdf_diff (double a, double z)
{
  if (a >= 0.0)
    return 0.5 * (erfc (a / G_SQRT2) - erfc (z / G_SQRT2));
  if (z <= 0.0)
    return 0.5 * (erfc (-z / G_SQRT2) - erfc (-a / G_SQRT2));
  return 1.0 - 0.5 * erfc (-a / G_SQRT2) - 0.5 * erfc (z / G_SQRT2);
}

double
diffuse__decoder_nll (double x, double mean, double log_var)
{
  double inv_sd = exp (-0.5 * log_var);
  double hi = (x - mean + BIN_HALF) * inv_sd;
  double lo = (x - mean - BIN_HALF) * inv_sd;
  double p;

  if (x < -0.999)
    p = 0.5 * erfc (-hi / G_SQRT2); /* Φ(hi): the bin open below */
  else if (x > 0.999)
    p = 0.5 * erfc (lo / G_SQRT2); /* 1 − Φ(lo): open above */
  else
    p = normal_cdf_diff (lo, hi);
  return -log (MAX (p, PROB_FLOOR));
}

double
diffuse__normal_kl (double mean_diff, double log_var_q, double log_var_p)
{
  double u = log_var_q - log_var_p;

  return 0.5 * (expm1 (u) - u + mean_diff * mean_diff * exp (-log_var_p));
}

double
diffuse__prior_kl (double x0, double alpha_bar)
{
  return 0.5 * (alpha_bar * x0 * x0 - alpha_bar - log1p (-alpha_bar));
}
