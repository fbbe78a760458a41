/* Input-gradient kernels of the classifier's backward pass; see
 * backward.h for the formula each implements.  GEMMs are OpenBLAS sgemm,
 * called single-threaded from the pool's threads as in layers.c;
 * reductions accumulate in double.  tests/test-classifier.c checks the
 * whole gradient against finite differences and PyTorch autograd. */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "backward.h"

static inline float
sigmoid1 (float z)
{
  return 1.0f / (1.0f + expf (-z));
}

/* ------------------------------------------------------------------ */
/* GroupNorm (+ scale-shift) (+ SiLU)                                   */

typedef struct
{
  const float *x;
  gint channels, batch, groups;
  gsize hw;
  float eps;
  const float *gamma, *beta, *scale, *shift;
  gsize ss_stride;
  gboolean silu, accumulate;
  float *dy, *dx;
} GnBackJob;

/* units u = b·groups + g */
static void
gn_back_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const GnBackJob *j = data;
  gint cg = j->channels / j->groups;
  gsize hw = j->hw, bhw = (gsize) j->batch * hw;
  double count = (double) cg * hw;

  for (gsize u = begin; u < end; u++)
    {
      gint b = (gint) (u / j->groups), g = (gint) (u % j->groups);
      gint c0 = g * cg;
      double s = 0.0, ss = 0.0, s1 = 0.0, s2 = 0.0;
      float mean, rstd, m1, m2;

      /* the forward's statistics, computed as diffuse__group_norm does */
      for (gint c = c0; c < c0 + cg; c++)
        {
          const float *xr = j->x + c * bhw + b * hw;

          for (gsize i = 0; i < hw; i++)
            s += xr[i];
        }
      mean = (float) (s / count);
      for (gint c = c0; c < c0 + cg; c++)
        {
          const float *xr = j->x + c * bhw + b * hw;

          for (gsize i = 0; i < hw; i++)
            {
              double d = (double) xr[i] - mean;
              ss += d * d;
            }
        }
      rstd = (float) (1.0 / sqrt (ss / count + j->eps));

      /* dẑ (into dy) and its two sums */
      for (gint c = c0; c < c0 + cg; c++)
        {
          const float *xr = j->x + c * bhw + b * hw;
          float *dr = j->dy + c * bhw + b * hw;
          float s1c = 1.0f, a, d;
          double t1 = 0.0, t2 = 0.0;

          if (j->scale)
            s1c = 1.0f + j->scale[b * j->ss_stride + c];
          a = rstd * j->gamma[c] * s1c;
          d = j->beta[c] * s1c +
              (j->scale ? j->shift[b * j->ss_stride + c] : 0.0f);
          for (gsize i = 0; i < hw; i++)
            {
              float xh = (xr[i] - mean) * rstd;
              float dz = dr[i];

              if (j->silu)
                {
                  float z = (xr[i] - mean) * a + d;
                  float sg = sigmoid1 (z);

                  dz *= sg * (1.0f + z * (1.0f - sg));
                }
              dz *= j->gamma[c] * s1c;
              dr[i] = dz;
              t1 += dz;
              t2 += (double) dz * xh;
            }
          s1 += t1;
          s2 += t2;
        }
      m1 = (float) (s1 / count);
      m2 = (float) (s2 / count);
      for (gint c = c0; c < c0 + cg; c++)
        {
          const float *xr = j->x + c * bhw + b * hw;
          const float *dr = j->dy + c * bhw + b * hw;
          float *out = j->dx + c * bhw + b * hw;

          if (j->accumulate)
            for (gsize i = 0; i < hw; i++)
              out[i] += rstd * (dr[i] - m1 - (xr[i] - mean) * rstd * m2);
          else
            for (gsize i = 0; i < hw; i++)
              out[i] = rstd * (dr[i] - m1 - (xr[i] - mean) * rstd * m2);
        }
    }
}

void
diffuse__group_norm_backward (DiffusePool *pool, const float *x, gint channels,
                              gint batch, gsize hw, gint groups, float eps,
                              const float *gamma, const float *beta,
                              const float *scale, const float *shift,
                              gsize ss_stride, gboolean silu, float *dy,
                              float *dx, gboolean accumulate)
{
  GnBackJob j = { x,         channels, batch,      groups, hw,
                  eps,       gamma,    beta,       scale,  shift,
                  ss_stride, silu,     accumulate, dy,     dx };

  g_return_if_fail (!accumulate || dx != dy);
  diffuse__pool_run (pool, (gsize) batch * groups, gn_back_range, &j);
}

/* ------------------------------------------------------------------ */
/* Convolution                                                         */

typedef struct
{
  gint m, n, k;
  const float *a, *b;
  float *c;
} GemmTnJob;

/* C[m, n] = Aᵀ B with A [k, m], B [k, n]; units: column blocks of 64 */
static void
gemm_tn_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const GemmTnJob *j = data;
  gsize c0 = begin * 64, c1 = MIN ((gsize) j->n, end * 64);

  if (c1 > c0)
    cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, j->m,
                 (gint) (c1 - c0), j->k, 1.0f, j->a, j->m, j->b + c0, j->n,
                 0.0f, j->c + c0, j->n);
}

