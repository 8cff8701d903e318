/* nnic — tensors.
 *
 * A tensor is a contiguous, row-major array of up to NNIC_MAX_DIMS dimensions
 * (NCHW for images) in 64-byte aligned storage. float32 is the working type;
 * int64 holds labels and counters, uint8/int8 masks and quantized weights.
 * The struct is public, llm.c-style: kernels read `t->f32` directly.
 */
#pragma once

#include <glib.h>
#include <stdint.h>
#include <nnic/export.h>

G_BEGIN_DECLS

#define NNIC_MAX_DIMS 8
/* Refuse tensors above this many bytes: a corrupt header must not make us
 * try to allocate terabytes. 16 GiB is far above any model nnic targets. */
#define NNIC_TENSOR_MAX_BYTES ((int64_t) 16 << 30)

/* Append-only. */
typedef enum {
  NNIC_DTYPE_F32 = 0,
  NNIC_DTYPE_I64 = 1,
  NNIC_DTYPE_U8 = 2,
  NNIC_DTYPE_I8 = 3,
  NNIC_DTYPE_I32 = 4,
} NnicDType;

typedef struct {
  NnicDType dtype;
  int ndim;
  int64_t shape[NNIC_MAX_DIMS];
  int64_t numel;
  union {
    void *data;
    float *f32;
    int64_t *i64;
    uint8_t *u8;
    int8_t *i8;
    int32_t *i32;
  };
  gboolean owns_data; /* FALSE for views */
} NnicTensor;

NNIC_API size_t nnic_dtype_size (NnicDType dtype);
NNIC_API const char *nnic_dtype_name (NnicDType dtype);

/* A zero-filled tensor. Fails on a negative dimension, more than
 * NNIC_MAX_DIMS dimensions, overflow, or more than NNIC_TENSOR_MAX_BYTES. */
NNIC_API NnicTensor *nnic_tensor_new (NnicDType dtype, int ndim, const int64_t *shape,
                                      GError **error);
/* Shorthand for float32 with dimensions given inline, e.g. nnic_tensor_new_f32 (&err, 2, 3, 4). */
NNIC_API NnicTensor *nnic_tensor_new_f32 (GError **error, int ndim, ...);
NNIC_API NnicTensor *nnic_tensor_new_like (const NnicTensor *t, GError **error);
NNIC_API NnicTensor *nnic_tensor_copy (const NnicTensor *t, GError **error);
/* A view with another shape over the same data (same numel); never owns it. */
NNIC_API NnicTensor *nnic_tensor_view (NnicTensor *t, int ndim, const int64_t *shape,
                                       GError **error);
NNIC_API void nnic_tensor_free (NnicTensor *t);

NNIC_API void nnic_tensor_zero (NnicTensor *t);
NNIC_API void nnic_tensor_fill (NnicTensor *t, float value);
NNIC_API size_t nnic_tensor_nbytes (const NnicTensor *t);
NNIC_API gboolean nnic_tensor_same_shape (const NnicTensor *a, const NnicTensor *b);
/* Copies src into dst; shapes and dtypes must agree. */
NNIC_API gboolean nnic_tensor_copy_into (NnicTensor *dst, const NnicTensor *src, GError **error);
/* "[64, 1, 28, 28]"; free with g_free. */
NNIC_API char *nnic_shape_to_string (int ndim, const int64_t *shape);
/* Total elements, or -1 on a negative dimension or overflow. */
NNIC_API int64_t nnic_shape_numel (int ndim, const int64_t *shape);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnicTensor, nnic_tensor_free)

G_END_DECLS
