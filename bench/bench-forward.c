/* Times diffuse_unet_forward on a model directory written by
 * bench/torch_forward.py make (model.safetensors, x-B.npy, t-B.npy,
 * y-B.npy), so that the engine and torch see the same weights and input.
 *
 *   bench-forward DIR [--batch B] [--threads N] [--repeat R] [--out F.npy]
 *                 [--precision auto|fp32|bf16]
 *
 * Prints best and median seconds over R runs after one warm-up (none
 * when R is 1), GFLOP/s
 * (convolutions, linear layers and attention products, counted as direct
 * convolutions even where Winograd does fewer), the model's load time,
 * the UNet's scratch bytes and the process's peak RSS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "diffuse-private.h"
#include "layers.h"

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

static float *
load (const char *dir, const char *stem, gint batch, gint *ndim,
      gint64 shape[4])
{
  g_autofree gchar *path = g_strdup_printf ("%s/%s-%d.npy", dir, stem, batch);
  g_autoptr (GError) error = NULL;
  float *p = diffuse_npy_load (path, ndim, shape, &error);

  if (p == NULL)
    g_printerr ("bench-forward: %s\n", error->message);
  return p;
}

int
main (int argc, char **argv)
{
  gint batch = 1, threads = 2, repeat = 3;
  const char *out_path = NULL, *dir = NULL;
  DiffusePrecision precision = DIFFUSE_PRECISION_FP32;
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  g_autoptr (DiffuseUNet) unet = NULL;
  g_autofree gchar *model_path = NULL;
  g_autofree float *x = NULL, *t = NULL, *y = NULL, *out = NULL;
  g_autofree gint *labels = NULL;
  g_autofree double *times = NULL;
  const DiffuseModelConfig *cfg;
  gint nd, h, w;
  gint64 sx[4], st[4];
  struct rusage ru;
  guint64 flops;
  gint64 t0;
  double load_s;

  for (gint i = 1; i < argc; i++)
    {
      if (i + 1 < argc && strcmp (argv[i], "--batch") == 0)
        batch = atoi (argv[++i]);
      else if (i + 1 < argc && strcmp (argv[i], "--threads") == 0)
        threads = atoi (argv[++i]);
      else if (i + 1 < argc && strcmp (argv[i], "--repeat") == 0)
        repeat = atoi (argv[++i]);
      else if (i + 1 < argc && strcmp (argv[i], "--out") == 0)
        out_path = argv[++i];
      else if (i + 1 < argc && strcmp (argv[i], "--precision") == 0 &&
               diffuse_precision_from_string (argv[i + 1], &precision))
        i++;
      else if (argv[i][0] != '-' && dir == NULL)
        dir = argv[i];
      else
        {
          g_printerr ("usage: bench-forward DIR [--batch B] [--threads N] "
                      "[--repeat R] [--out F.npy] [--precision P]\n");
          return 2;
        }
    }
  if (dir == NULL || batch < 1 || threads < 1 || repeat < 1)
    {
      g_printerr ("usage: bench-forward DIR [--batch B] [--threads N] "
                  "[--repeat R] [--out F.npy] [--precision P]\n");
      return 2;
    }
  model_path = g_build_filename (dir, "model.safetensors", NULL);
  t0 = g_get_monotonic_time ();
  model = diffuse_model_new_from_file (model_path, &error);
  load_s = (g_get_monotonic_time () - t0) / 1e6;
  if (model == NULL)
    {
      g_printerr ("bench-forward: %s\n", error->message);
      return 1;
    }
  cfg = diffuse_model_get_config (model);
  x = load (dir, "x", batch, &nd, sx);
  t = load (dir, "t", batch, &nd, st);
  y = load (dir, "y", batch, &nd, st);
  if (!x || !t || !y)
    return 1;
  if (sx[0] != batch || sx[1] != cfg->in_channels)
    {
      g_printerr ("bench-forward: x-%d.npy does not match the model\n", batch);
      return 1;
    }
  h = (gint) sx[2];
  w = (gint) sx[3];
  labels = g_new (gint, batch);
  for (gint b = 0; b < batch; b++)
    labels[b] = (gint) y[b];

  unet = diffuse_unet_new (model, batch, h, w, threads, &error);
  if (unet == NULL || !diffuse_unet_set_precision (unet, precision, &error))
    {
      g_printerr ("bench-forward: %s\n", error->message);
      return 1;
    }
  out = g_new (float, (gsize) batch * cfg->out_channels * h * w);
  times = g_new (double, repeat);
  for (gint r = repeat > 1 ? -1 : 0; r < repeat; r++)
    {
      t0 = g_get_monotonic_time ();
      if (!diffuse_unet_forward (unet, batch, x, t, labels, out, &error))
        {
          g_printerr ("bench-forward: %s\n", error->message);
          return 1;
        }
      if (r >= 0)
        times[r] = (g_get_monotonic_time () - t0) / 1e6;
    }
  qsort (times, repeat, sizeof (double), cmp_double);
  flops = diffuse__unet_get_flops (unet, batch);
  getrusage (RUSAGE_SELF, &ru);
  printf ("engine %s batch %d threads %d: best %.4f s median %.4f s (%d runs), "
          "%.1f GFLOP, %.1f GFLOP/s, %.2f M params (load %.2f s), scratch %.1f "
          "MiB, "
          "peak RSS %.1f MiB\n",
          diffuse_precision_to_string (diffuse_unet_get_precision (unet)),
          batch, threads, times[0], times[repeat / 2], repeat, flops / 1e9,
          flops / 1e9 / times[0], diffuse_model_get_n_params (model) / 1e6,
          load_s, diffuse_unet_get_scratch_bytes (unet) / 1048576.0,
          ru.ru_maxrss / 1024.0);
  if (out_path)
    {
      gint64 shape[4] = { batch, cfg->out_channels, h, w };

      if (!diffuse_npy_save (out_path, out, 4, shape, &error))
        {
          g_printerr ("bench-forward: %s\n", error->message);
          return 1;
        }
    }
  return 0;
}
