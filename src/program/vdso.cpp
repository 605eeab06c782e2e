#include "program/vdso.hpp"

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

#include <elf.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

#include "minivmm/error.hpp"
#include "minivmm/log.hpp"

namespace minivmm::linux_abi {

namespace detail {
// guest/vdso/embed_vdso.cmake generates their definitions.
extern const unsigned char kVdsoImage[];
extern const std::size_t kVdsoImageSize;
} // namespace detail

std::span<const std::byte> vdso_image() {
    return std::as_bytes(std::span(detail::kVdsoImage, detail::kVdsoImageSize));
}

std::size_t vdso_mapped_size() {
    return (detail::kVdsoImageSize + kVdsoPageSize - 1) / kVdsoPageSize * kVdsoPageSize;
}

// ---- the dynamic symbols -------------------------------------------------

namespace {

std::uint32_t sysv_hash(std::string_view name) {
    std::uint32_t h = 0;
    for (unsigned char c : name) {
        h = (h << 4) + c;
        std::uint32_t g = h & 0xf0000000u;
        if (g) h ^= g >> 24;
        h &= ~g;
    }
    return h;
}

std::uint32_t gnu_hash(std::string_view name) {
    std::uint32_t h = 5381;
    for (unsigned char c : name)
        h = h * 33 + c;
    return h;
}

} // namespace

template <class T>
T VdsoSymbols::read(std::uint64_t offset) const {
    if (offset > image_.size() || image_.size() - offset < sizeof(T))
        throw ImageError("vDSO image: a table runs past the end of the image");
    T value;
    std::memcpy(&value, image_.data() + offset, sizeof(T));
    return value;
}

std::uint64_t VdsoSymbols::offset_of(std::uint64_t vaddr) const {
    if (vaddr < load_bias_) throw ImageError("vDSO image: an address below the image");
    return vaddr - load_bias_;
}

std::string_view VdsoSymbols::string_at(std::uint64_t index) const {
    if (index >= strsz_) throw ImageError("vDSO image: a string outside DT_STRTAB");
    std::uint64_t start = offset_of(strtab_) + index;
    std::uint64_t end = offset_of(strtab_) + strsz_;
    if (end > image_.size()) throw ImageError("vDSO image: DT_STRTAB runs past the image");
    auto chars = reinterpret_cast<const char*>(image_.data());
    const void* nul = std::memchr(chars + start, 0, end - start);
    if (!nul) throw ImageError("vDSO image: an unterminated string");
    return {chars + start, static_cast<std::size_t>(static_cast<const char*>(nul) - chars - start)};
}

VdsoSymbols::VdsoSymbols(std::span<const std::byte> image) : image_(image) {
    auto eh = read<Elf64_Ehdr>(0);
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_type != ET_DYN || eh.e_machine != EM_X86_64 || eh.e_phentsize != sizeof(Elf64_Phdr))
        throw ImageError("vDSO image: not an x86-64 ELF64 shared object");
    std::optional<std::uint64_t> dynamic;
    bool loaded = false;
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        auto ph = read<Elf64_Phdr>(eh.e_phoff + std::uint64_t{i} * sizeof(Elf64_Phdr));
        if (ph.p_type == PT_LOAD) {
            // musl: base = ehdr + p_offset - p_vaddr; glibc: the first
            // PT_LOAD's p_vaddr is the ELF header's address.
            if (loaded) throw ImageError("vDSO image: more than one PT_LOAD");
            if (ph.p_offset != 0 || ph.p_vaddr < ph.p_offset)
                throw ImageError("vDSO image: the PT_LOAD does not start with the ELF header");
            load_bias_ = ph.p_vaddr - ph.p_offset;
            loaded = true;
        } else if (ph.p_type == PT_DYNAMIC) {
            dynamic = ph.p_offset;
        }
    }
    if (!loaded || !dynamic) throw ImageError("vDSO image: no PT_LOAD or no PT_DYNAMIC");

    std::uint64_t soname = 0;
    bool has_soname = false;
    for (std::uint64_t at = *dynamic;; at += sizeof(Elf64_Dyn)) {
        auto dyn = read<Elf64_Dyn>(at);
        if (dyn.d_tag == DT_NULL) break;
        std::uint64_t value = dyn.d_un.d_val;
        switch (dyn.d_tag) {
        case DT_STRTAB:
            strtab_ = value;
            break;
        case DT_STRSZ:
            strsz_ = value;
            break;
        case DT_SYMTAB:
            symtab_ = value;
            break;
        case DT_HASH:
            hash_ = value;
            break;
        case DT_GNU_HASH:
            gnu_hash_ = value;
            break;
        case DT_VERSYM:
            versym_ = value;
            break;
        case DT_VERDEF:
            verdef_ = value;
            break;
        case DT_VERDEFNUM:
            verdefnum_ = value;
            break;
        case DT_SONAME:
            soname = value, has_soname = true;
            break;
        case DT_REL:
        case DT_RELA:
        case DT_JMPREL:
        case DT_TEXTREL:
            has_relocations_ = true;
            break;
        default:
            break;
        }
    }
    if (!strtab_ || !symtab_ || !strsz_)
        throw ImageError("vDSO image: no DT_STRTAB, DT_STRSZ or DT_SYMTAB");
    if (has_soname) soname_ = std::string(string_at(soname));

    std::uint64_t at = verdef_ ? offset_of(verdef_) : 0;
    for (std::uint64_t i = 0; verdef_ && i < verdefnum_; ++i) {
        auto def = read<Elf64_Verdef>(at);
        if (!(def.vd_flags & VER_FLG_BASE)) {
            auto aux = read<Elf64_Verdaux>(at + def.vd_aux);
            versions_.emplace_back(string_at(aux.vda_name));
        }
        if (def.vd_next == 0) break;
        at += def.vd_next;
    }
}

