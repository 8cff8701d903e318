/* Internal to ONNX import: the state one import carries and the helpers
 * its files share. Not installed.
 *
 *   read.c         the file or buffer → an unpacked Onnx__ModelProto
 *   tensor_proto.c TensorProto: dims, dtypes, data (raw, typed or external)
 *   attrs.c        AttributeProto getters with type checks
 *   values.c       the table of ONNX values (graph values and constants)
 *   plan.c         the pass before building: constants, fusions, uses
 *   names.c        nnic node names (PyTorch module names where possible)
 *   fold.c         constant folding: shape arithmetic (Shape, Gather, ...) and
 *                  QDQ weights (DequantizeLinear, QuantizeLinear of constants)
 *   convert.c      what the converters share: messages, outputs, checks
 *   import.c       the driver: opset, graph inputs and outputs, node loop
 * Each op's converter is in its own file in core/ops/, found through the
 * op table (nnic_op_for_onnx).
 */
#pragma once

#include <nnic/onnx.h>
#include <nnic/error.h>

#include "core/graph.h"

#include "onnx.pb-c.h"

/* The opsets of the default domain nnic imports. */
#define NNIC_ONNX_OPSET_MIN 11
#define NNIC_ONNX_OPSET_MAX 17
/* A tensor holds at most this many elements (2^31): anything larger in a
 * model file is damage, not a model. */
#define NNIC_ONNX_MAX_NUMEL ((int64_t) 1 << 31)
/* In folded int64 shape values: the (symbolic) batch dimension N, and its
 * multiples N*k that Swin-style window partitions compute (k from 1 to
 * NNIC_ONNX_BATCH_K_MAX): NNIC_ONNX_BATCH + (k - 1) * 2^32. Constants that
 * exporters write near INT64_MIN (-2^63 + 1 as "to the start" in a Slice
 * with negative steps) are not 2^32 apart from it, and stay numbers. */
#define NNIC_ONNX_BATCH INT64_MIN
#define NNIC_ONNX_BATCH_STEP ((int64_t) 1 << 32)
#define NNIC_ONNX_BATCH_K_MAX ((int64_t) 1 << 30)

/* The shape value N*k (1 <= k <= NNIC_ONNX_BATCH_K_MAX). */
static inline int64_t
nnic_onnx_batch_times (int64_t k)
{
  return NNIC_ONNX_BATCH + (k - 1) * NNIC_ONNX_BATCH_STEP;
}

/* k when v is N*k, 0 when v is a number. */
static inline int64_t
nnic_onnx_batch_factor (int64_t v)
{
  const uint64_t off = (uint64_t) v - (uint64_t) NNIC_ONNX_BATCH;
  if (off % (uint64_t) NNIC_ONNX_BATCH_STEP != 0 ||
      off / (uint64_t) NNIC_ONNX_BATCH_STEP >= (uint64_t) NNIC_ONNX_BATCH_K_MAX)
    return 0;
  return (int64_t) (off / (uint64_t) NNIC_ONNX_BATCH_STEP) + 1;
}

/* ---- reading ---- */

typedef struct {
  Onnx__ModelProto *model;
  ProtobufCAllocator allocator; /* what unpacked it; frees its parts */
  const guint8 *map_data;       /* the file mapping, only while unpacking */
  gsize map_len;
} NnicOnnxProto;

/* Unpacks `data`; `map` (may be NULL) is the mapping `data` lives in, whose
 * pages are dropped from memory as they are consumed. */
gboolean nnic_onnx_proto_unpack (NnicOnnxProto *p, const guint8 *data, gsize size,
                                 GMappedFile *map, const char *source, GError **error);
void nnic_onnx_proto_clear (NnicOnnxProto *p);

/* ---- values ---- */

typedef enum {
  ONNX_VALUE_NODE,  /* the output of an nnic node (or the model's input) */
  ONNX_VALUE_CONST, /* a constant: initializer, Constant, bound input, folded */
} OnnxValueKind;

