/* The error domain and the enum <-> string helpers of diffuse.h.
 *
 * The strings are the ones users type (CLI options, preset files, the
 * model metadata), so from_string is case-insensitive and to_string gives
 * the canonical lower-case spelling. */
#include "diffuse-private.h"

/* the quark's name is stringified as written: keep it unformatted */
/* clang-format off */
G_DEFINE_QUARK (diffuse-error-quark, diffuse_error)
/* clang-format on */

gboolean
diffuse__set_named_errorv (GError **error, gint code, const char *name,
                           const char *format, va_list args)
{
  g_autofree gchar *msg = g_strdup_vprintf (format, args);

  g_set_error (error, DIFFUSE_ERROR, code, "%s: %s", name, msg);
  return FALSE;
}

gboolean
diffuse__invalid (GError **error, const char *format, ...)
{
  va_list args;

  va_start (args, format);
  if (error != NULL)
    *error =
        g_error_new_valist (DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID, format, args);
  va_end (args);
  return FALSE;
}

static const char *const schedule_names[DIFFUSE_SCHEDULE_COUNT] = {
  [DIFFUSE_SCHEDULE_LINEAR] = "linear",
  [DIFFUSE_SCHEDULE_COSINE] = "cosine",
};

static const char *const sampler_names[DIFFUSE_SAMPLER_COUNT] = {
  [DIFFUSE_SAMPLER_DDIM] = "ddim",
  [DIFFUSE_SAMPLER_DDPM] = "ddpm",
};

static const char *const variance_names[DIFFUSE_VARIANCE_COUNT] = {
  [DIFFUSE_VARIANCE_AUTO] = "auto",
  [DIFFUSE_VARIANCE_LEARNED] = "learned",
  [DIFFUSE_VARIANCE_FIXED_SMALL] = "fixed-small",
  [DIFFUSE_VARIANCE_FIXED_LARGE] = "fixed-large",
};

/* Index of s in names (case-insensitive), or -1.  '_' in s matches '-'
 * so that "fixed_small" (guided-diffusion's spelling) works too. */
static gint
lookup_name (const char *const *names, gint n, const char *s)
{
  gint i;

  if (s == NULL)
    return -1;
  for (i = 0; i < n; i++)
    {
      const char *a = names[i];
      const char *b = s;

      while (*a != '\0' && *b != '\0')
        {
          char cb = g_ascii_tolower (*b);

          if (cb == '_')
            cb = '-';
          if (*a != cb)
            break;
          a++;
          b++;
        }
      if (*a == '\0' && *b == '\0')
        return i;
    }
  return -1;
}

const char *
diffuse_schedule_kind_to_string (DiffuseScheduleKind kind)
{
  g_return_val_if_fail ((guint) kind < DIFFUSE_SCHEDULE_COUNT, NULL);
  return schedule_names[kind];
}

gboolean
diffuse_schedule_kind_from_string (const char *s, DiffuseScheduleKind *out)
{
  gint i = lookup_name (schedule_names, DIFFUSE_SCHEDULE_COUNT, s);

  if (i < 0)
    return FALSE;
  if (out != NULL)
    *out = (DiffuseScheduleKind) i;
  return TRUE;
}

const char *
diffuse_sampler_kind_to_string (DiffuseSamplerKind kind)
{
  g_return_val_if_fail ((guint) kind < DIFFUSE_SAMPLER_COUNT, NULL);
  return sampler_names[kind];
}

gboolean
diffuse_sampler_kind_from_string (const char *s, DiffuseSamplerKind *out)
{
  gint i = lookup_name (sampler_names, DIFFUSE_SAMPLER_COUNT, s);

  if (i < 0)
    return FALSE;
  if (out != NULL)
    *out = (DiffuseSamplerKind) i;
  return TRUE;
}

const char *
diffuse_variance_kind_to_string (DiffuseVarianceKind kind)
{
  g_return_val_if_fail ((guint) kind < DIFFUSE_VARIANCE_COUNT, NULL);
  return variance_names[kind];
}

gboolean
diffuse_variance_kind_from_string (const char *s, DiffuseVarianceKind *out)
{
  gint i = lookup_name (variance_names, DIFFUSE_VARIANCE_COUNT, s);

  if (i < 0)
    return FALSE;
  if (out != NULL)
    *out = (DiffuseVarianceKind) i;
  return TRUE;
}
