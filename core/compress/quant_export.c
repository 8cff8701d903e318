/* A quantizer's integers: DIR/quantized.safetensors (integer weights,
 * scale, zero point, float bias per layer) and DIR/calibration.json (bits,
 * scale, zero point and ranges of weights and activations, with NNI's
 * calibration_config keys), from the attributes the quantizer publishes on
 * each wrapper (include/nnic/quant.h). And the sizes they come to. */
#include "core/compress/wrapper.h"
#include "core/quant/qmodel.h"

#include <errno.h>
#include <math.h>

static const struct {
  NnicQuantType type;
  const char *prefix;
} kinds[] = {
  { NNIC_QUANT_WEIGHT, "weight" },
  { NNIC_QUANT_INPUT, "input" },
  { NNIC_QUANT_OUTPUT, "output" },
};
enum { K_WEIGHT, K_INPUT, K_OUTPUT, N_KINDS };

/* What the quantizer published for tensor kind k of w
 * (nnic_wrapper_get_quant, and "<t>_binary" for sign quantization):
 * nothing when the kind is not quantized (or not yet); an error when it
 * does not describe an integer grid. */
static gboolean
published (NnicWrapper *w, guint k, NnicQParam *p, GError **error)
{
  const char *prefix = kinds[k].prefix;
  NnicQuantParams q;
  *p = (NnicQParam) { 0 };
  if (!(w->quant_types & kinds[k].type) || !nnic_wrapper_get_quant (w, kinds[k].type, &q))
    return TRUE;
  g_autofree char *binary_name = g_strconcat (prefix, "_binary", NULL);
  double binary = 0;
  nnic_wrapper_get_attribute_double (w, binary_name, &binary);
  const int max_bits = k == K_WEIGHT ? 32 : 8;
  if (q.bits < 1 || q.bits > max_bits) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: %s_bits must be an integer in [1, %d]",
                 nnic_wrapper_name (w), prefix, max_bits);
    return FALSE;
  }
  p->bits = q.bits;
  p->is_signed = q.is_signed;
  p->binary = binary != 0;
  const double lo = (double) nnic_qparam_qmin (p), hi = (double) nnic_qparam_qmax (p), zp = q.zero_point;
  if (!(zp >= lo && zp <= hi && zp == floor (zp))) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s: %s_zero_point %g is not an integer in the %d-bit %s range [%g, %g]",
                 nnic_wrapper_name (w), prefix, zp, p->bits, p->is_signed ? "signed" : "unsigned", lo, hi);
    return FALSE;
  }
  if (p->binary && (zp != 0 || !p->is_signed || p->bits < 2)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s: a binary %s (sign) needs a signed grid of at least 2 bits with zero point 0",
                 nnic_wrapper_name (w), prefix);
    return FALSE;
  }
  const float s = (float) q.scale;
  if (!isfinite (s) || s < 0 || (k != K_WEIGHT && s == 0)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: %s_scale must be finite and %s, got %g",
                 nnic_wrapper_name (w), prefix, k == K_WEIGHT ? "at least 0" : "positive", q.scale);
    return FALSE;
  }
  p->present = TRUE;
  p->scale = s;
  p->zero_point = (int32_t) zp;
  if (isfinite (q.min) && isfinite (q.max)) {
    p->min = q.min;
    p->max = q.max;
  } else if (p->binary) {
    p->min = -(double) s;
    p->max = (double) s;
  } else { /* the range the grid covers */
    p->min = (double) s * (lo - zp);
    p->max = (double) s * (hi - zp);
  }
  return TRUE;
}

typedef struct {
  NnicWrapper *w;
  NnicQParam p[N_KINDS];
} Layer;

/* The wrappers with something quantized, in model order. */
static GArray *
quantized_layers (NnicCompressor *c, GError **error)
{
  g_autoptr (GArray) layers = g_array_new (FALSE, TRUE, sizeof (Layer));
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    Layer l = { .w = nnic_compressor_wrapper (c, i) };
    gboolean any = FALSE;
    for (guint k = 0; k < N_KINDS; k++) {
      if (!published (l.w, k, &l.p[k], error))
        return NULL;
      any |= l.p[k].present;
    }
    if (any && l.p[K_WEIGHT].present && !nnic_wrapper_weight (l.w)) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: weight quantization published, but the layer has no weight",
                   nnic_wrapper_name (l.w));
      return NULL;
    }
    if (any)
      g_array_append_val (layers, l);
  }
  return g_steal_pointer (&layers);
}

static NnicTensor *
scalar (NnicDType dtype)
{
  return nnic_tensor_new (dtype, 0, NULL, NULL);
}

