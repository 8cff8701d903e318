/* Masks against NNI v1.9's own: every reference case of a masker this
 * build has, through the C API (tests/fixtures/nni-masks, copied from
 * ../shared/reference/nni-masks; its SEMANTICS.md states the rules). */
#include "testutil.h"

#include <json-glib/json-glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CASES_DIR NNIC_TEST_FIXTURES "/nni-masks"

static NnicTensor *
load_npy (const char *name)
{
  GError *err = NULL;
  g_autofree char *path = g_build_filename (CASES_DIR, name, NULL);
  NnicTensor *t = nnic_npy_load (path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  return t;
}

/* A model holding the single layer "0" of a case (NNI names it so). */
static NnicModel *
layer_model (const char *type, JsonArray *shape, gboolean bias)
{
  GError *err = NULL;
  NnicModel *m = NULL;
  gint64 out = json_array_get_int_element (shape, 0), in = json_array_get_int_element (shape, 1);
  if (g_str_equal (type, "Linear")) {
    m = nnic_model_new_flat ((int) in);
    nnic_model_add_linear (m, "0", NULL, &(NnicLinearSpec) { .in_features = (int) in, .out_features = (int) out, .no_bias = !bias }, &err);
  } else {
    gint64 kh = json_array_get_int_element (shape, 2), kw = json_array_get_int_element (shape, 3);
    m = nnic_model_new ((int) in, (int) kh, (int) kw);
    nnic_model_add_conv2d (m, "0", NULL, &(NnicConv2dSpec) { .in_channels = (int) in, .out_channels = (int) out, .kernel_h = (int) kh, .kernel_w = (int) kw, .no_bias = !bias }, &err);
  }
  NNIC_ASSERT_NO_ERROR (err);
  return m;
}

/* Compares a uint8 mask with NNI's float32 0/1 mask, element by element. */
static void
assert_same_mask (const char *id, const NnicTensor *mask, const NnicTensor *want)
{
  ck_assert_int_eq (mask->numel, want->numel);
  int64_t diff = 0, first = -1;
  for (int64_t i = 0; i < mask->numel; i++)
    if ((mask->u8[i] != 0) != (want->f32[i] != 0.0f)) {
      if (first < 0)
        first = i;
      diff++;
    }
  ck_assert_msg (diff == 0, "%s: %" G_GINT64_FORMAT " mask entries differ from NNI's (first at %" G_GINT64_FORMAT ")",
                 id, diff, first);
}

static void
run_case (JsonObject *c)
{
  GError *err = NULL;
  const char *id = json_object_get_string_member (c, "id");
  const char *algorithm = json_object_get_string_member (c, "algorithm");
  JsonObject *layer = json_array_get_object_element (json_object_get_array_member (c, "layers"), 0);
  const char *type = json_object_get_string_member (layer, "type");
  g_autoptr (NnicTensor) weight = load_npy (json_object_get_string_member (layer, "weight"));
  gboolean has_bias = json_object_has_member (layer, "bias") &&
                      JSON_NODE_HOLDS_VALUE (json_object_get_member (layer, "bias"));
  g_autoptr (NnicModel) m = layer_model (type, json_object_get_array_member (layer, "weight_shape"), has_bias);
  ck_assert (nnic_tensor_copy_into (nnic_model_find_param (m, "0.weight", &err)->value, weight, &err));
  if (has_bias) {
    g_autoptr (NnicTensor) bias = load_npy (json_object_get_string_member (layer, "bias"));
    ck_assert (nnic_tensor_copy_into (nnic_model_find_param (m, "0.bias", &err)->value, bias, &err));
  }
  NNIC_ASSERT_NO_ERROR (err);

  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, json_object_get_member (c, "config_list"));
  g_autofree char *config_text = json_generator_to_data (gen, NULL);
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (config_text, id, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicCompressor) comp = nnic_compressor_new (m, algorithm, cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (comp, &err));
  NNIC_ASSERT_NO_ERROR (err);

  NnicWrapper *w = nnic_compressor_find_wrapper (comp, "0");
  ck_assert_ptr_nonnull (w);
  g_autoptr (NnicTensor) want = load_npy (json_object_get_string_member (layer, "weight_mask"));
  assert_same_mask (id, nnic_wrapper_get_mask (w, "weight"), want);
  if (has_bias) {
    g_autoptr (NnicTensor) want_b = load_npy (json_object_get_string_member (layer, "bias_mask"));
    assert_same_mask (id, nnic_wrapper_get_mask (w, "bias"), want_b);
  }
  /* The weights themselves hold exactly the zeros of the mask. */
  const NnicTensor *wv = nnic_wrapper_weight (w), *mk = nnic_wrapper_get_mask (w, "weight");
  for (int64_t i = 0; i < wv->numel; i++)
    if (!mk->u8[i])
      ck_assert_float_eq (wv->f32[i], 0.0f);
}

/* Runs `run` on every case of `algorithm` (the manifest's name for it) in
 * the manifest; returns how many ran. */
static int
run_cases (const char *algorithm, void (*run) (JsonObject *c))
{
  GError *err = NULL;
  g_autoptr (JsonParser) p = json_parser_new ();
  ck_assert_msg (json_parser_load_from_file (p, CASES_DIR "/manifest.json", &err), "manifest: %s",
                 err ? err->message : "");
  JsonArray *cases = json_object_get_array_member (json_node_get_object (json_parser_get_root (p)), "cases");
  int ran = 0;
  for (guint i = 0; i < json_array_get_length (cases); i++) {
    JsonObject *c = json_array_get_object_element (cases, i);
    if (g_str_equal (json_object_get_string_member (c, "algorithm"), algorithm)) {
      run (c);
      ran++;
    }
  }
  return ran;
}

