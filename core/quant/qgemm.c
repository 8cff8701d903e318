/* The int8 GEMM: packing, path choice, threads, the C path, and the
 * output stage. The SIMD kernels are in qgemm_avx2.c and qgemm_vnni.c. */
#include "core/quant/qgemm.h"

#include "core/parallel.h"
#include "core/quant/qgemm_kernels.h"

#include <nnic/error.h>

#include <math.h>
#include <omp.h>
#if NNIC_QGEMM_X86
#include <cpuid.h>
#endif
#include <stdlib.h>
#include <string.h>

/* ---- Packing ---- */

NnicQgemmPacked *
nnic_qgemm_pack (const int8_t *w, int n, int k, GError **error)
{
  if (n < 1 || k < 1 || k > NNIC_QGEMM_MAX_K) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "int8 GEMM weights must be n × k with n ≥ 1 and 1 ≤ k ≤ %d "
                 "(int32 accumulators), got %d × %d",
                 NNIC_QGEMM_MAX_K, n, k);
    return NULL;
  }
  const int64_t n_pad = ((int64_t) n + NNIC_QGEMM_NR - 1) / NNIC_QGEMM_NR * NNIC_QGEMM_NR;
  const int64_t k_pad = ((int64_t) k + NNIC_QGEMM_KR - 1) / NNIC_QGEMM_KR * NNIC_QGEMM_KR;
  if (n_pad > INT_MAX) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "int8 GEMM: n = %d is too large", n);
    return NULL;
  }
  void *data = NULL;
  const size_t bytes = (size_t) (n_pad * k_pad);
  if (posix_memalign (&data, 64, bytes) != 0 || data == NULL) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_MEMORY,
                 "out of memory packing %d × %d int8 weights", n, k);
    return NULL;
  }
  int32_t *sums = g_try_new0 (int32_t, n);
  if (!sums) {
    free (data);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_MEMORY,
                 "out of memory packing %d × %d int8 weights", n, k);
    return NULL;
  }
  NnicQgemmPacked *p = g_new0 (NnicQgemmPacked, 1);
  p->n = n;
  p->k = k;
  p->n_pad = (int) n_pad;
  p->k_pad = (int) k_pad;
  p->data = data;
  p->col_sums = sums;

  const int groups = p->k_pad / NNIC_QGEMM_KR;
  int8_t *d = p->data;
  for (int nb = 0; nb < p->n_pad / NNIC_QGEMM_NR; nb++)
    for (int g = 0; g < groups; g++)
      for (int j = 0; j < NNIC_QGEMM_NR; j++)
        for (int t = 0; t < NNIC_QGEMM_KR; t++) {
          const int64_t row = (int64_t) nb * NNIC_QGEMM_NR + j;
          const int64_t col = (int64_t) g * NNIC_QGEMM_KR + t;
          *d++ = row < n && col < k ? w[row * k + col] : 0;
        }
  for (int64_t row = 0; row < n; row++) {
    int32_t s = 0;
    for (int64_t col = 0; col < k; col++)
      s += w[row * k + col];
    sums[row] = s;
  }
  return p;
}

void
nnic_qgemm_packed_free (NnicQgemmPacked *p)
{
  if (!p)
    return;
  free (p->data);
  g_free (p->col_sums);
  g_free (p);
}

/* ---- The C path ---- */

/* Plain loops over the packed weights, one output block of 16 columns at
 * a time. In K group g, W[nb·16 + j][4·g + t] is wg[4·j + t]; the group's
 * 4 values of A are copied first, with zeros past k (the weights there are
 * zero too, but A has no bytes there to read). Written this way, GCC
 * vectorises the loop over j: 7 times the speed of one k at a time. */
