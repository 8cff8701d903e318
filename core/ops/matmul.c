/* MatMul (torch.matmul, ONNX MatMul and Einsum's batched products) of two
 * computed values, per sample: a [..., M, K] @ b [..., K, P] gives
 * [..., M, P], the leading dimensions broadcasting as numpy's (aligned
 * from the right; a 1 stretches). A 1-D operand is a row vector (a) or a
 * column vector (b) whose dimension the output drops, as numpy's.
 * trans_a / trans_b read an operand with its last two axes swapped: the
 * q @ k^T of attention without a Transpose node, since BLAS transposes
 * for free.
 *
 * One single-threaded sgemm per output matrix, the matrices of the batch
 * spread over the threads; a few large matrices (batch 1) are split by
 * rows instead. The backward writes each gradient matrix of a and of b
 * from one thread, summing over the output matrices that read it (more
 * than one where it was broadcast), so that no two threads add into the
 * same floats. x @ x works: a's gradient is done before b's. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"
#include "core/parallel.h"

#include <string.h>

#include <cblas.h>

/* Which output matrices read one input matrix: those of input matrix i are
 * users[start[i] .. start[i + 1]). */
typedef struct {
  int64_t *start, *users;
} MatMulReaders;

/* The geometry, from the per-sample shapes (setup): node->state. */
typedef struct {
  int64_t M, K, P;    /* op(a) [M, K] x op(b) [K, P] = [M, P] */
  int64_t mats;       /* output matrices per sample */
  int64_t na, nb;     /* a's and b's matrices per sample */
  int64_t *a_of, *b_of; /* [mats]: the a and b matrix each output matrix reads */
  MatMulReaders ra, rb;
} MatMulGeom;

static void
matmul_finalize (NnicNode *node)
{
  MatMulGeom *g = node->state;
  if (!g)
    return;
  g_free (g->a_of);
  g_free (g->b_of);
  g_free (g->ra.start);
  g_free (g->ra.users);
  g_free (g->rb.start);
  g_free (g->rb.users);
  g_clear_pointer (&node->state, g_free);
}

static void
readers_init (MatMulReaders *r, const int64_t *of, int64_t mats, int64_t n)
{
  r->start = g_new0 (int64_t, n + 1);
  r->users = g_new (int64_t, MAX (mats, 1));
  for (int64_t j = 0; j < mats; j++)
    r->start[of[j] + 1]++;
  for (int64_t i = 0; i < n; i++)
    r->start[i + 1] += r->start[i];
  g_autofree int64_t *fill = g_new (int64_t, n + 1);
  memcpy (fill, r->start, sizeof (int64_t) * (size_t) (n + 1));
  for (int64_t j = 0; j < mats; j++)
    r->users[fill[of[j]]++] = j;
}

