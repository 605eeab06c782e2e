// Every vCPU prints "vcpu I ok"; vCPU 0 prints last, after all others, then
// exits 0. Output lines of SMP tests can be counted. Written in C++ to keep
// the SDK's C++ path (flags, extern "C" main, constructors) exercised.
#include <mvg/mvg.h>

namespace {

// A static object with a constructor: mvg_entry runs it on vCPU 0 before any
// main(), so every vCPU must see `ready` == 1. The volatile read keeps the
// compiler from turning the constructor into static data.
volatile uint64_t one = 1;
struct Arrivals {
    uint64_t done = 0;
    uint64_t ready;
    Arrivals() : ready(one) {}
};
Arrivals arrivals;

} // namespace

int main(const mvg_boot_info* bi, unsigned vcpu) {
    if (mvg_atomic_load(&arrivals.ready) != 1) {
        mvg_printf("vcpu %u: static constructor did not run\n", vcpu);
        return 1;
    }
    if (vcpu != 0) {
        mvg_printf("vcpu %u ok\n", vcpu);
        mvg_atomic_add(&arrivals.done, 1); // after the write hypercall returned
        return 0;
    }
    mvg_wait_ge(&arrivals.done, bi->nr_vcpus - 1);
    mvg_printf("vcpu %u ok\n", vcpu);
    return 0;
}
