/* ONNX import: models exported by torch (and graphs built with the onnx
 * package) load with PyTorch's module names, state_dict parameter names and
 * torch's outputs; every damaged or unsupported file is a clear error.
 *
 * The fixtures in fixtures/onnx/ come from fixtures/onnx/make_onnx_fixtures.py
 * (torch 1.13, onnx 1.12) and, for QDQ weights, make_qdq_fixtures.py; their
 * docstrings say what each file holds. Outputs are compared with torch's
 * within 1e-4 (absolute, plus 1e-4 relative); dequantized weights bit for
 * bit.
 */
#include "testutil.h"
#include "core/compress/wrapper.h" /* the wrapper's fake-quantized weight */

#include <glib/gstdio.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define TOL 1e-4

static char *
fixture (const char *name)
{
  return g_build_filename (NNIC_TEST_FIXTURES, "onnx", name, NULL);
}

static NnicModel *
load (const char *name)
{
  g_autofree char *path = fixture (name);
  GError *err = NULL;
  NnicModel *m = nnic_model_load_onnx (path, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (m != NULL);
  return m;
}

static NnicTensor *
load_npy (const char *name)
{
  g_autofree char *path = fixture (name);
  GError *err = NULL;
  NnicTensor *t = nnic_npy_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  return t;
}

static void
assert_close (const NnicTensor *got, const NnicTensor *want, const char *what)
{
  ck_assert_msg (got->numel == want->numel, "%s: %" G_GINT64_FORMAT " values, want %" G_GINT64_FORMAT,
                 what, got->numel, want->numel);
  double worst = 0;
  int64_t at = 0;
  for (int64_t i = 0; i < want->numel; i++) {
    double d = fabs ((double) got->f32[i] - want->f32[i]) - TOL * fabs ((double) want->f32[i]);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  ck_assert_msg (worst <= TOL, "%s: value %" G_GINT64_FORMAT " is %g, torch has %g", what, at,
                 (double) got->f32[at], (double) want->f32[at]);
}

/* Runs `model` (in eval mode unless `train`) on NAME.in.npy-style input and
 * compares with the expected output file. */
static void
check_output (NnicModel *m, const char *input, const char *expected, gboolean train)
{
  g_autoptr (NnicTensor) x = load_npy (input);
  g_autoptr (NnicTensor) want = load_npy (expected);
  GError *err = NULL;
  nnic_model_set_training (m, train);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (y->ndim, want->ndim);
  for (int d = 0; d < y->ndim; d++)
    ck_assert_int_eq (y->shape[d], want->shape[d]);
  assert_close (y, want, expected);
}

/* Node names and types, and parameter names, equal the built-in model's. */
static void
assert_same_graph (NnicModel *got, NnicModel *want)
{
  ck_assert_uint_eq (nnic_model_n_nodes (got), nnic_model_n_nodes (want));
  for (guint i = 0; i < nnic_model_n_nodes (want); i++) {
    ck_assert_str_eq (nnic_model_node_name (got, i), nnic_model_node_name (want, i));
    ck_assert_str_eq (nnic_model_node_type (got, i), nnic_model_node_type (want, i));
  }
  ck_assert_uint_eq (nnic_model_n_params (got), nnic_model_n_params (want));
  for (guint i = 0; i < nnic_model_n_params (want); i++) {
    NnicParam *a = nnic_model_param (got, i), *b = nnic_model_param (want, i);
    ck_assert_str_eq (a->name, b->name);
    ck_assert_msg (nnic_tensor_same_shape (a->value, b->value), "%s: shapes differ", a->name);
  }
}

static void
assert_names (NnicModel *m, const char *const *names, const char *const *types)
{
  guint n = g_strv_length ((char **) names);
  GString *all = g_string_new (NULL);
  for (guint i = 0; i < nnic_model_n_nodes (m); i++)
    g_string_append_printf (all, " %s(%s)", nnic_model_node_name (m, i), nnic_model_node_type (m, i));
  ck_assert_msg (nnic_model_n_nodes (m) == n, "nodes:%s", all->str);
  for (guint i = 0; i < n; i++) {
    ck_assert_msg (!strcmp (nnic_model_node_name (m, i), names[i]) &&
                   (!types || !strcmp (nnic_model_node_type (m, i), types[i])),
                   "node %u: want %s(%s); nodes:%s", i, names[i], types ? types[i] : "", all->str);
  }
  g_string_free (all, TRUE);
}

/* ---- torch exports of nnic's built-in models ---- */

START_TEST (test_nni_cnn_eval)
{
  g_autoptr (NnicModel) m = load ("nni_cnn_eval.onnx");
  GError *err = NULL;
  g_autoptr (NnicModel) builtin = nnic_model_new_builtin ("nni_cnn", 1, 16, 16, 10, &err);
  NNIC_ASSERT_NO_ERROR (err);
  assert_same_graph (m, builtin);
  check_output (m, "nni_cnn.in.npy", "nni_cnn_eval.out.npy", FALSE);
  /* the weights are state_dict entries: a checkpoint of one loads into the other */
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *ck = g_build_filename (dir, "w.safetensors", NULL);
  ck_assert (nnic_model_save (m, ck, &err));
  ck_assert (nnic_model_load (builtin, ck, &err));
  NNIC_ASSERT_NO_ERROR (err);
  check_output (builtin, "nni_cnn.in.npy", "nni_cnn_eval.out.npy", FALSE);
  g_unlink (ck);
  g_rmdir (dir);
}
END_TEST

START_TEST (test_nni_cnn_bn_train_form)
{
  g_autoptr (NnicModel) m = load ("nni_cnn_bn_train.onnx");
  GError *err = NULL;
  g_autoptr (NnicModel) builtin = nnic_model_new_builtin ("nni_cnn_bn", 1, 16, 16, 10, &err);
  NNIC_ASSERT_NO_ERROR (err);
  assert_same_graph (m, builtin);
  check_output (m, "nni_cnn.in.npy", "nni_cnn_bn_train.out.npy", FALSE);

  /* ONNX momentum 0.7 is torch's 0.3 */
  NnicBatchNormSpec bn;
  ck_assert (nnic_model_node_batchnorm_spec (m, (guint) nnic_model_find_node (m, "bn1"), &bn));
  ck_assert_double_eq_tol (bn.momentum, 0.3, 1e-9);
  ck_assert_double_eq_tol (bn.eps, 1e-5, 1e-12);
  ck_assert (nnic_model_node_batchnorm_spec (m, (guint) nnic_model_find_node (m, "bn2"), &bn));
  ck_assert_double_eq_tol (bn.momentum, 0.1, 1e-9);

  /* one training-mode forward: batch statistics, running ones updated as torch does */
  check_output (m, "nni_cnn.in.npy", "nni_cnn_bn_train.train_out.npy", TRUE);
  g_autoptr (NnicTensor) rm = load_npy ("nni_cnn_bn_train.bn1_running_mean.npy");
  g_autoptr (NnicTensor) rv = load_npy ("nni_cnn_bn_train.bn1_running_var.npy");
  assert_close (nnic_model_find_param (m, "bn1.running_mean", &err)->value, rm, "bn1.running_mean");
  assert_close (nnic_model_find_param (m, "bn1.running_var", &err)->value, rv, "bn1.running_var");
}
END_TEST

START_TEST (test_nni_cnn_bn_eval_folded)
{
  /* torch folds BatchNorm into the convolutions; the weights are named
   * onnx::Conv_NN, the scopes still give the module names */
  g_autoptr (NnicModel) m = load ("nni_cnn_bn_eval.onnx");
  static const char *const names[] = { "input", "conv1", "relu1", "pool1", "conv2", "relu2", "pool2",
                                       "flatten", "fc1", "relu3", "fc2", NULL };
  assert_names (m, names, NULL);
  GError *err = NULL;
  ck_assert (nnic_model_find_param (m, "conv1.weight", &err) != NULL);
  ck_assert (nnic_model_find_param (m, "conv2.bias", &err) != NULL);
  NNIC_ASSERT_NO_ERROR (err);
  check_output (m, "nni_cnn.in.npy", "nni_cnn_bn_eval.out.npy", FALSE);
}
END_TEST

/* ---- a residual block ---- */

START_TEST (test_residual)
{
  static const char *const train_names[] = {
    "input", "conv1", "relu", "layer1.0.conv1", "layer1.0.bn1", "layer1.0.relu", "layer1.0.conv2",
    "layer1.0.bn2", "layer1.0.add", "layer1.0.relu_1", "avgpool", "flatten", "fc", NULL };
  static const char *const train_types[] = {
    "Input", "Conv2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "Add", "ReLU",
    "AdaptiveAvgPool2d", "Flatten", "Linear", NULL };
  static const char *const eval_names[] = {
    "input", "conv1", "relu", "layer1.0.conv1", "layer1.0.relu", "layer1.0.conv2", "layer1.0.add",
    "layer1.0.relu_1", "avgpool", "flatten", "fc", NULL };
  g_autoptr (NnicModel) t = load ("residual_train.onnx");
  assert_names (t, train_names, train_types);
  check_output (t, "residual.in.npy", "residual_train.out.npy", FALSE);
  GError *err = NULL;
  ck_assert (nnic_model_find_param (t, "layer1.0.bn2.running_var", &err) != NULL);
  NNIC_ASSERT_NO_ERROR (err);
  /* the Add ties the stem's and the block's last convolution */
  g_autoptr (GPtrArray) deps = nnic_model_channel_dependencies (t);
  ck_assert_uint_eq (deps->len, 1);
  GArray *set = g_ptr_array_index (deps, 0);
  ck_assert_uint_eq (set->len, 2);
  ck_assert_str_eq (nnic_model_node_name (t, g_array_index (set, guint, 0)), "conv1");
  ck_assert_str_eq (nnic_model_node_name (t, g_array_index (set, guint, 1)), "layer1.0.conv2");

  g_autoptr (NnicModel) e = load ("residual_eval.onnx"); /* opset 11, BatchNorm folded */
  assert_names (e, eval_names, NULL);
  check_output (e, "residual.in.npy", "residual_eval.out.npy", FALSE);
}
END_TEST

/* ---- many ops, four opsets ---- */

static void
check_classifier (const char *file, gboolean with_dropout)
{
  g_autoptr (NnicModel) m = load (file);
  GPtrArray *names = g_ptr_array_new ();
  GPtrArray *types = g_ptr_array_new ();
#define NODE(n, t) (g_ptr_array_add (names, (gpointer) (n)), g_ptr_array_add (types, (gpointer) (t)))
  NODE ("input", "Input");
  NODE ("features.0", "Conv2d");
  NODE ("features.1", "ReLU6");
  NODE ("features.2", "Conv2d");
  NODE ("features.3", "Hardtanh");
  NODE ("features.4", "MaxPool2d");
  NODE ("features.5", "AvgPool2d");
  NODE ("features.6", "Conv2d");
  NODE ("features.7", "ReLU");
  NODE ("branch1", "Conv2d");
  NODE ("branch2", "Conv2d");
  NODE ("concat", "Concat");
  NODE ("reshape", "Reshape");
  if (with_dropout)
    NODE ("drop", "Dropout");
  NODE ("fc", "Linear");
  NODE ("softmax", "Softmax");
  NODE (NULL, NULL);
#undef NODE
  assert_names (m, (const char *const *) names->pdata, (const char *const *) types->pdata);
  g_ptr_array_free (names, TRUE);
  g_ptr_array_free (types, TRUE);

  guint i = (guint) nnic_model_find_node (m, "features.2");
  NnicConv2dSpec conv;
  ck_assert (nnic_model_node_conv2d_spec (m, i, &conv));
  ck_assert_int_eq (conv.groups, 3);
  i = (guint) nnic_model_find_node (m, "features.6");
  ck_assert (nnic_model_node_conv2d_spec (m, i, &conv));
  ck_assert_int_eq (conv.kernel_h, 3);
  ck_assert_int_eq (conv.kernel_w, 1);
  ck_assert_int_eq (conv.stride_h, 1);
  ck_assert_int_eq (conv.stride_w, 2);
  NnicPool2dSpec pool;
  ck_assert (nnic_model_node_pool2d_spec (m, (guint) nnic_model_find_node (m, "features.4"), &pool));
  ck_assert (pool.ceil_mode);
  ck_assert (nnic_model_node_pool2d_spec (m, (guint) nnic_model_find_node (m, "features.5"), &pool));
  ck_assert (pool.exclude_pad);
  double v;
  ck_assert (nnic_model_node_option (m, (guint) nnic_model_find_node (m, "features.3"), "min_val", &v));
  ck_assert_double_eq (v, -1.0);
  ck_assert (nnic_model_node_option (m, (guint) nnic_model_find_node (m, "features.3"), "max_val", &v));
  ck_assert_double_eq (v, 1.5);
  if (with_dropout) {
    ck_assert (nnic_model_node_option (m, (guint) nnic_model_find_node (m, "drop"), "p", &v));
    ck_assert_double_eq_tol (v, 0.25, 1e-7);
  }
  /* the folded x.view(x.size(0), -1) */
  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, (guint) nnic_model_find_node (m, "reshape"), shape), 1);
  ck_assert_int_eq (shape[0], 120);
  check_output (m, "classifier.in.npy", "classifier.out.npy", FALSE);
}

