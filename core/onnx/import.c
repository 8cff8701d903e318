/* ONNX import: the driver. Reads the file once (mapped), unpacks it with
 * protobuf-c, checks the opset, the initializers and the graph's input and
 * output, then converts node by node in the file's (topological) order,
 * copying each initializer into its parameter and freeing the unpacked
 * copy after its last use. */
#include "core/onnx/internal.h"
#include "core/graph.h"
#include "core/io/file_util.h"

#include <string.h>





static gint
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

const char *const *
nnic_onnx_ops (void)
{
  static GPtrArray *ops;
  if (g_once_init_enter (&ops)) {
    GPtrArray *list = g_ptr_array_new ();
    for (guint i = 0; nnic_ops[i]; i++)
      for (const char *const *o = nnic_ops[i]->onnx_ops; o && *o; o++)
        if (!g_ptr_array_find_with_equal_func (list, *o, g_str_equal, NULL))
          g_ptr_array_add (list, (gpointer) *o);
    g_ptr_array_sort (list, compare_strings);
    g_ptr_array_add (list, NULL);
    g_once_init_leave (&ops, list);
  }
  return (const char *const *) ops->pdata;
}

char *
nnic_onnx_supported_ops (void)
{
  g_autoptr (GPtrArray) ops = g_ptr_array_new ();
  g_ptr_array_add (ops, (gpointer) "Constant");
  g_ptr_array_add (ops, (gpointer) "Identity");
  for (const char *const *o = nnic_onnx_ops (); *o; o++)
    g_ptr_array_add (ops, (gpointer) *o);
  g_ptr_array_sort (ops, compare_strings);
  GString *s = g_string_new (NULL);
  for (guint i = 0; i < ops->len; i++)
    g_string_append_printf (s, "%s, ", (const char *) g_ptr_array_index (ops, i));
  g_string_append (s, "and");
  const char *sep = " ";
  for (const NnicOnnxFold *f = nnic_onnx_folds; f->op; f++)
    if (!nnic_op_for_onnx (f->op)) {
      g_string_append_printf (s, "%s%s", sep, f->op);
      sep = ", ";
    }
  g_string_append (s, " on constants");
  return g_string_free (s, FALSE);
}

static gboolean
is_default_domain (const char *d)
{
  return !d || !*d || !strcmp (d, "ai.onnx");
}

static gboolean
op_known (const char *op)
{
  return !strcmp (op, "Constant") || !strcmp (op, "Identity") || nnic_onnx_op_folds (op) ||
         nnic_op_for_onnx (op);
}

/* Before anything else is checked: every operator of the file that nnic
 * cannot import, each with its first node, in one error. */
static gboolean
check_ops_known (NnicOnnxImport *ctx, GError **error)
{
  g_autoptr (GString) list = g_string_new (NULL);
  g_autoptr (GHashTable) seen = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  const Onnx__NodeProto *first = NULL;
  guint n_bad = 0;
  for (size_t i = 0; i < ctx->graph->n_node; i++) {
    const Onnx__NodeProto *node = ctx->graph->node[i];
    const char *op = node->op_type ? node->op_type : "";
    const gboolean foreign = !is_default_domain (node->domain);
    if ((!foreign && op_known (op)) || !*op || ctx->absorbed[i] || ctx->fusion[i].op)
      continue; /* a fused pattern's nodes need not be ops of their own */
    g_autofree char *key = foreign ? g_strdup_printf ("%s (domain %s)", op, node->domain)
                                   : g_strdup (op);
    if (g_hash_table_contains (seen, key))
      continue;
    g_autofree char *label = nnic_onnx_node_label (ctx, node);
    g_string_append_printf (list, "%s%s (first node '%s')", n_bad ? ", " : "", key, label);
    g_hash_table_add (seen, g_steal_pointer (&key));
    if (!n_bad++)
      first = node;
  }
  if (n_bad == 0)
    return TRUE;
  g_autofree char *known = nnic_onnx_supported_ops ();
  if (n_bad == 1 && is_default_domain (first->domain)) {
    nnic_onnx_node_error (ctx, first, error, NNIC_ERROR_UNSUPPORTED,
                          "operator %s is not supported (nnic imports %s)", first->op_type, known);
  } else if (n_bad == 1) {
    nnic_onnx_node_error (ctx, first, error, NNIC_ERROR_UNSUPPORTED,
                          "operators of domain '%s' are not supported (only the default ONNX "
                          "domain)",
                          first->domain);
  } else {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s (opset %d): %u operators are not supported: %s (nnic imports %s)",
                 ctx->source, ctx->opset, n_bad, list->str, known);
  }
  return FALSE;
}




