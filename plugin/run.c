/* Prepare (GIMP -> engine) and finish (engine -> GIMP) for the four
 * procedures.  Both run on the main thread; the job in between may run
 * anywhere. */
#include <math.h>
#include <string.h>

#include "plugin.h"

/* The file at path into *model (the one already there when it is the
 * same path), refused when it is not of kind type: wrong_kind is the
 * message then, with the file's name for %s. */
static gboolean
load_cached (const char *path, DiffuseModelType type, const char *wrong_kind,
             DiffuseModel **model, gchar **model_path, GError **error)
{
  DiffuseModel *loaded;

  if (*model != NULL && g_strcmp0 (path, *model_path) == 0)
    return TRUE;
  loaded = diffuse_model_new_from_file (path, error);
  if (loaded == NULL)
    return FALSE;
  if (diffuse_model_get_config (loaded)->model_type != type)
    {
      g_autofree gchar *shown = g_filename_display_name (path);

      g_set_error (error, GIMP_PLUG_IN_ERROR, 0, wrong_kind, shown);
      diffuse_model_free (loaded);
      return FALSE;
    }
  diffuse_model_free (*model);
  g_free (*model_path);
  *model = loaded;
  *model_path = g_strdup (path);
  return TRUE;
}

gboolean
dp_run_load_model (DpRun *run, const char *model, GError **error)
{
  g_autofree gchar *path = dp_models_resolve (model, error);

  return path != NULL &&
         load_cached (path, DIFFUSE_MODEL_UNET,
                      "%s is a classifier (for classifier guidance), not a "
                      "diffusion model: choose a diffusion model as the model "
                      "and give this file as the classifier (\"Steer by\")",
                      &run->model, &run->model_path, error);
}

/* The classifier the "classifier" argument names (none: run->classifier
 * NULL), loaded or the cached one. */
gboolean
dp_run_load_classifier (DpRun *run, const char *classifier, GError **error)
{
  g_autofree gchar *path = NULL;

  if (dp_model_files_is_none (classifier))
    {
      g_clear_pointer (&run->classifier, diffuse_model_free);
      g_clear_pointer (&run->classifier_path, g_free);
      return TRUE;
    }
  path = dp_classifiers_resolve (classifier, error);
  return path != NULL &&
         load_cached (path, DIFFUSE_MODEL_CLASSIFIER,
                      "%s is a diffusion model, not a classifier: give a "
                      "classifier file (model_type \"classifier\") as the "
                      "classifier, or none",
                      &run->classifier, &run->classifier_path, error);
}

/* "" means the model's "no label" class when it has one, else class 0;
 * a guidance sweep needs a real class (guidance does nothing with the
 * null class), so there it means the first class that is not null. */
gint
dp_run_default_class (const DiffuseModel *model, DpKind kind)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);

  if (cfg->num_classes <= 0)
    return -1;
  if (kind == DP_SWEEP)
    return cfg->null_class == 0 && cfg->num_classes > 1 ? 1 : 0;
  if (cfg->null_class >= 0)
    return cfg->null_class;
  return 0;
}

/* The model whose classes a "class" argument names: the model's, or an
 * unconditional model's classifier's (as diffuse sample --class). */
static const DiffuseModel *
class_source (const DpRun *run)
{
  if (run->classifier != NULL &&
      diffuse_model_get_config (run->model)->num_classes <= 0)
    return run->classifier;
  return run->model;
}

static gboolean
resolve_class (const DpRun *run, const char *text, gint *label, GError **error)
{
  const DiffuseModel *model = class_source (run);
  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);

  if (cfg->num_classes <= 0 || text == NULL || text[0] == '\0')
    {
      *label =
          model == run->model ? dp_run_default_class (model, run->kind) : -1;
      return TRUE;
    }
  return diffuse_model_find_class (model, text, label, error);
}

