/* Procedure arguments -> DpSettings, presets and the guidance list. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "plugin.h"

void
dp_settings_read (DpSettings *s, DpKind kind, GimpProcedureConfig *config)
{
  gchar *sampler = NULL, *variance = NULL;

  memset (s, 0, sizeof *s);
  g_object_get (config,
                "model", &s->model,
                "preset", &s->preset,
                "class", &s->class_text,
                "steps", &s->steps,
                "sampler", &sampler,
                "eta", &s->eta,
                "variance", &variance,
                "seed", &s->seed,
                NULL);
  if (! diffuse_sampler_kind_from_string (sampler, &s->sampler))
    s->sampler = DIFFUSE_SAMPLER_DDIM;
  if (! diffuse_variance_kind_from_string (variance, &s->variance))
    s->variance = DIFFUSE_VARIANCE_AUTO;
  g_free (sampler);
  g_free (variance);

  s->count = 1;
  s->strength = 1.0;
  if (kind != DP_SWEEP)
    g_object_get (config, "guidance", &s->guidance, "size-mode", &s->size_mode, NULL);
  if (kind == DP_GENERATE)
    g_object_get (config, "count", &s->count, NULL);
  if (kind == DP_IMG2IMG)
    g_object_get (config, "strength", &s->strength, NULL);
  if (kind == DP_SWEEP)
    g_object_get (config, "guidance-values", &s->guidance_values, NULL);
  if (s->size_mode == NULL)
    s->size_mode = g_strdup ("auto");
  if (s->model == NULL)
    s->model = g_strdup ("");
  if (s->preset == NULL)
    s->preset = g_strdup ("");
  if (s->class_text == NULL)
    s->class_text = g_strdup ("");
}

void
dp_settings_clear (DpSettings *s)
{
  g_free (s->model);
  g_free (s->preset);
  g_free (s->class_text);
  g_free (s->size_mode);
  g_free (s->guidance_values);
  memset (s, 0, sizeof *s);
}

gchar *
dp_user_preset_dir (void)
{
  return g_build_filename (gimp_directory (), "diffusion", "presets", NULL);
}

/* Shipped presets, those next to the plug-in binary, then the user's own
 * (later folders override earlier ones with the same name). */
gchar **
dp_preset_dirs (void)
{
  GPtrArray *dirs = g_ptr_array_new ();
  gchar *bindir = g_path_get_dirname (gimp_get_progname ());

  g_ptr_array_add (dirs, g_strdup (diffuse_presets_system_dir ()));
  g_ptr_array_add (dirs, g_build_filename (bindir, "presets", NULL));
  g_ptr_array_add (dirs, dp_user_preset_dir ());
  g_ptr_array_add (dirs, NULL);
  g_free (bindir);
  return (gchar **) g_ptr_array_free (dirs, FALSE);
}

DiffusePreset *
dp_preset_find (GPtrArray *presets, const char *name)
{
  guint i;

  for (i = 0; presets != NULL && i < presets->len; i++)
    {
      DiffusePreset *p = g_ptr_array_index (presets, i);

      if (g_ascii_strcasecmp (p->name, name) == 0)
        return p;
    }
  return NULL;
}

/* Batch runs: a named preset overrides the fields it sets. */
gboolean
dp_settings_apply_preset (DpSettings *s, DpKind kind, GError **error)
{
  g_auto (GStrv) dirs = NULL;
  g_autoptr (GPtrArray) presets = NULL;
  DiffusePreset *p;

  if (s->preset == NULL || s->preset[0] == '\0')
    return TRUE;

  dirs = dp_preset_dirs ();
  presets = diffuse_presets_load_dirs ((const char *const *) dirs, error);
  if (presets == NULL)
    return FALSE;
  p = dp_preset_find (presets, s->preset);
  if (p == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "No preset named '%s' (looked in %s, %s and %s)",
                   s->preset, dirs[0], dirs[1], dirs[2]);
      return FALSE;
    }
  if (p->has_sampler)
    s->sampler = p->sampler;
  if (p->has_steps)
    s->steps = p->steps;
  if (p->has_eta)
    s->eta = p->eta;
  if (p->has_guidance && kind != DP_SWEEP)
    s->guidance = p->guidance;
  if (p->has_strength && kind == DP_IMG2IMG)
    s->strength = p->strength;
  if (p->has_variance)
    s->variance = p->variance;
  return TRUE;
}

/* "0, 1.5, 3" -> { 0, 1.5, 3 } */
double *
dp_parse_guidance_values (const char *text, gint *n, GError **error)
{
  g_auto (GStrv) parts = g_strsplit_set (text != NULL ? text : "", ",; ", -1);
  GArray *values = g_array_new (FALSE, FALSE, sizeof (double));
  gint i;

  for (i = 0; parts[i] != NULL; i++)
    {
      char *end;
      double v;

      if (parts[i][0] == '\0')
        continue;
      errno = 0;
      v = g_ascii_strtod (parts[i], &end);
      if (errno != 0 || *end != '\0' || v < 0.0 || v > 100.0)
        {
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "Guidance values: '%s' is not a number in [0, 100] "
                       "(expected a list like \"0,1,2,4\")", parts[i]);
          g_array_free (values, TRUE);
          return NULL;
        }
      g_array_append_val (values, v);
    }
  if (values->len == 0 || values->len > 32)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "Guidance values: give 1 to 32 values, like \"0,1,2,4\" (got %u)",
                   values->len);
      g_array_free (values, TRUE);
      return NULL;
    }
  *n = values->len;
  return (double *) g_array_free (values, FALSE);
}
