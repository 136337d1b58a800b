#include <dataplane/app/ports.h>

#include <fmt/format.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

namespace ptpsec {

namespace {

error port_error(uint16_t port, std::string_view what, int rc) {
    return error{fmt::format("port {}: {}: {}", port, what, rte_strerror(-rc))};
}

} // namespace

result<std::vector<uint16_t>> start_ports(const std::vector<uint16_t>& ports, const port_options& opt,
                                          uint16_t queues) {
    const uint16_t available = rte_eth_dev_count_avail();
    for (uint16_t p : ports) {
        if (!rte_eth_dev_is_valid_port(p)) {
            return error{
                fmt::format("port {} does not exist ({} port(s) found; add one with --vdev or -a)", p, available)};
        }
    }
    rte_mempool* pool = rte_pktmbuf_pool_create(mbuf_pool_name, opt.mbufs, mbuf_cache, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                                static_cast<int>(rte_socket_id()));
    if (pool == nullptr) {
        return error{fmt::format("mbuf pool of {} mbufs: {} (hugepages set up? or try --no-huge -m 512)", opt.mbufs,
                                 rte_strerror(rte_errno))};
    }
    std::vector<uint16_t> started;
    auto fail = [&](error e) -> result<std::vector<uint16_t>> {
        stop_ports(started);
        return e;
    };
    for (uint16_t p : ports) {
        rte_eth_dev_info info{};
        if (int rc = rte_eth_dev_info_get(p, &info); rc < 0) {
            return fail(port_error(p, "device info", rc));
        }
        if (info.max_rx_queues < queues || info.max_tx_queues < queues) {
            return fail(error{
                fmt::format("{}: {} workers need {} RX and TX queues, the port has at most {} RX and {} TX (fewer "
                            "lcores, or a port with more queues: net_pcap takes one rx_pcap/tx_pcap per queue)",
                            port_label(p), queues, queues, info.max_rx_queues, info.max_tx_queues)});
        }
        rte_eth_conf conf{};
        // Several queues: spread what is not PTP over them by RSS on the
        // addresses and ports, where the PMD offers it (PTP is steered or
        // handed to the PTP worker whatever RSS does with it).
        const uint64_t rss = info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_TCP);
        if (queues > 1 && rss != 0) {
            conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss;
        }
        if (opt.rx_timestamp) {
            conf.rxmode.offloads |= info.rx_offload_capa & RTE_ETH_RX_OFFLOAD_TIMESTAMP;
        }
        if (int rc = rte_eth_dev_configure(p, queues, queues, &conf); rc < 0) {
            return fail(port_error(p, "configure", rc));
        }
        uint16_t rx_desc = opt.rx_desc;
        uint16_t tx_desc = opt.tx_desc;
        if (int rc = rte_eth_dev_adjust_nb_rx_tx_desc(p, &rx_desc, &tx_desc); rc < 0) {
            return fail(port_error(p, "descriptor counts", rc));
        }
        const int socket = rte_eth_dev_socket_id(p);
        const unsigned sock = socket < 0 ? rte_socket_id() : static_cast<unsigned>(socket);
        for (uint16_t q = 0; q < queues; ++q) {
            if (int rc = rte_eth_rx_queue_setup(p, q, rx_desc, sock, nullptr, pool); rc < 0) {
                return fail(port_error(p, fmt::format("RX queue {}", q), rc));
            }
            if (int rc = rte_eth_tx_queue_setup(p, q, tx_desc, sock, nullptr); rc < 0) {
                return fail(port_error(p, fmt::format("TX queue {}", q), rc));
            }
        }
        if (int rc = rte_eth_dev_start(p); rc < 0) {
            return fail(port_error(p, "start", rc));
        }
        started.push_back(p);
        // Not every PMD has it (net_pcap on files does not): not an error.
        (void)rte_eth_promiscuous_enable(p);
    }
    return started;
}

std::string port_label(uint16_t port) {
    rte_eth_dev_info info{};
    const char* driver = rte_eth_dev_info_get(port, &info) == 0 ? info.driver_name : nullptr;
    return fmt::format("port {} ({})", port, driver != nullptr ? driver : "?");
}

void stop_ports(const std::vector<uint16_t>& ports) noexcept {
    for (uint16_t p : ports) {
        (void)rte_eth_dev_stop(p);
        (void)rte_eth_dev_close(p);
    }
}

} // namespace ptpsec