static void
kernel_c (int m0, int m1, int nb0, int nb1, const uint8_t *a, int64_t lda,
          const NnicQgemmPacked *w, int32_t *c, int64_t ldc)
{
  const int K = w->k, groups = w->k_pad / NNIC_QGEMM_KR;
  for (int i = m0; i < m1; i++) {
    const uint8_t *row = a + i * lda;
    for (int nb = nb0; nb < nb1; nb++) {
      const int8_t *blk = w->data + (int64_t) nb * NNIC_QGEMM_NR * w->k_pad;
      int32_t acc[NNIC_QGEMM_NR] = { 0 };
      for (int g = 0; g < groups; g++) {
        int16_t x[NNIC_QGEMM_KR] = { 0 };
        for (int t = 0; t < NNIC_QGEMM_KR && 4 * g + t < K; t++)
          x[t] = row[4 * g + t];
        const int8_t *wg = blk + (int64_t) g * NNIC_QGEMM_NR * NNIC_QGEMM_KR;
        for (int j = 0; j < NNIC_QGEMM_NR; j++)
          acc[j] += x[0] * wg[4 * j] + x[1] * wg[4 * j + 1] + x[2] * wg[4 * j + 2] +
                    x[3] * wg[4 * j + 3];
      }
      const int n0 = nb * NNIC_QGEMM_NR, cols = MIN (NNIC_QGEMM_NR, w->n - n0);
      memcpy (c + i * ldc + n0, acc, sizeof (int32_t) * (size_t) cols);
    }
  }
}

/* ---- Paths ---- */

static const char *const path_names[NNIC_QGEMM_N_PATHS] = {
  [NNIC_QGEMM_C] = "c",
  [NNIC_QGEMM_AVX2] = "avx2",
  [NNIC_QGEMM_AVXVNNI] = "avxvnni",
  [NNIC_QGEMM_AVX512VNNI] = "avx512vnni",
};

const char *
nnic_qgemm_path_name (NnicQgemmPath path)
{
  return (unsigned) path < NNIC_QGEMM_N_PATHS ? path_names[path] : NULL;
}

gboolean
nnic_qgemm_path_from_name (const char *name, NnicQgemmPath *path, GError **error)
{
  for (int p = 0; p < NNIC_QGEMM_N_PATHS; p++)
    if (name && strcmp (name, path_names[p]) == 0) {
      *path = (NnicQgemmPath) p;
      return TRUE;
    }
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
               "unknown int8 GEMM path '%s' (choose c, avx2, avxvnni or avx512vnni)",
               name ? name : "(null)");
  return FALSE;
}

#if NNIC_QGEMM_X86
/* CPUID.(EAX=7, ECX=1):EAX bit 4 (clang 14's __builtin_cpu_supports does
 * not know "avxvnni"; the OS part is AVX2's, checked beside it). */
static gboolean
cpu_has_avxvnni (void)
{
  unsigned int eax, ebx, ecx, edx;
  return __get_cpuid_count (7, 1, &eax, &ebx, &ecx, &edx) && (eax >> 4 & 1);
}
#endif

static gboolean
cpu_has_path (NnicQgemmPath path)
{
  switch (path) {
  case NNIC_QGEMM_C:
    return TRUE;
#if NNIC_QGEMM_X86
  /* libgcc's checks include the OS's: XSAVE enabled for ymm / zmm state. */
  case NNIC_QGEMM_AVX2:
    return __builtin_cpu_supports ("avx2") != 0;
  case NNIC_QGEMM_AVXVNNI:
    return __builtin_cpu_supports ("avx2") && cpu_has_avxvnni ();
  case NNIC_QGEMM_AVX512VNNI:
    return __builtin_cpu_supports ("avx512f") && __builtin_cpu_supports ("avx512vnni");
#endif
  default:
    return FALSE;
  }
}

/* Asked once: CPUID can cost microseconds in a virtual machine. */
gboolean
nnic_qgemm_path_supported (NnicQgemmPath path)
{
  static gsize once = 0;
  static gboolean have[NNIC_QGEMM_N_PATHS];
  if (g_once_init_enter (&once)) {
    for (int p = 0; p < NNIC_QGEMM_N_PATHS; p++)
      have[p] = cpu_has_path ((NnicQgemmPath) p);
    g_once_init_leave (&once, 1);
  }
  return (unsigned) path < NNIC_QGEMM_N_PATHS && have[path];
}

/* Fastest first (bench/RESULTS.md, "Integer GEMM"). */
static const NnicQgemmPath preference[] = { NNIC_QGEMM_AVX512VNNI, NNIC_QGEMM_AVXVNNI,
                                            NNIC_QGEMM_AVX2, NNIC_QGEMM_C };

NnicQgemmPath
nnic_qgemm_best_path (void)
{
  for (size_t i = 0; i < G_N_ELEMENTS (preference); i++)
    if (nnic_qgemm_path_supported (preference[i]))
      return preference[i];
  return NNIC_QGEMM_C;
}

