/* nnic sensitivity: each layer pruned alone over a range of sparsities,
 * the test accuracy of each, as a table and NNI's CSV. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const NnicDataset *test;
} EvalData;

static gboolean
accuracy (NnicModel *m, double *score, gpointer user_data, GError **error)
{
  EvalData *d = user_data;
  return nnic_evaluate (m, d->test, 1000, score, NULL, error);
}

static void
print_progress (const char *layer, double sparsity, double score, gpointer user_data)
{
  (void) user_data;
  fprintf (stderr, "%s at sparsity %.2f: %.4f\n", layer, sparsity, score);
}

/* "0.1,0.5,0.9" → doubles; NULL (NNI's default) when not given. */
static GArray *
parse_sparsities (const char *text, GError **error)
{
  if (!text)
    return NULL;
  GArray *a = g_array_new (FALSE, FALSE, sizeof (double));
  g_auto (GStrv) parts = g_strsplit (text, ",", -1);
  for (char **p = parts; *p; p++) {
    char *end = NULL;
    double v = g_ascii_strtod (*p, &end);
    if (end == *p || *end || !(v > 0 && v < 1)) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                   "--sparsities: '%s' is not a number in (0, 1)", *p);
      g_array_unref (a);
      return NULL;
    }
    g_array_append_val (a, v);
  }
  return a;
}

static int
run (const char *model_name, const char *checkpoint, const char *masker, const char *sparsities_text,
     char **layers, const char *data, const char *data_dir, gint64 eval_limit, const char *out)
{
  GError *error = NULL;
  if (!out || (!checkpoint && !g_str_has_suffix (model_name, ".onnx"))) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "--out is required, and --checkpoint for a built-in model (an ONNX file carries its weights)");
    return nnic_cli_fail ("sensitivity", error);
  }
  g_autoptr (GArray) sparsities = parse_sparsities (sparsities_text, &error);
  if (error)
    return nnic_cli_fail ("sensitivity", error);
  g_autoptr (NnicDataset) test = nnic_cli_load_data (data, data_dir, FALSE, eval_limit, &error);
  g_autoptr (NnicModel) model = test ? nnic_cli_load_model (model_name, test, checkpoint, &error) : NULL;
  if (!model)
    return nnic_cli_fail ("sensitivity", error);
  EvalData d = { test };
  g_autoptr (NnicSensitivity) s = nnic_sensitivity_analysis (
      model, masker, (const char *const *) layers, sparsities ? (double *) sparsities->data : NULL,
      sparsities ? sparsities->len : 0, accuracy, &d, print_progress, NULL, &error);
  if (!s || !nnic_sensitivity_save_csv (s, out, &error))
    return nnic_cli_fail ("sensitivity", error);
  printf ("%s sensitivity of %s (accuracy %.4f unpruned)\n%-14s", masker, model_name, s->baseline, "layer");
  for (guint k = 0; k < s->sparsities->len; k++)
    printf (" %6.2f", g_array_index (s->sparsities, double, k));
  printf ("\n");
  for (guint l = 0; l < s->layers->len; l++) {
    printf ("%-14s", (const char *) g_ptr_array_index (s->layers, l));
    for (guint k = 0; k < s->sparsities->len; k++)
      printf (" %6.4f", nnic_sensitivity_score (s, l, k));
    printf ("\n");
  }
  printf ("wrote %s\n", out);
  return 0;
}

int
nnic_cmd_sensitivity (int argc, char **argv)
{
  char *model = NULL, *checkpoint = NULL, *masker = NULL, *sparsities = NULL, *data = NULL,
       *data_dir = NULL, *out = NULL;
  char **layers = NULL;
  gint64 eval_limit = 0;
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_STRING, &model, "Built-in model (default nni_cnn) or an ONNX file", "NAME|FILE.onnx" },
    { "checkpoint", 'c', 0, G_OPTION_ARG_FILENAME, &checkpoint, "Trained weights (safetensors)", "FILE" },
    { "masker", 0, 0, G_OPTION_ARG_STRING, &masker, "Masker pruning each layer (default l1filter, as NNI's 'l1')", "NAME" },
    { "sparsities", 0, 0, G_OPTION_ARG_STRING, &sparsities, "Comma-separated sparsities (default 0.1,0.2,...,0.9)", "LIST" },
    { "layer", 'l', 0, G_OPTION_ARG_STRING_ARRAY, &layers, "A layer to analyse (repeatable; default every Conv2d)", "NAME" },
    { "data", 'd', 0, G_OPTION_ARG_STRING, &data, "Data set (default fashion-mnist)", "NAME" },
    { "data-dir", 0, 0, G_OPTION_ARG_FILENAME, &data_dir, "Where the data set's files are", "DIR" },
    { "eval-limit", 0, 0, G_OPTION_ARG_INT64, &eval_limit, "Evaluate on the first N test images only", "N" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &out, "CSV to write (NNI's format: layername,0.1,...)", "FILE" },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- how accuracy falls as each layer is pruned");
  g_option_context_set_summary (ctx, "Prunes each layer alone to each sparsity (weights restored in between),\n"
                                     "prints the test accuracy of every trial and writes them as CSV.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  int status;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    status = nnic_cli_fail ("sensitivity", error);
  else
    status = run (model ? model : "nni_cnn", checkpoint, masker ? masker : "l1filter", sparsities, layers,
                  data ? data : "fashion-mnist", data_dir, eval_limit, out);
  g_free (model); g_free (checkpoint); g_free (masker); g_free (sparsities); g_free (data);
  g_free (data_dir); g_free (out); g_strfreev (layers);
  return status;
}
