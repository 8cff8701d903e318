/* Integer inference (nnic_model_quantize_int8) and the fake-quantized
 * float model it stands for (nnic_model_fake_quantize); see
 * include/nnic/quant.h.
 *
 * A quantized Conv2d or Linear node gets another op (node->op) whose state
 * (node->state) holds the packed int8 weights and the quantization of its
 * input and output; the float op's own state is kept in it and finalized
 * with it. Its forward:
 *
 *   1. input x (float) → uint8: a = clamp (round (zp + x / s), qmin, qmax)
 *      + off, with off = 128 for signed grids (so that a is 0..255 and
 *      the uint8 zero point is za = zp + off); for convolutions stored
 *      NHWC, so that the unrolled rows below are runs of channels;
 *   2. convolutions: im2col on uint8, one row per output pixel, columns in
 *      the order (group, kh, kw, channel), the padding set to za (the
 *      quantized zero) — the weights are packed in the same order;
 *   3. int32 accumulation on the int8 GEMM (core/quant/qgemm.h), one
 *      product per group; weights stored as uint8 with zero point zw_u are
 *      shifted to int8 (w − 128) with zw = zw_u − 128, which leaves every
 *      w − zw unchanged; the output stage subtracts the zero-point terms
 *      exactly:  Σ (a − za)(w − zw) = C − zw·Σa − za·Σw + K·za·zw;
 *   4. times sa·sw, plus the float bias, in NCHW; then the layer's output
 *      fake quantization when it has one.
 *
 * Convolutions run in chunks of output rows, one chunk per thread (each
 * GEMM single-threaded), like the float layers (core/ops/conv2d.c). The
 * arithmetic does not depend on the chunking or on the GEMM path: every
 * output is the exact integer sum rounded once to float, times the scale,
 * plus the bias. */
#include "core/quant/qmodel.h"
#include "core/quant/qgemm.h"
#include "core/ops/kernels.h"
#include "core/parallel.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#include <xmmintrin.h>
#endif

/* ---- activation quantization ---- */

typedef struct {
  float scale, zp, qmin, qmax;
  float off;       /* 0, or 128 for a signed grid */
  int32_t za;      /* the uint8 zero point: zp + off */
  gboolean binary;
} ActQ;

static ActQ
act_from_param (const NnicQParam *p)
{
  const float off = p->is_signed ? 128.0f : 0.0f;
  return (ActQ) {
    .scale = p->scale,
    .zp = (float) p->zero_point,
    .qmin = (float) nnic_qparam_qmin (p),
    .qmax = (float) nnic_qparam_qmax (p),
    .off = off,
    .za = p->zero_point + (int32_t) off,
    .binary = p->binary,
  };
}

/* The elementwise loops are built for AVX-512 and AVX2 too and chosen at
 * load time (as qgemm.c's output stage): 16 floats a step instead of SSE2's 4. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define QCLONES __attribute__ ((target_clones ("avx512f", "avx2", "default")))
#else
#define QCLONES
#endif

/* q[i] = the uint8 value of x[i]: NaN goes to qmin, a binary grid takes the sign. */
QCLONES static void
quantize_row (const float *restrict x, uint8_t *restrict q, int64_t n, const ActQ *a)
{
  const float zp = a->zp, s = a->scale, lo = a->qmin, hi = a->qmax, off = a->off;
  if (a->binary) {
    for (int64_t i = 0; i < n; i++)
      q[i] = (uint8_t) (int32_t) ((x[i] < 0.0f ? -1.0f : 1.0f) + off);
    return;
  }
  for (int64_t i = 0; i < n; i++) {
    float t = zp + x[i] / s;
    t = t >= lo ? t : lo;
    t = t <= hi ? t : hi;
    q[i] = (uint8_t) (int32_t) (nnic_qround (t) + off);
  }
}

QCLONES static void
fake_row (float *x, int64_t n, const ActQ *a)
{
  const float zp = a->zp, s = a->scale, lo = a->qmin, hi = a->qmax;
  if (a->binary) {
    for (int64_t i = 0; i < n; i++)
      x[i] = nnic_qfake (x[i], s, zp, lo, hi, TRUE);
    return;
  }
  for (int64_t i = 0; i < n; i++)
    x[i] = nnic_qfake (x[i], s, zp, lo, hi, FALSE);
}

/* The min and max of x, folded into *lo and *hi, in vectors of 16 lanes
 * (GCC's vector extension: a strict compiler vectorises no float min/max
 * reduction by itself). NaN is skipped; infinities are kept, the caller
 * looks again then. */
typedef float RangeVf __attribute__ ((vector_size (64)));
typedef int32_t RangeVi __attribute__ ((vector_size (64)));
#define RANGE_LANES 16

