/* nnic mask: one masker on one layer's weights from .npy files, the mask
 * written as .npy (float32 0/1, the weight's shape: NNI's weight_mask).
 * For checking nnic against NNI, or trying an algorithm on a layer.
 *
 * The layer is node "0" of a one-layer model, chosen by the weight's
 * dimensions: 4-D [O, I, kh, kw] is a Conv2d on an I x kh x kw input,
 * 2-D [O, I] a Linear, 1-D [C] a BatchNorm2d on a C x 1 x 1 input. The
 * config list is [{"sparsity": S, "op_types": [that type]}].
 *
 * Several --weight (each with its --out) are BatchNorm2d layers "0", "1",
 * ... pruned together (slim's global threshold spans them): the model is
 * input C0 x 1 x 1 → bn "0" → conv "conv_1" (1x1, C0 → C1) → bn "1" → ...;
 * the 1x1 convs only carry the channels and are not selected.
 *
 * With --grad, NNI's procedure for maskers that gather gradient
 * statistics (TaylorFO): an SGD optimizer with lr 0 (the weights stay),
 * then --steps times {weight.grad := G; step}. */
#include "cli.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct {
  char *algorithm, *grad;
  double sparsity;
  char **weights, **biases, **outs, **bias_outs;
  int steps;
} MaskArgs;

typedef struct {
  NnicTensor *weight, *bias; /* owned */
  const char *type;          /* "Conv2d", "Linear", "BatchNorm2d" */
} Layer;

static gboolean
fail (GError **error, const char *fmt, ...) G_GNUC_PRINTF (2, 3);

static gboolean
fail (GError **error, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  g_autofree char *msg = g_strdup_vprintf (fmt, ap);
  va_end (ap);
  g_set_error_literal (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, msg);
  return FALSE;
}

/* A float .npy (float64 is read as float32). */
static NnicTensor *
load_float (const char *path, const char *option, GError **error)
{
  NnicTensor *t = nnic_npy_load (path, error);
  if (!t) {
    g_prefix_error (error, "%s: ", option);
    return NULL;
  }
  if (t->dtype != NNIC_DTYPE_F32) {
    fail (error, "%s %s: must hold float32 (or float64), got %s", option, path, nnic_dtype_name (t->dtype));
    nnic_tensor_free (t);
    return NULL;
  }
  for (int d = 0; d < t->ndim; d++)
    if (t->shape[d] < 1) {
      g_autofree char *s = nnic_shape_to_string (t->ndim, t->shape);
      fail (error, "%s %s: empty array %s", option, path, s);
      nnic_tensor_free (t);
      return NULL;
    }
  return t;
}

static gboolean
load_layer (Layer *l, const char *wpath, const char *bpath, GError **error)
{
  if (!(l->weight = load_float (wpath, "--weight", error)))
    return FALSE;
  g_autofree char *shape = nnic_shape_to_string (l->weight->ndim, l->weight->shape);
  switch (l->weight->ndim) {
  case 4:
    l->type = "Conv2d";
    break;
  case 2:
    l->type = "Linear";
    break;
  case 1:
    l->type = "BatchNorm2d";
    break;
  default:
    return fail (error, "--weight %s: a weight must be 4-D (Conv2d [O, I, kh, kw]), 2-D (Linear [O, I]) "
                 "or 1-D (BatchNorm2d [C]), got %d-D %s", wpath, l->weight->ndim, shape);
  }
  if (!bpath)
    return TRUE;
  if (!(l->bias = load_float (bpath, "--bias", error)))
    return FALSE;
  if (l->bias->ndim != 1 || l->bias->shape[0] != l->weight->shape[0]) {
    g_autofree char *bshape = nnic_shape_to_string (l->bias->ndim, l->bias->shape);
    return fail (error, "--bias %s: the bias of a weight %s must have shape [%" G_GINT64_FORMAT "], got %s",
                 bpath, shape, l->weight->shape[0], bshape);
  }
  return TRUE;
}

