/* mvg_printf and friends: a small printf into a stack buffer. */
#include <mvg/mvg.h>

#define MVG_CONSOLE_BUF 512

/* Where formatted characters go: a buffer that is either flushed to the
 * console when full (printf) or truncated (snprintf). */
struct sink {
    char* buf;
    size_t cap, pos, total;
    int flush;
};

static void put(struct sink* s, char c) {
    s->total++;
    if (s->pos == s->cap) {
        if (!s->flush) return;
        mvg_write(s->buf, s->pos);
        s->pos = 0;
    }
    s->buf[s->pos++] = c;
}

static void put_n(struct sink* s, char c, int n) {
    while (n-- > 0)
        put(s, c);
}

struct spec {
    int left, zero, width, prec;
};

/* Emits sign/prefix, zero padding and digits with C printf semantics. */
static void put_num(struct sink* s, const struct spec* sp, uint64_t v, int neg, unsigned base,
                    int upper, const char* prefix) {
    const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char tmp[24];
    int nd = 0;
    if (!(v == 0 && sp->prec == 0)) /* "%.0d" of 0 prints no digits */
        do
            tmp[nd++] = digits[v % base];
        while ((v /= base) != 0);
    int npre = (int)strlen(prefix) + (neg ? 1 : 0);
    int zeros = sp->prec > nd ? sp->prec - nd : 0;
    if (sp->zero && !sp->left && sp->prec < 0 && sp->width > npre + nd)
        zeros = sp->width - npre - nd;
    int pad = sp->width - npre - zeros - nd;
    if (!sp->left) put_n(s, ' ', pad);
    if (neg) put(s, '-');
    while (*prefix)
        put(s, *prefix++);
    put_n(s, '0', zeros);
    while (nd)
        put(s, tmp[--nd]);
    if (sp->left) put_n(s, ' ', pad);
}

static int parse_int(const char** f) {
    int v = 0;
    while (**f >= '0' && **f <= '9')
        v = v * 10 + (*(*f)++ - '0');
    return v;
}

static void format(struct sink* s, const char* f, va_list ap) {
    for (; *f; f++) {
        if (*f != '%') {
            put(s, *f);
            continue;
        }
        f++;
        struct spec sp = {0, 0, 0, -1};
        for (;; f++) {
            if (*f == '-')
                sp.left = 1;
            else if (*f == '0')
                sp.zero = 1;
            else
                break;
        }
        if (*f == '*') {
            sp.width = va_arg(ap, int), f++;
            if (sp.width < 0) sp.left = 1, sp.width = -sp.width;
        } else {
            sp.width = parse_int(&f);
        }
        if (*f == '.') {
            f++;
            if (*f == '*')
                sp.prec = va_arg(ap, int), f++;
            else
                sp.prec = parse_int(&f);
            if (sp.prec < 0) sp.prec = -1;
        }
        int lng = 0, shrt = 0; /* lng: 1 = l/z, 2 = ll; shrt: 1 = h, 2 = hh */
        for (;; f++) {
            if (*f == 'l')
                lng++;
            else if (*f == 'z')
                lng = 1; /* size_t is unsigned long on x86-64 */
            else if (*f == 'h')
                shrt++;
            else
                break;
        }
        switch (*f) {
        case 'd':
        case 'i': {
            int64_t v = lng == 2 ? va_arg(ap, long long) : lng ? va_arg(ap, long) : va_arg(ap, int);
            if (!lng && shrt) v = shrt == 1 ? (short)v : (signed char)v;
            /* Negate as unsigned so INT64_MIN works. */
            put_num(s, &sp, v < 0 ? -(uint64_t)v : (uint64_t)v, v < 0, 10, 0, "");
            break;
        }
        case 'u':
        case 'x':
        case 'X': {
            uint64_t v = lng == 2 ? va_arg(ap, unsigned long long)
                         : lng    ? va_arg(ap, unsigned long)
                                  : va_arg(ap, unsigned);
            if (!lng && shrt) v = shrt == 1 ? (unsigned short)v : (unsigned char)v;
            put_num(s, &sp, v, 0, *f == 'u' ? 10 : 16, *f == 'X', "");
            break;
        }
        case 'p':
            put_num(s, &sp, (uintptr_t)va_arg(ap, void*), 0, 16, 0, "0x");
            break;
        case 's': {
            const char* str = va_arg(ap, const char*);
            if (!str) str = "(null)";
            int n = 0;
            while (str[n] && (sp.prec < 0 || n < sp.prec))
                n++;
            if (!sp.left) put_n(s, ' ', sp.width - n);
            for (int i = 0; i < n; i++)
                put(s, str[i]);
            if (sp.left) put_n(s, ' ', sp.width - n);
            break;
        }
        case 'c':
            if (!sp.left) put_n(s, ' ', sp.width - 1);
            put(s, (char)va_arg(ap, int));
            if (sp.left) put_n(s, ' ', sp.width - 1);
            break;
        case '%':
            put(s, '%');
            break;
        case '\0': /* lone '%' at the end */
            return;
        default: /* unknown conversion: print it verbatim */
            put(s, '%');
            put(s, *f);
            break;
        }
    }
}

int mvg_vprintf(const char* fmt, va_list ap) {
    char buf[MVG_CONSOLE_BUF];
    struct sink s = {buf, sizeof buf, 0, 0, 1};
    format(&s, fmt, ap);
    if (s.pos) mvg_write(buf, s.pos);
    return (int)s.total;
}

int mvg_printf(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = mvg_vprintf(fmt, ap);
    va_end(ap);
    return n;
}

int mvg_vsnprintf(char* buf, size_t size, const char* fmt, va_list ap) {
    struct sink s = {buf, size ? size - 1 : 0, 0, 0, 0};
    format(&s, fmt, ap);
    if (size) buf[s.pos] = '\0';
    return (int)s.total;
}

int mvg_snprintf(char* buf, size_t size, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = mvg_vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

void mvg_puts(const char* s) {
    char buf[MVG_CONSOLE_BUF];
    size_t n = strlen(s);
    if (n >= sizeof buf) { /* too long to add the newline in place */
        mvg_write(s, n);
        mvg_write("\n", 1);
        return;
    }
    memcpy(buf, s, n);
    buf[n] = '\n';
    mvg_write(buf, n + 1);
}
