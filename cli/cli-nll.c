/* diffuse nll: the variational bound on −log p(x0) in bits per dimension
 * (engine/likelihood.c; improved-diffusion's calc_bpd_loop).
 *
 *   diffuse nll --model M --input x.npy|image.png [--class Y] [--noise N.npy]
 *               [--timesteps N] [--variance KIND[,KIND...]] [--out r.json]
 *
 * Prints the total, the prior term and per-image values; --out writes every
 * per-t term as JSON (atomically: a temporary file renamed into place).
 * Every argument is checked before the first network pass.
 */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <json-glib/json-glib.h>

#define MAX_IMAGES 100000

typedef struct
{
  gboolean quiet, tty;
  gint64 t0;
} Progress;

static gboolean
on_progress (gint done, gint total, gpointer user_data)
{
  Progress *p = user_data;

  if (p->quiet)
    return TRUE;
  if (p->tty)
    fprintf (stderr, "\rtimestep %d/%d%s", done, total,
             done == total ? "\n" : "");
  else if (done == total || done % 50 == 0)
    fprintf (stderr, "timestep %d/%d (%.0f s)\n", done, total,
             (g_get_monotonic_time () - p->t0) / 1e6);
  return TRUE;
}

/* x0: .npy [B, C, H, W] or [C, H, W], or a PNG converted to the model's
 * channels (one image). */
static float *
load_images (const char *path, const DiffuseModelConfig *cfg, gint *count,
             gint *h, gint *w, GError **error)
{
  gint ndim, c = cfg->in_channels;
  gint64 s[4];
  float *x;

  if (!g_str_has_suffix (path, ".npy"))
    {
      *count = 1;
      return diffuse_png_load (path, c, NULL, h, w, error);
    }
  x = diffuse_npy_load (path, &ndim, s, error);
  if (x == NULL)
    return NULL;
  if (ndim == 3)
    {
      memmove (s + 1, s, 3 * sizeof s[0]);
      s[0] = 1;
      ndim = 4;
    }
  if (ndim != 4 || s[1] != c || s[0] < 1 || s[0] > MAX_IMAGES || s[2] < 1 ||
      s[2] > G_MAXINT || s[3] < 1 || s[3] > G_MAXINT)
    {
      g_free (x);
      g_set_error (
          error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
          "%s: need float32 [B, %d, H, W] or [%d, H, W] with 1 <= B <= %d",
          path, c, c, MAX_IMAGES);
      return NULL;
    }
  *count = (gint) s[0];
  *h = (gint) s[2];
  *w = (gint) s[3];
  return x;
}

/* --class: an index or name for every image, or an .npy of B labels
 * (floats holding integers; −1 = the null class).  NULL text: NULL labels
 * (the null class, or unconditional). */
static gboolean
parse_labels (const DiffuseModel *model, const char *text, gint count,
              gint **out, GError **error)
{
  gint label;

  *out = NULL;
  if (text == NULL)
    return TRUE;
  if (g_str_has_suffix (text, ".npy"))
    {
      gint ndim;
      gint64 shape[4];
      g_autofree float *v = diffuse_npy_load (text, &ndim, shape, error);

      if (v == NULL)
        return FALSE;
      if (ndim != 1 || shape[0] != count)
        {
          g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                       "%s: need %d labels (shape [%d]), one per image", text,
                       count, count);
          return FALSE;
        }
      *out = g_new (gint, count);
      for (gint k = 0; k < count; k++)
        {
          if (!(v[k] == floorf (v[k]) && v[k] >= -1.0f && v[k] < 1e6f))
            {
              g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                           "%s: label %g of image %d is not a class index "
                           "(or -1 for the null class)",
                           text, v[k], k);
              g_clear_pointer (out, g_free);
              return FALSE;
            }
          (*out)[k] = (gint) v[k];
        }
      return TRUE;
    }
  if (!diffuse_model_find_class (model, text, &label, error))
    return FALSE;
  *out = g_new (gint, count);
  for (gint k = 0; k < count; k++)
    (*out)[k] = label;
  return TRUE;
}

/* --variance learned,fixed-small,...: at most one of each kind. */
static gboolean
parse_variances (const char *text, DiffuseVarianceKind *kinds, gint *n)
{
  g_auto (GStrv) parts = g_strsplit (text, ",", -1);

  *n = 0;
  for (gint i = 0; parts[i] != NULL; i++)
    {
      DiffuseVarianceKind k;

      if (!diffuse_variance_kind_from_string (g_strstrip (parts[i]), &k))
        return FALSE;
      for (gint j = 0; j < *n; j++)
        if (kinds[j] == k)
          return FALSE;
      if (*n == DIFFUSE_VARIANCE_COUNT)
        return FALSE;
      kinds[(*n)++] = k;
    }
  return *n > 0;
}

