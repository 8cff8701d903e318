/* Config lists: parsing, the builder, validation messages (exact), NNI's
 * selection rules, quantizer accessors. */
#include "testutil.h"

#include "core/compress/internal.h"

#include <glib/gstdio.h>

#include <math.h>
#include <string.h>

/* Keys like AGP's (a scheduling pruner). */
static const NnicConfigKey agp_keys[] = {
  { "initial_sparsity", NNIC_KEY_NUMBER, 0, 1, FALSE, TRUE, FALSE, "0.0", NULL },
  { "final_sparsity", NNIC_KEY_NUMBER, 0, 1, FALSE, TRUE, TRUE, NULL, NULL },
  { "start_epoch", NNIC_KEY_INT, 0, INFINITY, FALSE, FALSE, FALSE, "0", NULL },
  { "end_epoch", NNIC_KEY_INT, 0, INFINITY, FALSE, FALSE, FALSE, "10", NULL },
  { "frequency", NNIC_KEY_INT, 1, INFINITY, FALSE, FALSE, FALSE, "1", NULL },
};

/* A masker with keys of the other types (and a range ignored: min > max). */
static const NnicConfigKey masker_keys[] = {
  { "dependency_aware", NNIC_KEY_BOOL, 0, 0, FALSE, FALSE, FALSE, "false", NULL },
  { "mode", NNIC_KEY_STRING, 0, 0, FALSE, FALSE, FALSE, NULL, NULL },
  { "batches", NNIC_KEY_INT, 1, 0, FALSE, FALSE, FALSE, NULL, NULL },
  { "ratio", NNIC_KEY_NUMBER, 0, 1, FALSE, FALSE, FALSE, NULL, NULL },
};

enum { NO_KEYS, AGP_KEYS, MASKER_KEYS };

#define M NNIC_ALGORITHM_MASKER
#define P NNIC_ALGORITHM_PRUNER
#define Q NNIC_ALGORITHM_QUANTIZER

typedef struct {
  NnicAlgorithmKind kind;
  int keys;
  const char *json;
  const char *message;
  gboolean prefix; /* the rest is json-glib's text */
} BadCase;

