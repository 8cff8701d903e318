/* Built-in models. Node names follow the PyTorch modules they mirror, so
 * that state dicts and NNI config lists written for those apply as is. */
#include <nnic/models.h>
#include <nnic/error.h>

#include <string.h>

typedef struct {
  NnicModel *m;
  GError **error;
  gboolean ok;
} Builder;

/* Each step runs only while the previous ones succeeded, so a builder
 * function reads as the model's definition, with one check at the end. */
#define STEP(b, call) ((b)->ok = (b)->ok && (call))

static void
conv (Builder *b, const char *name, const char *input, int in, int out, int k, int stride, int pad,
      gboolean bias)
{
  NnicConv2dSpec s = { .in_channels = in, .out_channels = out, .kernel_size = k, .stride = stride,
                       .padding = pad, .no_bias = !bias };
  STEP (b, nnic_model_add_conv2d (b->m, name, input, &s, b->error));
}

static void
linear_bias (Builder *b, const char *name, int in, int out, gboolean bias)
{
  NnicLinearSpec s = { .in_features = in, .out_features = out, .no_bias = !bias };
  STEP (b, nnic_model_add_linear (b->m, name, NULL, &s, b->error));
}

static void
linear (Builder *b, const char *name, int in, int out)
{
  linear_bias (b, name, in, out, TRUE);
}

static void
bn_eps (Builder *b, const char *name, int c, double eps)
{
  NnicBatchNormSpec s = { .num_features = c, .eps = eps };
  STEP (b, nnic_model_add_batchnorm2d (b->m, name, NULL, &s, b->error));
}

static void
bn (Builder *b, const char *name, int c)
{
  bn_eps (b, name, c, 0.0);
}

static void
bn1d (Builder *b, const char *name, int c, gboolean affine)
{
  NnicBatchNormSpec s = { .num_features = c, .no_affine = !affine };
  STEP (b, nnic_model_add_batchnorm1d (b->m, name, NULL, &s, b->error));
}

static void
hardtanh (Builder *b, const char *name)
{
  STEP (b, nnic_model_add_hardtanh (b->m, name, NULL, -1.0, 1.0, b->error));
}

static void
maxpool (Builder *b, const char *name, int k)
{
  NnicPool2dSpec s = { .kernel_size = k };
  STEP (b, nnic_model_add_maxpool2d (b->m, name, NULL, &s, b->error));
}

static void
relu (Builder *b, const char *name)
{
  STEP (b, nnic_model_add_relu (b->m, name, NULL, b->error));
}

static void
relu6 (Builder *b, const char *name)
{
  STEP (b, nnic_model_add_relu6 (b->m, name, NULL, b->error));
}

static void
flatten (Builder *b, const char *name)
{
  STEP (b, nnic_model_add_flatten (b->m, name, NULL, b->error));
}

/* The flattened size of the last node's output. */
static int
last_features (Builder *b)
{
  if (!b->ok)
    return 0;
  int64_t shape[NNIC_MAX_DIMS];
  int nd = nnic_model_node_shape (b->m, nnic_model_n_nodes (b->m) - 1, shape);
  int64_t n = 1;
  for (int i = 0; i < nd; i++)
    n *= shape[i];
  return (int) n;
}

/* LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling, padded for 28×28. */
static void
build_lenet5 (Builder *b, int c, int classes)
{
  conv (b, "conv1", NULL, c, 6, 5, 1, 2, TRUE);
  relu (b, "relu1");
  maxpool (b, "pool1", 2);
  conv (b, "conv2", NULL, 6, 16, 5, 1, 0, TRUE);
  relu (b, "relu2");
  maxpool (b, "pool2", 2);
  flatten (b, "flatten");
  linear (b, "fc1", last_features (b), 120);
  relu (b, "relu3");
  linear (b, "fc2", 120, 84);
  relu (b, "relu4");
  linear (b, "fc3", 84, classes);
}

/* `Mnist` of NNI's QAT and DoReFa MNIST examples. */
static void
build_nni_cnn (Builder *b, int c, int classes)
{
  conv (b, "conv1", NULL, c, 20, 5, 1, 0, TRUE);
  relu6 (b, "relu1");
  maxpool (b, "pool1", 2);
  conv (b, "conv2", NULL, 20, 50, 5, 1, 0, TRUE);
  relu6 (b, "relu2");
  maxpool (b, "pool2", 2);
  flatten (b, "flatten");
  linear (b, "fc1", last_features (b), 500);
  relu6 (b, "relu3");
  linear (b, "fc2", 500, classes);
}

