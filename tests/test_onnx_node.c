/* ONNX backend node tests, run through nnic's importer.
 *
 * Each test directory (the layout of onnx/backend/test/data/node, which
 * Debian's libonnx-testdata installs) holds model.onnx and
 * test_data_set_0/{input,output}_N.pb, serialized TensorProtos. For every
 * directory whose ops are all ones nnic imports, the model is loaded with
 * nnic_model_load_onnx(), the graph's first input is fed input_0 and the
 * model's output compared with output_0; the other graph inputs are bound
 * as constants (NnicOnnxLoadOptions) from their input_N.pb.
 *
 * Decisions, so that a PASS means what it says:
 *  - An extra input is bound as a constant when it sits in a parameter slot
 *    of the ops that read it (Conv W/B, Gemm B/C, MatMul B, the four
 *    BatchNormalization statistics, Clip min/max, Reshape's shape,
 *    Dropout's ratio/training_mode, Pad's pads/constant_value, the axes
 *    of the Reduce ops, Slice's starts/ends/axes/steps, Split's split,
 *    Gather's indices, Expand's shape, LayerNormalization's scale and
 *    bias), or when it is a data operand (Add,
 *    Sub, Mul, Div, Pow, Concat, MatMul A) that broadcasts over the batch
 *    (fewer dimensions
 *    than the first input, or a leading dimension of 1). A data operand
 *    that carries the batch dimension itself (test_add: x and y both
 *    [3, 4, 5]) is a second runtime input, which an nnic model (one data
 *    input) has no way to express: SKIP "second runtime input".
 *  - The first input's first dimension is the batch; nnic models take
 *    their input shape without it.
 *  - Ops outside nnic's list: SKIP naming them, when the importer refuses
 *    the file (it may take them as part of a fused pattern: HardSigmoid +
 *    Mul is one Hardswish; Constant, which torch writes for Reshape's
 *    shape or Clip's bounds, is the importer's too). An importer error of code NNIC_ERROR_UNSUPPORTED (an
 *    attribute, an opset, a shape nnic does not take): SKIP with its
 *    message. Any other importer error, a forward error, a wrong shape or
 *    a value out of tolerance: FAIL.
 *  - Mode: eval, unless the graph is in training form (a
 *    BatchNormalization with training_mode=1, or with its optional
 *    training outputs as torch exports opset < 14 in TRAINING mode; a
 *    Dropout whose training_mode input is true): then training mode, as
 *    the graph means it. A Dropout in training mode with a ratio above 0
 *    is random: SKIP. The model's metadata_props "nnic_test_mode"
 *    ("eval"/"train") overrides this (our own cases use it to check one
 *    training-form file in both modes). Only output_0 is compared (nnic
 *    models have one output; the others are masks, indices, updated
 *    statistics or Split's other parts): a graph with several outputs is
 *    loaded with its first one only.
 *  - Tolerance: |got - want| <= atol + rtol * |want|, with rtol 1e-4,
 *    atol 1e-5 (as ONNX's backend tests), or rtol 1e-3 and atol 1e-4 when
 *    the graph holds a BatchNormalization (a division by a small variance
 *    amplifies float32 rounding).
 *
 * Data: NNIC_ONNX_TESTDATA (directories holding test_* folders, separated
 * by ':'; default Debian's) and our own cases, NNIC_ONNX_CASES (default
 * tests/fixtures/onnx_models/cases). In our own cases every model is meant
 * to import: an importer error there is a FAIL, not a SKIP.
 * NNIC_ONNX_ONLY=GLOB runs the tests whose name matches.
 *
 * Exit status: 1 when a test failed; 77 (skipped) when the node test data
 * is not installed (our own cases still run, and their failures count);
 * 0 otherwise.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nnic/nnic.h>
#include <nnic/onnx.h>

#include "onnx.pb-c.h"

#ifndef NNIC_TEST_FIXTURES
#error "NNIC_TEST_FIXTURES must name tests/fixtures"
#endif

#define DEFAULT_TESTDATA "/usr/share/libonnx-testdata/data/node"


typedef struct {
  int passed, failed, skipped;
  GHashTable *ops_passed;   /* op → number of passing tests using it */
  GHashTable *skip_reasons; /* reason class → GPtrArray of detail, test name, detail, ... */
  GPtrArray *failures;      /* "test: detail" */
} Summary;

typedef enum { RESULT_PASS, RESULT_FAIL, RESULT_SKIP } Result;

