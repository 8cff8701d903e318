/* Training: loss, optimizers against PyTorch's update rules, schedules,
 * hooks, and runs that must learn. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

START_TEST (test_cross_entropy)
{
  GError *err = NULL;
  g_autoptr (NnicTensor) z = nnic_tensor_new_f32 (&err, 2, (int64_t) 2, (int64_t) 3);
  g_autoptr (NnicTensor) y = nnic_tensor_new (NNIC_DTYPE_I64, 1, (int64_t[]) { 2 }, &err);
  float zs[6] = { 1, 2, 3, 1000, 0, -1000 };
  memcpy (z->f32, zs, sizeof zs);
  y->i64[0] = 0;
  y->i64[1] = 0;
  g_autoptr (NnicTensor) g = nnic_tensor_new_like (z, &err);
  int64_t correct = 0;
  double loss = nnic_cross_entropy (z, y, g, &correct, &err);
  NNIC_ASSERT_NO_ERROR (err);
  /* Sample 0: log(e+e^2+e^3) - 1; sample 1: ~0 (stable with huge logits). */
  double l0 = log (exp (1) + exp (2) + exp (3)) - 1;
  ck_assert_double_eq_tol (loss, l0 / 2, 1e-6);
  ck_assert_int_eq (correct, 1);
  double s0 = exp (1) + exp (2) + exp (3);
  ck_assert_float_eq_tol (g->f32[0], (float) ((exp (1) / s0 - 1) / 2), 1e-6);
  ck_assert_float_eq_tol (g->f32[2], (float) ((exp (3) / s0) / 2), 1e-6);
  ck_assert_float_eq_tol (g->f32[3], 0.0f, 1e-6);

  y->i64[1] = 3;
  ck_assert (isnan (nnic_cross_entropy (z, y, g, NULL, &err)));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "outside [0, 3)");
  g_clear_error (&err);
  g_autoptr (NnicTensor) y3 = nnic_tensor_new (NNIC_DTYPE_I64, 1, (int64_t[]) { 3 }, &err);
  ck_assert (isnan (nnic_cross_entropy (z, y3, NULL, NULL, &err)));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "[3]");
  g_clear_error (&err);
}
END_TEST

/* A model with one Linear(2, 1) whose gradient we set by hand. */
static NnicModel *
one_linear (NnicParam **w)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new_flat (2);
  nnic_model_add_linear (m, "fc", NULL, &(NnicLinearSpec) { .in_features = 2, .out_features = 1, .no_bias = TRUE }, &err);
  NNIC_ASSERT_NO_ERROR (err);
  *w = nnic_model_find_param (m, "fc.weight", &err);
  (*w)->value->f32[0] = 1.0f;
  (*w)->value->f32[1] = -2.0f;
  return m;
}

START_TEST (test_sgd_matches_torch)
{
  /* Values from torch.optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01,
   * nesterov=...) with p = [1, -2] and grads [0.5, 0.25] then [-1, 2]. */
  static const float grads[2][2] = { { 0.5f, 0.25f }, { -1.0f, 2.0f } };
  for (int nesterov = 0; nesterov < 2; nesterov++) {
    GError *err = NULL;
    NnicParam *w;
    g_autoptr (NnicModel) m = one_linear (&w);
    NnicSgdOptions o = { .lr = 0.1, .momentum = 0.9, .weight_decay = 0.01, .nesterov = nesterov };
    g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &o, &err);
    NNIC_ASSERT_NO_ERROR (err);
    double p[2] = { 1, -2 }, buf[2] = { 0, 0 };
    for (int step = 0; step < 2; step++) {
      memcpy (w->grad->f32, grads[step], sizeof grads[step]);
      nnic_optimizer_step (opt);
      for (int i = 0; i < 2; i++) {
        double d = grads[step][i] + 0.01 * p[i];
        buf[i] = step == 0 ? d : 0.9 * buf[i] + d;
        p[i] -= 0.1 * (nesterov ? d + 0.9 * buf[i] : buf[i]);
        ck_assert_float_eq_tol (w->value->f32[i], (float) p[i], 1e-6);
      }
    }
    ck_assert_uint_eq (nnic_optimizer_steps (opt), 2);
  }
  GError *err = NULL;
  NnicParam *w;
  g_autoptr (NnicModel) m = one_linear (&w);
  ck_assert_ptr_null (nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.1, .nesterov = TRUE }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "Nesterov");
  g_clear_error (&err);
  ck_assert_ptr_null (nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = -1 }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "lr > 0");
  g_clear_error (&err);
}
END_TEST

