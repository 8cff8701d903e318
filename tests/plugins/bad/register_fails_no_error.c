/* Refuses to load without saying why. */
#include <nnic/plugin.h>

static gboolean
register_algorithms (NnicRegistrar *r, GError **error)
{
  (void) r, (void) error;
  return FALSE;
}

NNIC_PLUGIN_DEFINE ("nnic-test-register-fails-no-error", "1.0.0", "MIT", NULL, register_algorithms)