/* A graph value whose ONNX layout is not its nnic node's [N, shape...]
 * (view.c): its physical axes (0 the batch, 1.. the node's per-sample
 * axes) permuted into `order`, then each logical ONNX dimension d the
 * product of the run order[start[d] .. start[d] + len[d]) (len 0: a
 * dimension of 1). MultiheadAttention's [L, N, E] is order [1, 0, 2],
 * runs of one; its [N*heads, L, hd] groups the batch with the heads. */
typedef struct {
  int n_dims;
  int n_order; /* the node's per-sample rank + 1 */
  int order[NNIC_MAX_DIMS + 1];
  int start[NNIC_MAX_DIMS + 1];
  int len[NNIC_MAX_DIMS + 1];
} NnicOnnxView;

typedef struct {
  OnnxValueKind kind;
  char *name;                 /* the ONNX value name */
  NnicOnnxView *view;         /* ONNX_VALUE_NODE: its layout (NULL: [N, shape...] or merged) */
  /* ONNX_VALUE_NODE */
  char *node;                 /* the nnic node's name */
  gboolean merged;            /* ONNX [N*shape[0], shape[1], ...]: the batch merged into the
                               * first dimension by a Reshape (NnicOnnxMerged) */
  /* ONNX_VALUE_CONST: exactly one of proto and tensor */
  Onnx__TensorProto *proto;   /* not owned (in the unpacked model) */
  const NnicTensor *tensor;
  NnicTensor *owned;          /* = tensor when the value owns it */
  gboolean initializer;       /* proto is a graph initializer */
  guint uses;                 /* uses left before the data (proto's, owned) is released; 0: kept */
} OnnxValue;

/* ---- one import ---- */

/* A pattern of ONNX nodes that becomes one nnic node (plan.c): torch's
 * GELU (Div-Erf-Add-Mul-Mul, or its tanh form), SiLU (Sigmoid-Mul) and
 * Hardswish before opset 14 (HardSigmoid-Mul). */
#define NNIC_ONNX_FUSION_MAX 12
typedef struct {
  const NnicOp *op;    /* its onnx_import converts the pattern, called on the first node */
  const char *input;   /* the value the pattern computes from */
  int variant;         /* the op's: GELU 1 for the tanh approximation */
  int n_members;       /* the nodes after the first, absorbed; the last one's output is the pattern's */
  int members[NNIC_ONNX_FUSION_MAX];
} NnicOnnxFusion;

struct _NnicOnnxImport {
  const char *source;         /* names the file in messages */
  char *base_dir;             /* external data is relative to it; NULL for buffers */
  int opset;
  Onnx__GraphProto *graph;
  NnicOnnxProto *proto;
  NnicModel *m;
  GHashTable *values;         /* ONNX name → OnnxValue * (owned; aliases share one) */
  GPtrArray *value_store;     /* the OnnxValue * themselves, freed at the end */
  int64_t batch;              /* the graph input's static batch size, or -1 */
  /* from plan.c, per ONNX node */
  gboolean *emits;            /* becomes an nnic node */
  int *fused_add;             /* MatMul: the index of the Add folded into it as a bias, or -1 */
  gboolean *absorbed;         /* converted as part of another node (a fused Add or pattern) */
  NnicOnnxFusion *fusion;     /* per node: the pattern it starts (op NULL: none) */
  GHashTable *use_counts;     /* constant's name → number of uses (through Identity) */
  GHashTable *consts;         /* the names of every constant value, known before conversion */
  GHashTable *consumed;       /* value names some node reads or the graph outputs */
  char **names;               /* from names.c: the nnic name of each emitting node */
  guint node_index;           /* the node being converted */
  gboolean view_physical;     /* its converter runs on the node of a view (view.c) */
};

/* Errors about the node being converted: "FILE: node 'NAME' (OP, opset N): ..." */
void nnic_onnx_node_error (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error,
                           int code, const char *fmt, ...) G_GNUC_PRINTF (5, 6);
