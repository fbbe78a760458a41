/* bf16 convolutions on oneDNN, or emulated with the fp32 kernels; see
 * conv-bf16.h. */
#include "diffuse-private.h"
#include "conv-bf16.h"
#include "layers.h"

#ifdef DIFFUSE_HAVE_ONEDNN
#include <dnnl.h>
#include <omp.h>
#endif

#include "kernel-inline.h"

/* One layer in emulation: its weights rounded to bf16 */
typedef struct
{
  const float *w;
  float *wr;
} EmuLayer;

#ifdef DIFFUSE_HAVE_ONEDNN
/* The output channels [c0, c1) of a convolution: one pool thread runs
 * this primitive single-threaded (oneDNN's OpenMP threads would spin
 * against the pool's between layers) */
typedef struct
{
  gint c0, c1;
  dnnl_primitive_t conv;
  dnnl_memory_t src, wei, bias, dst;
} DnnlPart;

/* One layer at one size, split into parts */
typedef struct
{
  const float *w;
  gint batch, height, width, stride, n_parts;
  DnnlPart *parts;
} DnnlConv;

/* bf16 weights of rows [c0, ...) of layer w, in a primitive's layout */
typedef struct
{
  const float *w;
  gint c0;
  dnnl_memory_t mem;
} DnnlWeights;
#endif

struct _DiffuseBf16Convs
{
  gint n_threads;
  gboolean emulate;
  const DiffuseSafetensors *release_from;
  GArray *emu; /* EmuLayer */
  float *xr, *col;
  gsize xr_len, col_len;
  guint cursor; /* the next layer is usually the one after the last */
#ifdef DIFFUSE_HAVE_ONEDNN
  dnnl_engine_t engine;
  dnnl_stream_t *streams; /* [n_threads], one per part */
  GArray *convs;          /* DnnlConv */
  GArray *weights;        /* DnnlWeights */
  /* the bf16 weights' memory: huge-page chunks (diffuse__scratch_alloc),
   * handed out in order, so that making them takes a few hundred page
   * faults instead of one per 4 KiB (145,000 for ImageNet-64) */
  GPtrArray *chunks;
  gsize chunk_used, chunk_len;
  guint16 *src; /* [B, H, W, Cin] bf16 */
  float *dst;   /* per part p: [B, Ho, Wo, c1 − c0] at B·Ho·Wo·c0 */
  gsize src_len, dst_len;
#endif
};

DiffuseBf16Convs *
diffuse__bf16_convs_new (gint n_threads, gboolean emulate,
                         const DiffuseSafetensors *release_from)
{
  DiffuseBf16Convs *c = g_new0 (DiffuseBf16Convs, 1);

  c->release_from = release_from;
  c->n_threads = CLAMP (n_threads, 1, DIFFUSE_MAX_THREADS);
  c->emulate = emulate || !diffuse_have_onednn ();
  c->emu = g_array_new (FALSE, TRUE, sizeof (EmuLayer));
#ifdef DIFFUSE_HAVE_ONEDNN
  c->streams = g_new0 (dnnl_stream_t, c->n_threads);
  c->convs = g_array_new (FALSE, TRUE, sizeof (DnnlConv));
  c->weights = g_array_new (FALSE, TRUE, sizeof (DnnlWeights));
  c->chunks = g_ptr_array_new_with_free_func (diffuse__scratch_free);
#endif
  return c;
}

#ifdef DIFFUSE_HAVE_ONEDNN
static void
part_clear (DnnlPart *p)
{
  if (p->conv)
    dnnl_primitive_destroy (p->conv);
  if (p->src)
    dnnl_memory_destroy (p->src);
  if (p->dst)
    dnnl_memory_destroy (p->dst);
  if (p->bias)
    dnnl_memory_destroy (p->bias);
  memset (p, 0, sizeof *p);
}
#endif

