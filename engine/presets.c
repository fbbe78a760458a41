/* Presets: named bundles of sampling settings, one GKeyFile per file.
 *
 *   [preset]
 *   name=balanced
 *   description=DDIM, 50 steps, guidance 1
 *   sampler=ddim
 *   steps=50
 *   guidance=1
 *
 * Keys: name, description, and every setting of the settings table with
 * DIFFUSE_SETTING_PRESET (settings-table.c), parsed and range-checked by
 * the table.  Only the keys present are applied; an unknown key is an
 * error (a misspelt "stpes" would otherwise be silently ignored).
 * Localised variants such as description[de] are allowed and ignored.
 *
 * Files are opened without blocking and must be regular files of at most
 * DIFFUSE_PRESET_MAX_BYTES; a file that is not a preset is refused
 * without quoting it (`--preset /etc/shadow` must not print a line of it).
 */
#include "diffuse-private.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib/gstdio.h>

#define PRESET_GROUP "preset"
#define PRESET_SUFFIX ".preset"

DiffusePreset *
diffuse_preset_new (const char *name, const char *description)
{
  DiffusePreset *p = g_new0 (DiffusePreset, 1);

  p->name = g_strdup (name);
  p->description = g_strdup (description != NULL ? description : "");
  diffuse_sample_params_init (&p->values);
  return p;
}

void
diffuse_preset_free (DiffusePreset *preset)
{
  if (preset == NULL)
    return;
  g_free (preset->name);
  g_free (preset->description);
  g_free (preset);
}

gboolean
diffuse_preset_has (const DiffusePreset *preset, const char *setting)
{
  gint index;

  g_return_val_if_fail (preset != NULL, FALSE);
  return diffuse_setting_find (setting, &index) != NULL &&
         (preset->given & (1u << index)) != 0;
}

static gboolean
format_error (GError **error, const char *path, const char *what)
{
  g_autofree gchar *shown = diffuse_text_escape (path);

  g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT, "%s: %s", shown,
               what);
  return FALSE;
}

static gboolean
check_keys (GKeyFile *kf, const char *path, GError **error)
{
  g_auto (GStrv) keys = NULL;

  if (!g_key_file_has_group (kf, PRESET_GROUP))
    return format_error (error, path,
                         "not a preset file (no [" PRESET_GROUP "] group)");
  keys = g_key_file_get_keys (kf, PRESET_GROUP, NULL, NULL);
  for (gchar **k = keys; k && *k; k++)
    {
      const DiffuseSetting *s = diffuse_setting_find (*k, NULL);

      if (strchr (*k, '[') != NULL || strcmp (*k, "name") == 0 ||
          strcmp (*k, "description") == 0 ||
          (s != NULL && (s->flags & DIFFUSE_SETTING_PRESET)))
        continue;
      {
        g_autofree gchar *key = diffuse_text_escape (*k);
        g_autofree gchar *what =
            g_strdup_printf ("unknown key '%s' in [" PRESET_GROUP "]", key);

        return format_error (error, path, what);
      }
    }
  return TRUE;
}

static gboolean
has_control (const char *text)
{
  for (const guchar *p = (const guchar *) text; *p != '\0'; p++)
    if (*p < 0x20 || *p == 0x7f)
      return TRUE;
  return FALSE;
}

/* The parsing proper; path only names the file in messages. */
static DiffusePreset *
preset_from_key_file (GKeyFile *kf, const char *path, GError **error)
{
  g_autoptr (DiffusePreset) p = diffuse_preset_new (NULL, NULL);
  const DiffuseSetting *table;
  gint n;

  if (!check_keys (kf, path, error))
    return NULL;

  p->name = g_key_file_get_string (kf, PRESET_GROUP, "name", NULL);
  if (p->name != NULL)
    g_strstrip (p->name);
  if (p->name == NULL || *p->name == '\0')
    {
      /* default: the file name without ".preset" */
      g_autofree gchar *base = g_path_get_basename (path);

      if (g_str_has_suffix (base, PRESET_SUFFIX))
        base[strlen (base) - strlen (PRESET_SUFFIX)] = '\0';
      g_free (p->name);
      p->name = g_steal_pointer (&base);
    }
  if (has_control (p->name) || !g_utf8_validate (p->name, -1, NULL))
    {
      format_error (error, path,
                    "the preset's name has control characters or "
                    "is not UTF-8");
      return NULL;
    }
  g_free (p->description);
  p->description = g_key_file_get_locale_string (kf, PRESET_GROUP,
                                                 "description", NULL, NULL);
  if (p->description == NULL)
    p->description = g_strdup ("");

  table = diffuse_settings (&n);
  for (gint i = 0; i < n; i++)
    {
      const DiffuseSetting *s = &table[i];
      g_autofree gchar *text = NULL;
      GError *local = NULL;

      if (!(s->flags & DIFFUSE_SETTING_PRESET) ||
          !g_key_file_has_key (kf, PRESET_GROUP, s->name, NULL))
        continue;
      text = g_key_file_get_value (kf, PRESET_GROUP, s->name, NULL);
      if (!diffuse_setting_parse (s, text, &p->values, &local) ||
          !diffuse_setting_check (s, &p->values, &local))
        {
          format_error (error, path, local->message);
          g_error_free (local);
          return NULL;
        }
      p->given |= 1u << i;
    }
  return g_steal_pointer (&p);
}

