/* sensitivity: NNI's SensitivityPruner. compress() prunes the wrapped
 * layers iteratively, each layer by how little the score suffers when it
 * alone is pruned, until the overall sparsity of the wrapped layers
 * (weighted by weight count) reaches entry 0's `sparsity`:
 *   - the score of the model as it is (NNI's ori_acc) is taken once, then
 *     after each iteration's pruning (and fine-tuning);
 *   - sensitivity analysis: every wrapped layer alone, from the current
 *     model, is pruned by the base masker to already + (1 - already) * s
 *     for s = 0.1, 0.2, ..., 0.9 (NNI's default grid) and scored; a layer
 *     stops at the first s whose score falls more than acc_drop_threshold
 *     below the current score (NNI's early_stop_mode 'dropped'); the model
 *     is restored after every trial;
 *   - each layer's ratio is the first s where it dropped that far, or the
 *     last s tried (NNI's _max_prune_ratio: the failing ratio counts);
 *   - the ratios are scaled so that the weights they remove make
 *     sparsity_per_iteration of the wrapped weights (NNI's normalize), and
 *     scaled down together when one exceeds 0.95 (MAX_PRUNE_RATIO_PER_ITER);
 *   - each layer is pruned to already + (1 - already) * ratio (NNI's
 *     create_cfg; rounded to whole weights), fine-tuned for finetune_epochs epochs with the trainer
 *     (0: no fine-tuning, no trainer needed; NNI's finetuner=None) and
 *     scored; the analysis is skipped after the last iteration (as NNI).
 * Differences from NNI: the layers are the wrapped ones (NNI analyses and
 * counts Conv2d only); `already` is each layer's masked fraction, not the
 * sparsity asked of the masker; the analysis's early stop compares with
 * the current score, as _max_prune_ratio does (NNI's analyzer keeps the
 * unpruned model's score for it, which after the first iteration stops
 * every layer at the first ratio); the trials restore the weights and
 * masks themselves on this compressor's wrappers instead of nesting
 * pruners; the target counts as reached when it is missed by no more than
 * the rounding to whole weights (half a weight per layer and iteration),
 * where NNI compares the sparsities asked for; an iteration that prunes no
 * weight is an error (NNI would loop forever). base_algo is the masker (`--masker`, level by default; NNI's
 * default 'l1' is l1filter). Each layer's final sparsity is left in its
 * "sensitivity_sparsity" attribute. */
#include <nnic/plugin.h>

#include <math.h>
#include <string.h>

#define MAX_PRUNE_RATIO_PER_ITER 0.95
#define N_GRID 9

typedef struct {
  double target, step, threshold, lr;
  guint epochs;
  guint n;
  int64_t *numel;
  int64_t total;
  double *ratio; /* per layer, from the latest analysis */
} Sensitivity;

static void
sp_destroy (gpointer state)
{
  Sensitivity *s = state;
  g_free (s->numel);
  g_free (s->ratio);
  g_free (s);
}

static gpointer
sp_create (NnicCompressor *c, GError **error)
{
  (void) error;
  Sensitivity *s = g_new0 (Sensitivity, 1);
  s->target = nnic_compressor_config_double (c, 0, "sparsity", 0.0);
  s->step = nnic_compressor_config_double (c, 0, "sparsity_per_iteration", 0.1);
  s->threshold = nnic_compressor_config_double (c, 0, "acc_drop_threshold", 0.05);
  s->epochs = (guint) nnic_compressor_config_double (c, 0, "finetune_epochs", 0);
  s->lr = nnic_compressor_config_double (c, 0, "finetune_lr", 0.01);
  s->n = nnic_compressor_n_wrappers (c);
  s->numel = g_new0 (int64_t, MAX (s->n, 1));
  s->ratio = g_new0 (double, MAX (s->n, 1));
  for (guint i = 0; i < s->n; i++)
    s->total += s->numel[i] = nnic_wrapper_weight (nnic_compressor_wrapper (c, i))->numel;
  return s;
}

