/* Loading DiffuseModel: metadata validation, tensor binding, class lookup.
 *
 * The files are built by tests/testutil-safetensors.c, whose UNet tensor
 * list is enumerated independently of engine/unet.c; the golden models
 * written by PyTorch (tests/data/golden) are checked against that list
 * too. */
#include <math.h>
#include <string.h>

#include <glib/gstdio.h>

#include "diffuse-private.h"
#include "testutil-safetensors.h"

#define NAME "model.safetensors"

/* A model and the bytes it maps. */
typedef struct
{
  GBytes *bytes;
  DiffuseModel *model;
} Loaded;

static void
loaded_free (Loaded *l)
{
  if (l == NULL)
    return;
  diffuse_model_free (l->model);
  g_bytes_unref (l->bytes);
  g_free (l);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Loaded, loaded_free)

static Loaded *
load (const TestSt *b, GError **error)
{
  Loaded *l = g_new0 (Loaded, 1);

  l->bytes = test_st_serialize (b);
  l->model =
      diffuse__model_new_from_bytes (g_bytes_get_data (l->bytes, NULL),
                                     g_bytes_get_size (l->bytes), NAME, error);
  if (l->model == NULL)
    {
      loaded_free (l);
      return NULL;
    }
  return l;
}

static TestSt *
model_builder (const DiffuseModelConfig *cfg, guint64 *n_params)
{
  TestSt *b = test_st_new ();
  guint64 n;

  test_unet_set_metadata (b, cfg);
  test_st_set_metadata (b, "description", "a test model");
  n = test_unet_add_tensors (b, cfg);
  if (n_params != NULL)
    *n_params = n;
  return b;
}

/* Expects loading to fail with code and a message that starts with the
 * model name and contains want. */
static void
expect_load_error (const TestSt *b, gint code, const char *want)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (Loaded) l = load (b, &error);

  g_assert_null (l);
  g_assert_nonnull (error);
  g_test_message ("error: %s", error->message);
  if (error->domain != DIFFUSE_ERROR || error->code != code ||
      !g_str_has_prefix (error->message, NAME ": ") ||
      strstr (error->message, want) == NULL)
    g_error ("got error %d \"%s\", want %d containing \"%s\"", error->code,
             error->message, code, want);
}

static void
assert_config_equal (const DiffuseModelConfig *a, const DiffuseModelConfig *b)
{
  gint i;

  g_assert_cmpint (a->image_size, ==, b->image_size);
  g_assert_cmpint (a->in_channels, ==, b->in_channels);
  g_assert_cmpint (a->model_channels, ==, b->model_channels);
  g_assert_cmpint (a->out_channels, ==, b->out_channels);
  g_assert_cmpint (a->num_res_blocks, ==, b->num_res_blocks);
  g_assert_cmpint (a->n_levels, ==, b->n_levels);
  for (i = 0; i < a->n_levels; i++)
    {
      g_assert_cmpfloat (a->channel_mult[i], ==, b->channel_mult[i]);
      /* guided-diffusion: int(mult * model_channels) */
      g_assert_cmpint (a->level_channels[i], ==,
                       (gint) (b->channel_mult[i] * b->model_channels));
    }
  g_assert_cmpint (a->n_attention_resolutions, ==, b->n_attention_resolutions);
  for (i = 0; i < a->n_attention_resolutions; i++)
    g_assert_cmpint (a->attention_resolutions[i], ==,
                     b->attention_resolutions[i]);
  g_assert_cmpint (a->num_heads, ==, b->num_heads);
  g_assert_cmpint (a->num_head_channels, ==, b->num_head_channels);
  g_assert_cmpint (a->num_heads_upsample, ==, b->num_heads_upsample);
  g_assert_cmpint (a->use_scale_shift_norm, ==, b->use_scale_shift_norm);
  g_assert_cmpint (a->resblock_updown, ==, b->resblock_updown);
  g_assert_cmpint (a->use_new_attention_order, ==, b->use_new_attention_order);
  g_assert_cmpint (a->learn_sigma, ==, b->learn_sigma);
  g_assert_cmpint (a->num_classes, ==, b->num_classes);
  g_assert_cmpint (a->null_class, ==, b->null_class);
  g_assert_cmpint (a->diffusion_steps, ==, b->diffusion_steps);
  g_assert_cmpint (a->noise_schedule, ==, b->noise_schedule);
  g_assert_cmpint (a->rescale_timesteps, ==, b->rescale_timesteps);
}

