/* Multi-head self-attention core: Qᵀ K, row softmax, V · softmax, in query
 * blocks spread over the pool; see layers.h. */
#include <math.h>

#include <cblas.h>

#include "layers.h"
#include "kernel-inline.h"

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
  AttentionJob j = { qkv,
                     channels,
                     batch,
                     heads,
                     channels / heads,
                     t,
                     tq,
                     (t + tq - 1) / tq,
                     legacy_order,
                     (float) (1.0 / sqrt ((double) (channels / heads))),
                     scratch,
                     out };

  diffuse__pool_run (pool, (gsize) batch * heads * j.n_qb, attention_range, &j);
}
