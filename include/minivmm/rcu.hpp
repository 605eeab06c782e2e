/// \file
/// A small userspace RCU: readers announce the epoch they started in, in a
/// cache line of their own, and never write shared data or take a lock;
/// synchronize() waits until every reader that may still see an old pointer
/// has left its read-side section.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace minivmm {

/// One RCU domain. Thread-safe: any thread may read and synchronize. The
/// domain must outlive its ReadGuards; per-thread reader records live until
/// both the domain and the thread have gone.
class RcuDomain {
  public:
    /// One thread's reader record (internal; public for the thread-local table).
    struct alignas(64) Reader {
        std::atomic<std::uint64_t> active{0}; ///< 0: outside; else the epoch it entered in
        unsigned depth = 0;                   ///< nesting, owner thread only
        std::atomic<bool> thread_gone{false}; ///< its thread has exited: the domain drops it
        std::atomic<bool> domain_gone{false}; ///< its domain is destroyed: the thread drops it
    };

    /// A read-side section, from construction to destruction, on the
    /// constructing thread. Sections nest. Never call synchronize() inside
    /// one: it would wait for itself.
    class ReadGuard {
      public:
        /// Enters a read-side section of `domain` (the first one on a
        /// thread takes a lock once to register the thread).
        explicit ReadGuard(const RcuDomain& domain);
        /// Leaves it.
        ~ReadGuard();
        ReadGuard(const ReadGuard&) = delete;
        ReadGuard& operator=(const ReadGuard&) = delete;

      private:
        Reader* reader_;
    };

    /// A domain with no readers.
    RcuDomain();
    /// Tells the threads that read it to drop their records of it.
    ~RcuDomain();
    RcuDomain(const RcuDomain&) = delete;
    RcuDomain& operator=(const RcuDomain&) = delete;
    /// Returns once every read-side section that began before the call has
    /// ended (spinning, then yielding, while one has not).
    void synchronize() const;

    /// Reader records the next synchronize() scans: one per live thread
    /// that has read this domain (for tests and diagnostics).
    std::size_t registered_readers() const;
    /// Records the calling thread holds, one per domain it has read that
    /// still exists (for tests and diagnostics).
    static std::size_t records_on_this_thread();

  private:
    Reader& reader_for_this_thread() const;
    void prune_locked() const; // with readers_mutex_ held

    std::uint64_t id_;
    mutable std::atomic<std::uint64_t> epoch_{1};
    mutable std::mutex readers_mutex_;
    mutable std::vector<std::shared_ptr<Reader>> readers_;
};

} // namespace minivmm
