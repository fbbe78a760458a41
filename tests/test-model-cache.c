/* engine/model-cache.c: a second load of the same file skips the weight
 * scan on the record the first left, with the same forward output bit
 * for bit; a changed model file (one now holding a NaN) is scanned again
 * and refused; a corrupted, truncated, emptied, replaced-by-a-folder,
 * -FIFO or -link record is a miss that a good record replaces; with the
 * cache off nothing is written. */
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#include "diffuse-private.h"
#include "testutil-safetensors.h"

static gint n_failed;

static void
expect (gboolean ok, const char *what)
{
  g_print ("%s %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok)
    n_failed++;
}

/* the single record in dir, or NULL */
static gchar *
only_record (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *name;
  gchar *found = NULL;
  gint n = 0;

  while (d && (name = g_dir_read_name (d)) != NULL)
    if (g_str_has_suffix (name, ".verified"))
      {
        n++;
        g_free (found);
        found = g_build_filename (dir, name, NULL);
      }
  if (n != 1)
    g_clear_pointer (&found, g_free);
  return found;
}

/* loads path; *cached: whether the scan was skipped; out: the forward
 * pass on a fixed input (NULL to skip) */
static gboolean
load (const char *path, gboolean *cached, float *out, GError **error)
{
  g_autoptr (DiffuseModel) model = diffuse_model_new_from_file (path, error);
  g_autoptr (DiffuseUNet) unet = NULL;
  const DiffuseModelConfig *cfg;
  g_autofree float *x = NULL;
  float t = 500.0f;
  gint label = 1;

  if (model == NULL)
    return FALSE;
  *cached = diffuse__model_scan_was_cached (model);
  if (out == NULL)
    return TRUE;
  cfg = diffuse_model_get_config (model);
  x = g_new (float, (gsize) cfg->in_channels * 16 * 16);
  for (gint i = 0; i < cfg->in_channels * 16 * 16; i++)
    x[i] = (float) ((i * 37) % 101) / 50.0f - 1.0f;
  unet = diffuse_unet_new (model, 1, 16, 16, 1, error);
  return unet != NULL &&
         diffuse_unet_forward (unet, 1, x, &t, &label, out, error);
}

static void
write_bytes (const char *path, const void *data, gsize len)
{
  g_autoptr (GError) error = NULL;

  if (!g_file_set_contents (path, data, len, &error))
    g_error ("%s", error->message);
}

int
main (void)
{
  g_autoptr (GError) error = NULL;
  g_autofree gchar *dir = g_dir_make_tmp ("diffuse-cache-XXXXXX", NULL);
  g_autofree gchar *path = NULL, *rec = NULL, *rec_bytes = NULL;
  g_autofree float *out0 = NULL, *out1 = NULL, *out2 = NULL;
  DiffuseModelConfig cfg;
  TestSt *b = test_st_new ();
  gsize n_out, rec_len = 0;
  gboolean cached = TRUE, ok;
  GBytes *file;

  g_setenv ("DIFFUSE_CACHE_DIR", dir, TRUE);
  g_unsetenv ("DIFFUSE_CACHE");
  test_unet_config_init (&cfg);
  test_unet_set_metadata (b, &cfg);
  test_unet_add_tensors (b, &cfg);
  path = test_st_write_temp (b);
  n_out = (gsize) cfg.out_channels * 16 * 16;
  out0 = g_new (float, n_out);
  out1 = g_new (float, n_out);
  out2 = g_new (float, n_out);

  /* cache off: a full scan, nothing written */
  g_setenv ("DIFFUSE_CACHE", "off", TRUE);
  ok = load (path, &cached, out0, &error);
  expect (ok && !cached, "cache off: the weights are scanned");
  rec = only_record (dir);
  expect (rec == NULL, "cache off: no record written");
  g_unsetenv ("DIFFUSE_CACHE");

  ok = load (path, &cached, NULL, &error);
  expect (ok && !cached, "first load scans");
  rec = only_record (dir);
  expect (rec != NULL, "first load leaves one record");
  if (rec == NULL)
    return 1;
  g_file_get_contents (rec, &rec_bytes, &rec_len, NULL);
  ok = load (path, &cached, out1, &error);
  expect (ok && cached, "second load skips the scan on the record");
  expect (ok && memcmp (out0, out1, n_out * sizeof (float)) == 0,
          "forward output with the record equals the one without, bit for "
          "bit");

  /* bad records: each a miss, then replaced by a good one */
  {
    static const char *const kinds[] = {
      "flipped byte", "truncated",        "empty", "longer", "folder",
      "fifo",         "link to /dev/zero"
    };

    for (guint k = 0; k < G_N_ELEMENTS (kinds); k++)
      {
        g_autofree gchar *what = NULL, *now = NULL;
        g_autofree gchar *bad = g_memdup2 (rec_bytes, rec_len + 1);
        gsize now_len = 0;

        g_remove (rec);
        switch (k)
          {
          case 0:
            bad[rec_len / 2] ^= 0x40;
            write_bytes (rec, bad, rec_len);
            break;
          case 1:
            write_bytes (rec, bad, rec_len - 1);
            break;
          case 2:
            write_bytes (rec, bad, 0);
            break;
          case 3:
            bad[rec_len] = 'x';
            write_bytes (rec, bad, rec_len + 1);
            break;
          case 4:
            g_mkdir (rec, 0700);
            break;
          case 5:
            mkfifo (rec, 0600);
            break;
          default:
            if (symlink ("/dev/zero", rec) != 0)
              g_error ("symlink failed");
            break;
          }
        ok = load (path, &cached, out2, &error);
        what = g_strdup_printf ("%s record: a miss, the file scanned, the "
                                "output unchanged",
                                kinds[k]);
        expect (ok && !cached &&
                    memcmp (out0, out2, n_out * sizeof (float)) == 0,
                what);
        g_clear_error (&error);
        g_free (what);
        what = g_strdup_printf ("%s record: replaced by a good one", kinds[k]);
        expect (g_file_test (rec, G_FILE_TEST_IS_REGULAR) &&
                    !g_file_test (rec, G_FILE_TEST_IS_SYMLINK) &&
                    g_file_get_contents (rec, &now, &now_len, NULL) &&
                    now_len == rec_len && memcmp (now, rec_bytes, rec_len) == 0,
                what);
        ok = load (path, &cached, NULL, &error);
        g_free (what);
        what = g_strdup_printf ("%s record: the next load hits", kinds[k]);
        expect (ok && cached, what);
      }
  }

  /* the model file changes (same size, a NaN in it): the record no longer
   * applies, the file is scanned and refused */
  {
    g_autofree gchar *bytes = NULL;
    gsize len = 0;
    float nan_value = NAN;

    g_file_get_contents (path, &bytes, &len, NULL);
    memcpy (bytes + len - 8, &nan_value, sizeof nan_value);
    g_usleep (20000);
    write_bytes (path, bytes, len);
    ok = load (path, &cached, NULL, &error);
    expect (!ok && error && strstr (error->message, "non-finite"),
            "changed model file: scanned again, its NaN refused");
    g_clear_error (&error);
  }

  /* a record for the key of a file opened from bytes: none */
  file = test_st_serialize (b);
  {
    g_autoptr (DiffuseModel) m = diffuse__model_new_from_bytes (
        g_bytes_get_data (file, NULL), g_bytes_get_size (file), NULL, &error);

    expect (m != NULL && !diffuse__model_scan_was_cached (m),
            "a model from bytes is always scanned");
  }
  g_bytes_unref (file);

  g_unlink (path);
  {
    g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
    const char *name;

    while (d && (name = g_dir_read_name (d)) != NULL)
      {
        g_autofree gchar *p = g_build_filename (dir, name, NULL);

        if (g_remove (p) != 0)
          g_rmdir (p);
      }
  }
  g_rmdir (dir);
  test_st_free (b);
  g_print ("%d failed\n", n_failed);
  return n_failed ? 1 : 0;
}
