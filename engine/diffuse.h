/* libdiffuse: class-conditional ADM UNet diffusion sampling on the CPU.
 *
 * This is the only public header.  The plug-in, the CLI and the tests see
 * nothing else of the engine (tests may also use engine/diffuse-private.h).
 *
 * Conventions
 *  - Images are float32, C order, NCHW, values in [-1, 1]
 *    (pixel p in 0..255 maps to p / 127.5 - 1).
 *  - Functions that can fail take GError ** last and return FALSE / NULL.
 *  - The model is immutable once loaded; every run keeps its own state,
 *    its thread count included, so several runs may share one
 *    DiffuseModel from several threads, each with its own thread count.
 *  - No global mutable state.  The engine calls OpenBLAS from its own
 *    threads, so the first model load or run sets OpenBLAS's process-wide
 *    thread count to one, once; the engine's default thread count is
 *    what OpenBLAS had chosen before (OPENBLAS_NUM_THREADS, or the cores).
 */
#ifndef DIFFUSE_H
#define DIFFUSE_H

#include <glib.h>

G_BEGIN_DECLS

#define DIFFUSE_ERROR (diffuse_error_quark ())
GQuark diffuse_error_quark (void);

typedef enum
{
  DIFFUSE_ERROR_IO,        /* file cannot be opened / read / written */
  DIFFUSE_ERROR_FORMAT,    /* corrupt or hostile file contents */
  DIFFUSE_ERROR_MODEL,     /* missing tensor, wrong shape / dtype, bad config */
  DIFFUSE_ERROR_INVALID,   /* out-of-range parameter from the caller */
  DIFFUSE_ERROR_CANCELLED, /* the progress callback asked to stop */
  DIFFUSE_ERROR_NO_MEMORY, /* an allocation the run needs failed */
  DIFFUSE_ERROR_COUNT
} DiffuseErrorCode;

/* ------------------------------------------------------------------ */
/* Enums with to/from string helpers                                   */

typedef enum
{
  DIFFUSE_SCHEDULE_LINEAR, /* DDPM: β linear from 1e-4·1000/T to 0.02·1000/T */
  DIFFUSE_SCHEDULE_COSINE, /* improved DDPM: ᾱ(t) = f(t)/f(0), β ≤ 0.999 */
  DIFFUSE_SCHEDULE_COUNT
} DiffuseScheduleKind;

typedef enum
{
  DIFFUSE_SAMPLER_DDIM,
  DIFFUSE_SAMPLER_DDPM,
  DIFFUSE_SAMPLER_COUNT
} DiffuseSamplerKind;

typedef enum
{
  DIFFUSE_VARIANCE_AUTO, /* LEARNED when the model has learn_sigma, else FIXED_LARGE */
  DIFFUSE_VARIANCE_LEARNED,     /* Σθ = exp(v log β + (1−v) log β̃) */
  DIFFUSE_VARIANCE_FIXED_SMALL, /* σ² = β̃ (posterior variance) */
  DIFFUSE_VARIANCE_FIXED_LARGE, /* σ² = β (guided-diffusion also uses β̃₁ at the first step) */
  DIFFUSE_VARIANCE_COUNT
} DiffuseVarianceKind;

/* The arithmetic of the network's convolutions (and 1×1 projections):
 *  - FP32: float32 throughout; the same results on every machine.
 *  - BF16: weights and activations rounded to bfloat16 (8 bits of
 *    mantissa) for the convolutions, products summed in float32;
 *    GroupNorm, softmax, the timestep embedding and the sampler stay
 *    float32.  Fast where the CPU has bf16 instructions (AVX512_BF16,
 *    AMX-BF16; through oneDNN), emulated (slower than FP32) elsewhere.
 *    Results differ from FP32 by about 1e-2 of the output's scale, and
 *    between machines by the order of the sums.
 *  - AUTO: the environment variable DIFFUSE_PRECISION (fp32 or bf16)
 *    when set, else BF16 where the CPU has bf16 instructions, the
 *    engine was built with oneDNN and the network takes at least
 *    DIFFUSE_BF16_MIN_FLOPS per image (below that, bf16's fixed costs
 *    outweigh its faster products: the shipped 32 px models, 0.7 GFLOP,
 *    sample 1.3× faster in FP32; bench/README.md), else FP32.  The
 *    choice depends on the model and image size, never on the batch, so
 *    an image comes out the same whether it is made alone or in a
 *    batch. */
typedef enum
{
  DIFFUSE_PRECISION_AUTO,
  DIFFUSE_PRECISION_FP32,
  DIFFUSE_PRECISION_BF16,
  DIFFUSE_PRECISION_COUNT
} DiffusePrecision;

const char *diffuse_precision_to_string (DiffusePrecision precision);
gboolean diffuse_precision_from_string (const char *s, DiffusePrecision *out);
#define DIFFUSE_BF16_MIN_FLOPS G_GUINT64_CONSTANT (1500000000)
/* AUTO resolved as above for a network of flops_per_image floating-point
 * operations per image (FP32 and BF16 are returned as they are);
 * FALSE with DIFFUSE_ERROR_INVALID when DIFFUSE_PRECISION holds
 * something else than fp32, bf16 or auto. */
gboolean diffuse_precision_resolve (DiffusePrecision precision,
                                    guint64 flops_per_image,
                                    DiffusePrecision *out, GError **error);
/* Whether this CPU (and OS) runs bf16 dot products in hardware:
 * AVX512_BF16 or AMX-BF16. */
gboolean diffuse_cpu_has_bf16 (void);
/* Whether BF16 runs on oneDNN in this build (else it is emulated). */
gboolean diffuse_have_onednn (void);
/* Whether BF16 runs in hardware here: a oneDNN build on a CPU with bf16
 * instructions.  Elsewhere BF16 is emulated, slower than FP32, and AUTO
 * never picks it. */
gboolean diffuse_bf16_is_native (void);

