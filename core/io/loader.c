/* Batches over a data set, in a seeded order.
 *
 * Everything a batch needs is allocated in nnic_loader_new: the batch
 * tensors, the smaller tensors of the last batch (views over the same
 * storage) and the permutation. nnic_loader_next only copies rows, so a
 * training step never allocates.
 */
#include <nnic/data.h>
#include <nnic/error.h>

#include <string.h>

struct _NnicLoader {
  const NnicDataset *d;
  int64_t n;          /* samples */
  int64_t batch;      /* batch size asked for */
  gboolean shuffle;
  guint64 seed;

  guint n_batches;
  int64_t *order;     /* sample index of each position */
  int64_t pos;

  size_t image_row;   /* bytes per sample */
  size_t label_row;
  NnicTensor *images; /* [min(batch, n), ...] */
  NnicTensor *labels;
  NnicTensor *tail_images; /* last batch when it is smaller; views */
  NnicTensor *tail_labels;
};

/* A view of the first `rows` rows of `t`, built once. */
static NnicTensor *
leading_rows (NnicTensor *t, int64_t rows)
{
  NnicTensor *v = g_new0 (NnicTensor, 1);
  *v = *t;
  v->shape[0] = rows;
  v->numel = t->shape[0] ? t->numel / t->shape[0] * rows : 0;
  v->owns_data = FALSE;
  return v;
}

static NnicTensor *
new_batch_tensor (const NnicTensor *like, int64_t rows, GError **error)
{
  int64_t shape[NNIC_MAX_DIMS];
  memcpy (shape, like->shape, sizeof shape);
  shape[0] = rows;
  return nnic_tensor_new (like->dtype, like->ndim, shape, error);
}

static gboolean
check_dataset (const NnicDataset *d, int batch_size, GError **error)
{
  if (batch_size <= 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "batch size must be positive, not %d",
                 batch_size);
    return FALSE;
  }
  if (!d || !d->images || !d->labels || d->images->ndim < 1 || d->labels->ndim != 1
      || d->labels->shape[0] != d->images->shape[0]) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "a loader needs a data set with images [N, ...] and labels [N]");
    return FALSE;
  }
  return TRUE;
}

NnicLoader *
nnic_loader_new (const NnicDataset *d, int batch_size, gboolean shuffle, guint64 seed,
                 GError **error)
{
  if (!check_dataset (d, batch_size, error))
    return NULL;
  g_autoptr (NnicLoader) l = g_new0 (NnicLoader, 1);
  l->d = d;
  l->n = d->images->shape[0];
  l->batch = batch_size;
  l->shuffle = shuffle;
  l->seed = seed;
  l->n_batches = (guint) ((l->n + l->batch - 1) / l->batch);
  l->image_row = l->n ? nnic_tensor_nbytes (d->images) / (size_t) l->n : 0;
  l->label_row = nnic_dtype_size (d->labels->dtype);

  int64_t full = MIN (l->batch, l->n);
  l->images = new_batch_tensor (d->images, full, error);
  l->labels = l->images ? new_batch_tensor (d->labels, full, error) : NULL;
  if (!l->labels)
    return NULL;
  int64_t tail = l->n - (int64_t) (l->n_batches ? l->n_batches - 1 : 0) * l->batch;
  if (tail != full) {
    l->tail_images = leading_rows (l->images, tail);
    l->tail_labels = leading_rows (l->labels, tail);
  }
  l->order = g_new (int64_t, l->n ? l->n : 1);
  nnic_loader_start_epoch (l, 0);
  return g_steal_pointer (&l);
}

void
nnic_loader_free (NnicLoader *l)
{
  if (!l)
    return;
  nnic_tensor_free (l->images);
  nnic_tensor_free (l->labels);
  nnic_tensor_free (l->tail_images);
  nnic_tensor_free (l->tail_labels);
  g_free (l->order);
  g_free (l);
}

void
nnic_loader_start_epoch (NnicLoader *l, guint epoch)
{
  g_return_if_fail (l != NULL);
  l->pos = 0;
  for (int64_t i = 0; i < l->n; i++)
    l->order[i] = i;
  if (!l->shuffle)
    return;
  /* Each epoch's order depends on (seed, epoch) alone, not on the epochs
   * before it, so a resumed run shuffles as the uninterrupted one did.
   * Seeding runs the key through splitmix64, which scrambles it well. */
  NnicRng r;
  nnic_rng_seed (&r, l->seed ^ (0x9e3779b97f4a7c15ull * ((guint64) epoch + 1)));
  for (int64_t i = l->n - 1; i > 0; i--) {
    int64_t j = (int64_t) nnic_rng_below (&r, (guint64) i + 1);
    int64_t t = l->order[i];
    l->order[i] = l->order[j];
    l->order[j] = t;
  }
}

static void
gather (NnicTensor *dst, const NnicTensor *src, size_t row, const int64_t *idx, int64_t rows,
        gboolean contiguous)
{
  guint8 *out = dst->data;
  const guint8 *in = src->data;
  if (contiguous) {
    memcpy (out, in + (size_t) idx[0] * row, (size_t) rows * row);
    return;
  }
  for (int64_t k = 0; k < rows; k++)
    memcpy (out + (size_t) k * row, in + (size_t) idx[k] * row, row);
}

gboolean
nnic_loader_next (NnicLoader *l, const NnicTensor **images, const NnicTensor **labels)
{
  g_return_val_if_fail (l != NULL, FALSE);
  if (l->pos >= l->n)
    return FALSE;
  int64_t rows = MIN (l->batch, l->n - l->pos);
  NnicTensor *img = rows == l->images->shape[0] ? l->images : l->tail_images;
  NnicTensor *lab = rows == l->labels->shape[0] ? l->labels : l->tail_labels;
  const int64_t *idx = l->order + l->pos;
  gather (img, l->d->images, l->image_row, idx, rows, !l->shuffle);
  gather (lab, l->d->labels, l->label_row, idx, rows, !l->shuffle);
  l->pos += rows;
  if (images)
    *images = img;
  if (labels)
    *labels = lab;
  return TRUE;
}

guint
nnic_loader_n_batches (const NnicLoader *l)
{
  g_return_val_if_fail (l != NULL, 0);
  return l->n_batches;
}
