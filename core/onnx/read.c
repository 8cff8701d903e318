/* ONNX import: the file's bytes → an unpacked Onnx__ModelProto (protobuf-c).
 *
 * Memory: protobuf-c copies every initializer's bytes out of the buffer it
 * unpacks. When the buffer is a read-only file mapping, the pages already
 * copied are dropped from the process (madvise MADV_DONTNEED: a private,
 * never-written file mapping refills them from the file if they are read
 * again), so the file and its unpacked copy are not both resident: peak
 * memory stays near one copy of the weights. */
#include "core/onnx/internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Allocations at least this large are tensor data: the moment to drop the
 * pages consumed so far. */
#define RELEASE_AT_BYTES ((size_t) 1 << 20)

static void *
proto_alloc (void *data, size_t size)
{
  NnicOnnxProto *p = data;
#ifdef MADV_DONTNEED
  if (p->map_data && size >= RELEASE_AT_BYTES)
    (void) madvise ((void *) p->map_data, p->map_len, MADV_DONTNEED);
#endif
  return malloc (size ? size : 1);
}

static void
proto_free (void *data, void *ptr)
{
  (void) data;
  free (ptr);
}

gboolean
nnic_onnx_proto_unpack (NnicOnnxProto *p, const guint8 *data, gsize size, GMappedFile *map,
                        const char *source, GError **error)
{
  memset (p, 0, sizeof *p);
  p->allocator.alloc = proto_alloc;
  p->allocator.free = proto_free;
  p->allocator.allocator_data = p;
  /* Only a page-aligned mapping of the whole file can be advised. */
  if (map && size > 0 && (const guint8 *) g_mapped_file_get_contents (map) == data &&
      ((guintptr) data % 4096) == 0) {
    p->map_data = data;
    p->map_len = size;
  }
  p->model = onnx__model_proto__unpack (&p->allocator, size, data);
  p->map_data = NULL;
  p->map_len = 0;
  if (!p->model) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: not an ONNX model: the protobuf could not be parsed (the file is truncated "
                 "or damaged)",
                 source);
    return FALSE;
  }
  return TRUE;
}

void
nnic_onnx_proto_clear (NnicOnnxProto *p)
{
  if (p->model)
    onnx__model_proto__free_unpacked (p->model, &p->allocator);
  p->model = NULL;
}