/* ---- model-level checks ---- */

static gboolean
read_opset (NnicOnnxImport *ctx, const Onnx__ModelProto *mp, GError **error)
{
  for (size_t i = 0; i < mp->n_opset_import; i++) {
    const Onnx__OperatorSetIdProto *o = mp->opset_import[i];
    if (is_default_domain (o->domain))
      ctx->opset = o->has_version ? (int) CLAMP (o->version, G_MININT, G_MAXINT) : 0;
  }
  if (ctx->opset == 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: the model imports no opset of the default ONNX domain", ctx->source);
    return FALSE;
  }
  if (ctx->opset < NNIC_ONNX_OPSET_MIN || ctx->opset > NNIC_ONNX_OPSET_MAX) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s: opset %d is not supported (nnic imports opsets %d to %d; re-export with "
                 "opset_version=13)",
                 ctx->source, ctx->opset, NNIC_ONNX_OPSET_MIN, NNIC_ONNX_OPSET_MAX);
    return FALSE;
  }
  return TRUE;
}

/* Every initializer: a name, sane dims, data of the right length. */
static gboolean
add_initializers (NnicOnnxImport *ctx, GError **error)
{
  const Onnx__GraphProto *g = ctx->graph;
  if (g->n_sparse_initializer > 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s: sparse initializers are not supported", ctx->source);
    return FALSE;
  }
  for (size_t i = 0; i < g->n_initializer; i++) {
    Onnx__TensorProto *t = g->initializer[i];
    if (!t->name || !*t->name) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: initializer %zu has no name",
                   ctx->source, i);
      return FALSE;
    }
    g_autofree char *what = g_strdup_printf ("initializer '%s'", t->name);
    if (nnic_onnx_value_lookup (ctx, t->name)) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: %s is defined twice", ctx->source,
                   what);
      return FALSE;
    }
    if (!nnic_onnx_tensor_check (ctx, t, what, error)) {
      g_prefix_error (error, "%s: ", ctx->source);
      return FALSE;
    }
    nnic_onnx_value_add_proto (ctx, t->name, t, TRUE);
  }
  return TRUE;
}

static gboolean
is_graph_input (const Onnx__GraphProto *g, const char *name)
{
  for (size_t i = 0; i < g->n_input; i++)
    if (g->input[i]->name && !strcmp (g->input[i]->name, name))
      return TRUE;
  return FALSE;
}

static gboolean
bind_constants (NnicOnnxImport *ctx, const NnicOnnxLoadOptions *options, GError **error)
{
  for (guint i = 0; options && i < options->n_constants; i++) {
    const char *name = options->constant_names ? options->constant_names[i] : NULL;
    const NnicTensor *t = options->constant_values ? options->constant_values[i] : NULL;
    if (!name || !t) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: constant %u has no %s",
                   ctx->source, i, name ? "value" : "name");
      return FALSE;
    }
    if (!is_graph_input (ctx->graph, name) || nnic_onnx_value_lookup (ctx, name)) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT,
                   "%s: the constant '%s' is not a graph input (or is bound twice, or is an "
                   "initializer)",
                   ctx->source, name);
      return FALSE;
    }
    if (t->dtype != NNIC_DTYPE_I32) {
      nnic_onnx_value_add_tensor (ctx, name, t, FALSE);
      continue;
    }
    /* int32 (shapes, indices): as int64 */
    NnicTensor *c = nnic_tensor_new (NNIC_DTYPE_I64, t->ndim, t->shape, error);
    if (!c)
      return FALSE;
    for (int64_t k = 0; k < t->numel; k++)
      c->i64[k] = t->i32[k];
    nnic_onnx_value_add_tensor (ctx, name, c, TRUE);
  }
  return TRUE;
}

/* The one graph input that is neither an initializer nor bound: a float
 * tensor [batch, C, H, W] or [batch, F] with known non-batch dims. */