/* Prefixes an error from the builder with the same context. */
void nnic_onnx_node_prefix (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error);
/* A node's name for messages: its ONNX name, or "#INDEX" when it has none. */
char *nnic_onnx_node_label (const NnicOnnxImport *ctx, const Onnx__NodeProto *node);

/* ---- tensor_proto.c ---- */

const char *nnic_onnx_dtype_name (int data_type);
/* Validates dims (non-negative, at most NNIC_MAX_DIMS, product below
 * NNIC_ONNX_MAX_NUMEL): FORMAT errors naming the tensor. */
gboolean nnic_onnx_tensor_shape (const NnicOnnxImport *ctx, const Onnx__TensorProto *t,
                                 const char *what, int *ndim, int64_t shape[NNIC_MAX_DIMS],
                                 int64_t *numel, GError **error);
/* The shape and the data's length (external data: the file and its size). */
gboolean nnic_onnx_tensor_check (const NnicOnnxImport *ctx, const Onnx__TensorProto *t,
                                 const char *what, GError **error);
/* Reads a FLOAT tensor's numel values into dst (raw_data, float_data or
 * external data), checking its data length against its dims. Other dtypes
 * are UNSUPPORTED. */
gboolean nnic_onnx_tensor_read_f32 (const NnicOnnxImport *ctx, const Onnx__TensorProto *t,
                                    const char *what, float *dst, int64_t numel, GError **error);
/* Reads an INT64 (or INT32) tensor into int64 values. */
gboolean nnic_onnx_tensor_read_i64 (const NnicOnnxImport *ctx, const Onnx__TensorProto *t,
                                    const char *what, int64_t *dst, int64_t numel, GError **error);
/* A whole tensor as an NnicTensor (F32 for FLOAT/DOUBLE, I64 for
 * INT64/INT32/BOOL, I8 and U8 for INT8 and UINT8): for constants. */
NnicTensor *nnic_onnx_tensor_to_nnic (const NnicOnnxImport *ctx, const Onnx__TensorProto *t,
                                      const char *what, GError **error);
/* Frees the tensor's data held by the unpacked model. */
void nnic_onnx_tensor_release (NnicOnnxProto *p, Onnx__TensorProto *t);

/* ---- attrs.c ---- */

const Onnx__AttributeProto *nnic_onnx_attr (const Onnx__NodeProto *node, const char *name);
/* Each returns FALSE with an error when the attribute has the wrong type;
 * absent attributes give the default. */
gboolean nnic_onnx_attr_int (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                             int64_t def, int64_t *out, GError **error);
gboolean nnic_onnx_attr_float (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                               double def, double *out, GError **error);
/* *out is a copy (g_free), `def` when absent. */
gboolean nnic_onnx_attr_string (NnicOnnxImport *ctx, const Onnx__NodeProto *node,
                                const char *name, const char *def, char **out, GError **error);
/* n_expected > 0: the list must have exactly that many entries. *n = 0 when absent. */
gboolean nnic_onnx_attr_ints (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                              size_t n_expected, const int64_t **values, size_t *n, GError **error);
/* Refuses attributes outside `known` (NULL-terminated) as UNSUPPORTED. */
gboolean nnic_onnx_attrs_known (NnicOnnxImport *ctx, const Onnx__NodeProto *node,
                                const char *const *known, GError **error);

/* ---- values.c ---- */

OnnxValue *nnic_onnx_value_add_node (NnicOnnxImport *ctx, const char *name, const char *node);
OnnxValue *nnic_onnx_value_add_proto (NnicOnnxImport *ctx, const char *name,
                                      Onnx__TensorProto *t, gboolean initializer);
/* Takes ownership of `t` when owned, else borrows it. */
OnnxValue *nnic_onnx_value_add_tensor (NnicOnnxImport *ctx, const char *name, const NnicTensor *t,
                                       gboolean owned);
