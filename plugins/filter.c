/* Filter maskers: NNI's L1FilterPrunerMasker, L2FilterPrunerMasker and
 * FPGMPrunerMasker (tests/fixtures/nni-masks/SEMANTICS.md states the
 * rules). Conv2d only, as NNI's config validation of filter pruners.
 *
 * F = weight.shape[0], num_prune = int(F * sparsity) (double, truncated);
 * F < 2 or num_prune < 1 leaves the masks as they are. The weight scored
 * is weight * current mask (NNI's "apply base mask for iterative
 * pruning"; nnic keeps the masks applied to the weights, so for a fresh
 * or one-shot wrapper it is the raw weight).
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

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { FILTER_L1, FILTER_L2, FILTER_FPGM } FilterKind;

typedef struct {
  FilterKind kind;
  const FilterKernels *kernels;
} FilterState;

/* ---- checks ---- */

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

static const char *
kind_name (FilterKind kind)
{
  return kind == FILTER_L1 ? "l1filter" : kind == FILTER_L2 ? "l2filter" : "fpgm";
}

static gpointer
filter_create (NnicCompressor *c, FilterKind kind, GError **error)
{
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++)
    if (!check_conv (nnic_compressor_wrapper (c, i), kind_name (kind), error))
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

/* ---- the weight to score ---- */

/* The weight with the current mask applied: the parameter itself when the
 * mask has no zero (the usual case: nnic keeps masks applied), else a
 * masked copy in *copy. */
static const float *
masked_weight (NnicWrapper *w, NnicTensor **copy, GError **error)
{
  NnicTensor *weight = nnic_wrapper_weight (w);
  const NnicTensor *mask = nnic_wrapper_get_mask (w, "weight");
  *copy = NULL;
  if (!mask || !memchr (mask->u8, 0, (size_t) mask->numel))
    return weight->f32;
  if (!(*copy = nnic_tensor_new_like (weight, error)))
    return NULL;
  for (int64_t i = 0; i < weight->numel; i++)
    (*copy)->f32[i] = mask->u8[i] ? weight->f32[i] : 0.0f;
  return (*copy)->f32;
}

/* ---- scores, thresholds, masks ---- */

static gboolean
filter_scores (const FilterState *s, NnicWrapper *w, float *scores, GError **error)
{
  if (!check_conv (w, kind_name (s->kind), error))
    return FALSE;
  NnicTensor *weight = nnic_wrapper_weight (w);
  const int64_t filters = weight->shape[0], per = weight->numel / filters;
  g_autoptr (NnicTensor) copy = NULL;
  const float *wv = masked_weight (w, &copy, error);
  if (!wv)
    return FALSE;
  if (s->kind == FILTER_FPGM)
    return filter_distance_sums (s->kernels, wv, filters, per, scores, error);
  filter_norms (s->kernels, wv, filters, per, s->kind == FILTER_L2, scores);
  return TRUE;
}

/* Ascending, NaN last (torch.topk's order for largest=False). */
static int
cmp_float (const void *pa, const void *pb)
{
  const float a = *(const float *) pa, b = *(const float *) pb;
  if (isnan (a) || isnan (b))
    return isnan (a) - isnan (b);
  return (a > b) - (a < b);
}

/* Sets the masks of whole filters: keep[f] = 0 prunes filter f (and its
 * bias entry). With `from_current`, filters already masked stay as they
 * were (FPGM); otherwise the masks are made fresh from keep (L1/L2). */
static gboolean
set_filter_masks (NnicWrapper *w, const guint8 *keep, gboolean from_current, GError **error)
{
  NnicTensor *weight = nnic_wrapper_weight (w);
  const int64_t filters = weight->shape[0], per = weight->numel / filters;
  g_autoptr (NnicTensor) mask = from_current ? nnic_tensor_copy (nnic_wrapper_get_mask (w, "weight"), error)
                                             : nnic_tensor_new (NNIC_DTYPE_U8, weight->ndim, weight->shape, error);
  if (!mask)
    return FALSE;
  for (int64_t f = 0; f < filters; f++)
    if (!from_current || !keep[f])
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
    if (!from_current || !keep[f])
      bias->u8[f] = keep[f] ? 1 : 0;
  return nnic_wrapper_set_mask (w, "bias", bias, error);
}

static gboolean
filter_calc_mask (gpointer state, NnicCompressor *c, NnicWrapper *w, guint index, double sparsity,
                  gboolean *ready, GError **error)
{
  (void) c;
  (void) index;
  const FilterState *s = state;
  *ready = TRUE;
  if (!check_conv (w, kind_name (s->kind), error))
    return FALSE;
  const int64_t filters = nnic_wrapper_weight (w)->shape[0];
  const int64_t num_prune = (int64_t) ((double) filters * sparsity);
  if (filters < 2 || num_prune < 1)
    return TRUE; /* NNI returns the current masks unchanged */
  g_autofree float *scores = g_new (float, filters);
  g_autofree guint8 *keep = g_new (guint8, filters);
  if (!filter_scores (s, w, scores, error))
    return FALSE;
  if (s->kind == FILTER_FPGM) {
    /* Exactly num_prune, the smallest d_f, ties to the lower index, on top
     * of the current mask. */
    g_autofree double *d = g_new (double, filters);
    for (int64_t f = 0; f < filters; f++)
      d[f] = scores[f];
    return nnic_wrapper_prune_lowest (w, d, num_prune, error);
  }
  /* t = the num_prune-th smallest score; keep score > t. */
  g_autofree float *sorted = g_memdup2 (scores, sizeof (float) * (gsize) filters);
  qsort (sorted, (size_t) filters, sizeof (float), cmp_float);
  const float t = sorted[num_prune - 1];
  for (int64_t f = 0; f < filters; f++)
    keep[f] = scores[f] > t;
  return set_filter_masks (w, keep, FALSE, error);
}

static gboolean
filter_channel_scores (gpointer state, NnicCompressor *c, NnicWrapper *w, float *scores,
                       gboolean *ready, GError **error)
{
  (void) c;
  *ready = TRUE;
  return filter_scores (state, w, scores, error);
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
