/* lottery_ticket: NNI's LotteryTicketPruner (Frankle & Carbin 2019).
 * Training is split into prune_iterations + 1 rounds; each round starts by
 * pruning to the round's sparsity with the masker (level by default, on
 * the weights with the current mask applied) and, with reset_weights, by
 * putting every parameter back to its value when the pruner was made (the
 * "winning ticket" is the mask with the original initialisation):
 *   keep_once = (1 - sparsity)^(1 / prune_iterations)
 *   sparsity(i) = max(1 - keep_once^i, 0),   i = 0 .. prune_iterations
 * NNI's user calls prune_iteration_start() before each round; here a round
 * is `epochs_per_iteration` epochs and starts at update_epoch (round 0 at
 * compress). prune_iterations, reset_weights and epochs_per_iteration are
 * config keys (constructor arguments in NNI), read from the first entry. */
#include <nnic/plugin.h>

#include <math.h>
#include <string.h>

typedef struct {
  NnicModel *model;
  GPtrArray *initial;  /* NnicTensor * copies of every parameter and buffer */
  int round;           /* -1 before compress */
  int iterations, epochs_per_round;
  gboolean reset;
} Lottery;

static gpointer
lottery_create (NnicCompressor *c, GError **error)
{
  Lottery *l = g_new0 (Lottery, 1);
  l->model = nnic_compressor_model (c);
  l->round = -1;
  l->iterations = (int) nnic_compressor_config_double (c, 0, "prune_iterations", 1);
  l->epochs_per_round = (int) nnic_compressor_config_double (c, 0, "epochs_per_iteration", 1);
  JsonObject *e = nnic_compressor_config_entry (c, 0);
  l->reset = !e || !json_object_has_member (e, "reset_weights") || json_object_get_boolean_member (e, "reset_weights");
  l->initial = g_ptr_array_new_with_free_func ((GDestroyNotify) nnic_tensor_free);
  for (guint i = 0; i < nnic_model_n_params (l->model); i++) {
    NnicTensor *copy = nnic_tensor_copy (nnic_model_param (l->model, i)->value, error);
    if (!copy) {
      g_ptr_array_unref (l->initial);
      g_free (l);
      return NULL;
    }
    g_ptr_array_add (l->initial, copy);
  }
  return l;
}

static void
lottery_destroy (gpointer state)
{
  Lottery *l = state;
  g_ptr_array_unref (l->initial);
  g_free (l);
}

/* NNI's _calc_sparsity. */
static double
round_sparsity (double sparsity, int iterations, int round)
{
  double keep_once = pow (1.0 - sparsity, 1.0 / iterations);
  return fmax (1.0 - pow (keep_once, round), 0.0);
}

static gboolean
start_round (Lottery *l, NnicCompressor *c, int round, GError **error)
{
  l->round = round;
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    double s = round_sparsity (nnic_wrapper_config_double (w, "sparsity", 0.0), l->iterations, round);
    if (!nnic_wrapper_set_attribute_double (w, "round_sparsity", s, error) ||
        !nnic_compressor_calc_mask (c, w, s, NULL, error))
      return FALSE;
  }
  if (!l->reset)
    return TRUE;
  for (guint i = 0; i < nnic_model_n_params (l->model); i++)
    if (!nnic_tensor_copy_into (nnic_model_param (l->model, i)->value, g_ptr_array_index (l->initial, i), error))
      return FALSE;
  /* The original weights, with this round's mask. */
  nnic_compressor_apply_masks (c);
  return TRUE;
}

static gboolean
lottery_compress (gpointer state, NnicCompressor *c, GError **error)
{
  Lottery *l = state;
  return l->round >= 0 || start_round (l, c, 0, error);
}

static gboolean
lottery_update_epoch (gpointer state, NnicCompressor *c, guint epoch, GError **error)
{
  Lottery *l = state;
  int round = MIN ((int) epoch / l->epochs_per_round, l->iterations);
  return round == l->round || start_round (l, c, round, error);
}

static const NnicPrunerVTable lottery_vtable = {
  .struct_size = sizeof (NnicPrunerVTable),
  .create = lottery_create,
  .destroy = lottery_destroy,
  .compress = lottery_compress,
  .update_epoch = lottery_update_epoch,
};

static const NnicConfigKey lottery_keys[] = {
  { .name = "prune_iterations", .type = NNIC_KEY_INT, .min = 1, .max = INFINITY, .default_text = "1",
    .help = "pruning rounds after the first (unpruned) one" },
  { .name = "reset_weights", .type = NNIC_KEY_BOOL, .default_text = "true",
    .help = "put the weights back to their initial values at each round" },
  { .name = "epochs_per_iteration", .type = NNIC_KEY_INT, .min = 1, .max = INFINITY, .default_text = "1",
    .help = "training epochs in each round" },
};

static const NnicAlgorithmInfo lottery_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_PRUNER,
  .name = "lottery_ticket",
  .description = "Iterative magnitude pruning with weight rewinding (NNI's LotteryTicketPruner)",
  .keys = lottery_keys,
  .n_keys = G_N_ELEMENTS (lottery_keys),
  .vtable = &lottery_vtable,
  .key_size = sizeof (NnicConfigKey),
};

static gboolean
register_lottery (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &lottery_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-lottery-ticket", "1.0.0", "MIT", "The lottery ticket pruner", register_lottery)
