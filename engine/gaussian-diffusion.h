/* The formulas of Gaussian diffusion (gaussian-diffusion.c), named as the
 * seed notes (../shared/seeds/) and guided-diffusion's
 * gaussian_diffusion.py name them.  The samplers (sampler.c), the
 * schedules (schedule.c) and the model denoiser (sample.c) call them.
 * Not installed.
 *
 * Notation: ᾱ = ᾱ_t of the step taken, ᾱ' = ᾱ_{t−1} (1 before the first
 * step), β = β_t, all of the respaced schedule; arithmetic in double,
 * results rounded to float once per element. */
#ifndef DIFFUSE_GAUSSIAN_DIFFUSION_H
#define DIFFUSE_GAUSSIAN_DIFFUSION_H

#include <glib.h>

#include "diffuse.h"

G_BEGIN_DECLS

/* ---- schedule ---------------------------------------------------------- */

/* ᾱ_i = ∏_{j≤i} (1 − β_j) (seed "Parameterization of β_t"), i < n. */
void diffuse__alphas_cumprod (const double *betas, gint n,
                              double *alphas_cumprod);

/* The β of a kept step after respacing (seed "Fewer Sampling Steps";
 * guided-diffusion SpacedDiffusion): β_i = 1 − ᾱ_{τ_i} / ᾱ_{τ_{i−1}},
 * alpha_bar_prev = ᾱ of the previous kept step (1 for the first). */
double diffuse__respaced_beta (double alpha_bar, double alpha_bar_prev);

/* ---- forward process --------------------------------------------------- */

/* A sample of q(x_t | x_0) = N(sqrt(ᾱ) x_0, (1 − ᾱ) I) for the given
 * noise ε (seed, the forward process in closed form):
 * x_t = sqrt(ᾱ) x_0 + sqrt(1 − ᾱ) ε, n elements. */
void diffuse__q_sample (const float *x0, const float *eps, double alpha_bar,
                        gsize n, float *x_t);

/* The same for one element, in double: sqrt(ᾱ) x_0 + sqrt(1 − ᾱ) ε. */
double diffuse__q_sample_1 (double x0, double eps, double alpha_bar);

/* A sample of q(x_{t'} | x_t) for t' > t, in place on x (n elements):
 * N(sqrt(ᾱ'/ᾱ) x_t, (1 − ᾱ'/ᾱ) I), ᾱ = alpha_bar_from (of t), ᾱ' =
 * alpha_bar_to (of t'), z the noise (seed, the forward process: the
 * product of the α_s over t < s ≤ t' is ᾱ'/ᾱ).  RePaint's jump back up
 * (Lugmayr et al. 2022, Algorithm 1, "x_t ~ N(sqrt(1 − β_{t−1}) x_{t−1},
 * β_{t−1} I)", over several steps at once). */
void diffuse__q_sample_from (float *x, const float *z, gsize n,
                             double alpha_bar_from, double alpha_bar_to);

/* RePaint's join of the known and the generated part (Lugmayr et al.
 * 2022 eq. 8, with this engine's mask m = 1 where regenerated):
 *   x ← m·x + (1 − m)·x_known,  x_known = sqrt(ᾱ) x0 + sqrt(1 − ᾱ) ε,
 * x_known a sample of q(x_t | x_0) (diffuse__q_sample) for the given ε.
 * mask [hw] is repeated over the n = k·hw elements; where m = 0 and ᾱ = 1
 * the result is x0 itself, bit for bit. */
void diffuse__repaint_join (float *x, const float *x0, const float *eps,
                            const float *mask, gsize n, gsize hw,
                            double alpha_bar);

/* ---- reverse process --------------------------------------------------- */

/* x_0 from ε (guided-diffusion _predict_xstart_from_eps; seed "Fewer
 * Sampling Steps"): x_0 = (x_t − sqrt(1 − ᾱ) ε) / sqrt(ᾱ), computed as
 * sqrt(1/ᾱ) x_t − sqrt(1/ᾱ − 1) ε; clipped to [−1, 1] when clip. */
void diffuse__predict_x0_from_eps (const float *x_t, const float *eps,
                                   double alpha_bar, gboolean clip, gsize n,
                                   float *x0);

/* The same for one element, in double. */
double diffuse__x0_from_eps_1 (double x_t, double eps, double alpha_bar,
                               gboolean clip);
/* Its inverse, ε from x_0 (guided-diffusion _predict_eps_from_xstart):
 * ε = (sqrt(1/ᾱ) x_t − x_0) / sqrt(1/ᾱ − 1). */
double diffuse__eps_from_x0_1 (double x_t, double x0, double alpha_bar);

/* The posterior q(x_{t−1} | x_t, x_0) = N(μ̃, β̃ I) (Ho et al. 2020 eqs.
 * 6–7; seed "Fewer Sampling Steps"):
 *   μ̃ = coef_x0 · x_0 + coef_xt · x_t,
 *   coef_x0 = sqrt(ᾱ') β / (1 − ᾱ),  coef_xt = sqrt(α) (1 − ᾱ') / (1 − ᾱ),
 *   β̃ = variance = (1 − ᾱ') β / (1 − ᾱ)   (0 at the first step, ᾱ' = 1). */
typedef struct
{
  double coef_x0, coef_xt;
  double variance;
} DiffusePosterior;

