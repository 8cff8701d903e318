/* ONNX import: the layers with weights or windows — Conv, Gemm, MatMul,
 * BatchNormalization, MaxPool, AveragePool, GlobalAveragePool. Weights are
 * copied from the file's tensors straight into the new node's parameters. */
#include "core/onnx/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef Onnx__NodeProto NP;

/* "[N, 3, 224, 224]" for a per-sample shape. */
static char *
full_shape (int nd, const int64_t *shape)
{
  g_autofree char *s = nnic_shape_to_string (nd, shape);
  return g_strdup_printf ("[N%s%s", nd ? ", " : "]", s + 1);
}

/* Input 0 as a graph value of per-sample rank `rank`. */
static OnnxValue *
input_of_rank (NnicOnnxImport *ctx, const NP *node, int rank, int64_t shape[NNIC_MAX_DIMS],
               GError **error)
{
  OnnxValue *v = nnic_onnx_input_node (ctx, node, 0, error);
  if (!v)
    return NULL;
  int nd = nnic_onnx_value_shape (ctx, v, shape);
  if (nd != rank) {
    g_autofree char *s = full_shape (nd, shape);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "nnic imports %s on %s inputs only; input '%s' is %s", node->op_type,
                          rank == 3 ? "4-D [N, C, H, W]" : "2-D [N, features]", v->name, s);
    return NULL;
  }
  return v;
}

static gboolean
const_dims (NnicOnnxImport *ctx, const NP *node, OnnxValue *v, int *nd, int64_t *shape,
            int64_t *numel, GError **error)
{
  if (!nnic_onnx_const_shape (ctx, v, nd, shape, numel, error)) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  return TRUE;
}

static gboolean
positive_int (NnicOnnxImport *ctx, const NP *node, const char *attr, int64_t v, gboolean zero_ok,
              GError **error)
{
  if (v < (zero_ok ? 0 : 1) || v > 1 << 20) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "%s value %" G_GINT64_FORMAT
                          " is out of range", attr, v);
    return FALSE;
  }
  return TRUE;
}

/* A 2-D window: kernel, strides, dilations and pads, with auto_pad
 * resolved against the input's height and width. */
typedef struct {
  int kh, kw, sh, sw, dh, dw;
  int pads[4]; /* top, left, bottom, right */
} Window;

static gboolean
window_attrs (NnicOnnxImport *ctx, const NP *node, const int64_t in_hw[2], int kh, int kw,
              Window *w, GError **error)
{
  const int64_t *strides, *dilations, *pads;
  size_t ns, nd, np;
  g_autofree char *auto_pad = NULL;
  if (!nnic_onnx_attr_ints (ctx, node, "strides", 2, &strides, &ns, error) ||
      !nnic_onnx_attr_ints (ctx, node, "dilations", 2, &dilations, &nd, error) ||
      !nnic_onnx_attr_ints (ctx, node, "pads", 4, &pads, &np, error) ||
      !nnic_onnx_attr_string (ctx, node, "auto_pad", "NOTSET", &auto_pad, error))
    return FALSE;
  *w = (Window) { .kh = kh, .kw = kw, .sh = 1, .sw = 1, .dh = 1, .dw = 1 };
  for (int i = 0; i < 2; i++) {
    if ((ns && !positive_int (ctx, node, "strides", strides[i], FALSE, error)) ||
        (nd && !positive_int (ctx, node, "dilations", dilations[i], FALSE, error)))
      return FALSE;
  }
  if (ns) {
    w->sh = (int) strides[0];
    w->sw = (int) strides[1];
  }
  if (nd) {
    w->dh = (int) dilations[0];
    w->dw = (int) dilations[1];
  }
  if (!strcmp (auto_pad, "NOTSET")) {
    for (int i = 0; np && i < 4; i++) {
      if (!positive_int (ctx, node, "pads", pads[i], TRUE, error))
        return FALSE;
      w->pads[i] = (int) pads[i];
    }
  } else if (!strcmp (auto_pad, "SAME_UPPER") || !strcmp (auto_pad, "SAME_LOWER")) {
    int k[2] = { kh, kw }, s[2] = { w->sh, w->sw }, d[2] = { w->dh, w->dw };
    for (int i = 0; i < 2; i++) {
      int64_t out = (in_hw[i] + s[i] - 1) / s[i];
      int64_t eff = (int64_t) (k[i] - 1) * d[i] + 1;
      int64_t total = MAX ((out - 1) * s[i] + eff - in_hw[i], 0);
      int64_t small = total / 2, big = total - small;
      gboolean upper = !strcmp (auto_pad, "SAME_UPPER");
      w->pads[i] = (int) (upper ? small : big);
      w->pads[i + 2] = (int) (upper ? big : small);
    }
  } else if (strcmp (auto_pad, "VALID") != 0) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "auto_pad '%s' is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER are)",
                          auto_pad);
    return FALSE;
  }
  return TRUE;
}


