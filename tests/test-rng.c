/* The counter-based PRNG (engine/rng.c) against Random123's known-answer
 * vectors, the stream layout of docs/DESIGN.md, chunking independence and
 * the moments of its normals. */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"

/* Random123 kat_vectors, philox4x32 with 10 rounds. */
static void
test_philox_known_answers (void)
{
  static const struct
  {
    guint32 ctr[4], key[2], expect[4];
  } kat[] = {
    { { 0, 0, 0, 0 },
      { 0, 0 },
      { 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8 } },
    { { 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff },
      { 0xffffffff, 0xffffffff },
      { 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd } },
    { { 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344 },
      { 0xa4093822, 0x299f31d0 },
      { 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1 } },
  };

  for (guint k = 0; k < G_N_ELEMENTS (kat); k++)
    {
      guint32 out[4];

      diffuse__philox4x32_10 (kat[k].ctr, kat[k].key, out);
      for (int j = 0; j < 4; j++)
        {
          if (out[j] != kat[k].expect[j])
            g_test_message ("vector %u lane %d: got %08x, expected %08x", k, j,
                            out[j], kat[k].expect[j]);
          g_assert_cmphex (out[j], ==, kat[k].expect[j]);
        }
    }
}

/* DESIGN.md: key (seed lo, seed hi), counter (b lo, b hi, s lo, s hi),
 * element i = lane i % 4 of block i / 4, U = (u + 0.5) / 2^32. */
static void
test_stream_layout (void)
{
  const guint64 seeds[] = { 0, 1, G_GUINT64_CONSTANT (0x299f31d0a4093822),
                            G_MAXUINT64 };
  const guint64 streams[] = { 0, 1, 2, 1001,
                              G_GUINT64_CONSTANT (0x0370734413198a2e) };
  const guint64 blocks[] = { 0, 1, 7, G_GUINT64_CONSTANT (0x100000002),
                             G_GUINT64_CONSTANT (0x3fffffffffffffff) };

  for (guint a = 0; a < G_N_ELEMENTS (seeds); a++)
    for (guint s = 0; s < G_N_ELEMENTS (streams); s++)
      for (guint b = 0; b < G_N_ELEMENTS (blocks); b++)
        {
          guint64 seed = seeds[a], stream = streams[s], block = blocks[b];
          const guint32 ctr[4] = { (guint32) block, (guint32) (block >> 32),
                                   (guint32) stream, (guint32) (stream >> 32) };
          const guint32 key[2] = { (guint32) seed, (guint32) (seed >> 32) };
          guint32 raw[4];
          double u[4];
          float z[4];

          diffuse__philox4x32_10 (ctr, key, raw);
          diffuse_rng_uniform (seed, stream, block * 4, u, 4);
          diffuse_rng_normal (seed, stream, block * 4, z, 4);
          for (int j = 0; j < 4; j++)
            g_assert_cmpfloat (u[j], ==,
                               ((double) raw[j] + 0.5) / 4294967296.0);
          for (int j = 0; j < 4; j += 2)
            {
              double r = sqrt (-2.0 * log (u[j]));
              double th = 2.0 * G_PI * u[j + 1];

              g_assert_cmpfloat (z[j], ==, (float) (r * cos (th)));
              g_assert_cmpfloat (z[j + 1], ==, (float) (r * sin (th)));
            }
        }

  /* seed 0, stream 0, element 0..3 is the all-zero known answer */
  double u[4];
  diffuse_rng_uniform (0, 0, 0, u, 4);
  g_assert_cmpfloat (u[0], ==, (0x6627e8d5 + 0.5) / 4294967296.0);
  g_assert_cmpfloat (u[3], ==, (0x9b00dbd8 + 0.5) / 4294967296.0);
}

/* Any split of a request gives the same numbers as one call. */
static void
test_chunking (void)
{
  enum
  {
    N = 1003
  };
  g_autofree float *whole = g_new (float, N);
  g_autofree float *parts = g_new (float, N);
  g_autofree double *uwhole = g_new (double, N);
  g_autofree double *uparts = g_new (double, N);
  const guint64 seed = 12345, stream = 7, base = 5;

  diffuse_rng_normal (seed, stream, base, whole, N);
  diffuse_rng_uniform (seed, stream, base, uwhole, N);
  memset (parts, 0, N * sizeof (float));
  gsize done = 0, len = 1;
  while (done < N)
    {
      gsize n = MIN (len, N - done);

      diffuse_rng_normal (seed, stream, base + done, parts + done, n);
      diffuse_rng_uniform (seed, stream, base + done, uparts + done, n);
      done += n;
      len = len % 9 + 2; /* 1, 3, 5, 7, 9, 2, 4, ... : every misalignment */
    }
  g_assert_cmpmem (whole, N * sizeof (float), parts, N * sizeof (float));
  g_assert_cmpmem (uwhole, N * sizeof (double), uparts, N * sizeof (double));

  /* an offset is a shift: element i at offset o is element o + i at 0 */
  g_autofree float *from0 = g_new (float, N + base);
  diffuse_rng_normal (seed, stream, 0, from0, N + base);
  g_assert_cmpmem (whole, N * sizeof (float), from0 + base, N * sizeof (float));

  /* n = 0 writes nothing */
  float guard = 42.0f;
  diffuse_rng_normal (seed, stream, 3, &guard, 0);
  g_assert_cmpfloat (guard, ==, 42.0f);
}

