/* The interactive dialog: a GimpProcedureDialog generated from the
 * procedure's arguments, plus one model chooser (the models found, "Other
 * model file..." and "Open your models folder"), a class combo filled
 * with the model's class names, a classifier chooser ("Steer by": None,
 * the classifiers found that fit the model, "Other classifier file...")
 * with its scale beside it, presets (shipped + the user's own, with
 * "Save as..."; GIMP's own Load / Save Settings buttons are hidden so
 * that there is one way), the seed with "Pick a random seed", a line on
 * the size, an estimate of the run's time, a live preview of the
 * predicted x0 and a progress bar with the elapsed and remaining time.
 * Settings that do nothing in the current mode are insensitive (eta with
 * DDPM, the step noise with DDIM, guidance with the null class).  OK
 * starts sampling on a worker thread while the dialog stays open; Cancel
 * then stops the job within one step, and the image is only written
 * after a job finishes (so a cancel leaves it as it was).  Models,
 * presets, sizes and jobs come from the plug-in's functions
 * (DpDialogFuncs, dialog.h).
 *
 * With GIMP_DIFFUSION_TRACE_DIALOG set in the environment the dialog
 * writes its state (which settings are sensitive, the size line, the
 * estimate) to stderr as it changes, for the GUI tests. */
#include <stdlib.h>
#include <string.h>

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "dialog.h"
#include "preview.h"

#define PREVIEW_SIZE 192
#define RESPONSE_RESET 1 /* GimpProcedureDialog's Reset button */

/* the model combo's two action entries (ids no model name can have:
 * model names are file names) */
#define MODEL_OTHER_FILE "/other-file"
#define MODEL_OPEN_FOLDER "/open-folder"
/* the classifier combo's: no classifier, and a file chooser */
#define CLASSIFIER_NONE ""
#define CLASSIFIER_OTHER_FILE "/other-classifier"

typedef struct
{
  const DpDialogSpec *spec;
  const DpDialogFuncs *f;
  const DiffuseModel *model; /* the plug-in's, NULL when none loaded */
  GimpProcedureDialog *dialog;
  GimpProcedureConfig *config;
  GtkWidget *model_combo;
  GtkWidget *model_info;
  GtkWidget *class_combo;
  GtkWidget *classifier_combo;
  GtkWidget *classifier_scale; /* the generated classifier-scale widget */
  GtkWidget *preset_combo;
  GtkWidget *size_label;
  GtkWidget *estimate_label;
  GtkWidget *params_box;
  GtkWidget *preview_stack;
  GtkWidget *left; /* everything that edits the settings */
  GtkWidget *preview;
  GtkWidget *progress;
  GtkWidget *status;
  GPtrArray *presets; /* of DiffusePreset */
  gboolean applying;  /* we are setting config values ourselves */
  /* guidance set aside while a model without a null class shows 0 */
  gboolean guidance_stashed;
  double stashed_guidance;
  gboolean trace; /* GIMP_DIFFUSION_TRACE_DIALOG */

  /* the estimate: one network evaluation's time at a size, per model */
  guint estimate_source;
  const DiffuseModel *timed_model;
  gint timed_h, timed_w;
  DiffusePrecision timed_precision;
  double eval_seconds;

  /* the running job */
  DpJob *job;
  gboolean running;
  gboolean job_ok;
  GError *job_error;
  gboolean close_requested;
  gboolean model_changed; /* config's model changed while running */
  GMainLoop *loop;
  float *preview_buf;
  GTimer *run_timer;
  gint traced_second; /* the progress line is traced once a second */
} Dialog;

static void schedule_estimate (Dialog *d);

