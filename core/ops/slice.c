/* Slice (x[:, a:b:s] on any axes but the batch, torch.flip, torch.narrow;
 * ONNX Slice) and ONNX Split (torch.split, torch.chunk), whose outputs
 * become one Slice node each. Per sample, a strided copy of the input; the
 * backward adds the gradient back at the same places (a slice never reads
 * an element twice). */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <string.h>

extern const NnicOp nnic_op_slice;

/* NODE_SPEC (node, SliceSpec): what was asked, with Python's and ONNX's
 * meaning: negative starts and ends count from the end, both are clamped
 * to the axis, a negative step walks backwards. */
typedef struct {
  int n;                   /* axes sliced; 0: a copy */
  int axes[NNIC_MAX_DIMS]; /* per-sample axes, distinct */
  int64_t starts[NNIC_MAX_DIMS], ends[NNIC_MAX_DIMS], steps[NNIC_MAX_DIMS];
} SliceSpec;

/* Per per-sample dimension of the input: where the slice starts and its
 * step (node->shape holds the counts). */
typedef struct {
  int64_t first[NNIC_MAX_DIMS], step[NNIC_MAX_DIMS];
} SliceRange;

static void
slice_range (const NnicNode *node, SliceRange *r)
{
  const SliceSpec *s = NODE_SPEC (node, SliceSpec);
  const NnicNode *in = node->inputs[0];
  for (int d = 0; d < in->shape_ndim; d++) {
    r->first[d] = 0;
    r->step[d] = 1;
  }
  for (int i = 0; i < s->n; i++) {
    int64_t count;
    const int a = s->axes[i];
    op_slice_axis (in->shape[a], s->starts[i], s->ends[i], s->steps[i], &r->first[a], &count);
    r->step[a] = s->steps[i];
  }
}

static gboolean
slice_setup (NnicNode *node, GError **error)
{
  const SliceSpec *s = NODE_SPEC (node, SliceSpec);
  const NnicNode *in = node->inputs[0];
  const int nd = in->shape_ndim;
  if (s->n < 0 || s->n > nd) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "%d axes to slice for an input of %d dimensions", s->n,
              nd);
    return FALSE;
  }
  gboolean seen[NNIC_MAX_DIMS] = { 0 };
  node->shape_ndim = nd;
  memcpy (node->shape, in->shape, sizeof (int64_t) * (size_t) nd);
  for (int i = 0; i < s->n; i++) {
    const int a = s->axes[i];
    if (a < 0 || a >= nd || seen[a] || s->steps[i] == 0) {
      g_autofree char *sh = nnic_shape_to_string (nd, in->shape);
      op_error (node, error, NNIC_ERROR_ARGUMENT,
                a < 0 || a >= nd ? "axis %d is not a dimension of '%s' %s (per sample)"
                : seen[a]        ? "axis %d of '%s' %s is sliced twice"
                                 : "the step along axis %d of '%s' %s is zero",
                a + 1, in->name, sh);
      return FALSE;
    }
    seen[a] = TRUE;
    int64_t first;
    op_slice_axis (in->shape[a], s->starts[i], s->ends[i], s->steps[i], &first, &node->shape[a]);
  }
  return op_check_output (node, error);
}

/* y[o] = x[at (o)] per sample (or, backward, dx[at (o)] += dy[o]). The
 * innermost dimension runs in a tight loop, a memcpy when its step is 1. */
