/* Wrappers: one per compressed node. Masks (uint8, one byte per weight),
 * attributes, and the in-place application of masks to the weights. */
#include "core/compress/wrapper.h"

#include <math.h>
#include <string.h>

NnicWrapper *
nnic_wrapper_new (NnicCompressor *c, NnicModel *m, guint node, JsonObject *config, GError **error)
{
  NnicWrapper *w = g_new0 (NnicWrapper, 1);
  w->compressor = c;
  w->model = m;
  w->node = node;
  w->config = json_object_ref (config);
  w->attrs = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) nnic_attr_free);
  const char *name = nnic_model_node_name (m, node);
  g_autofree char *wname = g_strconcat (name, ".weight", NULL);
  g_autofree char *bname = g_strconcat (name, ".bias", NULL);
  w->weight = nnic_model_find_param (m, wname, NULL);
  w->bias = nnic_model_find_param (m, bname, NULL);
  if (w->weight && !(w->weight_mask = nnic_tensor_new (NNIC_DTYPE_U8, w->weight->value->ndim,
                                                        w->weight->value->shape, error)))
    goto fail;
  if (w->bias && !(w->bias_mask = nnic_tensor_new (NNIC_DTYPE_U8, w->bias->value->ndim,
                                                    w->bias->value->shape, error)))
    goto fail;
  if (w->weight_mask)
    memset (w->weight_mask->u8, 1, (size_t) w->weight_mask->numel);
  if (w->bias_mask)
    memset (w->bias_mask->u8, 1, (size_t) w->bias_mask->numel);
  return w;
fail:
  nnic_wrapper_free (w);
  return NULL;
}

void
nnic_wrapper_free (NnicWrapper *w)
{
  if (!w)
    return;
  nnic_tensor_free (w->weight_mask);
  nnic_tensor_free (w->bias_mask);
  nnic_tensor_free (w->qweight);
  nnic_tensor_free (w->pre_input);
  nnic_tensor_free (w->pre_output);
  g_hash_table_destroy (w->attrs);
  json_object_unref (w->config);
  g_free (w);
}

void
nnic_attr_free (NnicAttr *a)
{
  if (a)
    nnic_tensor_free (a->tensor);
  g_free (a);
}

/* w *= mask, in place: the weights of pruned positions are exactly 0.
 * A select rather than a branch: it vectorises, and random masks (level)
 * would make the branch unpredictable. */
static void
apply_mask (NnicTensor *value, const NnicTensor *mask)
{
  float *restrict v = value->f32;
  const uint8_t *restrict k = mask->u8;
  const int64_t n = value->numel;
#pragma omp parallel for schedule(static) if (n > ((int64_t) 1 << 18))
  for (int64_t i = 0; i < n; i++)
    v[i] = k[i] ? v[i] : 0.0f;
}

void
nnic_wrapper_apply_masks (NnicWrapper *w)
{
  if (w->weight_mask && w->weight_masked)
    apply_mask (w->weight->value, w->weight_mask);
  if (w->bias_mask && w->bias_masked)
    apply_mask (w->bias->value, w->bias_mask);
}

const char *
nnic_wrapper_name (const NnicWrapper *w)
{
  return nnic_model_node_name (w->model, w->node);
}

const char *
nnic_wrapper_type (const NnicWrapper *w)
{
  return nnic_model_node_type (w->model, w->node);
}

guint
nnic_wrapper_node (const NnicWrapper *w)
{
  return w->node;
}

JsonObject *
nnic_wrapper_config (const NnicWrapper *w)
{
  return w->config;
}

double
nnic_wrapper_config_double (const NnicWrapper *w, const char *key, double fallback)
{
  JsonNode *n = json_object_get_member (w->config, key);
  if (!n || JSON_NODE_TYPE (n) != JSON_NODE_VALUE)
    return fallback;
  GType t = json_node_get_value_type (n);
  if (t == G_TYPE_DOUBLE || t == G_TYPE_INT64 || t == G_TYPE_BOOLEAN)
    return json_node_get_double (n);
  return fallback;
}

NnicTensor *
nnic_wrapper_weight (NnicWrapper *w)
{
  return w->weight ? w->weight->value : NULL;
}

NnicTensor *
nnic_wrapper_bias (NnicWrapper *w)
{
  return w->bias ? w->bias->value : NULL;
}

NnicTensor *
nnic_wrapper_weight_grad (NnicWrapper *w)
{
  return w->weight ? w->weight->grad : NULL;
}

const NnicTensor *
nnic_wrapper_get_mask (const NnicWrapper *w, const char *param)
{
  if (g_strcmp0 (param, "weight") == 0)
    return w->weight_mask;
  if (g_strcmp0 (param, "bias") == 0)
    return w->bias_mask;
  return NULL;
}

