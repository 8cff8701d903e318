/* The int8 GEMM (core/quant/qgemm.h): the C path against a naive triple
 * loop, every SIMD path this CPU has against the C path bit for bit (paths
 * it lacks are skipped with a message), extreme values, threads, strides,
 * the zero-point sums, requantize / dequantize against values worked out
 * by hand, and the path selection (NNIC_QGEMM). */
#include "testutil.h"

#include "core/quant/qgemm.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const int sizes[] = { 1, 3, 7, 16, 31, 64, 100, 257, 800 };

/* Filler written around C's rows, to catch stores past column n. */
#define GUARD ((int32_t) 0x7eadbeef)

static uint8_t *
random_a (GRand *r, int m, int lda)
{
  uint8_t *a = g_new (uint8_t, (size_t) m * lda);
  for (int64_t i = 0; i < (int64_t) m * lda; i++)
    a[i] = (uint8_t) g_rand_int_range (r, 0, 256);
  return a;
}

static int8_t *
random_w (GRand *r, int n, int k)
{
  int8_t *w = g_new (int8_t, (size_t) n * k);
  for (int64_t i = 0; i < (int64_t) n * k; i++)
    w[i] = (int8_t) g_rand_int_range (r, -128, 128);
  return w;
}

/* C = A · Wᵀ, the plainest way there is. */
static void
naive (int m, int n, int k, const uint8_t *a, int lda, const int8_t *w, int32_t *c, int ldc)
{
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      int64_t s = 0;
      for (int t = 0; t < k; t++)
        s += (int64_t) a[(int64_t) i * lda + t] * w[(int64_t) j * k + t];
      c[(int64_t) i * ldc + j] = (int32_t) s;
    }
}

static int32_t *
new_c (int m, int ldc)
{
  int32_t *c = g_new (int32_t, (size_t) m * ldc);
  for (int64_t i = 0; i < (int64_t) m * ldc; i++)
    c[i] = GUARD;
  return c;
}

/* Same values in the first n columns of every row, guards untouched. */
static void
assert_same (const char *what, int m, int n, int k, const int32_t *want, const int32_t *got,
             int ldc)
{
  for (int i = 0; i < m; i++)
    for (int j = 0; j < ldc; j++) {
      const int64_t at = (int64_t) i * ldc + j;
      if (want[at] != got[at])
        ck_abort_msg ("%s, M %d N %d K %d: C[%d][%d] = %d, want %d%s", what, m, n, k, i, j,
                      got[at], want[at], j >= n ? " (a store past column n)" : "");
    }
}

static gboolean
path_or_skip (NnicQgemmPath p)
{
  if (nnic_qgemm_path_supported (p))
    return TRUE;
  printf ("test_qgemm: skipping the %s path: this CPU (or this build) does not have it\n",
          nnic_qgemm_path_name (p));
  fflush (stdout);
  return FALSE;
}

/* One product on the C path against the naive loop, then every supported
 * SIMD path against the C path, on one thread and on three (odd, so the
 * splits are uneven; over rows or column blocks as the shape decides). */
