/* ONNX import: constant folding.
 *
 * Exporters compute shapes in the graph: `x.view(x.size(0), -1)` becomes
 * Shape → Gather → Unsqueeze → Concat → Reshape, a Swin block computes its
 * padding, its window count and its attention mask (ConstantOfShape,
 * Slice, Range, ScatterND, Equal, Where, ...) from shapes, and ViT expands
 * its class token to the batch. Every node whose inputs are all constant
 * is computed here, once, and its output is a constant for the nodes that
 * read it (a Reshape's shape, a Slice's ends, an Add's bias).
 *
 * Shape of a graph value knows every per-sample dimension; its batch
 * dimension is the symbol N (NNIC_ONNX_BATCH). Folding carries N through
 * copies (Gather, Concat, Slice, Where, ...) and through products and
 * exact quotients by positive constants (N*16 for a window partition, and
 * back: N*16 / 16 is N, N*16 / N is 16); any other arithmetic on it
 * (N + 1, a Cast of N to float) has no value at import and is refused,
 * naming the node. Reshape takes [N*k, ...] as k rows per sample
 * (core/ops/shape.c); an Expand to a shape holding N is a graph value (its
 * converter's).
 *
 * Integer arithmetic is int64 (wrapping, as ONNX Runtime's), float
 * arithmetic float32; booleans are uint8.
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
#include "core/ops/kernels.h"

#include <math.h>
#include <string.h>

typedef Onnx__NodeProto NP;

static const NnicTensor *
const_input (NnicOnnxImport *ctx, const NP *node, size_t k, GError **error)
{
  OnnxValue *v = nnic_onnx_input (ctx, node, k, error);
  if (!v)
    return NULL;
  if (v->kind != ONNX_VALUE_CONST) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "input %zu ('%s') is computed in the graph; nnic computes %s on "
                          "constants only",
                          k, v->name, node->op_type);
    return NULL;
  }
  const NnicTensor *t = nnic_onnx_const_tensor (ctx, v, error);
  if (!t)
    nnic_onnx_node_prefix (ctx, node, error);
  return t;
}

/* An optional input: *t stays NULL, without an error, when it is absent. */
static gboolean
const_input_opt (NnicOnnxImport *ctx, const NP *node, size_t k, const NnicTensor **t, GError **error)
{
  *t = NULL;
  if (k >= node->n_input || !node->input[k] || !*node->input[k])
    return TRUE;
  *t = const_input (ctx, node, k, error);
  return *t != NULL;
}

static gboolean
emit (NnicOnnxImport *ctx, const NP *node, NnicTensor *t)
{
  if (node->n_output >= 1 && node->output[0] && *node->output[0])
    nnic_onnx_value_add_tensor (ctx, node->output[0], t, TRUE);
  else
    nnic_tensor_free (t);
  return TRUE;
}

static NnicTensor *
new_tensor (NnicOnnxImport *ctx, const NP *node, NnicDType dtype, int ndim, const int64_t *shape,
            GError **error)
{
  NnicTensor *t = nnic_tensor_new (dtype, ndim, shape, error);
  if (!t)
    nnic_onnx_node_prefix (ctx, node, error);
  return t;
}

static gboolean
is_integer (const NnicTensor *t)
{
  return t->dtype != NNIC_DTYPE_F32;
}

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

static float
float_at (const NnicTensor *t, int64_t i)
{
  return t->dtype == NNIC_DTYPE_F32 ? t->f32[i] : (float) int_at (t, i);
}

/* Sets element i of t (I64, U8 or F32) from another tensor's element j. */
static void
copy_element (NnicTensor *t, int64_t i, const NnicTensor *from, int64_t j)
{
  if (t->dtype == NNIC_DTYPE_F32)
    t->f32[i] = float_at (from, j);
  else if (t->dtype == NNIC_DTYPE_U8)
    t->u8[i] = (uint8_t) int_at (from, j);
  else
    t->i64[i] = int_at (from, j);
}

/* The dtype a result of integer inputs has: int64, or bool (uint8) when
 * they all are. */
static NnicDType
int_dtype (const NnicTensor *const *t, int n)
{
  for (int k = 0; k < n; k++)
    if (t[k]->dtype != NNIC_DTYPE_U8)
      return NNIC_DTYPE_I64;
  return NNIC_DTYPE_U8;
}

/* An integer 1-D (or scalar) input of at most `max` values: indices,
 * shapes, axes. */
static gboolean
int_list (NnicOnnxImport *ctx, const NP *node, size_t k, const char *what, const NnicTensor *t,
          int64_t max, int64_t *out, int64_t *n, GError **error)
{
  if (!is_integer (t) || t->ndim > 1 || t->numel > max) {
    g_autofree char *s = nnic_shape_to_string (t->ndim, t->shape);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "the %s (input %zu, '%s') is %s %s; a list of at most %" G_GINT64_FORMAT
                          " integers is needed",
                          what, k, node->input[k], nnic_dtype_name (t->dtype), s, max);
    return FALSE;
  }
  for (int64_t i = 0; i < t->numel; i++)
    out[i] = int_at (t, i);
  *n = t->numel;
  return TRUE;
}

/* A shape given as an input (Reshape, Expand, ConstantOfShape): numbers,
 * not the batch. */
static gboolean
shape_input (NnicOnnxImport *ctx, const NP *node, size_t k, const NnicTensor *t, int64_t *shape, int *nd,
             GError **error)
{
  int64_t n;
  if (!int_list (ctx, node, k, "shape", t, NNIC_MAX_DIMS, shape, &n, error))
    return FALSE;
  *nd = (int) n;
  for (int i = 0; i < *nd; i++)
    if (nnic_onnx_batch_factor (shape[i])) {
      g_autofree char *s = nnic_onnx_dims_string (*nd, shape);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "the shape %s holds the batch size: %s of a constant to it is a "
                            "value of the graph, which nnic cannot compute here",
                            s, node->op_type);
      return FALSE;
    }
  return TRUE;
}

