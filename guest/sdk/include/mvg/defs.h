/* Common macros for the minivmm guest SDK (C and C++). */
#ifndef MVG_DEFS_H
#define MVG_DEFS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define MVG_EXTERN_C_BEGIN extern "C" {
#define MVG_EXTERN_C_END }
#define MVG_NORETURN [[noreturn]]
#else
#define MVG_EXTERN_C_BEGIN
#define MVG_EXTERN_C_END
#define MVG_NORETURN _Noreturn
#endif

#define MVG_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))

#endif
