/* Softmax (nn.Softmax(dim), ONNX Softmax-13) along one axis of the sample.
 *
 * The sample's shape splits around the axis into [outer, D, inner]: each
 * of the outer*inner slices of D elements is normalised, with its maximum
 * subtracted first so that exp cannot overflow. With inner > 1 (softmax
 * over the channels of an image) a slice's elements are inner floats
 * apart; the kernels then go over D rows of `inner` contiguous floats at
 * once, keeping inner running maxima and sums, so that the loops stay
 * contiguous and vectorise.
 *
 * cache[0] keeps the output for the backward, which must not read
 * node->out: a forward hook may have changed it in place. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"
#include "core/parallel.h"

#include <math.h>
#include <string.h>

typedef struct {
  int axis; /* as given; setup normalises it to 1 .. per-sample ndim */
} SoftmaxSpec;

typedef struct {
  int64_t outer, D, inner; /* outer counts the batch too */
} SoftmaxGeom;

static SoftmaxGeom
softmax_geom (const NnicNode *node)
{
  const int axis = NODE_SPEC (node, SoftmaxSpec)->axis; /* 1 .. ndim of the sample */
  SoftmaxGeom g = { .outer = node->batch, .D = node->shape[axis - 1], .inner = 1 };
  for (int i = 0; i < axis - 1; i++)
    g.outer *= node->shape[i];
  for (int i = axis; i < node->shape_ndim; i++)
    g.inner *= node->shape[i];
  return g;
}

static gboolean
softmax_setup (NnicNode *node, GError **error)
{
  const NnicNode *in = node->inputs[0];
  const int given = NODE_SPEC (node, SoftmaxSpec)->axis, nd = in->shape_ndim + 1; /* with the batch */
  const int axis = given < 0 ? given + nd : given;
  if (axis < 0 || axis >= nd) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "axis %d is out of range for %d dimensions (batch included): use -%d to %d", given,
              nd, nd, nd - 1);
    return FALSE;
  }
  if (axis == 0) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "softmax along axis %d, the batch, is not supported: the samples are independent",
              given);
    return FALSE;
  }
  NODE_SPEC (node, SoftmaxSpec)->axis = axis;
  node->shape_ndim = in->shape_ndim;
  memcpy (node->shape, in->shape, sizeof (int64_t) * (size_t) in->shape_ndim);
  return TRUE;
}

static gboolean
softmax_reshape (NnicNode *node, int64_t batch, GError **error)
{
  (void) batch;
  const SoftmaxGeom g = softmax_geom (node);
  if (!nnic_node_cache (node, 0, NNIC_DTYPE_F32, node->out->ndim, node->out->shape, error))
    return FALSE;
  /* Per thread: the running maxima and sums of `inner` slices. */
  return g.inner == 1 ||
         nnic_model_scratch (node->model, (size_t) (2 * g.inner) * (size_t) nnic_threads (),
                             error) != NULL;
}

/* One block x, y [D, inner]: y = softmax along D. m and s have room for
 * `inner` floats each. A NaN anywhere in a slice makes the whole slice NaN,
 * as in PyTorch. */
static void
softmax_block (int64_t D, int64_t inner, const float *restrict x, float *restrict y,
               float *restrict m, float *restrict s)
{
  memcpy (m, x, sizeof (float) * (size_t) inner);
  for (int64_t d = 1; d < D; d++)
    for (int64_t i = 0; i < inner; i++) {
      float v = x[d * inner + i];
      m[i] = v > m[i] ? v : m[i];
    }
  memset (s, 0, sizeof (float) * (size_t) inner);
  for (int64_t d = 0; d < D; d++)
    for (int64_t i = 0; i < inner; i++) {
      float e = expf (x[d * inner + i] - m[i]);
      y[d * inner + i] = e;
      s[i] += e;
    }
  for (int64_t i = 0; i < inner; i++)
    s[i] = 1.0f / s[i];
  for (int64_t d = 0; d < D; d++)
    for (int64_t i = 0; i < inner; i++)
      y[d * inner + i] *= s[i];
}

/* One contiguous slice (inner == 1), the classifier's case. */
static void
softmax_row (int64_t D, const float *restrict x, float *restrict y)
{
  float m = x[0];
  for (int64_t d = 1; d < D; d++)
    m = x[d] > m ? x[d] : m;
  float s = 0.0f;
  for (int64_t d = 0; d < D; d++) {
    y[d] = expf (x[d] - m);
    s += y[d];
  }
  const float inv = 1.0f / s;
  for (int64_t d = 0; d < D; d++)
    y[d] *= inv;
}

static void
softmax_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const SoftmaxGeom g = softmax_geom (node);
  const float *x = node->inputs[0]->out->f32;
  float *y = node->cache[0]->f32;
  const int64_t block = g.D * g.inner;
  const int threads = nnic_threads ();
  float *scratch = g.inner > 1 ? nnic_model_scratch (node->model,
                                                     (size_t) (2 * g.inner) * (size_t) threads,
                                                     NULL)
                               : NULL;
