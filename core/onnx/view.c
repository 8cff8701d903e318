/* ONNX import: graph values whose batch is not the leading ONNX axis, or
 * is merged with other axes (internal.h's NnicOnnxView).
 *
 * nnic keeps every activation batch-first: a node's output is [N, shape...].
 * torch's nn.MultiheadAttention computes in [L, N, E] (a Transpose that
 * moves the batch), reshapes to [L, N*heads, hd] and transposes to
 * [N*heads, L, hd]; Swin permutes [B*nW, 49, 3, heads, hd] to
 * [3, B*nW, heads, 49, hd] and picks q, k, v with Gather on axis 0. Here
 * such values are views of a batch-first node:
 *  - a Transpose that moves the batch (or of a view) makes no node: it
 *    permutes the view's dimensions;
 *  - a Reshape of a view regroups its run of physical axes (merging
 *    dimensions moves no data); splitting one physical axis is a
 *    per-sample Reshape node, which keeps the memory order;
 *  - ops on the last axis (Linear, Softmax, LayerNormalization), Gather
 *    and Slice of a dimension that is one physical axis, elementwise ops
 *    work on the node itself, their output keeping the view;
 *  - any other op gets the value batch-first: a per-sample Transpose
 *    putting the physical axes in the view's order, a Reshape merging
 *    each dimension's axes ("flatten"). When the batch is then not first,
 *    the import is refused, naming the node.
 * A view that is [N, shape...] is dropped; one that is [N*k, shape...]
 * becomes fold.c's merged value. */
#include "core/onnx/internal.h"

#include <string.h>

/* ---- views ---- */

/* The physical sizes: p[0] = 1 (the batch, counted apart), p[a] the
 * node's per-sample axis a - 1. */
static int
phys_sizes (NnicOnnxImport *ctx, const OnnxValue *v, int64_t p[NNIC_MAX_DIMS + 1])
{
  int64_t s[NNIC_MAX_DIMS];
  int nd = nnic_onnx_value_shape (ctx, v, s);
  if (nd < 0)
    return -1;
  p[0] = 1;
  memcpy (p + 1, s, sizeof (int64_t) * (size_t) nd);
  return nd + 1;
}

/* The view of a value without one: [N, shape...], or merged [N*k, ...]. */
static void
view_of (NnicOnnxImport *ctx, const OnnxValue *v, NnicOnnxView *w)
{
  if (v->view) {
    *w = *v->view;
    return;
  }
  int64_t p[NNIC_MAX_DIMS + 1];
  const int n = phys_sizes (ctx, v, p);
  memset (w, 0, sizeof *w);
  w->n_order = n;
  for (int a = 0; a < n; a++)
    w->order[a] = a;
  if (v->merged && n >= 2) {
    w->n_dims = n - 1;
    w->start[0] = 0;
    w->len[0] = 2;
    for (int d = 1; d < n - 1; d++) {
      w->start[d] = d + 1;
      w->len[d] = 1;
    }
  } else {
    w->n_dims = n;
    for (int d = 0; d < n; d++) {
      w->start[d] = d;
      w->len[d] = 1;
    }
  }
}

int
nnic_onnx_view_dims (NnicOnnxImport *ctx, const OnnxValue *v, int64_t dims[NNIC_MAX_DIMS + 1])
{
  int64_t p[NNIC_MAX_DIMS + 1];
  if (phys_sizes (ctx, v, p) < 0)
    return -1;
  NnicOnnxView w;
  view_of (ctx, v, &w);
  for (int d = 0; d < w.n_dims; d++) {
    int64_t k = 1;
    gboolean batch = FALSE;
    for (int j = w.start[d]; j < w.start[d] + w.len[d]; j++) {
      batch |= w.order[j] == 0;
      k *= p[w.order[j]];
    }
    dims[d] = batch ? nnic_onnx_batch_times (k) : k;
  }
  return w.n_dims;
}

/* The logical dimension holding the batch. */
static int
batch_dim (const NnicOnnxView *w)
{
  for (int d = 0; d < w->n_dims; d++)
    for (int j = w->start[d]; j < w->start[d] + w->len[d]; j++)
      if (w->order[j] == 0)
        return d;
  return -1;
}

