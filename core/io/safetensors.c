/* safetensors: reading, writing, and model state dicts.
 *
 * Layout: an 8-byte little-endian header length N, N bytes of JSON
 *   {"__metadata__": {str: str}, "name": {"dtype": "F32", "shape": [2, 3],
 *    "data_offsets": [begin, end]}, ...}
 * padded with spaces, then the data section; offsets are relative to it.
 *
 * The reader trusts nothing in the file: every offset and size is checked
 * against the bytes actually present before any tensor is allocated, so a
 * header claiming 2^40 elements fails at once. The file is memory-mapped,
 * so a large file costs no copy beyond the tensors themselves.
 */
#include "core/io/file_util.h"
#include <nnic/io.h>
#include <nnic/error.h>

#include <float.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* ---- dtypes ---- */

typedef enum {
  CONVERT_NONE, /* bytes are copied as they are */
  CONVERT_F64,
  CONVERT_F16,
  CONVERT_BF16,
} Conversion;

typedef struct {
  const char *name;
  size_t itemsize; /* in the file */
  NnicDType dtype; /* in memory */
  Conversion convert;
} FileDType;

static const FileDType file_dtypes[] = {
  { "F32", 4, NNIC_DTYPE_F32, CONVERT_NONE },
  { "I64", 8, NNIC_DTYPE_I64, CONVERT_NONE },
  { "I32", 4, NNIC_DTYPE_I32, CONVERT_NONE },
  { "U8", 1, NNIC_DTYPE_U8, CONVERT_NONE },
  { "I8", 1, NNIC_DTYPE_I8, CONVERT_NONE },
  { "BOOL", 1, NNIC_DTYPE_U8, CONVERT_NONE },
  { "F64", 8, NNIC_DTYPE_F32, CONVERT_F64 },
  { "F16", 2, NNIC_DTYPE_F32, CONVERT_F16 },
  { "BF16", 2, NNIC_DTYPE_F32, CONVERT_BF16 },
};

static const FileDType *
lookup_file_dtype (const char *name)
{
  for (size_t i = 0; i < G_N_ELEMENTS (file_dtypes); i++)
    if (strcmp (file_dtypes[i].name, name) == 0)
      return &file_dtypes[i];
  return NULL;
}

/* The name nnic writes for an in-memory dtype, or NULL. */
static const char *
write_dtype_name (NnicDType dtype)
{
  switch (dtype) {
  case NNIC_DTYPE_F32: return "F32";
  case NNIC_DTYPE_I64: return "I64";
  case NNIC_DTYPE_I32: return "I32";
  case NNIC_DTYPE_U8: return "U8";
  case NNIC_DTYPE_I8: return "I8";
  }
  return NULL;
}

/* ---- byte order and conversions ---- */

/* Files are little-endian; on a big-endian host, swap elements in place. */
static void
swap_to_le (void *data, int64_t n, size_t itemsize)
{
#if G_BYTE_ORDER == G_BIG_ENDIAN
  guint8 *p = data;
  for (int64_t i = 0; i < n; i++, p += itemsize)
    for (size_t a = 0, b = itemsize - 1; a < b; a++, b--) {
      guint8 t = p[a];
      p[a] = p[b];
      p[b] = t;
    }
#else
  (void) data;
  (void) n;
  (void) itemsize;
#endif
}

static float
f16_to_f32 (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000) << 16;
  guint32 exp = (h >> 10) & 0x1f;
  guint32 mant = h & 0x3ff;
  guint32 bits;
  if (exp == 0 && mant == 0) {
    bits = sign;
  } else if (exp == 0) {
    /* Subnormal in half precision, normal in single: shift the mantissa
     * up to the implicit bit. */
    exp = 127 - 15 + 1;
    while (!(mant & 0x400)) {
      mant <<= 1;
      exp--;
    }
    bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13); /* inf, NaN (payload kept) */
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  memcpy (&f, &bits, sizeof f);
  return f;
}

static float
bf16_to_f32 (guint16 h)
{
  guint32 bits = (guint32) h << 16;
  float f;
  memcpy (&f, &bits, sizeof f);
  return f;
}

/* A double out of float's range converts to infinity rather than the
 * undefined behaviour C gives a plain cast. */
static float
f64_to_f32 (double x)
{
  if (x > FLT_MAX)
    return INFINITY;
  if (x < -FLT_MAX)
    return -INFINITY;
  return (float) x;
}