static void
slice_copy (NnicNode *node, float *restrict x, float *restrict y, gboolean backward)
{
  const NnicNode *in = node->inputs[0];
  const int nd = in->shape_ndim;
  SliceRange r;
  slice_range (node, &r);
  int64_t in_stride[NNIC_MAX_DIMS], base = 0;
  for (int64_t d = nd - 1, s = 1; d >= 0; d--) {
    in_stride[d] = s;
    base += r.first[d] * s;
    s *= in->shape[d];
  }
  const int64_t in_sample = op_sample_numel (in), out_sample = op_sample_numel (node);
  const int64_t run = nd ? node->shape[nd - 1] : 1, run_step = nd ? r.step[nd - 1] : 1;
  if (out_sample == 0)
    return;
  for (int64_t b = 0; b < node->batch; b++) {
    float *xb = x + b * in_sample, *yb = y + b * out_sample;
    int64_t idx[NNIC_MAX_DIMS] = { 0 };
    for (int64_t o = 0; o < out_sample; o += run) {
      int64_t at = base;
      for (int d = 0; d + 1 < nd; d++)
        at += idx[d] * r.step[d] * in_stride[d];
      if (backward)
        for (int64_t i = 0; i < run; i++)
          xb[at + i * run_step] += yb[o + i];
      else if (run_step == 1)
        memcpy (yb + o, xb + at, sizeof (float) * (size_t) run);
      else
        for (int64_t i = 0; i < run; i++)
          yb[o + i] = xb[at + i * run_step];
      for (int d = nd - 2; d >= 0; d--) {
        if (++idx[d] < node->shape[d])
          break;
        idx[d] = 0;
      }
    }
  }
}

static void
slice_forward (NnicNode *node, gboolean training)
{
  (void) training;
  slice_copy (node, node->inputs[0]->out->f32, node->out->f32, FALSE);
}

static void
slice_backward (NnicNode *node)
{
  if (node->inputs[0]->gout)
    slice_copy (node, node->inputs[0]->gout->f32, node->gout->f32, TRUE);
}

/* Slicing the channels (axis 0 per sample) makes new ones; slicing the
 * other axes keeps them. */
static NnicChannelRule
slice_channels (const NnicNode *node)
{
  SliceRange r;
  slice_range (node, &r);
  const gboolean all = node->inputs[0]->shape_ndim == 0 || (r.first[0] == 0 && r.step[0] == 1 &&
                                                            node->shape[0] == node->inputs[0]->shape[0]);
  return all ? NNIC_CHANNELS_KEEP : NNIC_CHANNELS_END;
}

/* ---- ONNX ---- */

static gboolean
add_slice (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t out, const char *name,
           const OnnxValue *x, const SliceSpec *spec, GError **error)
{
  const char *in = x->node;
  if (!nnic_graph_add_named (ctx->m, name, &nnic_op_slice, &in, 1, spec, sizeof *spec, error)) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  nnic_onnx_set_output (ctx, node, out, name);
  nnic_onnx_set_merged (ctx, node, out, x->merged);
  return TRUE;
}

/* An integer list input of at most NNIC_MAX_DIMS + 1 values (NULL: absent). */
static gboolean
int_list (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k, const char *role,
          gboolean required, int64_t *v, int64_t *n, GError **error)
{
  *n = -1;
  GError *local = NULL;
  OnnxValue *c = nnic_onnx_input_opt (ctx, node, k, &local);
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  if (!c) {
    if (required)
      nnic_onnx_input (ctx, node, k, error); /* "input K is missing" */
    return !required;
  }
  if (!nnic_onnx_input_const (ctx, node, k, role, error))
    return FALSE;
  const NnicTensor *t = nnic_onnx_const_tensor (ctx, c, error);
  if (!t) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  if (t->dtype == NNIC_DTYPE_F32 || t->ndim > 1 || t->numel > NNIC_MAX_DIMS + 1) {
    g_autofree char *s = nnic_shape_to_string (t->ndim, t->shape);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "the %s '%s' is %s %s; a list of at most %d integers is needed", role,
                          node->input[k], nnic_dtype_name (t->dtype), s, NNIC_MAX_DIMS + 1);
    return FALSE;
  }
  for (int64_t i = 0; i < t->numel; i++)
    v[i] = t->dtype == NNIC_DTYPE_I64 ? t->i64[i] : (int64_t) nnic_onnx_tensor_element (t, i);
  *n = t->numel;
  return TRUE;
}

/* A slice of the batch dimension is taken when it keeps it whole. */
static gboolean
keeps_batch (NnicOnnxImport *ctx, int64_t start, int64_t end, int64_t step)
{
  return step == 1 && start == 0 && (end >= G_MAXINT32 || (ctx->batch > 0 && end >= ctx->batch));
}

