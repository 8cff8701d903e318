/* ONNX import: constant folding.
 *
 * The shape arithmetic exporters write around Reshape — `x.view(x.size(0),
 * -1)` becomes Shape → Gather → Unsqueeze → Concat → Reshape. Shape of a
 * graph value knows every per-sample dimension; its batch dimension is
 * NNIC_ONNX_BATCH, which Reshape accepts as "the batch" and nothing else
 * computes with.
 *
 * QDQ weights — int8/uint8 (or int32, for biases) integers, a scale and a
 * zero point, and a DequantizeLinear whose output the layer reads as its
 * weight: the DequantizeLinear becomes the float constant ONNX Runtime
 * computes, (float) (q - zero_point) * scale, bit for bit, and the layer
 * takes it like any initializer. QuantizeLinear of a float constant (QAT
 * exports quantize the float weight in the graph) folds too, as ONNX
 * Runtime rounds: half to even, saturated. Per-tensor, or per-axis (a 1-D
 * scale along `axis`, opset 13). */
#include "core/onnx/internal.h"

#include <math.h>
#include <string.h>

static const NnicTensor *
const_input (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k, GError **error)
{
  OnnxValue *v = nnic_onnx_input (ctx, node, k, error);
  if (!v)
    return NULL;
  const NnicTensor *t = nnic_onnx_const_tensor (ctx, v, error);
  if (!t)
    nnic_onnx_node_prefix (ctx, node, error);
  return t;
}

static gboolean
emit (NnicOnnxImport *ctx, const Onnx__NodeProto *node, NnicTensor *t)
{
  if (node->n_output >= 1 && node->output[0] && *node->output[0])
    nnic_onnx_value_add_tensor (ctx, node->output[0], t, TRUE);
  else
    nnic_tensor_free (t);
  return TRUE;
}

static NnicTensor *
new_tensor (NnicOnnxImport *ctx, const Onnx__NodeProto *node, NnicDType dtype, int ndim,
            const int64_t *shape, GError **error)
{
  NnicTensor *t = nnic_tensor_new (dtype, ndim, shape, error);
  if (!t)
    nnic_onnx_node_prefix (ctx, node, error);
  return t;
}

static gboolean
fold_shape (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error)
{
  OnnxValue *v = nnic_onnx_input (ctx, node, 0, error);
  if (!v)
    return FALSE;
  int64_t dims[NNIC_MAX_DIMS + 1];
  int nd;
  if (v->kind == ONNX_VALUE_NODE) {
    int64_t s[NNIC_MAX_DIMS];
    int ps = nnic_onnx_value_shape (ctx, v, s);
    if (ps < 0 || ps >= NNIC_MAX_DIMS) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED, "shape of a rank-%d value",
                            ps + 1);
      return FALSE;
    }
    dims[0] = NNIC_ONNX_BATCH;
    memcpy (dims + 1, s, sizeof (int64_t) * (size_t) ps);
    nd = ps + 1;
  } else {
    int64_t numel;
    if (!nnic_onnx_const_shape (ctx, v, &nd, dims, &numel, error)) {
      nnic_onnx_node_prefix (ctx, node, error);
      return FALSE;
    }
  }
  int64_t start, end;
  if (!nnic_onnx_attr_int (ctx, node, "start", 0, &start, error) ||
      !nnic_onnx_attr_int (ctx, node, "end", nd, &end, error))
    return FALSE;
  start = CLAMP (start < 0 ? start + nd : start, 0, nd);
  end = CLAMP (end < 0 ? end + nd : end, 0, nd);
  int64_t len = MAX (end - start, 0);
  NnicTensor *t = new_tensor (ctx, node, NNIC_DTYPE_I64, 1, &len, error);
  if (!t)
    return FALSE;
  for (int64_t i = 0; i < len; i++)
    t->i64[i] = dims[start + i];
  return emit (ctx, node, t);
}

