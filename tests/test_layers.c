/* Layers: every op's forward against a naive double-precision reference,
 * and its backward against central finite differences of that reference
 * (L = sum(out * R) for a random R), for the input and every parameter. */
#include "testutil.h"

#include <math.h>
#include <string.h>

/* ---- the reference ---- */

typedef struct Ref Ref;
/* y = f(x; p) in double. x is [B, C, H, W] (a vector input: [B, C]); p are
 * the model's parameters and buffers in state_dict order. */
typedef void (*RefFn) (const Ref *r, const double *x, double *const *p, double *y);

struct Ref {
  RefFn fn;
  int64_t B, C, H, W;    /* the input, per sample; H = W = 1 for vectors */
  NnicConv2dSpec conv;   /* every field explicit, no defaults */
  NnicLinearSpec lin;
  NnicBatchNormSpec bn;
  NnicPool2dSpec pool;
  int out_h, out_w;      /* AdaptiveAvgPool2d */
  gboolean training;
  double x_range;        /* inputs are uniform in [-x_range, x_range]; 0 → 1 */
};

#define X4(x, C, H, W, b, c, h, w) ((x)[(((b) * (C) + (c)) * (H) + (h)) * (W) + (w)])

static int64_t
conv_out (int64_t in, int k, int s, int p, int d)
{
  return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

/* Direct convolution: y[b, oc, oh, ow] = bias[oc] + sum over the group's
 * input channels and the kernel of x * w, zero outside the input. */
static void
conv_ref_on (const NnicConv2dSpec *s, int64_t B, int64_t C, int64_t H, int64_t W,
             const double *x, const double *w, const double *bias, double *y)
{
  int64_t OC = s->out_channels, OH = conv_out (H, s->kernel_h, s->stride, s->padding, s->dilation),
          OW = conv_out (W, s->kernel_w, s->stride, s->padding, s->dilation);
  int64_t Cg = C / s->groups, OCg = OC / s->groups;
  for (int64_t b = 0; b < B; b++)
    for (int64_t oc = 0; oc < OC; oc++)
      for (int64_t oh = 0; oh < OH; oh++)
        for (int64_t ow = 0; ow < OW; ow++) {
          double acc = bias ? bias[oc] : 0.0;
          int64_t g = oc / OCg;
          for (int64_t ic = 0; ic < Cg; ic++)
            for (int64_t kh = 0; kh < s->kernel_h; kh++)
              for (int64_t kw = 0; kw < s->kernel_w; kw++) {
                int64_t ih = oh * s->stride - s->padding + kh * s->dilation;
                int64_t iw = ow * s->stride - s->padding + kw * s->dilation;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W)
                  continue;
                acc += X4 (x, C, H, W, b, g * Cg + ic, ih, iw) *
                       X4 (w, Cg, s->kernel_h, s->kernel_w, oc, ic, kh, kw);
              }
          X4 (y, OC, OH, OW, b, oc, oh, ow) = acc;
        }
}

static void
ref_conv (const Ref *r, const double *x, double *const *p, double *y)
{
  conv_ref_on (&r->conv, r->B, r->C, r->H, r->W, x, p[0], r->conv.no_bias ? NULL : p[1], y);
}

static void
ref_linear (const Ref *r, const double *x, double *const *p, double *y)
{
  int64_t I = r->lin.in_features, O = r->lin.out_features;
  for (int64_t b = 0; b < r->B; b++)
    for (int64_t o = 0; o < O; o++) {
      double acc = r->lin.no_bias ? 0.0 : p[1][o];
      for (int64_t i = 0; i < I; i++)
        acc += x[b * I + i] * p[0][o * I + i];
      y[b * O + o] = acc;
    }
}

static void
ref_batchnorm (const Ref *r, const double *x, double *const *p, double *y)
{
  const gboolean affine = !r->bn.no_affine;
  const double *rm = p[affine ? 2 : 0], *rv = p[affine ? 3 : 1];
  int64_t B = r->B, C = r->C, H = r->H, W = r->W, n = B * H * W;
  for (int64_t c = 0; c < C; c++) {
    double mean = rm[c], var = rv[c];
    if (r->training) {
      mean = var = 0.0;
      for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < H * W; i++)
          mean += x[(b * C + c) * H * W + i];
      mean /= (double) n;
      for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < H * W; i++) {
          double d = x[(b * C + c) * H * W + i] - mean;
          var += d * d;
        }
      var /= (double) n;
    }
    for (int64_t b = 0; b < B; b++)
      for (int64_t i = 0; i < H * W; i++) {
        double xh = (x[(b * C + c) * H * W + i] - mean) / sqrt (var + r->bn.eps);
        y[(b * C + c) * H * W + i] = affine ? xh * p[0][c] + p[1][c] : xh;
      }
  }
}

static void
ref_relu (const Ref *r, const double *x, double *const *p, double *y)
{
  (void) p;
  for (int64_t i = 0; i < r->B * r->C * r->H * r->W; i++)
    y[i] = x[i] > 0 ? x[i] : 0;
}

static void
ref_relu6 (const Ref *r, const double *x, double *const *p, double *y)
{
  (void) p;
  for (int64_t i = 0; i < r->B * r->C * r->H * r->W; i++)
    y[i] = x[i] < 0 ? 0 : x[i] > 6 ? 6 : x[i];
}

static int64_t
pool_out (int64_t in, const NnicPool2dSpec *s)
{
  return (in + 2 * s->padding - s->kernel_size) / s->stride + 1;
}

static void
ref_maxpool (const Ref *r, const double *x, double *const *p, double *y)
{
  (void) p;
  const NnicPool2dSpec *s = &r->pool;
  int64_t OH = pool_out (r->H, s), OW = pool_out (r->W, s);
  for (int64_t bc = 0; bc < r->B * r->C; bc++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++) {
        double best = -INFINITY; /* the padding */
        for (int64_t kh = 0; kh < s->kernel_size; kh++)
          for (int64_t kw = 0; kw < s->kernel_size; kw++) {
            int64_t ih = oh * s->stride - s->padding + kh, iw = ow * s->stride - s->padding + kw;
            if (ih >= 0 && ih < r->H && iw >= 0 && iw < r->W)
              best = fmax (best, x[(bc * r->H + ih) * r->W + iw]);
          }
        y[(bc * OH + oh) * OW + ow] = best;
      }
}

/* count_include_pad: the divisor counts window cells inside the padded
 * input, whether they hold a pixel or padding. */
static void
ref_avgpool (const Ref *r, const double *x, double *const *p, double *y)
{
  (void) p;
  const NnicPool2dSpec *s = &r->pool;
  int64_t OH = pool_out (r->H, s), OW = pool_out (r->W, s);
  for (int64_t bc = 0; bc < r->B * r->C; bc++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++) {
        double sum = 0.0;
        int count = 0;
        for (int64_t kh = 0; kh < s->kernel_size; kh++)
          for (int64_t kw = 0; kw < s->kernel_size; kw++) {
            int64_t ih = oh * s->stride - s->padding + kh, iw = ow * s->stride - s->padding + kw;
            if (ih >= -s->padding && ih < r->H + s->padding && iw >= -s->padding &&
                iw < r->W + s->padding)
              count++;
            if (ih >= 0 && ih < r->H && iw >= 0 && iw < r->W)
              sum += x[(bc * r->H + ih) * r->W + iw];
          }
        y[(bc * OH + oh) * OW + ow] = sum / count;
      }
}

static void
ref_adaptive (const Ref *r, const double *x, double *const *p, double *y)
{
  (void) p;
  int64_t OH = r->out_h, OW = r->out_w;
  for (int64_t bc = 0; bc < r->B * r->C; bc++)
    for (int64_t oh = 0; oh < OH; oh++)
      for (int64_t ow = 0; ow < OW; ow++) {
        int64_t h0 = (int64_t) floor ((double) oh * r->H / OH);
        int64_t h1 = (int64_t) ceil ((double) (oh + 1) * r->H / OH);
        int64_t w0 = (int64_t) floor ((double) ow * r->W / OW);
        int64_t w1 = (int64_t) ceil ((double) (ow + 1) * r->W / OW);
        double sum = 0.0;
        for (int64_t ih = h0; ih < h1; ih++)
          for (int64_t iw = w0; iw < w1; iw++)
            sum += x[(bc * r->H + ih) * r->W + iw];
        y[(bc * OH + oh) * OW + ow] = sum / (double) ((h1 - h0) * (w1 - w0));
      }
}

static void
ref_identity (const Ref *r, const double *x, double *const *p, double *y)
{
  (void) p;
  memcpy (y, x, sizeof (double) * (size_t) (r->B * r->C * r->H * r->W));
}

