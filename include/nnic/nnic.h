/* nnic — model compression in C. The whole public API. */
#pragma once

#include <nnic/version.h>
#include <nnic/export.h>
#include <nnic/error.h>
#include <nnic/tensor.h>
#include <nnic/model.h>
#include <nnic/models.h>
#include <nnic/io.h>
#include <nnic/data.h>
#include <nnic/train.h>
#include <nnic/compress.h>
#include <nnic/masker.h>
#include <nnic/parallel.h>
#include <nnic/plugin.h>
#include <nnic/registry.h>
#include <nnic/sensitivity.h>
#include <nnic/onnx.h>
#include <nnic/quant.h>
