/* Sampling with a model: parameter validation, and the model
 * denoiser (UNet + classifier-free guidance) handed to diffuse_sample_with.
 *
 * Guidance (seed "Classifier-Free Guidance"; Ho & Salimans 2021 eq. 6):
 *   ε̄ = (1 + w)·ε(x_t, y) − w·ε(x_t, ∅)
 * on the ε channels only; a learn_sigma model's variance channels come from
 * the conditional pass.  Many tools call s = 1 + w the "guidance scale"
 * (ε̄ = ε(∅) + s·(ε(y) − ε(∅))): our w = 0 is s = 1 (no guidance), and a
 * scale of 3 is w = 2.  The conditional and null passes run as ONE batch of
 * 2·count through one DiffuseUNet.
 *
 * With params->null_model, ε(x_t, ∅) comes from that second network
 * instead (guided-diffusion pairs its ImageNet class models, which have no
 * null class, with separate unconditional models): its own DiffuseUNet,
 * batch count, its own timestep rescaling, no label (or its null class),
 * and only its first C output channels.  Both must share T and the β
 * schedule, so that t and x_t mean the same to both.
 *
 * params->n_threads goes to the run's own DiffuseUNet states: two runs
 * in one process may use different counts at the same time.
 */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"
#include "gaussian-diffusion.h"

/* Whether `steps` (no respacing string) is spaced as "ddimN": classifier
 * guidance with the DDIM sampler.  guided-diffusion samples classifier-
 * guided DDIM with timestep_respacing "ddimN" (its README: --use_ddim True
 * --timestep_respacing ddim25), range(0, T, stride), which never holds
 * t = T−1.  The even spacing does, and on a cosine schedule ᾱ_{T−1} is
 * tiny (2.4e-9 at T = 1000): condition_score's ε shift recomputes x̂0
 * unclipped, x̂0 moves by (1−ᾱ)/√ᾱ·s·∇ = 2·10⁴·s·∇, and the DDIM step to
 * the next kept t (979 of 50 even steps, √ᾱ = 0.031) carries ~632·s·∇ of
 * it into x_t, from a classifier that sees pure noise there (issue 11).  DDPM (condition_mean
 * adds Σ·s·∇, Σ ≤ 1) and runs without a classifier keep the even spacing. */
static gboolean
steps_as_ddim (const DiffuseSampleParams *params)
{
  return (params->respacing == NULL || params->respacing[0] == '\0') &&
         params->classifier != NULL && params->classifier_scale > 0.0 &&
         params->sampler == DIFFUSE_SAMPLER_DDIM;
}

static DiffuseSchedule *
schedule_for (const DiffuseSampleParams *params, const DiffuseModelConfig *cfg,
              GError **error)
{
  gint T = cfg->diffusion_steps;

  /* an explicit respacing string wins */
  if (params->respacing != NULL && params->respacing[0] != '\0')
    return diffuse_schedule_new (cfg->noise_schedule, T, params->respacing,
                                 error);
  /* classifier-guided DDIM: `steps` as "ddimN" (steps_as_ddim).  Where no
   * stride gives exactly N steps guided-diffusion's space_timesteps raises;
   * so do we, in validation before any work, naming the nearest step
   * counts that work (rather than silently running another count). */
  if (steps_as_ddim (params) && params->steps >= 1 && params->steps <= T)
    {
      gint below = params->steps, above = params->steps;

      if (!diffuse__ddim_stride (T, params->steps))
        {
          g_autofree char *use = NULL;

          while (below >= 1 && !diffuse__ddim_stride (T, below))
            below--;
          while (above <= T && !diffuse__ddim_stride (T, above))
            above++;
          if (below >= 1 && above <= T)
            use = g_strdup_printf ("use steps = %d or %d, or give a respacing",
                                   below, above);
          else if (below >= 1 || above <= T)
            use = g_strdup_printf ("use steps = %d, or give a respacing",
                                   below >= 1 ? below : above);
          else
            use = g_strdup ("give a respacing");
          diffuse__invalid (
              error,
              "steps = %d: with a classifier, DDIM spaces the steps as "
              "guided-diffusion's \"ddim%d\" (an integer stride from t = 0, "
              "skipping t = %d, where the classifier's gradient blows up), "
              "but no integer stride takes exactly %d of the model's %d "
              "steps; %s",
              params->steps, params->steps, T - 1, params->steps, T, use);
          return NULL;
        }
      g_autofree char *ddim = g_strdup_printf ("ddim%d", params->steps);
      return diffuse_schedule_new (cfg->noise_schedule, T, ddim, error);
    }
  /* else `steps` evenly spread, ending at T−1 (diffuse__schedule_new_steps) */
  return diffuse__schedule_new_steps (cfg->noise_schedule, T, params->steps,
                                      error);
}

