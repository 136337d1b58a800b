#pragma once

// The SA channel between the control plane and the data plane: a POSIX
// shared-memory segment (/dev/shm/ptpsec-sa.PREFIX, root only) holding two
// rte_rings initialised in place with rte_ring_init, one of updates
// (control -> data plane) and one of acknowledgements (data plane ->
// control), with the fixed-size records of dataplane/sa_update_wire.h. The
// control plane needs no EAL and no hugepages to use it, and either side can
// restart on its own: docs/architecture.md says why this and not DPDK
// multi-process.
//
// The data plane creates the segment at start and removes it at exit; it
// drains updates between bursts and its workers never wait on the channel.
// Writers on the control side take writer_lock first, so that one writer at
// a time pushes and reads its own acknowledgements.
//
// The doorbell. A writer rings it after each update it pushes: a counter in
// the segment's header, moved on and woken with a (process-shared) futex.
// A main lcore that sleeps between looks at the ring sleeps on it
// (wait_for_update), so an update wakes it at once instead of at the end of
// its interval. Ringing is a system call per update on the control side;
// the workers never touch the bell.

#include <dataplane/sa_update_wire.h>
#include <dataplane/shm_segment.h>
#include <drivers/base/result.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

struct rte_ring;

namespace ptpsec {

class sa_channel {
public:
    static constexpr unsigned default_slots = 256;

    /// The segment name for an EAL file prefix ("rte" by default).
    static std::string segment_name(const std::string& file_prefix);

    /// Data plane: makes a fresh segment (a stale one from an earlier run
    /// is replaced). `slots` is rounded up to a power of two.
    static result<sa_channel> create(const std::string& file_prefix, unsigned slots = default_slots);

    /// Control plane: attaches to the segment of a running data plane; the
    /// error says when there is none.
    static result<sa_channel> attach(const std::string& file_prefix);

    sa_channel(sa_channel&&) noexcept = default;
    sa_channel& operator=(sa_channel&&) noexcept = default;
    sa_channel(const sa_channel&) = delete;
    sa_channel& operator=(const sa_channel&) = delete;
    /// Unmaps; the creator also wipes and removes the segment.
    ~sa_channel() = default;

    // Control side.
    /// False if the ring is full.
    bool push_update(const sa_wire::update& u) noexcept;
    bool pop_ack(sa_wire::ack& a) noexcept;

    // Data plane side.
    /// Up to n updates; returns how many. The slots they came from are wiped
    /// (they held keys).
    unsigned pop_updates(sa_wire::update* out, unsigned n) noexcept { return pop_updates(out, n, nullptr); }
    /// The same, but stops at the first update `take` refuses, which stays
    /// at the head of the ring for a later pop (null: takes all). For two
    /// threads that take turns at the ring, each applying what it may.
    unsigned pop_updates(sa_wire::update* out, unsigned n, bool (*take)(const sa_wire::update&) noexcept) noexcept;
    /// Updates are waiting: two loads, cheap enough to ask between bursts.
    bool updates_waiting() const noexcept;
    /// Sleeps until an update is pushed (the doorbell) or `limit` passes,
    /// at once if one is waiting; returns updates_waiting(). Not for a
    /// worker: for the thread that applies updates between its other work.
    bool wait_for_update(std::chrono::microseconds limit) const noexcept;
    /// Sleeps until a writer pushes an update or `limit` passes, whether or
    /// not updates are waiting: for a thread that leaves them to another
    /// and looks only at what that one leaves.
    void wait_for_push(std::chrono::microseconds limit) const noexcept;
    /// False if the ring is full (the writer stopped reading): counted by the caller.
    bool push_ack(const sa_wire::ack& a) noexcept;

    unsigned slots() const noexcept;
    int fd() const noexcept { return _seg.fd(); }

    /// Holds the segment's writer lock (flock) while it lives.
    class writer_lock {
    public:
        explicit writer_lock(const sa_channel& ch);
        ~writer_lock();
        writer_lock(const writer_lock&) = delete;
        writer_lock& operator=(const writer_lock&) = delete;
        writer_lock(writer_lock&&) = delete;
        writer_lock& operator=(writer_lock&&) = delete;

    private:
        int _fd;
    };

private:
    explicit sa_channel(shm_segment seg) noexcept : _seg(std::move(seg)) {}

    /// The doorbell: a futex word in the segment's header.
    uint32_t* doorbell() const noexcept;

    shm_segment _seg;
    rte_ring* _updates = nullptr;
    rte_ring* _acks = nullptr;
};

} // namespace ptpsec
