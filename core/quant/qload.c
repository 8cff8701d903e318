/* Reading DIR/quantized.safetensors and DIR/calibration.json back, checked
 * against a model: every layer must be one of the model's, every tensor
 * must fit the layer, every integer its bits. Errors name the file and
 * the layer. */
#include "core/quant/qmodel.h"
#include "core/graph.h"
#include "core/suggest.h"

#include <string.h>

static void
qlayer_free (NnicQLayer *l)
{
  g_free (l->name);
  nnic_tensor_free (l->wint);
  nnic_tensor_free (l->bias);
  g_free (l);
}

void
nnic_qfile_free (NnicQFile *f)
{
  if (!f)
    return;
  g_ptr_array_unref (f->layers);
  g_hash_table_unref (f->by_node);
  g_free (f->dir);
  g_free (f->st_path);
  g_free (f->cal_path);
  g_free (f);
}

NnicQLayer *
nnic_qfile_layer (const NnicQFile *f, guint node)
{
  return g_hash_table_lookup (f->by_node, GUINT_TO_POINTER (node + 1));
}

/* "; did you mean 'conv1'?" among the model's layers. */
static char *
layer_hint (NnicModel *m, const char *name)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  for (guint i = 1; i < nnic_model_n_nodes (m); i++)
    g_ptr_array_add (names, (gpointer) nnic_model_node_name (m, i));
  return nnic_suggest (name, (const char *const *) names->pdata, names->len);
}

static int
find_layer (NnicModel *m, const char *path, const char *name, const char *what, GError **error)
{
  int i = nnic_model_find_node (m, name);
  if (i <= 0) {
    g_autofree char *hint = layer_hint (m, name);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "%s: %s names '%s', which is not a layer of the model%s",
                 path, what, name, hint);
    return -1;
  }
  return i;
}

/* ---- calibration.json ---- */

static gboolean
member_number (JsonObject *o, const char *key, double *v)
{
  JsonNode *n = json_object_get_member (o, key);
  if (!n || !JSON_NODE_HOLDS_VALUE (n))
    return FALSE;
  GType t = json_node_get_value_type (n);
  if (t != G_TYPE_INT64 && t != G_TYPE_DOUBLE)
    return FALSE;
  *v = json_node_get_double (n);
  return TRUE;
}

static gboolean
member_bool (JsonObject *o, const char *key, gboolean fallback, gboolean *v)
{
  JsonNode *n = json_object_get_member (o, key);
  if (!n) {
    *v = fallback;
    return TRUE;
  }
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_BOOLEAN)
    return FALSE;
  *v = json_node_get_boolean (n);
  return TRUE;
}

