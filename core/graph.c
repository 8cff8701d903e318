/* The model graph: building it node by node, looking nodes and
 * parameters up, and the generic node queries that read each node's op
 * descriptor. Running it is exec.c; hooks and seams are hooks.c. */
#include "core/graph.h"
#include "core/suggest.h"

#include <string.h>

/* ---- construction ---- */

NnicNode *
nnic_model_node (NnicModel *m, guint i)
{
  return nnic_graph_node (m, i);
}

void
nnic_node_free (NnicNode *n)
{
  if (n->op->finalize)
    n->op->finalize (n);
  for (guint i = 0; i < n->n_params; i++) {
    g_free (n->param_local[i]);
    nnic_tensor_free (n->param[i]);
    nnic_tensor_free (n->grad[i]);
    if (n->subst[i]) {
      nnic_tensor_free (n->subst[i]->grad);
      g_free (n->subst[i]);
    }
  }
  for (guint i = 0; i < G_N_ELEMENTS (n->cache); i++)
    nnic_tensor_free (n->cache[i]);
  nnic_tensor_free (n->out);
  nnic_tensor_free (n->gout);
  if (n->real_input)
    nnic_node_free (n->inputs[0]); /* the shadow */
  g_free (n->inputs);
  g_free (n->name);
  g_free (n);
}

NnicModel *
nnic_graph_new (int ndim, const int64_t *shape)
{
  NnicModel *m = g_new0 (NnicModel, 1);
  m->nodes = g_ptr_array_new_with_free_func ((GDestroyNotify) nnic_node_free);
  m->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  m->params = g_array_new (FALSE, TRUE, sizeof (NnicParam));
  m->hooks = g_array_new (FALSE, TRUE, sizeof (NnicHook));
  m->next_hook_id = 1;
  nnic_rng_seed (&m->rng, 0);

  NnicNode *in = g_new0 (NnicNode, 1);
  in->name = g_strdup ("input");
  in->op = &nnic_op_input;
  in->model = m;
  in->shape_ndim = ndim;
  memcpy (in->shape, shape, sizeof (int64_t) * (size_t) ndim);
  g_ptr_array_add (m->nodes, in);
  g_hash_table_insert (m->by_name, in->name, GUINT_TO_POINTER (1));
  return m;
}

NnicModel *
nnic_model_new (int channels, int height, int width)
{
  int64_t shape[3] = { channels, height, width };
  return nnic_graph_new (3, shape);
}

NnicModel *
nnic_model_new_flat (int features)
{
  int64_t shape[1] = { features };
  return nnic_graph_new (1, shape);
}

void
nnic_model_free (NnicModel *m)
{
  if (!m)
    return;
  for (guint i = 0; i < m->hooks->len; i++) {
    NnicHook *h = &g_array_index (m->hooks, NnicHook, i);
    if (h->destroy)
      h->destroy (h->user_data);
  }
  g_array_free (m->hooks, TRUE);
  if (m->prof_fwd) {
    g_array_free (m->prof_fwd, TRUE);
    g_array_free (m->prof_bwd, TRUE);
  }
  for (guint i = 0; i < m->params->len; i++)
    g_free ((char *) g_array_index (m->params, NnicParam, i).name);
  g_array_free (m->params, TRUE);
  g_hash_table_destroy (m->by_name);
  g_ptr_array_free (m->nodes, TRUE);
  free (m->scratch);
  g_free (m);
}

int
nnic_model_find_node (const NnicModel *m, const char *name)
{
  if (!name)
    return -1;
  return (int) GPOINTER_TO_UINT (g_hash_table_lookup (m->by_name, name)) - 1;
}

char *
nnic_graph_names_hint (const NnicModel *m, const char *name)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  for (guint i = 0; i < m->nodes->len; i++)
    g_ptr_array_add (names, nnic_graph_node (m, i)->name);
  return nnic_suggest (name, (const char *const *) names->pdata, names->len);
}

NnicNode *
nnic_graph_resolve (NnicModel *m, const char *new_name, const char *input, GError **error)
{
  if (!input)
    return nnic_graph_node (m, m->nodes->len - 1);
  int i = nnic_model_find_node (m, input);
  if (i < 0) {
    g_autofree char *hint = nnic_graph_names_hint (m, input);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "%s: no input node named '%s'%s",
                 new_name, input, hint);
    return NULL;
  }
  return nnic_graph_node (m, (guint) i);
}

static int
param_index (const NnicModel *m, const char *name)
{
  for (guint i = 0; i < m->params->len; i++)
    if (!strcmp (g_array_index (m->params, NnicParam, i).name, name))
      return (int) i;
  return -1;
}

