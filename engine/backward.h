/* Backward (input-gradient) kernels for the classifier's gradient
 * ∇x log p(y | x_t) (backward.c): the transposes of layers.h's kernels,
 * on the same [C, B, H, W] layout.  Only gradients with respect to the
 * activations are formed, never with respect to weights.  Not installed.
 */
#ifndef DIFFUSE_BACKWARD_H
#define DIFFUSE_BACKWARD_H

#include "layers.h"

G_BEGIN_DECLS

/* Backward of diffuse__group_norm (same arguments as its forward call,
 * x being the forward input).  With z = GN (x)·γ·(1 + s) + β·(1 + s) +
 * shift and y = silu (z) (or y = z), given dy = ∂L/∂y:
 *   dẑ = dy · silu'(z) · γ_c (1 + s_bc),  x̂ = (x − μ)·rstd,
 *   dx = rstd · (dẑ − mean_g (dẑ) − x̂ · mean_g (dẑ · x̂))
 * per (b, group), sums in double.  dy is clobbered (it holds dẑ after);
 * dx may equal dy unless accumulate (dx += instead of dx =). */
void diffuse__group_norm_backward (DiffusePool *pool, const float *x,
                                   gint channels, gint batch, gsize hw,
                                   gint groups, float eps, const float *gamma,
                                   const float *beta, const float *scale,
                                   const float *shift, gsize ss_stride,
                                   gboolean silu, float *dy, float *dx,
                                   gboolean accumulate);

/* Backward of a k×k convolution with padding k/2 and the given stride
 * (diffuse__conv2d) with respect to its input:
 *   dcol = Wᵀ · dy  ([Cin·k·k, B·Ho·Wo], one GEMM), then col2im
 * dx[Cin, B, H, W] (+)= the sum of dcol over the taps reading each pixel.
 * col: Cin·k·k·B·Ho·Wo floats of scratch (unused, may be NULL, for 1×1
 * stride-1). */
void diffuse__conv2d_backward (DiffusePool *pool, const float *dy, gint c_out,
                               gint batch, gint height, gint width,
                               const float *w, gint c_in, gint k, gint stride,
                               gboolean accumulate, float *col, float *dx);

/* The kernel whose 3×3 stride-1 padding-1 convolution is the input
 * gradient of w[Cout, Cin, 3, 3]'s:  wt[ci, co, ky, kx] =
 * w[co, ci, 2 − ky, 2 − kx]  (wt has Cin output channels). */
void diffuse__conv3x3_transpose_weights (const float *w, gint c_out, gint c_in,
                                         float *wt);

/* Backward of diffuse__avgpool2x: dx[c, b, 2y + i, 2x + j] (+)=
 * dy[c, b, y, x] / 4;  height, width are dx's (even). */
void diffuse__avgpool2x_backward (DiffusePool *pool, const float *dy,
                                  gint channels, gint batch, gint height,
                                  gint width, gboolean accumulate, float *dx);

/* Backward of diffuse__attention: given qkv (the forward input) and
 * dout = ∂L/∂out [C, B, T], dqkv [3C, B, T] (same row layout as qkv).
 * Per (b, head), for each block of queries, P = softmax (α QᵀK) is
 * recomputed (α = 1/√ch) and
 *   dV = dO·P,  dP = dOᵀV,  dS = P ⊙ (dP − rowsum (P ⊙ dP)),
 *   dQ = α K·dSᵀ,  dK = α Q·dS.
 * scratch: diffuse__attention_backward_scratch (T, threads) floats. */
gsize diffuse__attention_backward_scratch (gsize t, gint n_threads);
void diffuse__attention_backward (DiffusePool *pool, const float *qkv,
                                  const float *dout, gint channels, gint batch,
                                  gsize t, gint heads, gboolean legacy_order,
                                  float *scratch, float *dqkv);

G_END_DECLS

#endif /* DIFFUSE_BACKWARD_H */
