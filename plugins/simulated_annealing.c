/* simulated_annealing: NNI's SimulatedAnnealingPruner. compress() searches
 * the layers' sparsities whose weighted average (by weight count) is the
 * overall `sparsity` of the first config entry:
 *   - draws sorted random sparsities and rescales them to the target
 *     (retrying until all lie in [0, 1)); the larger a layer, the no lower
 *     its sparsity;
 *   - while temperature > stop_temperature: perturbs the current sparsities
 *     by uniform noise in +-perturbation_magnitude * T / start_temperature
 *     (clipped at 0, rescaled), masks the original weights with the base
 *     masker at those sparsities and scores the model with the evaluator;
 *     a better score is accepted, a worse one with probability
 *     exp(-|delta| / T), otherwise another perturbation is tried; then
 *     T *= cool_down_rate;
 *   - ends with the original weights and the best candidate's masks.
 * base_algo is the masker (`--masker`, level by default; NNI's default is
 * l1). Higher scores are better (NNI's optimize_mode 'maximize').
 * start_temperature, stop_temperature, cool_down_rate,
 * perturbation_magnitude and seed are config keys (constructor arguments in
 * NNI; seed stands for numpy's global generator), read from the first
 * entry. Each layer's chosen sparsity is left in its "sa_sparsity"
 * attribute. */
#include <nnic/plugin.h>
#include <nnic/data.h>

#include <math.h>
#include <string.h>

/* Bounds on NNI's unbounded retry loops. */
#define MAX_DRAWS 100000
#define MAX_CANDIDATES 10000

typedef struct {
  double target, start_t, stop_t, cool_down, magnitude;
  guint64 seed;
  guint n;
  guint *order;       /* wrapper indices by weight count, ascending (stable) */
  int64_t *numel;     /* weight counts in that order */
  GPtrArray *weights; /* original weight, bias (or NULL) of each wrapper */
  GPtrArray *best;    /* best candidate's weight, bias masks of each wrapper */
} Annealing;

static void
free_tensor (gpointer t)
{
  if (t)
    nnic_tensor_free (t);
}

static void
sa_destroy (gpointer state)
{
  Annealing *a = state;
  g_free (a->order);
  g_free (a->numel);
  g_ptr_array_unref (a->weights);
  g_ptr_array_unref (a->best);
  g_free (a);
}

static gpointer
sa_create (NnicCompressor *c, GError **error)
{
  Annealing *a = g_new0 (Annealing, 1);
  a->target = nnic_compressor_config_double (c, 0, "sparsity", 0.0);
  a->start_t = nnic_compressor_config_double (c, 0, "start_temperature", 100);
  a->stop_t = nnic_compressor_config_double (c, 0, "stop_temperature", 20);
  a->cool_down = nnic_compressor_config_double (c, 0, "cool_down_rate", 0.9);
  a->magnitude = nnic_compressor_config_double (c, 0, "perturbation_magnitude", 0.35);
  a->seed = (guint64) nnic_compressor_config_double (c, 0, "seed", 0);
  a->n = nnic_compressor_n_wrappers (c);
  a->order = g_new (guint, MAX (a->n, 1));
  a->numel = g_new (int64_t, MAX (a->n, 1));
  a->weights = g_ptr_array_new_with_free_func (free_tensor);
  a->best = g_ptr_array_new_with_free_func (free_tensor);
  /* Insertion sort: stable, as Python's sorted(). */
  for (guint i = 0; i < a->n; i++) {
    int64_t k = nnic_wrapper_weight (nnic_compressor_wrapper (c, i))->numel;
    guint j = i;
    for (; j > 0 && a->numel[j - 1] > k; j--) {
      a->numel[j] = a->numel[j - 1];
      a->order[j] = a->order[j - 1];
    }
    a->numel[j] = k;
    a->order[j] = i;
  }
  for (guint i = 0; i < a->n; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    NnicTensor *wt = nnic_tensor_copy (nnic_wrapper_weight (w), error);
    NnicTensor *bt = wt && nnic_wrapper_bias (w) ? nnic_tensor_copy (nnic_wrapper_bias (w), error) : NULL;
    g_ptr_array_add (a->weights, wt);
    g_ptr_array_add (a->weights, bt);
    g_ptr_array_add (a->best, NULL);
    g_ptr_array_add (a->best, NULL);
    if (!wt || (nnic_wrapper_bias (w) && !bt)) {
      sa_destroy (a);
      return NULL;
    }
  }
  if (a->stop_t > a->start_t) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                 "simulated_annealing: stop_temperature %g is above start_temperature %g", a->stop_t, a->start_t);
    sa_destroy (a);
    return NULL;
  }
  return a;
}

