/* Conv2d (nn.Conv2d): zero padding (per side: ONNX's pads), stride and
 * dilation (per axis), groups, optional bias.
 *
 * The batch is unrolled (im2col) a chunk of samples at a time into
 *   cols [C*KH*KW, Bc*OH*OW]     row (c, kh, kw), column (b, oh, ow)
 * so that each group is one sgemm over the whole chunk
 *   tmp[OC/G, Bc*OH*OW] = W_g[OC/G, K] x cols_g[K, Bc*OH*OW],   K = C/G*KH*KW
 * rather than Bc small ones, followed by a cheap transposition into NCHW.
 * A chunk's columns are sized to stay in cache between im2col and the
 * GEMM: unrolling the whole batch at once writes tens of MiB that the GEMM
 * then has to fetch back from memory, which costs more than the GEMM saves.
 * For the same reason the backward unrolls each chunk again instead of
 * keeping the forward's columns: redoing it in cache is cheaper than
 * storing and reloading them (and it saves the memory).
 *
 * The chunks run in parallel, one per thread, each with a single-threaded
 * GEMM (core/parallel.h); every thread has its own columns and, in the
 * backward, its own weight-gradient accumulator, summed at the end.
 *
 * Depthwise convolutions (groups == in_channels > 1, out_channels a
 * multiple of it: MobileNet's) do not go through the GEMMs, whose groups
 * would each be one output channel times KH*KW rows: a direct kernel
 * (below) reads every input plane once per output channel instead.
 * NNIC_CONV_DEPTHWISE=0 in the environment (read when a layer is added)
 * sends them through the GEMMs too, for benchmarks and cross-checks. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"
#include "core/parallel.h"

#include <cblas.h>
#include <string.h>

/* node->state: which path the layer takes, and for the depthwise one
 * where each filter column's input starts in a padded row (see below). */
typedef struct {
  gboolean depthwise;
  int64_t tap[]; /* [kernel_w] */
} ConvState;

/* Everything the kernels need, derived from the spec and the input shape. */
typedef struct {
  int64_t B, C, H, W;      /* input [B, C, H, W] */
  int64_t OC, OH, OW;      /* output [B, OC, OH, OW] */
  int64_t KH, KW;          /* kernel */
  int64_t SH, SW, DH, DW;  /* stride and dilation per axis */
  int64_t PT, PL;          /* padding at the top and the left (the bottom and
                            * right ones only shape the output size) */
  int64_t G, Cg, OCg;      /* groups and channels per group */
  int64_t K;               /* rows of one group's columns: Cg*KH*KW */
  int64_t N;               /* columns: B*OH*OW */
} ConvGeom;

static ConvGeom
conv_geom (const NnicNode *node)
{
  const NnicConv2dSpec *s = NODE_SPEC (node, NnicConv2dSpec);
  const NnicNode *in = node->inputs[0];
  ConvGeom g = {
    .B = node->batch, .C = in->shape[0], .H = in->shape[1], .W = in->shape[2],
    .OC = node->shape[0], .OH = node->shape[1], .OW = node->shape[2],
    .KH = s->kernel_h, .KW = s->kernel_w, .SH = s->stride_h, .SW = s->stride_w,
    .DH = s->dilation_h, .DW = s->dilation_w, .PT = s->pads[0], .PL = s->pads[1],
    .G = s->groups,
  };
  g.Cg = g.C / g.G;
  g.OCg = g.OC / g.G;
  g.K = g.Cg * g.KH * g.KW;
  g.N = g.B * g.OH * g.OW;
  return g;
}

/* ---- depthwise: the layout ----
 * The depthwise kernels (further down) read a zero-padded copy of each
 * input plane, split by column phase when the stride along W is above one:
 *   xq [rows, SW, row]   xq[r][ph][i] = the padded plane's [r][i*SW + ph]
 * so that the input of tap (kh, kw) at output pixel (oh, ow) is
 *   xq[oh*SH + kh*DH][(kw*DW) % SW][(kw*DW) / SW + ow]:
 * contiguous along ow, and inside the buffer, with no bounds to check. */
typedef struct {
  int64_t rows;  /* padded rows the outputs read */
  int64_t cols;  /* padded columns the outputs read */
  int64_t row;   /* floats per phase of a row */
  int64_t plane; /* rows * SW * row */
} DwLayout;

static DwLayout
dw_layout (const ConvGeom *g)
{
  DwLayout l;
  l.rows = (g->OH - 1) * g->SH + (g->KH - 1) * g->DH + 1;
  l.cols = (g->OW - 1) * g->SW + (g->KW - 1) * g->DW + 1;
  l.row = (g->KW - 1) * g->DW / g->SW + g->OW;
  l.plane = l.rows * g->SW * l.row;
  return l;
}

/* Floats per thread: the padded input plane and its gradient, private
 * weight and bias gradients (summed in thread order, as in the GEMM
 * path), and a row of dL/dy with zeros around it. */
static size_t
dw_thread_floats (const ConvGeom *g)
{
  const DwLayout l = dw_layout (g);
  int64_t n = 2 * l.plane + g->OC * g->KH * g->KW + g->OC + g->OW + 2 * (g->KW - 1) * g->DW;
  return (size_t) ((n + 15) / 16 * 16);
}