static const BadCase bad_cases[] = {
  /* The list itself. */
  { M, NO_KEYS, "{\"sparsity\": 0.5}", "config_list: must be a list of objects, got an object", FALSE },
  { M, NO_KEYS, "\"x\"", "config_list: must be a list of objects, got a string", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5}, {\"op_names\": [\"fc1\"], \"sparsity\": 0.5}, 3]",
    "config_list[2]: must be an object", FALSE },
  /* JSON syntax (the message names the source and the line). */
  { M, NO_KEYS, "[\n{\"op_types\": [\"default\"], \"sparsity\": 0.5,}\n]", "config_list: line 2: ", TRUE },
  { M, NO_KEYS, "[\n{\"op_types\": [\"default\"], \"sparsity\": 0.5},\n{\"op_types\": [\"default\"] \"sparsity\": 0.5}]",
    "config_list: line 3: ", TRUE },
  { M, NO_KEYS, "[\n{\"op_types\": [\"default\"], \"exclude\": tru}]", "config_list: line 2: ", TRUE },
  { M, NO_KEYS, "", "config_list: no JSON value (empty input)", FALSE },
  { M, NO_KEYS, "[]\n[{\"op_types\": [\"default\"], \"sparsity\": 0.5}]",
    "config_list: line 2: a second JSON value after the config list", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5}]\xff", "config_list: ", TRUE },
  { M, NO_KEYS, "var c = [{\"op_types\": [\"default\"], \"sparsity\": 0.5}];",
    "config_list: a JavaScript assignment (\"var x = ...\"), not JSON", FALSE },
  /* Keys given twice (json-glib would keep the last silently). */
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5, \"sparsity\": 0.7}]",
    "config_list[0].sparsity: given twice", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"], \"quant_bits\": {\"weight\": 8, \"weight\": 4}}]",
    "config_list[0].quant_bits.weight: given twice", FALSE },
  /* op_types */
  { M, NO_KEYS, "[{\"op_types\": [\"Linear\", \"Conv2D\"], \"sparsity\": 0.5}]",
    "config_list[0].op_types[1]: unknown type 'Conv2D'; did you mean 'Conv2d'?", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"Zyzzyva\"], \"sparsity\": 0.5}]",
    "config_list[0].op_types[0]: unknown type 'Zyzzyva' (valid: default, Conv2d, Linear, BatchNorm2d, BatchNorm1d, "
    "ReLU, ReLU6, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, Dropout, Add, Concat, Softmax, "
    "Reshape, Hardtanh, " /* the op table's later rows follow */, TRUE },
  { M, NO_KEYS, "[{\"op_types\": \"Conv2d\", \"sparsity\": 0.5}]",
    "config_list[0].op_types: must be a list of strings, got \"Conv2d\"", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [], \"sparsity\": 0.5}]", "config_list[0].op_types: must not be empty", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"Conv2d\", 3], \"sparsity\": 0.5}]",
    "config_list[0].op_types[1]: must be a string, got 3", FALSE },
  { M, NO_KEYS, "[{\"op_types\": {\"a_rather_long_key_name\": [1, 2, 3, 4, 5, 6, 7, 8]}, \"sparsity\": 0.5}]",
    "config_list[0].op_types: must be a list of strings, got {\"a_rather_long_key_name\":[1,2,3,4,5,...", FALSE },
  { M, NO_KEYS, "[{\"op_type\": [\"Conv2d\"], \"sparsity\": 0.5}]",
    "config_list[0].op_type: unknown key; did you mean 'op_types'?", FALSE },
  /* op_names */
  { M, NO_KEYS, "[{\"op_names\": [\"conv3\"], \"sparsity\": 0.5}]",
    "config_list[0].op_names[0]: no node named 'conv3'; did you mean 'conv1' or 'conv2'?", FALSE },
  { M, NO_KEYS, "[{\"op_names\": [\"conv1\", \"classifier\"], \"sparsity\": 0.5}]",
    "config_list[0].op_names[1]: no node named 'classifier'", FALSE },
  { M, NO_KEYS, "[{\"op_names\": [\"input\"], \"sparsity\": 0.5}]",
    "config_list[0].op_names[0]: 'input' is the model's input, not a layer", FALSE },
  { M, NO_KEYS, "[{\"op_names\": [], \"sparsity\": 0.5}]", "config_list[0].op_names: must not be empty", FALSE },
  { M, NO_KEYS, "[{\"op_names\": [null], \"sparsity\": 0.5}]",
    "config_list[0].op_names[0]: must be a string, got null", FALSE },
  /* exclude, selecting nothing */
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"exclude\": \"yes\"}]",
    "config_list[0].exclude: must be a boolean, got \"yes\"", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5}, {\"sparsity\": 0.5}]",
    "config_list[1]: selects no layer (give op_types or op_names)", FALSE },
  { Q, NO_KEYS, "[{\"exclude\": true}]", "config_list[0]: selects no layer (give op_types or op_names)", FALSE },
  /* sparsity */
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5}, {\"op_types\": [\"Linear\"], \"sparsity\": 1.5}]",
    "config_list[1].sparsity: must be in (0, 1), got 1.5", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0}]", "config_list[0].sparsity: must be in (0, 1), got 0", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 1.0}]", "config_list[0].sparsity: must be in (0, 1), got 1.0", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": \"0.5\"}]",
    "config_list[0].sparsity: must be a number in (0, 1), got \"0.5\"", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": [0.5]}]",
    "config_list[0].sparsity: must be a number in (0, 1), got [0.5]", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"default\"]}]", "config_list[0].sparsity: required", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5}, {\"op_names\": [\"fc2\"], \"exclude\": false}]",
    "config_list[1].sparsity: required", FALSE },
  { P, AGP_KEYS, "[{\"op_types\": [\"default\"], \"final_sparsity\": 0.8, \"sparsity\": -0.1}]",
    "config_list[0].sparsity: must be in (0, 1), got -0.1", FALSE },
  /* unknown keys */
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsty\": 0.5}]",
    "config_list[0].sparsty: unknown key; did you mean 'sparsity'?", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5, \"foo\": 1}]",
    "config_list[0].foo: unknown key (valid: exclude, op_names, op_types, sparsity)", FALSE },
  { M, NO_KEYS, "[{\"sparsty\": 0.5}]", "config_list[0].sparsty: unknown key; did you mean 'sparsity'?", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5, \"quant_bits\": 8}]",
    "config_list[0].quant_bits: unknown key (valid: exclude, op_names, op_types, sparsity)", FALSE },
  { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5, \"final_sparsity\": 0.5}]",
    "config_list[0].final_sparsity: unknown key (valid: exclude, op_names, op_types, sparsity)", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"], \"quant_bits\": 8, \"sparsity\": 0.5}]",
    "config_list[0].sparsity: unknown key (valid: exclude, op_names, op_types, quant_bits, quant_start_step, "
    "quant_types)", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_type\": [\"weight\"], \"quant_bits\": 8}]",
    "config_list[0].quant_type: unknown key; did you mean 'quant_types'?", FALSE },
  /* the first bad member, in the file's order, is the one reported */
  { M, NO_KEYS, "[{\"sparsity\": 2, \"foo\": 1}]", "config_list[0].sparsity: must be in (0, 1), got 2", FALSE },
  /* quantizers */
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_bits\": 8}]", "config_list[0].quant_types: required", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"]}]", "config_list[0].quant_bits: required", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weights\"], \"quant_bits\": 8}]",
    "config_list[0].quant_types[0]: unknown quant type 'weights'; did you mean 'weight'?", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\", \"bias\"], \"quant_bits\": 8}]",
    "config_list[0].quant_types[1]: unknown quant type 'bias' (valid: input, weight, output)", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": \"weight\", \"quant_bits\": 8}]",
    "config_list[0].quant_types: must be a list of strings, got \"weight\"", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [], \"quant_bits\": 8}]",
    "config_list[0].quant_types: must not be empty", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"], \"quant_bits\": 16}]",
    "config_list[0].quant_bits: must be in [1, 8], got 16", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"], \"quant_bits\": 0}]",
    "config_list[0].quant_bits: must be in [1, 8], got 0", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"], \"quant_bits\": \"8\"}]",
    "config_list[0].quant_bits: must be an integer in [1, 8] or an object, got \"8\"", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"], \"quant_bits\": 8.0}]",
    "config_list[0].quant_bits: must be an integer in [1, 8] or an object, got 8.0", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"], \"quant_bits\": {\"weight\": 9}}]",
    "config_list[0].quant_bits.weight: must be in [1, 8], got 9", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"], \"quant_bits\": {\"weight\": 4.5}}]",
    "config_list[0].quant_bits.weight: must be an integer in [1, 8], got 4.5", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"], \"quant_bits\": {\"wieght\": 8}}]",
    "config_list[0].quant_bits.wieght: unknown quant type 'wieght'; did you mean 'weight'?", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"], \"quant_bits\": {\"weight\": 8, \"output\": 8}}]",
    "config_list[0].quant_bits.output: not in quant_types", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\", \"output\"], \"quant_bits\": {\"weight\": 8}}]",
    "config_list[0].quant_bits: no bits for quant type 'output'", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"], \"quant_bits\": 8, \"quant_start_step\": -1}]",
    "config_list[0].quant_start_step: must be >= 0, got -1", FALSE },
  { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\"], \"quant_bits\": 8, \"quant_start_step\": 1.5}]",
    "config_list[0].quant_start_step: must be an integer >= 0, got 1.5", FALSE },
  /* algorithm keys (AGP's) */
  { P, AGP_KEYS, "[{\"op_types\": [\"default\"], \"initial_sparsity\": 0}]", "config_list[0].final_sparsity: required", FALSE },
  { P, AGP_KEYS, "[{\"op_types\": [\"default\"], \"final_sparsity\": 1}]",
    "config_list[0].final_sparsity: must be in [0, 1), got 1", FALSE },
  { P, AGP_KEYS, "[{\"op_types\": [\"default\"], \"final_sparsity\": \"0.8\"}]",
    "config_list[0].final_sparsity: must be a number in [0, 1), got \"0.8\"", FALSE },
  { P, AGP_KEYS, "[{\"op_types\": [\"default\"], \"final_sparsity\": 0.8, \"frequency\": 0.5}]",
    "config_list[0].frequency: must be an integer >= 1, got 0.5", FALSE },
  { P, AGP_KEYS, "[{\"op_types\": [\"default\"], \"final_sparsity\": 0.8, \"frequency\": 0}]",
    "config_list[0].frequency: must be >= 1, got 0", FALSE },
  { P, AGP_KEYS, "[{\"op_types\": [\"default\"], \"final_sparsity\": 0.8, \"end_epoch\": -2}]",
    "config_list[0].end_epoch: must be >= 0, got -2", FALSE },
  { P, AGP_KEYS, "[{\"op_types\": [\"default\"], \"final_sparsty\": 0.8}]",
    "config_list[0].final_sparsty: unknown key; did you mean 'final_sparsity'?", FALSE },
  { P, AGP_KEYS, "[{\"op_types\": [\"default\"], \"final_sparsity\": 0.8, \"foo\": true}]",
    "config_list[0].foo: unknown key (valid: end_epoch, exclude, final_sparsity, frequency, initial_sparsity, "
    "op_names, op_types, sparsity, start_epoch)", FALSE },
  { M, MASKER_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5, \"dependency_aware\": \"yes\"}]",
    "config_list[0].dependency_aware: must be a boolean, got \"yes\"", FALSE },
  { M, MASKER_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5, \"mode\": 3}]",
    "config_list[0].mode: must be a string, got 3", FALSE },
  { M, MASKER_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5, \"batches\": 2.5}]",
    "config_list[0].batches: must be an integer, got 2.5", FALSE },
  { M, MASKER_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5, \"ratio\": 2}]",
    "config_list[0].ratio: must be in [0, 1], got 2", FALSE },
  { M, MASKER_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5, \"ratio\": true}]",
    "config_list[0].ratio: must be a number in [0, 1], got true", FALSE },
};

