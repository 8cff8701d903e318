/* nnic compress: prune or quantize a trained model with a config list,
 * fine-tune it, and export weights, masks and a report. */
#include "cli.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  char *model, *checkpoint, *config, *algorithm, *masker, *out, *data, *data_dir, *export_onnx, *optimizer;
  int finetune_epochs, batch_size, updates_per_epoch;
  double lr, momentum;
  gint64 seed, limit, eval_limit;
  gboolean quiet, dependency_aware, from_scratch;
} CompressArgs;

typedef struct {
  double before, pruned, after;
  gboolean measured; /* FALSE without a data set */
  gboolean have_after;
} Accuracies;

static void
print_table (JsonArray *layers, int64_t kept, int64_t total, int64_t all_params)
{
  printf ("\n%-14s %-10s %10s %10s %9s\n", "layer", "type", "weights", "kept", "sparsity");
  for (guint i = 0; i < json_array_get_length (layers); i++) {
    JsonObject *o = json_array_get_object_element (layers, i);
    gint64 n = json_object_get_int_member (o, "weights"), z = json_object_get_int_member (o, "zeros");
    printf ("%-14s %-10s %10" G_GINT64_FORMAT " %10" G_GINT64_FORMAT " %8.2f%%\n",
            json_object_get_string_member (o, "name"), json_object_get_string_member (o, "type"), n,
            n - z, 100.0 * json_object_get_double_member (o, "sparsity"));
  }
  printf ("%-14s %-10s %10" G_GINT64_FORMAT " %10" G_GINT64_FORMAT " %8.2f%%\n", "total", "",
          total, kept, total ? 100.0 * (double) (total - kept) / (double) total : 0.0);
  printf ("parameters kept: %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " (%.2f%%)\n",
          all_params - (total - kept), all_params,
          all_params ? 100.0 * (double) (all_params - (total - kept)) / (double) all_params : 0.0);
}

/* For quantizers: bits per layer (weight/input/output, "-" when not
 * quantized) and the weights' bytes as float32, packed at their bit width,
 * and as stored in quantized.safetensors. */
static void
print_bits (JsonObject *o, const char *key, GString *s)
{
  JsonNode *n = json_object_get_member (o, key);
  if (s->len)
    g_string_append_c (s, '/');
  if (n && JSON_NODE_HOLDS_VALUE (n))
    g_string_append_printf (s, "%" G_GINT64_FORMAT, json_node_get_int (n));
  else
    g_string_append_c (s, '-');
}

static void
print_quant_table (JsonObject *q, const char *dir)
{
  JsonArray *layers = json_object_get_array_member (q, "layers");
  printf ("\n%-14s %-10s %-10s %10s %12s %12s %12s\n", "layer", "type", "bits w/i/o", "weights", "float32 B",
          "packed B", "int file B");
  gint64 weights = 0;
  for (guint i = 0; i < json_array_get_length (layers); i++) {
    JsonObject *o = json_array_get_object_element (layers, i);
    g_autoptr (GString) bits = g_string_new (NULL);
    print_bits (o, "weight_bits", bits);
    print_bits (o, "input_bits", bits);
    print_bits (o, "output_bits", bits);
    weights += json_object_get_int_member (o, "weights");
    printf ("%-14s %-10s %-10s %10" G_GINT64_FORMAT " %12" G_GINT64_FORMAT " %12" G_GINT64_FORMAT " %12" G_GINT64_FORMAT "\n",
            json_object_get_string_member (o, "name"), json_object_get_string_member (o, "type"), bits->str,
            json_object_get_int_member (o, "weights"), json_object_get_int_member (o, "bytes_float32"),
            json_object_get_int_member (o, "bytes_packed"), json_object_get_int_member (o, "bytes_int"));
  }
  printf ("%-14s %-10s %-10s %10" G_GINT64_FORMAT " %12" G_GINT64_FORMAT " %12" G_GINT64_FORMAT " %12" G_GINT64_FORMAT "\n",
          "total", "", "", weights, json_object_get_int_member (q, "bytes_float32"),
          json_object_get_int_member (q, "bytes_packed"), json_object_get_int_member (q, "bytes_int"));
  printf ("weights: %.2fx smaller at their bit width than as float32\n", json_object_get_double_member (q, "ratio"));
  g_autofree char *st = g_build_filename (dir, "quantized.safetensors", NULL);
  g_autofree char *model = g_build_filename (dir, "model.safetensors", NULL);
  GStatBuf a, b;
  if (g_stat (st, &a) == 0 && g_stat (model, &b) == 0)
    printf ("files: %s %" G_GINT64_FORMAT " bytes (integer weights, scales, float biases); %s %" G_GINT64_FORMAT
            " bytes (float32)\n", st, (gint64) a.st_size, model, (gint64) b.st_size);
}

