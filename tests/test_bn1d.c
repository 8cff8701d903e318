/* BatchNorm1d and the built-in bnn_mnist (NNI's BNN example net), against
 * PyTorch: fixtures/bn1d/bn1d.safetensors and bnn_mnist.json, written by
 * fixtures/bn1d/make_bn1d_fixtures.py (whose BN1D_CASES the table below
 * mirrors).
 *
 * BatchNorm1d: forward in training and evaluation mode, dL/dx, dL/dweight
 * and dL/dbias, the running statistics and num_batches_tracked after a
 * training forward, with and without affine; the state_dict layout; setup
 * errors ([N, C, L] refused, naming the node); the spec getter, the type
 * list, channel dependencies and ONNX export.
 * bnn_mnist: node names and types, state_dict names and shapes as torch's;
 * logits in both modes, the loss, dL/dx, the parameter gradients and the
 * BatchNorm buffers as torch's for the same weights; ONNX export and
 * import back. */
#include "testutil.h"

#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <math.h>
#include <string.h>

typedef struct {
  const char *name;
  int n, c;
  double eps, momentum; /* 0: the defaults */
  gboolean affine;
} Case;

static const Case cases[] = {
  { "affine", 6, 5, 1e-3, 0.3, TRUE },
  { "noaffine", 3, 4, 0.0, 0.0, FALSE },
  { "wide", 16, 33, 0.0, 0.0, TRUE },
};

static NnicTensorDict *fixtures;

static void
load_fixtures (void)
{
  GError *err = NULL;
  g_autofree char *path = g_build_filename (NNIC_TEST_FIXTURES, "bn1d", "bn1d.safetensors", NULL);
  fixtures = nnic_safetensors_load (path, &err);
  if (!fixtures)
    g_error ("cannot load %s: %s (make it with fixtures/bn1d/make_bn1d_fixtures.py)", path,
             err->message);
}

static void
free_fixtures (void)
{
  g_clear_pointer (&fixtures, nnic_tensor_dict_free);
}

static const NnicTensor *
fixture (const char *prefix, const char *what)
{
  g_autofree char *key = g_strconcat (prefix, ".", what, NULL);
  const NnicTensor *t = nnic_tensor_dict_get (fixtures, key);
  ck_assert_msg (t != NULL, "the fixture has no %s", key);
  return t;
}

/* |got - want| <= tol * max(1, |want|) everywhere. */
static void
assert_close (const char *what, const NnicTensor *got, const NnicTensor *want, double tol)
{
  ck_assert_msg (got != NULL, "%s: no tensor", what);
  g_autofree char *gs = nnic_shape_to_string (got->ndim, got->shape);
  g_autofree char *ws = nnic_shape_to_string (want->ndim, want->shape);
  ck_assert_msg (got->numel == want->numel && (got->ndim == want->ndim || want->ndim == 0),
                 "%s: shape %s, want %s", what, gs, ws);
  for (int64_t i = 0; i < want->numel; i++) {
    double g = got->f32[i];
    double w = want->dtype == NNIC_DTYPE_I64 ? (double) want->i64[i] : want->f32[i];
    ck_assert_msg (fabs (g - w) <= tol * fmax (1.0, fabs (w)),
                   "%s[%" G_GINT64_FORMAT "]: got %.9g, want %.9g", what, i, g, w);
  }
}

/* For gradients, whose scale varies from tensor to tensor: |got - want|
 * <= tol * the largest |want| (at least 0.01). */
static void
assert_grad_close (const char *what, const NnicTensor *got, const NnicTensor *want, double tol)
{
  double scale = 1e-2;
  for (int64_t i = 0; i < want->numel; i++)
    scale = fmax (scale, fabs (want->f32[i]));
  ck_assert_msg (got != NULL && got->numel == want->numel, "%s: no tensor or a wrong shape", what);
  for (int64_t i = 0; i < want->numel; i++)
    ck_assert_msg (fabs (got->f32[i] - want->f32[i]) <= tol * scale,
                   "%s[%" G_GINT64_FORMAT "]: got %.9g, want %.9g (scale %.3g)", what, i,
                   got->f32[i], want->f32[i], scale);
}

/* ---- BatchNorm1d against torch ---- */

