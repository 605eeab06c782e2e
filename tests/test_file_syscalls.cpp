// The Linux personality's file system calls (src/program/file_*.cpp), driven
// through FileSystemCalls::call with guest buffers in a FlatUserMemory, in a
// temporary tree: <root>/work (the working directory, writable) and
// <root>/outside (read-only to the guest).
#include <catch2/catch.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "minivmm/error.hpp"
#include "program/file_sandbox.hpp"
#include "program/file_syscalls.hpp"
#include "program/file_table.hpp"
#include "skip.hpp"
#include "testing/flat_user_memory.hpp"

namespace {

namespace fs = std::filesystem;
using minivmm::UniqueFd;
using minivmm::linux_abi::FileKind;
using minivmm::linux_abi::FileSandbox;
using minivmm::linux_abi::FileSystemCalls;
using minivmm::linux_abi::FileTable;
using minivmm::linux_abi::FlatUserMemory;
using minivmm::linux_abi::OpenFile;
using minivmm::linux_abi::SyscallArgs;

constexpr std::uint64_t kBase = 0x10000000;
constexpr std::size_t kMemory = 4 << 20;
constexpr std::uint64_t kFdCwd = static_cast<std::uint32_t>(AT_FDCWD);

std::string host_read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

void host_write(const fs::path& p, const std::string& text) {
    std::ofstream(p, std::ios::binary) << text;
}

// <root>/work and <root>/outside (with outside/target), removed afterwards.
struct TempTree {
    fs::path root, work, outside;
    TempTree() {
        std::string templ = (fs::temp_directory_path() / "minivmm-files-XXXXXX").string();
        REQUIRE(::mkdtemp(templ.data()) != nullptr);
        root = fs::canonical(templ);
        work = root / "work";
        outside = root / "outside";
        fs::create_directory(work);
        fs::create_directory(outside);
        host_write(outside / "target", "outside\n");
    }
    ~TempTree() {
        std::error_code ignored;
        fs::remove_all(root, ignored);
    }
};

// One guest program: its memory, fd table, sandbox and system calls.
struct Guest {
    TempTree tree;
    FlatUserMemory mem{kBase, kMemory};
    FileTable files;
    FileSandbox sandbox;
    FileSystemCalls calls;
    std::uint64_t next = kBase;

    explicit Guest(int fd_limit = FileTable::kDefaultLimit,
                   std::vector<std::string> extra_writable = {})
        : files(fd_limit), sandbox(tree.work.string(), extra_writable), calls(files, sandbox, mem) {
    }

    std::int64_t sys(long nr, std::uint64_t a0 = 0, std::uint64_t a1 = 0, std::uint64_t a2 = 0,
                     std::uint64_t a3 = 0, std::uint64_t a4 = 0) {
        SyscallArgs args;
        args.nr = static_cast<std::uint64_t>(nr);
        std::uint64_t regs[] = {a0, a1, a2, a3, a4, 0};
        std::copy(std::begin(regs), std::end(regs), args.a);
        auto r = calls.call(args);
        REQUIRE(r.has_value());
        return *r;
    }
    // Guest memory for the test's arguments, 16-byte aligned, zeroed.
    std::uint64_t alloc(std::size_t n) {
        std::uint64_t va = next;
        next += (n + 15) / 16 * 16;
        REQUIRE(next <= kBase + kMemory);
        return va;
    }
    std::uint64_t str(const std::string& s) { return mem.put_string(alloc(s.size() + 1), s); }
    std::uint64_t data(const std::string& s) {
        std::uint64_t va = alloc(s.size());
        mem.put(va, std::as_bytes(std::span(s.data(), s.size())));
        return va;
    }
    std::int64_t open(const std::string& path, int flags, unsigned mode = 0644) {
        return sys(SYS_open, str(path), static_cast<std::uint64_t>(flags), mode);
    }
    std::int64_t write(std::int64_t fd, const std::string& s) {
        return sys(SYS_write, fd, data(s), s.size());
    }
    std::string read(std::int64_t fd, std::size_t n) {
        std::uint64_t buf = alloc(n);
        std::int64_t got = sys(SYS_read, fd, buf, n);
        REQUIRE(got >= 0);
        return mem.string_at(buf, static_cast<std::size_t>(got));
    }
};

struct GuestStat {
    struct stat st;
    std::int64_t result;
};

GuestStat guest_stat(Guest& g, long nr, std::uint64_t a0, std::uint64_t a1 = 0,
                     std::uint64_t a2 = 0, std::uint64_t a3 = 0) {
    std::uint64_t buf = g.alloc(sizeof(struct stat));
    std::int64_t r = nr == SYS_newfstatat ? g.sys(nr, a0, a1, buf, a2) : g.sys(nr, a0, buf);
    (void)a3;
    return {g.mem.value_at<struct stat>(buf), r};
}

std::set<std::string> guest_listing(Guest& g, std::int64_t dirfd,
                                    std::set<std::string>* regular = nullptr) {
    std::set<std::string> names;
    std::uint64_t buf = g.alloc(4096);
    for (;;) {
        std::int64_t n = g.sys(SYS_getdents64, dirfd, buf, 4096);
        REQUIRE(n >= 0);
        if (n == 0) break;
        auto bytes = g.mem.bytes(buf, static_cast<std::size_t>(n));
        for (std::size_t at = 0; at < bytes.size();) {
            std::uint16_t reclen;
            std::memcpy(&reclen, bytes.data() + at + 16, 2);
            auto type = static_cast<unsigned char>(bytes[at + 18]);
            std::string name(reinterpret_cast<const char*>(bytes.data() + at + 19));
            names.insert(name);
            if (regular && type == DT_REG) regular->insert(name);
            REQUIRE(reclen > 0);
            at += reclen;
        }
    }
    return names;
}

} // namespace

