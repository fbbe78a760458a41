/* The plug-in's arguments from the settings table (args.h); no GIMP here. */
#include <string.h>

#include "args.h"

static gboolean
applies (const DiffuseSetting *s, DpKind kind)
{
  if (!(s->flags & DIFFUSE_SETTING_PLUGIN))
    return FALSE;
  if ((s->flags & DIFFUSE_SETTING_IMG2IMG) && kind != DP_IMG2IMG &&
      kind != DP_INPAINT)
    return FALSE;
  if ((s->flags & DIFFUSE_SETTING_INPAINT) && kind != DP_INPAINT)
    return FALSE;
  /* img2img and the sweep make one image per run (per value) */
  if (kind != DP_GENERATE && strcmp (s->name, "count") == 0)
    return FALSE;
  /* the sweep has "guidance-values" instead */
  if (kind == DP_SWEEP && strcmp (s->name, "guidance") == 0)
    return FALSE;
  return TRUE;
}

gint
dp_arg_specs (DpKind kind, DpArgSpec *out, gint max)
{
  gint n, k = 0;
  const DiffuseSetting *table = diffuse_settings (&n);

  for (gint i = 0; i < n && k < max; i++)
    {
      const DiffuseSetting *s = &table[i];
      DpArgSpec *a = &out[k];

      if (!applies (s, kind))
        continue;
      memset (a, 0, sizeof *a);
      a->setting = s;
      a->index = i;
      a->min = s->min;
      a->max = s->max;
      a->default_value = s->default_value;
      /* inpainting redraws the selection from noise unless told
       * otherwise (as diffuse inpaint) */
      if (kind == DP_INPAINT && strcmp (s->name, "strength") == 0)
        a->default_value = 1.0;
      if (s->type == DIFFUSE_SETTING_ENUM)
        a->default_nick = s->nicks[(gint) s->default_value];
      k++;
    }
  return k;
}

DiffuseSettingsMask
dp_arg_mask (DpKind kind)
{
  DpArgSpec specs[32];
  gint n = dp_arg_specs (kind, specs, G_N_ELEMENTS (specs));
  DiffuseSettingsMask mask = 0;

  for (gint i = 0; i < n; i++)
    mask |= 1u << specs[i].index;
  return mask;
}

DiffuseSettingsMask
dp_args_given (DpKind kind, const DiffuseSampleParams *values,
               DiffuseSettingsMask preset_given)
{
  DpArgSpec specs[32];
  gint n = dp_arg_specs (kind, specs, G_N_ELEMENTS (specs));
  DiffuseSettingsMask mask = 0;

  for (gint i = 0; i < n; i++)
    {
      const DiffuseSetting *s = specs[i].setting;
      DiffuseSettingsMask bit = 1u << specs[i].index;

      if ((s->flags & DIFFUSE_SETTING_GUIDED_DEFAULT) &&
          !(preset_given & bit) &&
          G_STRUCT_MEMBER (double, values, s->offset) == specs[i].default_value)
        continue;
      mask |= bit;
    }
  return mask;
}

gboolean
dp_settings_validate (DpKind kind, const DiffuseSampleParams *values,
                      GError **error)
{
  DpArgSpec specs[32];
  gint n = dp_arg_specs (kind, specs, G_N_ELEMENTS (specs));

  for (gint i = 0; i < n; i++)
    if (!diffuse_setting_check (specs[i].setting, values, error))
      return FALSE;
  return TRUE;
}
