/* nnic — the model graph.
 *
 * A model is a DAG of named nodes. A node's name is the PyTorch module name
 * (`conv1`, `features.0`) and its type PyTorch's class name (`Conv2d`,
 * `Linear`, ...), so NNI config lists apply unchanged. Parameters and
 * buffers use state_dict names: `conv1.weight`, `bn1.running_mean`.
 *
 * Build a model with the nnic_model_add_*() calls. `input` names the node
 * that feeds the new one; NULL means "the node added last" (sequential
 * models read top to bottom). The model's input node is called "input" and
 * its output is the last node added unless nnic_model_set_output() says
 * otherwise. Shapes are checked as nodes are added.
 *
 * Execution: nnic_model_forward() runs the graph on a batch; buffers are
 * allocated once per batch size and reused. nnic_model_backward() runs the
 * layers' backward passes in reverse order; parameter gradients
 * *accumulate* (as in PyTorch) until nnic_model_zero_grad().
 */
#pragma once

#include <glib.h>
#include <nnic/export.h>
#include <nnic/tensor.h>

G_BEGIN_DECLS

typedef struct _NnicModel NnicModel;

/* Options of each layer. Zero means "PyTorch's default" for every field,
 * so `&(NnicConv2dSpec){ .in_channels = 1, .out_channels = 20, .kernel_size = 5 }`
 * is nn.Conv2d(1, 20, 5). */
typedef struct {
  int in_channels, out_channels;
  int kernel_size, kernel_h, kernel_w; /* kernel_h/w override kernel_size */
  int stride;                          /* 0 → 1 */
  int padding;
  int dilation;                        /* 0 → 1 */
  int groups;                          /* 0 → 1 */
  gboolean no_bias;
  /* Per-axis values (ONNX's strides, dilations, pads); 0 → the single
   * value above. Padding per side is used when explicit_pads is set:
   * pads = { top, left, bottom, right } (ONNX's order is top, left,
   * bottom, right too: x1_begin, x2_begin, x1_end, x2_end). */
  int stride_h, stride_w;
  int dilation_h, dilation_w;
  gboolean explicit_pads;
  int pads[4];
} NnicConv2dSpec;

typedef struct {
  int in_features, out_features;
  gboolean no_bias;
} NnicLinearSpec;

/* MatMul of two computed values (nnic_model_add_matmul): a or b read
 * with its last two dimensions swapped. */
typedef struct {
  gboolean trans_a, trans_b;
} NnicMatMulSpec;

/* nn.LayerNorm over the last normalized_ndim dimensions of each sample
 * (torch's len(normalized_shape); 0 → 1); eps 0 → 1e-5. The weight and
 * bias have the normalised shape; no_affine drops both (torch's
 * elementwise_affine=False), no_bias the bias only. */
typedef struct {
  int normalized_ndim;
  double eps;
  gboolean no_affine;
  gboolean no_bias;
} NnicLayerNormSpec;

typedef struct {
  int num_features;
  double eps;       /* 0 → 1e-5 */
  double momentum;  /* 0 → 0.1 */
  gboolean no_affine;
} NnicBatchNormSpec;

typedef struct {
  int kernel_size;
  int stride;       /* 0 → kernel_size */
  int padding;
  /* Per-axis values and ONNX's options; 0/FALSE → the values above and
   * PyTorch's defaults. */
  int kernel_h, kernel_w;
  int stride_h, stride_w;
  gboolean explicit_pads;
  int pads[4];              /* top, left, bottom, right, when explicit_pads */
  gboolean ceil_mode;       /* output size rounds up (windows may start in the padding) */
  gboolean exclude_pad;     /* AvgPool: divide by the window's cells inside the input
                             * (ONNX count_include_pad=0; torch count_include_pad=False) */
} NnicPool2dSpec;

/* Pad (ONNX Pad; torch's ZeroPad2d, ConstantPad2d, ReflectionPad2d,
 * ReplicationPad2d). */
typedef enum {
  NNIC_PAD_CONSTANT, /* `value` */
  NNIC_PAD_REFLECT,  /* the input mirrored at its edges, the edge itself once */
  NNIC_PAD_EDGE,     /* the edge value repeated (torch's replicate) */
} NnicPadMode;