static gboolean
conv2d_setup (NnicNode *node, GError **error)
{
  NnicConv2dSpec *s = NODE_SPEC (node, NnicConv2dSpec);
  if (!op_expect_image (node, 0, error))
    return FALSE;
  /* PyTorch's defaults, written back so that the spec reads as the layer. */
  if (s->kernel_h == 0)
    s->kernel_h = s->kernel_size;
  if (s->kernel_w == 0)
    s->kernel_w = s->kernel_size;
  if (s->stride == 0)
    s->stride = 1;
  if (s->dilation == 0)
    s->dilation = 1;
  if (s->groups == 0)
    s->groups = 1;
  if (s->stride_h == 0)
    s->stride_h = s->stride;
  if (s->stride_w == 0)
    s->stride_w = s->stride;
  if (s->dilation_h == 0)
    s->dilation_h = s->dilation;
  if (s->dilation_w == 0)
    s->dilation_w = s->dilation;
  if (!s->explicit_pads)
    for (int i = 0; i < 4; i++)
      s->pads[i] = s->padding;

  if (s->in_channels <= 0 || s->out_channels <= 0) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "in_channels and out_channels must be positive, got %d and %d", s->in_channels,
              s->out_channels);
    return FALSE;
  }
  if (s->kernel_h <= 0 || s->kernel_w <= 0) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "the kernel size must be positive, got %dx%d",
              s->kernel_h, s->kernel_w);
    return FALSE;
  }
  if (s->stride < 0 || s->dilation < 0 || s->groups < 0 || s->padding < 0) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "stride %d, padding %d, dilation %d and groups %d must not be negative", s->stride,
              s->padding, s->dilation, s->groups);
    return FALSE;
  }
  if (s->stride_h < 0 || s->stride_w < 0 || s->dilation_h < 0 || s->dilation_w < 0) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "strides (%d, %d) and dilations (%d, %d) must not be negative", s->stride_h,
              s->stride_w, s->dilation_h, s->dilation_w);
    return FALSE;
  }
  if (s->pads[0] < 0 || s->pads[1] < 0 || s->pads[2] < 0 || s->pads[3] < 0) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "pads (top %d, left %d, bottom %d, right %d) must not be negative", s->pads[0],
              s->pads[1], s->pads[2], s->pads[3]);
    return FALSE;
  }
  const NnicNode *in = node->inputs[0];
  if (in->shape[0] != s->in_channels) {
    op_error (node, error, NNIC_ERROR_SHAPE,
              "in_channels %d does not match the input's %" G_GINT64_FORMAT " channels",
              s->in_channels, in->shape[0]);
    return FALSE;
  }
  if (s->in_channels % s->groups != 0 || s->out_channels % s->groups != 0) {
    op_error (node, error, NNIC_ERROR_ARGUMENT,
              "groups %d must divide both in_channels %d and out_channels %d", s->groups,
              s->in_channels, s->out_channels);
    return FALSE;
  }
  int64_t eff_h = (int64_t) s->dilation_h * (s->kernel_h - 1) + 1;
  int64_t eff_w = (int64_t) s->dilation_w * (s->kernel_w - 1) + 1;
  int64_t pad_h = in->shape[1] + (int64_t) s->pads[0] + s->pads[2];
  int64_t pad_w = in->shape[2] + (int64_t) s->pads[1] + s->pads[3];
  if (eff_h > pad_h || eff_w > pad_w) {
    op_error (node, error, NNIC_ERROR_SHAPE,
              "the kernel (%" G_GINT64_FORMAT "x%" G_GINT64_FORMAT
              " with dilation) is larger than the padded input (%" G_GINT64_FORMAT
              "x%" G_GINT64_FORMAT ")",
              eff_h, eff_w, pad_h, pad_w);
    return FALSE;
  }
  node->shape_ndim = 3;
  node->shape[0] = s->out_channels;
  node->shape[1] = (pad_h - eff_h) / s->stride_h + 1;
  node->shape[2] = (pad_w - eff_w) / s->stride_w + 1;
  if (!op_check_output (node, error))
    return FALSE;

  int64_t wshape[4] = { s->out_channels, s->in_channels / s->groups, s->kernel_h, s->kernel_w };
  int64_t bshape[1] = { s->out_channels };
  if (!nnic_node_add_param (node, "weight", TRUE, 4, wshape, error))
    return FALSE;
  if (!s->no_bias && !nnic_node_add_param (node, "bias", TRUE, 1, bshape, error))
    return FALSE;
  ConvState *st = g_malloc0 (sizeof (ConvState) + sizeof (int64_t) * (size_t) s->kernel_w);
  st->depthwise = s->groups > 1 && s->groups == s->in_channels &&
                  g_strcmp0 (g_getenv ("NNIC_CONV_DEPTHWISE"), "0") != 0;
  const ConvGeom g = conv_geom (node);
  const DwLayout l = dw_layout (&g);
  for (int64_t kw = 0; kw < g.KW; kw++)
    st->tap[kw] = ((kw * g.DW) % g.SW) * l.row + (kw * g.DW) / g.SW;
  node->state = st;
  return TRUE;
}

static void
conv2d_finalize (NnicNode *node)
{
  g_clear_pointer (&node->state, g_free);
}

static gboolean
conv_is_depthwise (const NnicNode *node)
{
  return ((const ConvState *) node->state)->depthwise;
}

/* Samples per chunk: about CHUNK_BYTES of columns, but at least
 * MIN_COLUMNS columns so that the GEMMs stay wide enough to run well, and
 * a multiple of the thread count in chunks so that no thread idles. */
#define CHUNK_BYTES ((int64_t) 2 << 20)
#define MIN_COLUMNS 512

static int64_t
conv_chunk (const ConvGeom *g, int threads)
{
  int64_t OHW = g->OH * g->OW;
  int64_t per_sample = g->C * g->KH * g->KW * OHW * (int64_t) sizeof (float);
  int64_t bc = MAX (CHUNK_BYTES / per_sample, (MIN_COLUMNS + OHW - 1) / OHW);
  bc = CLAMP (bc, 1, g->B);
  int64_t chunks = (g->B + bc - 1) / bc;
  if (chunks < g->B) {
    chunks = (chunks + threads - 1) / threads * threads;
    bc = (g->B + chunks - 1) / chunks;
  }
  return bc;
}

