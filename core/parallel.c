#include "core/parallel.h"

#include <nnic/parallel.h>

#include <cblas.h>
#include <omp.h>
#include <string.h>

int
nnic_threads (void)
{
  return MAX (1, omp_get_max_threads ());
}

int
nnic_thread_index (void)
{
  return omp_get_thread_num ();
}

int
nnic_blas_single_begin (void)
{
  int saved = openblas_get_num_threads ();
  if (saved != 1)
    openblas_set_num_threads (1);
  return saved;
}

void
nnic_blas_single_end (int saved)
{
  if (saved != 1)
    openblas_set_num_threads (saved);
}

void
nnic_parallel_zero (float *x, int64_t n)
{
  const int64_t block = 1 << 16;
  const int64_t blocks = (n + block - 1) / block;
#pragma omp parallel for schedule(static) if (blocks > 1)
  for (int64_t b = 0; b < blocks; b++)
    memset (x + b * block, 0, sizeof (float) * (size_t) MIN (block, n - b * block));
}

/* The size below which nnic_parallel_for stays in the calling thread
 * (include/nnic/parallel.h states it). */
#define PARALLEL_FOR_MIN 65536

void
nnic_parallel_for (int64_t n, NnicRangeFn fn, gpointer user_data)
{
  if (n <= 0)
    return;
  if (n <= PARALLEL_FOR_MIN || omp_in_parallel ()) {
    fn (0, n, user_data);
    return;
  }
#pragma omp parallel
  {
    int64_t lo, hi;
    nnic_split_range (n, omp_get_num_threads (), omp_get_thread_num (), &lo, &hi);
    if (lo < hi)
      fn (lo, hi, user_data);
  }
}
