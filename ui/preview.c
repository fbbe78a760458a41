/* Predicted x0 -> pixbuf for the dialog's preview. */
#include "preview.h"

GdkPixbuf *
dp_preview_pixbuf (const float *planes, gint count, gint channels, gint height,
                   gint width, gint max_size)
{
  const gint gap = 2;
  gint sheet_w = count * width + (count - 1) * gap;
  gint factor = MAX (1, max_size / MAX (sheet_w, height));
  gsize plane = (gsize) height * width;
  GdkPixbuf *pixbuf;
  guchar *pixels;
  gint stride, k, y, x;

  pixbuf = gdk_pixbuf_new (GDK_COLORSPACE_RGB, FALSE, 8, sheet_w * factor,
                           height * factor);
  pixels = gdk_pixbuf_get_pixels (pixbuf);
  stride = gdk_pixbuf_get_rowstride (pixbuf);
  gdk_pixbuf_fill (pixbuf, 0x808080ff);

  for (k = 0; k < count; k++)
    for (y = 0; y < height * factor; y++)
      for (x = 0; x < width * factor; x++)
        {
          const float *img = planes + (gsize) k * channels * plane;
          gsize i = (gsize) (y / factor) * width + x / factor;
          gboolean has_alpha = channels == 2 || channels == 4;
          gint colour = channels >= 3 ? 3 : 1;
          float a = has_alpha ? (img[colour * plane + i] + 1.0f) * 0.5f : 1.0f;
          float check = ((x / 8 + y / 8) & 1) ? 0.8f : 0.6f;
          guchar *p = pixels + (gsize) y * stride +
                      (gsize) (k * (width + gap) * factor + x) * 3;
          gint c;

          a = CLAMP (a, 0.0f, 1.0f);
          for (c = 0; c < 3; c++)
            {
              float v = (img[(colour == 3 ? c : 0) * plane + i] + 1.0f) * 0.5f;

              v = CLAMP (v, 0.0f, 1.0f) * a + check * (1.0f - a);
              p[c] = (guchar) (v * 255.0f + 0.5f);
            }
        }
  return pixbuf;
}
