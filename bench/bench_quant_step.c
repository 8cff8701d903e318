/* Fake-quantization's cost on a training step: NNI's example CNN at batch
 * 64 (and 256), unwrapped and wrapped by each quantizer, the variants
 * interleaved round by round so that the machine's drift hits all alike.
 *
 *   NNIC_PLUGIN_PATH=build/plugins bench_quant_step [--reps N]
 *
 * Prints the median step time of each variant and its ratio to the
 * unwrapped step of the same rounds. */
#include <nnic/nnic.h>

#include "bench_util.h"

#include <stdio.h>
#include <string.h>

typedef struct {
  const char *name, *algorithm, *config;
} Variant;

static const Variant variants[] = {
  { "unwrapped", NULL, NULL },
  { "naive 8-bit weights", "naive",
    "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\", \"Linear\"]}]" },
  { "qat 8-bit weights + ReLU6 outputs", "qat",
    "[{\"quant_types\": [\"weight\"], \"quant_bits\": {\"weight\": 8}, \"op_types\": [\"Conv2d\", \"Linear\"]},"
    " {\"quant_types\": [\"output\"], \"quant_bits\": 8, \"op_types\": [\"ReLU6\"]}]" },
  { "dorefa 8-bit weights", "dorefa",
    "[{\"quant_types\": [\"weight\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\", \"Linear\"]}]" },
  { "lsq 8-bit weights + outputs", "lsq",
    "[{\"quant_types\": [\"weight\", \"output\"], \"quant_bits\": 8, \"op_types\": [\"Conv2d\", \"Linear\"]}]" },
  { "bnn 1-bit weights + ReLU6 outputs", "bnn",
    "[{\"quant_types\": [\"weight\"], \"quant_bits\": 1, \"op_types\": [\"Conv2d\", \"Linear\"]},"
    " {\"quant_types\": [\"output\"], \"quant_bits\": 1, \"op_types\": [\"ReLU6\"]}]" },
};
#define N_VARIANTS G_N_ELEMENTS (variants)

typedef struct {
  NnicModel *m;
  NnicOptimizer *opt;
  NnicCompressor *c;
} Setup;

static void
die (const char *what, GError *err)
{
  fprintf (stderr, "bench_quant_step: %s: %s (set NNIC_PLUGIN_PATH to the plugins)\n", what,
           err ? err->message : "failed");
  exit (1);
}

static Setup
setup (const Variant *v)
{
  GError *err = NULL;
  Setup s = { 0 };
  s.m = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  if (!s.m)
    die (v->name, err);
  nnic_model_init_params (s.m, 1);
  s.opt = nnic_optimizer_new_sgd (s.m, &(NnicSgdOptions) { .lr = 0.01, .momentum = 0.5 }, &err);
  if (v->algorithm) {
    g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (v->config, "bench", &err);
    s.c = cl ? nnic_compressor_new (s.m, v->algorithm, cl, s.opt, NULL, &err) : NULL;
    if (!s.c || !nnic_compressor_compress (s.c, &err))
      die (v->name, err);
  }
  nnic_model_set_training (s.m, TRUE);
  return s;
}

static double
step (Setup *s, const NnicTensor *x, const NnicTensor *y, NnicTensor *g)
{
  GError *err = NULL;
  double t0 = bench_now_s ();
  const NnicTensor *logits = nnic_model_forward (s->m, x, &err);
  if (!logits)
    die ("forward", err);
  nnic_cross_entropy (logits, y, g, NULL, &err);
  nnic_model_zero_grad (s->m);
  if (!nnic_model_backward (s->m, g, &err))
    die ("backward", err);
  nnic_optimizer_step (s->opt);
  return bench_now_s () - t0;
}

static void
run (int64_t batch, int reps)
{
  GError *err = NULL;
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (&err, 4, batch, (int64_t) 1, (int64_t) 28, (int64_t) 28);
  g_autoptr (NnicTensor) y = nnic_tensor_new (NNIC_DTYPE_I64, 1, &batch, &err);
  g_autoptr (NnicTensor) g = nnic_tensor_new_f32 (&err, 2, batch, (int64_t) 10);
  if (err)
    die ("tensors", err);
  NnicRng r;
  nnic_rng_seed (&r, 0);
  for (int64_t i = 0; i < x->numel; i++)
    x->f32[i] = (float) nnic_rng_uniform (&r);
  for (int64_t i = 0; i < batch; i++)
    y->i64[i] = (int64_t) nnic_rng_below (&r, 10);

  Setup s[N_VARIANTS];
  double *t[N_VARIANTS];
  for (guint v = 0; v < N_VARIANTS; v++) {
    s[v] = setup (&variants[v]);
    t[v] = g_new (double, reps);
    for (int w = 0; w < 3; w++)
      step (&s[v], x, y, g);
  }
  for (int i = 0; i < reps; i++)
    for (guint v = 0; v < N_VARIANTS; v++)
      t[v][i] = step (&s[v], x, y, g);
  printf ("batch %" G_GINT64_FORMAT ", median of %d interleaved rounds:\n", batch, reps);
  double base = 0;
  for (guint v = 0; v < N_VARIANTS; v++) {
    double med = bench_median (t[v], reps);
    if (v == 0)
      base = med;
    printf ("  %-36s %7.2f ms  %+6.1f%%\n", variants[v].name, med * 1e3, (med / base - 1.0) * 100.0);
    nnic_compressor_free (s[v].c);
    nnic_optimizer_free (s[v].opt);
    nnic_model_free (s[v].m);
    g_free (t[v]);
  }
}

int
main (int argc, char **argv)
{
  int reps = 41;
  for (int i = 1; i + 1 < argc; i++)
    if (!strcmp (argv[i], "--reps"))
      reps = MAX (3, atoi (argv[i + 1]));
  run (64, reps);
  run (256, reps / 2 + 1);
  return 0;
}
