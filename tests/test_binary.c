/* Elementwise arithmetic with broadcasting (Add, Sub, Mul, Div, Pow),
 * Expand and Parameter nodes: forward and every gradient against a
 * float64 reference over many broadcast patterns, both operand orders,
 * small and large enough for the threaded paths; the reference's
 * gradients against finite differences; scalar operands on either side;
 * the Parameter's state_dict name, loading and a training step; channel
 * ties (SE blocks tie, spatial gates do not); setup errors; the ONNX
 * export read back; torch's exports (tests/fixtures/onnx_models/cases)
 * imported with their parameters' names. */
#include "testutil.h"

#include <math.h>
#include <string.h>

static const char *const op_names[] = { "Add", "Sub", "Mul", "Div", "Pow" };

static void
fill (NnicTensor *t, NnicRng *r, gboolean positive)
{
  for (int64_t i = 0; i < t->numel; i++) {
    double v = 0.5 + nnic_rng_uniform (r); /* [0.5, 1.5): Pow's base, Div's divisor */
    t->f32[i] = (float) (positive || nnic_rng_uniform (r) < 0.5 ? v : -v);
  }
}

/* ---- the float64 reference ---- */

static double
ref_op (NnicBinaryOp op, double a, double b)
{
  switch (op) {
  case NNIC_BINARY_ADD: return a + b;
  case NNIC_BINARY_SUB: return a - b;
  case NNIC_BINARY_MUL: return a * b;
  case NNIC_BINARY_DIV: return a / b;
  case NNIC_BINARY_POW: return pow (a, b);
  }
  return NAN;
}

/* d(a op b)/da, d(a op b)/db */
static void
ref_grad (NnicBinaryOp op, double a, double b, double *da, double *db)
{
  switch (op) {
  case NNIC_BINARY_ADD: *da = 1; *db = 1; break;
  case NNIC_BINARY_SUB: *da = 1; *db = -1; break;
  case NNIC_BINARY_MUL: *da = b; *db = a; break;
  case NNIC_BINARY_DIV: *da = 1 / b; *db = -a / (b * b); break;
  case NNIC_BINARY_POW:
    *da = b == 0 ? 0 : b * pow (a, b - 1);
    *db = a == 0 && b >= 0 ? 0 : pow (a, b) * log (a);
    break;
  }
}

/* An operand of the reference: its values and its shape as broadcast to
 * the output's rank (batch included), 1 where it repeats. */
typedef struct {
  const float *v;
  int64_t shape[NNIC_MAX_DIMS];
} RefOperand;

static int64_t
ref_index (const RefOperand *o, int rank, const int64_t *out, int64_t i)
{
  int64_t idx = 0, stride = 1;
  for (int d = rank - 1; d >= 0; d--) {
    const int64_t k = i % out[d];
    i /= out[d];
    if (o->shape[d] != 1)
      idx += k * stride;
    stride *= o->shape[d];
  }
  return idx;
}

/* y = a op b over the output shape out[0..rank); ga, gb (when non-NULL)
 * get dL/da and dL/db for dL/dy = dy, and ga_abs, gb_abs the sums of the
 * terms' magnitudes (the scale of float32's rounding). */
static void
reference (NnicBinaryOp op, const RefOperand *a, const RefOperand *b, int rank,
           const int64_t *out, const float *dy, double *y, double *ga, double *gb, double *ga_abs,
           double *gb_abs)
{
  const int64_t n = nnic_shape_numel (rank, out);
  for (int64_t i = 0; i < n; i++) {
    const int64_t ia = ref_index (a, rank, out, i), ib = ref_index (b, rank, out, i);
    const double av = a->v[ia], bv = b->v[ib];
    y[i] = ref_op (op, av, bv);
    double da, db;
    ref_grad (op, av, bv, &da, &db);
    if (ga) {
      ga[ia] += dy[i] * da;
      ga_abs[ia] += fabs (dy[i] * da);
    }
    if (gb) {
      gb[ib] += dy[i] * db;
      gb_abs[ib] += fabs (dy[i] * db);
    }
  }
}

static void
assert_close (const char *what, int64_t i, double got, double want, double scale)
{
  ck_assert_msg (fabs (got - want) <= 2e-5 * scale + 1e-6 || (isnan (got) && isnan (want)),
                 "%s[%" G_GINT64_FORMAT "]: got %.9g, want %.9g (scale %g)", what, i, got, want,
                 scale);
}

/* ---- tensor op Parameter, against the reference ---- */

typedef struct {
  int na;
  int64_t a[4];  /* operand a's per-sample shape (the model's input, reshaped) */
  int np;
  int64_t p[5];  /* the Parameter's shape (as in a state_dict) */
  int ns;
  int64_t s[4];  /* its per-sample shape (0: p, without a leading 1 of the full rank) */
} Pattern;

static const Pattern patterns[] = {
  { .na = 3, .a = { 4, 5, 6 }, .np = 4, .p = { 1, 4, 5, 6 } },        /* the same shape */
  { .na = 3, .a = { 4, 5, 6 }, .np = 3, .p = { 4, 1, 1 } },           /* per channel: a layer scale, an SE gate */
  { .na = 3, .a = { 4, 5, 6 }, .np = 1, .p = { 6 } },                 /* a trailing vector */
  { .na = 3, .a = { 4, 5, 6 }, .np = 3, .p = { 1, 5, 1 } },           /* the middle */
  { .na = 3, .a = { 4, 1, 6 }, .np = 3, .p = { 1, 5, 1 } },           /* both ways */
  { .na = 1, .a = { 6 }, .np = 3, .p = { 4, 1, 6 } },                 /* a has fewer dimensions */
  { .na = 2, .a = { 5, 1 }, .np = 2, .p = { 1, 6 } },                 /* an outer product */
  { .na = 1, .a = { 3 }, .np = 1, .p = { 1 } },                       /* a one-element tensor */
  { .na = 2, .a = { 4, 6 }, .np = 3, .p = { 1, 1, 6 }, .ns = 2, .s = { 4, 6 } }, /* the Parameter broadcasts itself */
  { .na = 2, .a = { 5, 6 }, .np = 3, .p = { 1, 5, 6 } },              /* a positional embedding */
};