QCLONES static void
range_row (const float *restrict x, int64_t n, float *lo_io, float *hi_io)
{
  RangeVf lo, hi;
  for (int j = 0; j < RANGE_LANES; j++) {
    lo[j] = *lo_io;
    hi[j] = *hi_io;
  }
  int64_t i = 0;
  for (; i + RANGE_LANES <= n; i += RANGE_LANES) {
    RangeVf v;
    memcpy (&v, x + i, sizeof v);
    const RangeVi lt = v < lo, gt = v > hi;
    lo = (RangeVf) (((RangeVi) v & lt) | ((RangeVi) lo & ~lt));
    hi = (RangeVf) (((RangeVi) v & gt) | ((RangeVi) hi & ~gt));
  }
  float l = *lo_io, h = *hi_io;
  for (int j = 0; j < RANGE_LANES; j++) {
    l = lo[j] < l ? lo[j] : l;
    h = hi[j] > h ? hi[j] : h;
  }
  for (; i < n; i++) {
    l = x[i] < l ? x[i] : l;
    h = x[i] > h ? x[i] : h;
  }
  *lo_io = l;
  *hi_io = h;
}

/* The same, finite values only. */
static void
finite_range (const float *x, int64_t n, float *lo, float *hi)
{
  for (int64_t i = 0; i < n; i++)
    if (x[i] >= -FLT_MAX && x[i] <= FLT_MAX) {
      *lo = x[i] < *lo ? x[i] : *lo;
      *hi = x[i] > *hi ? x[i] : *hi;
    }
}

static int
elementwise_threads (int64_t n)
{
  return n >= OP_PARALLEL_MIN ? (int) MIN ((int64_t) nnic_threads (), n / (OP_PARALLEL_MIN / 2)) : 1;
}

/* Fake-quantizes n floats in place. */
static void
fake_quantize (float *x, int64_t n, const ActQ *q)
{
  const int threads = elementwise_threads (n);
  if (threads <= 1) {
    fake_row (x, n, q);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    int64_t lo, hi;
    nnic_split_range (n, threads, nnic_thread_index (), &lo, &hi);
    fake_row (x + lo, hi - lo, q);
  }
}

/* Asymmetric uint8 from the finite min and max of the batch, widened to
 * hold 0 (QAT's update_quantization_param with 8 bits). */
static ActQ
act_dynamic (const float *x, int64_t n)
{
  float lo = 0.0f, hi = 0.0f;
  const int threads = elementwise_threads (n);
  if (threads <= 1) {
    range_row (x, n, &lo, &hi);
  } else {
    float los[threads], his[threads];
#pragma omp parallel num_threads(threads)
    {
      const int t = nnic_thread_index ();
      int64_t a, b;
      nnic_split_range (n, threads, t, &a, &b);
      los[t] = his[t] = 0.0f;
      range_row (x + a, b - a, &los[t], &his[t]);
    }
    for (int t = 0; t < threads; t++) {
      lo = MIN (lo, los[t]);
      hi = MAX (hi, his[t]);
    }
  }
  if (lo < -FLT_MAX || hi > FLT_MAX) { /* an infinity: the finite range */
    lo = hi = 0.0f;
    finite_range (x, n, &lo, &hi);
  }
  float s = (hi - lo) / 255.0f;
  if (!(s > 0.0f && s <= FLT_MAX))
    s = 1.0f; /* all zeros */
  float z = nnic_qround (-lo / s);
  z = z < 0.0f ? 0.0f : z > 255.0f ? 255.0f : z;
  return (ActQ) { .scale = s, .zp = z, .qmin = 0.0f, .qmax = 255.0f, .off = 0.0f, .za = (int32_t) z };
}

/* ---- the integer layers ---- */

typedef struct {
  const NnicOp *float_op;
  void *float_state;
  int groups;
  NnicQgemmPacked **packed; /* one per group */
  int32_t zw;               /* int8 weight zero point */
  float sw;                 /* weight scale */
  gboolean dynamic;         /* input quantized per batch */
  ActQ in;                  /* else with this */
  gboolean has_out;
  ActQ out;
  /* convolutions, set in reshape */
  int64_t chunk_rows, n_chunks, slots;
  int64_t a_stride, c_stride, f_stride; /* per-slot elements in cache[1..3] */
  int64_t xq_stride;                    /* cache[0]: NHWC input, then NCHW */
  int gemm_threads;                     /* for nnic_qgemm_with: 1, or 0 (its choice) */
} QState;

static void
qstate_free (QState *st)
{
  for (int g = 0; st->packed && g < st->groups; g++)
    nnic_qgemm_packed_free (st->packed[g]);
  g_free (st->packed);
  g_free (st);
}

static void
qnode_finalize (NnicNode *node)
{
  QState *st = node->state;
  if (!st)
    return;
  node->state = st->float_state;
  st->float_state = NULL;
  if (st->float_op->finalize)
    st->float_op->finalize (node);
  qstate_free (st);
}

static const float *
bias_of (const NnicNode *node)
{
  return node->n_params > 1 ? node->param[1]->f32 : NULL;
}

/* Bytes the copies of the unrolled input may write past a run (copy_run). */
#define RUN_SLACK 16

typedef struct {
  int64_t B, C, H, W, OC, OH, OW, KH, KW, SH, SW, DH, DW, PT, PL, G, Cg, OCg;
  int64_t Kg, Kt; /* columns of one group, of all */
  int64_t lda;    /* bytes from row to row of the unrolled input: Kt and room for RUN_SLACK */
  int64_t M;      /* rows: B·OH·OW */
} QGeom;

