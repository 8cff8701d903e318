/* ONNX import: the pass before building. It decides, for each node,
 * whether it becomes an nnic node (Constant, Identity, shape arithmetic on
 * constants and the DequantizeLinear of QDQ weights do not; an Expand of a
 * constant to a shape holding the batch size does), which values
 * are constants, which Adds are a MatMul's bias (PyTorch's Linear on
 * inputs of rank > 2 exports as MatMul + Add), which patterns of nodes are
 * one activation (torch's GELU, SiLU, Hardswish before opset 14), and how
 * many nodes read each constant, so that its data (an initializer's, or a
 * weight dequantized from one) can be freed as soon as the last one has
 * copied it. */
#include "core/onnx/internal.h"

#include <math.h>
#include <string.h>

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

static const char *
op_of (const Onnx__NodeProto *n)
{
  return n->op_type ? n->op_type : "";
}

/* May a constant made by `n` hold the batch symbol (NNIC_ONNX_BATCH)? The
 * shape of a graph value starts with it; folding passes it on, except
 * into values that cannot hold it (booleans, the fill of
 * ConstantOfShape, a Range, shapes of constants). Over-approximated: an
 * Expand found not to need the batch is folded after all (import.c). */
static gboolean
may_hold_batch (const Onnx__NodeProto *n, GHashTable *consts, GHashTable *batchy)
{
  static const char *const clean[] = { "ConstantOfShape", "Equal", "Not", "Range", NULL };
  const char *op = op_of (n);
  if (!strcmp (op, "Shape")) {
    const Onnx__AttributeProto *start = nnic_onnx_attr (n, "start");
    return n->n_input >= 1 && !g_hash_table_contains (consts, n->input[0]) && !(start && start->i > 0);
  }
  if (g_strv_contains (clean, op))
    return FALSE;
  for (size_t k = 0; k < n->n_input; k++)
    if (n->input[k] && g_hash_table_contains (batchy, n->input[k]))
      return TRUE;
  return FALSE;
}

gboolean
nnic_onnx_plan (NnicOnnxImport *ctx, GError **error)
{
  (void) error;
  const Onnx__GraphProto *g = ctx->graph;
  size_t n = g->n_node;
  ctx->emits = g_new0 (gboolean, MAX (n, 1));
  ctx->fused_add = g_new (int, MAX (n, 1));
  ctx->use_counts = g_hash_table_new (g_str_hash, g_str_equal);
  ctx->consumed = g_hash_table_new (g_str_hash, g_str_equal);
  ctx->consts = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  GHashTable *consts = ctx->consts;
  g_autoptr (GHashTable) alias = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) readers = g_hash_table_new (g_str_hash, g_str_equal);
  g_autoptr (GHashTable) batchy = g_hash_table_new (g_str_hash, g_str_equal);

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
    gboolean holds_batch = may_hold_batch (node, consts, batchy);
    const NnicOnnxFold *fold = nnic_onnx_fold_find (op);
    /* an Expand of a constant to a shape holding the batch is a graph
     * value: the converter's */
    gboolean makes_const = !strcmp (op, "Constant") || identity_of_const ||
                           (fold && (!strcmp (op, "Shape") || all_inputs_const (node, consts)) &&
                            !(holds_batch && fold->to_converter && nnic_op_for_onnx (op)));
    ctx->emits[i] = !makes_const && strcmp (op, "Identity") != 0 && !ctx->absorbed[i];
    if (makes_const)
      for (size_t k = 0; k < node->n_output; k++)
        if (node->output[k] && *node->output[k]) {
          g_hash_table_add (consts, g_strdup (node->output[k]));
          if (holds_batch)
            g_hash_table_add (batchy, node->output[k]);
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
      if (!strcmp (op_of (add), "Add") && g_hash_table_contains (consts, add->input[1 - pos]) &&
          !ctx->absorbed[j] && !ctx->fusion[j].op) {
        ctx->fused_add[i] = (int) j;
        ctx->absorbed[j] = TRUE;
        ctx->emits[j] = FALSE;
      }
      break;
    }
  }
  return TRUE;
}

