/* Config lists: parsing, the C builder, validation against an algorithm's
 * kind and declared keys and against a model, and NNI's selection rules.
 *
 * A list is kept as the parsed JSON (an array of objects), so that the keys
 * an algorithm declares stay available to its plugin; the builder makes the
 * same JSON objects. Validation errors read
 * "config_list[<i>].<key>: <what>" (or ".<key>[<j>]", ".<key>.<member>")
 * and name the closest valid choices. */
#include "core/compress/internal.h"
#include "core/suggest.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

struct _NnicConfigList {
  JsonNode *root; /* a JSON array */
  JsonArray *array;
};

static const char *const default_op_types[] = { "Conv2d", "Linear", NULL };

const char *const *
nnic_default_op_types (void)
{
  return default_op_types;
}

/* The core keys, by kind. */
static const char *const core_keys_common[] = { "exclude", "op_names", "op_types" };
static const char *const core_keys_pruning[] = { "sparsity" };
static const char *const core_keys_quant[] = { "quant_bits", "quant_start_step", "quant_types" };
static const char *const quant_type_names[] = { "input", "weight", "output" };
static const NnicQuantType quant_type_bits[] = { NNIC_QUANT_INPUT, NNIC_QUANT_WEIGHT,
                                                 NNIC_QUANT_OUTPUT };
#define QUANT_BITS_MIN 1
#define QUANT_BITS_MAX 8

/* ---- error helpers ---- */

static gboolean fail (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
fail (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, NNIC_ERROR, NNIC_ERROR_CONFIG, msg);
  g_free (msg);
  return FALSE;
}

/* The shortest text that reads back as `v` ("0.1", not "0.10000000000000001"). */
static void
format_number (char *buf, gsize size, double v)
{
  if (isnan (v)) {
    g_strlcpy (buf, "nan", size);
    return;
  }
  if (isinf (v)) {
    g_strlcpy (buf, v > 0 ? "inf" : "-inf", size);
    return;
  }
  for (int prec = 1; prec <= 17; prec++) {
    char fmt[8];
    g_snprintf (fmt, sizeof fmt, "%%.%dg", prec);
    g_ascii_formatd (buf, (gint) size, fmt, v);
    if (g_ascii_strtod (buf, NULL) == v)
      return;
  }
}

/* A JSON value as the user wrote it, for "got ..." (long values cut). */
static char *
describe_value (JsonNode *v)
{
  if (!v)
    return g_strdup ("nothing");
  switch (JSON_NODE_TYPE (v)) {
  case JSON_NODE_NULL:
    return g_strdup ("null");
  case JSON_NODE_VALUE: {
    GType t = json_node_get_value_type (v);
    char buf[G_ASCII_DTOSTR_BUF_SIZE + 4];
    if (t == G_TYPE_INT64)
      return g_strdup_printf ("%" G_GINT64_FORMAT, json_node_get_int (v));
    if (t == G_TYPE_DOUBLE) {
      format_number (buf, sizeof buf - 2, json_node_get_double (v));
      /* A JSON "2.0" is not an integer: show that it was written as a float. */
      if (!strpbrk (buf, ".eni"))
        g_strlcat (buf, ".0", sizeof buf);
      return g_strdup (buf);
    }
    if (t == G_TYPE_BOOLEAN)
      return g_strdup (json_node_get_boolean (v) ? "true" : "false");
    break;
  }
  default:
    break;
  }
  char *text = json_to_string (v, FALSE);
  if (g_utf8_strlen (text, -1) > 40) {
    char *cut = g_utf8_substring (text, 0, 37);
    g_free (text);
    text = g_strconcat (cut, "...", NULL);
    g_free (cut);
  }
  return text;
}

static const char *
describe_type (JsonNode *v)
{
  if (!v)
    return "nothing";
  switch (JSON_NODE_TYPE (v)) {
  case JSON_NODE_OBJECT:
    return "an object";
  case JSON_NODE_ARRAY:
    return "an array";
  case JSON_NODE_NULL:
    return "null";
  case JSON_NODE_VALUE: {
    GType t = json_node_get_value_type (v);
    if (t == G_TYPE_STRING)
      return "a string";
    if (t == G_TYPE_BOOLEAN)
      return "a boolean";
    return "a number";
  }
  }
  return "a value";
}

/* "a, b, c" */
static char *
join (const char *const *names, guint n)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < n; i++)
    g_string_append_printf (s, "%s%s", i ? ", " : "", names[i]);
  return g_string_free (s, FALSE);
}

