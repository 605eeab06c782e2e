
TEST_CASE("elf: a dynamically linked executable (this test program) is refused", "[program][elf]") {
    const auto file = read_file("/proc/self/exe");
    REQUIRE(header_of(file).e_type == ET_DYN); // a PIE with PT_INTERP
    ElfLoadOptions options;
    options.memory_limit = kGuestRam;
    REQUIRE_THROWS_WITH(parse_elf_executable(file, options, "minivmm_unit_tests"),
                        "minivmm_unit_tests: dynamically linked executables are not supported yet "
                        "(static and static-pie only)");
}
