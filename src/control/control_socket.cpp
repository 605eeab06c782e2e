#include "minivmm/control_socket.hpp"

#include "control/control_server.hpp"
#include "minivmm/vm.hpp"
#include "vm/event_loop.hpp"

namespace minivmm {

// The server, as a service of the VM's event loop: the VM starts it with
// run() and shuts it down when it stops, without knowing what it is.
struct ControlSocket::Impl final : LoopService {
    Impl(Vm& vm_, std::string path)
        : vm(vm_), server(event_loop(vm_), std::move(path),
                          [this](std::string_view line) { return control_request(vm, line); }) {
        attach_service(vm, *this);
    }
    ~Impl() { detach_service(vm, *this); }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;
    void start() override { server.start(); }
    void shutdown() override { server.shutdown(); }

    Vm& vm;
    ControlServer server;
};

ControlSocket::ControlSocket(Vm& vm, std::string path)
    : impl_(std::make_unique<Impl>(vm, std::move(path))) {}
ControlSocket::~ControlSocket() = default;
ControlSocket::ControlSocket(ControlSocket&&) noexcept = default;
ControlSocket& ControlSocket::operator=(ControlSocket&&) noexcept = default;

const std::string& ControlSocket::path() const noexcept {
    return impl_->server.path();
}

} // namespace minivmm
