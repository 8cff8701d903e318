/* ONNX export: an nnic model and its current weights as a ModelProto.
 * The messages are built on the heap, each allocation recorded in an
 * arena freed at the end; weights are referenced, not copied, until
 * protobuf-c packs them. */
#include <nnic/onnx.h>
#include <nnic/error.h>
#include <nnic/io.h>
#include <nnic/version.h>

#include "core/onnx/exporter.h"

#include <math.h>
#include <string.h>

#define DEFAULT_OPSET 13


gpointer
nnic_onnx_export_alloc (NnicOnnxExporter *x, gsize size)
{
  gpointer p = g_malloc0 (size);
  g_ptr_array_add (x->arena, p);
  return p;
}

char *
nnic_onnx_export_keep (NnicOnnxExporter *x, char *s)
{
  g_ptr_array_add (x->arena, s);
  return s;
}

/* ---- initializers ---- */

static Onnx__TensorProto *
tensor_proto (NnicOnnxExporter *x, const char *name, int32_t dtype, int ndim, const int64_t *dims,
              const void *data, size_t nbytes)
{
  Onnx__TensorProto *t = nnic_onnx_export_alloc (x, sizeof *t);
  onnx__tensor_proto__init (t);
  t->name = nnic_onnx_export_keep (x, g_strdup (name));
  t->has_data_type = TRUE;
  t->data_type = dtype;
  t->n_dims = (size_t) ndim;
  t->dims = nnic_onnx_export_alloc (x, sizeof (int64_t) * (size_t) MAX (ndim, 1));
  memcpy (t->dims, dims, sizeof (int64_t) * (size_t) ndim);
  t->has_raw_data = TRUE;
  t->raw_data.len = nbytes;
  t->raw_data.data = (uint8_t *) data; /* G_BYTE_ORDER is little-endian on every target nnic builds for */
  g_ptr_array_add (x->initializers, t);
  return t;
}

/* A parameter of the model, under its state_dict name. */
const char *
nnic_onnx_export_param (NnicOnnxExporter *x, const char *name, GError **error)
{
  NnicParam *p = nnic_model_find_param (x->model, name, error);
  if (!p)
    return NULL;
  const NnicTensor *v = p->value;
  tensor_proto (x, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, v->ndim, v->shape, v->data, nnic_tensor_nbytes (v));
  return p->name;
}

/* A 2-D parameter [R, C] as its transpose [C, R] under its name (the
 * copy lives in the arena). */
static const char *
export_param_transposed (NnicOnnxExporter *x, const char *name, GError **error)
{
  NnicParam *p = nnic_model_find_param (x->model, name, error);
  if (!p)
    return NULL;
  const NnicTensor *v = p->value;
  g_return_val_if_fail (v->ndim == 2, NULL);
  const int64_t R = v->shape[0], C = v->shape[1], dims[2] = { C, R };
  float *t = nnic_onnx_export_alloc (x, sizeof (float) * (size_t) MAX (v->numel, 1));
  for (int64_t r = 0; r < R; r++)
    for (int64_t c = 0; c < C; c++)
      t[c * R + r] = v->f32[r * C + c];
  tensor_proto (x, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 2, dims, t, nnic_tensor_nbytes (v));
  return p->name;
}

/* A constant the model has no parameter for (Clip bounds, shapes). */
const char *
nnic_onnx_export_constant_f32 (NnicOnnxExporter *x, const char *name, const float *values, int64_t n, gboolean scalar)
{
  float *copy = nnic_onnx_export_alloc (x, sizeof (float) * (size_t) MAX (n, 1));
  memcpy (copy, values, sizeof (float) * (size_t) n);
  tensor_proto (x, name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, scalar ? 0 : 1, &n, copy, sizeof (float) * (size_t) n);
  return name;
}

const char *
nnic_onnx_export_constant_i64 (NnicOnnxExporter *x, const char *name, const int64_t *values, int64_t n)
{
  int64_t *copy = nnic_onnx_export_alloc (x, sizeof (int64_t) * (size_t) MAX (n, 1));
  memcpy (copy, values, sizeof (int64_t) * (size_t) n);
  tensor_proto (x, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &n, copy, sizeof (int64_t) * (size_t) n);
  return name;
}

const char *
nnic_onnx_export_constant_i64_shaped (NnicOnnxExporter *x, const char *name, const int64_t *values,
                                      int ndim, const int64_t *dims)
{
  const int64_t n = nnic_shape_numel (ndim, dims);
  int64_t *copy = nnic_onnx_export_alloc (x, sizeof (int64_t) * (size_t) MAX (n, 1));
  memcpy (copy, values, sizeof (int64_t) * (size_t) n);
  tensor_proto (x, name, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, ndim, dims, copy,
                sizeof (int64_t) * (size_t) n);
  return name;
}

