/* Pooling: MaxPool2d, AvgPool2d and AdaptiveAvgPool2d, with PyTorch's
 * output sizes (floor, or ceil_mode) and ONNX's per-axis kernels and
 * strides and per-side padding. Every output pixel reads one window of one
 * [H, W] plane, so the kernels loop over the B*C planes. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

extern const NnicOp nnic_op_maxpool2d;

#include <string.h>

#include <math.h>

typedef struct {
  int64_t BC, H, W, OH, OW;
  int64_t KH, KW, SH, SW;
  int64_t PT, PL, PB, PR; /* padding: top, left, bottom, right */
  gboolean exclude_pad;
} PoolGeom;

static PoolGeom
pool_geom (const NnicNode *node)
{
  const NnicNode *in = node->inputs[0];
  const NnicPool2dSpec *s = NODE_SPEC (node, NnicPool2dSpec);
  return (PoolGeom) {
    .BC = node->batch * in->shape[0], .H = in->shape[1], .W = in->shape[2],
    .OH = node->shape[1], .OW = node->shape[2],
    .KH = s->kernel_h, .KW = s->kernel_w, .SH = s->stride_h, .SW = s->stride_w,
    .PT = s->pads[0], .PL = s->pads[1], .PB = s->pads[2], .PR = s->pads[3],
    .exclude_pad = s->exclude_pad,
  };
}

/* Output size along one axis, as PyTorch's pooling_output_shape: floor or
 * ceil of (in + pads - k) / s, plus one; in ceil mode the last window must
 * start inside the input or the leading padding. */
static int64_t
pool_out_size (int64_t in, int64_t k, int64_t s, int64_t pad0, int64_t pad1, gboolean ceil_mode)
{
  const int64_t span = in + pad0 + pad1 - k; /* >= 0: checked by the caller */
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (ceil_mode && (out - 1) * s >= in + pad0)
    out--;
  return out;
}

/* Shared by max and average pooling: defaults, checks, output shape. The
 * per-axis fields and the pads are written back, so the spec reads as the
 * layer. */
