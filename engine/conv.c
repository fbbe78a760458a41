/* 2-D convolution as im2col + GEMM (OpenBLAS sgemm, single-threaded per
 * pool thread); see layers.h. */
#include <cblas.h>

#include "layers.h"
#include "kernel-inline.h"

typedef struct
{
  float *out;
  gint batch;
  gsize hw;
  const float *bias, *bias2;
  gsize b2_stride;
  gboolean add;
} BiasJob;

/* units: output channels */
static void HOT
bias_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const BiasJob *j = data;

  for (gsize c = begin; c < end; c++)
    for (gint b = 0; b < j->batch; b++)
      {
        float v = (j->bias ? j->bias[c] : 0.0f) +
                  (j->bias2 ? j->bias2[b * j->b2_stride + c] : 0.0f);
        float *row = j->out + (c * j->batch + b) * j->hw;

        if (j->add)
          for (gsize i = 0; i < j->hw; i++)
            row[i] += v;
        else
          for (gsize i = 0; i < j->hw; i++)
            row[i] = v;
      }
}

/* out[Cout, B, hw] = bias[c] + bias2[b·b2_stride + c] (either may be
 * NULL), or += that with add */
static void
fill_bias (DiffusePool *pool, float *out, gint c_out, gint batch, gsize hw,
           const float *bias, const float *bias2, gsize b2_stride, gboolean add)
{
  BiasJob j = { out, batch, hw, bias, bias2, b2_stride, add };

  diffuse__pool_run (pool, c_out, bias_range, &j);
}

/* The output columns [*lo, *hi) of an im2col row at kernel column kx:
 * those with 0 <= ox·stride + kx − pad < width; the rest read padding. */
static inline void
im2col_cols (gint wo, gint width, gint kx, gint pad, gint stride, gint *lo,
             gint *hi)
{
  gint l = 0, h = wo;

  while (l < wo && l * stride + kx - pad < 0)
    l++;
  while (h > l && (h - 1) * stride + kx - pad >= width)
    h--;
  *lo = l;
  *hi = h;
}

/* i mod n in 0..n−1, for any i (circular padding) */
static inline gint
wrap_index (gint i, gint n)
{
  i %= n;
  return i < 0 ? i + n : i;
}

/* One output row of im2col: dst[ox] = row[ox·stride + off] for ox in
 * [lo, hi); outside it the padding: 0, or with wrap_x the row's column
 * (ox·stride + off) mod width.  row == NULL for a row in the (zero)
 * padding. */
static inline void
im2col_row (float *dst, const float *row, gint wo, gint lo, gint hi,
            gint stride, gint off, gint width, gboolean wrap_x)
{
  if (row == NULL)
    {
      zero_f (dst, wo);
      return;
    }
  for (gint ox = 0; ox < lo; ox++)
    dst[ox] = wrap_x ? row[wrap_index (ox * stride + off, width)] : 0.0f;
  if (stride == 1)
    copy_f (dst + lo, row + lo + off, hi - lo);
  else
    for (gint ox = lo; ox < hi; ox++)
      dst[ox] = row[ox * stride + off];
  for (gint ox = hi; ox < wo; ox++)
    dst[ox] = wrap_x ? row[wrap_index (ox * stride + off, width)] : 0.0f;
}

/* The source row of input row iy (which may lie in the padding): NULL
 * for zero padding, the wrapped row with wrap_y. */
static inline const float *
im2col_src_row (const float *plane, gint iy, gint height, gint width,
                gboolean wrap_y)
{
  if (iy < 0 || iy >= height)
    {
      if (!wrap_y)
        return NULL;
      iy = wrap_index (iy, height);
    }
  return plane + (gsize) iy * width;
}

typedef struct
{
  const float *x;
  gint batch, height, width, k, stride, wrap;
  float *col;
} Im2colJob;

