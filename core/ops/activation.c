/* ReLU, ReLU6 and Hardtanh (nn.ReLU, nn.ReLU6, nn.Hardtanh), elementwise on any shape. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <math.h>

#include <string.h>

static gboolean
activation_setup (NnicNode *node, GError **error)
{
  (void) error;
  const NnicNode *in = node->inputs[0];
  node->shape_ndim = in->shape_ndim;
  for (int i = 0; i < in->shape_ndim; i++)
    node->shape[i] = in->shape[i];
  return TRUE;
}

/* Written as "x < 0 ? 0 : x" rather than a max so that NaN passes through,
 * as in PyTorch's clamp. */
static void
relu_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const float *restrict x = node->inputs[0]->out->f32;
  float *restrict y = node->out->f32;
  const int64_t n = node->out->numel;
#pragma omp parallel for schedule(static) if (n > OP_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++)
    y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

/* The gradient passes where the input is positive (threshold_backward).
 * Reads the input, not the output, because a forward hook may have
 * rewritten the output in place. */
static void
relu_backward (NnicNode *node)
{
  if (!node->inputs[0]->gout)
    return;
  const float *restrict x = node->inputs[0]->out->f32;
  const float *restrict dy = node->gout->f32;
  float *restrict dx = node->inputs[0]->gout->f32;
  const int64_t n = node->out->numel;
#pragma omp parallel for schedule(static) if (n > OP_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) {
    float g = dy[i]; /* loaded unconditionally, so the select vectorises */
    dx[i] += x[i] > 0.0f ? g : 0.0f;
  }
}

/* clamp(x, lo, hi) (ReLU6 and Hardtanh); NaN passes through, as in
 * PyTorch's clamp. */
static void
clamp_forward (NnicNode *node, float lo, float hi)
{
  const float *restrict x = node->inputs[0]->out->f32;
  float *restrict y = node->out->f32;
  const int64_t n = node->out->numel;
#pragma omp parallel for schedule(static) if (n > OP_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) {
    float v = x[i] < lo ? lo : x[i];
    y[i] = v > hi ? hi : v;
  }
}

/* The gradient passes strictly inside (lo, hi) (hardtanh_backward). */
static void
clamp_backward (NnicNode *node, float lo, float hi)
{
  if (!node->inputs[0]->gout)
    return;
  const float *restrict x = node->inputs[0]->out->f32;
  const float *restrict dy = node->gout->f32;
  float *restrict dx = node->inputs[0]->gout->f32;
  const int64_t n = node->out->numel;
#pragma omp parallel for schedule(static) if (n > OP_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) {
    float g = dy[i];
    dx[i] += (x[i] > lo) & (x[i] < hi) ? g : 0.0f;
  }
}

static void
relu6_forward (NnicNode *node, gboolean training)
{
  (void) training;
  clamp_forward (node, 0.0f, 6.0f);
}

static void
relu6_backward (NnicNode *node)
{
  clamp_backward (node, 0.0f, 6.0f);
}

/* ---- ONNX ---- */

static gboolean
convert_relu (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  return x && nnic_onnx_no_attrs (ctx, node, error) &&
         nnic_onnx_added (ctx, node, name, nnic_model_add_relu (ctx->m, name, x->node, error), error);
}

/* Clip's bound `k` (1: min, 2: max): an input from opset 11, an attribute before. */
static gboolean
clip_bound (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k, double def, double *out,
            GError **error)
{
  const char *attr = k == 1 ? "min" : "max";
  if (!nnic_onnx_attr_float (ctx, node, attr, def, out, error))
    return FALSE;
  GError *local = NULL;
  OnnxValue *v = nnic_onnx_input_opt (ctx, node, k, &local);
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  if (!v)
    return TRUE;
  if (v->kind != ONNX_VALUE_CONST)
    return nnic_onnx_input_const (ctx, node, k, attr, error) != NULL;
  if (!nnic_onnx_const_scalar (ctx, v, out, error)) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  return TRUE;
}

static gboolean
convert_clip (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "min", "max", NULL };
  double lo, hi;
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !clip_bound (ctx, node, 1, -INFINITY, &lo, error) ||
      !clip_bound (ctx, node, 2, INFINITY, &hi, error))
    return FALSE;
  if (isnan (lo) || isnan (hi) || lo > hi) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "min %g and max %g do not make an interval", lo, hi);
    return FALSE;
  }
  gboolean ok;
  if (lo == 0.0 && hi == 6.0)
    ok = nnic_model_add_relu6 (ctx->m, name, x->node, error);
  else if (lo == 0.0 && isinf (hi))
    ok = nnic_model_add_relu (ctx->m, name, x->node, error);
  else
    ok = nnic_model_add_hardtanh (ctx->m, name, x->node, lo, hi, error);
  return nnic_onnx_added (ctx, node, name, ok, error);
}