/* Seamless tiles: which directions the network's convolutions wrap
 * around in (circular padding), so that the output tiles without a seam.
 * The values are bits: X = 1 (left and right edges meet), Y = 2 (top
 * and bottom), BOTH = X | Y. */
typedef enum
{
  DIFFUSE_TILE_NONE = 0,
  DIFFUSE_TILE_X = 1,
  DIFFUSE_TILE_Y = 2,
  DIFFUSE_TILE_BOTH = 3,
  DIFFUSE_TILE_COUNT
} DiffuseTileMode;

const char *diffuse_schedule_kind_to_string (DiffuseScheduleKind kind);
gboolean diffuse_schedule_kind_from_string (const char *s,
                                            DiffuseScheduleKind *out);
const char *diffuse_sampler_kind_to_string (DiffuseSamplerKind kind);
gboolean diffuse_sampler_kind_from_string (const char *s,
                                           DiffuseSamplerKind *out);
const char *diffuse_variance_kind_to_string (DiffuseVarianceKind kind);
gboolean diffuse_variance_kind_from_string (const char *s,
                                            DiffuseVarianceKind *out);

/* ------------------------------------------------------------------ */
/* Model                                                               */

#define DIFFUSE_MAX_LEVELS 8

/* What a model file holds (metadata model_type). */
typedef enum
{
  DIFFUSE_MODEL_UNET,       /* a diffusion UNet (model_type absent or "unet") */
  DIFFUSE_MODEL_CLASSIFIER, /* a noisy-image classifier, "classifier" */
  DIFFUSE_MODEL_TYPE_COUNT
} DiffuseModelType;

/* A classifier's output head (guided-diffusion's EncoderUNetModel pool). */
typedef enum
{
  DIFFUSE_POOL_NONE,      /* UNets */
  DIFFUSE_POOL_ADAPTIVE,  /* GN, SiLU, spatial mean, 1×1 conv */
  DIFFUSE_POOL_ATTENTION, /* GN, SiLU, AttentionPool2d (fixed size) */
  DIFFUSE_POOL_COUNT
} DiffusePoolKind;

/* The configuration, read from the safetensors header's __metadata__ with
 * guided-diffusion's option names (all values are strings there). */
typedef struct
{
  gint image_size;
  gint in_channels; /* 1..4: grey, grey+alpha, RGB, RGBA */
  gint model_channels;
  gint out_channels; /* in_channels, or 2·in_channels with learn_sigma */
  gint num_res_blocks;
  gint n_levels; /* length of channel_mult */
  /* Per-level width factors, fractional allowed (guided-diffusion's 512 px
   * model has 0.5,1,1,2,2,4,4).  Level i has level_channels[i] =
   * int(channel_mult[i]·model_channels) channels, truncated as Python's
   * int() does (filled by the loader; a positive multiple of 32). */
  double channel_mult[DIFFUSE_MAX_LEVELS];
  gint level_channels[DIFFUSE_MAX_LEVELS];
  gint n_attention_resolutions;
  gint attention_resolutions[DIFFUSE_MAX_LEVELS]; /* in pixels, e.g. 32,16,8 */
  gint num_heads;          /* -1 when num_head_channels is used */
  gint num_head_channels;  /* -1 when num_heads is used */
  gint num_heads_upsample; /* -1 = num_heads */
  gboolean use_scale_shift_norm;
  gboolean resblock_updown;
  gboolean use_new_attention_order;
  gboolean learn_sigma;
  gint num_classes;     /* 0 = unconditional; includes the null class if any */
  gint null_class;      /* index of the "no label" class, or -1 */
  gint diffusion_steps; /* T */
  DiffuseScheduleKind noise_schedule;
  gboolean rescale_timesteps; /* model sees t·1000/T instead of t */
  /* Classifiers (model_type DIFFUSE_MODEL_CLASSIFIER) have the UNet's down
   * half and middle block, then the pool; out_channels = num_classes
   * (logits), no label embedding, learn_sigma FALSE, null_class −1,
   * diffusion_steps 0 unless the file records the diffusion it was
   * trained for (then noise_schedule is that one's). */
  DiffuseModelType model_type;
  DiffusePoolKind pool;
} DiffuseModelConfig;

typedef struct _DiffuseModel DiffuseModel;

DiffuseModel *diffuse_model_new_from_file (const char *path, GError **error);
void diffuse_model_free (DiffuseModel *model);
/* A model file's configuration from its header alone, as
 * diffuse_model_new_from_file would give it, without reading, converting
 * or checking the weights (only the header's pages are read): what kind
 * of model a file is, for lists of model files.  A file that reads here
 * may still fail to load (its tensors are checked only by a load). */
gboolean diffuse_model_file_read_config (const char *path,
                                         DiffuseModelConfig *config,
                                         GError **error);
const DiffuseModelConfig *diffuse_model_get_config (const DiffuseModel *model);
guint64 diffuse_model_get_n_params (const DiffuseModel *model);
/* Class names: index 0..num_classes-1; NULL when the file gave none. */
const char *diffuse_model_get_class_name (const DiffuseModel *model,
                                          gint index);
/* Parse "7", or a class name (case-insensitive), into a class index;
 * "none"/"null" map to the null class when the model has one. */
gboolean diffuse_model_find_class (const DiffuseModel *model, const char *text,
                                   gint *out_index, GError **error);
/* The largest width or height any run takes. */
#define DIFFUSE_MAX_SIDE 16384

/* Whether (H, W) can be run: positive multiples of 2^(n_levels-1), at
 * most DIFFUSE_MAX_SIDE. */
gboolean diffuse_model_check_size (const DiffuseModel *model, gint height,
                                   gint width, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DiffuseModel, diffuse_model_free)

/* ------------------------------------------------------------------ */
/* UNet forward pass: per-run state, all scratch memory allocated once  */

typedef struct _DiffuseUNet DiffuseUNet;

