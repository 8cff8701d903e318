/* A compressor's model as ONNX: pruned weights as they are (the masks are
 * in the weights), quantized tensors in QDQ form from the attributes the
 * quantizer publishes on each wrapper. */
#include "core/compress/wrapper.h"

#include <nnic/onnx.h>

#include <math.h>

static const struct {
  NnicQuantType type;
  const char *prefix;
} quant_kinds[] = {
  { NNIC_QUANT_WEIGHT, "weight" },
  { NNIC_QUANT_INPUT, "input" },
  { NNIC_QUANT_OUTPUT, "output" },
};

/* FALSE when the wrapper's quantizer published no parameters for it. */
static gboolean
quant_param (NnicWrapper *w, guint kind, NnicOnnxQuantParam *p)
{
  const char *prefix = quant_kinds[kind].prefix;
  g_autofree char *scale = g_strconcat (prefix, "_scale", NULL);
  g_autofree char *zero = g_strconcat (prefix, "_zero_point", NULL);
  g_autofree char *bits = g_strconcat (prefix, "_bits", NULL);
  g_autofree char *sign = g_strconcat (prefix, "_signed", NULL);
  double s, z = 0, b = 8, is_signed = 0;
  if (!(w->quant_types & quant_kinds[kind].type) || !nnic_wrapper_get_attribute_double (w, scale, &s))
    return FALSE;
  nnic_wrapper_get_attribute_double (w, zero, &z);
  nnic_wrapper_get_attribute_double (w, bits, &b);
  nnic_wrapper_get_attribute_double (w, sign, &is_signed);
  /* Out-of-range values are refused by the exporter; keep the casts defined. */
  if (!isfinite (z) || !isfinite (b) || fabs (z) > 1e6 || fabs (b) > 64 || z != floor (z) || b != floor (b))
    z = b = -1;
  *p = (NnicOnnxQuantParam) {
    .node = nnic_wrapper_name (w),
    .type = quant_kinds[kind].type,
    .scale = s,
    .zero_point = (int) z,
    .bits = (int) b,
    .is_signed = is_signed != 0,
    .fake_quantized = quant_kinds[kind].type == NNIC_QUANT_WEIGHT ? w->qweight : NULL,
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
      if (quant_param (w, k, &p))
        g_array_append_val (params, p);
    }
  }
  NnicOnnxSaveOptions options = { .n_quant = params->len, .quant = (const NnicOnnxQuantParam *) params->data };
  return nnic_model_save_onnx (nnic_compressor_model (c), path, &options, error);
}
