/* The ADM UNet (Dhariwal & Nichol 2021; guided-diffusion's UNetModel):
 * the forward pass over the layer list and parameters that
 * unet-weights.c builds and binds at load.
 *
 * Structure, as UNetModel builds it (ds = downsampling factor so far):
 *   emb = time_embed (timestep_embedding (t, mc)) [+ label_emb (y)]
 *   input_blocks: conv3x3 in->ch0; per level: num_res_blocks × (ResBlock
 *     [+ AttentionBlock when image_size/ds is an attention resolution]),
 *     then (except at the last level) Downsample or a down-ResBlock;
 *     every block's output is kept as a skip.
 *   middle_block: ResBlock, AttentionBlock, ResBlock
 *   output_blocks: per level from the deepest: (num_res_blocks + 1) ×
 *     (ResBlock on cat (h, skip) [+ AttentionBlock]), the last of each
 *     level but the first followed by Upsample or an up-ResBlock.
 *   out: GroupNorm, SiLU, conv3x3 ch0 -> out_channels.
 *
 * Activations are [C, B, H, W] (see layers.h), so each convolution over
 * the batch is one GEMM (im2col) or 16 or 36 (Winograd F(2×2, 3×3) or
 * F(4×4, 3×3), for the ResBlock and Upsample convs, whose weights are
 * transformed just before each such convolution: conv3x3_algo).  The pass runs on the state's own
 * threads (n_threads of diffuse_unet_new), which call OpenBLAS
 * single-threaded.  All scratch is allocated in
 * diffuse_unet_new; the forward pass allocates nothing.  bench/README.md
 * has the measurements behind these choices. */
#include <string.h>

#include "layers.h"
#include "conv-bf16.h"
#include "unet-weights.h"

#define GROUPS 32 /* GroupNorm32 */
#define GN_EPS 1e-5f

/* How the 3×3 stride-1 convolutions run: conv3x3_algo's choice by shape,
 * or one form for all (DIFFUSE_CONV3X3: algo ≥ 0); the Winograd forms in
 * bands of wino_max_tiles tiles, or of `band` tiles for all
 * (DIFFUSE_WINO_BAND: band > 0; tests) */
typedef struct
{
  gint algo;
  gsize band;
} ConvChoice;

/* ------------------------------------------------------------------ */
/* Per-run state                                                       */

struct _DiffuseUNet
{
  const DiffuseUNetWeights *w;
  gint max_batch, height, width;
  gsize scratch_bytes;
  gint n_threads;       /* this state's threads, 1..DIFFUSE_MAX_THREADS */
  DiffuseTileMode tile; /* circular padding of every convolution */
  DiffusePool *pool;    /* n_threads threads for everything */
  float *arena;
  /* [C, B, H, W] buffers, each sized for the largest use */
  float *cur, *nxt; /* the running activation h (room for cat (h, skip)) */
  float *a, *a2, *xs,
      *t;              /* normalised input, resampled copies, ResBlock middle */
  float *col;          /* im2col, or Winograd input tiles */
  float *wm;           /* Winograd products */
  float *wu;           /* Winograd weights of the convolution running */
  ConvChoice conv;     /* how the 3×3 stride-1 convolutions run */
  float *qkv, *scores; /* attention */
  float **skips;       /* [n_skips] input-block outputs */
  /* [B, ·] embedding buffers */
  float *temb, *emb_h, *emb, *emb_silu, *emb_out;
  /* DIFFUSE_PRECISION_FP32 or _BF16; bf16: the bf16 convolutions (made
   * when bf16 is first set), bf16_error: the first error of a pass */
  DiffusePrecision precision;
  DiffuseBf16Convs *bf16;
  GError *bf16_error;
};

typedef struct
{
  gsize cur, a, a2, xs, t, col, wm, wu, qkv, scores, skips;
} Sizes;

typedef enum
{
  CONV_IM2COL,
  CONV_F2, /* Winograd F(2×2, 3×3) */
  CONV_F4  /* Winograd F(4×4, 3×3) */
} ConvAlgo;

/* How a 3×3 stride-1 convolution runs, by its shape, from bench-conv's
 * figures (bench/README.md; 2 Zen 4 cores, batch 2, weight transform
 * included): F(4×4, 3×3) is 1.3–1.45× faster than F(2×2, 3×3) from 32 px
 * up with 128 or more output channels, F(2×2, 3×3) is the faster one
 * below that (fewer tiles: the 36 products get too small), and at 8 px
 * and below with many channels, im2col catches up with F(2×2, 3×3) once
 * the weights' transform (which grows with the channels, not the pixels)
 * is counted. */