/* ---- the checker ---- */

static void
fill_uniform (float *v, int64_t n, NnicRng *rng, double lo, double hi)
{
  for (int64_t i = 0; i < n; i++)
    v[i] = (float) (lo + (hi - lo) * nnic_rng_uniform (rng));
}

/* Trainable parameters uniform in [-1, 1]; buffers keep their values. */
static void
randomize_params (NnicModel *m, guint64 seed)
{
  NnicRng rng;
  nnic_rng_seed (&rng, seed);
  for (guint i = 0; i < nnic_model_n_params (m); i++) {
    NnicParam *p = nnic_model_param (m, i);
    if (p->grad)
      fill_uniform (p->value->f32, p->value->numel, &rng, -1, 1);
  }
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
  r->fn (r, x, p, y);
  double L = 0.0;
  for (int64_t i = 0; i < ny; i++)
    L += y[i] * R[i];
  return L;
}

/* dL/dv[i] by central differences of the reference. */
static double
finite_diff (const Ref *r, double *v, int64_t i, const double *x, double *const *p, double *y,
             const float *R, int64_t ny)
{
  const double eps = 1e-6;
  double keep = v[i];
  v[i] = keep + eps;
  double lp = ref_loss (r, x, p, y, R, ny);
  v[i] = keep - eps;
  double lm = ref_loss (r, x, p, y, R, ny);
  v[i] = keep;
  return (lp - lm) / (2 * eps);
}

static double *
to_double (const float *v, int64_t n)
{
  double *d = g_new (double, n ? n : 1);
  for (int64_t i = 0; i < n; i++)
    d[i] = v[i];
  return d;
}

/* Runs forward and backward on a random input and compares with the
 * reference r: output, dL/dinput and dL/dparam for every trainable
 * parameter; checks that a second backward accumulates into the parameter
 * grads. Returns the input used (free it). */
static NnicTensor *
check_model (NnicModel *m, const Ref *r, guint64 seed)
{
  GError *err = NULL;
  NnicRng rng;
  nnic_rng_seed (&rng, seed);
  int64_t in_shape[NNIC_MAX_DIMS + 1];
  in_shape[0] = r->B;
  int in_nd = nnic_model_node_shape (m, 0, in_shape + 1);
  NnicTensor *x = nnic_tensor_new (NNIC_DTYPE_F32, in_nd + 1, in_shape, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (x->numel, r->B * r->C * r->H * r->W);
  double xr = r->x_range > 0 ? r->x_range : 1.0;
  fill_uniform (x->f32, x->numel, &rng, -xr, xr);

  nnic_model_set_training (m, r->training);
  nnic_model_set_input_grad (m, TRUE);
  const NnicTensor *out = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const int64_t ny = out->numel;

  /* Parameters as the reference sees them (before any update in forward:
   * BatchNorm's running statistics are not used in training). */
  guint np = nnic_model_n_params (m);
  double *pd[16] = { 0 };
  ck_assert_uint_le (np, G_N_ELEMENTS (pd));
  for (guint k = 0; k < np; k++) {
    NnicParam *p = nnic_model_param (m, k);
    pd[k] = to_double (p->value->f32, p->value->numel);
  }
  g_autofree double *xd = to_double (x->f32, x->numel);
  g_autofree double *y = g_new (double, ny);
  r->fn (r, xd, pd, y);
  for (int64_t i = 0; i < ny; i++)
    assert_close ("forward", i, out->f32[i], y[i], 1e-4, 1e-5);

  g_autoptr (NnicTensor) R = nnic_tensor_new_like (out, &err);
  fill_uniform (R->f32, R->numel, &rng, -1, 1);
  nnic_model_zero_grad (m);
  ck_assert (nnic_model_backward (m, R, &err));
  NNIC_ASSERT_NO_ERROR (err);

  const NnicTensor *dx = nnic_model_input_grad (m);
  ck_assert_ptr_nonnull (dx);
  for (int64_t i = 0; i < x->numel; i++)
    assert_close ("dinput", i, dx->f32[i], finite_diff (r, xd, i, xd, pd, y, R->f32, ny), 1e-3,
                  1e-4);
  for (guint k = 0; k < np; k++) {
    NnicParam *p = nnic_model_param (m, k);
    if (!p->grad)
      continue;
    for (int64_t i = 0; i < p->grad->numel; i++)
      assert_close (p->name, i, p->grad->f32[i], finite_diff (r, pd[k], i, xd, pd, y, R->f32, ny),
                    1e-3, 1e-4);
  }

  /* Parameter gradients accumulate across backward calls (PyTorch's rule);
   * the input's is recomputed. */
  g_autoptr (GPtrArray) first = g_ptr_array_new_with_free_func ((GDestroyNotify) nnic_tensor_free);
  for (guint k = 0; k < np; k++) {
    NnicParam *p = nnic_model_param (m, k);
    g_ptr_array_add (first, p->grad ? nnic_tensor_copy (p->grad, NULL) : NULL);
  }
  g_autoptr (NnicTensor) dx1 = nnic_tensor_copy (dx, NULL);
  ck_assert (nnic_model_backward (m, R, &err));
  for (guint k = 0; k < np; k++) {
    NnicParam *p = nnic_model_param (m, k);
    const NnicTensor *g1 = g_ptr_array_index (first, k);
    for (int64_t i = 0; p->grad && i < p->grad->numel; i++)
      assert_close ("accumulated grad", i, p->grad->f32[i], 2.0 * g1->f32[i], 1e-5, 1e-6);
  }
  for (int64_t i = 0; i < dx1->numel; i++)
    assert_close ("second dinput", i, nnic_model_input_grad (m)->f32[i], dx1->f32[i], 1e-5, 1e-6);

  for (guint k = 0; k < np; k++)
    g_free (pd[k]);
  return x;
}

static void
assert_shape (const NnicTensor *t, int ndim, const int64_t *want)
{
  ck_assert_int_eq (t->ndim, ndim);
  for (int i = 0; i < ndim; i++)
    ck_assert_int_eq (t->shape[i], want[i]);
}

/* ---- Conv2d ---- */

/* One Conv2d checked against the reference. `given` is what the model is
 * told (zeros for PyTorch's defaults), `full` the same layer spelt out. */
static void
check_conv (int64_t B, int64_t H, int64_t W, NnicConv2dSpec given, NnicConv2dSpec full,
            guint64 seed)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (full.in_channels, (int) H, (int) W);
  ck_assert (nnic_model_add_conv2d (m, "conv", NULL, &given, &err));
  NNIC_ASSERT_NO_ERROR (err);

  NnicParam *w = nnic_model_find_param (m, "conv.weight", &err);
  NNIC_ASSERT_NO_ERROR (err);
  int64_t wshape[4] = { full.out_channels, full.in_channels / full.groups, full.kernel_h,
                        full.kernel_w };
  assert_shape (w->value, 4, wshape);
  NnicParam *b = nnic_model_find_param (m, "conv.bias", NULL);
  ck_assert_int_eq (b == NULL, full.no_bias);
  ck_assert_uint_eq (nnic_model_n_params (m), full.no_bias ? 1 : 2);

  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, 1, shape), 3);
  ck_assert_int_eq (shape[0], full.out_channels);
  ck_assert_int_eq (shape[1],
                    conv_out (H, full.kernel_h, full.stride, full.padding, full.dilation));
  ck_assert_int_eq (shape[2],
                    conv_out (W, full.kernel_w, full.stride, full.padding, full.dilation));

  randomize_params (m, seed);
  Ref r = { .fn = ref_conv, .B = B, .C = full.in_channels, .H = H, .W = W, .conv = full,
            .training = TRUE };
  nnic_tensor_free (check_model (m, &r, seed + 1));
}

START_TEST (test_conv_defaults)
{
  check_conv (2, 6, 7, (NnicConv2dSpec) { .in_channels = 2, .out_channels = 3, .kernel_size = 3 },
              (NnicConv2dSpec) { .in_channels = 2, .out_channels = 3, .kernel_h = 3, .kernel_w = 3,
                                 .stride = 1, .dilation = 1, .groups = 1 },
              1);
}
END_TEST

START_TEST (test_conv_stride_padding)
{
  NnicConv2dSpec s = { .in_channels = 2, .out_channels = 3, .kernel_h = 3, .kernel_w = 3,
                       .stride = 2, .padding = 1, .dilation = 1, .groups = 1 };
  check_conv (2, 7, 6, (NnicConv2dSpec) { .in_channels = 2, .out_channels = 3, .kernel_size = 3,
                                          .stride = 2, .padding = 1 },
              s, 2);
  /* A stride that skips the last column and row. */
  s.stride = 3;
  s.padding = 2;
  check_conv (3, 8, 9, s, s, 3);
}
END_TEST