static gchar *
class_title (const DpRun *run, gint label)
{
  const char *name;

  if (label < 0)
    return g_strdup ("Sample");
  name = diffuse_model_get_class_name (class_source (run), label);
  return name != NULL ? g_strdup (name) : g_strdup_printf ("Class %d", label);
}

/* Classifier guidance: the classifier fits the model, and there is a
 * class to steer towards (not the null class: the classifier has no
 * logit for "no label"). */
static gboolean
check_classifier (const DpRun *run, gint label, GError **error)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (run->model);
  const DiffuseModelConfig *cc;
  g_autofree gchar *name = NULL;

  if (run->classifier == NULL)
    return TRUE;
  cc = diffuse_model_get_config (run->classifier);
  name = g_path_get_basename (run->classifier_path);
  if (!diffuse_classifier_check_model (cc, cfg, error))
    {
      g_prefix_error (error,
                      "The classifier %s does not fit this model: ", name);
      return FALSE;
    }
  if (label < 0 || (cfg->num_classes > 0 && label == cfg->null_class))
    {
      g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                   "Steering by the classifier %s needs a class to steer "
                   "towards: choose a class (the classifier knows %d), not "
                   "\"no label\"",
                   name, cc->num_classes);
      return FALSE;
    }
  return TRUE;
}

/* The area the run works on. */
static gboolean
find_target (DpRun *run, GError **error)
{
  if (run->kind == DP_SWEEP)
    {
      const DiffuseModelConfig *cfg = diffuse_model_get_config (run->model);

      run->x = run->y = 0;
      run->width = run->height = cfg->image_size;
      return TRUE;
    }

  if (run->image != NULL &&
      gimp_image_get_base_type (run->image) == GIMP_INDEXED)
    {
      g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                   "Indexed images are not supported: convert the image with "
                   "Image > Mode > RGB (or Grayscale) first");
      return FALSE;
    }

  if (run->kind == DP_IMG2IMG || run->kind == DP_INPAINT)
    {
      const char *what = run->kind == DP_IMG2IMG ? "Img2img" : "Inpainting";

      if (run->drawable == NULL)
        {
          g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                       "%s needs exactly one selected layer", what);
          return FALSE;
        }
      if (gimp_item_is_group (GIMP_ITEM (run->drawable)))
        {
          g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                       "%s paints on a layer, not on a layer group: "
                       "select a layer inside the group",
                       what);
          return FALSE;
        }
      if (run->kind == DP_INPAINT && gimp_selection_is_empty (run->image))
        {
          g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                       "Inpainting regenerates the selection: select the "
                       "part to regenerate first (feather the selection for "
                       "a soft edge)");
          return FALSE;
        }
      if (!gimp_drawable_mask_intersect (run->drawable, &run->x, &run->y,
                                         &run->width, &run->height) ||
          run->width <= 0 || run->height <= 0)
        {
          g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                       "The selection does not touch the layer");
          return FALSE;
        }
      return TRUE;
    }

  /* generate: the selection's bounds, else the current layer, else the image */
  {
    gboolean non_empty = FALSE;
    gint x1, y1, x2, y2;

    if (gimp_selection_bounds (run->image, &non_empty, &x1, &y1, &x2, &y2) &&
        non_empty)
      {
        run->x = x1;
        run->y = y1;
        run->width = x2 - x1;
        run->height = y2 - y1;
      }
    else if (run->drawable != NULL &&
             gimp_item_is_layer (GIMP_ITEM (run->drawable)))
      {
        gimp_drawable_get_offsets (run->drawable, &run->x, &run->y);
        run->width = gimp_drawable_get_width (run->drawable);
        run->height = gimp_drawable_get_height (run->drawable);
      }
    else
      {
        run->x = run->y = 0;
        run->width = gimp_image_get_width (run->image);
        run->height = gimp_image_get_height (run->image);
      }
  }
  return TRUE;
}