static void
test_valid (void)
{
  DiffuseModelConfig cfg;
  guint64 n_params;
  g_autoptr (TestSt) b = NULL;
  g_autoptr (Loaded) l = NULL;
  g_autoptr (GError) error = NULL;
  DiffuseSafetensors *st;
  const gint64 shape[1] = { 2 }, wrong[1] = { 3 };
  const float *p;

  test_unet_config_init (&cfg);
  b = model_builder (&cfg, &n_params);
  l = load (b, &error);
  g_assert_no_error (error);
  assert_config_equal (diffuse_model_get_config (l->model), &cfg);
  g_assert_cmpuint (diffuse_model_get_n_params (l->model), ==, n_params);
  g_assert_nonnull (diffuse__model_get_weights (l->model));
  g_assert_null (diffuse_model_get_class_name (l->model, 0));

  /* lookups give the file's values */
  st = diffuse__safetensors_open_bytes (g_bytes_get_data (l->bytes, NULL),
                                        g_bytes_get_size (l->bytes), &error);
  g_assert_no_error (error);
  p = diffuse__model_tensor (l->model, "out.2.bias", 1, shape, &error);
  g_assert_no_error (error);
  g_assert_cmpmem (p, 2 * sizeof (float),
                   diffuse__safetensors_get (st, "out.2.bias")->data,
                   2 * sizeof (float));
  diffuse__safetensors_free (st);
  g_assert_null (
      diffuse__model_tensor (l->model, "out.2.bias", 1, wrong, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL);
  g_assert_cmpstr (error->message, ==,
                   NAME ": tensor 'out.2.bias' has shape [2], expected [3]");
  g_clear_error (&error);
  g_assert_null (diffuse__model_tensor (l->model, "nope", 1, shape, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL);
  g_assert_cmpstr (error->message, ==, NAME ": tensor 'nope' is missing");
  g_clear_error (&error);

  /* sizes: positive multiples of 2^(levels-1) = 2 */
  g_assert_true (diffuse_model_check_size (l->model, 16, 16, NULL));
  g_assert_true (diffuse_model_check_size (l->model, 2, 30, NULL));
  g_assert_false (diffuse_model_check_size (l->model, 15, 16, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_assert_nonnull (strstr (error->message, "multiples of 2"));
  g_clear_error (&error);
  g_assert_false (diffuse_model_check_size (l->model, 16, 0, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_clear_error (&error);
  g_assert_false (diffuse_model_check_size (l->model, -2, 16, NULL));
  diffuse_model_free (NULL);
}

static void
test_from_file (void)
{
  DiffuseModelConfig cfg;
  g_autoptr (TestSt) b = NULL;
  g_autofree gchar *path = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  guint64 n_params;

  test_unet_config_init (&cfg);
  b = model_builder (&cfg, &n_params);
  path = test_st_write_temp (b);
  model = diffuse_model_new_from_file (path, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (diffuse_model_get_n_params (model), ==, n_params);
  g_unlink (path);
  g_assert_null (diffuse_model_new_from_file (path, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
}

/* diffuse_model_file_read_config: the header's configuration, the same
 * as a load gives, without touching the weights (a NaN weight that a
 * load refuses passes), and the load's errors for the metadata. */
static void
test_read_config (void)
{
  DiffuseModelConfig cfg, got;
  g_autoptr (TestSt) b = NULL;
  g_autoptr (TestSt) nan_b = NULL;
  g_autoptr (TestSt) bad = NULL;
  g_autofree gchar *path = NULL, *nan_path = NULL, *bad_path = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (DiffuseModel) model = NULL;
  const gint64 shape[2] = { 3, 128 };
  float data[3 * 128] = { 0 };

  test_unet_config_init (&cfg);
  b = model_builder (&cfg, NULL);
  path = test_st_write_temp (b);
  memset (&got, 0xab, sizeof got);
  g_assert_true (diffuse_model_file_read_config (path, &got, &error));
  g_assert_no_error (error);
  model = diffuse_model_new_from_file (path, &error);
  g_assert_no_error (error);
  assert_config_equal (&got, diffuse_model_get_config (model));
  assert_config_equal (&got, &cfg);
  g_assert_cmpint (got.model_type, ==, DIFFUSE_MODEL_UNET);
  g_assert_cmpint (got.pool, ==, DIFFUSE_POOL_NONE);

  /* the weights are not read: a NaN passes here, not in a load */
  nan_b = model_builder (&cfg, NULL);
  data[5] = NAN;
  g_assert_true (test_st_remove (nan_b, "label_emb.weight"));
  test_st_add_f32 (nan_b, "label_emb.weight", 2, shape, data);
  nan_path = test_st_write_temp (nan_b);
  g_assert_true (diffuse_model_file_read_config (nan_path, &got, &error));
  g_assert_no_error (error);
  g_assert_null (diffuse_model_new_from_file (nan_path, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL);
  g_clear_error (&error);

  /* bad metadata: the load's error */
  bad = model_builder (&cfg, NULL);
  test_st_set_metadata (bad, "model_type", "vae");
  bad_path = test_st_write_temp (bad);
  g_assert_false (diffuse_model_file_read_config (bad_path, &got, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL);
  g_assert_nonnull (strstr (error->message, "neither \"unet\" nor"));
  g_clear_error (&error);

  /* not a safetensors file, and a missing one */
  g_assert_false (diffuse_model_file_read_config (
      g_getenv ("DIFFUSE_TEST_DATA"), &got, &error));
  g_assert_nonnull (error);
  g_clear_error (&error);
  g_unlink (path);
  g_assert_false (diffuse_model_file_read_config (path, &got, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_IO);
  g_unlink (nan_path);
  g_unlink (bad_path);
}

static void
check_variant (const DiffuseModelConfig *cfg, const DiffuseModelConfig *want)
{
  guint64 n_params;
  g_autoptr (TestSt) b = model_builder (cfg, &n_params);
  g_autoptr (GError) error = NULL;
  g_autoptr (Loaded) l = load (b, &error);

  g_assert_no_error (error);
  assert_config_equal (diffuse_model_get_config (l->model), want);
  g_assert_cmpuint (diffuse_model_get_n_params (l->model), ==, n_params);
}

static void
test_variants (void)
{
  DiffuseModelConfig cfg, want;

  /* num_head_channels overrides the head counts */
  test_unet_config_init (&cfg);
  cfg.num_head_channels = 16;
  cfg.num_heads = 4;
  cfg.num_heads_upsample = 2;
  want = cfg;
  want.num_heads = -1;
  want.num_heads_upsample = -1;
  check_variant (&cfg, &want);

  /* unconditional, up/down ResBlocks, no scale-shift, three levels,
   * attention at two resolutions, different heads on the way up */
  test_unet_config_init (&cfg);
  cfg.image_size = 32;
  cfg.in_channels = 3;
  cfg.out_channels = 3;
  cfg.learn_sigma = FALSE;
  cfg.num_res_blocks = 2;
  cfg.n_levels = 3;
  cfg.channel_mult[2] = 3;
  cfg.n_attention_resolutions = 2;
  cfg.attention_resolutions[0] = 16;
  cfg.attention_resolutions[1] = 8;
  cfg.num_heads = 1;
  cfg.num_heads_upsample = 4;
  cfg.use_scale_shift_norm = FALSE;
  cfg.resblock_updown = TRUE;
  cfg.use_new_attention_order = TRUE;
  cfg.num_classes = 0;
  cfg.null_class = -1;
  cfg.diffusion_steps = 1000;
  cfg.noise_schedule = DIFFUSE_SCHEDULE_LINEAR;
  cfg.rescale_timesteps = TRUE;
  check_variant (&cfg, &cfg);

  /* RGBA, attention nowhere but the middle block, one level */
  test_unet_config_init (&cfg);
  cfg.in_channels = 4;
  cfg.out_channels = 8;
  cfg.image_size = 8;
  cfg.n_levels = 1;
  cfg.n_attention_resolutions = 0;
  cfg.model_channels = 64;
  cfg.null_class = -1;
  check_variant (&cfg, &cfg);

  /* fractional channel_mult, as guided-diffusion's 512 px model
   * (0.5,1,1,2,2,4,4): 64 channels -> 32, 64, 64, 128 */
  test_unet_config_init (&cfg);
  cfg.model_channels = 64;
  cfg.n_levels = 4;
  cfg.channel_mult[0] = 0.5;
  cfg.channel_mult[1] = 1;
  cfg.channel_mult[2] = 1;
  cfg.channel_mult[3] = 2;
  check_variant (&cfg, &cfg);
  {
    g_autoptr (TestSt) b = model_builder (&cfg, NULL);
    g_autoptr (GError) error = NULL;
    g_autoptr (Loaded) l = load (b, &error);
    const DiffuseModelConfig *c;

    g_assert_no_error (error);
    c = diffuse_model_get_config (l->model);
    g_assert_cmpint (c->level_channels[0], ==, 32);
    g_assert_cmpint (c->level_channels[3], ==, 128);
    /* a 16 px model with 4 levels runs at multiples of 8 */
    g_assert_true (diffuse_model_check_size (l->model, 8, 24, NULL));
    g_assert_false (diffuse_model_check_size (l->model, 12, 16, NULL));
  }

  /* int() truncates: 0.51 x 64 = 32.64 -> 32 channels; 1.5 x 64 = 96 */
  test_unet_config_init (&cfg);
  cfg.model_channels = 64;
  cfg.channel_mult[0] = 0.51;
  cfg.channel_mult[1] = 1.5;
  check_variant (&cfg, &cfg);
}

static void
test_missing_metadata (void)
{
  static const char *const required[] = {
    "image_size",
    "in_channels",
    "model_channels",
    "out_channels",
    "num_res_blocks",
    "attention_resolutions",
    "channel_mult",
    "num_heads",
    "num_head_channels",
    "num_heads_upsample",
    "use_scale_shift_norm",
    "resblock_updown",
    "use_new_attention_order",
    "learn_sigma",
    "num_classes",
    "diffusion_steps",
    "noise_schedule",
  };
  DiffuseModelConfig cfg;
  guint i;

  test_unet_config_init (&cfg);
  for (i = 0; i < G_N_ELEMENTS (required); i++)
    {
      g_autoptr (TestSt) b = model_builder (&cfg, NULL);
      g_autofree gchar *want =
          g_strdup_printf ("metadata lacks \"%s\"", required[i]);

      test_st_set_metadata (b, required[i], NULL);
      expect_load_error (b, DIFFUSE_ERROR_MODEL, want);
    }

  /* optional: rescale_timesteps (False), null_class (none), class_names */
  {
    g_autoptr (TestSt) b = model_builder (&cfg, NULL);
    g_autoptr (GError) error = NULL;
    g_autoptr (Loaded) l = NULL;

    cfg.rescale_timesteps = TRUE;
    test_unet_set_metadata (b, &cfg);
    test_st_set_metadata (b, "rescale_timesteps", NULL);
    test_st_set_metadata (b, "null_class", NULL);
    test_st_set_metadata (b, "description", NULL);
    l = load (b, &error);
    g_assert_no_error (error);
    g_assert_false (diffuse_model_get_config (l->model)->rescale_timesteps);
    g_assert_cmpint (diffuse_model_get_config (l->model)->null_class, ==, -1);
  }
  /* no metadata at all */
  {
    g_autoptr (TestSt) b = test_st_new ();

    test_unet_add_tensors (b, &cfg);
    expect_load_error (b, DIFFUSE_ERROR_MODEL, "metadata lacks \"image_size\"");
  }
}

static void
test_bad_metadata (void)
{
  /* key, value, part of the expected message; applied to the default
   * config (16 px, 1 -> 2 channels, 32 ch, mult 1,2, attention at 8,
   * 2 heads, 3 classes, null class 2) */
  static const char *const cases[][3] = {
    { "image_size", "7", "image_size = \"7\" is not an integer in 8..1024" },
    { "image_size", "2048", "in 8..1024" },
    { "image_size", "abc", "image_size = \"abc\"" },
    { "image_size", "16 ", "image_size = \"16 \"" },
    { "image_size", "0x10", "image_size" },
    { "image_size", "", "image_size" },
    { "image_size", "99999999999999999999", "image_size" },
    { "image_size", "12",
      "attention resolution 8 is not one the UNet passes through" },
    { "in_channels", "5", "in_channels = \"5\" is not an integer in 1..4" },
    { "in_channels", "0", "in 1..4" },
    { "out_channels", "1",
      "out_channels 1 does not match in_channels 1 with learn_sigma "
      "True (expected 2)" },
    { "learn_sigma", "False", "expected 1" },
    { "model_channels", "48",
      "model_channels 48 is not a multiple of the 32 GroupNorm" },
    { "model_channels", "16", "in 32..4096" },
    { "num_res_blocks", "0", "num_res_blocks = \"0\"" },
    { "num_res_blocks", "17", "in 1..16" },
    { "channel_mult", "", "metadata channel_mult is empty" },
    { "channel_mult", "1,2,2,2,2,2,2,2,2", "has 9 entries, at most 8" },
    { "channel_mult", "1,0", "entry 2 (\"0\") is not a number in (0, 16]" },
    { "channel_mult", "1,0.0", "entry 2 (\"0.0\") is not a number in (0, 16]" },
    { "channel_mult", "1,-2", "entry 2 (\"-2\") is not a number" },
    { "channel_mult", "1,17", "entry 2 (\"17\") is not a number in (0, 16]" },
    { "channel_mult", "1,x", "entry 2 (\"x\")" },
    { "channel_mult", "1,nan", "entry 2 (\"nan\")" },
    { "channel_mult", "1,inf", "entry 2 (\"inf\")" },
    { "channel_mult", "1,1e1", "entry 2 (\"1e1\")" },
    { "channel_mult", "1,0x2", "entry 2 (\"0x2\")" },
    { "channel_mult", "1,1.2.3", "entry 2 (\"1.2.3\")" },
    { "channel_mult", "1,.", "entry 2 (\".\")" },
    { "channel_mult", "1,2.5",
      "channel_mult 2.5 x model_channels 32 = 80 channels "
      "(entry 2), not a positive multiple of the 32 GroupNorm groups" },
    { "channel_mult", "0.5,1", "= 16 channels (entry 1)" },
    { "channel_mult", "0.01,1", "= 0 channels (entry 1)" },
    { "channel_mult", "1,,2", "entry 2" },
    { "channel_mult", "1,2,2,2,2,2", "image_size 16 cannot be halved 5 times" },
    { "attention_resolutions", "5",
      "attention resolution 5 is not one the UNet passes" },
    { "attention_resolutions", "32", "attention resolution 32" },
    { "attention_resolutions", "4", "attention resolution 4" },
    { "attention_resolutions", "8,8",
      "attention resolution 8 is listed twice" },
    { "attention_resolutions", "0", "entry 1 (\"0\")" },
    { "num_heads", "3",
      "num_heads 3 does not divide the 64 channels of the attention "
      "block at resolution 8" },
    { "num_heads", "0", "num_heads 0 must be positive" },
    { "num_heads", "-1", "num_heads -1 must be positive" },
    { "num_heads_upsample", "3",
      "num_heads_upsample 3 does not divide the 64 channels" },
    { "num_heads_upsample", "0",
      "num_heads_upsample 0 is neither -1 nor positive" },
    { "num_head_channels", "24",
      "num_head_channels 24 does not divide the 64 channels" },
    { "num_head_channels", "0",
      "num_head_channels 0 is neither -1 nor positive" },
    { "num_head_channels", "-2",
      "num_head_channels = \"-2\" is not an integer in -1..4096" },
    { "use_scale_shift_norm", "yes",
      "use_scale_shift_norm = \"yes\" is not True or False" },
    { "resblock_updown", "TRUE", "resblock_updown = \"TRUE\"" },
    { "learn_sigma", "", "learn_sigma = \"\"" },
    { "rescale_timesteps", "maybe", "rescale_timesteps = \"maybe\"" },
    { "num_classes", "-1",
      "num_classes = \"-1\" is not an integer in 0..100000" },
    { "num_classes", "many", "num_classes" },
    { "null_class", "3", "null_class = \"3\" is not a class index in 0..2" },
    { "null_class", "-1", "null_class = \"-1\"" },
    { "diffusion_steps", "0",
      "diffusion_steps = \"0\" is not an integer in 1..100000" },
    { "diffusion_steps", "100001", "diffusion_steps" },
    { "noise_schedule", "quadratic",
      "noise_schedule = \"quadratic\" is neither" },
    { "class_names", "cat,dog", "class_names is not a JSON array of strings" },
    { "class_names", "{\"a\":\"b\"}", "class_names is not a JSON array" },
    { "class_names", "[1]", "class_names: entry 0 is not a string" },
    { "class_names", "[\"a\",[\"b\"]]",
      "class_names is not a JSON array of strings" },
    { "class_names", "[\"a\",null]", "class_names: entry 1 is not a string" },
    { "class_names", "[\"a\",\"b\",\"c\",\"d\"]",
      "class_names has 4 names for 3 classes" },
    { "class_names", "[\"cat\",\"Cat\"]",
      "class_names: \"Cat\" appears twice" },
    { "class_names", "[\"\"]", "class_names: entry 0 is empty" },
    { "class_names", "[[\"a\"]]",
      "class_names is not a JSON array of strings" },
    { "class_names", "['a']", "class_names is not a JSON array of strings" },
  };
  DiffuseModelConfig cfg;
  guint i;

  test_unet_config_init (&cfg);
  for (i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (TestSt) b = model_builder (&cfg, NULL);

      test_st_set_metadata (b, cases[i][0], cases[i][1]);
      expect_load_error (b, DIFFUSE_ERROR_MODEL, cases[i][2]);
    }

  /* null_class on an unconditional model */
  {
    g_autoptr (TestSt) b = NULL;

    cfg.num_classes = 0;
    cfg.null_class = -1;
    b = model_builder (&cfg, NULL);
    test_st_set_metadata (b, "null_class", "0");
    expect_load_error (b, DIFFUSE_ERROR_MODEL,
                       "null_class is set but the model is "
                       "unconditional");
  }
}

static void
test_booleans (void)
{
  static const char *const spellings[][2] = {
    { "True", "1" },  { "true", "1" },  { "1", "1" },
    { "False", "0" }, { "false", "0" }, { "0", "0" },
  };
  DiffuseModelConfig cfg;
  guint i;

  test_unet_config_init (&cfg);
  for (i = 0; i < G_N_ELEMENTS (spellings); i++)
    {
      g_autoptr (TestSt) b = model_builder (&cfg, NULL);
      g_autoptr (GError) error = NULL;
      g_autoptr (Loaded) l = NULL;

      test_st_set_metadata (b, "rescale_timesteps", spellings[i][0]);
      test_st_set_metadata (b, "use_new_attention_order", spellings[i][0]);
      l = load (b, &error);
      g_assert_no_error (error);
      g_assert_cmpint (diffuse_model_get_config (l->model)->rescale_timesteps,
                       ==, spellings[i][1][0] == '1');
      g_assert_cmpint (
          diffuse_model_get_config (l->model)->use_new_attention_order, ==,
          spellings[i][1][0] == '1');
    }
}

static void
test_missing_tensor (void)
{
  DiffuseModelConfig cfg;
  g_autoptr (TestSt) all = NULL;
  guint i, n;

  test_unet_config_init (&cfg);
  all = model_builder (&cfg, NULL);
  n = test_st_get_n_tensors (all);
  /* every 5th tensor, and the last */
  for (i = 0; i < n; i = (i + 5 < n || i == n - 1) ? i + 5 : n - 1)
    {
      g_autoptr (TestSt) b = model_builder (&cfg, NULL);
      const char *name = test_st_get_name (all, i);
      g_autofree gchar *want = g_strdup_printf ("'%s'", name);

      g_assert_true (test_st_remove (b, name));
      expect_load_error (b, DIFFUSE_ERROR_MODEL, want);
    }
}

/* A NaN or Inf weight (F32, or BF16 through the conversion) is refused
 * at load, naming the tensor: it would make every image NaN. */
static void
test_non_finite_weights (void)
{
  const float bad_values[] = { NAN, INFINITY, -INFINITY };
  const gint64 shape[2] = { 3, 128 };
  DiffuseModelConfig cfg;

  test_unet_config_init (&cfg);
  for (guint k = 0; k < G_N_ELEMENTS (bad_values); k++)
    {
      g_autoptr (TestSt) b = model_builder (&cfg, NULL);
      float data[3 * 128] = { 0 };

      data[77] = bad_values[k];
      g_assert_true (test_st_remove (b, "label_emb.weight"));
      test_st_add_f32 (b, "label_emb.weight", 2, shape, data);
      expect_load_error (b, DIFFUSE_ERROR_MODEL,
                         "tensor 'label_emb.weight' "
                         "holds a non-finite value");
      expect_load_error (b, DIFFUSE_ERROR_MODEL, "at index 77");
    }
  {
    g_autoptr (TestSt) b = model_builder (&cfg, NULL);
    guint16 data[3 * 128] = { 0 };

    data[5] = 0x7fc0; /* bf16 NaN */
    g_assert_true (test_st_remove (b, "label_emb.weight"));
    test_st_add_raw (b, "label_emb.weight", "BF16", 2, shape, data,
                     sizeof data);
    expect_load_error (b, DIFFUSE_ERROR_MODEL,
                       "tensor 'label_emb.weight' "
                       "holds a non-finite value (nan) at index 5");
  }
}

static void
test_wrong_shape (void)
{
  DiffuseModelConfig cfg;

  test_unet_config_init (&cfg);
  {
    g_autoptr (TestSt) b = model_builder (&cfg, NULL);
    const gint64 shape[4] = { 32, 16, 3, 3 };

    g_assert_true (
        test_st_reshape (b, "input_blocks.1.0.in_layers.2.weight", 4, shape));
    expect_load_error (b, DIFFUSE_ERROR_MODEL,
                       "tensor 'input_blocks.1.0.in_layers.2.weight' has shape "
                       "[32, 16, 3, 3], expected [32, 32, 3, 3]");
  }
  {
    g_autoptr (TestSt) b = model_builder (&cfg, NULL);
    const gint64 shape[3] = { 3, 128, 1 };

    g_assert_true (test_st_reshape (b, "label_emb.weight", 3, shape));
    expect_load_error (b, DIFFUSE_ERROR_MODEL,
                       "tensor 'label_emb.weight' has shape "
                       "[3, 128, 1], expected [3, 128]");
  }
  {
    /* the file's class count disagrees with its metadata */
    g_autoptr (TestSt) b = model_builder (&cfg, NULL);

    test_st_set_metadata (b, "num_classes", "4");
    expect_load_error (b, DIFFUSE_ERROR_MODEL,
                       "tensor 'label_emb.weight' has shape "
                       "[3, 128], expected [4, 128]");
  }
  {
    /* a model without scale-shift where one was declared */
    g_autoptr (TestSt) b = NULL;

    cfg.use_scale_shift_norm = FALSE;
    b = model_builder (&cfg, NULL);
    test_st_set_metadata (b, "use_scale_shift_norm", "True");
    expect_load_error (b, DIFFUSE_ERROR_MODEL,
                       ".emb_layers.1.weight' has shape [");
  }
}

static void
test_unexpected_tensor (void)
{
  DiffuseModelConfig cfg;

  test_unet_config_init (&cfg);
  {
    g_autoptr (TestSt) b = model_builder (&cfg, NULL);
    const gint64 shape[1] = { 4 };

    test_st_add_f32 (b, "extra.weight", 1, shape, NULL);
    expect_load_error (b, DIFFUSE_ERROR_MODEL,
                       "unexpected tensor 'extra.weight'");
  }
  {
    /* a conditional file read as unconditional */
    g_autoptr (TestSt) b = model_builder (&cfg, NULL);

    test_st_set_metadata (b, "num_classes", "0");
    test_st_set_metadata (b, "null_class", NULL);
    expect_load_error (b, DIFFUSE_ERROR_MODEL,
                       "unexpected tensor 'label_emb.weight'");
  }
  {
    /* attention tensors where the metadata has none (at full resolution,
     * where no Upsample index shifts with them) */
    g_autoptr (TestSt) b = NULL;

    cfg.attention_resolutions[0] = 16;
    b = model_builder (&cfg, NULL);
    test_st_set_metadata (b, "attention_resolutions", "");
    expect_load_error (b, DIFFUSE_ERROR_MODEL,
                       "unexpected tensor 'input_blocks.1.1.norm.");
  }
}

/* The whole model as BF16 (conversion is exact to check: the top 16 bits
 * of the F32 pattern). */
static void
test_bf16_model (void)
{
  DiffuseModelConfig cfg;
  guint64 n_params;
  g_autoptr (TestSt) f32 = NULL;
  g_autoptr (TestSt) bf = test_st_new ();
  g_autoptr (GBytes) f32_bytes = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (Loaded) l = NULL;
  DiffuseSafetensors *st;
  guint i;

  test_unet_config_init (&cfg);
  f32 = model_builder (&cfg, &n_params);
  f32_bytes = test_st_serialize (f32);
  st = diffuse__safetensors_open_bytes (g_bytes_get_data (f32_bytes, NULL),
                                        g_bytes_get_size (f32_bytes), &error);
  g_assert_no_error (error);
  test_unet_set_metadata (bf, &cfg);
  test_st_add_bf16_of (bf, st);
  l = load (bf, &error);
  g_assert_no_error (error);
  g_assert_cmpuint (diffuse_model_get_n_params (l->model), ==, n_params);
  for (i = 0; i < diffuse__safetensors_get_n_tensors (st); i++)
    {
      const DiffuseTensorInfo *t = diffuse__safetensors_get_nth (st, i);
      const float *got =
          diffuse__model_tensor (l->model, t->name, t->ndim, t->shape, &error);
      gint64 k;

      g_assert_no_error (error);
      for (k = 0; k < t->n_elements; k++)
        {
          guint32 a, b;

          memcpy (&a, &got[k], 4);
          memcpy (&b, &t->data[k], 4);
          g_assert_cmphex (a, ==, b & 0xffff0000u);
        }
    }
  diffuse__safetensors_free (st);
}

static void
test_truncated (void)
{
  DiffuseModelConfig cfg;
  g_autoptr (TestSt) b = NULL;
  g_autoptr (GBytes) file = NULL;
  gsize len, header_end, i;
  const guint8 *p;

  test_unet_config_init (&cfg);
  b = model_builder (&cfg, NULL);
  file = test_st_serialize (b);
  p = g_bytes_get_data (file, &len);
  header_end = 8 + (gsize) GUINT64_FROM_LE (*(const guint64 *) p);
  /* 40 cuts in the header, 40 in the data */
  for (i = 0; i < 80; i++)
    {
      gsize cut = i < 40 ? header_end * i / 40
                         : header_end + (len - header_end) * (i - 40) / 40;
      g_autofree guint8 *copy = g_memdup2 (p, cut);
      g_autoptr (GError) error = NULL;
      DiffuseModel *model =
          diffuse__model_new_from_bytes (copy, cut, NAME, &error);

      g_assert_null (model);
      g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_FORMAT);
    }
}

static Loaded *
load_with_classes (gint num_classes, gint null_class, const char *names)
{
  DiffuseModelConfig cfg;
  g_autoptr (TestSt) b = NULL;
  g_autoptr (GError) error = NULL;
  Loaded *l;

  test_unet_config_init (&cfg);
  cfg.num_classes = num_classes;
  cfg.null_class = null_class;
  b = model_builder (&cfg, NULL);
  if (names != NULL)
    test_st_set_metadata (b, "class_names", names);
  l = load (b, &error);
  g_assert_no_error (error);
  return l;
}

static void
expect_class (const DiffuseModel *model, const char *text, gint want)
{
  g_autoptr (GError) error = NULL;
  gint got = -100;

  if (!diffuse_model_find_class (model, text, &got, &error))
    g_error ("\"%s\": %s", text, error->message);
  g_assert_cmpint (got, ==, want);
}

static void
expect_no_class (const DiffuseModel *model, const char *text, const char *want)
{
  g_autoptr (GError) error = NULL;
  gint got = -100;

  g_assert_false (diffuse_model_find_class (model, text, &got, &error));
  g_assert_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_INVALID);
  g_test_message ("error: %s", error->message);
  if (strstr (error->message, want) == NULL)
    g_error ("message \"%s\" lacks \"%s\"", error->message, want);
  g_assert_cmpint (got, ==, -100);
}

static void
test_classes (void)
{
  {
    g_autoptr (Loaded) l =
        load_with_classes (3, 2, "[\"Cat\", \"dog\", \"nothing\"]");
    const DiffuseModel *m = l->model;

    g_assert_cmpstr (diffuse_model_get_class_name (m, 0), ==, "Cat");
    g_assert_cmpstr (diffuse_model_get_class_name (m, 2), ==, "nothing");
    g_assert_null (diffuse_model_get_class_name (m, 3));
    g_assert_null (diffuse_model_get_class_name (m, -1));
    expect_class (m, "1", 1);
    expect_class (m, " 0 ", 0);
    expect_class (m, "cat", 0);
    expect_class (m, "CAT", 0);
    expect_class (m, " Dog", 1);
    expect_class (m, "none", 2);
    expect_class (m, "NULL", 2);
    expect_class (m, "nothing", 2);
    expect_no_class (m, "3", "class 3 is out of range 0..2");
    expect_no_class (m, "-1", "out of range");
    expect_no_class (m, "bird",
                     "unknown class \"bird\"; give an index 0..2 or a name "
                     "such as \"Cat\", \"dog\", \"nothing\"");
    expect_no_class (m, "", "unknown class \"\"");
  }
  {
    /* more names than the message shows; some classes unnamed */
    g_autoptr (Loaded) l =
        load_with_classes (8, -1, "[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\"]");

    g_assert_cmpstr (diffuse_model_get_class_name (l->model, 5), ==, "f");
    g_assert_null (diffuse_model_get_class_name (l->model, 6));
    expect_class (l->model, "E", 4);
    expect_class (l->model, "7", 7);
    expect_no_class (l->model, "g",
                     "such as \"a\", \"b\", \"c\", \"d\", \"e\", ...");
    expect_no_class (l->model, "none", "no null class");
  }
  {
    g_autoptr (Loaded) l = load_with_classes (3, -1, NULL);

    g_assert_null (diffuse_model_get_class_name (l->model, 0));
    expect_class (l->model, "2", 2);
    expect_no_class (l->model, "cat",
                     "the model has no class names, give an index 0..2");
  }
  {
    g_autoptr (Loaded) l = load_with_classes (0, -1, "[]");

    expect_no_class (l->model, "0", "unconditional");
    expect_no_class (l->model, "none", "unconditional");
  }
}

/* PyTorch-written golden models load, and hold exactly the tensors of the
 * independent enumeration for their config. */
static void
test_golden (void)
{
  const char *data_dir = g_getenv ("DIFFUSE_TEST_DATA");
  g_autofree gchar *dir_path = NULL;
  g_autoptr (GDir) dir = NULL;
  const char *entry;
  guint n_models = 0;

  if (data_dir == NULL)
    {
      g_test_skip ("DIFFUSE_TEST_DATA not set");
      return;
    }
  dir_path = g_build_filename (data_dir, "golden", NULL);
  dir = g_dir_open (dir_path, 0, NULL);
  while (dir != NULL && (entry = g_dir_read_name (dir)) != NULL)
    {
      g_autofree gchar *path = NULL;
      g_autoptr (GError) error = NULL;
      g_autoptr (DiffuseModel) model = NULL;
      g_autoptr (TestSt) b = test_st_new ();
      g_autoptr (GBytes) expected_bytes = NULL;
      DiffuseSafetensors *file, *expected;
      guint i;

      if (!g_str_has_prefix (entry, "forward-") ||
          !g_str_has_suffix (entry, ".safetensors"))
        continue;
      path = g_build_filename (dir_path, entry, NULL);
      model = diffuse_model_new_from_file (path, &error);
      g_assert_no_error (error);
      test_unet_add_tensors (b, diffuse_model_get_config (model));
      expected_bytes = test_st_serialize (b);
      expected = diffuse__safetensors_open_bytes (
          g_bytes_get_data (expected_bytes, NULL),
          g_bytes_get_size (expected_bytes), &error);
      g_assert_no_error (error);
      file = diffuse__safetensors_open (path, &error);
      g_assert_no_error (error);
      g_assert_cmpuint (diffuse__safetensors_get_n_tensors (file), ==,
                        diffuse__safetensors_get_n_tensors (expected));
      for (i = 0; i < diffuse__safetensors_get_n_tensors (expected); i++)
        {
          const DiffuseTensorInfo *e =
              diffuse__safetensors_get_nth (expected, i);
          const DiffuseTensorInfo *f = diffuse__safetensors_get (file, e->name);

          if (f == NULL)
            g_error ("%s lacks %s", entry, e->name);
          g_assert_cmpint (f->ndim, ==, e->ndim);
          g_assert_cmpmem (f->shape, f->ndim * sizeof (gint64), e->shape,
                           e->ndim * sizeof (gint64));
        }
      g_test_message ("%s: %u tensors, %" G_GUINT64_FORMAT " parameters", entry,
                      diffuse__safetensors_get_n_tensors (file),
                      diffuse_model_get_n_params (model));
      diffuse__safetensors_free (file);
      diffuse__safetensors_free (expected);
      n_models++;
    }
  if (n_models == 0)
    g_test_skip ("no golden forward-*.safetensors models yet");
}

/* errors.c: every enum value round-trips through its string. */
static void
test_enum_strings (void)
{
  DiffuseScheduleKind sk;
  DiffuseSamplerKind mk;
  DiffuseVarianceKind vk;
  gint i;

  for (i = 0; i < DIFFUSE_SCHEDULE_COUNT; i++)
    {
      g_assert_true (diffuse_schedule_kind_from_string (
          diffuse_schedule_kind_to_string ((DiffuseScheduleKind) i), &sk));
      g_assert_cmpint (sk, ==, i);
    }
  for (i = 0; i < DIFFUSE_SAMPLER_COUNT; i++)
    {
      g_assert_true (diffuse_sampler_kind_from_string (
          diffuse_sampler_kind_to_string ((DiffuseSamplerKind) i), &mk));
      g_assert_cmpint (mk, ==, i);
    }
  for (i = 0; i < DIFFUSE_VARIANCE_COUNT; i++)
    {
      g_assert_true (diffuse_variance_kind_from_string (
          diffuse_variance_kind_to_string ((DiffuseVarianceKind) i), &vk));
      g_assert_cmpint (vk, ==, i);
    }
  g_assert_cmpstr (diffuse_schedule_kind_to_string (DIFFUSE_SCHEDULE_COSINE),
                   ==, "cosine");
  g_assert_cmpstr (diffuse_sampler_kind_to_string (DIFFUSE_SAMPLER_DDPM), ==,
                   "ddpm");
  g_assert_cmpstr (
      diffuse_variance_kind_to_string (DIFFUSE_VARIANCE_FIXED_SMALL), ==,
      "fixed-small");
  g_assert_true (diffuse_schedule_kind_from_string ("Linear", &sk));
  g_assert_cmpint (sk, ==, DIFFUSE_SCHEDULE_LINEAR);
  g_assert_true (diffuse_sampler_kind_from_string ("DDIM", &mk));
  g_assert_cmpint (mk, ==, DIFFUSE_SAMPLER_DDIM);
  g_assert_true (diffuse_variance_kind_from_string ("fixed_large", &vk));
  g_assert_cmpint (vk, ==, DIFFUSE_VARIANCE_FIXED_LARGE);
  g_assert_false (diffuse_schedule_kind_from_string ("lin", &sk));
  g_assert_false (diffuse_schedule_kind_from_string ("linearx", &sk));
  g_assert_false (diffuse_schedule_kind_from_string ("", &sk));
  g_assert_false (diffuse_schedule_kind_from_string (NULL, &sk));
  g_assert_false (diffuse_sampler_kind_from_string ("plms", &mk));
  g_assert_false (diffuse_variance_kind_from_string ("fixed", &vk));
  g_assert_true (g_quark_to_string (DIFFUSE_ERROR) != NULL);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/model/valid", test_valid);
  g_test_add_func ("/model/from-file", test_from_file);
  g_test_add_func ("/model/read-config", test_read_config);
  g_test_add_func ("/model/variants", test_variants);
  g_test_add_func ("/model/missing-metadata", test_missing_metadata);
  g_test_add_func ("/model/bad-metadata", test_bad_metadata);
  g_test_add_func ("/model/booleans", test_booleans);
  g_test_add_func ("/model/missing-tensor", test_missing_tensor);
  g_test_add_func ("/model/wrong-shape", test_wrong_shape);
  g_test_add_func ("/model/non-finite-weights", test_non_finite_weights);
  g_test_add_func ("/model/unexpected-tensor", test_unexpected_tensor);
  g_test_add_func ("/model/bf16", test_bf16_model);
  g_test_add_func ("/model/truncated", test_truncated);
  g_test_add_func ("/model/classes", test_classes);
  g_test_add_func ("/model/golden", test_golden);
  g_test_add_func ("/model/enum-strings", test_enum_strings);
  return g_test_run ();
}
