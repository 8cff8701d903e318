/* Linear (nn.Linear): out [B, OUT] = in [B, IN] x W^T [IN, OUT] + b, all in sgemm.
 *
 * Each GEMM is split into one slice per thread, along a dimension whose
 * slices write disjoint floats (output features for the forward and the
 * weight gradient, input features for dL/dx), and every slice is a
 * single-threaded BLAS call (core/parallel.h). Small layers are not split. */
#include "core/ops/kernels.h"
#include "core/parallel.h"

#include <cblas.h>

static gboolean
linear_setup (NnicNode *node, GError **error)
{
  const NnicLinearSpec *s = NODE_SPEC (node, NnicLinearSpec);
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

/* Below this many multiply-adds a GEMM is not worth splitting. */
#define SPLIT_MIN_MACS ((int64_t) 1 << 20)

static int
linear_threads (int64_t macs, int64_t slices)
{
  return macs < SPLIT_MIN_MACS ? 1 : (int) MIN ((int64_t) nnic_threads (), slices);
}

/* Sizes are B, IN, OUT: a plain I would hit <complex.h>'s macro, which
 * <cblas.h> includes. */
static void
forward_slice (NnicNode *node, int o0, int o1)
{
  const int B = (int) node->batch, IN = NODE_SPEC (node, NnicLinearSpec)->in_features,
            OUT = NODE_SPEC (node, NnicLinearSpec)->out_features, n = o1 - o0;
  const float *x = node->inputs[0]->out->f32;
  const float *w = node->pval[0]->f32 + (int64_t) o0 * IN;
  float *out = node->out->f32 + o0;
  /* Start from the bias and let the GEMM add onto it (beta = 1). */
  float beta = 0.0f;
  if (node->n_params > 1) {
    const float *bias = node->pval[1]->f32 + o0;
    for (int b = 0; b < B; b++)
      for (int o = 0; o < n; o++)
        out[(int64_t) b * OUT + o] = bias[o];
    beta = 1.0f;
  }
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, B, n, IN, 1.0f, x, IN, w, IN, beta, out,
               OUT);
}

static void
linear_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const int64_t OUT = NODE_SPEC (node, NnicLinearSpec)->out_features;
  const int threads = linear_threads (node->batch * OUT * NODE_SPEC (node, NnicLinearSpec)->in_features, OUT / 16);
  if (threads <= 1) {
    forward_slice (node, 0, (int) OUT);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    int64_t lo, hi;
    nnic_split_range (OUT / 16, threads, nnic_thread_index (), &lo, &hi);
    forward_slice (node, (int) (lo * 16), hi == OUT / 16 ? (int) OUT : (int) (hi * 16));
  }
}

/* Output features [o0, o1): dW rows and db entries. */
static void
weight_grad_slice (NnicNode *node, int o0, int o1)
{
  const int B = (int) node->batch, IN = NODE_SPEC (node, NnicLinearSpec)->in_features,
            OUT = NODE_SPEC (node, NnicLinearSpec)->out_features, n = o1 - o0;
  const float *x = node->inputs[0]->out->f32;
  const float *dy = node->gout->f32 + o0;
  /* dW [OUT, IN] += dy^T [OUT, B] x x [B, IN] */
  if (node->pgrad[0])
    cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, n, IN, B, 1.0f, dy, OUT, x, IN, 1.0f,
                 node->pgrad[0]->f32 + (int64_t) o0 * IN, IN);
  /* db [OUT] += column sums of dy */
  if (node->n_params > 1 && node->pgrad[1]) {
    float *db = node->pgrad[1]->f32 + o0;
    for (int b = 0; b < B; b++)
      for (int o = 0; o < n; o++)
        db[o] += dy[(int64_t) b * OUT + o];
  }
}

/* Input features [i0, i1) of dx [B, IN] += dy [B, OUT] x W [OUT, IN]. */
static void
input_grad_slice (NnicNode *node, int i0, int i1)
{
  const int B = (int) node->batch, IN = NODE_SPEC (node, NnicLinearSpec)->in_features,
            OUT = NODE_SPEC (node, NnicLinearSpec)->out_features;
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, B, i1 - i0, OUT, 1.0f, node->gout->f32,
               OUT, node->pval[0]->f32 + i0, IN, 1.0f, node->inputs[0]->gout->f32 + i0, IN);
}

static void
linear_backward (NnicNode *node)
{
  const int64_t IN = NODE_SPEC (node, NnicLinearSpec)->in_features, OUT = NODE_SPEC (node, NnicLinearSpec)->out_features;
  const gboolean want_dx = node->inputs[0]->gout != NULL;
  const int threads = linear_threads (node->batch * OUT * IN, MIN (OUT, IN) / 16);
  if (threads <= 1) {
    weight_grad_slice (node, 0, (int) OUT);
    if (want_dx)
      input_grad_slice (node, 0, (int) IN);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = nnic_thread_index ();
    int64_t lo, hi;
    nnic_split_range (OUT / 16, threads, t, &lo, &hi);
    weight_grad_slice (node, (int) (lo * 16), hi == OUT / 16 ? (int) OUT : (int) (hi * 16));
    if (want_dx) {
      nnic_split_range (IN / 16, threads, t, &lo, &hi);
      input_grad_slice (node, (int) (lo * 16), hi == IN / 16 ? (int) IN : (int) (hi * 16));
    }
  }
}

gboolean
nnic_model_add_linear (NnicModel *m, const char *name, const char *input,
                       const NnicLinearSpec *spec, GError **error)
{
  return nnic_graph_add_unary (m, name, input, &nnic_op_linear, spec, sizeof *spec, error);
}

gboolean
nnic_model_node_linear_spec (const NnicModel *m, guint i, NnicLinearSpec *spec)
{
  if (i >= m->nodes->len || nnic_graph_node (m, i)->op != &nnic_op_linear)
    return FALSE;
  *spec = *NODE_SPEC (nnic_graph_node (m, i), NnicLinearSpec);
  return TRUE;
}

const NnicOp nnic_op_linear = {
  .type = "Linear",
  .setup = linear_setup,
  .reshape = linear_reshape,
  .forward = linear_forward,
  .backward = linear_backward,
  .finalize = NULL,
  .init_params = nnic_init_weighted,
  .channels = NNIC_CHANNELS_MAKE,
};
