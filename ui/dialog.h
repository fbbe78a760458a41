/* The plug-in's interactive dialog.
 *
 * ui/ is the layer under plugin/: it knows GTK, GIMP's procedure config
 * and libdiffuse, and calls nothing in plugin/.  What belongs to the
 * plug-in (its model folders, presets, the image's size rules, building
 * a job from the arguments) the dialog reaches only through the
 * functions the plug-in hands it in DpDialogFuncs. */
#ifndef DP_DIALOG_H
#define DP_DIALOG_H

#include <libgimp/gimp.h>

#include "diffuse.h"
#include "job.h"
#include "model-entry.h"

G_BEGIN_DECLS

typedef struct
{
  /* The models to offer, of DpModelEntry (the dialog unrefs it). */
  GPtrArray *(*list_models) (gpointer data);
  /* The classifiers found that can guide model, of DpModelEntry (the
   * dialog unrefs it). */
  GPtrArray *(*list_classifiers) (gpointer data, const DiffuseModel *model);
  /* The model the "model" argument names, loaded (or the cached one) and
   * kept by the plug-in; its file in *path.  NULL with error set when it
   * cannot be loaded (the plug-in then keeps no model). */
  const DiffuseModel *(*load_model) (gpointer data, const char *model,
                                     const char **path, GError **error);
  /* The class an empty "class" argument means with this model. */
  gint (*default_class) (gpointer data, const DiffuseModel *model);
  /* One line on the size the current arguments sample at. */
  gchar *(*describe_size) (gpointer data);
  /* The presets to offer, of DiffusePreset; *warning names the files
   * that could not be read (NULL when none). */
  GPtrArray *(*load_presets) (gpointer data, gchar **warning);
  /* Copy a preset's settings into the procedure's config, and the
   * config's preset settings into a preset (for "Save as..."). */
  void (*apply_preset) (gpointer data, const DiffusePreset *preset);
  void (*preset_from_config) (gpointer data, DiffusePreset *preset);
  /* A job for the current arguments, or NULL with error set. */
  DpJob *(*prepare) (gpointer data, GError **error);
} DpDialogFuncs;

typedef struct
{
  GimpProcedure *procedure;
  GimpProcedureConfig *config;
  const char *binary; /* for window roles and console messages */
  const char *title;
  const char *ok_label;
  const char *const
      *param_names;            /* the generated widgets, in order; NULL-ended */
  const char *user_models_dir; /* shown; "Open" starts there */
  const DpDialogFuncs *funcs;
  gpointer data; /* passed to every function */
} DpDialogSpec;

/* Runs the dialog until a job finishes (TRUE, the job in *job_out), the
 * user closes it (FALSE) or fails (FALSE, error set). */
gboolean dp_dialog_run (const DpDialogSpec *spec, DpJob **job_out,
                        GError **error);

G_END_DECLS

#endif /* DP_DIALOG_H */
