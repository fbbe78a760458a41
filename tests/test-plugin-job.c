/* The plug-in's sampling job (ui/job.c, no GIMP in it): a cancel
 * requested during step k stops the run at step k, the preview holds the
 * last predicted x0, and finished runs (one, or one per guidance value of
 * a sweep) equal diffuse_sample called directly. */
#include <math.h>
#include <string.h>

#include "diffuse.h"
#include "job.h"

typedef struct
{
  gint calls;
  gint cancel_at;
} Counter;

static void
count_step (DpJob *job, double fraction, gpointer user_data)
{
  Counter *c = user_data;

  c->calls++;
  g_assert_cmpfloat (fraction, >, 0.0);
  g_assert_cmpfloat (fraction, <=, 1.0);
  if (c->calls == c->cancel_at)
    dp_job_cancel (job);
}

static DiffuseModel *
load_model (void)
{
  const char *dir = g_getenv ("DIFFUSE_TEST_DATA");
  g_autofree gchar *path =
      g_build_filename (dir != NULL ? dir : "tests/data", "golden",
                        "forward-grey-cond.safetensors", NULL);
  GError *error = NULL;
  DiffuseModel *model = diffuse_model_new_from_file (path, &error);

  g_assert_no_error (error);
  return model;
}

static void
base_params (DiffuseSampleParams *p)
{
  diffuse_sample_params_init (p);
  /* unguided (the default is w = 2 for this model, which has a null
   * class): the tests below add guidance where they mean it */
  p->guidance = 0.0;
  p->steps = 12;
  p->seed = 5;
  p->class_label = 2;
  p->height = p->width = 16;
}

