/* ×2 nearest-neighbour upsampling and 2×2 average pooling (the ADM UNet's
 * Upsample / Downsample without their convolutions); see layers.h. */
#include "layers.h"
#include "kernel-inline.h"

typedef struct
{
  const float *x;
  gint height, width;
  float *out;
} PlaneJob;

/* units: [C·B] planes */
static void
upsample_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const PlaneJob *j = data;
  gint height = j->height, width = j->width;

  for (gsize p = begin; p < end; p++)
    {
      const float *src = j->x + p * height * width;
      float *dst = j->out + p * 4 * height * width;

      for (gint y = 0; y < height; y++)
        {
          float *d0 = dst + (gsize) (2 * y) * 2 * width;
          const float *s = src + (gsize) y * width;

          for (gint i = 0; i < width; i++)
            d0[2 * i] = d0[2 * i + 1] = s[i];
          copy_f (d0 + 2 * width, d0, 2 * width);
        }
    }
}

void
diffuse__upsample2x (DiffusePool *pool, const float *x, gint channels,
                     gint batch, gint height, gint width, float *out)
{
  PlaneJob j = { x, height, width, out };

  diffuse__pool_run (pool, (gsize) channels * batch, upsample_range, &j);
}

static void
avgpool_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const PlaneJob *j = data;
  gint width = j->width, ho = j->height / 2, wo = j->width / 2;

  for (gsize p = begin; p < end; p++)
    {
      const float *src = j->x + p * j->height * width;
      float *dst = j->out + p * ho * wo;

      for (gint y = 0; y < ho; y++)
        {
          const float *s0 = src + (gsize) (2 * y) * width;
          const float *s1 = s0 + width;

          for (gint i = 0; i < wo; i++)
            dst[(gsize) y * wo + i] = 0.25f * ((s0[2 * i] + s0[2 * i + 1]) +
                                               (s1[2 * i] + s1[2 * i + 1]));
        }
    }
}

void
diffuse__avgpool2x (DiffusePool *pool, const float *x, gint channels,
                    gint batch, gint height, gint width, float *out)
{
  PlaneJob j = { x, height, width, out };

  diffuse__pool_run (pool, (gsize) channels * batch, avgpool_range, &j);
}
