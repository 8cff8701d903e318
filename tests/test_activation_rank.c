/* apoz and mean_activation (plugins/activation_rank.c) on a model small
 * enough to work out by hand: two 1x1 convolutions "a" (1 -> 6) and "b"
 * (1 -> 3) reading the same 1x2x2 input, concatenated. A 1x1 conv's output
 * channel f is w_f * x + b_f for every input pixel x; the values below are
 * binary fractions, so every output, zero count and sum is exact.
 *
 * Batches A and B (2 images of 2x2 each, in memory order):
 *   A = -3 -2 -1 .5  1 2 3 4        B = -4 -.5 .25 1.5  2.5 5 -1.5 6
 * Layer a, w = .5 2 1 -4 -2 4, b = 1.5 -6 5 5 5 -2.5; per channel over A+B
 * (16 outputs), zeros of relu / sum of relu / sum of relu6:
 *   ch0  .5x+1.5   2 zeros  sum 31.375  relu6 31.375  (max 4.5)
 *   ch1  2x-6     13        12          12
 *   ch2  x+5       0        93.75       76.75
 *   ch3  -4x+5     7        86          44
 *   ch4  -2x+5     5 (one exact 0)  68.5  50.5
 *   ch5  4x-2.5    8        80          40.5
 * APoZ score 1 - zeros/16: .875 .1875 1 .5625 .6875 .5 → the 3 smallest: 1, 5, 3.
 * Mean (relu): 1.96 .75 5.86 5.375 4.28 5 → 1, 0, 4.
 * Mean (relu6): 1.96 .75 4.80 2.75 3.16 2.53 → 1, 0, 5.
 * Mean over A alone (8 outputs): 14.25 2 44.5 43 35 30 → 1, 0, 5.
 * Layer b, w = 1 -1 2, b = 0 0 -1, over A: zeros 3 5 4, sums 10.5 6 16:
 * both rankings prune channel 1 at sparsity .34 (int (3 * .34) = 1).
 * A direct loop over the same numbers (reference_pruned) checks the table. */
#include "testutil.h"

#include <glib/gstdio.h>
#include <string.h>

static const float batch_a[8] = { -3, -2, -1, .5f, 1, 2, 3, 4 };
static const float batch_b[8] = { -4, -.5f, .25f, 1.5f, 2.5f, 5, -1.5f, 6 };
static const float a_w[6] = { .5f, 2, 1, -4, -2, 4 }, a_b[6] = { 1.5f, -6, 5, 5, 5, -2.5f };
static const float b_w[3] = { 1, -1, 2 }, b_b[3] = { 0, 0, -1 };

static NnicModel *
two_convs (void)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new (1, 2, 2);
  nnic_model_add_conv2d (m, "a", "input", &(NnicConv2dSpec) { .in_channels = 1, .out_channels = 6, .kernel_size = 1 }, &err);
  nnic_model_add_conv2d (m, "b", "input", &(NnicConv2dSpec) { .in_channels = 1, .out_channels = 3, .kernel_size = 1 }, &err);
  nnic_model_add_concat (m, "ab", (const char *const[]) { "a", "b" }, 2, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const struct { const char *name; const float *v; int n; } params[] = {
    { "a.weight", a_w, 6 }, { "a.bias", a_b, 6 }, { "b.weight", b_w, 3 }, { "b.bias", b_b, 3 },
  };
  for (guint i = 0; i < G_N_ELEMENTS (params); i++) {
    NnicParam *p = nnic_model_find_param (m, params[i].name, &err);
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert_int_eq (p->value->numel, params[i].n);
    memcpy (p->value->f32, params[i].v, sizeof (float) * (size_t) params[i].n);
  }
  return m;
}

static void
forward (NnicModel *m, const float *xs)
{
  GError *err = NULL;
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, (int64_t) 2, (int64_t) 1, (int64_t) 2, (int64_t) 2);
  memcpy (x->f32, xs, sizeof (float) * 8);
  ck_assert_ptr_nonnull (nnic_model_forward (m, x, &err));
  NNIC_ASSERT_NO_ERROR (err);
}

/* SGD whose steps leave the weights alone (lr 0; no backward runs, so the
 * grads are zero anyway): the steps only drive the masks. */
static NnicOptimizer *
still_sgd (NnicModel *m)
{
  GError *err = NULL;
  NnicOptimizer *opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 1.0 }, &err);
  NNIC_ASSERT_NO_ERROR (err);
  nnic_optimizer_set_lr (opt, 0.0);
  return opt;
}

/* The pruned filters of a wrapper as a bit set (filter f → bit f), checking
 * that weight and bias masks agree, that each filter is all in or all out,
 * and that the weights hold the zeros. */
