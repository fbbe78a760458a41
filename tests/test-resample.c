/* Unit tests for engine/resample.c: expected values are worked out by
 * hand from the triangle filter's definition (see the comments). */
#include <math.h>

#include "diffuse.h"

static void
test_identity (void)
{
  float src[2 * 3 * 5], dst[2 * 3 * 5];
  gint i, k;

  for (i = 0; i < 30; i++)
    src[i] = (float) (i * 7 % 11) / 5.0f - 1.0f;
  for (k = 0; k < DIFFUSE_RESAMPLE_COUNT; k++)
    {
      diffuse_resample (src, 2, 3, 5, dst, 3, 5, k);
      for (i = 0; i < 30; i++)
        g_assert_cmpfloat (dst[i], ==, src[i]);
    }
}

static void
test_nearest (void)
{
  /* 2x2 -> 4x4 replicates each pixel into a 2x2 block; 4x4 -> 2x2 picks
   * source (1,1), (1,3), (3,1), (3,3): floor ((i + 0.5) * 2). */
  const float small[4] = { 1, 2, 3, 4 };
  const float big_expect[16] = {
    1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4
  };
  float big[16], back[4];
  float ramp[16];
  gint i;

  diffuse_resample (small, 1, 2, 2, big, 4, 4, DIFFUSE_RESAMPLE_NEAREST);
  for (i = 0; i < 16; i++)
    g_assert_cmpfloat (big[i], ==, big_expect[i]);

  for (i = 0; i < 16; i++)
    ramp[i] = i;
  diffuse_resample (ramp, 1, 4, 4, back, 2, 2, DIFFUSE_RESAMPLE_NEAREST);
  g_assert_cmpfloat (back[0], ==, 5);
  g_assert_cmpfloat (back[1], ==, 7);
  g_assert_cmpfloat (back[2], ==, 13);
  g_assert_cmpfloat (back[3], ==, 15);
}

static void
test_bilinear_halve (void)
{
  /* Shrinking 8 -> 4 (s = 2, radius 2): output i centres at 2i + 1 and
   * weighs sources 2i-1 .. 2i+2 with 1/8, 3/8, 3/8, 1/8 (triangle at
   * distances 0.75, 0.25, 0.25, 0.75 of the radius); at the left border
   * source -1 is missing, so i = 0 gets (3, 3, 1) / 7. */
  const float src[8] = { 0, 8, 16, 24, 32, 40, 48, 56 };
  float dst[4];

  diffuse_resample (src, 1, 1, 8, dst, 1, 4, DIFFUSE_RESAMPLE_BILINEAR);
  g_assert_cmpfloat_with_epsilon (dst[0], (3 * 0 + 3 * 8 + 1 * 16) / 7.0, 1e-5);
  g_assert_cmpfloat_with_epsilon (dst[1], (8 + 3 * 16 + 3 * 24 + 32) / 8.0,
                                  1e-5);
  g_assert_cmpfloat_with_epsilon (dst[2], (24 + 3 * 32 + 3 * 40 + 48) / 8.0,
                                  1e-5);
  g_assert_cmpfloat_with_epsilon (dst[3], (40 + 3 * 48 + 3 * 56) / 7.0, 1e-5);
}

static void
test_bilinear_linear_exact (void)
{
  /* A linear ramp f(j) = a·j + b stays linear: away from the borders
   * output i equals f((i + 0.5)·s − 0.5) when enlarging (plain linear
   * interpolation) and when shrinking by a whole factor (the sampled
   * triangle is then symmetric about its centre), in both directions. */
  const gint sizes[][2] = { { 6, 15 }, { 9, 27 }, { 27, 9 }, { 32, 16 } };
  gsize t;

  for (t = 0; t < G_N_ELEMENTS (sizes); t++)
    {
      gint n = sizes[t][0], m = sizes[t][1], i, j;
      double s = (double) n / m;
      float *src = g_new (float, n *n);
      float *dst = g_new (float, m *m);
      gint margin = (gint) ceil (2.0 / MIN (1.0, 1.0 / s)) + 1;

      for (i = 0; i < n; i++)
        for (j = 0; j < n; j++)
          src[i * n + j] = 0.25f * i - 0.5f * j + 1.0f;
      diffuse_resample (src, 1, n, n, dst, m, m, DIFFUSE_RESAMPLE_BILINEAR);
      for (i = 0; i < m; i++)
        for (j = 0; j < m; j++)
          {
            double yi = (i + 0.5) * s - 0.5, xj = (j + 0.5) * s - 0.5;

            if (yi < margin * MAX (1.0, s) ||
                yi > n - 1 - margin * MAX (1.0, s) ||
                xj < margin * MAX (1.0, s) ||
                xj > n - 1 - margin * MAX (1.0, s))
              continue;
            g_assert_cmpfloat_with_epsilon (dst[i * m + j],
                                            0.25 * yi - 0.5 * xj + 1.0, 1e-4);
          }
      g_free (src);
      g_free (dst);
    }
}