static QGeom
qgeom (const NnicNode *node)
{
  const NnicConv2dSpec *s = NODE_SPEC (node, NnicConv2dSpec);
  const NnicNode *in = node->inputs[0];
  QGeom g = {
    .B = node->batch, .C = in->shape[0], .H = in->shape[1], .W = in->shape[2],
    .OC = node->shape[0], .OH = node->shape[1], .OW = node->shape[2],
    .KH = s->kernel_h, .KW = s->kernel_w, .SH = s->stride_h, .SW = s->stride_w,
    .DH = s->dilation_h, .DW = s->dilation_w, .PT = s->pads[0], .PL = s->pads[1], .G = s->groups,
  };
  g.Cg = g.C / g.G;
  g.OCg = g.OC / g.G;
  g.Kg = g.KH * g.KW * g.Cg;
  g.Kt = g.G * g.Kg;
  g.lda = g.Kt + RUN_SLACK;
  g.M = g.B * g.OH * g.OW;
  return g;
}

/* Bytes of a chunk's rows: unrolled input, int32 sums, floats, row sums. */
#define CHUNK_BYTES ((int64_t) 256 << 10)
#define MIN_CHUNK_ROWS 64
/* Multiply-adds from which a convolution that one chunk would hold is
 * split over the threads anyway (batch 1): below, waking them costs more
 * than the quantization, unrolling and transposition they share. */
#define CONV_PARALLEL_MIN ((int64_t) 1 << 20)
#define ALIGN64(n) (((n) + 63) / 64 * 64)

static gboolean
qconv_reshape (NnicNode *node, int64_t batch, GError **error)
{
  (void) batch;
  QState *st = node->state;
  const QGeom g = qgeom (node);
  const int threads = nnic_threads ();
  const int64_t per_row = g.lda + 8 * g.OC + 4 * g.G;
  int64_t rows = MAX (MIN_CHUNK_ROWS, CHUNK_BYTES / per_row);
  int64_t chunks = (g.M + rows - 1) / rows;
  /* Enough work for all threads even when one chunk would hold it (batch 1). */
  if (chunks < threads && g.M >= (int64_t) threads * 32 && g.M * g.Kg * g.OC >= CONV_PARALLEL_MIN)
    chunks = threads;
  if (chunks > 1)
    chunks = (chunks + threads - 1) / threads * threads;
  rows = (g.M + chunks - 1) / chunks;
  chunks = (g.M + rows - 1) / rows;
  if (rows > INT_MAX / MAX (g.lda, g.OC)) {
    op_error (node, error, NNIC_ERROR_SHAPE, "too many output rows per chunk for the int8 GEMM");
    return FALSE;
  }
  st->gemm_threads = chunks == 1 && g.M * g.Kg * g.OC < CONV_PARALLEL_MIN ? 1 : 0;
  st->chunk_rows = rows;
  st->n_chunks = chunks;
  st->slots = MIN ((int64_t) threads, chunks);
  st->a_stride = ALIGN64 (rows * g.lda);
  st->c_stride = ALIGN64 (rows * g.OC + rows * g.G);
  st->f_stride = ALIGN64 (rows * g.OC);
  st->xq_stride = ALIGN64 (g.B * g.H * g.W * g.C + RUN_SLACK);
  const int64_t xq[1] = { 2 * st->xq_stride }; /* NHWC, then the NCHW it is made from */
  const int64_t a[1] = { st->slots * st->a_stride };
  const int64_t c[1] = { st->slots * st->c_stride };
  const int64_t f[1] = { st->slots * st->f_stride };
  return nnic_node_cache (node, 0, NNIC_DTYPE_U8, 1, xq, error) &&
         nnic_node_cache (node, 1, NNIC_DTYPE_U8, 1, a, error) &&
         nnic_node_cache (node, 2, NNIC_DTYPE_I32, 1, c, error) &&
         nnic_node_cache (node, 3, NNIC_DTYPE_F32, 1, f, error);
}

/* ---- transpositions (SSE2, which every x86-64 has; plain C elsewhere) ---- */

/* dst[p][c] = src[c][p] for a [C][HW] plane of bytes, 16×16 blocks at a time. */
static void
transpose_bytes (const uint8_t *restrict src, int64_t C, int64_t HW, uint8_t *restrict dst)
{
  int64_t c0 = 0;
#ifdef __SSE2__
  for (; c0 + 16 <= C; c0 += 16) {
    int64_t p0 = 0;
    for (; p0 + 16 <= HW; p0 += 16) {
      __m128i r[16], t[16];
      for (int i = 0; i < 16; i++)
        r[i] = _mm_loadu_si128 ((const __m128i *) (src + (c0 + i) * HW + p0));
      for (int i = 0; i < 8; i++) {
        t[i] = _mm_unpacklo_epi8 (r[2 * i], r[2 * i + 1]);
        t[i + 8] = _mm_unpackhi_epi8 (r[2 * i], r[2 * i + 1]);
      }
      /* t[i]: channels 2i, 2i+1 of pixels 0-7 (i < 8; 8-15 for t[i + 8]), in 16-bit units;
       * then channel quads of 4 pixels in 32-bit units, channel octets of 2
       * pixels in 64-bit units, and one pixel per register. */
      for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++) {
          r[h * 8 + i] = _mm_unpacklo_epi16 (t[h * 8 + 2 * i], t[h * 8 + 2 * i + 1]);
          r[h * 8 + i + 4] = _mm_unpackhi_epi16 (t[h * 8 + 2 * i], t[h * 8 + 2 * i + 1]);
        }
      for (int h = 0; h < 4; h++)
        for (int i = 0; i < 2; i++) {
          t[h * 4 + i] = _mm_unpacklo_epi32 (r[h * 4 + 2 * i], r[h * 4 + 2 * i + 1]);
          t[h * 4 + i + 2] = _mm_unpackhi_epi32 (r[h * 4 + 2 * i], r[h * 4 + 2 * i + 1]);
        }
      for (int h = 0; h < 8; h++) {
        r[h * 2] = _mm_unpacklo_epi64 (t[h * 2], t[h * 2 + 1]);
        r[h * 2 + 1] = _mm_unpackhi_epi64 (t[h * 2], t[h * 2 + 1]);
      }
      /* r[k]: the 16 channels of pixel p0 + k. */
      for (int k = 0; k < 16; k++)
        _mm_storeu_si128 ((__m128i *) (dst + (p0 + k) * C + c0), r[k]);
    }
    for (; p0 < HW; p0++)
      for (int64_t c = c0; c < c0 + 16; c++)
        dst[p0 * C + c] = src[c * HW + p0];
  }
