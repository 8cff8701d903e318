/* NumPy .npy files.
 *
 * Layout: "\x93NUMPY", major and minor version bytes, the header length
 * (u16 little-endian for 1.0, u32 for 2.0 and 3.0), then a Python dict
 * literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
 * padded with spaces and ending in '\n', then the raw data in C order.
 *
 * The dict is parsed by hand: it is a tiny literal grammar (strings,
 * True/False, tuples of integers) and a general Python parser would only
 * widen what a malformed file can do to us.
 */
#include "core/io/file_util.h"
#include <nnic/io.h>
#include <nnic/error.h>

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

static const char npy_magic[6] = { '\x93', 'N', 'U', 'M', 'P', 'Y' };

/* ---- dtypes ---- */

typedef struct {
  const char *descr;
  size_t itemsize; /* in the file */
  NnicDType dtype; /* in memory */
  gboolean from_f64;
  gboolean is_bool;
} NpyDType;

static const NpyDType npy_dtypes[] = {
  { "<f4", 4, NNIC_DTYPE_F32, FALSE, FALSE },
  { "<f8", 8, NNIC_DTYPE_F32, TRUE, FALSE },
  { "<i8", 8, NNIC_DTYPE_I64, FALSE, FALSE },
  { "<i4", 4, NNIC_DTYPE_I32, FALSE, FALSE },
  { "|u1", 1, NNIC_DTYPE_U8, FALSE, FALSE },
  { "|i1", 1, NNIC_DTYPE_I8, FALSE, FALSE },
  { "|b1", 1, NNIC_DTYPE_U8, FALSE, TRUE },
};

static const NpyDType *
lookup_descr (const char *descr)
{
  /* Byte order means nothing for one-byte types; numpy writes '|' but
   * other writers use '<' or '='. */
  char norm[4] = { 0 };
  if (strlen (descr) == 3 && strchr ("<>=|", descr[0]) && descr[2] == '1') {
    memcpy (norm, descr, 3);
    norm[0] = '|';
    descr = norm;
  }
  for (size_t i = 0; i < G_N_ELEMENTS (npy_dtypes); i++)
    if (strcmp (npy_dtypes[i].descr, descr) == 0)
      return &npy_dtypes[i];
  return NULL;
}

static const char *
descr_for (NnicDType dtype)
{
  switch (dtype) {
  case NNIC_DTYPE_F32: return "<f4";
  case NNIC_DTYPE_I64: return "<i8";
  case NNIC_DTYPE_I32: return "<i4";
  case NNIC_DTYPE_U8: return "|u1";
  case NNIC_DTYPE_I8: return "|i1";
  }
  return NULL;
}

/* ---- the header dict ---- */

typedef struct {
  const char *start;
  const char *p;
  const char *end;
  char *why; /* what went wrong, for the error message */
} Cursor;

typedef struct {
  char *descr;
  gboolean fortran_order;
  int ndim;
  int64_t shape[NNIC_MAX_DIMS];
  guint seen; /* bit per key: descr 1, fortran_order 2, shape 4 */
} NpyHeader;

static gboolean G_GNUC_PRINTF (2, 3)
fail (Cursor *c, const char *fmt, ...)
{
  if (!c->why) {
    va_list ap;
    va_start (ap, fmt);
    c->why = g_strdup_vprintf (fmt, ap);
    va_end (ap);
  }
  return FALSE;
}

static void
skip_ws (Cursor *c)
{
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    c->p++;
}

static gboolean
expect (Cursor *c, char ch)
{
  skip_ws (c);
  if (c->p >= c->end || *c->p != ch)
    return fail (c, "expected '%c' at byte %td of the header", ch, c->p - c->start);
  c->p++;
  return TRUE;
}

static gboolean
peek (Cursor *c, char ch)
{
  skip_ws (c);
  return c->p < c->end && *c->p == ch;
}

