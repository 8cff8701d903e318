/* ReduceMean (ONNX ReduceMean-11..17, torch's x.mean(dims)): the mean
 * over some axes of the sample, keeping them as 1s or dropping them.
 *
 * setup groups the sample's axes into runs of reduced and kept ones and
 * numbers the input's rows (every axis but the last run): row r adds its
 * values into output element row_out[r] (the last run reduced: one sum
 * per row) or its output row (the last run kept: an elementwise add).
 * Both loops are contiguous. Samples are independent, so the forward's
 * threads split the batch; the backward writes each input row once, so
 * its threads split the rows. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <string.h>

typedef struct {
  int n_axes;
  int axes[NNIC_MAX_DIMS]; /* as given (batch = 0); setup makes them 1 .. ndim, sorted */
  gboolean keepdims;
} ReduceSpec;

typedef struct {
  int64_t *row_out;       /* per input row of a sample: its output offset */
  int64_t rows, len;      /* input rows per sample, their length (the last run) */
  gboolean last_reduced;  /* the last run is reduced: a row sums into one output */
  float scale;            /* 1 / the number of values each output averages */
} ReduceState;

static void
reduce_finalize (NnicNode *node)
{
  ReduceState *st = node->state;
  if (!st)
    return;
  g_free (st->row_out);
  g_clear_pointer (&node->state, g_free);
}

static gboolean
reduce_setup (NnicNode *node, GError **error)
{
  ReduceSpec *s = NODE_SPEC (node, ReduceSpec);
  const NnicNode *in = node->inputs[0];
  const int D = in->shape_ndim, nd = D + 1; /* with the batch */
  if (s->n_axes < 1 || s->n_axes > nd) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "%d axes: reducing every axis (none given) would reduce the batch; give 1 to %d "
              "of the sample's", s->n_axes, D);
    return FALSE;
  }
  gboolean reduced[NNIC_MAX_DIMS] = { FALSE };
  for (int k = 0; k < s->n_axes; k++) {
    const int given = s->axes[k], a = given < 0 ? given + nd : given;
    if (a < 0 || a >= nd) {
      op_error (node, error, NNIC_ERROR_ARGUMENT,
                "axis %d is out of range for %d dimensions (batch included): use -%d to %d",
                given, nd, nd, nd - 1);
      return FALSE;
    }
    if (a == 0) {
      op_error (node, error, NNIC_ERROR_ARGUMENT,
                "reducing axis %d, the batch, is not supported: the samples are independent",
                given);
      return FALSE;
    }
    if (reduced[a - 1]) {
      op_error (node, error, NNIC_ERROR_ARGUMENT, "axis %d is given twice", given);
      return FALSE;
    }
    reduced[a - 1] = TRUE;
  }
  s->n_axes = 0;
  for (int d = 0; d < D; d++)
    if (reduced[d])
      s->axes[s->n_axes++] = d + 1;

  /* The output shape and, per axis, the output stride (0 when reduced). */
  int64_t out_stride[NNIC_MAX_DIMS], count = 1, stride = 1;
  node->shape_ndim = 0;
  for (int d = 0; d < D; d++)
    if (!reduced[d] || s->keepdims)
      node->shape[node->shape_ndim++] = reduced[d] ? 1 : in->shape[d];
  for (int d = D - 1; d >= 0; d--) {
    out_stride[d] = reduced[d] ? 0 : stride;
    if (reduced[d])
      count *= in->shape[d];
    else
      stride *= in->shape[d];
  }
  if (count == 0) {
    op_error (node, error, NNIC_ERROR_SHAPE, "the mean of no values");
    return FALSE;
  }

  ReduceState *st = g_new0 (ReduceState, 1);
  node->state = st;
  int last = D - 1; /* the last run: axes last .. D-1 */
  while (last > 0 && reduced[last - 1] == reduced[D - 1])
    last--;
  st->last_reduced = reduced[D - 1];
  st->len = 1;
  for (int d = last; d < D; d++)
    st->len *= in->shape[d];
  st->rows = 1;
  for (int d = 0; d < last; d++)
    st->rows *= in->shape[d];
  st->scale = (float) (1.0 / (double) count);
  st->row_out = g_try_new (int64_t, MAX (st->rows, 1));
  if (!st->row_out) {
    op_error (node, error, NNIC_ERROR_MEMORY, "out of memory for %" G_GINT64_FORMAT " rows",
              st->rows);
    return FALSE;
  }
  for (int64_t r = 0; r < st->rows; r++) {
    int64_t rest = r, off = 0;
    for (int d = last - 1; d >= 0; d--) {
      off += (rest % in->shape[d]) * out_stride[d];
      rest /= in->shape[d];
    }
    st->row_out[r] = off;
  }
  return TRUE;
}

static void
reduce_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const ReduceState *st = node->state;
  const int64_t B = node->batch, in_sample = st->rows * st->len, out_sample = op_sample_numel (node);
  const float *x = node->inputs[0]->out->f32;
  float *y = node->out->f32;
#pragma omp parallel for schedule(static) if (B * in_sample > OP_PARALLEL_MIN)
  for (int64_t b = 0; b < B; b++) {
    float *restrict yb = y + b * out_sample;
    const float *xb = x + b * in_sample;
    memset (yb, 0, sizeof (float) * (size_t) out_sample);
    for (int64_t r = 0; r < st->rows; r++) {
      if (st->last_reduced)
        yb[st->row_out[r]] += op_sum (xb + r * st->len, st->len);
      else
        op_acc (yb + st->row_out[r], xb + r * st->len, st->len);
    }
    for (int64_t i = 0; i < out_sample; i++)
      yb[i] *= st->scale;
  }
}

