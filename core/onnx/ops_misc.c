/* ONNX import: the ops without weights — Add, Relu, Clip, Flatten,
 * Reshape, Concat, Dropout, Softmax; and the refusal of QuantizeLinear and
 * DequantizeLinear on activations. */
#include "core/onnx/internal.h"

#include <math.h>
#include <string.h>

typedef Onnx__NodeProto NP;


static gboolean
no_attrs (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  static const char *const none[] = { NULL };
  return nnic_onnx_attrs_known (ctx, node, none, error);
}

static char *
full_shape (int nd, const int64_t *shape)
{
  g_autofree char *s = nnic_shape_to_string (nd, shape);
  return g_strdup_printf ("[N%s%s", nd ? ", " : "]", s + 1);
}

static gboolean
convert_add (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  OnnxValue *a = nnic_onnx_input (ctx, node, 0, error);
  OnnxValue *b = a ? nnic_onnx_input (ctx, node, 1, error) : NULL;
  if (!b || !no_attrs (ctx, node, error))
    return FALSE;
  if (a->kind != ONNX_VALUE_NODE || b->kind != ONNX_VALUE_NODE) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "adding a constant ('%s') is not supported (only as the bias of a "
                          "MatMul it follows)",
                          a->kind == ONNX_VALUE_CONST ? a->name : b->name);
    return FALSE;
  }
  int64_t sa[NNIC_MAX_DIMS], sb[NNIC_MAX_DIMS];
  int na = nnic_onnx_value_shape (ctx, a, sa), nb = nnic_onnx_value_shape (ctx, b, sb);
  if (na != nb || memcmp (sa, sb, sizeof (int64_t) * (size_t) MAX (na, 0)) != 0) {
    g_autofree char *s1 = full_shape (na, sa);
    g_autofree char *s2 = full_shape (nb, sb);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "adding %s and %s (broadcasting) is not supported; the shapes must be "
                          "equal",
                          s1, s2);
    return FALSE;
  }
  return nnic_onnx_added (ctx, node, name, nnic_model_add_add (ctx->m, name, a->node, b->node, error), error);
}

static gboolean
convert_relu (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  return x && no_attrs (ctx, node, error) &&
         nnic_onnx_added (ctx, node, name, nnic_model_add_relu (ctx->m, name, x->node, error), error);
}

/* Clip's bound `k` (1: min, 2: max): an input from opset 11, an attribute before. */
static gboolean
clip_bound (NnicOnnxImport *ctx, const NP *node, size_t k, double def, double *out,
            GError **error)
{
  const char *attr = k == 1 ? "min" : "max";
  if (!nnic_onnx_attr_float (ctx, node, attr, def, out, error))
    return FALSE;
  GError *local = NULL;
  OnnxValue *v = nnic_onnx_input_opt (ctx, node, k, &local);
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  if (!v)
    return TRUE;
  if (v->kind != ONNX_VALUE_CONST)
    return nnic_onnx_input_const (ctx, node, k, attr, error) != NULL;
  if (!nnic_onnx_const_scalar (ctx, v, out, error)) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  return TRUE;
}

static gboolean
convert_clip (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  static const char *const known[] = { "min", "max", NULL };
  double lo, hi;
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !clip_bound (ctx, node, 1, -INFINITY, &lo, error) ||
      !clip_bound (ctx, node, 2, INFINITY, &hi, error))
    return FALSE;
  if (isnan (lo) || isnan (hi) || lo > hi) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "min %g and max %g do not make an interval", lo, hi);
    return FALSE;
  }
  gboolean ok;
  if (lo == 0.0 && hi == 6.0)
    ok = nnic_model_add_relu6 (ctx->m, name, x->node, error);
  else if (lo == 0.0 && isinf (hi))
    ok = nnic_model_add_relu (ctx->m, name, x->node, error);
  else
    ok = nnic_model_add_hardtanh (ctx->m, name, x->node, lo, hi, error);
  return nnic_onnx_added (ctx, node, name, ok, error);
}

static gboolean
convert_flatten (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  static const char *const known[] = { "axis", NULL };
  int64_t axis, s[NNIC_MAX_DIMS];
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "axis", 1, &axis, error))
    return FALSE;
  int rank = nnic_onnx_value_shape (ctx, x, s) + 1;
  if (axis < 0)
    axis += rank;
  if (axis != 1) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "axis %" G_GINT64_FORMAT " is not supported (only 1: everything after "
                          "the batch dimension)",
                          axis);
    return FALSE;
  }
  return nnic_onnx_added (ctx, node, name, nnic_model_add_flatten (ctx->m, name, x->node, error), error);
}