/* Attaches view w to v: none when it is [N, shape...], merged when it is
 * [N*k, shape...] with k one physical axis. */
static void
set_view (OnnxValue *v, const NnicOnnxView *w)
{
  gboolean ident = TRUE;
  for (int a = 0; a < w->n_order; a++)
    ident &= w->order[a] == a;
  gboolean canonical = ident && w->n_dims == w->n_order, merged = ident && w->n_dims == w->n_order - 1;
  for (int d = 0; d < w->n_dims; d++) {
    canonical &= w->len[d] == 1;
    merged &= w->len[d] == (d == 0 ? 2 : 1);
  }
  g_clear_pointer (&v->view, g_free);
  v->merged = FALSE;
  if (canonical)
    return;
  if (merged) {
    v->merged = TRUE;
    return;
  }
  v->view = g_memdup2 (w, sizeof *w);
}

static OnnxValue *
output_with_view (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k, const char *nnic_node,
                  const NnicOnnxView *w)
{
  if (k >= node->n_output || !node->output[k] || !*node->output[k])
    return NULL;
  OnnxValue *v = nnic_onnx_value_add_node (ctx, node->output[k], nnic_node);
  set_view (v, w);
  return v;
}

/* BASE.WHAT, BASE the name of the node being converted (or, for a graph
 * output, `fallback`, the value's node). */
static char *
extra_node_name (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *fallback,
                 const char *what)
{
  const char *base = node && ctx->names && ctx->names[ctx->node_index] ? ctx->names[ctx->node_index]
                                                                      : fallback;
  g_autofree char *b = g_strconcat (base, ".", what, NULL);
  return nnic_onnx_fresh_name (ctx, b);
}

static gboolean
node_failed (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error)
{
  if (node)
    nnic_onnx_node_prefix (ctx, node, error);
  return FALSE;
}

/* The normal form of a view: a per-sample Transpose puts the physical
 * axes other than the batch in the view's order, a Reshape merges the
 * axes of each dimension into one (a dimension of 1 without axes gets
 * one). Sets *phys to the node and w to the view on it. */
static gboolean
normalise (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const OnnxValue *v, char **phys,
           NnicOnnxView *w, GError **error)
{
  int64_t p[NNIC_MAX_DIMS + 1];
  const int n = phys_sizes (ctx, v, p);
  NnicOnnxView in;
  view_of (ctx, v, &in);
  *phys = g_strdup (v->node);
  /* the transpose */
  int perm[NNIC_MAX_DIMS], np = 0;
  gboolean moves = FALSE;
  for (int j = 0; j < in.n_order; j++)
    if (in.order[j] != 0) {
      perm[np] = in.order[j] - 1;
      moves |= perm[np] != np;
      np++;
    }
  if (moves) {
    g_autofree char *t = extra_node_name (ctx, node, v->node, "layout");
    if (!nnic_model_add_transpose (ctx->m, t, *phys, perm, n - 1, error))
      return node_failed (ctx, node, error);
    g_free (*phys);
    *phys = g_strdup (t);
  }
  /* the merge: one axis per dimension, the batch where it was */
  int64_t shape[NNIC_MAX_DIMS];
  int ns = 0;
  gboolean reshape = FALSE;
  memset (w, 0, sizeof *w);
  w->n_dims = in.n_dims;
  int j = 0;
  for (int d = 0; d < in.n_dims; d++) {
    int64_t k = 1;
    int n_axes = 0, batch_at = -1;
    for (int i = in.start[d]; i < in.start[d] + in.len[d]; i++) {
      if (in.order[i] == 0) {
        batch_at = n_axes;
        continue;
      }
      k *= p[in.order[i]];
      n_axes++;
    }
    reshape |= n_axes != 1 && !(n_axes == 0 && batch_at >= 0);
    w->start[d] = j;
    if (batch_at == 0 || (batch_at >= 0 && n_axes == 0))
      w->order[j++] = 0;
    if (n_axes > 0 || batch_at < 0) {
      shape[ns++] = k;
      w->order[j++] = ns;
    }
    if (batch_at > 0)
      w->order[j++] = 0;
    w->len[d] = j - w->start[d];
  }
  w->n_order = j;
  if (ns == 0) {
    /* [N] alone: a node has at least one axis per sample */
    shape[ns++] = 1;
    w->order[w->n_order++] = 1;
    w->len[w->n_dims - 1]++;
  }
  if (reshape || ns != n - 1) {
    g_autofree char *r = extra_node_name (ctx, node, v->node, "layout");
    if (!nnic_model_add_reshape (ctx->m, r, *phys, shape, ns, error))
      return node_failed (ctx, node, error);
    g_free (*phys);
    *phys = g_strdup (r);
  }
  return TRUE;
}