/* `NaiveModel` of NNI's pruning example (its ReLUs are functional; the
 * nodes here get names so they can be addressed). */
static void
build_nni_cnn_bn (Builder *b, int c, int classes)
{
  conv (b, "conv1", NULL, c, 20, 5, 1, 0, TRUE);
  bn (b, "bn1", 20);
  relu (b, "relu1");
  maxpool (b, "pool1", 2);
  conv (b, "conv2", NULL, 20, 50, 5, 1, 0, TRUE);
  bn (b, "bn2", 50);
  relu (b, "relu2");
  maxpool (b, "pool2", 2);
  flatten (b, "flatten");
  linear (b, "fc1", last_features (b), 500);
  relu (b, "relu3");
  linear (b, "fc2", 500, classes);
}

/* A CIFAR-style VGG: three stages of two 3×3 conv + BN + ReLU and a
 * max-pool, as an nn.Sequential `features`, then global average pooling
 * and an nn.Sequential `classifier`. */
static void
build_vgg_small (Builder *b, int c, int classes)
{
  static const int widths[] = { 32, 32, 0, 64, 64, 0, 128, 128, 0 };
  int idx = 0, in = c;
  for (guint i = 0; i < G_N_ELEMENTS (widths); i++) {
    char name[32];
    if (widths[i] == 0) {
      g_snprintf (name, sizeof name, "features.%d", idx++);
      maxpool (b, name, 2);
      continue;
    }
    g_snprintf (name, sizeof name, "features.%d", idx++);
    conv (b, name, NULL, in, widths[i], 3, 1, 1, TRUE);
    g_snprintf (name, sizeof name, "features.%d", idx++);
    bn (b, name, widths[i]);
    g_snprintf (name, sizeof name, "features.%d", idx++);
    relu (b, name);
    in = widths[i];
  }
  STEP (b, nnic_model_add_adaptive_avgpool2d (b->m, "avgpool", NULL, 1, 1, b->error));
  flatten (b, "flatten");
  linear (b, "classifier.0", in, 256);
  relu (b, "classifier.1");
  STEP (b, nnic_model_add_dropout (b->m, "classifier.2", NULL, 0.5, b->error));
  linear (b, "classifier.3", 256, classes);
}

/* torchvision's BasicBlock: conv-bn-relu-conv-bn, plus the shortcut (a
 * 1×1 conv + BN `downsample` when the shape changes), then ReLU. */
static void
basic_block (Builder *b, const char *prefix, const char *input, int in, int out, int stride)
{
  g_autofree char *c1 = g_strdup_printf ("%s.conv1", prefix);
  g_autofree char *b1 = g_strdup_printf ("%s.bn1", prefix);
  g_autofree char *r1 = g_strdup_printf ("%s.relu1", prefix);
  g_autofree char *c2 = g_strdup_printf ("%s.conv2", prefix);
  g_autofree char *b2 = g_strdup_printf ("%s.bn2", prefix);
  g_autofree char *d0 = g_strdup_printf ("%s.downsample.0", prefix);
  g_autofree char *d1 = g_strdup_printf ("%s.downsample.1", prefix);
  g_autofree char *add = g_strdup_printf ("%s.add", prefix);
  g_autofree char *r2 = g_strdup_printf ("%s.relu2", prefix);
  const char *shortcut = input;
  if (stride != 1 || in != out) {
    conv (b, d0, input, in, out, 1, stride, 0, FALSE);
    bn (b, d1, out);
    shortcut = d1;
  }
  conv (b, c1, input, in, out, 3, stride, 1, FALSE);
  bn (b, b1, out);
  relu (b, r1);
  conv (b, c2, NULL, out, out, 3, 1, 1, FALSE);
  bn (b, b2, out);
  STEP (b, nnic_model_add_add (b->m, add, b2, shortcut, b->error));
  relu (b, r2);
}

/* A CIFAR-style ResNet-8: a stem and three stages of one BasicBlock. */
static void
build_resnet8 (Builder *b, int c, int classes)
{
  conv (b, "conv1", NULL, c, 16, 3, 1, 1, FALSE);
  bn (b, "bn1", 16);
  relu (b, "relu");
  basic_block (b, "layer1.0", "relu", 16, 16, 1);
  basic_block (b, "layer2.0", "layer1.0.relu2", 16, 32, 2);
  basic_block (b, "layer3.0", "layer2.0.relu2", 32, 64, 2);
  STEP (b, nnic_model_add_adaptive_avgpool2d (b->m, "avgpool", NULL, 1, 1, b->error));
  flatten (b, "flatten");
  linear (b, "fc", 64, classes);
}

