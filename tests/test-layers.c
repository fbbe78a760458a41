/* Every UNet kernel of engine/layers.h against a naive loop written from
 * the PyTorch definition, on random data with several (odd) shapes.
 * References accumulate in double. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "layers.h"

static gint n_failed;
static DiffusePool *pool; /* NULL on the first round, 3 threads on the second */

static float *
random_floats (GRand *rng, gsize n, double lo, double hi)
{
  float *p = g_new (float, n);

  for (gsize i = 0; i < n; i++)
    p[i] = (float) g_rand_double_range (rng, lo, hi);
  return p;
}

/* max |got − want| / max (1, max |want|) ≤ tol */
static void
check (const char *what, const float *got, const double *want, gsize n,
       double tol)
{
  double max_diff = 0.0, max_ref = 0.0;
  gsize worst = 0;

  for (gsize i = 0; i < n; i++)
    {
      double d = fabs (got[i] - want[i]);

      if (!(d <= max_diff))
        {
          max_diff = isnan (d) ? INFINITY : d;
          worst = i;
        }
      max_ref = MAX (max_ref, fabs (want[i]));
    }
  if (max_diff / MAX (1.0, max_ref) > tol)
    {
      n_failed++;
      g_print ("FAIL %s: largest difference %.3g at %" G_GSIZE_FORMAT
               " (got %.7g, want %.7g)\n",
               what, max_diff, worst, got[worst], want[worst]);
    }
  else
    g_print ("ok   %s (n %" G_GSIZE_FORMAT ", largest difference %.3g)\n", what,
             n, max_diff);
}

static double
sigmoid (double x)
{
  return 1.0 / (1.0 + exp (-x));
}

static void
test_timestep_embedding (void)
{
  float t[3] = { 0.0f, 437.0f, 999.0f };
  gint dims[] = { 32, 33, 192 };

  for (guint k = 0; k < G_N_ELEMENTS (dims); k++)
    {
      gint dim = dims[k], half = dim / 2;
      g_autofree float *got = g_new (float, 3 * dim);
      g_autofree double *want = g_new (double, 3 * dim);
      g_autofree gchar *what =
          g_strdup_printf ("timestep_embedding dim %d", dim);

      diffuse__timestep_embedding (t, 3, dim, got);
      for (gint b = 0; b < 3; b++)
        {
          for (gint i = 0; i < half; i++)
            {
              double f = exp (-log (10000.0) * i / half);

              want[b * dim + i] = cos (t[b] * f);
              want[b * dim + half + i] = sin (t[b] * f);
            }
          if (dim % 2)
            want[b * dim + dim - 1] = 0.0;
        }
      /* float32 arguments up to 1000 carry ~6e-5 of rounding, as in torch */
      check (what, got, want, 3 * dim, 2e-4);
    }
}

static void
test_linear (GRand *rng)
{
  gint shapes[][3] = { { 1, 7, 5 }, { 3, 64, 33 }, { 2, 128, 256 } };

  for (guint k = 0; k < G_N_ELEMENTS (shapes); k++)
    {
      gint B = shapes[k][0], ni = shapes[k][1], no = shapes[k][2];
      g_autofree float *x = random_floats (rng, B * ni, -2, 2);
      g_autofree float *w = random_floats (rng, no * ni, -1, 1);
      g_autofree float *bias = random_floats (rng, no, -1, 1);
      g_autofree float *got = g_new (float, B *no);
      g_autofree double *want = g_new (double, B *no);
      g_autofree gchar *what =
          g_strdup_printf ("linear %dx%d -> %d", B, ni, no);

      diffuse__linear (x, B, ni, w, bias, no, got);
      for (gint b = 0; b < B; b++)
        for (gint o = 0; o < no; o++)
          {
            double s = bias[o];

            for (gint i = 0; i < ni; i++)
              s += (double) x[b * ni + i] * w[o * ni + i];
            want[b * no + o] = s;
          }
      check (what, got, want, B * no, 1e-5);
    }
}

static void
test_silu (GRand *rng)
{
  gsize n = 1037;
  g_autofree float *x = random_floats (rng, n, -30, 30);
  g_autofree float *got = g_new (float, n);
  g_autofree double *want = g_new (double, n);

  x[0] = -100.0f, x[1] = 100.0f, x[2] = 0.0f, x[3] = -87.5f, x[4] = 1e-3f;
  diffuse__silu (pool, x, n, got);
  for (gsize i = 0; i < n; i++)
    want[i] = x[i] * sigmoid (x[i]);
  check ("silu", got, want, n, 1e-6);
  /* relative accuracy where values are small */
  for (gsize i = 0; i < n; i++)
    if (fabs (got[i] - want[i]) > 1e-6 * fabs (want[i]) + 1e-30)
      {
        n_failed++;
        g_print ("FAIL silu relative at x = %g: %.9g vs %.9g\n", x[i], got[i],
                 want[i]);
        break;
      }
}