static void
test_cancel (void)
{
  g_autoptr (DiffuseModel) model = load_model ();
  DiffuseSampleParams p;
  Counter c = { 0, 4 };
  GError *error = NULL;
  g_autofree float *preview = g_new (float, 2 * 16 * 16);
  g_autofree gchar *text = NULL;
  double fraction = 0.0;
  DpJob *job;

  base_params (&p);
  job = dp_job_new (model, &p, 2, 1, 16, 16, 1, NULL);
  job->step_func = count_step;
  job->step_data = &c;

  g_assert_false (dp_job_run (job, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_CANCELLED);
  g_clear_error (&error);
  /* stopped in the step where the cancel came, not later */
  g_assert_cmpint (c.calls, ==, 4);

  g_assert_true (dp_job_take_preview (job, preview, &fraction, &text));
  g_assert_cmpfloat_with_epsilon (fraction, 4.0 / 12.0, 1e-9);
  g_assert_cmpstr (text, ==, "Step 4 of 12");
  g_assert_false (dp_job_take_preview (job, NULL, NULL, NULL));
  /* predicted x0 is clipped to [-1, 1] and not all zero */
  {
    gint i, nonzero = 0;

    for (i = 0; i < 2 * 16 * 16; i++)
      {
        g_assert_cmpfloat (preview[i], >=, -1.0f);
        g_assert_cmpfloat (preview[i], <=, 1.0f);
        nonzero += preview[i] != 0.0f;
      }
    g_assert_cmpint (nonzero, >, 0);
  }
  dp_job_free (job);
}

static void
test_full_run_matches_engine (void)
{
  g_autoptr (DiffuseModel) model = load_model ();
  DiffuseSampleParams p;
  Counter c = { 0, -1 };
  GError *error = NULL;
  g_autofree float *direct = g_new (float, 2 * 16 * 16);
  DpJob *job;

  base_params (&p);
  p.count = 2;
  g_assert_true (diffuse_sample (model, &p, direct, NULL, &error));
  g_assert_no_error (error);

  job = dp_job_new (model, &p, 2, 1, 16, 16, 1, NULL);
  job->step_func = count_step;
  job->step_data = &c;
  g_assert_true (dp_job_run (job, &error));
  g_assert_no_error (error);
  g_assert_cmpint (c.calls, ==, 12);
  g_assert_cmpmem (job->out, sizeof (float) * 2 * 16 * 16, direct,
                   sizeof (float) * 2 * 16 * 16);
  dp_job_free (job);
}

static void
test_sweep_runs (void)
{
  g_autoptr (DiffuseModel) model = load_model ();
  const double guidance[3] = { 0.0, 1.0, 3.0 };
  DiffuseSampleParams p;
  GError *error = NULL;
  float direct[16 * 16];
  DpJob *job;
  gint r;

  base_params (&p);
  job = dp_job_new (model, &p, 1, 1, 16, 16, 3, guidance);
  g_assert_true (dp_job_run (job, &error));
  g_assert_no_error (error);
  for (r = 0; r < 3; r++)
    {
      p.guidance = guidance[r];
      g_assert_true (diffuse_sample (model, &p, direct, NULL, &error));
      g_assert_cmpmem (job->out + r * 16 * 16, sizeof direct, direct,
                       sizeof direct);
    }
  /* the values really differ */
  g_assert_true (memcmp (job->out, job->out + 2 * 16 * 16, sizeof direct) != 0);
  dp_job_free (job);
}

/* The dialog's estimate: one timed evaluation times the evaluations the
 * job makes, so twice the steps or guidance (a conditional and a null
 * pass per step) double it, and a sweep adds up its runs; the timing of
 * one evaluation is a real, positive time. */
static void
test_estimate (void)
{
  g_autoptr (DiffuseModel) model = load_model ();
  DiffuseSampleParams p;
  const double ws[3] = { 0.0, 1.0, 2.0 };
  double eval_s = 0.0, s10, s20, s_guided, s_sweep;
  GError *error = NULL;
  DpJob *job;

  base_params (&p);
  p.steps = 10;
  job = dp_job_new (model, &p, 1, 1, 16, 16, 1, NULL);
  g_assert_true (dp_job_time_eval (job, &eval_s, &error));
  g_assert_no_error (error);
  g_assert_cmpfloat (eval_s, >, 0.0);
  g_assert_cmpfloat (eval_s, <, 10.0);
  /* the timing runs at the job's precision: bf16 (emulated where the CPU
   * lacks it) makes its weights in the untimed first pass */
  {
    DiffuseSampleParams q = p;
    DpJob *bf16_job;
    double bf16_s = 0.0;

    q.precision = DIFFUSE_PRECISION_BF16;
    bf16_job = dp_job_new (model, &q, 1, 1, 16, 16, 1, NULL);
    g_assert_true (dp_job_time_eval (bf16_job, &bf16_s, &error));
    g_assert_no_error (error);
    g_assert_cmpfloat (bf16_s, >, 0.0);
    g_test_message ("one evaluation: fp32 %.3g s, bf16 %.3g s", eval_s, bf16_s);
    dp_job_free (bf16_job);
  }
  /* a fixed evaluation time from here on: the counts are what is tested */
  g_assert_true (dp_job_estimate_seconds (job, 0.5, &s10, &error));
  g_assert_cmpfloat (s10, ==, 10 * 0.5);
  dp_job_free (job);

  p.steps = 20;
  job = dp_job_new (model, &p, 1, 1, 16, 16, 1, NULL);
  g_assert_true (dp_job_estimate_seconds (job, 0.5, &s20, &error));
  g_assert_cmpfloat (s20, ==, 2 * s10);
  dp_job_free (job);

  p.steps = 10;
  p.guidance = 1.0;
  job = dp_job_new (model, &p, 1, 1, 16, 16, 1, NULL);
  g_assert_true (dp_job_estimate_seconds (job, 0.5, &s_guided, &error));
  g_assert_cmpfloat (s_guided, ==, 2 * s10);
  dp_job_free (job);

  /* a sweep over w = 0, 1, 2: one plain run and two guided ones */
  job = dp_job_new (model, &p, 1, 1, 16, 16, 3, ws);
  g_assert_true (dp_job_estimate_seconds (job, 0.5, &s_sweep, &error));
  g_assert_cmpfloat (s_sweep, ==, s10 + 2 * s_guided);
  dp_job_free (job);

  /* classifier guidance (DDIM 10 as "ddim10"): its forward and gradient
   * passes add their share of an evaluation, by operation count */
  {
    g_autofree gchar *path = g_build_filename (
        g_getenv ("DIFFUSE_TEST_DATA") != NULL ? g_getenv ("DIFFUSE_TEST_DATA")
                                               : "tests/data",
        "golden", "clf-grey-attn-ss-updown.safetensors", NULL);
    g_autoptr (DiffuseModel) clf = diffuse_model_new_from_file (path, &error);
    DiffuseSampleParams q = p;
    DiffuseRunEstimate e;
    double s_clf;

    g_assert_no_error (error);
    q.guidance = 0.0;
    q.classifier = clf;
    q.classifier_scale = 4.0;
    job = dp_job_new (model, &q, 1, 1, 16, 16, 1, NULL);
    g_assert_true (dp_job_estimate_seconds (job, 0.5, &s_clf, &error));
    g_assert_no_error (error);
    q.count = 1, q.height = q.width = 16;
    g_assert_true (diffuse_sample_estimate (model, &q, &e, &error));
    g_test_message ("10 steps: %.3g s alone, %.3g s with the classifier", s10,
                    s_clf);
    g_assert_cmpfloat (s_clf, >, s10);
    g_assert_cmpfloat (fabs (s_clf - 0.5 * e.flops / (double) e.flops_per_eval),
                       <, 1e-9 * s_clf);
    dp_job_free (job);
  }

  /* an invalid job is an error, not a number */
  p.steps = 100000;
  job = dp_job_new (model, &p, 1, 1, 16, 16, 1, NULL);
  g_assert_false (dp_job_estimate_seconds (job, 0.5, &s10, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  dp_job_free (job);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/plugin-job/cancel", test_cancel);
  g_test_add_func ("/plugin-job/full-run", test_full_run_matches_engine);
  g_test_add_func ("/plugin-job/sweep", test_sweep_runs);
  g_test_add_func ("/plugin-job/estimate", test_estimate);
  return g_test_run ();
}
