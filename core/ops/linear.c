/* Linear (nn.Linear) on the last axis of any per-sample shape: the input
 * [B, ..., IN] is ROWS = B * prod(...) rows of IN features, and
 * out [ROWS, OUT] = in [ROWS, IN] x W^T [IN, OUT] + b, all in sgemm. A
 * vector per sample (ROWS = B) is the classifier's case; [T, C] tokens and
 * [H, W, C] channels-last maps (transformers, ConvNeXt) are the others.
 *
 * Each GEMM is split into one slice per thread, along a dimension whose
 * slices write disjoint floats: rows when there are more rows than
 * features (N-D inputs), else output features for the forward and the
 * weight gradient, input features for dL/dx (a batch of vectors). Every
 * slice is a single-threaded BLAS call (core/parallel.h). Small layers are
 * not split. */
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
  if (s->in_features <= 0 || s->out_features <= 0) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "in_features and out_features must be positive, got %d and %d", s->in_features,
              s->out_features);
    return FALSE;
  }
  const int last = in->shape_ndim - 1;
  if (last < 0 || in->shape[last] != s->in_features) {
    g_autofree char *shape = nnic_shape_to_string (in->shape_ndim, in->shape);
    op_error (node, error, NNIC_ERROR_SHAPE,
              "in_features %d does not match the last dimension of '%s', %s per sample%s",
              s->in_features, in->name, shape,
              op_sample_numel (in) == s->in_features ? " (add a Flatten first)" : "");
    return FALSE;
  }
  node->shape_ndim = in->shape_ndim;
  memcpy (node->shape, in->shape, sizeof (int64_t) * (size_t) in->shape_ndim);
  node->shape[last] = s->out_features;
  int64_t wshape[2] = { s->out_features, s->in_features };
  int64_t bshape[1] = { s->out_features };
  if (!op_check_output (node, error) ||
      !nnic_node_add_param (node, "weight", TRUE, 2, wshape, error))
    return FALSE;
  if (!s->no_bias && !nnic_node_add_param (node, "bias", TRUE, 1, bshape, error))
    return FALSE;
  return TRUE;
}

/* The GEMM's rows: the batch times the leading per-sample dimensions. */
static int64_t
linear_rows (const NnicNode *node)
{
  return node->batch * (op_sample_numel (node->inputs[0]) / NODE_SPEC (node, NnicLinearSpec)->in_features);
}

static gboolean
linear_reshape (NnicNode *node, int64_t batch, GError **error)
{
  (void) batch; /* node->batch is set */
  return op_check_blas_dim (node, linear_rows (node), error);
}

/* Below this many multiply-adds a GEMM is not worth splitting. */
#define SPLIT_MIN_MACS ((int64_t) 1 << 20)

static int
linear_threads (int64_t macs, int64_t slices)
{
  return macs < SPLIT_MIN_MACS ? 1 : (int) MAX (1, MIN ((int64_t) nnic_threads (), slices));
}

/* Thread t's part [*lo, *hi) of n items cut at multiples of `align` (the
 * last part takes the rest); empty when there are fewer parts than
 * threads. */
static void
linear_part (int64_t n, int64_t align, int threads, int t, int64_t *lo, int64_t *hi)
{
  nnic_split_range (n / align, threads, t, lo, hi);
  *lo *= align;
  *hi = t == threads - 1 ? n : *hi * align;
}

/* Sizes are ROWS, IN, OUT: a plain I would hit <complex.h>'s macro, which
 * <cblas.h> includes. */
typedef struct {
  int ROWS, IN, OUT;
} LinearDims;

static LinearDims
linear_dims (const NnicNode *node)
{
  const NnicLinearSpec *s = NODE_SPEC (node, NnicLinearSpec);
  return (LinearDims) { (int) linear_rows (node), s->in_features, s->out_features };
}