/* ---- fused patterns ----
 *
 * An activation torch writes as several nodes becomes one nnic node when
 * the values between them are read by nothing else (nor are graph
 * outputs): a model that reuses x / sqrt(2) elsewhere keeps the nodes.
 * The constants must be one-element float initializers or Constant nodes
 * of the pattern's value (to float precision). Mul and Add operands may
 * come in either order. Recognised (x is the input):
 *   GELU:      Div(x, sqrt 2) or Mul(x, 1/sqrt 2) → Erf → Add(·, 1) →
 *              the product of x, that and 0.5 in any grouping;
 *   GELU tanh: x*x*x (two Muls, or Pow(x, 3)) → Mul(·, 0.044715) →
 *              Add(x, ·) → Mul(·, sqrt(2/pi)) → Tanh → Add(·, 1) → the
 *              same product;
 *   SiLU:      Sigmoid(x) → Mul(x, ·);
 *   Hardswish: HardSigmoid(x; alpha 1/6, beta 1/2) → Mul(x, ·). */

typedef struct {
  NnicOnnxImport *ctx;
  const Onnx__GraphProto *g;
  GHashTable *producer;  /* value → node index + 1 */
  GHashTable *reads;     /* value → inputs reading it (graph outputs: many) */
  GHashTable *reader;    /* value → the index + 1 of a node reading it */
  GHashTable *inits;     /* initializer name → Onnx__TensorProto */
  /* the pattern being matched */
  int nodes[NNIC_ONNX_FUSION_MAX + 1];
  int n_nodes;
} Matcher;

static const Onnx__NodeProto *
node_at (const Matcher *mt, int i)
{
  return i >= 0 ? mt->g->node[i] : NULL;
}

static int
producer (const Matcher *mt, const char *value)
{
  return value ? GPOINTER_TO_INT (g_hash_table_lookup (mt->producer, value)) - 1 : -1;
}

/* The one node reading `value`, when exactly one does (and it is no graph
 * output), else -1. */
static int
only_reader (const Matcher *mt, const char *value)
{
  if (!value || GPOINTER_TO_UINT (g_hash_table_lookup (mt->reads, value)) != 1)
    return -1;
  return GPOINTER_TO_INT (g_hash_table_lookup (mt->reader, value)) - 1;
}

/* Node i is `op` of the default domain with n inputs, no attributes, and
 * is in no pattern yet. */
static gboolean
is_op (const Matcher *mt, int i, const char *op, size_t n_inputs)
{
  const Onnx__NodeProto *n = node_at (mt, i);
  if (!n || strcmp (op_of (n), op) != 0 || n->n_input != n_inputs || n->n_output < 1 ||
      !n->output[0] || !*n->output[0] || (n->domain && *n->domain && strcmp (n->domain, "ai.onnx")) ||
      mt->ctx->absorbed[i] || mt->ctx->fusion[i].op)
    return FALSE;
  for (size_t k = 0; k < n_inputs; k++)
    if (!n->input[k] || !*n->input[k])
      return FALSE;
  for (int k = 0; k < mt->n_nodes; k++)
    if (mt->nodes[k] == i)
      return FALSE;
  return !strcmp (op, "HardSigmoid") || n->n_attribute == 0;
}

static const Onnx__AttributeProto *
find_attr (const Onnx__NodeProto *n, const char *name)
{
  for (size_t k = 0; k < n->n_attribute; k++)
    if (n->attribute[k]->name && !strcmp (n->attribute[k]->name, name))
      return n->attribute[k];
  return NULL;
}

/* A one-element FLOAT tensor's value. */
static gboolean
tensor_scalar (NnicOnnxImport *ctx, const Onnx__TensorProto *t, double *out)
{
  int nd;
  int64_t shape[NNIC_MAX_DIMS], numel;
  float v;
  if (!t || !t->has_data_type || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT ||
      !nnic_onnx_tensor_shape (ctx, t, "constant", &nd, shape, &numel, NULL) || numel != 1 ||
      !nnic_onnx_tensor_check (ctx, t, "constant", NULL) ||
      !nnic_onnx_tensor_read_f32 (ctx, t, "constant", &v, 1, NULL))
    return FALSE;
  *out = v;
  return TRUE;
}