static void
check_shape (GRand *r, int m, int n, int k, gboolean naive_too)
{
  GError *err = NULL;
  const int lda = k + (int) (g_rand_int (r) % 3), ldc = n + 1;
  g_autofree uint8_t *a = random_a (r, m, lda);
  g_autofree int8_t *w = random_w (r, n, k);
  g_autoptr (NnicQgemmPacked) p = nnic_qgemm_pack (w, n, k, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autofree int32_t *want = new_c (m, ldc);
  nnic_qgemm_with (NNIC_QGEMM_C, 1, m, a, lda, p, want, ldc);
  if (naive_too) {
    g_autofree int32_t *ref = new_c (m, ldc);
    naive (m, n, k, a, lda, w, ref, ldc);
    assert_same ("c against the naive loop", m, n, k, ref, want, ldc);
  }
  for (int path = NNIC_QGEMM_AVX2; path < NNIC_QGEMM_N_PATHS; path++) {
    if (!nnic_qgemm_path_supported ((NnicQgemmPath) path))
      continue;
    for (int threads = 1; threads <= 3; threads += 2) {
      g_autofree int32_t *got = new_c (m, ldc);
      nnic_qgemm_with ((NnicQgemmPath) path, threads, m, a, lda, p, got, ldc);
      g_autofree char *what = g_strdup_printf ("%s on %d thread(s) against c",
                                               nnic_qgemm_path_name ((NnicQgemmPath) path),
                                               threads);
      assert_same (what, m, n, k, want, got, ldc);
    }
  }
}

START_TEST (test_paths_skipped_are_named)
{
  int have = 0;
  for (int path = 0; path < NNIC_QGEMM_N_PATHS; path++)
    have += path_or_skip ((NnicQgemmPath) path);
  ck_assert_int_ge (have, 1);
  ck_assert (nnic_qgemm_path_supported (NNIC_QGEMM_C));
}
END_TEST

/* All of M, N, K in {1, 3, 7, 16, 31, 64, 100, 257, 800} up to 4M
 * multiply-adds (673 of the 729 shapes), each against the naive loop. */
START_TEST (test_awkward_sizes)
{
  g_autoptr (GRand) r = g_rand_new_with_seed (6);
  for (size_t x = 0; x < G_N_ELEMENTS (sizes); x++)
    for (size_t y = 0; y < G_N_ELEMENTS (sizes); y++)
      for (size_t z = 0; z < G_N_ELEMENTS (sizes); z++) {
        const int m = sizes[x], n = sizes[y], k = sizes[z];
        if ((int64_t) m * n * k <= 4000000)
          check_shape (r, m, n, k, TRUE);
      }
}
END_TEST

/* The largest shapes: the paths against C only (the naive loop on a few). */
START_TEST (test_large_shapes)
{
  g_autoptr (GRand) r = g_rand_new_with_seed (7);
  check_shape (r, 800, 800, 257, FALSE);
  check_shape (r, 800, 100, 800, FALSE);
  check_shape (r, 257, 800, 800, FALSE);
  check_shape (r, 800, 257, 100, TRUE);
  /* NNI's example CNN at batch 64: conv1, conv2 (im2col), fc1. */
  check_shape (r, 64 * 24 * 24, 20, 25, TRUE);
  check_shape (r, 64 * 8 * 8, 50, 500, FALSE);
  check_shape (r, 64, 500, 800, TRUE);
  check_shape (r, 1, 500, 800, TRUE);
}
END_TEST

/* Every K from 1 to 70 (all residues mod 4, 16 and 64) on a shape that
 * uses every tile height and a partial last column vector. */
START_TEST (test_every_small_k)
{
  g_autoptr (GRand) r = g_rand_new_with_seed (8);
  for (int k = 1; k <= 70; k++) {
    check_shape (r, 37, 57, k, TRUE);
    check_shape (r, 5, 9, k, TRUE);
  }
}
END_TEST

/* A all 255 and W all -128 or all 127: every pair of products overflows
 * int16 (what vpmaddubsw would saturate), and at NNIC_QGEMM_MAX_K the sums
 * come within 2³¹ − 2,147,483,520 = 128 of INT32_MIN. Also W alternating
 * -128 / 127 along K and 0 / 255 in A, which cancel in pairs. */
START_TEST (test_extremes)
{
  GError *err = NULL;
  const int ks[] = { 2, 3, 64, 257, 1027, 4099, NNIC_QGEMM_MAX_K };
  const int m = 19, n = 35;
  for (size_t z = 0; z < G_N_ELEMENTS (ks); z++) {
    const int k = ks[z];
    g_autofree uint8_t *a = g_new (uint8_t, (size_t) m * k);
    g_autofree int8_t *w = g_new (int8_t, (size_t) n * k);
    for (int fill = 0; fill < 3; fill++) {
      memset (a, 255, (size_t) m * k);
      for (int64_t i = 0; i < (int64_t) n * k; i++)
        w[i] = fill == 0 ? -128 : fill == 1 ? 127 : (i % k) % 2 ? 127 : -128;
      g_autoptr (NnicQgemmPacked) p = nnic_qgemm_pack (w, n, k, &err);
      NNIC_ASSERT_NO_ERROR (err);
      /* Row 0 of A alternates 255 / 0 instead. */
      for (int t = 0; t < k; t++)
        a[t] = t % 2 ? 0 : 255;
      for (int path = 0; path < NNIC_QGEMM_N_PATHS; path++) {
        if (!nnic_qgemm_path_supported ((NnicQgemmPath) path))
          continue;
        g_autofree int32_t *c = new_c (m, n);
        nnic_qgemm_with ((NnicQgemmPath) path, 0, m, a, k, p, c, n);
        const int64_t even = (k + 1) / 2; /* k's even indices */
        for (int j = 0; j < n; j++) {
          int64_t want_full, want_row0;
          if (fill == 0) {
            want_full = -32640LL * k;
            want_row0 = -32640LL * even;
          } else if (fill == 1) {
            want_full = 32385LL * k;
            want_row0 = 32385LL * even;
          } else {
            want_full = 255LL * (127 * (k / 2) - 128 * even);
            want_row0 = -32640LL * even;
          }
          ck_assert_msg (c[j] == want_row0 && c[(int64_t) (m - 1) * n + j] == want_full,
                         "%s, K %d, fill %d: got %d and %d, want %" G_GINT64_FORMAT
                         " and %" G_GINT64_FORMAT,
                         nnic_qgemm_path_name ((NnicQgemmPath) path), k, fill, c[j],
                         c[(int64_t) (m - 1) * n + j], want_row0, want_full);
        }
      }
    }
  }
}
END_TEST

/* Threads chosen by the call (0) and the active path's nnic_qgemm, on a
 * product above the parallel threshold, match the C path; m = 0 is a no-op. */
START_TEST (test_auto_threads_and_active_path)
{
  GError *err = NULL;
  g_autoptr (GRand) r = g_rand_new_with_seed (9);
  const int m = 300, n = 70, k = 333;
  ck_assert ((int64_t) m * n * k > NNIC_QGEMM_PARALLEL_MIN);
  g_autofree uint8_t *a = random_a (r, m, k);
  g_autofree int8_t *w = random_w (r, n, k);
  g_autoptr (NnicQgemmPacked) p = nnic_qgemm_pack (w, n, k, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autofree int32_t *want = new_c (m, n), *got = new_c (m, n), *got2 = new_c (m, n);
  naive (m, n, k, a, k, w, want, n);
  nnic_qgemm (m, a, k, p, got, n);
  assert_same (nnic_qgemm_active_name (), m, n, k, want, got, n);
  for (int path = 0; path < NNIC_QGEMM_N_PATHS; path++)
    if (nnic_qgemm_path_supported ((NnicQgemmPath) path)) {
      nnic_qgemm_with ((NnicQgemmPath) path, 0, m, a, k, p, got2, n);
      assert_same (nnic_qgemm_path_name ((NnicQgemmPath) path), m, n, k, want, got2, n);
    }
  nnic_qgemm (0, NULL, k, p, NULL, n);
}
END_TEST

START_TEST (test_pack)
{
  GError *err = NULL;
  int8_t w[3 * 5];
  for (int i = 0; i < 15; i++)
    w[i] = (int8_t) (i * 37 - 100);
  g_autoptr (NnicQgemmPacked) p = nnic_qgemm_pack (w, 3, 5, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (p->n, 3);
  ck_assert_int_eq (p->k, 5);
  ck_assert_int_eq (p->n_pad, 16);
  ck_assert_int_eq (p->k_pad, 8);
  ck_assert_int_eq ((uintptr_t) p->data % 64, 0);
  for (int row = 0; row < 16; row++)
    for (int col = 0; col < 8; col++) {
      const int8_t got = p->data[((col / 4) * 16 + row) * 4 + col % 4];
      ck_assert_int_eq (got, row < 3 && col < 5 ? w[row * 5 + col] : 0);
    }
  for (int row = 0; row < 3; row++) {
    int32_t s = 0;
    for (int col = 0; col < 5; col++)
      s += w[row * 5 + col];
    ck_assert_int_eq (p->col_sums[row], s);
  }

  ck_assert_ptr_null (nnic_qgemm_pack (w, 0, 5, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "0 × 5");
  g_clear_error (&err);
  ck_assert_ptr_null (nnic_qgemm_pack (w, 3, NNIC_QGEMM_MAX_K + 1, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "k ≤ 65793");
  g_clear_error (&err);
  nnic_qgemm_packed_free (NULL);
}
END_TEST

START_TEST (test_row_sums)
{
  const uint8_t a[2 * 6] = { 255, 255, 255, 1, 2, 99, 0, 0, 7, 0, 0, 42 };
  int32_t s[2];
  nnic_qgemm_row_sums (2, 5, a, 6, s);
  ck_assert_int_eq (s[0], 255 * 3 + 3);
  ck_assert_int_eq (s[1], 7);
}
END_TEST

/* A 2 × 3 product worked out by hand, through requantize and dequantize:
 *   A = [[10, 20, 30], [0, 255, 1]], za = 12
 *   W = [[1, -2, 3], [-128, 127, 0]], zw = -3
 *   (a − za)·(w − zw):
 *     row 0: [-2, 8, 18] · [4, 1, 6] = -8 + 8 + 108 = 108
 *            [-2, 8, 18] · [-125, 130, 3] = 250 + 1040 + 54 = 1344
 *     row 1: [-12, 243, -11] · [4, 1, 6] = -48 + 243 - 66 = 129
 *            [-12, 243, -11] · [-125, 130, 3] = 1500 + 31590 - 33 = 33057
 *   bias [−8, 100] → v = [[100, 1444], [121, 33157]] */
START_TEST (test_output_stage_by_hand)
{
  GError *err = NULL;
  const uint8_t a[6] = { 10, 20, 30, 0, 255, 1 };
  const int8_t w[6] = { 1, -2, 3, -128, 127, 0 };
  g_autoptr (NnicQgemmPacked) p = nnic_qgemm_pack (w, 2, 3, &err);
  NNIC_ASSERT_NO_ERROR (err);
  int32_t c[4], rs[2];
  nnic_qgemm (2, a, 3, p, c, 2);
  nnic_qgemm_row_sums (2, 3, a, 3, rs);
  const int32_t bias[2] = { -8, 100 };
  /* Per channel: 0.25 and 1/128 (exact in float). */
  const float scale[2] = { 0.25f, 0.0078125f };
  NnicQgemmOutput o = { .a_zero_point = 12, .w_zero_point = -3, .bias = bias, .scale = scale,
                        .n_scale = 2, .out_zero_point = 7, .out_min = 0, .out_max = 255 };
  float f[4];
  nnic_qgemm_dequantize (2, p, c, 2, rs, &o, f, 2);
  ck_assert_float_eq (f[0], 25.0f);        /* 100 / 4 */
  ck_assert_float_eq (f[1], 11.28125f);    /* 1444 / 128 */
  ck_assert_float_eq (f[2], 30.25f);       /* 121 / 4 */
  ck_assert_float_eq (f[3], 259.0390625f); /* 33157 / 128 */
  uint8_t q[4];
  nnic_qgemm_requantize (2, p, c, 2, rs, &o, q, 2);
  ck_assert_int_eq (q[0], 32);  /* 25 + 7 */
  ck_assert_int_eq (q[1], 18);  /* 18.28125 → 18 */
  ck_assert_int_eq (q[2], 37);  /* 37.25 → 37 */
  ck_assert_int_eq (q[3], 255); /* 266.04 clamped */
  /* A fused ReLU6-like range [zo, 20]. */
  o.out_min = 7;
  o.out_max = 20;
  nnic_qgemm_requantize (2, p, c, 2, rs, &o, q, 2);
  ck_assert_int_eq (q[0], 20);
  ck_assert_int_eq (q[1], 18);
  ck_assert_int_eq (q[3], 20);
  /* Per tensor, with symmetric weights and no bias: only za's term. */
  const int8_t w0[3] = { 1, -2, 3 };
  g_autoptr (NnicQgemmPacked) p0 = nnic_qgemm_pack (w0, 1, 3, &err);
  int32_t c0[2];
  nnic_qgemm (2, a, 3, p0, c0, 1);
  const float half = 0.5f;
  NnicQgemmOutput o0 = { .a_zero_point = 12, .scale = &half, .n_scale = 1, .out_max = 255 };
  /* row 0: [-2, 8, 18]·[1, -2, 3] = -2 - 16 + 54 = 36;
   * row 1: [-12, 243, -11]·[1, -2, 3] = -531 */
  nnic_qgemm_dequantize (2, p0, c0, 1, NULL, &o0, f, 1);
  ck_assert_float_eq (f[0], 18.0f);
  ck_assert_float_eq (f[1], -265.5f);
  nnic_qgemm_requantize (2, p0, c0, 1, NULL, &o0, q, 1);
  ck_assert_int_eq (q[0], 18);
  ck_assert_int_eq (q[1], 0);
}
END_TEST

/* Ties round half to even after adding the zero point, like NNI's QAT
 * fake quantization, torch.round (torch.clamp (zp + x / scale, ...)):
 *   v = 5, scale 0.5: 2.5 → 2 (half away from zero would give 3)
 *   v = 7, scale 0.5: 3.5 → 4
 *   v = 5, scale 0.5, zp 1: 3.5 → 4 (round first, then add the zero
 *     point, as torch.fake_quantize_per_tensor_affine does: 2 + 1 = 3)
 *   v = 7, scale 0.5, zp 1: 4.5 → 4 (there: 4 + 1 = 5)
 *   v = -5, scale 0.5, zp 10: 7.5 → 8; v = -7, zp 10: 6.5 → 6 */
START_TEST (test_rounding_ties)
{
  GError *err = NULL;
  /* A row [v] times W = [1]: C = v exactly (through A's zero point). */
  const int8_t one = 1;
  g_autoptr (NnicQgemmPacked) p = nnic_qgemm_pack (&one, 1, 1, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const struct {
    int v, zo, want;
  } cases[] = {
    { 5, 0, 2 }, { 7, 0, 4 }, { 1, 0, 0 }, { 3, 0, 2 }, { 5, 1, 4 }, { 7, 1, 4 },
    { -5, 10, 8 }, { -7, 10, 6 }, { -1, 10, 10 }, { 9, 2, 6 },
  };
  const float half = 0.5f;
  for (size_t i = 0; i < G_N_ELEMENTS (cases); i++) {
    /* a − za = v with a = 100, za = 100 − v. */
    const uint8_t a = 100;
    int32_t c;
    nnic_qgemm (1, &a, 1, p, &c, 1);
    NnicQgemmOutput o = { .a_zero_point = 100 - cases[i].v, .scale = &half, .n_scale = 1,
                          .out_zero_point = cases[i].zo, .out_min = 0, .out_max = 255 };
    uint8_t q;
    nnic_qgemm_requantize (1, p, &c, 1, NULL, &o, &q, 1);
    ck_assert_msg (q == cases[i].want, "v %d, zero point %d: got %d, want %d", cases[i].v,
                   cases[i].zo, q, cases[i].want);
  }
}
END_TEST

/* Exactness of the correction terms where int32 would overflow:
 * K = NNIC_QGEMM_MAX_K, za = 255, zw = -128, all of A 0 and W 127:
 *   v = 0 − zw·0 − 255·(127·K) + K·255·(−128) = −255·255·K ≈ −4.3e9,
 * times 2⁻²⁴ as float. */
START_TEST (test_output_stage_large)
{
  GError *err = NULL;
  const int k = NNIC_QGEMM_MAX_K;
  g_autofree int8_t *w = g_new (int8_t, k);
  g_autofree uint8_t *a = g_new0 (uint8_t, k);
  memset (w, 127, k);
  g_autoptr (NnicQgemmPacked) p = nnic_qgemm_pack (w, 1, k, &err);
  NNIC_ASSERT_NO_ERROR (err);
  int32_t c, rs;
  nnic_qgemm (1, a, k, p, &c, 1);
  nnic_qgemm_row_sums (1, k, a, k, &rs);
  const float s = 1.0f / 16777216.0f;
  NnicQgemmOutput o = { .a_zero_point = 255, .w_zero_point = -128, .scale = &s, .n_scale = 1,
                        .out_zero_point = 255, .out_max = 255 };
  float f;
  nnic_qgemm_dequantize (1, p, &c, 1, &rs, &o, &f, 1);
  ck_assert_float_eq (f, (float) (-255.0 * 255.0 * k) * s);
  uint8_t q;
  nnic_qgemm_requantize (1, p, &c, 1, &rs, &o, &q, 1);
  /* -255·255·65793 / 2²⁴ ≈ -254.99998 (as float: -255) → + 255 → 0 */
  ck_assert_int_eq (q, 0);
}
END_TEST

/* The output stage on random products against its definition, written
 * out here independently (the exact v in int64, nearbyintf for the
 * rounding): with and without a weight zero point; short rows stored
 * contiguously (done several rows at a time) and with a stride; and a
 * bias near INT32_MAX in one chunk of 256 columns, where v leaves int32
 * and the stage switches to doubles for that chunk only. */
static void
check_output_stage (GRand *r, int m, int n, int ldc, gboolean huge_bias)
{
  GError *err = NULL;
  const int k = 1 + (int) (g_rand_int (r) % 300);
  g_autofree uint8_t *a = random_a (r, m, k);
  g_autofree int8_t *w = random_w (r, n, k);
  g_autoptr (NnicQgemmPacked) p = nnic_qgemm_pack (w, n, k, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autofree int32_t *c = new_c (m, ldc), *rs = g_new (int32_t, m), *bias = g_new (int32_t, n);
  g_autofree float *scale = g_new (float, n), *f = g_new (float, (size_t) m * ldc);
  g_autofree uint8_t *q = g_new (uint8_t, (size_t) m * ldc);
  nnic_qgemm (m, a, k, p, c, ldc);
  nnic_qgemm_row_sums (m, k, a, k, rs);
  for (int j = 0; j < n; j++) {
    bias[j] = g_rand_int_range (r, -100000, 100000);
    scale[j] = (float) g_rand_double_range (r, 1e-5, 1e-2);
  }
  if (huge_bias)
    bias[n - 1] = INT32_MAX - 5;
  for (int zw = -3; zw <= 0; zw += 3) {
    NnicQgemmOutput o = { .a_zero_point = g_rand_int_range (r, 0, 256), .w_zero_point = zw,
                          .bias = bias, .scale = scale, .n_scale = n,
                          .out_zero_point = g_rand_int_range (r, 0, 256), .out_min = 3,
                          .out_max = 250 };
    nnic_qgemm_requantize (m, p, c, ldc, rs, &o, q, ldc);
    nnic_qgemm_dequantize (m, p, c, ldc, rs, &o, f, ldc);
    for (int i = 0; i < m; i++)
      for (int j = 0; j < n; j++) {
        const int64_t v = (int64_t) c[(int64_t) i * ldc + j] + bias[j] - (int64_t) zw * rs[i] -
                          (int64_t) o.a_zero_point * p->col_sums[j] +
                          (int64_t) k * o.a_zero_point * zw;
        const float fv = (float) v * scale[j];
        float y = fv + (float) o.out_zero_point;
        y = nearbyintf (y);
        y = y < o.out_min ? o.out_min : y > o.out_max ? o.out_max : y;
        const int64_t at = (int64_t) i * ldc + j;
        ck_assert_msg (f[at] == fv, "dequantize [%d][%d] of %d × %d: %.9g, want %.9g", i, j, m, n,
                       f[at], fv);
        ck_assert_msg (q[at] == (uint8_t) y, "requantize [%d][%d] of %d × %d: %d, want %d", i,
                       j, m, n, q[at], (int) y);
      }
  }
}

START_TEST (test_output_stage_random)
{
  g_autoptr (GRand) r = g_rand_new_with_seed (10);
  check_output_stage (r, 37, 20, 20, FALSE);
  check_output_stage (r, 37, 20, 23, FALSE);
  check_output_stage (r, 64, 50, 50, FALSE);
  check_output_stage (r, 3, 63, 63, TRUE);
  check_output_stage (r, 1, 500, 500, FALSE);
  check_output_stage (r, 5, 300, 300, TRUE);
  check_output_stage (r, 9, 700, 701, TRUE);
}
END_TEST

START_TEST (test_path_names_and_env)
{
  GError *err = NULL;
  for (int path = 0; path < NNIC_QGEMM_N_PATHS; path++) {
    NnicQgemmPath back;
    ck_assert (nnic_qgemm_path_from_name (nnic_qgemm_path_name ((NnicQgemmPath) path), &back,
                                          &err));
    ck_assert_int_eq (back, path);
  }
  ck_assert_ptr_null (nnic_qgemm_path_name (NNIC_QGEMM_N_PATHS));
  NnicQgemmPath p;
  ck_assert (!nnic_qgemm_path_from_name ("sse9", &p, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "'sse9'");
  g_clear_error (&err);

  const NnicQgemmPath best = nnic_qgemm_best_path ();
  ck_assert (nnic_qgemm_path_supported (best));

  g_setenv ("NNIC_QGEMM", "c", TRUE);
  ck_assert (nnic_qgemm_init (&err));
  ck_assert_str_eq (nnic_qgemm_active_name (), "c");

  g_setenv ("NNIC_QGEMM", "bogus", TRUE);
  ck_assert (!nnic_qgemm_init (&err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "NNIC_QGEMM=bogus");
  ck_assert_msg (strstr (err->message, nnic_qgemm_path_name (best)) != NULL, "%s", err->message);
  g_clear_error (&err);
  ck_assert_int_eq (nnic_qgemm_active_path (), best);

  for (int path = 0; path < NNIC_QGEMM_N_PATHS; path++) {
    const char *name = nnic_qgemm_path_name ((NnicQgemmPath) path);
    g_setenv ("NNIC_QGEMM", name, TRUE);
    if (nnic_qgemm_path_supported ((NnicQgemmPath) path)) {
      ck_assert (nnic_qgemm_init (&err));
      ck_assert_str_eq (nnic_qgemm_active_name (), name);
      ck_assert (nnic_qgemm_set_path ((NnicQgemmPath) path, &err));
    } else {
      ck_assert (!nnic_qgemm_init (&err));
      NNIC_ASSERT_ERROR (err, NNIC_ERROR_UNSUPPORTED, "lacks");
      g_clear_error (&err);
      ck_assert_int_eq (nnic_qgemm_active_path (), best);
      ck_assert (!nnic_qgemm_set_path ((NnicQgemmPath) path, &err));
      NNIC_ASSERT_ERROR (err, NNIC_ERROR_UNSUPPORTED, name);
      g_clear_error (&err);
      printf ("test_qgemm: NNIC_QGEMM=%s refused as expected on this CPU\n", name);
    }
  }
  g_unsetenv ("NNIC_QGEMM");
  ck_assert (nnic_qgemm_init (&err));
  ck_assert_int_eq (nnic_qgemm_active_path (), best);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("qgemm");
  TCase *tc = tcase_create ("qgemm");
  tcase_add_test (tc, test_paths_skipped_are_named);
  tcase_add_test (tc, test_pack);
  tcase_add_test (tc, test_awkward_sizes);
  tcase_add_test (tc, test_large_shapes);
  tcase_add_test (tc, test_every_small_k);
  tcase_add_test (tc, test_extremes);
  tcase_add_test (tc, test_auto_threads_and_active_path);
  tcase_add_test (tc, test_row_sums);
  tcase_add_test (tc, test_output_stage_by_hand);
  tcase_add_test (tc, test_rounding_ties);
  tcase_add_test (tc, test_output_stage_large);
  tcase_add_test (tc, test_output_stage_random);
  tcase_add_test (tc, test_path_names_and_env);
  suite_add_tcase (s, tc);
  return nnic_test_run (s);
}
