/* Internal: the int8 matrix product of nnic's integer inference path.
 *
 *   C[M×N] (int32) = A[M×K] (uint8, activations) · Wᵀ,   W[N×K] (int8, weights)
 *
 * W is laid out like a Linear weight or a Conv2d weight seen as
 * [out_channels, in_channels·kh·kw], A like the input rows of a Linear or
 * the im2col rows of a convolution (one output pixel per row). The
 * arithmetic is exact: every product and every sum is an integer, nothing
 * saturates (AVX2's vpmaddubsw, which saturates u8·s8 pairs to int16, is
 * not used), and C is the same bit for bit on every path and thread count,
 * as long as K ≤ NNIC_QGEMM_MAX_K (then |C| < 2³¹ whatever the values).
 *
 * Affine quantization (real = scale · (q − zero_point)) gives
 *
 *   Σ_k (a − za)(w − zw) = C[m][n] − zw·rowsum_A[m] − za·colsum_W[n] + K·za·zw
 *
 * so the caller needs the row sums of A (nnic_qgemm_row_sums, only when
 * zw ≠ 0) and the column sums of Wᵀ (the packed weights keep them);
 * nnic_qgemm_requantize and nnic_qgemm_dequantize apply the corrections,
 * an int32 bias and the scale. Weights quantized to uint8 with a zero
 * point zw (NNI's QAT_Quantizer does that) become int8 by subtracting 128
 * from the values and from zw.
 *
 * Paths, chosen once from the CPU (the ISA-specific functions carry GCC
 * target attributes, so nnic builds without -march flags):
 *   avx512vnni  vpdpbusd on zmm (AVX-512F + AVX-512 VNNI)
 *   avxvnni     vpdpbusd on ymm (AVX-VNNI)
 *   avx2        u8 and s8 widened to int16, vpmaddwd (exact)
 *   c           plain loops, the reference and the non-x86 path
 * The first one the CPU has is the default; NNIC_QGEMM=c|avx2|avxvnni|
 * avx512vnni in the environment forces one (see nnic_qgemm_init).
 *
 * All paths read the same packed weights, so a path can be switched
 * without packing again. */
#pragma once

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

typedef enum {
  NNIC_QGEMM_C = 0,
  NNIC_QGEMM_AVX2,
  NNIC_QGEMM_AVXVNNI,
  NNIC_QGEMM_AVX512VNNI,
  NNIC_QGEMM_N_PATHS
} NnicQgemmPath;

/* The largest K whose products cannot overflow int32: 255·128·K < 2³¹. */
#define NNIC_QGEMM_MAX_K 65793

/* Packed weights: columns in blocks of NNIC_QGEMM_NR, K in groups of
 * NNIC_QGEMM_KR, padded with zeros to whole blocks and groups:
 *   data[((nb · k_pad/4 + g) · 16 + j) · 4 + t] = W[nb·16 + j][4·g + t]
 * (one 64-byte line per block and group: what one vpdpbusd zmm reads).
 * Read-only once packed; shared by any number of threads. */
#define NNIC_QGEMM_NR 16
#define NNIC_QGEMM_KR 4

typedef struct {
  int n, k;          /* W is n × k */
  int n_pad, k_pad;  /* n rounded up to NNIC_QGEMM_NR, k to NNIC_QGEMM_KR */
  int8_t *data;      /* n_pad · k_pad bytes, 64-byte aligned */
  int32_t *col_sums; /* n values: Σ_k W[n][k] */
} NnicQgemmPacked;

/* Packs W [n × k] (row-major, int8) once, for every later call. Fails
 * with NNIC_ERROR_ARGUMENT for n or k < 1 or k > NNIC_QGEMM_MAX_K, and
 * NNIC_ERROR_MEMORY. */
NnicQgemmPacked *nnic_qgemm_pack (const int8_t *w, int n, int k, GError **error);
void nnic_qgemm_packed_free (NnicQgemmPacked *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnicQgemmPacked, nnic_qgemm_packed_free)

/* C[m × w->n] = A[m × w->k] · Wᵀ on the active path. Row i of A starts at
 * a + i·lda, row i of C at c + i·ldc (lda ≥ k, ldc ≥ n); C is written, not
 * added to, and nothing beyond its n columns is touched. Large products
 * (M·N·K above NNIC_QGEMM_PARALLEL_MIN) run on nnic_threads() threads,
 * split over rows or over column blocks; inside an OpenMP parallel
 * region, and for small products, on the calling thread only. m may be 0. */
