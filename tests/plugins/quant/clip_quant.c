/* A test quantizer for inputs and outputs with its own backward:
 * inputs are rounded to multiples of 0.5, outputs clamped to [-1, 1];
 * quant_backward is NNI's ClipGrad for outputs (no gradient where the
 * float output was outside [-1, 1]) and halves input gradients (so the
 * test can tell it ran). */
#include <nnic/plugin.h>

#include <math.h>

static void
round_half (gpointer state, NnicWrapper *w, NnicTensor *x)
{
  (void) state, (void) w;
  for (int64_t i = 0; i < x->numel; i++)
    x->f32[i] = roundf (x->f32[i] * 2.0f) / 2.0f;
}

static void
clamp_one (gpointer state, NnicWrapper *w, NnicTensor *y)
{
  (void) state, (void) w;
  for (int64_t i = 0; i < y->numel; i++)
    y->f32[i] = fminf (1.0f, fmaxf (-1.0f, y->f32[i]));
}

static void
clip_grad (gpointer state, NnicWrapper *w, NnicQuantType type, const NnicTensor *x, NnicTensor *grad)
{
  (void) state, (void) w;
  for (int64_t i = 0; i < grad->numel; i++) {
    if (type == NNIC_QUANT_OUTPUT && fabsf (x->f32[i]) > 1.0f)
      grad->f32[i] = 0.0f;
    else if (type == NNIC_QUANT_INPUT)
      grad->f32[i] *= 0.5f;
  }
}

static const NnicQuantizerVTable vtable = {
  .struct_size = sizeof (NnicQuantizerVTable),
  .quantize_input = round_half,
  .quantize_output = clamp_one,
  .quant_backward = clip_grad,
};

static const NnicAlgorithmInfo info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_QUANTIZER,
  .name = "test_clip_quant",
  .description = "Rounds inputs, clamps outputs, ClipGrad backward (a test plugin)",
  .vtable = &vtable,
};

static gboolean
register_algorithms (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-test-clip-quant", "0.1.0", "MIT", NULL, register_algorithms)