/* The quantization report merged into report.json's layers (by name),
 * with its totals and the files' sizes under "quantization". */
static void
merge_quant_report (JsonObject *report, JsonObject *q, const char *dir)
{
  JsonArray *layers = json_object_get_array_member (report, "layers");
  JsonArray *qlayers = json_object_get_array_member (q, "layers");
  static const char *const keys[] = { "weight_bits", "input_bits", "output_bits", "bytes_float32",
                                      "bytes_packed", "bytes_int" };
  for (guint i = 0; layers && i < json_array_get_length (layers); i++) {
    JsonObject *o = json_array_get_object_element (layers, i);
    for (guint j = 0; j < json_array_get_length (qlayers); j++) {
      JsonObject *qo = json_array_get_object_element (qlayers, j);
      if (g_strcmp0 (json_object_get_string_member (o, "name"), json_object_get_string_member (qo, "name")) != 0)
        continue;
      for (guint k = 0; k < G_N_ELEMENTS (keys); k++)
        json_object_set_member (o, keys[k], json_node_copy (json_object_get_member (qo, keys[k])));
    }
  }
  JsonObject *totals = json_object_new ();
  json_object_set_int_member (totals, "bytes_float32", json_object_get_int_member (q, "bytes_float32"));
  json_object_set_int_member (totals, "bytes_packed", json_object_get_int_member (q, "bytes_packed"));
  json_object_set_int_member (totals, "bytes_int", json_object_get_int_member (q, "bytes_int"));
  json_object_set_double_member (totals, "ratio", json_object_get_double_member (q, "ratio"));
  JsonObject *sizes = json_object_new ();
  static const char *const files[] = { "quantized.safetensors", "calibration.json", "model.safetensors" };
  for (guint k = 0; k < G_N_ELEMENTS (files); k++) {
    g_autofree char *path = g_build_filename (dir, files[k], NULL);
    GStatBuf st;
    if (g_stat (path, &st) == 0)
      json_object_set_int_member (sizes, files[k], (gint64) st.st_size);
  }
  json_object_set_object_member (totals, "file_bytes", sizes);
  json_object_set_object_member (report, "quantization", totals);
}

/* report.json: the library's report, with the accuracies added (and, for
 * a quantizer, the bits and sizes of its layers). */
static gboolean
write_report (const CompressArgs *a, NnicCompressor *c, const Accuracies *acc, JsonObject *quant,
              GError **error)
{
  g_autoptr (JsonObject) extra = json_object_new ();
  json_object_set_string_member (extra, "model", a->model);
  json_object_set_int_member (extra, "finetune_epochs", a->finetune_epochs);
  if (!acc->measured) {
    json_object_set_string_member (extra, "accuracy", "not measured: no data set");
  } else {
    json_object_set_double_member (extra, "accuracy_before", acc->before);
    json_object_set_double_member (extra, "accuracy_pruned", acc->pruned);
    json_object_set_double_member (extra, "accuracy_after", acc->have_after ? acc->after : acc->pruned);
  }
  g_autofree char *path = g_build_filename (a->out, "report.json", NULL);
  if (!quant)
    return nnic_compressor_write_report (c, path, extra, error);
  /* A quantizer's: the same, its layers with their bits and sizes. */
  g_autoptr (JsonObject) report = nnic_compressor_report (c);
  merge_quant_report (report, quant, a->out);
  g_autoptr (GList) members = json_object_get_members (report);
  for (GList *l = members; l; l = l->next)
    json_object_set_member (extra, l->data, json_node_copy (json_object_get_member (report, l->data)));
  return nnic_write_json_atomic (path, extra, error);
}

