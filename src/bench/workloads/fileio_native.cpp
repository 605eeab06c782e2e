#include "fileio_native.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "minivmm/host_mapping.hpp"
#include "minivmm/unique_fd.hpp"
#include "native_workloads.hpp"
#include "sb_fileio.h"
#include "sb_report.h"

namespace minivmm::workloads {

namespace {

struct NativeFiles {
    std::vector<UniqueFd> fds;
    std::vector<std::string> paths;
    std::uint32_t threads = 1;

    ~NativeFiles() {
        for (const auto& p : paths)
            ::unlink(p.c_str());
    }
};

int native_io(bool write, int fd, std::uint64_t off, void* buf, std::uint64_t len) {
    auto* p = static_cast<char*>(buf);
    while (len != 0) {
        ssize_t n = write ? ::pwrite(fd, p, len, static_cast<off_t>(off))
                          : ::pread(fd, p, len, static_cast<off_t>(off));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return n == 0 ? EIO : errno;
        p += n;
        off += static_cast<std::uint64_t>(n);
        len -= static_cast<std::uint64_t>(n);
    }
    return 0;
}

int native_read(void* arg, std::uint32_t, std::uint64_t file, std::uint64_t off, void* buf,
                std::uint64_t len) {
    auto* files = static_cast<NativeFiles*>(arg);
    return native_io(false, files->fds[file].get(), off, buf, len);
}

int native_write(void* arg, std::uint32_t, std::uint64_t file, std::uint64_t off, const void* buf,
                 std::uint64_t len) {
    auto* files = static_cast<NativeFiles*>(arg);
    return native_io(true, files->fds[file].get(), off, const_cast<void*>(buf), len);
}

// fdatasync of one file, as sysbench's fsync request (fdatasync: the data
// and what reading it back needs, the block device's flush guarantee).
int native_sync(void* arg, std::uint32_t, std::uint64_t file) {
    auto* files = static_cast<NativeFiles*>(arg);
    return ::fdatasync(files->fds[file].get()) != 0 ? errno : 0;
}

} // namespace

FileioNativeRun run_fileio_native(const std::string& dir, std::string_view options,
                                  unsigned threads) {
    std::string opts(options);
    sb_fio_run run{};
    const char* bad = "";
    sb_fio_options_default(&run.opt);
    if (!sb_fio_parse_options(opts.c_str(), &run.opt, &bad))
        throw std::invalid_argument(fmt::format("fileio: bad option at '{}'", bad));
    if (threads == 0) threads = run.opt.threads != 0 ? static_cast<unsigned>(run.opt.threads) : 1;
    if (run.opt.file_num < threads)
        throw std::invalid_argument("fileio: --file-num is less than the thread count");

    NativeFiles files;
    files.threads = threads;
    for (std::uint64_t i = 0; i < run.opt.file_num; ++i) {
        std::string path = fmt::format("{}/test_file.{}", dir, i);
        UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
        if (!fd)
            throw std::runtime_error(
                fmt::format("fileio: cannot create {}: {}", path, std::strerror(errno)));
        files.paths.push_back(std::move(path));
        files.fds.push_back(std::move(fd));
    }

    auto mem = HostMapping::anonymous(sb_fio_bytes(&run.opt, threads));
    run.threads = threads;
    run.now_ns = tsc_now_ns; // the guest's clock, as in run_native
    run.now_arg = nullptr;
    run.ops = {native_read, native_write, native_sync, &files};
    run.mem = static_cast<unsigned char*>(mem.data());
    if (!sb_fio_prepare(&run)) throw std::invalid_argument("fileio: needs --events or --time");

    auto in_threads = [&](auto&& body) {
        std::vector<std::jthread> pool;
        for (unsigned t = 0; t < threads; ++t)
            pool.emplace_back([&body, t] { body(t); });
    };
    in_threads([&](unsigned t) { sb_fio_prepare_files(&run, t); }); // prepare
    sb_fio_start(&run);
    in_threads([&](unsigned t) { sb_fio_worker(&run, t); }); // run
    sb_result res{};
    FileioNativeRun out;
    out.status = sb_fio_finish(&run, &res);
    // What the guest prints: the report and two lines, from the same code
    // (sb_report.h, sb_run.h, sb_fileio.h).
    sb_report_info info{"fileio",
                        opts.c_str(),
                        0,
                        run.opt.file_block_size,
                        sb_fio_total(&run, 0),
                        sb_fio_total(&run, 1),
                        sb_fio_total(&run, 2)};
    out.output.assign(sb_report_format(nullptr, 0, &res, &info) + 1, '\0');
    out.output.resize(sb_report_format(out.output.data(), out.output.size(), &res, &info));
    char line[512];
    int n = std::snprintf(line, sizeof line, SB_RESULT_FMT, SB_FIO_RESULT_ARGS(res));
    out.output.append(line, n > 0 ? static_cast<std::size_t>(n) : 0);
    n = std::snprintf(line, sizeof line, SB_FIO_STATS_FMT, SB_FIO_STATS_ARGS(&run));
    out.output.append(line, n > 0 ? static_cast<std::size_t>(n) : 0);
    return out; // cleanup: ~NativeFiles removes the files
}

} // namespace minivmm::workloads