static gboolean
pool_setup (NnicNode *node, GError **error)
{
  NnicPool2dSpec *s = NODE_SPEC (node, NnicPool2dSpec);
  if (!op_expect_image (node, 0, error))
    return FALSE;
  if (s->kernel_h == 0)
    s->kernel_h = s->kernel_size;
  if (s->kernel_w == 0)
    s->kernel_w = s->kernel_size;
  /* The stride defaults to the kernel size, axis by axis. */
  const int stride = s->stride;
  if (s->stride == 0)
    s->stride = s->kernel_size;
  if (s->stride_h == 0)
    s->stride_h = stride ? stride : s->kernel_h;
  if (s->stride_w == 0)
    s->stride_w = stride ? stride : s->kernel_w;
  if (s->kernel_h <= 0 || s->kernel_w <= 0 || s->stride_h <= 0 || s->stride_w <= 0 ||
      s->stride < 0 || s->padding < 0) {
    if (s->kernel_h == s->kernel_w && s->stride_h == s->stride_w)
      op_error (node, error, NNIC_ERROR_ARGUMENT,
                "kernel_size %d and stride %d must be positive and padding %d not negative",
                s->kernel_h, s->stride_h, s->padding);
    else
      op_error (node, error, NNIC_ERROR_ARGUMENT,
                "kernel_size %dx%d and stride %dx%d must be positive and padding %d not negative",
                s->kernel_h, s->kernel_w, s->stride_h, s->stride_w, s->padding);
    return FALSE;
  }
  if (s->explicit_pads) {
    /* ONNX Runtime's rule: a window never lies wholly in the padding. */
    if (s->pads[0] < 0 || s->pads[1] < 0 || s->pads[2] < 0 || s->pads[3] < 0 ||
        s->pads[0] >= s->kernel_h || s->pads[2] >= s->kernel_h || s->pads[1] >= s->kernel_w ||
        s->pads[3] >= s->kernel_w) {
      op_error (node, error, NNIC_ERROR_ARGUMENT,
                "pads (top %d, left %d, bottom %d, right %d) must not be negative and must be "
                "smaller than the %dx%d kernel",
                s->pads[0], s->pads[1], s->pads[2], s->pads[3], s->kernel_h, s->kernel_w);
      return FALSE;
    }
  } else {
    if (s->padding > s->kernel_h / 2 || s->padding > s->kernel_w / 2) {
      if (s->kernel_h == s->kernel_w)
        op_error (node, error, NNIC_ERROR_ARGUMENT,
                  "padding should be at most half of the kernel size, but got padding %d and "
                  "kernel_size %d",
                  s->padding, s->kernel_h);
      else
        op_error (node, error, NNIC_ERROR_ARGUMENT,
                  "padding should be at most half of the kernel size, but got padding %d and "
                  "kernel_size %dx%d",
                  s->padding, s->kernel_h, s->kernel_w);
      return FALSE;
    }
    for (int i = 0; i < 4; i++)
      s->pads[i] = s->padding;
  }
  const NnicNode *in = node->inputs[0];
  const int64_t ph = in->shape[1] + (int64_t) s->pads[0] + s->pads[2];
  const int64_t pw = in->shape[2] + (int64_t) s->pads[1] + s->pads[3];
  if (ph < s->kernel_h || pw < s->kernel_w) {
    g_autofree char *shape = nnic_shape_to_string (in->shape_ndim, in->shape);
    if (s->explicit_pads)
      op_error (node, error, NNIC_ERROR_SHAPE,
                "the %dx%d window does not fit the input %s with pads (top %d, left %d, "
                "bottom %d, right %d)",
                s->kernel_h, s->kernel_w, shape, s->pads[0], s->pads[1], s->pads[2], s->pads[3]);
    else
      op_error (node, error, NNIC_ERROR_SHAPE,
                "the %dx%d window does not fit the input %s with padding %d", s->kernel_h,
                s->kernel_w, shape, s->padding);
    return FALSE;
  }
  node->shape_ndim = 3;
  node->shape[0] = in->shape[0];
  node->shape[1] = pool_out_size (in->shape[1], s->kernel_h, s->stride_h, s->pads[0], s->pads[2],
                                  s->ceil_mode);
  node->shape[2] = pool_out_size (in->shape[2], s->kernel_w, s->stride_w, s->pads[1], s->pads[3],
                                  s->ceil_mode);
  return op_check_output (node, error);
}

/* ---- MaxPool2d ----
 * cache[0] (int32 [B, C, OH, OW]) holds where in its input plane each
 * maximum came from, so the backward is a scatter. */

static gboolean
maxpool_reshape (NnicNode *node, int64_t batch, GError **error)
{
  (void) batch;
  if (node->inputs[0]->shape[1] * node->inputs[0]->shape[2] > INT32_MAX) {
    op_error (node, error, NNIC_ERROR_SHAPE, "the input plane is too large");
    return FALSE;
  }
  return nnic_node_cache (node, 0, NNIC_DTYPE_I32, node->out->ndim, node->out->shape, error);
}

/* The window scan of PyTorch's kernel: the first maximum in row-major
 * order wins, and a NaN wins over everything (and a later NaN over it).
 * Padding never wins: it is only -inf, and windows always hold a pixel. */
static void
maxpool_plane (const PoolGeom *g, const float *restrict x, float *restrict y,
               int32_t *restrict idx)
{
  for (int64_t oh = 0; oh < g->OH; oh++) {
    int64_t h0 = oh * g->SH - g->PT, h1 = MIN (h0 + g->KH, g->H);
    h0 = MAX (h0, 0);
    for (int64_t ow = 0; ow < g->OW; ow++) {
      int64_t w0 = ow * g->SW - g->PL, w1 = MIN (w0 + g->KW, g->W);
      w0 = MAX (w0, 0);
      float best = -INFINITY;
      int64_t bi = h0 * g->W + w0;
      for (int64_t ih = h0; ih < h1; ih++)
        for (int64_t iw = w0; iw < w1; iw++) {
          float v = x[ih * g->W + iw];
          if (v > best || isnan (v)) {
            best = v;
            bi = ih * g->W + iw;
          }
        }
      y[oh * g->OW + ow] = best;
      idx[oh * g->OW + ow] = (int32_t) bi;
    }
  }
}

