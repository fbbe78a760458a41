/* libFuzzer target: the safetensors parser and model construction on
 * arbitrary bytes.  Nothing here may crash, leak or read out of bounds;
 * bad input must come back as a GError.
 *
 * Built with clang -fsanitize=fuzzer,address (tests/fuzz/build.sh), and
 * with an ordinary compiler plus standalone.c as a replay test over the
 * seed and regression corpora (tests/meson.build). */
#include <stdint.h>
#include <string.h>

#include "diffuse-private.h"

/* Keep runs fast: every real model is larger, but the parser's paths are
 * all reachable well below this. */
#define FUZZ_MAX_INPUT (4u << 20)

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static void
use_tensors (const DiffuseSafetensors *st)
{
  guint i;
  volatile float sink = 0;

  for (i = 0; i < diffuse__safetensors_get_n_tensors (st); i++)
    {
      const DiffuseTensorInfo *t = diffuse__safetensors_get_nth (st, i);
      gint64 k;

      g_assert (diffuse__safetensors_get (st, t->name) == t);
      /* read every element, first and last byte included */
      for (k = 0; k < t->n_elements; k++)
        sink += t->data[k];
    }
  (void) sink;
  diffuse__safetensors_get_metadata (st, "image_size");
}

static void
use_model (const DiffuseModel *model)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);
  static const char *const probes[] = { "0",   "none", "null",
                                        "cat", "-1",   "99999" };
  guint i;
  gint k;

  for (i = 0; i < G_N_ELEMENTS (probes); i++)
    {
      gint index;
      GError *error = NULL;

      if (diffuse_model_find_class (model, probes[i], &index, &error))
        g_assert (index >= 0 && index < cfg->num_classes);
      else
        g_clear_error (&error);
    }
  for (k = -1; k <= cfg->num_classes && k < 64; k++)
    diffuse_model_get_class_name (model, k);
  diffuse_model_check_size (model, cfg->image_size, cfg->image_size, NULL);
  g_assert (diffuse_model_get_n_params (model) > 0);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  GError *error = NULL;
  DiffuseSafetensors *st;
  DiffuseModel *model;

  if (size > FUZZ_MAX_INPUT)
    return 0;
  st = diffuse__safetensors_open_bytes (data, size, &error);
  if (st != NULL)
    {
      use_tensors (st);
      diffuse__safetensors_free (st);
    }
  else
    {
      g_assert (error != NULL && error->domain == DIFFUSE_ERROR);
      g_clear_error (&error);
    }

  model = diffuse__model_new_from_bytes (data, size, "fuzz", &error);
  if (model != NULL)
    {
      use_model (model);
      diffuse_model_free (model);
    }
  else
    {
      g_assert (error != NULL && error->domain == DIFFUSE_ERROR);
      g_clear_error (&error);
    }
  return 0;
}
