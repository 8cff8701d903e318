/* The layer options ONNX import needs, against PyTorch: Conv2d with
 * per-axis stride and dilation, asymmetric padding and depthwise groups
 * (both the direct depthwise kernel and the grouped-GEMM path), MaxPool2d
 * and AvgPool2d with ceil_mode, per-side padding, rectangular windows and
 * exclude_pad, Softmax, Reshape and Hardtanh. Forward outputs and every
 * gradient are compared with fixtures/ops/ops.safetensors, written by
 * fixtures/ops/make_ops_fixtures.py (whose CASES the table below mirrors).
 * Also: finite-difference checks of Softmax and Hardtanh, the node option
 * getters, the new types in the graph helpers, and setup errors. */
#include "testutil.h"

#include <math.h>
#include <string.h>

typedef enum { CONV, MAXPOOL, AVGPOOL, SOFTMAX, RESHAPE, HARDTANH } Kind;

typedef struct {
  const char *name;
  Kind kind;
  NnicConv2dSpec conv; /* in_channels and the kernel filled from the fixture */
  NnicPool2dSpec pool;
  int axis;
  int64_t shape[2];
  double lo, hi;
} Case;

/* The spellings vary on purpose: the single `stride`/`padding` where they
 * suffice, per-axis fields and explicit pads where not. */
static const Case cases[] = {
  { "conv_stride21", CONV,
    .conv = { .out_channels = 4, .kernel_size = 3, .stride_h = 2, .stride_w = 1, .padding = 1 } },
  { "conv_dilation12", CONV,
    .conv = { .out_channels = 4, .kernel_size = 3, .dilation_h = 1, .dilation_w = 2,
              .explicit_pads = TRUE, .pads = { 1, 2, 1, 2 } } },
  { "conv_asym_pads", CONV,
    .conv = { .out_channels = 4, .kernel_size = 3, .stride = 2, .explicit_pads = TRUE,
              .pads = { 0, 1, 2, 1 } } },
  { "conv_k1x3", CONV,
    .conv = { .out_channels = 4, .kernel_h = 1, .kernel_w = 3, .explicit_pads = TRUE,
              .pads = { 0, 1, 0, 1 }, .no_bias = TRUE } },
  { "conv_k5", CONV, .conv = { .out_channels = 4, .kernel_size = 5, .padding = 2 } },
  { "conv_k7_s2", CONV, .conv = { .out_channels = 4, .kernel_size = 7, .stride = 2, .padding = 3 } },
  { "dw_m1_bias", CONV,
    .conv = { .out_channels = 4, .kernel_size = 3, .padding = 1, .groups = 4 } },
  { "dw_m1_nobias_s2", CONV,
    .conv = { .out_channels = 4, .kernel_size = 3, .stride = 2, .padding = 1, .groups = 4,
              .no_bias = TRUE } },
  { "dw_m2_bias_s2", CONV,
    .conv = { .out_channels = 6, .kernel_size = 3, .stride = 2, .padding = 1, .groups = 3 } },
  { "dw_m2_nobias", CONV,
    .conv = { .out_channels = 6, .kernel_size = 3, .padding = 1, .groups = 3, .no_bias = TRUE } },
  { "dw_k5_s2", CONV,
    .conv = { .out_channels = 4, .kernel_size = 5, .stride = 2, .padding = 2, .groups = 4 } },
  { "dw_dil_asym", CONV,
    .conv = { .out_channels = 8, .kernel_size = 3, .stride_h = 1, .stride_w = 2, .dilation = 2,
              .explicit_pads = TRUE, .pads = { 1, 2, 2, 1 }, .groups = 4 } },
  { "dw_s3_k1x3", CONV,
    .conv = { .out_channels = 2, .kernel_h = 1, .kernel_w = 3, .stride = 3, .explicit_pads = TRUE,
              .pads = { 0, 0, 1, 2 }, .groups = 2 } },
  { "max_ceil", MAXPOOL, .pool = { .kernel_size = 3, .stride = 2, .ceil_mode = TRUE } },
  { "max_ceil_pad", MAXPOOL,
    .pool = { .kernel_size = 2, .padding = 1, .ceil_mode = TRUE } },
  { "max_rect", MAXPOOL,
    .pool = { .kernel_h = 2, .kernel_w = 3, .stride_h = 2, .stride_w = 1, .explicit_pads = TRUE,
              .pads = { 1, 0, 0, 1 } } },
  { "max_asym_ceil", MAXPOOL,
    .pool = { .kernel_size = 3, .stride = 2, .explicit_pads = TRUE, .pads = { 0, 1, 1, 0 },
              .ceil_mode = TRUE } },
  { "avg_ceil_incl", AVGPOOL,
    .pool = { .kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = TRUE } },
  { "avg_ceil_excl", AVGPOOL,
    .pool = { .kernel_size = 3, .stride = 2, .padding = 1, .ceil_mode = TRUE,
              .exclude_pad = TRUE } },
  { "avg_ceil_clip", AVGPOOL, .pool = { .kernel_size = 2, .padding = 1, .ceil_mode = TRUE } },
  { "avg_asym", AVGPOOL,
    .pool = { .kernel_h = 3, .kernel_w = 4, .stride_h = 2, .stride_w = 3, .explicit_pads = TRUE,
              .pads = { 1, 2, 0, 1 } } },
  { "avg_asym_excl_ceil", AVGPOOL,
    .pool = { .kernel_size = 3, .stride = 2, .explicit_pads = TRUE, .pads = { 0, 1, 1, 1 },
              .ceil_mode = TRUE, .exclude_pad = TRUE } },
  { "avg_rect", AVGPOOL, .pool = { .kernel_h = 2, .kernel_w = 3, .stride_h = 1, .stride_w = 2 } },
  { "softmax_vec", SOFTMAX, .axis = 1 },
  { "softmax_chw_c", SOFTMAX, .axis = 1 },
  { "softmax_chw_h", SOFTMAX, .axis = 2 },
  { "softmax_chw_w", SOFTMAX, .axis = -1 },
  { "reshape", RESHAPE, .shape = { 6, -1 } },
  { "hardtanh_1", HARDTANH, .lo = -1, .hi = 1 },
  { "hardtanh_06", HARDTANH, .lo = 0, .hi = 6 },
};

