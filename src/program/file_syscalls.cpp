#include "program/file_syscalls.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <cstring>

#if __has_include(<linux/openat2.h>)
#include <linux/openat2.h>
#else
struct open_how {
    std::uint64_t flags;
    std::uint64_t mode;
    std::uint64_t resolve;
};
#endif

// Kernel values (include/uapi/linux/openat2.h, fcntl.h, fs.h), for headers
// older than the calls.
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif
#ifndef RESOLVE_NO_MAGICLINKS
#define RESOLVE_NO_MAGICLINKS 0x02
#endif
#ifndef RESOLVE_NO_SYMLINKS
#define RESOLVE_NO_SYMLINKS 0x04
#endif
#ifndef RESOLVE_BENEATH
#define RESOLVE_BENEATH 0x08
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif
#ifndef AT_STATX_SYNC_TYPE
#define AT_STATX_SYNC_TYPE 0x6000
#endif
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef RENAME_WHITEOUT
#define RENAME_WHITEOUT (1 << 2)
#endif

namespace minivmm::linux_abi {

// The guest's system call numbers are x86-64 Linux's, which are the host's.
static_assert(__NR_read == 0 && __NR_openat == 257 && __NR_statx == 332 && __NR_faccessat2 == 439,
              "the host's system call numbers must be x86-64 Linux's");
// The structures the guest reads are the host's own on x86-64: the kernel's
// struct stat (glibc's is the same), struct statx, linux_dirent64.
static_assert(sizeof(struct stat) == 144 && offsetof(struct stat, st_size) == 48 &&
              offsetof(struct stat, st_mtim) == 88);
static_assert(sizeof(struct statx) == 256 && offsetof(struct statx, stx_size) == 40 &&
              offsetof(struct statx, stx_mtime) == 112);
static_assert(offsetof(struct dirent64, d_ino) == 0 && offsetof(struct dirent64, d_off) == 8 &&
              offsetof(struct dirent64, d_reclen) == 16 &&
              offsetof(struct dirent64, d_type) == 18 && offsetof(struct dirent64, d_name) == 19);
static_assert(sizeof(open_how) == 24);

namespace {

// Linux's bounds (include/linux/fs.h MAX_RW_COUNT, uio.h UIO_MAXIOV,
// limits.h PATH_MAX with its NUL, namei.c MAXSYMLINKS).
constexpr std::uint64_t kMaxRwCount = INT_MAX & ~std::uint64_t{4095};
constexpr std::uint64_t kIovMax = 1024;
constexpr std::size_t kPathMax = 4096;
constexpr int kMaxSymlinkHops = 40;

// Open flags by their x86-64 kernel values: glibc defines O_LARGEFILE as 0
// for 64-bit programs, the kernel's VALID_OPEN_FLAGS has it.
constexpr int kOLargefile = 0100000;
constexpr int kValidOpenFlags = 037777703;
constexpr int kPathOpenFlags =
    O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;    // openat2 allows no more
constexpr int kTmpfileBit = O_TMPFILE & ~O_DIRECTORY; // __O_TMPFILE
static_assert((kValidOpenFlags & (O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_NONBLOCK | O_SYNC |
                                  O_DIRECT | kOLargefile | O_DIRECTORY | O_NOFOLLOW | O_NOATIME |
                                  O_CLOEXEC | O_PATH | O_TMPFILE | O_ASYNC)) ==
              (O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_NONBLOCK | O_SYNC | O_DIRECT |
               kOLargefile | O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_PATH | O_TMPFILE |
               O_ASYNC));

// The final name of a change: one name, no symlink followed, no way out of
// the directory it is in.
constexpr std::uint64_t kOneName = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

// The kernel's struct termios (asm-generic/termbits.h: four flags, c_line,
// 19 control characters), not glibc's larger one; struct winsize.
constexpr std::size_t kTermiosBytes = 36;
constexpr std::size_t kWinsizeBytes = 8;

// A guest fd argument: Linux takes the low 32 bits as an int (unsigned int
// for most calls, where a negative one is simply not open).
int fd_arg(std::uint64_t reg) {
    return static_cast<int>(static_cast<std::uint32_t>(reg));
}

std::int64_t result_or_errno(long r) {
    return r < 0 ? -errno : r;
}

// openat2 into `out`: 0 or -errno.
std::int64_t open_host(int dirfd, const std::string& path, int flags, unsigned mode,
                       std::uint64_t resolve, UniqueFd& out) {
    open_how how{};
    how.flags = static_cast<std::uint32_t>(flags);
    how.mode = mode;
    how.resolve = resolve;
    long fd = ::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
    if (fd < 0) return -errno;
    out.reset(static_cast<int>(fd));
    return 0;
}

// A symlink's target; nullopt (errno set) if `name` in `dir` is none.
std::optional<std::string> read_link(int dir, const char* name) {
    std::array<char, kPathMax> buf;
    ssize_t n = ::readlinkat(dir, name, buf.data(), buf.size());
    if (n < 0) return std::nullopt;
    return std::string(buf.data(), static_cast<std::size_t>(n));
}

// /dev/null and /dev/zero: writable anywhere, since what is written is gone.
bool discards_writes(const struct stat& st) {
    return S_ISCHR(st.st_mode) && (st.st_rdev == makedev(1, 3) || st.st_rdev == makedev(1, 5));
}

// Keeps a write's SIGPIPE from the VMM: blocked in this thread for the
// write, and taken off the thread's pending set if the write raised it.
class SigpipeBlock {
  public:
    SigpipeBlock() {
        sigemptyset(&pipe_);
        sigaddset(&pipe_, SIGPIPE);
        sigset_t pending;
        sigpending(&pending);
        was_pending_ = sigismember(&pending, SIGPIPE) == 1;
        pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
    }
    ~SigpipeBlock() {
        if (raised_ && !was_pending_) {
            timespec now{};
            sigtimedwait(&pipe_, nullptr, &now);
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    SigpipeBlock(const SigpipeBlock&) = delete;
    SigpipeBlock& operator=(const SigpipeBlock&) = delete;
    void saw(ssize_t result, int err) { raised_ = raised_ || (result < 0 && err == EPIPE); }

  private:
    sigset_t pipe_{}, old_{};
    bool was_pending_ = false;
    bool raised_ = false;
};

bool may_raise_sigpipe(FileKind kind) {
    return kind == FileKind::pipe || kind == FileKind::socket || kind == FileKind::other;
}

// Walks the bytes [from, from + size) of a list of guest ranges (an iovec
// array), calling piece(va, offset, len) for each run inside one range:
// false when a piece fails or the ranges end first. Both copy directions.
template <class Range, class Piece>
bool for_each_piece(std::span<const Range> ranges, std::uint64_t from, std::size_t size,
                    Piece&& piece) {
    std::size_t done = 0;
    for (const Range& r : ranges) {
        if (done == size) break;
        if (from >= r.len) {
            from -= r.len;
            continue;
        }
        std::size_t len =
            static_cast<std::size_t>(std::min<std::uint64_t>(r.len - from, size - done));
        if (r.va + from < r.va || !piece(r.va + from, done, len)) return false;
        done += len;
        from = 0;
    }
    return done == size;
}

} // namespace

struct FileSystemCalls::GuestRange {
    std::uint64_t va;
    std::uint64_t len;
};

struct FileSystemCalls::PathAt {
    std::shared_ptr<const UniqueFd> base; // null for an absolute path
    std::string path;
    int base_fd() const { return base ? base->get() : AT_FDCWD; }
};

struct FileSystemCalls::WriteTarget {
    UniqueFd parent;       // O_PATH directory the change happens in
    std::string name;      // the final name as given, trailing slashes kept
    std::string bare_name; // without them
    bool writable = false; // parent is beneath a writable root
    bool exists = false;   // bare_name is in parent (lstat)
    int lookup_error = 0;  // why not
    struct stat st {};     // its lstat
    bool dot_name() const { return bare_name.empty() || bare_name == "." || bare_name == ".."; }
};

FileSystemCalls::FileSystemCalls(FileTable& files, const FileSandbox& sandbox, UserMemory& memory)
    : files_(files), sandbox_(sandbox), memory_(memory),
      cwd_(std::make_shared<const UniqueFd>(sandbox.open_workdir())) {}

std::optional<std::int64_t> FileSystemCalls::call(const SyscallArgs& args) {
    const std::uint64_t* a = args.a;
    const auto off = [](std::uint64_t reg) { return static_cast<std::int64_t>(reg); };
    switch (args.nr) {
    case __NR_read:
        return read(fd_arg(a[0]), a[1], a[2]);
    case __NR_write:
        return write(fd_arg(a[0]), a[1], a[2]);
    case __NR_readv:
        return readv(fd_arg(a[0]), a[1], a[2]);
    case __NR_writev:
        return writev(fd_arg(a[0]), a[1], a[2]);
    case __NR_pread64:
        return pread(fd_arg(a[0]), a[1], a[2], off(a[3]));
    case __NR_pwrite64:
        return pwrite(fd_arg(a[0]), a[1], a[2], off(a[3]));
    case __NR_open:
        return openat(AT_FDCWD, a[0], a[1], a[2]);
    case __NR_creat:
        return openat(AT_FDCWD, a[0], O_CREAT | O_WRONLY | O_TRUNC, a[1]);
    case __NR_openat:
        return openat(fd_arg(a[0]), a[1], a[2], a[3]);
    case __NR_close:
        return close(fd_arg(a[0]));
    case __NR_lseek:
        return lseek(fd_arg(a[0]), off(a[1]), a[2]);
    case __NR_fstat:
        return fstat(fd_arg(a[0]), a[1]);
    case __NR_stat:
        return newfstatat(AT_FDCWD, a[0], a[1], 0);
    case __NR_lstat:
        return newfstatat(AT_FDCWD, a[0], a[1], AT_SYMLINK_NOFOLLOW);
    case __NR_newfstatat:
        return newfstatat(fd_arg(a[0]), a[1], a[2], a[3]);
    case __NR_statx:
        return statx(fd_arg(a[0]), a[1], a[2], a[3], a[4]);
    case __NR_fsync:
        return fsync(fd_arg(a[0]), false);
    case __NR_fdatasync:
        return fsync(fd_arg(a[0]), true);
    case __NR_ftruncate:
        return ftruncate(fd_arg(a[0]), off(a[1]));
    case __NR_unlink:
        return unlinkat(AT_FDCWD, a[0], 0);
    case __NR_rmdir:
        return unlinkat(AT_FDCWD, a[0], AT_REMOVEDIR);
    case __NR_unlinkat:
        return unlinkat(fd_arg(a[0]), a[1], a[2]);
    case __NR_mkdir:
        return mkdirat(AT_FDCWD, a[0], a[1]);
    case __NR_mkdirat:
        return mkdirat(fd_arg(a[0]), a[1], a[2]);
    case __NR_symlink:
        return symlinkat(a[0], AT_FDCWD, a[1]);
    case __NR_symlinkat:
        return symlinkat(a[0], fd_arg(a[1]), a[2]);
    case __NR_rename:
        return renameat2(AT_FDCWD, a[0], AT_FDCWD, a[1], 0);
    case __NR_renameat:
        return renameat2(fd_arg(a[0]), a[1], fd_arg(a[2]), a[3], 0);
    case __NR_renameat2:
        return renameat2(fd_arg(a[0]), a[1], fd_arg(a[2]), a[3], a[4]);
    case __NR_getdents64:
        return getdents64(fd_arg(a[0]), a[1], a[2]);
    case __NR_readlink:
        return readlinkat(AT_FDCWD, a[0], a[1], a[2]);
    case __NR_readlinkat:
        return readlinkat(fd_arg(a[0]), a[1], a[2], a[3]);
    case __NR_access:
        return faccessat2(AT_FDCWD, a[0], a[1], 0);
    case __NR_faccessat:
        return faccessat2(fd_arg(a[0]), a[1], a[2], 0);
    case __NR_faccessat2:
        return faccessat2(fd_arg(a[0]), a[1], a[2], a[3]);
    case __NR_fcntl:
        return fcntl(fd_arg(a[0]), a[1], a[2]);
    case __NR_dup:
        return dup(fd_arg(a[0]));
    case __NR_dup2:
        return dup3(fd_arg(a[0]), fd_arg(a[1]), 0, true);
    case __NR_dup3:
        return dup3(fd_arg(a[0]), fd_arg(a[1]), a[2], false);
    case __NR_ioctl:
        return ioctl(fd_arg(a[0]), a[1], a[2]);
    case __NR_getcwd:
        return getcwd(a[0], a[1]);
    case __NR_chdir:
        return chdir(a[0]);
    case __NR_fchdir:
        return fchdir(fd_arg(a[0]));
    case __NR_pipe:
        return pipe2(a[0], 0);
    case __NR_pipe2:
        return pipe2(a[0], a[1]);
    default:
        return std::nullopt;
    }
}

// ---- data: read, write and their vector and positioned forms ----

bool FileSystemCalls::copy_from_ranges(std::span<const GuestRange> ranges, std::uint64_t from,
                                       std::span<std::byte> bytes) const {
    return for_each_piece(ranges, from, bytes.size(),
                          [&](std::uint64_t va, std::size_t at, std::size_t len) {
                              return memory_.copy_in(va, bytes.subspan(at, len));
                          });
}

bool FileSystemCalls::copy_to_ranges(std::span<const GuestRange> ranges, std::uint64_t from,
                                     std::span<const std::byte> bytes) {
    return for_each_piece(ranges, from, bytes.size(),
                          [&](std::uint64_t va, std::size_t at, std::size_t len) {
                              return memory_.copy_out(va, bytes.subspan(at, len));
                          });
}

std::int64_t FileSystemCalls::read_to_guest(const OpenFile& file,
                                            std::span<const GuestRange> ranges,
                                            std::optional<std::int64_t> offset) {
    std::uint64_t total = 0;
    for (const GuestRange& r : ranges)
        total += r.len; // each clamped: no overflow
    std::vector<std::byte> chunk(
        static_cast<std::size_t>(std::min<std::uint64_t>(total, kChunkBytes)));
    std::uint64_t done = 0;
    const auto partial = [&](std::int64_t error) {
        return done > 0 ? static_cast<std::int64_t>(done) : error;
    };
    do {
        std::span<std::byte> piece(chunk.data(), static_cast<std::size_t>(std::min<std::uint64_t>(
                                                     total - done, chunk.size())));
        // The guest's buffer must be able to take the bytes before they leave
        // the host file: a pipe's or terminal's could not be put back. Writing
        // its own bytes back proves it writable and changes nothing.
        if (!piece.empty() &&
            (!copy_from_ranges(ranges, done, piece) || !copy_to_ranges(ranges, done, piece)))
            return partial(-EFAULT);
        ssize_t n = offset ? ::pread(file.host.get(), piece.data(), piece.size(),
                                     *offset + static_cast<std::int64_t>(done))
                           : ::read(file.host.get(), piece.data(), piece.size());
        if (n < 0) return partial(-errno);
        if (!copy_to_ranges(ranges, done, piece.first(static_cast<std::size_t>(n))))
            return partial(-EFAULT);
        done += static_cast<std::uint64_t>(n);
        if (piece.empty() || static_cast<std::size_t>(n) < piece.size())
            break; // short: all there is for now
    } while (done < total);
    return static_cast<std::int64_t>(done);
}

std::int64_t FileSystemCalls::write_from_guest(const OpenFile& file,
                                               std::span<const GuestRange> ranges,
                                               std::optional<std::int64_t> offset) {
    std::uint64_t total = 0;
    for (const GuestRange& r : ranges)
        total += r.len;
    std::vector<std::byte> chunk(
        static_cast<std::size_t>(std::min<std::uint64_t>(total, kChunkBytes)));
    std::optional<SigpipeBlock> sigpipe;
    if (may_raise_sigpipe(file.kind)) sigpipe.emplace();
    std::uint64_t done = 0;
    const auto partial = [&](std::int64_t error) {
        return done > 0 ? static_cast<std::int64_t>(done) : error;
    };
    do {
        std::span<std::byte> piece(chunk.data(), static_cast<std::size_t>(std::min<std::uint64_t>(
                                                     total - done, chunk.size())));
        if (!copy_from_ranges(ranges, done, piece)) return partial(-EFAULT);
        ssize_t n = offset ? ::pwrite(file.host.get(), piece.data(), piece.size(),
                                      *offset + static_cast<std::int64_t>(done))
                           : ::write(file.host.get(), piece.data(), piece.size());
        int err = errno;
        if (sigpipe) sigpipe->saw(n, err);
        if (n < 0) return partial(-err);
        done += static_cast<std::uint64_t>(n);
        if (piece.empty() || static_cast<std::size_t>(n) < piece.size()) break;
    } while (done < total);
    return static_cast<std::int64_t>(done);
}

int FileSystemCalls::read_iovecs(std::uint64_t iov, std::uint64_t iovcnt,
                                 std::vector<GuestRange>& ranges) {
    if (iovcnt > kIovMax) return -EINVAL;
    std::vector<std::uint64_t> raw(static_cast<std::size_t>(iovcnt) * 2); // {iov_base, iov_len}
    if (!raw.empty() && !memory_.copy_in(iov, std::as_writable_bytes(std::span(raw))))
        return -EFAULT;
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < iovcnt; ++i) {
        std::uint64_t len = raw[2 * i + 1];
        if (static_cast<std::int64_t>(len) < 0) return -EINVAL;
        len = std::min(len, kMaxRwCount - total); // Linux clamps the sum, not each
        total += len;
        ranges.push_back(GuestRange{raw[2 * i], len});
    }
    return 0;
}

std::int64_t FileSystemCalls::read(int fd, std::uint64_t buf, std::uint64_t count) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    GuestRange range{buf, std::min(count, kMaxRwCount)};
    return read_to_guest(*file, std::span(&range, 1), std::nullopt);
}

std::int64_t FileSystemCalls::write(int fd, std::uint64_t buf, std::uint64_t count) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    GuestRange range{buf, std::min(count, kMaxRwCount)};
    return write_from_guest(*file, std::span(&range, 1), std::nullopt);
}