/* "; did you mean 'x'?" or " (valid: a, b, c)" */
static char *
hint (const char *name, const char *const *candidates, guint n)
{
  char *s = nnic_suggest (name, candidates, n);
  if (*s)
    return s;
  g_free (s);
  char *all = join (candidates, n);
  s = g_strdup_printf (" (valid: %s)", all);
  g_free (all);
  return s;
}

/* ---- values ---- */

static gboolean
node_is_type (JsonNode *v, GType t)
{
  return v && JSON_NODE_HOLDS_VALUE (v) && json_node_get_value_type (v) == t;
}

static gboolean
node_is_string (JsonNode *v)
{
  return node_is_type (v, G_TYPE_STRING);
}

static gboolean
node_is_int (JsonNode *v)
{
  return node_is_type (v, G_TYPE_INT64);
}

static gboolean
node_is_number (JsonNode *v)
{
  return node_is_type (v, G_TYPE_INT64) || node_is_type (v, G_TYPE_DOUBLE);
}

/* A bound too large to mean anything is a missing one ("an integer >= 1"). */
static gboolean
bound_shown (double b)
{
  return isfinite (b) && fabs (b) < 1e15;
}

/* "in [0, 1)", ">= 1", "< 5", or "" without a range. */
static char *
range_text (double min, double max, gboolean min_open, gboolean max_open)
{
  if (min > max)
    return g_strdup ("");
  char lo[G_ASCII_DTOSTR_BUF_SIZE], hi[G_ASCII_DTOSTR_BUF_SIZE];
  format_number (lo, sizeof lo, min);
  format_number (hi, sizeof hi, max);
  gboolean has_lo = bound_shown (min), has_hi = bound_shown (max);
  if (has_lo && has_hi)
    return g_strdup_printf ("in %c%s, %s%c", min_open ? '(' : '[', lo, hi, max_open ? ')' : ']');
  if (has_lo)
    return g_strdup_printf ("%s %s", min_open ? ">" : ">=", lo);
  if (has_hi)
    return g_strdup_printf ("%s %s", max_open ? "<" : "<=", hi);
  return g_strdup ("");
}

static gboolean
in_range (double v, double min, double max, gboolean min_open, gboolean max_open)
{
  if (min > max)
    return TRUE;
  gboolean lo_ok = min_open ? v > min : v >= min;
  gboolean hi_ok = max_open ? v < max : v <= max;
  return lo_ok && hi_ok;
}

/* Checks one value against a key type and range; `path` names it. */
static gboolean
check_value (const char *path, JsonNode *v, NnicKeyType type, double min, double max,
             gboolean min_open, gboolean max_open, GError **error)
{
  g_autofree char *got = describe_value (v);
  switch (type) {
  case NNIC_KEY_BOOL:
    if (!node_is_type (v, G_TYPE_BOOLEAN))
      return fail (error, "%s: must be a boolean, got %s", path, got);
    return TRUE;
  case NNIC_KEY_STRING:
    if (!node_is_string (v))
      return fail (error, "%s: must be a string, got %s", path, got);
    return TRUE;
  case NNIC_KEY_NUMBER:
  case NNIC_KEY_INT: {
    g_autofree char *range = range_text (min, max, min_open, max_open);
    gboolean ok_type = type == NNIC_KEY_INT ? node_is_int (v)
                                            : node_is_number (v) && isfinite (json_node_get_double (v));
    if (!ok_type)
      return fail (error, "%s: must be %s%s%s, got %s", path,
                   type == NNIC_KEY_INT ? "an integer" : "a number", *range ? " " : "", range, got);
    double d = type == NNIC_KEY_INT ? (double) json_node_get_int (v) : json_node_get_double (v);
    if (!in_range (d, min, max, min_open, max_open))
      return fail (error, "%s: must be %s, got %s", path, range, got);
    return TRUE;
  }
  }
  return TRUE; /* a key type newer than this host: not checked */
}

/* ---- entries ---- */

typedef struct {
  gboolean have_kind; /* FALSE while parsing: the algorithm is not known yet */
  NnicAlgorithmKind kind;
  const NnicConfigKey *keys;
  guint n_keys;
  const NnicModel *model; /* NULL: op_names are not checked */
} Rules;

static gboolean
is_quantizer (const Rules *r)
{
  return r->have_kind && r->kind == NNIC_ALGORITHM_QUANTIZER;
}

