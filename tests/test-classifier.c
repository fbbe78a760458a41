/* The classifier (engine/classifier.c): logits and ∇x log softmax(logits)[y]
 * against PyTorch autograd in float64 for every
 * tests/data/golden/clf-CASE.safetensors (tools/make_classifier_golden.py:
 * grey/RGB/RGBA, attention and adaptive pools, scale-shift on/off,
 * down-ResBlocks and stride-2 convs, 2 and 3 levels); the gradient against
 * central finite differences of the engine's own forward pass (log-softmax
 * in double); 1 and 3 threads give the same result; bad input (a UNet as
 * classifier and the reverse, labels out of range, a size the attention
 * pool cannot take, a wrong batch) is refused with a clear error.
 * In bf16 (diffuse_classifier_set_precision; oneDNN, and emulated) the
 * logits are within 2e-2 of the largest, the gradient (fp32 backward
 * through the bf16 pass's activations) within 1e-1. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "diffuse-private.h"

#define TOL_LOGITS 1e-4
#define TOL_GRAD 2e-4
#define TOL_FD 2e-3
#define TOL_BF16 2e-2
#define TOL_BF16_GRAD 1e-1

static const char *cases[] = {
  "grey-attn-ss-updown",
  "rgb-adaptive-noss-conv",
  "rgba-attn-noss-updown",
  "rgb-adaptive-ss-conv",
};

static float *
load (const char *dir, const char *name, const char *suffix, gint *ndim,
      gint64 shape[4])
{
  g_autofree gchar *path =
      g_strdup_printf ("%s/clf-%s.%s.npy", dir, name, suffix);
  g_autoptr (GError) error = NULL;
  float *d = diffuse_npy_load (path, ndim, shape, &error);

  if (d == NULL)
    g_printerr ("  %s\n", error->message);
  return d;
}

/* max |a − b| / max (1e-3, max |b|) */
static double
rel_diff (const float *a, const float *b, gsize n)
{
  double m = 0.0, s = 1e-3;

  for (gsize i = 0; i < n; i++)
    {
      m = MAX (m, fabs ((double) a[i] - b[i]));
      s = MAX (s, fabs ((double) b[i]));
    }
  return m / s;
}

static double
log_prob (DiffuseClassifier *clf, gint K, const float *x, const float *t,
          gint y, float *logits)
{
  double m, sum = 0.0;

  g_assert_true (diffuse_classifier_forward (clf, 1, x, t, logits, NULL));
  m = logits[0];
  for (gint k = 1; k < K; k++)
    m = MAX (m, logits[k]);
  for (gint k = 0; k < K; k++)
    sum += exp ((double) logits[k] - m);
  return (double) logits[y] - m - log (sum);
}

/* Directional derivative along ±1 directions vs the central difference
 * with step h (float32 forward, differences of log-probabilities in
 * double), for the first image of the batch. */
static gboolean
check_finite_differences (DiffuseClassifier *clf, gint K, gsize n,
                          const float *x, const float *t, gint y,
                          const float *grad)
{
  float *xp = g_new (float, n), *logits = g_new (float, K);
  gboolean ok = TRUE;
  guint32 state = 12345;

  for (gint trial = 0; trial < 3; trial++)
    {
      double h = 2e-3, dot = 0.0, fp, fm, fd;
      float *dir = g_new (float, n);

      for (gsize i = 0; i < n; i++)
        {
          state = state * 1664525u + 1013904223u;
          /* trial 0: every pixel; then a sparse direction */
          dir[i] = (trial == 0 || (state >> 28) == 0)
                       ? ((state >> 16) & 1 ? 1.0f : -1.0f)
                       : 0.0f;
          dot += (double) grad[i] * dir[i];
        }
      for (gsize i = 0; i < n; i++)
        xp[i] = x[i] + (float) h * dir[i];
      fp = log_prob (clf, K, xp, t, y, logits);
      for (gsize i = 0; i < n; i++)
        xp[i] = x[i] - (float) h * dir[i];
      fm = log_prob (clf, K, xp, t, y, logits);
      /* the perturbation actually applied, in float */
      fd = (fp - fm) / (2.0 * h);
      printf ("    finite differences %d: g·v %.6g, (f(x+hv) − f(x−hv))/2h "
              "%.6g\n",
              trial, dot, fd);
      if (!(fabs (fd - dot) <= TOL_FD * MAX (fabs (dot), 1e-2) + 2e-5))
        {
          printf ("    FAIL: finite differences disagree\n");
          ok = FALSE;
        }
      g_free (dir);
    }
  g_free (xp);
  g_free (logits);
  return ok;
}

