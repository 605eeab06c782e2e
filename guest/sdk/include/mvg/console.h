/* Console output on top of the write hypercall. */
#ifndef MVG_CONSOLE_H
#define MVG_CONSOLE_H

#include <mvg/defs.h>
#include <stdarg.h>

MVG_EXTERN_C_BEGIN
/* s and a newline, in one write hypercall when it fits the 512-byte buffer. */
void mvg_puts(const char* s);

/* printf subset: %d %i %u %x %X %p %s %c %%, length h hh l ll z, flags '-'
 * and '0', width and precision (digits or '*'). The text is formatted into a
 * 512-byte stack buffer and written with one hypercall per call (longer
 * output is written in 512-byte pieces). Returns the number of bytes. */
int mvg_printf(const char* fmt, ...) MVG_PRINTF(1, 2);
int mvg_vprintf(const char* fmt, va_list ap);

/* Like snprintf: always NUL-terminates when size > 0; returns the length the
 * whole text would have. */
int mvg_snprintf(char* buf, size_t size, const char* fmt, ...) MVG_PRINTF(3, 4);
int mvg_vsnprintf(char* buf, size_t size, const char* fmt, va_list ap);
MVG_EXTERN_C_END

#endif