/* The common 2x2, stride 2, no padding case (LeNet, VGG): four loads and
 * three compares per output, same tie and NaN rules as above. Every window
 * lies inside the plane (no ceil-mode window hangs over its edge). */
static void
maxpool_plane_2x2 (const PoolGeom *g, const float *restrict x, float *restrict y,
                   int32_t *restrict idx)
{
  for (int64_t oh = 0; oh < g->OH; oh++) {
    const float *r0 = x + 2 * oh * g->W, *r1 = r0 + g->W;
    const int32_t base = (int32_t) (2 * oh * g->W);
    for (int64_t ow = 0; ow < g->OW; ow++) {
      float best = r0[2 * ow];
      int32_t bi = base + (int32_t) (2 * ow);
      float v = r0[2 * ow + 1];
      if (v > best || isnan (v)) {
        best = v;
        bi = base + (int32_t) (2 * ow + 1);
      }
      v = r1[2 * ow];
      if (v > best || isnan (v)) {
        best = v;
        bi = base + (int32_t) (g->W + 2 * ow);
      }
      v = r1[2 * ow + 1];
      if (v > best || isnan (v)) {
        best = v;
        bi = base + (int32_t) (g->W + 2 * ow + 1);
      }
      y[oh * g->OW + ow] = best;
      idx[oh * g->OW + ow] = bi;
    }
  }
}

static void
maxpool_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const PoolGeom g = pool_geom (node);
  const float *x = node->inputs[0]->out->f32;
  float *y = node->out->f32;
  int32_t *idx = node->cache[0]->i32;
  const gboolean fast = g.KH == 2 && g.KW == 2 && g.SH == 2 && g.SW == 2 && g.PT == 0 &&
                        g.PL == 0 && 2 * g.OH <= g.H && 2 * g.OW <= g.W;
#pragma omp parallel for schedule(static) if (g.BC * g.H * g.W > OP_PARALLEL_MIN)
  for (int64_t p = 0; p < g.BC; p++) {
    const float *xp = x + p * g.H * g.W;
    float *yp = y + p * g.OH * g.OW;
    int32_t *ip = idx + p * g.OH * g.OW;
    if (fast)
      maxpool_plane_2x2 (&g, xp, yp, ip);
    else
      maxpool_plane (&g, xp, yp, ip);
  }
}

static void
maxpool_backward (NnicNode *node)
{
  if (!node->inputs[0]->gout)
    return;
  const PoolGeom g = pool_geom (node);
  const float *dy = node->gout->f32;
  const int32_t *idx = node->cache[0]->i32;
  float *dx = node->inputs[0]->gout->f32;
  const int64_t n_out = g.OH * g.OW;
#pragma omp parallel for schedule(static) if (g.BC * g.H * g.W > OP_PARALLEL_MIN)
  for (int64_t p = 0; p < g.BC; p++) {
    float *dp = dx + p * g.H * g.W;
    for (int64_t j = 0; j < n_out; j++)
      dp[idx[p * n_out + j]] += dy[p * n_out + j];
  }
}

/* ---- ONNX ---- */

/* ---- pooling ---- */

static gboolean
convert_pool (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, gboolean is_max,
              GError **error)
{
  static const char *const known_max[] = { "auto_pad", "ceil_mode", "dilations", "kernel_shape",
                                           "pads", "storage_order", "strides", NULL };
  static const char *const known_avg[] = { "auto_pad", "ceil_mode", "count_include_pad",
                                           "kernel_shape", "pads", "strides", NULL };
  int64_t in[NNIC_MAX_DIMS];
  if (!nnic_onnx_attrs_known (ctx, node, is_max ? known_max : known_avg, error))
    return FALSE;
  OnnxValue *x = nnic_onnx_input_of_rank (ctx, node, 3, in, error);
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
  if (!nnic_onnx_positive_int (ctx, node, "kernel_shape", ks[0], FALSE, error) ||
      !nnic_onnx_positive_int (ctx, node, "kernel_shape", ks[1], FALSE, error))
    return FALSE;
  if (storage_order != 0) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "storage_order=%" G_GINT64_FORMAT " is not supported", storage_order);
    return FALSE;
  }
  NnicOnnxWindow win;
  if (!nnic_onnx_window_attrs (ctx, node, in + 1, (int) ks[0], (int) ks[1], &win, error))
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
convert_maxpool (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  return convert_pool (ctx, node, name, TRUE, error);
}

