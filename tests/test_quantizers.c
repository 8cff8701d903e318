/* The quantizer plugins qat, dorefa, bnn and lsq against NNI's formulas:
 * forward on hand-picked tensors (through a one-layer model fed the
 * identity, whose output is the fake-quantized weight), backward through
 * the model's gradients, QAT's EMA and quant_start_step, LSQ's learned
 * scale, training nni_cnn through the compressor, config errors. */
#include "testutil.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* ---- helpers ---- */

/* input (n_in features) → Linear "fc" (n_in → n_out), bias 0. */
static NnicModel *
linear_model (int n_in, int n_out, const float *weight)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new_flat (n_in);
  ck_assert (nnic_model_add_linear (m, "fc", NULL, &(NnicLinearSpec) { .in_features = n_in, .out_features = n_out },
                                    &err));
  NNIC_ASSERT_NO_ERROR (err);
  NnicParam *w = nnic_model_find_param (m, "fc.weight", &err);
  NnicParam *b = nnic_model_find_param (m, "fc.bias", &err);
  NNIC_ASSERT_NO_ERROR (err);
  for (int64_t i = 0; i < w->value->numel; i++)
    w->value->f32[i] = weight ? weight[i] : (i / n_in == i % n_in ? 1.0f : 0.0f);
  nnic_tensor_zero (b->value);
  return m;
}

static NnicTensor *
identity (int n)
{
  GError *err = NULL;
  NnicTensor *x = nnic_tensor_new_f32 (&err, 2, (int64_t) n, (int64_t) n);
  for (int i = 0; i < n; i++)
    x->f32[i * n + i] = 1.0f;
  return x;
}

static NnicTensor *
batch (int rows, int cols, const float *v)
{
  GError *err = NULL;
  NnicTensor *x = nnic_tensor_new_f32 (&err, 2, (int64_t) rows, (int64_t) cols);
  memcpy (x->f32, v, sizeof (float) * (size_t) (rows * cols));
  return x;
}

/* The weight the layer used in forward, [out][in] (the output for the
 * identity is its transpose). */
static void
weight_seen (NnicModel *m, int n_in, int n_out, float *wq)
{
  GError *err = NULL;
  g_autoptr (NnicTensor) x = identity (n_in);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  for (int i = 0; i < n_in; i++)
    for (int o = 0; o < n_out; o++)
      wq[o * n_in + i] = y->f32[i * n_out + o];
}

static NnicCompressor *
make (NnicModel *m, const char *algorithm, const char *json, NnicOptimizer *opt)
{
  GError *err = NULL;
  g_autoptr (NnicConfigList) cl = nnic_test_config (json);
  NnicCompressor *c = nnic_compressor_new (m, algorithm, cl, opt, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  NNIC_ASSERT_NO_ERROR (err);
  return c;
}

static double
attr (NnicWrapper *w, const char *name)
{
  double v = NAN;
  ck_assert_msg (nnic_wrapper_get_attribute_double (w, name, &v), "no attribute %s on %s", name,
                 nnic_wrapper_name (w));
  return v;
}

/* (q - zero_point) * scale reproduces v exactly in float32, with q an
 * integer of the published width and signedness. */
static void
assert_representable (NnicWrapper *w, const char *t, const float *v, int64_t n)
{
  g_autofree char *sn = g_strconcat (t, "_scale", NULL), *zn = g_strconcat (t, "_zero_point", NULL);
  g_autofree char *bn = g_strconcat (t, "_bits", NULL), *gn = g_strconcat (t, "_signed", NULL);
  const double scale = attr (w, sn), zp = attr (w, zn), bits = attr (w, bn), is_signed = attr (w, gn);
  ck_assert (scale > 0 && bits >= 1 && bits <= 9 && zp == rint (zp));
  const double lo = is_signed ? -ldexp (1, (int) bits - 1) : 0;
  const double hi = is_signed ? ldexp (1, (int) bits - 1) - 1 : ldexp (1, (int) bits) - 1;
  ck_assert (zp >= lo && zp <= hi);
  for (int64_t i = 0; i < n; i++) {
    const double q = rint ((double) v[i] / scale) + zp;
    ck_assert_msg (q >= lo && q <= hi, "%s[%" G_GINT64_FORMAT "] = %g: q = %g outside [%g, %g]", t, i, v[i], q, lo, hi);
    const float back = (float) ((float) (q - zp) * (float) scale);
    ck_assert_msg (back == v[i], "%s[%" G_GINT64_FORMAT "] = %.9g, but (q - zp) * scale = %.9g", t, i, v[i], back);
  }
}

/* The gradient reaching fc.weight (rows [out][in]) and the model's input
 * for dL/dy = g ([batch][out]) after a forward of x. */
static void
backward (NnicModel *m, const NnicTensor *x, const float *g)
{
  GError *err = NULL;
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) gy = nnic_tensor_new_like (y, &err);
  memcpy (gy->f32, g, nnic_tensor_nbytes (gy));
  nnic_model_zero_grad (m);
  ck_assert (nnic_model_backward (m, gy, &err));
  NNIC_ASSERT_NO_ERROR (err);
}

/* ---- qat ---- */

/* NNI v1.9's update_quantization_param / _quantize / _dequantize, line by
 * line in float32 (torch.round: half to even). */
static void
nni_qat_params (int bits, float rmin, float rmax, float *scale, float *zp)
{
  rmin = fminf (rmin, 0.0f);
  rmax = fmaxf (rmax, 0.0f);
  float qmin = 0, qmax = (float) ((1 << bits) - 1);
  *scale = (rmax - rmin) / (qmax - qmin);
  float initial = qmin - rmin / *scale;
  *zp = initial < qmin ? qmin : initial > qmax ? qmax : nearbyintf (initial);
}

static float
nni_qat_fake (int bits, float scale, float zp, float x)
{
  float t = zp + x / scale, qmax = (float) ((1 << bits) - 1);
  t = fminf (fmaxf (t, 0.0f), qmax);
  return scale * (nearbyintf (t) - zp);
}

