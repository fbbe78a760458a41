/* Presets: named bundles of sampling settings, one GKeyFile per file.
 *
 *   [preset]
 *   name=balanced
 *   description=DDIM, 50 steps, guidance 1
 *   sampler=ddim
 *   steps=50
 *   guidance=1
 *
 * Keys: name, description, sampler, steps, eta, guidance, strength,
 * variance.  Only the keys present are applied; an unknown key is an error
 * (a misspelt "stpes" would otherwise be silently ignored).  Localised
 * variants such as description[de] are allowed and ignored.
 */
#include "diffuse.h"

#include <math.h>
#include <string.h>

#define PRESET_GROUP "preset"
#define PRESET_SUFFIX ".preset"
#define MAX_PRESET_STEPS 100000

static const char *const known_keys[] = {
  "name", "description", "sampler", "steps", "eta", "guidance", "strength",
  "variance", NULL
};

void
diffuse_preset_free (DiffusePreset *preset)
{
  if (preset == NULL)
    return;
  g_free (preset->name);
  g_free (preset->description);
  g_free (preset);
}

static gboolean
bad_value (GError **error, const char *path, const char *key,
           const char *what)
{
  g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
               "%s: key '%s': %s", path, key, what);
  return FALSE;
}

/* Reads a double key that must be finite and within [lo, hi]. */
static gboolean
read_double (GKeyFile *kf, const char *path, const char *key, double lo,
             double hi, gboolean *has, double *out, GError **error)
{
  g_autofree gchar *text = NULL;
  gchar *end = NULL;
  double v;

  if (!g_key_file_has_key (kf, PRESET_GROUP, key, NULL))
    return TRUE;
  text = g_key_file_get_value (kf, PRESET_GROUP, key, NULL);
  g_strstrip (text);
  v = g_ascii_strtod (text, &end);
  if (*text == '\0' || *end != '\0' || !isfinite (v))
    return bad_value (error, path, key, "not a number");
  if (v < lo || v > hi)
    {
      g_autofree gchar *msg =
        g_strdup_printf ("%g is outside [%g, %g]", v, lo, hi);
      return bad_value (error, path, key, msg);
    }
  *has = TRUE;
  *out = v;
  return TRUE;
}

static gboolean
check_keys (GKeyFile *kf, const char *path, GError **error)
{
  g_auto (GStrv) keys = NULL;

  if (!g_key_file_has_group (kf, PRESET_GROUP))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                   "%s: no [" PRESET_GROUP "] group", path);
      return FALSE;
    }
  keys = g_key_file_get_keys (kf, PRESET_GROUP, NULL, NULL);
  for (gchar **k = keys; k && *k; k++)
    if (strchr (*k, '[') == NULL && !g_strv_contains (known_keys, *k))
      {
        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT,
                     "%s: unknown key '%s' in [" PRESET_GROUP "]", path, *k);
        return FALSE;
      }
  return TRUE;
}

/* The parsing proper; path only names the file in messages. */
static DiffusePreset *
preset_from_key_file (GKeyFile *kf, const char *path, GError **error)
{
  g_autoptr (DiffusePreset) p = g_new0 (DiffusePreset, 1);
  g_autofree gchar *text = NULL;

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
  p->description = g_key_file_get_locale_string (kf, PRESET_GROUP,
                                                 "description", NULL, NULL);
  if (p->description == NULL)
    p->description = g_strdup ("");

  text = g_key_file_get_string (kf, PRESET_GROUP, "sampler", NULL);
  if (text != NULL)
    {
      g_strstrip (text);
      if (!diffuse_sampler_kind_from_string (text, &p->sampler))
        {
          bad_value (error, path, "sampler", "not one of ddim, ddpm");
          return NULL;
        }
      p->has_sampler = TRUE;
    }
  g_clear_pointer (&text, g_free);

  text = g_key_file_get_string (kf, PRESET_GROUP, "variance", NULL);
  if (text != NULL)
    {
      g_strstrip (text);
      if (!diffuse_variance_kind_from_string (text, &p->variance))
        {
          bad_value (error, path, "variance",
                     "not one of auto, learned, fixed-small, fixed-large");
          return NULL;
        }
      p->has_variance = TRUE;
    }
  g_clear_pointer (&text, g_free);

  text = g_key_file_get_string (kf, PRESET_GROUP, "steps", NULL);
  if (text != NULL)
    {
      guint64 v = 0;

      g_strstrip (text);
      if (!g_ascii_string_to_unsigned (text, 10, 1, MAX_PRESET_STEPS, &v, NULL))
        {
          bad_value (error, path, "steps", "not an integer in 1..100000");
          return NULL;
        }
      p->steps = (gint) v;
      p->has_steps = TRUE;
    }

  if (!read_double (kf, path, "eta", 0.0, 1e6, &p->has_eta, &p->eta, error)
      || !read_double (kf, path, "guidance", -1e6, 1e6, &p->has_guidance,
                       &p->guidance, error))
    return NULL;
  if (!read_double (kf, path, "strength", 0.0, 1.0, &p->has_strength,
                    &p->strength, error))
    return NULL;
  if (p->has_strength && p->strength <= 0.0)
    {
      bad_value (error, path, "strength", "must be in (0, 1]");
      return NULL;
    }
  return g_steal_pointer (&p);
}