gboolean
nnic_graph_add (NnicModel *m, const char *name, const NnicOp *op, NnicNode **inputs,
                guint n_inputs, const void *spec, size_t spec_size, GError **error)
{
  g_return_val_if_fail (spec_size <= NNIC_OP_SPEC_MAX, FALSE);
  if (!name || !*name) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "a %s node needs a name", op->type);
    return FALSE;
  }
  if (nnic_model_find_node (m, name) >= 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: a node of that name already exists",
                 name);
    return FALSE;
  }
  NnicNode *n = g_new0 (NnicNode, 1);
  n->name = g_strdup (name);
  n->op = op;
  n->model = m;
  n->index = m->nodes->len;
  n->n_inputs = n_inputs;
  n->inputs = g_new0 (NnicNode *, n_inputs ? n_inputs : 1);
  if (n_inputs)
    memcpy (n->inputs, inputs, sizeof (NnicNode *) * n_inputs);
  if (spec)
    memcpy (n->spec, spec, spec_size);
  if (!op->setup (n, error)) {
    nnic_node_free (n);
    return FALSE;
  }
  /* An empty local name is the node's own (a Parameter node: `class_token`). */
  g_autofree char **full = g_new0 (char *, n->n_params + 1);
  for (guint i = 0; i < n->n_params; i++) {
    full[i] = *n->param_local[i] ? g_strconcat (n->name, ".", n->param_local[i], NULL)
                                 : g_strdup (n->name);
    if (param_index (m, full[i]) >= 0) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                   "%s: the model already has a parameter named '%s'", name, full[i]);
      g_strfreev (g_steal_pointer (&full));
      nnic_node_free (n);
      return FALSE;
    }
  }
  g_ptr_array_add (m->nodes, n);
  g_hash_table_insert (m->by_name, n->name, GUINT_TO_POINTER (n->index + 1));
  for (guint i = 0; i < n->n_params; i++) {
    NnicParam p = {
      .name = g_steal_pointer (&full[i]),
      .value = n->param[i],
      .grad = n->grad[i],
      .node = n->index,
    };
    g_array_append_val (m->params, p);
    n->pval[i] = n->param[i];
    n->pgrad[i] = n->grad[i];
  }
  if (m->prof_fwd) {
    g_array_set_size (m->prof_fwd, m->nodes->len);
    g_array_set_size (m->prof_bwd, m->nodes->len);
  }
  m->output = n->index;
  m->batch = 0;  /* buffers are re-planned on the next forward */
  m->grads_planned = FALSE;
  return TRUE;
}

gboolean
nnic_graph_add_named (NnicModel *m, const char *name, const NnicOp *op,
                      const char *const *inputs, guint n_inputs, const void *spec,
                      size_t spec_size, GError **error)
{
  const char *label = name ? name : op->type;
  if (n_inputs > 0 && !inputs) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: no inputs given", label);
    return FALSE;
  }
  g_autofree NnicNode **in = g_new0 (NnicNode *, MAX (n_inputs, 1));
  for (guint k = 0; k < n_inputs; k++)
    if (!(in[k] = nnic_graph_resolve (m, label, inputs[k], error)))
      return FALSE;
  return nnic_graph_add (m, name, op, in, n_inputs, spec, spec_size, error);
}

gboolean
nnic_model_set_output (NnicModel *m, const char *name, GError **error)
{
  int i = nnic_model_find_node (m, name);
  if (i < 0) {
    g_autofree char *hint = nnic_graph_names_hint (m, name);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "no node named '%s'%s", name, hint);
    return FALSE;
  }
  m->output = (guint) i;
  m->batch = 0;
  m->grads_planned = FALSE;
  return TRUE;
}

guint
nnic_model_output_node (const NnicModel *m)
{
  return m->output;
}

/* ---- nodes ---- */

const char *const *
nnic_model_node_types (void)
{
  static const char *names[256];
  static gsize done;
  if (g_once_init_enter (&done)) {
    for (guint i = 0; nnic_ops[i] && i + 1 < G_N_ELEMENTS (names); i++)
      names[i] = nnic_ops[i]->type;
    g_once_init_leave (&done, 1);
  }
  return names;
}

gboolean
nnic_model_node_option (const NnicModel *m, guint i, const char *key, double *value)
{
  if (i >= m->nodes->len || !key)
    return FALSE;
  const NnicNode *n = nnic_graph_node (m, i);
  double v;
  if (!n->op->option || !n->op->option (n, key, &v))
    return FALSE;
  if (value)
    *value = v;
  return TRUE;
}

