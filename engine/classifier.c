/* The noisy-image classifier of classifier guidance (Dhariwal & Nichol
 * 2021, ADM-G; guided-diffusion's EncoderUNetModel): the forward pass to
 * logits over the layers and parameters classifier-weights.c binds at
 * load, and the gradient
 * ∇x log softmax(logits)[y] by a backward pass (seed "Classifier
 * Guidance": the classifier's score ∇x log p_φ(y | x_t) shifts the
 * sampler; sample.c applies it).
 *
 * Structure, as EncoderUNetModel builds it (ds = downsampling so far):
 *   emb = time_embed (timestep_embedding (t, mc))          (no label)
 *   input_blocks: conv3x3 in -> ch0; per level num_res_blocks × (ResBlock
 *     [+ AttentionBlock when image_size/ds is an attention resolution]),
 *     then (but at the last level) a stride-2 conv3x3 "op" or, with
 *     resblock_updown, a down-ResBlock (average pooling inside)
 *   middle_block: ResBlock, AttentionBlock, ResBlock
 *   out: GroupNorm, SiLU, then
 *     adaptive: mean over H·W, conv1x1 -> classes            (out.3)
 *     attention: AttentionPool2d (out.2): tokens [mean, x_1 … x_HW] +
 *       positional_embedding, qkv_proj, multi-head attention (q|k|v split
 *       before heads, heads = C / num_head_channels), c_proj, token 0.
 *
 * The forward pass keeps, per layer, what its backward needs (the
 * layer's input; a ResBlock's first conv output; an attention block's
 * qkv), so the gradient is one forward and one backward pass.  Only
 * input gradients are formed; each 3×3 stride-1 convolution's is again a
 * 3×3 convolution (transposed, flipped kernel: backward.h), run in
 * Winograd form like the forward.  t does not depend on x, so the
 * timestep embedding enters the backward only through the scale-shift
 * factors (1 + s) of each ResBlock's second GroupNorm.
 *
 * Layout [C, B, H, W] and threading as in unet.c. */
#include <math.h>
#include <string.h>

#include "backward.h"
#include "classifier-weights.h"
#include "conv-bf16.h"

#define GROUPS 32
#define GN_EPS 1e-5f

/* ------------------------------------------------------------------ */
/* Per-run state                                                       */

struct _DiffuseClassifier
{
  const DiffuseClassifierWeights *w;
  gint max_batch, height, width, n_threads;
  DiffusePool *pool;
  gsize scratch_bytes;
  float *arena;
  /* tape: act[i] = input of op i, act[n_ops] = input of the head;
   * t_res[r] = ResBlock r's first conv output (+ emb), qkv[a] = attention
   * block a's qkv, emb_out[r] = ResBlock r's emb_layers output [B, n_emb] */
  float **act, **t_res, **qkv, **emb_out;
  float *pool_qkv; /* [3C, B, T + 1] */
  float *pooled;   /* [C, B]: adaptive mean, or attention output */
  /* scratch */
  float *s1, *s2, *s3, *g0, *g1, *col, *wv, *wm, *scores;
  float *temb, *emb_h, *emb, *emb_silu;
  double *glogits; /* [B, K] */
  /* DIFFUSE_PRECISION_FP32 or _BF16 (the forward's convolutions; the
   * gradient's stay fp32), as DiffuseUNet's */
  DiffusePrecision precision;
  DiffuseBf16Convs *bf16;
  GError *bf16_error;
};

static gsize
plane (const DiffuseClassifier *c, gint level)
{
  return (gsize) c->max_batch * (c->height >> level) * (c->width >> level);
}

void
diffuse_classifier_free (DiffuseClassifier *clf)
{
  if (clf == NULL)
    return;
  diffuse__pool_free (clf->pool);
  diffuse__bf16_convs_free (clf->bf16);
  g_clear_error (&clf->bf16_error);
  g_free (clf->arena);
  g_free (clf->act);
  g_free (clf->t_res);
  g_free (clf->qkv);
  g_free (clf->emb_out);
  g_free (clf->glogits);
  g_free (clf);
}

gsize
diffuse_classifier_get_scratch_bytes (const DiffuseClassifier *clf)
{
  g_return_val_if_fail (clf != NULL, 0);
  return clf->scratch_bytes;
}

#define R16(x) (((x) + 15) / 16 * 16)

/* The arena of a state for max_batch images of height × width on n_threads,
 * as diffuse_classifier_new lays it out (TAKE): activations, and the
 * scratch of the biggest layer; in floats */
typedef struct
{
  gsize biggest, col, wv, wm, scores, tokens;
  gsize total; /* all of it, with the 64-byte alignment's slack */
} ArenaSizes;

