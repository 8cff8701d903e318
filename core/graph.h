/* Internal: the graph's node and op structures, shared by the executor
 * (model.c) and the layer implementations (ops/). Not installed. */
#pragma once

#include <nnic/model.h>
#include <nnic/error.h>

#define NNIC_MAX_NODE_PARAMS 6

typedef struct _NnicNode NnicNode;

/* One layer type. The executor calls:
 *   setup    once when the node is added: check inputs' shapes, set
 *            node->shape (per sample), declare params (nnic_node_add_param);
 *   reshape  when the batch size changes: allocate per-batch caches
 *            (node->cache*), may be NULL;
 *   forward  compute node->out from the inputs' outputs;
 *   backward given node->gout (dL/d out), accumulate (+=) into
 *            node->pgrad[i] and into the inputs' gout (when non-NULL).
 * forward/backward cannot fail: everything is checked in setup/reshape. */
typedef struct {
  const char *type;
  gboolean (*setup) (NnicNode *node, GError **error);
  gboolean (*reshape) (NnicNode *node, int64_t batch, GError **error);
  void (*forward) (NnicNode *node, gboolean training);
  void (*backward) (NnicNode *node); /* NULL: forward only (nnic_model_backward refuses) */
  void (*finalize) (NnicNode *node); /* free op-owned state; may be NULL */
} NnicOp;

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

  /* op-specific options (a copy of the spec) and state */
  union {
    NnicConv2dSpec conv;
    NnicLinearSpec linear;
    NnicBatchNormSpec bn;
    NnicPool2dSpec pool;
    struct { int out_h, out_w; } adaptive;
    struct { double p; } dropout;
    struct { int axis; } softmax;               /* normalised: 1 .. per-sample ndim */
    struct { double min_val, max_val; } hardtanh;
    struct { int ndim; int64_t shape[NNIC_MAX_DIMS]; } reshape; /* as asked (may hold -1) */
  } spec;
  int64_t batch;           /* batch size the caches are sized for */
  NnicTensor *cache[4];    /* per-batch caches, owned; freed by the executor */
  void *state;             /* op-owned, freed by op->finalize */
};

/* The node at index i (no bounds check: internal callers know it). */
NnicNode *nnic_model_node (NnicModel *m, guint i);

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

/* The ops. */
extern const NnicOp nnic_op_input;
extern const NnicOp nnic_op_conv2d;
extern const NnicOp nnic_op_linear;
extern const NnicOp nnic_op_batchnorm2d;
extern const NnicOp nnic_op_batchnorm1d;
extern const NnicOp nnic_op_relu;
extern const NnicOp nnic_op_relu6;
extern const NnicOp nnic_op_maxpool2d;
extern const NnicOp nnic_op_avgpool2d;
extern const NnicOp nnic_op_adaptive_avgpool2d;
extern const NnicOp nnic_op_flatten;
extern const NnicOp nnic_op_dropout;
extern const NnicOp nnic_op_add;
extern const NnicOp nnic_op_concat;
extern const NnicOp nnic_op_softmax;
extern const NnicOp nnic_op_reshape;
extern const NnicOp nnic_op_hardtanh;
