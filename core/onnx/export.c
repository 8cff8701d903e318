/* ONNX export: an nnic model and its current weights as a ModelProto.
 * The messages are built on the heap, each allocation recorded in an
 * arena freed at the end; weights are referenced, not copied, until
 * protobuf-c packs them. */
#include <nnic/onnx.h>
#include <nnic/error.h>
#include <nnic/io.h>
#include <nnic/version.h>

#include "onnx.pb-c.h"

#include <math.h>
#include <string.h>

#define DEFAULT_OPSET 13

typedef struct {
  GPtrArray *arena;        /* every allocation, freed together */
  GPtrArray *nodes;        /* Onnx__NodeProto * */
  GPtrArray *initializers; /* Onnx__TensorProto * */
  NnicModel *model;
  int opset;
  const NnicOnnxSaveOptions *options;
  const char **value;      /* per node: the ONNX value its consumers read */
  const char *input0;      /* the node being written: its first input, when quantized */
} Exporter;

static gpointer
alloc (Exporter *x, gsize size)
{
  gpointer p = g_malloc0 (size);
  g_ptr_array_add (x->arena, p);
  return p;
}

static char *
keep_string (Exporter *x, char *s)
{
  g_ptr_array_add (x->arena, s);
  return s;
}

/* ---- initializers ---- */

static Onnx__TensorProto *
tensor_proto (Exporter *x, const char *name, int32_t dtype, int ndim, const int64_t *dims,
              const void *data, size_t nbytes)
{
  Onnx__TensorProto *t = alloc (x, sizeof *t);
  onnx__tensor_proto__init (t);
  t->name = keep_string (x, g_strdup (name));
  t->has_data_type = TRUE;
  t->data_type = dtype;
  t->n_dims = (size_t) ndim;
  t->dims = alloc (x, sizeof (int64_t) * (size_t) MAX (ndim, 1));
  memcpy (t->dims, dims, sizeof (int64_t) * (size_t) ndim);
  t->has_raw_data = TRUE;
  t->raw_data.len = nbytes;
  t->raw_data.data = (uint8_t *) data; /* G_BYTE_ORDER is little-endian on every target nnic builds for */
  g_ptr_array_add (x->initializers, t);
  return t;
}

/* A parameter of the model, under its state_dict name. */
static const char *
param_initializer (Exporter *x, const char *name, GError **error)
{
  NnicParam *p = nnic_model_find_param (x->model, name, error);
  if (!p)
    return NULL;
  const NnicTensor *v = p->value;
  tensor_proto (x, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, v->ndim, v->shape, v->data, nnic_tensor_nbytes (v));
  return p->name;
}

/* A constant the model has no parameter for (Clip bounds, shapes). */
static const char *
constant_f32 (Exporter *x, const char *name, const float *values, int64_t n, gboolean scalar)
{
  float *copy = alloc (x, sizeof (float) * (size_t) MAX (n, 1));
  memcpy (copy, values, sizeof (float) * (size_t) n);
  tensor_proto (x, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, scalar ? 0 : 1, &n, copy, sizeof (float) * (size_t) n);
  return name;
}

static const char *
constant_i64 (Exporter *x, const char *name, const int64_t *values, int64_t n)
{
  int64_t *copy = alloc (x, sizeof (int64_t) * (size_t) MAX (n, 1));
  memcpy (copy, values, sizeof (int64_t) * (size_t) n);
  tensor_proto (x, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &n, copy, sizeof (int64_t) * (size_t) n);
  return name;
}

/* ---- nodes ---- */

static Onnx__NodeProto *
add_node (Exporter *x, const char *op, const char *name, const char *output)
{
  Onnx__NodeProto *n = alloc (x, sizeof *n);
  onnx__node_proto__init (n);
  n->op_type = keep_string (x, g_strdup (op));
  n->name = keep_string (x, g_strdup (name));
  n->n_output = 1;
  n->output = alloc (x, sizeof (char *));
  n->output[0] = keep_string (x, g_strdup (output));
  n->input = alloc (x, sizeof (char *) * 8);
  g_ptr_array_add (x->nodes, n);
  return n;
}

static void
add_input (Exporter *x, Onnx__NodeProto *n, const char *value)
{
  g_assert (n->n_input < 8);
  n->input[n->n_input++] = keep_string (x, g_strdup (value));
}

