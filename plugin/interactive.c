/* Interactive runs: the plug-in hands the dialog (ui/dialog.c) its
 * models, presets, size rules and jobs as functions, so that ui/ never
 * calls plugin/. */
#include <string.h>

#include <libgimp/gimp.h>

#include "plugin.h"

typedef struct
{
  DpRun *run;
  DpSettings settings; /* of the last job prepared */
  gboolean have_settings;
} Interactive;

static GPtrArray *
list_models (gpointer data)
{
  return dp_models_list ();
}

static GPtrArray *
list_classifiers (gpointer data, const DiffuseModel *model)
{
  GPtrArray *list = dp_classifiers_list ();

  dp_model_files_keep_fitting (list, diffuse_model_get_config (model));
  return list;
}

static const DiffuseModel *
load_model (gpointer data, const char *model, const char **path, GError **error)
{
  DpRun *run = ((Interactive *) data)->run;

  if (!dp_run_load_model (run, model, error))
    {
      /* the dialog shows the error and offers no model */
      g_clear_pointer (&run->model, diffuse_model_free);
      g_clear_pointer (&run->model_path, g_free);
      *path = NULL;
      return NULL;
    }
  *path = run->model_path;
  return run->model;
}

static gint
default_class (gpointer data, const DiffuseModel *model)
{
  return dp_run_default_class (model, ((Interactive *) data)->run->kind);
}

static gchar *
describe_size (gpointer data)
{
  DpRun *run = ((Interactive *) data)->run;
  DpSettings s;
  gchar *text;

  dp_settings_read (&s, run->kind, run->config);
  text = dp_run_describe_size (run, &s);
  dp_settings_clear (&s);
  return text;
}

static GPtrArray *
load_presets (gpointer data, gchar **warning)
{
  return dp_presets_load (warning);
}

static void
apply_preset (gpointer data, const DiffusePreset *preset)
{
  DpRun *run = ((Interactive *) data)->run;

  dp_config_apply_preset (run->config, run->kind, preset);
}

static void
preset_from_config (gpointer data, DiffusePreset *preset)
{
  DpRun *run = ((Interactive *) data)->run;

  dp_config_to_preset (run->config, run->kind, preset);
}

static DpJob *
prepare (gpointer data, GError **error)
{
  Interactive *in = data;

  if (in->have_settings)
    dp_settings_clear (&in->settings);
  dp_settings_read (&in->settings, in->run->kind, in->run->config);
  in->have_settings = TRUE;
  return dp_run_prepare (in->run, &in->settings, error);
}

static const DpDialogFuncs funcs = {
  list_models,   list_classifiers,   load_model,
  default_class, describe_size,      load_presets,
  apply_preset,  preset_from_config, prepare,
};

/* The generated widgets: the table's arguments (img2img's strength and
 * the sweep's list of values first; not classifier-scale, which the
 * dialog puts beside its classifier chooser), then the seed and the size
 * mode. */
static const char **
param_names (DpKind kind)
{
  DpArgSpec specs[32];
  gint n = dp_arg_specs (kind, specs, G_N_ELEMENTS (specs));
  GPtrArray *names = g_ptr_array_new ();
  gint i;

  if (kind == DP_SWEEP)
    {
      g_ptr_array_add (names, (gpointer) "guidance-values");
      g_ptr_array_add (names, (gpointer) "as-layers");
    }
  for (i = 0; i < n; i++)
    if (specs[i].setting->flags & DIFFUSE_SETTING_IMG2IMG)
      g_ptr_array_add (names, (gpointer) specs[i].setting->name);
  for (i = 0; i < n; i++)
    if (!(specs[i].setting->flags & DIFFUSE_SETTING_IMG2IMG) &&
        strcmp (specs[i].setting->name, "classifier-scale") != 0)
      g_ptr_array_add (names, (gpointer) specs[i].setting->name);
  g_ptr_array_add (names, (gpointer) "seed");
  if (kind != DP_SWEEP && kind != DP_INPAINT)
    g_ptr_array_add (names, (gpointer) "size-mode");
  if (kind == DP_INPAINT)
    g_ptr_array_add (names, (gpointer) "margin");
  g_ptr_array_add (names, NULL);
  return (const char **) g_ptr_array_free (names, FALSE);
}

gboolean
dp_run_interactive (DpRun *run, DpJob **job_out, DpSettings *settings_out,
                    GError **error)
{
  static const char *const titles[] = {
    "Diffusion: Generate",
    "Diffusion: Img2img",
    "Diffusion: Guidance Sweep",
    "Diffusion: Inpaint Selection",
  };
  static const char *const ok_labels[] = { "_Generate", "Appl_y", "S_weep",
                                           "_Inpaint" };
  Interactive in = { 0 };
  g_autofree const char **names = param_names (run->kind);
  g_autofree gchar *user_models = dp_models_user_dir ();
  DpDialogSpec spec = { 0 };
  gboolean done;

  in.run = run;
  spec.procedure = run->procedure;
  spec.config = run->config;
  spec.binary = DP_BINARY;
  spec.title = titles[run->kind];
  spec.ok_label = ok_labels[run->kind];
  spec.param_names = names;
  spec.user_models_dir = user_models;
  spec.funcs = &funcs;
  spec.data = &in;

  done = dp_dialog_run (&spec, job_out, error);
  if (done)
    *settings_out = in.settings;
  else if (in.have_settings)
    dp_settings_clear (&in.settings);
  return done;
}
