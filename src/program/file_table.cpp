#include "program/file_table.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <utility>

#include "minivmm/error.hpp"

namespace minivmm::linux_abi {

FileKind file_kind_of(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return FileKind::other;
    switch (st.st_mode & S_IFMT) {
    case S_IFREG:
        return FileKind::regular;
    case S_IFDIR:
        return FileKind::directory;
    case S_IFIFO:
        return FileKind::pipe;
    case S_IFSOCK:
        return FileKind::socket;
    case S_IFCHR:
        return FileKind::char_device;
    case S_IFBLK:
        return FileKind::block_device;
    case S_IFLNK:
        return FileKind::symlink;
    default:
        return FileKind::other;
    }
}

FileTable::FileTable(int limit) : limit_(limit > 0 ? limit : 1), soft_limit_(limit_) {}

void FileTable::set_limit(int soft_limit) noexcept {
    soft_limit_.store(std::clamp(soft_limit, 0, limit_), std::memory_order_relaxed);
}

void FileTable::adopt_vmm_stdio() {
    for (int fd = 0; fd <= 2; ++fd) {
        // Above 2, so the duplicate never takes a stdio number the VMM has
        // closed; close-on-exec, as every descriptor the VMM holds.
        int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0) {
            if (errno == EBADF) continue; // the VMM's own is closed
            throw SystemError("fcntl F_DUPFD_CLOEXEC of the VMM's fd " + std::to_string(fd), errno);
        }
        auto file = std::make_shared<OpenFile>();
        file->host.reset(copy);
        file->kind = ::isatty(copy) ? FileKind::vmm_terminal : file_kind_of(copy);
        std::shared_ptr<const OpenFile> shared = std::move(file);
        std::lock_guard lock(mutex_);
        if (slots_.size() <= static_cast<std::size_t>(fd)) slots_.resize(fd + 1);
        slots_[fd] = Slot{std::move(shared), false, false};
    }
}

std::unique_ptr<FileTable> FileTable::clone_for_fork() const {
    auto child = std::make_unique<FileTable>(limit_);
    child->set_limit(limit()); // fork keeps the parent's rlimits
    std::lock_guard lock(mutex_);
    child->slots_.resize(slots_.size());
    for (std::size_t i = 0; i < slots_.size(); ++i) {
        // A number reserved by an open in progress is not the child's.
        if (slots_[i].file) child->slots_[i] = Slot{slots_[i].file, slots_[i].close_on_exec, false};
    }
    return child;
}

void FileTable::close_on_exec() {
    std::vector<std::shared_ptr<const OpenFile>> closing; // closed after unlocking
    std::lock_guard lock(mutex_);
    for (Slot& s : slots_) {
        if (s.file && s.close_on_exec) {
            closing.push_back(std::move(s.file));
            s = Slot{};
        }
    }
}

std::size_t FileTable::open_count() const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const Slot& s : slots_)
        n += s.in_use() ? 1 : 0;
    return n;
}

const FileTable::Slot* FileTable::slot(int fd) const {
    if (fd < 0 || static_cast<std::size_t>(fd) >= slots_.size()) return nullptr;
    return &slots_[fd];
}

FileTable::Slot* FileTable::slot(int fd) {
    return const_cast<Slot*>(std::as_const(*this).slot(fd));
}

int FileTable::reserve(int lowest) {
    if (lowest < 0 || lowest >= limit_) return -EINVAL;
    const int soft_limit = limit();
    std::lock_guard lock(mutex_);
    for (int fd = lowest; fd < soft_limit; ++fd) {
        if (static_cast<std::size_t>(fd) >= slots_.size()) slots_.resize(fd + 1);
        if (!slots_[fd].in_use()) {
            slots_[fd].reserved = true;
            return fd;
        }
    }
    return -EMFILE;
}

void FileTable::install(int fd, std::shared_ptr<const OpenFile> file, bool close_on_exec) {
    std::lock_guard lock(mutex_);
    Slot* s = slot(fd);
    if (!s || !s->reserved) return; // not reserved: a caller's bug; nothing to fill
    *s = Slot{std::move(file), close_on_exec, false};
}

void FileTable::unreserve(int fd) {
    std::lock_guard lock(mutex_);
    if (Slot* s = slot(fd); s && s->reserved) *s = Slot{};
}

int FileTable::add(std::shared_ptr<const OpenFile> file, bool close_on_exec, int lowest) {
    int fd = reserve(lowest);
    if (fd >= 0) install(fd, std::move(file), close_on_exec);
    return fd;
}

std::shared_ptr<const OpenFile> FileTable::get(int fd) const {
    std::lock_guard lock(mutex_);
    const Slot* s = slot(fd);
    return s ? s->file : nullptr;
}

std::optional<bool> FileTable::close_on_exec_flag(int fd) const {
    std::lock_guard lock(mutex_);
    const Slot* s = slot(fd);
    if (!s || !s->file) return std::nullopt;
    return s->close_on_exec;
}

int FileTable::set_close_on_exec_flag(int fd, bool close_on_exec) {
    std::lock_guard lock(mutex_);
    Slot* s = slot(fd);
    if (!s || !s->file) return -EBADF;
    s->close_on_exec = close_on_exec;
    return 0;
}

int FileTable::close(int fd) {
    std::shared_ptr<const OpenFile> closing; // released after unlocking
    std::lock_guard lock(mutex_);
    Slot* s = slot(fd);
    if (!s || !s->file) return -EBADF;
    closing = std::move(s->file);
    *s = Slot{};
    return 0;
}

int FileTable::duplicate_onto(int old_fd, int new_fd, bool close_on_exec) {
    std::shared_ptr<const OpenFile> displaced; // released after unlocking
    std::lock_guard lock(mutex_);
    const Slot* from = slot(old_fd);
    if (!from || !from->file) return -EBADF;
    if (new_fd < 0 || new_fd >= limit()) return -EBADF; // dup2/dup3 check the soft limit
    if (static_cast<std::size_t>(new_fd) >= slots_.size()) slots_.resize(new_fd + 1);
    from = slot(old_fd); // resize may have moved it
    Slot& to = slots_[new_fd];
    if (to.reserved) return -EBUSY;
    displaced = std::move(to.file);
    to = Slot{from->file, close_on_exec, false};
    return new_fd;
}

} // namespace minivmm::linux_abi
