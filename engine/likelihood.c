/* The variational bound on −log p(x0) in bits per dimension, as
 * improved-diffusion's calc_bpd_loop computes it (Nichol & Dhariwal 2021,
 * sec. 2 and 3; Ho et al. 2020 sec. 3.3).
 *
 * Seed notes (../shared/seeds/, the ELBO / NLL part, "L_VLB = L_T +
 * L_{T−1} + … + L_0"):
 *   L_T     = D_KL(q(x_T | x0) ‖ p(x_T))                 the prior term
 *   L_{t−1} = D_KL(q(x_{t−1} | x_t, x0) ‖ p_θ(x_{t−1} | x_t))   t ≥ 2
 *   L_0     = −log p_θ(x0 | x1)                           the decoder
 * With 0-based timesteps (t = 0 … T−1, as guided-diffusion counts them) the
 * term of timestep t is the KL between the posterior and the model's
 * reverse step out of x_t for t ≥ 1, and the decoder NLL at t = 0; the
 * prior term uses ᾱ of t = T−1.  Every term is evaluated at ONE draw
 * x_t = sqrt(ᾱ_t)·x0 + sqrt(1−ᾱ_t)·ε (the seed's Monte Carlo estimate of
 * the expectation over q), with ε from params->noise or the PRNG.
 *
 * Both distributions of each KL are diagonal Gaussians, so the KL is the
 * closed form of the seed's "KL 散度展开（两高斯分布）":
 *   KL = ½ (log σ_p² − log σ_q² + σ_q²/σ_p² − 1 + (μ_q − μ_p)²/σ_p²)
 * per dimension, here with u = log σ_q² − log σ_p² written as
 * ½ (expm1(u) − u + (μ_q − μ_p)²·e^{−log σ_p²}) so that nearly equal
 * variances lose no digits.  μ_q − μ_p is formed as coef1·(x0 − x̂0)
 * rather than as a difference of the two means, which share coef2·x_t.
 *
 * Posterior (seed "Fewer Sampling Steps", μ̃ and β̃; DDPM eq. 7):
 *   μ̃ = coef1·x0 + coef2·x_t,  coef1 = β_t sqrt(ᾱ_{t−1})/(1−ᾱ_t),
 *   coef2 = (1−ᾱ_{t−1}) sqrt(α_t)/(1−ᾱ_t),  β̃_t = β_t (1−ᾱ_{t−1})/(1−ᾱ_t),
 *   log β̃ "clipped": at t = 0 (where β̃ = 0) log β̃_1 is used instead.
 * Model p_θ(x_{t−1} | x_t): mean μ̃(x̂0, x_t) with x̂0 = sqrt(1/ᾱ)x_t −
 * sqrt(1/ᾱ−1)ε̂ (seed: x0 from ε), clipped to [−1, 1] when asked (as
 * calc_bpd_loop does by default); log-variance
 *   learned:     v log β_t + (1−v) log β̃_t (clipped), v = (raw + 1)/2
 *                (seed "Parameterization of reverse process variance Σθ")
 *   fixed-small: log β̃_t (clipped)
 *   fixed-large: log β_t, and log β̃_1 at t = 0 (improved-diffusion's
 *                choice for a better decoder likelihood)
 *
 * Decoder (Ho et al. 2020 eq. 13): the probability of the 8-bit bin of
 * width 2/255 around x0 under N(μ, σ²), with the outer bins open at ±1
 * (x0 < −0.999 takes (−∞, x0+1/255], x0 > 0.999 takes [x0−1/255, ∞)).
 * The CDF is the exact normal one, from erfc in the tail it is evaluated
 * in (improved-diffusion uses a tanh approximation of Φ); probabilities
 * are floored at 1e-12 as improved-diffusion does.
 *
 * Prior: D_KL(N(sqrt(ᾱ)x0, 1−ᾱ) ‖ N(0, 1)) = ½(ᾱx0² − ᾱ − log(1−ᾱ)) per
 * dimension at t = T−1 (seed: "L_T … 解析可计算的常数").
 *
 * Units: each term is the mean over the C·H·W dimensions of an image,
 * divided by ln 2 (bits per dimension).  The total is the prior plus the
 * sum of all T terms; with n_timesteps = N it is an estimate: the decoder
 * term at t = 0 once, plus (T−1)/(N−1) times the sum of the KL terms at
 * t = round(j·(T−1)/(N−1)), j = 1 … N−1.
 *
 * Everything past the network is double precision: x_t is kept in double
 * (the network sees it rounded to float), and the KL terms, which are
 * small differences at large t, are summed in double.
 */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"
