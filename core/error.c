#include <nnic/error.h>

G_DEFINE_QUARK (nnic-error-quark, nnic_error)
