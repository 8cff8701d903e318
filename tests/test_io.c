/* Files: safetensors, .npy, atomic writes, model state dicts. */
#include "testutil.h"

#include <glib/gstdio.h>
#include <math.h>
#include <string.h>

/* ---- helpers ---- */

static NnicTensor *
tensor_of (NnicDType dtype, int ndim, const int64_t *shape, const void *values)
{
  GError *err = NULL;
  NnicTensor *t = nnic_tensor_new (dtype, ndim, shape, &err);
  NNIC_ASSERT_NO_ERROR (err);
  if (values)
    memcpy (t->data, values, nnic_tensor_nbytes (t));
  return t;
}

static void
add (NnicTensorDict *d, const char *name, NnicTensor *t)
{
  GError *err = NULL;
  ck_assert (nnic_tensor_dict_add (d, name, t, &err));
  NNIC_ASSERT_NO_ERROR (err);
}

static void
assert_tensor_equal (const NnicTensor *a, const NnicTensor *b)
{
  ck_assert_int_eq (a->dtype, b->dtype);
  ck_assert_int_eq (a->ndim, b->ndim);
  for (int i = 0; i < a->ndim; i++)
    ck_assert_int_eq (a->shape[i], b->shape[i]);
  ck_assert_int_eq (a->numel, b->numel);
  ck_assert (memcmp (a->data, b->data, nnic_tensor_nbytes (a)) == 0);
}

static GBytes *
read_file (const char *path)
{
  char *contents = NULL;
  gsize len = 0;
  GError *err = NULL;
  ck_assert_msg (g_file_get_contents (path, &contents, &len, &err), "cannot read %s: %s", path,
                 err ? err->message : "");
  return g_bytes_new_take (contents, len);
}

/* A safetensors file from a header string and a data section. */
static char *
write_safetensors (const char *dir, const char *name, const char *header, const void *data,
                   size_t data_len)
{
  size_t hlen = strlen (header);
  GByteArray *b = g_byte_array_new ();
  guint64 le = GUINT64_TO_LE ((guint64) hlen);
  g_byte_array_append (b, (const guint8 *) &le, 8);
  g_byte_array_append (b, (const guint8 *) header, (guint) hlen);
  if (data_len)
    g_byte_array_append (b, data, (guint) data_len);
  char *path = nnic_test_write (dir, name, b->data, b->len);
  g_byte_array_unref (b);
  return path;
}

/* A dict with one tensor of each dtype nnic writes, a 0-d and an empty one. */
static NnicTensorDict *
sample_dict (void)
{
  NnicTensorDict *d = nnic_tensor_dict_new ();
  const float w[6] = { 0.5f, -1.0f, 2.0f, 3.25f, -4.5f, 1e-7f };
  const int64_t steps[2] = { 7, -9000000000ll };
  const int32_t idx[3] = { -1, 0, 2147483647 };
  const uint8_t mask[4] = { 0, 1, 255, 7 };
  const int8_t q[4] = { -128, -1, 0, 127 };
  const float scale = 0.125f;
  /* Deliberately not sorted: the file keeps dict order. */
  add (d, "zeta.weight", tensor_of (NNIC_DTYPE_F32, 2, (int64_t[]){ 2, 3 }, w));
  add (d, "alpha.steps", tensor_of (NNIC_DTYPE_I64, 1, (int64_t[]){ 2 }, steps));
  add (d, "idx", tensor_of (NNIC_DTYPE_I32, 1, (int64_t[]){ 3 }, idx));
  add (d, "mask", tensor_of (NNIC_DTYPE_U8, 2, (int64_t[]){ 2, 2 }, mask));
  add (d, "q", tensor_of (NNIC_DTYPE_I8, 3, (int64_t[]){ 1, 2, 2 }, q));
  add (d, "scale", tensor_of (NNIC_DTYPE_F32, 0, NULL, &scale));
  add (d, "empty", tensor_of (NNIC_DTYPE_F32, 2, (int64_t[]){ 0, 4 }, NULL));
  g_hash_table_insert (d->metadata, g_strdup ("format"), g_strdup ("pt"));
  g_hash_table_insert (d->metadata, g_strdup ("note"), g_strdup ("quote \" and \\ ok"));
  return d;
}

static void
assert_dicts_equal (const NnicTensorDict *a, const NnicTensorDict *b)
{
  ck_assert_uint_eq (nnic_tensor_dict_len (a), nnic_tensor_dict_len (b));
  for (guint i = 0; i < nnic_tensor_dict_len (a); i++) {
    ck_assert_str_eq (g_ptr_array_index (a->names, i), g_ptr_array_index (b->names, i));
    assert_tensor_equal (g_ptr_array_index (a->tensors, i), g_ptr_array_index (b->tensors, i));
  }
  ck_assert_uint_eq (g_hash_table_size (a->metadata), g_hash_table_size (b->metadata));
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, a->metadata);
  while (g_hash_table_iter_next (&it, &k, &v)) {
    const char *other = g_hash_table_lookup (b->metadata, k);
    ck_assert_ptr_nonnull (other);
    ck_assert_str_eq (v, other);
  }
}

/* ---- tensor dicts ---- */

