/* Concat: torch.cat along any dimension but the batch (the channels, dim 1
 * of [B, C, ...], unless said otherwise). Add, the other op with several
 * inputs, is in binary.c. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <string.h>

extern const NnicOp nnic_op_concat;

/* NODE_SPEC (node, ConcatSpec); all zeros (no spec) is the channels. */
typedef struct {
  int axis; /* per sample */
} ConcatSpec;

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
  OnnxValue *first = NULL;
  int a = 0;
  for (size_t k = 0; k < node->n_input; k++) {
    OnnxValue *v = nnic_onnx_input_node (ctx, node, k, error);
    if (!v || (k == 0 && !nnic_onnx_value_axis (ctx, node, 0, v, axis, &a, error)))
      return FALSE;
    if (k == 0)
      first = v;
    if (v->merged != first->merged) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "'%s' has the batch merged into its first dimension (by a Reshape) "
                            "and '%s' does not: their elements do not line up",
                            v->merged ? v->name : first->name, v->merged ? first->name : v->name);
      return FALSE;
    }
    inputs[k] = v->node;
  }
  ConcatSpec spec = { .axis = a };
  if (!nnic_onnx_added (ctx, node, name,
                        nnic_graph_add_named (ctx->m, name, &nnic_op_concat, inputs,
                                              (guint) node->n_input, &spec, sizeof spec, error),
                        error))
    return FALSE;
  /* along an axis past the first: a merged batch stays merged */
  nnic_onnx_set_merged (ctx, node, 0, first->merged);
  return TRUE;
}

static gboolean
concat_setup (NnicNode *node, GError **error)
{
  const int axis = NODE_SPEC (node, ConcatSpec)->axis;
  if (node->n_inputs < 1) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "Concat needs at least one input");
    return FALSE;
  }
  const NnicNode *first = node->inputs[0];
  if (axis < 0 || axis >= first->shape_ndim) {
    g_autofree char *s0 = nnic_shape_to_string (first->shape_ndim, first->shape);
    op_error (node, error, NNIC_ERROR_SHAPE, "cannot concatenate '%s' of shape %s along dimension %d",
              first->name, s0, axis + 1);
    return FALSE;
  }
  int64_t total = 0;
  for (guint k = 0; k < node->n_inputs; k++) {
    const NnicNode *in = node->inputs[k];
    gboolean fits = in->shape_ndim == first->shape_ndim;
    for (int d = 0; fits && d < in->shape_ndim; d++)
      fits = d == axis || in->shape[d] == first->shape[d];
    if (!fits) {
      g_autofree char *s0 = nnic_shape_to_string (first->shape_ndim, first->shape);
      g_autofree char *sk = nnic_shape_to_string (in->shape_ndim, in->shape);
      op_error (node, error, NNIC_ERROR_SHAPE,
                "cannot concatenate '%s' of shape %s with '%s' of shape %s: all dimensions but "
                "the %s must agree",
                first->name, s0, in->name, sk, axis ? "one concatenated" : "channels");
      return FALSE;
    }
    total += in->shape[axis];
  }
  node->shape_ndim = first->shape_ndim;
  memcpy (node->shape, first->shape, sizeof (int64_t) * (size_t) first->shape_ndim);
  node->shape[axis] = total;
  return op_check_output (node, error);
}

/* Per sample, `outer` rows (the dimensions before the axis); in each, the
 * inputs' blocks one after the other. Along the channels (the outermost
 * dimension of a sample) a row is a whole sample. */
static int64_t
concat_outer (const NnicNode *node)
{
  int64_t outer = node->batch;
  for (int d = 0; d < NODE_SPEC (node, ConcatSpec)->axis; d++)
    outer *= node->shape[d];
  return outer;
}

static int64_t
concat_block (const NnicNode *node, const NnicNode *in)
{
  int64_t block = 1;
  for (int d = NODE_SPEC (node, ConcatSpec)->axis; d < in->shape_ndim; d++)
    block *= in->shape[d];
  return block;
}

static void
concat_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const int64_t outer = concat_outer (node), row = concat_block (node, node);
  float *y = node->out->f32;
  int64_t offset = 0;
  for (guint k = 0; k < node->n_inputs; k++) {
    const NnicNode *in = node->inputs[k];
    const int64_t block = concat_block (node, in);
    for (int64_t o = 0; o < outer; o++)
      memcpy (y + o * row + offset, in->out->f32 + o * block, sizeof (float) * (size_t) block);
    offset += block;
  }
}

static void
concat_backward (NnicNode *node)
{
  const int64_t outer = concat_outer (node), row = concat_block (node, node);
  const float *dy = node->gout->f32;
  int64_t offset = 0;
  for (guint k = 0; k < node->n_inputs; k++) {
    const NnicNode *in = node->inputs[k];
    const int64_t block = concat_block (node, in);
    if (in->gout)
      for (int64_t o = 0; o < outer; o++)
        op_acc (in->gout->f32 + o * block, dy + o * row + offset, block);
    offset += block;
  }
}

/* Along the channels, the inputs' channels one after the other; along
 * another axis each output channel mixes the inputs' (they would have to
 * be pruned alike, which nnic does not track): new ones. */
static NnicChannelRule
concat_channels (const NnicNode *node)
{
  return NODE_SPEC (node, ConcatSpec)->axis == 0 ? NNIC_CHANNELS_CONCAT : NNIC_CHANNELS_END;
}

static gboolean
concat_option (const NnicNode *node, const char *key, double *value)
{
  if (strcmp (key, "dim") != 0)
    return FALSE;
  *value = NODE_SPEC (node, ConcatSpec)->axis + 1;
  return TRUE;
}

static gboolean
export_concat (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  const int axis = NODE_SPEC (nnic_model_node (x->model, i), ConcatSpec)->axis;
  nnic_onnx_export_attr_int (x, nnic_onnx_export_simple (x, "Concat", i), "axis", axis + 1);
  return TRUE;
}

const NnicOp nnic_op_concat = {
  .type = "Concat",
  .setup = concat_setup,
  .reshape = NULL,
  .forward = concat_forward,
  .backward = concat_backward,
  .finalize = NULL,
  .option = concat_option,
  .channel_rule = concat_channels,
  .onnx_ops = (const char *const[]) { "Concat", NULL },
  .onnx_import = convert_concat,
  .onnx_export = export_concat,
  .onnx_merged = NNIC_ONNX_MERGED_OWN,
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

gboolean
nnic_model_add_concat_dim (NnicModel *m, const char *name, const char *const *inputs, int n_inputs,
                           int dim, GError **error)
{
  const char *label = name ? name : "Concat";
  if (n_inputs < 1 || !inputs || !inputs[0])
    return nnic_model_add_concat (m, name, inputs, n_inputs, error); /* its message */
  NnicNode *first = nnic_graph_resolve (m, label, inputs[0], error);
  if (!first)
    return FALSE;
  /* torch's dims: the batch is 0, negative ones count from the end */
  const int d = dim < 0 ? dim + first->shape_ndim + 1 : dim;
  if (d == 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s: dimension %d is the batch, which nnic does not concatenate", label, dim);
    return FALSE;
  }
  for (int i = 0; i < n_inputs; i++)
    if (!inputs[i]) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: input %d is NULL", label, i);
      return FALSE;
    }
  ConcatSpec spec = { .axis = d - 1 };
  return nnic_graph_add_named (m, name, &nnic_op_concat, inputs, (guint) n_inputs, &spec, sizeof spec,
                               error);
}