static gboolean
convert_slice (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const roles[] = { "starts", "ends", "axes", "steps" };
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_no_attrs (ctx, node, error))
    return FALSE;
  int64_t v[4][NNIC_MAX_DIMS + 1], n[4];
  for (int k = 0; k < 4; k++)
    if (!int_list (ctx, node, (size_t) k + 1, roles[k], k < 2, v[k], &n[k], error))
      return FALSE;
  if (n[1] != n[0] || (n[2] >= 0 && n[2] != n[0]) || (n[3] >= 0 && n[3] != n[0])) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "starts, ends, axes and steps differ in length");
    return FALSE;
  }
  int64_t dims[NNIC_MAX_DIMS + 1];
  const int rank = nnic_onnx_value_dims (ctx, x, dims);
  SliceSpec spec = { 0 };
  for (int64_t i = 0; i < n[0]; i++) {
    const int64_t axis = n[2] >= 0 ? v[2][i] : i, step = n[3] >= 0 ? v[3][i] : 1;
    if (step == 0) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            "the step along axis %" G_GINT64_FORMAT " is zero", axis);
      return FALSE;
    }
    if ((axis == 0 || axis == -rank) && keeps_batch (ctx, v[0][i], v[1][i], step))
      continue;
    int a;
    if (!nnic_onnx_value_axis (ctx, node, 0, x, axis, &a, error))
      return FALSE;
    for (int j = 0; j < spec.n; j++)
      if (spec.axes[j] == a) {
        nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                              "axis %" G_GINT64_FORMAT " is sliced twice", axis);
        return FALSE;
      }
    spec.axes[spec.n] = a;
    spec.starts[spec.n] = v[0][i];
    spec.ends[spec.n] = v[1][i];
    spec.steps[spec.n++] = step;
  }
  return add_slice (ctx, node, 0, name, x, &spec, error);
}

/* torch.split and torch.chunk: the sizes given (an input from opset 13,
 * an attribute before), or equal parts; output k is a Slice. */
