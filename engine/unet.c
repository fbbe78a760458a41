/* The ADM UNet (Dhariwal & Nichol 2021; guided-diffusion's UNetModel):
 * its parameters bound by state_dict name, and the forward pass.
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
 * the batch is one GEMM (im2col) or 16 (Winograd F(2×2, 3×3), for the
 * ResBlock and Upsample convs).  The pass runs on its own threads, which
 * call OpenBLAS single-threaded.  All scratch is allocated in
 * diffuse_unet_new; the forward pass allocates nothing.  bench/README.md
 * has the measurements behind these choices. */
#include <stdarg.h>
#include <string.h>

#include <cblas.h>

#include "diffuse-private.h"
#include "layers.h"

#define GROUPS 32           /* GroupNorm32 */
#define GN_EPS 1e-5f

typedef struct
{
  gint c_in, c_out;
  gint updown;              /* 0, +1 up (nearest ×2), −1 down (avgpool 2) */
  gint n_emb;               /* 2·c_out with scale-shift norm, else c_out */
  const float *in_norm_w;   /* (c_in)  in_layers.0 */
  const float *in_norm_b;   /* (c_in) */
  const float *in_conv_w;   /* (c_out, c_in, 3, 3)  in_layers.2 */
  const float *in_conv_b;   /* (c_out) */
  const float *emb_w;       /* (n_emb, 4·mc)  emb_layers.1 */
  const float *emb_b;       /* (n_emb) */
  const float *out_norm_w;  /* (c_out)  out_layers.0 */
  const float *out_norm_b;  /* (c_out) */
  const float *out_conv_w;  /* (c_out, c_out, 3, 3)  out_layers.3 */
  const float *out_conv_b;  /* (c_out) */
  const float *skip_w;      /* (c_out, c_in, 1, 1)  skip_connection;
                               NULL when c_in == c_out */
  const float *skip_b;      /* (c_out) */
  const float *in_conv_u;   /* (16, c_out, c_in)  Winograd form of in_conv_w, or NULL */
  const float *out_conv_u;  /* (16, c_out, c_out)  Winograd form of out_conv_w, or NULL */
} ResBlockWeights;

typedef struct
{
  gint channels, heads;
  const float *norm_w;      /* (C)  norm */
  const float *norm_b;      /* (C) */
  const float *qkv_w;       /* (3C, C, 1)  qkv */
  const float *qkv_b;       /* (3C) */
  const float *proj_w;      /* (C, C, 1)  proj_out */
  const float *proj_b;      /* (C) */
} AttentionWeights;

typedef struct
{
  gint c_in, c_out;
  const float *w;           /* (c_out, c_in, 3, 3) */
  const float *b;           /* (c_out) */
  const float *u;           /* (16, c_out, c_in)  Winograd form (Upsample
                               convs), or NULL */
} ConvWeights;

typedef enum
{
  OP_CONV_IN,               /* input_blocks.0.0 */
  OP_RES,                   /* ResBlock */
  OP_ATTN,                  /* AttentionBlock */
  OP_DOWN,                  /* Downsample: conv3x3 stride 2 */
  OP_UP                     /* Upsample: nearest ×2, conv3x3 */
} OpKind;

/* One layer of the network in execution order. */
typedef struct
{
  OpKind kind;
  gint level;               /* input resolution: H >> level, W >> level */
  gboolean pop_skip;        /* first layer of an output block: input is cat (h, skip) */
  gboolean push_skip;       /* last layer of an input block: keep output as a skip */
  gint index;               /* into res[], attn[] or conv[] */
} Op;

struct _DiffuseUNetWeights
{
  DiffuseModelConfig config;
  gint emb_dim;             /* 4·mc */
  const float *time_w0;     /* (4mc, mc)  time_embed.0 */
  const float *time_b0;     /* (4mc) */
  const float *time_w2;     /* (4mc, 4mc)  time_embed.2 */
  const float *time_b2;     /* (4mc) */
  const float *label_emb;   /* (num_classes, 4mc)  label_emb; NULL if unconditional */
  const float *out_norm_w;  /* (ch0)  out.0 */
  const float *out_norm_b;  /* (ch0) */
  ConvWeights out_conv;     /* (out_channels, ch0, 3, 3)  out.2 */
  Op *ops;
  gint n_ops;
  ResBlockWeights *res;
  gint n_res;
  AttentionWeights *attn;
  gint n_attn;
  ConvWeights *conv;        /* conv-in, Downsample and Upsample convs */
  gint n_conv;
  gint n_skips;
  float *wino;              /* one allocation holding every *_u above */
};

/* ------------------------------------------------------------------ */
/* Binding                                                             */

typedef struct
{
  const DiffuseModel *model;
  guint n_bound;
  GError *error;
} Binder;

/* Look up "printf (fmt, ...)" with the given shape (ndim values after
 * the name arguments are given through shape[]).  After the first failure
 * every later call is a no-op returning NULL. */
static const float *
bind (Binder *bd, gint ndim, gint64 d0, gint64 d1, gint64 d2, gint64 d3,
      const char *fmt, ...) G_GNUC_PRINTF (7, 8);

