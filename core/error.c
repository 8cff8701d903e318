#include <nnic/error.h>

/* The first argument is stringified: spaces around its dashes would rename
 * the error domain. */
/* clang-format off */
G_DEFINE_QUARK (nnic-error-quark, nnic_error)
/* clang-format on */