START_TEST (test_classifier_opset13)
{
  check_classifier ("classifier_eval13.onnx", FALSE);
}
END_TEST

START_TEST (test_classifier_opset12_training_form)
{
  check_classifier ("classifier_train12.onnx", TRUE);
}
END_TEST

START_TEST (test_classifier_opset17)
{
  check_classifier ("classifier_eval17.onnx", FALSE);
}
END_TEST

START_TEST (test_classifier_opset11)
{
  check_classifier ("classifier_eval11.onnx", FALSE);
}
END_TEST

/* ---- built with the onnx package ---- */

START_TEST (test_auto_pad)
{
  g_autoptr (NnicModel) m = load ("autopad.onnx");
  NnicConv2dSpec conv;
  ck_assert (nnic_model_node_conv2d_spec (m, (guint) nnic_model_find_node (m, "conv_same_lower"), &conv));
  /* SAME_LOWER, kernel 2: the one padding row and column go first */
  ck_assert (conv.explicit_pads);
  ck_assert_int_eq (conv.pads[0], 1);
  ck_assert_int_eq (conv.pads[1], 1);
  ck_assert_int_eq (conv.pads[2], 0);
  ck_assert_int_eq (conv.pads[3], 0);
  check_output (m, "autopad.in.npy", "autopad.out.npy", FALSE);
}
END_TEST