TEST_CASE("files: read, write, pread, pwrite and lseek round trips", "[files]") {
    Guest g;
    std::int64_t fd = g.open("f", O_CREAT | O_RDWR | O_TRUNC);
    REQUIRE(fd >= 0);
    CHECK(g.write(fd, "hello, world") == 12);
    CHECK(host_read(g.tree.work / "f") == "hello, world");
    CHECK(g.sys(SYS_lseek, fd, 0, SEEK_CUR) == 12);
    CHECK(g.sys(SYS_lseek, fd, 7, SEEK_SET) == 7);
    CHECK(g.read(fd, 100) == "world");
    CHECK(g.sys(SYS_lseek, fd, static_cast<std::uint64_t>(-5), SEEK_END) == 7);
    CHECK(g.sys(SYS_lseek, fd, 0, 17) == -EINVAL);

    // Positioned: the offset does not move.
    std::uint64_t buf = g.alloc(5);
    CHECK(g.sys(SYS_pread64, fd, buf, 5, 0) == 5);
    CHECK(g.mem.string_at(buf, 5) == "hello");
    CHECK(g.sys(SYS_pwrite64, fd, g.data("HELLO"), 5, 0) == 5);
    CHECK(g.sys(SYS_lseek, fd, 0, SEEK_CUR) == 7);
    CHECK(host_read(g.tree.work / "f") == "HELLO, world");
    CHECK(g.sys(SYS_pread64, fd, buf, 5, static_cast<std::uint64_t>(-1)) == -EINVAL);

    // More than one host chunk each way, in one call.
    std::string big(3 * FileSystemCalls::kChunkBytes + 123, '\0');
    for (std::size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>('a' + i * 7 % 26);
    CHECK(g.sys(SYS_pwrite64, fd, g.data(big), big.size(), 100) ==
          static_cast<std::int64_t>(big.size()));
    CHECK(host_read(g.tree.work / "f").substr(100) == big);
    std::uint64_t back = g.alloc(big.size());
    CHECK(g.sys(SYS_pread64, fd, back, big.size(), 100) == static_cast<std::int64_t>(big.size()));
    CHECK(g.mem.string_at(back, big.size()) == big);

    // A length past MAX_RW_COUNT is clamped, not allocated: the read returns
    // what the file has.
    CHECK(g.sys(SYS_lseek, fd, 0, SEEK_SET) == 0);
    std::uint64_t room = g.alloc(big.size() + 200);
    CHECK(g.sys(SYS_read, fd, room, UINT64_MAX) == static_cast<std::int64_t>(big.size() + 100));
    CHECK(g.sys(SYS_close, fd) == 0);
    CHECK(g.sys(SYS_close, fd) == -EBADF);
}

TEST_CASE("files: readv and writev gather and scatter, iovec limits", "[files]") {
    Guest g;
    std::int64_t fd = g.open("v", O_CREAT | O_RDWR);
    REQUIRE(fd >= 0);
    std::uint64_t iov = g.alloc(3 * 16);
    const std::uint64_t parts[3][2] = {{g.data("one "), 4}, {g.data(""), 0}, {g.data("two"), 3}};
    g.mem.put_value(iov, parts);
    CHECK(g.sys(SYS_writev, fd, iov, 3) == 7);
    CHECK(host_read(g.tree.work / "v") == "one two");

    CHECK(g.sys(SYS_lseek, fd, 0, SEEK_SET) == 0);
    std::uint64_t a = g.alloc(2), b = g.alloc(10);
    const std::uint64_t into[2][2] = {{a, 2}, {b, 10}};
    g.mem.put_value(iov, into);
    CHECK(g.sys(SYS_readv, fd, iov, 2) == 7);
    CHECK(g.mem.string_at(a, 2) == "on");
    CHECK(g.mem.string_at(b, 5) == "e two");

    CHECK(g.sys(SYS_readv, fd, iov, 1025) == -EINVAL); // IOV_MAX
    CHECK(g.sys(SYS_writev, fd, iov, 1025) == -EINVAL);
    const std::uint64_t negative[1][2] = {{a, UINT64_MAX}};
    g.mem.put_value(iov, negative);
    CHECK(g.sys(SYS_writev, fd, iov, 1) == -EINVAL);
    CHECK(g.sys(SYS_writev, fd, kBase + kMemory - 8, 1) == -EFAULT); // the array itself
    CHECK(host_read(g.tree.work / "v") == "one two");
}

TEST_CASE("files: the stat family matches the host's stat of the same file", "[files]") {
    Guest g;
    host_write(g.tree.work / "s", "12345");
    fs::create_symlink("s", g.tree.work / "link");
    struct stat host {};
    REQUIRE(::stat((g.tree.work / "s").c_str(), &host) == 0);
    const auto same = [&](const struct stat& st) {
        CHECK(st.st_ino == host.st_ino);
        CHECK(st.st_dev == host.st_dev);
        CHECK(st.st_size == 5);
        CHECK(st.st_mode == host.st_mode);
        CHECK(st.st_mtim.tv_sec == host.st_mtim.tv_sec);
        CHECK(st.st_mtim.tv_nsec == host.st_mtim.tv_nsec);
    };
    auto by_stat = guest_stat(g, SYS_stat, g.str("link"));
    CHECK(by_stat.result == 0);
    same(by_stat.st);
    auto by_lstat = guest_stat(g, SYS_lstat, g.str("link"));
    CHECK(by_lstat.result == 0);
    CHECK(S_ISLNK(by_lstat.st.st_mode));
    CHECK(by_lstat.st.st_size == 1);
    std::int64_t fd = g.open("s", O_RDONLY);
    auto by_fstat = guest_stat(g, SYS_fstat, fd);
    CHECK(by_fstat.result == 0);
    same(by_fstat.st);
    auto by_at = guest_stat(g, SYS_newfstatat, kFdCwd, g.str((g.tree.work / "s").string()), 0);
    CHECK(by_at.result == 0);
    same(by_at.st);
    auto empty_path = guest_stat(g, SYS_newfstatat, fd, g.str(""), AT_EMPTY_PATH);
    CHECK(empty_path.result == 0);
    same(empty_path.st);
    CHECK(guest_stat(g, SYS_newfstatat, fd, g.str(""), 0).result == -ENOENT);
    CHECK(guest_stat(g, SYS_newfstatat, kFdCwd, g.str("s"), 0x1).result == -EINVAL);
    CHECK(guest_stat(g, SYS_stat, g.str("missing")).result == -ENOENT);
    CHECK(guest_stat(g, SYS_fstat, 77).result == -EBADF);

    std::uint64_t sx = g.alloc(sizeof(struct statx));
    CHECK(g.sys(SYS_statx, kFdCwd, g.str("link"), 0, STATX_BASIC_STATS, sx) == 0);
    auto stx = g.mem.value_at<struct statx>(sx);
    CHECK(stx.stx_ino == host.st_ino);
    CHECK(stx.stx_size == 5);
    CHECK(stx.stx_mode == host.st_mode);
    CHECK(stx.stx_mtime.tv_sec == host.st_mtim.tv_sec);
    CHECK(g.sys(SYS_statx, kFdCwd, g.str("link"), AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, sx) == 0);
    CHECK(S_ISLNK(g.mem.value_at<struct statx>(sx).stx_mode));
    CHECK(g.sys(SYS_statx, fd, 0, AT_EMPTY_PATH, STATX_BASIC_STATS, sx) == 0);
    CHECK(g.mem.value_at<struct statx>(sx).stx_ino == host.st_ino);
}

TEST_CASE("files: getdents64 lists a directory in linux_dirent64 records", "[files]") {
    Guest g;
    fs::create_directory(g.tree.work / "d");
    for (const char* name : {"a", "bb", "a-much-longer-name-than-the-others"})
        host_write(g.tree.work / "d" / name, "x");
    fs::create_directory(g.tree.work / "d" / "sub");
    std::int64_t dirfd = g.open("d", O_RDONLY | O_DIRECTORY);
    REQUIRE(dirfd >= 0);
    std::set<std::string> regular;
    CHECK(guest_listing(g, dirfd, &regular) ==
          std::set<std::string>{".", "..", "a", "bb", "a-much-longer-name-than-the-others", "sub"});
    CHECK(regular == std::set<std::string>{"a", "bb", "a-much-longer-name-than-the-others"});
    std::int64_t file = g.open("d/a", O_RDONLY);
    CHECK(g.sys(SYS_getdents64, file, g.alloc(512), 512) == -ENOTDIR);
    CHECK(g.sys(SYS_getdents64, 99, g.alloc(512), 512) == -EBADF);
}

TEST_CASE("files: readlink, access and faccessat2", "[files]") {
    Guest g;
    fs::create_symlink("target/x", g.tree.work / "l");
    host_write(g.tree.work / "plain", "p");
    std::uint64_t buf = g.alloc(64);
    CHECK(g.sys(SYS_readlink, g.str("l"), buf, 64) == 8);
    CHECK(g.mem.string_at(buf, 8) == "target/x");
    CHECK(g.sys(SYS_readlinkat, kFdCwd, g.str("l"), buf, 3) == 3); // truncated, as Linux
    CHECK(g.sys(SYS_readlink, g.str("plain"), buf, 64) == -EINVAL);
    CHECK(g.sys(SYS_readlink, g.str("l"), buf, 0) == -EINVAL);
    CHECK(g.sys(SYS_readlinkat, kFdCwd, 0, buf, 64) == -EFAULT); // only stat takes a null path
    // An empty path names the dirfd itself: an O_PATH | O_NOFOLLOW link.
    std::int64_t link_fd = g.open("l", O_PATH | O_NOFOLLOW);
    REQUIRE(link_fd >= 0);
    CHECK(g.sys(SYS_readlinkat, link_fd, g.str(""), buf, 64) == 8);

    CHECK(g.sys(SYS_access, g.str("plain"), F_OK) == 0);
    CHECK(g.sys(SYS_access, g.str("plain"), R_OK | W_OK) == 0);
    CHECK(g.sys(SYS_access, g.str("missing"), F_OK) == -ENOENT);
    CHECK(g.sys(SYS_access, g.str("plain"), 8) == -EINVAL);
    CHECK(g.sys(SYS_access, g.str("/etc/hostname"), R_OK) == 0);
    // The host would allow it (root); the sandbox does not.
    CHECK(g.sys(SYS_access, g.str("/etc/hostname"), W_OK) == -EROFS);
    CHECK(g.sys(SYS_access, g.str((g.tree.outside / "target").string()), W_OK) == -EROFS);
    CHECK(g.sys(SYS_access, g.str(g.tree.work.string()), W_OK) == 0);
    CHECK(g.sys(SYS_access, g.str("/dev/null"), W_OK) == 0);
    CHECK(g.sys(SYS_faccessat2, kFdCwd, g.str("l"), F_OK, AT_SYMLINK_NOFOLLOW) == 0);
    CHECK(g.sys(SYS_faccessat2, kFdCwd, g.str("l"), F_OK, 0) == -ENOENT); // dangling
    CHECK(g.sys(SYS_faccessat2, kFdCwd, g.str("plain"), F_OK, 0x4) == -EINVAL);
}

TEST_CASE("files: fcntl flags and F_DUPFD", "[files]") {
    Guest g;
    std::int64_t fd = g.open("f", O_CREAT | O_WRONLY | O_CLOEXEC);
    REQUIRE(fd >= 0);
    CHECK(g.sys(SYS_fcntl, fd, F_GETFD) == FD_CLOEXEC);
    CHECK(g.sys(SYS_fcntl, fd, F_SETFD, 0) == 0);
    CHECK(g.sys(SYS_fcntl, fd, F_GETFD) == 0);
    CHECK((g.sys(SYS_fcntl, fd, F_GETFL) & O_APPEND) == 0);
    CHECK(g.sys(SYS_fcntl, fd, F_SETFL, O_APPEND | O_NONBLOCK) == 0);
    std::int64_t fl = g.sys(SYS_fcntl, fd, F_GETFL);
    CHECK((fl & O_APPEND) != 0);
    CHECK((fl & O_ACCMODE) == O_WRONLY);
    CHECK(g.sys(SYS_fcntl, fd, F_DUPFD, 10) == 10);
    CHECK(g.sys(SYS_fcntl, fd, F_DUPFD_CLOEXEC, 10) == 11);
    CHECK(g.sys(SYS_fcntl, 11, F_GETFD) == FD_CLOEXEC);
    CHECK(g.sys(SYS_fcntl, 10, F_GETFD) == 0);
    CHECK(g.sys(SYS_fcntl, fd, F_DUPFD, FileTable::kDefaultLimit) == -EINVAL);
    CHECK(g.sys(SYS_fcntl, fd, F_GETLK, g.alloc(64)) == -EINVAL);
    CHECK(g.sys(SYS_fcntl, 500, F_GETFD) == -EBADF);
}

TEST_CASE("files: dup, dup2, dup3 numbering, sharing and close-on-exec", "[files]") {
    Guest g;
    std::int64_t fd = g.open("f", O_CREAT | O_RDWR);
    REQUIRE(fd == 0); // lowest free: the table starts empty
    CHECK(g.sys(SYS_dup, fd) == 1);
    CHECK(g.sys(SYS_dup, fd) == 2);
    CHECK(g.sys(SYS_close, 1) == 0);
    CHECK(g.sys(SYS_dup, fd) == 1); // the hole first
    // One open file description: the offset is shared.
    CHECK(g.write(fd, "abc") == 3);
    CHECK(g.sys(SYS_lseek, 1, 0, SEEK_CUR) == 3);

    CHECK(g.sys(SYS_dup2, fd, 7) == 7);
    CHECK(g.sys(SYS_dup2, fd, fd) == fd);
    CHECK(g.sys(SYS_dup2, 40, 41) == -EBADF);
    CHECK(g.sys(SYS_dup2, 40, 40) == -EBADF);
    CHECK(g.sys(SYS_dup2, fd, FileTable::kDefaultLimit) == -EBADF);
    CHECK(g.sys(SYS_dup3, fd, fd, 0) == -EINVAL);
    CHECK(g.sys(SYS_dup3, fd, 8, 0x1) == -EINVAL);
    CHECK(g.sys(SYS_dup3, fd, 8, O_CLOEXEC) == 8);
    CHECK(g.sys(SYS_fcntl, 8, F_GETFD) == FD_CLOEXEC);
    CHECK(g.sys(SYS_dup2, fd, 8) == 8); // replaces it, without the flag
    CHECK(g.sys(SYS_fcntl, 8, F_GETFD) == 0);

    // dup2 onto an open number closes what it named.
    std::int64_t other = g.open("g", O_CREAT | O_RDWR);
    REQUIRE(other == 3);
    CHECK(g.sys(SYS_dup2, fd, other) == other);
    CHECK(g.write(other, "d") == 1);
    CHECK(host_read(g.tree.work / "f") == "abcd");
    CHECK(host_read(g.tree.work / "g").empty());
}

TEST_CASE("files: the guest stdio are duplicates, VMM descriptors are out of reach", "[files]") {
    Guest g;
    g.files.adopt_vmm_stdio();
    // fd 1 is the VMM's stdout: closing the guest's leaves the VMM's open.
    CHECK(g.sys(SYS_close, 1) == 0);
    CHECK(::fcntl(1, F_GETFD) >= 0);
    CHECK(g.sys(SYS_write, 1, g.data("x"), 1) == -EBADF);
    CHECK(g.sys(SYS_close, 1) == -EBADF);
    // A descriptor the VMM holds is no guest fd, whatever its number.
    UniqueFd vmm_file(::open((g.tree.outside / "target").c_str(), O_RDWR | O_CLOEXEC));
    REQUIRE(vmm_file);
    REQUIRE(g.files.get(vmm_file.get()) == nullptr);
    CHECK(g.sys(SYS_read, vmm_file.get(), g.alloc(8), 8) == -EBADF);
    CHECK(g.sys(SYS_write, vmm_file.get(), g.data("x"), 1) == -EBADF);
    CHECK(g.sys(SYS_close, vmm_file.get()) == -EBADF);
    CHECK(g.sys(SYS_dup2, vmm_file.get(), 5) == -EBADF);
    CHECK(::fcntl(vmm_file.get(), F_GETFD) >= 0);
    // The fds the table hands out are its own numbers, lowest first.
    CHECK(g.open("new", O_CREAT | O_WRONLY) == 1);
}

TEST_CASE("files: unknown fds are EBADF and unserved numbers are left to others", "[files]") {
    Guest g;
    std::uint64_t buf = g.alloc(64);
    for (long nr : {SYS_read, SYS_write, SYS_fstat, SYS_fsync, SYS_fdatasync, SYS_ftruncate,
                    SYS_getdents64, SYS_close, SYS_dup, SYS_fchdir, SYS_lseek})
        CHECK(g.sys(nr, 3, buf, 0) == -EBADF);
    CHECK(g.sys(SYS_ioctl, 3, TCGETS, buf) == -EBADF);
    CHECK(g.sys(SYS_openat, 3, g.str("rel"), O_RDONLY) == -EBADF);
    CHECK(g.sys(SYS_read, UINT64_MAX, buf, 1) == -EBADF);
    for (long nr : {SYS_getpid, SYS_mmap, SYS_clone, SYS_exit_group}) {
        SyscallArgs args;
        args.nr = static_cast<std::uint64_t>(nr);
        CHECK_FALSE(g.calls.call(args).has_value());
    }
}

TEST_CASE("files: bad guest pointers are EFAULT without side effects", "[files]") {
    Guest g;
    const std::uint64_t hole = kBase + kMemory - 3 * 4096;
    std::int64_t fd = g.open("f", O_CREAT | O_RDWR);
    REQUIRE(fd >= 0);

    SECTION("a write from unreadable memory writes nothing") {
        g.mem.set_hole(hole, 4096, FlatUserMemory::Access::unmapped);
        CHECK(g.sys(SYS_write, fd, hole + 100, 10) == -EFAULT);
        CHECK(fs::file_size(g.tree.work / "f") == 0);
        // A write that reaches the hole after a whole chunk returns the chunk.
        std::uint64_t before = hole - FileSystemCalls::kChunkBytes;
        CHECK(g.sys(SYS_write, fd, before, FileSystemCalls::kChunkBytes + 10) ==
              static_cast<std::int64_t>(FileSystemCalls::kChunkBytes));
    }
    SECTION("a read into unwritable memory leaves a pipe's bytes in the pipe") {
        std::uint64_t fds = g.alloc(8);
        REQUIRE(g.sys(SYS_pipe2, fds, O_NONBLOCK) == 0); // a lost payload is EAGAIN, no hang
        auto ends = g.mem.value_at<std::array<int, 2>>(fds);
        CHECK(g.write(ends[1], "payload") == 7);
        g.mem.set_hole(hole, 4096, FlatUserMemory::Access::read_only);
        CHECK(g.sys(SYS_read, ends[0], hole, 7) == -EFAULT);
        CHECK(g.read(ends[0], 7) == "payload");
        // The file's offset does not move either.
        CHECK(g.write(fd, "0123456789") == 10);
        CHECK(g.sys(SYS_lseek, fd, 0, SEEK_SET) == 0);
        CHECK(g.sys(SYS_read, fd, hole - 4, 10) == -EFAULT);
        CHECK(g.sys(SYS_lseek, fd, 0, SEEK_CUR) == 0);
        // getdents64 consumes nothing either.
        std::int64_t dir = g.open(".", O_RDONLY | O_DIRECTORY);
        CHECK(g.sys(SYS_getdents64, dir, hole, 4096) == -EFAULT);
        CHECK(guest_listing(g, dir).count("f") == 1);
    }
    SECTION("paths, stat buffers and pipe2's array") {
        g.mem.set_hole(hole, 4096, FlatUserMemory::Access::read_only);
        std::size_t open_before = g.files.open_count();
        CHECK(g.sys(SYS_pipe2, hole, 0) == -EFAULT);
        CHECK(g.files.open_count() == open_before);
        CHECK(g.sys(SYS_fstat, fd, hole) == -EFAULT);
        CHECK(g.sys(SYS_stat, g.str("f"), hole) == -EFAULT);
        CHECK(g.sys(SYS_getcwd, hole, 4096) == -EFAULT);
        g.mem.set_hole(hole, 4096, FlatUserMemory::Access::unmapped);
        CHECK(g.sys(SYS_open, hole, O_CREAT | O_WRONLY, 0644) == -EFAULT);
        CHECK(g.sys(SYS_mkdir, hole + 8, 0755) == -EFAULT);
        CHECK(g.sys(SYS_open, 0, O_RDONLY) == -EFAULT);
        // A path that ends just before the hole is fine.
        g.mem.put_string(hole - 2, "f");
        CHECK(g.sys(SYS_access, hole - 2, F_OK) == 0);
        std::string long_path(5000, 'a');
        CHECK(g.sys(SYS_open, g.str(long_path), O_RDONLY) == -ENAMETOOLONG);
    }
}

TEST_CASE("files: the table's cap is EMFILE, with nothing created", "[files]") {
    Guest g(6);
    std::vector<std::int64_t> fds;
    for (int i = 0; i < 6; ++i)
        fds.push_back(g.open("/etc/hostname", O_RDONLY));
    CHECK(fds == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
    CHECK(g.open("/etc/hostname", O_RDONLY) == -EMFILE);
    CHECK(g.open("new", O_CREAT | O_EXCL | O_WRONLY) == -EMFILE);
    CHECK_FALSE(fs::exists(g.tree.work / "new"));
    CHECK(g.sys(SYS_dup, 0) == -EMFILE);
    CHECK(g.sys(SYS_fcntl, 0, F_DUPFD, 0) == -EMFILE);
    CHECK(g.sys(SYS_close, 5) == 0);
    // pipe2 needs two: with one free it fails and gives the one back.
    CHECK(g.sys(SYS_pipe2, g.alloc(8), 0) == -EMFILE);
    CHECK(g.files.open_count() == 5);
    CHECK(g.open("new", O_CREAT | O_EXCL | O_WRONLY) == 5);
    CHECK(fs::exists(g.tree.work / "new"));
}

TEST_CASE("files: changes inside the working directory", "[files]") {
    Guest g;
    CHECK(g.sys(SYS_mkdir, g.str("d"), 0755) == 0);
    CHECK(fs::is_directory(g.tree.work / "d"));
    CHECK(g.sys(SYS_mkdir, g.str("d"), 0755) == -EEXIST);
    CHECK(g.sys(SYS_mkdir, g.str("d/e/"), 0755) == 0); // trailing slash
    CHECK(g.open("d/f", O_CREAT | O_WRONLY) >= 0);
    CHECK(g.sys(SYS_rename, g.str("d/f"), g.str("d/g")) == 0);
    CHECK(fs::exists(g.tree.work / "d" / "g"));
    CHECK(g.open("h", O_CREAT | O_WRONLY) >= 0);
    CHECK(g.sys(SYS_renameat2, kFdCwd, g.str("h"), kFdCwd, g.str("d/g"), RENAME_NOREPLACE) ==
          -EEXIST);
    CHECK(g.sys(SYS_rmdir, g.str("d")) == -ENOTEMPTY);
    CHECK(g.sys(SYS_unlink, g.str("d/g")) == 0);
    CHECK(g.sys(SYS_unlink, g.str("d/e")) == -EISDIR);
    CHECK(g.sys(SYS_unlinkat, kFdCwd, g.str("d/e"), AT_REMOVEDIR) == 0);
    CHECK(g.sys(SYS_unlinkat, kFdCwd, g.str("d/."), AT_REMOVEDIR) == -EINVAL);
    CHECK(g.sys(SYS_unlinkat, kFdCwd, g.str("d/.."), AT_REMOVEDIR) == -ENOTEMPTY);
    CHECK(g.sys(SYS_unlinkat, kFdCwd, g.str("d"), 0x1) == -EINVAL);
    CHECK(g.sys(SYS_rmdir, g.str("d")) == 0);
    CHECK_FALSE(fs::exists(g.tree.work / "d"));
    // creat truncates; ftruncate on a file opened for writing.
    host_write(g.tree.work / "t", "0123456789");
    std::int64_t fd = g.sys(SYS_creat, g.str("t"), 0644);
    REQUIRE(fd >= 0);
    CHECK(fs::file_size(g.tree.work / "t") == 0);
    CHECK(g.write(fd, "abcdef") == 6);
    CHECK(g.sys(SYS_ftruncate, fd, 2) == 0);
    CHECK(g.sys(SYS_ftruncate, fd, static_cast<std::uint64_t>(-1)) == -EINVAL);
    CHECK(g.sys(SYS_fsync, fd) == 0);
    CHECK(g.sys(SYS_fdatasync, fd) == 0);
    CHECK(host_read(g.tree.work / "t") == "ab");
    // Symlinks inside, also ones that step out and back in.
    fs::create_directory(g.tree.work / "sub");
    fs::create_symlink("sub/file", g.tree.work / "in");
    fs::create_symlink("../work/sub", g.tree.work / "round");
    std::int64_t through = g.open("in", O_CREAT | O_WRONLY);
    REQUIRE(through >= 0);
    CHECK(g.write(through, "via link") == 8);
    CHECK(host_read(g.tree.work / "sub" / "file") == "via link");
    CHECK(g.open("round/other", O_CREAT | O_WRONLY) >= 0);
    CHECK(fs::exists(g.tree.work / "sub" / "other"));
    CHECK(g.open("in", O_WRONLY | O_NOFOLLOW) == -ELOOP);
    // symlink and symlinkat make links inside; the target is only text
    // (an absolute one, dangling, is stored as given, and refused on use).
    CHECK(g.sys(SYS_symlink, g.str("sub/file"), g.str("made")) == 0);
    CHECK(fs::read_symlink(g.tree.work / "made") == "sub/file");
    CHECK(host_read(g.tree.work / "made") == "via link");
    std::int64_t subfd = g.open("sub", O_RDONLY | O_DIRECTORY);
    REQUIRE(subfd >= 0);
    CHECK(g.sys(SYS_symlinkat, g.str("/etc/passwd"), subfd, g.str("abs")) == 0);
    CHECK(fs::read_symlink(g.tree.work / "sub" / "abs") == "/etc/passwd");
    CHECK(g.sys(SYS_symlink, g.str("x"), g.str("made")) == -EEXIST);
    CHECK(g.sys(SYS_symlink, g.str(""), g.str("empty")) == -ENOENT);
    CHECK(g.sys(SYS_symlink, g.str("x"), g.str("/etc/minivmm-link")) == -EROFS);
    CHECK(g.sys(SYS_symlink, g.str("x"), g.str("missing/l")) == -ENOENT);
    CHECK(g.sys(SYS_symlink, 0, g.str("l2")) == -EFAULT);
    CHECK(g.sys(SYS_symlinkat, g.str("x"), 99, g.str("l3")) == -EBADF);
    CHECK_FALSE(fs::exists(fs::symlink_status(g.tree.work / "l2")));
    // O_TMPFILE in the working directory, where the file system has it.
    std::int64_t tmp = g.sys(SYS_open, g.str("."), O_TMPFILE | O_RDWR, 0600);
    CHECK((tmp >= 0 || tmp == -EOPNOTSUPP));
}

TEST_CASE("files: escapes from the writable roots are refused", "[files]") {
    Guest g;
    const fs::path target = g.tree.outside / "target";
    const std::string outside = g.tree.outside.string();

    SECTION("relative and absolute paths out") {
        CHECK(g.open("../outside/new", O_CREAT | O_WRONLY) == -EROFS);
        CHECK(g.open("sub/../../outside/new", O_CREAT | O_WRONLY) == -ENOENT); // no sub
        fs::create_directory(g.tree.work / "sub");
        CHECK(g.open("sub/../../outside/new", O_CREAT | O_WRONLY) == -EROFS);
        CHECK(g.open("./../work/../outside/new", O_CREAT | O_WRONLY) == -EROFS);
        CHECK(g.open(outside + "/new", O_CREAT | O_WRONLY) == -EROFS);
        CHECK_FALSE(fs::exists(g.tree.outside / "new"));
        CHECK(g.open("../outside/target", O_WRONLY | O_TRUNC) == -EROFS);
        CHECK(g.open("../outside/target", O_RDWR) == -EROFS);
        CHECK(g.sys(SYS_creat, g.str("../outside/target"), 0644) == -EROFS);
        CHECK(host_read(target) == "outside\n");
        // No truncation is ever tried here: the process may be root.
        CHECK(g.open("/etc/shadow", O_WRONLY | O_APPEND) ==
              (fs::exists("/etc/shadow") ? -EROFS : -ENOENT));
        CHECK(g.open("/etc/hostname", O_RDWR) == -EROFS);
        CHECK(g.sys(SYS_unlink, g.str("../outside/target")) == -EROFS);
        CHECK(g.sys(SYS_mkdir, g.str("../outside/d"), 0755) == -EROFS);
        CHECK(g.sys(SYS_mkdir, g.str("/etc"), 0755) == -EEXIST); // mkdir -p relies on it
        CHECK(g.sys(SYS_rmdir, g.str("../outside")) == -EROFS);
        CHECK(g.sys(SYS_rename, g.str("../outside/target"), g.str("stolen")) == -EROFS);
        CHECK(g.open("kept", O_CREAT | O_WRONLY) >= 0);
        CHECK(g.sys(SYS_rename, g.str("kept"), g.str("../outside/kept")) == -EROFS);
        CHECK(g.sys(SYS_unlinkat, kFdCwd, g.str(".."), AT_REMOVEDIR) == -ENOTEMPTY);
        CHECK(fs::exists(target));
        CHECK(fs::exists(g.tree.work / "kept"));
        CHECK_FALSE(fs::exists(g.tree.outside / "d"));
    }
    SECTION("symlinks inside pointing out") {
        fs::create_symlink(target, g.tree.work / "abs");
        fs::create_symlink("../outside/target", g.tree.work / "rel");
        fs::create_symlink(g.tree.outside, g.tree.work / "dir");
        fs::create_symlink(g.tree.outside / "made-by-guest", g.tree.work / "dangling");
        for (const char* link : {"abs", "rel", "dir/target"}) {
            CHECK(g.open(link, O_WRONLY) == -EROFS);
            CHECK(g.open(link, O_RDWR | O_APPEND) == -EROFS);
            CHECK(g.sys(SYS_access, g.str(link), W_OK) == -EROFS);
        }
        CHECK(g.open("dangling", O_CREAT | O_WRONLY) == -EROFS);
        CHECK_FALSE(fs::exists(g.tree.outside / "made-by-guest"));
        CHECK(g.open("dir/new", O_CREAT | O_WRONLY) == -EROFS);
        CHECK(g.sys(SYS_mkdir, g.str("dir/d"), 0755) == -EROFS);
        CHECK(g.sys(SYS_unlink, g.str("dir/target")) == -EROFS);
        CHECK(g.sys(SYS_rename, g.str("abs"), g.str("dir/abs")) == -EROFS);
        CHECK(host_read(target) == "outside\n");
        CHECK_FALSE(fs::exists(g.tree.outside / "new"));
        // Reading through them is allowed; the links themselves may go.
        std::int64_t fd = g.open("abs", O_RDONLY);
        REQUIRE(fd >= 0);
        CHECK(g.read(fd, 64) == "outside\n");
        CHECK(g.sys(SYS_unlink, g.str("abs")) == 0);
        CHECK(fs::exists(target));
    }
    SECTION("procfs magic links") {
        const std::string through_root = "/proc/self/root" + g.tree.work.string();
        CHECK(g.open(through_root + "/new", O_CREAT | O_WRONLY) == -ELOOP);
        CHECK(g.open("/proc/self/root/etc/hostname", O_RDONLY) == -ELOOP);
        CHECK(g.sys(SYS_mkdir, g.str("/proc/self/cwd/d"), 0755) == -ELOOP);
        UniqueFd vmm_dir(::open(g.tree.outside.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        UniqueFd vmm_file(::open(target.c_str(), O_RDWR | O_CLOEXEC));
        REQUIRE(vmm_dir);
        REQUIRE(vmm_file);
        const std::string fd_dir = "/proc/self/fd/" + std::to_string(vmm_dir.get());
        const std::string fd_file = "/proc/self/fd/" + std::to_string(vmm_file.get());
        CHECK(g.open(fd_file, O_WRONLY) == -ELOOP);
        CHECK(g.open(fd_file, O_RDONLY) == -ELOOP);
        CHECK(g.open(fd_dir + "/new", O_CREAT | O_WRONLY) == -ELOOP);
        CHECK(g.sys(SYS_unlink, g.str(fd_dir + "/target")) == -ELOOP);
        // A plain symlink in the working directory to a magic link.
        fs::create_symlink(fd_file, g.tree.work / "magic");
        CHECK(g.open("magic", O_WRONLY) == -ELOOP);
        CHECK(host_read(target) == "outside\n");
        CHECK_FALSE(fs::exists(g.tree.outside / "new"));
        CHECK_FALSE(fs::exists(g.tree.work / "new"));
    }
    SECTION("directory descriptors and the cwd outside") {
        std::int64_t dirfd = g.open(outside, O_RDONLY | O_DIRECTORY);
        REQUIRE(dirfd >= 0);
        CHECK(g.sys(SYS_openat, dirfd, g.str("new"), O_CREAT | O_WRONLY, 0644) == -EROFS);
        CHECK(g.sys(SYS_unlinkat, dirfd, g.str("target"), 0) == -EROFS);
        CHECK(g.sys(SYS_mkdirat, dirfd, g.str("d"), 0755) == -EROFS);
        CHECK(g.sys(SYS_renameat, dirfd, g.str("target"), dirfd, g.str("t2")) == -EROFS);
        std::int64_t tmp = g.sys(SYS_openat, dirfd, g.str("."), O_TMPFILE | O_RDWR, 0600);
        CHECK(tmp == -EROFS);
        CHECK(g.sys(SYS_fchdir, dirfd) == 0);
        CHECK(g.open("new", O_CREAT | O_WRONLY) == -EROFS);
        CHECK(g.sys(SYS_unlink, g.str("target")) == -EROFS);
        // A file opened for reading cannot be changed through its fd.
        std::int64_t fd = g.open("target", O_RDONLY);
        REQUIRE(fd >= 0);
        CHECK(g.sys(SYS_ftruncate, fd, 0) < 0);
        CHECK(g.write(fd, "x") == -EBADF);
        CHECK(g.sys(SYS_fcntl, fd, F_SETFL, O_RDWR | O_APPEND) == 0);
        CHECK(g.write(fd, "x") == -EBADF);
        CHECK(host_read(target) == "outside\n");
        CHECK_FALSE(fs::exists(g.tree.outside / "new"));
    }
    SECTION("reads anywhere, /dev/null writes") {
        std::int64_t fd = g.open("/etc/hostname", O_RDONLY);
        REQUIRE(fd >= 0);
        CHECK(g.read(fd, 4096) == host_read("/etc/hostname"));
        std::int64_t null = g.open("/dev/null", O_WRONLY | O_CREAT | O_TRUNC);
        REQUIRE(null >= 0);
        CHECK(g.write(null, "gone") == 4);
        // O_CREAT without writing of an existing file outside creates nothing.
        CHECK(g.open("../outside/target", O_RDONLY | O_CREAT) >= 0);
        CHECK(g.open("../outside/missing", O_WRONLY) == -ENOENT);
        CHECK(g.open("../outside/target", O_WRONLY | O_CREAT | O_EXCL) == -EEXIST);
    }
}

TEST_CASE("files: extra writable directories (--rw)", "[files]") {
    TempTree other;
    Guest g(FileTable::kDefaultLimit, {other.outside.string()});
    CHECK(g.open(other.outside.string() + "/made", O_CREAT | O_WRONLY) >= 0);
    CHECK(fs::exists(other.outside / "made"));
    CHECK(g.sys(SYS_rename, g.str(other.outside.string() + "/made"), g.str("moved-in")) == 0);
    CHECK(fs::exists(g.tree.work / "moved-in"));
    CHECK(g.open(other.work.string() + "/made", O_CREAT | O_WRONLY) == -EROFS);
    CHECK(g.open(g.tree.outside.string() + "/made", O_CREAT | O_WRONLY) == -EROFS);
    const auto missing_rw = [&] {
        FileSandbox sandbox(g.tree.work.string(), {(g.tree.root / "missing").string()});
    };
    CHECK_THROWS_AS(missing_rw(), minivmm::ConfigError);
}

TEST_CASE("files: getcwd, chdir and fchdir", "[files]") {
    Guest g;
    std::uint64_t buf = g.alloc(4096);
    const std::string work = g.tree.work.string();
    CHECK(g.sys(SYS_getcwd, buf, 4096) == static_cast<std::int64_t>(work.size() + 1));
    CHECK(g.mem.string_at(buf, work.size() + 1) == work + '\0');
    CHECK(g.sys(SYS_getcwd, buf, work.size()) == -ERANGE);
    fs::create_directory(g.tree.work / "sub");
    host_write(g.tree.work / "sub" / "here", "here");
    CHECK(g.sys(SYS_chdir, g.str("sub")) == 0);
    CHECK(g.sys(SYS_getcwd, buf, 4096) > 0);
    CHECK(g.mem.string_at(buf, work.size() + 4) == work + "/sub");
    std::int64_t fd = g.open("here", O_RDONLY);
    CHECK(g.read(fd, 10) == "here");
    CHECK(g.sys(SYS_chdir, g.str("here")) == -ENOTDIR);
    CHECK(g.sys(SYS_chdir, g.str("missing")) == -ENOENT);
    CHECK(g.sys(SYS_fchdir, fd) == -ENOTDIR);
    CHECK(g.sys(SYS_chdir, g.str("/")) == 0);
    CHECK(g.open("etc/hostname", O_RDONLY) >= 0); // relative to the new cwd
    CHECK(g.sys(SYS_getcwd, buf, 4096) == 2);
    std::int64_t dir = g.open(work, O_RDONLY | O_DIRECTORY);
    CHECK(g.sys(SYS_fchdir, dir) == 0);
    CHECK(g.open("made-here", O_CREAT | O_WRONLY) >= 0);
    CHECK(fs::exists(g.tree.work / "made-here"));
    // A removed cwd: getcwd is ENOENT, as Linux.
    CHECK(g.sys(SYS_chdir, g.str("sub")) == 0);
    fs::remove_all(g.tree.work / "sub");
    CHECK(g.sys(SYS_getcwd, buf, 4096) == -ENOENT);
}

TEST_CASE("files: pipes, and writes to a pipe without readers", "[files]") {
    Guest g;
    std::uint64_t fds = g.alloc(8);
    CHECK(g.sys(SYS_pipe2, fds, O_CLOEXEC | O_NONBLOCK) == 0);
    auto ends = g.mem.value_at<std::array<int, 2>>(fds);
    CHECK(ends == std::array<int, 2>{0, 1});
    CHECK(g.sys(SYS_fcntl, ends[0], F_GETFD) == FD_CLOEXEC);
    CHECK((g.sys(SYS_fcntl, ends[1], F_GETFL) & O_NONBLOCK) != 0);
    CHECK(g.sys(SYS_read, ends[0], g.alloc(4), 4) == -EAGAIN);
    CHECK(g.write(ends[1], "ping") == 4);
    CHECK(g.read(ends[0], 16) == "ping");
    CHECK(g.sys(SYS_pipe2, fds, O_APPEND) == -EINVAL);
    // Without a reader the write is EPIPE, and the SIGPIPE does not reach
    // this process (by default it would end it).
    CHECK(g.sys(SYS_close, ends[0]) == 0);
    CHECK(g.write(ends[1], "lost") == -EPIPE);
    sigset_t pending;
    sigpending(&pending);
    CHECK_FALSE(sigismember(&pending, SIGPIPE));
    CHECK(g.sys(SYS_pipe, fds) == 0);
    CHECK(g.sys(SYS_fcntl, g.mem.value_at<int>(fds), F_GETFD) == 0);
}

TEST_CASE("files: terminal ioctls on other files are ENOTTY, FIOCLEX and FIONBIO work anywhere",
          "[files]") {
    Guest g;
    std::int64_t file = g.open("f", O_CREAT | O_RDWR);
    std::uint64_t buf = g.alloc(64);
    CHECK(g.sys(SYS_ioctl, file, TCGETS, buf) == -ENOTTY);
    CHECK(g.sys(SYS_ioctl, file, TIOCGWINSZ, buf) == -ENOTTY);
    CHECK(g.sys(SYS_ioctl, file, 0x4B33 /* KDGETMODE-like */, buf) == -ENOTTY);
    CHECK(g.sys(SYS_ioctl, file, FIOCLEX) == 0);
    CHECK(g.sys(SYS_fcntl, file, F_GETFD) == FD_CLOEXEC);
    CHECK(g.sys(SYS_ioctl, file, FIONCLEX) == 0);
    CHECK(g.sys(SYS_fcntl, file, F_GETFD) == 0);
    g.mem.put_value(buf, 1);
    CHECK(g.sys(SYS_ioctl, file, FIONBIO, buf) == 0);
    CHECK((g.sys(SYS_fcntl, file, F_GETFL) & O_NONBLOCK) != 0);
    std::uint64_t fds = g.alloc(8);
    REQUIRE(g.sys(SYS_pipe2, fds, 0) == 0);
    CHECK(g.sys(SYS_ioctl, g.mem.value_at<int>(fds), TCGETS, buf) == -ENOTTY);
}

TEST_CASE("files: terminal ioctls on the VMM's own terminal reach the host", "[files]") {
    Guest g;
    std::uint64_t buf = g.alloc(64);
    // A pseudo-terminal as the VMM's stdin for the table's adoption.
    UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!master) {
        minivmm::test::skip_test("no pseudo-terminal (posix_openpt failed)");
        return;
    }
    REQUIRE(::grantpt(master.get()) == 0);
    REQUIRE(::unlockpt(master.get()) == 0);
    const std::string slave_path = ::ptsname(master.get());
    UniqueFd slave(::open(slave_path.c_str(), O_RDWR | O_NOCTTY | O_CLOEXEC));
    REQUIRE(slave);
    struct winsize size {};
    size.ws_row = 33;
    size.ws_col = 111;
    REQUIRE(::ioctl(master.get(), TIOCSWINSZ, &size) == 0);
    FileTable table;
    {
        UniqueFd saved_stdin(::fcntl(0, F_DUPFD_CLOEXEC, 3));
        REQUIRE(::dup2(slave.get(), 0) == 0);
        table.adopt_vmm_stdio();
        if (saved_stdin)
            ::dup2(saved_stdin.get(), 0);
        else
            ::close(0);
    }
    REQUIRE(table.get(0));
    CHECK(table.get(0)->kind == FileKind::vmm_terminal);
    FileSystemCalls calls(table, g.sandbox, g.mem);
    const auto sys = [&](long nr, std::uint64_t a0, std::uint64_t a1, std::uint64_t a2) {
        SyscallArgs args;
        args.nr = static_cast<std::uint64_t>(nr);
        args.a[0] = a0;
        args.a[1] = a1;
        args.a[2] = a2;
        return calls.call(args).value();
    };
    CHECK(sys(SYS_ioctl, 0, TIOCGWINSZ, buf) == 0);
    auto got = g.mem.value_at<struct winsize>(buf);
    CHECK(got.ws_row == 33);
    CHECK(got.ws_col == 111);
    CHECK(sys(SYS_ioctl, 0, TCGETS, buf) == 0);
    struct termios host_termios {};
    REQUIRE(::tcgetattr(slave.get(), &host_termios) == 0);
    std::uint32_t lflag = 0;
    std::memcpy(&lflag, g.mem.bytes(buf + 12, 4).data(), 4); // c_lflag
    CHECK(lflag == host_termios.c_lflag);
    CHECK(sys(SYS_ioctl, 0, TCGETS, kBase + kMemory - 8) == -EFAULT);
    // The same terminal opened by the guest itself is not the VMM's.
    std::int64_t own = g.open(slave_path, O_RDONLY);
    REQUIRE(own >= 0);
    CHECK(g.sys(SYS_ioctl, own, TCGETS, buf) == -ENOTTY);
}

TEST_CASE("files: FileTable reserves, forks and closes on exec", "[files]") {
    FileTable table(4);
    auto file = std::make_shared<OpenFile>();
    file->host.reset(::open("/etc/hostname", O_RDONLY | O_CLOEXEC));
    REQUIRE(file->host);
    std::weak_ptr<const OpenFile> watch = file;
    CHECK(table.add(file, false) == 0);
    CHECK(table.add(file, true) == 1);
    file.reset();
    int reserved = table.reserve();
    CHECK(reserved == 2);
    CHECK(table.get(2) == nullptr);                     // not yet installed
    CHECK(table.duplicate_onto(0, 2, false) == -EBUSY); // as Linux
    CHECK(table.reserve(4) == -EINVAL);
    CHECK(table.reserve(3) == 3);
    CHECK(table.reserve() == -EMFILE);
    table.unreserve(3);
    table.unreserve(2);
    auto child = table.clone_for_fork();
    CHECK(child->get(0) == table.get(0)); // the same open file description
    child->close_on_exec();
    CHECK(child->get(0) != nullptr);
    CHECK(child->get(1) == nullptr);
    CHECK(table.get(1) != nullptr);
    CHECK(table.close(0) == 0);
    CHECK(table.close(1) == 0);
    CHECK_FALSE(watch.expired()); // the child holds it
    child.reset();
    CHECK(watch.expired()); // the host descriptor closed with its last user
}

TEST_CASE("files: a close by another thread leaves a call's file open until it ends", "[files]") {
    Guest g;
    std::uint64_t fds = g.alloc(8);
    REQUIRE(g.sys(SYS_pipe2, fds, 0) == 0);
    auto ends = g.mem.value_at<std::array<int, 2>>(fds);
    std::uint64_t buf = g.alloc(16);
    std::int64_t got = 0;
    std::atomic<pid_t> reader_tid{0};
    // The read blocks in the host; the close below must not close the host
    // descriptor under it (a reused number would be read instead).
    std::thread reader([&] {
        reader_tid = static_cast<pid_t>(::syscall(SYS_gettid));
        SyscallArgs args;
        args.nr = SYS_read;
        args.a[0] = static_cast<std::uint64_t>(ends[0]);
        args.a[1] = buf;
        args.a[2] = 16;
        got = g.calls.call(args).value_or(-1);
    });
    // Until the reader sleeps in the host's read (its only blocking point).
    const auto sleeping = [&] {
        pid_t tid = reader_tid;
        if (tid == 0) return false;
        std::string stat = host_read("/proc/self/task/" + std::to_string(tid) + "/stat");
        std::size_t paren = stat.rfind(')');
        return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'S';
    };
    for (int i = 0; i < 1000 && !sleeping(); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(sleeping());
    CHECK(g.sys(SYS_close, ends[0]) == 0);
    CHECK(g.open("/etc/hostname", O_RDONLY) == ends[0]); // the number is free again
    CHECK(g.write(ends[1], "late") == 4);
    reader.join();
    CHECK(got == 4);
    CHECK(g.mem.string_at(buf, 4) == "late");
}
