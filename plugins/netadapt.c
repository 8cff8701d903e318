/* netadapt: NNI's NetAdaptPruner (Yang et al. 2018, "NetAdapt"). compress()
 * prunes one layer a step until the overall sparsity (entry 0's
 * `sparsity`, over the weights of every Conv2d and Linear of the model, as
 * NNI's get_total_num_weights) is reached:
 *   - iteration k aims at the overall sparsity k * sparsity_per_iteration
 *     (NNI's current_sparsity + sparsity_per_iteration; the loop ends once
 *     that nominal sparsity is no longer below the target, so the last
 *     step may overshoot by less than one step, as in NNI);
 *   - for every wrapped layer: the sparsity that layer alone needs so that
 *     the wrapped layers' masked weights make this iteration's target
 *     (a layer that would need all of its weights or more is skipped, as
 *     NNI's target_op_sparsity >= 1); from the model adopted so far, the
 *     base masker prunes that layer to it, the trainer fine-tunes the model
 *     for one epoch (NNI's short_term_fine_tuner; a fresh SGD optimizer,
 *     lr fine_tune_lr, each time), the masks are applied again and the
 *     evaluator scores it;
 *   - the best score (higher is better, NNI's optimize_mode 'maximize';
 *     the first on a tie) is adopted with its fine-tuned weights and its
 *     masks, as NNI reloads the best candidate's exported model;
 *   - when no layer can take the step, the step is halved (as NNI).
 * Differences from NNI: the weights a layer must lose are counted from the
 * masks (the zeros the wrapped layers still lack for this iteration's
 * target), not from NNI's _calc_num_related_weights, which adds the next
 * layer's weights for a filter masker's channel removal that nnic's masks
 * do not show; so the masks' sparsity does reach the target (with a filter
 * masker up to the rounding to whole filters). base_algo is the masker
 * (`--masker`, level by default; NNI's default 'l1' is l1filter).
 * sparsity_per_iteration and fine_tune_lr are config keys, read from the
 * first entry. Each layer's final sparsity is left in its
 * "netadapt_sparsity" attribute (0 for layers never chosen). */
#include <nnic/plugin.h>

#include <math.h>
#include <string.h>

/* A step below one weight means no layer can ever be pruned further. */
#define MIN_STEP_WEIGHTS 1.0

typedef struct {
  double target, step, lr;
  guint n;
  int64_t total;      /* weights of the model's Conv2d and Linear nodes */
  double *chosen;     /* each wrapper's sparsity when last chosen (NNI's config_list_generated) */
} NetAdapt;

static void
na_destroy (gpointer state)
{
  NetAdapt *a = state;
  g_free (a->chosen);
  g_free (a);
}

static gpointer
na_create (NnicCompressor *c, GError **error)
{
  NetAdapt *a = g_new0 (NetAdapt, 1);
  a->target = nnic_compressor_config_double (c, 0, "sparsity", 0.0);
  a->step = nnic_compressor_config_double (c, 0, "sparsity_per_iteration", 0.05);
  a->lr = nnic_compressor_config_double (c, 0, "fine_tune_lr", 0.01);
  a->n = nnic_compressor_n_wrappers (c);
  a->chosen = g_new0 (double, MAX (a->n, 1));
  NnicModel *m = nnic_compressor_model (c);
  for (guint i = 0; i < nnic_model_n_nodes (m); i++) {
    const char *type = nnic_model_node_type (m, i);
    if (strcmp (type, "Conv2d") != 0 && strcmp (type, "Linear") != 0)
      continue;
    g_autofree char *name = g_strconcat (nnic_model_node_name (m, i), ".weight", NULL);
    NnicParam *p = nnic_model_find_param (m, name, NULL);
    if (p)
      a->total += p->value->numel;
  }
  int64_t wrapped = 0;
  for (guint i = 0; i < a->n; i++)
    wrapped += nnic_wrapper_weight (nnic_compressor_wrapper (c, i))->numel;
  /* Say so now rather than after hours of candidates. */
  if ((double) wrapped < a->target * (double) a->total) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                 "netadapt: the configured layers hold %" G_GINT64_FORMAT " of the model's %" G_GINT64_FORMAT
                 " Conv2d and Linear weights (%.1f%%), too few for the overall sparsity %g, which counts them all (as NNI)",
                 wrapped, a->total, 100.0 * (double) wrapped / (double) MAX (a->total, 1), a->target);
    na_destroy (a);
    return NULL;
  }
  return a;
}

/* One candidate: layer i pruned to `sparsity` from the adopted model,
 * fine-tuned, scored. */
static gboolean
try_layer (NetAdapt *a, NnicCompressor *c, const NnicCompressorState *adopted, guint i, double sparsity, guint iteration,
           double *score, GError **error)
{
  NnicWrapper *w = nnic_compressor_wrapper (c, i);
  if (!nnic_compressor_restore_state (c, adopted, error))
    return FALSE;
  gboolean ready = TRUE;
  if (!nnic_compressor_calc_mask (c, w, sparsity, &ready, error))
    return FALSE;
  if (!ready) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "netadapt: the masker %s has no masks for %s without training statistics",
                 nnic_compressor_masker (c), nnic_wrapper_name (w));
    return FALSE;
  }
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (nnic_compressor_model (c),
                                                          &(NnicSgdOptions) { .lr = a->lr }, error);
  if (!opt || !nnic_compressor_train_epoch (c, opt, iteration, error))
    return FALSE;
  /* That optimizer is not the compressor's: put the zeros back. */
  nnic_compressor_apply_masks (c);
  if (!nnic_compressor_evaluate (c, score, error))
    return FALSE;
  if (!isfinite (*score)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FAILED, "netadapt: the evaluator returned %g", *score);
    return FALSE;
  }
  return TRUE;
}