START_TEST (test_gemm_matmul)
{
  g_autoptr (NnicModel) m = load ("gemm.onnx");
  /* unscoped: Gemm_0 reads head.weight (rule 2); the unnamed MatMul gets
   * its op type and index; the Add became its bias */
  static const char *const names[] = { "input", "head", "Relu_1", "MatMul_2", NULL };
  static const char *const types[] = { "Input", "Linear", "ReLU", "Linear", NULL };
  assert_names (m, names, types);
  GError *err = NULL;
  NnicParam *w = nnic_model_find_param (m, "head.weight", &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (w->value->shape[0], 4); /* [out, in] from transB=0's [in, out] */
  ck_assert_int_eq (w->value->shape[1], 6);
  ck_assert (nnic_model_find_param (m, "MatMul_2.bias", &err) != NULL);
  check_output (m, "gemm.in.npy", "gemm.out.npy", FALSE);
}
END_TEST

START_TEST (test_external_data)
{
  g_autoptr (NnicModel) m = load ("external.onnx");
  check_output (m, "external.in.npy", "external.out.npy", FALSE);
  /* from a buffer, the external file cannot be found */
  g_autofree char *path = fixture ("external.onnx");
  g_autofree char *data = NULL;
  gsize len;
  ck_assert (g_file_get_contents (path, &data, &len, NULL));
  GError *err = NULL;
  NnicModel *b = nnic_model_load_onnx_from_data ((const guint8 *) data, len, "buffer.onnx", NULL, &err);
  ck_assert (b == NULL);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_UNSUPPORTED, "external");
  ck_assert (strstr (err->message, "buffer.onnx") != NULL);
  g_clear_error (&err);
}
END_TEST

START_TEST (test_bound_constant)
{
  g_autoptr (NnicTensor) w = load_npy ("two_inputs.weight.npy");
  const char *names[] = { "conv.weight" };
  const NnicTensor *values[] = { w };
  NnicOnnxLoadOptions opt = { .n_constants = 1, .constant_names = names, .constant_values = values };
  g_autofree char *path = fixture ("two_inputs.onnx");
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_load_onnx (path, &opt, &err);
  NNIC_ASSERT_NO_ERROR (err);
  check_output (m, "two_inputs.in.npy", "two_inputs.out.npy", FALSE);
  /* not bound: two data inputs */
  NnicModel *none = nnic_model_load_onnx (path, NULL, &err);
  ck_assert (none == NULL);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_UNSUPPORTED, "2 inputs that are not initializers ('x', 'conv.weight')");
  g_clear_error (&err);
  /* a name that is no input */
  names[0] = "nope";
  none = nnic_model_load_onnx (path, &opt, &err);
  ck_assert (none == NULL);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "'nope' is not a graph input");
  g_clear_error (&err);
}
END_TEST

/* ---- errors ---- */

static void
assert_load_fails (const char *file, int code, const char *needle)
{
  g_autofree char *path = fixture (file);
  GError *err = NULL;
  NnicModel *m = nnic_model_load_onnx (path, NULL, &err);
  ck_assert_msg (m == NULL, "%s loaded", file);
  NNIC_ASSERT_ERROR (err, code, needle);
  ck_assert_msg (strstr (err->message, file) != NULL, "\"%s\" does not name %s", err->message, file);
  g_clear_error (&err);
}

START_TEST (test_unsupported_op)
{
  g_autofree char *path = fixture ("err_lstm.onnx");
  GError *err = NULL;
  NnicModel *m = nnic_model_load_onnx (path, NULL, &err);
  ck_assert (m == NULL);
  g_autofree char *want = g_strdup_printf (
      "%s: node 'lstm' (LSTM, opset 13): operator LSTM is not supported (nnic imports "
      "Add, AveragePool, BatchNormalization, Clip, Concat, Constant, Conv, ",
      path);
  ck_assert_int_eq (err->code, NNIC_ERROR_UNSUPPORTED);
  ck_assert_msg (g_str_has_prefix (err->message, want), "%s", err->message);
  /* then the ops folded on constants only (the fold table's) */
  ck_assert_msg (strstr (err->message, ", and Abs, Cast, ") &&
                     strstr (err->message, ", Range, ScatterND, Shape, ") &&
                     g_str_has_suffix (err->message, ", Unsqueeze, Where on constants)"),
                 "%s", err->message);
  g_clear_error (&err);
  /* Every unsupported op at once, each with its first node, before the
   * graph's input or anything else is looked at. */
  g_autofree char *many = g_build_filename (NNIC_TEST_FIXTURES, "onnx", "err_many_ops.onnx", NULL);
  ck_assert (nnic_model_load_onnx (many, NULL, &err) == NULL);
  g_autofree char *want_many = g_strdup_printf (
      "%s (opset 13): 3 operators are not supported: Erfinv (first node 'first_erfinv'), "
      "Hardmax (first node '#4'), FusedGemm (domain com.microsoft) (first node 'fused') "
      "(nnic imports Add, ",
      many);
  ck_assert_int_eq (err->code, NNIC_ERROR_UNSUPPORTED);
  ck_assert_msg (g_str_has_prefix (err->message, want_many), "%s", err->message);
  g_clear_error (&err);
  /* the unsupported op is named before the rank-3 graph input is looked at */
  assert_load_fails ("err_lstm_rank3.onnx", NNIC_ERROR_UNSUPPORTED, "operator LSTM is not supported");
  assert_load_fails ("err_domain.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'fused' (FusedGemm, opset 13): operators of domain 'com.microsoft'");
  assert_load_fails ("err_transa.onnx", NNIC_ERROR_UNSUPPORTED, "node '/fc/Gemm' (Gemm, opset 13): transA=1");
  /* (Adding a constant is supported now: a Parameter node, binary.c.) */
  g_autofree char *add_const = g_build_filename (NNIC_TEST_FIXTURES, "onnx", "err_add_const.onnx", NULL);
  g_autoptr (NnicModel) m2 = nnic_model_load_onnx (add_const, NULL, &err);
  ck_assert_msg (m2 != NULL, "%s", err ? err->message : "");
  ck_assert_str_eq (nnic_model_node_type (m2, (guint) nnic_model_find_node (m2, "c")), "Parameter");
}
END_TEST