#endif
  if (c0 < C)
    for (int64_t p = 0; p < HW; p++)
      for (int64_t c = c0; c < C; c++)
        dst[p * C + c] = src[c * HW + p];
}

/* x [B, C, H, W] → xq [B, H, W, C]: quantized in long vector loops into
 * `tmp` (NCHW), then transposed to the pixels' runs of channels. */
static void
quantize_nhwc (const QGeom *g, const float *restrict x, uint8_t *restrict xq, uint8_t *restrict tmp,
               const ActQ *q)
{
  const int64_t HW = g->H * g->W, n = g->B * g->C * HW;
  uint8_t *nchw = g->C == 1 ? xq : tmp;
  const int threads = elementwise_threads (n);
  if (threads <= 1) {
    quantize_row (x, nchw, n, q);
  } else {
#pragma omp parallel num_threads(threads)
    {
      int64_t lo, hi;
      nnic_split_range (n, threads, nnic_thread_index (), &lo, &hi);
      quantize_row (x + lo, nchw + lo, hi - lo, q);
    }
  }
  if (g->C == 1)
    return;
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
  for (int64_t b = 0; b < g->B; b++)
    transpose_bytes (tmp + b * g->C * HW, g->C, HW, xq + b * g->C * HW);
}

/* Runs of bytes in 16-byte moves (8 for the shortest): each may write,
 * and read, up to RUN_SLACK − 1 bytes past its end, which land in the
 * next run of the row (written after it) or in the row's slack; the input
 * has that slack at its end too. Long runs with memcpy. */
static inline void
copy_run (uint8_t *dst, const uint8_t *src, int64_t n)
{
  if (n <= 8) {
    if (n > 0)
      memcpy (dst, src, 8);
  } else if (n <= 512) {
    for (int64_t i = 0; i < n; i += 16)
      memcpy (dst + i, src + i, 16);
  } else {
    memcpy (dst, src, (size_t) n);
  }
}

static inline void
fill_run (uint8_t *dst, uint8_t v, int64_t n)
{
  uint8_t v16[16];
  memset (v16, v, sizeof v16);
  if (n <= 8) {
    if (n > 0)
      memcpy (dst, v16, 8);
  } else if (n <= 512) {
    for (int64_t i = 0; i < n; i += 16)
      memcpy (dst + i, v16, 16);
  } else {
    memset (dst, v, (size_t) n);
  }
}

/* Row r's KW·C bytes for kernel row kh when the input row is `src` (NULL:
 * in the padding): the pixels of the window inside the input, za around. */
static inline void
window_row (uint8_t *dst, const uint8_t *src, int64_t iw0, int64_t KW, int64_t W, int64_t C, uint8_t za)
{
  if (!src) {
    fill_run (dst, za, KW * C);
    return;
  }
  if (iw0 >= 0 && iw0 + KW <= W) {
    copy_run (dst, src + iw0 * C, KW * C);
    return;
  }
  int64_t lo = iw0 < 0 ? -iw0 : 0, hi = MIN (KW, W - iw0);
  hi = MAX (hi, 0);
  lo = MIN (lo, hi);
  fill_run (dst, za, lo * C);
  copy_run (dst + lo * C, src + (iw0 + lo) * C, (hi - lo) * C);
  fill_run (dst + hi * C, za, (KW - hi) * C);
}

/* Rows [r0, r1) of the unrolled input: a [r1 − r0, Kt] (rows lda apart),
 * columns (g, kh, kw, c), the padding set to the quantized zero za.
 * Without groups or horizontal dilation, a kernel row's KW·C bytes are one
 * run of the NHWC input: those go output row by output row (b, oh), kernel
 * row by kernel row, so that the inner loop is a run of copies from one
 * input row. (The geometry is read into locals: stores through uint8_t
 * pointers could alias it.) */