void
diffuse__bf16_convs_free (DiffuseBf16Convs *c)
{
  if (c == NULL)
    return;
  for (guint i = 0; i < c->emu->len; i++)
    g_free (g_array_index (c->emu, EmuLayer, i).wr);
  g_array_unref (c->emu);
  g_free (c->xr);
  g_free (c->col);
#ifdef DIFFUSE_HAVE_ONEDNN
  for (guint i = 0; i < c->convs->len; i++)
    {
      DnnlConv *d = &g_array_index (c->convs, DnnlConv, i);

      for (gint p = 0; p < d->n_parts; p++)
        part_clear (&d->parts[p]);
      g_free (d->parts);
    }
  for (guint i = 0; i < c->weights->len; i++)
    dnnl_memory_destroy (g_array_index (c->weights, DnnlWeights, i).mem);
  g_array_unref (c->convs);
  g_array_unref (c->weights);
  g_ptr_array_unref (c->chunks);
  for (gint i = 0; i < c->n_threads; i++)
    if (c->streams[i])
      dnnl_stream_destroy (c->streams[i]);
  g_free (c->streams);
  if (c->engine)
    dnnl_engine_destroy (c->engine);
  g_free (c->src);
  g_free (c->dst);
#endif
  g_free (c);
}

/* buf grown to at least n bytes (its contents are not kept) */
static gpointer
grow (gpointer buf, gsize *len, gsize n)
{
  if (n <= *len)
    return buf;
  g_free (buf);
  *len = n;
  return g_malloc (n);
}

/* ---- emulation -------------------------------------------------------- */

typedef struct
{
  const float *x;
  float *y;
} RoundJob;

/* units: blocks of 4096 floats */
static void HOT
round_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const RoundJob *j = data;

  for (gsize i = begin * 4096; i < end * 4096; i++)
    j->y[i] = diffuse__bf16_round (j->x[i]);
}

/* y[0..n) = bf16 (x), as floats */
static void
round_floats (DiffusePool *pool, const float *x, gsize n, float *y)
{
  RoundJob j = { x, y };
  gsize blocks = n / 4096;

  diffuse__pool_run (pool, blocks, round_range, &j);
  for (gsize i = blocks * 4096; i < n; i++)
    y[i] = diffuse__bf16_round (x[i]);
}

static gboolean
emu_conv2d (DiffuseBf16Convs *c, DiffusePool *pool, const float *x, gint c_in,
            gint batch, gint height, gint width, const float *w,
            const float *bias, const float *bias2, gsize b2_stride, gint c_out,
            gint k, gint stride, gboolean accumulate, float *out)
{
  gint pad = k / 2;
  gint ho = (height + 2 * pad - k) / stride + 1;
  gint wo = (width + 2 * pad - k) / stride + 1;
  gsize nx = (gsize) c_in * batch * height * width;
  gsize ncol = (gsize) c_in * k * k * batch * ho * wo;
  EmuLayer *layer = NULL;

  for (guint i = 0; i < c->emu->len && layer == NULL; i++)
    {
      guint at = (c->cursor + i) % c->emu->len;

      if (g_array_index (c->emu, EmuLayer, at).w == w)
        {
          layer = &g_array_index (c->emu, EmuLayer, at);
          c->cursor = at + 1;
        }
    }
  if (layer == NULL)
    {
      gsize nw = (gsize) c_out * c_in * k * k;
      EmuLayer l = { w, g_new (float, nw) };

      round_floats (pool, w, nw, l.wr);
      diffuse__safetensors_release (c->release_from, w, nw * sizeof (float));
      g_array_append_val (c->emu, l);
      layer = &g_array_index (c->emu, EmuLayer, c->emu->len - 1);
      c->cursor = c->emu->len;
    }
  c->xr = grow (c->xr, &c->xr_len, nx * sizeof (float));
  c->col = grow (c->col, &c->col_len, ncol * sizeof (float));
  round_floats (pool, x, nx, c->xr);
  diffuse__conv2d (pool, c->xr, c_in, batch, height, width, layer->wr, bias,
                   bias2, b2_stride, c_out, k, stride, accumulate, c->col, out);
  return TRUE;
}

/* ---- oneDNN ----------------------------------------------------------- */

#ifdef DIFFUSE_HAVE_ONEDNN

static gboolean
dnnl_failed (dnnl_status_t s, const char *what, GError **error)
{
  if (s == dnnl_success)
    return FALSE;
  g_set_error (error, DIFFUSE_ERROR,
               s == dnnl_out_of_memory ? DIFFUSE_ERROR_NO_MEMORY
                                       : DIFFUSE_ERROR_INVALID,
               "oneDNN %s failed (status %d)", what, (int) s);
  return TRUE;
}