START_TEST (test_bad_opset)
{
  assert_load_fails ("err_opset9.onnx", NNIC_ERROR_UNSUPPORTED,
                     "opset 9 is not supported (nnic imports opsets 11 to 17");
  assert_load_fails ("err_opset18.onnx", NNIC_ERROR_UNSUPPORTED, "opset 18 is not supported");
}
END_TEST

START_TEST (test_bad_tensors)
{
  assert_load_fails ("err_negative_dim.onnx", NNIC_ERROR_FORMAT,
                     "initializer 'fc.weight' has a negative dimension (-3 at index 0)");
  assert_load_fails ("err_huge_dims.onnx", NNIC_ERROR_FORMAT,
                     "initializer 'fc.weight' has dims [65536, 65536, 4]: more than 2^31 elements");
  assert_load_fails ("err_size_mismatch.onnx", NNIC_ERROR_FORMAT,
                     "initializer 'fc.weight': 40 bytes of data, but dims [3, 4] of float32 need 48");
  assert_load_fails ("err_float16.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node '/fc/Gemm' (Gemm, opset 13): initializer 'fc.weight' is float16");
  assert_load_fails ("err_missing_external.onnx", NNIC_ERROR_IO, "missing.bin does not exist");
}
END_TEST

START_TEST (test_bad_graphs)
{
  assert_load_fails ("err_unknown_dim.onnx", NNIC_ERROR_UNSUPPORTED,
                     "dimension 2 of the graph input 'x' is unknown ('H')");
  assert_load_fails ("err_two_inputs.onnx", NNIC_ERROR_UNSUPPORTED, "2 inputs that are not initializers");
  assert_load_fails ("err_no_graph.onnx", NNIC_ERROR_FORMAT, "the model has no graph");
  assert_load_fails ("err_no_output.onnx", NNIC_ERROR_FORMAT, "the graph has 0 outputs");
}
END_TEST

START_TEST (test_damaged_files)
{
  g_autofree char *path = fixture ("nni_cnn_eval.onnx");
  g_autofree char *data = NULL;
  gsize len;
  ck_assert (g_file_get_contents (path, &data, &len, NULL));
  GError *err = NULL;
  /* truncated at many points: never a crash, always an error (most cuts
   * break the protobuf; cuts at a field boundary lose the graph's tail) */
  for (gsize cut = 0; cut < len; cut += cut < 4096 ? 7 : 4099) {
    NnicModel *m = nnic_model_load_onnx_from_data ((const guint8 *) data, cut, "cut.onnx", NULL, &err);
    ck_assert_msg (m == NULL, "loaded after a cut at %zu of %zu", cut, len);
    ck_assert_msg (err && err->domain == NNIC_ERROR && strstr (err->message, "cut.onnx"),
                   "cut at %zu: %s", cut, err ? err->message : "no error");
    g_clear_error (&err);
  }
  NnicModel *m = nnic_model_load_onnx_from_data ((const guint8 *) data, len / 2, "half.onnx", NULL, &err);
  ck_assert (m == NULL);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "half.onnx: not an ONNX model: the protobuf could not be parsed");
  g_clear_error (&err);
  /* garbage, an empty file, a missing file */
  m = nnic_model_load_onnx_from_data ((const guint8 *) "\xff\xff\xff\xff garbage", 12, "junk.onnx", NULL, &err);
  ck_assert (m == NULL);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "junk.onnx");
  g_clear_error (&err);
  m = nnic_model_load_onnx_from_data ((const guint8 *) "", 0, "empty.onnx", NULL, &err);
  ck_assert (m == NULL);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_FORMAT, "empty.onnx");
  g_clear_error (&err);
  m = nnic_model_load_onnx ("/nonexistent/model.onnx", NULL, &err);
  ck_assert (m == NULL);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, "/nonexistent/model.onnx");
  g_clear_error (&err);
  /* flipped bytes: errors or (rarely) a model, never a crash */
  for (gsize i = 0; i < 4096 && i < len; i += 13) {
    char saved = data[i];
    data[i] = (char) (data[i] ^ 0x5a);
    m = nnic_model_load_onnx_from_data ((const guint8 *) data, len, "flipped.onnx", NULL, &err);
    ck_assert (m != NULL || err != NULL);
    nnic_model_free (m);
    g_clear_error (&err);
    data[i] = saved;
  }
}
END_TEST

/* ---- QDQ weights ---- */

/* Bit for bit; with `zero_sign_free`, -0 and +0 count as one (naive's
 * truncf gives -0 for small negative weights, whose integer 0 ONNX
 * dequantizes to +0). */
static void
assert_bits_equal (const NnicTensor *got, const NnicTensor *want, gboolean zero_sign_free,
                   const char *what)
{
  ck_assert_msg (got->dtype == NNIC_DTYPE_F32 && want->dtype == NNIC_DTYPE_F32, "%s: not float32", what);
  ck_assert_msg (nnic_tensor_same_shape (got, want), "%s: shapes differ", what);
  for (int64_t i = 0; i < want->numel; i++) {
    gboolean same = memcmp (&got->f32[i], &want->f32[i], sizeof (float)) == 0 ||
                    (zero_sign_free && got->f32[i] == 0.0f && want->f32[i] == 0.0f);
    ck_assert_msg (same, "%s: value %" G_GINT64_FORMAT " is %.9g, want %.9g", what, i,
                   (double) got->f32[i], (double) want->f32[i]);
  }
}

/* conv1 (2→4, 3x3, pad 1), relu1, conv2 (4→3, 3x3, stride 2, no bias),
 * relu2, flatten, fc1 (27→10), relu3, fc2 (10→5), on 2x8x8 inputs. */
