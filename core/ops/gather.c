/* Gather with constant indices along a per-sample axis: torch.select
 * (ViT's class token, x[:, 0]: one index, the axis goes away) and
 * torch.index_select / x[:, [0, 2]] (a list, or any shape of indices,
 * which takes the axis' place). Per sample, out[o, j, i] = x[o, idx[j], i];
 * the backward adds the gradient back there (an index taken twice gets
 * both). */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <string.h>

extern const NnicOp nnic_op_gather;

/* NODE_SPEC (node, GatherSpec). `indices` is the caller's, read only by
 * setup, which keeps its own copy in node->state (normalized to
 * [0, size of the axis)). */
typedef struct {
  int axis;     /* per-sample */
  int idx_ndim; /* 0: one index, the axis goes away */
  int64_t idx_shape[NNIC_MAX_DIMS];
  const int64_t *indices;
} GatherSpec;

static int64_t
n_indices (const GatherSpec *s)
{
  return nnic_shape_numel (s->idx_ndim, s->idx_shape);
}

static gboolean
gather_setup (NnicNode *node, GError **error)
{
  GatherSpec *s = NODE_SPEC (node, GatherSpec);
  const NnicNode *in = node->inputs[0];
  const int nd = in->shape_ndim;
  g_autofree char *sh = nnic_shape_to_string (nd, in->shape);
  if (s->axis < 0 || s->axis >= nd) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "dimension %d is not one of '%s' %s (per sample)",
              s->axis + 1, in->name, sh);
    return FALSE;
  }
  const int64_t n = n_indices (s), dim = in->shape[s->axis];
  if (s->idx_ndim < 0 || nd - 1 + s->idx_ndim > NNIC_MAX_DIMS - 1 || n < 0 || (n && !s->indices)) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "the indices do not fit '%s' %s", in->name, sh);
    return FALSE;
  }
  int64_t *idx = g_new (int64_t, MAX (n, 1));
  for (int64_t j = 0; j < n; j++) {
    idx[j] = s->indices[j] < 0 ? s->indices[j] + dim : s->indices[j];
    if (idx[j] < 0 || idx[j] >= dim) {
      op_error (node, error, NNIC_ERROR_ARGUMENT,
                "index %" G_GINT64_FORMAT " is out of range for dimension %d of '%s' %s", s->indices[j],
                s->axis + 1, in->name, sh);
      g_free (idx);
      return FALSE;
    }
  }
  s->indices = NULL; /* the caller's, gone after the call */
  node->state = idx;
  node->shape_ndim = 0;
  for (int d = 0; d < s->axis; d++)
    node->shape[node->shape_ndim++] = in->shape[d];
  for (int d = 0; d < s->idx_ndim; d++)
    node->shape[node->shape_ndim++] = s->idx_shape[d];
  for (int d = s->axis + 1; d < nd; d++)
    node->shape[node->shape_ndim++] = in->shape[d];
  return op_check_output (node, error);
}

static void
gather_finalize (NnicNode *node)
{
  g_clear_pointer (&node->state, g_free);
}

/* The blocks: per sample, `outer` runs of the axis, each `inner` long. */
static void
gather_dims (const NnicNode *node, int64_t *outer, int64_t *dim, int64_t *inner)
{
  const GatherSpec *s = NODE_SPEC (node, GatherSpec);
  const NnicNode *in = node->inputs[0];
  *outer = node->batch;
  *inner = 1;
  for (int d = 0; d < s->axis; d++)
    *outer *= in->shape[d];
  for (int d = s->axis + 1; d < in->shape_ndim; d++)
    *inner *= in->shape[d];
  *dim = in->shape[s->axis];
}

static void
gather_forward (NnicNode *node, gboolean training)
{
  (void) training;
  int64_t outer, dim, inner;
  gather_dims (node, &outer, &dim, &inner);
  const int64_t n = n_indices (NODE_SPEC (node, GatherSpec));
  const int64_t *idx = node->state;
  const float *x = node->inputs[0]->out->f32;
  float *y = node->out->f32;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < n; j++)
      memcpy (y + (o * n + j) * inner, x + (o * dim + idx[j]) * inner, sizeof (float) * (size_t) inner);
}

static void
gather_backward (NnicNode *node)
{
  if (!node->inputs[0]->gout)
    return;
  int64_t outer, dim, inner;
  gather_dims (node, &outer, &dim, &inner);
  const int64_t n = n_indices (NODE_SPEC (node, GatherSpec));
  const int64_t *idx = node->state;
  float *dx = node->inputs[0]->gout->f32;
  const float *dy = node->gout->f32;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t j = 0; j < n; j++)
      op_acc (dx + (o * dim + idx[j]) * inner, dy + (o * n + j) * inner, inner);
}