static int
cmp_double (const void *x, const void *y)
{
  double a = *(const double *) x, b = *(const double *) y;
  return (a > b) - (a < b);
}

/* NNI's _rescale_sparsities: sorts s, scales it so that the pruned weights
 * (int(count * s) each, smallest layer with the lowest sparsity) make the
 * target; FALSE when nothing would be pruned or the result leaves [0, 1). */
static gboolean
rescale (const Annealing *a, double *s)
{
  qsort (s, a->n, sizeof (double), cmp_double);
  double total = 0, pruned = 0;
  for (guint i = 0; i < a->n; i++) {
    total += (double) a->numel[i];
    pruned += trunc ((double) a->numel[i] * s[i]);
  }
  if (pruned == 0)
    return FALSE;
  double scale = a->target / (pruned / total);
  for (guint i = 0; i < a->n; i++)
    s[i] *= scale;
  return s[0] >= 0 && s[a->n - 1] < 1;
}

/* Masks the original weights for sparsities s (sorted, by weight count). */
static gboolean
apply (Annealing *a, NnicCompressor *c, const double *s, GError **error)
{
  for (guint i = 0; i < a->n; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    for (guint p = 0; p < 2; p++) {
      const NnicTensor *orig = g_ptr_array_index (a->weights, 2 * i + p);
      const NnicTensor *mask = nnic_wrapper_get_mask (w, p ? "bias" : "weight");
      if (!orig)
        continue;
      g_autoptr (NnicTensor) ones = mask ? nnic_tensor_new (NNIC_DTYPE_U8, mask->ndim, mask->shape, error) : NULL;
      if (mask && !ones)
        return FALSE;
      if (ones) {
        memset (ones->u8, 1, (size_t) ones->numel);
        if (!nnic_wrapper_set_mask (w, p ? "bias" : "weight", ones, error))
          return FALSE;
      }
      if (!nnic_tensor_copy_into (p ? nnic_wrapper_bias (w) : nnic_wrapper_weight (w), orig, error))
        return FALSE;
    }
  }
  for (guint i = 0; i < a->n; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, a->order[i]);
    /* NNI leaves layers whose sparsity is 0 (to 1e-6) out of the config. */
    if (fabs (s[i]) <= 1e-6)
      continue;
    gboolean ready = TRUE;
    if (!nnic_compressor_calc_mask (c, w, s[i], &ready, error))
      return FALSE;
    if (!ready) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                   "simulated_annealing: the masker %s has no masks for %s without training statistics",
                   nnic_compressor_masker (c), nnic_wrapper_name (w));
      return FALSE;
    }
  }
  return TRUE;
}

static gboolean
keep_best (Annealing *a, NnicCompressor *c, GError **error)
{
  for (guint i = 0; i < a->n; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    for (guint p = 0; p < 2; p++) {
      const NnicTensor *mask = nnic_wrapper_get_mask (w, p ? "bias" : "weight");
      NnicTensor *copy = mask ? nnic_tensor_copy (mask, error) : NULL;
      if (mask && !copy)
        return FALSE;
      free_tensor (a->best->pdata[2 * i + p]);
      a->best->pdata[2 * i + p] = copy;
    }
  }
  return TRUE;
}

