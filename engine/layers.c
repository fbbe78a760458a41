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

/* Without no-trapping-math, gcc does not if-convert the float compares of
 * the exp clamp (they might trap) and no loop that calls fast_expf
 * vectorises; nothing here relies on floating-point exceptions.  The
 * project builds with -std=c11, which turns off FMA contraction;
 * contracting a·b + c is as exact or better and twice as fast.  The copy
 * loops below are mostly short rows (8–64 floats), faster inline than as
 * the memcpy / memset calls gcc would otherwise turn them into. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("no-trapping-math", "fp-contract=fast", \
                      "no-tree-loop-distribute-patterns")
#endif

/* The elementwise kernels are memory- and exp-bound; an AVX2/FMA clone,
 * picked at load time, runs them on 8 lanes where the CPU has it. */
#if defined(__x86_64__) && defined(__GNUC__) && defined(__linux__) \
    && !defined(__SANITIZE_THREAD__)
/* (ThreadSanitizer instruments the ifunc resolvers, which run before it
 * is initialised.) */
#define HOT __attribute__ ((target_clones ("arch=x86-64-v3", "default")))
#else
#define HOT
#endif

/* ------------------------------------------------------------------ */
/* Thread pool                                                         */

struct _DiffusePool
{
  gint n_workers;
  gint active;              /* threads used per job, 1..n_workers + 1 */
  GThread **threads;
  GMutex lock;
  GCond start, done;
  gint generation;          /* bumped per job (atomic) */
  gint pending;             /* workers yet to finish this job (atomic) */
  gint sleepers;            /* workers waiting on start (atomic) */
  gint main_waiting;        /* the caller waits on done (atomic) */
  gint quit;                /* atomic */
  DiffuseRangeFunc fn;
  gpointer data;
  gsize n;
  gint parts;
};

typedef struct
{
  DiffusePool *pool;
  gint index;               /* 1..n_workers: this worker's part */
} Worker;

/* Layers follow each other within microseconds, so both sides spin a
 * little (about 0.1–0.5 ms) before sleeping on a condition variable: a
 * futex sleep and wake-up per layer cost 20 % of a small model's pass.
 * Sleeping and waking use the Dekker pattern on sequentially consistent
 * atomics (sleepers / generation, main_waiting / pending), so no wake-up
 * is lost. */
#define SPIN_ITERATIONS 20000

static inline void
cpu_relax (void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause ();
#endif
}

static gpointer
worker_main (gpointer user_data)
{
  Worker *self = user_data;
  DiffusePool *pool = self->pool;
  gint seen = 0;

  for (;;)
    {
      DiffuseRangeFunc fn;
      gpointer data;
      gsize n;
      gint parts;

      for (gint i = 0; i < SPIN_ITERATIONS
           && g_atomic_int_get (&pool->generation) == seen
           && !g_atomic_int_get (&pool->quit); i++)
        cpu_relax ();
      if (g_atomic_int_get (&pool->generation) == seen
          && !g_atomic_int_get (&pool->quit))
        {
          g_mutex_lock (&pool->lock);
          g_atomic_int_inc (&pool->sleepers);
          while (g_atomic_int_get (&pool->generation) == seen
                 && !g_atomic_int_get (&pool->quit))
            g_cond_wait (&pool->start, &pool->lock);
          g_atomic_int_add (&pool->sleepers, -1);
          g_mutex_unlock (&pool->lock);
        }
      if (g_atomic_int_get (&pool->quit))
        break;
      seen = g_atomic_int_get (&pool->generation);
      fn = pool->fn;
      data = pool->data;
      n = pool->n;
      parts = pool->parts;

      if (self->index < parts)
        fn (data, n * self->index / parts, n * (self->index + 1) / parts,
            self->index);
      /* every worker acknowledges every job, so none is still reading
       * this job's fields when the caller writes the next one's */
      if (g_atomic_int_dec_and_test (&pool->pending)
          && g_atomic_int_get (&pool->main_waiting))
        {
          g_mutex_lock (&pool->lock);
          g_cond_signal (&pool->done);
          g_mutex_unlock (&pool->lock);
        }
    }
  g_free (self);
  return NULL;
}

