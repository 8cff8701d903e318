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

/* Keys as a plugin built against a later minor ABI would declare them,
 * with a member NnicConfigKey does not have yet: the host must step
 * through them by key_size and ignore the extra member. */
typedef struct {
  NnicConfigKey key;
  double added_in_a_later_minor;
} FutureKey;

static const FutureKey future_keys[] = {
  { { .name = "first_key", .type = NNIC_KEY_INT, .min = 1, .max = 8, .help = "one" }, 42.0 },
  { { .name = "second_key", .type = NNIC_KEY_BOOL, .help = "two" }, 43.0 },
};

static const NnicAlgorithmInfo quantizer_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_QUANTIZER,
  .name = "test_quantizer",
  .description = "Quantizes nothing (a test plugin)",
  .vtable = &quantizer_vtable,
  .keys = (const NnicConfigKey *) future_keys,
  .n_keys = G_N_ELEMENTS (future_keys),
  .key_size = sizeof (FutureKey),
};

static gboolean
register_algorithms (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &quantizer_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-test-good-second", "0.1.0", "Apache-2.0", NULL, register_algorithms)