/* "0:07", "2:05", "1:02:03" */
static gchar *
format_duration (double seconds)
{
  gint s = (gint) (seconds + 0.5);

  if (s >= 3600)
    return g_strdup_printf ("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
  return g_strdup_printf ("%d:%02d", s / 60, s % 60);
}

static void
trace (Dialog *d, const char *what, const char *text)
{
  if (d->trace)
    g_printerr ("%s: dialog %s: %s\n", d->spec->binary, what, text);
}

static void
set_status (Dialog *d, const char *text, gboolean is_error)
{
  if (is_error)
    {
      g_autofree gchar *markup = g_markup_printf_escaped (
          "<span foreground=\"#c01c28\">%s</span>", text);
      gtk_label_set_markup (GTK_LABEL (d->status), markup);
    }
  else
    gtk_label_set_text (GTK_LABEL (d->status), text);
}

static void
update_size_label (Dialog *d)
{
  g_autofree gchar *text = d->f->describe_size (d->spec->data);

  gtk_label_set_text (GTK_LABEL (d->size_label), text);
  trace (d, "size", text);
}

/* ---- settings that do nothing in the current mode ---------------------- */

static GtkWidget *
param_widget (Dialog *d, const char *name)
{
  gint i;

  /* only the generated widgets: get_widget would make one otherwise */
  for (i = 0; d->spec->param_names[i] != NULL; i++)
    if (strcmp (d->spec->param_names[i], name) == 0)
      return gimp_procedure_dialog_get_widget (d->dialog, name, G_TYPE_NONE);
  return NULL;
}

static void
set_param_sensitive (Dialog *d, const char *name, gboolean on, const char *why)
{
  GtkWidget *w = param_widget (d, name);

  if (w == NULL)
    return;
  gtk_widget_set_sensitive (w, on);
  if (d->trace)
    {
      g_autofree gchar *text = g_strdup_printf (
          "%s %s%s%s", name, on ? "on" : "off", on ? "" : ": ", on ? "" : why);

      trace (d, "setting", text);
    }
}

/* "", "none": no classifier guidance (as the plug-in reads it). */
static gboolean
classifier_is_none (const char *text)
{
  return text == NULL || text[0] == '\0' ||
         g_ascii_strcasecmp (text, "none") == 0;
}

/* Randomness (eta) is DDIM's, the step noise (variance) DDPM's; following
 * the class needs a class other than the null one; the classifier's
 * scale needs a classifier. */
static void
update_sensitivity (Dialog *d)
{
  g_autofree gchar *sampler = NULL;
  g_autofree gchar *class_text = NULL;
  gboolean ddpm, guided = TRUE;

  /* the classifier's scale does nothing without a classifier */
  if (d->classifier_scale != NULL)
    {
      g_autofree gchar *classifier = NULL;
      gboolean on;

      g_object_get (d->config, "classifier", &classifier, NULL);
      on = !classifier_is_none (classifier);
      gtk_widget_set_sensitive (d->classifier_scale, on);
      if (d->trace)
        trace (d, "setting",
               on ? "classifier-scale on"
                  : "classifier-scale off: no classifier chosen");
    }
  if (param_widget (d, "sampler") == NULL)
    return;
  g_object_get (d->config, "sampler", &sampler, NULL);
  ddpm = g_strcmp0 (sampler, "ddpm") == 0;
  set_param_sensitive (d, "eta", !ddpm, "DDPM is always fully random");
  set_param_sensitive (d, "variance", ddpm, "DDIM has no step noise setting");

  if (d->model != NULL)
    {
      const DiffuseModelConfig *cfg = diffuse_model_get_config (d->model);
      gint label = -1;

      g_object_get (d->config, "class", &class_text, NULL);
      if (cfg->num_classes <= 0)
        guided = FALSE;
      else
        {
          if (class_text == NULL || class_text[0] == '\0' ||
              !diffuse_model_find_class (d->model, class_text, &label, NULL))
            label = d->f->default_class (d->spec->data, d->model);
          guided = cfg->null_class >= 0 && label != cfg->null_class;
        }
    }
  set_param_sensitive (d, "guidance", guided,
                       "no class chosen, or a model without a null class");
}

/* Follow the class needs a null class: with a model without one the
 * dialog shows (and runs) 0, the preset becoming "Custom" when it had set
 * another value; the value set aside comes back when a model with a null
 * class is chosen again.  (A fresh profile starts from the procedure's
 * defaults, the best measured: w = 2.) */
static void
fit_guidance (Dialog *d)
{
  double w;
  gboolean can;

  if (d->model == NULL || param_widget (d, "guidance") == NULL)
    return;
  can = diffuse_model_can_guide (d->model, NULL);
  g_object_get (d->config, "guidance", &w, NULL);
  if (!can && w != 0.0)
    {
      d->stashed_guidance = w;
      d->guidance_stashed = TRUE;
      d->applying = TRUE;
      g_object_set (d->config, "guidance", 0.0, "preset", "", NULL);
      if (d->preset_combo != NULL)
        gtk_combo_box_set_active_id (GTK_COMBO_BOX (d->preset_combo), "");
      d->applying = FALSE;
      trace (d, "guidance", "0: the model has no null class");
    }
  else if (can && d->guidance_stashed)
    {
      d->guidance_stashed = FALSE;
      if (w == 0.0)
        {
          g_autofree gchar *text = g_strdup_printf (
              "%g: back with a null class", d->stashed_guidance);

          d->applying = TRUE;
          g_object_set (d->config, "guidance", d->stashed_guidance, NULL);
          d->applying = FALSE;
          trace (d, "guidance", text);
        }
    }
}

/* For the GUI tests: the sampling values the dialog shows ("steps 50,
 * sampler ddim, eta 1, guidance 2"). */
static void
trace_values (Dialog *d)
{
  static const char *const names[] = { "steps", "sampler", "eta", "guidance" };
  g_autoptr (GString) text = g_string_new (NULL);

  if (!d->trace)
    return;
  for (gsize i = 0; i < G_N_ELEMENTS (names); i++)
    {
      GParamSpec *ps;
      GValue v = G_VALUE_INIT;
      g_autofree gchar *shown = NULL;

      if (param_widget (d, names[i]) == NULL ||
          (ps = g_object_class_find_property (G_OBJECT_GET_CLASS (d->config),
                                              names[i])) == NULL)
        continue;
      g_value_init (&v, ps->value_type);
      g_object_get_property (G_OBJECT (d->config), names[i], &v);
      if (G_VALUE_HOLDS_DOUBLE (&v))
        shown = g_strdup_printf ("%g", g_value_get_double (&v));
      else if (G_VALUE_HOLDS_INT (&v))
        shown = g_strdup_printf ("%d", g_value_get_int (&v));
      else if (G_VALUE_HOLDS_STRING (&v))
        shown = g_value_dup_string (&v);
      g_value_unset (&v);
      if (shown != NULL)
        g_string_append_printf (text, "%s%s %s", text->len ? ", " : "",
                                names[i], shown);
    }
  trace (d, "values", text->str);
}

/* The id a combo should show: select when given, else the config's
 * value of prop. */
static gchar *
wanted_id (Dialog *d, const char *select, const char *prop)
{
  gchar *id = NULL;

  if (select != NULL)
    return g_strdup (select);
  g_object_get (d->config, prop, &id, NULL);
  return id;
}

/* ---- class combo --------------------------------------------------- */

static void
fill_class_combo (Dialog *d)
{
  GtkComboBoxText *combo = GTK_COMBO_BOX_TEXT (d->class_combo);
  g_autofree gchar *current = NULL;
  const DiffuseModelConfig *cfg;
  gint i, active;

  d->applying = TRUE;
  gtk_combo_box_text_remove_all (combo);
  if (d->model == NULL)
    {
      gtk_widget_set_sensitive (d->class_combo, FALSE);
      d->applying = FALSE;
      return;
    }
  cfg = diffuse_model_get_config (d->model);
  if (cfg->num_classes <= 0)
    {
      gtk_combo_box_text_append (combo, "", "(unconditional model)");
      gtk_combo_box_set_active (GTK_COMBO_BOX (combo), 0);
      gtk_widget_set_sensitive (d->class_combo, FALSE);
      d->applying = FALSE;
      return;
    }
  gtk_widget_set_sensitive (d->class_combo, TRUE);
  for (i = 0; i < cfg->num_classes; i++)
    {
      const char *name = diffuse_model_get_class_name (d->model, i);
      g_autofree gchar *id = g_strdup_printf ("%d", i);
      g_autofree gchar *text = name != NULL ? g_strdup_printf ("%s", name)
                                            : g_strdup_printf ("Class %d", i);

      if (i == cfg->null_class)
        {
          g_free (text);
          text =
              g_strdup_printf ("%s (no label)", name != NULL ? name : "none");
        }
      gtk_combo_box_text_append (combo, id, text);
    }

  g_object_get (d->config, "class", &current, NULL);
  if (current == NULL || current[0] == '\0' ||
      !diffuse_model_find_class (d->model, current, &active, NULL))
    {
      active = d->f->default_class (d->spec->data, d->model);
      /* a class this model does not have (from another model, or given
       * by a script): run what the combo shows, the default */
      if (current != NULL && current[0] != '\0')
        g_object_set (d->config, "class", "", NULL);
    }
  gtk_combo_box_set_active (GTK_COMBO_BOX (combo), MAX (0, active));
  d->applying = FALSE;
}

static void
class_changed (GtkComboBox *combo, Dialog *d)
{
  const char *id = gtk_combo_box_get_active_id (combo);
  const char *name;
  gint index;

  if (d->applying || id == NULL || id[0] == '\0' || d->model == NULL)
    return;
  index = atoi (id);
  name = diffuse_model_get_class_name (d->model, index);
  /* store the name when there is one: readable and model-independent */
  d->applying = TRUE;
  g_object_set (d->config, "class", name != NULL ? name : id, NULL);
  d->applying = FALSE;
  update_sensitivity (d);
}

/* ---- classifier chooser ----------------------------------------------- */

/* None, the classifiers that fit the model (the plug-in's folders), a
 * file given by path (a script, "Other classifier file..."), then "Other
 * classifier file...".  A classifier of the config that does not fit the
 * model (chosen with another model) falls back to None. */
static void
fill_classifier_combo (Dialog *d)
{
  GtkComboBoxText *combo = GTK_COMBO_BOX_TEXT (d->classifier_combo);
  g_autoptr (GPtrArray) list = NULL;
  g_autofree gchar *current = NULL;
  g_autofree gchar *tip = NULL;
  GString *names = g_string_new ("None");
  gboolean found = FALSE;
  guint i;

  d->applying = TRUE;
  gtk_combo_box_text_remove_all (combo);
  gtk_combo_box_text_append (combo, CLASSIFIER_NONE, "None");
  g_object_get (d->config, "classifier", &current, NULL);
  if (classifier_is_none (current))
    {
      g_free (current);
      current = g_strdup (CLASSIFIER_NONE);
      found = TRUE;
    }
  if (d->model != NULL)
    {
      list = d->f->list_classifiers (d->spec->data, d->model);
      for (i = 0; i < list->len; i++)
        {
          DpModelEntry *e = g_ptr_array_index (list, i);

          gtk_combo_box_text_append (combo, e->name, e->name);
          g_string_append_printf (names, ", %s", e->name);
          if (!found && (g_strcmp0 (current, e->name) == 0 ||
                         g_strcmp0 (current, e->path) == 0))
            {
              g_free (current);
              current = g_strdup (e->name);
              found = TRUE;
            }
        }
      /* a file named by its path: offered as it is (the plug-in says
       * why when it does not fit) */
      if (!found && (strchr (current, G_DIR_SEPARATOR) != NULL ||
                     g_str_has_suffix (current, ".safetensors")))
        {
          g_autofree gchar *base = g_path_get_basename (current);

          gtk_combo_box_text_append (combo, current, base);
          g_string_append_printf (names, ", %s", base);
          found = TRUE;
        }
    }
  gtk_combo_box_text_append (combo, "/separator", "");
  gtk_combo_box_text_append (combo, CLASSIFIER_OTHER_FILE,
                             "Other classifier file...");
  if (!found && d->model == NULL)
    {
      /* no model to match it against (it failed to load): kept */
      gtk_combo_box_text_append (combo, current, current);
      found = TRUE;
    }
  if (!found)
    {
      /* not one for this model: run what the combo shows, None */
      g_object_set (d->config, "classifier", CLASSIFIER_NONE, NULL);
      g_free (current);
      current = g_strdup (CLASSIFIER_NONE);
    }
  gtk_combo_box_set_active_id (GTK_COMBO_BOX (combo), current);
  gtk_widget_set_sensitive (d->classifier_combo, d->model != NULL);
  tip = g_strdup_printf (
      "Classifier guidance (Dhariwal & Nichol's ADM-G): a noisy-image "
      "classifier judges at every step how much the picture looks like the "
      "class, and its gradient of log p(class | x_t) steers the step "
      "towards it; \"How hard to steer\" is its scale s. None = no "
      "classifier guidance. Only classifiers made for this model (the same "
      "channels and noise schedule) are listed.\n\nYour own classifiers "
      "go in %s",
      d->spec->user_models_dir);
  gtk_widget_set_tooltip_text (d->classifier_combo, tip);
  trace (d, "classifiers", names->str);
  g_string_free (names, TRUE);
  d->applying = FALSE;
}

/* A .safetensors file picked in a file chooser that starts in the user's
 * model folder ("Other ... file..."), set as the config's property;
 * FALSE when cancelled. */
static gboolean
choose_file_into (Dialog *d, const char *title, const char *filter_name,
                  const char *property)
{
  GtkFileChooserNative *chooser = gtk_file_chooser_native_new (
      title, GTK_WINDOW (d->dialog), GTK_FILE_CHOOSER_ACTION_OPEN, "_Open",
      "_Cancel");
  GtkFileFilter *filter = gtk_file_filter_new ();
  g_autofree gchar *path = NULL;

  gtk_file_filter_set_name (filter, filter_name);
  gtk_file_filter_add_pattern (filter, "*.safetensors");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (chooser), filter);
  g_mkdir_with_parents (d->spec->user_models_dir, 0755);
  gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (chooser),
                                       d->spec->user_models_dir);
  if (gtk_native_dialog_run (GTK_NATIVE_DIALOG (chooser)) ==
      GTK_RESPONSE_ACCEPT)
    path = gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (chooser));
  g_object_unref (chooser);

  if (path == NULL)
    return FALSE;
  d->applying = TRUE;
  g_object_set (d->config, property, path, NULL);
  d->applying = FALSE;
  return TRUE;
}