static gboolean
axis_in (NnicOnnxImport *ctx, const NP *node, int64_t axis, int rank, int *out, GError **error)
{
  const int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= MAX (rank, 1)) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "axis %" G_GINT64_FORMAT " is out of range for rank %d", axis, rank);
    return FALSE;
  }
  *out = (int) a;
  return TRUE;
}

/* ---- broadcasting ---- */

/* The numpy broadcast of n shapes. */
static gboolean
broadcast (NnicOnnxImport *ctx, const NP *node, int n, const int *nds, const int64_t *const *shapes,
           int *nd, int64_t *shape, GError **error)
{
  int r = 0;
  for (int k = 0; k < n; k++)
    r = MAX (r, nds[k]);
  for (int d = 0; d < r; d++) {
    int64_t s = 1;
    for (int k = 0; k < n; k++) {
      const int kd = d - (r - nds[k]);
      if (kd < 0 || shapes[k][kd] == s || shapes[k][kd] == 1)
        continue;
      if (s != 1) {
        g_autofree char *a = nnic_shape_to_string (nds[0], shapes[0]);
        g_autofree char *b = nnic_shape_to_string (nds[k], shapes[k]);
        nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "shapes %s and %s do not broadcast",
                              a, b);
        return FALSE;
      }
      s = shapes[k][kd];
    }
    shape[d] = s;
  }
  *nd = r;
  return TRUE;
}

static gboolean
broadcast_tensors (NnicOnnxImport *ctx, const NP *node, const NnicTensor *const *t, int n, int *nd,
                   int64_t *shape, GError **error)
{
  int nds[3];
  const int64_t *shapes[3];
  for (int k = 0; k < n; k++) {
    nds[k] = t[k]->ndim;
    shapes[k] = t[k]->shape;
  }
  return broadcast (ctx, node, n, nds, shapes, nd, shape, error);
}

/* Walks the elements of a broadcast result, with the offset of each in up
 * to three inputs. */
typedef struct {
  int nd, n;
  int64_t shape[NNIC_MAX_DIMS], idx[NNIC_MAX_DIMS];
  int64_t stride[3][NNIC_MAX_DIMS];
  int64_t off[3];
} Walk;

static void
walk_init (Walk *w, int nd, const int64_t *shape, const NnicTensor *const *t, int n)
{
  memset (w, 0, sizeof *w);
  w->nd = nd;
  w->n = n;
  memcpy (w->shape, shape, sizeof (int64_t) * (size_t) nd);
  for (int k = 0; k < n; k++) {
    int64_t s = 1;
    for (int d = nd - 1; d >= 0; d--) {
      const int td = d - (nd - t[k]->ndim);
      w->stride[k][d] = td < 0 || t[k]->shape[td] == 1 ? 0 : s;
      if (td >= 0)
        s *= t[k]->shape[td];
    }
  }
}

/* One input read through its own strides (a transposition, a slice). */
static void
walk_strided (Walk *w, int nd, const int64_t *shape, const int64_t *stride)
{
  memset (w, 0, sizeof *w);
  w->nd = nd;
  w->n = 1;
  memcpy (w->shape, shape, sizeof (int64_t) * (size_t) nd);
  memcpy (w->stride[0], stride, sizeof (int64_t) * (size_t) nd);
}

static void
walk_next (Walk *w)
{
  for (int d = w->nd - 1; d >= 0; d--) {
    w->idx[d]++;
    for (int k = 0; k < w->n; k++)
      w->off[k] += w->stride[k][d];
    if (w->idx[d] < w->shape[d])
      return;
    for (int k = 0; k < w->n; k++)
      w->off[k] -= w->stride[k][d] * w->shape[d];
    w->idx[d] = 0;
  }
}

/* ---- arithmetic, with the batch symbol ---- */

typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD, OP_FMOD, OP_POW, OP_EQUAL } Arith;

static const char *const arith_sign[] = { "+", "-", "*", "/", "mod", "fmod", "^", "==" };

/* a OP b on integers. FALSE (with *why) for what has no value at import:
 * arithmetic on the batch size N other than products and exact quotients
 * by positive constants, sums and differences of its multiples, and
 * comparisons that N >= 1 decides; a division by zero. */
