/* nnic — data sets and batching.
 *
 * A data set is a float32 image tensor [N, C, H, W] and an int64 label
 * tensor [N]. A loader hands out batches in a seeded order: the same seed
 * gives the same batches, epoch after epoch, on every machine.
 */
#pragma once

#include <glib.h>
#include <nnic/export.h>
#include <nnic/tensor.h>

G_BEGIN_DECLS

typedef struct {
  NnicTensor *images; /* [N, C, H, W] float32, normalised */
  NnicTensor *labels; /* [N] int64 */
  int n_classes;
} NnicDataset;

NNIC_API void nnic_dataset_free (NnicDataset *d);

/* IDX files (the MNIST family), raw or gzip (detected from the content).
 * Pixels are scaled to [0, 1] then normalised: (x - mean) / std. */
NNIC_API NnicDataset *nnic_dataset_load_idx (const char *images_path, const char *labels_path,
                                             float mean, float std, GError **error);
/* A named data set: "fashion-mnist" (Debian's dataset-fashion-mnist,
 * normalised with mean 0.2860 and std 0.3530). `dir` overrides where the
 * files are looked for (NULL: $NNIC_DATA_DIR, then the Debian location). */
NNIC_API NnicDataset *nnic_dataset_load_named (const char *name, gboolean train, const char *dir,
                                               GError **error);
/* From .npy files: inputs [N, ...] float32, labels [N] int64. */
NNIC_API NnicDataset *nnic_dataset_load_npy (const char *inputs_path, const char *labels_path,
                                             GError **error);
/* The first n samples (a view that copies; for quick runs and tests). */
NNIC_API NnicDataset *nnic_dataset_head (const NnicDataset *d, int64_t n, GError **error);

/* Batches over a data set. */
typedef struct _NnicLoader NnicLoader;

/* shuffle: a fresh permutation each epoch, derived from (seed, epoch).
 * The data set must outlive the loader. */
NNIC_API NnicLoader *nnic_loader_new (const NnicDataset *d, int batch_size, gboolean shuffle,
                                      guint64 seed, GError **error);
NNIC_API void nnic_loader_free (NnicLoader *l);
/* Starts epoch `epoch` (0-based): resets the position and reshuffles. */
NNIC_API void nnic_loader_start_epoch (NnicLoader *l, guint epoch);
/* Fills the next batch (the last one may be smaller); FALSE at the end of
 * the epoch. The tensors belong to the loader until the next call. */
NNIC_API gboolean nnic_loader_next (NnicLoader *l, const NnicTensor **images,
                                    const NnicTensor **labels);
NNIC_API guint nnic_loader_n_batches (const NnicLoader *l);

/* A small, fast, seedable generator (splitmix64-seeded xoshiro256**), so
 * results do not depend on the C library or GLib version. */
typedef struct { guint64 s[4]; } NnicRng;
NNIC_API void nnic_rng_seed (NnicRng *r, guint64 seed);
NNIC_API guint64 nnic_rng_next (NnicRng *r);
/* Uniform in [0, 1). */
NNIC_API double nnic_rng_uniform (NnicRng *r);
/* Uniform integer in [0, n). */
NNIC_API guint64 nnic_rng_below (NnicRng *r, guint64 n);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnicDataset, nnic_dataset_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnicLoader, nnic_loader_free)

G_END_DECLS
