/* Kernels of the ADM UNet forward pass; see layers.h for shapes and the
 * PyTorch equivalent of each.  The heavy lifting (convolutions, attention
 * products) is OpenBLAS sgemm; everything else is written so that gcc
 * vectorises it (no libm calls in inner loops, explicit partial sums for
 * reductions).  tests/test-layers.c checks each kernel against a naive
 * loop. */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "layers.h"

/* exp (x) for x in float range, without libm so that loops calling it
 * vectorise: x = n·ln2 + r with |r| ≤ ln2/2 (Cody–Waite split of ln2),
 * e^r by its degree-6 Taylor polynomial (relative error < 2e-7), then
 * 2^n put into the exponent bits.  Inputs are clamped to [-87, 88], so
 * the result is never 0, inf or denormal. */
static inline float
fast_expf (float x)
{
  const float magic = 12582912.0f; /* 1.5·2^23: adding it rounds to integer */
  float fn, r, p;
  gint32 bits;
  float scale;

  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  fn = x * 1.44269504088896341f + magic;
  fn -= magic;
  r = x - fn * 0.693145751953125f;
  r = r - fn * 1.428606765330187e-06f;
  p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6.0f + r * (1.0f / 24.0f
      + r * (1.0f / 120.0f + r * (1.0f / 720.0f))))));
  bits = ((gint32) fn + 127) << 23;
  memcpy (&scale, &bits, sizeof scale);
  return p * scale;
}

static inline float
silu1 (float x)
{
  return x / (1.0f + fast_expf (-x));
}

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

void
diffuse__timestep_embedding (const float *t, gint batch, gint dim, float *out)
{
  gint half = dim / 2;

  for (gint b = 0; b < batch; b++)
    {
      float *row = out + (gsize) b * dim;

      for (gint i = 0; i < half; i++)
        {
          /* every step in float32 as torch does it, so that arguments
           * near 1000 round the same way */
          float e = (float) -log (10000.0) * (float) i;
          float f = (float) exp ((double) (e / (float) half));
          float arg = t[b] * f;

          row[i] = (float) cos ((double) arg);
          row[half + i] = (float) sin ((double) arg);
        }
      if (dim % 2)
        row[dim - 1] = 0.0f;
    }
}

void
diffuse__linear (const float *x, gint batch, gint n_in, const float *w,
                 const float *bias, gint n_out, float *y)
{
  for (gint b = 0; b < batch; b++)
    for (gint o = 0; o < n_out; o++)
      y[(gsize) b * n_out + o] = bias ? bias[o] : 0.0f;
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, batch, n_out, n_in,
               1.0f, x, n_in, w, n_in, 1.0f, y, n_out);
}

void
diffuse__silu (const float *x, gsize n, float *out)
{
  for (gsize i = 0; i < n; i++)
    out[i] = silu1 (x[i]);
}

/* y = silu? ((x − m)·a + d) over one row; subtracting the mean first
 * keeps small-variance groups accurate where a = rstd·γ is large */
static void
affine_row (const float *x, gsize n, float m, float a, float d, gboolean silu,
            float *y)
{
  if (silu)
    for (gsize i = 0; i < n; i++)
      y[i] = silu1 ((x[i] - m) * a + d);
  else
    for (gsize i = 0; i < n; i++)
      y[i] = (x[i] - m) * a + d;
}

void
diffuse__group_norm (const float *x, gint channels, gint batch, gsize hw,
                     gint groups, float eps, const float *gamma,
                     const float *beta, const float *scale,
                     const float *shift, gsize ss_stride, gboolean silu,
                     float *out)
{
  gint cg = channels / groups;
  gsize bhw = (gsize) batch * hw;
  double count = (double) cg * hw;

  for (gint b = 0; b < batch; b++)
    for (gint g = 0; g < groups; g++)
      {
        gint c0 = g * cg;
        double s = 0.0, ss = 0.0;
        float mean, rstd;

        /* two passes (mean, then squared deviations): the group is a few
         * hundred KiB at most and stays in cache */
        for (gint c = c0; c < c0 + cg; c++)
          s += sum_f (x + c * bhw + b * hw, hw);
        mean = (float) (s / count);
        for (gint c = c0; c < c0 + cg; c++)
          ss += sum_sq_dev (x + c * bhw + b * hw, hw, mean);
        rstd = (float) (1.0 / sqrt (ss / count + eps));

        for (gint c = c0; c < c0 + cg; c++)
          {
            float a = rstd * gamma[c];
            float d = beta[c];

            if (scale)
              {
                float s1 = 1.0f + scale[b * ss_stride + c];

                a *= s1;
                d = d * s1 + shift[b * ss_stride + c];
              }
            affine_row (x + c * bhw + b * hw, hw, mean, a, d, silu,
                        out + c * bhw + b * hw);
          }
      }
}

