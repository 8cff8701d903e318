/* Channel dependencies of the model graph: which layers' output channels
 * are tied by residual additions, and how grouped convolutions constrain
 * the channels they read. What dependency-aware filter pruning needs.
 *
 * A layer's channels lie on one axis of its output: dim 0 of a Conv2d's
 * [C, H, W], the last of a Linear's (its features, or the C of tokens
 * [T, C] and channels-last maps [H, W, C]). Layers that keep channels
 * keep that axis; two layers are tied only when their channels meet on
 * the same axis (counted from the end, as broadcasting aligns shapes):
 * a Conv2d's C and a Linear's last axis added together are different
 * things, whatever the shapes. An Add of [C, H, W] maps is asked about
 * each of its three axes in turn. */
#include "core/graph.h"

#include <string.h>

/* The axis of a MAKE node's channels, counted from the end (-1: the last). */
static int
channel_axis (const NnicNode *n)
{
  return (n->op->channel_axis ? n->op->channel_axis (n) : 0) - n->shape_ndim;
}

/* The layers that made the channels on axis `axis` (counted from the end)
 * reaching `n`: through ops that keep channels (input 0's) and through the
 * inputs of ops that tie them (Add, Mul) that have that axis with the
 * output's extent: SE's x * gate ties the convolution making x to the one
 * making the [C, 1, 1] gate, but a [1, H, W] spatial gate, or a [W]
 * vector, is broadcast along the channels and ties nothing. Inputs are
 * looked up by index, so that an input transform's private copy leads
 * back to the real node. */
static void
producers (const NnicModel *m, const NnicNode *n, int axis, GArray *out)
{
  const NnicChannelRule rule = nnic_node_channels (n);
  if (rule == NNIC_CHANNELS_MAKE) {
    if (channel_axis (n) == axis)
      g_array_append_val (out, n->index);
    return;
  }
  const guint n_in = rule == NNIC_CHANNELS_TIE ? n->n_inputs : rule == NNIC_CHANNELS_KEEP ? 1 : 0;
  for (guint k = 0; k < n_in; k++) {
    const NnicNode *in = nnic_graph_node (m, n->inputs[k]->index);
    if (rule == NNIC_CHANNELS_TIE &&
        (in->shape_ndim < -axis || n->shape_ndim < -axis ||
         in->shape[in->shape_ndim + axis] != n->shape[n->shape_ndim + axis]))
      continue;
    producers (m, in, axis, out);
  }
  /* Input, Flatten, Reshape, Softmax, Concat, Transpose, MatMul: the
   * channels come from elsewhere, are new, or are mixed. */
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
    /* the channels of each axis the sum has: a Conv2d's first, a
     * Linear's last */
    for (int axis = -node->shape_ndim; axis < 0; axis++) {
      g_array_set_size (found, 0);
      producers (m, node, axis, found);
      for (guint k = 1; k < found->len; k++) {
        guint a = find (parent, g_array_index (found, guint, 0)), b = find (parent, g_array_index (found, guint, k));
        if (a != b)
          parent[MAX (a, b)] = MIN (a, b);
      }
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
    /* grouped convolutions split the channels on their input's axis 0 */
    const NnicNode *in = nnic_graph_node (m, c->inputs[0]->index);
    producers (m, in, -in->shape_ndim, from);
    for (guint k = 0; k < from->len; k++)
      if (g_array_index (from, guint, k) == node)
        groups = MAX (groups, c_groups);
  }
  return groups;
}