OnnxValue *
nnic_onnx_view_flatten (NnicOnnxImport *ctx, const Onnx__NodeProto *node, OnnxValue *v,
                        GError **error)
{
  if (!v->view)
    return v;
  NnicOnnxView w;
  const int bd = batch_dim (v->view);
  if (bd != 0 || v->view->order[v->view->start[0]] != 0) {
    int64_t dims[NNIC_MAX_DIMS + 1];
    g_autofree char *s = nnic_onnx_dims_string (nnic_onnx_view_dims (ctx, v, dims), dims);
    if (node)
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "its input '%s' is %s: the batch is at axis %d here%s, and %s takes "
                            "its input batch-first",
                            v->name, s, bd, bd == 0 ? " (after other axes it is merged with)" : "",
                            node->op_type);
    else
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                   "%s: the graph output '%s' is %s: the batch is at axis %d there; nnic models "
                   "give [N, ...]",
                   ctx->source, v->name, s, bd);
    return NULL;
  }
  char *phys;
  if (!normalise (ctx, node, v, &phys, &w, error))
    return NULL;
  g_free (v->node);
  v->node = phys;
  set_view (v, &w);
  return v;
}

/* ---- the converters ---- */

static OnnxValue *
node_input (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k)
{
  if (k >= node->n_input || !node->input[k] || !*node->input[k])
    return NULL;
  OnnxValue *v = nnic_onnx_value_lookup (ctx, node->input[k]);
  return v && v->kind == ONNX_VALUE_NODE ? v : NULL;
}

static gboolean
const_ints (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k, int64_t *out, int *n,
            int max, GError **error)
{
  OnnxValue *c = nnic_onnx_input_const (ctx, node, k, "a constant list", error);
  if (!c)
    return FALSE;
  int nd;
  int64_t shape[NNIC_MAX_DIMS], numel;
  if (!nnic_onnx_const_dims (ctx, node, c, &nd, shape, &numel, error))
    return FALSE;
  if (numel > max) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED, "input %zu has too many entries",
                          k);
    return FALSE;
  }
  *n = (int) numel;
  return nnic_onnx_const_i64 (ctx, c, out, numel, error);
}

/* Transpose: permutes the view's dimensions; no node. */
static gboolean
view_transpose (NnicOnnxImport *ctx, const Onnx__NodeProto *node, OnnxValue *x, GError **error)
{
  NnicOnnxView in, out;
  view_of (ctx, x, &in);
  const int64_t *perm;
  size_t n;
  if (!nnic_onnx_attr_ints (ctx, node, "perm", 0, &perm, &n, error))
    return FALSE;
  int pm[NNIC_MAX_DIMS + 1];
  if (n == 0) {
    n = (size_t) in.n_dims;
    for (int i = 0; i < in.n_dims; i++)
      pm[i] = in.n_dims - 1 - i;
  } else {
    gboolean seen[NNIC_MAX_DIMS + 1] = { FALSE };
    for (size_t i = 0; i < n && n == (size_t) in.n_dims; i++) {
      if (perm[i] < 0 || perm[i] >= in.n_dims || seen[perm[i]])
        n = 0;
      else
        seen[perm[i]] = TRUE, pm[i] = (int) perm[i];
    }
    if (n != (size_t) in.n_dims) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            "perm is not a permutation of the %d axes of its input", in.n_dims);
      return FALSE;
    }
  }
  out = in;
  int j = 0;
  for (int d = 0; d < in.n_dims; d++) {
    out.start[d] = j;
    out.len[d] = in.len[pm[d]];
    for (int i = 0; i < in.len[pm[d]]; i++)
      out.order[j++] = in.order[in.start[pm[d]] + i];
  }
  output_with_view (ctx, node, 0, x->node, &out);
  return TRUE;
}