static QgemmKernel
path_kernel (NnicQgemmPath path)
{
  switch (path) {
#if NNIC_QGEMM_X86
  case NNIC_QGEMM_AVX2:
    return nnic_qgemm_kernel_avx2;
  case NNIC_QGEMM_AVXVNNI:
    return nnic_qgemm_kernel_avxvnni;
  case NNIC_QGEMM_AVX512VNNI:
    return nnic_qgemm_kernel_avx512vnni;
#endif
  default:
    return kernel_c;
  }
}

/* "c, avx2" : the supported paths, for messages. */
static char *
supported_list (void)
{
  GString *s = g_string_new (NULL);
  for (int p = 0; p < NNIC_QGEMM_N_PATHS; p++)
    if (nnic_qgemm_path_supported ((NnicQgemmPath) p))
      g_string_append_printf (s, "%s%s", s->len ? ", " : "", path_names[p]);
  return g_string_free (s, FALSE);
}

static gboolean
set_unsupported_error (NnicQgemmPath path, const char *what, GError **error)
{
  g_autofree char *list = supported_list ();
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
               "%sthe int8 GEMM path '%s' needs CPU features this machine lacks "
               "(available here: %s)",
               what, path_names[path], list);
  return FALSE;
}

static gint active = -1; /* an NnicQgemmPath once chosen */
static gsize env_read = 0;

/* The path NNIC_QGEMM asks for, or the best one with an error. */
static NnicQgemmPath
path_from_env (GError **error)
{
  const char *env = g_getenv ("NNIC_QGEMM");
  const NnicQgemmPath best = nnic_qgemm_best_path ();
  if (!env || !*env)
    return best;
  NnicQgemmPath p;
  GError *e = NULL;
  if (!nnic_qgemm_path_from_name (env, &p, &e)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "NNIC_QGEMM=%s: %s; using %s", env,
                 e->message, path_names[best]);
    g_error_free (e);
    return best;
  }
  if (!nnic_qgemm_path_supported (p)) {
    g_autofree char *what = g_strdup_printf ("NNIC_QGEMM=%s: ", env);
    set_unsupported_error (p, what, &e);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED, "%s; using %s", e->message,
                 path_names[best]);
    g_error_free (e);
    return best;
  }
  return p;
}

gboolean
nnic_qgemm_init (GError **error)
{
  GError *e = NULL;
  const NnicQgemmPath p = path_from_env (&e);
  g_atomic_int_set (&active, (gint) p);
  if (g_once_init_enter (&env_read))
    g_once_init_leave (&env_read, 1);
  if (e) {
    g_propagate_error (error, e);
    return FALSE;
  }
  return TRUE;
}

gboolean
nnic_qgemm_set_path (NnicQgemmPath path, GError **error)
{
  if ((unsigned) path >= NNIC_QGEMM_N_PATHS) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "invalid int8 GEMM path %d", (int) path);
    return FALSE;
  }
  if (!nnic_qgemm_path_supported (path))
    return set_unsupported_error (path, "", error);
  if (g_once_init_enter (&env_read))
    g_once_init_leave (&env_read, 1);
  g_atomic_int_set (&active, (gint) path);
  return TRUE;
}

NnicQgemmPath
nnic_qgemm_active_path (void)
{
  if (g_once_init_enter (&env_read)) {
    GError *e = NULL;
    const NnicQgemmPath p = path_from_env (&e);
    if (e) {
      g_warning ("%s", e->message);
      g_error_free (e);
    }
    g_atomic_int_set (&active, (gint) p);
    g_once_init_leave (&env_read, 1);
  }
  return (NnicQgemmPath) g_atomic_int_get (&active);
}

const char *
nnic_qgemm_active_name (void)
{
  return path_names[nnic_qgemm_active_path ()];
}

/* ---- Threads ---- */