DiffusePool *
diffuse__pool_new (gint n_threads)
{
  DiffusePool *pool = g_new0 (DiffusePool, 1);

  g_mutex_init (&pool->lock);
  g_cond_init (&pool->start);
  g_cond_init (&pool->done);
  pool->threads = g_new0 (GThread *, MAX (n_threads, 1));
  for (gint i = 1; i < n_threads; i++)
    {
      Worker *wk = g_new (Worker, 1);
      GThread *th;

      wk->pool = pool;
      wk->index = i;
      th = g_thread_try_new ("diffuse-worker", worker_main, wk, NULL);
      if (th == NULL)
        {
          g_free (wk);
          break;                /* run with the threads we have */
        }
      pool->threads[pool->n_workers++] = th;
    }
  pool->active = pool->n_workers + 1;
  return pool;
}

void
diffuse__pool_free (DiffusePool *pool)
{
  if (pool == NULL)
    return;
  g_mutex_lock (&pool->lock);
  g_atomic_int_set (&pool->quit, TRUE);
  g_cond_broadcast (&pool->start);
  g_mutex_unlock (&pool->lock);
  for (gint i = 0; i < pool->n_workers; i++)
    g_thread_join (pool->threads[i]);
  g_free (pool->threads);
  g_mutex_clear (&pool->lock);
  g_cond_clear (&pool->start);
  g_cond_clear (&pool->done);
  g_free (pool);
}

gint
diffuse__pool_get_n_threads (const DiffusePool *pool)
{
  return pool ? pool->n_workers + 1 : 1;
}

void
diffuse__pool_set_active (DiffusePool *pool, gint n_threads)
{
  if (pool)
    pool->active = CLAMP (n_threads, 1, pool->n_workers + 1);
}

gint
diffuse__pool_get_active (const DiffusePool *pool)
{
  return pool ? pool->active : 1;
}

void
diffuse__pool_run (DiffusePool *pool, gsize n, DiffuseRangeFunc fn,
                   gpointer data)
{
  gint parts;

  if (n == 0)
    return;
  parts = pool ? (gint) MIN ((gsize) pool->active, n) : 1;
  if (parts <= 1)
    {
      fn (data, 0, n, 0);
      return;
    }
  /* the job's fields are published by the atomic generation bump */
  pool->fn = fn;
  pool->data = data;
  pool->n = n;
  pool->parts = parts;
  g_atomic_int_set (&pool->pending, pool->n_workers);
  g_atomic_int_inc (&pool->generation);
  if (g_atomic_int_get (&pool->sleepers) > 0)
    {
      g_mutex_lock (&pool->lock);
      g_cond_broadcast (&pool->start);
      g_mutex_unlock (&pool->lock);
    }

  fn (data, 0, n / parts, 0);

  for (gint i = 0; i < SPIN_ITERATIONS && g_atomic_int_get (&pool->pending) > 0; i++)
    cpu_relax ();
  if (g_atomic_int_get (&pool->pending) > 0)
    {
      g_mutex_lock (&pool->lock);
      g_atomic_int_set (&pool->main_waiting, TRUE);
      while (g_atomic_int_get (&pool->pending) > 0)
        g_cond_wait (&pool->done, &pool->lock);
      g_atomic_int_set (&pool->main_waiting, FALSE);
      g_mutex_unlock (&pool->lock);
    }
}

/* ------------------------------------------------------------------ */
/* Kernels                                                             */

static inline void
copy_f (float *restrict dst, const float *restrict src, gsize n)
{
  for (gsize i = 0; i < n; i++)
    dst[i] = src[i];
}

static inline void
zero_f (float *dst, gsize n)
{
  for (gsize i = 0; i < n; i++)
    dst[i] = 0.0f;
}

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

typedef struct
{
  const float *x;
  float *out;
} SiluJob;

