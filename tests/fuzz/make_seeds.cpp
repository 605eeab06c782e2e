// Writes the seed corpora of the fuzz targets into <out>/<target>/: small,
// meaningful inputs in the formats the targets decode (fuzz_support.hpp),
// built from the ABI structures so that they stay valid. The image seeds
// also copy hello.bin and spin.elf from this build's guest images.
//   minivmm_fuzz_seeds tests/fuzz/corpus
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "minivmm/block_abi.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
namespace blk = minivmm::blk;

namespace {

// Hypercall and block-ring inputs: a config byte, then operations.
class Ops {
  public:
    explicit Ops(std::uint8_t config) { put<std::uint8_t>(config); }
    // Tag 0: the guest writes raw bytes at `gpa`.
    template <typename T>
    Ops& poke(std::uint32_t gpa, const T& value) {
        put<std::uint8_t>(0);
        put(gpa);
        put(static_cast<std::uint16_t>(sizeof(T)));
        put(value);
        return *this;
    }
    Ops& poke_text(std::uint32_t gpa, std::string_view text) {
        put<std::uint8_t>(0);
        put(gpa);
        put(static_cast<std::uint16_t>(text.size()));
        bytes_.insert(bytes_.end(), text.begin(), text.end());
        return *this;
    }
    // Tag 1: the guest writes an anchored u64 (1: RAM end - v, 2: 4 GiB - v, 3: -v).
    Ops& poke64(std::uint32_t gpa, std::uint8_t anchor, std::uint64_t v) {
        put<std::uint8_t>(1);
        put(gpa);
        put(anchor);
        put(v);
        return *this;
    }
    // Tag 2: a hypercall.
    Ops& call(std::uint8_t nr, std::uint32_t block, std::uint8_t how = 0) {
        put<std::uint8_t>(2);
        put(nr);
        put(how);
        put(block);
        return *this;
    }
    const std::vector<char>& bytes() const { return bytes_; }

  private:
    template <typename T>
    void put(const T& v) {
        const char* p = reinterpret_cast<const char*>(&v);
        bytes_.insert(bytes_.end(), p, p + sizeof v);
    }
    std::vector<char> bytes_;
};

void write_file(const fs::path& path, const char* data, std::size_t size) {
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data, static_cast<std::streamsize>(size));
    if (!out) throw std::runtime_error("cannot write " + path.string());
}
void write_ops(const fs::path& path, const Ops& ops) {
    write_file(path, ops.bytes().data(), ops.bytes().size());
}
void write_text(const fs::path& path, std::string_view text) {
    write_file(path, text.data(), text.size());
}
void write_bytes(const fs::path& path, const std::vector<std::byte>& b) {
    write_file(path, reinterpret_cast<const char*>(b.data()), b.size());
}

constexpr std::uint32_t kEndBit = 0x80000000u; // ram_offset(): counts back from RAM's end
constexpr std::uint8_t kFromEnd = 8;           // call how: block = RAM size - block

void image_seeds(const fs::path& dir, const fs::path& guests) {
    // A flat image: `jmp .` (any bytes that are not ELF are a flat image).
    write_text(dir / "flat_tiny.bin", std::string_view("\xeb\xfe", 2));
    minivmm::test::ElfBuilder elf;
    write_bytes(dir / "elf_two_segments.elf", elf.bytes());
    // A PT_NOTE among the loads, and an empty PT_LOAD (both skipped).
    minivmm::test::ElfBuilder notes;
    Elf64_Phdr note{};
    note.p_type = PT_NOTE;
    Elf64_Phdr empty = notes.text();
    empty.p_memsz = empty.p_filesz = 0;
    empty.p_vaddr = empty.p_paddr = 0x200000;
    notes.ph.push_back(note);
    notes.ph.push_back(empty);
    write_bytes(dir / "elf_note_and_empty_load.elf", notes.bytes());
    for (const char* name : {"hello.bin", "spin.elf"})
        fs::copy_file(guests / name, dir / name, fs::copy_options::overwrite_existing);
}

