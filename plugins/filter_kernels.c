/* The filter maskers' arithmetic (filter_kernels.h): L1/L2 norms of
 * filters, FPGM's distance sums.
 *
 * Sums. NNI's are torch float32 reductions (vectorised, cascaded). Here
 * every sum over a row runs in float32 over blocks of 256 (L1/L2: 16 terms
 * a lane) or 512 (FPGM: 64 terms a lane) elements in eight lanes, and the
 * block sums add up in double; the total is rounded to float once. That
 * keeps the float32 rounding to a few short runs (relative error ~1e-7
 * typically, bounded by ~64 ulp), close to torch's cascade: the two can
 * only disagree on near-ties closer than that (the reference cases' gaps
 * are 1e-2 and more). Plain double accumulation would be a little more
 * exact but halves the SIMD width of the FPGM kernel, which is what costs.
 *
 * FPGM computes each of the F(F-1)/2 distances once, directly from the
 * float32 differences (not with the Gram-matrix identity, whose
 * cancellation loses the precision NNI's direct differences keep), in
 * register tiles of 3x3 filter pairs (AVX2; 2x2 in the baseline kernel),
 * the tiles shared out among OpenMP threads. dist(a, b) and dist(b, a) are
 * the same bits ((a-b)^2 == (b-a)^2) and every pair runs the same
 * operations wherever it falls, so identical filters get identical d_f and
 * the lower-index rule decides between them exactly as in NNI. */
#include "filter_kernels.h"

#include <nnic/error.h>
#include <nnic/tensor.h>

#include <math.h>

/* Eight float lanes; GCC lowers them to whatever the target has. */
typedef float v8f __attribute__ ((vector_size (32)));
typedef guint32 v8u __attribute__ ((vector_size (32)));

/* An unaligned 8-float load (a macro: functions passing 32-byte vectors
 * by value would depend on the target's ABI). */
typedef float v8f_unaligned __attribute__ ((vector_size (32), aligned (4), may_alias));
#define LOAD8(p) (*(const v8f_unaligned *) (p))

/* A fixed order, so that every caller gets the same bits. */
static inline float
hsum8 (const v8f *v)
{
  return (((*v)[0] + (*v)[4]) + ((*v)[2] + (*v)[6])) + (((*v)[1] + (*v)[5]) + ((*v)[3] + (*v)[7]));
}

/* ---- kernels ----
 *
 * Written once (KERNEL: always inlined), compiled twice: for the baseline
 * of the target and, on x86-64, for AVX2, picked at run time. Both do the
 * same IEEE operations lane by lane (eight lanes, no FMA: -ffp-contract=off),
 * so the scores are the same bits on every machine. */

#define KERNEL static inline __attribute__ ((always_inline))
#if defined(__x86_64__) || defined(__i386__)
#define HAVE_AVX2_VARIANT 1
#define TARGET_AVX2 __attribute__ ((target ("avx2")))
#endif

#define NORM_BLOCK 256

/* sum_j |x_j| (square = FALSE) or sum_j x_j^2, float32 per block of
 * NORM_BLOCK (two 8-lane sums, 16 terms a lane), blocks summed in double. */
KERNEL double
row_norm_sum (const float *x, int64_t n, gboolean square)
{
  const v8u abs_mask = { 0x7fffffffu, 0x7fffffffu, 0x7fffffffu, 0x7fffffffu,
                         0x7fffffffu, 0x7fffffffu, 0x7fffffffu, 0x7fffffffu };
  double total = 0.0;
  for (int64_t b = 0; b < n; b += NORM_BLOCK) {
    const int64_t e = MIN (n, b + NORM_BLOCK);
    v8f a0 = { 0 }, a1 = { 0 };
    int64_t j = b;
    if (square) {
      for (; j + 16 <= e; j += 16) {
        v8f x0, x1;
        x0 = LOAD8 (x + j);
        x1 = LOAD8 (x + j + 8);
        a0 += x0 * x0;
        a1 += x1 * x1;
      }
    } else {
      for (; j + 16 <= e; j += 16) {
        v8f x0, x1;
        x0 = LOAD8 (x + j);
        x1 = LOAD8 (x + j + 8);
        a0 += (v8f) ((v8u) x0 & abs_mask);
        a1 += (v8f) ((v8u) x1 & abs_mask);
      }
    }
    const v8f a = a0 + a1;
    float s = hsum8 (&a);
    for (; j < e; j++)
      s += square ? x[j] * x[j] : fabsf (x[j]);
    total += (double) s;
  }
  return total;
}