START_TEST (test_level_cases)
{
  ck_assert_int_eq (run_cases ("level", run_case), 8);
}
END_TEST

/* TaylorFO, following the case's procedure: an SGD optimizer with lr 0
 * (weights stay), compress(), then {weight.grad := the saved grad; step}
 * until NNI computed its mask. The mask must appear exactly at the step
 * NNI's did (statistics_batch_num = 1: the 2nd), not before. */
static void
run_taylorfo_case (JsonObject *c)
{
  GError *err = NULL;
  const char *id = json_object_get_string_member (c, "id");
  JsonObject *layer = json_array_get_object_element (json_object_get_array_member (c, "layers"), 0);
  const gint64 steps = json_object_get_int_member (c, "optimizer_steps");
  ck_assert_int_ge (steps, 2);
  g_autoptr (NnicTensor) weight = load_npy (json_object_get_string_member (layer, "weight"));
  g_autoptr (NnicTensor) bias = load_npy (json_object_get_string_member (layer, "bias"));
  g_autoptr (NnicTensor) grad = load_npy (json_object_get_string_member (layer, "grad"));
  g_autoptr (NnicModel) m = layer_model ("Conv2d", json_object_get_array_member (layer, "weight_shape"), TRUE);
  NnicParam *pw = nnic_model_find_param (m, "0.weight", &err);
  NnicParam *pb = nnic_model_find_param (m, "0.bias", &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_tensor_copy_into (pw->value, weight, &err));
  ck_assert (nnic_tensor_copy_into (pb->value, bias, &err));

  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, json_object_get_member (c, "config_list"));
  g_autofree char *config_text = json_generator_to_data (gen, NULL);
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (config_text, id, &err);
  NNIC_ASSERT_NO_ERROR (err);
  /* SGD(lr=0): nnic wants lr > 0 at creation, so set it to 0 after. */
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 1.0 }, &err);
  NNIC_ASSERT_NO_ERROR (err);
  nnic_optimizer_set_lr (opt, 0.0);
  g_autoptr (NnicCompressor) comp = nnic_compressor_new (m, "taylorfo", cl, opt, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (comp, &err));
  NNIC_ASSERT_NO_ERROR (err);
  NnicWrapper *w = nnic_compressor_find_wrapper (comp, "0");
  ck_assert_ptr_nonnull (w);

  for (gint64 s = 1; s <= steps; s++) {
    /* Before the last step the masks are still all ones. */
    ck_assert_msg (nnic_wrapper_sparsity (w) == 0.0, "%s: a mask after %" G_GINT64_FORMAT " steps",
                   id, s - 1);
    ck_assert (nnic_tensor_copy_into (pw->grad, grad, &err));
    nnic_tensor_zero (pb->grad);
    nnic_optimizer_step (opt);
  }
  g_autoptr (NnicTensor) want = load_npy (json_object_get_string_member (layer, "weight_mask"));
  g_autoptr (NnicTensor) want_b = load_npy (json_object_get_string_member (layer, "bias_mask"));
  assert_same_mask (id, nnic_wrapper_get_mask (w, "weight"), want);
  assert_same_mask (id, nnic_wrapper_get_mask (w, "bias"), want_b);
  /* Exactly num_prune filters; the weights (lr 0) are the originals but
   * for the pruned filters, which are exactly zero. */
  const NnicTensor *mk = nnic_wrapper_get_mask (w, "bias");
  int64_t pruned = 0;
  for (int64_t f = 0; f < mk->numel; f++)
    pruned += !mk->u8[f];
  ck_assert_int_eq (pruned, json_object_get_int_member (layer, "num_prune_int_filters_times_sparsity"));
  const NnicTensor *wm = nnic_wrapper_get_mask (w, "weight");
  for (int64_t i = 0; i < weight->numel; i++)
    ck_assert_float_eq (pw->value->f32[i], wm->u8[i] ? weight->f32[i] : 0.0f);
  /* More steps change nothing (one-shot). */
  ck_assert (nnic_tensor_copy_into (pw->grad, grad, &err));
  nnic_optimizer_step (opt);
  assert_same_mask (id, nnic_wrapper_get_mask (w, "weight"), want);
}

START_TEST (test_taylorfo_cases)
{
  ck_assert_int_eq (run_cases ("taylorfo", run_taylorfo_case), 2);
}
END_TEST