static char *
param_name (const char *node, const char *local)
{
  return g_strconcat (node, ".", local, NULL);
}

/* ---- Conv ---- */

static gboolean
convert_conv (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  static const char *const known[] = { "auto_pad", "dilations", "group", "kernel_shape", "pads",
                                       "strides", NULL };
  int64_t in[NNIC_MAX_DIMS];
  OnnxValue *x = nnic_onnx_attrs_known (ctx, node, known, error)
                     ? input_of_rank (ctx, node, 3, in, error) : NULL;
  OnnxValue *w = x ? nnic_onnx_input_const (ctx, node, 1, "weight", error) : NULL;
  if (!w)
    return FALSE;
  GError *local = NULL;
  OnnxValue *b = nnic_onnx_input_opt (ctx, node, 2, &local);
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  if (b && b->kind != ONNX_VALUE_CONST)
    return nnic_onnx_input_const (ctx, node, 2, "bias", error) != NULL;
  int wnd;
  int64_t ws[NNIC_MAX_DIMS], wn;
  if (!const_dims (ctx, node, w, &wnd, ws, &wn, error))
    return FALSE;
  if (wnd != 4) {
    g_autofree char *s = nnic_shape_to_string (wnd, ws);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "only 2-D convolutions are supported; the weight '%s' is %s", w->name, s);
    return FALSE;
  }
  int64_t group;
  const int64_t *ks;
  size_t nk;
  if (!nnic_onnx_attr_int (ctx, node, "group", 1, &group, error) ||
      !nnic_onnx_attr_ints (ctx, node, "kernel_shape", 2, &ks, &nk, error))
    return FALSE;
  if (nk && (ks[0] != ws[2] || ks[1] != ws[3])) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "kernel_shape [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                          "] does not match the weight's [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]",
                          ks[0], ks[1], ws[2], ws[3]);
    return FALSE;
  }
  if (!positive_int (ctx, node, "group", group, FALSE, error))
    return FALSE;
  if (ws[1] * group != in[0] || ws[0] % group != 0 || ws[0] > G_MAXINT || ws[2] > 1 << 20 ||
      ws[3] > 1 << 20 || ws[0] == 0 || ws[2] == 0 || ws[3] == 0) {
    g_autofree char *s = nnic_shape_to_string (wnd, ws);
    g_autofree char *xs = full_shape (3, in);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_SHAPE,
                          "the weight '%s' %s with group %" G_GINT64_FORMAT
                          " does not fit the input %s",
                          w->name, s, group, xs);
    return FALSE;
  }
  int nb;
  int64_t bs[NNIC_MAX_DIMS], bn;
  if (b && !const_dims (ctx, node, b, &nb, bs, &bn, error))
    return FALSE;
  if (b && (nb != 1 || bs[0] != ws[0])) {
    g_autofree char *s = nnic_shape_to_string (nb, bs);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_SHAPE,
                          "the bias '%s' is %s, not [%" G_GINT64_FORMAT "]", b->name, s, ws[0]);
    return FALSE;
  }
  Window win;
  if (!window_attrs (ctx, node, in + 1, (int) ws[2], (int) ws[3], &win, error))
    return FALSE;
  NnicConv2dSpec spec = {
    .in_channels = (int) in[0], .out_channels = (int) ws[0],
    .kernel_size = win.kh == win.kw ? win.kh : 0, .kernel_h = win.kh, .kernel_w = win.kw,
    .stride = win.sh, .stride_h = win.sh, .stride_w = win.sw,
    .dilation = win.dh, .dilation_h = win.dh, .dilation_w = win.dw,
    .groups = (int) group, .no_bias = b == NULL,
    .explicit_pads = TRUE, /* ONNX's pads: per side, within ONNX Runtime's limits */
  };
  memcpy (spec.pads, win.pads, sizeof spec.pads);
  if (!nnic_onnx_added (ctx, node, name, nnic_model_add_conv2d (ctx->m, name, x->node, &spec, error), error))
    return FALSE;
  g_autofree char *pw = param_name (name, "weight");
  g_autofree char *pb = param_name (name, "bias");
  return nnic_onnx_const_to_param (ctx, node, w, pw, FALSE, 1.0, error) &&
         (!b || nnic_onnx_const_to_param (ctx, node, b, pb, FALSE, 1.0, error));
}

