/* Flatten (nn.Flatten / torch.flatten(x, 1)): [C, H, W] → [C*H*W], and
 * Reshape. NCHW is contiguous, so both are a plain copy both ways. */
#include "core/ops/kernels.h"

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

const NnicOp nnic_op_flatten = {
  .type = "Flatten",
  .setup = flatten_setup,
  .reshape = NULL,
  .forward = flatten_forward,
  .backward = flatten_backward,
  .finalize = NULL,
  .keeps_grid = TRUE,
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

const NnicOp nnic_op_reshape = {
  .type = "Reshape",
  .setup = reshape_setup,
  .reshape = NULL,
  .forward = flatten_forward,
  .backward = flatten_backward,
  .finalize = NULL,
  .keeps_grid = TRUE,
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
