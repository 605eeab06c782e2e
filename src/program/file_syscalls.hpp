// The file-related system calls of a guest Linux program (issue 16), served
// on the host as gVisor's Sentry serves them: guest fd numbers through the
// program's FileTable, paths under the FileSandbox's policy, every guest
// pointer through UserMemory only.
//
// Served (x86-64 numbers): read write readv writev pread64 pwrite64 open
// openat creat close lseek fstat stat lstat newfstatat statx fsync fdatasync
// ftruncate unlink unlinkat rmdir mkdir mkdirat symlink symlinkat rename renameat renameat2
// getdents64 readlink readlinkat access faccessat faccessat2 fcntl dup dup2
// dup3 ioctl getcwd chdir fchdir pipe pipe2.
//
// Bounds a guest cannot push past: data moves through a host buffer of at
// most kChunkBytes per step; lengths are clamped to Linux's MAX_RW_COUNT;
// iovec arrays longer than IOV_MAX are -EINVAL; paths longer than PATH_MAX
// are -ENAMETOOLONG. A read checks that the guest's buffer is writable before
// taking the bytes from the host file (a pipe's bytes could not be put back).
// Terminal ioctls (TCGETS, TCSETS/W/F, TIOCGWINSZ, TIOCGPGRP, FIONREAD) reach
// the host only on the VMM's own stdin/stdout/stderr when those are terminals
// (FileKind::vmm_terminal); FIOCLEX, FIONCLEX and FIONBIO work on any fd;
// everything else is -ENOTTY. fcntl serves the fd and status flags and
// F_DUPFD[_CLOEXEC] (O_ASYNC is ignored: SIGIO would go to the VMM); other
// commands are -EINVAL. A write that finds a pipe without readers is -EPIPE
// (the VMM does not take the SIGPIPE; raising it for the guest is the signal
// code's part).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "minivmm/unique_fd.hpp"
#include "program/file_sandbox.hpp"
#include "program/file_table.hpp"
#include "program/user_memory.hpp"

namespace minivmm::linux_abi {

class FileSystemCalls {
  public:
    // The host buffer one step of a read or write moves through.
    static constexpr std::size_t kChunkBytes = 64 * 1024;

    // The program's current directory starts as the sandbox's working
    // directory. All three must outlive this object.
    FileSystemCalls(FileTable& files, const FileSandbox& sandbox, UserMemory& memory);

    // The result (a value, or -errno) of a system call this class serves;
    // nullopt for any other number. Callable from several threads at once
    // (the program's threads share its files and current directory).
    std::optional<std::int64_t> call(const SyscallArgs& args);

  private:
    struct GuestRange;
    struct PathAt;
    struct WriteTarget;

    std::int64_t read(int fd, std::uint64_t buf, std::uint64_t count);
    std::int64_t write(int fd, std::uint64_t buf, std::uint64_t count);
    std::int64_t readv(int fd, std::uint64_t iov, std::uint64_t iovcnt);
    std::int64_t writev(int fd, std::uint64_t iov, std::uint64_t iovcnt);
    std::int64_t pread(int fd, std::uint64_t buf, std::uint64_t count, std::int64_t offset);
    std::int64_t pwrite(int fd, std::uint64_t buf, std::uint64_t count, std::int64_t offset);
    std::int64_t openat(int dirfd, std::uint64_t path, std::uint64_t flags, std::uint64_t mode);
    std::int64_t close(int fd);
    std::int64_t lseek(int fd, std::int64_t offset, std::uint64_t whence);
    std::int64_t fstat(int fd, std::uint64_t statbuf);
    std::int64_t newfstatat(int dirfd, std::uint64_t path, std::uint64_t statbuf,
                            std::uint64_t flags);
    std::int64_t statx(int dirfd, std::uint64_t path, std::uint64_t flags, std::uint64_t mask,
                       std::uint64_t statxbuf);
    std::int64_t fsync(int fd, bool data_only);
    std::int64_t ftruncate(int fd, std::int64_t length);
    std::int64_t unlinkat(int dirfd, std::uint64_t path, std::uint64_t flags);
    std::int64_t mkdirat(int dirfd, std::uint64_t path, std::uint64_t mode);
    std::int64_t symlinkat(std::uint64_t target, int dirfd, std::uint64_t path);
    std::int64_t renameat2(int old_dirfd, std::uint64_t old_path, int new_dirfd,
                           std::uint64_t new_path, std::uint64_t flags);
    std::int64_t getdents64(int fd, std::uint64_t dirp, std::uint64_t count);
    std::int64_t readlinkat(int dirfd, std::uint64_t path, std::uint64_t buf, std::uint64_t bufsiz);
    std::int64_t faccessat2(int dirfd, std::uint64_t path, std::uint64_t mode, std::uint64_t flags);
    std::int64_t fcntl(int fd, std::uint64_t cmd, std::uint64_t arg);
    std::int64_t dup(int fd);
    std::int64_t dup3(int old_fd, int new_fd, std::uint64_t flags, bool is_dup2);
    std::int64_t ioctl(int fd, std::uint64_t request, std::uint64_t arg);
    std::int64_t getcwd(std::uint64_t buf, std::uint64_t size);
    std::int64_t chdir(std::uint64_t path);
    std::int64_t fchdir(int fd);
    std::int64_t pipe2(std::uint64_t fds, std::uint64_t flags);

