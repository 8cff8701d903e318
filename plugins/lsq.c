/* lsq: NNI's LsqQuantizer (Esser et al., "Learned Step Size
 * Quantization", ICLR 2020), as in NNI 2.x (nni/algorithms/compression/
 * pytorch/quantization/lsq_quantizer.py; v1.9 had no LSQ).
 *
 * Each quantized tensor (weight, input, output of a wrapper) has its own
 * step size s, a one-element tensor trained with the model: it is added to
 * the compressor's optimizer (nnic_optimizer_add_tensor, NNI's
 * add_param_group), so a compressor for lsq needs an optimizer, as NNI's
 * does. Signed integers, Qn = -2^(bits-1), Qp = 2^(bits-1) - 1:
 *   x_q = round(clamp(x / s, Qn, Qp)) * s        (round: half to even)
 * Backward (NNI's grad_scale and round_pass, i.e. the paper's):
 *   dx   = dx_q where Qn <= x/s <= Qp, else 0
 *   ds  += g * sum(dx_q * (round(x/s) - x/s) inside, Qn below, Qp above)
 *   g    = 1 / sqrt(Qp * numel(x))
 * Initial s: weights, 2 mean|w| / sqrt(Qp) when the compressor is made;
 * inputs and outputs, 2 mean|x| / sqrt(Qp) of the batch, at every forward
 * until the first optimizer step (NNI's `steps == 1`), in training or not.
 *
 * Where nnic differs, and why:
 *  - bits must be 2..8: with 1 bit Qp = 0 and NNI divides by zero.
 *  - A zero mean (an all-zero tensor) would make NNI's scale 0 and its
 *    outputs NaN; nnic keeps the scale it had then (1, NNI's value before
 *    initialisation, the first time).
 *  - The scales' gradients are not the model's, so nnic_model_zero_grad()
 *    does not clear them: lsq clears them after each optimizer step (the
 *    usual zero_grad / forward / backward / step loop sees exactly NNI's
 *    gradients; a loop accumulating over several backward passes too).
 *  - The scale tensors live as long as the optimizer or the compressor,
 *    whichever is freed last (the optimizer keeps a reference through a
 *    step hook), so that freeing the compressor first is safe.
 *
 * Attributes, on each wrapper, after each quantization (t = weight, input,
 * output): "<t>_scale" = the s that quantization used, "<t>_zero_point" 0,
 * "<t>_bits", "<t>_signed" 1, and "<t>_min" = -Qp s, "<t>_max" = Qp s
 * (NNI's calibration range, tracked_min/max = -/+ s * qmax); x_q = (q - 0)
 * * s in float32 exactly. These stay with the last forward (what the
 * fake-quantized weight an export reads was made with), while the optimizer
 * moves s after each step: "<t>_step_size" is the trained parameter itself
 * (NNI's module.<t>_scale), updated after each step too. A checkpoint saves
 * it, and a "<t>_step_size" changed from outside (a checkpoint loaded with
 * nnic_compressor_load_checkpoint, or a caller) is taken over as s at the
 * next quantization, so training resumes from the saved scales.
 */
#include <nnic/plugin.h>

#include <math.h>
#include <string.h>

enum { LSQ_INPUT, LSQ_WEIGHT, LSQ_OUTPUT, LSQ_N_TYPES };

static const char *const type_names[LSQ_N_TYPES] = { "input", "weight", "output" };
static const NnicQuantType type_bits[LSQ_N_TYPES] = { NNIC_QUANT_INPUT, NNIC_QUANT_WEIGHT, NNIC_QUANT_OUTPUT };

static const char *const step_size_names[LSQ_N_TYPES] = { "input_step_size", "weight_step_size",
                                                          "output_step_size" };

typedef struct {
  gboolean used;
  int bits, qn, qp;
  NnicTensor *value, *grad; /* [1]; in LsqState.tensors */
  double written;           /* the s last written to "<t>_step_size", NAN before */
} LsqScale;

typedef struct {
  NnicCompressor *c;
  GHashTable *wrappers; /* NnicWrapper * → LsqScale[LSQ_N_TYPES] */
  /* Every scale and gradient tensor; shared with the optimizer, which
   * points at them, through the destroy notify of a step hook. */
  GPtrArray *tensors;
} LsqState;

/* ---- config ---- */

