/* The plugin registry: discovery, every reason a plugin is refused (with its
 * exact message), duplicates, search-path order, lookups and rescans.
 *
 * The plugins are built by tests/plugins/: good/ (libgood.so: test_masker and
 * test_pruner; libgood_second.so: test_quantizer), dup/ (libdup.so:
 * test_masker again, and dup_only), bad/ (each refused for one reason) and
 * reentrant/ (calls the registry from its registration). */
#include "testutil.h"

#include <glib/gstdio.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOOD NNIC_TEST_PLUGINS_GOOD
#define DUP NNIC_TEST_PLUGINS_DUP
#define BAD NNIC_TEST_PLUGINS_BAD
#define REENTRANT NNIC_TEST_PLUGINS_REENTRANT

/* Points NNIC_PLUGIN_PATH at the directories given (NULL-terminated) and
 * forgets the previous scan. */
static void G_GNUC_NULL_TERMINATED
use_path (const char *first, ...)
{
  GString *s = g_string_new (first);
  va_list ap;
  va_start (ap, first);
  for (const char *d = va_arg (ap, const char *); d; d = va_arg (ap, const char *))
    g_string_append_printf (s, ":%s", d);
  va_end (ap);
  setenv ("NNIC_PLUGIN_PATH", s->str, 1);
  g_string_free (s, TRUE);
  nnic_registry_reset ();
}

static char *
plugin_path (const char *dir, const char *file)
{
  g_autofree char *p = g_build_filename (dir, file, NULL);
  return g_canonicalize_filename (p, NULL);
}

static char *
all_problems (void)
{
  const GPtrArray *p = nnic_registry_problems ();
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < p->len; i++)
    g_string_append_printf (s, "\n  %s", (const char *) p->pdata[i]);
  return g_string_free (s, FALSE);
}

/* The one problem that starts with `prefix`, or NULL (fails on two). */
static const char *
problem_starting (const char *prefix)
{
  const GPtrArray *p = nnic_registry_problems ();
  const char *found = NULL;
  for (guint i = 0; i < p->len; i++)
    if (g_str_has_prefix (p->pdata[i], prefix)) {
      ck_assert_msg (!found, "two problems start with %s:\n  %s\n  %s", prefix, found,
                     (const char *) p->pdata[i]);
      found = p->pdata[i];
    }
  return found;
}

static void
assert_problem (const char *expected)
{
  const GPtrArray *p = nnic_registry_problems ();
  for (guint i = 0; i < p->len; i++)
    if (!strcmp (p->pdata[i], expected))
      return;
  g_autofree char *all = all_problems ();
  ck_abort_msg ("no problem \"%s\"; the problems are:%s", expected, all);
}

static void
assert_no_problem_mentions (const char *needle)
{
  const GPtrArray *p = nnic_registry_problems ();
  for (guint i = 0; i < p->len; i++)
    ck_assert_msg (!strstr (p->pdata[i], needle), "unexpected problem: %s",
                   (const char *) p->pdata[i]);
}