/* The core keys valid under `r` (while parsing: all of them). */
static gboolean
core_key_allowed (const Rules *r, const char *key)
{
  for (guint i = 0; i < G_N_ELEMENTS (core_keys_common); i++)
    if (strcmp (key, core_keys_common[i]) == 0)
      return TRUE;
  if (!r->have_kind || r->kind != NNIC_ALGORITHM_QUANTIZER)
    for (guint i = 0; i < G_N_ELEMENTS (core_keys_pruning); i++)
      if (strcmp (key, core_keys_pruning[i]) == 0)
        return TRUE;
  if (!r->have_kind || r->kind == NNIC_ALGORITHM_QUANTIZER)
    for (guint i = 0; i < G_N_ELEMENTS (core_keys_quant); i++)
      if (strcmp (key, core_keys_quant[i]) == 0)
        return TRUE;
  return FALSE;
}

static const NnicConfigKey *
find_algorithm_key (const Rules *r, const char *key)
{
  for (guint i = 0; i < r->n_keys; i++)
    if (r->keys[i].name && strcmp (r->keys[i].name, key) == 0)
      return &r->keys[i];
  return NULL;
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Every key valid under `r`, sorted, without duplicates. */
static GPtrArray *
valid_keys (const Rules *r)
{
  GPtrArray *all = g_ptr_array_new ();
  for (guint i = 0; i < G_N_ELEMENTS (core_keys_common); i++)
    g_ptr_array_add (all, (gpointer) core_keys_common[i]);
  if (r->kind == NNIC_ALGORITHM_QUANTIZER)
    for (guint i = 0; i < G_N_ELEMENTS (core_keys_quant); i++)
      g_ptr_array_add (all, (gpointer) core_keys_quant[i]);
  else
    for (guint i = 0; i < G_N_ELEMENTS (core_keys_pruning); i++)
      g_ptr_array_add (all, (gpointer) core_keys_pruning[i]);
  for (guint i = 0; i < r->n_keys; i++)
    if (r->keys[i].name)
      g_ptr_array_add (all, (gpointer) r->keys[i].name);
  g_ptr_array_sort (all, compare_strings);
  guint out = 0;
  for (guint i = 0; i < all->len; i++)
    if (out == 0 || strcmp (all->pdata[out - 1], all->pdata[i]) != 0)
      all->pdata[out++] = all->pdata[i];
  g_ptr_array_set_size (all, out);
  return all;
}

/* A non-empty JSON array of strings; `path` names it. */
static gboolean
check_string_list (const char *path, JsonNode *v, GError **error)
{
  if (!JSON_NODE_HOLDS_ARRAY (v)) {
    g_autofree char *got = describe_value (v);
    return fail (error, "%s: must be a list of strings, got %s", path, got);
  }
  JsonArray *a = json_node_get_array (v);
  if (json_array_get_length (a) == 0)
    return fail (error, "%s: must not be empty", path);
  for (guint j = 0; j < json_array_get_length (a); j++) {
    JsonNode *e = json_array_get_element (a, j);
    if (!node_is_string (e)) {
      g_autofree char *got = describe_value (e);
      return fail (error, "%s[%u]: must be a string, got %s", path, j, got);
    }
  }
  return TRUE;
}

static gboolean
check_op_types (const char *path, JsonNode *v, GError **error)
{
  if (!check_string_list (path, v, error))
    return FALSE;
  const char *const *types = nnic_model_node_types ();
  g_autoptr (GPtrArray) valid = g_ptr_array_new ();
  g_ptr_array_add (valid, (gpointer) "default");
  for (guint k = 0; types[k]; k++)
    g_ptr_array_add (valid, (gpointer) types[k]);
  JsonArray *a = json_node_get_array (v);
  for (guint j = 0; j < json_array_get_length (a); j++) {
    const char *s = json_array_get_string_element (a, j);
    gboolean known = FALSE;
    for (guint k = 0; k < valid->len && !known; k++)
      known = strcmp (s, valid->pdata[k]) == 0;
    if (!known) {
      g_autofree char *h = hint (s, (const char *const *) valid->pdata, valid->len);
      return fail (error, "%s[%u]: unknown type '%s'%s", path, j, s, h);
    }
  }
  return TRUE;
}

static gboolean
is_input_node (const NnicModel *m, guint i)
{
  return strcmp (nnic_model_node_type (m, i), "Input") == 0;
}

static gboolean
check_op_names (const char *path, JsonNode *v, const NnicModel *m, GError **error)
{
  if (!check_string_list (path, v, error))
    return FALSE;
  if (!m)
    return TRUE;
  JsonArray *a = json_node_get_array (v);
  for (guint j = 0; j < json_array_get_length (a); j++) {
    const char *s = json_array_get_string_element (a, j);
    int node = nnic_model_find_node (m, s);
    if (node >= 0 && is_input_node (m, (guint) node))
      return fail (error, "%s[%u]: '%s' is the model's input, not a layer", path, j, s);
    if (node < 0) {
      g_autoptr (GPtrArray) names = g_ptr_array_new ();
      for (guint k = 0; k < nnic_model_n_nodes (m); k++)
        if (!is_input_node (m, k))
          g_ptr_array_add (names, (gpointer) nnic_model_node_name (m, k));
      g_autofree char *h = nnic_suggest (s, (const char *const *) names->pdata, names->len);
      return fail (error, "%s[%u]: no node named '%s'%s", path, j, s, h);
    }
  }
  return TRUE;
}

static int
quant_type_index (const char *s)
{
  for (guint k = 0; k < G_N_ELEMENTS (quant_type_names); k++)
    if (strcmp (s, quant_type_names[k]) == 0)
      return (int) k;
  return -1;
}

static gboolean
check_quant_types (const char *path, JsonNode *v, GError **error)
{
  if (!check_string_list (path, v, error))
    return FALSE;
  JsonArray *a = json_node_get_array (v);
  for (guint j = 0; j < json_array_get_length (a); j++) {
    const char *s = json_array_get_string_element (a, j);
    if (quant_type_index (s) < 0) {
      g_autofree char *h = hint (s, quant_type_names, G_N_ELEMENTS (quant_type_names));
      return fail (error, "%s[%u]: unknown quant type '%s'%s", path, j, s, h);
    }
  }
  return TRUE;
}

static gboolean
check_quant_bits (const char *path, JsonNode *v, GError **error)
{
  if (node_is_int (v))
    return check_value (path, v, NNIC_KEY_INT, QUANT_BITS_MIN, QUANT_BITS_MAX, FALSE, FALSE, error);
  if (!JSON_NODE_HOLDS_OBJECT (v)) {
    g_autofree char *got = describe_value (v);
    return fail (error, "%s: must be an integer in [%d, %d] or an object, got %s", path,
                 QUANT_BITS_MIN, QUANT_BITS_MAX, got);
  }
  JsonObject *o = json_node_get_object (v);
  g_autoptr (GList) members = json_object_get_members (o);
  for (GList *l = members; l; l = l->next) {
    const char *name = l->data;
    g_autofree char *sub = g_strdup_printf ("%s.%s", path, name);
    if (quant_type_index (name) < 0) {
      g_autofree char *h = hint (name, quant_type_names, G_N_ELEMENTS (quant_type_names));
      return fail (error, "%s: unknown quant type '%s'%s", sub, name, h);
    }
    if (!check_value (sub, json_object_get_member (o, name), NNIC_KEY_INT, QUANT_BITS_MIN,
                      QUANT_BITS_MAX, FALSE, FALSE, error))
      return FALSE;
  }
  return TRUE;
}

/* quant_bits against quant_types, both already valid on their own. */
static gboolean
check_quant_cover (const char *prefix, JsonObject *o, const Rules *r, GError **error)
{
  JsonNode *types = json_object_get_member (o, "quant_types");
  JsonNode *bits = json_object_get_member (o, "quant_bits");
  /* (For other kinds these may be a plugin's own keys, of other types.) */
  if ((r->have_kind && !is_quantizer (r)) || !types || !JSON_NODE_HOLDS_ARRAY (types) || !bits
      || !JSON_NODE_HOLDS_OBJECT (bits))
    return TRUE;
  JsonArray *ta = json_node_get_array (types);
  JsonObject *bo = json_node_get_object (bits);
  g_autoptr (GList) members = json_object_get_members (bo);
  for (GList *l = members; l; l = l->next) {
    gboolean listed = FALSE;
    for (guint j = 0; j < json_array_get_length (ta) && !listed; j++) {
      JsonNode *e = json_array_get_element (ta, j);
      listed = node_is_string (e) && strcmp (json_node_get_string (e), l->data) == 0;
    }
    if (!listed)
      return fail (error, "%s.quant_bits.%s: not in quant_types", prefix, (const char *) l->data);
  }
  for (guint j = 0; j < json_array_get_length (ta); j++) {
    JsonNode *e = json_array_get_element (ta, j);
    const char *t = node_is_string (e) ? json_node_get_string (e) : NULL;
    if (t && !json_object_has_member (bo, t))
      return fail (error, "%s.quant_bits: no bits for quant type '%s'", prefix, t);
  }
  return TRUE;
}

static gboolean
check_entry (JsonObject *o, guint i, const Rules *r, GError **error)
{
  g_autofree char *prefix = g_strdup_printf ("config_list[%u]", i);
  g_autoptr (GList) members = json_object_get_members (o);
  for (GList *l = members; l; l = l->next) {
    const char *key = l->data;
    JsonNode *v = json_object_get_member (o, key);
    g_autofree char *path = g_strdup_printf ("%s.%s", prefix, key);
    const NnicConfigKey *ak = r->have_kind ? find_algorithm_key (r, key) : NULL;
    gboolean ok = TRUE;
    if (core_key_allowed (r, key)) {
      if (strcmp (key, "op_types") == 0)
        ok = check_op_types (path, v, error);
      else if (strcmp (key, "op_names") == 0)
        ok = check_op_names (path, v, r->model, error);
      else if (strcmp (key, "exclude") == 0)
        ok = check_value (path, v, NNIC_KEY_BOOL, 0, 0, FALSE, FALSE, error);
      else if (strcmp (key, "sparsity") == 0)
        ok = check_value (path, v, NNIC_KEY_NUMBER, 0, 1, TRUE, TRUE, error);
      else if (strcmp (key, "quant_types") == 0)
        ok = check_quant_types (path, v, error);
      else if (strcmp (key, "quant_bits") == 0)
        ok = check_quant_bits (path, v, error);
      else if (strcmp (key, "quant_start_step") == 0)
        ok = check_value (path, v, NNIC_KEY_INT, 0, INFINITY, FALSE, FALSE, error);
    } else if (!ak && r->have_kind) {
      g_autoptr (GPtrArray) valid = valid_keys (r);
      g_autofree char *h = hint (key, (const char *const *) valid->pdata, valid->len);
      return fail (error, "%s: unknown key%s", path, h);
    }
    if (ok && ak)
      ok = check_value (path, v, ak->type, ak->min, ak->max, ak->min_open, ak->max_open, error);
    if (!ok)
      return FALSE;
  }

  /* Not while parsing: an unknown key there may be the typo that explains it
   * ("op_type"), and only the check knows which keys are unknown. */
  if (r->have_kind && !json_object_has_member (o, "op_types") && !json_object_has_member (o, "op_names"))
    return fail (error, "%s: selects no layer (give op_types or op_names)", prefix);

  JsonNode *ex = json_object_get_member (o, "exclude");
  gboolean exclude = node_is_type (ex, G_TYPE_BOOLEAN) && json_node_get_boolean (ex);
  if (r->have_kind && !exclude) {
    if (r->kind == NNIC_ALGORITHM_MASKER && !json_object_has_member (o, "sparsity"))
      return fail (error, "%s.sparsity: required", prefix);
    if (is_quantizer (r)) {
      if (!json_object_has_member (o, "quant_types"))
        return fail (error, "%s.quant_types: required", prefix);
      if (!json_object_has_member (o, "quant_bits"))
        return fail (error, "%s.quant_bits: required", prefix);
    }
    for (guint k = 0; k < r->n_keys; k++)
      if (r->keys[k].name && r->keys[k].required && !json_object_has_member (o, r->keys[k].name))
        return fail (error, "%s.%s: required", prefix, r->keys[k].name);
  }
  return check_quant_cover (prefix, o, r, error);
}

static gboolean
check_array (JsonArray *a, const Rules *r, GError **error)
{
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!JSON_NODE_HOLDS_OBJECT (e))
      return fail (error, "config_list[%u]: must be an object", i);
    if (!check_entry (json_node_get_object (e), i, r, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
nnic_config_list_check (const NnicConfigList *cl, const NnicModel *m, NnicAlgorithmKind kind,
                        const NnicConfigKey *keys, guint n_keys, GError **error)
{
  g_return_val_if_fail (cl != NULL, FALSE);
  g_return_val_if_fail (keys != NULL || n_keys == 0, FALSE);
  Rules r = { TRUE, kind, keys, n_keys, m };
  return check_array (cl->array, &r, error);
}

/* ---- parsing ---- */

/* What the parser's signals tell: keys given twice (json-glib keeps the
 * last one silently) and a second top-level value (json-glib 1.6 takes
 * "[...] [...]" without a word). */
typedef struct {
  GHashTable *seen;   /* JsonObject* → GHashTable of member names */
  JsonObject *dup_object;
  char *dup_name;
  guint dup_line;
  guint depth, n_top;
  guint extra_line;
} ParseWatch;

static void
on_member (JsonParser *parser, JsonObject *object, const char *name, gpointer data)
{
  ParseWatch *w = data;
  if (w->dup_name)
    return; /* the first one is reported; objects may be freed after it */
  GHashTable *names = g_hash_table_lookup (w->seen, object);
  if (!names) {
    names = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
    g_hash_table_insert (w->seen, object, names);
  }
  if (!g_hash_table_add (names, g_strdup (name))) {
    w->dup_object = object;
    w->dup_name = g_strdup (name);
    w->dup_line = json_parser_get_current_line (parser);
  }
}

static void
on_start (JsonParser *parser, gpointer data)
{
  ParseWatch *w = data;
  if (w->depth++ == 0 && w->n_top++ == 1)
    w->extra_line = json_parser_get_current_line (parser);
}

static void
on_end (JsonParser *parser, gpointer value, gpointer data)
{
  (void) parser;
  (void) value;
  ParseWatch *w = data;
  if (w->depth > 0)
    w->depth--;
}

/* "<data>:3:5: Parse error: unexpected ..." → "src: line 3: unexpected ..." */
static void
parse_error (GError **error, const char *source, const GError *local)
{
  const char *msg = local->message;
  const char *p = g_str_has_prefix (msg, "<data>:") ? msg + strlen ("<data>:") : NULL;
  if (p) {
    char *end;
    guint64 line = g_ascii_strtoull (p, &end, 10);
    if (end != p && *end == ':') {
      const char *rest = strstr (end, ": ");
      if (rest) {
        rest += 2;
        if (g_str_has_prefix (rest, "Parse error: "))
          rest += strlen ("Parse error: ");
        g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG, "%s: line %" G_GUINT64_FORMAT ": %s",
                     source, line, rest);
        return;
      }
    }
  }
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG, "%s: %s", source, msg);
}

/* Where a duplicated key sits: "config_list[1].sparsity" or
 * "config_list[0].quant_bits.weight"; NULL when not in an entry or an
 * entry's object member. */
static char *
locate_object (JsonArray *a, JsonObject *target, const char *name)
{
  for (guint i = 0; i < json_array_get_length (a); i++) {
    JsonNode *e = json_array_get_element (a, i);
    if (!JSON_NODE_HOLDS_OBJECT (e))
      continue;
    JsonObject *o = json_node_get_object (e);
    if (o == target)
      return g_strdup_printf ("config_list[%u].%s", i, name);
    g_autoptr (GList) members = json_object_get_members (o);
    for (GList *l = members; l; l = l->next) {
      JsonNode *v = json_object_get_member (o, l->data);
      if (JSON_NODE_HOLDS_OBJECT (v) && json_node_get_object (v) == target)
        return g_strdup_printf ("config_list[%u].%s.%s", i, (const char *) l->data, name);
    }
  }
  return NULL;
}

NnicConfigList *
nnic_config_list_new_from_json (const char *json, const char *source, GError **error)
{
  g_return_val_if_fail (json != NULL, NULL);
  if (!source)
    source = "config_list";
  g_autoptr (JsonParser) parser = json_parser_new ();
  ParseWatch w = { 0 };
  w.seen = g_hash_table_new_full (g_direct_hash, g_direct_equal, NULL,
                                  (GDestroyNotify) g_hash_table_unref);
  g_signal_connect (parser, "object-member", G_CALLBACK (on_member), &w);
  g_signal_connect (parser, "object-start", G_CALLBACK (on_start), &w);
  g_signal_connect (parser, "array-start", G_CALLBACK (on_start), &w);
  g_signal_connect (parser, "object-end", G_CALLBACK (on_end), &w);
  g_signal_connect (parser, "array-end", G_CALLBACK (on_end), &w);
  GError *local = NULL;
  gboolean parsed = json_parser_load_from_data (parser, json, -1, &local);
  g_signal_handlers_disconnect_by_data (parser, &w);
  NnicConfigList *cl = NULL;
  JsonNode *root = parsed ? json_parser_get_root (parser) : NULL;

  if (!parsed)
    parse_error (error, source, local);
  else if (!root)
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG, "%s: no JSON value (empty input)", source);
  else if (json_parser_has_assignment (parser, NULL))
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                 "%s: a JavaScript assignment (\"var x = ...\"), not JSON", source);
  else if (w.n_top > 1)
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                 "%s: line %u: a second JSON value after the config list", source, w.extra_line);
  else if (!JSON_NODE_HOLDS_ARRAY (root))
    fail (error, "config_list: must be a list of objects, got %s", describe_type (root));
  else {
    JsonArray *a = json_node_get_array (root);
    g_autofree char *dup_at = w.dup_name ? locate_object (a, w.dup_object, w.dup_name) : NULL;
    Rules r = { FALSE, NNIC_ALGORITHM_MASKER, NULL, 0, NULL };
    if (dup_at)
      fail (error, "%s: given twice", dup_at);
    else if (w.dup_name)
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG, "%s: line %u: key '%s' given twice",
                   source, w.dup_line, w.dup_name);
    else if (check_array (a, &r, error)) {
      cl = g_new0 (NnicConfigList, 1);
      cl->root = json_node_copy (root);
      cl->array = json_node_get_array (cl->root);
    }
  }
  g_clear_error (&local);
  g_free (w.dup_name);
  g_hash_table_unref (w.seen);
  return cl;
}