#pragma omp parallel for schedule(static) num_threads(threads) \
  if (g.outer * block > OP_PARALLEL_MIN)
  for (int64_t o = 0; o < g.outer; o++) {
    if (g.inner == 1) {
      softmax_row (g.D, x + o * block, y + o * block);
    } else {
      float *m = scratch + (size_t) (2 * g.inner) * (size_t) nnic_thread_index ();
      softmax_block (g.D, g.inner, x + o * block, y + o * block, m, m + g.inner);
    }
  }
  memcpy (node->out->f32, y, nnic_tensor_nbytes (node->out));
}

/* dx = y * (dy - sum_d dy*y), slice by slice. */
static void
softmax_backward (NnicNode *node)
{
  if (!node->inputs[0]->gout)
    return;
  const SoftmaxGeom g = softmax_geom (node);
  const float *y = node->cache[0]->f32, *dy = node->gout->f32;
  float *dx = node->inputs[0]->gout->f32;
  const int64_t block = g.D * g.inner;
  const int threads = nnic_threads ();
  float *scratch = g.inner > 1 ? nnic_model_scratch (node->model,
                                                     (size_t) (2 * g.inner) * (size_t) threads,
                                                     NULL)
                               : NULL;
#pragma omp parallel for schedule(static) num_threads(threads) \
  if (g.outer * block > OP_PARALLEL_MIN)
  for (int64_t o = 0; o < g.outer; o++) {
    const float *restrict yo = y + o * block, *restrict go = dy + o * block;
    float *restrict xo = dx + o * block;
    if (g.inner == 1) {
      float dot = 0.0f;
      for (int64_t d = 0; d < g.D; d++)
        dot += go[d] * yo[d];
      for (int64_t d = 0; d < g.D; d++)
        xo[d] += yo[d] * (go[d] - dot);
    } else {
      float *restrict dot = scratch + (size_t) (2 * g.inner) * (size_t) nnic_thread_index ();
      memset (dot, 0, sizeof (float) * (size_t) g.inner);
      for (int64_t d = 0; d < g.D; d++)
        for (int64_t i = 0; i < g.inner; i++)
          dot[i] += go[d * g.inner + i] * yo[d * g.inner + i];
      for (int64_t d = 0; d < g.D; d++)
        for (int64_t i = 0; i < g.inner; i++)
          xo[d * g.inner + i] += yo[d * g.inner + i] * (go[d * g.inner + i] - dot[i]);
    }
  }
}

static gboolean
softmax_option (const NnicNode *node, const char *key, double *value)
{
  if (strcmp (key, "axis") != 0)
    return FALSE;
  *value = NODE_SPEC (node, SoftmaxSpec)->axis;
  return TRUE;
}

/* ---- ONNX ---- */

static gboolean
convert_softmax (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "axis", NULL };
  int64_t axis, s[NNIC_MAX_DIMS];
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "axis", ctx->opset >= 13 ? -1 : 1, &axis, error))
    return FALSE;
  /* ONNX's axes: the batch's first, or the merged one of [N*k, ...]
   * (attention scores of Swin's windows) */
  int64_t dims[NNIC_MAX_DIMS + 1];
  const int nd = nnic_onnx_value_shape (ctx, x, s), rank = nnic_onnx_value_dims (ctx, x, dims);
  if (axis < 0)
    axis += rank;
  if (axis < 1 || axis >= rank) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "axis %" G_GINT64_FORMAT " is not supported for a rank-%d input (the "
                          "batch dimension cannot be normalised over)",
                          axis, rank);
    return FALSE;
  }
  const int per = x->merged ? (int) axis : (int) axis - 1; /* the sample's axis */
  if (ctx->opset < 13) {
    /* Before opset 13, Softmax normalises over all dimensions from `axis`
     * on: the same as opset 13's only when those after it are all 1. */
    int64_t after = 1;
    for (int d = per + 1; d < nd; d++)
      after *= s[d];
    if (after != 1) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "axis %" G_GINT64_FORMAT " normalises over several dimensions before "
                            "opset 13, which nnic does not support",
                            axis);
      return FALSE;
    }
  }
  return nnic_onnx_added (ctx, node, name,
                nnic_model_add_softmax (ctx->m, name, x->node, per + 1, error), error);
}

static gboolean
export_softmax (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  const int axis = NODE_SPEC (nnic_graph_node (x->model, i), SoftmaxSpec)->axis;
  nnic_onnx_export_attr_int (x, nnic_onnx_export_simple (x, "Softmax", i), "axis", axis);
  return TRUE;
}

const NnicOp nnic_op_softmax = {
  .type = "Softmax",
  .setup = softmax_setup,
  .reshape = softmax_reshape,
  .forward = softmax_forward,
  .backward = softmax_backward,
  .finalize = NULL,
  .option = softmax_option,
  .onnx_ops = (const char *const[]) { "Softmax", NULL },
  .onnx_import = convert_softmax,
  .onnx_export = export_softmax,
  .onnx_merged = NNIC_ONNX_MERGED_KEEP, /* along a sample's axis: k rows stay k rows */
};

gboolean
nnic_model_add_softmax (NnicModel *m, const char *name, const char *input, int axis,
                        GError **error)
{
  SoftmaxSpec spec = { axis };
  return nnic_graph_add_unary (m, name, input, &nnic_op_softmax, &spec, sizeof spec, error);
}