std::int64_t FileSystemCalls::readv(int fd, std::uint64_t iov, std::uint64_t iovcnt) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    std::vector<GuestRange> ranges;
    if (int r = read_iovecs(iov, iovcnt, ranges); r < 0) return r;
    return read_to_guest(*file, ranges, std::nullopt);
}

std::int64_t FileSystemCalls::writev(int fd, std::uint64_t iov, std::uint64_t iovcnt) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    std::vector<GuestRange> ranges;
    if (int r = read_iovecs(iov, iovcnt, ranges); r < 0) return r;
    return write_from_guest(*file, ranges, std::nullopt);
}

std::int64_t FileSystemCalls::pread(int fd, std::uint64_t buf, std::uint64_t count,
                                    std::int64_t offset) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    GuestRange range{buf, std::min(count, kMaxRwCount)};
    // Linux: a negative position, or one whose end overflows, is EINVAL.
    if (offset < 0 || offset > INT64_MAX - static_cast<std::int64_t>(range.len)) return -EINVAL;
    return read_to_guest(*file, std::span(&range, 1), offset);
}

std::int64_t FileSystemCalls::pwrite(int fd, std::uint64_t buf, std::uint64_t count,
                                     std::int64_t offset) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    GuestRange range{buf, std::min(count, kMaxRwCount)};
    if (offset < 0 || offset > INT64_MAX - static_cast<std::int64_t>(range.len)) return -EINVAL;
    return write_from_guest(*file, std::span(&range, 1), offset);
}