/* ---- nodes ---- */

Onnx__NodeProto *
nnic_onnx_export_node (NnicOnnxExporter *x, const char *op, const char *name, const char *output)
{
  Onnx__NodeProto *n = nnic_onnx_export_alloc (x, sizeof *n);
  onnx__node_proto__init (n);
  n->op_type = nnic_onnx_export_keep (x, g_strdup (op));
  n->name = nnic_onnx_export_keep (x, g_strdup (name));
  n->n_output = 1;
  n->output = nnic_onnx_export_alloc (x, sizeof (char *));
  n->output[0] = nnic_onnx_export_keep (x, g_strdup (output));
  n->input = NULL;
  g_ptr_array_add (x->nodes, n);
  return n;
}

void
nnic_onnx_export_add_input (NnicOnnxExporter *x, Onnx__NodeProto *n, const char *value)
{
  /* Arena memory cannot grow in place: each input gets a new array. */
  char **grown = nnic_onnx_export_alloc (x, sizeof (char *) * (n->n_input + 1));
  if (n->n_input)
    memcpy (grown, n->input, sizeof (char *) * n->n_input);
  grown[n->n_input++] = nnic_onnx_export_keep (x, g_strdup (value));
  n->input = grown;
}

static Onnx__AttributeProto *
new_attribute (NnicOnnxExporter *x, Onnx__NodeProto *n, const char *name, Onnx__AttributeProto__AttributeType type)
{
  Onnx__AttributeProto *a = nnic_onnx_export_alloc (x, sizeof *a);
  onnx__attribute_proto__init (a);
  a->name = nnic_onnx_export_keep (x, g_strdup (name));
  a->has_type = TRUE;
  a->type = type;
  Onnx__AttributeProto **grown = nnic_onnx_export_alloc (x, sizeof (Onnx__AttributeProto *) * (n->n_attribute + 1));
  if (n->n_attribute)
    memcpy (grown, n->attribute, sizeof (Onnx__AttributeProto *) * n->n_attribute);
  grown[n->n_attribute++] = a;
  n->attribute = grown;
  return a;
}