static NnicModel *
build_bn1d (const Case *c)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new_flat (c->c);
  NnicBatchNormSpec spec = { .num_features = c->c, .eps = c->eps, .momentum = c->momentum,
                             .no_affine = !c->affine };
  ck_assert (nnic_model_add_batchnorm1d (m, "bn", NULL, &spec, &err));
  NNIC_ASSERT_NO_ERROR (err);
  return m;
}

/* The case's state_dict from the fixture, under the model's names, loaded
 * strictly (so every entry the model has is given, and nothing else). */
static void
load_case_state (NnicModel *m, const Case *c)
{
  GError *err = NULL;
  g_autoptr (NnicTensorDict) d = nnic_tensor_dict_new ();
  g_autofree char *prefix = g_strconcat (c->name, ".state.", NULL);
  for (guint i = 0; i < nnic_tensor_dict_len (fixtures); i++) {
    const char *name = g_ptr_array_index (fixtures->names, i);
    if (!g_str_has_prefix (name, prefix))
      continue;
    g_autofree char *local = g_strconcat ("bn.", name + strlen (prefix), NULL);
    NnicTensor *t = nnic_tensor_copy (g_ptr_array_index (fixtures->tensors, i), &err);
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert (nnic_tensor_dict_add (d, local, t, &err));
  }
  ck_assert_msg (nnic_model_load_state (m, d, "fixture", TRUE, &err), "%s: %s", c->name,
                 err ? err->message : "");
}

START_TEST (test_against_torch)
{
  const Case *c = &cases[_i];
  GError *err = NULL;
  static const char *const modes[] = { "train", "eval" };
  for (int mi = 0; mi < 2; mi++) {
    g_autoptr (NnicModel) m = build_bn1d (c);
    load_case_state (m, c);
    const gboolean training = mi == 0;
    g_autofree char *pre = g_strconcat (c->name, ".", modes[mi], NULL);
    g_autofree char *what = NULL;
    nnic_model_set_training (m, training);
    nnic_model_set_input_grad (m, TRUE);
    const NnicTensor *x = fixture (c->name, "x");
    const NnicTensor *y = nnic_model_forward (m, x, &err);
    NNIC_ASSERT_NO_ERROR (err);
    what = g_strconcat (pre, ".y", NULL);
    assert_close (what, y, fixture (pre, "y"), 1e-5);

    /* Twice: parameter gradients accumulate, the input's does not. */
    for (int rep = 1; rep <= 2; rep++) {
      ck_assert (nnic_model_backward (m, fixture (c->name, "gy"), &err));
      NNIC_ASSERT_NO_ERROR (err);
    }
    g_free (what);
    what = g_strconcat (pre, ".dx", NULL);
    assert_grad_close (what, nnic_model_input_grad (m), fixture (pre, "dx"), 1e-5);
    if (c->affine) {
      static const char *const p[] = { "weight", "bias" };
      for (int k = 0; k < 2; k++) {
        g_autofree char *pname = g_strconcat ("bn.", p[k], NULL);
        g_autofree char *gname = g_strconcat ("d", p[k], NULL);
        NnicParam *param = nnic_model_find_param (m, pname, &err);
        NNIC_ASSERT_NO_ERROR (err);
        g_autoptr (NnicTensor) half = nnic_tensor_copy (param->grad, &err);
        for (int64_t i = 0; i < half->numel; i++)
          half->f32[i] *= 0.5f;
        g_free (what);
        what = g_strconcat (pre, ".", gname, NULL);
        assert_grad_close (what, half, fixture (pre, gname), 1e-5);
      }
    } else {
      ck_assert_ptr_null (nnic_model_find_param (m, "bn.weight", NULL));
    }
    static const char *const buffers[] = { "running_mean", "running_var", "num_batches_tracked" };
    for (int k = 0; k < 3; k++) {
      g_autofree char *pname = g_strconcat ("bn.", buffers[k], NULL);
      NnicParam *b = nnic_model_find_param (m, pname, &err);
      NNIC_ASSERT_NO_ERROR (err);
      ck_assert_ptr_null (b->grad);
      g_free (what);
      what = g_strconcat (pre, ".", buffers[k], NULL);
      /* Evaluation leaves them as they were. */
      g_autofree char *state = g_strconcat ("state.", buffers[k], NULL);
      assert_close (what, b->value, training ? fixture (pre, buffers[k]) : fixture (c->name, state),
                    1e-6);
    }
  }
}
END_TEST

