/* ONNX import: time and peak memory of nnic_model_load_onnx on a file
 * (ResNet-18 from tests/fixtures/onnx_models/make_torchvision.py), beside
 * reading the same file into memory in the same run (the floor).
 *
 *   bench_onnx_import FILE.onnx [REPS]
 *
 * Peak memory is the growth of the resident set's high-water mark (VmHWM,
 * reset through /proc/self/clear_refs before each load), against the bytes
 * of the model's parameters and buffers. */
#include <nnic/nnic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long
status_kb (const char *key)
{
  g_autofree char *text = NULL;
  if (!g_file_get_contents ("/proc/self/status", &text, NULL, NULL))
    return -1;
  const char *p = strstr (text, key);
  return p ? strtol (p + strlen (key), NULL, 10) : -1;
}

static void
reset_peak (void)
{
  FILE *f = fopen ("/proc/self/clear_refs", "w");
  if (f) {
    fputs ("5", f);
    fclose (f);
  }
}

static int
cmp_double (const void *a, const void *b)
{
  double x = *(const double *) a, y = *(const double *) b;
  return (x > y) - (x < y);
}

int
main (int argc, char **argv)
{
  if (argc < 2) {
    fprintf (stderr, "usage: %s FILE.onnx [REPS]\n", argv[0]);
    return 2;
  }
  const int reps = argc > 2 ? atoi (argv[2]) : 7;
  g_autofree double *load_s = g_new (double, reps), *read_s = g_new (double, reps);
  long peak_kb = 0;
  size_t weight_bytes = 0;
  for (int r = 0; r < reps; r++) {
    GError *err = NULL;
    gint64 t0 = g_get_monotonic_time ();
    g_autofree char *bytes = NULL;
    gsize len;
    if (!g_file_get_contents (argv[1], &bytes, &len, &err)) {
      fprintf (stderr, "%s\n", err->message);
      return 1;
    }
    read_s[r] = (double) (g_get_monotonic_time () - t0) / 1e6;
    g_clear_pointer (&bytes, g_free);

    reset_peak ();
    const long before = status_kb ("VmRSS:");
    t0 = g_get_monotonic_time ();
    NnicModel *m = nnic_model_load_onnx (argv[1], NULL, &err);
    load_s[r] = (double) (g_get_monotonic_time () - t0) / 1e6;
    if (!m) {
      fprintf (stderr, "%s\n", err->message);
      return 1;
    }
    peak_kb = MAX (peak_kb, status_kb ("VmHWM:") - before);
    weight_bytes = 0;
    for (guint i = 0; i < nnic_model_n_params (m); i++)
      weight_bytes += nnic_tensor_nbytes (nnic_model_param (m, i)->value);
    nnic_model_free (m);
  }
  qsort (load_s, (size_t) reps, sizeof (double), cmp_double);
  qsort (read_s, (size_t) reps, sizeof (double), cmp_double);
  printf ("file %s: weights %.1f MB\n", argv[1], (double) weight_bytes / 1e6);
  printf ("import, median of %d: %.3f s (reading the file alone: %.3f s, %.1fx)\n", reps, load_s[reps / 2],
          read_s[reps / 2], load_s[reps / 2] / MAX (read_s[reps / 2], 1e-9));
  printf ("peak resident growth during import: %.1f MB = %.2fx the weights\n", (double) peak_kb / 1e3,
          (double) peak_kb * 1e3 / (double) MAX (weight_bytes, 1));
  return 0;
}
