/* Concat (torch.cat along the channel dimension, dim 1 of [B, C, ...]).
 * Add, the other op with several inputs, is in binary.c. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <string.h>

/* ---- ONNX ---- */

static gboolean
convert_concat (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "axis", NULL };
  int64_t axis;
  if (!nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "axis", G_MININT64, &axis, error))
    return FALSE;
  if (node->n_input < 1 || axis == G_MININT64) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          node->n_input < 1 ? "no inputs" : "the axis attribute is missing");
    return FALSE;
  }
  g_autofree const char **inputs = g_new0 (const char *, node->n_input);
  int rank = 0;
  for (size_t k = 0; k < node->n_input; k++) {
    OnnxValue *v = nnic_onnx_input_node (ctx, node, k, error);
    if (!v)
      return FALSE;
    int64_t s[NNIC_MAX_DIMS];
    if (k == 0)
      rank = nnic_onnx_value_shape (ctx, v, s) + 1;
    inputs[k] = v->node;
  }
  if (axis < 0)
    axis += rank;
  if (axis != 1) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "axis %" G_GINT64_FORMAT " is not supported (only 1, the channels)", axis);
    return FALSE;
  }
  return nnic_onnx_added (ctx, node, name,
                nnic_model_add_concat (ctx->m, name, inputs, (int) node->n_input, error), error);
}

/* Per sample, the output is the inputs' blocks one after the other: the
 * channel dimension is the outermost one of a sample. */
static gboolean
concat_setup (NnicNode *node, GError **error)
{
  if (node->n_inputs < 1) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "Concat needs at least one input");
    return FALSE;
  }
  const NnicNode *first = node->inputs[0];
  if (first->shape_ndim < 1) {
    op_error (node, error, NNIC_ERROR_SHAPE, "cannot concatenate scalars along dimension 1");
    return FALSE;
  }
  int64_t channels = 0;
  for (guint k = 0; k < node->n_inputs; k++) {
    const NnicNode *in = node->inputs[k];
    gboolean fits = in->shape_ndim == first->shape_ndim;
    for (int d = 1; fits && d < in->shape_ndim; d++)
      fits = in->shape[d] == first->shape[d];
    if (!fits) {
      g_autofree char *s0 = nnic_shape_to_string (first->shape_ndim, first->shape);
      g_autofree char *sk = nnic_shape_to_string (in->shape_ndim, in->shape);
      op_error (node, error, NNIC_ERROR_SHAPE,
                "cannot concatenate '%s' of shape %s with '%s' of shape %s: all dimensions but "
                "the channels must agree",
                first->name, s0, in->name, sk);
      return FALSE;
    }
    channels += in->shape[0];
  }
  node->shape_ndim = first->shape_ndim;
  memcpy (node->shape, first->shape, sizeof (int64_t) * (size_t) first->shape_ndim);
  node->shape[0] = channels;
  return op_check_output (node, error);
}

static void
concat_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const int64_t B = node->batch, sample = op_sample_numel (node);
  float *y = node->out->f32;
  int64_t offset = 0;
  for (guint k = 0; k < node->n_inputs; k++) {
    const NnicNode *in = node->inputs[k];
    const int64_t block = op_sample_numel (in);
    for (int64_t b = 0; b < B; b++)
      memcpy (y + b * sample + offset, in->out->f32 + b * block, sizeof (float) * (size_t) block);
    offset += block;
  }
}

static void
concat_backward (NnicNode *node)
{
  const int64_t B = node->batch, sample = op_sample_numel (node);
  const float *dy = node->gout->f32;
  int64_t offset = 0;
  for (guint k = 0; k < node->n_inputs; k++) {
    const NnicNode *in = node->inputs[k];
    const int64_t block = op_sample_numel (in);
    if (in->gout)
      for (int64_t b = 0; b < B; b++)
        op_acc (in->gout->f32 + b * block, dy + b * sample + offset, block);
    offset += block;
  }
}

static gboolean
export_concat (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  nnic_onnx_export_attr_int (x, nnic_onnx_export_simple (x, "Concat", i), "axis", 1);
  return TRUE;
}

const NnicOp nnic_op_concat = {
  .type = "Concat",
  .setup = concat_setup,
  .reshape = NULL,
  .forward = concat_forward,
  .backward = concat_backward,
  .finalize = NULL,
  .channels = NNIC_CHANNELS_CONCAT,
  .onnx_ops = (const char *const[]) { "Concat", NULL },
  .onnx_import = convert_concat,
  .onnx_export = export_concat,
};

gboolean
nnic_model_add_concat (NnicModel *m, const char *name, const char *const *inputs, int n_inputs,
                       GError **error)
{
  if (n_inputs < 1 || !inputs) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: Concat needs at least one input",
                 name ? name : "Concat");
    return FALSE;
  }
  for (int i = 0; i < n_inputs; i++)
    if (!inputs[i]) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: input %d is NULL",
                   name ? name : "Concat", i);
      return FALSE;
    }
  return nnic_graph_add_named (m, name, &nnic_op_concat, inputs, (guint) n_inputs, NULL, 0, error);
}