/* The size to sample at; sets run->scaled. */
static gboolean
plan_size (DpRun *run, const DpSettings *s, gint *run_h, gint *run_w,
           GError **error)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (run->model);

  if (run->kind == DP_SWEEP)
    {
      *run_h = *run_w = cfg->image_size;
      run->scaled = FALSE;
      return TRUE;
    }
  if (g_strcmp0 (s->size_mode, "layer") == 0)
    {
      if (!diffuse_model_check_size (run->model, run->height, run->width,
                                     error))
        return FALSE;
      if ((double) run->height * run->width >
          64.0 * DP_MAX_AREA_FACTOR * cfg->image_size * cfg->image_size)
        {
          g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                       "%d x %d is too large to sample at full size with a "
                       "%d px model; use size mode \"auto\" or \"model\"",
                       run->width, run->height, cfg->image_size);
          return FALSE;
        }
      *run_h = run->height;
      *run_w = run->width;
      run->scaled = FALSE;
      return TRUE;
    }
  run->scaled = !diffuse_fit_size (cfg, run->height, run->width,
                                   g_strcmp0 (s->size_mode, "model") != 0,
                                   DP_MAX_AREA_FACTOR, run_h, run_w);
  return TRUE;
}

/* Inpaint: the selection over the whole drawable ([H, W] in [0, 1]) and
 * the plan of its context window; sets the target (x, y, width, height)
 * to the window, in the drawable's coordinates. */
static float *
plan_inpaint (DpRun *run, const DpSettings *s, GError **error)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (run->model);
  GimpDrawable *selection =
      GIMP_DRAWABLE (gimp_image_get_selection (run->image));
  gint ox, oy, w = gimp_drawable_get_width (run->drawable);
  gint h = gimp_drawable_get_height (run->drawable);
  GeglBuffer *buffer = gimp_drawable_get_buffer (selection);
  float *mask = g_new (float, (gsize) w *h);

  gimp_drawable_get_offsets (run->drawable, &ox, &oy);
  /* the selection's values as they are (a mask format is linear) */
  gegl_buffer_get (buffer, GEGL_RECTANGLE (ox, oy, w, h), 1.0,
                   babl_format ("Y float"), mask, GEGL_AUTO_ROWSTRIDE,
                   GEGL_ABYSS_NONE);
  g_object_unref (buffer);
  for (gsize j = 0; j < (gsize) w * h; j++)
    mask[j] = CLAMP (mask[j], 0.0f, 1.0f);
  if (!diffuse_inpaint_plan (cfg, mask, h, w, s->margin, &run->plan, error))
    {
      g_free (mask);
      return NULL;
    }
  run->x = run->plan.x;
  run->y = run->plan.y;
  run->width = run->plan.width;
  run->height = run->plan.height;
  run->scaled = run->plan.scaled;
  return mask;
}

/* One line for the dialog: what happens with the area's size. */
gchar *
dp_run_describe_size (DpRun *run, const DpSettings *s)
{
  const DiffuseModelConfig *cfg;
  GError *error = NULL;
  gchar *text;
  gint h, w;

  if (run->model == NULL)
    return g_strdup ("");
  cfg = diffuse_model_get_config (run->model);
  if (run->kind == DP_INPAINT)
    {
      g_autofree float *mask = NULL;

      if (!find_target (run, &error) ||
          (mask = plan_inpaint (run, s, &error)) == NULL)
        {
          text = g_strdup (error->message);
          g_error_free (error);
          return text;
        }
      return g_strdup_printf (
          "The selection and %d px around it: a %d x %d area at (%d, %d), "
          "sampled at %d x %d%s.",
          s->margin, run->width, run->height, run->x, run->y,
          run->plan.run_width, run->plan.run_height,
          run->plan.scaled ? " and scaled back" : "");
    }
  if (!find_target (run, &error) || !plan_size (run, s, &h, &w, &error))
    {
      text = g_strdup (error->message);
      g_error_free (error);
      return text;
    }
  if (run->kind == DP_SWEEP)
    return g_strdup_printf ("Samples at the model's size, %d x %d.", w, h);
  if (!run->scaled && h == cfg->image_size && w == cfg->image_size)
    return g_strdup_printf (
        "%s is %d x %d, the model's own size.",
        run->kind == DP_IMG2IMG ? "The area" : "The new layer", w, h);
  if (!run->scaled)
    return g_strdup_printf (
        "Paints the whole %d x %d area at full size: on an area larger than "
        "the model's %d x %d that makes several smaller subjects, like a "
        "pattern. For one subject choose \"One subject, scaled to fit\".",
        run->width, run->height, cfg->image_size, cfg->image_size);
  return g_strdup_printf ("Paints one subject at %d x %d (the model's size "
                          "is %d x %d) and scales it to the %d x %d area.",
                          w, h, cfg->image_size, cfg->image_size, run->width,
                          run->height);
}