/* Different seeds and streams give unrelated sequences. */
static void
test_streams_differ (void)
{
  enum
  {
    N = 4096
  };
  g_autofree float *a = g_new (float, N);
  g_autofree float *b = g_new (float, N);
  g_autofree float *c = g_new (float, N);

  diffuse_rng_normal (1, 0, 0, a, N);
  diffuse_rng_normal (1, 1, 0, b, N);
  diffuse_rng_normal (2, 0, 0, c, N);

  double ab = 0, ac = 0;
  gint same = 0;
  for (gsize i = 0; i < N; i++)
    {
      ab += (double) a[i] * b[i];
      ac += (double) a[i] * c[i];
      same += a[i] == b[i] || a[i] == c[i];
    }
  ab /= N;
  ac /= N;
  g_test_message (
      "corr(stream 0, stream 1) = %.4f, corr(seed 1, seed 2) = %.4f", ab, ac);
  g_assert_cmpint (same, ==, 0);
  /* 5 standard errors of a correlation of N independent pairs */
  g_assert_cmpfloat (fabs (ab), <, 5.0 / sqrt (N));
  g_assert_cmpfloat (fabs (ac), <, 5.0 / sqrt (N));
}

/* Moments of 2^20 normals and uniforms against their standard errors. */
static void
test_moments (void)
{
  enum
  {
    N = 1 << 20
  };
  g_autofree float *z = g_new (float, N);
  g_autofree double *u = g_new (double, N);

  diffuse_rng_normal (2024, 3, 0, z, N);
  diffuse_rng_uniform (2024, 3, 0, u, N);

  double m1 = 0, m2 = 0, m3 = 0, m4 = 0, lag = 0, um = 0, uv = 0;
  float zmin = z[0], zmax = z[0];
  for (gsize i = 0; i < N; i++)
    {
      double x = z[i];

      m1 += x;
      m2 += x * x;
      m3 += x * x * x;
      m4 += x * x * x * x;
      if (i > 0)
        lag += x * z[i - 1];
      zmin = MIN (zmin, z[i]);
      zmax = MAX (zmax, z[i]);
      um += u[i];
      uv += (u[i] - 0.5) * (u[i] - 0.5);
      g_assert_true (u[i] > 0.0 && u[i] < 1.0);
    }
  m1 /= N, m2 /= N, m3 /= N, m4 /= N, lag /= N - 1, um /= N, uv /= N;
  g_test_message (
      "normals: mean %.5f var %.5f skew %.5f kurt %.4f lag1 %.5f "
      "min %.3f max %.3f; uniforms: mean %.5f var %.6f (1/12 = %.6f)",
      m1, m2, m3, m4, lag, zmin, zmax, um, uv, 1.0 / 12);
  double se = 1.0 / sqrt (N);
  g_assert_cmpfloat (fabs (m1), <, 5 * se);                     /* sd 1 */
  g_assert_cmpfloat (fabs (m2 - 1.0), <, 5 * sqrt (2.0) * se);  /* sd sqrt 2 */
  g_assert_cmpfloat (fabs (m3), <, 5 * sqrt (15.0) * se);       /* sd sqrt 15 */
  g_assert_cmpfloat (fabs (m4 - 3.0), <, 5 * sqrt (96.0) * se); /* sd sqrt 96 */
  g_assert_cmpfloat (fabs (lag), <, 5 * se);
  g_assert_cmpfloat (fabs (um - 0.5), <, 5 * sqrt (1.0 / 12) * se);
  g_assert_cmpfloat (fabs (uv - 1.0 / 12), <, 5 * sqrt (1.0 / 180) * se);
  /* P(|z| > 4) = 6.3e-5: a 2^20 sample reaches past 4 but not past 6.5 */
  g_assert_cmpfloat (zmax, >, 4.0f);
  g_assert_cmpfloat (zmin, <, -4.0f);
  g_assert_cmpfloat (zmax, <, 6.5f);
  g_assert_cmpfloat (zmin, >, -6.5f);

  /* the normal CDF at a few points (Kolmogorov-style check on 2^20 draws) */
  const double xs[] = { -2.0, -1.0, -0.3, 0.0, 0.5, 1.5 };
  for (guint k = 0; k < G_N_ELEMENTS (xs); k++)
    {
      gsize below = 0;
      for (gsize i = 0; i < N; i++)
        below += z[i] < xs[k];
      double p = 0.5 * erfc (-xs[k] / sqrt (2.0));
      double f = (double) below / N;
      g_assert_cmpfloat (fabs (f - p), <, 5 * sqrt (p * (1 - p) / N));
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/rng/philox-known-answers", test_philox_known_answers);
  g_test_add_func ("/rng/stream-layout", test_stream_layout);
  g_test_add_func ("/rng/chunking", test_chunking);
  g_test_add_func ("/rng/streams-differ", test_streams_differ);
  g_test_add_func ("/rng/moments", test_moments);
  return g_test_run ();
}
