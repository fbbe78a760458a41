/* The plug-in's model files by kind (plugin/model-files.c, no GIMP in
 * it): the model list holds diffusion models (and unreadable files), the
 * classifier list classifiers, each told apart by its header; names hide
 * the same name of the same kind in later folders; the classifiers kept
 * for a model are those that fit it; "model" and "classifier" arguments
 * resolve within their own kind. */
#include <string.h>

#include <glib/gstdio.h>

#include "model-files.h"

static gchar *golden_dir;
static gchar *shipped_dir;

static void
copy_to (const char *src_dir, const char *name, const char *dir, const char *as)
{
  g_autofree gchar *src = g_build_filename (src_dir, name, NULL);
  g_autofree gchar *dst = g_build_filename (dir, as, NULL);
  g_autofree gchar *bytes = NULL;
  gsize len = 0;
  GError *error = NULL;

  g_assert_true (g_file_get_contents (src, &bytes, &len, &error));
  g_assert_true (g_file_set_contents (dst, bytes, (gssize) len, &error));
  g_assert_no_error (error);
}

static void
write_text (const char *dir, const char *as, const char *text)
{
  g_autofree gchar *dst = g_build_filename (dir, as, NULL);

  g_assert_true (g_file_set_contents (dst, text, -1, NULL));
}

/* "a, b, c" of a list's names, and each entry's folder checked */
static gchar *
names_of (GPtrArray *list)
{
  GString *s = g_string_new (NULL);

  for (guint i = 0; i < list->len; i++)
    {
      DpModelEntry *e = g_ptr_array_index (list, i);
      g_autofree gchar *base = g_path_get_basename (e->path);
      g_autofree gchar *want = g_strconcat (e->name, ".safetensors", NULL);

      g_assert_cmpstr (base, ==, want);
      g_string_append_printf (s, "%s%s", i > 0 ? ", " : "", e->name);
    }
  return g_string_free (s, FALSE);
}

static const DpModelEntry *
find (GPtrArray *list, const char *name)
{
  for (guint i = 0; i < list->len; i++)
    {
      const DpModelEntry *e = g_ptr_array_index (list, i);

      if (strcmp (e->name, name) == 0)
        return e;
    }
  return NULL;
}

static void
rm_tree (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  const char *f;

  while (d != NULL && (f = g_dir_read_name (d)) != NULL)
    {
      g_autofree gchar *p = g_build_filename (dir, f, NULL);

      g_unlink (p);
    }
  g_rmdir (dir);
}

