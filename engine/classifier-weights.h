/* The classifier's layer list and parameters (classifier-weights.c), as
 * its forward and backward passes (classifier.c) read them.  Not
 * installed. */
#ifndef DIFFUSE_CLASSIFIER_WEIGHTS_H
#define DIFFUSE_CLASSIFIER_WEIGHTS_H

#include "diffuse-private.h"

G_BEGIN_DECLS

typedef struct
{
  gint c_in, c_out;
  gboolean down;
  gint n_emb;
  const float *in_norm_w, *in_norm_b, *in_conv_w, *in_conv_b;
  const float *emb_w, *emb_b;
  const float *out_norm_w, *out_norm_b, *out_conv_w, *out_conv_b;
  const float *skip_w, *skip_b; /* NULL when c_in == c_out */
  float *in_u, *out_u;          /* Winograd forms (forward) */
  float *in_tu, *out_tu;        /* of the transposed kernels (backward) */
} Res;

typedef struct
{
  gint channels, heads;
  const float *norm_w, *norm_b, *qkv_w, *qkv_b, *proj_w, *proj_b;
} Attn;

typedef struct
{
  gint c_in, c_out, stride;
  const float *w, *b;
} Conv;

typedef enum
{
  OP_CONV,
  OP_RES,
  OP_ATTN
} OpKind;

typedef struct
{
  OpKind kind;
  gint level; /* input resolution H >> level */
  gint c_in, c_out;
  gint index; /* into res[], attn[], conv[] */
} Op;

struct _DiffuseClassifierWeights
{
  DiffuseModelConfig config;
  gint emb_dim;
  const float *time_w0, *time_b0, *time_w2, *time_b2;
  const float *out_norm_w, *out_norm_b;
  gint ch; /* channels into the head */
  gint head_level;
  /* adaptive */
  const float *fc_w, *fc_b; /* [K, C], [K] */
  /* attention pool */
  const float *pos;             /* [C, T + 1] */
  const float *pqkv_w, *pqkv_b; /* [3C, C], [3C] */
  const float *pc_w, *pc_b;     /* [K, C], [K] */
  gint pool_heads;
  Op *ops;
  gint n_ops;
  Res *res;
  gint n_res;
  Attn *attn;
  gint n_attn;
  Conv *conv;
  gint n_conv;
  float *wino; /* every Res *_u and *_tu */
};

G_END_DECLS

#endif /* DIFFUSE_CLASSIFIER_WEIGHTS_H */