/* The geometry of a chunk of n samples (the caller offsets the pointers). */
static ConvGeom
chunk_geom (const ConvGeom *g, int64_t n)
{
  ConvGeom c = *g;
  c.B = n;
  c.N = n * g->OH * g->OW;
  return c;
}

/* Scratch per thread: one chunk's columns (reused for their gradient in
 * backward), its output in GEMM layout, and private weight and bias
 * gradients. */
static size_t
conv_thread_floats (const ConvGeom *g, int threads)
{
  int64_t cols = (g->C * g->KH * g->KW + g->OC) * conv_chunk (g, threads) * g->OH * g->OW;
  int64_t grads = g->OC * g->K + g->OC;
  /* Keep each thread's part on its own cache lines. */
  return (size_t) ((cols + grads + 15) / 16 * 16);
}

static gboolean
conv2d_reshape (NnicNode *node, int64_t batch, GError **error)
{
  (void) batch;
  ConvGeom g = conv_geom (node);
  int threads = nnic_threads ();
  if (conv_is_depthwise (node))
    return nnic_model_scratch (node->model, dw_thread_floats (&g) * (size_t) threads, error) != NULL;
  if (!op_check_blas_dim (node, conv_chunk (&g, threads) * g.OH * g.OW, error) ||
      !op_check_blas_dim (node, g.C * g.KH * g.KW, error))
    return FALSE;
  return nnic_model_scratch (node->model, conv_thread_floats (&g, threads) * (size_t) threads,
                             error) != NULL;
}

/* Output positions o in [0, n) whose input coordinate o*S + off lies inside
 * [0, size): they form the range [*lo, *hi); the rest read the zero padding. */
static void
valid_range (int64_t n, int64_t S, int64_t off, int64_t size, int64_t *lo, int64_t *hi)
{
  int64_t l = off < 0 ? (-off + S - 1) / S : 0;
  int64_t h = size - off <= 0 ? 0 : (size - off - 1) / S + 1;
  if (h > n)
    h = n;
  if (l > h)
    l = h;
  *lo = l;
  *hi = h;
}

/* x [B, C, H, W] → cols [C*KH*KW, B*OH*OW]. Each row of cols is written
 * front to back, across the samples: rows are far apart (B*OH*OW floats,
 * often a multiple of 4 KiB), and hopping from row to row every few
 * hundred bytes makes the writes miss in the same cache sets. The input
 * planes a row reads (channel c of every sample) stay in cache for the
 * KH*KW rows of c. */
OP_INLINE_COPIES static void
im2col (const ConvGeom *g, const float *restrict x, float *restrict cols)
{
  const int64_t OHW = g->OH * g->OW, HW = g->H * g->W;
  for (int64_t c = 0; c < g->C; c++)
    for (int64_t kh = 0; kh < g->KH; kh++)
      for (int64_t kw = 0; kw < g->KW; kw++) {
        float *dst = cols + ((c * g->KH + kh) * g->KW + kw) * g->N;
        int64_t offh = kh * g->DH - g->PT, offw = kw * g->DW - g->PL;
        int64_t oh0, oh1, ow0, ow1;
        valid_range (g->OH, g->SH, offh, g->H, &oh0, &oh1);
        valid_range (g->OW, g->SW, offw, g->W, &ow0, &ow1);
        for (int64_t b = 0; b < g->B; b++, dst += OHW) {
          const float *plane = x + (b * g->C + c) * HW;
          for (int64_t j = 0; j < oh0 * g->OW; j++)
            dst[j] = 0.0f;
          for (int64_t oh = oh0; oh < oh1; oh++) {
            float *row = dst + oh * g->OW;
            const float *src = plane + (oh * g->SH + offh) * g->W;
            for (int64_t ow = 0; ow < ow0; ow++)
              row[ow] = 0.0f;
            if (g->SW == 1) {
              for (int64_t ow = ow0; ow < ow1; ow++)
                row[ow] = src[ow + offw];
            } else {
              for (int64_t ow = ow0; ow < ow1; ow++)
                row[ow] = src[ow * g->SW + offw];
            }
            for (int64_t ow = ow1; ow < g->OW; ow++)
              row[ow] = 0.0f;
          }
          for (int64_t j = oh1 * g->OW; j < OHW; j++)
            dst[j] = 0.0f;
        }
      }
}

/* The adjoint of im2col: dx [B, C, H, W] += the columns' gradients summed
 * back onto the input pixels they were read from. Unlike im2col this one
 * goes plane by plane: the accumulation target then stays in L1, and
 * scattered reads cost less than scattered writes. */
static void
col2im_acc (const ConvGeom *g, const float *restrict dcols, float *restrict dx)
{
  const int64_t OHW = g->OH * g->OW, HW = g->H * g->W;
  for (int64_t b = 0; b < g->B; b++)
    for (int64_t c = 0; c < g->C; c++) {
      float *plane = dx + (b * g->C + c) * HW;
      for (int64_t kh = 0; kh < g->KH; kh++)
        for (int64_t kw = 0; kw < g->KW; kw++) {
          const float *src = dcols + ((c * g->KH + kh) * g->KW + kw) * g->N + b * OHW;
          int64_t offh = kh * g->DH - g->PT, offw = kw * g->DW - g->PL;
          int64_t oh0, oh1, ow0, ow1;
          valid_range (g->OH, g->SH, offh, g->H, &oh0, &oh1);
          valid_range (g->OW, g->SW, offw, g->W, &ow0, &ow1);
          for (int64_t oh = oh0; oh < oh1; oh++) {
            const float *row = src + oh * g->OW;
            float *dst = plane + (oh * g->SH + offh) * g->W;
            if (g->SW == 1) {
              for (int64_t ow = ow0; ow < ow1; ow++)
                dst[ow + offw] += row[ow];
            } else {
              for (int64_t ow = ow0; ow < ow1; ow++)
                dst[ow * g->SW + offw] += row[ow];
            }
          }
        }
    }
}

