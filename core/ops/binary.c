/* Elementwise arithmetic with broadcasting: Add, Sub, Mul, Div, Pow (torch's
 * a + b, a - b, a * b, a / b, a ** b; ONNX Add, Sub, Mul, Div, Pow), and
 * Expand (x.expand of a computed tensor), which shares their kernel.
 *
 * Broadcasting is numpy's, over the per-sample shapes: aligned on the
 * right, a dimension of 1 or a missing one repeats. The batch leads both
 * inputs and is never broadcast. One operand may be a scalar constant held
 * in the spec (x * 0.5, 1 - x, 2 ** x): the node then has one input. A
 * constant tensor operand is a Parameter node (parameter.c).
 *
 * The kernel sees the output, batch included, as a few "runs": dimensions
 * of size 1 are dropped and neighbours along which each operand is either
 * full (its index follows the output's) or broadcast (stride 0) alike are
 * merged. SE's x * gate, [N, C, H, W] * [N, C, 1, 1], is then [N*C] x [H*W]
 * with the gate one value per row; equal shapes are one run. Forward goes
 * row by row over the innermost run, long rows cut in chunks so that both
 * cores work on a single flat run too. An input's gradient is the output's
 * times the local derivative, summed over the runs the input is broadcast
 * along: the threads split the input's own elements and sum the broadcast
 * runs inside, so no two threads write one element and no buffer is needed. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <math.h>
#include <string.h>

typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_POW, BIN_EXPAND } BinKind;

typedef struct {
  BinKind kind;
  gboolean has_scalar;   /* one operand is `scalar`, and the node has one input */
  gboolean scalar_first; /* the scalar is the left operand: c - x, c / x, c ** x */
  double scalar;
  int ndim;              /* Expand: the per-sample output shape */
  int64_t shape[NNIC_MAX_DIMS];
} BinarySpec;

/* ---- the runs ---- */

#define RUNS_MAX (NNIC_MAX_DIMS + 1)

/* Strides in elements of operand 0, operand 1 and the output (contiguous);
 * an operand's stride is 0 along a run it is broadcast along. */
typedef struct {
  int n; /* at least 1 */
  int64_t size[RUNS_MAX];
  int64_t stride[3][RUNS_MAX];
} Runs;

typedef struct {
  const float *x[2]; /* the operands' values */
  float *g[2];       /* their gradients; NULL where none is wanted (or a constant) */
  float scalar;      /* what x[k] points at for the scalar operand */
  Runs r;
} Operands;

/* Operand k has per-sample shape shape[k] of rank nd[k]; batched[k] is
 * FALSE for a constant (the scalar). */
static void
runs_make (Runs *r, int64_t batch, int out_nd, const int64_t *out, const int nd[2],
           const int64_t *const shape[2], const gboolean batched[2])
{
  gboolean full[2][RUNS_MAX];
  int n = 0;
  for (int d = -1; d < out_nd; d++) {
    const int64_t s = d < 0 ? batch : out[d];
    if (s == 1)
      continue;
    gboolean f[2];
    for (int k = 0; k < 2; k++) {
      const int j = d - (out_nd - nd[k]);
      f[k] = d < 0 ? batched[k] : j >= 0 && shape[k][j] == s;
    }
    if (n > 0 && full[0][n - 1] == f[0] && full[1][n - 1] == f[1]) {
      r->size[n - 1] *= s;
      continue;
    }
    r->size[n] = s;
    full[0][n] = f[0];
    full[1][n] = f[1];
    n++;
  }
  if (n == 0) { /* a single element */
    r->size[0] = 1;
    full[0][0] = full[1][0] = FALSE;
    n = 1;
  }
  r->n = n;
  int64_t acc[3] = { 1, 1, 1 };
  for (int d = n - 1; d >= 0; d--)
    for (int k = 0; k < 3; k++) {
      const gboolean f = k == 2 || full[k][d];
      r->stride[k][d] = f ? acc[k] : 0;
      if (f)
        acc[k] *= r->size[d];
    }
}

/* Adds to off[] the offsets of index i over the runs dims[0..nd) (the
 * last one varying fastest); dims NULL: the runs 0..nd). */
