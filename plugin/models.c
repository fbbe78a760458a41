/* Where the plug-in finds models: the user's folder
 * (GIMP profile/diffusion/models), a models/ folder beside the plug-in
 * binary (tools/install-plugin.sh puts the shipped models there), the
 * installed share/gimp-diffusion/models, and the folders in
 * $DIFFUSE_MODELS_PATH (colon-separated). */
#include <string.h>

#include "plugin.h"

#ifndef DIFFUSE_MODELS_DIR
#define DIFFUSE_MODELS_DIR ""
#endif

gchar *
dp_models_user_dir (void)
{
  return g_build_filename (gimp_directory (), "diffusion", "models", NULL);
}

static GPtrArray *
model_dirs (void)
{
  GPtrArray *dirs = g_ptr_array_new_with_free_func (g_free);
  const char *env = g_getenv ("DIFFUSE_MODELS_PATH");
  gchar *bindir = g_path_get_dirname (gimp_get_progname ());

  g_ptr_array_add (dirs, dp_models_user_dir ());
  g_ptr_array_add (dirs, g_build_filename (bindir, "models", NULL));
  if (DIFFUSE_MODELS_DIR[0] != '\0')
    g_ptr_array_add (dirs, g_strdup (DIFFUSE_MODELS_DIR));
  if (env != NULL)
    {
      g_auto (GStrv) parts = g_strsplit (env, G_SEARCHPATH_SEPARATOR_S, -1);
      gint i;

      for (i = 0; parts[i] != NULL; i++)
        if (parts[i][0] != '\0')
          g_ptr_array_add (dirs, g_strdup (parts[i]));
    }
  g_free (bindir);
  return dirs;
}

void
dp_model_entry_free (DpModelEntry *entry)
{
  if (entry == NULL)
    return;
  g_free (entry->name);
  g_free (entry->path);
  g_free (entry);
}

static gint
entry_compare (gconstpointer a, gconstpointer b)
{
  const DpModelEntry *ea = *(DpModelEntry *const *) a;
  const DpModelEntry *eb = *(DpModelEntry *const *) b;

  return g_strcmp0 (ea->name, eb->name);
}

/* Every *.safetensors in the model folders; a name seen in an earlier
 * folder hides later ones. */
GPtrArray *
dp_models_list (void)
{
  g_autoptr (GPtrArray) dirs = model_dirs ();
  GPtrArray *list =
      g_ptr_array_new_with_free_func ((GDestroyNotify) dp_model_entry_free);
  GHashTable *seen = g_hash_table_new (g_str_hash, g_str_equal);
  guint i;

  for (i = 0; i < dirs->len; i++)
    {
      GDir *dir = g_dir_open (g_ptr_array_index (dirs, i), 0, NULL);
      const char *file;

      if (dir == NULL)
        continue;
      while ((file = g_dir_read_name (dir)) != NULL)
        {
          DpModelEntry *entry;

          if (!g_str_has_suffix (file, ".safetensors"))
            continue;
          entry = g_new0 (DpModelEntry, 1);
          entry->name =
              g_strndup (file, strlen (file) - strlen (".safetensors"));
          if (g_hash_table_contains (seen, entry->name))
            {
              dp_model_entry_free (entry);
              continue;
            }
          entry->path =
              g_build_filename (g_ptr_array_index (dirs, i), file, NULL);
          g_hash_table_add (seen, entry->name);
          g_ptr_array_add (list, entry);
        }
      g_dir_close (dir);
    }
  g_hash_table_destroy (seen);
  g_ptr_array_sort (list, entry_compare);
  return list;
}

/* A path (anything with a directory separator or ending in
 * .safetensors) is used as given; otherwise the name of a model in the
 * folders; "" picks the first model found. */
gchar *
dp_models_resolve (const char *model, GError **error)
{
  g_autoptr (GPtrArray) list = NULL;
  guint i;

  if (model != NULL && (strchr (model, G_DIR_SEPARATOR) != NULL ||
                        g_str_has_suffix (model, ".safetensors")))
    return g_strdup (model);

  list = dp_models_list ();
  for (i = 0; i < list->len; i++)
    {
      DpModelEntry *entry = g_ptr_array_index (list, i);

      if (model == NULL || model[0] == '\0' ||
          g_strcmp0 (entry->name, model) == 0)
        return g_strdup (entry->path);
    }

  {
    g_autofree gchar *user = dp_models_user_dir ();

    if (model == NULL || model[0] == '\0')
      g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                   "No diffusion model found: put a .safetensors model in %s "
                   "or give the model's path",
                   user);
    else
      g_set_error (
          error, GIMP_PLUG_IN_ERROR, 0,
          "No model named '%s' (looked in %s and the shipped models); "
          "give a name from the model list or a path to a .safetensors file",
          model, user);
  }
  return NULL;
}
