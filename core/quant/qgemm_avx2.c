/* The AVX2 kernel, exact: bytes are widened to int16 and multiplied with
 * vpmaddwd, which adds pairs of int16 products into int32 lanes (a pair
 * of u8·s8 products is at most 65,280 in magnitude: no overflow). The
 * shorter vpmaddubsw would multiply the bytes directly but saturates each
 * pair's sum to int16 (255·127·2 = 64,770 > 32,767), so it is not used.
 *
 * It reads the same packed weights as the VNNI kernels. For one K group
 * of 4 and 4 columns (16 bytes), vpmovsxbw gives
 *   [c0k0 c0k1 c0k2 c0k3 c1k0 ... c3k3]   (int16)
 * and the row's 4 bytes of A, widened and repeated 4 times,
 *   [a0 a1 a2 a3 a0 a1 a2 a3 ...]          (int16)
 * so vpmaddwd leaves [c0(k0,k1) c0(k2,k3) c1(k0,k1) ...] in 8 int32 lanes:
 * each column's sum is split over two lanes until the end of the K loop,
 * where one vphaddd per 8 columns folds them.
 *
 * A register tile is MR rows × NB vectors of 8 columns (two accumulators
 * each); loop order as in qgemm_vnni.c. */
#include "core/quant/qgemm_kernels.h"

#if NNIC_QGEMM_X86

#define ALWAYS_INLINE inline __attribute__ ((always_inline))
#define TAVX2 __attribute__ ((target ("avx2")))

/* 16 ymm registers: 2·mr·nb accumulators, mr broadcasts, a weight vector. */
#define MRA_1 4
#define MRA_2 2

/* A's 4 bytes as int16, 4 times over. */
static ALWAYS_INLINE TAVX2 __m256i
widen_a (uint32_t x)
{
  return _mm256_cvtepu8_epi16 (_mm_set1_epi32 ((int) x));
}

/* The same straight from memory: vbroadcastss is a plain load (the
 * intrinsic is a builtin taking the address, no float is read in C). */
static ALWAYS_INLINE TAVX2 __m256i
widen_a_at (const uint8_t *p)
{
  const __m128 x = _mm_broadcast_ss ((const float *) (const void *) p);
  return _mm256_cvtepu8_epi16 (_mm_castps_si128 (x));
}

/* Quad q (4 columns) of vector j of a panel that starts on a block. */
#define QUAD(wg, j, q)                                                                      \
  _mm256_cvtepi8_epi16 (_mm_load_si128 (                                                    \
      (const __m128i *) ((wg) + ((j) / 2) * wstride + ((j) % 2) * 32 + 16 * (q))))

/* Folds a vector's two accumulators (columns 0-3 and 4-7, each column's
 * sum split over two lanes) and stores its `cols` valid columns. */
static ALWAYS_INLINE TAVX2 void
store_avx2 (int32_t *dst, __m256i lo, __m256i hi, int cols)
{
  /* hadd: [c0 c1 c4 c5 | c2 c3 c6 c7], then qwords 0 2 1 3 */
  const __m256i v = _mm256_permute4x64_epi64 (_mm256_hadd_epi32 (lo, hi), 0xD8);
  if (cols == 8)
    _mm256_storeu_si256 ((__m256i *) dst, v);
  else
    qgemm_store_first_256 (dst, v, cols);
}

#define FIRST_A(row) widen_a (r ? qgemm_tail_word ((row), k) : qgemm_load_u32 (row))
#define LOOP_A(row) widen_a_at ((row) + 4 * g)

/* acc += p, in place: written as vpaddd in assembly because GCC 12 adds
 * into a fresh register and copies it back, one move per accumulator and
 * K group, or spills. */
#define ACCA(acc, p) __asm__ ("vpaddd %1, %0, %0" : "+x" (acc) : "x" (p))

/* As in qgemm_vnni.c: named accumulators, the partial K group first, the
 * masked stores in assembly, so that GCC keeps the accumulators in
 * registers. */