std::int64_t FileSystemCalls::lseek(int fd, std::int64_t offset, std::uint64_t whence) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    if (whence > SEEK_HOLE) return -EINVAL;
    return result_or_errno(::lseek(file->host.get(), offset, static_cast<int>(whence)));
}

std::int64_t FileSystemCalls::fsync(int fd, bool data_only) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    return result_or_errno(data_only ? ::fdatasync(file->host.get()) : ::fsync(file->host.get()));
}

std::int64_t FileSystemCalls::ftruncate(int fd, std::int64_t length) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    if (length < 0) return -EINVAL;
    // The host descriptor's access mode decides: only a file opened for
    // writing, hence beneath a writable root, can be truncated.
    return result_or_errno(::ftruncate(file->host.get(), length));
}

// ---- paths ----

std::shared_ptr<const UniqueFd> FileSystemCalls::cwd() const {
    std::lock_guard lock(cwd_mutex_);
    return cwd_;
}

int FileSystemCalls::path_at(int dirfd, std::uint64_t path_va, PathAt& out, EmptyPath empty) {
    int error = 0;
    std::optional<std::string> path;
    if (empty == EmptyPath::allowed_or_null && path_va == 0)
        path = std::string();
    else
        path = read_string(memory_, path_va, kPathMax - 1, error);
    if (!path) return -error;
    out.path = std::move(*path);
    if (out.path.empty() && empty == EmptyPath::refused) return -ENOENT;
    if (!out.path.empty() && out.path.front() == '/') return 0; // dirfd is ignored
    if (dirfd == AT_FDCWD) {
        out.base = cwd();
        return 0;
    }
    auto file = files_.get(dirfd);
    if (!file) return -EBADF;
    out.base = std::shared_ptr<const UniqueFd>(file, &file->host);
    return 0;
}

