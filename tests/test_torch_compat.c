/* PyTorch compatibility: checkpoints trained in PyTorch load in nnic and
 * evaluate to the same accuracy and the same logits.
 *
 * The fixtures (torch_nni_cnn.safetensors, torch_nni_cnn_bn.safetensors,
 * torch_expected.json) come from fixtures/make_torch_checkpoints.py, which
 * trains NNI's `Mnist` and `NaiveModel` in torch 1.13 on Fashion-MNIST and
 * records, for the first 1000 test images, the number torch gets right, its
 * argmax for each image and the logits of the first four.
 */
#include "testutil.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define N_EVAL 1000
#define N_LOGITS 4
#define LOGIT_TOL 1e-4

static const char *const models[] = { "nni_cnn", "nni_cnn_bn" };

static char *
fixture (const char *name)
{
  return g_build_filename (NNIC_TEST_FIXTURES, name, NULL);
}

/* torch_expected.json's entry for one model. */
static JsonObject *
expected_for (JsonParser *parser, const char *model)
{
  JsonNode *root = json_parser_get_root (parser);
  ck_assert (root != NULL && JSON_NODE_HOLDS_OBJECT (root));
  JsonObject *all = json_object_get_object_member (json_node_get_object (root), "models");
  ck_assert_msg (all != NULL && json_object_has_member (all, model),
                 "torch_expected.json has no entry for %s", model);
  ck_assert_int_eq (json_object_get_int_member (json_node_get_object (root), "n_eval"), N_EVAL);
  return json_object_get_object_member (all, model);
}

static JsonParser *
load_expected (void)
{
  g_autofree char *path = fixture ("torch_expected.json");
  JsonParser *parser = json_parser_new ();
  GError *err = NULL;
  ck_assert_msg (json_parser_load_from_file (parser, path, &err), "%s: %s", path,
                 err ? err->message : "");
  return parser;
}

/* The PyTorch-trained model, loaded into a fresh built-in one. */
static NnicModel *
load_torch_model (const char *name)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new_builtin (name, 1, 28, 28, 10, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autofree char *base = g_strdup_printf ("torch_%s.safetensors", name);
  g_autofree char *path = fixture (base);
  ck_assert (nnic_model_load (m, path, &err));
  NNIC_ASSERT_NO_ERROR (err);
  return m;
}