static gboolean
matmul_setup (NnicNode *node, GError **error)
{
  const NnicMatMulSpec *sp = NODE_SPEC (node, NnicMatMulSpec);
  if (node->n_inputs != 2) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "MatMul takes two inputs, not %u", node->n_inputs);
    return FALSE;
  }
  const NnicNode *a = node->inputs[0], *b = node->inputs[1];
  const int ra = a->shape_ndim, rb = b->shape_ndim;
  g_autofree char *sa = nnic_shape_to_string (ra, a->shape);
  g_autofree char *sb = nnic_shape_to_string (rb, b->shape);
  if ((ra < 2 && sp->trans_a) || (rb < 2 && sp->trans_b)) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "cannot transpose the vector '%s' (%s): trans_a and trans_b need matrices",
              (ra < 2 && sp->trans_a) ? a->name : b->name, (ra < 2 && sp->trans_a) ? sa : sb);
    return FALSE;
  }
  /* op(a) [M, K], op(b) [K, P]; a vector a is [1, K], a vector b [K, 1] */
  const int64_t M = ra < 2 ? 1 : a->shape[ra - (sp->trans_a ? 1 : 2)];
  const int64_t K = a->shape[ra - (ra >= 2 && sp->trans_a ? 2 : 1)];
  const int64_t Kb = b->shape[rb < 2 ? 0 : rb - (sp->trans_b ? 1 : 2)];
  const int64_t P = rb < 2 ? 1 : b->shape[rb - (sp->trans_b ? 2 : 1)];
  const int la = MAX (ra - 2, 0), lb = MAX (rb - 2, 0), lo = MAX (la, lb);
  gboolean ok = K == Kb;
  int64_t lead[NNIC_MAX_DIMS];
  for (int i = 0; ok && i < lo; i++) {
    /* aligned from the right */
    const int64_t da = i - (lo - la) >= 0 ? a->shape[i - (lo - la)] : 1;
    const int64_t db = i - (lo - lb) >= 0 ? b->shape[i - (lo - lb)] : 1;
    ok = da == db || da == 1 || db == 1;
    lead[i] = MAX (da, db);
  }
  if (!ok) {
    op_error (node, error, NNIC_ERROR_SHAPE,
              "cannot multiply '%s' %s%s by '%s' %s%s: %s", a->name, sa,
              sp->trans_a ? " (transposed)" : "", b->name, sb, sp->trans_b ? " (transposed)" : "",
              K != Kb ? "the inner dimensions differ" : "the leading dimensions do not broadcast");
    return FALSE;
  }
  const int nd = lo + (ra >= 2) + (rb >= 2);
  if (nd < 1) {
    op_error (node, error, NNIC_ERROR_SHAPE,
              "the product of the vectors '%s' and '%s' is a scalar per sample, which nnic does "
              "not hold",
              a->name, b->name);
    return FALSE;
  }
  node->shape_ndim = nd;
  memcpy (node->shape, lead, sizeof (int64_t) * (size_t) lo);
  if (ra >= 2)
    node->shape[lo] = M;
  if (rb >= 2)
    node->shape[nd - 1] = P;
  if (!op_check_output (node, error))
    return FALSE;
  if (M > G_MAXINT || K > G_MAXINT || P > G_MAXINT) {
    op_error (node, error, NNIC_ERROR_SHAPE, "a matrix dimension is too large for BLAS");
    return FALSE;
  }

  MatMulGeom *g = g_new0 (MatMulGeom, 1);
  node->state = g;
  g->M = M;
  g->K = K;
  g->P = P;
  g->mats = nnic_shape_numel (lo, lead);
  g->na = nnic_shape_numel (la, a->shape);
  g->nb = nnic_shape_numel (lb, b->shape);
  g->a_of = g_new (int64_t, g->mats);
  g->b_of = g_new (int64_t, g->mats);
  for (int64_t j = 0; j < g->mats; j++) {
    /* j's coordinates in `lead`, from the last; each operand's index
     * skips the dimensions it broadcasts */
    int64_t rest = j, ia = 0, ib = 0, sta = 1, stb = 1;
    for (int i = lo - 1; i >= 0; i--) {
      const int64_t c = rest % lead[i];
      rest /= lead[i];
      const int ka = i - (lo - la), kb = i - (lo - lb);
      if (ka >= 0) {
        ia += (a->shape[ka] == 1 ? 0 : c) * sta;
        sta *= a->shape[ka];
      }
      if (kb >= 0) {
        ib += (b->shape[kb] == 1 ? 0 : c) * stb;
        stb *= b->shape[kb];
      }
    }
    g->a_of[j] = ia;
    g->b_of[j] = ib;
  }
  readers_init (&g->ra, g->a_of, g->mats, g->na);
  readers_init (&g->rb, g->b_of, g->mats, g->nb);
  return TRUE;
}

static gboolean
matmul_reshape (NnicNode *node, int64_t batch, GError **error)
{
  const MatMulGeom *g = node->state;
  return op_check_blas_dim (node, batch * g->mats, error);
}

