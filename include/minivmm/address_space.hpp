/// \file
/// Address spaces render a region tree into a flat view (sorted,
/// non-overlapping sections) and tell their listeners what changed, as QEMU's
/// address_space_update_topology does. MemoryTopology owns the address spaces
/// and is the only way to change regions: every change re-renders and diffs,
/// or, inside a Transaction, once at its end.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "minivmm/memory_listener.hpp"
#include "minivmm/memory_region.hpp"
#include "minivmm/rcu.hpp"

namespace minivmm {

/// An address space rendered flat: sorted, non-overlapping sections. An
/// immutable value once rendered, so any number of threads may read it.
class FlatView {
  public:
    /// Renders `root` (and everything below it) into sections; adjacent
    /// sections of one region with contiguous offsets are merged.
    /// \throws ConfigError for a tree deeper than 64 levels.
    static FlatView render(const MemoryRegion& root);

    /// The sections, sorted by gpa.
    const std::vector<MemorySection>& sections() const noexcept { return sections_; }
    /// The section holding `gpa`, or null. O(log n).
    const MemorySection* find(std::uint64_t gpa) const noexcept;

  private:
    std::vector<MemorySection> sections_; // sorted by gpa
};

/// A root region and its current flat view. Created and owned by
/// MemoryTopology (it lives as long as the topology); shares ownership of
/// its root. view() and read_view() are thread-safe.
class AddressSpace {
  public:
    /// The name given to MemoryTopology::add_address_space().
    const std::string& name() const noexcept { return name_; }
    /// The root container.
    const std::shared_ptr<MemoryRegion>& root() const noexcept { return root_; }
    /// The current flat view; safe to call from any thread (a snapshot that
    /// stays valid as long as it is held).
    std::shared_ptr<const FlatView> view() const;
    /// Calls fn(const FlatView&) on the current view without taking a lock or
    /// touching a reference count (an RCU read section): for hot paths such
    /// as MMIO exits and hypercall argument checks. fn must not block, nor
    /// change the topology. Returns what fn returns.
    template <typename Fn>
    auto read_view(Fn&& fn) const {
        RcuDomain::ReadGuard guard(rcu_);
        return fn(*current_.load(std::memory_order_seq_cst));
    }

    /// Destroyed by its MemoryTopology.
    ~AddressSpace();

  private:
    friend class MemoryTopology;
    AddressSpace(std::string name, std::shared_ptr<MemoryRegion> root);
    void publish(std::shared_ptr<const FlatView> next);

    std::string name_;
    std::shared_ptr<MemoryRegion> root_;
    std::vector<MemoryListener*> listeners_;
    mutable std::mutex view_mutex_;
    std::shared_ptr<const FlatView> view_;          // guarded by view_mutex_
    std::atomic<const FlatView*> current_{nullptr}; // view_.get(), for read_view
    RcuDomain rcu_;
};

/// Owns the address spaces and is the only way to change regions. Every
/// member is thread-safe: they serialize on one recursive lock, and the
/// listeners are called with it held (a listener must not wait for another
/// thread that uses the topology). A listener's exception
/// propagates out of the call that caused it; a region change is then
/// undone (re-rendered as before) where the listeners allow it.
class MemoryTopology {
  public:
    /// No address spaces.
    MemoryTopology() = default;
    MemoryTopology(const MemoryTopology&) = delete;
    MemoryTopology& operator=(const MemoryTopology&) = delete;

    /// `root` must be a container. The address space lives as long as the topology.
    /// \throws ConfigError if root is not a container.
    AddressSpace& add_address_space(std::string name, std::shared_ptr<MemoryRegion> root);

    /// Adds `child` to `container` at `offset`. Region changes throw
    /// ConfigError on a bad request (not a container, a region already in
    /// one, wrap-around, a cycle, ...) and leave the tree unchanged.
    void add_subregion(MemoryRegion& container, std::uint64_t offset,
                       std::shared_ptr<MemoryRegion> child, int priority = 0);
    /// Takes `child` out of `container`. \throws ConfigError if it is not in it.
    void remove_subregion(MemoryRegion& container, const MemoryRegion& child);
    /// Maps or unmaps `region` (and what it holds) without removing it.
    void set_enabled(MemoryRegion& region, bool enabled);
    /// Dirty logging of a RAM/ROM region (QEMU's memory_region_set_log).
    /// \throws ConfigError for a region that is not RAM or ROM.
    void set_dirty_logging(MemoryRegion& region, bool on);
    /// The same for every RAM and ROM region reachable from `as`'s root
    /// (through containers and aliases), in one update.
    void set_dirty_logging(AddressSpace& as, bool on);

    /// A listener gets region_add for what is already mapped when it is
    /// added, and region_del for everything when it is removed. It must stay
    /// alive until removed (or until the topology is destroyed).
    void add_listener(AddressSpace& as, MemoryListener& listener);
    /// Removes `listener` (which then gets region_del for every section);
    /// nothing happens if it was not added.
    void remove_listener(AddressSpace& as, MemoryListener& listener);

    /// Asks every listener to pull the dirty log of every logging section.
    void log_sync();
    /// Re-arms dirty tracking for [gpa, gpa + size) of `as`.
    void log_clear(AddressSpace& as, std::uint64_t gpa, std::uint64_t size);

    /// Batches changes: listeners hear of them once, when the outermost
    /// transaction ends. Holds the topology lock for its lifetime. Call
    /// commit() to apply and see errors (if a listener failed, the views stand
    /// as far as the listeners got); the destructor applies what is left but
    /// cannot report a failure.
    class Transaction {
      public:
        /// Takes the topology lock and opens a (possibly nested) batch.
        explicit Transaction(MemoryTopology& topology);
        /// Applies what commit() did not, ignoring errors; releases the lock.
        ~Transaction();
        Transaction(const Transaction&) = delete;
        Transaction& operator=(const Transaction&) = delete;
        /// Ends the batch; the outermost one tells the listeners. Throws what
        /// a listener throws.
        void commit();

      private:
        MemoryTopology& topology_;
        std::unique_lock<std::recursive_mutex> lock_;
        bool done_ = false;
    };

  private:
    void changed(); // with mutex_ held
    // changed(), and if a listener throws: undo the change, re-render, rethrow.
    void apply(const std::function<void()>& undo);
    void update(AddressSpace& as);
    void notify(AddressSpace& as, const FlatView& prev, const FlatView& next);

    std::recursive_mutex mutex_;
    int depth_ = 0;
    bool pending_ = false;
    std::vector<std::unique_ptr<AddressSpace>> spaces_;
    // Regions removed inside a transaction, kept alive until the views that
    // still show them have been replaced.
    std::vector<std::shared_ptr<MemoryRegion>> retired_;
};

} // namespace minivmm
