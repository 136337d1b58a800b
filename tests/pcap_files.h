#pragma once

// Reading and writing capture files in tests, with libpcap.

#include <control/pcap_handles.h>

#include <pcap/pcap.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace ptpsec::test {

struct packet {
    pcap_pkthdr hdr;
    std::vector<uint8_t> data;
};

inline std::vector<packet> read_packets(const std::string& path) {
    char err[PCAP_ERRBUF_SIZE] = {};
    pcap_ptr p(pcap_open_offline(path.c_str(), err));
    if (!p) {
        throw std::runtime_error(err);
    }
    std::vector<packet> out;
    pcap_pkthdr* h = nullptr;
    const u_char* d = nullptr;
    while (pcap_next_ex(p.get(), &h, &d) == 1) {
        out.push_back(packet{*h, std::vector<uint8_t>(d, d + h->caplen)});
    }
    return out;
}

inline void write_packets(const std::string& path, int linktype, const std::vector<packet>& pkts) {
    pcap_ptr dead(pcap_open_dead(linktype, 65535));
    dumper_ptr d(pcap_dump_open(dead.get(), path.c_str()));
    if (!d) {
        throw std::runtime_error(pcap_geterr(dead.get()));
    }
    for (const auto& p : pkts) {
        pcap_dump(reinterpret_cast<u_char*>(d.get()), &p.hdr, p.data.data());
    }
}

} // namespace ptpsec::test