static inline void
runs_offset (const Runs *r, const int *dims, int nd, int64_t i, int64_t off[3])
{
  for (int j = nd - 1; j >= 0; j--) {
    const int d = dims ? dims[j] : j;
    const int64_t idx = i % r->size[d];
    i /= r->size[d];
    for (int k = 0; k < 3; k++)
      off[k] += idx * r->stride[k][d];
  }
}

static void
operands (NnicNode *node, Operands *o)
{
  const BinarySpec *s = NODE_SPEC (node, BinarySpec);
  int nd[2];
  const int64_t *shape[2];
  gboolean batched[2];
  guint in = 0;
  /* Expand reads one input; its other operand is a zero it never uses. */
  const gboolean one_input = s->has_scalar || s->kind == BIN_EXPAND;
  const int ks = !one_input ? -1 : s->scalar_first ? 0 : 1;
  o->scalar = s->has_scalar ? (float) s->scalar : 0.0f;
  for (int k = 0; k < 2; k++) {
    if (k == ks) {
      o->x[k] = &o->scalar;
      o->g[k] = NULL;
      nd[k] = 0;
      shape[k] = NULL;
      batched[k] = FALSE;
      continue;
    }
    const NnicNode *x = node->inputs[in++];
    o->x[k] = x->out->f32;
    o->g[k] = x->gout ? x->gout->f32 : NULL;
    nd[k] = x->shape_ndim;
    shape[k] = x->shape;
    batched[k] = TRUE;
  }
  runs_make (&o->r, node->batch, node->shape_ndim, node->shape, nd, shape, batched);
}

/* ---- row kernels ---- */

/* av, bv: the operands' values at j, each stepping along a row (stride 1)
 * or staying on one value (stride 0); one loop per case, so that each
 * vectorises. */
#define ROWA(j) a[j]
#define FIXA(j) a[0]
#define ROWB(j) b[j]
#define FIXB(j) b[0]
#define ROW_LOOP(AV, BV, BODY)                \
  for (int64_t j = 0; j < n; j++) {           \
    const float av = AV (j), bv = BV (j);     \
    (void) av;                                \
    (void) bv;                                \
    BODY;                                     \
  }
#define ROW_CASES(BODY)                       \
  do {                                        \
    if (sa && sb)                             \
      ROW_LOOP (ROWA, ROWB, BODY)             \
    else if (sa)                              \
      ROW_LOOP (ROWA, FIXB, BODY)             \
    else if (sb)                              \
      ROW_LOOP (FIXA, ROWB, BODY)             \
    else                                      \
      ROW_LOOP (FIXA, FIXB, BODY)             \
  } while (0)

/* x ** e for one exponent, as torch computes the common ones (its
 * pow_tensor_scalar kernel): products, sqrt, reciprocal. */
static void
pow_row (const float *restrict a, int64_t n, float e, float *restrict y)
{
  if (e == 2.0f)
    for (int64_t j = 0; j < n; j++)
      y[j] = a[j] * a[j];
  else if (e == 3.0f)
    for (int64_t j = 0; j < n; j++)
      y[j] = a[j] * a[j] * a[j];
  else if (e == 0.5f)
    for (int64_t j = 0; j < n; j++)
      y[j] = sqrtf (a[j]);
  else if (e == -1.0f)
    for (int64_t j = 0; j < n; j++)
      y[j] = 1.0f / a[j];
  else if (e == 1.0f)
    memcpy (y, a, sizeof (float) * (size_t) n);
  else
    for (int64_t j = 0; j < n; j++)
      y[j] = powf (a[j], e);
}

static void
forward_row (BinKind kind, const float *restrict a, int64_t sa, const float *restrict b,
             int64_t sb, float *restrict y, int64_t n)
{
  switch (kind) {
  case BIN_ADD:
    ROW_CASES (y[j] = av + bv);
    break;
  case BIN_SUB:
    ROW_CASES (y[j] = av - bv);
    break;
  case BIN_MUL:
    ROW_CASES (y[j] = av * bv);
    break;
  case BIN_DIV:
    ROW_CASES (y[j] = av / bv);
    break;
  case BIN_POW:
    if (sa && !sb)
      pow_row (a, n, b[0], y);
    else
      ROW_CASES (y[j] = powf (av, bv));
    break;
  case BIN_EXPAND:
    ROW_CASES (y[j] = av);
    break;
  }
}