static void
test_lists (void)
{
  g_autofree gchar *user = g_dir_make_tmp ("dp-models-user-XXXXXX", NULL);
  g_autofree gchar *other = g_dir_make_tmp ("dp-models-other-XXXXXX", NULL);
  g_autofree gchar *missing = g_build_filename (user, "no-such-dir", NULL);
  const char *dirs[] = { user, missing, shipped_dir, other, NULL };
  g_autoptr (GPtrArray) models = NULL;
  g_autoptr (GPtrArray) classifiers = NULL;
  g_autofree gchar *model_names = NULL, *classifier_names = NULL;
  const DpModelEntry *e;

  g_assert_nonnull (user);
  g_assert_nonnull (other);
  /* the user's folder: two classifiers, a broken file, a file that is
   * not a model by its name, and a bare ".safetensors" */
  copy_to (golden_dir, "clf-grey-attn-ss-updown.safetensors", user,
           "mine.safetensors");
  copy_to (golden_dir, "clf-rgb-adaptive-ss-conv.safetensors", user,
           "shared.safetensors");
  write_text (user, "broken.safetensors", "not a model");
  write_text (user, "notes.txt", "hello");
  write_text (user, ".safetensors", "");
  /* a later folder: a diffusion model named as the user's classifier
   * (another kind: both are listed), a classifier hidden by the user's
   * "mine", and a model hidden by the shipped "fashion" */
  copy_to (golden_dir, "forward-rgb-uncond.safetensors", other,
           "shared.safetensors");
  copy_to (golden_dir, "clf-rgba-attn-noss-updown.safetensors", other,
           "mine.safetensors");
  copy_to (golden_dir, "forward-grey-cond.safetensors", other,
           "fashion.safetensors");

  models = dp_model_files_list (dirs, DIFFUSE_MODEL_UNET);
  classifiers = dp_model_files_list (dirs, DIFFUSE_MODEL_CLASSIFIER);
  model_names = names_of (models);
  classifier_names = names_of (classifiers);
  g_test_message ("models: %s; classifiers: %s", model_names, classifier_names);
  g_assert_cmpstr (model_names, ==, "broken, emoji, fashion, shared");
  g_assert_cmpstr (classifier_names, ==,
                   "emoji-classifier, fashion-classifier, mine, shared");

  e = find (models, "broken");
  g_assert_false (e->readable);
  e = find (models, "fashion");
  g_assert_true (e->readable);
  g_assert_true (g_str_has_prefix (e->path, shipped_dir));
  g_assert_cmpint (e->config.model_type, ==, DIFFUSE_MODEL_UNET);
  g_assert_cmpint (e->config.num_classes, ==, 11);
  e = find (models, "shared");
  g_assert_true (g_str_has_prefix (e->path, other));
  e = find (classifiers, "shared");
  g_assert_true (g_str_has_prefix (e->path, user));
  g_assert_cmpint (e->config.model_type, ==, DIFFUSE_MODEL_CLASSIFIER);
  e = find (classifiers, "mine");
  g_assert_true (g_str_has_prefix (e->path, user));
  g_assert_cmpint (e->config.in_channels, ==, 1);

  /* which classifiers fit which model */
  {
    struct
    {
      const char *model;
      const char *want;
    } cases[] = {
      { "fashion", "fashion-classifier" },
      { "emoji", "emoji-classifier" },
      /* RGB, no diffusion recorded by the golden classifier */
      { "shared", "shared" },
    };

    for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
      {
        g_autoptr (GPtrArray) fit =
            dp_model_files_list (dirs, DIFFUSE_MODEL_CLASSIFIER);
        g_autofree gchar *got = NULL;

        dp_model_files_keep_fitting (fit,
                                     &find (models, cases[i].model)->config);
        got = names_of (fit);
        g_test_message ("classifiers for %s: %s", cases[i].model, got);
        g_assert_cmpstr (got, ==, cases[i].want);
      }
  }
  /* the golden grey model (T differs from the shipped classifiers'):
   * only the grey golden classifier, which records no diffusion */
  {
    g_autoptr (GPtrArray) fit =
        dp_model_files_list (dirs, DIFFUSE_MODEL_CLASSIFIER);
    g_autofree gchar *path =
        g_build_filename (golden_dir, "forward-grey-cond.safetensors", NULL);
    g_autofree gchar *got = NULL;
    DiffuseModelConfig grey;

    g_assert_true (diffuse_model_file_read_config (path, &grey, NULL));
    dp_model_files_keep_fitting (fit, &grey);
    got = names_of (fit);
    g_assert_cmpstr (got, ==, "mine");
  }

  /* resolving arguments within their kind */
  {
    GError *error = NULL;
    g_autofree gchar *a = NULL, *b = NULL, *c = NULL, *d = NULL, *f = NULL;
    g_autofree gchar *g = NULL, *h = NULL;

    a = dp_model_files_resolve (dirs, DIFFUSE_MODEL_UNET, "shared", &error);
    g_assert_no_error (error);
    g_assert_cmpstr (a, ==, find (models, "shared")->path);
    b = dp_model_files_resolve (dirs, DIFFUSE_MODEL_CLASSIFIER, "shared",
                                &error);
    g_assert_no_error (error);
    g_assert_cmpstr (b, ==, find (classifiers, "shared")->path);
    c = dp_model_files_resolve (dirs, DIFFUSE_MODEL_CLASSIFIER,
                                "fashion-classifier", &error);
    g_assert_no_error (error);
    g_assert_cmpstr (c, ==, find (classifiers, "fashion-classifier")->path);
    /* "" = the first model (by name) */
    d = dp_model_files_resolve (dirs, DIFFUSE_MODEL_UNET, "", &error);
    g_assert_no_error (error);
    g_assert_cmpstr (d, ==, find (models, "broken")->path);
    /* a path is taken as given, whatever it holds */
    f = dp_model_files_resolve (dirs, DIFFUSE_MODEL_CLASSIFIER,
                                "/x/y.safetensors", &error);
    g_assert_cmpstr (f, ==, "/x/y.safetensors");

    /* a classifier's name is no model, a model's no classifier */
    g = dp_model_files_resolve (dirs, DIFFUSE_MODEL_UNET, "mine", &error);
    g_assert_null (g);
    g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
    g_assert_nonnull (strstr (error->message,
                              "'mine' is a classifier (for classifier "
                              "guidance), not a diffusion model"));
    g_clear_error (&error);
    h = dp_model_files_resolve (dirs, DIFFUSE_MODEL_CLASSIFIER, "fashion",
                                &error);
    g_assert_null (h);
    g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
    g_assert_nonnull (strstr (error->message,
                              "'fashion' is a diffusion model, not a "
                              "classifier"));
    g_clear_error (&error);
    /* names of neither kind */
    g_assert_null (
        dp_model_files_resolve (dirs, DIFFUSE_MODEL_UNET, "giraffe", &error));
    g_assert_nonnull (strstr (error->message, "No model named 'giraffe'"));
    g_assert_nonnull (strstr (error->message, user));
    g_clear_error (&error);
    g_assert_null (dp_model_files_resolve (dirs, DIFFUSE_MODEL_CLASSIFIER,
                                           "giraffe", &error));
    g_assert_nonnull (strstr (error->message, "No classifier named 'giraffe'"));
    g_clear_error (&error);
    /* an unreadable file is listed as a model, never as a classifier */
    g_assert_null (dp_model_files_resolve (dirs, DIFFUSE_MODEL_CLASSIFIER,
                                           "broken", &error));
    g_assert_nonnull (strstr (error->message, "No classifier named 'broken'"));
    g_clear_error (&error);
  }

  /* no folder with models */
  {
    const char *none[] = { missing, NULL };
    g_autoptr (GPtrArray) empty =
        dp_model_files_list (none, DIFFUSE_MODEL_UNET);
    GError *error = NULL;

    g_assert_cmpuint (empty->len, ==, 0);
    g_assert_null (
        dp_model_files_resolve (none, DIFFUSE_MODEL_UNET, "", &error));
    g_assert_nonnull (strstr (error->message, "No diffusion model found"));
    g_clear_error (&error);
  }

  rm_tree (user);
  rm_tree (other);
}

static void
test_is_none (void)
{
  g_assert_true (dp_model_files_is_none (NULL));
  g_assert_true (dp_model_files_is_none (""));
  g_assert_true (dp_model_files_is_none ("none"));
  g_assert_true (dp_model_files_is_none ("None"));
  g_assert_false (dp_model_files_is_none ("fashion-classifier"));
  g_assert_false (dp_model_files_is_none ("none.safetensors"));
  g_assert_false (dp_model_files_is_none (" "));
}

int
main (int argc, char **argv)
{
  const char *data = g_getenv ("DIFFUSE_TEST_DATA");
  const char *root = g_getenv ("DIFFUSE_SOURCE_ROOT");

  g_test_init (&argc, &argv, NULL);
  golden_dir =
      g_build_filename (data != NULL ? data : "tests/data", "golden", NULL);
  shipped_dir = g_build_filename (root != NULL ? root : ".", "models", NULL);
  g_test_add_func ("/model-files/lists", test_lists);
  g_test_add_func ("/model-files/is-none", test_is_none);
  return g_test_run ();
}
