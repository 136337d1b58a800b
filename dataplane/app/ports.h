#pragma once

// Port set-up for ptpsec-dataplane: one mbuf pool, an RX and a TX queue per
// worker on every port (RSS over them where the PMD offers it), promiscuous
// mode where the PMD has it. Works on any PMD; the
// virtual ones (net_pcap, net_ring, net_memif, net_af_packet, net_tap) are
// what the tests use.

#include <drivers/base/result.h>

#include <cstdint>
#include <string>
#include <vector>

struct rte_mempool;

namespace ptpsec {

/// The pool every port's RX queues take mbufs from (rte_mempool_lookup).
inline constexpr const char* mbuf_pool_name = "ptpsec_mbufs";

/// mbufs each lcore keeps in its cache of the pool.
inline constexpr uint32_t mbuf_cache = 256;
/// The smallest pool rte_pktmbuf_pool_create takes with that cache: one and
/// a half times it.
inline constexpr uint32_t min_mbufs = mbuf_cache * 3 / 2;

struct port_options {
    uint16_t rx_desc = 1024;
    uint16_t tx_desc = 1024;
    uint32_t mbufs = 8191;
    /// Ask every port whose PMD offers it for a timestamp on each received
    /// frame (RTE_ETH_RX_OFFLOAD_TIMESTAMP; the rte_dynfield_timestamp
    /// field, flagged by rte_dynflag_rx_timestamp).
    bool rx_timestamp = false;
};

/// Configures and starts the ports with `queues` RX and TX queues each; the
/// error names the port and what failed. Returns the ports started (to stop
/// them with stop_ports()).
result<std::vector<uint16_t>> start_ports(const std::vector<uint16_t>& ports, const port_options& opt,
                                          uint16_t queues = 1);

/// "port N (DRIVER)", for messages.
std::string port_label(uint16_t port);

/// Stops and closes the ports.
void stop_ports(const std::vector<uint16_t>& ports) noexcept;

} // namespace ptpsec