static NnicModel *
nni_cnn (void)
{
  GError *err = NULL;
  NnicModel *m = nnic_model_new_builtin ("nni_cnn", 0, 0, 0, 0, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_ptr_nonnull (m);
  return m;
}

static const NnicConfigKey *
keys_of (int which, guint *n)
{
  switch (which) {
  case AGP_KEYS:
    *n = G_N_ELEMENTS (agp_keys);
    return agp_keys;
  case MASKER_KEYS:
    *n = G_N_ELEMENTS (masker_keys);
    return masker_keys;
  default:
    *n = 0;
    return NULL;
  }
}

/* Parses, then checks for kind; returns FALSE with the error set. */
static gboolean
load_and_check (const char *json, NnicAlgorithmKind kind, int which, const NnicModel *m, GError **err)
{
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_json (json, NULL, err);
  if (!cl)
    return FALSE;
  guint n;
  const NnicConfigKey *keys = keys_of (which, &n);
  return nnic_config_list_check (cl, m, kind, keys, n, err);
}

START_TEST (test_bad_configs)
{
  const BadCase *c = &bad_cases[_i];
  g_autoptr (NnicModel) m = nni_cnn ();
  GError *err = NULL;
  ck_assert_msg (!load_and_check (c->json, c->kind, c->keys, m, &err), "case %d was accepted: %s", _i,
                 c->json);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, c->message);
  if (c->prefix)
    ck_assert_msg (g_str_has_prefix (err->message, c->message) && strlen (err->message) > strlen (c->message),
                   "case %d: \"%s\" does not start with \"%s\"", _i, err->message, c->message);
  else
    ck_assert_str_eq (err->message, c->message);
  g_error_free (err);
}
END_TEST

