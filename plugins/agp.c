/* agp: NNI's AGPPruner (Zhu & Gupta 2017, "To prune, or not to prune").
 * Sparsity rises from initial_sparsity to final_sparsity over epochs
 * [start_epoch, end_epoch) every `frequency` epochs, on the cubic schedule
 *   s(t) = s_f + (s_i - s_f) * (1 - (t - start) / span)^3,
 *   span = ((end - start - 1) / frequency) * frequency   (integer division)
 * driving any masker by name (level by default). As in NNI v1.9 a
 * wrapper's mask is recomputed at most once per epoch, at the first
 * optimizer step of an epoch that is due (t >= start, (t - start) %
 * frequency == 0). */
#include <nnic/plugin.h>

#include <math.h>

typedef struct {
  guint epoch;
  gboolean *calculated; /* per wrapper, this epoch */
  guint n;
} Agp;

static gint64
key_int (NnicWrapper *w, const char *key, gint64 fallback)
{
  return (gint64) nnic_wrapper_config_double (w, key, (double) fallback);
}

/* NNI's compute_target_sparsity. */
static double
target_sparsity (NnicWrapper *w, guint epoch)
{
  const gint64 start = key_int (w, "start_epoch", 0), end = key_int (w, "end_epoch", 1);
  const gint64 freq = key_int (w, "frequency", 1);
  const double si = nnic_wrapper_config_double (w, "initial_sparsity", 0.0);
  const double sf = nnic_wrapper_config_double (w, "final_sparsity", 0.0);
  if (end <= start || si >= sf || end <= (gint64) epoch)
    return sf;
  const gint64 span = ((end - start - 1) / freq) * freq;
  return sf + (si - sf) * pow (1.0 - (double) ((gint64) epoch - start) / (double) span, 3.0);
}

static gpointer
agp_create (NnicCompressor *c, GError **error)
{
  guint n = nnic_compressor_n_wrappers (c);
  for (guint i = 0; i < n; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    gint64 start = key_int (w, "start_epoch", 0), end = key_int (w, "end_epoch", 1);
    gint64 freq = key_int (w, "frequency", 1);
    double si = nnic_wrapper_config_double (w, "initial_sparsity", 0.0);
    double sf = nnic_wrapper_config_double (w, "final_sparsity", 0.0);
    /* NNI asserts here (span > 0); say what to change instead. */
    if (end > start && si < sf && ((end - start - 1) / freq) * freq <= 0) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "%s: end_epoch %" G_GINT64_FORMAT " - start_epoch %" G_GINT64_FORMAT
                   " must exceed frequency %" G_GINT64_FORMAT " for the sparsity to rise",
                   nnic_wrapper_name (w), end, start, freq);
      return NULL;
    }
  }
  Agp *a = g_new0 (Agp, 1);
  a->n = n;
  a->calculated = g_new0 (gboolean, n ? n : 1);
  return a;
}

static void
agp_destroy (gpointer state)
{
  Agp *a = state;
  g_free (a->calculated);
  g_free (a);
}

/* NNI's update_mask → calc_mask for every wrapper. */
static gboolean
agp_update (Agp *a, NnicCompressor *c, GError **error)
{
  for (guint i = 0; i < a->n; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    gint64 start = key_int (w, "start_epoch", 0), freq = key_int (w, "frequency", 1);
    if (a->calculated[i] || (gint64) a->epoch < start || ((gint64) a->epoch - start) % freq != 0)
      continue;
    gboolean ready = TRUE;
    if (!nnic_compressor_calc_mask (c, w, target_sparsity (w, a->epoch), &ready, error))
      return FALSE;
    a->calculated[i] = ready;
  }
  return TRUE;
}

static gboolean
agp_compress (gpointer state, NnicCompressor *c, GError **error)
{
  return agp_update (state, c, error);
}

static gboolean
agp_step (gpointer state, NnicCompressor *c, GError **error)
{
  return agp_update (state, c, error);
}

static gboolean
agp_update_epoch (gpointer state, NnicCompressor *c, guint epoch, GError **error)
{
  (void) c;
  (void) error;
  Agp *a = state;
  /* As NNI: epoch 0 changes nothing (the masks of compress() stand). */
  if (epoch > 0) {
    a->epoch = epoch;
    for (guint i = 0; i < a->n; i++)
      a->calculated[i] = FALSE;
  }
  return TRUE;
}

static const NnicPrunerVTable agp_vtable = {
  .struct_size = sizeof (NnicPrunerVTable),
  .create = agp_create,
  .destroy = agp_destroy,
  .compress = agp_compress,
  .step = agp_step,
  .update_epoch = agp_update_epoch,
};

static const NnicConfigKey agp_keys[] = {
  { "initial_sparsity", NNIC_KEY_NUMBER, 0, 1, FALSE, FALSE, FALSE, "0", "sparsity at start_epoch" },
  { "final_sparsity", NNIC_KEY_NUMBER, 0, 1, FALSE, FALSE, TRUE, NULL, "sparsity reached at end_epoch" },
  { "start_epoch", NNIC_KEY_INT, 0, INFINITY, FALSE, FALSE, FALSE, "0", "first epoch that prunes" },
  { "end_epoch", NNIC_KEY_INT, 0, INFINITY, FALSE, FALSE, FALSE, "1", "epoch from which final_sparsity holds" },
  { "frequency", NNIC_KEY_INT, 1, INFINITY, FALSE, FALSE, FALSE, "1", "prune every this many epochs" },
};

static const NnicAlgorithmInfo agp_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_PRUNER,
  .name = "agp",
  .description = "Automated gradual pruning: cubic sparsity schedule over epochs, any masker (NNI's AGPPruner)",
  .keys = agp_keys,
  .n_keys = G_N_ELEMENTS (agp_keys),
  .key_size = sizeof (NnicConfigKey),
  .vtable = &agp_vtable,
};

static gboolean
register_agp (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &agp_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-agp", "1.0.0", "MIT", "Automated gradual pruning (NNI's AGPPruner)", register_agp)
