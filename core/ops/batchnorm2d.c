/* BatchNorm2d (nn.BatchNorm2d with track_running_stats=True).
 *
 * Training normalises with the batch statistics over (B, H, W) — biased
 * variance — and moves the running statistics towards them, with the
 * unbiased variance as PyTorch does. Evaluation uses the running statistics.
 * cache[0] [2, C] keeps the mean and 1/sqrt(var + eps) the forward used. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <stdio.h>

extern const NnicOp nnic_op_batchnorm2d;

#include <math.h>

/* Parameter indices; without affine there is no weight and bias and the
 * buffers move up by two. */
static int
bn_first_buffer (const NnicNode *node)
{
  return NODE_SPEC (node, NnicBatchNormSpec)->no_affine ? 0 : 2;
}

/* What BatchNorm2d and BatchNorm1d set up alike: PyTorch's defaults for
 * eps and momentum, their checks, num_features against the input's
 * channels (`what`: "channels" or "features"), and the parameters and
 * buffers in state_dict order with their values at construction. */
gboolean
nnic_batchnorm_setup_common (NnicNode *node, const char *what, GError **error)
{
  NnicBatchNormSpec *s = NODE_SPEC (node, NnicBatchNormSpec);
  if (s->eps == 0.0)
    s->eps = 1e-5;
  if (s->momentum == 0.0)
    s->momentum = 0.1;
  if (s->num_features <= 0) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "num_features must be positive, got %d",
              s->num_features);
    return FALSE;
  }
  if (!(s->eps > 0.0) || !isfinite (s->eps) || !(s->momentum >= 0.0 && s->momentum <= 1.0)) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "eps must be positive and momentum in [0, 1], got eps %g and momentum %g", s->eps,
              s->momentum);
    return FALSE;
  }
  const NnicNode *in = node->inputs[0];
  if (in->shape[0] != s->num_features) {
    op_error (node, error, NNIC_ERROR_SHAPE,
              "num_features %d does not match the input's %" G_GINT64_FORMAT " %s",
              s->num_features, in->shape[0], what);
    return FALSE;
  }
  int64_t cshape[1] = { s->num_features };
  int64_t scalar[1] = { 1 };
  if (!s->no_affine && (!nnic_node_add_param (node, "weight", TRUE, 1, cshape, error) ||
                        !nnic_node_add_param (node, "bias", TRUE, 1, cshape, error)))
    return FALSE;
  if (!nnic_node_add_param (node, "running_mean", FALSE, 1, cshape, error) ||
      !nnic_node_add_param (node, "running_var", FALSE, 1, cshape, error) ||
      !nnic_node_add_param (node, "num_batches_tracked", FALSE, 0, scalar, error))
    return FALSE;
  /* PyTorch's values at construction: weight 1, bias 0, running_mean 0,
   * running_var 1, num_batches_tracked 0. */
  if (!s->no_affine)
    nnic_tensor_fill (node->param[0], 1.0f);
  nnic_tensor_fill (node->param[bn_first_buffer (node) + 1], 1.0f);
  op_mode_state (node);
  return TRUE;
}

static gboolean
bn_setup (NnicNode *node, GError **error)
{
  if (!op_expect_image (node, 0, error))
    return FALSE;
  const NnicNode *in = node->inputs[0];
  node->shape_ndim = 3;
  for (int i = 0; i < 3; i++)
    node->shape[i] = in->shape[i];
  return nnic_batchnorm_setup_common (node, "channels", error);
}

static gboolean
bn_reshape (NnicNode *node, int64_t batch, GError **error)
{
  (void) batch;
  int64_t shape[2] = { 2, node->shape[0] };
  return nnic_node_cache (node, 0, NNIC_DTYPE_F32, 2, shape, error);
}

/* Sum over the batch of channel c's planes: x [B, C, HW]. */
static double
channel_sum (const float *x, int64_t B, int64_t C, int64_t HW, int64_t c)
{
  double s = 0.0;
  for (int64_t b = 0; b < B; b++)
    s += op_sum (x + (b * C + c) * HW, HW);
  return s;
}

/* Sum over channel c of (x - mean)^2. Eight partial sums per run keep
 * the loop vectorisable under strict IEEE rules; runs add up in double. */
static double
channel_sq (const float *x, int64_t B, int64_t C, int64_t HW, int64_t c, float mean)
{
  double t = 0.0;
  for (int64_t b = 0; b < B; b++) {
    const float *xp = x + (b * C + c) * HW;
    float a[8] = { 0 };
    int64_t i = 0;
    for (; i + 8 <= HW; i += 8)
      for (int j = 0; j < 8; j++) {
        float xc = xp[i + j] - mean;
        a[j] += xc * xc;
      }
    for (; i < HW; i++)
      t += (xp[i] - mean) * (xp[i] - mean);
    t += ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
  }
  return t;
}