/* Good configs of each kind pass, including exclude entries without the
 * keys a normal entry needs. */
START_TEST (test_good_configs)
{
  static const struct {
    NnicAlgorithmKind kind;
    int keys;
    const char *json;
  } good[] = {
    { M, NO_KEYS, "[]" },
    { M, NO_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5}, {\"op_names\": [\"fc2\"], \"exclude\": true}]" },
    { M, NO_KEYS, "[{\"op_types\": [\"Conv2d\", \"Linear\"], \"op_names\": [\"conv1\"], \"sparsity\": 0.999, \"exclude\": false}]" },
    { M, MASKER_KEYS, "[{\"op_types\": [\"default\"], \"sparsity\": 0.5, \"dependency_aware\": true, \"mode\": \"x\", "
                      "\"batches\": -7, \"ratio\": 1}]" },
    { P, AGP_KEYS, "[{\"op_types\": [\"default\"], \"initial_sparsity\": 0, \"final_sparsity\": 0.8, "
                   "\"start_epoch\": 0, \"end_epoch\": 10, \"frequency\": 1}]" },
    { P, AGP_KEYS, "[{\"op_types\": [\"default\"], \"final_sparsity\": 0.8, \"sparsity\": 0.5}, "
                   "{\"op_names\": [\"fc2\"], \"exclude\": true}]" },
    { Q, NO_KEYS, "[{\"op_types\": [\"default\"], \"quant_types\": [\"weight\", \"output\"], \"quant_bits\": "
                  "{\"weight\": 8, \"output\": 1}, \"quant_start_step\": 0}, {\"op_types\": [\"ReLU6\"], "
                  "\"quant_types\": [\"input\"], \"quant_bits\": 4}, {\"op_names\": [\"fc2\"], \"exclude\": true}]" },
  };
  g_autoptr (NnicModel) m = nni_cnn ();
  for (guint i = 0; i < G_N_ELEMENTS (good); i++) {
    GError *err = NULL;
    ck_assert_msg (load_and_check (good[i].json, good[i].kind, good[i].keys, m, &err), "good case %u: %s", i,
                   err ? err->message : "");
    NNIC_ASSERT_NO_ERROR (err);
  }
}
END_TEST

