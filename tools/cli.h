/* Internal to the nnic command-line program. */
#pragma once

#include <nnic/nnic.h>

int nnic_cmd_train (int argc, char **argv);
int nnic_cmd_eval (int argc, char **argv);
int nnic_cmd_infer (int argc, char **argv);
int nnic_cmd_compress (int argc, char **argv);
int nnic_cmd_sensitivity (int argc, char **argv);
int nnic_cmd_plugins (int argc, char **argv);
int nnic_cmd_mask (int argc, char **argv);

/* Progress display: a bar redrawn in place on a terminal, plain lines
 * (about every tenth of an epoch) otherwise. */
typedef struct {
  gboolean tty;
  gboolean quiet;
  guint last_line_batch;
  gint64 last_draw_us;
} NnicCliProgress;

void nnic_cli_progress_init (NnicCliProgress *p, gboolean quiet);
void nnic_cli_progress_update (const NnicProgress *p, gpointer user_data);
/* Ends the bar's line (on a terminal) before other output. */
void nnic_cli_progress_finish (NnicCliProgress *p);

/* Loads a model: a path ending in ".onnx" (which must take the data set's
 * samples and give a score per class), or a built-in by name, shaped for
 * the data set's samples (`data` without labels: the class count is the
 * checkpoint's). With `checkpoint`, its weights are then loaded from that
 * safetensors file. `data` may be NULL for ONNX files. */
NnicModel *nnic_cli_load_model (const char *name, const NnicDataset *data, const char *checkpoint,
                                GError **error);
/* Loads a data set (train or test split): a name ("fashion-mnist"), or .npy
 * files "X.npy,Y.npy" (inputs [N, ...] float32, integer labels [N]; both
 * splits) or "TRAIN_X.npy,TRAIN_Y.npy,TEST_X.npy,TEST_Y.npy". `limit` > 0
 * keeps the first `limit` samples. */
NnicDataset *nnic_cli_load_data (const char *name, const char *dir, gboolean train, gint64 limit,
                                 GError **error);
/* Prints an error as "nnic <cmd>: message" and returns the exit status. */
int nnic_cli_fail (const char *cmd, GError *error);
