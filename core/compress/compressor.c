/* The compressor: loads the algorithm, checks the config list, wraps the
 * selected nodes, hooks the optimizer step, runs maskers / pruners /
 * quantizers, and exports. */
#include "core/compress/wrapper.h"

#include <nnic/registry.h>
#include <nnic/io.h>
#include <string.h>

typedef enum { MODE_ONESHOT, MODE_PRUNER, MODE_QUANTIZER } Mode;

typedef struct {
  guint id;
  NnicCollectorFn fn;
  gpointer user_data;
  GDestroyNotify destroy;
} Collector;

struct _NnicCompressor {
  NnicModel *model;
  NnicOptimizer *optimizer;
  Mode mode;
  const NnicAlgorithm *algorithm;
  const NnicAlgorithm *masker;  /* one-shot and scheduling pruners */
  gpointer state, masker_state;
  GPtrArray *wrappers;          /* NnicWrapper *, owned */
  GPtrArray *entries;           /* JsonObject * refs of the config list */
  gboolean dependency_aware;
  NnicCompressorOptions options; /* as given (the masker name is not kept) */
  guint step_hook;
  guint64 steps;
  GArray *collectors;           /* Collector */
  guint next_collector_id;
  guint running_collectors;     /* > 0 while collectors are being called */
  GArray *model_hooks;          /* guint ids of hooks installed on the model */
  gboolean collectors_hooked;
};

static const NnicMaskerVTable *
masker_vt (const NnicAlgorithm *a)
{
  return a->info->vtable;
}

static const NnicPrunerVTable *
pruner_vt (const NnicAlgorithm *a)
{
  return a->info->vtable;
}

static const NnicQuantizerVTable *
quantizer_vt (const NnicAlgorithm *a)
{
  return a->info->vtable;
}

/* ---- hooks on the model and the optimizer ---- */

static void
pre_forward (NnicModel *m, guint node, gpointer user_data)
{
  (void) m;
  (void) node;
  NnicWrapper *w = user_data;
  NnicCompressor *c = w->compressor;
  if (c->mode == MODE_QUANTIZER) {
    const NnicQuantizerVTable *vt = quantizer_vt (c->algorithm);
    if (w->qweight && vt->quantize_weight)
      vt->quantize_weight (c->state, w, w->weight->value, w->qweight);
    return;
  }
  /* Without an optimizer to hook, weights may have changed anywhere:
   * re-apply the masks before every forward, as NNI's wrapper does. */
  if (!c->optimizer)
    nnic_wrapper_apply_masks (w);
}

/* Keeps a copy of x in *saved for quant_backward (reallocated only when
 * the batch shape changes). */
static void
save_copy (NnicTensor **saved, const NnicTensor *x)
{
  if (!*saved || !nnic_tensor_same_shape (*saved, x)) {
    nnic_tensor_free (*saved);
    *saved = nnic_tensor_new_like (x, NULL);
  }
  if (*saved)
    memcpy ((*saved)->data, x->data, nnic_tensor_nbytes (x));
}

/* Quantizes a tensor in place, keeping the float original when the
 * quantizer has its own backward (which needs it). */
static void
quantize_in_place (NnicWrapper *w, NnicQuantType type, NnicTensor *x)
{
  NnicCompressor *c = w->compressor;
  const NnicQuantizerVTable *vt = quantizer_vt (c->algorithm);
  void (*fn) (gpointer, NnicWrapper *, NnicTensor *) =
      type == NNIC_QUANT_INPUT ? vt->quantize_input : vt->quantize_output;
  if (!fn)
    return;
  if (vt->quant_backward)
    save_copy (type == NNIC_QUANT_INPUT ? &w->pre_input : &w->pre_output, x);
  fn (c->state, w, x);
}

static void
quantize_input (NnicModel *m, guint node, NnicTensor *x, gpointer user_data)
{
  (void) m;
  (void) node;
  quantize_in_place (user_data, NNIC_QUANT_INPUT, x);
}

