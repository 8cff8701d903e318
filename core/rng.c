/* xoshiro256** seeded through splitmix64 (Blackman and Vigna).
 *
 * Our own generator rather than rand() or GRand so a seed gives the same
 * stream on every platform and library version: shuffles and
 * initialisations are reproducible across machines.
 */
#include <nnic/data.h>

static guint64
splitmix64 (guint64 *state)
{
  guint64 z = (*state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static inline guint64
rotl (guint64 x, int k)
{
  return (x << k) | (x >> (64 - k));
}

void
nnic_rng_seed (NnicRng *r, guint64 seed)
{
  /* splitmix64 never yields four zero words in a row, so the all-zero
   * state (a fixed point of xoshiro) cannot occur. */
  guint64 s = seed;
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64 (&s);
}

guint64
nnic_rng_next (NnicRng *r)
{
  guint64 *s = r->s;
  guint64 result = rotl (s[1] * 5, 7) * 9;
  guint64 t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl (s[3], 45);
  return result;
}

double
nnic_rng_uniform (NnicRng *r)
{
  /* The top 53 bits fill a double's mantissa exactly. */
  return (double) (nnic_rng_next (r) >> 11) * 0x1.0p-53;
}

guint64
nnic_rng_below (NnicRng *r, guint64 n)
{
  if (n == 0)
    return 0;
  /* Rejection: drop the 2^64 mod n lowest values so every residue is
   * equally likely (a plain modulo would favour small ones). */
  guint64 threshold = (0 - n) % n;
  for (;;) {
    guint64 x = nnic_rng_next (r);
    if (x >= threshold)
      return x % n;
  }
}
