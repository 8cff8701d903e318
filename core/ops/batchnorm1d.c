/* BatchNorm1d (nn.BatchNorm1d with track_running_stats=True) on [N, C]
 * inputs: flat features, as after a Linear layer.
 *
 * On [N, C] this is BatchNorm2d with H = W = 1: the same statistics (over
 * the batch; biased variance to normalise, unbiased for the running
 * update), the same parameters and buffers in the same state_dict order
 * (weight and bias when affine, running_mean, running_var,
 * num_batches_tracked), the same backward. So only setup is its own: it
 * takes a [C] input per sample and hands forward, backward and the
 * per-batch cache to BatchNorm2d's kernels, which read the node as
 * [C, H, W] with H = W = 1 (see the shape note in bn1d_setup). The
 * [N, C, L] form of nn.BatchNorm1d is refused. */
#include "core/ops/kernels.h"

extern const NnicOp nnic_op_batchnorm2d;

#include <math.h>

static gboolean
bn1d_setup (NnicNode *node, GError **error)
{
  const NnicNode *in = node->inputs[0];
  if (in->shape_ndim != 1) {
    g_autofree char *shape = nnic_shape_to_string (in->shape_ndim, in->shape);
    if (in->shape_ndim == 2)
      op_error (node, error, NNIC_ERROR_UNSUPPORTED,
                "BatchNorm1d on [N, C, L] inputs is not supported, only on [N, C] (flat "
                "features); '%s' gives %s per sample",
                in->name, shape);
    else
      op_error (node, error, NNIC_ERROR_SHAPE,
                "BatchNorm1d needs a [features] input per sample ([N, C]), but '%s' gives %s",
                in->name, shape);
    return FALSE;
  }
  /* The output is [C] per sample. The entries past shape_ndim are never
   * read as part of the shape (every user goes through shape_ndim); the
   * BatchNorm2d kernels read shape[1] * shape[2] as the plane size, which
   * these make 1. */
  node->shape_ndim = 1;
  node->shape[0] = in->shape[0];
  node->shape[1] = 1;
  node->shape[2] = 1;
  return nnic_batchnorm_setup_common (node, "features", error);
}

/* Forward, backward and reshape are BatchNorm2d's own: called through its
 * op table, as they are static in batchnorm2d.c. */
static gboolean
bn1d_reshape (NnicNode *node, int64_t batch, GError **error)
{
  return nnic_op_batchnorm2d.reshape (node, batch, error);
}

static void
bn1d_forward (NnicNode *node, gboolean training)
{
  nnic_op_batchnorm2d.forward (node, training);
}

static void
bn1d_backward (NnicNode *node)
{
  nnic_op_batchnorm2d.backward (node);
}

const NnicOp nnic_op_batchnorm1d = {
  .type = "BatchNorm1d",
  .setup = bn1d_setup,
  .reshape = bn1d_reshape,
  .forward = bn1d_forward,
  .backward = bn1d_backward,
  .finalize = op_mode_finalize,
  .init_params = nnic_init_batchnorm,
  .channels = NNIC_CHANNELS_KEEP,
  .onnx_export = nnic_batchnorm_export,
};

gboolean
nnic_model_add_batchnorm1d (NnicModel *m, const char *name, const char *input,
                            const NnicBatchNormSpec *spec, GError **error)
{
  return nnic_graph_add_unary (m, name, input, &nnic_op_batchnorm1d, spec, sizeof *spec, error);
}