typedef struct {
  NnicPadMode mode;
  double value;  /* NNIC_PAD_CONSTANT */
  int ndim;      /* the input's per-sample rank: the batch is never padded */
  /* ONNX's order without the batch axis: the begin of each axis, then the
   * end of each (for [C, H, W]: C, top, left, C, bottom, right); a
   * negative pad removes as many elements. */
  int64_t pads[2 * (NNIC_MAX_DIMS - 1)];
} NnicPadSpec;

/* ---- building ---- */

/* A model whose input is one C×H×W image per sample (or C features when
 * h = w = 0... use nnic_model_new_flat for vectors). */
NNIC_API NnicModel *nnic_model_new (int channels, int height, int width);
/* A model whose input is a vector of `features` per sample. */
NNIC_API NnicModel *nnic_model_new_flat (int features);
NNIC_API void nnic_model_free (NnicModel *model);

NNIC_API gboolean nnic_model_add_conv2d (NnicModel *m, const char *name, const char *input,
                                         const NnicConv2dSpec *spec, GError **error);
NNIC_API gboolean nnic_model_add_linear (NnicModel *m, const char *name, const char *input,
                                         const NnicLinearSpec *spec, GError **error);
NNIC_API gboolean nnic_model_add_batchnorm2d (NnicModel *m, const char *name, const char *input,
                                              const NnicBatchNormSpec *spec, GError **error);
/* nn.BatchNorm1d on [N, C] inputs (flat features, e.g. after a Linear);
 * the [N, C, L] form is refused. Same spec, parameters and buffers as
 * BatchNorm2d. */
NNIC_API gboolean nnic_model_add_batchnorm1d (NnicModel *m, const char *name, const char *input,
                                              const NnicBatchNormSpec *spec, GError **error);
NNIC_API gboolean nnic_model_add_relu (NnicModel *m, const char *name, const char *input,
                                       GError **error);
NNIC_API gboolean nnic_model_add_relu6 (NnicModel *m, const char *name, const char *input,
                                        GError **error);
NNIC_API gboolean nnic_model_add_maxpool2d (NnicModel *m, const char *name, const char *input,
                                            const NnicPool2dSpec *spec, GError **error);
NNIC_API gboolean nnic_model_add_avgpool2d (NnicModel *m, const char *name, const char *input,
                                            const NnicPool2dSpec *spec, GError **error);
NNIC_API gboolean nnic_model_add_adaptive_avgpool2d (NnicModel *m, const char *name,
                                                     const char *input, int out_h, int out_w,
                                                     GError **error);
/* Flattens every dimension after the batch one (torch.flatten(x, 1)). */
NNIC_API gboolean nnic_model_add_flatten (NnicModel *m, const char *name, const char *input, GError **error);
NNIC_API gboolean nnic_model_add_dropout (NnicModel *m, const char *name, const char *input,
                                          double p, GError **error);
/* Elementwise a + b (a residual connection): nnic_model_add_binary with
 * NNIC_BINARY_ADD. */
NNIC_API gboolean nnic_model_add_add (NnicModel *m, const char *name, const char *a, const char *b,
                                      GError **error);
/* Elementwise arithmetic (torch's a + b, a - b, a * b, a / b, a ** b; node
 * types "Add", "Sub", "Mul", "Div", "Pow") with numpy's broadcasting of
 * the per-sample shapes: aligned on the right, a dimension of 1 or a
 * missing one repeats ([C, H, W] * [C, 1, 1], [T, D] + [D]); the batch is
 * never broadcast. Gradients follow torch's, including pow's at 0. */
typedef enum {
  NNIC_BINARY_ADD,
  NNIC_BINARY_SUB,
  NNIC_BINARY_MUL,
  NNIC_BINARY_DIV,
  NNIC_BINARY_POW,
} NnicBinaryOp;
NNIC_API gboolean nnic_model_add_binary (NnicModel *m, const char *name, NnicBinaryOp op, const char *a,
                                         const char *b, GError **error);
/* x op c, or c op x when scalar_first (1 - x, 2 / x, 2 ** x): one input.
 * The node's options "scalar" and "scalar_first" give c and the order. */
NNIC_API gboolean nnic_model_add_binary_scalar (NnicModel *m, const char *name, NnicBinaryOp op,
                                                const char *x, double c, gboolean scalar_first,
                                                GError **error);
