/* Internal: what the compressor core's files share. Not installed. */
#pragma once

#include <nnic/compress.h>
#include <nnic/plugin.h>

/* ---- config.c ---- */

/* Checks a config list for an algorithm of `kind` that accepts `keys`
 * beyond the core schema, against the model: unknown keys, types, ranges,
 * op_types that name no nnic type, op_names that match no node, entries
 * that select nothing. Errors read "config_list[1].sparsity: must be in
 * (0, 1), got 1.5" and name the closest valid choices. */
gboolean nnic_config_list_check (const NnicConfigList *cl, const NnicModel *m,
                                 NnicAlgorithmKind kind, const NnicConfigKey *keys, guint n_keys,
                                 GError **error);
/* The entry that selects node i under NNI's rules (the last matching entry
 * wins; a winning `exclude` entry means none), or -1. */
int nnic_config_list_select (const NnicConfigList *cl, const NnicModel *m, guint node);
/* A quantizer entry's quant types (NnicQuantType bits) and the bits for one type. */
guint nnic_config_entry_quant_types (JsonObject *entry);
int nnic_config_entry_quant_bits (JsonObject *entry, NnicQuantType type);

/* ---- compressor.c, for checkpoint.c ---- */

gboolean nnic_compressor_restore_steps (NnicCompressor *c, guint64 steps);
const char *nnic_compressor_algorithm_name (NnicCompressor *c);

/* ---- dependency_aware.c ---- */

/* One-shot masks of every wrapper not yet calculated, dependency-aware. */
gboolean nnic_dependency_aware_update (NnicCompressor *c, const NnicMaskerVTable *vt, gpointer state,
                                       const char *masker, GError **error);