/* ---- Gemm and MatMul: Linear ---- */

/* The bias of a Linear of `n` outputs from a constant of shape [n], [1, n],
 * [] or [1], times `scale`. */
static gboolean
linear_bias (NnicOnnxImport *ctx, const NP *node, OnnxValue *c, const char *name, int64_t n,
             double scale, GError **error)
{
  int nd;
  int64_t s[NNIC_MAX_DIMS], numel;
  if (!const_dims (ctx, node, c, &nd, s, &numel, error))
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
  g_autofree char *pb = param_name (name, "bias");
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
add_linear (NnicOnnxImport *ctx, const NP *node, const char *name, OnnxValue *x, OnnxValue *w,
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
  g_autofree char *pw = param_name (name, "weight");
  return nnic_onnx_const_to_param (ctx, node, w, pw, !w_is_nk, alpha, error);
}

/* The constant right operand of Gemm or MatMul: 2-D, and its K matches the input's. */
static gboolean
matrix (NnicOnnxImport *ctx, const NP *node, OnnxValue *w, gboolean nk, int64_t k_in,
        int64_t *n_out, GError **error)
{
  int nd;
  int64_t s[NNIC_MAX_DIMS], numel;
  if (!const_dims (ctx, node, w, &nd, s, &numel, error))
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
convert_gemm (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
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
  OnnxValue *x = input_of_rank (ctx, node, 1, in, error);
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
convert_matmul (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  int64_t in[NNIC_MAX_DIMS];
  OnnxValue *x = input_of_rank (ctx, node, 1, in, error);
  OnnxValue *w = x ? nnic_onnx_input_const (ctx, node, 1, "right operand", error) : NULL;
  if (!w || !nnic_onnx_attrs_known (ctx, node, (const char *const[]) { NULL }, error))
    return FALSE;
  int64_t out;
  int fused = ctx->fused_add[ctx->node_index];
  const NP *add = fused >= 0 ? ctx->graph->node[fused] : NULL;
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

/* ---- BatchNormalization ---- */

/* PyTorch's momentum from ONNX's (running = m * running + (1 - m) * batch,
 * so torch's is 1 - m), through the shortest decimal that gives the same
 * float, so that 0.9 gives 0.1 and not 0.10000002. */
static double
torch_momentum (float m)
{
  char buf[32];
  for (int p = 1; p <= 9; p++) {
    snprintf (buf, sizeof buf, "%.*g", p, (double) m);
    if ((float) g_ascii_strtod (buf, NULL) == m)
      break;
  }
  return 1.0 - g_ascii_strtod (buf, NULL);
}

static gboolean
convert_batchnorm (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  static const char *const known[] = { "epsilon", "momentum", "training_mode", "spatial", NULL };
  int64_t in[NNIC_MAX_DIMS];
  double eps, momentum;
  int64_t training_mode, spatial;
  if (!nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_float (ctx, node, "epsilon", 1e-5, &eps, error) ||
      !nnic_onnx_attr_float (ctx, node, "momentum", 0.9, &momentum, error) ||
      !nnic_onnx_attr_int (ctx, node, "training_mode", 0, &training_mode, error) ||
      !nnic_onnx_attr_int (ctx, node, "spatial", 1, &spatial, error))
    return FALSE;
  (void) training_mode; /* nnic_model_set_training() decides; the statistics are kept either way */
  if (spatial != 1) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED, "spatial=0 is not supported");
    return FALSE;
  }
  if (!(momentum >= 0.0 && momentum <= 1.0) || !(eps > 0.0) || !isfinite (eps)) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "epsilon %g must be positive and momentum %g in [0, 1]", eps, momentum);
    return FALSE;
  }
  /* [N, C, H, W] → BatchNorm2d, [N, C] → BatchNorm1d. */
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x)
    return FALSE;
  const int rank = nnic_onnx_value_shape (ctx, x, in);
  if (rank != 3 && rank != 1) {
    g_autofree char *s = full_shape (rank, in);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "nnic imports BatchNormalization on [N, C, H, W] and [N, C] inputs only; input '%s' is %s",
                          x->name, s);
    return FALSE;
  }
  if (!nnic_onnx_extra_outputs_unused (ctx, node, 1, error))
    return FALSE;
  static const char *const roles[] = { "scale", "bias (B)", "mean", "var" };
  static const char *const locals[] = { "weight", "bias", "running_mean", "running_var" };
  OnnxValue *p[4];
  for (int k = 0; k < 4; k++) {
    int nd;
    int64_t s[NNIC_MAX_DIMS], numel;
    if (!(p[k] = nnic_onnx_input_const (ctx, node, (size_t) k + 1, roles[k], error)) ||
        !const_dims (ctx, node, p[k], &nd, s, &numel, error))
      return FALSE;
    if (nd != 1 || s[0] != in[0]) {
      g_autofree char *ss = nnic_shape_to_string (nd, s);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_SHAPE,
                            "the %s '%s' is %s, not [%" G_GINT64_FORMAT "] (the input's channels)",
                            roles[k], p[k]->name, ss, in[0]);
      return FALSE;
    }
  }
  /* nnic's momentum 0 means "the default": a frozen average (ONNX momentum
   * 1) gets the smallest positive one instead. */
  double tm = torch_momentum ((float) momentum);
  NnicBatchNormSpec spec = { .num_features = (int) in[0], .eps = eps,
                             .momentum = tm > 0.0 ? tm : G_MINDOUBLE };
  if (!nnic_onnx_added (ctx, node, name,
              rank == 3 ? nnic_model_add_batchnorm2d (ctx->m, name, x->node, &spec, error)
                        : nnic_model_add_batchnorm1d (ctx->m, name, x->node, &spec, error),
              error))
    return FALSE;
  for (int k = 0; k < 4; k++) {
    g_autofree char *pn = param_name (name, locals[k]);
    if (!nnic_onnx_const_to_param (ctx, node, p[k], pn, FALSE, 1.0, error))
      return FALSE;
  }
  return TRUE;
}

