/* nnic — what filter maskers share (NNI's StructuredWeightMasker).
 *
 * Every filter masker of NNI begins the same way: the weight times the
 * current mask, the number of filters to prune int(F * sparsity), nothing
 * to do when F < 2 or that number is 0; only then does it rank the filters
 * (get_mask). nnic_structured_calc_mask() is that opening, so that a
 * masker's calc_mask is one call and its get_mask is the ranking alone,
 * with the counting rule the same in every masker and the same as NNI's.
 *
 * Dependency-aware pruning (NnicCompressorOptions.dependency_aware) does
 * not go through calc_mask: the core ranks with the masker's
 * channel_scores (include/nnic/plugin.h).
 */
#pragma once

#include <nnic/export.h>

#include <glib.h>
#include <nnic/tensor.h>
#include <nnic/compress.h>

G_BEGIN_DECLS

/* What get_mask is given (NNI's base mask, weight, num_prune, wrapper,
 * wrapper_idx). Made by nnic_structured_calc_mask() and valid only during
 * the call. Members are only ever appended. */
typedef struct {
  NnicCompressor *compressor;
  NnicWrapper *wrapper;
  guint wrapper_index;
  double sparsity;
  int64_t filters;          /* F, weight->shape[0], at least 2 */
  int64_t per_filter;       /* weights per filter: numel / F */
  int64_t num_prune;        /* int(F * sparsity) (double, truncated), at least 1 */
  const NnicTensor *weight; /* weight * current mask, the weight's shape; read-only */
} NnicFilterPruning;

/* The ranking: sets the wrapper's masks for p->num_prune filters (with
 * nnic_wrapper_prune_lowest() or nnic_wrapper_set_mask()), or sets
 * *ready = FALSE when its statistics are not complete yet (*ready is TRUE
 * on entry). `state` is the one nnic_structured_calc_mask() was given. */
typedef gboolean (*NnicGetMaskFn) (gpointer state, const NnicFilterPruning *p, gboolean *ready,
                                   GError **error);

typedef struct {
  guint32 struct_size; /* sizeof (NnicStructuredMasker) */
  const char *name;    /* the algorithm, named in errors: "l1filter" */
  const char *op_type; /* the only layer type it prunes, "Conv2d"; NULL for any */
  /* The base mask is all ones, not the current masks: when there is
   * nothing to prune the masks are reset to ones rather than left as they
   * are (NNI's SlimPrunerMasker, whose masks are made fresh each time). */
  gboolean base_mask_ones;
  NnicGetMaskFn get_mask;
} NnicStructuredMasker;

/* NNI's StructuredWeightMasker.calc_mask, for a masker's calc_mask to
 * return: sets *ready = TRUE; refuses a wrapper of another type than
 * masker->op_type, or without a weight; computes num_prune; leaves the
 * masks as they are (or all ones, with base_mask_ones) when F < 2 or
 * num_prune < 1; otherwise calls masker->get_mask. Errors of get_mask are
 * passed on as they are. */
NNIC_API gboolean nnic_structured_calc_mask (const NnicStructuredMasker *masker, gpointer state,
                                    NnicCompressor *c, NnicWrapper *w, guint wrapper_index,
                                    double sparsity, gboolean *ready, GError **error);

/* The weight times the current weight mask, the tensor a filter masker
 * ranks (channel_scores needs it without the opening above). Free it
 * with nnic_tensor_free(); never write to it: when the mask has no zero
 * it is a view of the parameter itself, which is the usual case and
 * costs no copy. NULL with an error when the wrapper has no weight. */
NNIC_API NnicTensor *nnic_wrapper_masked_weight (NnicWrapper *w, GError **error);

/* A qsort() comparator for float scores: ascending, every NaN after every
 * number (torch.sort's and torch.topk(largest=False)'s order, so that a
 * NaN score is never chosen as a threshold before a number is), NaNs
 * equal among themselves. */
NNIC_API int nnic_float_compare (const void *a, const void *b);

G_END_DECLS