void diffuse__q_posterior (double beta, double alpha_bar, double alpha_bar_prev,
                           DiffusePosterior *q);
/* μ̃ of one element. */
double diffuse__q_posterior_mean (const DiffusePosterior *q, double x0,
                                  double x_t);

/* The learned variance (seed "Parameterization of reverse process
 * variance Σθ"; improved DDPM eq. 15): log Σ = v log β + (1 − v) log β̃
 * with v = (raw + 1) / 2, raw the network's output in [−1, 1]. */
double diffuse__learned_log_variance (double raw, double log_beta,
                                      double log_beta_tilde);

/* DDPM ancestral step (Ho et al. 2020 Algorithm 2, with guided-diffusion's
 * p_mean_variance): x_{t−1} = μ̃(x_0, x_t) + σ z, the mean from the
 * (clipped) predicted x_0, in place on x (n elements).  σ² by variance:
 * FIXED_SMALL β̃, FIXED_LARGE β (guided-diffusion uses β̃_1 at the first
 * step, where no noise is added anyway), LEARNED Σ of
 * diffuse__learned_log_variance from raw_var.  noise (z) is read only
 * when add_noise. */
void diffuse__ddpm_step (float *x, const float *x0, const float *raw_var,
                         const float *grad, const float *noise, gsize n,
                         double beta, double alpha_bar, double alpha_bar_prev,
                         double beta_tilde_1, DiffuseVarianceKind variance,
                         gboolean add_noise);
/* grad (may be NULL): s·∇x log p(y|x_t), added to the mean times Σ
 * (classifier guidance, condition_mean); beta_tilde_1: β̃ at respaced
 * index 1, guided-diffusion's stand-in for β̃ = 0 at the first step.
 * raw_var is read for LEARNED when noise is added or grad is given. */

/* Classifier guidance for DDIM (condition_score): x0 ← x̂0 of
 * ε − sqrt(1 − ᾱ)·grad, ε re-derived from x and the given x0. */
void diffuse__condition_score (const float *x, const float *grad, gsize n,
                               double alpha_bar, float *x0);

/* σ of DDIM with η (Song et al. 2021 eq. 16; seed "Fewer Sampling Steps"):
 * σ = η sqrt((1 − ᾱ') / (1 − ᾱ)) sqrt(1 − ᾱ / ᾱ'). */
double diffuse__ddim_sigma (double alpha_bar, double alpha_bar_prev,
                            double eta);

/* DDIM update with η (Song et al. 2021 eq. 12; seed "Fewer Sampling
 * Steps"): x_{t−1} = sqrt(ᾱ') x_0 + sqrt(1 − ᾱ' − σ²) ε + σ z, in place on
 * x.  ε is re-derived from the (clipped) x_0 (guided-diffusion's
 * ddim_sample), so that clipping keeps x_{t−1} consistent with the x_0 it
 * reports.  For η > 1 the direction term 1 − ᾱ' − σ² can go negative; it
 * is clamped at 0 (the step then only adds noise), where guided-diffusion
 * would give NaN.  noise (z) is read only when add_noise. */
void diffuse__ddim_step (float *x, const float *x0, const float *noise, gsize n,
                         double alpha_bar, double alpha_bar_prev, double eta,
                         gboolean add_noise);

/* ---- guidance ----------------------------------------------------------- */

/* Classifier-free guidance (seed "Classifier-Free Guidance"; Ho & Salimans
 * 2021 eq. 6): ε̄ = (1 + w) ε(x_t, y) − w ε(x_t, ∅), n elements. */
void diffuse__guided_eps (const float *eps_cond, const float *eps_null,
                          double w, gsize n, float *eps);

/* ---- the variational bound (seed "ELBO"; Ho et al. 2020 eq. 5) -------- */

/* L_0's decoder (Ho et al. 2020 eq. 13): −log of the probability of the
 * 8-bit bin of width 2/255 around x under N(mean, e^{log_var}), in nats;
 * the outer bins are open (x < −0.999 takes (−∞, x + 1/255], x > 0.999
 * takes [x − 1/255, ∞)).  The normal CDF is the exact one, from erfc in the
 * tail it is evaluated in (improved-diffusion uses a tanh approximation);
 * probabilities are floored at 1e-12 as improved-diffusion does. */
double diffuse__decoder_nll (double x, double mean, double log_var);

/* L_{t−1}: D_KL(N(μ_q, e^{lq}) ‖ N(μ_p, e^{lp})) per dimension in nats,
 * ½(e^{lq−lp} − 1 − (lq − lp) + (μ_q − μ_p)² e^{−lp}) (guided-diffusion's
 * normal_kl), with u = lq − lp through expm1 so that nearly equal
 * variances lose no digits; mean_diff = μ_q − μ_p. */
double diffuse__normal_kl (double mean_diff, double log_var_q,
                           double log_var_p);

/* L_T: D_KL(q(x_T | x_0) ‖ N(0, I)) = ½(ᾱ x_0² − ᾱ − log(1 − ᾱ)) per
 * dimension, in nats (seed: "L_T … 解析可计算的常数"). */
double diffuse__prior_kl (double x0, double alpha_bar);

G_END_DECLS

#endif /* DIFFUSE_GAUSSIAN_DIFFUSION_H */
