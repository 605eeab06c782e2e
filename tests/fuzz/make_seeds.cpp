// Writes the seed corpora of the fuzz targets into <out>/<target>/: small,
// meaningful inputs in the formats the targets decode (fuzz_support.hpp),
// built from the ABI structures so that they stay valid. The image seeds
// also copy hello.bin and spin.elf from this build's guest images.
//   minivmm_fuzz_seeds tests/fuzz/corpus
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
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
    } catch (const std::exception& e) {
        std::fprintf(stderr, "minivmm_fuzz_seeds: %s\n", e.what());
        return 1;
    }
    return 0;
}
