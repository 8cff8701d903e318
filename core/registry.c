/* The algorithm registry: finds plugins, checks them against the ABI
 * (include/nnic/plugin.h) and keeps the algorithms they register.
 *
 * Discovery runs once, on first use: the directories of NNIC_PLUGIN_PATH in
 * order, then NNIC_PLUGIN_DIR. In each directory the regular files ending in
 * ".so" are opened in name order (byte order, so the result does not depend
 * on the locale or the file system). A plugin is refused, with a message in
 * nnic_registry_problems() that names the file and the reason, when it cannot
 * be opened (an undefined symbol included: binding is immediate), exports no
 * entry point, was built for another ABI, declares a descriptor or an
 * algorithm the host cannot use, or fails its own registration. A refused
 * plugin is closed again and registers nothing; nothing it gets wrong takes
 * the process down (short of crashing in its own code).
 *
 * What the registry hands out stays valid for the life of the process:
 * nnic_registry_reset() retires a scan instead of freeing it, and modules
 * that registered an algorithm are made resident.
 */
#include <nnic/registry.h>
#include <nnic/error.h>

#include "core/suggest.h"

#include <gmodule.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#ifndef NNIC_PLUGIN_DIR
#error "NNIC_PLUGIN_DIR must be defined (core/meson.build)"
#endif

#define MODULE_SUFFIX "." G_MODULE_SUFFIX

/* The least a plugin may declare: the sizes of the ABI 1.0 structs. Later
 * minor versions only append members, so these stay as they are. */
#define END_OF(type, member) (offsetof (type, member) + sizeof (((type *) 0)->member))
#define DESCRIPTOR_MIN_SIZE END_OF (NnicPluginDescriptor, register_algorithms)
#define INFO_MIN_SIZE END_OF (NnicAlgorithmInfo, vtable)
#define MASKER_MIN_SIZE END_OF (NnicMaskerVTable, calc_mask)
#define PRUNER_MIN_SIZE END_OF (NnicPrunerVTable, update_epoch)
#define QUANTIZER_MIN_SIZE END_OF (NnicQuantizerVTable, update_epoch)

/* A registered algorithm. `pub` comes first: an Entry * is an NnicAlgorithm *.
 * The info and the vtable are copies, zero-filled past the sizes the plugin
 * declared, so the rest of the host never reads beyond what a plugin built
 * for an older minor ABI provides (a member it lacks reads as NULL); the
 * struct_size members keep the plugin's values. */
typedef struct {
  NnicAlgorithm pub;
  NnicAlgorithmInfo info;
  NnicConfigKey *keys;  /* host-layout copy of the plugin's keys */
  union {
    guint32 struct_size;
    NnicMaskerVTable masker;
    NnicPrunerVTable pruner;
    NnicQuantizerVTable quantizer;
  } vtable;
} Entry;

/* One scan's result. */
typedef struct {
  GPtrArray *algorithms; /* Entry *, sorted by name; owns them */
  GHashTable *by_name;   /* name → Entry * */
  GPtrArray *problems;   /* char * */
  GPtrArray *modules;    /* GModule * of the plugins that registered something */
  GHashTable *seen;      /* "dev:inode" of the files opened, so a file is loaded once */
  char **path;           /* the directories searched */
  guint n_refused;
} Scan;

struct _NnicRegistrar {
  Scan *scan;
  const char *file;
  const NnicPluginDescriptor *desc;
  GPtrArray *pending;          /* Entry *, committed when registration succeeds */
  GPtrArray *pending_problems; /* char *, kept only when registration succeeds */
  GError *refusal;             /* the first nnic_registrar_add() that failed */
};

static GRecMutex registry_lock;
static Scan *current;      /* NULL until scanned, and again after a reset */
static GPtrArray *retired; /* earlier scans: what they handed out stays valid */
static gboolean scanning;  /* a plugin's registration called back into the registry */

const char *
nnic_algorithm_kind_name (NnicAlgorithmKind kind)
{
  switch (kind) {
  case NNIC_ALGORITHM_MASKER:
    return "masker";
  case NNIC_ALGORITHM_PRUNER:
    return "pruner";
  case NNIC_ALGORITHM_QUANTIZER:
    return "quantizer";
  }
  return "unknown";
}

