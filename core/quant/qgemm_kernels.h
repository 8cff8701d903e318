/* Private to core/quant/qgemm*.c: the per-ISA kernels behind nnic_qgemm.
 *
 * A kernel computes rows [m0, m1) of C and its column blocks [nb0, nb1)
 * (NNIC_QGEMM_NR columns each; the last block of W may be partial and only
 * its w->n valid columns are stored). Single-threaded: nnic_qgemm splits
 * the work and calls one per thread. */
#pragma once

#include "core/quant/qgemm.h"

typedef void (*QgemmKernel) (int m0, int m1, int nb0, int nb1, const uint8_t *a, int64_t lda,
                             const NnicQgemmPacked *w, int32_t *c, int64_t ldc);

#if defined(__x86_64__) && defined(__GNUC__)
#define NNIC_QGEMM_X86 1
#include <immintrin.h>
void nnic_qgemm_kernel_avx2 (int m0, int m1, int nb0, int nb1, const uint8_t *a, int64_t lda,
                             const NnicQgemmPacked *w, int32_t *c, int64_t ldc);
void nnic_qgemm_kernel_avxvnni (int m0, int m1, int nb0, int nb1, const uint8_t *a,
                                int64_t lda, const NnicQgemmPacked *w, int32_t *c, int64_t ldc);
void nnic_qgemm_kernel_avx512vnni (int m0, int m1, int nb0, int nb1, const uint8_t *a,
                                   int64_t lda, const NnicQgemmPacked *w, int32_t *c,
                                   int64_t ldc);
#else
#define NNIC_QGEMM_X86 0
#endif

/* The K loop's last, partial group of 4 (k % 4 values): the row's
 * remaining bytes, zero-padded, as one little-endian word. Reading 4 bytes
 * there could run past the end of A; the packed weights are zero beyond k,
 * so the padding's value does not matter, only that it is not read. */
static inline uint32_t
qgemm_tail_word (const uint8_t *row, int k)
{
  const uint8_t *p = row + (k & ~3);
  const int r = k & 3;
  if (r == 0)
    return 0;
  return (uint32_t) p[0] | (r > 1 ? (uint32_t) p[1] << 8 : 0) | (r > 2 ? (uint32_t) p[2] << 16 : 0);
}

/* 4 bytes of A, unaligned. */
static inline uint32_t
qgemm_load_u32 (const uint8_t *p)
{
  uint32_t v;
  __builtin_memcpy (&v, p, 4);
  return v;
}

/* F(0) ... F(15): the rows of a register tile, written out. */
#define QGEMM_REP16(F)                                                                      \
  F (0) F (1) F (2) F (3) F (4) F (5) F (6) F (7) F (8) F (9) F (10) F (11) F (12) F (13)  \
  F (14) F (15)

#if NNIC_QGEMM_X86
/* Stores of the first `cols` int32 lanes of a vector (a partial last
 * vector of columns), as inline assembly: with the intrinsics
 * (_mm512_mask_storeu_epi32, _mm256_maskstore_epi32) after the K loop, GCC
 * 12 copies or spills the accumulators inside the loop, and a buffer and
 * memcpy costs a call per row. */
static inline __attribute__ ((target ("avx512f"), always_inline)) void
qgemm_store_first_512 (int32_t *dst, __m512i v, int cols)
{
  const __mmask16 m = (__mmask16) ((1u << cols) - 1);
  __asm__ ("vmovdqu32 %1, (%0)%{%2%}" : : "r" (dst), "v" (v), "Yk" (m) : "memory");
}

static inline __attribute__ ((target ("avx2"), always_inline)) void
qgemm_store_first_256 (int32_t *dst, __m256i v, int cols)
{
  const __m256i m =
      _mm256_cmpgt_epi32 (_mm256_set1_epi32 (cols), _mm256_setr_epi32 (0, 1, 2, 3, 4, 5, 6, 7));
  __asm__ ("vpmaskmovd %1, %2, (%0)" : : "r" (dst), "x" (v), "x" (m) : "memory");
}
#endif