/* A trainable tensor (torch's nn.Parameter used in arithmetic: a layer
 * scale, a class token, a positional embedding) as a node with no input,
 * of type "Parameter". Its one parameter is named as the node
 * (`features.1.0.layer_scale`) and has the state_dict's shape
 * param_shape[0..param_ndim); the node outputs it broadcast to the
 * per-sample shape shape[0..ndim) for every sample, so param_shape must
 * broadcast to [1, shape...] ([1, 50, 768] as [50, 768]; [C, 1, 1] as
 * itself). Zero until loaded; nnic_model_init_params leaves it alone. */
NNIC_API gboolean nnic_model_add_parameter (NnicModel *m, const char *name, const int64_t *param_shape,
                                            int param_ndim, const int64_t *shape, int ndim, GError **error);
/* x broadcast to the per-sample shape shape[0..ndim) of x's rank, where x
 * has 1 (torch's x.expand(-1, C, H, W) of a [N, C, 1, 1] tensor); type
 * "Expand". */
NNIC_API gboolean nnic_model_add_expand (NnicModel *m, const char *name, const char *input,
                                         const int64_t *shape, int ndim, GError **error);
/* Concatenation along the channel dimension (dim 1). */
NNIC_API gboolean nnic_model_add_concat (NnicModel *m, const char *name, const char *const *inputs,
                                         int n_inputs, GError **error);
/* Softmax along `axis` of the per-sample shape counted with the batch
 * dimension as 0 (as ONNX and torch: 1 is the first per-sample dimension;
 * negative counts from the end). */
NNIC_API gboolean nnic_model_add_softmax (NnicModel *m, const char *name, const char *input,
                                          int axis, GError **error);
/* Reshape to a per-sample shape (no batch dimension); one entry may be -1
 * (inferred). Same number of elements per sample. */
NNIC_API gboolean nnic_model_add_reshape (NnicModel *m, const char *name, const char *input,
                                          const int64_t *shape, int ndim, GError **error);
/* Clamp to [min_val, max_val] (torch.nn.Hardtanh, ONNX Clip); the
 * gradient passes where min_val < x < max_val. */
NNIC_API gboolean nnic_model_add_hardtanh (NnicModel *m, const char *name, const char *input,
                                           double min_val, double max_val, GError **error);
/* Elementwise activations as torch defines them: nn.Sigmoid, nn.Tanh,
 * torch.erf, nn.Hardswish (x * relu6(x + 3) / 6), nn.SiLU (x * sigmoid(x)). */
NNIC_API gboolean nnic_model_add_sigmoid (NnicModel *m, const char *name, const char *input, GError **error);
NNIC_API gboolean nnic_model_add_tanh (NnicModel *m, const char *name, const char *input, GError **error);
NNIC_API gboolean nnic_model_add_erf (NnicModel *m, const char *name, const char *input, GError **error);
NNIC_API gboolean nnic_model_add_hardswish (NnicModel *m, const char *name, const char *input,
                                            GError **error);
NNIC_API gboolean nnic_model_add_silu (NnicModel *m, const char *name, const char *input, GError **error);
/* clamp(alpha * x + beta, 0, 1) (ONNX HardSigmoid); nn.Hardsigmoid is
 * alpha = 1/6, beta = 0.5. */
NNIC_API gboolean nnic_model_add_hardsigmoid (NnicModel *m, const char *name, const char *input,
                                              double alpha, double beta, GError **error);
/* nn.GELU: x * Phi(x) with the normal CDF Phi from erf, or its tanh
 * approximation (approximate='tanh') when tanh_approx. */
NNIC_API gboolean nnic_model_add_gelu (NnicModel *m, const char *name, const char *input,
                                       gboolean tanh_approx, GError **error);
NNIC_API gboolean nnic_model_add_pad (NnicModel *m, const char *name, const char *input,
                                      const NnicPadSpec *spec, GError **error);
/* The mean over `axes` of the sample (torch's x.mean(dims, keepdim), ONNX
 * ReduceMean), counted as Softmax's axis (1 is the first per-sample
 * dimension, negative from the end; the batch, 0, is refused); reduced
 * axes stay as 1s when keepdims. */
NNIC_API gboolean nnic_model_add_reduce_mean (NnicModel *m, const char *name, const char *input,
                                              const int *axes, int n_axes, gboolean keepdims,
                                              GError **error);