/* Picking channels (axis 0 per sample) makes new ones; picking along the
 * other axes keeps them. */
static NnicChannelRule
gather_channels (const NnicNode *node)
{
  return NODE_SPEC (node, GatherSpec)->axis == 0 ? NNIC_CHANNELS_END : NNIC_CHANNELS_KEEP;
}

static gboolean
gather_option (const NnicNode *node, const char *key, double *value)
{
  if (strcmp (key, "dim") != 0)
    return FALSE;
  *value = NODE_SPEC (node, GatherSpec)->axis + 1;
  return TRUE;
}

/* ---- ONNX ---- */

static gboolean
convert_gather (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "axis", NULL };
  int64_t axis;
  int a;
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  OnnxValue *iv = x ? nnic_onnx_input_const (ctx, node, 1, "indices", error) : NULL;
  if (!iv || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "axis", 0, &axis, error) ||
      !nnic_onnx_value_axis (ctx, node, 0, x, axis, &a, error))
    return FALSE;
  const NnicTensor *t = nnic_onnx_const_tensor (ctx, iv, error);
  if (!t) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  if (t->dtype == NNIC_DTYPE_F32) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "the indices '%s' are float32",
                          node->input[1]);
    return FALSE;
  }
  g_autofree int64_t *idx = g_new (int64_t, MAX (t->numel, 1));
  for (int64_t j = 0; j < t->numel; j++)
    idx[j] = t->dtype == NNIC_DTYPE_I64 ? t->i64[j] : (int64_t) nnic_onnx_tensor_element (t, j);
  GatherSpec spec = { .axis = a, .idx_ndim = t->ndim, .indices = idx };
  memcpy (spec.idx_shape, t->shape, sizeof (int64_t) * (size_t) t->ndim);
  const char *in = x->node;
  if (!nnic_onnx_added (
          ctx, node, name,
          nnic_graph_add_named (ctx->m, name, &nnic_op_gather, &in, 1, &spec, sizeof spec, error),
          error))
    return FALSE;
  /* the axis taken is past the first (the batch's, when merged) */
  nnic_onnx_set_merged (ctx, node, 0, x->merged);
  return TRUE;
}

static gboolean
export_gather (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  const NnicNode *node = nnic_model_node (x->model, i);
  const GatherSpec *s = NODE_SPEC (node, GatherSpec);
  Onnx__NodeProto *n = nnic_onnx_export_simple (x, "Gather", i);
  char *cn = nnic_onnx_export_keep (
      x, g_strconcat (nnic_model_node_name (x->model, i), ".onnx_indices", NULL));
  nnic_onnx_export_add_input (
      x, n, nnic_onnx_export_constant_i64_shaped (x, cn, node->state, s->idx_ndim, s->idx_shape));
  nnic_onnx_export_attr_int (x, n, "axis", s->axis + 1);
  return TRUE;
}

const NnicOp nnic_op_gather = {
  .type = "Gather",
  .setup = gather_setup,
  .reshape = NULL,
  .forward = gather_forward,
  .backward = gather_backward,
  .finalize = gather_finalize,
  .option = gather_option,
  .channel_rule = gather_channels,
  .keeps_grid = TRUE,
  .onnx_ops = (const char *const[]) { "Gather", NULL },
  .onnx_import = convert_gather,
  .onnx_export = export_gather,
  .onnx_merged = NNIC_ONNX_MERGED_OWN,
};

static gboolean
add_gather (NnicModel *m, const char *name, const char *input, int dim, const int64_t *indices,
            int idx_ndim, int64_t n, GError **error)
{
  const char *label = name ? name : "Gather";
  NnicNode *in = nnic_graph_resolve (m, label, input, error);
  if (!in)
    return FALSE;
  /* torch's dims: the batch is 0, negative ones count from the end */
  const int d = dim < 0 ? dim + in->shape_ndim + 1 : dim;
  if (d == 0 || n < 0 || (n && !indices)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 d == 0 ? "%s: dimension %d is the batch, which nnic does not index"
                        : "%s: no indices along dimension %d",
                 label, dim);
    return FALSE;
  }
  GatherSpec spec = { .axis = d - 1, .idx_ndim = idx_ndim, .idx_shape = { n }, .indices = indices };
  return nnic_graph_add (m, name, &nnic_op_gather, &in, 1, &spec, sizeof spec, error);
}

gboolean
nnic_model_add_select (NnicModel *m, const char *name, const char *input, int dim, int64_t index,
                       GError **error)
{
  return add_gather (m, name, input, dim, &index, 0, 1, error);
}

gboolean
nnic_model_add_index_select (NnicModel *m, const char *name, const char *input, int dim,
                             const int64_t *indices, int n, GError **error)
{
  return add_gather (m, name, input, dim, indices, 1, n, error);
}