/* Scratch for batches up to max_batch at height x width.  The state runs
 * its forward passes on its own n_threads threads (0: the default, see
 * Conventions above); results do not depend on other states or runs. */
DiffuseUNet *diffuse_unet_new (const DiffuseModel *model, gint max_batch,
                               gint height, gint width, gint n_threads,
                               GError **error);
void diffuse_unet_free (DiffuseUNet *unet);
/* x: [batch, in_channels, H, W]; timesteps: [batch], the value the network
 * embeds (already rescaled if the model wants it); labels: [batch] class
 * indices (ignored by unconditional models); out: [batch, out_channels, H, W]. */
gboolean diffuse_unet_forward (DiffuseUNet *unet, gint batch, const float *x,
                               const float *timesteps, const gint *labels,
                               float *out, GError **error);
/* Peak bytes of scratch this state holds (for the benchmark). */
gsize diffuse_unet_get_scratch_bytes (const DiffuseUNet *unet);
/* The precision of this state's later forward passes (see
 * DiffusePrecision; a new state computes in FP32).  AUTO is resolved
 * here (FALSE for a bad DIFFUSE_PRECISION).  BF16 weights are made on
 * the first pass that needs them and kept in the state. */
gboolean diffuse_unet_set_precision (DiffuseUNet *unet,
                                     DiffusePrecision precision,
                                     GError **error);
/* FP32 or BF16: what the passes compute in. */
DiffusePrecision diffuse_unet_get_precision (const DiffuseUNet *unet);

/* Seamless tiles: from now on every convolution of this state pads
 * circularly (torch's padding_mode='circular') in the directions of tile,
 * with zeros in the others (NONE, the default: zeros everywhere, as
 * trained).  Wrapping in a direction needs that side to be even at every
 * level (the stride-2 convolutions), which diffuse_model_check_size's
 * sizes are.  The wrap is done by the fp32 kernels: with BF16 precision
 * the 3×3 convolutions of a tiled state run in FP32. */
void diffuse_unet_set_tile (DiffuseUNet *unet, DiffuseTileMode tile);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DiffuseUNet, diffuse_unet_free)

/* ------------------------------------------------------------------ */
/* Classifier (classifier.c): guided-diffusion's EncoderUNetModel, its   */
/* logits and ∇x log softmax(logits)[y] for classifier guidance          */

typedef struct _DiffuseClassifier DiffuseClassifier;

/* Per-run state for a classifier model (a DiffuseModel of model_type
 * DIFFUSE_MODEL_CLASSIFIER; a UNet is refused) at batch ≤ max_batch and
 * height x width (the model's image_size exactly with the attention
 * pool).  Holds every activation the gradient needs.  Threads: its own
 * n_threads (0: the default), as DiffuseUNet. */
DiffuseClassifier *diffuse_classifier_new (const DiffuseModel *model,
                                           gint max_batch, gint height,
                                           gint width, gint n_threads,
                                           GError **error);
void diffuse_classifier_free (DiffuseClassifier *clf);
/* The precision of the forward's convolutions (as
 * diffuse_unet_set_precision; a new state computes in FP32).  The
 * gradient's convolutions stay FP32. */
gboolean diffuse_classifier_set_precision (DiffuseClassifier *clf,
                                           DiffusePrecision precision,
                                           GError **error);
/* x [batch, C, H, W]; timesteps [batch] as the network sees them;
 * logits [batch, num_classes]. */
gboolean diffuse_classifier_forward (DiffuseClassifier *clf, gint batch,
                                     const float *x, const float *timesteps,
                                     float *logits, GError **error);
/* The forward pass, then grad [batch, C, H, W] = ∂/∂x Σ_b log
 * softmax(logits_b)[labels_b] (each image's own log-probability, as
 * guided-diffusion's cond_fn before classifier_scale).  logits may be
 * NULL. */
gboolean diffuse_classifier_grad (DiffuseClassifier *clf, gint batch,
                                  const float *x, const float *timesteps,
                                  const gint *labels, float *logits,
                                  float *grad, GError **error);
/* Bytes of activations and scratch this state holds. */
gsize diffuse_classifier_get_scratch_bytes (const DiffuseClassifier *clf);

/* Whether a classifier can guide a diffusion model, from their
 * configurations alone: a DIFFUSE_MODEL_CLASSIFIER and a
 * DIFFUSE_MODEL_UNET, the same in_channels, and when the classifier
 * records the diffusion it was trained for (diffusion_steps > 0), the
 * model's schedule and T.  diffuse_sample_params_validate checks this
 * too, and what depends on the run (the size, the class label). */
gboolean diffuse_classifier_check_model (const DiffuseModelConfig *classifier,
                                         const DiffuseModelConfig *model,
                                         GError **error);
/* Whether a classifier takes images of height x width: an attention
 * pool only its own image_size, and every classifier sides that are
 * multiples of its downsampling, 2^(n_levels−1).  The same check as
 * sampling makes (diffuse_sample_params_validate). */
gboolean diffuse_classifier_check_size (const DiffuseModelConfig *classifier,
                                        gint height, gint width,
                                        GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DiffuseClassifier, diffuse_classifier_free)

/* ------------------------------------------------------------------ */
/* Counter-based PRNG (rng.c documents the construction).               */
/* Element i of stream s under seed k depends only on (k, s, i), so any  */
/* thread count or chunking gives the same numbers.                     */

void diffuse_rng_normal (guint64 seed, guint64 stream, guint64 offset,
                         float *out, gsize n);
void diffuse_rng_uniform (guint64 seed, guint64 stream, guint64 offset,
                          double *out, gsize n);

/* ------------------------------------------------------------------ */
/* Schedules and respacing (schedule.c)                                 */

typedef struct _DiffuseSchedule DiffuseSchedule;

/* β schedule on T steps, then respaced with guided-diffusion's
 * timestep_respacing semantics: NULL or "" keeps all T steps; "ddimN"
 * keeps N evenly strided steps; "a,b,c" splits T into sections and keeps
 * a, b, c evenly spaced steps from each.  β is recomputed from ᾱ on the
 * kept steps: β_i = 1 − ᾱ_{t_i} / ᾱ_{t_{i−1}}. */