static gboolean
create_model (NnicOnnxImport *ctx, GError **error)
{
  const Onnx__GraphProto *g = ctx->graph;
  const Onnx__ValueInfoProto *in = NULL;
  g_autoptr (GString) names = g_string_new (NULL);
  guint n = 0;
  for (size_t i = 0; i < g->n_input; i++) {
    const Onnx__ValueInfoProto *v = g->input[i];
    if (!v->name || !*v->name) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: graph input %zu has no name",
                   ctx->source, i);
      return FALSE;
    }
    if (nnic_onnx_value_lookup (ctx, v->name))
      continue; /* an initializer listed as an input, or bound */
    g_string_append_printf (names, "%s'%s'", n ? ", " : "", v->name);
    in = v;
    n++;
  }
  if (n == 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: the graph has no input that is not an initializer", ctx->source);
    return FALSE;
  }
  if (n > 1) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s: the graph has %u inputs that are not initializers (%s); nnic models take "
                 "one (bind the others as constants in NnicOnnxLoadOptions)",
                 ctx->source, n, names->str);
    return FALSE;
  }
  const Onnx__TypeProto *type = in->type;
  if (!type || type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !type->tensor_type) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s: the graph input '%s' is not a tensor", ctx->source, in->name);
    return FALSE;
  }
  const Onnx__TypeProto__Tensor *tt = type->tensor_type;
  if (!tt->has_elem_type || tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s: the graph input '%s' is %s; nnic models take float32", ctx->source, in->name,
                 nnic_onnx_dtype_name (tt->has_elem_type ? tt->elem_type : 0));
    return FALSE;
  }
  /* Images [N, C, H, W] and features [N, F] above all, but any rank: a
   * sequence [N, T, D] goes to the ops that take it. */
  if (!tt->shape || tt->shape->n_dim < 1 || tt->shape->n_dim > NNIC_MAX_DIMS) {
    g_autofree char *what = tt->shape ? g_strdup_printf ("rank %zu", tt->shape->n_dim)
                                      : g_strdup ("no shape");
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s: the graph input '%s' has %s; nnic models take a batch of tensors of rank "
                 "1 to %d ([N, C, H, W], [N, features], ...)",
                 ctx->source, in->name, what, NNIC_MAX_DIMS);
    return FALSE;
  }
  int64_t dims[NNIC_MAX_DIMS];
  for (size_t d = 0; d < tt->shape->n_dim; d++) {
    const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[d];
    gboolean known = dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
    dims[d] = known ? dim->dim_value : -1;
    if (d == 0) {
      if (known && dim->dim_value <= 0) {
        /* 0 is an empty batch, valid ONNX; nnic runs at least one sample */
        g_set_error (error, NNIC_ERROR,
                     dim->dim_value == 0 ? NNIC_ERROR_UNSUPPORTED : NNIC_ERROR_FORMAT,
                     "%s: the graph input '%s' has batch size %" G_GINT64_FORMAT, ctx->source,
                     in->name, dim->dim_value);
        return FALSE;
      }
      continue;
    }
    if (!known) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                   "%s: dimension %zu of the graph input '%s' is unknown ('%s'); nnic needs every "
                   "dimension but the batch",
                   ctx->source, d, in->name,
                   dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
                   dim->dim_param ? dim->dim_param : "");
      return FALSE;
    }
    if (dim->dim_value <= 0 || dim->dim_value > G_MAXINT) {
      g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                   "%s: dimension %zu of the graph input '%s' is %" G_GINT64_FORMAT, ctx->source,
                   d, in->name, dim->dim_value);
      return FALSE;
    }
  }
  ctx->batch = dims[0];
  ctx->m = nnic_graph_new ((int) tt->shape->n_dim - 1, dims + 1);
  nnic_onnx_value_add_node (ctx, in->name, "input");
  return TRUE;
}

/* ---- nodes ---- */

static gboolean
convert_constant (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error)
{
  if (node->n_output < 1 || node->n_attribute != 1) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                          "a Constant needs one output and one value attribute");
    return FALSE;
  }
  const Onnx__AttributeProto *a = node->attribute[0];
  const char *an = a->name ? a->name : "";
  if (!strcmp (an, "value") && a->t) {
    g_autofree char *what = g_strdup_printf ("constant '%s'", node->output[0]);
    if (!nnic_onnx_tensor_check (ctx, a->t, what, error)) {
      nnic_onnx_node_prefix (ctx, node, error);
      return FALSE;
    }
    nnic_onnx_value_add_proto (ctx, node->output[0], a->t, FALSE);
    return TRUE;
  }
  NnicTensor *t = NULL;
  int64_t one = 1;
  if (!strcmp (an, "value_float") && (t = nnic_tensor_new (NNIC_DTYPE_F32, 0, &one, NULL)))
    t->f32[0] = a->f;
  else if (!strcmp (an, "value_int") && (t = nnic_tensor_new (NNIC_DTYPE_I64, 0, &one, NULL)))
    t->i64[0] = a->i;
  else if (!strcmp (an, "value_floats")) {
    int64_t n = (int64_t) a->n_floats;
    if ((t = nnic_tensor_new (NNIC_DTYPE_F32, 1, &n, NULL)) && n)
      memcpy (t->f32, a->floats, sizeof (float) * (size_t) n);
  } else if (!strcmp (an, "value_ints")) {
    int64_t n = (int64_t) a->n_ints;
    if ((t = nnic_tensor_new (NNIC_DTYPE_I64, 1, &n, NULL)) && n)
      memcpy (t->i64, a->ints, sizeof (int64_t) * (size_t) n);
  } else {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "a Constant of attribute '%s' is not supported", an);
    return FALSE;
  }
  if (!t) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_MEMORY, "out of memory");
    return FALSE;
  }
  nnic_onnx_value_add_tensor (ctx, node->output[0], t, TRUE);
  return TRUE;
}