    // Moves bytes between `file`'s host descriptor and the guest's
    // `ranges`, kChunkBytes at a time (`offset` given: pread/pwrite).
    std::int64_t read_to_guest(const OpenFile& file, std::span<const GuestRange> ranges,
                               std::optional<std::int64_t> offset);
    std::int64_t write_from_guest(const OpenFile& file, std::span<const GuestRange> ranges,
                                  std::optional<std::int64_t> offset);
    // Reads a guest iovec array: -errno, or 0 with `ranges` filled.
    int read_iovecs(std::uint64_t iov, std::uint64_t iovcnt, std::vector<GuestRange>& ranges);
    bool copy_to_ranges(std::span<const GuestRange> ranges, std::uint64_t from,
                        std::span<const std::byte> bytes);
    bool copy_from_ranges(std::span<const GuestRange> ranges, std::uint64_t from,
                          std::span<std::byte> bytes) const;

    // Whether a call takes "" for the dirfd itself (AT_EMPTY_PATH, readlinkat),
    // and also a null pointer for it (fstatat, statx since Linux 6.11).
    enum class EmptyPath { refused, allowed, allowed_or_null };
    // A guest path and the directory it is relative to (dirfd, or the cwd).
    int path_at(int dirfd, std::uint64_t path_va, PathAt& out,
                EmptyPath empty = EmptyPath::refused);
    // The file a path names, opened O_PATH (the final symlink followed or
    // not), for calls that only look at it; -errno on failure.
    std::int64_t open_for_inspection(const PathAt& at, bool follow_final, UniqueFd& out);
    // The directory a change to `path` (relative to `base_fd`) happens in,
    // and the final name: -errno, or 0 with `out` filled.
    std::int64_t locate_for_write(int base_fd, const std::string& path, WriteTarget& out);
    // locate_for_write, then, while the final name is a symlink and
    // `follow`, the same for its target (as open follows a final symlink).
    std::int64_t locate_final(const PathAt& at, bool follow, WriteTarget& out);
    // An open that may change the tree (write access, O_CREAT, O_TRUNC,
    // O_TMPFILE), under the sandbox's policy: 0 with `out` set, or -errno.
    std::int64_t open_for_write(const PathAt& at, int flags, unsigned mode, UniqueFd& out);
    // Fills the reserved guest number with `host`; returns the number.
    std::int64_t install(UniqueFd host, bool close_on_exec, int reserved_fd);

    std::shared_ptr<const UniqueFd> cwd() const;

    FileTable& files_;
    const FileSandbox& sandbox_;
    UserMemory& memory_;
    mutable std::mutex cwd_mutex_;
    std::shared_ptr<const UniqueFd> cwd_; // O_PATH; replaced whole by chdir
};

} // namespace minivmm::linux_abi
