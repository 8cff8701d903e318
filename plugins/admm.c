/* admm: NNI's ADMMPruner (Zhang et al. 2018, "A Systematic DNN Weight
 * Pruning Framework using ADMM"). compress() alternates, num_iterations
 * times:
 *   1. train training_epochs epochs (the caller's trainer, with an Adam
 *      optimizer lr 1e-3, weight decay 5e-5, as NNI) on the loss plus
 *      row/2 * ||W - Z + U||^2, whose gradient row * (W - Z + U) is added
 *      before every step;
 *   2. Z = (W + U) projected onto the sparsity: the base masker's mask of
 *      W + U, applied;
 *   3. U = U + W - Z;
 * then prunes W itself with the base masker. base_algo is the masker
 * (`--masker`; the core's default is level, NNI's is 'l1': pass l1filter
 * for NNI's recipe);
 * num_iterations, training_epochs and row are config keys (constructor
 * arguments in NNI), read from the first entry. */
#include <nnic/plugin.h>

#include <math.h>
#include <string.h>

typedef struct {
  NnicCompressor *c;
  int iterations, epochs;
  double row;
  GPtrArray *z, *u; /* per wrapper, NnicTensor * */
} Admm;

static gpointer
admm_create (NnicCompressor *c, GError **error)
{
  Admm *a = g_new0 (Admm, 1);
  a->c = c;
  a->iterations = (int) nnic_compressor_config_double (c, 0, "num_iterations", 30);
  a->epochs = (int) nnic_compressor_config_double (c, 0, "training_epochs", 5);
  a->row = nnic_compressor_config_double (c, 0, "row", 1e-4);
  a->z = g_ptr_array_new_with_free_func ((GDestroyNotify) nnic_tensor_free);
  a->u = g_ptr_array_new_with_free_func ((GDestroyNotify) nnic_tensor_free);
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicTensor *w = nnic_wrapper_weight (nnic_compressor_wrapper (c, i));
    NnicTensor *z = nnic_tensor_copy (w, error), *u = z ? nnic_tensor_new_like (w, error) : NULL;
    if (!u) {
      nnic_tensor_free (z);
      g_ptr_array_unref (a->z);
      g_ptr_array_unref (a->u);
      g_free (a);
      return NULL;
    }
    g_ptr_array_add (a->z, z);
    g_ptr_array_add (a->u, u);
  }
  return a;
}

static void
admm_destroy (gpointer state)
{
  Admm *a = state;
  g_ptr_array_unref (a->z);
  g_ptr_array_unref (a->u);
  g_free (a);
}

/* Before each step: grad += row * (W - Z + U), the penalty's gradient. */
static void
add_penalty (NnicOptimizer *opt, gpointer user_data)
{
  (void) opt;
  Admm *a = user_data;
  const float row = (float) a->row;
  for (guint i = 0; i < a->z->len; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (a->c, i);
    const float *restrict wv = nnic_wrapper_weight (w)->f32;
    float *restrict g = nnic_wrapper_weight_grad (w)->f32;
    const NnicTensor *z = g_ptr_array_index (a->z, i), *u = g_ptr_array_index (a->u, i);
    for (int64_t k = 0; k < z->numel; k++)
      g[k] += row * (wv[k] - z->f32[k] + u->f32[k]);
  }
}

/* Z = the masker's projection of W + U; U += W - Z. The masker works on
 * the wrapper, so W is set to W + U for the call and put back after. */
static gboolean
update_z_u (Admm *a, GError **error)
{
  for (guint i = 0; i < a->z->len; i++) {
    NnicWrapper *w = nnic_compressor_wrapper (a->c, i);
    NnicTensor *weight = nnic_wrapper_weight (w);
    NnicTensor *z = g_ptr_array_index (a->z, i), *u = g_ptr_array_index (a->u, i);
    g_autoptr (NnicTensor) saved = nnic_tensor_copy (weight, error);
    g_autoptr (NnicTensor) ones = saved ? nnic_tensor_new (NNIC_DTYPE_U8, weight->ndim, weight->shape, error) : NULL;
    if (!ones)
      return FALSE;
    memset (ones->u8, 1, (size_t) ones->numel);
    for (int64_t k = 0; k < weight->numel; k++)
      weight->f32[k] += u->f32[k];
    /* Each projection starts from no mask, as NNI's masker gets a fresh one. */
    gboolean ok = nnic_wrapper_set_mask (w, "weight", ones, error) &&
                  nnic_compressor_calc_mask (a->c, w, nnic_wrapper_config_double (w, "sparsity", 0.0), NULL, error);
    if (ok)
      memcpy (z->data, weight->data, nnic_tensor_nbytes (z)); /* (W + U) * mask */
    ok = ok && nnic_wrapper_set_mask (w, "weight", ones, error);
    memcpy (weight->data, saved->data, nnic_tensor_nbytes (weight));
    if (!ok)
      return FALSE;
    for (int64_t k = 0; k < weight->numel; k++)
      u->f32[k] += weight->f32[k] - z->f32[k];
  }
  return TRUE;
}

static gboolean
admm_compress (gpointer state, NnicCompressor *c, GError **error)
{
  Admm *a = state;
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_adam (nnic_compressor_model (c),
                                                           &(NnicAdamOptions) { .lr = 1e-3, .weight_decay = 5e-5 }, error);
  if (!opt)
    return FALSE;
  nnic_optimizer_add_pre_step_hook (opt, add_penalty, a, NULL);
  for (int it = 0; it < a->iterations; it++) {
    for (int e = 0; e < a->epochs; e++)
      if (!nnic_compressor_train_epoch (c, opt, (guint) e, error))
        return FALSE;
    if (!update_z_u (a, error))
      return FALSE;
  }
  /* The final masks: the masker on the trained weights. */
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    if (!nnic_compressor_calc_mask (c, w, nnic_wrapper_config_double (w, "sparsity", 0.0), NULL, error))
      return FALSE;
  }
  return TRUE;
}

static const NnicPrunerVTable admm_vtable = {
  .struct_size = sizeof (NnicPrunerVTable),
  .create = admm_create,
  .destroy = admm_destroy,
  .compress = admm_compress,
};

static const NnicConfigKey admm_keys[] = {
  { .name = "num_iterations", .type = NNIC_KEY_INT, .min = 1, .max = INFINITY, .default_text = "30",
    .help = "ADMM iterations (train, project, update)" },
  { .name = "training_epochs", .type = NNIC_KEY_INT, .min = 1, .max = INFINITY, .default_text = "5",
    .help = "epochs of training in each iteration" },
  { .name = "row", .type = NNIC_KEY_NUMBER, .min = 0, .max = INFINITY, .min_open = TRUE, .default_text = "1e-4",
    .help = "the penalty's weight (rho)" },
};

static const NnicAlgorithmInfo admm_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_PRUNER,
  .name = "admm",
  .description = "ADMM pruning: train towards a sparse projection, then prune (NNI's ADMMPruner)",
  .keys = admm_keys,
  .n_keys = G_N_ELEMENTS (admm_keys),
  .key_size = sizeof (NnicConfigKey),
  .vtable = &admm_vtable,
};

static gboolean
register_admm (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &admm_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-admm", "1.0.0", "MIT", "The ADMM pruner", register_admm)
