/* The model graph and its executor: building, per-batch buffers, forward
 * and backward in topological order, hooks, parameter substitution. */
#include "core/graph.h"
#include "core/suggest.h"
#include "core/parallel.h"

#include <nnic/data.h>
#include <string.h>
#include <time.h>

typedef enum { HOOK_POST, HOOK_PRE, HOOK_BACKWARD } HookKind;

typedef struct {
  guint id;
  guint node;
  HookKind kind;
  NnicPreForwardHook pre_fn;
  NnicBackwardHook bwd_fn;
  NnicForwardHook fn;
  gpointer user_data;
  GDestroyNotify destroy;
} ForwardHook;

typedef struct _NnicSubstitute {
  NnicTensor *grad;  /* dL/d substitute, owned; NULL for buffers */
  NnicGradHook hook;
  gpointer user_data;
  guint param;       /* index into the model's param table */
} NnicSubstitute;

struct _NnicModel {
  GPtrArray *nodes;   /* NnicNode *, owned; nodes[0] is "input" */
  GHashTable *by_name;/* name → node index + 1 */
  guint output;
  GArray *params;     /* NnicParam, state_dict order */
  gboolean training;
  gboolean want_input_grad;
  gboolean grads_planned;
  int64_t batch;
  float *scratch;
  size_t scratch_len;
  NnicRng rng;
  GArray *hooks;      /* ForwardHook */
  guint next_hook_id;
  gboolean profiling;
  GArray *prof_fwd, *prof_bwd; /* double seconds per node */
};

/* ---- construction ---- */

static NnicNode *
node_at (const NnicModel *m, guint i)
{
  return g_ptr_array_index (m->nodes, i);
}

NnicNode *
nnic_model_node (NnicModel *m, guint i)
{
  return node_at (m, i);
}

static void
node_free (NnicNode *n)
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
    node_free (n->inputs[0]); /* the shadow */
  g_free (n->inputs);
  g_free (n->name);
  g_free (n);
}

static NnicModel *
model_new_with_input (int ndim, const int64_t *shape)
{
  NnicModel *m = g_new0 (NnicModel, 1);
  m->nodes = g_ptr_array_new_with_free_func ((GDestroyNotify) node_free);
  m->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  m->params = g_array_new (FALSE, TRUE, sizeof (NnicParam));
  m->hooks = g_array_new (FALSE, TRUE, sizeof (ForwardHook));
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
  return model_new_with_input (3, shape);
}

NnicModel *
nnic_model_new_flat (int features)
{
  int64_t shape[1] = { features };
  return model_new_with_input (1, shape);
}

void
nnic_model_free (NnicModel *m)
{
  if (!m)
    return;
  for (guint i = 0; i < m->hooks->len; i++) {
    ForwardHook *h = &g_array_index (m->hooks, ForwardHook, i);
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

static char *
node_names_hint (const NnicModel *m, const char *name)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new ();
  for (guint i = 0; i < m->nodes->len; i++)
    g_ptr_array_add (names, node_at (m, i)->name);
  return nnic_suggest (name, (const char *const *) names->pdata, names->len);
}

static NnicNode *
resolve_input (NnicModel *m, const char *new_name, const char *input, GError **error)
{
  if (!input)
    return node_at (m, m->nodes->len - 1);
  int i = nnic_model_find_node (m, input);
  if (i < 0) {
    g_autofree char *hint = node_names_hint (m, input);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "%s: no input node named '%s'%s",
                 new_name, input, hint);
    return NULL;
  }
  return node_at (m, (guint) i);
}

/* Adds a node of `op` fed by `inputs`, with `spec` copied into node->spec
 * (spec_size bytes), and runs the op's setup. On failure nothing changes. */
