/* bf16 convolutions (conv-bf16.c): the DIFFUSE_PRECISION_BF16 path of
 * the UNet's convolutions.  Not installed.
 *
 * With oneDNN (DIFFUSE_HAVE_ONEDNN): each convolution is a oneDNN
 * convolution primitive with bf16 source and weights, fp32 bias and
 * fp32 destination (fp32 accumulation), in oneDNN's NHWC layout; the
 * [C, B, H, W] float activations are rounded to bf16 on the way in, and
 * the fp32 result is added back (bias2, residual) on the way out.
 * oneDNN picks the kernel for the CPU: AMX, AVX512_BF16, or its own bf16
 * emulation on CPUs without them.
 *
 * Without oneDNN (or when the caller asks for it): the same arithmetic
 * emulated with the fp32 kernels, on weights and inputs rounded to bf16
 * (round to nearest even), as im2col + sgemm: the products of two bf16
 * values are exact in fp32, so only the order of the fp32 sums differs.
 *
 * The weights in bf16 (in the primitive's layout, or rounded) are made
 * the first time a convolution is run with this state and kept; a state
 * is used by one thread at a time (as the DiffuseUNet that owns it). */
#ifndef DIFFUSE_CONV_BF16_H
#define DIFFUSE_CONV_BF16_H

#include <glib.h>

#include "diffuse-private.h"
#include "threadpool.h"

G_BEGIN_DECLS

typedef struct _DiffuseBf16Convs DiffuseBf16Convs;

/* emulate: use the fp32-emulated path even when oneDNN is there.
 * release_from (or NULL): the file the fp32 weights are mapped from; once
 * a layer's bf16 weights are made, its fp32 weights' pages are dropped
 * from the process (diffuse__safetensors_release), so that a bf16 run
 * holds the weights once, in bf16.  Leave it NULL where the fp32 weights
 * stay in use (the classifier's gradient reads them every step). */
DiffuseBf16Convs *
diffuse__bf16_convs_new (gint n_threads, gboolean emulate,
                         const DiffuseSafetensors *release_from);
void diffuse__bf16_convs_free (DiffuseBf16Convs *convs);

/* As diffuse__conv2d (layers.h) with k = 1 or 3, in bf16; w (the fp32
 * weights, which stay valid and unchanged as long as convs lives) also
 * names the layer.  FALSE with a GError when oneDNN fails (memory). */
gboolean diffuse__bf16_conv2d (DiffuseBf16Convs *convs, DiffusePool *pool,
                               const float *x, gint c_in, gint batch,
                               gint height, gint width, const float *w,
                               const float *bias, const float *bias2,
                               gsize b2_stride, gint c_out, gint k, gint stride,
                               gboolean accumulate, float *out, GError **error);

/* float -> bf16 bits, rounded to nearest even (NaN stays NaN) */
static inline guint16
diffuse__bf16_from_float (float f)
{
  union
  {
    float f;
    guint32 u;
  } v = { f };

  if ((v.u & 0x7fffffffu) > 0x7f800000u)
    return (guint16) ((v.u >> 16) | 0x40);
  return (guint16) ((v.u + 0x7fffu + ((v.u >> 16) & 1u)) >> 16);
}

/* f rounded to the nearest bf16, as a float */
static inline float
diffuse__bf16_round (float f)
{
  union
  {
    guint32 u;
    float f;
  } v = { (guint32) diffuse__bf16_from_float (f) << 16 };

  return v.f;
}

G_END_DECLS

#endif /* DIFFUSE_CONV_BF16_H */
