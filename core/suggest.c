#include "core/suggest.h"

#include <string.h>

guint
nnic_edit_distance (const char *a, const char *b)
{
  size_t la = strlen (a), lb = strlen (b);
  g_autofree guint *row = g_new (guint, lb + 1);
  for (size_t j = 0; j <= lb; j++)
    row[j] = (guint) j;
  for (size_t i = 1; i <= la; i++) {
    guint diag = row[0];
    row[0] = (guint) i;
    for (size_t j = 1; j <= lb; j++) {
      guint up = row[j];
      guint best = MIN (row[j] + 1, row[j - 1] + 1);
      row[j] = MIN (best, diag + (a[i - 1] == b[j - 1] ? 0u : 1u));
      diag = up;
    }
  }
  return row[lb];
}

typedef struct {
  const char *name;
  guint distance;
} Candidate;

static gint
by_distance (gconstpointer x, gconstpointer y)
{
  const Candidate *a = x, *b = y;
  return (gint) a->distance - (gint) b->distance;
}

char *
nnic_suggest (const char *name, const char *const *candidates, guint n)
{
  if (!name || n == 0)
    return g_strdup ("");
  /* Close enough to be a typo: a third of the name's length, at least 2. */
  guint limit = MAX (2u, (guint) strlen (name) / 3);
  g_autoptr (GArray) close = g_array_new (FALSE, FALSE, sizeof (Candidate));
  for (guint i = 0; i < n; i++) {
    Candidate c = { candidates[i], nnic_edit_distance (name, candidates[i]) };
    if (c.distance <= limit || (strstr (candidates[i], name) && *name))
      g_array_append_val (close, c);
  }
  if (close->len == 0)
    return g_strdup ("");
  g_array_sort (close, by_distance);
  GString *s = g_string_new ("; did you mean ");
  for (guint i = 0; i < MIN (close->len, 3u); i++)
    g_string_append_printf (s, "%s'%s'", i == 0 ? "" : (i + 1 == MIN (close->len, 3u) ? " or " : ", "),
                            g_array_index (close, Candidate, i).name);
  g_string_append_c (s, '?');
  return g_string_free (s, FALSE);
}