static NnicTensorDict *fixtures;

static void
load_fixtures (void)
{
  GError *err = NULL;
  g_autofree char *path = g_build_filename (NNIC_TEST_FIXTURES, "ops", "ops.safetensors", NULL);
  fixtures = nnic_safetensors_load (path, &err);
  if (!fixtures)
    g_error ("cannot load %s: %s (make it with fixtures/ops/make_ops_fixtures.py)", path,
             err->message);
}

static void
free_fixtures (void)
{
  g_clear_pointer (&fixtures, nnic_tensor_dict_free);
}

static const NnicTensor *
fixture (const char *name, const char *what)
{
  g_autofree char *key = g_strconcat (name, ".", what, NULL);
  const NnicTensor *t = nnic_tensor_dict_get (fixtures, key);
  ck_assert_msg (t != NULL, "the fixture has no %s", key);
  return t;
}

/* float32 against the exactly rounded float64 answer: a few ulps of the
 * larger of the value and 1 (sums of up to a few hundred products). */
static void
assert_tensor_close (const char *name, const char *what, const NnicTensor *got,
                     const NnicTensor *want)
{
  g_autofree char *gs = nnic_shape_to_string (got->ndim, got->shape);
  g_autofree char *ws = nnic_shape_to_string (want->ndim, want->shape);
  ck_assert_msg (nnic_tensor_same_shape (got, want), "%s.%s: shape %s, want %s", name, what, gs,
                 ws);
  for (int64_t i = 0; i < want->numel; i++) {
    double g = got->f32[i], w = want->f32[i];
    ck_assert_msg (fabs (g - w) <= 1e-5 * fmax (1.0, fabs (w)),
                   "%s.%s[%" G_GINT64_FORMAT "]: got %.9g, want %.9g", name, what, i, g, w);
  }
}

/* The model of case c for its fixture's input shape. */
static NnicModel *
build_case (const Case *c, const NnicTensor *x)
{
  GError *err = NULL;
  NnicModel *m = x->ndim == 4 ? nnic_model_new ((int) x->shape[1], (int) x->shape[2],
                                                (int) x->shape[3])
                              : nnic_model_new_flat ((int) x->shape[1]);
  gboolean ok = FALSE;
  switch (c->kind) {
  case CONV: {
    NnicConv2dSpec s = c->conv;
    s.in_channels = (int) x->shape[1];
    ok = nnic_model_add_conv2d (m, "layer", NULL, &s, &err);
    break;
  }
  case MAXPOOL:
    ok = nnic_model_add_maxpool2d (m, "layer", NULL, &c->pool, &err);
    break;
  case AVGPOOL:
    ok = nnic_model_add_avgpool2d (m, "layer", NULL, &c->pool, &err);
    break;
  case SOFTMAX:
    ok = nnic_model_add_softmax (m, "layer", NULL, c->axis, &err);
    break;
  case RESHAPE:
    ok = nnic_model_add_reshape (m, "layer", NULL, c->shape, 2, &err);
    break;
  case HARDTANH:
    ok = nnic_model_add_hardtanh (m, "layer", NULL, c->lo, c->hi, &err);
    break;
  }
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_msg (ok, "%s: cannot build the layer", c->name);
  return m;
}