START_TEST (test_conv_dilation)
{
  NnicConv2dSpec s = { .in_channels = 2, .out_channels = 2, .kernel_h = 3, .kernel_w = 3,
                       .stride = 1, .padding = 2, .dilation = 2, .groups = 1 };
  check_conv (2, 6, 7, s, s, 4);
  s.padding = 0;
  s.stride = 2;
  check_conv (2, 8, 7, s, s, 5);
}
END_TEST

START_TEST (test_conv_groups)
{
  NnicConv2dSpec s = { .in_channels = 4, .out_channels = 6, .kernel_h = 3, .kernel_w = 3,
                       .stride = 1, .padding = 1, .dilation = 1, .groups = 2 };
  check_conv (2, 5, 5, s, s, 6);
}
END_TEST

START_TEST (test_conv_depthwise)
{
  /* MobileNet's depthwise layer, and one with a channel multiplier of 2. */
  NnicConv2dSpec s = { .in_channels = 3, .out_channels = 3, .kernel_h = 3, .kernel_w = 3,
                       .stride = 2, .padding = 1, .dilation = 1, .groups = 3 };
  check_conv (2, 7, 6, s, s, 7);
  s.out_channels = 6;
  s.stride = 1;
  check_conv (2, 5, 5, s, s, 8);
}
END_TEST

START_TEST (test_conv_no_bias_rect_kernel)
{
  NnicConv2dSpec given = { .in_channels = 2, .out_channels = 3, .kernel_size = 5, .kernel_h = 2,
                           .kernel_w = 3, .padding = 1, .no_bias = TRUE };
  NnicConv2dSpec full = { .in_channels = 2, .out_channels = 3, .kernel_h = 2, .kernel_w = 3,
                          .stride = 1, .padding = 1, .dilation = 1, .groups = 1, .no_bias = TRUE };
  check_conv (2, 5, 6, given, full, 9);
}
END_TEST

START_TEST (test_conv_pointwise_and_batch_one)
{
  NnicConv2dSpec s = { .in_channels = 3, .out_channels = 4, .kernel_h = 1, .kernel_w = 1,
                       .stride = 1, .dilation = 1, .groups = 1 };
  check_conv (3, 4, 5, s, s, 10);
  /* A batch of one takes another path (no transposition). */
  NnicConv2dSpec t = { .in_channels = 4, .out_channels = 6, .kernel_h = 3, .kernel_w = 2,
                       .stride = 2, .padding = 1, .dilation = 1, .groups = 2 };
  check_conv (1, 6, 5, t, t, 11);
  /* The kernel exactly as large as the padded input: one output pixel. */
  NnicConv2dSpec u = { .in_channels = 1, .out_channels = 2, .kernel_h = 5, .kernel_w = 5,
                       .stride = 1, .padding = 1, .dilation = 1, .groups = 1 };
  check_conv (2, 3, 3, u, u, 12);
}
END_TEST

/* The first layer does not compute dL/dinput unless asked, and its weight
 * gradient is the same either way. */
START_TEST (test_conv_first_layer_skips_input_grad)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (2, 6, 6);
  ck_assert (nnic_model_add_conv2d (m, "conv", NULL,
                                    &(NnicConv2dSpec) { .in_channels = 2, .out_channels = 3,
                                                        .kernel_size = 3, .padding = 1 },
                                    &err));
  randomize_params (m, 20);
  NnicRng rng;
  nnic_rng_seed (&rng, 21);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, 3, 2, 6, 6);
  fill_uniform (x->f32, x->numel, &rng, -1, 1);
  g_autoptr (NnicTensor) R = nnic_tensor_new_f32 (&err, 4, 3, 3, 6, 6);
  fill_uniform (R->f32, R->numel, &rng, -1, 1);
  NnicParam *w = nnic_model_find_param (m, "conv.weight", &err);

  nnic_model_set_input_grad (m, TRUE);
  ck_assert_ptr_nonnull (nnic_model_forward (m, x, &err));
  ck_assert (nnic_model_backward (m, R, &err));
  ck_assert_ptr_nonnull (nnic_model_input_grad (m));
  g_autoptr (NnicTensor) gw = nnic_tensor_copy (w->grad, &err);

  nnic_model_set_input_grad (m, FALSE);
  nnic_model_zero_grad (m);
  ck_assert_ptr_nonnull (nnic_model_forward (m, x, &err));
  ck_assert (nnic_model_backward (m, R, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_ptr_null (nnic_model_input_grad (m));
  for (int64_t i = 0; i < gw->numel; i++)
    assert_close ("weight grad", i, w->grad->f32[i], gw->f32[i], 1e-6, 1e-7);
}
END_TEST

/* Changing the batch size re-plans the buffers: a batch gives the same rows
 * as its samples run one by one, and again after going back. */
START_TEST (test_batch_size_changes)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (1, 8, 8);
  ck_assert (nnic_model_add_conv2d (m, "conv", NULL,
                                    &(NnicConv2dSpec) { .in_channels = 1, .out_channels = 4,
                                                        .kernel_size = 3 },
                                    &err));
  ck_assert (nnic_model_add_relu (m, "relu", NULL, &err));
  ck_assert (nnic_model_add_maxpool2d (m, "pool", NULL, &(NnicPool2dSpec) { .kernel_size = 2 },
                                       &err));
  ck_assert (nnic_model_add_flatten (m, "flat", NULL, &err));
  ck_assert (nnic_model_add_linear (m, "fc", NULL,
                                    &(NnicLinearSpec) { .in_features = 36, .out_features = 5 },
                                    &err));
  NNIC_ASSERT_NO_ERROR (err);
  randomize_params (m, 30);
  NnicRng rng;
  nnic_rng_seed (&rng, 31);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, 3, 1, 8, 8);
  fill_uniform (x->f32, x->numel, &rng, -1, 1);
  const NnicTensor *out = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) all = nnic_tensor_copy (out, &err);
  for (int b = 0; b < 3; b++) {
    g_autoptr (NnicTensor) one = nnic_tensor_new_f32 (&err, 4, 1, 1, 8, 8);
    memcpy (one->f32, x->f32 + b * 64, sizeof (float) * 64);
    out = nnic_model_forward (m, one, &err);
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert_int_eq (out->shape[0], 1);
    for (int j = 0; j < 5; j++)
      assert_close ("row", j, out->f32[j], all->f32[b * 5 + j], 1e-5, 1e-6);
  }
  out = nnic_model_forward (m, x, &err);
  for (int64_t i = 0; i < all->numel; i++)
    ck_assert_float_eq (out->f32[i], all->f32[i]);
}
END_TEST

/* A batch gives the same outputs and gradients as its samples run one by
 * one (parameter gradients summed). At these sizes Conv2d splits the batch
 * into several chunks with a shorter last one, or into one sample per
 * chunk: paths the small gradient checks above do not reach. */