/* Rows [r0, r1) and output features [o0, o1) of the output. */
static void
forward_block (NnicNode *node, LinearDims d, int r0, int r1, int o0, int o1)
{
  const int nr = r1 - r0, n = o1 - o0;
  if (nr <= 0 || n <= 0)
    return;
  const float *x = node->inputs[0]->out->f32 + (int64_t) r0 * d.IN;
  const float *w = node->pval[0]->f32 + (int64_t) o0 * d.IN;
  float *out = node->out->f32 + (int64_t) r0 * d.OUT + o0;
  /* Start from the bias and let the GEMM add onto it (beta = 1). */
  float beta = 0.0f;
  if (node->n_params > 1) {
    const float *bias = node->pval[1]->f32 + o0;
    for (int r = 0; r < nr; r++)
      memcpy (out + (int64_t) r * d.OUT, bias, sizeof (float) * (size_t) n);
    beta = 1.0f;
  }
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, nr, n, d.IN, 1.0f, x, d.IN, w, d.IN, beta,
               out, d.OUT);
}

static void
linear_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const LinearDims d = linear_dims (node);
  const gboolean by_rows = d.ROWS >= d.OUT;
  const int threads = linear_threads ((int64_t) d.ROWS * d.OUT * d.IN, by_rows ? d.ROWS : d.OUT / 16);
  if (threads <= 1) {
    forward_block (node, d, 0, d.ROWS, 0, d.OUT);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    int64_t lo, hi;
    linear_part (by_rows ? d.ROWS : d.OUT, by_rows ? 1 : 16, threads, nnic_thread_index (), &lo, &hi);
    if (by_rows)
      forward_block (node, d, (int) lo, (int) hi, 0, d.OUT);
    else
      forward_block (node, d, 0, d.ROWS, (int) lo, (int) hi);
  }
}

/* dW [OUT, IN] += dy^T [OUT, ROWS] x x [ROWS, IN], for output features
 * [o0, o1) and input features [i0, i1). */
static void
weight_grad_block (NnicNode *node, LinearDims d, int o0, int o1, int i0, int i1)
{
  if (o1 <= o0 || i1 <= i0 || !node->pgrad[0])
    return;
  cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, o1 - o0, i1 - i0, d.ROWS, 1.0f,
               node->gout->f32 + o0, d.OUT, node->inputs[0]->out->f32 + i0, d.IN, 1.0f,
               node->pgrad[0]->f32 + (int64_t) o0 * d.IN + i0, d.IN);
}

/* db [o0, o1) += column sums of dy. */
static void
bias_grad_block (NnicNode *node, LinearDims d, int o0, int o1)
{
  if (o1 <= o0 || node->n_params < 2 || !node->pgrad[1])
    return;
  const float *dy = node->gout->f32 + o0;
  float *restrict db = node->pgrad[1]->f32 + o0;
  const int n = o1 - o0;
  for (int r = 0; r < d.ROWS; r++)
    for (int o = 0; o < n; o++)
      db[o] += dy[(int64_t) r * d.OUT + o];
}

/* Rows [r0, r1) and input features [i0, i1) of dx [ROWS, IN] += dy [ROWS, OUT] x W [OUT, IN]. */
static void
input_grad_block (NnicNode *node, LinearDims d, int r0, int r1, int i0, int i1)
{
  if (r1 <= r0 || i1 <= i0)
    return;
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, r1 - r0, i1 - i0, d.OUT, 1.0f,
               node->gout->f32 + (int64_t) r0 * d.OUT, d.OUT, node->pval[0]->f32 + i0, d.IN, 1.0f,
               node->inputs[0]->gout->f32 + (int64_t) r0 * d.IN + i0, d.IN);
}