/* "Other classifier file..." */
static void
choose_classifier_file (Dialog *d)
{
  choose_file_into (d, "Choose a Classifier", "Classifiers (*.safetensors)",
                    "classifier");
  /* the new file, or back to the classifier that was chosen */
  fill_classifier_combo (d);
  update_sensitivity (d);
}

static void
classifier_changed (GtkComboBox *combo, Dialog *d)
{
  const char *id = gtk_combo_box_get_active_id (combo);

  if (d->applying || id == NULL)
    return;
  if (strcmp (id, CLASSIFIER_OTHER_FILE) == 0)
    {
      choose_classifier_file (d);
      return;
    }
  d->applying = TRUE;
  g_object_set (d->config, "classifier", id, NULL);
  d->applying = FALSE;
  update_sensitivity (d);
}

/* ---- model chooser --------------------------------------------------- */

static void
load_selected_model (Dialog *d)
{
  g_autofree gchar *model = NULL;
  const char *path = NULL;
  GError *error = NULL;

  g_object_get (d->config, "model", &model, NULL);
  d->model = d->f->load_model (d->spec->data, model, &path, &error);
  if (d->model == NULL)
    {
      g_autofree gchar *markup = g_markup_printf_escaped (
          "<span foreground=\"#c01c28\">%s</span>", error->message);

      gtk_label_set_markup (GTK_LABEL (d->model_info), markup);
      gtk_widget_set_tooltip_text (d->model_combo, NULL);
      g_clear_error (&error);
      gtk_dialog_set_response_sensitive (GTK_DIALOG (d->dialog),
                                         GTK_RESPONSE_OK, FALSE);
    }
  else
    {
      const DiffuseModelConfig *cfg = diffuse_model_get_config (d->model);
      static const char *const layouts[5] = { "", "grey", "grey + alpha", "RGB",
                                              "RGBA" };
      gint real = cfg->num_classes - (cfg->null_class >= 0 ? 1 : 0);
      g_autofree gchar *info =
          real > 0
              ? g_strdup_printf ("Paints %d x %d %s pictures of %d classes",
                                 cfg->image_size, cfg->image_size,
                                 layouts[CLAMP (cfg->in_channels, 0, 4)], real)
              : g_strdup_printf ("Paints %d x %d %s pictures", cfg->image_size,
                                 cfg->image_size,
                                 layouts[CLAMP (cfg->in_channels, 0, 4)]);
      g_autofree gchar *tip =
          g_strdup_printf ("%s\n%.1f M parameters\n\nYour own models go in %s",
                           path, diffuse_model_get_n_params (d->model) / 1e6,
                           d->spec->user_models_dir);

      gtk_label_set_text (GTK_LABEL (d->model_info), info);
      gtk_widget_set_tooltip_text (d->model_combo, tip);
      gtk_dialog_set_response_sensitive (GTK_DIALOG (d->dialog),
                                         GTK_RESPONSE_OK, TRUE);
    }
  fill_class_combo (d);
  fill_classifier_combo (d);
  fit_guidance (d);
  trace_values (d);
  update_size_label (d);
  update_sensitivity (d);
  schedule_estimate (d);
}