NnicConfigList *
nnic_config_list_new_from_file (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  g_autofree char *text = NULL;
  GError *local = NULL;
  if (!g_file_get_contents (path, &text, NULL, &local)) {
    g_set_error_literal (error, NNIC_ERROR, NNIC_ERROR_IO, local->message);
    g_error_free (local);
    return NULL;
  }
  return nnic_config_list_new_from_json (text, path, error);
}

void
nnic_config_list_free (NnicConfigList *cl)
{
  if (!cl)
    return;
  json_node_unref (cl->root);
  g_free (cl);
}

guint
nnic_config_list_len (const NnicConfigList *cl)
{
  g_return_val_if_fail (cl != NULL, 0);
  return json_array_get_length (cl->array);
}

JsonObject *
nnic_config_list_entry (const NnicConfigList *cl, guint i)
{
  g_return_val_if_fail (cl != NULL, NULL);
  if (i >= json_array_get_length (cl->array))
    return NULL;
  JsonNode *e = json_array_get_element (cl->array, i);
  return JSON_NODE_HOLDS_OBJECT (e) ? json_node_get_object (e) : NULL;
}

/* ---- the builder ---- */

NnicConfigList *
nnic_config_list_new (void)
{
  NnicConfigList *cl = g_new0 (NnicConfigList, 1);
  cl->root = json_node_init_array (json_node_alloc (), json_array_new ());
  cl->array = json_node_get_array (cl->root);
  json_array_unref (cl->array); /* the node holds it */
  return cl;
}