/* ---- the search path ---- */

/* NNIC_PLUGIN_PATH's non-empty entries, then the installed directory, or
 * instead of it NNIC_PLUGIN_SYSTEM_PATH when set (empty: none; tests use
 * that to keep an installed nnic's plugins out, as GStreamer's
 * GST_PLUGIN_SYSTEM_PATH does). */
char **
nnic_plugin_search_path (void)
{
  GPtrArray *dirs = g_ptr_array_new ();
  const char *env = g_getenv ("NNIC_PLUGIN_PATH");
  if (env) {
    g_auto (GStrv) parts = g_strsplit (env, G_SEARCHPATH_SEPARATOR_S, -1);
    for (char **p = parts; *p; p++)
      if (**p)
        g_ptr_array_add (dirs, g_strdup (*p));
  }
  const char *system = g_getenv ("NNIC_PLUGIN_SYSTEM_PATH");
  if (!system)
    g_ptr_array_add (dirs, g_strdup (NNIC_PLUGIN_DIR));
  else if (*system)
    g_ptr_array_add (dirs, g_strdup (system));
  g_ptr_array_add (dirs, NULL);
  return (char **) g_ptr_array_free (dirs, FALSE);
}

/* ---- scans ---- */

static void
entry_free (gpointer p)
{
  Entry *e = p;
  g_free ((char *) e->pub.plugin_name);
  g_free ((char *) e->pub.plugin_version);
  g_free ((char *) e->pub.plugin_license);
  g_free ((char *) e->pub.plugin_file);
  g_free (e->keys);
  g_free (e);
}

static Scan *
scan_new (void)
{
  Scan *s = g_new0 (Scan, 1);
  s->algorithms = g_ptr_array_new_with_free_func (entry_free);
  s->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  s->problems = g_ptr_array_new_with_free_func (g_free);
  s->modules = g_ptr_array_new ();
  s->seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  return s;
}

static void G_GNUC_PRINTF (2, 3)
problem (GPtrArray *problems, const char *format, ...)
{
  va_list ap;
  va_start (ap, format);
  g_ptr_array_add (problems, g_strdup_vprintf (format, ap));
  va_end (ap);
}

static const Entry *
find_entry (const Scan *s, const GPtrArray *pending, const char *name)
{
  const Entry *e = g_hash_table_lookup (s->by_name, name);
  for (guint i = 0; !e && pending && i < pending->len; i++)
    if (!strcmp (((const Entry *) pending->pdata[i])->info.name, name))
      e = pending->pdata[i];
  return e;
}

/* ---- registration ---- */

static gboolean
valid_name (const char *name)
{
  if (!*name)
    return FALSE;
  for (const char *c = name; *c; c++)
    if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_'))
      return FALSE;
  return TRUE;
}

/* The keys in the host's layout, read with the plugin's stride: a plugin
 * built when NnicConfigKey was smaller reads as NULL/0 past its size. */
static gboolean
copy_keys (Entry *e, GError **error)
{
  NnicAlgorithmInfo *info = &e->info;
  if (info->n_keys == 0 || !info->keys)
    return TRUE;
  const gboolean has_size = info->struct_size >= G_STRUCT_OFFSET (NnicAlgorithmInfo, key_size) + sizeof (guint32);
  const size_t stride = has_size && info->key_size ? info->key_size : sizeof (NnicConfigKey);
  if (stride < G_STRUCT_OFFSET (NnicConfigKey, help) + sizeof (const char *)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN,
                 "algorithm '%s': key_size %zu is smaller than a plugin ABI %d.0 config key (%zu)",
                 info->name, stride, NNIC_ABI_MAJOR, sizeof (NnicConfigKey));
    return FALSE;
  }
  e->keys = g_new0 (NnicConfigKey, info->n_keys);
  for (guint i = 0; i < info->n_keys; i++)
    memcpy (&e->keys[i], (const char *) info->keys + i * stride, MIN (stride, sizeof (NnicConfigKey)));
  info->keys = e->keys;
  info->key_size = sizeof (NnicConfigKey);
  return TRUE;
}

