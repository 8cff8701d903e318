/* Nodes with several inputs: Add (a residual connection, a + b) and Concat
 * (torch.cat along the channel dimension, dim 1 of [B, C, ...]). */
#include "core/ops/kernels.h"

#include <string.h>

static gboolean
add_setup (NnicNode *node, GError **error)
{
  if (node->n_inputs != 2) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "Add takes two inputs, not %u", node->n_inputs);
    return FALSE;
  }
  const NnicNode *a = node->inputs[0], *b = node->inputs[1];
  if (a->shape_ndim != b->shape_ndim ||
      memcmp (a->shape, b->shape, sizeof (int64_t) * (size_t) a->shape_ndim) != 0) {
    g_autofree char *sa = nnic_shape_to_string (a->shape_ndim, a->shape);
    g_autofree char *sb = nnic_shape_to_string (b->shape_ndim, b->shape);
    op_error (node, error, NNIC_ERROR_SHAPE, "cannot add '%s' of shape %s and '%s' of shape %s",
              a->name, sa, b->name, sb);
    return FALSE;
  }
  node->shape_ndim = a->shape_ndim;
  memcpy (node->shape, a->shape, sizeof (int64_t) * (size_t) a->shape_ndim);
  return TRUE;
}

static void
add_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const float *a = node->inputs[0]->out->f32, *b = node->inputs[1]->out->f32;
  float *y = node->out->f32;
  const int64_t n = node->out->numel;
  for (int64_t i = 0; i < n; i++)
    y[i] = a[i] + b[i];
}

/* Each input gets dy; x + x thus gets it twice, through the same gout. */
static void
add_backward (NnicNode *node)
{
  for (guint k = 0; k < 2; k++)
    if (node->inputs[k]->gout)
      op_acc (node->inputs[k]->gout->f32, node->gout->f32, node->gout->numel);
}

const NnicOp nnic_op_add = {
  .type = "Add",
  .setup = add_setup,
  .reshape = NULL,
  .forward = add_forward,
  .backward = add_backward,
  .finalize = NULL,
  .channels = NNIC_CHANNELS_TIE,
};

gboolean
nnic_model_add_add (NnicModel *m, const char *name, const char *a, const char *b, GError **error)
{
  const char *in[2] = { a, b };
  return nnic_graph_add_named (m, name, &nnic_op_add, in, 2, NULL, 0, error);
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

const NnicOp nnic_op_concat = {
  .type = "Concat",
  .setup = concat_setup,
  .reshape = NULL,
  .forward = concat_forward,
  .backward = concat_backward,
  .finalize = NULL,
  .channels = NNIC_CHANNELS_CONCAT,
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