static NnicModel *
build_model (Layer *layers, guint n, GError **error)
{
  const int64_t *s = layers[0].weight->shape;
  g_autoptr (NnicModel) m = NULL;
  gboolean ok = TRUE;
  if (g_str_equal (layers[0].type, "Conv2d")) {
    m = nnic_model_new ((int) s[1], (int) s[2], (int) s[3]);
    ok = nnic_model_add_conv2d (m, "0", NULL, &(NnicConv2dSpec) {
        .in_channels = (int) s[1], .out_channels = (int) s[0], .kernel_h = (int) s[2],
        .kernel_w = (int) s[3], .no_bias = !layers[0].bias }, error);
  } else if (g_str_equal (layers[0].type, "Linear")) {
    m = nnic_model_new_flat ((int) s[1]);
    ok = nnic_model_add_linear (m, "0", NULL, &(NnicLinearSpec) {
        .in_features = (int) s[1], .out_features = (int) s[0], .no_bias = !layers[0].bias }, error);
  } else {
    m = nnic_model_new ((int) s[0], 1, 1);
    for (guint i = 0; ok && i < n; i++) {
      g_autofree char *name = g_strdup_printf ("%u", i);
      if (i > 0) {
        g_autofree char *conv = g_strdup_printf ("conv_%u", i);
        ok = nnic_model_add_conv2d (m, conv, NULL, &(NnicConv2dSpec) {
            .in_channels = (int) layers[i - 1].weight->shape[0],
            .out_channels = (int) layers[i].weight->shape[0], .kernel_size = 1 }, error);
      }
      ok = ok && nnic_model_add_batchnorm2d (m, name, NULL, &(NnicBatchNormSpec) {
          .num_features = (int) layers[i].weight->shape[0] }, error);
    }
  }
  if (!ok)
    return NULL;
  for (guint i = 0; i < n; i++) {
    g_autofree char *wname = g_strdup_printf ("%u.weight", i);
    g_autofree char *bname = g_strdup_printf ("%u.bias", i);
    NnicParam *p = nnic_model_find_param (m, wname, error);
    if (!p || !nnic_tensor_copy_into (p->value, layers[i].weight, error))
      return NULL;
    if (layers[i].bias && (!(p = nnic_model_find_param (m, bname, error)) ||
                           !nnic_tensor_copy_into (p->value, layers[i].bias, error)))
      return NULL;
  }
  return g_steal_pointer (&m);
}

/* A uint8 mask as NNI's: float32 0/1 of the same shape. */
static gboolean
save_mask (const NnicTensor *mask, const char *path, GError **error)
{
  g_autoptr (NnicTensor) f = nnic_tensor_new (NNIC_DTYPE_F32, mask->ndim, mask->shape, error);
  if (!f)
    return FALSE;
  for (int64_t i = 0; i < mask->numel; i++)
    f->f32[i] = mask->u8[i] ? 1.0f : 0.0f;
  return nnic_npy_save (path, f, error);
}

static gboolean
check_args (const MaskArgs *a, guint *n_layers, GError **error)
{
  if (!a->algorithm)
    return fail (error, "--algorithm is required (nnic plugins lists the maskers)");
  if (isnan (a->sparsity))
    return fail (error, "--sparsity is required");
  if (!(a->sparsity > 0 && a->sparsity < 1))
    return fail (error, "--sparsity: must be in (0, 1), got %g", a->sparsity);
  const guint n = a->weights ? g_strv_length (a->weights) : 0;
  if (n == 0)
    return fail (error, "--weight is required");
  if (!a->outs || g_strv_length (a->outs) != n)
    return fail (error, "--out is required, once per --weight (%u --weight, %u --out)", n,
                 a->outs ? g_strv_length (a->outs) : 0);
  if (a->biases && g_strv_length (a->biases) != n)
    return fail (error, "--bias: give it once per --weight or not at all (%u --weight, %u --bias)", n,
                 g_strv_length (a->biases));
  if (a->bias_outs && g_strv_length (a->bias_outs) != n)
    return fail (error, "--bias-out: give it once per --weight or not at all (%u --weight, %u --bias-out)",
                 n, g_strv_length (a->bias_outs));
  if (a->grad && n != 1)
    return fail (error, "--grad goes with a single --weight");
  if (a->steps < 1)
    return fail (error, "--steps: must be at least 1, got %d", a->steps);
  *n_layers = n;
  return TRUE;
}

