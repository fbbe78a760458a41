/* The plug-in's procedure arguments for the settings table's settings,
 * described without GIMP so that a test can compare them with the engine,
 * the CLI and preset files (tests/test-settings.c); plugin.c turns each
 * description into a gimp_procedure_add_*_argument call. */
#ifndef DP_ARGS_H
#define DP_ARGS_H

#include "diffuse.h"

G_BEGIN_DECLS

typedef enum
{
  DP_GENERATE,
  DP_IMG2IMG,
  DP_SWEEP,
  DP_INPAINT /* regenerate the selection, continuing its surroundings */
} DpKind;

typedef struct
{
  const DiffuseSetting *setting; /* its table row */
  gint index;                    /* its table index (bit in a mask) */
  /* INT, DOUBLE: the GParamSpec's bounds and default.  An exclusive
   * bound (strength's 0) cannot be expressed there: the spec includes it
   * and the plug-in's table validation (dp_settings_validate) refuses it. */
  double min, max, default_value; /* the table's; inpaint's strength 1 */
  const char *default_nick;       /* ENUM: the default's name */
} DpArgSpec;

/* The table's arguments of a procedure, in table order: every setting
 * with DIFFUSE_SETTING_PLUGIN, except img2img-only ones outside img2img
 * and inpaint, inpaint-only ones outside inpaint, count outside generate
 * (one image per run), and guidance in the sweep (it has its own list of
 * values).  Returns how many were written
 * (at most max). */
gint dp_arg_specs (DpKind kind, DpArgSpec *out, gint max);

/* The table settings of a procedure as a mask. */
DiffuseSettingsMask dp_arg_mask (DpKind kind);

/* Which of a procedure's table arguments count as given, for
 * diffuse_settings_fit_model.  Procedure arguments always carry a value,
 * so an argument left out of a Script-Fu call cannot be told from one
 * given with its default's value: a DIFFUSE_SETTING_GUIDED_DEFAULT
 * argument (guidance) holding the table's default (2) counts as the
 * default, fitted to the model (0 where the model has no null class),
 * unless the preset set it (preset_given: the preset's keys); any other
 * value, and every other argument, counts as given. */
DiffuseSettingsMask dp_args_given (DpKind kind,
                                   const DiffuseSampleParams *values,
                                   DiffuseSettingsMask preset_given);

/* Every argument's value against the table's range (non-finite values
 * included, which GParamSpec lets through). */
gboolean dp_settings_validate (DpKind kind, const DiffuseSampleParams *values,
                               GError **error);

G_END_DECLS

#endif /* DP_ARGS_H */
