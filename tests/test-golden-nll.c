/* The variational bound in bits/dim (diffuse_nll, engine/likelihood.c)
 * against tools/diffref/likelihood.py's float64 reference on the golden
 * models (tests/data/golden/nll-*.ini, .x0.npy, .json; made by
 * tools/make_golden.py).  Each case runs
 *  - from the seed (the engine's PRNG noise, which the reference draws
 *    with tools/ref_rng.py),
 *  - with that noise passed as params.noise [T, B, C, H, W] (the --noise
 *    path): the same numbers exactly,
 *  - one image per network pass: the same up to BLAS rounding;
 * the last two for the estimates only (the full sum costs T passes).
 * Every term, the prior, the totals and both MSEs are compared with
 * |a − b| ≤ TOL · max(|b|, 1e-3): float32 against float64 reference
 * differs by about 1e-7 here.  Bad input is refused before any pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <json-glib/json-glib.h>

#include "diffuse-private.h"

#define TOL 1e-5
#define NLL_STREAM_BASE (G_GUINT64_CONSTANT (1) << 40)

static const char *
golden_dir (void)
{
  static char *dir = NULL;

  if (dir == NULL)
    {
      const char *data = g_getenv ("DIFFUSE_TEST_DATA");

      dir =
          g_build_filename (data != NULL ? data : "tests/data", "golden", NULL);
    }
  return dir;
}

typedef struct
{
  DiffuseModel *model;
  float *x0;
  gint count, c, h, w;
  DiffuseVarianceKind variances[DIFFUSE_VARIANCE_COUNT];
  gint n_variances;
  gint timesteps;
  guint64 seed;
  gint labels[2];
  gboolean has_labels, clip;
  JsonObject *expected;
  JsonParser *parser;
} Case;

static void
case_clear (Case *c)
{
  diffuse_model_free (c->model);
  g_free (c->x0);
  g_clear_object (&c->parser);
}

static void
case_load (Case *c, const char *name)
{
  g_autofree char *ini = g_strdup_printf ("%s/nll-%s.ini", golden_dir (), name);
  g_autofree char *x0_path =
      g_strdup_printf ("%s/nll-%s.x0.npy", golden_dir (), name);
  g_autofree char *json_path =
      g_strdup_printf ("%s/nll-%s.json", golden_dir (), name);
  g_autoptr (GKeyFile) kf = g_key_file_new ();
  g_autoptr (GError) error = NULL;
  const char *g = "nll";
  gint ndim;
  gint64 shape[4];

  memset (c, 0, sizeof *c);
  g_key_file_set_list_separator (kf, ',');
  g_assert_true (g_key_file_load_from_file (kf, ini, G_KEY_FILE_NONE, &error));
  g_autofree char *model = g_key_file_get_string (kf, g, "model", &error);
  g_assert_no_error (error);
  g_autofree char *model_path = g_build_filename (golden_dir (), model, NULL);
  c->model = diffuse_model_new_from_file (model_path, &error);
  g_assert_no_error (error);

  g_auto (GStrv) kinds =
      g_key_file_get_string_list (kf, g, "variances", NULL, &error);
  g_assert_no_error (error);
  for (gint i = 0; kinds[i] != NULL; i++)
    g_assert_true (diffuse_variance_kind_from_string (
        kinds[i], &c->variances[c->n_variances++]));
  c->timesteps = g_key_file_get_integer (kf, g, "timesteps", &error);
  g_assert_no_error (error);
  c->seed = g_key_file_get_uint64 (kf, g, "seed", &error);
  g_assert_no_error (error);
  c->clip = g_key_file_get_boolean (kf, g, "clip_denoised", &error);
  g_assert_no_error (error);
  g_autofree char *labels = g_key_file_get_string (kf, g, "labels", &error);
  g_assert_no_error (error);
  if (labels[0] != '\0')
    {
      g_auto (GStrv) parts = g_strsplit (labels, ",", -1);

      g_assert_cmpint (g_strv_length (parts), ==, 2);
      c->labels[0] = atoi (parts[0]);
      c->labels[1] = atoi (parts[1]);
      c->has_labels = TRUE;
    }

  c->x0 = diffuse_npy_load (x0_path, &ndim, shape, &error);
  g_assert_no_error (error);
  g_assert_cmpint (ndim, ==, 4);
  c->count = (gint) shape[0];
  c->c = (gint) shape[1];
  c->h = (gint) shape[2];
  c->w = (gint) shape[3];

  c->parser = json_parser_new ();
  g_assert_true (json_parser_load_from_file (c->parser, json_path, &error));
  g_assert_no_error (error);
  c->expected = json_node_get_object (json_parser_get_root (c->parser));
}

static void
params_for (const Case *c, DiffuseNllParams *p)
{
  diffuse_nll_params_init (p);
  p->variances = c->variances;
  p->n_variances = c->n_variances;
  p->n_timesteps = c->timesteps;
  p->seed = c->seed;
  p->labels = c->has_labels ? c->labels : NULL;
  p->clip_denoised = c->clip;
}

static double
close_enough (double a, double b)
{
  return fabs (a - b) <= TOL * MAX (fabs (b), 1e-3);
}

/* expected [rows][cols] (or [cols] when rows == 0) against got */
static void
compare (JsonObject *o, const char *member, const double *got, gint outer,
         gint rows, gint cols)
{
  JsonArray *a = json_object_get_array_member (o, member);
  double worst = 0.0;

  for (gint v = 0; v < MAX (outer, 1); v++)
    {
      JsonArray *av = outer > 0 ? json_array_get_array_element (a, v) : a;

      for (gint i = 0; i < MAX (rows, 1); i++)
        {
          JsonArray *ai = rows > 0 ? json_array_get_array_element (av, i) : av;

          g_assert_cmpint (json_array_get_length (ai), ==, cols);
          for (gint k = 0; k < cols; k++)
            {
              double want = json_array_get_double_element (ai, k);
              double have = got[((gsize) v * MAX (rows, 1) + i) * cols + k];

              worst = MAX (worst, fabs (have - want) / MAX (fabs (want), 1e-3));
              if (!close_enough (have, want))
                g_error ("%s[%d][%d][%d]: %.10g, the reference %.10g", member,
                         v, i, k, have, want);
            }
        }
    }
  g_test_message ("%s: largest relative difference %.2e", member, worst);
}

