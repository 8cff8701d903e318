/* Mask computation time of the maskers, one layer, median of the runs.
 *
 *   NNIC_PLUGIN_PATH=build/plugins bench_masks
 *
 * Prints JSON lines shaped like torch_baseline.py's `masks` output, so the
 * two can be read side by side (bench/side_by_side.sh). Level on a
 * 4096x4096 Linear at sparsity 0.5 and 0.8; the bytes a mask takes per
 * weight. l1filter, l2filter and fpgm on Conv2d(256, 256, 3) and
 * Conv2d(512, 512, 3) at 0.5: the whole compress(), the masker's own
 * scoring, and one plain pass over the same weights (sum of |w|, the
 * memory-bound floor of L1/L2) measured in the same run, with the ratios. */
#include <nnic/nnic.h>

#include "bench_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>



/* Box–Muller normals, like torch.randn. */
static void
fill_normal (NnicTensor *t, guint64 seed)
{
  NnicRng r;
  nnic_rng_seed (&r, seed);
  for (int64_t i = 0; i < t->numel; i += 2) {
    double u = 1.0 - nnic_rng_uniform (&r), v = nnic_rng_uniform (&r);
    double m = sqrt (-2.0 * log (u));
    t->f32[i] = (float) (m * cos (2 * G_PI * v));
    if (i + 1 < t->numel)
      t->f32[i + 1] = (float) (m * sin (2 * G_PI * v));
  }
}

static void
bench_level (double sparsity, int reps)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_flat (4096);
  nnic_model_add_linear (m, "fc", NULL, &(NnicLinearSpec) { .in_features = 4096, .out_features = 4096 }, &err);
  NnicTensor *w = nnic_model_find_param (m, "fc.weight", &err)->value;
  g_autoptr (NnicTensor) original = NULL;
  fill_normal (w, 0);
  original = nnic_tensor_copy (w, &err);
  g_autofree char *json = g_strdup_printf ("[{\"sparsity\": %g, \"op_types\": [\"default\"]}]", sparsity);
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (json, "bench", &err);
  double *t = g_new (double, reps);
  size_t mask_bytes = 0;
  for (int i = -1; i < reps; i++) {
    nnic_tensor_copy_into (w, original, NULL);
    g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "level", cl, NULL, NULL, &err);
    if (!c) {
      fprintf (stderr, "bench_masks: %s\n", err->message);
      exit (1);
    }
    double t0 = bench_now_s ();
    nnic_compressor_compress (c, &err);
    if (i >= 0)
      t[i] = bench_now_s () - t0;
    const NnicTensor *mask = nnic_wrapper_get_mask (nnic_compressor_wrapper (c, 0), "weight");
    mask_bytes = nnic_tensor_nbytes (mask);
  }
  qsort (t, (size_t) reps, sizeof *t, bench_cmp_double);
  printf ("{\"what\": \"mask_level_linear4096\", \"sparsity\": %g, \"seconds_median\": %.5f, "
          "\"seconds_best\": %.5f, \"mask_bytes_per_weight\": %.2f, \"impl\": \"nnic\"}\n",
          sparsity, t[reps / 2], t[0], (double) mask_bytes / (double) w->numel);
  g_free (t);
}

/* One plain pass over the weights: sum of |w|, sixteen independent sums
 * so that it runs at memory speed rather than at the latency of one add. */
static double
plain_pass (const float *x, int64_t n)
{
  float acc[16] = { 0 };
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; k++)
      acc[k] += fabsf (x[i + k]);
  double s = 0;
  for (int k = 0; k < 16; k++)
    s += acc[k];
  for (; i < n; i++)
    s += fabsf (x[i]);
  return s;
}

static volatile double plain_sink;

static void
die (GError *err)
{
  fprintf (stderr, "bench_masks: %s\n", err ? err->message : "failed");
  exit (1);
}

/* Three times per run, on the same weights: one plain pass; the masker's
 * own work (its channel scores, through the plugin's vtable: the scores
 * are all of L1/L2's reading of the weights, and all of FPGM's work); and
 * the whole one-shot compress(), which adds the threshold, building the
 * masks and the core's nnic_wrapper_set_mask() (copying the mask and
 * applying it to the weights). */
static void
bench_filter (const char *algorithm, int ch, int reps)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (ch, 3, 3);
  nnic_model_add_conv2d (m, "conv", NULL, &(NnicConv2dSpec) { .in_channels = ch, .out_channels = ch, .kernel_size = 3 }, &err);
  NnicTensor *w = nnic_model_find_param (m, "conv.weight", &err)->value;
  fill_normal (w, 1);
  g_autoptr (NnicTensor) original = nnic_tensor_copy (w, &err);
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (
      "[{\"sparsity\": 0.5, \"op_types\": [\"Conv2d\"]}]", "bench", &err);
  const NnicAlgorithm *alg = nnic_load_algorithm (algorithm, &err);
  if (!alg)
    die (err);
  const NnicMaskerVTable *vt = alg->info->vtable;
  float *scores = g_new (float, ch);
  double *t = g_new (double, reps), *p = g_new (double, reps), *sc = g_new (double, reps);
  for (int i = -1; i < reps; i++) {
    nnic_tensor_copy_into (w, original, NULL);
    double t0 = bench_now_s ();
    plain_sink = plain_pass (w->f32, w->numel);
    if (i >= 0)
      p[i] = bench_now_s () - t0;
    g_autoptr (NnicCompressor) c = nnic_compressor_new (m, algorithm, cl, NULL, NULL, &err);
    if (!c)
      die (err);
    gpointer state = vt->create (c, &err);
    gboolean ready;
    if (!state)
      die (err);
    t0 = bench_now_s ();
    if (!vt->channel_scores (state, c, nnic_compressor_wrapper (c, 0), scores, &ready, &err))
      die (err);
    if (i >= 0)
      sc[i] = bench_now_s () - t0;
    vt->destroy (state);
    t0 = bench_now_s ();
    if (!nnic_compressor_compress (c, &err))
      die (err);
    if (i >= 0)
      t[i] = bench_now_s () - t0;
  }
  const double tm = bench_median (t, reps), pm = bench_median (p, reps), sm = bench_median (sc, reps);
  printf ("{\"what\": \"mask_%s_conv%d_%d_3\", \"sparsity\": 0.5, \"seconds_median\": %.6f, "
          "\"seconds_best\": %.6f, \"scores_seconds_median\": %.6f, \"plain_pass_seconds_median\": %.6f, "
          "\"scores_over_plain_pass\": %.2f, \"compress_over_plain_pass\": %.2f, \"impl\": \"nnic\"}\n",
          algorithm, ch, ch, tm, t[0], sm, pm, sm / pm, tm / pm);
  fflush (stdout);
  g_free (t);
  g_free (p);
  g_free (sc);
  g_free (scores);
}

int
main (void)
{
  bench_level (0.5, 7);
  bench_level (0.8, 7);
  for (int ch = 256; ch <= 512; ch *= 2) {
    bench_filter ("l1filter", ch, 15);
    bench_filter ("l2filter", ch, 15);
    bench_filter ("fpgm", ch, 7);
  }
  return 0;
}