#include "gaussian-diffusion.h"

/* PRNG streams of the seeded noise: stream NLL_STREAM_BASE + t holds the ε
 * of x_t, image k at offset k·C·H·W (no overlap with the sampler's
 * streams 0, 1, 2 + i, so a sample's own noise is never reused). */
#define NLL_STREAM_BASE (G_GUINT64_CONSTANT (1) << 40)
#define MAX_COUNT 100000
#define DEFAULT_BATCH 8

/* One network pass as the bound needs it: images first … first+batch−1
 * at x_t of timestep t; eps_out [batch,C,H,W], var_out the raw variance
 * channels (or NULL). */
typedef gboolean (*NllDenoise) (gpointer data, gint first, gint batch,
                                const float *x_t, gint t, float *eps_out,
                                float *var_out, GError **error);

void
diffuse_nll_params_init (DiffuseNllParams *params)
{
  g_return_if_fail (params != NULL);

  memset (params, 0, sizeof *params);
  params->variances = NULL;
  params->n_variances = 0;
  params->clip_denoised = TRUE;
  params->n_timesteps = 0;
  params->labels = NULL;
  params->noise = NULL;
  params->seed = 0;
  params->batch = 0;
  params->n_threads = 0;
  params->progress = NULL;
  params->user_data = NULL;
}

void
diffuse_nll_result_free (DiffuseNllResult *result)
{
  if (result == NULL)
    return;
  g_free (result->variances);
  g_free (result->timesteps);
  g_free (result->weights);
  g_free (result->terms);
  g_free (result->prior);
  g_free (result->total);
  g_free (result->xstart_mse);
  g_free (result->eps_mse);
  g_free (result);
}

/* What does not depend on the network: variances, timestep count, batch,
 * the images themselves. */
static gboolean
check_common (const DiffuseNllParams *params, gint T, gboolean has_variance,
              const float *x0, gint count, gint channels, gint height,
              gint width, GError **error)
{
  if (T < 2)
    return diffuse__invalid (
        error, "the bound needs at least 2 diffusion steps (T = %d)", T);
  if (count < 1 || count > MAX_COUNT)
    return diffuse__invalid (error, "%d images: need 1..%d", count, MAX_COUNT);
  if (channels < 1 || height < 1 || width < 1 ||
      (guint64) count * channels * height * width >
          G_MAXSIZE / sizeof (double) / 8)
    return diffuse__invalid (error, "bad image shape %d x %d x %d x %d", count,
                             channels, height, width);
  if (params->n_variances < 0 || params->n_variances > DIFFUSE_VARIANCE_COUNT ||
      (params->n_variances > 0 && params->variances == NULL))
    return diffuse__invalid (
        error, "n_variances = %d: need 0..%d (0 = auto) and a list",
        params->n_variances, DIFFUSE_VARIANCE_COUNT);
  for (gint v = 0; v < params->n_variances; v++)
    {
      DiffuseVarianceKind kind = params->variances[v];

      if ((guint) kind >= DIFFUSE_VARIANCE_COUNT)
        return diffuse__invalid (error, "unknown variance kind %d", (int) kind);
      if ((kind == DIFFUSE_VARIANCE_LEARNED) && !has_variance)
        return diffuse__invalid (
            error, "variance \"learned\" needs a learn_sigma model; "
                   "this model predicts only ε (use fixed-small or "
                   "fixed-large)");
    }
  if (params->n_timesteps != 0 &&
      (params->n_timesteps < 2 || params->n_timesteps > T))
    return diffuse__invalid (error,
                             "n_timesteps = %d is out of range: 0 (every t) or "
                             "2..%d",
                             params->n_timesteps, T);
  if (params->batch < 0 || params->batch > 4096)
    return diffuse__invalid (
        error, "batch = %d is out of range (0 = default, 1..4096)",
        params->batch);
  if (params->n_threads < 0)
    return diffuse__invalid (error, "n_threads = %d is negative",
                             params->n_threads);
  if (x0 != NULL)
    {
      gsize n = (gsize) count * channels * height * width;
      gsize img = (gsize) channels * height * width;

      for (gsize j = 0; j < n; j++)
        if (!(x0[j] >= -1.0f && x0[j] <= 1.0f))
          return diffuse__invalid (
              error,
              "image %" G_GSIZE_FORMAT " has the value %g at "
              "element %" G_GSIZE_FORMAT ": images must be finite "
              "and in [-1, 1] (pixel / 127.5 - 1)",
              j / img, (double) x0[j], j % img);
    }
  return TRUE;
}