static gboolean
check_keys (const NnicAlgorithmInfo *info, GError **error)
{
  if (info->n_keys > 0 && !info->keys) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN, "algorithm '%s': n_keys is %u but keys is NULL",
                 info->name, info->n_keys);
    return FALSE;
  }
  for (guint i = 0; i < info->n_keys; i++) {
    const NnicConfigKey *k = &info->keys[i];
    if (!k->name) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN, "algorithm '%s': config key %u has no name",
                   info->name, i);
      return FALSE;
    }
    if (!valid_name (k->name)) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN,
                   "algorithm '%s': config key name '%s' is invalid (wanted [a-z0-9_]+)", info->name,
                   k->name);
      return FALSE;
    }
    if ((guint) k->type > NNIC_KEY_STRING) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN,
                   "algorithm '%s': config key '%s' has unknown type %d", info->name, k->name,
                   (int) k->type);
      return FALSE;
    }
    for (guint j = 0; j < i; j++)
      if (!strcmp (info->keys[j].name, k->name)) {
        g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN,
                     "algorithm '%s': config key '%s' is declared twice", info->name, k->name);
        return FALSE;
      }
  }
  return TRUE;
}

/* Copies the plugin's vtable into e->vtable and checks it. */
static gboolean
take_vtable (Entry *e, const void *vtable, GError **error)
{
  const NnicAlgorithmInfo *info = &e->info;
  const char *kind = nnic_algorithm_kind_name (info->kind);
  if (!vtable) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN, "algorithm '%s': no vtable", info->name);
    return FALSE;
  }
  guint32 declared = *(const guint32 *) vtable;
  size_t need = 0, have = 0;
  switch (info->kind) {
  case NNIC_ALGORITHM_MASKER:
    need = MASKER_MIN_SIZE, have = sizeof (NnicMaskerVTable);
    break;
  case NNIC_ALGORITHM_PRUNER:
    need = PRUNER_MIN_SIZE, have = sizeof (NnicPrunerVTable);
    break;
  case NNIC_ALGORITHM_QUANTIZER:
    need = QUANTIZER_MIN_SIZE, have = sizeof (NnicQuantizerVTable);
    break;
  }
  if (declared < need) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN,
                 "algorithm '%s': %s vtable declares %u bytes, plugin ABI %d.0 needs at least %zu",
                 info->name, kind, declared, NNIC_ABI_MAJOR, need);
    return FALSE;
  }
  memcpy (&e->vtable, vtable, MIN ((size_t) declared, have));
  const char *missing = NULL;
  switch (info->kind) {
  case NNIC_ALGORITHM_MASKER:
    if (!e->vtable.masker.calc_mask)
      missing = "calc_mask";
    break;
  case NNIC_ALGORITHM_PRUNER:
    if (!e->vtable.pruner.compress)
      missing = "compress";
    break;
  case NNIC_ALGORITHM_QUANTIZER:
    if (!e->vtable.quantizer.quantize_weight && !e->vtable.quantizer.quantize_input
        && !e->vtable.quantizer.quantize_output)
      missing = "quantize_weight, quantize_input or quantize_output";
    break;
  }
  if (missing) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN, "algorithm '%s': %s vtable has no %s",
                 info->name, kind, missing);
    return FALSE;
  }
  e->info.vtable = &e->vtable;
  return TRUE;
}

static gboolean
registrar_check (NnicRegistrar *r, const NnicAlgorithmInfo *info, Entry **out, GError **error)
{
  if (!r || !r->scan) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN,
                 "nnic_registrar_add() called without the registrar given to register_algorithms");
    return FALSE;
  }
  if (!info) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN, "algorithm info is NULL");
    return FALSE;
  }
  if (info->struct_size < INFO_MIN_SIZE) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN,
                 "algorithm info declares %u bytes, plugin ABI %d.0 needs at least %zu",
                 info->struct_size, NNIC_ABI_MAJOR, INFO_MIN_SIZE);
    return FALSE;
  }
  if (!info->name || !valid_name (info->name)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN,
                 "algorithm name %s%s%s is invalid (wanted [a-z0-9_]+)", info->name ? "'" : "",
                 info->name ? info->name : "NULL", info->name ? "'" : "");
    return FALSE;
  }
  if ((guint) info->kind > NNIC_ALGORITHM_QUANTIZER) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN, "algorithm '%s': unknown kind %d",
                 info->name, (int) info->kind);
    return FALSE;
  }
  g_autofree Entry *e = g_new0 (Entry, 1);
  memcpy (&e->info, info, MIN ((size_t) info->struct_size, sizeof (NnicAlgorithmInfo)));
  if (!copy_keys (e, error))
    return FALSE;
  if (!check_keys (&e->info, error)) {
    g_free (e->keys);
    return FALSE;
  }
  if (!take_vtable (e, info->vtable, error)) {
    g_free (e->keys);
    return FALSE;
  }
  *out = g_steal_pointer (&e);
  return TRUE;
}

