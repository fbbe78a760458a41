/* GEGL buffers <-> planar float images in [-1, 1].
 *
 * babl converts between the drawable's own format (grey, RGB, with or
 * without alpha, any precision) and the model's channel layout:
 * 1 = Y', 2 = Y'A, 3 = R'G'B', 4 = R'G'B'A, all non-linear ("'") since
 * the models were trained on 8-bit sRGB files mapped by p / 127.5 - 1,
 * i.e. 2v - 1 for the non-linear value v in [0, 1].  The drawable's
 * colour space (its profile) is kept. */
#include "plugin.h"

static const char *const format_names[5] = {
  NULL, "Y' float", "Y'A float", "R'G'B' float", "R'G'B'A float",
};

const Babl *
dp_pixels_format (GimpDrawable *drawable, gint channels)
{
  g_return_val_if_fail (channels >= 1 && channels <= 4, NULL);
  return babl_format_with_space (format_names[channels],
                                 gimp_drawable_get_format (drawable));
}

float *
dp_pixels_read (GimpDrawable *drawable, gint x, gint y, gint width, gint height,
                gint channels)
{
  GeglBuffer *buffer = gimp_drawable_get_buffer (drawable);
  gsize n = (gsize) width * height;
  float *packed = g_new (float, n *channels);
  float *planes = g_new (float, n *channels);
  gsize i;
  gint c;

  gegl_buffer_get (buffer, GEGL_RECTANGLE (x, y, width, height), 1.0,
                   dp_pixels_format (drawable, channels), packed,
                   GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_CLAMP);
  g_object_unref (buffer);

  for (c = 0; c < channels; c++)
    for (i = 0; i < n; i++)
      planes[c * n + i] =
          2.0f * CLAMP (packed[i * channels + c], 0.0f, 1.0f) - 1.0f;
  g_free (packed);
  return planes;
}

float *
dp_pixels_read_alpha (GimpDrawable *drawable, gint x, gint y, gint width,
                      gint height)
{
  GeglBuffer *buffer = gimp_drawable_get_buffer (drawable);
  float *alpha = g_new (float, (gsize) width *height);

  gegl_buffer_get (buffer, GEGL_RECTANGLE (x, y, width, height), 1.0,
                   babl_format ("A float"), alpha, GEGL_AUTO_ROWSTRIDE,
                   GEGL_ABYSS_CLAMP);
  g_object_unref (buffer);
  return alpha;
}

/* planes [channels, H, W] in [-1, 1]; alpha [H, W] in [0, 1] or NULL.
 * With alpha (and channels 1 or 3) the pixels are written as Y'A or
 * R'G'B'A so that the layer keeps its own transparency. */
void
dp_pixels_write (GeglBuffer *buffer, GimpDrawable *drawable, gint x, gint y,
                 gint width, gint height, gint channels, const float *planes,
                 const float *alpha)
{
  gsize n = (gsize) width * height;
  gint out_channels = channels;
  gboolean add_alpha = alpha != NULL && (channels == 1 || channels == 3);
  float *packed;
  gsize i;
  gint c;

  if (add_alpha)
    out_channels++;
  packed = g_new (float, n *out_channels);
  for (c = 0; c < channels; c++)
    for (i = 0; i < n; i++)
      packed[i * out_channels + c] =
          CLAMP ((planes[c * n + i] + 1.0f) * 0.5f, 0.0f, 1.0f);
  if (add_alpha)
    for (i = 0; i < n; i++)
      packed[i * out_channels + channels] = alpha[i];

  gegl_buffer_set (buffer, GEGL_RECTANGLE (x, y, width, height), 0,
                   dp_pixels_format (drawable, out_channels), packed,
                   GEGL_AUTO_ROWSTRIDE);
  g_free (packed);
}
