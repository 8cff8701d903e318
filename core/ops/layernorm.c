/* LayerNorm (nn.LayerNorm, ONNX LayerNormalization-17) over the last
 * normalized_ndim axes of each sample: the sample splits into ROWS rows
 * of D values, each normalised by its own mean and biased variance, then
 * scaled and shifted elementwise by weight and bias of the normalised
 * shape. torch's ViT, Swin, MaxViT and ConvNeXt (channels last, between
 * two permutes) use it over the last axis.
 *
 * The forward keeps each row's mean and 1/sqrt(var + eps) (cache[0] and
 * cache[1], as torch does) for the backward, which recomputes the
 * normalised input from the input rather than reading the output (a
 * forward hook may have changed that in place). The weight and bias
 * gradients sum over the rows: per thread first (scratch), then added. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"
#include "core/parallel.h"

#include <math.h>
#include <string.h>

static double
layernorm_eps (const NnicLayerNormSpec *s)
{
  return s->eps > 0 ? s->eps : 1e-5;
}

static int
layernorm_ndim (const NnicLayerNormSpec *s)
{
  return s->normalized_ndim > 0 ? s->normalized_ndim : 1;
}

static gboolean
layernorm_setup (NnicNode *node, GError **error)
{
  const NnicLayerNormSpec *s = NODE_SPEC (node, NnicLayerNormSpec);
  const NnicNode *in = node->inputs[0];
  const int k = layernorm_ndim (s);
  if (s->normalized_ndim < 0 || k > in->shape_ndim) {
    g_autofree char *shape = nnic_shape_to_string (in->shape_ndim, in->shape);
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "cannot normalise over the last %d dimensions of '%s' %s per sample (1 to %d; the "
              "batch is never normalised over)",
              s->normalized_ndim, in->name, shape, in->shape_ndim);
    return FALSE;
  }
  if (!(s->eps >= 0) || isinf (s->eps)) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "eps %g must be a positive number (0: 1e-5)", s->eps);
    return FALSE;
  }
  node->shape_ndim = in->shape_ndim;
  memcpy (node->shape, in->shape, sizeof (int64_t) * (size_t) in->shape_ndim);
  if (s->no_affine)
    return TRUE;
  const int64_t *pshape = in->shape + in->shape_ndim - k;
  if (!nnic_node_add_param (node, "weight", TRUE, k, pshape, error) ||
      (!s->no_bias && !nnic_node_add_param (node, "bias", TRUE, k, pshape, error)))
    return FALSE;
  nnic_tensor_fill (node->param[0], 1.0f); /* torch's construction values: 1 and 0 */
  return TRUE;
}

typedef struct {
  int64_t rows, D;
} LayerNormGeom;

static LayerNormGeom
layernorm_geom (const NnicNode *node)
{
  const int k = layernorm_ndim (NODE_SPEC (node, NnicLayerNormSpec));
  const int64_t D = nnic_shape_numel (k, node->shape + node->shape_ndim - k);
  return (LayerNormGeom) { node->batch * (op_sample_numel (node) / D), D };
}

static int
layernorm_threads (LayerNormGeom g)
{
  return g.rows > 1 && g.rows * g.D > OP_PARALLEL_MIN ? nnic_threads () : 1;
}

static gboolean
layernorm_reshape (NnicNode *node, int64_t batch, GError **error)
{
  (void) batch;
  const LayerNormGeom g = layernorm_geom (node);
  const int64_t shape[1] = { g.rows };
  if (!nnic_node_cache (node, 0, NNIC_DTYPE_F32, 1, shape, error) ||
      !nnic_node_cache (node, 1, NNIC_DTYPE_F32, 1, shape, error))
    return FALSE;
  /* per thread: the weight's and the bias's partial gradients */
  return node->n_params == 0 ||
         nnic_model_scratch (node->model, (size_t) (2 * g.D) * (size_t) layernorm_threads (g), error);
}

