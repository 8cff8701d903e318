/* Mask computation time of the maskers, one layer, median of the runs.
 *
 *   NNIC_PLUGIN_PATH=build/plugins bench_masks
 *
 * Prints JSON lines shaped like torch_baseline.py's `masks` output, so the
 * two can be read side by side (bench/side_by_side.sh). Level on a
 * 4096x4096 Linear at sparsity 0.5 and 0.8; the bytes a mask takes per
 * weight. */
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

int
main (void)
{
  bench_level (0.5, 7);
  bench_level (0.8, 7);
  return 0;
}