void
nnic_qgemm_with (NnicQgemmPath path, int threads, int m, const uint8_t *a, int lda,
                 const NnicQgemmPacked *w, int32_t *c, int ldc)
{
  g_return_if_fail (w != NULL && m >= 0 && lda >= w->k && ldc >= w->n);
  if (m == 0)
    return;
  g_return_if_fail (a != NULL && c != NULL);
  if (!nnic_qgemm_path_supported (path)) {
    g_warning ("int8 GEMM path %s is not supported here; using c",
               nnic_qgemm_path_name (path) ? nnic_qgemm_path_name (path) : "(invalid)");
    path = NNIC_QGEMM_C;
  }
  const QgemmKernel kernel = path_kernel (path);
  const int blocks = w->n_pad / NNIC_QGEMM_NR;
  if (threads <= 0) {
    const int64_t macs = (int64_t) m * w->n * w->k;
    threads = macs < NNIC_QGEMM_PARALLEL_MIN || omp_in_parallel () ? 1 : nnic_threads ();
  }
  /* Split the rows while each thread gets a few row tiles (every kernel
   * reuses a block of weights across up to 16 rows), else the column
   * blocks; never more threads than pieces. */
  const gboolean by_rows = m >= 32 * threads || m >= blocks;
  threads = MIN (threads, by_rows ? m : blocks);
  if (threads <= 1) {
    kernel (0, m, 0, blocks, a, lda, w, c, ldc);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    /* The team OpenMP gave, which may be smaller than asked for. */
    const int t = nnic_thread_index (), team = omp_get_num_threads ();
    int64_t lo, hi;
    nnic_split_range (by_rows ? m : blocks, team, t, &lo, &hi);
    if (by_rows)
      kernel ((int) lo, (int) hi, 0, blocks, a, lda, w, c, ldc);
    else
      kernel (0, m, (int) lo, (int) hi, a, lda, w, c, ldc);
  }
}

void
nnic_qgemm (int m, const uint8_t *a, int lda, const NnicQgemmPacked *w, int32_t *c, int ldc)
{
  nnic_qgemm_with (nnic_qgemm_active_path (), 0, m, a, lda, w, c, ldc);
}

/* ---- Sums and the output stage ---- */

void
nnic_qgemm_row_sums (int m, int k, const uint8_t *a, int lda, int32_t *sums)
{
  for (int i = 0; i < m; i++) {
    const uint8_t *row = a + (int64_t) i * lda;
    int32_t s = 0;
    for (int j = 0; j < k; j++)
      s += row[j];
    sums[i] = s;
  }
}

/* The output stage.
 *
 * v = C + bias − zw·rowsum − za·colsum + K·za·zw is split into a row term
 * (−zw·rowsum[i]) and a column term (the rest), both exact integers.
 * Usually all of it fits in int32 — |C| ≤ 255·128·K for any product the
 * kernels make — and the row loop runs on int32 and float (vectorised, and
 * compiled for AVX2 and AVX-512 besides the baseline). When it might not
 * (a huge K with large zero points or bias), the same loop runs on exact
 * doubles instead. Either way (float) v is the exact v rounded once, so
 * both give the same outputs. */

/* Columns at a time, so that the per-column terms live on the stack. */
#define OUT_CHUNK 256

typedef struct {
  double off[OUT_CHUNK]; /* bias − za·colsum + K·za·zw, exact */
  float scale[OUT_CHUNK];
} ColumnTerms;

/* In double, which vectorises (int64 products do not, before AVX-512):
 * every term is an integer below 2⁵³, so exact. */
static void
column_terms (const NnicQgemmPacked *w, const NnicQgemmOutput *o, int n0, int cols,
              ColumnTerms *t)
{
  const double za = o->a_zero_point, kzz = (double) w->k * o->a_zero_point * o->w_zero_point;
  const int32_t *cs = w->col_sums + n0;
  for (int j = 0; j < cols; j++)
    t->off[j] = kzz - za * cs[j];
  if (o->bias)
    for (int j = 0; j < cols; j++)
      t->off[j] += o->bias[n0 + j];
  for (int j = 0; j < cols; j++)
    t->scale[j] = o->scale[o->n_scale == 1 ? 0 : n0 + j];
}

static gboolean
output_args_ok (int m, const NnicQgemmPacked *w, const int32_t *c, int ldc,
                const int32_t *row_sums, const NnicQgemmOutput *o, const void *out, int ldo)
{
  g_return_val_if_fail (w != NULL && o != NULL && m >= 0, FALSE);
  g_return_val_if_fail (m == 0 || (c != NULL && out != NULL), FALSE);
  g_return_val_if_fail (ldc >= w->n && ldo >= w->n, FALSE);
  g_return_val_if_fail (o->scale != NULL && (o->n_scale == 1 || o->n_scale == w->n), FALSE);
  g_return_val_if_fail (o->w_zero_point == 0 || row_sums != NULL || m == 0, FALSE);
  return TRUE;
}