/* The local derivatives, times g = dy: torch's (derivatives.yaml): the
 * exponent's gradient is 0 where the base is 0 and the exponent is not
 * negative, the base's 0 where the exponent is 0 (not NaN from 0 * inf). */
#define D_A(kind, g, av, bv)                                                    \
  ((kind) == BIN_MUL   ? (g) * (bv)                                             \
   : (kind) == BIN_DIV ? (g) / (bv)                                             \
   : (kind) == BIN_POW ? ((bv) == 0.0f ? 0.0f : (g) * (bv) * powf ((av), (bv) - 1.0f)) \
                       : (g))
#define D_B(kind, g, av, bv)                                                    \
  ((kind) == BIN_MUL   ? (g) * (av)                                             \
   : (kind) == BIN_DIV ? -(g) * (((av) / (bv)) / (bv))                          \
   : (kind) == BIN_POW ? ((av) == 0.0f && (bv) >= 0.0f ? 0.0f                   \
                                                      : (g) * powf ((av), (bv)) * logf (av)) \
   : (kind) == BIN_SUB ? -(g)                                                   \
                       : (g))

/* gk[j] += d(out)/d(operand k) * dy[j] along a row where operand k is full. */
#define GRAD_ROW_KIND(KIND)                                            \
  do {                                                                 \
    if (k == 0)                                                        \
      ROW_CASES (gk[j] += D_A (KIND, dy[j], av, bv));                  \
    else                                                               \
      ROW_CASES (gk[j] += D_B (KIND, dy[j], av, bv));                  \
  } while (0)

static void
grad_row (BinKind kind, int k, const float *restrict a, int64_t sa, const float *restrict b,
          int64_t sb, const float *restrict dy, float *restrict gk, int64_t n)
{
  switch (kind) {
  case BIN_ADD:
  case BIN_EXPAND:
    op_acc (gk, dy, n);
    break;
  case BIN_SUB:
    if (k == 0)
      op_acc (gk, dy, n);
    else
      for (int64_t j = 0; j < n; j++)
        gk[j] -= dy[j];
    break;
  case BIN_MUL:
    GRAD_ROW_KIND (BIN_MUL);
    break;
  case BIN_DIV:
    GRAD_ROW_KIND (BIN_DIV);
    break;
  case BIN_POW:
    GRAD_ROW_KIND (BIN_POW);
    break;
  }
}

/* The sum over a row of d(out)/d(operand k) * dy, where operand k is one
 * value and the other steps along the row (or the row is one element),
 * with independent partial sums as op_sum. */
#define SUM_LOOP(AV, BV, TERM)                                                         \
  do {                                                                                 \
    float s8[8] = { 0 };                                                               \
    int64_t i = 0;                                                                     \
    for (; i + 8 <= n; i += 8)                                                         \
      for (int l = 0; l < 8; l++) {                                                    \
        const float av = AV (i + l), bv = BV (i + l), g = dy[i + l];                   \
        (void) av;                                                                     \
        (void) bv;                                                                     \
        s8[l] += (TERM);                                                               \
      }                                                                                \
    float t = 0.0f;                                                                    \
    for (; i < n; i++) {                                                               \
      const float av = AV (i), bv = BV (i), g = dy[i];                                 \
      (void) av;                                                                       \
      (void) bv;                                                                       \
      t += (TERM);                                                                     \
    }                                                                                  \
    return t + ((s8[0] + s8[4]) + (s8[1] + s8[5])) + ((s8[2] + s8[6]) + (s8[3] + s8[7])); \
  } while (0)

static float
grad_sum (BinKind kind, int k, const float *restrict a, const float *restrict b,
          const float *restrict dy, int64_t n)
{
  switch (kind) {
  case BIN_ADD:
  case BIN_EXPAND:
    return op_sum (dy, n);
  case BIN_SUB:
    return k == 0 ? op_sum (dy, n) : -op_sum (dy, n);
  case BIN_MUL:
    if (k == 0)
      SUM_LOOP (FIXA, ROWB, g * bv);
    SUM_LOOP (ROWA, FIXB, g * av);
  case BIN_DIV:
    if (k == 0)
      SUM_LOOP (FIXA, ROWB, D_A (BIN_DIV, g, av, bv));
    SUM_LOOP (ROWA, FIXB, D_B (BIN_DIV, g, av, bv));
  case BIN_POW:
    if (k == 0)
      SUM_LOOP (FIXA, ROWB, D_A (BIN_POW, g, av, bv));
    SUM_LOOP (ROWA, FIXB, D_B (BIN_POW, g, av, bv));
  }
  return 0.0f;
}

