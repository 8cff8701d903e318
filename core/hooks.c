/* The seams the compressor uses: forward, pre-forward and backward hooks,
 * input transforms and parameter substitution. */
#include "core/graph.h"

#include <string.h>

/* ---- hooks ---- */

static guint
add_hook (NnicModel *m, const char *node_name, NnicHookKind kind, NnicPreForwardHook pre_fn,
          NnicForwardHook fn, NnicBackwardHook bwd_fn, gpointer user_data, GDestroyNotify destroy,
          GError **error)
{
  int i = nnic_model_find_node (m, node_name);
  if (i < 0 || (!fn && !pre_fn && !bwd_fn)) {
    if (!fn && !pre_fn && !bwd_fn) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "a forward hook needs a function");
    } else {
      g_autofree char *hint = nnic_graph_names_hint (m, node_name);
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "no node named '%s'%s",
                   node_name ? node_name : "(null)", hint);
    }
    return 0;
  }
  NnicHook h = { m->next_hook_id++, (guint) i, kind, pre_fn, bwd_fn, fn, user_data, destroy };
  g_array_append_val (m->hooks, h);
  nnic_graph_node (m, (guint) i)->n_hooks++;
  return h.id;
}

guint
nnic_model_add_forward_hook (NnicModel *m, const char *node_name, NnicForwardHook fn,
                             gpointer user_data, GDestroyNotify destroy, GError **error)
{
  return add_hook (m, node_name, HOOK_POST, NULL, fn, NULL, user_data, destroy, error);
}

guint
nnic_model_add_pre_forward_hook (NnicModel *m, const char *node_name, NnicPreForwardHook fn,
                                 gpointer user_data, GDestroyNotify destroy, GError **error)
{
  return add_hook (m, node_name, HOOK_PRE, fn, NULL, NULL, user_data, destroy, error);
}

guint
nnic_model_add_backward_hook (NnicModel *m, const char *node_name, NnicBackwardHook fn,
                              gpointer user_data, GDestroyNotify destroy, GError **error)
{
  return add_hook (m, node_name, HOOK_BACKWARD, NULL, NULL, fn, user_data, destroy, error);
}

gboolean
nnic_model_set_input_transform (NnicModel *m, const char *node_name, NnicForwardHook fn,
                                NnicBackwardHook grad_fn, gpointer user_data, GError **error)
{
  int i = nnic_model_find_node (m, node_name);
  if (i <= 0) {
    g_autofree char *hint = nnic_graph_names_hint (m, node_name);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "no layer named '%s'%s",
                 node_name ? node_name : "(null)", hint);
    return FALSE;
  }
  NnicNode *n = nnic_graph_node (m, (guint) i);
  if (n->n_inputs == 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s: a %s has no input to transform", n->name, n->op->type);
    return FALSE;
  }
  if (n->real_input) { /* remove the old transform first */
    nnic_node_free (n->inputs[0]);
    n->inputs[0] = n->real_input;
    n->real_input = NULL;
  }
  if (fn) {
    /* The shadow stands in for the producer: same shape and index, its own
     * buffers (made in reshape). */
    NnicNode *real = n->inputs[0];
    NnicNode *shadow = g_new0 (NnicNode, 1);
    shadow->name = g_strdup (real->name);
    shadow->op = &nnic_op_input;
    shadow->model = m;
    shadow->index = real->index;
    shadow->shape_ndim = real->shape_ndim;
    memcpy (shadow->shape, real->shape, sizeof shadow->shape);
    shadow->inputs = g_new0 (NnicNode *, 1);
    n->real_input = real;
    n->inputs[0] = shadow;
    n->in_fn = fn;
    n->in_grad_fn = grad_fn;
    n->in_user = user_data;
  }
  m->batch = 0;
  m->grads_planned = FALSE;
  return TRUE;
}

gboolean
nnic_model_remove_forward_hook (NnicModel *m, guint id, GError **error)
{
  for (guint i = 0; i < m->hooks->len; i++) {
    NnicHook h = g_array_index (m->hooks, NnicHook, i);
    if (h.id != id)
      continue;
    g_array_remove_index (m->hooks, i);
    nnic_graph_node (m, h.node)->n_hooks--;
    if (h.destroy)
      h.destroy (h.user_data);
    return TRUE;
  }
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "no forward hook with id %u", id);
  return FALSE;
}

gboolean
nnic_model_substitute_param (NnicModel *m, const char *param_name, NnicTensor *substitute,
                             NnicGradHook grad_hook, gpointer user_data, GError **error)
{
  NnicParam *p = nnic_model_find_param (m, param_name, error);
  if (!p)
    return FALSE;
  NnicNode *n = nnic_graph_node (m, p->node);
  guint k = 0;
  while (n->param[k] != p->value)
    k++;
  if (substitute && (substitute->dtype != NNIC_DTYPE_F32 ||
                     !nnic_tensor_same_shape (substitute, p->value))) {
    g_autofree char *want = nnic_shape_to_string (p->value->ndim, p->value->shape);
    g_autofree char *got = nnic_shape_to_string (substitute->ndim, substitute->shape);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "%s: a substitute must be float32 of shape %s, got %s", param_name, want, got);
    return FALSE;
  }
  if (n->subst[k]) {
    nnic_tensor_free (n->subst[k]->grad);
    g_clear_pointer (&n->subst[k], g_free);
  }
  n->pval[k] = n->param[k];
  n->pgrad[k] = n->grad[k];
  if (!substitute)
    return TRUE;
  NnicSubstitute *s = g_new0 (NnicSubstitute, 1);
  s->hook = grad_hook;
  s->user_data = user_data;
  s->param = (guint) (p - &g_array_index (m->params, NnicParam, 0));
  if (n->grad[k] && !(s->grad = nnic_tensor_new_like (n->grad[k], error))) {
    g_free (s);
    return FALSE;
  }
  n->subst[k] = s;
  n->pval[k] = substitute;
  n->pgrad[k] = s->grad;
  return TRUE;
}
