/* Data sets: named ones (found on disk), .npy pairs, heads, freeing.
 * IDX reading lives in idx.c. */
#include <nnic/data.h>
#include <nnic/io.h>
#include <nnic/error.h>

#include <string.h>

void
nnic_dataset_free (NnicDataset *d)
{
  if (!d)
    return;
  nnic_tensor_free (d->images);
  nnic_tensor_free (d->labels);
  g_free (d);
}

/* ---- named data sets ---- */

typedef struct {
  const char *name;
  const char *system_dir; /* where a distribution package installs it */
  const char *package;
  float mean, std;        /* of the training pixels, scaled to [0, 1] */
} NamedDataset;

static const NamedDataset named_datasets[] = {
  { "fashion-mnist", "/usr/share/datasets/fashion-mnist", "dataset-fashion-mnist", 0.2860f,
    0.3530f },
};

static const NamedDataset *
lookup_named (const char *name)
{
  for (size_t i = 0; i < G_N_ELEMENTS (named_datasets); i++)
    if (strcmp (named_datasets[i].name, name) == 0)
      return &named_datasets[i];
  return NULL;
}

static char *
known_names (void)
{
  GString *s = g_string_new (NULL);
  for (size_t i = 0; i < G_N_ELEMENTS (named_datasets); i++)
    g_string_append_printf (s, "%s'%s'", i ? ", " : "", named_datasets[i].name);
  return g_string_free (s, FALSE);
}

/* Directories to search, in order: `dir` alone when given; otherwise
 * $NNIC_DATA_DIR (itself or its subdirectory named after the data set),
 * then the system location. */
static GPtrArray *
search_dirs (const NamedDataset *nd, const char *dir)
{
  GPtrArray *dirs = g_ptr_array_new_with_free_func (g_free);
  const char *env = g_getenv ("NNIC_DATA_DIR");
  const char *base = dir ? dir : env && *env ? env : NULL;
  if (base) {
    g_ptr_array_add (dirs, g_strdup (base));
    g_ptr_array_add (dirs, g_build_filename (base, nd->name, NULL));
  }
  if (!dir)
    g_ptr_array_add (dirs, g_strdup (nd->system_dir));
  return dirs;
}

/* "<dir>/<stem>.gz" or "<dir>/<stem>", the first that exists. */
static char *
find_file (GPtrArray *dirs, const char *stem)
{
  for (guint i = 0; i < dirs->len; i++) {
    for (int gz = 1; gz >= 0; gz--) {
      g_autofree char *file = g_strconcat (stem, gz ? ".gz" : "", NULL);
      char *path = g_build_filename (g_ptr_array_index (dirs, i), file, NULL);
      if (g_file_test (path, G_FILE_TEST_IS_REGULAR))
        return path;
      g_free (path);
    }
  }
  return NULL;
}

static void
not_found_error (GError **error, const NamedDataset *nd, const char *stem, GPtrArray *dirs)
{
  g_ptr_array_add (dirs, NULL);
  g_autofree char *where = g_strjoinv (", ", (char **) dirs->pdata);
  g_ptr_array_remove_index (dirs, dirs->len - 1);
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_IO,
               "%s: %s(.gz) not found in %s; install it with `apt-get install %s`, or point "
               "NNIC_DATA_DIR at a directory holding the files",
               nd->name, stem, where, nd->package);
}

NnicDataset *
nnic_dataset_load_named (const char *name, gboolean train, const char *dir, GError **error)
{
  g_return_val_if_fail (name != NULL, NULL);
  const NamedDataset *nd = lookup_named (name);
  if (!nd) {
    g_autofree char *known = known_names ();
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "unknown data set '%s' (known: %s)",
                 name, known);
    return NULL;
  }
  const char *split = train ? "train" : "t10k";
  g_autofree char *img_stem = g_strdup_printf ("%s-images-idx3-ubyte", split);
  g_autofree char *lab_stem = g_strdup_printf ("%s-labels-idx1-ubyte", split);
  g_autoptr (GPtrArray) dirs = search_dirs (nd, dir);
  g_autofree char *img = find_file (dirs, img_stem);
  g_autofree char *lab = find_file (dirs, lab_stem);
  if (!img || !lab) {
    not_found_error (error, nd, img ? lab_stem : img_stem, dirs);
    return NULL;
  }
  return nnic_dataset_load_idx (img, lab, nd->mean, nd->std, error);
}

/* ---- .npy pairs ---- */