START_TEST (test_qat_weight)
{
  /* fc 4 → 3: 12 hand-picked weights. */
  static const float w[12] = { -1.0f, -0.5f, 0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.5f, 2.0f, -0.3f, 0.1f, 0.7f };
  for (int bits = 1; bits <= 8; bits++) {
    g_autoptr (NnicModel) m = linear_model (4, 3, w);
    g_autofree char *json = g_strdup_printf (
        "[{\"quant_types\": [\"weight\"], \"quant_bits\": %d, \"op_names\": [\"fc\"]}]", bits);
    g_autoptr (NnicCompressor) c = make (m, "qat", json, NULL);
    float wq[12];
    weight_seen (m, 4, 3, wq);
    float scale, zp;
    nni_qat_params (bits, -1.0f, 2.0f, &scale, &zp);
    NnicWrapper *wr = nnic_compressor_find_wrapper (c, "fc");
    ck_assert_double_eq (attr (wr, "weight_scale"), scale);
    ck_assert_double_eq (attr (wr, "weight_zero_point"), zp);
    ck_assert_double_eq (attr (wr, "weight_bits"), bits);
    ck_assert_double_eq (attr (wr, "weight_signed"), 0);
    ck_assert_double_eq (attr (wr, "weight_min"), -1.0);
    ck_assert_double_eq (attr (wr, "weight_max"), 2.0);
    for (int i = 0; i < 12; i++)
      ck_assert_msg (wq[i] == nni_qat_fake (bits, scale, zp, w[i]), "bits %d, w %g: %.9g, NNI %.9g", bits, w[i],
                     wq[i], nni_qat_fake (bits, scale, zp, w[i]));
    assert_representable (wr, "weight", wq, 12);
  }

  /* By hand, 2 bits, range [-1, 3]: scale 4/3, zero point round(0.75) = 1;
   * 3 → 1 + 2.25, clamped to 3. */
  {
    static const float w4[4] = { -1.0f, 0.0f, 0.5f, 3.0f };
    g_autoptr (NnicModel) m = linear_model (2, 2, w4);
    g_autoptr (NnicCompressor) c = make (
        m, "qat", "[{\"quant_types\": [\"weight\"], \"quant_bits\": {\"weight\": 2}, \"op_names\": [\"fc\"]}]", NULL);
    float wq[4];
    weight_seen (m, 2, 2, wq);
    const float s = 4.0f / 3.0f;
    ck_assert_float_eq (wq[0], -s);
    ck_assert_float_eq (wq[1], 0.0f);
    ck_assert_float_eq (wq[2], 0.0f);
    ck_assert_float_eq (wq[3], 2 * s);
    ck_assert_double_eq (attr (nnic_compressor_find_wrapper (c, "fc"), "weight_zero_point"), 1);
  }
  /* Ties round to even: 2 bits over [0, 3] is scale 1, zero point 0. */
  {
    static const float w6[6] = { 0.0f, 0.5f, 1.5f, 2.5f, 3.0f, 1.0f };
    g_autoptr (NnicModel) m = linear_model (3, 2, w6);
    g_autoptr (NnicCompressor) c = make (
        m, "qat", "[{\"quant_types\": [\"weight\"], \"quant_bits\": 2, \"op_names\": [\"fc\"]}]", NULL);
    float wq[6];
    weight_seen (m, 3, 2, wq);
    static const float want[6] = { 0, 0, 2, 2, 3, 1 };
    for (int i = 0; i < 6; i++)
      ck_assert_float_eq (wq[i], want[i]);
  }
  /* All zero: NNI's 0/0 is NaN; nnic keeps zeros, scale FLT_EPSILON. */
  {
    static const float z[4] = { 0 };
    g_autoptr (NnicModel) m = linear_model (2, 2, z);
    g_autoptr (NnicCompressor) c = make (
        m, "qat", "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_names\": [\"fc\"]}]", NULL);
    float wq[4];
    weight_seen (m, 2, 2, wq);
    for (int i = 0; i < 4; i++)
      ck_assert_float_eq (wq[i], 0.0f);
    NnicWrapper *wr = nnic_compressor_find_wrapper (c, "fc");
    ck_assert_double_eq (attr (wr, "weight_scale"), FLT_EPSILON);
    ck_assert_double_eq (attr (wr, "weight_zero_point"), 0);
    assert_representable (wr, "weight", wq, 4);
  }
  /* Constant tensors: the range is widened to 0, so ±c is an end point of
   * the grid and comes back (zero point 0 for c > 0, 2^bits - 1 for c < 0). */
  for (int sign = -1; sign <= 1; sign += 2) {
    const float c0 = 0.3f * (float) sign;
    const float cw[4] = { c0, c0, c0, c0 };
    g_autoptr (NnicModel) m = linear_model (2, 2, cw);
    g_autoptr (NnicCompressor) c = make (
        m, "qat", "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_names\": [\"fc\"]}]", NULL);
    float wq[4];
    weight_seen (m, 2, 2, wq);
    NnicWrapper *wr = nnic_compressor_find_wrapper (c, "fc");
    ck_assert_double_eq (attr (wr, "weight_zero_point"), sign > 0 ? 0 : 255);
    for (int i = 0; i < 4; i++)
      ck_assert_float_eq_tol (wq[i], c0, 1e-7);
    assert_representable (wr, "weight", wq, 4);
  }
}
END_TEST

/* The output of fc (weights the identity, so y = x) quantized with the
 * EMA range; quant_start_step 3 = NNI's steps counter (1 + optimizer
 * steps) reaching 3. */