START_TEST (test_dict_basics)
{
  g_autoptr (NnicTensorDict) d = nnic_tensor_dict_new ();
  ck_assert_uint_eq (nnic_tensor_dict_len (d), 0);
  NnicTensor *t = nnic_tensor_new_f32 (NULL, 1, (int64_t) 3);
  add (d, "a", t);
  ck_assert_ptr_eq (nnic_tensor_dict_get (d, "a"), t);
  ck_assert_ptr_null (nnic_tensor_dict_get (d, "b"));
  GError *err = NULL;
  ck_assert (!nnic_tensor_dict_add (d, "a", nnic_tensor_new_f32 (NULL, 0), &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "'a'");
  g_clear_error (&err);
  ck_assert_uint_eq (nnic_tensor_dict_len (d), 1);
}
END_TEST

/* ---- safetensors ---- */

START_TEST (test_safetensors_roundtrip)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "w.safetensors", NULL);
  g_autoptr (NnicTensorDict) d = sample_dict ();
  GError *err = NULL;
  ck_assert (nnic_safetensors_save (path, d, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensorDict) back = nnic_safetensors_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  assert_dicts_equal (d, back);

  /* The layout Python's safetensors writes: metadata first, header padded
   * with spaces to 8 bytes, contiguous offsets. */
  g_autoptr (GBytes) bytes = read_file (path);
  const char *b = g_bytes_get_data (bytes, NULL);
  guint64 hlen;
  memcpy (&hlen, b, 8);
  hlen = GUINT64_FROM_LE (hlen);
  ck_assert_uint_eq (hlen % 8, 0);
  ck_assert (strncmp (b + 8, "{\"__metadata__\":{\"format\":\"pt\",", 31) == 0);
  ck_assert (strstr (b + 8, "\"zeta.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"));
  ck_assert (strstr (b + 8, "\"alpha.steps\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[24,40]}"));
  ck_assert (strstr (b + 8, "\"scale\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\""));
  ck_assert_uint_eq (g_bytes_get_size (bytes), 8 + hlen + 24 + 16 + 12 + 4 + 4 + 4 + 0);
}
END_TEST

START_TEST (test_safetensors_no_metadata)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "plain.safetensors", NULL);
  g_autoptr (NnicTensorDict) d = nnic_tensor_dict_new ();
  GError *err = NULL;
  /* An empty dict is a valid file too. */
  ck_assert (nnic_safetensors_save (path, d, &err));
  g_autoptr (NnicTensorDict) e = nnic_safetensors_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_tensor_dict_len (e), 0);

  add (d, "x", nnic_tensor_new_f32 (NULL, 1, (int64_t) 2));
  ck_assert (nnic_safetensors_save (path, d, &err));
  g_autoptr (GBytes) bytes = read_file (path);
  ck_assert (strstr ((const char *) g_bytes_get_data (bytes, NULL) + 8, "__metadata__") == NULL);
}
END_TEST

START_TEST (test_safetensors_reject_on_save)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "bad.safetensors", NULL);
  g_autoptr (NnicTensorDict) d = nnic_tensor_dict_new ();
  add (d, "__metadata__", nnic_tensor_new_f32 (NULL, 1, (int64_t) 2));
  GError *err = NULL;
  ck_assert (!nnic_safetensors_save (path, d, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "__metadata__");
  g_clear_error (&err);
  ck_assert (!g_file_test (path, G_FILE_TEST_EXISTS));
}
END_TEST

START_TEST (test_safetensors_converted_dtypes)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  /* F16: 1, -2, inf, the smallest subnormal 2^-24, 65504 (max), -0.
   * BF16: 1, -3. F64: 0.5, 1e300 (beyond float: inf), -1e-300 (to -0). */
  const guint16 f16[6] = { 0x3c00, 0xc000, 0x7c00, 0x0001, 0x7bff, 0x8000 };
  const guint16 bf16[2] = { 0x3f80, 0xc040 };
  const double f64[3] = { 0.5, 1e300, -1e-300 };
  guint8 data[12 + 4 + 24];
  memcpy (data, f16, 12);
  memcpy (data + 12, bf16, 4);
  memcpy (data + 16, f64, 24);
  g_autofree char *path = write_safetensors (
    dir, "half.safetensors",
    "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]},"
    "\"d\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[16,40]}}",
    data, sizeof data);
  GError *err = NULL;
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicTensor *h = nnic_tensor_dict_get (d, "h");
  NnicTensor *b = nnic_tensor_dict_get (d, "b");
  NnicTensor *x = nnic_tensor_dict_get (d, "d");
  ck_assert_int_eq (h->dtype, NNIC_DTYPE_F32);
  ck_assert_int_eq (h->ndim, 2);
  ck_assert_float_eq (h->f32[0], 1.0f);
  ck_assert_float_eq (h->f32[1], -2.0f);
  ck_assert (isinf (h->f32[2]) && h->f32[2] > 0);
  ck_assert_float_eq (h->f32[3], ldexpf (1.0f, -24));
  ck_assert_float_eq (h->f32[4], 65504.0f);
  ck_assert (h->f32[5] == 0.0f && signbit (h->f32[5]));
  ck_assert_float_eq (b->f32[0], 1.0f);
  ck_assert_float_eq (b->f32[1], -3.0f);
  ck_assert_int_eq (x->dtype, NNIC_DTYPE_F32);
  ck_assert_float_eq (x->f32[0], 0.5f);
  ck_assert (isinf (x->f32[1]));
  ck_assert (x->f32[2] == 0.0f);
  /* File order, not sorted. */
  ck_assert_str_eq (g_ptr_array_index (d->names, 0), "h");
  ck_assert_str_eq (g_ptr_array_index (d->names, 2), "d");
}
END_TEST

START_TEST (test_safetensors_f16_nan_and_subnormals)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  /* NaN; the largest subnormal (1023 * 2^-24); the smallest normal 2^-14. */
  const guint16 f16[3] = { 0x7e00, 0x03ff, 0x0400 };
  g_autofree char *path = write_safetensors (
    dir, "nan.safetensors", "{\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,6]}}",
    f16, sizeof f16);
  GError *err = NULL;
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicTensor *h = nnic_tensor_dict_get (d, "h");
  ck_assert (isnan (h->f32[0]));
  ck_assert_float_eq (h->f32[1], 1023.0f * ldexpf (1.0f, -24));
  ck_assert_float_eq (h->f32[2], ldexpf (1.0f, -14));
}
END_TEST