static void
reduce_backward (NnicNode *node)
{
  if (!node->inputs[0]->gout)
    return;
  const ReduceState *st = node->state;
  const int64_t n = node->batch * st->rows, out_sample = op_sample_numel (node);
  const float *dy = node->gout->f32;
  float *dx = node->inputs[0]->gout->f32;
#pragma omp parallel for schedule(static) if (n * st->len > OP_PARALLEL_MIN)
  for (int64_t k = 0; k < n; k++) {
    const float *restrict g = dy + (k / st->rows) * out_sample + st->row_out[k % st->rows];
    float *restrict dxr = dx + k * st->len;
    if (st->last_reduced) {
      const float v = g[0] * st->scale;
      for (int64_t i = 0; i < st->len; i++)
        dxr[i] += v;
    } else {
      for (int64_t i = 0; i < st->len; i++)
        dxr[i] += g[i] * st->scale;
    }
  }
}

/* Channels (per-sample axis 0, ONNX axis 1) pass through unless reduced. */
static NnicChannelRule
reduce_channel_rule (const NnicNode *node)
{
  const ReduceSpec *s = NODE_SPEC (node, ReduceSpec);
  return s->axes[0] == 1 ? NNIC_CHANNELS_END : NNIC_CHANNELS_KEEP;
}

static gboolean
reduce_option (const NnicNode *node, const char *key, double *value)
{
  const ReduceSpec *s = NODE_SPEC (node, ReduceSpec);
  if (!strcmp (key, "keepdims"))
    *value = s->keepdims;
  else if (!strcmp (key, "n_axes"))
    *value = s->n_axes;
  else if (g_str_has_prefix (key, "axis") && g_ascii_isdigit (key[4]) && !key[5] &&
           key[4] - '0' < s->n_axes)
    *value = s->axes[key[4] - '0'];
  else
    return FALSE;
  return TRUE;
}

/* ---- ONNX ---- */

static gboolean
convert_reduce_mean (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                     GError **error)
{
  static const char *const known[] = { "axes", "keepdims", NULL };
  const int64_t *axes;
  size_t n_axes;
  int64_t keepdims;
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_ints (ctx, node, "axes", 0, &axes, &n_axes, error) ||
      !nnic_onnx_attr_int (ctx, node, "keepdims", 1, &keepdims, error))
    return FALSE;
  int64_t s[NNIC_MAX_DIMS];
  const int rank = nnic_onnx_value_shape (ctx, x, s) + 1;
  if (node->n_input > 1) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "axes is an attribute before opset 18, not an input");
    return FALSE;
  }
  /* No axes: all of them, the batch too. */
  gboolean batch = n_axes == 0;
  for (size_t k = 0; k < n_axes; k++) {
    if (axes[k] < -rank || axes[k] >= rank) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            "axis %" G_GINT64_FORMAT " is out of range for a rank-%d input",
                            axes[k], rank);
      return FALSE;
    }
    batch |= axes[k] == 0 || axes[k] == -rank;
  }
  if (batch) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "reducing the batch axis%s is not supported: the samples are "
                          "independent",
                          n_axes ? "" : " (no axes: all of them)");
    return FALSE;
  }
  int ax[NNIC_MAX_DIMS];
  for (size_t k = 0; k < n_axes; k++)
    ax[k] = (int) axes[k];
  return nnic_onnx_added (ctx, node, name,
                          nnic_model_add_reduce_mean (ctx->m, name, x->node, ax, (int) n_axes,
                                                      keepdims != 0, error),
                          error);
}

static gboolean
export_reduce_mean (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  const ReduceSpec *s = NODE_SPEC (nnic_graph_node (x->model, i), ReduceSpec);
  int64_t axes[NNIC_MAX_DIMS];
  for (int k = 0; k < s->n_axes; k++)
    axes[k] = s->axes[k];
  Onnx__NodeProto *n = nnic_onnx_export_simple (x, "ReduceMean", i);
  nnic_onnx_export_attr_ints (x, n, "axes", axes, (size_t) s->n_axes);
  nnic_onnx_export_attr_int (x, n, "keepdims", s->keepdims ? 1 : 0);
  return TRUE;
}

const NnicOp nnic_op_reduce_mean = {
  .type = "ReduceMean",
  .setup = reduce_setup,
  .forward = reduce_forward,
  .backward = reduce_backward,
  .finalize = reduce_finalize,
  .option = reduce_option,
  .channels = NNIC_CHANNELS_KEEP,
  .channel_rule = reduce_channel_rule,
  .keeps_grid = FALSE, /* a mean leaves the grid */
  .onnx_ops = (const char *const[]) { "ReduceMean", NULL },
  .onnx_import = convert_reduce_mean,
  .onnx_export = export_reduce_mean,
};

gboolean
nnic_model_add_reduce_mean (NnicModel *m, const char *name, const char *input, const int *axes,
                            int n_axes, gboolean keepdims, GError **error)
{
  ReduceSpec spec = { .n_axes = n_axes, .keepdims = keepdims };
  if (n_axes < 0 || n_axes > NNIC_MAX_DIMS || (n_axes > 0 && !axes)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: %d axes", name ? name : "ReduceMean",
                 n_axes);
    return FALSE;
  }
  for (int k = 0; k < n_axes; k++)
    spec.axes[k] = axes[k];
  return nnic_graph_add_unary (m, name, input, &nnic_op_reduce_mean, &spec, sizeof spec, error);
}
