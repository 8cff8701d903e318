/* Parameter: a trainable tensor as a node with no input (torch's
 * nn.Parameter used in arithmetic: ConvNeXt's layer_scale, ViT's
 * class_token and encoder.pos_embedding), and the ONNX Expand converter,
 * which makes one of `class_token.expand(n, -1, -1)`.
 *
 * The parameter keeps its state_dict name (the node's own) and shape
 * ([1, 50, 768]), so that checkpoints match torch's; the node outputs it
 * broadcast to its per-sample shape for every sample ([50, 768]), so that
 * the ops reading it see an ordinary [batch, ...] tensor. Backward sums the
 * gradient over the batch (and over the broadcast dimensions). */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <string.h>

extern const NnicOp nnic_op_parameter; /* below */

typedef struct {
  int ndim; /* the parameter's shape */
  int64_t shape[NNIC_MAX_DIMS];
  int out_ndim; /* per sample */
  int64_t out[NNIC_MAX_DIMS];
} ParameterSpec;

/* The parameter's element for element i of a sample (shape s[0..sn)),
 * the parameter aligned on the right. */
static int64_t
source_of (const ParameterSpec *p, int sn, const int64_t *s, int64_t i)
{
  int64_t src = 0, stride = 1;
  for (int d = sn - 1; d >= 0; d--) {
    const int64_t idx = i % s[d];
    i /= s[d];
    const int j = d - (sn - p->ndim);
    if (j < 0)
      continue;
    if (p->shape[j] != 1)
      src += idx * stride;
    stride *= p->shape[j];
  }
  return src;
}

static gboolean
parameter_setup (NnicNode *node, GError **error)
{
  const ParameterSpec *p = NODE_SPEC (node, ParameterSpec);
  node->shape_ndim = p->out_ndim;
  memcpy (node->shape, p->out, sizeof (int64_t) * (size_t) p->out_ndim);
  g_autofree char *ps = nnic_shape_to_string (p->ndim, p->shape);
  g_autofree char *ss = nnic_shape_to_string (node->shape_ndim, node->shape);
  if (node->n_inputs != 0) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "a Parameter takes no input");
    return FALSE;
  }
  /* [1, shape...], aligned on the right with the parameter's shape */
  gboolean fits = p->ndim <= node->shape_ndim + 1;
  for (int j = 0; fits && j < p->ndim; j++) {
    const int d = j - (p->ndim - node->shape_ndim);
    const int64_t want = d < 0 ? 1 : node->shape[d];
    fits = p->shape[j] == want || (p->shape[j] == 1 && want >= 1);
  }
  for (int d = 0; fits && d < node->shape_ndim; d++)
    fits = node->shape[d] >= 1;
  if (!fits) {
    op_error (node, error, NNIC_ERROR_SHAPE,
              "a parameter of shape %s does not broadcast to %s per sample (nor to [1, %s)",
              ps, ss, ss + 1);
    return FALSE;
  }
  return op_check_output (node, error) &&
         nnic_node_add_param (node, "", TRUE, p->ndim, p->shape, error);
}

static void
parameter_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const ParameterSpec *p = NODE_SPEC (node, ParameterSpec);
  const NnicTensor *v = node->pval[0];
  const int64_t sample = op_sample_numel (node);
  float *y = node->out->f32;
  if (v->numel == sample) {
    memcpy (y, v->f32, sizeof (float) * (size_t) sample);
  } else {
    for (int64_t i = 0; i < sample; i++)
      y[i] = v->f32[source_of (p, node->shape_ndim, node->shape, i)];
  }
  for (int64_t b = 1; b < node->batch; b++)
    memcpy (y + b * sample, y, sizeof (float) * (size_t) sample);
}

