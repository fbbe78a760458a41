/* β schedules and respacing (engine/schedule.c) against formulas evaluated
 * here independently and against guided-diffusion's space_timesteps worked
 * out by hand (the expected sets below were also checked with
 * respace.space_timesteps in Python). */
#include <math.h>
#include <string.h>

#include "diffuse-private.h"

static void
assert_rel (double got, double want, double tol)
{
  if (fabs (got - want) > tol * fabs (want))
    g_error ("got %.17g, expected %.17g (rel. err %.3g > %.3g)", got, want,
             fabs (got - want) / fabs (want), tol);
}

/* Ho et al. 2020 / seed "Parameterization of β_t": β_t = β_min + (t−1)/(T−1)
 * (β_max − β_min), t = 1..T, with guided-diffusion's 1000/T scaling;
 * ᾱ_t = exp(Σ log(1 − β_s)). */
static void
test_linear (void)
{
  const gint Ts[] = { 1000, 250, 4000 };

  for (guint k = 0; k < G_N_ELEMENTS (Ts); k++)
    {
      gint T = Ts[k];
      g_autoptr (DiffuseSchedule) s =
          diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, T, NULL, NULL);
      g_assert_nonnull (s);
      g_assert_cmpint (diffuse_schedule_get_n_steps (s), ==, T);
      const double *beta = diffuse_schedule_get_betas (s);
      const double *abar = diffuse_schedule_get_alphas_cumprod (s);
      const gint *ts = diffuse_schedule_get_timesteps (s);
      double bmin = 1e-4 * 1000.0 / T, bmax = 0.02 * 1000.0 / T, logsum = 0;

      assert_rel (beta[0], bmin, 1e-10); /* β recomputed from ᾱ ratios */
      assert_rel (beta[T - 1], bmax, 1e-10);
      for (gint t = 1; t <= T; t++)
        {
          double b = bmin + (double) (t - 1) / (T - 1) * (bmax - bmin);

          g_assert_cmpint (ts[t - 1], ==, t - 1);
          assert_rel (beta[t - 1], b, 1e-10);
          logsum += log1p (-b);
          assert_rel (abar[t - 1], exp (logsum), 1e-11);
        }
      if (T == 1000)
        {
          /* DDPM's well-known ᾱ_T ≈ 4.04e-5 for T = 1000 */
          g_test_message ("linear T=1000: abar_T = %.6g", abar[T - 1]);
          g_assert_cmpfloat (fabs (abar[T - 1] - 4.04e-5), <, 0.01e-5);
        }
    }
}

static double
cos_f (double t, double T)
{
  double c = cos ((t / T + 0.008) / 1.008 * M_PI / 2);
  return c * c;
}

/* Nichol & Dhariwal 2021 eq. 17: ᾱ(t) = f(t)/f(0), β ≤ 0.999. */
static void
test_cosine (void)
{
  const gint Ts[] = { 1000, 100, 4000 };

  for (guint k = 0; k < G_N_ELEMENTS (Ts); k++)
    {
      gint T = Ts[k];
      g_autoptr (DiffuseSchedule) s =
          diffuse_schedule_new (DIFFUSE_SCHEDULE_COSINE, T, "", NULL);
      g_assert_nonnull (s);
      const double *beta = diffuse_schedule_get_betas (s);
      const double *abar = diffuse_schedule_get_alphas_cumprod (s);
      gint n_clipped = 0;

      for (gint t = 1; t <= T; t++)
        {
          double b = 1.0 - cos_f (t, T) / cos_f (t - 1, T);

          g_assert_cmpfloat (beta[t - 1], <=, 0.999);
          if (b >= 0.999)
            {
              n_clipped++;
              g_assert_cmpfloat (beta[t - 1], ==, 0.999);
              continue;
            }
          assert_rel (beta[t - 1], b, 1e-9);
          /* before any clipping, ᾱ_t is f(t)/f(0) itself */
          if (n_clipped == 0)
            assert_rel (abar[t - 1], cos_f (t, T) / cos_f (0, T), 1e-10);
        }
      /* the last step is the singular one: f(T) = cos²(π/2) ≈ 0 */
      g_assert_cmpint (n_clipped, >=, 1);
      g_assert_cmpfloat (beta[T - 1], ==, 0.999);
      g_test_message ("cosine T=%d: beta_1 = %.4g, %d clipped, abar_T = %.4g",
                      T, beta[0], n_clipped, abar[T - 1]);
      /* ᾱ_T = ᾱ_{T−1}·(1 − 0.999) */
      assert_rel (abar[T - 1], abar[T - 2] * (1.0 - 0.999), 1e-12);
    }
}