std::uint32_t VdsoSymbols::symbol_count() const {
    if (!hash_) throw ImageError("vDSO image: no DT_HASH (musl needs it)");
    return read<std::uint32_t>(offset_of(hash_) + 4); // nchain
}

// musl's __vdsosym and checkver, one symbol.
bool VdsoSymbols::symbol_matches(std::uint32_t index, std::string_view name,
                                 std::string_view version) const {
    constexpr unsigned kTypes =
        1u << STT_NOTYPE | 1u << STT_OBJECT | 1u << STT_FUNC | 1u << STT_COMMON;
    constexpr unsigned kBinds = 1u << STB_GLOBAL | 1u << STB_WEAK | 1u << STB_GNU_UNIQUE;
    auto sym = read<Elf64_Sym>(offset_of(symtab_) + std::uint64_t{index} * sizeof(Elf64_Sym));
    if (!(1u << ELF64_ST_TYPE(sym.st_info) & kTypes)) return false;
    if (!(1u << ELF64_ST_BIND(sym.st_info) & kBinds)) return false;
    if (sym.st_shndx == SHN_UNDEF) return false;
    if (string_at(sym.st_name) != name) return false;
    if (!versym_ || !verdef_) return version.empty();
    auto wanted = read<Elf64_Half>(offset_of(versym_) + std::uint64_t{index} * 2) & 0x7fff;
    std::uint64_t at = offset_of(verdef_);
    for (std::uint64_t i = 0; i < verdefnum_; ++i) {
        auto def = read<Elf64_Verdef>(at);
        if (!(def.vd_flags & VER_FLG_BASE) && (def.vd_ndx & 0x7fff) == wanted)
            return string_at(read<Elf64_Verdaux>(at + def.vd_aux).vda_name) == version;
        if (def.vd_next == 0) break;
        at += def.vd_next;
    }
    return false;
}

std::optional<std::uint64_t> VdsoSymbols::find(std::string_view name,
                                               std::string_view version) const {
    std::uint32_t nchain = symbol_count();
    std::uint64_t table = offset_of(hash_);
    auto nbucket = read<std::uint32_t>(table);
    if (nbucket == 0) return std::nullopt;
    std::uint64_t chains = table + 8 + std::uint64_t{nbucket} * 4;
    std::uint32_t i = read<std::uint32_t>(table + 8 + std::uint64_t{sysv_hash(name) % nbucket} * 4);
    for (std::uint32_t steps = 0; i != STN_UNDEF && steps <= nchain; ++steps) {
        if (i >= nchain) throw ImageError("vDSO image: DT_HASH chain out of range");
        if (symbol_matches(i, name, version))
            return offset_of(read<Elf64_Sym>(offset_of(symtab_) + i * sizeof(Elf64_Sym)).st_value);
        i = read<std::uint32_t>(chains + std::uint64_t{i} * 4);
    }
    return std::nullopt;
}