static Onnx__AttributeProto *
new_attribute (Exporter *x, Onnx__NodeProto *n, const char *name, Onnx__AttributeProto__AttributeType type)
{
  Onnx__AttributeProto *a = alloc (x, sizeof *a);
  onnx__attribute_proto__init (a);
  a->name = keep_string (x, g_strdup (name));
  a->has_type = TRUE;
  a->type = type;
  Onnx__AttributeProto **grown = alloc (x, sizeof (Onnx__AttributeProto *) * (n->n_attribute + 1));
  if (n->n_attribute)
    memcpy (grown, n->attribute, sizeof (Onnx__AttributeProto *) * n->n_attribute);
  grown[n->n_attribute++] = a;
  n->attribute = grown;
  return a;
}

static void
attr_int (Exporter *x, Onnx__NodeProto *n, const char *name, int64_t v)
{
  Onnx__AttributeProto *a = new_attribute (x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  a->has_i = TRUE;
  a->i = v;
}

static void
attr_float (Exporter *x, Onnx__NodeProto *n, const char *name, float v)
{
  Onnx__AttributeProto *a = new_attribute (x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  a->has_f = TRUE;
  a->f = v;
}

static void
attr_ints (Exporter *x, Onnx__NodeProto *n, const char *name, const int64_t *v, size_t count)
{
  Onnx__AttributeProto *a = new_attribute (x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
  a->n_ints = count;
  a->ints = alloc (x, sizeof (int64_t) * count);
  memcpy (a->ints, v, sizeof (int64_t) * count);
}

/* The value a node's k-th input reads: the producer's output (after its
 * output's QDQ pair, if any), or this node's own input QDQ pair. */
static const char *
input_of (Exporter *x, guint node, guint k)
{
  if (k == 0 && x->input0)
    return x->input0;
  return x->value[nnic_model_node_input (x->model, node, k)];
}

/* ---- QDQ ---- */

static const NnicOnnxQuantParam *
find_quant (Exporter *x, const char *node, NnicQuantType type)
{
  const NnicOnnxSaveOptions *o = x->options;
  for (guint i = 0; o && i < o->n_quant; i++)
    if (o->quant[i].type == type && !g_strcmp0 (o->quant[i].node, node))
      return &o->quant[i];
  return NULL;
}

static gboolean
check_quant (const NnicOnnxQuantParam *q, GError **error)
{
  /* An all-zero weight has scale 0 (nothing to scale): exported as scale 1
   * and zero integers. */
  const gboolean zero_weight = q->type == NNIC_QUANT_WEIGHT && q->scale == 0.0;
  gboolean ok = q->bits >= 1 && q->bits <= 8 && (zero_weight || (q->scale > 0 && isfinite (q->scale)));
  if (ok) {
    const int lo = q->is_signed ? -(1 << (q->bits - 1)) : 0;
    const int hi = q->is_signed ? (1 << (q->bits - 1)) - 1 : (1 << q->bits) - 1;
    ok = q->zero_point >= lo && q->zero_point <= hi;
  }
  if (!ok) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s: quantization parameters out of range (bits %d, scale %g, zero point %d)", q->node, q->bits,
                 q->scale, q->zero_point);
    return FALSE;
  }
  return TRUE;
}

/* The scale and zero point initializers of one quantized tensor. */
static void
quant_constants (Exporter *x, Onnx__NodeProto *n, const char *prefix, const NnicOnnxQuantParam *q)
{
  g_autofree char *sn = g_strconcat (prefix, "_scale", NULL), *zn = g_strconcat (prefix, "_zero_point", NULL);
  const float scale = q->scale > 0 ? (float) q->scale : 1.0f;
  add_input (x, n, constant_f32 (x, keep_string (x, g_steal_pointer (&sn)), &scale, 1, TRUE));
  uint8_t *zp = alloc (x, 1);
  zp[0] = q->is_signed ? (uint8_t) (int8_t) q->zero_point : (uint8_t) q->zero_point;
  const char *zname = keep_string (x, g_steal_pointer (&zn));
  tensor_proto (x, zname, q->is_signed ? ONNX__TENSOR_PROTO__DATA_TYPE__INT8 : ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 0,
                (const int64_t[]) { 1 }, zp, 1);
  add_input (x, n, zname);
}

/* value → QuantizeLinear → DequantizeLinear; returns the dequantized value. */
static const char *
qdq_pair (Exporter *x, const char *value, const char *prefix, const NnicOnnxQuantParam *q)
{
  g_autofree char *qn = g_strconcat (prefix, "_q", NULL), *dqn = g_strconcat (prefix, "_dq", NULL);
  Onnx__NodeProto *quant = add_node (x, "QuantizeLinear", qn, qn);
  add_input (x, quant, value);
  quant_constants (x, quant, prefix, q);
  Onnx__NodeProto *dequant = add_node (x, "DequantizeLinear", dqn, dqn);
  add_input (x, dequant, qn);
  add_input (x, dequant, quant->input[1]);
  add_input (x, dequant, quant->input[2]);
  return dequant->output[0];
}

/* A quantized weight: the integers as an initializer and a
 * DequantizeLinear whose output carries the parameter's name. */
static gboolean
quantized_weight (Exporter *x, const char *param, const NnicOnnxQuantParam *q, GError **error)
{
  NnicParam *p = nnic_model_find_param (x->model, param, error);
  if (!p)
    return FALSE;
  const NnicTensor *src = q->fake_quantized ? q->fake_quantized : p->value;
  if (!nnic_tensor_same_shape (src, p->value)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE, "%s: the fake-quantized weight's shape differs", param);
    return FALSE;
  }
  const int lo = q->is_signed ? -(1 << (q->bits - 1)) : 0;
  const int hi = q->is_signed ? (1 << (q->bits - 1)) - 1 : (1 << q->bits) - 1;
  uint8_t *ints = alloc (x, (gsize) MAX (src->numel, 1));
  for (int64_t k = 0; k < src->numel; k++) {
    /* A fake-quantized value is (q - zp) * scale up to rounding: round
     * recovers q exactly; a float weight is quantized as QuantizeLinear
     * would (half to even). */
    double v = q->scale > 0 ? nearbyint ((double) src->f32[k] / q->scale) + q->zero_point : q->zero_point;
    int iv = (int) fmin (fmax (v, lo), hi);
    ints[k] = q->is_signed ? (uint8_t) (int8_t) iv : (uint8_t) iv;
  }
  g_autofree char *qname = g_strconcat (param, "_quantized", NULL);
  tensor_proto (x, keep_string (x, g_steal_pointer (&qname)),
                q->is_signed ? ONNX__TENSOR_PROTO__DATA_TYPE__INT8 : ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
                src->ndim, src->shape, ints, (size_t) src->numel);
  Onnx__NodeProto *dq = add_node (x, "DequantizeLinear", param, param);
  add_input (x, dq, ((Onnx__TensorProto *) g_ptr_array_index (x->initializers, x->initializers->len - 1))->name);
  quant_constants (x, dq, param, q);
  return TRUE;
}

