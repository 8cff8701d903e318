/* Linear (nn.Linear): out [B, OUT] = in [B, IN] x W^T [IN, OUT] + b, all in sgemm. */
#include "core/ops/kernels.h"

#include <cblas.h>

static gboolean
linear_setup (NnicNode *node, GError **error)
{
  const NnicLinearSpec *s = &node->spec.linear;
  const NnicNode *in = node->inputs[0];
  if (in->shape_ndim != 1) {
    g_autofree char *shape = nnic_shape_to_string (in->shape_ndim, in->shape);
    op_error (node, error, NNIC_ERROR_SHAPE,
              "Linear needs a vector per sample, but '%s' gives %s (add a Flatten first)",
              in->name, shape);
    return FALSE;
  }
  if (s->in_features <= 0 || s->out_features <= 0) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "in_features and out_features must be positive, got %d and %d", s->in_features,
              s->out_features);
    return FALSE;
  }
  if (in->shape[0] != s->in_features) {
    op_error (node, error, NNIC_ERROR_SHAPE,
              "in_features %d does not match the input's %" G_GINT64_FORMAT " features",
              s->in_features, in->shape[0]);
    return FALSE;
  }
  node->shape_ndim = 1;
  node->shape[0] = s->out_features;
  int64_t wshape[2] = { s->out_features, s->in_features };
  int64_t bshape[1] = { s->out_features };
  if (!nnic_node_add_param (node, "weight", TRUE, 2, wshape, error))
    return FALSE;
  if (!s->no_bias && !nnic_node_add_param (node, "bias", TRUE, 1, bshape, error))
    return FALSE;
  return TRUE;
}

static gboolean
linear_reshape (NnicNode *node, int64_t batch, GError **error)
{
  return op_check_blas_dim (node, batch, error);
}

/* Sizes are B, IN, OUT: a plain I would hit <complex.h>'s macro, which
 * <cblas.h> includes. */
static void
linear_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const int B = (int) node->batch, IN = node->spec.linear.in_features,
            OUT = node->spec.linear.out_features;
  const float *x = node->inputs[0]->out->f32;
  const float *w = node->pval[0]->f32;
  float *out = node->out->f32;
  /* Start from the bias and let the GEMM add onto it (beta = 1). */
  float beta = 0.0f;
  if (node->n_params > 1) {
    const float *bias = node->pval[1]->f32;
    for (int b = 0; b < B; b++)
      for (int o = 0; o < OUT; o++)
        out[(int64_t) b * OUT + o] = bias[o];
    beta = 1.0f;
  }
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, B, OUT, IN, 1.0f, x, IN, w, IN, beta, out,
               OUT);
}

static void
linear_backward (NnicNode *node)
{
  const int B = (int) node->batch, IN = node->spec.linear.in_features,
            OUT = node->spec.linear.out_features;
  const float *x = node->inputs[0]->out->f32;
  const float *w = node->pval[0]->f32;
  const float *dy = node->gout->f32;

  /* dW [OUT, IN] += dy^T [OUT, B] x x [B, IN] */
  if (node->pgrad[0])
    cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, OUT, IN, B, 1.0f, dy, OUT, x, IN, 1.0f,
                 node->pgrad[0]->f32, IN);
  /* db [OUT] += column sums of dy */
  if (node->n_params > 1 && node->pgrad[1]) {
    float *db = node->pgrad[1]->f32;
    for (int b = 0; b < B; b++)
      for (int o = 0; o < OUT; o++)
        db[o] += dy[(int64_t) b * OUT + o];
  }
  /* dx [B, IN] += dy [B, OUT] x W [OUT, IN] */
  if (node->inputs[0]->gout)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, B, IN, OUT, 1.0f, dy, OUT, w, IN, 1.0f,
                 node->inputs[0]->gout->f32, IN);
}

const NnicOp nnic_op_linear = {
  .type = "Linear",
  .setup = linear_setup,
  .reshape = linear_reshape,
  .forward = linear_forward,
  .backward = linear_backward,
  .finalize = NULL,
};
