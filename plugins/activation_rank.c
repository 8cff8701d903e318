/* apoz and mean_activation: NNI's ActivationAPoZRankFilterPrunerMasker and
 * ActivationMeanRankFilterPrunerMasker (Hu et al. 2016, "Network
 * Trimming"; Molchanov et al. 2017). Both rank the filters of each Conv2d
 * by what the layer outputs, through relu (or relu6) applied to the conv's
 * own output (before any BatchNorm or activation layer of the model):
 *   apoz:            score_f = 1 - zeros_f / (N * H * W)   (1 - the average
 *                    percentage of zeros; APoZ is the same for relu6)
 *   mean_activation: score_f = sum of relu(out)[:, f] / (N * H * W)
 * over every batch collected, and prune the num_prune = (int64_t) ((double)
 * F * sparsity) filters of smallest score: weight_mask[f] = bias_mask[f] =
 * 0, from the current masks. F < 2 or num_prune < 1 leaves the masks as
 * they are (that opening is nnic_structured_calc_mask's, NNI's
 * StructuredWeightMasker).
 *
 * Timing, as in NNI: an activation collector (NNI's forward hook) counts
 * every forward of the wrapped layers, in training or evaluation mode.
 * calc_mask answers *ready = FALSE until a layer has seen
 * statistics_batch_num batches; the masks come at the next optimizer step
 * (NNI's update_mask), or at the next nnic_compressor_compress() without
 * an optimizer. Batches that run before that step count too (NNI keeps
 * collecting until the mask is computed). Once every layer has its
 * statistics and a mask has been computed, the collector is removed (NNI
 * removes its hooks), so later forwards cost nothing; the statistics stay
 * for a scheduling pruner that asks again.
 *
 * Differences from NNI, all deliberate:
 *  - statistics_batch_num and activation are keys of the config entry
 *    (NNI: arguments of the pruner's constructor), so layers may differ.
 *  - Statistics are accumulated per channel as they arrive (NNI keeps
 *    every relu'd output and concatenates them): zeros are counted
 *    exactly; sums are taken in double per batch and kept in float32.
 *  - Ties: NNI's torch.argsort is unstable, so among exactly equal scores
 *    its choice is arbitrary (exact APoZ ties are common); here the lower
 *    filter index is pruned first (a stable order), always exactly
 *    num_prune.
 *
 * Statistics are wrapper attributes (kept in checkpoints):
 * `activation_batches`, `activation_elements` (N * H * W so far) and
 * `activation_zeros` (int64 [F], apoz) or `activation_sum` (float32 [F],
 * mean_activation). */
#include <nnic/plugin.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { RANK_APOZ, RANK_MEAN } RankKind;

typedef struct {
  NnicCompressor *compressor;
  RankKind kind;
  guint collector; /* 0 once removed */
} Rank;

static const char *
kind_name (RankKind kind)
{
  return kind == RANK_APOZ ? "apoz" : "mean_activation";
}

static double
attr_number (NnicWrapper *w, const char *name)
{
  double v = 0.0;
  nnic_wrapper_get_attribute_double (w, name, &v);
  return v;
}

static gint64
statistics_batch_num (NnicWrapper *w)
{
  return (gint64) nnic_wrapper_config_double (w, "statistics_batch_num", 1.0);
}

static gboolean
uses_relu6 (NnicWrapper *w)
{
  JsonObject *cfg = nnic_wrapper_config (w);
  return json_object_has_member (cfg, "activation") &&
         g_strcmp0 (json_object_get_string_member (cfg, "activation"), "relu6") == 0;
}

/* The per-channel statistic tensor, made on first use. */
static NnicTensor *
statistic (Rank *r, NnicWrapper *w, int64_t channels)
{
  const char *name = r->kind == RANK_APOZ ? "activation_zeros" : "activation_sum";
  NnicTensor *t = nnic_wrapper_get_attribute_tensor (w, name);
  if (t)
    return t;
  g_autoptr (GError) error = NULL;
  t = nnic_tensor_new (r->kind == RANK_APOZ ? NNIC_DTYPE_I64 : NNIC_DTYPE_F32, 1, &channels, &error);
  if (!t || !nnic_wrapper_set_attribute_tensor (w, name, t, &error)) {
    g_warning ("%s: %s: %s", kind_name (r->kind), nnic_wrapper_name (w), error->message);
    return NULL;
  }
  return t; /* zeroed */
}