/* `alias` names the same value as `v`. */
void nnic_onnx_value_alias (NnicOnnxImport *ctx, const char *alias, OnnxValue *v);
OnnxValue *nnic_onnx_value_lookup (NnicOnnxImport *ctx, const char *name);
/* The node's input k: NULL with an error when it is missing, or unknown
 * (used before it is produced). Optional inputs: use nnic_onnx_input_opt. */
OnnxValue *nnic_onnx_input (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k,
                            GError **error);
/* NULL without an error when the node has no input k or it is "". */
OnnxValue *nnic_onnx_input_opt (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k,
                                GError **error);
/* The input must be a graph value (an nnic node), or an UNSUPPORTED error. */
OnnxValue *nnic_onnx_input_node (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k,
                                 GError **error);
/* The input must be a constant, or an UNSUPPORTED error naming `role`. */
OnnxValue *nnic_onnx_input_const (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k,
                                  const char *role, GError **error);
/* A graph value's per-sample shape (the nnic node's output shape). */
int nnic_onnx_value_shape (NnicOnnxImport *ctx, const OnnxValue *v, int64_t shape[NNIC_MAX_DIMS]);
/* A graph value's ONNX dims, dims[0] the batch symbol (N, or N*k when merged);
 * returns the ONNX rank. */
int nnic_onnx_value_dims (NnicOnnxImport *ctx, const OnnxValue *v, int64_t dims[NNIC_MAX_DIMS + 1]);
/* The per-sample axis of ONNX axis `axis` (negative counts from the end) of
 * the graph value v, input `k` of `node`: FORMAT error out of range,
 * UNSUPPORTED on the batch axis. */
gboolean nnic_onnx_value_axis (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k,
                               const OnnxValue *v, int64_t axis, int *per_axis, GError **error);
/* A constant's shape (full, as in ONNX). */
gboolean nnic_onnx_const_shape (NnicOnnxImport *ctx, const OnnxValue *v, int *ndim,
                                int64_t shape[NNIC_MAX_DIMS], int64_t *numel, GError **error);
gboolean nnic_onnx_const_f32 (NnicOnnxImport *ctx, const OnnxValue *v, float *dst, int64_t numel,
                              GError **error);
gboolean nnic_onnx_const_i64 (NnicOnnxImport *ctx, const OnnxValue *v, int64_t *dst,
                              int64_t numel, GError **error);
/* A constant as an NnicTensor (F32 or I64): borrowed or owned by the value. */
const NnicTensor *nnic_onnx_const_tensor (NnicOnnxImport *ctx, OnnxValue *v, GError **error);
/* Element i of a constant tensor of any dtype (F32, I64, I32, I8, U8) as a double. */
double nnic_onnx_tensor_element (const NnicTensor *t, int64_t i);
/* A one-element constant (any shape with one element) as a double. */
gboolean nnic_onnx_const_scalar (NnicOnnxImport *ctx, OnnxValue *v, double *out, GError **error);
/* Copies a float constant into the model parameter `param` (shapes must
 * have the same number of elements; `transpose` swaps a 2-D [K, N] into
 * [N, K]; `scale` multiplies every value). */
gboolean nnic_onnx_const_to_param (NnicOnnxImport *ctx, const Onnx__NodeProto *node,
                                   OnnxValue *v, const char *param, gboolean transpose,
                                   double scale, GError **error);
/* One use of each constant input of `node` is over: constant data (the
 * unpacked initializer's, or a folded tensor) whose last use this was is
 * freed. */
void nnic_onnx_inputs_done (NnicOnnxImport *ctx, const Onnx__NodeProto *node);

/* ---- plan.c ---- */

/* The fused patterns (ctx->fusion, ctx->absorbed), from the graph alone:
 * run before the ops are checked, so that a pattern's Div or Mul need not
 * be an op nnic imports on its own. */
void nnic_onnx_plan_fusions (NnicOnnxImport *ctx);
/* Which nodes emit nnic nodes, which values are constants, which Adds fold
 * into MatMuls, how often each constant is used. Needs the constant names
 * (initializers and bound inputs) in ctx->values. */
