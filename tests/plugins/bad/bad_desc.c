/* A descriptor the host refuses, written by hand instead of with
 * NNIC_PLUGIN_DEFINE. CASE_<NAME> (see meson.build) picks what is wrong.
 * If the host accepted it anyway, `should_not_appear` would show up. */
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

static const NnicMaskerVTable vtable = { .struct_size = sizeof (NnicMaskerVTable), .calc_mask = calc_mask };

static const NnicAlgorithmInfo info = {
  .struct_size = sizeof (NnicAlgorithmInfo),
  .kind = NNIC_ALGORITHM_MASKER,
  .name = "should_not_appear",
  .vtable = &vtable,
};

static gboolean
register_algorithms (NnicRegistrar *r, GError **error)
{
  return nnic_registrar_add (r, &info, error);
}

#define MAJOR NNIC_PLUGIN_ABI_MAJOR
#define MINOR NNIC_PLUGIN_ABI_MINOR
#define SIZE sizeof (NnicPluginDescriptor)
#define LICENSE "MIT"
#define REGISTER register_algorithms

#if defined(CASE_ABI_MAJOR)
#undef MAJOR
#define MAJOR (NNIC_PLUGIN_ABI_MAJOR + 1)
#elif defined(CASE_ABI_MAJOR_OLDER)
#undef MAJOR
#define MAJOR (NNIC_PLUGIN_ABI_MAJOR - 1)
#elif defined(CASE_ABI_MINOR_NEWER)
#undef MINOR
#define MINOR (NNIC_PLUGIN_ABI_MINOR + 1)
#elif defined(CASE_SMALL_DESCRIPTOR)
#undef SIZE
#define SIZE offsetof (NnicPluginDescriptor, name)
#elif defined(CASE_NO_LICENSE)
#undef LICENSE
#define LICENSE NULL
#elif defined(CASE_NO_REGISTER)
#undef REGISTER
#define REGISTER NULL
#elif !defined(CASE_NULL_DESCRIPTOR)
#error "no CASE_ defined"
#endif

G_MODULE_EXPORT const NnicPluginDescriptor *nnic_plugin_descriptor (void);

G_MODULE_EXPORT const NnicPluginDescriptor *
nnic_plugin_descriptor (void)
{
#ifdef CASE_NULL_DESCRIPTOR
  (void) register_algorithms;
  return NULL;
#else
  static const NnicPluginDescriptor desc = {
    .abi_major = MAJOR,
    .abi_minor = MINOR,
    .struct_size = SIZE,
    .name = "nnic-test-bad-descriptor",
    .version = "1.0.0",
    .license = LICENSE,
    .description = "A descriptor the host refuses",
    .register_algorithms = REGISTER,
  };
  (void) register_algorithms;
  return &desc;
#endif
}
