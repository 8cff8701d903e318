/* auto_compress: NNI's AutoCompressPruner (Liu et al. 2020). The overall
 * `sparsity` s of the first config entry is reached in num_iterations
 * rounds, each pruning the same fraction of what remains,
 * s_round = 1 - (1 - s)^(1 / num_iterations). Round i:
 *   1. simulated_annealing chooses the layers' sparsities (its evaluator
 *      is this compressor's), starting from the round's weights;
 *   2. admm, configured with one entry per layer at those sparsities,
 *      trains (this compressor's trainer) and prunes;
 *   3. its masks join this compressor's; the model is scored.
 * Both run as nested compressors on the same model, with the masker given
 * to this one (NNI's base_algo: `--masker`, l1filter for NNI's default).
 *
 * NNI speeds the model up between rounds, so its later rounds prune
 * s_round of a physically smaller network. nnic keeps masks (the weights
 * pruned earlier are held at zero throughout), so each round's search
 * aims at NNI's cumulative target 1 - (1 - s_round)^(i + 1) of the
 * layers' full size; a layer never gets back what an earlier round took.
 *
 * Config keys (NNI's constructor arguments), read from the first entry:
 * num_iterations, start_temperature, stop_temperature, cool_down_rate,
 * perturbation_magnitude, admm_num_iterations, admm_training_epochs, row,
 * seed. */
#include <nnic/plugin.h>

#include <math.h>
#include <string.h>

typedef struct {
  double sparsity, start_t, stop_t, cool_down, magnitude, row;
  int rounds, admm_iterations, admm_epochs;
  gint64 seed;
} AutoCompress;

static gpointer
ac_create (NnicCompressor *c, GError **error)
{
  (void) error;
  AutoCompress *a = g_new0 (AutoCompress, 1);
  a->sparsity = nnic_compressor_config_double (c, 0, "sparsity", 0.0);
  a->rounds = (int) nnic_compressor_config_double (c, 0, "num_iterations", 3);
  a->start_t = nnic_compressor_config_double (c, 0, "start_temperature", 100);
  a->stop_t = nnic_compressor_config_double (c, 0, "stop_temperature", 20);
  a->cool_down = nnic_compressor_config_double (c, 0, "cool_down_rate", 0.9);
  a->magnitude = nnic_compressor_config_double (c, 0, "perturbation_magnitude", 0.35);
  a->admm_iterations = (int) nnic_compressor_config_double (c, 0, "admm_num_iterations", 30);
  a->admm_epochs = (int) nnic_compressor_config_double (c, 0, "admm_training_epochs", 5);
  a->row = nnic_compressor_config_double (c, 0, "row", 1e-4);
  a->seed = (gint64) nnic_compressor_config_double (c, 0, "seed", 0);
  return a;
}

static void
ac_destroy (gpointer state)
{
  g_free (state);
}

/* The nested compressors score and train through this one's callbacks. */
static gboolean
outer_evaluate (NnicModel *m, double *score, gpointer user_data, GError **error)
{
  (void) m;
  return nnic_compressor_evaluate (user_data, score, error);
}

static gboolean
outer_train (NnicModel *m, NnicOptimizer *opt, guint epoch, gpointer user_data, GError **error)
{
  (void) m;
  return nnic_compressor_train_epoch (user_data, opt, epoch, error);
}

/* Before each forward: what earlier rounds pruned stays zero while the
 * nested compressors train with optimizers this one does not hook. */
static void
hold_pruned (NnicModel *m, guint node, gpointer user_data)
{
  (void) m;
  (void) node;
  nnic_compressor_apply_masks (user_data);
}

/* One entry selecting exactly this compressor's layers. */
static void
add_layers (NnicConfigList *cl, guint entry, NnicCompressor *c)
{
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++)
    nnic_config_list_add_string (cl, entry, "op_names", nnic_wrapper_name (nnic_compressor_wrapper (c, i)));
}

/* Step 1: the layers' sparsities for the round's target, from the current
 * weights, which the search leaves as they were. */
