/* Dependency-aware filter pruning (NNI's dependency_aware=True): layers
 * whose output channels meet in an Add lose the same channels, chosen by
 * the sum of the masker's channel scores over the set, and a layer read by
 * a grouped convolution loses channels evenly in each group.
 *
 * nnic's rules, where NNI left room: the number pruned is int(C * s) with
 * s the smallest sparsity in the set (no layer loses more than its config
 * asks), rounded down to a multiple of the groups; within each group the
 * lowest summed scores go, ties to the lower channel. */
#include "core/compress/wrapper.h"

#include <string.h>

typedef struct {
  float score;
  int64_t channel;
} Ranked;

static gint
by_score (gconstpointer a, gconstpointer b)
{
  const Ranked *x = a, *y = b;
  if (x->score != y->score)
    return x->score < y->score ? -1 : 1;
  return x->channel < y->channel ? -1 : (x->channel > y->channel);
}

/* 0/1 per channel: prune `per_group` lowest-scoring channels in each of
 * `groups` contiguous groups. */
static void
choose_channels (const float *score, int64_t channels, int groups, int64_t per_group, guint8 *keep)
{
  const int64_t size = channels / groups;
  g_autofree Ranked *r = g_new (Ranked, size);
  memset (keep, 1, (size_t) channels);
  for (int g = 0; g < groups; g++) {
    for (int64_t i = 0; i < size; i++)
      r[i] = (Ranked) { score[g * size + i], g * size + i };
    qsort (r, (size_t) size, sizeof *r, (int (*) (const void *, const void *)) by_score);
    for (int64_t i = 0; i < per_group; i++)
      keep[r[i].channel] = 0;
  }
}

/* Masks a whole output channel (filter and bias entry). */
static gboolean
set_channel_masks (NnicWrapper *w, const guint8 *keep, GError **error)
{
  NnicTensor *weight = nnic_wrapper_weight (w);
  const int64_t channels = weight->shape[0], per = weight->numel / channels;
  g_autoptr (NnicTensor) mask = nnic_tensor_copy (nnic_wrapper_get_mask (w, "weight"), error);
  if (!mask)
    return FALSE;
  for (int64_t c = 0; c < channels; c++)
    if (!keep[c])
      memset (mask->u8 + c * per, 0, (size_t) per);
  if (!nnic_wrapper_set_mask (w, "weight", mask, error))
    return FALSE;
  const NnicTensor *bm = nnic_wrapper_get_mask (w, "bias");
  if (!bm)
    return TRUE;
  g_autoptr (NnicTensor) bias = nnic_tensor_copy (bm, error);
  if (!bias)
    return FALSE;
  for (int64_t c = 0; c < channels; c++)
    if (!keep[c])
      bias->u8[c] = 0;
  return nnic_wrapper_set_mask (w, "bias", bias, error);
}

/* One set of wrappers (or a single one) pruned together. */
static gboolean
prune_set (NnicCompressor *c, const NnicMaskerVTable *vt, gpointer state, NnicWrapper **set, guint n,
           GError **error)
{
  NnicModel *m = nnic_compressor_model (c);
  const int64_t channels = nnic_wrapper_weight (set[0])->shape[0];
  g_autofree float *sum = g_new0 (float, channels);
  g_autofree float *one = g_new (float, channels);
  double sparsity = 1.0;
  int groups = 1;
  for (guint i = 0; i < n; i++) {
    NnicTensor *weight = nnic_wrapper_weight (set[i]);
    if (weight->shape[0] != channels) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                   "%s and %s meet in an Add but have %" G_GINT64_FORMAT " and %" G_GINT64_FORMAT " channels",
                   nnic_wrapper_name (set[0]), nnic_wrapper_name (set[i]), channels, weight->shape[0]);
      return FALSE;
    }
    gboolean ready = TRUE;
    if (!vt->channel_scores (state, c, set[i], one, &ready, error))
      return FALSE;
    if (!ready)
      return TRUE; /* statistics still coming: try again after the next step */
    for (int64_t k = 0; k < channels; k++)
      sum[k] += one[k];
    sparsity = MIN (sparsity, nnic_wrapper_config_double (set[i], "sparsity", 0.0));
    groups = MAX (groups, nnic_model_channel_groups (m, nnic_wrapper_node (set[i])));
  }
  if (channels % groups != 0)
    groups = 1;
  const int64_t prune = (int64_t) ((double) channels * sparsity);
  const int64_t per_group = prune / groups;
  if (channels >= 2 && per_group >= 1) {
    g_autofree guint8 *keep = g_new (guint8, channels);
    choose_channels (sum, channels, groups, per_group, keep);
    for (guint i = 0; i < n; i++)
      if (!set_channel_masks (set[i], keep, error))
        return FALSE;
  }
  for (guint i = 0; i < n; i++)
    set[i]->if_calculated = TRUE;
  return TRUE;
}

gboolean
nnic_dependency_aware_update (NnicCompressor *c, const NnicMaskerVTable *vt, gpointer state,
                              const char *masker, GError **error)
{
  if (!vt->channel_scores || vt->struct_size < G_STRUCT_OFFSET (NnicMaskerVTable, channel_scores) + sizeof (gpointer)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                 "%s cannot prune dependency-aware: it gives no channel scores (a filter masker does)", masker);
    return FALSE;
  }
  NnicModel *m = nnic_compressor_model (c);
  g_autoptr (GPtrArray) deps = nnic_model_channel_dependencies (m);
  g_autofree NnicWrapper **set = g_new0 (NnicWrapper *, nnic_compressor_n_wrappers (c) + 1);
  /* Sets first: a layer of a set is pruned with all the wrapped others. */
  for (guint d = 0; d < deps->len; d++) {
    GArray *nodes = g_ptr_array_index (deps, d);
    guint n = 0;
    for (guint k = 0; k < nodes->len; k++) {
      NnicWrapper *w = nnic_compressor_find_wrapper (c, nnic_model_node_name (m, g_array_index (nodes, guint, k)));
      if (w && !w->if_calculated)
        set[n++] = w;
    }
    if (n > 0 && !prune_set (c, vt, state, set, n, error))
      return FALSE;
  }
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    if (!w->if_calculated && !prune_set (c, vt, state, &w, 1, error))
      return FALSE;
  }
  return TRUE;
}