/* QuantizeLinear and DequantizeLinear of constants are folded (fold.c):
 * QDQ weights. On values computed in the graph they are quantized
 * inference, which nnic does not import. */
static gboolean
refuse_qdq (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error)
{
  OnnxValue *x = nnic_onnx_input (ctx, node, 0, error);
  if (!x)
    return FALSE;
  if (x->kind == ONNX_VALUE_NODE) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "%s of the activation '%s': nnic imports QDQ weights (DequantizeLinear "
                          "of constant integers), not quantized activations",
                          node->op_type, x->name);
    return FALSE;
  }
  /* a constant with a scale or zero point computed in the graph */
  if (!nnic_onnx_input_const (ctx, node, 1, "scale", error))
    return FALSE;
  GError *local = NULL;
  OnnxValue *z = nnic_onnx_input_opt (ctx, node, 2, &local);
  if (local) {
    g_propagate_error (error, local);
    return FALSE;
  }
  if (z && !nnic_onnx_input_const (ctx, node, 2, "zero point", error))
    return FALSE;
  nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED, "%s is not supported here",
                        node->op_type);
  return FALSE;
}

static gboolean
all_inputs_const (NnicOnnxImport *ctx, const Onnx__NodeProto *node)
{
  for (size_t k = 0; k < node->n_input; k++) {
    const OnnxValue *v = node->input[k] && *node->input[k] ? nnic_onnx_value_lookup (ctx, node->input[k])
                                                           : NULL;
    if (v && v->kind != ONNX_VALUE_CONST)
      return FALSE;
  }
  return TRUE;
}

/* Graph inputs whose batch a Reshape merged into their first dimension:
 * only ops that say how they take them get them, all in one layout when
 * the op keeps it. *merged: 1 when every graph input is merged, 0 when
 * none is (or -1 when the op sorts them out itself). */
static gboolean
merged_inputs (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const NnicOp *nop, int *merged,
               GError **error)
{
  const OnnxValue *first = NULL, *odd = NULL;
  *merged = 0;
  for (size_t k = 0; k < node->n_input; k++) {
    const OnnxValue *v = node->input[k] && *node->input[k] ? nnic_onnx_value_lookup (ctx, node->input[k])
                                                           : NULL;
    if (!v || v->kind != ONNX_VALUE_NODE)
      continue;
    if (!first)
      first = v;
    else if (v->merged != first->merged)
      odd = v;
    *merged |= v->merged;
  }
  if (!*merged || nop->onnx_merged == NNIC_ONNX_MERGED_OWN) {
    *merged = *merged ? -1 : 0;
    return TRUE;
  }
  const OnnxValue *v = first->merged ? first : odd;
  int64_t dims[NNIC_MAX_DIMS + 1];
  g_autofree char *s = nnic_onnx_dims_string (nnic_onnx_value_dims (ctx, v, dims), dims);
  if (nop->onnx_merged == NNIC_ONNX_MERGED_REFUSE) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "its input '%s' is %s, the batch merged into the first dimension by a "
                          "Reshape; nnic imports %s on such values only after a Reshape back to "
                          "[N, ...]",
                          v->name, s, node->op_type);
    return FALSE;
  }
  if (odd) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "its input '%s' is %s, the batch merged into the first dimension by a "
                          "Reshape, and '%s' is not: their elements do not line up",
                          v->name, s, first->merged ? odd->name : first->name);
    return FALSE;
  }
  return TRUE;
}

