/* Helpers every diffuse command shares: error and usage printing, option
 * parsing, the preset folders, terminal-safe text and file-name checks.
 * The commands (cli-*.c) and main (diffuse.c) call these; nothing here
 * calls back into them. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

gchar *
cli_escape (const char *text)
{
  g_autofree gchar *valid = g_utf8_make_valid (text, -1);
  GString *out = g_string_new (NULL);

  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      /* C0 and C1 controls, DEL: a terminal would act on them */
      if (c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0))
        g_string_append_printf (out, "\\x%02x", (guint) c);
      else
        g_string_append_len (out, p, g_utf8_next_char (p) - p);
    }
  return g_string_free (out, FALSE);
}

static void
print_line (const char *message)
{
  g_autofree gchar *one_line = g_strdup (message);
  g_autofree gchar *safe = NULL;

  /* keep the promise of one line even for multi-line messages */
  g_strdelimit (one_line, "\r\n", ' ');
  /* messages quote file contents and names: no escape sequences */
  safe = cli_escape (one_line);
  fprintf (stderr, "diffuse: %s\n", safe);
}

int
cli_fail (GError *error)
{
  print_line (error != NULL ? error->message : "unknown error");
  return CLI_EXIT_FAILURE;
}

/* print_line of a printf-style message; returns exit_code */
static int print_vline (int exit_code, const char *format, va_list args)
    G_GNUC_PRINTF (2, 0);

static int
print_vline (int exit_code, const char *format, va_list args)
{
  g_autofree gchar *message = g_strdup_vprintf (format, args);

  print_line (message);
  return exit_code;
}

int
cli_failf (const char *format, ...)
{
  va_list args;
  int code;

  va_start (args, format);
  code = print_vline (CLI_EXIT_FAILURE, format, args);
  va_end (args);
  return code;
}

int
cli_usage (const char *format, ...)
{
  va_list args;
  int code;

  va_start (args, format);
  code = print_vline (CLI_EXIT_USAGE, format, args);
  va_end (args);
  return code;
}

gboolean
cli_parse (GOptionContext *context, int *argc, char ***argv)
{
  g_autoptr (GError) error = NULL;

  if (!g_option_context_parse (context, argc, argv, &error))
    {
      cli_usage ("%s (see '%s --help')", error->message, g_get_prgname ());
      return FALSE;
    }
  return TRUE;
}

gchar **
cli_preset_dirs (void)
{
  gchar **dirs = g_new0 (gchar *, 3);

  dirs[0] = g_strdup (diffuse_presets_system_dir ());
  dirs[1] = diffuse_presets_user_dir ();
  return dirs;
}

GPtrArray *
cli_load_presets (gchar ***dirs_out)
{
  g_auto (GStrv) dirs = cli_preset_dirs ();
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  GPtrArray *presets =
      diffuse_presets_load_dirs ((const char *const *) dirs, warnings);

  for (guint i = 0; i < warnings->len; i++)
    {
      g_autofree gchar *line =
          g_strdup_printf ("warning: %s", (char *) warnings->pdata[i]);

      print_line (line);
    }
  if (dirs_out != NULL)
    *dirs_out = g_steal_pointer (&dirs);
  return presets;
}

gboolean
cli_has_extension (const char *path, const char *ext)
{
  gsize n = strlen (path), m = strlen (ext);

  return n > m && path[n - m - 1] != '/' &&
         g_ascii_strcasecmp (path + n - m, ext) == 0;
}