/* ---- pooling ---- */

static gboolean
convert_pool (NnicOnnxImport *ctx, const NP *node, const char *name, gboolean is_max,
              GError **error)
{
  static const char *const known_max[] = { "auto_pad", "ceil_mode", "dilations", "kernel_shape",
                                           "pads", "storage_order", "strides", NULL };
  static const char *const known_avg[] = { "auto_pad", "ceil_mode", "count_include_pad",
                                           "kernel_shape", "pads", "strides", NULL };
  int64_t in[NNIC_MAX_DIMS];
  if (!nnic_onnx_attrs_known (ctx, node, is_max ? known_max : known_avg, error))
    return FALSE;
  OnnxValue *x = input_of_rank (ctx, node, 3, in, error);
  if (!x || !nnic_onnx_extra_outputs_unused (ctx, node, 1, error))
    return FALSE;
  const int64_t *ks;
  size_t nk;
  int64_t ceil_mode, storage_order, count_include_pad;
  if (!nnic_onnx_attr_ints (ctx, node, "kernel_shape", 2, &ks, &nk, error) ||
      !nnic_onnx_attr_int (ctx, node, "ceil_mode", 0, &ceil_mode, error) ||
      !nnic_onnx_attr_int (ctx, node, "storage_order", 0, &storage_order, error) ||
      !nnic_onnx_attr_int (ctx, node, "count_include_pad", 0, &count_include_pad, error))
    return FALSE;
  if (nk != 2) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "kernel_shape is missing");
    return FALSE;
  }
  if (!positive_int (ctx, node, "kernel_shape", ks[0], FALSE, error) ||
      !positive_int (ctx, node, "kernel_shape", ks[1], FALSE, error))
    return FALSE;
  if (storage_order != 0) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "storage_order=%" G_GINT64_FORMAT " is not supported", storage_order);
    return FALSE;
  }
  Window win;
  if (!window_attrs (ctx, node, in + 1, (int) ks[0], (int) ks[1], &win, error))
    return FALSE;
  if (win.dh != 1 || win.dw != 1) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "dilations [%d, %d] are not supported (only 1)", win.dh, win.dw);
    return FALSE;
  }
  NnicPool2dSpec spec = {
    .kernel_size = win.kh, .kernel_h = win.kh, .kernel_w = win.kw,
    .stride = win.sh, .stride_h = win.sh, .stride_w = win.sw,
    .explicit_pads = TRUE, /* ONNX's pads: per side, within ONNX Runtime's limits */
    .ceil_mode = ceil_mode != 0, .exclude_pad = !is_max && !count_include_pad,
  };
  memcpy (spec.pads, win.pads, sizeof spec.pads);
  gboolean ok = is_max ? nnic_model_add_maxpool2d (ctx->m, name, x->node, &spec, error)
                       : nnic_model_add_avgpool2d (ctx->m, name, x->node, &spec, error);
  return nnic_onnx_added (ctx, node, name, ok, error);
}

