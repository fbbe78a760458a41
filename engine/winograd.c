/* Winograd F(2×2, 3×3) 3×3 convolution (Lavin & Gray 2015): weight and
 * input transforms, 16 GEMMs, output transform; see layers.h. */
#include <cblas.h>

#include "layers.h"
#include "kernel-inline.h"

typedef struct
{
  const float *w;
  gsize plane;
  float *u;
} WinoWeightsJob;

#define WBLOCK 64 /* (output, input) channel pairs per block */

/* units: (output, input) channel pairs, WBLOCK at a time, transposed to
 * g[9][WBLOCK] so that gcc vectorises the transform across pairs, and
 * written out as contiguous runs of each of the 16 planes (fast enough to
 * run before each convolution, unet.c) */
static void HOT
wino_weights_range (gpointer data, gsize begin, gsize end,
                    gint part G_GNUC_UNUSED)
{
  const WinoWeightsJob *j = data;
  float g[9][WBLOCK], u[16][WBLOCK];

  for (gsize p0 = begin; p0 < end; p0 += WBLOCK)
    {
      gint n = (gint) MIN (WBLOCK, end - p0);
      const float *src = j->w + p0 * 9;

      for (gint p = 0; p < n; p++)
        for (gint k = 0; k < 9; k++)
          g[k][p] = src[p * 9 + k];
      for (gint p = 0; p < n; p++)
        {
          float t[4][3];

          /* G g: rows g0, (g0 + g1 + g2)/2, (g0 − g1 + g2)/2, g2 */
          for (gint k = 0; k < 3; k++)
            {
              float g0 = g[k][p], g1 = g[3 + k][p], g2 = g[6 + k][p];

              t[0][k] = g0;
              t[1][k] = 0.5f * (g0 + g1 + g2);
              t[2][k] = 0.5f * (g0 - g1 + g2);
              t[3][k] = g2;
            }
          /* (G g) Gᵀ */
          for (gint i = 0; i < 4; i++)
            {
              u[i * 4 + 0][p] = t[i][0];
              u[i * 4 + 1][p] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
              u[i * 4 + 2][p] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
              u[i * 4 + 3][p] = t[i][2];
            }
        }
      for (gint x = 0; x < 16; x++)
        copy_f (j->u + x * j->plane + p0, u[x], n);
    }
}

void
diffuse__winograd_weights (DiffusePool *pool, const float *w, gint c_out,
                           gint c_in, float *u)
{
  WinoWeightsJob j = { w, (gsize) c_out * c_in, u };

  diffuse__pool_run (pool, j.plane, wino_weights_range, &j);
}

gsize
diffuse__winograd_tiles (gint batch, gint height, gint width)
{
  return (gsize) batch * ((height + 1) / 2) * ((width + 1) / 2);
}

gint
diffuse__winograd_band_rows (gint rows, gint row_tiles, gsize max_tiles)
{
  if (max_tiles == 0 || max_tiles >= (gsize) rows * row_tiles)
    return rows;
  return (gint) MAX (1, max_tiles / (gsize) row_tiles);
}

gsize
diffuse__winograd_band_tiles (gint batch, gint height, gint width,
                              gsize max_tiles)
{
  gint tw = (width + 1) / 2, rows = batch * ((height + 1) / 2);

  return (gsize) diffuse__winograd_band_rows (rows, tw, max_tiles) * tw;
}

typedef struct
{
  const float *x;
  gint batch, height, width;
  gsize tiles; /* of the band: (g1 − g0)·⌈W/2⌉ */
  float *v;
  gint c_in;
  gint wrap;   /* DiffuseTileMode: circular padding in x and/or y */
  gint g0, g1; /* the band: tile rows g = b·⌈H/2⌉ + ty in [g0, g1) */
} WinoInJob;

/* i mod n in 0..n−1, for any i (circular padding) */
static inline gint
wrap_index (gint i, gint n)
{
  i %= n;
  return i < 0 ? i + n : i;
}

/* One row i of Bᵀ d B for n tiles of a tile row, from zero-padded input
 * rows: with t_k = p[2tx + k] + sign·q[2tx + k] (row i of Bᵀ d), the four
 * outputs are t0 − t2, t1 + t2, t2 − t1, t1 − t3.  Written with two input
 * rows and four outputs per loop, which gcc vectorises. */