static gboolean
search_sparsities (AutoCompress *a, NnicCompressor *c, double target, guint round, double *chosen,
                   GError **error)
{
  g_autoptr (NnicCompressorState) before = NULL;
  if (!nnic_compressor_save_state (c, &before, error))
    return FALSE;
  g_autoptr (NnicConfigList) cl = nnic_config_list_new ();
  guint e = nnic_config_list_add_entry (cl);
  nnic_config_list_set_double (cl, e, "sparsity", target);
  add_layers (cl, e, c);
  nnic_config_list_set_double (cl, e, "start_temperature", a->start_t);
  nnic_config_list_set_double (cl, e, "stop_temperature", a->stop_t);
  nnic_config_list_set_double (cl, e, "cool_down_rate", a->cool_down);
  nnic_config_list_set_double (cl, e, "perturbation_magnitude", a->magnitude);
  nnic_config_list_set_int (cl, e, "seed", a->seed + (gint64) round);
  NnicCompressorOptions o = { .masker = nnic_compressor_masker (c), .evaluator = outer_evaluate,
                              .evaluator_data = c };
  g_autoptr (NnicCompressor) sa = nnic_compressor_new (nnic_compressor_model (c), "simulated_annealing",
                                                       cl, NULL, &o, error);
  if (!sa || !nnic_compressor_compress (sa, error))
    return FALSE;
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_find_wrapper (sa, nnic_wrapper_name (nnic_compressor_wrapper (c, i)));
    chosen[i] = 0.0;
    if (w)
      (void) nnic_wrapper_get_attribute_double (w, "sa_sparsity", &chosen[i]);
  }
  g_clear_pointer (&sa, nnic_compressor_free);
  return nnic_compressor_restore_state (c, before, error);
}

/* Step 2 and 3: ADMM at the chosen sparsities; its masks join ours. */
static gboolean
admm_prune (AutoCompress *a, NnicCompressor *c, const double *chosen, GError **error)
{
  g_autoptr (NnicConfigList) cl = nnic_config_list_new ();
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    /* As NNI's generated config list: layers left at 0 are not pruned. */
    if (chosen[i] <= 1e-6)
      continue;
    guint e = nnic_config_list_add_entry (cl);
    nnic_config_list_set_double (cl, e, "sparsity", chosen[i]);
    nnic_config_list_add_string (cl, e, "op_names", nnic_wrapper_name (nnic_compressor_wrapper (c, i)));
    nnic_config_list_set_int (cl, e, "num_iterations", a->admm_iterations);
    nnic_config_list_set_int (cl, e, "training_epochs", a->admm_epochs);
    nnic_config_list_set_double (cl, e, "row", a->row);
  }
  if (nnic_config_list_len (cl) == 0)
    return TRUE;
  NnicCompressorOptions o = { .masker = nnic_compressor_masker (c), .trainer = outer_train, .trainer_data = c };
  g_autoptr (NnicCompressor) admm = nnic_compressor_new (nnic_compressor_model (c), "admm", cl, NULL, &o, error);
  if (!admm || !nnic_compressor_compress (admm, error))
    return FALSE;
  for (guint i = 0; i < nnic_compressor_n_wrappers (admm); i++) {
    NnicWrapper *inner = nnic_compressor_wrapper (admm, i);
    NnicWrapper *w = nnic_compressor_find_wrapper (c, nnic_wrapper_name (inner));
    for (int p = 0; p < 2; p++) {
      const char *param = p ? "bias" : "weight";
      const NnicTensor *m_inner = nnic_wrapper_get_mask (inner, param);
      const NnicTensor *m_outer = nnic_wrapper_get_mask (w, param);
      if (!m_inner)
        continue;
      g_autoptr (NnicTensor) joined = nnic_tensor_copy (m_inner, error);
      if (!joined)
        return FALSE;
      for (int64_t k = 0; m_outer && k < joined->numel; k++)
        joined->u8[k] &= m_outer->u8[k];
      if (!nnic_wrapper_set_mask (w, param, joined, error))
        return FALSE;
    }
  }
  return TRUE;
}

static gboolean
run_rounds (AutoCompress *a, NnicCompressor *c, GError **error)
{
  const guint n = nnic_compressor_n_wrappers (c);
  g_autofree double *chosen = g_new0 (double, MAX (n, 1));
  const double per_round = 1.0 - pow (1.0 - a->sparsity, 1.0 / a->rounds);
  for (int r = 0; r < a->rounds; r++) {
    const double target = 1.0 - pow (1.0 - per_round, r + 1);
    g_message ("auto_compress: round %d/%d, target sparsity %.4f (%.4f of what remains)", r + 1, a->rounds,
               target, per_round);
    if (!search_sparsities (a, c, target, (guint) r, chosen, error) || !admm_prune (a, c, chosen, error))
      return FALSE;
    nnic_compressor_apply_masks (c);
    int64_t pruned = 0, total = 0;
    for (guint i = 0; i < n; i++) {
      NnicWrapper *w = nnic_compressor_wrapper (c, i);
      pruned += nnic_wrapper_pruned_count (w);
      total += nnic_wrapper_weight (w)->numel;
    }
    double score;
    if (!nnic_compressor_evaluate (c, &score, error))
      return FALSE;
    g_message ("auto_compress: round %d/%d: sparsity %.4f, score %.4f", r + 1, a->rounds,
               total ? (double) pruned / (double) total : 0.0, score);
  }
  return TRUE;
}