static guint
pruned_set (NnicWrapper *w)
{
  const NnicTensor *wm = nnic_wrapper_get_mask (w, "weight"), *bm = nnic_wrapper_get_mask (w, "bias");
  const NnicTensor *weight = nnic_wrapper_weight (w), *bias = nnic_wrapper_bias (w);
  guint set = 0;
  for (int64_t f = 0; f < bm->numel; f++) {
    ck_assert_int_eq (wm->u8[f], bm->u8[f]); /* 1x1 kernels: one weight per filter */
    if (!bm->u8[f]) {
      set |= 1u << f;
      ck_assert_float_eq (weight->f32[f], 0.0f);
      ck_assert_float_eq (bias->f32[f], 0.0f);
    }
  }
  return set;
}

#define BITS3(i, j, k) ((1u << (i)) | (1u << (j)) | (1u << (k)))

/* The same ranking by a direct loop: relu (or relu6) of w*x+b over the
 * given batches, APoZ or mean score per channel, the k smallest. */
static guint
reference_pruned (const float *w, const float *b, int channels, const float *const *batches,
                  int n_batches, gboolean apoz, gboolean relu6, int k)
{
  double score[8];
  for (int f = 0; f < channels; f++) {
    double zeros = 0, sum = 0, n = 0;
    for (int i = 0; i < n_batches; i++)
      for (int j = 0; j < 8; j++, n++) {
        double y = MAX (0.0, (double) w[f] * batches[i][j] + b[f]);
        zeros += y == 0.0;
        sum += relu6 ? MIN (y, 6.0) : y;
      }
    score[f] = apoz ? 1.0 - zeros / n : sum / n;
  }
  guint set = 0;
  for (int p = 0; p < k; p++) {
    int best = -1;
    for (int f = 0; f < channels; f++)
      if (!(set & (1u << f)) && (best < 0 || score[f] < score[best]))
        best = f;
    set |= 1u << best;
  }
  return set;
}

START_TEST (test_reference_table)
{
  const float *ab[2] = { batch_a, batch_b }, *a_only[1] = { batch_a };
  ck_assert_uint_eq (reference_pruned (a_w, a_b, 6, ab, 2, TRUE, FALSE, 3), BITS3 (1, 3, 5));
  ck_assert_uint_eq (reference_pruned (a_w, a_b, 6, ab, 2, TRUE, TRUE, 3), BITS3 (1, 3, 5));
  ck_assert_uint_eq (reference_pruned (a_w, a_b, 6, ab, 2, FALSE, FALSE, 3), BITS3 (0, 1, 4));
  ck_assert_uint_eq (reference_pruned (a_w, a_b, 6, ab, 2, FALSE, TRUE, 3), BITS3 (0, 1, 5));
  ck_assert_uint_eq (reference_pruned (a_w, a_b, 6, a_only, 1, FALSE, FALSE, 3), BITS3 (0, 1, 5));
  ck_assert_uint_eq (reference_pruned (b_w, b_b, 3, a_only, 1, TRUE, FALSE, 1), 1u << 1);
  ck_assert_uint_eq (reference_pruned (b_w, b_b, 3, a_only, 1, FALSE, FALSE, 1), 1u << 1);
}
END_TEST

typedef struct {
  int calls;
} Count;

static void
count_calls (NnicCompressor *c, NnicWrapper *w, const NnicTensor *out, gpointer user_data)
{
  (void) c;
  (void) w;
  (void) out;
  ((Count *) user_data)->calls++;
}

static double
batches_seen (NnicWrapper *w)
{
  double v = -1;
  ck_assert (nnic_wrapper_get_attribute_double (w, "activation_batches", &v));
  return v;
}

/* Layer a waits for 2 batches, b for 1: each gets its mask at the first
 * optimizer step after its statistics are complete, never at a forward;
 * exactly num_prune filters go; the masker's collector is removed once
 * every layer has its statistics, and another collector stays. */
