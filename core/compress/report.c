/* The compression report: what each wrapped layer kept, as JSON. */
#include "core/compress/wrapper.h"

#include <nnic/io.h>
#include <string.h>

/* One layer's row: name, type, weights, zeros (counted in the weights
 * themselves, so the report states what an export really holds),
 * sparsity, and the wrapper's number attributes under "attributes" (a
 * quantizer's scale, a masker's statistics counters, ...). */
static JsonObject *
layer_row (NnicWrapper *w, int64_t *kept, int64_t *total)
{
  JsonObject *o = json_object_new ();
  NnicTensor *weight = nnic_wrapper_weight (w);
  int64_t n = weight ? weight->numel : 0, zeros = 0;
  for (int64_t k = 0; k < n; k++)
    zeros += weight->f32[k] == 0.0f;
  *kept += n - zeros;
  *total += n;
  json_object_set_string_member (o, "name", nnic_wrapper_name (w));
  json_object_set_string_member (o, "type", nnic_wrapper_type (w));
  json_object_set_int_member (o, "weights", n);
  json_object_set_int_member (o, "zeros", zeros);
  json_object_set_double_member (o, "sparsity", n ? (double) zeros / (double) n : 0.0);
  JsonObject *attrs = json_object_new ();
  g_autoptr (GList) names = g_hash_table_get_keys (w->attrs);
  names = g_list_sort (names, (GCompareFunc) strcmp);
  for (GList *l = names; l; l = l->next) {
    NnicAttr *a = g_hash_table_lookup (w->attrs, l->data);
    if (!a->tensor)
      json_object_set_double_member (attrs, l->data, a->value);
  }
  json_object_set_object_member (o, "attributes", attrs);
  return o;
}

JsonObject *
nnic_compressor_report (NnicCompressor *c)
{
  JsonObject *r = json_object_new ();
  json_object_set_string_member (r, "algorithm", nnic_compressor_algorithm_name (c));
  const char *masker = nnic_compressor_masker (c);
  if (masker && g_strcmp0 (masker, nnic_compressor_algorithm_name (c)) != 0)
    json_object_set_string_member (r, "masker", masker);
  JsonArray *layers = json_array_new ();
  int64_t kept = 0, total = 0;
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++)
    json_array_add_object_element (layers, layer_row (nnic_compressor_wrapper (c, i), &kept, &total));
  json_object_set_array_member (r, "layers", layers);
  json_object_set_int_member (r, "weights_kept", kept);
  json_object_set_int_member (r, "weights_total", total);
  return r;
}

gboolean
nnic_compressor_write_report (NnicCompressor *c, const char *path, JsonObject *extra, GError **error)
{
  g_autoptr (JsonObject) report = nnic_compressor_report (c);
  g_autoptr (JsonObject) out = json_object_new ();
  /* The caller's members (model, accuracies) first: they read best on top. */
  if (extra) {
    g_autoptr (GList) members = json_object_get_members (extra);
    for (GList *l = members; l; l = l->next)
      json_object_set_member (out, l->data, json_node_copy (json_object_get_member (extra, l->data)));
  }
  g_autoptr (GList) members = json_object_get_members (report);
  for (GList *l = members; l; l = l->next)
    json_object_set_member (out, l->data, json_node_copy (json_object_get_member (report, l->data)));
  return nnic_write_json_atomic (path, out, error);
}