/* Whether an algorithm declares the config key `name` (the registry's
 * copy of the keys has the host's stride). */
static gboolean
declares_key (const char *algorithm, const char *name)
{
  const NnicAlgorithm *alg = algorithm ? nnic_load_algorithm (algorithm, NULL) : NULL;
  for (guint i = 0; alg && alg->info->keys && i < alg->info->n_keys; i++)
    if (g_strcmp0 (alg->info->keys[i].name, name) == 0)
      return TRUE;
  return FALSE;
}

/* Maskers that rank filters by statistics of the data (taylorfo, apoz,
 * mean_activation: those that declare `statistics_batch_num`) have no masks
 * after compress(); in NNI they appear at the first optimizer steps of
 * training. So that the pruned accuracy (and an export without
 * fine-tuning) sees the masks, feed them that many training batches first:
 * forward, backward and an optimizer step with lr 0 (the weights stay;
 * SGD's momentum keeps these gradients), then ask for the masks again. */
static gboolean
gather_statistics (NnicCompressor *c, NnicModel *model, NnicOptimizer *opt, const NnicDataset *train,
                   const CompressArgs *a, GError **error)
{
  if (!declares_key (nnic_compressor_masker (c), "statistics_batch_num"))
    return TRUE;
  if (!train) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s ranks filters by statistics of training batches and needs a data set (--data X.npy,Y.npy)",
                 nnic_compressor_masker (c));
    return FALSE;
  }
  gint64 batches = 0;
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++)
    batches = MAX (batches, (gint64) nnic_wrapper_config_double (nnic_compressor_wrapper (c, i),
                                                                 "statistics_batch_num", 1.0));
  g_autoptr (NnicLoader) loader = nnic_loader_new (train, a->batch_size, TRUE, (guint64) a->seed, error);
  if (!loader)
    return FALSE;
  const double lr = nnic_optimizer_get_lr (opt);
  const NnicTensor *x, *y;
  gint64 done = 0;
  gboolean ok = TRUE;
  nnic_model_set_training (model, TRUE);
  nnic_loader_start_epoch (loader, 0);
  nnic_optimizer_set_lr (opt, 0.0);
  while (ok && done < batches && nnic_loader_next (loader, &x, &y)) {
    const NnicTensor *logits = nnic_model_forward (model, x, error);
    g_autoptr (NnicTensor) grad = logits ? nnic_tensor_new_like (logits, error) : NULL;
    if ((ok = grad != NULL)) {
      nnic_cross_entropy (logits, y, grad, NULL, error);
      ok = !(error && *error);
    }
    nnic_model_zero_grad (model);
    ok = ok && nnic_model_backward (model, grad, error);
    if (ok)
      nnic_optimizer_step (opt);
    done++;
  }
  nnic_optimizer_set_lr (opt, lr);
  if (!ok)
    return FALSE;
  printf ("%s: statistics from %" G_GINT64_FORMAT " training batch%s (lr 0: the weights stay)\n",
          nnic_compressor_masker (c), done, done == 1 ? "" : "es");
  return nnic_compressor_compress (c, error);
}

/* The trainer pruners such as admm call inside compress(): one epoch over
 * the training set with their optimizer. */
typedef struct {
  const NnicDataset *train;
  const CompressArgs *args;
} TrainerData;