static void
im2col_rows (const QGeom *geom, const uint8_t *xq, uint8_t za, int64_t r0, int64_t r1, uint8_t *a)
{
  const int64_t H = geom->H, W = geom->W, C = geom->C, OH = geom->OH, OW = geom->OW, KH = geom->KH,
                KW = geom->KW, SH = geom->SH, SW = geom->SW, DH = geom->DH, DW = geom->DW, PT = geom->PT,
                PL = geom->PL, G = geom->G, Cg = geom->Cg, lda = geom->lda;
  const int64_t OHW = OH * OW;
  if (G == 1 && DW == 1) {
    for (int64_t r = r0; r < r1;) {
      const int64_t b = r / OHW, oh = (r % OHW) / OW, ow0 = r % OW, n = MIN (OW - ow0, r1 - r);
      const uint8_t *plane = xq + b * H * W * C;
      uint8_t *base = a + (r - r0) * lda;
      for (int64_t kh = 0; kh < KH; kh++) {
        const int64_t ih = oh * SH - PT + kh * DH;
        const uint8_t *src = ih >= 0 && ih < H ? plane + ih * W * C : NULL;
        uint8_t *dst = base + kh * KW * C;
        for (int64_t j = 0; j < n; j++, dst += lda)
          window_row (dst, src, (ow0 + j) * SW - PL, KW, W, C, za);
      }
      r += n;
    }
    return;
  }
  int64_t b = r0 / OHW, oh = (r0 % OHW) / OW, ow = r0 % OW;
  for (int64_t r = r0; r < r1; r++) {
    uint8_t *dst = a + (r - r0) * lda;
    const int64_t iw0 = ow * SW - PL;
    const uint8_t *plane = xq + b * H * W * C;
    for (int64_t gi = 0; gi < G; gi++)
      for (int64_t kh = 0; kh < KH; kh++) {
        const int64_t ih = oh * SH - PT + kh * DH;
        if (ih < 0 || ih >= H) {
          fill_run (dst, za, KW * Cg);
          dst += KW * Cg;
          continue;
        }
        const uint8_t *row = plane + ih * W * C + gi * Cg;
        for (int64_t kw = 0; kw < KW; kw++, dst += Cg) {
          const int64_t iw = iw0 + kw * DW;
          if (iw < 0 || iw >= W)
            fill_run (dst, za, Cg);
          else
            copy_run (dst, row + iw * C, Cg);
        }
      }
    if (++ow == OW) {
      ow = 0;
      if (++oh == OH) {
        oh = 0;
        b++;
      }
    }
  }
}

/* Output rows r0..r1 from tmp [rows, OC] into out NCHW: transposed 4×4
 * at a time, then the bias added and the output fake-quantized (when the
 * layer has a calibration) along the contiguous rows of each channel. */
#define SCATTER_TILE 64

QCLONES static void
bias_fake_rows (float *dst, int64_t OC, int64_t n, int64_t OHW, const float *restrict bias, const ActQ *fq)
{
  for (int64_t oc = 0; oc < OC; oc++) {
    float *restrict d = dst + oc * OHW;
    const float bv = bias ? bias[oc] : 0.0f;
    if (bias)
      for (int64_t j = 0; j < n; j++)
        d[j] += bv;
    if (fq && fq->binary)
      for (int64_t j = 0; j < n; j++)
        d[j] = nnic_qfake (d[j], fq->scale, fq->zp, fq->qmin, fq->qmax, TRUE);
    else if (fq)
      for (int64_t j = 0; j < n; j++)
        d[j] = nnic_qfake (d[j], fq->scale, fq->zp, fq->qmin, fq->qmax, FALSE);
  }
}

/* dst[oc][j] = src[j][oc], j < n, oc < OC (dst rows OHW apart: four at a
 * time, along j, since rows a power of two apart share cache sets). */
static void
transpose_floats (const float *restrict src, int64_t OC, int64_t n, float *restrict dst, int64_t OHW)
{
  int64_t oc = 0;
#ifdef __SSE2__
  for (; oc + 4 <= OC; oc += 4) {
    int64_t j0 = 0;
    for (; j0 + 4 <= n; j0 += 4) {
      __m128 r0 = _mm_loadu_ps (src + (j0 + 0) * OC + oc), r1 = _mm_loadu_ps (src + (j0 + 1) * OC + oc),
             r2 = _mm_loadu_ps (src + (j0 + 2) * OC + oc), r3 = _mm_loadu_ps (src + (j0 + 3) * OC + oc);
      _MM_TRANSPOSE4_PS (r0, r1, r2, r3);
      _mm_storeu_ps (dst + (oc + 0) * OHW + j0, r0);
      _mm_storeu_ps (dst + (oc + 1) * OHW + j0, r1);
      _mm_storeu_ps (dst + (oc + 2) * OHW + j0, r2);
      _mm_storeu_ps (dst + (oc + 3) * OHW + j0, r3);
    }
    for (int64_t o = oc; o < oc + 4; o++)
      for (int64_t j = j0; j < n; j++)
        dst[o * OHW + j] = src[j * OC + o];
  }
#endif
  for (; oc < OC; oc++)
    for (int64_t j = 0; j < n; j++)
      dst[oc * OHW + j] = src[j * OC + oc];
}

