/* liblp_greet.so: the shared library lp_greet needs (DT_NEEDED). A
 * constructor, a thread-local counter and a relocated pointer, which the
 * dynamic loader must have set up before lp_greet's main runs. */
#include <stddef.h>

static int constructed;
static __thread int calls;
static const char* const greeting = "hello from liblp_greet.so";

__attribute__((constructor)) static void lp_greet_init(void) {
    constructed = 1;
}

const char* lp_greeting(int* count) {
    *count = ++calls;
    return constructed ? greeting : NULL;
}