static gboolean
train_one_epoch (NnicModel *m, NnicOptimizer *opt, guint epoch, gpointer user_data, GError **error)
{
  TrainerData *t = user_data;
  g_autoptr (NnicLoader) loader = nnic_loader_new (t->train, t->args->batch_size, TRUE,
                                                   (guint64) t->args->seed, error);
  NnicCliProgress progress;
  nnic_cli_progress_init (&progress, t->args->quiet);
  NnicEpochStats st;
  if (!loader || !nnic_train_epoch (m, opt, loader, epoch, 0, nnic_cli_progress_update, &progress, &st, error))
    return FALSE;
  nnic_cli_progress_finish (&progress);
  printf ("training inside %s: epoch %u, loss %.4f, %.1f s\n", t->args->algorithm, epoch + 1, st.loss, st.seconds);
  fflush (stdout);
  return TRUE;
}

/* The evaluator search-based pruners call: accuracy on the test set (or
 * its first --eval-limit images). */
static gboolean
test_accuracy (NnicModel *m, double *score, gpointer user_data, GError **error)
{
  return nnic_evaluate (m, user_data, 1000, score, NULL, error);
}

/* The algorithm's epochs inside the fine-tune epochs: with
 * --updates-per-epoch N, update_epoch(e * N + k) before the k-th N-th of
 * fine-tune epoch e (NNI's AGP example split one epoch in three). */
typedef struct {
  NnicCompressor *c;
  int per_epoch;
  int done; /* updates made so far in this epoch */
  NnicCliProgress *progress;
} EpochSlices;

static gboolean
update_at_slice (guint epoch, guint batch, guint n_batches, gpointer user_data, GError **error)
{
  EpochSlices *s = user_data;
  if (batch == 0)
    s->done = 0;
  const int slice = n_batches ? (int) ((guint64) batch * (guint64) s->per_epoch / n_batches) : 0;
  for (; s->done <= slice; s->done++)
    if (!nnic_compressor_update_epoch (s->c, epoch * (guint) s->per_epoch + (guint) s->done, error))
      return FALSE;
  return TRUE;
}

static void
slice_progress (const NnicProgress *p, gpointer user_data)
{
  nnic_cli_progress_update (p, ((EpochSlices *) user_data)->progress);
}

