/* β schedules, ᾱ and timestep respacing.
 *
 * Everything is double precision, computed in the same order as
 * guided-diffusion (gaussian_diffusion.py, respace.py) so that the numpy
 * reference (tools/diffref/diffusion.py) gets the same numbers.
 *
 * Seed notes (../shared/seeds/): "Parameterization of β_t" gives the linear
 * schedule and ᾱ_t = ∏ (1 − β_s); "Fewer Sampling Steps" gives the strided
 * sub-sequence {τ_1 < … < τ_S} and the respaced quantities.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "diffuse-private.h"
#include "gaussian-diffusion.h"

struct _DiffuseSchedule
{
  DiffuseScheduleKind kind;
  gint T;                 /* original number of diffusion steps */
  gint n;                 /* kept steps */
  gint *timesteps;        /* [n] original t of each kept step, ascending */
  double *betas;          /* [n] respaced β_i */
  double *alphas_cumprod; /* [n] respaced ᾱ_i = ∏_{j≤i} (1 − β_j) */
};

/* Linear schedule (Ho et al. 2020 §4; seed "Parameterization of β_t":
 * β_t = β_min + (t−1)/(T−1)·(β_max − β_min)), with guided-diffusion's
 * scaling by 1000/T so that any T covers the same noise range.  Computed
 * like numpy.linspace: start + i·step, last entry exactly β_max. */
static void
betas_linear (gint T, double *betas)
{
  double scale = 1000.0 / T;
  double start = scale * 0.0001;
  double end = scale * 0.02;

  if (T == 1)
    {
      betas[0] = start;
      return;
    }
  double step = (end - start) / (T - 1);
  for (gint i = 0; i < T; i++)
    betas[i] = i * step + start;
  betas[T - 1] = end;
}

/* f(t) of Nichol & Dhariwal 2021, eq. 17: ᾱ(t) = f(t)/f(0),
 * f(t) = cos²((t/T + s)/(1 + s) · π/2), s = 0.008; here u = t/T. */
static double
cosine_f (double u)
{
  double c = cos ((u + 0.008) / 1.008 * G_PI / 2.0);
  return c * c;
}

/* Cosine schedule (improved DDPM eq. 17): β_t = 1 − ᾱ_t/ᾱ_{t−1}, clipped
 * at 0.999 to avoid the singularity at t = T (guided-diffusion's
 * betas_for_alpha_bar; f(0) cancels in the ratio). */
static void
betas_cosine (gint T, double *betas)
{
  for (gint i = 0; i < T; i++)
    {
      double t1 = (double) i / T;
      double t2 = (double) (i + 1) / T;

      betas[i] = MIN (1.0 - cosine_f (t2) / cosine_f (t1), 0.999);
    }
}

/* A decimal integer with optional surrounding blanks (what Python's int()
 * accepts in practice); FALSE for anything else or overflow. */
static gboolean
parse_int (const char *s, const char *end, gint64 *out)
{
  while (s < end && g_ascii_isspace (*s))
    s++;
  while (end > s && g_ascii_isspace (end[-1]))
    end--;
  if (s == end)
    return FALSE;

  gint64 v = 0;
  for (const char *p = s; p < end; p++)
    {
      if (!g_ascii_isdigit (*p))
        return FALSE;
      v = v * 10 + (*p - '0');
      if (v > G_MAXINT)
        return FALSE;
    }
  *out = v;
  return TRUE;
}

/* guided-diffusion's space_timesteps for "ddimN": the smallest stride
 * i in 1..T−1 with len(range(0, T, i)) = ceil(T / i) = n; 0 when none. */
gint
diffuse__ddim_stride (gint T, gint n)
{
  for (gint i = 1; i < T; i++)
    if ((T + i - 1) / i == n)
      return i;
  return 0;
}

