/* Inpainting: the masked reverse process (RePaint, Lugmayr et al. 2022)
 * and the context window around a mask.
 *
 * Notation as sampler.c: respaced index i, ᾱ_i from the respaced
 * schedule.  A "level" L is the noise level x is at: L ≥ 0 means x ~ x_{t_L}
 * (ᾱ_L), L = −1 the clean image (ᾱ = 1).  A reverse step at index L takes
 * level L to L − 1; a jump takes level L up to L + j.
 */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"

#define MAX_RESAMPLE_COUNT 100

gboolean
diffuse__inpaint_check (const DiffuseSampleParams *params, gint n_steps,
                        gint height, gint width, GError **error)
{
  if (params->mask == NULL)
    {
      if (params->resample_count > 1)
        {
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "resampling (resample_count = %d) is for inpainting: "
                       "it needs a mask",
                       params->resample_count);
          return FALSE;
        }
      return TRUE;
    }
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
  if (params->resample_count < 1 || params->resample_count > MAX_RESAMPLE_COUNT)
    {
      g_set_error (
          error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
          "resample_count = %d is out of range (1..%d; 1 = no resampling)",
          params->resample_count, MAX_RESAMPLE_COUNT);
      return FALSE;
    }
  if (params->resample_count > 1 &&
      (params->resample_jump < 1 ||
       params->resample_jump > MAX (n_steps - 1, 1)))
    {
      g_set_error (
          error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
          "resample_jump = %d is out of range (1..%d: the schedule has "
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

/* Keep the unmasked part: x ← m·x + (1−m)·(sqrt(ᾱ)x0 + sqrt(1−ᾱ)ε), the
 * forward process in closed form, q(x_t | x_0) = N(sqrt(ᾱ)x0, (1−ᾱ)I)
 * (seed, forward process), with the fixed ε of the run.  At ᾱ = 1 the
 * kept pixels become x0 itself, bit for bit. */
void
diffuse__inpaint_keep (float *x, const float *x0, const float *eps,
                       const float *mask, gsize n, gsize hw, double abar)
{
  double a = sqrt (abar), s = sqrt (1.0 - abar);

  for (gsize j = 0; j < n; j++)
    {
      double m = mask[j % hw];

      if (m == 1.0)
        continue;
      if (m == 0.0)
        x[j] = (float) (a * x0[j] + s * eps[j]);
      else
        x[j] = (float) (m * x[j] + (1.0 - m) * (a * x0[j] + s * eps[j]));
    }
}

/* A jump up: q(x_{t'} | x_t) = N(sqrt(ᾱ'/ᾱ)x_t, (1 − ᾱ'/ᾱ)I) for t' > t
 * (seed, forward process: the product of α over t < s ≤ t' is ᾱ'/ᾱ). */
void
diffuse__forward_jump (float *x, const float *z, gsize n, double abar_from,
                       double abar_to)
{
  double r = abar_to / abar_from, a = sqrt (r), s = sqrt (1.0 - r);

  for (gsize j = 0; j < n; j++)
    x[j] = (float) (a * x[j] + s * z[j]);
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

  grow_span (&wx, &ww, config->image_size, width);
  grow_span (&wy, &wh, config->image_size, height);
  *x = wx;
  *y = wy;
  *w = ww;
  *h = wh;
  return TRUE;
}
