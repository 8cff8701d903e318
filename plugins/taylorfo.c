/* taylorfo: NNI's TaylorFOWeightFilterPrunerMasker (Molchanov et al. 2019,
 * "Importance Estimation for Neural Network Pruning"). Ranks the filters
 * of each Conv2d by the first-order Taylor estimate of their contribution
 * to the loss,
 *   contribution_f += sum_j (W[f, j] * grad[f, j])^2
 * gathered after each optimizer step while fewer than statistics_batch_num
 * steps have been seen (NNI's calc_contributions), then prunes the
 * num_prune = (int64_t) ((double) F * sparsity) filters of smallest
 * contribution: weight_mask[f] = bias_mask[f] = 0, from the current masks.
 * F < 2 or num_prune < 1 leaves the masks as they are (that opening is
 * nnic_structured_calc_mask's, NNI's StructuredWeightMasker).
 *
 * Timing, as in NNI: the compressor's step hook asks for the masks first,
 * this masker's own hook (added in create, so it runs after) gathers the
 * statistics. calc_mask answers *ready = FALSE until statistics_batch_num
 * steps have been gathered, so with statistics_batch_num = 1 the mask
 * appears on the 2nd optimizer step after compress(). An optimizer is
 * therefore required.
 *
 * Differences from NNI, all deliberate:
 *  - statistics_batch_num is a key of the config entry (NNI: an argument
 *    of the pruner's constructor), so layers may differ.
 *  - Each filter's step contribution is summed in double and rounded to
 *    float32 before it is added to the float32 total (NNI sums in float32
 *    in torch's order; the totals agree to rounding).
 *  - Ties: NNI's torch.argsort is unstable, so among exactly equal
 *    contributions its choice is arbitrary; here the lower filter index
 *    is pruned first (a stable order), and always exactly num_prune.
 *
 * The statistics live in wrapper attributes, so checkpoints keep them:
 * `contribution` (float32 [F]) and `contribution_steps` (steps gathered). */
#include <nnic/plugin.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  NnicCompressor *compressor;
  NnicOptimizer *optimizer;
  guint hook;
} Taylor;

static gint64
statistics_batch_num (NnicWrapper *w)
{
  return (gint64) nnic_wrapper_config_double (w, "statistics_batch_num", 1.0);
}

static double
steps_gathered (NnicWrapper *w)
{
  double n = 0.0;
  nnic_wrapper_get_attribute_double (w, "contribution_steps", &n);
  return n;
}

/* NNI's calc_contributions, for one wrapper. */
static void
gather (NnicWrapper *w)
{
  const double done = steps_gathered (w);
  if (done >= (double) statistics_batch_num (w))
    return;
  NnicTensor *weight = nnic_wrapper_weight (w), *grad = nnic_wrapper_weight_grad (w);
  if (!weight || !grad)
    return;
  const int64_t filters = weight->shape[0], per_filter = weight->numel / filters;
  NnicTensor *total = nnic_wrapper_get_attribute_tensor (w, "contribution");
  if (!total) {
    g_autoptr (GError) error = NULL;
    total = nnic_tensor_new (NNIC_DTYPE_F32, 1, &filters, &error);
    if (!total || !nnic_wrapper_set_attribute_tensor (w, "contribution", total, &error)) {
      g_warning ("taylorfo: %s: %s", nnic_wrapper_name (w), error->message);
      return;
    }
  }
  for (int64_t f = 0; f < filters; f++) {
    const float *wf = weight->f32 + f * per_filter, *gf = grad->f32 + f * per_filter;
    double sum = 0.0;
    for (int64_t j = 0; j < per_filter; j++) {
      const float p = wf[j] * gf[j]; /* float32, as torch multiplies */
      sum += (double) (p * p);
    }
    total->f32[f] += (float) sum;
  }
  nnic_wrapper_set_attribute_double (w, "contribution_steps", done + 1.0, NULL);
}