static gboolean
int_arith (Arith op, int64_t a, int64_t b, int64_t *out, const char **why)
{
  const int64_t ka = nnic_onnx_batch_factor (a), kb = nnic_onnx_batch_factor (b);
  *why = "nnic follows the batch size N through products and exact quotients by positive "
         "constants only";
  if (ka || kb) {
    int64_t k = 0;
    switch (op) {
    case OP_ADD:
      if (ka && kb)
        k = ka + kb;
      else if ((ka && b == 0) || (kb && a == 0)) {
        *out = ka ? a : b;
        return TRUE;
      }
      break;
    case OP_SUB:
      if (ka && kb && ka == kb) {
        *out = 0;
        return TRUE;
      }
      if (ka && kb && ka > kb)
        k = ka - kb;
      else if (ka && b == 0) {
        *out = a;
        return TRUE;
      }
      break;
    case OP_MUL:
      if (ka && kb)
        break;
      if ((ka ? b : a) == 0) {
        *out = 0;
        return TRUE;
      }
      if ((ka ? b : a) > 0 && (ka ? b : a) < NNIC_ONNX_BATCH_K_MAX)
        k = (ka ? ka : kb) * (ka ? b : a);
      break;
    case OP_DIV:
      if (ka && kb && ka % kb == 0) {
        *out = ka / kb;
        return TRUE;
      }
      if (ka && !kb && b > 0 && ka % b == 0)
        k = ka / b;
      break;
    case OP_MOD:
    case OP_FMOD:
      if (ka && !kb && b > 0 && ka % b == 0) {
        *out = 0;
        return TRUE;
      }
      break;
    case OP_EQUAL:
      /* N*k is at least k */
      if (ka && kb) {
        *out = ka == kb;
        return TRUE;
      }
      if ((ka ? b : a) < (ka ? ka : kb)) {
        *out = 0;
        return TRUE;
      }
      break;
    case OP_POW:
      break;
    }
    if (k < 1 || k > NNIC_ONNX_BATCH_K_MAX)
      return FALSE;
    *out = nnic_onnx_batch_times (k);
    return TRUE;
  }
  /* wrapping, without undefined behaviour */
  const uint64_t ua = (uint64_t) a, ub = (uint64_t) b;
  switch (op) {
  case OP_ADD:
    *out = (int64_t) (ua + ub);
    return TRUE;
  case OP_SUB:
    *out = (int64_t) (ua - ub);
    return TRUE;
  case OP_MUL:
    *out = (int64_t) (ua * ub);
    return TRUE;
  case OP_DIV:
  case OP_MOD:
  case OP_FMOD:
    if (b == 0) {
      *why = "a division by zero";
      return FALSE;
    }
    if (b == -1) {
      *out = op == OP_DIV ? (int64_t) (0 - ua) : 0;
      return TRUE;
    }
    *out = op == OP_DIV ? a / b : a % b;
    if (op == OP_MOD && *out != 0 && (*out < 0) != (b < 0))
      *out += b; /* the divisor's sign, as Python's */
    return TRUE;
  case OP_POW: {
    int64_t r = 1;
    for (int64_t e = 0; e < b && e < 64; e++)
      r = (int64_t) ((uint64_t) r * ua);
    *out = b < 0 ? (a == 1 ? 1 : a == -1 ? (b % 2 ? -1 : 1) : 0) : r;
    return TRUE;
  }
  case OP_EQUAL:
    *out = a == b;
    return TRUE;
  }
  return FALSE;
}

static float
float_arith (Arith op, float a, float b)
{
  switch (op) {
  case OP_ADD:
    return a + b;
  case OP_SUB:
    return a - b;
  case OP_MUL:
    return a * b;
  case OP_DIV:
    return a / b;
  case OP_FMOD:
    return fmodf (a, b);
  case OP_MOD: {
    const float r = fmodf (a, b);
    return r != 0 && (r < 0) != (b < 0) ? r + b : r;
  }
  case OP_POW:
    return powf (a, b);
  case OP_EQUAL:
    return a == b;
  }
  return 0;
}

static char *
element_string (const NnicTensor *t, int64_t i)
{
  if (t->dtype == NNIC_DTYPE_F32)
    return g_strdup_printf ("%g", (double) t->f32[i]);
  const int64_t v = int_at (t, i), k = nnic_onnx_batch_factor (v);
  return k == 1 ? g_strdup ("N")
         : k    ? g_strdup_printf ("N*%" G_GINT64_FORMAT, k)
                : g_strdup_printf ("%" G_GINT64_FORMAT, v);
}

static gboolean
fold_arith (NnicOnnxImport *ctx, const NP *node, Arith op, GError **error)
{
  const NnicTensor *t[2];
  for (int k = 0; k < 2; k++)
    if (!(t[k] = const_input (ctx, node, (size_t) k, error)))
      return FALSE;
  if (op == OP_MOD || op == OP_FMOD) {
    int64_t fmod;
    if (!nnic_onnx_attr_int (ctx, node, "fmod", 0, &fmod, error))
      return FALSE;
    op = fmod ? OP_FMOD : OP_MOD;
  }
  int nd;
  int64_t shape[NNIC_MAX_DIMS];
  if (!broadcast_tensors (ctx, node, t, 2, &nd, shape, error))
    return FALSE;
  const gboolean ints = is_integer (t[0]) && is_integer (t[1]);
  const NnicDType dtype = op == OP_EQUAL ? NNIC_DTYPE_U8 : ints ? NNIC_DTYPE_I64 : NNIC_DTYPE_F32;
  NnicTensor *y = new_tensor (ctx, node, dtype, nd, shape, error);
  if (!y)
    return FALSE;
  Walk w;
  walk_init (&w, nd, shape, t, 2);
  for (int64_t i = 0; i < y->numel; i++, walk_next (&w)) {
    if (!ints) {
      const float v = float_arith (op, float_at (t[0], w.off[0]), float_at (t[1], w.off[1]));
      if (dtype == NNIC_DTYPE_U8)
        y->u8[i] = v != 0;
      else
        y->f32[i] = v;
      continue;
    }
    int64_t v;
    const char *why;
    if (!int_arith (op, int_at (t[0], w.off[0]), int_at (t[1], w.off[1]), &v, &why)) {
      g_autofree char *a = element_string (t[0], w.off[0]);
      g_autofree char *b = element_string (t[1], w.off[1]);
      nnic_tensor_free (y);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED, "%s %s %s: %s", a, arith_sign[op],
                            b, why);
      return FALSE;
    }
    if (dtype == NNIC_DTYPE_U8)
      y->u8[i] = v != 0;
    else
      y->i64[i] = v;
  }
  return emit (ctx, node, y);
}

static gboolean
fold_add (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_arith (ctx, node, OP_ADD, error);
}

static gboolean
fold_sub (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_arith (ctx, node, OP_SUB, error);
}

static gboolean
fold_mul (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_arith (ctx, node, OP_MUL, error);
}

static gboolean
fold_div (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_arith (ctx, node, OP_DIV, error);
}

static gboolean
fold_mod (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_arith (ctx, node, OP_MOD, error);
}

static gboolean
fold_pow (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_arith (ctx, node, OP_POW, error);
}

static gboolean
fold_equal (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_arith (ctx, node, OP_EQUAL, error);
}

/* ---- elementwise, one input ---- */

typedef enum { UN_FLOOR, UN_CEIL, UN_SQRT, UN_NEG, UN_ABS, UN_NOT } Unary;

