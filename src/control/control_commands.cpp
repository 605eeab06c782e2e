#include "control/control_commands.hpp"

#include <chrono>
#include <functional>
#include <map>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "minivmm/control_socket.hpp"
#include "minivmm/error.hpp"
#include "minivmm/version.hpp"
#include "minivmm/vm.hpp"

namespace minivmm {

namespace {

using json = nlohmann::json;

// A command's refusal: becomes {"error":{"class":..., "desc":...}}.
struct CommandError {
    std::string error_class;
    std::string desc;
};

json error_object(std::string_view error_class, std::string_view desc) {
    return {{"class", error_class}, {"desc", desc}};
}

// The arguments of one command, checked: unknown keys and wrong types are
// refused before the command runs.
class Args {
  public:
    Args(const json& args, std::string_view command, std::set<std::string> allowed)
        : args_(args), command_(command) {
        for (const auto& [key, value] : args_.items()) {
            (void)value;
            if (!allowed.count(key))
                throw CommandError{"InvalidArgument",
                                   fmt::format("{}: unknown argument '{}'", command_, key)};
        }
    }
    std::optional<std::uint64_t> u64(const char* key, bool required) const {
        auto it = args_.find(key);
        if (it == args_.end()) {
            if (required)
                throw CommandError{"InvalidArgument",
                                   fmt::format("{}: missing argument '{}'", command_, key)};
            return std::nullopt;
        }
        if (!it->is_number_unsigned() && !(it->is_number_integer() && it->get<std::int64_t>() >= 0))
            throw CommandError{"InvalidArgument",
                               fmt::format("{}: '{}' must be a non-negative integer, not {}",
                                           command_, key, it->type_name())};
        return it->get<std::uint64_t>();
    }
    bool flag(const char* key) const {
        auto it = args_.find(key);
        if (it == args_.end()) return false;
        if (!it->is_boolean())
            throw CommandError{"InvalidArgument",
                               fmt::format("{}: '{}' must be true or false, not {}", command_, key,
                                           it->type_name())};
        return it->get<bool>();
    }