void
nnic_onnx_export_attr_int (NnicOnnxExporter *x, Onnx__NodeProto *n, const char *name, int64_t v)
{
  Onnx__AttributeProto *a = new_attribute (x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
  a->has_i = TRUE;
  a->i = v;
}

void
nnic_onnx_export_attr_float (NnicOnnxExporter *x, Onnx__NodeProto *n, const char *name, float v)
{
  Onnx__AttributeProto *a = new_attribute (x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
  a->has_f = TRUE;
  a->f = v;
}

void
nnic_onnx_export_attr_string (NnicOnnxExporter *x, Onnx__NodeProto *n, const char *name, const char *v)
{
  Onnx__AttributeProto *a = new_attribute (x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
  a->has_s = TRUE;
  a->s.len = strlen (v);
  a->s.data = (uint8_t *) nnic_onnx_export_keep (x, g_strdup (v));
}

void
nnic_onnx_export_attr_ints (NnicOnnxExporter *x, Onnx__NodeProto *n, const char *name, const int64_t *v, size_t count)
{
  Onnx__AttributeProto *a = new_attribute (x, n, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
  a->n_ints = count;
  a->ints = nnic_onnx_export_alloc (x, sizeof (int64_t) * count);
  memcpy (a->ints, v, sizeof (int64_t) * count);
}

/* The value a node's k-th input reads: the producer's output (after its
 * output's QDQ pair, if any), or this node's own input QDQ pair. */
const char *
nnic_onnx_export_input (NnicOnnxExporter *x, guint node, guint k)
{
  if (k == 0 && x->input0)
    return x->input0;
  return x->value[nnic_model_node_input (x->model, node, k)];
}

Onnx__NodeProto *
nnic_onnx_export_simple (NnicOnnxExporter *x, const char *op, guint i)
{
  const char *name = nnic_model_node_name (x->model, i);
  Onnx__NodeProto *n = nnic_onnx_export_node (x, op, name, name);
  for (guint k = 0; k < nnic_model_node_n_inputs (x->model, i); k++)
    nnic_onnx_export_add_input (x, n, nnic_onnx_export_input (x, i, k));
  return n;
}

/* ---- QDQ ---- */

static const NnicOnnxQuantParam *
find_quant (NnicOnnxExporter *x, const char *node, NnicQuantType type)
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
quant_constants (NnicOnnxExporter *x, Onnx__NodeProto *n, const char *prefix, const NnicOnnxQuantParam *q)
{
  g_autofree char *sn = g_strconcat (prefix, "_scale", NULL), *zn = g_strconcat (prefix, "_zero_point", NULL);
  const float scale = q->scale > 0 ? (float) q->scale : 1.0f;
  nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_f32 (x, nnic_onnx_export_keep (x, g_steal_pointer (&sn)), &scale, 1, TRUE));
  uint8_t *zp = nnic_onnx_export_alloc (x, 1);
  zp[0] = q->is_signed ? (uint8_t) (int8_t) q->zero_point : (uint8_t) q->zero_point;
  const char *zname = nnic_onnx_export_keep (x, g_steal_pointer (&zn));
  tensor_proto (x, zname, q->is_signed ? ONNX__TENSOR_PROTO__DATA_TYPE__INT8 : ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, 0,
                (const int64_t[]) { 1 }, zp, 1);
  nnic_onnx_export_add_input (x, n, zname);
}

/* value → QuantizeLinear → DequantizeLinear; returns the dequantized value. */
static const char *
qdq_pair (NnicOnnxExporter *x, const char *value, const char *prefix, const NnicOnnxQuantParam *q)
{
  g_autofree char *qn = g_strconcat (prefix, "_q", NULL), *dqn = g_strconcat (prefix, "_dq", NULL);
  Onnx__NodeProto *quant = nnic_onnx_export_node (x, "QuantizeLinear", qn, qn);
  nnic_onnx_export_add_input (x, quant, value);
  quant_constants (x, quant, prefix, q);
  Onnx__NodeProto *dequant = nnic_onnx_export_node (x, "DequantizeLinear", dqn, dqn);
  nnic_onnx_export_add_input (x, dequant, qn);
  nnic_onnx_export_add_input (x, dequant, quant->input[1]);
  nnic_onnx_export_add_input (x, dequant, quant->input[2]);
  return dequant->output[0];
}

/* A quantized weight: the integers as an initializer and a
 * DequantizeLinear whose output carries the parameter's name; a 2-D
 * weight's integers transposed when asked (per-tensor scales do not care). */
static gboolean
quantized_weight (NnicOnnxExporter *x, const char *param, const NnicOnnxQuantParam *q, gboolean transposed,
                  GError **error)
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
  g_return_val_if_fail (!transposed || src->ndim == 2, FALSE);
  const int64_t R = src->shape[0], C = transposed ? src->shape[1] : 1;
  uint8_t *ints = nnic_onnx_export_alloc (x, (gsize) MAX (src->numel, 1));
  for (int64_t k = 0; k < src->numel; k++) {
    const int64_t at = transposed ? (k % C) * R + k / C : k; /* [R, C] → [C, R] */
    /* A fake-quantized value is (q - zp) * scale up to rounding: round
     * recovers q exactly; a float weight is quantized as QuantizeLinear
     * would (half to even). */
    double v = q->scale > 0 ? nearbyint ((double) src->f32[k] / q->scale) + q->zero_point : q->zero_point;
    int iv = (int) fmin (fmax (v, lo), hi);
    ints[at] = q->is_signed ? (uint8_t) (int8_t) iv : (uint8_t) iv;
  }
  g_autofree char *qname = g_strconcat (param, "_quantized", NULL);
  const int64_t tdims[2] = { C, R };
  tensor_proto (x, nnic_onnx_export_keep (x, g_steal_pointer (&qname)),
                q->is_signed ? ONNX__TENSOR_PROTO__DATA_TYPE__INT8 : ONNX__TENSOR_PROTO__DATA_TYPE__UINT8,
                src->ndim, transposed ? tdims : src->shape, ints, (size_t) src->numel);
  Onnx__NodeProto *dq = nnic_onnx_export_node (x, "DequantizeLinear", param, param);
  nnic_onnx_export_add_input (x, dq, ((Onnx__TensorProto *) g_ptr_array_index (x->initializers, x->initializers->len - 1))->name);
  quant_constants (x, dq, param, q);
  return TRUE;
}

gboolean
nnic_onnx_export_weight (NnicOnnxExporter *x, const char *node, const char *param, gboolean transposed,
                         GError **error)
{
  const NnicOnnxQuantParam *q = find_quant (x, node, NNIC_QUANT_WEIGHT);
  if (q)
    return quantized_weight (x, param, q, transposed, error);
  return (transposed ? export_param_transposed (x, param, error) : nnic_onnx_export_param (x, param, error)) != NULL;
}

void
nnic_onnx_export_window (NnicOnnxExporter *x, Onnx__NodeProto *n, int kh, int kw, int sh, int sw, const int pads[4])
{
  nnic_onnx_export_attr_ints (x, n, "kernel_shape", (const int64_t[]) { kh, kw }, 2);
  nnic_onnx_export_attr_ints (x, n, "strides", (const int64_t[]) { sh, sw }, 2);
  /* ONNX: x1_begin, x2_begin, x1_end, x2_end (top, left, bottom, right). */
  nnic_onnx_export_attr_ints (x, n, "pads", (const int64_t[]) { pads[0], pads[1], pads[2], pads[3] }, 4);
}

/* A Conv or Gemm node reading node i's input, its weight (float or
 * dequantized) and its bias. */
Onnx__NodeProto *
nnic_onnx_export_weighted (NnicOnnxExporter *x, const char *op, guint i, gboolean no_bias, GError **error)
{
  const char *name = nnic_model_node_name (x->model, i);
  g_autofree char *weight = g_strconcat (name, ".weight", NULL);
  g_autofree char *bias = g_strconcat (name, ".bias", NULL);
  if (!nnic_onnx_export_weight (x, name, weight, FALSE, error))
    return NULL;
  Onnx__NodeProto *n = nnic_onnx_export_node (x, op, name, name);
  nnic_onnx_export_add_input (x, n, nnic_onnx_export_input (x, i, 0));
  nnic_onnx_export_add_input (x, n, weight);
  if (!no_bias) {
    if (!nnic_onnx_export_param (x, bias, error))
      return NULL;
    nnic_onnx_export_add_input (x, n, bias);
  }
  return n;
}

static gboolean
export_layer (NnicOnnxExporter *x, guint i, GError **error)
{
  const NnicNode *n = nnic_graph_node (x->model, i);
  if (!n->op->onnx_export) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED, "%s: no ONNX export for node type %s",
                 n->name, n->op->type);
    return FALSE;
  }
  return n->op->onnx_export (x, i, error);
}