static gboolean
fold_unary (NnicOnnxImport *ctx, const NP *node, Unary op, GError **error)
{
  const NnicTensor *x = const_input (ctx, node, 0, error);
  if (!x)
    return FALSE;
  const NnicDType dtype = op == UN_NOT                ? NNIC_DTYPE_U8
                          : op == UN_SQRT             ? NNIC_DTYPE_F32
                          : !is_integer (x)           ? NNIC_DTYPE_F32
                          : x->dtype == NNIC_DTYPE_U8 ? NNIC_DTYPE_U8
                                                      : NNIC_DTYPE_I64;
  NnicTensor *y = new_tensor (ctx, node, dtype, x->ndim, x->shape, error);
  if (!y)
    return FALSE;
  for (int64_t i = 0; i < x->numel; i++) {
    if (dtype == NNIC_DTYPE_F32) {
      const float v = float_at (x, i);
      y->f32[i] = op == UN_FLOOR  ? floorf (v)
                  : op == UN_CEIL ? ceilf (v)
                  : op == UN_SQRT ? sqrtf (v)
                  : op == UN_NEG  ? -v
                                  : fabsf (v);
      continue;
    }
    const int64_t v = int_at (x, i);
    const int64_t k = nnic_onnx_batch_factor (v);
    if (op == UN_NOT) {
      y->u8[i] = v == 0;
    } else if (k && op == UN_NEG) {
      g_autofree char *s = element_string (x, i);
      nnic_tensor_free (y);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "-%s: nnic follows the batch size N through products and exact "
                            "quotients by positive constants only",
                            s);
      return FALSE;
    } else if (dtype == NNIC_DTYPE_U8) {
      y->u8[i] = (uint8_t) v;
    } else {
      y->i64[i] = op == UN_NEG                  ? (int64_t) (0 - (uint64_t) v)
                  : op == UN_ABS && !k && v < 0 ? (int64_t) (0 - (uint64_t) v)
                                                : v;
    }
  }
  return emit (ctx, node, y);
}

static gboolean
fold_floor (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_unary (ctx, node, UN_FLOOR, error);
}

static gboolean
fold_ceil (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_unary (ctx, node, UN_CEIL, error);
}

static gboolean
fold_sqrt (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_unary (ctx, node, UN_SQRT, error);
}

static gboolean
fold_neg (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_unary (ctx, node, UN_NEG, error);
}

static gboolean
fold_abs (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_unary (ctx, node, UN_ABS, error);
}

static gboolean
fold_not (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_unary (ctx, node, UN_NOT, error);
}

static gboolean
fold_where (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  const NnicTensor *t[3];
  for (int k = 0; k < 3; k++)
    if (!(t[k] = const_input (ctx, node, (size_t) k, error)))
      return FALSE;
  if (!is_integer (t[0])) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "the condition '%s' is float32, not boolean", node->input[0]);
    return FALSE;
  }
  int nd;
  int64_t shape[NNIC_MAX_DIMS];
  if (!broadcast_tensors (ctx, node, t, 3, &nd, shape, error))
    return FALSE;
  const NnicDType dtype = is_integer (t[1]) && is_integer (t[2]) ? int_dtype (t + 1, 2) : NNIC_DTYPE_F32;
  NnicTensor *y = new_tensor (ctx, node, dtype, nd, shape, error);
  if (!y)
    return FALSE;
  Walk w;
  walk_init (&w, nd, shape, t, 3);
  for (int64_t i = 0; i < y->numel; i++, walk_next (&w)) {
    const int k = int_at (t[0], w.off[0]) ? 1 : 2;
    copy_element (y, i, t[k], w.off[k]);
  }
  return emit (ctx, node, y);
}

/* ---- shapes ---- */

static gboolean
fold_shape (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  OnnxValue *v = nnic_onnx_input (ctx, node, 0, error);
  if (!v)
    return FALSE;
  int64_t dims[NNIC_MAX_DIMS + 1];
  int nd;
  if (v->kind == ONNX_VALUE_NODE) {
    nd = nnic_onnx_value_dims (ctx, v, dims);
    if (nd < 1) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FAILED, "'%s' has no shape (an importer bug)",
                            v->name);
      return FALSE;
    }
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

/* out[outer, j, inner] = data[outer, indices[j], inner] along `axis`. */
static gboolean
fold_gather (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  const NnicTensor *data = const_input (ctx, node, 0, error);
  const NnicTensor *idx = data ? const_input (ctx, node, 1, error) : NULL;
  int64_t axis;
  int a;
  if (!idx || !nnic_onnx_attr_int (ctx, node, "axis", 0, &axis, error) ||
      !axis_in (ctx, node, axis, data->ndim, &a, error))
    return FALSE;
  if (!is_integer (idx) || data->ndim + idx->ndim - 1 > NNIC_MAX_DIMS) {
    g_autofree char *s = nnic_shape_to_string (idx->ndim, idx->shape);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "the indices '%s' (%s %s) do not fit",
                          node->input[1], nnic_dtype_name (idx->dtype), s);
    return FALSE;
  }
  int64_t shape[NNIC_MAX_DIMS];
  int nd = 0;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < a; d++)
    outer *= shape[nd++] = data->shape[d];
  for (int d = 0; d < idx->ndim; d++)
    shape[nd++] = idx->shape[d];
  for (int d = a + 1; d < data->ndim; d++)
    inner *= shape[nd++] = data->shape[d];
  const int64_t D = data->shape[a];
  NnicTensor *t = new_tensor (ctx, node, is_integer (data) ? int_dtype (&data, 1) : NNIC_DTYPE_F32, nd,
                              shape, error);
  if (!t)
    return FALSE;
  for (int64_t j = 0; j < idx->numel; j++) {
    int64_t k = int_at (idx, j);
    if (k < 0)
      k += D;
    if (k < 0 || k >= D) {
      nnic_tensor_free (t);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            "index %" G_GINT64_FORMAT " is out of range for %" G_GINT64_FORMAT
                            " elements",
                            int_at (idx, j), D);
      return FALSE;
    }
    for (int64_t o = 0; o < outer; o++)
      for (int64_t i = 0; i < inner; i++)
        copy_element (t, (o * idx->numel + j) * inner + i, data, (o * D + k) * inner + i);
  }
  return emit (ctx, node, t);
}

