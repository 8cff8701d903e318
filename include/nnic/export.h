/* nnic — what libnnic exports.
 *
 * libnnic is built with hidden symbol visibility: only what is declared
 * with NNIC_API in these headers is visible to programs and plugins, and
 * that is the whole of the public API (and of the plugin ABI). Everything
 * else in the library is internal and may change at any time.
 */
#pragma once

#if defined(__GNUC__) || defined(__clang__)
#define NNIC_API __attribute__ ((visibility ("default")))
#else
#define NNIC_API
#endif