static const float *
bind (Binder *bd, gint ndim, gint64 d0, gint64 d1, gint64 d2, gint64 d3,
      const char *fmt, ...)
{
  gint64 shape[4] = { d0, d1, d2, d3 };
  g_autofree gchar *name = NULL;
  const float *p;
  va_list args;

  if (bd->error)
    return NULL;
  va_start (args, fmt);
  name = g_strdup_vprintf (fmt, args);
  va_end (args);
  p = diffuse__model_tensor (bd->model, name, ndim, shape, &bd->error);
  if (p)
    bd->n_bound++;
  return p;
}

#define BIND1(bd, a, ...) bind (bd, 1, a, 0, 0, 0, __VA_ARGS__)
#define BIND2(bd, a, b, ...) bind (bd, 2, a, b, 0, 0, __VA_ARGS__)
#define BIND3(bd, a, b, c, ...) bind (bd, 3, a, b, c, 0, __VA_ARGS__)
#define BIND4(bd, a, b, c, d, ...) bind (bd, 4, a, b, c, d, __VA_ARGS__)

static void
bind_res (Binder *bd, ResBlockWeights *r, const char *prefix, gint c_in,
          gint c_out, gint emb_dim, gboolean scale_shift, gint updown)
{
  r->c_in = c_in;
  r->c_out = c_out;
  r->updown = updown;
  r->n_emb = scale_shift ? 2 * c_out : c_out;
  r->in_norm_w = BIND1 (bd, c_in, "%s.in_layers.0.weight", prefix);
  r->in_norm_b = BIND1 (bd, c_in, "%s.in_layers.0.bias", prefix);
  r->in_conv_w = BIND4 (bd, c_out, c_in, 3, 3, "%s.in_layers.2.weight", prefix);
  r->in_conv_b = BIND1 (bd, c_out, "%s.in_layers.2.bias", prefix);
  r->emb_w = BIND2 (bd, r->n_emb, emb_dim, "%s.emb_layers.1.weight", prefix);
  r->emb_b = BIND1 (bd, r->n_emb, "%s.emb_layers.1.bias", prefix);
  r->out_norm_w = BIND1 (bd, c_out, "%s.out_layers.0.weight", prefix);
  r->out_norm_b = BIND1 (bd, c_out, "%s.out_layers.0.bias", prefix);
  r->out_conv_w = BIND4 (bd, c_out, c_out, 3, 3, "%s.out_layers.3.weight", prefix);
  r->out_conv_b = BIND1 (bd, c_out, "%s.out_layers.3.bias", prefix);
  if (c_in != c_out)
    {
      r->skip_w = BIND4 (bd, c_out, c_in, 1, 1, "%s.skip_connection.weight", prefix);
      r->skip_b = BIND1 (bd, c_out, "%s.skip_connection.bias", prefix);
    }
}

static void
bind_attn (Binder *bd, AttentionWeights *a, const char *prefix, gint channels,
           gint heads)
{
  a->channels = channels;
  a->heads = heads;
  a->norm_w = BIND1 (bd, channels, "%s.norm.weight", prefix);
  a->norm_b = BIND1 (bd, channels, "%s.norm.bias", prefix);
  a->qkv_w = BIND3 (bd, 3 * channels, channels, 1, "%s.qkv.weight", prefix);
  a->qkv_b = BIND1 (bd, 3 * channels, "%s.qkv.bias", prefix);
  a->proj_w = BIND3 (bd, channels, channels, 1, "%s.proj_out.weight", prefix);
  a->proj_b = BIND1 (bd, channels, "%s.proj_out.bias", prefix);
}

static void
bind_conv (Binder *bd, ConvWeights *c, const char *prefix, gint c_in, gint c_out)
{
  c->c_in = c_in;
  c->c_out = c_out;
  c->w = BIND4 (bd, c_out, c_in, 3, 3, "%s.weight", prefix);
  c->b = BIND1 (bd, c_out, "%s.bias", prefix);
}

/* guided-diffusion's create_model turns pixel resolutions into
 * downsampling rates: attention_ds = image_size // res. */
static gboolean
has_attention (const DiffuseModelConfig *cfg, gint ds)
{
  for (gint i = 0; i < cfg->n_attention_resolutions; i++)
    if (cfg->attention_resolutions[i] > 0
        && cfg->image_size / cfg->attention_resolutions[i] == ds)
      return TRUE;
  return FALSE;
}

static gint
heads_for (const DiffuseModelConfig *cfg, gint channels, gboolean upsample)
{
  if (cfg->num_head_channels > 0)
    return channels / cfg->num_head_channels;
  if (upsample && cfg->num_heads_upsample > 0)
    return cfg->num_heads_upsample;
  return cfg->num_heads;
}

static gboolean
check_channels (const char *what, gint channels, gint heads, GError **error)
{
  if (channels <= 0 || channels % GROUPS != 0)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL,
                   "%s has %d channels, not a multiple of the %d GroupNorm groups",
                   what, channels, GROUPS);
      return FALSE;
    }
  if (heads == 0)
    return TRUE;
  if (heads < 0 || channels % heads != 0)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL,
                   "%s has %d channels, which %d attention heads do not divide",
                   what, channels, heads);
      return FALSE;
    }
  return TRUE;
}