/* ---- the op ---- */

/* Rows longer than this are cut, so that one long row (equal shapes) is
 * shared by the threads too. */
#define CHUNK ((int64_t) 8192)

static void
binary_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const BinKind kind = NODE_SPEC (node, BinarySpec)->kind;
  Operands o;
  operands (node, &o);
  const Runs *r = &o.r;
  const int last = r->n - 1;
  const int64_t n = r->size[last], sa = r->stride[0][last], sb = r->stride[1][last];
  const int64_t rows = node->out->numel / n, chunks = (n + CHUNK - 1) / CHUNK;
  float *y = node->out->f32;
#pragma omp parallel for schedule(static) if (node->out->numel > OP_PARALLEL_MIN)
  for (int64_t t = 0; t < rows * chunks; t++) {
    const int64_t row = t / chunks, j0 = (t % chunks) * CHUNK, len = MIN (CHUNK, n - j0);
    int64_t off[3] = { 0, 0, 0 };
    runs_offset (r, NULL, last, row, off);
    forward_row (kind, o.x[0] + off[0] + j0 * sa, sa, o.x[1] + off[1] + j0 * sb, sb,
                 y + row * n + j0, len);
  }
}

/* Adds operand k's gradient: the threads split the runs along which it is
 * full (keep); the runs it is broadcast along (reduce) are summed inside. */
static void
grad_input (BinKind kind, int k, const Operands *o, const float *dy)
{
  const Runs *r = &o->r;
  const int last = r->n - 1;
  int keep[RUNS_MAX], red[RUNS_MAX], n_keep = 0, n_red = 0;
  int64_t keep_n = 1, red_n = 1;
  for (int d = 0; d < last; d++) {
    if (r->stride[k][d]) {
      keep[n_keep++] = d;
      keep_n *= r->size[d];
    } else {
      red[n_red++] = d;
      red_n *= r->size[d];
    }
  }
  const int64_t n = r->size[last], sa = r->stride[0][last], sb = r->stride[1][last];
  const int64_t total = keep_n * red_n * n;
  const float *a = o->x[0], *b = o->x[1];
  float *gk = o->g[k];
  if (r->stride[k][last]) {
    /* operand k is full along the rows: each thread owns a piece of row */
    const int64_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) if (total > OP_PARALLEL_MIN)
    for (int64_t t = 0; t < keep_n * chunks; t++) {
      const int64_t j0 = (t % chunks) * CHUNK, len = MIN (CHUNK, n - j0);
      int64_t base[3] = { j0 * sa, j0 * sb, j0 };
      runs_offset (r, keep, n_keep, t / chunks, base);
      for (int64_t q = 0; q < red_n; q++) {
        int64_t off[3] = { base[0], base[1], base[2] };
        runs_offset (r, red, n_red, q, off);
        grad_row (kind, k, a + off[0], sa, b + off[1], sb, dy + off[2], gk + off[k], len);
      }
    }
  } else {
    /* operand k is one value per row (a per-channel gate or scale) */
#pragma omp parallel for schedule(static) if (total > OP_PARALLEL_MIN)
    for (int64_t t = 0; t < keep_n; t++) {
      int64_t base[3] = { 0, 0, 0 };
      runs_offset (r, keep, n_keep, t, base);
      float s = 0.0f;
      for (int64_t q = 0; q < red_n; q++) {
        int64_t off[3] = { base[0], base[1], base[2] };
        runs_offset (r, red, n_red, q, off);
        s += grad_sum (kind, k, a + off[0], b + off[1], dy + off[2], n);
      }
      gk[base[k]] += s;
    }
  }
}