/* A quoted string without escapes (numpy never writes any). */
static gboolean
parse_string (Cursor *c, char **out)
{
  skip_ws (c);
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
    return fail (c, "expected a quoted string");
  char q = *c->p++;
  const char *start = c->p;
  while (c->p < c->end && *c->p != q) {
    if (*c->p == '\\' || *c->p == '\0')
      return fail (c, "unsupported character in a string");
    c->p++;
  }
  if (c->p >= c->end)
    return fail (c, "unterminated string");
  *out = g_strndup (start, (gsize) (c->p - start));
  c->p++;
  return TRUE;
}

static gboolean
parse_bool (Cursor *c, gboolean *out)
{
  skip_ws (c);
  size_t left = (size_t) (c->end - c->p);
  if (left >= 4 && memcmp (c->p, "True", 4) == 0) {
    c->p += 4;
    *out = TRUE;
    return TRUE;
  }
  if (left >= 5 && memcmp (c->p, "False", 5) == 0) {
    c->p += 5;
    *out = FALSE;
    return TRUE;
  }
  return fail (c, "expected True or False");
}

static gboolean
parse_dim (Cursor *c, int64_t *out)
{
  skip_ws (c);
  if (c->p < c->end && *c->p == '-')
    return fail (c, "negative dimension in 'shape'");
  if (c->p >= c->end || !g_ascii_isdigit (*c->p))
    return fail (c, "expected an integer in 'shape'");
  int64_t v = 0;
  while (c->p < c->end && g_ascii_isdigit (*c->p)) {
    int d = *c->p++ - '0';
    if (v > (INT64_MAX - d) / 10)
      return fail (c, "dimension in 'shape' too large");
    v = v * 10 + d;
  }
  if (c->p < c->end && *c->p == 'L') /* written by Python 2 */
    c->p++;
  *out = v;
  return TRUE;
}

/* "()", "(3,)", "(2, 3)" */
static gboolean
parse_shape (Cursor *c, NpyHeader *h)
{
  if (!expect (c, '('))
    return FALSE;
  h->ndim = 0;
  while (!peek (c, ')')) {
    if (h->ndim == NNIC_MAX_DIMS)
      return fail (c, "more than %d dimensions", NNIC_MAX_DIMS);
    if (!parse_dim (c, &h->shape[h->ndim]))
      return FALSE;
    h->ndim++;
    if (peek (c, ','))
      c->p++;
    else if (!peek (c, ')'))
      return fail (c, "expected ',' or ')' in 'shape'");
  }
  c->p++;
  return TRUE;
}

static gboolean
parse_entry (Cursor *c, NpyHeader *h)
{
  g_autofree char *key = NULL;
  if (!parse_string (c, &key) || !expect (c, ':'))
    return FALSE;
  guint bit = strcmp (key, "descr") == 0           ? 1
              : strcmp (key, "fortran_order") == 0 ? 2
              : strcmp (key, "shape") == 0         ? 4
                                                   : 0;
  if (bit == 0)
    return fail (c, "unknown key '%s'", key);
  if (h->seen & bit)
    return fail (c, "key '%s' appears twice", key);
  h->seen |= bit;
  if (bit == 1) {
    skip_ws (c);
    if (c->p < c->end && *c->p == '[')
      return fail (c, "structured dtypes are not supported");
    return parse_string (c, &h->descr);
  }
  if (bit == 2)
    return parse_bool (c, &h->fortran_order);
  return parse_shape (c, h);
}

static gboolean
parse_dict (Cursor *c, NpyHeader *h)
{
  if (!expect (c, '{'))
    return FALSE;
  while (!peek (c, '}')) {
    if (!parse_entry (c, h))
      return FALSE;
    if (peek (c, ','))
      c->p++;
    else if (!peek (c, '}'))
      return fail (c, "expected ',' or '}'");
  }
  c->p++;
  skip_ws (c);
  if (c->p != c->end)
    return fail (c, "unexpected text after the dict");
  if (h->seen != 7)
    return fail (c, "missing key '%s'",
                 !(h->seen & 1) ? "descr" : !(h->seen & 2) ? "fortran_order" : "shape");
  return TRUE;
}

/* ---- reading ---- */

