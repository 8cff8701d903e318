/* nnic — the compressor core: config lists, wrappers, masks, attributes,
 * activation collectors, the optimizer-step hook, export.
 *
 * The C counterpart of NNI's Compressor / Pruner / Quantizer framework.
 * An NnicCompressor wraps the nodes of a model that a config list selects
 * (NNI's rules: the *last* matching entry wins, a winning entry with
 * `exclude` leaves the node alone) and drives one algorithm loaded from a
 * plugin (include/nnic/plugin.h). Wrapping never renames a node: exports
 * and checkpoints look like the unwrapped model.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <nnic/export.h>
#include <nnic/model.h>
#include <nnic/train.h>
#include <nnic/error.h>

G_BEGIN_DECLS

/* ---- config lists ---- */

typedef enum {
  NNIC_QUANT_INPUT = 1 << 0,
  NNIC_QUANT_WEIGHT = 1 << 1,
  NNIC_QUANT_OUTPUT = 1 << 2,
} NnicQuantType;

/* One validated config list: a JSON array of objects, kept as parsed JSON
 * so that algorithm-specific keys stay available to the plugin. */
typedef struct _NnicConfigList NnicConfigList;

/* Parses JSON text (`source` names it in errors, e.g. the file name). The
 * core schema is checked here (known core keys, types, ranges); keys the
 * core does not know are checked against an algorithm's declared keys by
 * nnic_compressor_new(). */
NNIC_API NnicConfigList *nnic_config_list_new_from_json (const char *json, const char *source,
                                                         GError **error);
NNIC_API NnicConfigList *nnic_config_list_new_from_file (const char *path, GError **error);
NNIC_API void nnic_config_list_free (NnicConfigList *cl);
NNIC_API guint nnic_config_list_len (const NnicConfigList *cl);
/* Entry i as a JSON object (owned by the list). */
NNIC_API JsonObject *nnic_config_list_entry (const NnicConfigList *cl, guint i);

/* A C builder: entries are added as JSON-like key/value calls.
 *   NnicConfigList *cl = nnic_config_list_new ();
 *   guint e = nnic_config_list_add_entry (cl);
 *   nnic_config_list_set_double (cl, e, "sparsity", 0.8);
 *   nnic_config_list_add_string (cl, e, "op_types", "default");
 * and validated like parsed JSON when handed to nnic_compressor_new(). */
NNIC_API NnicConfigList *nnic_config_list_new (void);
NNIC_API guint nnic_config_list_add_entry (NnicConfigList *cl);
NNIC_API void nnic_config_list_set_double (NnicConfigList *cl, guint entry, const char *key,
                                           double v);
NNIC_API void nnic_config_list_set_int (NnicConfigList *cl, guint entry, const char *key, gint64 v);
NNIC_API void nnic_config_list_set_bool (NnicConfigList *cl, guint entry, const char *key,
                                         gboolean v);
NNIC_API void nnic_config_list_set_string (NnicConfigList *cl, guint entry, const char *key,
                                           const char *v);
/* Appends to a list-valued key (op_types, op_names, quant_types). */
NNIC_API void nnic_config_list_add_string (NnicConfigList *cl, guint entry, const char *key,
                                           const char *v);

/* The node types that `"default"` in op_types stands for (NNI's
 * default_layers for pruning: the weighted layers). NULL-terminated. */
NNIC_API const char *const *nnic_default_op_types (void);

/* ---- the compressor ---- */

typedef struct _NnicCompressor NnicCompressor;
typedef struct _NnicWrapper NnicWrapper;

typedef struct {
  /* For scheduling pruners (agp, ...): the masker to drive, by name. */
  const char *masker;
  /* Filter maskers: prune channels that meet in Add/Concat together. */
  gboolean dependency_aware;
  /* For pruners that train inside compress() (admm): trains the model
   * one epoch with the optimizer given. May be NULL for the others. */
  gboolean (*trainer) (NnicModel *m, NnicOptimizer *opt, guint epoch, gpointer user_data,
                       GError **error);
  gpointer trainer_data;
  /* For the search-based pruners (sensitivity, netadapt,
   * simulated_annealing, auto_compress): scores the model as it is,
   * higher is better (accuracy). */
  gboolean (*evaluator) (NnicModel *m, double *score, gpointer user_data, GError **error);
  gpointer evaluator_data;
} NnicCompressorOptions;

