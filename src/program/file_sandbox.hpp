// What a guest Linux program may do with the host's files (issue 16).
//
// The policy: the program sees the host's file tree read-only, under the
// host's own paths (an absolute guest path is the same host path). It may
// create, write, truncate, unlink, rename and mkdir only beneath writable
// roots: its working directory and the extra directories given (--rw DIR).
// A change anywhere else fails with EROFS, as on a read-only mount (with
// Linux's own precedence: mkdir of an existing name is EEXIST, an open
// without O_CREAT of a missing one ENOENT), since to the program the rest of
// the tree is exactly that. The one exception: /dev/null and /dev/zero (the
// character devices 1:3 and 1:5) may be opened for writing anywhere, since
// writes to them are discarded and shells redirect to /dev/null.
//
// How it holds (src/program/file_syscalls.cpp does the resolving):
// - every path is resolved with openat2 and RESOLVE_NO_MAGICLINKS, so
//   procfs's magic links (/proc/self/fd/N, /proc/self/root, /proc/self/cwd,
//   /proc/PID/exe) cannot be walked through;
// - a change is made with a *at call on a directory descriptor and one final
//   name (never "." or ".."), after this class has checked the directory
//   descriptor itself: a walk up its ".." chain, by descriptors, finds a
//   writable root's device and inode. No string is resolved twice, so a
//   symlink swapped in between cannot redirect the change;
// - symlinks are followed where Linux follows them, also inside and out of
//   the roots: a symlink as the final name of an open is read and its target
//   resolved and checked afresh, and the final open refuses symlinks
//   (RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH on the one name), so a link
//   pointing out of a root leads to a directory the check refuses.
// Not covered: hard links to outside files that already exist beneath a root
// (anyone who could make one could write the file anyway), and reads of
// procfs files such as /proc/self/mem, which show the VMM's own process.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "minivmm/unique_fd.hpp"

namespace minivmm::linux_abi {

class FileSandbox {
  public:
    // `workdir` is where the program starts and may write ("" = the VMM's
    // current directory); `writable_dirs` are the other directories it may
    // write beneath. Throws ConfigError when one is not a directory that can
    // be opened.
    explicit FileSandbox(const std::string& workdir = {},
                         const std::vector<std::string>& writable_dirs = {});

    // A new descriptor (O_PATH, close-on-exec) of the working directory: the
    // program's first current directory. Throws SystemError if dup fails.
    UniqueFd open_workdir() const;

    // True when directory descriptor `dir_fd` is a writable root or lies
    // beneath one in the tree as it is now (its ".." chain, walked by
    // descriptors, reaches a root's device and inode before the top).
    bool is_writable_dir(int dir_fd) const;

  private:
    struct Root {
        UniqueFd dir; // O_PATH, held so that the root's inode stays the one checked
        dev_t dev;
        ino_t ino;
    };
    std::vector<Root> roots_; // roots_[0] is the working directory
};

} // namespace minivmm::linux_abi