static int
run (CompressArgs *a)
{
  GError *error = NULL;
  if (a->updates_per_epoch < 1) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "--updates-per-epoch must be at least 1, got %d",
                 a->updates_per_epoch);
    return nnic_cli_fail ("compress", error);
  }
  if (!a->config || !a->algorithm || !a->out) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "--config, --algorithm and --out are required (see nnic compress --help)");
    return nnic_cli_fail ("compress", error);
  }
  if (!a->checkpoint && !a->from_scratch && !g_str_has_suffix (a->model, ".onnx")) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "--checkpoint is required for the built-in model %s (an ONNX file carries its weights; "
                 "--from-scratch starts from PyTorch's initialisation)", a->model);
    return nnic_cli_fail ("compress", error);
  }
  g_autoptr (NnicConfigList) config = nnic_config_list_new_from_file (a->config, &error);
  if (!config)
    return nnic_cli_fail ("compress", error);
  /* A model from a file has no default data set: without --data it is
   * pruned without fine-tuning or accuracy. */
  const gboolean onnx = g_str_has_suffix (a->model, ".onnx");
  const char *data = a->data ? a->data : onnx ? NULL : "fashion-mnist";
  if (data && !strcmp (data, "none"))
    data = NULL;
  if (!data && a->finetune_epochs > 0) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "fine-tuning needs a data set: give --data X.npy,Y.npy, or --finetune-epochs 0 to prune "
                 "without fine-tuning");
    return nnic_cli_fail ("compress", error);
  }
  g_autoptr (NnicDataset) train = data ? nnic_cli_load_data (data, a->data_dir, TRUE, a->limit, &error) : NULL;
  g_autoptr (NnicDataset) test = train ? nnic_cli_load_data (data, a->data_dir, FALSE, a->eval_limit, &error) : NULL;
  if (data && !test)
    return nnic_cli_fail ("compress", error);
  g_autoptr (NnicModel) model = nnic_cli_load_model (a->model, train, a->checkpoint, &error);
  if (!model)
    return nnic_cli_fail ("compress", error);
  if (a->from_scratch)
    nnic_model_init_params (model, (guint64) a->seed);
  nnic_model_set_seed (model, (guint64) a->seed);

  Accuracies acc = { .measured = test != NULL };
  if (!data)
    printf ("no data set: pruning without fine-tuning; the accuracy is not measured\n");
  if (acc.measured && !nnic_evaluate (model, test, 1000, &acc.before, NULL, &error))
    return nnic_cli_fail ("compress", error);
  /* NNI's recipes: SGD with momentum for fine-tuning, Adam for BNN. */
  g_autoptr (NnicOptimizer) opt = NULL;
  if (!a->optimizer || !strcmp (a->optimizer, "sgd"))
    opt = nnic_optimizer_new_sgd (model, &(NnicSgdOptions) { .lr = a->lr, .momentum = a->momentum }, &error);
  else if (!strcmp (a->optimizer, "adam"))
    opt = nnic_optimizer_new_adam (model, &(NnicAdamOptions) { .lr = a->lr }, &error);
  else
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "--optimizer: unknown optimizer '%s' (sgd or adam)",
                 a->optimizer);
  if (!opt)
    return nnic_cli_fail ("compress", error);
  TrainerData trainer = { train, a };
  NnicCompressorOptions options = { .masker = a->masker, .dependency_aware = a->dependency_aware };
  if (train) {
    options.trainer = train_one_epoch;
    options.trainer_data = &trainer;
    options.evaluator = test_accuracy;
    options.evaluator_data = test;
  }
  g_autoptr (NnicCompressor) c = nnic_compressor_new (model, a->algorithm, config, opt, &options, &error);
  if (!c && g_error_matches (error, NNIC_ERROR, NNIC_ERROR_CONFIG))
    g_prefix_error (&error, "%s: ", a->config); /* say which file the entry is in */
  if (!c || !nnic_compressor_compress (c, &error) || !gather_statistics (c, model, opt, train, a, &error))
    return nnic_cli_fail ("compress", error);
  if (acc.measured) {
    if (!nnic_evaluate (model, test, 1000, &acc.pruned, NULL, &error))
      return nnic_cli_fail ("compress", error);
    printf ("%s on %s: %u layers wrapped; accuracy before %.4f, after compressing %.4f\n", a->algorithm,
            a->model, nnic_compressor_n_wrappers (c), acc.before, acc.pruned);
  } else {
    printf ("%s on %s: %u layers wrapped\n", a->algorithm, a->model, nnic_compressor_n_wrappers (c));
  }
  fflush (stdout);

  if (a->finetune_epochs > 0) {
    g_autoptr (NnicLoader) loader = nnic_loader_new (train, a->batch_size, TRUE, (guint64) a->seed, &error);
    if (!loader)
      return nnic_cli_fail ("compress", error);
    NnicCliProgress progress;
    nnic_cli_progress_init (&progress, a->quiet);
    EpochSlices slices = { .c = c, .per_epoch = a->updates_per_epoch, .progress = &progress };
    const NnicTrainCallbacks cb = { .progress = slice_progress, .before_batch = update_at_slice,
                                    .user_data = &slices };
    for (int e = 0; e < a->finetune_epochs; e++) {
      NnicEpochStats st;
      if (!nnic_train_epoch_with (model, opt, loader, (guint) e, (guint) a->finetune_epochs, &cb, &st, &error))
        return nnic_cli_fail ("compress", error);
      nnic_cli_progress_finish (&progress);
      if (!nnic_evaluate (model, test, 1000, &acc.after, NULL, &error))
        return nnic_cli_fail ("compress", error);
      printf ("fine-tune epoch %d/%d: loss %.4f, test accuracy %.4f, %.1f s\n", e + 1,
              a->finetune_epochs, st.loss, acc.after, st.seconds);
      fflush (stdout);
    }
    acc.have_after = TRUE;
  }

  if (g_mkdir_with_parents (a->out, 0755) != 0) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_IO, "%s: cannot create the directory: %s", a->out,
                 g_strerror (errno));
    return nnic_cli_fail ("compress", error);
  }
  g_autofree char *model_path = g_build_filename (a->out, "model.safetensors", NULL);
  /* Quantizers: no masks, but the integer weights and the calibration
   * beside the float weights (DIR/quantized.safetensors, calibration.json). */
  const NnicAlgorithm *alg = nnic_load_algorithm (a->algorithm, NULL);
  const gboolean quantizer = alg && alg->info->kind == NNIC_ALGORITHM_QUANTIZER;
  g_autofree char *masks_path = quantizer ? NULL : g_build_filename (a->out, "masks.safetensors", NULL);
  if (!nnic_compressor_export (c, model_path, masks_path, &error) ||
      (quantizer && !nnic_compressor_export_quantized (c, a->out, &error)))
    return nnic_cli_fail ("compress", error);
  g_autoptr (JsonObject) quant = quantizer ? nnic_compressor_quant_report (c) : NULL;
  if (!write_report (a, c, &acc, quant, &error))
    return nnic_cli_fail ("compress", error);
  /* Pruned weights with the masks applied; quantized tensors in QDQ form. */
  if (a->export_onnx && !nnic_compressor_export_onnx (c, a->export_onnx, &error))
    return nnic_cli_fail ("compress", error);

  g_autoptr (JsonObject) report = nnic_compressor_report (c);
  if (quant)
    print_quant_table (quant, a->out);
  else
    print_table (json_object_get_array_member (report, "layers"), json_object_get_int_member (report, "weights_kept"),
                 json_object_get_int_member (report, "weights_total"), nnic_model_count_parameters (model));
  if (acc.measured) {
    printf ("accuracy before: %.4f\naccuracy pruned: %.4f\n", acc.before, acc.pruned);
    if (acc.have_after)
      printf ("accuracy after: %.4f\n", acc.after);
  } else {
    printf ("accuracy: not measured (no data set)\n");
  }
  if (masks_path)
    printf ("wrote %s, %s and %s/report.json\n", model_path, masks_path, a->out);
  else
    printf ("wrote %s and %s/report.json\n", model_path, a->out);
  if (quantizer)
    printf ("wrote %s/quantized.safetensors and %s/calibration.json (nnic eval --quantized %s runs them on integers)\n",
            a->out, a->out, a->out);
  if (a->export_onnx)
    printf ("wrote %s (ONNX)\n", a->export_onnx);
  return 0;
}