static gboolean
fold_gather (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error)
{
  const NnicTensor *data = const_input (ctx, node, 0, error);
  const NnicTensor *idx = data ? const_input (ctx, node, 1, error) : NULL;
  int64_t axis;
  if (!idx || !nnic_onnx_attr_int (ctx, node, "axis", 0, &axis, error))
    return FALSE;
  if (data->ndim != 1 || (axis != 0 && axis != -1) || idx->dtype != NNIC_DTYPE_I64 ||
      idx->ndim > 1 || (data->dtype != NNIC_DTYPE_I64 && data->dtype != NNIC_DTYPE_F32)) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "Gather on constants is folded for a 1-D float32 or int64 tensor and "
                          "0-D or 1-D indices only");
    return FALSE;
  }
  NnicTensor *t = new_tensor (ctx, node, data->dtype, idx->ndim, idx->shape, error);
  if (!t)
    return FALSE;
  for (int64_t i = 0; i < idx->numel; i++) {
    int64_t j = idx->i64[i] < 0 ? idx->i64[i] + data->numel : idx->i64[i];
    if (j < 0 || j >= data->numel) {
      nnic_tensor_free (t);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            "index %" G_GINT64_FORMAT " is out of range for %" G_GINT64_FORMAT
                            " elements",
                            idx->i64[i], data->numel);
      return FALSE;
    }
    if (t->dtype == NNIC_DTYPE_I64)
      t->i64[i] = data->i64[j];
    else
      t->f32[i] = data->f32[j];
  }
  return emit (ctx, node, t);
}

/* The `axes` of Unsqueeze/Squeeze: an input from opset 13, an attribute before. */
static gboolean
read_axes (NnicOnnxImport *ctx, const Onnx__NodeProto *node, int64_t *axes, size_t *n,
           GError **error)
{
  *n = 0;
  if (ctx->opset >= 13) {
    GError *local = NULL;
    OnnxValue *v = nnic_onnx_input_opt (ctx, node, 1, &local);
    if (local) {
      g_propagate_error (error, local);
      return FALSE;
    }
    if (!v)
      return TRUE;
    const NnicTensor *t = nnic_onnx_const_tensor (ctx, v, error);
    if (!t || t->dtype != NNIC_DTYPE_I64 || t->numel > NNIC_MAX_DIMS) {
      if (t)
        nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "bad axes");
      else
        nnic_onnx_node_prefix (ctx, node, error);
      return FALSE;
    }
    memcpy (axes, t->i64, sizeof (int64_t) * (size_t) t->numel);
    *n = (size_t) t->numel;
    return TRUE;
  }
  const int64_t *a;
  if (!nnic_onnx_attr_ints (ctx, node, "axes", 0, &a, n, error))
    return FALSE;
  if (*n > NNIC_MAX_DIMS) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "bad axes");
    return FALSE;
  }
  memcpy (axes, a, sizeof (int64_t) * *n);
  return TRUE;
}

static gboolean
fold_unsqueeze_squeeze (NnicOnnxImport *ctx, const Onnx__NodeProto *node, gboolean unsqueeze,
                        GError **error)
{
  const NnicTensor *data = const_input (ctx, node, 0, error);
  int64_t axes[NNIC_MAX_DIMS];
  size_t n_axes;
  if (!data || !read_axes (ctx, node, axes, &n_axes, error))
    return FALSE;
  int out_nd = unsqueeze ? data->ndim + (int) n_axes : data->ndim;
  gboolean mark[2 * NNIC_MAX_DIMS] = { 0 };
  if (out_nd > NNIC_MAX_DIMS)
    goto bad;
  for (size_t i = 0; i < n_axes; i++) {
    int64_t a = axes[i] < 0 ? axes[i] + out_nd : axes[i];
    if (a < 0 || a >= out_nd || mark[a] || (!unsqueeze && data->shape[a] != 1))
      goto bad;
    mark[a] = TRUE;
  }
  int64_t shape[NNIC_MAX_DIMS];
  int nd = 0;
  if (unsqueeze) {
    for (int d = 0, s = 0; d < out_nd; d++)
      shape[nd++] = mark[d] ? 1 : data->shape[s++];
  } else {
    for (int d = 0; d < data->ndim; d++)
      if (n_axes ? !mark[d] : data->shape[d] != 1)
        shape[nd++] = data->shape[d];
  }
  NnicTensor *t = new_tensor (ctx, node, data->dtype, nd, shape, error);
  if (!t)
    return FALSE;
  memcpy (t->data, data->data, nnic_tensor_nbytes (data));
  return emit (ctx, node, t);
bad:
  nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "axes do not fit the input's %d dimensions",
                        data->ndim);
  return FALSE;
}