static NnicModel *
small_cnn (void)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new (2, 8, 8);
  ck_assert (nnic_model_add_conv2d (m, "conv1", "input",
                                    &(NnicConv2dSpec) { .in_channels = 2, .out_channels = 4,
                                                        .kernel_size = 3, .padding = 1 }, &err));
  ck_assert (nnic_model_add_relu (m, "relu1", "conv1", &err));
  ck_assert (nnic_model_add_conv2d (m, "conv2", "relu1",
                                    &(NnicConv2dSpec) { .in_channels = 4, .out_channels = 3,
                                                        .kernel_size = 3, .stride = 2, .no_bias = TRUE },
                                    &err));
  ck_assert (nnic_model_add_relu (m, "relu2", "conv2", &err));
  ck_assert (nnic_model_add_flatten (m, "flatten", "relu2", &err));
  ck_assert (nnic_model_add_linear (m, "fc1", "flatten",
                                    &(NnicLinearSpec) { .in_features = 27, .out_features = 10 }, &err));
  ck_assert (nnic_model_add_relu (m, "relu3", "fc1", &err));
  ck_assert (nnic_model_add_linear (m, "fc2", "relu3",
                                    &(NnicLinearSpec) { .in_features = 10, .out_features = 5 }, &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 11);
  return m;
}

static NnicTensor *
small_cnn_input (void)
{
  GError *err = NULL;
  NnicTensor *x = nnic_tensor_new_f32 (&err, 4, (int64_t) 3, (int64_t) 2, (int64_t) 8, (int64_t) 8);
  NNIC_ASSERT_NO_ERROR (err);
  for (int64_t i = 0; i < x->numel; i++)
    x->f32[i] = (float) sin ((double) i * 0.61) * 1.7f;
  return x;
}

/* nnic's own QDQ export of the naive quantizer's model, imported back: the
 * layers keep their names, the weights are the wrapper's fake-quantized
 * ones bit for bit, and the output is the wrapped model's. */
START_TEST (test_qdq_naive_roundtrip)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = small_cnn ();
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (
      "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\", \"Linear\"]}]",
      "test", &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "naive", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_compressor_n_wrappers (c), 4);

  g_autoptr (NnicTensor) x = small_cnn_input ();
  nnic_model_set_training (m, FALSE);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) want = nnic_tensor_copy (y, &err);

  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "naive_qdq.onnx", NULL);
  ck_assert_msg (nnic_compressor_export_onnx (c, path, &err), "%s", err ? err->message : "");

  g_autoptr (NnicModel) back = nnic_model_load_onnx (path, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  static const char *const names[] = { "input", "conv1", "relu1", "conv2", "relu2", "flatten", "fc1",
                                       "relu3", "fc2", NULL };
  static const char *const types[] = { "Input", "Conv2d", "ReLU", "Conv2d", "ReLU", "Flatten", "Linear",
                                       "ReLU", "Linear", NULL };
  assert_names (back, names, types);
  assert_same_graph (back, m);

  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    g_autofree char *wn = g_strconcat (nnic_wrapper_name (w), ".weight", NULL);
    NnicParam *p = nnic_model_find_param (back, wn, &err);
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert (w->qweight != NULL);
    assert_bits_equal (p->value, w->qweight, TRUE, wn);
    /* the float weight was quantized: the file held its integers, not it */
    int64_t moved = 0;
    for (int64_t k = 0; k < p->value->numel; k++)
      moved += p->value->f32[k] != nnic_wrapper_weight (w)->f32[k];
    ck_assert_msg (moved > 0, "%s: the imported weight is the float one", wn);
    /* biases stay float */
    if (nnic_wrapper_bias (w)) {
      g_autofree char *bn = g_strconcat (nnic_wrapper_name (w), ".bias", NULL);
      NnicParam *b = nnic_model_find_param (back, bn, &err);
      NNIC_ASSERT_NO_ERROR (err);
      assert_bits_equal (b->value, nnic_wrapper_bias (w), FALSE, bn);
    }
  }

  nnic_model_set_training (back, FALSE);
  const NnicTensor *got = nnic_model_forward (back, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  assert_bits_equal (got, want, TRUE, "the imported model's output");

  g_unlink (path);
  g_rmdir (dir);
}
END_TEST

/* Per-axis and per-tensor scales, zero points, int8/uint8/int32 integers in
 * raw_data and int32_data, QuantizeLinear of a float weight, MatMul + Add,
 * and names from the DequantizeLinear outputs (`features.0.weight` names
 * Conv_0 `features.0`). */
START_TEST (test_qdq_weights)
{
  g_autoptr (NnicModel) m = load ("qdq_weights.onnx");
  static const char *const names[] = { "input", "features.0", "Relu_1", "features.2", "flatten",
                                       "classifier", "MatMul_5", NULL };
  static const char *const types[] = { "Input", "Conv2d", "ReLU", "Conv2d", "Flatten", "Linear",
                                       "Linear", NULL };
  assert_names (m, names, types);
  static const char *const params[] = { "features.0.weight", "features.0.bias", "features.2.weight",
                                        "classifier.weight", "MatMul_5.weight" };
  for (guint i = 0; i < G_N_ELEMENTS (params); i++) {
    g_autofree char *file = g_strdup_printf ("qdq_weights.%s.npy", params[i]);
    g_autoptr (NnicTensor) want = load_npy (file);
    GError *err = NULL;
    NnicParam *p = nnic_model_find_param (m, params[i], &err);
    NNIC_ASSERT_NO_ERROR (err);
    assert_bits_equal (p->value, want, FALSE, params[i]);
  }
  check_output (m, "qdq_weights.in.npy", "qdq_weights.out.npy", FALSE);

  /* the same from a buffer (no external data) */
  g_autofree char *path = fixture ("qdq_weights.onnx");
  g_autofree char *data = NULL;
  gsize len;
  ck_assert (g_file_get_contents (path, &data, &len, NULL));
  GError *err = NULL;
  g_autoptr (NnicModel) b = nnic_model_load_onnx_from_data ((const guint8 *) data, len, "buffer.onnx",
                                                            NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  check_output (b, "qdq_weights.in.npy", "qdq_weights.out.npy", FALSE);
  /* flipped bytes (dims, dtypes, data, attributes): errors or a model, never a crash */
  for (gsize i = 0; i < len; i += 5) {
    char saved = data[i];
    data[i] = (char) (data[i] ^ 0x21);
    NnicModel *f = nnic_model_load_onnx_from_data ((const guint8 *) data, len, "flipped.onnx", NULL, &err);
    ck_assert (f != NULL || err != NULL);
    nnic_model_free (f);
    g_clear_error (&err);
    data[i] = saved;
  }
}
END_TEST

START_TEST (test_qdq_external)
{
  /* int8 weight, float scale and int8 zero point all in qdq_external.bin */
  g_autoptr (NnicModel) m = load ("qdq_external.onnx");
  check_output (m, "qdq_external.in.npy", "qdq_external.out.npy", FALSE);
}
END_TEST

/* nnic's exporter with a QDQ pair on `node`'s input or output: the import
 * names that QuantizeLinear. */
static void
assert_activation_qdq_refused (NnicQuantType type, const char *node, const char *want_node)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = small_cnn ();
  NnicOnnxQuantParam q = { .node = node, .type = type, .scale = 0.05, .zero_point = 0, .bits = 8,
                           .is_signed = TRUE };
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "act_qdq.onnx", NULL);
  ck_assert (nnic_model_save_onnx (m, path, &(NnicOnnxSaveOptions) { .n_quant = 1, .quant = &q }, &err));
  NNIC_ASSERT_NO_ERROR (err);
  NnicModel *back = nnic_model_load_onnx (path, NULL, &err);
  ck_assert (back == NULL);
  g_autofree char *want = g_strdup_printf ("%s: node '%s' (QuantizeLinear, opset 13): QuantizeLinear "
                                           "of the activation '%s': nnic imports QDQ weights",
                                           path, want_node, type == NNIC_QUANT_INPUT ? "relu1" : node);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_UNSUPPORTED, want);
  ck_assert (strstr (err->message, "not quantized activations") != NULL);
  g_clear_error (&err);
  g_unlink (path);
  g_rmdir (dir);
}