static inline void
wino_in_row (const float *restrict p, const float *restrict q, float sign,
             gint n, float *restrict o0, float *restrict o1, float *restrict o2,
             float *restrict o3)
{
  for (gint tx = 0; tx < n; tx++)
    {
      gint x = 2 * tx;
      float t0 = p[x] + sign * q[x], t1 = p[x + 1] + sign * q[x + 1];
      float t2 = p[x + 2] + sign * q[x + 2], t3 = p[x + 3] + sign * q[x + 3];

      o0[tx] = t0 - t2;
      o1[tx] = t1 + t2;
      o2[tx] = t2 - t1;
      o3[tx] = t1 - t3;
    }
}

#define WINO_SEGMENT 1024 /* tiles per padded row segment */

/* units: input channels */
static void HOT
wino_in_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const WinoInJob *j = data;
  gint h = j->height, w = j->width, th = (h + 1) / 2, tw = (w + 1) / 2;
  gsize plane = (gsize) j->c_in * j->tiles;
  /* input columns 2tx − 1 .. 2tx + 2 of a segment of tiles, zero-padded */
  float pad[4][2 * WINO_SEGMENT + 2];

  for (gsize c = begin; c < end; c++)
    for (gint g = j->g0; g < j->g1; g++)
      {
        gint b = g / th, ty = g % th;
        const float *src = j->x + (c * j->batch + b) * h * w;
        float *o = j->v + c * j->tiles + (gsize) (g - j->g0) * tw;

        for (gint t0 = 0; t0 < tw; t0 += WINO_SEGMENT)
          {
            gint t1 = MIN (tw, t0 + WINO_SEGMENT);
            gint x0 = 2 * t0 - 1, len = 2 * (t1 - t0) + 2;
            gint lo = MAX (0, -x0), hi = MIN (len, w - x0);

            for (gint i = 0; i < 4; i++)
              {
                gint yy = 2 * ty - 1 + i;

                if ((yy < 0 || yy >= h) && (j->wrap & DIFFUSE_TILE_Y))
                  yy = wrap_index (yy, h);
                if (yy < 0 || yy >= h || hi <= lo)
                  {
                    zero_f (pad[i], len);
                    continue;
                  }
                const float *row = src + (gsize) yy * w;

                if (j->wrap & DIFFUSE_TILE_X)
                  {
                    /* the columns outside, taken mod w */
                    for (gint k = 0; k < lo; k++)
                      pad[i][k] = row[wrap_index (x0 + k, w)];
                    for (gint k = hi; k < len; k++)
                      pad[i][k] = row[wrap_index (x0 + k, w)];
                  }
                else
                  {
                    /* lo <= 1 and len − hi <= 2: set those few by
                         * hand rather than with calls */
                    if (lo)
                      pad[i][0] = 0.0f;
                    if (hi < len)
                      pad[i][hi] = 0.0f;
                    if (hi + 1 < len)
                      pad[i][hi + 1] = 0.0f;
                  }
                copy_f (pad[i] + lo, row + x0 + lo, hi - lo);
              }
            /* rows of Bᵀ d: d0 − d2, d1 + d2, d2 − d1, d1 − d3 */
            wino_in_row (pad[0], pad[2], -1.0f, t1 - t0, o + t0, o + plane + t0,
                         o + 2 * plane + t0, o + 3 * plane + t0);
            wino_in_row (pad[1], pad[2], 1.0f, t1 - t0, o + 4 * plane + t0,
                         o + 5 * plane + t0, o + 6 * plane + t0,
                         o + 7 * plane + t0);
            wino_in_row (pad[2], pad[1], -1.0f, t1 - t0, o + 8 * plane + t0,
                         o + 9 * plane + t0, o + 10 * plane + t0,
                         o + 11 * plane + t0);
            wino_in_row (pad[1], pad[3], -1.0f, t1 - t0, o + 12 * plane + t0,
                         o + 13 * plane + t0, o + 14 * plane + t0,
                         o + 15 * plane + t0);
          }
      }
}

