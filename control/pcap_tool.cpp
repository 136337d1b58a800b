#include <control/pcap_tool.h>

#include <control/pcap_handles.h>
#include <control/sa_file.h>
#include <dataplane/auth.h>
#include <dataplane/ptp/frame.h>
#include <drivers/icv/ipsecmb_engine.h>
#include <drivers/icv/openssl_engine.h>

#include <fmt/format.h>
#include <fmt/ostream.h>
#include <pcap/pcap.h>

#include <array>
#include <fstream>
#include <memory>
#include <ostream>
#include <vector>

namespace ptpsec::pcap_tool {

namespace {

/// Room for the largest AUTHENTICATION TLV we add (HMAC-SHA256 or GMAC).
constexpr size_t tlv_headroom = 64;

/// The time stamp resolution of a pcap file (nanosecond pcap files have
/// their own magic); pcapng and microsecond pcap read as microseconds.
int file_precision(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::array<unsigned char, 4> magic{};
    if (!f.read(reinterpret_cast<char*>(magic.data()), magic.size())) {
        return PCAP_TSTAMP_PRECISION_MICRO;
    }
    const bool nano = (magic == std::array<unsigned char, 4>{0xa1, 0xb2, 0x3c, 0x4d}) ||
                      (magic == std::array<unsigned char, 4>{0x4d, 0x3c, 0xb2, 0xa1});
    return nano ? PCAP_TSTAMP_PRECISION_NANO : PCAP_TSTAMP_PRECISION_MICRO;
}

result<pcap_ptr> open_in(const std::string& path) {
    char err[PCAP_ERRBUF_SIZE] = {};
    pcap_t* p = pcap_open_offline_with_tstamp_precision(path.c_str(), file_precision(path), err);
    if (p == nullptr) {
        // libpcap names the file in some messages and not in others.
        const std::string msg = err;
        return error{msg.find(path) != std::string::npos ? msg : fmt::format("{}: {}", path, msg)};
    }
    return pcap_ptr(p);
}

/// The output keeps the input's link type and snapshot length.
struct writer {
    pcap_ptr dead;
    dumper_ptr dump;
};

result<writer> open_out(pcap_t* in, const std::string& path) {
    writer w;
    w.dead.reset(
        pcap_open_dead_with_tstamp_precision(pcap_datalink(in), pcap_snapshot(in), pcap_get_tstamp_precision(in)));
    if (!w.dead) {
        return error{fmt::format("{}: cannot create a pcap writer", path)};
    }
    w.dump.reset(pcap_dump_open(w.dead.get(), path.c_str()));
    if (!w.dump) {
        return error{fmt::format("{}: {}", path, pcap_geterr(w.dead.get()))};
    }
    return w;
}

result<std::unique_ptr<icv::engine>> make_engine(const std::string& name) {
    if (name == "ipsec-mb") {
        return std::unique_ptr<icv::engine>(std::make_unique<icv::ipsecmb_engine>());
    }
    if (name == "openssl") {
        return std::unique_ptr<icv::engine>(std::make_unique<icv::openssl_engine>());
    }
    return error{fmt::format("unknown engine '{}' (ipsec-mb or openssl)", name)};
}

std::string hex(const uint8_t* p, size_t n) {
    std::string s;
    s.reserve(n * 2);
    for (size_t i = 0; i < n; ++i) {
        s += fmt::format("{:02x}", p[i]);
    }
    return s;
}

std::string port_identity_text(const ptp::port_identity& p) {
    return fmt::format("{}-{}", hex(p.clockIdentity.data(), p.clockIdentity.size()), p.portNumber);
}

std::string frame_label(uint64_t n, const ptp::frame_info& fi, const ptp::message_view& mv) {
    return fmt::format("#{} {} {} seq {} src {}", n, ptp::transport_name(fi.tp),
                       ptp::message_type_name(mv.hdr.messageType), mv.hdr.sequenceId,
                       port_identity_text(mv.hdr.sourcePortIdentity));
}

bool is_ethernet(pcap_t* p) {
    return pcap_datalink(p) == DLT_EN10MB;
}

status check_linktype(pcap_t* p, const std::string& path) {
    if (!is_ethernet(p)) {
        return error{fmt::format("{}: link type {} is not Ethernet; only Ethernet captures are supported", path,
                                 pcap_datalink_val_to_name(pcap_datalink(p)))};
    }
    return ok_status();
}

/// An Ethernet capture opened for reading.
result<pcap_ptr> open_ethernet(const std::string& path) {
    auto in = open_in(path);
    if (!in) {
        return in.err();
    }
    if (auto st = check_linktype(in->get(), path); !st) {
        return st.err();
    }
    return in;
}

/// The SAs of an SA file, expanded by the chosen engine.
struct installed_sas {
    std::unique_ptr<icv::engine> eng;
    sa_database sad;
};

result<installed_sas> install_sa_file(const std::string& sa_file, const options& opt) {
    auto sas = load_sa_file(sa_file);
    if (!sas) {
        return sas.err();
    }
    auto eng = make_engine(opt.engine);
    if (!eng) {
        return eng.err();
    }
    auto sad = sa_database::install(**eng, *sas);
    if (!sad) {
        return sad.err();
    }
    return installed_sas{std::move(eng).value(), std::move(sad).value()};
}

/// Calls fn(header, data) for each packet; stops on a read error.
template <typename Fn>
status for_each_packet(pcap_t* p, const std::string& path, Fn&& fn) {
    pcap_pkthdr* h = nullptr;
    const u_char* data = nullptr;
    for (;;) {
        const int rc = pcap_next_ex(p, &h, &data);
        if (rc == PCAP_ERROR_BREAK) {
            return ok_status();
        }
        if (rc != 1) {
            return error{fmt::format("{}: {}", path, pcap_geterr(p))};
        }
        if (auto st = fn(*h, data); !st) {
            return st;
        }
    }
}

void show_body(std::ostream& out, const ptp::message_view& mv) {
    ptp::body b;
    ptp::read_body(mv.hdr.messageType, mv.data + ptp::header_len, b);
    std::visit(
        [&](const auto& body) {
            using T = std::decay_t<decltype(body)>;
            const auto ts = [](const ptp::timestamp& t) {
                return fmt::format("{}.{:09d}", t.secondsField, t.nanosecondsField);
            };
            if constexpr (std::is_same_v<T, ptp::sync_body> || std::is_same_v<T, ptp::delay_req_body> ||
                          std::is_same_v<T, ptp::pdelay_req_body>) {
                fmt::print(out, "    originTimestamp {}\n", ts(body.originTimestamp));
            } else if constexpr (std::is_same_v<T, ptp::follow_up_body>) {
                fmt::print(out, "    preciseOriginTimestamp {}\n", ts(body.preciseOriginTimestamp));
            } else if constexpr (std::is_same_v<T, ptp::delay_resp_body>) {
                fmt::print(out, "    receiveTimestamp {} requestingPortIdentity {}\n", ts(body.receiveTimestamp),
                           port_identity_text(body.requestingPortIdentity));
            } else if constexpr (std::is_same_v<T, ptp::pdelay_resp_body>) {
                fmt::print(out, "    requestReceiptTimestamp {} requestingPortIdentity {}\n",
                           ts(body.requestReceiptTimestamp), port_identity_text(body.requestingPortIdentity));
            } else if constexpr (std::is_same_v<T, ptp::pdelay_resp_follow_up_body>) {
                fmt::print(out, "    responseOriginTimestamp {} requestingPortIdentity {}\n",
                           ts(body.responseOriginTimestamp), port_identity_text(body.requestingPortIdentity));
            } else if constexpr (std::is_same_v<T, ptp::announce_body>) {
                fmt::print(out,
                           "    grandmasterIdentity {} priority1 {} clockClass {} clockAccuracy 0x{:02x} "
                           "priority2 {} stepsRemoved {} currentUtcOffset {} timeSource 0x{:02x}\n",
                           hex(body.grandmasterIdentity.data(), 8), body.grandmasterPriority1, body.clockClass,
                           body.clockAccuracy, body.grandmasterPriority2, body.stepsRemoved, body.currentUtcOffset,
                           body.timeSource);
            } else if constexpr (std::is_same_v<T, ptp::signaling_body>) {
                fmt::print(out, "    targetPortIdentity {}\n", port_identity_text(body.targetPortIdentity));
            } else if constexpr (std::is_same_v<T, ptp::management_body>) {
                fmt::print(out, "    targetPortIdentity {} actionField {}\n",
                           port_identity_text(body.targetPortIdentity), body.actionField);
            }
        },
        b);
}

} // namespace

result<uint64_t> show(const std::string& in_path, std::ostream& out, const options& opt) {
    auto in = open_ethernet(in_path);
    if (!in) {
        return in.err();
    }
    uint64_t n = 0;
    auto st = for_each_packet(in->get(), in_path, [&](const pcap_pkthdr& h, const u_char* data) -> status {
        ++n;
        ptp::frame_info fi;
        const ptp::error fe = ptp::classify_frame(data, h.caplen, fi);
        if (fe == ptp::error::not_ptp) {
            fmt::print(out, "#{} not PTP, {} octets\n", n, h.caplen);
            return ok_status();
        }
        if (fe != ptp::error::none) {
            fmt::print(out, "#{} malformed frame: {} ({})\n", n, ptp::error_text(fe), ptp::error_name(fe));
            return ok_status();
        }
        ptp::message_view mv;
        const ptp::error me = ptp::parse_message(data + fi.ptp_offset, fi.ptp_avail, mv, opt.wire);
        if (me != ptp::error::none) {
            fmt::print(out, "#{} {} malformed PTP message: {} ({})\n", n, ptp::transport_name(fi.tp),
                       ptp::error_text(me), ptp::error_name(me));
            return ok_status();
        }
        const auto& hdr = mv.hdr;
        fmt::print(out, "{}\n", frame_label(n, fi, mv));
        fmt::print(out,
                   "    vlans {} domain {} sdoId 0x{:03x} version {}.{} messageLength {} flags 0x{:04x} "
                   "correction {} logMessageInterval {}\n",
                   fi.vlan_count, hdr.domainNumber, hdr.sdo_id(), hdr.versionPTP, hdr.minorVersionPTP,
                   hdr.messageLength, hdr.flagField, hdr.correctionField, hdr.logMessageInterval);
        show_body(out, mv);
        ptp::tlv_iterator it(mv.data, mv.tlv_begin, hdr.messageLength);
        ptp::tlv_ref t;
        bool done = false;
        while (it.next(t, done) == ptp::error::none && !done) {
            fmt::print(out, "    TLV {} (0x{:04x}) length {}", ptp::tlv_type_name(t.type, opt.wire.ticket_tlv_type),
                       t.type, t.length);
            if (t.type == ptp::tlv_authentication && mv.has_auth) {
                const auto& a = mv.auth;
                fmt::print(out, ": spp {} secParamIndicator 0x{:02x} keyID {}", a.spp, a.secParamIndicator, a.keyID);
                if (a.has_seqno) {
                    fmt::print(out, " sequenceNo {}", a.sequenceNo);
                }
                fmt::print(out, " ICV {}", hex(mv.data + a.icv_offset, a.icv_len));
            }
            fmt::print(out, "\n");
        }
        return ok_status();
    });
    if (!st) {
        return st.err();
    }
    return n;
}

result<verify_summary> verify(const std::string& sa_file, const std::string& in_path, std::ostream& out,
                              const options& opt) {
    auto sas = install_sa_file(sa_file, opt);
    if (!sas) {
        return sas.err();
    }
    auto in = open_ethernet(in_path);
    if (!in) {
        return in.err();
    }
    verifier v(*sas->eng, sas->sad, opt.wire);
    verify_summary sum;
    uint64_t n = 0;
    std::vector<uint8_t> buf;
    auto st = for_each_packet(in->get(), in_path, [&](const pcap_pkthdr& h, const u_char* data) -> status {
        ++n;
        // The verifier may zero correctionField while it computes (allow_mutable): give it a copy.
        buf.assign(data, data + h.caplen);
        ptp::frame_buf f{buf.data(), static_cast<uint32_t>(buf.size()), static_cast<uint32_t>(buf.size())};
        frame_outcome o;
        v.verify_burst(&f, 1, &o);
        const auto vs = static_cast<verify_status>(o.status);
        if (vs == verify_status::not_ptp) {
            return ok_status();
        }
        ptp::frame_info fi;
        ptp::message_view mv;
        std::string label = fmt::format("#{}", n);
        if (ptp::classify_frame(f.data, f.len, fi) == ptp::error::none &&
            ptp::parse_message(f.data + fi.ptp_offset, fi.ptp_avail, mv, opt.wire) == ptp::error::none) {
            label = frame_label(n, fi, mv);
            if (mv.has_auth) {
                label += fmt::format(" spp {} key {}", mv.auth.spp, mv.auth.keyID);
            }
        }
        switch (vs) {
        case verify_status::verified:
            ++sum.verified;
            fmt::print(out, "{}: verified\n", label);
            break;
        case verify_status::unsigned_message:
            ++sum.unsigned_frames;
            fmt::print(out, "{}: unsigned\n", label);
            break;
        case verify_status::malformed:
            ++sum.failed;
            fmt::print(out, "{}: FAILED malformed: {}\n", label, ptp::error_text(o.cause));
            break;
        default:
            ++sum.failed;
            fmt::print(out, "{}: FAILED {}\n", label, verify_status_name(vs));
            break;
        }
        return ok_status();
    });
    if (!st) {
        return st.err();
    }
    fmt::print(out, "{} verified, {} failed, {} unsigned\n", sum.verified, sum.failed, sum.unsigned_frames);
    return sum;
}

result<edit_summary> sign(const std::string& sa_file, uint8_t spp, uint32_t key_id, const std::string& in_path,
                          const std::string& out_path, std::ostream& log, const options& opt) {
    auto sas = install_sa_file(sa_file, opt);
    if (!sas) {
        return sas.err();
    }
    security_association* sa = sas->sad.find(spp);
    if (sa == nullptr) {
        return error{fmt::format("{}: no security association with spp {}", sa_file, spp)};
    }
    if (sa->find_key(key_id) == nullptr) {
        return error{fmt::format("{}: spp {} has no key with id {}", sa_file, spp, key_id)};
    }
    auto in = open_ethernet(in_path);
    if (!in) {
        return in.err();
    }
    auto w = open_out(in->get(), out_path);
    if (!w) {
        return w.err();
    }
    icv::gmac_iv_counter iv(icv::gmac_iv_counter::clock_start());
    signer s(*sas->eng, sas->sad, iv, opt.wire);
    edit_summary sum;
    std::vector<uint8_t> buf;
    auto st = for_each_packet(in->get(), in_path, [&](const pcap_pkthdr& h, const u_char* data) -> status {
        ++sum.frames;
        buf.assign(data, data + h.caplen);
        buf.resize(h.caplen + tlv_headroom);
        ptp::frame_buf f{buf.data(), h.caplen, static_cast<uint32_t>(buf.size())};
        frame_outcome o;
        s.sign_burst(&f, 1, spp, key_id, &o);
        const auto ss = static_cast<sign_status>(o.status);
        if (ss != sign_status::not_ptp) {
            ++sum.ptp;
        }
        if (ss == sign_status::signed_ok) {
            ++sum.changed;
        } else if (ss == sign_status::already_signed) {
            ++sum.unchanged;
        } else if (ss != sign_status::not_ptp && ss != sign_status::already_signed) {
            ++sum.failed;
            fmt::print(log, "#{}: not signed: {}{}\n", sum.frames, sign_status_name(ss),
                       o.cause != ptp::error::none ? fmt::format(" ({})", ptp::error_text(o.cause)) : "");
        }
        pcap_pkthdr oh = h;
        oh.caplen = f.len;
        // A frame copied whole keeps its original length; an edited one is whole by construction.
        oh.len = ss == sign_status::signed_ok ? f.len : h.len;
        pcap_dump(reinterpret_cast<u_char*>(w->dump.get()), &oh, f.data);
        return ok_status();
    });
    if (!st) {
        return st.err();
    }
    if (pcap_dump_flush(w->dump.get()) != 0) {
        return error{fmt::format("{}: write failed", out_path)};
    }
    return sum;
}

result<edit_summary> strip(const std::string& in_path, const std::string& out_path, std::ostream& log,
                           const options& opt) {
    auto in = open_ethernet(in_path);
    if (!in) {
        return in.err();
    }
    auto w = open_out(in->get(), out_path);
    if (!w) {
        return w.err();
    }
    edit_summary sum;
    std::vector<uint8_t> buf;
    auto st = for_each_packet(in->get(), in_path, [&](const pcap_pkthdr& h, const u_char* data) -> status {
        ++sum.frames;
        buf.assign(data, data + h.caplen);
        ptp::frame_buf f{buf.data(), h.caplen, h.caplen};
        pcap_pkthdr oh = h;
        ptp::frame_info fi;
        ptp::message_view mv;
        const ptp::error fe = ptp::classify_frame(f.data, f.len, fi);
        if (fe != ptp::error::not_ptp) {
            ++sum.ptp;
            ptp::error e = fe;
            if (e == ptp::error::none) {
                e = ptp::parse_message(f.data + fi.ptp_offset, fi.ptp_avail, mv, opt.wire);
            }
            if (e == ptp::error::none && !mv.has_auth) {
                ++sum.unchanged;
            }
            if (e == ptp::error::none && mv.has_auth) {
                e = ptp::strip_auth_tlv(f, fi, mv);
                if (e == ptp::error::none) {
                    ++sum.changed;
                    oh.caplen = f.len;
                    oh.len = f.len;
                }
            }
            if (e != ptp::error::none) {
                ++sum.failed;
                fmt::print(log, "#{}: not stripped: {}\n", sum.frames, ptp::error_text(e));
            }
        }
        pcap_dump(reinterpret_cast<u_char*>(w->dump.get()), &oh, f.data);
        return ok_status();
    });
    if (!st) {
        return st.err();
    }
    if (pcap_dump_flush(w->dump.get()) != 0) {
        return error{fmt::format("{}: write failed", out_path)};
    }
    return sum;
}

} // namespace ptpsec::pcap_tool