/* tmp [OC, B*OHW] → out [B, OC, OHW], adding the bias on the way. */
static void
scatter_nchw (const ConvGeom *g, const float *restrict tmp, const float *restrict bias,
              float *restrict out)
{
  const int64_t OHW = g->OH * g->OW;
  for (int64_t b = 0; b < g->B; b++)
    for (int64_t oc = 0; oc < g->OC; oc++) {
      const float *src = tmp + oc * g->N + b * OHW;
      float *dst = out + (b * g->OC + oc) * OHW;
      float bv = bias ? bias[oc] : 0.0f;
      for (int64_t j = 0; j < OHW; j++)
        dst[j] = src[j] + bv;
    }
}

/* gout [B, OC, OHW] → dout [OC, B*OHW], the GEMM layout. */
static void
gather_nchw (const ConvGeom *g, const float *restrict gout, float *restrict dout)
{
  const int64_t OHW = g->OH * g->OW;
  for (int64_t b = 0; b < g->B; b++)
    for (int64_t oc = 0; oc < g->OC; oc++)
      memcpy (dout + oc * g->N + b * OHW, gout + (b * g->OC + oc) * OHW,
              sizeof (float) * (size_t) OHW);
}

/* GCC's unroll-and-jam (-O3) fuses two filter taps' row loops into one
 * that it then leaves scalar: the kernels below run 2-3x slower with it. */
#if defined(__GNUC__) && !defined(__clang__)
#define DW_NO_JAM __attribute__ ((optimize ("no-loop-unroll-and-jam")))
#else
#define DW_NO_JAM
#endif

/* ---- depthwise: the kernels ----
 * Output channel oc = c*M + m reads input channel c alone (M = OC/C, the
 * channel multiplier) through its own KH x KW filter. Each thread takes
 * input planes (b, c) in turn, pads and splits one (see the layout above)
 * and runs its M filters over it, an output row at a time: one
 * multiply-add over the whole row per filter tap, the row staying in L1.
 * The padding of the copies is zeroed once per call: the copies only ever
 * write the plane's own pixels. */

/* Phase ph of a padded row holds input columns iw = i*SW + ph - PL for
 * i in [*i0, *i1), those inside [0, w1). */
static void
dw_phase_range (const ConvGeom *g, int64_t ph, int64_t w1, int64_t *i0, int64_t *i1)
{
  const int64_t first = g->PL - ph, end = w1 + g->PL - ph; /* i*SW in [first, end) */
  *i0 = first > 0 ? (first + g->SW - 1) / g->SW : 0;
  *i1 = end > 0 ? (end + g->SW - 1) / g->SW : 0;
}

/* x [H, W] into its place in xq (the pixels the outputs read). */
static void
dw_pad_plane (const ConvGeom *g, const DwLayout *l, const float *restrict x, float *restrict xq)
{
  const int64_t h1 = MIN (g->H, l->rows - g->PT), w1 = MIN (g->W, l->cols - g->PL);
  for (int64_t ph = 0; ph < g->SW; ph++) {
    int64_t i0, i1;
    dw_phase_range (g, ph, w1, &i0, &i1);
    for (int64_t ih = 0; ih < h1; ih++) {
      const float *restrict xr = x + ih * g->W;
      float *restrict dst = xq + ((ih + g->PT) * g->SW + ph) * l->row;
      const int64_t off = ph - g->PL;
      if (g->SW == 1) {
        for (int64_t i = i0; i < i1; i++)
          dst[i] = xr[i + off];
      } else if (g->SW == 2) { /* a constant stride vectorises */
        for (int64_t i = i0; i < i1; i++)
          dst[i] = xr[2 * i + off];
      } else {
        for (int64_t i = i0; i < i1; i++)
          dst[i] = xr[i * g->SW + off];
      }
    }
  }
}

/* The adjoint of dw_pad_plane: dx [H, W] += its pixels' gradients in dxq. */
static void
dw_unpad_plane_acc (const ConvGeom *g, const DwLayout *l, const float *restrict dxq,
                    float *restrict dx)
{
  const int64_t h1 = MIN (g->H, l->rows - g->PT), w1 = MIN (g->W, l->cols - g->PL);
  for (int64_t ph = 0; ph < g->SW; ph++) {
    int64_t i0, i1;
    dw_phase_range (g, ph, w1, &i0, &i1);
    for (int64_t ih = 0; ih < h1; ih++) {
      float *restrict dr = dx + ih * g->W;
      const float *restrict src = dxq + ((ih + g->PT) * g->SW + ph) * l->row;
      const int64_t off = ph - g->PL;
      if (g->SW == 1) {
        for (int64_t i = i0; i < i1; i++)
          dr[i + off] += src[i];
      } else if (g->SW == 2) {
        for (int64_t i = i0; i < i1; i++)
          dr[2 * i + off] += src[i];
      } else {
        for (int64_t i = i0; i < i1; i++)
          dr[i * g->SW + off] += src[i];
      }
    }
  }
}

/* y [OH, OW] = bias + the filter w [KH, KW] over the padded plane xq;
 * tap[kw] is where filter column kw reads in a padded row. */