/* Forward and backward of case c against its fixture; a second backward
 * checks that parameter gradients accumulate. */
static void
check_case (const Case *c)
{
  GError *err = NULL;
  const NnicTensor *x = fixture (c->name, "x"), *gy = fixture (c->name, "gy");
  g_autoptr (NnicModel) m = build_case (c, x);
  if (c->kind == CONV) {
    NnicParam *w = nnic_model_find_param (m, "layer.weight", &err);
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert (nnic_tensor_copy_into (w->value, fixture (c->name, "w"), &err));
    NNIC_ASSERT_NO_ERROR (err);
    NnicParam *b = nnic_model_find_param (m, "layer.bias", NULL);
    ck_assert_int_eq (b == NULL, c->conv.no_bias);
    if (b)
      ck_assert (nnic_tensor_copy_into (b->value, fixture (c->name, "b"), &err));
  }
  nnic_model_set_training (m, TRUE);
  nnic_model_set_input_grad (m, TRUE);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  assert_tensor_close (c->name, "y", y, fixture (c->name, "y"));

  nnic_model_zero_grad (m);
  ck_assert (nnic_model_backward (m, gy, &err));
  NNIC_ASSERT_NO_ERROR (err);
  assert_tensor_close (c->name, "dx", nnic_model_input_grad (m), fixture (c->name, "dx"));
  if (c->kind != CONV)
    return;
  NnicParam *w = nnic_model_find_param (m, "layer.weight", NULL);
  NnicParam *b = nnic_model_find_param (m, "layer.bias", NULL);
  assert_tensor_close (c->name, "dw", w->grad, fixture (c->name, "dw"));
  if (b)
    assert_tensor_close (c->name, "db", b->grad, fixture (c->name, "db"));

  g_autoptr (NnicTensor) dw1 = nnic_tensor_copy (w->grad, &err);
  ck_assert (nnic_model_backward (m, gy, &err));
  for (int64_t i = 0; i < dw1->numel; i++)
    ck_assert_float_eq_tol (w->grad->f32[i], 2.0f * dw1->f32[i],
                            1e-5f * fmaxf (1.0f, fabsf (dw1->f32[i])));
}

START_TEST (test_against_torch)
{
  const Case *c = &cases[_i];
  check_case (c);
  /* Depthwise layers again through the grouped GEMMs. */
  if (c->kind == CONV && c->conv.groups > 1) {
    g_setenv ("NNIC_CONV_DEPTHWISE", "0", TRUE);
    check_case (c);
    g_unsetenv ("NNIC_CONV_DEPTHWISE");
  }
}
END_TEST

/* ---- the depthwise kernel against the GEMM path, at sizes that split
 * the work over threads and planes ---- */

static void
fill (NnicTensor *t, NnicRng *r)
{
  for (int64_t i = 0; i < t->numel; i++)
    t->f32[i] = (float) (nnic_rng_uniform (r) * 2.0 - 1.0);
}

