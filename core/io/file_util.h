/* Internal: what the file readers share. */
#pragma once

#include <nnic/error.h>

/* Maps a file read-only; a missing or unreadable file is NNIC_ERROR_IO
 * with GLib's message, which names the file. */
GMappedFile *nnic_file_map (const char *path, GError **error);

/* A NNIC_ERROR_FORMAT error whose message starts with the file's path. */
void nnic_format_error (GError **error, const char *path, const char *fmt, ...) G_GNUC_PRINTF (3, 4);