static gboolean
fold_concat (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error)
{
  int64_t axis;
  if (!nnic_onnx_attr_int (ctx, node, "axis", 0, &axis, error))
    return FALSE;
  int64_t total = 0;
  NnicDType dtype = NNIC_DTYPE_I64;
  for (size_t k = 0; k < node->n_input; k++) {
    const NnicTensor *t = const_input (ctx, node, k, error);
    if (!t)
      return FALSE;
    if (t->ndim != 1 || (axis != 0 && axis != -1) || (k > 0 && t->dtype != dtype)) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "Concat of constants is folded for 1-D tensors of one dtype only");
      return FALSE;
    }
    dtype = t->dtype;
    total += t->numel;
  }
  NnicTensor *out = new_tensor (ctx, node, dtype, 1, &total, error);
  if (!out)
    return FALSE;
  size_t off = 0;
  for (size_t k = 0; k < node->n_input; k++) {
    const NnicTensor *t = const_input (ctx, node, k, error);
    memcpy ((char *) out->data + off, t->data, nnic_tensor_nbytes (t));
    off += nnic_tensor_nbytes (t);
  }
  return emit (ctx, node, out);
}

static gboolean
fold_cast (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error)
{
  const NnicTensor *in = const_input (ctx, node, 0, error);
  int64_t to;
  if (!in || !nnic_onnx_attr_int (ctx, node, "to", 0, &to, error))
    return FALSE;
  NnicDType dtype;
  if (to == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || to == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE)
    dtype = NNIC_DTYPE_F32;
  else if (to == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || to == ONNX__TENSOR_PROTO__DATA_TYPE__INT32)
    dtype = NNIC_DTYPE_I64;
  else {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED, "Cast of a constant to %s",
                          nnic_onnx_dtype_name ((int) to));
    return FALSE;
  }
  NnicTensor *t = new_tensor (ctx, node, dtype, in->ndim, in->shape, error);
  if (!t)
    return FALSE;
  for (int64_t i = 0; i < in->numel; i++) {
    if (in->dtype == NNIC_DTYPE_I64 && in->i64[i] == NNIC_ONNX_BATCH && dtype != NNIC_DTYPE_I64) {
      nnic_tensor_free (t);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "arithmetic on the batch size is not supported");
      return FALSE;
    }
    if (dtype == NNIC_DTYPE_F32)
      t->f32[i] = in->dtype == NNIC_DTYPE_F32   ? in->f32[i]
                  : in->dtype == NNIC_DTYPE_I64 ? (float) in->i64[i]
                                                : (float) nnic_onnx_tensor_element (in, i);
    else if (in->dtype == NNIC_DTYPE_I64)
      t->i64[i] = in->i64[i];
    else if (in->dtype != NNIC_DTYPE_F32)
      t->i64[i] = (int64_t) nnic_onnx_tensor_element (in, i);
    else if (isfinite (in->f32[i]) && fabsf (in->f32[i]) < 0x1p63f)
      t->i64[i] = (int64_t) in->f32[i];
    else {
      nnic_tensor_free (t);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "Cast of %g to an integer", (double) in->f32[i]);
      return FALSE;
    }
  }
  return emit (ctx, node, t);
}

/* ---- QDQ ---- */

/* The scale and zero point of a QuantizeLinear or DequantizeLinear over
 * `x`: one value (per-tensor), or one per index of x's dimension `axis`
 * (per-axis). Element i of x takes value (i / inner) % n. */
typedef struct {
  const NnicTensor *scale;      /* float32 */
  const NnicTensor *zero_point; /* NULL when absent */
  int64_t n, inner;
} QuantParams;

static int64_t
int_at (const NnicTensor *t, int64_t i)
{
  switch (t->dtype) {
  case NNIC_DTYPE_I8:
    return t->i8[i];
  case NNIC_DTYPE_U8:
    return t->u8[i];
  case NNIC_DTYPE_I32:
    return t->i32[i];
  case NNIC_DTYPE_I64:
    return t->i64[i];
  default:
    g_return_val_if_reached (0);
  }
}

