/* libFuzzer target: .npy parsing (diffuse_npy_load's parser on bytes).
 * Every input must come back as an array or a GError: no crash, leak,
 * out-of-bounds read, and no allocation beyond what the input holds.
 * Seeds: npy/seeds; crash regressions: npy/regress. */
#include <stdint.h>

#include "diffuse-private.h"

#define FUZZ_MAX_INPUT (1u << 20)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  gint ndim = -1;
  gint64 shape[4];
  float *a;

  if (size > FUZZ_MAX_INPUT)
    return 0;
  a = diffuse__npy_load_bytes (data, size, &ndim, shape, &error);
  if (a != NULL)
    {
      volatile float sink = 0;
      guint64 n = 1;

      g_assert (error == NULL && ndim >= 0 && ndim <= 4);
      for (gint i = 0; i < ndim; i++)
        n *= (guint64) shape[i];
      /* the data is the input's own bytes: never more than it holds */
      g_assert (n * 4 <= size);
      for (guint64 i = 0; i < n; i++)
        sink += a[i];
      (void) sink;
      g_free (a);
    }
  else
    {
      g_assert (error != NULL && error->message != NULL);
      g_error_free (error);
    }
  return 0;
}