static ConvAlgo
conv3x3_algo (const ConvChoice *cc, gint c_in, gint c_out, gint height,
              gint width)
{
  gint side = MIN (height, width);

  if (cc->algo >= 0)
    return (ConvAlgo) cc->algo;
  if (side >= 32 && c_out >= 128)
    return CONV_F4;
  if (side <= 8 && (gint64) c_in * c_out >= 512 * 512)
    return CONV_IM2COL;
  return CONV_F2;
}

#define UPD(field, v)                                                          \
  G_STMT_START                                                                 \
  {                                                                            \
    gsize v_ = (v);                                                            \
    if (v_ > s->field)                                                         \
      s->field = v_;                                                           \
  }                                                                            \
  G_STMT_END

/* The Winograd tiles a convolution holds at once (layers.h, banding):
 * each of its tile buffers (n_xi·tiles·channels floats) within
 * WINO_BAND_FLOATS, but never fewer than WINO_BAND_MIN_TILES tiles, for
 * GEMMs of full speed.  ImageNet-64 at batch 2 (at most 512 tiles) runs
 * in one band; from 256 px up the tile buffers stop growing with the
 * image (at 512 px they would take 0.9 GB, bench/README.md). */
#define WINO_BAND_FLOATS ((gsize) 16 << 20)
#define WINO_BAND_MIN_TILES ((gsize) 1024)

static gsize
wino_max_tiles (const ConvChoice *cc, gint n_xi, gint c_in, gint c_out)
{
  if (cc->band > 0)
    return cc->band;
  return MAX (WINO_BAND_MIN_TILES,
              WINO_BAND_FLOATS / ((gsize) n_xi * MAX (c_in, c_out)));
}

/* The scratch of a 3×3 stride-1 convolution on [c_in, B, h, w]. */
static void
plan_conv3x3 (Sizes *s, const ConvChoice *cc, gint c_in, gint c_out, gint batch,
              gint h, gint w)
{
  gsize n = (gsize) batch * h * w, bt;

  switch (conv3x3_algo (cc, c_in, c_out, h, w))
    {
    case CONV_IM2COL:
      UPD (col, (gsize) c_in * 9 * n);
      break;
    case CONV_F2:
      bt = diffuse__winograd_band_tiles (batch, h, w,
                                         wino_max_tiles (cc, 16, c_in, c_out));
      UPD (col, 16 * bt * c_in);
      UPD (wm, 16 * bt * c_out);
      UPD (wu, (gsize) 16 * c_in * c_out);
      break;
    case CONV_F4:
      bt = diffuse__winograd43_band_tiles (
          batch, h, w, wino_max_tiles (cc, 36, c_in, c_out));
      UPD (col, 36 * bt * c_in);
      UPD (wm, 36 * bt * c_out);
      UPD (wu, (gsize) 36 * c_in * c_out);
      break;
    }
}

/* Record each buffer's largest use (in floats) over the ops, for batch B
 * at H × W. */
static void
plan (const DiffuseUNetWeights *w, gint batch, gint height, gint width,
      gint n_threads, const ConvChoice *cc, Sizes *s)
{
  memset (s, 0, sizeof *s);
#define NAT(l) ((gsize) batch * (height >> (l)) * (width >> (l)))
  for (gint i = 0; i < w->n_ops; i++)
    {
      const Op *op = &w->ops[i];
      gint lo = op->level_out;
      gsize n = NAT (op->level), no = NAT (lo);
      gint ho = height >> lo, wo = width >> lo;

      UPD (cur, (gsize) op->c_in * n);
      UPD (cur, (gsize) op->c_out * no);
      switch (op->kind)
        {
        case OP_CONV_IN:
        case OP_DOWN:
          UPD (col, (gsize) op->c_in * 9 * no);
          break;
        case OP_UP:
          UPD (a2, (gsize) op->c_in * no);
          plan_conv3x3 (s, cc, op->c_in, op->c_out, batch, ho, wo);
          break;
        case OP_RES:
          UPD (a, (gsize) op->c_in * n);
          UPD (a, (gsize) op->c_out * no);
          if (lo != op->level)
            {
              UPD (a2, (gsize) op->c_in * no);
              UPD (xs, (gsize) op->c_in * no);
            }
          UPD (t, (gsize) op->c_out * no);
          plan_conv3x3 (s, cc, op->c_in, op->c_out, batch, ho, wo);
          plan_conv3x3 (s, cc, op->c_out, op->c_out, batch, ho, wo);
          break;
        case OP_ATTN:
          UPD (a, (gsize) op->c_in * n);
          UPD (qkv, (gsize) 3 * op->c_in * n);
          UPD (t, (gsize) op->c_in * n);
          UPD (scores, diffuse__attention_scratch (
                           (gsize) (height >> lo) * (width >> lo), n_threads));
          break;
        }
      if (op->push_skip)
        s->skips += (gsize) op->c_out * no + 16;
    }
  /* out: GroupNorm + SiLU into a, conv3x3 into t */
  UPD (a, (gsize) w->out_conv.c_in * NAT (0));
  plan_conv3x3 (s, cc, w->out_conv.c_in, w->out_conv.c_out, batch, height,
                width);
  UPD (t, (gsize) w->out_conv.c_out * NAT (0));
#undef NAT
}