typedef struct
{
  const float *m;
  gint batch, height, width, c_out;
  gsize tiles; /* of the band, as WinoInJob */
  const float *bias, *bias2;
  gsize b2_stride;
  gboolean accumulate;
  float *out;
  gint g0, g1;
} WinoOutJob;

/* Output row i of Y = Aᵀ M A for the tiles 0 <= tx < n of a tile row,
 * whose two columns are inside: with s_k = a_k + sign·(b_k + c_k) (row i
 * of Aᵀ M: m0 + m1 + m2, or m1 − m2 − m3 as a = m1, b = m2, c = m3 with
 * sign −1), y[2tx] = s0 + s1 + s2 + bias, y[2tx + 1] = s1 − s2 − s3 + bias.
 * a, b, c: the 4 planes k = 0..3 of three rows of M. */
static inline void
wino_out_row (const float *const a[4], const float *const b[4],
              const float *const c[4], float sign, gint n, float bias,
              gboolean accumulate, float *restrict y)
{
  const float *restrict a0 = a[0], *restrict a1 = a[1];
  const float *restrict a2 = a[2], *restrict a3 = a[3];
  const float *restrict b0 = b[0], *restrict b1 = b[1];
  const float *restrict b2 = b[2], *restrict b3 = b[3];
  const float *restrict c0 = c[0], *restrict c1 = c[1];
  const float *restrict c2 = c[2], *restrict c3 = c[3];

  if (accumulate)
    for (gint tx = 0; tx < n; tx++)
      {
        float s0 = a0[tx] + sign * (b0[tx] + c0[tx]);
        float s1 = a1[tx] + sign * (b1[tx] + c1[tx]);
        float s2 = a2[tx] + sign * (b2[tx] + c2[tx]);
        float s3 = a3[tx] + sign * (b3[tx] + c3[tx]);

        y[2 * tx] += s0 + s1 + s2 + bias;
        y[2 * tx + 1] += s1 - s2 - s3 + bias;
      }
  else
    for (gint tx = 0; tx < n; tx++)
      {
        float s0 = a0[tx] + sign * (b0[tx] + c0[tx]);
        float s1 = a1[tx] + sign * (b1[tx] + c1[tx]);
        float s2 = a2[tx] + sign * (b2[tx] + c2[tx]);
        float s3 = a3[tx] + sign * (b3[tx] + c3[tx]);

        y[2 * tx] = s0 + s1 + s2 + bias;
        y[2 * tx + 1] = s1 - s2 - s3 + bias;
      }
}

/* Y = Aᵀ M A (2×2 per tile), Aᵀ = [1 1 1 0; 0 1 −1 −1], plus bias, into
 * out (or added to it); units: output channels */
