/* Fused GroupNorm (+ FiLM scale/shift) (+ SiLU); see layers.h. */
#include <math.h>

#include "layers.h"
#include "kernel-inline.h"

/* Sum of n floats with 16 partial sums (vectorisable without
 * -ffast-math), returned in double. */
static double
sum_f (const float *x, gsize n)
{
  float acc[16] = { 0 };
  gsize i = 0;
  double s = 0.0;

  for (; i + 16 <= n; i += 16)
    for (gint j = 0; j < 16; j++)
      acc[j] += x[i + j];
  for (gint j = 0; j < 16; j++)
    s += acc[j];
  for (; i < n; i++)
    s += x[i];
  return s;
}

/* Σ (x − m)² over n floats, likewise. */
static double
sum_sq_dev (const float *x, gsize n, float m)
{
  float acc[16] = { 0 };
  gsize i = 0;
  double s = 0.0;

  for (; i + 16 <= n; i += 16)
    for (gint j = 0; j < 16; j++)
      {
        float d = x[i + j] - m;
        acc[j] += d * d;
      }
  for (gint j = 0; j < 16; j++)
    s += acc[j];
  for (; i < n; i++)
    {
      double d = (double) x[i] - m;
      s += d * d;
    }
  return s;
}

typedef struct
{
  const float *x;
  gint channels, batch, groups;
  gsize hw;
  float eps;
  const float *gamma, *beta, *scale, *shift;
  gsize ss_stride;
  gboolean silu;
  float *out;
} GroupNormJob;

/* units u = b·groups + g */
static void HOT
group_norm_range (gpointer data, gsize begin, gsize end,
                  gint part G_GNUC_UNUSED)
{
  const GroupNormJob *j = data;
  gint cg = j->channels / j->groups;
  gsize hw = j->hw, bhw = (gsize) j->batch * hw;
  double count = (double) cg * hw;

  for (gsize u = begin; u < end; u++)
    {
      gint b = (gint) (u / j->groups), g = (gint) (u % j->groups);
      gint c0 = g * cg;
      double s = 0.0, ss = 0.0;
      float mean, rstd;

      /* two passes (mean, then squared deviations): the group is a few
       * hundred KiB at most and stays in cache */
      for (gint c = c0; c < c0 + cg; c++)
        s += sum_f (j->x + c * bhw + b * hw, hw);
      mean = (float) (s / count);
      for (gint c = c0; c < c0 + cg; c++)
        ss += sum_sq_dev (j->x + c * bhw + b * hw, hw, mean);
      rstd = (float) (1.0 / sqrt (ss / count + j->eps));

      for (gint c = c0; c < c0 + cg; c++)
        {
          const float *xr = j->x + c * bhw + b * hw;
          float *yr = j->out + c * bhw + b * hw;
          float a = rstd * j->gamma[c];
          float d = j->beta[c];

          if (j->scale)
            {
              float s1 = 1.0f + j->scale[b * j->ss_stride + c];

              a *= s1;
              d = d * s1 + j->shift[b * j->ss_stride + c];
            }
          /* (x − mean)·a + d: subtracting the mean first keeps groups of
           * small variance (large a) accurate */
          if (j->silu)
            for (gsize i = 0; i < hw; i++)
              yr[i] = silu1 ((xr[i] - mean) * a + d);
          else
            for (gsize i = 0; i < hw; i++)
              yr[i] = (xr[i] - mean) * a + d;
        }
    }
}

void
diffuse__group_norm (DiffusePool *pool, const float *x, gint channels,
                     gint batch, gsize hw, gint groups, float eps,
                     const float *gamma, const float *beta, const float *scale,
                     const float *shift, gsize ss_stride, gboolean silu,
                     float *out)
{
  GroupNormJob j = { x,    channels, batch, groups,    hw,   eps, gamma,
                     beta, scale,    shift, ss_stride, silu, out };

  diffuse__pool_run (pool, (gsize) batch * groups, group_norm_range, &j);
}