/* Floats of scratch (with alignment slack) for batch B at H × W. */
static gsize
scratch_floats (const DiffuseUNetWeights *w, gint max_batch, gint height,
                gint width, gint n_threads, const ConvChoice *cc, Sizes *s)
{
  gsize total, emb_floats;
  gint max_emb = 0;

  plan (w, max_batch, height, width, n_threads, cc, s);
  for (gint i = 0; i < w->n_res; i++)
    max_emb = MAX (max_emb, w->res[i].n_emb);
  emb_floats =
      (gsize) max_batch * (w->config.model_channels + 3 * w->emb_dim + max_emb);
  /* each buffer rounded up to 16 floats (64 bytes) */
#define R16(x) (((x) + 15) / 16 * 16)
  total = 2 * R16 (s->cur) + R16 (s->a) + R16 (s->a2) + R16 (s->xs) +
          R16 (s->t) + R16 (s->col) + R16 (s->wm) + R16 (s->wu) + R16 (s->qkv) +
          R16 (s->scores) + R16 (s->skips) + 5 * 16 + R16 (emb_floats) + 16;
#undef R16
  if (total > G_MAXSIZE / sizeof (float))
    total = G_MAXSIZE / sizeof (float);
  return total;
}

/* DIFFUSE_CONV3X3=im2col|f2|f4 runs every 3×3 stride-1 convolution one
 * way, DIFFUSE_WINO_BAND=N every Winograd one in bands of N tiles (the
 * tests run the golden forward passes each way); unset or anything else:
 * conv3x3_algo's choice by shape, bands of wino_max_tiles. */
static ConvChoice
conv_choice_from_env (void)
{
  const char *e = g_getenv ("DIFFUSE_CONV3X3");
  const char *band = g_getenv ("DIFFUSE_WINO_BAND");
  ConvChoice cc = { -1, 0 };
  guint64 n;

  if (g_strcmp0 (e, "im2col") == 0)
    cc.algo = CONV_IM2COL;
  else if (g_strcmp0 (e, "f2") == 0)
    cc.algo = CONV_F2;
  else if (g_strcmp0 (e, "f4") == 0)
    cc.algo = CONV_F4;
  if (band && g_ascii_string_to_unsigned (band, 10, 1, G_MAXINT, &n, NULL))
    cc.band = (gsize) n;
  return cc;
}

guint64
diffuse__unet_estimate_bytes (const DiffuseModel *model, gint batch,
                              gint height, gint width)
{
  const DiffuseUNetWeights *w = diffuse__model_get_weights (model);
  ConvChoice cc = conv_choice_from_env ();
  Sizes s;

  return (guint64) scratch_floats (w, batch, height, width,
                                   diffuse__threads_for_run (0), &cc, &s) *
         sizeof (float);
}

/* Multiply-adds of one forward pass of one image at H × W: the
 * convolutions and linear maps of every op, and attention's two products
 * (QKᵀ and AV); norms, activations and the embedding MLP are
 * comparatively negligible and left out. */
guint64
diffuse__unet_flops (const DiffuseModel *model, gint height, gint width)
{
  const DiffuseUNetWeights *w = diffuse__model_get_weights (model);
  guint64 macs = 0;

#define HW(l) ((guint64) (height >> (l)) * (guint64) (width >> (l)))
  for (gint i = 0; i < w->n_ops; i++)
    {
      const Op *op = &w->ops[i];
      guint64 ci = op->c_in, co = op->c_out, hw = HW (op->level_out);

      switch (op->kind)
        {
        case OP_CONV_IN:
        case OP_DOWN:
        case OP_UP:
          macs += co * ci * 9 * hw;
          break;
        case OP_RES:
          macs += (co * ci * 9 + co * co * 9) * hw;
          if (ci != co)
            macs += co * ci * hw;
          break;
        case OP_ATTN:
          macs += 4 * ci * ci * hw + 2 * hw * hw * ci;
          break;
        }
    }
  macs += (guint64) w->out_conv.c_out * w->out_conv.c_in * 9 * HW (0);
#undef HW
  return 2 * macs;
}