static void
arena_sizes (const DiffuseClassifierWeights *w, gint max_batch, gint height,
             gint width, gint n_threads, ArenaSizes *z)
{
  const DiffuseModelConfig *cfg = &w->config;
  gsize act_total = 0, biggest = 0, col = 0, wv = 0, wm = 0, scores = 0;
  gsize tokens;

#define PLANE(l) ((gsize) max_batch * (height >> (l)) * (width >> (l)))
  for (gint i = 0; i < w->n_ops; i++)
    {
      const Op *op = &w->ops[i];
      gsize n = PLANE (op->level);
      gint lo = op->level;

      act_total += R16 ((gsize) op->c_in * n);
      biggest = MAX (biggest, (gsize) MAX (op->c_in, op->c_out) * n);
      if (op->kind == OP_CONV)
        {
          const Conv *cv = &w->conv[op->index];

          lo = cv->stride == 2 ? op->level + 1 : op->level;
          col = MAX (col, (gsize) cv->c_in * 9 * PLANE (lo));
          if (cv->stride == 1)
            col = MAX (col, (gsize) cv->c_in * 9 * n);
        }
      else if (op->kind == OP_RES)
        {
          const Res *r = &w->res[op->index];
          gsize tiles;

          lo = r->down ? op->level + 1 : op->level;
          tiles =
              diffuse__winograd_tiles (max_batch, height >> lo, width >> lo);
          act_total += R16 ((gsize) r->c_out * PLANE (lo));
          act_total += R16 ((gsize) max_batch * r->n_emb);
          wv = MAX (wv, 16 * (gsize) MAX (r->c_in, r->c_out) * tiles);
          wm = MAX (wm, 16 * (gsize) MAX (r->c_in, r->c_out) * tiles);
          if (r->skip_w)
            col = MAX (col, (gsize) r->c_in * PLANE (lo));
        }
      else
        {
          gsize t = (gsize) (height >> lo) * (width >> lo);

          act_total += R16 ((gsize) 3 * op->c_in * n);
          biggest = MAX (biggest, (gsize) 3 * op->c_in * n);
          scores = MAX (scores, diffuse__attention_scratch (t, n_threads));
          scores =
              MAX (scores, diffuse__attention_backward_scratch (t, n_threads));
        }
    }
  tokens = (gsize) (height >> w->head_level) * (width >> w->head_level) + 1;
  act_total += R16 ((gsize) w->ch * PLANE (w->head_level));
  act_total += R16 ((gsize) 3 * w->ch * max_batch * tokens);
  biggest = MAX (biggest, (gsize) 3 * w->ch * max_batch * tokens);
#undef PLANE
  *z = (ArenaSizes){
    biggest,
    col,
    wv,
    wm,
    scores,
    tokens,
    act_total + 5 * R16 (biggest) + R16 (col) + R16 (wv) + R16 (wm) +
        R16 (scores) + R16 ((gsize) w->ch * max_batch) +
        R16 ((gsize) max_batch * (cfg->model_channels + 3 * w->emb_dim)) + 16
  };
}

guint64
diffuse__classifier_estimate_bytes (const DiffuseModel *model, gint max_batch,
                                    gint height, gint width, gint n_threads)
{
  const DiffuseClassifierWeights *w =
      diffuse__model_get_classifier_weights (model);
  ArenaSizes z;

  g_return_val_if_fail (w != NULL, 0);
  arena_sizes (w, max_batch, height, width,
               diffuse__threads_for_run (n_threads), &z);
  /* the arena, and the state's per-image arrays (glogits) */
  return z.total * sizeof (float) +
         (guint64) max_batch * w->config.num_classes * sizeof (double);
}

DiffuseClassifier *
diffuse_classifier_new (const DiffuseModel *model, gint max_batch, gint height,
                        gint width, gint n_threads, GError **error)
{
  const DiffuseModelConfig *cfg;
  const DiffuseClassifierWeights *w;
  DiffuseClassifier *c;
  ArenaSizes z;
  gint unit;
  float *p;

  g_return_val_if_fail (model != NULL, NULL);
  cfg = diffuse_model_get_config (model);
  if (cfg->model_type != DIFFUSE_MODEL_CLASSIFIER)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "the model is a diffusion UNet, not a classifier");
      return NULL;
    }
  w = diffuse__model_get_classifier_weights (model);
  g_return_val_if_fail (w != NULL, NULL);
  unit = 1 << (cfg->n_levels - 1);
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
  if (cfg->pool == DIFFUSE_POOL_ATTENTION &&
      (height != cfg->image_size || width != cfg->image_size))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "the classifier's attention pool takes %dx%d images only "
                   "(its positional embedding is fixed), not %dx%d",
                   cfg->image_size, cfg->image_size, width, height);
      return NULL;
    }
  if (height < unit || width < unit || height % unit || width % unit ||
      height > 16384 || width > 16384)
    {
      g_set_error (
          error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
          "image size %dx%d is not a positive multiple of %d (up to 16384)",
          width, height, unit);
      return NULL;
    }

  c = g_new0 (DiffuseClassifier, 1);
  c->w = w;
  c->max_batch = max_batch;
  c->height = height;
  c->width = width;
  c->n_threads = diffuse__threads_for_run (n_threads);
  c->precision = DIFFUSE_PRECISION_FP32;
  c->act = g_new0 (float *, w->n_ops + 1);
  c->t_res = g_new0 (float *, w->n_res + 1);
  c->qkv = g_new0 (float *, w->n_attn + 1);
  c->emb_out = g_new0 (float *, w->n_res + 1);
  c->glogits = g_new0 (double, (gsize) max_batch * cfg->num_classes);

  arena_sizes (w, max_batch, height, width, c->n_threads, &z);
  c->scratch_bytes = z.total * sizeof (float);
  c->arena = g_try_malloc (c->scratch_bytes);
  if (c->arena == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "cannot allocate %" G_GSIZE_FORMAT " MiB for the classifier "
                   "at batch %d, %dx%d",
                   c->scratch_bytes >> 20, max_batch, width, height);
      diffuse_classifier_free (c);
      return NULL;
    }
  p = (float *) (((guintptr) c->arena + 63) & ~(guintptr) 63);