/* Input [B, a] → a op P (or P op a) → output; compares the output, the
 * input's gradient and the Parameter's with the reference. */
static void
check_pattern (NnicBinaryOp op, const Pattern *pt, gboolean param_first, int64_t B, guint64 seed)
{
  GError *err = NULL;
  NnicRng r;
  nnic_rng_seed (&r, seed);
  int64_t s[NNIC_MAX_DIMS];
  int ns = pt->ns;
  if (ns) {
    memcpy (s, pt->s, sizeof (int64_t) * (size_t) ns);
  } else {
    ns = pt->np;
    memcpy (s, pt->p, sizeof (int64_t) * (size_t) ns);
    if (pt->np == pt->na + 1 && pt->p[0] == 1)
      memmove (s, s + 1, sizeof (int64_t) * (size_t) --ns);
  }
  const int64_t an = nnic_shape_numel (pt->na, pt->a);
  g_autoptr (NnicModel) m = nnic_model_new_flat ((int) an);
  ck_assert (nnic_model_add_reshape (m, "a", "input", pt->a, pt->na, &err));
  ck_assert (nnic_model_add_parameter (m, "blocks.0.p", pt->p, pt->np, s, ns, &err));
  ck_assert (nnic_model_add_binary (m, "y", op, param_first ? "blocks.0.p" : "a",
                                    param_first ? "a" : "blocks.0.p", &err));
  NNIC_ASSERT_NO_ERROR (err);
  NnicParam *p = nnic_model_find_param (m, "blocks.0.p", &err);
  NNIC_ASSERT_NO_ERROR (err);
  fill (p->value, &r, op == NNIC_BINARY_POW && param_first);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 2, B, an);
  fill (x, &r, op == NNIC_BINARY_POW && !param_first);
  nnic_model_set_input_grad (m, TRUE);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) dy = nnic_tensor_new_like (y, &err);
  fill (dy, &r, FALSE);
  nnic_model_zero_grad (m);
  ck_assert (nnic_model_backward (m, dy, &err));

  /* the reference: both operands broadcast to the output's rank */
  const int rank = y->ndim;
  RefOperand ra = { .v = x->f32 }, rp = { .v = p->value->f32 };
  for (int d = 0; d < rank; d++) {
    const int ja = d - 1 - (rank - 1 - pt->na), jp = d - (rank - pt->np);
    ra.shape[d] = d == 0 ? B : ja >= 0 ? pt->a[ja] : 1;
    rp.shape[d] = jp >= 0 ? pt->p[jp] : 1;
  }
  g_autofree double *want = g_new0 (double, y->numel);
  g_autofree double *gx = g_new0 (double, x->numel), *gx_abs = g_new0 (double, x->numel);
  g_autofree double *gp = g_new0 (double, p->value->numel), *gp_abs = g_new0 (double, p->value->numel);
  if (param_first)
    reference (op, &rp, &ra, rank, y->shape, dy->f32, want, gp, gx, gp_abs, gx_abs);
  else
    reference (op, &ra, &rp, rank, y->shape, dy->f32, want, gx, gp, gx_abs, gp_abs);
  g_autofree char *label = g_strdup_printf ("%s %s, pattern %d, B %" G_GINT64_FORMAT,
                                            op_names[op], param_first ? "P op x" : "x op P",
                                            (int) (pt - patterns), B);
  g_autofree char *wy = g_strconcat (label, ": y", NULL);
  g_autofree char *wx = g_strconcat (label, ": dx", NULL);
  g_autofree char *wp = g_strconcat (label, ": dp", NULL);
  for (int64_t i = 0; i < y->numel; i++)
    assert_close (wy, i, y->f32[i], want[i], fmax (1.0, fabs (want[i])));
  const NnicTensor *dx = nnic_model_input_grad (m);
  for (int64_t i = 0; i < x->numel; i++)
    assert_close (wx, i, dx->f32[i], gx[i], fmax (1.0, gx_abs[i]));
  for (int64_t i = 0; i < p->value->numel; i++)
    assert_close (wp, i, p->grad->f32[i], gp[i], fmax (1.0, gp_abs[i]));
}

START_TEST (test_patterns)
{
  for (int op = 0; op < 5; op++)
    for (guint k = 0; k < G_N_ELEMENTS (patterns); k++)
      for (int first = 0; first < 2; first++) {
        check_pattern ((NnicBinaryOp) op, &patterns[k], first, 3, 100 + 10 * op + k);
        check_pattern ((NnicBinaryOp) op, &patterns[k], first, 1, 200 + 10 * op + k);
      }
}
END_TEST

/* Large enough for the threaded loops and for rows cut in chunks. */
START_TEST (test_large)
{
  static const Pattern big[] = {
    { .na = 3, .a = { 16, 32, 40 }, .np = 4, .p = { 1, 16, 32, 40 } },
    { .na = 3, .a = { 16, 32, 40 }, .np = 3, .p = { 16, 1, 1 } },
    { .na = 3, .a = { 16, 32, 40 }, .np = 1, .p = { 40 } },
    { .na = 3, .a = { 16, 1, 40 }, .np = 3, .p = { 1, 32, 1 } },
    { .na = 1, .a = { 20000 }, .np = 1, .p = { 20000 } },
  };
  for (int op = 0; op < 5; op++)
    for (guint k = 0; k < G_N_ELEMENTS (big); k++)
      check_pattern ((NnicBinaryOp) op, &big[k], op % 2, 4, 300 + 10 * op + k);
}
END_TEST