void hypercall_seeds(const fs::path& dir) {
    constexpr std::uint32_t kBlock = 0x100100, kBuf = 0x100000;
    write_ops(dir / "write_hello", Ops(0)
                                       .poke_text(kBuf, "hello, fuzz\n")
                                       .poke64(kBlock, 0, kBuf)
                                       .poke64(kBlock + 8, 0, 12)
                                       .call(0, kBlock));
    // A buffer ending exactly at RAM's end, its block in RAM's last 16 bytes.
    write_ops(dir / "write_at_ram_end",
              Ops(0).poke64(kEndBit | 15, 1, 4).poke64(kEndBit | 7, 0, 4).call(0, 16, kFromEnd));
    write_ops(dir / "exit_42", Ops(0).poke64(0x100200, 0, 42).call(1, 0x100200));
    write_ops(dir / "halt", Ops(0).call(16, 0x100000));
    write_ops(dir / "yield", Ops(0).call(19, 0x100000));
    write_ops(dir / "narrow_out", Ops(0).call(0, 0x100000, 1));
    // mem_map with room for four entries, then mem_claim of the first region
    // and mem_map again.
    struct MemMap {
        std::uint64_t buf, cap, count, generation;
    };
    struct MemClaim {
        std::uint64_t gpa, claim, status;
    };
    write_ops(dir / "mem_map", Ops(1).poke(0x100300, MemMap{0x101000, 4, 0, 0}).call(22, 0x100300));
    write_ops(dir / "mem_claim_then_map", Ops(1)
                                              .poke(0x100400, MemClaim{1ull << 30, 1, 0})
                                              .call(23, 0x100400)
                                              .poke(0x100300, MemMap{0x101000, 4, 0, 0})
                                              .call(22, 0x100300));
    // Without a hotplug table, 22 is no hypercall.
    write_ops(dir / "mem_map_no_hotplug",
              Ops(0).poke(0x100300, MemMap{0x101000, 4, 0, 0}).call(22, 0x100300));
}

void block_seeds(const fs::path& dir) {
    constexpr std::uint32_t kBlock = 0x100000, kBuf = 0x108000, kRing = 0x110000;
    write_ops(dir / "info", Ops(0).call(blk::kInfoNr, kBlock));
    write_ops(dir / "io_read",
              Ops(0).poke(kBlock, blk::Io{blk::kRead, 1, kBuf, 1024, 0}).call(blk::kIoNr, kBlock));
    write_ops(dir / "io_write_flush", Ops(0)
                                          .poke_text(kBuf, "data for sector 5")
                                          .poke(kBlock, blk::Io{blk::kWrite, 5, kBuf, 512, 0})
                                          .call(blk::kIoNr, kBlock)
                                          .poke(kBlock, blk::Io{blk::kFlush, 0, 0, 0, 0})
                                          .call(blk::kIoNr, kBlock));
    write_ops(dir / "io_write_read_only",
              Ops(1).poke(kBlock, blk::Io{blk::kWrite, 0, kBuf, 512, 0}).call(blk::kIoNr, kBlock));
    // A ring of 8 entries with three requests (read, write, flush), and the doorbell.
    auto ring = [&](std::uint8_t config) {
        Ops ops(config);
        ops.poke(kBlock, blk::RingSetup{kRing, 8, 0, 0}).call(blk::kRingSetupNr, kBlock);
        const blk::RingEntry entries[] = {
            {blk::kRead, 0, kBuf, 512, blk::kPending, 1, {}},
            {blk::kWrite, 2, kBuf + 512, 1024, blk::kPending, 2, {}},
            {blk::kFlush, 0, 0, 0, blk::kPending, 3, {}},
        };
        for (std::uint32_t i = 0; i < 3; ++i)
            ops.poke(kRing + sizeof(blk::RingHeader) + i * sizeof(blk::RingEntry), entries[i]);
        ops.poke64(kRing + offsetof(blk::RingHeader, sq_tail), 0, 3).call(blk::kKickNr, kRing);
        return ops;
    };
    write_ops(dir / "ring_three_requests", ring(0));
    write_ops(dir / "ring_hypercall_mode", ring(2));
    // Two queues: a second ring at the end of RAM (128 + 4 * 64 bytes).
    write_ops(dir / "ring_two_queues", ring(4)
                                           .poke64(kBlock, 1, 384)
                                           .poke64(kBlock + 8, 0, 4)
                                           .poke64(kBlock + 16, 0, 1)
                                           .call(blk::kRingSetupNr, kBlock)
                                           .call(blk::kKickNr, 384, kFromEnd));
    // A tail more than a ring ahead of the head.
    write_ops(dir / "ring_tail_runaway", Ops(0)
                                             .poke(kBlock, blk::RingSetup{kRing, 2, 0, 0})
                                             .call(blk::kRingSetupNr, kBlock)
                                             .poke64(kRing + 16, 0, 1000)
                                             .call(blk::kKickNr, kRing));
    // Other hypercall numbers go to the ABI's device through the router.
    write_ops(dir / "router_exit", Ops(0).poke64(0x100200, 0, 7).call(1, 0x100200));
}

