/* ONNX import: TensorProto — dims, dtypes and data (raw_data, the typed
 * fields, or external data in a file next to the model). Every length is
 * checked against the dims before anything is copied.
 *
 * Messages start with `what` ("initializer 'conv1.weight'"); the caller
 * adds the file and node. */
#include "core/onnx/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef Onnx__TensorProto TP;

const char *
nnic_onnx_dtype_name (int data_type)
{
  static const char *const names[] = {
    "undefined", "float32", "uint8", "int8", "uint16", "int16", "int32", "int64", "string",
    "bool", "float16", "float64", "uint32", "uint64", "complex64", "complex128", "bfloat16",
  };
  if (data_type >= 0 && data_type < (int) G_N_ELEMENTS (names))
    return names[data_type];
  return "an unknown dtype";
}

/* Bytes per element in raw_data, or 0 (string, unknown). */
static size_t
dtype_size (int data_type)
{
  switch (data_type) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
  case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
    return 1;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
    return 2;
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
    return 4;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
  case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64:
    return 8;
  case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128:
    return 16;
  default:
    return 0;
  }
}

/* Elements stored in the typed field that holds this dtype (ONNX's rules:
 * float_data for float32, int32_data for the small integer types and the
 * 16-bit floats, ...); -1 for none. Complex types count two per element. */
static int64_t
typed_count (const TP *t, int64_t *per_element)
{
  *per_element = 1;
  switch (t->data_type) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX64:
    *per_element = 2;
    /* fall through */
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
    return (int64_t) t->n_float_data;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
  case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16:
  case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
    return (int64_t) t->n_int32_data;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    return (int64_t) t->n_int64_data;
  case ONNX__TENSOR_PROTO__DATA_TYPE__COMPLEX128:
    *per_element = 2;
    /* fall through */
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    return (int64_t) t->n_double_data;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    return (int64_t) t->n_uint64_data;
  case ONNX__TENSOR_PROTO__DATA_TYPE__STRING:
    return (int64_t) t->n_string_data;
  default:
    return -1;
  }
}

static gboolean
is_external (const TP *t)
{
  return t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
}

gboolean
nnic_onnx_tensor_shape (const NnicOnnxImport *ctx, const TP *t, const char *what, int *ndim,
                        int64_t shape[NNIC_MAX_DIMS], int64_t *numel, GError **error)
{
  (void) ctx;
  if (t->n_dims > NNIC_MAX_DIMS) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s has %zu dimensions; nnic handles at most %d", what, t->n_dims, NNIC_MAX_DIMS);
    return FALSE;
  }
  int64_t n = 1;
  gboolean too_big = FALSE;
  for (size_t i = 0; i < t->n_dims; i++) {
    if (t->dims[i] < 0) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                   "%s has a negative dimension (%" G_GINT64_FORMAT " at index %zu)", what,
                   t->dims[i], i);
      return FALSE;
    }
    if (t->dims[i] > NNIC_ONNX_MAX_NUMEL || (t->dims[i] != 0 && n > NNIC_ONNX_MAX_NUMEL / t->dims[i]))
      too_big = TRUE;
    else
      n *= t->dims[i];
  }
  if (too_big || n > NNIC_ONNX_MAX_NUMEL) {
    g_autofree char *s = nnic_shape_to_string ((int) t->n_dims, t->dims);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s has dims %s: more than 2^31 elements, not a tensor nnic can hold", what, s);
    return FALSE;
  }
  *ndim = (int) t->n_dims;
  for (size_t i = 0; i < t->n_dims; i++)
    shape[i] = t->dims[i];
  *numel = n;
  return TRUE;
}

/* ---- external data ---- */

typedef struct {
  char *path;
  guint64 offset, length;
} ExternalRef;

static gboolean
parse_u64 (const char *what, const char *key, const char *text, guint64 *out, GError **error)
{
  if (!text || !g_ascii_string_to_unsigned (text, 10, 0, G_MAXINT64, out, NULL)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: external data %s '%s' is not a byte count", what, key, text ? text : "");
    return FALSE;
  }
  return TRUE;
}

