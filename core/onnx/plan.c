/* ONNX import: the pass before building. It decides, for each node,
 * whether it becomes an nnic node (Constant, Identity, shape arithmetic on
 * constants and the DequantizeLinear of QDQ weights do not; an Expand of a
 * constant to a shape holding the batch size does), which values
 * are constants, which Adds are a MatMul's bias (PyTorch's Linear on
 * inputs of rank > 2 exports as MatMul + Add), and how many nodes read each
 * constant, so that its data (an initializer's, or a weight dequantized
 * from one) can be freed as soon as the last one has copied it. */
#include "core/onnx/internal.h"

#include <string.h>

gboolean
nnic_onnx_op_folds (const char *op)
{
  static const char *const ops[] = { "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast",
                                     "QuantizeLinear", "DequantizeLinear" };
  for (guint i = 0; i < G_N_ELEMENTS (ops); i++)
    if (!strcmp (op, ops[i]))
      return TRUE;
  return FALSE;
}

/* The name an Identity chain of constants starts from. */
static const char *
root_of (GHashTable *alias, const char *name)
{
  const char *r;
  while ((r = g_hash_table_lookup (alias, name)))
    name = r;
  return name;
}

static gboolean
all_inputs_const (const Onnx__NodeProto *n, GHashTable *consts)
{
  for (size_t k = 0; k < n->n_input; k++)
    if (n->input[k] && *n->input[k] && !g_hash_table_contains (consts, n->input[k]))
      return FALSE;
  return TRUE;
}

static gboolean
any_input_in (const Onnx__NodeProto *n, GHashTable *set)
{
  for (size_t k = 0; k < n->n_input; k++)
    if (n->input[k] && *n->input[k] && g_hash_table_contains (set, n->input[k]))
      return TRUE;
  return FALSE;
}

static const char *
op_of (const Onnx__NodeProto *n)
{
  return n->op_type ? n->op_type : "";
}

gboolean
nnic_onnx_plan (NnicOnnxImport *ctx, GError **error)
{
  (void) error;
  const Onnx__GraphProto *g = ctx->graph;
  size_t n = g->n_node;
  ctx->emits = g_new0 (gboolean, MAX (n, 1));
  ctx->absorbed = g_new0 (gboolean, MAX (n, 1));
  ctx->fused_add = g_new (int, MAX (n, 1));
  ctx->use_counts = g_hash_table_new (g_str_hash, g_str_equal);
  ctx->consumed = g_hash_table_new (g_str_hash, g_str_equal);
  ctx->consts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GHashTable *consts = ctx->consts;
  g_autoptr (GHashTable) alias = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) readers = g_hash_table_new (g_str_hash, g_str_equal);
  /* Constants that may hold the batch size: made from the Shape of a
   * computed tensor (not of a constant, whose shape is fixed). */
  g_autoptr (GHashTable) batch = g_hash_table_new (g_str_hash, g_str_equal);

  GHashTableIter it;
  gpointer key, val;
  g_hash_table_iter_init (&it, ctx->values);
  while (g_hash_table_iter_next (&it, &key, &val))
    if (((OnnxValue *) val)->kind == ONNX_VALUE_CONST)
      g_hash_table_add (consts, g_strdup (key));

  for (size_t i = 0; i < n; i++) {
    const Onnx__NodeProto *node = g->node[i];
    const char *op = op_of (node);
    ctx->fused_add[i] = -1;
    for (size_t k = 0; k < node->n_input; k++)
      if (node->input[k] && *node->input[k]) {
        g_hash_table_add (ctx->consumed, node->input[k]);
        g_hash_table_replace (readers, node->input[k],
                              GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (readers, node->input[k])) + 1));
      }
    gboolean identity_of_const = !strcmp (op, "Identity") && node->n_input >= 1 &&
                                 g_hash_table_contains (consts, node->input[0]);
    gboolean makes_const = !strcmp (op, "Constant") || identity_of_const ||
                           (nnic_onnx_op_folds (op) &&
                            (!strcmp (op, "Shape") || all_inputs_const (node, consts)));
    gboolean with_batch = !strcmp (op, "Shape") ? node->n_input >= 1 && node->input[0] &&
                                                      !g_hash_table_contains (consts, node->input[0])
                                                : any_input_in (node, batch);
    /* A constant expanded to a shape holding the batch (ViT's
     * class_token.expand(n, -1, -1)) is a tensor with the batch: a
     * Parameter node (parameter.c), not a constant. */
    if (makes_const && !strcmp (op, "Expand") && node->n_input >= 2 && node->input[1] &&
        g_hash_table_contains (batch, node->input[1]))
      makes_const = FALSE;
    ctx->emits[i] = !makes_const && strcmp (op, "Identity") != 0;
    if (makes_const)
      for (size_t k = 0; k < node->n_output; k++)
        if (node->output[k] && *node->output[k]) {
          g_hash_table_add (consts, g_strdup (node->output[k]));
          if (with_batch)
            g_hash_table_add (batch, node->output[k]);
        }
    if (identity_of_const && node->n_output >= 1 && node->output[0] && *node->output[0])
      g_hash_table_replace (alias, node->output[0], node->input[0]);
    if (identity_of_const)
      continue; /* an alias: its readers count as the root's */
    for (size_t k = 0; k < node->n_input; k++) {
      if (!node->input[k] || !*node->input[k])
        continue;
      const char *r = root_of (alias, node->input[k]);
      if (g_hash_table_contains (consts, r))
        g_hash_table_replace (ctx->use_counts, (gpointer) r,
                              GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (ctx->use_counts, r)) + 1));
    }
  }
  for (size_t k = 0; k < g->n_output; k++)
    if (g->output[k]->name)
      g_hash_table_add (ctx->consumed, g->output[k]->name);

  /* MatMul (constant right operand) whose only reader is an Add of a
   * constant: one Linear with a bias. */
  for (size_t i = 0; i < n; i++) {
    const Onnx__NodeProto *mm = g->node[i];
    if (strcmp (op_of (mm), "MatMul") || mm->n_input != 2 || mm->n_output < 1 ||
        !g_hash_table_contains (consts, mm->input[1]) || !mm->output[0] || !*mm->output[0])
      continue;
    const char *out = mm->output[0];
    if (GPOINTER_TO_UINT (g_hash_table_lookup (readers, out)) != 1)
      continue;
    gboolean is_graph_output = FALSE;
    for (size_t k = 0; k < g->n_output; k++)
      is_graph_output |= g->output[k]->name && !strcmp (g->output[k]->name, out);
    if (is_graph_output)
      continue;
    for (size_t j = i + 1; j < n; j++) {
      const Onnx__NodeProto *add = g->node[j];
      if (add->n_input != 2 || !add->input[0] || !add->input[1])
        continue;
      int pos = !strcmp (add->input[0], out) ? 0 : !strcmp (add->input[1], out) ? 1 : -1;
      if (pos < 0)
        continue;
      if (!strcmp (op_of (add), "Add") && g_hash_table_contains (consts, add->input[1 - pos])) {
        ctx->fused_add[i] = (int) j;
        ctx->absorbed[j] = TRUE;
        ctx->emits[j] = FALSE;
      }
      break;
    }
  }
  return TRUE;
}