DpJob *
dp_run_prepare (DpRun *run, const DpSettings *s, GError **error)
{
  const DiffuseModelConfig *cfg;
  DiffuseSampleParams params;
  g_autofree double *guidance = NULL;
  gint n_guidance = 1, label, run_h, run_w, channels;
  DpJob *job;

  if ((run->kind == DP_IMG2IMG || run->kind == DP_INPAINT) &&
      s->values.strength == 0.0)
    {
      g_set_error (
          error, GIMP_PLUG_IN_ERROR, 0,
          "Strength 0 would leave the layer as it is: use a value above 0");
      return NULL;
    }
  /* the table's arguments, checked by the table (GParamSpec lets nan
   * and inf through) */
  if (!dp_settings_validate (run->kind, &s->values, error))
    return NULL;
  if (run->kind == DP_SWEEP && s->as_layers &&
      (run->image == NULL ||
       gimp_image_get_base_type (run->image) == GIMP_INDEXED))
    {
      g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                   run->image == NULL
                       ? "Results as layers need an open image"
                       : "Indexed images are not supported: convert the image "
                         "with Image > Mode > RGB (or Grayscale) first");
      return NULL;
    }
  if (!dp_run_load_model (run, s->model, error) ||
      !dp_run_load_classifier (run, s->classifier, error))
    return NULL;
  cfg = diffuse_model_get_config (run->model);
  channels = cfg->in_channels;

  if (!find_target (run, error))
    return NULL;
  if (run->kind == DP_INPAINT)
    {
      g_autofree float *mask = plan_inpaint (run, s, error);
      gint dw = gimp_drawable_get_width (run->drawable);

      if (mask == NULL)
        return NULL;
      run_h = run->plan.run_height;
      run_w = run->plan.run_width;
      /* the window's pixels and its part of the selection, kept for
       * finish_inpaint */
      g_clear_pointer (&run->window, g_free);
      g_clear_pointer (&run->window_mask, g_free);
      run->window = dp_pixels_read (run->drawable, run->x, run->y, run->width,
                                    run->height, channels);
      run->window_mask = g_new (float, (gsize) run->width * run->height);
      for (gint r = 0; r < run->height; r++)
        memcpy (run->window_mask + (gsize) r * run->width,
                mask + (gsize) (run->y + r) * dw + run->x,
                sizeof (float) * run->width);
    }
  else if (!plan_size (run, s, &run_h, &run_w, error))
    return NULL;
  if (!resolve_class (run, s->class_text, &label, error) ||
      !check_classifier (run, label, error))
    return NULL;
  if (run->kind == DP_SWEEP)
    {
      guidance =
          dp_parse_guidance_values (s->guidance_values, &n_guidance, error);
      if (guidance == NULL)
        return NULL;
    }

  diffuse_sample_params_init (&params);
  diffuse_settings_copy (dp_arg_mask (run->kind), &params, &s->values);
  /* guidance at its default means the default for this model: 2 where it
   * can be guided, 0 where it has no null class (dp_args_given) */
  diffuse_settings_fit_model (
      &params, dp_args_given (run->kind, &s->values, s->preset_given),
      run->model);
  /* guidance given (an argument other than the default, or a preset's)
   * with a model that cannot be guided: say so in the plug-in's words */
  if (guidance == NULL && params.guidance > 0.0 &&
      !diffuse_model_can_guide (run->model, NULL) &&
      diffuse_model_get_config (run->model)->num_classes > 0)
    {
      g_autofree gchar *pname = diffuse_text_escape (s->preset);
      gint w_index;

      diffuse_setting_find ("guidance", &w_index);
      if (s->preset_given & (1u << w_index))
        g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                     "The preset '%s' sets Follow the class (guidance) to %g, "
                     "which needs a model with a null class, and this model "
                     "has no null class: choose a preset without guidance, "
                     "such as diverse",
                     pname, params.guidance);
      else
        g_set_error (error, GIMP_PLUG_IN_ERROR, 0,
                     "Follow the class (guidance) %g needs a model with a "
                     "null class, and this model has no null class: use "
                     "guidance 0",
                     params.guidance);
      return NULL;
    }
  if (guidance != NULL)
    params.guidance = guidance[0];
  params.class_label = label;
  params.classifier = run->classifier;
  params.seed = (guint64) s->seed;
  params.height = run_h;
  params.width = run_w;
  if (run->kind != DP_IMG2IMG && run->kind != DP_INPAINT)
    params.strength = 1.0;

  job = dp_job_new (run->model, &params, params.count, channels, run_h, run_w,
                    n_guidance, guidance);

  if (run->kind == DP_IMG2IMG)
    {
      g_autofree float *area = dp_pixels_read (
          run->drawable, run->x, run->y, run->width, run->height, channels);

      job->init = g_new (float, (gsize) channels *run_h *run_w);
      if (run->scaled)
        diffuse_resample (area, channels, run->height, run->width, job->init,
                          run_h, run_w, DIFFUSE_RESAMPLE_BILINEAR);
      else
        memcpy (job->init, area, sizeof (float) * channels * run_h * run_w);
    }

  if (run->kind == DP_INPAINT)
    {
      job->init = g_new (float, (gsize) channels *run_h *run_w);
      job->mask = g_new (float, (gsize) run_h *run_w);
      diffuse_inpaint_to_run (&run->plan, run->window, channels, job->init);
      diffuse_inpaint_to_run (&run->plan, run->window_mask, 1, job->mask);
      params.mask = job->mask;
    }

  params.init_image = job->init;
  if (guidance != NULL)
    {
      gint i;

      /* every value of the sweep must be valid, not just the first */
      for (i = 0; i < n_guidance; i++)
        {
          params.guidance = guidance[i];
          if (!diffuse_sample_params_validate (&params, run->model, error))
            {
              dp_job_free (job);
              return NULL;
            }
        }
    }
  else if (!diffuse_sample_params_validate (&params, run->model, error))
    {
      dp_job_free (job);
      return NULL;
    }
  return job;
}