START_TEST (test_qat_output_ema)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = linear_model (3, 3, NULL);
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.1 }, &err);
  g_autoptr (NnicCompressor) c = make (m, "qat",
                                       "[{\"quant_types\": [\"output\"], \"quant_bits\": {\"output\": 4}, "
                                       "\"quant_start_step\": 3, \"op_names\": [\"fc\"]}]",
                                       opt);
  NnicWrapper *wr = nnic_compressor_find_wrapper (c, "fc");
  nnic_model_set_training (m, TRUE);
  static const float xs[4][6] = {
    { 0.31f, -0.72f, 1.17f, 0.05f, 2.23f, -0.4f },
    { -1.5f, 0.2f, 0.9f, 3.1f, -0.05f, 0.6f },
    { 0.12f, -2.4f, 0.77f, 1.9f, 0.33f, -0.81f },
    { 2.6f, -0.3f, 0.01f, -1.2f, 0.4f, 1.33f },
  };
  /* Before the start step: nothing quantized or tracked. */
  for (int s = 0; s < 2; s++) {
    g_autoptr (NnicTensor) x = batch (2, 3, xs[s]);
    const NnicTensor *y = nnic_model_forward (m, x, &err);
    for (int i = 0; i < 6; i++)
      ck_assert_float_eq (y->f32[i], xs[s][i]);
    ck_assert (!nnic_wrapper_get_attribute_double (wr, "output_scale", NULL));
    ck_assert (!nnic_wrapper_get_attribute_double (wr, "output_tracked_min_biased", NULL));
    nnic_optimizer_step (opt);
  }
  /* From NNI step 3 on: update_ema with bias correction (in float32 as
   * NNI, and the same in double within float precision). */
  float bmin = 0, bmax = 0;
  double dmin = 0, dmax = 0;
  for (int s = 2; s < 4; s++) {
    const int step = s + 1;
    g_autoptr (NnicTensor) x = batch (2, 3, xs[s]);
    g_autoptr (NnicTensor) y = nnic_tensor_copy (nnic_model_forward (m, x, &err), &err);
    float cmin = xs[s][0], cmax = xs[s][0];
    for (int i = 1; i < 6; i++) {
      cmin = fminf (cmin, xs[s][i]);
      cmax = fmaxf (cmax, xs[s][i]);
    }
    const float decay = 0.99f;
    bmin = bmin * decay + (1 - decay) * cmin;
    bmax = bmax * decay + (1 - decay) * cmax;
    const float tmin = bmin / (1 - powf (decay, (float) step)), tmax = bmax / (1 - powf (decay, (float) step));
    dmin = dmin * 0.99 + 0.01 * cmin;
    dmax = dmax * 0.99 + 0.01 * cmax;
    ck_assert_double_eq_tol (attr (wr, "output_min"), dmin / (1 - pow (0.99, step)), 1e-5);
    ck_assert_double_eq_tol (attr (wr, "output_max"), dmax / (1 - pow (0.99, step)), 1e-5);
    ck_assert_double_eq (attr (wr, "output_min"), tmin);
    ck_assert_double_eq (attr (wr, "output_max"), tmax);
    ck_assert_double_eq (attr (wr, "output_tracked_min_biased"), bmin);
    float scale, zp;
    nni_qat_params (4, tmin, tmax, &scale, &zp);
    ck_assert_double_eq (attr (wr, "output_scale"), scale);
    ck_assert_double_eq (attr (wr, "output_zero_point"), zp);
    ck_assert_double_eq (attr (wr, "output_bits"), 4);
    ck_assert_double_eq (attr (wr, "output_signed"), 0);
    for (int i = 0; i < 6; i++)
      ck_assert_float_eq (y->f32[i], nni_qat_fake (4, scale, zp, xs[s][i]));
    assert_representable (wr, "output", y->f32, 6);
    nnic_optimizer_step (opt);
  }
  /* The range starts at 0.01 x / (1 - 0.99^3), shrunk (NNI's): below the
   * batches' maxima 1.9 and 2.6. */
  ck_assert (attr (wr, "output_max") < 1.9);

  /* Evaluation uses the tracked range and does not move it. */
  const double before_min = attr (wr, "output_min"), before_scale = attr (wr, "output_scale");
  nnic_model_set_training (m, FALSE);
  static const float big[6] = { -9, 9, 0, 1, 2, 3 };
  g_autoptr (NnicTensor) x = batch (2, 3, big);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  ck_assert_double_eq (attr (wr, "output_min"), before_min);
  ck_assert_double_eq (attr (wr, "output_scale"), before_scale);
  float scale, zp;
  nni_qat_params (4, (float) attr (wr, "output_min"), (float) attr (wr, "output_max"), &scale, &zp);
  for (int i = 0; i < 6; i++)
    ck_assert_float_eq (y->f32[i], nni_qat_fake (4, scale, zp, big[i]));

  /* Evaluation before any training batch: no range yet, the output passes. */
  g_autoptr (NnicModel) m2 = linear_model (3, 3, NULL);
  g_autoptr (NnicCompressor) c2 = make (
      m2, "qat", "[{\"quant_types\": [\"output\"], \"quant_bits\": 8, \"op_names\": [\"fc\"]}]", NULL);
  nnic_model_set_training (m2, FALSE);
  y = nnic_model_forward (m2, x, &err);
  for (int i = 0; i < 6; i++)
    ck_assert_float_eq (y->f32[i], big[i]);
  ck_assert (!nnic_wrapper_get_attribute_double (nnic_compressor_find_wrapper (c2, "fc"), "output_scale", NULL));
}
END_TEST

/* quant_start_step for weights, and the straight-through backward. */
START_TEST (test_qat_weight_start_step_and_ste)
{
  GError *err = NULL;
  static const float w[4] = { 0.11f, -0.37f, 0.52f, 0.9f };
  g_autoptr (NnicModel) m = linear_model (2, 2, w);
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 1e-9 }, &err);
  g_autoptr (NnicCompressor) c = make (m, "qat",
                                       "[{\"quant_types\": [\"weight\"], \"quant_bits\": 2, "
                                       "\"quant_start_step\": 2, \"op_names\": [\"fc\"]}]",
                                       opt);
  float wq[4];
  weight_seen (m, 2, 2, wq);
  for (int i = 0; i < 4; i++)
    ck_assert_float_eq (wq[i], w[i]);
  nnic_optimizer_step (opt); /* no gradients: the weights stay */
  weight_seen (m, 2, 2, wq);
  float scale, zp;
  nni_qat_params (2, -0.37f, 0.9f, &scale, &zp);
  for (int i = 0; i < 4; i++)
    ck_assert_float_eq (wq[i], nni_qat_fake (2, scale, zp, w[i]));
  /* STE: dL/dW = dL/dWq. */
  g_autoptr (NnicTensor) x = identity (2);
  static const float g[4] = { 0.5f, -2.0f, 3.0f, 7.0f };
  backward (m, x, g);
  NnicParam *p = nnic_model_find_param (m, "fc.weight", &err);
  for (int o = 0; o < 2; o++)
    for (int i = 0; i < 2; i++)
      ck_assert_float_eq (p->grad->f32[o * 2 + i], g[i * 2 + o]);
}
END_TEST

/* ---- dorefa ---- */

static double
dorefa_ref (double w, double max_tanh, int bits)
{
  const double s = ldexp (1, bits) - 1;
  const double u = tanh (w) / (2 * max_tanh) + 0.5;
  return 2 * nearbyint (u * s) / s - 1;
}