static gboolean
add_node (NnicModel *m, const char *name, const NnicOp *op, NnicNode **inputs, guint n_inputs,
          const void *spec, size_t spec_size, GError **error)
{
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
  memcpy (n->inputs, inputs, sizeof (NnicNode *) * n_inputs);
  if (spec)
    memcpy (&n->spec, spec, spec_size);
  if (!op->setup (n, error)) {
    node_free (n);
    return FALSE;
  }
  g_ptr_array_add (m->nodes, n);
  g_hash_table_insert (m->by_name, n->name, GUINT_TO_POINTER (n->index + 1));
  for (guint i = 0; i < n->n_params; i++) {
    NnicParam p = {
      .name = g_strconcat (n->name, ".", n->param_local[i], NULL),
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

static gboolean
add_unary (NnicModel *m, const char *name, const char *input, const NnicOp *op, const void *spec,
           size_t spec_size, GError **error)
{
  NnicNode *in = resolve_input (m, name ? name : op->type, input, error);
  if (!in)
    return FALSE;
  return add_node (m, name, op, &in, 1, spec, spec_size, error);
}

gboolean
nnic_model_add_conv2d (NnicModel *m, const char *name, const char *input,
                       const NnicConv2dSpec *spec, GError **error)
{
  return add_unary (m, name, input, &nnic_op_conv2d, spec, sizeof *spec, error);
}

gboolean
nnic_model_add_linear (NnicModel *m, const char *name, const char *input,
                       const NnicLinearSpec *spec, GError **error)
{
  return add_unary (m, name, input, &nnic_op_linear, spec, sizeof *spec, error);
}

gboolean
nnic_model_add_batchnorm2d (NnicModel *m, const char *name, const char *input,
                            const NnicBatchNormSpec *spec, GError **error)
{
  return add_unary (m, name, input, &nnic_op_batchnorm2d, spec, sizeof *spec, error);
}

gboolean
nnic_model_add_batchnorm1d (NnicModel *m, const char *name, const char *input,
                            const NnicBatchNormSpec *spec, GError **error)
{
  return add_unary (m, name, input, &nnic_op_batchnorm1d, spec, sizeof *spec, error);
}

gboolean
nnic_model_add_relu (NnicModel *m, const char *name, const char *input, GError **error)
{
  return add_unary (m, name, input, &nnic_op_relu, NULL, 0, error);
}

gboolean
nnic_model_add_relu6 (NnicModel *m, const char *name, const char *input, GError **error)
{
  return add_unary (m, name, input, &nnic_op_relu6, NULL, 0, error);
}

gboolean
nnic_model_add_maxpool2d (NnicModel *m, const char *name, const char *input,
                          const NnicPool2dSpec *spec, GError **error)
{
  return add_unary (m, name, input, &nnic_op_maxpool2d, spec, sizeof *spec, error);
}

gboolean
nnic_model_add_avgpool2d (NnicModel *m, const char *name, const char *input,
                          const NnicPool2dSpec *spec, GError **error)
{
  return add_unary (m, name, input, &nnic_op_avgpool2d, spec, sizeof *spec, error);
}

gboolean
nnic_model_add_adaptive_avgpool2d (NnicModel *m, const char *name, const char *input, int out_h,
                                   int out_w, GError **error)
{
  struct { int out_h, out_w; } spec = { out_h, out_w };
  return add_unary (m, name, input, &nnic_op_adaptive_avgpool2d, &spec, sizeof spec, error);
}

gboolean
nnic_model_add_flatten (NnicModel *m, const char *name, const char *input, GError **error)
{
  return add_unary (m, name, input, &nnic_op_flatten, NULL, 0, error);
}

gboolean
nnic_model_add_dropout (NnicModel *m, const char *name, const char *input, double p,
                        GError **error)
{
  struct { double p; } spec = { p };
  return add_unary (m, name, input, &nnic_op_dropout, &spec, sizeof spec, error);
}

gboolean
nnic_model_add_add (NnicModel *m, const char *name, const char *a, const char *b, GError **error)
{
  NnicNode *in[2];
  if (!(in[0] = resolve_input (m, name ? name : "Add", a, error)) ||
      !(in[1] = resolve_input (m, name ? name : "Add", b, error)))
    return FALSE;
  return add_node (m, name, &nnic_op_add, in, 2, NULL, 0, error);
}

gboolean
nnic_model_add_concat (NnicModel *m, const char *name, const char *const *inputs, int n_inputs,
                       GError **error)
{
  if (n_inputs < 1 || !inputs) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: Concat needs at least one input",
                 name ? name : "Concat");
    return FALSE;
  }
  g_autofree NnicNode **in = g_new0 (NnicNode *, n_inputs);
  for (int i = 0; i < n_inputs; i++)
    if (!inputs[i] || !(in[i] = resolve_input (m, name ? name : "Concat", inputs[i], error))) {
      if (!inputs[i])
        g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: input %d is NULL",
                     name ? name : "Concat", i);
      return FALSE;
    }
  return add_node (m, name, &nnic_op_concat, in, (guint) n_inputs, NULL, 0, error);
}

