/* nnic — files: safetensors and NumPy .npy.
 *
 * Writers go to a temporary file in the same directory and rename it over
 * the target, so a failed write never destroys a file already saved.
 * Readers check every size against the file before allocating.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <nnic/export.h>
#include <nnic/tensor.h>
#include <nnic/model.h>

G_BEGIN_DECLS

/* An ordered list of named tensors: a state dict. */
typedef struct {
  GPtrArray *names;   /* char *, owned */
  GPtrArray *tensors; /* NnicTensor *, owned */
  GHashTable *metadata; /* char * → char *, the "__metadata__" entry; may be empty */
} NnicTensorDict;

NNIC_API NnicTensorDict *nnic_tensor_dict_new (void);
NNIC_API void nnic_tensor_dict_free (NnicTensorDict *d);
/* Takes ownership of `t` (freed too when the call fails on a duplicate name). */
NNIC_API gboolean nnic_tensor_dict_add (NnicTensorDict *d, const char *name, NnicTensor *t,
                                        GError **error);
NNIC_API NnicTensor *nnic_tensor_dict_get (const NnicTensorDict *d, const char *name);
NNIC_API guint nnic_tensor_dict_len (const NnicTensorDict *d);

/* safetensors (F32, I64, I32, U8, I8; also F64/F16/BF16 on reading, converted to F32). */
NNIC_API NnicTensorDict *nnic_safetensors_load (const char *path, GError **error);
NNIC_API gboolean nnic_safetensors_save (const char *path, const NnicTensorDict *d, GError **error);

/* A model's state dict: parameters and buffers under their state_dict names.
 * Buffers that nnic keeps as float (BatchNorm's num_batches_tracked) are
 * written as I64, as PyTorch does. */
NNIC_API gboolean nnic_model_save (NnicModel *m, const char *path, GError **error);
/* Loads every entry of the model; a missing, unexpected or mis-shaped entry
 * is an error naming it (num_batches_tracked may be absent). Nothing is
 * changed in the model unless the whole file fits. */
NNIC_API gboolean nnic_model_load (NnicModel *m, const char *path, GError **error);

/* The same, from and into a dict (checkpoints that hold more than the
 * model): add_state appends the model's entries (views of its tensors,
 * valid while the model lives); load_state takes them from `d`, refusing
 * anything else in it when `strict`. `source` names `d` in errors. */
NNIC_API gboolean nnic_model_add_state (NnicModel *m, NnicTensorDict *d, GError **error);
NNIC_API gboolean nnic_model_load_state (NnicModel *m, const NnicTensorDict *d, const char *source,
                                         gboolean strict, GError **error);

/* NumPy .npy, version 1.0/2.0/3.0, little-endian, C order: <f4, <f8 (read
 * as F32), <i8, <i4, |u1, |i1, and bool (as U8). */
NNIC_API NnicTensor *nnic_npy_load (const char *path, GError **error);
NNIC_API gboolean nnic_npy_save (const char *path, const NnicTensor *t, GError **error);

/* Writes `len` bytes to `path` through a temporary file and rename. */
NNIC_API gboolean nnic_write_file_atomic (const char *path, const void *data, size_t len,
                                          GError **error);
/* Writes a JSON object, pretty-printed, the same way. */
NNIC_API gboolean nnic_write_json_atomic (const char *path, JsonObject *object, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnicTensorDict, nnic_tensor_dict_free)

G_END_DECLS
