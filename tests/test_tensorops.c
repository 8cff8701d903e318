/* The tensor ops of transformers and ConvNeXt: Linear on N-D inputs,
 * MatMul of two computed values, Transpose and LayerNorm. Forward against
 * a naive double-precision reference, backward against central finite
 * differences of it (L = sum(out * R) for a random R), on small shapes and
 * on shapes large enough for the threaded paths (then at sampled
 * entries); setup errors; channel dependencies on the channel axis; ONNX
 * import errors and names; ONNX export round trips (float and QDQ);
 * integer inference of N-D Linears. */
#include "testutil.h"

#include <nnic/onnx.h>
#include <nnic/quant.h>

#include <math.h>
#include <string.h>

/* ---- the checker ---- */

/* y = f(x; p) in double for a batch of B; p are the model's parameters in
 * state_dict order. */
typedef void (*RefFn) (const void *ctx, int64_t B, const double *x, double *const *p, double *y);

typedef struct {
  RefFn fn;
  const void *ctx;
  int64_t B;
} Ref;

static void
fill_uniform (float *v, int64_t n, NnicRng *rng)
{
  for (int64_t i = 0; i < n; i++)
    v[i] = (float) (2.0 * nnic_rng_uniform (rng) - 1.0);
}

static void
assert_close (const char *what, int64_t i, double got, double want, double rtol, double atol)
{
  ck_assert_msg (fabs (got - want) <= atol + rtol * fabs (want),
                 "%s[%" G_GINT64_FORMAT "]: got %.9g, want %.9g", what, i, got, want);
}

static double
ref_loss (const Ref *r, const double *x, double *const *p, double *y, const float *R, int64_t ny)
{
  r->fn (r->ctx, r->B, x, p, y);
  double L = 0.0;
  for (int64_t i = 0; i < ny; i++)
    L += y[i] * R[i];
  return L;
}

static double
finite_diff (const Ref *r, double *v, int64_t i, const double *x, double *const *p, double *y,
             const float *R, int64_t ny)
{
  const double eps = 1e-6, keep = v[i];
  v[i] = keep + eps;
  const double lp = ref_loss (r, x, p, y, R, ny);
  v[i] = keep - eps;
  const double lm = ref_loss (r, x, p, y, R, ny);
  v[i] = keep;
  return (lp - lm) / (2 * eps);
}

static double *
to_double (const float *v, int64_t n)
{
  double *d = g_new (double, MAX (n, 1));
  for (int64_t i = 0; i < n; i++)
    d[i] = v[i];
  return d;
}

/* The entries checked by finite differences: all, or `max` spread over n. */
static int64_t
sample_index (int64_t k, int64_t n, int64_t max)
{
  return n <= max ? k : k * n / max + (k * 7) % MAX (n / max, 1);
}

/* Forward and backward of m on a random batch of B against the reference:
 * the output, dL/dinput and dL/dparam (at up to max_checks entries each);
 * a second backward doubles the parameter gradients. */
static void
check_model (NnicModel *m, RefFn fn, const void *ctx, int64_t B, guint64 seed, int64_t max_checks)
{
  GError *err = NULL;
  NnicRng rng;
  nnic_rng_seed (&rng, seed);
  for (guint i = 0; i < nnic_model_n_params (m); i++)
    fill_uniform (nnic_model_param (m, i)->value->f32, nnic_model_param (m, i)->value->numel, &rng);
  int64_t shape[NNIC_MAX_DIMS + 1];
  shape[0] = B;
  const int nd = nnic_model_node_shape (m, 0, shape + 1);
  g_autoptr (NnicTensor) x = nnic_tensor_new (NNIC_DTYPE_F32, nd + 1, shape, &err);
  NNIC_ASSERT_NO_ERROR (err);
  fill_uniform (x->f32, x->numel, &rng);

  nnic_model_set_input_grad (m, TRUE);
  const NnicTensor *out = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const int64_t ny = out->numel;
  const guint np = nnic_model_n_params (m);
  double *pd[8] = { 0 };
  ck_assert_uint_le (np, G_N_ELEMENTS (pd));
  for (guint k = 0; k < np; k++)
    pd[k] = to_double (nnic_model_param (m, k)->value->f32, nnic_model_param (m, k)->value->numel);
  g_autofree double *xd = to_double (x->f32, x->numel);
  g_autofree double *y = g_new (double, ny);
  const Ref r = { fn, ctx, B };
  fn (ctx, B, xd, pd, y);
  for (int64_t i = 0; i < ny; i++)
    assert_close ("forward", i, out->f32[i], y[i], 1e-4, 1e-5);

  g_autoptr (NnicTensor) R = nnic_tensor_new_like (out, &err);
  fill_uniform (R->f32, R->numel, &rng);
  nnic_model_zero_grad (m);
  ck_assert (nnic_model_backward (m, R, &err));
  NNIC_ASSERT_NO_ERROR (err);
  const NnicTensor *dx = nnic_model_input_grad (m);
  for (int64_t k = 0; k < MIN (x->numel, max_checks); k++) {
    const int64_t i = sample_index (k, x->numel, max_checks);
    assert_close ("dinput", i, dx->f32[i], finite_diff (&r, xd, i, xd, pd, y, R->f32, ny), 1e-3, 1e-4);
  }
  for (guint p = 0; p < np; p++) {
    const NnicParam *q = nnic_model_param (m, p);
    for (int64_t k = 0; q->grad && k < MIN (q->grad->numel, max_checks); k++) {
      const int64_t i = sample_index (k, q->grad->numel, max_checks);
      assert_close (q->name, i, q->grad->f32[i], finite_diff (&r, pd[p], i, xd, pd, y, R->f32, ny),
                    1e-3, 1e-4);
    }
  }
  g_autoptr (GPtrArray) first = g_ptr_array_new_with_free_func ((GDestroyNotify) nnic_tensor_free);
  for (guint p = 0; p < np; p++)
    g_ptr_array_add (first, nnic_tensor_copy (nnic_model_param (m, p)->grad, NULL));
  ck_assert (nnic_model_backward (m, R, &err));
  for (guint p = 0; p < np; p++) {
    const NnicTensor *g = nnic_model_param (m, p)->grad, *g1 = g_ptr_array_index (first, p);
    for (int64_t i = 0; i < g->numel; i++)
      assert_close ("accumulated grad", i, g->f32[i], 2.0 * g1->f32[i], 1e-5, 1e-6);
  }
  for (guint k = 0; k < np; k++)
    g_free (pd[k]);
}