DiffusePreset *
diffuse_preset_load_file (const char *path, GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  GError *local = NULL;

  g_return_val_if_fail (path != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  if (!g_key_file_load_from_file (kf, path, G_KEY_FILE_NONE, &local))
    {
      gboolean io = local->domain == G_FILE_ERROR;

      g_set_error (error, DIFFUSE_ERROR,
                   io ? DIFFUSE_ERROR_IO : DIFFUSE_ERROR_FORMAT,
                   "%s: %s", path, local->message);
      g_error_free (local);
      return NULL;
    }
  return preset_from_key_file (kf, path, error);
}

gboolean
diffuse_preset_save_file (const DiffusePreset *preset, const char *path,
                          GError **error)
{
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  GError *local = NULL;

  g_return_val_if_fail (preset != NULL, FALSE);
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (preset->name == NULL || *preset->name == '\0'
      || strpbrk (preset->name, "\n\r") != NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: a preset needs a one-line name", path);
      return FALSE;
    }

  g_key_file_set_string (kf, PRESET_GROUP, "name", preset->name);
  if (preset->description != NULL && *preset->description != '\0')
    g_key_file_set_string (kf, PRESET_GROUP, "description", preset->description);
  if (preset->has_sampler)
    g_key_file_set_string (kf, PRESET_GROUP, "sampler",
                           diffuse_sampler_kind_to_string (preset->sampler));
  if (preset->has_steps)
    g_key_file_set_integer (kf, PRESET_GROUP, "steps", preset->steps);
  /* g_key_file_set_double writes %.17g: the values read back exactly. */
  if (preset->has_eta)
    g_key_file_set_double (kf, PRESET_GROUP, "eta", preset->eta);
  if (preset->has_guidance)
    g_key_file_set_double (kf, PRESET_GROUP, "guidance", preset->guidance);
  if (preset->has_strength)
    g_key_file_set_double (kf, PRESET_GROUP, "strength", preset->strength);
  if (preset->has_variance)
    g_key_file_set_string (kf, PRESET_GROUP, "variance",
                           diffuse_variance_kind_to_string (preset->variance));

  if (!g_key_file_save_to_file (kf, path, &local))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO, "%s: %s", path,
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

/* Adds dir's presets to presets, replacing any of the same name. */
static gboolean
load_dir (const char *dir, GPtrArray *presets, GError **error)
{
  g_autoptr (GDir) d = NULL;
  g_autoptr (GPtrArray) files = g_ptr_array_new_with_free_func (g_free);
  const char *entry;
  GError *local = NULL;

  if (!g_file_test (dir, G_FILE_TEST_IS_DIR))
    return TRUE;               /* e.g. a user directory not created yet */
  d = g_dir_open (dir, 0, &local);
  if (d == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO, "%s", local->message);
      g_error_free (local);
      return FALSE;
    }
  while ((entry = g_dir_read_name (d)) != NULL)
    if (g_str_has_suffix (entry, PRESET_SUFFIX))
      g_ptr_array_add (files, g_build_filename (dir, entry, NULL));
  g_ptr_array_sort (files, compare_strings);

  for (guint i = 0; i < files->len; i++)
    {
      DiffusePreset *p = diffuse_preset_load_file (files->pdata[i], error);
      guint j;

      if (p == NULL)
        return FALSE;
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
  return TRUE;
}

GPtrArray *
diffuse_presets_load_dirs (const char *const *dirs, GError **error)
{
  g_autoptr (GPtrArray) presets =
    g_ptr_array_new_with_free_func ((GDestroyNotify) diffuse_preset_free);

  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  for (const char *const *dir = dirs; dir && *dir; dir++)
    if (!load_dir (*dir, presets, error))
      return NULL;
  g_ptr_array_sort (presets, compare_names);
  return g_steal_pointer (&presets);
}

void
diffuse_preset_apply (const DiffusePreset *preset, DiffuseSampleParams *params)
{
  g_return_if_fail (preset != NULL);
  g_return_if_fail (params != NULL);

  if (preset->has_sampler)
    params->sampler = preset->sampler;
  /* steps only take effect while params->respacing is NULL */
  if (preset->has_steps)
    params->steps = preset->steps;
  if (preset->has_eta)
    params->eta = preset->eta;
  if (preset->has_guidance)
    params->guidance = preset->guidance;
  if (preset->has_strength)
    params->strength = preset->strength;
  if (preset->has_variance)
    params->variance = preset->variance;
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
  if (!g_file_test (DIFFUSE_PRESETS_DIR, G_FILE_TEST_IS_DIR)
      && g_file_test (DIFFUSE_SOURCE_PRESETS_DIR, G_FILE_TEST_IS_DIR))
    return DIFFUSE_SOURCE_PRESETS_DIR;
#endif
  return DIFFUSE_PRESETS_DIR;
}