/* Builder: the op list grows in execution order. */
typedef struct
{
  DiffuseUNetWeights *w;
  Binder *bd;
  gint cap_ops, cap_res, cap_attn, cap_conv;
} Builder;

static Op *
add_op (Builder *b, OpKind kind, gint level)
{
  DiffuseUNetWeights *w = b->w;
  Op *op;

  if (w->n_ops == b->cap_ops)
    {
      b->cap_ops = b->cap_ops ? 2 * b->cap_ops : 32;
      w->ops = g_renew (Op, w->ops, b->cap_ops);
    }
  op = &w->ops[w->n_ops++];
  memset (op, 0, sizeof *op);
  op->kind = kind;
  op->level = level;
  return op;
}

static void
add_res (Builder *b, const char *prefix, gint level, gint c_in, gint c_out,
         gint updown)
{
  DiffuseUNetWeights *w = b->w;
  Op *op = add_op (b, OP_RES, level);

  if (w->n_res == b->cap_res)
    {
      b->cap_res = b->cap_res ? 2 * b->cap_res : 16;
      w->res = g_renew (ResBlockWeights, w->res, b->cap_res);
    }
  op->index = w->n_res;
  memset (&w->res[w->n_res], 0, sizeof w->res[0]);
  bind_res (b->bd, &w->res[w->n_res++], prefix, c_in, c_out, w->emb_dim,
            w->config.use_scale_shift_norm, updown);
}

static void
add_attn (Builder *b, const char *prefix, gint level, gint channels,
          gboolean upsample)
{
  DiffuseUNetWeights *w = b->w;
  Op *op = add_op (b, OP_ATTN, level);
  gint heads = heads_for (&w->config, channels, upsample);

  if (w->n_attn == b->cap_attn)
    {
      b->cap_attn = b->cap_attn ? 2 * b->cap_attn : 16;
      w->attn = g_renew (AttentionWeights, w->attn, b->cap_attn);
    }
  op->index = w->n_attn;
  memset (&w->attn[w->n_attn], 0, sizeof w->attn[0]);
  if (!b->bd->error)
    check_channels (prefix, channels, heads, &b->bd->error);
  bind_attn (b->bd, &w->attn[w->n_attn++], prefix, channels, heads);
}

static void
add_conv (Builder *b, OpKind kind, const char *prefix, gint level, gint c_in,
          gint c_out)
{
  DiffuseUNetWeights *w = b->w;
  Op *op = add_op (b, kind, level);

  if (w->n_conv == b->cap_conv)
    {
      b->cap_conv = b->cap_conv ? 2 * b->cap_conv : 8;
      w->conv = g_renew (ConvWeights, w->conv, b->cap_conv);
    }
  op->index = w->n_conv;
  bind_conv (b->bd, &w->conv[w->n_conv++], prefix, c_in, c_out);
}

/* The 3×3 stride-1 convolutions between normalised layers (ResBlock convs,
 * Upsample convs) run as Winograd F(2×2, 3×3) (layers.h), whose weights
 * u = G g Gᵀ are made here once, 16/9 the size of the originals.  If that
 * memory is not available they run as im2col GEMMs instead. */
static void
make_winograd (DiffuseUNetWeights *w)
{
  DiffusePool *pool;
  gsize total = 0;
  float *p;

  for (gint i = 0; i < w->n_res; i++)
    total += (gsize) 16 * w->res[i].c_out * (w->res[i].c_in + w->res[i].c_out);
  for (gint i = 0; i < w->n_ops; i++)
    if (w->ops[i].kind == OP_UP)
      {
        const ConvWeights *c = &w->conv[w->ops[i].index];

        total += (gsize) 16 * c->c_out * c->c_in;
      }
  w->wino = g_try_malloc (total * sizeof (float));
  if (w->wino == NULL)
    return;
  /* ImageNet-64's 290 M weights take a second per thread */
  pool = diffuse__pool_new (CLAMP (openblas_get_num_threads (), 1, 64));
  p = w->wino;
  for (gint i = 0; i < w->n_res; i++)
    {
      ResBlockWeights *r = &w->res[i];

      diffuse__winograd_weights (pool, r->in_conv_w, r->c_out, r->c_in, p);
      r->in_conv_u = p;
      p += (gsize) 16 * r->c_out * r->c_in;
      diffuse__winograd_weights (pool, r->out_conv_w, r->c_out, r->c_out, p);
      r->out_conv_u = p;
      p += (gsize) 16 * r->c_out * r->c_out;
    }
  for (gint i = 0; i < w->n_ops; i++)
    if (w->ops[i].kind == OP_UP)
      {
        ConvWeights *c = &w->conv[w->ops[i].index];

        diffuse__winograd_weights (pool, c->w, c->c_out, c->c_in, p);
        c->u = p;
        p += (gsize) 16 * c->c_out * c->c_in;
      }
  diffuse__pool_free (pool);
}