/* `value` is a one-element float constant within float rounding of `want`. */
static gboolean
is_scalar (const Matcher *mt, const char *value, double want)
{
  double v;
  const Onnx__TensorProto *t = g_hash_table_lookup (mt->inits, value);
  if (t) {
    if (!tensor_scalar (mt->ctx, t, &v))
      return FALSE;
  } else {
    const Onnx__NodeProto *c = node_at (mt, producer (mt, value));
    if (!c || strcmp (op_of (c), "Constant") != 0 || c->n_attribute != 1)
      return FALSE;
    const Onnx__AttributeProto *a = c->attribute[0];
    if (a->name && !strcmp (a->name, "value_float") && a->has_f)
      v = a->f;
    else if (!(a->name && !strcmp (a->name, "value") && tensor_scalar (mt->ctx, a->t, &v)))
      return FALSE;
  }
  return fabs (v - want) <= 1e-6 * fabs (want);
}

/* Node i is a binary `op` with one operand the constant `want` (the second
 * only, when `ordered`); its other operand. */
static const char *
with_scalar (const Matcher *mt, int i, const char *op, double want, gboolean ordered)
{
  if (!is_op (mt, i, op, 2))
    return NULL;
  const Onnx__NodeProto *n = node_at (mt, i);
  if (is_scalar (mt, n->input[1], want))
    return n->input[0];
  if (!ordered && is_scalar (mt, n->input[0], want))
    return n->input[1];
  return NULL;
}

/* Node i is a binary `op` reading `a` and another value: that value. */
static const char *
other_operand (const Matcher *mt, int i, const char *op, const char *a)
{
  if (!is_op (mt, i, op, 2))
    return NULL;
  const Onnx__NodeProto *n = node_at (mt, i);
  return !strcmp (n->input[0], a) ? n->input[1] : !strcmp (n->input[1], a) ? n->input[0] : NULL;
}

static gboolean
take (Matcher *mt, int i)
{
  if (i < 0 || mt->n_nodes >= (int) G_N_ELEMENTS (mt->nodes))
    return FALSE;
  mt->nodes[mt->n_nodes++] = i;
  return TRUE;
}

/* The value `v` (1 + erf or 1 + tanh, read once) times x times 0.5, in any
 * grouping: takes the nodes, the one with the result last. */
static gboolean
half_product (Matcher *mt, const char *x, const char *v)
{
  int p = only_reader (mt, v);
  const char *o = other_operand (mt, p, "Mul", v);
  if (!o || !take (mt, p))
    return FALSE;
  const char *pv = node_at (mt, p)->output[0];
  if (!strcmp (o, x)) { /* (x * v) * 0.5 */
    int f = only_reader (mt, pv);
    const char *r = with_scalar (mt, f, "Mul", 0.5, FALSE);
    return r && !strcmp (r, pv) && take (mt, f);
  }
  if (is_scalar (mt, o, 0.5)) { /* (v * 0.5) * x */
    int f = only_reader (mt, pv);
    const char *r = other_operand (mt, f, "Mul", pv);
    return r && !strcmp (r, x) && take (mt, f);
  }
  /* v * (x * 0.5): the product is p's */
  int h = producer (mt, o);
  const char *r = with_scalar (mt, h, "Mul", 0.5, FALSE);
  if (!r || strcmp (r, x) != 0 || only_reader (mt, o) != p || !take (mt, h))
    return FALSE;
  mt->nodes[mt->n_nodes - 1] = p; /* the result last */
  mt->nodes[mt->n_nodes - 2] = h;
  return TRUE;
}

