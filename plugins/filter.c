/* Filter maskers: NNI's L1FilterPrunerMasker, L2FilterPrunerMasker and
 * FPGMPrunerMasker (tests/fixtures/nni-masks/SEMANTICS.md states the
 * rules). Conv2d only, as NNI's config validation of filter pruners.
 *
 * F = weight.shape[0], num_prune = int(F * sparsity) (double, truncated);
 * F < 2 or num_prune < 1 leaves the masks as they are. The weight scored
 * is weight * current mask (NNI's "apply base mask for iterative
 * pruning"; nnic keeps the masks applied to the weights, so for a fresh
 * or one-shot wrapper it is the raw weight).
 *  - l1filter: score_f = sum_j |W[f,j]|; l2filter: sqrt(sum_j W[f,j]^2).
 *    t = the num_prune-th smallest score; a filter stays iff score > t
 *    (ties at t all go: more than num_prune may be pruned). The masks are
 *    made fresh from the scores, as NNI's are.
 *  - fpgm: d_f = sum_g sqrt(sum_j (W[g,j] - W[f,j])^2); exactly num_prune
 *    filters with the smallest d_f go, ties to the lower index (Python's
 *    stable sort), on top of the current masks.
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
#include <nnic/plugin.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { FILTER_L1, FILTER_L2, FILTER_FPGM } FilterKind;

typedef struct _Kernels Kernels;

typedef struct {
  FilterKind kind;
  const Kernels *kernels;
} FilterState;

static const Kernels *kernels (void);

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

/* ---- checks ---- */

static gboolean
check_conv (NnicWrapper *w, const char *algorithm, GError **error)
{
  const char *type = nnic_wrapper_type (w);
  if (g_strcmp0 (type, "Conv2d") != 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                 "layer '%s' is a %s: %s prunes Conv2d filters only (as NNI's filter pruners); "
                 "select Conv2d layers with \"op_types\": [\"Conv2d\"]",
                 nnic_wrapper_name (w), type, algorithm);
    return FALSE;
  }
  NnicTensor *weight = nnic_wrapper_weight (w);
  if (!weight || weight->ndim != 4 || weight->shape[0] < 1) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE, "layer '%s': a Conv2d weight must be 4-D",
                 nnic_wrapper_name (w));
    return FALSE;
  }
  return TRUE;
}

static const char *
kind_name (FilterKind kind)
{
  return kind == FILTER_L1 ? "l1filter" : kind == FILTER_L2 ? "l2filter" : "fpgm";
}

static gpointer
filter_create (NnicCompressor *c, FilterKind kind, GError **error)
{
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++)
    if (!check_conv (nnic_compressor_wrapper (c, i), kind_name (kind), error))
      return NULL;
  FilterState *s = g_new0 (FilterState, 1);
  s->kind = kind;
  s->kernels = kernels ();
  return s;
}

static gpointer
l1_create (NnicCompressor *c, GError **error)
{
  return filter_create (c, FILTER_L1, error);
}

static gpointer
l2_create (NnicCompressor *c, GError **error)
{
  return filter_create (c, FILTER_L2, error);
}

static gpointer
fpgm_create (NnicCompressor *c, GError **error)
{
  return filter_create (c, FILTER_FPGM, error);
}

/* ---- the weight to score ---- */

/* The weight with the current mask applied: the parameter itself when the
 * mask has no zero (the usual case: nnic keeps masks applied), else a
 * masked copy in *copy. */