/* Fills `t` from `n` file elements at `src` (not necessarily aligned). */
static void
decode_data (NnicTensor *t, const guint8 *src, const FileDType *fd)
{
  int64_t n = t->numel;
  switch (fd->convert) {
  case CONVERT_NONE:
    memcpy (t->data, src, (size_t) n * fd->itemsize);
    swap_to_le (t->data, n, fd->itemsize);
    break;
  case CONVERT_F64:
    for (int64_t i = 0; i < n; i++) {
      guint64 bits;
      double x;
      memcpy (&bits, src + i * 8, 8);
      bits = GUINT64_FROM_LE (bits);
      memcpy (&x, &bits, 8);
      t->f32[i] = f64_to_f32 (x);
    }
    break;
  case CONVERT_F16:
  case CONVERT_BF16:
    for (int64_t i = 0; i < n; i++) {
      guint16 h;
      memcpy (&h, src + i * 2, 2);
      h = GUINT16_FROM_LE (h);
      t->f32[i] = fd->convert == CONVERT_F16 ? f16_to_f32 (h) : bf16_to_f32 (h);
    }
    break;
  }
}

/* ---- reading ---- */

static void G_GNUC_PRINTF (4, 5)
entry_error (GError **error, const char *path, const char *name, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: tensor '%s': %s", path, name, msg);
}

/* An integer member of a JSON array, or FALSE if it is not one. */
static gboolean
json_int_at (JsonArray *a, guint i, int64_t *out)
{
  JsonNode *n = json_array_get_element (a, i);
  if (!JSON_NODE_HOLDS_VALUE (n) || json_node_get_value_type (n) != G_TYPE_INT64)
    return FALSE;
  *out = json_node_get_int (n);
  return TRUE;
}

static gboolean
parse_shape (JsonObject *o, const char *path, const char *name, int *ndim, int64_t *shape,
             GError **error)
{
  JsonNode *n = json_object_get_member (o, "shape");
  if (!n || !JSON_NODE_HOLDS_ARRAY (n)) {
    entry_error (error, path, name, "'shape' is missing or not a list");
    return FALSE;
  }
  JsonArray *a = json_node_get_array (n);
  guint len = json_array_get_length (a);
  if (len > NNIC_MAX_DIMS) {
    entry_error (error, path, name, "%u dimensions, nnic supports at most %d", len, NNIC_MAX_DIMS);
    return FALSE;
  }
  for (guint i = 0; i < len; i++) {
    if (!json_int_at (a, i, &shape[i]) || shape[i] < 0) {
      entry_error (error, path, name, "dimension %u of 'shape' is not a non-negative integer", i);
      return FALSE;
    }
  }
  *ndim = (int) len;
  return TRUE;
}

static gboolean
parse_offsets (JsonObject *o, const char *path, const char *name, int64_t *begin, int64_t *end,
               GError **error)
{
  JsonNode *n = json_object_get_member (o, "data_offsets");
  JsonArray *a = n && JSON_NODE_HOLDS_ARRAY (n) ? json_node_get_array (n) : NULL;
  if (!a || json_array_get_length (a) != 2 || !json_int_at (a, 0, begin)
      || !json_int_at (a, 1, end) || *begin < 0 || *end < *begin) {
    entry_error (error, path, name, "'data_offsets' is not a pair [begin, end] with 0 <= begin <= end");
    return FALSE;
  }
  return TRUE;
}

