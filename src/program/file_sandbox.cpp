#include "program/file_sandbox.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "minivmm/error.hpp"

namespace minivmm::linux_abi {

namespace {

// Deeper than any real tree; a deeper walk is refused rather than followed.
constexpr int kMaxDepth = 4096;

} // namespace

FileSandbox::FileSandbox(const std::string& workdir,
                         const std::vector<std::string>& writable_dirs) {
    auto add_root = [this](const std::string& path, const char* what) {
        UniqueFd dir(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        struct stat st {};
        if (!dir || ::fstat(dir.get(), &st) != 0)
            throw ConfigError(std::string(what) + " " + path +
                              ": cannot open as a directory: " + std::strerror(errno));
        roots_.push_back(Root{std::move(dir), st.st_dev, st.st_ino});
    };
    add_root(workdir.empty() ? std::string(".") : workdir, "working directory");
    for (const std::string& dir : writable_dirs)
        add_root(dir, "writable directory");
}

UniqueFd FileSandbox::open_workdir() const {
    UniqueFd copy(::fcntl(roots_[0].dir.get(), F_DUPFD_CLOEXEC, 3));
    if (!copy) throw SystemError("fcntl F_DUPFD_CLOEXEC of the working directory", errno);
    return copy;
}

bool FileSandbox::is_writable_dir(int dir_fd) const {
    struct stat st {};
    if (::fstat(dir_fd, &st) != 0 || !S_ISDIR(st.st_mode)) return false;
    UniqueFd current; // -1 at first: dir_fd itself, not owned
    for (int depth = 0; depth < kMaxDepth; ++depth) {
        for (const Root& root : roots_)
            if (st.st_dev == root.dev && st.st_ino == root.ino) return true;
        int here = current ? current.get() : dir_fd;
        // ".." by descriptor: the parent as the tree is now, across mounts.
        UniqueFd parent(::openat(here, "..", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        struct stat parent_st {};
        if (!parent || ::fstat(parent.get(), &parent_st) != 0) return false;
        if (parent_st.st_dev == st.st_dev && parent_st.st_ino == st.st_ino) return false; // the top
        current = std::move(parent);
        st = parent_st;
    }
    return false;
}

} // namespace minivmm::linux_abi
