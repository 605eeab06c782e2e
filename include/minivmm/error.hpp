/// \file
/// Typed errors thrown by libminivmm, by what failed: a KVM ioctl
/// (KvmError), another system call (SystemError), the configuration
/// (ConfigError), a guest image (ImageError). Every error is one line of text
/// that a CLI can print as is. (A guest's own faults are no exceptions: they
/// end the run, VmExit::Kind::guest_fault.)
#pragma once

#include <stdexcept>
#include <string>

namespace minivmm {

/// Base of every error the library throws on purpose. what() is one line.
class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// A system call failed: on a host file, host memory, a signal, a thread
/// (mmap, eventfd, madvise, sigaction, sched_getaffinity, ...).
class SystemError : public Error {
  public:
    /// `call` names the system call and what it was for ("mmap of guest
    /// RAM", "open /proc/meminfo"), `err` is the errno it failed with, `hint`
    /// says what to check (may be empty). what() is "CALL failed:
    /// strerror(err) (hint)".
    SystemError(std::string call, int err, std::string hint = {});

    /// The failed call.
    const std::string& call() const noexcept { return call_; }
    /// The errno it failed with.
    int error_code() const noexcept { return err_; }
    /// What to check; may be empty.
    const std::string& hint() const noexcept { return hint_; }

  private:
    std::string call_;
    int err_;
    std::string hint_;
};

/// An ioctl on /dev/kvm or a KVM fd failed (or opening /dev/kvm, or mapping
/// a KVM fd's memory): call() names the ioctl ("KVM_CREATE_VM").
class KvmError : public SystemError {
  public:
    using SystemError::SystemError;
};

/// The configuration asked for something impossible (too many vCPUs, too
/// little RAM, a disk that cannot be opened, ...).
class ConfigError : public Error {
  public:
    /// What a configuration error is about, so that a front end can name its
    /// own option for it (minivmm-run: --disk, --api-sock).
    enum class Subject {
        general,        ///< anything else
        disk,           ///< the block device's backing file
        control_socket, ///< the control socket's path
    };
    /// A general configuration error.
    explicit ConfigError(const std::string& message) : Error(message) {}
    /// An error about `subject`: what() is "disk DETAIL" or "control socket
    /// DETAIL"; detail() is the part after the subject ("/x: cannot open: ...").
    ConfigError(Subject subject, std::string detail);
    /// What it is about.
    Subject subject() const noexcept { return subject_; }
    /// what() without the subject's name (all of it for a general error).
    const std::string& detail() const noexcept { return detail_; }

  private:
    Subject subject_ = Subject::general;
    std::string detail_ = what();
};

/// A guest image could not be read or is malformed.
class ImageError : public Error {
  public:
    using Error::Error;
};

} // namespace minivmm