std::int64_t FileSystemCalls::open_for_inspection(const PathAt& at, bool follow_final,
                                                  UniqueFd& out) {
    return open_host(at.base_fd(), at.path, O_PATH | O_CLOEXEC | (follow_final ? 0 : O_NOFOLLOW), 0,
                     RESOLVE_NO_MAGICLINKS, out);
}

std::int64_t FileSystemCalls::locate_for_write(int base_fd, const std::string& path,
                                               WriteTarget& out) {
    if (path.empty()) return -ENOENT;
    // "a/b/c//" is parent "a/b/" and name "c//": the host's *at call sees
    // the trailing slashes and answers as Linux does (ENOTDIR, EISDIR).
    std::size_t end = path.find_last_not_of('/');
    std::string parent;
    if (end == std::string::npos) { // only slashes: "/"
        parent = "/";
        out.name.clear();
    } else {
        std::size_t slash = path.rfind('/', end);
        parent = slash == std::string::npos ? "." : path.substr(0, slash + 1);
        out.name = path.substr(slash == std::string::npos ? 0 : slash + 1);
    }
    out.bare_name = out.name.substr(0, out.name.find('/'));
    if (std::int64_t r = open_host(base_fd, parent, O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                                   RESOLVE_NO_MAGICLINKS, out.parent);
        r < 0)
        return r;
    out.writable = sandbox_.is_writable_dir(out.parent.get());
    if (!out.dot_name()) {
        out.exists =
            ::fstatat(out.parent.get(), out.bare_name.c_str(), &out.st, AT_SYMLINK_NOFOLLOW) == 0;
        out.lookup_error = out.exists ? 0 : errno;
    }
    return 0;
}