gboolean
nnic_model_add_softmax (NnicModel *m, const char *name, const char *input, int axis,
                        GError **error)
{
  struct { int axis; } spec = { axis };
  return add_unary (m, name, input, &nnic_op_softmax, &spec, sizeof spec, error);
}

gboolean
nnic_model_add_reshape (NnicModel *m, const char *name, const char *input, const int64_t *shape,
                        int ndim, GError **error)
{
  struct { int ndim; int64_t shape[NNIC_MAX_DIMS]; } spec = { ndim, { 0 } };
  if (ndim > 0 && ndim < NNIC_MAX_DIMS) {
    if (!shape) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: Reshape needs a shape",
                   name ? name : "Reshape");
      return FALSE;
    }
    memcpy (spec.shape, shape, sizeof (int64_t) * (size_t) ndim);
  } /* else the op's setup names the bad rank */
  return add_unary (m, name, input, &nnic_op_reshape, &spec, sizeof spec, error);
}

gboolean
nnic_model_add_hardtanh (NnicModel *m, const char *name, const char *input, double min_val,
                         double max_val, GError **error)
{
  struct { double min_val, max_val; } spec = { min_val, max_val };
  return add_unary (m, name, input, &nnic_op_hardtanh, &spec, sizeof spec, error);
}

gboolean
nnic_model_set_output (NnicModel *m, const char *name, GError **error)
{
  int i = nnic_model_find_node (m, name);
  if (i < 0) {
    g_autofree char *hint = node_names_hint (m, name);
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

static const NnicOp *const all_ops[] = {
  &nnic_op_conv2d, &nnic_op_linear, &nnic_op_batchnorm2d, &nnic_op_batchnorm1d, &nnic_op_relu,
  &nnic_op_relu6, &nnic_op_maxpool2d, &nnic_op_avgpool2d, &nnic_op_adaptive_avgpool2d,
  &nnic_op_flatten, &nnic_op_dropout, &nnic_op_add, &nnic_op_concat, &nnic_op_softmax,
  &nnic_op_reshape, &nnic_op_hardtanh,
};

const char *const *
nnic_model_node_types (void)
{
  static const char *names[G_N_ELEMENTS (all_ops) + 1];
  if (!names[0])
    for (guint i = 0; i < G_N_ELEMENTS (all_ops); i++)
      names[i] = all_ops[i]->type;
  return names;
}

guint
nnic_model_n_nodes (const NnicModel *m)
{
  return m->nodes->len;
}

const char *
nnic_model_node_name (const NnicModel *m, guint i)
{
  return i < m->nodes->len ? node_at (m, i)->name : NULL;
}

const char *
nnic_model_node_type (const NnicModel *m, guint i)
{
  return i < m->nodes->len ? node_at (m, i)->op->type : NULL;
}

int
nnic_model_node_shape (const NnicModel *m, guint i, int64_t shape[NNIC_MAX_DIMS])
{
  if (i >= m->nodes->len)
    return -1;
  NnicNode *n = node_at (m, i);
  memcpy (shape, n->shape, sizeof (int64_t) * (size_t) n->shape_ndim);
  return n->shape_ndim;
}

guint
nnic_model_node_n_inputs (const NnicModel *m, guint i)
{
  return i < m->nodes->len ? node_at (m, i)->n_inputs : 0;
}

guint
nnic_model_node_input (const NnicModel *m, guint i, guint k)
{
  NnicNode *n = node_at (m, i);
  return k < n->n_inputs ? n->inputs[k]->index : 0;
}

/* ---- node options ---- */

gboolean
nnic_model_node_conv2d_spec (const NnicModel *m, guint i, NnicConv2dSpec *spec)
{
  if (i >= m->nodes->len || node_at (m, i)->op != &nnic_op_conv2d)
    return FALSE;
  /* Setup filled in every default and per-axis field (pads too). */
  *spec = node_at (m, i)->spec.conv;
  spec->explicit_pads = TRUE;
  return TRUE;
}

gboolean
nnic_model_node_linear_spec (const NnicModel *m, guint i, NnicLinearSpec *spec)
{
  if (i >= m->nodes->len || node_at (m, i)->op != &nnic_op_linear)
    return FALSE;
  *spec = node_at (m, i)->spec.linear;
  return TRUE;
}

gboolean
nnic_model_node_batchnorm_spec (const NnicModel *m, guint i, NnicBatchNormSpec *spec)
{
  if (i >= m->nodes->len)
    return FALSE;
  const NnicNode *n = node_at (m, i);
  if (n->op != &nnic_op_batchnorm2d && n->op != &nnic_op_batchnorm1d)
    return FALSE;
  *spec = n->spec.bn;
  return TRUE;
}

gboolean
nnic_model_node_pool2d_spec (const NnicModel *m, guint i, NnicPool2dSpec *spec)
{
  if (i >= m->nodes->len)
    return FALSE;
  const NnicNode *n = node_at (m, i);
  if (n->op != &nnic_op_maxpool2d && n->op != &nnic_op_avgpool2d)
    return FALSE;
  *spec = n->spec.pool;
  spec->explicit_pads = TRUE;
  return TRUE;
}

gboolean
nnic_model_node_option (const NnicModel *m, guint i, const char *key, double *value)
{
  if (i >= m->nodes->len || !key)
    return FALSE;
  const NnicNode *n = node_at (m, i);
  double v;
  if (n->op == &nnic_op_dropout && strcmp (key, "p") == 0)
    v = n->spec.dropout.p;
  else if (n->op == &nnic_op_softmax && strcmp (key, "axis") == 0)
    v = n->spec.softmax.axis;
  else if (n->op == &nnic_op_hardtanh && strcmp (key, "min_val") == 0)
    v = n->spec.hardtanh.min_val;
  else if (n->op == &nnic_op_hardtanh && strcmp (key, "max_val") == 0)
    v = n->spec.hardtanh.max_val;
  else if (n->op == &nnic_op_adaptive_avgpool2d && strcmp (key, "out_h") == 0)
    v = n->spec.adaptive.out_h;
  else if (n->op == &nnic_op_adaptive_avgpool2d && strcmp (key, "out_w") == 0)
    v = n->spec.adaptive.out_w;
  else
    return FALSE;
  if (value)
    *value = v;
  return TRUE;
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

/* ---- execution ---- */

void
nnic_model_set_training (NnicModel *m, gboolean training)
{
  m->training = training;
}

gboolean
nnic_model_get_training (const NnicModel *m)
{
  return m->training;
}

void
nnic_model_set_seed (NnicModel *m, guint64 seed)
{
  nnic_rng_seed (&m->rng, seed);
}

float
nnic_model_uniform (NnicModel *m)
{
  return (float) nnic_rng_uniform (&m->rng);
}

void
nnic_model_set_input_grad (NnicModel *m, gboolean wanted)
{
  if (m->want_input_grad != wanted) {
    m->want_input_grad = wanted;
    m->grads_planned = FALSE;
  }
}

float *
nnic_model_scratch (NnicModel *m, size_t n_floats, GError **error)
{
  if (n_floats > m->scratch_len) {
    void *p = NULL;
    if (n_floats > (size_t) (NNIC_TENSOR_MAX_BYTES / 4) ||
        posix_memalign (&p, 64, n_floats * sizeof (float)) != 0) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_MEMORY,
                   "out of memory allocating %zu floats of scratch space", n_floats);
      return NULL;
    }
    free (m->scratch);
    m->scratch = p;
    m->scratch_len = n_floats;
  }
  return m->scratch;
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

/* Marks which nodes a gradient flows through: those with trainable
 * parameters, those downstream of them, and the input when asked for. */
static void
plan_grads (NnicModel *m)
{
  for (guint i = 0; i < m->nodes->len; i++) {
    NnicNode *n = node_at (m, i);
    if (n->real_input)
      n->inputs[0]->requires_grad = n->real_input->requires_grad;
    gboolean rg = (i == 0 && m->want_input_grad);
    for (guint k = 0; k < n->n_params && !rg; k++)
      rg = n->grad[k] != NULL;
    for (guint k = 0; k < n->n_inputs && !rg; k++)
      rg = n->inputs[k]->requires_grad;
    n->requires_grad = rg;
  }
  m->grads_planned = TRUE;
}

/* Batch buffers for every node, sized for `batch`; nothing is allocated
 * again while the batch size stays the same. */
static gboolean
reshape (NnicModel *m, int64_t batch, GError **error)
{
  if (!m->grads_planned) {
    plan_grads (m);
    m->batch = 0;
  }
  if (batch == m->batch)
    return TRUE;
  for (guint i = 0; i <= m->output; i++) {
    NnicNode *n = node_at (m, i);
    int64_t shape[NNIC_MAX_DIMS + 1];
    shape[0] = batch;
    memcpy (shape + 1, n->shape, sizeof (int64_t) * (size_t) n->shape_ndim);
    nnic_tensor_free (n->out);
    nnic_tensor_free (n->gout);
    n->gout = NULL;
    n->out = nnic_tensor_new (NNIC_DTYPE_F32, n->shape_ndim + 1, shape, error);
    if (!n->out)
      goto fail;
    if (n->requires_grad &&
        !(n->gout = nnic_tensor_new (NNIC_DTYPE_F32, n->shape_ndim + 1, shape, error)))
      goto fail;
    if (n->real_input) {
      NnicNode *shadow = n->inputs[0];
      nnic_tensor_free (shadow->out);
      nnic_tensor_free (shadow->gout);
      shadow->gout = NULL;
      int64_t in_shape[NNIC_MAX_DIMS + 1] = { batch };
      memcpy (in_shape + 1, shadow->shape, sizeof (int64_t) * (size_t) shadow->shape_ndim);
      if (!(shadow->out = nnic_tensor_new (NNIC_DTYPE_F32, shadow->shape_ndim + 1, in_shape, error)))
        goto fail;
      if (shadow->requires_grad &&
          !(shadow->gout = nnic_tensor_new (NNIC_DTYPE_F32, shadow->shape_ndim + 1, in_shape, error)))
        goto fail;
      shadow->batch = batch;
    }
    n->batch = batch;
    if (n->op->reshape && !n->op->reshape (n, batch, error))
      goto fail;
    continue;
  fail:
    g_prefix_error (error, "%s: cannot allocate buffers for batch %" G_GINT64_FORMAT ": ", n->name,
                    batch);
    m->batch = 0;
    return FALSE;
  }
  m->batch = batch;
  return TRUE;
}

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec * 1e-9;
}

void
nnic_model_reset_profile (NnicModel *m)
{
  if (!m->prof_fwd) {
    m->prof_fwd = g_array_new (FALSE, TRUE, sizeof (double));
    m->prof_bwd = g_array_new (FALSE, TRUE, sizeof (double));
  }
  g_array_set_size (m->prof_fwd, 0);
  g_array_set_size (m->prof_bwd, 0);
  g_array_set_size (m->prof_fwd, m->nodes->len);
  g_array_set_size (m->prof_bwd, m->nodes->len);
}

void
nnic_model_set_profiling (NnicModel *m, gboolean on)
{
  if (on && !m->profiling)
    nnic_model_reset_profile (m);
  m->profiling = on;
}

void
nnic_model_node_time (const NnicModel *m, guint i, double *forward_s, double *backward_s)
{
  gboolean known = m->prof_fwd && i < m->prof_fwd->len;
  if (forward_s)
    *forward_s = known ? g_array_index (m->prof_fwd, double, i) : 0.0;
  if (backward_s)
    *backward_s = known ? g_array_index (m->prof_bwd, double, i) : 0.0;
}

static void
run_hooks (NnicModel *m, NnicNode *n, HookKind kind)
{
  for (guint h = 0; h < m->hooks->len; h++) {
    ForwardHook *hook = &g_array_index (m->hooks, ForwardHook, h);
    if (hook->node != n->index || hook->kind != kind)
      continue;
    if (kind == HOOK_PRE)
      hook->pre_fn (m, n->index, hook->user_data);
    else if (kind == HOOK_POST)
      hook->fn (m, n->index, n->out, hook->user_data);
    else if (n->gout)
      hook->bwd_fn (m, n->index, n->gout, hook->user_data);
  }
}

/* Before a node's forward: its private, transformed copy of the input. */
static void
transform_input (NnicModel *m, NnicNode *n)
{
  NnicNode *shadow = n->inputs[0];
  memcpy (shadow->out->data, n->real_input->out->data, nnic_tensor_nbytes (shadow->out));
  n->in_fn (m, n->index, shadow->out, n->in_user);
}

/* After a node's backward: the gradient of the transformed input, mapped
 * by the transform's backward, goes to the real input. */
static void
route_input_grad (NnicModel *m, NnicNode *n)
{
  NnicNode *shadow = n->inputs[0];
  if (!shadow->gout || !n->real_input->gout)
    return;
  if (n->in_grad_fn)
    n->in_grad_fn (m, n->index, shadow->gout, n->in_user);
  float *restrict dst = n->real_input->gout->f32;
  const float *restrict src = shadow->gout->f32;
  for (int64_t i = 0; i < shadow->gout->numel; i++)
    dst[i] += src[i];
}

void
nnic_model_invalidate (NnicModel *m)
{
  m->batch = 0;
  m->grads_planned = FALSE;
}

const NnicTensor *
nnic_model_forward (NnicModel *m, const NnicTensor *input, GError **error)
{
  NnicNode *in = node_at (m, 0);
  gboolean fits = input && input->dtype == NNIC_DTYPE_F32 && input->ndim == in->shape_ndim + 1 &&
                  input->shape[0] > 0 &&
                  memcmp (input->shape + 1, in->shape, sizeof (int64_t) * (size_t) in->shape_ndim) == 0;
  if (!fits) {
    g_autofree char *want = nnic_shape_to_string (in->shape_ndim, in->shape);
    g_autofree char *got = input ? nnic_shape_to_string (input->ndim, input->shape) : g_strdup ("none");
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "the model takes float32 input of shape [batch, %s, got %s %s", want + 1,
                 input ? nnic_dtype_name (input->dtype) : "", got);
    return NULL;
  }
  if (!reshape (m, input->shape[0], error))
    return NULL;
  memcpy (in->out->data, input->data, nnic_tensor_nbytes (input));
  /* The layers run BLAS in their own threads (core/parallel.h). */
  int blas = nnic_blas_single_begin ();
  if (in->n_hooks)
    run_hooks (m, in, HOOK_POST);
  for (guint i = 1; i <= m->output; i++) {
    NnicNode *n = node_at (m, i);
    if (n->n_hooks)
      run_hooks (m, n, HOOK_PRE);
    if (n->real_input)
      transform_input (m, n);
    double t0 = m->profiling ? now_s () : 0;
    n->op->forward (n, m->training);
    if (m->profiling)
      g_array_index (m->prof_fwd, double, i) += now_s () - t0;
    if (n->n_hooks)
      run_hooks (m, n, HOOK_POST);
  }
  nnic_blas_single_end (blas);
  return node_at (m, m->output)->out;
}