static void
parameter_backward (NnicNode *node)
{
  const ParameterSpec *p = NODE_SPEC (node, ParameterSpec);
  float *g = node->pgrad[0]->f32;
  const float *dy = node->gout->f32;
  const int64_t sample = op_sample_numel (node), B = node->batch;
  if (node->pgrad[0]->numel == sample) {
    /* a positional embedding's 150k floats: the threads split them in
     * pieces, each adds the batch's rows of its piece (contiguous loops) */
    const int64_t piece = 4096, pieces = (sample + piece - 1) / piece;
#pragma omp parallel for schedule(static) if (sample * B > OP_PARALLEL_MIN)
    for (int64_t t = 0; t < pieces; t++) {
      const int64_t i0 = t * piece, len = MIN (piece, sample - i0);
      for (int64_t b = 0; b < B; b++)
        op_acc (g + i0, dy + b * sample + i0, len);
    }
    return;
  }
  for (int64_t b = 0; b < B; b++)
    for (int64_t i = 0; i < sample; i++)
      g[source_of (p, node->shape_ndim, node->shape, i)] += dy[b * sample + i];
}

gboolean
nnic_parameter_matches (const NnicModel *m, guint i, int cn, const int64_t *cs, int sn,
                        const int64_t *s)
{
  const NnicNode *n = nnic_graph_node (m, i);
  if (n->op != &nnic_op_parameter)
    return FALSE;
  const ParameterSpec *p = NODE_SPEC (n, ParameterSpec);
  return p->ndim == cn && n->shape_ndim == sn &&
         !memcmp (p->shape, cs, sizeof (int64_t) * (size_t) cn) &&
         !memcmp (n->shape, s, sizeof (int64_t) * (size_t) sn);
}

gboolean
nnic_parameter_unbatched (const NnicModel *m, guint i)
{
  const NnicNode *n = nnic_graph_node (m, i);
  if (n->op != &nnic_op_parameter || i == m->output)
    return FALSE;
  gboolean read = FALSE;
  for (guint j = i + 1; j <= m->output; j++) {
    const NnicNode *c = nnic_graph_node (m, j);
    for (guint k = 0; k < c->n_inputs; k++) {
      if (c->inputs[k]->index != i)
        continue;
      /* broadcast against a tensor with the batch, which then leads the output */
      const NnicNode *other = c->n_inputs == 2 ? c->inputs[1 - k] : NULL;
      if (!nnic_op_broadcasts (c->op) || !other ||
          nnic_graph_node (m, other->index)->op == &nnic_op_parameter)
        return FALSE;
      read = TRUE;
    }
  }
  return read;
}

/* ---- ONNX ---- */

/* Expand's target shape: int64, 1-D. */
static const NnicTensor *
expand_shape (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error)
{
  OnnxValue *sv = nnic_onnx_input_const (ctx, node, 1, "shape", error);
  if (!sv)
    return NULL;
  const NnicTensor *st = nnic_onnx_const_tensor (ctx, sv, error);
  if (!st) {
    nnic_onnx_node_prefix (ctx, node, error);
    return NULL;
  }
  if (st->dtype != NNIC_DTYPE_I64 || st->ndim != 1 || st->numel > NNIC_MAX_DIMS) {
    g_autofree char *ss = nnic_shape_to_string (st->ndim, st->shape);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "the shape '%s' (%s %s) must be int64 [0..%d]", sv->name,
                          nnic_dtype_name (st->dtype), ss, NNIC_MAX_DIMS);
    return NULL;
  }
  return st;
}

/* "[N, 1, 768]" for an Expand shape (NNIC_ONNX_BATCH as N). */
static char *
shape_text (const NnicTensor *st)
{
  GString *g = g_string_new ("[");
  for (int64_t i = 0; i < st->numel; i++)
    if (st->i64[i] == NNIC_ONNX_BATCH)
      g_string_append_printf (g, "%sN", i ? ", " : "");
    else
      g_string_append_printf (g, "%s%" G_GINT64_FORMAT, i ? ", " : "", st->i64[i]);
  g_string_append_c (g, ']');
  return g_string_free (g, FALSE);
}

