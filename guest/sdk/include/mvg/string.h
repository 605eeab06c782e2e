/* The C string functions the SDK provides. gcc and clang may emit calls to
 * memcpy/memset/memmove/memcmp on their own (struct copies, zeroing), so these
 * are real symbols with C linkage. Include as <mvg/string.h>. */
#ifndef MVG_STRING_H
#define MVG_STRING_H

#include <mvg/defs.h>

MVG_EXTERN_C_BEGIN
void* memcpy(void* dst, const void* src, size_t n);
void* memset(void* dst, int c, size_t n);
void* memmove(void* dst, const void* src, size_t n);
int memcmp(const void* a, const void* b, size_t n);
int bcmp(const void* a, const void* b, size_t n);
size_t strlen(const char* s);
int strcmp(const char* a, const char* b);
int strncmp(const char* a, const char* b, size_t n);

/* Parses a decimal or 0x-prefixed hex number that fills the whole string
 * (leading and trailing spaces allowed). Returns 1 and sets *out on success,
 * 0 on an empty string, junk or overflow (*out untouched). */
int mvg_parse_u64(const char* s, uint64_t* out);
MVG_EXTERN_C_END

#endif
