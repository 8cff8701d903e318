/* ONNX import: what the converters share (core/ops/ files hold each op's
 * converter): messages that name the file, node, op and opset; the
 * outputs a conversion declares; checks of inputs, attributes and windows. */
#include "core/onnx/internal.h"

#include <string.h>

typedef Onnx__NodeProto NP;

/* "[N, 3, 224, 224]" for a per-sample shape. */
char *
nnic_onnx_full_shape (int nd, const int64_t *shape)
{
  g_autofree char *s = nnic_shape_to_string (nd, shape);
  return g_strdup_printf ("[N%s%s", nd ? ", " : "]", s + 1);
}

char *
nnic_onnx_dims_string (int nd, const int64_t *dims)
{
  GString *g = g_string_new ("[");
  for (int i = 0; i < nd; i++) {
    const int64_t k = nnic_onnx_batch_factor (dims[i]);
    if (i)
      g_string_append (g, ", ");
    if (k == 1)
      g_string_append_c (g, 'N');
    else if (k)
      g_string_append_printf (g, "N*%" G_GINT64_FORMAT, k);
    else
      g_string_append_printf (g, "%" G_GINT64_FORMAT, dims[i]);
  }
  g_string_append_c (g, ']');
  return g_string_free (g, FALSE);
}

/* The names the plan gave are reserved for their nodes, which may come
 * later: an extra node must not take one. */
static gboolean
name_taken (NnicOnnxImport *ctx, const char *name)
{
  if (!strcmp (name, "input") || nnic_model_find_node (ctx->m, name) >= 0)
    return TRUE;
  for (size_t i = 0; ctx->names && i < ctx->graph->n_node; i++)
    if (ctx->names[i] && !strcmp (ctx->names[i], name))
      return TRUE;
  return FALSE;
}

char *
nnic_onnx_extra_name (NnicOnnxImport *ctx, const char *base, size_t k)
{
  char *name = g_strdup_printf ("%s.%zu", base, k);
  for (guint n = 1; name_taken (ctx, name); n++) {
    g_free (name);
    name = g_strdup_printf ("%s.%zu_%u", base, k, n);
  }
  return name;
}

void
nnic_onnx_set_merged (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k, gboolean merged)
{
  OnnxValue *v = k < node->n_output ? nnic_onnx_value_lookup (ctx, node->output[k]) : NULL;
  if (v && v->kind == ONNX_VALUE_NODE)
    v->merged = merged;
}

/* Input 0 as a graph value of per-sample rank `rank`. */
OnnxValue *
nnic_onnx_input_of_rank (NnicOnnxImport *ctx, const NP *node, int rank, int64_t shape[NNIC_MAX_DIMS],
               GError **error)
{
  OnnxValue *v = nnic_onnx_input_node (ctx, node, 0, error);
  if (!v)
    return NULL;
  int nd = nnic_onnx_value_shape (ctx, v, shape);
  if (nd != rank) {
    g_autofree char *s = nnic_onnx_full_shape (nd, shape);
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "nnic imports %s on %s inputs only; input '%s' is %s", node->op_type,
                          rank == 3 ? "4-D [N, C, H, W]" : "2-D [N, features]", v->name, s);
    return NULL;
  }
  return v;
}

gboolean
nnic_onnx_const_dims (NnicOnnxImport *ctx, const NP *node, OnnxValue *v, int *nd, int64_t *shape,
            int64_t *numel, GError **error)
{
  if (!nnic_onnx_const_shape (ctx, v, nd, shape, numel, error)) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  return TRUE;
}

gboolean
nnic_onnx_positive_int (NnicOnnxImport *ctx, const NP *node, const char *attr, int64_t v, gboolean zero_ok,
              GError **error)
{
  if (v < (zero_ok ? 0 : 1) || v > 1 << 20) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_FORMAT, "%s value %" G_GINT64_FORMAT
                          " is out of range", attr, v);
    return FALSE;
  }
  return TRUE;
}

gboolean
nnic_onnx_window_attrs (NnicOnnxImport *ctx, const NP *node, const int64_t in_hw[2], int kh, int kw,
              NnicOnnxWindow *w, GError **error)
{
  const int64_t *strides, *dilations, *pads;
  size_t ns, nd, np;
  g_autofree char *auto_pad = NULL;
  if (!nnic_onnx_attr_ints (ctx, node, "strides", 2, &strides, &ns, error) ||
      !nnic_onnx_attr_ints (ctx, node, "dilations", 2, &dilations, &nd, error) ||
      !nnic_onnx_attr_ints (ctx, node, "pads", 4, &pads, &np, error) ||
      !nnic_onnx_attr_string (ctx, node, "auto_pad", "NOTSET", &auto_pad, error))
    return FALSE;
  *w = (NnicOnnxWindow) { .kh = kh, .kw = kw, .sh = 1, .sw = 1, .dh = 1, .dw = 1 };
  for (int i = 0; i < 2; i++) {
    if ((ns && !nnic_onnx_positive_int (ctx, node, "strides", strides[i], FALSE, error)) ||
        (nd && !nnic_onnx_positive_int (ctx, node, "dilations", dilations[i], FALSE, error)))
      return FALSE;
  }
  if (ns) {
    w->sh = (int) strides[0];
    w->sw = (int) strides[1];
  }
  if (nd) {
    w->dh = (int) dilations[0];
    w->dw = (int) dilations[1];
  }
  if (!strcmp (auto_pad, "NOTSET")) {
    for (int i = 0; np && i < 4; i++) {
      if (!nnic_onnx_positive_int (ctx, node, "pads", pads[i], TRUE, error))
        return FALSE;
      w->pads[i] = (int) pads[i];
    }
  } else if (!strcmp (auto_pad, "SAME_UPPER") || !strcmp (auto_pad, "SAME_LOWER")) {
    int k[2] = { kh, kw }, s[2] = { w->sh, w->sw }, d[2] = { w->dh, w->dw };
    for (int i = 0; i < 2; i++) {
      int64_t out = (in_hw[i] + s[i] - 1) / s[i];
      int64_t eff = (int64_t) (k[i] - 1) * d[i] + 1;
      int64_t total = MAX ((out - 1) * s[i] + eff - in_hw[i], 0);
      int64_t small = total / 2, big = total - small;
      gboolean upper = !strcmp (auto_pad, "SAME_UPPER");
      w->pads[i] = (int) (upper ? small : big);
      w->pads[i + 2] = (int) (upper ? big : small);
    }
  } else if (strcmp (auto_pad, "VALID") != 0) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "auto_pad '%s' is not supported (NOTSET, VALID, SAME_UPPER, SAME_LOWER are)",
                          auto_pad);
    return FALSE;
  }
  return TRUE;
}

