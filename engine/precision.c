/* DiffusePrecision (diffuse.h): names, the CPU's bf16 support, and what
 * AUTO means on this machine. */
#include "diffuse-private.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

static const char *const precision_names[DIFFUSE_PRECISION_COUNT] = {
  [DIFFUSE_PRECISION_AUTO] = "auto",
  [DIFFUSE_PRECISION_FP32] = "fp32",
  [DIFFUSE_PRECISION_BF16] = "bf16",
};

const char *
diffuse_precision_to_string (DiffusePrecision precision)
{
  g_return_val_if_fail ((guint) precision < DIFFUSE_PRECISION_COUNT, NULL);
  return precision_names[precision];
}

gboolean
diffuse_precision_from_string (const char *s, DiffusePrecision *out)
{
  for (gint i = 0; s != NULL && i < DIFFUSE_PRECISION_COUNT; i++)
    if (g_ascii_strcasecmp (s, precision_names[i]) == 0)
      {
        if (out != NULL)
          *out = (DiffusePrecision) i;
        return TRUE;
      }
  return FALSE;
}

gboolean
diffuse_cpu_has_bf16 (void)
{
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
  guint a, b, c, d;
  guint64 xcr0;
  gboolean avx512_bf16, amx_bf16;

  /* the OS saves the AVX-512 state (XCR0 bits 1, 2, 5, 6, 7) */
  if (!__get_cpuid (1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE */
    return FALSE;
  __asm__("xgetbv" : "=a"(a), "=d"(d) : "c"(0));
  xcr0 = ((guint64) d << 32) | a;
  if ((xcr0 & 0xe6) != 0xe6)
    return FALSE;
  if (!__get_cpuid_count (7, 0, &a, &b, &c, &d))
    return FALSE;
  amx_bf16 = (d >> 22) & 1;
  if (!((b >> 16) & 1)) /* AVX512F */
    return FALSE;
  if (!__get_cpuid_count (7, 1, &a, &b, &c, &d))
    return amx_bf16;
  avx512_bf16 = (a >> 5) & 1;
  return avx512_bf16 || amx_bf16;
#else
  return FALSE;
#endif
}

gboolean
diffuse_have_onednn (void)
{
#ifdef DIFFUSE_HAVE_ONEDNN
  return TRUE;
#else
  return FALSE;
#endif
}

gboolean
diffuse_bf16_is_native (void)
{
  return diffuse_have_onednn () && diffuse_cpu_has_bf16 ();
}

gboolean
diffuse_precision_resolve (DiffusePrecision precision, guint64 flops_per_image,
                           DiffusePrecision *out, GError **error)
{
  const char *env;
  DiffusePrecision p = precision;

  g_return_val_if_fail ((guint) precision < DIFFUSE_PRECISION_COUNT, FALSE);
  if (p == DIFFUSE_PRECISION_AUTO)
    {
      env = g_getenv ("DIFFUSE_PRECISION");
      if (env != NULL && *env != '\0' &&
          !diffuse_precision_from_string (env, &p))
        {
          g_autofree gchar *text = diffuse_text_escape (env);

          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "DIFFUSE_PRECISION=\"%s\": expected fp32, bf16 or auto",
                       text);
          return FALSE;
        }
    }
  if (p == DIFFUSE_PRECISION_AUTO)
    p = diffuse_bf16_is_native () && flops_per_image >= DIFFUSE_BF16_MIN_FLOPS
            ? DIFFUSE_PRECISION_BF16
            : DIFFUSE_PRECISION_FP32;
  *out = p;
  return TRUE;
}
