/* The int8 GEMM (core/quant/qgemm.h) against OpenBLAS sgemm on the same
 * shapes, in the same run: NNI's example CNN in inference, at batch 1 and
 * 64, with its convolutions as im2col products (C = A · Wᵀ):
 *   conv1  M = batch·24·24  K = 1·5·5 = 25     N = 20
 *   conv2  M = batch·8·8    K = 20·5·5 = 500   N = 50
 *   fc1    M = batch        K = 800            N = 500
 *
 *   bench_qgemm [--rounds N]
 *
 * Every path this CPU has, on one thread and on nnic_threads() threads.
 * For M = 1 (fc1 at batch 1) sgemv is timed too: OpenBLAS's sgemm is slow
 * there, and sgemv is what a float layer at batch 1 would call. The
 * float baselines on several threads are run the way nnic's layers run
 * theirs (core/parallel.h): OpenMP threads, each calling a single-threaded
 * sgemm on its share of the rows (or of the columns when there are few
 * rows), so that no BLAS thread pool spins beside the int8 runs.
 *
 * The machine is shared and noisy: each configuration is timed once per
 * round, rounds alternate over all configurations, and the figures are
 * medians over the rounds (a sample is a loop of calls of about 2 ms).
 * Also: the output stage (nnic_qgemm_requantize) per output element.
 *
 * Prints one JSON object per shape, thread count and path on stdout, a
 * table on stderr. Compare ratios from one sitting. */
#include <nnic/nnic.h>

#include "bench_util.h"
#include "core/parallel.h"
#include "core/quant/qgemm.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  const char *name;
  int per_batch, k, n; /* M = batch · per_batch */
} Shape;

static const Shape shapes[] = {
  { "conv1", 24 * 24, 25, 20 },
  { "conv2", 8 * 8, 500, 50 },
  { "fc1", 1, 800, 500 },
};
static const int batches[] = { 1, 64 };

#define SGEMM NNIC_QGEMM_N_PATHS /* the float baseline, after the int8 paths */
#define SGEMV (SGEMM + 1)         /* and for M = 1, sgemv too */
#define N_RUNS (SGEMV + 1)

typedef struct {
  int m, n, k;
  uint8_t *a;
  float *af, *wf, *cf;
  int32_t *c;
  NnicQgemmPacked *w;
} Problem;

/* sgemm on rows [m0, m1) and columns [n0, n1) of C = A · Wᵀ. */
static void
sgemm_part (const Problem *p, int m0, int m1, int n0, int n1)
{
  cblas_sgemm (CblasRowMajor, CblasNoTrans, CblasTrans, m1 - m0, n1 - n0, p->k, 1.0f,
               p->af + (int64_t) m0 * p->k, p->k, p->wf + (int64_t) n0 * p->k, p->k, 0.0f,
               p->cf + (int64_t) m0 * p->n + n0, p->n);
}

/* The same split as nnic_qgemm: rows when there are enough, else columns
 * in blocks of 16. */
static void
sgemm_threads (const Problem *p, int threads)
{
  const int blocks = (p->n + 15) / 16;
  const gboolean by_rows = p->m >= 32 * threads || p->m >= blocks;
  threads = MIN (threads, by_rows ? p->m : blocks);
  if (threads <= 1) {
    sgemm_part (p, 0, p->m, 0, p->n);
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    int64_t lo, hi;
    nnic_split_range (by_rows ? p->m : blocks, omp_get_num_threads (), nnic_thread_index (), &lo,
                      &hi);
    if (by_rows)
      sgemm_part (p, (int) lo, (int) hi, 0, p->n);
    else
      sgemm_part (p, 0, p->m, (int) lo * 16, (int) MIN (hi * 16, p->n));
  }
}

/* y = W x for M = 1, split over rows of W (columns of C) like the rest. */
static void
sgemv_threads (const Problem *p, int threads)
{
  const int blocks = (p->n + 15) / 16;
  threads = MIN (threads, blocks);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    int64_t lo, hi;
    nnic_split_range (blocks, omp_get_num_threads (), nnic_thread_index (), &lo, &hi);
    const int n0 = (int) lo * 16, n1 = (int) MIN (hi * 16, p->n);
    cblas_sgemv (CblasRowMajor, CblasNoTrans, n1 - n0, p->k, 1.0f, p->wf + (int64_t) n0 * p->k,
                 p->k, p->af, 1, 0.0f, p->cf + n0, 1);
  }
}

static const char *
run_name (int path)
{
  if (path >= SGEMM)
    return path == SGEMV ? "sgemv" : "sgemm";
  return nnic_qgemm_path_name ((NnicQgemmPath) path);
}

