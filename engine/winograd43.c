/* Winograd F(4×4, 3×3) 3×3 convolution (Lavin & Gray 2015): weight and
 * input transforms, 36 GEMMs, output transform; see layers.h.
 *
 * The matrices are Toom-Cook's for the interpolation points 0, ±1, ±2
 * and ∞ (n = 6), with the 1/f_j factors in G so that Bᵀ and Aᵀ hold small
 * integers:
 *   Bᵀ = [4  0 −5  0 1 0]   G = [ 1/4     0     0 ]   Aᵀ = [1 1  1 1  1 0]
 *        [0 −4 −4  1 1 0]       [−1/6 −1/6  −1/6]        [0 1 −1 2 −2 0]
 *        [0  4 −4 −1 1 0]       [−1/6  1/6  −1/6]        [0 1  1 4  4 0]
 *        [0 −2 −1  2 1 0]       [1/24 1/12   1/6]        [0 1 −1 8 −8 1]
 *        [0  2 −1 −2 1 0]       [1/24 −1/12  1/6]
 *        [0  4  0 −5 0 1]       [ 0     0     1 ]
 * (derived with exact rationals and checked: Aᵀ[(G g) ⊙ (Bᵀ d)] is the
 * correlation of d with g for every d, g).  The points 0, ±1, ±1/2, ∞
 * give the same algorithm mirrored (x -> 1/x), so the same error.
 * tests/test-layers.c measures the error against a double-precision
 * direct convolution; bench/README.md has it beside F(2×2, 3×3)'s. */
#include <cblas.h>

#include "layers.h"
#include "kernel-inline.h"

typedef struct
{
  const float *w;
  gsize plane;
  float *u;
} Wino4WeightsJob;

#define WBLOCK 64 /* (output, input) channel pairs per block */

/* units: (output, input) channel pairs, WBLOCK at a time: the block's
 * 3×3 kernels are transposed to g[9][WBLOCK], transformed across the
 * pairs (which gcc vectorises), and the 36 results go out as contiguous
 * runs of each plane.  In float: fast enough to run before each
 * convolution (unet.c), rounding u within a few ulps. */
static void HOT
wino4_weights_range (gpointer data, gsize begin, gsize end,
                     gint part G_GNUC_UNUSED)
{
  const Wino4WeightsJob *j = data;
  const float s6 = 1.0f / 6, s12 = 1.0f / 12, s24 = 1.0f / 24;
  float g[9][WBLOCK], u[36][WBLOCK];

  for (gsize p0 = begin; p0 < end; p0 += WBLOCK)
    {
      gint n = (gint) MIN (WBLOCK, end - p0);
      const float *src = j->w + p0 * 9;

      for (gint p = 0; p < n; p++)
        for (gint k = 0; k < 9; k++)
          g[k][p] = src[p * 9 + k];
      for (gint p = 0; p < n; p++)
        {
          float t[6][3];

          /* G g, column by column of g */
          for (gint k = 0; k < 3; k++)
            {
              float a = g[k][p], b = g[3 + k][p], c = g[6 + k][p];

              t[0][k] = 0.25f * a;
              t[1][k] = -s6 * (a + b + c);
              t[2][k] = -s6 * (a - b + c);
              t[3][k] = s24 * a + s12 * b + s6 * c;
              t[4][k] = s24 * a - s12 * b + s6 * c;
              t[5][k] = c;
            }
          /* (G g) Gᵀ, row by row */
          for (gint i = 0; i < 6; i++)
            {
              float a = t[i][0], b = t[i][1], c = t[i][2];

              u[i * 6 + 0][p] = 0.25f * a;
              u[i * 6 + 1][p] = -s6 * (a + b + c);
              u[i * 6 + 2][p] = -s6 * (a - b + c);
              u[i * 6 + 3][p] = s24 * a + s12 * b + s6 * c;
              u[i * 6 + 4][p] = s24 * a - s12 * b + s6 * c;
              u[i * 6 + 5][p] = c;
            }
        }
      for (gint x = 0; x < 36; x++)
        copy_f (j->u + x * j->plane + p0, u[x], n);
    }
}

void
diffuse__winograd43_weights (DiffusePool *pool, const float *w, gint c_out,
                             gint c_in, float *u)
{
  Wino4WeightsJob j = { w, (gsize) c_out * c_in, u };

  diffuse__pool_run (pool, j.plane, wino4_weights_range, &j);
}

gsize
diffuse__winograd43_tiles (gint batch, gint height, gint width)
{
  return (gsize) batch * ((height + 3) / 4) * ((width + 3) / 4);
}