/* NNI's forward hook: relu (or relu6) of the conv's output, per channel. */
static void
collect (NnicCompressor *c, NnicWrapper *w, const NnicTensor *out, gpointer user_data)
{
  (void) c;
  Rank *r = user_data;
  if (out->ndim != 4 || out->dtype != NNIC_DTYPE_F32)
    return;
  const int64_t batch = out->shape[0], channels = out->shape[1];
  const int64_t plane = out->shape[2] * out->shape[3];
  NnicTensor *stat = statistic (r, w, channels);
  if (!stat || stat->numel != channels)
    return;
  const gboolean relu6 = uses_relu6 (w);
  for (int64_t ch = 0; ch < channels; ch++) {
    int64_t zeros = 0;
    double sum = 0.0;
    for (int64_t b = 0; b < batch; b++) {
      const float *x = out->f32 + (b * channels + ch) * plane;
      if (r->kind == RANK_APOZ) {
        for (int64_t j = 0; j < plane; j++)
          zeros += x[j] <= 0.0f; /* relu(x) == 0 (relu6 has the same zeros) */
      } else {
        for (int64_t j = 0; j < plane; j++) {
          const float v = x[j] > 0.0f ? x[j] : 0.0f;
          sum += relu6 && v > 6.0f ? 6.0 : (double) v;
        }
      }
    }
    if (r->kind == RANK_APOZ)
      stat->i64[ch] += zeros;
    else
      stat->f32[ch] += (float) sum;
  }
  nnic_wrapper_set_attribute_double (w, "activation_batches", attr_number (w, "activation_batches") + 1.0, NULL);
  nnic_wrapper_set_attribute_double (w, "activation_elements",
                                     attr_number (w, "activation_elements") + (double) (batch * plane), NULL);
}

static gboolean
statistics_complete (NnicWrapper *w)
{
  return attr_number (w, "activation_batches") >= (double) statistics_batch_num (w);
}

/* NNI removes its forward hooks once a mask has been computed; here once
 * every layer has its statistics, so that none is left short. Called from
 * calc_mask, never from inside the collector (the compressor is walking
 * its collectors then). */
static void
maybe_remove_collector (Rank *r, NnicCompressor *c)
{
  if (!r->collector)
    return;
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++)
    if (!statistics_complete (nnic_compressor_wrapper (c, i)))
      return;
  nnic_compressor_remove_activation_collector (c, r->collector, NULL);
  r->collector = 0;
}

static Rank *
rank_create (NnicCompressor *c, RankKind kind, GError **error)
{
  const char *name = kind_name (kind);
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    if (g_strcmp0 (nnic_wrapper_type (w), "Conv2d") != 0) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "%s prunes the filters of Conv2d layers only, but layer '%s' is %s "
                   "(select it out, e.g. \"op_types\": [\"Conv2d\"])",
                   name, nnic_wrapper_name (w), nnic_wrapper_type (w));
      return NULL;
    }
  }
  /* The schema says it is a string; the value is checked here. */
  for (guint i = 0; i < nnic_compressor_n_config_entries (c); i++) {
    JsonObject *entry = nnic_compressor_config_entry (c, i);
    if (!json_object_has_member (entry, "activation"))
      continue;
    const char *a = json_object_get_string_member (entry, "activation");
    if (g_strcmp0 (a, "relu") != 0 && g_strcmp0 (a, "relu6") != 0) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "config_list[%u].activation: must be \"relu\" or \"relu6\", got \"%s\"", i,
                   a ? a : "(null)");
      return NULL;
    }
  }
  Rank *r = g_new0 (Rank, 1);
  r->compressor = c;
  r->kind = kind;
  if (!(r->collector = nnic_compressor_add_activation_collector (c, collect, r, NULL, error))) {
    g_free (r);
    return NULL;
  }
  return r;
}

static gpointer
apoz_create (NnicCompressor *c, GError **error)
{
  return rank_create (c, RANK_APOZ, error);
}

static gpointer
mean_create (NnicCompressor *c, GError **error)
{
  return rank_create (c, RANK_MEAN, error);
}

