/* How long finding the plugins takes: nnic_registry_reset() followed by
 * nnic_load_algorithm() of one name, which scans every directory on
 * NNIC_PLUGIN_PATH (and the installed one) and checks every plugin found.
 *
 *   NNIC_PLUGIN_PATH=build/plugins:build/tests/plugins/good:... bench_registry [NAME] [--reps N]
 *
 * The baseline, measured in the same run, is what any loader pays: listing
 * the same directories and g_module_open() + g_module_symbol() of each file.
 * Prints one JSON object; times are medians (the goal: under 20 ms for all
 * the build tree's plugins). */
#include <nnic/nnic.h>

#include "bench_util.h"

#include <gmodule.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The baseline: open every candidate file and look up the entry point. */
static guint
open_all (void)
{
  g_auto (GStrv) path = nnic_plugin_search_path ();
  guint n = 0;
  for (char **dir = path; *dir; dir++) {
    GDir *d = g_dir_open (*dir, 0, NULL);
    if (!d)
      continue;
    for (const char *name; (name = g_dir_read_name (d));) {
      if (name[0] == '.' || !g_str_has_suffix (name, "." G_MODULE_SUFFIX))
        continue;
      g_autofree char *file = g_build_filename (*dir, name, NULL);
      GModule *m = g_module_open (file, G_MODULE_BIND_LOCAL);
      if (!m)
        continue;
      gpointer sym;
      g_module_symbol (m, NNIC_PLUGIN_ENTRY_SYMBOL, &sym);
      g_module_close (m);
      n++;
    }
    g_dir_close (d);
  }
  return n;
}

int
main (int argc, char **argv)
{
  const char *name = "level";
  int reps = 20;
  for (int i = 1; i < argc; i++) {
    if (!strcmp (argv[i], "--reps") && i + 1 < argc)
      reps = MAX (1, atoi (argv[++i]));
    else if (argv[i][0] != '-')
      name = argv[i];
    else {
      fprintf (stderr, "usage: bench_registry [NAME] [--reps N]\n");
      return 2;
    }
  }

  /* The first scan opens every file for the first time (cold). */
  double t0 = 1e3 * bench_now_s ();
  GError *err = NULL;
  gboolean found = nnic_load_algorithm (name, &err) != NULL;
  double first = 1e3 * bench_now_s () - t0;
  if (!found)
    fprintf (stderr, "bench_registry: %s\n", err->message);
  g_clear_error (&err);

  double *scan = g_new (double, reps), *base = g_new (double, reps);
  guint files = 0;
  for (int r = 0; r < reps; r++) {
    t0 = 1e3 * bench_now_s ();
    nnic_registry_reset ();
    nnic_load_algorithm (name, NULL);
    scan[r] = 1e3 * bench_now_s () - t0;
    t0 = 1e3 * bench_now_s ();
    files = open_all ();
    base[r] = 1e3 * bench_now_s () - t0;
  }
  double ms = bench_median (scan, reps), ms_base = bench_median (base, reps);
  const GPtrArray *algorithms = nnic_list_algorithms ();
  const GPtrArray *problems = nnic_registry_problems ();
  printf ("{\"what\": \"registry_scan_and_resolve\", \"name\": \"%s\", \"found\": %s, "
          "\"ms_median\": %.3f, \"ms_first\": %.3f, \"reps\": %d, \"files_opened\": %u, "
          "\"algorithms\": %u, \"problems\": %u, \"baseline\": \"open_and_dlsym_each_file\", "
          "\"ms_baseline_median\": %.3f, \"ratio_to_baseline\": %.2f}\n",
          name, found ? "true" : "false", ms, first, reps, files, algorithms->len, problems->len,
          ms_base, ms_base > 0 ? ms / ms_base : 0.0);
  g_free (scan);
  g_free (base);
  return found ? 0 : 1;
}
