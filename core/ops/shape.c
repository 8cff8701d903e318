/* Flatten (nn.Flatten / torch.flatten(x, 1)): [C, H, W] → [C*H*W]. NCHW is
 * contiguous, so it is a plain copy both ways. */
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
};