static void
compare_paths (int64_t B, int C, int H, int W, NnicConv2dSpec s, guint64 seed)
{
  GError *err = NULL;
  s.in_channels = C;
  s.groups = C;
  NnicModel *m[2];
  for (int k = 0; k < 2; k++) {
    if (k == 1)
      g_setenv ("NNIC_CONV_DEPTHWISE", "0", TRUE);
    m[k] = nnic_model_new (C, H, W);
    ck_assert (nnic_model_add_conv2d (m[k], "dw", NULL, &s, &err));
    NNIC_ASSERT_NO_ERROR (err);
    g_unsetenv ("NNIC_CONV_DEPTHWISE");
    nnic_model_init_params (m[k], seed);
    nnic_model_set_input_grad (m[k], TRUE);
  }
  NnicRng r;
  nnic_rng_seed (&r, seed);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, B, (int64_t) C, (int64_t) H,
                                                  (int64_t) W);
  fill (x, &r);
  g_autoptr (NnicTensor) y0 = NULL;
  g_autoptr (NnicTensor) gy = NULL;
  const NnicTensor *grads[2][3];
  for (int k = 0; k < 2; k++) {
    const NnicTensor *y = nnic_model_forward (m[k], x, &err);
    NNIC_ASSERT_NO_ERROR (err);
    if (k == 0) {
      y0 = nnic_tensor_copy (y, &err);
      gy = nnic_tensor_new_like (y, &err);
      fill (gy, &r);
    } else {
      assert_tensor_close ("paths", "y", y, y0);
    }
    ck_assert (nnic_model_backward (m[k], gy, &err));
    grads[k][0] = nnic_model_input_grad (m[k]);
    grads[k][1] = nnic_model_param (m[k], 0)->grad;
    grads[k][2] = s.no_bias ? NULL : nnic_model_param (m[k], 1)->grad;
  }
  /* Both float32: the GEMM path's sums are no closer than ours. */
  const char *what[3] = { "dx", "dw", "db" };
  for (int j = 0; j < 3; j++) {
    if (!grads[0][j])
      continue;
    for (int64_t i = 0; i < grads[0][j]->numel; i++) {
      double a = grads[0][j]->f32[i], b = grads[1][j]->f32[i];
      ck_assert_msg (fabs (a - b) <= 1e-4 * fmax (1.0, fabs (b)),
                     "%s[%" G_GINT64_FORMAT "]: direct %.9g, gemm %.9g", what[j], i, a, b);
    }
  }
  nnic_model_free (m[0]);
  nnic_model_free (m[1]);
}

START_TEST (test_depthwise_paths)
{
  compare_paths (5, 24, 17, 19,
                 (NnicConv2dSpec) { .out_channels = 24, .kernel_size = 3, .padding = 1 }, 1);
  compare_paths (3, 16, 20, 23,
                 (NnicConv2dSpec) { .out_channels = 32, .kernel_size = 3, .stride = 2,
                                    .padding = 1, .no_bias = TRUE },
                 2);
  compare_paths (2, 8, 15, 14,
                 (NnicConv2dSpec) { .out_channels = 8, .kernel_h = 5, .kernel_w = 4,
                                    .stride_h = 2, .stride_w = 3, .dilation_w = 2,
                                    .explicit_pads = TRUE, .pads = { 2, 3, 0, 1 } },
                 3);
  /* One output row and column: the whole plane under one window. */
  compare_paths (2, 6, 3, 3,
                 (NnicConv2dSpec) { .out_channels = 6, .kernel_size = 3 }, 4);
}
END_TEST

/* ---- finite differences ---- */

/* dL/dx of L = sum(y * R) by central differences through the model, for
 * elements i in [0, n), against the model's backward. */
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
  fill (R, &r);
  ck_assert (nnic_model_backward (m, R, &err));
  g_autoptr (NnicTensor) dx = nnic_tensor_copy (nnic_model_input_grad (m), &err);
  const float eps = 1e-2f;
  for (int64_t i = 0; i < x->numel; i++) {
    const float keep = x->f32[i];
    double L[2];
    for (int k = 0; k < 2; k++) {
      x->f32[i] = keep + (k ? -eps : eps);
      y = nnic_model_forward (m, x, &err);
      L[k] = 0.0;
      for (int64_t j = 0; j < y->numel; j++)
        L[k] += (double) y->f32[j] * R->f32[j];
    }
    x->f32[i] = keep;
    const double fd = (L[0] - L[1]) / (2.0 * eps);
    ck_assert_msg (fabs (dx->f32[i] - fd) <= tol * fmax (1.0, fabs (fd)),
                   "dx[%" G_GINT64_FORMAT "]: backward %.7g, finite differences %.7g", i,
                   dx->f32[i], fd);
  }
}

