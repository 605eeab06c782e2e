#include "minivmm/rcu.hpp"

#include <thread>
#include <utility>

namespace minivmm {

namespace {
std::atomic<std::uint64_t> next_domain_id{1};

// This thread's reader records, by domain id (ids are never reused). Each
// record is shared with its domain's list; whichever side goes first flags
// it, and the other drops it on its next sweep.
struct ThreadReaders {
    std::vector<std::pair<std::uint64_t, std::shared_ptr<RcuDomain::Reader>>> entries;
    ThreadReaders() = default;
    ThreadReaders(const ThreadReaders&) = delete;
    ThreadReaders& operator=(const ThreadReaders&) = delete;
    ~ThreadReaders() {
        for (auto& [id, reader] : entries)
            reader->thread_gone.store(true, std::memory_order_release);
    }
};
thread_local ThreadReaders thread_readers;
} // namespace

RcuDomain::RcuDomain() : id_(next_domain_id.fetch_add(1)) {}

RcuDomain::~RcuDomain() {
    std::lock_guard lock(readers_mutex_);
    for (const auto& r : readers_)
        r->domain_gone.store(true, std::memory_order_release);
}

RcuDomain::Reader& RcuDomain::reader_for_this_thread() const {
    auto& entries = thread_readers.entries;
    for (auto& [id, reader] : entries)
        if (id == id_) return *reader;
    // Once per thread and domain: sweep out the records of gone domains too.
    std::erase_if(entries, [](const auto& e) {
        return e.second->domain_gone.load(std::memory_order_acquire);
    });
    auto reader = std::make_shared<Reader>();
    {
        std::lock_guard lock(readers_mutex_);
        readers_.push_back(reader);
    }
    entries.emplace_back(id_, reader);
    return *reader;
}

void RcuDomain::prune_locked() const {
    // An exited thread holds no read-side section: nothing to wait for.
    std::erase_if(readers_,
                  [](const auto& r) { return r->thread_gone.load(std::memory_order_acquire); });
}

RcuDomain::ReadGuard::ReadGuard(const RcuDomain& domain)
    : reader_(&domain.reader_for_this_thread()) {
    if (reader_->depth++ == 0) {
        // A seq_cst store, then the caller's seq_cst load of the pointer: a
        // writer that bumps the epoch after publishing either sees us active
        // or we see its new pointer (one total order over both).
        reader_->active.store(domain.epoch_.load(std::memory_order_acquire),
                              std::memory_order_seq_cst);
    }
}

RcuDomain::ReadGuard::~ReadGuard() {
    if (--reader_->depth == 0) reader_->active.store(0, std::memory_order_release);
}

void RcuDomain::synchronize() const {
    std::uint64_t target = epoch_.fetch_add(1, std::memory_order_seq_cst) + 1;
    std::vector<std::shared_ptr<Reader>> readers;
    {
        std::lock_guard lock(readers_mutex_);
        prune_locked();
        readers = readers_;
    }
    for (const auto& r : readers) {
        for (unsigned spins = 0;; ++spins) {
            // seq_cst, like the reader's store of `active` and its load of
            // the pointer: only then do the caller's publish + this scan and
            // the reader's announce + load form one total order (the
            // store-buffer pattern), so one of the two sides sees the other.
            // An acquire load may be ordered before the epoch bump in the
            // C++ model; on x86 both are the same plain load.
            std::uint64_t a = r->active.load(std::memory_order_seq_cst);
            if (a == 0 || a >= target) break;
            if (spins > 64) std::this_thread::yield();
        }
    }
}

std::size_t RcuDomain::registered_readers() const {
    std::lock_guard lock(readers_mutex_);
    prune_locked();
    return readers_.size();
}

std::size_t RcuDomain::records_on_this_thread() {
    return thread_readers.entries.size();
}

} // namespace minivmm
