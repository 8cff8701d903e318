/* Sensitivity analysis: each layer pruned alone, over a range of
 * sparsities, scored by the caller's evaluator; the weights are restored
 * after every trial. */
#include <nnic/sensitivity.h>
#include <nnic/compress.h>
#include <nnic/io.h>

#include <string.h>

void
nnic_sensitivity_free (NnicSensitivity *s)
{
  if (!s)
    return;
  g_ptr_array_unref (s->layers);
  g_array_unref (s->sparsities);
  g_array_unref (s->scores);
  g_free (s);
}

double
nnic_sensitivity_score (const NnicSensitivity *s, guint layer, guint sparsity)
{
  return g_array_index (s->scores, double, layer * s->sparsities->len + sparsity);
}

/* Copies of every parameter and buffer, to put back after a trial. */
static GPtrArray *
snapshot (NnicModel *m, GError **error)
{
  GPtrArray *copies = g_ptr_array_new_with_free_func ((GDestroyNotify) nnic_tensor_free);
  for (guint i = 0; i < nnic_model_n_params (m); i++) {
    NnicTensor *t = nnic_tensor_copy (nnic_model_param (m, i)->value, error);
    if (!t) {
      g_ptr_array_unref (copies);
      return NULL;
    }
    g_ptr_array_add (copies, t);
  }
  return copies;
}

static void
restore (NnicModel *m, GPtrArray *copies)
{
  for (guint i = 0; i < nnic_model_n_params (m); i++)
    nnic_tensor_copy_into (nnic_model_param (m, i)->value, g_ptr_array_index (copies, i), NULL);
}

/* One trial: `layer` pruned to `sparsity`, scored. */
static gboolean
trial (NnicModel *m, const char *masker, const char *layer, double sparsity, NnicEvaluatorFn evaluate,
       gpointer data, double *score, GError **error)
{
  g_autoptr (NnicConfigList) cl = nnic_config_list_new ();
  guint e = nnic_config_list_add_entry (cl);
  nnic_config_list_set_double (cl, e, "sparsity", sparsity);
  nnic_config_list_add_string (cl, e, "op_names", layer);
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, masker, cl, NULL, NULL, error);
  if (!c || !nnic_compressor_compress (c, error))
    return FALSE;
  return evaluate (m, score, data, error);
}

NnicSensitivity *
nnic_sensitivity_analysis (NnicModel *m, const char *masker, const char *const *layers,
                           const double *sparsities, guint n_sparsities, NnicEvaluatorFn evaluate,
                           gpointer evaluate_data, NnicSensitivityProgress progress,
                           gpointer progress_data, GError **error)
{
  static const double nni_default[] = { 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9 };
  if (!evaluate) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "sensitivity analysis needs an evaluator");
    return NULL;
  }
  if (!sparsities) {
    sparsities = nni_default;
    n_sparsities = G_N_ELEMENTS (nni_default);
  }
  g_autoptr (NnicSensitivity) s = g_new0 (NnicSensitivity, 1);
  s->layers = g_ptr_array_new_with_free_func (g_free);
  s->sparsities = g_array_new (FALSE, FALSE, sizeof (double));
  s->scores = g_array_new (FALSE, FALSE, sizeof (double));
  g_array_append_vals (s->sparsities, sparsities, n_sparsities);
  if (layers) {
    for (const char *const *l = layers; *l; l++)
      g_ptr_array_add (s->layers, g_strdup (*l));
  } else {
    for (guint i = 0; i < nnic_model_n_nodes (m); i++)
      if (g_str_equal (nnic_model_node_type (m, i), "Conv2d"))
        g_ptr_array_add (s->layers, g_strdup (nnic_model_node_name (m, i)));
  }
  g_autoptr (GPtrArray) original = snapshot (m, error);
  if (!original || !evaluate (m, &s->baseline, evaluate_data, error))
    return NULL;
  for (guint l = 0; l < s->layers->len; l++)
    for (guint k = 0; k < n_sparsities; k++) {
      const char *layer = g_ptr_array_index (s->layers, l);
      double score = 0;
      gboolean ok = trial (m, masker, layer, sparsities[k], evaluate, evaluate_data, &score, error);
      restore (m, original);
      if (!ok) {
        g_prefix_error (error, "sensitivity of %s at sparsity %g: ", layer, sparsities[k]);
        return NULL;
      }
      g_array_append_val (s->scores, score);
      if (progress)
        progress (layer, sparsities[k], score, progress_data);
    }
  return g_steal_pointer (&s);
}

gboolean
nnic_sensitivity_save_csv (const NnicSensitivity *s, const char *path, GError **error)
{
  GString *csv = g_string_new ("layername");
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  for (guint k = 0; k < s->sparsities->len; k++)
    g_string_append_printf (csv, ",%s", g_ascii_formatd (buf, sizeof buf, "%g", g_array_index (s->sparsities, double, k)));
  g_string_append_c (csv, '\n');
  for (guint l = 0; l < s->layers->len; l++) {
    g_string_append (csv, g_ptr_array_index (s->layers, l));
    for (guint k = 0; k < s->sparsities->len; k++)
      g_string_append_printf (csv, ",%s", g_ascii_formatd (buf, sizeof buf, "%.6f", nnic_sensitivity_score (s, l, k)));
    g_string_append_c (csv, '\n');
  }
  gboolean ok = nnic_write_file_atomic (path, csv->str, csv->len, error);
  g_string_free (csv, TRUE);
  return ok;
}
