/* Writes the fuzzer's seed corpus into the directory given (run by hand
 * when the format changes; the output is committed in seeds/). */
#include <stdio.h>
#include <string.h>

#include "diffuse-private.h"
#include "testutil-safetensors.h"

static void
save (const char *dir, const char *name, GBytes *bytes)
{
  g_autofree gchar *path = g_build_filename (dir, name, NULL);
  g_autoptr (GError) error = NULL;

  if (!g_file_set_contents (path, g_bytes_get_data (bytes, NULL),
                            g_bytes_get_size (bytes), &error))
    g_error ("%s", error->message);
  printf ("%s: %" G_GSIZE_FORMAT " bytes\n", path, g_bytes_get_size (bytes));
}

/* The model for cfg with every tensor as BF16 (halves the seed size). */
static GBytes *
bf16_model (const DiffuseModelConfig *cfg, const char *class_names)
{
  g_autoptr (TestSt) f32 = test_st_new ();
  g_autoptr (TestSt) bf = test_st_new ();
  g_autoptr (GBytes) bytes = NULL;
  DiffuseSafetensors *st;

  test_unet_add_tensors (f32, cfg);
  bytes = test_st_serialize (f32);
  st = diffuse__safetensors_open_bytes (g_bytes_get_data (bytes, NULL),
                                        g_bytes_get_size (bytes), NULL);
  test_unet_set_metadata (bf, cfg);
  if (class_names != NULL)
    test_st_set_metadata (bf, "class_names", class_names);
  test_st_add_bf16_of (bf, st);
  diffuse__safetensors_free (st);
  return test_st_serialize (bf);
}

int
main (int argc, char **argv)
{
  DiffuseModelConfig cfg;
  g_autoptr (GBytes) b1 = NULL, b2 = NULL, b3 = NULL, b4 = NULL, b5 = NULL;

  if (argc != 2)
    {
      fprintf (stderr, "usage: %s OUTDIR\n", argv[0]);
      return 1;
    }

  {
    g_autoptr (TestSt) b = test_st_new ();
    const gint64 s2[2] = { 2, 3 }, s1[1] = { 4 }, s0[2] = { 0, 5 };
    const guint16 h[4] = { 0x3c00, 0xc000, 0x7c00, 0x0001 };

    test_st_set_metadata (b, "format", "pt");
    test_st_add_f32 (b, "a", 2, s2, NULL);
    test_st_add_raw (b, "h", "F16", 1, s1, h, sizeof h);
    test_st_add_raw (b, "g", "BF16", 1, s1, h, sizeof h);
    test_st_add_f32 (b, "empty", 2, s0, NULL);
    test_st_add_f32 (b, "scalar", 0, NULL, NULL);
    b1 = test_st_serialize (b);
    save (argv[1], "small-valid.safetensors", b1);
  }
  b2 = test_st_bytes_from_header ("{}      ", NULL, 0);
  save (argv[1], "empty.safetensors", b2);

  /* metadata only: reaches every config check, then fails to bind */
  {
    g_autoptr (TestSt) b = test_st_new ();

    test_unet_config_init (&cfg);
    test_unet_set_metadata (b, &cfg);
    test_st_set_metadata (b, "class_names", "[\"cat\",\"dog\",\"none\"]");
    b3 = test_st_serialize (b);
    save (argv[1], "metadata-only.safetensors", b3);
  }

  /* the smallest whole models: 8 px, one level, 32 channels */
  test_unet_config_init (&cfg);
  cfg.image_size = 8;
  cfg.n_levels = 1;
  cfg.n_attention_resolutions = 0;
  cfg.num_classes = 0;
  cfg.null_class = -1;
  cfg.learn_sigma = FALSE;
  cfg.out_channels = 1;
  cfg.use_scale_shift_norm = FALSE;
  b4 = bf16_model (&cfg, NULL);
  save (argv[1], "model-uncond.safetensors", b4);

  test_unet_config_init (&cfg);
  cfg.image_size = 8;
  cfg.n_levels = 1;
  cfg.attention_resolutions[0] = 8;
  cfg.num_head_channels = 16;
  b5 = bf16_model (&cfg, "[\"cat\",\"dog\",\"none\"]");
  save (argv[1], "model-cond.safetensors", b5);
  return 0;
}