static void
run (const Problem *p, int path, int threads)
{
  if (path == SGEMV)
    sgemv_threads (p, threads);
  else if (path == SGEMM)
    sgemm_threads (p, threads);
  else
    nnic_qgemm_with ((NnicQgemmPath) path, threads, p->m, p->a, p->k, p->w, p->c, p->n);
}

/* Seconds per call of one sample of `iters` calls. */
static double
sample (const Problem *p, int path, int threads, int iters)
{
  const double t0 = bench_now_s ();
  for (int i = 0; i < iters; i++)
    run (p, path, threads);
  return (bench_now_s () - t0) / iters;
}

static void
die (const char *msg)
{
  fprintf (stderr, "bench_qgemm: %s\n", msg);
  exit (1);
}

int
main (int argc, char **argv)
{
  int rounds = 51;
  for (int i = 1; i < argc; i++) {
    if (strcmp (argv[i], "--rounds") == 0 && i + 1 < argc)
      rounds = atoi (argv[++i]);
    else {
      fprintf (stderr, "usage: bench_qgemm [--rounds N]\n");
      return 2;
    }
  }
  rounds = MAX (1, rounds);
  nnic_blas_single_begin ();
  GError *err = NULL;
  if (!nnic_qgemm_init (&err))
    die (err->message);
  const int all = nnic_threads ();
  const int n_threads = all > 1 ? 2 : 1;
  const int thread_counts[2] = { 1, all };

  /* Problems, and for each (problem, thread count, path) its samples. */
  const int n_prob = (int) (G_N_ELEMENTS (shapes) * G_N_ELEMENTS (batches));
  Problem prob[G_N_ELEMENTS (shapes) * G_N_ELEMENTS (batches)];
  GRand *r = g_rand_new_with_seed (1);
  for (int s = 0; s < (int) G_N_ELEMENTS (shapes); s++)
    for (int b = 0; b < (int) G_N_ELEMENTS (batches); b++) {
      Problem *p = &prob[s * G_N_ELEMENTS (batches) + b];
      p->m = batches[b] * shapes[s].per_batch;
      p->n = shapes[s].n;
      p->k = shapes[s].k;
      p->a = g_new (uint8_t, (size_t) p->m * p->k);
      p->af = g_new (float, (size_t) p->m * p->k);
      int8_t *w = g_new (int8_t, (size_t) p->n * p->k);
      p->wf = g_new (float, (size_t) p->n * p->k);
      for (int64_t i = 0; i < (int64_t) p->m * p->k; i++)
        p->af[i] = p->a[i] = (uint8_t) g_rand_int_range (r, 0, 256);
      for (int64_t i = 0; i < (int64_t) p->n * p->k; i++)
        p->wf[i] = w[i] = (int8_t) g_rand_int_range (r, -128, 128);
      p->c = g_new (int32_t, (size_t) p->m * p->n);
      p->cf = g_new (float, (size_t) p->m * p->n);
      p->w = nnic_qgemm_pack (w, p->n, p->k, &err);
      if (!p->w)
        die (err->message);
      g_free (w);
    }
  g_rand_free (r);

  gboolean have[N_RUNS];
  for (int path = 0; path < N_RUNS; path++)
    have[path] = path >= SGEMM || nnic_qgemm_path_supported ((NnicQgemmPath) path);
#define WANTED(q, path) (have[path] && ((path) != SGEMV || prob[q].m == 1))

  /* Calls per sample: about 2 ms, measured on one thread. */
  int iters[G_N_ELEMENTS (prob)][N_RUNS];
  for (int q = 0; q < n_prob; q++)
    for (int path = 0; path < N_RUNS; path++)
      if (WANTED (q, path)) {
        run (&prob[q], path, 1);
        const double t = sample (&prob[q], path, 1, 3);
        iters[q][path] = (int) CLAMP (2e-3 / t, 1, 100000);
      }

  /* samples[q][t][path][round] */
  const int n_cfg = n_prob * 2 * N_RUNS;
  double *samples = g_new0 (double, (size_t) n_cfg * rounds);
#define AT(q, t, path) (samples + ((((q) * 2 + (t)) * N_RUNS + (path)) * rounds))
  for (int round = 0; round < rounds; round++)
    for (int t = 0; t < n_threads; t++)
      for (int q = 0; q < n_prob; q++)
        for (int path = 0; path < N_RUNS; path++)
          if (WANTED (q, path))
            AT (q, t, path)[round] = sample (&prob[q], path, thread_counts[t], iters[q][path]);

  /* The output stage, one thread: per-channel scales, both zero points. */
  double requant_ns[G_N_ELEMENTS (prob)];
  for (int q = 0; q < n_prob; q++) {
    const Problem *p = &prob[q];
    float *scale = g_new (float, p->n);
    int32_t *bias = g_new (int32_t, p->n), *rows = g_new (int32_t, p->m);
    uint8_t *out = g_new (uint8_t, (size_t) p->m * p->n);
    for (int j = 0; j < p->n; j++) {
      scale[j] = 1e-4f * (float) (j + 1);
      bias[j] = j * 100 - 2000;
    }
    nnic_qgemm_row_sums (p->m, p->k, p->a, p->k, rows);
    const NnicQgemmOutput o = { .a_zero_point = 3, .w_zero_point = -2, .bias = bias,
                                .scale = scale, .n_scale = p->n, .out_zero_point = 128,
                                .out_min = 0, .out_max = 255 };
    const int it = (int) CLAMP (2e6 / ((double) p->m * p->n), 1, 100000);
    double *ts = g_new (double, rounds);
    for (int round = 0; round < rounds; round++) {
      const double t0 = bench_now_s ();
      for (int i = 0; i < it; i++)
        nnic_qgemm_requantize (p->m, p->w, p->c, p->n, rows, &o, out, p->n);
      ts[round] = (bench_now_s () - t0) / it;
    }
    requant_ns[q] = bench_median (ts, rounds) * 1e9 / ((double) p->m * p->n);
    g_free (ts);
    g_free (scale);
    g_free (bias);
    g_free (rows);
    g_free (out);
  }

  fprintf (stderr,
           "int8 GEMM paths against sgemm, medians of %d rounds; GOP/s = 2·M·N·K / time\n",
           rounds);
  fprintf (stderr, "%-6s %5s %6s %4s %4s %3s", "shape", "batch", "M", "K", "N", "thr");
  for (int path = 0; path < N_RUNS; path++)
    if (have[path])
      fprintf (stderr, " %10s", run_name (path));
  fprintf (stderr, "  best/sgemm  requant ns/elem  requant/best\n");
  for (int q = 0; q < n_prob; q++) {
    const Problem *p = &prob[q];
    const Shape *sh = &shapes[q / G_N_ELEMENTS (batches)];
    const int batch = batches[q % G_N_ELEMENTS (batches)];
    const double ops = 2.0 * p->m * p->n * p->k;
    for (int t = 0; t < n_threads; t++) {
      double gops[N_RUNS] = { 0 };
      double best = 0, best_s = 0;
      for (int path = 0; path < N_RUNS; path++)
        if (WANTED (q, path)) {
          const double s = bench_median (AT (q, t, path), rounds);
          gops[path] = ops / s * 1e-9;
          if (path < SGEMM && gops[path] > best) {
            best = gops[path];
            best_s = s;
          }
        }
      fprintf (stderr, "%-6s %5d %6d %4d %4d %3d", sh->name, batch, p->m, p->k, p->n,
               thread_counts[t]);
      for (int path = 0; path < N_RUNS; path++)
        if (WANTED (q, path))
          fprintf (stderr, " %10.1f", gops[path]);
        else if (have[path])
          fprintf (stderr, " %10s", "-");
      fprintf (stderr, "  %9.2fx", best / gops[SGEMM]);
      if (t == 0)
        fprintf (stderr, "  %15.2f  %11.0f%%", requant_ns[q],
                 100.0 * requant_ns[q] * 1e-9 * p->m * p->n / best_s);
      fprintf (stderr, "\n");
      for (int path = 0; path < N_RUNS; path++)
        if (WANTED (q, path))
          printf ("{\"what\": \"qgemm_%s\", \"batch\": %d, \"m\": %d, \"k\": %d, \"n\": %d, "
                  "\"threads\": %d, \"path\": \"%s\", \"gops_median\": %.2f, "
                  "\"over_sgemm\": %.3f, \"rounds\": %d}\n",
                  sh->name, batch, p->m, p->k, p->n, thread_counts[t], run_name (path),
                  gops[path], gops[path] / gops[SGEMM], rounds);
      if (t == 0)
        printf ("{\"what\": \"qgemm_requantize_%s\", \"batch\": %d, \"ns_per_output\": %.3f, "
                "\"over_best_gemm\": %.3f, \"rounds\": %d}\n",
                sh->name, batch, requant_ns[q],
                requant_ns[q] * 1e-9 * p->m * p->n / best_s, rounds);
    }
  }
  fprintf (stderr, "default path on this machine: %s\n", nnic_qgemm_active_name ());

  for (int q = 0; q < n_prob; q++) {
    g_free (prob[q].a);
    g_free (prob[q].af);
    g_free (prob[q].wf);
    g_free (prob[q].c);
    g_free (prob[q].cf);
    nnic_qgemm_packed_free (prob[q].w);
  }
  g_free (samples);
  return 0;
}