START_TEST (test_safetensors_overlap_and_bool)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  /* Two tensors over the same bytes are readable (each is copied). */
  const guint8 data[4] = { 0, 1, 1, 0 };
  g_autofree char *path = write_safetensors (
    dir, "overlap.safetensors",
    "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
    "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2,2],\"data_offsets\":[0,4]},"
    "\"__metadata__\":{\"k\":\"v\"}}   ",
    data, sizeof data);
  GError *err = NULL;
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_tensor_dict_len (d), 2);
  ck_assert_int_eq (nnic_tensor_dict_get (d, "b")->dtype, NNIC_DTYPE_U8);
  ck_assert_int_eq (nnic_tensor_dict_get (d, "b")->u8[1], 1);
  ck_assert_str_eq (g_hash_table_lookup (d->metadata, "k"), "v");
}
END_TEST

typedef struct {
  const char *header;
  size_t data_len;
  const char *needle;
} BadHeader;

static const BadHeader bad_headers[] = {
  { "{\"a\": [1, 2", 0, "not valid JSON" },
  { "[1, 2]", 0, "not a UTF-8 JSON object" },
  { "", 0, "not a UTF-8 JSON object" },
  { "{\"a\":{\"dtype\":\"C64\",\"shape\":[1],\"data_offsets\":[0,8]}}", 8, "unsupported dtype 'C64'" },
  { "{\"a\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'dtype'" },
  { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4, "needs 8 bytes" },
  { "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4,
    "data offsets [0, 8) exceed the data section (4 bytes)" },
  { "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4, "non-negative" },
  { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4, "non-negative" },
  { "{\"a\":{\"dtype\":\"F32\",\"shape\":\"4\",\"data_offsets\":[0,4]}}", 4, "'shape'" },
  { "{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
    "\"data_offsets\":[0,4]}}", 4, "too large" },
  /* 2^40 elements: plausible numbers, but far beyond the file. */
  { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776],\"data_offsets\":[0,4398046511104]}}", 4,
    "exceed the data section" },
  { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,18446744073709551615]}}", 4,
    "data_offsets" },
  { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "data_offsets" },
  { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "data_offsets" },
  { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
    "9 dimensions" },
  { "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
    "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "'a' twice" },
  { "{\"a\":{\"dtype\":\"F32\",\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
    "'dtype' twice" },
  { "{\"a\":[1]}", 0, "not an object" },
  { "{\"__metadata__\":{\"k\":1}}", 0, "'k' is not a string" },
  { "{\"__metadata__\":[]}", 0, "'__metadata__' is not an object" },
};

START_TEST (test_safetensors_malformed_header)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  const BadHeader *c = &bad_headers[_i];
  g_autofree char *name = g_strdup_printf ("bad%d.safetensors", _i);
  guint8 zeros[8] = { 0 };
  g_autofree char *path = write_safetensors (dir, name, c->header, zeros, c->data_len);
  GError *err = NULL;
  NnicTensorDict *d = nnic_safetensors_load (path, &err);
  ck_assert_msg (d == NULL, "case %d loaded", _i);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, c->needle);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, name);
  g_clear_error (&err);
}
END_TEST

START_TEST (test_safetensors_truncated)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  GError *err = NULL;

  g_autofree char *empty = nnic_test_write (dir, "empty.safetensors", "", 0);
  ck_assert_ptr_null (nnic_safetensors_load (empty, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "empty.safetensors: 0 bytes is too short");
  g_clear_error (&err);

  g_autofree char *tiny = nnic_test_write (dir, "tiny.safetensors", "\x10\0\0\0\0", 5);
  ck_assert_ptr_null (nnic_safetensors_load (tiny, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "tiny.safetensors");
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "too short");
  g_clear_error (&err);

  /* Header length 100, but only 12 bytes follow. */
  guint8 b[20] = { 100 };
  memcpy (b + 8, "{\"a\":1}     ", 12);
  g_autofree char *cut = nnic_test_write (dir, "cut.safetensors", b, sizeof b);
  ck_assert_ptr_null (nnic_safetensors_load (cut, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "cut.safetensors: header length 100 exceeds the file size (20 bytes)");
  g_clear_error (&err);

  /* 2^62: must fail at once, without trying to allocate it. */
  guint64 huge = GUINT64_TO_LE ((guint64) 1 << 62);
  memcpy (b, &huge, 8);
  g_autofree char *absurd = nnic_test_write (dir, "absurd.safetensors", b, sizeof b);
  ck_assert_ptr_null (nnic_safetensors_load (absurd, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "absurd.safetensors: header length 4611686018427387904");
  g_clear_error (&err);

  /* A valid file cut short in its data section. */
  g_autoptr (NnicTensorDict) d = sample_dict ();
  g_autofree char *full = g_build_filename (dir, "full.safetensors", NULL);
  ck_assert (nnic_safetensors_save (full, d, &err));
  g_autoptr (GBytes) bytes = read_file (full);
  g_autofree char *part = nnic_test_write (dir, "part.safetensors", g_bytes_get_data (bytes, NULL),
                                           g_bytes_get_size (bytes) - 3);
  ck_assert_ptr_null (nnic_safetensors_load (part, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "exceed the data section");
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "part.safetensors");
  g_clear_error (&err);
}
END_TEST

START_TEST (test_safetensors_missing_file)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "nope.safetensors", NULL);
  GError *err = NULL;
  ck_assert_ptr_null (nnic_safetensors_load (path, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, "nope.safetensors");
  g_clear_error (&err);
}
END_TEST

/* ---- fixtures shared with Python (tests/safetensors_roundtrip.py) ---- */

/* What tests/fixtures/nnic_written.safetensors holds; the Python script
 * checks the same values. */
static NnicTensorDict *
fixture_dict (void)
{
  NnicTensorDict *d = nnic_tensor_dict_new ();
  const float w[6] = { 0.5f, -1.0f, 2.0f, 3.25f, -4.5f, 100.0f };
  const int64_t steps[2] = { 7, -9000000000ll };
  const float scale = 0.125f;
  add (d, "layer.weight", tensor_of (NNIC_DTYPE_F32, 2, (int64_t[]){ 2, 3 }, w));
  add (d, "layer.steps", tensor_of (NNIC_DTYPE_I64, 1, (int64_t[]){ 2 }, steps));
  add (d, "scale", tensor_of (NNIC_DTYPE_F32, 0, NULL, &scale));
  g_hash_table_insert (d->metadata, g_strdup ("format"), g_strdup ("pt"));
  g_hash_table_insert (d->metadata, g_strdup ("producer"), g_strdup ("nnic-test"));
  return d;
}

START_TEST (test_fixture_nnic_written)
{
  g_autofree char *fixture = g_build_filename (NNIC_TEST_FIXTURES, "nnic_written.safetensors", NULL);
  g_autoptr (NnicTensorDict) d = fixture_dict ();
  GError *err = NULL;
  /* NNIC_REGENERATE_FIXTURES=1 rewrites the fixture (then review the diff). */
  if (g_getenv ("NNIC_REGENERATE_FIXTURES")) {
    ck_assert (nnic_safetensors_save (fixture, d, &err));
    NNIC_ASSERT_NO_ERROR (err);
  }
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "again.safetensors", NULL);
  ck_assert (nnic_safetensors_save (path, d, &err));
  NNIC_ASSERT_NO_ERROR (err);
  /* nnic still writes exactly the bytes Python was checked against. */
  g_autoptr (GBytes) want = read_file (fixture);
  g_autoptr (GBytes) got = read_file (path);
  ck_assert_msg (g_bytes_equal (want, got), "nnic no longer writes %s byte for byte", fixture);
}
END_TEST