static gboolean
convert_reshape (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  static const char *const known[] = { "allowzero", NULL };
  int64_t allowzero;
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  OnnxValue *sv = x ? nnic_onnx_input_const (ctx, node, 1, "shape", error) : NULL;
  if (!sv || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "allowzero", 0, &allowzero, error))
    return FALSE;
  const NnicTensor *st = nnic_onnx_const_tensor (ctx, sv, error);
  if (!st) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  if (st->dtype != NNIC_DTYPE_I64 || st->ndim != 1 || st->numel < 2 || st->numel > NNIC_MAX_DIMS + 1) {
    g_autofree char *ss = nnic_shape_to_string (st->ndim, st->shape);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the shape '%s' (%s %s) must be int64 [2..%d]: the batch and at least "
                          "one dimension",
                          sv->name, nnic_dtype_name (st->dtype), ss, NNIC_MAX_DIMS + 1);
    return FALSE;
  }
  int64_t in[NNIC_MAX_DIMS];
  int in_nd = nnic_onnx_value_shape (ctx, x, in);
  int64_t in_numel = nnic_shape_numel (in_nd, in);
  const int64_t *s = st->i64;
  int nd = (int) st->numel - 1;
  g_autofree char *text = NULL;
  {
    GString *g = g_string_new ("[");
    for (int i = 0; i <= nd; i++)
      if (s[i] == NNIC_ONNX_BATCH)
        g_string_append_printf (g, "%sN", i ? ", " : "");
      else
        g_string_append_printf (g, "%s%" G_GINT64_FORMAT, i ? ", " : "", s[i]);
    g_string_append_c (g, ']');
    text = g_string_free (g, FALSE);
  }
  gboolean batch_first = s[0] == NNIC_ONNX_BATCH || s[0] == -1 ||
                         (s[0] == 0 && !allowzero) || (ctx->batch > 0 && s[0] == ctx->batch);
  if (!batch_first) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the shape %s does not keep the batch dimension first", text);
    return FALSE;
  }
  int64_t per[NNIC_MAX_DIMS];
  int n_infer = 0;
  for (int i = 1; i <= nd; i++) {
    int64_t d = s[i];
    if (d == 0 && !allowzero && i - 1 < in_nd)
      d = in[i - 1];
    if (d == NNIC_ONNX_BATCH || d < -1 || (d == 0 && allowzero) || (d == 0 && i - 1 >= in_nd)) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "the shape %s is not a per-sample reshape nnic can do", text);
      return FALSE;
    }
    n_infer += d == -1;
    per[i - 1] = d;
  }
  if (s[0] == -1) {
    /* the batch is inferred: the rest must be exactly one sample */
    int64_t n = n_infer ? -1 : nnic_shape_numel (nd, per);
    if (n != in_numel) {
      g_autofree char *xs = full_shape (in_nd, in);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "the shape %s would change the batch dimension of the input %s",
                            text, xs);
      return FALSE;
    }
  }
  return nnic_onnx_added (ctx, node, name, nnic_model_add_reshape (ctx->m, name, x->node, per, nd, error),
                error);
}

static gboolean
convert_concat (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  static const char *const known[] = { "axis", NULL };
  int64_t axis;
  if (!nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "axis", G_MININT64, &axis, error))
    return FALSE;
  if (node->n_input < 1 || axis == G_MININT64) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          node->n_input < 1 ? "no inputs" : "the axis attribute is missing");
    return FALSE;
  }
  g_autofree const char **inputs = g_new0 (const char *, node->n_input);
  int rank = 0;
  for (size_t k = 0; k < node->n_input; k++) {
    OnnxValue *v = nnic_onnx_input_node (ctx, node, k, error);
    if (!v)
      return FALSE;
    int64_t s[NNIC_MAX_DIMS];
    if (k == 0)
      rank = nnic_onnx_value_shape (ctx, v, s) + 1;
    inputs[k] = v->node;
  }
  if (axis < 0)
    axis += rank;
  if (axis != 1) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "axis %" G_GINT64_FORMAT " is not supported (only 1, the channels)", axis);
    return FALSE;
  }
  return nnic_onnx_added (ctx, node, name,
                nnic_model_add_concat (ctx->m, name, inputs, (int) node->n_input, error), error);
}