DiffuseUNetWeights *
diffuse__unet_weights_new (const DiffuseModel *model, guint *n_bound,
                           GError **error)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);
  DiffuseUNetWeights *w = g_new0 (DiffuseUNetWeights, 1);
  Binder bd = { model, 0, NULL };
  Builder b = { w, &bd, 0, 0, 0, 0 };
  gint mc = cfg->model_channels;
  gint ch, ds = 1, block = 0, n_chans = 0;
  gint *chans;
  gint updown_res = cfg->resblock_updown;

  w->config = *cfg;
  w->emb_dim = 4 * mc;
  ch = cfg->level_channels[0];
  chans = g_new (gint, 2 + (gsize) cfg->n_levels * (cfg->num_res_blocks + 1));

  w->time_w0 = BIND2 (&bd, w->emb_dim, mc, "time_embed.0.weight");
  w->time_b0 = BIND1 (&bd, w->emb_dim, "time_embed.0.bias");
  w->time_w2 = BIND2 (&bd, w->emb_dim, w->emb_dim, "time_embed.2.weight");
  w->time_b2 = BIND1 (&bd, w->emb_dim, "time_embed.2.bias");
  if (cfg->num_classes > 0)
    w->label_emb = BIND2 (&bd, cfg->num_classes, w->emb_dim, "label_emb.weight");

  /* input blocks */
  add_conv (&b, OP_CONV_IN, "input_blocks.0.0", 0, cfg->in_channels, ch);
  w->ops[w->n_ops - 1].push_skip = TRUE;
  chans[n_chans++] = ch;
  block = 1;
  for (gint level = 0; level < cfg->n_levels; level++)
    {
      gint c_out = cfg->level_channels[level];

      for (gint r = 0; r < cfg->num_res_blocks; r++, block++)
        {
          g_autofree gchar *p0 = g_strdup_printf ("input_blocks.%d.0", block);
          g_autofree gchar *p1 = g_strdup_printf ("input_blocks.%d.1", block);

          if (!bd.error)
            check_channels (p0, ch, 0, &bd.error);
          add_res (&b, p0, level, ch, c_out, 0);
          ch = c_out;
          if (has_attention (cfg, ds))
            add_attn (&b, p1, level, ch, FALSE);
          w->ops[w->n_ops - 1].push_skip = TRUE;
          chans[n_chans++] = ch;
        }
      if (level != cfg->n_levels - 1)
        {
          g_autofree gchar *p0 = g_strdup_printf ("input_blocks.%d.0", block);
          g_autofree gchar *pop = g_strdup_printf ("input_blocks.%d.0.op", block);

          if (updown_res)
            add_res (&b, p0, level, ch, ch, -1);
          else
            add_conv (&b, OP_DOWN, pop, level, ch, ch);
          w->ops[w->n_ops - 1].push_skip = TRUE;
          chans[n_chans++] = ch;
          block++;
          ds *= 2;
        }
    }

  /* middle block */
  if (!bd.error)
    check_channels ("middle_block.0", ch, 0, &bd.error);
  add_res (&b, "middle_block.0", cfg->n_levels - 1, ch, ch, 0);
  add_attn (&b, "middle_block.1", cfg->n_levels - 1, ch, FALSE);
  add_res (&b, "middle_block.2", cfg->n_levels - 1, ch, ch, 0);

  /* output blocks */
  block = 0;
  for (gint level = cfg->n_levels - 1; level >= 0; level--)
    for (gint i = 0; i <= cfg->num_res_blocks; i++, block++)
      {
        gint ich = chans[--n_chans];
        gint c_out = cfg->level_channels[level];
        gint sub = 1;
        g_autofree gchar *p0 = g_strdup_printf ("output_blocks.%d.0", block);

        if (!bd.error)
          check_channels (p0, ch + ich, 0, &bd.error);
        add_res (&b, p0, level, ch + ich, c_out, 0);
        w->ops[w->n_ops - 1].pop_skip = TRUE;
        ch = c_out;
        if (has_attention (cfg, ds))
          {
            g_autofree gchar *p = g_strdup_printf ("output_blocks.%d.%d", block, sub++);

            add_attn (&b, p, level, ch, TRUE);
          }
        if (level > 0 && i == cfg->num_res_blocks)
          {
            g_autofree gchar *p = g_strdup_printf ("output_blocks.%d.%d", block, sub);
            g_autofree gchar *pc = g_strdup_printf ("output_blocks.%d.%d.conv",
                                                    block, sub);

            if (updown_res)
              add_res (&b, p, level, ch, ch, +1);
            else
              add_conv (&b, OP_UP, pc, level, ch, ch);
            ds /= 2;
          }
      }
  g_free (chans);

  /* out */
  w->out_norm_w = BIND1 (&bd, ch, "out.0.weight");
  w->out_norm_b = BIND1 (&bd, ch, "out.0.bias");
  w->out_conv.c_in = ch;
  w->out_conv.c_out = cfg->out_channels;
  w->out_conv.w = BIND4 (&bd, cfg->out_channels, ch, 3, 3, "out.2.weight");
  w->out_conv.b = BIND1 (&bd, cfg->out_channels, "out.2.bias");

  for (gint i = 0; i < w->n_ops; i++)
    w->n_skips += w->ops[i].push_skip;

  if (bd.error)
    {
      g_propagate_error (error, bd.error);
      diffuse__unet_weights_free (w);
      return NULL;
    }
  if (n_bound)
    *n_bound = bd.n_bound;
  make_winograd (w);
  return w;
}

