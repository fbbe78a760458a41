/* The diffuse command-line tool: what its command files share. */
#ifndef DIFFUSE_CLI_H
#define DIFFUSE_CLI_H

#include "diffuse.h"

G_BEGIN_DECLS

/* Exit codes: 0 success, 1 failure (bad file, bad value for the model),
 * 2 usage error (unknown option, missing or unparsable argument). */
#define CLI_EXIT_FAILURE 1
#define CLI_EXIT_USAGE 2

/* Print "diffuse: MESSAGE" (one line) on stderr; return the exit code. */
int cli_fail (GError *error);
int cli_failf (const char *format, ...) G_GNUC_PRINTF (1, 2);
int cli_usage (const char *format, ...) G_GNUC_PRINTF (1, 2);

/* Parses argv with a context for "diffuse COMMAND"; on error prints the
 * message and returns FALSE (exit with CLI_EXIT_USAGE). */
gboolean cli_parse (GOptionContext *context, int *argc, char ***argv);

/* The preset directories searched, in override order (system, then the
 * user's, diffuse_presets_user_dir ()). NULL-terminated. */
gchar **cli_preset_dirs (void);
/* Every preset of those directories; a bad file is skipped with a
 * "diffuse: warning: ..." line on stderr.  dirs_out (may be NULL) gets
 * the directories. */
GPtrArray *cli_load_presets (gchar ***dirs_out);

/* text (from a file or the user) made safe for a terminal: invalid UTF-8
 * replaced, control characters written as \xNN. */
gchar *cli_escape (const char *text);

/* Bytes this process can still allocate: the least of MemAvailable, the
 * address-space limit (RLIMIT_AS) less what is mapped, and the cgroup's
 * memory.max less memory.current; G_MAXUINT64 when none is known. */
guint64 cli_available_memory (void);

/* Prints "~12.3 MiB" style sizes. */
gchar *cli_format_bytes (guint64 bytes);

/* Whether path's file name ends in ext (".png"), ignoring ASCII case. */
gboolean cli_has_extension (const char *path, const char *ext);

/* --timestep: one number for the batch or an .npy of B values (cli-forward.c) */
gboolean cli_parse_timesteps (const char *text, gint batch, float **out,
                              GError **error);
/* --class: an index or name for the batch, or an .npy of B labels; NULL
 * gives the null class (an error when the model has none). */
gboolean cli_parse_labels (const DiffuseModel *model, const char *text,
                           gint batch, gint **out, GError **error);

/* --precision of forward and classify: NULL (not given) is auto */
#define CLI_PRECISION_HELP                                                     \
  "Arithmetic: fp32, bf16 or auto (bf16 where the processor has it, else "     \
  "fp32; DIFFUSE_PRECISION overrides auto); default auto"
gboolean cli_parse_precision (const char *text, DiffusePrecision *out);
/* On stderr, where bf16 was asked for (precision is what it resolved to)
 * on a CPU without bf16 instructions: that it is emulated, and slower
 * than fp32 there. */
void cli_note_precision (DiffusePrecision precision);

int cli_info (int argc, char **argv);
int cli_presets (int argc, char **argv);
/* diffuse sample / img2img / inpaint (cli-sample.c; the mask and the
 * context window of inpaint in cli-inpaint.c) */
typedef enum
{
  CLI_SAMPLE,
  CLI_IMG2IMG,
  CLI_INPAINT
} CliSampleMode;
int cli_sample (int argc, char **argv, CliSampleMode mode);
/* --mask: a PNG of height x width; with an alpha channel its alpha, else
 * its grey value (colour: the mean of R, G, B), 0..255 -> 0..1 (white or
 * opaque = regenerate).  [height·width] floats, or NULL with a message. */
float *cli_load_mask (const char *path, gint height, gint width,
                      GError **error);
/* Crop [channels, H, W] at the plan's window into [channels, wh, ww]. */
float *cli_crop_window (const DiffuseInpaintPlan *plan, const float *image,
                        gint channels, gint height, gint width);
/* Paste a window [channels, wh, ww] into image [channels, H, W]. */
void cli_paste_window (const DiffuseInpaintPlan *plan, const float *window,
                       gint channels, gint height, gint width, float *image);
int cli_forward (int argc, char **argv);
int cli_classify (int argc, char **argv);
int cli_nll (int argc, char **argv);

G_END_DECLS

#endif /* DIFFUSE_CLI_H */
