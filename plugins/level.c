/* level: NNI's LevelPrunerMasker. Prunes the weights of smallest
 * magnitude: k = int(numel * sparsity) (double, truncated), threshold t =
 * the k-th smallest |w * mask|, keep |w| > t (strictly: every weight tied
 * with the threshold goes too, as in NNI). The bias is never masked.
 *
 * The k-th smallest is found by radix selection on the bit patterns of
 * the magnitudes (non-negative floats order like their bits as integers):
 * three histogram passes over the weights, no sort and no copy. */
#include <nnic/plugin.h>

#include <string.h>

/* Bits of |x|: the sign cleared. */
static inline guint32
abs_bits (float x)
{
  guint32 u;
  memcpy (&u, &x, sizeof u);
  return u & 0x7fffffffu;
}

/* The k-th smallest (1-based) of the n magnitudes `bits[i]` (i where the
 * mask is set; masked-out weights count as 0), as a bit pattern. Each pass
 * narrows the prefix by one digit: 11 + 11 + 9 bits over bits 30..0. */
static guint32
kth_smallest_bits (const float *w, const guint8 *mask, int64_t n, int64_t k)
{
  static const int shifts[3] = { 20, 9, 0 };
  static const int widths[3] = { 11, 11, 9 };
  guint32 prefix = 0, prefix_mask = 0;
  g_autofree int64_t *hist = g_new (int64_t, 1 << 11);
  for (int pass = 0; pass < 3; pass++) {
    const int shift = shifts[pass], bins = 1 << widths[pass];
    memset (hist, 0, sizeof (int64_t) * (size_t) bins);
    for (int64_t i = 0; i < n; i++) {
      guint32 b = mask[i] ? abs_bits (w[i]) : 0u;
      if ((b & prefix_mask) == prefix)
        hist[(b >> shift) & (guint32) (bins - 1)]++;
    }
    int digit = 0;
    while (digit < bins - 1 && hist[digit] < k)
      k -= hist[digit++];
    prefix |= (guint32) digit << shift;
    prefix_mask |= (guint32) (bins - 1) << shift;
  }
  return prefix;
}

static gboolean
level_calc_mask (gpointer state, NnicCompressor *c, NnicWrapper *w, guint index, double sparsity,
                 gboolean *ready, GError **error)
{
  (void) state;
  (void) c;
  (void) index;
  NnicTensor *weight = nnic_wrapper_weight (w);
  const NnicTensor *old = nnic_wrapper_get_mask (w, "weight");
  const int64_t n = weight->numel;
  const int64_t k = (int64_t) ((double) n * sparsity);
  g_autoptr (NnicTensor) mask = nnic_tensor_new (NNIC_DTYPE_U8, weight->ndim, weight->shape, error);
  if (!mask)
    return FALSE;
  *ready = TRUE;
  if (k <= 0) {
    memset (mask->u8, 1, (size_t) n);
    return nnic_wrapper_set_mask (w, "weight", mask, error);
  }
  const guint32 t = kth_smallest_bits (weight->f32, old->u8, n, k);
  const float *v = weight->f32;
  const guint8 *m = old->u8;
  for (int64_t i = 0; i < n; i++)
    mask->u8[i] = (m[i] ? abs_bits (v[i]) : 0u) > t;
  return nnic_wrapper_set_mask (w, "weight", mask, error);
}

static const NnicMaskerVTable level_vtable = {
  .struct_size = sizeof (NnicMaskerVTable),
  .calc_mask = level_calc_mask,
};

static const NnicAlgorithmInfo level_info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "level",
  .description = "Fine-grained magnitude pruning: the smallest |w| of each layer go (NNI's LevelPruner)",
  .keys = NULL,
  .n_keys = 0,
  .vtable = &level_vtable,
};

static gboolean
register_level (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &level_info, error);
}

NNIC_PLUGIN_DEFINE ("nnic-level", "1.0.0", "MIT", "The level masker (NNI's LevelPruner)", register_level)