static gboolean
convert_maxpool (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  return convert_pool (ctx, node, name, TRUE, error);
}

static gboolean
convert_avgpool (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  return convert_pool (ctx, node, name, FALSE, error);
}

static gboolean
convert_global_avgpool (NnicOnnxImport *ctx, const NP *node, const char *name, GError **error)
{
  int64_t in[NNIC_MAX_DIMS];
  OnnxValue *x = nnic_onnx_attrs_known (ctx, node, (const char *const[]) { NULL }, error)
                     ? input_of_rank (ctx, node, 3, in, error) : NULL;
  return x && nnic_onnx_added (ctx, node, name,
                     nnic_model_add_adaptive_avgpool2d (ctx->m, name, x->node, 1, 1, error), error);
}

NnicOnnxConverter
nnic_onnx_layer_converter (const char *op)
{
  static const struct { const char *op; NnicOnnxConverter fn; } table[] = {
    { "Conv", convert_conv },
    { "Gemm", convert_gemm },
    { "MatMul", convert_matmul },
    { "BatchNormalization", convert_batchnorm },
    { "MaxPool", convert_maxpool },
    { "AveragePool", convert_avgpool },
    { "GlobalAveragePool", convert_global_avgpool },
  };
  for (guint i = 0; i < G_N_ELEMENTS (table); i++)
    if (!strcmp (table[i].op, op))
      return table[i].fn;
  return NULL;
}
