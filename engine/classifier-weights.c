/* The noisy-image classifier's (guided-diffusion's EncoderUNetModel)
 * layer list, built from the model's config, and its parameters bound by
 * state_dict name to the tensors of the parsed safetensors file, every
 * shape checked; the Winograd forms of its convolutions (and of their
 * transposed kernels, for the backward pass) are made here too.  model.c
 * calls this once at load; classifier.c runs the result.  The structure
 * is described in classifier.c. */
#include <stdarg.h>
#include <string.h>

#include "backward.h"
#include "classifier-weights.h"
#include "tensor-binder.h"

#define B1 DIFFUSE_BIND1
#define B2 DIFFUSE_BIND2
#define B3 DIFFUSE_BIND3
#define B4 DIFFUSE_BIND4

static Op *
add_op (DiffuseClassifierWeights *w, gint *cap, OpKind kind, gint level,
        gint c_in, gint c_out)
{
  Op *op;

  if (w->n_ops == *cap)
    {
      *cap = *cap ? 2 * *cap : 32;
      w->ops = g_renew (Op, w->ops, *cap);
    }
  op = &w->ops[w->n_ops++];
  *op = (Op){ kind, level, c_in, c_out, 0 };
  return op;
}

static void
add_res (DiffuseClassifierWeights *w, DiffuseBinder *bd, gint *cap_ops,
         const char *prefix, gint level, gint c_in, gint c_out, gboolean down)
{
  Op *op = add_op (w, cap_ops, OP_RES, level, c_in, c_out);
  Res *r;

  w->res = g_renew (Res, w->res, w->n_res + 1);
  op->index = w->n_res;
  r = &w->res[w->n_res++];
  memset (r, 0, sizeof *r);
  r->c_in = c_in;
  r->c_out = c_out;
  r->down = down;
  r->n_emb = w->config.use_scale_shift_norm ? 2 * c_out : c_out;
  r->in_norm_w = B1 (bd, c_in, "%s.in_layers.0.weight", prefix);
  r->in_norm_b = B1 (bd, c_in, "%s.in_layers.0.bias", prefix);
  r->in_conv_w = B4 (bd, c_out, c_in, 3, 3, "%s.in_layers.2.weight", prefix);
  r->in_conv_b = B1 (bd, c_out, "%s.in_layers.2.bias", prefix);
  r->emb_w = B2 (bd, r->n_emb, w->emb_dim, "%s.emb_layers.1.weight", prefix);
  r->emb_b = B1 (bd, r->n_emb, "%s.emb_layers.1.bias", prefix);
  r->out_norm_w = B1 (bd, c_out, "%s.out_layers.0.weight", prefix);
  r->out_norm_b = B1 (bd, c_out, "%s.out_layers.0.bias", prefix);
  r->out_conv_w = B4 (bd, c_out, c_out, 3, 3, "%s.out_layers.3.weight", prefix);
  r->out_conv_b = B1 (bd, c_out, "%s.out_layers.3.bias", prefix);
  if (c_in != c_out)
    {
      r->skip_w =
          B4 (bd, c_out, c_in, 1, 1, "%s.skip_connection.weight", prefix);
      r->skip_b = B1 (bd, c_out, "%s.skip_connection.bias", prefix);
    }
}

static void
add_attn (DiffuseClassifierWeights *w, DiffuseBinder *bd, gint *cap_ops,
          const char *prefix, gint level, gint ch)
{
  const DiffuseModelConfig *cfg = &w->config;
  Op *op = add_op (w, cap_ops, OP_ATTN, level, ch, ch);
  Attn *a;

  w->attn = g_renew (Attn, w->attn, w->n_attn + 1);
  op->index = w->n_attn;
  a = &w->attn[w->n_attn++];
  a->channels = ch;
  a->heads =
      cfg->num_head_channels > 0 ? ch / cfg->num_head_channels : cfg->num_heads;
  a->norm_w = B1 (bd, ch, "%s.norm.weight", prefix);
  a->norm_b = B1 (bd, ch, "%s.norm.bias", prefix);
  a->qkv_w = B3 (bd, 3 * ch, ch, 1, "%s.qkv.weight", prefix);
  a->qkv_b = B1 (bd, 3 * ch, "%s.qkv.bias", prefix);
  a->proj_w = B3 (bd, ch, ch, 1, "%s.proj_out.weight", prefix);
  a->proj_b = B1 (bd, ch, "%s.proj_out.bias", prefix);
}