DiffuseUNet *
diffuse_unet_new (const DiffuseModel *model, gint max_batch, gint height,
                  gint width, gint n_threads, GError **error)
{
  const DiffuseUNetWeights *w;
  DiffuseUNet *u;
  Sizes s;
  gint unit;
  gsize total;
  float *p;

  g_return_val_if_fail (model != NULL, NULL);
  if (diffuse_model_get_config (model)->model_type != DIFFUSE_MODEL_UNET)
    {
      g_set_error (
          error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
          "the model is a classifier, not a diffusion UNet (it can only "
          "guide sampling, as the classifier)");
      return NULL;
    }
  w = diffuse__model_get_weights (model);
  g_return_val_if_fail (w != NULL, NULL);

  unit = 1 << (w->config.n_levels - 1);
  if (n_threads < 0)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "n_threads = %d is negative", n_threads);
      return NULL;
    }
  if (max_batch < 1 || max_batch > 4096)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "batch size %d is out of range (1..4096)", max_batch);
      return NULL;
    }
  if (height > DIFFUSE_MAX_SIDE || width > DIFFUSE_MAX_SIDE)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "image size %dx%d is over the limit of %d pixels a side",
                   width, height, DIFFUSE_MAX_SIDE);
      return NULL;
    }
  if (height < unit || width < unit || height % unit || width % unit)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "image size %dx%d is not a positive multiple of %d", width,
                   height, unit);
      return NULL;
    }

  u = g_new0 (DiffuseUNet, 1);
  u->w = w;
  u->max_batch = max_batch;
  u->height = height;
  u->width = width;
  u->skips = g_new0 (float *, w->n_skips + 1);
  u->n_threads = diffuse__threads_for_run (n_threads);
  u->conv = conv_choice_from_env ();
  u->precision = DIFFUSE_PRECISION_FP32;
  total =
      scratch_floats (w, max_batch, height, width, u->n_threads, &u->conv, &s);
  u->scratch_bytes = total * sizeof (float);
  u->arena = diffuse__scratch_alloc (u->scratch_bytes);
  if (u->arena == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "cannot allocate %" G_GSIZE_FORMAT
                   " MiB of UNet scratch for "
                   "batch %d at %dx%d",
                   u->scratch_bytes >> 20, max_batch, width, height);
      diffuse_unet_free (u);
      return NULL;
    }
  /* align to 64 bytes */
  p = (float *) (((guintptr) u->arena + 63) & ~(guintptr) 63);
#define R16(x) (((x) + 15) / 16 * 16)
#define TAKE(dst, n)                                                           \
  G_STMT_START                                                                 \
  {                                                                            \
    dst = p;                                                                   \
    p += R16 (n);                                                              \
  }                                                                            \
  G_STMT_END
  TAKE (u->cur, s.cur);
  TAKE (u->nxt, s.cur);
  TAKE (u->a, s.a);
  TAKE (u->a2, s.a2);
  TAKE (u->xs, s.xs);
  TAKE (u->t, s.t);
  TAKE (u->col, s.col);
  TAKE (u->wm, s.wm);
  TAKE (u->wu, s.wu);
  TAKE (u->qkv, s.qkv);
  TAKE (u->scores, s.scores);
  for (gint i = 0; i < w->n_skips; i++)
    {
      gsize n = (gsize) w->skip_c[i] * max_batch *
                (height >> w->skip_level[i]) * (width >> w->skip_level[i]);

      u->skips[i] = p;
      p += R16 (n);
    }
  TAKE (u->temb, (gsize) max_batch * w->config.model_channels);
  TAKE (u->emb_h, (gsize) max_batch * w->emb_dim);
  TAKE (u->emb, (gsize) max_batch * w->emb_dim);
  TAKE (u->emb_silu, (gsize) max_batch * w->emb_dim);
  u->emb_out = p;
  u->pool = diffuse__pool_new (u->n_threads);
#undef TAKE
#undef R16
  return u;
}