/* The `axes` of Unsqueeze/Squeeze: an input from opset 13, an attribute before. */
static gboolean
read_axes (NnicOnnxImport *ctx, const NP *node, int64_t *axes, size_t *n, GError **error)
{
  *n = 0;
  if (ctx->opset >= 13) {
    const NnicTensor *t;
    int64_t m;
    if (!const_input_opt (ctx, node, 1, &t, error) ||
        (t && !int_list (ctx, node, 1, "axes", t, NNIC_MAX_DIMS, axes, &m, error)))
      return FALSE;
    *n = t ? (size_t) m : 0;
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
fold_unsqueeze_squeeze (NnicOnnxImport *ctx, const NP *node, gboolean unsqueeze, GError **error)
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
fold_unsqueeze (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_unsqueeze_squeeze (ctx, node, TRUE, error);
}

static gboolean
fold_squeeze (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  return fold_unsqueeze_squeeze (ctx, node, FALSE, error);
}

static gboolean
fold_concat (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  int64_t axis;
  if (!nnic_onnx_attr_int (ctx, node, "axis", G_MININT64, &axis, error))
    return FALSE;
  if (node->n_input < 1 || axis == G_MININT64) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          node->n_input < 1 ? "no inputs" : "the axis attribute is missing");
    return FALSE;
  }
  const NnicTensor *first = const_input (ctx, node, 0, error);
  int a;
  if (!first || !axis_in (ctx, node, axis, first->ndim, &a, error))
    return FALSE;
  int64_t shape[NNIC_MAX_DIMS];
  memcpy (shape, first->shape, sizeof (int64_t) * (size_t) first->ndim);
  shape[a] = 0;
  for (size_t k = 0; k < node->n_input; k++) {
    const NnicTensor *t = const_input (ctx, node, k, error);
    if (!t)
      return FALSE;
    gboolean fits = t->ndim == first->ndim && is_integer (t) == is_integer (first);
    for (int d = 0; fits && d < t->ndim; d++)
      fits = d == a || t->shape[d] == first->shape[d];
    if (!fits) {
      g_autofree char *s0 = nnic_shape_to_string (first->ndim, first->shape);
      g_autofree char *sk = nnic_shape_to_string (t->ndim, t->shape);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            "cannot concatenate '%s' (%s %s) and '%s' (%s %s) along axis %d",
                            node->input[0], nnic_dtype_name (first->dtype), s0, node->input[k],
                            nnic_dtype_name (t->dtype), sk, a);
      return FALSE;
    }
    shape[a] += t->shape[a];
  }
  const NnicDType dtype = !is_integer (first)             ? NNIC_DTYPE_F32
                          : first->dtype == NNIC_DTYPE_U8 ? NNIC_DTYPE_U8
                                                          : NNIC_DTYPE_I64;
  NnicTensor *out = new_tensor (ctx, node, dtype, first->ndim, shape, error);
  if (!out)
    return FALSE;
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < a; d++)
    outer *= shape[d];
  for (int d = a + 1; d < first->ndim; d++)
    inner *= shape[d];
  int64_t at = 0;
  for (int64_t o = 0; o < outer; o++)
    for (size_t k = 0; k < node->n_input; k++) {
      const NnicTensor *t = const_input (ctx, node, k, error);
      const int64_t block = t->shape[a] * inner;
      for (int64_t i = 0; i < block; i++)
        copy_element (out, at++, t, o * block + i);
    }
  return emit (ctx, node, out);
}

static gboolean
fold_cast (NnicOnnxImport *ctx, const NP *node, GError **error)
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
  else if (to == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL)
    dtype = NNIC_DTYPE_U8;
  else {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED, "Cast of a constant to %s",
                          nnic_onnx_dtype_name ((int) to));
    return FALSE;
  }
  NnicTensor *t = new_tensor (ctx, node, dtype, in->ndim, in->shape, error);
  if (!t)
    return FALSE;
  for (int64_t i = 0; i < in->numel; i++) {
    if (is_integer (in) && nnic_onnx_batch_factor (int_at (in, i)) && dtype == NNIC_DTYPE_F32) {
      g_autofree char *s = element_string (in, i);
      nnic_tensor_free (t);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "Cast of the batch size %s to float: nnic follows the batch size N "
                            "through integer products and exact quotients only",
                            s);
      return FALSE;
    }
    if (dtype == NNIC_DTYPE_F32)
      t->f32[i] = float_at (in, i);
    else if (dtype == NNIC_DTYPE_U8)
      t->u8[i] = is_integer (in) ? int_at (in, i) != 0 : in->f32[i] != 0;
    else if (is_integer (in))
      t->i64[i] = int_at (in, i);
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

static gboolean
fold_reshape (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  const NnicTensor *data = const_input (ctx, node, 0, error);
  const NnicTensor *st = data ? const_input (ctx, node, 1, error) : NULL;
  int64_t allowzero, shape[NNIC_MAX_DIMS];
  int nd;
  if (!st || !nnic_onnx_attr_int (ctx, node, "allowzero", 0, &allowzero, error) ||
      !shape_input (ctx, node, 1, st, shape, &nd, error))
    return FALSE;
  int inferred = -1;
  int64_t known = 1;
  for (int i = 0; i < nd; i++) {
    if (shape[i] == 0 && !allowzero) {
      if (i >= data->ndim)
        goto bad;
      shape[i] = data->shape[i];
    }
    if (shape[i] == -1 && inferred < 0)
      inferred = i;
    else if (shape[i] < 0)
      goto bad;
    else
      known *= shape[i];
  }
  if (inferred >= 0) {
    if (known == 0 || data->numel % known != 0)
      goto bad;
    shape[inferred] = data->numel / known;
  } else if (known != data->numel) {
    goto bad;
  }
  NnicTensor *t = new_tensor (ctx, node, data->dtype, nd, shape, error);
  if (!t)
    return FALSE;
  memcpy (t->data, data->data, nnic_tensor_nbytes (data));
  return emit (ctx, node, t);
bad : {
  g_autofree char *from = nnic_shape_to_string (data->ndim, data->shape);
  g_autofree char *to = nnic_onnx_dims_string (nd, shape);
  nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "cannot reshape '%s' %s to %s",
                        node->input[0], from, to);
  return FALSE;
}
}