START_TEST (test_qdq_activations_refused)
{
  g_autofree char *path = fixture ("err_qdq_activation.onnx");
  GError *err = NULL;
  NnicModel *m = nnic_model_load_onnx (path, NULL, &err);
  ck_assert (m == NULL);
  g_autofree char *want = g_strdup_printf (
      "%s: node 'x_q' (QuantizeLinear, opset 13): QuantizeLinear of the activation 'x': nnic imports "
      "QDQ weights (DequantizeLinear of constant integers), not quantized activations",
      path);
  ck_assert_int_eq (err->code, NNIC_ERROR_UNSUPPORTED);
  ck_assert_str_eq (err->message, want);
  g_clear_error (&err);
  /* nnic's own exports of quantized inputs and outputs */
  assert_activation_qdq_refused (NNIC_QUANT_INPUT, "conv2", "conv2.input_q");
  assert_activation_qdq_refused (NNIC_QUANT_OUTPUT, "fc1", "fc1.output_q");
  /* a per-axis scale before opset 13 */
  assert_load_fails ("err_qdq_opset11.onnx", NNIC_ERROR_FORMAT,
                     "node 'conv.weight_dq' (DequantizeLinear, opset 11): the scale 'conv.weight_scale' "
                     "is [2], but before opset 13 scales are scalars");
}
END_TEST

/* ---- the command line: --model FILE.onnx, nnic infer, --data X.npy,Y.npy ---- */

/* Runs the uninstalled nnic with `args`; returns its exit status and
 * stderr (g_free). */
static int
run_cli (const char *const *args, char **err_out)
{
  const char *build = g_getenv ("NNIC_BUILD_DIR");
  g_autofree char *exe = g_build_filename (build, "tools", "nnic", NULL);
  GPtrArray *argv = g_ptr_array_new ();
  g_ptr_array_add (argv, exe);
  for (const char *const *a = args; *a; a++)
    g_ptr_array_add (argv, (gpointer) *a);
  g_ptr_array_add (argv, NULL);
  int status = -1;
  GError *err = NULL;
  gboolean ok = g_spawn_sync (NULL, (char **) argv->pdata, NULL, G_SPAWN_STDOUT_TO_DEV_NULL, NULL,
                              NULL, NULL, err_out, &status, &err);
  g_ptr_array_free (argv, TRUE);
  ck_assert_msg (ok, "cannot run %s: %s", exe, err ? err->message : "");
  return g_spawn_check_wait_status (status, NULL) ? 0 : 1;
}

static char *
save_tmp (const char *dir, const char *name, NnicTensor *t)
{
  char *path = g_build_filename (dir, name, NULL);
  GError *err = NULL;
  ck_assert (nnic_npy_save (path, t, &err));
  NNIC_ASSERT_NO_ERROR (err);
  return path;
}

#define CLI(...) ((const char *const[]) { __VA_ARGS__, NULL })
#define ASSERT_CLI_OK(args)                                                            \
  do {                                                                                 \
    g_autofree char *e_ = NULL;                                                        \
    ck_assert_msg (run_cli (args, &e_) == 0, "nnic failed: %s", e_);                   \
  } while (0)
#define ASSERT_CLI_FAILS(args, needle)                                                 \
  do {                                                                                 \
    g_autofree char *e_ = NULL;                                                        \
    ck_assert_msg (run_cli (args, &e_) != 0, "nnic succeeded");                        \
    ck_assert_msg (strstr (e_, needle) != NULL, "stderr \"%s\" lacks \"%s\"", e_, needle); \
  } while (0)

/* ---- constant folding (fixtures/onnx/fold/, make_fold_fixtures.py) ---- */

/* Each graph folds a chain of ops on constants into the weight of its
 * Gemm "fc"; numpy computed the same. */
START_TEST (test_fold_ops)
{
  static const char *const cases[] = { "int_arith", "float_arith",  "compare_where",
                                       "shapes",    "slice_gather", "scatter_nd" };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    g_autofree char *onnx = g_strdup_printf ("fold/fold_%s.onnx", cases[c]);
    g_autofree char *npy = g_strdup_printf ("fold/fold_%s.w.npy", cases[c]);
    g_autoptr (NnicModel) m = load (onnx);
    g_autoptr (NnicTensor) want = load_npy (npy);
    GError *err = NULL;
    NnicParam *p = nnic_model_find_param (m, "fc.weight", &err);
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert_msg (nnic_tensor_same_shape (p->value, want), "%s: fc.weight has another shape", cases[c]);
    for (int64_t i = 0; i < want->numel; i++)
      ck_assert_msg (fabsf (p->value->f32[i] - want->f32[i]) <= 1e-6f * fabsf (want->f32[i]),
                     "%s: fc.weight[%" G_GINT64_FORMAT "] is %g, numpy has %g", cases[c], i,
                     (double) p->value->f32[i], (double) want->f32[i]);
    /* only the Gemm is a node */
    ck_assert_uint_eq (nnic_model_n_nodes (m), 2);
  }
}
END_TEST

/* x [N, 4, 6] → [N*2, 2, 6] (a Reshape to a multiple of the batch,
 * computed from Shape), Relu, its Shape checked as ViT checks its class
 * token's, [N, 24] (N*2 / 2, and 12 * (N*4 - N*2) / N), Gemm. */