static void
binary_backward (NnicNode *node)
{
  const BinKind kind = NODE_SPEC (node, BinarySpec)->kind;
  Operands o;
  operands (node, &o);
  /* x * x: both passes add into the one gradient, each without races */
  for (int k = 0; k < 2; k++)
    if (o.g[k])
      grad_input (kind, k, &o, node->gout->f32);
}

static const char *const verbs[] = { "add", "subtract", "multiply", "divide", "raise",
                                     "expand" };

/* numpy's broadcast of two shapes; FALSE when they do not broadcast. */
static gboolean
broadcast (int na, const int64_t *a, int nb, const int64_t *b, int *no, int64_t *o)
{
  const int n = MAX (na, nb);
  for (int d = 0; d < n; d++) {
    const int ia = d - (n - na), ib = d - (n - nb);
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    if (da != db && da != 1 && db != 1)
      return FALSE;
    o[d] = da == 1 ? db : da;
  }
  *no = n;
  return TRUE;
}

static gboolean
binary_setup (NnicNode *node, GError **error)
{
  const BinarySpec *s = NODE_SPEC (node, BinarySpec);
  const guint want = s->has_scalar ? 1 : 2;
  if (node->n_inputs != want) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "%s takes %u input%s, not %u", node->op->type,
              want, want > 1 ? "s" : "", node->n_inputs);
    return FALSE;
  }
  const NnicNode *a = node->inputs[0];
  if (s->has_scalar) {
    node->shape_ndim = a->shape_ndim;
    memcpy (node->shape, a->shape, sizeof (int64_t) * (size_t) a->shape_ndim);
    return TRUE;
  }
  const NnicNode *b = node->inputs[1];
  if (!broadcast (a->shape_ndim, a->shape, b->shape_ndim, b->shape, &node->shape_ndim,
                  node->shape)) {
    g_autofree char *sa = nnic_shape_to_string (a->shape_ndim, a->shape);
    g_autofree char *sb = nnic_shape_to_string (b->shape_ndim, b->shape);
    op_error (node, error, NNIC_ERROR_SHAPE,
              "cannot %s '%s' of shape %s and '%s' of shape %s: the shapes do not broadcast "
              "(each dimension, aligned on the right, must agree or be 1)",
              verbs[s->kind], a->name, sa, b->name, sb);
    return FALSE;
  }
  return op_check_output (node, error);
}

/* A scalar operand keeps the channels; two tensors tie them. */
static NnicChannelRule
binary_channel_rule (const NnicNode *node)
{
  return node->n_inputs == 2 ? NNIC_CHANNELS_TIE : NNIC_CHANNELS_KEEP;
}

static gboolean
binary_option (const NnicNode *node, const char *key, double *value)
{
  const BinarySpec *s = NODE_SPEC (node, BinarySpec);
  if (!s->has_scalar)
    return FALSE;
  if (!strcmp (key, "scalar"))
    *value = s->scalar;
  else if (!strcmp (key, "scalar_first"))
    *value = s->scalar_first;
  else
    return FALSE;
  return TRUE;
}

/* ---- ONNX ---- */

static const char *const onnx_types[] = { "Add", "Sub", "Mul", "Div", "Pow" };

static BinKind
kind_of (const char *onnx_type)
{
  for (guint k = 0; k < G_N_ELEMENTS (onnx_types); k++)
    if (!strcmp (onnx_type, onnx_types[k]))
      return (BinKind) k;
  g_return_val_if_reached (BIN_ADD);
}

/* The Parameter node holding constant `c` (full shape cs[0..cn)) as the
 * per-sample shape s[0..sn): the one already made for it, or a new one
 * named after it (or after `name`, the node reading it). g_free. */
static char *
constant_parameter (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                    OnnxValue *c, int cn, const int64_t *cs, int sn, const int64_t *s,
                    GError **error)
{
  g_autofree char *base = nnic_onnx_state_dict_name (c->name) ? g_strdup (c->name)
                                                              : g_strconcat (name, ".const", NULL);
  const int i = nnic_model_find_node (ctx->m, base);
  if (i >= 0 && nnic_parameter_matches (ctx->m, (guint) i, cn, cs, sn, s))
    return g_steal_pointer (&base); /* one initializer read by several nodes */
  g_autofree char *pname = nnic_onnx_fresh_name (ctx, base);
  if (!nnic_model_add_parameter (ctx->m, pname, cs, cn, s, sn, error)) {
    nnic_onnx_node_prefix (ctx, node, error);
    return NULL;
  }
  if (!nnic_onnx_const_to_param (ctx, node, c, pname, FALSE, 1.0, error))
    return NULL;
  return g_steal_pointer (&pname);
}

