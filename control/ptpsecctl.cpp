// ptpsecctl: the operator's command line. For now it carries the offline
// capture tools; daemon commands join as the daemons arrive.

#include <control/pcap_tool.h>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <iostream>

namespace {

constexpr int exit_ok = 0;
constexpr int exit_failed = 1; ///< the command ran and found failures
constexpr int exit_error = 2;  ///< the command could not run

int report(const ptpsec::error& e) {
    fmt::print(stderr, "ptpsecctl: {}\n", e.message);
    return exit_error;
}

int run(int argc, char** argv) {
    CLI::App app{"ptpsecctl: operate ptpsec (offline PTP capture tools)"};
    app.require_subcommand(1);

    ptpsec::pcap_tool::options opt;
    std::string in;
    std::string out;
    std::string sa_file;
    int spp = -1;
    uint32_t key_id = 0;

    auto* pcap = app.add_subcommand("pcap", "Show, verify, sign or strip PTP frames in a capture file");
    pcap->require_subcommand(1);
    pcap->add_option("--ticket-tlv-type", opt.wire.ticket_tlv_type,
                     "tlvType of the TICKET TLV (seeds/001 §6; default 0x2015, experimental range)")
        ->capture_default_str();
    pcap->add_option("--engine", opt.engine, "ICV engine: ipsec-mb or openssl")
        ->check(CLI::IsMember({"ipsec-mb", "openssl"}))
        ->capture_default_str();

    auto* show = pcap->add_subcommand("show", "Decode every frame");
    show->fallthrough();
    show->add_option("IN", in, "capture file (pcap or pcapng)")->required();

    auto* verify = pcap->add_subcommand("verify", "Verify the AUTHENTICATION TLV of every PTP frame");
    verify->fallthrough();
    verify->add_option("--sa-file", sa_file, "SA file (linuxptp format)")->required();
    verify->add_option("IN", in, "capture file")->required();

    auto* sign = pcap->add_subcommand("sign", "Add an AUTHENTICATION TLV to every PTP frame that has none");
    sign->fallthrough();
    sign->add_option("--sa-file", sa_file, "SA file (linuxptp format)")->required();
    sign->add_option("--spp", spp, "security parameter pointer of the SA to sign with")
        ->required()
        ->check(CLI::Range(0, 255));
    sign->add_option("--key-id", key_id, "key ID within the SA")->required();
    sign->add_option("IN", in, "capture file")->required();
    sign->add_option("OUT", out, "output pcap file")->required();

    auto* strip = pcap->add_subcommand("strip", "Remove AUTHENTICATION TLVs, fixing lengths and checksums");
    strip->fallthrough();
    strip->add_option("IN", in, "capture file")->required();
    strip->add_option("OUT", out, "output pcap file")->required();

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? exit_ok : exit_error;
    }

    {
        if (show->parsed()) {
            auto r = ptpsec::pcap_tool::show(in, std::cout, opt);
            return r ? exit_ok : report(r.err());
        }
        if (verify->parsed()) {
            auto r = ptpsec::pcap_tool::verify(sa_file, in, std::cout, opt);
            if (!r) {
                return report(r.err());
            }
            return r->failed == 0 ? exit_ok : exit_failed;
        }
        if (sign->parsed()) {
            auto r = ptpsec::pcap_tool::sign(sa_file, static_cast<uint8_t>(spp), key_id, in, out, std::cerr, opt);
            if (!r) {
                return report(r.err());
            }
            fmt::print("{} frames, {} PTP, {} signed, {} not signed -> {}\n", r->frames, r->ptp, r->changed, r->failed,
                       out);
            return r->failed == 0 ? exit_ok : exit_failed;
        }
        if (strip->parsed()) {
            auto r = ptpsec::pcap_tool::strip(in, out, std::cerr, opt);
            if (!r) {
                return report(r.err());
            }
            fmt::print("{} frames, {} PTP, {} stripped, {} not stripped -> {}\n", r->frames, r->ptp, r->changed,
                       r->failed, out);
            return r->failed == 0 ? exit_ok : exit_failed;
        }
    }
    return exit_error;
}

} // namespace

int main(int argc, char** argv) {
    // Exceptions stay at the top of the program: start-up and library
    // failures that throw (allocation, a CPU without the needed instructions)
    // end here with a message.
    try {
        return run(argc, argv);
    } catch (const std::exception& e) {
        std::fputs("ptpsecctl: ", stderr);
        std::fputs(e.what(), stderr);
        std::fputs("\n", stderr);
    } catch (...) {
        std::fputs("ptpsecctl: unexpected error\n", stderr);
    }
    return exit_error;
}