/* The file's bytes: opened without blocking, a regular file, at most
 * DIFFUSE_PRESET_MAX_BYTES. */
static gchar *
read_preset_bytes (const char *path, gsize *length, GError **error)
{
  g_autofree gchar *shown = diffuse_text_escape (path);
  g_autofree gchar *data = NULL;
  struct stat st;
  gsize got = 0;
  int fd = g_open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, 0);

  if (fd < 0)
    {
      int e = errno;

      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO, "%s: %s", shown,
                   g_strerror (e));
      return NULL;
    }
  if (fstat (fd, &st) != 0 || !S_ISREG (st.st_mode))
    {
      close (fd);
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                   "%s: not a regular file", shown);
      return NULL;
    }
  if (st.st_size > DIFFUSE_PRESET_MAX_BYTES)
    {
      close (fd);
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: %" G_GINT64_FORMAT
                   " bytes; a preset file has at most %d",
                   shown, (gint64) st.st_size, DIFFUSE_PRESET_MAX_BYTES);
      return NULL;
    }
  /* one byte more than allowed, to notice a file that grew */
  data = g_malloc (DIFFUSE_PRESET_MAX_BYTES + 1);
  while (got <= DIFFUSE_PRESET_MAX_BYTES)
    {
      ssize_t r = read (fd, data + got, DIFFUSE_PRESET_MAX_BYTES + 1 - got);

      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        {
          int e = errno;

          close (fd);
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO, "%s: %s", shown,
                       g_strerror (e));
          return NULL;
        }
      if (r == 0)
        break;
      got += (gsize) r;
    }
  close (fd);
  if (got > DIFFUSE_PRESET_MAX_BYTES)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: more than %d bytes; not a preset file", shown,
                   DIFFUSE_PRESET_MAX_BYTES);
      return NULL;
    }
  *length = got;
  return g_steal_pointer (&data);
}

DiffusePreset *
diffuse_preset_load_file (const char *path, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree gchar *data = NULL;
  gsize length = 0;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  data = read_preset_bytes (path, &length, error);
  if (data == NULL)
    return NULL;
  /* GKeyFile's parse errors quote the offending line: say what is wrong
   * without it (the file may be anything, /etc/shadow say). */
  if (memchr (data, '\0', length) != NULL ||
      !g_utf8_validate (data, length, NULL) ||
      !g_key_file_load_from_data (kf, data, length, G_KEY_FILE_NONE, NULL))
    {
      format_error (error, path,
                    "not a preset file (a [" PRESET_GROUP "] group "
                    "of key=value lines in UTF-8)");
      return NULL;
    }
  return preset_from_key_file (kf, path, error);
}

gboolean
diffuse_preset_save_file (const DiffusePreset *preset, const char *path,
                          GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autofree gchar *shown = NULL, *data = NULL;
  const DiffuseSetting *table;
  GError *local = NULL;
  GStatBuf st;
  gsize length;
  gint n;

  g_return_val_if_fail (preset != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  shown = diffuse_text_escape (path);
  if (preset->name == NULL || *preset->name == '\0' ||
      has_control (preset->name) || !g_utf8_validate (preset->name, -1, NULL))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: a preset needs a one-line name without control "
                   "characters",
                   shown);
      return FALSE;
    }
  if (g_lstat (path, &st) == 0 && !S_ISREG (st.st_mode))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO,
                   "%s exists and is not a regular file; not replacing it",
                   shown);
      return FALSE;
    }

  g_key_file_set_string (kf, PRESET_GROUP, "name", preset->name);
  if (preset->description != NULL && *preset->description != '\0')
    g_key_file_set_string (kf, PRESET_GROUP, "description",
                           preset->description);
  table = diffuse_settings (&n);
  for (gint i = 0; i < n; i++)
    if ((table[i].flags & DIFFUSE_SETTING_PRESET) &&
        (preset->given & (1u << i)))
      {
        g_autofree gchar *text = NULL;

        if (!diffuse_setting_check (&table[i], &preset->values, error))
          return FALSE;
        /* doubles: the shortest text that reads back exactly */
        text = diffuse_setting_to_string (&table[i], &preset->values);
        g_key_file_set_value (kf, PRESET_GROUP, table[i].name, text);
      }

  /* a temporary file in the same folder, renamed over the target when
   * complete (g_file_set_contents_full does both) */
  data = g_key_file_to_data (kf, &length, NULL);
  if (!g_file_set_contents_full (path, data, length,
                                 G_FILE_SET_CONTENTS_CONSISTENT, 0644, &local))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO, "%s",
                   local->message);
      g_error_free (local);
      return FALSE;
    }
  return TRUE;
}