/* The null model must read x_t and t as the model does: same channels,
 * same T and β schedule (so ᾱ_t, hence the noise level of x_t, agree),
 * and the run's size must suit its UNet as well. */
static gboolean
check_null_model (const DiffuseModel *null_model, const DiffuseModelConfig *cfg,
                  gint h, gint w, GError **error)
{
  const DiffuseModelConfig *nc = diffuse_model_get_config (null_model);

  if (nc->in_channels != cfg->in_channels)
    return diffuse__invalid (
        error,
        "the null model has %d input channels, the model %d; "
        "they must match",
        nc->in_channels, cfg->in_channels);
  if (nc->diffusion_steps != cfg->diffusion_steps)
    return diffuse__invalid (
        error,
        "the null model has diffusion_steps = %d, the model %d; "
        "they must match",
        nc->diffusion_steps, cfg->diffusion_steps);
  if (nc->noise_schedule != cfg->noise_schedule)
    return diffuse__invalid (
        error,
        "the null model has a %s noise schedule, the model a %s "
        "one; they must match",
        diffuse_schedule_kind_to_string (nc->noise_schedule),
        diffuse_schedule_kind_to_string (cfg->noise_schedule));
  if (nc->num_classes > 0 && nc->null_class < 0)
    return diffuse__invalid (
        error, "the null model is class-conditional without a null "
               "class; it must be unconditional or have a null class");
  if (!diffuse_model_check_size (null_model, h, w, error))
    {
      g_prefix_error (error, "null model: ");
      return FALSE;
    }
  return TRUE;
}

static gboolean check_classifier (const DiffuseModel *classifier,
                                  const DiffuseModelConfig *cfg,
                                  const DiffuseSampleParams *params, gint h,
                                  gint w, GError **error);