gboolean
diffuse_nll_params_validate (const DiffuseNllParams *params,
                             const DiffuseModel *model, gint count, gint height,
                             gint width, GError **error)
{
  g_return_val_if_fail (params != NULL, FALSE);
  g_return_val_if_fail (model != NULL, FALSE);

  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);

  if (!check_common (params, cfg->diffusion_steps, cfg->learn_sigma, NULL,
                     count, cfg->in_channels, height, width, error))
    return FALSE;
  if (!diffuse_model_check_size (model, height, width, error))
    return FALSE;
  if (cfg->out_channels < (cfg->learn_sigma ? 2 : 1) * cfg->in_channels)
    {
      g_set_error (
          error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL,
          "model has out_channels = %d, expected %d (in_channels = %d%s)",
          cfg->out_channels, (cfg->learn_sigma ? 2 : 1) * cfg->in_channels,
          cfg->in_channels, cfg->learn_sigma ? ", learn_sigma" : "");
      return FALSE;
    }
  for (gint k = 0; k < count; k++)
    {
      gint y = params->labels != NULL ? params->labels[k] : -1;

      if (cfg->num_classes == 0)
        {
          if (y != -1)
            return diffuse__invalid (error,
                                     "image %d has class %d, but the model is "
                                     "unconditional",
                                     k, y);
        }
      else if (y < -1 || y >= cfg->num_classes)
        return diffuse__invalid (
            error,
            "image %d has class %d: out of range (0..%d, or "
            "-1 for the null class)",
            k, y, cfg->num_classes - 1);
      else if (y == -1 && cfg->null_class < 0)
        return diffuse__invalid (
            error,
            "image %d has no class, and the model has no null "
            "class: give every image's class (0..%d)",
            k, cfg->num_classes - 1);
    }
  return TRUE;
}

/* ---- the loop ---------------------------------------------------------- */

typedef struct
{
  gint T;
  const double *betas, *abars;
} Chain;

/* Resolved variance kinds: AUTO → learned / fixed-large. */
static DiffuseVarianceKind *
resolve_variances (const DiffuseNllParams *params, gboolean has_variance,
                   gint *n)
{
  gint nv = params->n_variances > 0 ? params->n_variances : 1;
  DiffuseVarianceKind *kinds = g_new (DiffuseVarianceKind, nv);

  for (gint v = 0; v < nv; v++)
    {
      DiffuseVarianceKind kind = params->n_variances > 0
                                     ? params->variances[v]
                                     : DIFFUSE_VARIANCE_AUTO;
      if (kind == DIFFUSE_VARIANCE_AUTO)
        kind = has_variance ? DIFFUSE_VARIANCE_LEARNED
                            : DIFFUSE_VARIANCE_FIXED_LARGE;
      kinds[v] = kind;
    }
  *n = nv;
  return kinds;
}

