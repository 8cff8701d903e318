/* Transpose (torch.permute, ONNX Transpose) of the per-sample axes; the
 * batch stays first. Output axis i is input axis perm[i].
 *
 * Before copying, the permutation is reduced: axes of extent 1 go, and
 * output axes that are consecutive input axes in order merge into one
 * (the batch merges with the leading axes that stay in place). ConvNeXt's
 * [C, H, W] <-> [H, W, C] become one batched 2-D transpose of [C, H*W],
 * attention's heads swap [T, H, D] -> [H, T, D] and the channel shuffle's
 * [g, c, H, W] -> [c, g, H, W] become copies of D (or H*W) contiguous
 * floats. When the innermost axis moves, the copy goes by 16 x 16 tiles
 * of the two axes that are innermost in the input and in the output, so
 * that both sides are read and written a cache line at a time.
 *
 * The backward is the same walk with the roles swapped (dx += the
 * inverse permutation of dy): the mapping is one to one, so threads never
 * add into the same float. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"
#include "core/parallel.h"

#include <string.h>

typedef struct {
  int ndim;                  /* per sample */
  int perm[NNIC_MAX_DIMS];   /* output axis i is input axis perm[i], per sample */
} TransposeSpec;

static gboolean
transpose_setup (NnicNode *node, GError **error)
{
  const TransposeSpec *s = NODE_SPEC (node, TransposeSpec);
  const NnicNode *in = node->inputs[0];
  gboolean ok = s->ndim == in->shape_ndim;
  unsigned seen = 0;
  for (int i = 0; ok && i < s->ndim; i++) {
    ok = s->perm[i] >= 0 && s->perm[i] < s->ndim && !(seen & (1u << s->perm[i]));
    seen |= ok ? 1u << s->perm[i] : 0;
  }
  if (!ok) {
    g_autoptr (GString) p = g_string_new ("[");
    for (int i = 0; i < CLAMP (s->ndim, 0, NNIC_MAX_DIMS); i++)
      g_string_append_printf (p, "%s%d", i ? ", " : "", s->perm[i]);
    g_string_append_c (p, ']');
    g_autofree char *shape = nnic_shape_to_string (in->shape_ndim, in->shape);
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "%s is not a permutation of the %d per-sample axes of '%s' %s", p->str,
              in->shape_ndim, in->name, shape);
    return FALSE;
  }
  node->shape_ndim = s->ndim;
  for (int i = 0; i < s->ndim; i++)
    node->shape[i] = in->shape[s->perm[i]];
  return TRUE;
}

/* The reduced walk: r output axes of extents n, contiguous in the output,
 * each at input stride st. */
typedef struct {
  int r;
  int64_t n[NNIC_MAX_DIMS + 1];
  int64_t st[NNIC_MAX_DIMS + 1];
} Walk;

static Walk
walk_of (const NnicNode *node)
{
  const TransposeSpec *sp = NODE_SPEC (node, TransposeSpec);
  /* the whole tensor: the batch, then the sample's axes */
  const int r = sp->ndim + 1;
  int64_t shape[NNIC_MAX_DIMS + 1];
  int perm[NNIC_MAX_DIMS + 1];
  shape[0] = node->batch;
  memcpy (shape + 1, node->inputs[0]->shape, sizeof (int64_t) * (size_t) sp->ndim);
  perm[0] = 0;
  for (int i = 0; i < sp->ndim; i++)
    perm[i + 1] = sp->perm[i] + 1;
  /* drop extents of 1 */
  int keep[NNIC_MAX_DIMS + 1], k = 0;
  int64_t s2[NNIC_MAX_DIMS + 1], stride[NNIC_MAX_DIMS + 1];
  for (int i = 0; i < r; i++) {
    keep[i] = shape[i] == 1 ? -1 : k;
    if (shape[i] != 1)
      s2[k++] = shape[i];
  }
  const int r2 = k;
  int p2[NNIC_MAX_DIMS + 1];
  k = 0;
  for (int i = 0; i < r; i++)
    if (keep[perm[i]] >= 0)
      p2[k++] = keep[perm[i]];
  for (int i = r2 - 1; i >= 0; i--)
    stride[i] = i == r2 - 1 ? 1 : stride[i + 1] * s2[i + 1];
  /* merge output axes that are consecutive input axes */
  Walk w = { 0 };
  for (int i = 0; i < r2; i++) {
    if (w.r > 0 && p2[i] == p2[i - 1] + 1) {
      w.n[w.r - 1] *= s2[p2[i]];
      w.st[w.r - 1] = stride[p2[i]];
    } else {
      w.n[w.r] = s2[p2[i]];
      w.st[w.r] = stride[p2[i]];
      w.r++;
    }
  }
  return w;
}