static void
assert_shape (const NnicModel *m, const char *node, int nd, const int64_t *want)
{
  int64_t s[NNIC_MAX_DIMS];
  const int i = nnic_model_find_node (m, node);
  ck_assert_int_ge (i, 0);
  ck_assert_int_eq (nnic_model_node_shape (m, (guint) i, s), nd);
  for (int k = 0; k < nd; k++)
    ck_assert_int_eq (s[k], want[k]);
}

/* ---- Linear on N-D inputs ---- */

typedef struct {
  int64_t rows, in, out; /* rows per sample */
  gboolean bias;
} LinRef;

static void
linear_apply (int64_t rows, int64_t in, int64_t out, const double *x, const double *w, const double *b,
              double *y)
{
  for (int64_t r = 0; r < rows; r++)
    for (int64_t o = 0; o < out; o++) {
      double s = b ? b[o] : 0.0;
      for (int64_t i = 0; i < in; i++)
        s += x[r * in + i] * w[o * in + i];
      y[r * out + o] = s;
    }
}

static void
ref_linear (const void *ctx, int64_t B, const double *x, double *const *p, double *y)
{
  const LinRef *l = ctx;
  linear_apply (B * l->rows, l->in, l->out, x, p[0], l->bias ? p[1] : NULL, y);
}

/* Input [shape] per sample, a Linear on its last axis. */
static void
check_linear (int nd, const int64_t *shape, int out, gboolean bias, int64_t B, int64_t max_checks)
{
  GError *err = NULL;
  const int64_t numel = nnic_shape_numel (nd, shape), in = shape[nd - 1];
  g_autoptr (NnicModel) m = nnic_model_new_flat ((int) numel);
  ck_assert (nnic_model_add_reshape (m, "r", NULL, shape, nd, &err));
  NnicLinearSpec s = { .in_features = (int) in, .out_features = out, .no_bias = !bias };
  ck_assert (nnic_model_add_linear (m, "fc", NULL, &s, &err));
  NNIC_ASSERT_NO_ERROR (err);
  int64_t os[NNIC_MAX_DIMS];
  memcpy (os, shape, sizeof (int64_t) * (size_t) nd);
  os[nd - 1] = out;
  assert_shape (m, "fc", nd, os);
  const LinRef l = { numel / in, in, out, bias };
  check_model (m, ref_linear, &l, B, 100 + (guint64) numel, max_checks);
}

START_TEST (test_linear_nd)
{
  check_linear (2, (int64_t[]) { 3, 5 }, 4, TRUE, 2, 1000);
  check_linear (3, (int64_t[]) { 2, 3, 5 }, 4, FALSE, 3, 1000);
  check_linear (1, (int64_t[]) { 7 }, 3, TRUE, 4, 1000);
  /* threaded: by rows (tokens), by output features (a batch of vectors),
   * by input features (few outputs) */
  check_linear (2, (int64_t[]) { 64, 64 }, 96, TRUE, 4, 40);
  check_linear (1, (int64_t[]) { 300 }, 520, TRUE, 8, 40);
  check_linear (1, (int64_t[]) { 2048 }, 70, TRUE, 8, 40);
  check_linear (3, (int64_t[]) { 8, 8, 40 }, 3, TRUE, 70, 40);
}
END_TEST

/* ---- MatMul ---- */

typedef struct {
  int ra, rb;
  int64_t sa[4], sb[4];
  gboolean ta, tb;
} MMRef;

/* numpy's matmul of one sample's a and b (shapes and flags of c) into y. */
static void
matmul_ref (const MMRef *c, const double *a, const double *b, double *y)
{
  const int64_t M = c->ra < 2 ? 1 : c->sa[c->ra - (c->ta ? 1 : 2)];
  const int64_t K = c->sa[c->ra - (c->ra >= 2 && c->ta ? 2 : 1)];
  const int64_t P = c->rb < 2 ? 1 : c->sb[c->rb - (c->tb ? 2 : 1)];
  const int la = MAX (c->ra - 2, 0), lb = MAX (c->rb - 2, 0), lo = MAX (la, lb);
  int64_t lead[4], n = 1;
  for (int i = 0; i < lo; i++) {
    const int64_t da = i >= lo - la ? c->sa[i - (lo - la)] : 1, db = i >= lo - lb ? c->sb[i - (lo - lb)] : 1;
    lead[i] = MAX (da, db);
    n *= lead[i];
  }
  for (int64_t j = 0; j < n; j++) {
    /* the matrix of a and of b that output matrix j reads */
    int64_t co[4], rest = j, ia = 0, ib = 0;
    for (int i = lo - 1; i >= 0; i--) {
      co[i] = rest % lead[i];
      rest /= lead[i];
    }
    for (int i = 0; i < la; i++)
      ia = ia * c->sa[i] + (c->sa[i] == 1 ? 0 : co[i + lo - la]);
    for (int i = 0; i < lb; i++)
      ib = ib * c->sb[i] + (c->sb[i] == 1 ? 0 : co[i + lo - lb]);
    const double *am = a + ia * M * K, *bm = b + ib * K * P;
    for (int64_t mi = 0; mi < M; mi++)
      for (int64_t pi = 0; pi < P; pi++) {
        double s = 0.0;
        for (int64_t k = 0; k < K; k++)
          s += (c->ta ? am[k * M + mi] : am[mi * K + k]) * (c->tb ? bm[pi * K + k] : bm[k * P + pi]);
        y[(j * M + mi) * P + pi] = s;
      }
  }
}