/* score_f of filters f in [lo, hi): sum |w| (L1) or sqrt(sum w^2) (L2),
 * the sum rounded to float32 first as torch's is. */
KERNEL void
norm_rows_impl (const float *wv, int64_t per, int64_t lo, int64_t hi, gboolean square, float *scores)
{
  for (int64_t f = lo; f < hi; f++) {
    const float s = (float) row_norm_sum (wv + f * per, per, square);
    scores[f] = square ? sqrtf (s) : s;
  }
}

#define PAIR_BLOCK 512
#define MAX_TILE 3

/* Squared distances of rows i0..i0+R to rows j0..j0+S (each n long) into
 * out[r * S + s]: 8-lane float32 sums per block of PAIR_BLOCK (64 terms a
 * lane), blocks in double, the n % 8 tail in float32 last. Every pair
 * gets these operations in this order, whatever R and S. */
KERNEL void
dist2_impl (const float *wv, int64_t n, int64_t i0, int64_t j0, const int R, const int S, double *out)
{
  const int64_t n8 = n & ~(int64_t) 7;
  const float *a[MAX_TILE], *b[MAX_TILE];
  double tot[MAX_TILE][MAX_TILE];
  for (int r = 0; r < R; r++)
    a[r] = wv + (i0 + r) * n;
  for (int s = 0; s < S; s++)
    b[s] = wv + (j0 + s) * n;
  for (int r = 0; r < R; r++)
    for (int s = 0; s < S; s++)
      tot[r][s] = 0.0;
  for (int64_t blk = 0; blk < n8; blk += PAIR_BLOCK) {
    const int64_t e = MIN (n8, blk + PAIR_BLOCK);
    v8f acc[MAX_TILE][MAX_TILE];
    for (int r = 0; r < R; r++)
      for (int s = 0; s < S; s++)
        acc[r][s] = (v8f) { 0 };
    for (int64_t j = blk; j < e; j += 8) {
      v8f va[MAX_TILE];
      for (int r = 0; r < R; r++)
        va[r] = LOAD8 (a[r] + j);
      for (int s = 0; s < S; s++) {
        v8f vb;
        vb = LOAD8 (b[s] + j);
        for (int r = 0; r < R; r++) {
          const v8f d = va[r] - vb;
          acc[r][s] += d * d;
        }
      }
    }
    for (int r = 0; r < R; r++)
      for (int s = 0; s < S; s++)
        tot[r][s] += (double) hsum8 (&acc[r][s]);
  }
  for (int r = 0; r < R; r++)
    for (int s = 0; s < S; s++) {
      float tail = 0.0f;
      for (int64_t j = n8; j < n; j++) {
        const float d = a[r][j] - b[s][j];
        tail += d * d;
      }
      out[r * S + s] = tot[r][s] + (double) tail;
    }
}

struct _FilterKernels {
  int tile; /* square tiles of tile x tile filter pairs */
  void (*norm_rows) (const float *wv, int64_t per, int64_t lo, int64_t hi, gboolean square, float *scores);
  void (*dist2_tile) (const float *wv, int64_t n, int64_t i0, int64_t j0, double *out);
  void (*dist2_one) (const float *wv, int64_t n, int64_t i, int64_t j, double *out);
};

/* Baseline: 2x2 tiles (16 registers of 16 bytes: 4 pairs of 8 lanes). */
static void
norm_rows_base (const float *wv, int64_t per, int64_t lo, int64_t hi, gboolean square, float *scores)
{
  norm_rows_impl (wv, per, lo, hi, square, scores);
}

static void
dist2_tile_base (const float *wv, int64_t n, int64_t i0, int64_t j0, double *out)
{
  dist2_impl (wv, n, i0, j0, 2, 2, out);
}

static void
dist2_one_base (const float *wv, int64_t n, int64_t i, int64_t j, double *out)
{
  dist2_impl (wv, n, i, j, 1, 1, out);
}

static const FilterKernels kernels_base = { 2, norm_rows_base, dist2_tile_base, dist2_one_base };

