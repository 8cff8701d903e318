/* Elementwise arithmetic with broadcasting (core/ops/binary.c) on the
 * shapes that are hot in torchvision's classifiers: a residual Add of equal
 * shapes, an SE block's x * gate and a layer scale ([C, 1, 1]), a bias
 * vector and a positional embedding on ViT's tokens, a scalar Mul.
 *
 *   bench_binary [--reps N]
 *
 * The baseline is a ReLU on the same input in the same run (one read, one
 * write per element: what any elementwise op costs at least); a binary op
 * reads a second operand, so a ratio near 1 to 1.5 is the memory's speed.
 * Times are medians of forward and of backward (both inputs' gradients)
 * through nnic_model_forward/backward. Prints one JSON object per case. */
#include <nnic/nnic.h>

#include "bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { SAME, PARAM, GATE, SCALAR, FLOOR } Kind;

typedef struct {
  const char *what;
  Kind kind;
  int nd;
  int64_t x[3];     /* per sample */
  int pn;
  int64_t p[3];     /* the Parameter's shape (PARAM) */
} Case;

static const Case cases[] = {
  { "residual_add_64x56x56", SAME, 3, { 64, 56, 56 }, 0, { 0 } },
  { "se_gate_mul_64x56x56", GATE, 3, { 64, 56, 56 }, 0, { 0 } },
  { "layer_scale_mul_96x56x56", PARAM, 3, { 96, 56, 56 }, 3, { 96, 1, 1 } },
  { "bias_add_197x768", PARAM, 2, { 197, 768 }, 1, { 768 } },
  { "pos_embedding_add_197x768", PARAM, 2, { 197, 768 }, 3, { 1, 197, 768 } },
  { "scalar_mul_64x56x56", SCALAR, 3, { 64, 56, 56 }, 0, { 0 } },
};

static NnicModel *
build (const Case *c, Kind kind, GError **error)
{
  const int64_t n = nnic_shape_numel (c->nd, c->x);
  NnicModel *m = nnic_model_new_flat ((int) n);
  gboolean ok = nnic_model_add_reshape (m, "x", "input", c->x, c->nd, error);
  switch (kind) {
  case SAME:
    ok = ok && nnic_model_add_relu (m, "r", "x", error) &&
         nnic_model_add_binary (m, "y", NNIC_BINARY_ADD, "x", "r", error);
    break;
  case GATE:
    ok = ok && nnic_model_add_adaptive_avgpool2d (m, "g", "x", 1, 1, error) &&
         nnic_model_add_binary (m, "y", NNIC_BINARY_MUL, "x", "g", error);
    break;
  case PARAM: {
    int64_t s[3];
    int sn = c->pn;
    memcpy (s, c->p, sizeof s);
    if (c->pn == c->nd + 1)
      memmove (s, s + 1, sizeof (int64_t) * (size_t) --sn);
    ok = ok && nnic_model_add_parameter (m, "p", c->p, c->pn, s, sn, error) &&
         nnic_model_add_binary (m, "y", NNIC_BINARY_MUL, "x", "p", error);
    break;
  }
  case SCALAR:
    ok = ok && nnic_model_add_binary_scalar (m, "y", NNIC_BINARY_MUL, "x", 0.5, FALSE, error);
    break;
  case FLOOR:
    ok = ok && nnic_model_add_relu (m, "y", "x", error);
    break;
  }
  if (!ok)
    g_clear_pointer (&m, nnic_model_free);
  return m;
}

static gboolean
time_case (const Case *c, Kind kind, int batch, int reps, double *fwd_ms, double *bwd_ms,
           GError **error)
{
  g_autoptr (NnicModel) m = build (c, kind, error);
  if (!m)
    return FALSE;
  nnic_model_set_input_grad (m, TRUE);
  const int64_t n = nnic_shape_numel (c->nd, c->x);
  g_autoptr (NnicTensor) x = nnic_tensor_new_f32 (error, 2, (int64_t) batch, n);
  if (!x)
    return FALSE;
  for (int64_t i = 0; i < x->numel; i++)
    x->f32[i] = (float) ((i * 7919) % 1000) / 500.0f - 1.0f;
  const NnicTensor *y = nnic_model_forward (m, x, error);
  if (!y)
    return FALSE;
  g_autoptr (NnicTensor) dy = nnic_tensor_new_like (y, error);
  nnic_tensor_fill (dy, 0.5f);
  double *f = g_new (double, reps), *b = g_new (double, reps);
  for (int r = 0; r < reps; r++) {
    double t0 = bench_now_s ();
    nnic_model_forward (m, x, NULL);
    double t1 = bench_now_s ();
    nnic_model_backward (m, dy, NULL);
    f[r] = t1 - t0;
    b[r] = bench_now_s () - t1;
  }
  *fwd_ms = 1e3 * bench_median (f, reps);
  *bwd_ms = 1e3 * bench_median (b, reps);
  g_free (f);
  g_free (b);
  return TRUE;
}

int
main (int argc, char **argv)
{
  int reps = 20, batch = 8;
  for (int i = 1; i < argc; i++)
    if (!strcmp (argv[i], "--reps") && i + 1 < argc)
      reps = atoi (argv[++i]);
  for (guint k = 0; k < G_N_ELEMENTS (cases); k++) {
    const Case *c = &cases[k];
    GError *err = NULL;
    double f, b, f0, b0;
    if (!time_case (c, c->kind, batch, reps, &f, &b, &err) ||
        !time_case (c, FLOOR, batch, reps, &f0, &b0, &err)) {
      fprintf (stderr, "%s: %s\n", c->what, err->message);
      return 1;
    }
    printf ("{\"case\": \"%s\", \"batch\": %d, \"forward_ms\": %.3f, \"backward_ms\": %.3f, "
            "\"relu_forward_ms\": %.3f, \"relu_backward_ms\": %.3f, \"forward_ratio\": %.2f, "
            "\"backward_ratio\": %.2f}\n",
            c->what, batch, f, b, f0, b0, f / f0, b / b0);
  }
  return 0;
}