/* `v`, read only by node `next`, is x*x*x: its nodes taken. */
static gboolean
cube_of (Matcher *mt, const char *v, int next, const char **x)
{
  int c = producer (mt, v);
  if (only_reader (mt, v) != next)
    return FALSE;
  if (is_op (mt, c, "Pow", 2) && is_scalar (mt, node_at (mt, c)->input[1], 3.0)) {
    *x = node_at (mt, c)->input[0];
    return take (mt, c);
  }
  if (!is_op (mt, c, "Mul", 2))
    return FALSE;
  const Onnx__NodeProto *cn = node_at (mt, c);
  for (int k = 0; k < 2; k++) { /* x * (x * x) */
    int s = producer (mt, cn->input[1 - k]);
    const Onnx__NodeProto *sn = node_at (mt, s);
    if (only_reader (mt, cn->input[1 - k]) == c && is_op (mt, s, "Mul", 2) &&
        !strcmp (sn->input[0], sn->input[1]) && !strcmp (sn->input[0], cn->input[k])) {
      *x = cn->input[k];
      return take (mt, s) && take (mt, c);
    }
  }
  return FALSE;
}

static gboolean
match_gelu (Matcher *mt, int e, const char **x)
{
  const Onnx__NodeProto *en = node_at (mt, e);
  if (!is_op (mt, e, "Erf", 1))
    return FALSE;
  const char *d = en->input[0];
  int di = producer (mt, d);
  if (only_reader (mt, d) != e)
    return FALSE;
  if (!(*x = with_scalar (mt, di, "Div", G_SQRT2, TRUE)) &&
      !(*x = with_scalar (mt, di, "Mul", M_SQRT1_2, FALSE)))
    return FALSE;
  int a = only_reader (mt, en->output[0]);
  const char *r = with_scalar (mt, a, "Add", 1.0, FALSE);
  return r && !strcmp (r, en->output[0]) && take (mt, di) && take (mt, e) && take (mt, a) &&
         half_product (mt, *x, node_at (mt, a)->output[0]);
}

static gboolean
match_gelu_tanh (Matcher *mt, int t, const char **x)
{
  if (!is_op (mt, t, "Tanh", 1))
    return FALSE;
  const char *arg = node_at (mt, t)->input[0], *th = node_at (mt, t)->output[0];
  int m4 = producer (mt, arg);
  const char *inner = only_reader (mt, arg) == t
                          ? with_scalar (mt, m4, "Mul", 0.7978845608028654, FALSE)
                          : NULL;
  int a = inner && only_reader (mt, inner) == m4 ? producer (mt, inner) : -1;
  if (!is_op (mt, a, "Add", 2))
    return FALSE;
  const Onnx__NodeProto *an = node_at (mt, a);
  int m3 = -1;
  *x = NULL;
  for (int k = 0; k < 2 && !*x; k++) { /* x + 0.044715 * x^3 */
    const char *scaled = an->input[1 - k], *cx = NULL;
    m3 = producer (mt, scaled);
    const char *cube = only_reader (mt, scaled) == a
                           ? with_scalar (mt, m3, "Mul", 0.044715, FALSE)
                           : NULL;
    const int mark = mt->n_nodes;
    if (cube && cube_of (mt, cube, m3, &cx) && !strcmp (cx, an->input[k]))
      *x = cx;
    else
      mt->n_nodes = mark;
  }
  if (!*x)
    return FALSE;
  int a1 = only_reader (mt, th);
  const char *r = with_scalar (mt, a1, "Add", 1.0, FALSE);
  return r && !strcmp (r, th) && take (mt, m3) && take (mt, a) && take (mt, m4) && take (mt, t) &&
         take (mt, a1) && half_product (mt, *x, node_at (mt, a1)->output[0]);
}

/* Node s (one input x) → Mul(x, s's output). */
static gboolean
times_input (Matcher *mt, int s, const char **x)
{
  const Onnx__NodeProto *sn = node_at (mt, s);
  *x = sn->input[0];
  int p = only_reader (mt, sn->output[0]);
  const char *o = other_operand (mt, p, "Mul", sn->output[0]);
  return o && !strcmp (o, *x) && take (mt, s) && take (mt, p);
}

static gboolean
match_silu (Matcher *mt, int s, const char **x)
{
  return is_op (mt, s, "Sigmoid", 1) && times_input (mt, s, x);
}

/* HardSigmoid with torch's alpha = 1/6 and beta = 1/2 (ONNX's default
 * alpha is 0.2: it must be there). */
