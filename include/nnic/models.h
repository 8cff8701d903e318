/* nnic — built-in models, by name. */
#pragma once

#include <glib.h>
#include <nnic/export.h>
#include <nnic/model.h>

G_BEGIN_DECLS

/* "lenet5", "nni_cnn", "nni_cnn_bn", "vgg_small", "resnet8", "bnn_mnist". `channels`,
 * `height`, `width` give the input (0 → the model's default: 1×28×28), and
 * `n_classes` the outputs (0 → 10). Parameters are initialised with
 * nnic_model_init_params (seed 0). */
NNIC_API NnicModel *nnic_model_new_builtin (const char *name, int channels, int height, int width,
                                            int n_classes, GError **error);
/* NULL-terminated list of names. */
NNIC_API const char *const *nnic_builtin_model_names (void);
/* One line describing the model (for --help and `nnic models`). */
NNIC_API const char *nnic_builtin_model_summary (const char *name);

G_END_DECLS
