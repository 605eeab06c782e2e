// Catch2 main for the KVM integration tests. Without a usable /dev/kvm the
// tests cannot run: kvm_gate() reports that loudly and the process exits 77,
// which ctest shows as "Skipped" (SKIP_RETURN_CODE), never as passed.
// MINIVMM_REQUIRE_KVM=1 (machines that must have KVM) makes it a failure.
// Listing the tests needs no KVM: ctest's test discovery lists them on the
// build machine, which may have none.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "kvm_support.hpp"
#include "skip.hpp"

int main(int argc, char* argv[]) {
    Catch::Session session;
    if (int status = session.applyCommandLine(argc, argv)) return status;
    const auto& c = session.configData();
    const bool listing =
        c.listTests || c.listTestNamesOnly || c.listTags || c.listReporters || c.showHelp;
    if (!listing)
        if (auto status = minivmm::test::kvm_gate()) return *status;
    return minivmm::test::exit_status(session.run());
}