static gboolean
run (const MaskArgs *a, GError **error)
{
  guint n = 0;
  if (!check_args (a, &n, error))
    return FALSE;
  const NnicAlgorithm *alg = nnic_load_algorithm (a->algorithm, error);
  if (!alg)
    return FALSE;
  if (alg->info->kind != NNIC_ALGORITHM_MASKER)
    return fail (error, "%s is a %s, not a masker: nnic mask runs maskers (nnic plugins lists them)",
                 a->algorithm, nnic_algorithm_kind_name (alg->info->kind));

  g_autofree Layer *layers = g_new0 (Layer, n);
  gboolean ok = TRUE;
  g_autoptr (NnicModel) m = NULL;
  g_autoptr (NnicTensor) grad = NULL;
  for (guint i = 0; ok && i < n; i++)
    ok = load_layer (&layers[i], a->weights[i], a->biases ? a->biases[i] : NULL, error);
  for (guint i = 1; ok && i < n; i++)
    if (layers[i].weight->ndim != 1 || layers[0].weight->ndim != 1)
      ok = fail (error, "--weight given %u times: several layers must all be BatchNorm2d (1-D weights), "
                 "but %s is %d-D", n, a->weights[layers[0].weight->ndim != 1 ? 0 : i],
                 layers[layers[0].weight->ndim != 1 ? 0 : i].weight->ndim);
  if (ok && a->grad && (grad = load_float (a->grad, "--grad", error)) &&
      !nnic_tensor_same_shape (grad, layers[0].weight)) {
    g_autofree char *gs = nnic_shape_to_string (grad->ndim, grad->shape);
    g_autofree char *ws = nnic_shape_to_string (layers[0].weight->ndim, layers[0].weight->shape);
    ok = fail (error, "--grad %s: shape %s differs from the weight's %s", a->grad, gs, ws);
  }
  ok = ok && (!a->grad || grad) && (m = build_model (layers, n, error));
  for (guint i = 0; i < n; i++) {
    nnic_tensor_free (layers[i].weight);
    nnic_tensor_free (layers[i].bias);
  }
  if (!ok)
    return FALSE;
  const char *type = layers[0].type;

  g_autoptr (NnicConfigList) cl = nnic_config_list_new ();
  guint e = nnic_config_list_add_entry (cl);
  nnic_config_list_set_double (cl, e, "sparsity", a->sparsity);
  nnic_config_list_add_string (cl, e, "op_types", type);
  g_autoptr (NnicOptimizer) opt = NULL;
  if (grad) {
    /* SGD(lr=0): nnic wants lr > 0 at creation, so set it to 0 after. */
    if (!(opt = nnic_optimizer_new_sgd (m, &(NnicSgdOptions) { .lr = 1.0 }, error)))
      return FALSE;
    nnic_optimizer_set_lr (opt, 0.0);
  }
  g_autoptr (NnicCompressor) c = nnic_compressor_new (m, a->algorithm, cl, opt, NULL, error);
  if (!c) {
    if (!grad && strstr ((*error)->message, "optimizer")) {
      g_autofree char *msg = g_strdup ((*error)->message);
      g_clear_error (error);
      return fail (error, "%s (give --grad G.npy: nnic mask then steps an SGD optimizer with lr 0, as "
                   "NNI's procedure does)", msg);
    }
    return FALSE;
  }
  gboolean ready = TRUE;
  if (!grad) {
    /* One-shot, as compress() does, but asking each wrapper whether its
     * mask is there. */
    for (guint i = 0; ready && i < nnic_compressor_n_wrappers (c); i++)
      if (!nnic_compressor_calc_mask (c, nnic_compressor_wrapper (c, i), a->sparsity, &ready, error))
        return FALSE;
  } else {
    NnicParam *p = nnic_model_find_param (m, "0.weight", error);
    if (!p || !nnic_compressor_compress (c, error))
      return FALSE;
    for (int s = 0; s < a->steps; s++) {
      nnic_model_zero_grad (m);
      if (!nnic_tensor_copy_into (p->grad, grad, error))
        return FALSE;
      nnic_optimizer_step (opt);
    }
    /* Asks the masker once more: its statistics must be complete now (the
     * mask it gives is the one the steps gave). */
    if (!nnic_compressor_calc_mask (c, nnic_compressor_wrapper (c, 0), a->sparsity, &ready, error))
      return FALSE;
  }
  if (!ready)
    return fail (error, "%s gave no mask%s: it needs statistics nnic mask cannot gather%s", a->algorithm,
                 grad ? " after the optimizer steps" : "",
                 grad ? " (more --steps?)" : " (activations need forward passes over data: use nnic compress; "
                                             "gradients: give --grad)");

  for (guint i = 0; i < nnic_compressor_n_wrappers (c); i++) {
    NnicWrapper *w = nnic_compressor_wrapper (c, i);
    const NnicTensor *wm = nnic_wrapper_get_mask (w, "weight");
    if (!save_mask (wm, a->outs[i], error))
      return FALSE;
    int64_t zeros = 0;
    for (int64_t k = 0; k < wm->numel; k++)
      zeros += !wm->u8[k];
    g_autofree char *shape = nnic_shape_to_string (wm->ndim, wm->shape);
    printf ("%s %s %s: %" G_GINT64_FORMAT " of %" G_GINT64_FORMAT " weights masked (%.2f%%), wrote %s\n",
            nnic_wrapper_name (w), type, shape, zeros, wm->numel, 100.0 * (double) zeros / (double) wm->numel,
            a->outs[i]);
    if (a->bias_outs) {
      const NnicTensor *bm = nnic_wrapper_get_mask (w, "bias");
      if (!bm)
        return fail (error, "--bias-out %s: layer %s has no bias (give --bias)", a->bias_outs[i],
                     nnic_wrapper_name (w));
      if (!save_mask (bm, a->bias_outs[i], error))
        return FALSE;
    }
  }
  return TRUE;
}

