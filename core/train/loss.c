/* Cross-entropy: log-softmax and NLL in one numerically stable pass. */
#include <nnic/train.h>
#include <nnic/error.h>

#include <math.h>

double
nnic_cross_entropy (const NnicTensor *logits, const NnicTensor *labels, NnicTensor *grad,
                    int64_t *correct, GError **error)
{
  if (logits->dtype != NNIC_DTYPE_F32 || logits->ndim != 2 || labels->dtype != NNIC_DTYPE_I64 ||
      labels->ndim != 1 || labels->shape[0] != logits->shape[0] || logits->shape[1] < 1 ||
      (grad && (grad->dtype != NNIC_DTYPE_F32 || !nnic_tensor_same_shape (grad, logits)))) {
    g_autofree char *a = nnic_shape_to_string (logits->ndim, logits->shape);
    g_autofree char *b = nnic_shape_to_string (labels->ndim, labels->shape);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "cross-entropy takes float32 logits [B, K] and int64 labels [B], got %s %s and %s %s",
                 nnic_dtype_name (logits->dtype), a, nnic_dtype_name (labels->dtype), b);
    return NAN;
  }
  int64_t B = logits->shape[0], K = logits->shape[1];
  for (int64_t b = 0; b < B; b++)
    if (labels->i64[b] < 0 || labels->i64[b] >= K) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                   "label %" G_GINT64_FORMAT " of sample %" G_GINT64_FORMAT " is outside [0, %" G_GINT64_FORMAT ")",
                   labels->i64[b], b, K);
      return NAN;
    }
  double total = 0.0;
  int64_t hits = 0;
  for (int64_t b = 0; b < B; b++) {
    const float *z = logits->f32 + b * K;
    int64_t y = labels->i64[b], arg = 0;
    float max = z[0];
    for (int64_t k = 1; k < K; k++)
      if (z[k] > max) {
        max = z[k];
        arg = k;
      }
    double sum = 0.0;
    for (int64_t k = 0; k < K; k++)
      sum += exp ((double) z[k] - max);
    double log_sum = log (sum);
    total += log_sum - ((double) z[y] - max);
    hits += arg == y;
    if (grad) {
      /* d(mean loss)/dz = (softmax(z) - onehot(y)) / B */
      float *g = grad->f32 + b * K;
      for (int64_t k = 0; k < K; k++)
        g[k] = (float) ((exp ((double) z[k] - max - log_sum) - (k == y)) / (double) B);
    }
  }
  if (correct)
    *correct = hits;
  return B > 0 ? total / (double) B : 0.0;
}
