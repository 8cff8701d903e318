/* ONNX export: every built-in model goes out and back in with the same
 * names, the same weights and the same outputs; pruned weights stay
 * pruned; what ONNX cannot say is an error. (ONNX Runtime reading the
 * exported files is tests/test_onnxruntime.sh.) */
#include "testutil.h"

#include <math.h>
#include <string.h>

static NnicTensor *
random_batch (const NnicModel *m, int64_t batch, guint64 seed)
{
  GError *err = NULL;
  int64_t shape[NNIC_MAX_DIMS + 1];
  const int nd = nnic_model_node_shape (m, 0, shape + 1);
  shape[0] = batch;
  NnicTensor *x = nnic_tensor_new (NNIC_DTYPE_F32, nd + 1, shape, &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicRng r;
  nnic_rng_seed (&r, seed);
  for (int64_t i = 0; i < x->numel; i++)
    x->f32[i] = (float) (2.0 * nnic_rng_uniform (&r) - 1.0);
  return x;
}

/* Changes the BatchNorm running statistics away from 0/1, so that their
 * export is checked too. */
static void
perturb_buffers (NnicModel *m)
{
  for (guint i = 0; i < nnic_model_n_params (m); i++) {
    NnicParam *p = nnic_model_param (m, i);
    if (p->grad || g_str_has_suffix (p->name, "num_batches_tracked"))
      continue;
    for (int64_t k = 0; k < p->value->numel; k++)
      p->value->f32[k] = (g_str_has_suffix (p->name, "running_var") ? 0.5f : 0.1f) + 0.01f * (float) (k % 7);
  }
}

/* m goes out to ONNX and back in: the same nodes, weights and outputs. */
static void
round_trip_model (const char *name, NnicModel *m)
{
  GError *err = NULL;
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "model.onnx", NULL);
  ck_assert_msg (nnic_model_save_onnx (m, path, NULL, &err), "%s: %s", name, err ? err->message : "");

  g_autoptr (NnicModel) back = nnic_model_load_onnx (path, NULL, &err);
  ck_assert_msg (back != NULL, "%s: %s", name, err ? err->message : "");
  /* The same layers under the same names, the same state_dict. */
  const guint out = nnic_model_output_node (m);
  for (guint i = 1; i <= out; i++) {
    const char *type = nnic_model_node_type (m, i);
    if (!strcmp (type, "Dropout"))
      continue; /* an identity in inference; the importer may drop it */
    int j = nnic_model_find_node (back, nnic_model_node_name (m, i));
    ck_assert_msg (j >= 0, "%s: node %s is missing after the round trip", name, nnic_model_node_name (m, i));
    if (!strcmp (type, "ReLU6"))
      continue; /* Clip(0, 6) comes back as ReLU6 or Hardtanh(0, 6) */
    ck_assert_str_eq (nnic_model_node_type (back, (guint) j), type);
  }
  for (guint i = 0; i < nnic_model_n_params (m); i++) {
    NnicParam *p = nnic_model_param (m, i);
    if (g_str_has_suffix (p->name, "num_batches_tracked"))
      continue; /* ONNX has no place for it */
    NnicParam *q = nnic_model_find_param (back, p->name, &err);
    ck_assert_msg (q != NULL, "%s: %s", name, err ? err->message : "");
    ck_assert (nnic_tensor_same_shape (p->value, q->value));
    ck_assert_msg (memcmp (p->value->data, q->value->data, nnic_tensor_nbytes (p->value)) == 0,
                   "%s: %s differs after the round trip", name, p->name);
  }
  nnic_model_set_training (m, FALSE);
  nnic_model_set_training (back, FALSE);
  g_autoptr (NnicTensor) x = random_batch (m, 3, 11);
  const NnicTensor *ya = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) keep = nnic_tensor_copy (ya, &err);
  const NnicTensor *yb = nnic_model_forward (back, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_tensor_same_shape (keep, yb));
  for (int64_t k = 0; k < keep->numel; k++)
    ck_assert_msg (fabsf (keep->f32[k] - yb->f32[k]) <= 1e-5f * (1.0f + fabsf (keep->f32[k])),
                   "%s: output %" G_GINT64_FORMAT ": %g vs %g", name, k, keep->f32[k], yb->f32[k]);
}

static void
round_trip (const char *name, int c, int h, int w)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin (name, c, h, w, 10, &err);
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 5);
  perturb_buffers (m);
  round_trip_model (name, m);
}

START_TEST (test_builtin_round_trips)
{
  round_trip ("nni_cnn", 1, 28, 28);
  round_trip ("nni_cnn_bn", 1, 28, 28);
  round_trip ("lenet5", 1, 28, 28);
  round_trip ("vgg_small", 3, 32, 32);
  round_trip ("resnet8", 3, 32, 32);
}
END_TEST

/* Slices (a negative step, several axes), Gather (one index, a list),
 * Concat along the height, the width and the channels, a Split's parts. */
