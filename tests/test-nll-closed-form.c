/* The variational bound (diffuse_nll_with, engine/likelihood.c) with
 * denoisers whose terms are known in closed form:
 *
 *  - an oracle that returns the very ε that drew x_t: x̂0 = x0, so
 *      fixed-small:  every KL term is 0 (p_θ is the posterior itself)
 *      fixed-large:  KL_t = ½(β̃/β − 1 − log(β̃/β)) per dimension
 *      learned (raw output r): KL_t = ½(e^u − 1 − u), u = v(log β̃ − log β),
 *                    v = (r + 1)/2
 *    and the decoder at t = 0 has mean x0: −log of erf(h/(σ√2)) inside,
 *    Φ(h/σ) for the open bins at ±1 (h = 1/255, σ² = β̃_1, or the learned
 *    mix at t = 0); the prior ½(ᾱx0² + (1−ᾱ) − 1 − log(1−ᾱ)) at t = T−1.
 *    The estimate (n_timesteps) takes the documented t and weights.
 *  - the exact denoiser for Gaussian data x0 ~ N(0, s²):
 *    ε̂ = E[ε | x_t] = sqrt(1−ᾱ)·x_t/(ᾱs² + 1 − ᾱ), so x̂0 = a·x_t with
 *    a = sqrt(ᾱ)s²/(ᾱs² + 1 − ᾱ); for a fixed x0 the expected KL under
 *    fixed-small is E[(coef1(x0 − x̂0))²]/(2β̃) with
 *    E[(x0 − x̂0)²] = (1 − a sqrt(ᾱ))²x0² + a²(1−ᾱ).  The mean over 4000
 *    one-pixel images (independent noise each) must agree within 5
 *    standard errors at every t.
 *  - bad parameters refused before any denoiser call; cancelling.
 */
#include <math.h>
#include <string.h>

#include "diffuse.h"

#define NLL_STREAM_BASE (G_GUINT64_CONSTANT (1) << 40)

typedef struct
{
  const float *noise; /* [T, count, n] */
  gsize per_t;        /* count·C·H·W */
  double raw_var;     /* what the oracle reports as the variance output */
  gint calls;
} Oracle;

static gboolean
oracle_denoise (gpointer user_data, gint batch, const float *x_t, gint t_index,
                double t_model, float *eps_out, float *var_out, GError **error)
{
  Oracle *o = user_data;

  (void) x_t;
  (void) t_model;
  (void) error;
  o->calls++;
  g_assert_cmpuint ((gsize) batch * (o->per_t / batch), ==, o->per_t);
  memcpy (eps_out, o->noise + (gsize) t_index * o->per_t,
          o->per_t * sizeof (float));
  if (var_out != NULL)
    for (gsize i = 0; i < o->per_t; i++)
      var_out[i] = (float) o->raw_var;
  return TRUE;
}

/* 2 images of 1x4x4 on the 8-bit grid, three pixels at −1 and two at +1 */
static const float *
grid_images (void)
{
  static float x[32];

  for (gint i = 0; i < 32; i++)
    x[i] = (float) (((i * 37 + 11) % 256) / 127.5 - 1.0);
  x[0] = x[17] = x[30] = -1.0f;
  x[3] = x[20] = 1.0f;
  return x;
}

static double
log_post_var (const double *b, const double *ab, gint t)
{
  /* log β̃_t, with β̃_1 at t = 0 */
  if (t == 0)
    t = 1;
  return log (b[t] * (1.0 - ab[t - 1]) / (1.0 - ab[t]));
}

static double
decoder_bits (const float *x, gsize n, double log_var)
{
  double sd = exp (0.5 * log_var), s = 0.0;

  for (gsize i = 0; i < n; i++)
    {
      double p;

      if (x[i] == -1.0f || x[i] == 1.0f)
        p = 0.5 * erfc (-(1.0 / 255.0) / (sd * G_SQRT2));
      else
        p = erf ((1.0 / 255.0) / (sd * G_SQRT2));
      s += -log (p);
    }
  return s / n / G_LN2;
}