static void
scatter_rows (const QGeom *g, const QState *st, const float *tmp, const float *bias, int64_t r0, int64_t r1,
              float *out)
{
  const int64_t OHW = g->OH * g->OW;
  for (int64_t r = r0; r < r1;) {
    const int64_t b = r / OHW, p0 = r % OHW, n = MIN (MIN (OHW - p0, r1 - r), SCATTER_TILE);
    float *dst = out + b * g->OC * OHW + p0;
    transpose_floats (tmp + (r - r0) * g->OC, g->OC, n, dst, OHW);
    if (bias || st->has_out)
      bias_fake_rows (dst, g->OC, n, OHW, bias, st->has_out ? &st->out : NULL);
    r += n;
  }
}

static void
conv_chunk (NnicNode *node, const QGeom *g, const QState *st, const ActQ *in, int64_t r0, int64_t r1,
            int slot)
{
  const int nr = (int) (r1 - r0);
  uint8_t *a = node->cache[1]->u8 + slot * st->a_stride;
  int32_t *acc = node->cache[2]->i32 + slot * st->c_stride;
  int32_t *row_sums = acc + (int64_t) nr * g->OC;
  float *tmp = node->cache[3]->f32 + slot * st->f_stride;
  im2col_rows (g, node->cache[0]->u8, (uint8_t) in->za, r0, r1, a);
  const float scale = in->scale * st->sw;
  const NnicQgemmOutput o = { .a_zero_point = in->za, .w_zero_point = st->zw, .scale = &scale, .n_scale = 1 };
  for (int64_t gi = 0; gi < g->G; gi++) {
    const uint8_t *ag = a + gi * g->Kg;
    /* One chunk: the GEMM may split over the threads when it is worth it. */
    nnic_qgemm_with (nnic_qgemm_active_path (), st->gemm_threads, nr, ag, (int) g->lda, st->packed[gi],
                     acc + gi * g->OCg, (int) g->OC);
    if (st->zw)
      nnic_qgemm_row_sums (nr, (int) g->Kg, ag, (int) g->lda, row_sums);
    nnic_qgemm_dequantize (nr, st->packed[gi], acc + gi * g->OCg, (int) g->OC, st->zw ? row_sums : NULL, &o,
                           tmp + gi * g->OCg, (int) g->OC);
  }
  scatter_rows (g, st, tmp, bias_of (node), r0, r1, node->out->f32);
}

static void
qconv_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const QState *st = node->state;
  const QGeom g = qgeom (node);
  const float *x = node->inputs[0]->out->f32;
  const ActQ in = st->dynamic ? act_dynamic (x, g.B * g.C * g.H * g.W) : st->in;
  quantize_nhwc (&g, x, node->cache[0]->u8, node->cache[0]->u8 + st->xq_stride, &in);
  const int64_t rows = st->chunk_rows, chunks = st->n_chunks;
  if (chunks == 1) {
    conv_chunk (node, &g, st, &in, 0, g.M, 0);
    return;
  }
#pragma omp parallel for schedule(static) num_threads((int) st->slots)
  for (int64_t ci = 0; ci < chunks; ci++)
    conv_chunk (node, &g, st, &in, ci * rows, MIN (g.M, (ci + 1) * rows), nnic_thread_index ());
}

/* The GEMM's rows: a Linear applies to the last axis of any per-sample
 * shape ([T, C] tokens are T rows per sample). */
static int64_t
qlinear_rows (const NnicNode *node, int64_t batch)
{
  return batch * (op_sample_numel (node->inputs[0]) / NODE_SPEC (node, NnicLinearSpec)->in_features);
}

static gboolean
qlinear_reshape (NnicNode *node, int64_t batch, GError **error)
{
  const int64_t IN = NODE_SPEC (node, NnicLinearSpec)->in_features, OUT = NODE_SPEC (node, NnicLinearSpec)->out_features;
  const int64_t rows = qlinear_rows (node, batch);
  const int64_t a[1] = { rows * IN }, c[1] = { rows * OUT + rows };
  return op_check_blas_dim (node, rows, error) && nnic_node_cache (node, 1, NNIC_DTYPE_U8, 1, a, error) &&
         nnic_node_cache (node, 2, NNIC_DTYPE_I32, 1, c, error);
}

static void
qlinear_forward (NnicNode *node, gboolean training)
{
  (void) training;
  const QState *st = node->state;
  const int B = (int) qlinear_rows (node, node->batch), IN = NODE_SPEC (node, NnicLinearSpec)->in_features,
            OUT = NODE_SPEC (node, NnicLinearSpec)->out_features; /* B: the rows */
  const float *x = node->inputs[0]->out->f32;
  const int64_t n = (int64_t) B * IN;
  const ActQ in = st->dynamic ? act_dynamic (x, n) : st->in;
  uint8_t *a = node->cache[1]->u8;
  const int threads = elementwise_threads (n);
  if (threads <= 1) {
    quantize_row (x, a, n, &in);
  } else {
#pragma omp parallel num_threads(threads)
    {
      int64_t lo, hi;
      nnic_split_range (n, threads, nnic_thread_index (), &lo, &hi);
      quantize_row (x + lo, a + lo, hi - lo, &in);
    }
  }
  int32_t *acc = node->cache[2]->i32, *row_sums = acc + (int64_t) B * OUT;
  nnic_qgemm (B, a, IN, st->packed[0], acc, OUT);
  if (st->zw)
    nnic_qgemm_row_sums (B, IN, a, IN, row_sums);
  const float scale = in.scale * st->sw;
  const NnicQgemmOutput o = { .a_zero_point = in.za, .w_zero_point = st->zw, .scale = &scale, .n_scale = 1 };
  float *out = node->out->f32;
  nnic_qgemm_dequantize (B, st->packed[0], acc, OUT, st->zw ? row_sums : NULL, &o, out, OUT);
  const float *bias = bias_of (node);
  if (bias)
    for (int b = 0; b < B; b++) {
      float *y = out + (int64_t) b * OUT;
      for (int j = 0; j < OUT; j++)
        y[j] += bias[j];
    }
  if (st->has_out)
    fake_quantize (out, (int64_t) B * OUT, &st->out);
}

