/* libFuzzer target: PNG decoding (diffuse_png_load's decoder on bytes).
 * Every input must come back as an image or a GError: no crash, leak,
 * out-of-bounds read or unbounded allocation.  The channel count asked
 * for follows the input's size, so every conversion is reached.
 * Seeds: png/seeds; crash regressions: png/regress (replayed by meson
 * test through standalone.c). */
#include <stdint.h>

#include "diffuse-private.h"

/* PNG paths are all reachable far below this */
#define FUZZ_MAX_INPUT (1u << 20)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  gint c = -1, h = -1, w = -1;
  gint channels = (gint) (size % 5);
  float *img;

  if (size > FUZZ_MAX_INPUT)
    return 0;
  img = diffuse__png_load_bytes (data, size, channels, &c, &h, &w, &error);
  if (img != NULL)
    {
      volatile float sink = 0;
      gsize n;

      g_assert (error == NULL);
      g_assert (c >= 1 && c <= 4 && (channels == 0 || c == channels));
      g_assert (h >= 1 && w >= 1);
      n = (gsize) c * h * w;
      /* every value read (ASan: in bounds), all in [-1, 1] */
      for (gsize i = 0; i < n; i++)
        {
          g_assert (img[i] >= -1.0f && img[i] <= 1.0f);
          sink += img[i];
        }
      (void) sink;
      g_free (img);
    }
  else
    {
      g_assert (error != NULL && error->message != NULL);
      g_error_free (error);
    }
  return 0;
}