/* A constant expanded to [N, ...]: a Parameter of the constant's shape,
 * the rest of the target as its per-sample shape. */
static gboolean
expand_constant (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                 OnnxValue *c, const NnicTensor *st, GError **error)
{
  int cn;
  int64_t cs[NNIC_MAX_DIMS], numel, s[NNIC_MAX_DIMS];
  if (!nnic_onnx_const_dims (ctx, node, c, &cn, cs, &numel, error))
    return FALSE;
  g_autofree char *text = shape_text (st);
  g_autofree char *css = nnic_shape_to_string (cn, cs);
  const int sn = (int) st->numel - 1;
  gboolean fits = cn <= sn + 1 && (cn < sn + 1 || cs[0] == 1);
  for (int d = 0; fits && d < sn; d++) {
    const int64_t e = st->i64[d + 1];
    const int j = d - (sn - cn);
    const int64_t cd = j >= 0 ? cs[j] : 1;
    fits = e >= 1 && (cd == e || cd == 1 || e == 1);
    s[d] = cd == 1 ? e : cd;
  }
  if (!fits) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "expanding the constant '%s' %s to %s is not a broadcast over the "
                          "batch nnic can do",
                          c->name, css, text);
    return FALSE;
  }
  g_autofree char *pname = nnic_onnx_fresh_name (ctx, nnic_onnx_state_dict_name (c->name) ? c->name : name);
  if (!nnic_onnx_added (ctx, node, pname,
                        nnic_model_add_parameter (ctx->m, pname, cs, cn, s, sn, error), error))
    return FALSE;
  return nnic_onnx_const_to_param (ctx, node, c, pname, FALSE, 1.0, error);
}

/* A computed tensor expanded: the same value when nothing grows, else an
 * Expand node. The target keeps the batch first. */
static gboolean
expand_value (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, OnnxValue *x,
              const NnicTensor *st, GError **error)
{
  int64_t xs[NNIC_MAX_DIMS], s[NNIC_MAX_DIMS];
  const int xn = nnic_onnx_value_shape (ctx, x, xs);
  const int len = (int) st->numel;
  g_autofree char *text = shape_text (st);
  g_autofree char *xss = nnic_onnx_full_shape (xn, xs);
  if (len > xn + 1) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "expanding '%s' %s to %s puts new dimensions before the batch",
                          x->name, xss, text);
    return FALSE;
  }
  const int64_t b = len == xn + 1 ? st->i64[0] : 1;
  gboolean fits = b == NNIC_ONNX_BATCH || b == 1 || (ctx->batch > 0 && b == ctx->batch);
  for (int d = 0; fits && d < xn; d++) {
    const int j = d + 1 - (xn + 1 - len);
    const int64_t e = j >= 0 ? st->i64[j] : 1;
    fits = e >= 1 && (e == xs[d] || e == 1 || xs[d] == 1);
    s[d] = xs[d] == 1 ? e : xs[d];
  }
  if (!fits) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "expanding '%s' %s to %s is not a broadcast that keeps the batch",
                          x->name, xss, text);
    return FALSE;
  }
  if (!memcmp (s, xs, sizeof (int64_t) * (size_t) xn)) {
    nnic_onnx_set_output (ctx, node, 0, x->node); /* nothing grows */
    return TRUE;
  }
  return nnic_onnx_added (ctx, node, name,
                          nnic_model_add_expand (ctx->m, name, x->node, s, xn, error), error);
}

static gboolean
convert_expand (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                GError **error)
{
  OnnxValue *x = nnic_onnx_input (ctx, node, 0, error);
  const NnicTensor *st = x ? expand_shape (ctx, node, error) : NULL;
  if (!st || !nnic_onnx_no_attrs (ctx, node, error))
    return FALSE;
  if (x->kind == ONNX_VALUE_NODE)
    return expand_value (ctx, node, name, x, st, error);
  if (st->numel > 0 && st->i64[0] == NNIC_ONNX_BATCH)
    return expand_constant (ctx, node, name, x, st, error);
  /* a constant to a constant shape (the plan marks Expands that may reach
   * the batch size, but not every one of those does) */
  return nnic_onnx_fold (ctx, node, error);
}