START_TEST (test_softmax_finite_diff)
{
  GError *err = NULL;
  const int axes[] = { 1, 2, 3, -1, -3 };
  for (guint k = 0; k < G_N_ELEMENTS (axes); k++) {
    g_autoptr (NnicModel) m = nnic_model_new (3, 4, 5);
    ck_assert (nnic_model_add_softmax (m, "sm", NULL, axes[k], &err));
    NNIC_ASSERT_NO_ERROR (err);
    g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 2, (int64_t) 3, (int64_t) 4, (int64_t) 5);
    NnicRng r;
    nnic_rng_seed (&r, 10 + k);
    fill (x, &r);
    for (int64_t i = 0; i < x->numel; i++)
      x->f32[i] *= 4.0f;
    check_finite_diff (m, x, 20 + k, 2e-3);
  }
  /* Large logits: the maximum is subtracted, nothing overflows. */
  g_autoptr (NnicModel) m = nnic_model_new_flat (4);
  ck_assert (nnic_model_add_softmax (m, "sm", NULL, -1, &err));
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 2, (int64_t) 2, (int64_t) 4);
  const float big[8] = { 1000, 1001, 999, 1000, -1000, -1000, -1000, -1000 };
  memcpy (x->f32, big, sizeof big);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const double e = exp (1.0), z = 2.0 + e + 1.0 / e;
  const double want[8] = { 1 / z, e / z, 1 / (e * z), 1 / z, 0.25, 0.25, 0.25, 0.25 };
  for (int i = 0; i < 8; i++)
    ck_assert_double_eq_tol (y->f32[i], want[i], 1e-6);
  check_finite_diff (m, x, 30, 2e-3);
}
END_TEST

START_TEST (test_hardtanh_finite_diff)
{
  GError *err = NULL;
  const double bounds[][2] = { { -1, 1 }, { 0, 6 }, { -0.5, 2.5 } };
  for (guint k = 0; k < G_N_ELEMENTS (bounds); k++) {
    g_autoptr (NnicModel) m = nnic_model_new (2, 3, 4);
    ck_assert (nnic_model_add_hardtanh (m, "ht", NULL, bounds[k][0], bounds[k][1], &err));
    NNIC_ASSERT_NO_ERROR (err);
    g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 3, (int64_t) 2, (int64_t) 3, (int64_t) 4);
    NnicRng r;
    nnic_rng_seed (&r, 40 + k);
    /* Spread over [lo - 2, hi + 2], kept clear of the kinks (the
     * differences straddle a kink within eps of it). */
    for (int64_t i = 0; i < x->numel; i++) {
      double lo = bounds[k][0], hi = bounds[k][1], v;
      do
        v = lo - 2 + (hi - lo + 4) * nnic_rng_uniform (&r);
      while (fabs (v - lo) < 0.05 || fabs (v - hi) < 0.05);
      x->f32[i] = (float) v;
    }
    check_finite_diff (m, x, 50 + k, 1e-3);
  }
}
END_TEST

/* ---- getters, graph helpers ---- */

