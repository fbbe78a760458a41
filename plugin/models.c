/* Where the plug-in finds models and classifiers: the user's folder
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

/* The folders as a NULL-terminated vector, the user's first. */
static gchar **
dirs_strv (void)
{
  GPtrArray *dirs = model_dirs ();

  g_ptr_array_add (dirs, NULL);
  return (gchar **) g_ptr_array_free (dirs, FALSE);
}

/* The diffusion models of the folders (model-files.c: the kind from each
 * file's header); a name seen in an earlier folder hides later ones. */
GPtrArray *
dp_models_list (void)
{
  g_auto (GStrv) dirs = dirs_strv ();

  return dp_model_files_list ((const char *const *) dirs, DIFFUSE_MODEL_UNET);
}

/* The classifiers of the same folders. */
GPtrArray *
dp_classifiers_list (void)
{
  g_auto (GStrv) dirs = dirs_strv ();

  return dp_model_files_list ((const char *const *) dirs,
                              DIFFUSE_MODEL_CLASSIFIER);
}

/* A path (anything with a directory separator or ending in
 * .safetensors) is used as given; otherwise the name of a diffusion
 * model in the folders; "" picks the first model found. */
gchar *
dp_models_resolve (const char *model, GError **error)
{
  g_auto (GStrv) dirs = dirs_strv ();

  return dp_model_files_resolve ((const char *const *) dirs, DIFFUSE_MODEL_UNET,
                                 model, error);
}

/* The same for a classifier (not for one that means none). */
gchar *
dp_classifiers_resolve (const char *classifier, GError **error)
{
  g_auto (GStrv) dirs = dirs_strv ();

  return dp_model_files_resolve ((const char *const *) dirs,
                                 DIFFUSE_MODEL_CLASSIFIER, classifier, error);
}