static gboolean
parse_param (const char *path, const char *layer, const char *kind, JsonObject *o, NnicQParam *p,
             GError **error)
{
  double bits, scale, zp, min, max;
  const int max_bits = strcmp (kind, "weight") == 0 ? 32 : 8;
  *p = (NnicQParam) { 0 };
#define BAD(...)                                                                        \
  do {                                                                                  \
    g_autofree char *msg_ = g_strdup_printf (__VA_ARGS__);                              \
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: %s.%s: %s", path, layer, kind, msg_); \
    return FALSE;                                                                       \
  } while (0)
  if (!o)
    BAD ("not an object");
  if (!member_number (o, "bits", &bits) || !(bits >= 1 && bits <= max_bits && bits == floor (bits)))
    BAD ("\"bits\" must be an integer in [1, %d]", max_bits);
  if (!member_bool (o, "signed", FALSE, &p->is_signed) || !member_bool (o, "binary", FALSE, &p->binary))
    BAD ("\"signed\" and \"binary\" must be true or false");
  p->bits = (int) bits;
  if (!member_number (o, "scale", &scale) || !isfinite ((float) scale) || scale < 0 ||
      (max_bits == 8 && scale == 0))
    BAD ("\"scale\" must be a finite number %s", max_bits == 8 ? "above 0" : "of at least 0");
  const double lo = (double) nnic_qparam_qmin (p), hi = (double) nnic_qparam_qmax (p);
  if (!member_number (o, "zero_point", &zp) || !(zp >= lo && zp <= hi && zp == floor (zp)))
    BAD ("\"zero_point\" must be an integer in the %d-bit %s range [%g, %g]", p->bits,
         p->is_signed ? "signed" : "unsigned", lo, hi);
  if (p->binary && (zp != 0 || !p->is_signed || p->bits < 2))
    BAD ("a binary tensor (sign) needs a signed grid of at least 2 bits with zero point 0");
#undef BAD
  p->present = TRUE;
  p->scale = (float) scale;
  p->zero_point = (int32_t) zp;
  p->min = member_number (o, "min", &min) ? min : (double) p->scale * (lo - zp);
  p->max = member_number (o, "max", &max) ? max : (double) p->scale * (hi - zp);
  return TRUE;
}

static gint
by_node (gconstpointer a, gconstpointer b)
{
  const NnicQLayer *x = *(NnicQLayer *const *) a, *y = *(NnicQLayer *const *) b;
  return (x->node > y->node) - (x->node < y->node);
}

static gboolean
load_calibration (NnicQFile *f, NnicModel *m, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  GError *e = NULL;
  if (!json_parser_load_from_file (parser, f->cal_path, &e)) {
    const gboolean io = e->domain == G_FILE_ERROR;
    g_set_error (error, NNIC_ERROR, io ? NNIC_ERROR_IO : NNIC_ERROR_FORMAT, "%s: %s", f->cal_path, e->message);
    g_error_free (e);
    return FALSE;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: not a JSON object of layers", f->cal_path);
    return FALSE;
  }
  JsonObject *layers = json_node_get_object (root);
  g_autoptr (GList) names = json_object_get_members (layers);
  for (GList *it = names; it; it = it->next) {
    const char *name = it->data;
    JsonNode *n = json_object_get_member (layers, name);
    if (!JSON_NODE_HOLDS_OBJECT (n)) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: %s: not an object", f->cal_path, name);
      return FALSE;
    }
    int node = find_layer (m, f->cal_path, name, "an entry", error);
    if (node < 0)
      return FALSE;
    JsonObject *o = json_node_get_object (n);
    const char *type = json_object_get_string_member_with_default (o, "type", NULL);
    const char *model_type = nnic_model_node_type (m, (guint) node);
    if (type && strcmp (type, model_type) != 0) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE, "%s: %s is a %s there, but a %s in the model",
                   f->cal_path, name, type, model_type);
      return FALSE;
    }
    NnicQLayer *l = g_new0 (NnicQLayer, 1);
    l->name = g_strdup (name);
    l->node = (guint) node;
    g_ptr_array_add (f->layers, l); /* owned from here */
    g_hash_table_insert (f->by_node, GUINT_TO_POINTER (l->node + 1), l);
    static const char *const kinds[] = { "weight", "input", "output" };
    NnicQParam *dst[] = { &l->weight, &l->input, &l->output };
    for (guint k = 0; k < G_N_ELEMENTS (kinds); k++) {
      JsonNode *pn = json_object_get_member (o, kinds[k]);
      if (pn && !parse_param (f->cal_path, name, kinds[k],
                              JSON_NODE_HOLDS_OBJECT (pn) ? json_node_get_object (pn) : NULL, dst[k], error))
        return FALSE;
    }
    g_autofree char *wname = g_strconcat (name, ".weight", NULL);
    if (l->weight.present && !nnic_model_find_param (m, wname, NULL)) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                   "%s: %s has weight quantization, but the model's %s has no weight", f->cal_path, name, name);
      return FALSE;
    }
  }
  /* In model order: what reads best, and what the int8 model walks. */
  g_ptr_array_sort (f->layers, by_node);
  return TRUE;
}

/* ---- quantized.safetensors ---- */

enum { SEEN_INT = 1, SEEN_SCALE = 2, SEEN_ZP = 4, SEEN_BIAS = 8 };

static const char *
expected_int (const NnicQParam *p, NnicDType *dtype)
{
  *dtype = p->bits > 8 ? NNIC_DTYPE_I32 : p->is_signed ? NNIC_DTYPE_I8 : NNIC_DTYPE_U8;
  return p->bits > 8 ? "weight_int32" : p->is_signed ? "weight_int8" : "weight_uint8";
}