#define TAKE(dst, n)                                                           \
  G_STMT_START                                                                 \
  {                                                                            \
    dst = p;                                                                   \
    p += R16 (n);                                                              \
  }                                                                            \
  G_STMT_END
  for (gint i = 0; i < w->n_ops; i++)
    {
      const Op *op = &w->ops[i];

      TAKE (c->act[i], (gsize) op->c_in * plane (c, op->level));
      if (op->kind == OP_RES)
        {
          const Res *r = &w->res[op->index];
          gint lo = r->down ? op->level + 1 : op->level;

          TAKE (c->t_res[op->index], (gsize) r->c_out * plane (c, lo));
          TAKE (c->emb_out[op->index], (gsize) max_batch * r->n_emb);
        }
      else if (op->kind == OP_ATTN)
        TAKE (c->qkv[op->index], (gsize) 3 * op->c_in * plane (c, op->level));
    }
  TAKE (c->act[w->n_ops], (gsize) w->ch * plane (c, w->head_level));
  TAKE (c->pool_qkv, (gsize) 3 * w->ch * max_batch * z.tokens);
  TAKE (c->s1, z.biggest);
  TAKE (c->s2, z.biggest);
  TAKE (c->s3, z.biggest);
  TAKE (c->g0, z.biggest);
  TAKE (c->g1, z.biggest);
  TAKE (c->col, z.col);
  TAKE (c->wv, z.wv);
  TAKE (c->wm, z.wm);
  TAKE (c->scores, z.scores);
  TAKE (c->pooled, (gsize) w->ch * max_batch);
  TAKE (c->temb, (gsize) max_batch * cfg->model_channels);
  TAKE (c->emb_h, (gsize) max_batch * w->emb_dim);
  TAKE (c->emb, (gsize) max_batch * w->emb_dim);
  TAKE (c->emb_silu, (gsize) max_batch * w->emb_dim);
#undef TAKE
#undef R16
  c->pool = diffuse__pool_new (c->n_threads);
  return c;
}

/* ------------------------------------------------------------------ */
/* Forward                                                             */

/* A forward convolution in bf16 (conv-bf16.h) when the state is; FALSE
 * when it is fp32 and the caller runs its own. */
static gboolean
conv_bf16 (DiffuseClassifier *c, const float *x, gint c_in, gint batch, gint h,
           gint w, const float *wt, const float *bias, const float *bias2,
           gsize b2_stride, gint c_out, gint k, gint stride,
           gboolean accumulate, float *out)
{
  if (c->precision != DIFFUSE_PRECISION_BF16)
    return FALSE;
  if (c->bf16_error == NULL)
    diffuse__bf16_conv2d (c->bf16, c->pool, x, c_in, batch, h, w, wt, bias,
                          bias2, b2_stride, c_out, k, stride, accumulate, out,
                          &c->bf16_error);
  return TRUE;
}

/* ResBlock r on x [c_in, B, h, w] (level of the op) -> y; keeps
 * t_res[r] = conv1 (…) (+ emb_out when not scale-shift) and emb_out[r]. */
static void
res_forward (DiffuseClassifier *c, gint ri, gint batch, gint h, gint wd,
             const float *x, float *y)
{
  const Res *r = &c->w->res[ri];
  gboolean ss = c->w->config.use_scale_shift_norm;
  gint ho = r->down ? h / 2 : h, wo = r->down ? wd / 2 : wd;
  gsize hw = (gsize) h * wd, hwo = (gsize) ho * wo;
  const float *src = c->s1, *xs = x;
  float *t = c->t_res[ri], *eo = c->emb_out[ri];

  diffuse__group_norm (c->pool, x, r->c_in, batch, hw, GROUPS, GN_EPS,
                       r->in_norm_w, r->in_norm_b, NULL, NULL, 0, TRUE, c->s1);
  if (r->down)
    {
      diffuse__avgpool2x (c->pool, c->s1, r->c_in, batch, h, wd, c->s2);
      diffuse__avgpool2x (c->pool, x, r->c_in, batch, h, wd, c->s3);
      src = c->s2;
      xs = c->s3;
    }
  diffuse__linear (c->emb_silu, batch, c->w->emb_dim, r->emb_w, r->emb_b,
                   r->n_emb, eo);
  if (!conv_bf16 (c, src, r->c_in, batch, ho, wo, r->in_conv_w, r->in_conv_b,
                  ss ? NULL : eo, r->n_emb, r->c_out, 3, 1, FALSE, t))
    diffuse__conv3x3_winograd (c->pool, src, r->c_in, batch, ho, wo, r->in_u,
                               r->in_conv_b, ss ? NULL : eo, r->n_emb, r->c_out,
                               FALSE, c->wv, c->wm, t);
  diffuse__group_norm (c->pool, t, r->c_out, batch, hwo, GROUPS, GN_EPS,
                       r->out_norm_w, r->out_norm_b, ss ? eo : NULL,
                       ss ? eo + r->c_out : NULL, r->n_emb, TRUE, c->s1);
  if (r->skip_w)
    {
      if (!conv_bf16 (c, xs, r->c_in, batch, ho, wo, r->skip_w, r->skip_b, NULL,
                      0, r->c_out, 1, 1, FALSE, y))
        diffuse__conv2d (c->pool, xs, r->c_in, batch, ho, wo, r->skip_w,
                         r->skip_b, NULL, 0, r->c_out, 1, 1, FALSE, NULL, y);
    }
  else
    memcpy (y, xs, sizeof (float) * r->c_out * batch * hwo);
  if (!conv_bf16 (c, c->s1, r->c_out, batch, ho, wo, r->out_conv_w,
                  r->out_conv_b, NULL, 0, r->c_out, 3, 1, TRUE, y))
    diffuse__conv3x3_winograd (c->pool, c->s1, r->c_out, batch, ho, wo,
                               r->out_u, r->out_conv_b, NULL, 0, r->c_out, TRUE,
                               c->wv, c->wm, y);
}