DW_NO_JAM static void
dw_forward_plane (const ConvGeom *g, const DwLayout *l, const int64_t *tap,
                  const float *restrict xq, const float *restrict w, float bias,
                  float *restrict y)
{
  const int64_t OW = g->OW;
  for (int64_t oh = 0; oh < g->OH; oh++) {
    float *restrict yr = y + oh * OW;
    for (int64_t ow = 0; ow < OW; ow++)
      yr[ow] = bias;
    for (int64_t kh = 0; kh < g->KH; kh++) {
      const float *xr = xq + (oh * g->SH + kh * g->DH) * g->SW * l->row;
      const float *wr = w + kh * g->KW;
      int64_t kw = 0;
      /* Three taps a pass: a third of the loads and stores of the row. */
      for (; kw + 3 <= g->KW; kw += 3) {
        const float *restrict x0 = xr + tap[kw], *restrict x1 = xr + tap[kw + 1],
                              *restrict x2 = xr + tap[kw + 2];
        const float w0 = wr[kw], w1 = wr[kw + 1], w2 = wr[kw + 2];
        for (int64_t ow = 0; ow < OW; ow++)
          yr[ow] += w0 * x0[ow] + w1 * x1[ow] + w2 * x2[ow];
      }
      for (; kw < g->KW; kw++) {
        const float *restrict xt = xr + tap[kw];
        const float wv = wr[kw];
        for (int64_t ow = 0; ow < OW; ow++)
          yr[ow] += wv * xt[ow];
      }
    }
  }
}

/* One output channel's gradient dy [OH, OW] against the padded plane xq:
 * dw [KH*KW] += dy times the inputs each tap read (when dw), and
 * dxq += the filter w spread back over the plane (when dxq). dyrow has
 * room for a row of dy with (KW-1)*DW zeros on either side. */
DW_NO_JAM static void
dw_backward_plane (const ConvGeom *g, const DwLayout *l, const int64_t *tap,
                   const float *restrict xq, const float *restrict w, const float *restrict dy,
                   float *restrict dxq, float *restrict dw, float *restrict dyrow)
{
  const int64_t OW = g->OW, KW = g->KW, edge = (KW - 1) * g->DW;
  for (int64_t oh = 0; oh < g->OH; oh++) {
    const float *restrict dyr = dy + oh * OW;
    if (dxq && g->SW == 1) {
      for (int64_t i = 0; i < edge; i++)
        dyrow[i] = dyrow[edge + OW + i] = 0.0f;
      for (int64_t ow = 0; ow < OW; ow++)
        dyrow[edge + ow] = dyr[ow];
    }
    for (int64_t kh = 0; kh < g->KH; kh++) {
      const int64_t r = (oh * g->SH + kh * g->DH) * g->SW * l->row;
      const float *wr = w + kh * KW;
      /* The weight gradient: one dot product per tap and row, three taps
       * a pass so that dy is loaded once for them. */
      for (int64_t kw = 0; dw && kw < KW;) {
        float *dwr = dw + kh * KW;
        if (kw + 3 <= KW) {
          const float *restrict x0 = xq + r + tap[kw], *restrict x1 = xq + r + tap[kw + 1],
                                *restrict x2 = xq + r + tap[kw + 2];
          float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f;
#pragma omp simd reduction(+ : s0, s1, s2)
          for (int64_t ow = 0; ow < OW; ow++) {
            s0 += dyr[ow] * x0[ow];
            s1 += dyr[ow] * x1[ow];
            s2 += dyr[ow] * x2[ow];
          }
          dwr[kw] += s0;
          dwr[kw + 1] += s1;
          dwr[kw + 2] += s2;
          kw += 3;
        } else {
          const float *restrict xt = xq + r + tap[kw];
          float s = 0.0f;
#pragma omp simd reduction(+ : s)
          for (int64_t ow = 0; ow < OW; ow++)
            s += dyr[ow] * xt[ow];
          dwr[kw] += s;
          kw++;
        }
      }
      if (!dxq)
        continue;
      if (g->SW == 1) {
        /* The input gradient as a gather: padded column i of the row gets
         * w[kw] * dy[i - kw*DW] from every tap, three taps a pass. */
        float *restrict dxr = dxq + r;
        const float *dp = dyrow + edge;
        int64_t kw = 0;
        for (; kw + 3 <= KW; kw += 3) {
          const float *restrict d0 = dp - tap[kw], *restrict d1 = dp - tap[kw + 1],
                                *restrict d2 = dp - tap[kw + 2];
          const float w0 = wr[kw], w1 = wr[kw + 1], w2 = wr[kw + 2];
          for (int64_t i = 0; i < l->cols; i++)
            dxr[i] += w0 * d0[i] + w1 * d1[i] + w2 * d2[i];
        }
        for (; kw < KW; kw++) {
          const float *restrict dt = dp - tap[kw];
          const float wv = wr[kw];
          for (int64_t i = 0; i < l->cols; i++)
            dxr[i] += wv * dt[i];
        }
      } else {
        /* A scatter, tap by tap, into the tap's phase of the row. */
        for (int64_t kw = 0; kw < KW; kw++) {
          float *restrict dt = dxq + r + tap[kw];
          const float wv = wr[kw];
          for (int64_t ow = 0; ow < OW; ow++)
            dt[ow] += wv * dyr[ow];
        }
      }
    }
  }
}

