/* SGD and Adam with PyTorch's update rules, and the post-step hooks
 * through which a pruner re-applies its masks after every step. */
#include <nnic/train.h>
#include <nnic/error.h>

#include <math.h>

typedef enum { OPT_SGD, OPT_ADAM } OptKind;

typedef struct {
  char *name;
  NnicTensor *value, *grad; /* not owned */
  NnicTensor *m, *v;        /* momentum / Adam moments, owned */
  guint64 steps;            /* updates of this slot so far */
} Slot;

typedef struct {
  guint id;
  gboolean pre;   /* runs before the update (may change the gradients) */
  NnicStepHook fn;
  gpointer user_data;
  GDestroyNotify destroy;
} StepHook;

struct _NnicOptimizer {
  OptKind kind;
  NnicSgdOptions sgd;
  NnicAdamOptions adam;
  double lr;
  guint64 steps;
  GArray *slots; /* Slot */
  GArray *hooks; /* StepHook */
  guint next_hook_id;
};

/* State buffers are made here, so that a step never allocates. */
static gboolean
add_slot (NnicOptimizer *o, const char *name, NnicTensor *value, NnicTensor *grad, GError **error)
{
  Slot s = { g_strdup (name), value, grad, NULL, NULL, 0 };
  gboolean need_m = o->kind == OPT_ADAM || o->sgd.momentum > 0;
  if ((need_m && !(s.m = nnic_tensor_new_like (value, error))) ||
      (o->kind == OPT_ADAM && !(s.v = nnic_tensor_new_like (value, error)))) {
    nnic_tensor_free (s.m);
    g_free (s.name);
    return FALSE;
  }
  g_array_append_val (o->slots, s);
  return TRUE;
}

static NnicOptimizer *
optimizer_new (NnicModel *m, OptKind kind, const NnicSgdOptions *sgd, const NnicAdamOptions *adam,
               GError **error)
{
  NnicOptimizer *o = g_new0 (NnicOptimizer, 1);
  o->kind = kind;
  if (sgd) {
    o->sgd = *sgd;
    o->lr = sgd->lr;
  } else {
    o->adam = *adam;
    o->lr = adam->lr;
  }
  o->slots = g_array_new (FALSE, TRUE, sizeof (Slot));
  o->hooks = g_array_new (FALSE, TRUE, sizeof (StepHook));
  o->next_hook_id = 1;
  for (guint i = 0; i < nnic_model_n_params (m); i++) {
    NnicParam *p = nnic_model_param (m, i);
    if (p->grad && !add_slot (o, p->name, p->value, p->grad, error)) {
      nnic_optimizer_free (o);
      return NULL;
    }
  }
  return o;
}

NnicOptimizer *
nnic_optimizer_new_sgd (NnicModel *m, const NnicSgdOptions *opt, GError **error)
{
  if (!(opt->lr > 0) || opt->momentum < 0 || opt->weight_decay < 0 || opt->dampening < 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "SGD needs lr > 0 and non-negative momentum, dampening and weight decay "
                 "(got lr %g, momentum %g, dampening %g, weight decay %g)",
                 opt->lr, opt->momentum, opt->dampening, opt->weight_decay);
    return NULL;
  }
  if (opt->nesterov && (opt->momentum <= 0 || opt->dampening != 0)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "Nesterov momentum requires a momentum > 0 and zero dampening");
    return NULL;
  }
  return optimizer_new (m, OPT_SGD, opt, NULL, error);
}

NnicOptimizer *
nnic_optimizer_new_adam (NnicModel *m, const NnicAdamOptions *opt, GError **error)
{
  NnicAdamOptions a = *opt;
  if (a.lr == 0) a.lr = 1e-3;
  if (a.beta1 == 0) a.beta1 = 0.9;
  if (a.beta2 == 0) a.beta2 = 0.999;
  if (a.eps == 0) a.eps = 1e-8;
  if (!(a.lr > 0) || a.beta1 < 0 || a.beta1 >= 1 || a.beta2 < 0 || a.beta2 >= 1 || !(a.eps > 0) ||
      a.weight_decay < 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "Adam needs lr > 0, betas in [0, 1), eps > 0 and weight decay >= 0 "
                 "(got lr %g, betas %g %g, eps %g, weight decay %g)",
                 a.lr, a.beta1, a.beta2, a.eps, a.weight_decay);
    return NULL;
  }
  return optimizer_new (m, OPT_ADAM, NULL, &a, error);
}

void
nnic_optimizer_free (NnicOptimizer *o)
{
  if (!o)
    return;
  for (guint i = 0; i < o->hooks->len; i++) {
    StepHook *h = &g_array_index (o->hooks, StepHook, i);
    if (h->destroy)
      h->destroy (h->user_data);
  }
  for (guint i = 0; i < o->slots->len; i++) {
    Slot *s = &g_array_index (o->slots, Slot, i);
    g_free (s->name);
    nnic_tensor_free (s->m);
    nnic_tensor_free (s->v);
  }
  g_array_free (o->hooks, TRUE);
  g_array_free (o->slots, TRUE);
  g_free (o);
}

gboolean
nnic_optimizer_add_tensor (NnicOptimizer *o, const char *name, NnicTensor *value, NnicTensor *grad,
                           GError **error)
{
  if (!value || !grad || value->dtype != NNIC_DTYPE_F32 || grad->dtype != NNIC_DTYPE_F32 ||
      !nnic_tensor_same_shape (value, grad)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_SHAPE,
                 "%s: an optimised tensor and its gradient must be float32 of the same shape",
                 name ? name : "(unnamed)");
    return FALSE;
  }
  return add_slot (o, name ? name : "(unnamed)", value, grad, error);
}