static void
attn_forward (DiffuseClassifier *c, gint ai, gint batch, gint h, gint wd,
              const float *x, float *y)
{
  const Attn *a = &c->w->attn[ai];
  gsize hw = (gsize) h * wd;

  diffuse__group_norm (c->pool, x, a->channels, batch, hw, GROUPS, GN_EPS,
                       a->norm_w, a->norm_b, NULL, NULL, 0, FALSE, c->s1);
  if (!conv_bf16 (c, c->s1, a->channels, batch, h, wd, a->qkv_w, a->qkv_b, NULL,
                  0, 3 * a->channels, 1, 1, FALSE, c->qkv[ai]))
    diffuse__conv2d (c->pool, c->s1, a->channels, batch, h, wd, a->qkv_w,
                     a->qkv_b, NULL, 0, 3 * a->channels, 1, 1, FALSE, NULL,
                     c->qkv[ai]);
  diffuse__attention (c->pool, c->qkv[ai], a->channels, batch, hw, a->heads,
                      !c->w->config.use_new_attention_order, c->scores, c->s2);
  memcpy (y, x, sizeof (float) * a->channels * batch * hw);
  if (!conv_bf16 (c, c->s2, a->channels, batch, h, wd, a->proj_w, a->proj_b,
                  NULL, 0, a->channels, 1, 1, TRUE, y))
    diffuse__conv2d (c->pool, c->s2, a->channels, batch, h, wd, a->proj_w,
                     a->proj_b, NULL, 0, a->channels, 1, 1, TRUE, NULL, y);
}

/* softmax over the T + 1 tokens of query token 0 for (b, head), into p */
static void
pool_probs (const DiffuseClassifier *c, gint batch, gsize tokens, gint b,
            gint hd, double *p)
{
  const DiffuseClassifierWeights *w = c->w;
  gint C = w->ch, ch = C / w->pool_heads;
  gsize ld = (gsize) batch * tokens;
  const float *q = c->pool_qkv + (gsize) hd * ch * ld + b * tokens;
  const float *k = q + (gsize) C * ld;
  double alpha = 1.0 / sqrt ((double) ch), m = -INFINITY, sum = 0.0;

  for (gsize j = 0; j < tokens; j++)
    {
      double s = 0.0;

      for (gint e = 0; e < ch; e++)
        s += (double) q[(gsize) e * ld] * k[(gsize) e * ld + j];
      p[j] = alpha * s;
      m = MAX (m, p[j]);
    }
  for (gsize j = 0; j < tokens; j++)
    {
      p[j] = exp (p[j] - m);
      sum += p[j];
    }
  for (gsize j = 0; j < tokens; j++)
    p[j] /= sum;
}

