/* PyTorch's default parameter initialisation, from a seeded generator so
 * that the same seed gives the same model everywhere. */
#include "core/ops/kernels.h"

#include <nnic/data.h>
#include <math.h>
#include <string.h>

static void
fill_uniform (NnicTensor *t, NnicRng *rng, double bound)
{
  for (int64_t i = 0; i < t->numel; i++)
    t->f32[i] = (float) ((2.0 * nnic_rng_uniform (rng) - 1.0) * bound);
}

/* nn.Conv2d and nn.Linear: kaiming_uniform_(a=sqrt(5)) on the weight,
 * which is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for the
 * bias. */
void
nnic_init_weighted (NnicNode *n, NnicRng *rng)
{
  NnicTensor *w = n->param[0];
  int64_t fan_in = w->numel / w->shape[0];
  double bound = fan_in > 0 ? 1.0 / sqrt ((double) fan_in) : 0.0;
  fill_uniform (w, rng, bound);
  if (n->n_params > 1)
    fill_uniform (n->param[1], rng, bound);
}

/* BatchNorm: weight 1, bias 0, running_mean 0, running_var 1, count 0. */
void
nnic_init_batchnorm (NnicNode *n, NnicRng *rng)
{
  (void) rng;
  for (guint k = 0; k < n->n_params; k++) {
    const char *p = n->param_local[k];
    gboolean one = strcmp (p, "weight") == 0 || strcmp (p, "running_var") == 0;
    nnic_tensor_fill (n->param[k], one ? 1.0f : 0.0f);
  }
}

void
nnic_model_init_params (NnicModel *m, guint64 seed)
{
  NnicRng rng;
  nnic_rng_seed (&rng, seed);
  for (guint i = 0; i < nnic_model_n_nodes (m); i++) {
    NnicNode *n = nnic_model_node (m, i);
    if (n->n_params > 0 && n->op->init_params)
      n->op->init_params (n, &rng);
  }
}
