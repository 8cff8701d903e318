/* dorefa: NNI's DoReFaQuantizer (Zhou et al., "DoReFa-Net", 2016), as in
 * NNI v1.9 (src/sdk/pynni/nni/compression/torch/quantization/
 * quantizers.py: DoReFaQuantizer). Weights only:
 *   t = tanh(w);  u = t / (2 max|t|) + 0.5       (in [0, 1])
 *   k = round(u * s),  s = 2^bits - 1             (round: half to even)
 *   w_q = 2 k / s - 1                             (in [-1, 1])
 * with the straight-through estimator as the backward (NNI's default
 * QuantGrad). quant_types: weight only; quant_start_step is not a DoReFa
 * key (NNI v1.9's schema refuses both, so does nnic).
 *
 * Integer representation. The grid 2k/s - 1 has an odd number s + 1 = 2^bits
 * of points and no point at 0, so no b-bit integer with an integer zero
 * point maps onto it: 0 would need the zero point s/2. The odd integers
 * q = 2k - s in [-s, s] with scale 1/s and zero point 0 do:
 *   w_q = (q - 0) * (1/s),  signed, bits + 1 wide
 * (1 bit: q = ±1, scale 1, 2 bits wide, the same as bnn). So "weight_bits"
 * is bits + 1: up to 7 bits of DoReFa fit int8; 8-bit DoReFa needs 9 bits,
 * which an int8 QDQ export refuses rather than approximates. nnic
 * computes w_q as (2k - s) * scale in float32, with scale = float(1/s), so
 * that DequantizeLinear reproduces it exactly; NNI's 2 * (k / s) - 1 may
 * differ from it in the last bit.
 *
 * Where nnic differs: an all-zero weight (max|tanh| = 0) makes NNI divide 0
 * by 0 and return NaN; nnic returns zeros (q = 0, representable in the
 * format above, though not on DoReFa's grid).
 *
 * Attributes, on each wrapper, after each quantization: "weight_scale" =
 * float(1/s), "weight_zero_point" 0, "weight_bits" = bits + 1,
 * "weight_signed" 1, "weight_min" -1, "weight_max" 1 (the grid's range).
 */
#include <nnic/plugin.h>

#include <math.h>

static gpointer
dorefa_create (NnicCompressor *c, GError **error)
{
  if (!nnic_compressor_check_quant_types (c, NNIC_QUANT_WEIGHT, error))
    return NULL;
  for (guint i = 0; i < nnic_compressor_n_config_entries (c); i++) {
    JsonObject *o = nnic_compressor_config_entry (c, i);
    if (json_object_has_member (o, "quant_start_step")) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "config_list[%u].quant_start_step: not a dorefa key (only qat has it)", i);
      return NULL;
    }
  }
  /* No state: a non-NULL token says "created". */
  return g_new0 (char, 1);
}

static void
dorefa_destroy (gpointer state)
{
  g_free (state);
}

typedef struct {
  const float *w;
  float *t;
  float twice, fs, scale;
} DoReFa;

/* t = tanh(w). */
static void
tanh_range (int64_t lo, int64_t hi, gpointer data)
{
  const DoReFa *d = data;
  const float *w = d->w;
  float *t = d->t;
  for (int64_t i = lo; i < hi; i++)
    t[i] = tanhf (w[i]);
}

/* k = round((t / 2 max + 1/2) s), w_q = (2k - s) / s, in place. */
static void
grid_range (int64_t lo, int64_t hi, gpointer data)
{
  const DoReFa *d = data;
  const float twice = d->twice, fs = d->fs, scale = d->scale;
  float *t = d->t;
  for (int64_t i = lo; i < hi; i++) {
    const float k = rintf ((t[i] / twice + 0.5f) * fs);
    t[i] = (2.0f * k - fs) * scale;
  }
}

static void
dorefa_quantize_weight (gpointer state, NnicWrapper *w, const NnicTensor *weight, NnicTensor *out)
{
  (void) state;
  const int bits = nnic_wrapper_quant_bits (w, NNIC_QUANT_WEIGHT);
  const int s = (1 << bits) - 1;
  const float fs = (float) s, scale = 1.0f / fs;
  const int64_t n = weight->numel;
  float *t = out->f32;
  /* The elementwise passes on all cores for a large layer (the same bits
   * either way); the max stays one ordered pass. */
  DoReFa d = { .w = weight->f32, .t = t, .fs = fs, .scale = scale };
  nnic_parallel_for (n, tanh_range, &d);
  float max = 0.0f;
  for (int64_t i = 0; i < n; i++)
    max = fmaxf (max, fabsf (t[i]));
  if (max > 0.0f) {
    d.twice = 2.0f * max;
    nnic_parallel_for (n, grid_range, &d);
  } else {
    for (int64_t i = 0; i < n; i++)
      t[i] = t[i] == t[i] ? 0.0f : t[i]; /* all zero (NaN stays NaN) */
  }
  const NnicQuantParams p = { .scale = scale, .zero_point = 0, .bits = bits + 1, .is_signed = TRUE,
                              .min = -1, .max = 1 };
  nnic_wrapper_publish_quant (w, NNIC_QUANT_WEIGHT, &p, NULL);
}

static const NnicQuantizerVTable dorefa_vtable = {
  .struct_size = sizeof (NnicQuantizerVTable),
  .create = dorefa_create,
  .destroy = dorefa_destroy,
  .quantize_weight = dorefa_quantize_weight,
};

static const NnicAlgorithmInfo dorefa_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_QUANTIZER,
  .name = "dorefa",
  .description = "DoReFa weight quantization: tanh, normalised to [0, 1], quantized, mapped to [-1, 1] "
                 "(NNI's DoReFaQuantizer)",
  .vtable = &dorefa_vtable,
};

static gboolean
register_dorefa (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &dorefa_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-dorefa", "1.0.0", "MIT", "DoReFa weight quantization", register_dorefa)