guint
nnic_config_list_add_entry (NnicConfigList *cl)
{
  g_return_val_if_fail (cl != NULL, 0);
  json_array_add_object_element (cl->array, json_object_new ());
  return json_array_get_length (cl->array) - 1;
}

static JsonObject *
builder_entry (NnicConfigList *cl, guint entry, const char *key)
{
  g_return_val_if_fail (cl != NULL && key != NULL, NULL);
  g_return_val_if_fail (entry < json_array_get_length (cl->array), NULL);
  return nnic_config_list_entry (cl, entry);
}

void
nnic_config_list_set_double (NnicConfigList *cl, guint entry, const char *key, double v)
{
  JsonObject *o = builder_entry (cl, entry, key);
  if (o)
    json_object_set_double_member (o, key, v);
}

void
nnic_config_list_set_int (NnicConfigList *cl, guint entry, const char *key, gint64 v)
{
  JsonObject *o = builder_entry (cl, entry, key);
  if (o)
    json_object_set_int_member (o, key, v);
}

void
nnic_config_list_set_bool (NnicConfigList *cl, guint entry, const char *key, gboolean v)
{
  JsonObject *o = builder_entry (cl, entry, key);
  if (o)
    json_object_set_boolean_member (o, key, v);
}

void
nnic_config_list_set_string (NnicConfigList *cl, guint entry, const char *key, const char *v)
{
  JsonObject *o = builder_entry (cl, entry, key);
  g_return_if_fail (v != NULL);
  if (o)
    json_object_set_string_member (o, key, v);
}