static void
oracle_case (DiffuseScheduleKind kind, gint T)
{
  const float *x0 = grid_images ();
  gint count = 2, n_img = 16;
  gsize per_t = (gsize) count * n_img;
  g_autofree float *noise = g_new (float, T *per_t);
  g_autoptr (DiffuseSchedule) s = diffuse_schedule_new (kind, T, NULL, NULL);
  const double *b = diffuse_schedule_get_betas (s);
  const double *ab = diffuse_schedule_get_alphas_cumprod (s);
  DiffuseVarianceKind kinds[3] = { DIFFUSE_VARIANCE_FIXED_SMALL,
                                   DIFFUSE_VARIANCE_FIXED_LARGE,
                                   DIFFUSE_VARIANCE_LEARNED };
  Oracle o = { noise, per_t, 0.25, 0 }; /* exact in float */
  DiffuseNllParams p;
  g_autoptr (GError) error = NULL;
  double v = (o.raw_var + 1.0) / 2.0;

  for (gint t = 0; t < T; t++)
    diffuse_rng_normal (99, NLL_STREAM_BASE + t, 0, noise + t * per_t, per_t);
  diffuse_nll_params_init (&p);
  p.variances = kinds;
  p.n_variances = 3;
  p.noise = noise;
  p.batch = count;

  g_autoptr (DiffuseNllResult) r = diffuse_nll_with (
      kind, T, oracle_denoise, &o, TRUE, &p, x0, count, 1, 4, 4, &error);
  g_assert_no_error (error);
  g_assert_cmpint (o.calls, ==, T);
  g_assert_cmpint (r->n_terms, ==, T);

  /* the prior, per image */
  for (gint k = 0; k < count; k++)
    {
      double a = ab[T - 1], want = 0.0;

      for (gint i = 0; i < n_img; i++)
        {
          double x = x0[k * n_img + i];

          want += 0.5 * (a * x * x + (1.0 - a) - 1.0 - log (1.0 - a));
        }
      want /= n_img * G_LN2;
      g_assert_cmpfloat (fabs (r->prior[k] - want), <=, 1e-9 * want + 1e-15);
    }

  for (gint j = 0; j < T; j++)
    {
      gint t = r->timesteps[j];

      g_assert_cmpint (t, ==, T - 1 - j);
      for (gint k = 0; k < count; k++)
        {
          double small = r->terms[(0 * T + j) * count + k];
          double large = r->terms[(1 * T + j) * count + k];
          double learned = r->terms[(2 * T + j) * count + k];

          g_assert_cmpfloat (r->xstart_mse[j * count + k], <, 1e-20);
          if (t == 0)
            {
              double lp = log_post_var (b, ab, 1);
              double lv = v * log (b[0]) + (1.0 - v) * lp;
              double want_fixed = decoder_bits (x0 + k * n_img, n_img, lp);
              double want_learned = decoder_bits (x0 + k * n_img, n_img, lv);

              g_assert_cmpfloat (fabs (small - want_fixed), <=,
                                 1e-9 * want_fixed);
              g_assert_cmpfloat (fabs (large - want_fixed), <=,
                                 1e-9 * want_fixed);
              g_assert_cmpfloat (fabs (learned - want_learned), <=,
                                 1e-9 * want_learned);
              continue;
            }
          double lp = log_post_var (b, ab, t), lb = log (b[t]);
          double ratio = exp (lp - lb);
          double want_large = 0.5 * (ratio - 1.0 - log (ratio)) / G_LN2;
          double u = v * (lp - lb);
          double want_learned = 0.5 * (expm1 (u) - u) / G_LN2;

          g_assert_cmpfloat (fabs (small), <, 1e-12);
          g_assert_cmpfloat (fabs (large - want_large), <=,
                             1e-9 * want_large + 1e-13);
          g_assert_cmpfloat (fabs (learned - want_learned), <=,
                             1e-9 * want_learned + 1e-13);
        }
    }
  /* totals are the prior plus every term */
  for (gint vi = 0; vi < 3; vi++)
    for (gint k = 0; k < count; k++)
      {
        double want = r->prior[k];

        for (gint j = 0; j < T; j++)
          want += r->terms[(vi * T + j) * count + k];
        g_assert_cmpfloat (fabs (r->total[vi * count + k] - want), <=,
                           1e-12 * want);
      }
  g_test_message ("%s T=%d oracle: total %.6f (fixed-small) %.6f (fixed-large) "
                  "%.6f (learned) bits/dim",
                  diffuse_schedule_kind_to_string (kind), T, r->total[0],
                  r->total[count], r->total[2 * count]);

  /* the estimate: t = round(j(T−1)/(N−1)), the KL terms weighted (T−1)/(N−1);
   * its terms are the full run's at those t (the same noise) */
  gint N = 7;
  p.n_timesteps = N;
  o.calls = 0;
  g_autoptr (DiffuseNllResult) e = diffuse_nll_with (
      kind, T, oracle_denoise, &o, TRUE, &p, x0, count, 1, 4, 4, &error);
  g_assert_no_error (error);
  g_assert_cmpint (o.calls, ==, N);
  g_assert_cmpint (e->n_terms, ==, N);
  for (gint k = 0; k < count; k++)
    {
      double want = r->prior[k];

      for (gint j = 0; j < N; j++)
        {
          gint jj = N - 1 - j;
          gint t = (gint) nearbyint ((double) (jj * (T - 1)) / (N - 1));
          double w = t == 0 ? 1.0 : (double) (T - 1) / (N - 1);
          double term = e->terms[(1 * N + j) * count + k];

          g_assert_cmpint (e->timesteps[j], ==, t);
          g_assert_cmpfloat (e->weights[j], ==, w);
          g_assert_cmpfloat (term, ==,
                             r->terms[(1 * T + (T - 1 - t)) * count + k]);
          want += w * term;
        }
      g_assert_cmpfloat (fabs (e->total[count + k] - want), <=, 1e-12 * want);
    }
}