START_TEST (test_fold_batch)
{
  g_autoptr (NnicModel) m = load ("fold/batch.onnx");
  static const char *const names[] = { "input", "xr", "r", "flat", "fc", NULL };
  static const char *const types[] = { "Input", "Reshape", "ReLU", "Reshape", "Linear", NULL };
  assert_names (m, names, types);
  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, 1, shape), 3);
  ck_assert (shape[0] == 2 && shape[1] == 2 && shape[2] == 6);
  ck_assert_int_eq (nnic_model_node_shape (m, 3, shape), 1);
  ck_assert_int_eq (shape[0], 24);
  check_output (m, "fold/batch.in.npy", "fold/batch.out.npy", FALSE);
}
END_TEST

/* Values whose batch is not the leading ONNX axis (core/onnx/view.c):
 * MultiheadAttention's [L, N, E] and [N*heads, L, hd], Swin's
 * [3, B*nW, heads, T, hd]. Transposes of the batch make no node. */
START_TEST (test_view_layouts)
{
  g_autoptr (NnicModel) a = load ("view/transpose_linear.onnx");
  static const char *const a_names[] = { "input", "proj/MatMul", NULL };
  static const char *const a_types[] = { "Input", "Linear", NULL };
  assert_names (a, a_names, a_types);
  check_output (a, "view/transpose_linear.in.npy", "view/transpose_linear.out.npy", FALSE);

  /* split_heads splits E into heads x hd (a per-sample Reshape); Softmax
   * runs on [N, heads, L, hd] made by one Transpose; the output is put
   * back batch-first */
  g_autoptr (NnicModel) b = load ("view/merge_heads.onnx");
  static const char *const b_names[] = { "input", "split_heads.split", "scale", "softmax.layout",
                                         "softmax", "softmax.layout_1", "softmax.layout_2", NULL };
  static const char *const b_types[] = { "Input", "Reshape", "Mul", "Transpose", "Softmax",
                                         "Transpose", "Reshape", NULL };
  assert_names (b, b_names, b_types);
  check_output (b, "view/merge_heads.in.npy", "view/merge_heads.out.npy", FALSE);

  /* q and k picked from [3, N, 2, 4, 5] by Gather on axis 0 */
  g_autoptr (NnicModel) c = load ("view/permute_gather.onnx");
  static const char *const c_names[] = { "input", "qkv_split", "q", "k", "scores.layout",
                                         "scores.layout_1", "scores", NULL };
  static const char *const c_types[] = { "Input", "Reshape", "Gather", "Gather", "Transpose",
                                         "Transpose", "MatMul", NULL };
  assert_names (c, c_names, c_types);
  check_output (c, "view/permute_gather.in.npy", "view/permute_gather.out.npy", FALSE);
  /* and the backward runs through the views' nodes */
  g_autoptr (NnicTensor) x = load_npy ("view/permute_gather.in.npy");
  GError *err = NULL;
  nnic_model_set_training (c, TRUE);
  const NnicTensor *y = nnic_model_forward (c, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) dy = nnic_tensor_new (NNIC_DTYPE_F32, y->ndim, y->shape, &err);
  NNIC_ASSERT_NO_ERROR (err);
  for (int64_t i = 0; i < dy->numel; i++)
    dy->f32[i] = 1.0f;
  ck_assert (nnic_model_backward (c, dy, &err));
  NNIC_ASSERT_NO_ERROR (err);
  /* (Softmax on a merged [N*2, 12]: tests/test_tensorops.c) */
}
END_TEST

START_TEST (test_view_errors)
{
  assert_load_fails ("view/err_batch_inner.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'softmax_over_tokens' (Softmax, opset 17): its input 't' is [4, N, 6]: "
                     "the batch is at axis 1 here, and Softmax takes its input batch-first");
  assert_load_fails ("view/err_reshape_batch.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'mix_batch' (Reshape, opset 17): the reshape of [4, N, 6] to [8, N*3] "
                     "regroups the batch with axes it is not next to");
  assert_load_fails ("view/err_output_view.onnx", NNIC_ERROR_UNSUPPORTED,
                     "the graph output 'y' is [4, N, 6]: the batch is at axis 1 there; nnic models "
                     "give [N, ...]");
}
END_TEST

START_TEST (test_fold_errors)
{
  assert_load_fails ("fold/err_fold_batch_add.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'n1' (Add, opset 17): N + 1: nnic follows the batch size N through "
                     "products and exact quotients by positive constants only");
  assert_load_fails ("fold/err_fold_batch_cast.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'nf' (Cast, opset 17): Cast of the batch size N to float");
  assert_load_fails ("fold/err_fold_range_batch.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'r' (Range, opset 17): input 1 ('n') is N: a Range of constants needs "
                     "numbers");
  assert_load_fails ("fold/err_fold_div_zero.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'q' (Div, opset 17): 4 / 0: a division by zero");
  assert_load_fails ("fold/err_reshape_batch_inner.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'y' (Reshape, opset 17): the shape [-1, N] is not a per-sample reshape "
                     "nnic can do (of [N, 4]): the batch size past the first dimension");
  assert_load_fails ("fold/err_merged_reduce.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'rm' (ReduceMean, opset 17): its input 'xm' is [N*2, 12], the batch merged "
                     "into the first dimension by a Reshape; nnic imports ReduceMean on such values "
                     "only after a Reshape back to [N, ...]");
  assert_load_fails ("fold/err_merged_output.onnx", NNIC_ERROR_UNSUPPORTED,
                     "the graph output 'y' is [N*2, 12], the batch merged into its first dimension "
                     "by a Reshape; nnic models give [N, ...], one row per sample");
  assert_load_fails ("fold/err_slice_batch.onnx", NNIC_ERROR_UNSUPPORTED,
                     "node 'y' (Slice, opset 17): axis 0 of input 0 ('x') [N, 4] is the batch "
                     "dimension; nnic works on each sample alone");
}
END_TEST

