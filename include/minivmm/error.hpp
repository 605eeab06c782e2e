/// \file
/// Typed errors thrown by libminivmm. Every error is one line of text that a
/// CLI can print as is; KvmError also keeps the ioctl name, errno and a hint.
#pragma once

#include <stdexcept>
#include <string>

namespace minivmm {

/// Base of every error the library throws on purpose. what() is one line.
class Error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

/// A system call or ioctl on /dev/kvm (or a KVM fd, or host memory) failed.
class KvmError : public Error {
  public:
    /// `call` names the ioctl or syscall ("KVM_CREATE_VM", "open /dev/kvm"),
    /// `err` is the errno it failed with, `hint` says what to check (may be
    /// empty). what() is "CALL failed: strerror(err) (hint)".
    KvmError(std::string call, int err, std::string hint = {});

    /// The failed ioctl or system call.
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

/// The configuration asked for something impossible (too many vCPUs, too
/// little RAM, a bad size string, ...).
class ConfigError : public Error {
  public:
    using Error::Error;
};

/// A guest image could not be read or is malformed.
class ImageError : public Error {
  public:
    using Error::Error;
};

} // namespace minivmm