/* Whether C + row term + column term stays within int32 for every row and
 * column (|C| ≤ 255·128·K). */
static gboolean
fits_int32 (int m, const NnicQgemmPacked *w, const int32_t *row_sums, const NnicQgemmOutput *o,
            const ColumnTerms *t, int cols)
{
  double most = 0;
  for (int j = 0; j < cols; j++)
    most = MAX (most, fabs (t->off[j]));
  int64_t row_most = 0;
  if (o->w_zero_point)
    for (int i = 0; i < m; i++)
      row_most = MAX (row_most, (int64_t) row_sums[i]);
  const double zw = fabs ((double) o->w_zero_point);
  return 32640.0 * w->k + zw * (double) row_most + most <= (double) INT32_MAX;
}

#define OUTPUT_CLONES __attribute__ ((target_clones ("avx512f", "avx2", "default")))
#if !NNIC_QGEMM_X86 || defined(__clang__) || defined(__SANITIZE_ADDRESS__)
#undef OUTPUT_CLONES
#define OUTPUT_CLONES
#endif

/* Adding then subtracting 1.5·2²³ rounds a float of magnitude below 2²²
 * to an integer, half to even (the default rounding mode), and unlike
 * nearbyintf it vectorises without SSE4.1. */
#define ROUND_MAGIC 12582912.0f

/* round_half_even (clamp (v · scale + zo, lo, hi)). Two roundings, the
 * product's and the sum's, on every path and clone: nnic builds with
 * -std=c11, under which GCC does not contract them into an FMA. */
static inline uint8_t
requantize_one (float v, float scale, float zo, float lo, float hi)
{
  float y = v * scale;
  y = y + zo;
  /* Clamping to integer bounds commutes with rounding; NaN goes to lo. */
  y = y > lo ? y : lo;
  y = y < hi ? y : hi;
  y = (y + ROUND_MAGIC) - ROUND_MAGIC;
  return (uint8_t) (int) y;
}

/* Rows on int32: v = c + row + off. The sums run on uint32, modulo 2³²,
 * so that no signed integer overflows on the way; the result is exact
 * because v itself is within int32 (fits_int32). */
OUTPUT_CLONES static void
requantize_i32 (int m, int cols, const int32_t *c, int64_t ldc, const int32_t *row_sums,
                int32_t zw, const int32_t *restrict off, const float *restrict scale, float zo,
                float lo, float hi, uint8_t *out, int64_t ldo)
{
  for (int i = 0; i < m; i++) {
    const uint32_t row = zw ? (0u - (uint32_t) zw) * (uint32_t) row_sums[i] : 0;
    const int32_t *restrict ci = c + i * ldc;
    uint8_t *restrict oi = out + i * ldo;
    for (int j = 0; j < cols; j++) {
      const int32_t v = (int32_t) ((uint32_t) ci[j] + row + (uint32_t) off[j]);
      oi[j] = requantize_one ((float) v, scale[j], zo, lo, hi);
    }
  }
}

OUTPUT_CLONES static void
dequantize_i32 (int m, int cols, const int32_t *c, int64_t ldc, const int32_t *row_sums,
                int32_t zw, const int32_t *restrict off, const float *restrict scale, float *out,
                int64_t ldo)
{
  for (int i = 0; i < m; i++) {
    const uint32_t row = zw ? (0u - (uint32_t) zw) * (uint32_t) row_sums[i] : 0;
    const int32_t *restrict ci = c + i * ldc;
    float *restrict oi = out + i * ldo;
    for (int j = 0; j < cols; j++) {
      const int32_t v = (int32_t) ((uint32_t) ci[j] + row + (uint32_t) off[j]);
      oi[j] = (float) v * scale[j];
    }
  }
}

/* Rows shorter than this, stored one after the other, are done several at
 * a time as one long row: vector loops over 20 columns spend most of their
 * time in their scalar remainder. */
#define OUT_SHORT 64