/* Loads `algorithm` from the plugins (a masker name means the one-shot
 * pruner with that masker), validates the config list against the core
 * schema and the algorithm's declared keys, and wraps the selected nodes.
 * `optimizer` may be NULL (no step hook; compress() computes masks once).
 * Errors name the entry and key: "config_list[1].sparsity: must be in
 * (0, 1), got 1.5". */
NNIC_API NnicCompressor *nnic_compressor_new (NnicModel *model, const char *algorithm,
                                              const NnicConfigList *config,
                                              NnicOptimizer *optimizer,
                                              const NnicCompressorOptions *options, GError **error);
NNIC_API void nnic_compressor_free (NnicCompressor *c);

/* Computes the initial masks (or sets up quantization) and applies them. */
NNIC_API gboolean nnic_compressor_compress (NnicCompressor *c, GError **error);
/* Called by the training loop at the start of each epoch (AGP counts epochs). */
NNIC_API gboolean nnic_compressor_update_epoch (NnicCompressor *c, guint epoch, GError **error);

NNIC_API NnicModel *nnic_compressor_model (NnicCompressor *c);
NNIC_API NnicOptimizer *nnic_compressor_optimizer (NnicCompressor *c);
NNIC_API guint nnic_compressor_n_wrappers (const NnicCompressor *c);
NNIC_API NnicWrapper *nnic_compressor_wrapper (NnicCompressor *c, guint i);
NNIC_API NnicWrapper *nnic_compressor_find_wrapper (NnicCompressor *c, const char *node_name);
/* The config list's entries, in order (SlimPruner reads entry 0's sparsity
 * for its global threshold, as NNI does). */
NNIC_API guint nnic_compressor_n_config_entries (const NnicCompressor *c);
NNIC_API JsonObject *nnic_compressor_config_entry (NnicCompressor *c, guint i);
/* A numeric (or boolean) key of entry i, `fallback` when absent: how a
 * pruner reads its settings (prune_iterations, ...) from the first entry. */
NNIC_API double nnic_compressor_config_double (NnicCompressor *c, guint i, const char *key,
                                               double fallback);
/* Steps taken by the hooked optimizer since the compressor was made. */
NNIC_API guint64 nnic_compressor_steps (const NnicCompressor *c);
/* The masker's name (one-shot pruning, or the one a scheduling pruner
 * drives), or NULL for quantizers. */
NNIC_API const char *nnic_compressor_masker (const NnicCompressor *c);
/* Runs the trainer of the options for one epoch with `opt`; an error when
 * none was given (the message names what needs it). */
NNIC_API gboolean nnic_compressor_train_epoch (NnicCompressor *c, NnicOptimizer *opt, guint epoch,
                                               GError **error);
/* Runs the evaluator of the options; an error when none was given. */
NNIC_API gboolean nnic_compressor_evaluate (NnicCompressor *c, double *score, GError **error);
/* Runs that masker on one wrapper for a sparsity (how a scheduling pruner
 * such as AGP sets its masks). *ready as in NnicMaskerVTable.calc_mask. */
NNIC_API gboolean nnic_compressor_calc_mask (NnicCompressor *c, NnicWrapper *w, double sparsity,
                                             gboolean *ready, GError **error);

/* Writes DIR-style exports: weights with masks applied (state-dict names),
 * masks (`conv1.weight_mask`, `conv1.bias_mask`, as float32 0/1 like NNI's
 * mask dict, flattened), each through a temporary file and rename.
 * `masks_path` may be NULL. */
NNIC_API gboolean nnic_compressor_export (NnicCompressor *c, const char *model_path,
                                          const char *masks_path, GError **error);
/* A compression in progress held in memory: a copy of the model's
 * parameters and buffers and of every wrapper's masks, for pruners that
 * try candidates and go back (netadapt, sensitivity). save_state replaces
 * what *state held (it may be NULL) and leaves it alone on failure;
 * restore_state puts the parameters back, then the masks. */
typedef struct _NnicCompressorState NnicCompressorState;
NNIC_API gboolean nnic_compressor_save_state (NnicCompressor *c, NnicCompressorState **state,
                                              GError **error);