gsize
diffuse__winograd43_band_tiles (gint batch, gint height, gint width,
                                gsize max_tiles)
{
  gint tw = (width + 3) / 4, rows = batch * ((height + 3) / 4);

  return (gsize) diffuse__winograd_band_rows (rows, tw, max_tiles) * tw;
}

typedef struct
{
  const float *x;
  gint batch, height, width;
  gsize tiles; /* of the band: (g1 − g0)·⌈W/4⌉ */
  float *v;
  gint c_in;
  gint wrap;   /* DiffuseTileMode: circular padding in x and/or y */
  gint g0, g1; /* the band: tile rows g = b·⌈H/4⌉ + ty in [g0, g1) */
} Wino4InJob;

/* i mod n in 0..n−1, for any i (circular padding) */
static inline gint
wrap_index (gint i, gint n)
{
  i %= n;
  return i < 0 ? i + n : i;
}

#define SEG 256 /* tiles per padded row segment */

/* One row of Bᵀ d: r = Bᵀ[i] · (p0..p5), n floats */
static inline void
bt_row (gint i, const float *const p[6], gint n, float *restrict r)
{
  const float *restrict p0 = p[0], *restrict p1 = p[1], *restrict p2 = p[2];
  const float *restrict p3 = p[3], *restrict p4 = p[4], *restrict p5 = p[5];

  switch (i)
    {
    case 0:
      for (gint x = 0; x < n; x++)
        r[x] = 4.0f * p0[x] - 5.0f * p2[x] + p4[x];
      break;
    case 1:
      for (gint x = 0; x < n; x++)
        r[x] = (p3[x] + p4[x]) - 4.0f * (p1[x] + p2[x]);
      break;
    case 2:
      for (gint x = 0; x < n; x++)
        r[x] = (p4[x] - p3[x]) + 4.0f * (p1[x] - p2[x]);
      break;
    case 3:
      for (gint x = 0; x < n; x++)
        r[x] = (p4[x] - p2[x]) + 2.0f * (p3[x] - p1[x]);
      break;
    case 4:
      for (gint x = 0; x < n; x++)
        r[x] = (p4[x] - p2[x]) - 2.0f * (p3[x] - p1[x]);
      break;
    default:
      for (gint x = 0; x < n; x++)
        r[x] = 4.0f * p1[x] - 5.0f * p3[x] + p5[x];
      break;
    }
}

/* The six columns of (Bᵀ d) B for tiles 0 <= tx < n of a row r of Bᵀ d
 * (tile tx reads r[4tx .. 4tx + 5]), into o[k][tx]. */
static inline void
b_cols (const float *restrict r, gint n, float *const o[6])
{
  float *restrict o0 = o[0], *restrict o1 = o[1], *restrict o2 = o[2];
  float *restrict o3 = o[3], *restrict o4 = o[4], *restrict o5 = o[5];

  for (gint tx = 0; tx < n; tx++)
    {
      const float *d = r + 4 * tx;
      float d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3], d4 = d[4], d5 = d[5];

      o0[tx] = 4.0f * d0 - 5.0f * d2 + d4;
      o1[tx] = (d3 + d4) - 4.0f * (d1 + d2);
      o2[tx] = (d4 - d3) + 4.0f * (d1 - d2);
      o3[tx] = (d4 - d2) + 2.0f * (d3 - d1);
      o4[tx] = (d4 - d2) - 2.0f * (d3 - d1);
      o5[tx] = 4.0f * d1 - 5.0f * d3 + d5;
    }
}