static void
gemm_tn (DiffusePool *pool, gint m, gint n, gint k, const float *a,
         const float *b, float *c)
{
  GemmTnJob j = { m, n, k, a, b, c };

  diffuse__pool_run (pool, ((gsize) n + 63) / 64, gemm_tn_range, &j);
}

typedef struct
{
  const float *col;
  gint batch, height, width, k, stride;
  gboolean accumulate;
  float *dx;
} Col2imJob;

/* units: input channels (each owns its dx planes) */
static void
col2im_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const Col2imJob *j = data;
  gint k = j->k, s = j->stride, h = j->height, w = j->width, pad = k / 2;
  gint ho = (h + 2 * pad - k) / s + 1, wo = (w + 2 * pad - k) / s + 1;
  gsize n = (gsize) j->batch * ho * wo;

  for (gsize c = begin; c < end; c++)
    {
      float *plane = j->dx + c * j->batch * h * w;

      if (!j->accumulate)
        memset (plane, 0, sizeof (float) * j->batch * h * w);
      for (gint ky = 0; ky < k; ky++)
        for (gint kx = 0; kx < k; kx++)
          {
            const float *src = j->col + ((c * k + ky) * k + kx) * n;

            for (gint b = 0; b < j->batch; b++)
              for (gint oy = 0; oy < ho; oy++)
                {
                  gint iy = oy * s + ky - pad;
                  const float *row = src + ((gsize) b * ho + oy) * wo;
                  float *drow;

                  if (iy < 0 || iy >= h)
                    continue;
                  drow = plane + ((gsize) b * h + iy) * w;
                  for (gint ox = 0; ox < wo; ox++)
                    {
                      gint ix = ox * s + kx - pad;

                      if (ix >= 0 && ix < w)
                        drow[ix] += row[ox];
                    }
                }
          }
    }
}

void
diffuse__conv2d_backward (DiffusePool *pool, const float *dy, gint c_out,
                          gint batch, gint height, gint width, const float *w,
                          gint c_in, gint k, gint stride, gboolean accumulate,
                          float *col, float *dx)
{
  gint pad = k / 2;
  gint ho = (height + 2 * pad - k) / stride + 1;
  gint wo = (width + 2 * pad - k) / stride + 1;
  gsize n = (gsize) batch * ho * wo;
  Col2imJob cj;

  if (k == 1 && stride == 1)
    {
      if (!accumulate)
        {
          gemm_tn (pool, c_in, (gint) n, c_out, w, dy, dx);
          return;
        }
      /* no 1×1 accumulate caller needs it without scratch */
      g_return_if_fail (col != NULL);
      gemm_tn (pool, c_in, (gint) n, c_out, w, dy, col);
      for (gsize i = 0; i < (gsize) c_in * n; i++)
        dx[i] += col[i];
      return;
    }
  /* w [Cout, Cin·k·k] read as Aᵀ: dcol [Cin·k·k, n] = wᵀ dy */
  gemm_tn (pool, c_in * k * k, (gint) n, c_out, w, dy, col);
  cj = (Col2imJob){ col, batch, height, width, k, stride, accumulate, dx };
  diffuse__pool_run (pool, c_in, col2im_range, &cj);
}

void
diffuse__conv3x3_transpose_weights (const float *w, gint c_out, gint c_in,
                                    float *wt)
{
  for (gint co = 0; co < c_out; co++)
    for (gint ci = 0; ci < c_in; ci++)
      for (gint ky = 0; ky < 3; ky++)
        for (gint kx = 0; kx < 3; kx++)
          wt[(((gsize) ci * c_out + co) * 3 + ky) * 3 + kx] =
              w[(((gsize) co * c_in + ci) * 3 + (2 - ky)) * 3 + (2 - kx)];
}

/* ------------------------------------------------------------------ */
/* Average pooling                                                     */

typedef struct
{
  const float *dy;
  gint height, width;
  gboolean accumulate;
  float *dx;
} UnpoolJob;

static void
unpool_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const UnpoolJob *j = data;
  gint h = j->height, w = j->width, ho = h / 2, wo = w / 2;

  for (gsize p = begin; p < end; p++)
    {
      const float *src = j->dy + p * ho * wo;
      float *dst = j->dx + p * h * w;

      for (gint y = 0; y < h; y++)
        for (gint x = 0; x < w; x++)
          {
            float v = 0.25f * src[(gsize) (y / 2) * wo + x / 2];

            if (j->accumulate)
              dst[(gsize) y * w + x] += v;
            else
              dst[(gsize) y * w + x] = v;
          }
    }
}

void
diffuse__avgpool2x_backward (DiffusePool *pool, const float *dy, gint channels,
                             gint batch, gint height, gint width,
                             gboolean accumulate, float *dx)
{
  UnpoolJob j = { dy, height, width, accumulate, dx };

  diffuse__pool_run (pool, (gsize) channels * batch, unpool_range, &j);
}