static void
check_respacing (DiffuseScheduleKind kind, gint T, const char *respacing,
                 const gint *expect, gint n_expect)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseSchedule) full =
      diffuse_schedule_new (kind, T, NULL, &error);
  g_autoptr (DiffuseSchedule) s =
      diffuse_schedule_new (kind, T, respacing, &error);

  g_assert_no_error (error);
  g_assert_cmpint (diffuse_schedule_get_n_steps (s), ==, n_expect);
  const gint *ts = diffuse_schedule_get_timesteps (s);
  for (gint i = 0; i < n_expect; i++)
    {
      if (ts[i] != expect[i])
        g_error ("T=%d \"%s\": timestep %d is %d, expected %d", T, respacing, i,
                 ts[i], expect[i]);
    }

  /* β_i = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}} re-multiplied gives back the full
   * schedule's ᾱ on the kept steps, and each β_i from the ratio itself */
  const double *abar_full = diffuse_schedule_get_alphas_cumprod (full);
  const double *beta = diffuse_schedule_get_betas (s);
  const double *abar = diffuse_schedule_get_alphas_cumprod (s);
  double prod = 1.0;
  for (gint i = 0; i < n_expect; i++)
    {
      double prev = i == 0 ? 1.0 : abar_full[ts[i - 1]];

      assert_rel (beta[i], 1.0 - abar_full[ts[i]] / prev, 1e-9);
      if (!(beta[i] > 0.0 && beta[i] < 1.0))
        g_error ("T=%d \"%s\": beta[%d] = %g", T, respacing, i, beta[i]);
      g_assert_cmpfloat (beta[i], >, 0.0);
      g_assert_cmpfloat (beta[i], <, 1.0);
      prod *= 1.0 - beta[i];
      assert_rel (prod, abar_full[ts[i]], 1e-11);
      assert_rel (abar[i], abar_full[ts[i]], 1e-11);
    }
}

