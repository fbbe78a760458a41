/* [B, C, HW] <-> [C, B, HW] activation layout transposes; see layers.h. */
#include "layers.h"
#include "kernel-inline.h"

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
transpose_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const TransposeJob *j = data;

  for (gsize u = begin; u < end; u++)
    {
      gsize b = u / j->channels, c = u % j->channels;
      gsize nchw = (b * j->channels + c) * j->hw,
            cbhw = (c * j->batch + b) * j->hw;

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
