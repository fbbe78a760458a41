/* The UNet forward pass against PyTorch: for every
 * tests/data/golden/forward-CASE.safetensors (made by tools/make_golden.py
 * from tools/diffref/adm_unet.py), run diffuse_unet_forward on the saved x, t, y
 * and compare with the saved output, printing the first values and the
 * largest difference (docs/DESIGN.md, "Golden test data").  Each case runs
 * with 1 and 3 threads, and twice on the same state (which must give the
 * same bits).
 *
 *   test-golden-forward [fp32 | bf16 | bf16-emulated]
 *
 * fp32 (the default): within 1e-4 of the largest output (or of 1).
 * bf16: diffuse_unet_set_precision (BF16), within 2e-2 of the largest
 * output; bf16-emulated: the same through the fp32-emulated bf16 path
 * (conv-bf16.h), which every build has.
 *
 * DIFFUSE_GOLDEN_DIR overrides the directory (for ad-hoc exports). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "diffuse-private.h"

#define TOLERANCE_FP32 1e-4
#define TOLERANCE_BF16 2e-2

/* from the command line */
static DiffusePrecision precision = DIFFUSE_PRECISION_FP32;
static gboolean emulate;
static double tolerance = TOLERANCE_FP32;

static float *
load_npy (const char *dir, const char *name, const char *suffix, gint *ndim,
          gint64 shape[4])
{
  g_autofree gchar *path =
      g_strdup_printf ("%s/forward-%s.%s.npy", dir, name, suffix);
  g_autoptr (GError) error = NULL;
  float *data = diffuse_npy_load (path, ndim, shape, &error);

  if (data == NULL)
    g_printerr ("  %s\n", error->message);
  return data;
}

/* Bad calls fail with DIFFUSE_ERROR_INVALID and leave out alone. */
static gboolean
check_bad_input (DiffuseUNet *unet, const DiffuseModel *model, gint batch,
                 const float *x, const float *t, gint *labels, float *out)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);
  gboolean ok = TRUE;
  GError *error = NULL;
  gint saved = labels[0];

  if (diffuse_unet_forward (unet, batch + 1, x, t, labels, out, &error) ||
      !g_error_matches (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID))
    ok = FALSE;
  g_clear_error (&error);
  if (diffuse_unet_forward (unet, 0, x, t, labels, out, &error) ||
      !g_error_matches (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID))
    ok = FALSE;
  g_clear_error (&error);
  if (cfg->num_classes > 0)
    {
      labels[0] = cfg->num_classes;
      if (diffuse_unet_forward (unet, batch, x, t, labels, out, &error) ||
          !g_error_matches (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID))
        ok = FALSE;
      g_clear_error (&error);
      labels[0] = saved;
    }
  /* 3 rows: not a multiple of 2^(levels − 1) */
  if (cfg->n_levels > 1 &&
      (diffuse_unet_new (model, 1, 3, 8, 0, &error) != NULL ||
       !g_error_matches (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID)))
    ok = FALSE;
  g_clear_error (&error);
  g_print ("  bad batch / label / size rejected: %s\n", ok ? "ok" : "FAIL");
  return ok;
}