/* units: input channels, each writing its k·k rows of col */
static void
im2col_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const Im2colJob *j = data;
  gint k = j->k, stride = j->stride, height = j->height, width = j->width;
  gint pad = k / 2;
  gint ho = (height + 2 * pad - k) / stride + 1;
  gint wo = (width + 2 * pad - k) / stride + 1;
  gsize n = (gsize) j->batch * ho * wo;

  for (gsize c = begin; c < end; c++)
    for (gint ky = 0; ky < k; ky++)
      for (gint kx = 0; kx < k; kx++)
        {
          float *dst = j->col + ((c * k + ky) * k + kx) * n;
          gint lo, hi;

          im2col_cols (wo, width, kx, pad, stride, &lo, &hi);
          for (gint b = 0; b < j->batch; b++)
            {
              const float *src = j->x + (c * j->batch + b) * height * width;

              for (gint oy = 0; oy < ho; oy++, dst += wo)
                im2col_row (dst,
                            im2col_src_row (src, oy * stride + ky - pad, height,
                                            width, j->wrap & DIFFUSE_TILE_Y),
                            wo, lo, hi, stride, kx - pad, width,
                            j->wrap & DIFFUSE_TILE_X);
            }
        }
}

/* im2col for a k×k convolution with padding k/2 and the given stride on
 * [C, B, H, W]: col[(c·k + ky)·k + kx, b, oy, ox] =
 * x[c, b, oy·stride + ky − k/2, ox·stride + kx − k/2] (0 outside, or the
 * indices taken mod H / W in the directions of wrap). */
static void
im2col (DiffusePool *pool, const float *x, gint channels, gint batch,
        gint height, gint width, gint k, gint stride, gint wrap, float *col)
{
  Im2colJob j = { x, batch, height, width, k, stride, wrap, col };

  diffuse__pool_run (pool, channels, im2col_range, &j);
}

/* im2col of output rows [r0, r1) (row r = b·Ho + oy) into the matching
 * columns of col[K, n] */
static void
im2col_rows (const float *x, gint channels, gint batch, gint height, gint width,
             gint k, gint stride, gint wrap, gsize r0, gsize r1, float *col)
{
  gint pad = k / 2;
  gint ho = (height + 2 * pad - k) / stride + 1;
  gint wo = (width + 2 * pad - k) / stride + 1;
  gsize n = (gsize) batch * ho * wo;

  for (gint c = 0; c < channels; c++)
    for (gint ky = 0; ky < k; ky++)
      for (gint kx = 0; kx < k; kx++)
        {
          float *dst = col + ((gsize) (c * k + ky) * k + kx) * n + r0 * wo;
          gint lo, hi;

          im2col_cols (wo, width, kx, pad, stride, &lo, &hi);
          for (gsize r = r0; r < r1; r++, dst += wo)
            {
              gint b = (gint) (r / ho), oy = (gint) (r % ho);
              const float *plane = x + ((gsize) c * batch + b) * height * width;

              im2col_row (dst,
                          im2col_src_row (plane, oy * stride + ky - pad, height,
                                          width, wrap & DIFFUSE_TILE_Y),
                          wo, lo, hi, stride, kx - pad, width,
                          wrap & DIFFUSE_TILE_X);
            }
        }
}

typedef struct
{
  const float *x;
  gint c_in, batch, height, width, k, stride, wrap, ho, wo, c_out;
  const float *w, *bias, *bias2;
  gsize b2_stride;
  gboolean accumulate;
  float *col, *out;
} ConvJob;

/* A convolution split by output rows (columns of the GEMM): each thread
 * sets its columns to the bias, builds their im2col and runs its GEMM
 * (single-threaded OpenBLAS) on them.  Units: output rows b·Ho + oy. */