/* The job's sample k at the target size (a copy when scaling). */
static const float *
sample_at_target (DpRun *run, DpJob *job, gint k, float **scratch)
{
  gsize n = (gsize) job->channels * job->height * job->width;
  const float *src = job->out + n * k;

  if (!run->scaled)
    return src;
  if (*scratch == NULL)
    *scratch = g_new (float, (gsize) job->channels * run->height * run->width);
  diffuse_resample (src, job->channels, job->height, job->width, *scratch,
                    run->height, run->width, DIFFUSE_RESAMPLE_BILINEAR);
  return *scratch;
}

static GimpImageType
layer_type (GimpImageBaseType base, gint channels)
{
  gboolean alpha = channels == 2 || channels == 4;

  if (base == GIMP_GRAY)
    return alpha ? GIMP_GRAYA_IMAGE : GIMP_GRAY_IMAGE;
  return alpha ? GIMP_RGBA_IMAGE : GIMP_RGB_IMAGE;
}

static void
fill_layer (GimpLayer *layer, gint width, gint height, gint channels,
            const float *planes)
{
  GeglBuffer *buffer = gimp_drawable_get_buffer (GIMP_DRAWABLE (layer));

  dp_pixels_write (buffer, GIMP_DRAWABLE (layer), 0, 0, width, height, channels,
                   planes, NULL);
  gegl_buffer_flush (buffer);
  g_object_unref (buffer);
  gimp_drawable_update (GIMP_DRAWABLE (layer), 0, 0, width, height);
}

