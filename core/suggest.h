/* Internal: "did you mean" hints for unknown names. */
#pragma once

#include <glib.h>

/* Edit distance between two strings. */
guint nnic_edit_distance (const char *a, const char *b);
/* "; did you mean 'conv1.weight'?" naming up to three candidates close to
 * `name`, or "" when none is close. Always returns a string to g_free. */
char *nnic_suggest (const char *name, const char *const *candidates, guint n);
