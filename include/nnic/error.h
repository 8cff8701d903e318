/* nnic — errors.
 *
 * Every fallible public call takes a `GError **error` last and returns FALSE
 * or NULL on failure. Nothing a user, a file or a plugin can get wrong aborts
 * the process.
 */
#pragma once

#include <glib.h>
#include <nnic/export.h>

G_BEGIN_DECLS

#define NNIC_ERROR (nnic_error_quark ())
NNIC_API GQuark nnic_error_quark (void);

/* Append-only: codes keep their values across versions. */
typedef enum {
  NNIC_ERROR_FAILED = 0,   /* anything not covered below */
  NNIC_ERROR_ARGUMENT = 1, /* a bad argument to a call */
  NNIC_ERROR_SHAPE = 2,    /* tensor shapes that do not fit together */
  NNIC_ERROR_IO = 3,       /* a file could not be read or written */
  NNIC_ERROR_FORMAT = 4,   /* a file's contents are malformed */
  NNIC_ERROR_CONFIG = 5,   /* a config list is invalid */
  NNIC_ERROR_PLUGIN = 6,   /* a plugin could not be loaded */
  NNIC_ERROR_ABI = 7,      /* a plugin was built for another ABI */
  NNIC_ERROR_NOT_FOUND = 8,/* a named model, node, parameter or hook is unknown */
  NNIC_ERROR_MEMORY = 9,   /* an allocation failed */
  NNIC_ERROR_UNSUPPORTED = 10, /* valid input nnic does not implement (an ONNX op) */
} NnicErrorCode;

G_END_DECLS
