/* ONNX import: node attributes, read with their types checked. */
#include "core/onnx/internal.h"

#include <string.h>

typedef Onnx__AttributeProto AP;

const AP *
nnic_onnx_attr (const Onnx__NodeProto *node, const char *name)
{
  for (size_t i = 0; i < node->n_attribute; i++)
    if (node->attribute[i]->name && !strcmp (node->attribute[i]->name, name))
      return node->attribute[i];
  return NULL;
}

/* The attribute's type: the `type` field, or for old writers that left it
 * out, the field that is set. */
static int
attr_type (const AP *a)
{
  if (a->has_type && a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
    return a->type;
  if (a->has_f)
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
  if (a->has_i)
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
  if (a->has_s)
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING;
  if (a->t)
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
  if (a->n_ints)
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
  if (a->n_floats)
    return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS;
  return ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED;
}

static gboolean
expect (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const AP *a, int type,
        const char *type_name, GError **error)
{
  int t = attr_type (a);
  /* An empty list has no field set: accept it as the list type. */
  if (t == type || (t == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED &&
                    (type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS ||
                     type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS)))
    return TRUE;
  nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "attribute '%s' is not %s", a->name,
                        type_name);
  return FALSE;
}

gboolean
nnic_onnx_attr_int (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                    int64_t def, int64_t *out, GError **error)
{
  const AP *a = nnic_onnx_attr (node, name);
  *out = def;
  if (!a)
    return TRUE;
  if (!expect (ctx, node, a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, "an integer", error))
    return FALSE;
  *out = a->i;
  return TRUE;
}

gboolean
nnic_onnx_attr_float (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                      double def, double *out, GError **error)
{
  const AP *a = nnic_onnx_attr (node, name);
  *out = def;
  if (!a)
    return TRUE;
  if (!expect (ctx, node, a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, "a float", error))
    return FALSE;
  *out = a->f;
  return TRUE;
}

gboolean
nnic_onnx_attr_string (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                       const char *def, char **out, GError **error)
{
  const AP *a = nnic_onnx_attr (node, name);
  *out = NULL;
  if (a && !expect (ctx, node, a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, "a string", error))
    return FALSE;
  /* Bytes, not terminated: a copy up to the first NUL. */
  *out = a ? g_strndup ((const char *) a->s.data, a->s.len) : g_strdup (def);
  return TRUE;
}

gboolean
nnic_onnx_attr_ints (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                     size_t n_expected, const int64_t **values, size_t *n, GError **error)
{
  const AP *a = nnic_onnx_attr (node, name);
  *values = NULL;
  *n = 0;
  if (!a)
    return TRUE;
  if (!expect (ctx, node, a, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, "a list of integers",
               error))
    return FALSE;
  if (n_expected > 0 && a->n_ints != n_expected) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "attribute '%s' has %zu values; nnic imports 2-D layers, which need %zu",
                          name, a->n_ints, n_expected);
    return FALSE;
  }
  *values = a->ints;
  *n = a->n_ints;
  return TRUE;
}

gboolean
nnic_onnx_attrs_known (NnicOnnxImport *ctx, const Onnx__NodeProto *node,
                       const char *const *known, GError **error)
{
  for (size_t i = 0; i < node->n_attribute; i++) {
    const char *name = node->attribute[i]->name ? node->attribute[i]->name : "";
    gboolean ok = FALSE;
    for (const char *const *k = known; *k && !ok; k++)
      ok = !strcmp (*k, name);
    if (!ok) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "attribute '%s' is not supported", name);
      return FALSE;
    }
  }
  return TRUE;
}