char *
nnic_onnx_param_name (const char *node, const char *local)
{
  return g_strconcat (node, ".", local, NULL);
}

gboolean
nnic_onnx_state_dict_name (const char *name)
{
  gboolean letter = FALSE;
  if (!name || !*name || g_str_has_prefix (name, "onnx::"))
    return FALSE;
  for (const char *c = name; *c; c++) {
    if (!g_ascii_isalnum (*c) && *c != '_' && *c != '.')
      return FALSE;
    letter |= g_ascii_isalpha (*c) || *c == '_';
  }
  return letter;
}

char *
nnic_onnx_fresh_name (NnicOnnxImport *ctx, const char *base)
{
  char *name = g_strdup (base);
  for (guint k = 1;; k++) {
    gboolean taken = nnic_model_find_node (ctx->m, name) >= 0;
    for (size_t i = 0; !taken && ctx->names && i < ctx->graph->n_node; i++)
      taken = i != ctx->node_index && ctx->names[i] && !strcmp (ctx->names[i], name);
    if (!taken)
      return name;
    g_free (name);
    name = g_strdup_printf ("%s_%u", base, k);
  }
}

gboolean
nnic_onnx_no_attrs (NnicOnnxImport *ctx, const NP *node, GError **error)
{
  static const char *const none[] = { NULL };
  return nnic_onnx_attrs_known (ctx, node, none, error);
}


/* ---- messages ---- */

char *
nnic_onnx_node_label (const NnicOnnxImport *ctx, const Onnx__NodeProto *node)
{
  if (node->name && *node->name)
    return g_strdup (node->name);
  for (size_t i = 0; i < ctx->graph->n_node; i++)
    if (ctx->graph->node[i] == node)
      return g_strdup_printf ("#%zu", i);
  return g_strdup ("?");
}

static char *
node_context (NnicOnnxImport *ctx, const Onnx__NodeProto *node)
{
  g_autofree char *label = nnic_onnx_node_label (ctx, node);
  return g_strdup_printf ("%s: node '%s' (%s, opset %d): ", ctx->source, label,
                          node->op_type ? node->op_type : "no op type", ctx->opset);
}

void
nnic_onnx_node_error (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error, int code,
                      const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_autofree char *where = node_context (ctx, node);
  g_set_error (error, NNIC_ERROR, code, "%s%s", where, msg);
}

void
nnic_onnx_node_prefix (NnicOnnxImport *ctx, const Onnx__NodeProto *node, GError **error)
{
  if (!error || !*error)
    return;
  g_autofree char *where = node_context (ctx, node);
  if (!g_str_has_prefix ((*error)->message, where))
    g_prefix_error (error, "%s", where);
}

/* ---- outputs ---- */

void
nnic_onnx_set_output (NnicOnnxImport *ctx, const Onnx__NodeProto *node, size_t k,
                      const char *nnic_name)
{
  if (k < node->n_output && node->output[k] && *node->output[k])
    nnic_onnx_value_add_node (ctx, node->output[k], nnic_name);
}

gboolean
nnic_onnx_added (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, gboolean ok,
                 GError **error)
{
  if (!ok) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  nnic_onnx_set_output (ctx, node, 0, name);
  return TRUE;
}

gboolean
nnic_onnx_fused (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, gboolean ok,
                 GError **error)
{
  if (!ok) {
    nnic_onnx_node_prefix (ctx, node, error);
    return FALSE;
  }
  const NnicOnnxFusion *f = &ctx->fusion[ctx->node_index];
  for (int k = 0; k < f->n_members; k++)
    nnic_onnx_inputs_done (ctx, ctx->graph->node[f->members[k]]);
  const Onnx__NodeProto *last = f->n_members ? ctx->graph->node[f->members[f->n_members - 1]] : node;
  nnic_onnx_set_output (ctx, last, 0, name);
  return TRUE;
}

gboolean
nnic_onnx_extra_outputs_unused (NnicOnnxImport *ctx, const Onnx__NodeProto *node,
                                size_t first_extra, GError **error)
{
  for (size_t k = first_extra; k < node->n_output; k++)
    if (node->output[k] && *node->output[k] && g_hash_table_contains (ctx->consumed, node->output[k])) {
      nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                            "its output %zu ('%s') is used, but nnic computes only the first",
                            k, node->output[k]);
      return FALSE;
    }
  return TRUE;
}