static gboolean
finish_generate (DpRun *run, const DpSettings *s, DpJob *job)
{
  g_autofree gchar *title = class_title (run, job->params.class_label);
  g_autofree float *scratch = NULL;
  GimpImageType type =
      layer_type (gimp_image_get_base_type (run->image), job->channels);
  GimpLayer *parent = NULL;
  gint position = 0, k;

  if (run->drawable != NULL && gimp_item_is_layer (GIMP_ITEM (run->drawable)))
    {
      GimpItem *p = gimp_item_get_parent (GIMP_ITEM (run->drawable));

      parent = p != NULL ? GIMP_LAYER (p) : NULL;
      position =
          gimp_image_get_item_position (run->image, GIMP_ITEM (run->drawable));
    }

  gimp_image_undo_group_start (run->image);
  for (k = 0; k < job->count; k++)
    {
      g_autofree gchar *name = NULL;
      GimpLayer *layer;

      if (job->count > 1)
        name = g_strdup_printf ("%s (seed %d, %d of %d)", title, s->seed, k + 1,
                                job->count);
      else
        name = g_strdup_printf ("%s (seed %d)", title, s->seed);
      layer = gimp_layer_new (run->image, name, run->width, run->height, type,
                              100.0, GIMP_LAYER_MODE_NORMAL);
      gimp_image_insert_layer (run->image, layer, parent, position);
      gimp_layer_set_offsets (layer, run->x, run->y);
      fill_layer (layer, run->width, run->height, job->channels,
                  sample_at_target (run, job, k, &scratch));
      run->new_layers = g_list_append (run->new_layers, layer);
    }
  gimp_image_undo_group_end (run->image);
  return TRUE;
}

static gboolean
finish_img2img (DpRun *run, DpJob *job)
{
  g_autofree float *scratch = NULL;
  g_autofree float *alpha = NULL;
  gboolean model_alpha = job->channels == 2 || job->channels == 4;
  GeglBuffer *shadow;

  gimp_image_undo_group_start (run->image);
  if (model_alpha && gimp_item_is_layer (GIMP_ITEM (run->drawable)) &&
      !gimp_drawable_has_alpha (run->drawable))
    gimp_layer_add_alpha (GIMP_LAYER (run->drawable));
  if (!model_alpha && gimp_drawable_has_alpha (run->drawable))
    alpha = dp_pixels_read_alpha (run->drawable, run->x, run->y, run->width,
                                  run->height);

  /* Pixels go to the shadow buffer and are merged in one undoable step;
   * the merge also blends by the selection mask. */
  shadow = gimp_drawable_get_shadow_buffer (run->drawable);
  dp_pixels_write (shadow, run->drawable, run->x, run->y, run->width,
                   run->height, job->channels,
                   sample_at_target (run, job, 0, &scratch), alpha);
  gegl_buffer_flush (shadow);
  g_object_unref (shadow);
  gimp_drawable_merge_shadow (run->drawable, TRUE);
  gimp_drawable_update (run->drawable, run->x, run->y, run->width, run->height);
  gimp_image_undo_group_end (run->image);
  return TRUE;
}

/* The sweep as layers of the current image: one per guidance value, named
 * "w = 2", the image's size (sampled at the model's size and scaled, as
 * Generate's default), above the current layer, in one undo step; the
 * first value's layer ends on top. */
