/* Saving and restoring a compression in progress in memory: what
 * search-based pruners need to try a candidate and go back. */
#include "core/compress/wrapper.h"

struct _NnicCompressorState {
  GPtrArray *params; /* a copy of every model parameter and buffer */
  GPtrArray *masks;  /* weight and bias mask (or NULL) of each wrapper */
};

static void
free_tensor (gpointer t)
{
  nnic_tensor_free (t);
}

void
nnic_compressor_state_free (NnicCompressorState *s)
{
  if (!s)
    return;
  g_ptr_array_unref (s->params);
  g_ptr_array_unref (s->masks);
  g_free (s);
}

gboolean
nnic_compressor_save_state (NnicCompressor *c, NnicCompressorState **state, GError **error)
{
  NnicModel *m = nnic_compressor_model (c);
  NnicCompressorState *s = g_new0 (NnicCompressorState, 1);
  s->params = g_ptr_array_new_with_free_func (free_tensor);
  s->masks = g_ptr_array_new_with_free_func (free_tensor);
  gboolean ok = TRUE;
  for (guint i = 0; ok && i < nnic_model_n_params (m); i++) {
    NnicTensor *t = nnic_tensor_copy (nnic_model_param (m, i)->value, error);
    ok = t != NULL;
    g_ptr_array_add (s->params, t);
  }
  for (guint i = 0; ok && i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    const NnicTensor *masks[2] = { w->weight_mask, w->bias_mask };
    for (guint p = 0; ok && p < 2; p++) {
      NnicTensor *copy = masks[p] ? nnic_tensor_copy (masks[p], error) : NULL;
      ok = !masks[p] || copy;
      g_ptr_array_add (s->masks, copy);
    }
  }
  if (!ok) {
    nnic_compressor_state_free (s);
    return FALSE;
  }
  nnic_compressor_state_free (*state);
  *state = s;
  return TRUE;
}

gboolean
nnic_compressor_restore_state (NnicCompressor *c, const NnicCompressorState *s, GError **error)
{
  NnicModel *m = nnic_compressor_model (c);
  for (guint i = 0; i < s->params->len; i++)
    if (!nnic_tensor_copy_into (nnic_model_param (m, i)->value, g_ptr_array_index (s->params, i), error))
      return FALSE;
  /* The masks last: setting them zeros the pruned weights again. */
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++)
    for (guint p = 0; p < 2; p++) {
      const NnicTensor *mask = g_ptr_array_index (s->masks, 2 * i + p);
      if (mask && !nnic_wrapper_set_mask (nnic_compressor_wrapper (c, i), p ? "bias" : "weight", mask, error))
        return FALSE;
    }
  return TRUE;
}
