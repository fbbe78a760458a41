/* gimp-diffusion: the GimpPlugIn and its three procedures.
 *
 * Every parameter is a procedure argument, so Script-Fu, the dialog and
 * GIMP's remembered settings all come from one declaration:
 *   plug-in-diffuse-generate         new layer(s) with samples of a class
 *   plug-in-diffuse-img2img          re-imagine the layer / selection
 *   plug-in-diffuse-guidance-sweep   one seed, a row of guidance values,
 *                                    as a labelled contact sheet image
 *   plug-in-diffuse-inpaint          regenerate the selection, continuing
 *                                    its surroundings */
#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "plugin.h"

typedef struct _DpPlugIn
{
  GimpPlugIn parent_instance;
} DpPlugIn;

#define DP_TYPE_PLUG_IN (dp_plug_in_get_type ())
G_DECLARE_FINAL_TYPE (DpPlugIn, dp_plug_in, DP, PLUG_IN, GimpPlugIn)
G_DEFINE_TYPE (DpPlugIn, dp_plug_in, GIMP_TYPE_PLUG_IN)

GIMP_MAIN (DP_TYPE_PLUG_IN)

static GList *
dp_query_procedures (GimpPlugIn *plug_in)
{
  GList *list = NULL;

  list = g_list_append (list, g_strdup (DP_PROC_GENERATE));
  list = g_list_append (list, g_strdup (DP_PROC_IMG2IMG));
  list = g_list_append (list, g_strdup (DP_PROC_SWEEP));
  list = g_list_append (list, g_strdup (DP_PROC_INPAINT));
  return list;
}

static gboolean
dp_set_i18n (GimpPlugIn *plug_in, const gchar *procedure_name,
             gchar **gettext_domain, gchar **catalog_dir)
{
  return FALSE;
}

/* A GimpChoice of an enum setting's names, with the table's help. */
static GimpChoice *
setting_choice (const DiffuseSetting *st)
{
  GimpChoice *choice = gimp_choice_new ();
  gint k;

  for (k = 0; st->nicks[k] != NULL; k++)
    {
      gimp_choice_add (choice, st->nicks[k], k, st->nick_labels[k],
                       st->nick_help[k]);
    }
  return choice;
}

/* The settings table's arguments (args.c chooses which, with their
 * ranges and defaults). */
static void
add_table_arguments (GimpProcedure *procedure, DpKind kind)
{
  DpArgSpec specs[32];
  gint n = dp_arg_specs (kind, specs, G_N_ELEMENTS (specs));
  gint i;

  for (i = 0; i < n; i++)
    {
      const DiffuseSetting *st = specs[i].setting;

      switch (st->type)
        {
        case DIFFUSE_SETTING_INT:
          gimp_procedure_add_int_argument (
              procedure, st->name, st->label, st->help, (gint) specs[i].min,
              (gint) specs[i].max, (gint) specs[i].default_value,
              G_PARAM_READWRITE);
          break;
        case DIFFUSE_SETTING_DOUBLE:
          {
            /* guidance: what its default means with a model that cannot
             * be guided (dp_args_given) */
            g_autofree gchar *help =
                st->flags & DIFFUSE_SETTING_GUIDED_DEFAULT
                    ? g_strdup_printf (
                          "%s. Default %g, the best measured; with a model "
                          "without a null class the default runs as 0",
                          st->help, specs[i].default_value)
                    : g_strdup (st->help);

            gimp_procedure_add_double_argument (
                procedure, st->name, st->label, help, specs[i].min,
                specs[i].max, specs[i].default_value, G_PARAM_READWRITE);
          }
          break;
        case DIFFUSE_SETTING_ENUM:
          gimp_procedure_add_choice_argument (
              procedure, st->name, st->label, st->help, setting_choice (st),
              specs[i].default_nick, G_PARAM_READWRITE);
          break;
        case DIFFUSE_SETTING_STRING:
          gimp_procedure_add_string_argument (procedure, st->name, st->label,
                                              st->help, "", G_PARAM_READWRITE);
          break;
        }
    }
}