/* logits [B, K] from act[n_ops] */
static void
head_forward (DiffuseClassifier *c, gint batch, float *logits)
{
  const DiffuseClassifierWeights *w = c->w;
  gint C = w->ch, K = w->config.num_classes;
  gint h = c->height >> w->head_level, wd = c->width >> w->head_level;
  gsize hw = (gsize) h * wd;
  const float *x = c->act[w->n_ops];

  diffuse__group_norm (c->pool, x, C, batch, hw, GROUPS, GN_EPS, w->out_norm_w,
                       w->out_norm_b, NULL, NULL, 0, TRUE, c->s1);
  if (w->config.pool == DIFFUSE_POOL_ADAPTIVE)
    {
      for (gint ch = 0; ch < C; ch++)
        for (gint b = 0; b < batch; b++)
          {
            const float *r = c->s1 + ((gsize) ch * batch + b) * hw;
            double s = 0.0;

            for (gsize i = 0; i < hw; i++)
              s += r[i];
            c->pooled[(gsize) ch * batch + b] = (float) (s / hw);
          }
      for (gint b = 0; b < batch; b++)
        for (gint k = 0; k < K; k++)
          {
            double s = w->fc_b[k];

            for (gint ch = 0; ch < C; ch++)
              s += (double) w->fc_w[(gsize) k * C + ch] *
                   c->pooled[(gsize) ch * batch + b];
            logits[(gsize) b * K + k] = (float) s;
          }
      return;
    }

  /* attention pool: tokens [C, B, T + 1] into s2 */
  gsize tokens = hw + 1, ld = (gsize) batch * tokens;
  gint heads = w->pool_heads, ch = C / heads;
  double *p = g_new (double, tokens);

  for (gint e = 0; e < C; e++)
    for (gint b = 0; b < batch; b++)
      {
        const float *r = c->s1 + ((gsize) e * batch + b) * hw;
        float *o = c->s2 + (gsize) e * ld + b * tokens;
        const float *pe = w->pos + (gsize) e * tokens;
        double s = 0.0;

        for (gsize i = 0; i < hw; i++)
          s += r[i];
        o[0] = (float) (s / hw) + pe[0];
        for (gsize i = 0; i < hw; i++)
          o[1 + i] = r[i] + pe[1 + i];
      }
  diffuse__conv2d (c->pool, c->s2, C, batch, 1, (gint) tokens, w->pqkv_w,
                   w->pqkv_b, NULL, 0, 3 * C, 1, 1, FALSE, NULL, c->pool_qkv);
  /* token 0's output per head: o = Σ_j p_j v_j */
  for (gint b = 0; b < batch; b++)
    for (gint hd = 0; hd < heads; hd++)
      {
        const float *v =
            c->pool_qkv + ((gsize) 2 * C + (gsize) hd * ch) * ld + b * tokens;

        pool_probs (c, batch, tokens, b, hd, p);
        for (gint e = 0; e < ch; e++)
          {
            double s = 0.0;

            for (gsize j = 0; j < tokens; j++)
              s += p[j] * v[(gsize) e * ld + j];
            c->pooled[((gsize) hd * ch + e) * batch + b] = (float) s;
          }
      }
  g_free (p);
  for (gint b = 0; b < batch; b++)
    for (gint k = 0; k < K; k++)
      {
        double s = w->pc_b[k];

        for (gint e = 0; e < C; e++)
          s += (double) w->pc_w[(gsize) k * C + e] *
               c->pooled[(gsize) e * batch + b];
        logits[(gsize) b * K + k] = (float) s;
      }
}

static gboolean
check_call (DiffuseClassifier *c, gint batch, const float *x,
            const float *timesteps, GError **error)
{
  g_return_val_if_fail (x != NULL && timesteps != NULL, FALSE);
  if (batch < 1 || batch > c->max_batch)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "batch %d is out of range (1..%d)", batch, c->max_batch);
      return FALSE;
    }
  return TRUE;
}

static void
forward (DiffuseClassifier *c, gint batch, const float *x,
         const float *timesteps, float *logits)
{
  const DiffuseClassifierWeights *w = c->w;
  const DiffuseModelConfig *cfg = &w->config;
  gint E = w->emb_dim;

  diffuse__timestep_embedding (timesteps, batch, cfg->model_channels, c->temb);
  diffuse__linear (c->temb, batch, cfg->model_channels, w->time_w0, w->time_b0,
                   E, c->emb_h);
  diffuse__silu (c->pool, c->emb_h, (gsize) batch * E, c->emb_h);
  diffuse__linear (c->emb_h, batch, E, w->time_w2, w->time_b2, E, c->emb);
  diffuse__silu (c->pool, c->emb, (gsize) batch * E, c->emb_silu);

  diffuse__nchw_to_cbhw (c->pool, x, batch, cfg->in_channels,
                         (gsize) c->height * c->width, c->act[0]);
  for (gint i = 0; i < w->n_ops; i++)
    {
      const Op *op = &w->ops[i];
      gint h = c->height >> op->level, wd = c->width >> op->level;

      switch (op->kind)
        {
        case OP_CONV:
          {
            const Conv *cv = &w->conv[op->index];

            /* the input convolution stays fp32 (little work) */
            if (cv->stride == 1 ||
                !conv_bf16 (c, c->act[i], cv->c_in, batch, h, wd, cv->w, cv->b,
                            NULL, 0, cv->c_out, 3, cv->stride, FALSE,
                            c->act[i + 1]))
              diffuse__conv2d (c->pool, c->act[i], cv->c_in, batch, h, wd,
                               cv->w, cv->b, NULL, 0, cv->c_out, 3, cv->stride,
                               FALSE, c->col, c->act[i + 1]);
            break;
          }
        case OP_RES:
          res_forward (c, op->index, batch, h, wd, c->act[i], c->act[i + 1]);
          break;
        case OP_ATTN:
          attn_forward (c, op->index, batch, h, wd, c->act[i], c->act[i + 1]);
          break;
        }
    }
  head_forward (c, batch, logits);
}

/* The pass runs on the state's own threads, which call OpenBLAS
 * single-threaded (diffuse__threads_for_run set it so), as unet.c's. */
