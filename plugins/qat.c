/* qat: NNI's QAT_Quantizer (Jacob et al., "Quantization and Training of
 * Neural Networks for Efficient Integer-Arithmetic-Only Inference", 2018),
 * as in NNI v1.9 (src/sdk/pynni/nni/compression/torch/quantization/
 * quantizers.py: QAT_Quantizer, update_quantization_param, update_ema).
 *
 * Asymmetric, unsigned quantization with a zero point, in float32 as torch
 * computes it:
 *   [rmin, rmax] widened to hold 0; qmax = 2^bits - 1;
 *   scale = (rmax - rmin) / qmax;
 *   zero_point = clamp to [0, qmax] of round(0 - rmin / scale);
 *   q = round(clamp(zero_point + x / scale, 0, qmax));
 *   x_q = scale * (q - zero_point)
 * (round is torch.round: half to even). Weights take [rmin, rmax] from the
 * weight itself at every forward; outputs from an exponential moving
 * average of each batch's min and max, decay 0.99, with the bias
 * correction biased / (1 - 0.99^step), where step is NNI's counter: 1
 * plus the optimizer steps taken (nnic_compressor_steps). As in NNI,
 * nothing is quantized while quant_start_step > step, i.e. quantization
 * starts after quant_start_step - 1 optimizer steps (0 and 1 both mean "from
 * the start"), and the EMA starts from 0 at that step with the correction
 * of that step. The backward is the straight-through estimator (NNI's
 * default QuantGrad). Bits come from quant_bits per type (an int, or
 * {"weight": b, "output": b}); quant_types are weight and output only (NNI
 * v1.9's schema).
 *
 * Where nnic differs, and why:
 *  - The output range is tracked only in training mode (nnic_model_set_training):
 *    v1.9 also let evaluation batches move it, which NNI 2.x fixed. In
 *    evaluation the tracked range is used as is; before any training batch
 *    has been seen (step >= quant_start_step), outputs pass through
 *    unquantized, where NNI 2.x would divide by a zero scale.
 *  - A range of exactly zero (all-zero weights, an output that was all
 *    zeros) makes NNI divide 0 by 0 and return NaN; nnic takes scale =
 *    FLT_EPSILON there (what NNI 2.x's own "todo" proposes), zero point 0,
 *    so the tensor stays zero. Any other range gives NNI's numbers.
 *  - v1.9 keeps one scale/zero point per module, shared (overwritten) by
 *    weight and output; nnic keeps one per quantized tensor. The
 *    fake-quantized values are the same.
 *
 * Attributes, on each wrapper, after each quantization (t = weight,
 * output): "<t>_scale", "<t>_zero_point" (an integer in [0, 2^bits - 1]),
 * "<t>_bits", "<t>_signed" = 0 (unsigned integers q), "<t>_min",
 * "<t>_max" (the weight's own min and max; for outputs the bias-corrected
 * tracked min and max, NNI's tracked_min/tracked_max, before widening to
 * 0). x_q = (q - zero_point) * scale in float32 exactly. The EMA state is
 * kept in "output_tracked_min_biased" and "output_tracked_max_biased", so a
 * checkpoint resumes it.
 */
#include <nnic/plugin.h>

#include <float.h>
#include <math.h>
#include <string.h>

#define QAT_EMA_DECAY 0.99f

typedef struct {
  NnicCompressor *c;
} QatState;

/* ---- config ---- */

/* ---- attributes ---- */

#define BIASED_MIN "output_tracked_min_biased"
#define BIASED_MAX "output_tracked_max_biased"

/* Unsigned integers with a zero point. */
static void
publish (NnicWrapper *w, NnicQuantType type, int bits, float scale, float zero_point, float min, float max)
{
  const NnicQuantParams p = { .scale = scale, .zero_point = zero_point, .bits = bits, .is_signed = FALSE,
                              .min = min, .max = max };
  nnic_wrapper_publish_quant (w, type, &p, NULL);
}

/* ---- the arithmetic (float32, torch's order of operations) ---- */

/* update_quantization_param. */
static void
quant_params (int bits, float rmin, float rmax, float *scale, float *zero_point)
{
  rmin = rmin < 0.0f ? rmin : 0.0f;
  rmax = rmax > 0.0f ? rmax : 0.0f;
  const float qmax = (float) ((1 << bits) - 1);
  float s = (rmax - rmin) / qmax;
  if (!(s > 0.0f))
    s = FLT_EPSILON; /* a zero range: NNI's 0/0 */
  const float z = 0.0f - rmin / s;
  *scale = s;
  *zero_point = z < 0.0f ? 0.0f : z > qmax ? qmax : rintf (z);
}

typedef struct {
  float qmax, scale, zero_point;
  const float *src;
  float *dst;
} FakeQuant;

static void
fake_quantize_range (int64_t lo, int64_t hi, gpointer data)
{
  const FakeQuant *q = data;
  const float qmax = q->qmax, scale = q->scale, zero_point = q->zero_point;
  const float *src = q->src;
  float *dst = q->dst;
  for (int64_t i = lo; i < hi; i++) {
    float t = zero_point + src[i] / scale;
    t = t < 0.0f ? 0.0f : t > qmax ? qmax : t; /* NaN stays NaN, as in torch.clamp */
    dst[i] = scale * (rintf (t) - zero_point);
  }
}