/* Validates one header entry against the data section and reads it. */
static NnicTensor *
read_entry (const char *path, const char *name, JsonNode *node, const guint8 *data,
            int64_t data_len, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    entry_error (error, path, name, "the header entry is not an object");
    return NULL;
  }
  JsonObject *o = json_node_get_object (node);
  JsonNode *dn = json_object_get_member (o, "dtype");
  if (!dn || !JSON_NODE_HOLDS_VALUE (dn) || json_node_get_value_type (dn) != G_TYPE_STRING) {
    entry_error (error, path, name, "'dtype' is missing or not a string");
    return NULL;
  }
  const FileDType *fd = lookup_file_dtype (json_node_get_string (dn));
  if (!fd) {
    entry_error (error, path, name,
                 "unsupported dtype '%s' (nnic reads F32, F64, F16, BF16, I64, I32, U8, I8, BOOL)",
                 json_node_get_string (dn));
    return NULL;
  }

  int ndim = 0;
  int64_t shape[NNIC_MAX_DIMS] = { 0 };
  int64_t begin, end;
  if (!parse_shape (o, path, name, &ndim, shape, error)
      || !parse_offsets (o, path, name, &begin, &end, error))
    return NULL;

  g_autofree char *shape_s = nnic_shape_to_string (ndim, shape);
  if (end > data_len) {
    entry_error (error, path, name,
                 "data offsets [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                 ") exceed the data section (%" G_GINT64_FORMAT " bytes)",
                 begin, end, data_len);
    return NULL;
  }
  int64_t numel = nnic_shape_numel (ndim, shape);
  if (numel < 0 || numel > INT64_MAX / (int64_t) fd->itemsize) {
    entry_error (error, path, name, "shape %s is too large", shape_s);
    return NULL;
  }
  if (numel * (int64_t) fd->itemsize != end - begin) {
    entry_error (error, path, name,
                 "shape %s of dtype %s needs %" G_GINT64_FORMAT " bytes but data offsets [%"
                 G_GINT64_FORMAT ", %" G_GINT64_FORMAT ") hold %" G_GINT64_FORMAT,
                 shape_s, fd->name, numel * (int64_t) fd->itemsize, begin, end, end - begin);
    return NULL;
  }

  GError *local = NULL;
  NnicTensor *t = nnic_tensor_new (fd->dtype, ndim, shape, &local);
  if (!t) {
    g_propagate_prefixed_error (error, local, "%s: tensor '%s': ", path, name);
    return NULL;
  }
  decode_data (t, data + begin, fd);
  return t;
}

static gboolean
read_metadata (const char *path, JsonNode *node, GHashTable *metadata, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: '__metadata__' is not an object", path);
    return FALSE;
  }
  JsonObject *o = json_node_get_object (node);
  g_autoptr (GList) keys = json_object_get_members (o);
  for (GList *l = keys; l; l = l->next) {
    JsonNode *v = json_object_get_member (o, l->data);
    if (!JSON_NODE_HOLDS_VALUE (v) || json_node_get_value_type (v) != G_TYPE_STRING) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                   "%s: '__metadata__' entry '%s' is not a string", path, (const char *) l->data);
      return FALSE;
    }
    g_hash_table_insert (metadata, g_strdup (l->data), g_strdup (json_node_get_string (v)));
  }
  return TRUE;
}

/* json-glib silently keeps the last of two members with the same name;
 * a safetensors header with a duplicate is ambiguous, so count the members
 * parsed into each object and compare with what the object ends up with. */
typedef struct {
  GHashTable *counts; /* JsonObject * → members parsed */
  char *duplicate;    /* the first duplicate name seen */
} DupCheck;

static void
on_object_member (JsonParser *parser, JsonObject *object, const char *name, gpointer user_data)
{
  (void) parser;
  DupCheck *dc = user_data;
  guint n = GPOINTER_TO_UINT (g_hash_table_lookup (dc->counts, object)) + 1;
  g_hash_table_insert (dc->counts, object, GUINT_TO_POINTER (n));
  if (n > json_object_get_size (object) && !dc->duplicate)
    dc->duplicate = g_strdup (name);
}

static JsonParser *
parse_header (const char *path, const char *header, size_t len, GError **error)
{
  if (len == 0 || header[0] != '{' || !g_utf8_validate (header, (gssize) len, NULL)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: the header is not a UTF-8 JSON object", path);
    return NULL;
  }
  g_autoptr (JsonParser) parser = json_parser_new ();
  DupCheck dc = { g_hash_table_new (NULL, NULL), NULL };
  gulong id = g_signal_connect (parser, "object-member", G_CALLBACK (on_object_member), &dc);
  GError *local = NULL;
  gboolean ok = json_parser_load_from_data (parser, header, (gssize) len, &local);
  g_signal_handler_disconnect (parser, id);
  g_hash_table_unref (dc.counts);
  g_autofree char *duplicate = dc.duplicate;

  if (!ok) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: the header is not valid JSON: %s",
                 path, local->message);
    g_error_free (local);
    return NULL;
  }
  if (duplicate) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: the header names '%s' twice", path,
                 duplicate);
    return NULL;
  }
  JsonNode *root = json_parser_get_root (parser);
  if (!root || !JSON_NODE_HOLDS_OBJECT (root)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: the header is not a JSON object", path);
    return NULL;
  }
  return g_steal_pointer (&parser);
}