START_TEST (test_spec_getters)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (4, 12, 12);
  ck_assert (nnic_model_add_conv2d (m, "c1", NULL,
                                    &(NnicConv2dSpec) { .in_channels = 4, .out_channels = 8,
                                                        .kernel_size = 3, .padding = 1 },
                                    &err));
  ck_assert (nnic_model_add_conv2d (m, "c2", NULL,
                                    &(NnicConv2dSpec) { .in_channels = 8, .out_channels = 8,
                                                        .kernel_h = 1, .kernel_w = 3,
                                                        .stride_w = 2, .dilation_h = 2,
                                                        .explicit_pads = TRUE,
                                                        .pads = { 0, 1, 2, 0 }, .groups = 8 },
                                    &err));
  ck_assert (nnic_model_add_maxpool2d (m, "p1", NULL, &(NnicPool2dSpec) { .kernel_size = 2 },
                                       &err));
  ck_assert (nnic_model_add_avgpool2d (m, "p2", NULL,
                                       &(NnicPool2dSpec) { .kernel_h = 3, .kernel_w = 2,
                                                           .stride_w = 1, .explicit_pads = TRUE,
                                                           .pads = { 1, 0, 2, 1 },
                                                           .ceil_mode = TRUE,
                                                           .exclude_pad = TRUE },
                                       &err));
  ck_assert (nnic_model_add_batchnorm2d (m, "bn", NULL, &(NnicBatchNormSpec) { .num_features = 8 },
                                         &err));
  ck_assert (nnic_model_add_hardtanh (m, "ht", NULL, -2.0, 3.5, &err));
  ck_assert (nnic_model_add_dropout (m, "drop", NULL, 0.25, &err));
  ck_assert (nnic_model_add_adaptive_avgpool2d (m, "gap", NULL, 1, 2, &err));
  ck_assert (nnic_model_add_flatten (m, "flat", NULL, &err));
  ck_assert (nnic_model_add_linear (m, "fc", NULL,
                                    &(NnicLinearSpec) { .in_features = 16, .out_features = 5,
                                                        .no_bias = TRUE },
                                    &err));
  ck_assert (nnic_model_add_softmax (m, "sm", NULL, -1, &err));
  NNIC_ASSERT_NO_ERROR (err);

  NnicConv2dSpec c;
  ck_assert (nnic_model_node_conv2d_spec (m, 1, &c));
  ck_assert_int_eq (c.kernel_h, 3);
  ck_assert_int_eq (c.kernel_w, 3);
  ck_assert_int_eq (c.stride_h, 1);
  ck_assert_int_eq (c.stride_w, 1);
  ck_assert_int_eq (c.dilation_h, 1);
  ck_assert_int_eq (c.dilation_w, 1);
  ck_assert_int_eq (c.groups, 1);
  ck_assert (c.explicit_pads);
  ck_assert_mem_eq (c.pads, ((int[]) { 1, 1, 1, 1 }), sizeof c.pads);
  ck_assert (!c.no_bias);
  ck_assert (nnic_model_node_conv2d_spec (m, 2, &c));
  ck_assert_int_eq (c.in_channels, 8);
  ck_assert_int_eq (c.kernel_h, 1);
  ck_assert_int_eq (c.kernel_w, 3);
  ck_assert_int_eq (c.stride_h, 1);
  ck_assert_int_eq (c.stride_w, 2);
  ck_assert_int_eq (c.dilation_h, 2);
  ck_assert_int_eq (c.dilation_w, 1);
  ck_assert_int_eq (c.groups, 8);
  ck_assert_mem_eq (c.pads, ((int[]) { 0, 1, 2, 0 }), sizeof c.pads);
  ck_assert (!nnic_model_node_conv2d_spec (m, 3, &c));
  ck_assert (!nnic_model_node_conv2d_spec (m, 0, &c));
  ck_assert (!nnic_model_node_conv2d_spec (m, 99, &c));

  NnicPool2dSpec p;
  ck_assert (nnic_model_node_pool2d_spec (m, 3, &p));
  ck_assert_int_eq (p.kernel_h, 2);
  ck_assert_int_eq (p.kernel_w, 2);
  ck_assert_int_eq (p.stride_h, 2);
  ck_assert_int_eq (p.stride_w, 2);
  ck_assert (p.explicit_pads);
  ck_assert_mem_eq (p.pads, ((int[]) { 0, 0, 0, 0 }), sizeof p.pads);
  ck_assert (!p.ceil_mode);
  ck_assert (nnic_model_node_pool2d_spec (m, 4, &p));
  ck_assert_int_eq (p.kernel_h, 3);
  ck_assert_int_eq (p.kernel_w, 2);
  ck_assert_int_eq (p.stride_h, 3); /* the kernel's, axis by axis */
  ck_assert_int_eq (p.stride_w, 1);
  ck_assert_mem_eq (p.pads, ((int[]) { 1, 0, 2, 1 }), sizeof p.pads);
  ck_assert (p.ceil_mode);
  ck_assert (p.exclude_pad);
  ck_assert (!nnic_model_node_pool2d_spec (m, 1, &p));

  NnicBatchNormSpec bn;
  ck_assert (nnic_model_node_batchnorm_spec (m, 5, &bn));
  ck_assert_int_eq (bn.num_features, 8);
  ck_assert_double_eq (bn.eps, 1e-5);
  ck_assert_double_eq (bn.momentum, 0.1);
  ck_assert (!nnic_model_node_batchnorm_spec (m, 4, &bn));
  NnicLinearSpec lin;
  int fc = nnic_model_find_node (m, "fc");
  ck_assert (nnic_model_node_linear_spec (m, (guint) fc, &lin));
  ck_assert_int_eq (lin.in_features, 16);
  ck_assert_int_eq (lin.out_features, 5);
  ck_assert (lin.no_bias);
  ck_assert (!nnic_model_node_linear_spec (m, 1, &lin));

  double v;
  ck_assert (nnic_model_node_option (m, 6, "min_val", &v));
  ck_assert_double_eq (v, -2.0);
  ck_assert (nnic_model_node_option (m, 6, "max_val", &v));
  ck_assert_double_eq (v, 3.5);
  ck_assert (nnic_model_node_option (m, 7, "p", &v));
  ck_assert_double_eq (v, 0.25);
  ck_assert (nnic_model_node_option (m, 8, "out_h", &v));
  ck_assert_double_eq (v, 1);
  ck_assert (nnic_model_node_option (m, 8, "out_w", &v));
  ck_assert_double_eq (v, 2);
  int sm = nnic_model_find_node (m, "sm");
  ck_assert (nnic_model_node_option (m, (guint) sm, "axis", &v));
  ck_assert_double_eq (v, 1); /* -1 of [batch, 5] */
  ck_assert (!nnic_model_node_option (m, (guint) sm, "p", &v));
  ck_assert (!nnic_model_node_option (m, 1, "axis", &v));
  ck_assert (!nnic_model_node_option (m, 6, "nonsense", &v));
  ck_assert (!nnic_model_node_option (m, 99, "p", &v));

  /* The types, and the summary. */
  const char *const *types = nnic_model_node_types ();
  int found = 0;
  for (int i = 0; types[i]; i++)
    found += !strcmp (types[i], "Softmax") + !strcmp (types[i], "Reshape") +
             !strcmp (types[i], "Hardtanh");
  ck_assert_int_eq (found, 3);
  ck_assert_str_eq (nnic_model_node_type (m, 6), "Hardtanh");
  ck_assert_str_eq (nnic_model_node_type (m, (guint) sm), "Softmax");
  g_autofree char *text = nnic_model_describe (m);
  ck_assert_ptr_nonnull (strstr (text, "Hardtanh"));
  ck_assert_ptr_nonnull (strstr (text, "Softmax"));
}
END_TEST