static gboolean
is_integer (const NnicTensor *t)
{
  return t->dtype != NNIC_DTYPE_F32;
}

static gboolean
quant_params (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const NnicTensor *x,
              QuantParams *qp, GError **error)
{
  static const char *const known[] = { "axis", NULL };
  int64_t axis;
  if (!nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "axis", 1, &axis, error))
    return FALSE;
  const NnicTensor *scale = const_input (ctx, node, 1, error);
  if (!scale)
    return FALSE;
  GError *local = NULL;
  OnnxValue *zv = nnic_onnx_input_opt (ctx, node, 2, &local);
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  const NnicTensor *zp = zv ? nnic_onnx_const_tensor (ctx, zv, error) : NULL;
  if (zv && !zp) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  if (scale->dtype != NNIC_DTYPE_F32) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the scale '%s' is %s; nnic takes float32 scales", node->input[1],
                          nnic_dtype_name (scale->dtype));
    return FALSE;
  }
  *qp = (QuantParams) { .scale = scale, .zero_point = zp, .n = 1, .inner = MAX (x->numel, 1) };
  if (scale->numel != 1 || scale->ndim > 1) {
    g_autofree char *ss = nnic_shape_to_string (scale->ndim, scale->shape);
    g_autofree char *xs = nnic_shape_to_string (x->ndim, x->shape);
    int64_t a = axis < 0 ? axis + x->ndim : axis;
    if (scale->ndim != 1) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "the scale '%s' is %s; nnic takes a scalar (per-tensor) or a 1-D "
                            "(per-axis) scale",
                            node->input[1], ss);
      return FALSE;
    }
    if (ctx->opset < 13) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            "the scale '%s' is %s, but before opset 13 scales are scalars",
                            node->input[1], ss);
      return FALSE;
    }
    if (a < 0 || a >= x->ndim || x->shape[a] != scale->numel) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_SHAPE,
                            "the scale '%s' %s does not fit axis %" G_GINT64_FORMAT " of '%s' %s",
                            node->input[1], ss, axis, node->input[0], xs);
      return FALSE;
    }
    qp->n = scale->numel;
    qp->inner = 1;
    for (int d = (int) a + 1; d < x->ndim; d++)
      qp->inner *= x->shape[d];
  }
  if (zp && (!is_integer (zp) || zp->numel != scale->numel || zp->ndim > 1)) {
    g_autofree char *zs = nnic_shape_to_string (zp->ndim, zp->shape);
    g_autofree char *ss = nnic_shape_to_string (scale->ndim, scale->shape);
    nnic_onnx_node_error (ctx, node, error,
                          is_integer (zp) ? NNIC_ERROR_SHAPE : NNIC_ERROR_UNSUPPORTED,
                          "the zero point '%s' (%s %s) does not fit the scale %s%s", node->input[2],
                          nnic_dtype_name (zp->dtype), zs, ss,
                          is_integer (zp) ? "" : "; nnic takes integer zero points");
    return FALSE;
  }
  return TRUE;
}

/* y = (x - zero_point) * scale, as ONNX Runtime computes it in float32:
 * (float) ((int32_t) x - (int32_t) zero_point) * scale. */