static void fill_model_combo (Dialog *d, const char *select);

/* "Other model file..." */
static void
choose_model_file (Dialog *d)
{
  gboolean chosen =
      choose_file_into (d, "Choose a Diffusion Model",
                        "Diffusion models (*.safetensors)", "model");

  /* the new file, or back to the model that was chosen */
  fill_model_combo (d, NULL);
  if (chosen)
    load_selected_model (d);
}

/* "Open your models folder": the file manager, creating it first. */
static void
open_models_folder (Dialog *d)
{
  g_autoptr (GFile) dir = g_file_new_for_path (d->spec->user_models_dir);
  g_autofree gchar *uri = g_file_get_uri (dir);
  GError *error = NULL;

  g_mkdir_with_parents (d->spec->user_models_dir, 0755);
  if (!gtk_show_uri_on_window (GTK_WINDOW (d->dialog), uri, GDK_CURRENT_TIME,
                               &error))
    {
      g_autofree gchar *msg = g_strdup_printf (
          "Put your models (.safetensors) in %s", d->spec->user_models_dir);

      set_status (d, msg, FALSE);
      g_clear_error (&error);
    }
  fill_model_combo (d, NULL);
}

static void
model_changed (GtkComboBox *combo, Dialog *d)
{
  const char *id = gtk_combo_box_get_active_id (combo);

  if (d->applying || id == NULL)
    return;
  if (strcmp (id, MODEL_OTHER_FILE) == 0)
    {
      choose_model_file (d);
      return;
    }
  if (strcmp (id, MODEL_OPEN_FOLDER) == 0)
    {
      open_models_folder (d);
      return;
    }
  d->applying = TRUE;
  g_object_set (d->config, "model", id, NULL);
  d->applying = FALSE;
  load_selected_model (d);
}

/* The separator before the action entries. */
static gboolean
model_row_separator (GtkTreeModel *model, GtkTreeIter *iter, gpointer data)
{
  g_autofree gchar *text = NULL;

  gtk_tree_model_get (model, iter, 0, &text, -1);
  return text == NULL || text[0] == '\0';
}

static void
fill_model_combo (Dialog *d, const char *select)
{
  GtkComboBoxText *combo = GTK_COMBO_BOX_TEXT (d->model_combo);
  g_autoptr (GPtrArray) list = d->f->list_models (d->spec->data);
  g_autofree gchar *current = wanted_id (d, select, "model");
  gboolean found = FALSE;
  GString *names = g_string_new (NULL);
  guint i;

  d->applying = TRUE;
  gtk_combo_box_text_remove_all (combo);
  for (i = 0; i < list->len; i++)
    {
      DpModelEntry *e = g_ptr_array_index (list, i);

      /* ids are names for listed models, paths otherwise */
      gtk_combo_box_text_append (combo, e->name, e->name);
      g_string_append_printf (names, "%s%s", i > 0 ? ", " : "", e->name);
      if (g_strcmp0 (current, e->name) == 0 ||
          g_strcmp0 (current, e->path) == 0)
        {
          g_free (current);
          current = g_strdup (e->name);
          found = TRUE;
        }
    }
  if (current != NULL && current[0] != '\0' && !found)
    {
      g_autofree gchar *base = g_path_get_basename (current);

      gtk_combo_box_text_append (combo, current, base);
      found = TRUE;
    }
  if (list->len > 0 || found)
    gtk_combo_box_text_append (combo, "/separator", "");
  gtk_combo_box_text_append (combo, MODEL_OTHER_FILE, "Other model file...");
  gtk_combo_box_text_append (combo, MODEL_OPEN_FOLDER,
                             "Open your models folder");
  if (found)
    gtk_combo_box_set_active_id (GTK_COMBO_BOX (combo), current);
  else if (list->len > 0)
    {
      gtk_combo_box_set_active (GTK_COMBO_BOX (combo), 0);
      g_object_set (d->config, "model",
                    ((DpModelEntry *) g_ptr_array_index (list, 0))->name, NULL);
    }
  trace (d, "models", names->str);
  g_string_free (names, TRUE);
  d->applying = FALSE;
}

/* ---- presets ----------------------------------------------------------- */

/* Whether a config property is a setting a preset can set (the table's). */
static gboolean
is_preset_setting (const char *name)
{
  const DiffuseSetting *st = diffuse_setting_find (name, NULL);

  return st != NULL && (st->flags & DIFFUSE_SETTING_PRESET);
}

