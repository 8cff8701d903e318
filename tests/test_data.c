/* Data: IDX files (raw and gzip), named data sets, .npy data sets, heads,
 * loaders and the random generator. */
#include "testutil.h"

#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writing IDX and gzip files by hand ---- */

/* The tests do not link zlib: gzip files are written with "stored"
 * (uncompressed) deflate blocks, which any inflater must accept, and a
 * CRC-32 computed here. */
static guint32
crc32_of (const guint8 *p, size_t n)
{
  guint32 c = 0xffffffffu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++)
      c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
  }
  return c ^ 0xffffffffu;
}

static void
append_le32 (GByteArray *b, guint32 v)
{
  guint8 x[4] = { v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24 };
  g_byte_array_append (b, x, 4);
}

static GByteArray *
gzip_stored (const guint8 *data, size_t n)
{
  GByteArray *b = g_byte_array_new ();
  static const guint8 header[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff };
  g_byte_array_append (b, header, 10);
  size_t off = 0;
  do {
    size_t len = MIN (n - off, 65535);
    gboolean last = off + len == n;
    guint8 blk[5] = { last ? 1 : 0, len & 0xff, len >> 8, ~len & 0xff, (~len >> 8) & 0xff };
    g_byte_array_append (b, blk, 5);
    if (len)
      g_byte_array_append (b, data + off, (guint) len);
    off += len;
  } while (off < n);
  append_le32 (b, crc32_of (data, n));
  append_le32 (b, (guint32) n);
  return b;
}

static void
append_be32 (GByteArray *b, guint32 v)
{
  guint8 x[4] = { v >> 24, (v >> 16) & 0xff, (v >> 8) & 0xff, v & 0xff };
  g_byte_array_append (b, x, 4);
}

/* An IDX file: magic, dims, then `data_len` bytes of data. */
static GByteArray *
idx_bytes (guint32 magic, const guint32 *dims, int ndim, const guint8 *data, size_t data_len)
{
  GByteArray *b = g_byte_array_new ();
  append_be32 (b, magic);
  for (int i = 0; i < ndim; i++)
    append_be32 (b, dims[i]);
  if (data_len)
    g_byte_array_append (b, data, (guint) data_len);
  return b;
}

static char *
write_bytes (const char *dir, const char *name, GByteArray *b, gboolean gzip)
{
  if (gzip) {
    GByteArray *z = gzip_stored (b->data, b->len);
    char *path = nnic_test_write (dir, name, z->data, z->len);
    g_byte_array_unref (z);
    g_byte_array_unref (b);
    return path;
  }
  char *path = nnic_test_write (dir, name, b->data, b->len);
  g_byte_array_unref (b);
  return path;
}

/* Five 3×2 images whose pixels are (37 k + 11 i) mod 256, labels below. */
#define N_SMALL 5
static const guint8 small_labels[N_SMALL] = { 3, 0, 9, 1, 3 };

static guint8
small_pixel (int k, int i)
{
  return (guint8) ((37 * k + 11 * i) % 256);
}

static char *
write_small_images (const char *dir, const char *name, gboolean gzip)
{
  guint8 px[N_SMALL * 6];
  for (int k = 0; k < N_SMALL; k++)
    for (int i = 0; i < 6; i++)
      px[k * 6 + i] = small_pixel (k, i);
  return write_bytes (dir, name, idx_bytes (0x803, (guint32[]){ N_SMALL, 3, 2 }, 3, px, sizeof px),
                      gzip);
}

static char *
write_small_labels (const char *dir, const char *name, gboolean gzip)
{
  return write_bytes (dir, name,
                      idx_bytes (0x801, (guint32[]){ N_SMALL }, 1, small_labels, N_SMALL), gzip);
}

