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

NnicDataset *
nnic_cli_load_data (const char *name, const char *dir, gboolean train, gint64 limit, GError **error)
{
  NnicDataset *d = nnic_dataset_load_named (name, train, dir, error);
  if (d && limit > 0 && limit < d->images->shape[0]) {
    NnicDataset *head = nnic_dataset_head (d, limit, error);
    nnic_dataset_free (d);
    d = head;
  }
  return d;
}

NnicModel *
nnic_cli_load_model (const char *name, const NnicDataset *data, const char *checkpoint,
                     GError **error)
{
  const NnicTensor *x = data->images;
  if (x->ndim != 4) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE, "built-in models take images [N, C, H, W]");
    return NULL;
  }
  NnicModel *m = nnic_model_new_builtin (name, (int) x->shape[1], (int) x->shape[2],
                                         (int) x->shape[3], MAX (data->n_classes, 10), error);
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