static int64_t
int_at (const NnicTensor *t, int64_t i)
{
  switch (t->dtype) {
  case NNIC_DTYPE_I8: return t->i8[i];
  case NNIC_DTYPE_U8: return t->u8[i];
  case NNIC_DTYPE_I32: return t->i32[i];
  case NNIC_DTYPE_I64: return t->i64[i];
  default: return 0;
  }
}

/* A scalar entry's value (one element: F32, or an integer type). */
static gboolean
scalar_value (const NnicTensor *t, double *v)
{
  if (t->numel != 1)
    return FALSE;
  *v = t->dtype == NNIC_DTYPE_F32 ? (double) t->f32[0] : (double) int_at (t, 0);
  return TRUE;
}

static gboolean
check_shape (const char *path, const char *entry, const NnicTensor *t, NnicParam *p, GError **error)
{
  if (nnic_tensor_same_shape (t, p->value))
    return TRUE;
  g_autofree char *got = nnic_shape_to_string (t->ndim, t->shape);
  g_autofree char *want = nnic_shape_to_string (p->value->ndim, p->value->shape);
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE, "%s: %s has shape %s, but the model's %s is %s", path, entry,
               got, p->name, want);
  return FALSE;
}

static gboolean
take_entry (NnicQFile *f, NnicModel *m, const char *entry, const NnicTensor *t, GHashTable *seen,
            GError **error)
{
  const char *dot = strrchr (entry, '.');
  if (!dot || dot == entry) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: unexpected entry '%s' (entries are <layer>.weight_int8, weight_uint8, weight_int32, "
                 "weight_scale, weight_zero_point, bias)", f->st_path, entry);
    return FALSE;
  }
  g_autofree char *layer = g_strndup (entry, (gsize) (dot - entry));
  const char *suffix = dot + 1;
  g_autofree char *what = g_strdup_printf ("the entry '%s'", entry);
  int node = find_layer (m, f->st_path, layer, what, error);
  if (node < 0)
    return FALSE;
  NnicQLayer *l = nnic_qfile_layer (f, (guint) node);
  if (!l || !l->weight.present) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: %s: %s has no weight quantization for layer %s",
                 f->st_path, entry, f->cal_path, layer);
    return FALSE;
  }
  guint flags = GPOINTER_TO_UINT (g_hash_table_lookup (seen, l));
  NnicDType want_dtype;
  const char *want_int = expected_int (&l->weight, &want_dtype);
  g_autofree char *wname = g_strconcat (layer, ".weight", NULL);
  g_autofree char *bname = g_strconcat (layer, ".bias", NULL);
  double v;
  const gboolean is_int = strcmp (suffix, "weight_int8") == 0 || strcmp (suffix, "weight_uint8") == 0 ||
                          strcmp (suffix, "weight_int32") == 0;
  if (is_int) {
    if (strcmp (suffix, want_int) != 0 || t->dtype != want_dtype) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                   "%s: %s (%s) does not fit layer %s's %d-bit %s weights in %s (%s.%s expected)", f->st_path, entry,
                   nnic_dtype_name (t->dtype), layer, l->weight.bits, l->weight.is_signed ? "signed" : "unsigned",
                   f->cal_path, layer, want_int);
      return FALSE;
    }
    NnicParam *p = nnic_model_find_param (m, wname, NULL);
    if (!check_shape (f->st_path, entry, t, p, error))
      return FALSE;
    const int64_t lo = nnic_qparam_qmin (&l->weight), hi = nnic_qparam_qmax (&l->weight);
    for (int64_t i = 0; i < t->numel; i++) {
      const int64_t q = int_at (t, i);
      if (q < lo || q > hi) {
        g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                     "%s: %s[%" G_GINT64_FORMAT "] = %" G_GINT64_FORMAT " is outside the %d-bit range [%" G_GINT64_FORMAT
                     ", %" G_GINT64_FORMAT "] of layer %s", f->st_path, entry, i, q, l->weight.bits, lo, hi, layer);
        return FALSE;
      }
    }
    nnic_tensor_free (l->wint);
    if (!(l->wint = nnic_tensor_copy (t, error)))
      return FALSE;
    flags |= SEEN_INT;
  } else if (strcmp (suffix, "weight_scale") == 0) {
    if (t->dtype != NNIC_DTYPE_F32 || !scalar_value (t, &v) || (float) v != l->weight.scale) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                   "%s: %s must be one float32 equal to the weight scale %.9g of layer %s in %s", f->st_path, entry,
                   (double) l->weight.scale, layer, f->cal_path);
      return FALSE;
    }
    flags |= SEEN_SCALE;
  } else if (strcmp (suffix, "weight_zero_point") == 0) {
    if (!scalar_value (t, &v) || v != (double) l->weight.zero_point) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                   "%s: %s must be one integer, the zero point %d of %s", f->st_path, entry,
                   l->weight.zero_point, f->cal_path);
      return FALSE;
    }
    flags |= SEEN_ZP;
  } else if (strcmp (suffix, "bias") == 0) {
    NnicParam *p = nnic_model_find_param (m, bname, NULL);
    if (!p) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE, "%s: %s, but the model's layer %s has no bias", f->st_path,
                   entry, layer);
      return FALSE;
    }
    if (t->dtype != NNIC_DTYPE_F32) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: %s must be float32, got %s", f->st_path, entry,
                   nnic_dtype_name (t->dtype));
      return FALSE;
    }
    if (!check_shape (f->st_path, entry, t, p, error))
      return FALSE;
    nnic_tensor_free (l->bias);
    if (!(l->bias = nnic_tensor_copy (t, error)))
      return FALSE;
    flags |= SEEN_BIAS;
  } else {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: unexpected entry '%s' of layer %s (a layer has %s, weight_scale, weight_zero_point, bias)",
                 f->st_path, entry, layer, want_int);
    return FALSE;
  }
  g_hash_table_insert (seen, l, GUINT_TO_POINTER (flags));
  return TRUE;
}

