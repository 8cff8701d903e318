/* Pad (ONNX Pad-11 to 18's modes constant, reflect and edge; torch's
 * nn.ZeroPad2d, ConstantPad2d, ReflectionPad2d, ReplicationPad2d and the
 * Pad torch writes before an AveragePool that counts the padding).
 *
 * Pads are per sample axis, begin and end; a negative pad crops. Each
 * axis maps an output index to the input index it copies, or -1 for the
 * constant: j = o - begin' over the kept input range [s0, s0 + m) (what
 * the negative pads leave), reflected (period 2 (m - 1), as numpy and
 * ONNX's reference implementation), clamped (edge) or outside (constant).
 * setup builds those maps once, for the last axis, and for the rows (all
 * axes but the last) as input row offsets; forward copies each row's
 * middle in one memcpy. Backward adds each output's gradient to the input
 * element it came from: in reflect and edge modes several outputs read
 * one input, so the threads split the batch; in constant mode (one to
 * one) they split the rows. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <math.h>
#include <string.h>

typedef struct {
  int64_t *row_src;  /* per output row of a sample: the input row's offset, or -1 */
  int64_t *col_src;  /* per output column (last axis): the input column, or -1 */
  int64_t rows;      /* output rows per sample */
  int64_t lo, hi;    /* columns [lo, hi) copy input columns col_src[lo] on, in order */
} PadState;

static void
pad_finalize (NnicNode *node)
{
  PadState *st = node->state;
  if (!st)
    return;
  g_free (st->row_src);
  g_free (st->col_src);
  g_clear_pointer (&node->state, g_free);
}

/* The input index output index o of an axis reads: m kept input elements
 * from s0, `before` elements of padding before them. */
static int64_t
source_index (NnicPadMode mode, int64_t o, int64_t before, int64_t s0, int64_t m)
{
  int64_t j = o - before;
  if (j >= 0 && j < m)
    return s0 + j;
  switch (mode) {
  case NNIC_PAD_EDGE:
    return s0 + (j < 0 ? 0 : m - 1);
  case NNIC_PAD_REFLECT:
    if (m == 1)
      return s0;
    {
      const int64_t period = 2 * (m - 1);
      j %= period;
      if (j < 0)
        j += period;
      return s0 + (j >= m ? period - j : j);
    }
  case NNIC_PAD_CONSTANT:
  default:
    return -1;
  }
}

static const char *
mode_name (NnicPadMode mode)
{
  return mode == NNIC_PAD_REFLECT ? "reflect" : mode == NNIC_PAD_EDGE ? "edge" : "constant";
}

static gboolean
pad_setup (NnicNode *node, GError **error)
{
  const NnicPadSpec *s = NODE_SPEC (node, NnicPadSpec);
  const NnicNode *in = node->inputs[0];
  const int D = in->shape_ndim;
  if (s->mode != NNIC_PAD_CONSTANT && s->mode != NNIC_PAD_REFLECT && s->mode != NNIC_PAD_EDGE) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "unknown padding mode %d", (int) s->mode);
    return FALSE;
  }
  if (s->ndim != D || D < 1) {
    op_error (node, error, NNIC_ERROR_SHAPE,
              "the pads cover %d axes, but '%s' has %d per sample (the batch is never padded)",
              s->ndim, in->name, D);
    return FALSE;
  }
  if (s->mode == NNIC_PAD_CONSTANT && !isfinite (s->value)) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "the constant %g is not finite", s->value);
    return FALSE;
  }
  int64_t before[NNIC_MAX_DIMS], s0[NNIC_MAX_DIMS], m[NNIC_MAX_DIMS];
  for (int d = 0; d < D; d++) {
    const int64_t b = s->pads[d], e = s->pads[D + d], limit = NNIC_TENSOR_MAX_BYTES / 4;
    if (b < -limit || b > limit || e < -limit || e > limit) {
      op_error (node, error, NNIC_ERROR_SHAPE, "the pads of axis %d (%" G_GINT64_FORMAT ", %"
                G_GINT64_FORMAT ") are too large", d, b, e);
      return FALSE;
    }
    before[d] = MAX (b, 0);
    s0[d] = MAX (-b, 0);
    m[d] = in->shape[d] - s0[d] - MAX (-e, 0);
    node->shape[d] = m[d] + before[d] + MAX (e, 0);
    if (m[d] < 0 || node->shape[d] <= 0) {
      op_error (node, error, NNIC_ERROR_SHAPE,
                "the pads (%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ") leave nothing of axis %d "
                "(size %" G_GINT64_FORMAT ")", b, e, d, in->shape[d]);
      return FALSE;
    }
    if (m[d] == 0 && s->mode != NNIC_PAD_CONSTANT) {
      op_error (node, error, NNIC_ERROR_SHAPE,
                "%s padding of axis %d needs input values, but the pads crop all of it",
                mode_name (s->mode), d);
      return FALSE;
    }
  }
  node->shape_ndim = D;
  if (!op_check_output (node, error))
    return FALSE;

  PadState *st = g_new0 (PadState, 1);
  node->state = st;
  const int64_t W = node->shape[D - 1];
  st->col_src = g_new (int64_t, W);
  for (int64_t o = 0; o < W; o++)
    st->col_src[o] = source_index (s->mode, o, before[D - 1], s0[D - 1], m[D - 1]);
  st->lo = before[D - 1];
  st->hi = before[D - 1] + m[D - 1];
  st->rows = 1;
  for (int d = 0; d < D - 1; d++)
    st->rows *= node->shape[d];
  st->row_src = g_try_new (int64_t, st->rows);
  if (!st->row_src) {
    op_error (node, error, NNIC_ERROR_MEMORY, "out of memory for %" G_GINT64_FORMAT " rows",
              st->rows);
    return FALSE;
  }
  /* Row r's multi-index, last axis-but-one fastest; input strides in rows. */
  for (int64_t r = 0; r < st->rows; r++) {
    int64_t rest = r, src = 0, stride = in->shape[D - 1];
    for (int d = D - 2; d >= 0 && src >= 0; d--) {
      const int64_t o = rest % node->shape[d];
      rest /= node->shape[d];
      const int64_t i = source_index (s->mode, o, before[d], s0[d], m[d]);
      src = i < 0 ? -1 : src + i * stride;
      stride *= in->shape[d];
    }
    st->row_src[r] = src;
  }
  return TRUE;
}