static void
timing_and_removal (const char *algorithm, guint want_a, guint want_b)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = two_convs ();
  g_autoptr (NnicOptimizer) opt = still_sgd (m);
  g_autoptr (NnicConfigList) cl = nnic_test_config (
      "[{\"sparsity\": 0.5, \"op_names\": [\"a\"], \"statistics_batch_num\": 2},"
      " {\"sparsity\": 0.34, \"op_names\": [\"b\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, algorithm, cl, opt, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicWrapper *a = nnic_compressor_find_wrapper (c, "a"), *b = nnic_compressor_find_wrapper (c, "b");
  ck_assert (nnic_compressor_compress (c, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (pruned_set (a) | pruned_set (b), 0);
  /* The masker added its collector in create: it has id 1, this one 2. */
  Count mine = { 0 };
  ck_assert_uint_eq (nnic_compressor_add_activation_collector (c, count_calls, &mine, NULL, &err), 2);

  forward (m, batch_a);
  ck_assert_double_eq (batches_seen (a), 1);
  ck_assert_double_eq (batches_seen (b), 1);
  ck_assert_uint_eq (pruned_set (a) | pruned_set (b), 0); /* a forward computes no mask */
  nnic_optimizer_step (opt);
  ck_assert_uint_eq (pruned_set (b), want_b);             /* b: 1 batch seen, step */
  ck_assert_uint_eq (pruned_set (a), 0);                  /* a: 1 of 2 batches */

  forward (m, batch_b);
  ck_assert_double_eq (batches_seen (a), 2);
  ck_assert_uint_eq (pruned_set (a), 0);                  /* 2 batches, but no step yet */
  nnic_optimizer_step (opt);
  ck_assert_uint_eq (pruned_set (a), want_a);
  ck_assert_uint_eq (pruned_set (b), want_b);             /* one-shot: b's mask stays */
  ck_assert_int_eq (mine.calls, 4);

  /* The collector is gone: more forwards leave the statistics alone, and
   * its id is unknown; the other collector still runs. */
  forward (m, batch_b);
  forward (m, batch_a);
  ck_assert_double_eq (batches_seen (a), 2);
  ck_assert_double_eq (batches_seen (b), 2);
  ck_assert_int_eq (mine.calls, 8);
  ck_assert (!nnic_compressor_remove_activation_collector (c, 1, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "no activation collector with id 1");
  g_clear_error (&err);
  nnic_optimizer_step (opt);
  ck_assert_uint_eq (pruned_set (a), want_a);

  /* The statistics are kept with a checkpoint. */
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "ck.safetensors", NULL);
  ck_assert (nnic_compressor_save_checkpoint (c, path, &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_unlink (path);
  g_rmdir (dir);
}

START_TEST (test_apoz_timing_and_removal)
{
  timing_and_removal ("apoz", BITS3 (1, 3, 5), 1u << 1);
}
END_TEST

START_TEST (test_mean_timing_and_removal)
{
  timing_and_removal ("mean_activation", BITS3 (0, 1, 4), 1u << 1);
}
END_TEST

/* One masker, one config: the pruned set after `n` forwards of A/B and a
 * step. */
static guint
prune_a (const char *algorithm, const char *config_json, const float *const *batches, int n)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = two_convs ();
  g_autoptr (NnicOptimizer) opt = still_sgd (m);
  g_autoptr (NnicConfigList) cl = nnic_test_config (config_json);
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, algorithm, cl, opt, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  for (int i = 0; i < n; i++)
    forward (m, batches[i]);
  NnicWrapper *a = nnic_compressor_find_wrapper (c, "a");
  ck_assert_uint_eq (pruned_set (a), 0);
  nnic_optimizer_step (opt);
  return pruned_set (a);
}

/* As NNI: every batch until the step counts, not just the first
 * statistics_batch_num. */
START_TEST (test_batches_until_the_step_count)
{
  const float *a_only[1] = { batch_a }, *ab[2] = { batch_a, batch_b };
  const char *one = "[{\"sparsity\": 0.5, \"op_names\": [\"a\"]}]";
  ck_assert_uint_eq (prune_a ("mean_activation", one, a_only, 1), BITS3 (0, 1, 5));
  ck_assert_uint_eq (prune_a ("mean_activation", one, ab, 2), BITS3 (0, 1, 4));
}
END_TEST

START_TEST (test_relu6)
{
  const float *ab[2] = { batch_a, batch_b };
  const char *relu6 = "[{\"sparsity\": 0.5, \"op_names\": [\"a\"], \"statistics_batch_num\": 2, \"activation\": \"relu6\"}]";
  const char *relu = "[{\"sparsity\": 0.5, \"op_names\": [\"a\"], \"statistics_batch_num\": 2, \"activation\": \"relu\"}]";
  ck_assert_uint_eq (prune_a ("mean_activation", relu6, ab, 2), BITS3 (0, 1, 5));
  ck_assert_uint_eq (prune_a ("mean_activation", relu, ab, 2), BITS3 (0, 1, 4));
  /* relu6 has relu's zeros: APoZ is the same. */
  ck_assert_uint_eq (prune_a ("apoz", relu6, ab, 2), BITS3 (1, 3, 5));
}
END_TEST

/* num_prune < 1 (int (6 * .1) = 0) leaves the masks alone. */
START_TEST (test_nothing_to_prune)
{
  const float *ab[2] = { batch_a, batch_b };
  ck_assert_uint_eq (prune_a ("apoz", "[{\"sparsity\": 0.1, \"op_names\": [\"a\"]}]", ab, 2), 0);
}
END_TEST

/* Without an optimizer the masks come at the next compress(). */
START_TEST (test_without_optimizer)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = two_convs ();
  g_autoptr (NnicConfigList) cl = nnic_test_config ("[{\"sparsity\": 0.5, \"op_names\": [\"a\"], \"statistics_batch_num\": 2}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "apoz", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicWrapper *a = nnic_compressor_find_wrapper (c, "a");
  ck_assert (nnic_compressor_compress (c, &err));
  forward (m, batch_a);
  ck_assert (nnic_compressor_compress (c, &err));
  ck_assert_uint_eq (pruned_set (a), 0);
  forward (m, batch_b);
  ck_assert_uint_eq (pruned_set (a), 0);
  ck_assert (nnic_compressor_compress (c, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (pruned_set (a), BITS3 (1, 3, 5));
}
END_TEST

static void
assert_refused (NnicModel *m, const char *algorithm, const char *json, int code, const char *needle)
{
  GError *err = NULL;
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (json, "test", &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicCompressor *c = nnic_compressor_new (m, algorithm, cl, NULL, NULL, &err);
  ck_assert_msg (c == NULL, "%s accepted %s", algorithm, json);
  NNIC_ASSERT_ERROR (err, code, needle);
  g_clear_error (&err);
}

START_TEST (test_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = two_convs ();
  const char *algorithms[2] = { "apoz", "mean_activation" };
  for (int i = 0; i < 2; i++) {
    const char *alg = algorithms[i];
    assert_refused (m, alg,
                    "[{\"sparsity\": 0.5, \"op_names\": [\"a\"]},"
                    " {\"sparsity\": 0.5, \"op_names\": [\"b\"], \"activation\": \"tanh\"}]",
                    NNIC_ERROR_CONFIG, "config_list[1].activation: must be \"relu\" or \"relu6\", got \"tanh\"");
    assert_refused (m, alg, "[{\"sparsity\": 0.5, \"op_names\": [\"a\"], \"activation\": 6}]",
                    NNIC_ERROR_CONFIG, "config_list[0].activation: must be a string");
    assert_refused (m, alg, "[{\"sparsity\": 0.5, \"op_names\": [\"a\"], \"statistics_batch_num\": 0}]",
                    NNIC_ERROR_CONFIG, "config_list[0].statistics_batch_num: must be >= 1");
    assert_refused (m, alg, "[{\"sparsity\": 0.5, \"op_names\": [\"a\"], \"statistics_batch_num\": 1.5}]",
                    NNIC_ERROR_CONFIG, "config_list[0].statistics_batch_num: must be an integer");
    assert_refused (m, alg, "[{\"sparsity\": 0.5, \"op_names\": [\"a\"], \"activations\": \"relu\"}]",
                    NNIC_ERROR_CONFIG, "activations");
  }
  /* Filters of Conv2d only: a Linear layer is named, with its type. */
  g_autoptr (NnicModel) cnn = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  assert_refused (cnn, "apoz", "[{\"sparsity\": 0.5, \"op_types\": [\"default\"]}]", NNIC_ERROR_CONFIG,
                  "apoz prunes the filters of Conv2d layers only, but layer 'fc1' is Linear");
  assert_refused (cnn, "mean_activation", "[{\"sparsity\": 0.5, \"op_names\": [\"fc2\"]}]", NNIC_ERROR_CONFIG,
                  "layer 'fc2' is Linear");
  /* A valid entry is accepted, with the defaults. */
  g_autoptr (NnicConfigList) ok = nnic_test_config ("[{\"sparsity\": 0.5, \"op_types\": [\"Conv2d\"], \"activation\": \"relu6\"}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (cnn, "apoz", ok, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("activation_rank");
  TCase *tc = tcase_create ("activation_rank");
  tcase_add_test (tc, test_reference_table);
  tcase_add_test (tc, test_apoz_timing_and_removal);
  tcase_add_test (tc, test_mean_timing_and_removal);
  tcase_add_test (tc, test_batches_until_the_step_count);
  tcase_add_test (tc, test_relu6);
  tcase_add_test (tc, test_nothing_to_prune);
  tcase_add_test (tc, test_without_optimizer);
  tcase_add_test (tc, test_errors);
  suite_add_tcase (s, tc);
  return nnic_test_run (s);
}
