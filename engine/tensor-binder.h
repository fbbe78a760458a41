/* Binding a network's parameters by state_dict name to the tensors of a
 * parsed safetensors file, every shape checked, and checking afterwards
 * that the file held nothing else.  Shared by the UNet's and the
 * classifier's weight binding (unet-weights.c, classifier-weights.c). */
#ifndef DIFFUSE_TENSOR_BINDER_H
#define DIFFUSE_TENSOR_BINDER_H

#include "diffuse-private.h"

typedef struct
{
  const DiffuseSafetensors *st;
  const char *name; /* the file's, for messages */
  gboolean *used;   /* per tensor of st */
  guint n_bound;
  GError *error; /* the first failure; later binds are no-ops */
} DiffuseBinder;

/* The data of tensor "printf (fmt, ...)", which must have ndim
 * dimensions d0.. (the first ndim of them); NULL after any failure. */
const float *diffuse__bind (DiffuseBinder *bd, gint ndim, gint64 d0, gint64 d1,
                            gint64 d2, gint64 d3, const char *fmt, ...)
    G_GNUC_PRINTF (7, 8);

#define DIFFUSE_BIND1(bd, a, ...) diffuse__bind (bd, 1, a, 0, 0, 0, __VA_ARGS__)
#define DIFFUSE_BIND2(bd, a, b, ...)                                           \
  diffuse__bind (bd, 2, a, b, 0, 0, __VA_ARGS__)
#define DIFFUSE_BIND3(bd, a, b, c, ...)                                        \
  diffuse__bind (bd, 3, a, b, c, 0, __VA_ARGS__)
#define DIFFUSE_BIND4(bd, a, b, c, d, ...)                                     \
  diffuse__bind (bd, 4, a, b, c, d, __VA_ARGS__)

/* A file with tensors the architecture does not use is refused: it is most
 * likely another architecture.  what names the network ("UNet"). */
gboolean diffuse__binder_check_all_used (const DiffuseBinder *bd,
                                         const char *what, GError **error);

#endif /* DIFFUSE_TENSOR_BINDER_H */
