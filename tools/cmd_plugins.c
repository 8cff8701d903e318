/* nnic plugins: the algorithms the plugins on the search path provide, with
 * the config keys each accepts; then, on stderr, the plugins that were
 * refused or shadowed. */
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *
key_type_name (NnicKeyType t)
{
  switch (t) {
  case NNIC_KEY_NUMBER:
    return "number";
  case NNIC_KEY_INT:
    return "int";
  case NNIC_KEY_BOOL:
    return "bool";
  case NNIC_KEY_STRING:
    return "string";
  }
  return "?";
}

static void
append_bound (GString *s, double v, gboolean integer)
{
  if (isinf (v))
    g_string_append (s, v < 0 ? "-inf" : "inf");
  else if (integer && fabs (v) < 1e15)
    g_string_append_printf (s, "%.0f", v);
  else
    g_string_append_printf (s, "%g", v);
}

/* "[0, 1)", "(0, inf)"; "" when the key has no range. */
static char *
key_range (const NnicConfigKey *k)
{
  GString *s = g_string_new (NULL);
  if ((k->type == NNIC_KEY_NUMBER || k->type == NNIC_KEY_INT) && k->min <= k->max) {
    g_string_append_c (s, k->min_open ? '(' : '[');
    append_bound (s, k->min, k->type == NNIC_KEY_INT);
    g_string_append (s, ", ");
    append_bound (s, k->max, k->type == NNIC_KEY_INT);
    g_string_append_c (s, k->max_open ? ')' : ']');
  }
  return g_string_free (s, FALSE);
}

static char *
key_default (const NnicConfigKey *k)
{
  if (k->required)
    return g_strdup ("required");
  if (k->default_text)
    return g_strdup_printf ("default %s", k->default_text);
  return g_strdup ("");
}

static void
print_keys (const NnicAlgorithmInfo *info)
{
  if (info->n_keys == 0) {
    printf ("    %-8s (none beyond the core's)\n", "keys");
    return;
  }
  int wname = 0, wtype = 0, wrange = 0, wdefault = 0;
  g_auto (GStrv) ranges = g_new0 (char *, info->n_keys + 1);
  g_auto (GStrv) defaults = g_new0 (char *, info->n_keys + 1);
  for (guint i = 0; i < info->n_keys; i++) {
    const NnicConfigKey *k = &info->keys[i];
    ranges[i] = key_range (k);
    defaults[i] = key_default (k);
    wname = MAX (wname, (int) strlen (k->name));
    wtype = MAX (wtype, (int) strlen (key_type_name (k->type)));
    wrange = MAX (wrange, (int) strlen (ranges[i]));
    wdefault = MAX (wdefault, (int) strlen (defaults[i]));
  }
  for (guint i = 0; i < info->n_keys; i++) {
    const NnicConfigKey *k = &info->keys[i];
    GString *line = g_string_new (NULL);
    g_string_append_printf (line, "    %-8s %-*s  %-*s", i == 0 ? "keys" : "", wname, k->name,
                            wtype, key_type_name (k->type));
    if (wrange)
      g_string_append_printf (line, "  %-*s", wrange, ranges[i]);
    if (wdefault)
      g_string_append_printf (line, "  %-*s", wdefault, defaults[i]);
    if (k->help && *k->help)
      g_string_append_printf (line, "  %s", k->help);
    while (line->len && line->str[line->len - 1] == ' ')
      g_string_truncate (line, line->len - 1);
    printf ("%s\n", line->str);
    g_string_free (line, TRUE);
  }
}

static int
run (gboolean names_only, gboolean show_path)
{
  if (show_path) {
    g_auto (GStrv) path = nnic_plugin_search_path ();
    for (char **p = path; *p; p++)
      printf ("%s\n", *p);
    return 0;
  }
  const GPtrArray *algorithms = nnic_list_algorithms ();
  int wname = 0, wkind = 0;
  for (guint i = 0; i < algorithms->len; i++) {
    const NnicAlgorithm *a = algorithms->pdata[i];
    wname = MAX (wname, (int) strlen (a->info->name));
    wkind = MAX (wkind, (int) strlen (nnic_algorithm_kind_name (a->info->kind)));
  }
  for (guint i = 0; i < algorithms->len; i++) {
    const NnicAlgorithm *a = algorithms->pdata[i];
    if (names_only) {
      printf ("%s\n", a->info->name);
      continue;
    }
    if (i > 0)
      printf ("\n");
    const char *description = a->info->description;
    if (description && *description)
      printf ("%-*s  %-*s  %s\n", wname, a->info->name, wkind,
              nnic_algorithm_kind_name (a->info->kind), description);
    else
      printf ("%-*s  %s\n", wname, a->info->name, nnic_algorithm_kind_name (a->info->kind));
    printf ("    %-8s %s %s (%s), plugin ABI %u.%u\n", "plugin", a->plugin_name, a->plugin_version,
            a->plugin_license, a->abi_major, a->abi_minor);
    printf ("    %-8s %s\n", "file", a->plugin_file);
    print_keys (a->info);
  }
  fflush (stdout);

  const GPtrArray *problems = nnic_registry_problems ();
  for (guint i = 0; i < problems->len; i++)
    fprintf (stderr, "warning: %s\n", (const char *) problems->pdata[i]);
  if (algorithms->len == 0) {
    g_auto (GStrv) path = nnic_plugin_search_path ();
    g_autofree char *joined = g_strjoinv (G_SEARCHPATH_SEPARATOR_S, path);
    fprintf (stderr, "nnic plugins: no algorithms found (searched %s; set NNIC_PLUGIN_PATH to the "
                     "directories of nnic's plugins)\n", joined);
  }
  return 0;
}

int
nnic_cmd_plugins (int argc, char **argv)
{
  gboolean names_only = FALSE, show_path = FALSE;
  GOptionEntry entries[] = {
    { "names", 'n', 0, G_OPTION_ARG_NONE, &names_only, "Print the algorithm names only, one a line", NULL },
    { "path", 0, 0, G_OPTION_ARG_NONE, &show_path, "Print the directories searched, in order, and exit", NULL },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- list the algorithm plugins");
  g_option_context_set_summary (
      ctx, "Lists every algorithm the plugins provide: its kind, plugin, version, the plugin ABI it\n"
           "was built for, its file, and the config keys it accepts beyond the core's.\n"
           "Plugins are searched in the directories of NNIC_PLUGIN_PATH (colon-separated), then\n"
           "in the installed plugin directory. Plugins that were refused, and algorithm names\n"
           "provided twice (the first one found wins), are reported on stderr as warnings.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  if (!g_option_context_parse (ctx, &argc, &argv, &error))
    return nnic_cli_fail ("plugins", error);
  if (argc > 1) {
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "unexpected argument '%s'", argv[1]);
    return nnic_cli_fail ("plugins", error);
  }
  return run (names_only, show_path);
}
