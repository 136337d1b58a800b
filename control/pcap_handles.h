#pragma once

// Owning handles for libpcap objects: closed on every exit path.

#include <pcap/pcap.h>

#include <memory>

namespace ptpsec {

struct pcap_closer {
    void operator()(pcap_t* p) const noexcept { pcap_close(p); }
};

struct dumper_closer {
    void operator()(pcap_dumper_t* d) const noexcept { pcap_dump_close(d); }
};

using pcap_ptr = std::unique_ptr<pcap_t, pcap_closer>;
using dumper_ptr = std::unique_ptr<pcap_dumper_t, dumper_closer>;

} // namespace ptpsec