/* A size N^nb * k. */
typedef struct {
  int64_t k;
  int nb;
} Size;

static Size
size_of (int64_t d)
{
  const int64_t f = nnic_onnx_batch_factor (d);
  return f ? (Size) { f, 1 } : (Size) { d, 0 };
}

/* Reshape: the view's run of physical axes regrouped into the target's
 * dimensions, splitting a physical axis (a per-sample Reshape node) where a
 * dimension ends inside it. */
static gboolean
view_reshape (NnicOnnxImport *ctx, const Onnx__NodeProto *node, OnnxValue *x, GError **error)
{
  g_autofree char *r = NULL;
  int64_t allowzero;
  if (!nnic_onnx_attr_int (ctx, node, "allowzero", 0, &allowzero, error))
    return FALSE;
  int64_t t[NNIC_MAX_DIMS + 1], in[NNIC_MAX_DIMS + 1];
  int nt;
  if (!const_ints (ctx, node, 1, t, &nt, NNIC_MAX_DIMS + 1, error))
    return FALSE;
  const int nin = nnic_onnx_view_dims (ctx, x, in);
  g_autofree char *xs = nnic_onnx_dims_string (nin, in);
  Size total = { 1, 0 }, known = { 1, 0 };
  for (int d = 0; d < nin; d++) {
    Size s = size_of (in[d]);
    total.k *= s.k;
    total.nb += s.nb;
  }
  int infer = -1;
  for (int i = 0; i < nt; i++) {
    if (t[i] == 0 && !allowzero && i < nin)
      t[i] = in[i];
    if (t[i] == -1 && infer < 0) {
      infer = i;
      continue;
    }
    Size s = size_of (t[i]);
    if (s.k <= 0) {
      g_autofree char *ts = nnic_onnx_dims_string (nt, t);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "the shape %s is not one nnic can take (of %s)", ts, xs);
      return FALSE;
    }
    known.k *= s.k;
    known.nb += s.nb;
  }
  if (infer >= 0 && known.k > 0 && total.k % known.k == 0 && total.nb >= known.nb) {
    const int64_t k = total.k / known.k;
    t[infer] = total.nb > known.nb ? nnic_onnx_batch_times (k) : k;
    known = total;
  }
  g_autofree char *ts = nnic_onnx_dims_string (nt, t);
  /* with a static batch, a number may hold it (torch's [L, N*heads, hd]
   * written as [5, 4, 4] for N = 2) */
  const int64_t nb = ctx->batch > 0 ? ctx->batch : 0;
  if ((known.k != total.k || known.nb != total.nb) &&
      !(nb && known.nb < total.nb && known.k == total.k * nb)) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the shape %s does not have the elements of its input %s", ts, xs);
    return FALSE;
  }
  /* the pieces: physical axes in the view's order, split as needed */
  int64_t p[NNIC_MAX_DIMS + 1];
  const int np = phys_sizes (ctx, x, p);
  NnicOnnxView w;
  view_of (ctx, x, &w);
  int64_t piece[2 * NNIC_MAX_DIMS + 2];
  int axis[2 * NNIC_MAX_DIMS + 2], n_piece = 0;
  for (int j = 0; j < w.n_order; j++) {
    piece[n_piece] = p[w.order[j]];
    axis[n_piece++] = w.order[j];
  }
  int group_of[2 * NNIC_MAX_DIMS + 2];
  int pos = 0;
  for (int d = 0; d < nt; d++) {
    Size need = size_of (t[d]);
    while (need.k != 1 || need.nb || (d == nt - 1 && pos < n_piece)) {
      if (pos >= n_piece || n_piece >= 2 * NNIC_MAX_DIMS + 1)
        goto refuse;
      if (axis[pos] == 0) {
        if (need.nb)
          need.nb = 0;
        else if (nb && need.k % nb == 0)
          need.k /= nb;
        else
          goto refuse;
      } else if (need.k % piece[pos] == 0) {
        need.k /= piece[pos];
      } else if (piece[pos] % need.k == 0 && !(d == nt - 1)) {
        /* split the axis: its first part ends this dimension */
        memmove (piece + pos + 1, piece + pos, sizeof (int64_t) * (size_t) (n_piece - pos));
        memmove (axis + pos + 1, axis + pos, sizeof (int) * (size_t) (n_piece - pos));
        n_piece++;
        piece[pos + 1] = piece[pos] / need.k;
        piece[pos] = need.k;
        need.k = 1;
      } else {
        goto refuse;
      }
      group_of[pos++] = d;
    }
  }
  if (pos != n_piece)
    goto refuse;
  /* the physical axes after the splits: each axis's pieces in its order */
  NnicOnnxView out = { .n_dims = nt, .n_order = n_piece };
  int64_t shape[NNIC_MAX_DIMS];
  int ns = 0, new_axis[2 * NNIC_MAX_DIMS + 2];
  for (int a = 1; a < np; a++)
    for (int i = 0; i < n_piece; i++)
      if (axis[i] == a) {
        if (ns >= NNIC_MAX_DIMS - 1)
          goto refuse;
        shape[ns++] = piece[i];
        new_axis[i] = ns;
      }
  for (int i = 0; i < n_piece; i++)
    if (axis[i] == 0)
      new_axis[i] = 0;
  for (int d = 0, i = 0; d < nt; d++) {
    out.start[d] = i;
    while (i < n_piece && group_of[i] == d)
      out.order[i] = new_axis[i], i++;
    out.len[d] = i - out.start[d];
  }
  const char *phys = x->node;
  if (ns != np - 1) {
    r = extra_node_name (ctx, node, x->node, "split");
    if (!nnic_model_add_reshape (ctx->m, r, phys, shape, ns, error))
      return node_failed (ctx, node, error);
    phys = r;
  }
  output_with_view (ctx, node, 0, phys, &out);
  return TRUE;