static void
assert_small_dataset (const NnicDataset *d, float mean, float std)
{
  ck_assert_int_eq (d->images->dtype, NNIC_DTYPE_F32);
  ck_assert_int_eq (d->images->ndim, 4);
  ck_assert_int_eq (d->images->shape[0], N_SMALL);
  ck_assert_int_eq (d->images->shape[1], 1);
  ck_assert_int_eq (d->images->shape[2], 3);
  ck_assert_int_eq (d->images->shape[3], 2);
  ck_assert_int_eq (d->labels->dtype, NNIC_DTYPE_I64);
  ck_assert_int_eq (d->labels->ndim, 1);
  ck_assert_int_eq (d->labels->shape[0], N_SMALL);
  ck_assert_int_eq (d->n_classes, 10);
  for (int k = 0; k < N_SMALL; k++) {
    ck_assert_int_eq (d->labels->i64[k], small_labels[k]);
    for (int i = 0; i < 6; i++) {
      float want = ((float) small_pixel (k, i) / 255.0f - mean) / std;
      ck_assert_float_eq_tol (d->images->f32[k * 6 + i], want, 1e-6f);
    }
  }
}

/* ---- IDX ---- */

START_TEST (test_idx_raw_and_gzip)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  for (int gz = 0; gz <= 1; gz++) {
    g_autofree char *img = write_small_images (dir, gz ? "img.gz" : "img", gz);
    g_autofree char *lab = write_small_labels (dir, gz ? "lab.gz" : "lab", gz);
    GError *err = NULL;
    g_autoptr (NnicDataset) d = nnic_dataset_load_idx (img, lab, 0.5f, 0.25f, &err);
    NNIC_ASSERT_NO_ERROR (err);
    assert_small_dataset (d, 0.5f, 0.25f);
  }
}
END_TEST

START_TEST (test_idx_gzip_multiblock)
{
  /* 300 images of 16×16 (76800 bytes): more than one stored block, and two
   * gzip members back to back, as `cat a.gz b.gz` makes. */
  g_autofree char *dir = nnic_test_tmpdir ();
  const int n = 300;
  g_autofree guint8 *px = g_malloc (n * 256);
  for (int i = 0; i < n * 256; i++)
    px[i] = (guint8) (i * 7);
  GByteArray *raw = idx_bytes (0x803, (guint32[]){ n, 16, 16 }, 3, px, (size_t) n * 256);
  size_t half = raw->len / 2;
  GByteArray *z = gzip_stored (raw->data, half);
  GByteArray *z2 = gzip_stored (raw->data + half, raw->len - half);
  g_byte_array_append (z, z2->data, z2->len);
  g_autofree char *img = nnic_test_write (dir, "img.gz", z->data, z->len);
  g_byte_array_unref (raw);
  g_byte_array_unref (z);
  g_byte_array_unref (z2);
  g_autofree guint8 *lb = g_malloc0 (n);
  lb[17] = 4;
  g_autofree char *lab = write_bytes (dir, "lab", idx_bytes (0x801, (guint32[]){ n }, 1, lb, n), FALSE);
  GError *err = NULL;
  g_autoptr (NnicDataset) d = nnic_dataset_load_idx (img, lab, 0.0f, 1.0f, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (d->images->shape[0], n);
  ck_assert_int_eq (d->n_classes, 5);
  for (int i = 0; i < n * 256; i += 997)
    ck_assert_float_eq_tol (d->images->f32[i], (float) px[i] / 255.0f, 1e-6f);
}
END_TEST

/* Loads `img` with the small labels (or `lab` when given) and expects a
 * FORMAT error naming `file` and containing `needle`. */
static void
assert_idx_fails (const char *dir, const char *img, const char *lab, const char *file,
                  const char *needle)
{
  g_autofree char *good_lab = lab ? NULL : write_small_labels (dir, "good-labels", FALSE);
  GError *err = NULL;
  NnicDataset *d = nnic_dataset_load_idx (img, lab ? lab : good_lab, 0.0f, 1.0f, &err);
  ck_assert_ptr_null (d);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, needle);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, file);
  g_clear_error (&err);
}