void
diffuse_unet_free (DiffuseUNet *unet)
{
  if (unet == NULL)
    return;
  diffuse__pool_free (unet->pool);
  diffuse__bf16_convs_free (unet->bf16);
  g_clear_error (&unet->bf16_error);
  diffuse__scratch_free (unet->arena);
  g_free (unet->skips);
  g_free (unet);
}

gsize
diffuse_unet_get_scratch_bytes (const DiffuseUNet *unet)
{
  g_return_val_if_fail (unet != NULL, 0);
  return unet->scratch_bytes;
}

gboolean
diffuse_unet_set_precision (DiffuseUNet *unet, DiffusePrecision precision,
                            GError **error)
{
  DiffusePrecision p;

  g_return_val_if_fail (unet != NULL, FALSE);
  if ((guint) precision >= DIFFUSE_PRECISION_COUNT)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "precision %d is out of range", (gint) precision);
      return FALSE;
    }
  if (!diffuse_precision_resolve (precision, diffuse__unet_get_flops (unet, 1),
                                  &p, error))
    return FALSE;
  unet->precision = p;
  if (p == DIFFUSE_PRECISION_BF16 && unet->bf16 == NULL)
    unet->bf16 = diffuse__bf16_convs_new (unet->n_threads, FALSE, unet->w->st);
  return TRUE;
}

void
diffuse__unet_emulate_bf16 (DiffuseUNet *unet)
{
  diffuse__bf16_convs_free (unet->bf16);
  unet->bf16 = diffuse__bf16_convs_new (unet->n_threads, TRUE, unet->w->st);
  unet->precision = DIFFUSE_PRECISION_BF16;
}

DiffusePrecision
diffuse_unet_get_precision (const DiffuseUNet *unet)
{
  g_return_val_if_fail (unet != NULL, DIFFUSE_PRECISION_FP32);
  return unet->precision;
}

/* ------------------------------------------------------------------ */
/* Forward                                                             */

#define SWAP(a, b)                                                             \
  G_STMT_START                                                                 \
  {                                                                            \
    float *tmp_ = a;                                                           \
    a = b;                                                                     \
    b = tmp_;                                                                  \
  }                                                                            \
  G_STMT_END

/* 3×3 stride-1 convolution, as conv3x3_algo chooses.  The Winograd
 * forms of the weights are made here, into scratch, each time: that costs
 * 1–15 % of the convolution (bench/README.md) and keeps the process's
 * memory at the size of the model file (the forms are 16/9 or 4× its
 * size), with nothing to do at load. */
static void
conv3x3_fp32 (DiffuseUNet *u, const float *x, gint c_in, gint batch, gint h,
              gint w, const float *wt, const float *bias, const float *bias2,
              gsize b2_stride, gint c_out, gboolean accumulate, float *out)
{
  /* every form wraps around in the directions of u->tile (seamless
   * tiles), zero padding otherwise */
  switch (conv3x3_algo (&u->conv, c_in, c_out, h, w))
    {
    case CONV_F4:
      diffuse__winograd43_weights (u->pool, wt, c_out, c_in, u->wu);
      diffuse__conv3x3_winograd43_wrap (
          u->pool, x, c_in, batch, h, w, u->wu, bias, bias2, b2_stride, c_out,
          u->tile, wino_max_tiles (&u->conv, 36, c_in, c_out), accumulate,
          u->col, u->wm, out);
      break;
    case CONV_F2:
      diffuse__winograd_weights (u->pool, wt, c_out, c_in, u->wu);
      diffuse__conv3x3_winograd_wrap (
          u->pool, x, c_in, batch, h, w, u->wu, bias, bias2, b2_stride, c_out,
          u->tile, wino_max_tiles (&u->conv, 16, c_in, c_out), accumulate,
          u->col, u->wm, out);
      break;
    case CONV_IM2COL:
      diffuse__conv2d_wrap (u->pool, x, c_in, batch, h, w, wt, bias, bias2,
                            b2_stride, c_out, 3, 1, u->tile, accumulate, u->col,
                            out);
      break;
    }
}

/* 3×3 stride-1 convolution inside the network: conv3x3_fp32, or in bf16.
 * Seamless tiles wrap in the fp32 kernels only: with a tile mode the 3×3
 * convolutions stay fp32 (the 1×1 ones, which pad nothing, go bf16). */
