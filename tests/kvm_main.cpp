// Catch2 main for the KVM integration tests. Without a usable /dev/kvm the
// tests cannot run: kvm_gate() reports that loudly and the process exits 77,
// which ctest shows as "Skipped" (SKIP_RETURN_CODE), never as passed.
// MINIVMM_REQUIRE_KVM=1 (machines that must have KVM) makes it a failure.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "kvm_support.hpp"

int main(int argc, char* argv[]) {
    if (auto status = minivmm::test::kvm_gate()) return *status;
    int failed = Catch::Session().run(argc, argv);
    // Catch returns the number of failed assertions (at most 255): 77 of
    // them must not look like a skip to ctest.
    return failed == minivmm::test::kSkipStatus ? 1 : failed;
}
