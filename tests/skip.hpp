// Visible skips for Catch2 2.x, which has none of its own. A test case that
// cannot check what it is for on this machine calls skip_test(why) and
// returns; the test program then exits with kSkipStatus when nothing failed,
// which ctest shows as "Skipped" (SKIP_RETURN_CODE), never as passed. Each
// Catch test case is its own ctest entry, so one skip marks just that case.
// Where the environment variable named by `required_by` is "1" (CI sets
// them where it can provide the thing), the skip is a failure instead.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <catch2/catch.hpp>

namespace minivmm::test {

// ctest's SKIP_RETURN_CODE for every test program.
inline constexpr int kSkipStatus = 77;

inline int& skipped_cases() {
    static int n = 0;
    return n;
}

inline bool required(const char* env) {
    const char* v = std::getenv(env);
    return v != nullptr && std::strcmp(v, "1") == 0;
}

// Call from inside a TEST_CASE, then return from it.
inline void skip_test(const std::string& why, const char* required_by = nullptr) {
    if (required_by != nullptr && required(required_by))
        FAIL(required_by << "=1 but this test cannot run here: " << why);
    ++skipped_cases();
    WARN("SKIPPED: " << why);
    std::fprintf(stderr, "SKIPPED: %s\n", why.c_str());
}

// The test program's exit status: Catch's failure count, or kSkipStatus when
// a case was skipped and none failed. A count of 77 failures must not look
// like a skip.
inline int exit_status(int failed) {
    if (failed == kSkipStatus) return 1;
    return failed == 0 && skipped_cases() > 0 ? kSkipStatus : failed;
}

} // namespace minivmm::test