void
diffuse__unet_weights_free (DiffuseUNetWeights *weights)
{
  if (weights == NULL)
    return;
  g_free (weights->ops);
  g_free (weights->res);
  g_free (weights->attn);
  g_free (weights->conv);
  g_free (weights->wino);
  g_free (weights);
}

/* ------------------------------------------------------------------ */
/* Per-run state                                                       */

struct _DiffuseUNet
{
  const DiffuseUNetWeights *w;
  gint max_batch, height, width;
  gsize scratch_bytes;
  gint n_threads;           /* OpenBLAS's thread count when made */
  DiffusePool *pool;        /* n_threads threads for everything */
  float *arena;
  /* [C, B, H, W] buffers, each sized for the largest use */
  float *cur, *nxt;         /* the running activation h (room for cat (h, skip)) */
  float *a, *a2, *xs, *t;   /* normalised input, resampled copies, ResBlock middle */
  float *col;               /* im2col, or Winograd input tiles */
  float *wm;                /* Winograd products */
  float *qkv, *scores;      /* attention */
  float **skips;            /* [n_skips] input-block outputs */
  gint *skip_c, *skip_level;
  /* [B, ·] embedding buffers */
  float *temb, *emb_h, *emb, *emb_silu, *emb_out;
};

typedef struct
{
  gsize cur, a, a2, xs, t, col, wm, qkv, scores, skips;
} Sizes;

#define UPD(field, v) \
  G_STMT_START { gsize v_ = (v); if (v_ > s->field) s->field = v_; } G_STMT_END

/* Walk the ops as the forward pass does and record each buffer's largest
 * use (in floats) for batch B at H × W. */
static void
plan (const DiffuseUNetWeights *w, gint batch, gint height, gint width,
      gint n_threads, Sizes *s, gint *skip_c, gint *skip_level)
{
  gint ch = w->config.in_channels, n_skip = 0, depth = 0;
  gint *stack_c = g_new (gint, w->n_skips + 1);

  memset (s, 0, sizeof *s);
#define NAT(l) ((gsize) batch * (height >> (l)) * (width >> (l)))
  for (gint i = 0; i < w->n_ops; i++)
    {
      const Op *op = &w->ops[i];
      gint l = op->level;
      gsize n = NAT (l);

      if (op->pop_skip)
        ch += stack_c[--depth];
      UPD (cur, (gsize) ch * n);
      switch (op->kind)
        {
        case OP_CONV_IN:
        case OP_DOWN:
        case OP_UP:
          {
            const ConvWeights *c = &w->conv[op->index];
            gint lo = op->kind == OP_DOWN ? l + 1 : op->kind == OP_UP ? l - 1 : l;

            if (op->kind == OP_UP)
              UPD (a2, (gsize) c->c_in * NAT (lo));
            UPD (col, (gsize) c->c_in * 9 * NAT (lo));
            if (op->kind == OP_UP)
              {
                gsize tiles = diffuse__winograd_tiles (batch, height >> lo, width >> lo);

                UPD (col, 16 * tiles * c->c_in);
                UPD (wm, 16 * tiles * c->c_out);
              }
            UPD (cur, (gsize) c->c_out * NAT (lo));
            ch = c->c_out;
            break;
          }
        case OP_RES:
          {
            const ResBlockWeights *r = &w->res[op->index];
            gint lo = l - r->updown;
            gsize no = NAT (lo);

            UPD (a, (gsize) r->c_in * n);
            UPD (a, (gsize) r->c_out * no);
            if (r->updown)
              {
                UPD (a2, (gsize) r->c_in * no);
                UPD (xs, (gsize) r->c_in * no);
              }
            UPD (t, (gsize) r->c_out * no);
            UPD (col, (gsize) r->c_in * 9 * no);
            UPD (col, (gsize) r->c_out * 9 * no);
            {
              gsize tiles = diffuse__winograd_tiles (batch, height >> lo, width >> lo);

              UPD (col, 16 * tiles * MAX (r->c_in, r->c_out));
              UPD (wm, 16 * tiles * r->c_out);
            }
            UPD (cur, (gsize) r->c_out * no);
            ch = r->c_out;
            break;
          }
        case OP_ATTN:
          {
            const AttentionWeights *a = &w->attn[op->index];
            gsize tt = (gsize) (height >> l) * (width >> l);

            UPD (a, (gsize) a->channels * n);
            UPD (qkv, (gsize) 3 * a->channels * n);
            UPD (t, (gsize) a->channels * n);
            UPD (scores, diffuse__attention_scratch (tt, n_threads));
            break;
          }
        }
      if (op->push_skip)
        {
          gint lo = op->kind == OP_DOWN || (op->kind == OP_RES
                                            && w->res[op->index].updown < 0)
                    ? l + 1 : l;

          stack_c[depth++] = ch;
          skip_c[n_skip] = ch;
          skip_level[n_skip++] = lo;
          s->skips += (gsize) ch * NAT (lo) + 16;
        }
    }
  /* out: GroupNorm + SiLU into a, conv3x3 into t */
  UPD (a, (gsize) ch * NAT (0));
  UPD (col, (gsize) ch * 9 * NAT (0));
  UPD (t, (gsize) w->out_conv.c_out * NAT (0));
#undef NAT
  g_free (stack_c);
}