static void HOT
silu_range (gpointer data, gsize begin, gsize end,
              gint part G_GNUC_UNUSED)
{
  SiluJob *j = data;

  for (gsize i = begin; i < end; i++)
    j->out[i] = silu1 (j->x[i]);
}

void
diffuse__silu (DiffusePool *pool, const float *x, gsize n, float *out)
{
  SiluJob j = { x, out };

  diffuse__pool_run (n >= 16384 ? pool : NULL, n, silu_range, &j);
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
  GroupNormJob j = { x, channels, batch, groups, hw, eps, gamma, beta, scale,
                     shift, ss_stride, silu, out };

  diffuse__pool_run (pool, (gsize) batch * groups, group_norm_range, &j);
}

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
bias_range (gpointer data, gsize begin, gsize end,
              gint part G_GNUC_UNUSED)
{
  const BiasJob *j = data;

  for (gsize c = begin; c < end; c++)
    for (gint b = 0; b < j->batch; b++)
      {
        float v = (j->bias ? j->bias[c] : 0.0f)
                  + (j->bias2 ? j->bias2[b * j->b2_stride + c] : 0.0f);
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
im2col_cols (gint wo, gint width, gint kx, gint pad, gint stride,
             gint *lo, gint *hi)
{
  gint l = 0, h = wo;

  while (l < wo && l * stride + kx - pad < 0)
    l++;
  while (h > l && (h - 1) * stride + kx - pad >= width)
    h--;
  *lo = l;
  *hi = h;
}

/* One output row of im2col: dst[ox] = srow[ox·stride] for ox in
 * [lo, hi), 0 elsewhere; srow == NULL for a row in the padding. */
static inline void
im2col_row (float *dst, const float *srow, gint wo, gint lo, gint hi,
            gint stride)
{
  if (srow == NULL)
    {
      zero_f (dst, wo);
      return;
    }
  for (gint ox = 0; ox < lo; ox++)
    dst[ox] = 0.0f;
  if (stride == 1)
    copy_f (dst + lo, srow + lo, hi - lo);
  else
    for (gint ox = lo; ox < hi; ox++)
      dst[ox] = srow[ox * stride];
  for (gint ox = hi; ox < wo; ox++)
    dst[ox] = 0.0f;
}

typedef struct
{
  const float *x;
  gint batch, height, width, k, stride;
  float *col;
} Im2colJob;

/* units: input channels, each writing its k·k rows of col */
static void
im2col_range (gpointer data, gsize begin, gsize end,
              gint part G_GNUC_UNUSED)
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
                {
                  gint iy = oy * stride + ky - pad;

                  im2col_row (dst, iy < 0 || iy >= height ? NULL
                              : src + (gsize) iy * width + kx - pad,
                              wo, lo, hi, stride);
                }
            }
        }
}

/* im2col for a k×k convolution with padding k/2 and the given stride on
 * [C, B, H, W]: col[(c·k + ky)·k + kx, b, oy, ox] =
 * x[c, b, oy·stride + ky − k/2, ox·stride + kx − k/2] (0 outside). */
static void
im2col (DiffusePool *pool, const float *x, gint channels, gint batch,
        gint height, gint width, gint k, gint stride, float *col)
{
  Im2colJob j = { x, batch, height, width, k, stride, col };

  diffuse__pool_run (pool, channels, im2col_range, &j);
}

/* im2col of output rows [r0, r1) (row r = b·Ho + oy) into the matching
 * columns of col[K, n] */
static void
im2col_rows (const float *x, gint channels, gint batch, gint height,
             gint width, gint k, gint stride, gsize r0, gsize r1, float *col)
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
              gint iy = oy * stride + ky - pad;

              im2col_row (dst, iy < 0 || iy >= height ? NULL
                          : x + (((gsize) c * batch + b) * height + iy) * width
                            + kx - pad,
                          wo, lo, hi, stride);
            }
        }
}