DiffuseSchedule *diffuse_schedule_new (DiffuseScheduleKind kind, gint T,
                                       const char *respacing, GError **error);
void diffuse_schedule_free (DiffuseSchedule *schedule);
gint diffuse_schedule_get_n_steps (const DiffuseSchedule *schedule);
/* [n] original timesteps of the kept steps, ascending. */
const gint *diffuse_schedule_get_timesteps (const DiffuseSchedule *schedule);
/* [n] respaced β_i and ᾱ_i. */
const double *diffuse_schedule_get_betas (const DiffuseSchedule *schedule);
const double *
diffuse_schedule_get_alphas_cumprod (const DiffuseSchedule *schedule);
/* Index of the kept step whose original timestep is nearest to
 * strength·T (at least index 0): img2img starts there. */
gint diffuse_schedule_index_for_strength (const DiffuseSchedule *schedule,
                                          double strength);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DiffuseSchedule, diffuse_schedule_free)

/* ------------------------------------------------------------------ */
/* Sampling                                                             */

/* Called after each reverse step with the current prediction of x0
 * ([count, C, H, W], in [-1, 1]); return FALSE to cancel.  step counts the
 * steps done so far, 1 … n_steps (n_steps = steps this run takes; fewer
 * for img2img), so step == n_steps on the last call. */
typedef gboolean (*DiffuseProgressFunc) (gint step, gint n_steps,
                                         const float *x0_pred, gint count,
                                         gint channels, gint height, gint width,
                                         gpointer user_data);

/* What a sampler sees of the network: given x_t for a batch, write
 * ε̂ ([batch,C,H,W]) and, when var_out is not NULL, the raw variance
 * interpolation output v ([batch,C,H,W], the learned-sigma channels).
 * t_index is the index into the respaced schedule, t_model the timestep
 * value to feed the network (original t, rescaled if the model asks).
 * diffuse_sample_with passes the original t of the kept step; the model
 * denoiser inside diffuse_sample applies the 1000/T rescaling itself. */
typedef gboolean (*DiffuseDenoiseFunc) (gpointer user_data, gint batch,
                                        const float *x_t, gint t_index,
                                        double t_model, float *eps_out,
                                        float *var_out, GError **error);

/* Classifier guidance's term for the sampler: s·∇x log p(y | x_t) for the
 * batch's x_t ([batch,C,H,W]) at respaced index t_index, t_model as for
 * DiffuseDenoiseFunc (the original timestep of the kept step), into
 * grad_out ([batch,C,H,W]). */
typedef gboolean (*DiffuseCondFunc) (gpointer user_data, gint batch,
                                     const float *x_t, gint t_index,
                                     double t_model, float *grad_out,
                                     GError **error);

typedef struct
{
  /* The user's settings: their ranges and defaults are the settings
   * table's (diffuse_settings (), below). */
  DiffuseSamplerKind sampler;   /* default DDIM */
  gint steps;                   /* 1..4000 and ≤ T, default 50; used when
                                    respacing is NULL: spread evenly, ending
                                    at T−1; with classifier guidance and
                                    DDIM as "ddimN" (no t = T−1; sample.c) */
  const char *respacing;        /* overrides steps: "ddim50", "10,10,10" */
  double eta;                   /* DDIM η in 0..10; default 1 */
  DiffuseVarianceKind variance; /* DDPM; default AUTO */
  double guidance;  /* w in ε̄ = (1+w)ε(x,y) − wε(x,∅); default 2
                       where the model can be guided, else 0
                       (diffuse_settings_fit_model; init gives 2).
                       The "scale s" convention is s = 1 + w. */
  gint class_label; /* default -1 = null class (or unconditional) */
  /* Optional model for the ε(x,∅) branch of guidance (default NULL = the
   * model's own null class), for class models without a null class such
   * as OpenAI's ImageNet checkpoints, paired with an unconditional model.
   * It runs at the same size with no label (or its own null class when it
   * is class-conditional); it must have the model's in_channels,
   * diffusion_steps and noise_schedule.  The variance of a learn_sigma
   * model still comes from the conditional model.  With a null_model an
   * unconditional model may be guided too (away from the other model). */
  const DiffuseModel *null_model;
  guint64 seed;           /* default 0 */
  gint count;             /* images in one batch, 1..64, default 1 */
  gint height, width;     /* default 0 = the model's image_size */
  gboolean clip_denoised; /* clip predicted x0 to [-1,1]; default TRUE */
  /* img2img: init_image [count,C,H,W] (NULL = plain generation); values
   * (and init_noise's) must be finite and within ±1000 */
  const float *init_image;
  double strength; /* in (0, 1]; default 0.5 */
  /* optional x_T [count,C,H,W] instead of seeded noise */
  const float *init_noise;
  /* Inpainting (inpaint.c): mask [H, W] in [0, 1], 1 = regenerate, the
   * same for every image and channel; needs init_image (the original).
   * After every reverse step the kept part of x_t is the original noised
   * to that step, q(x_t | x_0): sqrt(ᾱ)x0 + sqrt(1−ᾱ)ε with ε drawn
   * from the seed's streams (sampler.c), joined to the model's part by
   * the mask; mask 0 pixels of the result equal init_image exactly.
   * NULL = no mask. */
  const float *mask;
  /* RePaint's resampling (Lugmayr et al. 2022): every resample_jump
   * reverse steps, go back up resample_jump steps by q(x_t'|x_t) and
   * sample them again, resample_count − 1 times (so resample_count = 1,
   * the default, is no resampling; resample_jump default 10).  Needs a
   * mask; each pass costs as many network evaluations as the steps it
   * repeats. */
  gint resample_count;
  gint resample_jump;
  /* Seamless tiles (settings table row "tile"): the UNet's convolutions
   * wrap around in these directions (diffuse_unet_set_tile); default
   * NONE (zero padding, as trained).  Read by diffuse_sample. */
  DiffuseTileMode tile;
  gint n_threads; /* this run's threads; 0 = the default */
  /* the network's arithmetic (DiffusePrecision); default AUTO */
  DiffusePrecision precision;
  DiffuseProgressFunc progress;
  gpointer user_data;
  /* Classifier guidance (seed "Classifier Guidance"; Dhariwal & Nichol
   * 2021, algorithms 1 and 2, as guided-diffusion's condition_mean and
   * condition_score): with g = s·∇x log p_φ(y | x_t) from a noisy-image
   * classifier that sees the original timestep of each kept step,
   *   DDPM: μ ← μ + Σ·g  (Σ the step's model variance: β, β̃ or the
   *         learned one; β̃₁ / clipped log β̃ at index 0 as guided-diffusion)
   *   DDIM: ε ← ε − sqrt(1 − ᾱ)·g from the (clipped) x̂0, then x̂0 and the
   *         step recomputed from that ε (x̂0 no longer clipped).
   * It adds to classifier-free guidance (applied to ε first) and works
   * with img2img and inpainting.
   * diffuse_sample: classifier (a DIFFUSE_MODEL_CLASSIFIER model, same
   * in_channels, a size it takes; default NULL = no classifier guidance)
   * and classifier_scale s in 0..1000 (guided-diffusion's
   * classifier_scale, default 1; unused without a classifier); y is
   * class_label, which the classifier must have.
   * diffuse_sample_with: cond (default NULL) returns g itself. */
  const DiffuseModel *classifier;
  double classifier_scale;
  DiffuseCondFunc cond;
  gpointer cond_data;
} DiffuseSampleParams;

