// minivmm-ctl: one control-socket command (README "Control socket").
//   minivmm-ctl [--timeout S] [--raw] PATH COMMAND [KEY=VALUE...]
// Prints the command's result as JSON and exits 0; an error response is one
// line on stderr and exit 1; an unreachable socket exit 1; bad usage exit 2.
#include <cmath>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include "cli/ctl_request.hpp"
#include "minivmm/control_client.hpp"
#include "minivmm/version.hpp"

int main(int argc, char** argv) {
    CLI::App app{"Send one command to a minivmm-run control socket (--api-sock).", "minivmm-ctl"};
    app.set_version_flag("--version", fmt::format("minivmm-ctl {}", minivmm::version()));
    std::string path, command;
    std::vector<std::string> args;
    double timeout = 10;
    bool raw = false;
    app.add_option("PATH", path, "the control socket")->required();
    app.add_option("COMMAND", command,
                   "query-status, pause, resume, quit, query-memory, memory-add, memory-remove, "
                   "dirty-log-start, dirty-log-stop, dirty-log-sync, query-stats")
        ->required();
    app.add_option("ARGS", args, "KEY=VALUE arguments, e.g. gpa=0x40000000 size=64M");
    app.add_option("--timeout", timeout, "seconds to wait for the response (default 10)")
        ->check(CLI::Range(0.001, 3600.0));
    app.add_flag("--raw", raw, "print the whole response line as received");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        if (e.get_exit_code() == 0) return app.exit(e);
        std::string what = e.what();
        fmt::print(stderr, "minivmm-ctl: error: {} (see --help)\n", what);
        return 2;
    }
    auto built = minivmm::cli::build_ctl_request(command, args);
    if (auto* err = std::get_if<minivmm::cli::CtlUsageError>(&built)) {
        fmt::print(stderr, "minivmm-ctl: error: {}\n", err->message);
        return 2;
    }
    try {
        minivmm::ControlClient client(
            path, std::chrono::milliseconds(static_cast<long>(std::ceil(timeout * 1000))));
        std::string line = client.request(std::get<std::string>(built));
        if (raw) {
            fmt::print("{}\n", line);
            return 0;
        }
        auto response = nlohmann::json::parse(line, nullptr, false);
        if (response.is_discarded() || !response.is_object()) {
            fmt::print(stderr, "minivmm-ctl: error: the VMM sent a response that is not a JSON "
                               "object\n");
            return 1;
        }
        if (auto e = response.find("error"); e != response.end()) {
            fmt::print(stderr, "minivmm-ctl: {}: {}\n", e->value("class", "Error"),
                       e->value("desc", ""));
            return 1;
        }
        fmt::print("{}\n", response.value("return", nlohmann::json::object()).dump(2));
        return 0;
    } catch (const minivmm::Error& e) {
        fmt::print(stderr, "minivmm-ctl: error: {}\n", e.what());
        return 1;
    }
}
