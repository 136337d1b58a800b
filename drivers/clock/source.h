#pragma once

// The clock that stamps timing events (BRIEF "Attestation": PHC time in ns).
// Three sources, chosen once at start-up from a textual spec:
//
//   ethdev:PORT      the NIC's PHC through DPDK ethdev timesync, with the
//                    hardware RX/TX timestamps the NIC latches for PTP frames
//   phc:/dev/ptpN    a Linux PTP hardware clock (Documentation/ptp)
//   tai              the system clock, CLOCK_TAI
//
// now_ns() is one virtual call, made once per burst rather than per packet
// (STYLE "Avoid": no virtual call per packet); PHC reads are system calls
// that cost about a microsecond. rx_stamp() is called only for a frame whose
// NIC latched its time (dataplane/rx_stamp.h), where reading the latch is
// per frame by nature and goes through ethdev's own indirect call anyway.

#include <drivers/base/result.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ptpsec::clock {

enum class source_kind : uint8_t {
    system_tai, ///< "tai"
    linux_phc,  ///< "phc:PATH"
    ethdev,     ///< "ethdev:PORT"
};

/// "tai", "phc", "ethdev": the prefix of the spec.
std::string_view kind_name(source_kind k) noexcept;

/// A time reading and whether the NIC took it when the frame crossed the wire
/// (hardware) or software read the clock afterwards.
struct stamp {
    uint64_t ns = 0;
    bool hardware = false;
};

/// One clock. Thread-safe: lcores may share a source; the reads keep no
/// state except the failure counter.
class source {
public:
    virtual ~source() = default;
    source(const source&) = delete;
    source& operator=(const source&) = delete;
    source(source&&) = delete;
    source& operator=(source&&) = delete;

    /// Nanoseconds since the clock's epoch: the PTP epoch (TAI) for a PHC
    /// disciplined by a PTP stack and for CLOCK_TAI once the kernel knows
    /// the TAI-UTC offset. 0 if the clock could not be read (a PHC whose
    /// device went away); such reads are counted in read_failures(). Neither
    /// allocates nor blocks.
    virtual uint64_t now_ns() const noexcept = 0;

    /// The receive timestamp the port latched for the last PTP frame, for
    /// sources that have one; otherwise, and when none is latched, now_ns()
    /// marked as software. `flags` is the PMD's timestamp register index
    /// (rte_mbuf::timesync for PMDs that set RTE_MBUF_F_RX_IEEE1588_TMST).
    virtual stamp rx_stamp(uint32_t flags) noexcept;

    /// The transmit timestamp of the last PTP frame sent with
    /// RTE_MBUF_F_TX_IEEE1588_TMST, for sources that have one; otherwise
    /// now_ns() marked as software.
    virtual stamp tx_stamp() noexcept;

    /// The DPDK port whose IEEE 1588 RX latch rx_stamp() reads; -1 for
    /// sources without one.
    virtual int latch_port() const noexcept { return -1; }

    source_kind kind() const noexcept { return _kind; }
    /// For logs and `ptpsecctl status`: the spec plus what was found when it
    /// was opened ("phc:/dev/ptp0 (ptp_kvm)").
    std::string_view name() const noexcept { return _name; }
    uint64_t read_failures() const noexcept { return _read_failures.load(std::memory_order_relaxed); }

protected:
    source(source_kind kind, std::string name) : _kind(kind), _name(std::move(name)) {}

    /// Only on the failure path: one relaxed atomic add.
    void count_read_failure() const noexcept { _read_failures.fetch_add(1, std::memory_order_relaxed); }

private:
    source_kind _kind;
    std::string _name;
    mutable std::atomic<uint64_t> _read_failures{0};
};

using source_ptr = std::unique_ptr<source>;

/// Opens one clock from its spec: "tai", "phc:/dev/ptpN" or "ethdev:PORT"
/// (PORT is a port id or an ethdev name such as "0000:3b:00.0"). An ethdev
/// clock needs EAL initialised and the port probed, and should be opened
/// after rte_eth_dev_start() (some PMDs reset the timer on start). The error
/// names the spec and the reason, so that the caller can log it and fall
/// back.
result<source_ptr> open_clock(std::string_view spec);

/// The first clock of a comma-separated list that opens
/// ("ethdev:0,phc:/dev/ptp0,tai"), and why each one before it did not.
struct opened_clock {
    source_ptr clock;
    std::vector<std::string> skipped;
};

/// Tries each spec of `spec_list` in order. Fails only if none opens; the
/// message then lists every reason.
result<opened_clock> open_first_clock(std::string_view spec_list);

namespace detail {
/// timespec fields to nanoseconds; false if the time is before the epoch.
inline bool to_ns(int64_t sec, int64_t nsec, uint64_t& out) noexcept {
    if (sec < 0 || nsec < 0) {
        return false;
    }
    out = static_cast<uint64_t>(sec) * 1'000'000'000ULL + static_cast<uint64_t>(nsec);
    return true;
}
} // namespace detail

} // namespace ptpsec::clock
