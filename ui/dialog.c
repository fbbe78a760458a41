/* The interactive dialog: a GimpProcedureDialog generated from the
 * procedure's arguments, plus a model chooser, a class combo filled with
 * the model's class names, presets (shipped + the user's own, with
 * "Save as preset"), a live preview of the predicted x0 and a progress
 * bar.  OK starts sampling on a worker thread while the dialog stays
 * open; Cancel then stops the job within one step, and the image is only
 * written after a job finishes (so a cancel leaves it as it was).
 * Models, presets, sizes and jobs come from the plug-in's functions
 * (DpDialogFuncs, dialog.h). */
#include <stdlib.h>
#include <string.h>

#include <libgimp/gimp.h>
#include <libgimp/gimpui.h>

#include "dialog.h"
#include "preview.h"

#define PREVIEW_SIZE 192
#define RESPONSE_RESET 1 /* GimpProcedureDialog's Reset button */

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
  GtkWidget *preset_combo;
  GtkWidget *size_label;
  GtkWidget *params_box;
  GtkWidget *left; /* everything that edits the settings */
  GtkWidget *preview;
  GtkWidget *progress;
  GtkWidget *status;
  GPtrArray *presets; /* of DiffusePreset */
  gboolean applying;  /* we are setting config values ourselves */

  /* the running job */
  DpJob *job;
  gboolean running;
  gboolean job_ok;
  GError *job_error;
  gboolean close_requested;
  gboolean model_changed; /* config's model changed while running */
  GMainLoop *loop;
  float *preview_buf;
} Dialog;

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
    active = d->f->default_class (d->spec->data, d->model);
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
      g_clear_error (&error);
      gtk_dialog_set_response_sensitive (GTK_DIALOG (d->dialog),
                                         GTK_RESPONSE_OK, FALSE);
    }
  else
    {
      const DiffuseModelConfig *cfg = diffuse_model_get_config (d->model);
      static const char *const layouts[5] = { "", "grey", "grey + alpha", "RGB",
                                              "RGBA" };
      g_autofree gchar *info = g_strdup_printf (
          "%d x %d %s, %d classes, %.1f M parameters", cfg->image_size,
          cfg->image_size, layouts[CLAMP (cfg->in_channels, 0, 4)],
          cfg->num_classes, diffuse_model_get_n_params (d->model) / 1e6);

      gtk_label_set_text (GTK_LABEL (d->model_info), info);
      gtk_widget_set_tooltip_text (d->model_info, path);
      gtk_dialog_set_response_sensitive (GTK_DIALOG (d->dialog),
                                         GTK_RESPONSE_OK, TRUE);
    }
  fill_class_combo (d);
  update_size_label (d);
}

static void
model_changed (GtkComboBox *combo, Dialog *d)
{
  const char *id = gtk_combo_box_get_active_id (combo);

  if (d->applying || id == NULL)
    return;
  d->applying = TRUE;
  g_object_set (d->config, "model", id, NULL);
  d->applying = FALSE;
  load_selected_model (d);
}