/* No backward: nnic_model_backward refuses a model with such a node. */
static const NnicOp nnic_op_qconv2d = {
  .type = "Conv2d",
  .reshape = qconv_reshape,
  .forward = qconv_forward,
  .finalize = qnode_finalize,
  .channels = NNIC_CHANNELS_MAKE,
};

/* Its channels are the last axis, as the float Linear's. */
static int
qlinear_channel_axis (const NnicNode *node)
{
  return node->shape_ndim - 1;
}

static const NnicOp nnic_op_qlinear = {
  .type = "Linear",
  .reshape = qlinear_reshape,
  .forward = qlinear_forward,
  .finalize = qnode_finalize,
  .channels = NNIC_CHANNELS_MAKE,
  .channel_axis = qlinear_channel_axis,
};

/* ---- building the integer layers ---- */

/* Through these the values stay on the grid of the tensor feeding them
 * (ReLU6 and Hardtanh except where they clamp). */
static gboolean
keeps_grid (const NnicNode *n)
{
  return nnic_node_keeps_grid (n) && n->n_inputs == 1;
}

static NnicNode *
producer (const NnicNode *n)
{
  return n->real_input ? n->real_input : n->inputs[0];
}

/* The output calibration of the quantized output that feeds `node`, if any. */
static const NnicQParam *
feeding_output (const NnicQFile *f, const NnicNode *node)
{
  for (const NnicNode *p = producer (node); p->index > 0; p = producer (p)) {
    const NnicQLayer *l = nnic_qfile_layer (f, p->index);
    if (l && l->output.present)
      return &l->output;
    if (!keeps_grid (p))
      return NULL;
  }
  return NULL;
}

/* The int8 weights of l, for the GEMM, in the unrolled input's column
 * order (group, kh, kw, channel) for convolutions. */
static QState *
qstate_new (NnicModel *m, const NnicQFile *f, const NnicQLayer *l, GError **error)
{
  NnicNode *node = nnic_model_node (m, l->node);
  const gboolean conv = node->op == &nnic_op_conv2d;
  const NnicTensor *q = l->wint;
  const gboolean u8 = q->dtype == NNIC_DTYPE_U8;
  QState *st = g_new0 (QState, 1);
  st->float_op = node->op;
  st->zw = l->weight.zero_point - (u8 ? 128 : 0);
  st->sw = l->weight.scale;
  st->groups = conv ? NODE_SPEC (node, NnicConv2dSpec)->groups : 1;
  st->packed = g_new0 (NnicQgemmPacked *, st->groups);
  const int64_t OC = q->shape[0], per_oc = q->numel / OC, OCg = OC / st->groups;
  g_autofree int8_t *w = g_try_malloc ((size_t) q->numel);
  if (!w) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_MEMORY, "%s: out of memory for its int8 weights", l->name);
    qstate_free (st);
    return NULL;
  }
  const int64_t KH = conv ? NODE_SPEC (node, NnicConv2dSpec)->kernel_h : 1, KW = conv ? NODE_SPEC (node, NnicConv2dSpec)->kernel_w : 1;
  const int64_t Cg = per_oc / (KH * KW);
  for (int64_t o = 0; o < OC; o++)
    for (int64_t c = 0; c < Cg; c++)
      for (int64_t k = 0; k < KH * KW; k++) {
        const int64_t src = (o * Cg + c) * KH * KW + k; /* [OC, Cg, KH, KW] */
        const int64_t dst = o * per_oc + k * Cg + c;    /* [OC, KH, KW, Cg] */
        w[dst] = u8 ? (int8_t) ((int) q->u8[src] - 128) : q->i8[src];
      }
  for (int g = 0; g < st->groups; g++)
    if (!(st->packed[g] = nnic_qgemm_pack (w + g * OCg * per_oc, (int) OCg, (int) per_oc, error))) {
      g_prefix_error (error, "%s: ", l->name);
      qstate_free (st);
      return NULL;
    }
  const NnicQParam *in = l->input.present ? &l->input : feeding_output (f, node);
  st->dynamic = in == NULL;
  if (in)
    st->in = act_from_param (in);
  st->has_out = l->output.present;
  if (st->has_out)
    st->out = act_from_param (&l->output);
  return st;
}

static gboolean
runs_on_int8 (NnicModel *m, const NnicQLayer *l)
{
  const NnicNode *n = nnic_model_node (m, l->node);
  return l->wint && l->wint->dtype != NNIC_DTYPE_I32 &&
         (n->op == &nnic_op_conv2d || n->op == &nnic_op_linear);
}

/* ---- activation fake quantization on float nodes ---- */

typedef struct {
  gboolean has_in, has_out;
  ActQ in, out;
} FakeHook;

