#include <dataplane/exception_channel.h>

#include <fmt/format.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <rte_ring_peek_zc.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ptpsec {

namespace {

constexpr uint32_t segment_magic = 0x50534558; // "PSEX"
constexpr uint32_t segment_version = 1;
constexpr size_t align = 64;
constexpr unsigned record_size = sizeof(exception_wire::record);

/// The first octets of the segment: enough for an attaching process to
/// check that it speaks the same layout.
struct segment_header {
    uint32_t magic;
    uint32_t version;
    uint32_t slots;
    uint32_t record_size;
    uint32_t max_frame_len;
    uint32_t reserved;
    uint64_t exceptions_offset;
    uint64_t reinject_offset;
    uint64_t size;
    int64_t creator_pid;
};

size_t round_up(size_t v) {
    return (v + align - 1) / align * align;
}

/// The ring size rte_ring_init gives RING_F_EXACT_SZ for `count` records.
unsigned ring_size_for(unsigned count) {
    unsigned p = 1;
    while (p < count + 1) {
        p <<= 1;
    }
    return p;
}

} // namespace

std::string exception_channel::segment_name(const std::string& file_prefix) {
    return "/ptpsec-exc." + file_prefix;
}

result<exception_channel> exception_channel::create(const std::string& file_prefix, unsigned slots) {
    if (slots < 1 || slots > max_slots) {
        return error{fmt::format("exception channel: {} slots (1-{})", slots, max_slots)};
    }
    // RING_F_EXACT_SZ: a ring of `slots` holds `slots` records, not one less.
    const ssize_t ring_bytes = rte_ring_get_memsize_elem(record_size, ring_size_for(slots));
    if (ring_bytes < 0) {
        return error{fmt::format("exception channel: cannot size rings of {} slots", slots)};
    }
    const size_t exceptions_offset = round_up(sizeof(segment_header));
    const size_t reinject_offset = exceptions_offset + round_up(static_cast<size_t>(ring_bytes));
    const size_t size = reinject_offset + round_up(static_cast<size_t>(ring_bytes));

    // Frames from the wire are not secret: nothing to wipe.
    PTPSEC_TRY(seg, shm_segment::create(segment_name(file_prefix), size, "exception channel", false));
    exception_channel ch(std::move(seg).value());
    uint8_t* base = ch._seg.base();
    ch._exceptions = reinterpret_cast<rte_ring*>(base + exceptions_offset);
    ch._reinject = reinterpret_cast<rte_ring*>(base + reinject_offset);
    // One producer of exceptions and one consumer of reinject records on the
    // data plane side (the zero-copy API needs the single-thread mode there);
    // the control side's ends are multi-thread.
    if (rte_ring_init(ch._exceptions, "ptpsec_exceptions", slots, RING_F_SP_ENQ | RING_F_EXACT_SZ) != 0 ||
        rte_ring_init(ch._reinject, "ptpsec_reinject", slots, RING_F_SC_DEQ | RING_F_EXACT_SZ) != 0) {
        return error{fmt::format("exception channel {}: rte_ring_init failed", ch._seg.name())};
    }
    // The header last: an attaching process that sees the magic sees rings
    // that are ready.
    segment_header h{};
    h.magic = 0;
    h.version = segment_version;
    h.slots = slots;
    h.record_size = record_size;
    h.max_frame_len = static_cast<uint32_t>(exception_wire::max_frame_len);
    h.exceptions_offset = exceptions_offset;
    h.reinject_offset = reinject_offset;
    h.size = size;
    h.creator_pid = ::getpid();
    std::memcpy(base, &h, sizeof(h));
    __atomic_store_n(reinterpret_cast<uint32_t*>(base), segment_magic, __ATOMIC_RELEASE);
    return ch;
}

