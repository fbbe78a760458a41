/* The reverse-process loop: DDIM (with η) and DDPM ancestral sampling over
 * any denoiser (DiffuseDenoiseFunc), plus img2img.  The sampler never sees a
 * network; diffuse_sample (sample.c) wraps the UNet and guidance into a
 * denoiser and calls diffuse_sample_with.
 *
 * Notation: respaced index i = n−1 … 0, ᾱ = ᾱ_i, ᾱ' = ᾱ_{i−1} (1 at i = 0),
 * β = β_i, both from the respaced schedule (never t − T/N).
 *
 * Conventions (docs/DESIGN.md):
 *  - noise: stream 0 = x_T, stream 1 = img2img forward noise, stream 2 + i =
 *    the noise added at respaced index i; image k of a batch reads offset
 *    k·C·H·W, so the first image does not depend on count.
 *  - the denoiser gets t_model = the ORIGINAL timestep t_i of the kept step;
 *    a model denoiser that wants rescale_timesteps multiplies by 1000/T
 *    itself (sample.c does).
 *  - progress(step, n_steps, x0_pred, ...) is called after every reverse
 *    step with step = 1 … n_steps (steps done so far), n_steps = the number
 *    of steps this run takes.
 *  - params->steps and params->respacing are NOT read here: the schedule
 *    passed in is used as it is.
 *  - with init_image, init_noise (if given) replaces the stream-1 forward
 *    noise ε in x_t = sqrt(ᾱ)x0 + sqrt(1−ᾱ)ε.
 *  - inpainting (params->mask, inpaint.c): after every move to a level
 *    the kept pixels are set to sqrt(ᾱ)x0 + sqrt(1−ᾱ)ε with a fresh ε from
 *    stream STREAM_KEPT0 + level + v·2³² (v = network calls at that level
 *    so far; the start's first x_t is img2img's, stream 1).  RePaint's
 *    resampling visits an index again: visit v ≥ 1 of index i draws its
 *    step noise from stream 2 + i + v·2³², and jump number k (0, 1, …)
 *    from stream STREAM_JUMP0 + k; without resampling the step streams
 *    are as above.
 */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"

#define STREAM_X_T 0
#define STREAM_IMG2IMG 1
#define STREAM_STEP0 2
#define STREAM_JUMP0 (G_GUINT64_CONSTANT (1) << 48)
#define STREAM_KEPT0 DIFFUSE__STREAM_KEPT0

typedef struct
{
  gsize n;        /* count·C·H·W */
  float *x;       /* x_t, updated in place */
  float *eps;     /* ε̂ from the denoiser */
  float *var;     /* raw variance output v ∈ [−1, 1] (learned), or NULL */
  float *x0;      /* predicted x0 */
  float *noise;   /* the step's fresh noise, or NULL when never needed */
  float *known_eps; /* inpainting: the forward noise ε of the kept pixels */
  float *grad;    /* classifier guidance: s·∇x log p(y | x_t), or NULL */
} Buffers;

static void
buffers_clear (Buffers *b)
{
  g_free (b->grad);
  g_free (b->x);
  g_free (b->eps);
  g_free (b->var);
  g_free (b->x0);
  g_free (b->noise);
  g_free (b->known_eps);
  memset (b, 0, sizeof *b);
}

static gboolean
buffers_alloc (Buffers *b, gsize n, gboolean want_var, gboolean want_noise,
               gboolean want_known, GError **error)
{
  gsize bytes = n * sizeof (float);

  memset (b, 0, sizeof *b);
  b->n = n;
  b->x = g_try_malloc (bytes);
  b->eps = g_try_malloc (bytes);
  b->x0 = g_try_malloc (bytes);
  if (want_var)
    b->var = g_try_malloc (bytes);
  if (want_noise)
    b->noise = g_try_malloc (bytes);
  if (want_known)
    b->known_eps = g_try_malloc (bytes);
  if (b->x == NULL || b->eps == NULL || b->x0 == NULL
      || (want_var && b->var == NULL) || (want_noise && b->noise == NULL)
      || (want_known && b->known_eps == NULL))
    {
      buffers_clear (b);
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "cannot allocate the sampler's buffers (%" G_GSIZE_FORMAT
                   " floats each)", n);
      return FALSE;
    }
  return TRUE;
}