/* quant_backward for an input or output: d/d(float) from d/d(quantized). */
static void
quant_grad_tensor (NnicWrapper *w, NnicQuantType type, NnicTensor *grad)
{
  NnicCompressor *c = w->compressor;
  const NnicQuantizerVTable *vt = quantizer_vt (c->algorithm);
  NnicTensor *x = type == NNIC_QUANT_INPUT ? w->pre_input : w->pre_output;
  if (vt->quant_backward && x && nnic_tensor_same_shape (x, grad))
    vt->quant_backward (c->state, w, type, x, grad);
}

static void
input_grad (NnicModel *m, guint node, NnicTensor *grad, gpointer user_data)
{
  (void) m;
  (void) node;
  quant_grad_tensor (user_data, NNIC_QUANT_INPUT, grad);
}

static void
output_grad (NnicModel *m, guint node, NnicTensor *grad, gpointer user_data)
{
  (void) m;
  (void) node;
  quant_grad_tensor (user_data, NNIC_QUANT_OUTPUT, grad);
}

static void
post_forward (NnicModel *m, guint node, NnicTensor *output, gpointer user_data)
{
  (void) m;
  (void) node;
  NnicWrapper *w = user_data;
  NnicCompressor *c = w->compressor;
  if (c->mode == MODE_QUANTIZER && (w->quant_types & NNIC_QUANT_OUTPUT))
    quantize_in_place (w, NNIC_QUANT_OUTPUT, output);
  /* A collector may remove itself (or another) while called: removal then
   * only clears its function, and the array is compacted afterwards. */
  c->running_collectors++;
  for (guint i = 0; i < c->collectors->len; i++) {
    Collector *col = &g_array_index (c->collectors, Collector, i);
    if (col->fn)
      col->fn (c, w, output, col->user_data);
  }
  if (--c->running_collectors == 0)
    for (guint i = c->collectors->len; i-- > 0;)
      if (!g_array_index (c->collectors, Collector, i).fn)
        g_array_remove_index (c->collectors, i);
}

/* One-shot pruning: masks not computed yet (a masker that waits for
 * statistics) are asked for again; NNI's update_mask. */
static gboolean
oneshot_update (NnicCompressor *c, GError **error)
{
  const NnicMaskerVTable *vt = masker_vt (c->masker);
  if (c->dependency_aware)
    return nnic_dependency_aware_update (c, vt, c->masker_state, c->masker->info->name, error);
  for (guint i = 0; i < c->wrappers->len; i++) {
    NnicWrapper *w = g_ptr_array_index (c->wrappers, i);
    if (w->if_calculated)
      continue;
    gboolean ready = TRUE;
    double sparsity = nnic_wrapper_config_double (w, "sparsity", 0.0);
    if (!vt->calc_mask (c->masker_state, c, w, i, sparsity, &ready, error)) {
      g_prefix_error (error, "%s: %s: ", c->masker->info->name, nnic_wrapper_name (w));
      return FALSE;
    }
    w->if_calculated = ready;
  }
  return TRUE;
}

static void
after_step (NnicOptimizer *opt, gpointer user_data)
{
  (void) opt;
  NnicCompressor *c = user_data;
  g_autoptr (GError) error = NULL;
  c->steps++;
  gboolean ok = TRUE;
  switch (c->mode) {
  case MODE_ONESHOT:
    ok = oneshot_update (c, &error);
    break;
  case MODE_PRUNER:
    if (pruner_vt (c->algorithm)->step)
      ok = pruner_vt (c->algorithm)->step (c->state, c, &error);
    break;
  case MODE_QUANTIZER:
    if (quantizer_vt (c->algorithm)->step)
      ok = quantizer_vt (c->algorithm)->step (c->state, c, &error);
    break;
  }
  /* A step hook cannot return an error to the training loop: report it. */
  if (!ok)
    g_warning ("after optimizer step %" G_GUINT64_FORMAT ": %s", c->steps, error->message);
  /* The optimizer moved pruned weights off zero: put the zeros back. */
  if (c->mode != MODE_QUANTIZER)
    for (guint i = 0; i < c->wrappers->len; i++)
      nnic_wrapper_apply_masks (g_ptr_array_index (c->wrappers, i));
}

/* ---- creation ---- */