static void
test_group_norm (GRand *rng)
{
  /* channels, batch, hw, groups, mode (0 plain, 1 silu, 2 scale-shift + silu) */
  gint cases[][5] = { { 32, 1, 1, 32, 0 },
                      { 64, 2, 35, 32, 1 },
                      { 96, 3, 17, 32, 2 },
                      { 48, 2, 64, 8, 2 },
                      { 384, 2, 16, 32, 1 } };

  for (guint k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      gint C = cases[k][0], B = cases[k][1], hw = cases[k][2], G = cases[k][3];
      gint mode = cases[k][4], cg = C / G;
      gsize n = (gsize) C * B * hw, stride = 2 * C + 3;
      g_autofree float *x = random_floats (rng, n, -3, 5);
      g_autofree float *gamma = random_floats (rng, C, 0.5, 1.5);
      g_autofree float *beta = random_floats (rng, C, -0.5, 0.5);
      g_autofree float *ss = random_floats (rng, B * stride, -0.5, 0.5);
      g_autofree float *got = g_new (float, n);
      g_autofree double *want = g_new (double, n);
      g_autofree gchar *what = g_strdup_printf (
          "group_norm C %d B %d hw %d G %d mode %d", C, B, hw, G, mode);

      diffuse__group_norm (pool, x, C, B, hw, G, 1e-5f, gamma, beta,
                           mode == 2 ? ss : NULL, mode == 2 ? ss + C : NULL,
                           stride, mode != 0, got);
      for (gint b = 0; b < B; b++)
        for (gint g = 0; g < G; g++)
          {
            double s = 0, ss2 = 0, mean, var;

            for (gint c = g * cg; c < (g + 1) * cg; c++)
              for (gint i = 0; i < hw; i++)
                s += x[((gsize) c * B + b) * hw + i];
            mean = s / ((double) cg * hw);
            for (gint c = g * cg; c < (g + 1) * cg; c++)
              for (gint i = 0; i < hw; i++)
                {
                  double d = x[((gsize) c * B + b) * hw + i] - mean;
                  ss2 += d * d;
                }
            var = ss2 / ((double) cg * hw);
            for (gint c = g * cg; c < (g + 1) * cg; c++)
              for (gint i = 0; i < hw; i++)
                {
                  gsize idx = ((gsize) c * B + b) * hw + i;
                  double y =
                      (x[idx] - mean) / sqrt (var + 1e-5) * gamma[c] + beta[c];

                  if (mode == 2)
                    y = y * (1.0 + ss[b * stride + c]) + ss[b * stride + C + c];
                  if (mode != 0)
                    y = y * sigmoid (y);
                  want[idx] = y;
                }
          }
      check (what, got, want, n, 2e-6);
    }
}

/* naive nn.Conv2d with padding k/2 on [C, B, H, W] */
static void
conv_ref (const float *x, gint ci, gint B, gint H, gint W, const float *w,
          const float *bias, const float *bias2, gsize b2s, gint co, gint k,
          gint stride, const float *init, double *out)
{
  gint pad = k / 2;
  gint ho = (H + 2 * pad - k) / stride + 1, wo = (W + 2 * pad - k) / stride + 1;

  for (gint o = 0; o < co; o++)
    for (gint b = 0; b < B; b++)
      for (gint oy = 0; oy < ho; oy++)
        for (gint ox = 0; ox < wo; ox++)
          {
            gsize idx = (((gsize) o * B + b) * ho + oy) * wo + ox;
            double s = (init ? init[idx] : 0.0) + (bias ? bias[o] : 0.0) +
                       (bias2 ? bias2[b * b2s + o] : 0.0);

            for (gint c = 0; c < ci; c++)
              for (gint ky = 0; ky < k; ky++)
                for (gint kx = 0; kx < k; kx++)
                  {
                    gint iy = oy * stride + ky - pad,
                         ix = ox * stride + kx - pad;

                    if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                      continue;
                    s += (double) w[((o * ci + c) * k + ky) * k + kx] *
                         x[(((gsize) c * B + b) * H + iy) * W + ix];
                  }
            out[idx] = s;
          }
}

