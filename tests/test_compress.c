/* The compressor core with the in-tree plugins: masks in forward and after
 * export, the step hook, AGP's schedule, collectors, attributes, naive. */
#include "testutil.h"

#include <math.h>
#include <string.h>

static NnicModel *
cnn (void)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  return m;
}

static int64_t
count_zeros (const NnicTensor *t)
{
  int64_t z = 0;
  for (int64_t i = 0; i < t->numel; i++)
    z += t->f32[i] == 0.0f;
  return z;
}

START_TEST (test_level_masks_stay_through_training_and_export)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.1, .momentum = 0.9 }, &err);
  g_autoptr (NnicConfigList) cl = nnic_test_config ("[{\"sparsity\": 0.8, \"op_types\": [\"default\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "level", cl, opt, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_compressor_n_wrappers (c), 4);
  ck_assert (nnic_compressor_compress (c, &err));
  for (int s = 0; s < 3; s++)
    nnic_test_train_step (m, opt, (guint64) s);
  ck_assert_uint_eq (nnic_compressor_steps (c), 3);
  for (guint i = 0; i < 4; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    const NnicTensor *mask = nnic_wrapper_get_mask (w, "weight");
    NnicTensor *wt = nnic_wrapper_weight (w);
    ck_assert_int_eq (mask->dtype, NNIC_DTYPE_U8); /* one byte per weight */
    int64_t k = (int64_t) ((double) wt->numel * 0.8);
    ck_assert_int_ge (count_zeros (wt), k);
    for (int64_t j = 0; j < wt->numel; j++)
      if (!mask->u8[j])
        ck_assert_float_eq (wt->f32[j], 0.0f);
    ck_assert_double_eq_tol (nnic_wrapper_sparsity (w), 0.8, 0.001);
  }

  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *mp = g_build_filename (dir, "model.safetensors", NULL);
  g_autofree char *kp = g_build_filename (dir, "masks.safetensors", NULL);
  ck_assert (nnic_compressor_export (c, mp, kp, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensorDict) weights = nnic_safetensors_load (mp, &err);
  g_autoptr (NnicTensorDict) masks = nnic_safetensors_load (kp, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_tensor_dict_len (masks), 8); /* weight and bias masks of 4 layers */
  NnicTensor *wm = nnic_tensor_dict_get (masks, "conv1.weight_mask");
  NnicTensor *bm = nnic_tensor_dict_get (masks, "fc2.bias_mask");
  ck_assert_ptr_nonnull (wm);
  ck_assert_ptr_nonnull (bm);
  ck_assert_int_eq (wm->dtype, NNIC_DTYPE_F32);
  NnicTensor *w1 = nnic_tensor_dict_get (weights, "conv1.weight");
  for (int64_t j = 0; j < wm->numel; j++) {
    ck_assert (wm->f32[j] == 0.0f || wm->f32[j] == 1.0f);
    if (wm->f32[j] == 0.0f)
      ck_assert_float_eq (w1->f32[j], 0.0f);
  }
  /* Loading weights into the wrapped model keeps the masks applied. */
  nnic_model_init_params (m, 5);
  ck_assert (nnic_compressor_load_weights (c, mp, &err));
  NnicWrapper *w = nnic_compressor_find_wrapper (c, "conv1");
  ck_assert_int_eq (count_zeros (nnic_wrapper_weight (w)), count_zeros (w1));
}
END_TEST

START_TEST (test_no_optimizer_masks_in_forward)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config ("[{\"sparsity\": 0.5, \"op_names\": [\"fc1\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "level", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  NnicTensor *wt = nnic_wrapper_weight (nnic_compressor_wrapper (c, 0));
  int64_t zeros = count_zeros (wt);
  /* Weights changed behind the compressor's back are masked again by the next forward. */
  for (int64_t j = 0; j < wt->numel; j++)
    wt->f32[j] += 1.0f;
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 2, (int64_t) 1, (int64_t) 28, (int64_t) 28);
  nnic_model_forward (m, x, &err);
  ck_assert_int_eq (count_zeros (wt), zeros);
}
END_TEST

/* NNI's compute_target_sparsity, written out independently. */
static double
agp_formula (double si, double sf, int start, int end, int freq, int epoch)
{
  if (end <= start || si >= sf || end <= epoch)
    return sf;
  int span = ((end - start - 1) / freq) * freq;
  return sf + (si - sf) * pow (1.0 - (double) (epoch - start) / span, 3);
}

START_TEST (test_agp_schedule)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.01 }, &err);
  g_autoptr (NnicConfigList) cl = nnic_test_config (
      "[{\"initial_sparsity\": 0.1, \"final_sparsity\": 0.8, \"start_epoch\": 0, \"end_epoch\": 5,"
      "  \"frequency\": 2, \"op_types\": [\"default\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "agp", cl, opt, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_str_eq (nnic_compressor_masker (c), "level");
  ck_assert (nnic_compressor_compress (c, &err));
  NnicWrapper *fc1 = nnic_compressor_find_wrapper (c, "fc1");
  double last = 0;
  for (int epoch = 0; epoch < 7; epoch++) {
    ck_assert (nnic_compressor_update_epoch (c, (guint) epoch, &err));
    nnic_test_train_step (m, opt, (guint64) epoch);
    /* Masks move only on due epochs: (epoch - start) % frequency == 0. */
    double want = epoch % 2 == 0 ? agp_formula (0.1, 0.8, 0, 5, 2, epoch) : last;
    ck_assert_msg (fabs (nnic_wrapper_sparsity (fc1) - want) < 1e-5, "epoch %d: sparsity %g, NNI's formula %g",
                   epoch, nnic_wrapper_sparsity (fc1), want);
    last = want;
  }
  /* NNI's own example (ANCHORS.md): 0 -> 0.8 over epochs 0-3 gives 0, 0.7, 0.8. */
  ck_assert_double_eq_tol (agp_formula (0, 0.8, 0, 3, 1, 1), 0.7, 1e-12);
}
END_TEST

