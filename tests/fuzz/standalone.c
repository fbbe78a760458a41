/* Runs LLVMFuzzerTestOneInput over files and directories of files, so
 * the corpora replay as an ordinary test without libFuzzer. */
#include <stdint.h>
#include <stdio.h>

#include <glib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static gboolean
run_file (const char *path, guint *n_run)
{
  g_autoptr (GError) error = NULL;
  gchar *contents = NULL;
  gsize len;
  guint8 *copy;

  if (!g_file_get_contents (path, &contents, &len, &error))
    {
      fprintf (stderr, "%s\n", error->message);
      return FALSE;
    }
  /* an exact-size copy, so sanitizers see reads past the end */
  copy = g_memdup2 (contents, len);
  g_free (contents);
  LLVMFuzzerTestOneInput (copy, len);
  g_free (copy);
  (*n_run)++;
  return TRUE;
}

int
main (int argc, char **argv)
{
  guint n_run = 0;
  gint i;

  for (i = 1; i < argc; i++)
    {
      g_autoptr (GDir) dir = NULL;
      const char *name;

      if (!g_file_test (argv[i], G_FILE_TEST_IS_DIR))
        {
          if (!run_file (argv[i], &n_run))
            return 1;
          continue;
        }
      dir = g_dir_open (argv[i], 0, NULL);
      while (dir != NULL && (name = g_dir_read_name (dir)) != NULL)
        {
          g_autofree gchar *path = g_build_filename (argv[i], name, NULL);

          /* files only (tests/data/images holds a folder npy/) */
          if (name[0] == '.' || g_file_test (path, G_FILE_TEST_IS_DIR))
            continue;
          if (!run_file (path, &n_run))
            return 1;
        }
    }
  printf ("%u inputs replayed\n", n_run);
  return n_run > 0 ? 0 : 1;
}