/* The first N_EVAL test images, or NULL (after a SKIP line) without the data set. */
static NnicDataset *
load_test_images (void)
{
  GError *err = NULL;
  g_autoptr (NnicDataset) full = nnic_dataset_load_named ("fashion-mnist", FALSE, NULL, &err);
  if (!full) {
    printf ("SKIP fashion-mnist is not installed: %s\n", err->message);
    g_clear_error (&err);
    return NULL;
  }
  NnicDataset *head = nnic_dataset_head (full, N_EVAL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (head->images->ndim, 4);
  ck_assert_int_eq (head->images->shape[0], N_EVAL);
  return head;
}

static int
argmax_row (const float *row, int n)
{
  int best = 0;
  for (int k = 1; k < n; k++)
    if (row[k] > row[best])
      best = k;
  return best;
}

static void
assert_tensor_equal (const char *what, const NnicTensor *a, const NnicTensor *b)
{
  ck_assert_msg (a->dtype == b->dtype, "%s: dtype %s vs %s", what, nnic_dtype_name (a->dtype),
                 nnic_dtype_name (b->dtype));
  ck_assert_msg (nnic_tensor_same_shape (a, b), "%s: shapes differ", what);
  ck_assert_msg (memcmp (a->data, b->data, nnic_tensor_nbytes (a)) == 0, "%s: values differ", what);
}

/* ---- the checkpoint's tensors land in the model unchanged ---- */

START_TEST (test_load_exact)
{
  const char *name = models[_i];
  GError *err = NULL;
  g_autoptr (NnicModel) m = load_torch_model (name);
  g_autofree char *base = g_strdup_printf ("torch_%s.safetensors", name);
  g_autofree char *path = fixture (base);
  g_autoptr (NnicTensorDict) file = nnic_safetensors_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  /* Same entries: every model parameter/buffer is in the file and vice versa. */
  ck_assert_uint_eq (nnic_tensor_dict_len (file), nnic_model_n_params (m));
  for (guint i = 0; i < nnic_model_n_params (m); i++) {
    NnicParam *p = nnic_model_param (m, i);
    NnicTensor *f = nnic_tensor_dict_get (file, p->name);
    ck_assert_msg (f != NULL, "%s: %s is not in the torch file", name, p->name);
    if (g_str_has_suffix (p->name, ".num_batches_tracked")) {
      /* int64 in PyTorch; nnic keeps a float. */
      ck_assert_int_eq (f->dtype, NNIC_DTYPE_I64);
      ck_assert_int_eq (f->numel, 1);
      ck_assert_int_eq (p->value->numel, 1);
      ck_assert_msg (f->i64[0] == 300, "%s: %s is %" G_GINT64_FORMAT ", torch trained 300 steps",
                     name, p->name, f->i64[0]);
      ck_assert_msg ((int64_t) p->value->f32[0] == f->i64[0], "%s: %s loaded as %g", name, p->name,
                     (double) p->value->f32[0]);
      continue;
    }
    assert_tensor_equal (p->name, p->value, f);
  }
}
END_TEST

/* ---- same accuracy, same logits ---- */

START_TEST (test_same_accuracy_and_logits)
{
  const char *name = models[_i];
  GError *err = NULL;
  g_autoptr (NnicDataset) test = load_test_images ();
  if (!test)
    return;
  g_autoptr (JsonParser) parser = load_expected ();
  JsonObject *exp = expected_for (parser, name);
  g_autoptr (NnicModel) m = load_torch_model (name);

  /* Accuracy through the public evaluation routine. */
  double accuracy = -1, loss = -1;
  ck_assert (nnic_evaluate (m, test, 100, &accuracy, &loss, &err));
  NNIC_ASSERT_NO_ERROR (err);
  int64_t correct = (int64_t) llround (accuracy * N_EVAL);
  int64_t torch_correct = json_object_get_int_member (exp, "correct");

  /* Per image, through forward: nnic's argmax against torch's. */
  nnic_model_set_training (m, FALSE);
  JsonArray *preds = json_object_get_array_member (exp, "predictions");
  ck_assert_uint_eq (json_array_get_length (preds), N_EVAL);
  int64_t per_image = test->images->numel / N_EVAL; /* C×H×W of one image */
  const int batch = 250;
  int disagree = 0;
  int64_t correct_fwd = 0;
  for (int start = 0; start < N_EVAL; start += batch) {
    int64_t shape[4] = { batch, 1, 28, 28 };
    g_autoptr (NnicTensor) x = nnic_tensor_new (NNIC_DTYPE_F32, 4, shape, &err);
    NNIC_ASSERT_NO_ERROR (err);
    memcpy (x->f32, test->images->f32 + start * per_image, nnic_tensor_nbytes (x));
    const NnicTensor *y = nnic_model_forward (m, x, &err);
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert_int_eq (y->ndim, 2);
    ck_assert_int_eq (y->shape[0], batch);
    ck_assert_int_eq (y->shape[1], 10);
    for (int b = 0; b < batch; b++) {
      int i = start + b;
      int ours = argmax_row (y->f32 + b * 10, 10);
      int theirs = (int) json_array_get_int_element (preds, i);
      correct_fwd += ours == test->labels->i64[i];
      if (ours != theirs) {
        const float *r = y->f32 + b * 10;
        printf ("%s: image %d: nnic predicts %d (logit %.7g), torch %d (nnic's logit %.7g)\n", name,
                i, ours, (double) r[ours], theirs, (double) r[theirs]);
        disagree++;
      }
    }
  }
  printf ("%s: torch %" G_GINT64_FORMAT "/%d correct, nnic %" G_GINT64_FORMAT "/%d (evaluate), %"
          G_GINT64_FORMAT "/%d (forward); %d predictions differ; mean loss %.7f in nnic, %.7f "
          "in torch\n",
          name, torch_correct, N_EVAL, correct, N_EVAL, correct_fwd, N_EVAL, disagree, loss,
          json_object_get_double_member (exp, "loss"));
  ck_assert_msg (disagree == 0, "%s: %d of %d predictions differ from torch's", name, disagree,
                 N_EVAL);
  ck_assert_int_eq (correct_fwd, torch_correct);
  ck_assert_msg (correct == torch_correct, "%s: nnic_evaluate gets %" G_GINT64_FORMAT
                 " right, torch %" G_GINT64_FORMAT, name, correct, torch_correct);
  double torch_loss = json_object_get_double_member (exp, "loss");
  ck_assert_msg (fabs (loss - torch_loss) <= 1e-5, "%s: mean loss %.7f in nnic, %.7f in torch", name,
                 loss, torch_loss);

  /* Logits of the first images. */
  int64_t shape[4] = { N_LOGITS, 1, 28, 28 };
  g_autoptr (NnicTensor) x = nnic_tensor_new (NNIC_DTYPE_F32, 4, shape, &err);
  memcpy (x->f32, test->images->f32, nnic_tensor_nbytes (x));
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  JsonArray *logits = json_object_get_array_member (exp, "logits");
  ck_assert_uint_eq (json_array_get_length (logits), N_LOGITS);
  double max_diff = 0;
  for (int i = 0; i < N_LOGITS; i++) {
    JsonArray *row = json_array_get_array_element (logits, i);
    ck_assert_uint_eq (json_array_get_length (row), 10);
    for (int k = 0; k < 10; k++) {
      double want = json_array_get_double_element (row, k);
      double got = y->f32[i * 10 + k];
      double d = fabs (got - want);
      ck_assert_msg (d <= LOGIT_TOL, "%s: image %d logit %d: nnic %.7g, torch %.7g", name, i, k, got,
                     want);
      max_diff = MAX (max_diff, d);
    }
  }
  printf ("%s: max |logit difference| over the first %d images: %.3g\n", name, N_LOGITS, max_diff);
}
END_TEST

/* ---- save and reload ---- */

START_TEST (test_save_reload)
{
  const char *name = models[_i];
  GError *err = NULL;
  g_autoptr (NnicModel) m = load_torch_model (name);
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "model.safetensors", NULL);
  ck_assert (nnic_model_save (m, path, &err));
  NNIC_ASSERT_NO_ERROR (err);

  /* A fresh model (other initial values) reads it back bit for bit. */
  g_autoptr (NnicModel) fresh = nnic_model_new_builtin (name, 1, 28, 28, 10, &err);
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (fresh, 12345);
  ck_assert (nnic_model_load (fresh, path, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_model_n_params (fresh), nnic_model_n_params (m));
  for (guint i = 0; i < nnic_model_n_params (m); i++) {
    NnicParam *a = nnic_model_param (m, i);
    NnicParam *b = nnic_model_param (fresh, i);
    ck_assert_str_eq (a->name, b->name);
    assert_tensor_equal (a->name, a->value, b->value);
  }

  /* What nnic wrote holds the same entries, dtypes and values as the file
   * torch wrote (num_batches_tracked included, as I64). */
  g_autofree char *base = g_strdup_printf ("torch_%s.safetensors", name);
  g_autofree char *torch_path = fixture (base);
  g_autoptr (NnicTensorDict) theirs = nnic_safetensors_load (torch_path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensorDict) ours = nnic_safetensors_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_tensor_dict_len (ours), nnic_tensor_dict_len (theirs));
  for (guint i = 0; i < ours->names->len; i++) {
    const char *n = g_ptr_array_index (ours->names, i);
    NnicTensor *t = nnic_tensor_dict_get (theirs, n);
    ck_assert_msg (t != NULL, "%s: nnic wrote '%s', torch did not", name, n);
    assert_tensor_equal (n, g_ptr_array_index (ours->tensors, i), t);
  }

  /* The reloaded model computes the same thing. */
  int64_t shape[4] = { 2, 1, 28, 28 };
  g_autoptr (NnicTensor) x = nnic_tensor_new (NNIC_DTYPE_F32, 4, shape, &err);
  for (int64_t k = 0; k < x->numel; k++)
    x->f32[k] = (float) sin ((double) k * 0.37);
  nnic_model_set_training (m, FALSE);
  nnic_model_set_training (fresh, FALSE);
  g_autoptr (NnicTensor) ya = nnic_tensor_copy (nnic_model_forward (m, x, &err), &err);
  NNIC_ASSERT_NO_ERROR (err);
  const NnicTensor *yb = nnic_model_forward (fresh, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  assert_tensor_equal ("output", ya, yb);

  g_unlink (path);
  g_rmdir (dir);
}
END_TEST

static Suite *
torch_compat_suite (void)
{
  Suite *s = suite_create ("torch_compat");
  TCase *tc = tcase_create ("torch_compat");
  tcase_set_timeout (tc, 300);
  tcase_add_loop_test (tc, test_load_exact, 0, G_N_ELEMENTS (models));
  tcase_add_loop_test (tc, test_same_accuracy_and_logits, 0, G_N_ELEMENTS (models));
  tcase_add_loop_test (tc, test_save_reload, 0, G_N_ELEMENTS (models));
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return nnic_test_run (torch_compat_suite ());
}
