/* Depthwise convolution (groups == in_channels, MobileNetV2's 3x3 layers):
 * the direct kernel against the grouped-GEMM path every other grouped
 * convolution takes, both measured in the same run on the same layer.
 *
 *   bench_depthwise [--reps N]
 *
 * The GEMM path is the baseline: layers added while NNIC_CONV_DEPTHWISE=0
 * is set take it. Prints one JSON object per layer and path, then the
 * speed-ups. Times are medians of forward and of backward (weight, bias
 * and input gradients) through nnic_model_forward/backward, so they
 * include what the executor does around any layer (copying the input in,
 * clearing the input gradient); the "floor" column is that part alone,
 * measured with a ReLU on the same input. Compare ratios from one sitting. */
#include <nnic/nnic.h>

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *what;
  int batch, channels, size, kernel, stride, multiplier;
} Layer;

/* MobileNetV2's depthwise layers at their sizes (224x224 input), and the
 * one asked about first: 144 channels at 56x56, stride 1 and 2. */
static const Layer layers[] = {
  { "mbv2_144_56_s1", 8, 144, 56, 3, 1, 1 },
  { "mbv2_144_56_s2", 8, 144, 56, 3, 2, 1 },
  { "mbv2_96_112_s2", 8, 96, 112, 3, 2, 1 },
  { "mbv2_384_14_s1", 8, 384, 14, 3, 1, 1 },
  { "mbv2_960_7_s1", 8, 960, 7, 3, 1, 1 },
  { "mult2_32_56_s1", 8, 32, 56, 3, 1, 2 },
};

typedef struct {
  double fwd_ms, bwd_ms;
} Timing;

typedef enum { PATH_GEMM, PATH_DIRECT, PATH_FLOOR } Path;

static gboolean
time_layer (const Layer *l, Path path, int reps, Timing *out, GError **error)
{
  if (path == PATH_GEMM)
    g_setenv ("NNIC_CONV_DEPTHWISE", "0", TRUE);
  g_autoptr (NnicModel) m = nnic_model_new (l->channels, l->size, l->size);
  NnicConv2dSpec s = { .in_channels = l->channels, .out_channels = l->channels * l->multiplier,
                       .kernel_size = l->kernel, .stride = l->stride, .padding = l->kernel / 2,
                       .groups = l->channels };
  gboolean ok = path == PATH_FLOOR ? nnic_model_add_relu (m, "relu", NULL, error)
                                   : nnic_model_add_conv2d (m, "dw", NULL, &s, error);
  g_unsetenv ("NNIC_CONV_DEPTHWISE");
  if (!ok)
    return FALSE;
  nnic_model_init_params (m, 1);
  /* A depthwise layer is never the first one: its input gradient counts. */
  nnic_model_set_input_grad (m, TRUE);
  nnic_model_set_training (m, TRUE);

  NnicRng r;
  nnic_rng_seed (&r, 2);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (error, 4, (int64_t) l->batch,
                                                  (int64_t) l->channels, (int64_t) l->size,
                                                  (int64_t) l->size);
  if (!x)
    return FALSE;
  for (int64_t i = 0; i < x->numel; i++)
    x->f32[i] = (float) (nnic_rng_uniform (&r) * 2.0 - 1.0);
  const NnicTensor *y = nnic_model_forward (m, x, error);
  if (!y)
    return FALSE;
  g_autoptr (NnicTensor) gy = nnic_tensor_new_like (y, error);
  if (!gy)
    return FALSE;
  for (int64_t i = 0; i < gy->numel; i++)
    gy->f32[i] = (float) (nnic_rng_uniform (&r) * 2.0 - 1.0);

  double *tf = g_new (double, reps), *tb = g_new (double, reps);
  for (int i = -2; i < reps; i++) {
    double t0 = bench_now_s ();
    if (!nnic_model_forward (m, x, error))
      break;
    double t1 = bench_now_s ();
    if (!nnic_model_backward (m, gy, error))
      break;
    double t2 = bench_now_s ();
    if (i >= 0) {
      tf[i] = t1 - t0;
      tb[i] = t2 - t1;
    }
  }
  out->fwd_ms = bench_median (tf, reps) * 1e3;
  out->bwd_ms = bench_median (tb, reps) * 1e3;
  g_free (tf);
  g_free (tb);
  return error == NULL || *error == NULL;
}

int
main (int argc, char **argv)
{
  int reps = 10;
  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--reps") && i + 1 < argc) {
      int n = atoi (argv[++i]);
      reps = MAX (3, n);
    } else {
      fprintf (stderr, "usage: bench_depthwise [--reps N]\n");
      return strcmp (argv[i], "--help") == 0 ? 0 : 2;
    }
  }
  const char *threads = g_getenv ("OMP_NUM_THREADS");
  static const char *const names[] = { "gemm", "direct", "floor" };
  fprintf (stderr, "%-15s %5s %4s %4s %2s  %17s  %17s  %17s  %s\n", "layer", "batch", "out",
           "size", "s", "gemm fwd/bwd ms", "direct fwd/bwd ms", "floor fwd/bwd ms",
           "speed-up fwd/bwd");
  for (guint k = 0; k < G_N_ELEMENTS (layers); k++) {
    const Layer *l = &layers[k];
    Timing t[3];
    g_autoptr (GError) err = NULL;
    for (Path p = PATH_GEMM; p <= PATH_FLOOR; p++)
      if (!time_layer (l, p, reps, &t[p], &err)) {
        fprintf (stderr, "bench_depthwise: %s\n", err->message);
        return 1;
      }
    for (Path p = PATH_GEMM; p <= PATH_FLOOR; p++)
      printf ("{\"what\": \"depthwise_%s\", \"path\": \"%s\", \"batch\": %d, \"channels\": %d, "
              "\"multiplier\": %d, \"size\": %d, \"kernel\": %d, \"stride\": %d, "
              "\"forward_ms\": %.3f, \"backward_ms\": %.3f, \"threads\": \"%s\"}\n",
              l->what, names[p], l->batch, l->channels, l->multiplier, l->size, l->kernel,
              l->stride, t[p].fwd_ms, t[p].bwd_ms, threads ? threads : "default");
    fprintf (stderr, "%-15s %5d %4d %4d %2d  %7.3f / %7.3f  %7.3f / %7.3f  %7.3f / %7.3f  %4.1fx / %4.1fx\n",
             l->what, l->batch, l->channels * l->multiplier, l->size, l->stride, t[0].fwd_ms,
             t[0].bwd_ms, t[1].fwd_ms, t[1].bwd_ms, t[2].fwd_ms, t[2].bwd_ms,
             t[0].fwd_ms / t[1].fwd_ms, t[0].bwd_ms / t[1].bwd_ms);
  }
  return 0;
}