static void
test_oracle (void)
{
  oracle_case (DIFFUSE_SCHEDULE_COSINE, 40);
  oracle_case (DIFFUSE_SCHEDULE_LINEAR, 100);
}

/* ---- Gaussian data, the exact denoiser ---------------------------------- */

typedef struct
{
  const double *ab;
  double s2;
  gint calls;
} Gauss;

static gboolean
gauss_denoise (gpointer user_data, gint batch, const float *x_t, gint t_index,
               double t_model, float *eps_out, float *var_out, GError **error)
{
  Gauss *g = user_data;
  double a = g->ab[t_index];
  double k = sqrt (1.0 - a) / (a * g->s2 + 1.0 - a);

  (void) t_model;
  (void) var_out;
  (void) error;
  g->calls++;
  for (gint i = 0; i < batch; i++)
    eps_out[i] = (float) (k * x_t[i]);
  return TRUE;
}

static void
test_gaussian (void)
{
  const gint T = 30, count = 4000;
  const double s2 = 0.25, x0v = 0.6;
  g_autoptr (DiffuseSchedule) s =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_COSINE, T, NULL, NULL);
  const double *b = diffuse_schedule_get_betas (s);
  const double *ab = diffuse_schedule_get_alphas_cumprod (s);
  g_autofree float *x0 = g_new (float, count);
  DiffuseVarianceKind small = DIFFUSE_VARIANCE_FIXED_SMALL;
  Gauss g = { ab, s2, 0 };
  DiffuseNllParams p;
  g_autoptr (GError) error = NULL;
  double sum_want = 0.0, sum_got = 0.0, var_sum = 0.0;

  for (gint i = 0; i < count; i++)
    x0[i] = (float) x0v;
  diffuse_nll_params_init (&p);
  p.variances = &small;
  p.n_variances = 1;
  p.clip_denoised = FALSE;
  p.seed = 5;
  p.batch = 1000;
  g_autoptr (DiffuseNllResult) r =
      diffuse_nll_with (DIFFUSE_SCHEDULE_COSINE, T, gauss_denoise, &g, FALSE,
                        &p, x0, count, 1, 1, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (g.calls, ==, T * count / 1000);
  for (gint j = 0; j < T - 1; j++)
    {
      gint t = r->timesteps[j];
      double a = ab[t], ap = ab[t - 1];
      double coef1 = b[t] * sqrt (ap) / (1.0 - a);
      double post = b[t] * (1.0 - ap) / (1.0 - a);
      double k = sqrt (a) * s2 / (a * s2 + 1.0 - a);
      double e_d2 = pow (1.0 - k * sqrt (a), 2) * x0v * x0v + k * k * (1.0 - a);
      double want = coef1 * coef1 * e_d2 / (2.0 * post) / G_LN2;
      double mean = 0.0, m2 = 0.0;

      g_assert_cmpint (t, >=, 1);
      for (gint i = 0; i < count; i++)
        mean += r->terms[(gsize) j * count + i];
      mean /= count;
      for (gint i = 0; i < count; i++)
        m2 += pow (r->terms[(gsize) j * count + i] - mean, 2);
      double se = sqrt (m2 / (count - 1) / count);
      if (fabs (mean - want) > 5.0 * se)
        g_error (
            "t = %d: mean KL %.6g bits, expected %.6g (standard error %.2g)", t,
            mean, want, se);
      sum_want += want;
      sum_got += mean;
      var_sum += se * se;
    }
  g_test_message (
      "Gaussian data, exact denoiser: sum of KL over t >= 1 %.6f bits/dim, "
      "expected %.6f +- %.6f",
      sum_got, sum_want, sqrt (var_sum));
  g_assert_cmpfloat (fabs (sum_got - sum_want), <=, 5.0 * sqrt (var_sum));
}

