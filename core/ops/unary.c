/* Elementwise activations on any shape, as torch defines them: Sigmoid,
 * Hardsigmoid, Hardswish, Tanh, Erf, GELU (exact or tanh) and SiLU.
 *
 * Each op is a pair of scalar functions, y = f(x) and dy/dx = f'(x); the
 * UNARY_KERNELS macro turns a pair into the op's forward and backward
 * loops, so the function calls inline and the loops vectorise. The
 * backward recomputes from the input rather than reading node->out, which
 * a forward hook may have rewritten in place (as ReLU does).
 *
 * ONNX: Sigmoid, HardSigmoid, HardSwish, Tanh and Erf import one to one.
 * GELU and SiLU have no ONNX op before opset 20: torch writes them as
 * Div-Erf-Add-Mul-Mul and Sigmoid-Mul, which the import plan fuses
 * (core/onnx/plan.c) and this file's converters build; the export writes
 * the same patterns back. HardSwish needs opset 14: at 13 it exports as
 * HardSigmoid-Mul, as torch writes it, and that pattern fuses back. */
#include "core/ops/kernels.h"
#include "core/onnx/internal.h"
#include "core/onnx/exporter.h"

#include <math.h>
#include <string.h>

extern const NnicOp nnic_op_sigmoid, nnic_op_hardsigmoid, nnic_op_hardswish, nnic_op_tanh,
  nnic_op_erf, nnic_op_gelu, nnic_op_silu;

/* The options of the family (zero for the ops that have none). */
typedef struct {
  double alpha, beta;   /* Hardsigmoid: clamp(alpha * x + beta, 0, 1) */
  gboolean tanh_approx; /* GELU: approximate='tanh' */
} UnarySpec;

/* The scalar functions, as float: f (x, s) and df (x, s). */

static inline float
sigmoid_f (float x, const UnarySpec *s)
{
  (void) s;
  /* exp(-x) overflows to inf for x < -88: 1 / inf is the right 0. */
  return 1.0f / (1.0f + expf (-x));
}

static inline float
sigmoid_df (float x, const UnarySpec *s)
{
  const float y = sigmoid_f (x, s);
  return y * (1.0f - y);
}

/* Written with comparisons rather than fminf/fmaxf so that NaN passes. */
static inline float
hardsigmoid_f (float x, const UnarySpec *s)
{
  float v = (float) s->alpha * x + (float) s->beta;
  v = v < 0.0f ? 0.0f : v;
  return v > 1.0f ? 1.0f : v;
}

/* alpha strictly inside the ramp, 0 on the flat parts and at the kinks
 * (torch's hardsigmoid_backward: -3 < x < 3). */
static inline float
hardsigmoid_df (float x, const UnarySpec *s)
{
  const float v = (float) s->alpha * x + (float) s->beta;
  return (v > 0.0f) & (v < 1.0f) ? (float) s->alpha : 0.0f;
}

/* x * relu6(x + 3) / 6, torch's formula (ONNX HardSwish is the same with
 * alpha = 1/6, beta = 0.5). */
static inline float
hardswish_f (float x, const UnarySpec *s)
{
  (void) s;
  float v = x + 3.0f;
  v = v < 0.0f ? 0.0f : v;
  v = v > 6.0f ? 6.0f : v;
  return x * v / 6.0f;
}

/* torch's hardswish_backward: 0 below -3, x/3 + 1/2 on [-3, 3], 1 above. */
static inline float
hardswish_df (float x, const UnarySpec *s)
{
  (void) s;
  return x < -3.0f ? 0.0f : x <= 3.0f ? x / 3.0f + 0.5f : 1.0f;
}

static inline float
tanh_f (float x, const UnarySpec *s)
{
  (void) s;
  return tanhf (x);
}

static inline float
tanh_df (float x, const UnarySpec *s)
{
  const float y = tanh_f (x, s);
  return 1.0f - y * y;
}

static inline float
erf_f (float x, const UnarySpec *s)
{
  (void) s;
  return erff (x);
}

static inline float
erf_df (float x, const UnarySpec *s)
{
  (void) s;
  return (float) M_2_SQRTPI * expf (-x * x);
}

/* The tanh approximation's constants (torch's): sqrt(2/pi) and 0.044715. */
#define GELU_K ((float) 0.7978845608028654)
#define GELU_C 0.044715f