static void
threads_begin (DiffuseClassifier *c)
{
  diffuse__pool_set_active (c->pool, c->n_threads);
}

/* TRUE (and the error moved to error) when a bf16 convolution of the
 * last forward pass failed */
static gboolean
take_bf16_error (DiffuseClassifier *c, GError **error)
{
  if (c->bf16_error == NULL)
    return FALSE;
  g_propagate_error (error, c->bf16_error);
  c->bf16_error = NULL;
  return TRUE;
}

gboolean
diffuse_classifier_set_precision (DiffuseClassifier *clf,
                                  DiffusePrecision precision, GError **error)
{
  DiffusePrecision p;

  g_return_val_if_fail (clf != NULL, FALSE);
  if ((guint) precision >= DIFFUSE_PRECISION_COUNT)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "precision %d is out of range", (gint) precision);
      return FALSE;
    }
  if (!diffuse_precision_resolve (
          precision, diffuse__classifier_get_flops (clf, 1), &p, error))
    return FALSE;
  clf->precision = p;
  if (p == DIFFUSE_PRECISION_BF16 && clf->bf16 == NULL)
    clf->bf16 = diffuse__bf16_convs_new (clf->n_threads, FALSE, NULL);
  return TRUE;
}

void
diffuse__classifier_emulate_bf16 (DiffuseClassifier *clf)
{
  diffuse__bf16_convs_free (clf->bf16);
  clf->bf16 = diffuse__bf16_convs_new (clf->n_threads, TRUE, NULL);
  clf->precision = DIFFUSE_PRECISION_BF16;
}

gboolean
diffuse_classifier_forward (DiffuseClassifier *clf, gint batch, const float *x,
                            const float *timesteps, float *logits,
                            GError **error)
{
  g_return_val_if_fail (clf != NULL && logits != NULL, FALSE);
  if (!check_call (clf, batch, x, timesteps, error))
    return FALSE;
  threads_begin (clf);
  forward (clf, batch, x, timesteps, logits);
  return !take_bf16_error (clf, error);
}

/* ------------------------------------------------------------------ */
/* Backward                                                            */

/* d act[n_ops] into g from glogits [B, K] */
static void
head_backward (DiffuseClassifier *c, gint batch, float *g)
{
  const DiffuseClassifierWeights *w = c->w;
  gint C = w->ch, K = w->config.num_classes;
  gint h = c->height >> w->head_level, wd = c->width >> w->head_level;
  gsize hw = (gsize) h * wd;
  const float *x = c->act[w->n_ops];

  if (w->config.pool == DIFFUSE_POOL_ADAPTIVE)
    {
      /* d pooled = Wᵀ g; the mean spreads it evenly over H·W */
      for (gint e = 0; e < C; e++)
        for (gint b = 0; b < batch; b++)
          {
            double s = 0.0;
            float *r = c->s1 + ((gsize) e * batch + b) * hw;

            for (gint k = 0; k < K; k++)
              s += w->fc_w[(gsize) k * C + e] * c->glogits[(gsize) b * K + k];
            for (gsize i = 0; i < hw; i++)
              r[i] = (float) (s / hw);
          }
    }
  else
    {
      gsize tokens = hw + 1, ld = (gsize) batch * tokens;
      gint heads = w->pool_heads, ch = C / heads;
      double alpha = 1.0 / sqrt ((double) ch);
      double *p = g_new (double, tokens), *dp = g_new (double, tokens);
      float *dqkv = c->s3;

      memset (dqkv, 0, sizeof (float) * 3 * C * ld);
      for (gint b = 0; b < batch; b++)
        {
          /* d o (token 0's attention output) = c_projᵀ g, into pooled */
          for (gint e = 0; e < C; e++)
            {
              double s = 0.0;

              for (gint k = 0; k < K; k++)
                s += w->pc_w[(gsize) k * C + e] * c->glogits[(gsize) b * K + k];
              c->pooled[(gsize) e * batch + b] = (float) s;
            }
          for (gint hd = 0; hd < heads; hd++)
            {
              gsize rq = (gsize) hd * ch, rk = rq + C, rv = rq + 2 * (gsize) C;
              const float *q = c->pool_qkv + rq * ld + b * tokens;
              const float *k = c->pool_qkv + rk * ld + b * tokens;
              const float *v = c->pool_qkv + rv * ld + b * tokens;
              float *dq = dqkv + rq * ld + b * tokens;
              float *dk = dqkv + rk * ld + b * tokens;
              float *dv = dqkv + rv * ld + b * tokens;
              const float *dO = c->pooled + rq * batch + b;
              double pdp = 0.0;

              pool_probs (c, batch, tokens, b, hd, p);
              for (gsize j = 0; j < tokens; j++)
                {
                  double s = 0.0;

                  for (gint e = 0; e < ch; e++)
                    {
                      s += (double) dO[(gsize) e * batch] *
                           v[(gsize) e * ld + j];
                      dv[(gsize) e * ld + j] =
                          (float) (p[j] * dO[(gsize) e * batch]);
                    }
                  dp[j] = s;
                  pdp += p[j] * s;
                }
              for (gsize j = 0; j < tokens; j++)
                dp[j] = p[j] * (dp[j] - pdp); /* dS */
              for (gint e = 0; e < ch; e++)
                {
                  double s = 0.0;

                  for (gsize j = 0; j < tokens; j++)
                    {
                      s += dp[j] * k[(gsize) e * ld + j];
                      dk[(gsize) e * ld + j] =
                          (float) (alpha * dp[j] * q[(gsize) e * ld]);
                    }
                  dq[(gsize) e * ld] = (float) (alpha * s);
                }
            }
        }
      g_free (p);
      g_free (dp);
      /* d tokens = qkv_projᵀ dqkv [C, B, T + 1] into s2 */
      diffuse__conv2d_backward (c->pool, dqkv, 3 * C, batch, 1, (gint) tokens,
                                w->pqkv_w, C, 1, 1, FALSE, NULL, c->s2);
      /* token 0 is the mean of the others */
      for (gint e = 0; e < C; e++)
        for (gint b = 0; b < batch; b++)
          {
            const float *d = c->s2 + (gsize) e * ld + b * tokens;
            float *r = c->s1 + ((gsize) e * batch + b) * hw;
            float m = d[0] / (float) hw;

            for (gsize i = 0; i < hw; i++)
              r[i] = d[1 + i] + m;
          }
    }
  diffuse__group_norm_backward (c->pool, x, C, batch, hw, GROUPS, GN_EPS,
                                w->out_norm_w, w->out_norm_b, NULL, NULL, 0,
                                TRUE, c->s1, g, FALSE);
}