/* _quantize then _dequantize, from src into dst (which may be src). */
static void
fake_quantize (int bits, float scale, float zero_point, const float *src, float *dst, int64_t n)
{
  FakeQuant q = { (float) ((1 << bits) - 1), scale, zero_point, src, dst };
  nnic_parallel_for (n, fake_quantize_range, &q);
}

static void
min_max (const float *x, int64_t n, float *min, float *max)
{
  float lo = n > 0 ? x[0] : 0.0f, hi = lo;
  for (int64_t i = 1; i < n; i++) {
    lo = x[i] < lo ? x[i] : lo;
    hi = x[i] > hi ? x[i] : hi;
  }
  *min = lo;
  *max = hi;
}

/* NNI's self.steps: 1 + optimizer steps. */
static guint64
nni_step (const QatState *s)
{
  return 1 + nnic_compressor_steps (s->c);
}

static gboolean
active (const QatState *s, NnicWrapper *w)
{
  return nnic_wrapper_config_double (w, "quant_start_step", 0) <= (double) nni_step (s);
}

/* ---- the vtable ---- */

static gpointer
qat_create (NnicCompressor *c, GError **error)
{
  /* NNI v1.9's schema: quant_types weight and output. (The core has
   * checked the rest: bits 1..8, quant_start_step >= 0, bits for every type.) */
  if (!nnic_compressor_check_quant_types (c, NNIC_QUANT_WEIGHT | NNIC_QUANT_OUTPUT, error))
    return NULL;
  QatState *s = g_new0 (QatState, 1);
  s->c = c;
  return s;
}

static void
qat_destroy (gpointer state)
{
  g_free (state);
}

static void
qat_quantize_weight (gpointer state, NnicWrapper *w, const NnicTensor *weight, NnicTensor *out)
{
  const QatState *s = state;
  if (!active (s, w)) {
    memcpy (out->f32, weight->f32, nnic_tensor_nbytes (weight));
    return;
  }
  const int bits = nnic_wrapper_quant_bits (w, NNIC_QUANT_WEIGHT);
  float rmin, rmax, scale, zero_point;
  min_max (weight->f32, weight->numel, &rmin, &rmax);
  quant_params (bits, rmin, rmax, &scale, &zero_point);
  fake_quantize (bits, scale, zero_point, weight->f32, out->f32, weight->numel);
  publish (w, NNIC_QUANT_WEIGHT, bits, scale, zero_point, rmin, rmax);
}

static void
qat_quantize_output (gpointer state, NnicWrapper *w, NnicTensor *y)
{
  const QatState *s = state;
  if (!active (s, w))
    return;
  const int bits = nnic_wrapper_quant_bits (w, NNIC_QUANT_OUTPUT);
  double biased_min = 0, biased_max = 0;
  NnicQuantParams tracked;
  float tracked_min, tracked_max;
  if (nnic_model_get_training (nnic_compressor_model (s->c))) {
    /* update_ema, in float32: the biased EMA starts at 0. */
    nnic_wrapper_get_attribute_double (w, BIASED_MIN, &biased_min);
    nnic_wrapper_get_attribute_double (w, BIASED_MAX, &biased_max);
    float cur_min, cur_max;
    min_max (y->f32, y->numel, &cur_min, &cur_max);
    const float decay = QAT_EMA_DECAY;
    const float bmin = (float) biased_min * decay + (1.0f - decay) * cur_min;
    const float bmax = (float) biased_max * decay + (1.0f - decay) * cur_max;
    const float correction = 1.0f - powf (decay, (float) nni_step (s));
    tracked_min = bmin / correction;
    tracked_max = bmax / correction;
    nnic_wrapper_set_attribute_double (w, BIASED_MIN, bmin, NULL);
    nnic_wrapper_set_attribute_double (w, BIASED_MAX, bmax, NULL);
  } else if (nnic_wrapper_get_quant (w, NNIC_QUANT_OUTPUT, &tracked)) {
    tracked_min = (float) tracked.min;
    tracked_max = (float) tracked.max;
  } else {
    return; /* evaluation before any range was tracked */
  }
  float scale, zero_point;
  quant_params (bits, tracked_min, tracked_max, &scale, &zero_point);
  fake_quantize (bits, scale, zero_point, y->f32, y->f32, y->numel);
  publish (w, NNIC_QUANT_OUTPUT, bits, scale, zero_point, tracked_min, tracked_max);
}

static const NnicQuantizerVTable qat_vtable = {
  .struct_size = sizeof (NnicQuantizerVTable),
  .create = qat_create,
  .destroy = qat_destroy,
  .quantize_weight = qat_quantize_weight,
  .quantize_output = qat_quantize_output,
};

static const NnicAlgorithmInfo qat_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_QUANTIZER,
  .name = "qat",
  .description = "Quantization-aware training: asymmetric uint quantization of weights and outputs with "
                 "EMA-tracked output ranges (NNI's QAT_Quantizer, Jacob et al. 2018)",
  .vtable = &qat_vtable,
};

static gboolean
register_qat (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &qat_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-qat", "1.0.0", "MIT", "Quantization-aware training (QAT)", register_qat)
