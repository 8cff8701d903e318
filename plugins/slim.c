/* slim: NNI's SlimPrunerMasker (network slimming), BatchNorm2d only.
 *
 * When the compressor is made (NNI: at pruner construction, not at
 * compress) one GLOBAL threshold is taken over the |gamma| (BN weight) of
 * all wrapped BN layers, in wrapper order: k = int(total * sparsity of the
 * FIRST config entry) (double, truncated), t = the k-th smallest. Then per
 * layer, with C channels and num_prune = int(C * its own sparsity): when
 * C >= 2 and num_prune >= 1 the weight and bias masks are |gamma * mask| > t
 * (strict: every channel tied with t goes), else all ones. The per-layer
 * count is not enforced: a layer may lose anything from none to all of its
 * channels. Losing all of them kills the network, which NNI does silently
 * (all gammas = 1 after PyTorch's init gives t = 1 and prunes everything);
 * nnic does the same, and warns. The opening (type check, num_prune,
 * gamma * mask) is nnic_structured_calc_mask's, with all-ones base masks
 * as NNI's SlimPrunerMasker makes them. */
#include <nnic/plugin.h>

#include <math.h>
#include <stdlib.h>

typedef struct {
  float threshold;
} SlimState;

static gboolean
check_bn (NnicWrapper *w, GError **error)
{
  const char *type = nnic_wrapper_type (w);
  if (g_strcmp0 (type, "BatchNorm2d") != 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                 "layer '%s' is a %s: slim prunes BatchNorm2d layers only (as NNI's SlimPruner); "
                 "select them with \"op_types\": [\"BatchNorm2d\"]",
                 nnic_wrapper_name (w), type);
    return FALSE;
  }
  return TRUE;
}

static gpointer
slim_create (NnicCompressor *c, GError **error)
{
  const guint n = nnic_compressor_n_wrappers (c);
  int64_t total = 0;
  for (guint i = 0; i < n; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    if (!check_bn (w, error))
      return NULL;
    total += nnic_wrapper_weight (w)->numel;
  }
  JsonObject *entry = nnic_compressor_config_entry (c, 0);
  JsonNode *node = entry ? json_object_get_member (entry, "sparsity") : NULL;
  if (!node || JSON_NODE_TYPE (node) != JSON_NODE_VALUE ||
      (json_node_get_value_type (node) != G_TYPE_DOUBLE && json_node_get_value_type (node) != G_TYPE_INT64)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                 "config_list[0] has no sparsity: slim's global threshold takes the sparsity of the "
                 "first config entry (as NNI's SlimPruner)");
    return NULL;
  }
  const double sparsity = json_node_get_double (node);
  const int64_t k = (int64_t) ((double) total * sparsity);
  if (k < 1) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                 "the global threshold is the k-th smallest |gamma| with k = int(%" G_GINT64_FORMAT
                 " channels * config_list[0].sparsity %g) = 0: nothing to prune (NNI fails here too, "
                 "with a max() of an empty tensor); raise the sparsity or wrap more BatchNorm2d channels",
                 total, sparsity);
    return NULL;
  }
  g_autofree float *all = g_new (float, total);
  int64_t at = 0;
  for (guint i = 0; i < n; i++) {
    const NnicTensor *gamma = nnic_wrapper_weight (nnic_compressor_wrapper (c, i));
    for (int64_t j = 0; j < gamma->numel; j++)
      all[at++] = fabsf (gamma->f32[j]);
  }
  qsort (all, (size_t) total, sizeof (float), nnic_float_compare);
  SlimState *s = g_new0 (SlimState, 1);
  s->threshold = all[k - 1];
  return s;
}

/* NNI's SlimPrunerMasker.calc_mask once num_prune >= 1: |gamma * mask| >
 * the global threshold, for the weight and the bias (beta) alike. */
static gboolean
slim_get_mask (gpointer state, const NnicFilterPruning *p, gboolean *ready, GError **error)
{
  (void) ready;
  const SlimState *s = state;
  const NnicTensor *gamma = p->weight;
  g_autoptr (NnicTensor) mask = nnic_tensor_new (NNIC_DTYPE_U8, gamma->ndim, gamma->shape, error);
  if (!mask)
    return FALSE;
  int64_t kept = 0;
  for (int64_t i = 0; i < p->filters; i++)
    kept += mask->u8[i] = fabsf (gamma->f32[i]) > s->threshold;
  if (kept == 0)
    g_warning ("slim: %s loses all %" G_GINT64_FORMAT " of its channels (every |gamma| <= threshold %g): "
               "the network will be dead; train with an L1 penalty on the BN scales first (NNI's "
               "SlimPruner recipe)",
               nnic_wrapper_name (p->wrapper), p->filters, (double) s->threshold);
  if (!nnic_wrapper_set_mask (p->wrapper, "weight", mask, error))
    return FALSE;
  return !nnic_wrapper_get_mask (p->wrapper, "bias") ||
         nnic_wrapper_set_mask (p->wrapper, "bias", mask, error);
}

/* Slim's masks are made fresh: all ones when there is nothing to prune. */
static const NnicStructuredMasker slim_masker = {
  .struct_size = sizeof (NnicStructuredMasker),
  .name = "slim",
  .op_type = "BatchNorm2d",
  .base_mask_ones = TRUE,
  .get_mask = slim_get_mask,
};

static gboolean
slim_calc_mask (gpointer state, NnicCompressor *c, NnicWrapper *w, guint index, double sparsity,
                gboolean *ready, GError **error)
{
  return nnic_structured_calc_mask (&slim_masker, state, c, w, index, sparsity, ready, error);
}

static const NnicMaskerVTable slim_vtable = {
  .struct_size = sizeof (NnicMaskerVTable),
  .create = slim_create,
  .destroy = g_free,
  .calc_mask = slim_calc_mask,
};

static const NnicAlgorithmInfo slim_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "slim",
  .description = "BatchNorm2d channels with |gamma| under one global threshold go (NNI's SlimPruner)",
  .vtable = &slim_vtable,
};

static gboolean
register_slim (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &slim_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-slim", "1.0.0", "MIT", "The slim masker (NNI's SlimPruner)", register_slim)
