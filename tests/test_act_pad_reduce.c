/* The activations of core/ops/unary.c, Pad and ReduceMean: forward against
 * double-precision references of torch's definitions, backward against
 * central finite differences of those references (L = sum(out * R)); the
 * kinks as torch takes them; setup errors; the channel rules (through
 * nnic_model_channel_dependencies); the GELU/SiLU fusions the importer
 * must not make; and ONNX export round trips at opsets 13 and 17. */
#include "testutil.h"

#include <math.h>
#include <string.h>

/* ---- the harness ---- */

/* y = f(x) in double over whole tensors: x is [B, in...], y [B, out...]. */
typedef void (*RefFn) (const void *ctx, int64_t B, const double *x, double *y);

static void
fill_uniform (float *v, int64_t n, NnicRng *rng, double lo, double hi)
{
  for (int64_t i = 0; i < n; i++)
    v[i] = (float) (lo + (hi - lo) * nnic_rng_uniform (rng));
}

static void
assert_close (const char *what, int64_t i, double got, double want, double rtol, double atol)
{
  ck_assert_msg (fabs (got - want) <= atol + rtol * fabs (want),
                 "%s[%" G_GINT64_FORMAT "]: got %.9g, want %.9g", what, i, got, want);
}

static double
ref_loss (RefFn fn, const void *ctx, int64_t B, const double *x, double *y, const float *R,
          int64_t ny)
{
  fn (ctx, B, x, y);
  double L = 0.0;
  for (int64_t i = 0; i < ny; i++)
    L += y[i] * R[i];
  return L;
}

/* Forward and backward of model m (one input, no parameters) against fn,
 * on B samples uniform in [-range, range], moved `avoid` away from the
 * kinks `kinks` (finite differences across a kink mean nothing). */
static void
check_ref (NnicModel *m, RefFn fn, const void *ctx, int64_t B, double range, const double *kinks,
           int n_kinks, guint64 seed)
{
  GError *err = NULL;
  NnicRng rng;
  nnic_rng_seed (&rng, seed);
  int64_t shape[NNIC_MAX_DIMS + 1];
  shape[0] = B;
  const int nd = nnic_model_node_shape (m, 0, shape + 1);
  g_autoptr (NnicTensor) x = nnic_tensor_new (NNIC_DTYPE_F32, nd + 1, shape, &err);
  NNIC_ASSERT_NO_ERROR (err);
  fill_uniform (x->f32, x->numel, &rng, -range, range);
  for (int64_t i = 0; i < x->numel; i++)
    for (int k = 0; k < n_kinks; k++)
      if (fabs (x->f32[i] - kinks[k]) < 1e-3)
        x->f32[i] = (float) (kinks[k] + 2e-3);

  nnic_model_set_input_grad (m, TRUE);
  const NnicTensor *out = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const int64_t ny = out->numel;
  g_autofree double *xd = g_new (double, x->numel);
  for (int64_t i = 0; i < x->numel; i++)
    xd[i] = x->f32[i];
  g_autofree double *y = g_new (double, ny);
  fn (ctx, B, xd, y);
  for (int64_t i = 0; i < ny; i++)
    assert_close ("forward", i, out->f32[i], y[i], 1e-5, 1e-6);

  g_autoptr (NnicTensor) R = nnic_tensor_new_like (out, &err);
  fill_uniform (R->f32, R->numel, &rng, -1, 1);
  ck_assert (nnic_model_backward (m, R, &err));
  NNIC_ASSERT_NO_ERROR (err);
  const NnicTensor *dx = nnic_model_input_grad (m);
  ck_assert_ptr_nonnull (dx);
  for (int64_t i = 0; i < x->numel; i++) {
    const double eps = 1e-6, keep = xd[i];
    xd[i] = keep + eps;
    const double lp = ref_loss (fn, ctx, B, xd, y, R->f32, ny);
    xd[i] = keep - eps;
    const double lm = ref_loss (fn, ctx, B, xd, y, R->f32, ny);
    xd[i] = keep;
    assert_close ("dinput", i, dx->f32[i], (lp - lm) / (2 * eps), 1e-3, 1e-5);
  }
}

