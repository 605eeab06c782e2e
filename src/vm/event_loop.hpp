// A Vm's event loop (the Boost.Asio loop that Vm::run drives on its calling
// thread) for the layers above the VM: a service attached here is started
// when run() begins and shut down, on the loop's thread, once the VM stops.
// The control socket (src/control) is one; the VM itself knows none of them.
#pragma once

#include <boost/asio/io_context.hpp>

namespace minivmm {

class Vm;

class LoopService {
  public:
    // On the loop's thread, when run() begins.
    virtual void start() = 0;
    // On the loop's thread, once the VM is stopping: end what keeps the loop
    // busy (run() returns when the loop has nothing left to do).
    virtual void shutdown() = 0;

  protected:
    ~LoopService() = default;
};

// The loop, to create sockets and timers on.
boost::asio::io_context& event_loop(Vm& vm) noexcept;
// Before run(), or after it returned; the service must stay alive until it is
// detached (or the Vm destroyed).
void attach_service(Vm& vm, LoopService& service);
void detach_service(Vm& vm, LoopService& service) noexcept;

} // namespace minivmm