static void
layernorm_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const LayerNormGeom g = layernorm_geom (node);
  const float eps = (float) layernorm_eps (NODE_SPEC (node, NnicLayerNormSpec));
  const float *x = node->inputs[0]->out->f32;
  const float *w = node->n_params > 0 ? node->pval[0]->f32 : NULL;
  const float *b = node->n_params > 1 ? node->pval[1]->f32 : NULL;
  float *y = node->out->f32, *mean = node->cache[0]->f32, *rstd = node->cache[1]->f32;
  const int64_t D = g.D;
  const int threads = layernorm_threads (g);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t r = 0; r < g.rows; r++) {
    const float *restrict xr = x + r * D;
    float *restrict yr = y + r * D;
    const float mu = op_sum (xr, D) / (float) D;
    /* the variance from the centred values, kept in yr meanwhile */
    for (int64_t i = 0; i < D; i++)
      yr[i] = xr[i] - mu;
    float ss[8] = { 0 };
    int64_t i = 0;
    for (; i + 8 <= D; i += 8)
      for (int j = 0; j < 8; j++)
        ss[j] += yr[i + j] * yr[i + j];
    float var = 0.0f;
    for (; i < D; i++)
      var += yr[i] * yr[i];
    var += ((ss[0] + ss[4]) + (ss[1] + ss[5])) + ((ss[2] + ss[6]) + (ss[3] + ss[7]));
    const float rs = 1.0f / sqrtf (var / (float) D + eps);
    mean[r] = mu;
    rstd[r] = rs;
    if (w && b)
      for (int64_t k = 0; k < D; k++)
        yr[k] = yr[k] * rs * w[k] + b[k];
    else if (w)
      for (int64_t k = 0; k < D; k++)
        yr[k] = yr[k] * rs * w[k];
    else
      for (int64_t k = 0; k < D; k++)
        yr[k] *= rs;
  }
}

/* Per row, with xh = (x - mean) * rstd and g = dy * weight:
 * dx = rstd * (g - mean(g) - xh * mean(g * xh)); dweight += dy * xh and
 * dbias += dy over the rows. */
static void
layernorm_backward (NnicNode *node)
{
  const LayerNormGeom g = layernorm_geom (node);
  const int64_t D = g.D;
  const float *x = node->inputs[0]->out->f32, *dy = node->gout->f32;
  const float *mean = node->cache[0]->f32, *rstd = node->cache[1]->f32;
  const float *w = node->n_params > 0 ? node->pval[0]->f32 : NULL;
  float *dx = node->inputs[0]->gout ? node->inputs[0]->gout->f32 : NULL;
  float *dw = node->n_params > 0 && node->pgrad[0] ? node->pgrad[0]->f32 : NULL;
  float *db = node->n_params > 1 && node->pgrad[1] ? node->pgrad[1]->f32 : NULL;
  const int threads = layernorm_threads (g);
  float *part = dw || db ? nnic_model_scratch (node->model, (size_t) (2 * D) * (size_t) threads, NULL)
                         : NULL;
  if (part)
    memset (part, 0, sizeof (float) * (size_t) (2 * D) * (size_t) threads);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t r = 0; r < g.rows; r++) {
    const float *restrict xr = x + r * D, *restrict gr = dy + r * D;
    const float mu = mean[r], rs = rstd[r];
    if (part) {
      float *restrict pw = part + (size_t) (2 * D) * (size_t) nnic_thread_index (), *restrict pb = pw + D;
      for (int64_t k = 0; k < D; k++) {
        pw[k] += gr[k] * (xr[k] - mu) * rs;
        pb[k] += gr[k];
      }
    }
    if (!dx)
      continue;
    float sg = 0.0f, sgx = 0.0f;
    for (int64_t k = 0; k < D; k++) {
      const float gk = w ? gr[k] * w[k] : gr[k];
      sg += gk;
      sgx += gk * (xr[k] - mu) * rs;
    }
    const float mg = sg / (float) D, mgx = sgx / (float) D;
    float *restrict dr = dx + r * D;
    for (int64_t k = 0; k < D; k++) {
      const float gk = w ? gr[k] * w[k] : gr[k];
      dr[k] += rs * (gk - mg - (xr[k] - mu) * rs * mgx);
    }
  }
  for (int t = 0; part && t < threads; t++) {
    const float *pw = part + (size_t) (2 * D) * (size_t) t;
    if (dw)
      op_acc (dw, pw, D);
    if (db)
      op_acc (db, pw + D, D);
  }
}

