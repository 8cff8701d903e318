/* Atomic file replacement: write a sibling temporary file, fsync, rename.
 *
 * The temporary file lives in the target's directory (not /tmp) because
 * rename() is only atomic within one file system. A reader of `path` sees
 * either the old contents or the new ones, never a half-written file.
 */
#include <nnic/io.h>
#include <nnic/error.h>

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

static void
set_errno_error (GError **error, int errsv, const char *path, const char *what)
{
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_IO, "%s: %s: %s", path, what, g_strerror (errsv));
}

static gboolean
write_all (int fd, const void *data, size_t len)
{
  const char *p = data;
  while (len > 0) {
    ssize_t n = write (fd, p, len);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return FALSE;
    }
    p += n;
    len -= (size_t) n;
  }
  return TRUE;
}

/* Makes the rename itself durable; failure here is not worth reporting
 * (some file systems refuse fsync on directories), the data is already
 * safely in the new file. */
static void
sync_parent_dir (const char *path)
{
  g_autofree char *dir = g_path_get_dirname (path);
  int fd = open (dir, O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    (void) fsync (fd);
    close (fd);
  }
}

gboolean
nnic_write_file_atomic (const char *path, const void *data, size_t len, GError **error)
{
  g_return_val_if_fail (path != NULL, FALSE);
  g_return_val_if_fail (data != NULL || len == 0, FALSE);

  g_autofree char *tmp = g_strconcat (path, ".XXXXXX", NULL);
  /* 0666 filtered by the umask, like any file the user creates (mkstemp
   * would force 0600). */
  int fd = g_mkstemp_full (tmp, O_WRONLY | O_CLOEXEC, 0666);
  if (fd < 0) {
    set_errno_error (error, errno, path, "cannot create a temporary file");
    return FALSE;
  }

  const char *what = NULL;
  int errsv = 0;
  if (!write_all (fd, data, len))
    what = "cannot write";
  else if (fsync (fd) != 0)
    what = "cannot sync to disk";
  if (what)
    errsv = errno;
  /* close() can report a deferred write error (NFS, quotas). */
  if (close (fd) != 0 && !what) {
    errsv = errno;
    what = "cannot write";
  }
  if (!what && rename (tmp, path) != 0) {
    errsv = errno;
    what = "cannot replace the file";
  }
  if (what) {
    g_unlink (tmp);
    set_errno_error (error, errsv, path, what);
    return FALSE;
  }
  sync_parent_dir (path);
  return TRUE;
}

gboolean
nnic_write_json_atomic (const char *path, JsonObject *object, GError **error)
{
  g_autoptr (JsonNode) root = json_node_init_object (json_node_alloc (), object);
  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, root);
  json_generator_set_pretty (gen, TRUE);
  gsize len;
  g_autofree char *text = json_generator_to_data (gen, &len);
  return nnic_write_file_atomic (path, text, len, error);
}
