/* nnic — quantized models: the integers a quantizer produced, and
 * integer (int8) inference with them.
 *
 * A quantizer (qat, dorefa, bnn, lsq, naive) publishes on every wrapper,
 * for each quantized tensor t = weight, input, output, the attributes
 * "<t>_scale", "<t>_zero_point", "<t>_bits", "<t>_signed" and, where it
 * tracks them, "<t>_min" and "<t>_max" ("<t>_binary" 1: the values are
 * sign(x), bnn). A fake-quantized value is x_q = (q - zero_point) · scale
 * with q an integer of `bits` bits (signed or not).
 *
 * nnic_compressor_export_quantized() writes, in DIR:
 *
 *   quantized.safetensors   per quantized layer:
 *       <layer>.weight_int8   (signed weights, bits <= 8) or
 *       <layer>.weight_uint8  (unsigned weights, bits <= 8) or
 *       <layer>.weight_int32  (weights wider than 8 bits: 8-bit DoReFa is 9),
 *           the integers q, the weight's shape, recovering the
 *           fake-quantized weight exactly: x_q = float(q - zero_point) · scale
 *           in float32, q = round(x_q / scale) + zero_point;
 *       <layer>.weight_scale      F32, a scalar (shape [])
 *       <layer>.weight_zero_point I32, a scalar
 *       <layer>.bias              F32, the float bias as it is
 *     and the metadata {"format": "nnic-quantized", "version": "1",
 *     "algorithm": ...}.
 *
 *   calibration.json        {"<layer>": {...}, ...}: per layer, in the
 *     order of the model, its "type" and for each quantized tensor t an
 *     object "<t>": {"bits", "signed", "scale", "zero_point", "min", "max"
 *     (the quantizer's tracked range; without one, the range the grid
 *     covers), "binary" (bnn's sign)}, plus the keys of NNI's
 *     calibration_config for TensorRT: "weight_bit", "activation_bit"
 *     (the output's bits, else the input's; 1 for binary tensors),
 *     "tracked_min_input",
 *     "tracked_max_input", "tracked_min_output", "tracked_max_output".
 *
 * Both files are written through a temporary file and a rename.
 *
 * Integer inference: nnic_model_quantize_int8() takes a model built the
 * usual way (a built-in, or nnic_model_new... calls) with the float
 * weights loaded (DIR/model.safetensors) and switches every Conv2d and
 * Linear whose weights are int8/uint8 in DIR to an integer layer:
 *   - its input is quantized to uint8 with the layer's input calibration
 *     when it has one; else with the output calibration of the tensor
 *     feeding it, when that is a quantized output (looking back through
 *     ReLU, ReLU6, Hardtanh, MaxPool2d, Flatten, Dropout and Reshape, which
 *     keep values on the grid except where a ReLU6 or Hardtanh clamps);
 *     else with a scale and zero point from the batch's own min and max
 *     (asymmetric, per batch);
 *   - convolutions unroll the uint8 input (im2col, the quantized zero in
 *     the padding), the product runs on the int8 GEMM (int32 accumulation,
 *     exact) on the best kernel of the CPU (nnic_int8_kernel_name), and the
 *     result is scaled back to float with the float bias added, then
 *     fake-quantized with the layer's output calibration when it has one;
 *   - every other node stays float; nodes with activation calibration
 *     (e.g. bnn's Hardtanh outputs, qat's ReLU6 outputs) fake-quantize
 *     their input/output as the quantizer did; layers whose weights are
 *     wider than 8 bits stay float with the weights x_q.
 * Such a model runs forward only: nnic_model_backward() refuses it, with
 * an error naming the layer.
 *
 * nnic_model_fake_quantize() makes the float model that integer inference
 * stands for: the weights replaced by x_q = (q - zero_point) · scale, and
 * the same activation fake quantization (the quantizer's formula:
 * x_q = scale · (round(clamp(zero_point + x / scale, qmin, qmax)) -
 * zero_point), round half to even).
 *
 * Errors (missing or malformed files, a layer the model lacks, a shape
 * that does not fit, integers outside their bits) name the file and the
 * layer; nothing is changed in the model then.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>
#include <nnic/export.h>
#include <nnic/compress.h>
#include <nnic/model.h>

G_BEGIN_DECLS

/* Writes DIR/quantized.safetensors and DIR/calibration.json (DIR is made
 * when missing) from what the compressor's quantizer published. A layer
 * whose fake-quantized weight is not on the grid its attributes describe
 * (an integer outside the bits) is an error naming it. */
NNIC_API gboolean nnic_compressor_export_quantized (NnicCompressor *c, const char *dir,
                                                    GError **error);

/* Sizes and bits of what nnic_compressor_export_quantized writes:
 *   {"layers": [{"name", "type", "weights",
 *                "weight_bits", "input_bits", "output_bits" (null when not quantized;
 *                                                  1 for binary tensors),
 *                "bytes_float32" (4 per weight),
 *                "bytes_packed" (the weights at their bit width: ceil(n·bits/8);
 *                                1 bit for binary ones; float32 when not quantized),
 *                "bytes_int" (the integer tensor in quantized.safetensors:
 *                             1 byte per weight, 4 for weight_int32)}],
 *    "bytes_float32", "bytes_packed", "bytes_int" (totals over the layers),
 *    "ratio" (bytes_float32 / bytes_packed)}
 * Free with json_object_unref(). */
NNIC_API JsonObject *nnic_compressor_quant_report (NnicCompressor *c);

/* Integer inference, as described above. The model must not be wrapped by
 * a compressor. Layers run on integers: see nnic_model_int8_layers(). */
NNIC_API gboolean nnic_model_quantize_int8 (NnicModel *m, const char *dir, GError **error);

/* The fake-quantized float model of DIR, as described above. */
NNIC_API gboolean nnic_model_fake_quantize (NnicModel *m, const char *dir, GError **error);

/* Names of the layers that run on integers, in model order (NULL-terminated,
 * free with g_strfreev). */
NNIC_API char **nnic_model_int8_layers (NnicModel *m);

/* The int8 GEMM kernel integer inference uses: "avx512vnni", "avxvnni",
 * "avx2" or "c", the fastest this CPU has unless NNIC_QGEMM names another. */
NNIC_API const char *nnic_int8_kernel_name (void);
/* Reads NNIC_QGEMM now: an unknown name or a kernel this CPU lacks is an
 * error naming those it has (the best kernel is used then). Optional:
 * without it, a bad value is only warned about. */
NNIC_API gboolean nnic_int8_kernel_init (GError **error);

G_END_DECLS