static gint
compare_names (gconstpointer a, gconstpointer b)
{
  const DiffusePreset *pa = *(DiffusePreset *const *) a;
  const DiffusePreset *pb = *(DiffusePreset *const *) b;

  return strcmp (pa->name, pb->name);
}

static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

static void
warn (GPtrArray *warnings, GError *error)
{
  if (warnings != NULL)
    g_ptr_array_add (warnings, g_strdup_printf ("skipping %s", error->message));
  g_error_free (error);
}

/* Adds dir's presets to presets, replacing any of the same name. */
static void
load_dir (const char *dir, GPtrArray *presets, GPtrArray *warnings)
{
  g_autoptr (GDir) d = NULL;
  g_autoptr (GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
  const char *entry;
  GError *local = NULL;

  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    return; /* e.g. a user directory not created yet */
  d = g_dir_open (dir, 0, &local);
  if (d == NULL)
    {
      g_autofree gchar *shown = diffuse_text_escape (dir);

      if (warnings != NULL)
        g_ptr_array_add (warnings,
                         g_strdup_printf ("skipping the preset folder "
                                          "%s: %s",
                                          shown, local->message));
      g_error_free (local);
      return;
    }
  while ((entry = g_dir_read_name (d)) != NULL)
    if (g_str_has_suffix (entry, PRESET_SUFFIX))
      g_ptr_array_add (files, g_build_filename (dir, entry, NULL));
  g_ptr_array_sort (files, compare_strings);

  for (guint i = 0; i < files->len; i++)
    {
      DiffusePreset *p = diffuse_preset_load_file (files->pdata[i], &local);
      guint j;

      if (p == NULL)
        {
          warn (warnings, local);
          local = NULL;
          continue;
        }
      for (j = 0; j < presets->len; j++)
        if (strcmp (((DiffusePreset *) presets->pdata[j])->name, p->name) == 0)
          break;
      if (j < presets->len)
        {
          diffuse_preset_free (presets->pdata[j]);
          presets->pdata[j] = p;
        }
      else
        g_ptr_array_add (presets, p);
    }
}

GPtrArray *
diffuse_presets_load_dirs (const char *const *dirs, GPtrArray *warnings)
{
  GPtrArray *presets =
      g_ptr_array_new_with_free_func ((GDestroyNotify) diffuse_preset_free);

  for (const char *const *dir = dirs; dir && *dir; dir++)
    load_dir (*dir, presets, warnings);
  g_ptr_array_sort (presets, compare_names);
  return presets;
}

void
diffuse_preset_apply (const DiffusePreset *preset, DiffuseSampleParams *params)
{
  g_return_if_fail (preset != NULL);
  g_return_if_fail (params != NULL);

  /* steps only take effect while params->respacing is NULL */
  diffuse_settings_copy (preset->given, params, &preset->values);
}

gchar *
diffuse_presets_user_dir (void)
{
  const char *env = g_getenv ("DIFFUSE_USER_PRESETS_DIR");

  if (env != NULL && *env != '\0')
    return g_strdup (env);
  return g_build_filename (g_get_user_config_dir (), "gimp-diffusion",
                           "presets", NULL);
}

/* The environment variable DIFFUSE_PRESETS_DIR wins (tests, relocated
 * installs); then the installed directory; then, for a build run from its
 * tree before `meson install`, the source tree's presets/. */
const char *
diffuse_presets_system_dir (void)
{
  const char *env = g_getenv ("DIFFUSE_PRESETS_DIR");

  if (env != NULL && *env != '\0')
    return env;
#ifdef DIFFUSE_SOURCE_PRESETS_DIR
  if (!g_file_test (DIFFUSE_PRESETS_DIR, G_FILE_TEST_IS_DIR) &&
      g_file_test (DIFFUSE_SOURCE_PRESETS_DIR, G_FILE_TEST_IS_DIR))
    return DIFFUSE_SOURCE_PRESETS_DIR;
#endif
  return DIFFUSE_PRESETS_DIR;
}