const NnicTensor *
nnic_model_node_output (NnicModel *m, const char *name)
{
  int i = nnic_model_find_node (m, name);
  if (i < 0 || m->batch == 0 || (guint) i > m->output)
    return NULL;
  return node_at (m, (guint) i)->out;
}

/* After a node's backward, gradients computed for substitutes go to their
 * hooks, or straight through to the real parameter. */
static void
route_substitute_grads (NnicModel *m, NnicNode *n)
{
  for (guint k = 0; k < n->n_params; k++) {
    NnicSubstitute *s = n->subst[k];
    if (!s || !s->grad)
      continue;
    NnicParam *p = &g_array_index (m->params, NnicParam, s->param);
    if (s->hook) {
      s->hook (m, p, n->pval[k], s->grad, s->user_data);
    } else {
      float *dst = p->grad->f32;
      const float *src = s->grad->f32;
      for (int64_t j = 0; j < p->grad->numel; j++)
        dst[j] += src[j];
    }
    nnic_tensor_zero (s->grad);
  }
}

gboolean
nnic_model_backward (NnicModel *m, const NnicTensor *grad_output, GError **error)
{
  NnicNode *out = node_at (m, m->output);
  if (m->batch == 0 || !out->out) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "backward needs a forward first");
    return FALSE;
  }
  if (!grad_output || grad_output->dtype != NNIC_DTYPE_F32 ||
      !nnic_tensor_same_shape (grad_output, out->out)) {
    g_autofree char *want = nnic_shape_to_string (out->out->ndim, out->out->shape);
    g_autofree char *got = grad_output ? nnic_shape_to_string (grad_output->ndim, grad_output->shape)
                                       : g_strdup ("none");
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "the output gradient must be float32 of shape %s, got %s", want, got);
    return FALSE;
  }
  for (guint i = 1; i <= m->output; i++) {
    const NnicNode *n = node_at (m, i);
    if (!n->op->backward) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                   "%s: this %s runs forward only (integer inference): the model can be evaluated, not trained",
                   n->name, n->op->type);
      return FALSE;
    }
  }
  if (!out->requires_grad)
    return TRUE; /* nothing trainable */
  for (guint i = 0; i <= m->output; i++) {
    NnicNode *n = node_at (m, i);
    if (n->gout && i != m->output)
      nnic_parallel_zero (n->gout->f32, n->gout->numel);
  }
  memcpy (out->gout->data, grad_output->data, nnic_tensor_nbytes (grad_output));
  int blas = nnic_blas_single_begin ();
  for (guint i = m->output; i >= 1; i--) {
    NnicNode *n = node_at (m, i);
    if (!n->requires_grad)
      continue;
    if (n->n_hooks)
      run_hooks (m, n, HOOK_BACKWARD);
    if (n->real_input && n->inputs[0]->gout)
      nnic_tensor_zero (n->inputs[0]->gout);
    double t0 = m->profiling ? now_s () : 0;
    n->op->backward (n);
    route_substitute_grads (m, n);
    if (n->real_input)
      route_input_grad (m, n);
    if (m->profiling)
      g_array_index (m->prof_bwd, double, i) += now_s () - t0;
  }
  nnic_blas_single_end (blas);
  return TRUE;
}