static NnicTensorDict *
parse_file (const char *path, const guint8 *bytes, size_t len, GError **error)
{
  if (len < 8) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: %zu bytes is too short for a safetensors file (8-byte header length)",
                 path, len);
    return NULL;
  }
  guint64 hlen;
  memcpy (&hlen, bytes, 8);
  hlen = GUINT64_FROM_LE (hlen);
  if (hlen > len - 8) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: header length %" G_GUINT64_FORMAT " exceeds the file size (%zu bytes)",
                 path, hlen, len);
    return NULL;
  }
  g_autoptr (JsonParser) parser = parse_header (path, (const char *) bytes + 8, hlen, error);
  if (!parser)
    return NULL;

  const guint8 *data = bytes + 8 + hlen;
  int64_t data_len = (int64_t) (len - 8 - hlen);
  JsonObject *root = json_node_get_object (json_parser_get_root (parser));
  g_autoptr (NnicTensorDict) d = nnic_tensor_dict_new ();
  /* Members come back in file order. */
  g_autoptr (GList) names = json_object_get_members (root);
  for (GList *l = names; l; l = l->next) {
    const char *name = l->data;
    JsonNode *node = json_object_get_member (root, name);
    if (strcmp (name, "__metadata__") == 0) {
      if (!read_metadata (path, node, d->metadata, error))
        return NULL;
      continue;
    }
    NnicTensor *t = read_entry (path, name, node, data, data_len, error);
    if (!t)
      return NULL;
    /* Names are unique (checked while parsing): append without the
     * dictionary's linear duplicate search. */
    g_ptr_array_add (d->names, g_strdup (name));
    g_ptr_array_add (d->tensors, t);
  }
  return g_steal_pointer (&d);
}

NnicTensorDict *
nnic_safetensors_load (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  GMappedFile *mf = nnic_file_map (path, error);
  if (!mf)
    return NULL;
  NnicTensorDict *d = parse_file (path, (const guint8 *) g_mapped_file_get_contents (mf),
                                  g_mapped_file_get_length (mf), error);
  g_mapped_file_unref (mf);
  return d;
}

/* ---- writing ---- */

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Metadata keys sorted, so the same dict always gives the same bytes. */
static void
build_metadata (JsonBuilder *b, GHashTable *metadata)
{
  guint n = 0;
  g_autofree gpointer *keys = g_hash_table_get_keys_as_array (metadata, &n);
  qsort (keys, n, sizeof *keys, compare_strings);
  json_builder_set_member_name (b, "__metadata__");
  json_builder_begin_object (b);
  for (guint i = 0; i < n; i++) {
    json_builder_set_member_name (b, keys[i]);
    json_builder_add_string_value (b, g_hash_table_lookup (metadata, keys[i]));
  }
  json_builder_end_object (b);
}

static gboolean
check_dict (const char *path, const NnicTensorDict *d, GError **error)
{
  g_autoptr (GHashTable) seen = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < d->names->len; i++) {
    const char *name = g_ptr_array_index (d->names, i);
    const NnicTensor *t = g_ptr_array_index (d->tensors, i);
    const char *why = NULL;
    if (strcmp (name, "__metadata__") == 0)
      why = "the name is reserved for metadata";
    else if (!g_hash_table_add (seen, (gpointer) name))
      why = "the name appears twice";
    else if (!write_dtype_name (t->dtype))
      why = "unsupported dtype";
    if (why) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: tensor '%s': %s", path, name, why);
      return FALSE;
    }
  }
  return TRUE;
}

static char *
build_header (const NnicTensorDict *d, size_t *len)
{
  g_autoptr (JsonBuilder) b = json_builder_new ();
  json_builder_begin_object (b);
  if (d->metadata && g_hash_table_size (d->metadata) > 0)
    build_metadata (b, d->metadata);
  int64_t offset = 0;
  for (guint i = 0; i < d->names->len; i++) {
    const NnicTensor *t = g_ptr_array_index (d->tensors, i);
    int64_t nbytes = (int64_t) nnic_tensor_nbytes (t);
    json_builder_set_member_name (b, g_ptr_array_index (d->names, i));
    json_builder_begin_object (b);
    json_builder_set_member_name (b, "dtype");
    json_builder_add_string_value (b, write_dtype_name (t->dtype));
    json_builder_set_member_name (b, "shape");
    json_builder_begin_array (b);
    for (int k = 0; k < t->ndim; k++)
      json_builder_add_int_value (b, t->shape[k]);
    json_builder_end_array (b);
    json_builder_set_member_name (b, "data_offsets");
    json_builder_begin_array (b);
    json_builder_add_int_value (b, offset);
    json_builder_add_int_value (b, offset + nbytes);
    json_builder_end_array (b);
    json_builder_end_object (b);
    offset += nbytes;
  }
  json_builder_end_object (b);

  g_autoptr (JsonGenerator) gen = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (b);
  json_generator_set_root (gen, root);
  gsize n = 0;
  char *s = json_generator_to_data (gen, &n);
  *len = n;
  return s;
}