static gboolean
match_hardswish (Matcher *mt, int s, const char **x)
{
  if (!is_op (mt, s, "HardSigmoid", 1))
    return FALSE;
  const Onnx__NodeProto *n = node_at (mt, s);
  const Onnx__AttributeProto *alpha = find_attr (n, "alpha"), *beta = find_attr (n, "beta");
  if (n->n_attribute != (size_t) (alpha != NULL) + (beta != NULL) || !alpha || !alpha->has_f ||
      fabs (alpha->f - 1.0 / 6.0) > 1e-6 / 6.0 || (beta && (!beta->has_f || beta->f != 0.5f)))
    return FALSE;
  return times_input (mt, s, x);
}

static void
count_read (Matcher *mt, const char *value, int reader, guint n)
{
  g_hash_table_replace (mt->reads, (gpointer) value,
                        GUINT_TO_POINTER (GPOINTER_TO_UINT (g_hash_table_lookup (mt->reads, value)) + n));
  if (reader >= 0)
    g_hash_table_replace (mt->reader, (gpointer) value, GINT_TO_POINTER (reader + 1));
}

void
nnic_onnx_plan_fusions (NnicOnnxImport *ctx)
{
  static const struct {
    const char *type;
    int variant;
    gboolean (*match) (Matcher *mt, int i, const char **x);
  } patterns[] = {
    { "GELU", 0, match_gelu },
    { "GELU", 1, match_gelu_tanh },
    { "SiLU", 0, match_silu },
    { "Hardswish", 0, match_hardswish },
  };
  const Onnx__GraphProto *g = ctx->graph;
  const size_t n = g->n_node;
  ctx->absorbed = g_new0 (gboolean, MAX (n, 1));
  ctx->fusion = g_new0 (NnicOnnxFusion, MAX (n, 1));
  Matcher mt = {
    .ctx = ctx,
    .g = g,
    .producer = g_hash_table_new (g_str_hash, g_str_equal),
    .reads = g_hash_table_new (g_str_hash, g_str_equal),
    .reader = g_hash_table_new (g_str_hash, g_str_equal),
    .inits = g_hash_table_new (g_str_hash, g_str_equal),
  };
  for (size_t i = 0; i < g->n_initializer; i++)
    if (g->initializer[i]->name)
      g_hash_table_insert (mt.inits, g->initializer[i]->name, g->initializer[i]);
  for (size_t i = 0; i < n; i++) {
    const Onnx__NodeProto *node = g->node[i];
    for (size_t k = 0; k < node->n_input; k++)
      if (node->input[k] && *node->input[k])
        count_read (&mt, node->input[k], (int) i, 1);
    for (size_t k = 0; k < node->n_output; k++)
      if (node->output[k] && *node->output[k] &&
          !g_hash_table_contains (mt.producer, node->output[k]))
        g_hash_table_insert (mt.producer, node->output[k], GINT_TO_POINTER ((int) i + 1));
  }
  for (size_t k = 0; k < g->n_output; k++)
    if (g->output[k]->name)
      count_read (&mt, g->output[k]->name, -1, 2); /* never "read once" */

  for (size_t i = 0; i < n; i++)
    for (guint p = 0; p < G_N_ELEMENTS (patterns); p++) {
      const NnicOp *op = nnic_op_find (patterns[p].type);
      const char *x = NULL;
      mt.n_nodes = 0;
      if (!op || !patterns[p].match (&mt, (int) i, &x))
        continue;
      int head = 0;
      for (int k = 1; k < mt.n_nodes; k++)
        if (mt.nodes[k] < mt.nodes[head])
          head = k;
      NnicOnnxFusion *f = &ctx->fusion[mt.nodes[head]];
      *f = (NnicOnnxFusion) { .op = op, .input = x, .variant = patterns[p].variant };
      for (int k = 0; k < mt.n_nodes; k++)
        if (k != head) {
          f->members[f->n_members++] = mt.nodes[k];
          ctx->absorbed[mt.nodes[k]] = TRUE;
        }
      break;
    }
  g_hash_table_destroy (mt.producer);
  g_hash_table_destroy (mt.reads);
  g_hash_table_destroy (mt.reader);
  g_hash_table_destroy (mt.inits);
}