#ifdef HAVE_AVX2_VARIANT
/* AVX2: 3x3 tiles (9 accumulators + 3 + 2 of 16 registers). */
TARGET_AVX2 static void
norm_rows_avx2 (const float *wv, int64_t per, int64_t lo, int64_t hi, gboolean square, float *scores)
{
  norm_rows_impl (wv, per, lo, hi, square, scores);
}

TARGET_AVX2 static void
dist2_tile_avx2 (const float *wv, int64_t n, int64_t i0, int64_t j0, double *out)
{
  dist2_impl (wv, n, i0, j0, 3, 3, out);
}

TARGET_AVX2 static void
dist2_one_avx2 (const float *wv, int64_t n, int64_t i, int64_t j, double *out)
{
  dist2_impl (wv, n, i, j, 1, 1, out);
}

static const FilterKernels kernels_avx2 = { 3, norm_rows_avx2, dist2_tile_avx2, dist2_one_avx2 };
#endif

const FilterKernels *
filter_kernels (void)
{
  if (g_strcmp0 (g_getenv ("NNIC_FILTER_KERNELS"), "baseline") == 0)
    return &kernels_base;
#ifdef HAVE_AVX2_VARIANT
  __builtin_cpu_init ();
  if (__builtin_cpu_supports ("avx2"))
    return &kernels_avx2;
#endif
  return &kernels_base;
}

/* ---- L1 / L2 ---- */

/* One thread: the pass is memory-bound, and a parallel region costs more
 * than it saves on the sizes of a conv layer (and much more on a loaded
 * machine). */
void
filter_norms (const FilterKernels *k, const float *wv, int64_t filters, int64_t per, gboolean square,
              float *scores)
{
  k->norm_rows (wv, per, 0, filters, square, scores);
}

/* ---- FPGM ---- */

/* dist(i, j) as NNI has it: sqrt of the float32 sum, a float32. */
static inline float
pair_distance (double sum2)
{
  return sqrtf ((float) sum2);
}

/* d_f = sum_g dist(f, g), for all f: the F x F distances (each pair once),
 * then the row sums in a fixed order (g ascending, in double). */
gboolean
filter_distance_sums (const FilterKernels *k, const float *wv, int64_t filters, int64_t per,
                      float *scores, GError **error)
{
  if ((double) filters * (double) filters * sizeof (float) > (double) NNIC_TENSOR_MAX_BYTES) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "fpgm: %" G_GINT64_FORMAT " filters are too many",
                 filters);
    return FALSE;
  }
  float *dist = g_try_new0 (float, (gsize) (filters * filters));
  if (!dist) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "fpgm: out of memory for %" G_GINT64_FORMAT
                 "x%" G_GINT64_FORMAT " distances", filters, filters);
    return FALSE;
  }
  const int T = k->tile;
  const int64_t tiles = filters / T, tiled = tiles * T;
  const gboolean big = (double) filters * (double) filters * (double) per > 4e6;
  /* Tile pairs (ti <= tj), a row of them at a time; the rows get shorter,
   * so hand them out dynamically. */
#pragma omp parallel for schedule(dynamic, 1) if (big)
  for (int64_t ti = 0; ti < tiles; ti++)
    for (int64_t tj = ti; tj < tiles; tj++) {
      double out[MAX_TILE * MAX_TILE];
      k->dist2_tile (wv, per, ti * T, tj * T, out);
      for (int r = 0; r < T; r++)
        for (int s = 0; s < T; s++) {
          const int64_t i = ti * T + r, j = tj * T + s;
          if (i < j)
            dist[i * filters + j] = pair_distance (out[r * T + s]);
        }
    }
  /* Pairs with a row the tiles left over: (i, j) with j >= tiled, i < j. */
#pragma omp parallel for schedule(dynamic, 4) if (big)
  for (int64_t i = 0; i < filters; i++)
    for (int64_t j = MAX (tiled, i + 1); j < filters; j++) {
      double out;
      k->dist2_one (wv, per, i, j, &out);
      dist[i * filters + j] = pair_distance (out);
    }
  for (int64_t i = 0; i < filters; i++)
    for (int64_t j = i + 1; j < filters; j++)
      dist[j * filters + i] = dist[i * filters + j];
  for (int64_t f = 0; f < filters; f++) {
    double d = 0.0;
    const float *row = dist + f * filters;
    for (int64_t g = 0; g < filters; g++)
      d += (double) row[g];
    scores[f] = (float) d;
  }
  g_free (dist);
  return TRUE;
}