NNIC_API gboolean nnic_compressor_restore_state (NnicCompressor *c,
                                                 const NnicCompressorState *state, GError **error);
NNIC_API void nnic_compressor_state_free (NnicCompressorState *state);
/* Multiplies every wrapper's weights by its masks again (after training
 * with an optimizer the compressor does not hook). */
NNIC_API void nnic_compressor_apply_masks (NnicCompressor *c);

/* The compressed model as ONNX (nnic_model_save_onnx): pruned weights as
 * they are; for a quantizer, QDQ form for every wrapper tensor whose
 * quantizer publishes the attributes "<t>_scale", "<t>_zero_point" and
 * "<t>_bits" (t = weight, input, output; "<t>_signed" 1 for int8). */
NNIC_API gboolean nnic_compressor_export_onnx (NnicCompressor *c, const char *path, GError **error);

/* The report: {"algorithm", "masker" (for pruners driving one), "layers":
 * [{"name", "type", "weights", "zeros", "sparsity", plus the wrapper's
 * number attributes, e.g. "scale"}], "weights_kept", "weights_total"}.
 * Zeros are counted in the weights, so it states what an export holds.
 * Free with json_object_unref(). */
NNIC_API JsonObject *nnic_compressor_report (NnicCompressor *c);
/* Writes the report as JSON (atomically), after the members of `extra`
 * (accuracies, the model's name, ...), which may be NULL. */
NNIC_API gboolean nnic_compressor_write_report (NnicCompressor *c, const char *path,
                                                JsonObject *extra, GError **error);

/* A checkpoint of the compression in progress (one safetensors file): the
 * model's state dict, every wrapper's masks (`conv1.weight_mask`, uint8)
 * and attributes (`conv1.attr.NAME`: tensors as entries, numbers in the
 * metadata), the algorithm and the optimizer steps seen. Loading it into a
 * compressor made the same way (model, algorithm, config list) restores
 * all of that; anything that does not fit is an error naming the entry,
 * and nothing is changed then. */
NNIC_API gboolean nnic_compressor_save_checkpoint (NnicCompressor *c, const char *path,
                                                   GError **error);
NNIC_API gboolean nnic_compressor_load_checkpoint (NnicCompressor *c, const char *path,
                                                   GError **error);

/* Loads weights (state-dict names) into the wrapped model; masks stay. */
NNIC_API gboolean nnic_compressor_load_weights (NnicCompressor *c, const char *path,
                                                GError **error);

/* ---- wrappers ---- */

NNIC_API const char *nnic_wrapper_name (const NnicWrapper *w);   /* the node's name, "conv1" */
NNIC_API const char *nnic_wrapper_type (const NnicWrapper *w);   /* "Conv2d" */
NNIC_API guint nnic_wrapper_node (const NnicWrapper *w);         /* index in the model */
/* The config entry that selected this node (owned by the compressor). */
NNIC_API JsonObject *nnic_wrapper_config (const NnicWrapper *w);
/* Shorthands for numeric keys of that entry; `fallback` when absent. */
NNIC_API double nnic_wrapper_config_double (const NnicWrapper *w, const char *key, double fallback);
NNIC_API NnicTensor *nnic_wrapper_weight (NnicWrapper *w);  /* the real parameter, masks applied */
NNIC_API NnicTensor *nnic_wrapper_bias (NnicWrapper *w);    /* NULL when the layer has none */
NNIC_API NnicTensor *nnic_wrapper_weight_grad (NnicWrapper *w);

/* Masks are uint8 0/1 tensors with the parameter's shape (1 byte per
 * weight). A fresh wrapper's masks are all ones. Setting a mask applies
 * it to the weights at once and before every forward. */
/* param: "weight" or "bias". */
NNIC_API const NnicTensor *nnic_wrapper_get_mask (const NnicWrapper *w, const char *param);
NNIC_API gboolean nnic_wrapper_set_mask (NnicWrapper *w, const char *param, const NnicTensor *mask,
                                         GError **error);
/* For filter maskers: masks (weight and bias) the `n_prune` output
 * channels with the lowest `scores` (one per channel), exactly n_prune of
 * them, ties going to the lower channel; other entries of the current
 * masks stay as they are. */