static void
fake_output (NnicModel *m, guint node, NnicTensor *y, gpointer user_data)
{
  (void) m;
  (void) node;
  const FakeHook *h = user_data;
  if (h->has_out)
    fake_quantize (y->f32, y->numel, &h->out);
}

static void
fake_input (NnicModel *m, guint node, NnicTensor *x, gpointer user_data)
{
  (void) m;
  (void) node;
  const FakeHook *h = user_data;
  fake_quantize (x->f32, x->numel, &h->in);
}

/* The forward hook owns the state the input transform reads too. */
static gboolean
add_fake_hooks (NnicModel *m, const NnicQLayer *l, GError **error)
{
  if (!l->input.present && !l->output.present)
    return TRUE;
  FakeHook *h = g_new0 (FakeHook, 1);
  h->has_in = l->input.present;
  h->has_out = l->output.present;
  if (h->has_in)
    h->in = act_from_param (&l->input);
  if (h->has_out)
    h->out = act_from_param (&l->output);
  if (!nnic_model_add_forward_hook (m, l->name, fake_output, h, g_free, error)) {
    g_free (h);
    return FALSE;
  }
  return !h->has_in || nnic_model_set_input_transform (m, l->name, fake_input, NULL, h, error);
}

/* Weights x_q and the file's bias into the model's parameters. */
static void
set_float_params (NnicModel *m, const NnicQLayer *l)
{
  NnicNode *n = nnic_model_node (m, l->node);
  for (guint k = 0; k < n->n_params; k++) {
    if (l->wint && strcmp (n->param_local[k], "weight") == 0)
      nnic_qlayer_dequantize_weight (l, n->param[k]);
    else if (l->bias && strcmp (n->param_local[k], "bias") == 0)
      memcpy (n->param[k]->f32, l->bias->f32, nnic_tensor_nbytes (l->bias));
  }
}

static gboolean
check_plain (NnicModel *m, GError **error)
{
  for (guint i = 1; i < nnic_model_n_nodes (m); i++) {
    const NnicNode *n = nnic_model_node (m, i);
    if (n->op == &nnic_op_qconv2d || n->op == &nnic_op_qlinear) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s already runs integer inference", n->name);
      return FALSE;
    }
    for (guint k = 0; k < n->n_params; k++)
      if (n->subst[k]) {
        g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                     "%s.%s is substituted (a compressor wraps the model): quantize a plain model", n->name,
                     n->param_local[k]);
        return FALSE;
      }
  }
  return TRUE;
}

gboolean
nnic_model_quantize_int8 (NnicModel *m, const char *dir, GError **error)
{
  g_return_val_if_fail (m != NULL && dir != NULL, FALSE);
  if (!check_plain (m, error))
    return FALSE;
  g_autoptr (NnicQFile) f = nnic_qfile_load (m, dir, error);
  if (!f)
    return FALSE;
  /* Everything that can fail first: the model changes only after. */
  g_autofree QState **states = g_new0 (QState *, f->layers->len);
  for (guint i = 0; i < f->layers->len; i++) {
    const NnicQLayer *l = g_ptr_array_index (f->layers, i);
    if (runs_on_int8 (m, l) && !(states[i] = qstate_new (m, f, l, error))) {
      for (guint j = 0; j < i; j++)
        if (states[j])
          qstate_free (states[j]);
      return FALSE;
    }
  }
  gboolean ok = TRUE;
  for (guint i = 0; i < f->layers->len; i++) {
    const NnicQLayer *l = g_ptr_array_index (f->layers, i);
    set_float_params (m, l);
    if (!states[i]) {
      ok = ok && add_fake_hooks (m, l, error);
      continue;
    }
    NnicNode *n = nnic_model_node (m, l->node);
    states[i]->float_state = n->state;
    n->state = states[i];
    n->op = n->op == &nnic_op_conv2d ? &nnic_op_qconv2d : &nnic_op_qlinear;
  }
  nnic_model_invalidate (m);
  return ok;
}

gboolean
nnic_model_fake_quantize (NnicModel *m, const char *dir, GError **error)
{
  g_return_val_if_fail (m != NULL && dir != NULL, FALSE);
  g_autoptr (NnicQFile) f = nnic_qfile_load (m, dir, error);
  if (!f)
    return FALSE;
  for (guint i = 0; i < f->layers->len; i++) {
    const NnicQLayer *l = g_ptr_array_index (f->layers, i);
    set_float_params (m, l);
    if (!add_fake_hooks (m, l, error))
      return FALSE;
  }
  return TRUE;
}

char **
nnic_model_int8_layers (NnicModel *m)
{
  GPtrArray *names = g_ptr_array_new ();
  for (guint i = 1; i < nnic_model_n_nodes (m); i++) {
    const NnicNode *n = nnic_model_node (m, i);
    if (n->op == &nnic_op_qconv2d || n->op == &nnic_op_qlinear)
      g_ptr_array_add (names, g_strdup (n->name));
  }
  g_ptr_array_add (names, NULL);
  return (char **) g_ptr_array_free (names, FALSE);
}

const char *
nnic_int8_kernel_name (void)
{
  return nnic_qgemm_active_name ();
}

gboolean
nnic_int8_kernel_init (GError **error)
{
  return nnic_qgemm_init (error);
}