DiffuseUNet *
diffuse_unet_new (const DiffuseModel *model, gint max_batch, gint height,
                  gint width, GError **error)
{
  const DiffuseUNetWeights *w;
  DiffuseUNet *u;
  Sizes s;
  gint unit;
  gsize total, emb_floats;
  gint max_emb;
  float *p;

  g_return_val_if_fail (model != NULL, NULL);
  w = diffuse__model_get_weights (model);
  g_return_val_if_fail (w != NULL, NULL);

  unit = 1 << (w->config.n_levels - 1);
  if (max_batch < 1 || max_batch > 4096)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "batch size %d is out of range (1..4096)", max_batch);
      return NULL;
    }
  if (height < unit || width < unit || height % unit || width % unit
      || height > 16384 || width > 16384)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "image size %dx%d is not a positive multiple of %d (up to 16384)",
                   width, height, unit);
      return NULL;
    }

  u = g_new0 (DiffuseUNet, 1);
  u->w = w;
  u->max_batch = max_batch;
  u->height = height;
  u->width = width;
  u->skips = g_new0 (float *, w->n_skips + 1);
  u->skip_c = g_new0 (gint, w->n_skips + 1);
  u->skip_level = g_new0 (gint, w->n_skips + 1);
  /* the thread count OpenBLAS is set to now (DiffuseSampleParams.n_threads
   * sets it before a run) */
  u->n_threads = CLAMP (openblas_get_num_threads (), 1, 64);
  plan (w, max_batch, height, width, u->n_threads, &s, u->skip_c, u->skip_level);

  max_emb = 0;
  for (gint i = 0; i < w->n_res; i++)
    max_emb = MAX (max_emb, w->res[i].n_emb);
  emb_floats = (gsize) max_batch * (w->config.model_channels + 3 * w->emb_dim
                                    + max_emb);
  /* each buffer rounded up to 16 floats (64 bytes) */
#define R16(x) (((x) + 15) / 16 * 16)
  total = 2 * R16 (s.cur) + R16 (s.a) + R16 (s.a2) + R16 (s.xs) + R16 (s.t)
          + R16 (s.col) + R16 (s.wm) + R16 (s.qkv) + R16 (s.scores) + R16 (s.skips)
          + 5 * 16 + R16 (emb_floats) + 16;
  if (total > G_MAXSIZE / sizeof (float))
    total = G_MAXSIZE / sizeof (float);
  u->scratch_bytes = total * sizeof (float);
  u->arena = g_try_malloc (u->scratch_bytes);
  if (u->arena == NULL)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                   "cannot allocate %" G_GSIZE_FORMAT " MiB of UNet scratch for "
                   "batch %d at %dx%d", u->scratch_bytes >> 20, max_batch,
                   width, height);
      diffuse_unet_free (u);
      return NULL;
    }
  /* align to 64 bytes */
  p = (float *) (((guintptr) u->arena + 63) & ~(guintptr) 63);
#define TAKE(dst, n) G_STMT_START { dst = p; p += R16 (n); } G_STMT_END
  TAKE (u->cur, s.cur);
  TAKE (u->nxt, s.cur);
  TAKE (u->a, s.a);
  TAKE (u->a2, s.a2);
  TAKE (u->xs, s.xs);
  TAKE (u->t, s.t);
  TAKE (u->col, s.col);
  TAKE (u->wm, s.wm);
  TAKE (u->qkv, s.qkv);
  TAKE (u->scores, s.scores);
  for (gint i = 0; i < w->n_skips; i++)
    {
      gsize n = (gsize) u->skip_c[i] * max_batch * (height >> u->skip_level[i])
                * (width >> u->skip_level[i]);

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
  g_free (unet->arena);
  g_free (unet->skips);
  g_free (unet->skip_c);
  g_free (unet->skip_level);
  g_free (unet);
}

gsize
diffuse_unet_get_scratch_bytes (const DiffuseUNet *unet)
{
  g_return_val_if_fail (unet != NULL, 0);
  return unet->scratch_bytes;
}

/* ------------------------------------------------------------------ */
/* Forward                                                             */

#define SWAP(a, b) G_STMT_START { float *tmp_ = a; a = b; b = tmp_; } G_STMT_END

/* 3×3 stride-1 convolution: Winograd when the weights have that form.
 * Measured on the benchmark machine (2 Zen 4 cores, pass threads calling
 * OpenBLAS single-threaded), it is 1.4–2.1× faster than im2col + GEMM for
 * every shape tried, from 32 channels at 4×4 to 768 channels at 8×8 and
 * 192 channels at 64×64. */
