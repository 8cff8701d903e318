/* Internal: nnic's own threads.
 *
 * The layers split a batch into chunks and run the chunks on all cores at
 * once (OpenMP), each chunk calling a single-threaded BLAS. Compared with
 * one chunk at a time on BLAS's own threads, the work around the GEMMs
 * (im2col, transpositions, col2im) runs in parallel too, and no BLAS call
 * pays for handing work to its threads and waiting for them. */
#pragma once

#include <glib.h>
#include <stdint.h>

/* Threads the layers use (OMP_NUM_THREADS, else the number of cores). */
int nnic_threads (void);
/* The calling thread's index within a parallel region, 0 outside one. */
int nnic_thread_index (void);

/* Between begin and end, BLAS calls run in the calling thread only; end
 * restores BLAS's own thread count. The executor brackets forward and
 * backward with them: BLAS's threads spinning beside ours would only
 * take turns with them on the same cores. */
int nnic_blas_single_begin (void);
void nnic_blas_single_end (int saved);

/* Sets n floats to zero, on all threads when n is large. */
void nnic_parallel_zero (float *x, int64_t n);

/* Part t of n items split into `parts` nearly equal ranges: [*lo, *hi). */
static inline void
nnic_split_range (int64_t n, int parts, int t, int64_t *lo, int64_t *hi)
{
  *lo = n * t / parts;
  *hi = n * (t + 1) / parts;
}