static void
conv3x3 (DiffuseUNet *u, const float *x, gint c_in, gint batch, gint h, gint w,
         const float *wt, const float *bias, const float *bias2,
         gsize b2_stride, gint c_out, gboolean accumulate, float *out)
{
  if (u->precision == DIFFUSE_PRECISION_BF16 && u->tile == DIFFUSE_TILE_NONE)
    {
      if (u->bf16_error == NULL)
        diffuse__bf16_conv2d (u->bf16, u->pool, x, c_in, batch, h, w, wt, bias,
                              bias2, b2_stride, c_out, 3, 1, accumulate, out,
                              &u->bf16_error);
    }
  else
    conv3x3_fp32 (u, x, c_in, batch, h, w, wt, bias, bias2, b2_stride, c_out,
                  accumulate, out);
}

/* 1×1 convolutions, and the 3×3 stride-2 ones (downsampling), as
 * diffuse__conv2d or in bf16 */
static void
conv_nx (DiffuseUNet *u, const float *x, gint c_in, gint batch, gint h, gint w,
         const float *wt, const float *bias, gint c_out, gint k, gint stride,
         gboolean accumulate, float *out)
{
  if (u->precision == DIFFUSE_PRECISION_BF16 &&
      (k == 1 || u->tile == DIFFUSE_TILE_NONE))
    {
      if (u->bf16_error == NULL)
        diffuse__bf16_conv2d (u->bf16, u->pool, x, c_in, batch, h, w, wt, bias,
                              NULL, 0, c_out, k, stride, accumulate, out,
                              &u->bf16_error);
    }
  else
    diffuse__conv2d_wrap (u->pool, x, c_in, batch, h, w, wt, bias, NULL, 0,
                          c_out, k, stride, u->tile, accumulate, u->col, out);
}

/* ResBlock._forward: x [c_in, B, H, W] at level l -> y [c_out, B, H', W'].
 *   h = conv (SiLU (GN (x)))            (resampled between SiLU and conv
 *                                        when up/down, and x too)
 *   scale-shift: h = SiLU (GN (h)·(1 + s) + b), (s, b) = emb_layers (emb)
 *   otherwise:   h = SiLU (GN (h + emb_layers (emb)))
 *   y = skip (x) + conv (h) */
static void
res_block (DiffuseUNet *u, const ResBlockWeights *r, gint batch, gint h, gint w,
           const float *x, float *y)
{
  const DiffuseModelConfig *cfg = &u->w->config;
  gsize hw = (gsize) h * w;
  const float *src = u->a, *xskip = x;
  gint ho = h, wo = w;

  diffuse__group_norm (u->pool, x, r->c_in, batch, hw, GROUPS, GN_EPS,
                       r->in_norm_w, r->in_norm_b, NULL, NULL, 0, TRUE, u->a);
  if (r->updown > 0)
    {
      diffuse__upsample2x (u->pool, u->a, r->c_in, batch, h, w, u->a2);
      diffuse__upsample2x (u->pool, x, r->c_in, batch, h, w, u->xs);
      ho = 2 * h, wo = 2 * w;
    }
  else if (r->updown < 0)
    {
      diffuse__avgpool2x (u->pool, u->a, r->c_in, batch, h, w, u->a2);
      diffuse__avgpool2x (u->pool, x, r->c_in, batch, h, w, u->xs);
      ho = h / 2, wo = w / 2;
    }
  if (r->updown)
    src = u->a2, xskip = u->xs;
  hw = (gsize) ho * wo;

  diffuse__linear (u->emb_silu, batch, u->w->emb_dim, r->emb_w, r->emb_b,
                   r->n_emb, u->emb_out);
  if (cfg->use_scale_shift_norm)
    {
      conv3x3 (u, src, r->c_in, batch, ho, wo, r->in_conv_w, r->in_conv_b, NULL,
               0, r->c_out, FALSE, u->t);
      diffuse__group_norm (u->pool, u->t, r->c_out, batch, hw, GROUPS, GN_EPS,
                           r->out_norm_w, r->out_norm_b, u->emb_out,
                           u->emb_out + r->c_out, r->n_emb, TRUE, u->a);
    }
  else
    {
      conv3x3 (u, src, r->c_in, batch, ho, wo, r->in_conv_w, r->in_conv_b,
               u->emb_out, r->n_emb, r->c_out, FALSE, u->t);
      diffuse__group_norm (u->pool, u->t, r->c_out, batch, hw, GROUPS, GN_EPS,
                           r->out_norm_w, r->out_norm_b, NULL, NULL, 0, TRUE,
                           u->a);
    }

  if (r->skip_w)
    conv_nx (u, xskip, r->c_in, batch, ho, wo, r->skip_w, r->skip_b, r->c_out,
             1, 1, FALSE, y);
  else
    memcpy (y, xskip, sizeof (float) * r->c_out * batch * hw);
  conv3x3 (u, u->a, r->c_out, batch, ho, wo, r->out_conv_w, r->out_conv_b, NULL,
           0, r->c_out, TRUE, y);
}