/* ---- refusals ------------------------------------------------------------ */

static void
expect_refused (DiffuseScheduleKind kind, gint T, gboolean has_var,
                const DiffuseNllParams *p, const float *x0, gint count, gint c,
                const char *fragment)
{
  Gauss g = { NULL, 1.0, 0 };
  g_autoptr (GError) error = NULL;
  DiffuseNllResult *r = diffuse_nll_with (kind, T, gauss_denoise, &g, has_var,
                                          p, x0, count, c, 4, 4, &error);

  g_assert_null (r);
  g_assert_nonnull (error);
  g_assert_cmpint (g.calls, ==, 0);
  if (strstr (error->message, fragment) == NULL)
    g_error ("expected \"%s\" in: %s", fragment, error->message);
}

static gboolean
cancel_at_3 (gint done, gint total, gpointer user_data)
{
  (void) total;
  (void) user_data;
  return done < 3;
}

static void
test_refusals (void)
{
  const float *x0 = grid_images ();
  DiffuseNllParams p;
  DiffuseVarianceKind learned = DIFFUSE_VARIANCE_LEARNED, bogus = 17;
  gint labels[2] = { 0, 0 };

  diffuse_nll_params_init (&p);
  expect_refused (DIFFUSE_SCHEDULE_COSINE, 1, FALSE, &p, x0, 2, 1,
                  "at least 2");
  expect_refused (DIFFUSE_SCHEDULE_COSINE, 10, FALSE, &p, x0, 0, 1, "images");
  expect_refused (DIFFUSE_SCHEDULE_LINEAR, 10, FALSE, &p, x0, 2, 1, "T > 20");
  p.n_variances = 1;
  p.variances = &learned;
  expect_refused (DIFFUSE_SCHEDULE_COSINE, 10, FALSE, &p, x0, 2, 1,
                  "learn_sigma");
  p.variances = &bogus;
  expect_refused (DIFFUSE_SCHEDULE_COSINE, 10, TRUE, &p, x0, 2, 1,
                  "unknown variance");
  diffuse_nll_params_init (&p);
  p.n_timesteps = 11;
  expect_refused (DIFFUSE_SCHEDULE_COSINE, 10, FALSE, &p, x0, 2, 1,
                  "n_timesteps");
  p.n_timesteps = -3;
  expect_refused (DIFFUSE_SCHEDULE_COSINE, 10, FALSE, &p, x0, 2, 1,
                  "n_timesteps");
  diffuse_nll_params_init (&p);
  p.batch = -1;
  expect_refused (DIFFUSE_SCHEDULE_COSINE, 10, FALSE, &p, x0, 2, 1, "batch");
  diffuse_nll_params_init (&p);
  p.labels = labels;
  expect_refused (DIFFUSE_SCHEDULE_COSINE, 10, FALSE, &p, x0, 2, 1, "labels");

  /* cancelled after the third timestep, with the error code for it */
  {
    Gauss g = { NULL, 1.0, 0 };
    g_autoptr (DiffuseSchedule) s =
        diffuse_schedule_new (DIFFUSE_SCHEDULE_COSINE, 10, NULL, NULL);
    g_autoptr (GError) error = NULL;

    g.ab = diffuse_schedule_get_alphas_cumprod (s);
    diffuse_nll_params_init (&p);
    p.progress = cancel_at_3;
    g_assert_null (diffuse_nll_with (DIFFUSE_SCHEDULE_COSINE, 10, gauss_denoise,
                                     &g, FALSE, &p, x0, 2, 1, 4, 4, &error));
    g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_CANCELLED);
    g_assert_cmpint (g.calls, ==, 3);
  }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/nll/oracle", test_oracle);
  g_test_add_func ("/nll/gaussian", test_gaussian);
  g_test_add_func ("/nll/refusals", test_refusals);
  return g_test_run ();
}