/* Returns TRUE when the case passes. */
static gboolean
run_case (const char *dir, const char *name)
{
  g_autofree gchar *model_path =
      g_strdup_printf ("%s/forward-%s.safetensors", dir, name);
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  g_autofree float *x = NULL, *t = NULL, *y = NULL, *want = NULL;
  float *got[2] = { NULL, NULL };
  gboolean ok = TRUE;
  g_autofree gint *labels = NULL;
  gint nd_x, nd_t, nd_y, nd_o;
  gint64 sx[4], st[4], sy[4], so[4];
  const DiffuseModelConfig *cfg;
  gint batch, height, width;
  gsize n_out;

  g_print ("forward-%s\n", name);
  model = diffuse_model_new_from_file (model_path, &error);
  if (model == NULL)
    {
      g_printerr ("  %s\n", error->message);
      return FALSE;
    }
  cfg = diffuse_model_get_config (model);
  x = load_npy (dir, name, "x", &nd_x, sx);
  t = load_npy (dir, name, "t", &nd_t, st);
  y = load_npy (dir, name, "y", &nd_y, sy);
  want = load_npy (dir, name, "out", &nd_o, so);
  if (!x || !t || !y || !want)
    return FALSE;
  if (nd_x != 4 || nd_t != 1 || nd_y != 1 || nd_o != 4 ||
      sx[1] != cfg->in_channels || st[0] != sx[0] || sy[0] != sx[0] ||
      so[0] != sx[0] || so[1] != cfg->out_channels || so[2] != sx[2] ||
      so[3] != sx[3])
    {
      g_printerr ("  inconsistent shapes in the case's .npy files\n");
      return FALSE;
    }
  batch = (gint) sx[0];
  height = (gint) sx[2];
  width = (gint) sx[3];
  labels = g_new (gint, batch);
  for (gint b = 0; b < batch; b++)
    labels[b] = (gint) y[b];

  n_out = (gsize) batch * cfg->out_channels * height * width;
  for (gint k = 0; k < 2; k++)
    {
      gint threads = k == 0 ? 1 : 3;
      g_autoptr (DiffuseUNet) unet = NULL;
      g_autofree float *again = g_new (float, n_out);
      double max_ref = 0.0, max_diff = 0.0, rel;
      gsize worst = 0;
      gint64 t0;

      /* the second state has room for one more image than it runs */
      unet =
          diffuse_unet_new (model, batch + k, height, width, threads, &error);
      if (unet == NULL)
        {
          g_printerr ("  %s\n", error->message);
          return FALSE;
        }
      if (!diffuse_unet_set_precision (unet, precision, &error))
        {
          g_printerr ("  %s\n", error->message);
          return FALSE;
        }
      if (emulate)
        diffuse__unet_emulate_bf16 (unet);
      got[k] = g_new (float, n_out);
      t0 = g_get_monotonic_time ();
      if (!diffuse_unet_forward (unet, batch, x, t, labels, got[k], &error))
        {
          g_printerr ("  %s\n", error->message);
          return FALSE;
        }
      g_print ("  %d thread(s): batch %d, %dx%d, %d -> %d channels, %.1f ms\n",
               threads, batch, width, height, cfg->in_channels,
               cfg->out_channels, (g_get_monotonic_time () - t0) / 1000.0);
      /* a second pass on the same state gives the same bits */
      if (!diffuse_unet_forward (unet, batch, x, t, labels, again, &error))
        {
          g_printerr ("  %s\n", error->message);
          return FALSE;
        }
      if (memcmp (again, got[k], n_out * sizeof (float)) != 0)
        {
          g_print ("  FAIL: a second pass on the same state differs\n");
          ok = FALSE;
        }
      if (k == 0)
        ok = check_bad_input (unet, model, batch, x, t, labels, again) && ok;

      for (gsize i = 0; i < n_out; i++)
        {
          double d = fabs ((double) got[k][i] - want[i]);

          if (!(d <= max_diff)) /* also catches NaN */
            {
              max_diff = isnan (d) ? INFINITY : d;
              worst = i;
            }
          max_ref = MAX (max_ref, fabs (want[i]));
        }
      g_print ("  first values: got ");
      for (gsize i = 0; i < MIN (n_out, 5); i++)
        g_print ("%.6f ", got[k][i]);
      g_print ("\n                want ");
      for (gsize i = 0; i < MIN (n_out, 5); i++)
        g_print ("%.6f ", want[i]);
      /* fp32: relative to 1 for small outputs; bf16: to the largest */
      rel = max_diff / (precision == DIFFUSE_PRECISION_FP32 ? MAX (1.0, max_ref)
                                                            : max_ref);
      g_print ("\n  max |ref| %.4f, largest difference %.3g at %" G_GSIZE_FORMAT
               " (got %.6f, want %.6f), relative %.3g (tolerance %.0e): %s\n",
               max_ref, max_diff, worst, got[k][worst], want[worst], rel,
               tolerance, rel <= tolerance ? "ok" : "FAIL");
      ok = ok && rel <= tolerance;
    }
  {
    double d = 0.0;

    for (gsize i = 0; i < n_out; i++)
      d = MAX (d, fabs ((double) got[0][i] - got[1][i]));
    g_print ("  1 vs 3 threads: largest difference %.3g\n", d);
  }
  if (precision != DIFFUSE_PRECISION_FP32 && ok)
    {
      /* the bf16 states dropped the mapped fp32 weights of the layers
       * they made in bf16 (conv-bf16.h): an fp32 state on the same model
       * reads them back and gives the fp32 result */
      g_autoptr (DiffuseUNet) unet =
          diffuse_unet_new (model, batch, height, width, 1, &error);
      double max_ref = 0.0, max_diff = 0.0;

      g_assert_no_error (error);
      if (!diffuse_unet_set_precision (unet, DIFFUSE_PRECISION_FP32, &error) ||
          !diffuse_unet_forward (unet, batch, x, t, labels, got[0], &error))
        {
          g_printerr ("  %s\n", error->message);
          return FALSE;
        }
      for (gsize i = 0; i < n_out; i++)
        {
          double d = fabs ((double) got[0][i] - want[i]);

          max_diff = d <= max_diff ? max_diff : isnan (d) ? INFINITY : d;
          max_ref = MAX (max_ref, fabs (want[i]));
        }
      g_print ("  fp32 after the bf16 states: relative %.3g (tolerance "
               "%.0e): %s\n",
               max_diff / MAX (1.0, max_ref), TOLERANCE_FP32,
               max_diff / MAX (1.0, max_ref) <= TOLERANCE_FP32 ? "ok" : "FAIL");
      ok = max_diff / MAX (1.0, max_ref) <= TOLERANCE_FP32;
    }
  g_free (got[0]);
  g_free (got[1]);
  return ok;
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

int
main (int argc, char **argv)
{
  const char *env = g_getenv ("DIFFUSE_GOLDEN_DIR");
  const char *data = g_getenv ("DIFFUSE_TEST_DATA");
  g_autofree gchar *dir = NULL;
  g_autoptr (GDir) d = NULL;
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *entry;
  gint failed = 0;

  if (argc > 2 ||
      (argc == 2 && strcmp (argv[1], "fp32") != 0 &&
       strcmp (argv[1], "bf16") != 0 && strcmp (argv[1], "bf16-emulated") != 0))
    {
      g_printerr ("usage: test-golden-forward [fp32 | bf16 | bf16-emulated]\n");
      return 2;
    }
  if (argc == 2 && g_str_has_prefix (argv[1], "bf16"))
    {
      precision = DIFFUSE_PRECISION_BF16;
      tolerance = TOLERANCE_BF16;
      emulate = strcmp (argv[1], "bf16-emulated") == 0;
      g_print ("precision bf16 (%s), tolerance %.0e of the largest output\n",
               emulate || !diffuse_have_onednn () ? "emulated"
               : diffuse_cpu_has_bf16 ()          ? "oneDNN, bf16 instructions"
                                         : "oneDNN, no bf16 instructions",
               tolerance);
    }
  if (env)
    dir = g_strdup (env);
  else
    dir = g_build_filename (data ? data : "tests/data", "golden", NULL);
  d = g_dir_open (dir, 0, NULL);
  if (d)
    while ((entry = g_dir_read_name (d)))
      if (g_str_has_prefix (entry, "forward-") &&
          g_str_has_suffix (entry, ".safetensors"))
        g_ptr_array_add (names,
                         g_strndup (entry + 8, strlen (entry) - 8 -
                                                   strlen (".safetensors")));
  if (names->len == 0)
    {
      g_print ("no forward-*.safetensors in %s\n", dir);
      return 77; /* skipped */
    }
  g_ptr_array_sort (names, compare_names);
  for (guint i = 0; i < names->len; i++)
    failed += !run_case (dir, g_ptr_array_index (names, i));
  g_print ("%u cases, %d failed\n", names->len, failed);
  return failed ? 1 : 0;
}