static void
check_conv_against_singles (int64_t B, int C, int H, NnicConv2dSpec spec, guint64 seed)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (C, H, H);
  ck_assert (nnic_model_add_conv2d (m, "conv", NULL, &spec, &err));
  NNIC_ASSERT_NO_ERROR (err);
  randomize_params (m, seed);
  nnic_model_set_input_grad (m, TRUE);
  NnicRng rng;
  nnic_rng_seed (&rng, seed + 1);
  const int64_t in_n = (int64_t) C * H * H;
  int64_t xshape[4] = { B, C, H, H }, one[4] = { 1, C, H, H };
  g_autoptr (NnicTensor) x = nnic_tensor_new (NNIC_DTYPE_F32, 4, xshape, &err);
  fill_uniform (x->f32, x->numel, &rng, -1, 1);

  const NnicTensor *out = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const int64_t out_n = out->numel / B;
  g_autoptr (NnicTensor) y = nnic_tensor_copy (out, &err);
  g_autoptr (NnicTensor) R = nnic_tensor_new_like (out, &err);
  fill_uniform (R->f32, R->numel, &rng, -1, 1);
  nnic_model_zero_grad (m);
  ck_assert (nnic_model_backward (m, R, &err));
  g_autoptr (NnicTensor) dx = nnic_tensor_copy (nnic_model_input_grad (m), &err);
  NnicParam *w = nnic_model_find_param (m, "conv.weight", &err), *b = nnic_model_param (m, 1);
  g_autoptr (NnicTensor) dw = nnic_tensor_copy (w->grad, &err);
  g_autoptr (NnicTensor) db = nnic_tensor_copy (b->grad, &err);

  nnic_model_zero_grad (m);
  int64_t rshape[4] = { 1, out->shape[1], out->shape[2], out->shape[3] };
  g_autoptr (NnicTensor) x1 = nnic_tensor_new (NNIC_DTYPE_F32, 4, one, &err);
  g_autoptr (NnicTensor) r1 = nnic_tensor_new (NNIC_DTYPE_F32, 4, rshape, &err);
  for (int64_t i = 0; i < B; i++) {
    memcpy (x1->f32, x->f32 + i * in_n, sizeof (float) * (size_t) in_n);
    memcpy (r1->f32, R->f32 + i * out_n, sizeof (float) * (size_t) out_n);
    const NnicTensor *o1 = nnic_model_forward (m, x1, &err);
    NNIC_ASSERT_NO_ERROR (err);
    for (int64_t j = 0; j < out_n; j++)
      assert_close ("sample output", i * out_n + j, o1->f32[j], y->f32[i * out_n + j], 1e-5, 1e-5);
    ck_assert (nnic_model_backward (m, r1, &err));
    const float *g1 = nnic_model_input_grad (m)->f32;
    for (int64_t j = 0; j < in_n; j++)
      assert_close ("sample dinput", i * in_n + j, g1[j], dx->f32[i * in_n + j], 1e-5, 1e-5);
  }
  for (int64_t j = 0; j < dw->numel; j++)
    assert_close ("summed weight grad", j, w->grad->f32[j], dw->f32[j], 1e-4, 1e-3);
  for (int64_t j = 0; j < db->numel; j++)
    assert_close ("summed bias grad", j, b->grad->f32[j], db->f32[j], 1e-4, 1e-3);
}

START_TEST (test_conv_chunks)
{
  check_conv_against_singles (61, 8, 16,
                              (NnicConv2dSpec) { .in_channels = 8, .out_channels = 6,
                                                 .kernel_size = 3, .padding = 1 },
                              180);
  check_conv_against_singles (3, 16, 64,
                              (NnicConv2dSpec) { .in_channels = 16, .out_channels = 4,
                                                 .kernel_size = 3, .padding = 1, .groups = 2 },
                              181);
}
END_TEST

/* ---- Linear ---- */

static void
check_linear (gboolean no_bias, guint64 seed)
{
  GError *err = NULL;
  NnicLinearSpec s = { .in_features = 5, .out_features = 4, .no_bias = no_bias };
  g_autoptr (NnicModel) m = nnic_model_new_flat (5);
  ck_assert (nnic_model_add_linear (m, "fc", NULL, &s, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_model_n_params (m), no_bias ? 1 : 2);
  assert_shape (nnic_model_find_param (m, "fc.weight", &err)->value, 2, (int64_t[]) { 4, 5 });
  randomize_params (m, seed);
  Ref r = { .fn = ref_linear, .B = 3, .C = 5, .H = 1, .W = 1, .lin = s };
  nnic_tensor_free (check_model (m, &r, seed + 1));
}

START_TEST (test_linear)
{
  check_linear (FALSE, 40);
  check_linear (TRUE, 42);
}
END_TEST

/* ---- BatchNorm2d ---- */

static const char *bn_names_affine[] = { "bn.weight", "bn.bias", "bn.running_mean",
                                         "bn.running_var", "bn.num_batches_tracked" };

static NnicModel *
bn_model (NnicBatchNormSpec spec)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new (3, 3, 4);
  ck_assert (nnic_model_add_batchnorm2d (m, "bn", NULL, &spec, &err));
  NNIC_ASSERT_NO_ERROR (err);
  return m;
}

static float *
param_f32 (NnicModel *m, const char *name)
{
  GError *err = NULL;
  NnicParam *p = nnic_model_find_param (m, name, &err);
  NNIC_ASSERT_NO_ERROR (err);
  return p->value->f32;
}

START_TEST (test_batchnorm_train)
{
  g_autoptr (NnicModel) m = bn_model ((NnicBatchNormSpec) { .num_features = 3 });
  ck_assert_uint_eq (nnic_model_n_params (m), 5);
  for (guint i = 0; i < 5; i++)
    ck_assert_str_eq (nnic_model_param (m, i)->name, bn_names_affine[i]);
  ck_assert_int_eq (nnic_model_param (m, 4)->value->ndim, 0);
  ck_assert_ptr_null (nnic_model_param (m, 2)->grad);
  ck_assert_int_eq (nnic_model_count_parameters (m), 6);
  /* Fresh buffers: mean 0, variance 1, no batches. */
  for (int c = 0; c < 3; c++) {
    ck_assert_float_eq (param_f32 (m, "bn.running_mean")[c], 0.0f);
    ck_assert_float_eq (param_f32 (m, "bn.running_var")[c], 1.0f);
  }
  randomize_params (m, 50);
  NnicRng rng;
  nnic_rng_seed (&rng, 51);
  fill_uniform (param_f32 (m, "bn.running_mean"), 3, &rng, -1, 1);
  fill_uniform (param_f32 (m, "bn.running_var"), 3, &rng, 0.5, 1.5);
  float rm0[3], rv0[3];
  memcpy (rm0, param_f32 (m, "bn.running_mean"), sizeof rm0);
  memcpy (rv0, param_f32 (m, "bn.running_var"), sizeof rv0);

  Ref r = { .fn = ref_batchnorm, .B = 4, .C = 3, .H = 3, .W = 4, .training = TRUE,
            .bn = { .num_features = 3, .eps = 1e-5, .momentum = 0.1 }, .x_range = 2 };
  g_autoptr (NnicTensor) x = check_model (m, &r, 52);

  /* One forward moved the running statistics by momentum 0.1 towards the
   * batch's mean and unbiased variance. */
  for (int c = 0; c < 3; c++) {
    double mean = 0, sq = 0, n = 4 * 12;
    for (int b = 0; b < 4; b++)
      for (int i = 0; i < 12; i++)
        mean += x->f32[(b * 3 + c) * 12 + i];
    mean /= n;
    for (int b = 0; b < 4; b++)
      for (int i = 0; i < 12; i++)
        sq += pow (x->f32[(b * 3 + c) * 12 + i] - mean, 2);
    assert_close ("running_mean", c, param_f32 (m, "bn.running_mean")[c], 0.9 * rm0[c] + 0.1 * mean,
                  1e-5, 1e-6);
    assert_close ("running_var", c, param_f32 (m, "bn.running_var")[c],
                  0.9 * rv0[c] + 0.1 * sq / (n - 1), 1e-5, 1e-6);
  }
  ck_assert_float_eq (param_f32 (m, "bn.num_batches_tracked")[0], 1.0f);
}
END_TEST

START_TEST (test_batchnorm_eval)
{
  g_autoptr (NnicModel) m = bn_model ((NnicBatchNormSpec) { .num_features = 3, .eps = 1e-3 });
  randomize_params (m, 60);
  NnicRng rng;
  nnic_rng_seed (&rng, 61);
  fill_uniform (param_f32 (m, "bn.running_mean"), 3, &rng, -1, 1);
  fill_uniform (param_f32 (m, "bn.running_var"), 3, &rng, 0.5, 1.5);
  float rm0[3], rv0[3];
  memcpy (rm0, param_f32 (m, "bn.running_mean"), sizeof rm0);
  memcpy (rv0, param_f32 (m, "bn.running_var"), sizeof rv0);
  Ref r = { .fn = ref_batchnorm, .B = 3, .C = 3, .H = 3, .W = 4, .training = FALSE,
            .bn = { .num_features = 3, .eps = 1e-3, .momentum = 0.1 } };
  nnic_tensor_free (check_model (m, &r, 62));
  /* Evaluation leaves the buffers alone. */
  ck_assert_mem_eq (param_f32 (m, "bn.running_mean"), rm0, sizeof rm0);
  ck_assert_mem_eq (param_f32 (m, "bn.running_var"), rv0, sizeof rv0);
  ck_assert_float_eq (param_f32 (m, "bn.num_batches_tracked")[0], 0.0f);
}
END_TEST