/* Below this many multiply-adds the products stay on one thread. */
#define SPLIT_MIN_MACS ((int64_t) 1 << 18)

typedef struct {
  const float *a, *b;
  float *c;
  float *da, *db;
  const float *dc;
  int M, K, P, lda, ldb;
  CBLAS_TRANSPOSE ta, tb;
} MatMulCall;

static MatMulCall
matmul_call (const NnicNode *node)
{
  const MatMulGeom *g = node->state;
  const NnicMatMulSpec *sp = NODE_SPEC (node, NnicMatMulSpec);
  const NnicNode *a = node->inputs[0], *b = node->inputs[1];
  return (MatMulCall) {
    .a = a->out->f32, .b = b->out->f32, .c = node->out->f32,
    .da = a->gout ? a->gout->f32 : NULL, .db = b->gout ? b->gout->f32 : NULL,
    .dc = node->gout ? node->gout->f32 : NULL,
    .M = (int) g->M, .K = (int) g->K, .P = (int) g->P,
    .lda = (int) (sp->trans_a ? g->M : g->K), .ldb = (int) (sp->trans_b ? g->K : g->P),
    .ta = sp->trans_a ? CblasTrans : CblasNoTrans, .tb = sp->trans_b ? CblasTrans : CblasNoTrans,
  };
}

/* Rows [r0, r1) of output matrix q (sample q / mats, matrix q % mats). */
static void
product_rows (const MatMulGeom *g, const MatMulCall *c, int64_t q, int r0, int r1)
{
  const int64_t s = q / g->mats, j = q % g->mats;
  const float *a = c->a + (s * g->na + g->a_of[j]) * g->M * g->K;
  const float *b = c->b + (s * g->nb + g->b_of[j]) * g->K * g->P;
  /* op(a)'s rows: a's rows, or its columns when transposed */
  a += c->ta == CblasNoTrans ? (int64_t) r0 * c->K : r0;
  cblas_sgemm (CblasRowMajor, c->ta, c->tb, r1 - r0, c->P, c->K, 1.0f, a, c->lda, b, c->ldb, 0.0f,
               c->c + q * g->M * g->P + (int64_t) r0 * c->P, c->P);
}

static void
matmul_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const MatMulGeom *g = node->state;
  const MatMulCall c = matmul_call (node);
  const int64_t n = node->batch * g->mats;
  const int threads = g->M * g->K * g->P * n < SPLIT_MIN_MACS ? 1 : nnic_threads ();
  if (n >= threads || g->M < 2) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int64_t q = 0; q < n; q++)
      product_rows (g, &c, q, 0, c.M);
    return;
  }
  /* fewer matrices than threads: each split by rows */
  const int64_t parts = MIN ((threads + n - 1) / n, g->M);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < n * parts; t++) {
    int64_t lo, hi;
    nnic_split_range (g->M, (int) parts, (int) (t % parts), &lo, &hi);
    if (hi > lo)
      product_rows (g, &c, t / parts, (int) lo, (int) hi);
  }
}

/* da of a matrix i of sample s (i < na): the sum over the output matrices
 * that read it of dc @ op(b)^T (stored as op(a): transposed back when
 * trans_a). */
static void
grad_a (const MatMulGeom *g, const MatMulCall *c, int64_t s, int64_t i)
{
  float *da = c->da + (s * g->na + i) * g->M * g->K;
  for (int64_t u = g->ra.start[i]; u < g->ra.start[i + 1]; u++) {
    const int64_t j = g->ra.users[u];
    const float *b = c->b + (s * g->nb + g->b_of[j]) * g->K * g->P;
    const float *dc = c->dc + (s * g->mats + j) * g->M * g->P;
    if (c->ta == CblasNoTrans) /* da [M, K] += dc [M, P] op(b)^T [P, K] */
      cblas_sgemm (CblasRowMajor, CblasNoTrans, c->tb == CblasTrans ? CblasNoTrans : CblasTrans,
                   c->M, c->K, c->P, 1.0f, dc, c->P, b, c->ldb, 1.0f, da, c->K);
    else /* da [K, M] += op(b) [K, P] dc^T [P, M] */
      cblas_sgemm (CblasRowMajor, c->tb, CblasTrans, c->K, c->M, c->P, 1.0f, b, c->ldb, dc, c->P,
                   1.0f, da, c->M);
  }
}