guint
nnic_model_n_nodes (const NnicModel *m)
{
  return m->nodes->len;
}

const char *
nnic_model_node_name (const NnicModel *m, guint i)
{
  return i < m->nodes->len ? nnic_graph_node (m, i)->name : NULL;
}

const char *
nnic_model_node_type (const NnicModel *m, guint i)
{
  return i < m->nodes->len ? nnic_graph_node (m, i)->op->type : NULL;
}

int
nnic_model_node_shape (const NnicModel *m, guint i, int64_t shape[NNIC_MAX_DIMS])
{
  if (i >= m->nodes->len)
    return -1;
  NnicNode *n = nnic_graph_node (m, i);
  memcpy (shape, n->shape, sizeof (int64_t) * (size_t) n->shape_ndim);
  return n->shape_ndim;
}

guint
nnic_model_node_n_inputs (const NnicModel *m, guint i)
{
  return i < m->nodes->len ? nnic_graph_node (m, i)->n_inputs : 0;
}

guint
nnic_model_node_input (const NnicModel *m, guint i, guint k)
{
  NnicNode *n = nnic_graph_node (m, i);
  return k < n->n_inputs ? n->inputs[k]->index : 0;
}

/* ---- parameters ---- */

guint
nnic_model_n_params (const NnicModel *m)
{
  return m->params->len;
}

NnicParam *
nnic_model_param (NnicModel *m, guint i)
{
  return i < m->params->len ? &g_array_index (m->params, NnicParam, i) : NULL;
}

NnicParam *
nnic_model_find_param (NnicModel *m, const char *name, GError **error)
{
  for (guint i = 0; i < m->params->len; i++) {
    NnicParam *p = &g_array_index (m->params, NnicParam, i);
    if (g_strcmp0 (p->name, name) == 0)
      return p;
  }
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  for (guint i = 0; i < m->params->len; i++)
    g_ptr_array_add (names, (char *) g_array_index (m->params, NnicParam, i).name);
  g_autofree char *hint = nnic_suggest (name, (const char *const *) names->pdata, names->len);
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "the model has no parameter or buffer '%s'%s",
               name ? name : "(null)", hint);
  return NULL;
}

int64_t
nnic_model_count_parameters (const NnicModel *m)
{
  int64_t n = 0;
  for (guint i = 0; i < m->params->len; i++) {
    const NnicParam *p = &g_array_index (m->params, NnicParam, i);
    if (p->grad)
      n += p->value->numel;
  }
  return n;
}

gboolean
nnic_node_add_param (NnicNode *node, const char *local_name, gboolean trainable, int ndim,
                     const int64_t *shape, GError **error)
{
  if (node->n_params >= NNIC_MAX_NODE_PARAMS) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FAILED, "%s: too many parameters", node->name);
    return FALSE;
  }
  g_autoptr (NnicTensor) value = nnic_tensor_new (NNIC_DTYPE_F32, ndim, shape, error);
  if (!value)
    return FALSE;
  NnicTensor *grad = NULL;
  if (trainable && !(grad = nnic_tensor_new (NNIC_DTYPE_F32, ndim, shape, error)))
    return FALSE;
  guint i = node->n_params++;
  node->param_local[i] = g_strdup (local_name);
  node->param[i] = g_steal_pointer (&value);
  node->grad[i] = grad;
  return TRUE;
}

gboolean
nnic_node_cache (NnicNode *node, int i, NnicDType dtype, int ndim, const int64_t *shape,
                 GError **error)
{
  NnicTensor *c = node->cache[i];
  if (c && c->dtype == dtype && c->ndim == ndim &&
      memcmp (c->shape, shape, sizeof (int64_t) * (size_t) ndim) == 0)
    return TRUE;
  NnicTensor *t = nnic_tensor_new (dtype, ndim, shape, error);
  if (!t) {
    g_prefix_error (error, "%s: ", node->name);
    return FALSE;
  }
  nnic_tensor_free (c);
  node->cache[i] = t;
  return TRUE;
}

char *
nnic_model_describe (const NnicModel *m)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < m->nodes->len; i++) {
    NnicNode *n = nnic_graph_node (m, i);
    g_autofree char *shape = nnic_shape_to_string (n->shape_ndim, n->shape);
    int64_t count = 0;
    for (guint k = 0; k < n->n_params; k++)
      if (n->grad[k])
        count += n->param[k]->numel;
    g_string_append_printf (s, "%-16s %-18s %-18s %" G_GINT64_FORMAT "\n", n->name, n->op->type,
                            shape, count);
  }
  return g_string_free (s, FALSE);
}
