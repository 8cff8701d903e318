/* The model's input node. The executor sets its shape when the model is
 * created and copies each batch into its output, so there is nothing to do;
 * its gradient (when asked for) is what the layers above accumulate. */
#include "core/ops/kernels.h"

static gboolean
input_setup (NnicNode *node, GError **error)
{
  (void) node;
  (void) error;
  return TRUE;
}

static void
input_forward (NnicNode *node, gboolean training)
{
  (void) node;
  (void) training;
}

static void
input_backward (NnicNode *node)
{
  (void) node;
}

const NnicOp nnic_op_input = {
  .type = "Input",
  .setup = input_setup,
  .reshape = NULL,
  .forward = input_forward,
  .backward = input_backward,
  .finalize = NULL,
};