/* ---- activations ---- */

typedef struct {
  double (*f) (double x, const double *p);
  const double *p;
  int64_t n; /* per sample */
} Elementwise;

static void
ref_elementwise (const void *ctx, int64_t B, const double *x, double *y)
{
  const Elementwise *e = ctx;
  for (int64_t i = 0; i < B * e->n; i++)
    y[i] = e->f (x[i], e->p);
}

static double
clamp01 (double v)
{
  return v < 0 ? 0 : v > 1 ? 1 : v;
}

static double r_sigmoid (double x, const double *p) { (void) p; return 1 / (1 + exp (-x)); }
static double r_hardsigmoid (double x, const double *p) { return clamp01 (p[0] * x + p[1]); }
static double r_hardswish (double x, const double *p) { (void) p; return x * clamp01 (x / 6 + 0.5); }
static double r_tanh (double x, const double *p) { (void) p; return tanh (x); }
static double r_erf (double x, const double *p) { (void) p; return erf (x); }
static double r_gelu (double x, const double *p) { (void) p; return 0.5 * x * (1 + erf (x / sqrt (2))); }
static double r_silu (double x, const double *p) { (void) p; return x / (1 + exp (-x)); }

static double
r_gelu_tanh (double x, const double *p)
{
  (void) p;
  return 0.5 * x * (1 + tanh (sqrt (2 / M_PI) * (x + 0.044715 * x * x * x)));
}

typedef gboolean (*AddFn) (NnicModel *m, const char *name, const char *input, GError **error);