static void
check_result (const Case *c, const DiffuseNllResult *r)
{
  JsonObject *e = c->expected;
  JsonArray *ts = json_object_get_array_member (e, "timesteps");
  JsonArray *ws = json_object_get_array_member (e, "weights");
  gint N = json_array_get_length (ts);

  g_assert_cmpint (r->count, ==, c->count);
  g_assert_cmpint (r->n_terms, ==, N);
  g_assert_cmpint (r->n_variances, ==, c->n_variances);
  for (gint j = 0; j < N; j++)
    {
      g_assert_cmpint (r->timesteps[j], ==, json_array_get_int_element (ts, j));
      g_assert_cmpfloat_with_epsilon (
          r->weights[j], json_array_get_double_element (ws, j), 1e-12);
    }
  /* the resolved kinds (auto → learned / fixed-large) as the reference's */
  JsonArray *kinds = json_object_get_array_member (e, "variances");
  for (gint v = 0; v < r->n_variances; v++)
    g_assert_cmpstr (diffuse_variance_kind_to_string (r->variances[v]), ==,
                     json_array_get_string_element (kinds, v));

  compare (e, "terms_bpd", r->terms, r->n_variances, N, c->count);
  compare (e, "prior_bpd", r->prior, 0, 0, c->count);
  compare (e, "total_bpd", r->total, 0, r->n_variances, c->count);
  compare (e, "xstart_mse", r->xstart_mse, 0, N, c->count);
  compare (e, "eps_mse", r->eps_mse, 0, N, c->count);
}

static void
test_case (gconstpointer data)
{
  const char *name = data;
  Case c;
  DiffuseNllParams p;
  g_autoptr (GError) error = NULL;

  case_load (&c, name);
  params_for (&c, &p);
  g_assert_true (
      diffuse_nll_params_validate (&p, c.model, c.count, c.h, c.w, &error));
  g_assert_no_error (error);

  /* from the seed */
  g_autoptr (DiffuseNllResult) seeded =
      diffuse_nll (c.model, &p, c.x0, c.count, c.h, c.w, &error);
  g_assert_no_error (error);
  check_result (&c, seeded);

  if (c.timesteps == 0)
    {
      case_clear (&c);
      return;
    }

  /* the same noise given as [T, B, C, H, W]: identical numbers */
  gint T = diffuse_model_get_config (c.model)->diffusion_steps;
  gsize per_t = (gsize) c.count * c.c * c.h * c.w;
  g_autofree float *noise = g_new (float, T *per_t);
  for (gint t = 0; t < T; t++)
    diffuse_rng_normal (c.seed, NLL_STREAM_BASE + t, 0, noise + t * per_t,
                        per_t);
  p.noise = noise;
  p.seed = c.seed + 12345; /* unused with noise */
  g_autoptr (DiffuseNllResult) given =
      diffuse_nll (c.model, &p, c.x0, c.count, c.h, c.w, &error);
  g_assert_no_error (error);
  gsize n_terms = (gsize) seeded->n_variances * seeded->n_terms * c.count;
  g_assert_cmpmem (given->terms, n_terms * sizeof (double), seeded->terms,
                   n_terms * sizeof (double));
  g_assert_cmpmem (
      given->total, (gsize) seeded->n_variances * c.count * sizeof (double),
      seeded->total, (gsize) seeded->n_variances * c.count * sizeof (double));

  /* one image per pass */
  p.batch = 1;
  g_autoptr (DiffuseNllResult) single =
      diffuse_nll (c.model, &p, c.x0, c.count, c.h, c.w, &error);
  g_assert_no_error (error);
  check_result (&c, single);

  case_clear (&c);
}