/* Updates shorter than this stay on one thread. */
#define OPT_PARALLEL_MIN ((int64_t) 1 << 16)

/* torch.optim.SGD: d = g + wd·p; buf = d (first step) or μ·buf + (1-τ)·d;
 * d = d + μ·buf (Nesterov) or buf; p -= lr·d. */
static void
sgd_update (NnicOptimizer *o, Slot *s)
{
  const NnicSgdOptions *c = &o->sgd;
  float *restrict p = s->value->f32;
  const float *restrict g = s->grad->f32;
  const int64_t n = s->value->numel;
  const float lr = (float) o->lr, wd = (float) c->weight_decay, mu = (float) c->momentum;
  const float damp = 1.0f - (float) c->dampening;
  if (mu == 0) {
#pragma omp parallel for schedule(static) if (n > OPT_PARALLEL_MIN)
    for (int64_t i = 0; i < n; i++)
      p[i] -= lr * (g[i] + wd * p[i]);
    return;
  }
  /* As constants of the loop, so that it vectorises: the first step
   * takes the gradient as the buffer (mu 0, damp 1 for that step). */
  const gboolean first = s->steps == 1;
  const float keep = first ? 0.0f : mu, add = first ? 1.0f : damp, ahead = c->nesterov ? mu : 0.0f;
  const float take_d = c->nesterov ? 1.0f : 0.0f, take_b = c->nesterov ? ahead : 1.0f;
  float *restrict buf = s->m->f32;
#pragma omp parallel for schedule(static) if (n > OPT_PARALLEL_MIN)
  for (int64_t i = 0; i < n; i++) {
    float d = g[i] + wd * p[i];
    float b = keep * buf[i] + add * d;
    buf[i] = b;
    p[i] -= lr * (take_d * d + take_b * b);
  }
}

/* torch.optim.Adam (L2 weight decay added to the gradient). */
static void
adam_update (NnicOptimizer *o, Slot *s)
{
  const NnicAdamOptions *c = &o->adam;
  float *p = s->value->f32, *m = s->m->f32, *v = s->v->f32;
  const float *g = s->grad->f32;
  const double t = (double) s->steps;
  const float b1 = (float) c->beta1, b2 = (float) c->beta2, wd = (float) c->weight_decay;
  const float step = (float) (o->lr / (1.0 - pow (c->beta1, t)));
  const float inv_sqrt_bc2 = (float) (1.0 / sqrt (1.0 - pow (c->beta2, t)));
  const float eps = (float) c->eps;
  for (int64_t i = 0; i < s->value->numel; i++) {
    float d = g[i] + wd * p[i];
    m[i] = b1 * m[i] + (1.0f - b1) * d;
    v[i] = b2 * v[i] + (1.0f - b2) * d * d;
    p[i] -= step * m[i] / (sqrtf (v[i]) * inv_sqrt_bc2 + eps);
  }
}

static void
run_step_hooks (NnicOptimizer *o, gboolean pre)
{
  for (guint i = 0; i < o->hooks->len; i++) {
    StepHook *h = &g_array_index (o->hooks, StepHook, i);
    if (h->pre == pre)
      h->fn (o, h->user_data);
  }
}

void
nnic_optimizer_step (NnicOptimizer *o)
{
  run_step_hooks (o, TRUE);
  o->steps++;
  for (guint i = 0; i < o->slots->len; i++) {
    Slot *s = &g_array_index (o->slots, Slot, i);
    s->steps++;
    if (o->kind == OPT_SGD)
      sgd_update (o, s);
    else
      adam_update (o, s);
  }
  run_step_hooks (o, FALSE);
}

void
nnic_optimizer_set_lr (NnicOptimizer *o, double lr)
{
  o->lr = lr;
}

double
nnic_optimizer_get_lr (const NnicOptimizer *o)
{
  return o->lr;
}

guint64
nnic_optimizer_steps (const NnicOptimizer *o)
{
  return o->steps;
}

static guint
add_step_hook (NnicOptimizer *o, gboolean pre, NnicStepHook fn, gpointer user_data,
               GDestroyNotify destroy)
{
  g_return_val_if_fail (fn != NULL, 0);
  StepHook h = { o->next_hook_id++, pre, fn, user_data, destroy };
  g_array_append_val (o->hooks, h);
  return h.id;
}

guint
nnic_optimizer_add_post_step_hook (NnicOptimizer *o, NnicStepHook fn, gpointer user_data,
                                   GDestroyNotify destroy)
{
  return add_step_hook (o, FALSE, fn, user_data, destroy);
}

guint
nnic_optimizer_add_pre_step_hook (NnicOptimizer *o, NnicStepHook fn, gpointer user_data,
                                  GDestroyNotify destroy)
{
  return add_step_hook (o, TRUE, fn, user_data, destroy);
}

gboolean
nnic_optimizer_remove_post_step_hook (NnicOptimizer *o, guint id, GError **error)
{
  for (guint i = 0; i < o->hooks->len; i++) {
    StepHook h = g_array_index (o->hooks, StepHook, i);
    if (h.id != id)
      continue;
    g_array_remove_index (o->hooks, i);
    if (h.destroy)
      h.destroy (h.user_data);
    return TRUE;
  }
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "no step hook with id %u", id);
  return FALSE;
}