static void
test_respacing (void)
{
  /* "ddim50", T = 1000: stride 20 (len(range(0, 1000, 20)) = 50) */
  gint ddim50[50];
  for (gint i = 0; i < 50; i++)
    ddim50[i] = 20 * i;
  check_respacing (DIFFUSE_SCHEDULE_LINEAR, 1000, "ddim50", ddim50, 50);
  check_respacing (DIFFUSE_SCHEDULE_COSINE, 1000, "ddim50", ddim50, 50);

  /* "ddim3", T = 10: strides 4 and 5 give 3 elements; the first is taken */
  const gint ddim3[] = { 0, 4, 8 };
  check_respacing (DIFFUSE_SCHEDULE_COSINE, 10, "ddim3", ddim3, 3);

  /* "10,10,10", T = 1000: sections of 334, 333, 333 steps.
   * Section 0: stride 333/9 = 37 exactly → 0, 37, …, 333.
   * Sections 1, 2: stride 332/9 = 36.89: k·36.89 rounds to
   * 0 37 74 111 148 184 221 258 295 332, plus 334 or 667. */
  const gint s10[] = { 0,   37,  74,  111, 148, 185, 222, 259, 296, 333,
                       334, 371, 408, 445, 482, 518, 555, 592, 629, 666,
                       667, 704, 741, 778, 815, 851, 888, 925, 962, 999 };
  check_respacing (DIFFUSE_SCHEDULE_LINEAR, 1000, "10,10,10", s10, 30);

  /* "25,15", T = 100: sections of 50.  Section 1 has stride 49/14 = 3.5,
   * so 53.5, 60.5, … round half to EVEN (Python's round): 54, 60, 68, 74,
   * 82, 88, 96.  Section 0 has stride 49/24; 12 strides accumulate to
   * just over 24.5, giving 25. */
  const gint s2515[] = { 0,  2,  4,  6,  8,  10, 12, 14, 16, 18, 20, 22, 25, 27,
                         29, 31, 33, 35, 37, 39, 41, 43, 45, 47, 49, 50, 54, 57,
                         60, 64, 68, 71, 74, 78, 82, 85, 88, 92, 96, 99 };
  check_respacing (DIFFUSE_SCHEDULE_COSINE, 100, "25,15", s2515, 40);

  /* one section: "3" on T = 10 → stride 4.5: 0, 4.5 → 4 (even), 9 */
  const gint s3[] = { 0, 4, 9 };
  check_respacing (DIFFUSE_SCHEDULE_COSINE, 10, "3", s3, 3);

  /* "2,2,2" on T = 7: sections 3, 2, 2 → {0, 2}, {3, 4}, {5, 6} */
  const gint s222[] = { 0, 2, 3, 4, 5, 6 };
  check_respacing (DIFFUSE_SCHEDULE_COSINE, 7, "2,2,2", s222, 6);

  /* "1": a single step at t = 0; blanks around numbers are accepted */
  const gint s1[] = { 0 };
  check_respacing (DIFFUSE_SCHEDULE_LINEAR, 1000, "1", s1, 1);
  const gint s11[] = { 0, 500 };
  check_respacing (DIFFUSE_SCHEDULE_LINEAR, 1000, " 1 , 1", s11, 2);

  /* all steps, written out */
  gint all[40];
  for (gint i = 0; i < 40; i++)
    all[i] = i;
  check_respacing (DIFFUSE_SCHEDULE_COSINE, 40, "40", all, 40);
  check_respacing (DIFFUSE_SCHEDULE_COSINE, 40, "ddim40", all, 40);
}

