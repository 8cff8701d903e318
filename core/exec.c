/* The executor: per-batch buffers, forward and backward in topological
 * order (with the hooks and input transforms the compressor installs),
 * per-node profiling. */
#include "core/graph.h"
#include "core/parallel.h"

#include <string.h>
#include <time.h>

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

/* Marks which nodes a gradient flows through: those with trainable
 * parameters, those downstream of them, and the input when asked for. */
static void
plan_grads (NnicModel *m)
{
  for (guint i = 0; i < m->nodes->len; i++) {
    NnicNode *n = nnic_graph_node (m, i);
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
    NnicNode *n = nnic_graph_node (m, i);
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
run_hooks (NnicModel *m, NnicNode *n, NnicHookKind kind)
{
  for (guint h = 0; h < m->hooks->len; h++) {
    NnicHook *hook = &g_array_index (m->hooks, NnicHook, h);
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
  NnicNode *in = nnic_graph_node (m, 0);
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
    NnicNode *n = nnic_graph_node (m, i);
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
  return nnic_graph_node (m, m->output)->out;
}

const NnicTensor *
nnic_model_node_output (NnicModel *m, const char *name)
{
  int i = nnic_model_find_node (m, name);
  if (i < 0 || m->batch == 0 || (guint) i > m->output)
    return NULL;
  return nnic_graph_node (m, (guint) i)->out;
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
  NnicNode *out = nnic_graph_node (m, m->output);
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
    const NnicNode *n = nnic_graph_node (m, i);
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
    NnicNode *n = nnic_graph_node (m, i);
    if (n->gout && i != m->output)
      nnic_parallel_zero (n->gout->f32, n->gout->numel);
  }
  memcpy (out->gout->data, grad_output->data, nnic_tensor_nbytes (grad_output));
  int blas = nnic_blas_single_begin ();
  for (guint i = m->output; i >= 1; i--) {
    NnicNode *n = nnic_graph_node (m, i);
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
  return nnic_graph_node (m, 0)->gout;
}