static gboolean
fold_dequantize (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error)
{
  const NnicTensor *x = const_input (ctx, node, 0, error);
  QuantParams qp;
  if (!x || !quant_params (ctx, node, x, &qp, error))
    return FALSE;
  const NnicTensor *zp = qp.zero_point;
  if (!is_integer (x)) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "'%s' is %s; nnic dequantizes int8, uint8 and int32 constants",
                          node->input[0], nnic_dtype_name (x->dtype));
    return FALSE;
  }
  /* int32 data arrives as int64: the dtypes agree unless both are 8-bit and differ */
  if (zp && x->dtype != zp->dtype && x->dtype != NNIC_DTYPE_I64 && zp->dtype != NNIC_DTYPE_I64) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "the zero point '%s' is %s, but '%s' is %s", node->input[2],
                          nnic_dtype_name (zp->dtype), node->input[0], nnic_dtype_name (x->dtype));
    return FALSE;
  }
  /* int64 (an int32 initializer, read as int64) must hold int32 values */
  for (int k = 0; k < 2; k++) {
    const NnicTensor *t = k ? zp : x;
    for (int64_t i = 0; t && t->dtype == NNIC_DTYPE_I64 && i < t->numel; i++)
      if (t->i64[i] < G_MININT32 || t->i64[i] > G_MAXINT32) {
        nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                              "'%s' holds %" G_GINT64_FORMAT ", outside int32's range",
                              node->input[k ? 2 : 0], t->i64[i]);
        return FALSE;
      }
  }
  NnicTensor *y = new_tensor (ctx, node, NNIC_DTYPE_F32, x->ndim, x->shape, error);
  if (!y)
    return FALSE;
  for (int64_t o = 0, i = 0; o < x->numel / (qp.n * qp.inner); o++)
    for (int64_t c = 0; c < qp.n; c++) {
      const int64_t z = zp ? int_at (zp, c) : 0;
      const float s = qp.scale->f32[c];
      for (int64_t k = 0; k < qp.inner; k++, i++)
        y->f32[i] = (float) (int_at (x, i) - z) * s;
    }
  return emit (ctx, node, y);
}

/* y = saturate (round (x / scale) + zero_point) to the zero point's dtype
 * (uint8 without one), rounding half to even as ONNX Runtime does (a NaN
 * goes to the low end, as its vector code sends it). */
static gboolean
fold_quantize (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error)
{
  const NnicTensor *x = const_input (ctx, node, 0, error);
  QuantParams qp;
  if (!x || !quant_params (ctx, node, x, &qp, error))
    return FALSE;
  const NnicTensor *zp = qp.zero_point;
  if (x->dtype != NNIC_DTYPE_F32 || (zp && zp->dtype != NNIC_DTYPE_I8 && zp->dtype != NNIC_DTYPE_U8)) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "nnic quantizes float32 constants to int8 or uint8 only ('%s' is %s%s%s)",
                          node->input[0], nnic_dtype_name (x->dtype),
                          zp ? ", the zero point " : "", zp ? nnic_dtype_name (zp->dtype) : "");
    return FALSE;
  }
  NnicDType dtype = zp ? zp->dtype : NNIC_DTYPE_U8;
  const int lo = dtype == NNIC_DTYPE_I8 ? INT8_MIN : 0, hi = dtype == NNIC_DTYPE_I8 ? INT8_MAX : UINT8_MAX;
  NnicTensor *y = new_tensor (ctx, node, dtype, x->ndim, x->shape, error);
  if (!y)
    return FALSE;
  for (int64_t o = 0, i = 0; o < x->numel / (qp.n * qp.inner); o++)
    for (int64_t c = 0; c < qp.n; c++) {
      const int z = zp ? (int) int_at (zp, c) : 0;
      const float s = qp.scale->f32[c];
      for (int64_t k = 0; k < qp.inner; k++, i++) {
        float v = x->f32[i] / s;
        v = fminf (fmaxf (v, (float) (lo - z)), (float) (hi - z)); /* fmaxf: NaN → the low end */
        const int q = (int) nearbyintf (v) + z;
        if (dtype == NNIC_DTYPE_I8)
          y->i8[i] = (int8_t) q;
        else
          y->u8[i] = (uint8_t) q;
      }
    }
  return emit (ctx, node, y);
}

gboolean
nnic_onnx_fold (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error)
{
  const char *op = node->op_type;
  if (!strcmp (op, "Shape"))
    return fold_shape (ctx, node, error);
  if (!strcmp (op, "Gather"))
    return fold_gather (ctx, node, error);
  if (!strcmp (op, "Unsqueeze"))
    return fold_unsqueeze_squeeze (ctx, node, TRUE, error);
  if (!strcmp (op, "Squeeze"))
    return fold_unsqueeze_squeeze (ctx, node, FALSE, error);
  if (!strcmp (op, "Concat"))
    return fold_concat (ctx, node, error);
  if (!strcmp (op, "Cast"))
    return fold_cast (ctx, node, error);
  if (!strcmp (op, "DequantizeLinear"))
    return fold_dequantize (ctx, node, error);
  if (!strcmp (op, "QuantizeLinear"))
    return fold_quantize (ctx, node, error);
  nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED, "cannot fold %s", op);
  return FALSE;
}