static void
conv3x3 (DiffuseUNet *u, const float *x, gint c_in, gint batch, gint h, gint w,
         const float *wt, const float *wu, const float *bias,
         const float *bias2, gsize b2_stride, gint c_out, gboolean accumulate,
         float *out)
{
  if (wu)
    diffuse__conv3x3_winograd (u->pool, x, c_in, batch, h, w, wu, bias, bias2,
                               b2_stride, c_out, accumulate, u->col, u->wm, out);
  else
    diffuse__conv2d (u->pool, x, c_in, batch, h, w, wt, bias, bias2, b2_stride,
                     c_out, 3, 1, accumulate, u->col, out);
}

/* ResBlock._forward: x [c_in, B, H, W] at level l -> y [c_out, B, H', W'].
 *   h = conv (SiLU (GN (x)))            (resampled between SiLU and conv
 *                                        when up/down, and x too)
 *   scale-shift: h = SiLU (GN (h)·(1 + s) + b), (s, b) = emb_layers (emb)
 *   otherwise:   h = SiLU (GN (h + emb_layers (emb)))
 *   y = skip (x) + conv (h) */
static void
res_block (DiffuseUNet *u, const ResBlockWeights *r, gint batch, gint h,
           gint w, const float *x, float *y)
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
      conv3x3 (u, src, r->c_in, batch, ho, wo, r->in_conv_w, r->in_conv_u,
               r->in_conv_b, NULL, 0, r->c_out, FALSE, u->t);
      diffuse__group_norm (u->pool, u->t, r->c_out, batch, hw, GROUPS, GN_EPS,
                           r->out_norm_w, r->out_norm_b, u->emb_out,
                           u->emb_out + r->c_out, r->n_emb, TRUE, u->a);
    }
  else
    {
      conv3x3 (u, src, r->c_in, batch, ho, wo, r->in_conv_w, r->in_conv_u,
               r->in_conv_b, u->emb_out, r->n_emb, r->c_out, FALSE, u->t);
      diffuse__group_norm (u->pool, u->t, r->c_out, batch, hw, GROUPS, GN_EPS,
                           r->out_norm_w, r->out_norm_b, NULL, NULL, 0, TRUE,
                           u->a);
    }

  if (r->skip_w)
    diffuse__conv2d (u->pool, xskip, r->c_in, batch, ho, wo, r->skip_w,
                     r->skip_b, NULL, 0, r->c_out, 1, 1, FALSE, NULL, y);
  else
    memcpy (y, xskip, sizeof (float) * r->c_out * batch * hw);
  conv3x3 (u, u->a, r->c_out, batch, ho, wo, r->out_conv_w, r->out_conv_u,
           r->out_conv_b, NULL, 0, r->c_out, TRUE, y);
}

/* AttentionBlock._forward, in place on x [C, B, H, W]:
 *   x += proj_out (attention (qkv (GN (x)))) */
static void
attention_block (DiffuseUNet *u, const AttentionWeights *a, gint batch,
                 gint h, gint w, float *x)
{
  gsize hw = (gsize) h * w;

  diffuse__group_norm (u->pool, x, a->channels, batch, hw, GROUPS, GN_EPS,
                       a->norm_w, a->norm_b, NULL, NULL, 0, FALSE, u->a);
  diffuse__conv2d (u->pool, u->a, a->channels, batch, h, w, a->qkv_w,
                   a->qkv_b, NULL, 0, 3 * a->channels, 1, 1, FALSE, NULL,
                   u->qkv);
  diffuse__attention (u->pool, u->qkv, a->channels, batch, hw, a->heads,
                      !u->w->config.use_new_attention_order, u->scores, u->t);
  diffuse__conv2d (u->pool, u->t, a->channels, batch, h, w, a->proj_w,
                   a->proj_b, NULL, 0, a->channels, 1, 1, TRUE, NULL, x);
}