gboolean nnic_onnx_plan (NnicOnnxImport *ctx, GError **error);
/* Ops folded when all their inputs are constant (Shape: always); with an
 * input computed in the graph they go to their converter (Concat), or are
 * refused (QuantizeLinear, DequantizeLinear: quantized activations). The
 * table is fold.c's. */
gboolean nnic_onnx_op_folds (const char *op_type);

/* ---- names.c ---- */

/* ctx->names[i] for every emitting node i (NULL for the others). */
void nnic_onnx_assign_names (NnicOnnxImport *ctx);
/* Exposed for tests of the rules: the PyTorch module path of a scoped node
 * name ("/layer1/layer1.0/conv1/Conv" → "layer1.0.conv1", "/Flatten" → ""),
 * and the op part ("Conv"); FALSE when the name is not scoped. */
gboolean nnic_onnx_torch_scope (const char *node_name, char **module_path, char **op_part);

/* ---- fold.c ---- */

/* One op folded on constants: its folding, and, for an op that is also an
 * nnic op (Expand), whether the converter takes it though its inputs are
 * constant (an Expand to a shape holding the batch: a Parameter node). */
typedef struct {
  const char *op;
  gboolean (*fold) (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error);
  gboolean (*to_converter) (NnicOnnxImport *ctx, const Onnx__NodeProto *node);
} NnicOnnxFold;
/* The plan (which knows values only by name) sends an op with a
 * to_converter to its converter when an input may hold the batch. */

/* The ops folded on constants, ending with { NULL }. */
extern const NnicOnnxFold nnic_onnx_folds[];
/* The entry of `op`, or NULL. */
const NnicOnnxFold *nnic_onnx_fold_find (const char *op);
gboolean nnic_onnx_fold (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error);
/* Node i, with constant inputs, goes to its converter rather than being
 * folded (NnicOnnxFold.to_converter). */
gboolean nnic_onnx_fold_to_converter (NnicOnnxImport *ctx, const Onnx__NodeProto *node);

/* ---- view.c: values whose batch is not the leading ONNX axis ---- */

/* The logical ONNX dims of a value with a view (dims[d] N*k for the
 * dimension that holds the batch); returns the rank. */
int nnic_onnx_view_dims (NnicOnnxImport *ctx, const OnnxValue *v, int64_t dims[NNIC_MAX_DIMS + 1]);
/* Before `node` is converted by `nop`: converts it here when an input has a
 * view (or a Transpose moves the batch) and the op is one that works on
 * views (Transpose, Reshape, Gather and Slice of one physical axis, ops on
 * the last axis, elementwise ops); *done tells. Otherwise the inputs with
 * views are made [N, ...] (or merged) in place for the op's converter, or
 * refused when the batch cannot lead. */
gboolean nnic_onnx_view_convert (NnicOnnxImport *ctx, const Onnx__NodeProto *node,
                                 const NnicOp *nop, const char *name, gboolean *done,
                                 GError **error);
/* A value with a view made [N, ...] or merged ([N*k, ...]), the nodes
 * that reorder it added; NULL with an UNSUPPORTED error when the batch
 * cannot be first. `node` (may be NULL: a graph output) names the place. */
OnnxValue *nnic_onnx_view_flatten (NnicOnnxImport *ctx, const Onnx__NodeProto *node,
                                   OnnxValue *v, GError **error);

/* ---- convert.c: what the converters in core/ops/ share ---- */

/* Every ONNX op type the importer knows, for messages (g_free). */
char *nnic_onnx_supported_ops (void);
/* "[N, 3, 224, 224]" for a per-sample shape (g_free). */
char *nnic_onnx_full_shape (int nd, const int64_t *shape);
/* "[N*4, 16, 8]" for ONNX dims holding batch symbols (g_free). */
char *nnic_onnx_dims_string (int nd, const int64_t *dims);
/* A name for an extra nnic node of the node being converted (Split's
 * outputs past the first): "BASE.K", or with a suffix when that is taken
 * by a node of the model or a name the plan gave (g_free). */