typedef struct
{
  gint n_steps_run;    /* reverse steps actually taken (img2img: ≥ 1) */
  gint start_timestep; /* original t the reverse process started from */
  gint start_index;    /* its index in the respaced schedule */
} DiffuseSampleInfo;

/* ------------------------------------------------------------------ */
/* Sampling settings: one table (settings-table.c) declares each setting  */
/* the user can choose (name, type, range, default, help, field); the    */
/* engine's validation, preset files, the CLI's options and the plug-in's */
/* arguments are all made from it.  Adding a setting = one table row.    */

typedef enum
{
  DIFFUSE_SETTING_INT,    /* a gint field */
  DIFFUSE_SETTING_DOUBLE, /* a double field */
  DIFFUSE_SETTING_ENUM,   /* an enum field; nicks[] name its values 0..n-1 */
  DIFFUSE_SETTING_STRING  /* a const char * field the params do not own */
} DiffuseSettingType;

typedef enum
{
  DIFFUSE_SETTING_PRESET = 1 << 0,  /* preset files may set it */
  DIFFUSE_SETTING_CLI = 1 << 1,     /* an option of diffuse sample/img2img */
  DIFFUSE_SETTING_PLUGIN = 1 << 2,  /* a plug-in procedure argument */
  DIFFUSE_SETTING_IMG2IMG = 1 << 3, /* only used with an init image */
  DIFFUSE_SETTING_MIN_EXCLUSIVE = 1 << 4, /* the range is (min, max] */
  DIFFUSE_SETTING_LOOP = 1 << 5,          /* read by diffuse_sample_with too */
  DIFFUSE_SETTING_INPAINT = 1 << 6,       /* only used with a mask */
  /* Its default (default_value) holds where the model can follow a class
   * by classifier-free guidance (diffuse_model_can_guide); with any other
   * model the default is 0.  diffuse_settings_fit_model applies the rule
   * to the settings a user did not give. */
  DIFFUSE_SETTING_GUIDED_DEFAULT = 1 << 7
} DiffuseSettingFlags;

typedef struct
{
  const char *name; /* preset key, CLI --NAME, plug-in argument */
  DiffuseSettingType type;
  DiffuseSettingFlags flags;
  gsize offset;                   /* offsetof (DiffuseSampleParams, field) */
  double min, max;                /* INT, DOUBLE: the accepted range (finite) */
  double default_value;           /* INT, DOUBLE, ENUM (the enum value) */
  const char *const *nicks;       /* ENUM: value names, NULL-terminated */
  const char *const *nick_labels; /* ENUM: one label per value ("DDIM") */
  const char *const *nick_help;   /* ENUM: one line per value */
  const char *label;   /* short label with a GTK mnemonic, "S_teps" */
  const char *help;    /* one line */
  const char *metavar; /* CLI argument name, "N" */
  char short_name;     /* CLI short option, or 0 */
} DiffuseSetting;

/* One bit per table index: which settings a preset or a caller gives. */
typedef guint32 DiffuseSettingsMask;

/* The table and its length, in a fixed order (index = bit in a mask). */
const DiffuseSetting *diffuse_settings (gint *n_settings);
/* NULL when there is none; *index (may be NULL) gets its position. */
const DiffuseSetting *diffuse_setting_find (const char *name, gint *index);
/* Parses text ("0.5", "ddim") into the setting's field of params: the
 * syntax, finiteness (nan, inf and overflow are refused) and whether it
 * fits the field; the range is diffuse_setting_check's.  Errors
 * (DIFFUSE_ERROR_INVALID) name the setting and quote text as given. */
gboolean diffuse_setting_parse (const DiffuseSetting *setting, const char *text,
                                DiffuseSampleParams *params, GError **error);
/* The field's value against the setting's range. */
gboolean diffuse_setting_check (const DiffuseSetting *setting,
                                const DiffuseSampleParams *params,
                                GError **error);
/* The field's value as text that parses back to the same value
 * (doubles: the shortest such form, "10.0000001"); NULL strings give NULL. */
gchar *diffuse_setting_to_string (const DiffuseSetting *setting,
                                  const DiffuseSampleParams *params);
