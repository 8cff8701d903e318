/* Dropout (nn.Dropout): in training, each element is zeroed with
 * probability p and the kept ones are scaled by 1/(1-p), so the expected
 * output equals the input; in evaluation it is the identity.
 * cache[0] holds the per-element factor (0 or 1/(1-p)) for the backward. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <math.h>
#include <string.h>

typedef struct {
  double p;
} DropoutSpec;

static gboolean
dropout_setup (NnicNode *node, GError **error)
{
  double p = NODE_SPEC (node, DropoutSpec)->p;
  if (!(p >= 0.0 && p <= 1.0)) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "dropout probability has to be between 0 and 1, but got %g", p);
    return FALSE;
  }
  const NnicNode *in = node->inputs[0];
  node->shape_ndim = in->shape_ndim;
  for (int i = 0; i < in->shape_ndim; i++)
    node->shape[i] = in->shape[i];
  op_mode_state (node);
  return TRUE;
}

static gboolean
dropout_reshape (NnicNode *node, int64_t batch, GError **error)
{
  (void) batch;
  return nnic_node_cache (node, 0, NNIC_DTYPE_F32, node->out->ndim, node->out->shape, error);
}

static void
dropout_forward (NnicNode *node, gboolean training)
{
  const float *x = node->inputs[0]->out->f32;
  float *y = node->out->f32;
  const int64_t n = node->out->numel;
  ((OpModeState *) node->state)->training = training;
  if (!training) {
    memcpy (y, x, nnic_tensor_nbytes (node->out));
    return;
  }
  const float p = (float) NODE_SPEC (node, DropoutSpec)->p;
  /* p = 1 drops everything; the factor is never used then. */
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  float *mask = node->cache[0]->f32;
  NnicModel *m = node->model;
  for (int64_t i = 0; i < n; i++)
    mask[i] = nnic_model_uniform (m) < p ? 0.0f : scale;
  for (int64_t i = 0; i < n; i++)
    y[i] = x[i] * mask[i];
}

static void
dropout_backward (NnicNode *node)
{
  if (!node->inputs[0]->gout)
    return;
  const float *restrict dy = node->gout->f32;
  float *restrict dx = node->inputs[0]->gout->f32;
  const int64_t n = node->out->numel;
  if (!((OpModeState *) node->state)->training) {
    op_acc (dx, dy, n);
    return;
  }
  const float *restrict mask = node->cache[0]->f32;
  for (int64_t i = 0; i < n; i++)
    dx[i] += dy[i] * mask[i];
}

static gboolean
dropout_option (const NnicNode *node, const char *key, double *value)
{
  if (strcmp (key, "p") != 0)
    return FALSE;
  *value = NODE_SPEC (node, DropoutSpec)->p;
  return TRUE;
}

/* ---- ONNX ---- */

static gboolean
convert_dropout (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "ratio", "seed", NULL };
  double ratio;
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_float (ctx, node, "ratio", 0.5, &ratio, error) ||
      !nnic_onnx_extra_outputs_unused (ctx, node, 1, error))
    return FALSE;
  GError *local = NULL;
  OnnxValue *r = nnic_onnx_input_opt (ctx, node, 1, &local); /* opset 12: an input */
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  if (r && r->kind != ONNX_VALUE_CONST)
    return nnic_onnx_input_const (ctx, node, 1, "ratio", error) != NULL;
  if (r && !nnic_onnx_const_scalar (ctx, r, &ratio, error)) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  /* input 2, training_mode, is ignored: nnic_model_set_training() decides */
  if (!(ratio >= 0.0 && ratio < 1.0)) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "ratio %g is not in [0, 1)", ratio);
    return FALSE;
  }
  return nnic_onnx_added (ctx, node, name, nnic_model_add_dropout (ctx->m, name, x->node, ratio, error),
                error);
}

/* Inference: the identity (ONNX Dropout with no training_mode input). */
static gboolean
export_dropout (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  nnic_onnx_export_simple (x, "Dropout", i);
  return TRUE;
}

const NnicOp nnic_op_dropout = {
  .type = "Dropout",
  .setup = dropout_setup,
  .reshape = dropout_reshape,
  .forward = dropout_forward,
  .backward = dropout_backward,
  .finalize = op_mode_finalize,
  .option = dropout_option,
  .channels = NNIC_CHANNELS_KEEP,
  .keeps_grid = TRUE,
  .onnx_ops = (const char *const[]) { "Dropout", NULL },
  .onnx_import = convert_dropout,
  .onnx_export = export_dropout,
  .onnx_merged = NNIC_ONNX_MERGED_KEEP,
};

gboolean
nnic_model_add_dropout (NnicModel *m, const char *name, const char *input, double p,
                        GError **error)
{
  DropoutSpec spec = { p };
  return nnic_graph_add_unary (m, name, input, &nnic_op_dropout, &spec, sizeof spec, error);
}