void control_seeds(const fs::path& dir) {
    const std::pair<const char*, const char*> requests[] = {
        {"query_status", R"({"id":1,"command":"query-status"})"},
        {"pause_resume", "{\"id\":2,\"command\":\"pause\",\"arguments\":{\"timeout_ms\":100}}\n"
                         "{\"id\":3,\"command\":\"resume\"}"},
        {"quit", R"({"id":"q","command":"quit","arguments":{}})"},
        {"query_memory", R"({"id":4,"command":"query-memory"})"},
        {"memory_add_remove",
         "{\"id\":5,\"command\":\"memory-add\",\"arguments\":{\"gpa\":1073741824,\"size\":2097152}}"
         "\n{\"id\":6,\"command\":\"query-memory\"}\n"
         "{\"id\":7,\"command\":\"memory-remove\",\"arguments\":{\"gpa\":1073741824}}"},
        {"dirty_log", "{\"id\":8,\"command\":\"dirty-log-start\"}\n"
                      "{\"id\":9,\"command\":\"dirty-log-sync\",\"arguments\":{\"pages\":true}}\n"
                      "{\"id\":10,\"command\":\"dirty-log-stop\"}"},
        {"query_stats", R"({"id":11,"command":"query-stats"})"},
        {"errors", "not json\n[1,2]\n{\"command\":42}\n{\"command\":\"nope\"}\n"
                   "{\"id\":null,\"command\":\"pause\",\"arguments\":{\"timeout_ms\":-1}}\n"
                   "{\"command\":\"memory-add\",\"arguments\":{\"gpa\":1.5}}\n"
                   "{\"command\":\"query-status\",\"extra\":1}"},
    };
    for (const auto& [name, text] : requests)
        write_text(dir / name, text);
}

// System call inputs (fuzz_syscalls.cpp): a hole (u16 offset, u16 size, u8
// read-only), then records: tag 0 writes memory (u16 offset, u8 length,
// bytes), tag 1 makes a call (u16 number, or 0xffff and a u64; six tagged
// arguments).
class Syscalls {
  public:
    struct Arg {
        std::uint8_t kind; // 0 raw u64, 1 memory offset u16, 2 small i8, 3 end - u8
        std::uint64_t value;
    };
    static Arg raw(std::uint64_t v) { return {0, v}; }
    static Arg at(std::uint16_t offset) { return {1, offset}; }
    static Arg small(std::int8_t v) { return {2, static_cast<std::uint8_t>(v)}; }
    static Arg before_end(std::uint8_t n) { return {3, n}; }