static void
fill_preset_combo (Dialog *d, const char *select)
{
  GtkComboBoxText *combo = GTK_COMBO_BOX_TEXT (d->preset_combo);
  g_autofree gchar *current = NULL;
  g_autofree gchar *warning = NULL;
  guint i;

  g_clear_pointer (&d->presets, g_ptr_array_unref);
  /* a bad file is skipped; say which */
  d->presets = d->f->load_presets (d->spec->data, &warning);
  if (warning != NULL)
    set_status (d, warning, TRUE);

  current = wanted_id (d, select, "preset");

  d->applying = TRUE;
  gtk_combo_box_text_remove_all (combo);
  gtk_combo_box_text_append (combo, "", "Custom");
  for (i = 0; i < d->presets->len; i++)
    {
      DiffusePreset *p = g_ptr_array_index (d->presets, i);

      gtk_combo_box_text_append (combo, p->name, p->name);
    }
  if (current == NULL ||
      !gtk_combo_box_set_active_id (GTK_COMBO_BOX (combo), current))
    gtk_combo_box_set_active (GTK_COMBO_BOX (combo), 0);
  d->applying = FALSE;
}

static void
preset_changed (GtkComboBox *combo, Dialog *d)
{
  const char *id = gtk_combo_box_get_active_id (combo);
  gint active = gtk_combo_box_get_active (combo);
  const DiffusePreset *p;

  if (d->applying || id == NULL)
    return;
  /* entry 0 is "Custom", entry i + 1 is d->presets[i] */
  p = active > 0 ? g_ptr_array_index (d->presets, active - 1) : NULL;
  gtk_widget_set_tooltip_text (d->preset_combo,
                               p != NULL ? p->description : NULL);

  d->applying = TRUE;
  g_object_set (d->config, "preset", id, NULL);
  if (p != NULL)
    d->f->apply_preset (d->spec->data, p);
  d->applying = FALSE;
  /* a preset's guidance with a model without a null class */
  if (p != NULL)
    fit_guidance (d);
}

/* A value changed by hand no longer matches the preset: show "Custom". */
static void
config_notify (GObject *config, GParamSpec *pspec, Dialog *d)
{
  if (g_strcmp0 (pspec->name, "size-mode") == 0)
    {
      update_size_label (d);
      return;
    }
  if (d->applying)
    return;
  /* changed by Reset or Load Saved Settings: follow in our own widgets */
  if (g_strcmp0 (pspec->name, "model") == 0)
    {
      if (d->running)
        d->model_changed = TRUE;
      else
        {
          fill_model_combo (d, NULL);
          load_selected_model (d);
        }
      return;
    }
  if (g_strcmp0 (pspec->name, "class") == 0)
    {
      fill_class_combo (d);
      return;
    }
  if (g_strcmp0 (pspec->name, "classifier") == 0)
    {
      fill_classifier_combo (d);
      return;
    }
  if (g_strcmp0 (pspec->name, "preset") == 0)
    {
      fill_preset_combo (d, NULL);
      return;
    }
  if (is_preset_setting (pspec->name))
    {
      d->applying = TRUE;
      g_object_set (d->config, "preset", "", NULL);
      gtk_combo_box_set_active_id (GTK_COMBO_BOX (d->preset_combo), "");
      d->applying = FALSE;
    }
}

/* Any change: the sensitivity and the estimate follow (a preset sets
 * several values while d->applying). */
static void
config_notify_after (GObject *config, GParamSpec *pspec, Dialog *d)
{
  if (g_strcmp0 (pspec->name, "sampler") == 0 ||
      g_strcmp0 (pspec->name, "class") == 0 ||
      g_strcmp0 (pspec->name, "classifier") == 0)
    update_sensitivity (d);
  /* Reset: the default w = 2 with a model without a null class */
  if (g_strcmp0 (pspec->name, "guidance") == 0 && !d->applying)
    fit_guidance (d);
  if (g_strcmp0 (pspec->name, "preset") != 0)
    schedule_estimate (d);
}

/* Keep a name usable as a file name. */
static gchar *
preset_file_name (const char *name)
{
  GString *s = g_string_new (NULL);
  const char *p;

  for (p = name; *p != '\0'; p++)
    g_string_append_c (s, g_ascii_isalnum (*p) || *p == '-' || *p == '_' ? *p
                                                                         : '-');
  return g_string_free (s, FALSE);
}

static void
save_preset_clicked (GtkButton *button, Dialog *d)
{
  g_autofree gchar *role = g_strconcat (d->spec->binary, "-save-preset", NULL);
  GtkWidget *ask, *grid, *name_entry, *desc_entry;
  gint response;

  ask = gimp_dialog_new ("Save Preset", role, GTK_WIDGET (d->dialog),
                         GTK_DIALOG_MODAL, NULL, NULL, "_Cancel",
                         GTK_RESPONSE_CANCEL, "_Save", GTK_RESPONSE_OK, NULL);
  grid = gtk_grid_new ();
  gtk_grid_set_row_spacing (GTK_GRID (grid), 6);
  gtk_grid_set_column_spacing (GTK_GRID (grid), 6);
  gtk_container_set_border_width (GTK_CONTAINER (grid), 12);
  name_entry = gtk_entry_new ();
  desc_entry = gtk_entry_new ();
  gtk_entry_set_activates_default (GTK_ENTRY (name_entry), TRUE);
  gtk_dialog_set_default_response (GTK_DIALOG (ask), GTK_RESPONSE_OK);
  gtk_grid_attach (GTK_GRID (grid), gtk_label_new ("Name:"), 0, 0, 1, 1);
  gtk_grid_attach (GTK_GRID (grid), name_entry, 1, 0, 1, 1);
  gtk_grid_attach (GTK_GRID (grid), gtk_label_new ("Description:"), 0, 1, 1, 1);
  gtk_grid_attach (GTK_GRID (grid), desc_entry, 1, 1, 1, 1);
  gtk_box_pack_start (GTK_BOX (gtk_dialog_get_content_area (GTK_DIALOG (ask))),
                      grid, TRUE, TRUE, 0);
  gtk_widget_show_all (grid);

  response = gimp_dialog_run (GIMP_DIALOG (ask));
  if (response == GTK_RESPONSE_OK &&
      gtk_entry_get_text (GTK_ENTRY (name_entry))[0] != '\0')
    {
      g_autofree gchar *file =
          preset_file_name (gtk_entry_get_text (GTK_ENTRY (name_entry)));
      g_autofree gchar *dir = diffuse_presets_user_dir ();
      g_autofree gchar *base = g_strconcat (file, ".preset", NULL);
      g_autofree gchar *path = g_build_filename (dir, base, NULL);
      g_autoptr (DiffusePreset) p = diffuse_preset_new (
          file, gtk_entry_get_text (GTK_ENTRY (desc_entry)));
      GError *error = NULL;

      /* every preset setting this procedure has (the table's) */
      d->f->preset_from_config (d->spec->data, p);
      /* written atomically (a temporary file renamed into place) into the
       * folder the CLI reads too */
      if (g_mkdir_with_parents (dir, 0755) != 0 ||
          !diffuse_preset_save_file (p, path, &error))
        {
          set_status (d,
                      error != NULL ? error->message
                                    : "Could not create the preset folder",
                      TRUE);
          g_clear_error (&error);
        }
      else
        {
          g_autofree gchar *msg =
              g_strdup_printf ("Saved preset '%s' in %s", file, dir);

          fill_preset_combo (d, file);
          d->applying = TRUE;
          g_object_set (d->config, "preset", file, NULL);
          d->applying = FALSE;
          set_status (d, msg, FALSE);
        }
    }
  gtk_widget_destroy (ask);
}

