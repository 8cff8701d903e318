/* ONNX import: the values a graph's nodes read and write — outputs of nnic
 * nodes, and constants (initializers, Constant nodes, bound inputs, folded
 * shapes) whose data is copied straight into the model's parameters. */
#include "core/onnx/internal.h"

#include <string.h>

static OnnxValue *
store (NnicOnnxImport *ctx, OnnxValue *v, const char *name)
{
  v->name = g_strdup (name);
  /* constants made while converting (folded, Constant nodes): their uses
   * are known from the plan (initializers get theirs in import.c) */
  if (v->kind == ONNX_VALUE_CONST && ctx->use_counts)
    v->uses = GPOINTER_TO_UINT (g_hash_table_lookup (ctx->use_counts, name));
  g_ptr_array_add (ctx->value_store, v);
  g_hash_table_replace (ctx->values, g_strdup (name), v);
  return v;
}

OnnxValue *
nnic_onnx_value_add_node (NnicOnnxImport *ctx, const char *name, const char *node)
{
  OnnxValue *v = g_new0 (OnnxValue, 1);
  v->kind = ONNX_VALUE_NODE;
  v->node = g_strdup (node);
  return store (ctx, v, name);
}

OnnxValue *
nnic_onnx_value_add_proto (NnicOnnxImport *ctx, const char *name, Onnx__TensorProto *t,
                           gboolean initializer)
{
  OnnxValue *v = g_new0 (OnnxValue, 1);
  v->kind = ONNX_VALUE_CONST;
  v->proto = t;
  v->initializer = initializer;
  return store (ctx, v, name);
}

OnnxValue *
nnic_onnx_value_add_tensor (NnicOnnxImport *ctx, const char *name, const NnicTensor *t,
                            gboolean owned)
{
  OnnxValue *v = g_new0 (OnnxValue, 1);
  v->kind = ONNX_VALUE_CONST;
  v->tensor = t;
  v->owned = owned ? (NnicTensor *) t : NULL;
  return store (ctx, v, name);
}

void
nnic_onnx_value_alias (NnicOnnxImport *ctx, const char *alias, OnnxValue *v)
{
  g_hash_table_replace (ctx->values, g_strdup (alias), v);
}

OnnxValue *
nnic_onnx_value_lookup (NnicOnnxImport *ctx, const char *name)
{
  return name ? g_hash_table_lookup (ctx->values, name) : NULL;
}

OnnxValue *
nnic_onnx_input_opt (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k, GError **error)
{
  if (k >= node->n_input || !node->input[k] || !*node->input[k])
    return NULL;
  OnnxValue *v = nnic_onnx_value_lookup (ctx, node->input[k]);
  if (!v)
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "input '%s' is neither a graph input, an initializer nor the output of "
                          "an earlier node",
                          node->input[k]);
  return v;
}

OnnxValue *
nnic_onnx_input (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k, GError **error)
{
  GError *local = NULL;
  OnnxValue *v = nnic_onnx_input_opt (ctx, node, k, &local);
  if (!v && !local)
    nnic_onnx_node_error (ctx, node, &local, NNIC_ERROR_FORMAT, "input %zu is missing", k);
  if (local)
    g_propagate_error (error, local);
  return v;
}

OnnxValue *
nnic_onnx_input_node (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k, GError **error)
{
  OnnxValue *v = nnic_onnx_input (ctx, node, k, error);
  if (v && v->kind != ONNX_VALUE_NODE) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "input %zu ('%s') is a constant; nnic needs a value computed from the "
                          "model's input there",
                          k, v->name);
    return NULL;
  }
  return v;
}

OnnxValue *
nnic_onnx_input_const (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k,
                       const char *role, GError **error)
{
  OnnxValue *v = nnic_onnx_input (ctx, node, k, error);
  if (v && v->kind != ONNX_VALUE_CONST) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the %s ('%s') is computed in the graph; nnic needs a constant there "
                          "(an initializer or a Constant node)",
                          role, node->input[k]);
    return NULL;
  }
  return v;
}

int
nnic_onnx_value_shape (NnicOnnxImport *ctx, const OnnxValue *v, int64_t shape[NNIC_MAX_DIMS])
{
  int i = nnic_model_find_node (ctx->m, v->node);
  return i < 0 ? -1 : nnic_model_node_shape (ctx->m, (guint) i, shape);
}