/* Where an external tensor's bytes are: location (relative to the model's
 * directory, never outside it), offset and length (checked against the
 * file and `nbytes`). */
static gboolean
external_ref (const NnicOnnxImport *ctx, const TP *t, const char *what, guint64 nbytes,
              ExternalRef *ref, GError **error)
{
  const char *location = NULL, *offset = NULL, *length = NULL;
  for (size_t i = 0; i < t->n_external_data; i++) {
    const Onnx__StringStringEntryProto *e = t->external_data[i];
    if (!e->key)
      continue;
    if (!strcmp (e->key, "location"))
      location = e->value;
    else if (!strcmp (e->key, "offset"))
      offset = e->value;
    else if (!strcmp (e->key, "length"))
      length = e->value;
  }
  if (!location || !*location) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: external data without a 'location'", what);
    return FALSE;
  }
  if (!ctx->base_dir) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s: its data is in an external file ('%s'), which can only be found when the "
                 "model is loaded from a file",
                 what, location);
    return FALSE;
  }
  g_auto (GStrv) parts = g_strsplit_set (location, "/\\", -1);
  gboolean escapes = g_path_is_absolute (location);
  for (guint i = 0; parts[i] && !escapes; i++)
    escapes = !strcmp (parts[i], "..");
  if (escapes) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: external data location '%s' is outside the model's directory", what,
                 location);
    return FALSE;
  }
  ref->offset = 0;
  if (offset && !parse_u64 (what, "offset", offset, &ref->offset, error))
    return FALSE;
  ref->path = g_build_filename (ctx->base_dir, location, NULL);
  GStatBuf st;
  const char *problem = NULL;
  if (g_stat (ref->path, &st) != 0)
    problem = errno == ENOENT ? "does not exist" : g_strerror (errno);
  else if (!S_ISREG (st.st_mode))
    problem = "is not a regular file";
  if (problem) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_IO, "%s: its external data file %s %s", what,
                 ref->path, problem);
    g_clear_pointer (&ref->path, g_free);
    return FALSE;
  }
  guint64 size = (guint64) st.st_size;
  ref->length = ref->offset <= size ? size - ref->offset : 0;
  if (length && !parse_u64 (what, "length", length, &ref->length, error)) {
    g_clear_pointer (&ref->path, g_free);
    return FALSE;
  }
  if (ref->length != nbytes || ref->offset > size || ref->length > size - ref->offset) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: its dims need %" G_GUINT64_FORMAT " bytes, but the external data is %"
                 G_GUINT64_FORMAT " bytes at offset %" G_GUINT64_FORMAT " of %s (%"
                 G_GUINT64_FORMAT " bytes)",
                 what, nbytes, ref->length, ref->offset, ref->path, size);
    g_clear_pointer (&ref->path, g_free);
    return FALSE;
  }
  return TRUE;
}

static gboolean
read_external (const ExternalRef *ref, const char *what, void *dst, GError **error)
{
  int fd = g_open (ref->path, O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) {
    int e = errno;
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_IO, "%s: cannot open its external data %s: %s",
                 what, ref->path, g_strerror (e));
    return FALSE;
  }
  guint64 done = 0;
  while (done < ref->length) {
    ssize_t r = pread (fd, (char *) dst + done, MIN (ref->length - done, (guint64) 1 << 30),
                       (off_t) (ref->offset + done));
    if (r < 0 && errno == EINTR)
      continue;
    if (r <= 0) {
      int e = errno;
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_IO, "%s: cannot read its external data %s: %s",
                   what, ref->path, r == 0 ? "the file is shorter than it was" : g_strerror (e));
      close (fd);
      return FALSE;
    }
    done += (guint64) r;
  }
  close (fd);
  return TRUE;
}

/* ---- data ---- */