std::int64_t FileSystemCalls::locate_final(const PathAt& at, bool follow, WriteTarget& out) {
    UniqueFd link_dir; // the directory a followed link's target is relative to
    int base_fd = at.base_fd();
    std::string path = at.path;
    for (int hop = 0; hop <= kMaxSymlinkHops; ++hop) {
        WriteTarget target;
        if (std::int64_t r = locate_for_write(base_fd, path, target); r < 0) return r;
        if (!follow || !target.exists || !S_ISLNK(target.st.st_mode)) {
            out = std::move(target);
            return 0;
        }
        // A procfs magic link (/proc/self/fd/N) is refused as reads refuse
        // it, not followed by its name.
        UniqueFd probe;
        if (open_host(target.parent.get(), target.bare_name, O_PATH | O_CLOEXEC, 0,
                      RESOLVE_NO_MAGICLINKS, probe) == -ELOOP)
            return -ELOOP;
        auto link = read_link(target.parent.get(), target.bare_name.c_str());
        if (!link) continue; // replaced since the lstat: look again
        if (link->empty()) return -ENOENT;
        if (target.name.size() > target.bare_name.size()) *link += '/';
        path = std::move(*link);
        link_dir = std::move(target.parent);
        base_fd = link_dir.get();
    }
    return -ELOOP;
}

std::int64_t FileSystemCalls::open_for_write(const PathAt& at, int flags, unsigned mode,
                                             UniqueFd& out) {
    const int host_flags = flags | O_CLOEXEC | O_NOCTTY;
    if ((flags & O_TMPFILE) == O_TMPFILE) { // the path names the directory
        UniqueFd dir;
        if (std::int64_t r = open_host(at.base_fd(), at.path, O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                                       RESOLVE_NO_MAGICLINKS, dir);
            r < 0)
            return r;
        if (!sandbox_.is_writable_dir(dir.get())) return -EROFS;
        return open_host(dir.get(), ".", host_flags, mode, kOneName, out);
    }
    const bool create_new = (flags & O_CREAT) && (flags & O_EXCL);
    // O_CREAT | O_EXCL never follows a final symlink: the name exists.
    const bool follow = !(flags & O_NOFOLLOW) && !create_new;
    for (int attempt = 0; attempt <= kMaxSymlinkHops; ++attempt) {
        WriteTarget t;
        if (std::int64_t r = locate_final(at, follow, t); r < 0) return r;
        if (t.dot_name()) return -EISDIR;
        if (!t.writable) {
            // A read-only mount's answers, in Linux's order.
            if (!t.exists && !(flags & O_CREAT)) return -t.lookup_error;
            if (t.exists && create_new) return -EEXIST;
            const bool reads_only = (flags & O_ACCMODE) == O_RDONLY && !(flags & O_TRUNC);
            if (t.exists && (reads_only || discards_writes(t.st))) {
                // O_CREAT of a file that exists creates nothing.
                std::int64_t r = open_host(t.parent.get(), t.name,
                                           host_flags & ~(O_CREAT | O_TRUNC), 0, kOneName, out);
                if (r == -ELOOP && follow) continue; // became a symlink since: again
                if (r < 0) return r;
                struct stat st {};
                if (reads_only || (::fstat(out.get(), &st) == 0 && discards_writes(st))) return 0;
                out.reset(); // replaced by another file since the lstat
            }
            return -EROFS;
        }
        std::int64_t r = open_host(t.parent.get(), t.name, host_flags, mode, kOneName, out);
        if (r == -ELOOP && follow) continue; // became a symlink since the lstat: again
        return r;
    }
    return -ELOOP;
}

std::int64_t FileSystemCalls::install(UniqueFd host, bool close_on_exec, int reserved_fd) {
    auto file = std::make_shared<OpenFile>();
    file->kind = file_kind_of(host.get());
    file->host = std::move(host);
    files_.install(reserved_fd, std::move(file), close_on_exec);
    return reserved_fd;
}

std::int64_t FileSystemCalls::openat(int dirfd, std::uint64_t path_va, std::uint64_t flags_arg,
                                     std::uint64_t mode_arg) {
    // As open(2), unknown bits are ignored (openat2 would refuse them); so is
    // O_ASYNC, whose SIGIO would go to the VMM.
    int flags = static_cast<int>(flags_arg) & kValidOpenFlags & ~O_ASYNC;
    const bool tmpfile = (flags & O_TMPFILE) == O_TMPFILE;
    if ((flags & kTmpfileBit) && !tmpfile) return -EINVAL;
    unsigned mode = 0;
    if (flags & O_PATH)
        flags &= kPathOpenFlags;
    else if ((flags & O_CREAT) || tmpfile)
        mode = static_cast<unsigned>(mode_arg) & 07777;
    PathAt at;
    if (int r = path_at(dirfd, path_va, at); r < 0) return r;
    // The number first, as Linux: a full table creates no file.
    int fd = files_.reserve();
    if (fd < 0) return fd;
    const bool changes = !(flags & O_PATH) && ((flags & O_ACCMODE) != O_RDONLY ||
                                               (flags & (O_CREAT | O_TRUNC)) || tmpfile);
    UniqueFd host;
    std::int64_t r = changes ? open_for_write(at, flags, mode, host)
                             : open_host(at.base_fd(), at.path,
                                         flags | O_CLOEXEC | ((flags & O_PATH) ? 0 : O_NOCTTY), 0,
                                         RESOLVE_NO_MAGICLINKS, host);
    if (r < 0) {
        files_.unreserve(fd);
        return r;
    }
    return install(std::move(host), flags & O_CLOEXEC, fd);
}

std::int64_t FileSystemCalls::close(int fd) {
    return files_.close(fd);
}