static gboolean
finish_sweep_layers (DpRun *run, DpJob *job)
{
  gsize n = (gsize) job->channels * job->height * job->width;
  gint width = gimp_image_get_width (run->image);
  gint height = gimp_image_get_height (run->image);
  g_autofree float *cell = g_new (float, (gsize) job->channels *width *height);
  GimpImageType type =
      layer_type (gimp_image_get_base_type (run->image), job->channels);
  GimpLayer *parent = NULL;
  gint position = 0, r;

  if (run->drawable != NULL && gimp_item_is_layer (GIMP_ITEM (run->drawable)))
    {
      GimpItem *p = gimp_item_get_parent (GIMP_ITEM (run->drawable));

      parent = p != NULL ? GIMP_LAYER (p) : NULL;
      position =
          gimp_image_get_item_position (run->image, GIMP_ITEM (run->drawable));
    }
  gimp_image_undo_group_start (run->image);
  for (r = job->n_runs - 1; r >= 0; r--)
    {
      g_autofree gchar *name = g_strdup_printf ("w = %g", job->guidance[r]);
      GimpLayer *layer = gimp_layer_new (run->image, name, width, height, type,
                                         100.0, GIMP_LAYER_MODE_NORMAL);

      gimp_image_insert_layer (run->image, layer, parent, position);
      diffuse_resample (job->out + n * r, job->channels, job->height,
                        job->width, cell, height, width,
                        DIFFUSE_RESAMPLE_BILINEAR);
      fill_layer (layer, width, height, job->channels, cell);
      run->new_layers = g_list_append (run->new_layers, layer);
    }
  gimp_image_undo_group_end (run->image);
  run->new_image = run->image;
  return TRUE;
}

/* Inpaint: the window back by the plan (diffuse_inpaint_from_run, as
 * the CLI), written through the shadow buffer in one undo step.  GIMP's
 * merge blends the shadow with the layer by the selection m; where m > 0
 * the shadow holds s = (result − (1 − m)·original) / m, so that the
 * blend m·s + (1 − m)·original gives the result itself (s = result where
 * m = 1); where m = 0 the layer is left as it is. */
static gboolean
finish_inpaint (DpRun *run, DpJob *job)
{
  gint c = job->channels;
  gsize hw = (gsize) run->width * run->height;
  g_autofree float *out = g_new (float, (gsize) c *hw);
  g_autofree float *alpha = NULL;
  gboolean model_alpha = c == 2 || c == 4;
  GeglBuffer *shadow;

  diffuse_inpaint_from_run (&run->plan, job->out, run->window, run->window_mask,
                            c, out);
  for (gsize j = 0; j < (gsize) c * hw; j++)
    {
      float m = run->window_mask[j % hw];

      if (m > 0.0f && m < 1.0f)
        out[j] = (out[j] - (1.0f - m) * run->window[j]) / m;
    }

  gimp_image_undo_group_start (run->image);
  if (model_alpha && gimp_item_is_layer (GIMP_ITEM (run->drawable)) &&
      !gimp_drawable_has_alpha (run->drawable))
    gimp_layer_add_alpha (GIMP_LAYER (run->drawable));
  if (!model_alpha && gimp_drawable_has_alpha (run->drawable))
    alpha = dp_pixels_read_alpha (run->drawable, run->x, run->y, run->width,
                                  run->height);
  shadow = gimp_drawable_get_shadow_buffer (run->drawable);
  dp_pixels_write (shadow, run->drawable, run->x, run->y, run->width,
                   run->height, c, out, alpha);
  gegl_buffer_flush (shadow);
  g_object_unref (shadow);
  gimp_drawable_merge_shadow (run->drawable, TRUE);
  gimp_drawable_update (run->drawable, run->x, run->y, run->width, run->height);
  gimp_image_undo_group_end (run->image);
  return TRUE;
}

/* A contact sheet: one cell per guidance value (scaled up by a whole
 * factor with nearest neighbours, so the pixels stay the model's), each
 * labelled with its value by a text layer. */
