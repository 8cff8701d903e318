/* IDX files (the MNIST family), raw or gzip-compressed.
 *
 * Layout: two zero bytes, a type byte (0x08: unsigned byte), the number of
 * dimensions, then each dimension as a big-endian u32, then the data.
 * Images are 0x00000803 (N × H × W), labels 0x00000801 (N).
 *
 * A gzip file is inflated in two steps: first just the header, which is
 * checked (dimensions, total size, and whether the compressed file could
 * possibly hold that much), then the payload into a buffer of exactly the
 * announced size. A header's claim is never allocated before it is checked.
 */
#include "core/io/file_util.h"
#include <nnic/data.h>
#include <nnic/error.h>

#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <zlib.h>

#define IDX_MAX_DIM ((int64_t) 1 << 24)
#define IDX_MAX_BYTES ((int64_t) 1 << 31)
/* Deflate cannot compress better than about 1032:1. */
#define DEFLATE_MAX_RATIO 1100

typedef struct {
  int ndim;
  int64_t dims[3];
  guint8 *data; /* dims' product bytes */
} IdxArray;

static void
idx_array_clear (IdxArray *a)
{
  g_free (a->data);
  a->data = NULL;
}

/* ---- a byte source: the mapped file itself, or a gzip stream over it ---- */

typedef struct {
  const char *path;
  const guint8 *in;
  size_t in_len;
  size_t pos; /* raw files: read position */
  gboolean gzip;
  z_stream z;
  gboolean z_live;
  gboolean z_end; /* the last gzip member ended */
} Source;

static gboolean
source_init (Source *s, const char *path, const guint8 *in, size_t len, GError **error)
{
  memset (s, 0, sizeof *s);
  s->path = path;
  s->in = in;
  s->in_len = len;
  s->gzip = len >= 2 && in[0] == 0x1f && in[1] == 0x8b;
  if (!s->gzip)
    return TRUE;
  /* 16 + MAX_WBITS: expect a gzip wrapper. */
  if (inflateInit2 (&s->z, 16 + MAX_WBITS) != Z_OK) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_MEMORY, "%s: cannot start zlib", path);
    return FALSE;
  }
  s->z_live = TRUE;
  s->z.next_in = (Bytef *) in;
  s->z.avail_in = (uInt) MIN (len, (size_t) G_MAXUINT32);
  return TRUE;
}

static void
source_clear (Source *s)
{
  if (s->z_live)
    inflateEnd (&s->z);
  s->z_live = FALSE;
}

/* Bytes of input left (compressed bytes for gzip). */
static size_t
source_remaining_input (const Source *s)
{
  if (!s->gzip)
    return s->in_len - s->pos;
  return s->in_len - (size_t) ((const guint8 *) s->z.next_in - s->in);
}

static gboolean
inflate_into (Source *s, guint8 *out, size_t len, size_t *got, GError **error)
{
  *got = 0;
  while (*got < len && !s->z_end) {
    size_t consumed = (size_t) ((const guint8 *) s->z.next_in - s->in);
    s->z.avail_in = (uInt) MIN (s->in_len - consumed, (size_t) G_MAXUINT32);
    s->z.next_out = out + *got;
    s->z.avail_out = (uInt) MIN (len - *got, (size_t) G_MAXUINT32);
    uInt before = s->z.avail_out;
    int rc = inflate (&s->z, Z_NO_FLUSH);
    *got += before - s->z.avail_out;
    if (rc == Z_STREAM_END) {
      /* Concatenated gzip members form one stream (as gunzip reads them). */
      if (s->z.avail_in > 0 && inflateReset (&s->z) == Z_OK)
        continue;
      s->z_end = TRUE;
    } else if (rc == Z_BUF_ERROR && s->z.avail_in == 0) {
      break; /* truncated: the caller reports the short read */
    } else if (rc != Z_OK) {
      nnic_format_error (error, s->path, "corrupt gzip data (%s)", s->z.msg ? s->z.msg : "zlib error");
      return FALSE;
    }
  }
  return TRUE;
}

/* Reads exactly `len` bytes, or fails naming `what`. */
static gboolean
source_read (Source *s, guint8 *out, size_t len, const char *what, GError **error)
{
  size_t got;
  if (s->gzip) {
    if (!inflate_into (s, out, len, &got, error))
      return FALSE;
  } else {
    got = MIN (len, s->in_len - s->pos);
    if (got) /* an empty file maps to NULL */
      memcpy (out, s->in + s->pos, got);
    s->pos += got;
  }
  if (got < len) {
    nnic_format_error (error, s->path, "truncated %s (%zu of %zu bytes)", what, got, len);
    return FALSE;
  }
  return TRUE;
}

/* After the payload: nothing may follow. */
static gboolean
source_check_end (Source *s, GError **error)
{
  guint8 extra;
  size_t got = 0;
  if (s->gzip) {
    if (!inflate_into (s, &extra, 1, &got, error))
      return FALSE;
    /* The trailer holds the CRC: a stream cut there is not verified. */
    if (got == 0 && !s->z_end) {
      nnic_format_error (error, s->path, "truncated gzip stream (no end marker and checksum)");
      return FALSE;
    }
  } else {
    got = s->in_len - s->pos;
  }
  if (got > 0) {
    nnic_format_error (error, s->path, "more data than the header announces");
    return FALSE;
  }
  return TRUE;
}

/* ---- IDX ---- */