std::int64_t FileSystemCalls::fstat(int fd, std::uint64_t statbuf) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    struct stat st {};
    if (::fstat(file->host.get(), &st) != 0) return -errno;
    return memory_.copy_out(statbuf, std::as_bytes(std::span(&st, 1))) ? 0 : -EFAULT;
}

std::int64_t FileSystemCalls::newfstatat(int dirfd, std::uint64_t path_va, std::uint64_t statbuf,
                                         std::uint64_t flags) {
    if (flags & ~std::uint64_t{AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT})
        return -EINVAL;
    PathAt at;
    if (int r = path_at(dirfd, path_va, at,
                        flags & AT_EMPTY_PATH ? EmptyPath::allowed_or_null : EmptyPath::refused);
        r < 0)
        return r;
    UniqueFd opened;
    if (!at.path.empty()) {
        if (std::int64_t r = open_for_inspection(at, !(flags & AT_SYMLINK_NOFOLLOW), opened); r < 0)
            return r;
    }
    struct stat st {};
    if (::fstatat(opened ? opened.get() : at.base_fd(), "", &st, AT_EMPTY_PATH) != 0) return -errno;
    return memory_.copy_out(statbuf, std::as_bytes(std::span(&st, 1))) ? 0 : -EFAULT;
}

std::int64_t FileSystemCalls::statx(int dirfd, std::uint64_t path_va, std::uint64_t flags,
                                    std::uint64_t mask, std::uint64_t statxbuf) {
    if (flags &
        ~std::uint64_t{AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE})
        return -EINVAL;
    if ((flags & AT_STATX_SYNC_TYPE) == AT_STATX_SYNC_TYPE) return -EINVAL;
    PathAt at;
    if (int r = path_at(dirfd, path_va, at,
                        flags & AT_EMPTY_PATH ? EmptyPath::allowed_or_null : EmptyPath::refused);
        r < 0)
        return r;
    UniqueFd opened;
    if (!at.path.empty()) {
        if (std::int64_t r = open_for_inspection(at, !(flags & AT_SYMLINK_NOFOLLOW), opened); r < 0)
            return r;
    }
    struct statx stx {};
    if (::statx(opened ? opened.get() : at.base_fd(), "",
                AT_EMPTY_PATH | static_cast<int>(flags & AT_STATX_SYNC_TYPE),
                static_cast<unsigned>(mask), &stx) != 0)
        return -errno;
    return memory_.copy_out(statxbuf, std::as_bytes(std::span(&stx, 1))) ? 0 : -EFAULT;
}

std::int64_t FileSystemCalls::unlinkat(int dirfd, std::uint64_t path_va, std::uint64_t flags) {
    if (flags & ~std::uint64_t{AT_REMOVEDIR}) return -EINVAL;
    PathAt at;
    if (int r = path_at(dirfd, path_va, at); r < 0) return r;
    WriteTarget t;
    if (std::int64_t r = locate_for_write(at.base_fd(), at.path, t); r < 0) return r;
    if (t.dot_name()) {
        if (!(flags & AT_REMOVEDIR)) return -EISDIR;
        return t.bare_name == "." ? -EINVAL : t.bare_name == ".." ? -ENOTEMPTY : -EBUSY;
    }
    if (!t.writable) return -EROFS;
    return result_or_errno(::unlinkat(t.parent.get(), t.name.c_str(), static_cast<int>(flags)));
}

std::int64_t FileSystemCalls::mkdirat(int dirfd, std::uint64_t path_va, std::uint64_t mode) {
    PathAt at;
    if (int r = path_at(dirfd, path_va, at); r < 0) return r;
    WriteTarget t;
    if (std::int64_t r = locate_for_write(at.base_fd(), at.path, t); r < 0) return r;
    if (t.dot_name()) return -EEXIST;
    // A read-only mount prefers EEXIST (mkdir -p relies on it).
    if (!t.writable) return t.exists ? -EEXIST : -EROFS;
    return result_or_errno(
        ::mkdirat(t.parent.get(), t.name.c_str(), static_cast<mode_t>(mode & 07777)));
}

std::int64_t FileSystemCalls::symlinkat(std::uint64_t target_va, int dirfd, std::uint64_t path_va) {
    // The target is stored, not resolved (fs/namei.c do_symlinkat): any
    // string, even one pointing outside; opening through the link later is
    // what the sandbox resolves and refuses.
    int error = 0;
    auto target = read_string(memory_, target_va, kPathMax - 1, error);
    if (!target) return -error;
    if (target->empty()) return -ENOENT;
    PathAt at;
    if (int r = path_at(dirfd, path_va, at); r < 0) return r;
    WriteTarget t;
    if (std::int64_t r = locate_for_write(at.base_fd(), at.path, t); r < 0) return r;
    if (t.dot_name()) return -EEXIST;
    if (!t.writable) return t.exists ? -EEXIST : -EROFS;
    return result_or_errno(::symlinkat(target->c_str(), t.parent.get(), t.name.c_str()));
}

std::int64_t FileSystemCalls::renameat2(int old_dirfd, std::uint64_t old_path, int new_dirfd,
                                        std::uint64_t new_path, std::uint64_t flags) {
    if (flags & ~std::uint64_t{RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT})
        return -EINVAL;
    PathAt old_at, new_at;
    if (int r = path_at(old_dirfd, old_path, old_at); r < 0) return r;
    if (int r = path_at(new_dirfd, new_path, new_at); r < 0) return r;
    WriteTarget from, to;
    if (std::int64_t r = locate_for_write(old_at.base_fd(), old_at.path, from); r < 0) return r;
    if (std::int64_t r = locate_for_write(new_at.base_fd(), new_at.path, to); r < 0) return r;
    if (from.dot_name() || to.dot_name()) return -EBUSY;
    if (!from.writable || !to.writable) return -EROFS;
    return result_or_errno(::syscall(SYS_renameat2, from.parent.get(), from.name.c_str(),
                                     to.parent.get(), to.name.c_str(),
                                     static_cast<unsigned>(flags)));
}