static gboolean
finish_sweep (DpRun *run, const DpSettings *s, DpJob *job)
{
  const gint margin = 8, label_h = 22;
  gsize n = (gsize) job->channels * job->height * job->width;
  gint factor = MAX (1, MIN (8, (128 + MAX (job->height, job->width) - 1) /
                                    MAX (job->height, job->width)));
  gint cw = job->width * factor, ch = job->height * factor;
  gint width = job->n_runs * (cw + margin) + margin;
  gint height = ch + label_h + 2 * margin;
  g_autofree gchar *title = class_title (run, job->params.class_label);
  g_autofree float *cell = g_new (float, (gsize) job->channels *ch *cw);
  GimpImage *image;
  GimpLayer *background;
  GimpFont *font;
  gint r;

  image = gimp_image_new (width, height, GIMP_RGB);
  gimp_image_undo_disable (image);
  background = gimp_layer_new (image, "Background", width, height,
                               GIMP_RGB_IMAGE, 100.0, GIMP_LAYER_MODE_NORMAL);
  gimp_image_insert_layer (image, background, NULL, 0);
  gimp_drawable_fill (GIMP_DRAWABLE (background), GIMP_FILL_WHITE);
  font = gimp_context_get_font ();

  for (r = 0; r < job->n_runs; r++)
    {
      g_autofree gchar *name = g_strdup_printf (
          "%s, seed %d, guidance %g", title, s->seed, job->guidance[r]);
      g_autofree gchar *label = g_strdup_printf ("w = %g", job->guidance[r]);
      GimpLayer *layer = gimp_layer_new (image, name, cw, ch,
                                         layer_type (GIMP_RGB, job->channels),
                                         100.0, GIMP_LAYER_MODE_NORMAL);
      GimpTextLayer *text;
      gint x = margin + r * (cw + margin);

      gimp_image_insert_layer (image, layer, NULL, 0);
      gimp_layer_set_offsets (layer, x, margin);
      diffuse_resample (job->out + n * r, job->channels, job->height,
                        job->width, cell, ch, cw, DIFFUSE_RESAMPLE_NEAREST);
      fill_layer (layer, cw, ch, job->channels, cell);

      text = font != NULL ? gimp_text_layer_new (image, label, font, 14.0,
                                                 gimp_unit_pixel ())
                          : NULL;
      if (text != NULL)
        {
          gimp_image_insert_layer (image, GIMP_LAYER (text), NULL, 0);
          gimp_layer_set_offsets (GIMP_LAYER (text), x, margin + ch + 4);
        }
    }
  gimp_image_undo_enable (image);
  run->new_image = image;
  if (run->run_mode == GIMP_RUN_INTERACTIVE)
    gimp_display_new (image);
  return TRUE;
}

gboolean
dp_run_finish (DpRun *run, const DpSettings *s, DpJob *job, GError **error)
{
  gboolean ok = FALSE;

  switch (run->kind)
    {
    case DP_GENERATE:
      ok = finish_generate (run, s, job);
      break;
    case DP_IMG2IMG:
      ok = finish_img2img (run, job);
      break;
    case DP_SWEEP:
      ok = s->as_layers ? finish_sweep_layers (run, job)
                        : finish_sweep (run, s, job);
      break;
    case DP_INPAINT:
      ok = finish_inpaint (run, job);
      break;
    }
  if (!ok && error != NULL && *error == NULL)
    g_set_error (error, GIMP_PLUG_IN_ERROR, 0, "Could not write the result");
  if (run->run_mode != GIMP_RUN_NONINTERACTIVE)
    gimp_displays_flush ();
  return ok;
}

void
dp_run_clear (DpRun *run)
{
  diffuse_model_free (run->model);
  run->model = NULL;
  g_clear_pointer (&run->model_path, g_free);
  g_clear_pointer (&run->classifier, diffuse_model_free);
  g_clear_pointer (&run->classifier_path, g_free);
  g_clear_pointer (&run->window, g_free);
  g_clear_pointer (&run->window_mask, g_free);
  g_list_free (run->new_layers);
  run->new_layers = NULL;
}