/* ---- finite differences ---- */

/* L = sum (y * R): dL/dinput and dL/dparam of every trainable parameter
 * against central differences. */
static void
check_finite_diff (NnicModel *m, NnicTensor *x, guint64 seed, double tol)
{
  GError *err = NULL;
  NnicRng r;
  nnic_rng_seed (&r, seed);
  nnic_model_set_input_grad (m, TRUE);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) R = nnic_tensor_new_like (y, &err);
  fill (R, &r, FALSE);
  nnic_model_zero_grad (m);
  ck_assert (nnic_model_backward (m, R, &err));
  guint np = nnic_model_n_params (m);
  NnicTensor *values[16], *grads[16];
  ck_assert_uint_le (np + 1, 16);
  values[0] = x;
  grads[0] = nnic_tensor_copy (nnic_model_input_grad (m), &err);
  for (guint k = 0; k < np; k++) {
    NnicParam *p = nnic_model_param (m, k);
    values[k + 1] = p->value;
    grads[k + 1] = p->grad ? nnic_tensor_copy (p->grad, &err) : NULL;
  }
  const float eps = 1e-2f;
  for (guint k = 0; k <= np; k++) {
    for (int64_t i = 0; grads[k] && i < values[k]->numel; i++) {
      const float keep = values[k]->f32[i];
      double L[2];
      for (int s = 0; s < 2; s++) {
        values[k]->f32[i] = keep + (s ? -eps : eps);
        y = nnic_model_forward (m, x, &err);
        L[s] = 0.0;
        for (int64_t j = 0; j < y->numel; j++)
          L[s] += (double) y->f32[j] * R->f32[j];
      }
      values[k]->f32[i] = keep;
      const double fd = (L[0] - L[1]) / (2.0 * eps);
      ck_assert_msg (fabs (grads[k]->f32[i] - fd) <= tol * fmax (1.0, fabs (fd)),
                     "%s[%" G_GINT64_FORMAT "]: backward %.7g, finite differences %.7g",
                     k ? nnic_model_param (m, k - 1)->name : "input", i, grads[k]->f32[i], fd);
    }
    nnic_tensor_free (grads[k]);
  }
}

START_TEST (test_finite_diff)
{
  GError *err = NULL;
  for (int op = 0; op < 5; op++)
    for (int first = 0; first < 2; first++) {
      /* [4, 1, 3] op [1, 5, 1]: both broadcast */
      g_autoptr (NnicModel) m = nnic_model_new_flat (12);
      ck_assert (nnic_model_add_reshape (m, "a", "input", (int64_t[]) { 4, 1, 3 }, 3, &err));
      ck_assert (nnic_model_add_parameter (m, "p", (int64_t[]) { 5, 1 }, 2,
                                           (int64_t[]) { 5, 1 }, 2, &err));
      ck_assert (nnic_model_add_binary (m, "y", (NnicBinaryOp) op, first ? "p" : "a",
                                        first ? "a" : "p", &err));
      NNIC_ASSERT_NO_ERROR (err);
      NnicRng r;
      nnic_rng_seed (&r, 40 + op);
      fill (nnic_model_find_param (m, "p", NULL)->value, &r, TRUE);
      g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 2, (int64_t) 2, (int64_t) 12);
      fill (x, &r, TRUE);
      check_finite_diff (m, x, 50 + op, 2e-3);
    }
}
END_TEST

/* x op x: both gradients go to the one input. */
START_TEST (test_same_input)
{
  GError *err = NULL;
  for (int op = 0; op < 5; op++) {
    g_autoptr (NnicModel) m = nnic_model_new (2, 3, 4);
    ck_assert (nnic_model_add_binary (m, "y", (NnicBinaryOp) op, "input", "input", &err));
    NNIC_ASSERT_NO_ERROR (err);
    NnicRng r;
    nnic_rng_seed (&r, 60 + op);
    g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 2, (int64_t) 2, (int64_t) 3, (int64_t) 4);
    fill (x, &r, TRUE);
    const NnicTensor *y = nnic_model_forward (m, x, &err);
    for (int64_t i = 0; i < x->numel; i++)
      assert_close ("x op x", i, y->f32[i], ref_op ((NnicBinaryOp) op, x->f32[i], x->f32[i]), 1);
    check_finite_diff (m, x, 70 + op, 2e-3);
  }
}
END_TEST

/* ---- scalar operands ---- */

START_TEST (test_scalar)
{
  GError *err = NULL;
  /* Pow's exponents 2, 3, 0.5, -1 and 1 take torch's shortcuts. */
  const double cs[] = { 0.5, 2.0, 3.0, -1.0, 1.0, 1.7 };
  for (int op = 0; op < 5; op++)
    for (guint k = 0; k < G_N_ELEMENTS (cs); k++)
      for (int first = 0; first < 2; first++) {
        g_autoptr (NnicModel) m = nnic_model_new (2, 3, 5);
        ck_assert (nnic_model_add_binary_scalar (m, "y", (NnicBinaryOp) op, NULL, cs[k], first, &err));
        NNIC_ASSERT_NO_ERROR (err);
        double v = 0, f = 0;
        ck_assert (nnic_model_node_option (m, 1, "scalar", &v));
        ck_assert (nnic_model_node_option (m, 1, "scalar_first", &f));
        ck_assert (v == cs[k] && f == first);
        ck_assert_uint_eq (nnic_model_node_n_inputs (m, 1), 1);
        NnicRng r;
        nnic_rng_seed (&r, 80 + op);
        g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 2, (int64_t) 2, (int64_t) 3, (int64_t) 5);
        fill (x, &r, op == NNIC_BINARY_POW || (op == NNIC_BINARY_DIV && first));
        nnic_model_set_input_grad (m, TRUE);
        const NnicTensor *y = nnic_model_forward (m, x, &err);
        NNIC_ASSERT_NO_ERROR (err);
        g_autoptr (NnicTensor) dy = nnic_tensor_new_like (y, &err);
        fill (dy, &r, FALSE);
        ck_assert (nnic_model_backward (m, dy, &err));
        const NnicTensor *dx = nnic_model_input_grad (m);
        const float c = (float) cs[k];
        for (int64_t i = 0; i < x->numel; i++) {
          const double a = first ? c : x->f32[i], b = first ? x->f32[i] : c;
          double da, db;
          ref_grad ((NnicBinaryOp) op, a, b, &da, &db);
          assert_close ("scalar y", i, y->f32[i], ref_op ((NnicBinaryOp) op, a, b), 1);
          assert_close ("scalar dx", i, dx->f32[i], dy->f32[i] * (first ? db : da), 1);
        }
        if (k == 0)
          check_finite_diff (m, x, 90 + op, 2e-3);
      }
}
END_TEST

