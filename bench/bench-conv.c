/* Times one 3×3 stride-1 convolution three ways: im2col + GEMM,
 * Winograd F(2×2, 3×3) and F(4×4, 3×3), on the engine's thread pool
 * (OpenBLAS single-threaded per pool thread, as in the forward pass).
 *
 *   bench-conv [--threads N] [--repeat R] [CIN COUT SIDE BATCH]...
 *
 * Without shapes it runs the ResBlock shapes of bench/README.md's
 * ImageNet-64 and 32 px models at batch 2.  Prints the best time of R
 * runs of each and the ratios; unet-weights.c's choice per layer is
 * based on these figures. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "layers.h"

static double
best_of (gint repeat, gint which, DiffusePool *pool, const float *x, gint ci,
         gint co, gint side, gint batch, const float *w, const float *u2,
         const float *u4, float *col, float *v, float *m, float *out)
{
  double best = 1e30;

  for (gint r = -1; r < repeat; r++)
    {
      gint64 t0 = g_get_monotonic_time ();
      double s;

      if (which == 3)
        diffuse__winograd_weights (pool, w, co, ci, (float *) u2);
      else if (which == 4)
        diffuse__winograd43_weights (pool, w, co, ci, (float *) u4);
      else if (which == 0)
        diffuse__conv2d (pool, x, ci, batch, side, side, w, NULL, NULL, 0, co,
                         3, 1, FALSE, col, out);
      else if (which == 1)
        diffuse__conv3x3_winograd (pool, x, ci, batch, side, side, u2, NULL,
                                   NULL, 0, co, FALSE, v, m, out);
      else
        diffuse__conv3x3_winograd43 (pool, x, ci, batch, side, side, u4, NULL,
                                     NULL, 0, co, FALSE, v, m, out);
      s = (g_get_monotonic_time () - t0) / 1e6;
      if (r >= 0 && s < best)
        best = s;
    }
  return best;
}

int
main (int argc, char **argv)
{
  static const gint defaults[][4] = {
    { 192, 192, 64, 2 }, { 384, 192, 64, 2 }, { 384, 384, 32, 2 },
    { 768, 384, 32, 2 }, { 576, 576, 16, 2 }, { 1152, 576, 16, 2 },
    { 768, 768, 8, 2 },  { 1536, 768, 8, 2 }, { 64, 64, 32, 2 },
    { 128, 128, 16, 2 }, { 128, 128, 8, 2 },
  };
  gint threads = 2, repeat = 5, n_shapes = 0;
  gint (*shapes)[4] =
      g_malloc (sizeof (gint[4]) * (argc / 4 + G_N_ELEMENTS (defaults)));
  DiffusePool *pool;

  for (gint i = 1; i < argc; i++)
    {
      if (i + 1 < argc && strcmp (argv[i], "--threads") == 0)
        threads = atoi (argv[++i]);
      else if (i + 1 < argc && strcmp (argv[i], "--repeat") == 0)
        repeat = atoi (argv[++i]);
      else if (i + 3 < argc)
        {
          for (gint k = 0; k < 4; k++)
            shapes[n_shapes][k] = atoi (argv[i + k]);
          n_shapes++;
          i += 3;
        }
      else
        {
          g_printerr ("usage: bench-conv [--threads N] [--repeat R] "
                      "[CIN COUT SIDE BATCH]...\n");
          return 2;
        }
    }
  if (n_shapes == 0)
    {
      memcpy (shapes, defaults, sizeof defaults);
      n_shapes = G_N_ELEMENTS (defaults);
    }
  openblas_set_num_threads (1);
  pool = diffuse__pool_new (threads);
  printf ("threads %d, best of %d\n", threads, repeat);
  printf ("%5s %5s %4s %2s  %9s %9s %9s  %6s %6s  %8s %8s\n", "cin", "cout",
          "side", "B", "im2col", "F(2,3)", "F(4,3)", "i/F2", "F2/F4", "u2",
          "u4");
  for (gint s = 0; s < n_shapes; s++)
    {
      gint ci = shapes[s][0], co = shapes[s][1], side = shapes[s][2],
           batch = shapes[s][3];
      gsize n_in = (gsize) ci * batch * side * side;
      gsize t2 = diffuse__winograd_tiles (batch, side, side);
      gsize t4 = diffuse__winograd43_tiles (batch, side, side);
      gsize nv = MAX (16 * t2, 36 * t4) * MAX (ci, co);
      float *x = g_new (float, n_in), *w = g_new (float, (gsize) co *ci * 9);
      float *u2 = g_new (float, (gsize) 16 * co * ci);
      float *u4 = g_new (float, (gsize) 36 * co * ci);
      float *col = g_new (float, n_in * 9), *v = g_new (float, nv);
      float *m = g_new (float, nv);
      float *out = g_new (float, (gsize) co *batch *side *side);
      double t[5];

      for (gsize i = 0; i < n_in; i++)
        x[i] = (float) ((i * 2654435761u) % 1000) / 500.0f - 1.0f;
      for (gsize i = 0; i < (gsize) co * ci * 9; i++)
        w[i] = (float) ((i * 40503u) % 1000) / 50000.0f - 0.01f;
      diffuse__winograd_weights (pool, w, co, ci, u2);
      diffuse__winograd43_weights (pool, w, co, ci, u4);
      for (gint k = 0; k < 5; k++)
        t[k] = best_of (repeat, k, pool, x, ci, co, side, batch, w, u2, u4, col,
                        v, m, out);
      printf ("%5d %5d %4d %2d  %7.2fms %7.2fms %7.2fms  %6.2f %6.2f  "
              "%6.2fms %6.2fms\n",
              ci, co, side, batch, t[0] * 1e3, t[1] * 1e3, t[2] * 1e3,
              t[0] / t[1], t[1] / t[2], t[3] * 1e3, t[4] * 1e3);
      g_free (x), g_free (w), g_free (u2), g_free (u4), g_free (col);
      g_free (v), g_free (m), g_free (out);
    }
  diffuse__pool_free (pool);
  g_free (shapes);
  return 0;
}