static void
add_conv (DiffuseClassifierWeights *w, DiffuseBinder *bd, gint *cap_ops,
          const char *name, gint level, gint c_in, gint c_out, gint stride)
{
  Op *op = add_op (w, cap_ops, OP_CONV, level, c_in, c_out);
  Conv *c;

  w->conv = g_renew (Conv, w->conv, w->n_conv + 1);
  op->index = w->n_conv;
  c = &w->conv[w->n_conv++];
  c->c_in = c_in;
  c->c_out = c_out;
  c->stride = stride;
  c->w = B4 (bd, c_out, c_in, 3, 3, "%s.weight", name);
  c->b = B1 (bd, c_out, "%s.bias", name);
}

static gboolean
has_attention (const DiffuseModelConfig *cfg, gint ds)
{
  for (gint i = 0; i < cfg->n_attention_resolutions; i++)
    if (cfg->image_size / cfg->attention_resolutions[i] == ds)
      return TRUE;
  return FALSE;
}

/* Winograd forms of every ResBlock conv and of its transposed kernel. */
static gboolean
make_winograd (DiffuseClassifierWeights *w)
{
  DiffusePool *pool = diffuse__pool_new (diffuse__threads_for_run (0));
  gsize total = 0, big = 0;
  float *p, *tmp;

  for (gint i = 0; i < w->n_res; i++)
    {
      const Res *r = &w->res[i];

      total += (gsize) 2 * 16 * r->c_out * (r->c_in + r->c_out);
      big = MAX (big, (gsize) 9 * r->c_out * MAX (r->c_in, r->c_out));
    }
  w->wino = g_try_malloc (MAX (total, 1) * sizeof (float));
  tmp = g_try_malloc (MAX (big, 1) * sizeof (float));
  if (w->wino == NULL || tmp == NULL)
    {
      g_free (tmp);
      diffuse__pool_free (pool);
      return FALSE;
    }
  p = w->wino;
  for (gint i = 0; i < w->n_res; i++)
    {
      Res *r = &w->res[i];

      diffuse__winograd_weights (pool, r->in_conv_w, r->c_out, r->c_in, p);
      r->in_u = p;
      p += (gsize) 16 * r->c_out * r->c_in;
      diffuse__winograd_weights (pool, r->out_conv_w, r->c_out, r->c_out, p);
      r->out_u = p;
      p += (gsize) 16 * r->c_out * r->c_out;
      diffuse__conv3x3_transpose_weights (r->in_conv_w, r->c_out, r->c_in, tmp);
      diffuse__winograd_weights (pool, tmp, r->c_in, r->c_out, p);
      r->in_tu = p;
      p += (gsize) 16 * r->c_out * r->c_in;
      diffuse__conv3x3_transpose_weights (r->out_conv_w, r->c_out, r->c_out,
                                          tmp);
      diffuse__winograd_weights (pool, tmp, r->c_out, r->c_out, p);
      r->out_tu = p;
      p += (gsize) 16 * r->c_out * r->c_out;
    }
  g_free (tmp);
  diffuse__pool_free (pool);
  return TRUE;
}

void
diffuse__classifier_weights_free (DiffuseClassifierWeights *w)
{
  if (w == NULL)
    return;
  g_free (w->ops);
  g_free (w->res);
  g_free (w->attn);
  g_free (w->conv);
  g_free (w->wino);
  g_free (w);
}

