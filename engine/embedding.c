/* The timestep-embedding MLP's kernels: the sinusoidal embedding,
 * nn.Linear and SiLU; see layers.h. */
#include <math.h>

#include <cblas.h>

#include "layers.h"
#include "kernel-inline.h"

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
silu_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
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
