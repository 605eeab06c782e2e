// Catch2 main for the unit tests (no /dev/kvm needed). A case that called
// skip_test() makes the run exit with kSkipStatus (skip.hpp).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "skip.hpp"

int main(int argc, char* argv[]) {
    return minivmm::test::exit_status(Catch::Session().run(argc, argv));
}