/* ------------------------------------------------------------------ */
/* Attention                                                           */

gsize
diffuse__attention_backward_scratch (gsize t, gint n_threads)
{
  gsize tq = MIN (t, DIFFUSE_ATTENTION_BLOCK);

  return (2 * tq * t) * (gsize) MAX (n_threads, 1);
}

typedef struct
{
  const float *qkv, *dout;
  gint channels, batch, heads, ch;
  gsize t, tq;
  gboolean legacy_order;
  float alpha;
  float *scratch, *dqkv;
} AttnBackJob;

/* units: (b, head) pairs; each owns its rows of dqkv */
static void
attn_back_range (gpointer data, gsize begin, gsize end, gint part)
{
  const AttnBackJob *j = data;
  gsize t = j->t, tq = j->tq, ld = (gsize) j->batch * t;
  gint ch = j->ch;
  float *p = j->scratch + (gsize) part * 2 * tq * t;
  float *dp = p + tq * t;

  for (gsize u = begin; u < end; u++)
    {
      gint h = (gint) (u % j->heads), b = (gint) (u / j->heads);
      gsize rq = j->legacy_order ? (gsize) h * 3 * ch : (gsize) h * ch;
      gsize rk = j->legacy_order ? rq + ch : rq + j->channels;
      gsize rv = j->legacy_order ? rq + 2 * ch : rq + 2 * (gsize) j->channels;
      const float *q = j->qkv + rq * ld + b * t;
      const float *k = j->qkv + rk * ld + b * t;
      const float *v = j->qkv + rv * ld + b * t;
      const float *dO = j->dout + (gsize) h * ch * ld + b * t;
      float *dq = j->dqkv + rq * ld + b * t;
      float *dk = j->dqkv + rk * ld + b * t;
      float *dv = j->dqkv + rv * ld + b * t;

      for (gsize q0 = 0; q0 < t; q0 += tq)
        {
          gsize nq = MIN (tq, t - q0);
          float beta = q0 == 0 ? 0.0f : 1.0f;

          /* P = softmax (α Qᵀ K) over keys */
          cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, (gint) nq,
                       (gint) t, ch, j->alpha, q + q0, (gint) ld, k, (gint) ld,
                       0.0f, p, (gint) t);
          for (gsize i = 0; i < nq; i++)
            {
              float *row = p + i * t;
              float m = row[0];
              double sum = 0.0;

              for (gsize s = 1; s < t; s++)
                m = row[s] > m ? row[s] : m;
              for (gsize s = 0; s < t; s++)
                {
                  row[s] = expf (row[s] - m);
                  sum += row[s];
                }
              for (gsize s = 0; s < t; s++)
                row[s] = (float) (row[s] / sum);
            }
          /* dP[i, s] = Σ_c dO[c, q0 + i] V[c, s] */
          cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, (gint) nq,
                       (gint) t, ch, 1.0f, dO + q0, (gint) ld, v, (gint) ld,
                       0.0f, dp, (gint) t);
          /* dV[c, s] += Σ_i dO[c, q0 + i] P[i, s] */
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, ch, (gint) t,
                       (gint) nq, 1.0f, dO + q0, (gint) ld, p, (gint) t, beta,
                       dv, (gint) ld);
          /* dS = P ⊙ (dP − Σ_s P dP), into dp */
          for (gsize i = 0; i < nq; i++)
            {
              const float *pr = p + i * t;
              float *dr = dp + i * t;
              double dsum = 0.0;

              for (gsize s = 0; s < t; s++)
                dsum += (double) pr[s] * dr[s];
              for (gsize s = 0; s < t; s++)
                dr[s] = pr[s] * (dr[s] - (float) dsum);
            }
          /* dQ[c, q0 + i] = α Σ_s K[c, s] dS[i, s] */
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, ch, (gint) nq,
                       (gint) t, j->alpha, k, (gint) ld, dp, (gint) t, 0.0f,
                       dq + q0, (gint) ld);
          /* dK[c, s] += α Σ_i Q[c, q0 + i] dS[i, s] */
          cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, ch, (gint) t,
                       (gint) nq, j->alpha, q + q0, (gint) ld, dp, (gint) t,
                       beta, dk, (gint) ld);
        }
    }
}

void
diffuse__attention_backward (DiffusePool *pool, const float *qkv,
                             const float *dout, gint channels, gint batch,
                             gsize t, gint heads, gboolean legacy_order,
                             float *scratch, float *dqkv)
{
  AttnBackJob j = { qkv,
                    dout,
                    channels,
                    batch,
                    heads,
                    channels / heads,
                    t,
                    MIN (t, DIFFUSE_ATTENTION_BLOCK),
                    legacy_order,
                    (float) (1.0 / sqrt ((double) (channels / heads))),
                    scratch,
                    dqkv };

  diffuse__pool_run (pool, (gsize) batch * heads, attn_back_range, &j);
}