static gboolean
convert_binary (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                GError **error)
{
  const BinKind kind = kind_of (node->op_type);
  OnnxValue *v[2];
  if (!(v[0] = nnic_onnx_input (ctx, node, 0, error)) ||
      !(v[1] = nnic_onnx_input (ctx, node, 1, error)) || !nnic_onnx_no_attrs (ctx, node, error))
    return FALSE;
  if (v[0]->kind == ONNX_VALUE_CONST && v[1]->kind == ONNX_VALUE_CONST) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "both operands ('%s', '%s') are constants, which nnic does not fold "
                          "here",
                          v[0]->name, v[1]->name);
    return FALSE;
  }
  int64_t s[2][NNIC_MAX_DIMS];
  if (v[0]->kind == ONNX_VALUE_NODE && v[1]->kind == ONNX_VALUE_NODE) {
    /* Both carry the batch: with ranks that differ, ONNX would align one's
     * batch with a dimension of the other. */
    const int n0 = nnic_onnx_value_shape (ctx, v[0], s[0]), n1 = nnic_onnx_value_shape (ctx, v[1], s[1]);
    if (n0 != n1) {
      g_autofree char *s0 = nnic_onnx_full_shape (n0, s[0]);
      g_autofree char *s1 = nnic_onnx_full_shape (n1, s[1]);
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "broadcasting %s with %s would align the batch dimension of one "
                            "with another dimension of the other",
                            s0, s1);
      return FALSE;
    }
    return nnic_onnx_added (ctx, node, name,
                            nnic_model_add_binary (ctx->m, name, (NnicBinaryOp) kind,
                                                   v[0]->node, v[1]->node, error),
                            error);
  }
  const int kc = v[0]->kind == ONNX_VALUE_CONST ? 0 : 1;
  OnnxValue *x = v[1 - kc], *c = v[kc];
  const int xn = nnic_onnx_value_shape (ctx, x, s[0]);
  int cn;
  int64_t cs[NNIC_MAX_DIMS], numel;
  if (!nnic_onnx_const_dims (ctx, node, c, &cn, cs, &numel, error))
    return FALSE;
  g_autofree char *xs = nnic_onnx_full_shape (xn, s[0]);
  g_autofree char *css = nnic_shape_to_string (cn, cs);
  if (cn > xn + 1) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the constant '%s' %s has more dimensions than '%s' %s: the batch "
                          "would not stay the first dimension",
                          c->name, css, x->name, xs);
    return FALSE;
  }
  if (numel == 1) {
    /* GELU's 0.5 and 1.4142, a Div by a constant: folded into the node */
    double value;
    if (!nnic_onnx_const_scalar (ctx, c, &value, error)) {
      nnic_onnx_node_prefix (ctx, node, error);
      return FALSE;
    }
    return nnic_onnx_added (ctx, node, name,
                            nnic_model_add_binary_scalar (ctx->m, name, (NnicBinaryOp) kind,
                                                          x->node, value, kc == 0, error),
                            error);
  }
  if (cn == xn + 1 && cs[0] != 1) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "the constant '%s' %s would be broadcast over the batch of '%s' %s "
                          "(its first dimension must be 1)",
                          c->name, css, x->name, xs);
    return FALSE;
  }
  /* The constant becomes a Parameter: [C, 1, 1] against [N, C, H, W] is
   * [C, 1, 1] per sample; [1, T, D] against [N, T, D] is [T, D]. */
  const int off = cn == xn + 1 ? 1 : 0;
  g_autofree char *pname = constant_parameter (ctx, node, name, c, cn, cs, cn - off, cs + off,
                                               error);
  if (!pname)
    return FALSE;
  const char *a = kc == 0 ? pname : x->node, *b = kc == 0 ? x->node : pname;
  return nnic_onnx_added (ctx, node, name,
                          nnic_model_add_binary (ctx->m, name, (NnicBinaryOp) kind, a, b, error),
                          error);
}