/* torch's pow at 0: no NaN from 0 * inf or log 0. */
START_TEST (test_pow_at_zero)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_flat (2);
  ck_assert (nnic_model_add_parameter (m, "e", (int64_t[]) { 2 }, 1, (int64_t[]) { 2 }, 1, &err));
  ck_assert (nnic_model_add_binary (m, "y", NNIC_BINARY_POW, "input", "e", &err));
  NnicParam *e = nnic_model_find_param (m, "e", &err);
  e->value->f32[0] = 0.0f; /* x ** 0 */
  e->value->f32[1] = 2.0f; /* 0 ** 2 */
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 2, (int64_t) 1, (int64_t) 2);
  x->f32[0] = 0.0f;
  x->f32[1] = 0.0f;
  nnic_model_set_input_grad (m, TRUE);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  ck_assert (y->f32[0] == 1.0f && y->f32[1] == 0.0f);
  g_autoptr (NnicTensor) dy = nnic_tensor_new_like (y, &err);
  nnic_tensor_fill (dy, 1.0f);
  nnic_model_zero_grad (m);
  ck_assert (nnic_model_backward (m, dy, &err));
  const NnicTensor *dx = nnic_model_input_grad (m);
  ck_assert (dx->f32[0] == 0.0f && dx->f32[1] == 0.0f);
  ck_assert (e->grad->f32[0] == 0.0f && e->grad->f32[1] == 0.0f);
}
END_TEST

/* ---- Expand, SE ---- */

START_TEST (test_expand)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_flat (8);
  ck_assert (nnic_model_add_reshape (m, "a", "input", (int64_t[]) { 4, 1, 2 }, 3, &err));
  ck_assert (nnic_model_add_expand (m, "e", "a", (int64_t[]) { 4, 3, 2 }, 3, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_str_eq (nnic_model_node_type (m, 2), "Expand");
  NnicRng r;
  nnic_rng_seed (&r, 5);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 2, (int64_t) 2, (int64_t) 8);
  fill (x, &r, FALSE);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  for (int64_t b = 0; b < 2; b++)
    for (int64_t c = 0; c < 4; c++)
      for (int64_t h = 0; h < 3; h++)
        for (int64_t w = 0; w < 2; w++)
          ck_assert (y->f32[((b * 4 + c) * 3 + h) * 2 + w] == x->f32[(b * 4 + c) * 2 + w]);
  check_finite_diff (m, x, 6, 2e-3);
  /* the rank is kept; a dimension grows only from 1 */
  ck_assert (!nnic_model_add_expand (m, "e2", "a", (int64_t[]) { 4, 3 }, 2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "e2: cannot expand 'a' of shape [4, 1, 2] to [4, 3]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_expand (m, "e3", "a", (int64_t[]) { 5, 3, 2 }, 3, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "e3: cannot expand");
  g_clear_error (&err);
}
END_TEST

/* x * relu(conv1x1(avgpool(x))): both operands computed, one [C, 1, 1]. */
START_TEST (test_se_block)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (4, 3, 5);
  ck_assert (nnic_model_add_adaptive_avgpool2d (m, "pool", "input", 1, 1, &err));
  ck_assert (nnic_model_add_conv2d (m, "fc", "pool",
                                    &(NnicConv2dSpec) { .in_channels = 4, .out_channels = 4,
                                                        .kernel_size = 1 },
                                    &err));
  ck_assert (nnic_model_add_relu (m, "gate", "fc", &err));
  ck_assert (nnic_model_add_binary (m, "scale", NNIC_BINARY_MUL, "input", "gate", &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 3);
  for (int k = 0; k < 4; k++)
    nnic_model_find_param (m, "fc.bias", NULL)->value->f32[k] += 2.0f; /* the gates open, off ReLU's kink */
  NnicRng r;
  nnic_rng_seed (&r, 7);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 2, (int64_t) 4, (int64_t) 3, (int64_t) 5);
  fill (x, &r, FALSE);
  check_finite_diff (m, x, 8, 3e-3);
}
END_TEST

/* ---- Parameter ---- */

START_TEST (test_parameter)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_flat (12);
  ck_assert (nnic_model_add_reshape (m, "tokens", "input", (int64_t[]) { 3, 4 }, 2, &err));
  ck_assert (nnic_model_add_parameter (m, "encoder.pos_embedding", (int64_t[]) { 1, 3, 4 }, 3,
                                       (int64_t[]) { 3, 4 }, 2, &err));
  ck_assert (nnic_model_add_binary (m, "encoder.add", NNIC_BINARY_ADD, "tokens",
                                    "encoder.pos_embedding", &err));
  ck_assert (nnic_model_add_flatten (m, "flat", NULL, &err));
  ck_assert (nnic_model_add_linear (m, "head", NULL,
                                    &(NnicLinearSpec) { .in_features = 12, .out_features = 3 },
                                    &err));
  NNIC_ASSERT_NO_ERROR (err);
  /* The state_dict name and shape, a node with no input. */
  const int i = nnic_model_find_node (m, "encoder.pos_embedding");
  ck_assert_str_eq (nnic_model_node_type (m, (guint) i), "Parameter");
  ck_assert_uint_eq (nnic_model_node_n_inputs (m, (guint) i), 0);
  NnicParam *p = nnic_model_find_param (m, "encoder.pos_embedding", &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (p->value->ndim, 3);
  ck_assert (p->value->shape[0] == 1 && p->value->shape[1] == 3 && p->value->shape[2] == 4);
  ck_assert_ptr_nonnull (p->grad);
  ck_assert_int_eq (nnic_model_count_parameters (m), 12 + 12 * 3 + 3);
  /* Left as loaded by nnic_model_init_params. */
  for (int64_t k = 0; k < p->value->numel; k++)
    p->value->f32[k] = 0.1f * (float) k;
  nnic_model_init_params (m, 1);
  for (int64_t k = 0; k < p->value->numel; k++)
    ck_assert (p->value->f32[k] == 0.1f * (float) k);
  /* A training step moves it by -lr * grad (plain SGD). */
  NnicRng r;
  nnic_rng_seed (&r, 9);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 2, (int64_t) 5, (int64_t) 12);
  fill (x, &r, FALSE);
  g_autoptr (NnicTensor) labels = nnic_tensor_new (NNIC_DTYPE_I64, 1, (int64_t[]) { 5 }, &err);
  for (int k = 0; k < 5; k++)
    labels->i64[k] = k % 3;
  g_autoptr (NnicTensor) before = nnic_tensor_copy (p->value, &err);
  NnicOptimizer *opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.5 }, &err);
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_set_training (m, TRUE);
  nnic_model_zero_grad (m);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  g_autoptr (NnicTensor) dy = nnic_tensor_new_like (y, &err);
  nnic_cross_entropy (y, labels, dy, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_model_backward (m, dy, &err));
  g_autoptr (NnicTensor) grad = nnic_tensor_copy (p->grad, &err);
  nnic_optimizer_step (opt);
  nnic_optimizer_free (opt);
  gboolean moved = FALSE;
  for (int64_t k = 0; k < p->value->numel; k++) {
    ck_assert_msg (fabs (p->value->f32[k] - (before->f32[k] - 0.5 * grad->f32[k])) < 1e-6,
                   "pos_embedding[%" G_GINT64_FORMAT "]", k);
    moved |= p->value->f32[k] != before->f32[k];
  }
  ck_assert (moved);
}
END_TEST