static gboolean
resolve_algorithms (NnicCompressor *c, const char *algorithm, const NnicCompressorOptions *options,
                    GError **error)
{
  if (!(c->algorithm = nnic_load_algorithm (algorithm, error)))
    return FALSE;
  switch (c->algorithm->info->kind) {
  case NNIC_ALGORITHM_MASKER:
    c->mode = MODE_ONESHOT;
    c->masker = c->algorithm;
    return TRUE;
  case NNIC_ALGORITHM_QUANTIZER:
    c->mode = MODE_QUANTIZER;
    return TRUE;
  case NNIC_ALGORITHM_PRUNER: {
    c->mode = MODE_PRUNER;
    const char *name = options && options->masker ? options->masker : "level";
    if (!(c->masker = nnic_load_algorithm (name, error)))
      return FALSE;
    if (c->masker->info->kind != NNIC_ALGORITHM_MASKER) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG, "%s: '%s' is a %s, not a masker", algorithm,
                   name, nnic_algorithm_kind_name (c->masker->info->kind));
      return FALSE;
    }
    return TRUE;
  }
  }
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_PLUGIN, "%s: unknown algorithm kind", algorithm);
  return FALSE;
}

/* The keys accepted: the algorithm's, plus the masker's for a pruner. */
static GArray *
accepted_keys (NnicCompressor *c)
{
  GArray *keys = g_array_new (FALSE, FALSE, sizeof (NnicConfigKey));
  const NnicAlgorithmInfo *infos[2] = { c->algorithm->info, c->masker && c->masker != c->algorithm ? c->masker->info : NULL };
  for (guint k = 0; k < 2; k++)
    if (infos[k] && infos[k]->keys)
      g_array_append_vals (keys, infos[k]->keys, infos[k]->n_keys);
  return keys;
}

static gboolean
wrap_nodes (NnicCompressor *c, const NnicConfigList *config, GError **error)
{
  NnicModel *m = c->model;
  for (guint i = 1; i < nnic_model_n_nodes (m); i++) {
    int e = nnic_config_list_select (config, m, i);
    if (e < 0)
      continue;
    JsonObject *entry = nnic_config_list_entry (config, (guint) e);
    NnicWrapper *w = nnic_wrapper_new (c, m, i, entry, error);
    if (!w)
      return FALSE;
    g_ptr_array_add (c->wrappers, w);
    w->quant_types = c->mode == MODE_QUANTIZER ? nnic_config_entry_quant_types (entry) : 0;
    gboolean needs_weight = c->mode != MODE_QUANTIZER || (w->quant_types & NNIC_QUANT_WEIGHT);
    if (needs_weight && !w->weight) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "config_list[%d] selects '%s' (%s), which has no weight to %s", e,
                   nnic_wrapper_name (w), nnic_wrapper_type (w),
                   c->mode == MODE_QUANTIZER ? "quantize" : "prune");
      return FALSE;
    }
    if ((w->quant_types & NNIC_QUANT_INPUT) &&
        !nnic_model_set_input_transform (m, nnic_wrapper_name (w), quantize_input,
                                         quantizer_vt (c->algorithm)->quant_backward ? input_grad : NULL,
                                         w, error))
      return FALSE;
    guint id = nnic_model_add_pre_forward_hook (m, nnic_wrapper_name (w), pre_forward, w, NULL, error);
    if (!id)
      return FALSE;
    g_array_append_val (c->model_hooks, id);
    if (w->quant_types & NNIC_QUANT_OUTPUT) {
      if (!(id = nnic_model_add_forward_hook (m, nnic_wrapper_name (w), post_forward, w, NULL, error)))
        return FALSE;
      g_array_append_val (c->model_hooks, id);
      if (quantizer_vt (c->algorithm)->quant_backward) {
        if (!(id = nnic_model_add_backward_hook (m, nnic_wrapper_name (w), output_grad, w, NULL, error)))
          return FALSE;
        g_array_append_val (c->model_hooks, id);
      }
    }
  }
  if (c->wrappers->len == 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG, "the config list selects no layer of the model");
    return FALSE;
  }
  return TRUE;
}