/* Checks that the tensor's data (wherever it is) has the length its dims
 * and dtype ask for. */
static gboolean
check_data (const NnicOnnxImport *ctx, const TP *t, const char *what, int64_t numel,
            GError **error)
{
  size_t esize = dtype_size (t->data_type);
  if (is_external (t)) {
    if (esize == 0) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED, "%s: external %s data", what,
                   nnic_onnx_dtype_name (t->data_type));
      return FALSE;
    }
    ExternalRef ref = { 0 };
    if (!external_ref (ctx, t, what, (guint64) numel * esize, &ref, error))
      return FALSE;
    g_free (ref.path);
    return TRUE;
  }
  if (t->has_raw_data) {
    if (esize == 0 || (guint64) t->raw_data.len != (guint64) numel * esize) {
      g_autofree char *s = nnic_shape_to_string ((int) t->n_dims, t->dims);
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                   "%s: %zu bytes of data, but dims %s of %s need %" G_GUINT64_FORMAT, what,
                   t->raw_data.len, s, nnic_onnx_dtype_name (t->data_type),
                   (guint64) numel * esize);
      return FALSE;
    }
    return TRUE;
  }
  int64_t per = 1;
  int64_t n = typed_count (t, &per);
  if (n < 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED, "%s has dtype %s (%d)", what,
                 nnic_onnx_dtype_name (t->data_type), (int) t->data_type);
    return FALSE;
  }
  if (n != numel * per) {
    g_autofree char *s = nnic_shape_to_string ((int) t->n_dims, t->dims);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: %" G_GINT64_FORMAT " values of data, but dims %s need %" G_GINT64_FORMAT,
                 what, n, s, numel * per);
    return FALSE;
  }
  return TRUE;
}

gboolean
nnic_onnx_tensor_check (const NnicOnnxImport *ctx, const TP *t, const char *what, GError **error)
{
  int ndim;
  int64_t shape[NNIC_MAX_DIMS], numel;
  return nnic_onnx_tensor_shape (ctx, t, what, &ndim, shape, &numel, error) &&
         check_data (ctx, t, what, numel, error);
}

static gboolean
check_dtype (const TP *t, const char *what, const char *wanted, int a, int b, GError **error)
{
  if (t->data_type == a || t->data_type == b)
    return TRUE;
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED, "%s is %s; nnic imports %s here", what,
               nnic_onnx_dtype_name (t->data_type), wanted);
  return FALSE;
}

static gboolean
check_numel (const TP *t, const char *what, int64_t numel, GError **error)
{
  int64_t n = nnic_shape_numel ((int) MIN (t->n_dims, (size_t) NNIC_MAX_DIMS), t->dims);
  if (t->n_dims > NNIC_MAX_DIMS || n != numel) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE, "%s has %" G_GINT64_FORMAT
                 " elements, %" G_GINT64_FORMAT " expected", what, n, numel);
    return FALSE;
  }
  return TRUE;
}

gboolean
nnic_onnx_tensor_read_f32 (const NnicOnnxImport *ctx, const TP *t, const char *what, float *dst,
                           int64_t numel, GError **error)
{
  if (!check_dtype (t, what, "float32 weights", ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, -1, error) ||
      !check_numel (t, what, numel, error) || !check_data (ctx, t, what, numel, error))
    return FALSE;
  if (numel == 0)
    return TRUE;
  if (is_external (t)) {
    ExternalRef ref = { 0 };
    if (!external_ref (ctx, t, what, (guint64) numel * 4, &ref, error))
      return FALSE;
    gboolean ok = read_external (&ref, what, dst, error);
    g_free (ref.path);
    if (!ok)
      return FALSE;
  } else if (t->has_raw_data) {
    memcpy (dst, t->raw_data.data, (size_t) numel * 4);
  } else {
    memcpy (dst, t->float_data, (size_t) numel * 4);
    return TRUE; /* typed fields are host order already */
  }
#if G_BYTE_ORDER == G_BIG_ENDIAN
  guint32 *u = (guint32 *) dst;
  for (int64_t i = 0; i < numel; i++)
    u[i] = GUINT32_FROM_LE (u[i]);
#endif
  return TRUE;
}