/* "0..10", "(0, 1]", "ddim, ddpm" */
gchar *diffuse_setting_describe_range (const DiffuseSetting *setting);
/* Copies the setting's field from src to dst. */
void diffuse_setting_copy (const DiffuseSetting *setting,
                           DiffuseSampleParams *dst,
                           const DiffuseSampleParams *src);
/* Copies every setting whose bit is in mask. */
void diffuse_settings_copy (DiffuseSettingsMask mask, DiffuseSampleParams *dst,
                            const DiffuseSampleParams *src);
/* Every setting of the table against its range, without a model. */
gboolean diffuse_settings_validate (const DiffuseSampleParams *params,
                                    GError **error);
/* Whether sampling from model can follow a class by classifier-free
 * guidance: a class-conditional model with a null class, or one given a
 * separate null_model (may be NULL).  Unconditional models have no class
 * to follow. */
gboolean diffuse_model_can_guide (const DiffuseModel *model,
                                  const DiffuseModel *null_model);
/* Fits the defaults that depend on the model to it, for the settings NOT
 * in given (given: the settings the user chose — CLI options, a preset's
 * keys, procedure arguments the caller counts as given).  A
 * DIFFUSE_SETTING_GUIDED_DEFAULT setting (guidance) gets the table's
 * default where diffuse_model_can_guide (model, params->null_model), else
 * 0.  A setting in given is never changed: an explicit guidance > 0 for a
 * model that cannot be guided stays, and diffuse_sample_params_validate
 * refuses it with a clear error.  Call it after setting params->null_model
 * and before validating. */
void diffuse_settings_fit_model (DiffuseSampleParams *params,
                                 DiffuseSettingsMask given,
                                 const DiffuseModel *model);

/* text with C0/C1 control characters, DEL and invalid UTF-8 written as
 * \xNN escapes (and \ as \\): safe to print to a terminal. */
gchar *diffuse_text_escape (const char *text);

void diffuse_sample_params_init (DiffuseSampleParams *params);
/* Check every field against the model; a clear GError for anything off. */
gboolean diffuse_sample_params_validate (const DiffuseSampleParams *params,
                                         const DiffuseModel *model,
                                         GError **error);

/* What a run will take, known before it starts (from the model's layer
 * list and the run's size): for refusing what cannot fit, and for saying
 * how long it will be. */
typedef struct
{
  guint64 bytes; /* memory the run allocates: network scratch
                             (and a guiding classifier's), sampler and
                             denoiser buffers, the output (the loaded
                             weights are not included) */
  guint64
      weight_bytes; /* the loaded models' weights (float32), for reference */
  guint64 flops_per_eval; /* floating-point operations of one network
                             evaluation of one image */
  guint64 n_evals;        /* network evaluations of one image: count ×
                             steps run, ×2 with guidance */
  double flops;           /* all of the run's: flops_per_eval × n_evals,
                             with a separate null model's and a guiding
                             classifier's (forward and input gradient)
                             operations */
} DiffuseRunEstimate;

/* Validates params, then fills estimate. */
gboolean diffuse_sample_estimate (const DiffuseModel *model,
                                  const DiffuseSampleParams *params,
                                  DiffuseRunEstimate *estimate, GError **error);

/* Generate (or img2img) with a model: out is [count, C, H, W] in [-1, 1]. */
gboolean diffuse_sample (const DiffuseModel *model,
                         const DiffuseSampleParams *params, float *out,
                         DiffuseSampleInfo *info, GError **error);

/* The same sampler loop with any denoiser (closed-form tests, custom
 * networks).  shape: count, channels, height, width.  The model-free
 * fields of params are used (sampler, steps/respacing, eta, variance,
 * seed, clip_denoised, init_image/strength, init_noise, progress).
 * steps/respacing are used through the schedule the caller built with
 * them: diffuse_sample_with runs the schedule it is given. */
gboolean diffuse_sample_with (const DiffuseSchedule *schedule,
                              DiffuseDenoiseFunc denoise, gpointer denoise_data,
                              gboolean has_variance,
                              const DiffuseSampleParams *params, gint count,
                              gint channels, gint height, gint width,
                              float *out, DiffuseSampleInfo *info,
                              GError **error);

/* The context window for inpainting a mask [H, W] (inpaint.c): the
 * bounds of the pixels where mask > 0, grown by margin on every side,
 * then grown (about its centre) to at least the model's image_size on
 * each side and to a multiple of 2^(n_levels−1) where the image allows,
 * all clamped to the image; the caller samples the window (fitted with
 * diffuse_fit_size) and pastes it back by the mask.  FALSE when the mask
 * is 0 everywhere. */
gboolean diffuse_inpaint_window (const DiffuseModelConfig *config,
                                 const float *mask, gint height, gint width,
                                 gint margin, gint *x, gint *y, gint *w,
                                 gint *h);

/* How an image of H x W is inpainted by a mask: the context window
 * (diffuse_inpaint_window) and the size it is sampled at
 * (diffuse_fit_size of the window, native when the model allows, else
 * scaled with bilinear filtering).  The CLI and the plug-in both go
 * through it, so they give the same pixels. */
typedef struct
{
  gint x, y, width, height;   /* the window, in the image */
  gint run_height, run_width; /* the size sampled at */
  gboolean scaled;            /* run size != window size */
} DiffuseInpaintPlan;

/* Default margin of context around the mask's bounds, in pixels. */
#define DIFFUSE_INPAINT_DEFAULT_MARGIN 16

/* The plan for mask [H, W] (values in [0, 1], 1 = regenerate); errors
 * (DIFFUSE_ERROR_INVALID) for a mask that is empty (0 everywhere), has a
 * value outside [0, 1], or a negative margin. */
gboolean diffuse_inpaint_plan (const DiffuseModelConfig *config,
                               const float *mask, gint height, gint width,
                               gint margin, DiffuseInpaintPlan *plan,
                               GError **error);