START_TEST (test_dorefa)
{
  GError *err = NULL;
  static const float w[12] = { -1.3f, -0.52f, 0.0f, 0.07f, 0.31f, 0.8f, 1.9f, -0.11f, 0.44f, -2.2f, 0.61f, 0.23f };
  double max_tanh = 0;
  for (int i = 0; i < 12; i++)
    max_tanh = fmax (max_tanh, fabs (tanh (w[i])));
  for (int bits = 1; bits <= 8; bits++) {
    g_autoptr (NnicModel) m = linear_model (4, 3, w);
    g_autofree char *json = g_strdup_printf (
        "[{\"quant_types\": [\"weight\"], \"quant_bits\": %d, \"op_types\": [\"Linear\"]}]", bits);
    g_autoptr (NnicCompressor) c = make (m, "dorefa", json, NULL);
    float wq[12];
    weight_seen (m, 4, 3, wq);
    for (int i = 0; i < 12; i++)
      ck_assert_msg (fabs (wq[i] - dorefa_ref (w[i], max_tanh, bits)) < 1e-6, "bits %d, w %g: %.9g, want %.9g",
                     bits, w[i], wq[i], dorefa_ref (w[i], max_tanh, bits));
    NnicWrapper *wr = nnic_compressor_find_wrapper (c, "fc");
    ck_assert_double_eq (attr (wr, "weight_scale"), 1.0f / (float) ((1 << bits) - 1));
    ck_assert_double_eq (attr (wr, "weight_zero_point"), 0);
    ck_assert_double_eq (attr (wr, "weight_bits"), bits + 1);
    ck_assert_double_eq (attr (wr, "weight_signed"), 1);
    ck_assert_double_eq (attr (wr, "weight_min"), -1);
    ck_assert_double_eq (attr (wr, "weight_max"), 1);
    assert_representable (wr, "weight", wq, 12);
    /* The integers are the odd ones, 2k - (2^bits - 1). */
    for (int i = 0; i < 12; i++)
      ck_assert (((long) rint (wq[i] / attr (wr, "weight_scale"))) % 2 != 0);
    /* STE. */
    g_autoptr (NnicTensor) x = identity (4);
    float g[12];
    for (int i = 0; i < 12; i++)
      g[i] = (float) (i - 5) * 0.25f;
    backward (m, x, g);
    NnicParam *p = nnic_model_find_param (m, "fc.weight", &err);
    for (int o = 0; o < 3; o++)
      for (int i = 0; i < 4; i++)
        ck_assert_float_eq (p->grad->f32[o * 4 + i], g[i * 3 + o]);
  }
  /* By hand: w = {-2, 0, 1, 2}, u = {0, 0.5, 0.5 + tanh 1 / (2 tanh 2), 1};
   * 1 bit: 0.5 rounds to 0 (half to even), so 0 → -1; 2 bits: 1.5 → 2. */
  static const float h[4] = { -2.0f, 0.0f, 1.0f, 2.0f };
  static const float want1[4] = { -1, -1, 1, 1 }, want2[4] = { -1, 1.0f / 3, 1, 1 };
  for (int bits = 1; bits <= 2; bits++) {
    g_autoptr (NnicModel) m = linear_model (2, 2, h);
    g_autofree char *json = g_strdup_printf (
        "[{\"quant_types\": [\"weight\"], \"quant_bits\": %d, \"op_names\": [\"fc\"]}]", bits);
    g_autoptr (NnicCompressor) c = make (m, "dorefa", json, NULL);
    float wq[4];
    weight_seen (m, 2, 2, wq);
    for (int i = 0; i < 4; i++)
      ck_assert_float_eq_tol (wq[i], (bits == 1 ? want1 : want2)[i], 1e-7);
  }
  /* All zero: zeros (NNI: NaN); constant ±c: ±1. */
  for (int k = 0; k < 3; k++) {
    const float c0 = k == 0 ? 0.0f : k == 1 ? 0.4f : -0.4f;
    const float cw[4] = { c0, c0, c0, c0 };
    g_autoptr (NnicModel) m = linear_model (2, 2, cw);
    g_autoptr (NnicCompressor) c = make (
        m, "dorefa", "[{\"quant_types\": [\"weight\"], \"quant_bits\": 3, \"op_names\": [\"fc\"]}]", NULL);
    float wq[4];
    weight_seen (m, 2, 2, wq);
    for (int i = 0; i < 4; i++)
      ck_assert_float_eq (wq[i], k == 0 ? 0.0f : k == 1 ? 1.0f : -1.0f);
    assert_representable (nnic_compressor_find_wrapper (c, "fc"), "weight", wq, 4);
  }
}
END_TEST

/* ---- bnn ---- */

START_TEST (test_bnn)
{
  GError *err = NULL;
  /* Weights: sign, with 0 (and -0) → +1; STE backward. */
  static const float w[6] = { -2.5f, -0.0f, 0.0f, 0.3f, -1e-30f, 7.0f };
  static const float want[6] = { -1, 1, 1, 1, -1, 1 };
  for (int bits = 1; bits <= 8; bits += 7) { /* bits are ignored, as in NNI */
    g_autoptr (NnicModel) m = linear_model (3, 2, w);
    g_autofree char *json = g_strdup_printf (
        "[{\"quant_types\": [\"weight\"], \"quant_bits\": %d, \"op_names\": [\"fc\"]}]", bits);
    g_autoptr (NnicCompressor) c = make (m, "bnn", json, NULL);
    float wq[6];
    weight_seen (m, 3, 2, wq);
    for (int i = 0; i < 6; i++)
      ck_assert_float_eq (wq[i], want[i]);
    NnicWrapper *wr = nnic_compressor_find_wrapper (c, "fc");
    ck_assert_double_eq (attr (wr, "weight_scale"), 1);
    ck_assert_double_eq (attr (wr, "weight_zero_point"), 0);
    ck_assert_double_eq (attr (wr, "weight_bits"), 2);
    ck_assert_double_eq (attr (wr, "weight_signed"), 1);
    ck_assert_double_eq (attr (wr, "weight_binary"), 1);
    ck_assert_double_eq (attr (wr, "weight_min"), -1);
    ck_assert_double_eq (attr (wr, "weight_max"), 1);
    assert_representable (wr, "weight", wq, 6);
    g_autoptr (NnicTensor) x = identity (3);
    static const float g[6] = { 1, 2, 3, 4, 5, 6 };
    backward (m, x, g);
    NnicParam *p = nnic_model_find_param (m, "fc.weight", &err);
    for (int o = 0; o < 2; o++)
      for (int i = 0; i < 3; i++)
        ck_assert_float_eq (p->grad->f32[o * 3 + i], g[i * 2 + o]);
  }
  /* Outputs: sign of y = W^T (x the identity); ClipGrad zeroes dL/dy
   * where |y| > 1 (not at |y| = 1). */
  static const float wo[6] = { -2.5f, 1.0f, 0.0f, -1.0f, 0.999f, 1.001f };
  g_autoptr (NnicModel) m = linear_model (3, 2, wo);
  g_autoptr (NnicCompressor) c = make (
      m, "bnn", "[{\"quant_types\": [\"output\"], \"quant_bits\": 1, \"op_names\": [\"fc\"]}]", NULL);
  g_autoptr (NnicTensor) x = identity (3);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  for (int i = 0; i < 3; i++)
    for (int o = 0; o < 2; o++)
      ck_assert_float_eq (y->f32[i * 2 + o], wo[o * 3 + i] < 0 ? -1.0f : 1.0f);
  NnicWrapper *wr = nnic_compressor_find_wrapper (c, "fc");
  ck_assert_double_eq (attr (wr, "output_bits"), 2);
  ck_assert_double_eq (attr (wr, "output_binary"), 1);
  assert_representable (wr, "output", y->f32, 6);
  static const float g[6] = { 1, 2, 3, 4, 5, 6 };
  backward (m, x, g);
  NnicParam *p = nnic_model_find_param (m, "fc.weight", &err);
  for (int o = 0; o < 2; o++)
    for (int i = 0; i < 3; i++)
      ck_assert_float_eq (p->grad->f32[o * 3 + i], fabsf (wo[o * 3 + i]) > 1.0f ? 0.0f : g[i * 2 + o]);
}
END_TEST

/* ---- lsq ---- */

/* The loss sum(g * x_q) as a function of the scale parameter s, through
 * NNI's quantize(): s' = grad_scale(s) (value s0, slope gs) and
 * round_pass (value round, slope 1), the detached parts held at s0. Its
 * derivative is what autograd gives NNI. */