static gboolean
layernorm_option (const NnicNode *node, const char *key, double *value)
{
  const NnicLayerNormSpec *s = NODE_SPEC (node, NnicLayerNormSpec);
  if (!strcmp (key, "eps"))
    *value = layernorm_eps (s);
  else if (!strcmp (key, "normalized_ndim"))
    *value = layernorm_ndim (s);
  else
    return FALSE;
  return TRUE;
}

/* ---- ONNX ---- */

/* Scale or B: a constant of the normalised shape (leading ones allowed). */
static OnnxValue *
affine_input (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k, const char *role,
              const int64_t *norm, int nk, GError **error)
{
  OnnxValue *v = nnic_onnx_input_const (ctx, node, k, role, error);
  int nd;
  int64_t s[NNIC_MAX_DIMS], numel;
  if (!v || !nnic_onnx_const_dims (ctx, node, v, &nd, s, &numel, error))
    return NULL;
  gboolean ok = nd >= nk;
  for (int i = 0; ok && i < nd; i++)
    ok = i < nd - nk ? s[i] == 1 : s[i] == norm[i - (nd - nk)];
  if (!ok) {
    g_autofree char *ss = nnic_shape_to_string (nd, s);
    g_autofree char *ns = nnic_shape_to_string (nk, norm);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the %s '%s' is %s; nnic takes the normalised shape %s", role, v->name,
                          ss, ns);
    return NULL;
  }
  return v;
}

static gboolean
convert_layernorm (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "axis", "epsilon", "stash_type", NULL };
  int64_t axis, stash, s[NNIC_MAX_DIMS];
  double eps;
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "axis", -1, &axis, error) ||
      !nnic_onnx_attr_float (ctx, node, "epsilon", 1e-5, &eps, error) ||
      !nnic_onnx_attr_int (ctx, node, "stash_type", 1, &stash, error) ||
      !nnic_onnx_extra_outputs_unused (ctx, node, 1, error))
    return FALSE;
  /* ONNX's axes: the batch's first, or the merged one of [N*k, ...] */
  int64_t dims[NNIC_MAX_DIMS + 1];
  const int nd = nnic_onnx_value_shape (ctx, x, s), rank = nnic_onnx_value_dims (ctx, x, dims);
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis >= rank) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "axis %" G_GINT64_FORMAT " is out of range for a rank-%d input", axis, rank);
    return FALSE;
  }
  if (axis == 0) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "axis 0 normalises over the batch dimension%s; nnic normalises each "
                          "sample alone (axis 1 or more)",
                          x->merged ? " (merged by a Reshape)" : "");
    return FALSE;
  }
  if (stash != 1) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "stash_type %" G_GINT64_FORMAT " is not supported (only 1: float32 "
                          "statistics)",
                          stash);
    return FALSE;
  }
  if (!(eps > 0) || isinf (eps)) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "epsilon %g is not supported (nnic takes a positive one)", eps);
    return FALSE;
  }
  const int k = rank - (int) axis; /* the normalised dimensions, the last of the sample */
  const int64_t *norm = s + nd - k;
  OnnxValue *w = affine_input (ctx, node, 1, "scale", norm, k, error);
  if (!w)
    return FALSE;
  GError *local = NULL;
  OnnxValue *b = nnic_onnx_input_opt (ctx, node, 2, &local);
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  if (b && !affine_input (ctx, node, 2, "bias", norm, k, error))
    return FALSE;
  NnicLayerNormSpec spec = { .normalized_ndim = k, .eps = eps, .no_bias = b == NULL };
  if (!nnic_onnx_added (ctx, node, name, nnic_model_add_layernorm (ctx->m, name, x->node, &spec, error),
                        error))
    return FALSE;
  g_autofree char *pw = nnic_onnx_param_name (name, "weight");
  g_autofree char *pb = nnic_onnx_param_name (name, "bias");
  return nnic_onnx_const_to_param (ctx, node, w, pw, FALSE, 1.0, error) &&
         (!b || nnic_onnx_const_to_param (ctx, node, b, pb, FALSE, 1.0, error));
}