/* TaylorFO refuses to run without an optimizer, and on a Linear layer. */
START_TEST (test_taylorfo_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicConfigList) conv = nnic_config_list_new_from_json (
      "[{\"sparsity\": 0.5, \"op_types\": [\"Conv2d\"], \"statistics_batch_num\": 2}]", "t", &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicCompressor *c = nnic_compressor_new (m, "taylorfo", conv, NULL, NULL, &err);
  ck_assert_ptr_null (c);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "taylorfo needs an optimizer");
  g_clear_error (&err);
  g_autoptr (NnicOptimizer) opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 0.1 }, &err);
  g_autoptr (NnicConfigList) all = nnic_config_list_new_from_json (
      "[{\"sparsity\": 0.5, \"op_types\": [\"default\"]}]", "t", &err);
  NNIC_ASSERT_NO_ERROR (err);
  c = nnic_compressor_new (m, "taylorfo", all, opt, NULL, &err);
  ck_assert_ptr_null (c);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "layer 'fc1' is Linear");
  g_clear_error (&err);
  g_autoptr (NnicConfigList) bad = nnic_config_list_new_from_json (
      "[{\"sparsity\": 0.5, \"op_types\": [\"Conv2d\"], \"statistics_batch_num\": 0}]", "t", &err);
  NNIC_ASSERT_NO_ERROR (err);
  c = nnic_compressor_new (m, "taylorfo", bad, opt, NULL, &err);
  ck_assert_ptr_null (c);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "config_list[0].statistics_batch_num");
  g_clear_error (&err);
  /* The hook goes with the compressor: steps after it is freed are fine. */
  c = nnic_compressor_new (m, "taylorfo", conv, opt, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  nnic_compressor_free (c);
  nnic_optimizer_step (opt);
}
END_TEST

/* ---- filter maskers (l1filter, l2filter, fpgm) and slim ---- */

/* nnic's name of a manifest algorithm: NNI's short names "l1", "l2" are
 * nnic's l1filter, l2filter. */
static const char *
nnic_algorithm_of (const char *manifest_name)
{
  if (g_str_equal (manifest_name, "l1"))
    return "l1filter";
  if (g_str_equal (manifest_name, "l2"))
    return "l2filter";
  return manifest_name;
}

/* BatchNorm2d layers "0", "1", ... of `channels[i]` channels, each on its
 * own features: input C0 x 1 x 1 → bn "0" → conv "conv_1" (1x1, C0 → C1;
 * not selected by op_types BatchNorm2d) → bn "1" → ... (as `nnic mask`
 * builds them; wrapper order = layer order, as NNI's). */
static NnicModel *
bn_chain_model (const gint64 *channels, guint n)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new ((int) channels[0], 1, 1);
  for (guint i = 0; i < n; i++) {
    g_autofree char *name = g_strdup_printf ("%u", i);
    if (i > 0) {
      g_autofree char *conv = g_strdup_printf ("conv_%u", i);
      nnic_model_add_conv2d (m, conv, NULL, &(NnicConv2dSpec) { .in_channels = (int) channels[i - 1], .out_channels = (int) channels[i], .kernel_size = 1 }, &err);
      NNIC_ASSERT_NO_ERROR (err);
    }
    nnic_model_add_batchnorm2d (m, name, NULL, &(NnicBatchNormSpec) { .num_features = (int) channels[i] }, &err);
    NNIC_ASSERT_NO_ERROR (err);
  }
  return m;
}

/* Warnings of the "nnic" log domain, kept while a test runs. */
static void
capture_warning (const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user_data)
{
  (void) domain;
  (void) level;
  g_ptr_array_add (user_data, g_strdup (message));
}

static gboolean
mask_all_zero (const NnicTensor *mask)
{
  for (int64_t i = 0; i < mask->numel; i++)
    if (mask->u8[i])
      return FALSE;
  return TRUE;
}

/* A filter masker or slim case: every layer of it, weight and bias masks
 * against NNI's; slim warns for exactly the layers that lose every
 * channel. */