static double
lsq_surrogate (double s, double s0, double gs, const float *x, const float *g, int n, int qn, int qp)
{
  const double sp = s0 + gs * (s - s0);
  double loss = 0;
  for (int i = 0; i < n; i++) {
    const double c0 = fmin (fmax (x[i] / s0, qn), qp), cst = nearbyint (c0) - c0;
    const double v = fmin (fmax (x[i] / sp, qn), qp);
    loss += g[i] * (v + cst) * sp;
  }
  return loss;
}

/* The closed form (the paper's gradient, scaled). */
static double
lsq_scale_grad (double s, const float *x, const float *g, int n, int qn, int qp)
{
  double d = 0;
  for (int i = 0; i < n; i++) {
    const double v = (double) (x[i] / (float) s);
    d += g[i] * (v < qn ? qn : v > qp ? qp : nearbyint (v) - v);
  }
  return d / sqrt ((double) qp * n);
}

START_TEST (test_lsq_weight)
{
  GError *err = NULL;
  /* fc 4 → 3, bits 3: Qn = -4, Qp = 3. */
  static const float w[12] = { 0.9f, -0.35f, 0.12f, -4.6f, 0.05f, 0.42f, -0.71f, 3.9f, 0.25f, 0.75f, -0.25f, 1.25f };
  g_autoptr (NnicModel) m = linear_model (4, 3, w);
  const double lr = 0.1;
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = lr }, &err);
  g_autoptr (NnicCompressor) c = make (
      m, "lsq", "[{\"quant_types\": [\"weight\"], \"quant_bits\": 3, \"op_names\": [\"fc\"]}]", opt);
  NnicWrapper *wr = nnic_compressor_find_wrapper (c, "fc");
  /* NNI's initialisation: 2 mean|w| / sqrt(Qp). */
  double mean = 0;
  for (int i = 0; i < 12; i++)
    mean += fabs (w[i]) / 12;
  ck_assert_double_eq_tol (attr (wr, "weight_scale"), 2 * mean / sqrt (3), 1e-6);
  ck_assert_double_eq (attr (wr, "weight_zero_point"), 0);
  ck_assert_double_eq (attr (wr, "weight_bits"), 3);
  ck_assert_double_eq (attr (wr, "weight_signed"), 1);
  ck_assert_double_eq_tol (attr (wr, "weight_max"), 3 * attr (wr, "weight_scale"), 1e-12);
  ck_assert_double_eq_tol (attr (wr, "weight_min"), -3 * attr (wr, "weight_scale"), 1e-12);

  ck_assert_double_eq (attr (wr, "weight_step_size"), attr (wr, "weight_scale"));
  /* A step size set from outside (as a checkpoint does) is taken over:
   * 0.5 makes the closed form exact by hand. Ties go to even (0.5 → 0,
   * 1.5 → 2, -0.5 → -0, 2.5 → 2); -9.2 and 7.8 are clamped. */
  ck_assert (nnic_wrapper_set_attribute_double (wr, "weight_step_size", 0.5, &err));
  float wq[12];
  weight_seen (m, 4, 3, wq);
  static const float want[12] = { 1.0f, -0.5f, 0, -2.0f, 0, 0.5f, -0.5f, 1.5f, 0, 1.0f, 0, 1.0f };
  for (int i = 0; i < 12; i++)
    ck_assert_float_eq (wq[i], want[i]);
  assert_representable (wr, "weight", wq, 12);

  /* Backward: dW = dWq inside [Qn, Qp], 0 where clamped; the scale's
   * gradient, read from one SGD step (momentum 0: s -= lr ds). */
  g_autoptr (NnicTensor) x = identity (4);
  float g[12], gw[12]; /* g: dL/dy [in][out]; gw: the same as [out][in] */
  for (int i = 0; i < 4; i++)
    for (int o = 0; o < 3; o++) {
      g[i * 3 + o] = (float) ((i * 3 + o) % 5) - 1.7f;
      gw[o * 4 + i] = g[i * 3 + o];
    }
  backward (m, x, g);
  NnicParam *p = nnic_model_find_param (m, "fc.weight", &err);
  for (int k = 0; k < 12; k++)
    ck_assert_float_eq (p->grad->f32[k], (k == 3 || k == 7) ? 0.0f : gw[k]);
  const double gs = 1.0 / sqrt (3.0 * 12);
  const double closed = lsq_scale_grad (0.5, w, gw, 12, -4, 3);
  const double h = 1e-6;
  const double fd = (lsq_surrogate (0.5 + h, 0.5, gs, w, gw, 12, -4, 3) -
                     lsq_surrogate (0.5 - h, 0.5, gs, w, gw, 12, -4, 3)) / (2 * h);
  ck_assert_double_eq_tol (closed, fd, 1e-6);
  ck_assert (fabs (closed) > 0.05);
  ck_assert_double_eq (attr (wr, "weight_scale"), 0.5);
  nnic_optimizer_step (opt);
  /* The step moved s ("weight_step_size" at once; "weight_scale" is the s
   * of the last quantization until the next one). */
  const double s1 = attr (wr, "weight_step_size");
  ck_assert_double_eq (attr (wr, "weight_scale"), 0.5);
  ck_assert_double_eq_tol ((0.5 - s1) / lr, fd, 1e-5);
  weight_seen (m, 4, 3, wq);
  ck_assert_double_eq (attr (wr, "weight_scale"), s1);
  /* The gradient starts from zero at each step. */
  nnic_model_zero_grad (m);
  nnic_optimizer_step (opt);
  ck_assert_double_eq (attr (wr, "weight_step_size"), s1);
}
END_TEST

/* Outputs and inputs: the scale comes from the batch until the first
 * optimizer step; backward through the input gradient (W = I). */