static void
random_seed_clicked (GtkButton *button, Dialog *d)
{
  g_object_set (d->config, "seed", g_random_int_range (0, G_MAXINT), NULL);
}

/* ---- how long it will take ---------------------------------------------- */

static gboolean
estimate_now (gpointer data)
{
  Dialog *d = data;
  GError *error = NULL;
  DpJob *job;
  double seconds = 0.0;
  g_autofree gchar *text = NULL;

  d->estimate_source = 0;
  if (d->running || d->model == NULL)
    return G_SOURCE_REMOVE;
  job = d->f->prepare (d->spec->data, &error);
  if (job != NULL &&
      (job->model != d->timed_model || job->height != d->timed_h ||
       job->width != d->timed_w || job->params.precision != d->timed_precision))
    {
      /* a quick timing of one step at this size and precision, once per
       * model, size and precision */
      if (dp_job_time_eval (job, &d->eval_seconds, &error))
        {
          d->timed_model = job->model;
          d->timed_h = job->height;
          d->timed_w = job->width;
          d->timed_precision = job->params.precision;
        }
      else
        d->timed_model = NULL;
    }
  if (job != NULL && error == NULL &&
      dp_job_estimate_seconds (job, d->eval_seconds, &seconds, &error))
    {
      g_autofree gchar *t = format_duration (seconds);

      text = seconds < 1.0 ? g_strdup ("Takes less than a second")
                           : g_strdup_printf ("Takes about %s (timed on this "
                                              "computer)",
                                              t);
    }
  else
    text = g_strdup (""); /* the error shows when OK is pressed */
  gtk_label_set_text (GTK_LABEL (d->estimate_label), text);
  trace (d, "estimate", text[0] != '\0' ? text : error->message);
  g_clear_error (&error);
  dp_job_free (job);
  return G_SOURCE_REMOVE;
}

/* After the values settle (a preset sets several at once). */
static void
schedule_estimate (Dialog *d)
{
  if (d->estimate_source != 0)
    g_source_remove (d->estimate_source);
  d->estimate_source = g_timeout_add (250, estimate_now, d);
}

/* ---- running the job ---------------------------------------------------- */

static gboolean
job_done (gpointer data)
{
  Dialog *d = data;

  g_main_loop_quit (d->loop);
  return G_SOURCE_REMOVE;
}

static gpointer
job_thread (gpointer data)
{
  Dialog *d = data;

  d->job_ok = dp_job_run (d->job, &d->job_error);
  g_idle_add (job_done, d);
  return NULL;
}

static void
show_preview (Dialog *d, gboolean force)
{
  double fraction = 0.0;
  g_autofree gchar *text = NULL;
  DpJob *job = d->job;

  double elapsed = g_timer_elapsed (d->run_timer, NULL);
  g_autofree gchar *elapsed_text = format_duration (elapsed);
  g_autofree gchar *line = NULL;

  if (dp_job_take_preview (job, d->preview_buf, &fraction, &text) || force)
    {
      g_autoptr (GdkPixbuf) pixbuf =
          dp_preview_pixbuf (d->preview_buf, job->count, job->channels,
                             job->height, job->width, PREVIEW_SIZE);

      gtk_image_set_from_pixbuf (GTK_IMAGE (d->preview), pixbuf);
      gtk_stack_set_visible_child_name (GTK_STACK (d->preview_stack), "image");
    }
  /* the remaining time from the steps done so far */
  if (fraction > 0.0 && fraction < 1.0 && elapsed >= 1.0)
    {
      g_autofree gchar *left =
          format_duration (elapsed * (1.0 - fraction) / fraction);

      line =
          g_strdup_printf ("%s: %s, about %s left", text, elapsed_text, left);
    }
  else
    line = g_strdup_printf ("%s: %s", text, elapsed_text);
  gtk_progress_bar_set_fraction (GTK_PROGRESS_BAR (d->progress), fraction);
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (d->progress), line);
  if ((gint) elapsed != d->traced_second)
    {
      d->traced_second = (gint) elapsed;
      trace (d, "progress", line);
    }
  gimp_progress_update (fraction);
}

static gboolean
tick (gpointer data)
{
  show_preview (data, FALSE);
  return G_SOURCE_CONTINUE;
}

static void
dialog_response (GtkDialog *dialog, gint response, Dialog *d)
{
  if (!d->running)
    return;
  if (response == GTK_RESPONSE_CANCEL || response == GTK_RESPONSE_DELETE_EVENT)
    {
      dp_job_cancel (d->job);
      set_status (d, "Stopping...", FALSE);
      if (response == GTK_RESPONSE_DELETE_EVENT)
        d->close_requested = TRUE;
    }
  g_signal_stop_emission_by_name (dialog, "response");
}