static gboolean
check_bad_input (DiffuseClassifier *clf, const DiffuseModel *model,
                 const float *x, const float *t, float *logits, float *grad)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);
  g_autoptr (GError) error = NULL;
  gint bad[1] = { cfg->num_classes };
  gboolean ok = TRUE;

  if (diffuse_classifier_grad (clf, 1, x, t, bad, logits, grad, &error) ||
      !g_error_matches (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID) ||
      strstr (error->message, "classes") == NULL)
    ok = FALSE;
  else
    printf ("    label %d: %s\n", bad[0], error->message);
  g_clear_error (&error);
  bad[0] = -1;
  if (diffuse_classifier_grad (clf, 1, x, t, bad, logits, grad, &error))
    ok = FALSE;
  g_clear_error (&error);
  if (diffuse_classifier_forward (clf, 0, x, t, logits, &error))
    ok = FALSE;
  g_clear_error (&error);
  {
    /* a classifier is not a UNet */
    g_autoptr (DiffuseUNet) u = diffuse_unet_new (model, 1, cfg->image_size,
                                                  cfg->image_size, 0, &error);

    if (u != NULL || error == NULL)
      ok = FALSE;
    else
      printf ("    as a UNet: %s\n", error->message);
    g_clear_error (&error);
  }
  if (cfg->pool == DIFFUSE_POOL_ATTENTION)
    {
      g_autoptr (DiffuseClassifier) c2 = diffuse_classifier_new (
          model, 1, cfg->image_size, 2 * cfg->image_size, 0, &error);

      if (c2 != NULL ||
          !g_error_matches (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID))
        ok = FALSE;
      else
        printf ("    other size: %s\n", error->message);
      g_clear_error (&error);
    }
  if (!ok)
    printf ("    FAIL: bad input accepted\n");
  return ok;
}

