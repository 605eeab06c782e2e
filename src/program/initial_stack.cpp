#include "program/initial_stack.hpp"

#include <elf.h>

#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "minivmm/error.hpp"

namespace minivmm::linux_abi {

namespace {

constexpr std::string_view kPlatform = "x86_64";
constexpr std::uint64_t kWord = sizeof(std::uint64_t);
constexpr std::uint64_t kPageSize = 4096;  // AT_PAGESZ
constexpr std::uint64_t kClockTicks = 100; // AT_CLKTCK: Linux's USER_HZ

void check_string(std::string_view what, std::size_t i, const std::string& s) {
    if (s.find('\0') != std::string::npos)
        throw ConfigError(fmt::format("{}[{}] contains a NUL byte", what, i));
}

// The auxiliary vector in create_elf_tables's order (x86's ARCH_DLINFO
// first), with the addresses of the strings and random bytes.
std::vector<std::pair<std::uint64_t, std::uint64_t>> auxv_for(const InitialStackInputs& in,
                                                              std::uint64_t execfn,
                                                              std::uint64_t platform,
                                                              std::uint64_t random) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> v;
    if (in.sysinfo_ehdr != 0) v.emplace_back(AT_SYSINFO_EHDR, in.sysinfo_ehdr);
    v.emplace_back(AT_MINSIGSTKSZ, in.minsigstksz);
    v.emplace_back(AT_HWCAP, in.hwcap);
    v.emplace_back(AT_PAGESZ, kPageSize);
    v.emplace_back(AT_CLKTCK, kClockTicks);
    v.emplace_back(AT_PHDR, in.phdr);
    v.emplace_back(AT_PHENT, in.phent);
    v.emplace_back(AT_PHNUM, in.phnum);
    v.emplace_back(AT_BASE, in.base);
    v.emplace_back(AT_FLAGS, 0);
    v.emplace_back(AT_ENTRY, in.entry);
    v.emplace_back(AT_UID, in.uid);
    v.emplace_back(AT_EUID, in.euid);
    v.emplace_back(AT_GID, in.gid);
    v.emplace_back(AT_EGID, in.egid);
    v.emplace_back(AT_SECURE, 0);
    v.emplace_back(AT_RANDOM, random);
    v.emplace_back(AT_HWCAP2, in.hwcap2);
    v.emplace_back(AT_EXECFN, execfn);
    v.emplace_back(AT_PLATFORM, platform);
    return v;
}

} // namespace

InitialStack build_initial_stack(const InitialStackInputs& in) {
    if (in.stack_top % 16 != 0)
        throw ConfigError(fmt::format("stack top {:#x} is not 16-byte aligned", in.stack_top));
    // Linux 5.18+ gives a program started with no arguments an empty argv[0].
    std::vector<std::string> argv = in.argv;
    if (argv.empty()) argv.emplace_back();

    // Linux counts the strings (the filename's too) and the pointers against
    // its limit (fs/exec.c's bprm_stack_limits, copy_strings).
    std::uint64_t strings = in.execfn.size() + 1;
    for (std::size_t i = 0; i < argv.size(); ++i) {
        check_string("argv", i, argv[i]);
        strings += argv[i].size() + 1;
    }
    for (std::size_t i = 0; i < in.envp.size(); ++i) {
        check_string("envp", i, in.envp[i]);
        strings += in.envp[i].size() + 1;
    }
    if (in.execfn.find('\0') != std::string::npos)
        throw ConfigError("the executable's file name contains a NUL byte");
    const std::uint64_t pointers = (argv.size() + in.envp.size()) * kWord;
    if (strings > in.max_arg_bytes || pointers > in.max_arg_bytes - strings)
        throw ConfigError(fmt::format("argument list too long: {} bytes of arguments, environment "
                                      "and their pointers, more than the limit of {}",
                                      strings + pointers, in.max_arg_bytes));

    // The most the stack can take (alignment at its worst), so that the
    // subtractions from stack_top below cannot wrap.
    const std::uint64_t auxv_words = 2 * (auxv_for(in, 0, 0, 0).size() + 1);
    const std::uint64_t items = 1 + (argv.size() + 1) + (in.envp.size() + 1);
    const std::uint64_t most = kWord + strings + 15 + (kPlatform.size() + 1) + in.random.size() +
                               (auxv_words + items) * kWord + 15;
    if (most > in.stack_top)
        throw ConfigError(
            fmt::format("stack top {:#x} is too low for the initial stack", in.stack_top));

    // From the top down, as execve and create_elf_tables go.
    InitialStack out;
    out.stack_top = in.stack_top;
    const std::uint64_t strings_end = in.stack_top - kWord;
    const std::uint64_t strings_start = strings_end - strings;
    const std::uint64_t platform = (strings_start & ~std::uint64_t{15}) - (kPlatform.size() + 1);
    const std::uint64_t random = platform - in.random.size();
    out.platform = platform;
    out.random = random;
    out.strings = strings_start;
    out.execfn = strings_end - (in.execfn.size() + 1);
    out.auxv_entries = auxv_for(in, out.execfn, platform, random);
    out.rsp = (random - (auxv_words + items) * kWord) & ~std::uint64_t{15};
    out.argv = out.rsp + kWord;
    out.envp = out.argv + (argv.size() + 1) * kWord;
    out.auxv = out.envp + (in.envp.size() + 1) * kWord;

    out.bytes.assign(in.stack_top - out.rsp, std::byte{0});
    auto put = [&](std::uint64_t at, const void* data, std::size_t len) {
        std::memcpy(out.bytes.data() + (at - out.rsp), data, len);
    };
    auto put_word = [&](std::uint64_t at, std::uint64_t value) { put(at, &value, kWord); };

    put_word(out.rsp, argv.size());
    std::uint64_t string_at = strings_start;
    auto put_strings = [&](const std::vector<std::string>& list, std::uint64_t pointers_at) {
        for (const auto& s : list) {
            put_word(pointers_at, string_at);
            put(string_at, s.c_str(), s.size() + 1);
            pointers_at += kWord;
            string_at += s.size() + 1;
        }
        // The NULL after the pointers is already zero.
    };
    put_strings(argv, out.argv);
    put_strings(in.envp, out.envp);
    put(out.execfn, in.execfn.c_str(), in.execfn.size() + 1);
    put(platform, kPlatform.data(), kPlatform.size()); // its NUL is already zero
    put(random, in.random.data(), in.random.size());
    std::uint64_t aux_at = out.auxv;
    for (const auto& [key, value] : out.auxv_entries) {
        put_word(aux_at, key);
        put_word(aux_at + kWord, value);
        aux_at += 2 * kWord;
    }
    return out; // AT_NULL's pair is zero
}

} // namespace minivmm::linux_abi