static gboolean
convert_split (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "axis", "split", NULL };
  int64_t axis;
  int a;
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_int (ctx, node, "axis", 0, &axis, error) ||
      !nnic_onnx_value_axis (ctx, node, 0, x, axis, &a, error))
    return FALSE;
  const size_t n_out = node->n_output;
  g_autofree int64_t *sizes = g_new0 (int64_t, MAX (n_out, 1));
  int64_t n = -1;
  if (ctx->opset >= 13) {
    if (node->n_input > 1 && node->input[1] && *node->input[1]) {
      OnnxValue *c = nnic_onnx_input_const (ctx, node, 1, "split", error);
      const NnicTensor *t = c ? nnic_onnx_const_tensor (ctx, c, error) : NULL;
      if (!t) {
        nnic_onnx_node_prefix (ctx, node, error);
        return FALSE;
      }
      n = t->numel;
      if (t->dtype == NNIC_DTYPE_F32 || t->ndim != 1 || (size_t) n != n_out) {
        g_autofree char *s = nnic_shape_to_string (t->ndim, t->shape);
        nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                              "the split '%s' is %s %s for %zu outputs", node->input[1],
                              nnic_dtype_name (t->dtype), s, n_out);
        return FALSE;
      }
      for (int64_t i = 0; i < n; i++)
        sizes[i] = t->dtype == NNIC_DTYPE_I64 ? t->i64[i] : (int64_t) nnic_onnx_tensor_element (t, i);
    }
  } else {
    const int64_t *s;
    size_t ns;
    if (!nnic_onnx_attr_ints (ctx, node, "split", 0, &s, &ns, error))
      return FALSE;
    if (ns) {
      if (ns != n_out) {
        nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                              "the split attribute has %zu sizes for %zu outputs", ns, n_out);
        return FALSE;
      }
      memcpy (sizes, s, sizeof (int64_t) * ns);
      n = (int64_t) ns;
    }
  }
  int64_t shape[NNIC_MAX_DIMS];
  nnic_onnx_value_shape (ctx, x, shape);
  const int64_t dim = shape[a];
  if (n < 0) {
    if (n_out == 0 || dim % (int64_t) n_out != 0) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            "axis %" G_GINT64_FORMAT " of size %" G_GINT64_FORMAT
                            " does not split into %zu equal parts",
                            axis, dim, n_out);
      return FALSE;
    }
    for (size_t k = 0; k < n_out; k++)
      sizes[k] = dim / (int64_t) n_out;
  }
  int64_t total = 0;
  for (size_t k = 0; k < n_out; k++) {
    if (sizes[k] < 0 || sizes[k] > dim - total) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            "the sizes do not split axis %" G_GINT64_FORMAT " of size %" G_GINT64_FORMAT,
                            axis, dim);
      return FALSE;
    }
    total += sizes[k];
  }
  if (total != dim) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "the sizes add up to %" G_GINT64_FORMAT ", not to the %" G_GINT64_FORMAT
                          " of axis %" G_GINT64_FORMAT,
                          total, dim, axis);
    return FALSE;
  }
  int64_t at = 0;
  for (size_t k = 0; k < n_out; at += sizes[k++]) {
    /* outputs nobody reads get no node */
    if (!node->output[k] || !*node->output[k] || !g_hash_table_contains (ctx->consumed, node->output[k]))
      continue;
    SliceSpec spec = {
      .n = 1, .axes = { a }, .starts = { at }, .ends = { at + sizes[k] }, .steps = { 1 }
    };
    g_autofree char *extra = k ? nnic_onnx_extra_name (ctx, name, k) : NULL;
    if (!add_slice (ctx, node, k, k ? extra : name, x, &spec, error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
convert_slice_or_split (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                        GError **error)
{
  return !strcmp (node->op_type, "Split") ? convert_split (ctx, node, name, error)
                                          : convert_slice (ctx, node, name, error);
}

static gboolean
export_slice (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  const NnicNode *node = nnic_model_node (x->model, i);
  const SliceSpec *s = NODE_SPEC (node, SliceSpec);
  int64_t axes[NNIC_MAX_DIMS];
  for (int k = 0; k < s->n; k++)
    axes[k] = s->axes[k] + 1; /* after the batch */
  Onnx__NodeProto *n = nnic_onnx_export_simple (x, "Slice", i);
  static const char *const what[] = { "starts", "ends", "axes", "steps" };
  const int64_t *values[] = { s->starts, s->ends, axes, s->steps };
  for (int k = 0; k < 4; k++) {
    char *cn = nnic_onnx_export_keep (
        x, g_strconcat (nnic_model_node_name (x->model, i), ".onnx_", what[k], NULL));
    nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_i64 (x, cn, values[k], s->n));
  }
  return TRUE;
}

const NnicOp nnic_op_slice = {
  .type = "Slice",
  .setup = slice_setup,
  .reshape = NULL,
  .forward = slice_forward,
  .backward = slice_backward,
  .finalize = NULL,
  .channel_rule = slice_channels,
  .keeps_grid = TRUE,
  .onnx_ops = (const char *const[]) { "Slice", "Split", NULL },
  .onnx_import = convert_slice_or_split,
  .onnx_export = export_slice,
  .onnx_merged = NNIC_ONNX_MERGED_OWN,
};

gboolean
nnic_model_add_slice (NnicModel *m, const char *name, const char *input, int n_dims, const int *dims,
                      const int64_t *starts, const int64_t *ends, const int64_t *steps, GError **error)
{
  const char *label = name ? name : "Slice";
  if (n_dims < 0 || n_dims > NNIC_MAX_DIMS - 1 || (n_dims && (!dims || !starts || !ends))) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s: Slice takes 0 to %d dimensions with their starts and ends", label,
                 NNIC_MAX_DIMS - 1);
    return FALSE;
  }
  NnicNode *in = nnic_graph_resolve (m, label, input, error);
  if (!in)
    return FALSE;
  SliceSpec spec = { .n = n_dims };
  for (int i = 0; i < n_dims; i++) {
    /* torch's dims: the batch is 0, negative ones count from the end */
    const int d = dims[i] < 0 ? dims[i] + in->shape_ndim + 1 : dims[i];
    if (d == 0) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                   "%s: dimension %d is the batch, which a Slice keeps whole", label, dims[i]);
      return FALSE;
    }
    spec.axes[i] = d - 1;
    spec.starts[i] = starts[i];
    spec.ends[i] = ends[i];
    spec.steps[i] = steps ? steps[i] : 1;
  }
  return nnic_graph_add (m, name, &nnic_op_slice, &in, 1, &spec, sizeof spec, error);
}
