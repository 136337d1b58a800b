#pragma once

// The PHC of a NIC port through DPDK's ethdev timesync API (IEEE 1588
// support of the PMD): the time of the port's clock and the timestamps the
// NIC latches when a PTP frame crosses the wire. Only PMDs of real NICs
// implement it (ixgbe, i40e, ice, igc, mlx5 in part...); every virtual PMD
// (net_null, net_ring, net_pcap, net_tap, net_af_packet, net_memif) answers
// -ENOTSUP, which open() reports so that the caller can fall back to a Linux
// PHC or to the system clock.
//
// This header does not include DPDK: ports are plain uint16_t ids.

#include <drivers/clock/source.h>

namespace ptpsec::clock {

class ethdev_clock final : public source {
public:
    /// Enables timesync on `port_id` (rte_eth_timesync_enable) and reads the
    /// clock once. Needs EAL and a probed port; open it after
    /// rte_eth_dev_start(). Fails with the port, its driver and the PMD's
    /// answer (-ENOTSUP for a PMD without IEEE 1588 support).
    static result<std::unique_ptr<ethdev_clock>> open(uint16_t port_id);

    /// The same for a port named as EAL names it ("net_null0",
    /// "0000:3b:00.0").
    static result<std::unique_ptr<ethdev_clock>> open(std::string_view port_name);

    /// Disables timesync on the port again.
    ~ethdev_clock() override;
    ethdev_clock(const ethdev_clock&) = delete;
    ethdev_clock& operator=(const ethdev_clock&) = delete;
    ethdev_clock(ethdev_clock&&) = delete;
    ethdev_clock& operator=(ethdev_clock&&) = delete;

    /// rte_eth_timesync_read_time().
    uint64_t now_ns() const noexcept override;

    /// The hardware RX timestamp latched for the last PTP frame
    /// (rte_eth_timesync_read_rx_timestamp); false if none is latched, in
    /// which case `ns` is untouched. Reading it releases the latch on most
    /// NICs, so read it once per frame that carries
    /// RTE_MBUF_F_RX_IEEE1588_TMST.
    bool read_rx_timestamp(uint32_t flags, uint64_t& ns) const noexcept;

    /// The hardware TX timestamp of the last frame sent with
    /// RTE_MBUF_F_TX_IEEE1588_TMST (rte_eth_timesync_read_tx_timestamp);
    /// false while the NIC has not latched it yet.
    bool read_tx_timestamp(uint64_t& ns) const noexcept;

    /// read_rx_timestamp(), else now_ns() marked as software.
    stamp rx_stamp(uint32_t flags) noexcept override;
    /// read_tx_timestamp(), else now_ns() marked as software.
    stamp tx_stamp() noexcept override;

    uint16_t port_id() const noexcept { return _port_id; }
    int latch_port() const noexcept override { return _port_id; }

private:
    ethdev_clock(std::string name, uint16_t port_id) noexcept
        : source(source_kind::ethdev, std::move(name)), _port_id(port_id) {}

    uint16_t _port_id;
};

} // namespace ptpsec::clock
