/* Tensors: allocation limits, views, copies, shape strings. */
#include "testutil.h"

#include <string.h>

START_TEST (test_new_zeroed_and_aligned)
{
  GError *err = NULL;
  g_autoptr (NnicTensor) t = nnic_tensor_new_f32 (&err, 3, (int64_t) 2, (int64_t) 3, (int64_t) 5);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (t->numel, 30);
  ck_assert_int_eq (t->ndim, 3);
  ck_assert_int_eq ((uintptr_t) t->data % 64, 0);
  for (int i = 0; i < 30; i++)
    ck_assert_float_eq (t->f32[i], 0.0f);
  ck_assert_uint_eq (nnic_tensor_nbytes (t), 120);
}
END_TEST

START_TEST (test_absurd_shapes_fail)
{
  GError *err = NULL;
  int64_t huge[2] = { (int64_t) 1 << 40, (int64_t) 1 << 40 };
  ck_assert_ptr_null (nnic_tensor_new (NNIC_DTYPE_F32, 2, huge, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "too large");
  g_clear_error (&err);

  int64_t neg[2] = { 3, -1 };
  ck_assert_ptr_null (nnic_tensor_new (NNIC_DTYPE_F32, 2, neg, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "[3, -1]");
  g_clear_error (&err);

  int64_t nine[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
  ck_assert_ptr_null (nnic_tensor_new (NNIC_DTYPE_F32, 9, nine, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "dimensions");
  g_clear_error (&err);

  int64_t overflow[3] = { INT64_MAX / 2, 4, 1 };
  ck_assert_ptr_null (nnic_tensor_new (NNIC_DTYPE_I64, 3, overflow, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "too large");
  g_clear_error (&err);
}
END_TEST

START_TEST (test_zero_dim_and_empty)
{
  GError *err = NULL;
  g_autoptr (NnicTensor) s = nnic_tensor_new (NNIC_DTYPE_I64, 0, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (s->numel, 1);
  int64_t zero[2] = { 0, 7 };
  g_autoptr (NnicTensor) e = nnic_tensor_new (NNIC_DTYPE_F32, 2, zero, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (e->numel, 0);
}
END_TEST

START_TEST (test_view_copy)
{
  GError *err = NULL;
  g_autoptr (NnicTensor) t = nnic_tensor_new_f32 (&err, 2, (int64_t) 2, (int64_t) 6);
  for (int i = 0; i < 12; i++)
    t->f32[i] = (float) i;
  int64_t s[3] = { 3, 2, 2 };
  g_autoptr (NnicTensor) v = nnic_tensor_view (t, 3, s, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_ptr_eq (v->data, t->data);
  ck_assert (!v->owns_data);
  int64_t bad[2] = { 5, 2 };
  ck_assert_ptr_null (nnic_tensor_view (t, 2, bad, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "[5, 2]");
  g_clear_error (&err);

  g_autoptr (NnicTensor) c = nnic_tensor_copy (t, &err);
  ck_assert_ptr_ne (c->data, t->data);
  ck_assert_mem_eq (c->data, t->data, 48);
  ck_assert (!nnic_tensor_copy_into (c, v, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "cannot copy");
  g_clear_error (&err);
  nnic_tensor_fill (c, 2.5f);
  ck_assert (nnic_tensor_copy_into (t, c, &err));
  ck_assert_float_eq (t->f32[11], 2.5f);
  g_autofree char *str = nnic_shape_to_string (v->ndim, v->shape);
  ck_assert_str_eq (str, "[3, 2, 2]");
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("tensor");
  TCase *tc = tcase_create ("tensor");
  tcase_add_test (tc, test_new_zeroed_and_aligned);
  tcase_add_test (tc, test_absurd_shapes_fail);
  tcase_add_test (tc, test_zero_dim_and_empty);
  tcase_add_test (tc, test_view_copy);
  suite_add_tcase (s, tc);
  return nnic_test_run (s);
}