START_TEST (test_lsq_activations)
{
  GError *err = NULL;
  static const char *const kinds[2] = { "output", "input" };
  for (int k = 0; k < 2; k++) {
    const char *t = kinds[k];
    g_autoptr (NnicModel) m = linear_model (3, 3, NULL);
    nnic_model_set_input_grad (m, TRUE);
    const double lr = 0.05;
    g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = lr }, &err);
    g_autofree char *json = g_strdup_printf (
        "[{\"quant_types\": [\"%s\"], \"quant_bits\": {\"%s\": 4}, \"op_names\": [\"fc\"]}]", t, t);
    g_autoptr (NnicCompressor) c = make (m, "lsq", json, opt);
    NnicWrapper *wr = nnic_compressor_find_wrapper (c, "fc");
    g_autofree char *sname = g_strconcat (t, "_scale", NULL);
    /* bits 4: Qn = -8, Qp = 7. */
    static const float xa[6] = { 0.3f, -1.2f, 2.5f, 0.05f, -0.6f, 0.9f };
    static const float xb[6] = { 4.0f, -0.1f, 0.2f, -6.0f, 0.7f, 0.15f };
    for (int pass = 0; pass < 2; pass++) {
      const float *xv = pass == 0 ? xa : xb;
      g_autoptr (NnicTensor) x = batch (2, 3, xv);
      const NnicTensor *y = nnic_model_forward (m, x, &err);
      double mean = 0;
      for (int i = 0; i < 6; i++)
        mean += fabs (xv[i]) / 6;
      const double s = attr (wr, sname);
      ck_assert_double_eq_tol (s, 2 * mean / sqrt (7), 1e-6);
      for (int i = 0; i < 6; i++)
        ck_assert_float_eq (y->f32[i], nearbyintf (fminf (fmaxf (xv[i] / (float) s, -8.0f), 7.0f)) * (float) s);
      assert_representable (wr, t, y->f32, 6);
    }
    /* After the first step the batch no longer sets the scale (no
     * gradients yet: s stays). */
    const double s_init = attr (wr, sname);
    nnic_optimizer_step (opt);
    g_autoptr (NnicTensor) xa_t = batch (2, 3, xa);
    nnic_model_forward (m, xa_t, &err);
    ck_assert_double_eq (attr (wr, sname), s_init);
    /* With s = 0.5, 4 → 8 and -6 → -12 are clamped; their gradient is 0. */
    g_autofree char *step_name = g_strconcat (t, "_step_size", NULL);
    ck_assert (nnic_wrapper_set_attribute_double (wr, step_name, 0.5, &err));
    g_autoptr (NnicTensor) x = batch (2, 3, xb);
    static const float g[6] = { 1.5f, -0.5f, 2.0f, 0.75f, -3.0f, 1.0f };
    backward (m, x, g);
    ck_assert_double_eq (attr (wr, sname), 0.5);
    const NnicTensor *gx = nnic_model_input_grad (m);
    for (int i = 0; i < 6; i++) {
      const float v = xb[i] / 0.5f;
      ck_assert_float_eq (gx->f32[i], (v < -8 || v > 7) ? 0.0f : g[i]);
    }
    const double gs = 1.0 / sqrt (7.0 * 6);
    const double h = 1e-6;
    const double fd = (lsq_surrogate (0.5 + h, 0.5, gs, xb, g, 6, -8, 7) -
                       lsq_surrogate (0.5 - h, 0.5, gs, xb, g, 6, -8, 7)) / (2 * h);
    ck_assert_double_eq_tol (lsq_scale_grad (0.5, xb, g, 6, -8, 7), fd, 1e-6);
    ck_assert (fabs (fd) > 0.05);
    nnic_optimizer_step (opt);
    nnic_model_forward (m, xa_t, &err);
    const double s1 = attr (wr, sname);
    ck_assert_double_eq (attr (wr, step_name), s1);
    ck_assert_double_eq_tol ((0.5 - s1) / lr, fd, 1e-5);
  }
}
END_TEST

/* ---- through the compressor, on nni_cnn ---- */

static void
assert_published (NnicWrapper *w, const char *t)
{
  static const char *const suffixes[] = { "_scale", "_zero_point", "_bits", "_signed", "_min", "_max" };
  double v[6];
  for (guint k = 0; k < 6; k++) {
    g_autofree char *name = g_strconcat (t, suffixes[k], NULL);
    v[k] = attr (w, name);
    ck_assert_msg (isfinite (v[k]), "%s.%s = %g", nnic_wrapper_name (w), name, v[k]);
  }
  ck_assert (v[0] > 0);
  ck_assert (v[2] >= 1 && v[2] <= 9);
  ck_assert (v[4] <= v[5]);
}

/* Whether the wrapper's entry lists quant type t. */
static gboolean
quantizes (NnicWrapper *w, const char *t)
{
  JsonArray *a = json_object_get_array_member (nnic_wrapper_config (w), "quant_types");
  for (guint j = 0; j < json_array_get_length (a); j++)
    if (!strcmp (json_array_get_string_element (a, j), t))
      return TRUE;
  return FALSE;
}

START_TEST (test_training_nni_cnn)
{
  static const struct {
    const char *algorithm, *json;
    guint n_wrappers;
    gboolean export_onnx;
  } cases[] = {
    /* NNI's QAT MNIST example (quant_start_step shortened). */
    { "qat", "[{\"quant_types\": [\"weight\"], \"quant_bits\": {\"weight\": 8}, \"op_types\": [\"Conv2d\", \"Linear\"]}, "
             "{\"quant_types\": [\"output\"], \"quant_bits\": 8, \"quant_start_step\": 2, \"op_types\": [\"ReLU6\"]}]",
      7, TRUE },
    { "qat", "[{\"quant_types\": [\"weight\", \"output\"], \"quant_bits\": {\"weight\": 8, \"output\": 8}, "
             "\"op_types\": [\"Conv2d\", \"Linear\"]}]", 4, TRUE },
    { "dorefa", "[{\"quant_types\": [\"weight\"], \"quant_bits\": 4, \"op_types\": [\"default\"]}]", 4, TRUE },
    { "bnn", "[{\"quant_types\": [\"weight\"], \"quant_bits\": 1, \"op_types\": [\"Conv2d\", \"Linear\"]}, "
             "{\"quant_types\": [\"output\"], \"quant_bits\": 1, \"op_names\": [\"relu1\", \"relu2\", \"relu3\"]}]",
      7, FALSE },
    { "lsq", "[{\"quant_types\": [\"weight\", \"output\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\", \"Linear\"]}]",
      4, TRUE },
  };
  for (guint k = 0; k < G_N_ELEMENTS (cases); k++) {
    GError *err = NULL;
    g_autoptr (NnicModel) m = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
    NNIC_ASSERT_NO_ERROR (err);
    nnic_model_set_training (m, TRUE);
    g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.01, .momentum = 0.5 }, &err);
    NnicCompressor *c = make (m, cases[k].algorithm, cases[k].json, opt);
    ck_assert_uint_eq (nnic_compressor_n_wrappers (c), cases[k].n_wrappers);
    double s0 = 0;
    if (!strcmp (cases[k].algorithm, "lsq")) {
      nnic_test_train_step (m, opt, 100); /* sets the output scales from a batch */
      s0 = attr (nnic_compressor_find_wrapper (c, "fc1"), "output_scale");
    }
    for (guint s = 0; s < 4; s++) {
      double loss = nnic_test_train_step (m, opt, s);
      ck_assert_msg (isfinite (loss), "%s: loss %g at step %u", cases[k].algorithm, loss, s);
    }
    static const char *const types[3] = { "weight", "input", "output" };
    for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++)
      for (guint t = 0; t < 3; t++)
        if (quantizes (nnic_compressor_wrapper (c, i), types[t]))
          assert_published (nnic_compressor_wrapper (c, i), types[t]);
    if (cases[k].export_onnx) {
      g_autofree char *dir = nnic_test_tmpdir ();
      g_autofree char *path = g_build_filename (dir, "model.onnx", NULL);
      ck_assert_msg (nnic_compressor_export_onnx (c, path, &err), "%s: %s", cases[k].algorithm,
                     err ? err->message : "");
    }
    if (!strcmp (cases[k].algorithm, "lsq")) {
      /* The scales are in the optimizer: they moved with training, and
       * only an optimizer step moves them. */
      NnicWrapper *w = nnic_compressor_find_wrapper (c, "fc1");
      g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 2, (int64_t) 1, (int64_t) 28, (int64_t) 28);
      nnic_tensor_fill (x, 0.5f);
      nnic_model_forward (m, x, &err);
      const double s1 = attr (w, "output_scale"), ws1 = attr (w, "weight_scale");
      ck_assert (s1 != s0);
      ck_assert_double_eq (attr (w, "output_step_size"), s1);
      nnic_model_forward (m, x, &err);
      ck_assert_double_eq (attr (w, "output_scale"), s1);
      ck_assert_double_eq (attr (w, "weight_scale"), ws1);
      nnic_test_train_step (m, opt, 9);
      ck_assert (attr (w, "output_step_size") != s1);
      ck_assert (attr (w, "weight_step_size") != ws1);
      nnic_model_forward (m, x, &err);
      ck_assert_double_eq (attr (w, "output_scale"), attr (w, "output_step_size"));
      ck_assert_double_eq (attr (w, "weight_scale"), attr (w, "weight_step_size"));
    }
    /* Freeing the compressor first leaves the optimizer usable (lsq's
     * scales stay alive while it points at them). */
    nnic_compressor_free (c);
    nnic_test_train_step (m, opt, 10);
  }
}
END_TEST