static gboolean
fold_transpose (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  const NnicTensor *x = const_input (ctx, node, 0, error);
  const int64_t *perm;
  size_t n;
  if (!x || !nnic_onnx_attr_ints (ctx, node, "perm", 0, &perm, &n, error))
    return FALSE;
  int p[NNIC_MAX_DIMS];
  gboolean seen[NNIC_MAX_DIMS] = { 0 };
  if (n && n != (size_t) x->ndim) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "perm has %zu entries for an input of rank %d", n, x->ndim);
    return FALSE;
  }
  for (int d = 0; d < x->ndim; d++) {
    const int64_t v = n ? perm[d] : x->ndim - 1 - d;
    if (v < 0 || v >= x->ndim || seen[v]) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "perm is not a permutation");
      return FALSE;
    }
    seen[v] = TRUE;
    p[d] = (int) v;
  }
  int64_t shape[NNIC_MAX_DIMS], in_stride[NNIC_MAX_DIMS], stride[NNIC_MAX_DIMS];
  for (int64_t d = x->ndim - 1, s = 1; d >= 0; d--) {
    in_stride[d] = s;
    s *= x->shape[d];
  }
  for (int d = 0; d < x->ndim; d++) {
    shape[d] = x->shape[p[d]];
    stride[d] = in_stride[p[d]];
  }
  NnicTensor *t = new_tensor (ctx, node, is_integer (x) ? int_dtype (&x, 1) : NNIC_DTYPE_F32, x->ndim,
                              shape, error);
  if (!t)
    return FALSE;
  /* the output in order, the input through the permuted strides */
  Walk w;
  walk_strided (&w, x->ndim, shape, stride);
  for (int64_t i = 0; i < t->numel; i++, walk_next (&w))
    copy_element (t, i, x, w.off[0]);
  return emit (ctx, node, t);
}

static gboolean
fold_expand (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  const NnicTensor *x = const_input (ctx, node, 0, error);
  const NnicTensor *st = x ? const_input (ctx, node, 1, error) : NULL;
  int64_t want[NNIC_MAX_DIMS], shape[NNIC_MAX_DIMS];
  int nw, nd;
  if (!st || !shape_input (ctx, node, 1, st, want, &nw, error))
    return FALSE;
  const int nds[2] = { x->ndim, nw };
  const int64_t *shapes[2] = { x->shape, want };
  if (!broadcast (ctx, node, 2, nds, shapes, &nd, shape, error))
    return FALSE;
  NnicTensor *t = new_tensor (ctx, node, is_integer (x) ? int_dtype (&x, 1) : NNIC_DTYPE_F32, nd, shape,
                              error);
  if (!t)
    return FALSE;
  Walk w;
  walk_init (&w, nd, shape, &x, 1);
  for (int64_t i = 0; i < t->numel; i++, walk_next (&w))
    copy_element (t, i, x, w.off[0]);
  return emit (ctx, node, t);
}

/* An Expand of a constant to a shape holding the batch ([N, 1, 768] for
 * ViT's class token) is a graph value. */
static gboolean
expand_to_converter (NnicOnnxImport *ctx, const NP *node)
{
  OnnxValue *v = node->n_input >= 2 ? nnic_onnx_value_lookup (ctx, node->input[1]) : NULL;
  const NnicTensor *t = v && v->kind == ONNX_VALUE_CONST ? nnic_onnx_const_tensor (ctx, v, NULL) : NULL;
  for (int64_t i = 0; t && is_integer (t) && i < t->numel; i++)
    if (nnic_onnx_batch_factor (int_at (t, i)))
      return TRUE;
  return FALSE;
}

static gboolean
fold_constant_of_shape (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  const NnicTensor *st = const_input (ctx, node, 0, error);
  int64_t shape[NNIC_MAX_DIMS];
  int nd;
  if (!st || !shape_input (ctx, node, 0, st, shape, &nd, error))
    return FALSE;
  const Onnx__AttributeProto *a = nnic_onnx_attr (node, "value");
  g_autoptr (NnicTensor) value = NULL;
  if (a) {
    if (!a->t) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "the value attribute is not a tensor");
      return FALSE;
    }
    if (!(value = nnic_onnx_tensor_to_nnic (ctx, a->t, "the value", error))) {
      nnic_onnx_node_prefix (ctx, node, error);
      return FALSE;
    }
    if (value->numel != 1) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            "the value has %" G_GINT64_FORMAT " elements, not one", value->numel);
      return FALSE;
    }
  }
  for (int i = 0; i < nd; i++)
    if (shape[i] < 0) {
      g_autofree char *s = nnic_shape_to_string (nd, shape);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "the shape %s is negative", s);
      return FALSE;
    }
  NnicTensor *t = new_tensor (
      ctx, node,
      !value || !is_integer (value) ? NNIC_DTYPE_F32 : int_dtype ((const NnicTensor *const *) &value, 1),
      nd, shape, error);
  if (!t)
    return FALSE;
  for (int64_t i = 0; value && i < t->numel; i++)
    copy_element (t, i, value, 0);
  return emit (ctx, node, t);
}

