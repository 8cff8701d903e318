/* A plugin that loads: a masker with one config key and a pruner. Its
 * functions do nothing; tests/test_registry.c only looks them up. */
#include <nnic/plugin.h>

static gboolean
masker_calc_mask (gpointer state, NnicCompressor *c, NnicWrapper *w, guint wrapper_index,
                  double sparsity, gboolean *ready, GError **error)
{
  (void) state, (void) c, (void) w, (void) wrapper_index, (void) sparsity, (void) error;
  *ready = TRUE;
  return TRUE;
}

static const NnicMaskerVTable masker_vtable = {
  .struct_size = sizeof (NnicMaskerVTable),
  .calc_mask = masker_calc_mask,
};

static const NnicConfigKey masker_keys[] = {
  { .name = "test_strength", .type = NNIC_KEY_NUMBER, .min = 0, .max = 1, .max_open = TRUE,
    .default_text = "0.5", .help = "How hard the test masker prunes" },
};

static const NnicAlgorithmInfo masker_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "test_masker",
  .description = "Masks nothing (a test plugin)",
  .keys = masker_keys,
  .n_keys = G_N_ELEMENTS (masker_keys),
  .vtable = &masker_vtable,
};

static gboolean
pruner_compress (gpointer state, NnicCompressor *c, GError **error)
{
  (void) state, (void) c, (void) error;
  return TRUE;
}

static const NnicPrunerVTable pruner_vtable = {
  .struct_size = sizeof (NnicPrunerVTable),
  .compress = pruner_compress,
};

static const NnicConfigKey pruner_keys[] = {
  { .name = "test_steps", .type = NNIC_KEY_INT, .min = 1, .max = 1000, .required = TRUE,
    .help = "Steps to reach the target sparsity" },
  { .name = "test_verbose", .type = NNIC_KEY_BOOL, .min = 1, .max = 0, .default_text = "false",
    .help = "Say what it does" },
  { .name = "test_masker_name", .type = NNIC_KEY_STRING, .min = 1, .max = 0,
    .default_text = "\"test_masker\"", .help = "The masker it drives" },
};

static const NnicAlgorithmInfo pruner_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_PRUNER,
  .name = "test_pruner",
  .description = "Prunes nothing (a test plugin)",
  .keys = pruner_keys,
  .n_keys = G_N_ELEMENTS (pruner_keys),
  .vtable = &pruner_vtable,
};

static gboolean
register_algorithms (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &masker_info, error) && nnic_registrar_add (r, &pruner_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-test-good", "1.2.3", "MIT", "Test plugin that loads", register_algorithms)
