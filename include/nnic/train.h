/* nnic — training: loss, optimizers, learning-rate schedules, the loop.
 *
 * The optimizer's post-step hooks are where a pruner re-applies its masks
 * after every step (NNI patches optimizer.step() for the same purpose).
 */
#pragma once

#include <glib.h>
#include <nnic/export.h>
#include <nnic/tensor.h>
#include <nnic/model.h>
#include <nnic/data.h>

G_BEGIN_DECLS

/* Cross-entropy of logits [B, K] against int64 labels [B] (log-softmax +
 * NLL, mean over the batch). Writes dL/dlogits into `grad` when non-NULL
 * (same shape as logits). Counts correct argmax predictions into *correct
 * when non-NULL. Returns the loss, or NAN with an error on bad shapes or a
 * label outside [0, K). */
NNIC_API double nnic_cross_entropy (const NnicTensor *logits, const NnicTensor *labels,
                                    NnicTensor *grad, int64_t *correct, GError **error);

typedef struct _NnicOptimizer NnicOptimizer;

typedef struct {
  double lr;            /* required, > 0 */
  double momentum;
  double dampening;
  double weight_decay;
  gboolean nesterov;    /* needs momentum > 0 and dampening = 0, as in PyTorch */
} NnicSgdOptions;

typedef struct {
  double lr;            /* 0 → 1e-3 */
  double beta1, beta2;  /* 0 → 0.9, 0.999 */
  double eps;           /* 0 → 1e-8 */
  double weight_decay;  /* L2, added to the gradient as in torch.optim.Adam */
} NnicAdamOptions;

/* Optimizers over all trainable parameters of the model. */
NNIC_API NnicOptimizer *nnic_optimizer_new_sgd (NnicModel *m, const NnicSgdOptions *o,
                                                GError **error);
NNIC_API NnicOptimizer *nnic_optimizer_new_adam (NnicModel *m, const NnicAdamOptions *o,
                                                 GError **error);
NNIC_API void nnic_optimizer_free (NnicOptimizer *opt);
/* Adds a tensor to optimise beyond the model's own (e.g. a quantizer's
 * learned scale). The optimizer does not own them. */
NNIC_API gboolean nnic_optimizer_add_tensor (NnicOptimizer *opt, const char *name,
                                             NnicTensor *value, NnicTensor *grad, GError **error);
/* One update of every parameter from its grad, then the post-step hooks. */
NNIC_API void nnic_optimizer_step (NnicOptimizer *opt);
NNIC_API void nnic_optimizer_set_lr (NnicOptimizer *opt, double lr);
NNIC_API double nnic_optimizer_get_lr (const NnicOptimizer *opt);
NNIC_API guint64 nnic_optimizer_steps (const NnicOptimizer *opt);

typedef void (*NnicStepHook) (NnicOptimizer *opt, gpointer user_data);
NNIC_API guint nnic_optimizer_add_post_step_hook (NnicOptimizer *opt, NnicStepHook fn,
                                                  gpointer user_data, GDestroyNotify destroy);
/* Called before the update, when the gradients are complete: a hook may
 * add to them (ADMM's penalty). Removed with remove_post_step_hook. */
NNIC_API guint nnic_optimizer_add_pre_step_hook (NnicOptimizer *opt, NnicStepHook fn,
                                                 gpointer user_data, GDestroyNotify destroy);
NNIC_API gboolean nnic_optimizer_remove_post_step_hook (NnicOptimizer *opt, guint id,
                                                        GError **error);

/* Learning-rate schedules, evaluated per epoch like torch's StepLR and
 * CosineAnnealingLR. */
typedef enum {
  NNIC_LR_CONSTANT = 0,
  NNIC_LR_STEP = 1,    /* lr * gamma^(epoch / step_size) */
  NNIC_LR_COSINE = 2,  /* eta_min + (lr - eta_min) * (1 + cos(pi * epoch / t_max)) / 2 */
} NnicLrScheduleKind;

typedef struct {
  NnicLrScheduleKind kind;
  int step_size;   /* STEP */
  double gamma;    /* STEP */
  int t_max;       /* COSINE */
  double eta_min;  /* COSINE */
} NnicLrSchedule;

NNIC_API double nnic_lr_schedule_at (const NnicLrSchedule *s, double base_lr, int epoch);

/* Progress of a running epoch, for a progress bar or a log line. */
typedef struct {
  guint epoch, n_epochs;
  guint batch, n_batches;
  double loss;            /* running mean over the epoch so far */
  double images_per_s;
  double elapsed_s;
  double eta_s;           /* for this epoch */
} NnicProgress;

typedef void (*NnicProgressFn) (const NnicProgress *p, gpointer user_data);

typedef struct {
  double loss;       /* mean over the epoch */
  double accuracy;   /* on the training batches, in training mode */
  double seconds;
  double images_per_s;
} NnicEpochStats;

/* One epoch of training: forward, cross-entropy, backward, step. */
NNIC_API gboolean nnic_train_epoch (NnicModel *m, NnicOptimizer *opt, NnicLoader *loader,
                                    guint epoch, guint n_epochs, NnicProgressFn progress,
                                    gpointer user_data, NnicEpochStats *stats, GError **error);

/* Called before batch `batch` (0-based) of `n_batches`: a caller's work
 * inside an epoch, such as a pruner's update_epoch at a third of it.
 * FALSE (with the error set) stops the epoch. */
typedef gboolean (*NnicBatchFn) (guint epoch, guint batch, guint n_batches, gpointer user_data,
                                 GError **error);
typedef struct {
  NnicProgressFn progress;   /* may be NULL */
  NnicBatchFn before_batch;  /* may be NULL */
  gpointer user_data;        /* for both */
} NnicTrainCallbacks;
/* nnic_train_epoch with callbacks (cb may be NULL). */
NNIC_API gboolean nnic_train_epoch_with (NnicModel *m, NnicOptimizer *opt, NnicLoader *loader,
                                         guint epoch, guint n_epochs, const NnicTrainCallbacks *cb,
                                         NnicEpochStats *stats, GError **error);
/* Accuracy in [0, 1] (and the mean loss if non-NULL) in eval mode. */
NNIC_API gboolean nnic_evaluate (NnicModel *m, const NnicDataset *d, int batch_size,
                                 double *accuracy, double *loss, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnicOptimizer, nnic_optimizer_free)

G_END_DECLS