void
diffuse__fill_bias (float *out, gint c_out, gint batch, gsize hw,
                    const float *bias, const float *bias2, gsize b2_stride)
{
  for (gint c = 0; c < c_out; c++)
    for (gint b = 0; b < batch; b++)
      {
        float v = (bias ? bias[c] : 0.0f)
                  + (bias2 ? bias2[b * b2_stride + c] : 0.0f);
        float *row = out + ((gsize) c * batch + b) * hw;

        for (gsize i = 0; i < hw; i++)
          row[i] = v;
      }
}

void
diffuse__im2col (const float *x, gint channels, gint batch, gint height,
                 gint width, gint k, gint stride, float *col)
{
  gint pad = k / 2;
  gint ho = (height + 2 * pad - k) / stride + 1;
  gint wo = (width + 2 * pad - k) / stride + 1;
  gsize n = (gsize) batch * ho * wo;

  for (gint c = 0; c < channels; c++)
    for (gint ky = 0; ky < k; ky++)
      for (gint kx = 0; kx < k; kx++)
        {
          float *dst = col + ((gsize) (c * k + ky) * k + kx) * n;
          /* output columns ox with 0 <= ox·stride + kx − pad < width */
          gint lo = 0, hi = wo;

          while (lo < wo && lo * stride + kx - pad < 0)
            lo++;
          while (hi > lo && (hi - 1) * stride + kx - pad >= width)
            hi--;

          for (gint b = 0; b < batch; b++)
            {
              const float *src = x + ((gsize) c * batch + b) * height * width;

              for (gint oy = 0; oy < ho; oy++, dst += wo)
                {
                  gint iy = oy * stride + ky - pad;
                  const float *srow;

                  if (iy < 0 || iy >= height)
                    {
                      memset (dst, 0, sizeof (float) * wo);
                      continue;
                    }
                  srow = src + (gsize) iy * width + kx - pad;
                  for (gint ox = 0; ox < lo; ox++)
                    dst[ox] = 0.0f;
                  if (stride == 1)
                    memcpy (dst + lo, srow + lo, sizeof (float) * (hi - lo));
                  else
                    for (gint ox = lo; ox < hi; ox++)
                      dst[ox] = srow[ox * stride];
                  for (gint ox = hi; ox < wo; ox++)
                    dst[ox] = 0.0f;
                }
            }
        }
}

void
diffuse__conv2d (const float *x, gint c_in, gint batch, gint height,
                 gint width, const float *w, const float *bias,
                 const float *bias2, gsize b2_stride, gint c_out, gint k,
                 gint stride, gboolean accumulate, float *col, float *out)
{
  gint pad = k / 2;
  gint ho = (height + 2 * pad - k) / stride + 1;
  gint wo = (width + 2 * pad - k) / stride + 1;
  gsize hw = (gsize) ho * wo;
  gsize n = (gsize) batch * hw;
  gint kk = c_in * k * k;
  const float *bmat = x;

  if (!accumulate)
    diffuse__fill_bias (out, c_out, batch, hw, bias, bias2, b2_stride);
  else if (bias || bias2)
    for (gint c = 0; c < c_out; c++)
      for (gint b = 0; b < batch; b++)
        {
          float v = (bias ? bias[c] : 0.0f)
                    + (bias2 ? bias2[b * b2_stride + c] : 0.0f);
          float *row = out + ((gsize) c * batch + b) * hw;

          for (gsize i = 0; i < hw; i++)
            row[i] += v;
        }

  if (k != 1 || stride != 1)
    {
      diffuse__im2col (x, c_in, batch, height, width, k, stride, col);
      bmat = col;
    }
  /* beta = 1: the bias (and residual) already in out is kept, which saves
   * OpenBLAS's separate pass that scales C by beta */
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, c_out, (gint) n, kk,
               1.0f, w, kk, bmat, (gint) n, 1.0f, out, (gint) n);
}

