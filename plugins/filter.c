/* Filter maskers: NNI's L1FilterPrunerMasker, L2FilterPrunerMasker and
 * FPGMPrunerMasker (tests/fixtures/nni-masks/SEMANTICS.md states the
 * rules). Conv2d only, as NNI's config validation of filter pruners.
 *
 * The opening is NNI's StructuredWeightMasker (nnic_structured_calc_mask,
 * include/nnic/masker.h): F = weight.shape[0], num_prune = int(F *
 * sparsity) (double, truncated); F < 2 or num_prune < 1 leaves the masks as
 * they are. The weight scored is weight * current mask (NNI's "apply base
 * mask for iterative pruning"; nnic keeps the masks applied to the
 * weights, so for a fresh or one-shot wrapper it is the raw weight). Then
 * each masker's get_mask:
 *  - l1filter: score_f = sum_j |W[f,j]|; l2filter: sqrt(sum_j W[f,j]^2).
 *    t = the num_prune-th smallest score; a filter stays iff score > t
 *    (ties at t all go: more than num_prune may be pruned). The masks are
 *    made fresh from the scores, as NNI's are.
 *  - fpgm: d_f = sum_g sqrt(sum_j (W[g,j] - W[f,j])^2); exactly num_prune
 *    filters with the smallest d_f go, ties to the lower index (Python's
 *    stable sort), on top of the current masks.
 *
 * How the sums are taken, vectorised and with the same bits on every
 * machine, and how close they come to torch's: filter_kernels.c. */
#include <nnic/plugin.h>

#include "filter_kernels.h"

#include <stdlib.h>
#include <string.h>

typedef enum { FILTER_L1, FILTER_L2, FILTER_FPGM } FilterKind;

typedef struct {
  FilterKind kind;
  const FilterKernels *kernels;
} FilterState;

static const NnicStructuredMasker *masker (FilterKind kind);

static gboolean
check_conv (NnicWrapper *w, const char *algorithm, GError **error)
{
  const char *type = nnic_wrapper_type (w);
  if (g_strcmp0 (type, "Conv2d") != 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                 "layer '%s' is a %s: %s prunes Conv2d filters only (as NNI's filter pruners); "
                 "select Conv2d layers with \"op_types\": [\"Conv2d\"]",
                 nnic_wrapper_name (w), type, algorithm);
    return FALSE;
  }
  NnicTensor *weight = nnic_wrapper_weight (w);
  if (!weight || weight->ndim != 4 || weight->shape[0] < 1) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE, "layer '%s': a Conv2d weight must be 4-D",
                 nnic_wrapper_name (w));
    return FALSE;
  }
  return TRUE;
}

static gpointer
filter_create (NnicCompressor *c, FilterKind kind, GError **error)
{
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++)
    if (!check_conv (nnic_compressor_wrapper (c, i), masker (kind)->name, error))
      return NULL;
  FilterState *s = g_new0 (FilterState, 1);
  s->kind = kind;
  s->kernels = filter_kernels ();
  return s;
}

static gpointer
l1_create (NnicCompressor *c, GError **error)
{
  return filter_create (c, FILTER_L1, error);
}

static gpointer
l2_create (NnicCompressor *c, GError **error)
{
  return filter_create (c, FILTER_L2, error);
}

static gpointer
fpgm_create (NnicCompressor *c, GError **error)
{
  return filter_create (c, FILTER_FPGM, error);
}

/* NNI's get_channel_sum: the score of each filter of `weight` (weight *
 * mask), lower pruned first. */
static gboolean
channel_sum (const FilterState *s, const NnicTensor *weight, float *scores, GError **error)
{
  const int64_t filters = weight->shape[0], per = weight->numel / filters;
  if (s->kind == FILTER_FPGM)
    return filter_distance_sums (s->kernels, weight->f32, filters, per, scores, error);
  filter_norms (s->kernels, weight->f32, filters, per, s->kind == FILTER_L2, scores);
  return TRUE;
}

/* ---- L1FilterPrunerMasker, L2FilterPrunerMasker ---- */

/* Masks made fresh from keep[f] (0 prunes filter f and its bias entry). */
static gboolean
set_filter_masks (NnicWrapper *w, const guint8 *keep, GError **error)
{
  NnicTensor *weight = nnic_wrapper_weight (w);
  const int64_t filters = weight->shape[0], per = weight->numel / filters;
  g_autoptr (NnicTensor) mask = nnic_tensor_new (NNIC_DTYPE_U8, weight->ndim, weight->shape, error);
  if (!mask)
    return FALSE;
  for (int64_t f = 0; f < filters; f++)
    memset (mask->u8 + f * per, keep[f] ? 1 : 0, (size_t) per);
  if (!nnic_wrapper_set_mask (w, "weight", mask, error))
    return FALSE;
  const NnicTensor *old_bias = nnic_wrapper_get_mask (w, "bias");
  if (!old_bias)
    return TRUE;
  g_autoptr (NnicTensor) bias = nnic_tensor_copy (old_bias, error);
  if (!bias)
    return FALSE;
  for (int64_t f = 0; f < filters; f++)
    bias->u8[f] = keep[f] ? 1 : 0;
  return nnic_wrapper_set_mask (w, "bias", bias, error);
}

