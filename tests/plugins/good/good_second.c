/* A second plugin that loads, in the same directory: a quantizer. */
#include <nnic/plugin.h>

static void
quantize_weight (gpointer state, NnicWrapper *w, const NnicTensor *weight, NnicTensor *out)
{
  (void) state, (void) w, (void) weight, (void) out;
}

static const NnicQuantizerVTable quantizer_vtable = {
  .struct_size = sizeof (NnicQuantizerVTable),
  .quantize_weight = quantize_weight,
};

static const NnicAlgorithmInfo quantizer_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_QUANTIZER,
  .name = "test_quantizer",
  .description = "Quantizes nothing (a test plugin)",
  .vtable = &quantizer_vtable,
};

static gboolean
register_algorithms (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &quantizer_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-test-good-second", "0.1.0", "Apache-2.0", NULL, register_algorithms)