/* Locates the header dict; returns the data offset or 0 on error. */
static size_t
read_preamble (const char *path, const guint8 *b, size_t len, const char **header,
               size_t *header_len, GError **error)
{
  if (len < 10 || memcmp (b, npy_magic, 6) != 0) {
    nnic_format_error (error, path, "not a .npy file (bad magic)");
    return 0;
  }
  guint major = b[6];
  size_t start, hlen;
  if (major == 1) {
    hlen = (size_t) b[8] | (size_t) b[9] << 8;
    start = 10;
  } else if (major == 2 || major == 3) {
    if (len < 12) {
      nnic_format_error (error, path, "truncated header");
      return 0;
    }
    hlen = (size_t) b[8] | (size_t) b[9] << 8 | (size_t) b[10] << 16 | (size_t) b[11] << 24;
    start = 12;
  } else {
    nnic_format_error (error, path, "unsupported .npy version %u.%u", major, b[7]);
    return 0;
  }
  if (hlen > len - start) {
    nnic_format_error (error, path, "truncated header (%zu bytes announced, %zu in the file)", hlen,
                  len - start);
    return 0;
  }
  *header = (const char *) b + start;
  *header_len = hlen;
  return start + hlen;
}

static gboolean
check_header (const char *path, const NpyHeader *h, const NpyDType **dt, GError **error)
{
  if (h->fortran_order) {
    nnic_format_error (error, path, "Fortran-order arrays are not supported (save with C order)");
    return FALSE;
  }
  *dt = lookup_descr (h->descr);
  if (*dt)
    return TRUE;
  if (h->descr[0] == '>')
    nnic_format_error (error, path, "big-endian data ('%s') is not supported", h->descr);
  else
    nnic_format_error (error, path, "unsupported dtype '%s' (nnic reads <f4, <f8, <i8, <i4, |u1, |i1, |b1)",
                  h->descr);
  return FALSE;
}

static void
decode (NnicTensor *t, const guint8 *src, const NpyDType *dt)
{
  if (dt->from_f64) {
    for (int64_t i = 0; i < t->numel; i++) {
      guint64 bits;
      double x;
      memcpy (&bits, src + i * 8, 8);
      bits = GUINT64_FROM_LE (bits);
      memcpy (&x, &bits, 8);
      /* Out of float's range: infinity, not the undefined plain cast. */
      t->f32[i] = x > FLT_MAX ? INFINITY : x < -FLT_MAX ? -INFINITY : (float) x;
    }
    return;
  }
  memcpy (t->data, src, (size_t) t->numel * dt->itemsize);
  if (dt->is_bool)
    for (int64_t i = 0; i < t->numel; i++)
      t->u8[i] = t->u8[i] != 0;
#if G_BYTE_ORDER == G_BIG_ENDIAN
  for (int64_t i = 0; i < t->numel; i++) {
    guint8 *p = t->u8 + i * dt->itemsize;
    for (size_t a = 0, b = dt->itemsize - 1; a < b; a++, b--) {
      guint8 tmp = p[a];
      p[a] = p[b];
      p[b] = tmp;
    }
  }
#endif
}