START_TEST (test_fixture_python_written)
{
  g_autofree char *fixture = g_build_filename (NNIC_TEST_FIXTURES, "python_written.safetensors", NULL);
  GError *err = NULL;
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (fixture, &err);
  NNIC_ASSERT_NO_ERROR (err);
  /* Python's layout: by dtype alignment, then by name. */
  const char *order[] = { "counts", "a.weight", "b.bias", "half", "flags" };
  ck_assert_uint_eq (nnic_tensor_dict_len (d), G_N_ELEMENTS (order));
  for (guint i = 0; i < G_N_ELEMENTS (order); i++)
    ck_assert_str_eq (g_ptr_array_index (d->names, i), order[i]);
  ck_assert_str_eq (g_hash_table_lookup (d->metadata, "format"), "np");

  NnicTensor *counts = nnic_tensor_dict_get (d, "counts");
  ck_assert_int_eq (counts->dtype, NNIC_DTYPE_I64);
  ck_assert_int_eq (counts->i64[0], 1);
  ck_assert_int_eq (counts->i64[1], -2);
  ck_assert_int_eq (counts->i64[2], 3000000000ll);
  NnicTensor *w = nnic_tensor_dict_get (d, "a.weight");
  ck_assert_int_eq (w->ndim, 2);
  ck_assert_int_eq (w->shape[0], 2);
  ck_assert_int_eq (w->shape[1], 2);
  for (int i = 0; i < 4; i++)
    ck_assert_float_eq (w->f32[i], (float) (i + 1));
  NnicTensor *bias = nnic_tensor_dict_get (d, "b.bias");
  ck_assert_float_eq (bias->f32[0], 1.5f);
  ck_assert_float_eq (bias->f32[1], -2.5f);
  ck_assert_float_eq (bias->f32[2], 0.0f);
  NnicTensor *half = nnic_tensor_dict_get (d, "half");
  ck_assert_int_eq (half->dtype, NNIC_DTYPE_F32);
  ck_assert_float_eq (half->f32[0], 1.0f);
  ck_assert_float_eq (half->f32[1], -0.5f);
  NnicTensor *flags = nnic_tensor_dict_get (d, "flags");
  ck_assert_int_eq (flags->dtype, NNIC_DTYPE_U8);
  ck_assert_int_eq (flags->u8[2], 255);
}
END_TEST

/* ---- atomic writes ---- */

static int
count_entries (const char *dir)
{
  g_autoptr (GDir) d = g_dir_open (dir, 0, NULL);
  int n = 0;
  while (g_dir_read_name (d))
    n++;
  return n;
}

START_TEST (test_atomic_missing_dir)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "no", "such", "dir", "w.safetensors", NULL);
  g_autoptr (NnicTensorDict) d = sample_dict ();
  GError *err = NULL;
  ck_assert (!nnic_safetensors_save (path, d, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, path);
  g_clear_error (&err);
  ck_assert (!g_file_test (path, G_FILE_TEST_EXISTS));
  ck_assert_int_eq (count_entries (dir), 0);
}
END_TEST

