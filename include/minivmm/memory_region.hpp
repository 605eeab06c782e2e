/// \file
/// Memory regions: the tree a guest-physical address space is built from, in
/// the shape of QEMU's MemoryRegion (system/memory.c). Leaves are RAM, ROM
/// (read-only RAM, KVM_MEM_READONLY) and MMIO (dispatched to a device);
/// aliases show a window of another region; containers hold subregions at
/// offsets with priorities, and a higher priority hides a lower one where they
/// overlap (equal priorities: the later-added one wins).
///
/// Regions are immutable except through MemoryTopology, which re-renders the
/// address spaces after every change (see address_space.hpp).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace minivmm {

class IoDevice;
class RamBlock;
class MemoryTopology;

/// A node of the region tree. Created by the factories below, always held by
/// std::shared_ptr: a container owns its subregions, RAM and ROM regions
/// share their RamBlock, an alias shares its target; an MMIO region only
/// refers to its device. Changed only through MemoryTopology, under its
/// lock; the getters read without a lock, so call them on the thread that
/// changes the tree or under MemoryTopology::Transaction.
class MemoryRegion {
  public:
    /// What the region is.
    enum class Kind {
        container, ///< holds subregions
        ram,       ///< guest-writable window of a RamBlock
        rom,       ///< read-only window of a RamBlock
        mmio,      ///< accesses go to an IoDevice
        alias      ///< window of another region
    };

    /// An empty container of `size` bytes. \throws ConfigError if size is 0.
    static std::shared_ptr<MemoryRegion> container(std::string name, std::uint64_t size);
    /// A window [offset, offset + size) of `block`, writable by the guest.
    /// \throws ConfigError if size is 0, block is null or the window leaves the block.
    static std::shared_ptr<MemoryRegion> ram(std::string name, std::shared_ptr<RamBlock> block,
                                             std::uint64_t offset, std::uint64_t size);
    /// The same, read-only for the guest (its writes become MMIO exits).
    /// \throws ConfigError as ram().
    static std::shared_ptr<MemoryRegion> rom(std::string name, std::shared_ptr<RamBlock> block,
                                             std::uint64_t offset, std::uint64_t size);
    /// Accesses exit to the VMM and go to `device` (which must outlive the region).
    /// \throws ConfigError if size is 0.
    static std::shared_ptr<MemoryRegion> mmio(std::string name, std::uint64_t size,
                                              IoDevice& device);
    /// [offset, offset + size) of `target`, shown wherever this alias is mapped.
    /// \throws ConfigError if size is 0, target is null or the window leaves it.
    static std::shared_ptr<MemoryRegion> alias(std::string name,
                                               std::shared_ptr<MemoryRegion> target,
                                               std::uint64_t offset, std::uint64_t size);

    Kind kind() const noexcept { return kind_; }                    ///< what it is
    const std::string& name() const noexcept { return name_; }      ///< for messages
    std::uint64_t size() const noexcept { return size_; }           ///< bytes
    bool enabled() const noexcept { return enabled_; }              ///< disabled = not mapped
    bool dirty_logging() const noexcept { return log_dirty_; }      ///< RAM/ROM: logging on
    RamBlock* block() const noexcept { return block_.get(); }       ///< RAM/ROM: the block
    std::uint64_t block_offset() const noexcept { return offset_; } ///< RAM/ROM: window start
    IoDevice* device() const noexcept { return device_; }           ///< MMIO: the device
    const MemoryRegion* alias_target() const noexcept { return target_.get(); } ///< alias: target
    std::uint64_t alias_offset() const noexcept { return offset_; } ///< alias: window start

    /// A container's child.
    struct Subregion {
        std::uint64_t offset;                 ///< where in the container
        int priority;                         ///< higher hides lower
        std::uint64_t order;                  ///< insertion order, to break priority ties
        std::shared_ptr<MemoryRegion> region; ///< the child (owned)
    };
    /// For containers: highest priority first, later-added first among equals.
    const std::vector<Subregion>& subregions() const noexcept { return subregions_; }

  private:
    friend class MemoryTopology;
    MemoryRegion(Kind kind, std::string name, std::uint64_t size);

    Kind kind_;
    std::string name_;
    std::uint64_t size_;
    bool enabled_ = true;
    bool log_dirty_ = false;
    std::shared_ptr<RamBlock> block_;      // ram, rom
    std::uint64_t offset_ = 0;             // into block_ or target_
    IoDevice* device_ = nullptr;           // mmio
    std::shared_ptr<MemoryRegion> target_; // alias
    std::vector<Subregion> subregions_;    // container
    std::uint64_t next_order_ = 0;
    MemoryRegion* parent_ = nullptr; // a region sits in at most one container
};

} // namespace minivmm
