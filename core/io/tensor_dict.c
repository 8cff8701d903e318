/* An ordered list of named tensors (a state dict) plus string metadata.
 *
 * Order matters: it is the order tensors are written in, and the order a
 * file listed them in. Lookups are linear; state dicts hold at most a few
 * hundred entries, and the code that does many lookups (nnic_model_load)
 * builds its own index.
 */
#include <nnic/io.h>
#include <nnic/error.h>

#include <string.h>

NnicTensorDict *
nnic_tensor_dict_new (void)
{
  NnicTensorDict *d = g_new0 (NnicTensorDict, 1);
  d->names = g_ptr_array_new_with_free_func (g_free);
  d->tensors = g_ptr_array_new_with_free_func ((GDestroyNotify) nnic_tensor_free);
  d->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return d;
}

void
nnic_tensor_dict_free (NnicTensorDict *d)
{
  if (!d)
    return;
  g_ptr_array_unref (d->names);
  g_ptr_array_unref (d->tensors);
  g_hash_table_unref (d->metadata);
  g_free (d);
}

static int
find_index (const NnicTensorDict *d, const char *name)
{
  for (guint i = 0; i < d->names->len; i++)
    if (strcmp (g_ptr_array_index (d->names, i), name) == 0)
      return (int) i;
  return -1;
}

gboolean
nnic_tensor_dict_add (NnicTensorDict *d, const char *name, NnicTensor *t, GError **error)
{
  g_return_val_if_fail (d != NULL && name != NULL && t != NULL, FALSE);
  if (find_index (d, name) >= 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "duplicate tensor name '%s'", name);
    /* The caller handed over ownership; do not leak on failure. */
    nnic_tensor_free (t);
    return FALSE;
  }
  g_ptr_array_add (d->names, g_strdup (name));
  g_ptr_array_add (d->tensors, t);
  return TRUE;
}

NnicTensor *
nnic_tensor_dict_get (const NnicTensorDict *d, const char *name)
{
  g_return_val_if_fail (d != NULL && name != NULL, NULL);
  int i = find_index (d, name);
  return i >= 0 ? g_ptr_array_index (d->tensors, (guint) i) : NULL;
}

guint
nnic_tensor_dict_len (const NnicTensorDict *d)
{
  g_return_val_if_fail (d != NULL, 0);
  return d->names->len;
}
