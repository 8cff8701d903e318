/* Internal: small helpers shared by the layer implementations in ops/. */
#pragma once

#include "core/graph.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>

/* Sets an error of NNIC_ERROR / `code` whose message starts with the node's
 * name, so that a bad model definition points at the offending layer. */
static inline void op_error (const NnicNode *node, GError **error, int code, const char *fmt, ...)
  G_GNUC_PRINTF (4, 5);

static inline void
op_error (const NnicNode *node, GError **error, int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, NNIC_ERROR, code, "%s: %s", node->name, msg);
}

/* Input k must be a [C, H, W] image per sample (2-D layers). */
static inline gboolean
op_expect_image (NnicNode *node, guint k, GError **error)
{
  const NnicNode *in = node->inputs[k];
  if (in->shape_ndim != 3) {
    g_autofree char *s = nnic_shape_to_string (in->shape_ndim, in->shape);
    op_error (node, error, NNIC_ERROR_SHAPE,
             "%s needs a [channels, height, width] input per sample, but '%s' gives %s",
             node->op->type, in->name, s);
    return FALSE;
  }
  return TRUE;
}

/* The per-sample output shape setup computed must describe a tensor we
 * can allocate: a huge padding or a bad chain of layers could otherwise
 * overflow int64 before the executor gets to check it. */
static inline gboolean
op_check_output (NnicNode *node, GError **error)
{
  int64_t n = nnic_shape_numel (node->shape_ndim, node->shape);
  if (n < 0 || n > NNIC_TENSOR_MAX_BYTES / (int64_t) sizeof (float)) {
    g_autofree char *s = nnic_shape_to_string (node->shape_ndim, node->shape);
    op_error (node, error, NNIC_ERROR_SHAPE, "the output shape %s per sample is too large", s);
    return FALSE;
  }
  return TRUE;
}

/* BLAS takes int dimensions: refuse anything larger up front (in reshape)
 * rather than overflow inside a kernel. */
static inline gboolean
op_check_blas_dim (NnicNode *node, int64_t n, GError **error)
{
  if (n > INT_MAX) {
    op_error (node, error, NNIC_ERROR_SHAPE,
             "a matrix dimension of %" G_GINT64_FORMAT " is too large for BLAS", n);
    return FALSE;
  }
  return TRUE;
}

/* GCC turns copy loops into memcpy calls; for the short rows of im2col
 * (often 8 to 32 floats) the call costs more than the inline vector copy. */
#if defined(__GNUC__) && !defined(__clang__)
#define OP_INLINE_COPIES __attribute__ ((optimize ("no-tree-loop-distribute-patterns")))
#else
#define OP_INLINE_COPIES
#endif

/* Elementwise loops shorter than this stay on one thread: below it,
 * waking the other threads costs more than they save. */
#define OP_PARALLEL_MIN ((int64_t) 1 << 15)

/* Per-sample element count of a node's output. */
static inline int64_t
op_sample_numel (const NnicNode *n)
{
  return nnic_shape_numel (n->shape_ndim, n->shape);
}

/* Sum with independent partial sums: a strict-IEEE compiler will not
 * reorder one serial sum into vector lanes, but it does pack these. */
static inline float
op_sum (const float *x, int64_t n)
{
  float s[8] = { 0 };
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++)
      s[j] += x[i + j];
  float t = 0.0f;
  for (; i < n; i++)
    t += x[i];
  return t + ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

/* dst += src, n elements. */
static inline void
op_acc (float *restrict dst, const float *restrict src, int64_t n)
{
  for (int64_t i = 0; i < n; i++)
    dst[i] += src[i];
}

/* One axis of a slice, as Python and ONNX mean it: negative start and end
 * count from the end of an axis of `dim` elements, both are clamped to it,
 * and a negative step walks backwards. The first index taken and how many. */
static inline void
op_slice_axis (int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *first, int64_t *count)
{
  if (start < 0)
    start = start < -dim ? -1 : start + dim; /* no overflow from INT64_MIN */
  if (end < 0)
    end = end < -dim ? -1 : end + dim;
  if (step > 0) {
    start = CLAMP (start, 0, dim);
    end = CLAMP (end, 0, dim);
    *count = end > start ? (end - start - 1) / step + 1 : 0;
  } else {
    start = CLAMP (start, 0, dim - 1);
    end = CLAMP (end, -1, dim - 1);
    *count = start > end ? (start - end - 1) / (step < -INT64_MAX ? INT64_MAX : -step) + 1 : 0;
  }
  *first = start;
}

/* Remembers whether the last forward ran in training mode, for ops whose
 * backward differs (BatchNorm2d, Dropout). Lives in node->state. */
typedef struct {
  gboolean training;
} OpModeState;

static inline OpModeState *
op_mode_state (NnicNode *node)
{
  if (!node->state)
    node->state = g_new0 (OpModeState, 1);
  return node->state;
}

static inline void
op_mode_finalize (NnicNode *node)
{
  g_clear_pointer (&node->state, g_free);
}

/* PyTorch's default initialisations (init.c): Conv2d's and Linear's
 * kaiming-uniform weight and uniform bias; BatchNorm's ones and zeros. */
void nnic_init_weighted (NnicNode *n, NnicRng *rng);
void nnic_init_batchnorm (NnicNode *n, NnicRng *rng);

/* BatchNorm1d's and BatchNorm2d's shared ONNX export (batchnorm2d.c). */
gboolean nnic_batchnorm_export (NnicOnnxExporter *x, guint i, GError **error);

/* BatchNorm1d's and BatchNorm2d's shared setup (batchnorm2d.c), after the
 * caller has checked its input and set the output shape. */
gboolean nnic_batchnorm_setup_common (NnicNode *node, const char *what, GError **error);

/* The broadcasting binary ops (Add, Sub, Mul, Div, Pow; binary.c). */
gboolean nnic_op_broadcasts (const NnicOp *op);

/* parameter.c: whether node i is a Parameter of that parameter shape
 * (cs[0..cn)) and per-sample shape (s[0..sn)), so that an initializer read
 * by several nodes makes one node. */
gboolean nnic_parameter_matches (const NnicModel *m, guint i, int cn, const int64_t *cs, int sn,
                                 const int64_t *s);
/* Whether node i is a Parameter exported as a bare initializer, without
 * the batch: every node reading it broadcasts it against a tensor that
 * has the batch (ONNX then aligns it as nnic does). Otherwise its export
 * expands it to [N, shape...]. */
gboolean nnic_parameter_unbatched (const NnicModel *m, guint i);