static gboolean
fold_range (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  const NnicTensor *t[3];
  for (int k = 0; k < 3; k++) {
    if (!(t[k] = const_input (ctx, node, (size_t) k, error)))
      return FALSE;
    if (t[k]->numel != 1 || (is_integer (t[k]) && nnic_onnx_batch_factor (int_at (t[k], 0)))) {
      g_autofree char *s = t[k]->numel == 1 ? element_string (t[k], 0)
                                            : nnic_shape_to_string (t[k]->ndim, t[k]->shape);
      nnic_onnx_node_error (
          ctx, node, error, t[k]->numel != 1 ? NNIC_ERROR_FORMAT : NNIC_ERROR_UNSUPPORTED,
          "input %d ('%s') is %s: a Range of constants needs numbers", k, node->input[k], s);
      return FALSE;
    }
  }
  const gboolean ints = is_integer (t[0]) && is_integer (t[1]) && is_integer (t[2]);
  int64_t n;
  if (ints) {
    const int64_t start = int_at (t[0], 0), limit = int_at (t[1], 0), delta = int_at (t[2], 0);
    if (delta == 0)
      goto zero;
    const double q = ceil (((double) limit - (double) start) / (double) delta);
    n = q > 0 ? (int64_t) MIN (q, (double) NNIC_ONNX_MAX_NUMEL + 1) : 0;
  } else {
    const float start = float_at (t[0], 0), limit = float_at (t[1], 0), delta = float_at (t[2], 0);
    if (delta == 0)
      goto zero;
    const double q = ceil (((double) limit - start) / delta);
    n = q > 0 ? (int64_t) MIN (q, (double) NNIC_ONNX_MAX_NUMEL + 1) : 0;
  }
  if (n > NNIC_ONNX_MAX_NUMEL) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "the range is too long");
    return FALSE;
  }
  NnicTensor *y = new_tensor (ctx, node, ints ? NNIC_DTYPE_I64 : NNIC_DTYPE_F32, 1, &n, error);
  if (!y)
    return FALSE;
  for (int64_t i = 0; i < n; i++)
    if (ints)
      y->i64[i] = int_at (t[0], 0) + i * int_at (t[2], 0);
    else
      y->f32[i] = float_at (t[0], 0) + (float) i * float_at (t[2], 0);
  return emit (ctx, node, y);
zero:
  nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "the delta is zero");
  return FALSE;
}

static gboolean
fold_slice (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  const NnicTensor *x = const_input (ctx, node, 0, error), *t[4] = { 0 };
  if (!x)
    return FALSE;
  static const char *const what[] = { "starts", "ends", "axes", "steps" };
  int64_t v[4][NNIC_MAX_DIMS], n[4] = { 0 };
  for (int k = 0; k < 4; k++) {
    if (k < 2 ? !(t[k] = const_input (ctx, node, (size_t) k + 1, error))
              : !const_input_opt (ctx, node, (size_t) k + 1, &t[k], error))
      return FALSE;
    if (t[k] && !int_list (ctx, node, (size_t) k + 1, what[k], t[k], NNIC_MAX_DIMS, v[k], &n[k], error))
      return FALSE;
  }
  if (n[1] != n[0] || (t[2] && n[2] != n[0]) || (t[3] && n[3] != n[0])) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "starts, ends, axes and steps differ in length");
    return FALSE;
  }
  int64_t first[NNIC_MAX_DIMS], step[NNIC_MAX_DIMS], shape[NNIC_MAX_DIMS];
  for (int d = 0; d < x->ndim; d++) {
    first[d] = 0;
    step[d] = 1;
    shape[d] = x->shape[d];
  }
  gboolean seen[NNIC_MAX_DIMS] = { 0 };
  for (int64_t i = 0; i < n[0]; i++) {
    int a;
    if (!axis_in (ctx, node, t[2] ? v[2][i] : i, x->ndim, &a, error))
      return FALSE;
    step[a] = t[3] ? v[3][i] : 1;
    if (seen[a] || step[a] == 0) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            seen[a] ? "axis %d is sliced twice" : "a step of axis %d is zero", a);
      return FALSE;
    }
    seen[a] = TRUE;
    op_slice_axis (x->shape[a], v[0][i], v[1][i], step[a], &first[a], &shape[a]);
  }
  NnicTensor *y = new_tensor (ctx, node, is_integer (x) ? int_dtype (&x, 1) : NNIC_DTYPE_F32, x->ndim,
                              shape, error);
  if (!y)
    return FALSE;
  int64_t stride[NNIC_MAX_DIMS], base = 0;
  for (int64_t d = x->ndim - 1, s = 1; d >= 0; d--) {
    stride[d] = s * step[d];
    base += first[d] * s;
    s *= x->shape[d];
  }
  Walk w;
  walk_strided (&w, x->ndim, shape, stride);
  for (int64_t i = 0; i < y->numel; i++, walk_next (&w))
    copy_element (y, i, x, base + w.off[0]);
  return emit (ctx, node, y);
}

/* data with slices replaced (or added to, multiplied by) at the indices:
 * how torch writes `mask[a:b, c:d] = v`. */