static void
check_activation (const char *type, AddFn add, double (*f) (double, const double *),
                  const double *p, const double *kinks, int n_kinks, guint64 seed)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (3, 4, 5);
  ck_assert (add (m, "act", NULL, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_str_eq (nnic_model_node_type (m, 1), type);
  Elementwise e = { f, p, 60 };
  check_ref (m, ref_elementwise, &e, 2, 5.0, kinks, n_kinks, seed);
}

static gboolean
add_gelu_exact (NnicModel *m, const char *name, const char *input, GError **error)
{
  return nnic_model_add_gelu (m, name, input, FALSE, error);
}

static gboolean
add_gelu_tanh (NnicModel *m, const char *name, const char *input, GError **error)
{
  return nnic_model_add_gelu (m, name, input, TRUE, error);
}

static gboolean
add_hardsigmoid_torch (NnicModel *m, const char *name, const char *input, GError **error)
{
  return nnic_model_add_hardsigmoid (m, name, input, 1.0 / 6.0, 0.5, error);
}

/* ONNX's default alpha 0.2 and another beta: kinks at -3 and 2. */
static gboolean
add_hardsigmoid_onnx (NnicModel *m, const char *name, const char *input, GError **error)
{
  return nnic_model_add_hardsigmoid (m, name, input, 0.2, 0.6, error);
}

START_TEST (test_activations)
{
  const double hard[2] = { -3, 3 }, onnx_kinks[2] = { -3, 2 };
  const double torch_p[2] = { 1.0 / 6.0, 0.5 }, onnx_p[2] = { 0.2, 0.6 };
  check_activation ("Sigmoid", nnic_model_add_sigmoid, r_sigmoid, NULL, NULL, 0, 1);
  check_activation ("Hardswish", nnic_model_add_hardswish, r_hardswish, NULL, hard, 2, 2);
  check_activation ("Tanh", nnic_model_add_tanh, r_tanh, NULL, NULL, 0, 3);
  check_activation ("Erf", nnic_model_add_erf, r_erf, NULL, NULL, 0, 4);
  check_activation ("GELU", add_gelu_exact, r_gelu, NULL, NULL, 0, 5);
  check_activation ("GELU", add_gelu_tanh, r_gelu_tanh, NULL, NULL, 0, 6);
  check_activation ("SiLU", nnic_model_add_silu, r_silu, NULL, NULL, 0, 7);
  check_activation ("Hardsigmoid", add_hardsigmoid_torch, r_hardsigmoid, torch_p, hard, 2, 8);
  check_activation ("Hardsigmoid", add_hardsigmoid_onnx, r_hardsigmoid, onnx_p, onnx_kinks, 2, 9);
}
END_TEST

/* The kinks as torch takes them: hardsigmoid' = 0 at -3 and 3;
 * hardswish' = x/3 + 1/2 on [-3, 3] (-0.5 at -3, 1.5 at 3). Large inputs
 * saturate without NaN; NaN passes through. */
START_TEST (test_activation_edges)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_flat (6);
  ck_assert (nnic_model_add_hardsigmoid (m, "hsig", "input", 1.0 / 6.0, 0.5, &err));
  ck_assert (nnic_model_add_hardswish (m, "hswish", "input", &err));
  ck_assert (nnic_model_add_sigmoid (m, "sig", "input", &err));
  ck_assert (nnic_model_add_silu (m, "silu", "input", &err));
  const char *all[] = { "hsig", "hswish", "sig", "silu" };
  ck_assert (nnic_model_add_concat (m, "cat", all, 4, &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_set_input_grad (m, TRUE);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 2, 1, 6);
  const float xv[6] = { -3.0f, 3.0f, -200.0f, 200.0f, 0.0f, NAN };
  memcpy (x->f32, xv, sizeof xv);
  const NnicTensor *out = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const float want[24] = { 0, 1, 0, 1, 0.5f, NAN,          /* hardsigmoid */
                           -0.0f, 3, -0.0f, 200, 0, NAN,   /* hardswish */
                           0, 1, 0, 1, 0.5f, NAN,          /* sigmoid (e^-3 aside) */
                           0, 0, -0.0f, 200, 0, NAN };     /* silu (at -3, 3 aside) */
  for (int i = 0; i < 24; i++) {
    if (i % 6 < 2 && i >= 12)
      continue;
    if (isnan (want[i]))
      ck_assert_msg (isnan (out->f32[i]), "output %d: %g, want NaN", i, out->f32[i]);
    else
      ck_assert_msg (out->f32[i] == want[i], "output %d: %g, want %g", i, out->f32[i], want[i]);
  }
  g_autoptr (NnicTensor) R = nnic_tensor_new_f32 (&err, 2, 1, 24);
  nnic_tensor_fill (R, 0.0f);
  for (int i = 0; i < 6; i++) /* the two hard ones only */
    R->f32[i] = R->f32[6 + i] = 1.0f;
  R->f32[5] = R->f32[11] = 0.0f; /* not the NaN */
  ck_assert (nnic_model_backward (m, R, &err));
  const float dx[5] = { 0 + -0.5f, 0 + 1.5f, 0, 1, 1.0f / 6.0f + 0.5f };
  for (int i = 0; i < 5; i++)
    ck_assert_msg (fabsf (nnic_model_input_grad (m)->f32[i] - dx[i]) < 1e-6f, "dx[%d]: %g, want %g",
                   i, nnic_model_input_grad (m)->f32[i], dx[i]);
  double v;
  ck_assert (nnic_model_node_option (m, 1, "alpha", &v) && fabs (v - 1.0 / 6.0) < 1e-12);
  ck_assert (nnic_model_node_option (m, 1, "beta", &v) && v == 0.5);
  ck_assert (!nnic_model_node_option (m, 2, "alpha", &v));

  g_autoptr (NnicModel) g = nnic_model_new_flat (3);
  ck_assert (nnic_model_add_gelu (g, "a", NULL, TRUE, &err));
  ck_assert (nnic_model_add_gelu (g, "b", NULL, FALSE, &err));
  ck_assert (nnic_model_node_option (g, 1, "approximate", &v) && v == 1.0);
  ck_assert (nnic_model_node_option (g, 2, "approximate", &v) && v == 0.0);
  ck_assert (!nnic_model_add_hardsigmoid (g, "bad", NULL, NAN, 0.5, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "bad: alpha nan and beta 0.5 must be finite");
  g_clear_error (&err);
}
END_TEST

/* ---- Pad ---- */

typedef struct {
  NnicPadSpec spec;
  int64_t in[3], out[3]; /* per sample */
} PadRef;

/* numpy's reflect, one reflection at a time (not the period formula). */
static int64_t
ref_source (NnicPadMode mode, int64_t o, int64_t b, int64_t e, int64_t n)
{
  const int64_t s0 = b < 0 ? -b : 0, m = n - s0 - (e < 0 ? -e : 0);
  int64_t j = o - (b > 0 ? b : 0);
  if (j >= 0 && j < m)
    return s0 + j;
  if (mode == NNIC_PAD_CONSTANT)
    return -1;
  if (mode == NNIC_PAD_EDGE)
    return s0 + (j < 0 ? 0 : m - 1);
  if (m == 1)
    return s0;
  while (j < 0 || j >= m)
    j = j < 0 ? -j : 2 * (m - 1) - j;
  return s0 + j;
}

static void
ref_pad (const void *ctx, int64_t B, const double *x, double *y)
{
  const PadRef *r = ctx;
  const NnicPadSpec *s = &r->spec;
  const int64_t *in = r->in, *out = r->out;
  for (int64_t b = 0; b < B; b++)
    for (int64_t c = 0; c < out[0]; c++)
      for (int64_t h = 0; h < out[1]; h++)
        for (int64_t w = 0; w < out[2]; w++) {
          const int64_t sc = ref_source (s->mode, c, s->pads[0], s->pads[3], in[0]);
          const int64_t sh = ref_source (s->mode, h, s->pads[1], s->pads[4], in[1]);
          const int64_t sw = ref_source (s->mode, w, s->pads[2], s->pads[5], in[2]);
          y[((b * out[0] + c) * out[1] + h) * out[2] + w] =
            sc < 0 || sh < 0 || sw < 0 ? s->value
                                       : x[((b * in[0] + sc) * in[1] + sh) * in[2] + sw];
        }
}

static void
check_pad (NnicPadMode mode, double value, const int64_t pads[6], guint64 seed)
{
  GError *err = NULL;
  PadRef r = { .spec = { .mode = mode, .value = value, .ndim = 3 }, .in = { 3, 4, 5 } };
  memcpy (r.spec.pads, pads, sizeof (int64_t) * 6);
  for (int d = 0; d < 3; d++)
    r.out[d] = r.in[d] + pads[d] + pads[3 + d];
  g_autoptr (NnicModel) m = nnic_model_new (3, 4, 5);
  ck_assert_msg (nnic_model_add_pad (m, "pad", NULL, &r.spec, &err), "%s", err ? err->message : "");
  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, 1, shape), 3);
  for (int d = 0; d < 3; d++)
    ck_assert_int_eq (shape[d], r.out[d]);
  check_ref (m, ref_pad, &r, 2, 1.0, NULL, 0, seed);
  double v;
  ck_assert (nnic_model_node_option (m, 1, "mode", &v) && v == mode);
}