static const float *
masked_weight (NnicWrapper *w, NnicTensor **copy, GError **error)
{
  NnicTensor *weight = nnic_wrapper_weight (w);
  const NnicTensor *mask = nnic_wrapper_get_mask (w, "weight");
  *copy = NULL;
  if (!mask || !memchr (mask->u8, 0, (size_t) mask->numel))
    return weight->f32;
  if (!(*copy = nnic_tensor_new_like (weight, error)))
    return NULL;
  for (int64_t i = 0; i < weight->numel; i++)
    (*copy)->f32[i] = mask->u8[i] ? weight->f32[i] : 0.0f;
  return (*copy)->f32;
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

struct _Kernels {
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

static const Kernels kernels_base = { 2, norm_rows_base, dist2_tile_base, dist2_one_base };

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

static const Kernels kernels_avx2 = { 3, norm_rows_avx2, dist2_tile_avx2, dist2_one_avx2 };
#endif

/* NNIC_FILTER_KERNELS=baseline forces the baseline kernels (the tests
 * check that both give the same bits). */
static const Kernels *
kernels (void)
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
static void
norm_scores (const Kernels *k, const float *wv, int64_t filters, int64_t per, gboolean square, float *scores)
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
static gboolean
fpgm_scores (const Kernels *k, const float *wv, int64_t filters, int64_t per, float *scores, GError **error)
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

/* ---- scores, thresholds, masks ---- */

static gboolean
filter_scores (const FilterState *s, NnicWrapper *w, float *scores, GError **error)
{
  if (!check_conv (w, kind_name (s->kind), error))
    return FALSE;
  NnicTensor *weight = nnic_wrapper_weight (w);
  const int64_t filters = weight->shape[0], per = weight->numel / filters;
  g_autoptr (NnicTensor) copy = NULL;
  const float *wv = masked_weight (w, &copy, error);
  if (!wv)
    return FALSE;
  if (s->kind == FILTER_FPGM)
    return fpgm_scores (s->kernels, wv, filters, per, scores, error);
  norm_scores (s->kernels, wv, filters, per, s->kind == FILTER_L2, scores);
  return TRUE;
}

/* Ascending, NaN last (torch.topk's order for largest=False). */
static int
cmp_float (const void *pa, const void *pb)
{
  const float a = *(const float *) pa, b = *(const float *) pb;
  if (isnan (a) || isnan (b))
    return isnan (a) - isnan (b);
  return (a > b) - (a < b);
}

/* Sets the masks of whole filters: keep[f] = 0 prunes filter f (and its
 * bias entry). With `from_current`, filters already masked stay as they
 * were (FPGM); otherwise the masks are made fresh from keep (L1/L2). */
static gboolean
set_filter_masks (NnicWrapper *w, const guint8 *keep, gboolean from_current, GError **error)
{
  NnicTensor *weight = nnic_wrapper_weight (w);
  const int64_t filters = weight->shape[0], per = weight->numel / filters;
  g_autoptr (NnicTensor) mask = from_current ? nnic_tensor_copy (nnic_wrapper_get_mask (w, "weight"), error)
                                             : nnic_tensor_new (NNIC_DTYPE_U8, weight->ndim, weight->shape, error);
  if (!mask)
    return FALSE;
  for (int64_t f = 0; f < filters; f++)
    if (!from_current || !keep[f])
      memset (mask->u8 + f * per, keep[f] ? 1 : 0, (size_t) per);
  if (!nnic_wrapper_set_mask (w, "weight", mask, error))
    return FALSE;
  const NnicTensor *old_bias = nnic_wrapper_get_mask (w, "bias");
  if (!old_bias)
    return TRUE;
  g_autoptr (NnicTensor) bias = nnic_tensor_copy (old_bias, error);
  if (!bias)
    return FALSE;
  for (int64_t f = 0; f < filters; f++)
    if (!from_current || !keep[f])
      bias->u8[f] = keep[f] ? 1 : 0;
  return nnic_wrapper_set_mask (w, "bias", bias, error);
}

static gboolean
filter_calc_mask (gpointer state, NnicCompressor *c, NnicWrapper *w, guint index, double sparsity,
                  gboolean *ready, GError **error)
{
  (void) c;
  (void) index;
  const FilterState *s = state;
  *ready = TRUE;
  if (!check_conv (w, kind_name (s->kind), error))
    return FALSE;
  const int64_t filters = nnic_wrapper_weight (w)->shape[0];
  const int64_t num_prune = (int64_t) ((double) filters * sparsity);
  if (filters < 2 || num_prune < 1)
    return TRUE; /* NNI returns the current masks unchanged */
  g_autofree float *scores = g_new (float, filters);
  g_autofree guint8 *keep = g_new (guint8, filters);
  if (!filter_scores (s, w, scores, error))
    return FALSE;
  if (s->kind == FILTER_FPGM) {
    /* Exactly num_prune, the smallest d_f, ties to the lower index, on top
     * of the current mask. */
    g_autofree double *d = g_new (double, filters);
    for (int64_t f = 0; f < filters; f++)
      d[f] = scores[f];
    return nnic_wrapper_prune_lowest (w, d, num_prune, error);
  }
  /* t = the num_prune-th smallest score; keep score > t. */
  g_autofree float *sorted = g_memdup2 (scores, sizeof (float) * (gsize) filters);
  qsort (sorted, (size_t) filters, sizeof (float), cmp_float);
  const float t = sorted[num_prune - 1];
  for (int64_t f = 0; f < filters; f++)
    keep[f] = scores[f] > t;
  return set_filter_masks (w, keep, FALSE, error);
}

static gboolean
filter_channel_scores (gpointer state, NnicCompressor *c, NnicWrapper *w, float *scores,
                       gboolean *ready, GError **error)
{
  (void) c;
  *ready = TRUE;
  return filter_scores (state, w, scores, error);
}

#define FILTER_VTABLE(create_fn)                                                   \
  {                                                                                \
    .struct_size = sizeof (NnicMaskerVTable), .create = create_fn, .destroy = g_free, \
    .calc_mask = filter_calc_mask, .channel_scores = filter_channel_scores,        \
  }

static const NnicMaskerVTable l1_vtable = FILTER_VTABLE (l1_create);
static const NnicMaskerVTable l2_vtable = FILTER_VTABLE (l2_create);
static const NnicMaskerVTable fpgm_vtable = FILTER_VTABLE (fpgm_create);

static const NnicAlgorithmInfo infos[] = {
  {
    .struct_size = sizeof (NnicAlgorithmInfo),
    .kind = NNIC_ALGORITHM_MASKER,
    .name = "l1filter",
    .description = "Conv2d filters of smallest sum |w| go, ties at the threshold too (NNI's L1FilterPruner)",
    .vtable = &l1_vtable,
  },
  {
    .struct_size = sizeof (NnicAlgorithmInfo),
    .kind = NNIC_ALGORITHM_MASKER,
    .name = "l2filter",
    .description = "Conv2d filters of smallest L2 norm go, ties at the threshold too (NNI's L2FilterPruner)",
    .vtable = &l2_vtable,
  },
  {
    .struct_size = sizeof (NnicAlgorithmInfo),
    .kind = NNIC_ALGORITHM_MASKER,
    .name = "fpgm",
    .description = "Conv2d filters nearest the geometric median go, exactly int(F * sparsity) (NNI's FPGMPruner)",
    .vtable = &fpgm_vtable,
  },
};

static gboolean
register_filter (NnicRegistrar *r, GError **error)
{
  for (guint i = 0; i < G_N_ELEMENTS (infos); i++)
    if (!nnic_registrar_add (r, &infos[i], error))
      return FALSE;
  return TRUE;
}

NNIC_PLUGIN_DEFINE ("nnic-filter", "1.0.0", "MIT",
                    "Filter maskers: l1filter, l2filter, fpgm (NNI's L1/L2FilterPruner, FPGMPruner)",
                    register_filter)