static gboolean
fold_scatter_nd (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  const NnicTensor *t[3];
  for (int k = 0; k < 3; k++)
    if (!(t[k] = const_input (ctx, node, (size_t) k, error)))
      return FALSE;
  const NnicTensor *data = t[0], *idx = t[1], *upd = t[2];
  g_autofree char *reduction = NULL;
  if (!nnic_onnx_attr_string (ctx, node, "reduction", "none", &reduction, error))
    return FALSE;
  const int red = !strcmp (reduction, "none")  ? 0
                  : !strcmp (reduction, "add") ? 1
                  : !strcmp (reduction, "mul") ? 2
                                               : -1;
  if (red < 0) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED, "reduction '%s' is not supported",
                          reduction);
    return FALSE;
  }
  const int64_t q = idx->ndim ? idx->shape[idx->ndim - 1] : 0;
  gboolean fits = is_integer (idx) && idx->ndim >= 1 && q <= data->ndim &&
                  upd->ndim == idx->ndim - 1 + data->ndim - q && is_integer (upd) == is_integer (data);
  for (int d = 0; fits && d < idx->ndim - 1; d++)
    fits = upd->shape[d] == idx->shape[d];
  for (int d = (int) q; fits && d < data->ndim; d++)
    fits = upd->shape[idx->ndim - 1 + d - q] == data->shape[d];
  if (!fits) {
    g_autofree char *sd = nnic_shape_to_string (data->ndim, data->shape);
    g_autofree char *si = nnic_shape_to_string (idx->ndim, idx->shape);
    g_autofree char *su = nnic_shape_to_string (upd->ndim, upd->shape);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "data %s, indices %s and updates %s do not fit", sd, si, su);
    return FALSE;
  }
  NnicTensor *y = new_tensor (ctx, node, is_integer (data) ? int_dtype (&data, 1) : NNIC_DTYPE_F32,
                              data->ndim, data->shape, error);
  if (!y)
    return FALSE;
  for (int64_t i = 0; i < data->numel; i++)
    copy_element (y, i, data, i);
  int64_t slice = 1;
  for (int d = (int) q; d < data->ndim; d++)
    slice *= data->shape[d];
  int64_t tuples = 1;
  for (int d = 0; d < idx->ndim - 1; d++)
    tuples *= idx->shape[d];
  for (int64_t j = 0; j < tuples; j++) {
    int64_t off = 0;
    for (int d = 0; d < q; d++) {
      int64_t k = int_at (idx, j * q + d);
      if (k < 0)
        k += data->shape[d];
      if (k < 0 || k >= data->shape[d]) {
        nnic_tensor_free (y);
        nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                              "index %" G_GINT64_FORMAT
                              " is out of range for dimension %d of %" G_GINT64_FORMAT,
                              int_at (idx, j * q + d), d, data->shape[d]);
        return FALSE;
      }
      off = off * data->shape[d] + k;
    }
    for (int64_t i = 0; i < slice; i++) {
      const int64_t o = off * slice + i, u = j * slice + i;
      if (red == 0)
        copy_element (y, o, upd, u);
      else if (y->dtype == NNIC_DTYPE_F32)
        y->f32[o] = red == 1 ? y->f32[o] + float_at (upd, u) : y->f32[o] * float_at (upd, u);
      else if (y->dtype == NNIC_DTYPE_I64)
        y->i64[o] = red == 1 ? y->i64[o] + int_at (upd, u) : y->i64[o] * int_at (upd, u);
      else
        y->u8[o] = red == 1 ? (y->u8[o] || int_at (upd, u)) : (y->u8[o] && int_at (upd, u));
    }
  }
  return emit (ctx, node, y);
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

static gboolean
quant_params (NnicOnnxImport *ctx, const NP *node, const NnicTensor *x, QuantParams *qp, GError **error)
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
fold_dequantize (NnicOnnxImport *ctx, const NP *node, GError **error)
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
fold_quantize (NnicOnnxImport *ctx, const NP *node, GError **error)
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

/* ---- the table (sorted by op type) ---- */

const NnicOnnxFold nnic_onnx_folds[] = {
  { "Abs", fold_abs, NULL },
  { "Add", fold_add, NULL },
  { "Cast", fold_cast, NULL },
  { "Ceil", fold_ceil, NULL },
  { "Concat", fold_concat, NULL },
  { "ConstantOfShape", fold_constant_of_shape, NULL },
  { "DequantizeLinear", fold_dequantize, NULL },
  { "Div", fold_div, NULL },
  { "Equal", fold_equal, NULL },
  { "Expand", fold_expand, expand_to_converter },
  { "Floor", fold_floor, NULL },
  { "Gather", fold_gather, NULL },
  { "Mod", fold_mod, NULL },
  { "Mul", fold_mul, NULL },
  { "Neg", fold_neg, NULL },
  { "Not", fold_not, NULL },
  { "Pow", fold_pow, NULL },
  { "QuantizeLinear", fold_quantize, NULL },
  { "Range", fold_range, NULL },
  { "Reshape", fold_reshape, NULL },
  { "ScatterND", fold_scatter_nd, NULL },
  { "Shape", fold_shape, NULL },
  { "Slice", fold_slice, NULL },
  { "Sqrt", fold_sqrt, NULL },
  { "Squeeze", fold_squeeze, NULL },
  { "Sub", fold_sub, NULL },
  { "Transpose", fold_transpose, NULL },
  { "Unsqueeze", fold_unsqueeze, NULL },
  { "Where", fold_where, NULL },
  { NULL, NULL, NULL },
};

const char *const *
nnic_onnx_folded_ops (void)
{
  static const char **ops;
  if (g_once_init_enter (&ops)) {
    const char **list = g_new0 (const char *, G_N_ELEMENTS (nnic_onnx_folds));
    for (guint i = 0; nnic_onnx_folds[i].op; i++)
      list[i] = nnic_onnx_folds[i].op; /* the table is sorted */
    g_once_init_leave (&ops, list);
  }
  return ops;
}

const NnicOnnxFold *
nnic_onnx_fold_find (const char *op)
{
  for (const NnicOnnxFold *f = nnic_onnx_folds; op && f->op; f++)
    if (!strcmp (f->op, op))
      return f;
  return NULL;
}

gboolean
nnic_onnx_op_folds (const char *op)
{
  return nnic_onnx_fold_find (op) != NULL;
}

gboolean
nnic_onnx_fold_to_converter (NnicOnnxImport *ctx, const NP *node)
{
  const NnicOnnxFold *f = nnic_onnx_fold_find (node->op_type);
  return f && f->to_converter && f->to_converter (ctx, node);
}

gboolean
nnic_onnx_fold (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  const NnicOnnxFold *f = nnic_onnx_fold_find (node->op_type);
  if (!f) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED, "cannot fold %s", node->op_type);
    return FALSE;
  }
  return f->fold (ctx, node, error);
}
