/* ONNX import: names of the nnic nodes.
 *
 * torch.onnx.export (1.13 and later) names nodes after the module scope
 * they come from: "/layer1/layer1.0/conv1/Conv" is the Conv of module
 * `layer1.0.conv1`. Each scope component is the module's attribute name,
 * with the numeric atoms of Sequential children glued to their parent's
 * ("layer1.0" inside "layer1"), so the module path is rebuilt by letting
 * a component that extends the previous one ("layer1" → "layer1.0")
 * replace it.
 *
 * The rules, in order:
 *  1. A scoped node whose module scope holds no other emitting node and no
 *     submodule's nodes (a leaf module with one op) takes the module path:
 *     `/fc/Gemm` → `fc`, `/features/features.0/Conv` → `features.0`.
 *  2. A node without a module scope whose weight (input 1 of Conv, Gemm,
 *     MatMul, BatchNormalization, LayerNormalization) is a constant
 *     `P.weight` takes `P` (exports of older exporters: `Conv_0` reading
 *     `features.0.weight`): an initializer, or the DequantizeLinear output
 *     of a QDQ weight. Eval-mode exports fold BatchNorm into Conv and name
 *     the weights `onnx::Conv_123`; the scope of rule 1 names those. So
 *     does a scoped node among others of its module that reads its
 *     module's own `P.weight` (torchvision's LayerNorm2d: permute,
 *     layer_norm, permute in `features.0.1`).
 *  3. Any other scoped node is a functional op inside a module: the module
 *     path, a dot and its op part in lower case — `/layer1/layer1.0/Add` →
 *     `layer1.0.add`, `/Flatten` (no module) → `flatten`, `/MaxPool_1` →
 *     `maxpool_1`. Lower case keeps them apart from PyTorch's module names
 *     of the same place only where they could meet; rule 4 does the rest.
 *  4. Names from rules 1 and 2 are taken first (so a module keeps its name
 *     whatever node comes before it), then those of rule 3 and of unscoped
 *     nodes (their ONNX name, or "<OpType>_<index>" when they have none);
 *     a name already taken, or "input", gets a suffix `_1`, `_2`, ...
 */
#include "core/onnx/internal.h"

#include <string.h>

gboolean
nnic_onnx_torch_scope (const char *name, char **module_path, char **op_part)
{
  *module_path = NULL;
  *op_part = NULL;
  if (!name || name[0] != '/' || !name[1])
    return FALSE;
  g_auto (GStrv) parts = g_strsplit (name + 1, "/", -1);
  guint n = g_strv_length (parts);
  for (guint i = 0; i < n; i++)
    if (!*parts[i])
      return FALSE;
  g_autoptr (GPtrArray) path = g_ptr_array_new ();
  for (guint i = 0; i + 1 < n; i++) {
    const char *c = parts[i];
    if (path->len > 0) {
      const char *last = g_ptr_array_index (path, path->len - 1);
      size_t ll = strlen (last);
      if (!strncmp (c, last, ll) && c[ll] == '.') {
        path->pdata[path->len - 1] = (gpointer) c;
        continue;
      }
    }
    g_ptr_array_add (path, (gpointer) c);
  }
  g_ptr_array_add (path, NULL);
  *module_path = g_strjoinv (".", (char **) path->pdata);
  *op_part = g_strdup (parts[n - 1]);
  return TRUE;
}

static gboolean
has_weight (const char *op)
{
  return !strcmp (op, "Conv") || !strcmp (op, "Gemm") || !strcmp (op, "MatMul") ||
         !strcmp (op, "BatchNormalization") || !strcmp (op, "LayerNormalization");
}

/* Rule 2: "P" from a constant "P.weight" read as the node's weight (the
 * plan knows the constants that folding will make). */
