/* Internal to ONNX export: the state of one export and the helpers each
 * op's onnx_export (in core/ops/) writes its nodes with. Not installed.
 * Every allocation goes into the export's arena, freed at the end; names
 * given to the helpers are copied. */
#pragma once

#include <nnic/onnx.h>
#include <nnic/error.h>

#include "core/graph.h"
#include "onnx.pb-c.h"

struct _NnicOnnxExporter {
  GPtrArray *arena;        /* every allocation, freed together */
  GPtrArray *nodes;        /* Onnx__NodeProto * */
  GPtrArray *initializers; /* Onnx__TensorProto * */
  NnicModel *model;
  int opset;
  const NnicOnnxSaveOptions *options;
  const char **value;      /* per node: the ONNX value its consumers read */
  const char *input0;      /* the node being written: its first input, when quantized */
};

gpointer nnic_onnx_export_alloc (NnicOnnxExporter *x, gsize size);
/* Takes `s` into the arena and returns it. */
char *nnic_onnx_export_keep (NnicOnnxExporter *x, char *s);

/* A new node of ONNX type `op` with one output. */
Onnx__NodeProto *nnic_onnx_export_node (NnicOnnxExporter *x, const char *op, const char *name,
                                        const char *output);
void nnic_onnx_export_add_input (NnicOnnxExporter *x, Onnx__NodeProto *n, const char *value);
/* The value nnic node i's input k reads (after QDQ pairs, if any). */
const char *nnic_onnx_export_input (NnicOnnxExporter *x, guint node, guint k);
/* A node of ONNX type `op` for nnic node i: named and output as it, reading
 * every input of node i. */
Onnx__NodeProto *nnic_onnx_export_simple (NnicOnnxExporter *x, const char *op, guint i);

void nnic_onnx_export_attr_int (NnicOnnxExporter *x, Onnx__NodeProto *n, const char *name,
                                int64_t v);
void nnic_onnx_export_attr_float (NnicOnnxExporter *x, Onnx__NodeProto *n, const char *name,
                                  float v);
void nnic_onnx_export_attr_string (NnicOnnxExporter *x, Onnx__NodeProto *n, const char *name,
                                   const char *v);
void nnic_onnx_export_attr_ints (NnicOnnxExporter *x, Onnx__NodeProto *n, const char *name,
                                 const int64_t *v, size_t count);
/* kernel_shape, strides and pads (top, left, bottom, right). */
void nnic_onnx_export_window (NnicOnnxExporter *x, Onnx__NodeProto *n, int kh, int kw, int sh,
                              int sw, const int pads[4]);

/* A parameter of the model as an initializer under its state_dict name;
 * returns the name. */
const char *nnic_onnx_export_param (NnicOnnxExporter *x, const char *name, GError **error);
/* Constants the model has no parameter for (Clip bounds, shapes); `name`
 * must live in the arena (nnic_onnx_export_keep). */
const char *nnic_onnx_export_constant_f32 (NnicOnnxExporter *x, const char *name,
                                           const float *values, int64_t n, gboolean scalar);
const char *nnic_onnx_export_constant_i64 (NnicOnnxExporter *x, const char *name,
                                           const int64_t *values, int64_t n);
/* The same of any shape (ndim 0: a scalar). */
const char *nnic_onnx_export_constant_i64_shaped (NnicOnnxExporter *x, const char *name,
                                                  const int64_t *values, int ndim, const int64_t *dims);
/* A layer's weight `param` of node `node`, under the parameter's name:
 * a float initializer, or (quantized) integers and the DequantizeLinear
 * that precedes the layer; a 2-D weight [out, in] is written as [in, out]
 * when `transposed` (MatMul's right operand). */
gboolean nnic_onnx_export_weight (NnicOnnxExporter *x, const char *node, const char *param,
                                  gboolean transposed, GError **error);
/* A Conv or Gemm node reading node i's input, its weight (float or, when
 * quantized, dequantized integers) and its bias. */
Onnx__NodeProto *nnic_onnx_export_weighted (NnicOnnxExporter *x, const char *op, guint i,
                                            gboolean no_bias, GError **error);