gboolean
diffuse_sample_params_validate (const DiffuseSampleParams *params,
                                const DiffuseModel *model, GError **error)
{
  g_return_val_if_fail (params != NULL, FALSE);
  g_return_val_if_fail (model != NULL, FALSE);

  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);
  gint T = cfg->diffusion_steps;
  gint h = params->height > 0 ? params->height : cfg->image_size;
  gint w = params->width > 0 ? params->width : cfg->image_size;

  if (cfg->model_type != DIFFUSE_MODEL_UNET)
    return diffuse__invalid (
        error, "the model is a classifier, not a diffusion UNet; give "
               "it as the classifier");
  /* every setting of the table against its range (settings-table.c),
   * then what depends on the model */
  if (!diffuse_settings_validate (params, error))
    return FALSE;
  if (params->respacing == NULL || params->respacing[0] == '\0')
    {
      if (params->steps > T)
        return diffuse__invalid (error,
                                 "steps = %d is out of range: the model has "
                                 "diffusion_steps = %d, so 1..%d",
                                 params->steps, T, T);
      if (steps_as_ddim (params))
        {
          g_autoptr (DiffuseSchedule) s = schedule_for (params, cfg, error);

          if (s == NULL)
            return FALSE;
        }
    }
  else
    {
      g_autoptr (DiffuseSchedule) s = schedule_for (params, cfg, error);

      if (s == NULL)
        return FALSE;
    }
  if (params->height < 0 || params->width < 0)
    return diffuse__invalid (
        error,
        "size %d x %d (height x width) is negative; 0 means the "
        "model's image_size",
        params->height, params->width);
  if (!diffuse_model_check_size (model, h, w, error))
    return FALSE;
  if (params->n_threads < 0)
    return diffuse__invalid (error, "n_threads = %d is negative",
                             params->n_threads);
  {
    g_autoptr (DiffuseSchedule) s = schedule_for (params, cfg, error);

    if (s == NULL || !diffuse__inpaint_check (
                         params, diffuse_schedule_get_n_steps (s), h, w, error))
      return FALSE;
  }
  if (!diffuse__check_sample_inputs (
          params, (gsize) params->count * cfg->in_channels * h * w, error))
    return FALSE;

  if (params->variance == DIFFUSE_VARIANCE_LEARNED && !cfg->learn_sigma)
    return diffuse__invalid (
        error, "variance \"learned\" needs a learn_sigma model; this "
               "model predicts only ε (use fixed-small or fixed-large)");

  if (params->null_model != NULL &&
      !check_null_model (params->null_model, cfg, h, w, error))
    return FALSE;

  if (params->classifier != NULL &&
      !check_classifier (params->classifier, cfg, params, h, w, error))
    return FALSE;

  if (cfg->num_classes == 0 && params->classifier != NULL)
    {
      /* an unconditional model steered by the classifier alone: the label
       * is the classifier's */
      if (params->guidance != 0.0 && params->null_model == NULL)
        return diffuse__invalid (
            error, "guidance needs a class-conditional model with a "
                   "null class, or a separate null model; this model is "
                   "unconditional");
    }
  else if (cfg->num_classes == 0)
    {
      if (params->class_label != -1)
        return diffuse__invalid (
            error, "class %d given, but the model is unconditional",
            params->class_label);
      /* with a null_model, an unconditional model can be guided too
       * (away from the other model's predictions) */
      if (params->guidance != 0.0 && params->null_model == NULL)
        return diffuse__invalid (
            error, "guidance needs a class-conditional model with a "
                   "null class, or a separate null model; this model is "
                   "unconditional");
    }
  else
    {
      if (params->class_label < -1 || params->class_label >= cfg->num_classes)
        return diffuse__invalid (
            error,
            "class %d is out of range (0..%d, or -1 for the "
            "null class)",
            params->class_label, cfg->num_classes - 1);
      if (params->class_label == -1 && cfg->null_class < 0)
        return diffuse__invalid (error,
                                 "the model has no null class: choose a class "
                                 "label (0..%d)",
                                 cfg->num_classes - 1);
      if (params->guidance != 0.0 && cfg->null_class < 0 &&
          params->null_model == NULL)
        return diffuse__invalid (
            error,
            "guidance = %g needs the model's null class, but "
            "the model has no null class; give a separate "
            "unconditional model as the null model",
            params->guidance);
    }
  return TRUE;
}

/* ---- classifier guidance ----------------------------------------------- */

/* The classifier must read x_t as the model does (same channels, a size
 * it takes) and have the label; when it records the diffusion it was
 * trained for, that must be the model's. */
static gboolean
check_classifier (const DiffuseModel *classifier, const DiffuseModelConfig *cfg,
                  const DiffuseSampleParams *params, gint h, gint w,
                  GError **error)
{
  const DiffuseModelConfig *cc = diffuse_model_get_config (classifier);

  if (!diffuse_classifier_check_model (cc, cfg, error) ||
      !diffuse_classifier_check_size (cc, h, w, error))
    return FALSE;
  if (params->class_label < 0)
    return diffuse__invalid (error,
                             "classifier guidance needs a class label (the "
                             "classifier has classes 0..%d)",
                             cc->num_classes - 1);
  if (params->class_label >= cc->num_classes)
    return diffuse__invalid (error,
                             "class %d: the classifier has only %d classes "
                             "(0..%d)",
                             params->class_label, cc->num_classes,
                             cc->num_classes - 1);
  return TRUE;
}

