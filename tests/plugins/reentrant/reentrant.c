/* Calls back into the registry from its registration (which the ABI says a
 * plugin must not do): the host must neither deadlock nor rescan. It
 * registers reentrant_ok only when each call was refused as expected. */
#include <nnic/nnic.h>

static gboolean
calc_mask (gpointer state, NnicCompressor *c, NnicWrapper *w, guint wrapper_index, double sparsity,
           gboolean *ready, GError **error)
{
  (void) state, (void) c, (void) w, (void) wrapper_index, (void) sparsity, (void) error;
  *ready = TRUE;
  return TRUE;
}

static const NnicMaskerVTable vtable = { .struct_size = sizeof (NnicMaskerVTable), .calc_mask = calc_mask };

static const NnicAlgorithmInfo info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "reentrant_ok",
  .vtable = &vtable,
};

static gboolean
register_algorithms (NnicRegistrar *r, GError **error)
{
  GError *inner = NULL;
  gboolean refused = nnic_load_algorithm ("test_masker", &inner) == NULL
                     && g_error_matches (inner, NNIC_ERROR, NNIC_ERROR_PLUGIN);
  g_clear_error (&inner);
  nnic_registry_reset (); /* ignored while scanning */
  refused = refused && nnic_list_algorithms ()->len == 0 && nnic_registry_problems ()->len == 0;
  return refused ? nnic_registrar_add (r, &info, error) : TRUE;
}

NNIC_PLUGIN_DEFINE ("nnic-test-reentrant", "1.0.0", "MIT", "Calls the registry while registering",
                    register_algorithms)