/* x0 from ε (seed "Fewer Sampling Steps", DDIM part:
 * x0 = (x_t − sqrt(1−ᾱ)ε) / sqrt(ᾱ), written as guided-diffusion's
 * sqrt(1/ᾱ)·x_t − sqrt(1/ᾱ − 1)·ε), clipped to [−1, 1] on request. */
static void
predict_x0 (const Buffers *b, double abar, gboolean clip)
{
  double c1 = sqrt (1.0 / abar), c2 = sqrt (1.0 / abar - 1.0);

  for (gsize j = 0; j < b->n; j++)
    {
      double v = c1 * b->x[j] - c2 * b->eps[j];

      if (clip)
        v = CLAMP (v, -1.0, 1.0);
      b->x0[j] = (float) v;
    }
}

/* DDIM step, Song et al. 2021 eq. 12 (seed "Fewer Sampling Steps":
 * x_{t−1} = sqrt(ᾱ')x0 + sqrt(1 − ᾱ' − σ²)ε + σz) with eq. 16's
 * σ = η·sqrt((1−ᾱ')/(1−ᾱ))·sqrt(1 − ᾱ/ᾱ').  ε is re-derived from the
 * (clipped) x0, as guided-diffusion's ddim_sample does, so that clipping
 * keeps x_{t−1} consistent with the x0 it reports.  For η > 1 the
 * direction term 1 − ᾱ' − σ² can go negative; it is clamped at 0 (the
 * step then only adds noise), where guided-diffusion would give NaN. */
static void
step_ddim (Buffers *b, double abar, double abar_prev, double eta, gboolean add_noise)
{
  double c1 = sqrt (1.0 / abar), c2 = sqrt (1.0 / abar - 1.0);
  double sigma = eta * sqrt ((1.0 - abar_prev) / (1.0 - abar))
                 * sqrt (1.0 - abar / abar_prev);
  double dir = sqrt (MAX (1.0 - abar_prev - sigma * sigma, 0.0));
  double a0 = sqrt (abar_prev);

  for (gsize j = 0; j < b->n; j++)
    {
      double eps = (c1 * b->x[j] - b->x0[j]) / c2;
      double v = a0 * b->x0[j] + dir * eps;

      if (add_noise)
        v += sigma * b->noise[j];
      b->x[j] = (float) v;
    }
}

/* DDPM ancestral step, Ho et al. 2020 eqs. 6-7 (seed "Fewer Sampling Steps":
 * μ̃ = sqrt(ᾱ')β/(1−ᾱ)·x0 + sqrt(α)(1−ᾱ')/(1−ᾱ)·x_t, β̃ = (1−ᾱ')β/(1−ᾱ)),
 * the mean taken from the clipped x0 (guided-diffusion p_mean_variance).
 * Variance:
 *  - FIXED_SMALL: β̃_i
 *  - FIXED_LARGE: β_i (guided-diffusion uses β̃_1 at i = 0, where no noise
 *    is added anyway)
 *  - LEARNED: seed "Parameterization of reverse process variance Σθ",
 *    Σ = exp(v log β + (1−v) log β̃) with v = (raw + 1)/2 (improved DDPM
 *    eq. 15; the network's raw output is in [−1, 1]). */
