/* libFuzzer target: preset files (diffuse_preset_load_file), through a
 * file because that is the only way presets are read.  Every input gives
 * a preset or a GError; a preset that loads saves and loads back to the
 * same settings, and applies to sampling parameters that validate as far
 * as the preset goes.  Seeds: preset/seeds (the shipped presets). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib/gstdio.h>

#include "diffuse-private.h"

/* a preset is a few lines; the cap still covers many groups and keys */
#define FUZZ_MAX_INPUT (64u << 10)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static gchar *dir;

static void
remove_dir (void)
{
  g_autofree gchar *a = g_build_filename (dir, "in.preset", NULL);
  g_autofree gchar *b = g_build_filename (dir, "out.preset", NULL);

  g_unlink (a);
  g_unlink (b);
  g_rmdir (dir);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  g_autofree gchar *in = NULL, *out = NULL;
  GError *error = NULL;
  DiffusePreset *p, *q;

  if (size > FUZZ_MAX_INPUT)
    return 0;
  if (dir == NULL)
    {
      /* in memory where there is a tmpfs: saves fsync each file */
      dir = g_file_test ("/dev/shm", G_FILE_TEST_IS_DIR)
                ? g_mkdtemp (g_strdup ("/dev/shm/fuzz-preset-XXXXXX"))
                : g_dir_make_tmp ("fuzz-preset-XXXXXX", NULL);
      g_assert (dir != NULL);
      atexit (remove_dir);
    }
  in = g_build_filename (dir, "in.preset", NULL);
  out = g_build_filename (dir, "out.preset", NULL);
  {
    FILE *fp = fopen (in, "wb");

    g_assert (fp != NULL);
    g_assert (fwrite (data, 1, size, fp) == size);
    g_assert (fclose (fp) == 0);
  }

  p = diffuse_preset_load_file (in, &error);
  if (p == NULL)
    {
      g_assert (error != NULL && error->message != NULL);
      g_error_free (error);
      return 0;
    }
  g_assert (error == NULL && p->name != NULL);
  {
    DiffuseSampleParams params;

    diffuse_sample_params_init (&params);
    diffuse_preset_apply (p, &params);
  }
  if (diffuse_preset_save_file (p, out, &error))
    {
      q = diffuse_preset_load_file (out, &error);
      g_assert (q != NULL);
      g_assert (strcmp (p->name, q->name) == 0);
      g_assert (p->given == q->given);
      /* every setting the preset gives reads back as the same text */
      {
        gint n;
        const DiffuseSetting *table = diffuse_settings (&n);

        for (gint i = 0; i < n; i++)
          if (p->given & (1u << i))
            {
              g_autofree gchar *a =
                  diffuse_setting_to_string (&table[i], &p->values);
              g_autofree gchar *b =
                  diffuse_setting_to_string (&table[i], &q->values);

              g_assert (strcmp (a, b) == 0);
            }
      }
      diffuse_preset_free (q);
    }
  else
    g_clear_error (&error);
  diffuse_preset_free (p);
  return 0;
}