NnicCompressor *
nnic_compressor_new (NnicModel *model, const char *algorithm, const NnicConfigList *config,
                     NnicOptimizer *optimizer, const NnicCompressorOptions *options, GError **error)
{
  if (!model || !config) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "a compressor needs a model and a config list");
    return NULL;
  }
  g_autoptr (GArray) keys = NULL;
  NnicCompressor *c = g_new0 (NnicCompressor, 1);
  c->model = model;
  c->optimizer = optimizer;
  c->wrappers = g_ptr_array_new_with_free_func ((GDestroyNotify) nnic_wrapper_free);
  c->collectors = g_array_new (FALSE, TRUE, sizeof (Collector));
  c->model_hooks = g_array_new (FALSE, FALSE, sizeof (guint));
  c->entries = g_ptr_array_new_with_free_func ((GDestroyNotify) json_object_unref);
  c->next_collector_id = 1;
  if (!resolve_algorithms (c, algorithm, options, error))
    goto fail;
  c->dependency_aware = options && options->dependency_aware;
  if (options)
    c->options = *options;
  c->options.masker = NULL; /* the caller's string: resolved above, not kept */
  if (c->dependency_aware && c->mode != MODE_ONESHOT) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                 "dependency-aware pruning needs a filter masker used one-shot, not a %s",
                 nnic_algorithm_kind_name (c->algorithm->info->kind));
    goto fail;
  }
  keys = accepted_keys (c);
  if (!nnic_config_list_check (config, model, c->algorithm->info->kind,
                               (const NnicConfigKey *) keys->data, keys->len, error))
    goto fail;
  if (!wrap_nodes (c, config, error))
    goto fail;
  for (guint i = 0; i < nnic_config_list_len (config); i++)
    g_ptr_array_add (c->entries, json_object_ref (nnic_config_list_entry (config, i)));
  /* The compressor's step hook goes on before the algorithm's own (made in
   * create below), so that, as in NNI, masks are updated first and
   * statistics gathered after (TaylorFO). */
  if (optimizer)
    c->step_hook = nnic_optimizer_add_post_step_hook (optimizer, after_step, c, NULL);
  if (c->mode == MODE_PRUNER || c->mode == MODE_ONESHOT) {
    const NnicMaskerVTable *mv = masker_vt (c->masker);
    if (mv->create && !(c->masker_state = mv->create (c, error)))
      goto fail;
  }
  if (c->mode == MODE_PRUNER && pruner_vt (c->algorithm)->create &&
      !(c->state = pruner_vt (c->algorithm)->create (c, error)))
    goto fail;
  if (c->mode == MODE_QUANTIZER && quantizer_vt (c->algorithm)->create &&
      !(c->state = quantizer_vt (c->algorithm)->create (c, error)))
    goto fail;
  return c;
fail:
  g_prefix_error (error, "%s: ", algorithm ? algorithm : "(null)");
  nnic_compressor_free (c);
  return NULL;
}

void
nnic_compressor_free (NnicCompressor *c)
{
  if (!c)
    return;
  if (c->step_hook)
    nnic_optimizer_remove_post_step_hook (c->optimizer, c->step_hook, NULL);
  for (guint i = 0; i < c->model_hooks->len; i++)
    nnic_model_remove_forward_hook (c->model, g_array_index (c->model_hooks, guint, i), NULL);
  for (guint i = 0; i < c->wrappers->len; i++) {
    NnicWrapper *w = g_ptr_array_index (c->wrappers, i);
    if (w->qweight)
      nnic_model_substitute_param (c->model, w->weight->name, NULL, NULL, NULL, NULL);
    if (w->quant_types & NNIC_QUANT_INPUT)
      nnic_model_set_input_transform (c->model, nnic_wrapper_name (w), NULL, NULL, NULL, NULL);
  }
  if (c->algorithm) {
    if (c->mode == MODE_PRUNER && c->state && pruner_vt (c->algorithm)->destroy)
      pruner_vt (c->algorithm)->destroy (c->state);
    if (c->mode == MODE_QUANTIZER && c->state && quantizer_vt (c->algorithm)->destroy)
      quantizer_vt (c->algorithm)->destroy (c->state);
  }
  if (c->masker && c->masker_state && masker_vt (c->masker)->destroy)
    masker_vt (c->masker)->destroy (c->masker_state);
  for (guint i = 0; i < c->collectors->len; i++) {
    Collector *col = &g_array_index (c->collectors, Collector, i);
    if (col->fn && col->destroy)
      col->destroy (col->user_data);
  }
  g_array_free (c->collectors, TRUE);
  g_array_free (c->model_hooks, TRUE);
  g_ptr_array_free (c->wrappers, TRUE);
  g_ptr_array_free (c->entries, TRUE);
  g_free (c);
}