START_TEST (test_adam_matches_torch)
{
  GError *err = NULL;
  NnicParam *w;
  g_autoptr (NnicModel) m = one_linear (&w);
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_adam (m, &(NnicAdamOptions) { .lr = 0.01 }, &err);
  NNIC_ASSERT_NO_ERROR (err);
  double p[2] = { 1, -2 }, mo[2] = { 0, 0 }, v[2] = { 0, 0 };
  static const float grads[3][2] = { { 0.5f, -0.25f }, { 0.1f, 2.0f }, { -3.0f, 0.0f } };
  for (int t = 1; t <= 3; t++) {
    memcpy (w->grad->f32, grads[t - 1], sizeof grads[0]);
    nnic_optimizer_step (opt);
    for (int i = 0; i < 2; i++) {
      double g = grads[t - 1][i];
      mo[i] = 0.9 * mo[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      double mhat = mo[i] / (1 - pow (0.9, t)), vhat = v[i] / (1 - pow (0.999, t));
      p[i] -= 0.01 * mhat / (sqrt (vhat) + 1e-8);
      ck_assert_float_eq_tol (w->value->f32[i], (float) p[i], 1e-6);
    }
  }
}
END_TEST

static void
zero_grads (NnicOptimizer *opt, gpointer user_data)
{
  (void) opt;
  nnic_tensor_zero (((NnicParam *) user_data)->grad);
}

static void
count_hook (NnicOptimizer *opt, gpointer user_data)
{
  (void) opt;
  (*(int *) user_data)++;
}

START_TEST (test_post_step_hooks)
{
  GError *err = NULL;
  NnicParam *w;
  g_autoptr (NnicModel) m = one_linear (&w);
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.1 }, &err);
  int calls = 0;
  guint id = nnic_optimizer_add_post_step_hook (opt, count_hook, &calls, NULL);
  nnic_optimizer_step (opt);
  nnic_optimizer_step (opt);
  ck_assert_int_eq (calls, 2);
  ck_assert (nnic_optimizer_remove_post_step_hook (opt, id, &err));
  nnic_optimizer_step (opt);
  ck_assert_int_eq (calls, 2);
  ck_assert (!nnic_optimizer_remove_post_step_hook (opt, id, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "no step hook with id");
  g_clear_error (&err);

  /* A pre-step hook sees the gradients before the update and may change them. */
  guint pre = nnic_optimizer_add_pre_step_hook (opt, zero_grads, w, NULL);
  float before = w->value->f32[0];
  w->grad->f32[0] = 5.0f;
  nnic_optimizer_step (opt);
  ck_assert_float_eq (w->value->f32[0], before);
  ck_assert (nnic_optimizer_remove_post_step_hook (opt, pre, &err));

  /* Extra tensors (a quantizer's scale) are optimised too. */
  g_autoptr (NnicTensor) s = nnic_tensor_new_f32 (&err, 1, (int64_t) 1);
  g_autoptr (NnicTensor) gs = nnic_tensor_new_f32 (&err, 1, (int64_t) 1);
  s->f32[0] = 1.0f;
  gs->f32[0] = 2.0f;
  ck_assert (nnic_optimizer_add_tensor (opt, "scale", s, gs, &err));
  nnic_optimizer_step (opt);
  ck_assert_float_eq_tol (s->f32[0], 0.8f, 1e-6);
}
END_TEST

