/* Integer inference and the quantized export (include/nnic/quant.h):
 * the int8 convolution and linear layers against a reference computed
 * from the same integers (stride, padding, dilation, groups, odd sizes,
 * signed and unsigned weights and activations), the same bits on every
 * int8 GEMM path; the export's files (integers that give back the
 * fake-quantized weights exactly, 4× smaller at 8 bits, NNI's calibration
 * keys); naive and qat on nni_cnn, bnn on its network, through export,
 * integer model and fake-quantized model (which is the compressor's, bit
 * for bit); refused training; errors that name the file and the layer. */
#include "testutil.h"

#include "core/compress/wrapper.h"
#include "core/quant/qgemm.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- helpers ---- */

static guint64 rng_state = 0x9e3779b97f4a7c15ULL;

static guint64
rnd (void)
{
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Uniform integer in [lo, hi]. */
static int
rnd_int (int lo, int hi)
{
  return lo + (int) (rnd () % (guint64) (hi - lo + 1));
}

static float
rnd_float (float lo, float hi)
{
  return lo + (hi - lo) * (float) (rnd () % 1000003) / 1000003.0f;
}

typedef struct {
  int bits;
  gboolean is_signed;
  float scale;
  int zp;
} QP;

static int
qmin (const QP *q)
{
  return q->is_signed ? -(1 << (q->bits - 1)) : 0;
}

static int
qmax (const QP *q)
{
  return q->is_signed ? (1 << (q->bits - 1)) - 1 : (1 << q->bits) - 1;
}

static void
json_param (GString *s, const char *kind, const QP *q)
{
  g_string_append_printf (s, "\"%s\": {\"bits\": %d, \"signed\": %s, \"scale\": %.9g, \"zero_point\": %d}", kind,
                          q->bits, q->is_signed ? "true" : "false", (double) q->scale, q->zp);
}

/* Writes DIR/quantized.safetensors and DIR/calibration.json for one layer
 * `name` of `type` with integer weights wq (shape of the weight), bias
 * (may be NULL), and input/output calibration (may be NULL). */
static void
write_layer (const char *dir, const char *name, const char *type, const QP *w, const int *wq, int ndim,
             const int64_t *shape, const float *bias, int n_bias, const QP *in, const QP *out)
{
  GError *err = NULL;
  g_autoptr (NnicTensorDict) d = nnic_tensor_dict_new ();
  NnicTensor *q = nnic_tensor_new (w->is_signed ? NNIC_DTYPE_I8 : NNIC_DTYPE_U8, ndim, shape, &err);
  NNIC_ASSERT_NO_ERROR (err);
  for (int64_t i = 0; i < q->numel; i++) {
    if (w->is_signed)
      q->i8[i] = (int8_t) wq[i];
    else
      q->u8[i] = (uint8_t) wq[i];
  }
  g_autofree char *n1 = g_strdup_printf ("%s.%s", name, w->is_signed ? "weight_int8" : "weight_uint8");
  ck_assert (nnic_tensor_dict_add (d, n1, q, &err));
  NnicTensor *s = nnic_tensor_new (NNIC_DTYPE_F32, 0, NULL, &err);
  s->f32[0] = w->scale;
  g_autofree char *n2 = g_strdup_printf ("%s.weight_scale", name);
  ck_assert (nnic_tensor_dict_add (d, n2, s, &err));
  NnicTensor *z = nnic_tensor_new (NNIC_DTYPE_I32, 0, NULL, &err);
  z->i32[0] = w->zp;
  g_autofree char *n3 = g_strdup_printf ("%s.weight_zero_point", name);
  ck_assert (nnic_tensor_dict_add (d, n3, z, &err));
  if (bias) {
    NnicTensor *b = nnic_tensor_new_f32 (&err, 1, (int64_t) n_bias);
    memcpy (b->f32, bias, sizeof (float) * (size_t) n_bias);
    g_autofree char *n4 = g_strdup_printf ("%s.bias", name);
    ck_assert (nnic_tensor_dict_add (d, n4, b, &err));
  }
  g_autofree char *st = g_build_filename (dir, "quantized.safetensors", NULL);
  ck_assert (nnic_safetensors_save (st, d, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (GString) js = g_string_new (NULL);
  g_string_append_printf (js, "{\"%s\": {\"type\": \"%s\", ", name, type);
  json_param (js, "weight", w);
  if (in) {
    g_string_append (js, ", ");
    json_param (js, "input", in);
  }
  if (out) {
    g_string_append (js, ", ");
    json_param (js, "output", out);
  }
  g_string_append (js, "}}");
  g_autofree char *cal = g_build_filename (dir, "calibration.json", NULL);
  ck_assert (g_file_set_contents (cal, js->str, (gssize) js->len, NULL));
}

/* The quantizers' fake quantization (qat's formula), in float32. */
static float
fake (float x, const QP *q)
{
  float t = (float) q->zp + x / q->scale;
  t = t < (float) qmin (q) ? (float) qmin (q) : t > (float) qmax (q) ? (float) qmax (q) : t;
  return q->scale * (rintf (t) - (float) q->zp);
}

static NnicQgemmPath paths[NNIC_QGEMM_N_PATHS];

static int
supported_paths (void)
{
  int n = 0;
  for (int p = 0; p < NNIC_QGEMM_N_PATHS; p++)
    if (nnic_qgemm_path_supported ((NnicQgemmPath) p))
      paths[n++] = (NnicQgemmPath) p;
  return n;
}

static NnicTensor *
forward_copy (NnicModel *m, const NnicTensor *x)
{
  GError *err = NULL;
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  return nnic_tensor_copy (y, &err);
}

/* ---- the convolution ---- */

typedef struct {
  int B, C, H, W, OC, KH, KW, SH, SW, DH, DW, G;
  int pads[4]; /* top, left, bottom, right */
  gboolean bias;
  QP w, in;
  gboolean has_out;
} ConvCase;

static void
run_conv_case (const ConvCase *cc)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (cc->C, cc->H, cc->W);
  NnicConv2dSpec spec = {
    .in_channels = cc->C, .out_channels = cc->OC, .kernel_h = cc->KH, .kernel_w = cc->KW,
    .stride_h = cc->SH, .stride_w = cc->SW, .dilation_h = cc->DH, .dilation_w = cc->DW,
    .groups = cc->G, .no_bias = !cc->bias, .explicit_pads = TRUE,
    .pads = { cc->pads[0], cc->pads[1], cc->pads[2], cc->pads[3] },
  };
  ck_assert_msg (nnic_model_add_conv2d (m, "conv", NULL, &spec, &err), "%s", err ? err->message : "");
  int64_t shape[NNIC_MAX_DIMS];
  nnic_model_node_shape (m, 1, shape);
  const int OH = (int) shape[1], OW = (int) shape[2], Cg = cc->C / cc->G, OCg = cc->OC / cc->G;
  const int per_oc = Cg * cc->KH * cc->KW;
  g_autofree int *wq = g_new (int, cc->OC * per_oc);
  for (int i = 0; i < cc->OC * per_oc; i++)
    wq[i] = rnd_int (qmin (&cc->w), qmax (&cc->w));
  g_autofree float *bias = g_new (float, cc->OC);
  for (int i = 0; i < cc->OC; i++)
    bias[i] = rnd_float (-1, 1);
  /* The output grid: about the outputs' range over 200 steps. */
  QP out = { 8, FALSE, cc->in.scale * cc->w.scale * (float) per_oc * 40.0f, 100 };
  const int64_t wshape[4] = { cc->OC, Cg, cc->KH, cc->KW };
  g_autofree char *dir = nnic_test_tmpdir ();
  write_layer (dir, "conv", "Conv2d", &cc->w, wq, 4, wshape, cc->bias ? bias : NULL, cc->OC, &cc->in,
               cc->has_out ? &out : NULL);
  ck_assert (nnic_model_quantize_int8 (m, dir, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_auto (GStrv) layers = nnic_model_int8_layers (m);
  ck_assert_uint_eq (g_strv_length (layers), 1);

  /* Inputs on the input grid: x = scale · (q − zp), q known. */
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) cc->B, (int64_t) cc->C, (int64_t) cc->H,
                                                  (int64_t) cc->W);
  g_autofree int *xq = g_new (int, x->numel);
  for (int64_t i = 0; i < x->numel; i++) {
    xq[i] = rnd_int (qmin (&cc->in), qmax (&cc->in));
    x->f32[i] = (float) (xq[i] - cc->in.zp) * cc->in.scale;
  }

  /* The reference, from the integers. */
  g_autofree double *ref = g_new0 (double, (size_t) cc->B * cc->OC * OH * OW);
  g_autofree double *mag = g_new0 (double, (size_t) cc->B * cc->OC * OH * OW);
  for (int b = 0; b < cc->B; b++)
    for (int oc = 0; oc < cc->OC; oc++)
      for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
          const int g = oc / OCg;
          int64_t sum = 0, abs_sum = 0;
          for (int c = 0; c < Cg; c++)
            for (int kh = 0; kh < cc->KH; kh++)
              for (int kw = 0; kw < cc->KW; kw++) {
                const int ih = oh * cc->SH - cc->pads[0] + kh * cc->DH;
                const int iw = ow * cc->SW - cc->pads[1] + kw * cc->DW;
                if (ih < 0 || ih >= cc->H || iw < 0 || iw >= cc->W)
                  continue;
                const int a = xq[((b * cc->C + g * Cg + c) * cc->H + ih) * cc->W + iw] - cc->in.zp;
                const int w = wq[((oc * Cg + c) * cc->KH + kh) * cc->KW + kw] - cc->w.zp;
                sum += (int64_t) a * w;
                abs_sum += (int64_t) abs (a * w);
              }
          const size_t at = (((size_t) b * cc->OC + oc) * OH + oh) * OW + ow;
          ref[at] = (double) cc->in.scale * cc->w.scale * (double) sum + (cc->bias ? bias[oc] : 0.0);
          mag[at] = (double) cc->in.scale * cc->w.scale * (double) abs_sum + fabs (cc->bias ? bias[oc] : 0.0);
        }

  const int n_paths = supported_paths ();
  g_autoptr (NnicTensor) first = NULL;
  for (int p = 0; p < n_paths; p++) {
    ck_assert (nnic_qgemm_set_path (paths[p], &err));
    g_autoptr (NnicTensor) y = forward_copy (m, x);
    if (!first) {
      first = nnic_tensor_copy (y, &err);
      int64_t off_grid = 0;
      for (int64_t i = 0; i < y->numel; i++) {
        const double want = cc->has_out ? fake ((float) ref[i], &out) : ref[i];
        const double tol = cc->has_out ? out.scale * 1.001 : 2e-6 * mag[i] + 1e-6;
        ck_assert_msg (fabs (y->f32[i] - want) <= tol, "conv C%d OC%d K%dx%d G%d: y[%" G_GINT64_FORMAT "] = %.9g, want %.9g",
                       cc->C, cc->OC, cc->KH, cc->KW, cc->G, i, (double) y->f32[i], want);
        off_grid += cc->has_out && y->f32[i] != (float) want;
      }
      /* Only outputs within float rounding of a rounding boundary may differ. */
      ck_assert_msg (off_grid * 100 <= y->numel, "%" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " outputs off",
                     off_grid, y->numel);
    } else {
      ck_assert_msg (memcmp (y->data, first->data, nnic_tensor_nbytes (y)) == 0, "path %s differs from %s",
                     nnic_qgemm_path_name (paths[p]), nnic_qgemm_path_name (paths[0]));
    }
  }
  ck_assert (nnic_qgemm_set_path (nnic_qgemm_best_path (), &err));
  /* One sample alone (other buffers, one chunk) gives the same bits. */
  if (cc->B > 1) {
    g_autoptr (NnicTensor) x1 = nnic_tensor_new_f32 (&err, 4, (int64_t) 1, (int64_t) cc->C, (int64_t) cc->H,
                                                     (int64_t) cc->W);
    const int64_t last = (int64_t) (cc->B - 1) * x1->numel;
    memcpy (x1->f32, x->f32 + last, nnic_tensor_nbytes (x1));
    g_autoptr (NnicTensor) y1 = forward_copy (m, x1);
    ck_assert (memcmp (y1->f32, first->f32 + (int64_t) (cc->B - 1) * y1->numel, nnic_tensor_nbytes (y1)) == 0);
  }
}

START_TEST (test_conv_vs_integers)
{
  const ConvCase cases[] = {
    /* 3×3, padding 1, int8 weights, uint8 input with a zero point */
    { 2, 3, 7, 9, 5, 3, 3, 1, 1, 1, 1, 1, { 1, 1, 1, 1 }, TRUE, { 8, TRUE, 0.02f, 0 }, { 8, FALSE, 0.05f, 7 }, FALSE },
    /* 3×2, stride (2, 1), uneven padding, uint8 weights with a zero point, signed input */
    { 3, 4, 11, 6, 7, 3, 2, 2, 1, 1, 1, 1, { 1, 0, 2, 1 }, TRUE, { 8, FALSE, 0.01f, 131 }, { 8, TRUE, 0.1f, -3 }, FALSE },
    /* dilation 2, stride 2, padding 2, two groups, int8 weights with a zero point, output calibration */
    { 1, 6, 8, 8, 4, 3, 3, 2, 2, 2, 2, 2, { 2, 2, 2, 2 }, TRUE, { 8, TRUE, 0.03f, 5 }, { 8, FALSE, 0.02f, 128 }, TRUE },
    /* NNI's conv1: 1 channel, 5×5, no padding, no bias */
    { 5, 1, 28, 28, 20, 5, 5, 1, 1, 1, 1, 1, { 0, 0, 0, 0 }, FALSE, { 8, TRUE, 0.004f, 0 }, { 8, FALSE, 0.01f, 0 }, FALSE },
    /* wide K, odd OC, 4-bit weights, 6-bit input */
    { 4, 32, 10, 10, 33, 3, 3, 1, 1, 1, 1, 1, { 1, 1, 1, 1 }, TRUE, { 4, TRUE, 0.1f, -1 }, { 6, FALSE, 0.07f, 30 }, FALSE },
    /* enough rows for several chunks (threads) */
    { 16, 16, 16, 16, 24, 3, 3, 1, 1, 1, 1, 1, { 1, 1, 1, 1 }, TRUE, { 8, FALSE, 0.01f, 120 }, { 8, FALSE, 0.03f, 10 }, TRUE },
    /* 1×1, stride 3, depthwise-like groups */
    { 2, 8, 9, 7, 8, 1, 1, 3, 3, 1, 1, 8, { 0, 0, 0, 0 }, TRUE, { 8, TRUE, 0.05f, 0 }, { 8, FALSE, 0.05f, 0 }, FALSE },
  };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++)
    run_conv_case (&cases[i]);
}
END_TEST

