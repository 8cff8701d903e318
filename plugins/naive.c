/* naive: NNI's NaiveQuantizer. 8-bit symmetric fake quantization of the
 * weights: scale = max(previous scale, max|w| / 127), w_q = trunc(w /
 * scale) * scale (torch's cast to int8 truncates toward zero). The scale
 * only grows, and is kept as the wrapper attribute "weight_scale", published
 * with nnic_wrapper_publish_quant (zero point 0, 8 bits, signed, min and
 * max -/+ 127 scale: what an ONNX export in QDQ form needs). The backward is
 * the straight-through estimator. */
#include <nnic/plugin.h>

#include <math.h>

/* int8 with zero point 0: q in [-127, 127] (truncation never reaches -128). */
static gboolean
publish (NnicWrapper *w, double scale, GError **error)
{
  const NnicQuantParams p = { .scale = scale, .zero_point = 0, .bits = 8, .is_signed = TRUE,
                              .min = -127 * scale, .max = 127 * scale };
  return nnic_wrapper_publish_quant (w, NNIC_QUANT_WEIGHT, &p, error);
}

static gboolean
naive_setup_wrapper (gpointer state, NnicCompressor *c, NnicWrapper *w, GError **error)
{
  (void) state;
  (void) c;
  JsonObject *cfg = nnic_wrapper_config (w);
  JsonArray *types = json_object_get_array_member (cfg, "quant_types");
  for (guint i = 0; types && i < json_array_get_length (types); i++)
    if (g_strcmp0 (json_array_get_string_element (types, i), "weight") != 0) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "%s: naive quantizes weights only (quant_types [\"weight\"]), not '%s'",
                   nnic_wrapper_name (w), json_array_get_string_element (types, i));
      return FALSE;
    }
  return publish (w, 0.0, error);
}

typedef struct {
  const float *w;
  float *out;
  float scale;
} Trunc;

/* w_q = trunc(w / scale) * scale, over [lo, hi). */
static void
trunc_range (int64_t lo, int64_t hi, gpointer data)
{
  const Trunc *t = data;
  const float *w = t->w, s = t->scale;
  float *out = t->out;
  for (int64_t i = lo; i < hi; i++)
    out[i] = s > 0 ? truncf (w[i] / s) * s : 0.0f;
}

static void
naive_quantize_weight (gpointer state, NnicWrapper *w, const NnicTensor *weight, NnicTensor *out)
{
  (void) state;
  float max = 0.0f;
  for (int64_t i = 0; i < weight->numel; i++)
    max = fmaxf (max, fabsf (weight->f32[i]));
  NnicQuantParams p = { .scale = 0.0 };
  nnic_wrapper_get_quant (w, NNIC_QUANT_WEIGHT, &p);
  const double scale = fmax (p.scale, (double) max / 127.0);
  publish (w, scale, NULL);
  Trunc t = { weight->f32, out->f32, (float) scale };
  nnic_parallel_for (weight->numel, trunc_range, &t);
}

static const NnicQuantizerVTable naive_vtable = {
  .struct_size = sizeof (NnicQuantizerVTable),
  .setup_wrapper = naive_setup_wrapper,
  .quantize_weight = naive_quantize_weight,
};

static const NnicAlgorithmInfo naive_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_QUANTIZER,
  .name = "naive",
  .description = "8-bit symmetric weight quantization with a growing per-layer scale (NNI's NaiveQuantizer)",
  .vtable = &naive_vtable,
};

static gboolean
register_naive (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &naive_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-naive", "1.0.0", "MIT", "The naive 8-bit weight quantizer", register_naive)