static void
after_step (NnicOptimizer *opt, gpointer user_data)
{
  (void) opt;
  Taylor *t = user_data;
  for (guint i = 0; i < nnic_compressor_n_wrappers (t->compressor); i++)
    gather (nnic_compressor_wrapper (t->compressor, i));
}

static gpointer
taylor_create (NnicCompressor *c, GError **error)
{
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    if (g_strcmp0 (nnic_wrapper_type (w), "Conv2d") != 0) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "taylorfo prunes the filters of Conv2d layers only, but layer '%s' is %s "
                   "(select it out, e.g. \"op_types\": [\"Conv2d\"])",
                   nnic_wrapper_name (w), nnic_wrapper_type (w));
      return NULL;
    }
  }
  NnicOptimizer *opt = nnic_compressor_optimizer (c);
  if (!opt) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "taylorfo needs an optimizer: it ranks filters by weight x gradient after each "
                 "optimizer step");
    return NULL;
  }
  Taylor *t = g_new0 (Taylor, 1);
  t->compressor = c;
  t->optimizer = opt;
  t->hook = nnic_optimizer_add_post_step_hook (opt, after_step, t, NULL);
  return t;
}

static void
taylor_destroy (gpointer state)
{
  Taylor *t = state;
  if (t->hook)
    nnic_optimizer_remove_post_step_hook (t->optimizer, t->hook, NULL);
  g_free (t);
}

/* NNI's TaylorFOWeightFilterPrunerMasker.get_mask: the num_prune filters
 * of smallest contribution, or None (*ready = FALSE) before
 * statistics_batch_num steps. */
static gboolean
taylor_get_mask (gpointer state, const NnicFilterPruning *p, gboolean *ready, GError **error)
{
  (void) state;
  NnicTensor *total = nnic_wrapper_get_attribute_tensor (p->wrapper, "contribution");
  if (!total || steps_gathered (p->wrapper) < (double) statistics_batch_num (p->wrapper)) {
    *ready = FALSE; /* ask again after the next step */
    return TRUE;
  }
  /* float32 scores, compared as doubles: the same order. */
  g_autofree double *scores = g_new (double, p->filters);
  for (int64_t f = 0; f < p->filters; f++)
    scores[f] = total->f32[f];
  return nnic_wrapper_prune_lowest (p->wrapper, scores, p->num_prune, error);
}

static const NnicStructuredMasker taylor_masker = {
  .struct_size = sizeof (NnicStructuredMasker),
  .name = "taylorfo",
  .op_type = "Conv2d",
  .get_mask = taylor_get_mask,
};

static gboolean
taylor_calc_mask (gpointer state, NnicCompressor *c, NnicWrapper *w, guint index, double sparsity,
                  gboolean *ready, GError **error)
{
  return nnic_structured_calc_mask (&taylor_masker, state, c, w, index, sparsity, ready, error);
}

static const NnicMaskerVTable taylor_vtable = {
  .struct_size = sizeof (NnicMaskerVTable),
  .create = taylor_create,
  .destroy = taylor_destroy,
  .calc_mask = taylor_calc_mask,
};

static const NnicConfigKey taylor_keys[] = {
  { "statistics_batch_num", NNIC_KEY_INT, 1, INFINITY, FALSE, FALSE, FALSE, "1",
    "optimizer steps whose weight x gradient statistics rank the filters (NNI: a pruner argument)" },
};

static const NnicAlgorithmInfo taylor_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "taylorfo",
  .description = "Conv2d filter pruning by the first-order Taylor estimate sum (w * grad)^2, "
                 "gathered over optimizer steps (NNI's TaylorFOWeightFilterPruner)",
  .keys = taylor_keys,
  .n_keys = G_N_ELEMENTS (taylor_keys),
  .key_size = sizeof (NnicConfigKey),
  .vtable = &taylor_vtable,
};

static gboolean
register_taylor (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &taylor_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-taylorfo", "1.0.0", "MIT",
                    "The taylorfo filter masker (NNI's TaylorFOWeightFilterPruner)", register_taylor)