static void
linear_backward (NnicNode *node)
{
  const LinearDims d = linear_dims (node);
  const gboolean want_dx = node->inputs[0]->gout != NULL;
  /* dW by output features (with db), else by input features when there
   * are more of those; dx by rows, else by input features. */
  const gboolean w_by_out = d.OUT >= d.IN, dx_by_rows = d.ROWS >= d.IN;
  const int64_t w_units = w_by_out ? d.OUT / 16 : d.IN / 16;
  const int64_t x_units = dx_by_rows ? d.ROWS : d.IN / 16;
  const int threads = linear_threads ((int64_t) d.ROWS * d.OUT * d.IN,
                                      want_dx ? MIN (w_units, x_units) : w_units);
  if (threads <= 1) {
    weight_grad_block (node, d, 0, d.OUT, 0, d.IN);
    bias_grad_block (node, d, 0, d.OUT);
    if (want_dx)
      input_grad_block (node, d, 0, d.ROWS, 0, d.IN);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int t = nnic_thread_index ();
    int64_t lo, hi;
    if (w_by_out) {
      linear_part (d.OUT, 16, threads, t, &lo, &hi);
      weight_grad_block (node, d, (int) lo, (int) hi, 0, d.IN);
    } else {
      linear_part (d.IN, 16, threads, t, &lo, &hi);
      weight_grad_block (node, d, 0, d.OUT, (int) lo, (int) hi);
      linear_part (d.OUT, 16, threads, t, &lo, &hi);
    }
    bias_grad_block (node, d, (int) lo, (int) hi);
    if (want_dx) {
      linear_part (dx_by_rows ? d.ROWS : d.IN, dx_by_rows ? 1 : 16, threads, t, &lo, &hi);
      if (dx_by_rows)
        input_grad_block (node, d, (int) lo, (int) hi, 0, d.IN);
      else
        input_grad_block (node, d, 0, d.ROWS, (int) lo, (int) hi);
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

/* The bias of a Linear of `n` outputs whose output has `rank` dimensions
 * (the batch's included) from a constant of shape [n] (or [1, ..., 1, n]
 * of at most that rank) or a single value, times `scale`. */
static gboolean
linear_bias (NnicOnnxImport *ctx, const Onnx__NodeProto *node, OnnxValue *c, const char *name, int64_t n,
             int rank, double scale, GError **error)
{
  int nd;
  int64_t s[NNIC_MAX_DIMS], numel;
  if (!nnic_onnx_const_dims (ctx, node, c, &nd, s, &numel, error))
    return FALSE;
  /* a larger rank would broadcast the output into more dimensions */
  gboolean vector = nd >= 1 && nd <= rank && s[nd - 1] == n && numel == n;
  gboolean scalar = numel == 1 && nd <= rank;
  if (!vector && !scalar) {
    g_autofree char *ss = nnic_shape_to_string (nd, s);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the bias '%s' is %s; nnic takes [%" G_GINT64_FORMAT "], [1, %"
                          G_GINT64_FORMAT "] (ones before %" G_GINT64_FORMAT
                          ", up to the output's rank %d) or a scalar",
                          c->name, ss, n, n, n, rank);
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
  if (nd != 2) {
    /* a stack of matrices, or a vector (which would drop the last axis) */
    g_autofree char *ss = nnic_shape_to_string (nd, s);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the constant weight '%s' is %s; nnic takes a 2-D matrix there (as "
                          "nn.Linear exports)",
                          w->name, ss);
    return FALSE;
  }
  if (s[nk ? 1 : 0] != k_in) {
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
  /* a matrix: [N, features], or [N*k, features] when a Reshape merged
   * the batch (k rows of a sample); or, on the node of a view
   * (core/onnx/view.c: torch's out_proj on [L*N, E]), any rank with the
   * features last */
  int64_t in[NNIC_MAX_DIMS + 1];
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  const int nd = x ? nnic_onnx_value_dims (ctx, x, in) : 0;
  if (x && nd != 2 && !ctx->view_physical) {
    g_autofree char *s = nnic_onnx_dims_string (nd, in);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "nnic imports Gemm on 2-D [N, features] inputs only; input '%s' is %s",
                          x->name, s);
    return FALSE;
  }
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
  if (!matrix (ctx, node, w, trans_b != 0, in[nd - 1], &out, error) ||
      !add_linear (ctx, node, name, x, w, trans_b != 0, in[nd - 1], out, alpha, c != NULL, error))
    return FALSE;
  return !c || linear_bias (ctx, node, c, name, out, nd + 1, beta, error);
}

/* MatMul: x @ W with a constant 2-D W (nn.Linear on any rank: torch
 * exports it so, with the bias as the Add that follows, which the plan
 * folds in) is a Linear; a product of two computed values (attention)
 * is a MatMul node (matmul.c). */
static gboolean
convert_matmul (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  OnnxValue *x = nnic_onnx_input (ctx, node, 0, error);
  OnnxValue *w = x ? nnic_onnx_input (ctx, node, 1, error) : NULL;
  if (!w || !nnic_onnx_no_attrs (ctx, node, error))
    return FALSE;
  if (x->kind == ONNX_VALUE_CONST) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the left operand '%s' is a constant; nnic takes x @ W with a constant "
                          "2-D W (nn.Linear) or the product of two values computed in the graph",
                          x->name);
    return FALSE;
  }
  if (w->kind == ONNX_VALUE_NODE)
    return nnic_matmul_convert (ctx, node, name, x, w, error);
  /* the ONNX rank: the batch's dimension, or a merged one, first */
  int64_t in[NNIC_MAX_DIMS + 1];
  const int rank = nnic_onnx_value_dims (ctx, x, in);
  int64_t out;
  int fused = ctx->fused_add[ctx->node_index];
  const Onnx__NodeProto *add = fused >= 0 ? ctx->graph->node[fused] : NULL;
  if (!matrix (ctx, node, w, FALSE, in[rank - 1], &out, error) ||
      !add_linear (ctx, node, name, x, w, FALSE, in[rank - 1], out, 1.0, add != NULL, error))
    return FALSE;
  if (!add)
    return TRUE;
  /* the Add of a constant that follows: the bias */
  int k = add->input[0] && !strcmp (add->input[0], node->output[0]) ? 1 : 0;
  OnnxValue *c = nnic_onnx_input_const (ctx, add, (size_t) k, "bias", error);
  if (!c || !linear_bias (ctx, add, c, name, out, rank, 1.0, error))
    return FALSE;
  nnic_onnx_set_output (ctx, add, 0, name);
  nnic_onnx_set_merged (ctx, add, 0, x->merged); /* the Add's output is the Linear's */
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

/* Gemm on vectors; on N-D inputs (Gemm takes matrices only) what torch
 * writes: MatMul by the transposed weight, then the Add of the bias. The
 * initializer keeps the parameter's name, so the file reads back into the
 * same names (rule 2 of core/onnx/names.c). */
static gboolean
export_linear (NnicOnnxExporter *x, guint i, GError **error)
{
  NnicLinearSpec s;
  nnic_model_node_linear_spec (x->model, i, &s);
  if (nnic_graph_node (x->model, i)->shape_ndim == 1) {
    Onnx__NodeProto *n = nnic_onnx_export_weighted (x, "Gemm", i, s.no_bias, error);
    if (!n)
      return FALSE;
    nnic_onnx_export_attr_int (x, n, "transB", 1);
    return TRUE;
  }
  const char *name = nnic_model_node_name (x->model, i);
  g_autofree char *weight = nnic_onnx_param_name (name, "weight");
  g_autofree char *bias = nnic_onnx_param_name (name, "bias");
  if (!nnic_onnx_export_weight (x, name, weight, TRUE, error) ||
      (!s.no_bias && !nnic_onnx_export_param (x, bias, error)))
    return FALSE;
  const char *product = s.no_bias ? name : nnic_onnx_export_keep (x, g_strconcat (name, ".onnx_matmul", NULL));
  Onnx__NodeProto *mm = nnic_onnx_export_node (x, "MatMul", name, product);
  nnic_onnx_export_add_input (x, mm, nnic_onnx_export_input (x, i, 0));
  nnic_onnx_export_add_input (x, mm, weight);
  if (!s.no_bias) {
    g_autofree char *add_name = g_strconcat (name, ".onnx_add", NULL);
    Onnx__NodeProto *add = nnic_onnx_export_node (x, "Add", add_name, name);
    nnic_onnx_export_add_input (x, add, product);
    nnic_onnx_export_add_input (x, add, bias);
  }
  return TRUE;
}

/* The channels a Linear makes are its last axis. */
static int
linear_channel_axis (const NnicNode *node)
{
  return node->shape_ndim - 1;
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
  .channel_axis = linear_channel_axis,
  .onnx_ops = (const char *const[]) { "Gemm", "MatMul", NULL },
  .onnx_import = convert_gemm_or_matmul,
  .onnx_export = export_linear,
  /* on the last axis: k rows of a sample whose batch a Reshape merged are
   * rows like any other (and a MatMul of two values takes them as a
   * leading dimension, both merged alike) */
  .onnx_merged = NNIC_ONNX_MERGED_KEEP,
};