/* LayerNormalization exists from opset 17 (the descriptor says so: the
 * export then writes opset 17). Without an affine part, Scale (required)
 * is a constant of ones. */
static gboolean
export_layernorm (NnicOnnxExporter *x, guint i, GError **error)
{
  const NnicNode *node = nnic_graph_node (x->model, i);
  const NnicLayerNormSpec *s = NODE_SPEC (node, NnicLayerNormSpec);
  const int k = layernorm_ndim (s);
  if (node->n_params == 0 && k != 1) {
    /* ONNX's Scale would have to be a ones tensor of the normalised shape */
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s: a LayerNorm without weight over %d dimensions has no ONNX export", node->name, k);
    return FALSE;
  }
  Onnx__NodeProto *n = nnic_onnx_export_simple (x, "LayerNormalization", i);
  if (node->n_params == 0) {
    const int64_t D = node->shape[node->shape_ndim - 1];
    g_autofree float *ones = g_new (float, D);
    for (int64_t j = 0; j < D; j++)
      ones[j] = 1.0f;
    char *sn = nnic_onnx_export_keep (x, g_strconcat (node->name, ".onnx_scale", NULL));
    nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_f32 (x, sn, ones, D, FALSE));
  }
  for (guint p = 0; p < node->n_params; p++) {
    g_autofree char *pn = nnic_onnx_param_name (node->name, node->param_local[p]);
    const char *v = nnic_onnx_export_param (x, pn, error);
    if (!v)
      return FALSE;
    nnic_onnx_export_add_input (x, n, v);
  }
  nnic_onnx_export_attr_int (x, n, "axis", -k);
  nnic_onnx_export_attr_float (x, n, "epsilon", (float) layernorm_eps (s));
  return TRUE;
}

/* The channel rule is KEEP: output element c is input element c,
 * normalised and scaled by weight[c], so the channel index survives; but
 * every channel's value depends on the row's mean and variance over all
 * of them. Masking a channel upstream (zeros in it) keeps the statistics
 * as the masked model computes them; removing the channel physically
 * changes D, the mean and the variance, so a shrunk model matches the
 * masked one only where the statistics are recomputed with the removed
 * channels' values (the zeros) counted, not by cutting weight and bias
 * alone. */
const NnicOp nnic_op_layernorm = {
  .type = "LayerNorm",
  .setup = layernorm_setup,
  .reshape = layernorm_reshape,
  .forward = layernorm_forward,
  .backward = layernorm_backward,
  .finalize = NULL,
  .init_params = nnic_init_batchnorm,
  .option = layernorm_option,
  .channels = NNIC_CHANNELS_KEEP,
  .onnx_ops = (const char *const[]) { "LayerNormalization", NULL },
  .onnx_import = convert_layernorm,
  .onnx_export = export_layernorm,
  .onnx_merged = NNIC_ONNX_MERGED_KEEP, /* the merged batch is never normalised over */
  .onnx_opset_min = 17,
};

gboolean
nnic_model_add_layernorm (NnicModel *m, const char *name, const char *input,
                          const NnicLayerNormSpec *spec, GError **error)
{
  const NnicLayerNormSpec plain = { 0 };
  return nnic_graph_add_unary (m, name, input, &nnic_op_layernorm, spec ? spec : &plain,
                               sizeof plain, error);
}