static gboolean
load_weights (NnicQFile *f, NnicModel *m, GError **error)
{
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (f->st_path, error);
  if (!d)
    return FALSE;
  g_autoptr (GHashTable) seen = g_hash_table_new (NULL, NULL);
  for (guint i = 0; i < nnic_tensor_dict_len (d); i++)
    if (!take_entry (f, m, g_ptr_array_index (d->names, i), g_ptr_array_index (d->tensors, i), seen, error))
      return FALSE;
  for (guint i = 0; i < f->layers->len; i++) {
    NnicQLayer *l = g_ptr_array_index (f->layers, i);
    if (!l->weight.present)
      continue;
    const guint flags = GPOINTER_TO_UINT (g_hash_table_lookup (seen, l));
    NnicDType dtype;
    const char *want_int = expected_int (&l->weight, &dtype);
    g_autofree char *bname = g_strconcat (l->name, ".bias", NULL);
    const gboolean has_bias = nnic_model_find_param (m, bname, NULL) != NULL;
    const char *missing = !(flags & SEEN_INT) ? want_int
                        : !(flags & SEEN_SCALE) ? "weight_scale"
                        : !(flags & SEEN_ZP) ? "weight_zero_point"
                        : has_bias && !(flags & SEEN_BIAS) ? "bias" : NULL;
    if (missing) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: layer %s has no %s.%s (%s quantizes its weight)",
                   f->st_path, l->name, l->name, missing, f->cal_path);
      return FALSE;
    }
  }
  return TRUE;
}

NnicQFile *
nnic_qfile_load (NnicModel *m, const char *dir, GError **error)
{
  g_return_val_if_fail (m != NULL && dir != NULL, NULL);
  g_autoptr (NnicQFile) f = g_new0 (NnicQFile, 1);
  f->dir = g_strdup (dir);
  f->st_path = g_build_filename (dir, NNIC_QUANT_WEIGHTS_FILE, NULL);
  f->cal_path = g_build_filename (dir, NNIC_QUANT_CALIBRATION_FILE, NULL);
  f->layers = g_ptr_array_new_with_free_func ((GDestroyNotify) qlayer_free);
  f->by_node = g_hash_table_new (NULL, NULL);
  if (!load_calibration (f, m, error) || !load_weights (f, m, error))
    return NULL;
  return g_steal_pointer (&f);
}

void
nnic_qlayer_dequantize_weight (const NnicQLayer *l, NnicTensor *dst)
{
  const int64_t zp = l->weight.zero_point;
  const float s = l->weight.scale;
  for (int64_t i = 0; i < dst->numel; i++)
    dst->f32[i] = (float) (int_at (l->wint, i) - zp) * s;
}
