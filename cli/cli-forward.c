/* diffuse forward: one network evaluation on an .npy batch.
 *
 * --timestep is the value the network embeds (diffuse_unet_forward's
 * timesteps: for rescale_timesteps models already multiplied by 1000/T),
 * as in the golden data's t.npy.  --timestep and --class take either one
 * value for the whole batch or an .npy of B values.
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* B values from an .npy of shape [B] (or a single value in a 0-d array). */
static float *
load_per_item (const char *path, gint batch, GError **error)
{
  gint ndim;
  gint64 shape[4];
  g_autofree float *v = diffuse_npy_load (path, &ndim, shape, error);
  float *out;

  if (v == NULL)
    return NULL;
  if (ndim == 0 || (ndim == 1 && shape[0] == 1))
    {
      out = g_new (float, batch);
      for (gint b = 0; b < batch; b++)
        out[b] = v[0];
      return out;
    }
  if (ndim != 1 || shape[0] != batch)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: need %d values (shape [%d]) for the batch", path, batch,
                   batch);
      return NULL;
    }
  return g_steal_pointer (&v);
}

/* Index of the first NaN or Inf in v, or -1. */
static gssize
first_non_finite (const float *v, gsize n)
{
  for (gsize i = 0; i < n; i++)
    if (!isfinite (v[i]))
      return (gssize) i;
  return -1;
}

gboolean
cli_parse_timesteps (const char *text, gint batch, float **out, GError **error)
{
  gchar *end = NULL;
  double t;

  if (g_str_has_suffix (text, ".npy"))
    {
      gssize bad;

      if ((*out = load_per_item (text, batch, error)) == NULL)
        return FALSE;
      if ((bad = first_non_finite (*out, batch)) >= 0)
        {
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "%s: timestep %g at index %" G_GSSIZE_FORMAT " is not "
                       "finite",
                       text, (*out)[bad], bad);
          return FALSE;
        }
      return TRUE;
    }
  t = g_ascii_strtod (text, &end);
  if (*text == '\0' || *end != '\0')
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "--timestep must be a number or an .npy file, not '%s'",
                   text);
      return FALSE;
    }
  /* the network embeds a float: 1e300 is finite as a double only */
  if (!isfinite ((float) t))
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "--timestep %s is not a finite float32 number (|t| < %g)",
                   text, (double) G_MAXFLOAT);
      return FALSE;
    }
  *out = g_new (float, batch);
  for (gint b = 0; b < batch; b++)
    (*out)[b] = (float) t;
  return TRUE;
}

gboolean
cli_parse_labels (const DiffuseModel *model, const char *text, gint batch,
                  gint **out, GError **error)
{
  const DiffuseModelConfig *cfg = diffuse_model_get_config (model);
  gint label = 0;

  *out = g_new0 (gint, batch);
  if (text != NULL && g_str_has_suffix (text, ".npy"))
    {
      g_autofree float *v = load_per_item (text, batch, error);

      if (v == NULL)
        return FALSE;
      for (gint b = 0; b < batch; b++)
        {
          /* labels are stored as floats holding integers */
          if (v[b] != floorf (v[b]) || v[b] < 0 ||
              v[b] >= MAX (cfg->num_classes, 1))
            {
              g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                           "%s: label %g at index %d is not a class index "
                           "0..%d",
                           text, v[b], b, MAX (cfg->num_classes, 1) - 1);
              return FALSE;
            }
          (*out)[b] = (gint) v[b];
        }
      return TRUE;
    }
  if (text != NULL)
    {
      if (!diffuse_model_find_class (model, text, &label, error))
        return FALSE;
    }
  else if (cfg->num_classes > 0)
    {
      if (cfg->null_class < 0)
        {
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "the model is class-conditional without a null class: "
                       "--class is required");
          return FALSE;
        }
      label = cfg->null_class;
    }
  for (gint b = 0; b < batch; b++)
    (*out)[b] = label;
  return TRUE;
}

gboolean
cli_parse_precision (const char *text, DiffusePrecision *out)
{
  g_autofree gchar *escaped = NULL;

  *out = DIFFUSE_PRECISION_AUTO;
  if (text == NULL || diffuse_precision_from_string (text, out))
    return TRUE;
  escaped = diffuse_text_escape (text);
  cli_usage ("--precision \"%s\": expected auto, fp32 or bf16", escaped);
  return FALSE;
}

void
cli_note_precision (DiffusePrecision precision)
{
  if (precision == DIFFUSE_PRECISION_BF16 && !diffuse_bf16_is_native ())
    fprintf (stderr, "note: this processor has no bf16 instructions, so bf16 "
                     "is emulated here: slower than fp32, which auto picks\n");
}