static inline float
gelu_f (float x, const UnarySpec *s)
{
  if (s->tanh_approx)
    return 0.5f * x * (1.0f + tanhf (GELU_K * (x + GELU_C * x * x * x)));
  return 0.5f * x * (1.0f + erff (x * (float) M_SQRT1_2));
}

/* d/dx x*cdf(x) = cdf(x) + x*pdf(x) (exact); torch's formula for tanh. */
static inline float
gelu_df (float x, const UnarySpec *s)
{
  if (s->tanh_approx) {
    const float t = tanhf (GELU_K * (x + GELU_C * x * x * x));
    return 0.5f * (1.0f + t) +
           0.5f * x * (1.0f - t * t) * GELU_K * (1.0f + 3.0f * GELU_C * x * x);
  }
  const float cdf = 0.5f * (1.0f + erff (x * (float) M_SQRT1_2));
  const float pdf = expf (-0.5f * x * x) * (float) (0.5 * M_2_SQRTPI * M_SQRT1_2);
  return cdf + x * pdf;
}

static inline float
silu_f (float x, const UnarySpec *s)
{
  return x * sigmoid_f (x, s);
}

static inline float
silu_df (float x, const UnarySpec *s)
{
  const float y = sigmoid_f (x, s);
  return y * (1.0f + x * (1.0f - y));
}

/* The op's forward (y = f(x)) and backward (dx += dy * f'(x)). */
#define UNARY_KERNELS(op)                                                          \
  static void op##_forward (NnicNode *node, gboolean training)                   \
  {                                                                               \
    (void) training;                                                              \
    const UnarySpec s = *NODE_SPEC (node, UnarySpec);                             \
    const float *restrict x = node->inputs[0]->out->f32;                          \
    float *restrict y = node->out->f32;                                           \
    const int64_t n = node->out->numel;                                           \
    _Pragma ("omp parallel for schedule(static) if (n > OP_PARALLEL_MIN)")        \
    for (int64_t i = 0; i < n; i++)                                               \
      y[i] = op##_f (x[i], &s);                                                   \
  }                                                                               \
  static void op##_backward (NnicNode *node)                                      \
  {                                                                               \
    if (!node->inputs[0]->gout)                                                   \
      return;                                                                     \
    const UnarySpec s = *NODE_SPEC (node, UnarySpec);                             \
    const float *restrict x = node->inputs[0]->out->f32;                          \
    const float *restrict dy = node->gout->f32;                                   \
    float *restrict dx = node->inputs[0]->gout->f32;                              \
    const int64_t n = node->out->numel;                                           \
    _Pragma ("omp parallel for schedule(static) if (n > OP_PARALLEL_MIN)")        \
    for (int64_t i = 0; i < n; i++)                                               \
      dx[i] += dy[i] * op##_df (x[i], &s);                                        \
  }

UNARY_KERNELS (sigmoid)
UNARY_KERNELS (hardsigmoid)
UNARY_KERNELS (hardswish)
UNARY_KERNELS (tanh)
UNARY_KERNELS (erf)
UNARY_KERNELS (gelu)
UNARY_KERNELS (silu)

static gboolean
unary_setup (NnicNode *node, GError **error)
{
  (void) error;
  const NnicNode *in = node->inputs[0];
  node->shape_ndim = in->shape_ndim;
  memcpy (node->shape, in->shape, sizeof (int64_t) * (size_t) in->shape_ndim);
  return TRUE;
}

static gboolean
hardsigmoid_setup (NnicNode *node, GError **error)
{
  const UnarySpec *s = NODE_SPEC (node, UnarySpec);
  if (!isfinite (s->alpha) || !isfinite (s->beta)) {
    op_error (node, error, NNIC_ERROR_ARGUMENT, "alpha %g and beta %g must be finite", s->alpha,
              s->beta);
    return FALSE;
  }
  return unary_setup (node, error);
}

static gboolean
hardsigmoid_option (const NnicNode *node, const char *key, double *value)
{
  const UnarySpec *s = NODE_SPEC (node, UnarySpec);
  if (!strcmp (key, "alpha"))
    *value = s->alpha;
  else if (!strcmp (key, "beta"))
    *value = s->beta;
  else
    return FALSE;
  return TRUE;
}