/* Hardtanh keeps channels one to one (a residual pair of convolutions
 * behind it is still tied); Softmax and Reshape do not. */
START_TEST (test_channel_dependencies)
{
  GError *err = NULL;
  const char *between[] = { "Hardtanh", "Softmax", "Reshape" };
  for (int k = 0; k < 3; k++) {
    g_autoptr (NnicModel) m = nnic_model_new (3, 6, 6);
    NnicConv2dSpec s = { .in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = 1 };
    ck_assert (nnic_model_add_conv2d (m, "a", "input", &s, &err));
    ck_assert (nnic_model_add_conv2d (m, "b", "input", &s, &err));
    if (k == 0)
      ck_assert (nnic_model_add_hardtanh (m, "mid", "b", 0, 6, &err));
    else if (k == 1)
      ck_assert (nnic_model_add_softmax (m, "mid", "b", 1, &err));
    else
      ck_assert (nnic_model_add_reshape (m, "mid", "b", (int64_t[]) { 4, 6, 6 }, 3, &err));
    ck_assert (nnic_model_add_add (m, "sum", "a", "mid", &err));
    NNIC_ASSERT_NO_ERROR (err);
    g_autoptr (GPtrArray) sets = nnic_model_channel_dependencies (m);
    ck_assert_msg (sets->len == (k == 0 ? 1u : 0u), "%s: %u sets", between[k], sets->len);
  }
}
END_TEST