/* ---- running ---- */

/* Straight-through unless the quantizer has its own backward. */
static void
quant_grad (NnicModel *m, NnicParam *p, const NnicTensor *sub, NnicTensor *g, gpointer user_data)
{
  (void) m;
  (void) sub;
  NnicWrapper *w = user_data;
  NnicCompressor *c = w->compressor;
  const NnicQuantizerVTable *vt = quantizer_vt (c->algorithm);
  /* The gradient buffer is scratch for this call: transform it in place,
   * then add it to the real weight's gradient. */
  vt->quant_backward (c->state, w, NNIC_QUANT_WEIGHT, p->value, g);
  for (int64_t i = 0; i < g->numel; i++)
    p->grad->f32[i] += g->f32[i];
}

static gboolean
setup_quantizer (NnicCompressor *c, GError **error)
{
  const NnicQuantizerVTable *vt = quantizer_vt (c->algorithm);
  for (guint i = 0; i < c->wrappers->len; i++) {
    NnicWrapper *w = g_ptr_array_index (c->wrappers, i);
    if (vt->setup_wrapper && !vt->setup_wrapper (c->state, c, w, error))
      return FALSE;
    if (!(w->quant_types & NNIC_QUANT_WEIGHT) || !vt->quantize_weight)
      continue;
    if (!(w->qweight = nnic_tensor_new_like (w->weight->value, error)))
      return FALSE;
    vt->quantize_weight (c->state, w, w->weight->value, w->qweight);
    if (!nnic_model_substitute_param (c->model, w->weight->name, w->qweight,
                                      vt->quant_backward ? quant_grad : NULL, w, error))
      return FALSE;
  }
  return TRUE;
}

gboolean
nnic_compressor_compress (NnicCompressor *c, GError **error)
{
  switch (c->mode) {
  case MODE_ONESHOT:
    return oneshot_update (c, error);
  case MODE_PRUNER:
    return pruner_vt (c->algorithm)->compress (c->state, c, error);
  case MODE_QUANTIZER:
    return setup_quantizer (c, error);
  }
  return FALSE;
}

gboolean
nnic_compressor_update_epoch (NnicCompressor *c, guint epoch, GError **error)
{
  if (c->mode == MODE_PRUNER && pruner_vt (c->algorithm)->update_epoch)
    return pruner_vt (c->algorithm)->update_epoch (c->state, c, epoch, error);
  if (c->mode == MODE_QUANTIZER && quantizer_vt (c->algorithm)->update_epoch)
    return quantizer_vt (c->algorithm)->update_epoch (c->state, c, epoch, error);
  return TRUE;
}

/* ---- accessors ---- */

NnicModel *
nnic_compressor_model (NnicCompressor *c)
{
  return c->model;
}

NnicOptimizer *
nnic_compressor_optimizer (NnicCompressor *c)
{
  return c->optimizer;
}

guint
nnic_compressor_n_wrappers (const NnicCompressor *c)
{
  return c->wrappers->len;
}

NnicWrapper *
nnic_compressor_wrapper (NnicCompressor *c, guint i)
{
  return i < c->wrappers->len ? g_ptr_array_index (c->wrappers, i) : NULL;
}

NnicWrapper *
nnic_compressor_find_wrapper (NnicCompressor *c, const char *node_name)
{
  for (guint i = 0; i < c->wrappers->len; i++) {
    NnicWrapper *w = g_ptr_array_index (c->wrappers, i);
    if (g_strcmp0 (nnic_wrapper_name (w), node_name) == 0)
      return w;
  }
  return NULL;
}

