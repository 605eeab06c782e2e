/* Everything in the minivmm guest SDK. */
#ifndef MVG_MVG_H
#define MVG_MVG_H

#include <mvg/atomic.h>
#include <mvg/bootinfo.h>
#include <mvg/console.h>
#include <mvg/hypercall.h>
#include <mvg/string.h>
#include <mvg/time.h>

#endif