static void
dw_forward (NnicNode *node)
{
  const ConvGeom g = conv_geom (node);
  const DwLayout l = dw_layout (&g);
  const int64_t *tap = ((const ConvState *) node->state)->tap;
  const int threads = nnic_threads ();
  const int64_t M = g.OC / g.C, HW = g.H * g.W, OHW = g.OH * g.OW, KK = g.KH * g.KW;
  const float *x = node->inputs[0]->out->f32, *w = node->pval[0]->f32;
  const float *bias = node->n_params > 1 ? node->pval[1]->f32 : NULL;
  float *y = node->out->f32;
  const size_t per_thread = dw_thread_floats (&g);
  float *scratch = nnic_model_scratch (node->model, per_thread * (size_t) threads, NULL);
  const int64_t planes = g.B * g.C;
#pragma omp parallel num_threads(threads) if (planes * M * OHW * KK > OP_PARALLEL_MIN)
  {
    float *xq = scratch + per_thread * (size_t) nnic_thread_index ();
    memset (xq, 0, sizeof (float) * (size_t) l.plane);
#pragma omp for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
      const int64_t b = p / g.C, c = p % g.C;
      dw_pad_plane (&g, &l, x + p * HW, xq);
      for (int64_t oc = c * M; oc < (c + 1) * M; oc++)
        dw_forward_plane (&g, &l, tap, xq, w + oc * KK, bias ? bias[oc] : 0.0f,
                          y + (b * g.OC + oc) * OHW);
    }
  }
}

static void
dw_backward (NnicNode *node)
{
  const ConvGeom g = conv_geom (node);
  const DwLayout l = dw_layout (&g);
  const int64_t *tap = ((const ConvState *) node->state)->tap;
  const int threads = nnic_threads ();
  const int64_t M = g.OC / g.C, HW = g.H * g.W, OHW = g.OH * g.OW, KK = g.KH * g.KW;
  const int64_t nw = g.OC * KK;
  const float *x = node->inputs[0]->out->f32, *w = node->pval[0]->f32;
  const float *dy = node->gout->f32;
  float *dx = node->inputs[0]->gout ? node->inputs[0]->gout->f32 : NULL;
  float *dw = node->pgrad[0] ? node->pgrad[0]->f32 : NULL;
  float *db = node->n_params > 1 && node->pgrad[1] ? node->pgrad[1]->f32 : NULL;
  const size_t per_thread = dw_thread_floats (&g);
  float *scratch = nnic_model_scratch (node->model, per_thread * (size_t) threads, NULL);
  const int64_t planes = g.B * g.C;
  /* Threads that get no plane still hold zero gradients for the sum below. */
  memset (scratch, 0, sizeof (float) * per_thread * (size_t) threads);
#pragma omp parallel num_threads(threads) if (planes * M * OHW * KK > OP_PARALLEL_MIN)
  {
    float *xq = scratch + per_thread * (size_t) nnic_thread_index ();
    float *dxq = xq + l.plane, *mdw = dxq + l.plane, *mdb = mdw + nw, *dyrow = mdb + g.OC;
#pragma omp for schedule(static)
    for (int64_t p = 0; p < planes; p++) {
      const int64_t b = p / g.C, c = p % g.C;
      if (dw)
        dw_pad_plane (&g, &l, x + p * HW, xq);
      if (dx)
        memset (dxq, 0, sizeof (float) * (size_t) l.plane);
      for (int64_t oc = c * M; oc < (c + 1) * M; oc++) {
        const float *dyp = dy + (b * g.OC + oc) * OHW;
        if (db)
          mdb[oc] += op_sum (dyp, OHW);
        if (!dw && !dx)
          continue;
        dw_backward_plane (&g, &l, tap, xq, w + oc * KK, dyp, dx ? dxq : NULL,
                           dw ? mdw + oc * KK : NULL, dyrow);
      }
      if (dx)
        dw_unpad_plane_acc (&g, &l, dxq, dx + p * HW);
    }
  }
  for (int t = 0; t < threads; t++) {
    const float *mine = scratch + per_thread * (size_t) t + 2 * l.plane;
    if (dw)
      op_acc (dw, mine, nw);
    if (db)
      op_acc (db, mine + nw, g.OC);
  }
}

/* out_g [OCg, N] = W_g [OCg, K] x cols_g [K, N] for every group. */
static void
gemm_forward (const ConvGeom *c, const float *w, const float *cols, float *out)
{
  for (int64_t gi = 0; gi < c->G; gi++)
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, (int) c->OCg, (int) c->N, (int) c->K,
                 1.0f, w + gi * c->OCg * c->K, (int) c->K, cols + gi * c->K * c->N, (int) c->N,
                 0.0f, out + gi * c->OCg * c->N, (int) c->N);
}

/* Forward of samples [b0, b0 + c->B) with this thread's scratch. */
static void
forward_chunk (NnicNode *node, const ConvGeom *c, int64_t b0, float *scratch)
{
  const int64_t OHW = c->OH * c->OW;
  const float *x = node->inputs[0]->out->f32 + b0 * c->C * c->H * c->W;
  const float *w = node->pval[0]->f32;
  const float *bias = node->n_params > 1 ? node->pval[1]->f32 : NULL;
  float *cols = scratch, *tmp = scratch + c->C * c->KH * c->KW * c->N;
  float *y = node->out->f32 + b0 * c->OC * OHW;
  im2col (c, x, cols);
  if (c->B == 1) {
    /* One sample's [OC, OH*OW] already is NCHW: no transposition. */
    gemm_forward (c, w, cols, y);
    for (int64_t oc = 0; bias && oc < c->OC; oc++)
      for (int64_t j = 0; j < OHW; j++)
        y[oc * OHW + j] += bias[oc];
  } else {
    gemm_forward (c, w, cols, tmp);
    scatter_nchw (c, tmp, bias, y);
  }
}