static void
add_common_arguments (GimpProcedure *procedure, DpKind kind)
{
  gimp_procedure_add_string_argument (
      procedure, "model", "M_odel",
      "Model file (.safetensors) or the name of a "
      "model in the model folders; empty = the first "
      "model found",
      "", G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (
      procedure, "preset", "_Preset",
      "Name of a preset whose values override the "
      "sampling arguments it sets; empty = none",
      "", G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (
      procedure, "class", "Cl_ass",
      "Class name or index; empty = the model's "
      "\"no label\" class when it has one, else 0 "
      "(the sweep: the first real class)",
      "", G_PARAM_READWRITE);
  gimp_procedure_add_string_argument (
      procedure, "classifier", "Steer _by",
      "Classifier guidance: a noisy-image classifier file (.safetensors) or "
      "the name of a classifier in the model folders, whose gradient of "
      "log p(class | x_t) steers every step towards the class (by "
      "classifier-scale); empty or \"none\" = no classifier guidance",
      "", G_PARAM_READWRITE);
  add_table_arguments (procedure, kind);
  if (kind == DP_SWEEP)
    {
      gimp_procedure_add_string_argument (
          procedure, "guidance-values", "_Follow the class values",
          "Guidance values w to compare, comma-separated", "0,1,2,4,8",
          G_PARAM_READWRITE);
      gimp_procedure_add_boolean_argument (
          procedure, "as-layers", "Results as la_yers in this image",
          "Put the results into the current image, one layer per value "
          "(named \"w = 2\"), sized to the image, instead of a new "
          "contact-sheet image",
          FALSE, G_PARAM_READWRITE);
    }
  gimp_procedure_add_int_argument (
      procedure, "seed", "See_d",
      "Random seed (the same seed gives the same image)", 0, G_MAXINT, 0,
      G_PARAM_READWRITE);
  if (kind == DP_INPAINT)
    gimp_procedure_add_int_argument (
        procedure, "margin", "Conte_xt margin",
        "Pixels of surroundings the model sees around the selection's "
        "bounds (the area then grows to at least the model's size)",
        0, 4096, DIFFUSE_INPAINT_DEFAULT_MARGIN, G_PARAM_READWRITE);
  /* "model" is the default: on an area larger than the model, sampling at
   * the area's own size (fully convolutionally) gives a pattern of
   * cut-off subjects, not one whole one */
  if (kind != DP_SWEEP && kind != DP_INPAINT)
    gimp_procedure_add_choice_argument (
        procedure, "size-mode", "Si_ze",
        "When the area's size differs from the model's",
        gimp_choice_new_with_values (
            "auto", 0, "Fill the area at full size",
            "Paints at the area's own size (fully convolutionally) when the "
            "model allows it: a larger area gets more, smaller subjects, "
            "like a pattern; otherwise one subject, scaled",
            "model", 1, "One subject, scaled to fit",
            "Paints at the model's own size (keeping the area's shape) and "
            "scales the picture to the area",
            "layer", 2, "Full size only",
            "Always at the area's own size (fully convolutionally); an error "
            "when the model cannot",
            NULL),
        "model", G_PARAM_READWRITE);
}

static GimpValueArray *dp_run (GimpProcedure *procedure, GimpRunMode run_mode,
                               GimpImage *image, GimpDrawable **drawables,
                               GimpProcedureConfig *config, gpointer run_data);

static GimpProcedure *
dp_create_procedure (GimpPlugIn *plug_in, const gchar *name)
{
  GimpProcedure *procedure;
  DpKind kind;

  if (g_strcmp0 (name, DP_PROC_GENERATE) == 0)
    kind = DP_GENERATE;
  else if (g_strcmp0 (name, DP_PROC_IMG2IMG) == 0)
    kind = DP_IMG2IMG;
  else if (g_strcmp0 (name, DP_PROC_SWEEP) == 0)
    kind = DP_SWEEP;
  else if (g_strcmp0 (name, DP_PROC_INPAINT) == 0)
    kind = DP_INPAINT;
  else
    return NULL;

  procedure =
      gimp_image_procedure_new (plug_in, name, GIMP_PDB_PROC_TYPE_PLUGIN,
                                dp_run, GINT_TO_POINTER (kind), NULL);
  gimp_procedure_set_image_types (procedure, "*");
  gimp_procedure_set_attribution (procedure, "gimp-diffusion authors",
                                  "gimp-diffusion authors", "2026");

  switch (kind)
    {
    case DP_GENERATE:
      gimp_procedure_set_sensitivity_mask (procedure,
                                           GIMP_PROCEDURE_SENSITIVE_ALWAYS);
      gimp_procedure_set_menu_label (procedure, "_Generate...");
      gimp_procedure_set_documentation (
          procedure, "Generate an image of a class with a diffusion model",
          "Samples a class-conditional diffusion model on the CPU into new "
          "layers above the current one (one per variation), sized to the "
          "selection, the current layer or the image. Models with alpha "
          "give transparent layers.",
          name);
      gimp_procedure_add_core_object_array_return_value (
          procedure, "layers", "Layers", "The new layers", GIMP_TYPE_LAYER,
          G_PARAM_READWRITE);
      break;
    case DP_IMG2IMG:
      gimp_procedure_set_sensitivity_mask (procedure,
                                           GIMP_PROCEDURE_SENSITIVE_DRAWABLE);
      gimp_procedure_set_menu_label (procedure, "_Img2img...");
      gimp_procedure_set_documentation (
          procedure, "Re-imagine the layer or selection with a diffusion model",
          "Noises the layer (or the selection's bounds) part of the way, by "
          "strength, then denoises it towards the chosen class. One undo "
          "step restores the original.",
          name);
      break;
    case DP_INPAINT:
      gimp_procedure_set_sensitivity_mask (procedure,
                                           GIMP_PROCEDURE_SENSITIVE_DRAWABLE);
      gimp_procedure_set_menu_label (procedure, "_Inpaint Selection...");
      gimp_procedure_set_documentation (
          procedure,
          "Regenerate the selection so that it continues its surroundings",
          "Samples new content for the selected pixels while the model sees "
          "the pixels around them (the selection's bounds plus a margin), "
          "kept as they are at every step. A feathered selection gives a "
          "soft edge; unselected pixels stay exactly as they were. One undo "
          "step restores the original.",
          name);
      break;
    case DP_SWEEP:
      gimp_procedure_set_sensitivity_mask (procedure,
                                           GIMP_PROCEDURE_SENSITIVE_ALWAYS);
      gimp_procedure_set_menu_label (procedure, "Guidance _Sweep...");
      gimp_procedure_set_documentation (
          procedure, "Compare guidance values for one seed and class",
          "Samples the same seed and class once per guidance value and lays "
          "the results out in a new image, labelled with the values, to tune "
          "presets; or, with as-layers, puts them into the current image as "
          "one layer per value, to compare with the eye toggles and keep "
          "one.",
          name);
      gimp_procedure_add_image_return_value (
          procedure, "sheet", "Sheet",
          "The contact sheet (with as-layers: the current image)", FALSE,
          G_PARAM_READWRITE);
      break;
    }
  gimp_procedure_add_menu_path (procedure, "<Image>/Filters/Render/Diffusion/");
  add_common_arguments (procedure, kind);
  return procedure;
}

static void
dp_plug_in_class_init (DpPlugInClass *klass)
{
  GimpPlugInClass *plug_in_class = GIMP_PLUG_IN_CLASS (klass);

  plug_in_class->query_procedures = dp_query_procedures;
  plug_in_class->create_procedure = dp_create_procedure;
  plug_in_class->set_i18n = dp_set_i18n;
}

static void
dp_plug_in_init (DpPlugIn *plug_in)
{
}

/* Batch runs sample on the main thread and drive GIMP's progress bar
 * directly. */
static void
batch_step (DpJob *job, double fraction, gpointer user_data)
{
  gimp_progress_update (fraction);
}

static GimpValueArray *
dp_run (GimpProcedure *procedure, GimpRunMode run_mode, GimpImage *image,
        GimpDrawable **drawables, GimpProcedureConfig *config,
        gpointer run_data)
{
  DpRun run = { 0 };
  DpSettings settings = { 0 };
  g_autoptr (DpJob) job = NULL;
  GError *error = NULL;
  GimpPDBStatusType status = GIMP_PDB_SUCCESS;
  GimpValueArray *values;
  gsize n_drawables =
      drawables != NULL
          ? gimp_core_object_array_get_length ((GObject **) drawables)
          : 0;

  gegl_init (NULL, NULL);

  run.kind = GPOINTER_TO_INT (run_data);
  run.procedure = procedure;
  run.run_mode = run_mode;
  run.image = image;
  run.config = config;
  if (n_drawables == 1)
    run.drawable = drawables[0];
  else if (n_drawables > 1 &&
           (run.kind == DP_IMG2IMG || run.kind == DP_INPAINT))
    {
      g_set_error (&error, GIMP_PLUG_IN_ERROR, 0,
                   "%s works on one layer at a time; select a single layer",
                   run.kind == DP_IMG2IMG ? "Img2img" : "Inpainting");
      return gimp_procedure_new_return_values (procedure,
                                               GIMP_PDB_CALLING_ERROR, error);
    }

  if (run_mode == GIMP_RUN_INTERACTIVE)
    {
      if (!dp_run_interactive (&run, &job, &settings, &error))
        status = error != NULL ? GIMP_PDB_EXECUTION_ERROR : GIMP_PDB_CANCEL;
    }
  else
    {
      dp_settings_read (&settings, run.kind, config);
      if (!dp_settings_apply_preset (&settings, run.kind, &error) ||
          (job = dp_run_prepare (&run, &settings, &error)) == NULL)
        status = GIMP_PDB_CALLING_ERROR;
      else
        {
          gimp_progress_init ("Diffusion sampling");
          job->step_func = batch_step;
          if (!dp_job_run (job, &error))
            status = GIMP_PDB_EXECUTION_ERROR;
          gimp_progress_end ();
        }
    }

  if (status == GIMP_PDB_SUCCESS &&
      !dp_run_finish (&run, &settings, job, &error))
    status = GIMP_PDB_EXECUTION_ERROR;

  values = gimp_procedure_new_return_values (procedure, status, error);
  if (status == GIMP_PDB_SUCCESS && run.kind == DP_GENERATE)
    {
      guint n = g_list_length (run.new_layers), i = 0;
      GimpLayer **layers = g_new0 (GimpLayer *, n + 1);
      GList *l;

      for (l = run.new_layers; l != NULL; l = l->next)
        layers[i++] = l->data;
      GIMP_VALUES_TAKE_CORE_OBJECT_ARRAY (values, 1, (GObject **) layers);
    }
  if (status == GIMP_PDB_SUCCESS && run.kind == DP_SWEEP)
    GIMP_VALUES_SET_IMAGE (values, 1, run.new_image);

  dp_settings_clear (&settings);
  dp_run_clear (&run);
  return values;
}