START_TEST (test_slice_gather_concat_round_trip)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (3, 6, 7);
  NnicConv2dSpec s = { .in_channels = 3, .out_channels = 4, .kernel_size = 3, .padding = 1 };
  ck_assert (nnic_model_add_conv2d (m, "conv", NULL, &s, &err));
  ck_assert (nnic_model_add_slice (m, "flip", "conv", 1, (const int[]) { 3 }, (const int64_t[]) { -1 },
                                   (const int64_t[]) { -INT64_MAX }, (const int64_t[]) { -1 }, &err));
  /* top = conv[:, ::2, :2], rest = conv[:, 1:4:2, 2:] */
  ck_assert (nnic_model_add_slice (m, "top", "conv", 2, (const int[]) { 2, 1 },
                                   (const int64_t[]) { 0, 0 }, (const int64_t[]) { 2, 100 },
                                   (const int64_t[]) { 1, 2 }, &err));
  ck_assert (nnic_model_add_slice (m, "rest", "conv", 2, (const int[]) { 2, 1 },
                                   (const int64_t[]) { 2, 1 }, (const int64_t[]) { G_MAXINT64, 4 },
                                   (const int64_t[]) { 1, 2 }, &err));
  ck_assert (nnic_model_add_concat_dim (m, "rows", (const char *[]) { "rest", "top" }, 2, 2, &err));
  ck_assert (nnic_model_add_concat (m, "chan", (const char *[]) { "rows", "flip" }, 2, &err));
  ck_assert (nnic_model_add_concat_dim (m, "cols", (const char *[]) { "chan", "chan" }, 2, -1, &err));
  ck_assert (nnic_model_add_index_select (m, "pick", "cols", 1, (const int64_t[]) { 3, 0, 3 }, 3, &err));
  ck_assert (nnic_model_add_select (m, "row", "pick", 2, -2, &err));
  ck_assert (nnic_model_add_flatten (m, "flat", "row", &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 3);
  round_trip_model ("slices", m);
}
END_TEST

/* torch's exports, imported: a Split's Slices, a window partition to
 * B*nW rows and back (its Reshapes go out per sample), torch.roll and
 * list indexing, ViT's token pick. */
START_TEST (test_imported_slices_round_trip)
{
  static const char *const cases[] = { "shuffle_chunk_opset13", "window_partition_opset17",
                                       "roll_flip_opset17", "vit_class_token_opset17" };
  for (guint i = 0; i < G_N_ELEMENTS (cases); i++) {
    g_autofree char *dir = g_strconcat ("test_nnic_", cases[i], NULL);
    g_autofree char *path = g_build_filename (NNIC_TEST_FIXTURES, "onnx_models", "cases", dir,
                                              "model.onnx", NULL);
    GError *err = NULL;
    g_autoptr (NnicModel) m = nnic_model_load_onnx (path, NULL, &err);
    NNIC_ASSERT_NO_ERROR (err);
    round_trip_model (cases[i], m);
  }
}
END_TEST

/* torch's exports with elementwise arithmetic (tests/fixtures/onnx_models/
 * cases): imported, exported and imported again, they keep their nodes,
 * their Parameters under the state_dict names, and their outputs. */
START_TEST (test_binary_round_trips)
{
  static const char *const cases[] = { "test_nnic_se_block_opset13", "test_nnic_layer_scale_opset13",
                                        "test_nnic_tokens_add_pos_opset13",
                                        "test_nnic_class_token_opset13" };
  for (guint c = 0; c < G_N_ELEMENTS (cases); c++) {
    GError *err = NULL;
    g_autofree char *src = g_build_filename (NNIC_TEST_FIXTURES, "onnx_models", "cases", cases[c],
                                             "model.onnx", NULL);
    g_autoptr (NnicModel) m = nnic_model_load_onnx (src, NULL, &err);
    ck_assert_msg (m != NULL, "%s: %s", cases[c], err ? err->message : "");
    g_autofree char *dir = nnic_test_tmpdir ();
    g_autofree char *path = g_build_filename (dir, "model.onnx", NULL);
    ck_assert_msg (nnic_model_save_onnx (m, path, NULL, &err), "%s: %s", cases[c], err ? err->message : "");
    g_autoptr (NnicModel) back = nnic_model_load_onnx (path, NULL, &err);
    ck_assert_msg (back != NULL, "%s: %s", cases[c], err ? err->message : "");
    for (guint i = 1; i <= nnic_model_output_node (m); i++) {
      const int j = nnic_model_find_node (back, nnic_model_node_name (m, i));
      ck_assert_msg (j >= 0, "%s: %s is missing", cases[c], nnic_model_node_name (m, i));
      ck_assert_str_eq (nnic_model_node_type (back, (guint) j), nnic_model_node_type (m, i));
    }
    ck_assert_uint_eq (nnic_model_n_params (back), nnic_model_n_params (m));
    for (guint k = 0; k < nnic_model_n_params (m); k++) {
      NnicParam *p = nnic_model_param (m, k);
      NnicParam *q = nnic_model_find_param (back, p->name, &err);
      ck_assert_msg (q != NULL, "%s: %s", cases[c], err ? err->message : "");
      ck_assert (nnic_tensor_same_shape (p->value, q->value));
      ck_assert (!memcmp (p->value->data, q->value->data, nnic_tensor_nbytes (p->value)));
    }
    for (int64_t batch = 1; batch <= 3; batch += 2) {
      g_autoptr (NnicTensor) x = random_batch (m, batch, 21);
      g_autoptr (NnicTensor) ya = nnic_tensor_copy (nnic_model_forward (m, x, &err), &err);
      const NnicTensor *yb = nnic_model_forward (back, x, &err);
      NNIC_ASSERT_NO_ERROR (err);
      ck_assert (nnic_tensor_same_shape (ya, yb));
      for (int64_t k = 0; k < ya->numel; k++)
        ck_assert_msg (ya->f32[k] == yb->f32[k], "%s: output %" G_GINT64_FORMAT ": %g vs %g",
                       cases[c], k, ya->f32[k], yb->f32[k]);
    }
  }
}
END_TEST

