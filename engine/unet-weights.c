/* The ADM UNet's layer list, built from the model's config in execution
 * order, and its parameters bound by state_dict name to the tensors of
 * the parsed safetensors file (llm.c style), every shape checked.  The
 * weights stay where the file's mapping has them (nothing is copied or
 * transformed at load: unet.c makes the Winograd forms of a convolution
 * just before running it).  model.c calls this once at load; unet.c runs
 * the result.  The structure, as
 * guided-diffusion's UNetModel builds it, is described in unet.c. */
#include <stdarg.h>
#include <string.h>

#include "layers.h"
#include "tensor-binder.h"
#include "unet-weights.h"

#define GROUPS 32 /* GroupNorm32 */

#define BIND1 DIFFUSE_BIND1
#define BIND2 DIFFUSE_BIND2
#define BIND3 DIFFUSE_BIND3
#define BIND4 DIFFUSE_BIND4

static void
bind_res (DiffuseBinder *bd, ResBlockWeights *r, const char *prefix, gint c_in,
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
  r->out_conv_w =
      BIND4 (bd, c_out, c_out, 3, 3, "%s.out_layers.3.weight", prefix);
  r->out_conv_b = BIND1 (bd, c_out, "%s.out_layers.3.bias", prefix);
  if (c_in != c_out)
    {
      r->skip_w =
          BIND4 (bd, c_out, c_in, 1, 1, "%s.skip_connection.weight", prefix);
      r->skip_b = BIND1 (bd, c_out, "%s.skip_connection.bias", prefix);
    }
}

static void
bind_attn (DiffuseBinder *bd, AttentionWeights *a, const char *prefix,
           gint channels, gint heads)
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
bind_conv (DiffuseBinder *bd, ConvWeights *c, const char *prefix, gint c_in,
           gint c_out)
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
    if (cfg->attention_resolutions[i] > 0 &&
        cfg->image_size / cfg->attention_resolutions[i] == ds)
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
      g_set_error (
          error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL,
          "%s has %d channels, not a multiple of the %d GroupNorm groups", what,
          channels, GROUPS);
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
  DiffuseBinder *bd;
  gint cap_ops, cap_res, cap_attn, cap_conv;
} Builder;

static Op *
add_op (Builder *b, OpKind kind, gint level, gint level_out, gint c_in,
        gint c_out)
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
  op->level_out = level_out;
  op->c_in = c_in;
  op->c_out = c_out;
  return op;
}

static void
add_res (Builder *b, const char *prefix, gint level, gint c_in, gint c_out,
         gint updown)
{
  DiffuseUNetWeights *w = b->w;
  Op *op = add_op (b, OP_RES, level, level - updown, c_in, c_out);

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
  Op *op = add_op (b, OP_ATTN, level, level, channels, channels);
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
  Op *op = add_op (b, kind, level,
                   kind == OP_DOWN ? level + 1
                   : kind == OP_UP ? level - 1
                                   : level,
                   c_in, c_out);

  if (w->n_conv == b->cap_conv)
    {
      b->cap_conv = b->cap_conv ? 2 * b->cap_conv : 8;
      w->conv = g_renew (ConvWeights, w->conv, b->cap_conv);
    }
  op->index = w->n_conv;
  bind_conv (b->bd, &w->conv[w->n_conv++], prefix, c_in, c_out);
}

/* The last layer added ends an input block: its output is kept as the
 * next skip (room for every skip is made beforehand). */
static void
push_skip (Builder *b)
{
  DiffuseUNetWeights *w = b->w;
  Op *op = &w->ops[w->n_ops - 1];

  op->push_skip = TRUE;
  op->skip = w->n_skips;
  w->skip_c[w->n_skips] = op->c_out;
  w->skip_level[w->n_skips++] = op->level_out;
}