/* Operand k of binary node i, reshaped to the output's rank where ONNX
 * would otherwise align its batch with another dimension: [N, D] against
 * [N, T, D] goes as [N, 1, D]. A Parameter read as a bare initializer has
 * no batch, and aligns as it is. */
static const char *
export_operand (NnicOnnxExporter *x, guint i, guint k)
{
  const NnicNode *node = nnic_graph_node (x->model, i), *in = node->inputs[k];
  const char *value = nnic_onnx_export_input (x, i, k);
  if (in->shape_ndim == node->shape_ndim || nnic_parameter_unbatched (x->model, in->index))
    return value;
  int64_t shape[NNIC_MAX_DIMS + 1] = { 0 }; /* 0: the batch, as it is */
  const int pad = node->shape_ndim - in->shape_ndim;
  for (int d = 0; d < node->shape_ndim; d++)
    shape[d + 1] = d < pad ? 1 : in->shape[d - pad];
  char *out = nnic_onnx_export_keep (x, g_strdup_printf ("%s.onnx_operand%u", node->name, k));
  Onnx__NodeProto *r = nnic_onnx_export_node (x, "Reshape", out, out);
  nnic_onnx_export_add_input (x, r, value);
  char *sn = nnic_onnx_export_keep (x, g_strconcat (out, "_shape", NULL));
  nnic_onnx_export_add_input (x, r, nnic_onnx_export_constant_i64 (x, sn, shape, node->shape_ndim + 1));
  return out;
}

static gboolean
export_binary (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  const NnicNode *node = nnic_graph_node (x->model, i);
  const BinarySpec *s = NODE_SPEC (node, BinarySpec);
  const char *in[2];
  if (s->has_scalar) {
    const float v = (float) s->scalar;
    char *cn = nnic_onnx_export_keep (x, g_strconcat (node->name, ".onnx_scalar", NULL));
    in[s->scalar_first ? 0 : 1] = nnic_onnx_export_constant_f32 (x, cn, &v, 1, TRUE);
    in[s->scalar_first ? 1 : 0] = export_operand (x, i, 0);
  } else {
    in[0] = export_operand (x, i, 0);
    in[1] = export_operand (x, i, 1);
  }
  Onnx__NodeProto *n = nnic_onnx_export_node (x, onnx_types[s->kind], node->name, node->name);
  nnic_onnx_export_add_input (x, n, in[0]);
  nnic_onnx_export_add_input (x, n, in[1]);
  return TRUE;
}

#define BINARY_OP(name_, type_)                                 \
  const NnicOp nnic_op_##name_ = {                              \
    .type = type_,                                              \
    .setup = binary_setup,                                      \
    .forward = binary_forward,                                  \
    .backward = binary_backward,                                \
    .option = binary_option,                                    \
    .channels = NNIC_CHANNELS_TIE,                              \
    .channel_rule = binary_channel_rule,                        \
    .onnx_ops = (const char *const[]) { type_, NULL },          \
    .onnx_import = convert_binary,                              \
    .onnx_export = export_binary,                               \
    .onnx_merged = NNIC_ONNX_MERGED_KEEP,                       \
  };

BINARY_OP (add, "Add")
BINARY_OP (sub, "Sub")
BINARY_OP (mul, "Mul")
BINARY_OP (div, "Div")
BINARY_OP (pow, "Pow")

static const NnicOp *const binary_ops[] = { &nnic_op_add, &nnic_op_sub, &nnic_op_mul,
                                            &nnic_op_div, &nnic_op_pow };

gboolean
nnic_op_broadcasts (const NnicOp *op)
{
  for (guint k = 0; k < G_N_ELEMENTS (binary_ops); k++)
    if (op == binary_ops[k])
      return TRUE;
  return FALSE;
}

static gboolean
check_kind (const char *name, NnicBinaryOp op, GError **error)
{
  if ((int) op < 0 || op >= G_N_ELEMENTS (binary_ops)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: unknown binary op %d",
                 name ? name : "binary", (int) op);
    return FALSE;
  }
  return TRUE;
}