/* The integers of w's fake-quantized weight: q = round (x_q / scale) + zp
 * (in double: exact for any x_q on the grid), as ONNX's QDQ export does. */
static NnicTensor *
weight_ints (NnicWrapper *w, const NnicQParam *p, GError **error)
{
  const NnicTensor *src = w->qweight ? w->qweight : nnic_wrapper_weight (w);
  const NnicDType dtype = p->bits > 8 ? NNIC_DTYPE_I32 : p->is_signed ? NNIC_DTYPE_I8 : NNIC_DTYPE_U8;
  g_autoptr (NnicTensor) q = nnic_tensor_new (dtype, src->ndim, src->shape, error);
  if (!q)
    return NULL;
  const double lo = (double) nnic_qparam_qmin (p), hi = (double) nnic_qparam_qmax (p);
  for (int64_t i = 0; i < src->numel; i++) {
    const double x = src->f32[i];
    const double v = p->scale > 0 ? nearbyint (x / p->scale) + p->zero_point : p->zero_point;
    if (!(v >= lo && v <= hi)) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                   "%s: the fake-quantized weight [%" G_GINT64_FORMAT "] = %g is not on the %d-bit grid of "
                   "scale %g and zero point %d (q = %g, outside [%g, %g])",
                   nnic_wrapper_name (w), i, x, p->bits, (double) p->scale, p->zero_point, v, lo, hi);
      return NULL;
    }
    if (dtype == NNIC_DTYPE_I8)
      q->i8[i] = (int8_t) v;
    else if (dtype == NNIC_DTYPE_U8)
      q->u8[i] = (uint8_t) v;
    else
      q->i32[i] = (int32_t) v;
  }
  return g_steal_pointer (&q);
}

static const char *
int_suffix (const NnicQParam *p)
{
  return p->bits > 8 ? "weight_int32" : p->is_signed ? "weight_int8" : "weight_uint8";
}

static gboolean
add (NnicTensorDict *d, const char *layer, const char *suffix, NnicTensor *t, GError **error)
{
  if (!t) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_MEMORY, "%s.%s: out of memory", layer, suffix);
    return FALSE;
  }
  g_autofree char *name = g_strconcat (layer, ".", suffix, NULL);
  return nnic_tensor_dict_add (d, name, t, error);
}

static JsonObject *
param_json (const NnicQParam *p)
{
  JsonObject *o = json_object_new ();
  json_object_set_int_member (o, "bits", p->bits);
  json_object_set_boolean_member (o, "signed", p->is_signed);
  json_object_set_double_member (o, "scale", (double) p->scale);
  json_object_set_int_member (o, "zero_point", p->zero_point);
  json_object_set_double_member (o, "min", p->min);
  json_object_set_double_member (o, "max", p->max);
  if (p->binary)
    json_object_set_boolean_member (o, "binary", TRUE);
  return o;
}

/* One layer of calibration.json: ours, then NNI's calibration_config keys. */
static JsonObject *
calibration_entry (const Layer *l)
{
  JsonObject *o = json_object_new ();
  json_object_set_string_member (o, "type", nnic_wrapper_type (l->w));
  for (guint k = 0; k < N_KINDS; k++)
    if (l->p[k].present)
      json_object_set_object_member (o, kinds[k].prefix, param_json (&l->p[k]));
  const NnicQParam *wp = &l->p[K_WEIGHT], *ip = &l->p[K_INPUT], *op = &l->p[K_OUTPUT];
  /* NNI's bits are the config's: 1 for sign(x) (which needs a signed 2-bit grid here). */
  if (wp->present)
    json_object_set_int_member (o, "weight_bit", wp->binary ? 1 : wp->bits);
  if (op->present || ip->present) {
    const NnicQParam *a = op->present ? op : ip;
    json_object_set_int_member (o, "activation_bit", a->binary ? 1 : a->bits);
  }
  if (ip->present) {
    json_object_set_double_member (o, "tracked_min_input", ip->min);
    json_object_set_double_member (o, "tracked_max_input", ip->max);
  }
  if (op->present) {
    json_object_set_double_member (o, "tracked_min_output", op->min);
    json_object_set_double_member (o, "tracked_max_output", op->max);
  }
  return o;
}