START_TEST (test_reshape)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (4, 3, 5);
  ck_assert (nnic_model_add_reshape (m, "r", NULL, (int64_t[]) { -1, 5, 2 }, 3, &err));
  NNIC_ASSERT_NO_ERROR (err);
  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, 1, shape), 3);
  ck_assert_mem_eq (shape, ((int64_t[]) { 6, 5, 2 }), 3 * sizeof (int64_t));
  /* A flat model back to an image, and into a convolution. */
  g_autoptr (NnicModel) f = nnic_model_new_flat (48);
  ck_assert (nnic_model_add_reshape (f, "img", NULL, (int64_t[]) { 3, 4, 4 }, 3, &err));
  ck_assert (nnic_model_add_conv2d (f, "conv", NULL,
                                    &(NnicConv2dSpec) { .in_channels = 3, .out_channels = 2,
                                                        .kernel_size = 3 },
                                    &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (nnic_model_node_shape (f, 2, shape), 3);
  ck_assert_mem_eq (shape, ((int64_t[]) { 2, 2, 2 }), 3 * sizeof (int64_t));
}
END_TEST

START_TEST (test_setup_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (4, 6, 5);

  ck_assert (!nnic_model_add_reshape (m, "r", NULL, (int64_t[]) { 7, -1 }, 2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE,
                     "r: cannot reshape [4, 6, 5] (120 elements per sample) to [7, -1]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_reshape (m, "r", NULL, (int64_t[]) { 10, 10 }, 2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "r: cannot reshape [4, 6, 5] (120 elements per sample) to [10, 10]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_reshape (m, "r", NULL, (int64_t[]) { -1, -1 }, 2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "at most one -1");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_reshape (m, "r", NULL, (int64_t[]) { 0, 120 }, 2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "r: cannot reshape [4, 6, 5] to [0, 120]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_reshape (m, "r", NULL, (int64_t[]) { 1 << 30, 1 << 30, 1 << 30 }, 3,
                                      &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "cannot reshape");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_reshape (m, "r", NULL, NULL, 0, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "r: a per-sample shape has 1 to 7 dimensions");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_reshape (m, "r", NULL, NULL, 2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "r: Reshape needs a shape");
  g_clear_error (&err);

  ck_assert (!nnic_model_add_softmax (m, "s", NULL, 4, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "s: axis 4 is out of range for 4 dimensions");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_softmax (m, "s", NULL, -5, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "s: axis -5 is out of range");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_softmax (m, "s", NULL, -4, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "the batch, is not supported");
  g_clear_error (&err);

  ck_assert (!nnic_model_add_hardtanh (m, "h", NULL, 1.0, -1.0, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "h: min_val 1 must not be above max_val -1");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_hardtanh (m, "h", NULL, NAN, 1.0, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "h: min_val");
  g_clear_error (&err);

  ck_assert (!nnic_model_add_conv2d (m, "c", NULL,
                                     &(NnicConv2dSpec) { .in_channels = 4, .out_channels = 4,
                                                         .kernel_size = 3, .explicit_pads = TRUE,
                                                         .pads = { 1, -1, 1, 1 } },
                                     &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT,
                     "c: pads (top 1, left -1, bottom 1, right 1) must not be negative");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_conv2d (m, "c", NULL,
                                     &(NnicConv2dSpec) { .in_channels = 4, .out_channels = 4,
                                                         .kernel_size = 3, .stride_w = -2 },
                                     &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "c: strides (1, -2)");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_conv2d (m, "c", NULL,
                                     &(NnicConv2dSpec) { .in_channels = 4, .out_channels = 4,
                                                         .kernel_size = 3, .dilation_h = 4 },
                                     &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "c: the kernel (9x3 with dilation) is larger");
  g_clear_error (&err);

  ck_assert (!nnic_model_add_maxpool2d (m, "p", NULL,
                                        &(NnicPool2dSpec) { .kernel_size = 2, .explicit_pads = TRUE,
                                                            .pads = { 0, 2, 0, 0 } },
                                        &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT,
                     "p: pads (top 0, left 2, bottom 0, right 0) must not be negative and must be "
                     "smaller than the 2x2 kernel");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_avgpool2d (m, "p", NULL,
                                        &(NnicPool2dSpec) { .kernel_h = 3, .kernel_w = 2,
                                                            .padding = 2 },
                                        &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "p: padding should be at most half of the kernel "
                                               "size, but got padding 2 and kernel_size 3x2");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_avgpool2d (m, "p", NULL,
                                        &(NnicPool2dSpec) { .kernel_h = 7, .kernel_w = 2 },
                                        &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "p: the 7x2 window does not fit the input [4, 6, 5]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_avgpool2d (m, "p", NULL,
                                        &(NnicPool2dSpec) { .kernel_size = 2, .stride_h = -1 },
                                        &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "must be positive");
  g_clear_error (&err);
  /* Nothing failed half-way: only the input is there. */
  ck_assert_uint_eq (nnic_model_n_nodes (m), 1);
}
END_TEST

static Suite *
ops_onnx_suite (void)
{
  Suite *s = suite_create ("ops_onnx");
  TCase *tc = tcase_create ("torch");
  tcase_add_unchecked_fixture (tc, load_fixtures, free_fixtures);
  tcase_add_loop_test (tc, test_against_torch, 0, G_N_ELEMENTS (cases));
  suite_add_tcase (s, tc);

  tc = tcase_create ("kernels");
  tcase_add_test (tc, test_depthwise_paths);
  tcase_add_test (tc, test_softmax_finite_diff);
  tcase_add_test (tc, test_hardtanh_finite_diff);
  suite_add_tcase (s, tc);

  tc = tcase_create ("graph");
  tcase_add_test (tc, test_spec_getters);
  tcase_add_test (tc, test_channel_dependencies);
  tcase_add_test (tc, test_reshape);
  tcase_add_test (tc, test_setup_errors);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return nnic_test_run (ops_onnx_suite ());
}