/* ---- the linear layer ---- */

static void
run_linear_case (int B, int IN, int OUT, const QP *w, const QP *in, gboolean has_out)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_flat (IN);
  ck_assert (nnic_model_add_linear (m, "fc", NULL, &(NnicLinearSpec) { .in_features = IN, .out_features = OUT }, &err));
  g_autofree int *wq = g_new (int, IN * OUT);
  for (int i = 0; i < IN * OUT; i++)
    wq[i] = rnd_int (qmin (w), qmax (w));
  g_autofree float *bias = g_new (float, OUT);
  for (int i = 0; i < OUT; i++)
    bias[i] = rnd_float (-2, 2);
  QP out = { 8, TRUE, in->scale * w->scale * (float) IN, -5 };
  const int64_t wshape[2] = { OUT, IN };
  g_autofree char *dir = nnic_test_tmpdir ();
  write_layer (dir, "fc", "Linear", w, wq, 2, wshape, bias, OUT, in, has_out ? &out : NULL);
  ck_assert (nnic_model_quantize_int8 (m, dir, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 2, (int64_t) B, (int64_t) IN);
  g_autofree int *xq = g_new (int, B * IN);
  for (int i = 0; i < B * IN; i++) {
    xq[i] = rnd_int (qmin (in), qmax (in));
    x->f32[i] = (float) (xq[i] - in->zp) * in->scale;
  }
  g_autoptr (NnicTensor) first = NULL;
  const int n_paths = supported_paths ();
  for (int p = 0; p < n_paths; p++) {
    ck_assert (nnic_qgemm_set_path (paths[p], &err));
    g_autoptr (NnicTensor) y = forward_copy (m, x);
    if (first) {
      ck_assert_msg (memcmp (y->data, first->data, nnic_tensor_nbytes (y)) == 0, "path %s differs",
                     nnic_qgemm_path_name (paths[p]));
      continue;
    }
    first = nnic_tensor_copy (y, &err);
    for (int b = 0; b < B; b++)
      for (int o = 0; o < OUT; o++) {
        int64_t sum = 0, abs_sum = 0;
        for (int i = 0; i < IN; i++) {
          const int64_t t = (int64_t) (xq[b * IN + i] - in->zp) * (wq[o * IN + i] - w->zp);
          sum += t;
          abs_sum += t < 0 ? -t : t;
        }
        const double r = (double) in->scale * w->scale * (double) sum + bias[o];
        const double want = has_out ? fake ((float) r, &out) : r;
        const double tol = has_out ? out.scale * 1.001 : 2e-6 * ((double) in->scale * w->scale * abs_sum + fabs (bias[o])) + 1e-6;
        ck_assert_msg (fabs (y->f32[b * OUT + o] - want) <= tol, "linear %dx%d→%d: y[%d][%d] = %.9g, want %.9g", B, IN,
                       OUT, b, o, (double) y->f32[b * OUT + o], want);
      }
  }
  ck_assert (nnic_qgemm_set_path (nnic_qgemm_best_path (), &err));
}