static gboolean
prune_layer (NnicCompressor *c, NnicWrapper *w, double sparsity, GError **error)
{
  gboolean ready = TRUE;
  if (!nnic_compressor_calc_mask (c, w, sparsity, &ready, error))
    return FALSE;
  if (!ready) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "sensitivity: the masker %s has no masks for %s without training statistics",
                 nnic_compressor_masker (c), nnic_wrapper_name (w));
    return FALSE;
  }
  return TRUE;
}

static gboolean
score_model (NnicCompressor *c, double *score, GError **error)
{
  if (!nnic_compressor_evaluate (c, score, error))
    return FALSE;
  if (!isfinite (*score)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FAILED, "sensitivity: the evaluator returned %g", *score);
    return FALSE;
  }
  return TRUE;
}

/* The analysis and _max_prune_ratio in one: each layer's ratio. */
static gboolean
analyse (Sensitivity *s, NnicCompressor *c, double current, GError **error)
{
  NnicCompressorState *base = NULL;
  gboolean ok = FALSE;
  if (!nnic_compressor_save_state (c, &base, error))
    goto out;
  for (guint i = 0; i < s->n; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    const double already = nnic_wrapper_sparsity (w);
    double last = 0.0;
    for (guint k = 1; k <= N_GRID; k++) {
      const double ratio = (double) k / 10.0;
      double score;
      last = ratio;
      if (!prune_layer (c, w, already + (1.0 - already) * ratio, error) || !score_model (c, &score, error) ||
          !nnic_compressor_restore_state (c, base, error))
        goto out;
      if (score + s->threshold < current)
        break;
    }
    s->ratio[i] = last;
  }
  ok = TRUE;
out:
  g_clear_pointer (&base, nnic_compressor_state_free);
  return ok;
}

static gboolean
finetune (Sensitivity *s, NnicCompressor *c, guint iteration, GError **error)
{
  if (s->epochs == 0)
    return TRUE;
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (nnic_compressor_model (c),
                                                          &(NnicSgdOptions) { .lr = s->lr }, error);
  if (!opt)
    return FALSE;
  for (guint e = 0; e < s->epochs; e++)
    if (!nnic_compressor_train_epoch (c, opt, iteration * s->epochs + e, error))
      return FALSE;
  /* That optimizer is not the compressor's: put the zeros back. */
  nnic_compressor_apply_masks (c);
  return TRUE;
}

static int64_t
total_zeros (Sensitivity *s, NnicCompressor *c)
{
  int64_t z = 0;
  for (guint i = 0; i < s->n; i++)
    z += nnic_wrapper_pruned_count (nnic_compressor_wrapper (c, i));
  return z;
}

