/* diffuse-gimp-ref: what the plug-in should produce, computed with the
 * engine directly, for the GIMP batch tests to compare pixels against.
 *
 *   diffuse-gimp-ref MODEL OUT.png [--class C] [--steps N] [--sampler S]
 *     [--eta E] [--guidance W] [--variance V] [--seed K] [--count N]
 *     [--index I] [--size HxW] [--init IN.png --strength S] [--out-size HxW]
 *
 * Writes sample I of the batch; --out-size scales it (bilinear) the way
 * the plug-in does when the area's size differs from the sampling size.
 * Settings not given keep the engine's defaults, fitted to the model as
 * the plug-in fits them (diffuse_settings_fit_model: eta 1, guidance 2
 * where the model has a null class, else 0). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffuse.h"

static gchar *opt_class, *opt_sampler, *opt_variance, *opt_size, *opt_init,
    *opt_out_size;
static gint opt_steps = 50, opt_seed, opt_count = 1, opt_index;
/* NAN: not given (the engine's default) */
static gdouble opt_eta = NAN, opt_guidance = NAN, opt_strength = 1.0;

static GOptionEntry entries[] = {
  { "class", 0, 0, G_OPTION_ARG_STRING, &opt_class, "class name or index",
    "C" },
  { "steps", 0, 0, G_OPTION_ARG_INT, &opt_steps, "steps", "N" },
  { "sampler", 0, 0, G_OPTION_ARG_STRING, &opt_sampler, "ddim or ddpm", "S" },
  { "eta", 0, 0, G_OPTION_ARG_DOUBLE, &opt_eta, "DDIM eta", "E" },
  { "guidance", 0, 0, G_OPTION_ARG_DOUBLE, &opt_guidance, "guidance w", "W" },
  { "variance", 0, 0, G_OPTION_ARG_STRING, &opt_variance, "variance kind",
    "V" },
  { "seed", 0, 0, G_OPTION_ARG_INT, &opt_seed, "seed", "K" },
  { "count", 0, 0, G_OPTION_ARG_INT, &opt_count, "batch size", "N" },
  { "index", 0, 0, G_OPTION_ARG_INT, &opt_index, "sample of the batch to write",
    "I" },
  { "size", 0, 0, G_OPTION_ARG_STRING, &opt_size, "sampling size", "HxW" },
  { "init", 0, 0, G_OPTION_ARG_FILENAME, &opt_init, "img2img input PNG", "IN" },
  { "strength", 0, 0, G_OPTION_ARG_DOUBLE, &opt_strength, "img2img strength",
    "S" },
  { "out-size", 0, 0, G_OPTION_ARG_STRING, &opt_out_size, "scale the result",
    "HxW" },
  { NULL }
};

static gboolean
parse_size (const char *s, gint *h, gint *w)
{
  return s != NULL && sscanf (s, "%dx%d", h, w) == 2 && *h > 0 && *w > 0;
}

int
main (int argc, char **argv)
{
  g_autoptr (GOptionContext) ctx = g_option_context_new ("MODEL OUT.png");
  g_autoptr (DiffuseModel) model = NULL;
  g_autofree float *out = NULL, *init = NULL, *scaled = NULL;
  const DiffuseModelConfig *cfg;
  DiffuseSampleParams params;
  GError *error = NULL;
  gint h, w, c, oh, ow, label = -1;
  gsize n;

  g_option_context_add_main_entries (ctx, entries, NULL);
  if (!g_option_context_parse (ctx, &argc, &argv, &error) || argc != 3)
    {
      fprintf (stderr, "diffuse-gimp-ref: %s\n",
               error != NULL
                   ? error->message
                   : "usage: diffuse-gimp-ref MODEL OUT.png [options]");
      return 2;
    }
  model = diffuse_model_new_from_file (argv[1], &error);
  if (model == NULL)
    goto fail;
  cfg = diffuse_model_get_config (model);
  c = cfg->in_channels;
  h = w = cfg->image_size;
  if (opt_size != NULL && !parse_size (opt_size, &h, &w))
    {
      fprintf (stderr, "diffuse-gimp-ref: bad --size '%s'\n", opt_size);
      return 2;
    }
  if (cfg->num_classes > 0)
    {
      if (opt_class == NULL || opt_class[0] == '\0')
        label = cfg->null_class >= 0 ? cfg->null_class : 0;
      else if (!diffuse_model_find_class (model, opt_class, &label, &error))
        goto fail;
    }

  diffuse_sample_params_init (&params);
  if (opt_sampler != NULL &&
      !diffuse_sampler_kind_from_string (opt_sampler, &params.sampler))
    {
      fprintf (stderr, "diffuse-gimp-ref: bad --sampler\n");
      return 2;
    }
  if (opt_variance != NULL &&
      !diffuse_variance_kind_from_string (opt_variance, &params.variance))
    {
      fprintf (stderr, "diffuse-gimp-ref: bad --variance\n");
      return 2;
    }
  params.steps = opt_steps;
  if (!isnan (opt_eta))
    params.eta = opt_eta;
  if (!isnan (opt_guidance))
    params.guidance = opt_guidance;
  else
    {
      gint index;

      /* every setting but guidance counts as given */
      diffuse_setting_find ("guidance", &index);
      diffuse_settings_fit_model (&params, ~(1u << index), model);
    }
  params.class_label = label;
  params.seed = (guint64) opt_seed;
  params.count = opt_count;
  params.height = h;
  params.width = w;
  if (opt_init != NULL)
    {
      gint ih, iw;

      init = diffuse_png_load (opt_init, c, NULL, &ih, &iw, &error);
      if (init == NULL)
        goto fail;
      if (ih != h || iw != w)
        {
          float *r = g_new (float, (gsize) c *h *w);

          diffuse_resample (init, c, ih, iw, r, h, w,
                            DIFFUSE_RESAMPLE_BILINEAR);
          g_free (init);
          init = r;
        }
      params.init_image = init;
      params.strength = opt_strength;
    }

  n = (gsize) c * h * w;
  out = g_new (float, n *opt_count);
  if (!diffuse_sample (model, &params, out, NULL, &error))
    goto fail;
  if (opt_index < 0 || opt_index >= opt_count)
    {
      fprintf (stderr, "diffuse-gimp-ref: --index out of range\n");
      return 2;
    }
  oh = h;
  ow = w;
  if (opt_out_size != NULL)
    {
      if (!parse_size (opt_out_size, &oh, &ow))
        {
          fprintf (stderr, "diffuse-gimp-ref: bad --out-size\n");
          return 2;
        }
      scaled = g_new (float, (gsize) c *oh *ow);
      diffuse_resample (out + n * opt_index, c, h, w, scaled, oh, ow,
                        DIFFUSE_RESAMPLE_BILINEAR);
    }
  if (!diffuse_png_save (argv[2], scaled != NULL ? scaled : out + n * opt_index,
                         c, oh, ow, &error))
    goto fail;
  return 0;

fail:
  fprintf (stderr, "diffuse-gimp-ref: %s\n", error->message);
  g_error_free (error);
  return 1;
}
