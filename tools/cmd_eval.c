/* nnic eval: the test accuracy of a checkpoint, or of a quantized export
 * on integers beside its fake-quantized float model. */
#include "cli.h"

#include <stdio.h>

/* --quantized DIR: the integer model and the fake-quantized float model
 * of a quantizer's export (DIR/model.safetensors, quantized.safetensors,
 * calibration.json), on the same data. */
static int
run_quantized (const char *model_name, const char *dir, const char *checkpoint, const char *data,
               const char *data_dir, gint64 limit, int batch)
{
  GError *error = NULL;
  if (!nnic_int8_kernel_init (&error))
    return nnic_cli_fail ("eval", error);
  g_autofree char *weights = checkpoint ? g_strdup (checkpoint) : g_build_filename (dir, "model.safetensors", NULL);
  g_autoptr (NnicDataset) test = nnic_cli_load_data (data, data_dir, FALSE, limit, &error);
  if (!test)
    return nnic_cli_fail ("eval", error);
  g_autoptr (NnicModel) int8 = nnic_cli_load_model (model_name, test, weights, &error);
  if (!int8 || !nnic_model_quantize_int8 (int8, dir, &error))
    return nnic_cli_fail ("eval", error);
  g_autoptr (NnicModel) fake = nnic_cli_load_model (model_name, test, weights, &error);
  if (!fake || !nnic_model_fake_quantize (fake, dir, &error))
    return nnic_cli_fail ("eval", error);
  g_auto (GStrv) layers = nnic_model_int8_layers (int8);
  g_autofree char *list = g_strjoinv (", ", layers);
  printf ("layers on int8: %s\n", *list ? list : "none");
  double acc_int = 0, acc_fake = 0, loss_int = 0, loss_fake = 0;
  gint64 t0 = g_get_monotonic_time ();
  if (!nnic_evaluate (int8, test, batch, &acc_int, &loss_int, &error))
    return nnic_cli_fail ("eval", error);
  gint64 t1 = g_get_monotonic_time ();
  if (!nnic_evaluate (fake, test, batch, &acc_fake, &loss_fake, &error))
    return nnic_cli_fail ("eval", error);
  gint64 t2 = g_get_monotonic_time ();
  printf ("integer (%s): %.4f\nfake-quantized float: %.4f\n", nnic_int8_kernel_name (), acc_int, acc_fake);
  printf ("loss: integer %.4f, fake-quantized float %.4f; time: integer %.2f s, float %.2f s\n", loss_int,
          loss_fake, (double) (t1 - t0) / 1e6, (double) (t2 - t1) / 1e6);
  return 0;
}

static int
run (const char *model_name, const char *checkpoint, const char *data, const char *data_dir,
     gint64 limit, int batch)
{
  GError *error = NULL;
  if (!checkpoint && !g_str_has_suffix (model_name, ".onnx")) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "--checkpoint FILE is required for the built-in model %s (an ONNX file carries its weights)",
                 model_name);
    return nnic_cli_fail ("eval", error);
  }
  g_autoptr (NnicDataset) test = nnic_cli_load_data (data, data_dir, FALSE, limit, &error);
  if (!test)
    return nnic_cli_fail ("eval", error);
  g_autoptr (NnicModel) model = nnic_cli_load_model (model_name, test, checkpoint, &error);
  double accuracy = 0, loss = 0;
  if (!model || !nnic_evaluate (model, test, batch, &accuracy, &loss, &error))
    return nnic_cli_fail ("eval", error);
  printf ("loss: %.4f\naccuracy: %.4f\n", loss, accuracy);
  return 0;
}

int
nnic_cmd_eval (int argc, char **argv)
{
  char *model_name = NULL, *checkpoint = NULL, *data = NULL, *data_dir = NULL, *quantized = NULL;
  gint64 limit = 0;
  int batch = 1000;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_STRING, &model_name, "Built-in model (default nni_cnn) or an ONNX file", "NAME|FILE.onnx" },
    { "checkpoint", 'c', 0, G_OPTION_ARG_FILENAME, &checkpoint, "Weights to evaluate (safetensors, state-dict names)", "FILE" },
    { "data", 'd', 0, G_OPTION_ARG_STRING, &data, "Data set (default fashion-mnist)", "NAME" },
    { "data-dir", 0, 0, G_OPTION_ARG_FILENAME, &data_dir, "Where the data set's files are", "DIR" },
    { "limit", 0, 0, G_OPTION_ARG_INT64, &limit, "Evaluate on the first N test images only", "N" },
    { "batch-size", 'b', 0, G_OPTION_ARG_INT, &batch, "Batch size (default 1000)", "N" },
    { "quantized", 0, 0, G_OPTION_ARG_FILENAME, &quantized, "A quantizer's export (nnic compress DIR): run it on integers, and the fake-quantized float model beside it", "DIR" },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- evaluate a checkpoint");
  g_option_context_set_summary (ctx, "Prints the test-set accuracy of a model's weights as 'accuracy: 0.xxxx'.\n"
                                     "Checkpoints saved by PyTorch (safetensors of a state_dict) load as they are.\n"
                                     "With --quantized DIR (what nnic compress wrote for a quantizer), runs the model\n"
                                     "with int8 weights and activations and int32 accumulation, and the fake-quantized\n"
                                     "float model, and prints both accuracies:\n"
                                     "  integer (avx512vnni): 0.8642\n  fake-quantized float: 0.8645\n"
                                     "NNIC_QGEMM=c|avx2|avxvnni|avx512vnni picks the int8 kernel.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  int status;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    status = nnic_cli_fail ("eval", error);
  else if (quantized)
    status = run_quantized (model_name ? model_name : "nni_cnn", quantized, checkpoint,
                            data ? data : "fashion-mnist", data_dir, limit, batch);
  else
    status = run (model_name ? model_name : "nni_cnn", checkpoint, data ? data : "fashion-mnist",
                  data_dir, limit, batch);
  g_free (model_name); g_free (checkpoint); g_free (data); g_free (data_dir); g_free (quantized);
  return status;
}
