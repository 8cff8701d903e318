/* Links, but calls a function nothing defines: immediate binding refuses it
 * at load time, before any of its code runs. */
#include <nnic/plugin.h>

extern void nnic_no_such_function (void);

static gboolean
register_algorithms (NnicRegistrar *r, GError **error)
{
  (void) r, (void) error;
  nnic_no_such_function ();
  return TRUE;
}

NNIC_PLUGIN_DEFINE ("nnic-test-undefined-symbol", "1.0.0", "MIT", "Needs a missing symbol",
                    register_algorithms)