DiffuseUNetWeights *
diffuse__unet_weights_new (const DiffuseSafetensors *st,
                           const DiffuseModelConfig *cfg, const char *name,
                           GError **error)
{
  guint n_tensors = diffuse__safetensors_get_n_tensors (st);
  g_autofree gboolean *used = g_new0 (gboolean, MAX (n_tensors, 1));
  DiffuseUNetWeights *w = g_new0 (DiffuseUNetWeights, 1);
  DiffuseBinder bd = { st, name, used, 0, NULL };
  Builder b = { w, &bd, 0, 0, 0, 0 };
  gint mc = cfg->model_channels;
  gint ch, ds = 1, block = 0, depth;
  gsize max_skips = 2 + (gsize) cfg->n_levels * (cfg->num_res_blocks + 1);
  gint updown_res = cfg->resblock_updown;

  w->config = *cfg;
  w->st = st;
  w->emb_dim = 4 * mc;
  ch = cfg->level_channels[0];
  w->skip_c = g_new (gint, max_skips);
  w->skip_level = g_new (gint, max_skips);

  w->time_w0 = BIND2 (&bd, w->emb_dim, mc, "time_embed.0.weight");
  w->time_b0 = BIND1 (&bd, w->emb_dim, "time_embed.0.bias");
  w->time_w2 = BIND2 (&bd, w->emb_dim, w->emb_dim, "time_embed.2.weight");
  w->time_b2 = BIND1 (&bd, w->emb_dim, "time_embed.2.bias");
  if (cfg->num_classes > 0)
    w->label_emb =
        BIND2 (&bd, cfg->num_classes, w->emb_dim, "label_emb.weight");

  /* input blocks */
  add_conv (&b, OP_CONV_IN, "input_blocks.0.0", 0, cfg->in_channels, ch);
  push_skip (&b);
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
          push_skip (&b);
        }
      if (level != cfg->n_levels - 1)
        {
          g_autofree gchar *p0 = g_strdup_printf ("input_blocks.%d.0", block);
          g_autofree gchar *pop =
              g_strdup_printf ("input_blocks.%d.0.op", block);

          if (updown_res)
            add_res (&b, p0, level, ch, ch, -1);
          else
            add_conv (&b, OP_DOWN, pop, level, ch, ch);
          push_skip (&b);
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

  /* output blocks: each first layer takes the last skip kept */
  depth = w->n_skips;
  block = 0;
  for (gint level = cfg->n_levels - 1; level >= 0; level--)
    for (gint i = 0; i <= cfg->num_res_blocks; i++, block++)
      {
        gint skip = --depth;
        gint ich = w->skip_c[skip];
        gint c_out = cfg->level_channels[level];
        gint sub = 1;
        g_autofree gchar *p0 = g_strdup_printf ("output_blocks.%d.0", block);

        if (!bd.error)
          check_channels (p0, ch + ich, 0, &bd.error);
        add_res (&b, p0, level, ch + ich, c_out, 0);
        w->ops[w->n_ops - 1].pop_skip = TRUE;
        w->ops[w->n_ops - 1].skip = skip;
        ch = c_out;
        if (has_attention (cfg, ds))
          {
            g_autofree gchar *p =
                g_strdup_printf ("output_blocks.%d.%d", block, sub++);

            add_attn (&b, p, level, ch, TRUE);
          }
        if (level > 0 && i == cfg->num_res_blocks)
          {
            g_autofree gchar *p =
                g_strdup_printf ("output_blocks.%d.%d", block, sub);
            g_autofree gchar *pc =
                g_strdup_printf ("output_blocks.%d.%d.conv", block, sub);

            if (updown_res)
              add_res (&b, p, level, ch, ch, +1);
            else
              add_conv (&b, OP_UP, pc, level, ch, ch);
            ds /= 2;
          }
      }

  /* out */
  w->out_norm_w = BIND1 (&bd, ch, "out.0.weight");
  w->out_norm_b = BIND1 (&bd, ch, "out.0.bias");
  w->out_conv.c_in = ch;
  w->out_conv.c_out = cfg->out_channels;
  w->out_conv.w = BIND4 (&bd, cfg->out_channels, ch, 3, 3, "out.2.weight");
  w->out_conv.b = BIND1 (&bd, cfg->out_channels, "out.2.bias");

  if (bd.error)
    {
      g_propagate_error (error, bd.error);
      diffuse__unet_weights_free (w);
      return NULL;
    }
  if (!diffuse__binder_check_all_used (&bd, "UNet", error))
    {
      diffuse__unet_weights_free (w);
      return NULL;
    }
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
  g_free (weights->skip_c);
  g_free (weights->skip_level);
  g_free (weights);
}