static gboolean
convert_node (NnicOnnxImport *ctx, guint i, GError **error)
{
  const Onnx__NodeProto *node = ctx->graph->node[i];
  ctx->node_index = i;
  const char *op = node->op_type;
  if (!op || !*op) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "the node has no op type");
    return FALSE;
  }
  if (!is_default_domain (node->domain)) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "operators of domain '%s' are not supported (only the default ONNX "
                          "domain)",
                          node->domain);
    return FALSE;
  }
  for (size_t k = 0; k < node->n_output; k++)
    if (node->output[k] && *node->output[k] && nnic_onnx_value_lookup (ctx, node->output[k])) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT,
                            "its output '%s' is already defined", node->output[k]);
      return FALSE;
    }
  if (!strcmp (op, "Constant"))
    return convert_constant (ctx, node, error);
  if (!strcmp (op, "Identity")) {
    OnnxValue *v = nnic_onnx_input (ctx, node, 0, error);
    if (!v)
      return FALSE;
    if (node->n_output >= 1 && node->output[0] && *node->output[0])
      nnic_onnx_value_alias (ctx, node->output[0], v);
    return TRUE; /* Identity of a constant is no use of it: see plan.c */
  }
  gboolean ok;
  const NnicOp *nop = ctx->fusion[i].op ? ctx->fusion[i].op : nnic_op_for_onnx (op);
  if (!ctx->emits[i]) {
    ok = nnic_onnx_fold (ctx, node, error);
  } else if (!strcmp (op, "QuantizeLinear") || !strcmp (op, "DequantizeLinear")) {
    ok = refuse_qdq (ctx, node, error);
  } else if (nnic_onnx_op_folds (op) && (!nop || all_inputs_const (ctx, node)) &&
             !nnic_onnx_fold_to_converter (ctx, node)) {
    /* found constant after all (the plan takes an Expand whose shape may
     * hold the batch for one that does), or an op nnic folds only, whose
     * folding names the input computed in the graph */
    ok = nnic_onnx_fold (ctx, node, error);
  } else {
    if (!nop) {
      g_autofree char *known = nnic_onnx_supported_ops ();
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "operator %s is not supported (nnic imports %s)", op, known);
      return FALSE;
    }
    gboolean done;
    if (!nnic_onnx_view_convert (ctx, node, nop, ctx->names[i], &done, error))
      return FALSE;
    if (done) {
      nnic_onnx_inputs_done (ctx, node);
      return TRUE;
    }
    int merged;
    if (!merged_inputs (ctx, node, nop, &merged, error))
      return FALSE;
    ok = nop->onnx_import (ctx, node, ctx->names[i], error);
    if (ok && merged > 0 && nop->onnx_merged == NNIC_ONNX_MERGED_KEEP) {
      /* elementwise: the outputs (a fused pattern's: its last node's) are
       * laid out as the inputs are */
      const NnicOnnxFusion *f = &ctx->fusion[i];
      const Onnx__NodeProto *last = f->op && f->n_members
                                        ? ctx->graph->node[f->members[f->n_members - 1]]
                                        : node;
      for (size_t k = 0; k < last->n_output; k++)
        nnic_onnx_set_merged (ctx, last, k, TRUE);
    }
  }
  if (ok)
    nnic_onnx_inputs_done (ctx, node);
  return ok;
}

static gboolean
set_output (NnicOnnxImport *ctx, GError **error)
{
  const Onnx__GraphProto *g = ctx->graph;
  if (g->n_output != 1) {
    g_set_error (error, NNIC_ERROR, g->n_output ? NNIC_ERROR_UNSUPPORTED : NNIC_ERROR_FORMAT,
                 "%s: the graph has %zu outputs; nnic models have exactly one", ctx->source,
                 g->n_output);
    return FALSE;
  }
  const char *name = g->output[0]->name;
  OnnxValue *v = nnic_onnx_value_lookup (ctx, name);
  if (!v) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT,
                 "%s: the graph output '%s' is not produced by any node", ctx->source,
                 name ? name : "");
    return FALSE;
  }
  /* a view (core/onnx/view.c) goes out batch-first, or is refused */
  if (v->kind == ONNX_VALUE_NODE && v->view && !nnic_onnx_view_flatten (ctx, NULL, v, error))
    return FALSE;
  if (v->kind != ONNX_VALUE_NODE || !strcmp (v->node, "input")) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s: the graph output '%s' is %s, not computed by the model", ctx->source, name,
                 v->kind == ONNX_VALUE_NODE ? "the input itself" : "a constant");
    return FALSE;
  }
  if (v->merged) {
    int64_t dims[NNIC_MAX_DIMS + 1];
    g_autofree char *s = nnic_onnx_dims_string (nnic_onnx_value_dims (ctx, v, dims), dims);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_UNSUPPORTED,
                 "%s: the graph output '%s' is %s, the batch merged into its first dimension by "
                 "a Reshape; nnic models give [N, ...], one row per sample",
                 ctx->source, name, s);
    return FALSE;
  }
  return nnic_model_set_output (ctx->m, v->node, error);
}