static NnicTensor *
parse_npy (const char *path, const guint8 *b, size_t len, GError **error)
{
  const char *text;
  size_t text_len;
  size_t data_off = read_preamble (path, b, len, &text, &text_len, error);
  if (!data_off)
    return NULL;

  NpyHeader h = { 0 };
  Cursor c = { text, text, text + text_len, NULL };
  gboolean ok = parse_dict (&c, &h);
  g_autofree char *descr = h.descr;
  g_autofree char *why = c.why;
  if (!ok) {
    nnic_format_error (error, path, "malformed header: %s", why);
    return NULL;
  }
  const NpyDType *dt;
  if (!check_header (path, &h, &dt, error))
    return NULL;

  g_autofree char *shape_s = nnic_shape_to_string (h.ndim, h.shape);
  int64_t numel = nnic_shape_numel (h.ndim, h.shape);
  if (numel < 0 || numel > INT64_MAX / (int64_t) dt->itemsize) {
    nnic_format_error (error, path, "shape %s is too large", shape_s);
    return NULL;
  }
  /* Checked against the file before allocating anything. */
  uint64_t need = (uint64_t) numel * dt->itemsize;
  uint64_t have = len - data_off;
  if (need != have) {
    nnic_format_error (error, path, "%s data: shape %s of '%s' needs %" G_GUINT64_FORMAT
                  " bytes, the file has %" G_GUINT64_FORMAT,
                  need > have ? "truncated" : "too much", shape_s, h.descr, need, have);
    return NULL;
  }
  GError *local = NULL;
  NnicTensor *t = nnic_tensor_new (dt->dtype, h.ndim, h.shape, &local);
  if (!t) {
    g_propagate_prefixed_error (error, local, "%s: ", path);
    return NULL;
  }
  decode (t, b + data_off, dt);
  return t;
}

NnicTensor *
nnic_npy_load (const char *path, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  GMappedFile *mf = nnic_file_map (path, error);
  if (!mf)
    return NULL;
  NnicTensor *t = parse_npy (path, (const guint8 *) g_mapped_file_get_contents (mf),
                             g_mapped_file_get_length (mf), error);
  g_mapped_file_unref (mf);
  return t;
}

/* ---- writing ---- */

/* "()", "(3,)", "(2, 3)": Python's repr of a tuple. */
static void
append_shape (GString *s, const NnicTensor *t)
{
  g_string_append_c (s, '(');
  for (int i = 0; i < t->ndim; i++)
    g_string_append_printf (s, i ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, t->shape[i]);
  if (t->ndim == 1)
    g_string_append_c (s, ',');
  g_string_append_c (s, ')');
}

gboolean
nnic_npy_save (const char *path, const NnicTensor *t, GError **error)
{
  g_return_val_if_fail (path != NULL && t != NULL, FALSE);
  const char *descr = descr_for (t->dtype);
  if (!descr) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: unsupported dtype %d", path,
                 (int) t->dtype);
    return FALSE;
  }
  g_autoptr (GString) s = g_string_new (NULL);
  g_string_append_len (s, npy_magic, 6);
  g_string_append_len (s, "\x01\x00\0\0", 4); /* version 1.0, length patched below */
  g_string_append_printf (s, "{'descr': '%s', 'fortran_order': False, 'shape': ", descr);
  append_shape (s, t);
  g_string_append (s, ", }");
  /* Padding exactly as numpy.save does, so nnic writes the same bytes:
   * room for the first dimension to grow to 21 digits, then spaces up to a
   * 64-byte boundary for the data (a whole 64 more if already aligned). */
  if (t->ndim > 0) {
    g_autofree char *dim0 = g_strdup_printf ("%" G_GINT64_FORMAT, t->shape[0]);
    for (size_t n = strlen (dim0); n < 21; n++)
      g_string_append_c (s, ' ');
  }
  size_t pad = 64 - (s->len + 1) % 64;
  for (size_t i = 0; i < pad; i++)
    g_string_append_c (s, ' ');
  g_string_append_c (s, '\n');
  size_t hlen = s->len - 10; /* < 400: fits the u16 of version 1.0 */
  s->str[8] = (char) (hlen & 0xff);
  s->str[9] = (char) (hlen >> 8);

  size_t nbytes = nnic_tensor_nbytes (t);
  size_t off = s->len;
  g_string_set_size (s, off + nbytes);
  if (nbytes)
    memcpy (s->str + off, t->data, nbytes);
#if G_BYTE_ORDER == G_BIG_ENDIAN
  size_t isz = nnic_dtype_size (t->dtype);
  for (int64_t i = 0; i < t->numel; i++) {
    char *p = s->str + off + i * isz;
    for (size_t a = 0, b = isz - 1; a < b; a++, b--) {
      char tmp = p[a];
      p[a] = p[b];
      p[b] = tmp;
    }
  }
#endif
  return nnic_write_file_atomic (path, s->str, s->len, error);
}