static int64_t
mm_out_numel (const MMRef *c)
{
  const int64_t M = c->ra < 2 ? 1 : c->sa[c->ra - (c->ta ? 1 : 2)];
  const int64_t P = c->rb < 2 ? 1 : c->sb[c->rb - (c->tb ? 2 : 1)];
  const int la = MAX (c->ra - 2, 0), lb = MAX (c->rb - 2, 0), lo = MAX (la, lb);
  int64_t n = M * P;
  for (int i = 0; i < lo; i++)
    n *= MAX (i >= lo - la ? c->sa[i - (lo - la)] : 1, i >= lo - lb ? c->sb[i - (lo - lb)] : 1);
  return n;
}

typedef struct {
  MMRef mm;
  int64_t F; /* input features; a and b come from two Linears of them */
} MMCase;

static void
ref_matmul (const void *ctx, int64_t B, const double *x, double *const *p, double *y)
{
  const MMCase *c = ctx;
  const int64_t na = nnic_shape_numel (c->mm.ra, c->mm.sa), nb = nnic_shape_numel (c->mm.rb, c->mm.sb);
  const int64_t ny = mm_out_numel (&c->mm);
  g_autofree double *a = g_new (double, na), *b = g_new (double, nb);
  for (int64_t s = 0; s < B; s++) {
    linear_apply (1, c->F, na, x + s * c->F, p[0], p[1], a);
    linear_apply (1, c->F, nb, x + s * c->F, p[2], p[3], b);
    matmul_ref (&c->mm, a, b, y + s * ny);
  }
}

static void
check_matmul (MMRef mm, int64_t B, int64_t max_checks)
{
  GError *err = NULL;
  const MMCase c = { mm, 6 };
  const int64_t na = nnic_shape_numel (mm.ra, mm.sa), nb = nnic_shape_numel (mm.rb, mm.sb);
  g_autoptr (NnicModel) m = nnic_model_new_flat ((int) c.F);
  ck_assert (nnic_model_add_linear (m, "la", "input", &(NnicLinearSpec) { 6, (int) na, FALSE }, &err));
  ck_assert (nnic_model_add_linear (m, "lb", "input", &(NnicLinearSpec) { 6, (int) nb, FALSE }, &err));
  ck_assert (nnic_model_add_reshape (m, "a", "la", mm.sa, mm.ra, &err));
  ck_assert (nnic_model_add_reshape (m, "b", "lb", mm.sb, mm.rb, &err));
  NnicMatMulSpec spec = { mm.ta, mm.tb };
  ck_assert_msg (nnic_model_add_matmul (m, "mm", "a", "b", &spec, &err), "%s", err ? err->message : "");
  ck_assert_int_eq (nnic_model_count_parameters (m), 7 * (na + nb));
  check_model (m, ref_matmul, &c, B, 200 + (guint64) (na + nb), max_checks);
}

START_TEST (test_matmul)
{
  check_matmul ((MMRef) { 3, 3, { 2, 3, 4 }, { 2, 4, 5 }, FALSE, FALSE }, 2, 1000);
  check_matmul ((MMRef) { 2, 2, { 3, 4 }, { 4, 2 }, FALSE, FALSE }, 3, 1000);
  /* broadcasting: a 1 stretches, a missing leading dimension too */
  check_matmul ((MMRef) { 3, 3, { 2, 3, 4 }, { 1, 4, 5 }, FALSE, FALSE }, 2, 1000);
  check_matmul ((MMRef) { 4, 2, { 2, 2, 3, 4 }, { 4, 2 }, FALSE, FALSE }, 2, 1000);
  check_matmul ((MMRef) { 3, 4, { 1, 3, 4 }, { 2, 3, 4, 2 }, FALSE, FALSE }, 2, 1000);
  /* transposed operands, the q @ k^T of attention */
  check_matmul ((MMRef) { 3, 3, { 2, 3, 4 }, { 2, 5, 4 }, FALSE, TRUE }, 2, 1000);
  check_matmul ((MMRef) { 3, 3, { 2, 4, 3 }, { 2, 4, 5 }, TRUE, FALSE }, 2, 1000);
  check_matmul ((MMRef) { 3, 3, { 1, 4, 3 }, { 2, 5, 4 }, TRUE, TRUE }, 2, 1000);
  /* vectors, as numpy's */
  check_matmul ((MMRef) { 1, 3, { 4 }, { 2, 4, 3 }, FALSE, FALSE }, 2, 1000);
  check_matmul ((MMRef) { 3, 1, { 2, 3, 4 }, { 4 }, FALSE, FALSE }, 2, 1000);
  /* threaded: over the matrices, and one matrix split by rows */
  check_matmul ((MMRef) { 3, 3, { 3, 40, 30 }, { 3, 50, 30 }, FALSE, TRUE }, 2, 30);
  check_matmul ((MMRef) { 2, 2, { 90, 60 }, { 60, 70 }, FALSE, FALSE }, 1, 30);
  check_matmul ((MMRef) { 3, 3, { 4, 40, 30 }, { 1, 50, 30 }, FALSE, TRUE }, 2, 30);
}
END_TEST

