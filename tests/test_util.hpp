// Small helpers shared by the unit tests: byte buffers, temporary files and
// a builder for minimal ELF64 images that tests then corrupt one field at a time.
#pragma once

#include <elf.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace minivmm::test {

inline std::string guest_path(std::string_view file) {
    return std::string(MINIVMM_GUEST_DIR) + "/" + std::string(file);
}

// Held by every test that may grow or use the host's 2 MiB huge page pool:
// the unit and KVM test binaries run in parallel under ctest -j2, and a pool
// grown by one would change what the other sees. An flock on a shared file.
class HugePagePoolLock {
  public:
    HugePagePoolLock()
        : fd_(::open("/tmp/minivmm-hugepage-tests.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666)) {
        if (fd_ >= 0) ::flock(fd_, LOCK_EX);
    }
    ~HugePagePoolLock() {
        if (fd_ >= 0) ::close(fd_); // releases the lock
    }
    HugePagePoolLock(const HugePagePoolLock&) = delete;
    HugePagePoolLock& operator=(const HugePagePoolLock&) = delete;

  private:
    int fd_;
};

inline std::vector<std::byte> to_bytes(std::string_view s) {
    std::vector<std::byte> out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

// A file in $TMPDIR (or /tmp) removed when the object goes away.
class TempFile {
  public:
    explicit TempFile(std::span<const std::byte> contents) {
        const char* dir = std::getenv("TMPDIR");
        path_ = std::string(dir && *dir ? dir : "/tmp") + "/minivmm-test-XXXXXX";
        int fd = ::mkstemp(path_.data());
        if (fd < 0) throw std::runtime_error("test: mkstemp failed");
        std::size_t done = 0;
        while (done < contents.size()) {
            ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
            if (n <= 0) {
                ::close(fd);
                throw std::runtime_error("test: write to temporary file failed");
            }
            done += static_cast<std::size_t>(n);
        }
        ::close(fd);
    }
    TempFile(const TempFile&) = delete;
    TempFile& operator=(const TempFile&) = delete;
    ~TempFile() { ::unlink(path_.c_str()); }
    const std::string& path() const noexcept { return path_; }

  private:
    std::string path_;
};

// A minimal valid static x86-64 executable with two PT_LOAD segments:
//   text: R+X at 0x100000, 0x40 bytes from the file, entry at its start
//   data: R+W at 0x101000, 0x10 bytes from the file, 0x1000 in memory
// Tests change one field and call bytes().
struct ElfBuilder {
    static constexpr std::uint64_t kTextAddr = 0x100000;
    static constexpr std::uint64_t kDataAddr = 0x101000;
    static constexpr std::uint64_t kTextOffset = 0x100;
    static constexpr std::uint64_t kTextSize = 0x40;
    static constexpr std::uint64_t kDataOffset = kTextOffset + kTextSize;
    static constexpr std::uint64_t kDataFileSize = 0x10;
    static constexpr std::uint64_t kDataMemSize = 0x1000;
    static constexpr std::uint64_t kFileSize = kDataOffset + kDataFileSize;

    Elf64_Ehdr eh{};
    std::vector<Elf64_Phdr> ph;

    ElfBuilder() {
        std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
        eh.e_ident[EI_CLASS] = ELFCLASS64;
        eh.e_ident[EI_DATA] = ELFDATA2LSB;
        eh.e_ident[EI_VERSION] = EV_CURRENT;
        eh.e_ident[EI_OSABI] = ELFOSABI_SYSV;
        eh.e_type = ET_EXEC;
        eh.e_machine = EM_X86_64;
        eh.e_version = EV_CURRENT;
        eh.e_entry = kTextAddr;
        eh.e_phoff = sizeof(Elf64_Ehdr);
        eh.e_ehsize = sizeof(Elf64_Ehdr);
        eh.e_phentsize = sizeof(Elf64_Phdr);

        Elf64_Phdr text{};
        text.p_type = PT_LOAD;
        text.p_flags = PF_R | PF_X;
        text.p_offset = kTextOffset;
        text.p_vaddr = text.p_paddr = kTextAddr;
        text.p_filesz = text.p_memsz = kTextSize;
        text.p_align = 0x1000;
        Elf64_Phdr data = text;
        data.p_flags = PF_R | PF_W;
        data.p_offset = kDataOffset;
        data.p_vaddr = data.p_paddr = kDataAddr;
        data.p_filesz = kDataFileSize;
        data.p_memsz = kDataMemSize;
        ph = {text, data};
    }

    Elf64_Phdr& text() { return ph.at(0); }
    Elf64_Phdr& data() { return ph.at(1); }

    // Header, program headers at e_phoff as given by ph.size() (e_phnum is
    // taken from ph unless phnum_override is set), then a recognisable
    // payload: byte i of the file past the headers is (i & 0xff).
    std::vector<std::byte> bytes() const {
        Elf64_Ehdr h = eh;
        h.e_phnum = phnum_override >= 0 ? static_cast<Elf64_Half>(phnum_override)
                                        : static_cast<Elf64_Half>(ph.size());
        std::vector<std::byte> out(kFileSize);
        for (std::size_t i = 0; i < out.size(); ++i)
            out[i] = static_cast<std::byte>(i & 0xff);
        std::memcpy(out.data(), &h, sizeof h);
        std::uint64_t at = sizeof(Elf64_Ehdr); // headers always written here
        for (const auto& p : ph) {
            if (at + sizeof p > out.size()) out.resize(at + sizeof p);
            std::memcpy(out.data() + at, &p, sizeof p);
            at += sizeof p;
        }
        return out;
    }

    int phnum_override = -1;
};

} // namespace minivmm::test
