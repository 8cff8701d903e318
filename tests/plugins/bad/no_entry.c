/* A shared object that is not an nnic plugin: no nnic_plugin_descriptor. */
#include <nnic/plugin.h>

G_MODULE_EXPORT const NnicPluginDescriptor *nnic_plugin_descriptr (void);

G_MODULE_EXPORT const NnicPluginDescriptor *
nnic_plugin_descriptr (void)
{
  return NULL;
}