int
nnic_cmd_compress (int argc, char **argv)
{
  CompressArgs a = { .finetune_epochs = 1, .batch_size = 64, .lr = 0.01, .momentum = 0.5,
                     .updates_per_epoch = 1 };
  GOptionEntry entries[] = {
    { "model", 'm', 0, G_OPTION_ARG_STRING, &a.model, "Built-in model (default nni_cnn) or an ONNX file", "NAME|FILE.onnx" },
    { "checkpoint", 'c', 0, G_OPTION_ARG_FILENAME, &a.checkpoint, "Trained weights (safetensors)", "FILE" },
    { "config", 0, 0, G_OPTION_ARG_FILENAME, &a.config, "Config list (JSON, NNI's keys)", "FILE" },
    { "algorithm", 'a', 0, G_OPTION_ARG_STRING, &a.algorithm, "Algorithm (nnic plugins lists them); a masker name prunes one-shot", "NAME" },
    { "masker", 0, 0, G_OPTION_ARG_STRING, &a.masker, "Masker a scheduling pruner drives (default level)", "NAME" },
    { "dependency-aware", 0, 0, G_OPTION_ARG_NONE, &a.dependency_aware, "Filter maskers: prune the same channels in layers that meet in an Add, evenly in grouped convolutions", NULL },
    { "finetune-epochs", 'e', 0, G_OPTION_ARG_INT, &a.finetune_epochs, "Fine-tuning epochs after compressing (default 1)", "N" },
    { "updates-per-epoch", 0, 0, G_OPTION_ARG_INT, &a.updates_per_epoch, "Algorithm epochs per fine-tune epoch: update_epoch(e*N+k) at each N-th of epoch e (default 1; NNI's AGP example used 3)", "N" },
    { "lr", 0, 0, G_OPTION_ARG_DOUBLE, &a.lr, "Fine-tuning SGD learning rate (default 0.01)", "X" },
    { "momentum", 0, 0, G_OPTION_ARG_DOUBLE, &a.momentum, "Fine-tuning SGD momentum (default 0.5)", "X" },
    { "optimizer", 0, 0, G_OPTION_ARG_STRING, &a.optimizer, "Fine-tuning optimizer: sgd (default) or adam (with --lr; NNI's BNN recipe)", "NAME" },
    { "from-scratch", 0, 0, G_OPTION_ARG_NONE, &a.from_scratch, "Start a built-in model from PyTorch's initialisation instead of a checkpoint (NNI's BNN example)", NULL },
    { "batch-size", 'b', 0, G_OPTION_ARG_INT, &a.batch_size, "Batch size (default 64)", "N" },
    { "seed", 's', 0, G_OPTION_ARG_INT64, &a.seed, "Seed of shuffling (default 0)", "S" },
    { "data", 'd', 0, G_OPTION_ARG_STRING, &a.data, "Data set: fashion-mnist (the default for built-in models), X.npy,Y.npy, or none", "NAME|X.npy,Y.npy" },
    { "data-dir", 0, 0, G_OPTION_ARG_FILENAME, &a.data_dir, "Where the data set's files are", "DIR" },
    { "limit", 0, 0, G_OPTION_ARG_INT64, &a.limit, "Fine-tune on the first N images only", "N" },
    { "eval-limit", 0, 0, G_OPTION_ARG_INT64, &a.eval_limit, "Evaluate on the first N test images only", "N" },
    { "export-onnx", 0, 0, G_OPTION_ARG_FILENAME, &a.export_onnx, "Also write the compressed model as ONNX", "FILE" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME, &a.out, "Output directory (model.safetensors, masks.safetensors, report.json; quantized.safetensors and calibration.json for quantizers)", "DIR" },
    { "quiet", 'q', 0, G_OPTION_ARG_NONE, &a.quiet, "No progress display", NULL },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- prune or quantize a trained model");
  g_option_context_set_summary (ctx,
      "Wraps the layers a config list selects, computes masks (or quantizes), fine-tunes with\n"
      "NNI's recipe (SGD, lr 0.01, momentum 0.5), prints the per-layer sparsity and the accuracy\n"
      "before and after, and writes DIR/model.safetensors (masks applied), DIR/masks.safetensors\n"
      "(conv1.weight_mask, ...) and DIR/report.json. A quantizer (naive, qat, dorefa, bnn, lsq) also\n"
      "writes DIR/quantized.safetensors (integer weights, scale, zero point, float bias per layer) and\n"
      "DIR/calibration.json (bits, scales, zero points and ranges; NNI's calibration keys), prints the\n"
      "bits and the weights' bytes per layer, and nnic eval --quantized DIR runs them on integers. Example:\n"
      "  nnic compress --model nni_cnn --checkpoint nni_cnn.safetensors --config level.json \\\n"
      "                --algorithm level --out pruned/\n"
      "with level.json: [{\"sparsity\": 0.8, \"op_types\": [\"default\"]}]");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  int status;
  if (!g_option_context_parse (ctx, &argc, &argv, &error)) {
    status = nnic_cli_fail ("compress", error);
  } else {
    if (!a.model) a.model = g_strdup ("nni_cnn");
    status = run (&a);
  }
  g_free (a.model); g_free (a.checkpoint); g_free (a.config); g_free (a.algorithm);
  g_free (a.masker); g_free (a.out); g_free (a.data); g_free (a.data_dir); g_free (a.export_onnx); g_free (a.optimizer);
  return status;
}