void
diffuse__upsample2x (const float *x, gint channels, gint batch, gint height,
                     gint width, float *out)
{
  gsize planes = (gsize) channels * batch;

  for (gsize p = 0; p < planes; p++)
    {
      const float *src = x + p * height * width;
      float *dst = out + p * 4 * height * width;

      for (gint y = 0; y < height; y++)
        {
          float *d0 = dst + (gsize) (2 * y) * 2 * width;
          const float *s = src + (gsize) y * width;

          for (gint i = 0; i < width; i++)
            d0[2 * i] = d0[2 * i + 1] = s[i];
          memcpy (d0 + 2 * width, d0, sizeof (float) * 2 * width);
        }
    }
}

void
diffuse__avgpool2x (const float *x, gint channels, gint batch, gint height,
                    gint width, float *out)
{
  gsize planes = (gsize) channels * batch;
  gint ho = height / 2, wo = width / 2;

  for (gsize p = 0; p < planes; p++)
    {
      const float *src = x + p * height * width;
      float *dst = out + p * ho * wo;

      for (gint y = 0; y < ho; y++)
        {
          const float *s0 = src + (gsize) (2 * y) * width;
          const float *s1 = s0 + width;

          for (gint i = 0; i < wo; i++)
            dst[(gsize) y * wo + i] = 0.25f * ((s0[2 * i] + s0[2 * i + 1])
                                               + (s1[2 * i] + s1[2 * i + 1]));
        }
    }
}

/* Row-wise softmax of an [rows, n] matrix in place, max subtracted first. */
static void
softmax_rows (float *s, gsize rows, gsize n)
{
  for (gsize r = 0; r < rows; r++)
    {
      float *row = s + r * n;
      float m = row[0];
      float acc[16] = { 0 };
      double sum = 0.0;
      float inv;
      gsize i = 0;

      for (gsize j = 1; j < n; j++)
        m = row[j] > m ? row[j] : m;
      for (gsize j = 0; j < n; j++)
        row[j] = fast_expf (row[j] - m);
      for (; i + 16 <= n; i += 16)
        for (gint j = 0; j < 16; j++)
          acc[j] += row[i + j];
      for (gint j = 0; j < 16; j++)
        sum += acc[j];
      for (; i < n; i++)
        sum += row[i];
      inv = (float) (1.0 / sum);
      for (gsize j = 0; j < n; j++)
        row[j] *= inv;
    }
}

void
diffuse__attention (const float *qkv, gint channels, gint batch, gsize t,
                    gint heads, gboolean legacy_order, float *scores,
                    float *out)
{
  gint ch = channels / heads;
  gsize ld = (gsize) batch * t;
  /* guided-diffusion scales q and k by ch^(−1/4) each; one 1/√ch on the
   * product is the same up to rounding */
  float alpha = (float) (1.0 / sqrt ((double) ch));

  for (gint b = 0; b < batch; b++)
    for (gint h = 0; h < heads; h++)
      {
        gsize rq = legacy_order ? (gsize) h * 3 * ch : (gsize) h * ch;
        gsize rk = legacy_order ? rq + ch : rq + channels;
        gsize rv = legacy_order ? rq + 2 * ch : rq + 2 * (gsize) channels;
        const float *q = qkv + rq * ld + b * t;
        const float *k = qkv + rk * ld + b * t;
        const float *v = qkv + rv * ld + b * t;
        float *o = out + (gsize) h * ch * ld + b * t;

        /* scores[t, s] = Σ_c q[c, t] k[c, s] */
        cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, (gint) t, (gint) t,
                     ch, alpha, q, (gint) ld, k, (gint) ld, 0.0f, scores, (gint) t);
        softmax_rows (scores, t, t);
        /* o[c, t] = Σ_s v[c, s] scores[t, s] */
        cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, ch, (gint) t,
                     (gint) t, 1.0f, v, (gint) ld, scores, (gint) t, 0.0f, o,
                     (gint) ld);
      }
}

void
diffuse__nchw_to_cbhw (const float *x, gint batch, gint channels, gsize hw,
                       float *out)
{
  for (gint b = 0; b < batch; b++)
    for (gint c = 0; c < channels; c++)
      memcpy (out + ((gsize) c * batch + b) * hw,
              x + ((gsize) b * channels + c) * hw, sizeof (float) * hw);
}

void
diffuse__cbhw_to_nchw (const float *x, gint batch, gint channels, gsize hw,
                       float *out)
{
  for (gint b = 0; b < batch; b++)
    for (gint c = 0; c < channels; c++)
      memcpy (out + ((gsize) b * channels + c) * hw,
              x + ((gsize) c * batch + b) * hw, sizeof (float) * hw);
}