    Syscalls(std::uint16_t hole_offset = 0, std::uint16_t hole_size = 0, bool read_only = false) {
        put(hole_offset);
        put(hole_size);
        put<std::uint8_t>(read_only ? 1 : 0);
    }
    Syscalls& poke(std::uint16_t offset, std::string_view bytes) {
        put<std::uint8_t>(0);
        put(offset);
        put(static_cast<std::uint8_t>(bytes.size()));
        bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
        return *this;
    }
    template <typename T>
    Syscalls& poke_value(std::uint16_t offset, const T& value) {
        return poke(offset, std::string_view(reinterpret_cast<const char*>(&value), sizeof value));
    }
    Syscalls& call(std::uint64_t nr, std::initializer_list<Arg> args = {}) {
        put<std::uint8_t>(1);
        if (nr < 0xff00) {
            put(static_cast<std::uint16_t>(nr));
        } else {
            put<std::uint16_t>(0xffff);
            put(nr);
        }
        std::vector<Arg> all(args);
        all.resize(6, raw(0));
        for (const Arg& a : all) {
            put(a.kind);
            if (a.kind == 0) put(a.value);
            if (a.kind == 1) put(static_cast<std::uint16_t>(a.value));
            if (a.kind >= 2) put(static_cast<std::uint8_t>(a.value));
        }
        return *this;
    }
    const std::vector<char>& bytes() const { return bytes_; }

  private:
    template <typename T>
    void put(const T& v) {
        const char* p = reinterpret_cast<const char*>(&v);
        bytes_.insert(bytes_.end(), p, p + sizeof v);
    }
    std::vector<char> bytes_;
};

