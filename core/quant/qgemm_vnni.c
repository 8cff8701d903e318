/* The VNNI kernels: vpdpbusd multiplies 4 unsigned bytes of A by 4 signed
 * bytes of W per 32-bit lane and adds the 4 products to the lane, exactly
 * (the non-saturating form; vpdpbusds is the saturating one).
 *
 * A register tile is mr rows × nb vectors of columns: each K group of 4
 * loads nb vectors of packed weights (16 columns per zmm, 8 per ymm),
 * broadcasts 4 bytes of each row of A, and does mr·nb vpdpbusd into mr·nb
 * accumulators. The tile functions take mr and nb as parameters and are
 * inlined with constants (one copy per tile shape), so that the rows past
 * mr and vectors past nb are dead code.
 *
 * Loop order: column panels outside, rows inside, so a panel of weights
 * (nb vectors · K bytes) stays in cache while the rows of A stream past it.
 *
 * Three things keep GCC 12 from spilling accumulators inside the K loop
 * (checked in the disassembly): they are named variables, not an array;
 * the partial K group (k % 4 ≠ 0) is the first one done, not the last;
 * and the masked stores of a partial last vector of columns are inline
 * assembly (qgemm_kernels.h). */
#include "core/quant/qgemm_kernels.h"

#if NNIC_QGEMM_X86

#define ALWAYS_INLINE inline __attribute__ ((always_inline))

/* A's 4 bytes of row `row` for the first group of the tile: the partial
 * group if there is one, else group 0. */
#define FIRST_WORD(row) (r ? qgemm_tail_word ((row), k) : qgemm_load_u32 (row))
/* ... and for group g of the main loop. */
#define LOOP_WORD(row) qgemm_load_u32 ((row) + 4 * g)

/* ---- AVX-512 VNNI: zmm, 16 columns per vector ---- */

#define T512 __attribute__ ((target ("avx2,avx512f,avx512bw,avx512vnni")))

/* Rows per tile for a panel of nb vectors: up to 24 accumulators of the 32
 * registers (other heights measured the same, within the noise). */
#define MR512_1 16
#define MR512_2 10
#define MR512_3 8
#define MR512_4 6

/* Stores a vector; the `cols` < 16 valid columns of a partial one. */
static ALWAYS_INLINE T512 void
store512 (int32_t *dst, __m512i v, int cols)
{
  if (cols == 16)
    _mm512_storeu_si512 ((void *) dst, v);
  else
    qgemm_store_first_512 (dst, v, cols);
}