START_TEST (test_idx_malformed)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *lab = write_small_labels (dir, "labels", FALSE);
  g_autofree char *img = write_small_images (dir, "images", FALSE);

  /* A labels file where images are expected, and the other way round. */
  assert_idx_fails (dir, lab, NULL, "labels", "bad magic number 0x00000801");
  assert_idx_fails (dir, img, img, "images", "bad magic number 0x00000803");

  /* Empty; cut short in the header, in the data. */
  g_autofree char *empty = nnic_test_write (dir, "empty", "", 0);
  assert_idx_fails (dir, empty, NULL, "empty", "truncated header (0 of 4 bytes)");
  g_autofree char *h = nnic_test_write (dir, "cut-header", "\0\0\x08\x03\0\0\0\x05\0", 9);
  assert_idx_fails (dir, h, NULL, "cut-header", "truncated header");
  GByteArray *b = idx_bytes (0x803, (guint32[]){ 5, 3, 2 }, 3, (const guint8 *) "abcdefghij", 10);
  g_autofree char *cut = write_bytes (dir, "cut-data", b, FALSE);
  assert_idx_fails (dir, cut, NULL, "cut-data", "truncated");

  /* Absurd dimensions fail on the header alone. */
  b = idx_bytes (0x803, (guint32[]){ 0x80000000u, 0x80000000u, 1 }, 3, NULL, 0);
  g_autofree char *absurd = write_bytes (dir, "absurd", b, FALSE);
  assert_idx_fails (dir, absurd, NULL, "absurd", "dimension 0 is 2147483648");
  b = idx_bytes (0x803, (guint32[]){ 1 << 24, 1 << 24, 1 }, 3, NULL, 0);
  g_autofree char *big = write_bytes (dir, "big", b, FALSE);
  assert_idx_fails (dir, big, NULL, "big", "over 2147483648 bytes");
  /* Plausible dimensions, 1 GB announced, a tiny (gzip) file: fails before
   * allocating, since deflate cannot compress 1000:1 beyond ~1032. */
  b = idx_bytes (0x803, (guint32[]){ 1000, 1000, 1000 }, 3, (const guint8 *) "xy", 2);
  g_autofree char *claim = write_bytes (dir, "claim.gz", b, TRUE);
  assert_idx_fails (dir, claim, NULL, "claim.gz", "truncated: the header announces 1000000000");

  /* More data than the header says. */
  guint8 px[31] = { 0 };
  b = idx_bytes (0x803, (guint32[]){ 5, 3, 2 }, 3, px, sizeof px);
  g_autofree char *extra = write_bytes (dir, "extra", b, FALSE);
  assert_idx_fails (dir, extra, NULL, "extra", "more data than the header announces");
  b = idx_bytes (0x803, (guint32[]){ 5, 3, 2 }, 3, px, sizeof px);
  g_autofree char *extra_gz = write_bytes (dir, "extra.gz", b, TRUE);
  assert_idx_fails (dir, extra_gz, NULL, "extra.gz", "more data than the header announces");

  /* Label count differs from the image count: both files named. */
  b = idx_bytes (0x801, (guint32[]){ 4 }, 1, small_labels, 4);
  g_autofree char *four = write_bytes (dir, "four-labels", b, FALSE);
  GError *err = NULL;
  ck_assert_ptr_null (nnic_dataset_load_idx (img, four, 0.0f, 1.0f, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "images has 5 images but");
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "four-labels has 4 labels");
  g_clear_error (&err);

  /* Missing file; bad normalisation. */
  g_autofree char *missing = g_build_filename (dir, "missing", NULL);
  ck_assert_ptr_null (nnic_dataset_load_idx (missing, lab, 0.0f, 1.0f, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, "missing");
  g_clear_error (&err);
  ck_assert_ptr_null (nnic_dataset_load_idx (img, lab, 0.0f, 0.0f, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "std");
  g_clear_error (&err);
}
END_TEST

START_TEST (test_idx_corrupt_gzip)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *good = write_small_images (dir, "good.gz", TRUE);
  char *contents = NULL;
  gsize len = 0;
  ck_assert (g_file_get_contents (good, &contents, &len, NULL));
  guint8 *z = (guint8 *) contents;

  /* A wrong CRC. */
  z[len - 6] ^= 0x55;
  g_autofree char *crc = nnic_test_write (dir, "crc.gz", z, len);
  assert_idx_fails (dir, crc, NULL, "crc.gz", "corrupt gzip data");
  z[len - 6] ^= 0x55;

  /* An invalid deflate block type (BTYPE = 3). */
  z[10] = 0x07;
  g_autofree char *btype = nnic_test_write (dir, "btype.gz", z, len);
  assert_idx_fails (dir, btype, NULL, "btype.gz", "corrupt gzip data");
  z[10] = 0x01;

  /* Cut in the middle of the stream, and inside the header. */
  g_autofree char *half = nnic_test_write (dir, "half.gz", z, len / 2);
  assert_idx_fails (dir, half, NULL, "half.gz", "truncated");
  g_autofree char *trailer = nnic_test_write (dir, "trailer.gz", z, len - 3);
  assert_idx_fails (dir, trailer, NULL, "trailer.gz", "truncated gzip stream");
  g_autofree char *head = nnic_test_write (dir, "head.gz", z, 12);
  assert_idx_fails (dir, head, NULL, "head.gz", "truncated header");
  g_free (contents);
}
END_TEST