/* A layer's weight, under the parameter's name: a float initializer, or
 * (quantized) integers and the DequantizeLinear that precedes the layer. */
static gboolean
prepare_weight (Exporter *x, const char *node, const char *param, GError **error)
{
  const NnicOnnxQuantParam *q = find_quant (x, node, NNIC_QUANT_WEIGHT);
  return q ? quantized_weight (x, param, q, error) : param_initializer (x, param, error) != NULL;
}

static void
window_attrs (Exporter *x, Onnx__NodeProto *n, int kh, int kw, int sh, int sw, const int pads[4])
{
  attr_ints (x, n, "kernel_shape", (const int64_t[]) { kh, kw }, 2);
  attr_ints (x, n, "strides", (const int64_t[]) { sh, sw }, 2);
  /* ONNX: x1_begin, x2_begin, x1_end, x2_end (top, left, bottom, right). */
  attr_ints (x, n, "pads", (const int64_t[]) { pads[0], pads[1], pads[2], pads[3] }, 4);
}

/* A Conv or Gemm node reading node i's input, its weight (float or
 * dequantized) and its bias. */
static Onnx__NodeProto *
weighted_node (Exporter *x, const char *op, guint i, gboolean no_bias, GError **error)
{
  const char *name = nnic_model_node_name (x->model, i);
  g_autofree char *weight = g_strconcat (name, ".weight", NULL);
  g_autofree char *bias = g_strconcat (name, ".bias", NULL);
  if (!prepare_weight (x, name, weight, error))
    return NULL;
  Onnx__NodeProto *n = add_node (x, op, name, name);
  add_input (x, n, input_of (x, i, 0));
  add_input (x, n, weight);
  if (!no_bias) {
    if (!param_initializer (x, bias, error))
      return NULL;
    add_input (x, n, bias);
  }
  return n;
}