static void
test_conv2d (GRand *rng)
{
  /* c_in, c_out, B, H, W, k, stride, accumulate, bias2 */
  gint cases[][9] = {
    { 3, 5, 1, 7, 5, 3, 1, 0, 0 },    { 8, 4, 2, 6, 9, 3, 1, 1, 1 },
    { 6, 7, 3, 8, 8, 3, 2, 0, 0 },    { 5, 3, 2, 7, 9, 3, 2, 0, 1 },
    { 16, 9, 2, 5, 3, 1, 1, 1, 0 },   { 4, 6, 1, 1, 1, 3, 1, 0, 1 },
    { 32, 24, 2, 16, 16, 3, 1, 0, 0 }
  };

  for (guint k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      gint ci = cases[k][0], co = cases[k][1], B = cases[k][2], H = cases[k][3];
      gint W = cases[k][4], ks = cases[k][5], stride = cases[k][6];
      gboolean acc = cases[k][7], use_b2 = cases[k][8];
      gint pad = ks / 2;
      gint ho = (H + 2 * pad - ks) / stride + 1;
      gint wo = (W + 2 * pad - ks) / stride + 1;
      gsize n_out = (gsize) co * B * ho * wo;
      g_autofree float *x = random_floats (rng, (gsize) ci * B * H * W, -1, 1);
      g_autofree float *w =
          random_floats (rng, (gsize) co * ci * ks * ks, -1, 1);
      g_autofree float *bias = random_floats (rng, co, -1, 1);
      g_autofree float *bias2 = random_floats (rng, B * (co + 2), -1, 1);
      g_autofree float *init = random_floats (rng, n_out, -1, 1);
      g_autofree float *got = g_memdup2 (init, n_out * sizeof (float));
      g_autofree float *col = g_new (float, (gsize) ci *ks *ks *B *ho *wo);
      g_autofree double *want = g_new (double, n_out);
      g_autofree gchar *what = g_strdup_printf (
          "conv2d %d->%d B %d %dx%d k %d s %d%s%s", ci, co, B, W, H, ks, stride,
          acc ? " accumulate" : "", use_b2 ? " bias2" : "");

      diffuse__conv2d (pool, x, ci, B, H, W, w, bias, use_b2 ? bias2 : NULL,
                       co + 2, co, ks, stride, acc, col, got);
      conv_ref (x, ci, B, H, W, w, bias, use_b2 ? bias2 : NULL, co + 2, co, ks,
                stride, acc ? init : NULL, want);
      check (what, got, want, n_out, 1e-5);
    }
}

/* F(2×2, 3×3) (tile 2) or F(4×4, 3×3) (tile 4), in bands of max_tiles
 * tiles (0: one band; the tile buffers sized for the band only) */
static void
winograd_run (gint tile, gsize max_tiles, const float *x, gint ci, gint B,
              gint H, gint W, const float *w, const float *bias,
              const float *bias2, gsize b2s, gint co, gboolean acc, float *out)
{
  gint n = tile == 2 ? 16 : 36;
  gsize tiles = tile == 2 ? diffuse__winograd_band_tiles (B, H, W, max_tiles)
                          : diffuse__winograd43_band_tiles (B, H, W, max_tiles);
  g_autofree float *u = g_new (float, (gsize) n *co *ci);
  g_autofree float *v = g_new (float, (gsize) n *ci *tiles);
  g_autofree float *m = g_new (float, (gsize) n *co *tiles);

  if (tile == 2)
    {
      diffuse__winograd_weights (pool, w, co, ci, u);
      diffuse__conv3x3_winograd_wrap (pool, x, ci, B, H, W, u, bias, bias2, b2s,
                                      co, DIFFUSE_TILE_NONE, max_tiles, acc, v,
                                      m, out);
    }
  else
    {
      diffuse__winograd43_weights (pool, w, co, ci, u);
      diffuse__conv3x3_winograd43_wrap (pool, x, ci, B, H, W, u, bias, bias2,
                                        b2s, co, DIFFUSE_TILE_NONE, max_tiles,
                                        acc, v, m, out);
    }
}

