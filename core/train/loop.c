/* The training and evaluation loops. */
#include <nnic/train.h>
#include <nnic/error.h>

#include <math.h>
#include <string.h>

/* The loss gradient for a batch: reused while the batch size stays. */
static gboolean
ensure_grad (NnicTensor **grad, const NnicTensor *logits, GError **error)
{
  if (*grad && nnic_tensor_same_shape (*grad, logits))
    return TRUE;
  nnic_tensor_free (*grad);
  *grad = nnic_tensor_new_like (logits, error);
  return *grad != NULL;
}

gboolean
nnic_train_epoch (NnicModel *m, NnicOptimizer *opt, NnicLoader *loader, guint epoch,
                  guint n_epochs, NnicProgressFn progress, gpointer user_data,
                  NnicEpochStats *stats, GError **error)
{
  NnicTrainCallbacks cb = { .progress = progress, .user_data = user_data };
  return nnic_train_epoch_with (m, opt, loader, epoch, n_epochs, &cb, stats, error);
}

gboolean
nnic_train_epoch_with (NnicModel *m, NnicOptimizer *opt, NnicLoader *loader, guint epoch,
                       guint n_epochs, const NnicTrainCallbacks *cb, NnicEpochStats *stats,
                       GError **error)
{
  const NnicTrainCallbacks none = { 0 };
  if (!cb)
    cb = &none;
  g_autoptr (NnicTensor) grad = NULL;
  const NnicTensor *x, *y;
  double loss_sum = 0.0;
  int64_t seen = 0, correct_sum = 0;
  guint batch = 0, n_batches = nnic_loader_n_batches (loader);
  gint64 t0 = g_get_monotonic_time ();

  nnic_model_set_training (m, TRUE);
  nnic_loader_start_epoch (loader, epoch);
  while (nnic_loader_next (loader, &x, &y)) {
    if (cb->before_batch && !cb->before_batch (epoch, batch, n_batches, cb->user_data, error))
      return FALSE;
    const NnicTensor *logits = nnic_model_forward (m, x, error);
    if (!logits || !ensure_grad (&grad, logits, error))
      return FALSE;
    int64_t correct = 0;
    double loss = nnic_cross_entropy (logits, y, grad, &correct, error);
    if (isnan (loss) && error && *error)
      return FALSE;
    nnic_model_zero_grad (m);
    if (!nnic_model_backward (m, grad, error))
      return FALSE;
    nnic_optimizer_step (opt);

    batch++;
    seen += x->shape[0];
    loss_sum += loss * (double) x->shape[0];
    correct_sum += correct;
    if (cb->progress) {
      double elapsed = (double) (g_get_monotonic_time () - t0) / 1e6;
      NnicProgress p = {
        .epoch = epoch, .n_epochs = n_epochs, .batch = batch, .n_batches = n_batches,
        .loss = loss_sum / (double) seen,
        .images_per_s = elapsed > 0 ? (double) seen / elapsed : 0.0,
        .elapsed_s = elapsed,
        .eta_s = batch ? elapsed / batch * (n_batches - batch) : 0.0,
      };
      cb->progress (&p, cb->user_data);
    }
  }
  if (stats) {
    double secs = (double) (g_get_monotonic_time () - t0) / 1e6;
    stats->loss = seen ? loss_sum / (double) seen : 0.0;
    stats->accuracy = seen ? (double) correct_sum / (double) seen : 0.0;
    stats->seconds = secs;
    stats->images_per_s = secs > 0 ? (double) seen / secs : 0.0;
  }
  return TRUE;
}

gboolean
nnic_evaluate (NnicModel *m, const NnicDataset *d, int batch_size, double *accuracy, double *loss,
               GError **error)
{
  if (batch_size <= 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "batch size must be positive, got %d",
                 batch_size);
    return FALSE;
  }
  const int64_t n = d->images->shape[0];
  const int64_t per_sample = n ? d->images->numel / n : 0;
  gboolean was_training = nnic_model_get_training (m);
  nnic_model_set_training (m, FALSE);
  double loss_sum = 0.0;
  int64_t correct_sum = 0;
  gboolean ok = TRUE;
  for (int64_t start = 0; start < n && ok; start += batch_size) {
    int64_t b = MIN ((int64_t) batch_size, n - start);
    /* Batches are views into the data set: evaluation copies nothing. */
    NnicTensor x = *d->images, y = *d->labels;
    x.shape[0] = b;
    x.numel = b * per_sample;
    x.f32 = d->images->f32 + start * per_sample;
    x.owns_data = FALSE;
    y.shape[0] = b;
    y.numel = b;
    y.i64 = d->labels->i64 + start;
    y.owns_data = FALSE;
    const NnicTensor *logits = nnic_model_forward (m, &x, error);
    int64_t correct = 0;
    double l = logits ? nnic_cross_entropy (logits, &y, NULL, &correct, error) : NAN;
    ok = logits && !isnan (l);
    loss_sum += l * (double) b;
    correct_sum += correct;
  }
  nnic_model_set_training (m, was_training);
  if (!ok)
    return FALSE;
  if (accuracy)
    *accuracy = n ? (double) correct_sum / (double) n : 0.0;
  if (loss)
    *loss = n ? loss_sum / (double) n : 0.0;
  return TRUE;
}