/* state_dict names in torch's order, the values at construction, the
 * spec getter with the defaults filled in, and the type. */
START_TEST (test_layout)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_flat (3);
  ck_assert (nnic_model_add_batchnorm1d (m, "a", NULL, &(NnicBatchNormSpec) { .num_features = 3 },
                                         &err));
  ck_assert (nnic_model_add_batchnorm1d (m, "b", NULL,
                                         &(NnicBatchNormSpec) { .num_features = 3, .no_affine = TRUE },
                                         &err));
  NNIC_ASSERT_NO_ERROR (err);
  static const char *const names[] = { "a.weight", "a.bias", "a.running_mean", "a.running_var",
                                       "a.num_batches_tracked", "b.running_mean", "b.running_var",
                                       "b.num_batches_tracked" };
  static const float values[] = { 1, 0, 0, 1, 0, 0, 1, 0 };
  ck_assert_uint_eq (nnic_model_n_params (m), G_N_ELEMENTS (names));
  for (guint i = 0; i < G_N_ELEMENTS (names); i++) {
    NnicParam *p = nnic_model_param (m, i);
    ck_assert_str_eq (p->name, names[i]);
    ck_assert_int_eq (p->grad != NULL, i < 2);
    ck_assert_int_eq (p->value->ndim, g_str_has_suffix (names[i], "tracked") ? 0 : 1);
    for (int64_t k = 0; k < p->value->numel; k++)
      ck_assert_float_eq (p->value->f32[k], values[i]);
  }
  ck_assert_int_eq (nnic_model_count_parameters (m), 6);
  nnic_model_init_params (m, 3);
  ck_assert_float_eq (nnic_model_find_param (m, "a.weight", NULL)->value->f32[2], 1.0f);

  ck_assert_str_eq (nnic_model_node_type (m, 1), "BatchNorm1d");
  int64_t shape[NNIC_MAX_DIMS];
  ck_assert_int_eq (nnic_model_node_shape (m, 2, shape), 1);
  ck_assert_int_eq (shape[0], 3);
  NnicBatchNormSpec s;
  ck_assert (nnic_model_node_batchnorm_spec (m, 2, &s));
  ck_assert_int_eq (s.num_features, 3);
  ck_assert_double_eq (s.eps, 1e-5);
  ck_assert_double_eq (s.momentum, 0.1);
  ck_assert (s.no_affine);
  ck_assert (!nnic_model_node_batchnorm_spec (m, 0, &s));
  gboolean listed = FALSE;
  for (const char *const *t = nnic_model_node_types (); *t; t++)
    listed = listed || !strcmp (*t, "BatchNorm1d");
  ck_assert (listed);

  /* Saved and loaded as torch's state_dict (num_batches_tracked as I64). */
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "bn.safetensors", NULL);
  nnic_model_find_param (m, "a.running_var", NULL)->value->f32[1] = 2.5f;
  ck_assert (nnic_model_save (m, path, &err));
  g_autoptr (NnicTensorDict) d = nnic_safetensors_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (nnic_tensor_dict_get (d, "a.num_batches_tracked")->dtype, NNIC_DTYPE_I64);
  g_autoptr (NnicModel) back = nnic_model_new_flat (3);
  ck_assert (nnic_model_add_batchnorm1d (back, "a", NULL, &(NnicBatchNormSpec) { .num_features = 3 },
                                         &err));
  ck_assert (nnic_model_add_batchnorm1d (back, "b", NULL,
                                         &(NnicBatchNormSpec) { .num_features = 3, .no_affine = TRUE },
                                         &err));
  ck_assert (nnic_model_load (back, path, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_float_eq (nnic_model_find_param (back, "a.running_var", NULL)->value->f32[1], 2.5f);
}
END_TEST

START_TEST (test_setup_errors)
{
  GError *err = NULL;
  /* [N, C, L]: refused, naming the node and its input. */
  g_autoptr (NnicModel) m = nnic_model_new_flat (12);
  ck_assert (nnic_model_add_reshape (m, "seq", NULL, (const int64_t[]) { 3, 4 }, 2, &err));
  ck_assert (!nnic_model_add_batchnorm1d (m, "bn", NULL, &(NnicBatchNormSpec) { .num_features = 3 },
                                          &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_UNSUPPORTED, "bn: BatchNorm1d on [N, C, L] inputs is not supported");
  ck_assert_ptr_nonnull (strstr (err->message, "'seq' gives [3, 4]"));
  g_clear_error (&err);
  ck_assert_int_eq (nnic_model_find_node (m, "bn"), -1);

  /* An image per sample. */
  g_autoptr (NnicModel) img = nnic_model_new (3, 4, 4);
  ck_assert (!nnic_model_add_batchnorm1d (img, "bn", NULL, &(NnicBatchNormSpec) { .num_features = 3 },
                                          &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "bn: BatchNorm1d needs a [features] input per sample");
  g_clear_error (&err);

  g_autoptr (NnicModel) flat = nnic_model_new_flat (5);
  ck_assert (!nnic_model_add_batchnorm1d (flat, "bn", NULL, &(NnicBatchNormSpec) { .num_features = 4 },
                                          &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_SHAPE, "bn: num_features 4 does not match the input's 5 features");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_batchnorm1d (flat, "bn", NULL,
                                          &(NnicBatchNormSpec) { .num_features = 5, .eps = -1 }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "bn: eps must be positive");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_batchnorm1d (flat, "bn", NULL,
                                          &(NnicBatchNormSpec) { .num_features = 5, .momentum = 2 }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "momentum in [0, 1]");
  g_clear_error (&err);
  ck_assert (!nnic_model_add_batchnorm1d (flat, "bn", NULL, &(NnicBatchNormSpec) { 0 }, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "num_features must be positive");
  g_clear_error (&err);
  ck_assert_uint_eq (nnic_model_n_nodes (flat), 1);
  ck_assert_uint_eq (nnic_model_n_params (flat), 0);
}
END_TEST

/* Two Linear layers whose outputs meet in an Add through BatchNorm1d:
 * BatchNorm1d keeps features one to one, so they are tied. */
START_TEST (test_channel_dependencies)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_flat (6);
  const NnicLinearSpec ls = { .in_features = 6, .out_features = 4 };
  const NnicBatchNormSpec bs = { .num_features = 4 };
  ck_assert (nnic_model_add_linear (m, "fa", "input", &ls, &err));
  ck_assert (nnic_model_add_batchnorm1d (m, "ba", "fa", &bs, &err));
  ck_assert (nnic_model_add_linear (m, "fb", "input", &ls, &err));
  ck_assert (nnic_model_add_batchnorm1d (m, "bb", "fb", &bs, &err));
  ck_assert (nnic_model_add_add (m, "sum", "ba", "bb", &err));
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (GPtrArray) sets = nnic_model_channel_dependencies (m);
  ck_assert_uint_eq (sets->len, 1);
  GArray *set = g_ptr_array_index (sets, 0);
  ck_assert_uint_eq (set->len, 2);
  ck_assert_str_eq (nnic_model_node_name (m, g_array_index (set, guint, 0)), "fa");
  ck_assert_str_eq (nnic_model_node_name (m, g_array_index (set, guint, 1)), "fb");
}
END_TEST

/* ---- bnn_mnist ---- */

static JsonParser *bnn_json;

static void
load_bnn (void)
{
  load_fixtures ();
  GError *err = NULL;
  g_autofree char *path = g_build_filename (NNIC_TEST_FIXTURES, "bn1d", "bnn_mnist.json", NULL);
  bnn_json = json_parser_new ();
  if (!json_parser_load_from_file (bnn_json, path, &err))
    g_error ("cannot load %s: %s", path, err->message);
}

static void
free_bnn (void)
{
  free_fixtures ();
  g_clear_object (&bnn_json);
}

static JsonObject *
bnn_meta (void)
{
  return json_node_get_object (json_parser_get_root (bnn_json));
}

/* make_bn1d_fixtures.py's `pattern_t`: exact in float32. */
static float
pattern_t (int64_t i, guint k)
{
  uint32_t h = (uint32_t) ((uint64_t) i * 2654435761u + (uint64_t) (k + 1) * 40503u);
  int32_t m = (int32_t) (h >> 8);
  return (float) (2 * m - (1 << 24)) / 16777216.0f;
}

/* Every entry of the state_dict as the script's `pattern` sets it. */
static void
set_bnn_weights (NnicModel *m)
{
  GError *err = NULL;
  for (guint k = 0; k < nnic_model_n_params (m); k++) {
    NnicParam *p = nnic_model_param (m, k);
    const char *local = strrchr (p->name, '.') + 1;
    const char *type = nnic_model_node_type (m, p->node);
    NnicTensor *v = p->value;
    if (!strcmp (local, "num_batches_tracked")) {
      v->f32[0] = 7.0f;
      continue;
    }
    if (!strcmp (type, "Conv2d") || !strcmp (type, "Linear")) {
      g_autofree char *wname = g_strconcat (nnic_model_node_name (m, p->node), ".weight", NULL);
      const NnicTensor *w = nnic_model_find_param (m, wname, &err)->value;
      NNIC_ASSERT_NO_ERROR (err);
      const float bound = (float) (1.0 / sqrt ((double) (w->numel / w->shape[0])));
      for (int64_t i = 0; i < v->numel; i++)
        v->f32[i] = bound * pattern_t (i, k);
      continue;
    }
    ck_assert (g_str_has_prefix (type, "BatchNorm"));
    for (int64_t i = 0; i < v->numel; i++) {
      const float t = pattern_t (i, k);
      if (!strcmp (local, "weight"))
        v->f32[i] = 1.0f + 0.5f * t;
      else if (!strcmp (local, "running_var"))
        v->f32[i] = 0.75f + 0.5f * t;
      else
        v->f32[i] = 0.25f * t; /* bias, running_mean */
    }
  }
}

START_TEST (test_bnn_structure)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("bnn_mnist", 0, 0, 0, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  gboolean listed = FALSE;
  for (const char *const *n = nnic_builtin_model_names (); *n; n++)
    listed = listed || !strcmp (*n, "bnn_mnist");
  ck_assert (listed);
  ck_assert_ptr_nonnull (nnic_builtin_model_summary ("bnn_mnist"));

  JsonArray *nodes = json_object_get_array_member (bnn_meta (), "nodes");
  ck_assert_uint_eq (nnic_model_n_nodes (m), json_array_get_length (nodes) + 1);
  for (guint i = 0; i < json_array_get_length (nodes); i++) {
    JsonArray *e = json_array_get_array_element (nodes, i);
    ck_assert_str_eq (nnic_model_node_name (m, i + 1), json_array_get_string_element (e, 0));
    ck_assert_str_eq (nnic_model_node_type (m, i + 1), json_array_get_string_element (e, 1));
  }
  ck_assert_uint_eq (nnic_model_output_node (m), nnic_model_n_nodes (m) - 1);

  JsonArray *sd = json_object_get_array_member (bnn_meta (), "state_dict");
  ck_assert_uint_eq (nnic_model_n_params (m), json_array_get_length (sd));
  for (guint i = 0; i < json_array_get_length (sd); i++) {
    JsonArray *e = json_array_get_array_element (sd, i);
    JsonArray *shape = json_array_get_array_element (e, 1);
    NnicParam *p = nnic_model_param (m, i);
    ck_assert_str_eq (p->name, json_array_get_string_element (e, 0));
    ck_assert_int_eq (p->value->ndim, (int) json_array_get_length (shape));
    for (guint d = 0; d < json_array_get_length (shape); d++)
      ck_assert_int_eq (p->value->shape[d], json_array_get_int_element (shape, d));
  }

  /* The options torch's model has that the names and shapes do not show. */
  NnicBatchNormSpec bs;
  ck_assert (nnic_model_node_batchnorm_spec (m, (guint) nnic_model_find_node (m, "features.1"), &bs));
  ck_assert_double_eq (bs.eps, 1e-4);
  ck_assert (nnic_model_node_batchnorm_spec (m, (guint) nnic_model_find_node (m, "features.5"), &bs));
  ck_assert_double_eq (bs.eps, 1e-4);
  ck_assert (nnic_model_node_batchnorm_spec (m, (guint) nnic_model_find_node (m, "classifier.1"), &bs));
  ck_assert (!bs.no_affine);
  ck_assert_double_eq (bs.eps, 1e-5);
  ck_assert (nnic_model_node_batchnorm_spec (m, (guint) nnic_model_find_node (m, "classifier.4"), &bs));
  ck_assert (bs.no_affine);
  double lo, hi;
  ck_assert (nnic_model_node_option (m, (guint) nnic_model_find_node (m, "classifier.2"), "min_val", &lo));
  ck_assert (nnic_model_node_option (m, (guint) nnic_model_find_node (m, "classifier.2"), "max_val", &hi));
  ck_assert_double_eq (lo, -1.0);
  ck_assert_double_eq (hi, 1.0);
  /* 800 + 32 * 2 + 51200 + 64 * 2 + 819200 + 512 * 2 + 5120 + 10 */
  ck_assert_int_eq (nnic_model_count_parameters (m), 877546);

  /* Other sizes: channels, input and classes as the other built-ins. */
  g_autoptr (NnicModel) small = nnic_model_new_builtin ("bnn_mnist", 3, 16, 16, 4, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (nnic_model_find_param (small, "features.0.weight", &err)->value->shape[1], 3);
  ck_assert_int_eq (nnic_model_find_param (small, "classifier.0.weight", &err)->value->shape[1], 256);
  ck_assert_int_eq (nnic_model_find_param (small, "classifier.4.running_mean", &err)->value->shape[0], 4);
  /* Too small for two 5x5 convolutions and two pools: an error, not a crash. */
  ck_assert_ptr_null (nnic_model_new_builtin ("bnn_mnist", 1, 10, 10, 10, &err));
  ck_assert_ptr_nonnull (err);
  ck_assert_ptr_nonnull (strstr (err->message, "bnn_mnist"));
  g_clear_error (&err);
}
END_TEST

static double
meta_double (const char *member, const char *key)
{
  return json_object_get_double_member (json_object_get_object_member (bnn_meta (), member), key);
}

/* Eval, then train from the same weights: logits, loss, gradients and
 * buffers as torch's. */
START_TEST (test_bnn_against_torch)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("bnn_mnist", 0, 0, 0, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const NnicTensor *x = fixture ("bnn", "x"), *labels = fixture ("bnn", "labels");
  nnic_model_set_input_grad (m, TRUE);
  static const char *const modes[] = { "eval", "train" };
  for (int mi = 0; mi < 2; mi++) {
    const gboolean training = mi == 1;
    g_autofree char *pre = g_strconcat ("bnn.", modes[mi], NULL);
    set_bnn_weights (m);
    nnic_model_zero_grad (m);
    nnic_model_set_training (m, training);
    const NnicTensor *y = nnic_model_forward (m, x, &err);
    NNIC_ASSERT_NO_ERROR (err);
    g_autofree char *what = g_strconcat (pre, ".y", NULL);
    assert_close (what, y, fixture (pre, "y"), 1e-4);

    g_autoptr (NnicTensor) gy = nnic_tensor_new_like (y, &err);
    const double loss = nnic_cross_entropy (y, labels, gy, NULL, &err);
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert_msg (fabs (loss - meta_double ("loss", modes[mi])) <= 1e-4, "%s loss %.9g, want %.9g",
                   modes[mi], loss, meta_double ("loss", modes[mi]));
    if (!training)
      continue;
    assert_grad_close ("bnn.train.gy", gy, fixture (pre, "gy"), 1e-5);
    ck_assert (nnic_model_backward (m, gy, &err));
    NNIC_ASSERT_NO_ERROR (err);
    assert_grad_close ("bnn.train.dx", nnic_model_input_grad (m), fixture (pre, "dx"), 1e-4);
    for (guint k = 0; k < nnic_model_n_params (m); k++) {
      NnicParam *p = nnic_model_param (m, k);
      g_autofree char *key = g_strconcat (pre, ".", p->name, NULL);
      if (!p->grad) {
        /* A buffer, after the training forward. */
        assert_close (key, p->value, fixture (pre, p->name), 1e-5);
        continue;
      }
      g_autofree char *gkey = g_strconcat ("grad.", p->name, NULL);
      g_autofree char *full = g_strconcat (pre, ".", gkey, NULL);
      if (nnic_tensor_dict_get (fixtures, full))
        assert_grad_close (full, p->grad, fixture (pre, gkey), 1e-4);
      double norm = 0.0;
      for (int64_t i = 0; i < p->grad->numel; i++)
        norm += (double) p->grad->f32[i] * p->grad->f32[i];
      norm = sqrt (norm);
      const double want = meta_double ("grad_norm", p->name);
      ck_assert_msg (fabs (norm - want) <= 1e-4 * want + 1e-7, "%s: gradient norm %.9g, want %.9g",
                     p->name, norm, want);
    }
  }
}
END_TEST

/* Out to ONNX (BatchNorm1d as BatchNormalization on [N, C]) and back in:
 * the same nodes, weights and outputs. */
START_TEST (test_bnn_onnx_round_trip)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("bnn_mnist", 0, 0, 0, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  set_bnn_weights (m);
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *path = g_build_filename (dir, "bnn.onnx", NULL);
  ck_assert_msg (nnic_model_save_onnx (m, path, NULL, &err), "%s", err ? err->message : "");

  g_autoptr (NnicModel) back = nnic_model_load_onnx (path, NULL, &err);
  ck_assert_msg (back != NULL, "import: %s", err ? err->message : "");
  for (guint i = 1; i < nnic_model_n_nodes (m); i++) {
    const char *name = nnic_model_node_name (m, i);
    int j = nnic_model_find_node (back, name);
    ck_assert_msg (j >= 0, "node %s is missing after the round trip", name);
    ck_assert_str_eq (nnic_model_node_type (back, (guint) j), nnic_model_node_type (m, i));
    NnicBatchNormSpec a, b;
    if (nnic_model_node_batchnorm_spec (m, i, &a)) {
      ck_assert (nnic_model_node_batchnorm_spec (back, (guint) j, &b));
      ck_assert_double_eq_tol (a.eps, b.eps, 1e-9);
      ck_assert_double_eq_tol (a.momentum, b.momentum, 1e-6);
    }
  }
  for (guint i = 0; i < nnic_model_n_params (m); i++) {
    NnicParam *p = nnic_model_param (m, i);
    if (g_str_has_suffix (p->name, "num_batches_tracked"))
      continue; /* ONNX has no place for it */
    NnicParam *q = nnic_model_find_param (back, p->name, NULL);
    ck_assert_msg (q != NULL, "%s is missing after the round trip", p->name);
    ck_assert (nnic_tensor_same_shape (p->value, q->value));
    ck_assert_msg (memcmp (p->value->data, q->value->data, nnic_tensor_nbytes (p->value)) == 0,
                   "%s differs after the round trip", p->name);
  }
  nnic_model_set_training (m, FALSE);
  nnic_model_set_training (back, FALSE);
  const NnicTensor *x = fixture ("bnn", "x");
  g_autoptr (NnicTensor) ya = nnic_tensor_copy (nnic_model_forward (m, x, &err), &err);
  NNIC_ASSERT_NO_ERROR (err);
  const NnicTensor *yb = nnic_model_forward (back, x, &err);
  NNIC_ASSERT_NO_ERROR (err);
  assert_close ("round trip", yb, ya, 1e-6);
  assert_close ("round trip vs torch", yb, fixture ("bnn.eval", "y"), 1e-4);
  g_unlink (path);
  g_rmdir (dir);
}
END_TEST

static Suite *
bn1d_suite (void)
{
  Suite *s = suite_create ("bn1d");
  TCase *tc = tcase_create ("batchnorm1d");
  tcase_add_unchecked_fixture (tc, load_fixtures, free_fixtures);
  tcase_add_loop_test (tc, test_against_torch, 0, G_N_ELEMENTS (cases));
  tcase_add_test (tc, test_layout);
  tcase_add_test (tc, test_setup_errors);
  tcase_add_test (tc, test_channel_dependencies);
  suite_add_tcase (s, tc);

  tc = tcase_create ("bnn_mnist");
  tcase_add_unchecked_fixture (tc, load_bnn, free_bnn);
  tcase_add_test (tc, test_bnn_structure);
  tcase_add_test (tc, test_bnn_against_torch);
  tcase_add_test (tc, test_bnn_onnx_round_trip);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return nnic_test_run (bn1d_suite ());
}
