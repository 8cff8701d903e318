/* Channel dependencies of the model graph: which layers' output channels
 * are tied by residual additions, and how grouped convolutions constrain
 * the channels they read. What dependency-aware filter pruning needs. */
#include "core/graph.h"

#include <string.h>

/* The layers that made the channels reaching `n`: through ops that keep
 * channels (input 0's) and through the inputs of ops that tie them (Add,
 * Mul) whose channels are the output's: SE's x * gate ties the convolution
 * making x to the one making the [C, 1, 1] gate, but a [1, H, W] spatial
 * gate, or a [W] vector, is broadcast along the channels and ties nothing.
 * Inputs are looked up by index, so that an input transform's private
 * copy leads back to the real node. */
static void
producers (const NnicModel *m, const NnicNode *n, GArray *out)
{
  const NnicChannelRule rule = nnic_node_channels (n);
  if (rule == NNIC_CHANNELS_MAKE) {
    g_array_append_val (out, n->index);
    return;
  }
  const guint n_in = rule == NNIC_CHANNELS_TIE ? n->n_inputs : rule == NNIC_CHANNELS_KEEP ? 1 : 0;
  for (guint k = 0; k < n_in; k++) {
    const NnicNode *in = nnic_graph_node (m, n->inputs[k]->index);
    if (rule == NNIC_CHANNELS_TIE &&
        (in->shape_ndim != n->shape_ndim || in->shape_ndim < 1 || in->shape[0] != n->shape[0]))
      continue;
    producers (m, in, out);
  }
  /* Input, Flatten, Reshape, Softmax, Concat: the channels come from
   * elsewhere, are new, or are mixed. */
}

static guint
find (guint *parent, guint x)
{
  while (parent[x] != x)
    x = parent[x] = parent[parent[x]];
  return x;
}

GPtrArray *
nnic_model_channel_dependencies (const NnicModel *m)
{
  guint n = nnic_model_n_nodes (m);
  g_autofree guint *parent = g_new (guint, n);
  for (guint i = 0; i < n; i++)
    parent[i] = i;
  g_autoptr (GArray) found = g_array_new (FALSE, FALSE, sizeof (guint));
  for (guint i = 0; i < n; i++) {
    const NnicNode *node = nnic_graph_node (m, i);
    if (nnic_node_channels (node) != NNIC_CHANNELS_TIE)
      continue;
    g_array_set_size (found, 0);
    producers (m, node, found);
    for (guint k = 1; k < found->len; k++) {
      guint a = find (parent, g_array_index (found, guint, 0)), b = find (parent, g_array_index (found, guint, k));
      if (a != b)
        parent[MAX (a, b)] = MIN (a, b);
    }
  }
  /* Sets of two or more, each in model order, ordered by first member. */
  GPtrArray *sets = g_ptr_array_new_with_free_func ((GDestroyNotify) g_array_unref);
  g_autofree GArray **by_root = g_new0 (GArray *, n);
  for (guint i = 0; i < n; i++) {
    guint r = find (parent, i);
    if (r == i && nnic_node_channels (nnic_graph_node (m, i)) != NNIC_CHANNELS_MAKE)
      continue;
    if (!by_root[r]) {
      by_root[r] = g_array_new (FALSE, FALSE, sizeof (guint));
      g_ptr_array_add (sets, by_root[r]);
    }
    g_array_append_val (by_root[r], i);
  }
  for (guint i = sets->len; i-- > 0;)
    if (((GArray *) g_ptr_array_index (sets, i))->len < 2)
      g_ptr_array_remove_index (sets, i);
  return sets;
}

int
nnic_model_channel_groups (const NnicModel *m, guint node)
{
  int groups = 1;
  guint n = nnic_model_n_nodes (m);
  for (guint i = node + 1; i < n; i++) {
    const NnicNode *c = nnic_graph_node (m, i);
    const int c_groups = c->op->input_groups ? c->op->input_groups (c) : 1;
    if (c_groups <= 1)
      continue;
    g_autoptr (GArray) from = g_array_new (FALSE, FALSE, sizeof (guint));
    producers (m, nnic_graph_node (m, c->inputs[0]->index), from);
    for (guint k = 0; k < from->len; k++)
      if (g_array_index (from, guint, k) == node)
        groups = MAX (groups, c_groups);
  }
  return groups;
}