START_TEST (test_batchnorm_no_affine)
{
  g_autoptr (NnicModel) m =
    bn_model ((NnicBatchNormSpec) { .num_features = 3, .momentum = 0.3, .no_affine = TRUE });
  ck_assert_uint_eq (nnic_model_n_params (m), 3);
  ck_assert_str_eq (nnic_model_param (m, 0)->name, "bn.running_mean");
  ck_assert_str_eq (nnic_model_param (m, 2)->name, "bn.num_batches_tracked");
  ck_assert_int_eq (nnic_model_count_parameters (m), 0);
  Ref r = { .fn = ref_batchnorm, .B = 2, .C = 3, .H = 3, .W = 4, .training = TRUE,
            .bn = { .num_features = 3, .eps = 1e-5, .momentum = 0.3, .no_affine = TRUE } };
  g_autoptr (NnicTensor) x = check_model (m, &r, 70);
  double mean = 0;
  for (int b = 0; b < 2; b++)
    for (int i = 0; i < 12; i++)
      mean += x->f32[b * 36 + i];
  assert_close ("running_mean", 0, param_f32 (m, "bn.running_mean")[0], 0.3 * mean / 24, 1e-5,
                1e-6);
}
END_TEST

/* ---- activations ---- */

START_TEST (test_relu)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (2, 3, 4);
  ck_assert (nnic_model_add_relu (m, "relu", NULL, &err));
  Ref r = { .fn = ref_relu, .B = 2, .C = 2, .H = 3, .W = 4 };
  nnic_tensor_free (check_model (m, &r, 80));
}
END_TEST

START_TEST (test_relu6)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_flat (40);
  ck_assert (nnic_model_add_relu6 (m, "relu6", NULL, &err));
  Ref r = { .fn = ref_relu6, .B = 3, .C = 40, .H = 1, .W = 1, .x_range = 9 };
  nnic_tensor_free (check_model (m, &r, 81));
}
END_TEST

/* At the kinks themselves the gradient is 0, as in PyTorch: relu'(0) = 0,
 * relu6'(0) = relu6'(6) = 0. */
START_TEST (test_activation_kinks)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_flat (4);
  ck_assert (nnic_model_add_relu6 (m, "a", NULL, &err));
  ck_assert (nnic_model_add_relu (m, "b", "input", &err));
  ck_assert (nnic_model_add_concat (m, "cat", (const char *[]) { "a", "b" }, 2, &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_set_input_grad (m, TRUE);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 2, 1, 4);
  float xv[4] = { 0.0f, 6.0f, -1.0f, 3.0f };
  memcpy (x->f32, xv, sizeof xv);
  const NnicTensor *out = nnic_model_forward (m, x, &err);
  float want[8] = { 0, 6, 0, 3, 0, 6, 0, 3 };
  ck_assert_mem_eq (out->f32, want, sizeof want);
  g_autoptr (NnicTensor) R = nnic_tensor_new_f32 (&err, 2, 1, 8);
  nnic_tensor_fill (R, 1.0f);
  ck_assert (nnic_model_backward (m, R, &err));
  /* relu6 passes 0, 0, 0, 1; relu passes 0, 1, 0, 1. */
  float dx[4] = { 0, 1, 0, 2 };
  ck_assert_mem_eq (nnic_model_input_grad (m)->f32, dx, sizeof dx);
}
END_TEST

/* ---- pooling ---- */

static void
check_pool (gboolean max, int64_t B, int64_t C, int64_t H, int64_t W, NnicPool2dSpec given,
            NnicPool2dSpec full, guint64 seed)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new ((int) C, (int) H, (int) W);
  ck_assert (max ? nnic_model_add_maxpool2d (m, "pool", NULL, &given, &err)
                 : nnic_model_add_avgpool2d (m, "pool", NULL, &given, &err));
  NNIC_ASSERT_NO_ERROR (err);
  int64_t shape[NNIC_MAX_DIMS];
  nnic_model_node_shape (m, 1, shape);
  ck_assert_int_eq (shape[1], pool_out (H, &full));
  ck_assert_int_eq (shape[2], pool_out (W, &full));
  Ref r = { .fn = max ? ref_maxpool : ref_avgpool, .B = B, .C = C, .H = H, .W = W, .pool = full };
  nnic_tensor_free (check_model (m, &r, seed));
}

START_TEST (test_maxpool)
{
  /* 2x2 stride 2 (the fast path), with an odd size that drops a row. */
  check_pool (TRUE, 2, 3, 6, 7, (NnicPool2dSpec) { .kernel_size = 2 },
              (NnicPool2dSpec) { .kernel_size = 2, .stride = 2 }, 90);
  /* Overlapping windows with padding (ResNet's stem pool). */
  check_pool (TRUE, 2, 2, 7, 6, (NnicPool2dSpec) { .kernel_size = 3, .stride = 2, .padding = 1 },
              (NnicPool2dSpec) { .kernel_size = 3, .stride = 2, .padding = 1 }, 91);
  check_pool (TRUE, 2, 2, 5, 5, (NnicPool2dSpec) { .kernel_size = 2, .stride = 1 },
              (NnicPool2dSpec) { .kernel_size = 2, .stride = 1 }, 92);
  check_pool (TRUE, 1, 2, 5, 6, (NnicPool2dSpec) { .kernel_size = 4, .stride = 3, .padding = 2 },
              (NnicPool2dSpec) { .kernel_size = 4, .stride = 3, .padding = 2 }, 93);
}
END_TEST

/* Ties: the first maximum in the window (row-major) gets the gradient. */
START_TEST (test_maxpool_ties)
{
  GError *err = NULL;
  for (int padded = 0; padded < 2; padded++) {
    g_autoptr (NnicModel) m = nnic_model_new (1, 4, 4);
    NnicPool2dSpec s = { .kernel_size = padded ? 3 : 2, .stride = 2, .padding = padded };
    ck_assert (nnic_model_add_maxpool2d (m, "pool", NULL, &s, &err));
    nnic_model_set_input_grad (m, TRUE);
    g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, 1, 1, 4, 4);
    nnic_tensor_fill (x, 0.5f);
    const NnicTensor *out = nnic_model_forward (m, x, &err);
    NNIC_ASSERT_NO_ERROR (err);
    g_autoptr (NnicTensor) R = nnic_tensor_new_like (out, &err);
    nnic_tensor_fill (R, 1.0f);
    ck_assert (nnic_model_backward (m, R, &err));
    /* Unpadded, the windows start at rows/cols 0 and 2; with padding 1 at
     * -1 and 1, so their first real pixels are (0, 0), (0, 1), (1, 0), (1, 1). */
    const float *dx = nnic_model_input_grad (m)->f32;
    float want_plain[16] = { 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0 };
    float want_padded[16] = { 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
    ck_assert_mem_eq (dx, padded ? want_padded : want_plain, sizeof want_plain);
  }
}
END_TEST

START_TEST (test_avgpool)
{
  /* With padding, count_include_pad divides border windows by the full
   * kernel area. */
  check_pool (FALSE, 2, 2, 7, 6, (NnicPool2dSpec) { .kernel_size = 3, .stride = 2, .padding = 1 },
              (NnicPool2dSpec) { .kernel_size = 3, .stride = 2, .padding = 1 }, 100);
  check_pool (FALSE, 2, 3, 6, 7, (NnicPool2dSpec) { .kernel_size = 2 },
              (NnicPool2dSpec) { .kernel_size = 2, .stride = 2 }, 101);
  check_pool (FALSE, 1, 2, 5, 5, (NnicPool2dSpec) { .kernel_size = 3, .stride = 1, .padding = 1 },
              (NnicPool2dSpec) { .kernel_size = 3, .stride = 1, .padding = 1 }, 102);
}
END_TEST

static void
check_adaptive (int64_t H, int64_t W, int oh, int ow, guint64 seed)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (2, (int) H, (int) W);
  ck_assert (nnic_model_add_adaptive_avgpool2d (m, "pool", NULL, oh, ow, &err));
  NNIC_ASSERT_NO_ERROR (err);
  Ref r = { .fn = ref_adaptive, .B = 2, .C = 2, .H = H, .W = W, .out_h = oh, .out_w = ow };
  nnic_tensor_free (check_model (m, &r, seed));
}

START_TEST (test_adaptive_avgpool)
{
  check_adaptive (7, 5, 3, 2, 110); /* overlapping, uneven bins */
  check_adaptive (4, 6, 1, 1, 111); /* global average pooling */
  check_adaptive (6, 4, 3, 4, 112); /* exact division; identity along W */
  check_adaptive (3, 2, 5, 4, 113); /* more outputs than inputs */
}
END_TEST

/* ---- Flatten, Dropout ---- */

START_TEST (test_flatten)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (2, 3, 4);
  ck_assert (nnic_model_add_flatten (m, "flat", NULL, &err));
  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, 1, shape), 1);
  ck_assert_int_eq (shape[0], 24);
  Ref r = { .fn = ref_identity, .B = 3, .C = 2, .H = 3, .W = 4 };
  nnic_tensor_free (check_model (m, &r, 120));
}
END_TEST