static DiffuseNllResult *
nll_run (const Chain *chain, NllDenoise denoise, gpointer data,
         gboolean has_variance, const DiffuseNllParams *params, const float *x0,
         gint count, gint channels, gint height, gint width, GError **error)
{
  gint T = chain->T;
  gsize img = (gsize) channels * height * width;
  gint batch = params->batch > 0 ? params->batch : MIN (count, DEFAULT_BATCH);
  gsize nb = (gsize) batch * img;
  DiffuseNllResult *r = g_new0 (DiffuseNllResult, 1);
  gboolean want_var = FALSE;
  gboolean ok = FALSE;

  batch = MIN (batch, count);
  nb = (gsize) batch * img;
  r->count = count;
  r->T = T;
  r->variances = resolve_variances (params, has_variance, &r->n_variances);
  for (gint v = 0; v < r->n_variances; v++)
    want_var |= r->variances[v] == DIFFUSE_VARIANCE_LEARNED;

  /* which t, with which weight (header comment) */
  gint N = params->n_timesteps > 0 ? params->n_timesteps : T;
  r->n_terms = N;
  r->timesteps = g_new (gint, N);
  r->weights = g_new (double, N);
  for (gint j = 0; j < N; j++)
    {
      /* descending, as calc_bpd_loop: entry i is t = t_{N−1−i} */
      gint jj = N - 1 - j;
      gint t =
          N == T
              ? jj
              : (gint) nearbyint ((double) ((gint64) jj * (T - 1)) / (N - 1));

      r->timesteps[j] = t;
      r->weights[j] = t == 0 || N == T ? 1.0 : (double) (T - 1) / (N - 1);
    }

  gsize n_out = (gsize) r->n_variances * N * count;
  r->terms = g_try_new0 (double, n_out);
  r->prior = g_try_new0 (double, count);
  r->total = g_try_new0 (double, (gsize) r->n_variances *count);
  r->xstart_mse = g_try_new0 (double, (gsize) N *count);
  r->eps_mse = g_try_new0 (double, (gsize) N *count);

  double *xt = g_try_new (double, nb);
  float *xt_f = g_try_new (float, nb);
  float *eps = g_try_new (float, nb);
  float *var = want_var ? g_try_new (float, nb) : NULL;
  float *noise = params->noise == NULL ? g_try_new (float, nb) : NULL;

  if (r->terms == NULL || r->prior == NULL || r->total == NULL ||
      r->xstart_mse == NULL || r->eps_mse == NULL || xt == NULL ||
      xt_f == NULL || eps == NULL || (want_var && var == NULL) ||
      (params->noise == NULL && noise == NULL))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "cannot allocate the bound's buffers (%d terms, %d images)",
                   N, count);
      goto out;
    }

  double ln2 = G_LN2;
  /* β̃_1: the log-variance clipped at t = 0, where β̃ = 0 */
  DiffusePosterior q1;
  diffuse__q_posterior (chain->betas[1], chain->abars[1], chain->abars[0], &q1);
  double log_post1 = log (q1.variance);

  for (gint j = 0; j < N; j++)
    {
      gint t = r->timesteps[j];
      double beta = chain->betas[t], abar = chain->abars[t];
      double abar_prev = t > 0 ? chain->abars[t - 1] : 1.0;
      DiffusePosterior q;
      diffuse__q_posterior (beta, abar, abar_prev, &q);
      double log_post = t > 0 ? log (q.variance) : log_post1;
      double log_beta = log (beta);
      /* fixed-large uses β̃_1 at t = 0 */
      double log_large = t > 0 ? log_beta : log_post1;

      for (gint first = 0; first < count; first += batch)
        {
          gint b = MIN (batch, count - first);
          gsize n = (gsize) b * img;
          const float *x0c = x0 + (gsize) first * img;
          const float *e;

          if (params->noise != NULL)
            e = params->noise + ((gsize) t * count + first) * img;
          else
            {
              diffuse_rng_normal (params->seed, NLL_STREAM_BASE + (guint64) t,
                                  (guint64) first * img, noise, n);
              e = noise;
            }
          /* x_t ~ q(x_t | x0), kept in double */
          for (gsize i = 0; i < n; i++)
            {
              xt[i] = diffuse__q_sample_1 (x0c[i], e[i], abar);
              xt_f[i] = (float) xt[i];
            }
          if (!denoise (data, first, b, xt_f, t, eps, want_var ? var : NULL,
                        error))
            goto out;

          for (gint k = 0; k < b; k++)
            {
              gint im = first + k;
              double se_x0 = 0.0, se_eps = 0.0;
              double sum[DIFFUSE_VARIANCE_COUNT] = { 0 };

              for (gsize p = 0; p < img; p++)
                {
                  gsize i = (gsize) k * img + p;
                  double x = x0c[i];
                  double xhat = diffuse__x0_from_eps_1 (xt[i], eps[i], abar,
                                                        params->clip_denoised);
                  double eps_hat = diffuse__eps_from_x0_1 (xt[i], xhat, abar);
                  se_x0 += (xhat - x) * (xhat - x);
                  se_eps += (eps_hat - e[i]) * (eps_hat - e[i]);

                  for (gint v = 0; v < r->n_variances; v++)
                    {
                      double lv;

                      switch (r->variances[v])
                        {
                        case DIFFUSE_VARIANCE_LEARNED:
                          lv = diffuse__learned_log_variance (var[i], log_beta,
                                                              log_post);
                          break;
                        case DIFFUSE_VARIANCE_FIXED_SMALL:
                          lv = log_post;
                          break;
                        default:
                          lv = log_large;
                          break;
                        }
                      if (t == 0)
                        sum[v] += diffuse__decoder_nll (
                            x, diffuse__q_posterior_mean (&q, xhat, xt[i]), lv);
                      else
                        /* μ̃(x0) − μ̃(x̂0) = coef_x0 (x0 − x̂0) */
                        sum[v] += diffuse__normal_kl (q.coef_x0 * (x - xhat),
                                                      log_post, lv);
                    }
                }
              for (gint v = 0; v < r->n_variances; v++)
                r->terms[((gsize) v * N + j) * count + im] = sum[v] / img / ln2;
              r->xstart_mse[(gsize) j * count + im] = se_x0 / img;
              r->eps_mse[(gsize) j * count + im] = se_eps / img;
            }
        }
      if (params->progress != NULL &&
          !params->progress (j + 1, N, params->user_data))
        {
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_CANCELLED,
                       "likelihood cancelled after %d of %d timesteps", j + 1,
                       N);
          goto out;
        }
    }

  /* prior term at t = T−1, and the totals */
  double abar_T = chain->abars[T - 1];
  for (gint k = 0; k < count; k++)
    {
      double s = 0.0;

      for (gsize p = 0; p < img; p++)
        {
          double x = x0[(gsize) k * img + p];

          s += diffuse__prior_kl (x, abar_T);
        }
      r->prior[k] = s / img / ln2;
      for (gint v = 0; v < r->n_variances; v++)
        {
          double tot = r->prior[k];

          for (gint j = 0; j < N; j++)
            tot += r->weights[j] * r->terms[((gsize) v * N + j) * count + k];
          r->total[(gsize) v * count + k] = tot;
        }
    }
  ok = TRUE;