START_TEST (test_cli)
{
  if (!g_getenv ("NNIC_BUILD_DIR")) {
    printf ("SKIP test_cli: NNIC_BUILD_DIR is not set\n");
    return;
  }
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *model = fixture ("classifier_eval13.onnx");
  g_autofree char *in = fixture ("classifier.in.npy");
  g_autofree char *out = g_build_filename (dir, "y.npy", NULL);
  GError *err = NULL;

  /* nnic infer on an ONNX file, in batches of 2 */
  ASSERT_CLI_OK (CLI ("infer", "--model", model, "--input", in, "--out", out, "--batch-size", "2"));
  g_autoptr (NnicTensor) got = nnic_npy_load (out, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) want = load_npy ("classifier.out.npy");
  ck_assert_int_eq (got->ndim, 2);
  assert_close (got, want, "nnic infer");
  g_autofree char *other = fixture ("nni_cnn.in.npy");
  ASSERT_CLI_FAILS (CLI ("infer", "--model", model, "--input", other, "--out", out),
                    "takes samples of shape [3, 13, 14], but the data's are [1, 16, 16]");
  ASSERT_CLI_FAILS (CLI ("infer", "--model", "nni_cnn", "--input", other, "--out", out), "--checkpoint");

  /* --data X.npy,Y.npy: train the imported nni_cnn_bn (its graph, fresh
   * weights), then run the checkpoint in the ONNX model and the built-in */
  int64_t xs[4] = { 40, 1, 16, 16 }, ys[1] = { 40 };
  g_autoptr (NnicTensor) x = nnic_tensor_new (NNIC_DTYPE_F32, 4, xs, &err);
  g_autoptr (NnicTensor) y = nnic_tensor_new (NNIC_DTYPE_I32, 1, ys, &err);
  for (int64_t i = 0; i < x->numel; i++)
    x->f32[i] = (float) sin ((double) i * 0.37);
  for (int64_t i = 0; i < y->numel; i++)
    y->i32[i] = (int32_t) (i % 10);
  g_autofree char *xp = save_tmp (dir, "x.npy", x);
  g_autofree char *yp = save_tmp (dir, "y_labels.npy", y);
  g_autofree char *data = g_strconcat (xp, ",", yp, NULL);
  g_autofree char *bn = fixture ("nni_cnn_bn_train.onnx");
  g_autofree char *ck = g_build_filename (dir, "ck.safetensors", NULL);
  ASSERT_CLI_OK (CLI ("train", "--model", bn, "--data", data, "--epochs", "1", "--batch-size", "8",
                      "--out", ck));
  g_autofree char *out1 = g_build_filename (dir, "y1.npy", NULL);
  g_autofree char *out2 = g_build_filename (dir, "y2.npy", NULL);
  ASSERT_CLI_OK (CLI ("infer", "--model", bn, "--checkpoint", ck, "--input", xp, "--out", out1));
  ASSERT_CLI_OK (CLI ("infer", "--model", "nni_cnn_bn", "--checkpoint", ck, "--input", xp, "--out", out2));
  g_autoptr (NnicTensor) y1 = nnic_npy_load (out1, &err);
  g_autoptr (NnicTensor) y2 = nnic_npy_load (out2, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (y1->shape[0], 40);
  ck_assert_int_eq (y1->shape[1], 10);
  assert_close (y1, y2, "the checkpoint in the ONNX model and in the built-in");

  /* --data errors name the files */
  int64_t short_shape[1] = { 30 };
  g_autoptr (NnicTensor) ys_short = nnic_tensor_new (NNIC_DTYPE_I64, 1, short_shape, &err);
  g_autoptr (NnicTensor) yf = nnic_tensor_new (NNIC_DTYPE_F32, 1, ys, &err);
  g_autoptr (NnicTensor) y2d = nnic_tensor_new_f32 (&err, 2, (int64_t) 40, (int64_t) 2);
  g_autofree char *ysp = save_tmp (dir, "short.npy", ys_short);
  g_autofree char *yfp = save_tmp (dir, "float.npy", yf);
  g_autofree char *bad_n = g_strconcat (xp, ",", ysp, NULL);
  g_autofree char *bad_dtype = g_strconcat (xp, ",", yfp, NULL);
  ASSERT_CLI_FAILS (CLI ("train", "--model", bn, "--data", bad_n, "--epochs", "1"),
                    "has 40 samples but");
  ASSERT_CLI_FAILS (CLI ("train", "--model", bn, "--data", bad_dtype, "--epochs", "1"),
                    "float.npy: labels must be integers of shape [N]");
  ASSERT_CLI_FAILS (CLI ("train", "--model", bn, "--data", xp, "--epochs", "1"), "give two .npy files");
  ASSERT_CLI_FAILS (CLI ("train", "--model", model, "--data", data, "--epochs", "1"),
                    "takes samples of shape [3, 13, 14]");

  const char *files[] = { "y.npy", "x.npy", "y_labels.npy", "ck.safetensors", "y1.npy", "y2.npy",
                          "short.npy", "float.npy" };
  for (guint i = 0; i < G_N_ELEMENTS (files); i++) {
    g_autofree char *p = g_build_filename (dir, files[i], NULL);
    g_unlink (p);
  }
  g_rmdir (dir);
}
END_TEST

static Suite *
onnx_import_suite (void)
{
  Suite *s = suite_create ("onnx_import");
  TCase *tc = tcase_create ("torch");
  tcase_add_test (tc, test_nni_cnn_eval);
  tcase_add_test (tc, test_nni_cnn_bn_train_form);
  tcase_add_test (tc, test_nni_cnn_bn_eval_folded);
  tcase_add_test (tc, test_residual);
  tcase_add_test (tc, test_classifier_opset13);
  tcase_add_test (tc, test_classifier_opset12_training_form);
  tcase_add_test (tc, test_classifier_opset17);
  tcase_add_test (tc, test_classifier_opset11);
  suite_add_tcase (s, tc);
  tc = tcase_create ("graphs");
  tcase_add_test (tc, test_auto_pad);
  tcase_add_test (tc, test_gemm_matmul);
  tcase_add_test (tc, test_external_data);
  tcase_add_test (tc, test_bound_constant);
  suite_add_tcase (s, tc);
  tc = tcase_create ("errors");
  tcase_add_test (tc, test_unsupported_op);
  tcase_add_test (tc, test_bad_opset);
  tcase_add_test (tc, test_bad_tensors);
  tcase_add_test (tc, test_bad_graphs);
  tcase_add_test (tc, test_damaged_files);
  suite_add_tcase (s, tc);
  tc = tcase_create ("qdq");
  tcase_add_test (tc, test_qdq_naive_roundtrip);
  tcase_add_test (tc, test_qdq_weights);
  tcase_add_test (tc, test_qdq_external);
  tcase_add_test (tc, test_qdq_activations_refused);
  suite_add_tcase (s, tc);
  tc = tcase_create ("fold");
  tcase_add_test (tc, test_fold_ops);
  tcase_add_test (tc, test_fold_batch);
  tcase_add_test (tc, test_fold_errors);
  tcase_add_test (tc, test_view_layouts);
  tcase_add_test (tc, test_view_errors);
  suite_add_tcase (s, tc);
  tc = tcase_create ("cli");
  tcase_add_test (tc, test_cli);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return nnic_test_run (onnx_import_suite ());
}