  private:
    const json& args_;
    std::string command_;
};

json latency_json(const LatencySnapshot& s) {
    json j = {{"count", s.count},
              {"total_ns", s.sum_ns},
              {"avg_ns", s.count ? s.sum_ns / s.count : 0},
              {"max_ns", s.max_ns},
              {"p50_ns_le", s.quantile_upper_ns(0.5)},
              {"p99_ns_le", s.quantile_upper_ns(0.99)}};
    // Only the non-empty buckets: [upper bound in ns, count].
    json buckets = json::array();
    for (std::size_t i = 0; i < s.buckets.size(); ++i)
        if (s.buckets[i] != 0)
            buckets.push_back({LatencySnapshot::bucket_upper_ns(i), s.buckets[i]});
    j["buckets_le_ns"] = std::move(buckets);
    return j;
}

std::string status_name(const Vm& vm) {
    if (vm.stopping()) return "stopping";
    return vm.paused() ? "paused" : "running";
}

json query_status(Vm& vm, const json& a) {
    Args(a, "query-status", {});
    return {
        {"status", status_name(vm)},           {"vcpus", vm.plan().nr_vcpus()},
        {"mem_size", vm.plan().mem_size()},    {"lock_policy", to_string(vm.kvm_slots().policy())},
        {"dirty_logging", vm.dirty_logging()}, {"version", version()}};
}

json pause(Vm& vm, const json& a) {
    Args args(a, "pause", {"timeout_ms"});
    auto ms = args.u64("timeout_ms", false).value_or(1000);
    if (ms > 60000) throw CommandError{"InvalidArgument", "pause: 'timeout_ms' is at most 60000"};
    if (vm.stopping()) throw CommandError{"Failed", "pause: the VM is stopping"};
    if (!vm.pause(std::chrono::milliseconds(ms)))
        throw CommandError{"Timeout", fmt::format("pause: the vCPUs did not all stop within {} ms "
                                                  "(they stay asked to pause; resume undoes it)",
                                                  ms)};
    return {{"status", "paused"}};
}

json resume(Vm& vm, const json& a) {
    Args(a, "resume", {});
    vm.resume();
    return {{"status", status_name(vm)}};
}

json quit(Vm& vm, const json& a) {
    Args(a, "quit", {});
    vm.request_stop({VmExit::Kind::quit, 0, -1, "stopped by the control socket's quit command"});
    return json::object();
}

const char* kind_name(MemoryRegion::Kind k) {
    switch (k) {
    case MemoryRegion::Kind::ram:
        return "ram";
    case MemoryRegion::Kind::rom:
        return "rom";
    case MemoryRegion::Kind::mmio:
        return "mmio";
    default:
        return "container";
    }
}

json query_memory(Vm& vm, const json& a) {
    Args(a, "query-memory", {});
    json spaces = json::array();
    // Inside a read section: a view's sections point at regions that a
    // concurrent memory-remove may free once no reader is left.
    json regions = vm.address_space().read_view([](const FlatView& view) {
        json out = json::array();
        for (const auto& s : view.sections())
            out.push_back({{"name", s.region->name()},
                           {"gpa", s.gpa},
                           {"size", s.size},
                           {"kind", kind_name(s.kind)},
                           {"readonly", s.readonly},
                           {"dirty_logging", s.log_dirty}});
        return out;
    });
    auto& km = vm.kvm_slots();
    // Only the spaces the VM listens to: on a host with SMM, KVM offers a
    // second one (KVM_CAP_MULTI_ADDRESS_SPACE = 2) that this VM never fills.
    for (unsigned as : km.listened_address_spaces()) {
        json sp = {{"as_id", as}};
        // The VM's one guest-physical space is KVM address space 0.
        sp["regions"] = as == 0 ? regions : json::array();
        json slots = json::array();
        for (const auto& s : km.slots(as))
            slots.push_back({{"slot", s.slot},
                             {"gpa", s.start_addr},
                             {"size", s.memory_size},
                             {"flags", s.flags}});
        sp["slots"] = std::move(slots);
        sp["free_slots"] = km.free_slots(as);
        spaces.push_back(std::move(sp));
    }
    json hot = json::array();
    for (const auto& r : vm.hotplug_ram())
        hot.push_back({{"gpa", r.gpa}, {"size", r.size}, {"claimed", r.claimed}});
    return {{"address_spaces", std::move(spaces)}, {"hotplug", std::move(hot)}};
}

json memory_add(Vm& vm, const json& a) {
    Args args(a, "memory-add", {"gpa", "size"});
    auto gpa = *args.u64("gpa", true), size = *args.u64("size", true);
    vm.add_ram(gpa, size);
    return {{"gpa", gpa}, {"size", size}};
}

json memory_remove(Vm& vm, const json& a) {
    Args args(a, "memory-remove", {"gpa"});
    vm.remove_ram(*args.u64("gpa", true));
    return json::object();
}

json dirty_log_start(Vm& vm, const json& a) {
    Args(a, "dirty-log-start", {});
    if (vm.dirty_logging()) throw CommandError{"Failed", "dirty-log-start: already logging"};
    vm.dirty_log_start();
    return json::object();
}

json dirty_log_stop(Vm& vm, const json& a) {
    Args(a, "dirty-log-stop", {});
    if (!vm.dirty_logging()) throw CommandError{"Failed", "dirty-log-stop: not logging"};
    vm.dirty_log_stop();
    return json::object();
}

json dirty_log_sync(Vm& vm, const json& a) {
    Args args(a, "dirty-log-sync", {"pages"});
    const bool pages = args.flag("pages");
    if (!vm.dirty_logging())
        throw CommandError{"Failed", "dirty-log-sync: not logging (dirty-log-start first)"};
    auto gpas = vm.dirty_log_sync();
    json j = {{"dirty_pages", gpas.size()},
              {"page_size", 4096},
              {"mode", vm.dirty_ring_entries() ? "ring" : "bitmap"}};
    if (pages) j["pages"] = gpas;
    return j;
}

json query_stats(Vm& vm, const json& a) {
    Args(a, "query-stats", {});
    const VmStats s = vm.stats();
    json exits = json::object();
    for (std::size_t r = 0; r < ExitCounts::kReasons; ++r)
        if (s.exits.by_reason[r] != 0)
            exits[ExitCounts::reason_name(r)] = {{"total", s.exits.by_reason[r]},
                                                 {"latency", latency_json(s.exit_latency[r])}};
    json hypercalls = json::object();
    for (std::size_t n = 0; n < ExitCounts::kHypercalls; ++n)
        if (s.exits.hypercalls[n] != 0)
            hypercalls[std::to_string(n)] = {{"total", s.exits.hypercalls[n]},
                                             {"latency", latency_json(s.hypercall_latency[n])}};
    json j = {{"exits", {{"total", s.exits.total()}, {"by_reason", std::move(exits)}}},
              {"hypercalls", std::move(hypercalls)},
              {"slot_updates", latency_json(s.slot_updates)},
              {"slot_lock",
               {{"policy", to_string(s.lock_policy)},
                {"contended", s.lock.contended},
                {"wait_ns", s.lock.wait_ns},
                {"waits", latency_json(s.lock_waits)}}},
              {"memory_hotplug",
               {{"adds", latency_json(s.ram_adds)}, {"removes", latency_json(s.ram_removes)}}}};
    if (s.has_disk)
        j["io"] = {{"reads", s.disk_reads},
                   {"writes", s.disk_writes},
                   {"flushes", s.disk_flushes},
                   {"errors", s.disk_errors},
                   {"ring_requests", s.exits.ring_requests},
                   {"ioeventfd_signals", s.exits.ioeventfd_signals},
                   {"requests", latency_json(s.disk_requests)}};
    return j;
}

using Command = json (*)(Vm&, const json&);
const std::map<std::string, Command, std::less<>>& commands() {
    static const std::map<std::string, Command, std::less<>> table = {
        {"query-status", query_status},
        {"pause", pause},
        {"resume", resume},
        {"quit", quit},
        {"query-memory", query_memory},
        {"memory-add", memory_add},
        {"memory-remove", memory_remove},
        {"dirty-log-start", dirty_log_start},
        {"dirty-log-stop", dirty_log_stop},
        {"dirty-log-sync", dirty_log_sync},
        {"query-stats", query_stats},
    };
    return table;
}

} // namespace

std::string control_error_line(std::string_view error_class, std::string_view desc) {
    return json{{"id", nullptr}, {"error", error_object(error_class, desc)}}.dump();
}

std::string control_request(Vm& vm, std::string_view line) {
    json id = nullptr;
    auto reply_error = [&](std::string_view cls, std::string_view desc) {
        return json{{"id", id}, {"error", error_object(cls, desc)}}.dump(
            -1, ' ', false, json::error_handler_t::replace);
    };
    if (line.size() > kControlMaxLine)
        return reply_error("LineTooLong",
                           fmt::format("a request line is at most {} bytes", kControlMaxLine));
    // Containers nested too deep are dropped while parsing, never built:
    // copying and printing a json value recurse once per level, and a line
    // of 64 KiB of '[' nests 32768 deep, enough to overflow the stack.
    bool too_deep = false;
    json request = json::parse(
        line,
        [&too_deep](int depth, json::parse_event_t event, json&) {
            if ((event == json::parse_event_t::object_start ||
                 event == json::parse_event_t::array_start) &&
                depth >= kControlMaxDepth) {
                too_deep = true;
                return false;
            }
            return true;
        },
        false);
    if (request.is_discarded()) return reply_error("ParseError", "the line is not valid JSON");
    // With "id": null, as for a line too long: what is left of the request
    // may be the id itself, cut short or holding a dropped value.
    if (too_deep)
        return reply_error("InvalidRequest",
                           fmt::format("JSON nested deeper than {} levels", kControlMaxDepth));
    if (!request.is_object())
        return reply_error("InvalidRequest",
                           "a request is a JSON object: "
                           "{\"id\": ..., \"command\": ..., \"arguments\": {...}}");
    if (auto it = request.find("id"); it != request.end()) id = *it;
    for (const auto& [key, value] : request.items()) {
        (void)value;
        if (key != "id" && key != "command" && key != "arguments")
            return reply_error("InvalidRequest", fmt::format("unknown request member '{}'", key));
    }
    auto cmd = request.find("command");
    if (cmd == request.end() || !cmd->is_string())
        return reply_error("InvalidRequest", "'command' must be a string");
    json args = json::object();
    if (auto it = request.find("arguments"); it != request.end()) {
        if (!it->is_object())
            return reply_error("InvalidArgument", "'arguments' must be an object");
        args = *it;
    }
    const auto& table = commands();
    auto found = table.find(cmd->get<std::string>());
    if (found == table.end())
        return reply_error("CommandNotFound",
                           fmt::format("no command '{}'", cmd->get<std::string>()));
    try {
        json result = found->second(vm, args);
        return json{{"id", id}, {"return", std::move(result)}}.dump(-1, ' ', false,
                                                                    json::error_handler_t::replace);
    } catch (const CommandError& e) {
        return reply_error(e.error_class, e.desc);
    } catch (const Error& e) { // ConfigError, KvmError: the library's one-line reasons
        return reply_error("Failed", e.what());
    } catch (const std::exception& e) {
        return reply_error("Failed", fmt::format("{}: {}", cmd->get<std::string>(), e.what()));
    }
}

} // namespace minivmm
