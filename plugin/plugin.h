/* gimp-diffusion plug-in: the declarations of plugin/.
 *
 * The plug-in only translates between GIMP and libdiffuse: it reads the
 * procedure's arguments (DpSettings), loads the model, reads pixels into
 * float planes and builds a DpJob (prepare, main thread), runs the job
 * (any thread), and writes the result back into GIMP (finish, main
 * thread).  Interactive runs do the middle step on a worker thread from
 * the dialog (ui/dialog.c) so that the preview updates and Cancel works.
 * plugin/ uses ui/ (the dialog, the job, the preview), never the other
 * way: the dialog gets what it needs of the plug-in as functions
 * (interactive.c). */
#ifndef DP_PLUGIN_H
#define DP_PLUGIN_H

#include <libgimp/gimp.h>

#include "diffuse.h"
#include "args.h"
#include "dialog.h"
#include "job.h"
#include "model-files.h"

G_BEGIN_DECLS

#define DP_BINARY "gimp-diffusion"
#define DP_PROC_GENERATE "plug-in-diffuse-generate"
#define DP_PROC_IMG2IMG "plug-in-diffuse-img2img"
#define DP_PROC_SWEEP "plug-in-diffuse-guidance-sweep"
#define DP_PROC_INPAINT "plug-in-diffuse-inpaint"

/* Native runs may use up to this many times the model's own area. */
#define DP_MAX_AREA_FACTOR 16.0

/* The procedure's arguments, as read from its config. */
typedef struct
{
  gchar *model;      /* path or model name; "" = first model found */
  gchar *preset;     /* preset name or "" */
  gchar *class_text; /* class name or index; "" = default */
  /* classifier guidance: path or classifier name; "" or "none" = none
   * (its scale is the table's classifier-scale, in values) */
  gchar *classifier;
  /* the settings table's arguments of this procedure (steps, sampler,
   * eta, guidance, variance, count, strength: dp_arg_specs); the others
   * keep their defaults */
  DiffuseSampleParams values;
  DiffuseSettingsMask preset_given; /* the settings a batch preset set */
  gint seed;
  gchar *size_mode;       /* "model" (default), "auto", "layer" */
  gchar *guidance_values; /* sweep: "0,1,2,4" */
  gboolean as_layers;     /* sweep: layers in the current image */
  gint margin;            /* inpaint: context around the selection, px */
} DpSettings;

typedef struct
{
  DpKind kind;
  GimpProcedure *procedure;
  GimpRunMode run_mode;
  GimpImage *image;
  GimpDrawable *drawable; /* NULL when none is selected */
  GimpProcedureConfig *config;

  /* The loaded model, cached by path across dialog runs. */
  gchar *model_path;
  DiffuseModel *model;
  /* The classifier, cached by path the same way (NULL: none). */
  gchar *classifier_path;
  DiffuseModel *classifier;

  /* Target area: image coordinates (generate) or the drawable's own
   * coordinates (img2img); set by dp_run_prepare. */
  gint x, y, width, height;
  gboolean scaled; /* run size differs from the target */

  /* Inpaint: the plan (its window is x, y, width, height above, in the
   * drawable's coordinates), and the window's original pixels and mask
   * (the selection), for finish. */
  DiffuseInpaintPlan plan;
  float *window;      /* [channels, height, width] */
  float *window_mask; /* [height, width] in [0, 1] */

  /* Results, for the return values. */
  GList *new_layers;    /* GimpLayer *, topmost last */
  GimpImage *new_image; /* sweep */
} DpRun;

/* settings.c */
void dp_settings_read (DpSettings *s, DpKind kind, GimpProcedureConfig *config);
void dp_settings_clear (DpSettings *s);
gboolean dp_settings_apply_preset (DpSettings *s, DpKind kind, GError **error);
void dp_config_apply_preset (GimpProcedureConfig *config, DpKind kind,
                             const DiffusePreset *preset);
void dp_config_to_preset (GimpProcedureConfig *config, DpKind kind,
                          DiffusePreset *preset);
gchar **dp_preset_dirs (void);
GPtrArray *dp_presets_load (gchar **warning);
DiffusePreset *dp_preset_find (GPtrArray *presets, const char *name);
double *dp_parse_guidance_values (const char *text, gint *n, GError **error);

/* models.c: shipped models, the plug-in folder and the user folder;
 * diffusion models and classifiers apart (model-files.c) */
GPtrArray *dp_models_list (void);      /* of DpModelEntry (ui/model-entry.h) */
GPtrArray *dp_classifiers_list (void); /* the same, classifiers */
gchar *dp_models_user_dir (void);
gchar *dp_models_resolve (const char *model, GError **error);
gchar *dp_classifiers_resolve (const char *classifier, GError **error);

/* run.c: prepare / finish, shared by interactive and batch runs */
gboolean dp_run_load_model (DpRun *run, const char *model, GError **error);
gboolean dp_run_load_classifier (DpRun *run, const char *classifier,
                                 GError **error);
gint dp_run_default_class (const DiffuseModel *model, DpKind kind);
gchar *dp_run_describe_size (DpRun *run, const DpSettings *s);
DpJob *dp_run_prepare (DpRun *run, const DpSettings *s, GError **error);
gboolean dp_run_finish (DpRun *run, const DpSettings *s, DpJob *job,
                        GError **error);
void dp_run_clear (DpRun *run);

/* pixels.c: GEGL buffers <-> planar float in [-1, 1] */
const Babl *dp_pixels_format (GimpDrawable *drawable, gint channels);
float *dp_pixels_read (GimpDrawable *drawable, gint x, gint y, gint width,
                       gint height, gint channels);
float *dp_pixels_read_alpha (GimpDrawable *drawable, gint x, gint y, gint width,
                             gint height);
void dp_pixels_write (GeglBuffer *buffer, GimpDrawable *drawable, gint x,
                      gint y, gint width, gint height, gint channels,
                      const float *planes, const float *alpha);

/* interactive.c: the dialog (ui/dialog.c) for this run; TRUE with a
 * finished job and the settings it was made from, FALSE when the user
 * closed the dialog. */
gboolean dp_run_interactive (DpRun *run, DpJob **job_out,
                             DpSettings *settings_out, GError **error);

G_END_DECLS

#endif /* DP_PLUGIN_H */
