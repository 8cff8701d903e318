/* nnic — the plugin ABI.
 *
 * A plugin is a shared object that exports exactly one entry symbol,
 * `nnic_plugin_descriptor`, made by NNIC_PLUGIN_DEFINE(). The host finds
 * plugins in the directories of NNIC_PLUGIN_PATH (colon-separated), then in
 * the installed plugin directory, opens each with local, immediate binding
 * (an undefined symbol refuses the plugin), and calls the entry.
 *
 * Rules (the contract; "MUST" is for plugin authors, "will" for the host):
 *  - The descriptor and every vtable start with their own size
 *    (`struct_size = sizeof (...)`). A later minor ABI version only appends
 *    members; the host reads a member only when struct_size says it is
 *    there, so plugins built against an older minor keep loading.
 *  - The host refuses, with a message naming the file and both versions, a
 *    plugin whose ABI major differs from its own or whose minor is newer.
 *  - register_algorithms MUST only call nnic_registrar_add(); it returns
 *    FALSE with an error to refuse loading, and the host then unloads the
 *    plugin and registers none of its algorithms.
 *  - Algorithm names are unique across plugins: on a duplicate the first
 *    plugin found keeps the name, and the host reports the other.
 *  - Plugins are never unloaded once an algorithm of theirs is registered.
 *  - Plugins use only the public API (include/nnic/): tensors, the model,
 *    wrappers, masks, attributes, collectors.
 *  - Nothing a plugin is given may be freed by it unless a call says so.
 *  - Required vtable members: a masker's calc_mask, a pruner's compress, at
 *    least one quantize_* of a quantizer; every other member may be NULL.
 *  - nnic_registrar_add() fails (and the whole plugin is refused) on an
 *    invalid name ([a-z0-9_]+), kind, vtable or config key (names
 *    [a-z0-9_]+, no duplicates); for a name another plugin already has it
 *    returns TRUE and the algorithm is ignored (reported by the registry).
 *  - Plugins link libnnic and call its public API directly, so that whole
 *    API is part of the ABI: a change that breaks it bumps the major.
 */
#pragma once

#include <glib.h>
#include <gmodule.h>
#include <nnic/export.h>
#include <nnic/version.h>
#include <nnic/compress.h>
#include <nnic/masker.h>
#include <nnic/parallel.h>

G_BEGIN_DECLS

/* The ABI this header describes. */
#define NNIC_PLUGIN_ABI_MAJOR NNIC_ABI_MAJOR
#define NNIC_PLUGIN_ABI_MINOR NNIC_ABI_MINOR
#define NNIC_PLUGIN_ENTRY_SYMBOL "nnic_plugin_descriptor"

/* Append-only. */
typedef enum {
  NNIC_ALGORITHM_MASKER = 0,    /* computes one wrapper's masks for a sparsity */
  NNIC_ALGORITHM_PRUNER = 1,    /* schedules masks over training (agp, ...) */
  NNIC_ALGORITHM_QUANTIZER = 2, /* fake-quantizes weights, inputs, outputs */
} NnicAlgorithmKind;

NNIC_API const char *nnic_algorithm_kind_name (NnicAlgorithmKind kind);

/* ---- config keys an algorithm accepts, beyond the core's ---- */

/* Append-only. */
typedef enum {
  NNIC_KEY_NUMBER = 0,  /* a JSON number */
  NNIC_KEY_INT = 1,     /* a JSON integer */
  NNIC_KEY_BOOL = 2,
  NNIC_KEY_STRING = 3,
} NnicKeyType;

typedef struct {
  const char *name;      /* "initial_sparsity" */
  NnicKeyType type;
  double min, max;       /* range for NUMBER/INT; ignored when min > max */
  gboolean min_open, max_open; /* exclusive bounds */
  gboolean required;
  const char *default_text; /* shown by `nnic plugins`, e.g. "0.0"; may be NULL */
  const char *help;
} NnicConfigKey;

/* ---- vtables ---- */

/* A masker: the masks of one wrapper for a target sparsity (NNI's
 * WeightMasker.calc_mask). A masker that gathers statistics after each
 * optimizer step (TaylorFO) adds its own post-step hook in create: it runs
 * after the compressor's, which asks for masks first, as in NNI. It sets them with nnic_wrapper_set_mask().
 * *ready = FALSE means "not enough statistics yet: ask again after the
 * next optimizer step" (NNI's `None`). `state` is what create returned. */
