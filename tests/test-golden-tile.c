/* Seamless tiles against PyTorch: the UNet with circular padding in x, y
 * or both (diffuse_unet_set_tile) on three golden models, compared with
 * tests/data/golden/tile-CASE-MODE.out.npy (tools/make_tile_golden.py:
 * tools/diffref/adm_unet.py's set_tile, torch's padding_mode='circular').
 * The cases cover convolution down/upsampling, ResBlock up/down and a
 * non-square input; each runs with 1 thread (im2col split by columns) and
 * 3 (split by weight rows at the deep levels); tests/meson.build runs it
 * with each 3×3 form forced (DIFFUSE_CONV3X3 = im2col, f2, f4).  Setting
 * the tile back to NONE gives the plain forward pass again. */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"

#define TOLERANCE 1e-4

static const char *const cases[] = { "grey-cond", "rgba-sigma", "nonsquare" };
static const char *const modes[] = { "x", "y", "both" };
static const DiffuseTileMode tiles[] = { DIFFUSE_TILE_X, DIFFUSE_TILE_Y,
                                         DIFFUSE_TILE_BOTH };

static float *
load (const char *dir, const char *file, gint64 shape[4])
{
  g_autofree gchar *path = g_build_filename (dir, file, NULL);
  g_autoptr (GError) error = NULL;
  gint ndim;
  float *data = diffuse_npy_load (path, &ndim, shape, &error);

  g_assert_no_error (error);
  return data;
}

static double
rel_diff (const float *a, const float *b, gsize n)
{
  double max_diff = 0.0, max_ref = 1.0;

  for (gsize i = 0; i < n; i++)
    {
      max_diff = MAX (max_diff, fabs ((double) a[i] - b[i]));
      max_ref = MAX (max_ref, fabs ((double) b[i]));
    }
  return max_diff / max_ref;
}

static void
test_case (gconstpointer data)
{
  const char *name = data;
  const char *dir = g_getenv ("DIFFUSE_TEST_DATA");
  g_autofree gchar *golden = g_build_filename (dir, "golden", NULL);
  g_autofree gchar *model_file =
      g_strdup_printf ("forward-%s.safetensors", name);
  g_autofree gchar *model_path = g_build_filename (golden, model_file, NULL);
  g_autofree gchar *xf = g_strdup_printf ("forward-%s.x.npy", name);
  g_autofree gchar *tf = g_strdup_printf ("forward-%s.t.npy", name);
  g_autofree gchar *yf = g_strdup_printf ("forward-%s.y.npy", name);
  g_autofree gchar *of = g_strdup_printf ("forward-%s.out.npy", name);
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model =
      diffuse_model_new_from_file (model_path, &error);
  gint64 sx[4], st[4], sy[4], so[4];
  g_autofree float *x = load (golden, xf, sx);
  g_autofree float *t = load (golden, tf, st);
  g_autofree float *y = load (golden, yf, sy);
  g_autofree float *plain = load (golden, of, so);
  gint batch = (gint) sx[0], height = (gint) sx[2], width = (gint) sx[3];
  gsize n = (gsize) so[0] * so[1] * so[2] * so[3];
  g_autofree float *got = g_new (float, n);
  gint labels[8];

  g_assert_no_error (error);
  for (gint b = 0; b < batch; b++)
    labels[b] = (gint) y[b];
  for (gint threads = 1; threads <= 3; threads += 2)
    {
      g_autoptr (DiffuseUNet) unet =
          diffuse_unet_new (model, batch, height, width, threads, &error);

      g_assert_no_error (error);
      for (guint m = 0; m < G_N_ELEMENTS (modes); m++)
        {
          g_autofree gchar *file =
              g_strdup_printf ("tile-%s-%s.out.npy", name, modes[m]);
          gint64 sw[4];
          g_autofree float *want = load (golden, file, sw);
          double err, moved;

          g_assert_cmpmem (sw, sizeof sw, so, sizeof so);
          diffuse_unet_set_tile (unet, tiles[m]);
          g_assert_true (
              diffuse_unet_forward (unet, batch, x, t, labels, got, &error));
          g_assert_no_error (error);
          err = rel_diff (got, want, n);
          moved = rel_diff (want, plain, n);
          g_test_message ("%s tile %s, %d thread(s): relative difference "
                          "%.2e (the wrap moves the output by %.2f)",
                          name, modes[m], threads, err, moved);
          g_assert_cmpfloat (err, <=, TOLERANCE);
          /* the wrap changes the output, so the check above means it */
          g_assert_cmpfloat (moved, >, 100 * TOLERANCE);
        }
      /* bf16: the 3×3 convolutions of a tiled state stay fp32 (the 1×1
       * ones go bf16), so the wrap holds within bf16's tolerance */
      {
        g_autofree gchar *file = g_strdup_printf ("tile-%s-both.out.npy", name);
        gint64 sw[4];
        g_autofree float *want = load (golden, file, sw);

        g_assert_true (
            diffuse_unet_set_precision (unet, DIFFUSE_PRECISION_BF16, &error));
        diffuse_unet_set_tile (unet, DIFFUSE_TILE_BOTH);
        g_assert_true (
            diffuse_unet_forward (unet, batch, x, t, labels, got, &error));
        g_assert_no_error (error);
        g_test_message ("%s tile both in bf16: relative difference %.2e", name,
                        rel_diff (got, want, n));
        g_assert_cmpfloat (rel_diff (got, want, n), <=, 2e-2);
        g_assert_true (
            diffuse_unet_set_precision (unet, DIFFUSE_PRECISION_FP32, &error));
      }
      /* back to zero padding: the plain forward pass again */
      diffuse_unet_set_tile (unet, DIFFUSE_TILE_NONE);
      g_assert_true (
          diffuse_unet_forward (unet, batch, x, t, labels, got, &error));
      g_assert_cmpfloat (rel_diff (got, plain, n), <=, TOLERANCE);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree gchar *path = g_strdup_printf ("/tile/golden/%s", cases[i]);

      g_test_add_data_func (path, cases[i], test_case);
    }
  return g_test_run ();
}