/* ---- named data sets ---- */

START_TEST (test_named_small_dirs)
{
  GError *err = NULL;
  /* `dir` holding the gzip files under their usual names. */
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *a = write_small_images (dir, "t10k-images-idx3-ubyte.gz", TRUE);
  g_autofree char *b = write_small_labels (dir, "t10k-labels-idx1-ubyte.gz", TRUE);
  g_autoptr (NnicDataset) d = nnic_dataset_load_named ("fashion-mnist", FALSE, dir, &err);
  NNIC_ASSERT_NO_ERROR (err);
  assert_small_dataset (d, 0.2860f, 0.3530f);

  /* The training split is not there: the error says how to get it. */
  ck_assert_ptr_null (nnic_dataset_load_named ("fashion-mnist", TRUE, dir, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, "train-images-idx3-ubyte");
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, "apt-get install dataset-fashion-mnist");
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, dir);
  g_clear_error (&err);

  /* $NNIC_DATA_DIR with a fashion-mnist subdirectory of raw files. */
  g_autofree char *root = nnic_test_tmpdir ();
  g_autofree char *sub = g_build_filename (root, "fashion-mnist", NULL);
  ck_assert_int_eq (g_mkdir (sub, 0755), 0);
  g_autofree char *c = write_small_images (sub, "train-images-idx3-ubyte", FALSE);
  g_autofree char *e = write_small_labels (sub, "train-labels-idx1-ubyte", FALSE);
  g_setenv ("NNIC_DATA_DIR", root, TRUE);
  g_autoptr (NnicDataset) t = nnic_dataset_load_named ("fashion-mnist", TRUE, NULL, &err);
  g_unsetenv ("NNIC_DATA_DIR");
  NNIC_ASSERT_NO_ERROR (err);
  assert_small_dataset (t, 0.2860f, 0.3530f);

  ck_assert_ptr_null (nnic_dataset_load_named ("cifar-1000", TRUE, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "unknown data set 'cifar-1000' (known: 'fashion-mnist')");
  g_clear_error (&err);
}
END_TEST

static const char *fmnist_dir = "/usr/share/datasets/fashion-mnist";

static gboolean
have_fashion_mnist (void)
{
  g_autofree char *f = g_build_filename (fmnist_dir, "train-images-idx3-ubyte.gz", NULL);
  if (g_file_test (f, G_FILE_TEST_EXISTS))
    return TRUE;
  printf ("skipping the real Fashion-MNIST checks: %s is missing "
          "(apt-get install dataset-fashion-mnist)\n", f);
  return FALSE;
}