START_TEST (test_atomic_replace)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = nnic_test_write (dir, "out.bin", "old contents", 12);
  GError *err = NULL;
  ck_assert (nnic_write_file_atomic (path, "new", 3, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (GBytes) b = read_file (path);
  ck_assert_uint_eq (g_bytes_get_size (b), 3);
  ck_assert (memcmp (g_bytes_get_data (b, NULL), "new", 3) == 0);
  /* No temporary file left behind. */
  ck_assert_int_eq (count_entries (dir), 1);

  /* A save that fails leaves the old file as it was. */
  g_autoptr (NnicTensorDict) d = nnic_tensor_dict_new ();
  add (d, "__metadata__", nnic_tensor_new_f32 (NULL, 0));
  ck_assert (!nnic_safetensors_save (path, d, &err));
  g_clear_error (&err);
  g_autoptr (GBytes) c = read_file (path);
  ck_assert (g_bytes_equal (b, c));

  /* Writing over a directory fails and leaves no temporary file. */
  g_autofree char *sub = g_build_filename (dir, "sub", NULL);
  ck_assert_int_eq (g_mkdir (sub, 0755), 0);
  ck_assert (!nnic_write_file_atomic (sub, "x", 1, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, "sub");
  g_clear_error (&err);
  ck_assert (g_file_test (sub, G_FILE_TEST_IS_DIR));
  ck_assert_int_eq (count_entries (dir), 2);
}
END_TEST

/* ---- .npy ---- */

static NnicTensor *
npy_roundtrip (const char *dir, const NnicTensor *t, const char *expect_dict)
{
  g_autofree char *path = g_build_filename (dir, "t.npy", NULL);
  GError *err = NULL;
  ck_assert (nnic_npy_save (path, t, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (GBytes) bytes = read_file (path);
  const guint8 *b = g_bytes_get_data (bytes, NULL);
  ck_assert (memcmp (b, "\x93NUMPY\x01\x00", 8) == 0);
  size_t hlen = (size_t) b[8] | (size_t) b[9] << 8;
  /* numpy's layout: data 64-byte aligned, the header ends in '\n'. */
  ck_assert_uint_eq ((10 + hlen) % 64, 0);
  ck_assert_int_eq (b[10 + hlen - 1], '\n');
  ck_assert (strncmp ((const char *) b + 10, expect_dict, strlen (expect_dict)) == 0);
  ck_assert_uint_eq (g_bytes_get_size (bytes), 10 + hlen + nnic_tensor_nbytes (t));
  NnicTensor *back = nnic_npy_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  assert_tensor_equal (t, back);
  return back;
}

START_TEST (test_npy_roundtrip)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  const float f[6] = { 1, -2, 3.5f, 0, 1e30f, -1e-30f };
  const int64_t l[4] = { 0, -1, 1ll << 40, 9 };
  const int32_t i[4] = { 5, -6, 7, -8 };
  const uint8_t u[3] = { 0, 128, 255 };
  const int8_t s[3] = { -128, 0, 127 };
  const float zero_d = 42.0f;
  struct {
    NnicTensor *t;
    const char *dict;
  } cases[] = {
    { tensor_of (NNIC_DTYPE_F32, 2, (int64_t[]){ 2, 3 }, f),
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }" },
    { tensor_of (NNIC_DTYPE_I64, 1, (int64_t[]){ 4 }, l),
      "{'descr': '<i8', 'fortran_order': False, 'shape': (4,), }" },
    { tensor_of (NNIC_DTYPE_I32, 3, (int64_t[]){ 2, 1, 2 }, i),
      "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 1, 2), }" },
    { tensor_of (NNIC_DTYPE_U8, 1, (int64_t[]){ 3 }, u),
      "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }" },
    { tensor_of (NNIC_DTYPE_I8, 1, (int64_t[]){ 3 }, s),
      "{'descr': '|i1', 'fortran_order': False, 'shape': (3,), }" },
    { tensor_of (NNIC_DTYPE_F32, 0, NULL, &zero_d),
      "{'descr': '<f4', 'fortran_order': False, 'shape': (), }" },
    { tensor_of (NNIC_DTYPE_F32, 2, (int64_t[]){ 0, 5 }, NULL),
      "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }" },
  };
  for (size_t k = 0; k < G_N_ELEMENTS (cases); k++) {
    nnic_tensor_free (npy_roundtrip (dir, cases[k].t, cases[k].dict));
    nnic_tensor_free (cases[k].t);
  }
}
END_TEST

/* A .npy file from a version, a header dict and data. */
static char *
write_npy (const char *dir, const char *name, int major, const char *dict, const void *data,
           size_t data_len)
{
  GByteArray *b = g_byte_array_new ();
  g_byte_array_append (b, (const guint8 *) "\x93NUMPY", 6);
  guint8 ver[2] = { (guint8) major, 0 };
  g_byte_array_append (b, ver, 2);
  guint32 hlen = (guint32) strlen (dict);
  guint8 len[4] = { hlen & 0xff, (hlen >> 8) & 0xff, (hlen >> 16) & 0xff, hlen >> 24 };
  g_byte_array_append (b, len, major == 1 ? 2 : 4);
  g_byte_array_append (b, (const guint8 *) dict, hlen);
  if (data_len)
    g_byte_array_append (b, data, (guint) data_len);
  char *path = nnic_test_write (dir, name, b->data, b->len);
  g_byte_array_unref (b);
  return path;
}

START_TEST (test_npy_read_variants)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  GError *err = NULL;
  /* Version 2.0, float64 converted, double quotes, no trailing comma. */
  const double d[3] = { 0.25, -8.0, 1e300 };
  g_autofree char *p2 = write_npy (dir, "v2.npy", 2,
                                   "{\"descr\": \"<f8\", \"shape\": (3,), \"fortran_order\": False}\n",
                                   d, sizeof d);
  g_autoptr (NnicTensor) t2 = nnic_npy_load (p2, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (t2->dtype, NNIC_DTYPE_F32);
  ck_assert_int_eq (t2->ndim, 1);
  ck_assert_float_eq (t2->f32[0], 0.25f);
  ck_assert_float_eq (t2->f32[1], -8.0f);
  ck_assert (isinf (t2->f32[2]));

  /* Version 3.0, bool (any non-zero byte is true), extra spaces. */
  const guint8 bools[4] = { 0, 1, 2, 0 };
  g_autofree char *p3 = write_npy (dir, "v3.npy", 3,
                                   "{ 'descr' : '|b1' , 'fortran_order' : False , 'shape' : ( 2 , 2 ) , }   \n",
                                   bools, sizeof bools);
  g_autoptr (NnicTensor) t3 = nnic_npy_load (p3, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (t3->dtype, NNIC_DTYPE_U8);
  ck_assert_int_eq (t3->u8[2], 1);

  /* A one-byte type written with '<' by a writer other than numpy. */
  const guint8 one = 9;
  g_autofree char *p4 = write_npy (dir, "u1.npy", 1,
                                   "{'descr': '<u1', 'fortran_order': False, 'shape': (1,), }\n",
                                   &one, 1);
  g_autoptr (NnicTensor) t4 = nnic_npy_load (p4, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (t4->u8[0], 9);
}
END_TEST

/* numpy.save's own files (tests/fixtures/numpy_*.npy, made by
 * safetensors_roundtrip.py --generate): nnic reads them, and writes the
 * same bytes for the dtypes it writes. */
static NnicTensor *
load_numpy_fixture (const char *name, gboolean same_bytes)
{
  g_autofree char *path = g_build_filename (NNIC_TEST_FIXTURES, name, NULL);
  GError *err = NULL;
  NnicTensor *t = nnic_npy_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  if (same_bytes) {
    g_autofree char *dir = nnic_test_tmpdir ();
    g_autofree char *again = g_build_filename (dir, name, NULL);
    ck_assert (nnic_npy_save (again, t, &err));
    NNIC_ASSERT_NO_ERROR (err);
    g_autoptr (GBytes) want = read_file (path);
    g_autoptr (GBytes) got = read_file (again);
    ck_assert_msg (g_bytes_equal (want, got), "nnic does not write %s as numpy does", name);
  }
  return t;
}

START_TEST (test_npy_numpy_fixtures)
{
  g_autoptr (NnicTensor) f4 = load_numpy_fixture ("numpy_f4.npy", TRUE);
  const float f4_want[6] = { 1, -2, 3.5f, 0, 1e30f, -1e-30f };
  ck_assert_int_eq (f4->ndim, 2);
  ck_assert_int_eq (f4->shape[1], 3);
  ck_assert (memcmp (f4->data, f4_want, sizeof f4_want) == 0);

  g_autoptr (NnicTensor) i8 = load_numpy_fixture ("numpy_i8.npy", TRUE);
  ck_assert_int_eq (i8->dtype, NNIC_DTYPE_I64);
  ck_assert_int_eq (i8->i64[2], 1ll << 40);

  g_autoptr (NnicTensor) zd = load_numpy_fixture ("numpy_0d.npy", TRUE);
  ck_assert_int_eq (zd->ndim, 0);
  ck_assert_float_eq (zd->f32[0], 42.0f);

  g_autoptr (NnicTensor) u1 = load_numpy_fixture ("numpy_u1.npy", TRUE);
  ck_assert_int_eq (u1->dtype, NNIC_DTYPE_U8);
  ck_assert_int_eq (u1->u8[2], 255);

  g_autoptr (NnicTensor) f8 = load_numpy_fixture ("numpy_f8.npy", FALSE);
  ck_assert_int_eq (f8->dtype, NNIC_DTYPE_F32);
  ck_assert_float_eq (f8->f32[0], 0.25f);
  ck_assert_float_eq (f8->f32[1], -8.0f);
  ck_assert (isinf (f8->f32[2]));

  g_autoptr (NnicTensor) b1 = load_numpy_fixture ("numpy_b1.npy", FALSE);
  ck_assert_int_eq (b1->dtype, NNIC_DTYPE_U8);
  const guint8 b1_want[4] = { 1, 0, 0, 1 };
  ck_assert (memcmp (b1->data, b1_want, 4) == 0);
}
END_TEST

typedef struct {
  int major;
  const char *dict;
  size_t data_len;
  const char *needle;
} BadNpy;

static const BadNpy bad_npys[] = {
  { 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 8, "Fortran" },
  { 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, "big-endian" },
  { 1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, "unsupported dtype '<c8'" },
  { 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8, "structured" },
  { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }", 8,
    "too large" },
  { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }", 8,
    "truncated data" },
  { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 8,
    "too large" },
  { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 8, "truncated data" },
  { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", 8, "too much data" },
  { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", 8, "negative" },
  { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1,1,1,1,1), }", 4,
    "more than 8 dimensions" },
  { 1, "{'descr': '<f4', 'fortran_order': False, }", 8, "missing key 'shape'" },
  { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}", 8, "unknown key 'x'" },
  { 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 8, "twice" },
  { 1, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }", 8, "True or False" },
  { 1, "{'descr': '<f4, 'fortran_order': False, 'shape': (2,), }", 8, "malformed header" },
  { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk", 8, "after the dict" },
  { 1, "", 0, "malformed header" },
  { 4, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, "version 4.0" },
};

START_TEST (test_npy_malformed)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  const BadNpy *c = &bad_npys[_i];
  g_autofree char *name = g_strdup_printf ("bad%d.npy", _i);
  guint8 zeros[16] = { 0 };
  g_autofree char *path = write_npy (dir, name, c->major, c->dict, zeros, c->data_len);
  GError *err = NULL;
  NnicTensor *t = nnic_npy_load (path, &err);
  ck_assert_msg (t == NULL, "case %d loaded", _i);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, c->needle);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, name);
  g_clear_error (&err);
}
END_TEST

START_TEST (test_npy_bad_files)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  GError *err = NULL;

  g_autofree char *magic = nnic_test_write (dir, "magic.npy", "\x93NUMPX\x01\x00\x00\x00", 10);
  ck_assert_ptr_null (nnic_npy_load (magic, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "magic.npy: not a .npy file");
  g_clear_error (&err);

  g_autofree char *empty = nnic_test_write (dir, "empty.npy", "", 0);
  ck_assert_ptr_null (nnic_npy_load (empty, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "empty.npy");
  g_clear_error (&err);

  g_autofree char *shorty = nnic_test_write (dir, "short.npy", "\x93NUM", 4);
  ck_assert_ptr_null (nnic_npy_load (shorty, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "short.npy");
  g_clear_error (&err);

  /* Header length 118, 17 bytes present. */
  static const char cut_bytes[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', ";
  g_autofree char *cut = nnic_test_write (dir, "cut.npy", cut_bytes, sizeof cut_bytes - 1);
  ck_assert_ptr_null (nnic_npy_load (cut, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "cut.npy: truncated header");
  g_clear_error (&err);

  g_autofree char *missing = g_build_filename (dir, "missing.npy", NULL);
  ck_assert_ptr_null (nnic_npy_load (missing, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, "missing.npy");
  g_clear_error (&err);

  g_autoptr (NnicTensor) t = nnic_tensor_new_f32 (NULL, 1, (int64_t) 2);
  g_autofree char *nodir = g_build_filename (dir, "none", "t.npy", NULL);
  ck_assert (!nnic_npy_save (nodir, t, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, "t.npy");
  g_clear_error (&err);
  ck_assert (!g_file_test (nodir, G_FILE_TEST_EXISTS));
}
END_TEST

/* ---- model state dicts ---- */

/* conv (weight, bias) → bn (weight, bias, running_mean, running_var,
 * num_batches_tracked) → relu → flatten → linear. */
static NnicModel *
small_model (void)
{
  NnicModel *m = nnic_model_new (1, 4, 4);
  GError *err = NULL;
  ck_assert (nnic_model_add_conv2d (m, "conv1", NULL,
                                    &(NnicConv2dSpec){ .in_channels = 1, .out_channels = 2,
                                                       .kernel_size = 3, .padding = 1 },
                                    &err));
  ck_assert (nnic_model_add_batchnorm2d (m, "bn1", NULL, &(NnicBatchNormSpec){ .num_features = 2 },
                                         &err));
  ck_assert (nnic_model_add_relu (m, "relu", NULL, &err));
  ck_assert (nnic_model_add_flatten (m, "flat", NULL, &err));
  ck_assert (nnic_model_add_linear (m, "fc", NULL,
                                    &(NnicLinearSpec){ .in_features = 32, .out_features = 3 },
                                    &err));
  NNIC_ASSERT_NO_ERROR (err);
  return m;
}

/* Sets every float parameter to distinct values derived from `base`. */
static void
fill_params (NnicModel *m, float base)
{
  for (guint i = 0; i < nnic_model_n_params (m); i++) {
    NnicTensor *v = nnic_model_param (m, i)->value;
    for (int64_t k = 0; k < v->numel; k++)
      v->f32[k] = base + (float) (i * 100 + k);
  }
}

static void
assert_same_params (NnicModel *a, NnicModel *b)
{
  ck_assert_uint_eq (nnic_model_n_params (a), nnic_model_n_params (b));
  for (guint i = 0; i < nnic_model_n_params (a); i++)
    assert_tensor_equal (nnic_model_param (a, i)->value, nnic_model_param (b, i)->value);
}

static NnicParam *
param_named (NnicModel *m, const char *name)
{
  GError *err = NULL;
  NnicParam *p = nnic_model_find_param (m, name, &err);
  NNIC_ASSERT_NO_ERROR (err);
  return p;
}

START_TEST (test_model_save_load)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "model.safetensors", NULL);
  g_autoptr (NnicModel) a = small_model ();
  g_autoptr (NnicModel) b = small_model ();
  fill_params (a, 1.0f);
  param_named (a, "bn1.num_batches_tracked")->value->f32[0] = 123.0f;
  fill_params (b, -50.0f);
  GError *err = NULL;
  ck_assert (nnic_model_save (a, path, &err));
  NNIC_ASSERT_NO_ERROR (err);

  /* PyTorch's layout: the counter is an int64 0-d tensor. */
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_tensor_dict_len (d), nnic_model_n_params (a));
  NnicTensor *nbt = nnic_tensor_dict_get (d, "bn1.num_batches_tracked");
  ck_assert_ptr_nonnull (nbt);
  ck_assert_int_eq (nbt->dtype, NNIC_DTYPE_I64);
  ck_assert_int_eq (nbt->ndim, 0);
  ck_assert_int_eq (nbt->i64[0], 123);
  for (guint i = 0; i < nnic_model_n_params (a); i++)
    ck_assert_str_eq (g_ptr_array_index (d->names, i), nnic_model_param (a, i)->name);

  ck_assert (nnic_model_load (b, path, &err));
  NNIC_ASSERT_NO_ERROR (err);
  assert_same_params (a, b);
}
END_TEST

/* Saves `d` and asserts that loading it into `m` fails with `code` and
 * `needle`, leaving every parameter of m as it was. */
static void
assert_load_fails (NnicModel *m, const char *dir, NnicTensorDict *d, int code, const char *needle)
{
  g_autofree char *path = g_build_filename (dir, "bad-model.safetensors", NULL);
  GError *err = NULL;
  ck_assert (nnic_safetensors_save (path, d, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicModel) before = small_model ();
  for (guint i = 0; i < nnic_model_n_params (m); i++)
    nnic_tensor_copy_into (nnic_model_param (before, i)->value, nnic_model_param (m, i)->value, NULL);
  ck_assert (!nnic_model_load (m, path, &err));
  NNIC_ASSERT_ERROR (err, code, needle);
  NNIC_ASSERT_ERROR (err, code, "bad-model.safetensors");
  g_clear_error (&err);
  assert_same_params (before, m);
}

/* The state dict of `m` as a dict of copies. */
static NnicTensorDict *
state_copy (NnicModel *m)
{
  NnicTensorDict *d = nnic_tensor_dict_new ();
  for (guint i = 0; i < nnic_model_n_params (m); i++) {
    NnicParam *p = nnic_model_param (m, i);
    add (d, p->name, nnic_tensor_copy (p->value, NULL));
  }
  return d;
}

static void
dict_remove (NnicTensorDict *d, const char *name)
{
  for (guint i = 0; i < d->names->len; i++)
    if (strcmp (g_ptr_array_index (d->names, i), name) == 0) {
      g_ptr_array_remove_index (d->names, i);
      g_ptr_array_remove_index (d->tensors, i);
      return;
    }
  ck_abort_msg ("no %s", name);
}

START_TEST (test_model_load_mismatch)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autoptr (NnicModel) m = small_model ();
  fill_params (m, 3.0f);

  /* A wrong shape: both shapes named, nothing changed (the entries before
   * it in state_dict order were valid and must not have been loaded). */
  {
    g_autoptr (NnicModel) other = small_model ();
    fill_params (other, 9.0f);
    g_autoptr (NnicTensorDict) d = state_copy (other);
    dict_remove (d, "fc.weight");
    add (d, "fc.weight", nnic_tensor_new_f32 (NULL, 2, (int64_t) 3, (int64_t) 31));
    assert_load_fails (m, dir, d, NNIC_ERROR_SHAPE, "'fc.weight' has shape [3, 31] in the file but [3, 32]");
  }
  /* A missing entry. */
  {
    g_autoptr (NnicTensorDict) d = state_copy (m);
    dict_remove (d, "bn1.running_var");
    assert_load_fails (m, dir, d, NNIC_ERROR_NOT_FOUND, "'bn1.running_var'");
  }
  /* An unexpected entry. */
  {
    g_autoptr (NnicTensorDict) d = state_copy (m);
    add (d, "fc2.weight", nnic_tensor_new_f32 (NULL, 1, (int64_t) 1));
    assert_load_fails (m, dir, d, NNIC_ERROR_NOT_FOUND, "unexpected tensor 'fc2.weight'");
  }
  /* A wrong dtype. */
  {
    g_autoptr (NnicTensorDict) d = state_copy (m);
    dict_remove (d, "conv1.bias");
    add (d, "conv1.bias", nnic_tensor_new (NNIC_DTYPE_I64, 1, (int64_t[]){ 2 }, NULL));
    assert_load_fails (m, dir, d, NNIC_ERROR_FORMAT, "'conv1.bias' is int64 in the file");
  }
}
END_TEST

START_TEST (test_model_load_counter_variants)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "m.safetensors", NULL);
  g_autoptr (NnicModel) m = small_model ();
  fill_params (m, 2.0f);
  GError *err = NULL;

  /* Without num_batches_tracked (older PyTorch): loads, counter untouched. */
  g_autoptr (NnicModel) src = small_model ();
  fill_params (src, 7.0f);
  g_autoptr (NnicTensorDict) d = state_copy (src);
  dict_remove (d, "bn1.num_batches_tracked");
  ck_assert (nnic_safetensors_save (path, d, &err));
  float before = param_named (m, "bn1.num_batches_tracked")->value->f32[0];
  ck_assert (nnic_model_load (m, path, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_float_eq (param_named (m, "bn1.num_batches_tracked")->value->f32[0], before);
  ck_assert_float_eq (param_named (m, "fc.bias")->value->f32[0],
                      param_named (src, "fc.bias")->value->f32[0]);

  /* As a float (what nnic's own dict copy holds): accepted too. */
  g_autoptr (NnicTensorDict) f = state_copy (src);
  ck_assert (nnic_safetensors_save (path, f, &err));
  ck_assert (nnic_model_load (m, path, &err));
  NNIC_ASSERT_NO_ERROR (err);
  assert_same_params (src, m);
}
END_TEST

static Suite *
io_suite (void)
{
  Suite *s = suite_create ("io");
  TCase *tc = tcase_create ("safetensors");
  tcase_add_test (tc, test_dict_basics);
  tcase_add_test (tc, test_safetensors_roundtrip);
  tcase_add_test (tc, test_safetensors_no_metadata);
  tcase_add_test (tc, test_safetensors_reject_on_save);
  tcase_add_test (tc, test_safetensors_converted_dtypes);
  tcase_add_test (tc, test_safetensors_f16_nan_and_subnormals);
  tcase_add_test (tc, test_safetensors_overlap_and_bool);
  tcase_add_loop_test (tc, test_safetensors_malformed_header, 0, (int) G_N_ELEMENTS (bad_headers));
  tcase_add_test (tc, test_safetensors_truncated);
  tcase_add_test (tc, test_safetensors_missing_file);
  tcase_add_test (tc, test_fixture_nnic_written);
  tcase_add_test (tc, test_fixture_python_written);
  suite_add_tcase (s, tc);

  tc = tcase_create ("atomic");
  tcase_add_test (tc, test_atomic_missing_dir);
  tcase_add_test (tc, test_atomic_replace);
  suite_add_tcase (s, tc);

  tc = tcase_create ("npy");
  tcase_add_test (tc, test_npy_roundtrip);
  tcase_add_test (tc, test_npy_read_variants);
  tcase_add_test (tc, test_npy_numpy_fixtures);
  tcase_add_loop_test (tc, test_npy_malformed, 0, (int) G_N_ELEMENTS (bad_npys));
  tcase_add_test (tc, test_npy_bad_files);
  suite_add_tcase (s, tc);

  tc = tcase_create ("model");
  tcase_add_test (tc, test_model_save_load);
  tcase_add_test (tc, test_model_load_mismatch);
  tcase_add_test (tc, test_model_load_counter_variants);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return nnic_test_run (io_suite ());
}