START_TEST (test_pruned_weights_stay_pruned)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("nni_cnn", 1, 28, 28, 10, &err);
  nnic_model_init_params (m, 2);
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (
      "[{\"sparsity\": 0.5, \"op_types\": [\"Conv2d\"]}]", "test", &err);
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "l1filter", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "pruned.onnx", NULL);
  ck_assert (nnic_model_save_onnx (m, path, NULL, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicModel) back = nnic_model_load_onnx (path, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const NnicTensor *w = nnic_model_find_param (back, "conv2.weight", &err)->value;
  int64_t zero_filters = 0;
  const int64_t per = w->numel / w->shape[0];
  for (int64_t f = 0; f < w->shape[0]; f++) {
    gboolean all = TRUE;
    for (int64_t k = 0; k < per; k++)
      all &= w->f32[f * per + k] == 0.0f;
    zero_filters += all;
  }
  ck_assert_int_eq (zero_filters, 25);
}
END_TEST

START_TEST (test_export_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("nni_cnn", 1, 28, 28, 10, &err);
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "x.onnx", NULL);
  ck_assert (!nnic_model_save_onnx (m, path, &(NnicOnnxSaveOptions) { .opset = 9 }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "x.onnx: ONNX export writes opsets 11 to 17, not 9");
  g_clear_error (&err);
  ck_assert (!g_file_test (path, G_FILE_TEST_EXISTS));
  /* An adaptive pool whose windows do not tile the input. */
  g_autoptr (NnicModel) a = nnic_model_new (3, 7, 7);
  nnic_model_add_adaptive_avgpool2d (a, "pool", NULL, 3, 3, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (!nnic_model_save_onnx (a, path, NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_UNSUPPORTED, "pool (AdaptiveAvgPool2d): output 3x3 does not divide the input 7x7");
  g_clear_error (&err);
  /* A directory that does not exist: an IO error, nothing written. */
  g_autofree char *bad = g_build_filename (dir, "no", "such", "m.onnx", NULL);
  ck_assert (!nnic_model_save_onnx (m, bad, NULL, &err));
  ck_assert_int_eq (err->code, NNIC_ERROR_IO);
  g_clear_error (&err);
}
END_TEST


/* naive on a layer whose weights are all zero (a pruned-away layer):
 * scale 0, exported as scale 1 and zero integers. */
START_TEST (test_qdq_all_zero_weight)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("nni_cnn", 1, 28, 28, 10, &err);
  nnic_model_init_params (m, 2);
  NnicTensor *w = nnic_model_find_param (m, "fc2.weight", &err)->value;
  memset (w->data, 0, nnic_tensor_nbytes (w));
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (
      "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\", \"Linear\"]}]", "test", &err);
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "naive", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  g_autoptr (NnicTensor) x = random_batch (m, 2, 3);
  ck_assert (nnic_model_forward (m, x, &err) != NULL);
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "q.onnx", NULL);
  ck_assert_msg (nnic_compressor_export_onnx (c, path, &err), "%s", err ? err->message : "");
  g_autoptr (NnicModel) back = nnic_model_load_onnx (path, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const NnicTensor *b = nnic_model_find_param (back, "fc2.weight", &err)->value;
  for (int64_t k = 0; k < b->numel; k++)
    ck_assert_float_eq (b->f32[k], 0.0f);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("onnx_export");
  TCase *tc = tcase_create ("core");
  tcase_add_test (tc, test_builtin_round_trips);
  tcase_add_test (tc, test_slice_gather_concat_round_trip);
  tcase_add_test (tc, test_imported_slices_round_trip);
  tcase_add_test (tc, test_binary_round_trips);
  tcase_add_test (tc, test_pruned_weights_stay_pruned);
  tcase_add_test (tc, test_export_errors);
  tcase_add_test (tc, test_qdq_all_zero_weight);
  suite_add_tcase (s, tc);
  return nnic_test_run (s);
}
