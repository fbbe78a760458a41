/* Inpainting: the masked reverse process (RePaint, Lugmayr et al. 2022)
 * and the context window around a mask.
 *
 * Notation as sampler.c: respaced index i, ᾱ_i from the respaced
 * schedule.  A "level" L is the noise level x is at: L ≥ 0 means x ~ x_{t_L}
 * (ᾱ_L), L = −1 the clean image (ᾱ = 1).  A reverse step at index L takes
 * level L to L − 1; a jump takes level L up to L + j.  The formulas (the
 * jump q(x_t'|x_t), the masked join with q(x_t|x_0)) are
 * gaussian-diffusion.c's.
 */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"

gboolean
diffuse__inpaint_check (const DiffuseSampleParams *params, gint n_steps,
                        gint height, gint width, GError **error)
{
  /* without a mask the resampling settings are not used (a preset may
   * set them for inpainting), as strength without an init image */
  if (params->mask == NULL)
    return TRUE;
  if (params->init_image == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "a mask needs the original image (init_image) whose "
                   "unmasked pixels are kept");
      return FALSE;
    }
  for (gsize j = 0; j < (gsize) height * width; j++)
    if (!(params->mask[j] >= 0.0f && params->mask[j] <= 1.0f))
      {
        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                     "mask value %g at pixel (%d, %d) is outside [0, 1]",
                     (double) params->mask[j], (gint) (j % width),
                     (gint) (j / width));
        return FALSE;
      }
  /* resample_count's range is the settings table's (resample-count) */
  if (params->resample_count > 1 &&
      (params->resample_jump < 1 ||
       params->resample_jump > MAX (n_steps - 1, 1)))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "resample-jump %d is out of range (1..%d: the schedule has "
                   "%d steps)",
                   params->resample_jump, MAX (n_steps - 1, 1), n_steps);
      return FALSE;
    }
  return TRUE;
}

/* RePaint's time-travel schedule (their get_schedule_jump, written anew
 * for respaced levels): from level `start` down to −1 one reverse step at
 * a time; on arriving at a level L ≥ 0 with L % jump == 0 and
 * L + jump ≤ start, go back up to L + jump, count − 1 times per such L.
 * Returns the levels visited, levels[0] = start, levels[n−1] = −1. */
gint *
diffuse__inpaint_levels (gint start, gint jump, gint count, gint *n_levels)
{
  gint n_jump_levels = 0;

  if (count > 1)
    for (gint l = 0; l + jump <= start; l += jump)
      n_jump_levels++;

  /* each jump adds 1 up entry and `jump` down entries */
  gsize max =
      (gsize) start + 2 + (gsize) n_jump_levels * (count - 1) * (jump + 1);
  gint *levels = g_new (gint, max);
  gint *left = g_new0 (gint, start + 1);
  gsize n = 0;
  gint l = start;

  if (count > 1)
    for (gint k = 0; k + jump <= start; k += jump)
      left[k] = count - 1;
  levels[n++] = l;
  while (l >= 0)
    {
      l--;
      levels[n++] = l;
      if (l >= 0 && left[l] > 0)
        {
          left[l]--;
          l += jump;
          levels[n++] = l;
        }
    }
  g_assert (n <= max);
  g_free (left);
  *n_levels = (gint) n;
  return levels;
}

/* Grow [*lo, *lo + *len) about its centre to at least `want`, within
 * [0, size). */
static void
grow_span (gint *lo, gint *len, gint want, gint size)
{
  want = MIN (want, size);
  if (*len >= want)
    return;

  gint extra = want - *len;
  gint nlo = *lo - extra / 2;

  nlo = CLAMP (nlo, 0, size - want);
  *lo = nlo;
  *len = want;
}