static gboolean
run_case (const char *dir, const char *name)
{
  g_autofree gchar *path = g_strdup_printf ("%s/clf-%s.safetensors", dir, name);
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  g_autofree float *x = NULL, *t = NULL, *yf = NULL, *want_l = NULL,
                   *want_g = NULL;
  g_autofree float *logits = NULL, *grad = NULL, *logits2 = NULL, *grad2 = NULL;
  g_autofree gint *y = NULL;
  gint nd, B, K, C, H, W;
  gint64 sx[4], s[4];
  gsize n;
  double dl, dg, dl2, dg2;
  gboolean ok = TRUE;
  const DiffuseModelConfig *cfg;

  printf ("clf-%s\n", name);
  model = diffuse_model_new_from_file (path, &error);
  if (model == NULL)
    {
      printf ("  FAIL: %s\n", error->message);
      return FALSE;
    }
  cfg = diffuse_model_get_config (model);
  g_assert_cmpint (cfg->model_type, ==, DIFFUSE_MODEL_CLASSIFIER);
  x = load (dir, name, "x", &nd, sx);
  t = load (dir, name, "t", &nd, s);
  yf = load (dir, name, "y", &nd, s);
  want_l = load (dir, name, "logits", &nd, s);
  want_g = load (dir, name, "grad", &nd, s);
  if (!x || !t || !yf || !want_l || !want_g)
    return FALSE;
  B = (gint) sx[0];
  C = (gint) sx[1];
  H = (gint) sx[2];
  W = (gint) sx[3];
  K = cfg->num_classes;
  g_assert_cmpint (C, ==, cfg->in_channels);
  n = (gsize) C * H * W;
  y = g_new (gint, B);
  for (gint b = 0; b < B; b++)
    y[b] = (gint) yf[b];
  logits = g_new (float, (gsize) B *K);
  logits2 = g_new (float, (gsize) B *K);
  grad = g_new (float, B *n);
  grad2 = g_new (float, B *n);

  for (gint threads = 1; threads <= 3; threads += 2)
    {
      g_autoptr (DiffuseClassifier) clf = NULL;

      clf = diffuse_classifier_new (model, B, H, W, threads, &error);
      if (clf == NULL)
        {
          printf ("  FAIL: %s\n", error->message);
          return FALSE;
        }
      g_assert_true (diffuse_classifier_forward (clf, B, x, t, logits2, NULL));
      g_assert_true (diffuse_classifier_grad (
          clf, B, x, t, y, threads == 1 ? logits : logits2,
          threads == 1 ? grad : grad2, NULL));
      if (threads == 1)
        {
          dl = rel_diff (logits, want_l, (gsize) B * K);
          dg = rel_diff (grad, want_g, B * n);
          printf ("  logits[0] %.6f (want %.6f), grad[0] %.6g (want %.6g)\n",
                  logits[0], want_l[0], grad[0], want_g[0]);
          printf ("  1 thread: logits rel. diff %.3g, gradient rel. diff %.3g; "
                  "%.2f MiB of activations and scratch\n",
                  dl, dg,
                  diffuse_classifier_get_scratch_bytes (clf) / 1048576.0);
          if (dl > TOL_LOGITS || dg > TOL_GRAD)
            {
              printf ("  FAIL: differs from PyTorch\n");
              ok = FALSE;
            }
          ok &= check_finite_differences (clf, K, n, x, t, y[0], grad);
          ok &= check_bad_input (clf, model, x, t, logits2, grad2);
        }
      else
        {
          dl2 = rel_diff (logits2, logits, (gsize) B * K);
          dg2 = rel_diff (grad2, grad, B * n);
          printf ("  3 threads vs 1: %.3g / %.3g\n", dl2, dg2);
          if (dl2 > 1e-5 || dg2 > 1e-5)
            {
              printf ("  FAIL: threads change the result\n");
              ok = FALSE;
            }
        }
    }
  for (gint emulated = 0; emulated <= 1; emulated++)
    {
      g_autoptr (DiffuseClassifier) clf =
          diffuse_classifier_new (model, B, H, W, 2, &error);

      if (clf == NULL || !diffuse_classifier_set_precision (
                             clf, DIFFUSE_PRECISION_BF16, &error))
        {
          printf ("  FAIL: %s\n", error->message);
          return FALSE;
        }
      if (emulated)
        diffuse__classifier_emulate_bf16 (clf);
      g_assert_true (
          diffuse_classifier_grad (clf, B, x, t, y, logits2, grad2, NULL));
      dl2 = rel_diff (logits2, want_l, (gsize) B * K);
      dg2 = rel_diff (grad2, want_g, B * n);
      printf ("  bf16%s: logits rel. diff %.3g, gradient rel. diff %.3g "
              "(tolerance %.0e, %.0e)\n",
              emulated ? " emulated" : "", dl2, dg2, TOL_BF16, TOL_BF16_GRAD);
      if (!(dl2 <= TOL_BF16 && dg2 <= TOL_BF16_GRAD))
        {
          printf ("  FAIL: bf16 too far from PyTorch\n");
          ok = FALSE;
        }
    }
  return ok;
}

/* A UNet file is refused as a classifier. */
static gboolean
check_unet_refused (const char *dir)
{
  g_autofree gchar *path =
      g_strdup_printf ("%s/forward-grey-cond.safetensors", dir);
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = diffuse_model_new_from_file (path, &error);
  g_autoptr (DiffuseClassifier) clf = NULL;

  if (model == NULL)
    {
      printf ("FAIL: %s\n", error->message);
      return FALSE;
    }
  clf = diffuse_classifier_new (model, 1, 16, 16, 0, &error);
  if (clf != NULL ||
      !g_error_matches (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID))
    {
      printf ("FAIL: a UNet was accepted as a classifier\n");
      return FALSE;
    }
  printf ("UNet as classifier: %s\n", error->message);
  return TRUE;
}

int
main (void)
{
  const char *data = g_getenv ("DIFFUSE_TEST_DATA");
  g_autofree gchar *dir =
      g_build_filename (data ? data : "tests/data", "golden", NULL);
  gboolean ok = TRUE;

  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    ok &= run_case (dir, cases[i]);
  ok &= check_unet_refused (dir);
  printf ("%s\n", ok ? "PASS" : "FAIL");
  return ok ? 0 : 1;
}