static gboolean
run_job (Dialog *d, DpJob *job, GError **error)
{
  GThread *thread;
  guint timer;

  d->job = job;
  d->job_ok = FALSE;
  d->running = TRUE;
  g_free (d->preview_buf);
  d->preview_buf = g_new0 (float, (gsize) job->count * job->channels *
                                      job->height * job->width);
  /* the worker uses the plug-in's model: nothing may change it until it
   * is done */
  gtk_widget_set_sensitive (d->left, FALSE);
  gtk_dialog_set_response_sensitive (GTK_DIALOG (d->dialog), GTK_RESPONSE_OK,
                                     FALSE);
  gtk_dialog_set_response_sensitive (GTK_DIALOG (d->dialog), RESPONSE_RESET,
                                     FALSE);
  set_status (d, "Sampling... (Cancel stops)", FALSE);
  gimp_progress_init ("Diffusion sampling");

  d->loop = g_main_loop_new (NULL, FALSE);
  g_timer_start (d->run_timer);
  d->traced_second = -1;
  thread = g_thread_new ("diffuse", job_thread, d);
  timer = g_timeout_add (100, tick, d);
  g_main_loop_run (d->loop);
  g_thread_join (thread);
  g_source_remove (timer);
  g_clear_pointer (&d->loop, g_main_loop_unref);
  show_preview (d, FALSE);
  g_timer_stop (d->run_timer);

  gimp_progress_end ();
  d->running = FALSE;
  gtk_widget_set_sensitive (d->left, TRUE);
  gtk_dialog_set_response_sensitive (GTK_DIALOG (d->dialog), GTK_RESPONSE_OK,
                                     TRUE);
  gtk_dialog_set_response_sensitive (GTK_DIALOG (d->dialog), RESPONSE_RESET,
                                     TRUE);
  if (!d->job_ok)
    {
      g_propagate_error (error, d->job_error);
      d->job_error = NULL;
    }
  d->job = NULL;
  if (d->model_changed)
    {
      d->model_changed = FALSE;
      fill_model_combo (d, NULL);
      load_selected_model (d);
    }
  return d->job_ok;
}

/* ---- building the dialog --------------------------------------------------- */

static GtkWidget *
labelled_row (GtkWidget *grid, gint row, const char *label, GtkWidget *widget)
{
  GtkWidget *l = gtk_label_new_with_mnemonic (label);

  gtk_label_set_xalign (GTK_LABEL (l), 0.0);
  gtk_label_set_mnemonic_widget (GTK_LABEL (l), widget);
  gtk_grid_attach (GTK_GRID (grid), l, 0, row, 1, 1);
  gtk_grid_attach (GTK_GRID (grid), widget, 1, row, 1, 1);
  gtk_widget_set_hexpand (widget, TRUE);
  return widget;
}

/* GIMP's "Load Saved Settings" / "Save Settings" buttons: the dialog's
 * presets are the one way to keep settings (shared with the CLI), so the
 * button box GimpProcedureDialog packs into the content area is hidden. */
static void
hide_gimp_settings_buttons (Dialog *d, GtkWidget *content_area)
{
  g_autoptr (GList) children =
      gtk_container_get_children (GTK_CONTAINER (content_area));
  GList *l;

  for (l = children; l != NULL; l = l->next)
    if (GTK_IS_BUTTON_BOX (l->data))
      {
        gtk_widget_set_no_show_all (l->data, TRUE);
        gtk_widget_hide (l->data);
        trace (d, "hidden", "GIMP's Load/Save Settings buttons");
      }
}