typedef struct
{
  const float *x;
  gint c_in, batch;
  gsize hw;
  guint16 *s;
} ToNhwcJob;

#define TILE 16

/* s[b, p, c] = bf16 (x[c, b, p]); units: blocks of 64 pixels of one
 * image (b·⌈hw/64⌉ + block), transposed in tiles of 16 channels × 16
 * pixels so that both sides are read and written in whole lines */
static void HOT
to_nhwc_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  const ToNhwcJob *j = data;
  gsize nblk = (j->hw + 63) / 64, cstride = (gsize) j->batch * j->hw;

  for (gsize u = begin; u < end; u++)
    {
      gsize b = u / nblk, p0 = (u % nblk) * 64, p1 = MIN (j->hw, p0 + 64);
      guint16 *s = j->s + (b * j->hw) * j->c_in;
      const float *x = j->x + b * j->hw;

      for (gsize q0 = p0; q0 < p1; q0 += TILE)
        {
          gsize q1 = MIN (p1, q0 + TILE);

          for (gint c0 = 0; c0 < j->c_in; c0 += TILE)
            {
              gint c1 = MIN (j->c_in, c0 + TILE);
              guint16 t[TILE][TILE];

              for (gint c = c0; c < c1; c++)
                for (gsize q = q0; q < q1; q++)
                  t[q - q0][c - c0] =
                      diffuse__bf16_from_float (x[c * cstride + q]);
              for (gsize q = q0; q < q1; q++)
                for (gint c = c0; c < c1; c++)
                  s[q * j->c_in + c] = t[q - q0][c - c0];
            }
        }
    }
}

#define WEIGHT_CHUNK ((gsize) 64 << 20)

/* n bytes for weights, 64-byte aligned, from the chunks; NULL when out
 * of memory */
static void *
weights_alloc (DiffuseBf16Convs *c, gsize n)
{
  n = (n + 63) & ~(gsize) 63;
  if (c->chunks->len == 0 || n > c->chunk_len - c->chunk_used)
    {
      gsize len = MAX (WEIGHT_CHUNK, n);
      void *p = diffuse__scratch_alloc (len);

      if (p == NULL)
        return NULL;
      g_ptr_array_add (c->chunks, p);
      c->chunk_len = len;
      c->chunk_used = 0;
    }
  c->chunk_used += n;
  return (guint8 *) g_ptr_array_index (c->chunks, c->chunks->len - 1) +
         (c->chunk_used - n);
}

/* bf16 weights of rows [c0, c0 + n) of w in layout want, made once */
static dnnl_memory_t
part_weights (DiffuseBf16Convs *c, const float *w, gint c0, gint n, gint c_in,
              gint k, const dnnl_memory_desc_t *want, GError **error)
{
  dnnl_memory_desc_t user_md;
  dnnl_dims_t wdims = { n, c_in, k, k };
  dnnl_primitive_desc_t rpd = NULL;
  dnnl_primitive_t reorder = NULL;
  dnnl_memory_t user = NULL;
  DnnlWeights e = { w, c0, NULL };
  dnnl_exec_arg_t args[2];
  gboolean ok = FALSE;
  void *mem;

  for (guint i = 0; i < c->weights->len; i++)
    {
      DnnlWeights *f = &g_array_index (c->weights, DnnlWeights, i);
      const dnnl_memory_desc_t *md;

      if (f->w == w && f->c0 == c0 &&
          dnnl_memory_get_memory_desc (f->mem, &md) == dnnl_success &&
          dnnl_memory_desc_equal (md, want))
        return f->mem;
    }
  if (dnnl_failed (dnnl_memory_desc_init_by_tag (&user_md, 4, wdims, dnnl_f32,
                                                 dnnl_abcd),
                   "memory_desc_init", error) ||
      dnnl_failed (
          dnnl_memory_create (&user, &user_md, c->engine,
                              (void *) (w + (gsize) c0 * c_in * k * k)),
          "memory_create", error))
    goto out;
  mem = weights_alloc (c, dnnl_memory_desc_get_size (want));
  if (mem == NULL)
    {
      dnnl_failed (dnnl_out_of_memory, "bf16 weights", error);
      goto out;
    }
  if (dnnl_failed (dnnl_memory_create (&e.mem, want, c->engine, mem),
                   "memory_create", error) ||
      dnnl_failed (dnnl_reorder_primitive_desc_create (
                       &rpd, &user_md, c->engine, want, c->engine, NULL),
                   "reorder_primitive_desc_create", error) ||
      dnnl_failed (dnnl_primitive_create (&reorder, rpd), "primitive_create",
                   error))
    goto out;
  args[0] = (dnnl_exec_arg_t){ DNNL_ARG_FROM, user };
  args[1] = (dnnl_exec_arg_t){ DNNL_ARG_TO, e.mem };
  omp_set_num_threads (1);
  if (dnnl_failed (dnnl_primitive_execute (reorder, c->streams[0], 2, args),
                   "weights reorder", error) ||
      dnnl_failed (dnnl_stream_wait (c->streams[0]), "stream_wait", error))
    goto out;
  g_array_append_val (c->weights, e);
  diffuse__safetensors_release (c->release_from, w + (gsize) c0 * c_in * k * k,
                                (gsize) n * c_in * k * k * sizeof (float));
  ok = TRUE;
out:
  if (reorder)
    dnnl_primitive_destroy (reorder);
  if (rpd)
    dnnl_primitive_desc_destroy (rpd);
  if (user)
    dnnl_memory_destroy (user);
  if (!ok && e.mem)
    dnnl_memory_destroy (e.mem);
  return ok ? e.mem : NULL;
}

