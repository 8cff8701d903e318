#include "core/io/file_util.h"

#include <stdarg.h>

GMappedFile *
nnic_file_map (const char *path, GError **error)
{
  GError *local = NULL;
  GMappedFile *mf = g_mapped_file_new (path, FALSE, &local);
  if (!mf) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_IO, "%s", local->message);
    g_error_free (local);
  }
  return mf;
}

void
nnic_format_error (GError **error, const char *path, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: %s", path, msg);
}