static gboolean
read_header (Source *s, guint32 magic, IdxArray *a, int64_t *total, GError **error)
{
  guint8 head[4 + 4 * 3];
  if (!source_read (s, head, 4, "header", error))
    return FALSE;
  guint32 got = (guint32) head[0] << 24 | (guint32) head[1] << 16 | (guint32) head[2] << 8 | head[3];
  if (got != magic) {
    nnic_format_error (error, s->path, "bad magic number 0x%08x (expected 0x%08x: %s)", got, magic,
                  magic == 0x803 ? "uint8 images N×H×W" : "uint8 labels N");
    return FALSE;
  }
  a->ndim = magic & 0xff;
  if (!source_read (s, head + 4, 4 * (size_t) a->ndim, "header", error))
    return FALSE;
  *total = 1;
  for (int i = 0; i < a->ndim; i++) {
    const guint8 *p = head + 4 + 4 * i;
    a->dims[i] = (int64_t) ((guint32) p[0] << 24 | (guint32) p[1] << 16 | (guint32) p[2] << 8 | p[3]);
    if (a->dims[i] > IDX_MAX_DIM) {
      nnic_format_error (error, s->path, "dimension %d is %" G_GINT64_FORMAT ", above the limit of %"
                    G_GINT64_FORMAT, i, a->dims[i], IDX_MAX_DIM);
      return FALSE;
    }
    *total *= a->dims[i]; /* at most 2^31 * 2^24: no overflow */
    if (*total > IDX_MAX_BYTES) {
      nnic_format_error (error, s->path, "the data would be over %" G_GINT64_FORMAT " bytes",
                    IDX_MAX_BYTES);
      return FALSE;
    }
  }
  return TRUE;
}

/* Could the rest of the file hold `total` bytes? Checked before allocating. */
static gboolean
check_plausible (Source *s, int64_t total, GError **error)
{
  uint64_t left = source_remaining_input (s);
  uint64_t most = s->gzip ? left * DEFLATE_MAX_RATIO + 64 : left;
  if ((uint64_t) total > most) {
    nnic_format_error (error, s->path,
                  "truncated: the header announces %" G_GINT64_FORMAT " bytes of data, the file "
                  "has %s%" G_GUINT64_FORMAT " bytes left",
                  total, s->gzip ? "only " : "", left);
    return FALSE;
  }
  return TRUE;
}

static gboolean
read_idx (const char *path, guint32 magic, IdxArray *a, GError **error)
{
  g_autoptr (GMappedFile) mf = nnic_file_map (path, error);
  if (!mf)
    return FALSE;
  Source s;
  if (!source_init (&s, path, (const guint8 *) g_mapped_file_get_contents (mf),
                    g_mapped_file_get_length (mf), error))
    return FALSE;
  int64_t total = 0;
  gboolean ok = read_header (&s, magic, a, &total, error) && check_plausible (&s, total, error);
  if (ok) {
    a->data = g_try_malloc (total ? (size_t) total : 1);
    if (!a->data) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_MEMORY, "%s: out of memory for %" G_GINT64_FORMAT
                   " bytes", path, total);
      ok = FALSE;
    }
  }
  ok = ok && source_read (&s, a->data, (size_t) total, "data", error)
       && source_check_end (&s, error);
  source_clear (&s);
  if (!ok)
    idx_array_clear (a);
  return ok;
}

/* ---- the data set ---- */

static NnicTensor *
images_to_tensor (const IdxArray *a, float mean, float std, GError **error)
{
  int64_t shape[4] = { a->dims[0], 1, a->dims[1], a->dims[2] };
  NnicTensor *t = nnic_tensor_new (NNIC_DTYPE_F32, 4, shape, error);
  if (!t)
    return NULL;
  /* One lookup per pixel: the 256 possible values are computed once. */
  float lut[256];
  for (int v = 0; v < 256; v++)
    lut[v] = ((float) v / 255.0f - mean) / std;
  for (int64_t i = 0; i < t->numel; i++)
    t->f32[i] = lut[a->data[i]];
  return t;
}

static NnicTensor *
labels_to_tensor (const IdxArray *a, int *n_classes, GError **error)
{
  NnicTensor *t = nnic_tensor_new (NNIC_DTYPE_I64, 1, a->dims, error);
  if (!t)
    return NULL;
  int max = -1;
  for (int64_t i = 0; i < t->numel; i++) {
    t->i64[i] = a->data[i];
    max = MAX (max, (int) a->data[i]);
  }
  *n_classes = max + 1;
  return t;
}

NnicDataset *
nnic_dataset_load_idx (const char *images_path, const char *labels_path, float mean, float std,
                       GError **error)
{
  g_return_val_if_fail (images_path != NULL && labels_path != NULL, NULL);
  if (!(std > 0.0f) || !isfinite (std) || !isfinite (mean)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "normalisation needs a finite mean and a positive std (got %g, %g)", mean, std);
    return NULL;
  }
  IdxArray img = { 0 }, lab = { 0 };
  NnicDataset *d = NULL;
  if (!read_idx (images_path, 0x803, &img, error) || !read_idx (labels_path, 0x801, &lab, error))
    goto out;
  if (img.dims[0] != lab.dims[0]) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s has %" G_GINT64_FORMAT " images but %s has %" G_GINT64_FORMAT " labels",
                 images_path, img.dims[0], labels_path, lab.dims[0]);
    goto out;
  }
  d = g_new0 (NnicDataset, 1);
  d->images = images_to_tensor (&img, mean, std, error);
  d->labels = d->images ? labels_to_tensor (&lab, &d->n_classes, error) : NULL;
  if (!d->labels)
    g_clear_pointer (&d, nnic_dataset_free);
out:
  idx_array_clear (&img);
  idx_array_clear (&lab);
  return d;
}