NNIC_API gboolean nnic_wrapper_prune_lowest (NnicWrapper *w, const double *scores, int64_t n_prune,
                                             GError **error);
/* Entries of the weight masked to zero, and their fraction. */
NNIC_API int64_t nnic_wrapper_pruned_count (const NnicWrapper *w);
NNIC_API double nnic_wrapper_sparsity (const NnicWrapper *w);

/* Attributes (NNI's set_wrappers_attribute), kept per wrapper and saved
 * with checkpoints: a number or a tensor under a name. */
NNIC_API gboolean nnic_wrapper_set_attribute_double (NnicWrapper *w, const char *name, double v,
                                                     GError **error);
NNIC_API gboolean nnic_wrapper_get_attribute_double (const NnicWrapper *w, const char *name,
                                                     double *v);
/* Takes ownership of `t`. */
NNIC_API gboolean nnic_wrapper_set_attribute_tensor (NnicWrapper *w, const char *name,
                                                     NnicTensor *t, GError **error);
NNIC_API NnicTensor *nnic_wrapper_get_attribute_tensor (const NnicWrapper *w, const char *name);

/* How a quantized tensor maps to integers q: (q - zero_point) * scale is
 * its fake-quantized value; q has `bits` bits, signed or not; [min, max]
 * is the float range the quantizer calibrated (its tracked range, or the
 * range of its grid). */
typedef struct {
  double scale, zero_point;
  int bits;
  gboolean is_signed;
  double min, max;
} NnicQuantParams;

/* Publishes how the wrapper's tensor of `type` (one of NNIC_QUANT_WEIGHT,
 * _INPUT, _OUTPUT) maps to integers, as the number attributes "<t>_scale",
 * "<t>_zero_point", "<t>_bits", "<t>_signed" (1 or 0), "<t>_min" and
 * "<t>_max" (t = weight, input, output), which exports
 * (nnic_compressor_export_onnx) and checkpoints read. A quantizer calls it
 * after each quantization; a value that is already there is updated in
 * place (nothing is allocated). */
NNIC_API gboolean nnic_wrapper_publish_quant (NnicWrapper *w, NnicQuantType type,
                                              const NnicQuantParams *p, GError **error);
/* Reads them back; FALSE when nothing was published for that type (no
 * "<t>_scale"). An attribute that is absent reads as zero_point 0, bits 8,
 * unsigned, min and max NaN; bits is -1 when "<t>_bits" is not a whole
 * number in [0, 64]. `p` may be NULL. */
NNIC_API gboolean nnic_wrapper_get_quant (const NnicWrapper *w, NnicQuantType type,
                                          NnicQuantParams *p);
/* The quant types (NnicQuantType bits) of the wrapper's config entry, and
 * its bits for one type from `quant_bits` (an int, or {"weight": 8, ...});
 * -1 when the entry gives none. */
NNIC_API guint nnic_wrapper_quant_types (const NnicWrapper *w);
NNIC_API int nnic_wrapper_quant_bits (const NnicWrapper *w, NnicQuantType type);
/* For a quantizer's create(): refuses, naming the entry and position, a
 * quant type outside `allowed` (NnicQuantType bits) in any config entry:
 * "config_list[1].quant_types[0]: 'input' is not supported (valid: weight,
 * output)". */
NNIC_API gboolean nnic_compressor_check_quant_types (NnicCompressor *c, guint allowed,
                                                     GError **error);

/* ---- activation collectors ---- */

/* Called after each forward of every wrapped node with its output. */
typedef void (*NnicCollectorFn) (NnicCompressor *c, NnicWrapper *w, const NnicTensor *output,
                                 gpointer user_data);
/* Returns an id > 0. */
NNIC_API guint nnic_compressor_add_activation_collector (NnicCompressor *c, NnicCollectorFn fn,
                                                         gpointer user_data, GDestroyNotify destroy,
                                                         GError **error);
/* Removes exactly that collector; an unknown id is an error. */
NNIC_API gboolean nnic_compressor_remove_activation_collector (NnicCompressor *c, guint id,
                                                               GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnicConfigList, nnic_config_list_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnicCompressor, nnic_compressor_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnicCompressorState, nnic_compressor_state_free)

G_END_DECLS
