#include "minivmm/address_space.hpp"

#include <algorithm>
#include <functional>
#include <map>

#include <fmt/format.h>

#include "minivmm/boot_ram.hpp"
#include "minivmm/error.hpp"
#include "minivmm/ram_block.hpp"

namespace minivmm {

namespace {

using SectionMap = std::map<std::uint64_t, MemorySection>; // keyed by gpa

// Adds [s, e) of leaf `mr` (starting at region offset `off`) wherever no
// section rendered earlier (a higher priority) already is.
void insert_into_gaps(SectionMap& out, const MemoryRegion& mr, std::uint64_t s, std::uint64_t e,
                      std::uint64_t off) {
    std::uint64_t cur = s;
    auto it = out.upper_bound(cur);
    if (it != out.begin()) {
        auto prev = std::prev(it);
        if (prev->second.end() > cur) cur = prev->second.end();
    }
    while (cur < e) {
        it = out.lower_bound(cur);
        std::uint64_t gap_end = (it == out.end()) ? e : std::min(e, it->first);
        if (cur < gap_end) {
            MemorySection sec;
            sec.gpa = cur;
            sec.size = gap_end - cur;
            sec.region = &mr;
            sec.offset_in_region = off + (cur - s);
            sec.kind = mr.kind();
            sec.readonly = mr.kind() == MemoryRegion::Kind::rom;
            sec.log_dirty = mr.dirty_logging();
            if (mr.block() != nullptr) {
                sec.block = mr.block();
                sec.block_offset = mr.block_offset() + sec.offset_in_region;
                sec.host = mr.block()->host() + sec.block_offset;
            }
            out.emplace(cur, sec);
        }
        if (it == out.end() || it->first >= e) break;
        cur = it->second.end();
    }
}

// Renders the part of `mr` at region offsets [off, off + (e - s)) into guest
// addresses [s, e) (QEMU's render_memory_region, in offsets rather than bases
// so that aliases never need negative addresses).
void render(SectionMap& out, const MemoryRegion& mr, std::uint64_t s, std::uint64_t e,
            std::uint64_t off, int depth) {
    if (depth > 64) throw ConfigError("memory region tree deeper than 64 levels");
    if (!mr.enabled() || off >= mr.size()) return;
    e = s + std::min(e - s, mr.size() - off);
    switch (mr.kind()) {
    case MemoryRegion::Kind::container:
        for (const auto& sub : mr.subregions()) {
            std::uint64_t lo = std::max(off, sub.offset);
            std::uint64_t hi = std::min(off + (e - s), sub.offset + sub.region->size());
            if (lo < hi)
                render(out, *sub.region, s + (lo - off), s + (hi - off), lo - sub.offset,
                       depth + 1);
        }
        return;
    case MemoryRegion::Kind::alias:
        render(out, *mr.alias_target(), s, e, mr.alias_offset() + off, depth + 1);
        return;
    default:
        insert_into_gaps(out, mr, s, e, off);
    }
}

// Does `from` reach `target` through subregions or alias targets?
bool reaches(const MemoryRegion& from, const MemoryRegion& target) {
    if (&from == &target) return true;
    if (from.alias_target() != nullptr && reaches(*from.alias_target(), target)) return true;
    for (const auto& sub : from.subregions())
        if (reaches(*sub.region, target)) return true;
    return false;
}

} // namespace

FlatView FlatView::render(const MemoryRegion& root) {
    SectionMap map;
    minivmm::render(map, root, 0, root.size(), 0, 0);
    FlatView view;
    for (auto& [gpa, sec] : map) {
        auto& v = view.sections_;
        // flatview_simplify: merge pieces of one region that meet end to end.
        if (!v.empty() && v.back().end() == sec.gpa && v.back().region == sec.region &&
            v.back().offset_in_region + v.back().size == sec.offset_in_region &&
            v.back().log_dirty == sec.log_dirty) {
            v.back().size += sec.size;
            continue;
        }
        v.push_back(sec);
    }
    return view;
}

const MemorySection* FlatView::find(std::uint64_t gpa) const noexcept {
    auto it = std::upper_bound(sections_.begin(), sections_.end(), gpa,
                               [](std::uint64_t a, const MemorySection& s) { return a < s.gpa; });
    if (it == sections_.begin()) return nullptr;
    --it;
    return gpa < it->end() ? &*it : nullptr;
}

AddressSpace::AddressSpace(std::string name, std::shared_ptr<MemoryRegion> root)
    : name_(std::move(name)), root_(std::move(root)), view_(std::make_shared<const FlatView>()),
      current_(view_.get()) {}

AddressSpace::~AddressSpace() = default;

std::shared_ptr<const FlatView> AddressSpace::view() const {
    std::lock_guard lock(view_mutex_);
    return view_;
}

void AddressSpace::publish(std::shared_ptr<const FlatView> next) {
    std::shared_ptr<const FlatView> old;
    {
        std::lock_guard lock(view_mutex_);
        old = std::exchange(view_, next);
        current_.store(next.get(), std::memory_order_seq_cst);
    }
    // read_view() callers may still be on the old view: wait for them
    // before our reference (possibly the last) goes away.
    rcu_.synchronize();
}

AddressSpace& MemoryTopology::add_address_space(std::string name,
                                                std::shared_ptr<MemoryRegion> root) {
    std::lock_guard lock(mutex_);
    if (!root || root->kind() != MemoryRegion::Kind::container)
        throw ConfigError(fmt::format("address space '{}' needs a container as its root", name));
    spaces_.push_back(std::unique_ptr<AddressSpace>(new AddressSpace(std::move(name), root)));
    changed();
    return *spaces_.back();
}

void MemoryTopology::add_subregion(MemoryRegion& container, std::uint64_t offset,
                                   std::shared_ptr<MemoryRegion> child, int priority) {
    std::lock_guard lock(mutex_);
    if (container.kind() != MemoryRegion::Kind::container)
        throw ConfigError(fmt::format("'{}' is not a container", container.name()));
    if (!child) throw ConfigError("add_subregion: no region");
    if (child->parent_ != nullptr)
        throw ConfigError(fmt::format("region '{}' is already inside '{}'", child->name(),
                                      child->parent_->name()));
    if (!range_within(offset, child->size(), UINT64_MAX))
        throw ConfigError(fmt::format("region '{}' at {:#x} wraps around", child->name(), offset));
    if (reaches(*child, container))
        throw ConfigError(
            fmt::format("adding '{}' to '{}' would make a cycle", child->name(), container.name()));
    child->parent_ = &container;
    MemoryRegion* raw = child.get();
    auto& subs = container.subregions_;
    MemoryRegion::Subregion sub{offset, priority, container.next_order_++, std::move(child)};
    // Highest priority first; among equals the newest first (it wins).
    auto pos = std::find_if(subs.begin(), subs.end(),
                            [&](const auto& o) { return sub.priority >= o.priority; });
    subs.insert(pos, std::move(sub));
    apply([&] {
        raw->parent_ = nullptr;
        std::erase_if(subs, [&](const auto& s) { return s.region.get() == raw; });
    });
}

void MemoryTopology::remove_subregion(MemoryRegion& container, const MemoryRegion& child) {
    std::lock_guard lock(mutex_);
    auto& subs = container.subregions_;
    auto it = std::find_if(subs.begin(), subs.end(),
                           [&](const auto& s) { return s.region.get() == &child; });
    if (it == subs.end())
        throw ConfigError(fmt::format("'{}' is not inside '{}'", child.name(), container.name()));
    auto removed = *it;
    auto index = it - subs.begin();
    it->region->parent_ = nullptr;
    subs.erase(it);
    // Inside a transaction the published views still show the region until
    // the transaction ends: keep it alive until then (changed()).
    if (depth_ > 0) retired_.push_back(removed.region);
    apply([&] {
        removed.region->parent_ = &container;
        subs.insert(subs.begin() + index, removed);
    });
}

void MemoryTopology::set_enabled(MemoryRegion& region, bool enabled) {
    std::lock_guard lock(mutex_);
    if (region.enabled_ == enabled) return;
    region.enabled_ = enabled;
    apply([&] { region.enabled_ = !enabled; });
}

void MemoryTopology::set_dirty_logging(MemoryRegion& region, bool on) {
    std::lock_guard lock(mutex_);
    if (region.kind() != MemoryRegion::Kind::ram && region.kind() != MemoryRegion::Kind::rom)
        throw ConfigError(
            fmt::format("dirty logging needs a RAM region; '{}' is not one", region.name()));
    if (region.log_dirty_ == on) return;
    region.log_dirty_ = on;
    apply([&] { region.log_dirty_ = !on; });
}

void MemoryTopology::set_dirty_logging(AddressSpace& as, bool on) {
    Transaction tx(*this);
    std::vector<MemoryRegion*> stack{as.root_.get()}, leaves;
    while (!stack.empty()) {
        MemoryRegion* r = stack.back();
        stack.pop_back();
        if (r->kind() == MemoryRegion::Kind::ram || r->kind() == MemoryRegion::Kind::rom)
            leaves.push_back(r);
        if (r->target_) stack.push_back(r->target_.get());
        for (auto& sub : r->subregions_)
            stack.push_back(sub.region.get());
    }
    for (MemoryRegion* r : leaves)
        set_dirty_logging(*r, on);
    tx.commit();
}

void MemoryTopology::add_listener(AddressSpace& as, MemoryListener& listener) {
    std::lock_guard lock(mutex_);
    auto view = as.view();
    listener.begin();
    try {
        for (const auto& sec : view->sections())
            listener.region_add(sec);
    } catch (...) {
        // Could not map everything (e.g. no free KVM slot): end the
        // listener's transaction, take back what it did map, and report.
        listener.commit();
        try {
            listener.begin();
            for (const auto& sec : view->sections())
                listener.region_del(sec);
            listener.commit();
        } catch (...) {
        }
        throw;
    }
    listener.commit();
    as.listeners_.push_back(&listener);
}

void MemoryTopology::remove_listener(AddressSpace& as, MemoryListener& listener) {
    std::lock_guard lock(mutex_);
    auto it = std::find(as.listeners_.begin(), as.listeners_.end(), &listener);
    if (it == as.listeners_.end()) return;
    as.listeners_.erase(it);
    auto view = as.view();
    listener.begin();
    try {
        for (const auto& sec : view->sections())
            listener.region_del(sec);
    } catch (...) {
        listener.commit();
        throw;
    }
    listener.commit();
}

void MemoryTopology::log_sync() {
    std::lock_guard lock(mutex_);
    for (auto& as : spaces_) {
        auto view = as->view();
        for (const auto& sec : view->sections())
            if (sec.log_dirty)
                for (auto* l : as->listeners_)
                    l->log_sync(sec);
    }
}

void MemoryTopology::log_clear(AddressSpace& as, std::uint64_t gpa, std::uint64_t size) {
    std::lock_guard lock(mutex_);
    auto view = as.view();
    for (const auto& sec : view->sections()) {
        std::uint64_t lo = std::max(gpa, sec.gpa), hi = std::min(gpa + size, sec.end());
        if (sec.log_dirty && lo < hi)
            for (auto* l : as.listeners_)
                l->log_clear(sec, lo, hi - lo);
    }
}

MemoryTopology::Transaction::Transaction(MemoryTopology& topology)
    : topology_(topology), lock_(topology.mutex_) {
    ++topology_.depth_;
}

void MemoryTopology::Transaction::commit() {
    if (done_) return;
    done_ = true;
    if (--topology_.depth_ == 0 && topology_.pending_) topology_.changed();
}

MemoryTopology::Transaction::~Transaction() {
    if (done_) return;
    done_ = true;
    if (--topology_.depth_ == 0 && topology_.pending_) {
        try {
            topology_.changed();
        } catch (...) {
            // A listener failed while applying the batch; the views are as
            // far as they got. Destructors must not throw.
        }
    }
}

void MemoryTopology::changed() {
    if (depth_ > 0) {
        pending_ = true;
        return;
    }
    pending_ = false;
    for (auto& as : spaces_)
        update(*as);
    // Every view is republished and its old readers are gone (update waits).
    retired_.clear();
}

void MemoryTopology::update(AddressSpace& as) {
    auto next = std::make_shared<const FlatView>(FlatView::render(*as.root_));
    try {
        notify(as, *as.view(), *next);
    } catch (...) {
        // A listener failed part-way (e.g. no free KVM slot). Close the
        // listeners' transactions and take the new view as the baseline, so
        // that the caller's undo is diffed against what listeners were told.
        for (auto* l : as.listeners_) {
            try {
                l->commit();
            } catch (...) {
            }
        }
        as.publish(next);
        throw;
    }
    as.publish(next);
    for (auto* l : as.listeners_)
        l->commit();
}

void MemoryTopology::notify(AddressSpace& as, const FlatView& prev, const FlatView& next) {
    const auto& o = prev.sections();
    const auto& n = next.sections();
    for (auto* l : as.listeners_)
        l->begin();
    // Pass 1, deletions: old sections with no identical new one.
    for (std::size_t i = 0, j = 0; i < o.size(); ++i) {
        while (j < n.size() && n[j].gpa < o[i].gpa)
            ++j;
        if (j < n.size() && n[j].same_mapping(o[i])) continue;
        for (auto* l : as.listeners_)
            l->region_del(o[i]);
    }
    // Pass 2, additions and dirty-log changes of sections that stayed.
    for (std::size_t j = 0, i = 0; j < n.size(); ++j) {
        while (i < o.size() && o[i].gpa < n[j].gpa)
            ++i;
        bool kept = i < o.size() && o[i].same_mapping(n[j]);
        for (auto* l : as.listeners_) {
            if (!kept) {
                l->region_add(n[j]); // a new section carries its log flag with it
            } else if (n[j].log_dirty && !o[i].log_dirty) {
                l->log_start(n[j]);
            } else if (!n[j].log_dirty && o[i].log_dirty) {
                l->log_stop(n[j]);
            }
        }
    }
}

void MemoryTopology::apply(const std::function<void()>& undo) {
    try {
        changed();
    } catch (...) {
        if (depth_ == 0) {
            undo();
            try {
                changed();
            } catch (...) {
            }
        }
        throw;
    }
}

} // namespace minivmm
