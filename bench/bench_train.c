/* Training throughput of NNI's example CNN, and how close its conv and
 * linear layers come to the machine's sgemm rate measured in the same run.
 *
 *   bench_train [--reps N]
 *
 * Prints one JSON object per measurement (the shape torch_baseline.py
 * uses, so the two can be read side by side), then a summary. Times are
 * medians; compare ratios from one sitting, never absolute numbers. */
#include <nnic/nnic.h>

#include "bench_util.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>




static void
fill_random (float *p, int64_t n, NnicRng *r)
{
  for (int64_t i = 0; i < n; i++)
    p[i] = (float) (nnic_rng_uniform (r) * 2.0 - 1.0);
}

/* sgemm 1024³ GFLOP/s: the machine's practical compute ceiling. */
static double
bench_sgemm (int reps, double *best)
{
  const int n = 1024;
  float *a = malloc (sizeof (float) * n * n), *b = malloc (sizeof (float) * n * n),
        *c = malloc (sizeof (float) * n * n);
  NnicRng r;
  nnic_rng_seed (&r, 1);
  fill_random (a, (int64_t) n * n, &r);
  fill_random (b, (int64_t) n * n, &r);
  double *t = g_new (double, reps);
  for (int i = -3; i < reps; i++) {
    double t0 = bench_now_s ();
    cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    if (i >= 0)
      t[i] = bench_now_s () - t0;
  }
  double flop = 2.0 * n * n * n;
  double med = bench_median (t, reps);
  *best = flop / t[0] / 1e9;
  g_free (t);
  free (a);
  free (b);
  free (c);
  return flop / med / 1e9;
}

/* FLOPs of a conv or linear node per batch: forward, weight gradient, and
 * the input gradient where backward computes one (not for the first layer). */
static double
node_flops (NnicModel *m, guint i, int64_t batch)
{
  const char *type = nnic_model_node_type (m, i);
  gboolean first = nnic_model_node_input (m, i, 0) == 0;
  g_autofree char *wname = g_strconcat (nnic_model_node_name (m, i), ".weight", NULL);
  NnicParam *w = nnic_model_find_param (m, wname, NULL);
  if (!w)
    return 0;
  double per_out = (double) w->value->numel / (double) w->value->shape[0]; /* K */
  int64_t shape[NNIC_MAX_DIMS];
  int nd = nnic_model_node_shape (m, i, shape);
  double outputs = (double) batch;
  for (int k = 0; k < nd; k++)
    outputs *= (double) shape[k];
  if (strcmp (type, "Conv2d") != 0 && strcmp (type, "Linear") != 0)
    return 0;
  double fwd = 2.0 * outputs * per_out;
  return fwd * (first ? 2.0 : 3.0);
}

typedef struct {
  double images_per_s, images_per_s_best, layer_gflops, layer_share;
} TrainResult;

/* wrapped: with the level pruner's wrappers at sparsity 0.8 (masks
 * re-applied after every optimizer step), as torch_baseline.py's NNI-style
 * wrapped variant. */
