/* The plug-in's model files by kind, without GIMP (tests/test-model-files.c):
 * which .safetensors files of the model folders are diffusion models and
 * which are classifiers (from their headers alone), which classifiers fit
 * a model, and what a "model" or "classifier" argument names. */
#ifndef DP_MODEL_FILES_H
#define DP_MODEL_FILES_H

#include "model-entry.h"

G_BEGIN_DECLS

/* Every NAME.safetensors of kind type in dirs (NULL-terminated; folders
 * that are missing are skipped), sorted by name, of DpModelEntry.  A
 * name found in an earlier folder hides the same name of the same kind
 * in later ones.  The kind comes from the file's header
 * (diffuse_model_file_read_config); a file whose header cannot be read
 * is listed with the diffusion models (readable FALSE), so that choosing
 * it shows the loader's error. */
GPtrArray *dp_model_files_list (const char *const *dirs, DiffuseModelType type);

/* Removes (and frees) the entries of classifiers that cannot guide a
 * model of this configuration (diffuse_classifier_check_model: kind,
 * channels, the diffusion it was trained for; and
 * diffuse_classifier_check_size at the model's own size), and unreadable
 * ones. */
void dp_model_files_keep_fitting (GPtrArray *classifiers,
                                  const DiffuseModelConfig *model);

/* Whether a "classifier" argument means no classifier guidance: empty,
 * or "none" in any case (NULL too). */
gboolean dp_model_files_is_none (const char *text);

/* The file a "model" (type UNET) or "classifier" (type CLASSIFIER)
 * argument names: a path (anything with a directory separator or ending
 * in .safetensors) as given; else the name of a file of that kind in
 * dirs; for models "" means the first model found.  dirs[0] is the
 * user's folder (named in the error).  A "classifier" that
 * dp_model_files_is_none is not resolved here (the caller has no
 * classifier). */
gchar *dp_model_files_resolve (const char *const *dirs, DiffuseModelType type,
                               const char *text, GError **error);

G_END_DECLS

#endif /* DP_MODEL_FILES_H */