static gboolean
count_progress (gint done, gint total, gpointer user_data)
{
  gint *calls = user_data;

  (void) total;
  (*calls)++;
  return done < 2; /* cancel after the second timestep */
}

/* Refused with DIFFUSE_ERROR_INVALID before any network pass. */
static void
expect_invalid (const Case *c, const DiffuseNllParams *p, const float *x0,
                const char *fragment)
{
  g_autoptr (GError) error = NULL;
  DiffuseNllParams q = *p;
  gint calls = 0;

  q.progress = count_progress;
  q.user_data = &calls;
  DiffuseNllResult *r =
      diffuse_nll (c->model, &q, x0, c->count, c->h, c->w, &error);
  g_assert_null (r);
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_assert_cmpint (calls, ==, 0);
  if (strstr (error->message, fragment) == NULL)
    g_error ("expected \"%s\" in: %s", fragment, error->message);
  g_test_message ("refused: %s", error->message);
}

static void
test_bad_input (void)
{
  Case c, u, s;
  DiffuseNllParams p;
  g_autoptr (GError) error = NULL;

  case_load (&c, "cond");   /* class model with a null class */
  case_load (&u, "full");   /* unconditional, no learn_sigma */
  case_load (&s, "nonull"); /* classes, no null class */
  params_for (&c, &p);

  gsize n = (gsize) c.count * c.c * c.h * c.w;
  g_autofree float *bad = g_memdup2 (c.x0, n * sizeof (float));
  bad[5] = 1.5f;
  expect_invalid (&c, &p, bad, "[-1, 1]");
  bad[5] = NAN;
  expect_invalid (&c, &p, bad, "finite");

  gint labels[2] = { 0, 5 };
  p.labels = labels;
  expect_invalid (&c, &p, c.x0, "class 5");
  labels[1] = -2;
  expect_invalid (&c, &p, c.x0, "class -2");
  params_for (&c, &p);
  p.n_timesteps = 1;
  expect_invalid (&c, &p, c.x0, "n_timesteps");
  p.n_timesteps = 1001;
  expect_invalid (&c, &p, c.x0, "n_timesteps");
  params_for (&c, &p);
  DiffuseVarianceKind learned = DIFFUSE_VARIANCE_LEARNED;
  p.variances = &learned;
  p.n_variances = 1;
  expect_invalid (&c, &p, c.x0, "learn_sigma");

  params_for (&u, &p);
  gint one[2] = { 1, -1 };
  p.labels = one;
  expect_invalid (&u, &p, u.x0, "unconditional");

  params_for (&s, &p);
  p.labels = NULL;
  expect_invalid (&s, &p, s.x0, "no null class");

  /* cancelling from the progress callback */
  params_for (&c, &p);
  gint calls = 0;
  p.progress = count_progress;
  p.user_data = &calls;
  DiffuseNllResult *r =
      diffuse_nll (c.model, &p, c.x0, c.count, c.h, c.w, &error);
  g_assert_null (r);
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_CANCELLED);
  g_assert_cmpint (calls, ==, 2);

  case_clear (&c);
  case_clear (&u);
  case_clear (&s);
}

int
main (int argc, char **argv)
{
  static const char *cases[] = { "learned", "full", "cond", "nonull" };

  g_test_init (&argc, &argv, NULL);
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autofree char *path = g_strdup_printf ("/golden-nll/%s", cases[i]);

      g_test_add_data_func (path, cases[i], test_case);
    }
  g_test_add_func ("/golden-nll/bad-input", test_bad_input);
  return g_test_run ();
}