START_TEST (test_schedules)
{
  NnicLrSchedule step = { .kind = NNIC_LR_STEP, .step_size = 2, .gamma = 0.5 };
  ck_assert_double_eq_tol (nnic_lr_schedule_at (&step, 0.1, 0), 0.1, 1e-12);
  ck_assert_double_eq_tol (nnic_lr_schedule_at (&step, 0.1, 1), 0.1, 1e-12);
  ck_assert_double_eq_tol (nnic_lr_schedule_at (&step, 0.1, 2), 0.05, 1e-12);
  ck_assert_double_eq_tol (nnic_lr_schedule_at (&step, 0.1, 5), 0.025, 1e-12);
  NnicLrSchedule cos = { .kind = NNIC_LR_COSINE, .t_max = 4, .eta_min = 0.0 };
  ck_assert_double_eq_tol (nnic_lr_schedule_at (&cos, 0.1, 0), 0.1, 1e-12);
  ck_assert_double_eq_tol (nnic_lr_schedule_at (&cos, 0.1, 2), 0.05, 1e-12);
  ck_assert_double_eq_tol (nnic_lr_schedule_at (&cos, 0.1, 4), 0.0, 1e-12);
  ck_assert_double_eq_tol (nnic_lr_schedule_at (NULL, 0.3, 9), 0.3, 1e-12);
}
END_TEST

/* A synthetic, learnable problem: the class is the quadrant of the image
 * with the brightest mean. */
static NnicDataset *
quadrant_dataset (int64_t n, guint64 seed)
{
  NnicRng r;
  nnic_rng_seed (&r, seed);
  NnicDataset *d = g_new0 (NnicDataset, 1);
  d->images = nnic_tensor_new_f32 (NULL, 4, n, (int64_t) 1, (int64_t) 8, (int64_t) 8);
  d->labels = nnic_tensor_new (NNIC_DTYPE_I64, 1, &n, NULL);
  d->n_classes = 4;
  for (int64_t i = 0; i < n; i++) {
    int64_t cls = (int64_t) nnic_rng_below (&r, 4);
    d->labels->i64[i] = cls;
    for (int y = 0; y < 8; y++)
      for (int x = 0; x < 8; x++) {
        int q = (y >= 4) * 2 + (x >= 4);
        d->images->f32[i * 64 + y * 8 + x] = (float) (nnic_rng_uniform (&r) - 0.5 + (q == cls ? 0.6 : 0.0));
      }
  }
  return d;
}

static NnicModel *
small_cnn (void)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new (1, 8, 8);
  nnic_model_add_conv2d (m, "conv1", NULL, &(NnicConv2dSpec) { .in_channels = 1, .out_channels = 4, .kernel_size = 3, .padding = 1 }, &err);
  nnic_model_add_batchnorm2d (m, "bn1", NULL, &(NnicBatchNormSpec) { .num_features = 4 }, &err);
  nnic_model_add_relu (m, "relu1", NULL, &err);
  nnic_model_add_maxpool2d (m, "pool1", NULL, &(NnicPool2dSpec) { .kernel_size = 2 }, &err);
  nnic_model_add_flatten (m, "flatten", NULL, &err);
  nnic_model_add_linear (m, "fc", NULL, &(NnicLinearSpec) { .in_features = 64, .out_features = 4 }, &err);
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 3);
  return m;
}

START_TEST (test_synthetic_learns_and_is_reproducible)
{
  GError *err = NULL;
  g_autoptr (NnicDataset) train = quadrant_dataset (512, 1);
  g_autoptr (NnicDataset) test = quadrant_dataset (256, 2);
  float *final[2] = { NULL, NULL };
  NnicModel *models[2];
  for (int run = 0; run < 2; run++) {
    NnicModel *m = models[run] = small_cnn ();
    double before;
    ck_assert (nnic_evaluate (m, test, 100, &before, NULL, &err));
    g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.05, .momentum = 0.9 }, &err);
    g_autoptr (NnicLoader) loader = nnic_loader_new (train, 32, TRUE, 42, &err);
    NNIC_ASSERT_NO_ERROR (err);
    NnicEpochStats st[3];
    for (guint e = 0; e < 3; e++)
      ck_assert (nnic_train_epoch (m, opt, loader, e, 3, NULL, NULL, &st[e], &err));
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert_msg (st[2].loss < st[0].loss, "loss did not fall: %g -> %g", st[0].loss, st[2].loss);
    double after;
    ck_assert (nnic_evaluate (m, test, 100, &after, NULL, &err));
    ck_assert_msg (after > 0.9 && after > before + 0.3, "accuracy %g -> %g", before, after);
    final[run] = nnic_model_find_param (m, "fc.weight", &err)->value->f32;
  }
  /* Same seeds, same data: bit-identical weights. */
  ck_assert_mem_eq (final[0], final[1], 64 * 4 * sizeof (float));
  nnic_model_free (models[0]);
  nnic_model_free (models[1]);
}
END_TEST


