/* PNG and .npy input/output.
 *
 * The fixtures in tests/data/images were encoded by make_images.py without
 * libpng (hand-written filters, Adam7, tRNS) and come with NAME.npy, the
 * expected [1, C, H, W] float image written by numpy; the .npy fixtures in
 * images/npy were written by numpy itself or are hand-made hostile files.
 */
#include "diffuse.h"

#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

static const char *valid_images[] = {
  "grey8", "grey-alpha8", "rgb8",       "rgba8",         "rgb8-interlaced",
  "rgb16", "rgba16",      "grey16",     "palette4-trns", "palette4",
  "grey1", "grey2",       "grey8-trns", "rgb8-trns",     NULL
};

static const char *corrupt_images[] = {
  "corrupt-truncated",  "corrupt-no-iend",       "corrupt-crc",
  "corrupt-not-png",    "corrupt-empty",         "corrupt-zlib",
  "corrupt-short-data", "corrupt-zero-width",    "corrupt-huge",
  "corrupt-huge-area",  "corrupt-palette-index", NULL
};

static gchar *
data_path (const char *sub, const char *name, const char *ext)
{
  const char *root = g_getenv ("DIFFUSE_TEST_DATA");
  g_autofree gchar *file = g_strconcat (name, ext, NULL);

  g_assert_nonnull (root);
  return g_build_filename (root, sub, file, NULL);
}

static float *
load_expected (const char *name, gint64 shape[4])
{
  g_autofree gchar *path = data_path ("images", name, ".npy");
  g_autoptr (GError) error = NULL;
  gint ndim = 0;
  float *e = diffuse_npy_load (path, &ndim, shape, &error);

  g_assert_no_error (error);
  g_assert_cmpint (ndim, ==, 4);
  g_assert_cmpint (shape[0], ==, 1);
  return e;
}

/* Loads every fixture with its own channel count: exact values. */
static void
test_png_native (void)
{
  for (const char **n = valid_images; *n; n++)
    {
      g_autofree gchar *path = data_path ("images", *n, ".png");
      g_autoptr (GError) error = NULL;
      gint64 shape[4];
      g_autofree float *expected = load_expected (*n, shape);
      gint c = -1, h = -1, w = -1;
      g_autofree float *got = diffuse_png_load (path, 0, &c, &h, &w, &error);
      double max_diff = 0;

      g_assert_no_error (error);
      g_assert_nonnull (got);
      g_assert_cmpint (c, ==, shape[1]);
      g_assert_cmpint (h, ==, shape[2]);
      g_assert_cmpint (w, ==, shape[3]);
      for (gint64 i = 0; i < shape[1] * shape[2] * shape[3]; i++)
        max_diff = MAX (max_diff, fabs (got[i] - expected[i]));
      g_test_message ("%s: %d channels, %dx%d, max |diff| %g", *n, c, w, h,
                      max_diff);
      g_assert_cmpfloat (max_diff, <=, 1e-6);
    }
}

/* Loads every fixture as 1..4 channels; the expectation is built here from
 * the native image: BT.601 luma for colour -> grey, replication for grey ->
 * colour, alpha dropped or added as opaque (+1). */
static void
test_png_convert (void)
{
  for (const char **n = valid_images; *n; n++)
    for (gint want = 1; want <= 4; want++)
      {
        g_autofree gchar *path = data_path ("images", *n, ".png");
        g_autoptr (GError) error = NULL;
        gint64 shape[4];
        g_autofree float *src = load_expected (*n, shape);
        gint sc = (gint) shape[1];
        gsize plane = (gsize) (shape[2] * shape[3]);
        gint c = -1, h, w;
        g_autofree float *got =
            diffuse_png_load (path, want, &c, &h, &w, &error);

        g_assert_no_error (error);
        g_assert_cmpint (c, ==, want);
        for (gsize i = 0; i < plane; i++)
          {
            double rgb[3],
                alpha = (sc == 2 || sc == 4) ? src[(sc - 1) * plane + i] : 1.0;

            for (gint k = 0; k < 3; k++)
              rgb[k] = src[(sc >= 3 ? k : 0) * plane + i];
            for (gint k = 0; k < want; k++)
              {
                double e;

                if ((want == 2 || want == 4) && k == want - 1)
                  e = alpha;
                else if (want >= 3)
                  e = rgb[k];
                else
                  e = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
                if (fabs (got[k * plane + i] - e) > 1e-5)
                  g_error ("%s as %d channels: channel %d pixel %zu: got %g, "
                           "expected %g",
                           *n, want, k, i, got[k * plane + i], e);
              }
          }
      }
}

