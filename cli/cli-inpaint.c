/* diffuse inpaint's own parts: the mask file and the context window's
 * crop and paste (the window itself is the engine's,
 * diffuse_inpaint_plan, shared with the plug-in). */
#include "cli.h"

#include <string.h>

float *
cli_load_mask (const char *path, gint height, gint width, GError **error)
{
  gint c, h, w;
  g_autofree float *png = diffuse_png_load (path, 0, &c, &h, &w, error);
  float *mask;
  gsize hw;

  if (png == NULL)
    {
      g_prefix_error (error, "--mask: ");
      return NULL;
    }
  if (h != height || w != width)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "--mask: %s is %d x %d, the input is %d x %d: the mask "
                   "must have the input's size",
                   path, w, h, width, height);
      return NULL;
    }
  hw = (gsize) h * w;
  mask = g_new (float, hw);
  for (gsize j = 0; j < hw; j++)
    {
      float v;

      if (c == 2 || c == 4) /* the alpha channel */
        v = png[(gsize) (c - 1) * hw + j];
      else if (c == 3)
        v = (png[j] + png[hw + j] + png[2 * hw + j]) / 3.0f;
      else
        v = png[j];
      /* 0..255 was mapped to v = p / 127.5 − 1; back to p / 255 */
      mask[j] = CLAMP ((v + 1.0f) * 0.5f, 0.0f, 1.0f);
    }
  return mask;
}

float *
cli_crop_window (const DiffuseInpaintPlan *plan, const float *image,
                 gint channels, gint height, gint width)
{
  float *out = g_new (float, (gsize) channels * plan->height * plan->width);

  for (gint c = 0; c < channels; c++)
    for (gint r = 0; r < plan->height; r++)
      memcpy (out + ((gsize) c * plan->height + r) * plan->width,
              image + ((gsize) c * height + plan->y + r) * width + plan->x,
              sizeof (float) * plan->width);
  return out;
}

void
cli_paste_window (const DiffuseInpaintPlan *plan, const float *window,
                  gint channels, gint height, gint width, float *image)
{
  for (gint c = 0; c < channels; c++)
    for (gint r = 0; r < plan->height; r++)
      memcpy (image + ((gsize) c * height + plan->y + r) * width + plan->x,
              window + ((gsize) c * plan->height + r) * plan->width,
              sizeof (float) * plan->width);
}