/* Coordinates c over the m axes of extents n, with the input offset (input
 * strides si) and the output offset (output strides so) they point at. */
typedef struct {
  int m;
  int64_t n[NNIC_MAX_DIMS + 1], si[NNIC_MAX_DIMS + 1], so[NNIC_MAX_DIMS + 1];
} Odometer;

static inline void
odo_seek (const Odometer *o, int64_t idx, int64_t *c, int64_t *in, int64_t *out)
{
  *in = *out = 0;
  for (int k = o->m - 1; k >= 0; k--) {
    c[k] = idx % o->n[k];
    idx /= o->n[k];
    *in += c[k] * o->si[k];
    *out += c[k] * o->so[k];
  }
}

static inline void
odo_next (const Odometer *o, int64_t *c, int64_t *in, int64_t *out)
{
  for (int k = o->m - 1; k >= 0; k--) {
    *in += o->si[k];
    *out += o->so[k];
    if (++c[k] < o->n[k])
      return;
    *in -= o->si[k] * o->n[k];
    *out -= o->so[k] * o->n[k];
    c[k] = 0;
  }
}

#define TILE 16

/* Forward: y[out] = x[in]; backward: x[in] += y[out] (x is dx, y is dy). */
static inline void
permute (const Walk *w, float *restrict x, float *restrict y, int64_t total, const gboolean back)
{
  if (w->r <= 1) {
    if (back)
      op_acc (x, y, total);
    else
      memcpy (y, x, sizeof (float) * (size_t) total);
    return;
  }
  int64_t ostride[NNIC_MAX_DIMS + 1];
  ostride[w->r - 1] = 1;
  for (int i = w->r - 2; i >= 0; i--)
    ostride[i] = ostride[i + 1] * w->n[i + 1];
  const int threads = total > OP_PARALLEL_MIN ? nnic_threads () : 1;

  if (w->st[w->r - 1] == 1) {
    /* the innermost axis stays innermost: rows of L floats */
    const int64_t L = w->n[w->r - 1], rows = total / L;
    Odometer o = { .m = w->r - 1 };
    for (int k = 0; k < o.m; k++) {
      o.n[k] = w->n[k];
      o.si[k] = w->st[k];
      o.so[k] = ostride[k];
    }
    const int64_t blocks = threads > 1 ? MIN (rows, 4 * threads) : 1;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t b = 0; b < blocks; b++) {
      int64_t lo, hi, c[NNIC_MAX_DIMS + 1], in, out;
      nnic_split_range (rows, (int) blocks, (int) b, &lo, &hi);
      if (lo < hi)
        odo_seek (&o, lo, c, &in, &out);
      for (int64_t row = lo; row < hi; row++) {
        if (back)
          op_acc (x + in, y + out, L);
        else
          memcpy (y + out, x + in, sizeof (float) * (size_t) L);
        odo_next (&o, c, &in, &out);
      }
    }
    return;
  }

  /* the innermost axis moves: tiles of output axis r - 1 (input stride
   * si) by output axis q (input stride 1, output stride sq) */
  int q = 0;
  while (w->st[q] != 1)
    q++;
  const int64_t ni = w->n[w->r - 1], si = w->st[w->r - 1], nq = w->n[q], sq = ostride[q];
  Odometer o = { 0 };
  for (int k = 0; k < w->r - 1; k++)
    if (k != q) {
      o.n[o.m] = w->n[k];
      o.si[o.m] = w->st[k];
      o.so[o.m] = ostride[k];
      o.m++;
    }
  const int64_t others = total / (ni * nq), qtiles = (nq + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t u = 0; u < others * qtiles; u++) {
    int64_t c[NNIC_MAX_DIMS + 1], in, out;
    odo_seek (&o, u / qtiles, c, &in, &out);
    const int64_t j0 = (u % qtiles) * TILE, j1 = MIN (j0 + TILE, nq);
    for (int64_t i0 = 0; i0 < ni; i0 += TILE) {
      const int64_t i1 = MIN (i0 + TILE, ni);
      for (int64_t j = j0; j < j1; j++) {
        float *restrict yr = y + out + j * sq;
        float *restrict xr = x + in + j;
        if (back)
          for (int64_t i = i0; i < i1; i++)
            xr[i * si] += yr[i];
        else
          for (int64_t i = i0; i < i1; i++)
            yr[i] = xr[i * si];
      }
    }
  }
}

static void
transpose_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const Walk w = walk_of (node);
  permute (&w, node->inputs[0]->out->f32, node->out->f32, node->out->numel, FALSE);
}

