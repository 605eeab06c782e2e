/* lp_greet: a dynamically linked program that needs a library of its own,
 * liblp_greet.so, found through LD_LIBRARY_PATH. With the library: its
 * constructor ran, its thread-local counter counts, its string comes back.
 * Without it the dynamic loader itself reports the missing library and ends
 * the program with status 127 before main. */
#include "lp_common.h"

const char* lp_greeting(int* count);

int main(void) {
    lp_start();
    int count = 0;
    const char* text = lp_greeting(&count);
    CHECK(text != NULL, "the library's constructor ran");
    CHECK(count == 1, "the library's thread-local counter starts at 0");
    printf("%s\n", text);
    lp_greeting(&count);
    CHECK(count == 2, "the library's thread-local counter counts");
    printf("lp_greet: ok\n");
    return 0;
}