/* int64 labels from any integer dtype; n_classes = max + 1. */
static NnicTensor *
labels_to_i64 (const char *path, NnicTensor *t, int *n_classes, GError **error)
{
  NnicTensor *out = nnic_tensor_new (NNIC_DTYPE_I64, 1, t->shape, error);
  if (!out)
    return NULL;
  int64_t max = -1;
  for (int64_t i = 0; i < t->numel; i++) {
    int64_t v = t->dtype == NNIC_DTYPE_I64   ? t->i64[i]
                : t->dtype == NNIC_DTYPE_I32 ? t->i32[i]
                : t->dtype == NNIC_DTYPE_I8  ? t->i8[i]
                                             : t->u8[i];
    if (v < 0 || v >= G_MAXINT) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                   "%s: label %" G_GINT64_FORMAT " at index %" G_GINT64_FORMAT
                   " is not a class number", path, v, i);
      nnic_tensor_free (out);
      return NULL;
    }
    out->i64[i] = v;
    max = MAX (max, v);
  }
  *n_classes = (int) (max + 1);
  return out;
}

static gboolean
check_npy_pair (const char *inputs_path, const NnicTensor *x, const char *labels_path,
                const NnicTensor *y, GError **error)
{
  if (x->dtype != NNIC_DTYPE_F32 || x->ndim < 2) {
    g_autofree char *s = nnic_shape_to_string (x->ndim, x->shape);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: inputs must be float32 with a batch dimension [N, ...], not %s %s",
                 inputs_path, nnic_dtype_name (x->dtype), s);
    return FALSE;
  }
  if (y->dtype == NNIC_DTYPE_F32 || y->ndim != 1) {
    g_autofree char *s = nnic_shape_to_string (y->ndim, y->shape);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: labels must be integers of shape [N], not %s %s", labels_path,
                 nnic_dtype_name (y->dtype), s);
    return FALSE;
  }
  if (y->shape[0] != x->shape[0]) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s has %" G_GINT64_FORMAT " samples but %s has %" G_GINT64_FORMAT " labels",
                 inputs_path, x->shape[0], labels_path, y->shape[0]);
    return FALSE;
  }
  return TRUE;
}

NnicDataset *
nnic_dataset_load_npy (const char *inputs_path, const char *labels_path, GError **error)
{
  g_return_val_if_fail (inputs_path != NULL && labels_path != NULL, NULL);
  g_autoptr (NnicTensor) x = nnic_npy_load (inputs_path, error);
  if (!x)
    return NULL;
  g_autoptr (NnicTensor) y = nnic_npy_load (labels_path, error);
  if (!y || !check_npy_pair (inputs_path, x, labels_path, y, error))
    return NULL;
  int n_classes = 0;
  NnicTensor *labels = labels_to_i64 (labels_path, y, &n_classes, error);
  if (!labels)
    return NULL;
  NnicDataset *d = g_new0 (NnicDataset, 1);
  d->images = g_steal_pointer (&x);
  d->labels = labels;
  d->n_classes = n_classes;
  return d;
}

/* ---- heads ---- */

static NnicTensor *
copy_rows (const NnicTensor *t, int64_t rows, GError **error)
{
  int64_t shape[NNIC_MAX_DIMS];
  memcpy (shape, t->shape, sizeof shape);
  shape[0] = rows;
  NnicTensor *c = nnic_tensor_new (t->dtype, t->ndim, shape, error);
  if (c && rows > 0)
    memcpy (c->data, t->data, nnic_tensor_nbytes (c));
  return c;
}

NnicDataset *
nnic_dataset_head (const NnicDataset *d, int64_t n, GError **error)
{
  g_return_val_if_fail (d != NULL && d->images != NULL && d->labels != NULL, NULL);
  if (n < 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "cannot take the first %" G_GINT64_FORMAT " samples", n);
    return NULL;
  }
  /* Asking for more than there is gives everything: handy for "at most n". */
  n = MIN (n, d->images->shape[0]);
  g_autoptr (NnicDataset) h = g_new0 (NnicDataset, 1);
  /* The classes are the parent's: a head that happens to miss the last
   * class must not shrink the model's output. */
  h->n_classes = d->n_classes;
  h->images = copy_rows (d->images, n, error);
  h->labels = h->images ? copy_rows (d->labels, n, error) : NULL;
  if (!h->labels)
    return NULL;
  return g_steal_pointer (&h);
}