/* Concatenation along dimension `dim`, counted as torch does: 0 is the
 * batch (which cannot be concatenated), 1 the channels, negative from the
 * end. nnic_model_add_concat is dim 1. */
NNIC_API gboolean nnic_model_add_concat_dim (NnicModel *m, const char *name, const char *const *inputs,
                                             int n_inputs, int dim, GError **error);
/* x[:, a:b:s, ...]: slices of `n_dims` dimensions (torch's numbering: 0 is
 * the batch, which stays whole, negative counts from the end), each from
 * starts[i] to ends[i] by steps[i] (NULL: 1), as Python slices them:
 * negative bounds count from the end, bounds are clamped, a negative step
 * walks backwards (torch.flip). */
NNIC_API gboolean nnic_model_add_slice (NnicModel *m, const char *name, const char *input, int n_dims,
                                        const int *dims, const int64_t *starts, const int64_t *ends,
                                        const int64_t *steps, GError **error);
/* torch.select (x[:, i] for dim 1; dims as torch's, not the batch): the
 * dimension goes away; and torch.index_select: the n indices (negative
 * count from the end) along it. Both are a "Gather" node. */
NNIC_API gboolean nnic_model_add_select (NnicModel *m, const char *name, const char *input, int dim,
                                         int64_t index, GError **error);
NNIC_API gboolean nnic_model_add_index_select (NnicModel *m, const char *name, const char *input,
                                               int dim, const int64_t *indices, int n, GError **error);
/* torch.matmul of two nodes' outputs, per sample: a [..., M, K] @
 * b [..., K, P] = [..., M, P], the leading dimensions broadcasting as
 * numpy's; a 1-D a is a row vector, a 1-D b a column vector (their
 * dimension is dropped from the output). spec (NULL: none) transposes
 * an operand's last two dimensions. */
NNIC_API gboolean nnic_model_add_matmul (NnicModel *m, const char *name, const char *a,
                                         const char *b, const NnicMatMulSpec *spec, GError **error);
/* torch.permute of the per-sample dimensions (the batch stays first):
 * output dimension i is input dimension perm[i], for the ndim dimensions
 * of a sample. */
NNIC_API gboolean nnic_model_add_transpose (NnicModel *m, const char *name, const char *input,
                                            const int *perm, int ndim, GError **error);
NNIC_API gboolean nnic_model_add_layernorm (NnicModel *m, const char *name, const char *input,
                                            const NnicLayerNormSpec *spec, GError **error);
NNIC_API gboolean nnic_model_set_output (NnicModel *m, const char *name, GError **error);
/* The index of the output node (the last node added unless set). */
NNIC_API guint nnic_model_output_node (const NnicModel *m);

/* ---- nodes ---- */

/* Every node type nnic implements ("Conv2d", "Linear", ...), NULL-terminated. */
NNIC_API const char *const *nnic_model_node_types (void);

NNIC_API guint nnic_model_n_nodes (const NnicModel *m);          /* includes "input" */
NNIC_API const char *nnic_model_node_name (const NnicModel *m, guint i);
/* "Conv2d", ... ; "Input" for the input node. */
NNIC_API const char *nnic_model_node_type (const NnicModel *m, guint i);
/* Index of a node by name, or -1. */
NNIC_API int nnic_model_find_node (const NnicModel *m, const char *name);
/* The per-sample output shape of a node (no batch dimension). */
NNIC_API int nnic_model_node_shape (const NnicModel *m, guint i, int64_t shape[NNIC_MAX_DIMS]);
/* The node indices feeding node i. */
NNIC_API guint nnic_model_node_n_inputs (const NnicModel *m, guint i);
NNIC_API guint nnic_model_node_input (const NnicModel *m, guint i, guint k);

/* A node's options, for exporters and tools: the spec it was built with,
 * with the per-axis fields filled in (stride_h/w, dilation_h/w, kernel_h/w,
 * explicit_pads and pads always set). FALSE when node i is not of that
 * kind (conv2d: "Conv2d"; pool2d: "MaxPool2d" or "AvgPool2d"). */
