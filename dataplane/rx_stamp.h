#pragma once

// The time a port gave a received frame, for its RX timing event, where the
// port gives one; the worker reads the event clock once per burst for the
// rest. Two ways a DPDK port gives it:
//
//  - a per-frame RX timestamp in the mbuf (RTE_ETH_RX_OFFLOAD_TIMESTAMP: the
//    rte_dynfield_timestamp field, valid where rte_dynflag_rx_timestamp is
//    set), in a unit of the PMD's (ptpsec-dataplane --rx-timestamps
//    port-ns|port-us);
//  - the IEEE 1588 timestamp a NIC latches for a PTP frame it recognised
//    (RTE_MBUF_F_RX_IEEE1588_TMST, register index in rte_mbuf::timesync),
//    read through the clock of --clock ethdev:PORT for frames of that port.
//
// The first wins where a frame has both. Inline: it runs once per RX event.

#include <drivers/clock/source.h>

#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>

#include <cstdint>

namespace ptpsec {

struct port_rx_stamps {
    /// Offset of rte_dynfield_timestamp; -1: per-frame timestamps not used.
    int dynfield_offset = -1;
    /// Nanoseconds per unit of that field.
    uint32_t ns_per_unit = 1;
    /// The bit of rte_dynflag_rx_timestamp.
    uint64_t dynflag = 0;
    /// A clock whose port latches IEEE 1588 RX timestamps (source::
    /// latch_port()); null: none.
    clock::source* latched = nullptr;
    uint16_t latched_port = 0;

    bool any() const noexcept { return dynfield_offset >= 0 || latched != nullptr; }
};

/// The time port `port` gave frame `m`: true, and `ns` set, if it gave one.
inline bool port_rx_time(const port_rx_stamps& s, const rte_mbuf* m, uint16_t port, uint64_t& ns) noexcept {
    if (s.dynfield_offset >= 0 && (m->ol_flags & s.dynflag) != 0) {
        ns = *RTE_MBUF_DYNFIELD(m, s.dynfield_offset, const uint64_t*) * s.ns_per_unit;
        return true;
    }
    if (s.latched != nullptr && port == s.latched_port && (m->ol_flags & RTE_MBUF_F_RX_IEEE1588_TMST) != 0) {
        const clock::stamp st = s.latched->rx_stamp(m->timesync);
        if (st.hardware) {
            ns = st.ns;
            return true;
        }
    }
    return false;
}

} // namespace ptpsec