/* ---- TensorProto → NnicTensor ---- */

static const char *
onnx_dtype_name (int t)
{
  static const char *const names[] = { "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16",
                                       "INT32", "INT64", "STRING", "BOOL", "FLOAT16", "DOUBLE",
                                       "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16" };
  if (t >= 0 && t < (int) G_N_ELEMENTS (names))
    return names[t];
  return "unknown";
}

/* NULL with *why set (g_free) when the tensor is of a type nnic does not hold. */
static NnicTensor *
tensor_from_proto (const Onnx__TensorProto *tp, char **why)
{
  if (tp->n_dims > NNIC_MAX_DIMS) {
    *why = g_strdup_printf ("%zu dimensions", tp->n_dims);
    return NULL;
  }
  if (tp->n_external_data > 0) {
    *why = g_strdup ("external data");
    return NULL;
  }
  int64_t shape[NNIC_MAX_DIMS];
  for (size_t i = 0; i < tp->n_dims; i++)
    shape[i] = tp->dims[i];
  int dt = tp->has_data_type ? tp->data_type : 0;
  NnicDType nd;
  size_t raw_elem; /* bytes per element in raw_data */
  switch (dt) {
  case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: nd = NNIC_DTYPE_F32; raw_elem = 4; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: nd = NNIC_DTYPE_F32; raw_elem = 8; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: nd = NNIC_DTYPE_I64; raw_elem = 8; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: nd = NNIC_DTYPE_I32; raw_elem = 4; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
  case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: nd = NNIC_DTYPE_U8; raw_elem = 1; break;
  case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: nd = NNIC_DTYPE_I8; raw_elem = 1; break;
  default:
    *why = g_strdup_printf ("dtype %s", onnx_dtype_name (dt));
    return NULL;
  }
  GError *err = NULL;
  NnicTensor *t = nnic_tensor_new (nd, (int) tp->n_dims, shape, &err);
  if (!t) {
    *why = g_strdup (err->message);
    g_error_free (err);
    return NULL;
  }
  size_t n = (size_t) t->numel;
  gboolean ok = TRUE;
  if (tp->has_raw_data && tp->raw_data.len > 0) {
    if (tp->raw_data.len != n * raw_elem) {
      ok = FALSE;
    } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
      for (size_t i = 0; i < n; i++) {
        double v;
        memcpy (&v, tp->raw_data.data + 8 * i, 8);
        t->f32[i] = (float) v;
      }
    } else {
      memcpy (t->data, tp->raw_data.data, n * raw_elem);
    }
  } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
    ok = tp->n_float_data == n;
    for (size_t i = 0; ok && i < n; i++)
      t->f32[i] = tp->float_data[i];
  } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE) {
    ok = tp->n_double_data == n;
    for (size_t i = 0; ok && i < n; i++)
      t->f32[i] = (float) tp->double_data[i];
  } else if (dt == ONNX__TENSOR_PROTO__DATA_TYPE__INT64) {
    ok = tp->n_int64_data == n;
    for (size_t i = 0; ok && i < n; i++)
      t->i64[i] = tp->int64_data[i];
  } else {
    ok = tp->n_int32_data == n;
    for (size_t i = 0; ok && i < n; i++) {
      if (nd == NNIC_DTYPE_I32)
        t->i32[i] = tp->int32_data[i];
      else if (nd == NNIC_DTYPE_U8)
        t->u8[i] = (uint8_t) tp->int32_data[i];
      else
        t->i8[i] = (int8_t) tp->int32_data[i];
    }
  }
  if (!ok) {
    *why = g_strdup_printf ("%s tensor of %zu elements: its data does not match", onnx_dtype_name (dt), n);
    nnic_tensor_free (t);
    return NULL;
  }
  return t;
}

static Onnx__TensorProto *
read_tensor_proto (const char *path, char **why)
{
  g_autofree char *data = NULL;
  gsize len = 0;
  GError *err = NULL;
  if (!g_file_get_contents (path, &data, &len, &err)) {
    *why = g_strdup (err->message);
    g_error_free (err);
    return NULL;
  }
  Onnx__TensorProto *tp = onnx__tensor_proto__unpack (NULL, len, (const uint8_t *) data);
  if (!tp)
    *why = g_strdup_printf ("%s: not a TensorProto", path);
  return tp;
}

/* ---- one test ---- */

