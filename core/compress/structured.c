/* What filter maskers share (include/nnic/masker.h): NNI's
 * StructuredWeightMasker opening, the masked weight, the score order. */
#include <nnic/masker.h>

#include <math.h>
#include <string.h>

NnicTensor *
nnic_wrapper_masked_weight (NnicWrapper *w, GError **error)
{
  NnicTensor *weight = nnic_wrapper_weight (w);
  if (!weight) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "layer '%s' has no weight",
                 nnic_wrapper_name (w));
    return NULL;
  }
  const NnicTensor *mask = nnic_wrapper_get_mask (w, "weight");
  if (!mask || !memchr (mask->u8, 0, (size_t) mask->numel))
    return nnic_tensor_view (weight, weight->ndim, weight->shape, error);
  NnicTensor *copy = nnic_tensor_new_like (weight, error);
  if (!copy)
    return NULL;
  for (int64_t i = 0; i < weight->numel; i++)
    copy->f32[i] = mask->u8[i] ? weight->f32[i] : 0.0f;
  return copy;
}

/* NNI's SlimPrunerMasker when it prunes nothing: masks of ones. */
static gboolean
reset_masks (NnicWrapper *w, GError **error)
{
  static const char *const params[] = { "weight", "bias" };
  for (guint i = 0; i < G_N_ELEMENTS (params); i++) {
    const NnicTensor *old = nnic_wrapper_get_mask (w, params[i]);
    if (!old)
      continue;
    g_autoptr (NnicTensor) ones = nnic_tensor_new (NNIC_DTYPE_U8, old->ndim, old->shape, error);
    if (!ones)
      return FALSE;
    memset (ones->u8, 1, (size_t) ones->numel);
    if (!nnic_wrapper_set_mask (w, params[i], ones, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
nnic_structured_calc_mask (const NnicStructuredMasker *masker, gpointer state, NnicCompressor *c,
                           NnicWrapper *w, guint wrapper_index, double sparsity, gboolean *ready,
                           GError **error)
{
  gboolean unused;
  if (!ready)
    ready = &unused;
  *ready = TRUE;
  if (!masker ||
      masker->struct_size < G_STRUCT_OFFSET (NnicStructuredMasker, get_mask) + sizeof (gpointer) ||
      !masker->get_mask) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "nnic_structured_calc_mask: the masker needs its struct_size and a get_mask");
    return FALSE;
  }
  const char *name = masker->name ? masker->name : "this masker";
  const char *type = nnic_wrapper_type (w);
  if (masker->op_type && g_strcmp0 (type, masker->op_type) != 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                 "layer '%s' is a %s: %s prunes %s layers only; select them with \"op_types\": [\"%s\"]",
                 nnic_wrapper_name (w), type, name, masker->op_type, masker->op_type);
    return FALSE;
  }
  NnicTensor *weight = nnic_wrapper_weight (w);
  if (!weight || weight->ndim < 1) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE, "layer '%s' has no weight for %s to prune",
                 nnic_wrapper_name (w), name);
    return FALSE;
  }
  /* NNI: num_prune = int(num_total * sparsity). */
  const int64_t filters = weight->shape[0];
  const int64_t num_prune = (int64_t) ((double) filters * sparsity);
  if (filters < 2 || num_prune < 1)
    return masker->base_mask_ones ? reset_masks (w, error) : TRUE; /* NNI returns the base mask */
  g_autoptr (NnicTensor) masked = nnic_wrapper_masked_weight (w, error);
  if (!masked)
    return FALSE;
  const NnicFilterPruning p = {
    .compressor = c,
    .wrapper = w,
    .wrapper_index = wrapper_index,
    .sparsity = sparsity,
    .filters = filters,
    .per_filter = weight->numel / filters,
    .num_prune = num_prune,
    .weight = masked,
  };
  return masker->get_mask (state, &p, ready, error);
}

int
nnic_float_compare (const void *pa, const void *pb)
{
  const float a = *(const float *) pa, b = *(const float *) pb;
  if (isnan (a) || isnan (b))
    return !!isnan (a) - !!isnan (b);
  return (a > b) - (a < b);
}