/* Sums over channel c of dy and of dy * (x - mean), the same way. */
static void
channel_grad_sums (const float *x, const float *dy, int64_t B, int64_t C, int64_t HW, int64_t c,
                   float mean, double *s_dy, double *s_dyxc)
{
  double tdy = 0.0, tdyx = 0.0;
  for (int64_t b = 0; b < B; b++) {
    const float *xp = x + (b * C + c) * HW, *gp = dy + (b * C + c) * HW;
    float d[8] = { 0 }, e[8] = { 0 };
    int64_t i = 0;
    for (; i + 8 <= HW; i += 8)
      for (int j = 0; j < 8; j++) {
        d[j] += gp[i + j];
        e[j] += gp[i + j] * (xp[i + j] - mean);
      }
    for (; i < HW; i++) {
      tdy += gp[i];
      tdyx += gp[i] * (xp[i] - mean);
    }
    for (int j = 0; j < 8; j++) {
      tdy += d[j];
      tdyx += e[j];
    }
  }
  *s_dy = tdy;
  *s_dyxc = tdyx;
}

static void
bn_forward (NnicNode *node, gboolean training)
{
  const NnicBatchNormSpec *s = NODE_SPEC (node, NnicBatchNormSpec);
  const int64_t B = node->batch, C = node->shape[0], HW = node->shape[1] * node->shape[2];
  const int64_t n = B * HW;
  const float *x = node->inputs[0]->out->f32;
  float *y = node->out->f32;
  const float *w = s->no_affine ? NULL : node->pval[0]->f32;
  const float *bias = s->no_affine ? NULL : node->pval[1]->f32;
  int k = bn_first_buffer (node);
  float *saved_mean = node->cache[0]->f32, *saved_invstd = node->cache[0]->f32 + C;

  ((OpModeState *) node->state)->training = training;
  if (training) {
    /* The buffers themselves are updated, not a substitute of them. */
    float *rmean = node->param[k]->f32, *rvar = node->param[k + 1]->f32;
    const float mom = (float) s->momentum;
    for (int64_t c = 0; c < C; c++) {
      double mean = channel_sum (x, B, C, HW, c) / (double) n;
      double sq = channel_sq (x, B, C, HW, c, (float) mean);
      double var = sq / (double) n;
      /* n = 1 has no unbiased variance; PyTorch refuses the batch, we
       * cannot fail here and keep the biased one. */
      double unbiased = n > 1 ? sq / (double) (n - 1) : var;
      saved_mean[c] = (float) mean;
      saved_invstd[c] = (float) (1.0 / sqrt (var + s->eps));
      rmean[c] = (1.0f - mom) * rmean[c] + mom * (float) mean;
      rvar[c] = (1.0f - mom) * rvar[c] + mom * (float) unbiased;
    }
    node->param[k + 2]->f32[0] += 1.0f;
  } else {
    const float *rmean = node->pval[k]->f32, *rvar = node->pval[k + 1]->f32;
    for (int64_t c = 0; c < C; c++) {
      saved_mean[c] = rmean[c];
      saved_invstd[c] = (float) (1.0 / sqrt ((double) rvar[c] + s->eps));
    }
  }
  for (int64_t b = 0; b < B; b++)
    for (int64_t c = 0; c < C; c++) {
      const float mean = saved_mean[c];
      const float scale = saved_invstd[c] * (w ? w[c] : 1.0f);
      const float shift = bias ? bias[c] : 0.0f;
      const float *xp = x + (b * C + c) * HW;
      float *yp = y + (b * C + c) * HW;
      for (int64_t i = 0; i < HW; i++)
        yp[i] = (xp[i] - mean) * scale + shift;
    }
}

/* With xhat = (x - mean) * invstd and y = w * xhat + b:
 *   dw = sum(dy * xhat), db = sum(dy);
 *   training: mean and invstd depend on x, so
 *     dx = w * invstd * (dy - mean(dy) - xhat * mean(dy * xhat));
 *   evaluation: they are constants, dx = w * invstd * dy. */
