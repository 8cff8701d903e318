/* The model graph: building, names, errors, hooks, substitution, built-ins. */
#include "testutil.h"

#include <math.h>
#include <string.h>

static NnicModel *
tiny_model (void)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new (1, 6, 6);
  ck_assert (nnic_model_add_conv2d (m, "conv1", NULL,
                                    &(NnicConv2dSpec) { .in_channels = 1, .out_channels = 2, .kernel_size = 3 }, &err));
  ck_assert (nnic_model_add_relu (m, "relu1", NULL, &err));
  ck_assert (nnic_model_add_flatten (m, "flatten", NULL, &err));
  ck_assert (nnic_model_add_linear (m, "fc", NULL, &(NnicLinearSpec) { .in_features = 32, .out_features = 3 }, &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 1);
  return m;
}

static NnicTensor *
random_input (int64_t b, int64_t c, int64_t h, int64_t w, guint64 seed)
{
  NnicRng r;
  nnic_rng_seed (&r, seed);
  NnicTensor *x = nnic_tensor_new_f32 (NULL, 4, b, c, h, w);
  for (int64_t i = 0; i < x->numel; i++)
    x->f32[i] = (float) (nnic_rng_uniform (&r) * 2 - 1);
  return x;
}

START_TEST (test_builder_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = tiny_model ();
  ck_assert (!nnic_model_add_relu (m, "conv1", NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "conv1: a node of that name already exists");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_relu (m, "r", "conv_1", &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "did you mean 'conv1'");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_relu (m, NULL, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "needs a name");
  g_clear_error (&err);
  /* A failed add leaves the model as it was. */
  ck_assert_uint_eq (nnic_model_n_nodes (m), 5);
  ck_assert_uint_eq (nnic_model_n_params (m), 4);
}
END_TEST

START_TEST (test_param_names_and_lookup)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = tiny_model ();
  const char *want[] = { "conv1.weight", "conv1.bias", "fc.weight", "fc.bias" };
  for (guint i = 0; i < 4; i++)
    ck_assert_str_eq (nnic_model_param (m, i)->name, want[i]);
  ck_assert_int_eq (nnic_model_count_parameters (m), 2 * 9 + 2 + 32 * 3 + 3);
  ck_assert_ptr_nonnull (nnic_model_find_param (m, "fc.bias", &err));
  ck_assert_ptr_null (nnic_model_find_param (m, "conv1.wieght", &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "did you mean 'conv1.weight'");
  g_clear_error (&err);
  ck_assert_int_eq (nnic_model_find_node (m, "relu1"), 2);
  ck_assert_str_eq (nnic_model_node_type (m, 2), "ReLU");
  ck_assert_str_eq (nnic_model_node_type (m, 0), "Input");
  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, 1, shape), 3);
  ck_assert_int_eq (shape[0], 2);
  ck_assert_int_eq (shape[1], 4);
}
END_TEST