guint
nnic_compressor_n_config_entries (const NnicCompressor *c)
{
  return c->entries->len;
}

JsonObject *
nnic_compressor_config_entry (NnicCompressor *c, guint i)
{
  return i < c->entries->len ? g_ptr_array_index (c->entries, i) : NULL;
}

double
nnic_compressor_config_double (NnicCompressor *c, guint i, const char *key, double fallback)
{
  JsonObject *e = nnic_compressor_config_entry (c, i);
  JsonNode *n = e ? json_object_get_member (e, key) : NULL;
  if (!n || !JSON_NODE_HOLDS_VALUE (n))
    return fallback;
  GType t = json_node_get_value_type (n);
  return t == G_TYPE_DOUBLE || t == G_TYPE_INT64 || t == G_TYPE_BOOLEAN ? json_node_get_double (n) : fallback;
}

guint64
nnic_compressor_steps (const NnicCompressor *c)
{
  return c->steps;
}


gboolean
nnic_compressor_restore_steps (NnicCompressor *c, guint64 steps)
{
  c->steps = steps;
  return TRUE;
}

const char *
nnic_compressor_algorithm_name (NnicCompressor *c)
{
  return c->algorithm->info->name;
}

const char *
nnic_compressor_masker (const NnicCompressor *c)
{
  return c->masker ? c->masker->info->name : NULL;
}

gboolean
nnic_compressor_train_epoch (NnicCompressor *c, NnicOptimizer *opt, guint epoch, GError **error)
{
  if (!c->options.trainer) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s trains while it prunes and needs a trainer (NnicCompressorOptions.trainer)",
                 c->algorithm->info->name);
    return FALSE;
  }
  return c->options.trainer (c->model, opt, epoch, c->options.trainer_data, error);
}

gboolean
nnic_compressor_evaluate (NnicCompressor *c, double *score, GError **error)
{
  if (!c->options.evaluator) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                 "%s searches by scoring the model and needs an evaluator (NnicCompressorOptions.evaluator)",
                 c->algorithm->info->name);
    return FALSE;
  }
  return c->options.evaluator (c->model, score, c->options.evaluator_data, error);
}

gboolean
nnic_compressor_calc_mask (NnicCompressor *c, NnicWrapper *w, double sparsity, gboolean *ready,
                           GError **error)
{
  if (!c->masker) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "this compressor has no masker");
    return FALSE;
  }
  guint index = 0;
  while (index < c->wrappers->len && g_ptr_array_index (c->wrappers, index) != w)
    index++;
  gboolean dummy;
  return masker_vt (c->masker)->calc_mask (c->masker_state, c, w, index, sparsity,
                                           ready ? ready : &dummy, error);
}

/* ---- collectors ---- */

guint
nnic_compressor_add_activation_collector (NnicCompressor *c, NnicCollectorFn fn, gpointer user_data,
                                          GDestroyNotify destroy, GError **error)
{
  if (!fn) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "an activation collector needs a function");
    return 0;
  }
  /* Forward hooks go on only once somebody collects: none cost nothing. */
  if (!c->collectors_hooked) {
    for (guint i = 0; i < c->wrappers->len; i++) {
      NnicWrapper *w = g_ptr_array_index (c->wrappers, i);
      if (w->quant_types & NNIC_QUANT_OUTPUT)
        continue; /* already hooked for output quantization */
      guint id = nnic_model_add_forward_hook (c->model, nnic_wrapper_name (w), post_forward, w, NULL, error);
      if (!id)
        return 0;
      g_array_append_val (c->model_hooks, id);
    }
    c->collectors_hooked = TRUE;
  }
  Collector col = { c->next_collector_id++, fn, user_data, destroy };
  g_array_append_val (c->collectors, col);
  return col.id;
}