static gboolean
export_relu (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  nnic_onnx_export_simple (x, "Relu", i);
  return TRUE;
}

/* ReLU6 and Hardtanh: Clip with constant bounds. */
static gboolean
export_clip (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  double lo = 0.0, hi = 6.0;
  nnic_model_node_option (x->model, i, "min_val", &lo);
  nnic_model_node_option (x->model, i, "max_val", &hi);
  const char *name = nnic_model_node_name (x->model, i);
  Onnx__NodeProto *n = nnic_onnx_export_simple (x, "Clip", i);
  char *ln = nnic_onnx_export_keep (x, g_strconcat (name, ".onnx_min", NULL));
  char *hn = nnic_onnx_export_keep (x, g_strconcat (name, ".onnx_max", NULL));
  const float lof = (float) lo, hif = (float) hi;
  nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_f32 (x, ln, &lof, 1, TRUE));
  nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_f32 (x, hn, &hif, 1, TRUE));
  return TRUE;
}

const NnicOp nnic_op_relu = {
  .type = "ReLU",
  .setup = activation_setup,
  .reshape = NULL,
  .forward = relu_forward,
  .backward = relu_backward,
  .finalize = NULL,
  .channels = NNIC_CHANNELS_KEEP,
  .keeps_grid = TRUE,
  .onnx_ops = (const char *const[]) { "Relu", NULL },
  .onnx_import = convert_relu,
  .onnx_export = export_relu,
  .onnx_merged = NNIC_ONNX_MERGED_KEEP,
};

gboolean
nnic_model_add_relu (NnicModel *m, const char *name, const char *input, GError **error)
{
  return nnic_graph_add_unary (m, name, input, &nnic_op_relu, NULL, 0, error);
}

const NnicOp nnic_op_relu6 = {
  .type = "ReLU6",
  .setup = activation_setup,
  .reshape = NULL,
  .forward = relu6_forward,
  .backward = relu6_backward,
  .finalize = NULL,
  .channels = NNIC_CHANNELS_KEEP,
  .keeps_grid = TRUE,
  .onnx_export = export_clip,
  .onnx_merged = NNIC_ONNX_MERGED_KEEP,
};

gboolean
nnic_model_add_relu6 (NnicModel *m, const char *name, const char *input, GError **error)
{
  return nnic_graph_add_unary (m, name, input, &nnic_op_relu6, NULL, 0, error);
}

/* ---- Hardtanh (nn.Hardtanh, ONNX Clip): clamp(x, min_val, max_val) ---- */

typedef struct {
  double min_val, max_val;
} HardtanhSpec;

static gboolean
hardtanh_setup (NnicNode *node, GError **error)
{
  const double lo = NODE_SPEC (node, HardtanhSpec)->min_val,
               hi = NODE_SPEC (node, HardtanhSpec)->max_val;
  if (!(lo <= hi)) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "min_val %g must not be above max_val %g (nor either be NaN)", lo, hi);
    return FALSE;
  }
  return activation_setup (node, error);
}

static void
hardtanh_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const HardtanhSpec *s = NODE_SPEC (node, HardtanhSpec);
  clamp_forward (node, (float) s->min_val, (float) s->max_val);
}

static void
hardtanh_backward (NnicNode *node)
{
  const HardtanhSpec *s = NODE_SPEC (node, HardtanhSpec);
  clamp_backward (node, (float) s->min_val, (float) s->max_val);
}

static gboolean
hardtanh_option (const NnicNode *node, const char *key, double *value)
{
  const HardtanhSpec *s = NODE_SPEC (node, HardtanhSpec);
  if (!strcmp (key, "min_val"))
    *value = s->min_val;
  else if (!strcmp (key, "max_val"))
    *value = s->max_val;
  else
    return FALSE;
  return TRUE;
}

const NnicOp nnic_op_hardtanh = {
  .type = "Hardtanh",
  .setup = hardtanh_setup,
  .reshape = NULL,
  .forward = hardtanh_forward,
  .backward = hardtanh_backward,
  .finalize = NULL,
  .option = hardtanh_option,
  .channels = NNIC_CHANNELS_KEEP,
  .keeps_grid = TRUE,
  .onnx_ops = (const char *const[]) { "Clip", NULL },
  .onnx_import = convert_clip,
  .onnx_export = export_clip,
  .onnx_merged = NNIC_ONNX_MERGED_KEEP,
};

gboolean
nnic_model_add_hardtanh (NnicModel *m, const char *name, const char *input, double min_val,
                         double max_val, GError **error)
{
  HardtanhSpec spec = { min_val, max_val };
  return nnic_graph_add_unary (m, name, input, &nnic_op_hardtanh, &spec, sizeof spec, error);
}
