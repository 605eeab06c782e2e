// A small userspace RCU: readers announce the epoch they started in, in a
// cache line of their own, and never write shared data or take a lock;
// synchronize() waits until every reader that may still see an old pointer
// has left its read-side section.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace minivmm {

class RcuDomain {
  public:
    struct alignas(64) Reader {
        std::atomic<std::uint64_t> active{0}; // 0: outside; else the epoch it entered in
        unsigned depth = 0;                   // nesting, owner thread only
    };

    class ReadGuard {
      public:
        explicit ReadGuard(const RcuDomain& domain);
        ~ReadGuard();
        ReadGuard(const ReadGuard&) = delete;
        ReadGuard& operator=(const ReadGuard&) = delete;

      private:
        Reader* reader_;
    };

    RcuDomain();
    // Returns once every read-side section that began before the call has ended.
    void synchronize() const;

  private:
    Reader& reader_for_this_thread() const;

    std::uint64_t id_;
    mutable std::atomic<std::uint64_t> epoch_{1};
    mutable std::mutex readers_mutex_;
    mutable std::vector<std::shared_ptr<Reader>> readers_;
};

} // namespace minivmm
