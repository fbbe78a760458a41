/* Helper for tests/test-cli.sh (so that the shell test needs no Python).
 *
 *   npy-compare A.npy B.npy TOL
 *       Same shape, and max |a - b| / max(1, max |b|) <= TOL (B is the
 *       reference).  Prints the shape and the difference.
 *   npy-compare --png-shape FILE.png
 *       Prints "CHANNELS HEIGHT WIDTH" of a PNG (its own channel count).
 *   npy-compare --png-matches FILE.png X.npy INDEX
 *       The PNG is image INDEX of X [K, C, H, W] rounded to 8 bits: every
 *       pixel within half a level (plus float slack) of the clamped value.
 *   npy-compare --fill OUT.npy K,C,H,W VALUE [INDEX]
 *       Writes an array of that shape filled with 0, except element INDEX
 *       (default: every element) set to VALUE ("nan", "inf", "3e38").
 *   npy-compare --mask-png OUT.png CHANNELS H W X0 Y0 X1 Y1 [VALUE]
 *       Writes a mask PNG (1 grey, 2 grey+alpha, 3 RGB channels): black,
 *       the rectangle [X0, X1) x [Y0, Y1) at VALUE (0..255, default 255);
 *       with alpha, the colour is white everywhere and the alpha carries
 *       the mask.
 *   npy-compare --png-masked A.png B.png MASK.png
 *       A (an inpainted image) against B (its input) by a grey MASK:
 *       where the mask is 0 the pixels must be byte-identical, and some
 *       pixel where it is not must differ.  Prints both counts.
 *
 * Exit status 0 when the check holds, 1 when it does not or on errors.
 */
#include "diffuse.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
fail (GError *error)
{
  fprintf (stderr, "npy-compare: %s\n", error->message);
  g_error_free (error);
  return 1;
}

static int
compare (const char *a_path, const char *b_path, double tol)
{
  GError *error = NULL;
  gint nd_a, nd_b;
  gint64 sa[4], sb[4];
  g_autofree float *a = diffuse_npy_load (a_path, &nd_a, sa, &error);
  g_autofree float *b = NULL;
  double max_diff = 0, max_ref = 0;
  gsize n = 1;

  if (a == NULL)
    return fail (error);
  b = diffuse_npy_load (b_path, &nd_b, sb, &error);
  if (b == NULL)
    return fail (error);
  if (nd_a != nd_b || memcmp (sa, sb, sizeof sa) != 0)
    {
      fprintf (stderr,
               "npy-compare: shapes differ: %s has %d dims "
               "[%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT
               ",%" G_GINT64_FORMAT "], %s has %d dims [%" G_GINT64_FORMAT
               ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT ",%" G_GINT64_FORMAT
               "]\n",
               a_path, nd_a, sa[0], sa[1], sa[2], sa[3], b_path, nd_b, sb[0],
               sb[1], sb[2], sb[3]);
      return 1;
    }
  for (gint i = 0; i < nd_a; i++)
    n *= (gsize) sa[i];
  for (gsize i = 0; i < n; i++)
    {
      double d = fabs ((double) a[i] - b[i]);

      if (isnan (d))
        {
          fprintf (stderr, "npy-compare: NaN at element %zu\n", i);
          return 1;
        }
      max_diff = MAX (max_diff, d);
      max_ref = MAX (max_ref, fabs ((double) b[i]));
    }
  printf ("%zu elements, max |a-b| = %.3g, max |b| = %.3g, relative %.3g "
          "(tolerance %.3g)\n",
          n, max_diff, max_ref, max_diff / MAX (1.0, max_ref), tol);
  return max_diff / MAX (1.0, max_ref) <= tol ? 0 : 1;
}

static int
png_shape (const char *path)
{
  GError *error = NULL;
  gint c, h, w;
  g_autofree float *img = diffuse_png_load (path, 0, &c, &h, &w, &error);

  if (img == NULL)
    return fail (error);
  printf ("%d %d %d\n", c, h, w);
  return 0;
}

static int
png_matches (const char *png, const char *npy, gint index)
{
  GError *error = NULL;
  gint c, h, w, nd;
  gint64 s[4];
  g_autofree float *img = diffuse_png_load (png, 0, &c, &h, &w, &error);
  g_autofree float *x = NULL;
  gsize n;
  const float *xk;

  if (img == NULL)
    return fail (error);
  x = diffuse_npy_load (npy, &nd, s, &error);
  if (x == NULL)
    return fail (error);
  if (nd != 4 || index < 0 || index >= s[0] || s[1] != c || s[2] != h ||
      s[3] != w)
    {
      fprintf (stderr,
               "npy-compare: %s (%d x %d, %d channels) is not image %d "
               "of %s\n",
               png, w, h, c, index, npy);
      return 1;
    }
  n = (gsize) c * h * w;
  xk = x + index * n;
  for (gsize i = 0; i < n; i++)
    {
      /* PNG level p decodes to p / 127.5 - 1 */
      double want = CLAMP ((double) xk[i], -1.0, 1.0);

      if (fabs (img[i] - want) > 0.5 / 127.5 + 1e-5)
        {
          fprintf (stderr, "npy-compare: element %zu: PNG %g, array %g\n", i,
                   img[i], xk[i]);
          return 1;
        }
    }
  printf ("%s matches image %d of %s (%zu values)\n", png, index, npy, n);
  return 0;
}

