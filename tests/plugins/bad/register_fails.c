/* Registers should_vanish, then refuses to load: nothing of it may stay. */
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

static const NnicAlgorithmInfo info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "should_vanish",
  .vtable = &vtable,
};

static gboolean
register_algorithms (NnicRegistrar *r, GError **error)
{
  if (!nnic_registrar_add (r, &info, error))
    return FALSE;
  g_set_error_literal (error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                       "cannot find its lookup table /nonexistent/table.bin");
  return FALSE;
}

NNIC_PLUGIN_DEFINE ("nnic-test-register-fails", "1.0.0", "MIT", "Refuses to load", register_algorithms)