/* db of b matrix i of sample s, the same way. */
static void
grad_b (const MatMulGeom *g, const MatMulCall *c, int64_t s, int64_t i)
{
  float *db = c->db + (s * g->nb + i) * g->K * g->P;
  for (int64_t u = g->rb.start[i]; u < g->rb.start[i + 1]; u++) {
    const int64_t j = g->rb.users[u];
    const float *a = c->a + (s * g->na + g->a_of[j]) * g->M * g->K;
    const float *dc = c->dc + (s * g->mats + j) * g->M * g->P;
    if (c->tb == CblasNoTrans) /* db [K, P] += op(a)^T [K, M] dc [M, P] */
      cblas_sgemm (CblasRowMajor, c->ta == CblasTrans ? CblasNoTrans : CblasTrans, CblasNoTrans,
                   c->K, c->P, c->M, 1.0f, a, c->lda, dc, c->P, 1.0f, db, c->P);
    else /* db [P, K] += dc^T [P, M] op(a) [M, K] */
      cblas_sgemm (CblasRowMajor, CblasTrans, c->ta, c->P, c->K, c->M, 1.0f, dc, c->P, a, c->lda,
                   1.0f, db, c->K);
  }
}

static void
matmul_backward (NnicNode *node)
{
  const MatMulGeom *g = node->state;
  const MatMulCall c = matmul_call (node);
  const int64_t B = node->batch;
  const int threads = g->M * g->K * g->P * B * g->mats < SPLIT_MIN_MACS ? 1 : nnic_threads ();
  if (c.da) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && B * g->na > 1)
    for (int64_t q = 0; q < B * g->na; q++)
      grad_a (g, &c, q / g->na, q % g->na);
  }
  if (c.db) {
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && B * g->nb > 1)
    for (int64_t q = 0; q < B * g->nb; q++)
      grad_b (g, &c, q / g->nb, q % g->nb);
  }
}

static gboolean
matmul_option (const NnicNode *node, const char *key, double *value)
{
  const NnicMatMulSpec *sp = NODE_SPEC (node, NnicMatMulSpec);
  if (!strcmp (key, "trans_a"))
    *value = sp->trans_a;
  else if (!strcmp (key, "trans_b"))
    *value = sp->trans_b;
  else
    return FALSE;
  return TRUE;
}

/* ---- ONNX ---- */

/* Both operands computed in the graph: ONNX's MatMul broadcasts the full
 * shapes, batch included, so per sample it is the same product only when
 * both carry the batch as a leading (not a matrix) axis, first in both
 * (equal ranks, at least 3); a vector per sample ([N, K], a matrix to
 * ONNX) or a lower rank would pair the batch with another axis. Values
 * whose batch a Reshape merged ([N*k, ...], both alike: the importer
 * checks) are the same with k in each sample. */
gboolean
nnic_matmul_convert (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                     OnnxValue *a, OnnxValue *b, GError **error)
{
  int64_t sa[NNIC_MAX_DIMS + 1], sb[NNIC_MAX_DIMS + 1];
  const int na = nnic_onnx_value_dims (ctx, a, sa), nb = nnic_onnx_value_dims (ctx, b, sb);
  if (na != nb || na < 3 || sa[0] != sb[0]) {
    g_autofree char *s1 = nnic_onnx_dims_string (na, sa);
    g_autofree char *s2 = nnic_onnx_dims_string (nb, sb);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the product of '%s' %s and '%s' %s would mix the batch dimension with "
                          "another (nnic multiplies two computed values of the same rank, at "
                          "least 3 with the batch)",
                          a->name, s1, b->name, s2);
    return FALSE;
  }
  return nnic_onnx_added (ctx, node, name,
                          nnic_model_add_matmul (ctx->m, name, a->node, b->node, NULL, error), error);
}