gboolean
nnic_compressor_export_quantized (NnicCompressor *c, const char *dir, GError **error)
{
  g_return_val_if_fail (c != NULL && dir != NULL, FALSE);
  g_autoptr (GArray) layers = quantized_layers (c, error);
  if (!layers)
    return FALSE;
  g_autoptr (NnicTensorDict) d = nnic_tensor_dict_new ();
  g_hash_table_insert (d->metadata, g_strdup ("format"), g_strdup ("nnic-quantized"));
  g_hash_table_insert (d->metadata, g_strdup ("version"), g_strdup ("1"));
  g_hash_table_insert (d->metadata, g_strdup ("algorithm"), g_strdup (nnic_compressor_algorithm_name (c)));
  g_autoptr (JsonObject) cal = json_object_new ();
  for (guint i = 0; i < layers->len; i++) {
    const Layer *l = &g_array_index (layers, Layer, i);
    const char *name = nnic_wrapper_name (l->w);
    const NnicQParam *wp = &l->p[K_WEIGHT];
    if (wp->present) {
      NnicTensor *q = weight_ints (l->w, wp, error);
      if (!q || !add (d, name, int_suffix (wp), q, error))
        return FALSE;
      NnicTensor *s = scalar (NNIC_DTYPE_F32);
      if (s)
        s->f32[0] = wp->scale;
      if (!add (d, name, "weight_scale", s, error))
        return FALSE;
      NnicTensor *z = scalar (NNIC_DTYPE_I32);
      if (z)
        z->i32[0] = wp->zero_point;
      if (!add (d, name, "weight_zero_point", z, error))
        return FALSE;
      NnicTensor *bias = nnic_wrapper_bias (l->w);
      if (bias && !add (d, name, "bias", nnic_tensor_copy (bias, NULL), error))
        return FALSE;
    }
    json_object_set_object_member (cal, name, calibration_entry (l));
  }

  if (g_mkdir_with_parents (dir, 0755) != 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_IO, "%s: cannot create the directory: %s", dir,
                 g_strerror (errno));
    return FALSE;
  }
  g_autofree char *st_path = g_build_filename (dir, NNIC_QUANT_WEIGHTS_FILE, NULL);
  g_autofree char *cal_path = g_build_filename (dir, NNIC_QUANT_CALIBRATION_FILE, NULL);
  if (!nnic_safetensors_save (st_path, d, error))
    return FALSE;
  return nnic_write_json_atomic (cal_path, cal, error);
}

static void
set_bits (JsonObject *o, const char *key, const NnicQParam *p)
{
  if (p->present)
    json_object_set_int_member (o, key, p->binary ? 1 : p->bits);
  else
    json_object_set_null_member (o, key);
}

JsonObject *
nnic_compressor_quant_report (NnicCompressor *c)
{
  JsonObject *r = json_object_new ();
  JsonArray *rows = json_array_new ();
  int64_t total_f = 0, total_p = 0, total_i = 0;
  g_autoptr (GError) error = NULL;
  g_autoptr (GArray) layers = quantized_layers (c, &error);
  for (guint i = 0; layers && i < layers->len; i++) {
    const Layer *l = &g_array_index (layers, Layer, i);
    const NnicQParam *wp = &l->p[K_WEIGHT];
    const NnicTensor *weight = nnic_wrapper_weight (l->w);
    const int64_t n = weight ? weight->numel : 0;
    const int bits = wp->binary ? 1 : wp->bits;
    const int64_t bytes_f = 4 * n;
    const int64_t bytes_p = wp->present ? (n * bits + 7) / 8 : bytes_f;
    const int64_t bytes_i = wp->present ? n * (wp->bits > 8 ? 4 : 1) : 0;
    JsonObject *o = json_object_new ();
    json_object_set_string_member (o, "name", nnic_wrapper_name (l->w));
    json_object_set_string_member (o, "type", nnic_wrapper_type (l->w));
    json_object_set_int_member (o, "weights", n);
    set_bits (o, "weight_bits", wp);
    set_bits (o, "input_bits", &l->p[K_INPUT]);
    set_bits (o, "output_bits", &l->p[K_OUTPUT]);
    json_object_set_int_member (o, "bytes_float32", bytes_f);
    json_object_set_int_member (o, "bytes_packed", bytes_p);
    json_object_set_int_member (o, "bytes_int", bytes_i);
    json_array_add_object_element (rows, o);
    total_f += bytes_f;
    total_p += bytes_p;
    total_i += bytes_i;
  }
  json_object_set_array_member (r, "layers", rows);
  json_object_set_int_member (r, "bytes_float32", total_f);
  json_object_set_int_member (r, "bytes_packed", total_p);
  json_object_set_int_member (r, "bytes_int", total_i);
  json_object_set_double_member (r, "ratio", total_p ? (double) total_f / (double) total_p : 0.0);
  if (error)
    json_object_set_string_member (r, "error", error->message);
  return r;
}