refuse:
  nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                        "the reshape of %s to %s regroups the batch with axes it is not next to",
                        xs, ts);
  return FALSE;
}

/* Gather of one index on a dimension that is one physical axis (not the
 * batch): a Gather node selecting along that axis; the dimension goes. */
static gboolean
view_gather (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, OnnxValue *x,
             gboolean *done, GError **error)
{
  NnicOnnxView w;
  view_of (ctx, x, &w);
  int64_t axis;
  OnnxValue *iv = node->n_input >= 2 ? nnic_onnx_value_lookup (ctx, node->input[1]) : NULL;
  if (!iv || iv->kind != ONNX_VALUE_CONST || !nnic_onnx_attr_int (ctx, node, "axis", 0, &axis, error))
    return TRUE;
  int nd;
  int64_t shape[NNIC_MAX_DIMS], numel, index;
  GError *local = NULL;
  if (!nnic_onnx_const_dims (ctx, node, iv, &nd, shape, &numel, &local) || nd != 0 ||
      !nnic_onnx_const_i64 (ctx, iv, &index, 1, &local)) {
    g_clear_error (&local);
    return TRUE;
  }
  if (axis < 0)
    axis += w.n_dims;
  if (axis < 0 || axis >= w.n_dims || w.len[axis] != 1 || w.order[w.start[axis]] == 0)
    return TRUE;
  const int a = w.order[w.start[axis]];
  if (!nnic_onnx_added (ctx, node, name, nnic_model_add_select (ctx->m, name, x->node, a, index, error),
                        error))
    return FALSE;
  NnicOnnxView out = { .n_dims = w.n_dims - 1, .n_order = w.n_order - 1 };
  int j = 0;
  for (int d = 0, e = 0; d < w.n_dims; d++) {
    if (d == axis)
      continue;
    out.start[e] = j;
    out.len[e] = w.len[d];
    for (int i = 0; i < w.len[d]; i++) {
      const int b = w.order[w.start[d] + i];
      out.order[j++] = b > a ? b - 1 : b;
    }
    e++;
  }
  output_with_view (ctx, node, 0, name, &out);
  *done = TRUE;
  return TRUE;
}

