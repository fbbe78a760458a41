/* libFuzzer target: schedules and respacing strings
 * (diffuse_schedule_new).  The first two bytes pick T (1..4096) and the
 * schedule kind, the rest is the respacing string.  Every input gives a
 * schedule whose kept steps are ascending, inside 0..T-1, with β in
 * (0, 1], or a GError.  Seeds: respacing/seeds. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "diffuse-private.h"

#define FUZZ_MAX_INPUT 4096

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  DiffuseSchedule *s;
  gchar *text;
  gint T;
  DiffuseScheduleKind kind;

  if (size < 2 || size > FUZZ_MAX_INPUT)
    return 0;
  T = 1 + ((data[0] | (data[1] << 8)) & 0xfff);
  kind = (data[1] & 0x80) ? DIFFUSE_SCHEDULE_COSINE : DIFFUSE_SCHEDULE_LINEAR;
  text = g_strndup ((const char *) data + 2, size - 2);
  s = diffuse_schedule_new (kind, T, text, &error);
  if (s != NULL)
    {
      gint n = diffuse_schedule_get_n_steps (s);
      const gint *t = diffuse_schedule_get_timesteps (s);
      const double *beta = diffuse_schedule_get_betas (s);
      const double *abar = diffuse_schedule_get_alphas_cumprod (s);

      g_assert (error == NULL && n >= 1 && n <= T);
      for (gint i = 0; i < n; i++)
        {
          g_assert (t[i] >= 0 && t[i] < T);
          g_assert (i == 0 || t[i] > t[i - 1]);
          g_assert (beta[i] > 0.0 && beta[i] <= 1.0);
          g_assert (abar[i] > 0.0 && abar[i] < 1.0 && isfinite (abar[i]));
        }
      diffuse_schedule_index_for_strength (s, 0.5);
      diffuse_schedule_free (s);
    }
  else
    {
      g_assert (error != NULL && error->message != NULL);
      g_error_free (error);
    }
  g_free (text);
  return 0;
}