gboolean
nnic_compressor_remove_activation_collector (NnicCompressor *c, guint id, GError **error)
{
  for (guint i = 0; i < c->collectors->len; i++) {
    Collector *slot = &g_array_index (c->collectors, Collector, i);
    if (slot->id != id || !slot->fn)
      continue;
    Collector col = *slot;
    if (c->running_collectors)
      slot->fn = NULL; /* compacted when the running loop ends */
    else
      g_array_remove_index (c->collectors, i);
    if (col.destroy)
      col.destroy (col.user_data);
    return TRUE;
  }
  g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "no activation collector with id %u", id);
  return FALSE;
}

/* ---- export ---- */

static NnicTensor *
mask_as_float (const NnicTensor *mask, GError **error)
{
  NnicTensor *f = nnic_tensor_new (NNIC_DTYPE_F32, mask->ndim, mask->shape, error);
  if (f)
    for (int64_t i = 0; i < mask->numel; i++)
      f->f32[i] = mask->u8[i] ? 1.0f : 0.0f;
  return f;
}

gboolean
nnic_compressor_export (NnicCompressor *c, const char *model_path, const char *masks_path,
                        GError **error)
{
  for (guint i = 0; i < c->wrappers->len; i++)
    nnic_wrapper_apply_masks (g_ptr_array_index (c->wrappers, i));
  if (model_path && !nnic_model_save (c->model, model_path, error))
    return FALSE;
  if (!masks_path)
    return TRUE;
  g_autoptr (NnicTensorDict) d = nnic_tensor_dict_new ();
  for (guint i = 0; i < c->wrappers->len; i++) {
    NnicWrapper *w = g_ptr_array_index (c->wrappers, i);
    const NnicTensor *masks[2] = { w->weight_mask, w->bias_mask };
    const char *suffix[2] = { "weight_mask", "bias_mask" };
    for (guint k = 0; k < 2; k++) {
      if (!masks[k])
        continue;
      g_autofree char *name = g_strconcat (nnic_wrapper_name (w), ".", suffix[k], NULL);
      NnicTensor *f = mask_as_float (masks[k], error);
      if (!f || !nnic_tensor_dict_add (d, name, f, error))
        return FALSE;
    }
  }
  return nnic_safetensors_save (masks_path, d, error);
}

gboolean
nnic_compressor_load_weights (NnicCompressor *c, const char *path, GError **error)
{
  if (!nnic_model_load (c->model, path, error))
    return FALSE;
  for (guint i = 0; i < c->wrappers->len; i++)
    nnic_wrapper_apply_masks (g_ptr_array_index (c->wrappers, i));
  return TRUE;
}

void
nnic_compressor_apply_masks (NnicCompressor *c)
{
  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++)
    nnic_wrapper_apply_masks (nnic_compressor_wrapper (c, i));
}

gboolean
nnic_compressor_check_quant_types (NnicCompressor *c, guint allowed, GError **error)
{
  static const struct {
    NnicQuantType type;
    const char *name;
  } kinds[] = { { NNIC_QUANT_WEIGHT, "weight" }, { NNIC_QUANT_INPUT, "input" }, { NNIC_QUANT_OUTPUT, "output" } };
  for (guint i = 0; i < nnic_compressor_n_config_entries (c); i++) {
    JsonNode *types = json_object_get_member (nnic_compressor_config_entry (c, i), "quant_types");
    JsonArray *a = types && JSON_NODE_HOLDS_ARRAY (types) ? json_node_get_array (types) : NULL;
    for (guint j = 0; a && j < json_array_get_length (a); j++) {
      const char *t = json_array_get_string_element (a, j);
      gboolean ok = FALSE;
      for (guint k = 0; k < G_N_ELEMENTS (kinds); k++)
        ok |= (allowed & kinds[k].type) && !g_strcmp0 (t, kinds[k].name);
      if (ok)
        continue;
      g_autoptr (GString) valid = g_string_new (NULL);
      for (guint k = 0; k < G_N_ELEMENTS (kinds); k++)
        if (allowed & kinds[k].type)
          g_string_append_printf (valid, "%s%s", valid->len ? ", " : "", kinds[k].name);
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_CONFIG,
                   "config_list[%u].quant_types[%u]: '%s' is not supported (valid: %s)", i, j, t ? t : "?",
                   valid->str);
      return FALSE;
    }
  }
  return TRUE;
}