gboolean
diffuse_classifier_check_model (const DiffuseModelConfig *cc,
                                const DiffuseModelConfig *cfg, GError **error)
{
  g_return_val_if_fail (cc != NULL && cfg != NULL, FALSE);

  if (cc->model_type != DIFFUSE_MODEL_CLASSIFIER)
    return diffuse__invalid (
        error, "the classifier is a diffusion UNet, not a classifier");
  if (cfg->model_type != DIFFUSE_MODEL_UNET)
    return diffuse__invalid (
        error, "the model is a classifier, not a diffusion UNet; give "
               "it as the classifier");
  if (cc->in_channels != cfg->in_channels)
    return diffuse__invalid (
        error,
        "the classifier takes %d channels, the model makes %d; "
        "they must match",
        cc->in_channels, cfg->in_channels);
  if (cc->diffusion_steps > 0 && (cc->diffusion_steps != cfg->diffusion_steps ||
                                  cc->noise_schedule != cfg->noise_schedule))
    return diffuse__invalid (
        error,
        "the classifier was trained for a %s schedule of %d "
        "steps, the model has a %s one of %d; they must match",
        diffuse_schedule_kind_to_string (cc->noise_schedule),
        cc->diffusion_steps,
        diffuse_schedule_kind_to_string (cfg->noise_schedule),
        cfg->diffusion_steps);
  return TRUE;
}

gboolean
diffuse_classifier_check_size (const DiffuseModelConfig *cc, gint height,
                               gint width, GError **error)
{
  g_return_val_if_fail (cc != NULL, FALSE);

  if (cc->pool == DIFFUSE_POOL_ATTENTION &&
      (height != cc->image_size || width != cc->image_size))
    return diffuse__invalid (
        error,
        "the classifier's attention pool takes %dx%d images "
        "only; this run is %dx%d",
        cc->image_size, cc->image_size, width, height);
  if (height % (1 << (cc->n_levels - 1)) != 0 ||
      width % (1 << (cc->n_levels - 1)) != 0)
    return diffuse__invalid (
        error,
        "the classifier needs sizes that are multiples of %d; "
        "this run is %dx%d",
        1 << (cc->n_levels - 1), width, height);
  return TRUE;
}

typedef struct
{
  DiffuseClassifier *clf;
  double scale;   /* s */
  double t_scale; /* the model's timestep rescaling */
  float *t_in;    /* [count] */
  gint *labels;   /* [count] */
  gsize n;        /* count·C·H·W */
} ClassifierCond;

/* s·∇x log p(y | x_t), guided-diffusion's cond_fn: the classifier sees
 * the timestep as the model does (_scale_timesteps of the original t) */
static gboolean
classifier_cond (gpointer user_data, gint batch, const float *x_t,
                 gint t_index G_GNUC_UNUSED, double t_model, float *grad_out,
                 GError **error)
{
  ClassifierCond *c = user_data;

  for (gint b = 0; b < batch; b++)
    c->t_in[b] = (float) (t_model * c->t_scale);
  if (!diffuse_classifier_grad (c->clf, batch, x_t, c->t_in, c->labels, NULL,
                                grad_out, error))
    return FALSE;
  for (gsize j = 0; j < c->n; j++)
    grad_out[j] = (float) (c->scale * grad_out[j]);
  return TRUE;
}

/* ---- the model denoiser ------------------------------------------------ */

typedef struct
{
  DiffuseUNet *unet;
  const DiffuseModelConfig *cfg;
  gboolean guided; /* run conditional + null as one batch of 2·count */
  double guidance; /* w */
  double t_scale;  /* 1000/T with rescale_timesteps, else 1 */
  gint label;      /* the conditional label (0 for unconditional models) */
  gint hw;         /* H·W */
  float *x_in;     /* [batch·C·HW]: x_t, twice when guided */
  float *t_in;     /* [batch] */
  gint *labels;    /* [batch] */
  float *net_out;  /* [batch·out_C·HW] */
  /* params->null_model's pass (batch count), when given */
  DiffuseUNet *null_unet;
  const DiffuseModelConfig *null_cfg;
  double null_t_scale;
  gint null_label; /* its null class, 0 when unconditional */
  float *null_out; /* [count·null out_C·HW] */
} ModelDenoiser;