gboolean
diffuse_inpaint_window (const DiffuseModelConfig *config, const float *mask,
                        gint height, gint width, gint margin, gint *x, gint *y,
                        gint *w, gint *h)
{
  g_return_val_if_fail (config != NULL && mask != NULL, FALSE);
  g_return_val_if_fail (height > 0 && width > 0 && margin >= 0, FALSE);

  gint x1 = width, y1 = height, x2 = -1, y2 = -1;

  for (gint r = 0; r < height; r++)
    for (gint c = 0; c < width; c++)
      if (mask[(gsize) r * width + c] > 0.0f)
        {
          x1 = MIN (x1, c);
          x2 = MAX (x2, c);
          y1 = MIN (y1, r);
          y2 = MAX (y2, r);
        }
  if (x2 < 0)
    return FALSE;

  gint wx = MAX (x1 - margin, 0), wy = MAX (y1 - margin, 0);
  gint ww = MIN (x2 + margin, width - 1) - wx + 1;
  gint wh = MIN (y2 + margin, height - 1) - wy + 1;

  gint m = 1 << MAX (0, config->n_levels - 1);

  grow_span (&wx, &ww, config->image_size, width);
  grow_span (&wy, &wh, config->image_size, height);
  /* a multiple of the model's size step samples natively, unscaled */
  if (ww % m != 0 && (ww / m + 1) * m <= width)
    grow_span (&wx, &ww, (ww / m + 1) * m, width);
  if (wh % m != 0 && (wh / m + 1) * m <= height)
    grow_span (&wy, &wh, (wh / m + 1) * m, height);
  *x = wx;
  *y = wy;
  *w = ww;
  *h = wh;
  return TRUE;
}

gboolean
diffuse_inpaint_plan (const DiffuseModelConfig *config, const float *mask,
                      gint height, gint width, gint margin,
                      DiffuseInpaintPlan *plan, GError **error)
{
  g_return_val_if_fail (config != NULL && mask != NULL && plan != NULL, FALSE);
  g_return_val_if_fail (height > 0 && width > 0, FALSE);

  if (margin < 0)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "the inpainting margin %d is negative", margin);
      return FALSE;
    }
  for (gsize j = 0; j < (gsize) height * width; j++)
    if (!(mask[j] >= 0.0f && mask[j] <= 1.0f))
      {
        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                     "mask value %g at pixel (%d, %d) is outside [0, 1]",
                     (double) mask[j], (gint) (j % width), (gint) (j / width));
        return FALSE;
      }
  memset (plan, 0, sizeof *plan);
  if (!diffuse_inpaint_window (config, mask, height, width, margin, &plan->x,
                               &plan->y, &plan->width, &plan->height))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "the mask is empty (black everywhere): there is nothing "
                   "to inpaint (white marks the pixels to regenerate)");
      return FALSE;
    }
  plan->scaled = !diffuse_fit_size (config, plan->height, plan->width, TRUE,
                                    16.0, &plan->run_height, &plan->run_width);
  return TRUE;
}

void
diffuse_inpaint_to_run (const DiffuseInpaintPlan *plan, const float *window,
                        gint channels, float *run)
{
  g_return_if_fail (plan != NULL && window != NULL && run != NULL);

  if (!plan->scaled)
    memcpy (run, window,
            sizeof (float) * channels * plan->height * plan->width);
  else
    diffuse_resample (window, channels, plan->height, plan->width, run,
                      plan->run_height, plan->run_width,
                      DIFFUSE_RESAMPLE_BILINEAR);
}

void
diffuse_inpaint_from_run (const DiffuseInpaintPlan *plan, const float *run,
                          const float *window_original,
                          const float *window_mask, gint channels,
                          float *window_out)
{
  gsize hw = (gsize) plan->height * plan->width;

  g_return_if_fail (plan != NULL && run != NULL && window_out != NULL);

  if (!plan->scaled)
    {
      memcpy (window_out, run, sizeof (float) * channels * hw);
      return;
    }
  diffuse_resample (run, channels, plan->run_height, plan->run_width,
                    window_out, plan->height, plan->width,
                    DIFFUSE_RESAMPLE_BILINEAR);
  for (gsize j = 0; j < (gsize) channels * hw; j++)
    {
      float m = window_mask[j % hw];

      if (m == 0.0f)
        window_out[j] = window_original[j];
      else if (m != 1.0f)
        window_out[j] = m * window_out[j] + (1.0f - m) * window_original[j];
    }
}