static void
noop_hook (NnicModel *m, guint node, NnicTensor *t, gpointer user_data)
{
  (void) m;
  (void) node;
  (void) t;
  (void) user_data;
}

START_TEST (test_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (4, 5, 6);
  ck_assert (nnic_model_add_parameter (m, "p", (int64_t[]) { 4, 1, 7 }, 3,
                                       (int64_t[]) { 4, 1, 7 }, 3, &err));
  /* shapes that do not broadcast name both operands */
  ck_assert (!nnic_model_add_binary (m, "mul", NNIC_BINARY_MUL, "input", "p", &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE,
                     "mul: cannot multiply 'input' of shape [4, 5, 6] and 'p' of shape [4, 1, 7]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_add (m, "add", "input", "p", &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "add: cannot add 'input' of shape [4, 5, 6]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_binary (m, "bad", (NnicBinaryOp) 7, "input", "input", &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "bad: unknown binary op 7");
  g_clear_error (&err);
  /* a Parameter's shape must broadcast to [1, shape...] */
  ck_assert (!nnic_model_add_parameter (m, "q", (int64_t[]) { 2, 5, 6 }, 3, (int64_t[]) { 5, 6 },
                                        2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE,
                     "q: a parameter of shape [2, 5, 6] does not broadcast to [5, 6]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_parameter (m, "q", (int64_t[]) { 3 }, 1, (int64_t[]) { 4 }, 1, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "q: a parameter of shape [3]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_parameter (m, NULL, (int64_t[]) { 3 }, 1, (int64_t[]) { 3 }, 1, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "a Parameter node needs a name");
  g_clear_error (&err);
  /* parameter names are unique: a node "c.weight" cannot hide conv c's */
  ck_assert (nnic_model_add_conv2d (m, "c", "input",
                                    &(NnicConv2dSpec) { .in_channels = 4, .out_channels = 2,
                                                        .kernel_size = 1 },
                                    &err));
  ck_assert (!nnic_model_add_parameter (m, "c.weight", (int64_t[]) { 3 }, 1, (int64_t[]) { 3 }, 1,
                                        &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT,
                     "c.weight: the model already has a parameter named 'c.weight'");
  g_clear_error (&err);
  ck_assert_int_lt (nnic_model_find_node (m, "c.weight"), 0);
  /* a node with no input has nothing to transform */
  ck_assert (!nnic_model_set_input_transform (m, "p", noop_hook, NULL, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "p: a Parameter has no input to transform");
  g_clear_error (&err);
}
END_TEST

/* ---- channel dependencies ---- */

START_TEST (test_channel_ties)
{
  GError *err = NULL;
  const NnicConv2dSpec c34 = { .in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = 1 };
  g_autoptr (NnicModel) m = nnic_model_new (3, 6, 6);
  ck_assert (nnic_model_add_conv2d (m, "c1", "input", &c34, &err));
  /* an SE gate [4, 1, 1] from a convolution: ties c1 and se.fc */
  ck_assert (nnic_model_add_adaptive_avgpool2d (m, "se.pool", "c1", 1, 1, &err));
  ck_assert (nnic_model_add_conv2d (m, "se.fc", "se.pool",
                                    &(NnicConv2dSpec) { .in_channels = 4, .out_channels = 4,
                                                        .kernel_size = 1 },
                                    &err));
  ck_assert (nnic_model_add_relu (m, "se.gate", "se.fc", &err));
  ck_assert (nnic_model_add_binary (m, "se.mul", NNIC_BINARY_MUL, "c1", "se.gate", &err));
  /* a spatial gate [1, 6, 6]: broadcast along the channels, ties nothing */
  ck_assert (nnic_model_add_conv2d (m, "c2", "input", &c34, &err));
  ck_assert (nnic_model_add_conv2d (m, "sg", "input",
                                    &(NnicConv2dSpec) { .in_channels = 3, .out_channels = 1,
                                                        .kernel_size = 1 },
                                    &err));
  ck_assert (nnic_model_add_binary (m, "sg.mul", NNIC_BINARY_MUL, "c2", "sg", &err));
  /* a layer scale (a Parameter) and scalars keep the channels: c3 ties to
   * c2 through them */
  ck_assert (nnic_model_add_conv2d (m, "c3", "input", &c34, &err));
  ck_assert (nnic_model_add_parameter (m, "ls", (int64_t[]) { 4, 1, 1 }, 3,
                                       (int64_t[]) { 4, 1, 1 }, 3, &err));
  ck_assert (nnic_model_add_binary (m, "ls.mul", NNIC_BINARY_MUL, "ls", "c3", &err));
  ck_assert (nnic_model_add_binary_scalar (m, "half", NNIC_BINARY_MUL, "ls.mul", 0.5, FALSE, &err));
  ck_assert (nnic_model_add_binary (m, "sum", NNIC_BINARY_SUB, "sg.mul", "half", &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (GPtrArray) sets = nnic_model_channel_dependencies (m);
  ck_assert_uint_eq (sets->len, 2);
  const char *want[2][2] = { { "c1", "se.fc" }, { "c2", "c3" } };
  for (guint s = 0; s < 2; s++) {
    GArray *set = g_ptr_array_index (sets, s);
    ck_assert_uint_eq (set->len, 2);
    for (guint k = 0; k < 2; k++)
      ck_assert_str_eq (nnic_model_node_name (m, g_array_index (set, guint, k)), want[s][k]);
  }
}
END_TEST

/* ---- ONNX ---- */

static NnicTensor *
random_input (const NnicModel *m, int64_t batch, guint64 seed)
{
  GError *err = NULL;
  int64_t shape[NNIC_MAX_DIMS + 1] = { batch };
  const int nd = nnic_model_node_shape (m, 0, shape + 1);
  NnicTensor *x = nnic_tensor_new (NNIC_DTYPE_F32, nd + 1, shape, &err);
  NnicRng r;
  nnic_rng_seed (&r, seed);
  fill (x, &r, TRUE);
  return x;
}

/* Everything of this file in one model, out and back in: the same node
 * names and types, the same parameters, the same outputs. */
START_TEST (test_onnx_round_trip)
{
  GError *err = NULL;
  const NnicConv2dSpec c34 = { .in_channels = 3, .out_channels = 4, .kernel_size = 1 };
  g_autoptr (NnicModel) m = nnic_model_new (3, 4, 5);
  ck_assert (nnic_model_add_conv2d (m, "conv", "input", &c34, &err));
  ck_assert (nnic_model_add_parameter (m, "block.layer_scale", (int64_t[]) { 4, 1, 1 }, 3,
                                       (int64_t[]) { 4, 1, 1 }, 3, &err));
  ck_assert (nnic_model_add_binary (m, "block.mul", NNIC_BINARY_MUL, "block.layer_scale", "conv", &err));
  ck_assert (nnic_model_add_binary_scalar (m, "rsub", NNIC_BINARY_SUB, "block.mul", 1.0, TRUE, &err));
  ck_assert (nnic_model_add_binary_scalar (m, "div", NNIC_BINARY_DIV, "rsub", 2.0, FALSE, &err));
  ck_assert (nnic_model_add_binary_scalar (m, "sq", NNIC_BINARY_POW, "div", 2.0, FALSE, &err));
  ck_assert (nnic_model_add_binary_scalar (m, "exp2", NNIC_BINARY_POW, "div", 2.0, TRUE, &err));
  ck_assert (nnic_model_add_binary (m, "prod", NNIC_BINARY_MUL, "sq", "exp2", &err));
  /* a computed [4] vector against [4, 4, 5]: exported through a Reshape */
  ck_assert (nnic_model_add_adaptive_avgpool2d (m, "pool", "conv", 1, 1, &err));
  ck_assert (nnic_model_add_expand (m, "grow", "pool", (int64_t[]) { 4, 4, 5 }, 3, &err));
  ck_assert (nnic_model_add_flatten (m, "vec", "pool", &err));
  ck_assert (nnic_model_add_reshape (m, "vec5", "vec", (int64_t[]) { 4, 1 }, 2, &err));
  ck_assert (nnic_model_add_binary (m, "bc", NNIC_BINARY_ADD, "prod", "vec5", &err));
  ck_assert (nnic_model_add_binary (m, "bc2", NNIC_BINARY_SUB, "bc", "grow", &err));
  /* a token concatenated: the Parameter needs the batch, and goes expanded */
  ck_assert (nnic_model_add_parameter (m, "class_token", (int64_t[]) { 1, 1, 4, 5 }, 4,
                                       (int64_t[]) { 1, 4, 5 }, 3, &err));
  ck_assert (nnic_model_add_concat (m, "cat", (const char *[]) { "class_token", "bc2" }, 2, &err));
  ck_assert (nnic_model_add_parameter (m, "pos", (int64_t[]) { 5 }, 1, (int64_t[]) { 5 }, 1, &err));
  ck_assert (nnic_model_add_binary (m, "out", NNIC_BINARY_ADD, "cat", "pos", &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 3);
  NnicRng r;
  nnic_rng_seed (&r, 11);
  for (guint k = 0; k < nnic_model_n_params (m); k++) {
    NnicParam *p = nnic_model_param (m, k);
    if (!strcmp (p->name, "block.layer_scale") || !strcmp (p->name, "class_token") ||
        !strcmp (p->name, "pos"))
      fill (p->value, &r, FALSE);
  }

  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "binary.onnx", NULL);
  ck_assert_msg (nnic_model_save_onnx (m, path, NULL, &err), "%s", err ? err->message : "");
  g_autoptr (NnicModel) back = nnic_model_load_onnx (path, NULL, &err);
  ck_assert_msg (back != NULL, "%s", err ? err->message : "");
  for (guint i = 1; i < nnic_model_n_nodes (m); i++) {
    const char *name = nnic_model_node_name (m, i);
    const int j = nnic_model_find_node (back, name);
    ck_assert_msg (j >= 0, "%s is missing after the round trip", name);
    ck_assert_str_eq (nnic_model_node_type (back, (guint) j), nnic_model_node_type (m, i));
    int64_t s1[NNIC_MAX_DIMS], s2[NNIC_MAX_DIMS];
    const int n1 = nnic_model_node_shape (m, i, s1), n2 = nnic_model_node_shape (back, (guint) j, s2);
    ck_assert_msg (n1 == n2 && !memcmp (s1, s2, sizeof (int64_t) * (size_t) n1), "%s: shape", name);
    double v1, v2;
    if (nnic_model_node_option (m, i, "scalar", &v1)) {
      ck_assert (nnic_model_node_option (back, (guint) j, "scalar", &v2) && v1 == v2);
      ck_assert (nnic_model_node_option (m, i, "scalar_first", &v1));
      ck_assert (nnic_model_node_option (back, (guint) j, "scalar_first", &v2) && v1 == v2);
    }
  }
  ck_assert_uint_eq (nnic_model_n_params (back), nnic_model_n_params (m));
  for (guint k = 0; k < nnic_model_n_params (m); k++) {
    NnicParam *p = nnic_model_param (m, k);
    NnicParam *q = nnic_model_find_param (back, p->name, &err);
    ck_assert_msg (q != NULL, "%s", err ? err->message : "");
    ck_assert (nnic_tensor_same_shape (p->value, q->value));
    ck_assert (!memcmp (p->value->data, q->value->data, nnic_tensor_nbytes (p->value)));
  }
  for (int64_t batch = 1; batch <= 3; batch += 2) {
    g_autoptr (NnicTensor) x = random_input (m, batch, 12);
    g_autoptr (NnicTensor) ya = nnic_tensor_copy (nnic_model_forward (m, x, &err), &err);
    const NnicTensor *yb = nnic_model_forward (back, x, &err);
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert (nnic_tensor_same_shape (ya, yb));
    for (int64_t i = 0; i < ya->numel; i++)
      assert_close ("round trip", i, yb->f32[i], ya->f32[i], fmax (1.0, fabs (ya->f32[i])));
  }
}
END_TEST

static NnicModel *
load_case (const char *name)
{
  GError *err = NULL;
  g_autofree char *path = g_build_filename (NNIC_TEST_FIXTURES, "onnx_models", "cases", name,
                                            "model.onnx", NULL);
  NnicModel *m = nnic_model_load_onnx (path, NULL, &err);
  ck_assert_msg (m != NULL, "%s: %s", name, err ? err->message : "");
  return m;
}

static void
assert_node (NnicModel *m, const char *name, const char *type, guint n_inputs)
{
  const int i = nnic_model_find_node (m, name);
  ck_assert_msg (i >= 0, "no node %s", name);
  ck_assert_str_eq (nnic_model_node_type (m, (guint) i), type);
  ck_assert_uint_eq (nnic_model_node_n_inputs (m, (guint) i), n_inputs);
}

/* torch's exports: constants become Parameters under their state_dict
 * names and shapes, scalars fold into their nodes, and training moves the
 * Parameters. */
START_TEST (test_torch_cases)
{
  GError *err = NULL;
  g_autoptr (NnicModel) ls = load_case ("test_nnic_layer_scale_opset13");
  assert_node (ls, "block.layer_scale", "Parameter", 0);
  assert_node (ls, "shift", "Parameter", 0);
  assert_node (ls, "scale", "Parameter", 0);
  assert_node (ls, "mul", "Mul", 2);
  assert_node (ls, "sub_1", "Sub", 1);
  assert_node (ls, "pow", "Pow", 1);
  double v;
  ck_assert (nnic_model_node_option (ls, (guint) nnic_model_find_node (ls, "sub_1"), "scalar_first", &v) &&
             v == 1.0);
  NnicParam *p = nnic_model_find_param (ls, "block.layer_scale", &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (p->value->ndim == 3 && p->value->shape[0] == 4 && p->value->shape[1] == 1);
  /* SE: two computed operands */
  g_autoptr (NnicModel) se = load_case ("test_nnic_se_block_opset13");
  assert_node (se, "mul", "Mul", 2);
  g_autoptr (GPtrArray) sets = nnic_model_channel_dependencies (se);
  ck_assert_uint_eq (sets->len, 1);
  ck_assert_uint_eq (((GArray *) g_ptr_array_index (sets, 0))->len, 2);
  /* ViT-like: [1, T, D] as [T, D], the class token expanded over the batch */
  g_autoptr (NnicModel) vit = load_case ("test_nnic_tokens_add_pos_opset13");
  p = nnic_model_find_param (vit, "encoder.pos_embedding", &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (p->value->ndim == 3 && p->value->shape[0] == 1 && p->value->shape[1] == 4);
  int64_t s[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (vit, (guint) nnic_model_find_node (vit, "encoder.pos_embedding"), s), 2);
  g_autoptr (NnicModel) tok = load_case ("test_nnic_class_token_opset13");
  assert_node (tok, "class_token", "Parameter", 0);
  ck_assert_int_eq (nnic_model_node_shape (tok, (guint) nnic_model_find_node (tok, "class_token"), s), 2);
  ck_assert (s[0] == 1 && s[1] == 6);

  /* A training step changes the layer scale and the positional embedding. */
  NnicModel *models[2] = { ls, vit };
  const char *names[2] = { "block.layer_scale", "encoder.pos_embedding" };
  for (int k = 0; k < 2; k++) {
    NnicParam *q = nnic_model_find_param (models[k], names[k], &err);
    g_autoptr (NnicTensor) before = nnic_tensor_copy (q->value, &err);
    NnicOptimizer *opt = nnic_optimizer_new_sgd (models[k], &(NnicSgdOptions) { .lr = 0.1 }, &err);
    g_autoptr (NnicTensor) x = random_input (models[k], 2, 13);
    nnic_model_set_training (models[k], TRUE);
    nnic_model_zero_grad (models[k]);
    const NnicTensor *y = nnic_model_forward (models[k], x, &err);
    NNIC_ASSERT_NO_ERROR (err);
    g_autoptr (NnicTensor) dy = nnic_tensor_new_like (y, &err);
    nnic_tensor_fill (dy, 1.0f);
    ck_assert (nnic_model_backward (models[k], dy, &err));
    g_autoptr (NnicTensor) grad = nnic_tensor_copy (q->grad, &err);
    nnic_optimizer_step (opt);
    nnic_optimizer_free (opt);
    gboolean moved = FALSE;
    for (int64_t i = 0; i < q->value->numel; i++) {
      ck_assert (fabs (q->value->f32[i] - (before->f32[i] - 0.1 * grad->f32[i])) < 1e-6);
      moved |= q->value->f32[i] != before->f32[i];
    }
    ck_assert_msg (moved, "%s did not move", names[k]);
  }
}
END_TEST

static void
assert_import_fails (const char *file, const char *needle)
{
  GError *err = NULL;
  g_autofree char *path = g_build_filename (NNIC_TEST_FIXTURES, "onnx", file, NULL);
  NnicModel *m = nnic_model_load_onnx (path, NULL, &err);
  ck_assert_msg (m == NULL, "%s loaded", file);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_UNSUPPORTED, needle);
  g_clear_error (&err);
}

/* What ONNX means but nnic cannot do is refused, naming the node; an
 * initializer read by two nodes is one Parameter. */
START_TEST (test_onnx_import)
{
  assert_import_fails ("err_bcast_batch.onnx",
                       "node '/Mul' (Mul, opset 13): the constant 'c' [3, 4, 5] would be "
                       "broadcast over the batch of 'x' [N, 4, 5]");
  assert_import_fails ("err_const_rank.onnx",
                       "node '/Mul' (Mul, opset 13): the constant 'c' [1, 1, 4] has more "
                       "dimensions than 'x' [N, 4]");
  assert_import_fails ("err_rank_mismatch.onnx",
                       "node '/Add' (Add, opset 13): broadcasting [N, 4, 5] with [N, 20] would "
                       "align the batch dimension");
  assert_import_fails ("err_expand_rank.onnx",
                       "node '/Expand' (Expand, opset 13): expanding 'x' [N, 4] to [2, 3, 4] "
                       "puts new dimensions before the batch");

  GError *err = NULL;
  /* an Add of two constants is folded (core/onnx/fold.c): x * (c + d)
   * reads one Parameter */
  g_autofree char *two = g_build_filename (NNIC_TEST_FIXTURES, "onnx", "err_two_consts.onnx", NULL);
  g_autoptr (NnicModel) folded = nnic_model_load_onnx (two, NULL, &err);
  ck_assert_msg (folded != NULL, "%s", err ? err->message : "");
  assert_node (folded, "e", "Parameter", 0);
  ck_assert_uint_eq (nnic_model_n_nodes (folded), 3); /* input, e, mul */

  g_autofree char *path = g_build_filename (NNIC_TEST_FIXTURES, "onnx", "shared_const.onnx", NULL);
  g_autoptr (NnicModel) m = nnic_model_load_onnx (path, NULL, &err);
  ck_assert_msg (m != NULL, "%s", err ? err->message : "");
  assert_node (m, "c", "Parameter", 0);
  ck_assert_uint_eq (nnic_model_n_params (m), 1);
  ck_assert_uint_eq (nnic_model_n_nodes (m), 5); /* input, c, mul, mul_1, add */
  g_autoptr (NnicTensor) x = random_input (m, 2, 14);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  for (int64_t i = 0; i < y->numel; i++)
    assert_close ("shared", i, y->f32[i], 2.0 * x->f32[i] * (0.1 * (i % 4) + 1), 1);
}
END_TEST

static Suite *
binary_suite (void)
{
  Suite *s = suite_create ("binary");
  TCase *tc = tcase_create ("ops");
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_patterns);
  tcase_add_test (tc, test_large);
  tcase_add_test (tc, test_finite_diff);
  tcase_add_test (tc, test_same_input);
  tcase_add_test (tc, test_scalar);
  tcase_add_test (tc, test_pow_at_zero);
  tcase_add_test (tc, test_expand);
  tcase_add_test (tc, test_se_block);
  tcase_add_test (tc, test_parameter);
  tcase_add_test (tc, test_errors);
  tcase_add_test (tc, test_channel_ties);
  tcase_add_test (tc, test_onnx_round_trip);
  tcase_add_test (tc, test_torch_cases);
  tcase_add_test (tc, test_onnx_import);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return nnic_test_run (binary_suite ());
}