int
nnic_cmd_mask (int argc, char **argv)
{
  MaskArgs a = { .sparsity = NAN, .steps = 2 };
  GOptionEntry entries[] = {
    { "algorithm", 'a', 0, G_OPTION_ARG_STRING, &a.algorithm, "Masker (nnic plugins lists them)", "NAME" },
    { "sparsity", 's', 0, G_OPTION_ARG_DOUBLE, &a.sparsity, "Sparsity of the config entry, in (0, 1)", "S" },
    { "weight", 'w', 0, G_OPTION_ARG_FILENAME_ARRAY, &a.weights, "Weight (.npy, float32): [O, I, kh, kw] Conv2d, [O, I] Linear, [C] BatchNorm2d; repeat for several BatchNorm2d layers", "W.npy" },
    { "bias", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &a.biases, "Bias (.npy), once per --weight", "B.npy" },
    { "grad", 0, 0, G_OPTION_ARG_FILENAME, &a.grad, "Gradient of the weight: step an SGD optimizer with lr 0 (TaylorFO)", "G.npy" },
    { "steps", 0, 0, G_OPTION_ARG_INT, &a.steps, "Optimizer steps with --grad (default 2, NNI's procedure)", "N" },
    { "out", 'o', 0, G_OPTION_ARG_FILENAME_ARRAY, &a.outs, "Weight mask to write (.npy, float32 0/1), once per --weight", "M.npy" },
    { "bias-out", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &a.bias_outs, "Bias mask to write, once per --weight", "BM.npy" },
    { NULL, 0, 0, 0, NULL, NULL, NULL },
  };
  g_autoptr (GOptionContext) ctx = g_option_context_new ("- one masker on one layer's weights (.npy)");
  g_option_context_set_summary (ctx,
      "Runs a masker on a layer made from a weight file, as NNI's pruner would with\n"
      "[{\"sparsity\": S, \"op_types\": [the layer's type]}], and writes the weight mask as\n"
      "float32 0/1 .npy of the weight's shape (NNI's weight_mask). Example:\n"
      "  nnic mask --algorithm l1filter --sparsity 0.5 --weight conv.npy --bias b.npy --out mask.npy\n"
      "Several BatchNorm2d layers (slim's global threshold spans them): repeat --weight and --out.");
  g_option_context_add_main_entries (ctx, entries, NULL);
  GError *error = NULL;
  int status = 0;
  if (g_option_context_parse (ctx, &argc, &argv, &error) && argc > 1)
    g_set_error (&error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "unexpected argument '%s'", argv[1]);
  if (error || !run (&a, &error))
    status = nnic_cli_fail ("mask", error);
  g_free (a.algorithm);
  g_free (a.grad);
  g_strfreev (a.weights);
  g_strfreev (a.biases);
  g_strfreev (a.outs);
  g_strfreev (a.bias_outs);
  return status;
}
