/* Linear (nn.Linear): out [B, OUT] = in [B, IN] x W^T [IN, OUT] + b, all in sgemm.
 *
 * Each GEMM is split into one slice per thread, along a dimension whose
 * slices write disjoint floats (output features for the forward and the
 * weight gradient, input features for dL/dx), and every slice is a
 * single-threaded BLAS call (core/parallel.h). Small layers are not split. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <string.h>
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

/* ---- ONNX ---- */

/* The bias of a Linear of `n` outputs from a constant of shape [n], [1, n],
 * [] or [1], times `scale`. */
static gboolean
linear_bias (NnicOnnxImport *ctx, const Onnx__NodeProto *node, OnnxValue *c, const char *name, int64_t n,
             double scale, GError **error)
{
  int nd;
  int64_t s[NNIC_MAX_DIMS], numel;
  if (!nnic_onnx_const_dims (ctx, node, c, &nd, s, &numel, error))
    return FALSE;
  gboolean vector = (nd == 1 && s[0] == n) || (nd == 2 && s[0] == 1 && s[1] == n);
  gboolean scalar = numel == 1 && nd <= 1;
  if (!vector && !scalar) {
    g_autofree char *ss = nnic_shape_to_string (nd, s);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the bias '%s' is %s; nnic takes [%" G_GINT64_FORMAT "], [1, %"
                          G_GINT64_FORMAT "] or a scalar",
                          c->name, ss, n, n);
    return FALSE;
  }
  g_autofree char *pb = nnic_onnx_param_name (name, "bias");
  if (vector)
    return nnic_onnx_const_to_param (ctx, node, c, pb, FALSE, scale, error);
  double v;
  if (!nnic_onnx_const_scalar (ctx, c, &v, error)) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  NnicParam *p = nnic_model_find_param (ctx->m, pb, error);
  if (!p)
    return FALSE;
  nnic_tensor_fill (p->value, (float) (v * scale));
  return TRUE;
}

static gboolean
add_linear (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, OnnxValue *x, OnnxValue *w,
            gboolean w_is_nk, int64_t in, int64_t out, double alpha, gboolean bias, GError **error)
{
  if (in > G_MAXINT || out > G_MAXINT || out == 0) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_SHAPE, "a %" G_GINT64_FORMAT " x %"
                          G_GINT64_FORMAT " weight is out of range", out, in);
    return FALSE;
  }
  NnicLinearSpec spec = { .in_features = (int) in, .out_features = (int) out, .no_bias = !bias };
  if (!nnic_onnx_added (ctx, node, name, nnic_model_add_linear (ctx->m, name, x->node, &spec, error), error))
    return FALSE;
  g_autofree char *pw = nnic_onnx_param_name (name, "weight");
  return nnic_onnx_const_to_param (ctx, node, w, pw, !w_is_nk, alpha, error);
}

/* The constant right operand of Gemm or MatMul: 2-D, and its K matches the input's. */
static gboolean
matrix (NnicOnnxImport *ctx, const Onnx__NodeProto *node, OnnxValue *w, gboolean nk, int64_t k_in,
        int64_t *n_out, GError **error)
{
  int nd;
  int64_t s[NNIC_MAX_DIMS], numel;
  if (!nnic_onnx_const_dims (ctx, node, w, &nd, s, &numel, error))
    return FALSE;
  if (nd != 2 || s[nk ? 1 : 0] != k_in) {
    g_autofree char *ss = nnic_shape_to_string (nd, s);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_SHAPE,
                          "the weight '%s' is %s; with %" G_GINT64_FORMAT
                          " input features it must be %s",
                          w->name, ss, k_in, nk ? "[out, in]" : "[in, out]");
    return FALSE;
  }
  *n_out = s[nk ? 0 : 1];
  return TRUE;
}

static gboolean
convert_gemm (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "alpha", "beta", "transA", "transB", NULL };
  int64_t trans_a, trans_b;
  double alpha, beta;
  if (!nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "transA", 0, &trans_a, error) ||
      !nnic_onnx_attr_int (ctx, node, "transB", 0, &trans_b, error) ||
      !nnic_onnx_attr_float (ctx, node, "alpha", 1.0, &alpha, error) ||
      !nnic_onnx_attr_float (ctx, node, "beta", 1.0, &beta, error))
    return FALSE;
  if (trans_a) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "transA=1 is not supported: it would mix the batch dimension into the "
                          "features");
    return FALSE;
  }
  int64_t in[NNIC_MAX_DIMS];
  OnnxValue *x = nnic_onnx_input_of_rank (ctx, node, 1, in, error);
  OnnxValue *w = x ? nnic_onnx_input_const (ctx, node, 1, "weight (B)", error) : NULL;
  if (!w)
    return FALSE;
  GError *local = NULL;
  OnnxValue *c = nnic_onnx_input_opt (ctx, node, 2, &local);
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  if (c && c->kind != ONNX_VALUE_CONST)
    return nnic_onnx_input_const (ctx, node, 2, "bias (C)", error) != NULL;
  int64_t out;
  if (!matrix (ctx, node, w, trans_b != 0, in[0], &out, error) ||
      !add_linear (ctx, node, name, x, w, trans_b != 0, in[0], out, alpha, c != NULL, error))
    return FALSE;
  return !c || linear_bias (ctx, node, c, name, out, beta, error);
}

static gboolean
convert_matmul (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  int64_t in[NNIC_MAX_DIMS];
  OnnxValue *x = nnic_onnx_input_of_rank (ctx, node, 1, in, error);
  OnnxValue *w = x ? nnic_onnx_input_const (ctx, node, 1, "right operand", error) : NULL;
  if (!w || !nnic_onnx_attrs_known (ctx, node, (const char *const[]) { NULL }, error))
    return FALSE;
  int64_t out;
  int fused = ctx->fused_add[ctx->node_index];
  const Onnx__NodeProto *add = fused >= 0 ? ctx->graph->node[fused] : NULL;
  if (!matrix (ctx, node, w, FALSE, in[0], &out, error) ||
      !add_linear (ctx, node, name, x, w, FALSE, in[0], out, 1.0, add != NULL, error))
    return FALSE;
  if (!add)
    return TRUE;
  /* the Add of a constant that follows: the bias */
  int k = add->input[0] && !strcmp (add->input[0], node->output[0]) ? 1 : 0;
  OnnxValue *c = nnic_onnx_input_const (ctx, add, (size_t) k, "bias", error);
  if (!c || !linear_bias (ctx, add, c, name, out, 1.0, error))
    return FALSE;
  nnic_onnx_set_output (ctx, add, 0, name);
  nnic_onnx_inputs_done (ctx, add);
  return TRUE;
}

static gboolean
convert_gemm_or_matmul (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                        GError **error)
{
  return !strcmp (node->op_type, "Gemm") ? convert_gemm (ctx, node, name, error)
                                         : convert_matmul (ctx, node, name, error);
}

static gboolean
export_linear (NnicOnnxExporter *x, guint i, GError **error)
{
  NnicLinearSpec s;
  nnic_model_node_linear_spec (x->model, i, &s);
  Onnx__NodeProto *n = nnic_onnx_export_weighted (x, "Gemm", i, s.no_bias, error);
  if (!n)
    return FALSE;
  nnic_onnx_export_attr_int (x, n, "transB", 1);
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
  .onnx_ops = (const char *const[]) { "Gemm", "MatMul", NULL },
  .onnx_import = convert_gemm_or_matmul,
  .onnx_export = export_linear,
};