std::int64_t FileSystemCalls::getdents64(int fd, std::uint64_t dirp, std::uint64_t count) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    // count is an unsigned int; a smaller buffer just returns fewer entries.
    std::vector<std::byte> buf(
        std::min<std::size_t>(static_cast<std::uint32_t>(count), kChunkBytes));
    // Proven writable first: entries read from the host are consumed.
    if (!buf.empty() && (!memory_.copy_in(dirp, buf) || !memory_.copy_out(dirp, buf)))
        return -EFAULT;
    long n = ::syscall(SYS_getdents64, file->host.get(), buf.data(), buf.size());
    if (n < 0) return -errno;
    if (!memory_.copy_out(dirp, std::span(buf).first(static_cast<std::size_t>(n)))) return -EFAULT;
    return n;
}

std::int64_t FileSystemCalls::readlinkat(int dirfd, std::uint64_t path_va, std::uint64_t buf,
                                         std::uint64_t bufsiz) {
    if (static_cast<int>(bufsiz) <= 0) return -EINVAL;
    PathAt at;
    // An empty path names dirfd itself (an O_PATH | O_NOFOLLOW link).
    if (int r = path_at(dirfd, path_va, at, EmptyPath::allowed); r < 0) return r;
    UniqueFd opened;
    if (!at.path.empty()) {
        if (std::int64_t r = open_for_inspection(at, false, opened); r < 0) return r;
    }
    std::vector<char> target(std::min<std::size_t>(static_cast<int>(bufsiz), kPathMax));
    ssize_t n =
        ::readlinkat(opened ? opened.get() : at.base_fd(), "", target.data(), target.size());
    if (n < 0) {
        const int error = errno;
        // A path that names no symlink is EINVAL (readlinkat on "" says ENOENT).
        struct stat st {};
        if (error == ENOENT && opened && ::fstat(opened.get(), &st) == 0 && !S_ISLNK(st.st_mode))
            return -EINVAL;
        return -error;
    }
    return memory_.copy_out(buf,
                            std::as_bytes(std::span(target).first(static_cast<std::size_t>(n))))
               ? n
               : -EFAULT;
}

std::int64_t FileSystemCalls::faccessat2(int dirfd, std::uint64_t path_va, std::uint64_t mode,
                                         std::uint64_t flags) {
    if (mode & ~std::uint64_t{R_OK | W_OK | X_OK}) return -EINVAL;
    if (flags & ~std::uint64_t{AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH}) return -EINVAL;
    PathAt at;
    if (int r = path_at(dirfd, path_va, at,
                        flags & AT_EMPTY_PATH ? EmptyPath::allowed : EmptyPath::refused);
        r < 0)
        return r;
    const bool follow = !(flags & AT_SYMLINK_NOFOLLOW);
    UniqueFd opened;
    if (!at.path.empty()) {
        if (std::int64_t r = open_for_inspection(at, follow, opened); r < 0) return r;
    }
    const int fd = opened ? opened.get() : at.base_fd();
    if (::syscall(SYS_faccessat2, fd, "", static_cast<int>(mode),
                  AT_EMPTY_PATH | static_cast<int>(flags & AT_EACCESS)) != 0)
        return -errno;
    if (!(mode & W_OK)) return 0;
    // The host allows it; the sandbox decides.
    struct stat st {};
    if (::fstat(fd, &st) != 0) return -errno;
    if (S_ISDIR(st.st_mode)) return sandbox_.is_writable_dir(fd) ? 0 : -EROFS;
    if (discards_writes(st)) return 0;
    if (at.path.empty()) { // a descriptor: writable if it was opened for writing
        int fl = ::fcntl(fd, F_GETFL);
        return fl >= 0 && (fl & O_ACCMODE) != O_RDONLY && !(fl & O_PATH) ? 0 : -EROFS;
    }
    WriteTarget t;
    if (std::int64_t r = locate_final(at, follow, t); r < 0) return r;
    return t.writable ? 0 : -EROFS;
}

// ---- descriptors ----

std::int64_t FileSystemCalls::fcntl(int fd, std::uint64_t cmd, std::uint64_t arg) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    switch (static_cast<int>(cmd)) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC:
        // arg is an unsigned long: anything at or above the limit is EINVAL.
        if (arg >= static_cast<std::uint64_t>(files_.limit())) return -EINVAL;
        return files_.add(file, static_cast<int>(cmd) == F_DUPFD_CLOEXEC, static_cast<int>(arg));
    case F_GETFD: {
        auto cloexec = files_.close_on_exec_flag(fd);
        if (!cloexec) return -EBADF;
        return *cloexec ? FD_CLOEXEC : 0;
    }
    case F_SETFD:
        return files_.set_close_on_exec_flag(fd, arg & FD_CLOEXEC);
    case F_GETFL:
        return result_or_errno(::fcntl(file->host.get(), F_GETFL));
    case F_SETFL:
        return result_or_errno(
            ::fcntl(file->host.get(), F_SETFL, static_cast<int>(arg) & ~O_ASYNC));
    default:
        return -EINVAL;
    }
}

std::int64_t FileSystemCalls::dup(int fd) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    return files_.add(std::move(file), false);
}

std::int64_t FileSystemCalls::dup3(int old_fd, int new_fd, std::uint64_t flags, bool is_dup2) {
    if (is_dup2) {
        if (old_fd == new_fd) return files_.get(old_fd) ? new_fd : -EBADF;
    } else {
        if (flags & ~std::uint64_t{O_CLOEXEC}) return -EINVAL;
        if (old_fd == new_fd) return -EINVAL;
    }
    return files_.duplicate_onto(old_fd, new_fd, flags & O_CLOEXEC);
}