START_TEST (test_forward_shapes_and_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = tiny_model ();
  g_autoptr (NnicTensor) bad = random_input (2, 1, 5, 6, 1);
  ck_assert_ptr_null (nnic_model_forward (m, bad, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "[2, 1, 5, 6]");
  g_clear_error (&err);
  g_autoptr (NnicTensor) g0 = nnic_tensor_new_f32 (NULL, 2, (int64_t) 2, (int64_t) 3);
  ck_assert (!nnic_model_backward (m, g0, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "forward first");
  g_clear_error (&err);

  /* Batch sizes may change between calls; results do not depend on the batch. */
  g_autoptr (NnicTensor) x4 = random_input (4, 1, 6, 6, 2);
  const NnicTensor *y4 = nnic_model_forward (m, x4, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (y4->shape[0], 4);
  ck_assert_int_eq (y4->shape[1], 3);
  float first[3];
  memcpy (first, y4->f32, sizeof first);
  int64_t s1[4] = { 1, 1, 6, 6 };
  g_autoptr (NnicTensor) x1 = nnic_tensor_new (NNIC_DTYPE_F32, 4, s1, NULL);
  memcpy (x1->data, x4->data, nnic_tensor_nbytes (x1));
  const NnicTensor *y1 = nnic_model_forward (m, x1, &err);
  NNIC_ASSERT_NO_ERROR (err);
  for (int k = 0; k < 3; k++)
    ck_assert_float_eq_tol (y1->f32[k], first[k], 1e-5);

  g_autoptr (NnicTensor) wrong = nnic_tensor_new_f32 (NULL, 2, (int64_t) 1, (int64_t) 4);
  ck_assert (!nnic_model_backward (m, wrong, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "[1, 3]");
  g_clear_error (&err);
}
END_TEST

typedef struct {
  int calls;
  float sum;
} HookData;

static void
sum_hook (NnicModel *m, guint node, NnicTensor *out, gpointer user_data)
{
  (void) m;
  (void) node;
  HookData *d = user_data;
  d->calls++;
  for (int64_t i = 0; i < out->numel; i++)
    d->sum += out->f32[i];
}

static void
zero_hook (NnicModel *m, guint node, NnicTensor *out, gpointer user_data)
{
  (void) m;
  (void) node;
  (void) user_data;
  nnic_tensor_zero (out);
}

START_TEST (test_forward_hooks)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = tiny_model ();
  g_autoptr (NnicTensor) x = random_input (2, 1, 6, 6, 3);
  HookData d = { 0 };
  guint id = nnic_model_add_forward_hook (m, "relu1", sum_hook, &d, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_gt (id, 0);
  nnic_model_forward (m, x, &err);
  nnic_model_forward (m, x, &err);
  ck_assert_int_eq (d.calls, 2);
  ck_assert (d.sum > 0);
  ck_assert (nnic_model_remove_forward_hook (m, id, &err));
  nnic_model_forward (m, x, &err);
  ck_assert_int_eq (d.calls, 2);
  ck_assert (!nnic_model_remove_forward_hook (m, id, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "no forward hook");
  g_clear_error (&err);
  ck_assert_uint_eq (nnic_model_add_forward_hook (m, "relu", sum_hook, &d, NULL, &err), 0);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "relu1");
  g_clear_error (&err);

  /* A hook that changes the output changes what the next layer sees: with
   * relu1 zeroed, fc's output is its bias. */
  nnic_model_add_forward_hook (m, "relu1", zero_hook, NULL, NULL, &err);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NnicParam *b = nnic_model_find_param (m, "fc.bias", &err);
  for (int k = 0; k < 3; k++)
    ck_assert_float_eq_tol (y->f32[k], b->value->f32[k], 1e-6);
}
END_TEST

typedef struct {
  int calls;
  float grad_sum;
} GradData;

static void
grad_hook (NnicModel *m, NnicParam *p, const NnicTensor *sub, NnicTensor *g, gpointer user_data)
{
  (void) m;
  (void) sub;
  GradData *d = user_data;
  d->calls++;
  ck_assert_str_eq (p->name, "fc.weight");
  for (int64_t i = 0; i < g->numel; i++)
    d->grad_sum += g->f32[i];
}

START_TEST (test_substitution)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = tiny_model ();
  g_autoptr (NnicTensor) x = random_input (2, 1, 6, 6, 4);
  NnicParam *w = nnic_model_find_param (m, "fc.weight", &err);
  NnicParam *b = nnic_model_find_param (m, "fc.bias", &err);
  g_autoptr (NnicTensor) zero = nnic_tensor_new_like (w->value, &err);

  /* Straight-through: forward sees the substitute (zeros: output = bias),
   * the gradient lands on the real weight. */
  ck_assert (nnic_model_substitute_param (m, "fc.weight", zero, NULL, NULL, &err));
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  for (int k = 0; k < 3; k++)
    ck_assert_float_eq_tol (y->f32[k], b->value->f32[k], 1e-6);
  g_autoptr (NnicTensor) g = nnic_tensor_new_f32 (&err, 2, (int64_t) 2, (int64_t) 3);
  nnic_tensor_fill (g, 1.0f);
  nnic_model_zero_grad (m);
  ck_assert (nnic_model_backward (m, g, &err));
  float s = 0;
  for (int64_t i = 0; i < w->grad->numel; i++)
    s += fabsf (w->grad->f32[i]);
  ck_assert (s > 0);
  /* The weight's gradient does not depend on the weight itself, so it is
   * the same as without substitution. */
  g_autoptr (NnicTensor) ste = nnic_tensor_copy (w->grad, &err);
  ck_assert (nnic_model_substitute_param (m, "fc.weight", NULL, NULL, NULL, &err));
  nnic_model_forward (m, x, &err);
  nnic_model_zero_grad (m);
  nnic_model_backward (m, g, &err);
  for (int64_t i = 0; i < w->grad->numel; i++)
    ck_assert_float_eq_tol (w->grad->f32[i], ste->f32[i], 1e-5);

  /* With a hook, the hook gets the gradient and the weight's grad stays untouched. */
  GradData d = { 0 };
  ck_assert (nnic_model_substitute_param (m, "fc.weight", zero, grad_hook, &d, &err));
  nnic_model_forward (m, x, &err);
  nnic_model_zero_grad (m);
  nnic_model_backward (m, g, &err);
  ck_assert_int_eq (d.calls, 1);
  float total = 0;
  for (int64_t i = 0; i < ste->numel; i++)
    total += ste->f32[i];
  ck_assert_float_eq_tol (d.grad_sum, total, 1e-3);
  for (int64_t i = 0; i < w->grad->numel; i++)
    ck_assert_float_eq (w->grad->f32[i], 0.0f);

  g_autoptr (NnicTensor) wrong = nnic_tensor_new_f32 (&err, 2, (int64_t) 3, (int64_t) 3);
  ck_assert (!nnic_model_substitute_param (m, "fc.weight", wrong, NULL, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "fc.weight");
  g_clear_error (&err);
}
END_TEST

START_TEST (test_builtins)
{
  GError *err = NULL;
  for (const char *const *name = nnic_builtin_model_names (); *name; name++) {
    int c = g_str_equal (*name, "vgg_small") || g_str_equal (*name, "resnet8") ? 3 : 1;
    int hw = c == 3 ? 32 : 28;
    g_autoptr (NnicModel) m = nnic_model_new_builtin (*name, c, hw, hw, 10, &err);
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert_ptr_nonnull (nnic_builtin_model_summary (*name));
    g_autoptr (NnicTensor) x = random_input (2, c, hw, hw, 5);
    nnic_model_set_training (m, TRUE);
    const NnicTensor *y = nnic_model_forward (m, x, &err);
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert_int_eq (y->ndim, 2);
    ck_assert_int_eq (y->shape[0], 2);
    ck_assert_int_eq (y->shape[1], 10);
    g_autoptr (NnicTensor) g = nnic_tensor_new_like (y, &err);
    nnic_tensor_fill (g, 0.1f);
    ck_assert (nnic_model_backward (m, g, &err));
  }
  ck_assert_ptr_null (nnic_model_new_builtin ("resnet9", 0, 0, 0, 0, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "resnet8");
  g_clear_error (&err);
}
END_TEST

START_TEST (test_nni_cnn_matches_nni)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  /* ANCHORS.md: 431,080 parameters, NNI's module names. */
  ck_assert_int_eq (nnic_model_count_parameters (m), 431080);
  const char *names[] = { "conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                          "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias" };
  ck_assert_uint_eq (nnic_model_n_params (m), 8);
  for (guint i = 0; i < 8; i++)
    ck_assert_str_eq (nnic_model_param (m, i)->name, names[i]);
  ck_assert_str_eq (nnic_model_node_type (m, (guint) nnic_model_find_node (m, "relu1")), "ReLU6");
  ck_assert_int_eq (nnic_model_find_param (m, "fc1.weight", &err)->value->shape[1], 800);

  g_autoptr (NnicModel) bn = nnic_model_new_builtin ("nni_cnn_bn", 0, 0, 0, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_ptr_nonnull (nnic_model_find_param (bn, "bn1.running_var", &err));
  ck_assert_ptr_nonnull (nnic_model_find_param (bn, "bn2.num_batches_tracked", &err));
  ck_assert_float_eq (nnic_model_find_param (bn, "bn1.running_var", &err)->value->f32[0], 1.0f);
  ck_assert_float_eq (nnic_model_find_param (bn, "bn1.weight", &err)->value->f32[0], 1.0f);

  g_autoptr (NnicModel) r = nnic_model_new_builtin ("resnet8", 3, 32, 32, 10, &err);
  ck_assert_ptr_nonnull (nnic_model_find_param (r, "layer2.0.downsample.0.weight", &err));
  ck_assert_str_eq (nnic_model_node_type (r, (guint) nnic_model_find_node (r, "layer1.0.add")), "Add");
}
END_TEST

START_TEST (test_init_is_seeded)
{
  GError *err = NULL;
  g_autoptr (NnicModel) a = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  g_autoptr (NnicModel) b = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  NnicTensor *wa = nnic_model_find_param (a, "conv2.weight", &err)->value;
  NnicTensor *wb = nnic_model_find_param (b, "conv2.weight", &err)->value;
  ck_assert_mem_eq (wa->data, wb->data, nnic_tensor_nbytes (wa));
  /* PyTorch's bound for conv2: 1/sqrt(20*5*5). */
  float bound = 1.0f / sqrtf (500.0f), max = 0;
  for (int64_t i = 0; i < wa->numel; i++)
    max = fmaxf (max, fabsf (wa->f32[i]));
  ck_assert (max <= bound && max > 0.9f * bound);
  nnic_model_init_params (b, 7);
  ck_assert (memcmp (wa->data, wb->data, nnic_tensor_nbytes (wa)) != 0);
}
END_TEST

/* a (Linear 4→3) feeds b and c (Linear 3→2 each), whose outputs are added. */
static NnicModel *
fork_model (float b_scale)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new_flat (4);
  nnic_model_add_linear (m, "a", NULL, &(NnicLinearSpec) { .in_features = 4, .out_features = 3 }, &err);
  nnic_model_add_linear (m, "b", "a", &(NnicLinearSpec) { .in_features = 3, .out_features = 2 }, &err);
  nnic_model_add_linear (m, "c", "a", &(NnicLinearSpec) { .in_features = 3, .out_features = 2 }, &err);
  nnic_model_add_add (m, "sum", "b", "c", &err);
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 11);
  NnicTensor *bw = nnic_model_find_param (m, "b.weight", &err)->value;
  for (int64_t i = 0; i < bw->numel; i++)
    bw->f32[i] *= b_scale;
  return m;
}

static void
times_two (NnicModel *m, guint node, NnicTensor *t, gpointer user_data)
{
  (void) m, (void) node, (void) user_data;
  for (int64_t i = 0; i < t->numel; i++)
    t->f32[i] *= 2.0f;
}

static void
grad_times_two (NnicModel *m, guint node, NnicTensor *g, gpointer user_data)
{
  times_two (m, node, g, user_data);
}

static void
grad_zero (NnicModel *m, guint node, NnicTensor *g, gpointer user_data)
{
  (void) m, (void) node, (void) user_data;
  nnic_tensor_zero (g);
}

/* Forward and backward of a fork model on a fixed batch; returns a's weight grad. */
static NnicTensor *
fork_step (NnicModel *m, NnicTensor **out)
{
  GError *err = NULL;
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 2, (int64_t) 5, (int64_t) 4);
  for (int64_t i = 0; i < x->numel; i++)
    x->f32[i] = (float) ((i * 7 % 11) - 5) / 5.0f;
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  *out = nnic_tensor_copy (y, &err);
  g_autoptr (NnicTensor) g = nnic_tensor_new_like (y, &err);
  for (int64_t i = 0; i < g->numel; i++)
    g->f32[i] = (float) (i % 3) - 1.0f;
  nnic_model_zero_grad (m);
  ck_assert (nnic_model_backward (m, g, &err));
  return nnic_tensor_copy (nnic_model_find_param (m, "a.weight", &err)->grad, &err);
}

static void
assert_close (const NnicTensor *a, const NnicTensor *b)
{
  ck_assert_int_eq (a->numel, b->numel);
  for (int64_t i = 0; i < a->numel; i++)
    ck_assert_float_eq_tol (a->f32[i], b->f32[i], 1e-5);
}

START_TEST (test_input_transform)
{
  GError *err = NULL;
  /* b reading 2·a is b with twice the weights; with the transform's true
   * derivative (×2) as its backward, the gradients agree too. */
  g_autoptr (NnicModel) ref = fork_model (2.0f);
  g_autoptr (NnicModel) m = fork_model (1.0f);
  ck_assert (nnic_model_set_input_transform (m, "b", times_two, grad_times_two, NULL, &err));
  NnicTensor *y_ref, *y;
  g_autoptr (NnicTensor) ga_ref = fork_step (ref, &y_ref);
  g_autoptr (NnicTensor) ga = fork_step (m, &y);
  assert_close (y, y_ref);
  assert_close (ga, ga_ref);
  nnic_tensor_free (y);

  /* c still reads a itself: its weight gradient is the reference's. */
  assert_close (nnic_model_find_param (m, "c.weight", &err)->grad, nnic_model_find_param (ref, "c.weight", &err)->grad);

  /* Straight-through (no backward given): the gradient reaching a through
   * b is that of b with its own weights, as if the transform were identity. */
  g_autoptr (NnicModel) plain = fork_model (1.0f);
  ck_assert (nnic_model_set_input_transform (m, "b", times_two, NULL, NULL, &err));
  g_autoptr (NnicTensor) ga_ste = fork_step (m, &y);
  nnic_tensor_free (y);
  g_autoptr (NnicTensor) ga_plain = fork_step (plain, &y);
  nnic_tensor_free (y);
  /* b's output gradient is the same in both (the Add passes it on), so a's
   * gradient through b matches the untransformed model's. */
  assert_close (ga_ste, ga_plain);

  /* Removing the transform restores the plain model. */
  ck_assert (nnic_model_set_input_transform (m, "b", NULL, NULL, NULL, &err));
  g_autoptr (NnicTensor) ga_none = fork_step (m, &y);
  nnic_tensor_free (y);
  nnic_tensor_free (y_ref);
  assert_close (ga_none, ga_plain);
  ck_assert (!nnic_model_set_input_transform (m, "input", times_two, NULL, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "no layer named 'input'");
  g_clear_error (&err);
}
END_TEST

START_TEST (test_backward_hook)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = fork_model (1.0f);
  guint id = nnic_model_add_backward_hook (m, "b", grad_zero, NULL, NULL, &err);
  ck_assert_uint_gt (id, 0);
  NnicTensor *y;
  g_autoptr (NnicTensor) ga = fork_step (m, &y);
  nnic_tensor_free (y);
  NnicTensor *gb = nnic_model_find_param (m, "b.weight", &err)->grad;
  for (int64_t i = 0; i < gb->numel; i++)
    ck_assert_float_eq (gb->f32[i], 0.0f);
  NnicTensor *gc = nnic_model_find_param (m, "c.weight", &err)->grad;
  float s = 0;
  for (int64_t i = 0; i < gc->numel; i++)
    s += fabsf (gc->f32[i]);
  ck_assert (s > 0);
  ck_assert (nnic_model_remove_forward_hook (m, id, &err));
}
END_TEST

static const char *
set_names (NnicModel *m, GArray *set, GString *out)
{
  g_string_truncate (out, 0);
  for (guint i = 0; i < set->len; i++)
    g_string_append_printf (out, "%s%s", i ? " " : "", nnic_model_node_name (m, g_array_index (set, guint, i)));
  return out->str;
}

START_TEST (test_channel_dependencies)
{
  GError *err = NULL;
  g_autoptr (GString) names = g_string_new (NULL);
  /* ResNet-8: each block's last conv is tied to whatever made the shortcut. */
  g_autoptr (NnicModel) r = nnic_model_new_builtin ("resnet8", 3, 32, 32, 10, &err);
  g_autoptr (GPtrArray) sets = nnic_model_channel_dependencies (r);
  ck_assert_uint_eq (sets->len, 3);
  ck_assert_str_eq (set_names (r, g_ptr_array_index (sets, 0), names), "conv1 layer1.0.conv2");
  ck_assert_str_eq (set_names (r, g_ptr_array_index (sets, 1), names), "layer2.0.downsample.0 layer2.0.conv2");
  ck_assert_str_eq (set_names (r, g_ptr_array_index (sets, 2), names), "layer3.0.downsample.0 layer3.0.conv2");
  /* A plain chain ties nothing. */
  g_autoptr (NnicModel) c = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  g_autoptr (GPtrArray) none = nnic_model_channel_dependencies (c);
  ck_assert_uint_eq (none->len, 0);

  /* Two residual adds in a row tie three convs; a concat ties nothing; a
   * depthwise conv reading a conv splits its channels into groups. */
  g_autoptr (NnicModel) m = nnic_model_new (4, 6, 6);
  NnicConv2dSpec c44 = { .in_channels = 4, .out_channels = 4, .kernel_size = 3, .padding = 1 };
  nnic_model_add_conv2d (m, "a", "input", &c44, &err);
  nnic_model_add_conv2d (m, "b", "input", &c44, &err);
  nnic_model_add_add (m, "ab", "a", "b", &err);
  nnic_model_add_relu (m, "r", "ab", &err);
  nnic_model_add_conv2d (m, "c", "r", &c44, &err);
  nnic_model_add_batchnorm2d (m, "cbn", "c", &(NnicBatchNormSpec) { .num_features = 4 }, &err);
  nnic_model_add_add (m, "abc", "cbn", "r", &err);
  nnic_model_add_conv2d (m, "d", "abc", &c44, &err);
  nnic_model_add_conv2d (m, "e", "abc", &c44, &err);
  nnic_model_add_concat (m, "de", (const char *const[]) { "d", "e" }, 2, &err);
  nnic_model_add_conv2d (m, "dw", "e", &(NnicConv2dSpec) { .in_channels = 4, .out_channels = 4, .kernel_size = 3, .padding = 1, .groups = 4 }, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (GPtrArray) deps = nnic_model_channel_dependencies (m);
  ck_assert_uint_eq (deps->len, 1);
  ck_assert_str_eq (set_names (m, g_ptr_array_index (deps, 0), names), "a b c");
  ck_assert_int_eq (nnic_model_channel_groups (m, (guint) nnic_model_find_node (m, "e")), 4);
  ck_assert_int_eq (nnic_model_channel_groups (m, (guint) nnic_model_find_node (m, "d")), 1);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("model");
  TCase *tc = tcase_create ("model");
  tcase_add_test (tc, test_builder_errors);
  tcase_add_test (tc, test_param_names_and_lookup);
  tcase_add_test (tc, test_forward_shapes_and_errors);
  tcase_add_test (tc, test_forward_hooks);
  tcase_add_test (tc, test_substitution);
  tcase_add_test (tc, test_builtins);
  tcase_add_test (tc, test_nni_cnn_matches_nni);
  tcase_add_test (tc, test_init_is_seeded);
  tcase_add_test (tc, test_input_transform);
  tcase_add_test (tc, test_backward_hook);
  tcase_add_test (tc, test_channel_dependencies);
  suite_add_tcase (s, tc);
  return nnic_test_run (s);
}