static GtkWidget *
build (Dialog *d)
{
  GtkWidget *dialog, *content, *hbox, *left, *right, *grid, *row, *button;
  GtkWidget *frame, *placeholder, *seed;

  dialog =
      gimp_procedure_dialog_new (d->spec->procedure, d->config, d->spec->title);
  d->dialog = GIMP_PROCEDURE_DIALOG (dialog);
  gimp_procedure_dialog_set_ok_label (d->dialog, d->spec->ok_label);
  content = gtk_dialog_get_content_area (GTK_DIALOG (dialog));
  hide_gimp_settings_buttons (d, content);

  hbox = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  left = d->left = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  right = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  gtk_box_pack_start (GTK_BOX (hbox), left, TRUE, TRUE, 0);
  gtk_box_pack_start (GTK_BOX (hbox), right, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (content), hbox, TRUE, TRUE, 0);

  /* model, preset and class rows */
  grid = gtk_grid_new ();
  gtk_grid_set_row_spacing (GTK_GRID (grid), 4);
  gtk_grid_set_column_spacing (GTK_GRID (grid), 8);
  gtk_box_pack_start (GTK_BOX (left), grid, FALSE, FALSE, 0);

  /* one chooser: the models found, then "Other model file..." and "Open
   * your models folder"; the file and the folder are in its tooltip */
  d->model_combo = gtk_combo_box_text_new ();
  gtk_combo_box_set_row_separator_func (GTK_COMBO_BOX (d->model_combo),
                                        model_row_separator, NULL, NULL);
  labelled_row (grid, 0, "M_odel:", d->model_combo);

  d->model_info = gtk_label_new ("");
  gtk_label_set_xalign (GTK_LABEL (d->model_info), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (d->model_info), TRUE);
  gtk_grid_attach (GTK_GRID (grid), d->model_info, 1, 1, 1, 1);

  d->class_combo = labelled_row (grid, 2, "Cl_ass:", gtk_combo_box_text_new ());

  /* classifier guidance: the chooser, its scale (the generated widget of
   * classifier-scale, taken out of the params box) beside it */
  row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 4);
  d->classifier_combo = gtk_combo_box_text_new ();
  gtk_combo_box_set_row_separator_func (GTK_COMBO_BOX (d->classifier_combo),
                                        model_row_separator, NULL, NULL);
  gtk_box_pack_start (GTK_BOX (row), d->classifier_combo, FALSE, FALSE, 0);
  d->classifier_scale = gimp_procedure_dialog_get_widget (
      d->dialog, "classifier-scale", G_TYPE_NONE);
  if (d->classifier_scale != NULL)
    gtk_box_pack_start (GTK_BOX (row), d->classifier_scale, TRUE, TRUE, 0);
  labelled_row (grid, 3, "Steer _by:", row);
  gtk_label_set_mnemonic_widget (
      GTK_LABEL (gtk_grid_get_child_at (GTK_GRID (grid), 0, 3)),
      d->classifier_combo);

  row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 4);
  d->preset_combo = gtk_combo_box_text_new ();
  gtk_box_pack_start (GTK_BOX (row), d->preset_combo, TRUE, TRUE, 0);
  button = gtk_button_new_with_mnemonic ("Sa_ve as...");
  gtk_widget_set_tooltip_text (
      button, "Save the current values as your own preset (the diffuse "
              "command line tool sees it too)");
  g_signal_connect (button, "clicked", G_CALLBACK (save_preset_clicked), d);
  gtk_box_pack_start (GTK_BOX (row), button, FALSE, FALSE, 0);
  labelled_row (grid, 4, "_Preset:", row);
  gtk_label_set_mnemonic_widget (
      GTK_LABEL (gtk_grid_get_child_at (GTK_GRID (grid), 0, 4)),
      d->preset_combo);

  /* the generated widgets for the arguments the plug-in names, the seed
   * apart: it gets its button beside it */
  {
    GList *names = NULL;
    gint i;

    for (i = 0; d->spec->param_names[i] != NULL; i++)
      if (strcmp (d->spec->param_names[i], "seed") != 0)
        names = g_list_append (names, (gpointer) d->spec->param_names[i]);
    d->params_box =
        gimp_procedure_dialog_fill_box_list (d->dialog, "dp-params", names);
    g_list_free (names);
  }
  gtk_box_pack_start (GTK_BOX (left), d->params_box, FALSE, FALSE, 0);
  row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 4);
  seed = gimp_procedure_dialog_get_widget (d->dialog, "seed", G_TYPE_NONE);
  gtk_box_pack_start (GTK_BOX (row), seed, TRUE, TRUE, 0);
  button = gtk_button_new_with_mnemonic ("Pic_k a random seed");
  gtk_widget_set_tooltip_text (
      button, "A new seed gives a new picture; the same seed and values "
              "give the same picture again");
  g_signal_connect (button, "clicked", G_CALLBACK (random_seed_clicked), d);
  gtk_box_pack_start (GTK_BOX (row), button, FALSE, FALSE, 0);
  /* the box after the params box, so that the seed sits under them */
  gtk_box_pack_start (GTK_BOX (left), row, FALSE, FALSE, 0);

  d->size_label = gtk_label_new ("");
  gtk_label_set_xalign (GTK_LABEL (d->size_label), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (d->size_label), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (d->size_label), 48);
  gtk_box_pack_start (GTK_BOX (left), d->size_label, FALSE, FALSE, 0);
  d->estimate_label = gtk_label_new ("");
  gtk_label_set_xalign (GTK_LABEL (d->estimate_label), 0.0);
  gtk_box_pack_start (GTK_BOX (left), d->estimate_label, FALSE, FALSE, 0);

  /* preview (a note on what it will show until the first step), progress,
   * status */
  frame = gtk_frame_new ("Preview");
  gtk_widget_set_tooltip_text (
      frame, "The model's guess of the finished picture at each step (the "
             "predicted x0): it sharpens as the steps go");
  d->preview_stack = gtk_stack_new ();
  gtk_widget_set_size_request (d->preview_stack, PREVIEW_SIZE, PREVIEW_SIZE);
  placeholder = gtk_label_new (
      "The picture appears here while it is made, from a blur to the "
      "finished image");
  gtk_label_set_line_wrap (GTK_LABEL (placeholder), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (placeholder), 22);
  gtk_label_set_justify (GTK_LABEL (placeholder), GTK_JUSTIFY_CENTER);
  gtk_widget_set_sensitive (placeholder, FALSE);
  gtk_stack_add_named (GTK_STACK (d->preview_stack), placeholder, "empty");
  d->preview = gtk_image_new ();
  gtk_stack_add_named (GTK_STACK (d->preview_stack), d->preview, "image");
  gtk_container_add (GTK_CONTAINER (frame), d->preview_stack);
  gtk_box_pack_start (GTK_BOX (right), frame, FALSE, FALSE, 0);
  d->progress = gtk_progress_bar_new ();
  gtk_progress_bar_set_show_text (GTK_PROGRESS_BAR (d->progress), TRUE);
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (d->progress), "");
  gtk_box_pack_start (GTK_BOX (right), d->progress, FALSE, FALSE, 0);
  d->status = gtk_label_new ("");
  gtk_label_set_xalign (GTK_LABEL (d->status), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (d->status), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (d->status), 28);
  gtk_box_pack_start (GTK_BOX (right), d->status, FALSE, FALSE, 0);

  g_signal_connect (d->model_combo, "changed", G_CALLBACK (model_changed), d);
  g_signal_connect (d->class_combo, "changed", G_CALLBACK (class_changed), d);
  g_signal_connect (d->classifier_combo, "changed",
                    G_CALLBACK (classifier_changed), d);
  g_signal_connect (d->preset_combo, "changed", G_CALLBACK (preset_changed), d);
  g_signal_connect (d->config, "notify", G_CALLBACK (config_notify), d);
  g_signal_connect_after (d->config, "notify", G_CALLBACK (config_notify_after),
                          d);
  g_signal_connect (dialog, "response", G_CALLBACK (dialog_response), d);

  fill_model_combo (d, NULL);
  fill_preset_combo (d, NULL);
  load_selected_model (d);

  gtk_widget_show_all (hbox);
  return dialog;
}

gboolean
dp_dialog_run (const DpDialogSpec *spec, DpJob **job_out, GError **error)
{
  Dialog d = { 0 };
  GtkWidget *dialog;
  gboolean done = FALSE;

  gimp_ui_init (spec->binary);
  d.spec = spec;
  d.f = spec->funcs;
  d.config = spec->config;
  d.trace = g_getenv ("GIMP_DIFFUSION_TRACE_DIALOG") != NULL;
  d.run_timer = g_timer_new ();
  g_timer_stop (d.run_timer);
  dialog = build (&d);
  gtk_widget_show (dialog);

  while (!done && !d.close_requested && gimp_procedure_dialog_run (d.dialog))
    {
      GError *err = NULL;
      DpJob *job = d.f->prepare (spec->data, &err);

      if (job != NULL && run_job (&d, job, &err))
        {
          *job_out = job;
          done = TRUE;
          break;
        }
      dp_job_free (job);
      if (g_error_matches (err, DIFFUSE_ERROR, DIFFUSE_ERROR_CANCELLED))
        {
          /* on GIMP's console too (the GUI tests look for it) */
          g_printerr ("%s: %s\n", spec->binary, err->message);
          set_status (&d, "Stopped; the image is unchanged.", FALSE);
        }
      else
        set_status (&d, err != NULL ? err->message : "Failed", TRUE);
      g_clear_error (&err);
    }

  g_signal_handlers_disconnect_by_data (d.config, &d);
  if (d.estimate_source != 0)
    g_source_remove (d.estimate_source);
  gtk_widget_destroy (dialog);
  g_timer_destroy (d.run_timer);
  g_clear_pointer (&d.presets, g_ptr_array_unref);
  g_free (d.preview_buf);
  if (!done)
    g_clear_error (error);
  return done;
}
