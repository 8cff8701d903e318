/* Flatten (nn.Flatten / torch.flatten(x, 1)): [C, H, W] → [C*H*W], and
 * Reshape. NCHW is contiguous, so both are a plain copy both ways. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <string.h>

static gboolean
flatten_setup (NnicNode *node, GError **error)
{
  node->shape_ndim = 1;
  node->shape[0] = op_sample_numel (node->inputs[0]);
  return op_check_output (node, error);
}

static void
flatten_forward (NnicNode *node, gboolean training)
{
  (void) training;
  memcpy (node->out->f32, node->inputs[0]->out->f32, nnic_tensor_nbytes (node->out));
}

static void
flatten_backward (NnicNode *node)
{
  if (node->inputs[0]->gout)
    op_acc (node->inputs[0]->gout->f32, node->gout->f32, node->gout->numel);
}

/* ---- ONNX ---- */

/* A Reshape node to the per-sample `per` for ONNX node `node`, whose
 * output then has the batch merged into its first dimension or not. */
static gboolean
add_reshape (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, const char *input,
             const int64_t *per, int nd, gboolean merged, GError **error)
{
  if (!nnic_onnx_added (ctx, node, name, nnic_model_add_reshape (ctx->m, name, input, per, nd, error),
                        error))
    return FALSE;
  nnic_onnx_set_merged (ctx, node, 0, merged);
  return TRUE;
}

/* Flatten at axis 1 is nn.Flatten; at a later axis (or of a value whose
 * batch a Reshape merged) the leading dimensions fold into the batch, k
 * rows per sample: a Reshape to [k, rest] that keeps them merged. */
static gboolean
convert_flatten (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "axis", NULL };
  int64_t axis, dims[NNIC_MAX_DIMS + 1];
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "axis", 1, &axis, error))
    return FALSE;
  const int rank = nnic_onnx_value_dims (ctx, x, dims);
  if (axis < 0)
    axis += rank;
  if (axis < 1 || axis > rank) {
    g_autofree char *s = nnic_onnx_dims_string (rank, dims);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "axis %" G_GINT64_FORMAT " of %s is not supported (from 1: the batch "
                          "dimension stays first)",
                          axis, s);
    return FALSE;
  }
  if (axis == 1 && !x->merged)
    return nnic_onnx_added (ctx, node, name, nnic_model_add_flatten (ctx->m, name, x->node, error),
                            error);
  int64_t per[2] = { nnic_onnx_batch_factor (dims[0]), 1 };
  for (int d = 1; d < rank; d++)
    per[d < axis ? 0 : 1] *= dims[d];
  return add_reshape (ctx, node, name, x->node, per, 2, TRUE, error);
}

/* The target's first dimension must be the batch: N (from a Shape), N*k
 * (a window partition's B * nW: k rows per sample, the batch merged into
 * the first dimension), -1 when the rest fixes a sample's share, or the
 * static batch size (or a multiple). The batch elsewhere, or a first
 * dimension that mixes samples, is refused. */
static gboolean
convert_reshape (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "allowzero", NULL };
  int64_t allowzero;
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  OnnxValue *sv = x ? nnic_onnx_input_const (ctx, node, 1, "shape", error) : NULL;
  if (!sv || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "allowzero", 0, &allowzero, error))
    return FALSE;
  const NnicTensor *st = nnic_onnx_const_tensor (ctx, sv, error);
  if (!st) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  if (st->dtype != NNIC_DTYPE_I64 || st->ndim != 1 || st->numel < 1 || st->numel > NNIC_MAX_DIMS) {
    g_autofree char *ss = nnic_shape_to_string (st->ndim, st->shape);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the shape '%s' (%s %s) must be int64 [1..%d]: the batch and the "
                          "dimensions of a sample",
                          sv->name, nnic_dtype_name (st->dtype), ss, NNIC_MAX_DIMS);
    return FALSE;
  }
  int64_t in[NNIC_MAX_DIMS + 1], t[NNIC_MAX_DIMS];
  const int in_rank = nnic_onnx_value_dims (ctx, x, in);
  const int nt = (int) st->numel;
  /* 0 copies the input's dimension (unless allowzero) */
  for (int i = 0; i < nt; i++)
    t[i] = st->i64[i] == 0 && !allowzero && i < in_rank ? in[i] : st->i64[i];
  g_autofree char *text = nnic_onnx_dims_string (nt, t);
  g_autofree char *xs = nnic_onnx_dims_string (in_rank, in);
  int64_t sample = 1; /* elements per sample */
  for (int d = 1; d < in_rank; d++)
    sample *= in[d];
  if (x->merged)
    sample *= nnic_onnx_batch_factor (in[0]);
  int n_infer = 0;
  int64_t rest = 1;
  for (int i = 1; i < nt; i++) {
    if (nnic_onnx_batch_factor (t[i]) || t[i] < -1 || t[i] == 0) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "the shape %s is not a per-sample reshape nnic can do (of %s): %s", text, xs,
                            nnic_onnx_batch_factor (t[i]) ? "the batch size past the first dimension"
                            : t[i] == 0                   ? "a dimension of size 0"
                                                          : "a negative dimension");
      return FALSE;
    }
    n_infer += t[i] == -1;
    rest *= t[i] == -1 ? 1 : t[i];
  }
  /* k: the rows of a sample along the first dimension */
  int64_t k = nnic_onnx_batch_factor (t[0]);
  if (!k && t[0] == -1 && !n_infer && rest > 0 && sample % rest == 0)
    k = sample / rest;
  else if (!k && t[0] > 0 && ctx->batch > 0 && t[0] % ctx->batch == 0)
    k = t[0] / ctx->batch;
  if (!k) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          t[0] == -1 ? "the shape %s would change the batch dimension of the input %s"
                                     : "the shape %s does not keep the batch dimension first (input %s)",
                          text, xs);
    return FALSE;
  }
  int64_t per[NNIC_MAX_DIMS];
  int nd = 0;
  if (k > 1)
    per[nd++] = k;
  for (int i = 1; i < nt; i++)
    per[nd++] = t[i];
  if (nd == 0) {
    /* [N] from [N, 1, ...]: one value per sample */
    per[nd++] = 1;
  }
  if (nd > NNIC_MAX_DIMS - 1) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the shape %s has too many dimensions per sample", text);
    return FALSE;
  }
  return add_reshape (ctx, node, name, x->node, per, nd, k > 1, error);
}