START_TEST (test_agp_bad_span)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config (
      "[{\"final_sparsity\": 0.8, \"start_epoch\": 0, \"end_epoch\": 2, \"frequency\": 2, \"op_types\": [\"default\"]}]");
  ck_assert_ptr_null (nnic_compressor_new (m, "agp", cl, NULL, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "must exceed frequency");
  g_clear_error (&err);
  ck_assert_ptr_null (nnic_compressor_new (m, "agp", cl, NULL, &(NnicCompressorOptions) { .masker = "naive" }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "'naive' is a quantizer, not a masker");
  g_clear_error (&err);
}
END_TEST

typedef struct {
  int calls;
} Count;

static void
collect (NnicCompressor *c, NnicWrapper *w, const NnicTensor *out, gpointer user_data)
{
  (void) c;
  (void) w;
  (void) out;
  ((Count *) user_data)->calls++;
}

START_TEST (test_collectors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config ("[{\"sparsity\": 0.5, \"op_types\": [\"Conv2d\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "level", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  Count a = { 0 }, b = { 0 };
  guint ia = nnic_compressor_add_activation_collector (c, collect, &a, NULL, &err);
  guint ib = nnic_compressor_add_activation_collector (c, collect, &b, NULL, &err);
  ck_assert_uint_ne (ia, ib);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 2, (int64_t) 1, (int64_t) 28, (int64_t) 28);
  nnic_model_forward (m, x, &err);
  ck_assert_int_eq (a.calls, 2); /* conv1 and conv2 */
  ck_assert_int_eq (b.calls, 2);
  ck_assert (nnic_compressor_remove_activation_collector (c, ia, &err));
  nnic_model_forward (m, x, &err);
  ck_assert_int_eq (a.calls, 2);
  ck_assert_int_eq (b.calls, 4);
  ck_assert (!nnic_compressor_remove_activation_collector (c, ia, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "no activation collector with id");
  g_clear_error (&err);
  ck_assert (!nnic_compressor_remove_activation_collector (c, 999, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "999");
  g_clear_error (&err);
}
END_TEST

START_TEST (test_attributes)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config ("[{\"sparsity\": 0.5, \"op_names\": [\"conv1\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "level", cl, NULL, NULL, &err);
  NnicWrapper *w = nnic_compressor_wrapper (c, 0);
  double v = 0;
  ck_assert (!nnic_wrapper_get_attribute_double (w, "if_calculated", &v));
  ck_assert (nnic_wrapper_set_attribute_double (w, "if_calculated", 1.0, &err));
  ck_assert (nnic_wrapper_get_attribute_double (w, "if_calculated", &v));
  ck_assert_double_eq (v, 1.0);
  NnicTensor *t = nnic_tensor_new_f32 (&err, 1, (int64_t) 20);
  ck_assert (nnic_wrapper_set_attribute_tensor (w, "contribution", t, &err));
  ck_assert_ptr_eq (nnic_wrapper_get_attribute_tensor (w, "contribution"), t);
  ck_assert (!nnic_wrapper_set_attribute_double (w, "a.b", 1.0, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "without dots");
  g_clear_error (&err);
}
END_TEST

/* nnic_wrapper_publish_quant / nnic_wrapper_get_quant: the six attributes
 * under their names, read back; an unpublished type is FALSE. */
START_TEST (test_quant_params)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config ("[{\"sparsity\": 0.5, \"op_names\": [\"conv1\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "level", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicWrapper *w = nnic_compressor_wrapper (c, 0);
  NnicQuantParams q = { .scale = 42 };
  for (guint k = 0; k < 3; k++) {
    static const NnicQuantType types[] = { NNIC_QUANT_WEIGHT, NNIC_QUANT_INPUT, NNIC_QUANT_OUTPUT };
    ck_assert (!nnic_wrapper_get_quant (w, types[k], &q));
    ck_assert (!nnic_wrapper_get_quant (w, types[k], NULL));
  }
  ck_assert_double_eq (q.scale, 42); /* untouched when FALSE */

  const NnicQuantParams p = { .scale = 0.0123, .zero_point = 17, .bits = 6, .is_signed = FALSE,
                              .min = -0.25, .max = 1.5 };
  ck_assert (nnic_wrapper_publish_quant (w, NNIC_QUANT_OUTPUT, &p, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_wrapper_get_quant (w, NNIC_QUANT_OUTPUT, &q));
  ck_assert_double_eq (q.scale, 0.0123);
  ck_assert_double_eq (q.zero_point, 17);
  ck_assert_int_eq (q.bits, 6);
  ck_assert (!q.is_signed);
  ck_assert_double_eq (q.min, -0.25);
  ck_assert_double_eq (q.max, 1.5);
  static const struct {
    const char *name;
    double v;
  } attrs[] = { { "output_scale", 0.0123 }, { "output_zero_point", 17 }, { "output_bits", 6 },
                { "output_signed", 0 },     { "output_min", -0.25 },     { "output_max", 1.5 } };
  for (guint k = 0; k < G_N_ELEMENTS (attrs); k++) {
    double v = NAN;
    ck_assert_msg (nnic_wrapper_get_attribute_double (w, attrs[k].name, &v), "%s", attrs[k].name);
    ck_assert_double_eq (v, attrs[k].v);
  }
  /* only that type */
  ck_assert (!nnic_wrapper_get_quant (w, NNIC_QUANT_WEIGHT, &q));
  ck_assert (!nnic_wrapper_get_quant (w, NNIC_QUANT_INPUT, &q));
  ck_assert (!nnic_wrapper_get_attribute_double (w, "weight_scale", NULL));

  /* Publishing again replaces the values; signed is stored as 1. */
  const NnicQuantParams p2 = { .scale = 0.5, .zero_point = 0, .bits = 8, .is_signed = 7, .min = -64, .max = 63.5 };
  ck_assert (nnic_wrapper_publish_quant (w, NNIC_QUANT_WEIGHT, &p2, &err));
  ck_assert (nnic_wrapper_publish_quant (w, NNIC_QUANT_OUTPUT, &p2, &err));
  NNIC_ASSERT_NO_ERROR (err);
  double v = 0;
  ck_assert (nnic_wrapper_get_attribute_double (w, "weight_signed", &v));
  ck_assert_double_eq (v, 1);
  ck_assert (nnic_wrapper_get_quant (w, NNIC_QUANT_OUTPUT, &q));
  ck_assert_double_eq (q.scale, 0.5);
  ck_assert_int_eq (q.bits, 8);
  ck_assert (q.is_signed);
  ck_assert_double_eq (q.max, 63.5);

  /* Set by hand, as older checkpoints may hold: absent values read as
   * zero point 0, 8 bits, unsigned, min/max NaN; bits that are no whole
   * number read as -1. */
  ck_assert (nnic_wrapper_set_attribute_double (w, "input_scale", 0.25, &err));
  ck_assert (nnic_wrapper_get_quant (w, NNIC_QUANT_INPUT, &q));
  ck_assert_double_eq (q.scale, 0.25);
  ck_assert_double_eq (q.zero_point, 0);
  ck_assert_int_eq (q.bits, 8);
  ck_assert (!q.is_signed);
  ck_assert (isnan (q.min) && isnan (q.max));
  ck_assert (nnic_wrapper_set_attribute_double (w, "input_bits", 4.5, &err));
  ck_assert (nnic_wrapper_get_quant (w, NNIC_QUANT_INPUT, &q));
  ck_assert_int_eq (q.bits, -1);
  ck_assert (nnic_wrapper_set_attribute_double (w, "input_bits", NAN, &err));
  ck_assert (nnic_wrapper_get_quant (w, NNIC_QUANT_INPUT, &q));
  ck_assert_int_eq (q.bits, -1);

  /* A type that is not one of the three is an error. */
  ck_assert (!nnic_wrapper_publish_quant (w, NNIC_QUANT_WEIGHT | NNIC_QUANT_OUTPUT, &p, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "quant type");
  g_clear_error (&err);
  ck_assert (!nnic_wrapper_get_quant (w, NNIC_QUANT_WEIGHT | NNIC_QUANT_OUTPUT, &q));
}
END_TEST

/* NNI's NaiveQuantizer.quantize_weight for a fresh wrapper. */
static void
naive_by_hand (NnicTensor *w)
{
  float max = 0;
  for (int64_t i = 0; i < w->numel; i++)
    max = fmaxf (max, fabsf (w->f32[i]));
  float scale = (float) (max / 127.0);
  for (int64_t i = 0; i < w->numel; i++)
    w->f32[i] = truncf (w->f32[i] / scale) * scale;
}

START_TEST (test_naive_quantizer)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicModel) ref = cnn ();
  for (guint i = 0; i < nnic_model_n_params (ref); i++) {
    NnicParam *p = nnic_model_param (ref, i);
    if (g_str_has_suffix (p->name, ".weight"))
      naive_by_hand (p->value);
  }
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.01, .momentum = 0.5 }, &err);
  g_autoptr (NnicConfigList) cl = nnic_test_config (
      "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\", \"Linear\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "naive", cl, opt, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  NNIC_ASSERT_NO_ERROR (err);

  /* Forward reads the quantized weights: the same output as a model whose
   * weights were quantized by hand with NNI's formula. */
  NnicRng r;
  nnic_rng_seed (&r, 3);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 2, (int64_t) 1, (int64_t) 28, (int64_t) 28);
  for (int64_t i = 0; i < x->numel; i++)
    x->f32[i] = (float) nnic_rng_uniform (&r);
  g_autoptr (NnicTensor) y = nnic_tensor_copy (nnic_model_forward (m, x, &err), &err);
  const NnicTensor *y_ref = nnic_model_forward (ref, x, &err);
  for (int64_t i = 0; i < y->numel; i++)
    ck_assert_float_eq_tol (y->f32[i], y_ref->f32[i], 1e-5);
  NnicWrapper *w = nnic_compressor_find_wrapper (c, "fc1");
  double scale = 0;
  ck_assert (nnic_wrapper_get_attribute_double (w, "weight_scale", &scale));
  ck_assert (scale > 0);

  /* Training updates the real float weights (straight-through gradient). */
  g_autoptr (NnicTensor) before = nnic_tensor_copy (nnic_wrapper_weight (w), &err);
  nnic_test_train_step (m, opt, 1);
  NnicTensor *after = nnic_wrapper_weight (w);
  int moved = 0;
  for (int64_t i = 0; i < after->numel; i++)
    moved += after->f32[i] != before->f32[i];
  ck_assert_int_gt (moved, after->numel / 4);

  g_autoptr (NnicConfigList) bad = nnic_test_config (
      "[{\"quant_types\": [\"output\"], \"quant_bits\": 8, \"op_types\": [\"Linear\"]}]");
  g_autoptr (NnicCompressor) c2 = nnic_compressor_new (m, "naive", bad, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (!nnic_compressor_compress (c2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "naive quantizes weights only");
  g_clear_error (&err);
}
END_TEST

/* fc2 with its input rounded to 0.5 steps and its output clamped to
 * [-1, 1] by the test quantizer, forward and backward checked by hand. */
START_TEST (test_input_output_quantization)
{
  GError *err = NULL;
  g_autofree char *path = g_strconcat (g_getenv ("NNIC_PLUGIN_PATH"), ":", NNIC_TEST_PLUGINS_QUANT, NULL);
  setenv ("NNIC_PLUGIN_PATH", path, 1);
  nnic_registry_reset ();
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config (
      "[{\"quant_types\": [\"input\", \"output\"], \"quant_bits\": 8, \"op_names\": [\"fc2\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "test_clip_quant", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  /* Larger weights, so that some outputs fall outside [-1, 1]. */
  NnicParam *w = nnic_model_find_param (m, "fc2.weight", &err), *b = nnic_model_find_param (m, "fc2.bias", &err);
  for (int64_t i = 0; i < w->value->numel; i++)
    w->value->f32[i] *= 8.0f;

  NnicRng r;
  nnic_rng_seed (&r, 4);
  const int64_t B = 3, IN = 500, OUT = 10;
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, B, (int64_t) 1, (int64_t) 28, (int64_t) 28);
  for (int64_t i = 0; i < x->numel; i++)
    x->f32[i] = (float) (nnic_rng_uniform (&r) * 4.0);
  g_autoptr (NnicTensor) y = nnic_tensor_copy (nnic_model_forward (m, x, &err), &err);
  NNIC_ASSERT_NO_ERROR (err);
  /* relu3 itself is not changed: fc2 quantizes a private copy. */
  const NnicTensor *h = nnic_model_node_output (m, "relu3");
  gboolean fractional = FALSE;
  for (int64_t i = 0; i < h->numel; i++)
    fractional |= h->f32[i] * 2.0f != roundf (h->f32[i] * 2.0f);
  ck_assert (fractional);

  g_autoptr (NnicTensor) g = nnic_tensor_new_like (y, &err);
  nnic_tensor_fill (g, 1.0f);
  nnic_model_zero_grad (m);
  ck_assert (nnic_model_backward (m, g, &err));
  int clipped = 0;
  for (int64_t bi = 0; bi < B; bi++)
    for (int64_t o = 0; o < OUT; o++) {
      double pre = b->value->f32[o];
      for (int64_t i = 0; i < IN; i++)
        pre += (double) w->value->f32[o * IN + i] * (roundf (h->f32[bi * IN + i] * 2.0f) / 2.0f);
      ck_assert_float_eq_tol (y->f32[bi * OUT + o], (float) fmin (1.0, fmax (-1.0, pre)), 1e-3);
      clipped += fabs (pre) > 1.0;
    }
  ck_assert_int_gt (clipped, 0);
  /* ClipGrad: fc2's bias gradient counts only the outputs inside [-1, 1]. */
  for (int64_t o = 0; o < OUT; o++) {
    double want = 0;
    for (int64_t bi = 0; bi < B; bi++) {
      double pre = b->value->f32[o];
      for (int64_t i = 0; i < IN; i++)
        pre += (double) w->value->f32[o * IN + i] * (roundf (h->f32[bi * IN + i] * 2.0f) / 2.0f);
      want += fabs (pre) > 1.0 ? 0.0 : 1.0;
    }
    ck_assert_float_eq_tol (b->grad->f32[o], (float) want, 1e-4);
  }
  /* The input's own backward (halving) ran before the gradient reached
   * relu3: fc1's bias gradient is sum_b [0 < fc1 < 6] * 0.5 * sum_o
   * clip(b, o) * W[o, j]. */
  const NnicTensor *f1 = nnic_model_node_output (m, "fc1");
  const NnicTensor *gb1 = nnic_model_find_param (m, "fc1.bias", &err)->grad;
  for (int64_t j = 0; j < IN; j += 37) {
    double want = 0;
    for (int64_t bi = 0; bi < B; bi++) {
      float v = f1->f32[bi * IN + j];
      if (!(v > 0.0f && v < 6.0f))
        continue;
      for (int64_t o = 0; o < OUT; o++) {
        double pre = b->value->f32[o];
        for (int64_t i = 0; i < IN; i++)
          pre += (double) w->value->f32[o * IN + i] * (roundf (h->f32[bi * IN + i] * 2.0f) / 2.0f);
        want += 0.5 * (fabs (pre) > 1.0 ? 0.0 : 1.0) * w->value->f32[o * IN + j];
      }
    }
    ck_assert_float_eq_tol (gb1->f32[j], (float) want, 1e-4);
  }
}
END_TEST

START_TEST (test_checkpoint_round_trip)
{
  GError *err = NULL;
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "ck.safetensors", NULL);
  g_autoptr (NnicConfigList) cl = nnic_test_config ("[{\"sparsity\": 0.6, \"op_types\": [\"default\"]}]");
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.05 }, &err);
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "level", cl, opt, NULL, &err);
  ck_assert (nnic_compressor_compress (c, &err));
  nnic_test_train_step (m, opt, 7);
  NnicWrapper *w = nnic_compressor_find_wrapper (c, "conv2");
  ck_assert (nnic_wrapper_set_attribute_double (w, "threshold", 0.1234567890123, &err));
  NnicTensor *t = nnic_tensor_new_f32 (&err, 1, (int64_t) 50);
  t->f32[3] = 42.0f;
  ck_assert (nnic_wrapper_set_attribute_tensor (w, "contribution", t, &err));
  ck_assert (nnic_compressor_save_checkpoint (c, path, &err));
  NNIC_ASSERT_NO_ERROR (err);

  /* A fresh model and compressor, made the same way, resume from it. */
  g_autoptr (NnicModel) m2 = cnn ();
  nnic_model_init_params (m2, 99);
  g_autoptr (NnicCompressor) c2 = nnic_compressor_new (m2, "level", cl, NULL, NULL, &err);
  ck_assert (nnic_compressor_load_checkpoint (c2, path, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_compressor_steps (c2), 1);
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *a = nnic_compressor_wrapper (c, i), *b = nnic_compressor_wrapper (c2, i);
    const NnicTensor *ma = nnic_wrapper_get_mask (a, "weight"), *mb = nnic_wrapper_get_mask (b, "weight");
    ck_assert_mem_eq (ma->data, mb->data, (size_t) ma->numel);
    ck_assert_mem_eq (nnic_wrapper_weight (a)->data, nnic_wrapper_weight (b)->data, nnic_tensor_nbytes (nnic_wrapper_weight (a)));
  }
  NnicWrapper *w2 = nnic_compressor_find_wrapper (c2, "conv2");
  double v = 0;
  ck_assert (nnic_wrapper_get_attribute_double (w2, "threshold", &v));
  ck_assert_double_eq (v, 0.1234567890123);
  ck_assert_float_eq (nnic_wrapper_get_attribute_tensor (w2, "contribution")->f32[3], 42.0f);
  /* Computing the masks again is not needed: they count as calculated. */
  ck_assert (nnic_compressor_compress (c2, &err));
  ck_assert_mem_eq (nnic_wrapper_get_mask (w2, "weight")->data, nnic_wrapper_get_mask (w, "weight")->data, 25000);

  /* A checkpoint taken before the masks exist resumes without them: the
   * next compress computes them. */
  g_autofree char *early = g_build_filename (dir, "early.safetensors", NULL);
  g_autoptr (NnicModel) m4 = cnn ();
  g_autoptr (NnicCompressor) c4 = nnic_compressor_new (m4, "level", cl, NULL, NULL, &err);
  ck_assert (nnic_compressor_save_checkpoint (c4, early, &err));
  g_autoptr (NnicCompressor) c5 = nnic_compressor_new (m2, "level", cl, NULL, NULL, &err);
  ck_assert (nnic_compressor_load_checkpoint (c5, early, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_double_eq (nnic_wrapper_sparsity (nnic_compressor_wrapper (c5, 0)), 0.0);
  ck_assert (nnic_compressor_compress (c5, &err));
  ck_assert_double_eq_tol (nnic_wrapper_sparsity (nnic_compressor_wrapper (c5, 0)), 0.6, 0.01);

  /* Another algorithm's checkpoint, or a plain weights file, is refused. */
  g_autoptr (NnicConfigList) agp = nnic_test_config ("[{\"final_sparsity\": 0.5, \"end_epoch\": 3, \"op_types\": [\"default\"]}]");
  g_autoptr (NnicCompressor) c3 = nnic_compressor_new (m2, "agp", agp, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (!nnic_compressor_load_checkpoint (c3, path, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "a checkpoint of 'level', but this compressor runs 'agp'");
  g_clear_error (&err);
  g_autofree char *plain = g_build_filename (dir, "plain.safetensors", NULL);
  ck_assert (nnic_model_save (m, plain, &err));
  ck_assert (!nnic_compressor_load_checkpoint (c2, plain, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "not an nnic compression checkpoint");
  g_clear_error (&err);
}
END_TEST

/* Output channels of a wrapper that are entirely masked (filter and bias). */
static GString *
pruned_channels (NnicWrapper *w)
{
  const NnicTensor *m = nnic_wrapper_get_mask (w, "weight");
  const int64_t channels = m->shape[0], per = m->numel / channels;
  GString *s = g_string_new (NULL);
  for (int64_t c = 0; c < channels; c++) {
    gboolean all = TRUE;
    for (int64_t j = 0; j < per; j++)
      all &= m->u8[c * per + j] == 0;
    if (all)
      g_string_append_printf (s, "%" G_GINT64_FORMAT " ", c);
  }
  return s;
}

START_TEST (test_dependency_aware)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("resnet8", 3, 32, 32, 10, &err);
  g_autoptr (NnicConfigList) cl = nnic_test_config ("[{\"sparsity\": 0.5, \"op_types\": [\"Conv2d\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "l1filter", cl, NULL,
                                                      &(NnicCompressorOptions) { .dependency_aware = TRUE }, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  NNIC_ASSERT_NO_ERROR (err);
  /* Layers whose outputs meet in an Add lose the same channels. */
  const char *sets[][2] = { { "conv1", "layer1.0.conv2" },
                            { "layer2.0.downsample.0", "layer2.0.conv2" },
                            { "layer3.0.downsample.0", "layer3.0.conv2" } };
  for (guint i = 0; i < G_N_ELEMENTS (sets); i++) {
    g_autoptr (GString) a = pruned_channels (nnic_compressor_find_wrapper (c, sets[i][0]));
    g_autoptr (GString) b = pruned_channels (nnic_compressor_find_wrapper (c, sets[i][1]));
    ck_assert_msg (g_str_equal (a->str, b->str), "%s prunes %s, %s prunes %s", sets[i][0], a->str, sets[i][1], b->str);
    ck_assert_double_eq_tol (nnic_wrapper_sparsity (nnic_compressor_find_wrapper (c, sets[i][0])), 0.5, 1e-9);
  }
  /* Without the option, the same layers pick their channels on their own. */
  g_autoptr (NnicModel) m2 = nnic_model_new_builtin ("resnet8", 3, 32, 32, 10, &err);
  g_autoptr (NnicCompressor) c2 = nnic_compressor_new (m2, "l1filter", cl, NULL, NULL, &err);
  ck_assert (nnic_compressor_compress (c2, &err));
  g_autoptr (GString) a = pruned_channels (nnic_compressor_find_wrapper (c2, "layer2.0.downsample.0"));
  g_autoptr (GString) b = pruned_channels (nnic_compressor_find_wrapper (c2, "layer2.0.conv2"));
  ck_assert (!g_str_equal (a->str, b->str));
  /* A masker without channel scores cannot run dependency-aware. */
  g_autoptr (NnicConfigList) lv = nnic_test_config ("[{\"sparsity\": 0.5, \"op_types\": [\"Conv2d\"]}]");
  g_autoptr (NnicCompressor) c3 = nnic_compressor_new (m2, "level", lv, NULL,
                                                       &(NnicCompressorOptions) { .dependency_aware = TRUE }, &err);
  ck_assert (!nnic_compressor_compress (c3, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "level cannot prune dependency-aware");
  g_clear_error (&err);
}
END_TEST

START_TEST (test_lottery_ticket)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicTensor) initial = nnic_tensor_copy (nnic_model_find_param (m, "fc1.weight", &err)->value, &err);
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.1 }, &err);
  g_autoptr (NnicConfigList) cl = nnic_test_config (
      "[{\"sparsity\": 0.8, \"op_types\": [\"default\"], \"prune_iterations\": 3, \"epochs_per_iteration\": 2}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "lottery_ticket", cl, opt, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  NnicWrapper *w = nnic_compressor_find_wrapper (c, "fc1");
  NnicTensor *wt = nnic_wrapper_weight (w);
  for (guint epoch = 0; epoch < 9; epoch++) {
    ck_assert (nnic_compressor_update_epoch (c, epoch, &err));
    NNIC_ASSERT_NO_ERROR (err);
    /* NNI's formula: 1 - ((1 - s)^(1/n))^round, a round every 2 epochs. */
    int round = MIN ((int) epoch / 2, 3);
    double want = 1.0 - pow (pow (0.2, 1.0 / 3.0), round);
    ck_assert_msg (fabs (nnic_wrapper_sparsity (w) - want) < 1e-5, "epoch %u: sparsity %g, want %g", epoch,
                   nnic_wrapper_sparsity (w), want);
    if (epoch % 2 == 0 && epoch / 2 <= 3) {
      /* A round starts from the original weights, masked. */
      const NnicTensor *mask = nnic_wrapper_get_mask (w, "weight");
      for (int64_t i = 0; i < wt->numel; i++)
        ck_assert_float_eq (wt->f32[i], mask->u8[i] ? initial->f32[i] : 0.0f);
    }
    nnic_test_train_step (m, opt, epoch);
  }
}
END_TEST

/* A score that falls as weights are pruned: the sum of |w| of all layers. */
static gboolean
weight_mass (NnicModel *m, double *score, gpointer user_data, GError **error)
{
  (void) error;
  int *calls = user_data;
  (*calls)++;
  double sum = 0;
  for (guint i = 0; i < nnic_model_n_params (m); i++) {
    NnicParam *p = nnic_model_param (m, i);
    if (g_str_has_suffix (p->name, ".weight"))
      for (int64_t k = 0; k < p->value->numel; k++)
        sum += fabsf (p->value->f32[k]);
  }
  *score = sum;
  return TRUE;
}

START_TEST (test_sensitivity_analysis)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicTensor) before = nnic_tensor_copy (nnic_model_find_param (m, "conv2.weight", &err)->value, &err);
  const double sp[] = { 0.2, 0.5, 0.8 };
  int calls = 0;
  g_autoptr (NnicSensitivity) s = nnic_sensitivity_analysis (m, "l1filter", NULL, sp, 3, weight_mass, &calls,
                                                             NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (calls, 1 + 2 * 3); /* baseline, then every Conv2d at every sparsity */
  ck_assert_uint_eq (s->layers->len, 2);
  ck_assert_str_eq (g_ptr_array_index (s->layers, 1), "conv2");
  for (guint l = 0; l < 2; l++) {
    double last = s->baseline;
    for (guint k = 0; k < 3; k++) {
      ck_assert (nnic_sensitivity_score (s, l, k) < last);
      last = nnic_sensitivity_score (s, l, k);
    }
  }
  /* The model is as it was. */
  ck_assert_mem_eq (nnic_model_find_param (m, "conv2.weight", &err)->value->data, before->data, nnic_tensor_nbytes (before));
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "s.csv", NULL);
  ck_assert (nnic_sensitivity_save_csv (s, path, &err));
  g_autofree char *text = NULL;
  ck_assert (g_file_get_contents (path, &text, NULL, NULL));
  ck_assert (g_str_has_prefix (text, "layername,0.2,0.5,0.8\nconv1,"));
  ck_assert_ptr_null (nnic_sensitivity_analysis (m, "l1filter", (const char *const[]) { "fc9", NULL }, sp, 3,
                                                 weight_mass, &calls, NULL, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "sensitivity of fc9 at sparsity 0.2");
  g_clear_error (&err);
}
END_TEST

static gboolean
train_two_steps (NnicModel *m, NnicOptimizer *opt, guint epoch, gpointer user_data, GError **error)
{
  (void) error;
  (*(int *) user_data)++;
  nnic_test_train_step (m, opt, epoch * 2);
  nnic_test_train_step (m, opt, epoch * 2 + 1);
  return TRUE;
}

START_TEST (test_admm)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config (
      "[{\"sparsity\": 0.5, \"op_types\": [\"default\"], \"num_iterations\": 2, \"training_epochs\": 3, \"row\": 0.001}]");
  int epochs = 0;
  NnicCompressorOptions o = { .masker = "level", .trainer = train_two_steps, .trainer_data = &epochs };
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "admm", cl, NULL, &o, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (epochs, 2 * 3);
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    ck_assert_double_eq_tol (nnic_wrapper_sparsity (w), 0.5, 0.01);
    const NnicTensor *mask = nnic_wrapper_get_mask (w, "weight");
    for (int64_t k = 0; k < mask->numel; k++)
      if (!mask->u8[k])
        ck_assert_float_eq (nnic_wrapper_weight (w)->f32[k], 0.0f);
  }
  /* Without a trainer it says what it needs. */
  g_autoptr (NnicCompressor) c2 = nnic_compressor_new (m, "admm", cl, NULL, NULL, &err);
  ck_assert (!nnic_compressor_compress (c2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "admm trains while it prunes and needs a trainer");
  g_clear_error (&err);
}
END_TEST

/* For simulated annealing: the evaluator's calls and the best score seen. */
typedef struct {
  int calls;
  double best;
  gboolean constant;
} SaScores;

static gboolean
sa_score (NnicModel *m, double *score, gpointer user_data, GError **error)
{
  SaScores *s = user_data;
  int calls = 0;
  if (!weight_mass (m, score, &calls, error))
    return FALSE;
  if (s->constant)
    *score = 1.0;
  s->calls++;
  s->best = MAX (s->best, *score);
  return TRUE;
}

static NnicCompressor *
sa_run (NnicModel *m, const char *json, SaScores *scores)
{
  GError *err = NULL;
  g_autoptr (NnicConfigList) cl = nnic_test_config (json);
  NnicCompressorOptions o = { .evaluator = sa_score, .evaluator_data = scores };
  scores->calls = 0;
  scores->best = -INFINITY;
  NnicCompressor *c = nnic_compressor_new (m, "simulated_annealing", cl, NULL, &o, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  NNIC_ASSERT_NO_ERROR (err);
  return c;
}

START_TEST (test_simulated_annealing)
{
  GError *err = NULL;
  const char *json = "[{\"sparsity\": 0.5, \"op_types\": [\"default\"], \"start_temperature\": 100, "
                     "\"stop_temperature\": 50, \"cool_down_rate\": 0.8}]";
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicTensor) fc1 = nnic_tensor_copy (nnic_model_find_param (m, "fc1.weight", &err)->value, &err);
  SaScores scores = { 0 };
  g_autoptr (NnicCompressor) c = sa_run (m, json, &scores);
  /* Temperatures 100, 80, 64, 51.2: four steps, each ending with an
   * accepted candidate (NNI draws again after a rejected one). */
  ck_assert_int_ge (scores.calls, 4);
  ck_assert_uint_eq (nnic_compressor_n_wrappers (c), 4);
  int64_t zeros = 0, total = 0;
  gboolean uneven = FALSE;
  for (guint i = 0; i < 4; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    const NnicTensor *mask = nnic_wrapper_get_mask (w, "weight");
    for (int64_t k = 0; k < mask->numel; k++)
      zeros += !mask->u8[k];
    total += mask->numel;
    double chosen;
    ck_assert (nnic_wrapper_get_attribute_double (w, "sa_sparsity", &chosen));
    ck_assert_double_eq_tol (nnic_wrapper_sparsity (w), chosen, 0.01);
    uneven |= fabs (chosen - 0.5) > 0.01;
  }
  ck_assert_double_eq_tol ((double) zeros / (double) total, 0.5, 0.02);
  ck_assert (uneven); /* a search, not the uniform sparsity */
  /* The original weights, with the best candidate's masks. */
  NnicWrapper *w = nnic_compressor_find_wrapper (c, "fc1");
  const NnicTensor *mask = nnic_wrapper_get_mask (w, "weight");
  for (int64_t k = 0; k < fc1->numel; k++)
    ck_assert_float_eq (nnic_wrapper_weight (w)->f32[k], mask->u8[k] ? fc1->f32[k] : 0.0f);
  double best = scores.best, now;
  int calls = scores.calls;
  ck_assert (nnic_compressor_evaluate (c, &now, &err));
  ck_assert_double_eq (now, best);

  /* The same seed, the same masks; another seed, others. */
  g_autoptr (NnicModel) m2 = cnn ();
  SaScores scores2 = { 0 };
  g_autoptr (NnicCompressor) c2 = sa_run (m2, json, &scores2);
  ck_assert_int_eq (scores2.calls, calls);
  g_autoptr (NnicModel) m3 = cnn ();
  SaScores scores3 = { 0 };
  g_autoptr (NnicCompressor) c3 = sa_run (m3,
      "[{\"sparsity\": 0.5, \"op_types\": [\"default\"], \"start_temperature\": 100, "
      "\"stop_temperature\": 50, \"cool_down_rate\": 0.8, \"seed\": 7}]", &scores3);
  gboolean differs = FALSE;
  for (guint i = 0; i < 4; i++) {
    const NnicTensor *a = nnic_wrapper_get_mask (nnic_compressor_wrapper (c, i), "weight");
    ck_assert_mem_eq (a->data, nnic_wrapper_get_mask (nnic_compressor_wrapper (c2, i), "weight")->data,
                      nnic_tensor_nbytes (a));
    differs |= memcmp (a->data, nnic_wrapper_get_mask (nnic_compressor_wrapper (c3, i), "weight")->data,
                       nnic_tensor_nbytes (a)) != 0;
  }
  ck_assert (differs);

  /* A score that never changes accepts every candidate: one evaluation a step. */
  g_autoptr (NnicModel) m4 = cnn ();
  SaScores flat = { .constant = TRUE };
  g_autoptr (NnicCompressor) c4 = sa_run (m4, json, &flat);
  ck_assert_int_eq (flat.calls, 4);

  /* Without an evaluator it says what it needs, and leaves the weights. */
  g_autoptr (NnicModel) m5 = cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config (json);
  g_autoptr (NnicCompressor) c5 = nnic_compressor_new (m5, "simulated_annealing", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (!nnic_compressor_compress (c5, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "simulated_annealing searches by scoring the model and needs an evaluator");
  g_clear_error (&err);
  ck_assert_mem_eq (nnic_model_find_param (m5, "fc1.weight", &err)->value->data, fc1->data, nnic_tensor_nbytes (fc1));
  ck_assert_double_eq (nnic_wrapper_sparsity (nnic_compressor_find_wrapper (c5, "fc1")), 0.0);
}
END_TEST

/* For netadapt: the evaluator's calls (the weights' mass) and the trainer's epochs. */
typedef struct {
  int calls, epochs;
} NaCounts;

static gboolean
na_score (NnicModel *m, double *score, gpointer user_data, GError **error)
{
  int calls = 0;
  ((NaCounts *) user_data)->calls++;
  return weight_mass (m, score, &calls, error);
}

static gboolean
na_train (NnicModel *m, NnicOptimizer *opt, guint epoch, gpointer user_data, GError **error)
{
  ((NaCounts *) user_data)->epochs++;
  int dummy = 0;
  return train_two_steps (m, opt, epoch, &dummy, error);
}

START_TEST (test_netadapt)
{
  GError *err = NULL;
  const char *json = "[{\"sparsity\": 0.3, \"op_types\": [\"default\"], \"sparsity_per_iteration\": 0.1}]";
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config (json);
  NaCounts n = { 0 };
  NnicCompressorOptions o = { .trainer = na_train, .trainer_data = &n, .evaluator = na_score, .evaluator_data = &n };
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "netadapt", cl, NULL, &o, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_compressor_n_wrappers (c), 4);
  /* What the algorithm implies: iterations to 0.1, 0.2, 0.3; in each one
   * every layer that still has more weights than the step needs is tried
   * (one short-term fine-tune and one evaluation each). */
  int64_t total = 0, numel[4], zeros[4] = { 0 };
  for (guint i = 0; i < 4; i++)
    total += numel[i] = nnic_wrapper_weight (nnic_compressor_wrapper (c, i))->numel;
  ck_assert_int_eq (total, 500 + 25000 + 400000 + 5000);
  int expected = 0;
  int64_t pruned = 0;
  for (int it = 1; it <= 3; it++) {
    int64_t need = (int64_t) ceil (0.1 * it * (double) total) - pruned;
    for (guint i = 0; i < 4; i++)
      expected += zeros[i] + need < numel[i];
    /* 43050 weights a step: only fc1 (400000) has them. */
    zeros[2] += need;
    pruned += need;
  }
  ck_assert_int_eq (expected, 3);
  ck_assert_int_eq (n.calls, expected);
  ck_assert_int_eq (n.epochs, expected);
  int64_t masked = 0;
  for (guint i = 0; i < 4; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    const NnicTensor *mask = nnic_wrapper_get_mask (w, "weight");
    int64_t z = 0;
    for (int64_t k = 0; k < mask->numel; k++) {
      z += !mask->u8[k];
      if (!mask->u8[k])
        ck_assert_float_eq (nnic_wrapper_weight (w)->f32[k], 0.0f);
    }
    masked += z;
    double chosen;
    ck_assert (nnic_wrapper_get_attribute_double (w, "netadapt_sparsity", &chosen));
    ck_assert_double_eq_tol (chosen, (double) z / (double) mask->numel, 1e-6);
    ck_assert_int_eq (z, zeros[i]);
  }
  const double overall = (double) masked / (double) total;
  ck_assert (overall >= 0.3);
  ck_assert (overall < 0.3 + 0.1);
  /* The adopted model is the fine-tuned, evaluated one. */
  int calls = n.calls;
  double now;
  ck_assert (nnic_compressor_evaluate (c, &now, &err));
  ck_assert_int_eq (n.calls, calls + 1);

  /* Without an evaluator or a trainer it says what it needs, and leaves
   * the model as it was. */
  g_autoptr (NnicModel) m2 = cnn ();
  g_autoptr (NnicTensor) fc1 = nnic_tensor_copy (nnic_model_find_param (m2, "fc1.weight", &err)->value, &err);
  NnicCompressorOptions no_eval = { .trainer = na_train, .trainer_data = &n };
  g_autoptr (NnicCompressor) c2 = nnic_compressor_new (m2, "netadapt", cl, NULL, &no_eval, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (!nnic_compressor_compress (c2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "netadapt searches by scoring the model and needs an evaluator");
  g_clear_error (&err);
  ck_assert_mem_eq (nnic_model_find_param (m2, "fc1.weight", &err)->value->data, fc1->data, nnic_tensor_nbytes (fc1));
  ck_assert_double_eq (nnic_wrapper_sparsity (nnic_compressor_find_wrapper (c2, "fc1")), 0.0);
  g_autoptr (NnicModel) m3 = cnn ();
  NnicCompressorOptions no_train = { .evaluator = na_score, .evaluator_data = &n };
  g_autoptr (NnicCompressor) c3 = nnic_compressor_new (m3, "netadapt", cl, NULL, &no_train, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (!nnic_compressor_compress (c3, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "netadapt trains while it prunes and needs a trainer");
  g_clear_error (&err);
  ck_assert_double_eq (nnic_wrapper_sparsity (nnic_compressor_find_wrapper (c3, "fc1")), 0.0);
  /* Layers too small for the overall target are refused up front. */
  g_autoptr (NnicModel) small = cnn ();
  g_autoptr (NnicConfigList) convs = nnic_test_config ("[{\"sparsity\": 0.5, \"op_types\": [\"Conv2d\"]}]");
  NnicCompressorOptions lv = { .masker = "level" };
  ck_assert_ptr_null (nnic_compressor_new (small, "netadapt", convs, NULL, &lv, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "netadapt: the configured layers hold 25500 of the model's 430500 Conv2d and Linear weights (5.9%), too few for the overall sparsity 0.5");
  g_clear_error (&err);
}
END_TEST

/* For sensitivity: the weights' mass relative to the unpruned model's, so
 * that acc_drop_threshold is a share of it. */
typedef struct {
  double reference;
  int calls;
} SpScore;

static gboolean
sp_score (NnicModel *m, double *score, gpointer user_data, GError **error)
{
  SpScore *s = user_data;
  int dummy = 0;
  if (!weight_mass (m, score, &dummy, error))
    return FALSE;
  s->calls++;
  *score /= s->reference;
  return TRUE;
}

START_TEST (test_sensitivity_pruner)
{
  GError *err = NULL;
  const char *json = "[{\"sparsity\": 0.5, \"op_types\": [\"default\"]}]";
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config (json);
  SpScore sc = { 1.0, 0 };
  int dummy = 0;
  ck_assert (weight_mass (m, &sc.reference, &dummy, &err));
  NnicCompressorOptions o = { .evaluator = sp_score, .evaluator_data = &sc };
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "sensitivity", cl, NULL, &o, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_compressor_n_wrappers (c), 4);
  /* At least five iterations of 0.1 (the default sparsity_per_iteration),
   * each scoring every layer at least once. */
  ck_assert_int_ge (sc.calls, 1 + 5 * (1 + 4));
  int64_t masked = 0, total = 0;
  for (guint i = 0; i < 4; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    const NnicTensor *mask = nnic_wrapper_get_mask (w, "weight");
    int64_t z = 0;
    for (int64_t k = 0; k < mask->numel; k++) {
      z += !mask->u8[k];
      if (!mask->u8[k])
        ck_assert_float_eq (nnic_wrapper_weight (w)->f32[k], 0.0f);
    }
    masked += z;
    total += mask->numel;
    double chosen;
    ck_assert (nnic_wrapper_get_attribute_double (w, "sensitivity_sparsity", &chosen));
    ck_assert_double_eq_tol (chosen, (double) z / (double) mask->numel, 1e-9);
  }
  const double overall = (double) masked / (double) total;
  /* The target, short by no more than the rounding to whole weights. */
  ck_assert (overall > 0.5 - 1e-3);
  ck_assert (overall < 0.5 + 0.1);
  /* conv1 holds little of the mass and stays within the threshold to 0.9;
   * fc1 holds most of it: the insensitive layer is pruned harder. */
  ck_assert (nnic_wrapper_sparsity (nnic_compressor_find_wrapper (c, "conv1")) >
             nnic_wrapper_sparsity (nnic_compressor_find_wrapper (c, "fc1")));

  /* Without an evaluator it says what it needs, and leaves the weights. */
  g_autoptr (NnicModel) m2 = cnn ();
  g_autoptr (NnicTensor) fc1 = nnic_tensor_copy (nnic_model_find_param (m2, "fc1.weight", &err)->value, &err);
  g_autoptr (NnicCompressor) c2 = nnic_compressor_new (m2, "sensitivity", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (!nnic_compressor_compress (c2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "sensitivity searches by scoring the model and needs an evaluator");
  g_clear_error (&err);
  ck_assert_mem_eq (nnic_model_find_param (m2, "fc1.weight", &err)->value->data, fc1->data, nnic_tensor_nbytes (fc1));
  ck_assert_double_eq (nnic_wrapper_sparsity (nnic_compressor_find_wrapper (c2, "fc1")), 0.0);

  /* Fine-tuning asked for without a trainer: an error, the model as it was. */
  g_autoptr (NnicModel) m3 = cnn ();
  g_autoptr (NnicConfigList) cl3 = nnic_test_config ("[{\"sparsity\": 0.5, \"op_types\": [\"default\"], \"finetune_epochs\": 1}]");
  SpScore sc3 = { sc.reference, 0 };
  NnicCompressorOptions o3 = { .evaluator = sp_score, .evaluator_data = &sc3 };
  g_autoptr (NnicCompressor) c3 = nnic_compressor_new (m3, "sensitivity", cl3, NULL, &o3, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (!nnic_compressor_compress (c3, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "sensitivity trains while it prunes and needs a trainer");
  g_clear_error (&err);
  ck_assert_double_eq (nnic_wrapper_sparsity (nnic_compressor_find_wrapper (c3, "fc1")), 0.0);
  ck_assert_mem_eq (nnic_model_find_param (m3, "fc1.weight", &err)->value->data, fc1->data, nnic_tensor_nbytes (fc1));

  /* With a trainer: one epoch after every iteration, the masks kept. */
  g_autoptr (NnicModel) m4 = cnn ();
  NaCounts counts = { 0 };
  SpScore sc4 = { sc.reference, 0 };
  NnicCompressorOptions o4 = { .evaluator = sp_score, .evaluator_data = &sc4, .trainer = na_train,
                               .trainer_data = &counts };
  g_autoptr (NnicCompressor) c4 = nnic_compressor_new (m4, "sensitivity", cl3, NULL, &o4, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c4, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_ge (counts.epochs, 5);
  masked = 0;
  for (guint i = 0; i < 4; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c4, i);
    const NnicTensor *mask = nnic_wrapper_get_mask (w, "weight");
    for (int64_t k = 0; k < mask->numel; k++)
      if (!mask->u8[k]) {
        masked++;
        ck_assert_float_eq (nnic_wrapper_weight (w)->f32[k], 0.0f);
      }
  }
  ck_assert ((double) masked / (double) total > 0.5 - 1e-3);
  ck_assert ((double) masked / (double) total < 0.5 + 0.1);
}
END_TEST


/* auto_compress: the rounds' targets, ADMM's epochs through the trainer,
 * masks that hold and leave the masked weights at zero. */
START_TEST (test_auto_compress)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config (
      "[{\"sparsity\": 0.5, \"op_types\": [\"default\"], \"num_iterations\": 2, \"start_temperature\": 100, "
      "\"stop_temperature\": 60, \"cool_down_rate\": 0.8, \"admm_num_iterations\": 2, "
      "\"admm_training_epochs\": 1, \"row\": 0.001}]");
  NaCounts counts = { 0 };
  NnicCompressorOptions o = { .masker = "level", .trainer = na_train, .trainer_data = &counts,
                              .evaluator = na_score, .evaluator_data = &counts };
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "auto_compress", cl, NULL, &o, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  NNIC_ASSERT_NO_ERROR (err);
  /* 2 rounds x 2 ADMM iterations x 1 epoch; temperatures 100, 80, 64 give
   * at least three scored candidates a round, and each round ends scored. */
  ck_assert_int_eq (counts.epochs, 2 * 2 * 1);
  ck_assert_int_ge (counts.calls, 2 * 3 + 2);
  int64_t zeros = 0, total = 0;
  gboolean uneven = FALSE;
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    const NnicTensor *mask = nnic_wrapper_get_mask (w, "weight");
    ck_assert_ptr_nonnull (mask);
    for (int64_t k = 0; k < mask->numel; k++) {
      zeros += !mask->u8[k];
      if (!mask->u8[k])
        ck_assert_float_eq (nnic_wrapper_weight (w)->f32[k], 0.0f);
    }
    total += mask->numel;
    uneven |= fabs (nnic_wrapper_sparsity (w) - 0.5) > 0.02;
  }
  /* The second round's target is the overall sparsity; a layer keeps what
   * the first round took, so the union may exceed it a little. */
  double overall = (double) zeros / (double) total;
  ck_assert_msg (overall >= 0.49 && overall <= 0.56, "overall sparsity %g", overall);
  ck_assert (uneven);

  /* It says what it needs. */
  g_autoptr (NnicModel) m2 = cnn ();
  NnicCompressorOptions only_trainer = { .masker = "level", .trainer = na_train, .trainer_data = &counts };
  g_autoptr (NnicCompressor) c2 = nnic_compressor_new (m2, "auto_compress", cl, NULL, &only_trainer, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (!nnic_compressor_compress (c2, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "auto_compress searches by scoring the model and needs an evaluator");
  g_clear_error (&err);
}
END_TEST

START_TEST (test_creation_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = cnn ();
  g_autoptr (NnicConfigList) cl = nnic_test_config ("[{\"sparsity\": 0.5, \"op_types\": [\"ReLU6\"]}]");
  ck_assert_ptr_null (nnic_compressor_new (m, "level", cl, NULL, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "selects 'relu1' (ReLU6), which has no weight to prune");
  g_clear_error (&err);
  ck_assert_ptr_null (nnic_compressor_new (m, "levle", cl, NULL, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "did you mean 'level'");
  g_clear_error (&err);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("compress");
  TCase *tc = tcase_create ("compress");
  tcase_add_test (tc, test_level_masks_stay_through_training_and_export);
  tcase_add_test (tc, test_no_optimizer_masks_in_forward);
  tcase_add_test (tc, test_agp_schedule);
  tcase_add_test (tc, test_agp_bad_span);
  tcase_add_test (tc, test_collectors);
  tcase_add_test (tc, test_attributes);
  tcase_add_test (tc, test_quant_params);
  tcase_add_test (tc, test_naive_quantizer);
  tcase_add_test (tc, test_creation_errors);
  tcase_add_test (tc, test_input_output_quantization);
  tcase_add_test (tc, test_checkpoint_round_trip);
  tcase_add_test (tc, test_dependency_aware);
  tcase_add_test (tc, test_lottery_ticket);
  tcase_add_test (tc, test_sensitivity_analysis);
  tcase_add_test (tc, test_admm);
  tcase_add_test (tc, test_simulated_annealing);
  tcase_add_test (tc, test_auto_compress);
  tcase_add_test (tc, test_netadapt);
  tcase_add_test (tc, test_sensitivity_pruner);
  suite_add_tcase (s, tc);
  return nnic_test_run (s);
}