int
cli_forward (int argc, char **argv)
{
  g_autofree gchar *model_path = NULL, *input = NULL, *timestep = NULL;
  g_autofree gchar *klass = NULL, *out_path = NULL, *precision_text = NULL;
  gint threads = 0;
  DiffusePrecision precision = DIFFUSE_PRECISION_AUTO;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path,
      "Model file (.safetensors)", "FILE" },
    { "input", 'i', 0, G_OPTION_ARG_FILENAME, &input,
      "x_t as .npy, float32 [B,C,H,W] or [C,H,W]", "FILE" },
    { "timestep", 'T', 0, G_OPTION_ARG_STRING, &timestep,
      "Network timestep value (already rescaled for rescale_timesteps "
      "models), or an .npy of B values",
      "T" },
    { "class", 'c', 0, G_OPTION_ARG_STRING, &klass,
      "Class index or name, or an .npy of B labels; default: the null class",
      "C" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path,
      "Raw network output as .npy [B,out_C,H,W] (eps, then the "
      "learned-sigma channels if any)",
      "FILE" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads,
      "Threads; default: as many as OpenBLAS would use (OPENBLAS_NUM_THREADS, "
      "else the cores)",
      "N" },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &precision_text,
      CLI_PRECISION_HELP, "P" },
    { NULL }
  };
  g_autoptr (GOptionContext) context = g_option_context_new (
      "- evaluate the network once (debugging, golden tests)");
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  g_autoptr (DiffuseUNet) unet = NULL;
  g_autofree float *x = NULL, *t = NULL, *out = NULL;
  g_autofree gint *labels = NULL;
  const DiffuseModelConfig *cfg;
  gint ndim;
  gint64 shape[4], out_shape[4];
  gint batch, h, w;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!cli_parse (context, &argc, &argv))
    return CLI_EXIT_USAGE;
  if (argc > 1)
    return cli_usage ("unexpected argument '%s'", argv[1]);
  if (model_path == NULL || input == NULL || timestep == NULL ||
      out_path == NULL)
    return cli_usage ("forward needs --model, --input, --timestep and --out");
  if (!cli_parse_precision (precision_text, &precision))
    return CLI_EXIT_USAGE;

  /* the output can be written, before any work */
  if (!diffuse_output_check (out_path, &error))
    return cli_fail (error);

  model = diffuse_model_new_from_file (model_path, &error);
  if (model == NULL)
    return cli_fail (error);
  cfg = diffuse_model_get_config (model);

  x = diffuse_npy_load (input, &ndim, shape, &error);
  if (x == NULL)
    return cli_fail (error);
  if (ndim == 3)
    {
      memmove (shape + 1, shape, 3 * sizeof shape[0]);
      shape[0] = 1;
      ndim = 4;
    }
  if (ndim != 4 || shape[1] != cfg->in_channels || shape[0] < 1 ||
      shape[0] > 1024 || shape[2] > G_MAXINT || shape[3] > G_MAXINT)
    return cli_failf ("%s: need float32 [B, %d, H, W] with 1 <= B <= 1024",
                      input, cfg->in_channels);
  batch = (gint) shape[0];
  h = (gint) shape[2];
  w = (gint) shape[3];
  {
    gssize bad = first_non_finite (x, (gsize) batch * shape[1] * h * w);

    if (bad >= 0)
      return cli_failf ("%s: value %g at index %" G_GSSIZE_FORMAT " is not "
                        "finite",
                        input, x[bad], bad);
  }
  if (!diffuse_model_check_size (model, h, w, &error))
    return cli_fail (error);
  if (!cli_parse_timesteps (timestep, batch, &t, &error) ||
      !cli_parse_labels (model, klass, batch, &labels, &error))
    return cli_fail (error);

  unet = diffuse_unet_new (model, batch, h, w, threads, &error);
  if (unet == NULL || !diffuse_unet_set_precision (unet, precision, &error))
    return cli_fail (error);
  cli_note_precision (diffuse_unet_get_precision (unet));
  out = g_try_new (float, (gsize) batch * cfg->out_channels * h * w);
  if (out == NULL)
    return cli_failf ("out of memory for the output");
  if (!diffuse_unet_forward (unet, batch, x, t, labels, out, &error))
    return cli_fail (error);
  if (first_non_finite (out, (gsize) batch * cfg->out_channels * h * w) >= 0)
    return cli_failf ("the network produced non-finite values (NaN or Inf); "
                      "%s was not written",
                      out_path);

  out_shape[0] = batch;
  out_shape[1] = cfg->out_channels;
  out_shape[2] = h;
  out_shape[3] = w;
  if (!diffuse_npy_save (out_path, out, 4, out_shape, &error))
    return cli_fail (error);
  return 0;
}