static gboolean
convert_avgpool (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  return convert_pool (ctx, node, name, FALSE, error);
}

static gboolean
convert_global_avgpool (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  int64_t in[NNIC_MAX_DIMS];
  OnnxValue *x = nnic_onnx_attrs_known (ctx, node, (const char *const[]) { NULL }, error)
                     ? nnic_onnx_input_of_rank (ctx, node, 3, in, error) : NULL;
  return x && nnic_onnx_added (ctx, node, name,
                     nnic_model_add_adaptive_avgpool2d (ctx->m, name, x->node, 1, 1, error), error);
}

static gboolean
export_pool (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  NnicPool2dSpec s;
  nnic_model_node_pool2d_spec (x->model, i, &s);
  const gboolean max = nnic_graph_node (x->model, i)->op == &nnic_op_maxpool2d;
  Onnx__NodeProto *n = nnic_onnx_export_simple (x, max ? "MaxPool" : "AveragePool", i);
  nnic_onnx_export_window (x, n, s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.pads);
  nnic_onnx_export_attr_int (x, n, "ceil_mode", s.ceil_mode ? 1 : 0);
  if (!max)
    nnic_onnx_export_attr_int (x, n, "count_include_pad", s.exclude_pad ? 0 : 1);
  return TRUE;
}

const NnicOp nnic_op_maxpool2d = {
  .type = "MaxPool2d",
  .setup = pool_setup,
  .reshape = maxpool_reshape,
  .forward = maxpool_forward,
  .backward = maxpool_backward,
  .finalize = NULL,
  .channels = NNIC_CHANNELS_KEEP,
  .keeps_grid = TRUE,
  .onnx_ops = (const char *const[]) { "MaxPool", NULL },
  .onnx_import = convert_maxpool,
  .onnx_export = export_pool,
};

gboolean
nnic_model_add_maxpool2d (NnicModel *m, const char *name, const char *input,
                          const NnicPool2dSpec *spec, GError **error)
{
  return nnic_graph_add_unary (m, name, input, &nnic_op_maxpool2d, spec, sizeof *spec, error);
}

/* ---- AvgPool2d ----
 * The divisor, as PyTorch's: with count_include_pad (the default) the
 * window's cells inside the padded input, padding included, but not the
 * part of a ceil-mode window hanging past the padded input; with
 * exclude_pad only its cells inside the input. */

typedef struct {
  int64_t h0, h1, w0, w1; /* the window clipped to the input */
  float inv_count;
} AvgWindow;

static AvgWindow
avg_window (const PoolGeom *g, int64_t oh, int64_t ow)
{
  int64_t h0 = oh * g->SH - g->PT, w0 = ow * g->SW - g->PL;
  int64_t h1 = MIN (h0 + g->KH, g->H + g->PB), w1 = MIN (w0 + g->KW, g->W + g->PR);
  AvgWindow a = {
    .h0 = MAX (h0, 0), .h1 = MIN (h1, g->H), .w0 = MAX (w0, 0), .w1 = MIN (w1, g->W),
  };
  int64_t count = g->exclude_pad ? (a.h1 - a.h0) * (a.w1 - a.w0) : (h1 - h0) * (w1 - w0);
  a.inv_count = count > 0 ? 1.0f / (float) count : 0.0f;
  return a;
}

static void
avgpool_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const PoolGeom g = pool_geom (node);
  const float *x = node->inputs[0]->out->f32;
  float *y = node->out->f32;
#pragma omp parallel for schedule(static) if (g.BC * g.H * g.W > OP_PARALLEL_MIN)
  for (int64_t p = 0; p < g.BC; p++) {
    const float *xp = x + p * g.H * g.W;
    float *yp = y + p * g.OH * g.OW;
    for (int64_t oh = 0; oh < g.OH; oh++)
      for (int64_t ow = 0; ow < g.OW; ow++) {
        AvgWindow w = avg_window (&g, oh, ow);
        float sum = 0.0f;
        for (int64_t ih = w.h0; ih < w.h1; ih++)
          for (int64_t iw = w.w0; iw < w.w1; iw++)
            sum += xp[ih * g.W + iw];
        yp[oh * g.OW + ow] = sum * w.inv_count;
      }
  }
}