static void
value_free (OnnxValue *v)
{
  g_free (v->name);
  g_free (v->node);
  g_free (v->view);
  nnic_tensor_free (v->owned);
  g_free (v);
}

static NnicModel *
import (const char *source, const char *base_dir, NnicOnnxProto *proto,
        const NnicOnnxLoadOptions *options, GError **error)
{
  NnicOnnxImport ctx = {
    .source = source,
    .base_dir = (char *) base_dir,
    .proto = proto,
    .batch = -1,
    .values = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL),
    .value_store = g_ptr_array_new_with_free_func ((GDestroyNotify) value_free),
  };
  const Onnx__ModelProto *mp = proto->model;
  gboolean ok = read_opset (&ctx, mp, error);
  if (ok && !(ctx.graph = mp->graph)) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_FORMAT, "%s: the model has no graph", source);
    ok = FALSE;
  }
  if (ok)
    nnic_onnx_plan_fusions (&ctx);
  ok = ok && check_ops_known (&ctx, error) && add_initializers (&ctx, error) && bind_constants (&ctx, options, error) &&
       create_model (&ctx, error) && nnic_onnx_plan (&ctx, error);
  if (ok) {
    GHashTableIter it;
    gpointer key, val;
    g_hash_table_iter_init (&it, ctx.use_counts);
    while (g_hash_table_iter_next (&it, &key, &val)) {
      /* the constants there are already; the others (folded) get theirs when made */
      OnnxValue *v = nnic_onnx_value_lookup (&ctx, key);
      if (v)
        v->uses = GPOINTER_TO_UINT (val);
    }
    nnic_onnx_assign_names (&ctx);
  }
  for (guint i = 0; ok && i < (ctx.graph ? ctx.graph->n_node : 0); i++)
    if (!ctx.absorbed[i])
      ok = convert_node (&ctx, i, error);
  ok = ok && set_output (&ctx, error);

  if (ctx.names)
    for (size_t i = 0; i < ctx.graph->n_node; i++)
      g_free (ctx.names[i]);
  g_free (ctx.names);
  g_free (ctx.emits);
  g_free (ctx.absorbed);
  g_free (ctx.fusion);
  g_free (ctx.fused_add);
  if (ctx.use_counts)
    g_hash_table_destroy (ctx.use_counts);
  if (ctx.consumed)
    g_hash_table_destroy (ctx.consumed);
  if (ctx.consts)
    g_hash_table_destroy (ctx.consts);
  g_hash_table_destroy (ctx.values);
  g_ptr_array_free (ctx.value_store, TRUE);
  if (!ok)
    g_clear_pointer (&ctx.m, nnic_model_free);
  return ctx.m;
}

NnicModel *
nnic_model_load_onnx_from_data (const guint8 *data, gsize size, const char *source,
                                const NnicOnnxLoadOptions *options, GError **error)
{
  g_return_val_if_fail (data != NULL || size == 0, NULL);
  if (!source)
    source = "(buffer)";
  NnicOnnxProto proto;
  if (!nnic_onnx_proto_unpack (&proto, data, size, NULL, source, error))
    return NULL;
  NnicModel *m = import (source, NULL, &proto, options, error);
  nnic_onnx_proto_clear (&proto);
  return m;
}

NnicModel *
nnic_model_load_onnx (const char *path, const NnicOnnxLoadOptions *options, GError **error)
{
  g_return_val_if_fail (path != NULL, NULL);
  GMappedFile *map = nnic_file_map (path, error);
  if (!map)
    return NULL;
  NnicOnnxProto proto;
  gboolean ok = nnic_onnx_proto_unpack (&proto, (const guint8 *) g_mapped_file_get_contents (map),
                                        g_mapped_file_get_length (map), map, path, error);
  g_mapped_file_unref (map); /* everything needed is in the unpacked copy */
  if (!ok)
    return NULL;
  g_autofree char *dir = g_path_get_dirname (path);
  NnicModel *m = import (path, dir, &proto, options, error);
  nnic_onnx_proto_clear (&proto);
  return m;
}