static void
bn_backward (NnicNode *node)
{
  const NnicBatchNormSpec *s = NODE_SPEC (node, NnicBatchNormSpec);
  const int64_t B = node->batch, C = node->shape[0], HW = node->shape[1] * node->shape[2];
  const int64_t n = B * HW;
  const gboolean training = ((OpModeState *) node->state)->training;
  const float *x = node->inputs[0]->out->f32;
  const float *dy = node->gout->f32;
  float *dx = node->inputs[0]->gout ? node->inputs[0]->gout->f32 : NULL;
  const float *w = s->no_affine ? NULL : node->pval[0]->f32;
  float *dw = s->no_affine ? NULL : node->pgrad[0] ? node->pgrad[0]->f32 : NULL;
  float *db = s->no_affine ? NULL : node->pgrad[1] ? node->pgrad[1]->f32 : NULL;
  const float *saved_mean = node->cache[0]->f32, *saved_invstd = node->cache[0]->f32 + C;

  for (int64_t c = 0; c < C; c++) {
    const float mean = saved_mean[c], invstd = saved_invstd[c];
    double s_dy, s_dyxc;
    channel_grad_sums (x, dy, B, C, HW, c, mean, &s_dy, &s_dyxc);
    double s_dyxhat = s_dyxc * invstd;
    if (dw)
      dw[c] += (float) s_dyxhat;
    if (db)
      db[c] += (float) s_dy;
    if (!dx)
      continue;
    const float k = invstd * (w ? w[c] : 1.0f);
    /* dx = k * (dy - m_dy - (x - mean) * invstd * m_dyxhat) = k*dy - k*m_dy - (x - mean) * q */
    const float m_dy = training ? (float) (s_dy / (double) n) : 0.0f;
    const float q = training ? (float) (s_dyxhat / (double) n) * invstd * k : 0.0f;
    for (int64_t b = 0; b < B; b++) {
      const float *xp = x + (b * C + c) * HW, *gp = dy + (b * C + c) * HW;
      float *dp = dx + (b * C + c) * HW;
      for (int64_t i = 0; i < HW; i++)
        dp[i] += k * (gp[i] - m_dy) - (xp[i] - mean) * q;
    }
  }
}

gboolean
nnic_model_add_batchnorm2d (NnicModel *m, const char *name, const char *input,
                            const NnicBatchNormSpec *spec, GError **error)
{
  return nnic_graph_add_unary (m, name, input, &nnic_op_batchnorm2d, spec, sizeof *spec, error);
}

gboolean
nnic_model_node_batchnorm_spec (const NnicModel *m, guint i, NnicBatchNormSpec *spec)
{
  if (i >= m->nodes->len)
    return FALSE;
  const NnicNode *n = nnic_graph_node (m, i);
  if (n->op->init_params != nnic_init_batchnorm)
    return FALSE;
  *spec = *NODE_SPEC (n, NnicBatchNormSpec);
  return TRUE;
}

/* ---- ONNX ---- */

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
convert_batchnorm (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
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
    g_autofree char *s = nnic_onnx_full_shape (rank, in);
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
        !nnic_onnx_const_dims (ctx, node, p[k], &nd, s, &numel, error))
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
    g_autofree char *pn = nnic_onnx_param_name (name, locals[k]);
    if (!nnic_onnx_const_to_param (ctx, node, p[k], pn, FALSE, 1.0, error))
      return FALSE;
  }
  return TRUE;
}

/* BatchNormalization normalises over every axis but the second: on
 * BatchNorm1d's [N, C] input, that is the batch. */
gboolean
nnic_batchnorm_export (NnicOnnxExporter *x, guint i, GError **error)
{
  NnicModel *m = x->model;
  const char *name = nnic_model_node_name (m, i);
  NnicBatchNormSpec s;
  nnic_model_node_batchnorm_spec (m, i, &s);
  Onnx__NodeProto *n = nnic_onnx_export_node (x, "BatchNormalization", name, name);
  nnic_onnx_export_add_input (x, n, nnic_onnx_export_input (x, i, 0));
  if (s.no_affine) {
    /* ONNX always has scale and B: ones and zeros. */
    g_autofree float *ones = g_new (float, (gsize) s.num_features);
    g_autofree float *zeros = g_new0 (float, (gsize) s.num_features);
    for (int c = 0; c < s.num_features; c++)
      ones[c] = 1.0f;
    char *sn = nnic_onnx_export_keep (x, g_strconcat (name, ".onnx_scale", NULL));
    char *bn = nnic_onnx_export_keep (x, g_strconcat (name, ".onnx_bias", NULL));
    nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_f32 (x, sn, ones, s.num_features, FALSE));
    nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_f32 (x, bn, zeros, s.num_features, FALSE));
  }
  static const char *const locals[] = { "weight", "bias", "running_mean", "running_var" };
  for (guint k = s.no_affine ? 2 : 0; k < G_N_ELEMENTS (locals); k++) {
    g_autofree char *pn = g_strconcat (name, ".", locals[k], NULL);
    if (!nnic_onnx_export_param (x, pn, error))
      return FALSE;
    nnic_onnx_export_add_input (x, n, pn);
  }
  nnic_onnx_export_attr_float (x, n, "epsilon", (float) s.eps);
  /* ONNX's momentum weighs the running value, torch's the batch's. */
  nnic_onnx_export_attr_float (x, n, "momentum", (float) (1.0 - s.momentum));
  return TRUE;
}

const NnicOp nnic_op_batchnorm2d = {
  .type = "BatchNorm2d",
  .setup = bn_setup,
  .reshape = bn_reshape,
  .forward = bn_forward,
  .backward = bn_backward,
  .finalize = op_mode_finalize,
  .init_params = nnic_init_batchnorm,
  .channels = NNIC_CHANNELS_KEEP,
  .onnx_ops = (const char *const[]) { "BatchNormalization", NULL },
  .onnx_import = convert_batchnorm,
  .onnx_export = nnic_batchnorm_export,
};
