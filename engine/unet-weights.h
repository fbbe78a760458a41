/* The ADM UNet's layer list and parameters (unet-weights.c), as the
 * forward pass (unet.c) reads them.  Not installed. */
#ifndef DIFFUSE_UNET_WEIGHTS_H
#define DIFFUSE_UNET_WEIGHTS_H

#include "diffuse-private.h"

G_BEGIN_DECLS

typedef struct
{
  gint c_in, c_out;
  gint updown;             /* 0, +1 up (nearest ×2), −1 down (avgpool 2) */
  gint n_emb;              /* 2·c_out with scale-shift norm, else c_out */
  const float *in_norm_w;  /* (c_in)  in_layers.0 */
  const float *in_norm_b;  /* (c_in) */
  const float *in_conv_w;  /* (c_out, c_in, 3, 3)  in_layers.2 */
  const float *in_conv_b;  /* (c_out) */
  const float *emb_w;      /* (n_emb, 4·mc)  emb_layers.1 */
  const float *emb_b;      /* (n_emb) */
  const float *out_norm_w; /* (c_out)  out_layers.0 */
  const float *out_norm_b; /* (c_out) */
  const float *out_conv_w; /* (c_out, c_out, 3, 3)  out_layers.3 */
  const float *out_conv_b; /* (c_out) */
  const float *skip_w;     /* (c_out, c_in, 1, 1)  skip_connection;
                               NULL when c_in == c_out */
  const float *skip_b;     /* (c_out) */
} ResBlockWeights;

typedef struct
{
  gint channels, heads;
  const float *norm_w; /* (C)  norm */
  const float *norm_b; /* (C) */
  const float *qkv_w;  /* (3C, C, 1)  qkv */
  const float *qkv_b;  /* (3C) */
  const float *proj_w; /* (C, C, 1)  proj_out */
  const float *proj_b; /* (C) */
} AttentionWeights;

typedef struct
{
  gint c_in, c_out;
  const float *w; /* (c_out, c_in, 3, 3) */
  const float *b; /* (c_out) */
} ConvWeights;

typedef enum
{
  OP_CONV_IN, /* input_blocks.0.0 */
  OP_RES,     /* ResBlock */
  OP_ATTN,    /* AttentionBlock */
  OP_DOWN,    /* Downsample: conv3x3 stride 2 */
  OP_UP       /* Upsample: nearest ×2, conv3x3 */
} OpKind;

/* One layer of the network in execution order, with the resolutions and
 * channel counts it sees, recorded once when the list is built. */
typedef struct
{
  OpKind kind;
  gint level;     /* input resolution: H >> level, W >> level */
  gint level_out; /* output resolution (level ± 1 across up/down) */
  gint c_in;      /* input channels, the skip's included (pop_skip) */
  gint c_out;     /* output channels (attention: = c_in) */
  gboolean
      pop_skip; /* first layer of an output block: input is cat (h, skip) */
  gboolean push_skip; /* last layer of an input block: keep output as a skip */
  gint skip;          /* pop_skip / push_skip: which skip, 0..n_skips − 1 */
  gint index;         /* into res[], attn[] or conv[] */
} Op;

struct _DiffuseUNetWeights
{
  DiffuseModelConfig config;
  const DiffuseSafetensors *st; /* the file the weights point into */
  gint emb_dim;                 /* 4·mc */
  const float *time_w0;         /* (4mc, mc)  time_embed.0 */
  const float *time_b0;         /* (4mc) */
  const float *time_w2;         /* (4mc, 4mc)  time_embed.2 */
  const float *time_b2;         /* (4mc) */
  const float
      *label_emb; /* (num_classes, 4mc)  label_emb; NULL if unconditional */
  const float *out_norm_w; /* (ch0)  out.0 */
  const float *out_norm_b; /* (ch0) */
  ConvWeights out_conv;    /* (out_channels, ch0, 3, 3)  out.2 */
  Op *ops;
  gint n_ops;
  ResBlockWeights *res;
  gint n_res;
  AttentionWeights *attn;
  gint n_attn;
  ConvWeights *conv; /* conv-in, Downsample and Upsample convs */
  gint n_conv;
  gint n_skips;
  gint *skip_c;     /* [n_skips] channels of each skip */
  gint *skip_level; /* [n_skips] its resolution: H >> level */
};

G_END_DECLS

#endif /* DIFFUSE_UNET_WEIGHTS_H */