static void
test_bilinear_constant (void)
{
  /* Weights sum to one everywhere, borders included. */
  float src[3 * 7 * 5], dst[3 * 13 * 2];
  gint i;

  for (i = 0; i < 3 * 7 * 5; i++)
    src[i] = i < 35 ? -0.5f : (i < 70 ? 0.25f : 1.0f);
  diffuse_resample (src, 3, 7, 5, dst, 13, 2, DIFFUSE_RESAMPLE_BILINEAR);
  for (i = 0; i < 3 * 13 * 2; i++)
    g_assert_cmpfloat_with_epsilon (
        dst[i], i < 26 ? -0.5 : (i < 52 ? 0.25 : 1.0), 1e-6);
}

static void
test_fit_size (void)
{
  DiffuseModelConfig config = { 0 };
  gint h, w;

  config.image_size = 32;
  config.n_levels = 3; /* multiples of 4 */

  /* native: a multiple of 4 within 16x the model's area */
  g_assert_true (diffuse_fit_size (&config, 64, 96, TRUE, 16.0, &h, &w));
  g_assert_cmpint (h, ==, 64);
  g_assert_cmpint (w, ==, 96);
  g_assert_true (diffuse_fit_size (&config, 32, 32, FALSE, 16.0, &h, &w));
  g_assert_cmpint (h, ==, 32);

  /* not native when asked not to: shorter side 32, aspect kept */
  g_assert_false (diffuse_fit_size (&config, 64, 96, FALSE, 16.0, &h, &w));
  g_assert_cmpint (h, ==, 32);
  g_assert_cmpint (w, ==, 48);

  /* not a multiple of 4: 50x30 -> shorter 30 -> scale 32/30:
   * 53.3 -> 52, 32 */
  g_assert_false (diffuse_fit_size (&config, 50, 30, TRUE, 16.0, &h, &w));
  g_assert_cmpint (h, ==, 52);
  g_assert_cmpint (w, ==, 32);

  /* too large: 512x512 > 16 * 32^2 -> model size */
  g_assert_false (diffuse_fit_size (&config, 512, 512, TRUE, 16.0, &h, &w));
  g_assert_cmpint (h, ==, 32);
  g_assert_cmpint (w, ==, 32);

  /* very wide: the longer side is capped at 4 x 32 */
  g_assert_false (diffuse_fit_size (&config, 10, 1000, TRUE, 16.0, &h, &w));
  g_assert_cmpint (h, ==, 32);
  g_assert_cmpint (w, ==, 128);

  /* smaller than the model, though a multiple: 16x32 -> 32x64 */
  g_assert_false (diffuse_fit_size (&config, 16, 32, TRUE, 16.0, &h, &w));
  g_assert_cmpint (h, ==, 32);
  g_assert_cmpint (w, ==, 64);

  /* smaller than the model and not a multiple: 5x5 -> 32x32 */
  g_assert_false (diffuse_fit_size (&config, 5, 5, TRUE, 16.0, &h, &w));
  g_assert_cmpint (h, ==, 32);
  g_assert_cmpint (w, ==, 32);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/resample/identity", test_identity);
  g_test_add_func ("/resample/nearest", test_nearest);
  g_test_add_func ("/resample/bilinear-halve", test_bilinear_halve);
  g_test_add_func ("/resample/bilinear-linear-exact",
                   test_bilinear_linear_exact);
  g_test_add_func ("/resample/bilinear-constant", test_bilinear_constant);
  g_test_add_func ("/resample/fit-size", test_fit_size);
  return g_test_run ();
}