/* dx (of the block's input, [c_in, B, h, w]) from dy (clobbered) */
static void
res_backward (DiffuseClassifier *c, gint ri, gint batch, gint h, gint wd,
              const float *x, float *dy, float *dx)
{
  const Res *r = &c->w->res[ri];
  gboolean ss = c->w->config.use_scale_shift_norm;
  gint ho = r->down ? h / 2 : h, wo = r->down ? wd / 2 : wd;
  gsize hw = (gsize) h * wd, hwo = (gsize) ho * wo;
  const float *eo = c->emb_out[ri];
  float *dxs = r->down ? c->s3 : dx;

  /* skip path */
  if (r->skip_w)
    diffuse__conv2d_backward (c->pool, dy, r->c_out, batch, ho, wo, r->skip_w,
                              r->c_in, 1, 1, FALSE, NULL, dxs);
  else
    memcpy (dxs, dy, sizeof (float) * r->c_out * batch * hwo);
  if (r->down)
    diffuse__avgpool2x_backward (c->pool, dxs, r->c_in, batch, h, wd, FALSE,
                                 dx);
  /* out_layers: conv2ᵀ, then GN2 (scale-shift) + SiLU */
  diffuse__conv3x3_winograd (c->pool, dy, r->c_out, batch, ho, wo, r->out_tu,
                             NULL, NULL, 0, r->c_out, FALSE, c->wv, c->wm,
                             c->s1);
  diffuse__group_norm_backward (c->pool, c->t_res[ri], r->c_out, batch, hwo,
                                GROUPS, GN_EPS, r->out_norm_w, r->out_norm_b,
                                ss ? eo : NULL, ss ? eo + r->c_out : NULL,
                                r->n_emb, TRUE, c->s1, c->s1, FALSE);
  /* in_layers: conv1ᵀ (at the pooled size), pooling, GN1 + SiLU */
  diffuse__conv3x3_winograd (c->pool, c->s1, r->c_out, batch, ho, wo, r->in_tu,
                             NULL, NULL, 0, r->c_in, FALSE, c->wv, c->wm,
                             c->s2);
  if (r->down)
    {
      diffuse__avgpool2x_backward (c->pool, c->s2, r->c_in, batch, h, wd, FALSE,
                                   c->s1);
      diffuse__group_norm_backward (c->pool, x, r->c_in, batch, hw, GROUPS,
                                    GN_EPS, r->in_norm_w, r->in_norm_b, NULL,
                                    NULL, 0, TRUE, c->s1, dx, TRUE);
    }
  else
    diffuse__group_norm_backward (c->pool, x, r->c_in, batch, hw, GROUPS,
                                  GN_EPS, r->in_norm_w, r->in_norm_b, NULL,
                                  NULL, 0, TRUE, c->s2, dx, TRUE);
}

static void
attn_backward (DiffuseClassifier *c, gint ai, gint batch, gint h, gint wd,
               const float *x, const float *dy, float *dx)
{
  const Attn *a = &c->w->attn[ai];
  gsize hw = (gsize) h * wd;

  memcpy (dx, dy, sizeof (float) * a->channels * batch * hw);
  diffuse__conv2d_backward (c->pool, dy, a->channels, batch, h, wd, a->proj_w,
                            a->channels, 1, 1, FALSE, NULL, c->s1);
  diffuse__attention_backward (
      c->pool, c->qkv[ai], c->s1, a->channels, batch, hw, a->heads,
      !c->w->config.use_new_attention_order, c->scores, c->s2);
  diffuse__conv2d_backward (c->pool, c->s2, 3 * a->channels, batch, h, wd,
                            a->qkv_w, a->channels, 1, 1, FALSE, NULL, c->s1);
  diffuse__group_norm_backward (c->pool, x, a->channels, batch, hw, GROUPS,
                                GN_EPS, a->norm_w, a->norm_b, NULL, NULL, 0,
                                FALSE, c->s1, dx, TRUE);
}

