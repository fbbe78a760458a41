/* The plug-in's model files by kind (model-files.h); no GIMP here. */
#include <string.h>

#include "model-files.h"

#define SUFFIX ".safetensors"

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

static gint
name_compare (gconstpointer a, gconstpointer b)
{
  return g_strcmp0 (*(const char *const *) a, *(const char *const *) b);
}

/* A file's kind for the lists: unreadable files count as diffusion
 * models (choosing one shows why it cannot be used). */
static DiffuseModelType
entry_kind (const DpModelEntry *entry)
{
  return entry->readable ? entry->config.model_type : DIFFUSE_MODEL_UNET;
}

GPtrArray *
dp_model_files_list (const char *const *dirs, DiffuseModelType type)
{
  GPtrArray *list =
      g_ptr_array_new_with_free_func ((GDestroyNotify) dp_model_entry_free);
  g_autoptr (GHashTable) seen =
      g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (gint i = 0; dirs != NULL && dirs[i] != NULL; i++)
    {
      g_autoptr (GDir) dir = g_dir_open (dirs[i], 0, NULL);
      g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
      const char *file;

      if (dir == NULL)
        continue;
      /* in name order, so that the result does not depend on the
       * folder's order */
      while ((file = g_dir_read_name (dir)) != NULL)
        if (g_str_has_suffix (file, SUFFIX) && strlen (file) > strlen (SUFFIX))
          g_ptr_array_add (names, g_strdup (file));
      g_ptr_array_sort (names, name_compare);
      for (guint k = 0; k < names->len; k++)
        {
          const char *f = g_ptr_array_index (names, k);
          DpModelEntry *entry = g_new0 (DpModelEntry, 1);

          entry->name = g_strndup (f, strlen (f) - strlen (SUFFIX));
          if (g_hash_table_contains (seen, entry->name))
            {
              dp_model_entry_free (entry);
              continue;
            }
          entry->path = g_build_filename (dirs[i], f, NULL);
          entry->readable = diffuse_model_file_read_config (
              entry->path, &entry->config, NULL);
          if (!entry->readable)
            memset (&entry->config, 0, sizeof entry->config);
          if (entry_kind (entry) != type)
            {
              dp_model_entry_free (entry);
              continue;
            }
          g_hash_table_add (seen, g_strdup (entry->name));
          g_ptr_array_add (list, entry);
        }
    }
  g_ptr_array_sort (list, entry_compare);
  return list;
}

void
dp_model_files_keep_fitting (GPtrArray *classifiers,
                             const DiffuseModelConfig *model)
{
  g_return_if_fail (classifiers != NULL && model != NULL);

  for (guint i = classifiers->len; i > 0; i--)
    {
      DpModelEntry *e = g_ptr_array_index (classifiers, i - 1);

      if (!e->readable ||
          !diffuse_classifier_check_model (&e->config, model, NULL) ||
          !diffuse_classifier_check_size (&e->config, model->image_size,
                                          model->image_size, NULL))
        g_ptr_array_remove_index (classifiers, i - 1);
    }
}

gboolean
dp_model_files_is_none (const char *text)
{
  return text == NULL || text[0] == '\0' ||
         g_ascii_strcasecmp (text, "none") == 0;
}

gchar *
dp_model_files_resolve (const char *const *dirs, DiffuseModelType type,
                        const char *text, GError **error)
{
  gboolean clf = type == DIFFUSE_MODEL_CLASSIFIER;
  g_autoptr (GPtrArray) list = NULL;
  const char *user = dirs != NULL && dirs[0] != NULL ? dirs[0] : "";
  g_autofree gchar *shown = NULL;

  g_return_val_if_fail (!clf || !dp_model_files_is_none (text), NULL);
  if (text != NULL && (strchr (text, G_DIR_SEPARATOR) != NULL ||
                       g_str_has_suffix (text, SUFFIX)))
    return g_strdup (text);

  list = dp_model_files_list (dirs, type);
  for (guint i = 0; i < list->len; i++)
    {
      DpModelEntry *entry = g_ptr_array_index (list, i);

      if (text == NULL || text[0] == '\0' || g_strcmp0 (entry->name, text) == 0)
        return g_strdup (entry->path);
    }

  if (text == NULL || text[0] == '\0')
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "No diffusion model found: put a .safetensors model in %s "
                   "or give the model's path",
                   user);
      return NULL;
    }
  shown = diffuse_text_escape (text);
  /* a file of the other kind by that name: say what it is */
  {
    g_autoptr (GPtrArray) others = dp_model_files_list (
        dirs, clf ? DIFFUSE_MODEL_UNET : DIFFUSE_MODEL_CLASSIFIER);

    for (guint i = 0; i < others->len; i++)
      {
        DpModelEntry *entry = g_ptr_array_index (others, i);

        if (g_strcmp0 (entry->name, text) != 0 || !entry->readable)
          continue;
        if (clf)
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "'%s' is a diffusion model, not a classifier: give it "
                       "as the model, and a classifier (or none) as the "
                       "classifier",
                       shown);
        else
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "'%s' is a classifier (for classifier guidance), not a "
                       "diffusion model: give a diffusion model as the model "
                       "and this one as the classifier",
                       shown);
        return NULL;
      }
  }
  if (clf)
    g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                 "No classifier named '%s' (looked in %s and the shipped "
                 "models); give a name from the classifier list, a path to a "
                 "classifier .safetensors file, or \"\" for none",
                 shown, user);
  else
    g_set_error (
        error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
        "No model named '%s' (looked in %s and the shipped models); "
        "give a name from the model list or a path to a .safetensors file",
        shown, user);
  return NULL;
}