/* A node, with the QDQ pairs of its quantized input and output. */
static gboolean
export_node (NnicOnnxExporter *x, guint i, GError **error)
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
  /* The node's value is its name, unless its export named it otherwise
   * (a Parameter expanded to the batch: the initializer has the name). */
  x->value[i] = NULL;
  if (!export_layer (x, i, error))
    return FALSE;
  if (!x->value[i])
    x->value[i] = name;
  if (out) {
    g_autofree char *prefix = g_strconcat (name, ".output", NULL);
    x->value[i] = qdq_pair (x, x->value[i], prefix, out);
  }
  return TRUE;
}

/* A float tensor value with a symbolic batch dimension. */
static Onnx__ValueInfoProto *
value_info (NnicOnnxExporter *x, const char *name, const int64_t *shape, int ndim)
{
  Onnx__ValueInfoProto *v = nnic_onnx_export_alloc (x, sizeof *v);
  onnx__value_info_proto__init (v);
  v->name = nnic_onnx_export_keep (x, g_strdup (name));
  Onnx__TypeProto *tp = nnic_onnx_export_alloc (x, sizeof *tp);
  onnx__type_proto__init (tp);
  Onnx__TypeProto__Tensor *tt = nnic_onnx_export_alloc (x, sizeof *tt);
  onnx__type_proto__tensor__init (tt);
  tt->has_elem_type = TRUE;
  tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  Onnx__TensorShapeProto *sp = nnic_onnx_export_alloc (x, sizeof *sp);
  onnx__tensor_shape_proto__init (sp);
  sp->n_dim = (size_t) ndim + 1;
  sp->dim = nnic_onnx_export_alloc (x, sizeof (Onnx__TensorShapeProto__Dimension *) * sp->n_dim);
  for (size_t d = 0; d < sp->n_dim; d++) {
    Onnx__TensorShapeProto__Dimension *dim = nnic_onnx_export_alloc (x, sizeof *dim);
    onnx__tensor_shape_proto__dimension__init (dim);
    if (d == 0) {
      dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      dim->dim_param = nnic_onnx_export_keep (x, g_strdup ("batch"));
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
  NnicOnnxExporter x = {
    .arena = g_ptr_array_new_with_free_func (g_free),
    .nodes = g_ptr_array_new (),
    .initializers = g_ptr_array_new (),
    .model = m,
    .opset = options && options->opset ? options->opset : DEFAULT_OPSET,
    .options = options,
  };
  x.value = nnic_onnx_export_alloc (&x, sizeof (char *) * nnic_model_n_nodes (m));
  x.value[0] = nnic_model_node_name (m, 0);
  gboolean ok = FALSE;
  uint8_t *buffer = NULL;
  if (x.opset < 11 || x.opset > 17) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: ONNX export writes opsets 11 to 17, not %d", path, x.opset);
    goto out;
  }
  const guint output = nnic_model_output_node (m);
  /* the opset every node's export can be written in */
  for (guint i = 1; i <= output; i++) {
    const NnicNode *n = nnic_graph_node (m, i);
    if (n->op->onnx_opset_min <= x.opset)
      continue;
    if (options && options->opset) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                   "%s: node '%s' (%s) needs opset %d or later; opset %d was asked for", path, n->name,
                   n->op->type, n->op->onnx_opset_min, x.opset);
      goto out;
    }
    x.opset = n->op->onnx_opset_min;
  }
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
