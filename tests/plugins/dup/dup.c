/* Registers test_masker, which libgood.so also registers, and dup_only.
 * Whichever plugin comes first on the search path keeps test_masker; the
 * other one still loads with the rest of its algorithms. */
#include <nnic/plugin.h>

static gboolean
calc_mask (gpointer state, NnicCompressor *c, NnicWrapper *w, guint wrapper_index, double sparsity,
           gboolean *ready, GError **error)
{
  (void) state, (void) c, (void) w, (void) wrapper_index, (void) sparsity, (void) error;
  *ready = TRUE;
  return TRUE;
}

static const NnicMaskerVTable vtable = { .struct_size = sizeof (NnicMaskerVTable), .calc_mask = calc_mask };

static const NnicAlgorithmInfo masker = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "test_masker",
  .description = "dup's test_masker",
  .vtable = &vtable,
};

static const NnicAlgorithmInfo only = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "dup_only",
  .description = "Only in libdup.so",
  .vtable = &vtable,
};

static gboolean
register_algorithms (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &masker, error) && nnic_registrar_add (r, &only, error);
}

NNIC_PLUGIN_DEFINE ("nnic-test-dup", "9.9.9", "MIT", "Duplicates test_masker", register_algorithms)
