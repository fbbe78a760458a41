/* diffuse classify: a noisy-image classifier's logits on an .npy batch,
 * and with --class and --grad-out the gradient of log softmax(logits)[y]
 * with respect to the input (what classifier guidance adds, before the
 * scale).
 *
 * --timestep is the value the network embeds, as for `diffuse forward`
 * (a number, or an .npy of B values); --class an index or a class name
 * for the whole batch, or an .npy of B labels.
 */
#include "cli.h"

#include <string.h>

int
cli_classify (int argc, char **argv)
{
  g_autofree gchar *model_path = NULL, *input = NULL, *timestep = NULL;
  g_autofree gchar *klass = NULL, *out_path = NULL, *grad_path = NULL;
  g_autofree gchar *precision_text = NULL;
  gint threads = 0;
  DiffusePrecision precision;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path,
      "Classifier file (.safetensors, model_type classifier)", "FILE" },
    { "input", 'i', 0, G_OPTION_ARG_FILENAME, &input,
      "x_t as .npy, float32 [B,C,H,W] or [C,H,W]", "FILE" },
    { "timestep", 'T', 0, G_OPTION_ARG_STRING, &timestep,
      "Network timestep value, or an .npy of B values", "T" },
    { "class", 'c', 0, G_OPTION_ARG_STRING, &klass,
      "Class index or name, or an .npy of B labels (needed for --grad-out)",
      "Y" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path,
      "Logits as .npy [B, classes]", "FILE" },
    { "grad-out", 'g', 0, G_OPTION_ARG_FILENAME, &grad_path,
      "Gradient of log softmax(logits)[y] wrt x as .npy [B,C,H,W]", "FILE" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads,
      "Threads; default: as many as OpenBLAS would use (OPENBLAS_NUM_THREADS, "
      "else the cores)",
      "N" },
    { "precision", 0, 0, G_OPTION_ARG_STRING, &precision_text,
      CLI_PRECISION_HELP " (the forward pass; the gradient stays fp32)", "P" },
    { NULL }
  };
  g_autoptr (GOptionContext) context = g_option_context_new (
      "- a classifier's logits and gradient of log p(y|x)");
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  g_autoptr (DiffuseClassifier) clf = NULL;
  g_autofree float *x = NULL, *t = NULL, *logits = NULL, *grad = NULL;
  g_autofree gint *labels = NULL;
  const DiffuseModelConfig *cfg;
  gint ndim;
  gint64 shape[4], lshape[2];
  gint batch, h, w;

  g_option_context_add_main_entries (context, entries, NULL);
  if (!cli_parse (context, &argc, &argv))
    return CLI_EXIT_USAGE;
  if (argc > 1)
    return cli_usage ("unexpected argument '%s'", argv[1]);
  if (model_path == NULL || input == NULL || timestep == NULL ||
      out_path == NULL)
    return cli_usage ("classify needs --model, --input, --timestep and --out");
  if (!cli_parse_precision (precision_text, &precision))
    return CLI_EXIT_USAGE;
  if (grad_path != NULL && klass == NULL)
    return cli_usage (
        "--grad-out needs --class (the label whose log-probability "
        "is differentiated)");

  /* the outputs can be written, before any work */
  if (!diffuse_output_check (out_path, &error) ||
      (grad_path != NULL && !diffuse_output_check (grad_path, &error)))
    return cli_fail (error);

  model = diffuse_model_new_from_file (model_path, &error);
  if (model == NULL)
    return cli_fail (error);
  cfg = diffuse_model_get_config (model);
  if (cfg->model_type != DIFFUSE_MODEL_CLASSIFIER)
    return cli_failf ("%s is a diffusion UNet, not a classifier (use "
                      "'diffuse forward' to run it)",
                      model_path);

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
    return cli_failf ("%s: need float32 [B, %d, H, W] with 1 <= B <= 1024 (the "
                      "classifier takes %d channels)",
                      input, cfg->in_channels, cfg->in_channels);
  batch = (gint) shape[0];
  h = (gint) shape[2];
  w = (gint) shape[3];
  if (!cli_parse_timesteps (timestep, batch, &t, &error))
    return cli_fail (error);
  if (klass != NULL && !cli_parse_labels (model, klass, batch, &labels, &error))
    return cli_fail (error);

  clf = diffuse_classifier_new (model, batch, h, w, threads, &error);
  if (clf == NULL || !diffuse_classifier_set_precision (clf, precision, &error))
    return cli_fail (error);
  logits = g_new (float, (gsize) batch * cfg->num_classes);
  if (grad_path != NULL)
    {
      grad = g_try_new (float, (gsize) batch * cfg->in_channels * h * w);
      if (grad == NULL)
        return cli_failf ("out of memory for the gradient");
      if (!diffuse_classifier_grad (clf, batch, x, t, labels, logits, grad,
                                    &error))
        return cli_fail (error);
    }
  else if (!diffuse_classifier_forward (clf, batch, x, t, logits, &error))
    return cli_fail (error);

  lshape[0] = batch;
  lshape[1] = cfg->num_classes;
  if (!diffuse_npy_save (out_path, logits, 2, lshape, &error))
    return cli_fail (error);
  if (grad_path != NULL &&
      !diffuse_npy_save (grad_path, grad, 4, shape, &error))
    return cli_fail (error);
  return 0;
}