START_TEST (test_linear_vs_integers)
{
  const QP w8 = { 8, TRUE, 0.01f, 0 }, wu8 = { 8, FALSE, 0.02f, 140 }, w3 = { 3, TRUE, 0.3f, 1 };
  const QP a8 = { 8, FALSE, 0.05f, 3 }, as8 = { 8, TRUE, 0.04f, 0 }, a2 = { 2, TRUE, 1.0f, 0 };
  run_linear_case (1, 37, 13, &w8, &a8, FALSE);
  run_linear_case (3, 37, 13, &wu8, &as8, TRUE);
  run_linear_case (64, 800, 500, &wu8, &a8, FALSE);
  run_linear_case (5, 129, 17, &w3, &a2, FALSE);
  run_linear_case (64, 33, 70, &w8, &as8, TRUE);
}
END_TEST

/* Without calibration the input is quantized from the batch's range: the
 * result is the float layer's within the input's rounding error. */
START_TEST (test_dynamic_input)
{
  GError *err = NULL;
  const int C = 5, H = 9, W = 9, OC = 6;
  g_autoptr (NnicModel) mi = nnic_model_new (C, H, W);
  g_autoptr (NnicModel) mf = nnic_model_new (C, H, W);
  const NnicConv2dSpec spec = { .in_channels = C, .out_channels = OC, .kernel_size = 3, .padding = 1 };
  ck_assert (nnic_model_add_conv2d (mi, "conv", NULL, &spec, &err));
  ck_assert (nnic_model_add_conv2d (mf, "conv", NULL, &spec, &err));
  const QP w = { 8, TRUE, 0.01f, 0 };
  const int n = OC * C * 9;
  g_autofree int *wq = g_new (int, n);
  for (int i = 0; i < n; i++)
    wq[i] = rnd_int (-127, 127);
  g_autofree float *bias = g_new0 (float, OC);
  const int64_t wshape[4] = { OC, C, 3, 3 };
  g_autofree char *dir = nnic_test_tmpdir ();
  write_layer (dir, "conv", "Conv2d", &w, wq, 4, wshape, bias, OC, NULL, NULL);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 3, (int64_t) C, (int64_t) H, (int64_t) W);
  /* A model that ran before (buffers for this batch made) is sized again. */
  g_autoptr (NnicTensor) y0 = forward_copy (mi, x);
  ck_assert (nnic_model_quantize_int8 (mi, dir, &err));
  ck_assert (nnic_model_fake_quantize (mf, dir, &err));
  NNIC_ASSERT_NO_ERROR (err);
  float lo = 0, hi = 0;
  for (int64_t i = 0; i < x->numel; i++) {
    x->f32[i] = rnd_float (-1.5f, 3.0f);
    lo = fminf (lo, x->f32[i]);
    hi = fmaxf (hi, x->f32[i]);
  }
  g_autoptr (NnicTensor) yi = forward_copy (mi, x);
  g_autoptr (NnicTensor) yf = forward_copy (mf, x);
  /* |error| ≤ step/2 · Σ|w| over the window, plus float rounding. */
  double sum_abs_w = 0;
  for (int o = 0; o < OC; o++) {
    double s = 0;
    for (int i = 0; i < C * 9; i++)
      s += fabs ((double) wq[o * C * 9 + i] * w.scale);
    sum_abs_w = fmax (sum_abs_w, s);
  }
  const double step = (hi - lo) / 255.0;
  for (int64_t i = 0; i < yi->numel; i++)
    ck_assert_msg (fabs (yi->f32[i] - yf->f32[i]) <= 0.5 * step * sum_abs_w * 1.01 + 1e-5, "y[%" G_GINT64_FORMAT
                   "]: integer %.7g, float %.7g", i, (double) yi->f32[i], (double) yf->f32[i]);
}
END_TEST

