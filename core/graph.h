/* Internal: the graph's node and op structures, shared by the executor
 * (model.c) and the layer implementations (ops/). Not installed. */
#pragma once

#include <nnic/model.h>
#include <nnic/error.h>
#include <nnic/data.h>

#define NNIC_MAX_NODE_PARAMS 6
/* Room for an op's options (its spec) inside the node: no allocation, and
 * a new op brings its own spec type without touching this file. */
#define NNIC_OP_SPEC_MAX 256

typedef struct _NnicNode NnicNode;
typedef struct _NnicOp NnicOp;
/* ONNX import and export state (core/onnx/), opaque here. */
typedef struct _NnicOnnxImport NnicOnnxImport;
typedef struct _NnicOnnxExporter NnicOnnxExporter;
struct Onnx__NodeProto;

/* How an op treats the channels of its inputs: what dependency-aware
 * pruning follows to find the layers whose channels must be pruned
 * together, and what channel removal (speedup) propagates. A "channel" is
 * the feature axis a Conv2d or Linear produces. */
typedef enum {
  NNIC_CHANNELS_END = 0, /* the channels stop here: mixed, reshaped or new (Flatten, Softmax, Input) */
  NNIC_CHANNELS_MAKE,    /* weights make new output channels (Conv2d, Linear): what filter pruning prunes */
  NNIC_CHANNELS_KEEP,    /* output channel c is input 0's channel c (BatchNorm, activations, pooling) */
  NNIC_CHANNELS_TIE,     /* elementwise over several inputs: their channels must agree (Add, Mul) */
  NNIC_CHANNELS_CONCAT,  /* the inputs' channels one after the other */
} NnicChannelRule;

/* How an op's ONNX import takes a graph value whose batch a Reshape merged
 * into its first dimension: ONNX [N*k, d1, ...], an nnic node of per-sample
 * shape [k, d1, ...] (the batch is outermost, so each sample's k rows stay
 * together). Its ONNX axes are then the per-sample ones, not shifted by one. */
typedef enum {
  NNIC_ONNX_MERGED_REFUSE = 0, /* the importer refuses such an input, naming the node */
  NNIC_ONNX_MERGED_KEEP,       /* elementwise: the output is merged as the inputs are */
  NNIC_ONNX_MERGED_OWN,        /* the converter maps axes itself and marks its outputs */
} NnicOnnxMerged;

/* ONNX import of one ONNX node as nnic node(s) named `name`. */
typedef gboolean (*NnicOnnxImportFn) (NnicOnnxImport *ctx, const struct Onnx__NodeProto *node,
                                      const char *name, GError **error);
/* ONNX export of nnic node `i` (core/onnx/exporter.h has the helpers). */
typedef gboolean (*NnicOnnxExportFn) (NnicOnnxExporter *x, guint i, GError **error);

/* One op type: everything nnic knows about it, in one descriptor, listed
 * once in the op table (core/ops/table.c). The executor calls:
 *   setup    once when the node is added: check inputs' shapes, set
 *            node->shape (per sample), declare params (nnic_node_add_param);
 *   reshape  when the batch size changes: allocate per-batch caches
 *            (node->cache*), may be NULL;
 *   forward  compute node->out from the inputs' outputs;
 *   backward given node->gout (dL/d out), accumulate (+=) into
 *            node->pgrad[i] and into the inputs' gout (when non-NULL).
 * forward/backward cannot fail: everything is checked in setup/reshape.
 * The rest is read by the parts of nnic that treat ops generically:
 * initialisation, dependency-aware pruning, quantized inference, ONNX. */
struct _NnicOp {
  const char *type; /* PyTorch's class name: what config lists' op_types name */
  gboolean (*setup) (NnicNode *node, GError **error);
  gboolean (*reshape) (NnicNode *node, int64_t batch, GError **error);
  void (*forward) (NnicNode *node, gboolean training);
  void (*backward) (NnicNode *node); /* NULL: forward only (nnic_model_backward refuses) */
  void (*finalize) (NnicNode *node); /* free op-owned state; may be NULL */

  /* PyTorch's default initialisation of the parameters (NULL: they keep
   * what setup gave them). */
  void (*init_params) (NnicNode *node, NnicRng *rng);
  /* A scalar option by name (nnic_model_node_option); NULL: none. */
  gboolean (*option) (const NnicNode *node, const char *key, double *value);