static void
fill_model_combo (Dialog *d, const char *select)
{
  GtkComboBoxText *combo = GTK_COMBO_BOX_TEXT (d->model_combo);
  g_autoptr (GPtrArray) list = d->f->list_models (d->spec->data);
  g_autofree gchar *current = wanted_id (d, select, "model");
  gboolean found = FALSE;
  guint i;

  d->applying = TRUE;
  gtk_combo_box_text_remove_all (combo);
  for (i = 0; i < list->len; i++)
    {
      DpModelEntry *e = g_ptr_array_index (list, i);

      /* ids are names for listed models, paths otherwise */
      gtk_combo_box_text_append (combo, e->name, e->name);
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
  if (found)
    gtk_combo_box_set_active_id (GTK_COMBO_BOX (combo), current);
  else if (list->len > 0)
    {
      gtk_combo_box_set_active (GTK_COMBO_BOX (combo), 0);
      g_object_set (d->config, "model",
                    ((DpModelEntry *) g_ptr_array_index (list, 0))->name, NULL);
    }
  d->applying = FALSE;
}

static void
model_file_set (GtkFileChooserButton *button, Dialog *d)
{
  g_autofree gchar *path =
      gtk_file_chooser_get_filename (GTK_FILE_CHOOSER (button));

  if (path == NULL)
    return;
  d->applying = TRUE;
  g_object_set (d->config, "model", path, NULL);
  d->applying = FALSE;
  fill_model_combo (d, path);
  load_selected_model (d);
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

  if (dp_job_take_preview (job, d->preview_buf, &fraction, &text) || force)
    {
      g_autoptr (GdkPixbuf) pixbuf =
          dp_preview_pixbuf (d->preview_buf, job->count, job->channels,
                             job->height, job->width, PREVIEW_SIZE);

      gtk_image_set_from_pixbuf (GTK_IMAGE (d->preview), pixbuf);
    }
  gtk_progress_bar_set_fraction (GTK_PROGRESS_BAR (d->progress), fraction);
  gtk_progress_bar_set_text (GTK_PROGRESS_BAR (d->progress), text);
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
  thread = g_thread_new ("diffuse", job_thread, d);
  timer = g_timeout_add (100, tick, d);
  g_main_loop_run (d->loop);
  g_thread_join (thread);
  g_source_remove (timer);
  g_clear_pointer (&d->loop, g_main_loop_unref);
  show_preview (d, FALSE);

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

static GtkWidget *
build (Dialog *d)
{
  const char *user_models = d->spec->user_models_dir;
  GtkWidget *dialog, *hbox, *left, *right, *grid, *row, *button, *frame;
  GtkFileFilter *filter;
  g_autofree gchar *user_note = NULL;

  dialog =
      gimp_procedure_dialog_new (d->spec->procedure, d->config, d->spec->title);
  d->dialog = GIMP_PROCEDURE_DIALOG (dialog);
  gimp_procedure_dialog_set_ok_label (d->dialog, d->spec->ok_label);

  hbox = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 12);
  left = d->left = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  right = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  gtk_box_pack_start (GTK_BOX (hbox), left, TRUE, TRUE, 0);
  gtk_box_pack_start (GTK_BOX (hbox), right, FALSE, FALSE, 0);
  gtk_box_pack_start (
      GTK_BOX (gtk_dialog_get_content_area (GTK_DIALOG (dialog))), hbox, TRUE,
      TRUE, 0);

  /* model, preset and class rows */
  grid = gtk_grid_new ();
  gtk_grid_set_row_spacing (GTK_GRID (grid), 4);
  gtk_grid_set_column_spacing (GTK_GRID (grid), 8);
  gtk_box_pack_start (GTK_BOX (left), grid, FALSE, FALSE, 0);

  row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 4);
  d->model_combo = gtk_combo_box_text_new ();
  gtk_box_pack_start (GTK_BOX (row), d->model_combo, TRUE, TRUE, 0);
  button = gtk_file_chooser_button_new ("Choose a model",
                                        GTK_FILE_CHOOSER_ACTION_OPEN);
  filter = gtk_file_filter_new ();
  gtk_file_filter_set_name (filter, "Diffusion models (*.safetensors)");
  gtk_file_filter_add_pattern (filter, "*.safetensors");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (button), filter);
  g_mkdir_with_parents (user_models, 0755);
  gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (button), user_models);
  gtk_file_chooser_button_set_width_chars (GTK_FILE_CHOOSER_BUTTON (button), 8);
  gtk_widget_set_tooltip_text (button, "Open another model file");
  g_signal_connect (button, "file-set", G_CALLBACK (model_file_set), d);
  gtk_box_pack_start (GTK_BOX (row), button, FALSE, FALSE, 0);
  labelled_row (grid, 0, "M_odel:", row);
  gtk_label_set_mnemonic_widget (
      GTK_LABEL (gtk_grid_get_child_at (GTK_GRID (grid), 0, 0)),
      d->model_combo);

  d->model_info = gtk_label_new ("");
  gtk_label_set_xalign (GTK_LABEL (d->model_info), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (d->model_info), TRUE);
  gtk_grid_attach (GTK_GRID (grid), d->model_info, 1, 1, 1, 1);
  {
    const char *home = g_get_home_dir ();
    gsize n = strlen (home);
    gboolean under_home = n > 1 && strncmp (user_models, home, n) == 0 &&
                          user_models[n] == G_DIR_SEPARATOR;

    user_note = g_markup_printf_escaped (
        "<small>Your models: %s%s</small>", under_home ? "~" : "",
        under_home ? user_models + n : user_models);
  }
  {
    GtkWidget *note = gtk_label_new (NULL);

    gtk_label_set_markup (GTK_LABEL (note), user_note);
    gtk_label_set_xalign (GTK_LABEL (note), 0.0);
    gtk_label_set_ellipsize (GTK_LABEL (note), PANGO_ELLIPSIZE_MIDDLE);
    gtk_label_set_selectable (GTK_LABEL (note), TRUE);
    gtk_grid_attach (GTK_GRID (grid), note, 1, 2, 1, 1);
  }

  d->class_combo = labelled_row (grid, 3, "Cl_ass:", gtk_combo_box_text_new ());

  row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 4);
  d->preset_combo = gtk_combo_box_text_new ();
  gtk_box_pack_start (GTK_BOX (row), d->preset_combo, TRUE, TRUE, 0);
  button = gtk_button_new_with_mnemonic ("Sa_ve as...");
  gtk_widget_set_tooltip_text (button,
                               "Save the current values as your own preset");
  g_signal_connect (button, "clicked", G_CALLBACK (save_preset_clicked), d);
  gtk_box_pack_start (GTK_BOX (row), button, FALSE, FALSE, 0);
  labelled_row (grid, 4, "_Preset:", row);
  gtk_label_set_mnemonic_widget (
      GTK_LABEL (gtk_grid_get_child_at (GTK_GRID (grid), 0, 4)),
      d->preset_combo);

  /* the generated widgets for the arguments the plug-in names */
  {
    GList *names = NULL;
    gint i;

    for (i = 0; d->spec->param_names[i] != NULL; i++)
      names = g_list_append (names, (gpointer) d->spec->param_names[i]);
    d->params_box =
        gimp_procedure_dialog_fill_box_list (d->dialog, "dp-params", names);
    g_list_free (names);
  }
  gtk_box_pack_start (GTK_BOX (left), d->params_box, FALSE, FALSE, 0);
  button = gtk_button_new_with_mnemonic ("Pic_k a random seed");
  g_signal_connect (button, "clicked", G_CALLBACK (random_seed_clicked), d);
  row = gtk_box_new (GTK_ORIENTATION_HORIZONTAL, 4);
  gtk_box_pack_end (GTK_BOX (row), button, FALSE, FALSE, 0);
  gtk_box_pack_start (GTK_BOX (left), row, FALSE, FALSE, 0);

  d->size_label = gtk_label_new ("");
  gtk_label_set_xalign (GTK_LABEL (d->size_label), 0.0);
  gtk_label_set_line_wrap (GTK_LABEL (d->size_label), TRUE);
  gtk_label_set_max_width_chars (GTK_LABEL (d->size_label), 48);
  gtk_box_pack_start (GTK_BOX (left), d->size_label, FALSE, FALSE, 0);

  /* preview, progress, status */
  frame = gtk_frame_new ("Preview (predicted x0)");
  d->preview = gtk_image_new ();
  gtk_widget_set_size_request (d->preview, PREVIEW_SIZE, PREVIEW_SIZE);
  gtk_container_add (GTK_CONTAINER (frame), d->preview);
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
  g_signal_connect (d->preset_combo, "changed", G_CALLBACK (preset_changed), d);
  g_signal_connect (d->config, "notify", G_CALLBACK (config_notify), d);
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
  gtk_widget_destroy (dialog);
  g_clear_pointer (&d.presets, g_ptr_array_unref);
  g_free (d.preview_buf);
  if (!done)
    g_clear_error (error);
  return done;
}