/* units: input channels */
static void HOT
wino4_in_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const Wino4InJob *j = data;
  gint h = j->height, w = j->width, th = (h + 3) / 4, tw = (w + 3) / 4;
  gsize plane = (gsize) j->c_in * j->tiles;
  /* input columns 4tx − 1 .. 4tx + 4 of a segment of tiles, zero-padded */
  float pad[6][4 * SEG + 2], row[4 * SEG + 2];

  for (gsize c = begin; c < end; c++)
    for (gint g = j->g0; g < j->g1; g++)
      {
        gint b = g / th, ty = g % th;
        const float *src = j->x + (c * j->batch + b) * h * w;

        float *o = j->v + c * j->tiles + (gsize) (g - j->g0) * tw;

        for (gint t0 = 0; t0 < tw; t0 += SEG)
          {
            gint t1 = MIN (tw, t0 + SEG), n = t1 - t0;
            gint x0 = 4 * t0 - 1, len = 4 * n + 2;
            gint lo = MAX (0, -x0), hi = MIN (len, w - x0);
            const float *p[6];

            for (gint i = 0; i < 6; i++)
              {
                gint yy = 4 * ty - 1 + i;

                p[i] = pad[i];
                if ((yy < 0 || yy >= h) && (j->wrap & DIFFUSE_TILE_Y))
                  yy = wrap_index (yy, h);
                if (yy < 0 || yy >= h || hi <= lo)
                  {
                    zero_f (pad[i], len);
                    continue;
                  }
                const float *srow = src + (gsize) yy * w;
                gboolean wrap_x = (j->wrap & DIFFUSE_TILE_X) != 0;

                for (gint x = 0; x < lo; x++)
                  pad[i][x] = wrap_x ? srow[wrap_index (x0 + x, w)] : 0.0f;
                copy_f (pad[i] + lo, srow + x0 + lo, hi - lo);
                for (gint x = hi; x < len; x++)
                  pad[i][x] = wrap_x ? srow[wrap_index (x0 + x, w)] : 0.0f;
              }
            for (gint i = 0; i < 6; i++)
              {
                float *oo[6];

                bt_row (i, p, len, row);
                for (gint k = 0; k < 6; k++)
                  oo[k] = o + (gsize) (i * 6 + k) * plane + t0;
                b_cols (row, n, oo);
              }
          }
      }
}

typedef struct
{
  const float *m;
  gint batch, height, width, c_out;
  gsize tiles; /* of the band, as Wino4InJob */
  const float *bias, *bias2;
  gsize b2_stride;
  gboolean accumulate;
  float *out;
  gint g0, g1;
} Wino4OutJob;

/* Row i of Aᵀ M for n tiles: s[k][tx] = Σ_j Aᵀ[i][j] m[j][k][tx] */
static inline void
at_row (gint i, const float *const m[6][6], gint n, float s[6][SEG])
{
  for (gint k = 0; k < 6; k++)
    {
      const float *restrict m0 = m[0][k], *restrict m1 = m[1][k];
      const float *restrict m2 = m[2][k], *restrict m3 = m[3][k];
      const float *restrict m4 = m[4][k], *restrict m5 = m[5][k];
      float *restrict r = s[k];

      switch (i)
        {
        case 0:
          for (gint x = 0; x < n; x++)
            r[x] = m0[x] + (m1[x] + m2[x]) + (m3[x] + m4[x]);
          break;
        case 1:
          for (gint x = 0; x < n; x++)
            r[x] = (m1[x] - m2[x]) + 2.0f * (m3[x] - m4[x]);
          break;
        case 2:
          for (gint x = 0; x < n; x++)
            r[x] = (m1[x] + m2[x]) + 4.0f * (m3[x] + m4[x]);
          break;
        default:
          for (gint x = 0; x < n; x++)
            r[x] = (m1[x] - m2[x]) + 8.0f * (m3[x] - m4[x]) + m5[x];
          break;
        }
    }
}

/* One output row y[4tx + q], q < 4, for the n tiles whose four columns
 * are inside: (s A)[q] + bias */
static inline void
a_cols (float s[6][SEG], gint n, float bias, gboolean accumulate,
        float *restrict y)
{
  const float *restrict s0 = s[0], *restrict s1 = s[1], *restrict s2 = s[2];
  const float *restrict s3 = s[3], *restrict s4 = s[4], *restrict s5 = s[5];

  for (gint tx = 0; tx < n; tx++)
    {
      float a = s1[tx] + s2[tx], b = s1[tx] - s2[tx];
      float c = s3[tx] + s4[tx], d = s3[tx] - s4[tx];
      float v0 = s0[tx] + a + c + bias;
      float v1 = b + 2.0f * d + bias;
      float v2 = a + 4.0f * c + bias;
      float v3 = b + 8.0f * d + s5[tx] + bias;
      float *yy = y + 4 * tx;

      if (accumulate)
        {
          yy[0] += v0;
          yy[1] += v1;
          yy[2] += v2;
          yy[3] += v3;
        }
      else
        {
          yy[0] = v0;
          yy[1] = v1;
          yy[2] = v2;
          yy[3] = v3;
        }
    }
}

/* Y = Aᵀ M A (4×4 per tile) plus bias, into out (or added to it); units:
 * output channels */
