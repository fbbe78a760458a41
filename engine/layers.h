/* Kernels of the ADM UNet forward pass, shared with unet.c and
 * tests/test-layers.c: embedding.c (timestep embedding, linear, SiLU),
 * norm.c (GroupNorm), conv.c (im2col convolution), winograd.c (3×3
 * Winograd convolution), updown.c (upsample, average pool), attention.c
 * and layout.c (NCHW <-> CBHW).  They run on threadpool.h's pool.
 * Not installed.
 *
 * The heavy lifting (convolutions, attention products) is OpenBLAS
 * sgemm; everything else is written so that gcc vectorises it (no libm
 * calls in inner loops, explicit partial sums for reductions;
 * kernel-inline.h).  tests/test-layers.c checks each kernel against a
 * naive loop.
 *
 * Activation layout: [C, B, H, W] ("CBHW", channel-major with the batch
 * inside), float32, C order.  With this layout a convolution over the
 * whole batch is one GEMM, out[Cout, B*H*W] = W[Cout, Cin*k*k] ·
 * col[Cin*k*k, B*H*W], whose weight matrix is the PyTorch
 * [Cout, Cin, k, k] tensor as stored (or 16 GEMMs in Winograd form), and
 * a channel concatenation is two adjacent row ranges.
 */
#ifndef DIFFUSE_LAYERS_H
#define DIFFUSE_LAYERS_H

#include <glib.h>

#include "diffuse.h"
#include "threadpool.h"

G_BEGIN_DECLS

/* Sinusoidal timestep embedding, guided-diffusion nn.timestep_embedding:
 * out[b, i] = cos (t_b f_i), out[b, half + i] = sin (t_b f_i) with
 * f_i = exp (-ln (10000) i / half), half = dim / 2; a zero column is
 * appended when dim is odd.  t: [B], out: [B, dim]. */
void diffuse__timestep_embedding (const float *t, gint batch, gint dim,
                                  float *out);

/* y[B, n_out] = x[B, n_in] · w[n_out, n_in]ᵀ + bias  (nn.Linear). */
void diffuse__linear (const float *x, gint batch, gint n_in, const float *w,
                      const float *bias, gint n_out, float *y);

/* out = x · sigmoid (x), elementwise (nn.SiLU); out may equal x. */
void diffuse__silu (DiffusePool *pool, const float *x, gsize n, float *out);

/* Fused GroupNorm (+ FiLM scale/shift) (+ SiLU) on [C, B, HW]:
 *   y = GN (x) · γ_c + β_c                       (nn.GroupNorm (groups, C), fp32)
 *   y = y · (1 + scale[b, c]) + shift[b, c]      when scale != NULL
 *   y = y · sigmoid (y)                          when silu
 * Statistics per (b, group) over C/groups channels × HW, biased variance.
 * scale / shift: rows of length ≥ C with stride ss_stride per batch element
 * (the two halves of a ResBlock's emb_layers output).  out may equal x. */
void diffuse__group_norm (DiffusePool *pool, const float *x, gint channels,
                          gint batch, gsize hw, gint groups, float eps,
                          const float *gamma, const float *beta,
                          const float *scale, const float *shift,
                          gsize ss_stride, gboolean silu, float *out);

/* 2-D convolution (nn.Conv2d, padding k/2, im2col + GEMM) on
 * [Cin, B, H, W], Ho = (H + 2·(k/2) − k) / stride + 1:
 *   out[Cout, B, Ho, Wo] (+)= w[Cout, Cin, k, k] ⊛ x + bias (+ bias2[b, c]).
 * accumulate: add the result to what out holds (a residual sum) instead of
 * overwriting it.  col: scratch of Cin·k·k·B·Ho·Wo floats, unused (may be
 * NULL) for 1×1 stride-1 convolutions. */
void diffuse__conv2d (DiffusePool *pool, const float *x, gint c_in, gint batch,
                      gint height, gint width, const float *w,
                      const float *bias, const float *bias2, gsize b2_stride,
                      gint c_out, gint k, gint stride, gboolean accumulate,
                      float *col, float *out);
/* The same with circular padding in the directions of wrap (torch's
 * padding_mode='circular': index −1 reads H − 1 / W − 1, index H reads
 * 0), zero padding in the others; seamless tiles. */
void diffuse__conv2d_wrap (DiffusePool *pool, const float *x, gint c_in,
                           gint batch, gint height, gint width, const float *w,
                           const float *bias, const float *bias2,
                           gsize b2_stride, gint c_out, gint k, gint stride,
                           DiffuseTileMode wrap, gboolean accumulate,
                           float *col, float *out);

/* Winograd F(2×2, 3×3) (Lavin & Gray 2015, "Fast Algorithms for
 * Convolutional Neural Networks"): a 3×3 stride-1 padding-1 convolution as
 * 16 GEMMs of [Cout, Cin] × [Cin, tiles] on 4×4 input tiles, 2.25× fewer
 * multiplications than im2col:  Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A.
 * The same cross-correlation as nn.Conv2d (3, padding=1).
 *
 * winograd_weights: w[Cout, Cin, 3, 3] -> u[16, Cout, Cin] (u = G g Gᵀ),
 * done once at load.  conv3x3_winograd: as diffuse__conv2d with k = 3,
 * stride 1; v: 16·Cin·tiles floats, m: 16·Cout·tiles floats of scratch,
 * tiles = winograd_tiles () = B·⌈H/2⌉·⌈W/2⌉. */