/* An Einsum equation that is a batched matrix product: three terms of r
 * >= 3 letters, the first r - 2 the same batch letters in all three (the
 * batch first), and in the last two one letter of each operand's own, one
 * shared letter summed over: "bij,bjk->bik", and torch's "B G H I D, B G H
 * J D -> B G H I J" (MaxViT's q k^T). Sets which operand comes first and
 * which are transposed. FALSE for anything else. */
static gboolean
einsum_as_matmul (const char *equation, int *rank, gboolean *swap, NnicMatMulSpec *spec)
{
  g_autoptr (GString) eq = g_string_new (NULL);
  for (const char *p = equation; *p; p++)
    if (*p != ' ')
      g_string_append_c (eq, *p);
  g_auto (GStrv) sides = g_strsplit (eq->str, "->", -1);
  if (g_strv_length (sides) != 2)
    return FALSE;
  g_auto (GStrv) ops = g_strsplit (sides[0], ",", -1);
  if (g_strv_length (ops) != 2)
    return FALSE;
  const char *t[3] = { ops[0], ops[1], sides[1] };
  const size_t r = strlen (t[0]);
  if (r < 3 || strlen (t[1]) != r || strlen (t[2]) != r)
    return FALSE;
  for (int k = 0; k < 3; k++)
    for (size_t i = 0; i < r; i++)
      if (!g_ascii_isalpha (t[k][i]) || strchr (t[k] + i + 1, t[k][i]))
        return FALSE; /* ellipses, diagonals */
  if (strncmp (t[0], t[1], r - 2) || strncmp (t[0], t[2], r - 2))
    return FALSE;
  const char *A = t[0] + r - 2, *B = t[1] + r - 2, *O = t[2] + r - 2;
  for (int k = 0; k < 3; k++)
    for (int i = 0; i < 2; i++)
      if (memchr (t[0], t[k][r - 2 + i], r - 2))
        return FALSE; /* a batch letter among the matrix axes */
  /* d: in both operands, not in the output; x: a's own; y: b's own */
  char d = 0;
  for (int i = 0; i < 2; i++)
    if (memchr (B, A[i], 2))
      d = A[i];
  if (!d || memchr (O, d, 2))
    return FALSE;
  const char x = A[0] == d ? A[1] : A[0], y = B[0] == d ? B[1] : B[0];
  if (x == y)
    return FALSE;
  *rank = (int) r;
  if (O[0] == x && O[1] == y) {
    /* [x, y] = op(a) [x, d] op(b) [d, y] */
    *swap = FALSE;
    spec->trans_a = A[0] == d;
    spec->trans_b = B[0] == y;
  } else if (O[0] == y && O[1] == x) {
    /* [y, x] = op(b) [y, d] op(a) [d, x] */
    *swap = TRUE;
    spec->trans_a = B[0] == d;
    spec->trans_b = A[0] == x;
  } else {
    return FALSE;
  }
  return TRUE;
}