/* bits 2..8 (the core checked 1..8 and the types). */
static gboolean
check_entries (NnicCompressor *c, GError **error)
{
  for (guint i = 0; i < nnic_compressor_n_config_entries (c); i++) {
    JsonObject *o = nnic_compressor_config_entry (c, i);
    if (json_object_has_member (o, "quant_start_step")) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "config_list[%u].quant_start_step: not an lsq key (only qat has it)", i);
      return FALSE;
    }
    JsonNode *b = json_object_get_member (o, "quant_bits");
    if (b && JSON_NODE_HOLDS_VALUE (b) && json_node_get_int (b) < 2) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "config_list[%u].quant_bits: must be in [2, 8] for lsq (Qp = 2^(bits-1) - 1 must "
                   "be positive), got %" G_GINT64_FORMAT, i, json_node_get_int (b));
      return FALSE;
    }
    for (guint k = 0; b && JSON_NODE_HOLDS_OBJECT (b) && k < LSQ_N_TYPES; k++) {
      JsonNode *v = json_object_get_member (json_node_get_object (b), type_names[k]);
      if (v && JSON_NODE_HOLDS_VALUE (v) && json_node_get_int (v) < 2) {
        g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                     "config_list[%u].quant_bits.%s: must be in [2, 8] for lsq (Qp = 2^(bits-1) - 1 "
                     "must be positive), got %" G_GINT64_FORMAT, i, type_names[k], json_node_get_int (v));
        return FALSE;
      }
    }
  }
  return TRUE;
}

/* ---- helpers ---- */

static LsqScale *
find_scale (LsqState *s, NnicWrapper *w, int k)
{
  LsqScale *scales = g_hash_table_lookup (s->wrappers, w);
  return scales && scales[k].used ? &scales[k] : NULL;
}

/* 2 mean|x| / sqrt(Qp), in float32 as torch; 0 for an empty tensor. */
static float
initial_scale (const NnicTensor *x, int qp)
{
  double sum = 0;
  for (int64_t i = 0; i < x->numel; i++)
    sum += fabsf (x->f32[i]);
  const float mean = x->numel > 0 ? (float) (sum / (double) x->numel) : 0.0f;
  return mean * 2.0f / (float) sqrt ((double) qp);
}

/* A "<t>_step_size" set from outside (a checkpoint) becomes s. */
static void
sync_in (NnicWrapper *w, int k, LsqScale *ls)
{
  double v;
  if (nnic_wrapper_get_attribute_double (w, step_size_names[k], &v) && v != ls->written) {
    ls->value->f32[0] = (float) v;
    ls->written = v;
  }
}

/* s as it is now, into "<t>_step_size". */
static void
sync_out (NnicWrapper *w, int k, LsqScale *ls)
{
  ls->written = ls->value->f32[0];
  nnic_wrapper_set_attribute_double (w, step_size_names[k], ls->written, NULL);
}

/* The parameters of the quantization just made with s. */
static void
publish_scale (NnicWrapper *w, int k, LsqScale *ls)
{
  const float s = ls->value->f32[0];
  sync_out (w, k, ls);
  const NnicQuantParams p = { .scale = s, .zero_point = 0, .bits = ls->bits, .is_signed = TRUE,
                              .min = -(double) ls->qp * s, .max = (double) ls->qp * s };
  nnic_wrapper_publish_quant (w, type_bits[k], &p, NULL);
}

static void
lsq_apply (const LsqScale *ls, const float *src, float *dst, int64_t n)
{
  const float s = ls->value->f32[0], qn = (float) ls->qn, qp = (float) ls->qp;
  for (int64_t i = 0; i < n; i++) {
    float v = src[i] / s;
    v = v < qn ? qn : v > qp ? qp : v; /* NaN stays NaN */
    dst[i] = rintf (v) * s;
  }
}

/* ---- the vtable ---- */

static void
keep_tensors (NnicOptimizer *opt, gpointer user_data)
{
  (void) opt;
  (void) user_data;
}

static void lsq_destroy (gpointer state);

static gpointer
lsq_create (NnicCompressor *c, GError **error)
{
  if (!check_entries (c, error))
    return NULL;
  NnicOptimizer *opt = nnic_compressor_optimizer (c);
  if (!opt) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "needs an optimizer: its scales are trained with the model");
    return NULL;
  }
  LsqState *s = g_new0 (LsqState, 1);
  s->c = c;
  s->wrappers = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL, g_free);
  s->tensors = g_ptr_array_new_with_free_func ((GDestroyNotify) nnic_tensor_free);
  /* First, so that the optimizer holds the tensors from the first one on. */
  nnic_optimizer_add_post_step_hook (opt, keep_tensors, g_ptr_array_ref (s->tensors),
                                     (GDestroyNotify) g_ptr_array_unref);
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    LsqScale *scales = g_new0 (LsqScale, LSQ_N_TYPES);
    g_hash_table_insert (s->wrappers, w, scales);
    const guint types = nnic_wrapper_quant_types (w);
    for (int k = 0; k < LSQ_N_TYPES; k++) {
      if (!(types & type_bits[k]))
        continue;
      LsqScale *ls = &scales[k];
      ls->used = TRUE;
      ls->bits = nnic_wrapper_quant_bits (w, type_bits[k]);
      ls->qp = (1 << (ls->bits - 1)) - 1;
      ls->qn = -(1 << (ls->bits - 1));
      ls->written = NAN;
      if (!(ls->value = nnic_tensor_new_f32 (error, 1, (int64_t) 1)))
        goto fail;
      g_ptr_array_add (s->tensors, ls->value);
      if (!(ls->grad = nnic_tensor_new_f32 (error, 1, (int64_t) 1)))
        goto fail;
      g_ptr_array_add (s->tensors, ls->grad);
      ls->value->f32[0] = 1.0f;
      if (type_bits[k] == NNIC_QUANT_WEIGHT) {
        const float init = initial_scale (nnic_wrapper_weight (w), ls->qp);
        if (init > 0.0f && isfinite (init))
          ls->value->f32[0] = init;
      }
      sync_out (w, k, ls);
      g_autofree char *name = g_strconcat (nnic_wrapper_name (w), ".", type_names[k], "_scale", NULL);
      if (!nnic_optimizer_add_tensor (opt, name, ls->value, ls->grad, error))
        goto fail;
    }
  }
  return s;
