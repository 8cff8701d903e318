#include "core/parallel.h"

#include <cblas.h>
#include <omp.h>

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