static gboolean
model_denoise (gpointer user_data, gint count, const float *x_t, gint t_index,
               double t_model, float *eps_out, float *var_out, GError **error)
{
  ModelDenoiser *d = user_data;
  gint c = d->cfg->in_channels, oc = d->cfg->out_channels;
  gsize img = (gsize) c * d->hw, out_img = (gsize) oc * d->hw;
  gboolean one_batch = d->guided && d->null_unet == NULL;
  gint batch = one_batch ? 2 * count : count;

  (void) t_index;
  memcpy (d->x_in, x_t, count * img * sizeof (float));
  if (one_batch)
    memcpy (d->x_in + count * img, x_t, count * img * sizeof (float));
  for (gint b = 0; b < batch; b++)
    {
      d->t_in[b] = (float) (t_model * d->t_scale);
      d->labels[b] = b < count ? d->label : d->cfg->null_class;
    }

  if (!diffuse_unet_forward (d->unet, batch, d->x_in, d->t_in, d->labels,
                             d->net_out, error))
    return FALSE;

  /* ε(x_t, ∅) from the null model: the same x_t, its own t rescaling */
  if (d->guided && d->null_unet != NULL)
    {
      for (gint b = 0; b < count; b++)
        {
          d->t_in[b] = (float) (t_model * d->null_t_scale);
          d->labels[b] = d->null_label;
        }
      if (!diffuse_unet_forward (d->null_unet, count, d->x_in, d->t_in,
                                 d->labels, d->null_out, error))
        return FALSE;
    }

  for (gint k = 0; k < count; k++)
    {
      const float *cond = d->net_out + k * out_img;
      float *eps = eps_out + k * img;

      if (d->guided)
        {
          /* the null model's ε channels come first, as the model's do */
          const float *uncond =
              d->null_unet != NULL
                  ? d->null_out + k * (gsize) d->null_cfg->out_channels * d->hw
                  : d->net_out + (count + k) * out_img;

          diffuse__guided_eps (cond, uncond, d->guidance, img, eps);
        }
      else
        memcpy (eps, cond, img * sizeof (float));
      /* learned-sigma channels follow the ε channels (guided-diffusion's
       * th.split(model_output, C, dim=1)) */
      if (var_out != NULL)
        memcpy (var_out + k * img, cond + img, img * sizeof (float));
    }
  return TRUE;
}