out:
  g_free (xt);
  g_free (xt_f);
  g_free (eps);
  g_free (var);
  g_free (noise);
  if (!ok)
    {
      diffuse_nll_result_free (r);
      return NULL;
    }
  return r;
}

/* ---- with a model ------------------------------------------------------- */

typedef struct
{
  DiffuseUNet *unet;
  const DiffuseModelConfig *cfg;
  const gint *labels; /* params->labels or NULL */
  double t_scale;
  gsize hw;
  float *t_in;
  gint *y_in;
  float *out; /* [batch, out_C, H, W] */
} ModelData;

static gboolean
model_denoise (gpointer user_data, gint first, gint batch, const float *x_t,
               gint t, float *eps_out, float *var_out, GError **error)
{
  ModelData *d = user_data;
  gint c = d->cfg->in_channels;
  gsize img = (gsize) c * d->hw, out_img = (gsize) d->cfg->out_channels * d->hw;

  for (gint k = 0; k < batch; k++)
    {
      gint y = d->labels != NULL ? d->labels[first + k] : -1;

      d->t_in[k] = (float) (t * d->t_scale);
      d->y_in[k] = d->cfg->num_classes == 0 ? 0
                   : y >= 0                 ? y
                                            : d->cfg->null_class;
    }
  if (!diffuse_unet_forward (d->unet, batch, x_t, d->t_in, d->y_in, d->out,
                             error))
    return FALSE;
  for (gint k = 0; k < batch; k++)
    {
      /* ε channels first, then the learned-sigma ones (guided-diffusion's
       * th.split(model_output, C, dim=1)) */
      memcpy (eps_out + k * img, d->out + k * out_img, img * sizeof (float));
      if (var_out != NULL)
        memcpy (var_out + k * img, d->out + k * out_img + img,
                img * sizeof (float));
    }
  return TRUE;
}