/* The primitive of output channels [p->c0, p->c1).  FALSE with
 * *unimplemented set and no error when oneDNN has no bf16 convolution
 * for this CPU (2.x: none below AVX-512). */
static gboolean
part_make (DiffuseBf16Convs *c, DnnlPart *p, gint c_in, gint batch, gint height,
           gint width, const float *w, const float *bias, gint k, gint stride,
           gboolean *unimplemented, GError **error)
{
  gint pad = k / 2, n = p->c1 - p->c0;
  gint ho = (height + 2 * pad - k) / stride + 1;
  gint wo = (width + 2 * pad - k) / stride + 1;
  dnnl_memory_desc_t src_md, wei_md, bias_md, dst_md;
  dnnl_convolution_desc_t cd;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_dims_t sdims = { batch, c_in, height, width };
  dnnl_dims_t wdims = { n, c_in, k, k };
  dnnl_dims_t bdims = { n };
  dnnl_dims_t ddims = { batch, n, ho, wo };
  dnnl_dims_t strides = { stride, stride }, pad_l = { pad, pad };
  dnnl_dims_t pad_r = { (ho - 1) * stride + k - height - pad,
                        (wo - 1) * stride + k - width - pad };
  dnnl_status_t st;
  gboolean ok = FALSE;

  if (dnnl_failed (dnnl_memory_desc_init_by_tag (&src_md, 4, sdims, dnnl_bf16,
                                                 dnnl_acdb),
                   "memory_desc_init", error) ||
      dnnl_failed (dnnl_memory_desc_init_by_tag (&wei_md, 4, wdims, dnnl_bf16,
                                                 dnnl_format_tag_any),
                   "memory_desc_init", error) ||
      dnnl_failed (
          dnnl_memory_desc_init_by_tag (&bias_md, 1, bdims, dnnl_f32, dnnl_a),
          "memory_desc_init", error) ||
      dnnl_failed (
          dnnl_memory_desc_init_by_tag (&dst_md, 4, ddims, dnnl_f32, dnnl_acdb),
          "memory_desc_init", error) ||
      dnnl_failed (dnnl_convolution_forward_desc_init (
                       &cd, dnnl_forward_inference, dnnl_convolution_direct,
                       &src_md, &wei_md, bias ? &bias_md : NULL, &dst_md,
                       strides, pad_l, pad_r),
                   "convolution_forward_desc_init", error))
    goto out;
  st = dnnl_primitive_desc_create (&pd, &cd, NULL, c->engine, NULL);
  if (st == dnnl_unimplemented)
    {
      *unimplemented = TRUE;
      goto out;
    }
  if (dnnl_failed (st, "primitive_desc_create", error) ||
      dnnl_failed (dnnl_primitive_create (&p->conv, pd), "primitive_create",
                   error) ||
      dnnl_failed (
          dnnl_memory_create (&p->src, &src_md, c->engine, DNNL_MEMORY_NONE),
          "memory_create", error) ||
      dnnl_failed (
          dnnl_memory_create (&p->dst, &dst_md, c->engine, DNNL_MEMORY_NONE),
          "memory_create", error) ||
      (bias && dnnl_failed (dnnl_memory_create (&p->bias, &bias_md, c->engine,
                                                (void *) (bias + p->c0)),
                            "memory_create", error)))
    goto out;
  p->wei = part_weights (
      c, w, p->c0, n, c_in, k,
      dnnl_primitive_desc_query_md (pd, dnnl_query_weights_md, 0), error);
  ok = p->wei != NULL;
out:
  if (pd)
    dnnl_primitive_desc_destroy (pd);
  return ok;
}