std::int64_t FileSystemCalls::ioctl(int fd, std::uint64_t request_arg, std::uint64_t arg) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    const int host = file->host.get();
    const auto request = static_cast<std::uint32_t>(request_arg); // an unsigned int in Linux
    // Answered on the host, result copied out: `bytes` of the host's answer.
    const auto query = [&](unsigned long host_request, std::size_t bytes) -> std::int64_t {
        std::array<std::byte, 64> answer{}; // more than any of these writes
        if (::ioctl(host, host_request, answer.data()) != 0) return -errno;
        return memory_.copy_out(arg, std::span(answer).first(bytes)) ? 0 : -EFAULT;
    };
    const auto set = [&](unsigned long host_request, std::size_t bytes) -> std::int64_t {
        std::array<std::byte, 64> value{};
        if (!memory_.copy_in(arg, std::span(value).first(bytes))) return -EFAULT;
        return result_or_errno(::ioctl(host, host_request, value.data()));
    };
    switch (request) {
    case FIOCLEX:
        return files_.set_close_on_exec_flag(fd, true);
    case FIONCLEX:
        return files_.set_close_on_exec_flag(fd, false);
    case FIONBIO: {
        int on = 0;
        if (!memory_.copy_in(arg, std::as_writable_bytes(std::span(&on, 1)))) return -EFAULT;
        int fl = ::fcntl(host, F_GETFL);
        if (fl < 0) return -errno;
        return result_or_errno(::fcntl(host, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK));
    }
    default:
        break;
    }
    if (file->kind != FileKind::vmm_terminal) return -ENOTTY;
    switch (request) {
    case TCGETS:
        return query(TCGETS, kTermiosBytes);
    case TCSETS:
        return set(TCSETS, kTermiosBytes);
    case TCSETSW:
        return set(TCSETSW, kTermiosBytes);
    case TCSETSF:
        return set(TCSETSF, kTermiosBytes);
    case TIOCGWINSZ:
        return query(TIOCGWINSZ, kWinsizeBytes);
    case TIOCGPGRP:
        return query(TIOCGPGRP, sizeof(pid_t));
    case FIONREAD:
        return query(FIONREAD, sizeof(int));
    default:
        return -ENOTTY;
    }
}

std::int64_t FileSystemCalls::getcwd(std::uint64_t buf, std::uint64_t size) {
    auto dir = cwd();
    struct stat st {};
    if (::fstat(dir->get(), &st) != 0) return -errno;
    if (st.st_nlink == 0) return -ENOENT; // removed, as Linux
    // The kernel's name for the directory the descriptor holds (a string
    // only reported, never resolved again).
    auto path = read_link(AT_FDCWD, ("/proc/self/fd/" + std::to_string(dir->get())).c_str());
    if (!path) return -errno;
    if (path->empty() || path->front() != '/') return -ENOENT; // unreachable from the root
    if (path->size() + 1 > kPathMax) return -ENAMETOOLONG;
    if (size < path->size() + 1) return -ERANGE;
    if (!memory_.copy_out(buf, std::as_bytes(std::span(path->c_str(), path->size() + 1))))
        return -EFAULT;
    return static_cast<std::int64_t>(path->size() + 1);
}

std::int64_t FileSystemCalls::chdir(std::uint64_t path_va) {
    PathAt at;
    if (int r = path_at(AT_FDCWD, path_va, at); r < 0) return r;
    UniqueFd dir;
    if (std::int64_t r = open_host(at.base_fd(), at.path, O_PATH | O_DIRECTORY | O_CLOEXEC, 0,
                                   RESOLVE_NO_MAGICLINKS, dir);
        r < 0)
        return r;
    if (::syscall(SYS_faccessat2, dir.get(), "", X_OK, AT_EMPTY_PATH) != 0) return -errno;
    auto next = std::make_shared<const UniqueFd>(std::move(dir));
    std::lock_guard lock(cwd_mutex_);
    cwd_.swap(next); // the old one closes after unlocking
    return 0;
}

std::int64_t FileSystemCalls::fchdir(int fd) {
    auto file = files_.get(fd);
    if (!file) return -EBADF;
    struct stat st {};
    if (::fstat(file->host.get(), &st) != 0) return -errno;
    if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
    if (::syscall(SYS_faccessat2, file->host.get(), "", X_OK, AT_EMPTY_PATH) != 0) return -errno;
    UniqueFd copy(::fcntl(file->host.get(), F_DUPFD_CLOEXEC, 3));
    if (!copy) return -errno;
    auto next = std::make_shared<const UniqueFd>(std::move(copy));
    std::lock_guard lock(cwd_mutex_);
    cwd_.swap(next);
    return 0;
}

std::int64_t FileSystemCalls::pipe2(std::uint64_t fds, std::uint64_t flags) {
    if (flags & ~std::uint64_t{O_CLOEXEC | O_NONBLOCK | O_DIRECT}) return -EINVAL;
    int read_fd = files_.reserve();
    if (read_fd < 0) return read_fd;
    int write_fd = files_.reserve();
    if (write_fd < 0) {
        files_.unreserve(read_fd);
        return write_fd;
    }
    const auto give_back = [&](std::int64_t error) {
        files_.unreserve(read_fd);
        files_.unreserve(write_fd);
        return error;
    };
    int host[2];
    if (::pipe2(host, O_CLOEXEC | static_cast<int>(flags & (O_NONBLOCK | O_DIRECT))) != 0)
        return give_back(-errno);
    UniqueFd read_end(host[0]), write_end(host[1]);
    // The numbers reach the guest before they are installed, as Linux: a bad
    // pointer leaves no descriptor behind.
    const int numbers[2] = {read_fd, write_fd};
    if (!memory_.copy_out(fds, std::as_bytes(std::span(numbers)))) return give_back(-EFAULT);
    install(std::move(read_end), flags & O_CLOEXEC, read_fd);
    install(std::move(write_end), flags & O_CLOEXEC, write_fd);
    return 0;
}

} // namespace minivmm::linux_abi
