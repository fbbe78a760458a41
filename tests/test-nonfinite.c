/* No silent NaN: non-finite or absurd inputs are refused before the run,
 * and a run that produces NaN or Inf fails at that step (issue 10). */
#include "diffuse.h"

#include <math.h>
#include <string.h>

#define C 1
#define H 4
#define W 4
#define N (C * H * W)

typedef struct
{
  gint nan_at; /* t_index at which ε̂ becomes NaN, -1 never */
  gint calls;
} Denoiser;

/* ε̂ = 0.1·x (a harmless closed form), NaN at one step when asked */
static gboolean
denoise (gpointer user_data, gint batch, const float *x_t, gint t_index,
         double t_model, float *eps_out, float *var_out, GError **error)
{
  Denoiser *d = user_data;

  (void) t_model;
  (void) var_out;
  (void) error;
  d->calls++;
  for (gint i = 0; i < batch * N; i++)
    eps_out[i] = t_index == d->nan_at ? NAN : 0.1f * x_t[i];
  return TRUE;
}

static gboolean
run (const DiffuseSampleParams *params, Denoiser *d, float *out, GError **error)
{
  g_autoptr (DiffuseSchedule) s =
      diffuse_schedule_new (DIFFUSE_SCHEDULE_LINEAR, 100, "10", NULL);

  return diffuse_sample_with (s, denoise, d, FALSE, params, 1, C, H, W, out,
                              NULL, error);
}

static void
test_run_nan (void)
{
  DiffuseSampleParams params;
  Denoiser d = { 5, 0 };
  float out[N];
  g_autoptr (GError) error = NULL;

  diffuse_sample_params_init (&params);
  memset (out, 0, sizeof out);
  g_assert_false (run (&params, &d, out, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL);
  g_assert_nonnull (strstr (error->message, "non-finite"));
  /* t_index 9 .. 5: it stops at the step that made the NaN */
  g_assert_nonnull (strstr (error->message, "step 5 of 10"));
  g_assert_cmpint (d.calls, ==, 5);
  g_clear_error (&error);

  d.nan_at = -1;
  d.calls = 0;
  g_assert_true (run (&params, &d, out, &error));
  g_assert_no_error (error);
  for (gint i = 0; i < N; i++)
    g_assert_true (isfinite (out[i]));
}

static void
test_bad_inputs (void)
{
  const float bad[] = { NAN, INFINITY, -INFINITY, 3e38f, -1001.0f };
  float out[N], noise[N], image[N];

  for (guint k = 0; k < G_N_ELEMENTS (bad); k++)
    for (gint which = 0; which < 2; which++)
      {
        DiffuseSampleParams params;
        Denoiser d = { -1, 0 };
        g_autoptr (GError) error = NULL;

        diffuse_sample_params_init (&params);
        for (gint i = 0; i < N; i++)
          noise[i] = image[i] = 0.5f;
        (which ? image : noise)[3] = bad[k];
        params.init_noise = noise;
        if (which)
          {
            params.init_image = image;
            params.strength = 0.5;
          }
        g_assert_false (run (&params, &d, out, &error));
        g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
        g_assert_nonnull (
            strstr (error->message, which ? "input image" : "noise"));
        g_assert_nonnull (strstr (error->message, "at index 3"));
        g_assert_cmpint (d.calls, ==, 0); /* refused before any work */
        g_test_message ("%s", error->message);
      }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/nonfinite/run-nan", test_run_nan);
  g_test_add_func ("/nonfinite/bad-inputs", test_bad_inputs);
  return g_test_run ();
}