static void
test_png_corrupt (void)
{
  for (const char **n = corrupt_images; *n; n++)
    {
      g_autofree gchar *path = data_path ("images", *n, ".png");
      g_autoptr (GError) error = NULL;
      gint c = -7, h = -7, w = -7;
      float *got = diffuse_png_load (path, 3, &c, &h, &w, &error);

      g_assert_null (got);
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
      g_assert_nonnull (strstr (error->message, path));
      g_assert_cmpint (c, ==, -7);
      g_test_message ("%s", error->message);
    }
}

static void
test_png_missing (void)
{
  g_autoptr (GError) error = NULL;
  gint c, h, w;

  g_assert_null (
      diffuse_png_load ("/nonexistent/dir/x.png", 0, &c, &h, &w, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
  g_clear_error (&error);

  g_assert_null (
      diffuse_png_load ("/nonexistent/dir/x.png", 5, &c, &h, &w, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
}

/* Save every channel count, read back: the file's IHDR has the right colour
 * type, values on the 8-bit grid come back exactly, others are rounded to
 * the nearest level and clamped. */
static void
test_png_round_trip (void)
{
  static const guint8 color_type[] = { 0, 4, 2, 6 };
  g_autofree gchar *dir = g_dir_make_tmp ("diffuse-test-XXXXXX", NULL);
  const gint h = 7, w = 9;

  g_assert_nonnull (dir);
  for (gint ch = 1; ch <= 4; ch++)
    {
      g_autofree gchar *path = g_build_filename (dir, "rt.png", NULL);
      gsize n = (gsize) ch * h * w;
      g_autofree float *data = g_new (float, n);
      g_autofree guint8 *want = g_new (guint8, n);
      g_autofree gchar *bytes = NULL;
      g_autofree float *back = NULL;
      g_autoptr (GError) error = NULL;
      gsize len;
      gint c, hh, ww;

      for (gsize i = 0; i < n; i++)
        {
          gint level = (gint) ((i * 97 + ch * 13) % 256);

          switch (i % 6)
            {
            case 0: /* exactly on the grid */
              data[i] = level / 127.5f - 1.0f;
              want[i] = level;
              break;
            case 1: /* 0.3 of a level above: rounds down */
              data[i] = (MIN (level, 254) + 0.3f) / 127.5f - 1.0f;
              want[i] = MIN (level, 254);
              break;
            case 2: /* 0.7 of a level above: rounds up */
              data[i] = (MIN (level, 254) + 0.7f) / 127.5f - 1.0f;
              want[i] = MIN (level, 254) + 1;
              break;
            case 3:
              data[i] = 1.5f + level;
              want[i] = 255;
              break;
            case 4:
              data[i] = -1.25f - level;
              want[i] = 0;
              break;
            default: /* huge but finite (NaN is refused) */
              data[i] = (i & 1) ? 3e38f : -3e38f;
              want[i] = (i & 1) ? 255 : 0;
              break;
            }
        }
      g_assert_true (diffuse_png_save (path, data, ch, h, w, &error));
      g_assert_no_error (error);

      g_assert_true (g_file_get_contents (path, &bytes, &len, NULL));
      g_assert_cmpuint (len, >, 26);
      g_assert_cmpint ((guint8) bytes[24], ==, 8); /* bit depth */
      g_assert_cmpint ((guint8) bytes[25], ==, color_type[ch - 1]);

      back = diffuse_png_load (path, 0, &c, &hh, &ww, &error);
      g_assert_no_error (error);
      g_assert_cmpint (c, ==, ch);
      g_assert_cmpint (hh, ==, h);
      g_assert_cmpint (ww, ==, w);
      for (gsize i = 0; i < n; i++)
        {
          float e = want[i] / 127.5f - 1.0f;

          if (fabsf (back[i] - e) > 1e-6f)
            g_error ("%d channels, element %zu (input %g): got %g, expected "
                     "level %d",
                     ch, i, data[i], back[i], want[i]);
        }
      g_unlink (path);
    }
  g_rmdir (dir);
}

static void
test_png_save_errors (void)
{
  g_autoptr (GError) error = NULL;
  float px[4] = { 0 };

  g_assert_false (
      diffuse_png_save ("/nonexistent/dir/out.png", px, 1, 1, 1, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
  g_clear_error (&error);
  g_assert_false (diffuse_png_save ("/tmp/never.png", px, 5, 1, 1, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (diffuse_png_save ("/tmp/never.png", px, 1, 0, 1, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
}

/* ------------------------------------------------------------------ */

static float *
load_npy (const char *name, gint *ndim, gint64 shape[4], GError **error)
{
  g_autofree gchar *path = data_path ("images/npy", name, ".npy");

  return diffuse_npy_load (path, ndim, shape, error);
}

static void
test_npy_numpy_files (void)
{
  static const char *versions[] = { "good-v1", "good-v2", "good-v3", NULL };

  for (const char **v = versions; *v; v++)
    {
      g_autoptr (GError) error = NULL;
      gint ndim = -1;
      gint64 shape[4];
      g_autofree float *a = load_npy (*v, &ndim, shape, &error);

      g_assert_no_error (error);
      g_assert_cmpint (ndim, ==, 3);
      g_assert_cmpint (shape[0], ==, 2);
      g_assert_cmpint (shape[1], ==, 3);
      g_assert_cmpint (shape[2], ==, 4);
      g_assert_cmpint (shape[3], ==, 0);
      for (gint i = 0; i < 24; i++)
        g_assert_cmpfloat (a[i], ==, (float) ((i - 7.5f) / 3.0f));
    }
  {
    g_autoptr (GError) error = NULL;
    gint ndim = -1;
    gint64 shape[4];
    g_autofree float *a = load_npy ("good-1d", &ndim, shape, &error);

    g_assert_no_error (error);
    g_assert_cmpint (ndim, ==, 1);
    g_assert_cmpint (shape[0], ==, 3);
    g_assert_cmpfloat (a[0], ==, 1.5f);
    g_assert_cmpfloat (a[1], ==, -2.25f);
    g_assert_cmpfloat (a[2], ==, 3e-8f);
  }
  {
    g_autoptr (GError) error = NULL;
    gint ndim = -1;
    gint64 shape[4];
    g_autofree float *a = load_npy ("good-0d", &ndim, shape, &error);

    g_assert_no_error (error);
    g_assert_cmpint (ndim, ==, 0);
    g_assert_cmpfloat (a[0], ==, 42.5f);
  }
  {
    g_autoptr (GError) error = NULL;
    gint ndim = -1;
    gint64 shape[4];
    g_autofree float *a = load_npy ("good-4d", &ndim, shape, &error);

    g_assert_no_error (error);
    g_assert_cmpint (ndim, ==, 4);
    g_assert_cmpint (shape[0] * 10 + shape[1], ==, 21);
    g_assert_cmpint (shape[2] * 10 + shape[3], ==, 32);
    g_assert_cmpfloat (a[0], ==, -1.0f);
    g_assert_cmpfloat (a[11], ==, 1.0f);
  }
  {
    g_autoptr (GError) error = NULL;
    gint ndim = -1;
    gint64 shape[4];
    g_autofree float *a = load_npy ("good-empty", &ndim, shape, &error);

    g_assert_no_error (error);
    g_assert_nonnull (a);
    g_assert_cmpint (ndim, ==, 2);
    g_assert_cmpint (shape[0], ==, 0);
    g_assert_cmpint (shape[1], ==, 3);
  }
}

static void
test_npy_hostile (void)
{
  static const char *bad[] = { "bad-f8",         "bad-i4",
                               "bad-fortran",    "bad-5d",
                               "bad-big-endian", "bad-truncated-data",
                               "bad-extra-data", "bad-truncated-header",
                               "bad-magic",      "bad-version",
                               "bad-header-len", "bad-overflow",
                               "bad-negative",   "bad-no-shape",
                               "bad-unclosed",   "bad-nul",
                               "bad-empty",      NULL };

  for (const char **b = bad; *b; b++)
    {
      g_autoptr (GError) error = NULL;
      gint ndim = -1;
      gint64 shape[4] = { -1, -1, -1, -1 };
      float *a = load_npy (*b, &ndim, shape, &error);

      g_assert_null (a);
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
      g_assert_cmpint (ndim, ==, -1);
      g_test_message ("%s: %s", *b, error->message);
    }
  {
    g_autoptr (GError) error = NULL;
    gint ndim;
    gint64 shape[4];

    g_assert_null (load_npy ("does-not-exist", &ndim, shape, &error));
    g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
  }
  /* the reasons are named */
  {
    g_autoptr (GError) error = NULL;

    g_assert_null (load_npy ("bad-fortran", NULL, NULL, &error));
    g_assert_nonnull (strstr (error->message, "fortran_order"));
    g_clear_error (&error);
    g_assert_null (load_npy ("bad-f8", NULL, NULL, &error));
    g_assert_nonnull (strstr (error->message, "<f8"));
  }
}

/* Five dimensions only through diffuse_npy_load_nd; six never. */
static void
test_npy_5d (void)
{
  g_autofree gchar *good = data_path ("images/npy", "good-5d", ".npy");
  g_autofree gchar *six = data_path ("images/npy", "bad-6d", ".npy");
  g_autoptr (GError) error = NULL;
  gint64 shape[5] = { -1, -1, -1, -1, -1 };
  gint ndim = -1;
  g_autofree float *a = diffuse_npy_load_nd (good, 5, &ndim, shape, &error);

  g_assert_no_error (error);
  g_assert_cmpint (ndim, ==, 5);
  g_assert_cmpint (shape[0], ==, 2);
  g_assert_cmpint (shape[1], ==, 1);
  g_assert_cmpint (shape[2], ==, 2);
  g_assert_cmpint (shape[3], ==, 1);
  g_assert_cmpint (shape[4], ==, 3);
  for (gint i = 0; i < 12; i++)
    g_assert_cmpfloat_with_epsilon (a[i], -1.0f + 2.0f * i / 11.0f, 1e-6);

  /* the 4-D reader refuses it, naming the dimensions */
  ndim = -1;
  g_assert_null (diffuse_npy_load (good, &ndim, shape, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "5 dimensions"));
  g_assert_cmpint (ndim, ==, -1);
  g_clear_error (&error);
  /* a 4-D limit through load_nd too */
  g_assert_null (diffuse_npy_load_nd (good, 4, &ndim, shape, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
  g_clear_error (&error);
  g_assert_null (diffuse_npy_load_nd (six, 5, &ndim, shape, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
  g_assert_nonnull (strstr (error->message, "more than 5"));
  g_assert_cmpint (ndim, ==, -1);
}

/* Our writer produces numpy's bytes exactly, and round-trips 0..4 dims. */
static void
test_npy_save (void)
{
  g_autofree gchar *dir = g_dir_make_tmp ("diffuse-test-XXXXXX", NULL);
  g_autofree gchar *path = g_build_filename (dir, "a.npy", NULL);
  g_autofree gchar *numpy_path = data_path ("images/npy", "good-v1", ".npy");
  g_autofree gchar *ours = NULL, *theirs = NULL;
  gsize ours_len, theirs_len;
  float a[24];
  gint64 shape[4] = { 2, 3, 4, 0 };
  g_autoptr (GError) error = NULL;

  for (gint i = 0; i < 24; i++)
    a[i] = (i - 7.5f) / 3.0f;
  g_assert_true (diffuse_npy_save (path, a, 3, shape, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_get_contents (path, &ours, &ours_len, NULL));
  g_assert_true (g_file_get_contents (numpy_path, &theirs, &theirs_len, NULL));
  g_assert_cmpmem (ours, ours_len, theirs, theirs_len);

  for (gint nd = 0; nd <= 4; nd++)
    {
      gint64 s[4] = { 2, 1, 3, 2 }, back_shape[4];
      gint back_nd = -1;
      g_autofree float *back = NULL;
      gsize n = 1;

      for (gint i = 0; i < nd; i++)
        n *= s[i];
      g_assert_true (diffuse_npy_save (path, a, nd, s, &error));
      back = diffuse_npy_load (path, &back_nd, back_shape, &error);
      g_assert_no_error (error);
      g_assert_cmpint (back_nd, ==, nd);
      for (gint i = 0; i < nd; i++)
        g_assert_cmpint (back_shape[i], ==, s[i]);
      g_assert_cmpmem (back, n * sizeof (float), a, n * sizeof (float));
    }

  g_assert_false (diffuse_npy_save (path, a, 5, shape, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_clear_error (&error);
  shape[1] = -3;
  g_assert_false (diffuse_npy_save (path, a, 3, shape, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (
      diffuse_npy_save ("/nonexistent/dir/a.npy", a, 1, shape, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);

  g_unlink (path);
  g_rmdir (dir);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/image-io/png/native", test_png_native);
  g_test_add_func ("/image-io/png/convert", test_png_convert);
  g_test_add_func ("/image-io/png/corrupt", test_png_corrupt);
  g_test_add_func ("/image-io/png/missing", test_png_missing);
  g_test_add_func ("/image-io/png/round-trip", test_png_round_trip);
  g_test_add_func ("/image-io/png/save-errors", test_png_save_errors);
  g_test_add_func ("/image-io/npy/numpy-files", test_npy_numpy_files);
  g_test_add_func ("/image-io/npy/hostile", test_npy_hostile);
  g_test_add_func ("/image-io/npy/5d", test_npy_5d);
  g_test_add_func ("/image-io/npy/save", test_npy_save);
  return g_test_run ();
}