void nnic_qgemm (int m, const uint8_t *a, int lda, const NnicQgemmPacked *w, int32_t *c,
                 int ldc);

/* The same on a given path, with a given thread count (≤ 0: as nnic_qgemm
 * decides). For tests and benchmarks: the path must be supported
 * (nnic_qgemm_path_supported), else this warns and uses the C path. */
void nnic_qgemm_with (NnicQgemmPath path, int threads, int m, const uint8_t *a, int lda,
                      const NnicQgemmPacked *w, int32_t *c, int ldc);

/* Multiply-adds below which nnic_qgemm stays on one thread: two threads
 * already gain at fc1's 400k and conv1's 288k at batch 1 (bench/RESULTS.md). */
#define NNIC_QGEMM_PARALLEL_MIN ((int64_t) 1 << 18)

/* ---- Paths ---- */

/* "c", "avx2", "avxvnni", "avx512vnni" (NULL for an invalid value). */
const char *nnic_qgemm_path_name (NnicQgemmPath path);
/* Parses a name as above; FALSE (and an error listing them) if unknown. */
gboolean nnic_qgemm_path_from_name (const char *name, NnicQgemmPath *path, GError **error);
/* Compiled in and the CPU (and the OS) has what it needs. */
gboolean nnic_qgemm_path_supported (NnicQgemmPath path);
/* The fastest supported path. */
NnicQgemmPath nnic_qgemm_best_path (void);

/* Reads NNIC_QGEMM and makes its path active (unset or empty: the best).
 * An unknown name, or a path the CPU lacks, is an error (it names the
 * paths this machine has); the best path is active then. Calling it is
 * optional: without it, the first nnic_qgemm reads NNIC_QGEMM the same way
 * and reports a bad value with g_warning. */
gboolean nnic_qgemm_init (GError **error);
/* Makes a path active; an error, changing nothing, if it is unsupported. */
gboolean nnic_qgemm_set_path (NnicQgemmPath path, GError **error);
NnicQgemmPath nnic_qgemm_active_path (void);
const char *nnic_qgemm_active_name (void);

/* ---- Zero-point corrections and the output stage ---- */

/* sums[i] = Σ_k A[i][k] over row i's k values (exact). */
void nnic_qgemm_row_sums (int m, int k, const uint8_t *a, int lda, int32_t *sums);

/* How an accumulator becomes an output. With
 *   v[m][n] = C[m][n] + bias[n] − zw·row_sums[m] − za·col_sums[n] + K·za·zw
 * (an exact integer, whatever K, zero points and bias: int32 when it fits,
 * else double):
 *   requantize:  out = clamp (round_half_even (scale[n] · v + out_zero_point),
 *                             out_min, out_max)                 (uint8)
 *   dequantize:  out = scale[n] · v                             (float)
 * computed in float: (float) v rounded once from the exact value, times
 * the float scale, plus the zero point (a separate rounding, no FMA).
 *
 * Rounding is half to even, after adding the zero point, which is what
 * NNI's QAT fake quantization computes in training:
 *   torch.round (torch.clamp (zero_point + x / scale, qmin, qmax))
 * (torch.round rounds half to even). Rounding first and then adding the
 * zero point (torch.fake_quantize_per_tensor_affine, FBGEMM) differs only
 * on exact ties with an odd zero point: 2.5 + 1 → 4 here, 2 + 1 = 3 there. */
typedef struct {
  int32_t a_zero_point;     /* za, of the activations A: 0..255 */
  int32_t w_zero_point;     /* zw, of the weights W: -128..127 (0: symmetric) */
  const int32_t *bias;      /* n values, in the accumulator's units
                             * (scale sa·sw[n], zero point 0), or NULL */
  const float *scale;       /* requantize: sa·sw[n] / s_out; dequantize: sa·sw[n] */
  int n_scale;              /* 1 (per tensor) or n (per output channel) */
  int32_t out_zero_point;   /* requantize only */
  int32_t out_min, out_max; /* requantize only: 0 and 255, or a fused ReLU's range */
} NnicQgemmOutput;

/* row_sums (m values of nnic_qgemm_row_sums) may be NULL when zw == 0. */
void nnic_qgemm_requantize (int m, const NnicQgemmPacked *w, const int32_t *c, int ldc,
                            const int32_t *row_sums, const NnicQgemmOutput *o, uint8_t *out,
                            int ldo);
void nnic_qgemm_dequantize (int m, const NnicQgemmPacked *w, const int32_t *c, int ldc,
                            const int32_t *row_sums, const NnicQgemmOutput *o, float *out,
                            int ldo);

G_END_DECLS
