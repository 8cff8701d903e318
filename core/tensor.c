/* Tensors: allocation with checked sizes, views, copies. */
#include <nnic/tensor.h>
#include <nnic/error.h>

#include <stdarg.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#define NNIC_ALIGN 64

size_t
nnic_dtype_size (NnicDType dtype)
{
  switch (dtype) {
  case NNIC_DTYPE_F32: return 4;
  case NNIC_DTYPE_I64: return 8;
  case NNIC_DTYPE_U8: return 1;
  case NNIC_DTYPE_I8: return 1;
  case NNIC_DTYPE_I32: return 4;
  }
  return 0;
}

const char *
nnic_dtype_name (NnicDType dtype)
{
  switch (dtype) {
  case NNIC_DTYPE_F32: return "float32";
  case NNIC_DTYPE_I64: return "int64";
  case NNIC_DTYPE_U8: return "uint8";
  case NNIC_DTYPE_I8: return "int8";
  case NNIC_DTYPE_I32: return "int32";
  }
  return "unknown";
}

int64_t
nnic_shape_numel (int ndim, const int64_t *shape)
{
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0)
      return -1;
    if (shape[i] != 0 && n > INT64_MAX / shape[i])
      return -1;
    n *= shape[i];
  }
  return n;
}

char *
nnic_shape_to_string (int ndim, const int64_t *shape)
{
  GString *s = g_string_new ("[");
  for (int i = 0; i < ndim; i++)
    g_string_append_printf (s, i ? ", %" G_GINT64_FORMAT : "%" G_GINT64_FORMAT, shape[i]);
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static gboolean
check_shape (NnicDType dtype, int ndim, const int64_t *shape, int64_t *numel, GError **error)
{
  if (nnic_dtype_size (dtype) == 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "unknown tensor dtype %d", (int) dtype);
    return FALSE;
  }
  if (ndim < 0 || ndim > NNIC_MAX_DIMS) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "a tensor has 0 to %d dimensions, not %d", NNIC_MAX_DIMS, ndim);
    return FALSE;
  }
  int64_t n = nnic_shape_numel (ndim, shape);
  if (n < 0 || n > NNIC_TENSOR_MAX_BYTES / (int64_t) nnic_dtype_size (dtype)) {
    g_autofree char *s = nnic_shape_to_string (ndim, shape);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "tensor shape %s is negative or too large (limit %" G_GINT64_FORMAT " bytes)",
                 s, NNIC_TENSOR_MAX_BYTES);
    return FALSE;
  }
  *numel = n;
  return TRUE;
}

/* Zeroed memory aligned by hand on top of calloc: for large sizes glibc
 * maps fresh pages, zero without being touched, so a tensor nobody has
 * written yet (the gradients of a model that is only run) costs no
 * resident memory. The block's start is kept just below the data. */
static void *
aligned_zalloc (size_t bytes)
{
  void *base = calloc (1, bytes + NNIC_ALIGN + sizeof (void *));
  if (!base)
    return NULL;
  uintptr_t p = ((uintptr_t) base + sizeof (void *) + NNIC_ALIGN - 1) & ~(uintptr_t) (NNIC_ALIGN - 1);
  ((void **) p)[-1] = base;
  return (void *) p;
}

static void
aligned_free (void *data)
{
  if (data)
    free (((void **) data)[-1]);
}

NnicTensor *
nnic_tensor_new (NnicDType dtype, int ndim, const int64_t *shape, GError **error)
{
  int64_t numel;
  if (!check_shape (dtype, ndim, shape, &numel, error))
    return NULL;
  size_t bytes = (size_t) numel * nnic_dtype_size (dtype);
  /* Round up so vector loops may read a whole last cache line. */
  size_t alloc = (bytes + NNIC_ALIGN - 1) / NNIC_ALIGN * NNIC_ALIGN;
  if (alloc == 0)
    alloc = NNIC_ALIGN;
  void *data = aligned_zalloc (alloc);
  if (!data) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_MEMORY,
                 "out of memory allocating a tensor of %zu bytes", bytes);
    return NULL;
  }
  NnicTensor *t = g_new0 (NnicTensor, 1);
  t->dtype = dtype;
  t->ndim = ndim;
  for (int i = 0; i < ndim; i++)
    t->shape[i] = shape[i];
  t->numel = numel;
  t->data = data;
  t->owns_data = TRUE;
  return t;
}