/* The published attributes through the QDQ export and back: the weights
 * the imported model reads are the fake-quantized ones, bit for bit. */
START_TEST (test_qdq_export_exact)
{
  static const float w[12] = { 0.9f, -0.35f, 0.12f, -4.6f, 0.05f, 0.42f, -0.71f, 3.9f, 0.25f, 0.0f, -0.25f, 1.25f };
  static const struct {
    const char *algorithm;
    int bits;
  } cases[] = { { "qat", 8 }, { "qat", 3 }, { "qat", 1 }, { "dorefa", 1 }, { "dorefa", 3 }, { "dorefa", 7 },
                { "bnn", 1 }, { "lsq", 8 }, { "lsq", 2 } };
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "q.onnx", NULL);
  for (guint k = 0; k < G_N_ELEMENTS (cases); k++) {
    GError *err = NULL;
    g_autoptr (NnicModel) m = linear_model (4, 3, w);
    g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.01 }, &err);
    g_autofree char *json = g_strdup_printf (
        "[{\"quant_types\": [\"weight\"], \"quant_bits\": %d, \"op_names\": [\"fc\"]}]", cases[k].bits);
    g_autoptr (NnicCompressor) c = make (m, cases[k].algorithm, json, opt);
    float wq[12];
    weight_seen (m, 4, 3, wq);
    ck_assert_msg (nnic_compressor_export_onnx (c, path, &err), "%s %d: %s", cases[k].algorithm, cases[k].bits,
                   err ? err->message : "");
    g_autoptr (NnicModel) back = nnic_model_load_onnx (path, NULL, &err);
    NNIC_ASSERT_NO_ERROR (err);
    NnicParam *p = nnic_model_find_param (back, "fc.weight", &err);
    NNIC_ASSERT_NO_ERROR (err);
    for (int i = 0; i < 12; i++)
      ck_assert_msg (p->value->f32[i] == wq[i], "%s %d bits: weight %d: exported %.9g, trained with %.9g",
                     cases[k].algorithm, cases[k].bits, i, p->value->f32[i], wq[i]);
  }
}
END_TEST

/* A checkpoint carries qat's EMA and lsq's scales. */
START_TEST (test_checkpoint_resume)
{
  GError *err = NULL;
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "ck.safetensors", NULL);
  static const char *const algorithms[2] = { "qat", "lsq" };
  for (int k = 0; k < 2; k++) {
    const char *json = "[{\"quant_types\": [\"weight\", \"output\"], \"quant_bits\": 6, \"op_names\": [\"fc1\", \"fc2\"]}]";
    g_autoptr (NnicModel) m = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
    g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.01 }, &err);
    g_autoptr (NnicCompressor) c = make (m, algorithms[k], json, opt);
    nnic_model_set_training (m, TRUE);
    for (guint s = 0; s < 3; s++)
      nnic_test_train_step (m, opt, s);
    ck_assert (nnic_compressor_save_checkpoint (c, path, &err));
    NNIC_ASSERT_NO_ERROR (err);

    g_autoptr (NnicModel) m2 = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
    nnic_model_init_params (m2, 77);
    g_autoptr (NnicOptimizer) opt2 = nnic_optimizer_new_sgd (m2, &(NnicSgdOptions) { .lr = 0.01 }, &err);
    g_autoptr (NnicCompressor) c2 = make (m2, algorithms[k], json, opt2);
    ck_assert (nnic_compressor_load_checkpoint (c2, path, &err));
    NNIC_ASSERT_NO_ERROR (err);
    /* The same batch through both, in evaluation mode (qat's range stays). */
    nnic_model_set_training (m, FALSE);
    nnic_model_set_training (m2, FALSE);
    g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 2, (int64_t) 1, (int64_t) 28, (int64_t) 28);
    for (int64_t i = 0; i < x->numel; i++)
      x->f32[i] = (float) (i % 17) / 17.0f;
    g_autoptr (NnicTensor) y = nnic_tensor_copy (nnic_model_forward (m, x, &err), &err);
    const NnicTensor *y2 = nnic_model_forward (m2, x, &err);
    for (int64_t i = 0; i < y->numel; i++)
      ck_assert_float_eq (y->f32[i], y2->f32[i]);
    NnicWrapper *w = nnic_compressor_find_wrapper (c, "fc1"), *w2 = nnic_compressor_find_wrapper (c2, "fc1");
    ck_assert_double_eq (attr (w2, "output_scale"), attr (w, "output_scale"));
    ck_assert_double_eq (attr (w2, "weight_scale"), attr (w, "weight_scale"));
  }
}
END_TEST

/* ---- config errors ---- */

static void
assert_refused (const char *algorithm, const char *json, gboolean with_optimizer, const char *message)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.01 }, &err);
  g_autoptr (NnicConfigList) cl = nnic_test_config (json);
  ck_assert_ptr_null (nnic_compressor_new (m, algorithm, cl, with_optimizer ? opt : NULL, NULL, &err));
  ck_assert_msg (err != NULL, "%s accepted %s", algorithm, json);
  ck_assert_int_eq (err->code, strstr (message, "optimizer") ? NNIC_ERROR_ARGUMENT : NNIC_ERROR_CONFIG);
  ck_assert_str_eq (err->message, message);
  g_clear_error (&err);
  /* A refused compressor leaves the optimizer usable. */
  nnic_optimizer_step (opt);
}

