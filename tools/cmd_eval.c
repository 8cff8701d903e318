/* nnic eval: the test accuracy of a checkpoint. */
#include "cli.h"

#include <stdio.h>

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
  char *model_name = NULL, *checkpoint = NULL, *data = NULL, *data_dir = NULL;
  gint64 limit = 0;
  int batch = 1000;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_STRING, &model_name, "Built-in model (default nni_cnn) or an ONNX file", "NAME|FILE.onnx" },
    { "checkpoint", 'c', 0, G_OPTION_ARG_FILENAME, &checkpoint, "Weights to evaluate (safetensors, state-dict names)", "FILE" },
    { "data", 'd', 0, G_OPTION_ARG_STRING, &data, "Data set (default fashion-mnist)", "NAME" },
    { "data-dir", 0, 0, G_OPTION_ARG_FILENAME, &data_dir, "Where the data set's files are", "DIR" },
    { "limit", 0, 0, G_OPTION_ARG_INT64, &limit, "Evaluate on the first N test images only", "N" },
    { "batch-size", 'b', 0, G_OPTION_ARG_INT, &batch, "Batch size (default 1000)", "N" },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- evaluate a checkpoint");
  g_option_context_set_summary (ctx, "Prints the test-set accuracy of a model's weights as 'accuracy: 0.xxxx'.\n"
                                     "Checkpoints saved by PyTorch (safetensors of a state_dict) load as they are.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  int status;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    status = nnic_cli_fail ("eval", error);
  else
    status = run (model_name ? model_name : "nni_cnn", checkpoint, data ? data : "fashion-mnist",
                  data_dir, limit, batch);
  g_free (model_name); g_free (checkpoint); g_free (data); g_free (data_dir);
  return status;
}