OP_INLINE_COPIES
static void
pad_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const PadState *st = node->state;
  const float c = (float) NODE_SPEC (node, NnicPadSpec)->value;
  const int64_t W = node->shape[node->shape_ndim - 1];
  const int64_t in_sample = op_sample_numel (node->inputs[0]);
  const int64_t n = node->batch * st->rows;
  const float *x = node->inputs[0]->out->f32;
  float *y = node->out->f32;
#pragma omp parallel for schedule(static) if (n * W > OP_PARALLEL_MIN)
  for (int64_t k = 0; k < n; k++) {
    const int64_t b = k / st->rows, src = st->row_src[k % st->rows];
    float *restrict yr = y + k * W;
    if (src < 0) {
      for (int64_t o = 0; o < W; o++)
        yr[o] = c;
      continue;
    }
    const float *restrict xr = x + b * in_sample + src;
    for (int64_t o = 0; o < st->lo; o++)
      yr[o] = st->col_src[o] < 0 ? c : xr[st->col_src[o]];
    if (st->hi > st->lo)
      memcpy (yr + st->lo, xr + st->col_src[st->lo], sizeof (float) * (size_t) (st->hi - st->lo));
    for (int64_t o = st->hi; o < W; o++)
      yr[o] = st->col_src[o] < 0 ? c : xr[st->col_src[o]];
  }
}

/* Output row k's gradient into the input row it came from. */
static inline void
pad_backward_row (const PadState *st, int64_t W, const float *restrict dy, float *restrict dxr)
{
  for (int64_t o = 0; o < W; o++)
    if (st->col_src[o] >= 0)
      dxr[st->col_src[o]] += dy[o];
}

static void
pad_backward (NnicNode *node)
{
  if (!node->inputs[0]->gout)
    return;
  const PadState *st = node->state;
  const int64_t W = node->shape[node->shape_ndim - 1];
  const int64_t in_sample = op_sample_numel (node->inputs[0]);
  const int64_t B = node->batch;
  const float *dy = node->gout->f32;
  float *dx = node->inputs[0]->gout->f32;
  if (NODE_SPEC (node, NnicPadSpec)->mode == NNIC_PAD_CONSTANT) {
    const int64_t n = B * st->rows;
#pragma omp parallel for schedule(static) if (n * W > OP_PARALLEL_MIN)
    for (int64_t k = 0; k < n; k++) {
      const int64_t src = st->row_src[k % st->rows];
      if (src >= 0)
        pad_backward_row (st, W, dy + k * W, dx + (k / st->rows) * in_sample + src);
    }
    return;
  }
#pragma omp parallel for schedule(static) if (B * st->rows * W > OP_PARALLEL_MIN)
  for (int64_t b = 0; b < B; b++)
    for (int64_t r = 0; r < st->rows; r++)
      pad_backward_row (st, W, dy + (b * st->rows + r) * W, dx + b * in_sample + st->row_src[r]);
}

/* Channels (per-sample axis 0) pass through unless that axis is padded. */
static NnicChannelRule
pad_channel_rule (const NnicNode *node)
{
  const NnicPadSpec *s = NODE_SPEC (node, NnicPadSpec);
  return s->pads[0] == 0 && s->pads[s->ndim] == 0 ? NNIC_CHANNELS_KEEP : NNIC_CHANNELS_END;
}

/* Reflect and edge copy input values; a constant 0 is on every grid
 * (real 0 is the integer zero point, exactly); another constant is not. */
static gboolean
pad_grid_rule (const NnicNode *node)
{
  const NnicPadSpec *s = NODE_SPEC (node, NnicPadSpec);
  return s->mode != NNIC_PAD_CONSTANT || s->value == 0.0;
}