/* Slice of dimensions that are each one physical axis (not the batch). */
static gboolean
view_slice (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, OnnxValue *x,
            gboolean *done, GError **error)
{
  NnicOnnxView w;
  view_of (ctx, x, &w);
  for (size_t k = 1; k < node->n_input; k++)
    if (node->input[k] && *node->input[k] &&
        (!nnic_onnx_value_lookup (ctx, node->input[k]) ||
         nnic_onnx_value_lookup (ctx, node->input[k])->kind != ONNX_VALUE_CONST))
      return TRUE;
  int64_t starts[NNIC_MAX_DIMS + 1], ends[NNIC_MAX_DIMS + 1], axes[NNIC_MAX_DIMS + 1],
    steps[NNIC_MAX_DIMS + 1];
  int n, ne, na = 0, nst = 0;
  if (node->n_input < 3 || !const_ints (ctx, node, 1, starts, &n, NNIC_MAX_DIMS + 1, error) ||
      !const_ints (ctx, node, 2, ends, &ne, NNIC_MAX_DIMS + 1, error))
    return FALSE;
  if (node->n_input > 3 && *node->input[3] && !const_ints (ctx, node, 3, axes, &na, NNIC_MAX_DIMS + 1, error))
    return FALSE;
  if (node->n_input > 4 && *node->input[4] && !const_ints (ctx, node, 4, steps, &nst, NNIC_MAX_DIMS + 1, error))
    return FALSE;
  if (ne != n || (na && na != n) || (nst && nst != n))
    return TRUE; /* the Slice converter's message */
  int dims[NNIC_MAX_DIMS + 1];
  for (int i = 0; i < n; i++) {
    int64_t a = na ? axes[i] : i;
    if (a < 0)
      a += w.n_dims;
    if (a < 0 || a >= w.n_dims || w.len[a] != 1 || w.order[w.start[a]] == 0)
      return TRUE;
    dims[i] = w.order[w.start[a]];
    if (!nst)
      steps[i] = 1;
  }
  if (!nnic_onnx_added (ctx, node, name,
                        nnic_model_add_slice (ctx->m, name, x->node, n, dims, starts, ends, steps, error),
                        error))
    return FALSE;
  output_with_view (ctx, node, 0, name, &w);
  *done = TRUE;
  return TRUE;
}

/* Runs the op's converter on the physical node `phys` of view w, as if it
 * were [N, shape...], and gives its output the view. */
static gboolean
on_physical (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const NnicOp *nop, const char *name,
             OnnxValue *x, const char *phys, const NnicOnnxView *w, GError **error)
{
  char *saved_node = x->node;
  NnicOnnxView *saved_view = x->view;
  gboolean saved_merged = x->merged;
  x->node = (char *) phys;
  x->view = NULL;
  x->merged = FALSE;
  /* an axis attribute counted on the last axis */
  Onnx__AttributeProto *axis_attr = NULL;
  int64_t saved_axis = 0;
  for (size_t i = 0; i < node->n_attribute; i++)
    if (node->attribute[i]->name && !strcmp (node->attribute[i]->name, "axis"))
      axis_attr = node->attribute[i];
  if (axis_attr) {
    saved_axis = axis_attr->i;
    axis_attr->i = -1;
  }
  ctx->view_physical = TRUE;
  gboolean ok = nop->onnx_import (ctx, node, name, error);
  ctx->view_physical = FALSE;
  if (axis_attr)
    axis_attr->i = saved_axis;
  x->node = saved_node;
  x->view = saved_view;
  x->merged = saved_merged;
  if (!ok)
    return FALSE;
  OnnxValue *out = node->n_output ? nnic_onnx_value_lookup (ctx, node->output[0]) : NULL;
  if (out && out != x)
    set_view (out, w);
  /* a MatMul's Add folded in as its bias gives the output */
  const int fused = ctx->fused_add[ctx->node_index];
  if (fused >= 0 && ctx->graph->node[fused]->n_output >= 1) {
    out = nnic_onnx_value_lookup (ctx, ctx->graph->node[fused]->output[0]);
    if (out && out != x)
      set_view (out, w);
  }
  return TRUE;
}