static NnicConfigList *
parse (const char *json)
{
  GError *err = NULL;
  NnicConfigList *cl = nnic_config_list_new_from_json (json, "test.json", &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_ptr_nonnull (cl);
  return cl;
}

static int
select_named (const NnicConfigList *cl, const NnicModel *m, const char *name)
{
  int node = nnic_model_find_node (m, name);
  ck_assert_int_ge (node, 0);
  return nnic_config_list_select (cl, m, (guint) node);
}

START_TEST (test_select)
{
  g_autoptr (NnicModel) m = nni_cnn ();
  GError *err = NULL;

  /* default = Conv2d + Linear; the last match wins; exclude removes. */
  g_autoptr (NnicConfigList) a = parse ("[{\"op_types\": [\"default\"], \"sparsity\": 0.5},"
                                        " {\"op_types\": [\"Conv2d\"], \"sparsity\": 0.7},"
                                        " {\"op_names\": [\"fc2\"], \"exclude\": true}]");
  ck_assert (nnic_config_list_check (a, m, M, NULL, 0, &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_int_eq (select_named (a, m, "input"), -1);
  ck_assert_int_eq (select_named (a, m, "conv1"), 1);
  ck_assert_int_eq (select_named (a, m, "conv2"), 1);
  ck_assert_int_eq (select_named (a, m, "fc1"), 0);
  ck_assert_int_eq (select_named (a, m, "fc2"), -1);
  ck_assert_int_eq (select_named (a, m, "relu1"), -1); /* matched by nothing */
  ck_assert_int_eq (select_named (a, m, "pool2"), -1);
  ck_assert_int_eq (select_named (a, m, "flatten"), -1);
  ck_assert_int_eq (nnic_config_list_select (a, m, nnic_model_n_nodes (m)), -1);
  ck_assert_int_eq (nnic_config_list_select (a, m, 9999), -1);

  /* op_types and op_names intersect. */
  g_autoptr (NnicConfigList) b = parse ("[{\"op_types\": [\"Linear\"], \"op_names\": [\"conv1\", \"fc1\"], \"sparsity\": 0.5}]");
  ck_assert (nnic_config_list_check (b, m, M, NULL, 0, &err));
  ck_assert_int_eq (select_named (b, m, "fc1"), 0);
  ck_assert_int_eq (select_named (b, m, "conv1"), -1);
  ck_assert_int_eq (select_named (b, m, "fc2"), -1);

  /* A later, broader entry overrides an earlier, narrower one. */
  g_autoptr (NnicConfigList) c = parse ("[{\"op_names\": [\"conv1\"], \"sparsity\": 0.3},"
                                        " {\"op_types\": [\"default\"], \"sparsity\": 0.5}]");
  ck_assert_int_eq (select_named (c, m, "conv1"), 1);
  ck_assert_int_eq (select_named (c, m, "fc2"), 1);

  /* An excluding entry followed by one that selects again. */
  g_autoptr (NnicConfigList) d = parse ("[{\"op_types\": [\"default\"], \"exclude\": true},"
                                        " {\"op_names\": [\"fc1\"], \"sparsity\": 0.5}]");
  ck_assert (nnic_config_list_check (d, m, M, NULL, 0, &err));
  ck_assert_int_eq (select_named (d, m, "conv1"), -1);
  ck_assert_int_eq (select_named (d, m, "fc1"), 1);

  /* exclude: false is an ordinary entry; a non-weighted type by name. */
  g_autoptr (NnicConfigList) e = parse ("[{\"op_types\": [\"ReLU6\", \"Linear\"], \"exclude\": false, \"sparsity\": 0.5}]");
  ck_assert_int_eq (select_named (e, m, "relu2"), 0);
  ck_assert_int_eq (select_named (e, m, "fc2"), 0);
  ck_assert_int_eq (select_named (e, m, "conv2"), -1);

  /* An empty list selects nothing. */
  g_autoptr (NnicConfigList) f = parse ("[]");
  ck_assert_uint_eq (nnic_config_list_len (f), 0);
  ck_assert_int_eq (select_named (f, m, "conv1"), -1);

  const char *const *def = nnic_default_op_types ();
  ck_assert_str_eq (def[0], "Conv2d");
  ck_assert_str_eq (def[1], "Linear");
  ck_assert_ptr_null (def[2]);
}
END_TEST

START_TEST (test_entries)
{
  g_autoptr (NnicConfigList) cl = parse ("[{\"sparsity\": 0.5, \"op_types\": [\"default\"], \"my_key\": {\"x\": 1}},"
                                         " {\"op_names\": [\"fc1\"], \"exclude\": true}]");
  ck_assert_uint_eq (nnic_config_list_len (cl), 2);
  JsonObject *e0 = nnic_config_list_entry (cl, 0);
  ck_assert_ptr_nonnull (e0);
  ck_assert_double_eq (json_object_get_double_member (e0, "sparsity"), 0.5);
  /* The file's key order is kept; unknown keys stay for the plugin. */
  g_autoptr (GList) keys = json_object_get_members (e0);
  ck_assert_uint_eq (g_list_length (keys), 3);
  ck_assert_str_eq (g_list_nth_data (keys, 0), "sparsity");
  ck_assert_str_eq (g_list_nth_data (keys, 1), "op_types");
  ck_assert_str_eq (g_list_nth_data (keys, 2), "my_key");
  ck_assert (json_object_get_boolean_member (nnic_config_list_entry (cl, 1), "exclude"));
  ck_assert_ptr_null (nnic_config_list_entry (cl, 2));
}
END_TEST

START_TEST (test_builder)
{
  g_autoptr (NnicModel) m = nni_cnn ();
  GError *err = NULL;
  g_autoptr (NnicConfigList) parsed = parse ("[{\"sparsity\": 0.8, \"op_types\": [\"default\"]},"
                                             " {\"op_names\": [\"conv1\", \"fc2\"], \"exclude\": true},"
                                             " {\"op_names\": [\"fc1\"], \"sparsity\": 0.25, \"frequency\": 2,"
                                             " \"mode\": \"fast\"}]");
  g_autoptr (NnicConfigList) built = nnic_config_list_new ();
  ck_assert_uint_eq (nnic_config_list_len (built), 0);
  guint e = nnic_config_list_add_entry (built);
  ck_assert_uint_eq (e, 0);
  nnic_config_list_set_double (built, e, "sparsity", 0.8);
  nnic_config_list_add_string (built, e, "op_types", "default");
  e = nnic_config_list_add_entry (built);
  ck_assert_uint_eq (e, 1);
  nnic_config_list_add_string (built, e, "op_names", "conv1");
  nnic_config_list_add_string (built, e, "op_names", "fc2");
  nnic_config_list_set_bool (built, e, "exclude", TRUE);
  e = nnic_config_list_add_entry (built);
  nnic_config_list_set_string (built, e, "op_names", "placeholder"); /* replaced by the list below */
  nnic_config_list_add_string (built, e, "op_names", "fc1");
  nnic_config_list_set_double (built, e, "sparsity", 0.25);
  nnic_config_list_set_int (built, e, "frequency", 2);
  nnic_config_list_set_string (built, e, "mode", "fast");

  ck_assert_uint_eq (nnic_config_list_len (built), nnic_config_list_len (parsed));
  for (guint i = 0; i < nnic_config_list_len (parsed); i++)
    ck_assert_msg (json_object_equal (nnic_config_list_entry (built, i), nnic_config_list_entry (parsed, i)),
                   "entry %u differs", i);
  for (guint n = 0; n < nnic_model_n_nodes (m); n++)
    ck_assert_int_eq (nnic_config_list_select (built, m, n), nnic_config_list_select (parsed, m, n));

  /* Both are checked the same way. */
  static const NnicConfigKey keys[] = {
    { "frequency", NNIC_KEY_INT, 1, INFINITY, FALSE, FALSE, FALSE, NULL, NULL },
    { "mode", NNIC_KEY_STRING, 0, 0, FALSE, FALSE, FALSE, NULL, NULL },
  };
  ck_assert (nnic_config_list_check (built, m, M, keys, G_N_ELEMENTS (keys), &err));
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert (!nnic_config_list_check (built, m, M, NULL, 0, &err));
  ck_assert_str_eq (err->message, "config_list[2].frequency: unknown key (valid: exclude, op_names, op_types, sparsity)");
  g_clear_error (&err);

  /* The builder does not validate; the check does, with the same messages. */
  g_autoptr (NnicConfigList) bad = nnic_config_list_new ();
  e = nnic_config_list_add_entry (bad);
  nnic_config_list_add_string (bad, e, "op_types", "default");
  nnic_config_list_set_double (bad, e, "sparsity", 1.5);
  ck_assert (!nnic_config_list_check (bad, m, M, NULL, 0, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, "sparsity");
  ck_assert_str_eq (err->message, "config_list[0].sparsity: must be in (0, 1), got 1.5");
  g_clear_error (&err);
  nnic_config_list_set_double (bad, e, "sparsity", NAN);
  ck_assert (!nnic_config_list_check (bad, m, M, NULL, 0, &err));
  ck_assert_str_eq (err->message, "config_list[0].sparsity: must be a number in (0, 1), got nan");
  g_clear_error (&err);
  nnic_config_list_set_double (bad, e, "sparsity", 0.5);
  nnic_config_list_set_string (bad, e, "op_types", "default");
  ck_assert (!nnic_config_list_check (bad, m, M, NULL, 0, &err));
  ck_assert_str_eq (err->message, "config_list[0].op_types: must be a list of strings, got \"default\"");
  g_clear_error (&err);
  nnic_config_list_set_int (bad, e, "quant_bits", 8);
  nnic_config_list_add_string (bad, e, "op_types", "Linear");
  nnic_config_list_add_string (bad, e, "op_names", "fc9");
  ck_assert (!nnic_config_list_check (bad, m, M, NULL, 0, &err));
  ck_assert_str_eq (err->message, "config_list[0].quant_bits: unknown key (valid: exclude, op_names, op_types, sparsity)");
  g_clear_error (&err);
  ck_assert (!nnic_config_list_check (bad, m, Q, NULL, 0, &err));
  ck_assert_str_eq (err->message, "config_list[0].sparsity: unknown key (valid: exclude, op_names, op_types, "
                                  "quant_bits, quant_start_step, quant_types)");
  g_clear_error (&err);
  /* Without a model, op_names are not looked up. */
  g_autoptr (NnicConfigList) nomodel = parse ("[{\"op_names\": [\"fc9\"], \"sparsity\": 0.5}]");
  ck_assert (nnic_config_list_check (nomodel, NULL, M, NULL, 0, &err));
  NNIC_ASSERT_NO_ERROR (err);
}
END_TEST

START_TEST (test_from_file)
{
  GError *err = NULL;
  g_autofree char *dir = nnic_test_tmpdir ();
  g_autofree char *missing = g_build_filename (dir, "nope.json", NULL);
  ck_assert_ptr_null (nnic_config_list_new_from_file (missing, &err));
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_IO, missing);
  g_clear_error (&err);

  const char bad[] = "[\n  {\"op_types\": [\"default\"],\n   \"sparsity\" 0.5}\n]\n";
  g_autofree char *bad_path = nnic_test_write (dir, "cfg.json", bad, strlen (bad));
  ck_assert_ptr_null (nnic_config_list_new_from_file (bad_path, &err));
  g_autofree char *want = g_strdup_printf ("%s: line 3: ", bad_path);
  NNIC_ASSERT_ERROR (err, NNIC_ERROR_CONFIG, want);
  ck_assert_msg (g_str_has_prefix (err->message, want), "%s", err->message);
  g_clear_error (&err);

  const char dup[] = "[\n  {\"op_types\": [\"default\"],\n   \"sparsity\": 0.5,\n   \"foo\": {\"a\": 1, \"a\": 2}}\n]\n";
  g_autofree char *dup_path = nnic_test_write (dir, "dup.json", dup, strlen (dup));
  ck_assert_ptr_null (nnic_config_list_new_from_file (dup_path, &err));
  ck_assert_str_eq (err->message, "config_list[0].foo.a: given twice");
  g_clear_error (&err);

  const char deep[] = "[{\"op_types\": [\"default\"], \"sparsity\": 0.5,\n \"foo\": [{\"a\": 1,\n \"a\": 2}]}]";
  g_autofree char *deep_path = nnic_test_write (dir, "deep.json", deep, strlen (deep));
  ck_assert_ptr_null (nnic_config_list_new_from_file (deep_path, &err));
  g_autofree char *want_deep = g_strdup_printf ("%s: line 3: key 'a' given twice", deep_path);
  ck_assert_str_eq (err->message, want_deep);
  g_clear_error (&err);

  const char good[] = "[{\"op_types\": [\"default\"], \"sparsity\": 0.5}]";
  g_autofree char *good_path = nnic_test_write (dir, "good.json", good, strlen (good));
  g_autoptr (NnicConfigList) cl = nnic_config_list_new_from_file (good_path, &err);
  NNIC_ASSERT_NO_ERROR (err);
  ck_assert_uint_eq (nnic_config_list_len (cl), 1);

  g_unlink (missing);
  g_unlink (bad_path);
  g_unlink (dup_path);
  g_unlink (deep_path);
  g_unlink (good_path);
  g_rmdir (dir);
}
END_TEST

START_TEST (test_quant_accessors)
{
  g_autoptr (NnicModel) m = nni_cnn ();
  GError *err = NULL;
  g_autoptr (NnicConfigList) cl = parse ("[{\"op_types\": [\"Conv2d\"], \"quant_types\": [\"weight\", \"output\"], \"quant_bits\": 8},"
                                         " {\"op_types\": [\"Linear\"], \"quant_types\": [\"input\", \"weight\"],"
                                         "  \"quant_bits\": {\"weight\": 4, \"input\": 8}},"
                                         " {\"op_names\": [\"fc2\"], \"exclude\": true}]");
  ck_assert (nnic_config_list_check (cl, m, Q, NULL, 0, &err));
  NNIC_ASSERT_NO_ERROR (err);
  JsonObject *e0 = nnic_config_list_entry (cl, 0), *e1 = nnic_config_list_entry (cl, 1);
  JsonObject *e2 = nnic_config_list_entry (cl, 2);
  ck_assert_uint_eq (nnic_config_entry_quant_types (e0), NNIC_QUANT_WEIGHT | NNIC_QUANT_OUTPUT);
  ck_assert_uint_eq (nnic_config_entry_quant_types (e1), NNIC_QUANT_INPUT | NNIC_QUANT_WEIGHT);
  ck_assert_uint_eq (nnic_config_entry_quant_types (e2), 0);
  /* An integer is the bits of every type (NNI's get_bits_length). */
  ck_assert_int_eq (nnic_config_entry_quant_bits (e0, NNIC_QUANT_WEIGHT), 8);
  ck_assert_int_eq (nnic_config_entry_quant_bits (e0, NNIC_QUANT_OUTPUT), 8);
  ck_assert_int_eq (nnic_config_entry_quant_bits (e1, NNIC_QUANT_WEIGHT), 4);
  ck_assert_int_eq (nnic_config_entry_quant_bits (e1, NNIC_QUANT_INPUT), 8);
  ck_assert_int_eq (nnic_config_entry_quant_bits (e1, NNIC_QUANT_OUTPUT), -1);
  ck_assert_int_eq (nnic_config_entry_quant_bits (e2, NNIC_QUANT_WEIGHT), -1);
  ck_assert_int_eq (nnic_config_entry_quant_bits (e0, NNIC_QUANT_WEIGHT | NNIC_QUANT_OUTPUT), -1);
  ck_assert_int_eq (select_named (cl, m, "conv2"), 0);
  ck_assert_int_eq (select_named (cl, m, "fc1"), 1);
  ck_assert_int_eq (select_named (cl, m, "fc2"), -1);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("config");
  TCase *tc = tcase_create ("config");
  tcase_add_loop_test (tc, test_bad_configs, 0, (int) G_N_ELEMENTS (bad_cases));
  tcase_add_test (tc, test_good_configs);
  tcase_add_test (tc, test_select);
  tcase_add_test (tc, test_entries);
  tcase_add_test (tc, test_builder);
  tcase_add_test (tc, test_from_file);
  tcase_add_test (tc, test_quant_accessors);
  suite_add_tcase (s, tc);
  return nnic_test_run (s);
}