void
nnic_config_list_add_string (NnicConfigList *cl, guint entry, const char *key, const char *v)
{
  JsonObject *o = builder_entry (cl, entry, key);
  g_return_if_fail (v != NULL);
  if (!o)
    return;
  JsonNode *cur = json_object_get_member (o, key);
  if (!cur || !JSON_NODE_HOLDS_ARRAY (cur)) {
    /* A missing key, or one that was set to a scalar: start the list. */
    json_object_set_array_member (o, key, json_array_new ());
    cur = json_object_get_member (o, key);
  }
  json_array_add_string_element (json_node_get_array (cur), v);
}

/* ---- selection ---- */

static gboolean
list_has (JsonNode *list, const char *s)
{
  JsonArray *a = json_node_get_array (list);
  for (guint j = 0; j < json_array_get_length (a); j++) {
    JsonNode *e = json_array_get_element (a, j);
    if (node_is_string (e) && strcmp (json_node_get_string (e), s) == 0)
      return TRUE;
  }
  return FALSE;
}

static gboolean
entry_matches (JsonObject *o, const char *name, const char *type)
{
  JsonNode *types = json_object_get_member (o, "op_types");
  JsonNode *names = json_object_get_member (o, "op_names");
  if (!types && !names)
    return FALSE; /* refused by the check; selects nothing */
  if (types) {
    if (!JSON_NODE_HOLDS_ARRAY (types))
      return FALSE;
    gboolean hit = list_has (types, type);
    if (!hit && list_has (types, "default"))
      for (guint k = 0; default_op_types[k] && !hit; k++)
        hit = strcmp (default_op_types[k], type) == 0;
    if (!hit)
      return FALSE;
  }
  if (names && (!JSON_NODE_HOLDS_ARRAY (names) || !list_has (names, name)))
    return FALSE;
  return TRUE;
}