static void
step_ddpm (Buffers *b, double beta, double abar, double abar_prev,
           DiffuseVarianceKind variance, gboolean add_noise, double post_var1)
{
  double coef_x0 = beta * sqrt (abar_prev) / (1.0 - abar);
  double coef_xt = (1.0 - abar_prev) * sqrt (1.0 - beta) / (1.0 - abar);
  double post_var = beta * (1.0 - abar_prev) / (1.0 - abar);
  /* guided-diffusion's posterior_log_variance_clipped: log β̃₁ at index 0,
   * where β̃ = 0 (only classifier guidance's Σ·g reads it there) */
  gboolean first = abar_prev >= 1.0;
  double log_small = log (first ? post_var1 : post_var);
  double log_large = log (beta);
  double sigma_fixed = sqrt (variance == DIFFUSE_VARIANCE_FIXED_SMALL ? post_var : beta);
  /* condition_mean's Σ for the fixed variances: model_variance is β̃
   * (FIXED_SMALL, 0 at index 0) or β with β̃₁ at index 0 (FIXED_LARGE) */
  double var_fixed = variance == DIFFUSE_VARIANCE_FIXED_SMALL ? post_var
                     : first ? post_var1 : beta;

  for (gsize j = 0; j < b->n; j++)
    {
      double v = coef_x0 * b->x0[j] + coef_xt * b->x[j];
      double log_var = 0.0;

      if (variance == DIFFUSE_VARIANCE_LEARNED && (add_noise || b->grad))
        {
          double frac = (b->var[j] + 1.0) / 2.0;

          log_var = frac * log_large + (1.0 - frac) * log_small;
        }
      if (b->grad)
        v += (variance == DIFFUSE_VARIANCE_LEARNED ? exp (log_var) : var_fixed)
             * b->grad[j];
      if (add_noise)
        {
          double sigma = sigma_fixed;

          if (variance == DIFFUSE_VARIANCE_LEARNED)
            sigma = exp (0.5 * log_var);
          v += sigma * b->noise[j];
        }
      b->x[j] = (float) v;
    }
}

/* Classifier guidance for DDIM, guided-diffusion's condition_score (Song
 * et al. 2021's score view, seed "Classifier Guidance"): ε from the
 * (clipped) x̂0, ε ← ε − sqrt(1 − ᾱ)·g, and x̂0 again from that ε,
 * unclipped; step_ddim then re-derives the same ε from it. */
static void
condition_score (Buffers *b, double abar)
{
  double c1 = sqrt (1.0 / abar), c2 = sqrt (1.0 / abar - 1.0);
  double s = sqrt (1.0 - abar);

  for (gsize j = 0; j < b->n; j++)
    {
      double eps = (c1 * b->x[j] - b->x0[j]) / c2 - s * b->grad[j];

      b->x0[j] = (float) (c1 * b->x[j] - c2 * eps);
    }
}

/* The fresh forward noise of the kept pixels on arriving at level L ≥ 0
 * after v network calls there (RePaint draws q(x_t | x_0) anew at every
 * step; one ε for the whole run would condition the model on one noisy
 * copy of the kept pixels, and tests/test-inpaint.c measures that bias).
 * The start level's first x_t is the img2img start itself (stream 1).
 * A level left by a jump before any call there gets the same draw again
 * on return; the jump overwrote the kept pixels anyway. */
static void
kept_noise (Buffers *b, guint64 seed, gint level, gint v)
{
  diffuse_rng_normal (seed, STREAM_KEPT0 + (guint64) level + ((guint64) v << 32), 0,
                      b->known_eps, b->n);
}

/* The defaults of diffuse.h; here rather than in sample.c because the
 * model-free loop (and its tests) needs them without a network. */
void
diffuse_sample_params_init (DiffuseSampleParams *params)
{
  g_return_if_fail (params != NULL);

  memset (params, 0, sizeof *params);
  /* sampler, steps, respacing, eta, variance, guidance, count, strength */
  diffuse__settings_init (params);
  params->class_label = -1;
  params->height = 0;
  params->width = 0;
  params->clip_denoised = TRUE;
  params->mask = NULL;
  params->resample_count = 1;
  params->resample_jump = 10;
  params->n_threads = 0;
  params->progress = NULL;
  params->user_data = NULL;
  params->classifier = NULL;
  params->classifier_scale = 1.0;
  params->cond = NULL;
  params->cond_data = NULL;
}