gboolean
nnic_safetensors_save (const char *path, const NnicTensorDict *d, GError **error)
{
  g_return_val_if_fail (path != NULL && d != NULL, FALSE);
  if (!check_dict (path, d, error))
    return FALSE;

  size_t json_len = 0;
  g_autofree char *json = build_header (d, &json_len);
  /* Spaces pad the header so the data section starts 8-byte aligned, as
   * the reference implementation does. */
  size_t hlen = (json_len + 7) / 8 * 8;
  size_t data_len = 0;
  for (guint i = 0; i < d->tensors->len; i++)
    data_len += nnic_tensor_nbytes (g_ptr_array_index (d->tensors, i));
  size_t total = 8 + hlen + data_len;

  g_autofree guint8 *buf = g_try_malloc (total);
  if (!buf) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_MEMORY, "%s: out of memory for %zu bytes", path,
                 total);
    return FALSE;
  }
  guint64 hlen_le = GUINT64_TO_LE ((guint64) hlen);
  memcpy (buf, &hlen_le, 8);
  memcpy (buf + 8, json, json_len);
  memset (buf + 8 + json_len, ' ', hlen - json_len);
  guint8 *p = buf + 8 + hlen;
  for (guint i = 0; i < d->tensors->len; i++) {
    const NnicTensor *t = g_ptr_array_index (d->tensors, i);
    size_t nbytes = nnic_tensor_nbytes (t);
    if (nbytes)
      memcpy (p, t->data, nbytes);
    swap_to_le (p, t->numel, nnic_dtype_size (t->dtype));
    p += nbytes;
  }
  return nnic_write_file_atomic (path, buf, total, error);
}

/* ---- model state dicts ---- */

/* BatchNorm's counter: a float in nnic, an int64 in PyTorch files. */
static gboolean
is_batch_counter (const char *name)
{
  return g_str_has_suffix (name, ".num_batches_tracked") || strcmp (name, "num_batches_tracked") == 0;
}

static int64_t
counter_to_i64 (float v)
{
  if (!(v >= 0.0f))
    return 0;
  if (v >= 9.2e18f)
    return INT64_MAX;
  return (int64_t) v;
}

/* A non-owning tensor over a parameter's storage, or an I64 copy of a
 * batch counter. */
static NnicTensor *
state_entry (const NnicParam *p, GError **error)
{
  if (is_batch_counter (p->name) && p->value->dtype == NNIC_DTYPE_F32 && p->value->numel == 1) {
    NnicTensor *t = nnic_tensor_new (NNIC_DTYPE_I64, p->value->ndim, p->value->shape, error);
    if (t)
      t->i64[0] = counter_to_i64 (p->value->f32[0]);
    return t;
  }
  NnicTensor *v = g_new0 (NnicTensor, 1);
  *v = *p->value;
  v->owns_data = FALSE;
  return v;
}