gboolean
nnic_onnx_tensor_read_i64 (const NnicOnnxImport *ctx, const TP *t, const char *what, int64_t *dst,
                           int64_t numel, GError **error)
{
  if (!check_dtype (t, what, "int64 shapes", ONNX__TENSOR_PROTO__DATA_TYPE__INT64,
                    ONNX__TENSOR_PROTO__DATA_TYPE__INT32, error) ||
      !check_numel (t, what, numel, error) || !check_data (ctx, t, what, numel, error))
    return FALSE;
  if (numel == 0)
    return TRUE;
  gboolean is64 = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
  if (!is_external (t) && !t->has_raw_data) {
    for (int64_t i = 0; i < numel; i++)
      dst[i] = is64 ? t->int64_data[i] : t->int32_data[i];
    return TRUE;
  }
  g_autofree guint8 *buf = NULL;
  const guint8 *bytes = t->raw_data.data;
  if (is_external (t)) {
    ExternalRef ref = { 0 };
    if (!external_ref (ctx, t, what, (guint64) numel * (is64 ? 8 : 4), &ref, error))
      return FALSE;
    buf = g_try_malloc ((gsize) ref.length);
    gboolean ok = buf && read_external (&ref, what, buf, error);
    if (!buf)
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_MEMORY, "%s: out of memory", what);
    g_free (ref.path);
    if (!ok)
      return FALSE;
    bytes = buf;
  }
  for (int64_t i = 0; i < numel; i++) {
    if (is64) {
      guint64 v;
      memcpy (&v, bytes + 8 * i, 8);
      dst[i] = (int64_t) GUINT64_FROM_LE (v);
    } else {
      guint32 v;
      memcpy (&v, bytes + 4 * i, 4);
      dst[i] = (int32_t) GUINT32_FROM_LE (v);
    }
  }
  return TRUE;
}

/* An INT8 or UINT8 tensor's bytes (raw_data, int32_data or external
 * data; int32_data values must be in the dtype's range). */
static gboolean
read_bytes (const NnicOnnxImport *ctx, const TP *t, const char *what, guint8 *dst, int64_t numel,
            GError **error)
{
  if (!check_numel (t, what, numel, error) || !check_data (ctx, t, what, numel, error))
    return FALSE;
  if (numel == 0)
    return TRUE;
  if (is_external (t)) {
    ExternalRef ref = { 0 };
    if (!external_ref (ctx, t, what, (guint64) numel, &ref, error))
      return FALSE;
    gboolean ok = read_external (&ref, what, dst, error);
    g_free (ref.path);
    return ok;
  }
  if (t->has_raw_data) {
    memcpy (dst, t->raw_data.data, (size_t) numel);
    return TRUE;
  }
  gboolean is_signed = t->data_type == ONNX__TENSOR_PROTO__DATA_TYPE__INT8;
  for (int64_t i = 0; i < numel; i++) {
    int32_t v = t->int32_data[i];
    if (is_signed ? v < INT8_MIN || v > INT8_MAX : v < 0 || v > UINT8_MAX) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                   "%s: value %" G_GINT32_FORMAT " at index %" G_GINT64_FORMAT " is out of %s's range",
                   what, v, i, nnic_onnx_dtype_name (t->data_type));
      return FALSE;
    }
    dst[i] = is_signed ? (guint8) (int8_t) v : (guint8) v;
  }
  return TRUE;
}

