/* Writing safetensors files for tests, and the tensor list of
 * guided-diffusion's UNetModel for a config, enumerated independently of
 * engine/unet.c (from guided_diffusion/unet.py's module tree). */
#ifndef TESTUTIL_SAFETENSORS_H
#define TESTUTIL_SAFETENSORS_H

#include "diffuse.h"

G_BEGIN_DECLS

typedef struct _TestSt TestSt;

TestSt *test_st_new (void);
void test_st_free (TestSt *b);
/* F32 tensor; data NULL fills it with a fixed pseudo-random pattern in
 * [-0.05, 0.05] that depends on the element's position in the file. */
void test_st_add_f32 (TestSt *b, const char *name, gint ndim,
                      const gint64 *shape, const float *data);
/* Any dtype string, raw little-endian bytes. */
void test_st_add_raw (TestSt *b, const char *name, const char *dtype, gint ndim,
                      const gint64 *shape, const void *raw, gsize n_bytes);
/* Adds every tensor of f32 (a file of F32 tensors as the engine parsed
 * it) as BF16, each value truncated to its upper 16 bits. */
void test_st_add_bf16_of (TestSt *b, const struct _DiffuseSafetensors *f32);
/* Replaces the shape of a tensor already added (data follows the new
 * element count); FALSE when absent. */
gboolean test_st_reshape (TestSt *b, const char *name, gint ndim,
                          const gint64 *shape);
gboolean test_st_remove (TestSt *b, const char *name);
guint test_st_get_n_tensors (const TestSt *b);
const char *test_st_get_name (const TestSt *b, guint index);
/* value NULL removes the key. */
void test_st_set_metadata (TestSt *b, const char *key, const char *value);
/* The whole file: length, JSON header padded to 8 bytes, data. */
GBytes *test_st_serialize (const TestSt *b);
/* Writes into a fresh temporary file; returns its path (g_free it, and
 * g_unlink the file). */
gchar *test_st_write_temp (const TestSt *b);

/* A file from a literal header and data region. */
GBytes *test_st_bytes_from_header (const char *header, const void *data,
                                   gsize data_len);

/* A small valid UNet config (guided-diffusion names) for tests. */
void test_unet_config_init (DiffuseModelConfig *cfg);
/* Sets every __metadata__ key of cfg (class_names left alone). */
void test_unet_set_metadata (TestSt *b, const DiffuseModelConfig *cfg);
/* Adds every parameter tensor of guided-diffusion's UNetModel for cfg, in
 * state_dict order, as F32 with pattern data.  Returns the element count. */
guint64 test_unet_add_tensors (TestSt *b, const DiffuseModelConfig *cfg);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (TestSt, test_st_free)

G_END_DECLS

#endif /* TESTUTIL_SAFETENSORS_H */