typedef struct {
  guint32 struct_size;
  gpointer (*create) (NnicCompressor *c, GError **error); /* may be NULL */
  void (*destroy) (gpointer state);                      /* may be NULL */
  gboolean (*calc_mask) (gpointer state, NnicCompressor *c, NnicWrapper *w, guint wrapper_index,
                         double sparsity, gboolean *ready, GError **error);
  /* Filter maskers, optional: the importance of each output channel of
   * w (weight->shape[0] floats; lower is pruned first), or *ready = FALSE.
   * With it the core prunes in dependency-aware mode: layers whose
   * channels meet in an Add lose the same channels, chosen by the sum of
   * their scores, and grouped convolutions lose channels evenly per group. */
  gboolean (*channel_scores) (gpointer state, NnicCompressor *c, NnicWrapper *w, float *scores,
                              gboolean *ready, GError **error);
} NnicMaskerVTable;

/* A scheduling pruner: drives a masker (nnic_compressor_masker()) over
 * training. compress() runs once; step() after every optimizer step;
 * update_epoch() at each epoch's start. */
typedef struct {
  guint32 struct_size;
  gpointer (*create) (NnicCompressor *c, GError **error);
  void (*destroy) (gpointer state);
  gboolean (*compress) (gpointer state, NnicCompressor *c, GError **error);
  gboolean (*step) (gpointer state, NnicCompressor *c, GError **error);
  gboolean (*update_epoch) (gpointer state, NnicCompressor *c, guint epoch, GError **error);
} NnicPrunerVTable;

/* A quantizer (NNI's Quantizer + QuantGrad). quantize_weight writes the
 * fake-quantized copy of `weight` into `out` (same shape); quantize_input
 * and quantize_output work in place. quant_backward maps the gradient
 * with respect to the quantized tensor to the gradient with respect to
 * its input, in place; NULL is the straight-through estimator (identity).
 * Members may be NULL where the algorithm does not quantize that type. */
typedef struct {
  guint32 struct_size;
  gpointer (*create) (NnicCompressor *c, GError **error);
  void (*destroy) (gpointer state);
  gboolean (*setup_wrapper) (gpointer state, NnicCompressor *c, NnicWrapper *w, GError **error);
  void (*quantize_weight) (gpointer state, NnicWrapper *w, const NnicTensor *weight, NnicTensor *out);
  void (*quantize_input) (gpointer state, NnicWrapper *w, NnicTensor *x);
  void (*quantize_output) (gpointer state, NnicWrapper *w, NnicTensor *y);
  void (*quant_backward) (gpointer state, NnicWrapper *w, NnicQuantType type, const NnicTensor *x,
                          NnicTensor *grad);
  gboolean (*step) (gpointer state, NnicCompressor *c, GError **error);
  gboolean (*update_epoch) (gpointer state, NnicCompressor *c, guint epoch, GError **error);
} NnicQuantizerVTable;

/* ---- registration ---- */

typedef struct {
  guint32 struct_size;
  NnicAlgorithmKind kind;
  const char *name;          /* "level"; [a-z0-9_]+ */
  const char *description;
  const NnicConfigKey *keys; /* accepted keys beyond the core schema */
  guint n_keys;
  const void *vtable;        /* NnicMaskerVTable, NnicPrunerVTable or NnicQuantizerVTable */
  /* sizeof (NnicConfigKey) as the plugin was built: the stride of `keys`,
   * so that NnicConfigKey can grow in later minor versions. 0 means the
   * size of ABI 1.0. */
  guint32 key_size;
} NnicAlgorithmInfo;

typedef struct _NnicRegistrar NnicRegistrar;

/* Registers one algorithm; `info`, its keys and vtable MUST stay valid
 * while the plugin is loaded (static const data). */
NNIC_API gboolean nnic_registrar_add (NnicRegistrar *r, const NnicAlgorithmInfo *info,
                                      GError **error);

typedef struct {
  guint32 abi_major;
  guint32 abi_minor;
  guint32 struct_size;
  const char *name;        /* the plugin's name, "nnic-level" */
  const char *version;     /* the plugin's own version, "1.0.0" */
  const char *license;     /* SPDX identifier */
  const char *description;
  gboolean (*register_algorithms) (NnicRegistrar *r, GError **error);
} NnicPluginDescriptor;

typedef const NnicPluginDescriptor *(*NnicPluginEntry) (void);

/* Defines the plugin's entry symbol. Use once per shared object. */
#define NNIC_PLUGIN_DEFINE(name, version, license, description, register_fn)      \
  G_MODULE_EXPORT const NnicPluginDescriptor *nnic_plugin_descriptor (void);     \
  G_MODULE_EXPORT const NnicPluginDescriptor *nnic_plugin_descriptor (void)      \
  {                                                                              \
    static const NnicPluginDescriptor desc = {                                   \
      NNIC_PLUGIN_ABI_MAJOR, NNIC_PLUGIN_ABI_MINOR, sizeof (NnicPluginDescriptor), \
      name, version, license, description, register_fn,                         \
    };                                                                           \
    return &desc;                                                                \
  }

G_END_DECLS
