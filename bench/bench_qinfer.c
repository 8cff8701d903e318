/* Integer inference (nnic_model_quantize_int8) against float inference,
 * in the same run: NNI's example CNN (nni_cnn, 1×28×28) and the small VGG
 * (vgg_small, 3×32×32), at batch 1 and 64, forward only (eval).
 *
 *   bench_qinfer [--rounds N] [--profile] [--model NAME] [--batch N]
 *
 * Each model gets random weights (seed 0), is quantized by `naive` (8-bit
 * weights on every Conv2d and Linear) through the compressor, exported
 * (nnic_compressor_export_quantized), and loaded twice: as the integer
 * model and as the fake-quantized float model (the float model with the
 * 8-bit weights: float inference at its usual speed). Without activation
 * calibration (naive quantizes weights only), every integer layer
 * quantizes its input from the batch's own range: the slowest case of the
 * integer path.
 *
 * The machine is shared: every configuration is timed once per round,
 * rounds alternate over all of them, the figures are medians over the
 * rounds (a sample is a loop of forwards of at least 2 ms). --profile
 * also prints where the time goes per node.
 *
 * Needs the plugins: NNIC_PLUGIN_PATH (the build tree's by default). */
#include <nnic/nnic.h>

#include "bench_util.h"
#include "core/parallel.h"

#include <stdio.h>
#include <string.h>
#include <glib/gstdio.h>

typedef struct {
  const char *name;
  int c, h, w;
} Net;

static const Net nets[] = {
  { "nni_cnn", 1, 28, 28 },
  { "vgg_small", 3, 32, 32 },
};
static const int batches[] = { 1, 64 };

static void
die (const char *what, GError *e)
{
  fprintf (stderr, "bench_qinfer: %s: %s\n", what, e ? e->message : "failed");
  exit (1);
}

/* Quantizes a fresh model with naive and exports it to dir. */
static void
export_naive (const Net *n, const char *dir)
{
  GError *e = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin (n->name, n->c, n->h, n->w, 10, &e);
  if (!m)
    die (n->name, e);
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (
      "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\", \"Linear\"]}]", "bench", &e);
  g_autoptr (NnicCompressor) c = cl ? nnic_compressor_new (m, "naive", cl, NULL, NULL, &e) : NULL;
  g_autofree char *model_path = g_build_filename (dir, "model.safetensors", NULL);
  g_mkdir_with_parents (dir, 0700);
  if (!c || !nnic_compressor_compress (c, &e) || !nnic_compressor_export (c, model_path, NULL, &e) ||
      !nnic_compressor_export_quantized (c, dir, &e))
    die ("naive", e);
}

static NnicModel *
load (const Net *n, const char *dir, gboolean int8)
{
  GError *e = NULL;
  NnicModel *m = nnic_model_new_builtin (n->name, n->c, n->h, n->w, 10, &e);
  g_autofree char *model_path = g_build_filename (dir, "model.safetensors", NULL);
  if (!m || !nnic_model_load (m, model_path, &e) ||
      !(int8 ? nnic_model_quantize_int8 (m, dir, &e) : nnic_model_fake_quantize (m, dir, &e)))
    die (n->name, e);
  nnic_model_set_training (m, FALSE);
  return m;
}

/* Seconds per forward: a loop of at least `min_s`. */
static double
time_forward (NnicModel *m, const NnicTensor *x, double min_s)
{
  GError *e = NULL;
  int reps = 0;
  const double t0 = bench_now_s ();
  double t;
  do {
    if (!nnic_model_forward (m, x, &e))
      die ("forward", e);
    reps++;
  } while ((t = bench_now_s () - t0) < min_s);
  return t / reps;
}

typedef struct {
  const Net *net;
  int batch;
  NnicModel *model[2]; /* float, int8 */
  NnicTensor *x;
  double *samples[2];
} Config;

static void
profile (Config *cf)
{
  for (int k = 0; k < 2; k++) {
    NnicModel *m = cf->model[k];
    nnic_model_set_profiling (m, TRUE);
    nnic_model_reset_profile (m);
    const int reps = cf->batch == 1 ? 500 : 50;
    for (int r = 0; r < reps; r++)
      nnic_model_forward (m, cf->x, NULL);
    fprintf (stderr, "  %s batch %d, %s, per node (µs):", cf->net->name, cf->batch, k ? "int8" : "float");
    for (guint i = 1; i < nnic_model_n_nodes (m); i++) {
      double f;
      nnic_model_node_time (m, i, &f, NULL);
      fprintf (stderr, " %s %.0f", nnic_model_node_name (m, i), f / reps * 1e6);
    }
    fprintf (stderr, "\n");
    nnic_model_set_profiling (m, FALSE);
  }
}