DiffuseClassifierWeights *
diffuse__classifier_weights_new (const DiffuseSafetensors *st,
                                 const DiffuseModelConfig *cfg,
                                 const char *name, GError **error)
{
  guint n_tensors = diffuse__safetensors_get_n_tensors (st);
  g_autofree gboolean *used = g_new0 (gboolean, MAX (n_tensors, 1));
  DiffuseClassifierWeights *w = g_new0 (DiffuseClassifierWeights, 1);
  DiffuseBinder bd = { st, name, used, 0, NULL };
  gint mc = cfg->model_channels, cap = 0, block = 1, ds = 1;
  gint ch = cfg->level_channels[0], level, K = cfg->num_classes;

  w->config = *cfg;
  w->emb_dim = 4 * mc;
  w->time_w0 = B2 (&bd, w->emb_dim, mc, "time_embed.0.weight");
  w->time_b0 = B1 (&bd, w->emb_dim, "time_embed.0.bias");
  w->time_w2 = B2 (&bd, w->emb_dim, w->emb_dim, "time_embed.2.weight");
  w->time_b2 = B1 (&bd, w->emb_dim, "time_embed.2.bias");

  add_conv (w, &bd, &cap, "input_blocks.0.0", 0, cfg->in_channels, ch, 1);
  for (level = 0; level < cfg->n_levels; level++)
    {
      gint c_out = cfg->level_channels[level];

      for (gint r = 0; r < cfg->num_res_blocks; r++, block++)
        {
          g_autofree gchar *p0 = g_strdup_printf ("input_blocks.%d.0", block);
          g_autofree gchar *p1 = g_strdup_printf ("input_blocks.%d.1", block);

          add_res (w, &bd, &cap, p0, level, ch, c_out, FALSE);
          ch = c_out;
          if (has_attention (cfg, ds))
            add_attn (w, &bd, &cap, p1, level, ch);
        }
      if (level != cfg->n_levels - 1)
        {
          g_autofree gchar *p0 = g_strdup_printf ("input_blocks.%d.0", block);

          if (cfg->resblock_updown)
            add_res (w, &bd, &cap, p0, level, ch, ch, TRUE);
          else
            {
              g_autofree gchar *op = g_strdup_printf ("%s.op", p0);

              add_conv (w, &bd, &cap, op, level, ch, ch, 2);
            }
          block++;
          ds *= 2;
        }
    }
  level = cfg->n_levels - 1;
  add_res (w, &bd, &cap, "middle_block.0", level, ch, ch, FALSE);
  add_attn (w, &bd, &cap, "middle_block.1", level, ch);
  add_res (w, &bd, &cap, "middle_block.2", level, ch, ch, FALSE);
  w->ch = ch;
  w->head_level = level;

  w->out_norm_w = B1 (&bd, ch, "out.0.weight");
  w->out_norm_b = B1 (&bd, ch, "out.0.bias");
  if (cfg->pool == DIFFUSE_POOL_ADAPTIVE)
    {
      w->fc_w = B4 (&bd, K, ch, 1, 1, "out.3.weight");
      w->fc_b = B1 (&bd, K, "out.3.bias");
    }
  else
    {
      gint side = cfg->image_size >> level;

      w->pos =
          B2 (&bd, ch, (gint64) side * side + 1, "out.2.positional_embedding");
      w->pqkv_w = B3 (&bd, 3 * ch, ch, 1, "out.2.qkv_proj.weight");
      w->pqkv_b = B1 (&bd, 3 * ch, "out.2.qkv_proj.bias");
      w->pc_w = B3 (&bd, K, ch, 1, "out.2.c_proj.weight");
      w->pc_b = B1 (&bd, K, "out.2.c_proj.bias");
      w->pool_heads = ch / cfg->num_head_channels;
    }

  /* a file with tensors this architecture does not use is most likely
   * another architecture (or a UNet given as classifier) */
  if (bd.error == NULL)
    diffuse__binder_check_all_used (&bd, "classifier", &bd.error);
  if (bd.error == NULL && !make_winograd (w))
    g_set_error (&bd.error, DIFFUSE_ERROR, DIFFUSE_ERROR_NO_MEMORY,
                 "cannot allocate the classifier's Winograd weights");
  if (bd.error)
    {
      g_propagate_error (error, bd.error);
      diffuse__classifier_weights_free (w);
      return NULL;
    }
  return w;
}