static void
test_bad_respacing (void)
{
  static const struct
  {
    gint T;
    const char *s;
  } bad[] = {
    { 1000, "ddim" },
    { 1000, "ddim0" },
    { 1000, "ddimx" },
    { 1000, "ddim50x" },
    { 1000, "ddim-5" },
    { 1000, "ddim999" },
    { 1000, "ddim1001" },
    { 1000, "0" },
    { 1000, "10,0" },
    { 1000, "abc" },
    { 1000, "10,,10" },
    { 1000, "-5" },
    { 1000, "1001" },
    { 15, "10,10" },
    { 2, "1,1,1" },
    { 1000, "5.5" },
    { 1000, "10;10" },
    { 1000, "," },
    { 1000, "99999999999999999999" },
    { 1, "ddim1" },
  };

  for (guint k = 0; k < G_N_ELEMENTS (bad); k++)
    {
      g_autoptr (GError) error = NULL;
      DiffuseSchedule *s = diffuse_schedule_new (DIFFUSE_SCHEDULE_COSINE,
                                                 bad[k].T, bad[k].s, &error);

      if (s != NULL)
        g_error ("respacing \"%s\" on T=%d was accepted", bad[k].s, bad[k].T);
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
      g_test_message ("T=%d \"%s\": %s", bad[k].T, bad[k].s, error->message);
    }

  g_autoptr (GError) error = NULL;
  g_assert_null (
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 0, NULL, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_null (
      diffuse_schedule_new (DIFFUSE_SCHEDULE_COUNT, 1000, NULL, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_clear_error (&error);
  /* linear β_T = 0.02·1000/T: T = 10 would need β up to 2 */
  g_assert_null (
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 10, NULL, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_test_message ("linear T=10: %s", error->message);
}

static void
test_strength (void)
{
  g_autoptr (DiffuseSchedule) s =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 1000, "ddim50", NULL);
  /* timesteps 0, 20, …, 980 */
  g_assert_cmpint (diffuse_schedule_index_for_strength (s, 1.0), ==,
                   49); /* 1000 → 980 */
  g_assert_cmpint (diffuse_schedule_index_for_strength (s, 0.5), ==,
                   25); /* 500 */
  g_assert_cmpint (diffuse_schedule_index_for_strength (s, 0.052), ==,
                   3); /* 52 → 60 */
  g_assert_cmpint (diffuse_schedule_index_for_strength (s, 0.05), ==,
                   2); /* tie 40/60 → 40 */
  g_assert_cmpint (diffuse_schedule_index_for_strength (s, 0.011), ==,
                   1); /* 11 → 20 */
  g_assert_cmpint (diffuse_schedule_index_for_strength (s, 0.009), ==,
                   0); /* 9 → 0 */
  g_assert_cmpint (diffuse_schedule_index_for_strength (s, 0.0), ==, 0);

  g_autoptr (DiffuseSchedule) full =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_COSINE, 100, NULL, NULL);
  g_assert_cmpint (diffuse_schedule_index_for_strength (full, 1.0), ==, 99);
  g_assert_cmpint (diffuse_schedule_index_for_strength (full, 0.3), ==, 30);
}

/* `steps` without a respacing string: every run starts at t = T−1, also
 * with one step (where guided-diffusion's section "1" would keep t = 0);
 * ᾱ of that single step is the full product, as without respacing. */
static void
test_steps (void)
{
  g_autoptr (DiffuseSchedule) full =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_COSINE, 1000, NULL, NULL);
  const double *abar_full = diffuse_schedule_get_alphas_cumprod (full);
  g_autoptr (GError) error = NULL;

  g_autoptr (DiffuseSchedule) one =
      diffuse__schedule_new_steps (DIFFUSE_SCHEDULE_COSINE, 1000, 1, &error);
  g_assert_no_error (error);
  g_assert_cmpint (diffuse_schedule_get_n_steps (one), ==, 1);
  g_assert_cmpint (diffuse_schedule_get_timesteps (one)[0], ==, 999);
  g_assert_cmpfloat (
      fabs (diffuse_schedule_get_alphas_cumprod (one)[0] - abar_full[999]), <,
      1e-15);

  g_autoptr (DiffuseSchedule) two =
      diffuse__schedule_new_steps (DIFFUSE_SCHEDULE_COSINE, 1000, 2, &error);
  g_assert_cmpint (diffuse_schedule_get_n_steps (two), ==, 2);
  g_assert_cmpint (diffuse_schedule_get_timesteps (two)[0], ==, 0);
  g_assert_cmpint (diffuse_schedule_get_timesteps (two)[1], ==, 999);

  g_autoptr (DiffuseSchedule) all =
      diffuse__schedule_new_steps (DIFFUSE_SCHEDULE_COSINE, 1000, 1000, &error);
  g_assert_cmpint (diffuse_schedule_get_n_steps (all), ==, 1000);

  g_autoptr (DiffuseSchedule) none =
      diffuse__schedule_new_steps (DIFFUSE_SCHEDULE_COSINE, 1000, 0, &error);
  g_assert_null (none);
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/schedule/linear", test_linear);
  g_test_add_func ("/schedule/cosine", test_cosine);
  g_test_add_func ("/schedule/respacing", test_respacing);
  g_test_add_func ("/schedule/bad-respacing", test_bad_respacing);
  g_test_add_func ("/schedule/strength", test_strength);
  g_test_add_func ("/schedule/steps", test_steps);
  return g_test_run ();
}