/* "ddimN": the DDIM paper's fixed stride (diffuse__ddim_stride). */
static gboolean
respace_ddim (gint T, const char *respacing, gboolean *keep, GError **error)
{
  gint64 want;

  if (!parse_int (respacing + 4, respacing + strlen (respacing), &want) ||
      want < 1)
    {
      g_set_error (
          error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
          "respacing \"%s\": expected \"ddimN\" with N a positive integer",
          respacing);
      return FALSE;
    }
  gint stride = want <= T ? diffuse__ddim_stride (T, (gint) want) : 0;

  if (stride > 0)
    {
      for (gint t = 0; t < T; t += stride)
        keep[t] = TRUE;
      return TRUE;
    }
  g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
               "respacing \"%s\": cannot take exactly %" G_GINT64_FORMAT
               " of %d steps with an integer stride",
               respacing, want, T);
  return FALSE;
}

/* "a,b,c": T is split into len(counts) sections (the first T % len one step
 * longer), and section k keeps counts[k] steps at the fractional stride
 * (size−1)/(count−1), rounded half-to-even like Python's round(). */
static gboolean
respace_sections (gint T, const char *respacing, gboolean *keep, GError **error)
{
  g_auto (GStrv) parts = g_strsplit (respacing, ",", -1);
  guint n_sections = g_strv_length (parts);
  g_autofree gint64 *counts = g_new0 (gint64, MAX (n_sections, 1));

  for (guint k = 0; k < n_sections; k++)
    if (!parse_int (parts[k], parts[k] + strlen (parts[k]), &counts[k]) ||
        counts[k] < 1)
      {
        g_set_error (
            error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
            "respacing \"%s\": section %u (\"%s\") is not a positive "
            "integer; expected \"ddimN\" or comma-separated step counts",
            respacing, k + 1, parts[k]);
        return FALSE;
      }

  gint size_per = T / (gint) n_sections;
  gint extra = T % (gint) n_sections;
  gint start = 0;
  for (guint k = 0; k < n_sections; k++)
    {
      gint size = size_per + ((gint) k < extra ? 1 : 0);

      if (size < counts[k])
        {
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "respacing \"%s\": cannot divide section %u of %d steps "
                       "into %" G_GINT64_FORMAT " (T = %d)",
                       respacing, k + 1, size, counts[k], T);
          return FALSE;
        }
      double stride =
          counts[k] <= 1 ? 1.0 : (double) (size - 1) / (double) (counts[k] - 1);
      double cur = 0.0;
      for (gint64 j = 0; j < counts[k]; j++)
        {
          /* nearbyint rounds half to even in the default rounding mode */
          keep[start + (gint) nearbyint (cur)] = TRUE;
          cur += stride;
        }
      start += size;
    }
  return TRUE;
}

/* respacing as diffuse_schedule_new; with only_last, keep just t = T−1
 * (a one-step run must start where x_T ~ N(0, I) belongs). */
static DiffuseSchedule *
schedule_new (DiffuseScheduleKind kind, gint T, const char *respacing,
              gboolean only_last, GError **error)
{
  if ((guint) kind >= DIFFUSE_SCHEDULE_COUNT)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "unknown noise schedule %d", (int) kind);
      return NULL;
    }
  if (T < 1 || T > 100000)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "diffusion_steps T = %d is out of range (1..100000)", T);
      return NULL;
    }

  g_autofree double *betas = g_new (double, T);
  g_autofree gboolean *keep = g_new0 (gboolean, T);

  if (kind == DIFFUSE_SCHEDULE_LINEAR)
    betas_linear (T, betas);
  else
    betas_cosine (T, betas);
  /* the linear schedule's β_T = 20/T reaches 1 (ᾱ_T = 0) for T ≤ 20 */
  for (gint t = 0; t < T; t++)
    if (!(betas[t] > 0.0 && betas[t] < 1.0))
      {
        g_set_error (
            error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
            "%s schedule on T = %d steps has beta_%d = %g outside (0, 1)%s",
            diffuse_schedule_kind_to_string (kind), T, t + 1, betas[t],
            kind == DIFFUSE_SCHEDULE_LINEAR ? ": it needs T > 20" : "");
        return NULL;
      }

  if (only_last)
    keep[T - 1] = TRUE;
  else if (respacing == NULL || respacing[0] == '\0')
    {
      for (gint t = 0; t < T; t++)
        keep[t] = TRUE;
    }
  else if (g_str_has_prefix (respacing, "ddim"))
    {
      if (!respace_ddim (T, respacing, keep, error))
        return NULL;
    }
  else if (!respace_sections (T, respacing, keep, error))
    return NULL;

  DiffuseSchedule *s = g_new0 (DiffuseSchedule, 1);
  s->kind = kind;
  s->T = T;
  for (gint t = 0; t < T; t++)
    s->n += keep[t] ? 1 : 0;
  s->timesteps = g_new (gint, s->n);
  s->betas = g_new (double, s->n);
  s->alphas_cumprod = g_new (double, s->n);

  /* The kept steps' β, respaced from the full schedule's ᾱ, then ᾱ_i
   * recomputed as the cumulative product of the new (1 − β_i), as
   * GaussianDiffusion does (gaussian-diffusion.c). */
  g_autofree double *abars = g_new (double, T);
  double last = 1.0;
  gint i = 0;

  diffuse__alphas_cumprod (betas, T, abars);
  for (gint t = 0; t < T; t++)
    {
      if (!keep[t])
        continue;
      s->timesteps[i] = t;
      s->betas[i] = diffuse__respaced_beta (abars[t], last);
      last = abars[t];
      i++;
    }
  diffuse__alphas_cumprod (s->betas, s->n, s->alphas_cumprod);
  return s;
}