/* --noise [T, B, C, H, W] matching the run. */
static float *
load_noise (const char *path, gint T, gint count, gint c, gint h, gint w,
            GError **error)
{
  gint ndim;
  gint64 s[5];
  float *noise = diffuse_npy_load_nd (path, 5, &ndim, s, error);

  if (noise == NULL)
    return NULL;
  if (ndim != 5 || s[0] != T || s[1] != count || s[2] != c || s[3] != h ||
      s[4] != w)
    {
      g_autoptr (GString) got = g_string_new ("[");

      for (gint i = 0; i < ndim; i++)
        g_string_append_printf (got, "%s%" G_GINT64_FORMAT, i ? ", " : "",
                                s[i]);
      g_string_append_c (got, ']');
      g_free (noise);
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID,
                   "%s: noise has shape %s, the run needs [T, B, C, H, W] = "
                   "[%d, %d, %d, %d, %d] (slice [t] draws x_t)",
                   path, got->str, T, count, c, h, w);
      return NULL;
    }
  return noise;
}

static double
mean_of (const double *v, gint n)
{
  double s = 0.0;

  for (gint i = 0; i < n; i++)
    s += v[i];
  return s / n;
}

static JsonNode *
array_node (const double *v, gint n)
{
  JsonArray *a = json_array_sized_new (n);
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);

  for (gint i = 0; i < n; i++)
    json_array_add_double_element (a, v[i]);
  json_node_take_array (node, a);
  return node;
}

/* rows × cols doubles as an array of rows */
static JsonNode *
matrix_node (const double *v, gint rows, gint cols)
{
  JsonArray *a = json_array_sized_new (rows);
  JsonNode *node = json_node_new (JSON_NODE_ARRAY);

  for (gint i = 0; i < rows; i++)
    json_array_add_element (a, array_node (v + (gsize) i * cols, cols));
  json_node_take_array (node, a);
  return node;
}

static gboolean
write_json (const char *path, const char *model_path, const char *input,
            const char *noise_path, guint64 seed, gboolean clip,
            const DiffuseNllResult *r, GError **error)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = NULL;
  g_autofree gchar *text = NULL;
  gint N = r->n_terms, K = r->count;
  g_autofree double *t_d = g_new (double, N);
  g_autofree double *means = g_new (double, N);

  for (gint j = 0; j < N; j++)
    t_d[j] = r->timesteps[j];

  json_builder_begin_object (b);
  json_builder_set_member_name (b, "units");
  json_builder_add_string_value (b, "bits/dim");
  json_builder_set_member_name (b, "model");
  json_builder_add_string_value (b, model_path);
  json_builder_set_member_name (b, "input");
  json_builder_add_string_value (b, input);
  json_builder_set_member_name (b, "images");
  json_builder_add_int_value (b, K);
  json_builder_set_member_name (b, "T");
  json_builder_add_int_value (b, r->T);
  json_builder_set_member_name (b, "estimate");
  json_builder_add_boolean_value (b, N != r->T);
  json_builder_set_member_name (b, "n_terms");
  json_builder_add_int_value (b, N);
  json_builder_set_member_name (b, "clip_denoised");
  json_builder_add_boolean_value (b, clip);
  json_builder_set_member_name (b, "noise");
  if (noise_path != NULL)
    json_builder_add_string_value (b, noise_path);
  else
    json_builder_add_string_value (b, "seeded");
  if (noise_path == NULL)
    {
      /* as a string: JSON numbers lose digits above 2^53 */
      g_autofree gchar *s = g_strdup_printf ("%" G_GUINT64_FORMAT, seed);

      json_builder_set_member_name (b, "seed");
      json_builder_add_string_value (b, s);
    }
  json_builder_set_member_name (b, "timesteps");
  json_builder_add_value (b, array_node (t_d, N));
  json_builder_set_member_name (b, "weights");
  json_builder_add_value (b, array_node (r->weights, N));
  json_builder_set_member_name (b, "prior_bpd");
  json_builder_add_value (b, array_node (r->prior, K));
  json_builder_set_member_name (b, "mean_prior_bpd");
  json_builder_add_double_value (b, mean_of (r->prior, K));
  json_builder_set_member_name (b, "xstart_mse");
  json_builder_add_value (b, matrix_node (r->xstart_mse, N, K));
  json_builder_set_member_name (b, "eps_mse");
  json_builder_add_value (b, matrix_node (r->eps_mse, N, K));
  json_builder_set_member_name (b, "variances");
  json_builder_begin_array (b);
  for (gint v = 0; v < r->n_variances; v++)
    {
      const double *terms = r->terms + (gsize) v * N * K;

      for (gint j = 0; j < N; j++)
        means[j] = mean_of (terms + (gsize) j * K, K);
      json_builder_begin_object (b);
      json_builder_set_member_name (b, "variance");
      json_builder_add_string_value (
          b, diffuse_variance_kind_to_string (r->variances[v]));
      json_builder_set_member_name (b, "mean_total_bpd");
      json_builder_add_double_value (b, mean_of (r->total + (gsize) v * K, K));
      json_builder_set_member_name (b, "total_bpd");
      json_builder_add_value (b, array_node (r->total + (gsize) v * K, K));
      json_builder_set_member_name (b, "mean_terms_bpd");
      json_builder_add_value (b, array_node (means, N));
      json_builder_set_member_name (b, "terms_bpd");
      json_builder_add_value (b, matrix_node (terms, N, K));
      json_builder_end_object (b);
    }
  json_builder_end_array (b);
  json_builder_end_object (b);

  root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, FALSE);
  text = json_generator_to_data (gen, NULL);
  /* atomic, never over a device or FIFO (DiffuseOutput) */
  {
    g_autoptr (DiffuseOutput) out = diffuse_output_new (path, error);

    return out != NULL &&
           diffuse_output_write (out, text, strlen (text), error) &&
           diffuse_output_commit (out, error);
  }
}