static gboolean
convert_einsum (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "equation", NULL };
  g_autofree char *equation = NULL;
  if (!nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_string (ctx, node, "equation", NULL, &equation, error))
    return FALSE;
  if (!equation) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "the equation attribute is missing");
    return FALSE;
  }
  int rank = 0;
  gboolean swap = FALSE;
  NnicMatMulSpec spec = { 0 };
  if (node->n_input != 2 || !einsum_as_matmul (equation, &rank, &swap, &spec)) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the equation '%s' is not supported (nnic imports the batched matrix "
                          "products of two operands, such as \"bij,bjk->bik\" and \"bgid,bgjd->bgij\")",
                          equation);
    return FALSE;
  }
  OnnxValue *a = nnic_onnx_input_node (ctx, node, 0, error);
  OnnxValue *b = a ? nnic_onnx_input_node (ctx, node, 1, error) : NULL;
  if (!b)
    return FALSE;
  int64_t sa[NNIC_MAX_DIMS + 1], sb[NNIC_MAX_DIMS + 1];
  const int na = nnic_onnx_value_dims (ctx, a, sa), nb = nnic_onnx_value_dims (ctx, b, sb);
  /* the batch letters name the same dimensions: no broadcasting */
  gboolean ok = na == rank && nb == rank;
  for (int i = 0; ok && i < rank - 2; i++)
    ok = sa[i] == sb[i];
  if (!ok) {
    g_autofree char *s1 = nnic_onnx_dims_string (na, sa);
    g_autofree char *s2 = nnic_onnx_dims_string (nb, sb);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_SHAPE,
                          "the operands %s and %s do not fit the equation '%s'", s1, s2, equation);
    return FALSE;
  }
  OnnxValue *first = swap ? b : a, *second = swap ? a : b;
  return nnic_onnx_added (ctx, node, name,
                          nnic_model_add_matmul (ctx->m, name, first->node, second->node, &spec, error),
                          error);
}

/* A transposed operand is a Transpose of its last two axes first. */
static const char *
export_operand (NnicOnnxExporter *x, guint i, guint k, gboolean transposed)
{
  const char *v = nnic_onnx_export_input (x, i, k);
  if (!transposed)
    return v;
  const char *name = nnic_model_node_name (x->model, i);
  char *tn = nnic_onnx_export_keep (x, g_strdup_printf ("%s.onnx_transpose_%c", name, k ? 'b' : 'a'));
  Onnx__NodeProto *t = nnic_onnx_export_node (x, "Transpose", tn, tn);
  nnic_onnx_export_add_input (x, t, v);
  const int rank = nnic_graph_node (x->model, i)->inputs[k]->shape_ndim + 1;
  int64_t perm[NNIC_MAX_DIMS];
  for (int d = 0; d < rank; d++)
    perm[d] = d;
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  nnic_onnx_export_attr_ints (x, t, "perm", perm, (size_t) rank);
  return tn;
}

static gboolean
export_matmul (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  const NnicMatMulSpec *sp = NODE_SPEC (nnic_graph_node (x->model, i), NnicMatMulSpec);
  const char *a = export_operand (x, i, 0, sp->trans_a);
  const char *b = export_operand (x, i, 1, sp->trans_b);
  const char *name = nnic_model_node_name (x->model, i);
  Onnx__NodeProto *n = nnic_onnx_export_node (x, "MatMul", name, name);
  nnic_onnx_export_add_input (x, n, a);
  nnic_onnx_export_add_input (x, n, b);
  return TRUE;
}

/* The channel rule is END: the output's last axis comes from b and its
 * rows from a, a mix no channel of either survives one to one. */
const NnicOp nnic_op_matmul = {
  .type = "MatMul",
  .setup = matmul_setup,
  .reshape = matmul_reshape,
  .forward = matmul_forward,
  .backward = matmul_backward,
  .finalize = matmul_finalize,
  .option = matmul_option,
  .channels = NNIC_CHANNELS_END,
  .onnx_ops = (const char *const[]) { "Einsum", NULL },
  .onnx_import = convert_einsum,
  .onnx_export = export_matmul,
  .onnx_merged = NNIC_ONNX_MERGED_KEEP, /* a merged batch is one more leading letter */
};

gboolean
nnic_model_add_matmul (NnicModel *m, const char *name, const char *a, const char *b,
                       const NnicMatMulSpec *spec, GError **error)
{
  const NnicMatMulSpec plain = { 0 };
  const char *in[2] = { a, b };
  return nnic_graph_add_named (m, name, &nnic_op_matmul, in, 2, spec ? spec : &plain,
                               sizeof plain, error);
}