START_TEST (test_pad)
{
  /* C, H, W begins, then ends */
  check_pad (NNIC_PAD_CONSTANT, 0.0, (const int64_t[]) { 0, 1, 2, 0, 2, 1 }, 20);
  check_pad (NNIC_PAD_CONSTANT, -0.5, (const int64_t[]) { 1, 0, 0, 2, 0, 3 }, 21);
  check_pad (NNIC_PAD_CONSTANT, 0.25, (const int64_t[]) { 0, -1, 2, 0, 1, -2 }, 22);
  check_pad (NNIC_PAD_REFLECT, 0.0, (const int64_t[]) { 0, 2, 3, 0, 3, 4 }, 23);
  check_pad (NNIC_PAD_REFLECT, 0.0, (const int64_t[]) { 0, 5, 0, 0, 7, 9 }, 24); /* past one reflection */
  check_pad (NNIC_PAD_REFLECT, 0.0, (const int64_t[]) { 1, -1, 1, 0, -1, 2 }, 25);
  check_pad (NNIC_PAD_EDGE, 0.0, (const int64_t[]) { 0, 1, 6, 0, 2, 0 }, 26);
  check_pad (NNIC_PAD_EDGE, 0.0, (const int64_t[]) { 2, -3, -1, 1, 2, -3 }, 27);
  check_pad (NNIC_PAD_CONSTANT, 1.0, (const int64_t[]) { 0, 0, 0, 0, 0, 0 }, 28);
}
END_TEST

