/* Internal: the wrapper's structure, shared by compressor.c and wrapper.c. */
#pragma once

#include "core/compress/internal.h"

typedef struct {
  double value;
  NnicTensor *tensor; /* owned; NULL for a number */
} NnicAttr;

struct _NnicWrapper {
  NnicCompressor *compressor;
  NnicModel *model;
  guint node;
  JsonObject *config;      /* the selecting entry (a reference) */
  NnicParam *weight, *bias;/* the model's parameters; NULL when absent */
  NnicTensor *weight_mask; /* uint8, owned */
  NnicTensor *bias_mask;
  /* A mask only touches the weights once something has set it: a fresh
   * wrapper's all-ones masks cost nothing. */
  gboolean weight_masked, bias_masked;
  gboolean if_calculated;  /* one-shot: the mask is computed (NNI's if_calculated) */
  GHashTable *attrs;       /* char * → NnicAttr * */
  NnicTensor *qweight;     /* quantizers: the fake-quantized weight forward reads */
  /* quantizers with their own backward: the input and output as they were
   * before quantization, for quant_backward (NNI's QuantGrad saves them) */
  NnicTensor *pre_input, *pre_output;
  guint quant_types;       /* NnicQuantType bits of the entry */
};

NnicWrapper *nnic_wrapper_new (NnicCompressor *c, NnicModel *m, guint node, JsonObject *config,
                               GError **error);
void nnic_wrapper_free (NnicWrapper *w);
void nnic_attr_free (NnicAttr *a);
/* Multiplies the weights by the masks that were set, in place. */
void nnic_wrapper_apply_masks (NnicWrapper *w);