/* Ops on the last axis: its dimension must be one physical axis, the last
 * (after normalise). */
static gboolean
view_last_axis (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const NnicOp *nop,
                const char *name, OnnxValue *x, gboolean *done, GError **error)
{
  NnicOnnxView w;
  view_of (ctx, x, &w);
  int64_t axis = -1;
  if (!strcmp (node->op_type, "Softmax") && ctx->opset < 13 && !nnic_onnx_attr (node, "axis"))
    return TRUE; /* its default axis is 1: left to the converter, batch-first */
  if (nnic_onnx_attr (node, "axis")) {
    if (!nnic_onnx_attr_int (ctx, node, "axis", -1, &axis, error))
      return FALSE;
    if (axis < 0)
      axis += w.n_dims;
    if (axis != w.n_dims - 1)
      return TRUE;
  }
  const int last = w.n_dims - 1;
  for (int i = w.start[last]; i < w.start[last] + w.len[last]; i++)
    if (w.order[i] == 0)
      return TRUE;
  g_autofree char *phys = NULL;
  NnicOnnxView nw;
  if (!normalise (ctx, node, x, &phys, &nw, error))
    return FALSE;
  *done = TRUE;
  return on_physical (ctx, node, nop, name, x, phys, &nw, error);
}

static gboolean
same_layout (NnicOnnxImport *ctx, OnnxValue *a, OnnxValue *b)
{
  NnicOnnxView wa, wb;
  view_of (ctx, a, &wa);
  view_of (ctx, b, &wb);
  int64_t pa[NNIC_MAX_DIMS + 1], pb[NNIC_MAX_DIMS + 1];
  const int na = phys_sizes (ctx, a, pa), nb = phys_sizes (ctx, b, pb);
  if (na != nb || memcmp (pa, pb, sizeof (int64_t) * (size_t) na) != 0 || wa.n_dims != wb.n_dims ||
      wa.n_order != wb.n_order ||
      memcmp (wa.order, wb.order, sizeof (int) * (size_t) wa.n_order) != 0)
    return FALSE;
  for (int d = 0; d < wa.n_dims; d++)
    if (wa.start[d] != wb.start[d] || wa.len[d] != wb.len[d])
      return FALSE;
  return TRUE;
}

static gboolean
is_op (const Onnx__NodeProto *node, const char *const *ops)
{
  for (; *ops; ops++)
    if (!strcmp (node->op_type, *ops))
      return TRUE;
  return FALSE;
}

