/* One sampling job of the plug-in: one or more diffuse_sample runs (a
 * guidance sweep is one run per value), with progress and the latest
 * predicted x0 shared with the main thread.  Nothing here touches GIMP,
 * so the job can run on a worker thread. */
#ifndef DP_JOB_H
#define DP_JOB_H

#include "diffuse.h"

G_BEGIN_DECLS

typedef struct _DpJob DpJob;

/* Called on the sampling thread after each step (batch runs use it to
 * drive GIMP's progress bar from the main thread). */
typedef void (*DpJobStepFunc) (DpJob *job, double fraction, gpointer user_data);

struct _DpJob
{
  const DiffuseModel *model;    /* borrowed */
  DiffuseSampleParams params;   /* progress/user_data are set by the job */
  gint channels, height, width; /* of one sample */
  gint count;                   /* samples per run */
  gint n_runs;                  /* sweep: one run per guidance value */
  double *guidance;             /* [n_runs], or NULL: params.guidance */
  float *init;                  /* img2img input [count, C, H, W] or NULL */
  float *mask;                  /* inpaint mask [H, W] or NULL */
  float *out;                   /* [n_runs * count, C, H, W] */
  DiffuseSampleInfo info;       /* of the last run */

  DpJobStepFunc step_func;
  gpointer step_data;

  /* shared with the main thread, under lock */
  GMutex lock;
  double fraction;
  gint run_index;
  gint step, n_steps; /* of the current run */
  float *preview;     /* latest x0 [count, C, H, W] */
  gboolean preview_new;
  gint cancel; /* atomic: 1 = stop at the next step */
};

DpJob *dp_job_new (const DiffuseModel *model, const DiffuseSampleParams *params,
                   gint count, gint channels, gint height, gint width,
                   gint n_runs, const double *guidance);
void dp_job_free (DpJob *job);
gboolean dp_job_run (DpJob *job, GError **error);
void dp_job_cancel (DpJob *job);
/* Copies the latest preview into dst (count*C*H*W floats) when there is a
 * new one; returns the progress fraction in *fraction and a line like
 * "Step 12 of 50" in *text (free it). */
gboolean dp_job_take_preview (DpJob *job, float *dst, double *fraction,
                              gchar **text);

/* How long the job will take, before it runs: dp_job_time_eval times one
 * network evaluation of one image at the job's size and precision (a
 * quick run on zeros, the second of two, so that first-touch costs and
 * the making of bf16 weights are left out), and
 * dp_job_estimate_seconds multiplies that by the evaluations the job
 * makes (steps, images, x2 with guidance: diffuse_sample_estimate), a
 * guiding classifier's forward and gradient passes counted as the share of
 * an evaluation their operations are. */
gboolean dp_job_time_eval (const DpJob *job, double *seconds, GError **error);
gboolean dp_job_estimate_seconds (const DpJob *job, double eval_seconds,
                                  double *seconds, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DpJob, dp_job_free)

G_END_DECLS

#endif /* DP_JOB_H */