static gboolean
chain_for (DiffuseSchedule **schedule, Chain *chain, DiffuseScheduleKind kind,
           gint T, GError **error)
{
  *schedule = diffuse_schedule_new (kind, T, NULL, error);
  if (*schedule == NULL)
    return FALSE;
  chain->T = T;
  chain->betas = diffuse_schedule_get_betas (*schedule);
  chain->abars = diffuse_schedule_get_alphas_cumprod (*schedule);
  return TRUE;
}

DiffuseNllResult *
diffuse_nll (const DiffuseModel *model, const DiffuseNllParams *params,
             const float *x0, gint count, gint height, gint width,
             GError **error)
{
  g_return_val_if_fail (model != NULL, NULL);
  g_return_val_if_fail (params != NULL, NULL);
  g_return_val_if_fail (x0 != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);

  if (!diffuse_nll_params_validate (params, model, count, height, width,
                                    error) ||
      !check_common (params, cfg->diffusion_steps, cfg->learn_sigma, x0, count,
                     cfg->in_channels, height, width, error))
    return NULL;

  g_autoptr (DiffuseSchedule) schedule = NULL;
  Chain chain;
  if (!chain_for (&schedule, &chain, cfg->noise_schedule, cfg->diffusion_steps,
                  error))
    return NULL;

  gint batch = MIN (params->batch > 0 ? params->batch : DEFAULT_BATCH, count);
  ModelData d = { 0 };
  DiffuseNllResult *r = NULL;

  d.cfg = cfg;
  d.labels = params->labels;
  d.t_scale = cfg->rescale_timesteps ? 1000.0 / cfg->diffusion_steps : 1.0;
  d.hw = (gsize) height * width;
  d.unet =
      diffuse_unet_new (model, batch, height, width, params->n_threads, error);
  if (d.unet == NULL)
    return NULL;
  d.t_in = g_new (float, batch);
  d.y_in = g_new (gint, batch);
  d.out = g_try_new (float, (gsize) batch * cfg->out_channels * d.hw);
  if (d.out == NULL)
    g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                 "cannot allocate the network's output for a batch of %d",
                 batch);
  else
    r = nll_run (&chain, model_denoise, &d, cfg->learn_sigma, params, x0, count,
                 cfg->in_channels, height, width, error);

  g_free (d.t_in);
  g_free (d.y_in);
  g_free (d.out);
  diffuse_unet_free (d.unet);
  return r;
}

/* ---- with any denoiser -------------------------------------------------- */

typedef struct
{
  DiffuseDenoiseFunc denoise;
  gpointer data;
} WithData;

static gboolean
with_denoise (gpointer user_data, gint first, gint batch, const float *x_t,
              gint t, float *eps_out, float *var_out, GError **error)
{
  WithData *w = user_data;

  (void) first;
  return w->denoise (w->data, batch, x_t, t, (double) t, eps_out, var_out,
                     error);
}

DiffuseNllResult *
diffuse_nll_with (DiffuseScheduleKind kind, gint T, DiffuseDenoiseFunc denoise,
                  gpointer denoise_data, gboolean has_variance,
                  const DiffuseNllParams *params, const float *x0, gint count,
                  gint channels, gint height, gint width, GError **error)
{
  g_return_val_if_fail (denoise != NULL, NULL);
  g_return_val_if_fail (params != NULL, NULL);
  g_return_val_if_fail (x0 != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!check_common (params, T, has_variance, x0, count, channels, height,
                     width, error))
    return NULL;
  if (params->labels != NULL)
    {
      diffuse__invalid (error,
                        "labels are for diffuse_nll; a denoiser gets none");
      return NULL;
    }

  g_autoptr (DiffuseSchedule) schedule = NULL;
  Chain chain;
  if (!chain_for (&schedule, &chain, kind, T, error))
    return NULL;

  WithData w = { denoise, denoise_data };
  return nll_run (&chain, with_denoise, &w, has_variance, params, x0, count,
                  channels, height, width, error);
}