typedef struct
{
  const float *x;
  gint c_in, batch, height, width, k, stride, ho, wo, c_out;
  const float *w, *bias, *bias2;
  gsize b2_stride;
  gboolean accumulate;
  float *col, *out;
} ConvJob;

/* A convolution split by output rows (columns of the GEMM): each thread
 * sets its columns to the bias, builds their im2col and runs its GEMM
 * (single-threaded OpenBLAS) on them.  Units: output rows b·Ho + oy. */
static void
conv_cols_range (gpointer data, gsize begin, gsize end,
                 gint part G_GNUC_UNUSED)
{
  const ConvJob *j = data;
  gsize hw = (gsize) j->ho * j->wo, n = (gsize) j->batch * hw;
  gsize n0 = begin * j->wo, nc = (end - begin) * j->wo;
  gint kk = j->c_in * j->k * j->k;
  const float *bmat = j->x + n0;

  if (!j->accumulate || j->bias || j->bias2)
    for (gint c = 0; c < j->c_out; c++)
      for (gsize col = n0; col < n0 + nc; )
        {
          gsize b = col / hw, stop = MIN (n0 + nc, (b + 1) * hw);
          float v = (j->bias ? j->bias[c] : 0.0f)
                    + (j->bias2 ? j->bias2[b * j->b2_stride + c] : 0.0f);
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
                   j->stride, begin, end, j->col);
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
gemm_rows_range (gpointer data, gsize begin, gsize end,
                 gint part G_GNUC_UNUSED)
{
  const GemmJob *j = data;
  gint m0 = (gint) begin * 16, m1 = MIN (j->m, (gint) end * 16);

  if (m1 > m0)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, m1 - m0, j->n, j->k,
                 1.0f, j->a + (gsize) m0 * j->lda, j->lda, j->b, j->ldb, j->beta,
                 j->c + (gsize) m0 * j->ldc, j->ldc);
}

void
diffuse__conv2d (DiffusePool *pool, const float *x, gint c_in, gint batch,
                 gint height, gint width, const float *w, const float *bias,
                 const float *bias2, gsize b2_stride, gint c_out, gint k,
                 gint stride, gboolean accumulate, float *col, float *out)
{
  gint pad = k / 2;
  gint ho = (height + 2 * pad - k) / stride + 1;
  gint wo = (width + 2 * pad - k) / stride + 1;
  gsize n = (gsize) batch * ho * wo;
  gint kk = c_in * k * k;
  gint parts = diffuse__pool_get_active (pool);
  ConvJob cj = { x, c_in, batch, height, width, k, stride, ho, wo, c_out, w,
                 bias, bias2, b2_stride, accumulate, col, out };
  GemmJob gj = { c_out, (gint) n, kk, w, col, kk, (gint) n, 1.0f, out, (gint) n };

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
    fill_bias (pool, out, c_out, batch, (gsize) ho * wo, bias, bias2,
               b2_stride, accumulate);
  if (k != 1 || stride != 1)
    im2col (pool, x, c_in, batch, height, width, k, stride, col);
  else
    gj.b = x;
  diffuse__pool_run (pool, (c_out + 15) / 16, gemm_rows_range, &gj);
}

typedef struct
{
  const float *w;
  gsize plane;
  float *u;
} WinoWeightsJob;