static ALWAYS_INLINE TAVX2 void
tile_avx2 (const int mr, const int nb, const uint8_t *a, int64_t lda, const int8_t *wp,
           int64_t wstride, int k, int32_t *c, int64_t ldc, int last_cols)
{
  const __m256i zero = _mm256_setzero_si256 ();
  const int groups = k / 4, r = k & 3;
#define DECLA(i) __m256i c##i##_00 = zero, c##i##_01 = zero, c##i##_10 = zero, c##i##_11 = zero;
  DECLA (0) DECLA (1) DECLA (2) DECLA (3)
#undef DECLA
#define GROUPA(wg, XA)                                                                      \
  do {                                                                                      \
    const __m256i x0 = XA (a);                                                              \
    const __m256i x1 = mr > 1 ? XA (a + lda) : zero;                                        \
    const __m256i x2 = mr > 2 ? XA (a + 2 * lda) : zero;                                    \
    const __m256i x3 = mr > 3 ? XA (a + 3 * lda) : zero;                                    \
    QUADA (wg, 0, 0) QUADA (wg, 0, 1)                                                       \
    if (nb > 1) {                                                                           \
      QUADA (wg, 1, 0) QUADA (wg, 1, 1)                                                     \
    }                                                                                       \
  } while (0)
#define QUADA(wg, j, q)                                                                     \
  {                                                                                         \
    const __m256i b = QUAD (wg, j, q);                                                      \
    ACCA (c0_##j##q, _mm256_madd_epi16 (x0, b));                                            \
    if (mr > 1)                                                                             \
      ACCA (c1_##j##q, _mm256_madd_epi16 (x1, b));                                          \
    if (mr > 2)                                                                             \
      ACCA (c2_##j##q, _mm256_madd_epi16 (x2, b));                                          \
    if (mr > 3)                                                                             \
      ACCA (c3_##j##q, _mm256_madd_epi16 (x3, b));                                          \
  }
  GROUPA (r ? wp + (int64_t) groups * 64 : wp, FIRST_A);
  for (int g = r ? 0 : 1; g < groups; g++)
    GROUPA (wp + (int64_t) g * 64, LOOP_A);
#undef GROUPA
#undef QUADA
#define STOREA(i)                                                                           \
  if (i < mr) {                                                                             \
    int32_t *dst = c + i * ldc;                                                             \
    store_avx2 (dst, c##i##_00, c##i##_01, nb == 1 ? last_cols : 8);                        \
    if (nb > 1)                                                                             \
      store_avx2 (dst + 8, c##i##_10, c##i##_11, last_cols);                                \
  }
  STOREA (0) STOREA (1) STOREA (2) STOREA (3)
#undef STOREA
}

#define CASEA(MR, NB)                                                                       \
  case MR:                                                                                  \
    tile_avx2 (MR, NB, a, lda, wp, wstride, k, c, ldc, last_cols);                          \
    break;

static TAVX2 void
panel_avx2_1 (int mr, const uint8_t *a, int64_t lda, const int8_t *wp, int64_t wstride, int k,
              int32_t *c, int64_t ldc, int last_cols)
{
  switch (mr) {
    CASEA (1, 1)
    CASEA (2, 1)
    CASEA (3, 1)
    CASEA (4, 1)
  }
}

static TAVX2 void
panel_avx2_2 (int mr, const uint8_t *a, int64_t lda, const int8_t *wp, int64_t wstride, int k,
              int32_t *c, int64_t ldc, int last_cols)
{
  switch (mr) {
    CASEA (1, 2)
    CASEA (2, 2)
    CASEA (3, 2)
  }
}

G_STATIC_ASSERT (MRA_1 <= 4 && MRA_2 <= 3);

TAVX2 void
nnic_qgemm_kernel_avx2 (int m0, int m1, int nb0, int nb1, const uint8_t *a, int64_t lda,
                        const NnicQgemmPacked *w, int32_t *c, int64_t ldc)
{
  const int64_t wstride = (int64_t) NNIC_QGEMM_NR * w->k_pad;
  const int h1 = MIN (2 * nb1, (w->n + 7) / 8);
  for (int p0 = 2 * nb0; p0 < h1;) {
    const int nb = MIN (2, h1 - p0);
    const int mr_max = nb == 1 ? MRA_1 : MRA_2;
    const int last_cols = p0 + nb == h1 ? MIN (8, w->n - (h1 - 1) * 8) : 8;
    const int8_t *wp = w->data + (p0 / 2) * wstride;
    for (int i = m0; i < m1; i += mr_max) {
      const int mr = MIN (mr_max, m1 - i);
      const uint8_t *ai = a + i * lda;
      int32_t *ci = c + i * ldc + (int64_t) p0 * 8;
      if (nb == 1)
        panel_avx2_1 (mr, ai, lda, wp, wstride, w->k, ci, ldc, last_cols);
      else
        panel_avx2_2 (mr, ai, lda, wp, wstride, w->k, ci, ldc, last_cols);
    }
    p0 += nb;
  }
}

#else
/* Nothing to build here (ISO C wants something in a file). */
typedef int qgemm_avx2_unused;
#endif /* NNIC_QGEMM_X86 */