static gboolean
search (NetAdapt *a, NnicCompressor *c, NnicCompressorState **adopted, GError **error)
{
  NnicCompressorState *best = NULL;
  gboolean ok = FALSE;
  double current = 0.0;
  guint iteration = 0;
  while (current < a->target) {
    const double target = current + a->step;
    /* The zeros the wrapped layers still lack for this iteration. */
    int64_t pruned = 0;
    for (guint i = 0; i < a->n; i++)
      pruned += nnic_wrapper_pruned_count (nnic_compressor_wrapper (c, i));
    const int64_t need = (int64_t) ceil (target * (double) a->total) - pruned;
    if (need <= 0) {
      current = target;
      iteration++;
      continue;
    }
    double best_score = -INFINITY, best_sparsity = 0.0;
    int best_layer = -1;
    for (guint i = 0; i < a->n; i++) {
      NnicWrapper *w = nnic_compressor_wrapper (c, i);
      const int64_t numel = nnic_wrapper_weight (w)->numel, zeros = nnic_wrapper_pruned_count (w);
      if (zeros + need >= numel)
        continue; /* not enough weights left in this layer */
      /* Half a weight over the count, so the masker's truncation keeps it. */
      const double sparsity = ((double) (zeros + need) + 0.5) / (double) numel;
      double score;
      if (!try_layer (a, c, *adopted, i, sparsity, iteration, &score, error))
        goto out;
      if (best_layer < 0 || score > best_score) {
        best_layer = (int) i;
        best_score = score;
        best_sparsity = (double) (zeros + need) / (double) numel;
        if (!nnic_compressor_save_state (c, &best, error))
          goto out;
      }
    }
    if (best_layer < 0) {
      a->step *= 0.5;
      if (a->step * (double) a->total < MIN_STEP_WEIGHTS) {
        g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                     "netadapt: no layer has weights left to reach the overall sparsity %g (reached %g)",
                     a->target, (double) pruned / (double) a->total);
        goto out;
      }
      continue;
    }
    a->chosen[best_layer] = best_sparsity;
    if (!nnic_compressor_restore_state (c, best, error) || !nnic_compressor_save_state (c, adopted, error))
      goto out;
    current = target;
    iteration++;
  }
  if (!nnic_compressor_restore_state (c, *adopted, error))
    goto out;
  for (guint i = 0; i < a->n; i++)
    if (!nnic_wrapper_set_attribute_double (nnic_compressor_wrapper (c, i), "netadapt_sparsity", a->chosen[i],
                                            error))
      goto out;
  ok = TRUE;
out:
  g_clear_pointer (&best, nnic_compressor_state_free);
  return ok;
}

static gboolean
na_compress (gpointer state, NnicCompressor *c, GError **error)
{
  NetAdapt *a = state;
  if (a->n == 0 || a->total == 0)
    return TRUE;
  NnicCompressorState *original = NULL, *adopted = NULL;
  gboolean ok = nnic_compressor_save_state (c, &original, error) && nnic_compressor_save_state (c, &adopted, error) &&
                search (a, c, &adopted, error);
  /* On an error the model goes back to how it was. */
  if (!ok && original)
    (void) nnic_compressor_restore_state (c, original, NULL);
  g_clear_pointer (&original, nnic_compressor_state_free);
  g_clear_pointer (&adopted, nnic_compressor_state_free);
  return ok;
}

static const NnicPrunerVTable na_vtable = {
  .struct_size = sizeof (NnicPrunerVTable),
  .create = na_create,
  .destroy = na_destroy,
  .compress = na_compress,
};

static const NnicConfigKey na_keys[] = {
  { .name = "sparsity_per_iteration", .type = NNIC_KEY_NUMBER, .min = 0, .max = 1, .min_open = TRUE,
    .max_open = TRUE, .default_text = "0.05", .help = "the overall sparsity added by each iteration" },
  { .name = "fine_tune_lr", .type = NNIC_KEY_NUMBER, .min = 0, .max = INFINITY, .min_open = TRUE,
    .default_text = "0.01", .help = "learning rate of the SGD optimizer given to the trainer for each candidate" },
};

static const NnicAlgorithmInfo na_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_PRUNER,
  .name = "netadapt",
  .description = "Prunes one layer a step, the one scoring best after short fine-tuning (NNI's NetAdaptPruner)",
  .keys = na_keys,
  .n_keys = G_N_ELEMENTS (na_keys),
  .key_size = sizeof (NnicConfigKey),
  .vtable = &na_vtable,
};

static gboolean
register_na (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &na_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-netadapt", "1.0.0", "MIT", "The NetAdapt pruner", register_na)