void diffuse__winograd_weights (DiffusePool *pool, const float *w, gint c_out,
                                gint c_in, float *u);
gsize diffuse__winograd_tiles (gint batch, gint height, gint width);
/* Banding: the _wrap forms take max_tiles (0: no limit) and then work
 * through the tiles in bands of whole tile rows (rows g = b·⌈H/t⌉ + ty of
 * every image in turn) of at most max_tiles tiles (at least one row):
 * v and m need room for band_tiles () tiles only.  The same result as one
 * band, in a fraction of the scratch at large sizes. */
gint diffuse__winograd_band_rows (gint rows, gint row_tiles, gsize max_tiles);
gsize diffuse__winograd_band_tiles (gint batch, gint height, gint width,
                                    gsize max_tiles);
void diffuse__conv3x3_winograd (DiffusePool *pool, const float *x, gint c_in,
                                gint batch, gint height, gint width,
                                const float *u, const float *bias,
                                const float *bias2, gsize b2_stride, gint c_out,
                                gboolean accumulate, float *v, float *m,
                                float *out);
/* The same with circular padding in the directions of wrap. */
void diffuse__conv3x3_winograd_wrap (
    DiffusePool *pool, const float *x, gint c_in, gint batch, gint height,
    gint width, const float *u, const float *bias, const float *bias2,
    gsize b2_stride, gint c_out, DiffuseTileMode wrap, gsize max_tiles,
    gboolean accumulate, float *v, float *m, float *out);

/* Winograd F(4×4, 3×3) (winograd43.c): the same convolution as 36 GEMMs
 * on 6×6 input tiles, 4× fewer multiplications than im2col, at some cost
 * in rounding error (the transforms' coefficients reach 8 and 1/24:
 * winograd43.c, tests/test-layers.c).  u[36, Cout, Cin]; v: 36·Cin·tiles,
 * m: 36·Cout·tiles floats, tiles = winograd43_tiles () = B·⌈H/4⌉·⌈W/4⌉. */
void diffuse__winograd43_weights (DiffusePool *pool, const float *w, gint c_out,
                                  gint c_in, float *u);
gsize diffuse__winograd43_tiles (gint batch, gint height, gint width);
gsize diffuse__winograd43_band_tiles (gint batch, gint height, gint width,
                                      gsize max_tiles);
void diffuse__conv3x3_winograd43 (DiffusePool *pool, const float *x, gint c_in,
                                  gint batch, gint height, gint width,
                                  const float *u, const float *bias,
                                  const float *bias2, gsize b2_stride,
                                  gint c_out, gboolean accumulate, float *v,
                                  float *m, float *out);
/* The same with circular padding in the directions of wrap. */
void diffuse__conv3x3_winograd43_wrap (
    DiffusePool *pool, const float *x, gint c_in, gint batch, gint height,
    gint width, const float *u, const float *bias, const float *bias2,
    gsize b2_stride, gint c_out, DiffuseTileMode wrap, gsize max_tiles,
    gboolean accumulate, float *v, float *m, float *out);

/* Nearest-neighbour ×2 upsampling (F.interpolate (scale_factor=2)):
 * x[C, B, H, W] -> out[C, B, 2H, 2W]. */
void diffuse__upsample2x (DiffusePool *pool, const float *x, gint channels,
                          gint batch, gint height, gint width, float *out);

/* 2×2 average pooling with stride 2 (nn.AvgPool2d (2)):
 * x[C, B, H, W] -> out[C, B, H/2, W/2]; H and W even. */
void diffuse__avgpool2x (DiffusePool *pool, const float *x, gint channels,
                         gint batch, gint height, gint width, float *out);

/* Multi-head self-attention core on qkv[3C, B, T] -> out[C, B, T]:
 * for each batch b and head h with ch = C / heads channels,
 *   out_h = V_h · softmax (Q_hᵀ K_h / √ch)ᵀ        (softmax over keys)
 * Head order, as guided-diffusion: legacy (QKVAttentionLegacy) takes
 * q, k, v of head h from rows h·3ch + [0, ch, 2ch]; the new order
 * (QKVAttention) takes them from rows [0, C, 2C] + h·ch.
 * Queries go in blocks of DIFFUSE_ATTENTION_BLOCK, spread over the
 * pool's threads; scratch holds diffuse__attention_scratch (T, threads)
 * floats for the pool's active thread count. */
#define DIFFUSE_ATTENTION_BLOCK 256
gsize diffuse__attention_scratch (gsize t, gint n_threads);
void diffuse__attention (DiffusePool *pool, const float *qkv, gint channels,
                         gint batch, gsize t, gint heads, gboolean legacy_order,
                         float *scratch, float *out);

/* [B, C, HW] <-> [C, B, HW] */
void diffuse__nchw_to_cbhw (DiffusePool *pool, const float *x, gint batch,
                            gint channels, gsize hw, float *out);
void diffuse__cbhw_to_nchw (DiffusePool *pool, const float *x, gint batch,
                            gint channels, gsize hw, float *out);

/* unet.c, for bench/: floating-point operations (2 per multiply-add) of
 * one forward pass at this batch size: every convolution, linear layer
 * and attention product; the elementwise work is not counted. */
typedef struct _DiffuseUNet DiffuseUNet;
guint64 diffuse__unet_get_flops (const DiffuseUNet *unet, gint batch);

G_END_DECLS

#endif /* DIFFUSE_LAYERS_H */
