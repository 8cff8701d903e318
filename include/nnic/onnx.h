/* nnic — ONNX in and out.
 *
 * Import reads an ONNX ModelProto (protobuf-c code generated at build time
 * from Debian's onnx.proto) into an nnic model with its weights. Ops:
 * Conv, Gemm, MatMul (constant right operand), Add, Relu, Clip, MaxPool,
 * AveragePool, GlobalAveragePool, BatchNormalization, Flatten, Reshape
 * (constant shape), Concat, Dropout, Identity, Softmax, Sigmoid,
 * HardSigmoid, HardSwish, Tanh, Erf, Pad (constant pads; constant,
 * reflect, edge), ReduceMean (not over the batch); opsets 11 to 17. The
 * graph input is [N, ...] of rank 2 to 8.
 * BatchNormalization on [N, C, H, W] (BatchNorm2d) and [N, C]
 * (BatchNorm1d). Weight-only QDQ: DequantizeLinear (and QuantizeLinear) of
 * constants fold to float weights, per tensor or per axis; quantized
 * activations are refused. A MatMul followed by an Add of a constant is one
 * Linear; torch's GELU (Div, Erf, Add, Mul, Mul, or the tanh form), SiLU
 * (Sigmoid, Mul) and opset-13 Hardswish (HardSigmoid, Mul) are one node
 * each when nothing else reads their inner values; a Pad of zeros is no
 * node; functional ops inside a module are named `module.op`
 * (`layer1.0.add`).
 *
 * Names: where the file came from torch.onnx.export, nodes take the
 * PyTorch module names, so config lists written for the PyTorch model
 * apply unchanged: from the scoped node name (`/layer1/layer1.0/conv1/Conv`
 * gives `layer1.0.conv1`) or from the initializer name (`features.0.weight`
 * gives `features.0`); otherwise the ONNX node's name (or its op type and
 * index when it has none). Parameters then have state_dict names
 * (`layer1.0.conv1.weight`). Names are made unique with a suffix `_1`,
 * `_2`, ... when two nodes would share one.
 *
 * Anything the importer cannot take is a GError (NNIC_ERROR_FORMAT for a
 * damaged file, NNIC_ERROR_UNSUPPORTED for an op, attribute or opset
 * outside the list) that names the file, the node, the op and the opset.
 */
#pragma once

#include <glib.h>
#include <nnic/export.h>
#include <nnic/model.h>
#include <nnic/compress.h>

G_BEGIN_DECLS

typedef struct {
  /* Graph inputs other than the model's single data input, bound to
   * constant values (as if they were initializers): `names[i]` gets
   * `values[i]`. For graphs that take their weights as inputs (the ONNX
   * node tests do). */
  guint n_constants;
  const char *const *constant_names;
  const NnicTensor *const *constant_values;
} NnicOnnxLoadOptions;

/* options may be NULL. The model's input shape is the graph input's, less
 * its first (batch) dimension, which may be symbolic. */
NNIC_API NnicModel *nnic_model_load_onnx (const char *path, const NnicOnnxLoadOptions *options,
                                          GError **error);
/* The same from a buffer; `source` names it in messages. */
NNIC_API NnicModel *nnic_model_load_onnx_from_data (const guint8 *data, gsize size,
                                                    const char *source,
                                                    const NnicOnnxLoadOptions *options,
                                                    GError **error);
/* The ONNX operator types nnic imports as layers (sorted, NULL-terminated;
 * owned by nnic). Besides these, Constant and Identity are always taken,
 * and shape arithmetic (Shape, Gather, ...) on constants is folded. */
NNIC_API const char *const *nnic_onnx_ops (void);
/* The ONNX operator types nnic computes at import when their inputs are
 * constant (Shape of any value, Gather, Range, Where, ...; sorted,
 * NULL-terminated, owned by nnic). Some are layers too (Concat, Slice). */
NNIC_API const char *const *nnic_onnx_folded_ops (void);

/* How one tensor of a layer was quantized, for export in QDQ form:
 * q = clamp(round(x / scale) + zero_point) in [0, 2^bits - 1] (uint8) or
 * [-2^(bits-1), 2^(bits-1) - 1] (int8, is_signed), x ≈ (q - zero_point) *
 * scale. Weights are written as the integers q (int8 or uint8) with a
 * DequantizeLinear; inputs and outputs get a QuantizeLinear/DequantizeLinear
 * pair. ONNX's QuantizeLinear saturates to the whole 8-bit range, so
 * activations quantized to fewer bits are only as exact as that. */
typedef struct {
  const char *node;
  NnicQuantType type;                   /* NNIC_QUANT_WEIGHT, _INPUT or _OUTPUT */
  double scale;
  int zero_point;
  int bits;                             /* 1 to 8 */
  gboolean is_signed;
  /* Weights: the fake-quantized weight the quantizer computed (the
   * integers are recovered from it exactly); NULL → quantize the model's
   * weight with the formula above. */
  const NnicTensor *fake_quantized;
} NnicOnnxQuantParam;

typedef struct {
  int opset;               /* 0 → 13 */
  const char *producer;    /* NULL → "nnic" */
  guint n_quant;           /* QDQ form for these tensors (nnic_compressor_export_onnx fills them) */
  const NnicOnnxQuantParam *quant;
} NnicOnnxSaveOptions;

/* Writes the model with its current weights (masks already applied to
 * them by the compressor) as ONNX; node names are the nnic names, weights
 * the state_dict names. The batch dimension is symbolic ("batch").
 * Written to a temporary file and renamed. options may be NULL. */
NNIC_API gboolean nnic_model_save_onnx (NnicModel *m, const char *path,
                                        const NnicOnnxSaveOptions *options, GError **error);

G_END_DECLS
