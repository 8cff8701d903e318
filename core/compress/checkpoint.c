/* Compression checkpoints: weights, masks and wrapper attributes in one
 * safetensors file, so that pruning or quantization can stop and resume. */
#include "core/compress/wrapper.h"

#include <nnic/io.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT "nnic-compression-checkpoint-1"


static char *
mask_name (NnicWrapper *w, const char *param)
{
  return g_strconcat (nnic_wrapper_name (w), ".", param, "_mask", NULL);
}

static char *
attr_name (NnicWrapper *w, const char *attr)
{
  return g_strconcat (nnic_wrapper_name (w), ".attr.", attr, NULL);
}

gboolean
nnic_compressor_save_checkpoint (NnicCompressor *c, const char *path, GError **error)
{
  g_autoptr (NnicTensorDict) d = nnic_tensor_dict_new ();
  if (!nnic_model_add_state (nnic_compressor_model (c), d, error))
    goto fail;
  g_hash_table_insert (d->metadata, g_strdup ("format"), g_strdup (FORMAT));
  g_hash_table_insert (d->metadata, g_strdup ("algorithm"), g_strdup (nnic_compressor_algorithm_name (c)));
  g_hash_table_insert (d->metadata, g_strdup ("steps"),
                       g_strdup_printf ("%" G_GUINT64_FORMAT, nnic_compressor_steps (c)));
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    const char *params[2] = { "weight", "bias" };
    for (guint k = 0; k < 2; k++) {
      const NnicTensor *mask = nnic_wrapper_get_mask (w, params[k]);
      NnicTensor *copy = mask ? nnic_tensor_copy (mask, error) : NULL;
      g_autofree char *name = mask_name (w, params[k]);
      if (mask && (!copy || !nnic_tensor_dict_add (d, name, copy, error)))
        goto fail;
    }
    /* Whether the masks are final: a masker still gathering statistics
     * resumes gathering. */
    g_hash_table_insert (d->metadata, g_strconcat (nnic_wrapper_name (w), ".calculated", NULL),
                         g_strdup (w->if_calculated ? "1" : "0"));
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init (&it, w->attrs);
    while (g_hash_table_iter_next (&it, &key, &value)) {
      NnicAttr *a = value;
      g_autofree char *name = attr_name (w, key);
      if (a->tensor) {
        NnicTensor *copy = nnic_tensor_copy (a->tensor, error);
        if (!copy || !nnic_tensor_dict_add (d, name, copy, error))
          goto fail;
      } else {
        /* %.17g round-trips a double exactly. */
        g_hash_table_insert (d->metadata, g_steal_pointer (&name), g_strdup_printf ("%.17g", a->value));
      }
    }
  }
  return nnic_safetensors_save (path, d, error);
fail:
  g_prefix_error (error, "%s: ", path);
  return FALSE;
}

/* Checks that `t` fits mask `dst` of wrapper w. */
static gboolean
check_mask (const char *path, const char *name, const NnicTensor *dst, const NnicTensor *t,
            GError **error)
{
  if (!t) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "%s: no mask '%s' in the checkpoint", path, name);
    return FALSE;
  }
  if (t->dtype != NNIC_DTYPE_U8 || !nnic_tensor_same_shape (t, dst)) {
    g_autofree char *want = nnic_shape_to_string (dst->ndim, dst->shape);
    g_autofree char *got = nnic_shape_to_string (t->ndim, t->shape);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE, "%s: mask '%s' must be uint8 %s, got %s %s", path,
                 name, want, nnic_dtype_name (t->dtype), got);
    return FALSE;
  }
  return TRUE;
}

gboolean
nnic_compressor_load_checkpoint (NnicCompressor *c, const char *path, GError **error)
{
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (path, error);
  if (!d)
    return FALSE;
  const char *format = g_hash_table_lookup (d->metadata, "format");
  const char *algorithm = g_hash_table_lookup (d->metadata, "algorithm");
  if (g_strcmp0 (format, FORMAT) != 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: not an nnic compression checkpoint (format '%s', wanted '%s')", path,
                 format ? format : "none", FORMAT);
    return FALSE;
  }
  if (g_strcmp0 (algorithm, nnic_compressor_algorithm_name (c)) != 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s: a checkpoint of '%s', but this compressor runs '%s'", path,
                 algorithm ? algorithm : "none", nnic_compressor_algorithm_name (c));
    return FALSE;
  }
  /* Everything is checked before anything changes. */
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    const char *params[2] = { "weight", "bias" };
    for (guint k = 0; k < 2; k++) {
      const NnicTensor *dst = nnic_wrapper_get_mask (w, params[k]);
      g_autofree char *name = mask_name (w, params[k]);
      if (dst && !check_mask (path, name, dst, nnic_tensor_dict_get (d, name), error))
        return FALSE;
    }
  }
  g_autoptr (NnicTensorDict) state = nnic_tensor_dict_new ();
  for (guint i = 0; i < d->names->len; i++) {
    const char *name = g_ptr_array_index (d->names, i);
    if (g_str_has_suffix (name, "_mask") || strstr (name, ".attr."))
      continue;
    NnicTensor *view = g_new0 (NnicTensor, 1);
    *view = *(NnicTensor *) g_ptr_array_index (d->tensors, i);
    view->owns_data = FALSE;
    if (!nnic_tensor_dict_add (state, name, view, error))
      return FALSE;
  }
  if (!nnic_model_load_state (nnic_compressor_model (c), state, path, TRUE, error))
    return FALSE;

  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    const char *params[2] = { "weight", "bias" };
    for (guint k = 0; k < 2; k++) {
      g_autofree char *name = mask_name (w, params[k]);
      NnicTensor *t = nnic_tensor_dict_get (d, name);
      if (t && !nnic_wrapper_set_mask (w, params[k], t, error))
        return FALSE;
    }
    g_autofree char *calculated_key = g_strconcat (nnic_wrapper_name (w), ".calculated", NULL);
    w->if_calculated = g_strcmp0 (g_hash_table_lookup (d->metadata, calculated_key), "1") == 0;
    g_autofree char *prefix = g_strconcat (nnic_wrapper_name (w), ".attr.", NULL);
    for (guint k = 0; k < d->names->len; k++) {
      const char *name = g_ptr_array_index (d->names, k);
      if (g_str_has_prefix (name, prefix)) {
        NnicTensor *copy = nnic_tensor_copy (g_ptr_array_index (d->tensors, k), error);
        if (!copy || !nnic_wrapper_set_attribute_tensor (w, name + strlen (prefix), copy, error))
          return FALSE;
      }
    }
    GHashTableIter it;
    gpointer key, value;
    g_hash_table_iter_init (&it, d->metadata);
    while (g_hash_table_iter_next (&it, &key, &value))
      if (g_str_has_prefix (key, prefix) &&
          !nnic_wrapper_set_attribute_double (w, (const char *) key + strlen (prefix),
                                              g_ascii_strtod (value, NULL), error))
        return FALSE;
  }
  const char *steps = g_hash_table_lookup (d->metadata, "steps");
  nnic_compressor_restore_steps (c, steps ? g_ascii_strtoull (steps, NULL, 10) : 0);
  return TRUE;
}