gboolean
nnic_model_add_state (NnicModel *m, NnicTensorDict *d, GError **error)
{
  guint n = nnic_model_n_params (m);
  for (guint i = 0; i < n; i++) {
    const NnicParam *p = nnic_model_param (m, i);
    NnicTensor *t = state_entry (p, error);
    if (!t || !nnic_tensor_dict_add (d, p->name, t, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
nnic_model_save (NnicModel *m, const char *path, GError **error)
{
  g_return_val_if_fail (m != NULL && path != NULL, FALSE);
  g_autoptr (NnicTensorDict) d = nnic_tensor_dict_new ();
  if (!nnic_model_add_state (m, d, error)) {
    g_prefix_error (error, "%s: ", path);
    return FALSE;
  }
  return nnic_safetensors_save (path, d, error);
}

/* Can file tensor `f` be loaded into parameter `p`? */
static gboolean
check_state_entry (const char *path, const NnicParam *p, const NnicTensor *f, GError **error)
{
  NnicTensor *v = p->value;
  if (!nnic_tensor_same_shape (v, f)) {
    g_autofree char *fs = nnic_shape_to_string (f->ndim, f->shape);
    g_autofree char *ms = nnic_shape_to_string (v->ndim, v->shape);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "%s: tensor '%s' has shape %s in the file but %s in the model", path, p->name, fs,
                 ms);
    return FALSE;
  }
  gboolean counter_ok = is_batch_counter (p->name) && v->dtype == NNIC_DTYPE_F32
                        && (f->dtype == NNIC_DTYPE_I64 || f->dtype == NNIC_DTYPE_F32);
  if (f->dtype != v->dtype && !counter_ok) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: tensor '%s' is %s in the file but %s in the model", path, p->name,
                 nnic_dtype_name (f->dtype), nnic_dtype_name (v->dtype));
    return FALSE;
  }
  return TRUE;
}

static void
load_state_entry (NnicParam *p, const NnicTensor *f)
{
  NnicTensor *v = p->value;
  if (f->dtype == NNIC_DTYPE_I64 && v->dtype == NNIC_DTYPE_F32) {
    for (int64_t k = 0; k < v->numel; k++)
      v->f32[k] = (float) f->i64[k];
    return;
  }
  memcpy (v->data, f->data, nnic_tensor_nbytes (v));
}

/* "'a', 'b' and 3 more": for error messages. */
static char *
list_names (GPtrArray *names)
{
  GString *s = g_string_new (NULL);
  guint shown = MIN (names->len, 5);
  for (guint i = 0; i < shown; i++)
    g_string_append_printf (s, "%s'%s'", i ? ", " : "", (const char *) g_ptr_array_index (names, i));
  if (names->len > shown)
    g_string_append_printf (s, " and %u more", names->len - shown);
  return g_string_free (s, FALSE);
}

gboolean
nnic_model_load (NnicModel *m, const char *path, GError **error)
{
  g_return_val_if_fail (m != NULL && path != NULL, FALSE);
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (path, error);
  return d && nnic_model_load_state (m, d, path, TRUE, error);
}

gboolean
nnic_model_load_state (NnicModel *m, const NnicTensorDict *d, const char *path, gboolean strict,
                       GError **error)
{

  /* name → file tensor; entries are removed as the model claims them, so
   * what is left over is unexpected. */
  g_autoptr (GHashTable) index = g_hash_table_new (g_str_hash, g_str_equal);
  for (guint i = 0; i < d->names->len; i++)
    g_hash_table_insert (index, g_ptr_array_index (d->names, i), g_ptr_array_index (d->tensors, i));

  guint n = nnic_model_n_params (m);
  g_autofree NnicTensor **source = g_new0 (NnicTensor *, n ? n : 1);
  g_autoptr (GPtrArray) missing = g_ptr_array_new ();
  for (guint i = 0; i < n; i++) {
    NnicParam *p = nnic_model_param (m, i);
    NnicTensor *f = g_hash_table_lookup (index, p->name);
    if (!f) {
      if (!is_batch_counter (p->name))
        g_ptr_array_add (missing, (gpointer) p->name);
      continue;
    }
    if (!check_state_entry (path, p, f, error))
      return FALSE;
    g_hash_table_remove (index, p->name);
    source[i] = f;
  }
  if (missing->len > 0) {
    g_autofree char *s = list_names (missing);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "%s: the file has no tensor %s", path, s);
    return FALSE;
  }
  if (strict && g_hash_table_size (index) > 0) {
    /* Report in file order, which is stable, not hash order. */
    g_autoptr (GPtrArray) extra = g_ptr_array_new ();
    for (guint i = 0; i < d->names->len; i++)
      if (g_hash_table_contains (index, g_ptr_array_index (d->names, i)))
        g_ptr_array_add (extra, g_ptr_array_index (d->names, i));
    g_autofree char *s = list_names (extra);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND,
                 "%s: unexpected tensor %s (not in the model)", path, s);
    return FALSE;
  }

  for (guint i = 0; i < n; i++)
    if (source[i])
      load_state_entry (nnic_model_param (m, i), source[i]);
  return TRUE;
}
