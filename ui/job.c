/* Running a DpJob: see job.h.  The progress callback copies the
 * predicted x0 under the job's lock and polls the cancel flag, so a
 * cancel takes effect within one sampling step. */
#include <string.h>

#include "job.h"

DpJob *
dp_job_new (const DiffuseModel *model, const DiffuseSampleParams *params,
            gint count, gint channels, gint height, gint width, gint n_runs,
            const double *guidance)
{
  DpJob *job = g_new0 (DpJob, 1);
  gsize n = (gsize) count * channels * height * width;

  job->model = model;
  job->params = *params;
  job->count = count;
  job->channels = channels;
  job->height = height;
  job->width = width;
  job->n_runs = MAX (1, n_runs);
  if (guidance != NULL)
    job->guidance = g_memdup2 (guidance, sizeof (double) * job->n_runs);
  job->out = g_new0 (float, n * job->n_runs);
  job->preview = g_new0 (float, n);
  g_mutex_init (&job->lock);
  return job;
}

void
dp_job_free (DpJob *job)
{
  if (job == NULL)
    return;
  g_free (job->guidance);
  g_free (job->init);
  g_free (job->mask);
  g_free (job->out);
  g_free (job->preview);
  g_mutex_clear (&job->lock);
  g_free (job);
}

void
dp_job_cancel (DpJob *job)
{
  g_atomic_int_set (&job->cancel, 1);
}

static gboolean
job_progress (gint step, gint n_steps, const float *x0_pred, gint count,
              gint channels, gint height, gint width, gpointer user_data)
{
  DpJob *job = user_data;
  /* step counts 1..n_steps (sampler.c) */
  double within =
      n_steps > 0 ? (double) CLAMP (step, 0, n_steps) / n_steps : 1.0;
  double fraction = (job->run_index + within) / job->n_runs;

  g_mutex_lock (&job->lock);
  if (x0_pred != NULL && count == job->count && channels == job->channels &&
      height == job->height && width == job->width)
    {
      memcpy (job->preview, x0_pred,
              sizeof (float) * count * channels * height * width);
      job->preview_new = TRUE;
    }
  job->fraction = fraction;
  job->step = step;
  job->n_steps = n_steps;
  g_mutex_unlock (&job->lock);

  if (job->step_func != NULL)
    job->step_func (job, fraction, job->step_data);

  return g_atomic_int_get (&job->cancel) == 0;
}

gboolean
dp_job_run (DpJob *job, GError **error)
{
  gsize n = (gsize) job->count * job->channels * job->height * job->width;
  gint r;

  for (r = 0; r < job->n_runs; r++)
    {
      DiffuseSampleParams params = job->params;

      if (g_atomic_int_get (&job->cancel))
        {
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_CANCELLED,
                       "Sampling was cancelled");
          return FALSE;
        }
      g_mutex_lock (&job->lock);
      job->run_index = r;
      g_mutex_unlock (&job->lock);

      params.count = job->count;
      params.height = job->height;
      params.width = job->width;
      params.init_image = job->init;
      params.mask = job->mask;
      if (job->guidance != NULL)
        params.guidance = job->guidance[r];
      params.progress = job_progress;
      params.user_data = job;

      if (!diffuse_sample (job->model, &params, job->out + n * r, &job->info,
                           error))
        return FALSE;
    }

  g_mutex_lock (&job->lock);
  job->fraction = 1.0;
  g_mutex_unlock (&job->lock);
  return TRUE;
}

gboolean
dp_job_take_preview (DpJob *job, float *dst, double *fraction, gchar **text)
{
  gboolean fresh;

  g_mutex_lock (&job->lock);
  fresh = job->preview_new;
  if (fresh && dst != NULL)
    memcpy (dst, job->preview,
            sizeof (float) * job->count * job->channels * job->height *
                job->width);
  job->preview_new = FALSE;
  if (fraction != NULL)
    *fraction = job->fraction;
  if (text != NULL)
    {
      if (job->n_steps == 0)
        *text = g_strdup ("Starting...");
      else if (job->n_runs > 1)
        *text = g_strdup_printf ("Image %d of %d, step %d of %d",
                                 job->run_index + 1, job->n_runs, job->step,
                                 job->n_steps);
      else
        *text = g_strdup_printf ("Step %d of %d", job->step, job->n_steps);
    }
  g_mutex_unlock (&job->lock);
  return fresh;
}

gboolean
dp_job_time_eval (const DpJob *job, double *seconds, GError **error)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (job->model);
  g_autoptr (DiffuseUNet) unet = diffuse_unet_new (
      job->model, 1, job->height, job->width, job->params.n_threads, error);
  gsize plane = (gsize) job->height * job->width;
  g_autofree float *x = NULL;
  g_autofree float *out = NULL;
  g_autoptr (GTimer) timer = NULL;
  float t = (float) (cfg->diffusion_steps / 2);
  gint label = cfg->num_classes > 0 ? MAX (0, cfg->null_class) : 0;
  gint i;

  /* at the job's precision: bf16 is about twice as fast as fp32 where the
   * CPU has it, and slower than fp32 where it is emulated */
  if (unet == NULL ||
      !diffuse_unet_set_precision (unet, job->params.precision, error))
    return FALSE;
  x = g_new0 (float, plane * cfg->in_channels);
  out = g_new (float, plane * cfg->out_channels);
  timer = g_timer_new ();
  /* the first pass also touches the scratch memory (and makes the bf16
   * weights): time the second */
  for (i = 0; i < 2; i++)
    {
      g_timer_start (timer);
      if (!diffuse_unet_forward (unet, 1, x, &t, &label, out, error))
        return FALSE;
    }
  *seconds = g_timer_elapsed (timer, NULL);
  return TRUE;
}

gboolean
dp_job_estimate_seconds (const DpJob *job, double eval_seconds, double *seconds,
                         GError **error)
{
  double n_evals = 0.0;
  gint r;

  for (r = 0; r < job->n_runs; r++)
    {
      DiffuseSampleParams params = job->params;
      DiffuseRunEstimate e;

      params.count = job->count;
      params.height = job->height;
      params.width = job->width;
      params.init_image = job->init;
      if (job->guidance != NULL)
        params.guidance = job->guidance[r];
      if (!diffuse_sample_estimate (job->model, &params, &e, error))
        return FALSE;
      /* in evaluations of the timed network: a guiding classifier's
       * and a separate null model's operations count at their share */
      n_evals += e.flops_per_eval > 0 ? e.flops / (double) e.flops_per_eval
                                      : (double) e.n_evals;
    }
  *seconds = eval_seconds * n_evals;
  return TRUE;
}