static void
test_winograd (GRand *rng, gint tile)
{
  /* c_in, c_out, B, H, W, accumulate, bias2 */
  gint cases[][7] = {
    { 3, 5, 1, 4, 4, 0, 0 },     { 8, 4, 2, 7, 5, 1, 1 },
    { 32, 32, 2, 16, 16, 0, 1 }, { 5, 3, 3, 1, 1, 0, 0 },
    { 6, 7, 1, 2, 9, 1, 0 },     { 64, 48, 2, 8, 6, 1, 1 },
    { 4, 3, 2, 11, 13, 1, 1 },   { 2, 3, 1, 3, 2051, 0, 1 }
  }; /* rows of several segments */

  for (guint k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      gint ci = cases[k][0], co = cases[k][1], B = cases[k][2], H = cases[k][3];
      gint W = cases[k][4];
      gboolean acc = cases[k][5], use_b2 = cases[k][6];
      gsize n_out = (gsize) co * B * H * W;
      g_autofree float *x = random_floats (rng, (gsize) ci * B * H * W, -1, 1);
      g_autofree float *w = random_floats (rng, (gsize) co * ci * 9, -1, 1);
      g_autofree float *bias = random_floats (rng, co, -1, 1);
      g_autofree float *bias2 = random_floats (rng, B * (co + 2), -1, 1);
      g_autofree float *init = random_floats (rng, n_out, -1, 1);
      g_autofree float *got = g_memdup2 (init, n_out * sizeof (float));
      g_autofree double *want = g_new (double, n_out);
      g_autofree gchar *what = g_strdup_printf (
          "conv3x3_winograd F(%d,3) %d->%d B %d %dx%d%s%s", tile, ci, co, B, W,
          H, acc ? " accumulate" : "", use_b2 ? " bias2" : "");

      conv_ref (x, ci, B, H, W, w, bias, use_b2 ? bias2 : NULL, co + 2, co, 3,
                1, acc ? init : NULL, want);
      /* one band, bands of one tile row (max_tiles 1), of a few rows
       * that split the rows unevenly, across the images of the batch */
      for (gsize band = 0; band < 3; band++)
        {
          gsize max_tiles = band == 0 ? 0 : band == 1 ? 1 : 2 * (W / tile + 1);
          g_autofree gchar *what_band = g_strdup_printf (
              "%s, bands of <= %" G_GSIZE_FORMAT " tiles", what, max_tiles);

          memcpy (got, init, n_out * sizeof (float));
          winograd_run (tile, max_tiles, x, ci, B, H, W, w, bias,
                        use_b2 ? bias2 : NULL, co + 2, co, acc, got);
          check (what_band, got, want, n_out, tile == 2 ? 2e-5 : 5e-5);
        }
    }
}

/* Rounding error of im2col, F(2×2, 3×3) and F(4×4, 3×3) at a UNet layer's
 * shape (384 -> 192 channels at 16×16, weights scaled as PyTorch's
 * default init, inputs as a normalised activation), relative to the
 * largest output: printed for bench/README.md.  F(4×4, 3×3) is about 20×
 * less exact than im2col here (1e-5 against 4e-7), and must stay under
 * 5e-5, half the golden tests' tolerance for a whole forward pass. */
static void
test_winograd_error (GRand *rng)
{
  gint ci = 384, co = 192, B = 1, H = 16, W = 16;
  gsize n_out = (gsize) co * B * H * W;
  double bound = 1.0 / sqrt (9.0 * ci), err[3], max_ref = 0.0;
  g_autofree float *x = random_floats (rng, (gsize) ci * B * H * W, -2, 2);
  g_autofree float *w = random_floats (rng, (gsize) co * ci * 9, -bound, bound);
  g_autofree float *got = g_new (float, n_out);
  g_autofree float *col = g_new (float, (gsize) ci * 9 * B * H * W);
  g_autofree double *want = g_new (double, n_out);

  conv_ref (x, ci, B, H, W, w, NULL, NULL, 0, co, 3, 1, NULL, want);
  for (gsize i = 0; i < n_out; i++)
    max_ref = MAX (max_ref, fabs (want[i]));
  for (gint a = 0; a < 3; a++)
    {
      if (a == 0)
        diffuse__conv2d (pool, x, ci, B, H, W, w, NULL, NULL, 0, co, 3, 1,
                         FALSE, col, got);
      else
        winograd_run (2 * a, 0, x, ci, B, H, W, w, NULL, NULL, 0, co, FALSE,
                      got);
      err[a] = 0.0;
      for (gsize i = 0; i < n_out; i++)
        err[a] = MAX (err[a], fabs (got[i] - want[i]));
      err[a] /= max_ref;
    }
  g_print ("%s conv3x3 error %d->%d at %dx%d relative to the largest "
           "output: im2col %.3g, F(2,3) %.3g, F(4,3) %.3g\n",
           err[2] <= 5e-5 ? "ok  " : "FAIL", ci, co, W, H, err[0], err[1],
           err[2]);
  if (!(err[2] <= 5e-5))
    n_failed++;
}