/* An op nnic imports (its op table says), computes on constants (shape
 * arithmetic), or how torch writes some constant operands (Reshape's
 * shape): the importer takes it or says it does not. */
static gboolean
op_supported (const char *op)
{
  for (const char *const *o = nnic_onnx_ops (); *o; o++)
    if (strcmp (op, *o) == 0)
      return TRUE;
  for (const char *const *o = nnic_onnx_folded_ops (); *o; o++)
    if (strcmp (op, *o) == 0)
      return TRUE;
  return strcmp (op, "Constant") == 0 || strcmp (op, "Identity") == 0;
}

/* Is position `pos` of `op` a parameter (a weight, a statistic, an option)
 * rather than data flowing through the network? */
static gboolean
parameter_slot (const char *op, size_t pos)
{
  if (pos == 0)
    return FALSE;
  return strcmp (op, "Conv") == 0 || strcmp (op, "Gemm") == 0 || strcmp (op, "MatMul") == 0 ||
         strcmp (op, "BatchNormalization") == 0 || strcmp (op, "Clip") == 0 ||
         strcmp (op, "Reshape") == 0 || strcmp (op, "Dropout") == 0 ||
         strcmp (op, "Expand") == 0 /* shape */ ||
         strcmp (op, "Pad") == 0 /* pads, constant_value */ ||
         (g_str_has_prefix (op, "Reduce") && pos == 1) /* axes */ || strcmp (op, "Slice") == 0 ||
         strcmp (op, "Split") == 0 || strcmp (op, "Gather") == 0 ||
         strcmp (op, "LayerNormalization") == 0 /* scale, bias */;
}

static const Onnx__AttributeProto *
find_attr (const Onnx__NodeProto *n, const char *name)
{
  for (size_t i = 0; i < n->n_attribute; i++)
    if (n->attribute[i]->name && strcmp (n->attribute[i]->name, name) == 0)
      return n->attribute[i];
  return NULL;
}

static char *
shape_string_proto (const Onnx__TensorProto *tp)
{
  return nnic_shape_to_string ((int) MIN (tp->n_dims, (size_t) NNIC_MAX_DIMS), tp->dims);
}

typedef struct {
  const char *name;     /* test directory name */
  char *dir;
  gboolean strict;      /* our own cases: importer errors fail */
  Onnx__ModelProto *model;
  GPtrArray *input_names;   /* graph inputs that are not initializers, const char * (in model) */
  GPtrArray *inputs;        /* Onnx__TensorProto * per input_names entry */
  Onnx__TensorProto *expected;
  GPtrArray *ops;           /* distinct op types, const char * */
  char *detail;             /* message for the log */
  char *skip_class;         /* SKIP: the reason's class (for grouping) */
  char *unsupported;        /* ops outside nnic's list, or NULL */
  gboolean training;
  gboolean has_bn;
} Case;

static void
case_clear (Case *c)
{
  g_free (c->dir);
  if (c->inputs) {
    for (guint i = 0; i < c->inputs->len; i++)
      if (g_ptr_array_index (c->inputs, i))
        onnx__tensor_proto__free_unpacked (g_ptr_array_index (c->inputs, i), NULL);
    g_ptr_array_unref (c->inputs);
  }
  if (c->expected)
    onnx__tensor_proto__free_unpacked (c->expected, NULL);
  if (c->input_names)
    g_ptr_array_unref (c->input_names);
  if (c->ops)
    g_ptr_array_unref (c->ops);
  if (c->model)
    onnx__model_proto__free_unpacked (c->model, NULL);
  g_free (c->detail);
  g_free (c->skip_class);
  g_free (c->unsupported);
}

static Result
skip (Case *c, const char *klass, char *detail /* taken */)
{
  c->skip_class = g_strdup (klass);
  c->detail = detail;
  return RESULT_SKIP;
}

static Result
fail (Case *c, char *detail /* taken */)
{
  c->detail = detail;
  return RESULT_FAIL;
}

/* The value a node input has when it is constant: a bound graph input, an
 * initializer or a Constant node's value (how torch writes Dropout's
 * ratio and training_mode). */
static const Onnx__TensorProto *
constant_value (Case *c, const char *name)
{
  for (guint i = 1; i < c->input_names->len; i++)
    if (strcmp (g_ptr_array_index (c->input_names, i), name) == 0)
      return g_ptr_array_index (c->inputs, i);
  const Onnx__GraphProto *g = c->model->graph;
  for (size_t i = 0; i < g->n_initializer; i++)
    if (g->initializer[i]->name && strcmp (g->initializer[i]->name, name) == 0)
      return g->initializer[i];
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    if (strcmp (n->op_type, "Constant") == 0 && n->n_output == 1 && strcmp (n->output[0], name) == 0) {
      const Onnx__AttributeProto *a = find_attr (n, "value");
      return a ? a->t : NULL;
    }
  }
  return NULL;
}