std::optional<std::uint64_t> VdsoSymbols::find_gnu_hash(std::string_view name,
                                                        std::string_view version) const {
    if (!gnu_hash_) throw ImageError("vDSO image: no DT_GNU_HASH");
    std::uint64_t table = offset_of(gnu_hash_);
    auto nbuckets = read<std::uint32_t>(table);
    auto symoffset = read<std::uint32_t>(table + 4);
    auto bloom_size = read<std::uint32_t>(table + 8);
    auto bloom_shift = read<std::uint32_t>(table + 12);
    if (nbuckets == 0 || bloom_size == 0) return std::nullopt;
    std::uint64_t bloom = table + 16;
    std::uint64_t buckets = bloom + std::uint64_t{bloom_size} * 8;
    std::uint64_t chain = buckets + std::uint64_t{nbuckets} * 4;

    std::uint32_t h = gnu_hash(name);
    auto word = read<std::uint64_t>(bloom + std::uint64_t{h / 64 % bloom_size} * 8);
    std::uint64_t mask = std::uint64_t{1} << (h % 64) | std::uint64_t{1}
                                                            << ((h >> bloom_shift) % 64);
    if ((word & mask) != mask) return std::nullopt;
    std::uint32_t i = read<std::uint32_t>(buckets + std::uint64_t{h % nbuckets} * 4);
    if (i == 0) return std::nullopt;
    if (i < symoffset) throw ImageError("vDSO image: DT_GNU_HASH bucket below symoffset");
    for (std::uint32_t limit = symbol_count(); i < limit; ++i) {
        auto h2 = read<std::uint32_t>(chain + std::uint64_t{i - symoffset} * 4);
        if ((h | 1) == (h2 | 1) && symbol_matches(i, name, version))
            return offset_of(read<Elf64_Sym>(offset_of(symtab_) + i * sizeof(Elf64_Sym)).st_value);
        if (h2 & 1) break;
    }
    return std::nullopt;
}

bool VdsoSymbols::all_defined_symbols_versioned() const {
    if (!versym_ || !verdef_) return false;
    for (std::uint32_t i = 1; i < symbol_count(); ++i) {
        auto sym = read<Elf64_Sym>(offset_of(symtab_) + std::uint64_t{i} * sizeof(Elf64_Sym));
        if (sym.st_shndx == SHN_UNDEF || ELF64_ST_BIND(sym.st_info) == STB_LOCAL) continue;
        auto ndx = read<Elf64_Half>(offset_of(versym_) + std::uint64_t{i} * 2) & 0x7fff;
        if (ndx <= VER_NDX_GLOBAL) return false;
    }
    return true;
}

// ---- the host's clocks ---------------------------------------------------

std::uint64_t HostClockSource::tsc() {
    _mm_lfence();
    return __rdtsc() + static_cast<std::uint64_t>(guest_tsc_offset_);
}

