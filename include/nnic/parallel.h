/* nnic — elementwise work on all cores, for plugins.
 *
 * A quantizer's fake-quantization runs inside every forward, over every
 * element of a weight or an activation; on a large layer it is worth the
 * cores. nnic_parallel_for() gives a plugin nnic's own threads without
 * building with OpenMP, and one rule for when a loop is large enough to
 * share out, the same in every plugin.
 */
#pragma once

#include <nnic/export.h>

#include <glib.h>
#include <stdint.h>

G_BEGIN_DECLS

/* Does the work on the items [lo, hi). */
typedef void (*NnicRangeFn) (int64_t lo, int64_t hi, gpointer user_data);

/* Calls fn over [0, n) in contiguous ranges that cover it exactly once:
 * fn (0, n) in the calling thread for n up to 65536 items (below that a
 * parallel region costs more than it saves), else one range per thread,
 * the ranges running at the same time. Meant for elementwise work, where
 * each item's result does not depend on how [0, n) is cut: then the
 * results are the same bits on any number of threads. fn must not write
 * where another range reads, and returns before nnic_parallel_for() does.
 * Inside an outer parallel region it runs fn (0, n) in the calling thread. */
NNIC_API void nnic_parallel_for (int64_t n, NnicRangeFn fn, gpointer user_data);

G_END_DECLS