/* units: (output, input) channel pairs */
static void
wino_weights_range (gpointer data, gsize begin, gsize end,
                    gint part G_GNUC_UNUSED)
{
  const WinoWeightsJob *j = data;
  gsize plane = j->plane;

  for (gsize oc = begin; oc < end; oc++)
    {
      const float *g = j->w + oc * 9;
      float t[4][3], r[4][4];

      /* G g: rows g0, (g0 + g1 + g2)/2, (g0 − g1 + g2)/2, g2 */
      for (gint k = 0; k < 3; k++)
        {
          float g0 = g[k], g1 = g[3 + k], g2 = g[6 + k];

          t[0][k] = g0;
          t[1][k] = 0.5f * (g0 + g1 + g2);
          t[2][k] = 0.5f * (g0 - g1 + g2);
          t[3][k] = g2;
        }
      /* (G g) Gᵀ */
      for (gint i = 0; i < 4; i++)
        {
          r[i][0] = t[i][0];
          r[i][1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
          r[i][2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
          r[i][3] = t[i][2];
        }
      for (gint i = 0; i < 4; i++)
        for (gint k = 0; k < 4; k++)
          j->u[(gsize) (i * 4 + k) * plane + oc] = r[i][k];
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

typedef struct
{
  const float *x;
  gint batch, height, width;
  gsize tiles;
  float *v;
  gint c_in;
} WinoInJob;

/* One row i of Bᵀ d B for n tiles of a tile row, from zero-padded input
 * rows: with t_k = p[2tx + k] + sign·q[2tx + k] (row i of Bᵀ d), the four
 * outputs are t0 − t2, t1 + t2, t2 − t1, t1 − t3.  Written with two input
 * rows and four outputs per loop, which gcc vectorises. */
static inline void
wino_in_row (const float *restrict p, const float *restrict q, float sign,
             gint n, float *restrict o0, float *restrict o1,
             float *restrict o2, float *restrict o3)
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

#define WINO_SEGMENT 1024   /* tiles per padded row segment */

/* units: input channels */
static void HOT
wino_in_range (gpointer data, gsize begin, gsize end,
              gint part G_GNUC_UNUSED)
{
  const WinoInJob *j = data;
  gint h = j->height, w = j->width, th = (h + 1) / 2, tw = (w + 1) / 2;
  gsize plane = (gsize) j->c_in * j->tiles;
  /* input columns 2tx − 1 .. 2tx + 2 of a segment of tiles, zero-padded */
  float pad[4][2 * WINO_SEGMENT + 2];

  for (gsize c = begin; c < end; c++)
    for (gint b = 0; b < j->batch; b++)
      {
        const float *src = j->x + (c * j->batch + b) * h * w;

        for (gint ty = 0; ty < th; ty++)
          {
            float *o = j->v + c * j->tiles + ((gsize) b * th + ty) * tw;

            for (gint t0 = 0; t0 < tw; t0 += WINO_SEGMENT)
              {
                gint t1 = MIN (tw, t0 + WINO_SEGMENT);
                gint x0 = 2 * t0 - 1, len = 2 * (t1 - t0) + 2;
                gint lo = MAX (0, -x0), hi = MIN (len, w - x0);

                for (gint i = 0; i < 4; i++)
                  {
                    gint yy = 2 * ty - 1 + i;

                    if (yy < 0 || yy >= h || hi <= lo)
                      {
                        zero_f (pad[i], len);
                        continue;
                      }
                    /* lo <= 1 and len − hi <= 2: set those few by hand
                     * rather than with calls */
                    if (lo)
                      pad[i][0] = 0.0f;
                    copy_f (pad[i] + lo, src + (gsize) yy * w + x0 + lo,
                            hi - lo);
                    if (hi < len)
                      pad[i][hi] = 0.0f;
                    if (hi + 1 < len)
                      pad[i][hi + 1] = 0.0f;
                  }
                /* rows of Bᵀ d: d0 − d2, d1 + d2, d2 − d1, d1 − d3 */
                wino_in_row (pad[0], pad[2], -1.0f, t1 - t0, o + t0,
                             o + plane + t0, o + 2 * plane + t0,
                             o + 3 * plane + t0);
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
}

typedef struct
{
  const float *m;
  gint batch, height, width, c_out;
  gsize tiles;
  const float *bias, *bias2;
  gsize b2_stride;
  gboolean accumulate;
  float *out;
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
wino_out_range (gpointer data, gsize begin, gsize end,
              gint part G_GNUC_UNUSED)
{
  const WinoOutJob *j = data;
  gint h = j->height, w = j->width, th = (h + 1) / 2, tw = (w + 1) / 2;
  gsize plane = (gsize) j->c_out * j->tiles;
  gint tw_full = w / 2;     /* tiles whose two output columns are inside */

  for (gsize o = begin; o < end; o++)
    for (gint b = 0; b < j->batch; b++)
      {
        float *dst = j->out + (o * j->batch + b) * h * w;
        float bv = (j->bias ? j->bias[o] : 0.0f)
                   + (j->bias2 ? j->bias2[b * j->b2_stride + o] : 0.0f);

        for (gint ty = 0; ty < th; ty++)
          {
            const float *p = j->m + o * j->tiles + ((gsize) b * th + ty) * tw;
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
                wino_out_row (m[0], m[1], m[2], 1.0f, tw_full, bv,
                              j->accumulate, y0);
                wino_out_row (m[1], m[2], m[3], -1.0f, tw_full, bv,
                              j->accumulate, y1);
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
wino_gemm_range (gpointer data, gsize begin, gsize end,
                 gint part G_GNUC_UNUSED)
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
                           gint batch, gint height, gint width,
                           const float *u, const float *bias,
                           const float *bias2, gsize b2_stride, gint c_out,
                           gboolean accumulate, float *v, float *m, float *out)
{
  gsize tiles = diffuse__winograd_tiles (batch, height, width);
  WinoInJob in = { x, batch, height, width, tiles, v, c_in };
  WinoOutJob oj = { m, batch, height, width, c_out, tiles, bias, bias2,
                    b2_stride, accumulate, out };

  WinoGemmJob gj = { c_in, c_out, tiles, u, v, m };

  diffuse__pool_run (pool, c_in, wino_in_range, &in);
  diffuse__pool_run (pool, 16, wino_gemm_range, &gj);
  diffuse__pool_run (pool, c_out, wino_out_range, &oj);
}

typedef struct
{
  const float *x;
  gint height, width;
  float *out;
} PlaneJob;

/* units: [C·B] planes */
static void
upsample_range (gpointer data, gsize begin, gsize end,
              gint part G_GNUC_UNUSED)
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
avgpool_range (gpointer data, gsize begin, gsize end,
              gint part G_GNUC_UNUSED)
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
            dst[(gsize) y * wo + i] = 0.25f * ((s0[2 * i] + s0[2 * i + 1])
                                               + (s1[2 * i] + s1[2 * i + 1]));
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

/* Row-wise exp (s − max) of an [rows, n] matrix in place, and 1 / Σ of
 * each row into inv_sum: the normalisation is applied to the (smaller)
 * attention output instead of the scores. */
static void HOT
softmax_rows (float *s, gsize rows, gsize n, float *inv_sum)
{
  for (gsize r = 0; r < rows; r++)
    {
      float *row = s + r * n;
      float m = row[0];
      float acc[16] = { 0 };
      double sum = 0.0;
      gsize i = 0;

      for (gsize c = 1; c < n; c++)
        m = row[c] > m ? row[c] : m;
      for (; i + 16 <= n; i += 16)
        for (gint l = 0; l < 16; l++)
          {
            float e = fast_expf (row[i + l] - m);

            row[i + l] = e;
            acc[l] += e;
          }
      for (; i < n; i++)
        {
          row[i] = fast_expf (row[i] - m);
          sum += row[i];
        }
      for (gint l = 0; l < 16; l++)
        sum += acc[l];
      inv_sum[r] = (float) (1.0 / sum);
    }
}

gsize
diffuse__attention_scratch (gsize t, gint n_threads)
{
  gsize tq = MIN (t, DIFFUSE_ATTENTION_BLOCK);

  return (tq * t + tq) * (gsize) MAX (n_threads, 1);
}

typedef struct
{
  const float *qkv;
  gint channels, batch, heads, ch;
  gsize t, tq, n_qb;
  gboolean legacy_order;
  float alpha;
  float *scratch, *out;
} AttentionJob;

/* units: (b, head, query block) triples; each has its own output columns */
static void
attention_range (gpointer data, gsize begin, gsize end, gint part)
{
  const AttentionJob *j = data;
  gsize t = j->t, tq = j->tq, ld = (gsize) j->batch * t;
  gint ch = j->ch;
  float *scores = j->scratch + (gsize) part * (tq * t + tq);
  float *inv_sum = scores + tq * t;

  for (gsize u = begin; u < end; u++)
    {
      gsize qb = u % j->n_qb;
      gint h = (gint) (u / j->n_qb % j->heads);
      gint b = (gint) (u / j->n_qb / j->heads);
      gsize rq = j->legacy_order ? (gsize) h * 3 * ch : (gsize) h * ch;
      gsize rk = j->legacy_order ? rq + ch : rq + j->channels;
      gsize rv = j->legacy_order ? rq + 2 * ch : rq + 2 * (gsize) j->channels;
      const float *q = j->qkv + rq * ld + b * t;
      const float *k = j->qkv + rk * ld + b * t;
      const float *v = j->qkv + rv * ld + b * t;
      float *o = j->out + (gsize) h * ch * ld + b * t;
      gsize q0 = qb * tq, nq = MIN (tq, t - q0);

      /* scores[i, s] = α Σ_c q[c, q0 + i] k[c, s] */
      cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, (gint) nq, (gint) t,
                   ch, j->alpha, q + q0, (gint) ld, k, (gint) ld, 0.0f, scores,
                   (gint) t);
      softmax_rows (scores, nq, t, inv_sum);
      /* o[c, q0 + i] = Σ_s v[c, s] scores[i, s] / Σ_s scores[i, s] */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, ch, (gint) nq,
                   (gint) t, 1.0f, v, (gint) ld, scores, (gint) t, 0.0f, o + q0,
                   (gint) ld);
      for (gint c = 0; c < ch; c++)
        {
          float *oc = o + (gsize) c * ld + q0;

          for (gsize i = 0; i < nq; i++)
            oc[i] *= inv_sum[i];
        }
    }
}

void
diffuse__attention (DiffusePool *pool, const float *qkv, gint channels,
                    gint batch, gsize t, gint heads, gboolean legacy_order,
                    float *scratch, float *out)
{
  gsize tq = MIN (t, DIFFUSE_ATTENTION_BLOCK);
  /* guided-diffusion scales q and k by ch^(−1/4) each; one 1/√ch on the
   * product is the same up to rounding */
  AttentionJob j = { qkv, channels, batch, heads, channels / heads, t, tq,
                     (t + tq - 1) / tq, legacy_order,
                     (float) (1.0 / sqrt ((double) (channels / heads))),
                     scratch, out };

  diffuse__pool_run (pool, (gsize) batch * heads * j.n_qb, attention_range, &j);
}

typedef struct
{
  const float *x;
  gint batch, channels;
  gsize hw;
  gboolean to_cbhw;
  float *out;
} TransposeJob;

/* units: (b, c) planes in NCHW order */
static void
transpose_range (gpointer data, gsize begin, gsize end,
              gint part G_GNUC_UNUSED)
{
  const TransposeJob *j = data;

  for (gsize u = begin; u < end; u++)
    {
      gsize b = u / j->channels, c = u % j->channels;
      gsize nchw = (b * j->channels + c) * j->hw, cbhw = (c * j->batch + b) * j->hw;

      if (j->to_cbhw)
        memcpy (j->out + cbhw, j->x + nchw, sizeof (float) * j->hw);
      else
        memcpy (j->out + nchw, j->x + cbhw, sizeof (float) * j->hw);
    }
}

void
diffuse__nchw_to_cbhw (DiffusePool *pool, const float *x, gint batch,
                       gint channels, gsize hw, float *out)
{
  TransposeJob j = { x, batch, channels, hw, TRUE, out };

  diffuse__pool_run (pool, (gsize) batch * channels, transpose_range, &j);
}

void
diffuse__cbhw_to_nchw (DiffusePool *pool, const float *x, gint batch,
                       gint channels, gsize hw, float *out)
{
  TransposeJob j = { x, batch, channels, hw, FALSE, out };

  diffuse__pool_run (pool, (gsize) batch * channels, transpose_range, &j);
}