/* window [channels, plan->height, plan->width] -> run [channels,
 * run_height, run_width] (a copy, or bilinear resampling when scaled):
 * for the image and for the mask (channels 1). */
void diffuse_inpaint_to_run (const DiffuseInpaintPlan *plan,
                             const float *window, gint channels, float *run);
/* The sampled run result [channels, run_height, run_width] back into the
 * window [channels, height, width]: unscaled, the result itself (the
 * sampler already joined it with the original by the mask, and mask 0
 * pixels equal the original exactly); scaled, resampled back and joined
 * again with the window's original by the window's own mask
 * (m·result + (1 − m)·original), so that mask 0 pixels stay exact. */
void diffuse_inpaint_from_run (const DiffuseInpaintPlan *plan, const float *run,
                               const float *window_original,
                               const float *window_mask, gint channels,
                               float *window_out);

/* ------------------------------------------------------------------ */
/* Likelihood: the variational bound in bits per dimension (likelihood.c) */

/* Called after each timestep's term (done = 1 … total); FALSE cancels. */
typedef gboolean (*DiffuseNllProgressFunc) (gint done, gint total,
                                            gpointer user_data);

typedef struct
{
  /* The reverse-process variances to evaluate the bound under, all from
   * the same network passes: [n_variances] kinds; n_variances 0 = { AUTO }
   * (learned for learn_sigma models, else fixed-large). */
  const DiffuseVarianceKind *variances;
  gint n_variances;
  gboolean
      clip_denoised; /* clip x̂0 to [−1, 1]; default TRUE (calc_bpd_loop's) */
  /* 0 (default): every t = T−1 … 0, the bound itself.  N in 2..T: an
   * ESTIMATE from N evenly strided t (t = 0 always, weight 1; the N−1
   * others round(j(T−1)/(N−1)) with weight (T−1)/(N−1)). */
  gint n_timesteps;
  /* [count] class of each image, −1 = the null class; NULL = every image
   * the null class (unconditional models: NULL or all −1). */
  const gint *labels;
  /* [T, count, C, H, W]: slice [t] is the ε that draws x_t =
   * sqrt(ᾱ_t)x0 + sqrt(1−ᾱ_t)ε; NULL = from the PRNG with `seed`
   * (stream 2^40 + t, image k at offset k·C·H·W). */
  const float *noise;
  guint64 seed;
  gint batch;     /* images per network pass; 0 = min(count, 8) */
  gint n_threads; /* this run's threads; 0 = the default */
  DiffuseNllProgressFunc progress;
  gpointer user_data;
} DiffuseNllParams;

/* Everything in bits per dimension (nats / ln 2 / (C·H·W)).  Arrays are
 * C order; [v] indexes variances, [j] terms, [k] images. */
typedef struct
{
  gint count;   /* images */
  gint T;       /* the model's diffusion steps */
  gint n_terms; /* T, or n_timesteps for an estimate */
  gint n_variances;
  DiffuseVarianceKind *variances; /* [n_variances], AUTO resolved */
  gint *timesteps;                /* [n_terms] t of each term, descending */
  double *weights; /* [n_terms] weight of each term in the total */
  /* [n_variances][n_terms][count]: D_KL(q(x_{t−1}|x_t,x0) ‖ p_θ(x_{t−1}|x_t))
   * for t ≥ 1, the discretized decoder's −log p_θ(x0|x1) at t = 0 */
  double *terms;
  double *prior;      /* [count] D_KL(q(x_T|x0) ‖ N(0, I)) */
  double *total;      /* [n_variances][count] prior + Σ weight·term */
  double *xstart_mse; /* [n_terms][count] mean (x̂0 − x0)² */
  double *eps_mse; /* [n_terms][count] mean (ε̂ − ε)² (ε̂ from x̂0) */
} DiffuseNllResult;

void diffuse_nll_params_init (DiffuseNllParams *params);
/* Checks params against the model for count images of height x width
 * (classes, variances, timesteps), before any work. */
gboolean diffuse_nll_params_validate (const DiffuseNllParams *params,
                                      const DiffuseModel *model, gint count,
                                      gint height, gint width, GError **error);
/* The bound of x0 [count, C, H, W] (values in [−1, 1] on the 8-bit grid:
 * pixel / 127.5 − 1), as improved-diffusion's calc_bpd_loop. */
DiffuseNllResult *diffuse_nll (const DiffuseModel *model,
                               const DiffuseNllParams *params, const float *x0,
                               gint count, gint height, gint width,
                               GError **error);
/* The same with any denoiser (closed-form tests) on a kind/T schedule:
 * it gets batches of images in order (params->batch at a time), t_index
 * and t_model both = t; params->labels must be NULL. */
DiffuseNllResult *
diffuse_nll_with (DiffuseScheduleKind kind, gint T, DiffuseDenoiseFunc denoise,
                  gpointer denoise_data, gboolean has_variance,
                  const DiffuseNllParams *params, const float *x0, gint count,
                  gint channels, gint height, gint width, GError **error);
void diffuse_nll_result_free (DiffuseNllResult *result);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DiffuseNllResult, diffuse_nll_result_free)

/* Output files (files.c)                                               */

/* Every file the engine writes goes through a DiffuseOutput: the bytes go
 * to a temporary file in the target's folder, renamed over the target by
 * diffuse_output_commit only once all of it is written and flushed, so an
 * error, a full disk or a signal leaves an existing file as it was.
 * diffuse_output_new refuses, before anything is written, a target that
 * exists and is not a regular file (device, FIFO, socket, directory), a
 * missing folder and a folder it cannot write in.  A symbolic link is
 * written through: the file it names is replaced, the link stays.  Nothing
 * but the object's own temporary file is ever removed. */
typedef struct _DiffuseOutput DiffuseOutput;

DiffuseOutput *diffuse_output_new (const char *path, GError **error);
/* The path as given to diffuse_output_new. */
const char *diffuse_output_get_path (const DiffuseOutput *out);
gboolean diffuse_output_write (DiffuseOutput *out, const void *data, gsize len,
                               GError **error);
