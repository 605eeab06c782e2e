/* memcpy & co. Built with -fno-builtin -fno-tree-loop-distribute-patterns so
 * the compiler cannot turn these loops back into calls to themselves; the
 * copies use `rep movsb`/`rep stosb`, which are fast on current CPUs. */
#include <mvg/string.h>

void* memcpy(void* dst, const void* src, size_t n) {
    void* d = dst;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}

void* memset(void* dst, int c, size_t n) {
    void* d = dst;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
    return dst;
}

void* memmove(void* dst, const void* src, size_t n) {
    unsigned char* d = (unsigned char*)dst;
    const unsigned char* s = (const unsigned char*)src;
    if (d <= s || d >= s + n) return memcpy(dst, src, n); /* forward copy is safe */
    while (n--) /* overlapping with dst above src: backwards */
        d[n] = s[n];
    return dst;
}

int memcmp(const void* a, const void* b, size_t n) {
    const unsigned char *p = (const unsigned char*)a, *q = (const unsigned char*)b;
    for (; n; n--, p++, q++)
        if (*p != *q) return *p - *q;
    return 0;
}

/* clang may turn memcmp(...) == 0 into bcmp. */
int bcmp(const void* a, const void* b, size_t n) {
    return memcmp(a, b, n);
}

size_t strlen(const char* s) {
    const char* p = s;
    while (*p)
        p++;
    return (size_t)(p - s);
}

int strcmp(const char* a, const char* b) {
    while (*a && *a == *b)
        a++, b++;
    return (unsigned char)*a - (unsigned char)*b;
}

int strncmp(const char* a, const char* b, size_t n) {
    for (; n; n--, a++, b++) {
        if (*a != *b || !*a) return (unsigned char)*a - (unsigned char)*b;
    }
    return 0;
}

int mvg_parse_u64(const char* s, uint64_t* out) {
    unsigned base = 10;
    uint64_t v = 0;
    int digits = 0;
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) base = 16, s += 2;
    for (;; s++, digits++) {
        unsigned d;
        if (*s >= '0' && *s <= '9')
            d = (unsigned)(*s - '0');
        else if (base == 16 && (*s | 0x20) >= 'a' && (*s | 0x20) <= 'f')
            d = (unsigned)((*s | 0x20) - 'a' + 10);
        else
            break;
        if (v > (UINT64_MAX - d) / base) return 0; /* overflow */
        v = v * base + d;
    }
    while (*s == ' ' || *s == '\t' || *s == '\n')
        s++;
    if (!digits || *s) return 0;
    *out = v;
    return 1;
}