typedef struct {
  guint calls, stop_at;
  guint last_batch, n_batches;
} BatchLog;

static gboolean
log_batch (guint epoch, guint batch, guint n_batches, gpointer user_data, GError **error)
{
  BatchLog *log = user_data;
  ck_assert_uint_eq (epoch, 1);
  ck_assert_uint_eq (batch, log->calls); /* every batch, in order, before it runs */
  log->calls++;
  log->last_batch = batch;
  log->n_batches = n_batches;
  if (log->calls == log->stop_at) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FAILED, "stopped at batch %u", batch);
    return FALSE;
  }
  return TRUE;
}

START_TEST (test_before_batch_callback)
{
  GError *err = NULL;
  g_autoptr (NnicDataset) train = quadrant_dataset (100, 1);
  g_autoptr (NnicModel) m = small_cnn ();
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.01 }, &err);
  g_autoptr (NnicLoader) loader = nnic_loader_new (train, 32, FALSE, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  BatchLog log = { 0 };
  NnicTrainCallbacks cb = { .before_batch = log_batch, .user_data = &log };
  ck_assert (nnic_train_epoch_with (m, opt, loader, 1, 2, &cb, NULL, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (log.calls, 4); /* 100 images in batches of 32 */
  ck_assert_uint_eq (log.n_batches, 4);
  /* A callback's error stops the epoch before that batch runs. */
  log = (BatchLog) { .stop_at = 2 };
  ck_assert (!nnic_train_epoch_with (m, opt, loader, 1, 2, &cb, NULL, &err));
  ck_assert_str_eq (err->message, "stopped at batch 1");
  ck_assert_uint_eq (log.calls, 2);
  g_clear_error (&err);
}
END_TEST

START_TEST (test_fashion_mnist_learns)
{
  GError *err = NULL;
  g_autoptr (NnicDataset) full = nnic_dataset_load_named ("fashion-mnist", TRUE, NULL, &err);
  if (!full) {
    printf ("SKIP fashion-mnist: %s\n", err->message);
    g_clear_error (&err);
    return;
  }
  g_autoptr (NnicDataset) train = nnic_dataset_head (full, 6000, &err);
  g_autoptr (NnicDataset) test_full = nnic_dataset_load_named ("fashion-mnist", FALSE, NULL, &err);
  g_autoptr (NnicDataset) test = nnic_dataset_head (test_full, 2000, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.05, .momentum = 0.9 }, &err);
  g_autoptr (NnicLoader) loader = nnic_loader_new (train, 64, TRUE, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicEpochStats st;
  ck_assert (nnic_train_epoch (m, opt, loader, 0, 1, NULL, NULL, &st, &err));
  double acc;
  ck_assert (nnic_evaluate (m, test, 500, &acc, NULL, &err));
  NNIC_ASSERT_NO_ERROR (err);
  /* One epoch on a tenth of the data: well past chance. */
  ck_assert_msg (acc > 0.7, "accuracy %g after one epoch on 6000 images", acc);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("train");
  TCase *tc = tcase_create ("train");
  tcase_set_timeout (tc, 600);
  tcase_add_test (tc, test_cross_entropy);
  tcase_add_test (tc, test_sgd_matches_torch);
  tcase_add_test (tc, test_adam_matches_torch);
  tcase_add_test (tc, test_post_step_hooks);
  tcase_add_test (tc, test_schedules);
  tcase_add_test (tc, test_synthetic_learns_and_is_reproducible);
  tcase_add_test (tc, test_before_batch_callback);
  tcase_add_test (tc, test_fashion_mnist_learns);
  suite_add_tcase (s, tc);
  return nnic_test_run (s);
}