static gboolean
export_layer (Exporter *x, guint i, GError **error)
{
  NnicModel *m = x->model;
  const char *name = nnic_model_node_name (m, i), *type = nnic_model_node_type (m, i);
  g_autofree char *weight = g_strconcat (name, ".weight", NULL);
  g_autofree char *bias = g_strconcat (name, ".bias", NULL);
  Onnx__NodeProto *n;

  if (!strcmp (type, "Conv2d")) {
    NnicConv2dSpec s;
    nnic_model_node_conv2d_spec (m, i, &s);
    if (!(n = weighted_node (x, "Conv", i, s.no_bias, error)))
      return FALSE;
    window_attrs (x, n, s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.pads);
    attr_ints (x, n, "dilations", (const int64_t[]) { s.dilation_h, s.dilation_w }, 2);
    attr_int (x, n, "group", s.groups > 0 ? s.groups : 1);
  } else if (!strcmp (type, "Linear")) {
    NnicLinearSpec s;
    nnic_model_node_linear_spec (m, i, &s);
    if (!(n = weighted_node (x, "Gemm", i, s.no_bias, error)))
      return FALSE;
    attr_int (x, n, "transB", 1);
  } else if (!strcmp (type, "BatchNorm2d") || !strcmp (type, "BatchNorm1d")) {
    /* BatchNormalization normalises over every axis but the second: on
     * BatchNorm1d's [N, C] input, that is the batch. */
    NnicBatchNormSpec s;
    nnic_model_node_batchnorm_spec (m, i, &s);
    n = add_node (x, "BatchNormalization", name, name);
    add_input (x, n, input_of (x, i, 0));
    if (s.no_affine) {
      /* ONNX always has scale and B: ones and zeros. */
      g_autofree float *ones = g_new (float, (gsize) s.num_features);
      g_autofree float *zeros = g_new0 (float, (gsize) s.num_features);
      for (int c = 0; c < s.num_features; c++)
        ones[c] = 1.0f;
      g_autofree char *sn = g_strconcat (name, ".onnx_scale", NULL), *bn = g_strconcat (name, ".onnx_bias", NULL);
      add_input (x, n, constant_f32 (x, keep_string (x, g_steal_pointer (&sn)), ones, s.num_features, FALSE));
      add_input (x, n, constant_f32 (x, keep_string (x, g_steal_pointer (&bn)), zeros, s.num_features, FALSE));
    } else {
      if (!param_initializer (x, weight, error) || !param_initializer (x, bias, error))
        return FALSE;
      add_input (x, n, weight);
      add_input (x, n, bias);
    }
    g_autofree char *mean = g_strconcat (name, ".running_mean", NULL);
    g_autofree char *var = g_strconcat (name, ".running_var", NULL);
    if (!param_initializer (x, mean, error) || !param_initializer (x, var, error))
      return FALSE;
    add_input (x, n, mean);
    add_input (x, n, var);
    attr_float (x, n, "epsilon", (float) s.eps);
    /* ONNX's momentum weighs the running value, torch's the batch's. */
    attr_float (x, n, "momentum", (float) (1.0 - s.momentum));
  } else if (!strcmp (type, "ReLU")) {
    n = add_node (x, "Relu", name, name);
    add_input (x, n, input_of (x, i, 0));
  } else if (!strcmp (type, "ReLU6") || !strcmp (type, "Hardtanh")) {
    double lo = 0.0, hi = 6.0;
    if (!strcmp (type, "Hardtanh")) {
      nnic_model_node_option (m, i, "min_val", &lo);
      nnic_model_node_option (m, i, "max_val", &hi);
    }
    n = add_node (x, "Clip", name, name);
    add_input (x, n, input_of (x, i, 0));
    g_autofree char *ln = g_strconcat (name, ".onnx_min", NULL), *hn = g_strconcat (name, ".onnx_max", NULL);
    const float lof = (float) lo, hif = (float) hi;
    add_input (x, n, constant_f32 (x, keep_string (x, g_steal_pointer (&ln)), &lof, 1, TRUE));
    add_input (x, n, constant_f32 (x, keep_string (x, g_steal_pointer (&hn)), &hif, 1, TRUE));
  } else if (!strcmp (type, "MaxPool2d") || !strcmp (type, "AvgPool2d")) {
    NnicPool2dSpec s;
    nnic_model_node_pool2d_spec (m, i, &s);
    const gboolean max = !strcmp (type, "MaxPool2d");
    n = add_node (x, max ? "MaxPool" : "AveragePool", name, name);
    add_input (x, n, input_of (x, i, 0));
    window_attrs (x, n, s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.pads);
    attr_int (x, n, "ceil_mode", s.ceil_mode ? 1 : 0);
    if (!max)
      attr_int (x, n, "count_include_pad", s.exclude_pad ? 0 : 1);
  } else if (!strcmp (type, "AdaptiveAvgPool2d")) {
    double oh = 1, ow = 1;
    nnic_model_node_option (m, i, "out_h", &oh);
    nnic_model_node_option (m, i, "out_w", &ow);
    int64_t in[NNIC_MAX_DIMS];
    nnic_model_node_shape (m, nnic_model_node_input (m, i, 0), in);
    if (oh == 1 && ow == 1) {
      n = add_node (x, "GlobalAveragePool", name, name);
      add_input (x, n, input_of (x, i, 0));
    } else if (in[1] % (int64_t) oh == 0 && in[2] % (int64_t) ow == 0) {
      /* Windows that tile the input evenly: an ordinary average pool. */
      const int kh = (int) (in[1] / (int64_t) oh), kw = (int) (in[2] / (int64_t) ow);
      n = add_node (x, "AveragePool", name, name);
      add_input (x, n, input_of (x, i, 0));
      window_attrs (x, n, kh, kw, kh, kw, (const int[4]) { 0, 0, 0, 0 });
    } else {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                   "%s (AdaptiveAvgPool2d): output %gx%g does not divide the input %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
                   "; ONNX has no adaptive pooling", name, oh, ow, in[1], in[2]);
      return FALSE;
    }
  } else if (!strcmp (type, "Flatten")) {
    n = add_node (x, "Flatten", name, name);
    add_input (x, n, input_of (x, i, 0));
    attr_int (x, n, "axis", 1);
  } else if (!strcmp (type, "Dropout")) {
    /* Inference: the identity (ONNX Dropout with no training_mode input). */
    n = add_node (x, "Dropout", name, name);
    add_input (x, n, input_of (x, i, 0));
  } else if (!strcmp (type, "Add")) {
    n = add_node (x, "Add", name, name);
    add_input (x, n, input_of (x, i, 0));
    add_input (x, n, input_of (x, i, 1));
  } else if (!strcmp (type, "Concat")) {
    n = add_node (x, "Concat", name, name);
    for (guint k = 0; k < nnic_model_node_n_inputs (m, i); k++) {
      if (n->n_input == 8) {
        g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED, "%s (Concat): more than 8 inputs", name);
        return FALSE;
      }
      add_input (x, n, input_of (x, i, k));
    }
    attr_int (x, n, "axis", 1);
  } else if (!strcmp (type, "Softmax")) {
    double axis = -1;
    nnic_model_node_option (m, i, "axis", &axis);
    n = add_node (x, "Softmax", name, name);
    add_input (x, n, input_of (x, i, 0));
    attr_int (x, n, "axis", (int64_t) axis);
  } else if (!strcmp (type, "Reshape")) {
    int64_t shape[NNIC_MAX_DIMS + 1];
    const int nd = nnic_model_node_shape (m, i, shape + 1);
    shape[0] = -1; /* the batch */
    n = add_node (x, "Reshape", name, name);
    add_input (x, n, input_of (x, i, 0));
    g_autofree char *sn = g_strconcat (name, ".onnx_shape", NULL);
    add_input (x, n, constant_i64 (x, keep_string (x, g_steal_pointer (&sn)), shape, nd + 1));
  } else {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED, "%s: no ONNX export for node type %s", name, type);
    return FALSE;
  }
  return TRUE;
}