gboolean
diffuse_sample_estimate (const DiffuseModel *model,
                         const DiffuseSampleParams *params,
                         DiffuseRunEstimate *estimate, GError **error)
{
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (params != NULL, FALSE);
  g_return_val_if_fail (estimate != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!diffuse_sample_params_validate (params, model, error))
    return FALSE;

  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);
  if (cfg->model_type != DIFFUSE_MODEL_UNET ||
      (params->null_model != NULL &&
       diffuse_model_get_config (params->null_model)->model_type !=
           DIFFUSE_MODEL_UNET))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL,
                   "a classifier is not a diffusion model: it cannot sample");
      return FALSE;
    }
  g_autoptr (DiffuseSchedule) schedule = schedule_for (params, cfg, error);
  if (schedule == NULL)
    return FALSE;
  gint h = params->height > 0 ? params->height : cfg->image_size;
  gint w = params->width > 0 ? params->width : cfg->image_size;
  guint64 count = (guint64) params->count;
  guint64 hw = (guint64) h * (guint64) w;
  guint64 img = (guint64) cfg->in_channels * hw;
  gint label = cfg->num_classes == 0      ? 0
               : params->class_label >= 0 ? params->class_label
                                          : cfg->null_class;
  gboolean guided = params->guidance > 0.0 &&
                    (params->null_model != NULL || label != cfg->null_class);
  gboolean separate = guided && params->null_model != NULL;
  guint64 batch = guided && !separate ? 2 * count : count;
  guint64 steps = params->init_image != NULL
                      ? (guint64) diffuse_schedule_index_for_strength (
                            schedule, params->strength) +
                            1
                      : (guint64) diffuse_schedule_get_n_steps (schedule);
  gboolean stochastic =
      params->sampler == DIFFUSE_SAMPLER_DDPM || params->eta > 0.0;

  memset (estimate, 0, sizeof *estimate);
  /* as diffuse_sample allocates: the network's scratch, the denoiser's
   * input, timestep, label and output buffers, the sampler's x, ε, x̂0
   * (+ noise, + variance) and the caller's output */
  estimate->bytes =
      diffuse__unet_estimate_bytes (model, (gint) batch, h, w) +
      4 * (batch * img + 2 * batch + batch * cfg->out_channels * hw) +
      4 * count * img *
          (3 + (stochastic ? 1 : 0) + (cfg->learn_sigma ? 1 : 0)) +
      4 * count * img;
  estimate->weight_bytes = 4 * diffuse_model_get_n_params (model);
  estimate->flops_per_eval = diffuse__unet_flops (model, h, w);
  estimate->n_evals = count * steps * (guided ? 2 : 1);
  estimate->flops =
      (double) estimate->flops_per_eval * (double) estimate->n_evals;
  if (separate)
    {
      const DiffuseModelConfig *ncfg =
          diffuse_model_get_config (params->null_model);

      estimate->bytes += diffuse__unet_estimate_bytes (params->null_model,
                                                       (gint) count, h, w) +
                         4 * count * ncfg->out_channels * hw;
      estimate->weight_bytes +=
          4 * diffuse_model_get_n_params (params->null_model);
      /* half the evaluations are the null model's */
      estimate->flops =
          (double) count * steps *
          ((double) estimate->flops_per_eval +
           (double) diffuse__unet_flops (params->null_model, h, w));
    }
  if (params->classifier != NULL && params->classifier_scale > 0.0)
    {
      /* classifier guidance, as diffuse_sample runs it: a classifier state
       * for count images, its timestep and label arrays, the sampler's
       * gradient buffer; each step a forward pass and the gradient with
       * respect to the input (as much again: every layer's input
       * gradient, no weight gradients) */
      estimate->bytes +=
          diffuse__classifier_estimate_bytes (params->classifier, (gint) count,
                                              h, w, params->n_threads) +
          4 * 2 * count + 4 * count * img;
      estimate->weight_bytes +=
          4 * diffuse_model_get_n_params (params->classifier);
      estimate->flops +=
          (double) count * steps * 2.0 *
          (double) diffuse__classifier_flops (params->classifier, h, w);
    }
  return TRUE;
}