static ALWAYS_INLINE T512 void
tile512 (const int mr, const int nb, const uint8_t *a, int64_t lda, const int8_t *wp,
         int64_t wstride, int k, int32_t *c, int64_t ldc, int last_cols)
{
  const __m512i zero = _mm512_setzero_si512 ();
  const int groups = k / 4, r = k & 3;
#define DECL512(i) __m512i c##i##_0 = zero, c##i##_1 = zero, c##i##_2 = zero, c##i##_3 = zero;
  QGEMM_REP16 (DECL512)
#undef DECL512
  /* One K group: the weights at wg, A's bytes of each row from WORD. */
#define GROUP512(wg, WORD)                                                                  \
  do {                                                                                      \
    const __m512i b0 = _mm512_load_si512 ((const void *) (wg));                             \
    const __m512i b1 = nb > 1 ? _mm512_load_si512 ((const void *) ((wg) + wstride)) : zero; \
    const __m512i b2 =                                                                      \
        nb > 2 ? _mm512_load_si512 ((const void *) ((wg) + 2 * wstride)) : zero;            \
    const __m512i b3 =                                                                      \
        nb > 3 ? _mm512_load_si512 ((const void *) ((wg) + 3 * wstride)) : zero;            \
    ROWS512 (WORD)                                                                          \
  } while (0)
#define ROWS512(WORD)                                                                       \
  ROW512 (0, WORD) ROW512 (1, WORD) ROW512 (2, WORD) ROW512 (3, WORD) ROW512 (4, WORD)      \
  ROW512 (5, WORD) ROW512 (6, WORD) ROW512 (7, WORD) ROW512 (8, WORD) ROW512 (9, WORD)      \
  ROW512 (10, WORD) ROW512 (11, WORD) ROW512 (12, WORD) ROW512 (13, WORD)                   \
  ROW512 (14, WORD) ROW512 (15, WORD)
#define ROW512(i, WORD)                                                                     \
  if (i < mr) {                                                                             \
    const __m512i x = _mm512_set1_epi32 ((int) WORD (a + i * lda));                         \
    c##i##_0 = _mm512_dpbusd_epi32 (c##i##_0, x, b0);                                       \
    if (nb > 1)                                                                             \
      c##i##_1 = _mm512_dpbusd_epi32 (c##i##_1, x, b1);                                     \
    if (nb > 2)                                                                             \
      c##i##_2 = _mm512_dpbusd_epi32 (c##i##_2, x, b2);                                     \
    if (nb > 3)                                                                             \
      c##i##_3 = _mm512_dpbusd_epi32 (c##i##_3, x, b3);                                     \
  }
  GROUP512 (r ? wp + (int64_t) groups * 64 : wp, FIRST_WORD);
  for (int g = r ? 0 : 1; g < groups; g++)
    GROUP512 (wp + (int64_t) g * 64, LOOP_WORD);
#undef GROUP512
#undef ROWS512
#undef ROW512
#define STORE512(i)                                                                         \
  if (i < mr) {                                                                             \
    int32_t *dst = c + i * ldc;                                                             \
    store512 (dst, c##i##_0, nb == 1 ? last_cols : 16);                                     \
    if (nb > 1)                                                                             \
      store512 (dst + 16, c##i##_1, nb == 2 ? last_cols : 16);                              \
    if (nb > 2)                                                                             \
      store512 (dst + 32, c##i##_2, nb == 3 ? last_cols : 16);                              \
    if (nb > 3)                                                                             \
      store512 (dst + 48, c##i##_3, last_cols);                                             \
  }
  QGEMM_REP16 (STORE512)
#undef STORE512
}

/* panel512_NB (mr, ...): the tile of mr rows (1 to MR512_NB) × NB vectors. */
#define CASE512(MR, NB)                                                                     \
  case MR:                                                                                  \
    tile512 (MR, NB, a, lda, wp, wstride, k, c, ldc, last_cols);                            \
    break;
#define PANEL512(NB, ...)                                                                   \
  static T512 void panel512_##NB (int mr, const uint8_t *a, int64_t lda, const int8_t *wp,  \
                                  int64_t wstride, int k, int32_t *c, int64_t ldc,          \
                                  int last_cols)                                            \
  {                                                                                         \
    switch (mr) { __VA_ARGS__ }                                                             \
  }
#define CASES512_6(NB) CASE512 (1, NB) CASE512 (2, NB) CASE512 (3, NB) CASE512 (4, NB)      \
  CASE512 (5, NB) CASE512 (6, NB)
#define CASES512_8(NB) CASES512_6 (NB) CASE512 (7, NB) CASE512 (8, NB)
#define CASES512_12(NB) CASES512_8 (NB) CASE512 (9, NB) CASE512 (10, NB) CASE512 (11, NB)  \
  CASE512 (12, NB)
#define CASES512_16(NB) CASES512_12 (NB) CASE512 (13, NB) CASE512 (14, NB)                 \
  CASE512 (15, NB) CASE512 (16, NB)

PANEL512 (1, CASES512_16 (1))
PANEL512 (2, CASES512_12 (2))
PANEL512 (3, CASES512_8 (3))
PANEL512 (4, CASES512_6 (4))

G_STATIC_ASSERT (MR512_1 <= 16 && MR512_2 <= 12 && MR512_3 <= 8 && MR512_4 <= 6);

T512 void
nnic_qgemm_kernel_avx512vnni (int m0, int m1, int nb0, int nb1, const uint8_t *a,
                              int64_t lda, const NnicQgemmPacked *w, int32_t *c, int64_t ldc)
{
  const int64_t wstride = (int64_t) NNIC_QGEMM_NR * w->k_pad;
  const int blocks = w->n_pad / NNIC_QGEMM_NR;
  for (int p0 = nb0; p0 < nb1;) {
    const int nb = MIN (4, nb1 - p0);
    const int mr_max = nb == 1 ? MR512_1 : nb == 2 ? MR512_2 : nb == 3 ? MR512_3 : MR512_4;
    /* Valid columns of the panel's last vector. */
    const int last_cols = p0 + nb == blocks ? w->n - (blocks - 1) * NNIC_QGEMM_NR : NNIC_QGEMM_NR;
    const int8_t *wp = w->data + p0 * wstride;
    for (int i = m0; i < m1; i += mr_max) {
      const int mr = MIN (mr_max, m1 - i);
      const uint8_t *ai = a + i * lda;
      int32_t *ci = c + i * ldc + (int64_t) p0 * NNIC_QGEMM_NR;
      switch (nb) {
      case 1:
        panel512_1 (mr, ai, lda, wp, wstride, w->k, ci, ldc, last_cols);
        break;
      case 2:
        panel512_2 (mr, ai, lda, wp, wstride, w->k, ci, ldc, last_cols);
        break;
      case 3:
        panel512_3 (mr, ai, lda, wp, wstride, w->k, ci, ldc, last_cols);
        break;
      default:
        panel512_4 (mr, ai, lda, wp, wstride, w->k, ci, ldc, last_cols);
        break;
      }
    }
    p0 += nb;
  }
}

/* ---- AVX-VNNI: ymm, 8 columns per vector (half a packed block) ---- */

#define T256 __attribute__ ((target ("avx2,avxvnni")))

/* 16 ymm registers: mr·nb accumulators, nb weight vectors, a broadcast. */
#define MR256_1 8
#define MR256_2 6
#define MR256_3 4

static ALWAYS_INLINE T256 void
store256 (int32_t *dst, __m256i v, int cols)
{
  if (cols == 8)
    _mm256_storeu_si256 ((__m256i *) dst, v);
  else
    qgemm_store_first_256 (dst, v, cols);
}

/* Vector j of a panel that starts on a block: block j/2, half j%2. */
#define HALF(wg, j) ((const __m256i *) ((wg) + ((j) / 2) * wstride + ((j) % 2) * 32))

static ALWAYS_INLINE T256 void
tile256 (const int mr, const int nb, const uint8_t *a, int64_t lda, const int8_t *wp,
         int64_t wstride, int k, int32_t *c, int64_t ldc, int last_cols)
{
  const __m256i zero = _mm256_setzero_si256 ();
  const int groups = k / 4, r = k & 3;
#define DECL256(i) __m256i c##i##_0 = zero, c##i##_1 = zero, c##i##_2 = zero;
  QGEMM_REP16 (DECL256)
#undef DECL256
#define GROUP256(wg, WORD)                                                                  \
  do {                                                                                      \
    const __m256i b0 = _mm256_load_si256 (HALF (wg, 0));                                    \
    const __m256i b1 = nb > 1 ? _mm256_load_si256 (HALF (wg, 1)) : zero;                    \
    const __m256i b2 = nb > 2 ? _mm256_load_si256 (HALF (wg, 2)) : zero;                    \
    ROWS256 (WORD)                                                                          \
  } while (0)
#define ROWS256(WORD)                                                                       \
  ROW256 (0, WORD) ROW256 (1, WORD) ROW256 (2, WORD) ROW256 (3, WORD) ROW256 (4, WORD)      \
  ROW256 (5, WORD) ROW256 (6, WORD) ROW256 (7, WORD)
#define ROW256(i, WORD)                                                                     \
  if (i < mr) {                                                                             \
    const __m256i x = _mm256_set1_epi32 ((int) WORD (a + i * lda));                         \
    c##i##_0 = _mm256_dpbusd_avx_epi32 (c##i##_0, x, b0);                                   \
    if (nb > 1)                                                                             \
      c##i##_1 = _mm256_dpbusd_avx_epi32 (c##i##_1, x, b1);                                 \
    if (nb > 2)                                                                             \
      c##i##_2 = _mm256_dpbusd_avx_epi32 (c##i##_2, x, b2);                                 \
  }
  GROUP256 (r ? wp + (int64_t) groups * 64 : wp, FIRST_WORD);
  for (int g = r ? 0 : 1; g < groups; g++)
    GROUP256 (wp + (int64_t) g * 64, LOOP_WORD);
#undef GROUP256
#undef ROWS256
#undef ROW256
#define STORE256(i)                                                                         \
  if (i < mr) {                                                                             \
    int32_t *dst = c + i * ldc;                                                             \
    store256 (dst, c##i##_0, nb == 1 ? last_cols : 8);                                      \
    if (nb > 1)                                                                             \
      store256 (dst + 8, c##i##_1, nb == 2 ? last_cols : 8);                                \
    if (nb > 2)                                                                             \
      store256 (dst + 16, c##i##_2, last_cols);                                             \
  }
  QGEMM_REP16 (STORE256)
#undef STORE256
}

#define CASE256(MR, NB)                                                                     \
  case MR:                                                                                  \
    tile256 (MR, NB, a, lda, wp, wstride, k, c, ldc, last_cols);                            \
    break;
#define PANEL256(NB, ...)                                                                   \
  static T256 void panel256_##NB (int mr, const uint8_t *a, int64_t lda, const int8_t *wp,  \
                                  int64_t wstride, int k, int32_t *c, int64_t ldc,          \
                                  int last_cols)                                            \
  {                                                                                         \
    switch (mr) { __VA_ARGS__ }                                                             \
  }
#define CASES256_4(NB) CASE256 (1, NB) CASE256 (2, NB) CASE256 (3, NB) CASE256 (4, NB)
#define CASES256_6(NB) CASES256_4 (NB) CASE256 (5, NB) CASE256 (6, NB)
#define CASES256_8(NB) CASES256_6 (NB) CASE256 (7, NB) CASE256 (8, NB)

PANEL256 (1, CASES256_8 (1))
PANEL256 (2, CASES256_6 (2))
PANEL256 (3, CASES256_4 (3))

G_STATIC_ASSERT (MR256_1 <= 8 && MR256_2 <= 6 && MR256_3 <= 4);

T256 void
nnic_qgemm_kernel_avxvnni (int m0, int m1, int nb0, int nb1, const uint8_t *a, int64_t lda,
                           const NnicQgemmPacked *w, int32_t *c, int64_t ldc)
{
  const int64_t wstride = (int64_t) NNIC_QGEMM_NR * w->k_pad;
  /* In vectors of 8 columns; those entirely past n are skipped. */
  const int v1 = MIN (2 * nb1, (w->n + 7) / 8);
  for (int p0 = 2 * nb0; p0 < v1;) {
    /* Whole blocks (two vectors) at a time; a last odd three as one panel. */
    const int nb = v1 - p0 == 3 ? 3 : MIN (2, v1 - p0);
    const int mr_max = nb == 1 ? MR256_1 : nb == 2 ? MR256_2 : MR256_3;
    const int last_cols = p0 + nb == v1 ? MIN (8, w->n - (v1 - 1) * 8) : 8;
    const int8_t *wp = w->data + (p0 / 2) * wstride;
    for (int i = m0; i < m1; i += mr_max) {
      const int mr = MIN (mr_max, m1 - i);
      const uint8_t *ai = a + i * lda;
      int32_t *ci = c + i * ldc + (int64_t) p0 * 8;
      switch (nb) {
      case 1:
        panel256_1 (mr, ai, lda, wp, wstride, w->k, ci, ldc, last_cols);
        break;
      case 2:
        panel256_2 (mr, ai, lda, wp, wstride, w->k, ci, ldc, last_cols);
        break;
      default:
        panel256_3 (mr, ai, lda, wp, wstride, w->k, ci, ldc, last_cols);
        break;
      }
    }
    p0 += nb;
  }
}

#else
/* Nothing to build here (ISO C wants something in a file). */
typedef int qgemm_vnni_unused;
#endif /* NNIC_QGEMM_X86 */