  /* Channels: `channels`, unless channel_rule says otherwise for a node. */
  NnicChannelRule channels;
  NnicChannelRule (*channel_rule) (const NnicNode *node);
  /* The per-sample axis of the channels a MAKE node makes; NULL: 0, the
   * C of Conv2d's [C, H, W] (Linear: the last axis). Ties are only
   * between channels on the same axis. */
  int (*channel_axis) (const NnicNode *node);
  /* The number of groups the op splits its input channels into (grouped
   * convolutions); NULL: 1. */
  int (*input_groups) (const NnicNode *node);
  /* The output is on the input's quantization grid when the input is
   * (ReLU, max pooling, reshapes): a quantized output before it carries
   * over to the next layer's input in integer inference. `grid_rule`,
   * when set, says it per node (Pad: not with a nonzero constant). */
  gboolean keeps_grid;
  gboolean (*grid_rule) (const NnicNode *node);

  /* ONNX: the op types imported by onnx_import (NULL-terminated), and the
   * export of a node of this op. */
  const char *const *onnx_ops;
  NnicOnnxImportFn onnx_import;
  NnicOnnxExportFn onnx_export;
  NnicOnnxMerged onnx_merged;
  /* The lowest opset onnx_export can write (0: any nnic writes):
   * LayerNormalization is opset 17's. A model holding such a node is
   * exported with that opset unless the caller asks for another. */
  int onnx_opset_min;
};

struct _NnicNode {
  char *name;
  const NnicOp *op;
  NnicModel *model;
  guint index;

  /* inputs */
  guint n_inputs;
  NnicNode **inputs;

  /* output, per sample and per batch */
  int shape_ndim;
  int64_t shape[NNIC_MAX_DIMS];
  NnicTensor *out;   /* [batch, shape...] */
  NnicTensor *gout;  /* dL/d out, same shape; NULL when no gradient flows here */

  /* parameters and buffers, in state_dict order */
  guint n_params;
  char *param_local[NNIC_MAX_NODE_PARAMS];  /* "weight", "bias", "running_mean", ... */
  NnicTensor *param[NNIC_MAX_NODE_PARAMS];  /* owned */
  NnicTensor *grad[NNIC_MAX_NODE_PARAMS];   /* owned, NULL for buffers */
  /* What forward reads and what backward writes: param[i]/grad[i] unless a
   * substitute is installed (see nnic_model_substitute_param). */
  NnicTensor *pval[NNIC_MAX_NODE_PARAMS];
  NnicTensor *pgrad[NNIC_MAX_NODE_PARAMS];
  struct _NnicSubstitute *subst[NNIC_MAX_NODE_PARAMS]; /* executor-owned */
  gboolean requires_grad;  /* some gradient flows through this node */
  guint n_hooks;           /* hooks attached (fast skip when 0) */
  /* An input transform (nnic_model_set_input_transform): inputs[0] is then
   * a shadow node owned by this one, holding the transformed copy of
   * real_input's output; its gradient is mapped and added to real_input's. */
  NnicNode *real_input;
  NnicForwardHook in_fn;
  NnicBackwardHook in_grad_fn;
  gpointer in_user;

  /* op-specific options (a copy of the spec given to nnic_graph_add; read
   * with NODE_SPEC) and state */
  _Alignas (16) unsigned char spec[NNIC_OP_SPEC_MAX];
  int64_t batch;           /* batch size the caches are sized for */
  NnicTensor *cache[4];    /* per-batch caches, owned; freed by the executor */
  void *state;             /* op-owned, freed by op->finalize */
};

/* A node's spec as its op's spec type. */
#define NODE_SPEC(node, Type) \
  (G_STATIC_ASSERT_EXPR (sizeof (Type) <= NNIC_OP_SPEC_MAX), (Type *) (void *) (node)->spec)

/* ---- the model (graph.c builds it, exec.c runs it, hooks.c seams it) ---- */

typedef enum { HOOK_POST, HOOK_PRE, HOOK_BACKWARD } NnicHookKind;

typedef struct {
  guint id;
  guint node;
  NnicHookKind kind;
  NnicPreForwardHook pre_fn;
  NnicBackwardHook bwd_fn;
  NnicForwardHook fn;
  gpointer user_data;
  GDestroyNotify destroy;
} NnicHook;

typedef struct _NnicSubstitute {
  NnicTensor *grad;  /* dL/d substitute, owned; NULL for buffers */
  NnicGradHook hook;
  gpointer user_data;
  guint param;       /* index into the model's param table */
} NnicSubstitute;

