#include "cli/ctl_request.hpp"

#include <charconv>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/run_options.hpp"

namespace minivmm::cli {

namespace {
nlohmann::json value_of(const std::string& text) {
    if (text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
        std::uint64_t v = 0;
        auto [end, ec] = std::from_chars(text.data() + 2, text.data() + text.size(), v, 16);
        if (ec == std::errc() && end == text.data() + text.size()) return v;
    }
    if (auto size = parse_size(text)) return *size;
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (!j.is_discarded()) return j;
    return text;
}
} // namespace

std::variant<std::string, CtlUsageError> build_ctl_request(const std::string& command,
                                                           const std::vector<std::string>& args) {
    if (command.empty()) return CtlUsageError{"COMMAND must not be empty"};
    nlohmann::json arguments = nlohmann::json::object();
    for (const auto& a : args) {
        auto eq = a.find('=');
        if (eq == std::string::npos || eq == 0)
            return CtlUsageError{fmt::format("argument '{}' is not KEY=VALUE", a)};
        auto key = a.substr(0, eq);
        if (arguments.contains(key))
            return CtlUsageError{fmt::format("argument '{}' given twice", key)};
        arguments[key] = value_of(a.substr(eq + 1));
    }
    nlohmann::json request = {{"id", 1}, {"command", command}};
    if (!arguments.empty()) request["arguments"] = std::move(arguments);
    return request.dump();
}

} // namespace minivmm::cli
