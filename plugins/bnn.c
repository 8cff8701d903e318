/* bnn: NNI's BNNQuantizer (Courbariaux et al., "Binarized Neural
 * Networks", 2016), as in NNI v1.9 (src/sdk/pynni/nni/compression/torch/
 * quantization/quantizers.py: BNNQuantizer, ClipGrad).
 *
 * Weights and outputs are binarised with torch.sign, and NNI's "remove
 * zeros" step turns sign 0 into +1: x_q = -1 for x < 0, +1 for x >= 0
 * (-0.0 too; NaN stays NaN). The backward is NNI's ClipGrad: for outputs
 * the gradient is zeroed where |x| > 1 (the float output before
 * binarisation), passed unchanged elsewhere; for weights it is the
 * straight-through estimator. quant_types: weight and output (NNI v1.9's
 * schema); quant_start_step is not a BNN key (refused, as NNI's schema
 * does). quant_bits: NNI accepts any value and ignores it; so does nnic
 * (within the core's 1..8): the result is always binary.
 *
 * Integer representation. ±1 is not an integer grid of 1 bit with an
 * integer zero point (q in {0, 1} needs scale 2 and zero point 0.5; q in
 * {-1, 0} needs zero point -0.5). The integers q = ±1 with scale 1 and zero
 * point 0 are exact, in a signed 2-bit range [-2, 1] of which only -1 and
 * +1 are used. So every quantized tensor publishes "<t>_scale" 1,
 * "<t>_zero_point" 0, "<t>_bits" 2, "<t>_signed" 1, "<t>_min" -1,
 * "<t>_max" 1, and "<t>_binary" 1: the values are sign(x), one bit of
 * information each. An exporter must know that last one for outputs: a
 * QuantizeLinear with scale 1 rounds x rather than taking its sign.
 * (t = weight, output.)
 */
#include <nnic/plugin.h>

#include <math.h>

static gpointer
bnn_create (NnicCompressor *c, GError **error)
{
  if (!nnic_compressor_check_quant_types (c, NNIC_QUANT_WEIGHT | NNIC_QUANT_OUTPUT, error))
    return NULL;
  for (guint i = 0; i < nnic_compressor_n_config_entries (c); i++) {
    JsonObject *o = nnic_compressor_config_entry (c, i);
    if (json_object_has_member (o, "quant_start_step")) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "config_list[%u].quant_start_step: not a bnn key (only qat has it)", i);
      return NULL;
    }
  }
  return g_new0 (char, 1); /* no state: a non-NULL token says "created" */
}

static void
bnn_destroy (gpointer state)
{
  g_free (state);
}

static void
publish_binary (NnicWrapper *w, NnicQuantType type)
{
  static const NnicQuantParams binary = { .scale = 1, .zero_point = 0, .bits = 2, .is_signed = TRUE,
                                          .min = -1, .max = 1 };
  nnic_wrapper_publish_quant (w, type, &binary, NULL);
  nnic_wrapper_set_attribute_double (w, type == NNIC_QUANT_WEIGHT ? "weight_binary" : "output_binary", 1, NULL);
}

/* torch.sign, then 0 → +1. */
static void
binarize (const float *src, float *dst, int64_t n)
{
  for (int64_t i = 0; i < n; i++) {
    const float x = src[i];
    dst[i] = x < 0.0f ? -1.0f : x >= 0.0f ? 1.0f : x;
  }
}

static void
bnn_quantize_weight (gpointer state, NnicWrapper *w, const NnicTensor *weight, NnicTensor *out)
{
  (void) state;
  binarize (weight->f32, out->f32, weight->numel);
  publish_binary (w, NNIC_QUANT_WEIGHT);
}

static void
bnn_quantize_output (gpointer state, NnicWrapper *w, NnicTensor *y)
{
  (void) state;
  binarize (y->f32, y->f32, y->numel);
  publish_binary (w, NNIC_QUANT_OUTPUT);
}

/* ClipGrad. */
static void
bnn_quant_backward (gpointer state, NnicWrapper *w, NnicQuantType type, const NnicTensor *x, NnicTensor *grad)
{
  (void) state;
  (void) w;
  if (type != NNIC_QUANT_OUTPUT)
    return;
  for (int64_t i = 0; i < grad->numel; i++)
    if (fabsf (x->f32[i]) > 1.0f)
      grad->f32[i] = 0.0f;
}

static const NnicQuantizerVTable bnn_vtable = {
  .struct_size = sizeof (NnicQuantizerVTable),
  .create = bnn_create,
  .destroy = bnn_destroy,
  .quantize_weight = bnn_quantize_weight,
  .quantize_output = bnn_quantize_output,
  .quant_backward = bnn_quant_backward,
};

static const NnicAlgorithmInfo bnn_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_QUANTIZER,
  .name = "bnn",
  .description = "Binarized neural networks: sign of weights and outputs, clipped straight-through "
                 "gradient (NNI's BNNQuantizer)",
  .vtable = &bnn_vtable,
};

static gboolean
register_bnn (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &bnn_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-bnn", "1.0.0", "MIT", "Binarized neural networks (BNN)", register_bnn)