static gboolean
check_params (const DiffuseSchedule *schedule, gboolean has_variance,
              const DiffuseSampleParams *params, DiffuseVarianceKind *variance,
              GError **error)
{
  /* the settings this loop reads, by the table (settings-table.c);
   * strength only matters with an init image */
  if (!diffuse__settings_check_flags (params, DIFFUSE_SETTING_LOOP,
                                      params->init_image != NULL
                                      ? 0 : DIFFUSE_SETTING_IMG2IMG, error))
    return FALSE;
  if (diffuse_schedule_get_n_steps (schedule) < 1)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "the schedule has no steps");
      return FALSE;
    }

  *variance = params->variance;
  if (*variance == DIFFUSE_VARIANCE_AUTO)
    *variance = has_variance ? DIFFUSE_VARIANCE_LEARNED : DIFFUSE_VARIANCE_FIXED_LARGE;
  if (params->sampler == DIFFUSE_SAMPLER_DDPM && *variance == DIFFUSE_VARIANCE_LEARNED
      && !has_variance)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "learned variance needs a denoiser that predicts it "
                   "(a learn_sigma model)");
      return FALSE;
    }
  return TRUE;
}

gboolean
diffuse_sample_with (const DiffuseSchedule *schedule, DiffuseDenoiseFunc denoise,
                     gpointer denoise_data, gboolean has_variance,
                     const DiffuseSampleParams *params, gint count, gint channels,
                     gint height, gint width, float *out, DiffuseSampleInfo *info,
                     GError **error)
{
  g_return_val_if_fail (schedule != NULL, FALSE);
  g_return_val_if_fail (denoise != NULL, FALSE);
  g_return_val_if_fail (params != NULL, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  DiffuseVarianceKind variance;
  if (!check_params (schedule, has_variance, params, &variance, error))
    return FALSE;
  if (count < 1 || channels < 1 || height < 1 || width < 1
      || (guint64) count * channels * height * width > G_MAXSIZE / sizeof (float) / 4)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "bad sample shape %d x %d x %d x %d", count, channels, height, width);
      return FALSE;
    }

  const gint *timesteps = diffuse_schedule_get_timesteps (schedule);
  const double *betas = diffuse_schedule_get_betas (schedule);
  const double *abars = diffuse_schedule_get_alphas_cumprod (schedule);
  gint n_sched = diffuse_schedule_get_n_steps (schedule);
  gsize n = (gsize) count * channels * height * width;
  gboolean is_ddpm = params->sampler == DIFFUSE_SAMPLER_DDPM;
  gboolean want_var = is_ddpm && variance == DIFFUSE_VARIANCE_LEARNED;
  gboolean stochastic = is_ddpm || params->eta > 0.0;
  gint start = n_sched - 1;
  gboolean inpaint = params->mask != NULL;
  gsize hw = (gsize) height * width;
  Buffers b;

  if (!diffuse__inpaint_check (params, n_sched, height, width, error))
    return FALSE;
  if (params->init_image != NULL)
    start = diffuse_schedule_index_for_strength (schedule, params->strength);

  /* the levels to visit (inpaint.c): start, start − 1, …, −1, with
   * RePaint's jumps back up when resampling */
  gint n_levels;
  g_autofree gint *levels
    = diffuse__inpaint_levels (start, params->resample_jump,
                               inpaint ? params->resample_count : 1, &n_levels);
  gint n_steps = 0, n_jumps = 0;
  for (gint k = 1; k < n_levels; k++)
    {
      n_steps += levels[k] < levels[k - 1];
      n_jumps += levels[k] > levels[k - 1];
    }
  g_autofree gint *visits = g_new0 (gint, start + 1);

  /* every buffer, before the first step */
  if (!buffers_alloc (&b, n, want_var, (stochastic && start > 0) || n_jumps > 0,
                      inpaint, error))
    return FALSE;

  if (params->cond != NULL)
    {
      b.grad = g_try_malloc (n * sizeof (float));
      if (b.grad == NULL)
        {
          buffers_clear (&b);
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                       "cannot allocate the classifier gradient's buffer");
          return FALSE;
        }
    }
  /* β̃ at respaced index 1 (guided-diffusion's Σ at index 0 for fixed-large
   * and its clipped log β̃₀); β₀ when the schedule has one step */
  double post_var1 = n_sched > 1 ? betas[1] * (1.0 - abars[0]) / (1.0 - abars[1])
                                 : betas[0];

  if (params->init_image != NULL)
    {
      /* q(x_t | x_0) = N(sqrt(ᾱ)x0, (1−ᾱ)I) (seed, forward process closed
       * form), at the kept step where img2img starts.  eps holds ε here. */
      double a = sqrt (abars[start]), s = sqrt (1.0 - abars[start]);

      if (params->init_noise != NULL)
        memcpy (b.eps, params->init_noise, n * sizeof (float));
      else
        diffuse_rng_normal (params->seed, STREAM_IMG2IMG, 0, b.eps, n);
      for (gsize j = 0; j < n; j++)
        b.x[j] = (float) (a * params->init_image[j] + s * b.eps[j]);
    }
  else if (params->init_noise != NULL)
    memcpy (b.x, params->init_noise, n * sizeof (float));
  else
    diffuse_rng_normal (params->seed, STREAM_X_T, 0, b.x, n);

  gint step = 0, jump_no = 0;
  for (gint k = 1; k < n_levels; k++)
    {
      gint from = levels[k - 1], to = levels[k];
      double abar_to = to >= 0 ? abars[to] : 1.0;

      if (to > from)
        {
          /* RePaint's jump back up, then the kept pixels at that level */
          diffuse_rng_normal (params->seed, STREAM_JUMP0 + (guint64) jump_no++, 0,
                              b.noise, n);
          diffuse__forward_jump (b.x, b.noise, n, abars[from], abar_to);
          kept_noise (&b, params->seed, to, visits[to]);
          diffuse__inpaint_keep (b.x, params->init_image, b.known_eps, params->mask,
                                 n, hw, abar_to);
          continue;
        }

      gint i = from;
      double abar = abars[i];
      gboolean add_noise = stochastic && i > 0;

      if (!denoise (denoise_data, count, b.x, i, (double) timesteps[i], b.eps,
                    want_var ? b.var : NULL, error))
        {
          buffers_clear (&b);
          return FALSE;
        }
      predict_x0 (&b, abar, params->clip_denoised);
      if (b.grad != NULL)
        {
          /* the classifier sees x_t and the kept step's original t */
          if (!params->cond (params->cond_data, count, b.x, i,
                             (double) timesteps[i], b.grad, error))
            {
              buffers_clear (&b);
              return FALSE;
            }
          if (!is_ddpm)
            condition_score (&b, abar);
        }
      if (add_noise)
        diffuse_rng_normal (params->seed, STREAM_STEP0 + (guint64) i
                            + ((guint64) visits[i] << 32), 0, b.noise, n);
      visits[i]++;
      if (is_ddpm)
        step_ddpm (&b, betas[i], abar, abar_to, variance, add_noise, post_var1);
      else
        step_ddim (&b, abar, abar_to, params->eta, add_noise);
      step++;

      if (inpaint)
        {
          if (to >= 0)
            kept_noise (&b, params->seed, to, visits[to]);
          diffuse__inpaint_keep (b.x, params->init_image, b.known_eps, params->mask,
                                 n, hw, abar_to);
          /* the preview shows the kept pixels as they are */
          diffuse__inpaint_keep (b.x0, params->init_image, b.known_eps, params->mask,
                                 n, hw, 1.0);
        }

      if (params->progress != NULL
          && !params->progress (step, n_steps, b.x0, count, channels,
                                height, width, params->user_data))
        {
          buffers_clear (&b);
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_CANCELLED,
                       "sampling cancelled at step %d of %d", step, n_steps);
          return FALSE;
        }
    }

  memcpy (out, b.x, n * sizeof (float));
  if (info != NULL)
    {
      info->n_steps_run = n_steps;
      info->start_index = start;
      info->start_timestep = timesteps[start];
    }
  buffers_clear (&b);
  return TRUE;
}
