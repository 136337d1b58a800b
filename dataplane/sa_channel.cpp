#include <dataplane/sa_channel.h>

#include <drivers/base/bytes.h>

#include <fmt/format.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <rte_ring_peek_zc.h>

#include <fcntl.h>
#include <linux/futex.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <ctime>
#include <new>

namespace ptpsec {

namespace {

constexpr uint32_t segment_magic = 0x50534348; // "PSCH"
constexpr uint32_t segment_version = 1;
constexpr size_t align = 64;

/// The first octets of the segment: enough for an attaching process to
/// check that it speaks the same layout.
struct segment_header {
    uint32_t magic;
    uint32_t version;
    uint32_t slots;
    uint32_t update_size;
    uint32_t ack_size;
    /// The doorbell (futex word): moved on by a writer after each update.
    uint32_t doorbell;
    uint64_t updates_offset;
    uint64_t acks_offset;
    uint64_t size;
    int64_t creator_pid;
};

size_t round_up(size_t v) {
    return (v + align - 1) / align * align;
}

unsigned power_of_two_at_least(unsigned v) {
    unsigned p = 1;
    while (p < v) {
        p <<= 1;
    }
    return p;
}

} // namespace

std::string sa_channel::segment_name(const std::string& file_prefix) {
    return "/ptpsec-sa." + file_prefix;
}

result<sa_channel> sa_channel::create(const std::string& file_prefix, unsigned slots) {
    if (slots < 2 || slots > (1U << 16)) {
        return error{fmt::format("SA channel: {} slots (2-65536)", slots)};
    }
    slots = power_of_two_at_least(slots);
    const ssize_t ring_update = rte_ring_get_memsize_elem(sizeof(sa_wire::update), slots);
    const ssize_t ring_ack = rte_ring_get_memsize_elem(sizeof(sa_wire::ack), slots);
    if (ring_update < 0 || ring_ack < 0) {
        return error{fmt::format("SA channel: cannot size rings of {} slots", slots)};
    }
    const size_t updates_offset = round_up(sizeof(segment_header));
    const size_t acks_offset = updates_offset + round_up(static_cast<size_t>(ring_update));
    const size_t size = acks_offset + round_up(static_cast<size_t>(ring_ack));

    // Keys may sit in unread slots: wiped when the segment goes.
    PTPSEC_TRY(seg, shm_segment::create(segment_name(file_prefix), size, "SA channel", true));
    sa_channel ch(std::move(seg).value());
    uint8_t* base = ch._seg.base();
    ch._updates = reinterpret_cast<rte_ring*>(base + updates_offset);
    ch._acks = reinterpret_cast<rte_ring*>(base + acks_offset);
    if (rte_ring_init(ch._updates, "ptpsec_sa_updates", slots, RING_F_SC_DEQ) != 0 ||
        rte_ring_init(ch._acks, "ptpsec_sa_acks", slots, RING_F_SP_ENQ) != 0) {
        return error{fmt::format("SA channel {}: rte_ring_init failed", ch._seg.name())};
    }
    // The header last: an attaching process that sees the magic sees rings
    // that are ready.
    segment_header h{};
    h.magic = 0;
    h.version = segment_version;
    h.slots = slots;
    h.update_size = sizeof(sa_wire::update);
    h.ack_size = sizeof(sa_wire::ack);
    h.updates_offset = updates_offset;
    h.acks_offset = acks_offset;
    h.size = size;
    h.creator_pid = ::getpid();
    std::memcpy(base, &h, sizeof(h));
    __atomic_store_n(reinterpret_cast<uint32_t*>(base), segment_magic, __ATOMIC_RELEASE);
    return ch;
}

result<sa_channel> sa_channel::attach(const std::string& file_prefix) {
    const std::string name = segment_name(file_prefix);
    PTPSEC_TRY(seg, shm_segment::open(name, sizeof(segment_header), "SA channel",
                                      fmt::format("no ptpsec-dataplane running with file prefix {} (no /dev/shm{})",
                                                  file_prefix, name)));
    sa_channel ch(std::move(seg).value());
    const size_t size = ch._seg.size();
    const uint8_t* base = ch._seg.base();
    segment_header h{};
    const uint32_t magic = __atomic_load_n(reinterpret_cast<const uint32_t*>(base), __ATOMIC_ACQUIRE);
    std::memcpy(&h, base, sizeof(h));
    if (magic != segment_magic) {
        return error{fmt::format("SA channel /dev/shm{}: not ready or not a ptpsec SA channel", ch._seg.name())};
    }
    if (h.version != segment_version || h.update_size != sizeof(sa_wire::update) ||
        h.ack_size != sizeof(sa_wire::ack)) {
        return error{fmt::format("SA channel /dev/shm{}: layout version {} (records {}/{} octets), this program "
                                 "speaks version {} ({}/{}): use tools of the same release",
                                 ch._seg.name(), h.version, h.update_size, h.ack_size, segment_version,
                                 sizeof(sa_wire::update), sizeof(sa_wire::ack))};
    }
    if (h.size != size || h.updates_offset >= size || h.acks_offset >= size) {
        return error{fmt::format("SA channel /dev/shm{}: inconsistent header", ch._seg.name())};
    }
    ch._updates = reinterpret_cast<rte_ring*>(ch._seg.base() + h.updates_offset);
    ch._acks = reinterpret_cast<rte_ring*>(ch._seg.base() + h.acks_offset);
    return ch;
}

uint32_t* sa_channel::doorbell() const noexcept {
    return reinterpret_cast<uint32_t*>(_seg.base() + offsetof(segment_header, doorbell));
}

bool sa_channel::push_update(const sa_wire::update& u) noexcept {
    if (rte_ring_enqueue_elem(_updates, const_cast<sa_wire::update*>(&u), sizeof(u)) != 0) {
        return false;
    }
    // After the enqueue: a reader that sees the bell move sees the update.
    __atomic_fetch_add(doorbell(), 1U, __ATOMIC_RELEASE);
    // Not FUTEX_PRIVATE: the sleeper is another process mapping the segment.
    (void)::syscall(SYS_futex, doorbell(), FUTEX_WAKE, 1, nullptr, nullptr, 0);
    return true;
}

namespace {

/// FUTEX_WAIT on the bell while it holds `seen`, up to `limit`. A wake-up, a
/// timeout, EAGAIN (the bell moved) and EINTR all end the wait the same way:
/// the caller looks at the ring.
void sleep_on_bell(uint32_t* bell, uint32_t seen, std::chrono::microseconds limit) noexcept {
    timespec ts{};
    ts.tv_sec = static_cast<time_t>(limit.count() / 1'000'000);
    ts.tv_nsec = static_cast<long>(limit.count() % 1'000'000) * 1000;
    (void)::syscall(SYS_futex, bell, FUTEX_WAIT, seen, &ts, nullptr, 0);
}

} // namespace

bool sa_channel::wait_for_update(std::chrono::microseconds limit) const noexcept {
    // The bell's value before the look at the ring: an update pushed after
    // the look moves it, and FUTEX_WAIT then returns at once.
    const uint32_t seen = __atomic_load_n(doorbell(), __ATOMIC_ACQUIRE);
    if (const bool waiting = updates_waiting(); waiting || limit.count() <= 0) {
        return waiting;
    }
    sleep_on_bell(doorbell(), seen, limit);
    return updates_waiting();
}

void sa_channel::wait_for_push(std::chrono::microseconds limit) const noexcept {
    if (limit.count() > 0) {
        sleep_on_bell(doorbell(), __atomic_load_n(doorbell(), __ATOMIC_ACQUIRE), limit);
    }
}

bool sa_channel::pop_ack(sa_wire::ack& a) noexcept {
    return rte_ring_dequeue_elem(_acks, &a, sizeof(a)) == 0;
}

unsigned sa_channel::pop_updates(sa_wire::update* out, unsigned n,
                                 bool (*take)(const sa_wire::update&) noexcept) noexcept {
    // Zero-copy dequeue (the ring has one consumer at a time): the slots
    // are copied and wiped before the tail moves, so no producer can be
    // writing them. Finishing with fewer than were started leaves the rest
    // in the ring, untouched.
    rte_ring_zc_data zcd{};
    const unsigned got = rte_ring_dequeue_zc_burst_elem_start(_updates, sizeof(sa_wire::update), n, &zcd, nullptr);
    unsigned taken = 0;
    for (; taken < got; ++taken) {
        auto* slot = static_cast<sa_wire::update*>(taken < zcd.n1 ? zcd.ptr1 : zcd.ptr2) +
                     (taken < zcd.n1 ? taken : taken - zcd.n1);
        if (take != nullptr && !take(*slot)) {
            break;
        }
        std::memcpy(&out[taken], slot, sizeof(*slot));
        secure_wipe(slot, sizeof(*slot));
    }
    rte_ring_dequeue_zc_elem_finish(_updates, taken);
    return taken;
}

bool sa_channel::push_ack(const sa_wire::ack& a) noexcept {
    return rte_ring_enqueue_elem(_acks, const_cast<sa_wire::ack*>(&a), sizeof(a)) == 0;
}

bool sa_channel::updates_waiting() const noexcept {
    return !rte_ring_empty(_updates);
}

unsigned sa_channel::slots() const noexcept {
    return rte_ring_get_size(_updates);
}

sa_channel::writer_lock::writer_lock(const sa_channel& ch) : _fd(ch.fd()) {
    while (::flock(_fd, LOCK_EX) != 0 && errno == EINTR) {
    }
}

sa_channel::writer_lock::~writer_lock() {
    (void)::flock(_fd, LOCK_UN);
}

} // namespace ptpsec