static double
scalar_of (const Onnx__TensorProto *tp)
{
  char *why = NULL;
  NnicTensor *t = tensor_from_proto (tp, &why);
  double v = NAN;
  if (t && t->numel == 1) {
    switch (t->dtype) {
    case NNIC_DTYPE_F32: v = t->f32[0]; break;
    case NNIC_DTYPE_I64: v = (double) t->i64[0]; break;
    case NNIC_DTYPE_I32: v = t->i32[0]; break;
    case NNIC_DTYPE_U8: v = t->u8[0]; break;
    case NNIC_DTYPE_I8: v = t->i8[0]; break;
    }
  }
  g_free (why);
  nnic_tensor_free (t);
  return v;
}

/* Reads the model and the data; decides on the inputs and the mode.
 * RESULT_PASS means "ready to run". */
static Result
prepare (Case *c)
{
  g_autofree char *model_path = g_build_filename (c->dir, "model.onnx", NULL);
  g_autofree char *data_dir = g_build_filename (c->dir, "test_data_set_0", NULL);
  if (!g_file_test (model_path, G_FILE_TEST_IS_REGULAR) || !g_file_test (data_dir, G_FILE_TEST_IS_DIR))
    return skip (c, "no model.onnx and test_data_set_0", g_strdup ("no model.onnx and test_data_set_0"));

  g_autofree char *bytes = NULL;
  gsize len = 0;
  GError *err = NULL;
  if (!g_file_get_contents (model_path, &bytes, &len, &err)) {
    char *d = g_strdup (err->message);
    g_error_free (err);
    return fail (c, d);
  }
  c->model = onnx__model_proto__unpack (NULL, len, (const uint8_t *) bytes);
  if (!c->model || !c->model->graph)
    return fail (c, g_strdup_printf ("%s: not an ONNX ModelProto (protobuf-c)", model_path));
  const Onnx__GraphProto *g = c->model->graph;

  /* Ops. */
  c->ops = g_ptr_array_new ();
  GString *unsupported = g_string_new (NULL);
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    const char *op = n->op_type ? n->op_type : "";
    gboolean seen = FALSE;
    for (guint k = 0; k < c->ops->len; k++)
      seen |= strcmp (g_ptr_array_index (c->ops, k), op) == 0;
    if (!seen)
      g_ptr_array_add (c->ops, (gpointer) op);
    gboolean std_domain = !n->domain || !*n->domain || strcmp (n->domain, "ai.onnx") == 0;
    if ((!std_domain || !op_supported (op)) && !strstr (unsupported->str, op)) {
      if (unsupported->len)
        g_string_append (unsupported, ", ");
      g_string_append (unsupported, op);
      if (!std_domain)
        g_string_append_printf (unsupported, " (domain %s)", n->domain);
    }
    if (strcmp (op, "BatchNormalization") == 0) {
      c->has_bn = TRUE;
      const Onnx__AttributeProto *a = find_attr (n, "training_mode");
      size_t n_out = 0;
      for (size_t k = 0; k < n->n_output; k++)
        n_out += n->output[k] && *n->output[k];
      if ((a && a->i != 0) || n_out > 1)
        c->training = TRUE;
    }
  }
  /* Not a skip yet: the importer may take them as part of a fused pattern
   * (HardSigmoid + Mul is Hardswish). */
  c->unsupported = g_string_free (unsupported, unsupported->len == 0);

  /* Graph inputs that are not initializers, with their data. */
  c->input_names = g_ptr_array_new ();
  c->inputs = g_ptr_array_new ();
  for (size_t i = 0; i < g->n_input; i++) {
    const Onnx__ValueInfoProto *vi = g->input[i];
    gboolean is_init = FALSE;
    for (size_t k = 0; k < g->n_initializer && !is_init; k++)
      is_init = g->initializer[k]->name && vi->name && strcmp (g->initializer[k]->name, vi->name) == 0;
    if (is_init)
      continue;
    if (!vi->type || vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
      return skip (c, "input is not a tensor",
                   g_strdup_printf ("input '%s' is not a tensor (sequence, optional or map)", vi->name));
    guint k = c->input_names->len;
    g_autofree char *fname = g_strdup_printf ("input_%u.pb", k);
    g_autofree char *path = g_build_filename (data_dir, fname, NULL);
    char *why = NULL;
    Onnx__TensorProto *tp = read_tensor_proto (path, &why);
    if (!tp)
      return fail (c, why);
    g_ptr_array_add (c->input_names, vi->name);
    g_ptr_array_add (c->inputs, tp);
  }
  if (c->input_names->len == 0)
    return skip (c, "no graph input", g_strdup ("no graph input (a constant graph)"));
  {
    g_autofree char *path = g_build_filename (data_dir, "output_0.pb", NULL);
    char *why = NULL;
    c->expected = read_tensor_proto (path, &why);
    if (!c->expected)
      return fail (c, why);
  }

  const Onnx__TensorProto *x = g_ptr_array_index (c->inputs, 0);
  int xdt = x->has_data_type ? x->data_type : 0;
  if (xdt != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
    return skip (c, "input not float32",
                 g_strdup_printf ("input '%s' is %s (nnic runs float32)",
                                  (const char *) g_ptr_array_index (c->input_names, 0),
                                  onnx_dtype_name (xdt)));
  int edt = c->expected->has_data_type ? c->expected->data_type : 0;
  if (edt != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
    return skip (c, "output not float32", g_strdup_printf ("output_0 is %s", onnx_dtype_name (edt)));
  if (x->n_dims < 1)
    return skip (c, "scalar input", g_strdup ("the first input is a scalar: no batch dimension"));

  /* Which extra inputs are constants. */
  for (guint k = 1; k < c->input_names->len; k++) {
    const char *name = g_ptr_array_index (c->input_names, k);
    const Onnx__TensorProto *v = g_ptr_array_index (c->inputs, k);
    gboolean data_use = FALSE;
    for (size_t i = 0; i < g->n_node; i++)
      for (size_t p = 0; p < g->node[i]->n_input; p++)
        if (strcmp (g->node[i]->input[p], name) == 0 && !parameter_slot (g->node[i]->op_type, p))
          data_use = TRUE;
    gboolean broadcasts = v->n_dims < x->n_dims || (v->n_dims > 0 && v->dims[0] == 1);
    if (data_use && !broadcasts) {
      g_autofree char *vs = shape_string_proto (v);
      g_autofree char *xs = shape_string_proto (x);
      return skip (c, "second runtime input",
                   g_strdup_printf ("second runtime input '%s' %s: it carries the batch dimension of '%s' %s, "
                                    "and an nnic model has one data input",
                                    name, vs, (const char *) g_ptr_array_index (c->input_names, 0), xs));
    }
  }

  /* The mode our own cases ask for. */
  const char *forced = NULL;
  for (size_t i = 0; i < c->model->n_metadata_props; i++) {
    const Onnx__StringStringEntryProto *e = c->model->metadata_props[i];
    if (e->key && e->value && strcmp (e->key, "nnic_test_mode") == 0)
      forced = e->value;
  }
  if (forced) {
    c->training = strcmp (forced, "train") == 0;
    return RESULT_PASS;
  }

  /* Dropout in training mode. */
  for (size_t i = 0; i < g->n_node; i++) {
    const Onnx__NodeProto *n = g->node[i];
    if (strcmp (n->op_type, "Dropout") != 0 || n->n_input < 3 || !*n->input[2])
      continue;
    const Onnx__TensorProto *t = constant_value (c, n->input[2]);
    if (!t || scalar_of (t) == 0)
      continue;
    c->training = TRUE;
    double ratio = 0.5;
    if (n->n_input >= 2 && *n->input[1]) {
      const Onnx__TensorProto *r = constant_value (c, n->input[1]);
      ratio = r ? scalar_of (r) : NAN;
    }
    if (!(ratio == 0))
      return skip (c, "random output",
                   g_strdup_printf ("training-mode Dropout with ratio %g: the output depends on the generator",
                                    ratio));
  }
  return RESULT_PASS;
}

static Result
run_case (Case *c, double *max_diff)
{
  Result r = prepare (c);
  if (r != RESULT_PASS)
    return r;

  /* Constants. */
  guint n_const = c->input_names->len - 1;
  const char **names = g_new0 (const char *, n_const + 1);
  const NnicTensor **values = g_new0 (const NnicTensor *, n_const + 1);
  NnicTensor *x = NULL;
  NnicModel *m = NULL;
  GError *err = NULL;
  guint made = 0;
  g_autofree char *model_path = g_build_filename (c->dir, "model.onnx", NULL);
  for (guint k = 1; k < c->input_names->len; k++) {
    char *why = NULL;
    NnicTensor *t = tensor_from_proto (g_ptr_array_index (c->inputs, k), &why);
    if (!t) {
      r = skip (c, "constant of a type nnic does not hold",
                g_strdup_printf ("input '%s': %s", (const char *) g_ptr_array_index (c->input_names, k), why));
      g_free (why);
      goto out;
    }
    names[made] = g_ptr_array_index (c->input_names, k);
    values[made++] = t;
  }
  {
    char *why = NULL;
    x = tensor_from_proto (g_ptr_array_index (c->inputs, 0), &why);
    if (!x) {
      r = fail (c, g_strdup_printf ("input_0: %s", why));
      g_free (why);
      goto out;
    }
  }

  NnicOnnxLoadOptions opts = { .n_constants = n_const, .constant_names = names,
                               .constant_values = (const NnicTensor *const *) values };
  Onnx__GraphProto *g = c->model->graph;
  if (g->n_output > 1) {
    /* the first output only (restored before the model is freed) */
    const size_t n_output = g->n_output;
    g->n_output = 1;
    gsize len = onnx__model_proto__get_packed_size (c->model);
    g_autofree guint8 *buf = g_malloc (MAX (len, 1));
    onnx__model_proto__pack (c->model, buf);
    g->n_output = n_output;
    m = nnic_model_load_onnx_from_data (buf, len, model_path, &opts, &err);
  } else {
    m = nnic_model_load_onnx (model_path, &opts, &err);
  }
  if (!m) {
    /* The message names the file first: drop it (the log names the test). */
    const char *msg = err->message;
    if (g_str_has_prefix (msg, model_path) && g_str_has_prefix (msg + strlen (model_path), ": "))
      msg += strlen (model_path) + 2;
    if (!c->strict && err->domain == NNIC_ERROR && err->code == NNIC_ERROR_UNSUPPORTED &&
        c->unsupported)
      r = skip (c, "op not supported", g_strdup (c->unsupported));
    else if (!c->strict && err->domain == NNIC_ERROR && err->code == NNIC_ERROR_UNSUPPORTED)
      r = skip (c, "nnic: unsupported", g_strdup (msg));
    else
      r = fail (c, g_strdup_printf ("import (error code %d, %s): %s", err->code,
                                    err->domain == NNIC_ERROR ? "NNIC_ERROR" : g_quark_to_string (err->domain),
                                    msg));
    goto out;
  }
  nnic_model_set_training (m, c->training);
  nnic_model_set_seed (m, 1);
  const NnicTensor *y = nnic_model_forward (m, x, &err);
  if (!y) {
    r = fail (c, g_strdup_printf ("forward: %s", err->message));
    goto out;
  }

  /* Compare. */
  const Onnx__TensorProto *e = c->expected;
  gboolean same_shape = (size_t) y->ndim == e->n_dims;
  for (int d = 0; same_shape && d < y->ndim; d++)
    same_shape = y->shape[d] == e->dims[d];
  if (!same_shape) {
    g_autofree char *ys = nnic_shape_to_string (y->ndim, y->shape);
    g_autofree char *es = shape_string_proto (e);
    r = fail (c, g_strdup_printf ("output shape %s, expected %s", ys, es));
    goto out;
  }
  {
    char *why = NULL;
    g_autoptr (NnicTensor) want = tensor_from_proto (e, &why);
    if (!want) {
      r = fail (c, g_strdup_printf ("output_0: %s", why));
      g_free (why);
      goto out;
    }
    double rtol = c->has_bn ? 1e-3 : 1e-4, atol = c->has_bn ? 1e-4 : 1e-5;
    double worst = 0, worst_excess = 0;
    int64_t worst_i = -1, bad = 0;
    for (int64_t i = 0; i < y->numel; i++) {
      double got = y->f32[i], w = want->f32[i];
      double d = fabs (got - w);
      if (isnan (got) != isnan (w) || (!isnan (w) && isinf (w) && got != w))
        d = INFINITY;
      else if (isnan (got) || isinf (w))
        d = 0;
      if (d > worst)
        worst = d;
      double excess = d - (atol + rtol * fabs (w));
      if (excess > 0) {
        bad++;
        if (worst_i < 0 || excess > worst_excess) {
          worst_excess = excess;
          worst_i = i;
        }
      }
    }
    *max_diff = worst;
    if (bad > 0) {
      r = fail (c, g_strdup_printf ("max abs diff %.3g; %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT
                                    " values out of tolerance (rtol %g, atol %g), worst at %" G_GINT64_FORMAT
                                    ": got %.7g, want %.7g",
                                    worst, bad, y->numel, rtol, atol, worst_i, y->f32[worst_i],
                                    want->f32[worst_i]));
      goto out;
    }
    c->detail = g_strdup_printf ("max abs diff %.3g", worst);
    r = RESULT_PASS;
  }

out:
  if (err)
    g_error_free (err);
  nnic_model_free (m);
  nnic_tensor_free (x);
  for (guint k = 0; k < made; k++)
    nnic_tensor_free ((NnicTensor *) values[k]);
  g_free (names);
  g_free (values);
  return r;
}

/* ---- the runs ---- */

static void
record (Summary *s, Case *c, Result r, double seconds)
{
  g_autofree char *ops = NULL;
  if (c->ops) {
    g_ptr_array_add (c->ops, NULL);
    ops = g_strjoinv (",", (char **) c->ops->pdata);
    g_ptr_array_remove_index (c->ops, c->ops->len - 1);
  }
  const char *mode = c->training ? " [train mode]" : "";
  switch (r) {
  case RESULT_PASS:
    s->passed++;
    for (guint k = 0; k < c->ops->len; k++) {
      const char *op = g_ptr_array_index (c->ops, k);
      g_hash_table_insert (s->ops_passed, g_strdup (op),
                           GINT_TO_POINTER (GPOINTER_TO_INT (g_hash_table_lookup (s->ops_passed, op)) + 1));
    }
    printf ("PASS %s (%s)%s: %s, %.2f s\n", c->name, ops, mode, c->detail, seconds);
    break;
  case RESULT_FAIL:
    s->failed++;
    g_ptr_array_add (s->failures, g_strdup_printf ("%s: %s", c->name, c->detail));
    printf ("FAIL %s (%s)%s: %s\n", c->name, ops ? ops : "?", mode, c->detail);
    break;
  case RESULT_SKIP: {
    s->skipped++;
    GPtrArray *list = g_hash_table_lookup (s->skip_reasons, c->skip_class);
    if (!list) {
      list = g_ptr_array_new_with_free_func (g_free);
      g_hash_table_insert (s->skip_reasons, g_strdup (c->skip_class), list);
    }
    /* Pairs: detail, test name. */
    g_ptr_array_add (list, g_strdup (c->detail));
    g_ptr_array_add (list, g_strdup (c->name));
    printf ("SKIP %s [%s]: %s\n", c->name, c->skip_class, c->detail);
    break;
  }
  }
  fflush (stdout);
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Runs every test_* directory of `root`. FALSE when root is not a directory. */
static gboolean
run_dir (Summary *s, const char *root, gboolean strict, const char *only)
{
  GDir *d = g_dir_open (root, 0, NULL);
  if (!d)
    return FALSE;
  g_autoptr (GPtrArray) names = g_ptr_array_new_with_free_func (g_free);
  const char *e;
  while ((e = g_dir_read_name (d)))
    if (g_str_has_prefix (e, "test_") && (!only || g_pattern_match_simple (only, e)))
      g_ptr_array_add (names, g_strdup (e));
  g_dir_close (d);
  g_ptr_array_sort (names, compare_strings);
  printf ("== %s (%u tests%s)\n", root, names->len, strict ? "; our own cases: import errors fail" : "");
  for (guint i = 0; i < names->len; i++) {
    Case c = { 0 };
    c.name = g_ptr_array_index (names, i);
    c.dir = g_build_filename (root, c.name, NULL);
    c.strict = strict;
    double diff = 0;
    gint64 t0 = g_get_monotonic_time ();
    Result r = run_case (&c, &diff);
    record (s, &c, r, (double) (g_get_monotonic_time () - t0) / 1e6);
    case_clear (&c);
  }
  return TRUE;
}

int
main (void)
{
  Summary s = { 0 };
  s.ops_passed = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  s.skip_reasons = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, (GDestroyNotify) g_ptr_array_unref);
  s.failures = g_ptr_array_new_with_free_func (g_free);
  const char *only = g_getenv ("NNIC_ONNX_ONLY");
  gint64 t0 = g_get_monotonic_time ();

  const char *env = g_getenv ("NNIC_ONNX_TESTDATA");
  g_auto (GStrv) roots = g_strsplit (env && *env ? env : DEFAULT_TESTDATA, ":", -1);
  gboolean have_node_data = FALSE;
  for (int i = 0; roots[i]; i++) {
    if (!*roots[i])
      continue;
    if (run_dir (&s, roots[i], FALSE, only))
      have_node_data = TRUE;
    else
      printf ("ONNX node test data not found at %s (apt-get install libonnx-testdata, or set "
              "NNIC_ONNX_TESTDATA)\n", roots[i]);
  }
  const char *cases_env = g_getenv ("NNIC_ONNX_CASES");
  g_autofree char *cases = cases_env && *cases_env
                               ? g_strdup (cases_env)
                               : g_build_filename (NNIC_TEST_FIXTURES, "onnx_models", "cases", NULL);
  if (!run_dir (&s, cases, TRUE, only)) {
    printf ("FAIL our own cases: %s is not a directory\n", cases);
    s.failed++;
    g_ptr_array_add (s.failures, g_strdup_printf ("%s: not a directory", cases));
  }

  /* The report. */
  printf ("\n== ops with passing tests:");
  g_autoptr (GPtrArray) ops = g_ptr_array_new ();
  GHashTableIter it;
  gpointer k, v;
  g_hash_table_iter_init (&it, s.ops_passed);
  while (g_hash_table_iter_next (&it, &k, &v))
    g_ptr_array_add (ops, k);
  g_ptr_array_sort (ops, compare_strings);
  for (guint i = 0; i < ops->len; i++) {
    const char *op = g_ptr_array_index (ops, i);
    printf (" %s (%d)", op, GPOINTER_TO_INT (g_hash_table_lookup (s.ops_passed, op)));
  }
  printf ("%s\n", ops->len ? "" : " none");
  printf ("== ops in nnic's list with no passing test:");
  int none = 0;
  for (const char *const *o = nnic_onnx_ops (); *o; o++)
    if (!g_hash_table_contains (s.ops_passed, *o)) {
      printf (" %s", *o);
      none++;
    }
  printf ("%s\n", none ? "" : " none");

  g_autoptr (GPtrArray) reasons = g_ptr_array_new ();
  g_hash_table_iter_init (&it, s.skip_reasons);
  while (g_hash_table_iter_next (&it, &k, &v))
    g_ptr_array_add (reasons, k);
  g_ptr_array_sort (reasons, compare_strings);
  for (guint i = 0; i < reasons->len; i++) {
    const char *reason = g_ptr_array_index (reasons, i);
    GPtrArray *list = g_hash_table_lookup (s.skip_reasons, reason);
    printf ("== skipped, %s (%u):\n", reason, list->len / 2);
    /* One line per distinct detail, with the tests that share it. */
    g_autoptr (GHashTable) done = g_hash_table_new (g_str_hash, g_str_equal);
    for (guint j = 0; j < list->len; j += 2) {
      const char *detail = g_ptr_array_index (list, j);
      if (g_hash_table_contains (done, detail))
        continue;
      g_hash_table_add (done, (gpointer) detail);
      GString *tests = g_string_new (NULL);
      for (guint q = j; q < list->len; q += 2)
        if (strcmp (g_ptr_array_index (list, q), detail) == 0)
          g_string_append_printf (tests, "%s%s", tests->len ? ", " : "",
                                  (const char *) g_ptr_array_index (list, q + 1));
      printf ("   %s <- %s\n", detail, tests->str);
      g_string_free (tests, TRUE);
    }
  }
  if (s.failures->len) {
    printf ("== failed (%u):\n", s.failures->len);
    for (guint j = 0; j < s.failures->len; j++)
      printf ("   %s\n", (const char *) g_ptr_array_index (s.failures, j));
  }
  printf ("(%.1f s)\n", (double) (g_get_monotonic_time () - t0) / 1e6);
  printf ("onnx node tests: %d passed, %d failed, %d skipped\n", s.passed, s.failed, s.skipped);
  fflush (stdout);

  int status = s.failed ? 1 : have_node_data ? 0 : 77;
  g_hash_table_unref (s.ops_passed);
  g_hash_table_unref (s.skip_reasons);
  g_ptr_array_unref (s.failures);
  return status;
}