/* a @ a^T with both operands the same node: its gradient comes twice. */
static void
ref_gram (const void *ctx, int64_t B, const double *x, double *const *p, double *y)
{
  (void) ctx;
  (void) p;
  for (int64_t s = 0; s < B; s++)
    for (int i = 0; i < 3; i++)
      for (int j = 0; j < 3; j++) {
        double v = 0.0;
        for (int k = 0; k < 4; k++)
          v += x[s * 12 + i * 4 + k] * x[s * 12 + j * 4 + k];
        y[s * 9 + i * 3 + j] = v;
      }
}

START_TEST (test_matmul_same_input)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_flat (12);
  ck_assert (nnic_model_add_reshape (m, "a", NULL, (int64_t[]) { 3, 4 }, 2, &err));
  ck_assert (nnic_model_add_matmul (m, "gram", "a", "a", &(NnicMatMulSpec) { .trans_b = TRUE }, &err));
  NNIC_ASSERT_NO_ERROR (err);
  check_model (m, ref_gram, NULL, 2, 7, 1000);
  double v = -1;
  ck_assert (nnic_model_node_option (m, 2, "trans_b", &v) && v == 1.0);
  ck_assert_str_eq (nnic_model_node_type (m, 2), "MatMul");
}
END_TEST

/* ---- Transpose ---- */

typedef struct {
  int nd;
  int64_t shape[6];
  int perm[6];
} TRef;

static void
ref_transpose (const void *ctx, int64_t B, const double *x, double *const *p, double *y)
{
  (void) p;
  const TRef *t = ctx;
  const int64_t n = nnic_shape_numel (t->nd, t->shape);
  int64_t in_stride[6], out_shape[6], acc = 1;
  for (int i = t->nd - 1; i >= 0; i--) {
    in_stride[i] = acc;
    acc *= t->shape[i];
  }
  for (int i = 0; i < t->nd; i++)
    out_shape[i] = t->shape[t->perm[i]];
  for (int64_t s = 0; s < B; s++)
    for (int64_t o = 0; o < n; o++) {
      int64_t rest = o, in = 0;
      for (int i = t->nd - 1; i >= 0; i--) {
        in += (rest % out_shape[i]) * in_stride[t->perm[i]];
        rest /= out_shape[i];
      }
      y[s * n + o] = x[s * n + in];
    }
}

static void
check_transpose (TRef t, int64_t B, int64_t max_checks)
{
  GError *err = NULL;
  const int64_t n = nnic_shape_numel (t.nd, t.shape);
  g_autoptr (NnicModel) m = nnic_model_new_flat ((int) n);
  ck_assert (nnic_model_add_reshape (m, "r", NULL, t.shape, t.nd, &err));
  ck_assert_msg (nnic_model_add_transpose (m, "t", NULL, t.perm, t.nd, &err), "%s", err ? err->message : "");
  int64_t os[6];
  for (int i = 0; i < t.nd; i++)
    os[i] = t.shape[t.perm[i]];
  assert_shape (m, "t", t.nd, os);
  check_model (m, ref_transpose, &t, B, 300 + (guint64) n, max_checks);
}

START_TEST (test_transpose)
{
  /* rows of contiguous floats: attention's heads, the channel shuffle */
  check_transpose ((TRef) { 3, { 5, 2, 4 }, { 1, 0, 2 } }, 2, 1000);
  check_transpose ((TRef) { 4, { 3, 2, 2, 3 }, { 1, 0, 2, 3 } }, 2, 1000);
  /* the innermost axis moves: ConvNeXt's permutes, k^T */
  check_transpose ((TRef) { 3, { 4, 3, 5 }, { 1, 2, 0 } }, 2, 1000);
  check_transpose ((TRef) { 3, { 3, 5, 4 }, { 2, 0, 1 } }, 2, 1000);
  check_transpose ((TRef) { 3, { 2, 3, 5 }, { 0, 2, 1 } }, 3, 1000);
  check_transpose ((TRef) { 2, { 17, 19 }, { 1, 0 } }, 2, 1000);
  /* extents of 1, the identity, a 5-D MaxViT-like partition */
  check_transpose ((TRef) { 4, { 1, 3, 1, 4 }, { 3, 2, 1, 0 } }, 2, 1000);
  check_transpose ((TRef) { 3, { 2, 3, 4 }, { 0, 1, 2 } }, 2, 1000);
  check_transpose ((TRef) { 5, { 2, 3, 2, 2, 3 }, { 1, 3, 2, 4, 0 } }, 1, 1000);
  /* threaded */
  check_transpose ((TRef) { 3, { 24, 40, 40 }, { 1, 2, 0 } }, 2, 40);
  check_transpose ((TRef) { 3, { 40, 24, 40 }, { 1, 0, 2 } }, 2, 40);
}
END_TEST

/* ---- LayerNorm ---- */

typedef struct {
  int64_t rows, D; /* per sample */
  double eps;
  int n_params;
} LNRef;