static void
short_rows (gboolean to_u8, int m, int cols, const int32_t *c, const int32_t *row_sums,
            int32_t zw, const int32_t *off, const float *scale, float zo, float lo, float hi,
            void *out)
{
  const int rows = OUT_CHUNK / cols, len = rows * cols;
  int32_t comb[OUT_CHUNK];
  float sc[OUT_CHUNK];
  for (int r = 0; r < rows; r++)
    for (int j = 0; j < cols; j++) {
      comb[r * cols + j] = off[j];
      sc[r * cols + j] = scale[j];
    }
  for (int i0 = 0; i0 < m; i0 += rows) {
    const int n = MIN (rows, m - i0) * cols;
    /* The row terms, when the weights have a zero point. */
    if (zw)
      for (int r = 0; r < MIN (rows, m - i0); r++) {
        const uint32_t row = (0u - (uint32_t) zw) * (uint32_t) row_sums[i0 + r];
        for (int j = 0; j < cols; j++)
          comb[r * cols + j] = (int32_t) ((uint32_t) off[j] + row);
      }
    const int32_t *ci = c + (int64_t) i0 * cols;
    if (to_u8)
      requantize_i32 (1, n, ci, len, NULL, 0, comb, sc, zo, lo, hi,
                      (uint8_t *) out + (int64_t) i0 * cols, len);
    else
      dequantize_i32 (1, n, ci, len, NULL, 0, comb, sc, (float *) out + (int64_t) i0 * cols, len);
  }
}

/* Both, for every row of a chunk of columns; `to_u8` picks the output. */
static void
output_chunk (gboolean to_u8, int m, const NnicQgemmPacked *w, const int32_t *c, int ldc,
              const int32_t *row_sums, const NnicQgemmOutput *o, const ColumnTerms *t, int n0,
              int cols, void *out, int ldo)
{
  const int32_t zw = o->w_zero_point;
  const float zo = (float) o->out_zero_point, lo = (float) o->out_min, hi = (float) o->out_max;
  if (fits_int32 (m, w, row_sums, o, t, cols)) {
    int32_t off[OUT_CHUNK];
    for (int j = 0; j < cols; j++)
      off[j] = (int32_t) t->off[j];
    if (cols < OUT_SHORT && ldc == cols && ldo == cols) {
      short_rows (to_u8, m, cols, c, row_sums, zw, off, t->scale, zo, lo, hi, out);
      return;
    }
    if (to_u8)
      requantize_i32 (m, cols, c + n0, ldc, row_sums, zw, off, t->scale, zo, lo, hi,
                      (uint8_t *) out + n0, ldo);
    else
      dequantize_i32 (m, cols, c + n0, ldc, row_sums, zw, off, t->scale, (float *) out + n0, ldo);
    return;
  }
  /* Exact in double: every term is an integer below 2⁵³. */
  for (int i = 0; i < m; i++) {
    const double row = zw ? -(double) zw * row_sums[i] : 0.0;
    const int32_t *ci = c + (int64_t) i * ldc + n0;
    for (int j = 0; j < cols; j++) {
      const float v = (float) ((double) ci[j] + (row + t->off[j]));
      if (to_u8)
        ((uint8_t *) out)[(int64_t) i * ldo + n0 + j] = requantize_one (v, t->scale[j], zo, lo, hi);
      else
        ((float *) out)[(int64_t) i * ldo + n0 + j] = v * t->scale[j];
    }
  }
}

void
nnic_qgemm_requantize (int m, const NnicQgemmPacked *w, const int32_t *c, int ldc,
                       const int32_t *row_sums, const NnicQgemmOutput *o, uint8_t *out, int ldo)
{
  if (!output_args_ok (m, w, c, ldc, row_sums, o, out, ldo))
    return;
  g_return_if_fail (0 <= o->out_min && o->out_min <= o->out_max && o->out_max <= 255);
  ColumnTerms t;
  for (int n0 = 0; n0 < w->n; n0 += OUT_CHUNK) {
    const int cols = MIN (OUT_CHUNK, w->n - n0);
    column_terms (w, o, n0, cols, &t);
    output_chunk (TRUE, m, w, c, ldc, row_sums, o, &t, n0, cols, out, ldo);
  }
}

void
nnic_qgemm_dequantize (int m, const NnicQgemmPacked *w, const int32_t *c, int ldc,
                       const int32_t *row_sums, const NnicQgemmOutput *o, float *out, int ldo)
{
  if (!output_args_ok (m, w, c, ldc, row_sums, o, out, ldo))
    return;
  ColumnTerms t;
  for (int n0 = 0; n0 < w->n; n0 += OUT_CHUNK) {
    const int cols = MIN (OUT_CHUNK, w->n - n0);
    column_terms (w, o, n0, cols, &t);
    output_chunk (FALSE, m, w, c, ldc, row_sums, o, &t, n0, cols, out, ldo);
  }
}