START_TEST (test_dropout)
{
  GError *err = NULL;
  const double p = 0.3;
  g_autoptr (NnicModel) m = nnic_model_new (4, 10, 10);
  ck_assert (nnic_model_add_dropout (m, "drop", NULL, p, &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_set_input_grad (m, TRUE);
  NnicRng rng;
  nnic_rng_seed (&rng, 130);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, 5, 4, 10, 10);
  fill_uniform (x->f32, x->numel, &rng, 0.5, 1.5); /* never 0 */
  g_autoptr (NnicTensor) R = nnic_tensor_new_like (x, &err);
  fill_uniform (R->f32, R->numel, &rng, -1, 1);

  /* Evaluation: the identity, gradient included. */
  nnic_model_set_training (m, FALSE);
  const NnicTensor *out = nnic_model_forward (m, x, &err);
  ck_assert_mem_eq (out->f32, x->f32, nnic_tensor_nbytes (x));
  ck_assert (nnic_model_backward (m, R, &err));
  ck_assert_mem_eq (nnic_model_input_grad (m)->f32, R->f32, nnic_tensor_nbytes (R));

  /* Training: about p of the elements are dropped, the rest scaled by
   * 1/(1-p); the gradient follows the same mask. */
  nnic_model_set_training (m, TRUE);
  nnic_model_set_seed (m, 7);
  out = nnic_model_forward (m, x, &err);
  g_autoptr (NnicTensor) first = nnic_tensor_copy (out, &err);
  ck_assert (nnic_model_backward (m, R, &err));
  const float *dx = nnic_model_input_grad (m)->f32;
  int64_t dropped = 0;
  for (int64_t i = 0; i < x->numel; i++) {
    if (out->f32[i] == 0.0f) {
      dropped++;
      ck_assert_float_eq (dx[i], 0.0f);
    } else {
      assert_close ("kept", i, out->f32[i], x->f32[i] / (1 - p), 1e-6, 0);
      assert_close ("kept grad", i, dx[i], R->f32[i] / (1 - p), 1e-6, 0);
    }
  }
  double frac = (double) dropped / (double) x->numel;
  ck_assert_msg (frac > 0.26 && frac < 0.34, "dropped %.3f, want about %.1f", frac, p);

  /* The same seed gives the same mask, another seed another one. */
  nnic_model_set_seed (m, 7);
  out = nnic_model_forward (m, x, &err);
  ck_assert_mem_eq (out->f32, first->f32, nnic_tensor_nbytes (first));
  nnic_model_set_seed (m, 8);
  out = nnic_model_forward (m, x, &err);
  ck_assert (memcmp (out->f32, first->f32, nnic_tensor_nbytes (first)) != 0);
  NNIC_ASSERT_NO_ERROR (err);
}
END_TEST

START_TEST (test_dropout_edges)
{
  GError *err = NULL;
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 2, 3, 50);
  nnic_tensor_fill (x, 2.0f);
  for (int k = 0; k < 2; k++) {
    g_autoptr (NnicModel) m = nnic_model_new_flat (50);
    ck_assert (nnic_model_add_dropout (m, "drop", NULL, k ? 1.0 : 0.0, &err));
    nnic_model_set_training (m, TRUE);
    const NnicTensor *out = nnic_model_forward (m, x, &err);
    NNIC_ASSERT_NO_ERROR (err);
    for (int64_t i = 0; i < out->numel; i++)
      ck_assert_float_eq (out->f32[i], k ? 0.0f : 2.0f);
  }
  g_autoptr (NnicModel) m = nnic_model_new_flat (50);
  ck_assert (!nnic_model_add_dropout (m, "drop", NULL, 1.5, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "drop:");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_dropout (m, "drop", NULL, -0.1, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "between 0 and 1");
  g_clear_error (&err);
}
END_TEST

/* ---- Add, Concat ---- */

static void
ref_double (const Ref *r, const double *x, double *const *p, double *y)
{
  (void) p;
  for (int64_t i = 0; i < r->B * r->C * r->H * r->W; i++)
    y[i] = x[i] + x[i];
}

START_TEST (test_add_same_input)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (2, 3, 3);
  ck_assert (nnic_model_add_add (m, "twice", "input", "input", &err));
  NNIC_ASSERT_NO_ERROR (err);
  Ref r = { .fn = ref_double, .B = 2, .C = 2, .H = 3, .W = 3 };
  nnic_tensor_free (check_model (m, &r, 140));
}
END_TEST

/* A residual block: y = conv(x) + x, with x feeding two nodes. */
static void
ref_residual (const Ref *r, const double *x, double *const *p, double *y)
{
  conv_ref_on (&r->conv, r->B, r->C, r->H, r->W, x, p[0], p[1], y);
  for (int64_t i = 0; i < r->B * r->C * r->H * r->W; i++)
    y[i] += x[i];
}

START_TEST (test_add_residual)
{
  GError *err = NULL;
  NnicConv2dSpec s = { .in_channels = 2, .out_channels = 2, .kernel_h = 3, .kernel_w = 3,
                       .stride = 1, .padding = 1, .dilation = 1, .groups = 1 };
  g_autoptr (NnicModel) m = nnic_model_new (2, 4, 5);
  ck_assert (nnic_model_add_conv2d (m, "conv", NULL, &s, &err));
  ck_assert (nnic_model_add_add (m, "add", "conv", "input", &err));
  NNIC_ASSERT_NO_ERROR (err);
  randomize_params (m, 150);
  Ref r = { .fn = ref_residual, .B = 2, .C = 2, .H = 4, .W = 5, .conv = s };
  nnic_tensor_free (check_model (m, &r, 151));
}
END_TEST

/* cat([relu(x), x, conv1x1(x)], dim=1) with 2, 2 and 3 channels. */
static void
ref_concat3 (const Ref *r, const double *x, double *const *p, double *y)
{
  const int64_t HW = r->H * r->W, C = r->C, OC = r->conv.out_channels, CT = 2 * C + OC;
  g_autofree double *conv = g_new (double, r->B * OC * HW);
  conv_ref_on (&r->conv, r->B, r->C, r->H, r->W, x, p[0], p[1], conv);
  for (int64_t b = 0; b < r->B; b++) {
    double *yb = y + b * CT * HW;
    for (int64_t i = 0; i < C * HW; i++) {
      double v = x[b * C * HW + i];
      yb[i] = v > 0 ? v : 0;
      yb[C * HW + i] = v;
    }
    for (int64_t j = 0; j < OC * HW; j++)
      yb[2 * C * HW + j] = conv[b * OC * HW + j];
  }
}

START_TEST (test_concat3)
{
  GError *err = NULL;
  NnicConv2dSpec s = { .in_channels = 2, .out_channels = 3, .kernel_h = 1, .kernel_w = 1,
                       .stride = 1, .dilation = 1, .groups = 1 };
  g_autoptr (NnicModel) m = nnic_model_new (2, 3, 4);
  ck_assert (nnic_model_add_relu (m, "relu", "input", &err));
  ck_assert (nnic_model_add_conv2d (m, "conv", "input", &s, &err));
  ck_assert (nnic_model_add_concat (m, "cat", (const char *[]) { "relu", "input", "conv" }, 3,
                                    &err));
  NNIC_ASSERT_NO_ERROR (err);
  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, 3, shape), 3);
  ck_assert_int_eq (shape[0], 7);
  randomize_params (m, 160);
  Ref r = { .fn = ref_concat3, .B = 2, .C = 2, .H = 3, .W = 4, .conv = s };
  nnic_tensor_free (check_model (m, &r, 161));
}
END_TEST

/* Vectors concatenate along their only dimension: cat([x, x], dim=1). */
static void
ref_concat_flat (const Ref *r, const double *x, double *const *p, double *y)
{
  (void) p;
  for (int64_t b = 0; b < r->B; b++)
    for (int64_t i = 0; i < r->C; i++)
      y[b * 2 * r->C + i] = y[b * 2 * r->C + r->C + i] = x[b * r->C + i];
}

START_TEST (test_concat_flat)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_flat (5);
  ck_assert (nnic_model_add_concat (m, "cat", (const char *[]) { "input", "input" }, 2, &err));
  NNIC_ASSERT_NO_ERROR (err);
  Ref r = { .fn = ref_concat_flat, .B = 3, .C = 5, .H = 1, .W = 1 };
  nnic_tensor_free (check_model (m, &r, 170));
}
END_TEST

/* w = cat([x, relu(x)], dim=3), then cat([w, w], dim=-2): along the width
 * and the height of [C, H, W] samples. */