/* One element of a small constant of any numeric dtype, as a double. */
static double
element (const TP *t, const guint8 *raw, int64_t i)
{
  switch (t->data_type) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: {
    if (!raw)
      return t->float_data[i];
    guint32 u;
    memcpy (&u, raw + 4 * i, 4);
    u = GUINT32_FROM_LE (u);
    float f;
    memcpy (&f, &u, 4);
    return f;
  }
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: {
    if (!raw)
      return t->double_data[i];
    guint64 u;
    memcpy (&u, raw + 8 * i, 8);
    u = GUINT64_FROM_LE (u);
    double d;
    memcpy (&d, &u, 8);
    return d;
  }
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: {
    if (!raw)
      return (double) t->int64_data[i];
    guint64 u;
    memcpy (&u, raw + 8 * i, 8);
    return (double) (int64_t) GUINT64_FROM_LE (u);
  }
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: {
    if (!raw)
      return t->int32_data[i];
    guint32 u;
    memcpy (&u, raw + 4 * i, 4);
    return (int32_t) GUINT32_FROM_LE (u);
  }
  default: /* BOOL */
    return raw ? raw[i] : t->int32_data[i];
  }
}

NnicTensor *
nnic_onnx_tensor_to_nnic (const NnicOnnxImport *ctx, const TP *t, const char *what,
                          GError **error)
{
  int ndim;
  int64_t shape[NNIC_MAX_DIMS], numel;
  if (!nnic_onnx_tensor_shape (ctx, t, what, &ndim, shape, &numel, error))
    return NULL;
  int dt = t->data_type;
  gboolean is_float = dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
  gboolean is_int = dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ||
                    dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
  gboolean is_byte = dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT8 ||
                     dt == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8;
  gboolean small = dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ||
                   dt == ONNX__TENSOR_PROTO__DATA_TYPE__BOOL;
  if (!is_float && !is_int && !is_byte && !small) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s is %s; nnic imports float32, int64, int32, int8 and uint8 constants", what,
                 nnic_onnx_dtype_name (dt));
    return NULL;
  }
  NnicDType nt = is_float || dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE ? NNIC_DTYPE_F32
                 : dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT8             ? NNIC_DTYPE_I8
                 : dt == ONNX__TENSOR_PROTO__DATA_TYPE__UINT8            ? NNIC_DTYPE_U8
                                                                         : NNIC_DTYPE_I64;
  g_autoptr (NnicTensor) out = nnic_tensor_new (nt, ndim, shape, error);
  if (!out)
    return NULL;
  if (is_float)
    return nnic_onnx_tensor_read_f32 (ctx, t, what, out->f32, numel, error) ? g_steal_pointer (&out) : NULL;
  if (is_int)
    return nnic_onnx_tensor_read_i64 (ctx, t, what, out->i64, numel, error) ? g_steal_pointer (&out) : NULL;
  if (is_byte)
    return read_bytes (ctx, t, what, out->u8, numel, error) ? g_steal_pointer (&out) : NULL;
  /* double and bool: small values only (Constant scalars), never external */
  if (!check_data (ctx, t, what, numel, error))
    return NULL;
  if (is_external (t)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED, "%s: external %s data", what,
                 nnic_onnx_dtype_name (dt));
    return NULL;
  }
  const guint8 *raw = t->has_raw_data ? t->raw_data.data : NULL;
  for (int64_t i = 0; i < numel; i++) {
    double v = element (t, raw, i);
    if (out->dtype == NNIC_DTYPE_F32)
      out->f32[i] = (float) v;
    else
      out->i64[i] = (int64_t) v;
  }
  return g_steal_pointer (&out);
}

void
nnic_onnx_tensor_release (NnicOnnxProto *p, TP *t)
{
  ProtobufCAllocator *a = &p->allocator;
  if (t->raw_data.data)
    a->free (a->allocator_data, t->raw_data.data);
  t->raw_data.data = NULL;
  t->raw_data.len = 0;
  if (t->float_data)
    a->free (a->allocator_data, t->float_data);
  t->float_data = NULL;
  t->n_float_data = 0;
  if (t->int32_data)
    a->free (a->allocator_data, t->int32_data);
  t->int32_data = NULL;
  t->n_int32_data = 0;
}