static void
run_structured_case (JsonObject *c)
{
  GError *err = NULL;
  const char *id = json_object_get_string_member (c, "id");
  const char *algorithm = nnic_algorithm_of (json_object_get_string_member (c, "algorithm"));
  JsonArray *layers = json_object_get_array_member (c, "layers");
  const guint n = json_array_get_length (layers);
  JsonObject *first = json_array_get_object_element (layers, 0);
  const char *type = json_object_get_string_member (first, "type");
  g_autoptr (NnicModel) m = NULL;
  if (g_str_equal (type, "BatchNorm2d")) {
    g_autofree gint64 *channels = g_new (gint64, n);
    for (guint i = 0; i < n; i++)
      channels[i] = json_array_get_int_element (
          json_object_get_array_member (json_array_get_object_element (layers, i), "weight_shape"), 0);
    m = bn_chain_model (channels, n);
  } else {
    ck_assert_uint_eq (n, 1);
    m = layer_model (type, json_object_get_array_member (first, "weight_shape"), TRUE);
  }
  for (guint i = 0; i < n; i++) {
    JsonObject *layer = json_array_get_object_element (layers, i);
    const char *name = json_object_get_string_member (layer, "name");
    g_autofree char *wname = g_strconcat (name, ".weight", NULL);
    g_autofree char *bname = g_strconcat (name, ".bias", NULL);
    g_autoptr (NnicTensor) weight = load_npy (json_object_get_string_member (layer, "weight"));
    g_autoptr (NnicTensor) bias = load_npy (json_object_get_string_member (layer, "bias"));
    ck_assert (nnic_tensor_copy_into (nnic_model_find_param (m, wname, &err)->value, weight, &err));
    ck_assert (nnic_tensor_copy_into (nnic_model_find_param (m, bname, &err)->value, bias, &err));
    NNIC_ASSERT_NO_ERROR (err);
  }

  g_autoptr (JsonGenerator) gen = json_generator_new ();
  json_generator_set_root (gen, json_object_get_member (c, "config_list"));
  g_autofree char *config_text = json_generator_to_data (gen, NULL);
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (config_text, id, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (NnicCompressor) comp = nnic_compressor_new (m, algorithm, cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  guint handler = g_log_set_handler ("nnic", G_LOG_LEVEL_WARNING, capture_warning, warnings);
  gboolean ok = nnic_compressor_compress (comp, &err);
  g_log_remove_handler ("nnic", handler);
  ck_assert (ok);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_compressor_n_wrappers (comp), n);

  guint dead = 0;
  for (guint i = 0; i < n; i++) {
    JsonObject *layer = json_array_get_object_element (layers, i);
    const char *name = json_object_get_string_member (layer, "name");
    g_autofree char *lid = g_strdup_printf ("%s layer %s", id, name);
    NnicWrapper *w = nnic_compressor_wrapper (comp, i);
    ck_assert_str_eq (nnic_wrapper_name (w), name);
    g_autoptr (NnicTensor) want = load_npy (json_object_get_string_member (layer, "weight_mask"));
    g_autoptr (NnicTensor) want_b = load_npy (json_object_get_string_member (layer, "bias_mask"));
    const NnicTensor *mk = nnic_wrapper_get_mask (w, "weight");
    assert_same_mask (lid, mk, want);
    assert_same_mask (lid, nnic_wrapper_get_mask (w, "bias"), want_b);
    const NnicTensor *wv = nnic_wrapper_weight (w), *bv = nnic_wrapper_bias (w);
    const NnicTensor *bm = nnic_wrapper_get_mask (w, "bias");
    for (int64_t k = 0; k < wv->numel; k++)
      if (!mk->u8[k])
        ck_assert_float_eq (wv->f32[k], 0.0f);
    for (int64_t k = 0; k < bv->numel; k++)
      if (!bm->u8[k])
        ck_assert_float_eq (bv->f32[k], 0.0f);
    /* slim: a layer left without channels is named in a warning. */
    gboolean warned = FALSE;
    g_autofree char *needle = g_strdup_printf ("slim: %s loses all %" G_GINT64_FORMAT " of its channels",
                                               name, mk->numel);
    for (guint k = 0; k < warnings->len; k++)
      warned |= strstr (g_ptr_array_index (warnings, k), needle) != NULL;
    const gboolean is_dead = g_str_equal (algorithm, "slim") && mask_all_zero (mk);
    ck_assert_msg (warned == is_dead, "%s: %s", lid, is_dead ? "no warning that it is dead" : "a warning but it lives");
    dead += is_dead;
  }
  ck_assert_uint_eq (warnings->len, dead);
}

START_TEST (test_l1filter_cases)
{
  ck_assert_int_eq (run_cases ("l1", run_structured_case), 4);
}
END_TEST

START_TEST (test_l2filter_cases)
{
  ck_assert_int_eq (run_cases ("l2", run_structured_case), 3);
}
END_TEST

START_TEST (test_fpgm_cases)
{
  ck_assert_int_eq (run_cases ("fpgm", run_structured_case), 3);
}
END_TEST

START_TEST (test_slim_cases)
{
  ck_assert_int_eq (run_cases ("slim", run_structured_case), 2);
}
END_TEST

/* A Conv2d(1, F, 1) whose filter f is the single weight w[f] (no bias),
 * pruned one-shot by `algorithm`; returns the weight mask as 0/1 chars. */
static char *
one_by_one_masks (const char *algorithm, const float *w, int filters, double sparsity)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (1, 1, 1);
  nnic_model_add_conv2d (m, "conv", NULL, &(NnicConv2dSpec) { .in_channels = 1, .out_channels = filters, .kernel_size = 1, .no_bias = TRUE }, &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicTensor *wv = nnic_model_find_param (m, "conv.weight", &err)->value;
  memcpy (wv->f32, w, sizeof (float) * (size_t) filters);
  g_autoptr (NnicConfigList) cl = nnic_config_list_new ();
  guint e = nnic_config_list_add_entry (cl);
  nnic_config_list_set_double (cl, e, "sparsity", sparsity);
  nnic_config_list_add_string (cl, e, "op_types", "Conv2d");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, algorithm, cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (nnic_compressor_compress (c, &err));
  NNIC_ASSERT_NO_ERROR (err);
  NnicWrapper *wr = nnic_compressor_wrapper (c, 0);
  ck_assert_ptr_null (nnic_wrapper_get_mask (wr, "bias"));
  const NnicTensor *mk = nnic_wrapper_get_mask (wr, "weight");
  char *s = g_new0 (char, filters + 1);
  for (int f = 0; f < filters; f++)
    s[f] = mk->u8[f] ? '1' : '0';
  return s;
}

/* SEMANTICS.md's probes: ties at the threshold (L1/L2 prune all tied
 * filters), FPGM's lower-index rule, the early out. */
START_TEST (test_filter_probes)
{
  const float a[6] = { 3, 1, 2, 1, 5, 1 }, b[6] = { 0, 4, 4, 0, 2, 2 };
  const float neg[6] = { -3, 1, -2, -1, 5, 1 };
  struct {
    const char *algorithm;
    const float *w;
    double sparsity;
    const char *want;
  } probes[] = {
    { "l1filter", a, 0.34, "101010" },  /* num_prune 2, t = 1: filters 1, 3, 5 */
    { "l2filter", neg, 0.34, "101010" }, /* |w| the same */
    { "l1filter", a, 0.67, "100010" },  /* num_prune 4, t = 2: filters 1, 2, 3, 5 */
    { "fpgm", a, 0.34, "100111" },      /* d = 9,7,7,7,17,7: filters 1 and 2 */
    { "fpgm", b, 0.5, "011100" },       /* d = 12,12,12,12,8,8: 4, 5, then 0 */
    { "l1filter", a, 0.1, "111111" },   /* int(6 * 0.1) = 0: masks unchanged */
    { "fpgm", a, 0.16, "111111" },
  };
  for (guint i = 0; i < G_N_ELEMENTS (probes); i++) {
    g_autofree char *got = one_by_one_masks (probes[i].algorithm, probes[i].w, 6, probes[i].sparsity);
    ck_assert_msg (g_str_equal (got, probes[i].want), "probe %u (%s, sparsity %g): mask %s, want %s", i,
                   probes[i].algorithm, probes[i].sparsity, got, probes[i].want);
  }
}
END_TEST

/* Normal-ish numbers from a fixed seed. */
static void
fill_random (float *x, int64_t n, guint32 seed)
{
  g_autoptr (GRand) r = g_rand_new_with_seed (seed);
  for (int64_t i = 0; i < n; i++)
    x[i] = (float) (g_rand_double (r) + g_rand_double (r) + g_rand_double (r) - 1.5);
}

typedef struct {
  double score;
  int index;
} RefRank;

static int
cmp_ref_rank (const void *pa, const void *pb)
{
  const RefRank *a = pa, *b = pb;
  if (a->score != b->score)
    return a->score < b->score ? -1 : 1;
  return a->index - b->index;
}

/* A Conv2d(in, F, 3) with weights `w`, masked one-shot. */
static NnicCompressor *
conv_compressor (NnicModel **m, const char *algorithm, int in, int filters, const float *w, double sparsity)
{
  GError *err = NULL;
  *m = nnic_model_new (in, 3, 3);
  nnic_model_add_conv2d (*m, "conv", NULL, &(NnicConv2dSpec) { .in_channels = in, .out_channels = filters, .kernel_size = 3 }, &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicTensor *wv = nnic_model_find_param (*m, "conv.weight", &err)->value;
  memcpy (wv->f32, w, sizeof (float) * (size_t) wv->numel);
  g_autoptr (NnicConfigList) cl = nnic_config_list_new ();
  guint e = nnic_config_list_add_entry (cl);
  nnic_config_list_set_double (cl, e, "sparsity", sparsity);
  nnic_config_list_add_string (cl, e, "op_types", "Conv2d");
  NnicCompressor *c = nnic_compressor_new (*m, algorithm, cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  return c;
}

/* FPGM on 40 filters in 20 identical pairs (g and g + 20), long enough
 * for several blocks and with a tail, 40 = 13 tiles of 3 + 1 left over:
 * twins must tie exactly wherever their distances were computed, and the
 * 11th filter pruned is the lower of a pair. Checked against a double
 * reference (distinct pairs are far apart). */
START_TEST (test_fpgm_twins)
{
  const int ins[2] = { 5, 64 }; /* 45 and 576 weights per filter */
  for (guint v = 0; v < G_N_ELEMENTS (ins); v++) {
    const int in = ins[v], filters = 40, per = in * 9;
    g_autofree float *w = g_new (float, filters * per);
    fill_random (w, (int64_t) 20 * per, 7 + v);
    memcpy (w + 20 * per, w, sizeof (float) * (size_t) (20 * per));
    g_autofree RefRank *ref = g_new (RefRank, filters);
    for (int f = 0; f < filters; f++) {
      double d = 0;
      for (int g = 0; g < filters; g++) {
        double s = 0;
        for (int j = 0; j < per; j++) {
          double x = (double) w[g * per + j] - (double) w[f * per + j];
          s += x * x;
        }
        d += sqrt (s);
      }
      ref[f] = (RefRank) { d, f };
    }
    qsort (ref, (size_t) filters, sizeof *ref, cmp_ref_rank);
    const double sparsity = 0.275; /* int(40 * 0.275) = 11 */
    g_autofree guint8 *want = g_new (guint8, filters);
    memset (want, 1, (size_t) filters);
    for (int i = 0; i < 11; i++)
      want[ref[i].index] = 0;
    ck_assert_int_lt (ref[10].index, 20); /* the lower twin of the 6th pair */
    ck_assert_int_eq (ref[11].index, ref[10].index + 20);
    NnicModel *m = NULL;
    NnicCompressor *c = conv_compressor (&m, "fpgm", in, filters, w, sparsity);
    GError *err = NULL;
    ck_assert (nnic_compressor_compress (c, &err));
    const NnicTensor *mk = nnic_wrapper_get_mask (nnic_compressor_wrapper (c, 0), "weight");
    const NnicTensor *bm = nnic_wrapper_get_mask (nnic_compressor_wrapper (c, 0), "bias");
    for (int f = 0; f < filters; f++) {
      ck_assert_msg (bm->u8[f] == want[f], "in %d: filter %d: bias mask %d, want %d", in, f, bm->u8[f], want[f]);
      for (int j = 0; j < per; j++)
        ck_assert_int_eq (mk->u8[f * per + j], want[f]);
    }
    nnic_compressor_free (c);
    nnic_model_free (m);
  }
}
END_TEST

/* L1 and L2 on a Conv2d(512, 48, 3) (4608 weights a filter: many blocks)
 * against a double reference; then again after weights under a mask
 * moved off zero (an optimizer step): NNI scores weight * mask. */
START_TEST (test_filter_norms_large)
{
  const int in = 512, filters = 48, per = in * 9;
  g_autofree float *w = g_new (float, filters * per);
  fill_random (w, (int64_t) filters * per, 11);
  for (int p = 1; p <= 2; p++) {
    g_autofree RefRank *ref = g_new (RefRank, filters);
    g_autofree double *score = g_new (double, filters);
    for (int f = 0; f < filters; f++) {
      double s = 0;
      for (int j = 0; j < per; j++)
        s += p == 1 ? fabs (w[f * per + j]) : (double) w[f * per + j] * w[f * per + j];
      score[f] = p == 1 ? s : sqrt (s);
      ref[f] = (RefRank) { score[f], f };
    }
    qsort (ref, (size_t) filters, sizeof *ref, cmp_ref_rank);
    const int k = (int) (filters * 0.3); /* 14 */
    NnicModel *m = NULL;
    NnicCompressor *c = conv_compressor (&m, p == 1 ? "l1filter" : "l2filter", in, filters, w, 0.3);
    GError *err = NULL;
    ck_assert (nnic_compressor_compress (c, &err));
    NnicWrapper *wr = nnic_compressor_wrapper (c, 0);
    const NnicTensor *mk = nnic_wrapper_get_mask (wr, "weight");
    for (int f = 0; f < filters; f++)
      ck_assert_int_eq (mk->u8[f * per], score[f] > ref[k - 1].score);
    /* The pruned filters' weights come back (as after an SGD step); the
     * filters with the most of it would win if the mask were ignored. */
    NnicTensor *wv = nnic_wrapper_weight (wr);
    for (int i = 0; i < k; i++)
      for (int j = 0; j < per; j++)
        wv->f32[ref[i].index * per + j] = 100.0f;
    gboolean ready = FALSE;
    ck_assert (nnic_compressor_calc_mask (c, wr, 0.3, &ready, &err));
    NNIC_ASSERT_NO_ERROR (err);
    ck_assert (ready);
    for (int f = 0; f < filters; f++)
      ck_assert_int_eq (mk->u8[f * per], score[f] > ref[k - 1].score);
    nnic_compressor_free (c);
    nnic_model_free (m);
  }
}
END_TEST

/* Filter maskers prune Conv2d only; slim BatchNorm2d only; slim needs
 * k >= 1 and entry 0's sparsity; a slim layer left with no channel is
 * named in a warning. */
START_TEST (test_structured_errors)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new_builtin ("nni_cnn_bn", 0, 0, 0, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 0); /* gammas all 1, as PyTorch's init */
  g_autoptr (NnicConfigList) all = nnic_config_list_new_from_json (
      "[{\"sparsity\": 0.5, \"op_types\": [\"default\"]}]", "t", &err);
  NNIC_ASSERT_NO_ERROR (err);
  const char *filters[] = { "l1filter", "l2filter", "fpgm" };
  for (guint i = 0; i < G_N_ELEMENTS (filters); i++) {
    NnicCompressor *c = nnic_compressor_new (m, filters[i], all, NULL, NULL, &err);
    ck_assert_ptr_null (c);
    g_autofree char *needle = g_strdup_printf ("layer 'fc1' is a Linear: %s prunes Conv2d filters only", filters[i]);
    NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, needle);
    g_clear_error (&err);
  }
  NnicCompressor *c = nnic_compressor_new (m, "slim", all, NULL, NULL, &err);
  ck_assert_ptr_null (c);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "layer 'conv1' is a Conv2d: slim prunes BatchNorm2d layers only");
  g_clear_error (&err);

  /* Entry 0 excludes bn1 and has no sparsity: NNI's config_list[0]['sparsity'] fails. */
  g_autoptr (NnicConfigList) excl = nnic_config_list_new_from_json (
      "[{\"exclude\": true, \"op_names\": [\"bn1\"]}, {\"sparsity\": 0.5, \"op_types\": [\"BatchNorm2d\"]}]", "t", &err);
  NNIC_ASSERT_NO_ERROR (err);
  c = nnic_compressor_new (m, "slim", excl, NULL, NULL, &err);
  ck_assert_ptr_null (c);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "config_list[0] has no sparsity");
  g_clear_error (&err);

  /* k = int(1 * 0.5) = 0 */
  const gint64 one = 1;
  g_autoptr (NnicModel) tiny = bn_chain_model (&one, 1);
  g_autoptr (NnicConfigList) bn = nnic_config_list_new_from_json (
      "[{\"sparsity\": 0.5, \"op_types\": [\"BatchNorm2d\"]}]", "t", &err);
  NNIC_ASSERT_NO_ERROR (err);
  c = nnic_compressor_new (tiny, "slim", bn, NULL, NULL, &err);
  ck_assert_ptr_null (c);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "k = int(1 channels * config_list[0].sparsity 0.5) = 0");
  g_clear_error (&err);

  /* PyTorch's init: every gamma is 1, t = 1, both layers die (NNI's real
   * behaviour, ANCHORS.md), loudly. */
  c = nnic_compressor_new (m, "slim", bn, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  g_autoptr (GPtrArray) warnings = g_ptr_array_new_with_free_func (g_free);
  guint handler = g_log_set_handler ("nnic", G_LOG_LEVEL_WARNING, capture_warning, warnings);
  gboolean ok = nnic_compressor_compress (c, &err);
  g_log_remove_handler ("nnic", handler);
  ck_assert (ok);
  ck_assert_uint_eq (warnings->len, 2);
  ck_assert_str_eq (g_ptr_array_index (warnings, 0),
                    "slim: bn1 loses all 20 of its channels (every |gamma| <= threshold 1): the network "
                    "will be dead; train with an L1 penalty on the BN scales first (NNI's SlimPruner recipe)");
  ck_assert_ptr_nonnull (strstr (g_ptr_array_index (warnings, 1), "slim: bn2 loses all 50 of its channels"));
  ck_assert (mask_all_zero (nnic_wrapper_get_mask (nnic_compressor_find_wrapper (c, "bn1"), "bias")));
  nnic_compressor_free (c);
}
END_TEST