/* The network of NNI's BNN example (BNNQuantizer; after its CIFAR-10
 * VGG, sized for 28×28): bias-free convolutions, BatchNorm (eps 1e-4) and
 * Hardtanh in an nn.Sequential `features`; the view(-1, 1600) of its
 * forward as `flatten`; an nn.Sequential `classifier` ending in a
 * BatchNorm1d without affine. Its LogSoftmax + NLL loss is nnic's
 * cross-entropy on these logits, so the model ends at classifier.4. */
static void
build_bnn_mnist (Builder *b, int c, int classes)
{
  conv (b, "features.0", NULL, c, 32, 5, 1, 0, FALSE);
  bn_eps (b, "features.1", 32, 1e-4);
  hardtanh (b, "features.2");
  conv (b, "features.3", NULL, 32, 64, 5, 1, 0, FALSE);
  maxpool (b, "features.4", 2);
  bn_eps (b, "features.5", 64, 1e-4);
  hardtanh (b, "features.6");
  maxpool (b, "features.7", 2);
  flatten (b, "flatten");
  linear_bias (b, "classifier.0", last_features (b), 512, FALSE);
  bn1d (b, "classifier.1", 512, TRUE);
  hardtanh (b, "classifier.2");
  linear (b, "classifier.3", 512, classes);
  bn1d (b, "classifier.4", classes, FALSE);
}

typedef struct {
  const char *name;
  void (*build) (Builder *b, int channels, int classes);
  const char *summary;
} BuiltinModel;

static const BuiltinModel builtins[] = {
  { "lenet5", build_lenet5, "LeNet-5: two 5x5 convs with ReLU and max-pool, three linear layers" },
  { "nni_cnn", build_nni_cnn,
    "NNI's MNIST example CNN (conv1 1->20, conv2 20->50, fc1 800->500, fc2; ReLU6), 431,080 parameters" },
  { "nni_cnn_bn", build_nni_cnn_bn, "NNI's pruning example (NaiveModel): nni_cnn with BatchNorm2d after each conv, ReLU" },
  { "vgg_small", build_vgg_small, "CIFAR-style VGG: 3 stages of 2 conv3x3+BN+ReLU, global pool, 2 linear" },
  { "resnet8", build_resnet8, "CIFAR-style ResNet-8: stem + 3 BasicBlocks with residual Adds" },
  { "bnn_mnist", build_bnn_mnist,
    "NNI's BNN example net for 28x28: 2 bias-free convs + BN + Hardtanh, Linear 1600->512 + BatchNorm1d, "
    "Linear 512->10 + BatchNorm1d (no affine)" },
};

static const char *const builtin_names[] = { "lenet5", "nni_cnn", "nni_cnn_bn", "vgg_small", "resnet8",
                                             "bnn_mnist", NULL };

const char *const *
nnic_builtin_model_names (void)
{
  return builtin_names;
}

const char *
nnic_builtin_model_summary (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (builtins); i++)
    if (g_strcmp0 (builtins[i].name, name) == 0)
      return builtins[i].summary;
  return NULL;
}

NnicModel *
nnic_model_new_builtin (const char *name, int channels, int height, int width, int n_classes,
                        GError **error)
{
  const BuiltinModel *def = NULL;
  for (guint i = 0; i < G_N_ELEMENTS (builtins); i++)
    if (g_strcmp0 (builtins[i].name, name) == 0)
      def = &builtins[i];
  if (!def) {
    g_autofree char *known = g_strjoinv (", ", (char **) builtin_names);
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_NOT_FOUND, "unknown model '%s' (built-in models: %s)",
                 name ? name : "(null)", known);
    return NULL;
  }
  if (channels < 0 || height < 0 || width < 0 || n_classes < 0) {
    g_set_error (error, NNIC_ERROR, NNIC_ERROR_ARGUMENT, "%s: negative input size or class count",
                 name);
    return NULL;
  }
  Builder b = { nnic_model_new (channels ? channels : 1, height ? height : 28, width ? width : 28),
                error, TRUE };
  def->build (&b, channels ? channels : 1, n_classes ? n_classes : 10);
  if (!b.ok) {
    g_prefix_error (error, "model %s: ", name);
    nnic_model_free (b.m);
    return NULL;
  }
  nnic_model_init_params (b.m, 0);
  return b.m;
}