static gboolean
iterate (Sensitivity *s, NnicCompressor *c, GError **error)
{
  double current;
  if (!score_model (c, &current, error) || !analyse (s, c, current, error))
    return FALSE;
  int64_t zeros = total_zeros (s, c);
  guint iteration = 0;
  /* Rounding each layer's count may leave the target short by up to half
   * a weight per layer and iteration: that counts as reached. */
  while ((double) zeros + 0.5 * s->n * iteration < s->target * (double) s->total) {
    /* NNI's normalize. */
    double w_sum = 0.0, max = 0.0;
    for (guint i = 0; i < s->n; i++)
      w_sum += s->ratio[i] * (double) s->numel[i] * (1.0 - nnic_wrapper_sparsity (nnic_compressor_wrapper (c, i)));
    if (w_sum <= 0.0) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "sensitivity: no layer can be pruned further (reached %g of %g)",
                   (double) zeros / (double) s->total, s->target);
      return FALSE;
    }
    const double scale = (double) s->total * s->step / w_sum;
    for (guint i = 0; i < s->n; i++) {
      s->ratio[i] *= scale;
      max = MAX (max, s->ratio[i]);
    }
    if (max > MAX_PRUNE_RATIO_PER_ITER)
      for (guint i = 0; i < s->n; i++)
        s->ratio[i] *= MAX_PRUNE_RATIO_PER_ITER / max;
    /* NNI's create_cfg and the base pruner. */
    for (guint i = 0; i < s->n; i++) {
      NnicWrapper *w = nnic_compressor_wrapper (c, i);
      const int64_t had = nnic_wrapper_pruned_count (w);
      /* At least one weight stays (the 0.95 cap means NNI never empties a layer). */
      const int64_t want = MIN (had + (int64_t) llround ((double) (s->numel[i] - had) * s->ratio[i]),
                                s->numel[i] - 1);
      /* Half a weight over the count, so the masker's truncation keeps it. */
      if (want > 0 && !prune_layer (c, w, ((double) want + 0.5) / (double) s->numel[i], error))
        return FALSE;
    }
    if (!finetune (s, c, iteration, error) || !score_model (c, &current, error))
      return FALSE;
    iteration++;
    const int64_t now = total_zeros (s, c);
    if (now <= zeros) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "sensitivity: iteration %u pruned no weight (reached %g of %g); "
                   "raise sparsity_per_iteration",
                   iteration, (double) zeros / (double) s->total, s->target);
      return FALSE;
    }
    zeros = now;
    if ((double) zeros + 0.5 * s->n * iteration < s->target * (double) s->total && !analyse (s, c, current, error))
      return FALSE;
  }
  for (guint i = 0; i < s->n; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    if (!nnic_wrapper_set_attribute_double (w, "sensitivity_sparsity", nnic_wrapper_sparsity (w), error))
      return FALSE;
  }
  return TRUE;
}

static gboolean
sp_compress (gpointer state, NnicCompressor *c, GError **error)
{
  Sensitivity *s = state;
  if (s->n == 0 || s->total == 0)
    return TRUE;
  NnicCompressorState *original = NULL;
  gboolean ok = nnic_compressor_save_state (c, &original, error) && iterate (s, c, error);
  /* On an error the model goes back to how it was. */
  if (!ok && original)
    (void) nnic_compressor_restore_state (c, original, NULL);
  g_clear_pointer (&original, nnic_compressor_state_free);
  return ok;
}

static const NnicPrunerVTable sp_vtable = {
  .struct_size = sizeof (NnicPrunerVTable),
  .create = sp_create,
  .destroy = sp_destroy,
  .compress = sp_compress,
};

static const NnicConfigKey sp_keys[] = {
  { .name = "sparsity_per_iteration", .type = NNIC_KEY_NUMBER, .min = 0, .max = 1, .min_open = TRUE,
    .max_open = TRUE, .default_text = "0.1", .help = "the share of the wrapped weights pruned by each iteration" },
  { .name = "acc_drop_threshold", .type = NNIC_KEY_NUMBER, .min = 0, .max = INFINITY,
    .default_text = "0.05", .help = "the score drop a layer may cause in the analysis before it counts as sensitive" },
  { .name = "finetune_epochs", .type = NNIC_KEY_INT, .min = 0, .max = 1e6, .default_text = "0",
    .help = "epochs of fine-tuning with the trainer after each iteration (0: none, no trainer needed)" },
  { .name = "finetune_lr", .type = NNIC_KEY_NUMBER, .min = 0, .max = INFINITY, .min_open = TRUE,
    .default_text = "0.01", .help = "learning rate of the SGD optimizer given to the trainer for fine-tuning" },
};

static const NnicAlgorithmInfo sp_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_PRUNER,
  .name = "sensitivity",
  .description = "Prunes iteratively, each layer by its sensitivity analysis (NNI's SensitivityPruner)",
  .keys = sp_keys,
  .n_keys = G_N_ELEMENTS (sp_keys),
  .key_size = sizeof (NnicConfigKey),
  .vtable = &sp_vtable,
};

static gboolean
register_sp (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &sp_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-sensitivity", "1.0.0", "MIT", "The sensitivity pruner", register_sp)
