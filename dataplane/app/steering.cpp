#include <dataplane/app/steering.h>

#include <dataplane/ptp/frame.h>

#include <fmt/format.h>
#include <rte_byteorder.h>
#include <rte_ethdev.h>
#include <rte_flow.h>

#include <array>
#include <optional>

namespace ptpsec {

namespace {

/// One rule: a pattern of up to four items and a QUEUE action.
struct ptp_rule {
    std::string_view name;
    std::array<rte_flow_item, 5> pattern{};
};

struct rule_items {
    rte_flow_item_eth eth_l2{};
    rte_flow_item_eth eth_l2_mask{};
    rte_flow_item_vlan vlan_l2{};
    rte_flow_item_vlan vlan_l2_mask{};
    rte_flow_item_udp udp_event{};
    rte_flow_item_udp udp_general{};
    rte_flow_item_udp udp_mask{};
};

rte_flow_item item(rte_flow_item_type t, const void* spec = nullptr, const void* mask = nullptr) {
    rte_flow_item it{};
    it.type = t;
    it.spec = spec;
    it.mask = mask;
    return it;
}

std::array<ptp_rule, 6> make_rules(rule_items& it) {
    it.eth_l2.hdr.ether_type = rte_cpu_to_be_16(ptp::ethertype_ptp);
    it.eth_l2_mask.hdr.ether_type = rte_cpu_to_be_16(0xFFFF);
    it.vlan_l2.hdr.eth_proto = rte_cpu_to_be_16(ptp::ethertype_ptp);
    it.vlan_l2_mask.hdr.eth_proto = rte_cpu_to_be_16(0xFFFF);
    it.udp_event.hdr.dst_port = rte_cpu_to_be_16(ptp::udp_port_event);
    it.udp_general.hdr.dst_port = rte_cpu_to_be_16(ptp::udp_port_general);
    it.udp_mask.hdr.dst_port = rte_cpu_to_be_16(0xFFFF);
    const rte_flow_item end = item(RTE_FLOW_ITEM_TYPE_END);
    const rte_flow_item eth = item(RTE_FLOW_ITEM_TYPE_ETH);
    return {{
        {"eth type 0x88f7", {item(RTE_FLOW_ITEM_TYPE_ETH, &it.eth_l2, &it.eth_l2_mask), end}},
        {"eth / vlan type 0x88f7", {eth, item(RTE_FLOW_ITEM_TYPE_VLAN, &it.vlan_l2, &it.vlan_l2_mask), end}},
        {"eth / ipv4 / udp dst 319",
         {eth, item(RTE_FLOW_ITEM_TYPE_IPV4), item(RTE_FLOW_ITEM_TYPE_UDP, &it.udp_event, &it.udp_mask), end}},
        {"eth / ipv4 / udp dst 320",
         {eth, item(RTE_FLOW_ITEM_TYPE_IPV4), item(RTE_FLOW_ITEM_TYPE_UDP, &it.udp_general, &it.udp_mask), end}},
        {"eth / ipv6 / udp dst 319",
         {eth, item(RTE_FLOW_ITEM_TYPE_IPV6), item(RTE_FLOW_ITEM_TYPE_UDP, &it.udp_event, &it.udp_mask), end}},
        {"eth / ipv6 / udp dst 320",
         {eth, item(RTE_FLOW_ITEM_TYPE_IPV6), item(RTE_FLOW_ITEM_TYPE_UDP, &it.udp_general, &it.udp_mask), end}},
    }};
}

std::string port_name(uint16_t port) {
    std::array<char, RTE_ETH_NAME_MAX_LEN> name{};
    if (rte_eth_dev_get_name_by_port(port, name.data()) != 0) {
        return fmt::format("port {}", port);
    }
    return fmt::format("port {} ({})", port, name.data());
}

/// Installs every rule on `port`, or none: the refusal, if any.
std::optional<std::string> steer_port(uint16_t port, uint16_t queue) {
    rule_items items;
    const auto rules = make_rules(items);
    rte_flow_attr attr{};
    attr.ingress = 1;
    rte_flow_action_queue to_queue{};
    to_queue.index = queue;
    std::array<rte_flow_action, 2> actions{};
    actions[0].type = RTE_FLOW_ACTION_TYPE_QUEUE;
    actions[0].conf = &to_queue;
    actions[1].type = RTE_FLOW_ACTION_TYPE_END;
    for (const auto& r : rules) {
        rte_flow_error err{};
        rte_flow* f = rte_flow_create(port, &attr, r.pattern.data(), actions.data(), &err);
        if (f == nullptr) {
            (void)rte_flow_flush(port, &err);
            return fmt::format("{} refuses rte_flow rule \"{} -> queue {}\": {}", port_name(port), r.name, queue,
                               err.message != nullptr ? err.message : "no reason given");
        }
    }
    return std::nullopt;
}

} // namespace

std::string_view steering_mode_name(steering_mode m) noexcept {
    switch (m) {
    case steering_mode::automatic:
        return "auto";
    case steering_mode::flow:
        return "flow";
    case steering_mode::software:
        return "software";
    }
    return "?";
}

result<steering_outcome> steer_ptp(const std::vector<uint16_t>& ports, uint16_t queue, steering_mode mode) {
    steering_outcome out;
    if (mode == steering_mode::software) {
        return out;
    }
    std::vector<uint16_t> done;
    for (uint16_t p : ports) {
        auto refused = steer_port(p, queue);
        if (!refused) {
            done.push_back(p);
            continue;
        }
        unsteer_ptp(done);
        if (mode == steering_mode::flow) {
            return error{
                fmt::format("--steering flow: {} (use --steering auto to hand PTP over in software)", *refused)};
        }
        out.notes.push_back(std::move(*refused));
        return out;
    }
    out.flow = true;
    return out;
}

void unsteer_ptp(const std::vector<uint16_t>& ports) noexcept {
    for (uint16_t p : ports) {
        rte_flow_error err{};
        (void)rte_flow_flush(p, &err);
    }
}

} // namespace ptpsec
