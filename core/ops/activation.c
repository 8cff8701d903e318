/* ReLU, ReLU6 and Hardtanh (nn.ReLU, nn.ReLU6, nn.Hardtanh), elementwise on any shape. */
#include "core/ops/kernels.h"

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

const NnicOp nnic_op_relu = {
  .type = "ReLU",
  .setup = activation_setup,
  .reshape = NULL,
  .forward = relu_forward,
  .backward = relu_backward,
  .finalize = NULL,
  .channels = NNIC_CHANNELS_KEEP,
  .keeps_grid = TRUE,
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
};

gboolean
nnic_model_add_hardtanh (NnicModel *m, const char *name, const char *input, double min_val,
                         double max_val, GError **error)
{
  HardtanhSpec spec = { min_val, max_val };
  return nnic_graph_add_unary (m, name, input, &nnic_op_hardtanh, &spec, sizeof spec, error);
}