static void
ref_layernorm (const void *ctx, int64_t B, const double *x, double *const *p, double *y)
{
  const LNRef *l = ctx;
  for (int64_t r = 0; r < B * l->rows; r++) {
    const double *xr = x + r * l->D;
    double mean = 0, var = 0;
    for (int64_t i = 0; i < l->D; i++)
      mean += xr[i];
    mean /= (double) l->D;
    for (int64_t i = 0; i < l->D; i++)
      var += (xr[i] - mean) * (xr[i] - mean);
    var /= (double) l->D;
    for (int64_t i = 0; i < l->D; i++) {
      double v = (xr[i] - mean) / sqrt (var + l->eps);
      if (l->n_params > 0)
        v *= p[0][i];
      if (l->n_params > 1)
        v += p[1][i];
      y[r * l->D + i] = v;
    }
  }
}

static void
check_layernorm (int nd, const int64_t *shape, NnicLayerNormSpec spec, int64_t B, int64_t max_checks)
{
  GError *err = NULL;
  const int64_t n = nnic_shape_numel (nd, shape);
  const int k = spec.normalized_ndim ? spec.normalized_ndim : 1;
  g_autoptr (NnicModel) m = nnic_model_new_flat ((int) n);
  ck_assert (nnic_model_add_reshape (m, "r", NULL, shape, nd, &err));
  ck_assert_msg (nnic_model_add_layernorm (m, "ln", NULL, &spec, &err), "%s", err ? err->message : "");
  const int n_params = spec.no_affine ? 0 : spec.no_bias ? 1 : 2;
  ck_assert_uint_eq (nnic_model_n_params (m), (guint) n_params);
  if (n_params) {
    const NnicTensor *w = nnic_model_find_param (m, "ln.weight", &err)->value;
    ck_assert_int_eq (w->ndim, k);
    ck_assert_float_eq (w->f32[0], 1.0f); /* torch's construction value */
  }
  const int64_t D = nnic_shape_numel (k, shape + nd - k);
  const LNRef l = { n / D, D, spec.eps > 0 ? spec.eps : 1e-5, n_params };
  /* a shifted input: the mean matters */
  check_model (m, ref_layernorm, &l, B, 400 + (guint64) n, max_checks);
  double eps = 0;
  ck_assert (nnic_model_node_option (m, 2, "eps", &eps));
  ck_assert_double_eq_tol (eps, l.eps, 1e-12);
}

START_TEST (test_layernorm)
{
  check_layernorm (2, (int64_t[]) { 3, 5 }, (NnicLayerNormSpec) { 0 }, 2, 1000);
  check_layernorm (3, (int64_t[]) { 2, 3, 4 }, (NnicLayerNormSpec) { .normalized_ndim = 2, .eps = 0.1 }, 2, 1000);
  check_layernorm (3, (int64_t[]) { 2, 3, 4 }, (NnicLayerNormSpec) { .normalized_ndim = 3, .no_bias = TRUE }, 2, 1000);
  check_layernorm (1, (int64_t[]) { 6 }, (NnicLayerNormSpec) { .no_affine = TRUE, .eps = 1e-3 }, 3, 1000);
  /* threaded, with the per-thread weight gradients */
  check_layernorm (2, (int64_t[]) { 300, 64 }, (NnicLayerNormSpec) { 0 }, 2, 40);
}
END_TEST

/* ---- errors ---- */