gboolean
diffuse_classifier_grad (DiffuseClassifier *clf, gint batch, const float *x,
                         const float *timesteps, const gint *labels,
                         float *logits, float *grad, GError **error)
{
  const DiffuseClassifierWeights *w;
  gint K;
  float *lg, *g, *gn;

  g_return_val_if_fail (clf != NULL && labels != NULL && grad != NULL, FALSE);
  if (!check_call (clf, batch, x, timesteps, error))
    return FALSE;
  w = clf->w;
  K = w->config.num_classes;
  for (gint b = 0; b < batch; b++)
    if (labels[b] < 0 || labels[b] >= K)
      {
        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                     "class label %d is out of range: the classifier has %d "
                     "classes (0..%d)",
                     labels[b], K, K - 1);
        return FALSE;
      }
  lg = logits ? logits : g_new (float, (gsize) batch *K);
  threads_begin (clf);
  forward (clf, batch, x, timesteps, lg);
  if (take_bf16_error (clf, error))
    {
      if (lg != logits)
        g_free (lg);
      return FALSE;
    }

  /* ∂ log softmax(l)[y] / ∂ l_k = [k = y] − softmax(l)_k */
  for (gint b = 0; b < batch; b++)
    {
      const float *l = lg + (gsize) b * K;
      double m = l[0], sum = 0.0;

      for (gint k = 1; k < K; k++)
        m = MAX (m, l[k]);
      for (gint k = 0; k < K; k++)
        sum += exp (l[k] - m);
      for (gint k = 0; k < K; k++)
        clf->glogits[(gsize) b * K + k] =
            (k == labels[b] ? 1.0 : 0.0) - exp (l[k] - m) / sum;
    }
  if (lg != logits)
    g_free (lg);

  g = clf->g0;
  gn = clf->g1;
  head_backward (clf, batch, g);
  for (gint i = w->n_ops - 1; i >= 0; i--)
    {
      const Op *op = &w->ops[i];
      gint h = clf->height >> op->level, wd = clf->width >> op->level;
      float *tmp;

      switch (op->kind)
        {
        case OP_CONV:
          {
            const Conv *cv = &w->conv[op->index];

            diffuse__conv2d_backward (clf->pool, g, cv->c_out, batch, h, wd,
                                      cv->w, cv->c_in, 3, cv->stride, FALSE,
                                      clf->col, gn);
            break;
          }
        case OP_RES:
          res_backward (clf, op->index, batch, h, wd, clf->act[i], g, gn);
          break;
        case OP_ATTN:
          attn_backward (clf, op->index, batch, h, wd, clf->act[i], g, gn);
          break;
        }
      tmp = g;
      g = gn;
      gn = tmp;
    }
  diffuse__cbhw_to_nchw (clf->pool, g, batch, w->config.in_channels,
                         (gsize) clf->height * clf->width, grad);
  return TRUE;
}

/* The forward pass's floating-point operations at this size */
static guint64
forward_flops (const DiffuseClassifierWeights *w, gint height, gint width,
               gint batch)
{
  guint64 f = 0, E = w->emb_dim;

#define PIX(l) ((guint64) batch * (height >> (l)) * (width >> (l)))
  f += 2 * (guint64) batch * ((guint64) w->config.model_channels * E + E * E);
  for (gint i = 0; i < w->n_ops; i++)
    {
      const Op *op = &w->ops[i];

      if (op->kind == OP_CONV)
        {
          const Conv *cv = &w->conv[op->index];

          f += 2 * (guint64) cv->c_out * cv->c_in * 9 *
               PIX (op->level + (cv->stride == 2));
        }
      else if (op->kind == OP_RES)
        {
          const Res *r = &w->res[op->index];
          guint64 p = PIX (op->level + r->down);

          f += 2 * (guint64) r->c_out * (r->c_in + r->c_out) * 9 * p;
          if (r->skip_w)
            f += 2 * (guint64) r->c_out * r->c_in * p;
          f += 2 * (guint64) batch * r->n_emb * E;
        }
      else
        {
          guint64 t = (guint64) (height >> op->level) * (width >> op->level);

          f += 2 * (guint64) 4 * op->c_in * op->c_in * PIX (op->level);
          f += 2 * (guint64) 2 * batch * op->c_in * t * t;
        }
    }
  f += 2 * (guint64) 3 * w->ch * w->ch * (PIX (w->head_level) + batch);
#undef PIX
  return f;
}

guint64
diffuse__classifier_get_flops (const DiffuseClassifier *c, gint batch)
{
  return forward_flops (c->w, c->height, c->width, batch);
}

guint64
diffuse__classifier_flops (const DiffuseModel *model, gint height, gint width)
{
  const DiffuseClassifierWeights *w =
      diffuse__model_get_classifier_weights (model);

  g_return_val_if_fail (w != NULL, 0);
  return forward_flops (w, height, width, 1);
}
