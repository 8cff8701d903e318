/* block_level: magnitude pruning in blocks. The weights of each row are
 * cut into blocks of `block_size` consecutive entries (the last one may be
 * shorter); a block's score is the sum of its |w|, and the
 * int(blocks * sparsity) lowest-scoring blocks are pruned, together with
 * every block tied with the last of them (as nnic's level masker does for
 * single weights). Blocks of zeros are what sparse kernels can skip.
 *
 * A template: copy this folder, rename the algorithm, change calc_mask. */
#include <nnic/plugin.h>

#include <math.h>
#include <stdlib.h>

static int
compare_floats (const void *a, const void *b)
{
  float x = *(const float *) a, y = *(const float *) b;
  return (x > y) - (x < y);
}

static gboolean
block_level_calc_mask (gpointer state, NnicCompressor *c, NnicWrapper *w, guint index,
                       double sparsity, gboolean *ready, GError **error)
{
  (void) state;
  (void) c;
  (void) index;
  NnicTensor *weight = nnic_wrapper_weight (w);
  const int64_t block = (int64_t) nnic_wrapper_config_double (w, "block_size", 4);
  const int64_t rows = weight->shape[0], cols = weight->numel / rows;
  const int64_t per_row = (cols + block - 1) / block, n_blocks = rows * per_row;
  g_autoptr (NnicTensor) mask = nnic_tensor_new (NNIC_DTYPE_U8, weight->ndim, weight->shape, error);
  if (!mask)
    return FALSE;
  g_autofree float *score = g_new0 (float, n_blocks);
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++)
      score[r * per_row + j / block] += fabsf (weight->f32[r * cols + j]);

  const int64_t k = (int64_t) ((double) n_blocks * sparsity);
  float threshold = -1.0f; /* below every score: prunes nothing */
  if (k > 0) {
    g_autofree float *sorted = g_memdup2 (score, sizeof (float) * (size_t) n_blocks);
    qsort (sorted, (size_t) n_blocks, sizeof (float), compare_floats);
    threshold = sorted[k - 1];
  }
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++)
      mask->u8[r * cols + j] = score[r * per_row + j / block] > threshold;
  *ready = TRUE;
  return nnic_wrapper_set_mask (w, "weight", mask, error);
}

static const NnicMaskerVTable block_level_vtable = {
  .struct_size = sizeof (NnicMaskerVTable),
  .calc_mask = block_level_calc_mask,
};

/* Keys a config list entry may have beyond the core ones (op_types,
 * op_names, exclude, sparsity): nnic checks their type and range. */
static const NnicConfigKey block_level_keys[] = {
  { .name = "block_size", .type = NNIC_KEY_INT, .min = 1, .max = 65536, .default_text = "4",
    .help = "consecutive weights of a row pruned together" },
};

static const NnicAlgorithmInfo block_level_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "block_level",
  .description = "Magnitude pruning of blocks of consecutive weights",
  .keys = block_level_keys,
  .n_keys = G_N_ELEMENTS (block_level_keys),
  .key_size = sizeof (NnicConfigKey),
  .vtable = &block_level_vtable,
};

static gboolean
register_algorithms (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &block_level_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-block-level", "1.0.0", "MIT",
                    "A template masker: block magnitude pruning", register_algorithms)