static gboolean
search (Annealing *a, NnicCompressor *c, GError **error)
{
  NnicRng rng;
  nnic_rng_seed (&rng, a->seed);
  g_autofree double *cur = g_new (double, a->n);
  g_autofree double *cand = g_new (double, a->n);
  g_autofree double *best = g_new (double, a->n);
  /* NNI's _init_sparsities. */
  for (int draw = 0;; draw++) {
    if (draw == MAX_DRAWS) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "simulated_annealing: no layer sparsities in [0, 1) make the overall sparsity %g "
                   "(%d draws)", a->target, MAX_DRAWS);
      return FALSE;
    }
    for (guint i = 0; i < a->n; i++)
      cur[i] = nnic_rng_uniform (&rng);
    if (rescale (a, cur))
      break;
  }
  double current = -INFINITY, best_score = -INFINITY;
  gboolean have_best = FALSE;
  for (double t = a->start_t; t > a->stop_t; t *= a->cool_down) {
    const double magnitude = t / a->start_t * a->magnitude;
    for (int tries = 0;; tries++) {
      if (tries == MAX_CANDIDATES) {
        g_set_error (error, NNIC_ERROR, NNIC_ERROR_FAILED,
                     "simulated_annealing: no candidate accepted at temperature %g in %d tries", t,
                     MAX_CANDIDATES);
        return FALSE;
      }
      /* NNI's _generate_perturbations. */
      for (int draw = 0;; draw++) {
        if (draw == MAX_DRAWS) {
          g_set_error (error, NNIC_ERROR, NNIC_ERROR_FAILED,
                       "simulated_annealing: no perturbation of magnitude %g keeps the sparsities in [0, 1)",
                       magnitude);
          return FALSE;
        }
        for (guint i = 0; i < a->n; i++)
          cand[i] = fmax (0.0, cur[i] + (-magnitude + 2.0 * magnitude * nnic_rng_uniform (&rng)));
        if (rescale (a, cand))
          break;
      }
      double score;
      if (!apply (a, c, cand, error) || !nnic_compressor_evaluate (c, &score, error))
        return FALSE;
      if (!isfinite (score)) {
        g_set_error (error, NNIC_ERROR, NNIC_ERROR_FAILED, "simulated_annealing: the evaluator returned %g", score);
        return FALSE;
      }
      if (score > current) {
        current = score;
        memcpy (cur, cand, a->n * sizeof (double));
        if (score > best_score) {
          best_score = score;
          memcpy (best, cand, a->n * sizeof (double));
          have_best = TRUE;
          if (!keep_best (a, c, error))
            return FALSE;
        }
        break;
      }
      if (nnic_rng_uniform (&rng) < exp (-fabs (score - current) / t)) {
        current = score;
        memcpy (cur, cand, a->n * sizeof (double));
        break;
      }
    }
  }
  /* The original weights with the best masks (or unpruned when the
   * temperatures leave no step, as NNI would have no model). */
  for (guint i = 0; i < a->n; i++)
    cand[i] = 0.0;
  if (!apply (a, c, cand, error))
    return FALSE;
  if (!have_best)
    return TRUE;
  for (guint i = 0; i < a->n; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, a->order[i]);
    if (!nnic_wrapper_set_attribute_double (w, "sa_sparsity", best[i], error))
      return FALSE;
    NnicWrapper *wi = nnic_compressor_wrapper (c, i);
    for (guint p = 0; p < 2; p++) {
      const NnicTensor *mask = g_ptr_array_index (a->best, 2 * i + p);
      if (mask && !nnic_wrapper_set_mask (wi, p ? "bias" : "weight", mask, error))
        return FALSE;
    }
  }
  return TRUE;
}

static gboolean
sa_compress (gpointer state, NnicCompressor *c, GError **error)
{
  Annealing *a = state;
  if (a->n == 0 || search (a, c, error))
    return TRUE;
  /* On an error the model goes back to its original, unmasked weights. */
  g_autofree double *zeros = g_new0 (double, a->n);
  (void) apply (a, c, zeros, NULL);
  return FALSE;
}

static const NnicPrunerVTable sa_vtable = {
  .struct_size = sizeof (NnicPrunerVTable),
  .create = sa_create,
  .destroy = sa_destroy,
  .compress = sa_compress,
};

static const NnicConfigKey sa_keys[] = {
  { .name = "start_temperature", .type = NNIC_KEY_NUMBER, .min = 0, .max = INFINITY, .min_open = TRUE,
    .default_text = "100", .help = "the initial temperature" },
  { .name = "stop_temperature", .type = NNIC_KEY_NUMBER, .min = 0, .max = INFINITY, .min_open = TRUE,
    .default_text = "20", .help = "the search stops once the temperature is no longer above it" },
  { .name = "cool_down_rate", .type = NNIC_KEY_NUMBER, .min = 0, .max = 1, .min_open = TRUE, .max_open = TRUE,
    .default_text = "0.9", .help = "the temperature's factor after each step" },
  { .name = "perturbation_magnitude", .type = NNIC_KEY_NUMBER, .min = 0, .max = INFINITY, .min_open = TRUE,
    .default_text = "0.35", .help = "the noise on the sparsities at start_temperature (shrinks with it)" },
  { .name = "seed", .type = NNIC_KEY_INT, .min = 0, .max = 9007199254740992.0, .default_text = "0",
    .help = "the random generator's seed" },
};

static const NnicAlgorithmInfo sa_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_PRUNER,
  .name = "simulated_annealing",
  .description = "Search of the layers' sparsities by simulated annealing (NNI's SimulatedAnnealingPruner)",
  .keys = sa_keys,
  .n_keys = G_N_ELEMENTS (sa_keys),
  .key_size = sizeof (NnicConfigKey),
  .vtable = &sa_vtable,
};

static gboolean
register_sa (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &sa_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-simulated-annealing", "1.0.0", "MIT", "The simulated annealing pruner", register_sa)
