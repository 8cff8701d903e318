#include "testutil.h"

#include <stdlib.h>
#include <string.h>

int
nnic_test_run (Suite *s)
{
  SRunner *sr = srunner_create (s);
  srunner_run_all (sr, CK_NORMAL);
  int failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

char *
nnic_test_tmpdir (void)
{
  GError *err = NULL;
  char *dir = g_dir_make_tmp ("nnic-test-XXXXXX", &err);
  ck_assert_msg (dir != NULL, "cannot make a temporary directory: %s", err ? err->message : "");
  return dir;
}

char *
nnic_test_write (const char *dir, const char *name, const void *data, size_t len)
{
  char *path = g_build_filename (dir, name, NULL);
  GError *err = NULL;
  ck_assert_msg (g_file_set_contents (path, data, (gssize) len, &err), "cannot write %s: %s", path,
                 err ? err->message : "");
  return path;
}

NnicConfigList *
nnic_test_config (const char *json)
{
  GError *err = NULL;
  NnicConfigList *cl = nnic_config_list_new_from_json (json, "test", &err);
  NNIC_ASSERT_NO_ERROR (err);
  return cl;
}

double
nnic_test_train_step (NnicModel *m, NnicOptimizer *opt, guint64 seed)
{
  GError *err = NULL;
  NnicRng r;
  nnic_rng_seed (&r, seed);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 8, (int64_t) 1, (int64_t) 28, (int64_t) 28);
  int64_t b = 8;
  g_autoptr (NnicTensor) y = nnic_tensor_new (NNIC_DTYPE_I64, 1, &b, &err);
  for (int64_t i = 0; i < x->numel; i++)
    x->f32[i] = (float) nnic_rng_uniform (&r);
  for (int64_t i = 0; i < 8; i++)
    y->i64[i] = (int64_t) nnic_rng_below (&r, 10);
  const NnicTensor *logits = nnic_model_forward (m, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicTensor) g = nnic_tensor_new_like (logits, &err);
  double loss = nnic_cross_entropy (logits, y, g, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_zero_grad (m);
  ck_assert (nnic_model_backward (m, g, &err));
  NNIC_ASSERT_NO_ERROR (err);
  nnic_optimizer_step (opt);
  return loss;
}