static void
avgpool_backward (NnicNode *node)
{
  if (!node->inputs[0]->gout)
    return;
  const PoolGeom g = pool_geom (node);
  const float *dy = node->gout->f32;
  float *dx = node->inputs[0]->gout->f32;
#pragma omp parallel for schedule(static) if (g.BC * g.H * g.W > OP_PARALLEL_MIN)
  for (int64_t p = 0; p < g.BC; p++) {
    float *dp = dx + p * g.H * g.W;
    const float *gp = dy + p * g.OH * g.OW;
    for (int64_t oh = 0; oh < g.OH; oh++)
      for (int64_t ow = 0; ow < g.OW; ow++) {
        AvgWindow w = avg_window (&g, oh, ow);
        float d = gp[oh * g.OW + ow] * w.inv_count;
        for (int64_t ih = w.h0; ih < w.h1; ih++)
          for (int64_t iw = w.w0; iw < w.w1; iw++)
            dp[ih * g.W + iw] += d;
      }
  }
}

const NnicOp nnic_op_avgpool2d = {
  .type = "AvgPool2d",
  .setup = pool_setup,
  .reshape = NULL,
  .forward = avgpool_forward,
  .backward = avgpool_backward,
  .finalize = NULL,
  .channels = NNIC_CHANNELS_KEEP,
  .onnx_ops = (const char *const[]) { "AveragePool", NULL },
  .onnx_import = convert_avgpool,
  .onnx_export = export_pool,
};

gboolean
nnic_model_add_avgpool2d (NnicModel *m, const char *name, const char *input,
                          const NnicPool2dSpec *spec, GError **error)
{
  return nnic_graph_add_unary (m, name, input, &nnic_op_avgpool2d, spec, sizeof *spec, error);
}

gboolean
nnic_model_node_pool2d_spec (const NnicModel *m, guint i, NnicPool2dSpec *spec)
{
  if (i >= m->nodes->len)
    return FALSE;
  const NnicNode *n = nnic_graph_node (m, i);
  if (n->op != &nnic_op_maxpool2d && n->op != &nnic_op_avgpool2d)
    return FALSE;
  *spec = *NODE_SPEC (n, NnicPool2dSpec);
  spec->explicit_pads = TRUE;
  return TRUE;
}

/* ---- AdaptiveAvgPool2d ----
 * Output pixel i of n covers input rows [floor(i*H/n), ceil((i+1)*H/n)):
 * PyTorch's bins, which may overlap when H is not a multiple of n. */

typedef struct {
  int out_h, out_w;
} AdaptiveSpec;

static gboolean
adaptive_setup (NnicNode *node, GError **error)
{
  const int out_h = NODE_SPEC (node, AdaptiveSpec)->out_h,
            out_w = NODE_SPEC (node, AdaptiveSpec)->out_w;
  if (!op_expect_image (node, 0, error))
    return FALSE;
  if (out_h <= 0 || out_w <= 0) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "the output size must be positive, got %dx%d",
              out_h, out_w);
    return FALSE;
  }
  const NnicNode *in = node->inputs[0];
  node->shape_ndim = 3;
  node->shape[0] = in->shape[0];
  node->shape[1] = out_h;
  node->shape[2] = out_w;
  return op_check_output (node, error);
}

static inline int64_t
bin_start (int64_t i, int64_t in, int64_t out)
{
  return i * in / out;
}

static inline int64_t
bin_end (int64_t i, int64_t in, int64_t out)
{
  return ((i + 1) * in + out - 1) / out;
}

