/* Procedure arguments -> DpSettings, presets and the guidance list. */
#include <string.h>

#include "plugin.h"

/* The table's arguments of this procedure from config into values. */
static void
read_table_args (DpKind kind, GimpProcedureConfig *config,
                 DiffuseSampleParams *values)
{
  DpArgSpec specs[32];
  gint n = dp_arg_specs (kind, specs, G_N_ELEMENTS (specs));
  gint i;

  for (i = 0; i < n; i++)
    {
      const DiffuseSetting *st = specs[i].setting;
      gpointer field = G_STRUCT_MEMBER_P (values, st->offset);

      switch (st->type)
        {
        case DIFFUSE_SETTING_INT:
          g_object_get (config, st->name, (gint *) field, NULL);
          break;
        case DIFFUSE_SETTING_DOUBLE:
          g_object_get (config, st->name, (double *) field, NULL);
          break;
        case DIFFUSE_SETTING_ENUM:
          {
            g_autofree gchar *nick = NULL;

            /* an unknown name keeps the default */
            g_object_get (config, st->name, &nick, NULL);
            if (nick != NULL)
              diffuse_setting_parse (st, nick, values, NULL);
          }
          break;
        case DIFFUSE_SETTING_STRING:
          break; /* none is a plug-in argument */
        }
    }
}

void
dp_settings_read (DpSettings *s, DpKind kind, GimpProcedureConfig *config)
{
  memset (s, 0, sizeof *s);
  g_object_get (config, "model", &s->model, "preset", &s->preset, "class",
                &s->class_text, "classifier", &s->classifier, "seed", &s->seed,
                NULL);
  diffuse_sample_params_init (&s->values);
  read_table_args (kind, config, &s->values);
  if (kind != DP_SWEEP && kind != DP_INPAINT)
    g_object_get (config, "size-mode", &s->size_mode, NULL);
  s->margin = DIFFUSE_INPAINT_DEFAULT_MARGIN;
  if (kind == DP_INPAINT)
    g_object_get (config, "margin", &s->margin, NULL);
  if (kind == DP_SWEEP)
    g_object_get (config, "guidance-values", &s->guidance_values, "as-layers",
                  &s->as_layers, NULL);
  if (s->size_mode == NULL)
    s->size_mode = g_strdup ("model");
  if (s->model == NULL)
    s->model = g_strdup ("");
  if (s->preset == NULL)
    s->preset = g_strdup ("");
  if (s->class_text == NULL)
    s->class_text = g_strdup ("");
  if (s->classifier == NULL)
    s->classifier = g_strdup ("");
}

void
dp_settings_clear (DpSettings *s)
{
  g_free (s->model);
  g_free (s->preset);
  g_free (s->class_text);
  g_free (s->classifier);
  g_free (s->size_mode);
  g_free (s->guidance_values);
  memset (s, 0, sizeof *s);
}

/* The plug-in's old user folder (before the CLI and the plug-in shared
 * one): still read, so that presets saved there are not lost. */
static gchar *
legacy_user_dir (void)
{
  return g_build_filename (gimp_directory (), "diffusion", "presets", NULL);
}

/* Shipped presets, those next to the plug-in binary, the old plug-in
 * folder, then the user's own, shared with the CLI (later folders
 * override earlier ones with the same name). */
gchar **
dp_preset_dirs (void)
{
  GPtrArray *dirs = g_ptr_array_new ();
  gchar *bindir = g_path_get_dirname (gimp_get_progname ());

  g_ptr_array_add (dirs, g_strdup (diffuse_presets_system_dir ()));
  g_ptr_array_add (dirs, g_build_filename (bindir, "presets", NULL));
  g_ptr_array_add (dirs, legacy_user_dir ());
  g_ptr_array_add (dirs, diffuse_presets_user_dir ());
  g_ptr_array_add (dirs, NULL);
  g_free (bindir);
  return (gchar **) g_ptr_array_free (dirs, FALSE);
}

/* Every preset; *warning (may be NULL) gets the files skipped, one per
 * line, or NULL when none was. */