gboolean
nnic_wrapper_set_mask (NnicWrapper *w, const char *param, const NnicTensor *mask, GError **error)
{
  gboolean is_weight = g_strcmp0 (param, "weight") == 0;
  NnicTensor *dst = is_weight ? w->weight_mask : g_strcmp0 (param, "bias") == 0 ? w->bias_mask : NULL;
  if (!dst) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: no %s to mask (masks: weight, bias)",
                 nnic_wrapper_name (w), param ? param : "(null)");
    return FALSE;
  }
  if (!mask || !nnic_tensor_same_shape (mask, dst) ||
      (mask->dtype != NNIC_DTYPE_U8 && mask->dtype != NNIC_DTYPE_F32)) {
    g_autofree char *want = nnic_shape_to_string (dst->ndim, dst->shape);
    g_autofree char *got = mask ? nnic_shape_to_string (mask->ndim, mask->shape) : g_strdup ("none");
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "%s: a %s mask must be uint8 or float32 of shape %s, got %s", nnic_wrapper_name (w),
                 param, want, got);
    return FALSE;
  }
  uint8_t *restrict out = dst->u8;
  const int64_t n = dst->numel;
  if (mask->dtype == NNIC_DTYPE_U8) {
    const uint8_t *restrict in = mask->u8;
    for (int64_t i = 0; i < n; i++)
      out[i] = in[i] != 0;
  } else {
    const float *restrict in = mask->f32;
    for (int64_t i = 0; i < n; i++)
      out[i] = in[i] != 0.0f;
  }
  if (is_weight)
    w->weight_masked = TRUE;
  else
    w->bias_masked = TRUE;
  nnic_wrapper_apply_masks (w);
  return TRUE;
}

typedef struct {
  double score;
  int64_t channel;
} Ranked;

/* Ascending score, NaN last, then lower channel: a stable order. */
static int
by_score (const void *a, const void *b)
{
  const Ranked *x = a, *y = b;
  if (isnan (x->score) || isnan (y->score)) {
    if (isnan (x->score) != isnan (y->score))
      return isnan (x->score) ? 1 : -1;
  } else if (x->score != y->score) {
    return x->score < y->score ? -1 : 1;
  }
  return (x->channel > y->channel) - (x->channel < y->channel);
}

gboolean
nnic_wrapper_prune_lowest (NnicWrapper *w, const double *scores, int64_t n_prune, GError **error)
{
  if (!w->weight_mask) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: no weight to prune", nnic_wrapper_name (w));
    return FALSE;
  }
  const int64_t channels = w->weight_mask->shape[0], per = w->weight_mask->numel / channels;
  n_prune = CLAMP (n_prune, 0, channels);
  g_autofree Ranked *order = g_new (Ranked, channels);
  for (int64_t c = 0; c < channels; c++)
    order[c] = (Ranked) { scores[c], c };
  qsort (order, (size_t) channels, sizeof *order, by_score);
  g_autoptr (NnicTensor) wmask = nnic_tensor_copy (w->weight_mask, error);
  g_autoptr (NnicTensor) bmask = w->bias_mask ? nnic_tensor_copy (w->bias_mask, error) : NULL;
  if (!wmask || (w->bias_mask && !bmask))
    return FALSE;
  for (int64_t k = 0; k < n_prune; k++) {
    const int64_t c = order[k].channel;
    memset (wmask->u8 + c * per, 0, (size_t) per);
    if (bmask)
      bmask->u8[c] = 0;
  }
  return nnic_wrapper_set_mask (w, "weight", wmask, error) &&
         (!bmask || nnic_wrapper_set_mask (w, "bias", bmask, error));
}

double
nnic_wrapper_sparsity (const NnicWrapper *w)
{
  if (!w->weight_mask || w->weight_mask->numel == 0)
    return 0.0;
  return (double) nnic_wrapper_pruned_count (w) / (double) w->weight_mask->numel;
}

static gboolean
check_attr_name (NnicWrapper *w, const char *name, GError **error)
{
  if (!name || !*name || strchr (name, '.')) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s: an attribute needs a name without dots, got '%s'", nnic_wrapper_name (w),
                 name ? name : "(null)");
    return FALSE;
  }
  return TRUE;
}

gboolean
nnic_wrapper_set_attribute_double (NnicWrapper *w, const char *name, double v, GError **error)
{
  if (!check_attr_name (w, name, error))
    return FALSE;
  NnicAttr *a = g_hash_table_lookup (w->attrs, name);
  if (a && !a->tensor) { /* in place: a quantizer sets its numbers at every step */
    a->value = v;
    return TRUE;
  }
  a = g_new0 (NnicAttr, 1);
  a->value = v;
  g_hash_table_replace (w->attrs, g_strdup (name), a);
  return TRUE;
}