static gboolean
pad_option (const NnicNode *node, const char *key, double *value)
{
  const NnicPadSpec *s = NODE_SPEC (node, NnicPadSpec);
  if (!strcmp (key, "mode"))
    *value = s->mode;
  else if (!strcmp (key, "value"))
    *value = s->value;
  else
    return FALSE;
  return TRUE;
}

/* ---- ONNX ---- */

static gboolean
convert_pad (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "mode", NULL };
  g_autofree char *mode = NULL;
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_string (ctx, node, "mode", "constant", &mode, error))
    return FALSE;
  NnicPadSpec spec = { 0 };
  if (!strcmp (mode, "reflect")) {
    spec.mode = NNIC_PAD_REFLECT;
  } else if (!strcmp (mode, "edge")) {
    spec.mode = NNIC_PAD_EDGE;
  } else if (strcmp (mode, "constant") != 0) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "mode '%s' is not supported (constant, reflect and edge are)", mode);
    return FALSE;
  }
  int64_t s[NNIC_MAX_DIMS];
  const int nd = nnic_onnx_value_shape (ctx, x, s), rank = nd + 1;
  OnnxValue *p = nnic_onnx_input_const (ctx, node, 1, "pads", error);
  int pnd;
  int64_t pshape[NNIC_MAX_DIMS], numel, pads[2 * NNIC_MAX_DIMS];
  if (!p || !nnic_onnx_const_dims (ctx, node, p, &pnd, pshape, &numel, error))
    return FALSE;
  if (pnd != 1 || numel != 2 * rank) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "pads has %" G_GINT64_FORMAT " values; a rank-%d input needs %d", numel,
                          rank, 2 * rank);
    return FALSE;
  }
  if (!nnic_onnx_const_i64 (ctx, p, pads, numel, error)) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  if (pads[0] != 0 || pads[rank] != 0) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "padding the batch axis (pads %" G_GINT64_FORMAT " and %" G_GINT64_FORMAT
                          ") is not supported: the samples are independent",
                          pads[0], pads[rank]);
    return FALSE;
  }
  GError *local = NULL;
  OnnxValue *cv = nnic_onnx_input_opt (ctx, node, 2, &local);
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  if (cv && cv->kind != ONNX_VALUE_CONST)
    return nnic_onnx_input_const (ctx, node, 2, "constant_value", error) != NULL;
  if (cv && !nnic_onnx_const_scalar (ctx, cv, &spec.value, error)) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  gboolean all_zero = TRUE;
  spec.ndim = nd;
  for (int d = 0; d < nd; d++) {
    spec.pads[d] = pads[d + 1];
    spec.pads[nd + d] = pads[rank + d + 1];
    all_zero &= spec.pads[d] == 0 && spec.pads[nd + d] == 0;
  }
  /* No padding at all (torch's AvgPool2d writes one before every
   * AveragePool): the output is the input, with no node. */
  if (all_zero && node->n_output >= 1 && node->output[0] && *node->output[0]) {
    nnic_onnx_value_alias (ctx, node->output[0], x);
    return TRUE;
  }
  return nnic_onnx_added (ctx, node, name,
                          nnic_model_add_pad (ctx->m, name, x->node, &spec, error), error);
}

static gboolean
export_pad (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  const NnicPadSpec *s = NODE_SPEC (nnic_graph_node (x->model, i), NnicPadSpec);
  const char *name = nnic_model_node_name (x->model, i);
  Onnx__NodeProto *n = nnic_onnx_export_simple (x, "Pad", i);
  nnic_onnx_export_attr_string (x, n, "mode", mode_name (s->mode));
  /* The batch axis first, unpadded. */
  const int D = s->ndim;
  int64_t pads[2 * NNIC_MAX_DIMS] = { 0 };
  for (int d = 0; d < D; d++) {
    pads[1 + d] = s->pads[d];
    pads[D + 2 + d] = s->pads[D + d];
  }
  char *pn = nnic_onnx_export_keep (x, g_strconcat (name, ".pads", NULL));
  nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_i64 (x, pn, pads, 2 * (D + 1)));
  if (s->mode == NNIC_PAD_CONSTANT) {
    const float v = (float) s->value;
    char *vn = nnic_onnx_export_keep (x, g_strconcat (name, ".constant_value", NULL));
    nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_f32 (x, vn, &v, 1, TRUE));
  }
  return TRUE;
}

const NnicOp nnic_op_pad = {
  .type = "Pad",
  .setup = pad_setup,
  .forward = pad_forward,
  .backward = pad_backward,
  .finalize = pad_finalize,
  .option = pad_option,
  .channels = NNIC_CHANNELS_KEEP,
  .channel_rule = pad_channel_rule,
  .keeps_grid = TRUE,
  .grid_rule = pad_grid_rule,
  .onnx_ops = (const char *const[]) { "Pad", NULL },
  .onnx_import = convert_pad,
  .onnx_export = export_pad,
};

gboolean
nnic_model_add_pad (NnicModel *m, const char *name, const char *input, const NnicPadSpec *spec,
                    GError **error)
{
  if (!spec) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: Pad needs a spec",
                 name ? name : "Pad");
    return FALSE;
  }
  return nnic_graph_add_unary (m, name, input, &nnic_op_pad, spec, sizeof *spec, error);
}