static void
rank_destroy (gpointer state)
{
  Rank *r = state;
  if (r->collector)
    nnic_compressor_remove_activation_collector (r->compressor, r->collector, NULL);
  g_free (r);
}

/* NNI's get_mask of both: the num_prune filters of smallest score, or
 * None (*ready = FALSE) before statistics_batch_num batches. */
static gboolean
rank_get_mask (gpointer state, const NnicFilterPruning *p, gboolean *ready, GError **error)
{
  Rank *r = state;
  NnicWrapper *w = p->wrapper;
  const char *name = r->kind == RANK_APOZ ? "activation_zeros" : "activation_sum";
  NnicTensor *stat = nnic_wrapper_get_attribute_tensor (w, name);
  const double elements = attr_number (w, "activation_elements");
  if (!statistics_complete (w) || !stat || !(elements > 0)) {
    *ready = FALSE; /* ask again after the next step */
    return TRUE;
  }
  if (stat->numel != p->filters) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "%s: statistics of %" G_GINT64_FORMAT " channels for %" G_GINT64_FORMAT " filters",
                 nnic_wrapper_name (w), stat->numel, p->filters);
    return FALSE;
  }
  g_autofree double *scores = g_new (double, p->filters);
  for (int64_t f = 0; f < p->filters; f++)
    scores[f] = r->kind == RANK_APOZ ? 1.0 - (double) stat->i64[f] / elements
                                     : (double) stat->f32[f] / elements;
  if (!nnic_wrapper_prune_lowest (w, scores, p->num_prune, error))
    return FALSE;
  maybe_remove_collector (r, p->compressor);
  return TRUE;
}

static const NnicStructuredMasker rank_maskers[] = {
  [RANK_APOZ] = { .struct_size = sizeof (NnicStructuredMasker), .name = "apoz", .op_type = "Conv2d",
                  .get_mask = rank_get_mask },
  [RANK_MEAN] = { .struct_size = sizeof (NnicStructuredMasker), .name = "mean_activation",
                  .op_type = "Conv2d", .get_mask = rank_get_mask },
};

static gboolean
rank_calc_mask (gpointer state, NnicCompressor *c, NnicWrapper *w, guint index, double sparsity,
                gboolean *ready, GError **error)
{
  const Rank *r = state;
  return nnic_structured_calc_mask (&rank_maskers[r->kind], state, c, w, index, sparsity, ready, error);
}

static const NnicMaskerVTable apoz_vtable = {
  .struct_size = sizeof (NnicMaskerVTable),
  .create = apoz_create,
  .destroy = rank_destroy,
  .calc_mask = rank_calc_mask,
};

static const NnicMaskerVTable mean_vtable = {
  .struct_size = sizeof (NnicMaskerVTable),
  .create = mean_create,
  .destroy = rank_destroy,
  .calc_mask = rank_calc_mask,
};

static const NnicConfigKey rank_keys[] = {
  { "statistics_batch_num", NNIC_KEY_INT, 1, INFINITY, FALSE, FALSE, FALSE, "1",
    "forward batches whose activations rank the filters (NNI: a pruner argument)" },
  { "activation", NNIC_KEY_STRING, 0, 0, FALSE, FALSE, FALSE, "relu",
    "\"relu\" or \"relu6\", applied to the conv's output (NNI: a pruner argument)" },
};

static const NnicAlgorithmInfo apoz_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "apoz",
  .description = "Conv2d filter pruning by the average percentage of zeros of relu(output) "
                 "(NNI's ActivationAPoZRankFilterPruner)",
  .keys = rank_keys,
  .n_keys = G_N_ELEMENTS (rank_keys),
  .key_size = sizeof (NnicConfigKey),
  .vtable = &apoz_vtable,
};

static const NnicAlgorithmInfo mean_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "mean_activation",
  .description = "Conv2d filter pruning by the mean of relu(output) "
                 "(NNI's ActivationMeanRankFilterPruner)",
  .keys = rank_keys,
  .n_keys = G_N_ELEMENTS (rank_keys),
  .key_size = sizeof (NnicConfigKey),
  .vtable = &mean_vtable,
};

static gboolean
register_activation_rank (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &apoz_info, error) && nnic_registrar_add (r, &mean_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-activation-rank", "1.0.0", "MIT",
                    "The apoz and mean_activation filter maskers (NNI's activation-rank pruners)",
                    register_activation_rank)