result<exception_channel> exception_channel::attach(const std::string& file_prefix) {
    const std::string name = segment_name(file_prefix);
    PTPSEC_TRY(seg, shm_segment::open(
                        name, sizeof(segment_header), "exception channel",
                        fmt::format("no ptpsec-dataplane with --tickets running with file prefix {} (no /dev/shm{})",
                                    file_prefix, name)));
    exception_channel ch(std::move(seg).value());
    const size_t size = ch._seg.size();
    const uint8_t* base = ch._seg.base();
    const uint32_t magic = __atomic_load_n(reinterpret_cast<const uint32_t*>(base), __ATOMIC_ACQUIRE);
    segment_header h{};
    std::memcpy(&h, base, sizeof(h));
    if (magic != segment_magic) {
        return error{
            fmt::format("exception channel /dev/shm{}: not ready or not a ptpsec exception channel", ch._seg.name())};
    }
    if (h.version != segment_version || h.record_size != record_size ||
        h.max_frame_len != exception_wire::max_frame_len) {
        return error{fmt::format("exception channel /dev/shm{}: layout version {} (records of {} octets), this "
                                 "program speaks version {} ({}): use tools of the same release",
                                 ch._seg.name(), h.version, h.record_size, segment_version, record_size)};
    }
    const size_t ring_bytes = h.slots == 0 || h.slots > max_slots
                                  ? size
                                  : static_cast<size_t>(rte_ring_get_memsize_elem(record_size, ring_size_for(h.slots)));
    if (h.size != size || h.exceptions_offset + ring_bytes > size || h.reinject_offset + ring_bytes > size) {
        return error{fmt::format("exception channel /dev/shm{}: inconsistent header", ch._seg.name())};
    }
    ch._exceptions = reinterpret_cast<rte_ring*>(ch._seg.base() + h.exceptions_offset);
    ch._reinject = reinterpret_cast<rte_ring*>(ch._seg.base() + h.reinject_offset);
    return ch;
}

bool exception_channel::pop_exception(exception_wire::record& r) noexcept {
    return rte_ring_dequeue_elem(_exceptions, &r, record_size) == 0;
}

bool exception_channel::push_reinject(const exception_wire::record& r) noexcept {
    return rte_ring_enqueue_elem(_reinject, const_cast<exception_wire::record*>(&r), record_size) == 0;
}

unsigned exception_channel::exceptions_waiting() const noexcept {
    return rte_ring_count(_exceptions);
}

exception_wire::record* exception_channel::exception_slot() noexcept {
    rte_ring_zc_data zcd{};
    if (rte_ring_enqueue_zc_bulk_elem_start(_exceptions, record_size, 1, &zcd, nullptr) != 1) {
        return nullptr;
    }
    // One element is never split at the end of the ring.
    return static_cast<exception_wire::record*>(zcd.ptr1);
}

void exception_channel::commit_exception() noexcept {
    rte_ring_enqueue_zc_elem_finish(_exceptions, 1);
}

void exception_channel::cancel_exception() noexcept {
    rte_ring_enqueue_zc_elem_finish(_exceptions, 0);
}

bool exception_channel::push_exception(const exception_wire::record& r) noexcept {
    exception_wire::record* slot = exception_slot();
    if (slot == nullptr) {
        return false;
    }
    std::memcpy(slot, &r, sizeof(r));
    commit_exception();
    return true;
}

const exception_wire::record* exception_channel::peek_reinject() noexcept {
    rte_ring_zc_data zcd{};
    if (rte_ring_dequeue_zc_bulk_elem_start(_reinject, record_size, 1, &zcd, nullptr) != 1) {
        return nullptr;
    }
    return static_cast<const exception_wire::record*>(zcd.ptr1);
}

void exception_channel::release_reinject() noexcept {
    rte_ring_dequeue_zc_elem_finish(_reinject, 1);
}

bool exception_channel::pop_reinject(exception_wire::record& r) noexcept {
    const exception_wire::record* slot = peek_reinject();
    if (slot == nullptr) {
        return false;
    }
    std::memcpy(&r, slot, sizeof(r));
    release_reinject();
    return true;
}

bool exception_channel::reinject_waiting() const noexcept {
    return !rte_ring_empty(_reinject);
}

unsigned exception_channel::slots() const noexcept {
    return rte_ring_get_capacity(_exceptions);
}

} // namespace ptpsec
