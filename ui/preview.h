/* The live preview: predicted x0 planes -> a GdkPixbuf. */
#ifndef DP_PREVIEW_H
#define DP_PREVIEW_H

#include <gdk-pixbuf/gdk-pixbuf.h>

G_BEGIN_DECLS

/* planes: [count, channels, height, width] in [-1, 1] (channels 1..4).
 * The samples are laid out in a row, alpha composited over a
 * checkerboard, and scaled by a whole factor (nearest neighbour) to fit
 * max_size pixels. */
GdkPixbuf *dp_preview_pixbuf (const float *planes, gint count, gint channels,
                              gint height, gint width, gint max_size);

G_END_DECLS

#endif /* DP_PREVIEW_H */