/* Renames the finished file into place; the object is then only freed. */
gboolean diffuse_output_commit (DiffuseOutput *out, GError **error);
/* Without a commit, removes the temporary file (the target is untouched). */
void diffuse_output_free (DiffuseOutput *out);
/* diffuse_output_new and _free: checks, before a long run, that path can
 * be written. */
gboolean diffuse_output_check (const char *path, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DiffuseOutput, diffuse_output_free)

/* ------------------------------------------------------------------ */
/* Images and arrays                                                    */

/* PNG ↔ [1, channels, H, W] in [-1, 1].  Loading converts to `channels`
 * (grey ↔ RGB, alpha added as opaque or dropped); channels 0 = keep the
 * file's own count, written to *out_channels. */
float *diffuse_png_load (const char *path, gint channels, gint *out_channels,
                         gint *out_height, gint *out_width, GError **error);
gboolean diffuse_png_save (const char *path, const float *data, gint channels,
                           gint height, gint width, GError **error);
/* The same into an output (not committed): text is NULL or a
 * NULL-terminated list of key, value, key, value ... written as PNG tEXt
 * chunks (Latin-1 keys of 1..79 characters).  Data that is not finite
 * (NaN, ±Inf) is refused: no image is written. */
gboolean diffuse_output_write_png (DiffuseOutput *out, const float *data,
                                   gint channels, gint height, gint width,
                                   const char *const *text, GError **error);
/* .npy: float32, C order, up to 4 dimensions.  Loading refuses anything
 * but a regular file whose size is what its header promises. */
float *diffuse_npy_load (const char *path, gint *out_ndim, gint64 out_shape[4],
                         GError **error);
/* The same up to max_ndim ≤ DIFFUSE_NPY_MAX_DIMS dimensions (5: the
 * [T, B, C, H, W] noise of diffuse nll); out_shape has max_ndim entries. */
#define DIFFUSE_NPY_MAX_DIMS 5
float *diffuse_npy_load_nd (const char *path, gint max_ndim, gint *out_ndim,
                            gint64 *out_shape, GError **error);
gboolean diffuse_npy_save (const char *path, const float *data, gint ndim,
                           const gint64 *shape, GError **error);
gboolean diffuse_output_write_npy (DiffuseOutput *out, const float *data,
                                   gint ndim, const gint64 *shape,
                                   GError **error);

/* ------------------------------------------------------------------ */
/* Presets (presets/NAME.preset, GKeyFile; shared by plug-in and CLI)   */

typedef struct
{
  gchar *name;
  gchar *description;
  DiffuseSettingsMask given;  /* which settings (table bits) it sets */
  DiffuseSampleParams values; /* their values (other fields: defaults) */
} DiffusePreset;

/* A new preset with nothing given (values = the defaults). */
DiffusePreset *diffuse_preset_new (const char *name, const char *description);
gboolean diffuse_preset_has (const DiffusePreset *preset, const char *setting);

/* Presets are small: larger files are refused. */
#define DIFFUSE_PRESET_MAX_BYTES (64 * 1024)

/* Load every *.preset file in dirs (sorted by name); later dirs override
 * earlier ones with the same name.  A missing folder is skipped; a file
 * or folder that cannot be read or parsed is skipped with one message in
 * warnings (of gchar *, may be NULL) naming it.  Never fails. */
GPtrArray *diffuse_presets_load_dirs (const char *const *dirs,
                                      GPtrArray *warnings);
/* Opens without blocking (a FIFO is refused), reads regular files of at
 * most DIFFUSE_PRESET_MAX_BYTES; messages never quote a non-preset
 * file's contents. */
DiffusePreset *diffuse_preset_load_file (const char *path, GError **error);
/* Written to a temporary file in the same folder and renamed into place;
 * an existing target that is not a regular file is refused. */
gboolean diffuse_preset_save_file (const DiffusePreset *preset,
                                   const char *path, GError **error);
void diffuse_preset_free (DiffusePreset *preset);
void diffuse_preset_apply (const DiffusePreset *preset,
                           DiffuseSampleParams *params);
/* The user's preset folder, shared by the CLI and the plug-in:
 * $DIFFUSE_USER_PRESETS_DIR when set, else
 * $XDG_CONFIG_HOME/gimp-diffusion/presets (~/.config/...). */
gchar *diffuse_presets_user_dir (void);
/* The shipped preset directory (set at build time). */
const char *diffuse_presets_system_dir (void);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DiffusePreset, diffuse_preset_free)

/* ------------------------------------------------------------------ */
/* Resampling float planes and fitting a target size (resample.c)       */

typedef enum
{
  DIFFUSE_RESAMPLE_NEAREST,  /* pixel replication / decimation */
  DIFFUSE_RESAMPLE_BILINEAR, /* triangle filter, widened when shrinking */
  DIFFUSE_RESAMPLE_COUNT
} DiffuseResampleKind;

/* src [channels, src_h, src_w] -> dst [channels, dst_h, dst_w], planar. */
void diffuse_resample (const float *src, gint channels, gint src_h, gint src_w,
                       float *dst, gint dst_h, gint dst_w,
                       DiffuseResampleKind kind);

/* The size to sample at for a target area of target_h x target_w:
 * the target itself when allow_native, both sides are at least the
 * model's image_size, and it passes diffuse_model_check_size with an area
 * of at most max_area_factor times image_size^2; otherwise the target's aspect ratio with the
 * shorter side at image_size (the longer one capped at 4x), each side a
 * multiple of 2^(n_levels-1).  Returns TRUE when *run_h x *run_w equals
 * the target (no scaling needed). */
gboolean diffuse_fit_size (const DiffuseModelConfig *config, gint target_h,
                           gint target_w, gboolean allow_native,
                           double max_area_factor, gint *run_h, gint *run_w);

G_END_DECLS

#endif /* DIFFUSE_H */