static const NnicAlgorithm *
load (const char *name)
{
  GError *err = NULL;
  const NnicAlgorithm *a = nnic_load_algorithm (name, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_ptr_nonnull (a);
  return a;
}

static void
assert_not_found (const char *name)
{
  GError *err = NULL;
  ck_assert_ptr_null (nnic_load_algorithm (name, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, name);
  g_clear_error (&err);
}

/* The installed plugin directory is searched last; when it exists (nnic
 * was installed) it may add algorithms of its own. */
static gboolean
installed_dir_exists (void)
{
  g_auto (GStrv) path = nnic_plugin_search_path ();
  guint n = g_strv_length (path);
  return n > 0 && g_file_test (path[n - 1], G_FILE_TEST_EXISTS);
}

/* ---- basics ---- */

START_TEST (test_kind_names)
{
  ck_assert_str_eq (nnic_algorithm_kind_name (NNIC_ALGORITHM_MASKER), "masker");
  ck_assert_str_eq (nnic_algorithm_kind_name (NNIC_ALGORITHM_PRUNER), "pruner");
  ck_assert_str_eq (nnic_algorithm_kind_name (NNIC_ALGORITHM_QUANTIZER), "quantizer");
  ck_assert_str_eq (nnic_algorithm_kind_name ((NnicAlgorithmKind) 99), "unknown");
}
END_TEST

START_TEST (test_search_path)
{
  unsetenv ("NNIC_PLUGIN_PATH");
  unsetenv ("NNIC_PLUGIN_SYSTEM_PATH");
  g_auto (GStrv) installed = nnic_plugin_search_path ();
  ck_assert_uint_eq (g_strv_length (installed), 1);
  ck_assert (g_path_is_absolute (installed[0]));
  setenv ("NNIC_PLUGIN_SYSTEM_PATH", "", 1);
  g_auto (GStrv) none = nnic_plugin_search_path ();
  ck_assert_uint_eq (g_strv_length (none), 0);
  setenv ("NNIC_PLUGIN_SYSTEM_PATH", "/opt/plugins", 1);
  g_auto (GStrv) system = nnic_plugin_search_path ();
  ck_assert_uint_eq (g_strv_length (system), 1);
  ck_assert_str_eq (system[0], "/opt/plugins");

  unsetenv ("NNIC_PLUGIN_SYSTEM_PATH");
  setenv ("NNIC_PLUGIN_PATH", "/a::/b/c:", 1);
  g_auto (GStrv) path = nnic_plugin_search_path ();
  ck_assert_uint_eq (g_strv_length (path), 3);
  ck_assert_str_eq (path[0], "/a");
  ck_assert_str_eq (path[1], "/b/c");
  ck_assert_str_eq (path[2], installed[0]);
}
END_TEST

/* ---- plugins that load ---- */

START_TEST (test_good_plugins_load)
{
  use_path (GOOD, NULL);
  assert_no_problem_mentions (GOOD);
  g_autofree char *good = plugin_path (GOOD, "libgood.so");
  g_autofree char *second = plugin_path (GOOD, "libgood_second.so");

  const NnicAlgorithm *m = load ("test_masker");
  ck_assert_int_eq (m->info->kind, NNIC_ALGORITHM_MASKER);
  ck_assert_str_eq (m->info->name, "test_masker");
  ck_assert_str_eq (m->info->description, "Masks nothing (a test plugin)");
  ck_assert_str_eq (m->plugin_name, "nnic-test-good");
  ck_assert_str_eq (m->plugin_version, "1.2.3");
  ck_assert_str_eq (m->plugin_license, "MIT");
  ck_assert_str_eq (m->plugin_file, good);
  ck_assert_uint_eq (m->abi_major, NNIC_ABI_MAJOR);
  ck_assert_uint_eq (m->abi_minor, NNIC_ABI_MINOR);
  ck_assert_uint_eq (m->info->n_keys, 1);
  const NnicConfigKey *k = &m->info->keys[0];
  ck_assert_str_eq (k->name, "test_strength");
  ck_assert_int_eq (k->type, NNIC_KEY_NUMBER);
  ck_assert (k->min == 0 && k->max == 1 && !k->min_open && k->max_open && !k->required);
  ck_assert_str_eq (k->default_text, "0.5");
  ck_assert_str_eq (k->help, "How hard the test masker prunes");

  /* The vtable is usable: call it. */
  const NnicMaskerVTable *vt = m->info->vtable;
  ck_assert_uint_eq (vt->struct_size, sizeof (NnicMaskerVTable));
  ck_assert_ptr_null (vt->create);
  ck_assert_ptr_nonnull (vt->calc_mask);
  gboolean ready = FALSE;
  ck_assert (vt->calc_mask (NULL, NULL, NULL, 0, 0.5, &ready, NULL));
  ck_assert (ready);

  const NnicAlgorithm *p = load ("test_pruner");
  ck_assert_int_eq (p->info->kind, NNIC_ALGORITHM_PRUNER);
  ck_assert_str_eq (p->plugin_file, good);
  ck_assert_uint_eq (p->info->n_keys, 3);
  ck_assert_str_eq (p->info->keys[0].name, "test_steps");
  ck_assert (p->info->keys[0].required);
  ck_assert_ptr_nonnull (((const NnicPrunerVTable *) p->info->vtable)->compress);

  const NnicAlgorithm *q = load ("test_quantizer");
  ck_assert_int_eq (q->info->kind, NNIC_ALGORITHM_QUANTIZER);
  ck_assert_str_eq (q->plugin_file, second);
  ck_assert_str_eq (q->plugin_name, "nnic-test-good-second");
  ck_assert_str_eq (q->plugin_version, "0.1.0");
  ck_assert_str_eq (q->plugin_license, "Apache-2.0");
  /* Its keys were declared with a larger stride (key_size): read right. */
  ck_assert_uint_eq (q->info->n_keys, 2);
  ck_assert_str_eq (q->info->keys[0].name, "first_key");
  ck_assert_str_eq (q->info->keys[1].name, "second_key");
  ck_assert_int_eq (q->info->keys[1].type, NNIC_KEY_BOOL);
  ck_assert_str_eq (q->info->keys[1].help, "two");

  /* A second lookup returns the same algorithm without scanning again. */
  ck_assert_ptr_eq (load ("test_masker"), m);
}
END_TEST

START_TEST (test_list_sorted)
{
  use_path (DUP, GOOD, NULL);
  const GPtrArray *a = nnic_list_algorithms ();
  ck_assert_uint_ge (a->len, 4);
  for (guint i = 1; i < a->len; i++) {
    const NnicAlgorithm *x = a->pdata[i - 1], *y = a->pdata[i];
    ck_assert_msg (strcmp (x->info->name, y->info->name) < 0, "%s listed before %s", x->info->name,
                   y->info->name);
  }
  const char *want[] = { "dup_only", "test_masker", "test_pruner", "test_quantizer" };
  for (guint w = 0; w < G_N_ELEMENTS (want); w++) {
    gboolean found = FALSE;
    for (guint i = 0; i < a->len; i++)
      found |= !strcmp (((const NnicAlgorithm *) a->pdata[i])->info->name, want[w]);
    ck_assert_msg (found, "%s is not listed", want[w]);
  }
  ck_assert_ptr_eq (nnic_list_algorithms (), a);
}
END_TEST

/* ---- refusals: one per reason, with the exact message ---- */

typedef struct {
  const char *file;
  const char *reason; /* after "<path>: "; a leading '~' means "starts with" */
} Refusal;

static Refusal refusals[32];
static guint n_refusals;

static void
add_refusal (const char *file, const char *reason)
{
  g_assert (n_refusals < G_N_ELEMENTS (refusals));
  refusals[n_refusals++] = (Refusal){ file, reason };
}

static void
init_refusals (void)
{
  char *newer_major = g_strdup_printf ("built for plugin ABI %d.%d, this nnic implements %d.%d "
                                       "(it needs a newer nnic)",
                                       NNIC_ABI_MAJOR + 1, NNIC_ABI_MINOR, NNIC_ABI_MAJOR,
                                       NNIC_ABI_MINOR);
  char *older_major = g_strdup_printf ("built for plugin ABI %d.%d, this nnic implements %d.%d "
                                       "(rebuild it against this nnic)",
                                       NNIC_ABI_MAJOR - 1, NNIC_ABI_MINOR, NNIC_ABI_MAJOR,
                                       NNIC_ABI_MINOR);
  char *newer_minor = g_strdup_printf ("built for plugin ABI %d.%d, this nnic implements %d.%d "
                                       "(it needs a newer nnic)",
                                       NNIC_ABI_MAJOR, NNIC_ABI_MINOR + 1, NNIC_ABI_MAJOR,
                                       NNIC_ABI_MINOR);
  char *small_desc = g_strdup_printf ("descriptor declares %zu bytes, plugin ABI %d.%d needs at least %zu",
                                      offsetof (NnicPluginDescriptor, name), NNIC_ABI_MAJOR,
                                      NNIC_ABI_MINOR, sizeof (NnicPluginDescriptor));
  char *small_info = g_strdup_printf ("registration failed: algorithm info declares %zu bytes, "
                                      "plugin ABI %d.0 needs at least %zu",
                                      offsetof (NnicAlgorithmInfo, vtable), NNIC_ABI_MAJOR,
                                      offsetof (NnicAlgorithmInfo, vtable) + sizeof (void *));
  char *small_vtable = g_strdup_printf ("registration failed: algorithm 'broken': masker vtable "
                                        "declares %zu bytes, plugin ABI %d.0 needs at least %zu",
                                        offsetof (NnicMaskerVTable, calc_mask), NNIC_ABI_MAJOR,
                                        offsetof (NnicMaskerVTable, calc_mask) + sizeof (void *));
  add_refusal ("libno_entry.so", "no entry point nnic_plugin_descriptor (not an nnic plugin?)");
  add_refusal ("libundefined_symbol.so", "~cannot load: ");
  add_refusal ("libnull_descriptor.so", "nnic_plugin_descriptor() returned NULL");
  add_refusal ("libabi_major.so", newer_major);
  add_refusal ("libabi_major_older.so", older_major);
  add_refusal ("libabi_minor_newer.so", newer_minor);
  add_refusal ("libsmall_descriptor.so", small_desc);
  add_refusal ("libno_license.so", "descriptor has no license");
  add_refusal ("libno_register.so", "descriptor has no register_algorithms function");
  add_refusal ("libregister_fails.so",
               "registration failed: cannot find its lookup table /nonexistent/table.bin");
  add_refusal ("libregister_fails_no_error.so",
               "registration failed: register_algorithms returned FALSE without an error");
  add_refusal ("libbad_name.so",
               "registration failed: algorithm name 'Bad-Name' is invalid (wanted [a-z0-9_]+)");
  add_refusal ("libignored_refusal.so",
               "registration failed: algorithm name 'Bad-Name' is invalid (wanted [a-z0-9_]+)");
  add_refusal ("libnull_name.so",
               "registration failed: algorithm name NULL is invalid (wanted [a-z0-9_]+)");
  add_refusal ("libbad_kind.so", "registration failed: algorithm 'broken': unknown kind 7");
  add_refusal ("libsmall_info.so", small_info);
  add_refusal ("libnull_vtable.so", "registration failed: algorithm 'broken': no vtable");
  add_refusal ("libsmall_vtable.so", small_vtable);
  add_refusal ("libno_calc_mask.so",
               "registration failed: algorithm 'broken': masker vtable has no calc_mask");
  add_refusal ("libno_compress.so",
               "registration failed: algorithm 'broken': pruner vtable has no compress");
  add_refusal ("libno_quantize.so",
               "registration failed: algorithm 'broken': quantizer vtable has no "
               "quantize_weight, quantize_input or quantize_output");
  add_refusal ("libbad_key_type.so",
               "registration failed: algorithm 'broken': config key 'level' has unknown type 42");
  add_refusal ("libbad_key_name.so", "registration failed: algorithm 'broken': config key name "
                                     "'Level' is invalid (wanted [a-z0-9_]+)");
  add_refusal ("libdup_key.so",
               "registration failed: algorithm 'broken': config key 'level' is declared twice");
  add_refusal ("libnull_keys.so",
               "registration failed: algorithm 'broken': n_keys is 3 but keys is NULL");
}

START_TEST (test_refused)
{
  const Refusal *r = &refusals[_i];
  use_path (BAD, GOOD, NULL);
  g_autofree char *path = plugin_path (BAD, r->file);
  ck_assert_msg (g_file_test (path, G_FILE_TEST_IS_REGULAR), "%s was not built", path);
  g_autofree char *prefix = g_strdup_printf ("%s: ", path);
  const char *msg = problem_starting (prefix);
  g_autofree char *all = all_problems ();
  ck_assert_msg (msg, "no problem about %s; the problems are:%s", path, all);
  if (r->reason[0] == '~')
    ck_assert_msg (g_str_has_prefix (msg + strlen (prefix), r->reason + 1),
                   "\"%s\" does not start with \"%s\"", msg, prefix);
  else
    ck_assert_str_eq (msg + strlen (prefix), r->reason);
  /* The good plugins after it still load. */
  load ("test_masker");
}
END_TEST

START_TEST (test_undefined_symbol_names_it)
{
  use_path (BAD, NULL);
  g_autofree char *path = plugin_path (BAD, "libundefined_symbol.so");
  g_autofree char *prefix = g_strdup_printf ("%s: cannot load: ", path);
  const char *msg = problem_starting (prefix);
  ck_assert_ptr_nonnull (msg);
  ck_assert_msg (strstr (msg, "undefined symbol") && strstr (msg, "nnic_no_such_function"),
                 "%s", msg);
  /* dlerror()'s own copy of the path is not repeated. */
  ck_assert_ptr_null (strstr (msg + strlen (prefix), path));
}
END_TEST

/* Every .so in bad/ is refused exactly once, and none of their algorithms
 * (registered before the refusal, or never reached) is left behind. */
START_TEST (test_bad_dir_registers_nothing)
{
  use_path (BAD, NULL);
  g_autoptr (GDir) d = g_dir_open (BAD, 0, NULL);
  ck_assert_ptr_nonnull (d);
  guint n = 0;
  for (const char *name; (name = g_dir_read_name (d));) {
    if (!g_str_has_suffix (name, ".so"))
      continue;
    g_autofree char *path = plugin_path (BAD, name);
    g_autofree char *prefix = g_strdup_printf ("%s: ", path);
    ck_assert_msg (problem_starting (prefix), "%s was not refused", path);
    n++;
  }
  ck_assert_uint_eq (n, n_refusals);
  const GPtrArray *a = nnic_list_algorithms ();
  for (guint i = 0; i < a->len; i++)
    ck_assert_msg (!strstr (((const NnicAlgorithm *) a->pdata[i])->plugin_file, BAD),
                   "%s registered from %s", ((const NnicAlgorithm *) a->pdata[i])->info->name,
                   ((const NnicAlgorithm *) a->pdata[i])->plugin_file);
  if (!installed_dir_exists ())
    ck_assert_uint_eq (a->len, 0);
  assert_not_found ("should_vanish");
  assert_not_found ("fine_before");
  assert_not_found ("should_not_appear");
}
END_TEST

/* Files that are not plugins: garbage named .so is refused; other names,
 * hidden files and directories are not even opened. */
START_TEST (test_not_plugins)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *garbage = nnic_test_write (dir, "libgarbage.so", "not an ELF file", 15);
  g_autofree char *empty = nnic_test_write (dir, "libempty.so", "", 0);
  g_autofree char *hidden = nnic_test_write (dir, ".libhidden.so", "x", 1);
  g_autofree char *text = nnic_test_write (dir, "README.txt", "x", 1);
  g_autofree char *subdir = g_build_filename (dir, "libdir.so", NULL);
  ck_assert_int_eq (g_mkdir (subdir, 0700), 0);
  use_path (dir, GOOD, NULL);

  g_autofree char *p1 = g_strdup_printf ("%s: cannot load: ", garbage);
  g_autofree char *p2 = g_strdup_printf ("%s: cannot load: ", empty);
  ck_assert_ptr_nonnull (problem_starting (p1));
  ck_assert_ptr_nonnull (problem_starting (p2));
  assert_no_problem_mentions ("hidden");
  assert_no_problem_mentions ("README");
  assert_no_problem_mentions ("libdir.so");
  load ("test_quantizer");
  g_remove (garbage), g_remove (empty), g_remove (hidden), g_remove (text), g_rmdir (subdir);
  g_rmdir (dir);
}
END_TEST

/* ---- duplicates and order ---- */

START_TEST (test_duplicate_first_wins)
{
  use_path (GOOD, DUP, NULL);
  g_autofree char *good = plugin_path (GOOD, "libgood.so");
  g_autofree char *dup = plugin_path (DUP, "libdup.so");
  ck_assert_str_eq (load ("test_masker")->plugin_file, good);
  ck_assert_str_eq (load ("test_masker")->info->description, "Masks nothing (a test plugin)");
  g_autofree char *msg = g_strdup_printf ("%s: algorithm 'test_masker' already provided by %s (ignored)",
                                          dup, good);
  assert_problem (msg);
  /* The duplicate is not fatal: the rest of libdup.so loads. */
  const NnicAlgorithm *only = load ("dup_only");
  ck_assert_str_eq (only->plugin_file, dup);
  ck_assert_str_eq (only->plugin_version, "9.9.9");
  ck_assert_uint_eq (nnic_registry_problems ()->len, 1);
}
END_TEST

START_TEST (test_path_order_decides)
{
  use_path (DUP, GOOD, NULL);
  g_autofree char *good = plugin_path (GOOD, "libgood.so");
  g_autofree char *dup = plugin_path (DUP, "libdup.so");
  const NnicAlgorithm *m = load ("test_masker");
  ck_assert_str_eq (m->plugin_file, dup);
  ck_assert_str_eq (m->info->description, "dup's test_masker");
  ck_assert_uint_eq (m->info->n_keys, 0);
  g_autofree char *msg = g_strdup_printf ("%s: algorithm 'test_masker' already provided by %s (ignored)",
                                          good, dup);
  assert_problem (msg);
  /* libgood.so's other algorithm is still there. */
  ck_assert_str_eq (load ("test_pruner")->plugin_file, good);
}
END_TEST

START_TEST (test_same_dir_twice)
{
  g_autofree char *again = g_strdup_printf ("%s/../good", GOOD); /* another spelling of it */
  use_path (GOOD, again, GOOD, NULL);
  g_autofree char *all = all_problems ();
  ck_assert_msg (nnic_registry_problems ()->len == 0, "problems:%s", all);
  load ("test_masker");
}
END_TEST

/* ---- the search path ---- */

START_TEST (test_missing_dir_is_skipped)
{
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *file = nnic_test_write (dir, "plain_file", "x", 1);
  use_path ("/nonexistent/nnic-plugins", file, GOOD, NULL);
  assert_problem ("NNIC_PLUGIN_PATH: /nonexistent/nnic-plugins: no such directory (skipped)");
  g_autofree char *msg = g_strdup_printf ("NNIC_PLUGIN_PATH: %s: not a directory (skipped)", file);
  assert_problem (msg);
  ck_assert_uint_eq (nnic_registry_problems ()->len, 2);
  load ("test_masker");
  load ("test_quantizer");
  g_remove (file);
  g_rmdir (dir);
}
END_TEST

/* ---- lookups ---- */

START_TEST (test_unknown_name_suggests)
{
  use_path (GOOD, NULL);
  GError *err = NULL;
  ck_assert_ptr_null (nnic_load_algorithm ("test_maskr", &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "no algorithm named 'test_maskr'; did you mean 'test_masker'");
  g_clear_error (&err);

  /* Nothing close: the known names. */
  ck_assert_ptr_null (nnic_load_algorithm ("xyz", &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "no algorithm named 'xyz' (known: ");
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "test_pruner");
  g_clear_error (&err);

  ck_assert_ptr_null (nnic_load_algorithm (NULL, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "no algorithm name");
  g_clear_error (&err);
  ck_assert_ptr_null (nnic_load_algorithm ("", NULL)); /* no error wanted: no crash */
}
END_TEST

START_TEST (test_unknown_name_mentions_refusals)
{
  use_path (BAD, GOOD, NULL);
  GError *err = NULL;
  ck_assert_ptr_null (nnic_load_algorithm ("should_vanish", &err));
  g_autofree char *n = g_strdup_printf ("(%u plugins were refused; 'nnic plugins' says why)", n_refusals);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, n);
  g_clear_error (&err);
}
END_TEST

START_TEST (test_nothing_registered_names_path)
{
  if (installed_dir_exists ())
    return; /* an installed nnic's plugins would be found */
  g_autofree char *dir = nnic_test_tmpdir ();
  use_path (dir, NULL);
  GError *err = NULL;
  ck_assert_ptr_null (nnic_load_algorithm ("level", &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "no algorithm named 'level': no plugins registered any algorithm");
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, dir);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_NOT_FOUND, "NNIC_PLUGIN_PATH");
  g_clear_error (&err);
  ck_assert_uint_eq (nnic_list_algorithms ()->len, 0);
  ck_assert_uint_eq (nnic_registry_problems ()->len, 0);
  g_rmdir (dir);
}
END_TEST

/* ---- rescans ---- */

START_TEST (test_reset_rescans)
{
  use_path (GOOD, NULL);
  const NnicAlgorithm *first = load ("test_masker");
  const GPtrArray *first_list = nnic_list_algorithms ();
  g_autofree char *good = plugin_path (GOOD, "libgood.so");
  g_autofree char *dup = plugin_path (DUP, "libdup.so");
  assert_not_found ("dup_only");

  use_path (DUP, GOOD, NULL);
  const NnicAlgorithm *second = load ("test_masker");
  ck_assert_str_eq (second->plugin_file, dup);
  load ("dup_only");
  /* What the first scan handed out is still valid (and unchanged). */
  ck_assert_str_eq (first->plugin_file, good);
  ck_assert_str_eq (first->info->name, "test_masker");
  ck_assert_uint_eq (first_list->len, 3);

  /* Back to the first path: the same files open again. */
  use_path (GOOD, NULL);
  ck_assert_str_eq (load ("test_masker")->plugin_file, good);
  assert_not_found ("dup_only");
  ck_assert_uint_eq (nnic_registry_problems ()->len, 0);

  /* Without a reset, a changed path is not looked at. */
  setenv ("NNIC_PLUGIN_PATH", DUP, 1);
  ck_assert_str_eq (load ("test_masker")->plugin_file, good);
}
END_TEST

/* A plugin that calls the registry while it is being registered gets an
 * error (no deadlock, no nested scan), and the scan goes on. */
START_TEST (test_reentrant_plugin)
{
  use_path (GOOD, REENTRANT, NULL);
  const NnicAlgorithm *a = load ("reentrant_ok");
  g_autofree char *file = plugin_path (REENTRANT, "libreentrant.so");
  ck_assert_str_eq (a->plugin_file, file);
  load ("test_masker");
  if (!installed_dir_exists ())
    ck_assert_uint_eq (nnic_list_algorithms ()->len, 4);
}
END_TEST

static gpointer
lookup_thread (gpointer data)
{
  (void) data;
  return (gpointer) nnic_load_algorithm ("test_pruner", NULL);
}

START_TEST (test_concurrent_first_use)
{
  use_path (BAD, DUP, GOOD, NULL);
  GThread *threads[8];
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    threads[i] = g_thread_new ("lookup", lookup_thread, NULL);
  gpointer got[G_N_ELEMENTS (threads)];
  for (guint i = 0; i < G_N_ELEMENTS (threads); i++)
    got[i] = g_thread_join (threads[i]);
  ck_assert_ptr_nonnull (got[0]);
  for (guint i = 1; i < G_N_ELEMENTS (threads); i++)
    ck_assert_ptr_eq (got[i], got[0]);
  /* One scan: each refusal and the duplicate reported once. */
  if (!installed_dir_exists ())
    ck_assert_uint_eq (nnic_registry_problems ()->len, n_refusals + 1);
}
END_TEST

static Suite *
registry_suite (void)
{
  init_refusals ();
  Suite *s = suite_create ("registry");
  TCase *tc = tcase_create ("registry");
  tcase_add_test (tc, test_kind_names);
  tcase_add_test (tc, test_search_path);
  tcase_add_test (tc, test_good_plugins_load);
  tcase_add_test (tc, test_list_sorted);
  tcase_add_loop_test (tc, test_refused, 0, (int) n_refusals);
  tcase_add_test (tc, test_undefined_symbol_names_it);
  tcase_add_test (tc, test_bad_dir_registers_nothing);
  tcase_add_test (tc, test_not_plugins);
  tcase_add_test (tc, test_duplicate_first_wins);
  tcase_add_test (tc, test_path_order_decides);
  tcase_add_test (tc, test_same_dir_twice);
  tcase_add_test (tc, test_missing_dir_is_skipped);
  tcase_add_test (tc, test_unknown_name_suggests);
  tcase_add_test (tc, test_unknown_name_mentions_refusals);
  tcase_add_test (tc, test_nothing_registered_names_path);
  tcase_add_test (tc, test_reset_rescans);
  tcase_add_test (tc, test_reentrant_plugin);
  tcase_add_test (tc, test_concurrent_first_use);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return nnic_test_run (registry_suite ());
}