static void
test_resample (GRand *rng)
{
  gint C = 3, B = 2, H = 6, W = 10;
  gsize n = (gsize) C * B * H * W;
  g_autofree float *x = random_floats (rng, n, -1, 1);
  g_autofree float *up = g_new (float, 4 * n);
  g_autofree float *down = g_new (float, n / 4);
  g_autofree double *want_up = g_new (double, 4 * n);
  g_autofree double *want_down = g_new (double, n / 4);

  diffuse__upsample2x (pool, x, C, B, H, W, up);
  diffuse__avgpool2x (pool, x, C, B, H, W, down);
  for (gsize p = 0; p < (gsize) C * B; p++)
    {
      for (gint y = 0; y < 2 * H; y++)
        for (gint i = 0; i < 2 * W; i++)
          want_up[(p * 2 * H + y) * 2 * W + i] = x[(p * H + y / 2) * W + i / 2];
      for (gint y = 0; y < H / 2; y++)
        for (gint i = 0; i < W / 2; i++)
          {
            const float *s = x + (p * H + 2 * y) * W + 2 * i;

            want_down[(p * (H / 2) + y) * (W / 2) + i] =
                ((double) s[0] + s[1] + s[W] + s[W + 1]) / 4.0;
          }
    }
  check ("upsample2x", up, want_up, 4 * n, 0.0);
  check ("avgpool2x", down, want_down, n / 4, 1e-7);
}

static void
test_attention (GRand *rng)
{
  /* channels, batch, T, heads, legacy */
  gint cases[][5] = {
    { 8, 1, 5, 1, 1 },   { 12, 2, 35, 3, 1 }, { 12, 2, 35, 3, 0 },
    { 64, 3, 64, 4, 0 }, { 32, 2, 17, 2, 1 }, { 16, 2, 600, 2, 0 }
  }; /* 600: three query blocks */

  for (guint k = 0; k < G_N_ELEMENTS (cases); k++)
    {
      gint C = cases[k][0], B = cases[k][1], T = cases[k][2],
           heads = cases[k][3];
      gboolean legacy = cases[k][4];
      gint ch = C / heads;
      gsize ld = (gsize) B * T;
      g_autofree float *qkv = random_floats (rng, 3 * C * ld, -3, 3);
      g_autofree float *scores =
          g_new (float, diffuse__attention_scratch (T, 4));
      g_autofree float *got = g_new (float, C *ld);
      g_autofree double *want = g_new (double, C *ld);
      g_autofree double *w = g_new (double, T);
      g_autofree gchar *what =
          g_strdup_printf ("attention C %d B %d T %d heads %d %s", C, B, T,
                           heads, legacy ? "legacy" : "new");

      diffuse__attention (pool, qkv, C, B, T, heads, legacy, scores, got);
      for (gint b = 0; b < B; b++)
        for (gint h = 0; h < heads; h++)
          {
            /* the reshape / split of QKVAttentionLegacy and QKVAttention */
            gint rq = legacy ? h * 3 * ch : h * ch;
            gint rk = legacy ? rq + ch : C + h * ch;
            gint rv = legacy ? rq + 2 * ch : 2 * C + h * ch;
#define AT(r, t) ((double) qkv[(gsize) (r) *ld + (gsize) b * T + (t)])

            for (gint t = 0; t < T; t++)
              {
                double m = -INFINITY, sum = 0;

                for (gint s = 0; s < T; s++)
                  {
                    double d = 0;

                    for (gint c = 0; c < ch; c++)
                      d += AT (rq + c, t) * AT (rk + c, s);
                    w[s] = d / sqrt (ch);
                    m = MAX (m, w[s]);
                  }
                for (gint s = 0; s < T; s++)
                  sum += (w[s] = exp (w[s] - m));
                for (gint c = 0; c < ch; c++)
                  {
                    double a = 0;

                    for (gint s = 0; s < T; s++)
                      a += w[s] / sum * AT (rv + c, s);
                    want[(gsize) (h * ch + c) * ld + (gsize) b * T + t] = a;
                  }
              }
#undef AT
          }
      check (what, got, want, C * ld, 1e-5);
    }
}

