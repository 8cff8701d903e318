/* Masks against NNI v1.9's own: every reference case of a masker this
 * build has, through the C API (tests/fixtures/nni-masks, copied from
 * ../shared/reference/nni-masks; its SEMANTICS.md states the rules). */
#include "testutil.h"

#include <json-glib/json-glib.h>
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

/* Runs every case of `algorithm` in the manifest; returns how many ran. */
static int
run_cases (const char *algorithm)
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
      run_case (c);
      ran++;
    }
  }
  return ran;
}

START_TEST (test_level_cases)
{
  ck_assert_int_eq (run_cases ("level"), 8);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("masks");
  TCase *tc = tcase_create ("nni-reference");
  tcase_add_test (tc, test_level_cases);
  suite_add_tcase (s, tc);
  return nnic_test_run (s);
}