/* AttentionBlock._forward, in place on x [C, B, H, W]:
 *   x += proj_out (attention (qkv (GN (x)))) */
static void
attention_block (DiffuseUNet *u, const AttentionWeights *a, gint batch, gint h,
                 gint w, float *x)
{
  gsize hw = (gsize) h * w;

  diffuse__group_norm (u->pool, x, a->channels, batch, hw, GROUPS, GN_EPS,
                       a->norm_w, a->norm_b, NULL, NULL, 0, FALSE, u->a);
  conv_nx (u, u->a, a->channels, batch, h, w, a->qkv_w, a->qkv_b,
           3 * a->channels, 1, 1, FALSE, u->qkv);
  diffuse__attention (u->pool, u->qkv, a->channels, batch, hw, a->heads,
                      !u->w->config.use_new_attention_order, u->scores, u->t);
  conv_nx (u, u->t, a->channels, batch, h, w, a->proj_w, a->proj_b, a->channels,
           1, 1, TRUE, x);
}

void
diffuse_unet_set_tile (DiffuseUNet *unet, DiffuseTileMode tile)
{
  g_return_if_fail (unet != NULL);
  g_return_if_fail ((guint) tile < DIFFUSE_TILE_COUNT);

  unet->tile = tile;
}

gboolean
diffuse_unet_forward (DiffuseUNet *unet, gint batch, const float *x,
                      const float *timesteps, const gint *labels, float *out,
                      GError **error)
{
  const DiffuseUNetWeights *w;
  const DiffuseModelConfig *cfg;
  gint height, width;
  gint E;
  float *cur, *nxt;

  g_return_val_if_fail (unet != NULL, FALSE);
  g_return_val_if_fail (x != NULL && timesteps != NULL && out != NULL, FALSE);
  w = unet->w;
  cfg = &w->config;
  E = w->emb_dim;
  height = unet->height;
  width = unet->width;

  if (batch < 1 || batch > unet->max_batch)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "batch %d is out of range (1..%d)", batch, unet->max_batch);
      return FALSE;
    }
  if (cfg->num_classes > 0)
    {
      if (labels == NULL)
        {
          g_set_error (
              error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
              "the model is class-conditional but no labels were given");
          return FALSE;
        }
      for (gint b = 0; b < batch; b++)
        if (labels[b] < 0 || labels[b] >= cfg->num_classes)
          {
            g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                         "class label %d is out of range (0..%d)", labels[b],
                         cfg->num_classes - 1);
            return FALSE;
          }
    }

  /* The pass runs on its own n_threads threads, GEMMs included (split
   * by columns, rows or independent products, all in one wake-up of the
   * pool per layer), calling OpenBLAS single-threaded from each
   * (diffuse__threads_for_run set it so): its own threads would
   * otherwise spin between GEMMs and compete with ours. */
  diffuse__pool_set_active (unet->pool, unet->n_threads);

  /* emb = time_embed (timestep_embedding (t)) + label_emb (y); the blocks
   * only ever use SiLU (emb) (emb_layers starts with SiLU) */
  diffuse__timestep_embedding (timesteps, batch, cfg->model_channels,
                               unet->temb);
  diffuse__linear (unet->temb, batch, cfg->model_channels, w->time_w0,
                   w->time_b0, E, unet->emb_h);
  diffuse__silu (unet->pool, unet->emb_h, (gsize) batch * E, unet->emb_h);
  diffuse__linear (unet->emb_h, batch, E, w->time_w2, w->time_b2, E, unet->emb);
  if (w->label_emb)
    for (gint b = 0; b < batch; b++)
      for (gint i = 0; i < E; i++)
        unet->emb[(gsize) b * E + i] += w->label_emb[(gsize) labels[b] * E + i];
  diffuse__silu (unet->pool, unet->emb, (gsize) batch * E, unet->emb_silu);

  cur = unet->cur;
  nxt = unet->nxt;
  diffuse__nchw_to_cbhw (unet->pool, x, batch, cfg->in_channels,
                         (gsize) height * width, cur);

  for (gint i = 0; i < w->n_ops; i++)
    {
      const Op *op = &w->ops[i];
      gint h = height >> op->level, wd = width >> op->level;
      gsize n = (gsize) batch * h * wd;

      if (op->pop_skip)
        {
          /* cat ([h, skip], dim=1) is the skip's rows after h's in the
           * same [C, N] matrix */
          gint sc = w->skip_c[op->skip];

          memcpy (cur + (gsize) (op->c_in - sc) * n, unet->skips[op->skip],
                  sizeof (float) * sc * n);
        }
      switch (op->kind)
        {
        case OP_CONV_IN:
          {
            const ConvWeights *c = &w->conv[op->index];

            diffuse__conv2d_wrap (unet->pool, cur, c->c_in, batch, h, wd, c->w,
                                  c->b, NULL, 0, c->c_out, 3, 1, unet->tile,
                                  FALSE, unet->col, nxt);
            SWAP (cur, nxt);
            break;
          }
        case OP_DOWN:
          {
            const ConvWeights *c = &w->conv[op->index];

            conv_nx (unet, cur, c->c_in, batch, h, wd, c->w, c->b, c->c_out, 3,
                     2, FALSE, nxt);
            SWAP (cur, nxt);
            break;
          }
        case OP_UP:
          {
            const ConvWeights *c = &w->conv[op->index];

            diffuse__upsample2x (unet->pool, cur, c->c_in, batch, h, wd,
                                 unet->a2);
            conv3x3 (unet, unet->a2, c->c_in, batch, 2 * h, 2 * wd, c->w, c->b,
                     NULL, 0, c->c_out, FALSE, nxt);
            SWAP (cur, nxt);
            break;
          }
        case OP_RES:
          res_block (unet, &w->res[op->index], batch, h, wd, cur, nxt);
          SWAP (cur, nxt);
          break;
        case OP_ATTN:
          attention_block (unet, &w->attn[op->index], batch, h, wd, cur);
          break;
        }
      if (op->push_skip)
        {
          gsize no = (gsize) batch * (height >> op->level_out) *
                     (width >> op->level_out);

          memcpy (unet->skips[op->skip], cur, sizeof (float) * op->c_out * no);
        }
    }

  /* out = conv3x3 (SiLU (GN (h))) */
  diffuse__group_norm (unet->pool, cur, w->out_conv.c_in, batch,
                       (gsize) height * width, GROUPS, GN_EPS, w->out_norm_w,
                       w->out_norm_b, NULL, NULL, 0, TRUE, unet->a);
  /* fp32 also in bf16: little work, and it is the output */
  conv3x3_fp32 (unet, unet->a, w->out_conv.c_in, batch, height, width,
                w->out_conv.w, w->out_conv.b, NULL, 0, w->out_conv.c_out, FALSE,
                unet->t);
  diffuse__cbhw_to_nchw (unet->pool, unet->t, batch, w->out_conv.c_out,
                         (gsize) height * width, out);
  if (unet->bf16_error)
    {
      g_propagate_error (error, unet->bf16_error);
      unet->bf16_error = NULL;
      return FALSE;
    }
  return TRUE;
}