/* A node, with the QDQ pairs of its quantized input and output. */
static gboolean
export_node (Exporter *x, guint i, GError **error)
{
  const char *name = nnic_model_node_name (x->model, i);
  const NnicOnnxQuantParam *in = find_quant (x, name, NNIC_QUANT_INPUT);
  const NnicOnnxQuantParam *out = find_quant (x, name, NNIC_QUANT_OUTPUT);
  const NnicOnnxQuantParam *w = find_quant (x, name, NNIC_QUANT_WEIGHT);
  if ((in && !check_quant (in, error)) || (out && !check_quant (out, error)) || (w && !check_quant (w, error)))
    return FALSE;
  x->input0 = NULL;
  if (in) {
    g_autofree char *prefix = g_strconcat (name, ".input", NULL);
    x->input0 = qdq_pair (x, x->value[nnic_model_node_input (x->model, i, 0)], prefix, in);
  }
  if (!export_layer (x, i, error))
    return FALSE;
  x->value[i] = name;
  if (out) {
    g_autofree char *prefix = g_strconcat (name, ".output", NULL);
    x->value[i] = qdq_pair (x, name, prefix, out);
  }
  return TRUE;
}

/* A float tensor value with a symbolic batch dimension. */
static Onnx__ValueInfoProto *
value_info (Exporter *x, const char *name, const int64_t *shape, int ndim)
{
  Onnx__ValueInfoProto *v = alloc (x, sizeof *v);
  onnx__value_info_proto__init (v);
  v->name = keep_string (x, g_strdup (name));
  Onnx__TypeProto *tp = alloc (x, sizeof *tp);
  onnx__type_proto__init (tp);
  Onnx__TypeProto__Tensor *tt = alloc (x, sizeof *tt);
  onnx__type_proto__tensor__init (tt);
  tt->has_elem_type = TRUE;
  tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  Onnx__TensorShapeProto *sp = alloc (x, sizeof *sp);
  onnx__tensor_shape_proto__init (sp);
  sp->n_dim = (size_t) ndim + 1;
  sp->dim = alloc (x, sizeof (Onnx__TensorShapeProto__Dimension *) * sp->n_dim);
  for (size_t d = 0; d < sp->n_dim; d++) {
    Onnx__TensorShapeProto__Dimension *dim = alloc (x, sizeof *dim);
    onnx__tensor_shape_proto__dimension__init (dim);
    if (d == 0) {
      dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      dim->dim_param = keep_string (x, g_strdup ("batch"));
    } else {
      dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      dim->dim_value = shape[d - 1];
    }
    sp->dim[d] = dim;
  }
  tt->shape = sp;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  v->type = tp;
  return v;
}