static void HOT
wino_out_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const WinoOutJob *j = data;
  gint h = j->height, w = j->width, th = (h + 1) / 2, tw = (w + 1) / 2;
  gsize plane = (gsize) j->c_out * j->tiles;
  gint tw_full = w / 2; /* tiles whose two output columns are inside */

  for (gsize o = begin; o < end; o++)
    for (gint g = j->g0; g < j->g1; g++)
      {
        gint b = g / th, ty = g % th;
        float *dst = j->out + (o * j->batch + b) * h * w;
        float bv = (j->bias ? j->bias[o] : 0.0f) +
                   (j->bias2 ? j->bias2[b * j->b2_stride + o] : 0.0f);

        const float *p = j->m + o * j->tiles + (gsize) (g - j->g0) * tw;
        float *y0 = dst + (gsize) (2 * ty) * w;
        float *y1 = 2 * ty + 1 < h ? y0 + w : NULL;

        gint tx0 = 0;

        if (y1)
          {
            const float *m[4][4];

            for (gint i = 0; i < 4; i++)
              for (gint k = 0; k < 4; k++)
                m[i][k] = p + (gsize) (i * 4 + k) * plane;
            /* row 0: m0 + m1 + m2; row 1: m1 − m2 − m3 = m1 − (m2 + m3) */
            wino_out_row (m[0], m[1], m[2], 1.0f, tw_full, bv, j->accumulate,
                          y0);
            wino_out_row (m[1], m[2], m[3], -1.0f, tw_full, bv, j->accumulate,
                          y1);
            tx0 = tw_full;
          }
        for (gint tx = tx0; tx < tw; tx++)
          {
            float s0[4], s1[4], v00, v01, v10, v11;

            for (gint k = 0; k < 4; k++)
              {
                float m0 = p[(gsize) k * plane + tx];
                float m1 = p[(gsize) (4 + k) * plane + tx];
                float m2 = p[(gsize) (8 + k) * plane + tx];
                float m3 = p[(gsize) (12 + k) * plane + tx];

                s0[k] = m0 + m1 + m2;
                s1[k] = m1 - m2 - m3;
              }
            v00 = s0[0] + s0[1] + s0[2] + bv;
            v01 = s0[1] - s0[2] - s0[3] + bv;
            v10 = s1[0] + s1[1] + s1[2] + bv;
            v11 = s1[1] - s1[2] - s1[3] + bv;
            /* odd width or height: clip */
            y0[2 * tx] = j->accumulate ? y0[2 * tx] + v00 : v00;
            if (2 * tx + 1 < w)
              y0[2 * tx + 1] = j->accumulate ? y0[2 * tx + 1] + v01 : v01;
            if (y1)
              {
                y1[2 * tx] = j->accumulate ? y1[2 * tx] + v10 : v10;
                if (2 * tx + 1 < w)
                  y1[2 * tx + 1] = j->accumulate ? y1[2 * tx + 1] + v11 : v11;
              }
          }
      }
}

typedef struct
{
  gint c_in, c_out;
  gsize tiles;
  const float *u, *v;
  float *m;
} WinoGemmJob;

/* M_ξ = U_ξ V_ξ for ξ in [begin, end), each a single-threaded GEMM */
static void
wino_gemm_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const WinoGemmJob *j = data;

  for (gsize xi = begin; xi < end; xi++)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, j->c_out,
                 (gint) j->tiles, j->c_in, 1.0f, j->u + xi * j->c_out * j->c_in,
                 j->c_in, j->v + xi * j->c_in * j->tiles, (gint) j->tiles, 0.0f,
                 j->m + xi * j->c_out * j->tiles, (gint) j->tiles);
}

void
diffuse__conv3x3_winograd (DiffusePool *pool, const float *x, gint c_in,
                           gint batch, gint height, gint width, const float *u,
                           const float *bias, const float *bias2,
                           gsize b2_stride, gint c_out, gboolean accumulate,
                           float *v, float *m, float *out)
{
  diffuse__conv3x3_winograd_wrap (pool, x, c_in, batch, height, width, u, bias,
                                  bias2, b2_stride, c_out, DIFFUSE_TILE_NONE, 0,
                                  accumulate, v, m, out);
}

void
diffuse__conv3x3_winograd_wrap (DiffusePool *pool, const float *x, gint c_in,
                                gint batch, gint height, gint width,
                                const float *u, const float *bias,
                                const float *bias2, gsize b2_stride, gint c_out,
                                DiffuseTileMode wrap, gsize max_tiles,
                                gboolean accumulate, float *v, float *m,
                                float *out)
{
  gint tw = (width + 1) / 2, rows = batch * ((height + 1) / 2);
  gint per = diffuse__winograd_band_rows (rows, tw, max_tiles);

  for (gint g0 = 0; g0 < rows; g0 += per)
    {
      gint g1 = MIN (rows, g0 + per);
      gsize tiles = (gsize) (g1 - g0) * tw;
      WinoInJob in = { x, batch, height, width, tiles, v, c_in, wrap, g0, g1 };
      WinoOutJob oj = { m,     batch,     height,     width, c_out, tiles, bias,
                        bias2, b2_stride, accumulate, out,   g0,    g1 };
      WinoGemmJob gj = { c_in, c_out, tiles, u, v, m };

      diffuse__pool_run (pool, c_in, wino_in_range, &in);
      diffuse__pool_run (pool, 16, wino_gemm_range, &gj);
      diffuse__pool_run (pool, c_out, wino_out_range, &oj);
    }
}