gboolean
nnic_registrar_add (NnicRegistrar *r, const NnicAlgorithmInfo *info, GError **error)
{
  Entry *e = NULL;
  GError *local = NULL;
  if (!registrar_check (r, info, &e, &local)) {
    if (r && !r->refusal)
      r->refusal = g_error_copy (local);
    g_propagate_error (error, local);
    return FALSE;
  }
  const Entry *first = find_entry (r->scan, r->pending, e->info.name);
  if (first) {
    /* Not the plugin's fault: the first plugin found keeps the name. */
    problem (r->pending_problems, "%s: algorithm '%s' already provided by %s (ignored)", r->file,
             e->info.name, first->pub.plugin_file);
    g_free (e->keys);
    g_free (e);
    return TRUE;
  }
  const NnicPluginDescriptor *d = r->desc;
  e->pub.info = &e->info;
  e->pub.plugin_name = g_strdup (d->name);
  e->pub.plugin_version = g_strdup (d->version);
  e->pub.plugin_license = g_strdup (d->license);
  e->pub.plugin_file = g_strdup (r->file);
  e->pub.abi_major = d->abi_major;
  e->pub.abi_minor = d->abi_minor;
  g_ptr_array_add (r->pending, e);
  return TRUE;
}

/* ---- loading one file ---- */

/* Why the descriptor is unusable, or NULL. */
static char *
check_descriptor (const NnicPluginDescriptor *d)
{
  if (!d)
    return g_strdup (NNIC_PLUGIN_ENTRY_SYMBOL "() returned NULL");
  if (d->abi_major != NNIC_ABI_MAJOR || d->abi_minor > NNIC_ABI_MINOR) {
    gboolean newer = d->abi_major >= NNIC_ABI_MAJOR;
    return g_strdup_printf ("built for plugin ABI %u.%u, this nnic implements %d.%d (%s)",
                            d->abi_major, d->abi_minor, NNIC_ABI_MAJOR, NNIC_ABI_MINOR,
                            newer ? "it needs a newer nnic" : "rebuild it against this nnic");
  }
  if (d->struct_size < DESCRIPTOR_MIN_SIZE)
    return g_strdup_printf ("descriptor declares %u bytes, plugin ABI %u.%u needs at least %zu",
                            d->struct_size, d->abi_major, d->abi_minor, DESCRIPTOR_MIN_SIZE);
  const struct {
    const char *what, *value;
  } fields[] = { { "name", d->name }, { "version", d->version }, { "license", d->license } };
  for (guint i = 0; i < G_N_ELEMENTS (fields); i++) {
    if (!fields[i].value || !*fields[i].value)
      return g_strdup_printf ("descriptor has no %s", fields[i].what);
    if (!g_utf8_validate (fields[i].value, -1, NULL))
      return g_strdup_printf ("descriptor's %s is not UTF-8", fields[i].what);
  }
  if (d->description && !g_utf8_validate (d->description, -1, NULL))
    return g_strdup ("descriptor's description is not UTF-8");
  if (!d->register_algorithms)
    return g_strdup ("descriptor has no register_algorithms function");
  return NULL;
}

/* g_module_error() after a failed open, without the file name dlerror() puts first. */
static const char *
open_error (const char *path)
{
  const char *msg = g_module_error ();
  if (!msg)
    return "unknown error";
  size_t n = strlen (path);
  if (!strncmp (msg, path, n) && msg[n] == ':' && msg[n + 1] == ' ')
    msg += n + 2;
  return msg;
}