GPtrArray *
dp_presets_load (gchar **warning)
{
  g_auto (GStrv) dirs = dp_preset_dirs ();
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  GPtrArray *presets =
      diffuse_presets_load_dirs ((const char *const *) dirs, warnings);

  if (warning != NULL)
    {
      g_ptr_array_add (warnings, NULL);
      *warning = warnings->len > 1
                     ? g_strjoinv ("\n", (gchar **) warnings->pdata)
                     : NULL;
    }
  return presets;
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
  g_autoptr (GPtrArray) presets = NULL;
  g_autofree gchar *warning = NULL;
  DiffusePreset *p;

  if (s->preset == NULL || s->preset[0] == '\0')
    return TRUE;

  presets = dp_presets_load (&warning);
  if (warning != NULL)
    g_printerr ("%s\n", warning);
  p = dp_preset_find (presets, s->preset);
  if (p == NULL)
    {
      g_auto (GStrv) dirs = dp_preset_dirs ();
      g_autofree gchar *where = g_strjoinv (", ", dirs);
      g_autofree gchar *name = diffuse_text_escape (s->preset);

      g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                   "No preset named '%s' (looked in %s)", name, where);
      return FALSE;
    }
  s->preset_given = p->given & dp_arg_mask (kind);
  diffuse_settings_copy (s->preset_given, &s->values, &p->values);
  return TRUE;
}

/* The dialog: a preset's settings into the procedure's config. */
void
dp_config_apply_preset (GimpProcedureConfig *config, DpKind kind,
                        const DiffusePreset *preset)
{
  DpArgSpec specs[32];
  gint n = dp_arg_specs (kind, specs, G_N_ELEMENTS (specs));
  gint i;

  g_object_freeze_notify (G_OBJECT (config));
  for (i = 0; i < n; i++)
    {
      const DiffuseSetting *st = specs[i].setting;
      gconstpointer field = G_STRUCT_MEMBER_P (&preset->values, st->offset);

      if (!(preset->given & (1u << specs[i].index)))
        continue;
      switch (st->type)
        {
        case DIFFUSE_SETTING_INT:
          g_object_set (config, st->name, *(const gint *) field, NULL);
          break;
        case DIFFUSE_SETTING_DOUBLE:
          g_object_set (config, st->name, *(const double *) field, NULL);
          break;
        case DIFFUSE_SETTING_ENUM:
          g_object_set (config, st->name, st->nicks[*(const gint *) field],
                        NULL);
          break;
        case DIFFUSE_SETTING_STRING:
          break;
        }
    }
  g_object_thaw_notify (G_OBJECT (config));
}

/* "Save as...": every preset setting of this procedure from its config. */
void
dp_config_to_preset (GimpProcedureConfig *config, DpKind kind,
                     DiffusePreset *preset)
{
  DpArgSpec specs[32];
  gint n = dp_arg_specs (kind, specs, G_N_ELEMENTS (specs));
  gint i;

  read_table_args (kind, config, &preset->values);
  for (i = 0; i < n; i++)
    if (specs[i].setting->flags & DIFFUSE_SETTING_PRESET)
      preset->given |= 1u << specs[i].index;
}

/* "0, 1.5, 3" -> { 0, 1.5, 3 } */
double *
dp_parse_guidance_values (const char *text, gint *n, GError **error)
{
  g_auto (GStrv) parts = g_strsplit_set (text != NULL ? text : "", ",; ", -1);
  GArray *values = g_array_new (FALSE, FALSE, sizeof (double));
  gint i;

  const DiffuseSetting *w = diffuse_setting_find ("guidance", NULL);
  g_autofree gchar *range = diffuse_setting_describe_range (w);

  for (i = 0; parts[i] != NULL; i++)
    {
      DiffuseSampleParams p;

      if (parts[i][0] == '\0')
        continue;
      /* each value is a guidance setting: the table parses and checks it */
      diffuse_sample_params_init (&p);
      if (!diffuse_setting_parse (w, parts[i], &p, NULL) ||
          !diffuse_setting_check (w, &p, NULL))
        {
          g_autofree gchar *shown = diffuse_text_escape (parts[i]);

          g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                       "Guidance values: '%s' is not a number in %s "
                       "(expected a list like \"0,1,2,4\")",
                       shown, range);
          g_array_free (values, TRUE);
          return NULL;
        }
      g_array_append_val (values, p.guidance);
    }
  if (values->len == 0 || values->len > 32)
    {
      g_set_error (
          error, GIMP_PLUG_IN_ERROR, 0,
          "Guidance values: give 1 to 32 values, like \"0,1,2,4\" (got %u)",
          values->len);
      g_array_free (values, TRUE);
      return NULL;
    }
  *n = values->len;
  return (double *) g_array_free (values, FALSE);
}
