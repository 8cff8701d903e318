/* nnic infer: run a model in eval mode on a .npy batch, write the outputs. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

/* Rows [start, start + n) of x, as a view. */
static NnicTensor
rows (const NnicTensor *x, int64_t start, int64_t n)
{
  NnicTensor v = *x;
  v.shape[0] = n;
  v.numel = x->shape[0] ? x->numel / x->shape[0] * n : 0;
  v.data = (char *) x->data + (size_t) (x->numel / MAX (x->shape[0], 1) * start) * nnic_dtype_size (x->dtype);
  v.owns_data = FALSE;
  return v;
}

static int
run (const char *model_name, const char *checkpoint, const char *input, const char *out,
     int batch)
{
  GError *error = NULL;
  if (!model_name || !input || !out) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "--model, --input and --out are required (see nnic infer --help)");
    return nnic_cli_fail ("infer", error);
  }
  if (batch < 1) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "--batch-size must be at least 1, got %d",
                 batch);
    return nnic_cli_fail ("infer", error);
  }
  if (!g_str_has_suffix (model_name, ".onnx") && !checkpoint) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "a built-in model (%s) needs its weights: --checkpoint FILE", model_name);
    return nnic_cli_fail ("infer", error);
  }
  g_autoptr (NnicTensor) x = nnic_npy_load (input, &error);
  if (!x)
    return nnic_cli_fail ("infer", error);
  if (x->dtype != NNIC_DTYPE_F32 || x->ndim < 2) {
    g_autofree char *s = nnic_shape_to_string (x->ndim, x->shape);
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: inputs must be float32 with a batch dimension [N, ...], not %s %s", input,
                 nnic_dtype_name (x->dtype), s);
    return nnic_cli_fail ("infer", error);
  }
  NnicDataset data = { .images = x, .labels = NULL, .n_classes = 0 };
  g_autoptr (NnicModel) m = nnic_cli_load_model (model_name, &data, checkpoint, &error);
  if (!m)
    return nnic_cli_fail ("infer", error);
  nnic_model_set_training (m, FALSE);

  int64_t per[NNIC_MAX_DIMS + 1];
  int nd = nnic_model_node_shape (m, nnic_model_output_node (m), per + 1);
  if (nd < 0 || nd + 1 > NNIC_MAX_DIMS) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_SHAPE, "%s: outputs of rank %d cannot be saved",
                 model_name, nd + 1);
    return nnic_cli_fail ("infer", error);
  }
  per[0] = x->shape[0];
  g_autoptr (NnicTensor) y = nnic_tensor_new (NNIC_DTYPE_F32, nd + 1, per, &error);
  if (!y)
    return nnic_cli_fail ("infer", error);
  int64_t n = x->shape[0], per_row = y->numel / MAX (n, 1);
  for (int64_t start = 0; start < n; start += batch) {
    int64_t b = MIN ((int64_t) batch, n - start);
    NnicTensor xb = rows (x, start, b);
    const NnicTensor *yb = nnic_model_forward (m, &xb, &error);
    if (!yb)
      return nnic_cli_fail ("infer", error);
    if (yb->numel != b * per_row) {
      g_set_error (&error, NNIC_ERROR, NNIC_ERROR_SHAPE, "%s: the output has %" G_GINT64_FORMAT
                   " values for %" G_GINT64_FORMAT " samples", model_name, yb->numel, b);
      return nnic_cli_fail ("infer", error);
    }
    memcpy (y->f32 + start * per_row, yb->f32, sizeof (float) * (size_t) yb->numel);
  }
  if (!nnic_npy_save (out, y, &error))
    return nnic_cli_fail ("infer", error);
  g_autofree char *s = nnic_shape_to_string (y->ndim, y->shape);
  printf ("wrote %s: %s float32\n", out, s);
  return 0;
}

int
nnic_cmd_infer (int argc, char **argv)
{
  char *model = NULL, *checkpoint = NULL, *input = NULL, *out = NULL;
  int batch = 64;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_FILENAME, &model, "An ONNX file (FILE.onnx), or a built-in model with --checkpoint", "MODEL" },
    { "checkpoint", 'c', 0, G_OPTION_ARG_FILENAME, &checkpoint, "Weights (safetensors, state-dict names), loaded over the model's", "FILE" },
    { "input", 'i', 0, G_OPTION_ARG_FILENAME, &input, "Inputs: float32 .npy of shape [N, ...the model's input shape]", "X.npy" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "Where to write the outputs (float32 .npy [N, ...])", "Y.npy" },
    { "batch-size", 'b', 0, G_OPTION_ARG_INT, &batch, "Samples per forward pass (default 64)", "N" },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- run a model on a batch");
  g_option_context_set_summary (ctx,
      "Runs the model in eval mode (BatchNorm uses its running statistics, Dropout\n"
      "is off) on every sample of --input and writes the outputs to --out.\n\n"
      "  nnic infer --model resnet18.onnx --input x.npy --out y.npy\n"
      "  nnic infer --model nni_cnn --checkpoint nni_cnn.safetensors --input x.npy --out y.npy");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  int status;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    status = nnic_cli_fail ("infer", error);
  else if (argc > 1) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "unexpected argument '%s'", argv[1]);
    status = nnic_cli_fail ("infer", error);
  } else
    status = run (model, checkpoint, input, out, batch);
  g_free (model); g_free (checkpoint); g_free (input); g_free (out);
  return status;
}