/* The filter maskers' scores (channel_scores) of a layer, straight from
 * the plugin's vtable, with the kernels NNIC_FILTER_KERNELS picks. */
static float *
filter_channel_scores (const char *algorithm, NnicModel *m, const char *kernels)
{
  GError *err = NULL;
  if (kernels)
    g_setenv ("NNIC_FILTER_KERNELS", kernels, TRUE);
  else
    g_unsetenv ("NNIC_FILTER_KERNELS");
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (
      "[{\"sparsity\": 0.5, \"op_types\": [\"Conv2d\"]}]", "t", &err);
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, algorithm, cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const NnicAlgorithm *a = nnic_load_algorithm (algorithm, &err);
  NNIC_ASSERT_NO_ERROR (err);
  const NnicMaskerVTable *vt = a->info->vtable;
  ck_assert_ptr_nonnull (vt->channel_scores);
  gpointer state = vt->create (c, &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicWrapper *w = nnic_compressor_wrapper (c, 0);
  float *scores = g_new (float, nnic_wrapper_weight (w)->shape[0]);
  gboolean ready = FALSE;
  ck_assert (vt->channel_scores (state, c, w, scores, &ready, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (ready);
  vt->destroy (state);
  g_unsetenv ("NNIC_FILTER_KERNELS");
  return scores;
}

/* The baseline and the AVX2 kernels give the same bits (37 filters: tiles
 * of 2 and of 3 both leave rows over; 630 weights a filter: a block of 512,
 * one of 118, a tail of 6). */
START_TEST (test_filter_kernels_agree)
{
  GError *err = NULL;
  const int in = 70, filters = 37;
  g_autoptr (NnicModel) m = nnic_model_new (in, 3, 3);
  nnic_model_add_conv2d (m, "conv", NULL, &(NnicConv2dSpec) { .in_channels = in, .out_channels = filters, .kernel_size = 3 }, &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicTensor *wv = nnic_model_find_param (m, "conv.weight", &err)->value;
  fill_random (wv->f32, wv->numel, 3);
  const char *algorithms[] = { "l1filter", "l2filter", "fpgm" };
  for (guint i = 0; i < G_N_ELEMENTS (algorithms); i++) {
    g_autofree float *best = filter_channel_scores (algorithms[i], m, NULL);
    g_autofree float *base = filter_channel_scores (algorithms[i], m, "baseline");
    for (int f = 0; f < filters; f++)
      ck_assert_msg (memcmp (&best[f], &base[f], sizeof (float)) == 0, "%s filter %d: %.9g vs %.9g",
                     algorithms[i], f, best[f], base[f]);
  }
}
END_TEST

/* ---- the SDK's filter-masker helpers (include/nnic/masker.h) ---- */

typedef struct {
  guint calls;
  NnicFilterPruning seen;
  float first;           /* p->weight->f32[0] as get_mask saw it */
  const float *data;     /* p->weight->f32 */
  gboolean answer_ready; /* what get_mask sets *ready to */
} Probe;

static gboolean
probe_get_mask (gpointer state, const NnicFilterPruning *p, gboolean *ready, GError **error)
{
  (void) error;
  Probe *probe = state;
  ck_assert (*ready); /* TRUE on entry */
  probe->calls++;
  probe->seen = *p;
  probe->first = p->weight->f32[0];
  probe->data = p->weight->f32;
  *ready = probe->answer_ready;
  return TRUE;
}

/* The opening: num_prune = int(F * sparsity), get_mask only when F >= 2
 * and num_prune >= 1, weight * mask (a view when the mask has no zero),
 * the type check, *ready passed on, all-ones base masks on request. */
START_TEST (test_structured_opening)
{
  GError *err = NULL;
  g_autoptr (NnicModel) m = nnic_model_new (3, 3, 3);
  nnic_model_add_conv2d (m, "conv", NULL, &(NnicConv2dSpec) { .in_channels = 3, .out_channels = 6, .kernel_size = 3 }, &err);
  NNIC_ASSERT_NO_ERROR (err);
  nnic_model_init_params (m, 1);
  g_autoptr (NnicConfigList) cl = nnic_test_config ("[{\"sparsity\": 0.5, \"op_types\": [\"Conv2d\"]}]");
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, "l1filter", cl, NULL, NULL, &err);
  NNIC_ASSERT_NO_ERROR (err);
  NnicWrapper *w = nnic_compressor_wrapper (c, 0);
  NnicTensor *weight = nnic_wrapper_weight (w);
  Probe probe = { .answer_ready = TRUE };
  NnicStructuredMasker masker = { .struct_size = sizeof (NnicStructuredMasker), .name = "probe",
                                  .op_type = "Conv2d", .get_mask = probe_get_mask };
  gboolean ready = FALSE;

  /* 6 * 0.55 = 3.3: three filters, the parameter itself (no mask zero). */
  ck_assert (nnic_structured_calc_mask (&masker, &probe, c, w, 7, 0.55, &ready, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (ready);
  ck_assert_uint_eq (probe.calls, 1);
  ck_assert_ptr_eq (probe.seen.compressor, c);
  ck_assert_ptr_eq (probe.seen.wrapper, w);
  ck_assert_uint_eq (probe.seen.wrapper_index, 7);
  ck_assert (probe.seen.sparsity == 0.55);
  ck_assert_int_eq (probe.seen.filters, 6);
  ck_assert_int_eq (probe.seen.per_filter, 27);
  ck_assert_int_eq (probe.seen.num_prune, 3);
  ck_assert_ptr_eq (probe.data, weight->f32);

  /* A mask with zeros, and a weight that no longer has them: a masked copy. */
  g_autoptr (NnicTensor) mask = nnic_tensor_copy (nnic_wrapper_get_mask (w, "weight"), &err);
  mask->u8[0] = 0;
  ck_assert (nnic_wrapper_set_mask (w, "weight", mask, &err));
  weight->f32[0] = 5.0f;
  g_autoptr (NnicTensor) masked = nnic_wrapper_masked_weight (w, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (masked->f32 != weight->f32 && masked->f32[0] == 0.0f && masked->f32[1] == weight->f32[1]);
  ck_assert (nnic_structured_calc_mask (&masker, &probe, c, w, 0, 0.5, &ready, &err));
  ck_assert_uint_eq (probe.calls, 2);
  ck_assert (probe.first == 0.0f && probe.data != weight->f32);

  /* int(6 * 0.1) = 0: nothing to do, the masks stay as they are... */
  ck_assert (nnic_structured_calc_mask (&masker, &probe, c, w, 0, 0.1, &ready, &err));
  ck_assert (ready);
  ck_assert_uint_eq (probe.calls, 2);
  ck_assert_int_eq (nnic_wrapper_get_mask (w, "weight")->u8[0], 0);
  /* ... or become all ones with base_mask_ones (NNI's SlimPrunerMasker). */
  masker.base_mask_ones = TRUE;
  ck_assert (nnic_structured_calc_mask (&masker, &probe, c, w, 0, 0.1, &ready, &err));
  ck_assert_uint_eq (probe.calls, 2);
  ck_assert_int_eq (nnic_wrapper_pruned_count (w), 0);
  masker.base_mask_ones = FALSE;

  /* get_mask's *ready = FALSE (NNI's None) comes back. */
  probe.answer_ready = FALSE;
  ck_assert (nnic_structured_calc_mask (&masker, &probe, c, w, 0, 0.5, &ready, &err));
  ck_assert (!ready);

  /* Another layer type is refused, naming the layer and the algorithm. */
  masker.op_type = "BatchNorm2d";
  ck_assert (!nnic_structured_calc_mask (&masker, &probe, c, w, 0, 0.5, &ready, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "layer 'conv' is a Conv2d: probe prunes BatchNorm2d layers only");
  g_clear_error (&err);
  /* So is a masker without its size or get_mask. */
  masker.op_type = NULL;
  masker.struct_size = 0;
  ck_assert (!nnic_structured_calc_mask (&masker, &probe, c, w, 0, 0.5, &ready, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_ARGUMENT, "struct_size");
  g_clear_error (&err);
  ck_assert_uint_eq (probe.calls, 3);
}
END_TEST

/* Ascending, NaN after every number, -0 equal to 0. */
START_TEST (test_float_compare)
{
  float v[] = { NAN, 3.0f, -1.0f, -NAN, 0.0f, -INFINITY, -0.0f, INFINITY, 2.0f };
  qsort (v, G_N_ELEMENTS (v), sizeof (float), nnic_float_compare);
  const float want[] = { -INFINITY, -1.0f, 0.0f, 0.0f, 2.0f, 3.0f, INFINITY };
  for (guint i = 0; i < G_N_ELEMENTS (want); i++)
    ck_assert_msg (v[i] == want[i], "[%u] = %g, wanted %g", i, v[i], want[i]);
  ck_assert (isnan (v[7]) && isnan (v[8]));
  const float nan = NAN, one = 1.0f;
  ck_assert_int_eq (nnic_float_compare (&nan, &nan), 0);
  ck_assert_int_gt (nnic_float_compare (&nan, &one), 0);
  ck_assert_int_lt (nnic_float_compare (&one, &nan), 0);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("masks");
  TCase *tc = tcase_create ("nni-reference");
  tcase_add_test (tc, test_level_cases);
  tcase_add_test (tc, test_taylorfo_cases);
  tcase_add_test (tc, test_taylorfo_errors);
  tcase_add_test (tc, test_l1filter_cases);
  tcase_add_test (tc, test_l2filter_cases);
  tcase_add_test (tc, test_fpgm_cases);
  tcase_add_test (tc, test_slim_cases);
  tcase_add_test (tc, test_filter_probes);
  tcase_add_test (tc, test_fpgm_twins);
  tcase_add_test (tc, test_filter_norms_large);
  tcase_add_test (tc, test_structured_errors);
  tcase_add_test (tc, test_filter_kernels_agree);
  suite_add_tcase (s, tc);
  TCase *sdk = tcase_create ("sdk-helpers");
  tcase_add_test (sdk, test_structured_opening);
  tcase_add_test (sdk, test_float_compare);
  suite_add_tcase (s, sdk);
  return nnic_test_run (s);
}