static gboolean
convert_dropout (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  static const char *const known[] = { "ratio", "seed", NULL };
  double ratio;
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_float (ctx, node, "ratio", 0.5, &ratio, error) ||
      !nnic_onnx_extra_outputs_unused (ctx, node, 1, error))
    return FALSE;
  GError *local = NULL;
  OnnxValue *r = nnic_onnx_input_opt (ctx, node, 1, &local); /* opset 12: an input */
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  if (r && r->kind != ONNX_VALUE_CONST)
    return nnic_onnx_input_const (ctx, node, 1, "ratio", error) != NULL;
  if (r && !nnic_onnx_const_scalar (ctx, r, &ratio, error)) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  /* input 2, training_mode, is ignored: nnic_model_set_training() decides */
  if (!(ratio >= 0.0 && ratio < 1.0)) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "ratio %g is not in [0, 1)", ratio);
    return FALSE;
  }
  return nnic_onnx_added (ctx, node, name, nnic_model_add_dropout (ctx->m, name, x->node, ratio, error),
                error);
}

static gboolean
convert_softmax (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  static const char *const known[] = { "axis", NULL };
  int64_t axis, s[NNIC_MAX_DIMS];
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "axis", ctx->opset >= 13 ? -1 : 1, &axis, error))
    return FALSE;
  int nd = nnic_onnx_value_shape (ctx, x, s);
  int rank = nd + 1;
  if (axis < 0)
    axis += rank;
  if (axis < 1 || axis >= rank) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "axis %" G_GINT64_FORMAT " is not supported for a rank-%d input (the "
                          "batch dimension cannot be normalised over)",
                          axis, rank);
    return FALSE;
  }
  if (ctx->opset < 13) {
    /* Before opset 13, Softmax normalises over all dimensions from `axis`
     * on: the same as opset 13's only when those after it are all 1. */
    int64_t after = 1;
    for (int d = (int) axis; d < nd; d++)
      after *= s[d];
    if (after != 1) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "axis %" G_GINT64_FORMAT " normalises over several dimensions before "
                            "opset 13, which nnic does not support",
                            axis);
      return FALSE;
    }
  }
  return nnic_onnx_added (ctx, node, name,
                nnic_model_add_softmax (ctx->m, name, x->node, (int) axis, error), error);
}

/* QuantizeLinear and DequantizeLinear of constants are folded (fold.c):
 * QDQ weights. On values computed in the graph they are quantized
 * inference, which nnic does not import. */
static gboolean
convert_qdq (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  (void) name;
  OnnxValue *x = nnic_onnx_input (ctx, node, 0, error);
  if (!x)
    return FALSE;
  if (x->kind == ONNX_VALUE_NODE) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "%s of the activation '%s': nnic imports QDQ weights (DequantizeLinear "
                          "of constant integers), not quantized activations",
                          node->op_type, x->name);
    return FALSE;
  }
  /* a constant with a scale or zero point computed in the graph */
  if (!nnic_onnx_input_const (ctx, node, 1, "scale", error))
    return FALSE;
  GError *local = NULL;
  OnnxValue *z = nnic_onnx_input_opt (ctx, node, 2, &local);
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  if (z && !nnic_onnx_input_const (ctx, node, 2, "zero point", error))
    return FALSE;
  nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED, "%s is not supported here",
                        node->op_type);
  return FALSE;
}

NnicOnnxConverter
nnic_onnx_misc_converter (const char *op)
{
  static const struct { const char *op; NnicOnnxConverter fn; } table[] = {
    { "Add", convert_add },
    { "Relu", convert_relu },
    { "Clip", convert_clip },
    { "Flatten", convert_flatten },
    { "Reshape", convert_reshape },
    { "Concat", convert_concat },
    { "Dropout", convert_dropout },
    { "Softmax", convert_softmax },
    { "QuantizeLinear", convert_qdq },
    { "DequantizeLinear", convert_qdq },
  };
  for (guint i = 0; i < G_N_ELEMENTS (table); i++)
    if (!strcmp (table[i].op, op))
      return table[i].fn;
  return NULL;
}