NNIC_API gboolean nnic_model_node_conv2d_spec (const NnicModel *m, guint i, NnicConv2dSpec *spec);
NNIC_API gboolean nnic_model_node_linear_spec (const NnicModel *m, guint i, NnicLinearSpec *spec);
NNIC_API gboolean nnic_model_node_batchnorm_spec (const NnicModel *m, guint i,
                                                  NnicBatchNormSpec *spec);
NNIC_API gboolean nnic_model_node_pool2d_spec (const NnicModel *m, guint i, NnicPool2dSpec *spec);
/* A scalar option of node i: "p" (Dropout), "axis" (Softmax), "min_val"
 * and "max_val" (Hardtanh), "out_h" and "out_w" (AdaptiveAvgPool2d), "alpha"
 * and "beta" (Hardsigmoid), "approximate" (GELU: 0 exact, 1 tanh), "mode"
 * (an NnicPadMode) and "value" (Pad), "keepdims", "n_axes" and "axis0" ...
 * (ReduceMean), "scalar" and "scalar_first" (Add, Sub, Mul, Div, Pow with a
 * constant), "eps" and "normalized_ndim" (LayerNorm), "trans_a" and
 * "trans_b" (MatMul).
 * FALSE when the node has no such option. (Reshape's target is its output
 * shape: nnic_model_node_shape.) */
NNIC_API gboolean nnic_model_node_option (const NnicModel *m, guint i, const char *key,
                                          double *value);

/* ---- channel dependencies (for filter pruning) ---- */

/* Sets of Conv2d/Linear nodes whose output channels must be pruned
 * together, because their outputs meet elementwise (Add, Sub, Mul, Div,
 * Pow: a residual sum, an SE block's x * gate) after layers that keep
 * channels one to one (BatchNorm2d, ReLU, ReLU6, pooling, Dropout, Add,
 * arithmetic with a scalar or a Parameter). A Conv2d's channels are dim 0
 * of its [C, H, W] output, a Linear's the last dim of its output
 * (features, or the C of [T, C] tokens): only channels on the same axis
 * are tied, and an operand broadcast along that axis (a [1, H, W] gate)
 * ties nothing. Concatenation along channels does not tie its inputs
 * (NNI's ChannelDependency). Each set is a GArray of guint node indices in
 * model order, with at least two members; sets are ordered by their first
 * node.
 * Free with g_ptr_array_unref(). */
NNIC_API GPtrArray *nnic_model_channel_dependencies (const NnicModel *m);
/* The number of groups a node's output channels are split into by the
 * grouped convolutions that read them (NNI's GroupDependency): pruning
 * must remove a multiple of it from every group evenly. 1 when no grouped
 * convolution reads the node. */
NNIC_API int nnic_model_channel_groups (const NnicModel *m, guint node);

/* ---- parameters and buffers, in state_dict order ---- */

typedef struct {
  const char *name;  /* "conv1.weight" */
  NnicTensor *value;
  NnicTensor *grad;  /* NULL for buffers (running_mean, ...) */
  guint node;        /* index of the owning node */
} NnicParam;

NNIC_API guint nnic_model_n_params (const NnicModel *m);
NNIC_API NnicParam *nnic_model_param (NnicModel *m, guint i);
/* NULL (and an error naming the closest names) when there is no such entry. */
NNIC_API NnicParam *nnic_model_find_param (NnicModel *m, const char *name, GError **error);
/* Number of trainable scalars. */
NNIC_API int64_t nnic_model_count_parameters (const NnicModel *m);
/* PyTorch's default initialisation (kaiming-uniform weights, uniform
 * biases, BN weight 1 / bias 0), from a seeded generator. */
NNIC_API void nnic_model_init_params (NnicModel *m, guint64 seed);

/* ---- execution ---- */

NNIC_API void nnic_model_set_training (NnicModel *m, gboolean training);
NNIC_API gboolean nnic_model_get_training (const NnicModel *m);
/* Seed of the generator used by Dropout. */
NNIC_API void nnic_model_set_seed (NnicModel *m, guint64 seed);
/* Run the graph on `input` ([batch, ...input shape]). The returned tensor
 * belongs to the model and is valid until the next forward. */
NNIC_API const NnicTensor *nnic_model_forward (NnicModel *m, const NnicTensor *input,
                                               GError **error);