static TrainResult
bench_train (int64_t batch, int reps, gboolean wrapped)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  NnicOptimizer *opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.01, .momentum = 0.5 }, &err);
  NnicCompressor *c = NULL;
  if (wrapped) {
    g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (
        "[{\"sparsity\": 0.8, \"op_types\": [\"default\"]}]", "bench", &err);
    c = cl ? nnic_compressor_new (m, "level", cl, opt, NULL, &err) : NULL;
    if (!c || !nnic_compressor_compress (c, &err)) {
      fprintf (stderr, "bench_train: %s (set NNIC_PLUGIN_PATH to the plugins)\n", err->message);
      exit (1);
    }
  }
  NnicTensor *x = nnic_tensor_new_f32 (&err, 4, batch, (int64_t) 1, (int64_t) 28, (int64_t) 28);
  NnicTensor *y = nnic_tensor_new (NNIC_DTYPE_I64, 1, &batch, &err);
  NnicTensor *g = nnic_tensor_new_f32 (&err, 2, batch, (int64_t) 10);
  if (err) {
    fprintf (stderr, "bench_train: %s\n", err->message);
    exit (1);
  }
  NnicRng r;
  nnic_rng_seed (&r, 0);
  fill_random (x->f32, x->numel, &r);
  for (int64_t i = 0; i < batch; i++)
    y->i64[i] = (int64_t) nnic_rng_below (&r, 10);
  nnic_model_set_training (m, TRUE);

  double *t = g_new (double, reps);
  for (int i = -3; i < reps; i++) {
    double t0 = bench_now_s ();
    const NnicTensor *logits = nnic_model_forward (m, x, &err);
    nnic_cross_entropy (logits, y, g, NULL, &err);
    nnic_model_zero_grad (m);
    nnic_model_backward (m, g, &err);
    nnic_optimizer_step (opt);
    if (i >= 0)
      t[i] = bench_now_s () - t0;
  }
  TrainResult res = { 0 };
  res.images_per_s = (double) batch / bench_median (t, reps);
  res.images_per_s_best = (double) batch / t[0];

  /* The conv and linear layers' own time, step by step: their FLOPs over
   * that time, median over the steps. */
  nnic_model_set_profiling (m, TRUE);
  double flops = 0;
  for (guint i = 0; i < nnic_model_n_nodes (m); i++)
    flops += node_flops (m, i, batch);
  double *rate = g_new (double, reps), *share = g_new (double, reps);
  for (int i = 0; i < reps; i++) {
    nnic_model_reset_profile (m);
    double t0 = bench_now_s ();
    const NnicTensor *logits = nnic_model_forward (m, x, &err);
    nnic_cross_entropy (logits, y, g, NULL, &err);
    nnic_model_zero_grad (m);
    nnic_model_backward (m, g, &err);
    nnic_optimizer_step (opt);
    double step = bench_now_s () - t0, secs = 0;
    for (guint k = 0; k < nnic_model_n_nodes (m); k++) {
      double fw, bw;
      if (node_flops (m, k, batch) == 0)
        continue;
      nnic_model_node_time (m, k, &fw, &bw);
      secs += fw + bw;
    }
    rate[i] = flops / secs / 1e9;
    share[i] = secs / step;
  }
  res.layer_gflops = bench_median (rate, reps);
  res.layer_share = bench_median (share, reps);
  g_free (rate);
  g_free (share);
  if (g_getenv ("NNIC_BENCH_LAYERS")) {
    /* The last step, layer by layer. */
    for (guint i = 1; i < nnic_model_n_nodes (m); i++) {
      double fw, bw, f = node_flops (m, i, batch);
      nnic_model_node_time (m, i, &fw, &bw);
      fprintf (stderr, "  batch %3" G_GINT64_FORMAT " %-8s %-10s fwd %7.3f ms  bwd %7.3f ms  %6.1f GFLOP/s\n", batch,
               nnic_model_node_name (m, i), nnic_model_node_type (m, i), 1e3 * fw,
               1e3 * bw, f > 0 ? f / (fw + bw) / 1e9 : 0.0);
    }
  }
  g_free (t);
  nnic_tensor_free (x);
  nnic_tensor_free (y);
  nnic_tensor_free (g);
  nnic_compressor_free (c);
  nnic_optimizer_free (opt);
  nnic_model_free (m);
  return res;
}

int
main (int argc, char **argv)
{
  int reps = 30;
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp (argv[i], "--reps"))
      reps = MAX (3, atoi (argv[i + 1]));
  const char *threads = g_getenv ("OPENBLAS_NUM_THREADS");
  double best;
  double sgemm = bench_sgemm (15, &best);
  printf ("{\"what\": \"sgemm_1024\", \"gflops_median\": %.1f, \"gflops_best\": %.1f, \"impl\": \"nnic\", \"threads\": \"%s\"}\n",
          sgemm, best, threads ? threads : "default");
  TrainResult res[2], wrapped[2];
  int64_t batches[2] = { 64, 256 };
  for (int k = 0; k < 2; k++) {
    res[k] = bench_train (batches[k], reps, FALSE);
    wrapped[k] = bench_train (batches[k], reps, TRUE);
    for (int v = 0; v < 2; v++) {
      TrainResult *r = v ? &wrapped[k] : &res[k];
      printf ("{\"what\": \"train_step_nni_cnn\", \"batch\": %" G_GINT64_FORMAT ", \"wrapped\": %s, "
              "\"images_per_s_median\": %.0f, \"images_per_s_best\": %.0f, \"conv_linear_gflops\": %.1f, "
              "\"conv_linear_fraction_of_sgemm\": %.3f, \"conv_linear_share_of_step\": %.3f, \"impl\": \"nnic\"}\n",
              batches[k], v ? "true" : "false", r->images_per_s, r->images_per_s_best, r->layer_gflops,
              r->layer_gflops / sgemm, r->layer_share);
    }
  }
  fflush (stdout);
  fprintf (stderr, "\nsgemm 1024^3: %.1f GFLOP/s (median)\n", sgemm);
  for (int k = 0; k < 2; k++) {
    fprintf (stderr, "nni_cnn train step, batch %3" G_GINT64_FORMAT ": %6.0f images/s; conv+linear at %.1f GFLOP/s = %.0f%% of sgemm (%.0f%% of the step)\n",
             batches[k], res[k].images_per_s, res[k].layer_gflops, 100 * res[k].layer_gflops / sgemm,
             100 * res[k].layer_share);
    fprintf (stderr, "  with level wrappers (0.8): %6.0f images/s, step time %+.1f%%\n", wrapped[k].images_per_s,
             100.0 * (res[k].images_per_s / wrapped[k].images_per_s - 1.0));
  }
  return 0;
}