static gboolean
ac_compress (gpointer state, NnicCompressor *c, GError **error)
{
  AutoCompress *a = state;
  if (nnic_compressor_n_wrappers (c) == 0)
    return TRUE;
  /* The hook goes on the first wrapped layer the forward reaches. */
  guint first = 0;
  for (guint i = 1; i < nnic_compressor_n_wrappers (c); i++)
    if (nnic_wrapper_node (nnic_compressor_wrapper (c, i)) < nnic_wrapper_node (nnic_compressor_wrapper (c, first)))
      first = i;
  NnicModel *m = nnic_compressor_model (c);
  guint hook = nnic_model_add_pre_forward_hook (m, nnic_wrapper_name (nnic_compressor_wrapper (c, first)),
                                                hold_pruned, c, NULL, error);
  if (!hook)
    return FALSE;
  gboolean ok = run_rounds (a, c, error);
  nnic_model_remove_forward_hook (m, hook, NULL);
  return ok;
}

static const NnicPrunerVTable ac_vtable = {
  .struct_size = sizeof (NnicPrunerVTable),
  .create = ac_create,
  .destroy = ac_destroy,
  .compress = ac_compress,
};

static const NnicConfigKey ac_keys[] = {
  { .name = "num_iterations", .type = NNIC_KEY_INT, .min = 1, .max = 1000, .default_text = "3",
    .help = "rounds, each pruning the same fraction of what remains" },
  { .name = "start_temperature", .type = NNIC_KEY_NUMBER, .min = 0, .max = INFINITY, .min_open = TRUE,
    .default_text = "100", .help = "simulated annealing: the initial temperature" },
  { .name = "stop_temperature", .type = NNIC_KEY_NUMBER, .min = 0, .max = INFINITY, .min_open = TRUE,
    .default_text = "20", .help = "simulated annealing: the temperature it stops at" },
  { .name = "cool_down_rate", .type = NNIC_KEY_NUMBER, .min = 0, .max = 1, .min_open = TRUE, .max_open = TRUE,
    .default_text = "0.9", .help = "simulated annealing: the temperature's factor after each step" },
  { .name = "perturbation_magnitude", .type = NNIC_KEY_NUMBER, .min = 0, .max = INFINITY, .min_open = TRUE,
    .default_text = "0.35", .help = "simulated annealing: the noise on the sparsities at start_temperature" },
  { .name = "admm_num_iterations", .type = NNIC_KEY_INT, .min = 1, .max = INFINITY, .default_text = "30",
    .help = "ADMM iterations (train, project, update) each round" },
  { .name = "admm_training_epochs", .type = NNIC_KEY_INT, .min = 1, .max = INFINITY, .default_text = "5",
    .help = "ADMM: epochs of training in each iteration" },
  { .name = "row", .type = NNIC_KEY_NUMBER, .min = 0, .max = INFINITY, .min_open = TRUE, .default_text = "1e-4",
    .help = "ADMM: the penalty's weight (rho)" },
  { .name = "seed", .type = NNIC_KEY_INT, .min = 0, .max = 9007199254740992.0, .default_text = "0",
    .help = "simulated annealing's seed (round i uses seed + i)" },
};

static const NnicAlgorithmInfo ac_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_PRUNER,
  .name = "auto_compress",
  .description = "Rounds of simulated annealing then ADMM pruning (NNI's AutoCompressPruner)",
  .keys = ac_keys,
  .n_keys = G_N_ELEMENTS (ac_keys),
  .key_size = sizeof (NnicConfigKey),
  .vtable = &ac_vtable,
};

static gboolean
register_ac (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &ac_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-auto-compress", "1.0.0", "MIT", "The AutoCompress pruner", register_ac)