NnicTensor *
nnic_tensor_new_f32 (GError **error, int ndim, ...)
{
  int64_t shape[NNIC_MAX_DIMS] = { 0 };
  if (ndim < 0 || ndim > NNIC_MAX_DIMS) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "a tensor has 0 to %d dimensions, not %d", NNIC_MAX_DIMS, ndim);
    return NULL;
  }
  va_list ap;
  va_start (ap, ndim);
  for (int i = 0; i < ndim; i++)
    shape[i] = va_arg (ap, int64_t);
  va_end (ap);
  return nnic_tensor_new (NNIC_DTYPE_F32, ndim, shape, error);
}

NnicTensor *
nnic_tensor_new_like (const NnicTensor *t, GError **error)
{
  return nnic_tensor_new (t->dtype, t->ndim, t->shape, error);
}

NnicTensor *
nnic_tensor_copy (const NnicTensor *t, GError **error)
{
  NnicTensor *c = nnic_tensor_new_like (t, error);
  if (c)
    memcpy (c->data, t->data, nnic_tensor_nbytes (t));
  return c;
}

NnicTensor *
nnic_tensor_view (NnicTensor *t, int ndim, const int64_t *shape, GError **error)
{
  int64_t numel;
  if (!check_shape (t->dtype, ndim, shape, &numel, error))
    return NULL;
  if (numel != t->numel) {
    g_autofree char *a = nnic_shape_to_string (t->ndim, t->shape);
    g_autofree char *b = nnic_shape_to_string (ndim, shape);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE, "cannot view a tensor of shape %s as %s", a, b);
    return NULL;
  }
  NnicTensor *v = g_new0 (NnicTensor, 1);
  *v = *t;
  v->ndim = ndim;
  for (int i = 0; i < NNIC_MAX_DIMS; i++)
    v->shape[i] = i < ndim ? shape[i] : 0;
  v->owns_data = FALSE;
  return v;
}

void
nnic_tensor_free (NnicTensor *t)
{
  if (!t)
    return;
  if (t->owns_data)
    aligned_free (t->data);
  g_free (t);
}

size_t
nnic_tensor_nbytes (const NnicTensor *t)
{
  return (size_t) t->numel * nnic_dtype_size (t->dtype);
}

void
nnic_tensor_zero (NnicTensor *t)
{
  memset (t->data, 0, nnic_tensor_nbytes (t));
}

void
nnic_tensor_fill (NnicTensor *t, float value)
{
  g_return_if_fail (t->dtype == NNIC_DTYPE_F32);
  for (int64_t i = 0; i < t->numel; i++)
    t->f32[i] = value;
}

gboolean
nnic_tensor_same_shape (const NnicTensor *a, const NnicTensor *b)
{
  if (a->ndim != b->ndim)
    return FALSE;
  for (int i = 0; i < a->ndim; i++)
    if (a->shape[i] != b->shape[i])
      return FALSE;
  return TRUE;
}

gboolean
nnic_tensor_copy_into (NnicTensor *dst, const NnicTensor *src, GError **error)
{
  if (dst->dtype != src->dtype || !nnic_tensor_same_shape (dst, src)) {
    g_autofree char *a = nnic_shape_to_string (src->ndim, src->shape);
    g_autofree char *b = nnic_shape_to_string (dst->ndim, dst->shape);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE, "cannot copy a %s tensor %s into a %s tensor %s",
                 nnic_dtype_name (src->dtype), a, nnic_dtype_name (dst->dtype), b);
    return FALSE;
  }
  memcpy (dst->data, src->data, nnic_tensor_nbytes (src));
  return TRUE;
}