static void
ref_concat_w (const Ref *r, const double *x, double *const *p, double *y)
{
  (void) p;
  const int64_t C = r->C, H = r->H, W = r->W;
  int64_t o = 0;
  for (int64_t b = 0; b < r->B; b++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t h = 0; h < H; h++) {
        /* each row is x's row, then relu's */
        for (int64_t w = 0; w < W; w++)
          y[o++] = X4 (x, C, H, W, b, c, h, w);
        for (int64_t w = 0; w < W; w++)
          y[o++] = MAX (X4 (x, C, H, W, b, c, h, w), 0.0);
      }
}

static void
ref_concat_wh (const Ref *r, const double *x, double *const *p, double *y)
{
  const int64_t C = r->C, H = r->H, W2 = 2 * r->W;
  g_autofree double *t = g_new (double, r->B *C *H *W2);
  ref_concat_w (r, x, p, t);
  for (int64_t b = 0; b < r->B; b++)
    for (int64_t c = 0; c < C; c++)
      for (int64_t k = 0; k < 2; k++)
        memcpy (y + ((b * C + c) * 2 + k) * H * W2, t + (b * C + c) * H * W2,
                sizeof (double) * (size_t) (H * W2));
}

START_TEST (test_concat_axes)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (2, 3, 4);
  ck_assert (nnic_model_add_relu (m, "relu", "input", &err));
  ck_assert (nnic_model_add_concat_dim (m, "w", (const char *[]) { "input", "relu" }, 2, 3, &err));
  ck_assert (nnic_model_add_concat_dim (m, "h", (const char *[]) { "w", "w" }, 2, -2, &err));
  NNIC_ASSERT_NO_ERROR (err);
  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, 3, shape), 3);
  ck_assert (shape[0] == 2 && shape[1] == 6 && shape[2] == 8);
  double dim;
  ck_assert (nnic_model_node_option (m, 3, "dim", &dim));
  ck_assert_int_eq ((int) dim, 2);
  Ref r = { .fn = ref_concat_wh, .B = 2, .C = 2, .H = 3, .W = 4 };
  nnic_tensor_free (check_model (m, &r, 180));
}
END_TEST

/* x[:, ::2, 1:4, ::-2] of [3, 5, 6] samples, by start/end/step. */
static const int64_t slice_first[3] = { 0, 1, 5 }, slice_step[3] = { 2, 1, -2 },
                     slice_count[3] = { 2, 3, 3 };

static void
ref_slice (const Ref *r, const double *x, double *const *p, double *y)
{
  (void) p;
  int64_t o = 0;
  for (int64_t b = 0; b < r->B; b++)
    for (int64_t i = 0; i < slice_count[0]; i++)
      for (int64_t j = 0; j < slice_count[1]; j++)
        for (int64_t k = 0; k < slice_count[2]; k++)
          y[o++] = X4 (x, r->C, r->H, r->W, b, slice_first[0] + i * slice_step[0],
                       slice_first[1] + j * slice_step[1], slice_first[2] + k * slice_step[2]);
}

START_TEST (test_slice)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (3, 5, 6);
  /* the channels 0 and 2; rows 1..3 (an end past the axis is clamped);
   * columns 5, 3, 1 (from the last, backwards: the start -1, the end
   * before the first) */
  ck_assert (nnic_model_add_slice (
      m, "s", NULL, 3, (const int[]) { -1, 1, 2 }, (const int64_t[]) { -1, 0, 1 },
      (const int64_t[]) { -INT64_MAX, G_MAXINT64, 4 }, (const int64_t[]) { -2, 2, 1 }, &err));
  NNIC_ASSERT_NO_ERROR (err);
  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, 1, shape), 3);
  ck_assert (shape[0] == 2 && shape[1] == 3 && shape[2] == 3);
  Ref r = { .fn = ref_slice, .B = 2, .C = 3, .H = 5, .W = 6 };
  nnic_tensor_free (check_model (m, &r, 190));
}
END_TEST

/* x[:, :, 2] of [2, 3, 4] samples, then index_select(dim 1) of [2, 0, 2]:
 * channel 2 twice, so its gradient is the sum of both. */
static void
ref_gather (const Ref *r, const double *x, double *const *p, double *y)
{
  (void) p;
  static const int64_t pick[3] = { 2, 0, 2 };
  int64_t o = 0;
  for (int64_t b = 0; b < r->B; b++)
    for (int64_t j = 0; j < 3; j++)
      for (int64_t w = 0; w < r->W; w++)
        y[o++] = X4 (x, r->C, r->H, r->W, b, pick[j], 2, w);
}

START_TEST (test_gather)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (3, 3, 4);
  ck_assert (nnic_model_add_select (m, "row", NULL, 2, -1, &err));
  ck_assert (nnic_model_add_index_select (m, "pick", NULL, 1, (const int64_t[]) { 2, 0, -1 }, 3, &err));
  NNIC_ASSERT_NO_ERROR (err);
  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, 1, shape), 2);
  ck_assert (shape[0] == 3 && shape[1] == 4);
  ck_assert_int_eq (nnic_model_node_shape (m, 2, shape), 2);
  ck_assert (shape[0] == 3 && shape[1] == 4);
  ck_assert_str_eq (nnic_model_node_type (m, 2), "Gather");
  Ref r = { .fn = ref_gather, .B = 2, .C = 3, .H = 3, .W = 4 };
  nnic_tensor_free (check_model (m, &r, 200));
}
END_TEST

/* A pair of convolutions tied by an Add stays tied through a Slice or a
 * Gather along the height (KEEP), not through one of the channels (END);
 * a Concat along the width is new channels (END). */
START_TEST (test_slice_gather_channels)
{
  GError *err = NULL;
  for (int k = 0; k < 5; k++) {
    g_autoptr (NnicModel) m = nnic_model_new (3, 6, 6);
    NnicConv2dSpec s = { .in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = 1 };
    ck_assert (nnic_model_add_conv2d (m, "a", "input", &s, &err));
    ck_assert (nnic_model_add_conv2d (m, "b", "input", &s, &err));
    const int64_t zero = 0, six = 6, one = 1;
    switch (k) {
    case 0: /* rows 0..5 of 6: all of them, but along the height anyway */
      ck_assert (nnic_model_add_slice (m, "mid", "b", 1, (const int[]) { 2 }, &zero, &six, NULL, &err));
      break;
    case 1: /* every channel, in order: still the channels */
      ck_assert (nnic_model_add_slice (m, "mid", "b", 1, (const int[]) { 1 }, &zero, &six, &one, &err));
      break;
    case 2:
      ck_assert (nnic_model_add_index_select (m, "mid", "b", 3, (const int64_t[]) { 5, 4, 3, 2, 1, 0 },
                                              6, &err));
      break;
    case 3: /* channels 0..1 twice: not channel for channel */
      ck_assert (nnic_model_add_slice (m, "half", "b", 1, (const int[]) { 1 }, &zero,
                                       (const int64_t[]) { 2 }, NULL, &err));
      ck_assert (nnic_model_add_concat (m, "mid", (const char *[]) { "half", "half" }, 2, &err));
      break;
    case 4:
      ck_assert (nnic_model_add_slice (m, "l", "b", 1, (const int[]) { 3 }, &zero,
                                       (const int64_t[]) { 3 }, NULL, &err));
      ck_assert (nnic_model_add_slice (m, "r", "b", 1, (const int[]) { 3 }, (const int64_t[]) { 3 },
                                       &six, NULL, &err));
      ck_assert (nnic_model_add_concat_dim (m, "mid", (const char *[]) { "r", "l" }, 2, -1, &err));
      break;
    }
    ck_assert (nnic_model_add_add (m, "sum", "a", "mid", &err));
    NNIC_ASSERT_NO_ERROR (err);
    g_autoptr (GPtrArray) sets = nnic_model_channel_dependencies (m);
    ck_assert_msg (sets->len == (k <= 2 ? 1u : 0u), "case %d: %u sets", k, sets->len);
  }
}
END_TEST