int
nnic_config_list_select (const NnicConfigList *cl, const NnicModel *m, guint node)
{
  g_return_val_if_fail (cl != NULL && m != NULL, -1);
  if (node >= nnic_model_n_nodes (m) || is_input_node (m, node))
    return -1;
  const char *name = nnic_model_node_name (m, node), *type = nnic_model_node_type (m, node);
  int found = -1;
  for (guint i = 0; i < json_array_get_length (cl->array); i++) {
    JsonObject *o = nnic_config_list_entry (cl, i);
    if (o && entry_matches (o, name, type))
      found = (int) i;
  }
  if (found < 0)
    return -1;
  JsonNode *ex = json_object_get_member (nnic_config_list_entry (cl, (guint) found), "exclude");
  if (node_is_type (ex, G_TYPE_BOOLEAN) && json_node_get_boolean (ex))
    return -1;
  return found;
}

/* ---- quantizer entries ---- */

guint
nnic_config_entry_quant_types (JsonObject *entry)
{
  g_return_val_if_fail (entry != NULL, 0);
  JsonNode *types = json_object_get_member (entry, "quant_types");
  if (!types || !JSON_NODE_HOLDS_ARRAY (types))
    return 0;
  guint bits = 0;
  JsonArray *a = json_node_get_array (types);
  for (guint j = 0; j < json_array_get_length (a); j++) {
    JsonNode *e = json_array_get_element (a, j);
    int k = node_is_string (e) ? quant_type_index (json_node_get_string (e)) : -1;
    if (k >= 0)
      bits |= quant_type_bits[k];
  }
  return bits;
}

int
nnic_config_entry_quant_bits (JsonObject *entry, NnicQuantType type)
{
  g_return_val_if_fail (entry != NULL, -1);
  const char *tname = NULL;
  for (guint k = 0; k < G_N_ELEMENTS (quant_type_bits); k++)
    if (quant_type_bits[k] == type)
      tname = quant_type_names[k];
  if (!tname)
    return -1;
  JsonNode *bits = json_object_get_member (entry, "quant_bits");
  if (!bits)
    return -1;
  if (JSON_NODE_HOLDS_OBJECT (bits))
    bits = json_object_get_member (json_node_get_object (bits), tname);
  if (!node_is_int (bits))
    return -1;
  gint64 b = json_node_get_int (bits);
  return b >= G_MININT && b <= G_MAXINT ? (int) b : -1;
}