START_TEST (test_pad_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (3, 4, 5);
  NnicPadSpec s = { .mode = NNIC_PAD_REFLECT, .ndim = 2 };
  ck_assert (!nnic_model_add_pad (m, "p", NULL, &s, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "p: the pads cover 2 axes, but 'input' has 3 per sample");
  g_clear_error (&err);
  s = (NnicPadSpec) { .mode = NNIC_PAD_CONSTANT, .ndim = 3, .pads = { 0, -2, 0, 0, -2, 0 } };
  ck_assert (!nnic_model_add_pad (m, "p", NULL, &s, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "leave nothing of axis 1");
  g_clear_error (&err);
  s = (NnicPadSpec) { .mode = NNIC_PAD_EDGE, .ndim = 3, .pads = { 0, 1, 0, 0, -4, 0 } };
  ck_assert (!nnic_model_add_pad (m, "p", NULL, &s, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "edge padding of axis 1 needs input values");
  g_clear_error (&err);
  s = (NnicPadSpec) { .mode = 7, .ndim = 3 };
  ck_assert (!nnic_model_add_pad (m, "p", NULL, &s, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "unknown padding mode 7");
  g_clear_error (&err);
  s = (NnicPadSpec) { .mode = NNIC_PAD_CONSTANT, .value = INFINITY, .ndim = 3 };
  ck_assert (!nnic_model_add_pad (m, "p", NULL, &s, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "not finite");
  g_clear_error (&err);
  s = (NnicPadSpec) { .mode = NNIC_PAD_CONSTANT, .ndim = 3, .pads = { 0, G_MAXINT64, 0, 0, 0, 0 } };
  ck_assert (!nnic_model_add_pad (m, "p", NULL, &s, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "too large");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_pad (m, "p", NULL, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "needs a spec");
  g_clear_error (&err);
  ck_assert_uint_eq (nnic_model_n_nodes (m), 1);
}
END_TEST

/* ---- ReduceMean ---- */

typedef struct {
  int64_t in[3];
  gboolean reduced[3];
} MeanRef;

static void
ref_mean (const void *ctx, int64_t B, const double *x, double *y)
{
  const MeanRef *r = ctx;
  const int64_t *n = r->in;
  int64_t osz[3], count = 1, out_n = 1;
  for (int d = 0; d < 3; d++) {
    osz[d] = r->reduced[d] ? 1 : n[d];
    count *= r->reduced[d] ? n[d] : 1;
    out_n *= osz[d];
  }
  memset (y, 0, sizeof (double) * (size_t) (B * out_n));
  for (int64_t b = 0; b < B; b++)
    for (int64_t c = 0; c < n[0]; c++)
      for (int64_t h = 0; h < n[1]; h++)
        for (int64_t w = 0; w < n[2]; w++) {
          const int64_t oc = r->reduced[0] ? 0 : c, oh = r->reduced[1] ? 0 : h,
                        ow = r->reduced[2] ? 0 : w;
          y[((b * osz[0] + oc) * osz[1] + oh) * osz[2] + ow] +=
            x[((b * n[0] + c) * n[1] + h) * n[2] + w] / (double) count;
        }
}

static void
check_mean (const int *axes, int n_axes, gboolean keepdims, int want_ndim, guint64 seed)
{
  GError *err = NULL;
  MeanRef r = { .in = { 3, 4, 5 } };
  for (int k = 0; k < n_axes; k++)
    r.reduced[(axes[k] + 4) % 4 - 1] = TRUE;
  g_autoptr (NnicModel) m = nnic_model_new (3, 4, 5);
  ck_assert_msg (nnic_model_add_reduce_mean (m, "mean", NULL, axes, n_axes, keepdims, &err), "%s",
                 err ? err->message : "");
  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, 1, shape), want_ndim);
  check_ref (m, ref_mean, &r, 3, 1.0, NULL, 0, seed);
  double v;
  ck_assert (nnic_model_node_option (m, 1, "keepdims", &v) && v == keepdims);
  ck_assert (nnic_model_node_option (m, 1, "n_axes", &v) && v == n_axes);
}

START_TEST (test_reduce_mean)
{
  check_mean ((const int[]) { 2, 3 }, 2, FALSE, 1, 30);  /* MNASNet's x.mean([2, 3]) */
  check_mean ((const int[]) { 3, 2 }, 2, TRUE, 3, 31);
  check_mean ((const int[]) { 1 }, 1, TRUE, 3, 32);
  check_mean ((const int[]) { -1 }, 1, FALSE, 2, 33);
  check_mean ((const int[]) { 1, 3 }, 2, FALSE, 1, 34);  /* runs: reduced, kept, reduced */
  check_mean ((const int[]) { 2 }, 1, FALSE, 2, 35);     /* kept, reduced, kept */
  check_mean ((const int[]) { 1, 2, 3 }, 3, FALSE, 0, 36);
  check_mean ((const int[]) { -3, -2, -1 }, 3, TRUE, 3, 37);
}
END_TEST

START_TEST (test_reduce_mean_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (3, 4, 5);
  ck_assert (!nnic_model_add_reduce_mean (m, "r", NULL, (const int[]) { 0 }, 1, TRUE, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "r: reducing axis 0, the batch, is not supported");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_reduce_mean (m, "r", NULL, (const int[]) { -4 }, 1, TRUE, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "the batch");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_reduce_mean (m, "r", NULL, (const int[]) { 4 }, 1, TRUE, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "axis 4 is out of range for 4 dimensions");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_reduce_mean (m, "r", NULL, (const int[]) { 2, -2 }, 2, TRUE, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "axis -2 is given twice");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_reduce_mean (m, "r", NULL, NULL, 0, TRUE, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "would reduce the batch");
  g_clear_error (&err);
  ck_assert_uint_eq (nnic_model_n_nodes (m), 1);
}
END_TEST

/* ---- channel rules ---- */

/* Two convolutions, each through `mid` (a builder on "a"/"b"), added: tied
 * when mid keeps the channels. */
typedef gboolean (*MidFn) (NnicModel *m, const char *name, const char *input, GError **error);

static guint
n_dependency_sets (MidFn mid)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (3, 6, 6);
  NnicConv2dSpec c = { .in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = 1 };
  ck_assert (nnic_model_add_conv2d (m, "a", "input", &c, &err));
  ck_assert (nnic_model_add_conv2d (m, "b", "input", &c, &err));
  ck_assert (mid (m, "ma", "a", &err));
  ck_assert (mid (m, "mb", "b", &err));
  ck_assert (nnic_model_add_add (m, "add", "ma", "mb", &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (GPtrArray) sets = nnic_model_channel_dependencies (m);
  return sets->len;
}

static gboolean
mid_pad_hw (NnicModel *m, const char *name, const char *input, GError **error)
{
  NnicPadSpec s = { .mode = NNIC_PAD_REFLECT, .ndim = 3, .pads = { 0, 1, 1, 0, 1, 1 } };
  return nnic_model_add_pad (m, name, input, &s, error);
}

static gboolean
mid_pad_c (NnicModel *m, const char *name, const char *input, GError **error)
{
  NnicPadSpec s = { .mode = NNIC_PAD_CONSTANT, .ndim = 3, .pads = { 1, 0, 0, 0, 0, 0 } };
  return nnic_model_add_pad (m, name, input, &s, error);
}

static gboolean
mid_mean_hw (NnicModel *m, const char *name, const char *input, GError **error)
{
  return nnic_model_add_reduce_mean (m, name, input, (const int[]) { 2, 3 }, 2, TRUE, error);
}

static gboolean
mid_mean_c (NnicModel *m, const char *name, const char *input, GError **error)
{
  return nnic_model_add_reduce_mean (m, name, input, (const int[]) { 1 }, 1, TRUE, error);
}

START_TEST (test_channel_rules)
{
  ck_assert_uint_eq (n_dependency_sets (nnic_model_add_silu), 1);
  ck_assert_uint_eq (n_dependency_sets (add_gelu_exact), 1);
  ck_assert_uint_eq (n_dependency_sets (nnic_model_add_hardswish), 1);
  ck_assert_uint_eq (n_dependency_sets (mid_pad_hw), 1);
  ck_assert_uint_eq (n_dependency_sets (mid_mean_hw), 1);
  ck_assert_uint_eq (n_dependency_sets (mid_pad_c), 0);
  ck_assert_uint_eq (n_dependency_sets (mid_mean_c), 0);
}
END_TEST

/* ---- ONNX ---- */

static char *
fusion_fixture (const char *name)
{
  return g_build_filename (NNIC_TEST_FIXTURES, "onnx_models", "fusions", name, NULL);
}

/* A pattern whose intermediate value is read elsewhere is not fused: the
 * file imports with the pattern's nodes as they are (once nnic imports
 * Div and Mul) or is refused naming them, never as a GELU or SiLU. */
static void
assert_not_fused (const char *file, const char *kept_type)
{
  GError *err = NULL;
  g_autofree char *path = fusion_fixture (file);
  g_autoptr (NnicModel) m = nnic_model_load_onnx (path, NULL, &err);
  if (!m) {
    ck_assert_msg (err->code == NNIC_ERROR_UNSUPPORTED && strstr (err->message, "Mul"),
                   "%s: %s", file, err->message);
    g_clear_error (&err);
    return;
  }
  gboolean kept = FALSE;
  for (guint i = 0; i < nnic_model_n_nodes (m); i++) {
    const char *t = nnic_model_node_type (m, i);
    ck_assert_msg (strcmp (t, "GELU") && strcmp (t, "SiLU"), "%s: fused into %s", file, t);
    kept |= !strcmp (t, kept_type);
  }
  ck_assert_msg (kept, "%s: no %s node", file, kept_type);
}

START_TEST (test_fusions_refused)
{
  assert_not_fused ("silu_shared_sigmoid.onnx", "Sigmoid");
  assert_not_fused ("gelu_shared_erf.onnx", "Erf");
  assert_not_fused ("gelu_wrong_constant.onnx", "Erf");
}
END_TEST

/* Every op of the family, Pad and ReduceMean out to ONNX and back: the
 * same node names and types (GELU and SiLU through the import's fusions,
 * Hardswish at opset 13 through HardSigmoid + Mul), the same outputs. */
static void
round_trip (int opset)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (3, 6, 6);
  NnicConv2dSpec c = { .in_channels = 3, .out_channels = 4, .kernel_size = 3 };
  NnicPadSpec reflect = { .mode = NNIC_PAD_REFLECT, .ndim = 3, .pads = { 0, 1, 1, 0, 1, 1 } };
  NnicPadSpec edge = { .mode = NNIC_PAD_EDGE, .ndim = 3, .pads = { 0, 2, -1, 0, 0, 1 } };
  NnicPadSpec constant = { .mode = NNIC_PAD_CONSTANT, .value = 0.5, .ndim = 3,
                           .pads = { 1, 0, 1, 0, 2, 0 } };
  ck_assert (nnic_model_add_pad (m, "pad", NULL, &reflect, &err));
  ck_assert (nnic_model_add_conv2d (m, "conv", NULL, &c, &err));
  ck_assert (nnic_model_add_silu (m, "silu", NULL, &err));
  ck_assert (nnic_model_add_hardswish (m, "hswish", NULL, &err));
  ck_assert (nnic_model_add_gelu (m, "gelu", NULL, FALSE, &err));
  ck_assert (nnic_model_add_gelu (m, "gelu_tanh", NULL, TRUE, &err));
  ck_assert (nnic_model_add_pad (m, "pad_edge", NULL, &edge, &err));
  ck_assert (nnic_model_add_sigmoid (m, "sigmoid", NULL, &err));
  ck_assert (nnic_model_add_tanh (m, "tanh", NULL, &err));
  ck_assert (nnic_model_add_erf (m, "erf", NULL, &err));
  ck_assert (nnic_model_add_hardsigmoid (m, "hsig", NULL, 0.2, 0.4, &err));
  ck_assert (nnic_model_add_pad (m, "pad_const", NULL, &constant, &err));
  ck_assert (nnic_model_add_reduce_mean (m, "mean", NULL, (const int[]) { -1, 2 }, 2, FALSE, &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 3);

  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "acts.onnx", NULL);
  NnicOnnxSaveOptions o = { .opset = opset };
  ck_assert_msg (nnic_model_save_onnx (m, path, &o, &err), "%s", err ? err->message : "");
  g_autoptr (NnicModel) back = nnic_model_load_onnx (path, NULL, &err);
  ck_assert_msg (back != NULL, "opset %d: %s", opset, err ? err->message : "");
  ck_assert_uint_eq (nnic_model_n_nodes (back), nnic_model_n_nodes (m));
  for (guint i = 1; i < nnic_model_n_nodes (m); i++) {
    int j = nnic_model_find_node (back, nnic_model_node_name (m, i));
    ck_assert_msg (j >= 0, "opset %d: %s is missing", opset, nnic_model_node_name (m, i));
    ck_assert_str_eq (nnic_model_node_type (back, (guint) j), nnic_model_node_type (m, i));
  }
  double v;
  ck_assert (nnic_model_node_option (back, (guint) nnic_model_find_node (back, "gelu_tanh"),
                                     "approximate", &v) && v == 1.0);
  ck_assert (nnic_model_node_option (back, (guint) nnic_model_find_node (back, "hsig"), "beta",
                                     &v) && fabs (v - 0.4) < 1e-7);

  NnicRng rng;
  nnic_rng_seed (&rng, 40);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, 2, 3, 6, 6);
  fill_uniform (x->f32, x->numel, &rng, -3, 3);
  const NnicTensor *ya = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) keep = nnic_tensor_copy (ya, &err);
  const NnicTensor *yb = nnic_model_forward (back, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_tensor_same_shape (keep, yb));
  for (int64_t k = 0; k < keep->numel; k++)
    ck_assert_msg (fabsf (keep->f32[k] - yb->f32[k]) <= 1e-6f * (1.0f + fabsf (keep->f32[k])),
                   "opset %d: output %" G_GINT64_FORMAT ": %g vs %g", opset, k, keep->f32[k],
                   yb->f32[k]);
}

START_TEST (test_onnx_round_trips)
{
  round_trip (13);
  round_trip (17);
}
END_TEST

static Suite *
suite (void)
{
  Suite *s = suite_create ("act_pad_reduce");
  TCase *tc = tcase_create ("core");
  tcase_add_test (tc, test_activations);
  tcase_add_test (tc, test_activation_edges);
  tcase_add_test (tc, test_pad);
  tcase_add_test (tc, test_pad_errors);
  tcase_add_test (tc, test_reduce_mean);
  tcase_add_test (tc, test_reduce_mean_errors);
  tcase_add_test (tc, test_channel_rules);
  tcase_add_test (tc, test_fusions_refused);
  tcase_add_test (tc, test_onnx_round_trips);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return nnic_test_run (suite ());
}