/* "approximate": 0 for torch's 'none', 1 for 'tanh'. */
static gboolean
gelu_option (const NnicNode *node, const char *key, double *value)
{
  if (strcmp (key, "approximate") != 0)
    return FALSE;
  *value = NODE_SPEC (node, UnarySpec)->tanh_approx ? 1.0 : 0.0;
  return TRUE;
}

/* ---- ONNX import ---- */

static gboolean
add_unary (NnicOnnxImport *ctx, const char *name, const char *input, const NnicOp *op,
           const UnarySpec *spec, GError **error)
{
  return nnic_graph_add_unary (ctx->m, name, input, op, spec, sizeof *spec, error);
}

/* Sigmoid, Tanh, Erf: no attributes. */
static gboolean
convert_plain (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
               const NnicOp *op, GError **error)
{
  const UnarySpec spec = { 0 };
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  return x && nnic_onnx_no_attrs (ctx, node, error) &&
         nnic_onnx_added (ctx, node, name, add_unary (ctx, name, x->node, op, &spec, error), error);
}

/* A fused pattern (plan.c) whose first node is `node`: one nnic node of
 * `op` reading the pattern's input, its output the pattern's. The
 * importer calls the fused op's converter on the pattern's first node,
 * whatever its ONNX type. */
static gboolean
convert_fused (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
               const NnicOp *op, const UnarySpec *spec, GError **error)
{
  const NnicOnnxFusion *f = &ctx->fusion[ctx->node_index];
  OnnxValue *x = nnic_onnx_value_lookup (ctx, f->input);
  if (!x || x->kind != ONNX_VALUE_NODE) {
    nnic_onnx_node_error (ctx, node, error, NNIC_ERROR_UNSUPPORTED,
                          "%s of '%s': the input must be computed by the graph, not a constant",
                          op->type, f->input);
    return FALSE;
  }
  return nnic_onnx_fused (ctx, node, name, add_unary (ctx, name, x->node, op, spec, error),
                          error);
}

static gboolean
convert_sigmoid (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                 GError **error)
{
  return convert_plain (ctx, node, name, &nnic_op_sigmoid, error);
}

static gboolean
convert_tanh (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  return convert_plain (ctx, node, name, &nnic_op_tanh, error);
}

static gboolean
convert_erf (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  return convert_plain (ctx, node, name, &nnic_op_erf, error);
}

static gboolean
convert_hardsigmoid (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                     GError **error)
{
  static const char *const known[] = { "alpha", "beta", NULL };
  UnarySpec spec = { 0 };
  OnnxValue *x = nnic_onnx_input_node (ctx, node, 0, error);
  if (!x || !nnic_onnx_attrs_known (ctx, node, known, error) ||
      !nnic_onnx_attr_float (ctx, node, "alpha", 0.2, &spec.alpha, error) ||
      !nnic_onnx_attr_float (ctx, node, "beta", 0.5, &spec.beta, error))
    return FALSE;
  return nnic_onnx_added (ctx, node, name,
                          add_unary (ctx, name, x->node, &nnic_op_hardsigmoid, &spec, error),
                          error);
}

/* HardSwish, or HardSigmoid(1/6, 1/2) → Mul fused (plan.c). */
static gboolean
convert_hardswish (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name,
                   GError **error)
{
  if (ctx->fusion[ctx->node_index].op == &nnic_op_hardswish) {
    const UnarySpec spec = { 0 };
    return convert_fused (ctx, node, name, &nnic_op_hardswish, &spec, error);
  }
  return convert_plain (ctx, node, name, &nnic_op_hardswish, error);
}

/* GELU and SiLU come only from fused patterns. */
static gboolean
convert_gelu (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  const UnarySpec spec = { .tanh_approx = ctx->fusion[ctx->node_index].variant == 1 };
  return convert_fused (ctx, node, name, &nnic_op_gelu, &spec, error);
}

static gboolean
convert_silu (NnicOnnxImport *ctx, const Onnx__NodeProto *node, const char *name, GError **error)
{
  const UnarySpec spec = { 0 };
  return convert_fused (ctx, node, name, &nnic_op_silu, &spec, error);
}

/* ---- ONNX export ---- */

static gboolean
export_sigmoid (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  nnic_onnx_export_simple (x, "Sigmoid", i);
  return TRUE;
}