static void HOT
wino4_out_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const Wino4OutJob *j = data;
  gint h = j->height, w = j->width, th = (h + 3) / 4, tw = (w + 3) / 4;
  gsize plane = (gsize) j->c_out * j->tiles;
  gint tw_full = w / 4; /* tiles whose four output columns are inside */
  float s[6][SEG];

  for (gsize o = begin; o < end; o++)
    for (gint g = j->g0; g < j->g1; g++)
      {
        gint b = g / th, ty = g % th;
        float *dst = j->out + (o * j->batch + b) * h * w;
        float bv = (j->bias ? j->bias[o] : 0.0f) +
                   (j->bias2 ? j->bias2[b * j->b2_stride + o] : 0.0f);

        for (gint t0 = 0; t0 < tw; t0 += SEG)
          {
            gint t1 = MIN (tw, t0 + SEG), n = t1 - t0;
            gint nfull = CLAMP (tw_full - t0, 0, n);
            const float *p =
                j->m + o * j->tiles + (gsize) (g - j->g0) * tw + t0;
            const float *m[6][6];

            for (gint i = 0; i < 6; i++)
              for (gint k = 0; k < 6; k++)
                m[i][k] = p + (gsize) (i * 6 + k) * plane;
            for (gint i = 0; i < 4 && 4 * ty + i < h; i++)
              {
                float *y = dst + (gsize) (4 * ty + i) * w + 4 * t0;

                at_row (i, m, n, s);
                a_cols (s, nfull, bv, j->accumulate, y);
                /* the last tile of an odd-sized row: clip */
                for (gint tx = nfull; tx < n; tx++)
                  {
                    float a = s[1][tx] + s[2][tx], bb = s[1][tx] - s[2][tx];
                    float c = s[3][tx] + s[4][tx], d = s[3][tx] - s[4][tx];
                    float v[4] = { s[0][tx] + a + c + bv, bb + 2.0f * d + bv,
                                   a + 4.0f * c + bv,
                                   bb + 8.0f * d + s[5][tx] + bv };

                    for (gint q = 0; q < 4 && 4 * (t0 + tx) + q < w; q++)
                      y[4 * tx + q] =
                          j->accumulate ? y[4 * tx + q] + v[q] : v[q];
                  }
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
} Wino4GemmJob;

/* M_ξ = U_ξ V_ξ for ξ in [begin, end), each a single-threaded GEMM */
static void
wino4_gemm_range (gpointer data, gsize begin, gsize end,
                  gint part G_GNUC_UNUSED)
{
  const Wino4GemmJob *j = data;

  for (gsize xi = begin; xi < end; xi++)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, j->c_out,
                 (gint) j->tiles, j->c_in, 1.0f, j->u + xi * j->c_out * j->c_in,
                 j->c_in, j->v + xi * j->c_in * j->tiles, (gint) j->tiles, 0.0f,
                 j->m + xi * j->c_out * j->tiles, (gint) j->tiles);
}

void
diffuse__conv3x3_winograd43 (DiffusePool *pool, const float *x, gint c_in,
                             gint batch, gint height, gint width,
                             const float *u, const float *bias,
                             const float *bias2, gsize b2_stride, gint c_out,
                             gboolean accumulate, float *v, float *m,
                             float *out)
{
  diffuse__conv3x3_winograd43_wrap (
      pool, x, c_in, batch, height, width, u, bias, bias2, b2_stride, c_out,
      DIFFUSE_TILE_NONE, 0, accumulate, v, m, out);
}

void
diffuse__conv3x3_winograd43_wrap (DiffusePool *pool, const float *x, gint c_in,
                                  gint batch, gint height, gint width,
                                  const float *u, const float *bias,
                                  const float *bias2, gsize b2_stride,
                                  gint c_out, DiffuseTileMode wrap,
                                  gsize max_tiles, gboolean accumulate,
                                  float *v, float *m, float *out)
{
  gint tw = (width + 3) / 4, rows = batch * ((height + 3) / 4);
  gint per = diffuse__winograd_band_rows (rows, tw, max_tiles);

  for (gint g0 = 0; g0 < rows; g0 += per)
    {
      gint g1 = MIN (rows, g0 + per);
      gsize tiles = (gsize) (g1 - g0) * tw;
      Wino4InJob in = { x, batch, height, width, tiles, v, c_in, wrap, g0, g1 };
      Wino4OutJob oj = { m,     batch, height, width,     c_out,
                         tiles, bias,  bias2,  b2_stride, accumulate,
                         out,   g0,    g1 };
      Wino4GemmJob gj = { c_in, c_out, tiles, u, v, m };

      diffuse__pool_run (pool, c_in, wino4_in_range, &in);
      diffuse__pool_run (pool, 36, wino4_gemm_range, &gj);
      diffuse__pool_run (pool, c_out, wino4_out_range, &oj);
    }
}