START_TEST (test_fashion_mnist)
{
  if (!have_fashion_mnist ())
    return;
  GError *err = NULL;
  /* The default lookup (no dir, no $NNIC_DATA_DIR) finds the system copy. */
  g_unsetenv ("NNIC_DATA_DIR");
  g_autoptr (NnicDataset) train = nnic_dataset_load_named ("fashion-mnist", TRUE, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicDataset) test = nnic_dataset_load_named ("fashion-mnist", FALSE, fmnist_dir, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const int64_t shape[4] = { 60000, 1, 28, 28 };
  for (int i = 0; i < 4; i++)
    ck_assert_int_eq (train->images->shape[i], shape[i]);
  ck_assert_int_eq (test->images->shape[0], 10000);
  ck_assert_int_eq (test->labels->shape[0], 10000);
  ck_assert_int_eq (train->n_classes, 10);
  ck_assert_int_eq (test->n_classes, 10);
  /* The first labels of each file (an ankle boot each). */
  ck_assert_int_eq (train->labels->i64[0], 9);
  ck_assert_int_eq (train->labels->i64[1], 0);
  ck_assert_int_eq (test->labels->i64[0], 9);
  ck_assert_int_eq (test->labels->i64[1], 2);

  /* The normalisation constants are the training set's own. */
  double sum = 0, sq = 0;
  const NnicTensor *x = train->images;
  for (int64_t i = 0; i < x->numel; i++) {
    sum += x->f32[i];
    sq += (double) x->f32[i] * x->f32[i];
  }
  double mean = sum / (double) x->numel;
  double std = sqrt (sq / (double) x->numel - mean * mean);
  ck_assert_msg (fabs (mean) < 0.01, "mean %g", mean);
  ck_assert_msg (fabs (std - 1.0) < 0.02, "std %g", std);
}
END_TEST

/* ---- .npy data sets and heads ---- */

static char *
save_npy (const char *dir, const char *name, NnicTensor *t)
{
  char *path = g_build_filename (dir, name, NULL);
  GError *err = NULL;
  ck_assert (nnic_npy_save (path, t, &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_tensor_free (t);
  return path;
}

START_TEST (test_npy_dataset)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  NnicTensor *x = nnic_tensor_new_f32 (NULL, 2, (int64_t) 4, (int64_t) 3);
  for (int i = 0; i < 12; i++)
    x->f32[i] = (float) i / 2;
  g_autofree char *xs = save_npy (dir, "x.npy", x);
  NnicTensor *y32 = nnic_tensor_new (NNIC_DTYPE_I32, 1, (int64_t[]){ 4 }, NULL);
  const int32_t labels[4] = { 2, 0, 6, 1 };
  memcpy (y32->data, labels, sizeof labels);
  g_autofree char *ys = save_npy (dir, "y32.npy", y32);

  GError *err = NULL;
  g_autoptr (NnicDataset) d = nnic_dataset_load_npy (xs, ys, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (d->images->ndim, 2);
  ck_assert_float_eq (d->images->f32[11], 5.5f);
  ck_assert_int_eq (d->labels->dtype, NNIC_DTYPE_I64);
  ck_assert_int_eq (d->labels->i64[2], 6);
  ck_assert_int_eq (d->n_classes, 7);

  NnicTensor *y64 = nnic_tensor_new (NNIC_DTYPE_I64, 1, (int64_t[]){ 4 }, NULL);
  y64->i64[3] = 4;
  g_autofree char *y64s = save_npy (dir, "y64.npy", y64);
  g_autoptr (NnicDataset) e = nnic_dataset_load_npy (xs, y64s, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (e->n_classes, 5);

  /* Wrong count, float labels, negative labels, 1-D inputs. */
  g_autofree char *y3 = save_npy (dir, "y3.npy", nnic_tensor_new (NNIC_DTYPE_I64, 1, (int64_t[]){ 3 }, NULL));
  ck_assert_ptr_null (nnic_dataset_load_npy (xs, y3, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "x.npy has 4 samples but");
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "y3.npy has 3 labels");
  g_clear_error (&err);
  g_autofree char *yf = save_npy (dir, "yf.npy", nnic_tensor_new_f32 (NULL, 1, (int64_t) 4));
  ck_assert_ptr_null (nnic_dataset_load_npy (xs, yf, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "yf.npy: labels must be integers");
  g_clear_error (&err);
  NnicTensor *neg = nnic_tensor_new (NNIC_DTYPE_I32, 1, (int64_t[]){ 4 }, NULL);
  neg->i32[1] = -3;
  g_autofree char *yn = save_npy (dir, "yn.npy", neg);
  ck_assert_ptr_null (nnic_dataset_load_npy (xs, yn, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "yn.npy: label -3 at index 1");
  g_clear_error (&err);
  g_autofree char *x1 = save_npy (dir, "x1.npy", nnic_tensor_new_f32 (NULL, 1, (int64_t) 4));
  ck_assert_ptr_null (nnic_dataset_load_npy (x1, ys, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "x1.npy: inputs must be float32");
  g_clear_error (&err);
  g_autofree char *none = g_build_filename (dir, "none.npy", NULL);
  ck_assert_ptr_null (nnic_dataset_load_npy (none, ys, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, "none.npy");
  g_clear_error (&err);
}
END_TEST

START_TEST (test_head)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *img = write_small_images (dir, "img", FALSE);
  g_autofree char *lab = write_small_labels (dir, "lab", FALSE);
  GError *err = NULL;
  g_autoptr (NnicDataset) d = nnic_dataset_load_idx (img, lab, 0.0f, 1.0f, &err);
  NNIC_ASSERT_NO_ERROR (err);

  g_autoptr (NnicDataset) h = nnic_dataset_head (d, 2, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (h->images->shape[0], 2);
  ck_assert_int_eq (h->images->shape[2], 3);
  ck_assert_int_eq (h->labels->shape[0], 2);
  ck_assert_int_eq (h->labels->i64[1], 0);
  /* The classes stay the parent's (labels 3, 0 alone would say 4). */
  ck_assert_int_eq (h->n_classes, 10);
  ck_assert (memcmp (h->images->data, d->images->data, 2 * 6 * sizeof (float)) == 0);
  ck_assert_ptr_ne (h->images->data, d->images->data);

  g_autoptr (NnicDataset) all = nnic_dataset_head (d, 1000, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (all->images->shape[0], N_SMALL);
  g_autoptr (NnicDataset) none = nnic_dataset_head (d, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (none->labels->shape[0], 0);
  ck_assert_ptr_null (nnic_dataset_head (d, -1, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "-1");
  g_clear_error (&err);
}
END_TEST

/* ---- loaders ---- */

/* n samples [n, 1, 2, 2]: every pixel of sample i is i, its label is i. */
static NnicDataset *
index_dataset (int64_t n)
{
  NnicDataset *d = g_new0 (NnicDataset, 1);
  d->images = nnic_tensor_new_f32 (NULL, 4, n, (int64_t) 1, (int64_t) 2, (int64_t) 2);
  d->labels = nnic_tensor_new (NNIC_DTYPE_I64, 1, &n, NULL);
  for (int64_t i = 0; i < n; i++) {
    d->labels->i64[i] = i;
    for (int k = 0; k < 4; k++)
      d->images->f32[i * 4 + k] = (float) i;
  }
  d->n_classes = (int) n;
  return d;
}

/* Runs one epoch; returns the label sequence and checks the batch shapes
 * and that each image row matches its label. */
static GArray *
run_epoch (NnicLoader *l, int batch, int64_t n)
{
  GArray *seq = g_array_new (FALSE, FALSE, sizeof (int64_t));
  const NnicTensor *x, *y;
  guint batches = 0;
  while (nnic_loader_next (l, &x, &y)) {
    int64_t rows = MIN (batch, n - (int64_t) batches * batch);
    ck_assert_int_eq (x->shape[0], rows);
    ck_assert_int_eq (y->shape[0], rows);
    ck_assert_int_eq (x->numel, rows * 4);
    ck_assert_int_eq (y->numel, rows);
    ck_assert_int_eq (x->ndim, 4);
    ck_assert_int_eq (x->shape[3], 2);
    for (int64_t r = 0; r < rows; r++) {
      for (int k = 0; k < 4; k++)
        ck_assert_float_eq (x->f32[r * 4 + k], (float) y->i64[r]);
      g_array_append_val (seq, y->i64[r]);
    }
    batches++;
  }
  ck_assert_uint_eq (batches, nnic_loader_n_batches (l));
  ck_assert (!nnic_loader_next (l, &x, &y));
  return seq;
}

static void
assert_permutation (GArray *seq, int64_t n)
{
  ck_assert_uint_eq (seq->len, (guint) n);
  g_autofree int *count = g_new0 (int, n);
  for (guint i = 0; i < seq->len; i++) {
    int64_t v = g_array_index (seq, int64_t, i);
    ck_assert (v >= 0 && v < n);
    count[v]++;
  }
  for (int64_t i = 0; i < n; i++)
    ck_assert_int_eq (count[i], 1);
}

static gboolean
same_sequence (GArray *a, GArray *b)
{
  return a->len == b->len && memcmp (a->data, b->data, a->len * sizeof (int64_t)) == 0;
}

START_TEST (test_loader_batches)
{
  const int64_t n = 103;
  const int batch = 10;
  g_autoptr (NnicDataset) d = index_dataset (n);
  GError *err = NULL;
  g_autoptr (NnicLoader) l = nnic_loader_new (d, batch, TRUE, 42, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_loader_n_batches (l), 11);

  g_autoptr (GArray) e0 = run_epoch (l, batch, n);
  assert_permutation (e0, n);
  /* Shuffled: not the identity. */
  gboolean identity = TRUE;
  for (int64_t i = 0; i < n; i++)
    identity = identity && g_array_index (e0, int64_t, i) == i;
  ck_assert (!identity);

  /* Restarting the same epoch gives the same order; the next epoch another. */
  nnic_loader_start_epoch (l, 0);
  g_autoptr (GArray) again = run_epoch (l, batch, n);
  ck_assert (same_sequence (e0, again));
  nnic_loader_start_epoch (l, 1);
  g_autoptr (GArray) e1 = run_epoch (l, batch, n);
  assert_permutation (e1, n);
  ck_assert (!same_sequence (e0, e1));

  /* Another loader with the same seed: identical epochs; another seed: not. */
  g_autoptr (NnicLoader) same = nnic_loader_new (d, batch, TRUE, 42, &err);
  nnic_loader_start_epoch (same, 1);
  g_autoptr (GArray) s1 = run_epoch (same, batch, n);
  ck_assert (same_sequence (e1, s1));
  g_autoptr (NnicLoader) other = nnic_loader_new (d, batch, TRUE, 43, &err);
  g_autoptr (GArray) o0 = run_epoch (other, batch, n);
  assert_permutation (o0, n);
  ck_assert (!same_sequence (e0, o0));
}
END_TEST

START_TEST (test_loader_no_allocation)
{
  /* The tensors handed out are the loader's own, the same every epoch. */
  g_autoptr (NnicDataset) d = index_dataset (7);
  g_autoptr (NnicLoader) l = nnic_loader_new (d, 3, TRUE, 1, NULL);
  const NnicTensor *x[3], *y[3];
  for (int e = 0; e < 2; e++) {
    nnic_loader_start_epoch (l, (guint) e);
    for (int b = 0; b < 3; b++) {
      const NnicTensor *xi, *yi;
      ck_assert (nnic_loader_next (l, &xi, &yi));
      if (e == 0) {
        x[b] = xi;
        y[b] = yi;
      }
      ck_assert_ptr_eq (xi, x[b]);
      ck_assert_ptr_eq (yi, y[b]);
    }
  }
  ck_assert_ptr_eq (x[0], x[1]);
  ck_assert_ptr_ne (x[0], x[2]);
  ck_assert_int_eq (x[2]->shape[0], 1);
  /* The tail shares the full batch's storage. */
  ck_assert_ptr_eq (x[2]->data, x[0]->data);
}
END_TEST

START_TEST (test_loader_in_order_and_edges)
{
  const int64_t n = 10;
  g_autoptr (NnicDataset) d = index_dataset (n);
  GError *err = NULL;
  g_autoptr (NnicLoader) l = nnic_loader_new (d, 4, FALSE, 42, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_loader_n_batches (l), 3);
  for (guint e = 0; e < 2; e++) {
    nnic_loader_start_epoch (l, e);
    g_autoptr (GArray) seq = run_epoch (l, 4, n);
    for (int64_t i = 0; i < n; i++)
      ck_assert_int_eq (g_array_index (seq, int64_t, i), i);
  }

  /* A batch larger than the data set: one batch of everything. */
  g_autoptr (NnicLoader) big = nnic_loader_new (d, 1000, TRUE, 5, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_loader_n_batches (big), 1);
  g_autoptr (GArray) all = run_epoch (big, 1000, n);
  assert_permutation (all, n);

  /* An exact multiple: no smaller last batch. */
  g_autoptr (NnicLoader) exact = nnic_loader_new (d, 5, TRUE, 5, &err);
  ck_assert_uint_eq (nnic_loader_n_batches (exact), 2);
  g_autoptr (GArray) ex = run_epoch (exact, 5, n);
  assert_permutation (ex, n);

  /* An empty data set: no batches. */
  g_autoptr (NnicDataset) empty = index_dataset (0);
  g_autoptr (NnicLoader) none = nnic_loader_new (empty, 4, TRUE, 1, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_loader_n_batches (none), 0);
  const NnicTensor *x, *y;
  ck_assert (!nnic_loader_next (none, &x, &y));

  ck_assert_ptr_null (nnic_loader_new (d, 0, TRUE, 1, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "batch size");
  g_clear_error (&err);
  ck_assert_ptr_null (nnic_loader_new (d, -3, TRUE, 1, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "-3");
  g_clear_error (&err);
}
END_TEST

/* ---- the generator ---- */

START_TEST (test_rng_reference)
{
  /* Computed with an independent implementation of splitmix64-seeded
   * xoshiro256**: the stream must never change. */
  NnicRng r;
  nnic_rng_seed (&r, 0);
  ck_assert_uint_eq (nnic_rng_next (&r), 0x99ec5f36cb75f2b4ull);
  ck_assert_uint_eq (nnic_rng_next (&r), 0xbf6e1f784956452aull);
  ck_assert_uint_eq (nnic_rng_next (&r), 0x1a5f849d4933e6e0ull);
  nnic_rng_seed (&r, 42);
  ck_assert_uint_eq (nnic_rng_next (&r), 0x15780b2e0c2ec716ull);
  ck_assert_uint_eq (nnic_rng_next (&r), 0x6104d9866d113a7eull);
  ck_assert_uint_eq (nnic_rng_next (&r), 0xae17533239e499a1ull);
}
END_TEST

START_TEST (test_rng_reproducible)
{
  NnicRng a, b, c;
  nnic_rng_seed (&a, 1234);
  nnic_rng_seed (&b, 1234);
  nnic_rng_seed (&c, 1235);
  int differ = 0;
  for (int i = 0; i < 1000; i++) {
    guint64 x = nnic_rng_next (&a);
    ck_assert_uint_eq (x, nnic_rng_next (&b));
    differ += x != nnic_rng_next (&c);
  }
  ck_assert_int_eq (differ, 1000);
}
END_TEST

START_TEST (test_rng_uniform)
{
  NnicRng r;
  nnic_rng_seed (&r, 7);
  const int n = 200000;
  double sum = 0, lo = 1, hi = 0;
  for (int i = 0; i < n; i++) {
    double u = nnic_rng_uniform (&r);
    ck_assert (u >= 0.0 && u < 1.0);
    sum += u;
    lo = MIN (lo, u);
    hi = MAX (hi, u);
  }
  ck_assert_double_eq_tol (sum / n, 0.5, 0.005);
  ck_assert (lo < 1e-4 && hi > 1 - 1e-4);

  /* below(n): in range, every value about equally often. */
  int count[10] = { 0 };
  for (int i = 0; i < n; i++) {
    guint64 v = nnic_rng_below (&r, 10);
    ck_assert_uint_lt (v, 10);
    count[v]++;
  }
  for (int k = 0; k < 10; k++)
    ck_assert_msg (abs (count[k] - n / 10) < n / 100, "value %d drawn %d times", k, count[k]);
  /* A range that is not a power of two and close to 2^64. */
  guint64 big = 0xc000000000000001ull;
  for (int i = 0; i < 1000; i++)
    ck_assert_uint_lt (nnic_rng_below (&r, big), big);
  ck_assert_uint_eq (nnic_rng_below (&r, 1), 0);
  ck_assert_uint_eq (nnic_rng_below (&r, 0), 0);
}
END_TEST

static Suite *
data_suite (void)
{
  Suite *s = suite_create ("data");
  TCase *tc = tcase_create ("idx");
  tcase_add_test (tc, test_idx_raw_and_gzip);
  tcase_add_test (tc, test_idx_gzip_multiblock);
  tcase_add_test (tc, test_idx_malformed);
  tcase_add_test (tc, test_idx_corrupt_gzip);
  tcase_add_test (tc, test_named_small_dirs);
  tcase_add_test (tc, test_npy_dataset);
  tcase_add_test (tc, test_head);
  suite_add_tcase (s, tc);

  tc = tcase_create ("fashion-mnist");
  tcase_set_timeout (tc, 240);
  tcase_add_test (tc, test_fashion_mnist);
  suite_add_tcase (s, tc);

  tc = tcase_create ("loader");
  tcase_add_test (tc, test_loader_batches);
  tcase_add_test (tc, test_loader_no_allocation);
  tcase_add_test (tc, test_loader_in_order_and_edges);
  suite_add_tcase (s, tc);

  tc = tcase_create ("rng");
  tcase_add_test (tc, test_rng_reference);
  tcase_add_test (tc, test_rng_reproducible);
  tcase_add_test (tc, test_rng_uniform);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return nnic_test_run (data_suite ());
}