START_TEST (test_setup_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (2, 3, 4);
  ck_assert (!nnic_model_add_transpose (m, "t", NULL, (int[]) { 0, 0, 1 }, 3, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "t: [0, 0, 1] is not a permutation of the 3 per-sample axes of 'input' [2, 3, 4]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_transpose (m, "t", NULL, (int[]) { 1, 0 }, 2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "is not a permutation");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_transpose (m, "t", NULL, NULL, 3, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "t: Transpose needs a permutation");
  g_clear_error (&err);

  ck_assert (!nnic_model_add_matmul (m, "mm", "input", "input", NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "mm: cannot multiply 'input' [2, 3, 4] by 'input' [2, 3, 4]: the inner dimensions differ");
  g_clear_error (&err);
  ck_assert (nnic_model_add_reshape (m, "r", "input", (int64_t[]) { 3, 2, 4 }, 3, &err));
  ck_assert (!nnic_model_add_matmul (m, "mm", "input", "r", &(NnicMatMulSpec) { .trans_b = TRUE }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "the leading dimensions do not broadcast");
  g_clear_error (&err);
  ck_assert (nnic_model_add_reshape (m, "v", "input", (int64_t[]) { 24 }, 1, &err));
  ck_assert (!nnic_model_add_matmul (m, "mm", "v", "v", NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "a scalar per sample");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_matmul (m, "mm", "v", "input", &(NnicMatMulSpec) { .trans_a = TRUE }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "cannot transpose the vector 'v'");
  g_clear_error (&err);

  ck_assert (!nnic_model_add_layernorm (m, "ln", "input", &(NnicLayerNormSpec) { .normalized_ndim = 4 }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "ln: cannot normalise over the last 4 dimensions of 'input' [2, 3, 4]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_layernorm (m, "ln", "input", &(NnicLayerNormSpec) { .eps = -1 }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "eps -1 must be a positive number");
  g_clear_error (&err);

  ck_assert (!nnic_model_add_linear (m, "fc", "input", &(NnicLinearSpec) { 3, 5, FALSE }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "fc: in_features 3 does not match the last dimension of 'input', [2, 3, 4] per sample");
  g_clear_error (&err);
}
END_TEST

/* ---- channel dependencies ---- */

static gboolean
tied (GPtrArray *sets, const NnicModel *m, const char *a, const char *b)
{
  const guint ia = (guint) nnic_model_find_node (m, a), ib = (guint) nnic_model_find_node (m, b);
  for (guint s = 0; s < sets->len; s++) {
    GArray *set = g_ptr_array_index (sets, s);
    gboolean fa = FALSE, fb = FALSE;
    for (guint k = 0; k < set->len; k++) {
      fa |= g_array_index (set, guint, k) == ia;
      fb |= g_array_index (set, guint, k) == ib;
    }
    if (fa && fb)
      return TRUE;
  }
  return FALSE;
}

/* Residual Adds tie channels on the same axis only: two token Linears
 * (last axis), two Conv2d (dim 0); a Conv2d's C added to a Linear's last
 * axis is no tie, and a LayerNorm keeps the Linear's channels. */
START_TEST (test_channel_axis)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (4, 4, 4);
  const NnicConv2dSpec cs = { .in_channels = 4, .out_channels = 4, .kernel_size = 1 };
  const NnicLinearSpec ls = { 4, 4, FALSE };
  ck_assert (nnic_model_add_conv2d (m, "c1", "input", &cs, &err));
  ck_assert (nnic_model_add_conv2d (m, "c2", "input", &cs, &err));
  ck_assert (nnic_model_add_linear (m, "l1", "input", &ls, &err));
  ck_assert (nnic_model_add_linear (m, "l2", "input", &ls, &err));
  ck_assert (nnic_model_add_layernorm (m, "ln", "l2", NULL, &err));
  ck_assert (nnic_model_add_add (m, "cc", "c1", "c2", &err));
  ck_assert (nnic_model_add_add (m, "ll", "l1", "ln", &err));
  ck_assert (nnic_model_add_add (m, "cl", "cc", "ll", &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (GPtrArray) sets = nnic_model_channel_dependencies (m);
  ck_assert (tied (sets, m, "c1", "c2"));
  ck_assert (tied (sets, m, "l1", "l2"));
  ck_assert (!tied (sets, m, "c1", "l1"));
  ck_assert_uint_eq (sets->len, 2);
  /* a grouped conv reading a channels-last Linear's output does not group it */
  ck_assert (nnic_model_add_conv2d (m, "g", "l1", &(NnicConv2dSpec) { .in_channels = 4, .out_channels = 4, .kernel_size = 1, .groups = 2 }, &err));
  ck_assert (nnic_model_add_conv2d (m, "g2", "c1", &(NnicConv2dSpec) { .in_channels = 4, .out_channels = 4, .kernel_size = 1, .groups = 2 }, &err));
  ck_assert_int_eq (nnic_model_channel_groups (m, (guint) nnic_model_find_node (m, "l1")), 1);
  ck_assert_int_eq (nnic_model_channel_groups (m, (guint) nnic_model_find_node (m, "c1")), 2);
}
END_TEST

/* ---- ONNX ---- */

static void
assert_load_fails (const char *file, int code, const char *needle)
{
  GError *err = NULL;
  g_autofree char *path = g_build_filename (NNIC_TEST_FIXTURES, "onnx", "tensorops", file, NULL);
  NnicModel *m = nnic_model_load_onnx (path, NULL, &err);
  ck_assert_msg (m == NULL, "%s imported", file);
  NNIC_ASSERT_ERROR (err, code, needle);
  g_error_free (err);
}

START_TEST (test_onnx_errors)
{
  /* a Transpose that moves the batch is a view (core/onnx/view.c), which
   * cannot leave the graph */
  assert_load_fails ("err_transpose_batch.onnx", NNIC_ERROR_UNSUPPORTED,
                     "the graph output 'y' is [3, N, 4]: the batch is at axis 1 there");
  assert_load_fails ("err_matmul_const_left.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'mm' (MatMul, opset 17): the left operand 'w' is a constant");
  assert_load_fails ("err_matmul_const_3d.onnx", NNIC_ERROR_UNSUPPORTED,
                     "the constant weight 'w' is [2, 4, 5]; nnic takes a 2-D matrix there");
  assert_load_fails ("err_matmul_ranks.onnx", NNIC_ERROR_UNSUPPORTED,
                     "the product of 'r' [N, 2, 3, 3] and 'x2' [N, 3, 6] would mix the batch dimension");
  assert_load_fails ("err_einsum_trace.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'e' (Einsum, opset 12): the equation 'bii->bi' is not supported");
  assert_load_fails ("err_einsum_outer.onnx", NNIC_ERROR_UNSUPPORTED, "the equation 'bij,bkl->bijkl'");
  assert_load_fails ("err_layernorm_axis0.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'ln' (LayerNormalization, opset 17): axis 0 normalises over the batch");
  assert_load_fails ("err_layernorm_scale.onnx", NNIC_ERROR_UNSUPPORTED,
                     "the scale 'w' is [3, 4]; nnic takes the normalised shape [4]");
  assert_load_fails ("err_layernorm_mean_used.onnx", NNIC_ERROR_UNSUPPORTED,
                     "its output 1 ('mean') is used");
}
END_TEST

static NnicModel *
load_case (const char *name)
{
  GError *err = NULL;
  g_autofree char *path = g_build_filename (NNIC_TEST_FIXTURES, "onnx_models", "cases", name, "model.onnx", NULL);
  NnicModel *m = nnic_model_load_onnx (path, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  return m;
}

static void
assert_node (const NnicModel *m, const char *name, const char *type)
{
  const int i = nnic_model_find_node (m, name);
  ck_assert_msg (i >= 0, "no node %s", name);
  ck_assert_str_eq (nnic_model_node_type (m, (guint) i), type);
}

/* torch's module names and state_dict names survive the import. */
START_TEST (test_onnx_names)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = load_case ("test_nnic_encoder_block_opset17_dyn");
  const char *linears[] = { "q", "k", "v", "proj", "fc1", "fc2" };
  for (guint i = 0; i < G_N_ELEMENTS (linears); i++) {
    assert_node (m, linears[i], "Linear");
    g_autofree char *b = g_strconcat (linears[i], ".bias", NULL);
    ck_assert (nnic_model_find_param (m, b, &err) != NULL);
  }
  assert_node (m, "ln_1", "LayerNorm");
  assert_node (m, "ln_2", "LayerNorm");
  ck_assert (nnic_model_find_param (m, "ln_2.weight", &err) != NULL);
  assert_shape (m, "q", 2, (int64_t[]) { 5, 8 });
  g_autoptr (NnicModel) c = load_case ("test_nnic_convnext_block_opset17");
  assert_node (c, "stem.1", "LayerNorm"); /* LayerNorm2d's layer_norm */
  assert_node (c, "pwconv1", "Linear");
  assert_shape (c, "pwconv1", 3, (int64_t[]) { 4, 4, 32 });
  NNIC_ASSERT_NO_ERROR (err);
}
END_TEST

static NnicTensor *
random_input (const NnicModel *m, int64_t B, guint64 seed)
{
  int64_t shape[NNIC_MAX_DIMS + 1];
  shape[0] = B;
  const int nd = nnic_model_node_shape (m, 0, shape + 1);
  NnicTensor *x = nnic_tensor_new (NNIC_DTYPE_F32, nd + 1, shape, NULL);
  NnicRng rng;
  nnic_rng_seed (&rng, seed);
  fill_uniform (x->f32, x->numel, &rng);
  return x;
}

static void
assert_same_outputs (NnicModel *a, NnicModel *b, float tol)
{
  GError *err = NULL;
  g_autoptr (NnicTensor) x = random_input (a, 3, 9);
  g_autoptr (NnicTensor) ya = nnic_tensor_copy (nnic_model_forward (a, x, &err), NULL);
  NNIC_ASSERT_NO_ERROR (err);
  const NnicTensor *yb = nnic_model_forward (b, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_tensor_same_shape (ya, yb));
  for (int64_t i = 0; i < ya->numel; i++)
    ck_assert_msg (fabsf (ya->f32[i] - yb->f32[i]) <= tol * (1.0f + fabsf (ya->f32[i])),
                   "output %" G_GINT64_FORMAT ": %g vs %g", i, ya->f32[i], yb->f32[i]);
}

/* An attention block built from C: tokens [T, C], LayerNorm, Linear q/k/v
 * (k without bias), heads by Reshape and Transpose, q @ k^T as MatMul with
 * trans_b, Softmax, @ v, the heads merged, a Linear. */
static NnicModel *
attention_model (void)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new_flat (5 * 8);
  const NnicLinearSpec lin = { 8, 8, FALSE }, lin_nb = { 8, 8, TRUE };
  const int heads[] = { 1, 0, 2 };
  ck_assert (nnic_model_add_reshape (m, "tokens", NULL, (int64_t[]) { 5, 8 }, 2, &err));
  ck_assert (nnic_model_add_layernorm (m, "ln", NULL, &(NnicLayerNormSpec) { .eps = 1e-6 }, &err));
  ck_assert (nnic_model_add_linear (m, "q", "ln", &lin, &err));
  ck_assert (nnic_model_add_linear (m, "k", "ln", &lin_nb, &err));
  ck_assert (nnic_model_add_linear (m, "v", "ln", &lin, &err));
  ck_assert (nnic_model_add_reshape (m, "qh", "q", (int64_t[]) { 5, 2, 4 }, 3, &err));
  ck_assert (nnic_model_add_reshape (m, "kh", "k", (int64_t[]) { 5, 2, 4 }, 3, &err));
  ck_assert (nnic_model_add_reshape (m, "vh", "v", (int64_t[]) { 5, 2, 4 }, 3, &err));
  ck_assert (nnic_model_add_transpose (m, "qt", "qh", heads, 3, &err));
  ck_assert (nnic_model_add_transpose (m, "kt", "kh", heads, 3, &err));
  ck_assert (nnic_model_add_transpose (m, "vt", "vh", heads, 3, &err));
  ck_assert (nnic_model_add_matmul (m, "scores", "qt", "kt", &(NnicMatMulSpec) { .trans_b = TRUE }, &err));
  ck_assert (nnic_model_add_softmax (m, "attn", NULL, -1, &err));
  ck_assert (nnic_model_add_matmul (m, "mix", "attn", "vt", NULL, &err));
  ck_assert (nnic_model_add_transpose (m, "merge", NULL, heads, 3, &err));
  ck_assert (nnic_model_add_reshape (m, "tok_out", NULL, (int64_t[]) { 5, 8 }, 2, &err));
  ck_assert (nnic_model_add_linear (m, "proj", NULL, &lin, &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 3);
  NnicRng rng;
  nnic_rng_seed (&rng, 4);
  fill_uniform (nnic_model_find_param (m, "ln.bias", &err)->value->f32, 8, &rng);
  return m;
}

START_TEST (test_export_round_trip)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = attention_model ();
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "attn.onnx", NULL);
  ck_assert (!nnic_model_save_onnx (m, path, &(NnicOnnxSaveOptions) { .opset = 13 }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "node 'ln' (LayerNorm) needs opset 17 or later; opset 13 was asked for");
  g_clear_error (&err);
  ck_assert_msg (nnic_model_save_onnx (m, path, NULL, &err), "%s", err ? err->message : "");
  g_autoptr (NnicModel) back = nnic_model_load_onnx (path, NULL, &err);
  ck_assert_msg (back != NULL, "%s", err ? err->message : "");
  const char *const nodes[][2] = { { "ln", "LayerNorm" }, { "q", "Linear" }, { "k", "Linear" },
                                   { "qt", "Transpose" }, { "scores", "MatMul" }, { "mix", "MatMul" },
                                   { "merge", "Transpose" }, { "proj", "Linear" } };
  for (guint i = 0; i < G_N_ELEMENTS (nodes); i++)
    assert_node (back, nodes[i][0], nodes[i][1]);
  ck_assert_uint_eq (nnic_model_n_params (back), nnic_model_n_params (m));
  for (guint i = 0; i < nnic_model_n_params (m); i++) {
    const NnicParam *p = nnic_model_param (m, i);
    const NnicParam *q = nnic_model_find_param (back, p->name, &err);
    ck_assert_msg (q != NULL, "%s is missing", p->name);
    ck_assert (nnic_tensor_same_shape (p->value, q->value));
    ck_assert (memcmp (p->value->data, q->value->data, nnic_tensor_nbytes (p->value)) == 0);
  }
  assert_same_outputs (m, back, 1e-6f);
}
END_TEST

/* A quantized N-D Linear's weight goes out as transposed integers. */
START_TEST (test_qdq_export_nd_linear)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (3, 4, 6);
  ck_assert (nnic_model_add_linear (m, "fc", NULL, &(NnicLinearSpec) { 6, 5, FALSE }, &err));
  ck_assert (nnic_model_add_linear (m, "fc2", NULL, &(NnicLinearSpec) { 5, 2, TRUE }, &err));
  nnic_model_init_params (m, 2);
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (
      "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Linear\"]}]", "test", &err);
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "naive", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  g_autoptr (NnicTensor) x = random_input (m, 2, 3);
  ck_assert (nnic_model_forward (m, x, &err) != NULL);
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "q.onnx", NULL);
  ck_assert_msg (nnic_compressor_export_onnx (c, path, &err), "%s", err ? err->message : "");
  g_autoptr (NnicModel) back = nnic_model_load_onnx (path, NULL, &err);
  ck_assert_msg (back != NULL, "%s", err ? err->message : "");
  assert_node (back, "fc", "Linear");
  assert_same_outputs (m, back, 1e-5f);
}
END_TEST

/* Integer inference of N-D Linears: the GEMM takes their rows. */
static NnicModel *
tokens_model (void)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new (3, 4, 16);
  ck_assert (nnic_model_add_linear (m, "fc", NULL, &(NnicLinearSpec) { 16, 24, FALSE }, &err));
  ck_assert (nnic_model_add_relu (m, "relu", NULL, &err));
  ck_assert (nnic_model_add_linear (m, "fc2", NULL, &(NnicLinearSpec) { 24, 8, FALSE }, &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 6);
  return m;
}

START_TEST (test_int8_nd_linear)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = tokens_model ();
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (
      "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Linear\"]}]", "test", &err);
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "naive", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  g_autoptr (NnicTensor) x = random_input (m, 4, 5);
  g_autoptr (NnicTensor) yf = nnic_tensor_copy (nnic_model_forward (m, x, &err), NULL);
  NNIC_ASSERT_NO_ERROR (err);
  g_autofree char *dir = nnic_test_tmpdir ();
  ck_assert_msg (nnic_compressor_export_quantized (c, dir, &err), "%s", err ? err->message : "");
  g_autoptr (NnicModel) mi = tokens_model ();
  ck_assert_msg (nnic_model_quantize_int8 (mi, dir, &err), "%s", err ? err->message : "");
  g_auto (GStrv) layers = nnic_model_int8_layers (mi);
  g_autofree char *joined = g_strjoinv (",", layers);
  ck_assert_str_eq (joined, "fc,fc2");
  const NnicTensor *yi = nnic_model_forward (mi, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_tensor_same_shape (yi, yf));
  double range = 0, worst = 0;
  for (int64_t i = 0; i < yf->numel; i++) {
    range = fmax (range, fabs (yf->f32[i]));
    worst = fmax (worst, fabs (yi->f32[i] - yf->f32[i]));
  }
  /* the inputs are quantized per batch: about 1% of the range */
  ck_assert_msg (worst <= 0.05 * range, "max |diff| %g of %g", worst, range);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("tensorops");
  TCase *tc = tcase_create ("core");
  tcase_add_test (tc, test_linear_nd);
  tcase_add_test (tc, test_matmul);
  tcase_add_test (tc, test_matmul_same_input);
  tcase_add_test (tc, test_transpose);
  tcase_add_test (tc, test_layernorm);
  tcase_add_test (tc, test_setup_errors);
  tcase_add_test (tc, test_channel_axis);
  tcase_add_test (tc, test_onnx_errors);
  tcase_add_test (tc, test_onnx_names);
  tcase_add_test (tc, test_export_round_trip);
  tcase_add_test (tc, test_qdq_export_nd_linear);
  tcase_add_test (tc, test_int8_nd_linear);
  suite_add_tcase (s, tc);
  return nnic_test_run (s);
}