gboolean
nnic_model_save_onnx (NnicModel *m, const char *path, const NnicOnnxSaveOptions *options, GError **error)
{
  Exporter x = {
    .arena = g_ptr_array_new_with_free_func (g_free),
    .nodes = g_ptr_array_new (),
    .initializers = g_ptr_array_new (),
    .model = m,
    .opset = options && options->opset ? options->opset : DEFAULT_OPSET,
    .options = options,
  };
  x.value = alloc (&x, sizeof (char *) * nnic_model_n_nodes (m));
  x.value[0] = nnic_model_node_name (m, 0);
  gboolean ok = FALSE;
  uint8_t *buffer = NULL;
  if (x.opset < 11 || x.opset > 17) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: ONNX export writes opsets 11 to 17, not %d", path, x.opset);
    goto out;
  }
  const guint output = nnic_model_output_node (m);
  for (guint i = 1; i <= output; i++)
    if (!export_node (&x, i, error)) {
      g_prefix_error (error, "%s: ", path);
      goto out;
    }

  int64_t shape[NNIC_MAX_DIMS];
  Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
  graph.name = "nnic";
  graph.n_node = x.nodes->len;
  graph.node = (Onnx__NodeProto **) x.nodes->pdata;
  graph.n_initializer = x.initializers->len;
  graph.initializer = (Onnx__TensorProto **) x.initializers->pdata;
  int nd = nnic_model_node_shape (m, 0, shape);
  Onnx__ValueInfoProto *in = value_info (&x, nnic_model_node_name (m, 0), shape, nd);
  nd = nnic_model_node_shape (m, output, shape);
  Onnx__ValueInfoProto *out = value_info (&x, x.value[output], shape, nd);
  graph.n_input = 1;
  graph.input = &in;
  graph.n_output = 1;
  graph.output = &out;

  Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
  opset.domain = "";
  opset.has_version = TRUE;
  opset.version = x.opset;
  Onnx__OperatorSetIdProto *opsets[] = { &opset };
  Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
  model.has_ir_version = TRUE;
  model.ir_version = x.opset >= 15 ? 8 : 7; /* the IR version that introduced the opset */
  model.n_opset_import = 1;
  model.opset_import = opsets;
  model.producer_name = (char *) (options && options->producer ? options->producer : "nnic");
  model.producer_version = NNIC_VERSION;
  model.graph = &graph;

  const size_t size = onnx__model_proto__get_packed_size (&model);
  buffer = g_try_malloc (MAX (size, 1));
  if (!buffer) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_MEMORY, "%s: cannot allocate %zu bytes for the ONNX file", path, size);
    goto out;
  }
  onnx__model_proto__pack (&model, buffer);
  ok = nnic_write_file_atomic (path, buffer, size, error);
out:
  g_free (buffer);
  g_ptr_array_unref (x.nodes);
  g_ptr_array_unref (x.initializers);
  g_ptr_array_unref (x.arena);
  return ok;
}