int
nnic_onnx_value_dims (NnicOnnxImport *ctx, const OnnxValue *v, int64_t dims[NNIC_MAX_DIMS + 1])
{
  if (v->view)
    return nnic_onnx_view_dims (ctx, v, dims);
  int64_t s[NNIC_MAX_DIMS];
  int nd = nnic_onnx_value_shape (ctx, v, s);
  if (nd < 0)
    return -1;
  if (v->merged && nd >= 1) {
    /* the per-sample [k, ...] of an ONNX [N*k, ...] */
    memcpy (dims, s, sizeof (int64_t) * (size_t) nd);
    dims[0] = nnic_onnx_batch_times (s[0]);
    return nd;
  }
  dims[0] = NNIC_ONNX_BATCH;
  memcpy (dims + 1, s, sizeof (int64_t) * (size_t) nd);
  return nd + 1;
}

gboolean
nnic_onnx_value_axis (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k, const OnnxValue *v,
                      int64_t axis, int *per_axis, GError **error)
{
  int64_t dims[NNIC_MAX_DIMS + 1];
  const int rank = nnic_onnx_value_dims (ctx, v, dims);
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) {
    g_autofree char *s = nnic_onnx_dims_string (rank, dims);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "axis %" G_GINT64_FORMAT " is out of range for input %zu ('%s') %s", axis, k,
                          v->name, s);
    return FALSE;
  }
  if (a == 0) {
    g_autofree char *s = nnic_onnx_dims_string (rank, dims);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "axis %" G_GINT64_FORMAT " of input %zu ('%s') %s is the batch "
                          "dimension%s; nnic works on each sample alone",
                          axis, k, v->name, s, v->merged ? " (merged by a Reshape)" : "");
    return FALSE;
  }
  *per_axis = (int) (v->merged ? a : a - 1);
  return TRUE;
}

static char *
const_what (const OnnxValue *v)
{
  return g_strdup_printf ("%s '%s'", v->initializer ? "initializer" : "constant", v->name);
}

/* A folded constant is freed after its last use the plan counted: a read
 * after that would be a bug in the counting, an error rather than a crash. */
static gboolean
still_there (const OnnxValue *v, GError **error)
{
  if (v->proto || v->tensor)
    return TRUE;
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_FAILED,
               "constant '%s' is read after its last counted use (an importer bug)", v->name);
  return FALSE;
}

gboolean
nnic_onnx_const_shape (NnicOnnxImport *ctx, const OnnxValue *v, int *ndim,
                       int64_t shape[NNIC_MAX_DIMS], int64_t *numel, GError **error)
{
  if (!still_there (v, error))
    return FALSE;
  if (v->proto) {
    g_autofree char *what = const_what (v);
    return nnic_onnx_tensor_shape (ctx, v->proto, what, ndim, shape, numel, error);
  }
  *ndim = v->tensor->ndim;
  memcpy (shape, v->tensor->shape, sizeof (int64_t) * (size_t) v->tensor->ndim);
  *numel = v->tensor->numel;
  return TRUE;
}

static gboolean
check_tensor (const OnnxValue *v, NnicDType dtype, int64_t numel, GError **error)
{
  if (v->tensor->dtype != dtype) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED, "constant '%s' is %s, not %s", v->name,
                 nnic_dtype_name (v->tensor->dtype), nnic_dtype_name (dtype));
    return FALSE;
  }
  if (v->tensor->numel != numel) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "constant '%s' has %" G_GINT64_FORMAT " elements, %" G_GINT64_FORMAT " expected",
                 v->name, v->tensor->numel, numel);
    return FALSE;
  }
  return TRUE;
}

gboolean
nnic_onnx_const_f32 (NnicOnnxImport *ctx, const OnnxValue *v, float *dst, int64_t numel,
                     GError **error)
{
  if (!still_there (v, error))
    return FALSE;
  if (v->proto) {
    g_autofree char *what = const_what (v);
    return nnic_onnx_tensor_read_f32 (ctx, v->proto, what, dst, numel, error);
  }
  if (!check_tensor (v, NNIC_DTYPE_F32, numel, error))
    return FALSE;
  if (numel)
    memcpy (dst, v->tensor->f32, sizeof (float) * (size_t) numel);
  return TRUE;
}