static void
load_file (Scan *s, const char *path)
{
  GModule *module = g_module_open (path, G_MODULE_BIND_LOCAL);
  if (!module) {
    problem (s->problems, "%s: cannot load: %s", path, open_error (path));
    s->n_refused++;
    return;
  }
  gpointer symbol = NULL;
  if (!g_module_symbol (module, NNIC_PLUGIN_ENTRY_SYMBOL, &symbol) || !symbol) {
    problem (s->problems, "%s: no entry point " NNIC_PLUGIN_ENTRY_SYMBOL " (not an nnic plugin?)",
             path);
    s->n_refused++;
    g_module_close (module);
    return;
  }
  NnicPluginEntry entry;
  memcpy (&entry, &symbol, sizeof entry); /* object to function pointer, as dlsym() needs */
  const NnicPluginDescriptor *d = entry ();
  g_autofree char *why = check_descriptor (d);
  if (why) {
    problem (s->problems, "%s: %s", path, why);
    s->n_refused++;
    g_module_close (module);
    return;
  }

  NnicRegistrar r = {
    .scan = s,
    .file = path,
    .desc = d,
    .pending = g_ptr_array_new_with_free_func (entry_free),
    .pending_problems = g_ptr_array_new_with_free_func (g_free),
  };
  GError *error = NULL;
  gboolean ok = d->register_algorithms (&r, &error);
  if (!ok || r.refusal) {
    /* A refused nnic_registrar_add() refuses the plugin even when
     * register_algorithms ignored it: all of a plugin's algorithms or none. */
    const GError *why_failed = r.refusal ? r.refusal : error;
    problem (s->problems, "%s: registration failed: %s", path,
             why_failed ? why_failed->message : "register_algorithms returned FALSE without an error");
    s->n_refused++;
    g_clear_error (&error);
    g_clear_error (&r.refusal);
    g_ptr_array_unref (r.pending);
    g_ptr_array_unref (r.pending_problems);
    g_module_close (module);
    return;
  }
  g_clear_error (&error); /* an error set alongside TRUE is the plugin's mistake; ignore it */
  for (guint i = 0; i < r.pending_problems->len; i++)
    g_ptr_array_add (s->problems, g_strdup (r.pending_problems->pdata[i]));
  g_ptr_array_unref (r.pending_problems);
  guint n = r.pending->len;
  for (guint i = 0; i < n; i++) {
    Entry *e = r.pending->pdata[i];
    g_hash_table_insert (s->by_name, (gpointer) e->info.name, e);
  }
  g_ptr_array_extend_and_steal (s->algorithms, r.pending);
  if (n > 0) {
    g_module_make_resident (module);
    g_ptr_array_add (s->modules, module);
  } else {
    g_module_close (module);
  }
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
scan_dir (Scan *s, const char *dir, gboolean from_env)
{
  const char *origin = from_env ? "NNIC_PLUGIN_PATH" : "installed plugin directory";
  if (!g_file_test (dir, G_FILE_TEST_EXISTS)) {
    /* The installed directory is missing in an uninstalled build: not worth a warning. */
    if (from_env)
      problem (s->problems, "%s: %s: no such directory (skipped)", origin, dir);
    return;
  }
  if (!g_file_test (dir, G_FILE_TEST_IS_DIR)) {
    problem (s->problems, "%s: %s: not a directory (skipped)", origin, dir);
    return;
  }
  GError *error = NULL;
  GDir *d = g_dir_open (dir, 0, &error);
  if (!d) {
    problem (s->problems, "%s: %s (skipped)", origin, error->message);
    g_clear_error (&error);
    return;
  }
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *name;
  while ((name = g_dir_read_name (d)))
    if (name[0] != '.' && g_str_has_suffix (name, MODULE_SUFFIX))
      g_ptr_array_add (names, g_strdup (name));
  g_dir_close (d);
  g_ptr_array_sort (names, compare_strings);

  for (guint i = 0; i < names->len; i++) {
    g_autofree char *joined = g_build_filename (dir, names->pdata[i], NULL);
    g_autofree char *path = g_canonicalize_filename (joined, NULL);
    struct stat st;
    if (stat (path, &st) != 0 || !S_ISREG (st.st_mode))
      continue;
    /* The same file reached twice (a directory listed twice, a symbolic link): load it once. */
    char *key = g_strdup_printf ("%ju:%ju", (uintmax_t) st.st_dev, (uintmax_t) st.st_ino);
    if (!g_hash_table_add (s->seen, key))
      continue;
    load_file (s, path);
  }
}

static int
compare_entries (gconstpointer a, gconstpointer b)
{
  const Entry *x = *(const Entry *const *) a, *y = *(const Entry *const *) b;
  return strcmp (x->info.name, y->info.name);
}

static Scan *
scan (void)
{
  Scan *s = scan_new ();
  s->path = nnic_plugin_search_path ();
  guint n = g_strv_length (s->path);
  for (guint i = 0; i < n; i++)
    scan_dir (s, s->path[i], i + 1 < n);
  g_ptr_array_sort (s->algorithms, compare_entries);
  return s;
}

/* The current scan, made if needed; NULL when called back from a plugin's
 * registration. Call with registry_lock held. */
static Scan *
ensure_scanned (void)
{
  if (scanning)
    return NULL;
  if (!current) {
    scanning = TRUE;
    current = scan ();
    scanning = FALSE;
  }
  return current;
}

/* ---- the public calls ---- */

static char *
joined_path (char **path)
{
  return g_strjoinv (G_SEARCHPATH_SEPARATOR_S, path);
}

const NnicAlgorithm *
nnic_load_algorithm (const char *name, GError **error)
{
  if (!name) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "no algorithm name given");
    return NULL;
  }
  g_rec_mutex_lock (&registry_lock);
  Scan *s = ensure_scanned ();
  if (!s) {
    g_rec_mutex_unlock (&registry_lock);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN,
                 "cannot look up algorithm '%s' while plugins are being registered", name);
    return NULL;
  }
  const Entry *e = g_hash_table_lookup (s->by_name, name);
  if (e) {
    g_rec_mutex_unlock (&registry_lock);
    return &e->pub;
  }

  GString *msg = g_string_new (NULL);
  g_string_append_printf (msg, "no algorithm named '%s'", name);
  guint n = s->algorithms->len;
  if (n == 0) {
    g_autofree char *path = joined_path (s->path);
    g_string_append_printf (msg, ": no plugins registered any algorithm (searched %s; "
                                 "set NNIC_PLUGIN_PATH to the directories of nnic's plugins)",
                            path);
  } else {
    g_autofree const char **names = g_new (const char *, n + 1);
    for (guint i = 0; i < n; i++)
      names[i] = ((const Entry *) s->algorithms->pdata[i])->info.name;
    names[n] = NULL;
    g_autofree char *hint = nnic_suggest (name, names, n);
    if (*hint) {
      g_string_append (msg, hint);
    } else {
      g_autofree char *all = g_strjoinv (", ", (char **) names);
      g_string_append_printf (msg, " (known: %s)", all);
    }
  }
  if (s->n_refused > 0)
    g_string_append_printf (msg, " (%u plugin%s refused; 'nnic plugins' says why)", s->n_refused,
                            s->n_refused == 1 ? " was" : "s were");
  g_rec_mutex_unlock (&registry_lock);
  g_set_error_literal (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, msg->str);
  g_string_free (msg, TRUE);
  return NULL;
}

static const GPtrArray *
empty_array (void)
{
  static GPtrArray *empty;
  if (g_once_init_enter (&empty))
    g_once_init_leave (&empty, g_ptr_array_new ());
  return empty;
}

const GPtrArray *
nnic_list_algorithms (void)
{
  g_rec_mutex_lock (&registry_lock);
  Scan *s = ensure_scanned ();
  const GPtrArray *a = s ? s->algorithms : empty_array ();
  g_rec_mutex_unlock (&registry_lock);
  return a;
}

const GPtrArray *
nnic_registry_problems (void)
{
  g_rec_mutex_lock (&registry_lock);
  Scan *s = ensure_scanned ();
  const GPtrArray *a = s ? s->problems : empty_array ();
  g_rec_mutex_unlock (&registry_lock);
  return a;
}

void
nnic_registry_reset (void)
{
  g_rec_mutex_lock (&registry_lock);
  if (current && !scanning) {
    if (!retired)
      retired = g_ptr_array_new ();
    g_ptr_array_add (retired, current);
    current = NULL;
  }
  g_rec_mutex_unlock (&registry_lock);
}
