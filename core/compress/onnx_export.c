/* A compressor's model as ONNX: pruned weights as they are (the masks are
 * in the weights), quantized tensors in QDQ form from the attributes the
 * quantizer publishes on each wrapper. */
#include "core/compress/wrapper.h"

#include <nnic/onnx.h>

#include <math.h>

static const NnicQuantType quant_kinds[] = { NNIC_QUANT_WEIGHT, NNIC_QUANT_INPUT, NNIC_QUANT_OUTPUT };

/* FALSE when the wrapper's quantizer published no parameters for it. */
static gboolean
quant_param (NnicWrapper *w, NnicQuantType type, NnicOnnxQuantParam *p)
{
  NnicQuantParams q;
  if (!(w->quant_types & type) || !nnic_wrapper_get_quant (w, type, &q))
    return FALSE;
  /* Out-of-range values are refused by the exporter; keep the casts defined. */
  double z = q.zero_point;
  if (!isfinite (z) || fabs (z) > 1e6 || z != floor (z) || q.bits < 0)
    z = q.bits = -1;
  *p = (NnicOnnxQuantParam) {
    .node = nnic_wrapper_name (w),
    .type = type,
    .scale = q.scale,
    .zero_point = (int) z,
    .bits = q.bits,
    .is_signed = q.is_signed,
    .fake_quantized = type == NNIC_QUANT_WEIGHT ? w->qweight : NULL,
  };
  return TRUE;
}

gboolean
nnic_compressor_export_onnx (NnicCompressor *c, const char *path, GError **error)
{
  g_autoptr (GArray) params = g_array_new (FALSE, TRUE, sizeof (NnicOnnxQuantParam));
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    for (guint k = 0; k < G_N_ELEMENTS (quant_kinds); k++) {
      NnicOnnxQuantParam p;
      if (quant_param (w, quant_kinds[k], &p))
        g_array_append_val (params, p);
    }
  }
  NnicOnnxSaveOptions options = { .n_quant = params->len, .quant = (const NnicOnnxQuantParam *) params->data };
  return nnic_model_save_onnx (nnic_compressor_model (c), path, &options, error);
}
