/* nnic — finding and loading algorithm plugins. */
#pragma once

#include <glib.h>
#include <nnic/export.h>
#include <nnic/plugin.h>

G_BEGIN_DECLS

/* A registered algorithm: what a plugin declared, and where it came from.
 * `info` and its vtable are the registry's own copies: members beyond the
 * size a plugin declared read as NULL. Everything the registry hands out
 * stays valid for the life of the process (plugins are never unloaded). */
typedef struct {
  const NnicAlgorithmInfo *info;
  const char *plugin_name;
  const char *plugin_version;
  const char *plugin_license;
  const char *plugin_file;   /* the .so's path */
  guint abi_major, abi_minor;/* the ABI the plugin was built for */
} NnicAlgorithm;

/* Scans the plugin directories (once; later calls reuse the result) and
 * returns the algorithm `name`, or NULL with an error that names the
 * closest known names. */
NNIC_API const NnicAlgorithm *nnic_load_algorithm (const char *name, GError **error);
/* Every registered algorithm, sorted by name (scans if needed). The array
 * is owned by the registry. */
NNIC_API const GPtrArray *nnic_list_algorithms (void);
/* Messages about plugins that were refused or shadowed during the scan
 * ("/path/libfoo.so: built for plugin ABI 2.0, this nnic implements 1.0
 * (it needs a newer nnic)"); owned by the registry. */
NNIC_API const GPtrArray *nnic_registry_problems (void);
/* The directories searched, in order: NNIC_PLUGIN_PATH, then the installed
 * plugin directory (or NNIC_PLUGIN_SYSTEM_PATH instead, when set; empty
 * for none). Free with g_strfreev(). */
NNIC_API char **nnic_plugin_search_path (void);
/* Forgets the scan (plugins stay loaded) so the next call scans again;
 * for tests that change NNIC_PLUGIN_PATH. */
NNIC_API void nnic_registry_reset (void);

G_END_DECLS