/* The primitives for layer w at this size, made (with their bf16
 * weights) the first time; NULL as part_make */
static DnnlConv *
dnnl_find (DiffuseBf16Convs *c, gint c_in, gint batch, gint height, gint width,
           const float *w, const float *bias, gint c_out, gint k, gint stride,
           gboolean *unimplemented, GError **error)
{
  DnnlConv d = {
    .w = w, .batch = batch, .height = height, .width = width, .stride = stride
  };
  gint blocks = (c_out + 15) / 16, per;

  for (guint i = 0; i < c->convs->len; i++)
    {
      guint at = (c->cursor + i) % c->convs->len;
      DnnlConv *e = &g_array_index (c->convs, DnnlConv, at);

      if (e->w == w && e->batch == batch && e->height == height &&
          e->width == width && e->stride == stride)
        {
          c->cursor = at + 1;
          return e;
        }
    }
  if (c->engine == NULL &&
      dnnl_failed (dnnl_engine_create (&c->engine, dnnl_cpu, 0),
                   "engine_create", error))
    return NULL;
  for (gint i = 0; i < c->n_threads; i++)
    if (c->streams[i] == NULL &&
        dnnl_failed (dnnl_stream_create (&c->streams[i], c->engine,
                                         dnnl_stream_default_flags),
                     "stream_create", error))
      return NULL;
  /* parts of whole 16-channel blocks, one per thread */
  per = (blocks + c->n_threads - 1) / c->n_threads;
  d.n_parts = (blocks + per - 1) / per;
  d.parts = g_new0 (DnnlPart, d.n_parts);
  for (gint p = 0; p < d.n_parts; p++)
    {
      d.parts[p].c0 = p * per * 16;
      d.parts[p].c1 = MIN (c_out, (p + 1) * per * 16);
      if (!part_make (c, &d.parts[p], c_in, batch, height, width, w, bias, k,
                      stride, unimplemented, error))
        {
          for (gint q = 0; q <= p; q++)
            part_clear (&d.parts[q]);
          g_free (d.parts);
          return NULL;
        }
    }
  g_array_append_val (c->convs, d);
  c->cursor = c->convs->len;
  return &g_array_index (c->convs, DnnlConv, c->convs->len - 1);
}

typedef struct
{
  DiffuseBf16Convs *c;
  const DnnlConv *d;
  gsize hwo;
  gint c_out;
  const float *bias2;
  gsize b2_stride;
  gboolean accumulate;
  float *out;
  gint failed; /* parts whose oneDNN call failed */
} PartJob;

/* units: parts; each runs its primitive, then adds its channels back:
 * out[c, b, p] (+)= dst[b, p, c − c0] + bias2[b, c] */
