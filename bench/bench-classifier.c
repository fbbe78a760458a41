/* Times the classifier's forward pass and its gradient ∇x log p(y|x)
 * (diffuse_classifier_forward / _grad) on a classifier file, e.g. those
 * bench/classifier_model.py writes, on a seeded random input.
 *
 *   bench-classifier CLF.safetensors [--batch B] [--threads N] [--repeat R]
 *
 * Prints best and median seconds of each over R runs after a warm-up,
 * their ratio, the forward GFLOP, the state's activation + scratch bytes
 * and the process's peak RSS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "diffuse-private.h"

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;

  return x < y ? -1 : x > y;
}

int
main (int argc, char **argv)
{
  gint batch = 1, threads = 2, repeat = 5;
  const char *path = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  g_autoptr (DiffuseClassifier) clf = NULL;
  const DiffuseModelConfig *cfg;
  g_autofree float *x = NULL, *t = NULL, *logits = NULL, *grad = NULL;
  g_autofree gint *y = NULL;
  g_autofree double *tf = NULL, *tg = NULL;
  struct rusage ru;
  gsize n;

  for (gint i = 1; i < argc; i++)
    {
      if (i + 1 < argc && strcmp (argv[i], "--batch") == 0)
        batch = atoi (argv[++i]);
      else if (i + 1 < argc && strcmp (argv[i], "--threads") == 0)
        threads = atoi (argv[++i]);
      else if (i + 1 < argc && strcmp (argv[i], "--repeat") == 0)
        repeat = atoi (argv[++i]);
      else if (argv[i][0] != '-' && path == NULL)
        path = argv[i];
      else
        path = NULL, i = argc;
    }
  if (path == NULL || batch < 1 || threads < 1 || repeat < 1)
    {
      g_printerr ("usage: bench-classifier CLF.safetensors [--batch B] "
                  "[--threads N] [--repeat R]\n");
      return 2;
    }
  model = diffuse_model_new_from_file (path, &error);
  if (model == NULL)
    {
      g_printerr ("bench-classifier: %s\n", error->message);
      return 1;
    }
  cfg = diffuse_model_get_config (model);
  clf = diffuse_classifier_new (model, batch, cfg->image_size, cfg->image_size,
                                threads, &error);
  if (clf == NULL)
    {
      g_printerr ("bench-classifier: %s\n", error->message);
      return 1;
    }
  n = (gsize) batch * cfg->in_channels * cfg->image_size * cfg->image_size;
  x = g_new (float, n);
  grad = g_new (float, n);
  t = g_new (float, batch);
  y = g_new (gint, batch);
  logits = g_new (float, (gsize) batch * cfg->num_classes);
  diffuse_rng_normal (1, 0, 0, x, n);
  for (gint b = 0; b < batch; b++)
    {
      t[b] = 500.0f;
      y[b] = b % cfg->num_classes;
    }
  tf = g_new (double, repeat);
  tg = g_new (double, repeat);
  diffuse_classifier_grad (clf, batch, x, t, y, logits, grad, NULL);
  for (gint r = 0; r < repeat; r++)
    {
      gint64 t0 = g_get_monotonic_time ();

      diffuse_classifier_forward (clf, batch, x, t, logits, NULL);
      tf[r] = (g_get_monotonic_time () - t0) / 1e6;
      t0 = g_get_monotonic_time ();
      diffuse_classifier_grad (clf, batch, x, t, y, logits, grad, NULL);
      tg[r] = (g_get_monotonic_time () - t0) / 1e6;
    }
  qsort (tf, repeat, sizeof (double), cmp_double);
  qsort (tg, repeat, sizeof (double), cmp_double);
  getrusage (RUSAGE_SELF, &ru);
  printf ("%s: %.1f M parameters, batch %d at %dx%d, %d threads\n", path,
          diffuse_model_get_n_params (model) / 1e6, batch, cfg->image_size,
          cfg->image_size, threads);
  printf ("  forward:  best %.4f s, median %.4f s (%.2f GFLOP)\n", tf[0],
          tf[repeat / 2], diffuse__classifier_get_flops (clf, batch) / 1e9);
  printf ("  gradient: best %.4f s, median %.4f s (forward + backward)\n",
          tg[0], tg[repeat / 2]);
  printf ("  gradient / forward: %.2f (best), %.2f (median)\n", tg[0] / tf[0],
          tg[repeat / 2] / tf[repeat / 2]);
  printf ("  activations + scratch %.1f MiB; peak RSS %.1f MiB\n",
          diffuse_classifier_get_scratch_bytes (clf) / 1048576.0,
          ru.ru_maxrss / 1024.0);
  return 0;
}