static gboolean
export_tanh (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  nnic_onnx_export_simple (x, "Tanh", i);
  return TRUE;
}

static gboolean
export_erf (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  nnic_onnx_export_simple (x, "Erf", i);
  return TRUE;
}

static gboolean
export_hardsigmoid (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  const UnarySpec *s = NODE_SPEC (nnic_graph_node (x->model, i), UnarySpec);
  Onnx__NodeProto *n = nnic_onnx_export_simple (x, "HardSigmoid", i);
  nnic_onnx_export_attr_float (x, n, "alpha", (float) s->alpha);
  nnic_onnx_export_attr_float (x, n, "beta", (float) s->beta);
  return TRUE;
}

/* The value "NAME.SUFFIX", kept in the arena. */
static const char *
value_name (NnicOnnxExporter *x, guint i, const char *suffix)
{
  return nnic_onnx_export_keep (x, g_strconcat (nnic_model_node_name (x->model, i), ".", suffix,
                                                NULL));
}

/* A scalar float initializer "NAME.SUFFIX". */
static const char *
scalar (NnicOnnxExporter *x, guint i, const char *suffix, float v)
{
  return nnic_onnx_export_constant_f32 (x, value_name (x, i, suffix), &v, 1, TRUE);
}

/* One node of a pattern, `op` (a, b), named and output NAME.OUT, or
 * output NAME itself when out is NULL (the last). The first node of a
 * pattern is named NAME (first): the import names the fused node after
 * it. */
static const char *
binary (NnicOnnxExporter *x, guint i, gboolean first, const char *op, const char *out,
        const char *a, const char *b)
{
  const char *name = nnic_model_node_name (x->model, i);
  const char *v = out ? value_name (x, i, out) : name;
  const char *node = first ? name : out ? v : value_name (x, i, "out");
  Onnx__NodeProto *n = nnic_onnx_export_node (x, op, node, v);
  nnic_onnx_export_add_input (x, n, a);
  if (b)
    nnic_onnx_export_add_input (x, n, b);
  return v;
}

/* HardSwish from opset 14; before, torch's HardSigmoid(1/6, 1/2) * x. */
static gboolean
export_hardswish (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  if (x->opset >= 14) {
    nnic_onnx_export_simple (x, "HardSwish", i);
    return TRUE;
  }
  const char *in = nnic_onnx_export_input (x, i, 0);
  const char *hs = value_name (x, i, "hardsigmoid");
  Onnx__NodeProto *n = nnic_onnx_export_node (x, "HardSigmoid", nnic_model_node_name (x->model, i), hs);
  nnic_onnx_export_add_input (x, n, in);
  nnic_onnx_export_attr_float (x, n, "alpha", 1.0f / 6.0f);
  nnic_onnx_export_attr_float (x, n, "beta", 0.5f);
  binary (x, i, FALSE, "Mul", NULL, in, hs);
  return TRUE;
}

/* torch's patterns (opset 9 to 17): exact, x * (1 + erf(x / sqrt 2)) * 0.5;
 * tanh, 0.5 * (x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x*x*x)))). */
static gboolean
export_gelu (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  const char *in = nnic_onnx_export_input (x, i, 0);
  const char *one = scalar (x, i, "one", 1.0f), *half = scalar (x, i, "half", 0.5f);
  const char *t;
  if (NODE_SPEC (nnic_graph_node (x->model, i), UnarySpec)->tanh_approx) {
    const char *sq = binary (x, i, TRUE, "Mul", "square", in, in);
    const char *cube = binary (x, i, FALSE, "Mul", "cube", in, sq);
    const char *c3 = binary (x, i, FALSE, "Mul", "cube_scaled", scalar (x, i, "coef", GELU_C),
                             cube);
    const char *inner = binary (x, i, FALSE, "Add", "inner", in, c3);
    const char *arg = binary (x, i, FALSE, "Mul", "tanh_in",
                              scalar (x, i, "sqrt_2_over_pi", GELU_K), inner);
    t = binary (x, i, FALSE, "Tanh", "tanh", arg, NULL);
  } else {
    const char *arg = binary (x, i, TRUE, "Div", "erf_in", in,
                              scalar (x, i, "sqrt2", (float) M_SQRT2));
    t = binary (x, i, FALSE, "Erf", "erf", arg, NULL);
  }
  const char *cdf2 = binary (x, i, FALSE, "Add", "one_plus", t, one);
  const char *prod = binary (x, i, FALSE, "Mul", "x_times", in, cdf2);
  binary (x, i, FALSE, "Mul", NULL, prod, half);
  return TRUE;
}