struct _NnicModel {
  GPtrArray *nodes;   /* NnicNode *, owned; nodes[0] is "input" */
  GHashTable *by_name;/* name → node index + 1 */
  guint output;
  GArray *params;     /* NnicParam, state_dict order */
  gboolean training;
  gboolean want_input_grad;
  gboolean grads_planned;
  int64_t batch;
  float *scratch;
  size_t scratch_len;
  NnicRng rng;
  GArray *hooks;      /* NnicHook */
  guint next_hook_id;
  gboolean profiling;
  GArray *prof_fwd, *prof_bwd; /* double seconds per node */
};

/* A model whose input has the per-sample shape shape[0..ndim) (ndim <
 * NNIC_MAX_DIMS): what nnic_model_new and nnic_model_new_flat make, for
 * any rank (ONNX import). */
NnicModel *nnic_graph_new (int ndim, const int64_t *shape);
/* The node at index i (no bounds check: internal callers know it). */
static inline NnicNode *
nnic_graph_node (const NnicModel *m, guint i)
{
  return g_ptr_array_index (m->nodes, i);
}
NnicNode *nnic_model_node (NnicModel *m, guint i);
/* Frees a node and what it owns (graph.c). */
void nnic_node_free (NnicNode *n);
/* ", did you mean ..." for a node name that is not in the model. */
char *nnic_graph_names_hint (const NnicModel *m, const char *name);
/* The node named `input`, or the last one added when it is NULL; NULL and
 * an error naming `new_name` when there is none. */
NnicNode *nnic_graph_resolve (NnicModel *m, const char *new_name, const char *input,
                              GError **error);
/* Adds a node of `op` fed by `inputs`, with `spec` copied into node->spec
 * (spec_size bytes, at most NNIC_OP_SPEC_MAX), and runs the op's setup. On
 * failure nothing changes. */
gboolean nnic_graph_add (NnicModel *m, const char *name, const NnicOp *op, NnicNode **inputs,
                         guint n_inputs, const void *spec, size_t spec_size, GError **error);
/* The same with inputs given by name (NULL: the node added last). */
gboolean nnic_graph_add_named (NnicModel *m, const char *name, const NnicOp *op,
                               const char *const *inputs, guint n_inputs, const void *spec,
                               size_t spec_size, GError **error);
/* One input by name. */
static inline gboolean
nnic_graph_add_unary (NnicModel *m, const char *name, const char *input, const NnicOp *op,
                      const void *spec, size_t spec_size, GError **error)
{
  return nnic_graph_add_named (m, name, op, &input, 1, spec, spec_size, error);
}

/* Declares a parameter (trainable: with a grad) or a buffer. */
gboolean nnic_node_add_param (NnicNode *node, const char *local_name, gboolean trainable,
                              int ndim, const int64_t *shape, GError **error);
/* (Re)allocates node->cache[i] with the given shape, or keeps it if the shape matches. */
gboolean nnic_node_cache (NnicNode *node, int i, NnicDType dtype, int ndim,
                          const int64_t *shape, GError **error);
/* Shared scratch memory for all nodes (im2col columns): valid until the
 * next call by any node. Grown on demand in reshape; no allocation in
 * forward/backward as long as reshape asked for the size first. */
float *nnic_model_scratch (NnicModel *m, size_t n_floats, GError **error);
/* Forgets the batch buffers and the gradient plan, so that the next
 * forward sizes every node again (after a node's op was replaced: integer
 * inference, core/quant/qinfer.c). */
void nnic_model_invalidate (NnicModel *m);
/* A uniform random number in [0, 1) from the model's generator (Dropout). */
float nnic_model_uniform (NnicModel *m);

/* ---- the op table (core/ops/table.c) ---- */

/* Every op, NULL-terminated (the input node's op is not in it). */
extern const NnicOp *const nnic_ops[];
/* The op of a PyTorch type name ("Conv2d"), or NULL. */
const NnicOp *nnic_op_find (const char *type);
/* The op that imports an ONNX op type ("Conv"), or NULL. */
const NnicOp *nnic_op_for_onnx (const char *onnx_op);
/* The rule for node n's channels. */
static inline NnicChannelRule
nnic_node_channels (const NnicNode *n)
{
  return n->op->channel_rule ? n->op->channel_rule (n) : n->op->channels;
}

/* Whether node n's output stays on its input's quantization grid. */
static inline gboolean
nnic_node_keeps_grid (const NnicNode *n)
{
  return n->op->grid_rule ? n->op->grid_rule (n) : n->op->keeps_grid;
}

/* The ops named outside their own file: the graph's input, and the
 * layers integer inference replaces (core/quant/qinfer.c). Every other op
 * is reached through the table. */
extern const NnicOp nnic_op_input;
extern const NnicOp nnic_op_conv2d;
extern const NnicOp nnic_op_linear;