gboolean
nnic_wrapper_get_attribute_double (const NnicWrapper *w, const char *name, double *v)
{
  NnicAttr *a = g_hash_table_lookup (w->attrs, name);
  if (!a || a->tensor)
    return FALSE;
  if (v)
    *v = a->value;
  return TRUE;
}

gboolean
nnic_wrapper_set_attribute_tensor (NnicWrapper *w, const char *name, NnicTensor *t, GError **error)
{
  if (!check_attr_name (w, name, error) || !t) {
    if (!t && !(error && *error))
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s.%s: no tensor given",
                   nnic_wrapper_name (w), name);
    nnic_tensor_free (t);
    return FALSE;
  }
  NnicAttr *a = g_new0 (NnicAttr, 1);
  a->tensor = t;
  g_hash_table_replace (w->attrs, g_strdup (name), a);
  return TRUE;
}

NnicTensor *
nnic_wrapper_get_attribute_tensor (const NnicWrapper *w, const char *name)
{
  NnicAttr *a = g_hash_table_lookup (w->attrs, name);
  return a ? a->tensor : NULL;
}

/* ---- quantization parameters ---- */

enum { QP_SCALE, QP_ZERO_POINT, QP_BITS, QP_SIGNED, QP_MIN, QP_MAX, QP_N };

/* The attribute names of each quant type, in the order above. */
static const char *const *
quant_attr_names (NnicQuantType type)
{
  static const char *const input[QP_N] = { "input_scale", "input_zero_point", "input_bits",
                                           "input_signed", "input_min", "input_max" };
  static const char *const weight[QP_N] = { "weight_scale", "weight_zero_point", "weight_bits",
                                            "weight_signed", "weight_min", "weight_max" };
  static const char *const output[QP_N] = { "output_scale", "output_zero_point", "output_bits",
                                            "output_signed", "output_min", "output_max" };
  switch (type) {
  case NNIC_QUANT_INPUT:
    return input;
  case NNIC_QUANT_WEIGHT:
    return weight;
  case NNIC_QUANT_OUTPUT:
    return output;
  default:
    return NULL;
  }
}

gboolean
nnic_wrapper_publish_quant (NnicWrapper *w, NnicQuantType type, const NnicQuantParams *p, GError **error)
{
  const char *const *names = quant_attr_names (type);
  if (!names || !p) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: %s", nnic_wrapper_name (w),
                 !p ? "no quantization parameters given"
                    : "the quant type must be one of NNIC_QUANT_WEIGHT, _INPUT and _OUTPUT");
    return FALSE;
  }
  const double v[QP_N] = { p->scale, p->zero_point, p->bits, p->is_signed ? 1 : 0, p->min, p->max };
  for (int i = 0; i < QP_N; i++)
    if (!nnic_wrapper_set_attribute_double (w, names[i], v[i], error))
      return FALSE;
  return TRUE;
}

gboolean
nnic_wrapper_get_quant (const NnicWrapper *w, NnicQuantType type, NnicQuantParams *p)
{
  const char *const *names = quant_attr_names (type);
  double v[QP_N] = { 0, 0, 8, 0, NAN, NAN }; /* what an absent attribute reads as */
  if (!names || !nnic_wrapper_get_attribute_double (w, names[QP_SCALE], &v[QP_SCALE]))
    return FALSE;
  for (int i = QP_SCALE + 1; i < QP_N; i++)
    nnic_wrapper_get_attribute_double (w, names[i], &v[i]);
  if (p)
    *p = (NnicQuantParams) {
      .scale = v[QP_SCALE],
      .zero_point = v[QP_ZERO_POINT],
      /* a cast of NaN or of a huge number is undefined: -1 stands for "not a bit width" */
      .bits = v[QP_BITS] >= 0 && v[QP_BITS] <= 64 && v[QP_BITS] == floor (v[QP_BITS]) ? (int) v[QP_BITS] : -1,
      .is_signed = v[QP_SIGNED] != 0,
      .min = v[QP_MIN],
      .max = v[QP_MAX],
    };
  return TRUE;
}

guint
nnic_wrapper_quant_types (const NnicWrapper *w)
{
  return nnic_config_entry_quant_types (w->config);
}

int
nnic_wrapper_quant_bits (const NnicWrapper *w, NnicQuantType type)
{
  return nnic_config_entry_quant_bits (w->config, type);
}

int64_t
nnic_wrapper_pruned_count (const NnicWrapper *w)
{
  if (!w->weight_mask)
    return 0;
  int64_t zeros = 0;
  for (int64_t i = 0; i < w->weight_mask->numel; i++)
    zeros += w->weight_mask->u8[i] == 0;
  return zeros;
}
