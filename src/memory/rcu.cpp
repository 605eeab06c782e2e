#include "minivmm/rcu.hpp"

#include <thread>
#include <utility>

namespace minivmm {

namespace {
std::atomic<std::uint64_t> next_domain_id{1};

// This thread's reader records, by domain id (ids are never reused, so a
// record of a destroyed domain is simply never looked up again).
struct ThreadReaders {
    std::vector<std::pair<std::uint64_t, std::shared_ptr<RcuDomain::Reader>>> entries;
};
thread_local ThreadReaders thread_readers;
} // namespace

RcuDomain::RcuDomain() : id_(next_domain_id.fetch_add(1)) {}

RcuDomain::Reader& RcuDomain::reader_for_this_thread() const {
    for (auto& [id, reader] : thread_readers.entries)
        if (id == id_) return *reader;
    auto reader = std::make_shared<Reader>();
    {
        std::lock_guard lock(readers_mutex_); // once per thread and domain
        readers_.push_back(reader);
    }
    thread_readers.entries.emplace_back(id_, reader);
    return *reader;
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
        readers = readers_;
    }
    for (const auto& r : readers) {
        for (unsigned spins = 0;; ++spins) {
            std::uint64_t a = r->active.load(std::memory_order_acquire);
            if (a == 0 || a >= target) break;
            if (spins > 64) std::this_thread::yield();
        }
    }
}

} // namespace minivmm