int
main (int argc, char **argv)
{
  int rounds = 31;
  gboolean want_profile = FALSE;
  const char *only_model = NULL;
  int only_batch = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--rounds") && i + 1 < argc)
      rounds = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--model") && i + 1 < argc)
      only_model = argv[++i];
    else if (!strcmp (argv[i], "--batch") && i + 1 < argc)
      only_batch = atoi (argv[++i]);
    else if (!strcmp (argv[i], "--profile"))
      want_profile = TRUE;
    else {
      fprintf (stderr, "usage: bench_qinfer [--rounds N] [--profile] [--model NAME] [--batch N]\n");
      return 2;
    }
  }
  if (rounds < 1)
    rounds = 1;
#ifdef NNIC_BUILD_PLUGINS
  if (!g_getenv ("NNIC_PLUGIN_PATH"))
    g_setenv ("NNIC_PLUGIN_PATH", NNIC_BUILD_PLUGINS, TRUE);
#endif
  GError *e = NULL;
  if (!nnic_int8_kernel_init (&e))
    die ("NNIC_QGEMM", e);

  Config *configs = g_new0 (Config, G_N_ELEMENTS (nets) * G_N_ELEMENTS (batches));
  g_autofree char *tmp = g_dir_make_tmp ("bench_qinfer-XXXXXX", NULL);
  int n_configs = 0;
  for (guint ni = 0; ni < G_N_ELEMENTS (nets); ni++) {
    g_autofree char *dir = g_build_filename (tmp, nets[ni].name, NULL);
    export_naive (&nets[ni], dir);
    for (guint bi = 0; bi < G_N_ELEMENTS (batches); bi++) {
      if ((only_model && strcmp (only_model, nets[ni].name)) || (only_batch && only_batch != batches[bi]))
        continue;
      Config *cf = &configs[n_configs++];
      cf->net = &nets[ni];
      cf->batch = batches[bi];
      cf->model[0] = load (cf->net, dir, FALSE);
      cf->model[1] = load (cf->net, dir, TRUE);
      cf->x = nnic_tensor_new_f32 (&e, 4, (int64_t) cf->batch, (int64_t) cf->net->c, (int64_t) cf->net->h,
                                   (int64_t) cf->net->w);
      NnicRng r;
      nnic_rng_seed (&r, 7);
      for (int64_t k = 0; k < cf->x->numel; k++)
        cf->x->f32[k] = (float) (nnic_rng_uniform (&r) * 2.0 - 0.5);
      for (int k = 0; k < 2; k++) {
        cf->samples[k] = g_new (double, rounds);
        time_forward (cf->model[k], cf->x, 0.05); /* warm up: buffers, caches */
      }
    }
  }

  for (int r = 0; r < rounds; r++)
    for (int c = 0; c < n_configs; c++)
      for (int k = 0; k < 2; k++)
        configs[c].samples[k][r] = time_forward (configs[c].model[k], configs[c].x, 0.002);

  fprintf (stderr, "int8 kernel %s, %d threads, medians of %d rounds\n", nnic_int8_kernel_name (), nnic_threads (),
           rounds);
  fprintf (stderr, "%-10s %5s %12s %12s %8s %14s\n", "model", "batch", "float ms", "int8 ms", "speedup",
           "int8 img/s");
  for (int c = 0; c < n_configs; c++) {
    Config *cf = &configs[c];
    const double f = bench_median (cf->samples[0], rounds), q = bench_median (cf->samples[1], rounds);
    fprintf (stderr, "%-10s %5d %12.3f %12.3f %7.2fx %14.0f\n", cf->net->name, cf->batch, f * 1e3, q * 1e3, f / q,
             cf->batch / q);
    printf ("{\"model\": \"%s\", \"batch\": %d, \"kernel\": \"%s\", \"threads\": %d, \"rounds\": %d, "
            "\"float_ms\": %.4f, \"int8_ms\": %.4f, \"speedup\": %.3f}\n",
            cf->net->name, cf->batch, nnic_int8_kernel_name (), nnic_threads (), rounds, f * 1e3, q * 1e3, f / q);
  }
  if (want_profile)
    for (int c = 0; c < n_configs; c++)
      profile (&configs[c]);
  for (int c = 0; c < n_configs; c++) {
    for (int k = 0; k < 2; k++) {
      nnic_model_free (configs[c].model[k]);
      g_free (configs[c].samples[k]);
    }
    nnic_tensor_free (configs[c].x);
  }
  g_free (configs);
  for (guint ni = 0; ni < G_N_ELEMENTS (nets); ni++) {
    static const char *const files[] = { "model.safetensors", "quantized.safetensors", "calibration.json" };
    for (guint k = 0; k < G_N_ELEMENTS (files); k++) {
      g_autofree char *p = g_build_filename (tmp, nets[ni].name, files[k], NULL);
      g_remove (p);
    }
    g_autofree char *d = g_build_filename (tmp, nets[ni].name, NULL);
    g_rmdir (d);
  }
  g_rmdir (tmp);
  return 0;
}
