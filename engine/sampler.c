/* The reverse-process loop: DDIM (with η) and DDPM ancestral sampling over
 * any denoiser (DiffuseDenoiseFunc), plus img2img.  The sampler never sees a
 * network; diffuse_sample (sample.c) wraps the UNet and guidance into a
 * denoiser and calls diffuse_sample_with.
 *
 * Notation: respaced index i = n−1 … 0, ᾱ = ᾱ_i, ᾱ' = ᾱ_{i−1} (1 at i = 0),
 * β = β_i, both from the respaced schedule (never t − T/N).  The formulas
 * of each step (x0 from ε, the DDPM and DDIM updates, q(x_t | x_0) for
 * img2img) are gaussian-diffusion.c's.
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
#include "gaussian-diffusion.h"

#define STREAM_X_T 0
#define STREAM_IMG2IMG 1
#define STREAM_STEP0 2
#define STREAM_JUMP0 (G_GUINT64_CONSTANT (1) << 48)
#define STREAM_KEPT0 DIFFUSE__STREAM_KEPT0

/* init_noise is N(0, I) (beyond ±1000 only by mistake: 3e38 overflows
 * the first step), init_image in [-1, 1]: both must be finite and within
 * this bound. */
#define MAX_INPUT_ABS 1000.0f

/* Index of the first value that is not finite or beyond ±bound, or -1. */
static gssize
first_bad_value (const float *v, gsize n, float bound)
{
  for (gsize i = 0; i < n; i++)
    if (!(fabsf (v[i]) <= bound)) /* NaN fails too */
      return (gssize) i;
  return -1;
}

static gboolean
check_input (const float *v, gsize n, const char *what, GError **error)
{
  gssize bad = v != NULL ? first_bad_value (v, n, MAX_INPUT_ABS) : -1;

  if (bad < 0)
    return TRUE;
  g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
               "%s value %g at index %" G_GSSIZE_FORMAT " is %s (need finite "
               "values within ±%g)",
               what, v[bad], bad,
               isfinite (v[bad]) ? "too large" : "not finite",
               (double) MAX_INPUT_ABS);
  return FALSE;
}

gboolean
diffuse__check_sample_inputs (const DiffuseSampleParams *params, gsize n,
                              GError **error)
{
  return check_input (params->init_noise, n, "the initial noise", error) &&
         check_input (params->init_image, n, "the input image", error);
}

typedef struct
{
  gsize n;          /* count·C·H·W */
  float *x;         /* x_t, updated in place */
  float *eps;       /* ε̂ from the denoiser */
  float *var;       /* raw variance output v ∈ [−1, 1] (learned), or NULL */
  float *x0;        /* predicted x0 */
  float *noise;     /* the step's fresh noise, or NULL when never needed */
  float *known_eps; /* inpainting: the forward noise ε of the kept pixels */
  float *grad;      /* classifier guidance: s·∇x log p(y | x_t), or NULL */
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
  if (b->x == NULL || b->eps == NULL || b->x0 == NULL ||
      (want_var && b->var == NULL) || (want_noise && b->noise == NULL) ||
      (want_known && b->known_eps == NULL))
    {
      buffers_clear (b);
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "cannot allocate the sampler's buffers (%" G_GSIZE_FORMAT
                   " floats each)",
                   n);
      return FALSE;
    }
  return TRUE;
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
  diffuse_rng_normal (seed,
                      STREAM_KEPT0 + (guint64) level + ((guint64) v << 32), 0,
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
   * strength only matters with an init image, resampling with a mask */
  if (!diffuse__settings_check_flags (
          params, DIFFUSE_SETTING_LOOP,
          (params->init_image != NULL ? 0 : DIFFUSE_SETTING_IMG2IMG) |
              (params->mask != NULL ? 0 : DIFFUSE_SETTING_INPAINT),
          error))
    return FALSE;
  if (diffuse_schedule_get_n_steps (schedule) < 1)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "the schedule has no steps");
      return FALSE;
    }

  *variance = params->variance;
  if (*variance == DIFFUSE_VARIANCE_AUTO)
    *variance =
        has_variance ? DIFFUSE_VARIANCE_LEARNED : DIFFUSE_VARIANCE_FIXED_LARGE;
  if (params->sampler == DIFFUSE_SAMPLER_DDPM &&
      *variance == DIFFUSE_VARIANCE_LEARNED && !has_variance)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "learned variance needs a denoiser that predicts it "
                   "(a learn_sigma model)");
      return FALSE;
    }
  return TRUE;
}