std::int64_t HostClockSource::clock_ns(clockid_t clock) {
    timespec ts;
    if (clock_gettime(clock, &ts) != 0) throw SystemError("clock_gettime", errno);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t HostClockSource::resolution_ns(clockid_t clock) {
    timespec ts;
    if (clock_getres(clock, &ts) != 0) throw SystemError("clock_getres", errno);
    return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

struct timezone HostClockSource::time_zone() {
    // The system call itself: glibc's gettimeofday no longer fills in a zone.
    struct timezone tz {};
    if (syscall(SYS_gettimeofday, nullptr, &tz) != 0) throw SystemError("gettimeofday", errno);
    return tz;
}

void HostClockSource::sleep(std::chrono::nanoseconds duration) {
    std::this_thread::sleep_for(duration);
}

// ---- the publisher -------------------------------------------------------

namespace {

constexpr std::uint64_t kShift = 32;
// Samples per reading of a clock: the one with the fewest TSC ticks between
// its two TSC reads wins (the others were interrupted or slow).
constexpr int kSampleTries = 8;
// How much faster or slower than the host's rate a timeline may run while
// it catches up with the host (0.1%); a larger error is stepped instead.
constexpr double kMaxSlew = 1e-3;
// The rate is measured over about this much history: long enough that the
// sampling error (tens of ns) is a few hundredths of a ppm, short enough to
// follow NTP, which changes Linux's rate once a second.
constexpr std::chrono::seconds kRateWindow{1};

// The clock, with the TSC halfway between two reads around it.
template <class Reading>
Reading sample_clock(ClockSource& clocks, clockid_t clock) {
    Reading best{};
    std::uint64_t best_width = std::numeric_limits<std::uint64_t>::max();
    for (int i = 0; i < kSampleTries; ++i) {
        std::uint64_t before = clocks.tsc();
        std::int64_t ns = clocks.clock_ns(clock);
        std::uint64_t after = clocks.tsc();
        if (after < before || after - before >= best_width) continue;
        best_width = after - before;
        best = {before + best_width / 2, ns};
    }
    if (best_width == std::numeric_limits<std::uint64_t>::max())
        best = {clocks.tsc(), clocks.clock_ns(clock)};
    return best;
}

// `clock` - CLOCK_MONOTONIC lies in [lo, hi]: `clock` was read between two
// reads of CLOCK_MONOTONIC, and Linux keeps the difference exact.
struct OffsetBracket {
    std::int64_t lo, hi;
};
OffsetBracket sample_offset(ClockSource& clocks, clockid_t clock) {
    OffsetBracket best{0, std::numeric_limits<std::int64_t>::max()};
    for (int i = 0; i < kSampleTries; ++i) {
        std::int64_t before = clocks.clock_ns(CLOCK_MONOTONIC);
        std::int64_t value = clocks.clock_ns(clock);
        std::int64_t after = clocks.clock_ns(CLOCK_MONOTONIC);
        OffsetBracket b{value - after, value - before};
        if (b.hi - b.lo < best.hi - best.lo) best = b;
    }
    return best;
}

// Kept while the bracket holds it, so that REALTIME and BOOTTIME do not
// jitter by the sampling error at every update.
std::int64_t settle_offset(std::int64_t previous, bool first, OffsetBracket b) {
    if (!first && b.lo <= previous && previous <= b.hi) return previous;
    return b.lo + (b.hi - b.lo) / 2;
}

std::uint64_t mult_for(std::int64_t ns, std::uint64_t ticks) {
    auto scaled = static_cast<unsigned __int128>(ns) << kShift;
    return static_cast<std::uint64_t>((scaled + ticks / 2) / ticks);
}

template <class T>
void store(T& field, T value, std::memory_order order = std::memory_order_release) {
    std::atomic_ref<T>(field).store(value, order);
}

// The elapsed part of timeline_ns, with the fraction: nanoseconds since
// base_ns, times 2^shift.
unsigned __int128 scaled_since_base(const mvg_vdso_timeline& line, std::uint64_t tsc) {
    std::uint64_t delta = tsc > line.tsc_ref ? tsc - line.tsc_ref : 0;
    std::uint64_t slewed = std::min(delta, line.slew_ticks);
    return static_cast<unsigned __int128>(slewed) * line.slew_mult +
           static_cast<unsigned __int128>(delta - slewed) * line.mult + line.base_frac;
}
} // namespace

std::uint64_t timeline_ns(const mvg_vdso_timeline& line, std::uint64_t tsc) {
    return line.base_ns +
           static_cast<std::uint64_t>(scaled_since_base(line, tsc) >> (line.shift & 63));
}

VdsoPublisher::VdsoPublisher(std::span<std::byte> page, std::unique_ptr<ClockSource> clocks,
                             const Options& options)
    : page_(page), clocks_(std::move(clocks)), options_(options) {
    if (page_.size() < sizeof(mvg_vdso_data) ||
        reinterpret_cast<std::uintptr_t>(page_.data()) % alignof(mvg_vdso_data) != 0)
        throw ConfigError("vDSO parameter page: too small or not 8-byte aligned");
    if (options_.update_interval <= std::chrono::nanoseconds::zero())
        throw ConfigError("vDSO parameter page: the update interval must be positive");
    std::memset(page_.data(), 0, page_.size());

    struct timezone tz = clocks_->time_zone();
    data_.tz_minuteswest = tz.tz_minuteswest;
    data_.tz_dsttime = tz.tz_dsttime;
    data_.getcpu_mode = options_.getcpu == VdsoGetcpu::fixed    ? MVG_VDSO_GETCPU_FIXED
                        : options_.getcpu == VdsoGetcpu::rdtscp ? MVG_VDSO_GETCPU_RDTSCP
                                                                : MVG_VDSO_GETCPU_SYSCALL;
    data_.cpu = options_.cpu;
    data_.node = options_.node;
    if (!options_.use_tsc) {
        data_.clock_mode = MVG_VDSO_CLOCK_NONE;
        publish();
        return;
    }

    // The rates: TSC against CLOCK_MONOTONIC_RAW (the TSC's own rate) and
    // against CLOCK_MONOTONIC (that with NTP's adjustment), over the
    // calibration baseline.
    auto mono0 = sample_clock<Reading>(*clocks_, CLOCK_MONOTONIC);
    auto raw0 = sample_clock<Reading>(*clocks_, CLOCK_MONOTONIC_RAW);
    clocks_->sleep(options_.calibration);
    auto mono1 = sample_clock<Reading>(*clocks_, CLOCK_MONOTONIC);
    auto raw1 = sample_clock<Reading>(*clocks_, CLOCK_MONOTONIC_RAW);
    if (raw1.tsc <= raw0.tsc || raw1.ns <= raw0.ns || mono1.tsc <= mono0.tsc ||
        mono1.ns <= mono0.ns)
        throw ConfigError("vDSO clock: the TSC or the host's clocks did not advance");
    tsc_hz_ =
        static_cast<double>(raw1.tsc - raw0.tsc) * 1e9 / static_cast<double>(raw1.ns - raw0.ns);
    if (options_.tsc_khz_hint) {
        double hint_hz = static_cast<double>(*options_.tsc_khz_hint) * 1e3;
        if (std::abs(tsc_hz_ - hint_hz) > hint_hz * 1e-3)
            logger().warn("vDSO clock: the TSC runs at {:.0f} kHz, not the {} kHz KVM reports; "
                          "using the measured rate",
                          tsc_hz_ / 1e3, *options_.tsc_khz_hint);
    }
    auto ticks = [&](auto duration) {
        return static_cast<std::uint64_t>(
            std::max(1.0, tsc_hz_ * std::chrono::duration<double>(duration).count()));
    };
    interval_tsc_ = ticks(options_.update_interval);
    rate_window_tsc_ = ticks(kRateWindow);
    auto start = [](Tracker& t, Reading r0, Reading r1) {
        t.rate_mult = mult_for(r1.ns - r0.ns, r1.tsc - r0.tsc);
        t.line = {r1.tsc,     static_cast<std::uint64_t>(r1.ns), 0, t.rate_mult, kShift, 0,
                  t.rate_mult};
        t.history = {r0, r1};
    };
    start(monotonic_, mono0, mono1);
    start(raw_, raw0, raw1);

    data_.clock_mode = MVG_VDSO_CLOCK_TSC;
    data_.hres_res_ns = static_cast<std::uint64_t>(clocks_->resolution_ns(CLOCK_MONOTONIC));
    auto coarse_res = clocks_->resolution_ns(CLOCK_MONOTONIC_COARSE);
    if (coarse_res <= 0)
        throw ConfigError("vDSO clock: the host's coarse clocks have no resolution");
    data_.coarse_res_ns = static_cast<std::uint64_t>(coarse_res);
    // The host's tick grid: any reading of a coarse clock is on it.
    data_.coarse_phase_ns =
        static_cast<std::uint64_t>(clocks_->clock_ns(CLOCK_MONOTONIC_COARSE) % coarse_res);
    sample_offsets(true);
    publish();
}

void VdsoPublisher::sample_offsets(bool first) {
    data_.realtime_offset_ns =
        settle_offset(data_.realtime_offset_ns, first, sample_offset(*clocks_, CLOCK_REALTIME));
    data_.boottime_offset_ns =
        settle_offset(data_.boottime_offset_ns, first, sample_offset(*clocks_, CLOCK_BOOTTIME));
}

// Moves the line to the new reading without a jump: it starts where the old
// line is now, runs at a rate corrected so that it meets the host's clock
// one update interval later, and at the measured rate from then on (so an
// update that comes late does not carry the correction on). An error too
// large to slew away at kMaxSlew in one interval is stepped (the host's
// clock jumped, or update() was not called for a long time).
void VdsoPublisher::track(Tracker& t, clockid_t clock) {
    auto now = sample_clock<Reading>(*clocks_, clock);
    if (now.tsc <= t.line.tsc_ref) return;
    // The history keeps a reading every quarter interval at most, however
    // often update() is called.
    if (now.tsc - t.history.back().tsc >= interval_tsc_ / 4) t.history.push_back(now);
    while (t.history.size() > 2 && now.tsc - t.history[1].tsc >= rate_window_tsc_)
        t.history.pop_front();
    const Reading& oldest = t.history.front();
    if (now.tsc - oldest.tsc >= interval_tsc_ / 4 && now.ns > oldest.ns)
        t.rate_mult = mult_for(now.ns - oldest.ns, now.tsc - oldest.tsc);

    // Where the line is now, to the fraction of a nanosecond: rounding it
    // away at every update would slow the clock down.
    unsigned __int128 scaled = scaled_since_base(t.line, now.tsc);
    std::uint64_t ours_ns = t.line.base_ns + static_cast<std::uint64_t>(scaled >> kShift);
    std::uint64_t ours_frac =
        static_cast<std::uint64_t>(scaled & ((std::uint64_t{1} << kShift) - 1));
    std::int64_t error = static_cast<std::int64_t>(ours_ns) - now.ns; // > 0: ours is ahead
    __int128 correction = (static_cast<__int128>(error) << kShift) / interval_tsc_;
    auto limit = static_cast<__int128>(static_cast<double>(t.rate_mult) * kMaxSlew);
    if (correction > limit || correction < -limit) {
        t.line = {now.tsc,    static_cast<std::uint64_t>(now.ns), 0, t.rate_mult, kShift, 0,
                  t.rate_mult};
    } else {
        t.line = {now.tsc,
                  ours_ns,
                  ours_frac,
                  t.rate_mult,
                  kShift,
                  interval_tsc_,
                  static_cast<std::uint64_t>(t.rate_mult - correction)};
    }
}

void VdsoPublisher::update() {
    if (data_.clock_mode != MVG_VDSO_CLOCK_TSC) return;
    track(monotonic_, CLOCK_MONOTONIC);
    track(raw_, CLOCK_MONOTONIC_RAW);
    sample_offsets(false);
    publish();
}

// The sequence counter's writer side: odd, then the fields, then even. Each
// field is a release store, so none becomes visible before the odd count,
// and the even count none before the fields (on x86, plain stores in program
// order; the vDSO reads them in order between its two reads of seq).
void VdsoPublisher::publish() {
    data_.monotonic = monotonic_.line;
    data_.monotonic_raw = raw_.line;
    auto* page = reinterpret_cast<mvg_vdso_data*>(page_.data());
    std::uint64_t seq = std::atomic_ref<std::uint64_t>(page->seq).load(std::memory_order_relaxed);
    store(page->seq, seq + 1, std::memory_order_relaxed);
    store(page->clock_mode, data_.clock_mode);
    for (auto [to, from] : {std::pair{&page->monotonic, &data_.monotonic},
                            std::pair{&page->monotonic_raw, &data_.monotonic_raw}}) {
        store(to->tsc_ref, from->tsc_ref);
        store(to->base_ns, from->base_ns);
        store(to->base_frac, from->base_frac);
        store(to->mult, from->mult);
        store(to->shift, from->shift);
        store(to->slew_ticks, from->slew_ticks);
        store(to->slew_mult, from->slew_mult);
    }
    store(page->realtime_offset_ns, data_.realtime_offset_ns);
    store(page->boottime_offset_ns, data_.boottime_offset_ns);
    store(page->coarse_res_ns, data_.coarse_res_ns);
    store(page->coarse_phase_ns, data_.coarse_phase_ns);
    store(page->hres_res_ns, data_.hres_res_ns);
    store(page->tz_minuteswest, data_.tz_minuteswest);
    store(page->tz_dsttime, data_.tz_dsttime);
    store(page->getcpu_mode, data_.getcpu_mode);
    store(page->cpu, data_.cpu);
    store(page->node, data_.node);
    store(page->seq, seq + 2);
    data_.seq = seq + 2;
}

} // namespace minivmm::linux_abi