gboolean
nnic_onnx_const_i64 (NnicOnnxImport *ctx, const OnnxValue *v, int64_t *dst, int64_t numel,
                     GError **error)
{
  if (!still_there (v, error))
    return FALSE;
  if (v->proto) {
    g_autofree char *what = const_what (v);
    return nnic_onnx_tensor_read_i64 (ctx, v->proto, what, dst, numel, error);
  }
  if (!check_tensor (v, NNIC_DTYPE_I64, numel, error))
    return FALSE;
  if (numel)
    memcpy (dst, v->tensor->i64, sizeof (int64_t) * (size_t) numel);
  return TRUE;
}

const NnicTensor *
nnic_onnx_const_tensor (NnicOnnxImport *ctx, OnnxValue *v, GError **error)
{
  if (v->tensor)
    return v->tensor;
  if (!still_there (v, error))
    return NULL;
  g_autofree char *what = const_what (v);
  v->owned = nnic_onnx_tensor_to_nnic (ctx, v->proto, what, error);
  v->tensor = v->owned;
  return v->tensor;
}

double
nnic_onnx_tensor_element (const NnicTensor *t, int64_t i)
{
  switch (t->dtype) {
  case NNIC_DTYPE_F32:
    return t->f32[i];
  case NNIC_DTYPE_I64:
    return (double) t->i64[i];
  case NNIC_DTYPE_I32:
    return t->i32[i];
  case NNIC_DTYPE_I8:
    return t->i8[i];
  case NNIC_DTYPE_U8:
    return t->u8[i];
  }
  g_return_val_if_reached (0.0);
}

gboolean
nnic_onnx_const_scalar (NnicOnnxImport *ctx, OnnxValue *v, double *out, GError **error)
{
  const NnicTensor *t = nnic_onnx_const_tensor (ctx, v, error);
  if (!t)
    return FALSE;
  if (t->numel != 1) {
    g_autofree char *s = nnic_shape_to_string (t->ndim, t->shape);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "constant '%s' has shape %s; a single value is needed", v->name, s);
    return FALSE;
  }
  *out = nnic_onnx_tensor_element (t, 0);
  return TRUE;
}

gboolean
nnic_onnx_const_to_param (NnicOnnxImport *ctx, const Onnx__NodeProto *node, OnnxValue *v,
                          const char *param, gboolean transpose, double scale, GError **error)
{
  NnicParam *p = nnic_model_find_param (ctx->m, param, error);
  if (!p)
    return FALSE;
  NnicTensor *dst = p->value;
  gboolean ok;
  if (transpose) {
    /* dst [N, K] from the constant [K, N] */
    g_return_val_if_fail (dst->ndim == 2, FALSE);
    int64_t N = dst->shape[0], K = dst->shape[1];
    float *tmp = g_try_malloc (sizeof (float) * (size_t) MAX (dst->numel, 1));
    if (!tmp) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_MEMORY, "out of memory reading '%s'", v->name);
      ok = FALSE;
    } else {
      ok = nnic_onnx_const_f32 (ctx, v, tmp, dst->numel, error);
      for (int64_t k = 0; ok && k < K; k++)
        for (int64_t n = 0; n < N; n++)
          dst->f32[n * K + k] = tmp[k * N + n];
      g_free (tmp);
    }
  } else {
    ok = nnic_onnx_const_f32 (ctx, v, dst->f32, dst->numel, error);
  }
  if (!ok) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  if (scale != 1.0)
    for (int64_t i = 0; i < dst->numel; i++)
      dst->f32[i] = (float) (dst->f32[i] * scale);
  return TRUE;
}

void
nnic_onnx_inputs_done (NnicOnnxImport *ctx, const Onnx__NodeProto *node)
{
  for (size_t k = 0; k < node->n_input; k++) {
    OnnxValue *v = nnic_onnx_value_lookup (ctx, node->input[k]);
    if (!v || v->kind != ONNX_VALUE_CONST || v->uses == 0 || --v->uses > 0)
      continue;
    if (v->proto)
      nnic_onnx_tensor_release (ctx->proto, v->proto);
    if (v->owned) {
      /* a folded weight, or an initializer's converted copy */
      g_clear_pointer (&v->owned, nnic_tensor_free);
      v->tensor = NULL;
    }
  }
}
