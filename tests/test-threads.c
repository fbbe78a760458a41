/* Threads belong to the run: two threads sample from one DiffuseModel at
 * the same time, with different thread counts and settings, and each
 * result is bit-identical to the same run done alone; a run leaves
 * OpenBLAS's process-wide thread count as it found it (after the engine
 * set it to one thread, once, at the first load). */
#include <string.h>

#include <cblas.h>

#include "diffuse-private.h"

static DiffuseModel *
load_model (const char *name)
{
  const char *data = g_getenv ("DIFFUSE_TEST_DATA");
  g_autofree char *path = g_build_filename (data != NULL ? data : "tests/data",
                                            "golden", name, NULL);
  g_autoptr (GError) error = NULL;
  DiffuseModel *m = diffuse_model_new_from_file (path, &error);

  g_assert_no_error (error);
  return m;
}

typedef struct
{
  const DiffuseModel *model;
  DiffuseSampleParams params;
  gsize n;     /* floats of the output */
  gint *start; /* both threads wait on this before sampling */
  float *out;
  GError *error;
} Run;

static void
run_init (Run *r, const DiffuseModel *model, gint n_threads, gint class_label,
          double guidance, DiffuseSamplerKind sampler, double eta, gint count,
          guint64 seed)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);

  memset (r, 0, sizeof *r);
  r->model = model;
  diffuse_sample_params_init (&r->params);
  r->params.steps = 5;
  r->params.n_threads = n_threads;
  r->params.class_label = class_label;
  r->params.guidance = guidance;
  r->params.sampler = sampler;
  r->params.eta = eta;
  r->params.count = count;
  r->params.seed = seed;
  r->n = (gsize) count * cfg->in_channels * cfg->image_size * cfg->image_size;
}

static gpointer
run_sample (gpointer data)
{
  Run *r = data;

  if (r->start != NULL)
    {
      /* start together, so that the two runs overlap */
      g_atomic_int_inc (r->start);
      while (g_atomic_int_get (r->start) < 2)
        g_thread_yield ();
    }
  r->out = g_new (float, r->n);
  if (!diffuse_sample (r->model, &r->params, r->out, NULL, &r->error))
    g_clear_pointer (&r->out, g_free);
  return NULL;
}

/* Runs a alone, b alone, then both at once, rounds times: every
 * concurrent result equals the lone one bit for bit. */
static void
check_concurrent (Run *a, Run *b, gint rounds)
{
  g_autofree float *alone_a = NULL, *alone_b = NULL;

  run_sample (a);
  g_assert_no_error (a->error);
  alone_a = g_steal_pointer (&a->out);
  run_sample (b);
  g_assert_no_error (b->error);
  alone_b = g_steal_pointer (&b->out);

  for (gint round = 0; round < rounds; round++)
    {
      gint start = 0;
      GThread *ta, *tb;

      a->start = b->start = &start;
      ta = g_thread_new ("run-a", run_sample, a);
      tb = g_thread_new ("run-b", run_sample, b);
      g_thread_join (ta);
      g_thread_join (tb);
      a->start = b->start = NULL;
      g_assert_no_error (a->error);
      g_assert_no_error (b->error);
      g_assert_true (memcmp (a->out, alone_a, a->n * sizeof (float)) == 0);
      g_assert_true (memcmp (b->out, alone_b, b->n * sizeof (float)) == 0);
      g_clear_pointer (&a->out, g_free);
      g_clear_pointer (&b->out, g_free);
    }
}

/* Different settings and thread counts (2 and 1) on one model. */
static void
test_two_runs_one_model (void)
{
  g_autoptr (DiffuseModel) m = load_model ("forward-grey-cond.safetensors");
  Run a, b;

  run_init (&a, m, 2, 3, 1.0, DIFFUSE_SAMPLER_DDPM, 0.0, 2, 11);
  run_init (&b, m, 1, 1, 0.0, DIFFUSE_SAMPLER_DDIM, 0.5, 1, 5);
  check_concurrent (&a, &b, 3);
}

/* The same run twice at once, each with 2 threads (a learned-variance
 * model with resblock up/down and two attention resolutions). */
static void
test_same_run_twice (void)
{
  g_autoptr (DiffuseModel) m = load_model ("forward-rgba-sigma.safetensors");
  Run a, b;

  run_init (&a, m, 2, -1, 0.0, DIFFUSE_SAMPLER_DDPM, 0.0, 1, 7);
  run_init (&b, m, 2, -1, 0.0, DIFFUSE_SAMPLER_DDPM, 0.0, 1, 7);
  a.params.steps = b.params.steps = 3;
  check_concurrent (&a, &b, 2);
}

/* The engine set OpenBLAS to one thread at the first load; a run with
 * its own count does not change what the application set since. */
static void
test_openblas_setting_untouched (void)
{
  g_autoptr (DiffuseModel) m = load_model ("forward-grey-cond.safetensors");
  Run a;

  g_assert_cmpint (openblas_get_num_threads (), ==, 1);
  openblas_set_num_threads (2);
  run_init (&a, m, 1, 3, 1.0, DIFFUSE_SAMPLER_DDIM, 0.0, 1, 1);
  run_sample (&a);
  g_assert_no_error (a.error);
  g_free (a.out);
  g_assert_cmpint (openblas_get_num_threads (), ==, 2);
  openblas_set_num_threads (1);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/threads/two-runs-one-model", test_two_runs_one_model);
  g_test_add_func ("/threads/same-run-twice", test_same_run_twice);
  g_test_add_func ("/threads/openblas-setting-untouched",
                   test_openblas_setting_untouched);
  return g_test_run ();
}
