/* A plugin with a valid descriptor that registers an algorithm the host
 * refuses; CASE_<NAME> (see meson.build) picks what is wrong. Each first
 * registers `fine_before`, which must vanish with the plugin. */
#include <nnic/plugin.h>

#include <stddef.h>

static gboolean
calc_mask (gpointer state, NnicCompressor *c, NnicWrapper *w, guint wrapper_index, double sparsity,
           gboolean *ready, GError **error)
{
  (void) state, (void) c, (void) w, (void) wrapper_index, (void) sparsity, (void) error;
  *ready = TRUE;
  return TRUE;
}

static const NnicMaskerVTable masker = { .struct_size = sizeof (NnicMaskerVTable), .calc_mask = calc_mask };
static const NnicMaskerVTable masker_small = { .struct_size = offsetof (NnicMaskerVTable, calc_mask),
                                               .calc_mask = calc_mask };
static const NnicMaskerVTable masker_empty = { .struct_size = sizeof (NnicMaskerVTable) };
static const NnicPrunerVTable pruner_empty = { .struct_size = sizeof (NnicPrunerVTable) };
static const NnicQuantizerVTable quantizer_empty = { .struct_size = sizeof (NnicQuantizerVTable) };

static const NnicConfigKey bad_type_key[] = { { .name = "level", .type = (NnicKeyType) 42 } };
static const NnicConfigKey bad_name_key[] = { { .name = "Level", .type = NNIC_KEY_NUMBER } };
static const NnicConfigKey twice_key[] = { { .name = "level", .type = NNIC_KEY_NUMBER },
                                           { .name = "level", .type = NNIC_KEY_INT } };

static const NnicAlgorithmInfo fine = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "fine_before",
  .vtable = &masker,
};

#define STRUCT_SIZE sizeof (NnicAlgorithmInfo)
#define KIND NNIC_ALGORITHM_MASKER
#define NAME "broken"
#define VTABLE &masker
#define KEYS NULL
#define N_KEYS 0

#if defined(CASE_BAD_NAME) || defined(CASE_IGNORED_REFUSAL)
#undef NAME
#define NAME "Bad-Name"
#elif defined(CASE_NULL_NAME)
#undef NAME
#define NAME NULL
#elif defined(CASE_BAD_KIND)
#undef KIND
#define KIND ((NnicAlgorithmKind) 7)
#elif defined(CASE_SMALL_INFO)
#undef STRUCT_SIZE
#define STRUCT_SIZE offsetof (NnicAlgorithmInfo, vtable)
#elif defined(CASE_NULL_VTABLE)
#undef VTABLE
#define VTABLE NULL
#elif defined(CASE_SMALL_VTABLE)
#undef VTABLE
#define VTABLE &masker_small
#elif defined(CASE_NO_CALC_MASK)
#undef VTABLE
#define VTABLE &masker_empty
#elif defined(CASE_NO_COMPRESS)
#undef VTABLE
#define VTABLE &pruner_empty
#undef KIND
#define KIND NNIC_ALGORITHM_PRUNER
#elif defined(CASE_NO_QUANTIZE)
#undef VTABLE
#define VTABLE &quantizer_empty
#undef KIND
#define KIND NNIC_ALGORITHM_QUANTIZER
#elif defined(CASE_BAD_KEY_TYPE)
#undef KEYS
#define KEYS bad_type_key
#undef N_KEYS
#define N_KEYS 1
#elif defined(CASE_BAD_KEY_NAME)
#undef KEYS
#define KEYS bad_name_key
#undef N_KEYS
#define N_KEYS 1
#elif defined(CASE_DUP_KEY)
#undef KEYS
#define KEYS twice_key
#undef N_KEYS
#define N_KEYS 2
#elif defined(CASE_NULL_KEYS)
#undef N_KEYS
#define N_KEYS 3
#else
#error "no CASE_ defined"
#endif

static const NnicAlgorithmInfo broken = {
  .struct_size = STRUCT_SIZE,
  .kind = KIND,
  .name = NAME,
  .keys = KEYS,
  .n_keys = N_KEYS,
  .vtable = VTABLE,
};

static gboolean
register_algorithms (NnicRegistrar *r, GError **error)
{
  (void) masker_small, (void) masker_empty, (void) pruner_empty, (void) quantizer_empty;
  (void) bad_type_key, (void) bad_name_key, (void) twice_key;
  if (!nnic_registrar_add (r, &fine, error))
    return FALSE;
#ifdef CASE_IGNORED_REFUSAL
  /* Ignores the refusal and claims success: the host refuses it anyway. */
  nnic_registrar_add (r, &broken, NULL);
  return TRUE;
#else
  return nnic_registrar_add (r, &broken, error);
#endif
}

NNIC_PLUGIN_DEFINE ("nnic-test-bad-info", "1.0.0", "MIT", "Registers a broken algorithm",
                    register_algorithms)
