/* Resampling float planes, and choosing the size a model runs at for a
 * target area.  The plug-in uses these when a layer's size differs from
 * the model's: sample at a size the UNet accepts, then scale the result
 * (and, for img2img, the input) between the two sizes.
 *
 * Bilinear is the separable triangle filter of PIL's Image.resize
 * (BILINEAR): output pixel i samples the source at the centre
 * c = (i + 0.5) · s with s = src / dst; the triangle's radius is
 * max (1, s) source pixels, so shrinking averages every source pixel
 * instead of skipping some (no aliasing), and enlarging interpolates
 * linearly between neighbours.  Weights are renormalised at the borders. */
#include <math.h>

#include "diffuse.h"

/* Per output index: first source index and its n weights. */
typedef struct
{
  float *weights; /* [dst_len * max_n] */
  gint *firsts;
  gint *counts;
  gint max_n;
} Filter;

static void
filter_init (Filter *f, gint src_len, gint dst_len)
{
  double scale = (double) src_len / dst_len;
  double radius = MAX (1.0, scale);
  gint i, j;

  f->max_n = (gint) ceil (radius) * 2 + 3;
  f->weights = g_new0 (float, (gsize) dst_len * f->max_n);
  f->firsts = g_new (gint, dst_len);
  f->counts = g_new (gint, dst_len);

  for (i = 0; i < dst_len; i++)
    {
      double centre = (i + 0.5) * scale;
      gint lo = MAX (0, (gint) floor (centre - radius));
      gint hi = MIN (src_len - 1, (gint) ceil (centre + radius));
      float *w = f->weights + (gsize) i * f->max_n;
      double sum = 0.0;
      gint n = 0;

      for (j = lo; j <= hi && n < f->max_n; j++)
        {
          double x = fabs ((j + 0.5 - centre) / radius);
          double v = x < 1.0 ? 1.0 - x : 0.0;

          if (n == 0 && v == 0.0)
            {
              lo = j + 1;
              continue;
            }
          w[n++] = (float) v;
          sum += v;
        }
      /* drop trailing zero weights */
      while (n > 1 && w[n - 1] == 0.0f)
        n--;
      if (sum > 0.0)
        for (j = 0; j < n; j++)
          w[j] = (float) (w[j] / sum);
      f->firsts[i] = lo;
      f->counts[i] = n;
    }
}

static void
filter_clear (Filter *f)
{
  g_free (f->weights);
  g_free (f->firsts);
  g_free (f->counts);
}

static gint
nearest_index (gint i, gint src_len, gint dst_len)
{
  gint j = (gint) floor ((i + 0.5) * (double) src_len / dst_len);

  return CLAMP (j, 0, src_len - 1);
}

void
diffuse_resample (const float *src, gint channels, gint src_h, gint src_w,
                  float *dst, gint dst_h, gint dst_w, DiffuseResampleKind kind)
{
  gint c, y, x, k;

  g_return_if_fail (src != NULL && dst != NULL);
  g_return_if_fail (channels > 0 && src_h > 0 && src_w > 0 && dst_h > 0 &&
                    dst_w > 0);
  g_return_if_fail ((guint) kind < DIFFUSE_RESAMPLE_COUNT);

  if (kind == DIFFUSE_RESAMPLE_NEAREST)
    {
      for (c = 0; c < channels; c++)
        for (y = 0; y < dst_h; y++)
          {
            const float *row =
                src +
                ((gsize) c * src_h + nearest_index (y, src_h, dst_h)) * src_w;
            float *out = dst + ((gsize) c * dst_h + y) * dst_w;

            for (x = 0; x < dst_w; x++)
              out[x] = row[nearest_index (x, src_w, dst_w)];
          }
      return;
    }

  {
    Filter fx, fy;
    float *tmp =
        g_new (float, (gsize) channels *src_h *dst_w); /* [C, src_h, dst_w] */

    filter_init (&fx, src_w, dst_w);
    filter_init (&fy, src_h, dst_h);

    for (c = 0; c < channels; c++)
      for (y = 0; y < src_h; y++)
        {
          const float *row = src + ((gsize) c * src_h + y) * src_w;
          float *out = tmp + ((gsize) c * src_h + y) * dst_w;

          for (x = 0; x < dst_w; x++)
            {
              const float *w = fx.weights + (gsize) x * fx.max_n;
              const float *s = row + fx.firsts[x];
              double acc = 0.0;

              for (k = 0; k < fx.counts[x]; k++)
                acc += (double) w[k] * s[k];
              out[x] = (float) acc;
            }
        }

    for (c = 0; c < channels; c++)
      for (y = 0; y < dst_h; y++)
        {
          const float *w = fy.weights + (gsize) y * fy.max_n;
          const float *plane = tmp + (gsize) c * src_h * dst_w;
          float *out = dst + ((gsize) c * dst_h + y) * dst_w;

          for (x = 0; x < dst_w; x++)
            {
              double acc = 0.0;

              for (k = 0; k < fy.counts[y]; k++)
                acc += (double) w[k] *
                       plane[(gsize) (fy.firsts[y] + k) * dst_w + x];
              out[x] = (float) acc;
            }
        }

    filter_clear (&fx);
    filter_clear (&fy);
    g_free (tmp);
  }
}

/* Nearest positive multiple of m to v. */
static gint
round_to_multiple (double v, gint m)
{
  gint n = (gint) floor (v / m + 0.5);

  return MAX (1, n) * m;
}

gboolean
diffuse_fit_size (const DiffuseModelConfig *config, gint target_h,
                  gint target_w, gboolean allow_native, double max_area_factor,
                  gint *run_h, gint *run_w)
{
  gint m, size, cap, shorter;
  double scale;

  g_return_val_if_fail (config != NULL && run_h != NULL && run_w != NULL,
                        FALSE);
  g_return_val_if_fail (target_h > 0 && target_w > 0, FALSE);

  m = 1 << MAX (0, config->n_levels - 1);
  size = config->image_size;

  /* Smaller than the model: sample at its size and shrink, which keeps
   * what the model draws (a smaller canvas would crop its composition). */
  if (allow_native && target_h >= size && target_w >= size &&
      target_h % m == 0 && target_w % m == 0 &&
      (double) target_h * target_w <= max_area_factor * size * size)
    {
      *run_h = target_h;
      *run_w = target_w;
      return TRUE;
    }

  /* Keep the aspect ratio with the shorter side at the model's size. */
  shorter = MIN (target_h, target_w);
  scale = (double) size / shorter;
  cap = MAX (m, (4 * size / m) * m);
  *run_h = MIN (cap, round_to_multiple (target_h * scale, m));
  *run_w = MIN (cap, round_to_multiple (target_w * scale, m));

  return *run_h == target_h && *run_w == target_w;
}
