// Fuzz target: the control socket's JSON handling
// (src/control/control_commands.cpp). The input is text: each line is one
// request to control_request on a real Vm (64 MiB, one vCPU, never
// run, so `pause` returns at once and `quit` only requests a stop), which
// makes memory-add/remove and the dirty log real. Every response must be
// one line of JSON: {"id": ..., "return": ...} or {"id": ..., "error":
// {"class": string, "desc": string}}. After each input the VM is put back
// (resumed, hot-added RAM removed, dirty logging off; a new VM after a
// quit) so that inputs replay alike. Needs /dev/kvm: without it the target
// exits 77 at start-up (a failure under MINIVMM_REQUIRE_KVM=1).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "fuzz_support.hpp"
#include "minivmm/control_socket.hpp"
#include "minivmm/error.hpp"
#include "minivmm/guest_image.hpp"
#include "minivmm/kvm.hpp"
#include "minivmm/vm.hpp"

using namespace minivmm;

namespace {

std::unique_ptr<KvmSystem> kvm_system;
std::unique_ptr<Vm> vm;

void make_vm() {
    vm.reset();
    VmConfig config;
    config.mem_size = 64ull << 20;
    config.handle_signals = false;
    config.console = std::make_shared<StringConsole>();
    const std::byte spin[] = {std::byte{0xeb}, std::byte{0xfe}}; // jmp .
    vm = std::make_unique<Vm>(*kvm_system, config, GuestImage::parse(spin));
}

void check_response(const std::string& line) {
    MINIVMM_FUZZ_CHECK(line.find('\n') == std::string::npos);
    const auto j = nlohmann::json::parse(line, nullptr, false);
    MINIVMM_FUZZ_CHECK(!j.is_discarded() && j.is_object());
    MINIVMM_FUZZ_CHECK(j.size() == 2 && j.contains("id"));
    if (j.contains("return")) return;
    MINIVMM_FUZZ_CHECK(j.contains("error"));
    const auto& e = j["error"];
    MINIVMM_FUZZ_CHECK(e.is_object() && e.size() == 2);
    MINIVMM_FUZZ_CHECK(e.contains("class") && e["class"].is_string());
    MINIVMM_FUZZ_CHECK(e.contains("desc") && e["desc"].is_string());
    MINIVMM_FUZZ_CHECK(!e["desc"].get<std::string>().empty());
}

// Puts the VM back as make_vm left it.
void reset_vm() {
    if (vm->stopping()) {
        make_vm();
        return;
    }
    vm->resume();
    for (const auto& r : vm->hotplug_ram())
        vm->remove_ram(r.gpa); // never claimed: only the guest claims
    if (vm->dirty_logging()) vm->dirty_log_stop();
}

} // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    const char* dev = std::getenv("MINIVMM_KVM_DEVICE");
    try {
        kvm_system = std::make_unique<KvmSystem>(dev && *dev ? dev : "/dev/kvm");
        make_vm();
    } catch (const std::exception& e) {
        const char* require = std::getenv("MINIVMM_REQUIRE_KVM");
        const bool required = require && std::string_view(require) == "1";
        std::fprintf(stderr, "%s: fuzz_control needs /dev/kvm: %s\n",
                     required ? "FAILED" : "SKIPPED", e.what());
        std::exit(required ? 1 : 77);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    // Up to 8 lines (requests) per input: sequences such as add then remove.
    for (int n = 0; n < 8 && !text.empty(); ++n) {
        const auto nl = text.find('\n');
        const auto line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        check_response(control_request(*vm, line));
    }
    reset_vm();
    return 0;
}
