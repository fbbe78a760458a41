/* Seamless tiles on a shipped model (models/fashion.safetensors):
 *
 *  - shift equivariance: with the convolutions wrapping in both
 *    directions the network treats the image as a torus, so DDIM with
 *    η = 0 from x_T rolled by a multiple of the model's size step (8)
 *    gives the sample rolled by the same amount; the edge where the image
 *    wraps is then an interior line like any other.  With zero padding it
 *    does not (the check is not vacuous).
 *  - seam statistics: over a batch, the mean |difference| across the
 *    wrap-around edge (last column to first, last row to first) divided
 *    by the mean |difference| across interior lines at the same phase of
 *    the size step (columns 8k−1 to 8k); about 1 when tiled.  Printed for
 *    zero padding ("before") and wrapping ("after"). */
#include <math.h>
#include <string.h>

#include "diffuse.h"

#define S 32
#define STEP 8

static DiffuseModel *
load_fashion (void)
{
  const char *root = g_getenv ("DIFFUSE_SOURCE_ROOT");
  g_autofree gchar *path = NULL;
  g_autoptr (GError) error = NULL;
  DiffuseModel *model;

  g_assert_nonnull (root);
  path = g_build_filename (root, "models", "fashion.safetensors", NULL);
  model = diffuse_model_new_from_file (path, &error);
  g_assert_no_error (error);
  return model;
}

/* dst = src [count, 1, S, S] rolled by (dy, dx) */
static void
roll (const float *src, gint count, gint dy, gint dx, float *dst)
{
  for (gint k = 0; k < count; k++)
    for (gint y = 0; y < S; y++)
      for (gint x = 0; x < S; x++)
        dst[(gsize) k * S * S + ((y + dy) % S) * S + (x + dx) % S] =
            src[(gsize) k * S * S + y * S + x];
}

static double
max_abs_diff (const float *a, const float *b, gsize n)
{
  double m = 0.0;

  for (gsize i = 0; i < n; i++)
    m = MAX (m, fabs ((double) a[i] - b[i]));
  return m;
}

static void
sample (const DiffuseModel *model, DiffuseTileMode tile, gint count, double eta,
        gint steps, const float *x_t, float *out)
{
  DiffuseSampleParams p;
  g_autoptr (GError) error = NULL;

  diffuse_sample_params_init (&p);
  p.tile = tile;
  p.count = count;
  p.steps = steps;
  p.eta = eta;
  p.class_label = 7; /* sneaker */
  p.seed = 3;
  p.init_noise = x_t;
  g_assert_true (diffuse_sample (model, &p, out, NULL, &error));
  g_assert_no_error (error);
}

static void
test_equivariance (void)
{
  g_autoptr (DiffuseModel) model = load_fashion ();
  gsize n = S * S;
  g_autofree float *x_t = g_new (float, n), *x_t_rolled = g_new (float, n);
  g_autofree float *a = g_new (float, n), *b = g_new (float, n);
  g_autofree float *a_rolled = g_new (float, n);
  double tiled, plain;

  diffuse_rng_normal (11, 0, 0, x_t, n);
  roll (x_t, 1, STEP, 2 * STEP, x_t_rolled);

  sample (model, DIFFUSE_TILE_BOTH, 1, 0.0, 8, x_t, a);
  sample (model, DIFFUSE_TILE_BOTH, 1, 0.0, 8, x_t_rolled, b);
  roll (a, 1, STEP, 2 * STEP, a_rolled);
  tiled = max_abs_diff (b, a_rolled, n);

  sample (model, DIFFUSE_TILE_NONE, 1, 0.0, 8, x_t, a);
  sample (model, DIFFUSE_TILE_NONE, 1, 0.0, 8, x_t_rolled, b);
  roll (a, 1, STEP, 2 * STEP, a_rolled);
  plain = max_abs_diff (b, a_rolled, n);

  g_test_message ("rolled x_T by (8, 16): the sample moves with it, max "
                  "difference %.2e tiled, %.2e with zero padding",
                  tiled, plain);
  g_assert_cmpfloat (tiled, <, 1e-3);
  g_assert_cmpfloat (plain, >, 0.1);
}

/* The seam ratio along x (columns) or y (rows) of [count, 1, S, S]. */
static double
seam_ratio (const float *x, gint count, gboolean along_y)
{
  double seam = 0.0, inner = 0.0;
  gint n_seam = 0, n_inner = 0;

  for (gint k = 0; k < count; k++)
    for (gint r = 0; r < S; r++)
      for (gint c = STEP - 1; c < S; c += STEP)
        {
          gint c2 = (c + 1) % S;
          const float *img = x + (gsize) k * S * S;
          double d = along_y ? fabs (img[c * S + r] - img[c2 * S + r])
                             : fabs (img[r * S + c] - img[r * S + c2]);

          if (c == S - 1)
            seam += d, n_seam++;
          else
            inner += d, n_inner++;
        }
  return (seam / n_seam) / (inner / n_inner);
}

static void
test_seam_statistics (void)
{
  g_autoptr (DiffuseModel) model = load_fashion ();
  const gint count = 8;
  gsize n = (gsize) count * S * S;
  g_autofree float *x_t = g_new (float, n), *out = g_new (float, n);
  double before[2], after[2];

  diffuse_rng_normal (5, 0, 0, x_t, n);
  sample (model, DIFFUSE_TILE_NONE, count, 1.0, 10, x_t, out);
  before[0] = seam_ratio (out, count, FALSE);
  before[1] = seam_ratio (out, count, TRUE);
  sample (model, DIFFUSE_TILE_BOTH, count, 1.0, 10, x_t, out);
  after[0] = seam_ratio (out, count, FALSE);
  after[1] = seam_ratio (out, count, TRUE);
  g_test_message ("seam ratio (mean |difference| across the wrap-around edge "
                  "/ across interior lines at the same phase), %d images: "
                  "zero padding x %.2f y %.2f; tile both x %.2f y %.2f",
                  count, before[0], before[1], after[0], after[1]);
  /* by the equivariance above the seam is statistically one of the
   * interior lines; the bounds leave room for 8 images' sampling noise */
  for (gint i = 0; i < 2; i++)
    {
      g_assert_cmpfloat (after[i], >, 0.5);
      g_assert_cmpfloat (after[i], <, 2.0);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/tile/equivariance", test_equivariance);
  g_test_add_func ("/tile/seam-statistics", test_seam_statistics);
  return g_test_run ();
}