static void
transpose_backward (NnicNode *node)
{
  if (!node->inputs[0]->gout)
    return;
  /* the forward's walk, dx[in] += dy[out] */
  const Walk w = walk_of (node);
  permute (&w, node->inputs[0]->gout->f32, node->gout->f32, node->gout->numel, TRUE);
}

/* ---- ONNX ---- */

static char *
perm_string (const int64_t *perm, size_t n)
{
  GString *s = g_string_new ("[");
  for (size_t i = 0; i < n; i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "", perm[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static gboolean
convert_transpose (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "perm", NULL };
  const int64_t *perm;
  size_t n;
  int64_t s[NNIC_MAX_DIMS + 1];
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_ints (ctx, node, "perm", 0, &perm, &n, error))
    return FALSE;
  /* ONNX's axes: the batch's first, or the merged one of [N*k, ...] */
  const int rank = nnic_onnx_value_dims (ctx, x, s);
  int64_t full[NNIC_MAX_DIMS + 1];
  if (n == 0) {
    /* the default reverses the axes */
    n = (size_t) rank;
    for (int i = 0; i < rank; i++)
      full[i] = rank - 1 - i;
  } else if (n == (size_t) rank) {
    memcpy (full, perm, sizeof (int64_t) * n);
  } else {
    g_autofree char *ps = perm_string (perm, MIN (n, (size_t) NNIC_MAX_DIMS + 1));
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "perm %s has %zu entries for a rank-%d input", ps, n, rank);
    return FALSE;
  }
  g_autofree char *ps = perm_string (full, n);
  if (full[0] != 0) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "perm %s moves the batch dimension (axis 0%s), which nnic keeps first", ps,
                          x->merged ? ", merged by a Reshape" : "");
    return FALSE;
  }
  /* per sample: the axes after the batch; a merged [N*k, ...] keeps its
   * k axis first */
  const int skip = x->merged ? 0 : 1;
  int per[NNIC_MAX_DIMS];
  for (int i = 1; i < rank; i++) {
    if (full[i] < 1 || full[i] >= rank) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            "perm %s is not a permutation of the %d axes", ps, rank);
      return FALSE;
    }
    per[i - skip] = (int) full[i] - skip;
  }
  if (x->merged)
    per[0] = 0;
  if (!nnic_onnx_added (ctx, node, name,
                        nnic_model_add_transpose (ctx->m, name, x->node, per, rank - skip, error),
                        error))
    return FALSE;
  nnic_onnx_set_merged (ctx, node, 0, x->merged);
  return TRUE;
}

static gboolean
export_transpose (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  const TransposeSpec *sp = NODE_SPEC (nnic_graph_node (x->model, i), TransposeSpec);
  int64_t perm[NNIC_MAX_DIMS + 1] = { 0 };
  for (int k = 0; k < sp->ndim; k++)
    perm[k + 1] = sp->perm[k] + 1;
  nnic_onnx_export_attr_ints (x, nnic_onnx_export_simple (x, "Transpose", i), "perm", perm,
                              (size_t) sp->ndim + 1);
  return TRUE;
}

/* The channel rule is END: the channel axis moves (ConvNeXt's C goes
 * last), and what the layers after it call channels (a Linear's last
 * axis, a Conv2d's first) is then a different axis of the producer's
 * output; dependency-aware pruning does not follow channels from one
 * axis to another. The values are moved, not changed: a quantized input
 * stays on its grid. */
const NnicOp nnic_op_transpose = {
  .type = "Transpose",
  .setup = transpose_setup,
  .reshape = NULL,
  .forward = transpose_forward,
  .backward = transpose_backward,
  .finalize = NULL,
  .channels = NNIC_CHANNELS_END,
  .keeps_grid = TRUE,
  .onnx_ops = (const char *const[]) { "Transpose", NULL },
  .onnx_import = convert_transpose,
  .onnx_export = export_transpose,
  .onnx_merged = NNIC_ONNX_MERGED_OWN,
};

gboolean
nnic_model_add_transpose (NnicModel *m, const char *name, const char *input, const int *perm,
                          int ndim, GError **error)
{
  TransposeSpec spec = { ndim, { 0 } };
  if (ndim > 0 && ndim < NNIC_MAX_DIMS) {
    if (!perm) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: Transpose needs a permutation",
                   name ? name : "Transpose");
      return FALSE;
    }
    memcpy (spec.perm, perm, sizeof (int) * (size_t) ndim);
  } else {
    spec.ndim = -1; /* setup names the bad rank */
  }
  return nnic_graph_add_unary (m, name, input, &nnic_op_transpose, &spec, sizeof spec, error);
}