static char *
name_from_weight (NnicOnnxImport *ctx, const Onnx__NodeProto *node)
{
  if (!node->op_type || !has_weight (node->op_type) || node->n_input < 2 || !node->input[1])
    return NULL;
  const char *w = node->input[1];
  if (!g_hash_table_contains (ctx->consts, w) || !g_str_has_suffix (w, ".weight") ||
      g_str_has_prefix (w, "onnx::") || strlen (w) == strlen (".weight"))
    return NULL;
  return g_strndup (w, strlen (w) - strlen (".weight"));
}

static char *
take_unique (GHashTable *taken, const char *base)
{
  char *name = g_strdup (base);
  for (guint k = 1; g_hash_table_contains (taken, name); k++) {
    g_free (name);
    name = g_strdup_printf ("%s_%u", base, k);
  }
  g_hash_table_add (taken, name);
  return name;
}

void
nnic_onnx_assign_names (NnicOnnxImport *ctx)
{
  const Onnx__GraphProto *g = ctx->graph;
  size_t n = g->n_node;
  ctx->names = g_new0 (char *, n + 1);
  g_autofree char **scope = g_new0 (char *, n + 1);
  g_autofree char **op_part = g_new0 (char *, n + 1);
  g_autoptr (GHashTable) same = g_hash_table_new (g_str_hash, g_str_equal);    /* scope → count */
  g_autoptr (GHashTable) parents = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);

  for (size_t i = 0; i < n; i++) {
    if (!ctx->emits[i] || !nnic_onnx_torch_scope (g->node[i]->name, &scope[i], &op_part[i]))
      continue;
    if (!*scope[i])
      continue;
    g_hash_table_replace (same, scope[i],
                          GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (same, scope[i])) + 1));
    for (const char *dot = strchr (scope[i], '.'); dot; dot = strchr (dot + 1, '.'))
      g_hash_table_add (parents, g_strndup (scope[i], (gsize) (dot - scope[i])));
  }

  /* the strong names: rules 1 and 2 */
  g_autofree char **strong = g_new0 (char *, n + 1);
  for (size_t i = 0; i < n; i++) {
    if (!ctx->emits[i])
      continue;
    if (scope[i] && *scope[i]) {
      if (GPOINTER_TO_UINT (g_hash_table_lookup (same, scope[i])) == 1 &&
          !g_hash_table_contains (parents, scope[i])) {
        strong[i] = g_strdup (scope[i]);
      } else {
        char *w = name_from_weight (ctx, g->node[i]);
        if (w && !strcmp (w, scope[i]))
          strong[i] = w;
        else
          g_free (w);
      }
    } else {
      strong[i] = name_from_weight (ctx, g->node[i]);
    }
  }

  GHashTable *taken = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  g_hash_table_add (taken, g_strdup ("input"));
  for (size_t i = 0; i < n; i++)
    if (strong[i])
      ctx->names[i] = take_unique (taken, strong[i]);
  for (size_t i = 0; i < n; i++) {
    if (!ctx->emits[i] || strong[i])
      continue;
    const Onnx__NodeProto *node = g->node[i];
    g_autofree char *base = NULL;
    if (scope[i]) {
      g_autofree char *op = g_ascii_strdown (op_part[i], -1);
      base = *scope[i] ? g_strconcat (scope[i], ".", op, NULL) : g_strdup (op);
    } else if (node->name && *node->name) {
      base = g_strdup (node->name);
    } else {
      base = g_strdup_printf ("%s_%zu", node->op_type ? node->op_type : "node", i);
    }
    ctx->names[i] = take_unique (taken, base);
  }
  /* ctx->names own copies; the table's keys are the same strings */
  for (size_t i = 0; i < n; i++)
    if (ctx->names[i])
      ctx->names[i] = g_strdup (ctx->names[i]);
  g_hash_table_destroy (taken);
  for (size_t i = 0; i < n; i++) {
    g_free (scope[i]);
    g_free (op_part[i]);
    g_free (strong[i]);
  }
}