gboolean
diffuse_unet_forward (DiffuseUNet *unet, gint batch, const float *x,
                      const float *timesteps, const gint *labels, float *out,
                      GError **error)
{
  const DiffuseUNetWeights *w;
  const DiffuseModelConfig *cfg;
  gint height, width, ch, depth = 0, n_skip = 0;
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
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
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
   * pool per layer), calling OpenBLAS single-threaded from each: OpenBLAS
   * is set to one thread meanwhile and set back after.  Its own threads
   * would otherwise spin between GEMMs and compete with ours. */
  diffuse__pool_set_active (unet->pool, unet->n_threads);
  if (unet->n_threads > 1)
    openblas_set_num_threads (1);

  /* emb = time_embed (timestep_embedding (t)) + label_emb (y); the blocks
   * only ever use SiLU (emb) (emb_layers starts with SiLU) */
  diffuse__timestep_embedding (timesteps, batch, cfg->model_channels, unet->temb);
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
  ch = cfg->in_channels;

  for (gint i = 0; i < w->n_ops; i++)
    {
      const Op *op = &w->ops[i];
      gint h = height >> op->level, wd = width >> op->level;
      gsize n = (gsize) batch * h * wd;
      gint lo = op->level;

      if (op->pop_skip)
        {
          /* cat ([h, skip], dim=1) is rows ch.. of the same [C, N] matrix */
          gint sc = unet->skip_c[--depth];

          memcpy (cur + (gsize) ch * n, unet->skips[depth], sizeof (float) * sc * n);
          ch += sc;
        }
      switch (op->kind)
        {
        case OP_CONV_IN:
          {
            const ConvWeights *c = &w->conv[op->index];

            diffuse__conv2d (unet->pool, cur, c->c_in, batch, h, wd, c->w, c->b, NULL, 0,
                             c->c_out, 3, 1, FALSE, unet->col, nxt);
            ch = c->c_out;
            SWAP (cur, nxt);
            break;
          }
        case OP_DOWN:
          {
            const ConvWeights *c = &w->conv[op->index];

            diffuse__conv2d (unet->pool, cur, c->c_in, batch, h, wd, c->w, c->b, NULL, 0,
                             c->c_out, 3, 2, FALSE, unet->col, nxt);
            ch = c->c_out;
            lo = op->level + 1;
            SWAP (cur, nxt);
            break;
          }
        case OP_UP:
          {
            const ConvWeights *c = &w->conv[op->index];

            diffuse__upsample2x (unet->pool, cur, c->c_in, batch, h, wd, unet->a2);
            conv3x3 (unet, unet->a2, c->c_in, batch, 2 * h, 2 * wd, c->w, c->u,
                     c->b, NULL, 0, c->c_out, FALSE, nxt);
            ch = c->c_out;
            lo = op->level - 1;
            SWAP (cur, nxt);
            break;
          }
        case OP_RES:
          {
            const ResBlockWeights *r = &w->res[op->index];

            res_block (unet, r, batch, h, wd, cur, nxt);
            ch = r->c_out;
            lo = op->level - r->updown;
            SWAP (cur, nxt);
            break;
          }
        case OP_ATTN:
          attention_block (unet, &w->attn[op->index], batch, h, wd, cur);
          break;
        }
      if (op->push_skip)
        {
          gsize no = (gsize) batch * (height >> lo) * (width >> lo);

          memcpy (unet->skips[n_skip], cur, sizeof (float) * ch * no);
          depth = ++n_skip;
        }
    }

  /* out = conv3x3 (SiLU (GN (h))) */
  diffuse__group_norm (unet->pool, cur, ch, batch, (gsize) height * width, GROUPS, GN_EPS,
                       w->out_norm_w, w->out_norm_b, NULL, NULL, 0, TRUE, unet->a);
  diffuse__conv2d (unet->pool, unet->a, ch, batch, height, width, w->out_conv.w,
                   w->out_conv.b, NULL, 0, w->out_conv.c_out, 3, 1, FALSE,
                   unet->col, unet->t);
  diffuse__cbhw_to_nchw (unet->pool, unet->t, batch, w->out_conv.c_out,
                         (gsize) height * width, out);
  if (unet->n_threads > 1)
    openblas_set_num_threads (unet->n_threads);
  return TRUE;
}

guint64
diffuse__unet_get_flops (const DiffuseUNet *unet, gint batch)
{
  const DiffuseUNetWeights *w = unet->w;
  const DiffuseModelConfig *cfg = &w->config;
  gint ch = cfg->in_channels, depth = 0;
  gint *stack_c = g_new (gint, w->n_skips + 1);
  guint64 f = 0;
  gint E = w->emb_dim;

#define PIX(l) ((guint64) batch * (unet->height >> (l)) * (unet->width >> (l)))
  f += 2 * (guint64) batch * ((guint64) cfg->model_channels * E + (guint64) E * E);
  for (gint i = 0; i < w->n_ops; i++)
    {
      const Op *op = &w->ops[i];
      gint l = op->level;

      if (op->pop_skip)
        ch += stack_c[--depth];
      switch (op->kind)
        {
        case OP_CONV_IN:
        case OP_DOWN:
        case OP_UP:
          {
            const ConvWeights *c = &w->conv[op->index];
            gint lo = op->kind == OP_DOWN ? l + 1 : op->kind == OP_UP ? l - 1 : l;

            f += 2 * (guint64) c->c_out * c->c_in * 9 * PIX (lo);
            ch = c->c_out;
            break;
          }
        case OP_RES:
          {
            const ResBlockWeights *r = &w->res[op->index];
            guint64 p = PIX (l - r->updown);

            f += 2 * (guint64) r->c_out * r->c_in * 9 * p;
            f += 2 * (guint64) r->c_out * r->c_out * 9 * p;
            if (r->skip_w)
              f += 2 * (guint64) r->c_out * r->c_in * p;
            f += 2 * (guint64) batch * r->n_emb * E;
            ch = r->c_out;
            break;
          }
        case OP_ATTN:
          {
            const AttentionWeights *a = &w->attn[op->index];
            guint64 t = (guint64) (unet->height >> l) * (unet->width >> l);

            f += 2 * (guint64) 4 * a->channels * a->channels * PIX (l);
            f += 2 * (guint64) 2 * batch * a->channels * t * t;
            break;
          }
        }
      if (op->push_skip)
        stack_c[depth++] = ch;
    }
  f += 2 * (guint64) w->out_conv.c_out * w->out_conv.c_in * 9 * PIX (0);
#undef PIX
  g_free (stack_c);
  return f;
}