char *nnic_onnx_extra_name (NnicOnnxImport *ctx, const char *base, size_t k);
/* Declares output k of `node` as merged (OnnxValue.merged). */
void nnic_onnx_set_merged (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k, gboolean merged);
/* "NODE.LOCAL", a parameter's name (g_free). */
char *nnic_onnx_param_name (const char *node, const char *local);
/* A constant's name that is a state_dict key (`features.1.0.layer_scale`,
 * `encoder.pos_embedding`), not one the exporter made up (`onnx::Mul_12`,
 * `/Constant_output_0`, `245`): what a Parameter node made from it is named. */
gboolean nnic_onnx_state_dict_name (const char *name);
/* `base`, or `base_1`, `base_2`, ...: a name no nnic node has and names.c
 * gave no other ONNX node than the one being converted (g_free). For the
 * extra nodes a converter makes (Parameters). */
char *nnic_onnx_fresh_name (NnicOnnxImport *ctx, const char *base);
/* The node has no attributes, or an UNSUPPORTED error naming the first. */
gboolean nnic_onnx_no_attrs (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error);
/* Input 0 as a graph value of per-sample rank `rank` (3: [N, C, H, W];
 * 1: [N, features]), with its per-sample shape. */
OnnxValue *nnic_onnx_input_of_rank (NnicOnnxImport *ctx, const Onnx__NodeProto *node, int rank,
                                    int64_t shape[NNIC_MAX_DIMS], GError **error);
/* A constant's dims, errors prefixed with the node. */
gboolean nnic_onnx_const_dims (NnicOnnxImport *ctx, const Onnx__NodeProto *node, OnnxValue *v,
                               int *nd, int64_t *shape, int64_t *numel, GError **error);
/* An attribute value in [1, 2^20] ([0, 2^20] when zero_ok), or a FORMAT error. */
gboolean nnic_onnx_positive_int (NnicOnnxImport *ctx, const Onnx__NodeProto *node,
                                 const char *attr, int64_t v, gboolean zero_ok, GError **error);
/* A 2-D window: kernel, strides, dilations and pads, with auto_pad
 * resolved against the input's height and width. */
typedef struct {
  int kh, kw, sh, sw, dh, dw;
  int pads[4]; /* top, left, bottom, right */
} NnicOnnxWindow;
/* Strides, dilations and pads of a Conv or pooling node, with auto_pad
 * resolved against the input's height and width. */
gboolean nnic_onnx_window_attrs (NnicOnnxImport *ctx, const Onnx__NodeProto *node,
                                 const int64_t in_hw[2], int kh, int kw, NnicOnnxWindow *w,
                                 GError **error);

/* Declares the output `k` of `node` as the nnic node `nnic_name`. */
void nnic_onnx_set_output (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k,
                           const char *nnic_name);
/* After an nnic_model_add_*() call for `node`: on success its first output
 * is the nnic node `name`; on failure the error gets the node's prefix. */
gboolean nnic_onnx_added (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                          gboolean ok, GError **error);
/* After the nnic node of a fused pattern (ctx->fusion) starting at `node`
 * was added: on success the pattern's output is the nnic node `name` and
 * the absorbed nodes' constants are used; on failure the error gets the
 * node's prefix. */
gboolean nnic_onnx_fused (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                          gboolean ok, GError **error);

/* ---- converters an op's file lends another ---- */

/* MatMul of two graph values a @ b (matmul.c); linear.c's MatMul
 * converter hands it the products that are not x @ W. */
gboolean nnic_matmul_convert (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                              OnnxValue *a, OnnxValue *b, GError **error);

/* Outputs past the first must be unused (BatchNormalization's training
 * statistics, MaxPool's indices, Dropout's mask): UNSUPPORTED otherwise. */
gboolean nnic_onnx_extra_outputs_unused (NnicOnnxImport *ctx, const Onnx__NodeProto *node,
                                         size_t first_extra, GError **error);