guint64
diffuse__unet_get_flops (const DiffuseUNet *unet, gint batch)
{
  const DiffuseUNetWeights *w = unet->w;
  const DiffuseModelConfig *cfg = &w->config;
  guint64 f = 0;
  gint E = w->emb_dim;

#define PIX(l) ((guint64) batch * (unet->height >> (l)) * (unet->width >> (l)))
  f += 2 * (guint64) batch *
       ((guint64) cfg->model_channels * E + (guint64) E * E);
  for (gint i = 0; i < w->n_ops; i++)
    {
      const Op *op = &w->ops[i];
      guint64 p = PIX (op->level_out);

      switch (op->kind)
        {
        case OP_CONV_IN:
        case OP_DOWN:
        case OP_UP:
          f += 2 * (guint64) op->c_out * op->c_in * 9 * p;
          break;
        case OP_RES:
          {
            const ResBlockWeights *r = &w->res[op->index];

            f += 2 * (guint64) op->c_out * op->c_in * 9 * p;
            f += 2 * (guint64) op->c_out * op->c_out * 9 * p;
            if (r->skip_w)
              f += 2 * (guint64) op->c_out * op->c_in * p;
            f += 2 * (guint64) batch * r->n_emb * E;
            break;
          }
        case OP_ATTN:
          {
            guint64 t = (guint64) (unet->height >> op->level) *
                        (unet->width >> op->level);

            f += 2 * (guint64) 4 * op->c_in * op->c_in * p;
            f += 2 * (guint64) 2 * batch * op->c_in * t * t;
            break;
          }
        }
    }
  f += 2 * (guint64) w->out_conv.c_out * w->out_conv.c_in * 9 * PIX (0);
#undef PIX
  return f;
}