static void HOT
part_range (gpointer data, gsize begin, gsize end, gint part G_GNUC_UNUSED)
{
  PartJob *j = data;

  omp_set_num_threads (1);
  for (gsize u = begin; u < end; u++)
    {
      const DnnlPart *p = &j->d->parts[u];
      gint n = p->c1 - p->c0, nargs = 0;
      const float *dst = j->c->dst + (gsize) j->d->batch * j->hwo * p->c0;
      dnnl_exec_arg_t args[4];

      args[nargs++] = (dnnl_exec_arg_t){ DNNL_ARG_SRC, p->src };
      args[nargs++] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS, p->wei };
      if (p->bias)
        args[nargs++] = (dnnl_exec_arg_t){ DNNL_ARG_BIAS, p->bias };
      args[nargs++] = (dnnl_exec_arg_t){ DNNL_ARG_DST, p->dst };
      if (dnnl_primitive_execute (p->conv, j->c->streams[u], nargs, args) !=
              dnnl_success ||
          dnnl_stream_wait (j->c->streams[u]) != dnnl_success)
        {
          g_atomic_int_inc (&j->failed);
          continue;
        }
      /* in tiles of 64 pixels × all the part's channels (in cache) */
      for (gint b = 0; b < j->d->batch; b++)
        for (gsize q0 = 0; q0 < j->hwo; q0 += 64)
          {
            gsize q1 = MIN (j->hwo, q0 + 64);

            for (gint c = p->c0; c < p->c1; c++)
              {
                const float *d = dst + (gsize) b * j->hwo * n + (c - p->c0);
                float *o = j->out + ((gsize) c * j->d->batch + b) * j->hwo;
                float v = j->bias2 ? j->bias2[b * j->b2_stride + c] : 0.0f;

                if (j->accumulate)
                  for (gsize q = q0; q < q1; q++)
                    o[q] += d[q * n] + v;
                else
                  for (gsize q = q0; q < q1; q++)
                    o[q] = d[q * n] + v;
              }
          }
    }
}

static gboolean
dnnl_conv2d (DiffuseBf16Convs *c, DiffusePool *pool, const float *x, gint c_in,
             gint batch, gint height, gint width, const float *w,
             const float *bias, const float *bias2, gsize b2_stride, gint c_out,
             gint k, gint stride, gboolean accumulate, float *out,
             GError **error)
{
  gint pad = k / 2;
  gint ho = (height + 2 * pad - k) / stride + 1;
  gint wo = (width + 2 * pad - k) / stride + 1;
  gsize hw = (gsize) height * width, hwo = (gsize) ho * wo;
  gboolean unimplemented = FALSE;
  DnnlConv *d = dnnl_find (c, c_in, batch, height, width, w, bias, c_out, k,
                           stride, &unimplemented, error);
  ToNhwcJob in;
  PartJob pj;

  if (d == NULL && unimplemented)
    {
      /* this state emulates from now on */
      c->emulate = TRUE;
      return emu_conv2d (c, pool, x, c_in, batch, height, width, w, bias, bias2,
                         b2_stride, c_out, k, stride, accumulate, out);
    }
  if (d == NULL)
    return FALSE;
  c->src = grow (c->src, &c->src_len, (gsize) batch * hw * c_in * 2);
  c->dst = grow (c->dst, &c->dst_len, (gsize) batch * hwo * c_out * 4);
  in = (ToNhwcJob){ x, c_in, batch, hw, c->src };
  diffuse__pool_run (pool, (gsize) batch * ((hw + 63) / 64), to_nhwc_range,
                     &in);
  for (gint p = 0; p < d->n_parts; p++)
    if (dnnl_failed (dnnl_memory_set_data_handle (d->parts[p].src, c->src),
                     "memory_set_data_handle", error) ||
        dnnl_failed (dnnl_memory_set_data_handle (d->parts[p].dst,
                                                  c->dst + (gsize) batch * hwo *
                                                               d->parts[p].c0),
                     "memory_set_data_handle", error))
      return FALSE;
  pj = (PartJob){ c, d, hwo, c_out, bias2, b2_stride, accumulate, out, 0 };
  diffuse__pool_run (pool, d->n_parts, part_range, &pj);
  if (pj.failed)
    return dnnl_failed (dnnl_runtime_error, "convolution", error) && FALSE;
  return TRUE;
}
#endif

gboolean
diffuse__bf16_conv2d (DiffuseBf16Convs *c, DiffusePool *pool, const float *x,
                      gint c_in, gint batch, gint height, gint width,
                      const float *w, const float *bias, const float *bias2,
                      gsize b2_stride, gint c_out, gint k, gint stride,
                      gboolean accumulate, float *out, GError **error)
{
#ifdef DIFFUSE_HAVE_ONEDNN
  if (!c->emulate)
    return dnnl_conv2d (c, pool, x, c_in, batch, height, width, w, bias, bias2,
                        b2_stride, c_out, k, stride, accumulate, out, error);
#endif
  (void) error;
  return emu_conv2d (c, pool, x, c_in, batch, height, width, w, bias, bias2,
                     b2_stride, c_out, k, stride, accumulate, out);
}
