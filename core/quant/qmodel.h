/* Internal: quantization parameters of a layer's tensors, as the export
 * writes them (core/compress/quant_export.c) and integer inference reads
 * them back (core/quant/qload.c, core/quant/qinfer.c). Not installed. */
#pragma once

#include <nnic/quant.h>
#include <nnic/io.h>

#include <float.h>
#include <math.h>
#include <stdint.h>

/* real = scale · (q − zero_point), q an integer in [qmin, qmax]. */
typedef struct {
  gboolean present;
  int bits;           /* 1..32 for weights, 1..8 for activations */
  gboolean is_signed;
  gboolean binary;    /* values are sign(x): ±scale (bnn) */
  float scale;
  int32_t zero_point;
  double min, max;    /* the tracked range, or the grid's */
} NnicQParam;

static inline int64_t
nnic_qparam_qmin (const NnicQParam *p)
{
  return p->is_signed ? -((int64_t) 1 << (p->bits - 1)) : 0;
}

static inline int64_t
nnic_qparam_qmax (const NnicQParam *p)
{
  return p->is_signed ? ((int64_t) 1 << (p->bits - 1)) - 1 : ((int64_t) 1 << p->bits) - 1;
}

/* Adding then subtracting 1.5·2²³ rounds a float of magnitude below 2²² to
 * an integer, half to even, and vectorises without SSE4.1 (as in qgemm.c).
 * Compilers evaluating float in wider precision use rintf. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
static inline float
nnic_qround (float t)
{
  return (t + 12582912.0f) - 12582912.0f;
}
#else
static inline float
nnic_qround (float t)
{
  return rintf (t);
}
#endif

/* The quantizers' fake quantization in float32 (qat's fake_quantize, lsq's
 * with zero point 0): scale · (round (clamp (zp + x / scale, qmin, qmax)) − zp);
 * NaN stays NaN. Binary: −scale below 0, +scale from 0 up (−0 too). */
static inline float
nnic_qfake (float x, float scale, float zp, float qmin, float qmax, gboolean binary)
{
  if (binary)
    return x < 0.0f ? -scale : x >= 0.0f ? scale : x;
  float t = zp + x / scale;
  t = t < qmin ? qmin : t > qmax ? qmax : t;
  return scale * (nnic_qround (t) - zp);
}

/* A layer of DIR, checked against a model. */
typedef struct {
  char *name;
  guint node;
  NnicQParam weight, input, output;
  NnicTensor *wint;  /* I8, U8 or I32, the weight's shape; NULL without weight */
  NnicTensor *bias;  /* F32 or NULL */
} NnicQLayer;

typedef struct {
  char *dir;
  char *st_path, *cal_path;
  GPtrArray *layers;   /* NnicQLayer *, in model order */
  GHashTable *by_node; /* node index + 1 → NnicQLayer * */
} NnicQFile;

/* Loads and checks DIR/quantized.safetensors and DIR/calibration.json
 * against the model; errors name the file and the layer. */
NnicQFile *nnic_qfile_load (NnicModel *m, const char *dir, GError **error);
void nnic_qfile_free (NnicQFile *f);
NnicQLayer *nnic_qfile_layer (const NnicQFile *f, guint node);
/* dst (F32, the weight's shape) = float (q − zero_point) · scale. */
void nnic_qlayer_dequantize_weight (const NnicQLayer *l, NnicTensor *dst);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (NnicQFile, nnic_qfile_free)

/* File names in DIR. */
#define NNIC_QUANT_WEIGHTS_FILE "quantized.safetensors"
#define NNIC_QUANT_CALIBRATION_FILE "calibration.json"