static void
test_transpose (GRand *rng)
{
  gint B = 3, C = 5;
  gsize hw = 7, n = B * C * hw;
  g_autofree float *x = random_floats (rng, n, -1, 1);
  g_autofree float *y = g_new (float, n);
  g_autofree float *z = g_new (float, n);
  g_autofree double *want = g_new (double, n);

  diffuse__nchw_to_cbhw (pool, x, B, C, hw, y);
  for (gint b = 0; b < B; b++)
    for (gint c = 0; c < C; c++)
      for (gsize i = 0; i < hw; i++)
        want[((gsize) c * B + b) * hw + i] = x[((gsize) b * C + c) * hw + i];
  check ("nchw_to_cbhw", y, want, n, 0.0);
  diffuse__cbhw_to_nchw (pool, y, B, C, hw, z);
  for (gsize i = 0; i < n; i++)
    want[i] = x[i];
  check ("cbhw_to_nchw", z, want, n, 0.0);
}

/* The threaded kernels split work into whole units, so any thread count
 * gives bit-identical results. */
static void
test_thread_invariance (GRand *rng)
{
  gint C = 96, B = 3, hw = 37, T = 70, heads = 3;
  gsize n = (gsize) C * B * hw, nq = (gsize) 3 * C * B * T;
  g_autofree float *x = random_floats (rng, n, -2, 2);
  g_autofree float *gamma = random_floats (rng, C, 0.5, 1.5);
  g_autofree float *beta = random_floats (rng, C, -0.5, 0.5);
  g_autofree float *ss = random_floats (rng, 2 * C * B, -0.5, 0.5);
  g_autofree float *qkv = random_floats (rng, nq, -3, 3);
  g_autofree float *scores = g_new (float, diffuse__attention_scratch (T, 4));
  float *ref[2], *got[2];
  DiffusePool *p2 = diffuse__pool_new (2);
  DiffusePool *p4 = diffuse__pool_new (4);
  gsize sizes[2] = { n, (gsize) C * B * T };

  for (gint k = 0; k < 2; k++)
    {
      ref[k] = g_new (float, sizes[k]);
      got[k] = g_new (float, sizes[k]);
    }
  diffuse__group_norm (NULL, x, C, B, hw, 32, 1e-5f, gamma, beta, ss, ss + C,
                       2 * C, TRUE, ref[0]);
  diffuse__attention (NULL, qkv, C, B, T, heads, FALSE, scores, ref[1]);
  for (gint r = 0; r < 3; r++)
    {
      DiffusePool *p = r == 0 ? p2 : p4;

      diffuse__pool_set_active (p, r == 2 ? 3 : 4);
      diffuse__group_norm (p, x, C, B, hw, 32, 1e-5f, gamma, beta, ss, ss + C,
                           2 * C, TRUE, got[0]);
      diffuse__attention (p, qkv, C, B, T, heads, FALSE, scores, got[1]);
      for (gint k = 0; k < 2; k++)
        if (memcmp (ref[k], got[k], sizes[k] * sizeof (float)) != 0)
          {
            n_failed++;
            g_print ("FAIL %s with %d threads differs from 1 thread\n",
                     k ? "attention" : "group_norm",
                     diffuse__pool_get_n_threads (p));
          }
    }
  g_print (
      "ok   thread invariance (group_norm, attention: 1, 2, 3, 4 threads)\n");
  for (gint k = 0; k < 2; k++)
    {
      g_free (ref[k]);
      g_free (got[k]);
    }
  diffuse__pool_free (p2);
  diffuse__pool_free (p4);
}

int
main (void)
{
  g_autoptr (GRand) rng = g_rand_new_with_seed (1234);

  /* as during diffuse_unet_forward: the kernels thread their GEMMs */
  openblas_set_num_threads (1);
  for (gint round = 0; round < 2; round++)
    {
      if (round == 1)
        pool = diffuse__pool_new (3);
      g_print ("-- %d thread(s)\n", diffuse__pool_get_n_threads (pool));
      test_timestep_embedding ();
      test_linear (rng);
      test_silu (rng);
      test_group_norm (rng);
      test_conv2d (rng);
      test_winograd (rng, 2);
      test_winograd (rng, 4);
      test_winograd_error (rng);
      test_resample (rng);
      test_attention (rng);
      test_transpose (rng);
    }
  diffuse__pool_free (pool);
  test_thread_invariance (rng);
  g_print ("%d failed\n", n_failed);
  return n_failed ? 1 : 0;
}
