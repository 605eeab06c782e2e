// A Linux program's initial stack, byte for byte as fs/binfmt_elf.c's
// create_elf_tables (and execve's copy_strings before it) lays it out on
// x86-64, without the random offset ASLR adds:
//
//   stack_top    8 zero bytes
//                argv strings, envp strings, the AT_EXECFN string (ascending)
//                (down to 16-byte alignment)
//                "x86_64\0" (AT_PLATFORM)
//                16 bytes (AT_RANDOM), right below it
//                (padding: rsp must be 16-byte aligned)
//                auxv pairs, AT_NULL last
//                envp pointers, NULL
//                argv pointers, NULL
//   rsp ->       argc
//
// Built on the host into a buffer the caller copies to guest memory.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace minivmm::linux_abi {

// What goes on the stack. Everything the program sees is an input (the
// random bytes too: the caller draws them), so the result is reproducible.
struct InitialStackInputs {
    // Linux's limit with the default 8 MiB stack rlimit is a quarter of it;
    // a smaller default, as guest stacks are smaller.
    static constexpr std::size_t kDefaultMaxArgBytes = 128 * 1024;

    std::uint64_t stack_top = 0; // 16-byte aligned; the buffer ends here
    std::vector<std::string> argv;
    std::vector<std::string> envp;
    std::string execfn; // AT_EXECFN: the path execve was given
    std::array<std::byte, 16> random{};

    // From the executable (ElfExecutable).
    std::uint64_t phdr = 0;
    std::uint64_t phent = 0;
    std::uint64_t phnum = 0;
    std::uint64_t entry = 0;
    std::uint64_t base = 0; // AT_BASE: the interpreter's address, 0 without one

    std::uint64_t hwcap = 0;  // Linux x86: CPUID.1:EDX
    std::uint64_t hwcap2 = 0; // Linux x86: bit 1 FSGSBASE
    std::uint64_t uid = 0, euid = 0, gid = 0, egid = 0;
    std::uint64_t sysinfo_ehdr = 0; // the vDSO's address; no AT_SYSINFO_EHDR when 0
    std::uint64_t minsigstksz = 0;  // AT_MINSIGSTKSZ

    // The argv and envp strings (with their NULs) and pointers may take at
    // most this many bytes, else "argument list too long" (E2BIG).
    std::size_t max_arg_bytes = kDefaultMaxArgBytes;
};

struct InitialStack {
    std::vector<std::byte> bytes; // for guest [rsp, stack_top)
    std::uint64_t rsp = 0;        // at argc, 16-byte aligned
    std::uint64_t stack_top = 0;
    // Where things are, as guest addresses.
    std::uint64_t argv = 0;     // argv[0]'s pointer
    std::uint64_t envp = 0;     // envp[0]'s pointer
    std::uint64_t auxv = 0;     // the first auxv pair
    std::uint64_t strings = 0;  // argv[0]'s string, the lowest string
    std::uint64_t execfn = 0;   // AT_EXECFN's string
    std::uint64_t platform = 0; // AT_PLATFORM's "x86_64"
    std::uint64_t random = 0;   // AT_RANDOM's 16 bytes
    // The auxiliary vector without AT_NULL, in stack order (what
    // /proc/self/auxv and getauxval show).
    std::vector<std::pair<std::uint64_t, std::uint64_t>> auxv_entries;
};

// Lays out the stack. An empty argv becomes {""}, as Linux 5.18+ does.
// \throws ConfigError "argument list too long" past in.max_arg_bytes, for a
// string with a NUL byte, or for a stack_top that is not 16-byte aligned or
// too low for the stack.
InitialStack build_initial_stack(const InitialStackInputs& in);

} // namespace minivmm::linux_abi