static void
print_result (const DiffuseNllResult *r)
{
  gint N = r->n_terms, K = r->count;
  gint j0 = N - 1; /* t = 0 comes last */

  if (N != r->T)
    printf (
        "ESTIMATE from %d of T = %d timesteps (t = 0, and KL terms at evenly "
        "strided t weighted by %.6g)\n",
        N, r->T, r->weights[0]);
  else
    printf ("full bound: all T = %d timesteps\n", r->T);
  for (gint v = 0; v < r->n_variances; v++)
    {
      const double *terms = r->terms + (gsize) v * N * K;
      double dec = mean_of (terms + (gsize) j0 * K, K);

      printf (
          "variance %s: total %.6f bits/dim (mean of %d image%s): prior %.6g, "
          "decoder (t = 0) %.6f, KL terms (t >= 1) %.6f\n",
          diffuse_variance_kind_to_string (r->variances[v]),
          mean_of (r->total + (gsize) v * K, K), K, K == 1 ? "" : "s",
          mean_of (r->prior, K), dec,
          mean_of (r->total + (gsize) v * K, K) - mean_of (r->prior, K) - dec);
    }
  printf ("image");
  for (gint v = 0; v < r->n_variances; v++)
    printf ("  total(%s)", diffuse_variance_kind_to_string (r->variances[v]));
  printf ("  prior\n");
  for (gint k = 0; k < K; k++)
    {
      printf ("%d", k);
      for (gint v = 0; v < r->n_variances; v++)
        printf ("  %.6f", r->total[(gsize) v * K + k]);
      printf ("  %.6g\n", r->prior[k]);
    }
}

