#pragma once

// The exception channel between the data plane and the control plane: a
// POSIX shared-memory segment (/dev/shm/ptpsec-exc.PREFIX, root only)
// holding two rte_rings initialised in place with rte_ring_init, as the SA
// channel (dataplane/sa_channel.h) does and for the same reasons (the
// control plane needs no EAL; either side restarts on its own):
//
//   exceptions  data plane -> control plane: frames the data plane could
//               not verify and hands over (ticket requests, seeds/001 §6)
//   reinject    control plane -> data plane: frames to process again
//
// with the fixed-size records of dataplane/exception_wire.h.
//
// The data plane makes the segment at start only with --tickets and removes
// it at exit. Its one producer of exceptions and one consumer of reinject
// records is the PTP worker, which fills and reads slots in place (zero-copy
// ring API) and never waits. The control side may have several readers and
// writers (the rings' other ends are multi-consumer and multi-producer), so
// it needs no lock.

#include <dataplane/exception_wire.h>
#include <dataplane/shm_segment.h>
#include <drivers/base/result.h>

#include <cstddef>
#include <cstdint>
#include <string>

struct rte_ring;

namespace ptpsec {

class exception_channel {
public:
    static constexpr unsigned default_slots = 128;
    static constexpr unsigned max_slots = 1U << 16;

    /// The segment name for an EAL file prefix ("rte" by default).
    static std::string segment_name(const std::string& file_prefix);

    /// Data plane: makes a fresh segment (a stale one from an earlier run
    /// is replaced). Each ring holds exactly `slots` records (1 to
    /// max_slots).
    static result<exception_channel> create(const std::string& file_prefix, unsigned slots = default_slots);

    /// Control plane: attaches to the segment of a running data plane; the
    /// error says when there is none (no data plane, or one without
    /// --tickets).
    static result<exception_channel> attach(const std::string& file_prefix);

    exception_channel(exception_channel&&) noexcept = default;
    exception_channel& operator=(exception_channel&&) noexcept = default;
    exception_channel(const exception_channel&) = delete;
    exception_channel& operator=(const exception_channel&) = delete;
    /// Unmaps; the creator also removes the segment.
    ~exception_channel() = default;

    // Control side.
    /// The oldest exception; false when there is none.
    bool pop_exception(exception_wire::record& r) noexcept;
    /// False if the ring is full (the data plane stopped taking them).
    bool push_reinject(const exception_wire::record& r) noexcept;
    /// Exceptions waiting to be popped.
    unsigned exceptions_waiting() const noexcept;

    // Data plane side (one thread: the PTP worker).
    /// The next free slot of the exceptions ring, to fill in place and then
    /// hand over with commit_exception() or give back with
    /// cancel_exception(); null when the ring is full.
    exception_wire::record* exception_slot() noexcept;
    void commit_exception() noexcept;
    void cancel_exception() noexcept;
    /// exception_slot(), a copy of `r`, commit_exception(): false when full.
    bool push_exception(const exception_wire::record& r) noexcept;

    /// The oldest reinject record, read in place until release_reinject();
    /// null when there is none.
    const exception_wire::record* peek_reinject() noexcept;
    void release_reinject() noexcept;
    /// peek_reinject(), a copy into `r`, release_reinject(): false when none.
    bool pop_reinject(exception_wire::record& r) noexcept;
    /// Records waiting to be reinjected: two loads, cheap between bursts.
    bool reinject_waiting() const noexcept;

    /// Records each ring holds.
    unsigned slots() const noexcept;
    const std::string& name() const noexcept { return _seg.name(); }

private:
    explicit exception_channel(shm_segment seg) noexcept : _seg(std::move(seg)) {}

    shm_segment _seg;
    rte_ring* _exceptions = nullptr;
    rte_ring* _reinject = nullptr;
};

} // namespace ptpsec