/* The initializer, under the parameter's name; where a reader needs the
 * batch (a Concat, the model's output), Expand to [N, shape...] with N from
 * the input's Shape (what torch writes for class_token.expand(n, -1, -1),
 * and what the importer takes back as this node). */
static gboolean
export_parameter (NnicOnnxExporter *x, guint i, GError **error)
{
  const NnicNode *node = nnic_graph_node (x->model, i);
  const char *name = node->name;
  if (!nnic_onnx_export_param (x, name, error))
    return FALSE;
  if (nnic_parameter_unbatched (x->model, i))
    return TRUE; /* read as it is: the node's value is the initializer */
  char *shape = nnic_onnx_export_keep (x, g_strconcat (name, ".onnx_input_shape", NULL));
  char *batch = nnic_onnx_export_keep (x, g_strconcat (name, ".onnx_batch", NULL));
  char *first = nnic_onnx_export_keep (x, g_strconcat (name, ".onnx_first", NULL));
  char *dims = nnic_onnx_export_keep (x, g_strconcat (name, ".onnx_dims", NULL));
  char *target = nnic_onnx_export_keep (x, g_strconcat (name, ".onnx_expand_shape", NULL));
  char *out = nnic_onnx_export_keep (x, g_strconcat (name, ".expanded", NULL));
  nnic_onnx_export_add_input (x, nnic_onnx_export_node (x, "Shape", shape, shape), x->value[0]);
  Onnx__NodeProto *n = nnic_onnx_export_node (x, "Gather", batch, batch);
  nnic_onnx_export_add_input (x, n, shape);
  const int64_t zero = 0;
  nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_i64 (x, first, &zero, 1));
  n = nnic_onnx_export_node (x, "Concat", target, target);
  nnic_onnx_export_attr_int (x, n, "axis", 0);
  nnic_onnx_export_add_input (x, n, batch);
  nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_i64 (x, dims, node->shape,
                                                                   node->shape_ndim));
  n = nnic_onnx_export_node (x, "Expand", name, out);
  nnic_onnx_export_add_input (x, n, name);
  nnic_onnx_export_add_input (x, n, target);
  x->value[i] = out;
  return TRUE;
}

const NnicOp nnic_op_parameter = {
  .type = "Parameter",
  .setup = parameter_setup,
  .forward = parameter_forward,
  .backward = parameter_backward,
  .channels = NNIC_CHANNELS_END,
  .onnx_ops = (const char *const[]) { "Expand", NULL },
  .onnx_import = convert_expand,
  .onnx_export = export_parameter,
};

gboolean
nnic_model_add_parameter (NnicModel *m, const char *name, const int64_t *param_shape,
                          int param_ndim, const int64_t *shape, int ndim, GError **error)
{
  const char *label = name ? name : "Parameter";
  if (param_ndim < 0 || param_ndim > NNIC_MAX_DIMS || ndim < 0 || ndim >= NNIC_MAX_DIMS ||
      (param_ndim > 0 && !param_shape) || (ndim > 0 && !shape)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s: a Parameter has a shape of 0 to %d dimensions and a per-sample shape of "
                 "0 to %d",
                 label, NNIC_MAX_DIMS, NNIC_MAX_DIMS - 1);
    return FALSE;
  }
  ParameterSpec spec = { .ndim = param_ndim, .out_ndim = ndim };
  if (param_ndim > 0)
    memcpy (spec.shape, param_shape, sizeof (int64_t) * (size_t) param_ndim);
  if (ndim > 0)
    memcpy (spec.out, shape, sizeof (int64_t) * (size_t) ndim);
  return nnic_graph_add (m, name, &nnic_op_parameter, NULL, 0, &spec, sizeof spec, error);
}