fail:
  lsq_destroy (s);
  return NULL;
}

static void
lsq_destroy (gpointer state)
{
  LsqState *s = state;
  g_hash_table_unref (s->wrappers);
  g_ptr_array_unref (s->tensors);
  g_free (s);
}

static void
lsq_quantize_weight (gpointer state, NnicWrapper *w, const NnicTensor *weight, NnicTensor *out)
{
  LsqScale *ls = find_scale (state, w, LSQ_WEIGHT);
  if (!ls) {
    memcpy (out->f32, weight->f32, nnic_tensor_nbytes (weight));
    return;
  }
  sync_in (w, LSQ_WEIGHT, ls);
  lsq_apply (ls, weight->f32, out->f32, weight->numel);
  publish_scale (w, LSQ_WEIGHT, ls);
}

/* Inputs and outputs: the scale comes from the batch until the first step. */
static void
quantize_activation (LsqState *s, NnicWrapper *w, int k, NnicTensor *x)
{
  LsqScale *ls = find_scale (s, w, k);
  if (!ls)
    return;
  sync_in (w, k, ls);
  if (nnic_compressor_steps (s->c) == 0) {
    const float init = initial_scale (x, ls->qp);
    if (init > 0.0f && isfinite (init))
      ls->value->f32[0] = init;
  }
  lsq_apply (ls, x->f32, x->f32, x->numel);
  publish_scale (w, k, ls);
}

static void
lsq_quantize_input (gpointer state, NnicWrapper *w, NnicTensor *x)
{
  quantize_activation (state, w, LSQ_INPUT, x);
}

static void
lsq_quantize_output (gpointer state, NnicWrapper *w, NnicTensor *y)
{
  quantize_activation (state, w, LSQ_OUTPUT, y);
}

static void
lsq_quant_backward (gpointer state, NnicWrapper *w, NnicQuantType type, const NnicTensor *x, NnicTensor *grad)
{
  int k = type == NNIC_QUANT_INPUT ? LSQ_INPUT : type == NNIC_QUANT_WEIGHT ? LSQ_WEIGHT : LSQ_OUTPUT;
  LsqScale *ls = find_scale (state, w, k);
  if (!ls)
    return;
  const float s = ls->value->f32[0], qn = (float) ls->qn, qp = (float) ls->qp;
  double ds = 0;
  for (int64_t i = 0; i < grad->numel; i++) {
    const float v = x->f32[i] / s, g = grad->f32[i];
    if (v < qn) {
      ds += (double) g * qn;
      grad->f32[i] = 0.0f;
    } else if (v > qp) {
      ds += (double) g * qp;
      grad->f32[i] = 0.0f;
    } else {
      ds += (double) g * ((double) rintf (v) - (double) v);
    }
  }
  const double scale = 1.0 / sqrt ((double) ls->qp * (double) x->numel);
  ls->grad->f32[0] += (float) (ds * scale);
}

/* After each optimizer step: s as updated into "<t>_step_size"; the
 * gradients start again from 0. */
static gboolean
lsq_step (gpointer state, NnicCompressor *c, GError **error)
{
  (void) c;
  (void) error;
  LsqState *s = state;
  GHashTableIter it;
  gpointer key, value;
  g_hash_table_iter_init (&it, s->wrappers);
  while (g_hash_table_iter_next (&it, &key, &value)) {
    LsqScale *scales = value;
    for (int k = 0; k < LSQ_N_TYPES; k++)
      if (scales[k].used) {
        sync_out (key, k, &scales[k]);
        scales[k].grad->f32[0] = 0.0f;
      }
  }
  return TRUE;
}

static const NnicQuantizerVTable lsq_vtable = {
  .struct_size = sizeof (NnicQuantizerVTable),
  .create = lsq_create,
  .destroy = lsq_destroy,
  .quantize_weight = lsq_quantize_weight,
  .quantize_input = lsq_quantize_input,
  .quantize_output = lsq_quantize_output,
  .quant_backward = lsq_quant_backward,
  .step = lsq_step,
};

static const NnicAlgorithmInfo lsq_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_QUANTIZER,
  .name = "lsq",
  .description = "Learned step size quantization: a trained scale per quantized tensor, signed integers "
                 "(NNI's LsqQuantizer, Esser et al.)",
  .vtable = &lsq_vtable,
};

static gboolean
register_lsq (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &lsq_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-lsq", "1.0.0", "MIT", "Learned step size quantization (LSQ)", register_lsq)