START_TEST (test_slice_gather_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (2, 3, 4);
  const int64_t zero = 0, two = 2;
  ck_assert (!nnic_model_add_slice (m, "s", NULL, 1, (const int[]) { 0 }, &zero, &two, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "s: dimension 0 is the batch, which a Slice keeps whole");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_slice (m, "s", NULL, 1, (const int[]) { 4 }, &zero, &two, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "s: axis 4 is not a dimension of 'input' [2, 3, 4]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_slice (m, "s", NULL, 2, (const int[]) { 2, -2 }, (const int64_t[]) { 0, 0 },
                                    (const int64_t[]) { 1, 1 }, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "s: axis 2 of 'input' [2, 3, 4] is sliced twice");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_slice (m, "s", NULL, 1, (const int[]) { 3 }, &zero, &two,
                                    (const int64_t[]) { 0 }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "s: the step along axis 3 of 'input' [2, 3, 4] is zero");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_select (m, "g", NULL, 3, 4, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT,
                     "g: index 4 is out of range for dimension 3 of 'input' [2, 3, 4]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_select (m, "g", NULL, -4, 0, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "g: dimension -4 is the batch");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_concat_dim (m, "c", (const char *[]) { "input" }, 1, 4, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE,
                     "c: cannot concatenate 'input' of shape [2, 3, 4] along dimension 4");
  g_clear_error (&err);
  ck_assert (nnic_model_add_slice (m, "s", NULL, 1, (const int[]) { 2 }, &zero, &two, NULL, &err));
  ck_assert (!nnic_model_add_concat_dim (m, "c", (const char *[]) { "input", "s" }, 2, 3, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE,
                     "c: cannot concatenate 'input' of shape [2, 3, 4] with 's' of shape [2, 2, 4]: "
                     "all dimensions but the one concatenated must agree");
  g_clear_error (&err);
  /* an empty slice is a shape, not an error */
  ck_assert (nnic_model_add_slice (m, "none", "input", 1, (const int[]) { 3 }, &two, &zero, NULL, &err));
  NNIC_ASSERT_NO_ERROR (err);
}
END_TEST

/* ---- setup errors ---- */

START_TEST (test_setup_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (1, 8, 8);

  ck_assert (!nnic_model_add_conv2d (m, "conv1", NULL,
                                     &(NnicConv2dSpec) { .in_channels = 3, .out_channels = 4,
                                                         .kernel_size = 3 },
                                     &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "conv1: in_channels 3 does not match the input's 1");
  g_clear_error (&err);

  ck_assert (nnic_model_add_conv2d (m, "c", NULL,
                                    &(NnicConv2dSpec) { .in_channels = 1, .out_channels = 6,
                                                        .kernel_size = 1 },
                                    &err));
  ck_assert (!nnic_model_add_conv2d (m, "g", NULL,
                                     &(NnicConv2dSpec) { .in_channels = 6, .out_channels = 5,
                                                         .kernel_size = 3, .groups = 3 },
                                     &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "g: groups 3 must divide");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_conv2d (m, "g", NULL,
                                     &(NnicConv2dSpec) { .in_channels = 6, .out_channels = 6,
                                                         .kernel_size = 3, .groups = 4 },
                                     &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "groups 4");
  g_clear_error (&err);

  ck_assert (!nnic_model_add_conv2d (m, "big", NULL,
                                     &(NnicConv2dSpec) { .in_channels = 6, .out_channels = 2,
                                                         .kernel_size = 11, .padding = 1 },
                                     &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "big: the kernel");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_conv2d (m, "dil", NULL,
                                     &(NnicConv2dSpec) { .in_channels = 6, .out_channels = 2,
                                                         .kernel_size = 3, .dilation = 4 },
                                     &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "larger than the padded input");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_conv2d (m, "k0", NULL,
                                     &(NnicConv2dSpec) { .in_channels = 6, .out_channels = 2 },
                                     &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "k0: the kernel size must be positive");
  g_clear_error (&err);

  ck_assert (!nnic_model_add_linear (m, "fc", NULL,
                                     &(NnicLinearSpec) { .in_features = 384, .out_features = 2 },
                                     &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "[6, 8, 8] per sample (add a Flatten first)");
  g_clear_error (&err);

  ck_assert (!nnic_model_add_batchnorm2d (m, "bn", NULL, &(NnicBatchNormSpec) { .num_features = 4 },
                                          &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "bn: num_features 4");
  g_clear_error (&err);

  ck_assert (!nnic_model_add_maxpool2d (m, "pool", NULL,
                                        &(NnicPool2dSpec) { .kernel_size = 2, .padding = 2 },
                                        &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "pool: padding should be at most half");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_avgpool2d (m, "pool", NULL, &(NnicPool2dSpec) { .kernel_size = 9 },
                                        &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "pool: the 9x9 window");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_adaptive_avgpool2d (m, "ap", NULL, 0, 2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "ap: the output size");
  g_clear_error (&err);
  /* Sizes that would overflow are refused when the node is added. */
  ck_assert (!nnic_model_add_adaptive_avgpool2d (m, "ap", NULL, 1 << 30, 1 << 30, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "ap: the output shape [6, 1073741824, 1073741824]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_conv2d (m, "huge", NULL,
                                     &(NnicConv2dSpec) { .in_channels = 6, .out_channels = 2,
                                                         .kernel_size = 1, .padding = 1 << 30 },
                                     &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "too large");
  g_clear_error (&err);

  /* "p" halves the image: adding it to "c" does not fit, nor concatenating. */
  ck_assert (nnic_model_add_maxpool2d (m, "p", "c", &(NnicPool2dSpec) { .kernel_size = 2 }, &err));
  ck_assert (!nnic_model_add_add (m, "add", "c", "p", &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "add: cannot add 'c' of shape [6, 8, 8]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_concat (m, "cat", (const char *[]) { "c", "input", "p" }, 3, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE,
                     "cat: cannot concatenate 'c' of shape [6, 8, 8] with 'p'");
  g_clear_error (&err);
  /* Channels may differ. */
  ck_assert (nnic_model_add_concat (m, "cat", (const char *[]) { "c", "input" }, 2, &err));
  NNIC_ASSERT_NO_ERROR (err);
}
END_TEST

START_TEST (test_forward_wrong_shape)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (1, 6, 6);
  ck_assert (nnic_model_add_conv2d (m, "conv", NULL,
                                    &(NnicConv2dSpec) { .in_channels = 1, .out_channels = 2,
                                                        .kernel_size = 3 },
                                    &err));
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, 2, 1, 6, 5);
  ck_assert_ptr_null (nnic_model_forward (m, x, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "[2, 1, 6, 5]");
  g_clear_error (&err);
  g_autoptr (NnicTensor) flat = nnic_tensor_new_f32 (&err, 2, 2, 36);
  ck_assert_ptr_null (nnic_model_forward (m, flat, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "[2, 36]");
  g_clear_error (&err);
}
END_TEST

static Suite *
layers_suite (void)
{
  Suite *s = suite_create ("layers");
  TCase *tc = tcase_create ("conv");
  tcase_add_test (tc, test_conv_defaults);
  tcase_add_test (tc, test_conv_stride_padding);
  tcase_add_test (tc, test_conv_dilation);
  tcase_add_test (tc, test_conv_groups);
  tcase_add_test (tc, test_conv_depthwise);
  tcase_add_test (tc, test_conv_no_bias_rect_kernel);
  tcase_add_test (tc, test_conv_pointwise_and_batch_one);
  tcase_add_test (tc, test_conv_first_layer_skips_input_grad);
  tcase_add_test (tc, test_batch_size_changes);
  tcase_add_test (tc, test_conv_chunks);
  suite_add_tcase (s, tc);

  tc = tcase_create ("dense");
  tcase_add_test (tc, test_linear);
  tcase_add_test (tc, test_batchnorm_train);
  tcase_add_test (tc, test_batchnorm_eval);
  tcase_add_test (tc, test_batchnorm_no_affine);
  tcase_add_test (tc, test_relu);
  tcase_add_test (tc, test_relu6);
  tcase_add_test (tc, test_activation_kinks);
  suite_add_tcase (s, tc);

  tc = tcase_create ("pool");
  tcase_add_test (tc, test_maxpool);
  tcase_add_test (tc, test_maxpool_ties);
  tcase_add_test (tc, test_avgpool);
  tcase_add_test (tc, test_adaptive_avgpool);
  suite_add_tcase (s, tc);

  tc = tcase_create ("misc");
  tcase_add_test (tc, test_flatten);
  tcase_add_test (tc, test_dropout);
  tcase_add_test (tc, test_dropout_edges);
  tcase_add_test (tc, test_add_same_input);
  tcase_add_test (tc, test_add_residual);
  tcase_add_test (tc, test_concat3);
  tcase_add_test (tc, test_concat_flat);
  tcase_add_test (tc, test_concat_axes);
  tcase_add_test (tc, test_slice);
  tcase_add_test (tc, test_gather);
  tcase_add_test (tc, test_slice_gather_channels);
  tcase_add_test (tc, test_slice_gather_errors);
  suite_add_tcase (s, tc);

  tc = tcase_create ("errors");
  tcase_add_test (tc, test_setup_errors);
  tcase_add_test (tc, test_forward_wrong_shape);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return nnic_test_run (layers_suite ());
}