/* ---- compress → export → integer and fake-quantized models ---- */

/* Ten classes, each a fixed random image plus noise: nni_cnn learns them
 * in one short epoch, so its logits are far apart. */
static NnicDataset *
synthetic (int n, guint64 seed)
{
  GError *err = NULL;
  NnicDataset *d = g_new0 (NnicDataset, 1);
  d->images = nnic_tensor_new_f32 (&err, 4, (int64_t) n, (int64_t) 1, (int64_t) 28, (int64_t) 28);
  const int64_t lshape[1] = { n };
  d->labels = nnic_tensor_new (NNIC_DTYPE_I64, 1, lshape, &err);
  d->n_classes = 10;
  NnicRng r;
  nnic_rng_seed (&r, 1234);
  static float templates[10][784];
  for (int c = 0; c < 10; c++)
    for (int i = 0; i < 784; i++)
      templates[c][i] = (float) nnic_rng_uniform (&r) * 2.0f - 1.0f;
  nnic_rng_seed (&r, seed);
  for (int s = 0; s < n; s++) {
    const int c = (int) nnic_rng_below (&r, 10);
    d->labels->i64[s] = c;
    for (int i = 0; i < 784; i++)
      d->images->f32[s * 784 + i] = templates[c][i] + 0.8f * ((float) nnic_rng_uniform (&r) - 0.5f);
  }
  return d;
}

static NnicModel *
nni_cnn (void)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  return m;
}