void
nnic_model_zero_grad (NnicModel *m)
{
  for (guint i = 0; i < m->params->len; i++) {
    NnicParam *p = &g_array_index (m->params, NnicParam, i);
    if (p->grad)
      nnic_parallel_zero (p->grad->f32, p->grad->numel);
  }
}

const NnicTensor *
nnic_model_input_grad (NnicModel *m)
{
  return node_at (m, 0)->gout;
}

/* ---- hooks ---- */

static guint
add_hook (NnicModel *m, const char *node_name, HookKind kind, NnicPreForwardHook pre_fn,
          NnicForwardHook fn, NnicBackwardHook bwd_fn, gpointer user_data, GDestroyNotify destroy,
          GError **error)
{
  int i = nnic_model_find_node (m, node_name);
  if (i < 0 || (!fn && !pre_fn && !bwd_fn)) {
    if (!fn && !pre_fn && !bwd_fn) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "a forward hook needs a function");
    } else {
      g_autofree char *hint = node_names_hint (m, node_name);
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "no node named '%s'%s",
                   node_name ? node_name : "(null)", hint);
    }
    return 0;
  }
  ForwardHook h = { m->next_hook_id++, (guint) i, kind, pre_fn, bwd_fn, fn, user_data, destroy };
  g_array_append_val (m->hooks, h);
  node_at (m, (guint) i)->n_hooks++;
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
    g_autofree char *hint = node_names_hint (m, node_name);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "no layer named '%s'%s",
                 node_name ? node_name : "(null)", hint);
    return FALSE;
  }
  NnicNode *n = node_at (m, (guint) i);
  if (n->real_input) { /* remove the old transform first */
    node_free (n->inputs[0]);
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
    ForwardHook h = g_array_index (m->hooks, ForwardHook, i);
    if (h.id != id)
      continue;
    g_array_remove_index (m->hooks, i);
    node_at (m, h.node)->n_hooks--;
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
  NnicNode *n = node_at (m, p->node);
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

char *
nnic_model_describe (const NnicModel *m)
{
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < m->nodes->len; i++) {
    NnicNode *n = node_at (m, i);
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
