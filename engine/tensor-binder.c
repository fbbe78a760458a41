/* Binding parameters by name to safetensors tensors (tensor-binder.h). */
#include <stdarg.h>

#include "tensor-binder.h"

const float *
diffuse__bind (DiffuseBinder *bd, gint ndim, gint64 d0, gint64 d1, gint64 d2,
               gint64 d3, const char *fmt, ...)
{
  gint64 shape[4] = { d0, d1, d2, d3 };
  g_autofree gchar *name = NULL;
  const DiffuseTensorInfo *t;
  va_list args;

  if (bd->error)
    return NULL;
  va_start (args, fmt);
  name = g_strdup_vprintf (fmt, args);
  va_end (args);
  t = diffuse__safetensors_get_shaped (bd->st, bd->name, name, ndim, shape,
                                       &bd->error);
  if (t == NULL)
    return NULL;
  bd->used[t - diffuse__safetensors_get_nth (bd->st, 0)] = TRUE;
  bd->n_bound++;
  return t->data;
}

gboolean
diffuse__binder_check_all_used (const DiffuseBinder *bd, const char *what,
                                GError **error)
{
  guint n = diffuse__safetensors_get_n_tensors (bd->st);

  for (guint i = 0; i < n; i++)
    if (!bd->used[i])
      {
        g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL,
                     "%s: unexpected tensor '%s': this configuration's %s has "
                     "no such parameter (%u of the file's %u tensors used)",
                     bd->name, diffuse__safetensors_get_nth (bd->st, i)->name,
                     what, bd->n_bound, n);
        return FALSE;
      }
  if (bd->n_bound != n)
    {
      g_set_error (error, DIFFUSE_ERROR, DIFFUSE_ERROR_MODEL,
                   "%s: the %s bound %u tensors, the file has %u", bd->name,
                   what, bd->n_bound, n);
      return FALSE;
    }
  return TRUE;
}
