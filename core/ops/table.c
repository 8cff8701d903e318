/* The op table: every op nnic knows, one row each. Everything that treats
 * ops generically (ONNX import and export, dependency-aware pruning,
 * quantized inference, nnic_model_node_types) finds them here. Adding an
 * op is its file in core/ops/ and one row below (CONTRIBUTING.md). */
#include "core/graph.h"

#include <string.h>

#define NNIC_OP_TABLE(X) \
  X (conv2d)             \
  X (linear)             \
  X (batchnorm2d)        \
  X (batchnorm1d)        \
  X (relu)               \
  X (relu6)              \
  X (maxpool2d)          \
  X (avgpool2d)          \
  X (adaptive_avgpool2d) \
  X (flatten)            \
  X (dropout)            \
  X (add)                \
  X (concat)             \
  X (softmax)            \
  X (reshape)            \
  X (hardtanh)           \
  X (sigmoid)            \
  X (hardsigmoid)        \
  X (hardswish)          \
  X (tanh)               \
  X (erf)                \
  X (gelu)               \
  X (silu)               \
  X (pad)                \
  X (reduce_mean)        \
  X (sub)                \
  X (mul)                \
  X (div)                \
  X (pow)                \
  X (expand)             \
  X (parameter)          \
  X (slice)              \
  X (gather)             \
  X (matmul)             \
  X (transpose)          \
  X (layernorm)

#define DECLARE(name) extern const NnicOp nnic_op_##name;
NNIC_OP_TABLE (DECLARE)
#undef DECLARE

#define ENTRY(name) &nnic_op_##name,
const NnicOp *const nnic_ops[] = { NNIC_OP_TABLE (ENTRY) NULL };
#undef ENTRY

const NnicOp *
nnic_op_find (const char *type)
{
  for (guint i = 0; type && nnic_ops[i]; i++)
    if (!strcmp (nnic_ops[i]->type, type))
      return nnic_ops[i];
  return NULL;
}

const NnicOp *
nnic_op_for_onnx (const char *onnx_op)
{
  for (guint i = 0; onnx_op && nnic_ops[i]; i++)
    for (const char *const *o = nnic_ops[i]->onnx_ops; o && *o; o++)
      if (!strcmp (*o, onnx_op))
        return nnic_ops[i];
  return NULL;
}