gboolean
diffuse_sample_with (const DiffuseSchedule *schedule,
                     DiffuseDenoiseFunc denoise, gpointer denoise_data,
                     gboolean has_variance, const DiffuseSampleParams *params,
                     gint count, gint channels, gint height, gint width,
                     float *out, DiffuseSampleInfo *info, GError **error)
{
  g_return_val_if_fail (schedule != NULL, FALSE);
  g_return_val_if_fail (denoise != NULL, FALSE);
  g_return_val_if_fail (params != NULL, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  DiffuseVarianceKind variance;
  if (!check_params (schedule, has_variance, params, &variance, error))
    return FALSE;
  if (count < 1 || channels < 1 || height < 1 || width < 1 ||
      (guint64) count * channels * height * width >
          G_MAXSIZE / sizeof (float) / 4)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "bad sample shape %d x %d x %d x %d", count, channels,
                   height, width);
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

  if (!diffuse__inpaint_check (params, n_sched, height, width, error) ||
      !diffuse__check_sample_inputs (params, n, error))
    return FALSE;
  if (params->init_image != NULL)
    start = diffuse_schedule_index_for_strength (schedule, params->strength);

  /* the levels to visit (inpaint.c): start, start − 1, …, −1, with
   * RePaint's jumps back up when resampling */
  gint n_levels;
  g_autofree gint *levels =
      diffuse__inpaint_levels (start, params->resample_jump,
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
  double post_var1 =
      n_sched > 1 ? betas[1] * (1.0 - abars[0]) / (1.0 - abars[1]) : betas[0];

  if (params->init_image != NULL)
    {
      /* x_t ~ q(x_t | x_0) at the kept step where img2img starts; eps
       * holds the forward noise ε here */
      if (params->init_noise != NULL)
        memcpy (b.eps, params->init_noise, n * sizeof (float));
      else
        diffuse_rng_normal (params->seed, STREAM_IMG2IMG, 0, b.eps, n);
      diffuse__q_sample (params->init_image, b.eps, abars[start], n, b.x);
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
          diffuse_rng_normal (params->seed, STREAM_JUMP0 + (guint64) jump_no++,
                              0, b.noise, n);
          diffuse__q_sample_from (b.x, b.noise, n, abars[from], abar_to);
          kept_noise (&b, params->seed, to, visits[to]);
          diffuse__repaint_join (b.x, params->init_image, b.known_eps,
                                 params->mask, n, hw, abar_to);
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
      diffuse__predict_x0_from_eps (b.x, b.eps, abar, params->clip_denoised, n,
                                    b.x0);
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
            diffuse__condition_score (b.x, b.grad, n, abar, b.x0);
        }
      if (add_noise)
        diffuse_rng_normal (params->seed,
                            STREAM_STEP0 + (guint64) i +
                                ((guint64) visits[i] << 32),
                            0, b.noise, n);
      visits[i]++;
      if (is_ddpm)
        diffuse__ddpm_step (b.x, b.x0, b.var, b.grad, b.noise, n, betas[i],
                            abar, abar_to, post_var1, variance, add_noise);
      else
        diffuse__ddim_step (b.x, b.x0, b.noise, n, abar, abar_to, params->eta,
                            add_noise);
      step++;

      if (inpaint)
        {
          if (to >= 0)
            kept_noise (&b, params->seed, to, visits[to]);
          diffuse__repaint_join (b.x, params->init_image, b.known_eps,
                                 params->mask, n, hw, abar_to);
          /* the preview shows the kept pixels as they are */
          diffuse__repaint_join (b.x0, params->init_image, b.known_eps,
                                 params->mask, n, hw, 1.0);
        }

      /* a NaN or Inf (broken weights, an overflow) never becomes a
       * silently black image: the run stops at the step that made it */
      if (first_bad_value (b.x, n, G_MAXFLOAT) >= 0)
        {
          buffers_clear (&b);
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL,
                       "the run produced non-finite values (NaN or Inf) at "
                       "step %d of %d; nothing was written",
                       step, n_steps);
          return FALSE;
        }
      if (params->progress != NULL &&
          !params->progress (step, n_steps, b.x0, count, channels, height,
                             width, params->user_data))
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