static int
fill (const char *path, const char *shape_text, const char *value_text,
      const char *index_text)
{
  g_auto (GStrv) dims = g_strsplit (shape_text, ",", 0);
  gint64 shape[4];
  gint ndim = (gint) g_strv_length (dims);
  gsize n = 1;
  g_autofree float *data = NULL;
  double value = g_ascii_strtod (value_text, NULL);
  GError *error = NULL;

  if (ndim < 1 || ndim > 4)
    return 1;
  for (gint i = 0; i < ndim; i++)
    {
      shape[i] = g_ascii_strtoll (dims[i], NULL, 10);
      n *= (gsize) shape[i];
    }
  data = g_new0 (float, n);
  for (gsize i = 0; i < n; i++)
    if (index_text == NULL ||
        i == (gsize) g_ascii_strtoull (index_text, NULL, 10))
      data[i] = (float) value;
  if (!diffuse_npy_save (path, data, ndim, shape, &error))
    return fail (error);
  return 0;
}

/* argv[0] = "--mask-png", argv[1] = OUT.png, ... */
static int
mask_png (char **argv, gint argc)
{
  GError *error = NULL;
  gint c = atoi (argv[2]), h = atoi (argv[3]), w = atoi (argv[4]);
  gint x0 = atoi (argv[5]), y0 = atoi (argv[6]);
  gint x1 = atoi (argv[7]), y1 = atoi (argv[8]);
  double value = argc == 10 ? g_ascii_strtod (argv[9], NULL) : 255.0;
  gsize hw = (gsize) h * w;
  g_autofree float *data = g_new (float, (gsize) c *hw);
  gboolean alpha = c == 2;

  for (gint k = 0; k < c; k++)
    for (gint y = 0; y < h; y++)
      for (gint x = 0; x < w; x++)
        {
          gboolean in = x >= x0 && x < x1 && y >= y0 && y < y1;
          double v = in ? value : 0.0;

          if (alpha && k == 0)
            v = 255.0;
          data[k * hw + (gsize) y * w + x] = (float) (v / 127.5 - 1.0);
        }
  if (!diffuse_png_save (argv[1], data, c, h, w, &error))
    return fail (error);
  return 0;
}

static int
png_masked (const char *a_path, const char *b_path, const char *m_path)
{
  GError *error = NULL;
  gint ca, ha, wa, cb, hb, wb, cm, hm, wm;
  g_autofree float *a = diffuse_png_load (a_path, 0, &ca, &ha, &wa, &error);
  g_autofree float *b = NULL, *m = NULL;
  gsize kept = 0, kept_diff = 0, masked = 0, changed = 0, hw;

  if (a == NULL ||
      (b = diffuse_png_load (b_path, 0, &cb, &hb, &wb, &error)) == NULL ||
      (m = diffuse_png_load (m_path, 1, &cm, &hm, &wm, &error)) == NULL)
    return fail (error);
  if (ca != cb || ha != hb || wa != wb || hm != ha || wm != wa)
    {
      fprintf (stderr, "npy-compare: sizes differ\n");
      return 1;
    }
  hw = (gsize) ha * wa;
  for (gsize j = 0; j < hw; j++)
    {
      gboolean differs = FALSE;

      for (gint k = 0; k < ca; k++)
        differs |= a[k * hw + j] != b[k * hw + j];
      if (m[j] == -1.0f)
        kept++, kept_diff += differs;
      else
        masked++, changed += differs;
    }
  printf ("kept %" G_GSIZE_FORMAT " pixels, %" G_GSIZE_FORMAT
          " differ; masked %" G_GSIZE_FORMAT " pixels, %" G_GSIZE_FORMAT
          " changed\n",
          kept, kept_diff, masked, changed);
  return kept_diff == 0 && changed > 0 ? 0 : 1;
}

int
main (int argc, char **argv)
{
  if ((argc == 10 || argc == 11) && strcmp (argv[1], "--mask-png") == 0)
    return mask_png (argv + 1, argc - 1);
  if (argc == 5 && strcmp (argv[1], "--png-masked") == 0)
    return png_masked (argv[2], argv[3], argv[4]);
  if ((argc == 5 || argc == 6) && strcmp (argv[1], "--fill") == 0)
    return fill (argv[2], argv[3], argv[4], argc == 6 ? argv[5] : NULL);
  if (argc == 3 && strcmp (argv[1], "--png-shape") == 0)
    return png_shape (argv[2]);
  if (argc == 5 && strcmp (argv[1], "--png-matches") == 0)
    return png_matches (argv[2], argv[3], atoi (argv[4]));
  if (argc == 4)
    return compare (argv[1], argv[2], g_ascii_strtod (argv[3], NULL));
  fprintf (stderr, "usage: npy-compare A.npy B.npy TOL | --png-shape F.png | "
                   "--png-matches F.png X.npy INDEX\n");
  return 2;
}