static void
conv2d_forward (NnicNode *node, gboolean training)
{
  (void) training;
  if (conv_is_depthwise (node)) {
    dw_forward (node);
    return;
  }
  const ConvGeom g = conv_geom (node);
  const int threads = nnic_threads ();
  const int64_t bc = conv_chunk (&g, threads), chunks = (g.B + bc - 1) / bc;
  const size_t per_thread = conv_thread_floats (&g, threads);
  float *scratch = nnic_model_scratch (node->model, per_thread * (size_t) threads, NULL);

  if (chunks == 1) {
    forward_chunk (node, &g, 0, scratch);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t ci = 0; ci < chunks; ci++) {
    const ConvGeom c = chunk_geom (&g, MIN (bc, g.B - ci * bc));
    forward_chunk (node, &c, ci * bc, scratch + per_thread * (size_t) nnic_thread_index ());
  }
}

/* Backward of samples [b0, b0 + c->B): weight and bias gradients are
 * accumulated into dw/db (this thread's), dL/dx into the input's gout. */
static void
backward_chunk (NnicNode *node, const ConvGeom *c, int64_t b0, float *scratch, float *dw,
                float *db)
{
  const int64_t OHW = c->OH * c->OW, in_sample = c->C * c->H * c->W;
  const float *w = node->pval[0]->f32;
  const float *x = node->inputs[0]->out->f32 + b0 * in_sample;
  float *dx = node->inputs[0]->gout ? node->inputs[0]->gout->f32 + b0 * in_sample : NULL;
  float *cols = scratch, *tmp = scratch + c->C * c->KH * c->KW * c->N;
  const float *dout = node->gout->f32 + b0 * c->OC * OHW;
  if (c->B > 1) {
    gather_nchw (c, dout, tmp);
    dout = tmp;
  }
  if (db)
    for (int64_t oc = 0; oc < c->OC; oc++)
      db[oc] += op_sum (dout + oc * c->N, c->N);
  im2col (c, x, cols);
  /* dW_g [OCg, K] += dout_g [OCg, N] x cols_g^T [N, K] */
  if (dw)
    for (int64_t gi = 0; gi < c->G; gi++)
      cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, (int) c->OCg, (int) c->K, (int) c->N,
                   1.0f, dout + gi * c->OCg * c->N, (int) c->N, cols + gi * c->K * c->N,
                   (int) c->N, 1.0f, dw + gi * c->OCg * c->K, (int) c->K);
  if (!dx)
    return; /* the first layer: nobody needs dL/dinput */
  /* dcols_g [K, N] = W_g^T [K, OCg] x dout_g [OCg, N], over the columns
   * (no longer needed), then summed back onto the pixels. */
  for (int64_t gi = 0; gi < c->G; gi++)
    cblas_sgemm (CblasRowMajor, CblasTrans, CblasNoTrans, (int) c->K, (int) c->N, (int) c->OCg,
                 1.0f, w + gi * c->OCg * c->K, (int) c->K, dout + gi * c->OCg * c->N, (int) c->N,
                 0.0f, cols + gi * c->K * c->N, (int) c->N);
  col2im_acc (c, cols, dx);
}

static void
conv2d_backward (NnicNode *node)
{
  if (conv_is_depthwise (node)) {
    dw_backward (node);
    return;
  }
  const ConvGeom g = conv_geom (node);
  const int threads = nnic_threads ();
  const int64_t bc = conv_chunk (&g, threads), chunks = (g.B + bc - 1) / bc;
  const int64_t cols_floats = (g.C * g.KH * g.KW + g.OC) * bc * g.OH * g.OW;
  const size_t per_thread = conv_thread_floats (&g, threads);
  float *scratch = nnic_model_scratch (node->model, per_thread * (size_t) threads, NULL);
  float *dw = node->pgrad[0] ? node->pgrad[0]->f32 : NULL;
  float *db = node->n_params > 1 && node->pgrad[1] ? node->pgrad[1]->f32 : NULL;
  const int64_t nw = g.OC * g.K;

  if (chunks == 1) {
    backward_chunk (node, &g, 0, scratch, dw, db);
    return;
  }
  int used = (int) MIN ((int64_t) threads, chunks);
#pragma omp parallel num_threads(used)
  {
    /* Each thread sums its chunks' weight and bias gradients privately;
     * the sums are added in thread order below. With a static schedule
     * the chunks each thread gets are fixed too, so the result does not
     * depend on timing: the same seed gives the same weights. */
    const int t = nnic_thread_index ();
    float *mine = scratch + per_thread * (size_t) t;
    memset (mine + cols_floats, 0, sizeof (float) * (size_t) (nw + g.OC));
#pragma omp for schedule(static)
    for (int64_t ci = 0; ci < chunks; ci++) {
      const ConvGeom c = chunk_geom (&g, MIN (bc, g.B - ci * bc));
      backward_chunk (node, &c, ci * bc, mine, dw ? mine + cols_floats : NULL,
                      db ? mine + cols_floats + nw : NULL);
    }
  }
  for (int t = 0; t < used; t++) {
    const float *mine = scratch + per_thread * (size_t) t + cols_floats;
    if (dw)
      op_acc (dw, mine, nw);
    if (db)
      op_acc (db, mine + nw, g.OC);
  }
}

static int
conv2d_input_groups (const NnicNode *node)
{
  return NODE_SPEC (node, NnicConv2dSpec)->groups;
}

gboolean
nnic_model_add_conv2d (NnicModel *m, const char *name, const char *input,
                       const NnicConv2dSpec *spec, GError **error)
{
  return nnic_graph_add_unary (m, name, input, &nnic_op_conv2d, spec, sizeof *spec, error);
}

gboolean
nnic_model_node_conv2d_spec (const NnicModel *m, guint i, NnicConv2dSpec *spec)
{
  if (i >= m->nodes->len || nnic_graph_node (m, i)->op != &nnic_op_conv2d)
    return FALSE;
  /* Setup filled in every default and per-axis field (pads too). */
  *spec = *NODE_SPEC (nnic_graph_node (m, i), NnicConv2dSpec);
  spec->explicit_pads = TRUE;
  return TRUE;
}