/* The core's checks, made when the list is read (for every quantizer). */
static void
assert_unreadable (const char *json, const char *message)
{
  GError *err = NULL;
  ck_assert_ptr_null (nnic_config_list_new_from_json (json, "test", &err));
  ck_assert_msg (err != NULL, "accepted %s", json);
  ck_assert_int_eq (err->code, NNIC_ERROR_CONFIG);
  ck_assert_str_eq (err->message, message);
  g_clear_error (&err);
}

START_TEST (test_config_errors)
{
  assert_unreadable ("[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\"]}, "
                     "{\"quant_types\": [\"weight\"], \"quant_bits\": 9, \"op_types\": [\"Linear\"]}]",
                     "config_list[1].quant_bits: must be in [1, 8], got 9");
  assert_unreadable ("[{\"quant_types\": [\"weight\"], \"quant_bits\": 0, \"op_types\": [\"Linear\"]}]",
                     "config_list[0].quant_bits: must be in [1, 8], got 0");
  assert_unreadable ("[{\"quant_types\": [\"weight\", \"output\"], \"quant_bits\": {\"weight\": 1}, "
                     "\"op_types\": [\"Linear\"]}]",
                     "config_list[0].quant_bits: no bits for quant type 'output'");
  assert_unreadable ("[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"quant_start_step\": -2, "
                     "\"op_types\": [\"Linear\"]}]",
                     "config_list[0].quant_start_step: must be >= 0, got -2");
  assert_unreadable ("[{\"quant_types\": [\"weight\"], \"quant_bits\": {\"weight\": 12}, \"op_types\": [\"Linear\"]}]",
                     "config_list[0].quant_bits.weight: must be in [1, 8], got 12");
  /* Required keys, checked against the algorithm. */
  assert_refused ("qat", "[{\"quant_types\": [\"weight\"], \"op_types\": [\"Linear\"]}]", TRUE,
                  "qat: config_list[0].quant_bits: required");
  /* The plugins' own: NNI's schemas. */
  assert_refused ("qat", "[{\"quant_types\": [\"weight\", \"input\"], \"quant_bits\": 8, \"op_types\": [\"Linear\"]}]",
                  TRUE, "qat: config_list[0].quant_types[1]: 'input' is not supported (valid: weight, output)");
  assert_refused ("dorefa", "[{\"quant_types\": [\"output\"], \"quant_bits\": 8, \"op_types\": [\"Linear\"]}]", TRUE,
                  "dorefa: config_list[0].quant_types[0]: 'output' is not supported (valid: weight)");
  assert_refused ("dorefa",
                  "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\"]}, "
                  "{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"quant_start_step\": 5, \"op_types\": [\"Linear\"]}]",
                  TRUE, "dorefa: config_list[1].quant_start_step: not a dorefa key (only qat has it)");
  assert_refused ("bnn", "[{\"quant_types\": [\"input\"], \"quant_bits\": 1, \"op_types\": [\"Linear\"]}]", TRUE,
                  "bnn: config_list[0].quant_types[0]: 'input' is not supported (valid: weight, output)");
  assert_refused ("bnn", "[{\"quant_types\": [\"weight\"], \"quant_bits\": 1, \"quant_start_step\": 0, \"op_types\": [\"Linear\"]}]",
                  TRUE, "bnn: config_list[0].quant_start_step: not a bnn key (only qat has it)");
  assert_refused ("lsq",
                  "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\"]}, "
                  "{\"quant_types\": [\"weight\"], \"quant_bits\": 1, \"op_types\": [\"Linear\"]}]",
                  TRUE,
                  "lsq: config_list[1].quant_bits: must be in [2, 8] for lsq (Qp = 2^(bits-1) - 1 must be "
                  "positive), got 1");
  assert_refused ("lsq",
                  "[{\"quant_types\": [\"weight\", \"output\"], \"quant_bits\": {\"weight\": 8, \"output\": 1}, "
                  "\"op_types\": [\"Linear\"]}]",
                  TRUE,
                  "lsq: config_list[0].quant_bits.output: must be in [2, 8] for lsq (Qp = 2^(bits-1) - 1 "
                  "must be positive), got 1");
  assert_refused ("lsq", "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"quant_start_step\": 1, \"op_types\": [\"Linear\"]}]",
                  TRUE, "lsq: config_list[0].quant_start_step: not an lsq key (only qat has it)");
  assert_refused ("lsq", "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Linear\"]}]", FALSE,
                  "lsq: needs an optimizer: its scales are trained with the model");
}
END_TEST

/* nnic_parallel_for (include/nnic/parallel.h): the ranges cover [0, n)
 * exactly once, in one call up to 65536 items. */
typedef struct {
  guint8 *seen;
  gint calls, bad; /* no ck_assert on the worker threads */
} Cover;

static void
cover_range (int64_t lo, int64_t hi, gpointer data)
{
  Cover *c = data;
  g_atomic_int_inc (&c->calls);
  if (!(0 <= lo && lo < hi))
    g_atomic_int_inc (&c->bad);
  for (int64_t i = lo; i < hi; i++)
    c->seen[i]++;
}

START_TEST (test_parallel_for)
{
  const int64_t sizes[] = { 0, 1, 1000, 65536, 65537, 1000003 };
  for (guint k = 0; k < G_N_ELEMENTS (sizes); k++) {
    const int64_t n = sizes[k];
    g_autofree guint8 *seen = g_new0 (guint8, n + 1);
    Cover c = { seen, 0, 0 };
    nnic_parallel_for (n, cover_range, &c);
    ck_assert_int_eq (c.bad, 0);
    for (int64_t i = 0; i < n; i++)
      ck_assert_msg (seen[i] == 1, "n = %" G_GINT64_FORMAT ": item %" G_GINT64_FORMAT " done %d times", n, i,
                     seen[i]);
    ck_assert_int_eq (seen[n], 0);
    if (n == 0)
      ck_assert_int_eq (c.calls, 0);
    else if (n <= 65536)
      ck_assert_int_eq (c.calls, 1);
    else
      ck_assert_int_ge (c.calls, 1);
  }
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("quantizers");
  TCase *tc = tcase_create ("quantizers");
  tcase_add_test (tc, test_qat_weight);
  tcase_add_test (tc, test_qat_output_ema);
  tcase_add_test (tc, test_qat_weight_start_step_and_ste);
  tcase_add_test (tc, test_dorefa);
  tcase_add_test (tc, test_bnn);
  tcase_add_test (tc, test_lsq_weight);
  tcase_add_test (tc, test_lsq_activations);
  tcase_add_test (tc, test_training_nni_cnn);
  tcase_add_test (tc, test_qdq_export_exact);
  tcase_add_test (tc, test_checkpoint_resume);
  tcase_add_test (tc, test_config_errors);
  tcase_add_test (tc, test_parallel_for);
  suite_add_tcase (s, tc);
  return nnic_test_run (s);
}