static void
train (NnicModel *m, NnicOptimizer *opt, const NnicDataset *d)
{
  GError *err = NULL;
  g_autoptr (NnicLoader) loader = nnic_loader_new (d, 64, TRUE, 0, &err);
  for (guint e = 0; e < 2; e++)
    ck_assert (nnic_train_epoch (m, opt, loader, e, 2, NULL, NULL, NULL, &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_set_training (m, FALSE);
  double acc;
  ck_assert (nnic_evaluate (m, d, 256, &acc, NULL, &err));
  printf ("test_qinfer: trained to %.4f on the training set\n", acc);
}

/* A model built the usual way from DIR/model.safetensors. */
static NnicModel *
load_export (const char *dir)
{
  GError *err = NULL;
  NnicModel *m = nni_cnn ();
  g_autofree char *path = g_build_filename (dir, "model.safetensors", NULL);
  ck_assert (nnic_model_load (m, path, &err));
  NNIC_ASSERT_NO_ERROR (err);
  return m;
}

static int
argmax (const float *v, int n)
{
  int best = 0;
  for (int i = 1; i < n; i++)
    if (v[i] > v[best])
      best = i;
  return best;
}

/* The integer model against the fake-quantized one on a batch: close
 * logits, and the same class for at least 99% of the samples. */
static void
compare_models (NnicModel *mi, NnicModel *mf, const NnicTensor *x, double rel_tol)
{
  g_autoptr (NnicTensor) yi = forward_copy (mi, x);
  g_autoptr (NnicTensor) yf = forward_copy (mf, x);
  const int B = (int) yi->shape[0], K = (int) yi->shape[1];
  double range = 0, worst = 0;
  int agree = 0;
  for (int64_t i = 0; i < yf->numel; i++)
    range = fmax (range, fabs (yf->f32[i]));
  for (int64_t i = 0; i < yf->numel; i++)
    worst = fmax (worst, fabs (yi->f32[i] - yf->f32[i]));
  for (int b = 0; b < B; b++)
    agree += argmax (yi->f32 + b * K, K) == argmax (yf->f32 + b * K, K);
  printf ("test_qinfer: integer vs fake-quantized: max |diff| %.4g of logits up to %.4g; argmax %d/%d\n", worst, range,
          agree, B);
  fflush (stdout);
  ck_assert_msg (worst <= rel_tol * range, "max |diff| %g > %g · %g", worst, rel_tol, range);
  ck_assert_msg (agree * 100 >= B * 99, "argmax agrees on %d of %d", agree, B);
}

static NnicTensor *
batch_of (const NnicDataset *d, int n)
{
  GError *err = NULL;
  NnicTensor *x = nnic_tensor_new_f32 (&err, 4, (int64_t) n, (int64_t) 1, (int64_t) 28, (int64_t) 28);
  memcpy (x->f32, d->images->f32, nnic_tensor_nbytes (x));
  return x;
}

static JsonObject *
read_json (const char *path)
{
  g_autoptr (JsonParser) p = json_parser_new ();
  GError *err = NULL;
  ck_assert_msg (json_parser_load_from_file (p, path, &err), "%s", err ? err->message : "");
  return json_object_ref (json_node_get_object (json_parser_get_root (p)));
}

START_TEST (test_naive_export_and_int8)
{
  GError *err = NULL;
  g_autoptr (NnicDataset) data = synthetic (1024, 1);
  g_autoptr (NnicModel) m = nni_cnn ();
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.05, .momentum = 0.9 }, &err);
  train (m, opt, data);
  g_autoptr (NnicConfigList) cl = nnic_test_config ("[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\", \"Linear\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "naive", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  g_autoptr (NnicDataset) test = synthetic (256, 2);
  g_autoptr (NnicTensor) x = batch_of (test, 256);
  g_autoptr (NnicTensor) y_comp = forward_copy (m, x);

  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *model_path = g_build_filename (dir, "model.safetensors", NULL);
  ck_assert (nnic_compressor_export (c, model_path, NULL, &err));
  ck_assert (nnic_compressor_export_quantized (c, dir, &err));
  NNIC_ASSERT_NO_ERROR (err);

  /* quantized.safetensors: int8 weights giving back the fake-quantized
   * weights exactly, scalar scale and zero point, the float bias. */
  g_autofree char *st = g_build_filename (dir, "quantized.safetensors", NULL);
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (st, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_str_eq (g_hash_table_lookup (d->metadata, "format"), "nnic-quantized");
  ck_assert_str_eq (g_hash_table_lookup (d->metadata, "algorithm"), "naive");
  ck_assert_uint_eq (nnic_tensor_dict_len (d), 4 * 4);
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    const char *name = nnic_wrapper_name (w);
    g_autofree char *qn = g_strconcat (name, ".weight_int8", NULL);
    g_autofree char *sn = g_strconcat (name, ".weight_scale", NULL);
    g_autofree char *zn = g_strconcat (name, ".weight_zero_point", NULL);
    g_autofree char *bn = g_strconcat (name, ".bias", NULL);
    NnicTensor *q = nnic_tensor_dict_get (d, qn), *s = nnic_tensor_dict_get (d, sn), *z = nnic_tensor_dict_get (d, zn),
               *b = nnic_tensor_dict_get (d, bn);
    ck_assert (q && s && z && b);
    ck_assert_int_eq (q->dtype, NNIC_DTYPE_I8);
    ck_assert (nnic_tensor_same_shape (q, nnic_wrapper_weight (w)));
    ck_assert_int_eq (s->dtype, NNIC_DTYPE_F32);
    ck_assert_int_eq (s->ndim, 0);
    ck_assert_int_eq (z->dtype, NNIC_DTYPE_I32);
    ck_assert_int_eq (z->i32[0], 0);
    double scale;
    ck_assert (nnic_wrapper_get_attribute_double (w, "weight_scale", &scale));
    ck_assert (s->f32[0] == (float) scale);
    int64_t nonzero = 0;
    for (int64_t k = 0; k < q->numel; k++) {
      ck_assert_msg ((float) q->i8[k] * s->f32[0] == w->qweight->f32[k], "%s[%" G_GINT64_FORMAT "]: %d · %g != %g", name,
                     k, q->i8[k], (double) s->f32[0], (double) w->qweight->f32[k]);
      nonzero += q->i8[k] != 0;
    }
    ck_assert (nonzero > q->numel / 2);
    ck_assert (memcmp (b->f32, nnic_wrapper_bias (w)->f32, nnic_tensor_nbytes (b)) == 0);
  }

  /* calibration.json, with NNI's keys. */
  g_autofree char *cal_path = g_build_filename (dir, "calibration.json", NULL);
  g_autoptr (JsonObject) cal = read_json (cal_path);
  ck_assert_uint_eq (json_object_get_size (cal), 4);
  JsonObject *fc1 = json_object_get_object_member (cal, "fc1");
  ck_assert_str_eq (json_object_get_string_member (fc1, "type"), "Linear");
  ck_assert_int_eq (json_object_get_int_member (fc1, "weight_bit"), 8);
  ck_assert (!json_object_has_member (fc1, "tracked_min_input"));
  JsonObject *fw = json_object_get_object_member (fc1, "weight");
  ck_assert_int_eq (json_object_get_int_member (fw, "bits"), 8);
  ck_assert (json_object_get_boolean_member (fw, "signed"));
  double s_fc1;
  nnic_wrapper_get_attribute_double (nnic_compressor_find_wrapper (c, "fc1"), "weight_scale", &s_fc1);
  ck_assert ((float) json_object_get_double_member (fw, "scale") == (float) s_fc1);

  /* Sizes: 8-bit weights are 4× smaller. */
  g_autoptr (JsonObject) rep = nnic_compressor_quant_report (c);
  JsonArray *rows = json_object_get_array_member (rep, "layers");
  ck_assert_uint_eq (json_array_get_length (rows), 4);
  for (guint i = 0; i < 4; i++) {
    JsonObject *o = json_array_get_object_element (rows, i);
    const gint64 n = json_object_get_int_member (o, "weights");
    ck_assert_int_eq (json_object_get_int_member (o, "bytes_float32"), 4 * n);
    ck_assert_int_eq (json_object_get_int_member (o, "bytes_packed"), n);
    ck_assert_int_eq (json_object_get_int_member (o, "bytes_int"), n);
    ck_assert_int_eq (json_object_get_int_member (o, "weight_bits"), 8);
    ck_assert (json_object_get_null_member (o, "output_bits"));
  }
  ck_assert (json_object_get_double_member (rep, "ratio") == 4.0);
  ck_assert_int_eq (json_object_get_int_member (rep, "bytes_float32"), 4 * 430500);

  /* The fake-quantized model is the compressor's, bit for bit (weights
   * only: no activation to quantize). */
  g_autoptr (NnicModel) mf = load_export (dir);
  ck_assert (nnic_model_fake_quantize (mf, dir, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) y_fake = forward_copy (mf, x);
  ck_assert (memcmp (y_fake->data, y_comp->data, nnic_tensor_nbytes (y_comp)) == 0);

  /* The integer model: every layer on int8, inputs quantized per batch. */
  g_autoptr (NnicModel) mi = load_export (dir);
  ck_assert (nnic_model_quantize_int8 (mi, dir, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_auto (GStrv) layers = nnic_model_int8_layers (mi);
  g_autofree char *joined = g_strjoinv (",", layers);
  ck_assert_str_eq (joined, "conv1,conv2,fc1,fc2");
  compare_models (mi, mf, x, 0.05);

  /* Evaluation only. */
  const NnicTensor *y = nnic_model_forward (mi, x, &err);
  g_autoptr (NnicTensor) g = nnic_tensor_new_like (y, &err);
  ck_assert (!nnic_model_backward (mi, g, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_UNSUPPORTED, "forward only");
  g_clear_error (&err);
  ck_assert (!nnic_model_quantize_int8 (mi, dir, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "already runs integer inference");
  g_clear_error (&err);
}
END_TEST

/* qat: uint8 weights with zero points (shifted to int8 for the GEMM) and
 * the ReLU6 outputs calibrated (NNI's QAT example): the layers after them
 * take their input on that grid, exactly. */
START_TEST (test_qat_export_and_int8)
{
  GError *err = NULL;
  g_autoptr (NnicDataset) data = synthetic (1024, 3);
  g_autoptr (NnicModel) m = nni_cnn ();
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.05, .momentum = 0.9 }, &err);
  g_autoptr (NnicConfigList) cl = nnic_test_config (
      "[{\"quant_types\": [\"weight\"], \"quant_bits\": {\"weight\": 8}, \"op_types\": [\"Conv2d\", \"Linear\"]},"
      " {\"quant_types\": [\"output\"], \"quant_bits\": 8, \"op_types\": [\"ReLU6\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "qat", cl, opt, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  train (m, opt, data);
  g_autoptr (NnicDataset) test = synthetic (256, 4);
  g_autoptr (NnicTensor) x = batch_of (test, 256);
  g_autoptr (NnicTensor) y_comp = forward_copy (m, x); /* eval: what the export holds */

  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *model_path = g_build_filename (dir, "model.safetensors", NULL);
  ck_assert (nnic_compressor_export (c, model_path, NULL, &err));
  ck_assert (nnic_compressor_export_quantized (c, dir, &err));
  NNIC_ASSERT_NO_ERROR (err);

  g_autofree char *st = g_build_filename (dir, "quantized.safetensors", NULL);
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (st, &err);
  NnicWrapper *w = nnic_compressor_find_wrapper (c, "conv2");
  NnicTensor *q = nnic_tensor_dict_get (d, "conv2.weight_uint8");
  NnicTensor *z = nnic_tensor_dict_get (d, "conv2.weight_zero_point");
  NnicTensor *s = nnic_tensor_dict_get (d, "conv2.weight_scale");
  ck_assert (q && z && s);
  for (int64_t k = 0; k < q->numel; k++)
    ck_assert ((float) (q->u8[k] - z->i32[0]) * s->f32[0] == w->qweight->f32[k]);

  g_autofree char *cal_path = g_build_filename (dir, "calibration.json", NULL);
  g_autoptr (JsonObject) cal = read_json (cal_path);
  ck_assert_uint_eq (json_object_get_size (cal), 7);
  JsonObject *relu1 = json_object_get_object_member (cal, "relu1");
  double tmin, tmax;
  ck_assert (nnic_wrapper_get_attribute_double (nnic_compressor_find_wrapper (c, "relu1"), "output_min", &tmin));
  ck_assert (nnic_wrapper_get_attribute_double (nnic_compressor_find_wrapper (c, "relu1"), "output_max", &tmax));
  ck_assert (json_object_get_double_member (relu1, "tracked_min_output") == tmin);
  ck_assert (json_object_get_double_member (relu1, "tracked_max_output") == tmax);
  ck_assert_int_eq (json_object_get_int_member (relu1, "activation_bit"), 8);
  ck_assert (!json_object_get_boolean_member (json_object_get_object_member (relu1, "output"), "signed"));

  g_autoptr (NnicModel) mf = load_export (dir);
  ck_assert (nnic_model_fake_quantize (mf, dir, &err));
  g_autoptr (NnicTensor) y_fake = forward_copy (mf, x);
  ck_assert (memcmp (y_fake->data, y_comp->data, nnic_tensor_nbytes (y_comp)) == 0);

  g_autoptr (NnicModel) mi = load_export (dir);
  ck_assert (nnic_model_quantize_int8 (mi, dir, &err));
  NNIC_ASSERT_NO_ERROR (err);
  compare_models (mi, mf, x, 0.05);
}
END_TEST

/* bnn on its network: ±1 weights (a signed 2-bit grid, 1 bit of
 * information), binarised Hardtanh outputs feeding the integer layers
 * (signed activations: uint8 with zero point 128), float first and last
 * layers. */
START_TEST (test_bnn_export_and_int8)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("bnn_mnist", 0, 0, 0, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicConfigList) cl = nnic_test_config (
      "[{\"quant_types\": [\"weight\"], \"quant_bits\": 1, \"op_types\": [\"Conv2d\", \"Linear\"],"
      "  \"op_names\": [\"features.3\", \"classifier.0\"]},"
      " {\"quant_types\": [\"output\"], \"quant_bits\": 1, \"op_types\": [\"Hardtanh\"],"
      "  \"op_names\": [\"features.2\", \"features.6\", \"classifier.2\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "bnn", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  nnic_model_set_training (m, FALSE);
  g_autoptr (NnicDataset) test = synthetic (128, 5);
  g_autoptr (NnicTensor) x = batch_of (test, 128);
  g_autoptr (NnicTensor) y_comp = forward_copy (m, x);
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *model_path = g_build_filename (dir, "model.safetensors", NULL);
  ck_assert (nnic_compressor_export (c, model_path, NULL, &err));
  ck_assert (nnic_compressor_export_quantized (c, dir, &err));
  NNIC_ASSERT_NO_ERROR (err);

  g_autofree char *st = g_build_filename (dir, "quantized.safetensors", NULL);
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (st, &err);
  NnicTensor *q = nnic_tensor_dict_get (d, "classifier.0.weight_int8");
  ck_assert (q != NULL);
  for (int64_t k = 0; k < q->numel; k++)
    ck_assert (q->i8[k] == 1 || q->i8[k] == -1);
  ck_assert (nnic_tensor_dict_get (d, "classifier.0.bias") == NULL); /* bias-free */
  g_autofree char *cal_path = g_build_filename (dir, "calibration.json", NULL);
  g_autoptr (JsonObject) cal = read_json (cal_path);
  JsonObject *h = json_object_get_object_member (cal, "features.2");
  ck_assert_int_eq (json_object_get_int_member (h, "activation_bit"), 1);
  ck_assert (json_object_get_boolean_member (json_object_get_object_member (h, "output"), "binary"));
  g_autoptr (JsonObject) rep = nnic_compressor_quant_report (c);
  JsonArray *rows = json_object_get_array_member (rep, "layers");
  for (guint i = 0; i < json_array_get_length (rows); i++) {
    JsonObject *o = json_array_get_object_element (rows, i);
    if (json_object_get_null_member (o, "weight_bits"))
      continue;
    ck_assert_int_eq (json_object_get_int_member (o, "weight_bits"), 1);
    ck_assert_int_eq (json_object_get_int_member (o, "bytes_packed") * 32, json_object_get_int_member (o, "bytes_float32"));
  }

  g_autoptr (NnicModel) mf = nnic_model_new_builtin ("bnn_mnist", 0, 0, 0, 0, &err);
  ck_assert (nnic_model_load (mf, model_path, &err) && nnic_model_fake_quantize (mf, dir, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) y_fake = forward_copy (mf, x);
  ck_assert (memcmp (y_fake->data, y_comp->data, nnic_tensor_nbytes (y_comp)) == 0);
  g_autoptr (NnicModel) mi = nnic_model_new_builtin ("bnn_mnist", 0, 0, 0, 0, &err);
  ck_assert (nnic_model_load (mi, model_path, &err) && nnic_model_quantize_int8 (mi, dir, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_auto (GStrv) layers = nnic_model_int8_layers (mi);
  g_autofree char *joined = g_strjoinv (",", layers);
  ck_assert_str_eq (joined, "features.3,classifier.0");
  /* Their inputs are ±1 on either side: the integer layers compute the
   * float ones' sums exactly. */
  compare_models (mi, mf, x, 1e-4);
}
END_TEST

/* ---- errors ---- */

START_TEST (test_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nni_cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config ("[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\", \"Linear\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "naive", cl, NULL, NULL, &err);
  ck_assert (nnic_compressor_compress (c, &err));
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *model_path = g_build_filename (dir, "model.safetensors", NULL);
  ck_assert (nnic_compressor_export (c, model_path, NULL, &err));
  ck_assert (nnic_compressor_export_quantized (c, dir, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autofree char *st = g_build_filename (dir, "quantized.safetensors", NULL);
  g_autofree char *cal = g_build_filename (dir, "calibration.json", NULL);

  /* Missing files. */
  g_autofree char *nowhere = g_build_filename (dir, "nowhere", NULL);
  g_autoptr (NnicModel) m1 = nni_cnn ();
  ck_assert (!nnic_model_quantize_int8 (m1, nowhere, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, "nowhere/calibration.json");
  g_clear_error (&err);
  g_autofree char *half = nnic_test_tmpdir ();
  g_autofree char *half_cal = g_build_filename (half, "calibration.json", NULL);
  g_autofree char *text = NULL;
  gsize len;
  ck_assert (g_file_get_contents (cal, &text, &len, NULL));
  ck_assert (g_file_set_contents (half_cal, text, (gssize) len, NULL));
  ck_assert (!nnic_model_fake_quantize (m1, half, &err));
  ck_assert_msg (err && strstr (err->message, "quantized.safetensors"), "%s", err ? err->message : "");
  g_clear_error (&err);

  /* A layer the model lacks: the model has fc9 where the file has fc2. */
  g_autoptr (NnicModel) m2 = nnic_model_new (1, 28, 28);
  ck_assert (nnic_model_add_conv2d (m2, "conv1", NULL, &(NnicConv2dSpec) { .in_channels = 1, .out_channels = 20, .kernel_size = 5 }, &err));
  ck_assert (nnic_model_add_relu6 (m2, "relu1", NULL, &err));
  ck_assert (nnic_model_add_maxpool2d (m2, "pool1", NULL, &(NnicPool2dSpec) { .kernel_size = 2 }, &err));
  ck_assert (nnic_model_add_conv2d (m2, "conv2", NULL, &(NnicConv2dSpec) { .in_channels = 20, .out_channels = 50, .kernel_size = 5 }, &err));
  ck_assert (nnic_model_add_maxpool2d (m2, "pool2", NULL, &(NnicPool2dSpec) { .kernel_size = 2 }, &err));
  ck_assert (nnic_model_add_flatten (m2, "flatten", NULL, &err));
  ck_assert (nnic_model_add_linear (m2, "fc1", NULL, &(NnicLinearSpec) { .in_features = 800, .out_features = 500 }, &err));
  ck_assert (nnic_model_add_linear (m2, "fc9", NULL, &(NnicLinearSpec) { .in_features = 500, .out_features = 10 }, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (!nnic_model_quantize_int8 (m2, dir, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "calibration.json");
  ck_assert_msg (strstr (err->message, "'fc2'") && strstr (err->message, "fc9"), "%s", err->message);
  g_clear_error (&err);
  g_auto (GStrv) none = nnic_model_int8_layers (m2);
  ck_assert_uint_eq (g_strv_length (none), 0);

  /* An entry of a layer the model lacks in quantized.safetensors. */
  g_autofree char *extra = nnic_test_tmpdir ();
  g_autofree char *extra_cal = g_build_filename (extra, "calibration.json", NULL);
  g_autofree char *extra_st = g_build_filename (extra, "quantized.safetensors", NULL);
  ck_assert (g_file_set_contents (extra_cal, text, (gssize) len, NULL));
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (st, &err);
  const int64_t one[1] = { 1 };
  ck_assert (nnic_tensor_dict_add (d, "conv9.weight_int8", nnic_tensor_new (NNIC_DTYPE_I8, 1, one, NULL), &err));
  ck_assert (nnic_safetensors_save (extra_st, d, &err));
  g_autoptr (NnicModel) m3 = nni_cnn ();
  ck_assert (!nnic_model_quantize_int8 (m3, extra, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "quantized.safetensors");
  ck_assert_msg (strstr (err->message, "'conv9'"), "%s", err->message);
  g_clear_error (&err);

  /* A shape that does not fit: nni_cnn with 5 classes. */
  g_autoptr (NnicModel) m4 = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 5, &err);
  ck_assert (!nnic_model_quantize_int8 (m4, dir, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "quantized.safetensors");
  ck_assert_msg (strstr (err->message, "fc2.weight_int8") && strstr (err->message, "[5, 500]"), "%s", err->message);
  g_clear_error (&err);
  /* Nothing changed: the model still runs in float and trains. */
  g_auto (GStrv) none4 = nnic_model_int8_layers (m4);
  ck_assert_uint_eq (g_strv_length (none4), 0);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 2, (int64_t) 1, (int64_t) 28, (int64_t) 28);
  const NnicTensor *y = nnic_model_forward (m4, x, &err);
  g_autoptr (NnicTensor) g = nnic_tensor_new_like (y, &err);
  ck_assert (nnic_model_backward (m4, g, &err));
  NNIC_ASSERT_NO_ERROR (err);

  /* A calibration that names a layer of another type. */
  g_autofree char *typo = nnic_test_tmpdir ();
  g_autofree char *typo_cal = g_build_filename (typo, "calibration.json", NULL);
  const char *bad = "{\"fc1\": {\"type\": \"Conv2d\"}}";
  ck_assert (g_file_set_contents (typo_cal, bad, -1, NULL));
  ck_assert (!nnic_model_fake_quantize (m3, typo, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "fc1 is a Conv2d there, but a Linear in the model");
  g_clear_error (&err);

  /* An integer outside its bits. */
  const char *four = "{\"fc2\": {\"type\": \"Linear\", \"weight\": {\"bits\": 4, \"signed\": true, \"scale\": 0.1, \"zero_point\": 0}}}";
  g_autofree char *four_dir = nnic_test_tmpdir ();
  g_autofree char *four_cal = g_build_filename (four_dir, "calibration.json", NULL);
  g_autofree char *four_st = g_build_filename (four_dir, "quantized.safetensors", NULL);
  ck_assert (g_file_set_contents (four_cal, four, -1, NULL));
  g_autoptr (NnicTensorDict) d4 = nnic_tensor_dict_new ();
  const int64_t wshape[2] = { 10, 500 };
  NnicTensor *q = nnic_tensor_new (NNIC_DTYPE_I8, 2, wshape, NULL);
  q->i8[17] = 9;
  ck_assert (nnic_tensor_dict_add (d4, "fc2.weight_int8", q, &err));
  ck_assert (nnic_safetensors_save (four_st, d4, &err));
  ck_assert (!nnic_model_quantize_int8 (m3, four_dir, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "fc2.weight_int8[17] = 9 is outside the 4-bit range [-8, 7]");
  g_clear_error (&err);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("qinfer");
  TCase *tc = tcase_create ("qinfer");
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_conv_vs_integers);
  tcase_add_test (tc, test_linear_vs_integers);
  tcase_add_test (tc, test_dynamic_input);
  tcase_add_test (tc, test_naive_export_and_int8);
  tcase_add_test (tc, test_qat_export_and_int8);
  tcase_add_test (tc, test_bnn_export_and_int8);
  tcase_add_test (tc, test_errors);
  suite_add_tcase (s, tc);
  return nnic_test_run (s);
}