/* ---- ONNX ---- */

/* ---- Conv ---- */

static gboolean
convert_conv (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  static const char *const known[] = { "auto_pad", "dilations", "group", "kernel_shape", "pads",
                                       "strides", NULL };
  int64_t in[NNIC_MAX_DIMS];
  OnnxValue *x = nnic_onnx_attrs_known (ctx, node, known, error)
                     ? nnic_onnx_input_of_rank (ctx, node, 3, in, error) : NULL;
  OnnxValue *w = x ? nnic_onnx_input_const (ctx, node, 1, "weight", error) : NULL;
  if (!w)
    return FALSE;
  GError *local = NULL;
  OnnxValue *b = nnic_onnx_input_opt (ctx, node, 2, &local);
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  if (b && b->kind != ONNX_VALUE_CONST)
    return nnic_onnx_input_const (ctx, node, 2, "bias", error) != NULL;
  int wnd;
  int64_t ws[NNIC_MAX_DIMS], wn;
  if (!nnic_onnx_const_dims (ctx, node, w, &wnd, ws, &wn, error))
    return FALSE;
  if (wnd != 4) {
    g_autofree char *s = nnic_shape_to_string (wnd, ws);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "only 2-D convolutions are supported; the weight '%s' is %s", w->name, s);
    return FALSE;
  }
  int64_t group;
  const int64_t *ks;
  size_t nk;
  if (!nnic_onnx_attr_int (ctx, node, "group", 1, &group, error) ||
      !nnic_onnx_attr_ints (ctx, node, "kernel_shape", 2, &ks, &nk, error))
    return FALSE;
  if (nk && (ks[0] != ws[2] || ks[1] != ws[3])) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "kernel_shape [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                          "] does not match the weight's [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]",
                          ks[0], ks[1], ws[2], ws[3]);
    return FALSE;
  }
  if (!nnic_onnx_positive_int (ctx, node, "group", group, FALSE, error))
    return FALSE;
  if (ws[1] * group != in[0] || ws[0] % group != 0 || ws[0] > G_MAXINT || ws[2] > 1 << 20 ||
      ws[3] > 1 << 20 || ws[0] == 0 || ws[2] == 0 || ws[3] == 0) {
    g_autofree char *s = nnic_shape_to_string (wnd, ws);
    g_autofree char *xs = nnic_onnx_full_shape (3, in);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_SHAPE,
                          "the weight '%s' %s with group %" G_GINT64_FORMAT
                          " does not fit the input %s",
                          w->name, s, group, xs);
    return FALSE;
  }
  int nb;
  int64_t bs[NNIC_MAX_DIMS], bn;
  if (b && !nnic_onnx_const_dims (ctx, node, b, &nb, bs, &bn, error))
    return FALSE;
  if (b && (nb != 1 || bs[0] != ws[0])) {
    g_autofree char *s = nnic_shape_to_string (nb, bs);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_SHAPE,
                          "the bias '%s' is %s, not [%" G_GINT64_FORMAT "]", b->name, s, ws[0]);
    return FALSE;
  }
  NnicOnnxWindow win;
  if (!nnic_onnx_window_attrs (ctx, node, in + 1, (int) ws[2], (int) ws[3], &win, error))
    return FALSE;
  NnicConv2dSpec spec = {
    .in_channels = (int) in[0], .out_channels = (int) ws[0],
    .kernel_size = win.kh == win.kw ? win.kh : 0, .kernel_h = win.kh, .kernel_w = win.kw,
    .stride = win.sh, .stride_h = win.sh, .stride_w = win.sw,
    .dilation = win.dh, .dilation_h = win.dh, .dilation_w = win.dw,
    .groups = (int) group, .no_bias = b == NULL,
    .explicit_pads = TRUE, /* ONNX's pads: per side, within ONNX Runtime's limits */
  };
  memcpy (spec.pads, win.pads, sizeof spec.pads);
  if (!nnic_onnx_added (ctx, node, name, nnic_model_add_conv2d (ctx->m, name, x->node, &spec, error), error))
    return FALSE;
  g_autofree char *pw = nnic_onnx_param_name (name, "weight");
  g_autofree char *pb = nnic_onnx_param_name (name, "bias");
  return nnic_onnx_const_to_param (ctx, node, w, pw, FALSE, 1.0, error) &&
         (!b || nnic_onnx_const_to_param (ctx, node, b, pb, FALSE, 1.0, error));
}

static gboolean
export_conv (NnicOnnxExporter *x, guint i, GError **error)
{
  NnicConv2dSpec s;
  nnic_model_node_conv2d_spec (x->model, i, &s);
  Onnx__NodeProto *n = nnic_onnx_export_weighted (x, "Conv", i, s.no_bias, error);
  if (!n)
    return FALSE;
  nnic_onnx_export_window (x, n, s.kernel_h, s.kernel_w, s.stride_h, s.stride_w, s.pads);
  nnic_onnx_export_attr_ints (x, n, "dilations", (const int64_t[]) { s.dilation_h, s.dilation_w }, 2);
  nnic_onnx_export_attr_int (x, n, "group", s.groups > 0 ? s.groups : 1);
  return TRUE;
}

const NnicOp nnic_op_conv2d = {
  .type = "Conv2d",
  .setup = conv2d_setup,
  .reshape = conv2d_reshape,
  .forward = conv2d_forward,
  .backward = conv2d_backward,
  .finalize = conv2d_finalize,
  .init_params = nnic_init_weighted,
  .channels = NNIC_CHANNELS_MAKE,
  .input_groups = conv2d_input_groups,
  .onnx_ops = (const char *const[]) { "Conv", NULL },
  .onnx_import = convert_conv,
  .onnx_export = export_conv,
};
