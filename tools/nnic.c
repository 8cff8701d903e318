/* nnic — the command-line program: subcommand dispatch and shared helpers. */
#include "cli.h"

#include <stdio.h>
#include <string.h>

typedef struct {
  const char *name;
  int (*run) (int argc, char **argv);
  const char *summary;
} Command;

static const Command commands[] = {
  { "train", nnic_cmd_train, "train a model on a data set and save its weights" },
  { "eval", nnic_cmd_eval, "evaluate a checkpoint's accuracy on the test set" },
  { "infer", nnic_cmd_infer, "run a model on a .npy batch and write its outputs as .npy" },
  { "compress", nnic_cmd_compress, "prune or quantize a trained model, fine-tune, export" },
  { "sensitivity", nnic_cmd_sensitivity, "accuracy as each layer alone is pruned to a range of sparsities" },
  { "plugins", nnic_cmd_plugins, "list the algorithm plugins found and the config keys they accept" },
  { "mask", nnic_cmd_mask, "run one masker on a layer's weights from .npy files, write its mask" },
};

static int
usage (FILE *out)
{
  fprintf (out, "nnic %s — model compression in C\n\nUsage: nnic COMMAND [OPTIONS]\n\nCommands:\n",
           NNIC_VERSION);
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    fprintf (out, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf (out, "  %-10s %s\n", "models", "list the built-in models");
  fprintf (out, "\nRun 'nnic COMMAND --help' for a command's options.\n");
  return out == stderr ? 2 : 0;
}

static int
list_models (void)
{
  for (const char *const *n = nnic_builtin_model_names (); *n; n++)
    printf ("%-12s %s\n", *n, nnic_builtin_model_summary (*n));
  return 0;
}

int
nnic_cli_fail (const char *cmd, GError *error)
{
  fprintf (stderr, "nnic %s: %s\n", cmd, error ? error->message : "failed");
  g_clear_error (&error);
  return 1;
}

/* --data X.npy,Y.npy (both splits) or TRAIN_X,TRAIN_Y,TEST_X,TEST_Y. */
static NnicDataset *
load_npy_data (const char *spec, gboolean train, GError **error)
{
  g_auto (GStrv) files = g_strsplit (spec, ",", -1);
  guint n = g_strv_length (files);
  if (n != 2 && n != 4) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "--data %s: give two .npy files, inputs and labels (X.npy,Y.npy), or four "
                 "(TRAIN_X.npy,TRAIN_Y.npy,TEST_X.npy,TEST_Y.npy)",
                 spec);
    return NULL;
  }
  guint first = n == 4 && !train ? 2 : 0;
  return nnic_dataset_load_npy (files[first], files[first + 1], error);
}

NnicDataset *
nnic_cli_load_data (const char *name, const char *dir, gboolean train, gint64 limit, GError **error)
{
  gboolean npy = strchr (name, ',') != NULL || g_str_has_suffix (name, ".npy");
  NnicDataset *d = npy ? load_npy_data (name, train, error)
                       : nnic_dataset_load_named (name, train, dir, error);
  if (d && limit > 0 && limit < d->images->shape[0]) {
    NnicDataset *head = nnic_dataset_head (d, limit, error);
    nnic_dataset_free (d);
    d = head;
  }
  return d;
}

/* An ONNX model must take the data's samples and give at least one output
 * per class. */
static gboolean
check_onnx_fits (NnicModel *m, const char *path, const NnicDataset *data, GError **error)
{
  int64_t in[NNIC_MAX_DIMS], out[NNIC_MAX_DIMS];
  int in_nd = nnic_model_node_shape (m, 0, in);
  int out_nd = nnic_model_node_shape (m, nnic_model_output_node (m), out);
  const NnicTensor *x = data->images;
  if (x && (x->ndim - 1 != in_nd || memcmp (x->shape + 1, in, sizeof (int64_t) * (size_t) in_nd))) {
    g_autofree char *want = nnic_shape_to_string (in_nd, in);
    g_autofree char *got = nnic_shape_to_string (x->ndim - 1, x->shape + 1);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "%s takes samples of shape %s, but the data's are %s", path, want, got);
    return FALSE;
  }
  if (data->labels && data->n_classes > 0 && (out_nd != 1 || out[0] < data->n_classes)) {
    g_autofree char *got = nnic_shape_to_string (out_nd, out);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "%s gives %s per sample, but the labels need %d class scores", path, got,
                 data->n_classes);
    return FALSE;
  }
  return TRUE;
}

/* Without labels (nnic infer), a built-in model's class count comes from
 * the checkpoint's output layer. */
static int
classes_in_checkpoint (NnicModel *m, const char *checkpoint, int fallback)
{
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (checkpoint, NULL);
  const char *out = nnic_model_node_name (m, nnic_model_output_node (m));
  g_autofree char *key = g_strconcat (out, ".weight", NULL);
  NnicTensor *w = d ? nnic_tensor_dict_get (d, key) : NULL;
  return w && w->ndim >= 1 && w->shape[0] > 0 && w->shape[0] <= G_MAXINT ? (int) w->shape[0]
                                                                           : fallback;
}

NnicModel *
nnic_cli_load_model (const char *name, const NnicDataset *data, const char *checkpoint,
                     GError **error)
{
  NnicModel *m;
  if (g_str_has_suffix (name, ".onnx")) {
    m = nnic_model_load_onnx (name, NULL, error);
    if (m && data && !check_onnx_fits (m, name, data, error))
      g_clear_pointer (&m, nnic_model_free);
  } else {
    const NnicTensor *x = data ? data->images : NULL;
    if (!x || x->ndim != 4) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                   "built-in models take images [N, C, H, W]%s", x ? "" : " (no data given)");
      return NULL;
    }
    int classes = MAX (data->n_classes, 10);
    m = nnic_model_new_builtin (name, (int) x->shape[1], (int) x->shape[2], (int) x->shape[3],
                                classes, error);
    int want = m && checkpoint && !data->labels ? classes_in_checkpoint (m, checkpoint, classes)
                                                : classes;
    if (m && want != classes) {
      nnic_model_free (m);
      m = nnic_model_new_builtin (name, (int) x->shape[1], (int) x->shape[2], (int) x->shape[3],
                                  want, error);
    }
  }
  if (m && checkpoint && !nnic_model_load (m, checkpoint, error))
    g_clear_pointer (&m, nnic_model_free);
  return m;
}

int
main (int argc, char **argv)
{
  if (argc < 2)
    return usage (stderr);
  const char *cmd = argv[1];
  if (!strcmp (cmd, "--help") || !strcmp (cmd, "-h") || !strcmp (cmd, "help"))
    return usage (stdout);
  if (!strcmp (cmd, "--version")) {
    printf ("nnic %s (plugin ABI %d.%d)\n", NNIC_VERSION, NNIC_ABI_MAJOR, NNIC_ABI_MINOR);
    return 0;
  }
  if (!strcmp (cmd, "models"))
    return list_models ();
  for (guint i = 0; i < G_N_ELEMENTS (commands); i++)
    if (!strcmp (cmd, commands[i].name))
      return commands[i].run (argc - 1, argv + 1);
  fprintf (stderr, "nnic: unknown command '%s'\n\n", cmd);
  return usage (stderr);
}