static void
adaptive_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const NnicNode *in = node->inputs[0];
  const int64_t BC = node->batch * in->shape[0], H = in->shape[1], W = in->shape[2];
  const int64_t OH = node->shape[1], OW = node->shape[2];
  const float *x = in->out->f32;
  float *y = node->out->f32;
  for (int64_t p = 0; p < BC; p++) {
    const float *xp = x + p * H * W;
    for (int64_t oh = 0; oh < OH; oh++) {
      int64_t h0 = bin_start (oh, H, OH), h1 = bin_end (oh, H, OH);
      for (int64_t ow = 0; ow < OW; ow++) {
        int64_t w0 = bin_start (ow, W, OW), w1 = bin_end (ow, W, OW);
        float sum = 0.0f;
        for (int64_t ih = h0; ih < h1; ih++)
          sum += op_sum (xp + ih * W + w0, w1 - w0);
        y[(p * OH + oh) * OW + ow] = sum / (float) ((h1 - h0) * (w1 - w0));
      }
    }
  }
}

static void
adaptive_backward (NnicNode *node)
{
  const NnicNode *in = node->inputs[0];
  if (!in->gout)
    return;
  const int64_t BC = node->batch * in->shape[0], H = in->shape[1], W = in->shape[2];
  const int64_t OH = node->shape[1], OW = node->shape[2];
  const float *dy = node->gout->f32;
  float *dx = in->gout->f32;
  for (int64_t p = 0; p < BC; p++) {
    float *dp = dx + p * H * W;
    for (int64_t oh = 0; oh < OH; oh++) {
      int64_t h0 = bin_start (oh, H, OH), h1 = bin_end (oh, H, OH);
      for (int64_t ow = 0; ow < OW; ow++) {
        int64_t w0 = bin_start (ow, W, OW), w1 = bin_end (ow, W, OW);
        float d = dy[(p * OH + oh) * OW + ow] / (float) ((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++)
            dp[ih * W + iw] += d;
      }
    }
  }
}

static gboolean
adaptive_option (const NnicNode *node, const char *key, double *value)
{
  const AdaptiveSpec *s = NODE_SPEC (node, AdaptiveSpec);
  if (!strcmp (key, "out_h"))
    *value = s->out_h;
  else if (!strcmp (key, "out_w"))
    *value = s->out_w;
  else
    return FALSE;
  return TRUE;
}

static gboolean
export_adaptive (NnicOnnxExporter *x, guint i, GError **error)
{
  NnicModel *m = x->model;
  const AdaptiveSpec *s = NODE_SPEC (nnic_graph_node (m, i), AdaptiveSpec);
  int64_t in[NNIC_MAX_DIMS];
  nnic_model_node_shape (m, nnic_model_node_input (m, i, 0), in);
  if (s->out_h == 1 && s->out_w == 1) {
    nnic_onnx_export_simple (x, "GlobalAveragePool", i);
  } else if (in[1] % s->out_h == 0 && in[2] % s->out_w == 0) {
    /* Windows that tile the input evenly: an ordinary average pool. */
    const int kh = (int) (in[1] / s->out_h), kw = (int) (in[2] / s->out_w);
    Onnx__NodeProto *n = nnic_onnx_export_simple (x, "AveragePool", i);
    nnic_onnx_export_window (x, n, kh, kw, kh, kw, (const int[4]) { 0, 0, 0, 0 });
  } else {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s (AdaptiveAvgPool2d): output %dx%d does not divide the input %" G_GINT64_FORMAT
                 "x%" G_GINT64_FORMAT "; ONNX has no adaptive pooling",
                 nnic_model_node_name (m, i), s->out_h, s->out_w, in[1], in[2]);
    return FALSE;
  }
  return TRUE;
}

const NnicOp nnic_op_adaptive_avgpool2d = {
  .type = "AdaptiveAvgPool2d",
  .setup = adaptive_setup,
  .reshape = NULL,
  .forward = adaptive_forward,
  .backward = adaptive_backward,
  .finalize = NULL,
  .option = adaptive_option,
  .channels = NNIC_CHANNELS_KEEP,
  .onnx_ops = (const char *const[]) { "GlobalAveragePool", NULL },
  .onnx_import = convert_global_avgpool,
  .onnx_export = export_adaptive,
};

gboolean
nnic_model_add_adaptive_avgpool2d (NnicModel *m, const char *name, const char *input, int out_h,
                                   int out_w, GError **error)
{
  AdaptiveSpec spec = { out_h, out_w };
  return nnic_graph_add_unary (m, name, input, &nnic_op_adaptive_avgpool2d, &spec, sizeof spec,
                               error);
}