gboolean
nnic_onnx_view_convert (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const NnicOp *nop,
                        const char *name, gboolean *done, GError **error)
{
  static const char *const last_axis[] = { "Softmax", "LayerNormalization", "Gemm", NULL };
  static const char *const elementwise[] = { "Relu", "Clip", "Sigmoid", "Tanh", "Erf", "Gelu",
                                             "HardSigmoid", "HardSwish", "Dropout", "Add", "Sub",
                                             "Mul", "Div", "Pow", NULL };
  *done = FALSE;
  OnnxValue *x = node_input (ctx, node, 0);
  gboolean any_view = FALSE, any_merged = FALSE;
  for (size_t k = 0; k < node->n_input; k++) {
    OnnxValue *v = node_input (ctx, node, k);
    any_view |= v && v->view;
    any_merged |= v && v->merged;
  }
  const gboolean fused = ctx->fusion[ctx->node_index].op != NULL;
  if (!strcmp (node->op_type, "Transpose") && x) {
    const int64_t *perm;
    size_t n;
    if (!nnic_onnx_attr_ints (ctx, node, "perm", 0, &perm, &n, error))
      return FALSE;
    if (x->view || x->merged || n == 0 || perm[0] != 0) {
      *done = TRUE;
      return view_transpose (ctx, node, x, error);
    }
    return TRUE;
  }
  if (!any_view && !(any_merged && x && (is_op (node, last_axis) || !strcmp (node->op_type, "MatMul"))))
    return TRUE;
  if (x && x->view && !strcmp (node->op_type, "Reshape")) {
    *done = TRUE;
    return view_reshape (ctx, node, x, error);
  }
  if (x && x->view && !strcmp (node->op_type, "Gather") && !view_gather (ctx, node, name, x, done, error))
    return FALSE;
  if (x && x->view && !strcmp (node->op_type, "Slice") && !view_slice (ctx, node, name, x, done, error))
    return FALSE;
  if (*done)
    return TRUE;
  if (x && !fused && is_op (node, last_axis) && !view_last_axis (ctx, node, nop, name, x, done, error))
    return FALSE;
  if (*done)
    return TRUE;
  if (x && !fused && !strcmp (node->op_type, "MatMul")) {
    OnnxValue *b = node_input (ctx, node, 1);
    if (!b) {
      /* x @ W: Linear on the last axis */
      if (!view_last_axis (ctx, node, nop, name, x, done, error))
        return FALSE;
    } else if (nnic_onnx_view_flatten (ctx, node, x, error) == NULL ||
               nnic_onnx_view_flatten (ctx, node, b, error) == NULL) {
      return FALSE;
    } else if (x->merged && b->merged) {
      /* batched products of [N*k, ...] values, k rows per sample alike */
      int64_t sa[NNIC_MAX_DIMS], sb[NNIC_MAX_DIMS];
      nnic_onnx_value_shape (ctx, x, sa);
      nnic_onnx_value_shape (ctx, b, sb);
      if (sa[0] == sb[0]) {
        NnicOnnxView w;
        view_of (ctx, x, &w);
        x->merged = b->merged = FALSE;
        gboolean ok = nop->onnx_import (ctx, node, name, error);
        x->merged = b->merged = TRUE;
        if (!ok)
          return FALSE;
        int64_t s[NNIC_MAX_DIMS];
        OnnxValue *out = nnic_onnx_value_lookup (ctx, node->output[0]);
        if (out && nnic_onnx_value_shape (ctx, out, s) >= 1)
          out->merged = TRUE;
        *done = TRUE;
      }
    }
    if (*done)
      return TRUE;
  }
  if (x == NULL)
    for (size_t k = 1; k < node->n_input && !x; k++)
      x = node_input (ctx, node, k); /* 2 * x */
  if (x && is_op (node, elementwise) && !fused) {
    /* the graph values in one layout, the constants one element each */
    gboolean fits = TRUE;
    for (size_t k = 0; k < node->n_input && fits; k++) {
      if (!node->input[k] || !*node->input[k])
        continue;
      OnnxValue *v = nnic_onnx_value_lookup (ctx, node->input[k]);
      if (!v)
        return TRUE;
      if (v->kind == ONNX_VALUE_NODE) {
        fits = same_layout (ctx, v, x);
      } else if (!strcmp (node->op_type, "Clip") || !strcmp (node->op_type, "Dropout")) {
        continue;
      } else {
        int nd;
        int64_t shape[NNIC_MAX_DIMS], numel;
        GError *local = NULL;
        fits = nnic_onnx_const_dims (ctx, node, v, &nd, shape, &numel, &local) && numel == 1;
        g_clear_error (&local);
      }
    }
    OnnxValue *other = NULL;
    for (size_t k = 0; k < node->n_input; k++)
      if (node_input (ctx, node, k) && node_input (ctx, node, k) != x)
        other = node_input (ctx, node, k);
    if (fits && x->view && !other) {
      NnicOnnxView w = *x->view;
      *done = TRUE;
      return on_physical (ctx, node, nop, name, x, x->node, &w, error);
    }
  }
  /* the op's converter takes [N, ...] (or merged) inputs */
  for (size_t k = 0; k < node->n_input; k++) {
    OnnxValue *v = node_input (ctx, node, k);
    if (v && v->view && !nnic_onnx_view_flatten (ctx, node, v, error))
      return FALSE;
  }
  return TRUE;
}