void syscall_seeds(const fs::path& dir) {
    using S = Syscalls;
    const auto write = [&](const char* name, const Syscalls& s) {
        write_file(dir / name, s.bytes().data(), s.bytes().size());
    };
    // x86-64 numbers and constants, spelled out: the seeds are data.
    write("identity", S().call(39)                             // getpid
                          .call(186)                           // gettid
                          .call(102)                           // getuid
                          .call(63, {S::at(0x100)})            // uname
                          .call(97, {S::raw(3), S::at(0x200)}) // getrlimit(STACK)
                          .call(302, {S::raw(0), S::raw(7), S::at(0x200), S::at(0x300)})
                          .call(160, {S::raw(7), S::at(0x200)})  // setrlimit(NOFILE)
                          .call(121, {S::raw(0)})                // getpgid
                          .call(112));                           // setsid
    write("clocks", S().call(228, {S::raw(0), S::at(0x100)})     // clock_gettime
                        .call(228, {S::small(-6), S::at(0x100)}) // process CPU clock
                        .call(229, {S::raw(1), S::at(0x110)})    // clock_getres
                        .call(96, {S::at(0x120), S::at(0x130)})  // gettimeofday
                        .call(201, {S::at(0x140)})               // time
                        .poke_value(0x150, std::array<std::int64_t, 2>{0, 1000})
                        .call(35, {S::at(0x150), S::at(0x160)}) // nanosleep
                        .call(230, {S::raw(0), S::raw(1), S::at(0x150), S::raw(0)})
                        .call(230, {S::raw(2), S::raw(0), S::at(0x150), S::raw(0)}));
    write("signals",
          S().poke_value(0x100, std::array<std::uint64_t, 4>{0x401000, 0x04000000, 0x401100, 0})
              .call(13, {S::raw(10), S::at(0x100), S::at(0x120), S::raw(8)})
              .poke_value(0x140, std::uint64_t{1} << 11) // SIGUSR2
              .call(14, {S::raw(0), S::at(0x140), S::at(0x148), S::raw(8)})
              .call(62, {S::raw(1), S::raw(12)})    // kill(1, SIGUSR2)
              .call(127, {S::at(0x150), S::raw(8)}) // rt_sigpending
              .call(14, {S::raw(1), S::at(0x140), S::raw(0), S::raw(8)})
              .call(234, {S::raw(1), S::raw(1), S::raw(0)}) // tgkill probe
              .call(62, {S::raw(1), S::raw(10)}));          // to the handler
    write("files", S().poke(0x100, std::string_view("f\0", 2))
                       .poke(0x110, std::string_view("dir\0", 4))
                       .poke(0x120, "0123456789abcdef")
                       .call(257, {S::small(-100), S::at(0x100), S::raw(0102), S::raw(0644)})
                       .call(1, {S::raw(0), S::at(0x120), S::raw(16)})
                       .call(8, {S::raw(0), S::raw(4), S::raw(0)})
                       .call(0, {S::raw(0), S::at(0x200), S::raw(32)})
                       .call(5, {S::raw(0), S::at(0x300)})     // fstat
                       .call(83, {S::at(0x110), S::raw(0755)}) // mkdir
                       .call(95, {S::raw(077)})                // umask
                       .call(79, {S::at(0x400), S::raw(256)})  // getcwd
                       .call(3, {S::raw(0)}));
    write("futex", S().poke_value(0x100, std::uint32_t{5})
                       .poke_value(0x110, std::array<std::int64_t, 2>{0, 1000})
                       .call(202, {S::at(0x100), S::raw(128), S::raw(4)}) // mismatch
                       .call(202, {S::at(0x100), S::raw(129), S::raw(1)}) // wake
                       .call(202, {S::at(0x100), S::raw(128), S::raw(5), S::at(0x110)})
                       .call(202, {S::at(0x100), S::raw(133), S::raw(1), S::raw(1), S::at(0x104),
                                   S::raw(0x10001000)})                     // wake-op ADD 1
                       .call(202, {S::at(0x100), S::raw(128), S::raw(5)})); // deadlock
    write("unsupported", S().call(444)
                             .call(444)
                             .call(335)
                             .call(0xffffffff00000027ull) // getpid, in eax
                             .call(0x123456789ull));
    write("hole", S(0x1000, 0x1000, true)
                      .call(63, {S::at(0xff0)})                            // uname into it
                      .call(318, {S::at(0xf00), S::raw(0x400), S::raw(0)}) // getrandom
                      .call(204, {S::raw(0), S::raw(8), S::at(0x1000)})
                      .call(158, {S::raw(0x1003), S::at(0x1008)}));          // ARCH_GET_FS
    write("process", S().call(158, {S::raw(0x1002), S::raw(0x7f0000000000)}) // ARCH_SET_FS
                         .call(204, {S::raw(0), S::raw(8), S::at(0x100)})
                         .poke_value(0x110, std::uint64_t{2})
                         .call(203, {S::raw(0), S::raw(8), S::at(0x110)})
                         .call(309, {S::at(0x120), S::at(0x124), S::raw(0)})
                         .poke(0x200, std::string_view("renamed\0", 8))
                         .call(157, {S::raw(15), S::at(0x200)}) // PR_SET_NAME
                         .call(157, {S::raw(16), S::at(0x210)})
                         .poke_value(0x300, std::array<std::uint64_t, 3>{0x20000, 0, 8192})
                         .call(131, {S::at(0x300), S::at(0x320)}) // sigaltstack
                         .call(99, {S::at(0x400)})                // sysinfo
                         .call(98, {S::raw(0), S::at(0x500)})     // getrusage
                         .call(100, {S::at(0x600)})               // times
                         .call(231, {S::raw(3)}));                // exit_group
}

} // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    const fs::path out(argv[1]);
    try {
        image_seeds(out / "image", MINIVMM_GUEST_DIR);
        hypercall_seeds(out / "hypercall");
        block_seeds(out / "block_ring");
        control_seeds(out / "control");
        syscall_seeds(out / "syscalls");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "minivmm_fuzz_seeds: %s\n", e.what());
        return 1;
    }
    return 0;
}