static gboolean
export_silu (NnicOnnxExporter *x, guint i, GError **error)
{
  (void) error;
  const char *in = nnic_onnx_export_input (x, i, 0);
  const char *s = binary (x, i, TRUE, "Sigmoid", "sigmoid", in, NULL);
  binary (x, i, FALSE, "Mul", NULL, in, s);
  return TRUE;
}

/* ---- the ops ---- */

/* They change values: keeps_grid FALSE; channel c stays channel c; any
 * layout of the batch is kept. */
#define UNARY_OP(op, torch_type, onnx, setup_fn, option_fn)                        \
  const NnicOp nnic_op_##op = {                                                  \
    .type = torch_type,                                                          \
    .setup = setup_fn,                                                           \
    .forward = op##_forward,                                                     \
    .backward = op##_backward,                                                   \
    .option = option_fn,                                                         \
    .channels = NNIC_CHANNELS_KEEP,                                              \
    .keeps_grid = FALSE,                                                         \
    .onnx_ops = onnx,                                                            \
    .onnx_import = convert_##op,                                                 \
    .onnx_export = export_##op,                                                  \
    .onnx_merged = NNIC_ONNX_MERGED_KEEP,                                        \
  };

UNARY_OP (sigmoid, "Sigmoid", ((const char *const[]) { "Sigmoid", NULL }), unary_setup, NULL)
UNARY_OP (hardsigmoid, "Hardsigmoid", ((const char *const[]) { "HardSigmoid", NULL }),
          hardsigmoid_setup, hardsigmoid_option)
UNARY_OP (hardswish, "Hardswish", ((const char *const[]) { "HardSwish", NULL }), unary_setup,
          NULL)
UNARY_OP (tanh, "Tanh", ((const char *const[]) { "Tanh", NULL }), unary_setup, NULL)
UNARY_OP (erf, "Erf", ((const char *const[]) { "Erf", NULL }), unary_setup, NULL)
/* No ONNX op of their own before opset 20: imported from the fused patterns. */
UNARY_OP (gelu, "GELU", NULL, unary_setup, gelu_option)
UNARY_OP (silu, "SiLU", NULL, unary_setup, NULL)

/* ---- builders ---- */

static gboolean
add (NnicModel *m, const char *name, const char *input, const NnicOp *op, UnarySpec spec,
     GError **error)
{
  return nnic_graph_add_unary (m, name, input, op, &spec, sizeof spec, error);
}

gboolean
nnic_model_add_sigmoid (NnicModel *m, const char *name, const char *input, GError **error)
{
  return add (m, name, input, &nnic_op_sigmoid, (UnarySpec) { 0 }, error);
}

gboolean
nnic_model_add_hardsigmoid (NnicModel *m, const char *name, const char *input, double alpha,
                            double beta, GError **error)
{
  return add (m, name, input, &nnic_op_hardsigmoid, (UnarySpec) { .alpha = alpha, .beta = beta },
              error);
}

gboolean
nnic_model_add_hardswish (NnicModel *m, const char *name, const char *input, GError **error)
{
  return add (m, name, input, &nnic_op_hardswish, (UnarySpec) { 0 }, error);
}

gboolean
nnic_model_add_tanh (NnicModel *m, const char *name, const char *input, GError **error)
{
  return add (m, name, input, &nnic_op_tanh, (UnarySpec) { 0 }, error);
}

gboolean
nnic_model_add_erf (NnicModel *m, const char *name, const char *input, GError **error)
{
  return add (m, name, input, &nnic_op_erf, (UnarySpec) { 0 }, error);
}

gboolean
nnic_model_add_gelu (NnicModel *m, const char *name, const char *input, gboolean tanh_approx,
                     GError **error)
{
  return add (m, name, input, &nnic_op_gelu, (UnarySpec) { .tanh_approx = tanh_approx }, error);
}

gboolean
nnic_model_add_silu (NnicModel *m, const char *name, const char *input, GError **error)
{
  return add (m, name, input, &nnic_op_silu, (UnarySpec) { 0 }, error);
}