/* t = the num_prune-th smallest score (torch.topk(largest=False)'s max);
 * a filter stays iff its score > t. */
static gboolean
norm_get_mask (gpointer state, const NnicFilterPruning *p, gboolean *ready, GError **error)
{
  (void) ready;
  const int64_t filters = p->filters;
  g_autofree float *scores = g_new (float, filters);
  if (!channel_sum (state, p->weight, scores, error))
    return FALSE;
  g_autofree float *sorted = g_memdup2 (scores, sizeof (float) * (gsize) filters);
  qsort (sorted, (size_t) filters, sizeof (float), nnic_float_compare);
  const float t = sorted[p->num_prune - 1];
  g_autofree guint8 *keep = g_new (guint8, filters);
  for (int64_t f = 0; f < filters; f++)
    keep[f] = scores[f] > t;
  return set_filter_masks (p->wrapper, keep, error);
}

/* ---- FPGMPrunerMasker ---- */

/* Exactly num_prune, the smallest d_f, ties to the lower index, on top of
 * the current mask. */
static gboolean
fpgm_get_mask (gpointer state, const NnicFilterPruning *p, gboolean *ready, GError **error)
{
  (void) ready;
  g_autofree float *d = g_new (float, p->filters);
  if (!channel_sum (state, p->weight, d, error))
    return FALSE;
  g_autofree double *scores = g_new (double, p->filters);
  for (int64_t f = 0; f < p->filters; f++)
    scores[f] = d[f];
  return nnic_wrapper_prune_lowest (p->wrapper, scores, p->num_prune, error);
}

/* ---- the vtables ---- */

#define CONV_MASKER(name_, get_mask_)                                                 \
  {                                                                                   \
    .struct_size = sizeof (NnicStructuredMasker), .name = name_, .op_type = "Conv2d", \
    .get_mask = get_mask_                                                             \
  }

static const NnicStructuredMasker maskers[] = {
  [FILTER_L1] = CONV_MASKER ("l1filter", norm_get_mask),
  [FILTER_L2] = CONV_MASKER ("l2filter", norm_get_mask),
  [FILTER_FPGM] = CONV_MASKER ("fpgm", fpgm_get_mask),
};

static const NnicStructuredMasker *
masker (FilterKind kind)
{
  return &maskers[kind];
}

static gboolean
filter_calc_mask (gpointer state, NnicCompressor *c, NnicWrapper *w, guint index, double sparsity,
                  gboolean *ready, GError **error)
{
  const FilterState *s = state;
  return nnic_structured_calc_mask (masker (s->kind), state, c, w, index, sparsity, ready, error);
}

/* Dependency-aware mode: the core ranks layers that must agree by the sum
 * of these. */
static gboolean
filter_channel_scores (gpointer state, NnicCompressor *c, NnicWrapper *w, float *scores,
                       gboolean *ready, GError **error)
{
  (void) c;
  const FilterState *s = state;
  *ready = TRUE;
  if (!check_conv (w, masker (s->kind)->name, error))
    return FALSE;
  g_autoptr (NnicTensor) weight = nnic_wrapper_masked_weight (w, error);
  return weight && channel_sum (s, weight, scores, error);
}

#define FILTER_VTABLE(create_fn)                                                   \
  {                                                                                \
    .struct_size = sizeof (NnicMaskerVTable), .create = create_fn, .destroy = g_free, \
    .calc_mask = filter_calc_mask, .channel_scores = filter_channel_scores,        \
  }

static const NnicMaskerVTable l1_vtable = FILTER_VTABLE (l1_create);
static const NnicMaskerVTable l2_vtable = FILTER_VTABLE (l2_create);
static const NnicMaskerVTable fpgm_vtable = FILTER_VTABLE (fpgm_create);

static const NnicAlgorithmInfo infos[] = {
  {
    .struct_size = sizeof (NnicAlgorithmInfo),
    .kind = NNIC_ALGORITHM_MASKER,
    .name = "l1filter",
    .description = "Conv2d filters of smallest sum |w| go, ties at the threshold too (NNI's L1FilterPruner)",
    .vtable = &l1_vtable,
  },
  {
    .struct_size = sizeof (NnicAlgorithmInfo),
    .kind = NNIC_ALGORITHM_MASKER,
    .name = "l2filter",
    .description = "Conv2d filters of smallest L2 norm go, ties at the threshold too (NNI's L2FilterPruner)",
    .vtable = &l2_vtable,
  },
  {
    .struct_size = sizeof (NnicAlgorithmInfo),
    .kind = NNIC_ALGORITHM_MASKER,
    .name = "fpgm",
    .description = "Conv2d filters nearest the geometric median go, exactly int(F * sparsity) (NNI's FPGMPruner)",
    .vtable = &fpgm_vtable,
  },
};

static gboolean
register_filter (NnicRegistrar *r, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (infos); i++)
    if (!nnic_registrar_add (r, &infos[i], error))
      return FALSE;
  return TRUE;
}

NNIC_PLUGIN_DEFINE ("nnic-filter", "1.0.0", "MIT",
                    "Filter maskers: l1filter, l2filter, fpgm (NNI's L1/L2FilterPruner, FPGMPruner)",
                    register_filter)