int
cli_nll (int argc, char **argv)
{
  g_autofree gchar *model_path = NULL, *input = NULL, *klass = NULL;
  g_autofree gchar *noise_path = NULL, *out_path = NULL, *variance = NULL;
  g_autofree gchar *seed_text = NULL;
  gint timesteps = 0, batch = 0, threads = 0;
  gboolean no_clip = FALSE, quiet = FALSE;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model_path,
      "Model file (.safetensors)", "FILE" },
    { "input", 'i', 0, G_OPTION_ARG_FILENAME, &input,
      "Images: .npy float32 [B,C,H,W] or [C,H,W] in [-1,1] on the 8-bit grid "
      "(pixel/127.5 - 1), or a PNG (converted to the model's channels)",
      "FILE" },
    { "class", 'c', 0, G_OPTION_ARG_STRING, &klass,
      "Class of every image (index or name; \"none\" = the null class), or an "
      ".npy of B labels (-1 = null class); default: the null class",
      "Y" },
    { "noise", 0, 0, G_OPTION_ARG_FILENAME, &noise_path,
      "float32 .npy [T,B,C,H,W]: slice [t] is the noise that draws x_t; "
      "default: seeded noise",
      "FILE" },
    { "seed", 0, 0, G_OPTION_ARG_STRING, &seed_text,
      "Seed of the noise when --noise is not given (0..2^64-1); default 0",
      "N" },
    { "timesteps", 0, 0, G_OPTION_ARG_INT, &timesteps,
      "ESTIMATE the sum from N evenly strided t (2..T; t = 0 always in, the "
      "KL terms scaled by (T-1)/(N-1)); it misses the large terms at t < "
      "(T-1)/(N-1), so it runs low; default: every t, the bound itself",
      "N" },
    { "variance", 0, 0, G_OPTION_ARG_STRING, &variance,
      "Reverse variance(s) the bound is taken under, comma-separated, from "
      "the same network passes: auto, learned, fixed-small, fixed-large; "
      "default auto (learned for learn_sigma models, else fixed-large)",
      "KIND" },
    { "no-clip", 0, 0, G_OPTION_ARG_NONE, &no_clip,
      "Do not clip the predicted x0 to [-1,1] (calc_bpd_loop clips by default)",
      NULL },
    { "batch", 'b', 0, G_OPTION_ARG_INT, &batch,
      "Images per network pass; default 8", "K" },
    { "threads", 't', 0, G_OPTION_ARG_INT, &threads,
      "Threads; default: as many as OpenBLAS would use (OPENBLAS_NUM_THREADS, "
      "else the cores)",
      "N" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out_path,
      "Write the per-t terms, per-image totals and MSEs as JSON", "FILE" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &quiet, "No progress on stderr",
      NULL },
    { NULL }
  };
  g_autoptr (GOptionContext) context =
      g_option_context_new ("- the variational bound (negative log-likelihood) "
                            "in bits per dimension");
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  g_autoptr (DiffuseNllResult) result = NULL;
  g_autofree float *x = NULL, *noise = NULL;
  g_autofree gint *labels = NULL;
  DiffuseVarianceKind kinds[DIFFUSE_VARIANCE_COUNT];
  gint n_kinds = 0, count = 0, h = 0, w = 0;
  guint64 seed = 0;
  const DiffuseModelConfig *cfg;
  DiffuseNllParams params;
  Progress progress = { FALSE, isatty (2), 0 };

  g_option_context_add_main_entries (context, entries, NULL);
  if (!cli_parse (context, &argc, &argv))
    return CLI_EXIT_USAGE;
  progress.quiet = quiet;
  if (argc > 1)
    return cli_usage ("unexpected argument '%s'", argv[1]);
  if (model_path == NULL || input == NULL)
    return cli_usage ("nll needs --model and --input");
  if (variance != NULL && !parse_variances (variance, kinds, &n_kinds))
    return cli_usage (
        "--variance must be a comma-separated list of distinct "
        "kinds (auto, learned, fixed-small, fixed-large), not '%s'",
        variance);
  if (seed_text != NULL &&
      !g_ascii_string_to_unsigned (seed_text, 10, 0, G_MAXUINT64, &seed, NULL))
    return cli_usage ("--seed must be an integer in 0..%" G_GUINT64_FORMAT
                      ", not '%s'",
                      G_MAXUINT64, seed_text);
  if (seed_text != NULL && noise_path != NULL)
    return cli_usage ("--seed and --noise exclude each other");
  /* the output can be written (folder, permissions, a regular target),
   * before any work */
  if (out_path != NULL && !diffuse_output_check (out_path, &error))
    return cli_fail (error);

  model = diffuse_model_new_from_file (model_path, &error);
  if (model == NULL)
    return cli_fail (error);
  cfg = diffuse_model_get_config (model);
  x = load_images (input, cfg, &count, &h, &w, &error);
  if (x == NULL)
    return cli_fail (error);
  if (!parse_labels (model, klass, count, &labels, &error))
    return cli_fail (error);

  diffuse_nll_params_init (&params);
  params.variances = n_kinds > 0 ? kinds : NULL;
  params.n_variances = n_kinds;
  params.clip_denoised = !no_clip;
  params.n_timesteps = timesteps;
  params.labels = labels;
  params.seed = seed;
  params.batch = batch;
  params.n_threads = threads;
  params.progress = on_progress;
  params.user_data = &progress;
  if (!diffuse_nll_params_validate (&params, model, count, h, w, &error))
    return cli_fail (error);
  if (noise_path != NULL)
    {
      noise = load_noise (noise_path, cfg->diffusion_steps, count,
                          cfg->in_channels, h, w, &error);
      if (noise == NULL)
        return cli_fail (error);
      params.noise = noise;
    }

  if (!quiet)
    fprintf (
        stderr, "%d image%s of %d x %d, %s noise, %d of %d timesteps\n", count,
        count == 1 ? "" : "s", w, h, noise != NULL ? "given" : "seeded",
        timesteps > 0 ? timesteps : cfg->diffusion_steps, cfg->diffusion_steps);
  progress.t0 = g_get_monotonic_time ();
  result = diffuse_nll (model, &params, x, count, h, w, &error);
  if (result == NULL)
    return cli_fail (error);
  if (!quiet)
    fprintf (stderr, "done in %.1f s\n",
             (g_get_monotonic_time () - progress.t0) / 1e6);

  print_result (result);
  if (out_path != NULL)
    {
      if (!write_json (out_path, model_path, input, noise_path, seed, !no_clip,
                       result, &error))
        return cli_fail (error);
      if (!quiet)
        printf ("wrote %s\n", out_path);
    }
  return 0;
}