static gboolean
export_flatten (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  nnic_onnx_export_attr_int (x, nnic_onnx_export_simple (x, "Flatten", i), "axis", 1);
  return TRUE;
}

const NnicOp nnic_op_flatten = {
  .type = "Flatten",
  .setup = flatten_setup,
  .reshape = NULL,
  .forward = flatten_forward,
  .backward = flatten_backward,
  .finalize = NULL,
  .keeps_grid = TRUE,
  .onnx_ops = (const char *const[]) { "Flatten", NULL },
  .onnx_import = convert_flatten,
  .onnx_export = export_flatten,
  .onnx_merged = NNIC_ONNX_MERGED_OWN,
};

/* ---- Reshape (torch.reshape / ONNX Reshape, per sample) ----
 * NODE_SPEC (node, ReshapeSpec) holds the shape asked for (one entry may be -1);
 * node->shape the resolved one. A contiguous copy, like Flatten. */

typedef struct {
  int ndim;
  int64_t shape[NNIC_MAX_DIMS]; /* as asked (may hold -1) */
} ReshapeSpec;

static gboolean
reshape_setup (NnicNode *node, GError **error)
{
  const int nd = NODE_SPEC (node, ReshapeSpec)->ndim;
  const int64_t *want = NODE_SPEC (node, ReshapeSpec)->shape;
  const NnicNode *in = node->inputs[0];
  const int64_t numel = op_sample_numel (in);
  g_autofree char *from = nnic_shape_to_string (in->shape_ndim, in->shape);
  if (nd < 1 || nd > NNIC_MAX_DIMS - 1) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "a per-sample shape has 1 to %d dimensions, not %d", NNIC_MAX_DIMS - 1, nd);
    return FALSE;
  }
  g_autofree char *to = nnic_shape_to_string (nd, want);
  int inferred = -1;
  int64_t known = 1;
  for (int i = 0; i < nd; i++) {
    if (want[i] == -1 && inferred < 0) {
      inferred = i;
    } else if (want[i] <= 0) {
      op_error (node, error, NNIC_ERROR_ARGUMENT,
                "cannot reshape %s to %s: dimensions must be positive, with at most one -1",
                from, to);
      return FALSE;
    } else if (known > numel / want[i]) {
      known = numel + 1; /* more elements than the input has; and no overflow */
    } else {
      known *= want[i];
    }
  }
  if (inferred >= 0 ? numel % known != 0 : known != numel) {
    op_error (node, error, NNIC_ERROR_SHAPE,
              "cannot reshape %s (%" G_GINT64_FORMAT " elements per sample) to %s", from, numel,
              to);
    return FALSE;
  }
  node->shape_ndim = nd;
  for (int i = 0; i < nd; i++)
    node->shape[i] = i == inferred ? numel / known : want[i];
  return op_check_output (node, error);
}

static gboolean
export_reshape (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  int64_t shape[NNIC_MAX_DIMS + 1];
  const int nd = nnic_model_node_shape (x->model, i, shape + 1);
  shape[0] = -1; /* the batch */
  Onnx__NodeProto *n = nnic_onnx_export_simple (x, "Reshape", i);
  char *sn = nnic_onnx_export_keep (x, g_strconcat (nnic_model_node_name (x->model, i), ".onnx_shape", NULL));
  nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_i64 (x, sn, shape, nd + 1));
  return TRUE;
}

const NnicOp nnic_op_reshape = {
  .type = "Reshape",
  .setup = reshape_setup,
  .reshape = NULL,
  .forward = flatten_forward,
  .backward = flatten_backward,
  .finalize = NULL,
  .keeps_grid = TRUE,
  .onnx_ops = (const char *const[]) { "Reshape", NULL },
  .onnx_import = convert_reshape,
  .onnx_export = export_reshape,
  .onnx_merged = NNIC_ONNX_MERGED_OWN,
};

gboolean
nnic_model_add_flatten (NnicModel *m, const char *name, const char *input, GError **error)
{
  return nnic_graph_add_unary (m, name, input, &nnic_op_flatten, NULL, 0, error);
}

gboolean
nnic_model_add_reshape (NnicModel *m, const char *name, const char *input, const int64_t *shape,
                        int ndim, GError **error)
{
  ReshapeSpec spec = { ndim, { 0 } };
  if (ndim > 0 && ndim < NNIC_MAX_DIMS) {
    if (!shape) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: Reshape needs a shape",
                   name ? name : "Reshape");
      return FALSE;
    }
    memcpy (spec.shape, shape, sizeof (int64_t) * (size_t) ndim);
  } /* else the op's setup names the bad rank */
  return nnic_graph_add_unary (m, name, input, &nnic_op_reshape, &spec, sizeof spec, error);
}
