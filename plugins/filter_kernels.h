/* The filter maskers' arithmetic (nnic-filter): the per-filter norms of
 * L1/L2 and the geometric-median distance sums of FPGM, vectorised, with
 * the same bits on every machine and any number of threads. filter.c
 * decides what to prune with them; filter_kernels.c says how the sums are
 * taken and why. Internal to the module. */
#pragma once

#include <glib.h>
#include <stdint.h>

typedef struct _FilterKernels FilterKernels;

/* The kernels for this machine: AVX2 where the CPU has it, else the
 * baseline; NNIC_FILTER_KERNELS=baseline forces the baseline (the tests
 * check that both give the same bits). */
G_GNUC_INTERNAL const FilterKernels *filter_kernels (void);

/* scores[f] for the `filters` rows of w (each `per` long): sum_j |w[f,j]|
 * (square = FALSE, L1) or sqrt(sum_j w[f,j]^2) (square = TRUE, L2), the
 * sum rounded to float32 first as torch's is. */
G_GNUC_INTERNAL void filter_norms (const FilterKernels *k, const float *w, int64_t filters, int64_t per,
                                   gboolean square, float *scores);

/* FPGM: sums[f] = sum_g dist(f, g), the float32 Euclidean distances of
 * row f to every row g. Fails (out of memory, too many filters) with an
 * error. */
G_GNUC_INTERNAL gboolean filter_distance_sums (const FilterKernels *k, const float *w, int64_t filters,
                                               int64_t per, float *sums, GError **error);