static void
conv_cols_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const ConvJob *j = data;
  gsize hw = (gsize) j->ho * j->wo, n = (gsize) j->batch * hw;
  gsize n0 = begin * j->wo, nc = (end - begin) * j->wo;
  gint kk = j->c_in * j->k * j->k;
  const float *bmat = j->x + n0;

  if (!j->accumulate || j->bias || j->bias2)
    for (gint c = 0; c < j->c_out; c++)
      for (gsize col = n0; col < n0 + nc;)
        {
          gsize b = col / hw, stop = MIN (n0 + nc, (b + 1) * hw);
          float v = (j->bias ? j->bias[c] : 0.0f) +
                    (j->bias2 ? j->bias2[b * j->b2_stride + c] : 0.0f);
          float *row = j->out + (gsize) c * n;

          if (j->accumulate)
            for (; col < stop; col++)
              row[col] += v;
          else
            for (; col < stop; col++)
              row[col] = v;
        }
  if (j->k != 1 || j->stride != 1)
    {
      im2col_rows (j->x, j->c_in, j->batch, j->height, j->width, j->k,
                   j->stride, j->wrap, begin, end, j->col);
      bmat = j->col + n0;
    }
  /* beta = 1 keeps the bias (and residual) already in out */
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, j->c_out, (gint) nc,
               kk, 1.0f, j->w, kk, bmat, (gint) n, 1.0f, j->out + n0, (gint) n);
}

typedef struct
{
  gint m, n, k;
  const float *a, *b;
  gint lda, ldb;
  float beta;
  float *c;
  gint ldc;
} GemmJob;

/* c[m, n] = a[m, k] b[k, n] + beta c, split by blocks of 16 rows of a */
static void
gemm_rows_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const GemmJob *j = data;
  gint m0 = (gint) begin * 16, m1 = MIN (j->m, (gint) end * 16);

  if (m1 > m0)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, m1 - m0, j->n, j->k,
                 1.0f, j->a + (gsize) m0 * j->lda, j->lda, j->b, j->ldb,
                 j->beta, j->c + (gsize) m0 * j->ldc, j->ldc);
}

void
diffuse__conv2d (DiffusePool *pool, const float *x, gint c_in, gint batch,
                 gint height, gint width, const float *w, const float *bias,
                 const float *bias2, gsize b2_stride, gint c_out, gint k,
                 gint stride, gboolean accumulate, float *col, float *out)
{
  diffuse__conv2d_wrap (pool, x, c_in, batch, height, width, w, bias, bias2,
                        b2_stride, c_out, k, stride, DIFFUSE_TILE_NONE,
                        accumulate, col, out);
}

void
diffuse__conv2d_wrap (DiffusePool *pool, const float *x, gint c_in, gint batch,
                      gint height, gint width, const float *w,
                      const float *bias, const float *bias2, gsize b2_stride,
                      gint c_out, gint k, gint stride, DiffuseTileMode wrap,
                      gboolean accumulate, float *col, float *out)
{
  gint pad = k / 2;
  gint ho = (height + 2 * pad - k) / stride + 1;
  gint wo = (width + 2 * pad - k) / stride + 1;
  gsize n = (gsize) batch * ho * wo;
  gint kk = c_in * k * k;
  gint parts = diffuse__pool_get_active (pool);
  ConvJob cj = { x,      c_in,  batch,     height,     width, k,
                 stride, wrap,  ho,        wo,         c_out, w,
                 bias,   bias2, b2_stride, accumulate, col,   out };
  GemmJob gj = {
    c_out, (gint) n, kk, w, col, kk, (gint) n, 1.0f, out, (gint) n
  };

  /* Wide outputs: split the columns, so that every thread runs its own
   * im2col and GEMM in one go.  Narrow ones (deep levels): split the
   * weight rows instead, so that the threads do not each pack all of the
   * weights. */
  if (n >= (gsize) 256 * parts || (gsize) batch * ho < (gsize) parts)
    {
      diffuse__pool_run (parts > 1 ? pool : NULL, (gsize) batch * ho,
                         conv_cols_range, &cj);
      return;
    }
  if (!accumulate || bias || bias2)
    fill_bias (pool, out, c_out, batch, (gsize) ho * wo, bias, bias2, b2_stride,
               accumulate);
  if (k != 1 || stride != 1)
    im2col (pool, x, c_in, batch, height, width, k, stride, wrap, col);
  else
    gj.b = x;
  diffuse__pool_run (pool, (c_out + 15) / 16, gemm_rows_range, &gj);
}