DiffuseSchedule *
diffuse_schedule_new (DiffuseScheduleKind kind, gint T, const char *respacing,
                      GError **error)
{
  return schedule_new (kind, T, respacing, FALSE, error);
}

/* `steps` without a respacing string: guided-diffusion's single section "N"
 * (N steps evenly over 0 … T−1, rounded), which for N ≥ 2 always holds
 * t = T−1, the step x_T ~ N(0, I) belongs to.  For N = 1 that section
 * would keep only t = 0 (pure noise read as an almost clean image), so a
 * one-step run keeps t = T−1 instead. */
DiffuseSchedule *
diffuse__schedule_new_steps (DiffuseScheduleKind kind, gint T, gint steps,
                             GError **error)
{
  if (steps < 1 || steps > T)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "steps = %d is out of range (1..%d)", steps, T);
      return NULL;
    }
  if (steps == 1)
    return schedule_new (kind, T, NULL, TRUE, error);

  g_autofree char *respacing =
      steps == T ? g_strdup ("") : g_strdup_printf ("%d", steps);
  return schedule_new (kind, T, respacing, FALSE, error);
}

void
diffuse_schedule_free (DiffuseSchedule *schedule)
{
  if (schedule == NULL)
    return;
  g_free (schedule->timesteps);
  g_free (schedule->betas);
  g_free (schedule->alphas_cumprod);
  g_free (schedule);
}

gint
diffuse_schedule_get_n_steps (const DiffuseSchedule *schedule)
{
  g_return_val_if_fail (schedule != NULL, 0);
  return schedule->n;
}

const gint *
diffuse_schedule_get_timesteps (const DiffuseSchedule *schedule)
{
  g_return_val_if_fail (schedule != NULL, NULL);
  return schedule->timesteps;
}

const double *
diffuse_schedule_get_betas (const DiffuseSchedule *schedule)
{
  g_return_val_if_fail (schedule != NULL, NULL);
  return schedule->betas;
}

const double *
diffuse_schedule_get_alphas_cumprod (const DiffuseSchedule *schedule)
{
  g_return_val_if_fail (schedule != NULL, NULL);
  return schedule->alphas_cumprod;
}

/* img2img (SDEdit, Meng et al. 2022): start the reverse process at the kept
 * step whose original t is nearest to strength·T.  Ties go to the smaller t
 * (less noise); strength ≤ 0 gives index 0. */
gint
diffuse_schedule_index_for_strength (const DiffuseSchedule *schedule,
                                     double strength)
{
  g_return_val_if_fail (schedule != NULL, 0);

  if (!(strength > 0.0))
    return 0;

  double target = strength * schedule->T;
  gint best = 0;
  double best_d = fabs (schedule->timesteps[0] - target);
  for (gint i = 1; i < schedule->n; i++)
    {
      double d = fabs (schedule->timesteps[i] - target);
      if (d < best_d)
        {
          best = i;
          best_d = d;
        }
    }
  return best;
}
