/* A model file the plug-in offers (a diffusion model or a classifier),
 * without GIMP, so that the dialog (ui/) and the plug-in's file lists
 * (plugin/model-files.c, tested alone) share it. */
#ifndef DP_MODEL_ENTRY_H
#define DP_MODEL_ENTRY_H

#include "diffuse.h"

G_BEGIN_DECLS

typedef struct
{
  gchar *name; /* file name without .safetensors: the combo's id */
  gchar *path;
  /* its header's configuration (diffuse_model_file_read_config);
   * readable FALSE when the header could not be read (config zeroed) */
  gboolean readable;
  DiffuseModelConfig config;
} DpModelEntry;

void dp_model_entry_free (DpModelEntry *entry);

G_END_DECLS

#endif /* DP_MODEL_ENTRY_H */