gboolean
diffuse_sample (const DiffuseModel *model, const DiffuseSampleParams *params,
                float *out, DiffuseSampleInfo *info, GError **error)
{
  g_return_val_if_fail (model != NULL, FALSE);
  g_return_val_if_fail (params != NULL, FALSE);
  g_return_val_if_fail (out != NULL, FALSE);
  g_return_val_if_fail (error == NULL || *error == NULL, FALSE);

  if (!diffuse_sample_params_validate (params, model, error))
    return FALSE;

  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);
  gint h = params->height > 0 ? params->height : cfg->image_size;
  gint w = params->width > 0 ? params->width : cfg->image_size;
  gint count = params->count;
  ModelDenoiser d = { 0 };
  gboolean ok = FALSE;

  d.cfg = cfg;
  d.hw = h * w;
  ClassifierCond cc = { 0 };
  DiffuseSampleParams run = *params;

  d.label = cfg->num_classes == 0      ? 0
            : params->class_label >= 0 ? params->class_label
                                       : cfg->null_class;
  /* guiding the null class with itself changes nothing: skip the 2nd pass
   * (a separate null model always gives a different ε(x, ∅)) */
  d.guided = params->guidance > 0.0 &&
             (params->null_model != NULL || d.label != cfg->null_class);
  d.guidance = params->guidance;
  d.t_scale = cfg->rescale_timesteps ? 1000.0 / cfg->diffusion_steps : 1.0;
  if (d.guided && params->null_model != NULL)
    {
      d.null_cfg = diffuse_model_get_config (params->null_model);
      d.null_t_scale = d.null_cfg->rescale_timesteps
                           ? 1000.0 / d.null_cfg->diffusion_steps
                           : 1.0;
      d.null_label = d.null_cfg->num_classes > 0 ? d.null_cfg->null_class : 0;
    }

  if (cfg->out_channels < (cfg->learn_sigma ? 2 : 1) * cfg->in_channels)
    {
      g_set_error (
          error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL,
          "model has out_channels = %d, expected %d (in_channels = %d%s)",
          cfg->out_channels, (cfg->learn_sigma ? 2 : 1) * cfg->in_channels,
          cfg->in_channels, cfg->learn_sigma ? ", learn_sigma" : "");
      return FALSE;
    }
  g_autoptr (DiffuseSchedule) schedule = schedule_for (params, cfg, error);
  if (schedule == NULL)
    return FALSE;

  gint batch = d.guided && d.null_cfg == NULL ? 2 * count : count;
  gsize img = (gsize) cfg->in_channels * d.hw;
  d.unet = diffuse_unet_new (model, batch, h, w, params->n_threads, error);
  if (d.unet == NULL)
    return FALSE;
  if (!diffuse_unet_set_precision (d.unet, params->precision, error))
    goto out;
  /* seamless tiles: every convolution wraps around */
  diffuse_unet_set_tile (d.unet, params->tile);
  if (d.null_cfg != NULL)
    {
      d.null_unet = diffuse_unet_new (params->null_model, count, h, w,
                                      params->n_threads, error);
      if (d.null_unet == NULL ||
          !diffuse_unet_set_precision (d.null_unet, params->precision, error))
        {
          g_prefix_error (error, "null model: ");
          goto out;
        }
      diffuse_unet_set_tile (d.null_unet, params->tile);
      d.null_out = g_try_malloc ((gsize) count * d.null_cfg->out_channels *
                                 d.hw * sizeof (float));
    }
  d.x_in = g_try_malloc ((gsize) batch * img * sizeof (float));
  d.t_in = g_try_malloc ((gsize) batch * sizeof (float));
  d.labels = g_try_malloc ((gsize) batch * sizeof (gint));
  d.net_out =
      g_try_malloc ((gsize) batch * cfg->out_channels * d.hw * sizeof (float));
  if (d.x_in == NULL || d.t_in == NULL || d.labels == NULL ||
      d.net_out == NULL || (d.null_cfg != NULL && d.null_out == NULL))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "cannot allocate the denoiser's buffers for a batch of %d",
                   batch);
      goto out;
    }

  if (params->classifier != NULL && params->classifier_scale > 0.0)
    {
      cc.clf = diffuse_classifier_new (params->classifier, count, h, w,
                                       params->n_threads, error);
      if (cc.clf == NULL ||
          !diffuse_classifier_set_precision (cc.clf, params->precision, error))
        {
          g_prefix_error (error, "classifier: ");
          goto out;
        }
      cc.scale = params->classifier_scale;
      cc.t_scale = d.t_scale;
      cc.n = (gsize) count * img;
      cc.t_in = g_new (float, count);
      cc.labels = g_new (gint, count);
      for (gint b = 0; b < count; b++)
        cc.labels[b] = params->class_label;
      run.cond = classifier_cond;
      run.cond_data = &cc;
    }

  ok = diffuse_sample_with (schedule, model_denoise, &d, cfg->learn_sigma, &run,
                            count, cfg->in_channels, h, w, out, info, error);

out:
  diffuse_classifier_free (cc.clf);
  g_free (cc.t_in);
  g_free (cc.labels);
  g_free (d.x_in);
  g_free (d.t_in);
  g_free (d.labels);
  g_free (d.net_out);
  g_free (d.null_out);
  diffuse_unet_free (d.null_unet);
  diffuse_unet_free (d.unet);
  return ok;
}