gboolean
nnic_model_add_binary (NnicModel *m, const char *name, NnicBinaryOp op, const char *a,
                       const char *b, GError **error)
{
  if (!check_kind (name, op, error))
    return FALSE;
  const char *in[2] = { a, b };
  BinarySpec spec = { .kind = (BinKind) op };
  return nnic_graph_add_named (m, name, binary_ops[op], in, 2, &spec, sizeof spec, error);
}

gboolean
nnic_model_add_binary_scalar (NnicModel *m, const char *name, NnicBinaryOp op, const char *x,
                              double c, gboolean scalar_first, GError **error)
{
  if (!check_kind (name, op, error))
    return FALSE;
  BinarySpec spec = {
    .kind = (BinKind) op, .has_scalar = TRUE, .scalar_first = scalar_first != FALSE, .scalar = c
  };
  return nnic_graph_add_unary (m, name, x, binary_ops[op], &spec, sizeof spec, error);
}

gboolean
nnic_model_add_add (NnicModel *m, const char *name, const char *a, const char *b, GError **error)
{
  return nnic_model_add_binary (m, name, NNIC_BINARY_ADD, a, b, error);
}

/* ---- Expand (a computed tensor broadcast to a larger shape) ---- */

static gboolean
expand_setup (NnicNode *node, GError **error)
{
  const BinarySpec *s = NODE_SPEC (node, BinarySpec);
  const NnicNode *in = node->inputs[0];
  gboolean fits = s->ndim == in->shape_ndim;
  for (int d = 0; fits && d < s->ndim; d++)
    fits = s->shape[d] >= 1 && (in->shape[d] == s->shape[d] || in->shape[d] == 1);
  if (!fits) {
    g_autofree char *from = nnic_shape_to_string (in->shape_ndim, in->shape);
    g_autofree char *to = nnic_shape_to_string (s->ndim, s->shape);
    op_error (node, error, NNIC_ERROR_SHAPE,
              "cannot expand '%s' of shape %s to %s: the ranks must agree and each dimension "
              "be kept or grow from 1",
              in->name, from, to);
    return FALSE;
  }
  node->shape_ndim = s->ndim;
  memcpy (node->shape, s->shape, sizeof (int64_t) * (size_t) s->ndim);
  return op_check_output (node, error);
}

static NnicChannelRule
expand_channel_rule (const NnicNode *node)
{
  const NnicNode *in = node->inputs[0];
  return in->shape_ndim > 0 && in->shape[0] == node->shape[0] ? NNIC_CHANNELS_KEEP
                                                              : NNIC_CHANNELS_END;
}

static gboolean
export_expand (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  int64_t shape[NNIC_MAX_DIMS + 1] = { 1 }; /* 1 broadcasts to the batch */
  const int nd = nnic_model_node_shape (x->model, i, shape + 1);
  Onnx__NodeProto *n = nnic_onnx_export_simple (x, "Expand", i);
  char *sn = nnic_onnx_export_keep (x, g_strconcat (nnic_model_node_name (x->model, i),
                                                    ".onnx_shape", NULL));
  nnic_onnx_export_add_input (x, n, nnic_onnx_export_constant_i64 (x, sn, shape, nd + 1));
  return TRUE;
}

const NnicOp nnic_op_expand = {
  .type = "Expand",
  .setup = expand_setup,
  .forward = binary_forward,
  .backward = binary_backward,
  .channels = NNIC_CHANNELS_KEEP,
  .channel_rule = expand_channel_rule,
  .onnx_export = export_expand, /* imported by parameter.c, with Expand of constants */
};

gboolean
nnic_model_add_expand (NnicModel *m, const char *name, const char *input, const int64_t *shape,
                       int ndim, GError **error)
{
  BinarySpec spec = { .kind = BIN_EXPAND, .ndim = ndim };
  if (ndim < 0 || ndim >= NNIC_MAX_DIMS || (ndim > 0 && !shape)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s: Expand takes a per-sample shape of 0 to %d dimensions", name ? name : "Expand",
                 NNIC_MAX_DIMS - 1);
    return FALSE;
  }
  if (ndim > 0)
    memcpy (spec.shape, shape, sizeof (int64_t) * (size_t) ndim);
  return nnic_graph_add_unary (m, name, input, &nnic_op_expand, &spec, sizeof spec, error);
}