/* The output of a named node from the last forward (NULL if unknown). */
NNIC_API const NnicTensor *nnic_model_node_output (NnicModel *m, const char *name);
/* Backward from dL/d(output). Accumulates into the parameters' grads. */
NNIC_API gboolean nnic_model_backward (NnicModel *m, const NnicTensor *grad_output, GError **error);
NNIC_API void nnic_model_zero_grad (NnicModel *m);
/* Ask backward to compute dL/d(input) too (off by default: the first layer
 * then skips work nobody needs). */
NNIC_API void nnic_model_set_input_grad (NnicModel *m, gboolean wanted);
NNIC_API const NnicTensor *nnic_model_input_grad (NnicModel *m);

/* ---- hooks and seams (for the compressor core) ---- */

/* Called after a node's forward with its output, which the hook may read
 * (collectors) or change in place. */
typedef void (*NnicForwardHook) (NnicModel *m, guint node, NnicTensor *output, gpointer user_data);
/* Returns a hook id (> 0), or 0 and an error when the node is unknown. */
NNIC_API guint nnic_model_add_forward_hook (NnicModel *m, const char *node_name, NnicForwardHook fn,
                                            gpointer user_data, GDestroyNotify destroy,
                                            GError **error);
NNIC_API gboolean nnic_model_remove_forward_hook (NnicModel *m, guint id, GError **error);
/* Called before a node's forward (a pruner re-applies its masks here). The
 * id space is shared with forward hooks: remove either kind with
 * nnic_model_remove_forward_hook(). */
typedef void (*NnicPreForwardHook) (NnicModel *m, guint node, gpointer user_data);
NNIC_API guint nnic_model_add_pre_forward_hook (NnicModel *m, const char *node_name,
                                                NnicPreForwardHook fn, gpointer user_data,
                                                GDestroyNotify destroy, GError **error);

/* Called before a node's backward with dL/d(its output), which the hook
 * may change in place (a quantizer's backward for its output). */
typedef void (*NnicBackwardHook) (NnicModel *m, guint node, NnicTensor *grad_output, gpointer user_data);
NNIC_API guint nnic_model_add_backward_hook (NnicModel *m, const char *node_name,
                                             NnicBackwardHook fn, gpointer user_data,
                                             GDestroyNotify destroy, GError **error);

/* Input transform of a node's first input, for that node alone (other
 * consumers of the same tensor see it unchanged): before the node's
 * forward, `fn` transforms a private copy of the input in place; in
 * backward, `grad_fn` (NULL: identity, the straight-through estimator)
 * maps dL/d(transformed input) in place before it reaches the producer.
 * fn = NULL removes the transform. */
NNIC_API gboolean nnic_model_set_input_transform (NnicModel *m, const char *node_name,
                                                  NnicForwardHook fn, NnicBackwardHook grad_fn,
                                                  gpointer user_data, GError **error);

/* Weight substitution: forward reads `substitute` in place of the named
 * parameter (a masked or quantized copy); backward computes the gradient
 * with respect to the substitute and hands it to `grad_hook` (NULL: the
 * straight-through estimator, added as is to the real parameter's grad);
 * the hook adds what it wants to param->grad and may use the tensor it is
 * given as scratch (it is cleared after the call).
 * Pass substitute = NULL to remove. The model does not take ownership. */
typedef void (*NnicGradHook) (NnicModel *m, NnicParam *param, const NnicTensor *substitute,
                              NnicTensor *grad_wrt_substitute, gpointer user_data);
NNIC_API gboolean nnic_model_substitute_param (NnicModel *m, const char *param_name,
                                               NnicTensor *substitute, NnicGradHook grad_hook,
                                               gpointer user_data, GError **error);

/* Per-node timing: when on, forward and backward accumulate the seconds
 * each node takes (for benchmarks and for finding the slow layer). */
NNIC_API void nnic_model_set_profiling (NnicModel *m, gboolean on);
/* Seconds accumulated by node i since profiling was turned on or reset. */
NNIC_API void nnic_model_node_time (const NnicModel *m, guint i, double *forward_s,
                                    double *backward_s);
NNIC_API void nnic_model_reset_profile (NnicModel *m);

/* A one-line-per-node summary (name, type, output shape, parameters). */
NNIC_API char *nnic_model_describe (const NnicModel *m);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnicModel, nnic_model_free)

G_END_DECLS
