// control/nts/record: the RFC 8915 record framing and the body of every
// record of seeds/001 Table 12, checked against bytes written out from the
// draft's tables, plus the refusal of every malformed body with a message
// that names the record and the field.

#include <control/nts/record.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ptpsec::nts {
namespace {

using bytes = std::vector<uint8_t>;

template <typename T>
void expect_bad_request(const parse_result<T>& r, std::initializer_list<std::string_view> words) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.code(), error_code::bad_request) << r.message();
    for (const std::string_view w : words) {
        EXPECT_NE(r.message().find(w), std::string::npos) << "'" << w << "' not in: " << r.message();
    }
}

bytes written(const auto& append) {
    bytes out;
    record_writer w(out);
    append(w);
    return out;
}

// --- Framing ------------------------------------------------------------------

TEST(nts_record, reader_walks_records_and_reads_the_critical_bit) {
    const bytes msg = {
        0x80, 0x01, 0x00, 0x02, 0x00, 0x01, // C=1, type 1, length 2, body 0001
        0x04, 0x02, 0x00, 0x02, 0x03, 0x84, // C=0, type 1026, length 2, body 0384
        0x80, 0x00, 0x00, 0x00,             // C=1, type 0, length 0
    };
    record_reader reader(msg, "test");
    auto a = reader.next();
    ASSERT_TRUE(a) << a.message();
    EXPECT_TRUE(a->critical);
    EXPECT_EQ(a->type, 1);
    EXPECT_EQ(a->offset, 0U);
    ASSERT_EQ(a->body.size(), 2U);
    EXPECT_EQ(a->body[1], 0x01);
    auto b = reader.next();
    ASSERT_TRUE(b) << b.message();
    EXPECT_FALSE(b->critical);
    EXPECT_EQ(b->type, 1026);
    EXPECT_EQ(b->offset, 6U);
    auto c = reader.next();
    ASSERT_TRUE(c) << c.message();
    EXPECT_EQ(c->type, 0);
    EXPECT_TRUE(c->body.empty());
    EXPECT_TRUE(reader.at_end());
}

TEST(nts_record, reader_refuses_a_cut_header) {
    const bytes msg = {0x80, 0x01, 0x00, 0x02, 0x00, 0x01, 0x80, 0x00, 0x00};
    record_reader reader(msg, "PTP Key Request");
    ASSERT_TRUE(reader.next());
    auto r = reader.next();
    expect_bad_request(r, {"PTP Key Request", "record header at offset 6", "3 octets left, 4 needed"});
}

TEST(nts_record, reader_refuses_a_body_past_the_end) {
    // Validity Period claims 12 octets, 10 follow.
    const bytes msg = {0x84, 0x0d, 0x00, 0x0c, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0};
    record_reader reader(msg, "Current Parameters");
    auto r = reader.next();
    expect_bad_request(r, {"Validity Period in Current Parameters", "Body Length 12", "10 octets left"});
}

TEST(nts_record, writer_sets_header_and_patches_container_length) {
    const bytes out = written([](record_writer& w) {
        const size_t mark = w.open(record_type::current_parameters, true);
        append_ticket_key_id(w, 278);
        w.close(mark);
        w.append(uint16_t{2000}, false, bytes{0xaa});
    });
    const bytes want = {
        0x84, 0x01, 0x00, 0x08,                         // Current Parameters, C, 8 octets
        0x84, 0x0c, 0x00, 0x04, 0x00, 0x00, 0x01, 0x16, //   Ticket Key ID 278
        0x07, 0xd0, 0x00, 0x01, 0xaa,                   // type 2000, no C, 1 octet
    };
    EXPECT_EQ(out, want);
}

TEST(nts_record, critical_bit_policy_follows_the_draft) {
    // MUST be set.
    EXPECT_TRUE(critical_required(record_type::end_of_message));
    EXPECT_TRUE(critical_required(record_type::error));
    EXPECT_TRUE(critical_required(record_type::next_protocol_negotiation));
    EXPECT_TRUE(critical_required(record_type::nts_message_type));
    EXPECT_FALSE(critical_required(record_type::validity_period));
    // SHOULD NOT be set (§4.2.6, §4.2.13), MUST NOT (RFC 8915 §4.1.6).
    EXPECT_FALSE(default_critical(record_type::heartbeat_timeout));
    EXPECT_FALSE(default_critical(record_type::status));
    EXPECT_FALSE(default_critical(record_type::new_cookie));
    EXPECT_TRUE(default_critical(record_type::security_association));
    // ptpsec's own record: a server that does not check it may ignore it.
    EXPECT_FALSE(default_critical(record_type::platform_attestation));
}

TEST(nts_record, names_and_registry_ranges) {
    EXPECT_EQ(record_name(record_type::validity_period), "Validity Period");
    EXPECT_EQ(record_name(uint16_t{1038}), "record type 1038");
    for (uint16_t t = 0; t <= 7; ++t) {
        EXPECT_TRUE(is_known_record(t)) << t;
    }
    for (uint16_t t = 1024; t <= 1037; ++t) {
        EXPECT_TRUE(is_known_record(t)) << t;
        EXPECT_EQ(record_name(t).find("record type"), std::string::npos) << t; // a name of Table 12
    }
    EXPECT_FALSE(is_known_record(8));
    EXPECT_FALSE(is_known_record(1023));
    EXPECT_FALSE(is_known_record(1038));
    // ptpsec's Platform Attestation sits in RFC 8915's private range, outside Table 12.
    EXPECT_EQ(static_cast<uint16_t>(record_type::platform_attestation), 0x5041);
    EXPECT_FALSE(is_known_record(0x5041));
    EXPECT_EQ(record_name(record_type::platform_attestation), "Platform Attestation");
    EXPECT_TRUE(is_ntp_only_record(3));
    EXPECT_TRUE(is_ntp_only_record(5));
    EXPECT_TRUE(is_ntp_only_record(7));
    EXPECT_FALSE(is_ntp_only_record(4));
    EXPECT_EQ(error_name(error_code::grantor_not_registered), "Grantor not Registered");
    EXPECT_EQ(error_name(static_cast<error_code>(40000)), "error code 40000");
}

// --- RFC 8915 records --------------------------------------------------------------

TEST(nts_record, end_of_message_has_an_empty_body) {
    EXPECT_TRUE(decode_end_of_message({}));
    expect_bad_request(decode_end_of_message(bytes{0}), {"End of Message", "1 octets, 0 expected"});
    EXPECT_EQ(written([](record_writer& w) { append_end_of_message(w); }), (bytes{0x80, 0x00, 0x00, 0x00}));
}

TEST(nts_record, next_protocols_list) {
    const bytes body = {0x00, 0x01, 0x00, 0x00}; // PTPv2.1, NTPv4
    auto r = decode_next_protocols(body);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(*r, (std::vector<next_protocol>{next_protocol::ptpv2_1, next_protocol::ntpv4}));
    expect_bad_request(decode_next_protocols(bytes{0, 1, 0}, "PTP Key Request"),
                       {"NTS Next Protocol Negotiation in PTP Key Request", "3 octets", "16-bit"});
    const bytes too_long(2 * (max_list_entries + 1), 0);
    expect_bad_request(decode_next_protocols(too_long), {"NTS Next Protocol Negotiation", "33 entries, at most 32"});
    EXPECT_EQ(written([&](record_writer& w) { append_next_protocols(w, *r); }),
              (bytes{0x80, 0x01, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00}));
}

TEST(nts_record, error_and_warning_codes) {
    auto e = decode_error(bytes{0x00, 0x04});
    ASSERT_TRUE(e);
    EXPECT_EQ(*e, error_code::grantor_not_registered);
    auto private_code = decode_error(bytes{0x80, 0x01});
    ASSERT_TRUE(private_code);
    EXPECT_EQ(static_cast<uint16_t>(*private_code), 0x8001);
    expect_bad_request(decode_error(bytes{0x00}), {"Error", "1 octets, 2 expected"});
    EXPECT_EQ(written([](record_writer& w) { append_error(w, error_code::not_authorized); }),
              (bytes{0x80, 0x02, 0x00, 0x02, 0x00, 0x03}));
    auto warn = decode_warning(bytes{0x00, 0x07});
    ASSERT_TRUE(warn);
    EXPECT_EQ(*warn, 7);
    expect_bad_request(decode_warning(bytes{}), {"Warning", "0 octets, 2 expected"});
    EXPECT_EQ(written([](record_writer& w) { append_warning(w, 7); }), (bytes{0x80, 0x03, 0x00, 0x02, 0x00, 0x07}));
}

TEST(nts_record, aead_algorithm_list) {
    const bytes body = {0x00, 0x11, 0x00, 0x0f}; // Table 6 example {AEAD_512 || AEAD_256}
    auto r = decode_aead_algorithms(body);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, (std::vector<aead_algorithm>{aead_algorithm::aes_siv_cmac_512, aead_algorithm::aes_siv_cmac_256}));
    EXPECT_EQ(aead_key_length(aead_algorithm::aes_siv_cmac_256), 32U);
    EXPECT_EQ(aead_key_length(aead_algorithm::aes_siv_cmac_384), 48U);
    EXPECT_EQ(aead_key_length(aead_algorithm::aes_siv_cmac_512), 64U);
    EXPECT_FALSE(aead_key_length(static_cast<aead_algorithm>(1)));
    expect_bad_request(decode_aead_algorithms(bytes{0x00}), {"AEAD Algorithm Negotiation", "1 octets"});
}

TEST(nts_record, ntp_only_records) {
    auto cookie = decode_new_cookie(bytes{1, 2, 3});
    ASSERT_TRUE(cookie);
    EXPECT_EQ(*cookie, (bytes{1, 2, 3}));
    EXPECT_EQ(written([](record_writer& w) { append_new_cookie(w, bytes{9}); }),
              (bytes{0x00, 0x05, 0x00, 0x01, 0x09})); // critical bit clear

    const std::string host = "ntp.example.net";
    auto server = decode_ntpv4_server(bytes(host.begin(), host.end()));
    ASSERT_TRUE(server);
    EXPECT_EQ(*server, host);
    expect_bad_request(decode_ntpv4_server(bytes{'a', ' ', 'b'}), {"NTPv4 Server Negotiation", "octet 1", "0x20"});
    expect_bad_request(decode_ntpv4_server(bytes{}), {"NTPv4 Server Negotiation", "empty"});
    const bytes server_record = written([&](record_writer& w) { append_ntpv4_server(w, host); });
    EXPECT_EQ(server_record.size(), 4 + host.size());
    EXPECT_EQ(server_record[1], 0x06);

    auto port = decode_ntpv4_port(bytes{0x00, 0x7b});
    ASSERT_TRUE(port);
    EXPECT_EQ(*port, 123);
    expect_bad_request(decode_ntpv4_port(bytes{0x00}), {"NTPv4 Port Negotiation", "1 octets, 2 expected"});
    EXPECT_EQ(written([](record_writer& w) { append_ntpv4_port(w, 123); }),
              (bytes{0x80, 0x07, 0x00, 0x02, 0x00, 0x7b}));
}

// --- Association Mode (§4.2.2) --------------------------------------------------------

TEST(nts_record, association_group_layout_of_table_16) {
    const bytes body = {
        0x00, 0x00, // Association Type 0 (Group)
        0x2c,       // domainNumber 44
        0x01,       // 4 bits zero padding || majorSdoId 1
        0x23,       // minorSdoId 0x23 -> sdoId 0x123
        0x00, 0x05, // subGroup 5
    };
    auto r = decode_association_mode(body);
    ASSERT_TRUE(r) << r.message();
    ASSERT_TRUE(std::holds_alternative<group_number>(*r));
    const auto& g = std::get<group_number>(*r);
    EXPECT_EQ(g.domain_number, 44);
    EXPECT_EQ(g.sdo_id, 0x123);
    EXPECT_EQ(g.sub_group, 5);
    EXPECT_EQ(type_of(*r), association_type::group);
    const bytes record = written([&](record_writer& w) { append_association_mode(w, *r); });
    EXPECT_EQ(record, (bytes{0x84, 0x00, 0x00, 0x07, 0x00, 0x00, 0x2c, 0x01, 0x23, 0x00, 0x05}));
}

TEST(nts_record, association_group_padding_must_be_zero) {
    const bytes body = {0x00, 0x00, 0x2c, 0x31, 0x23, 0x00, 0x05};
    expect_bad_request(decode_association_mode(body, "PTP Key Request"),
                       {"Association Mode in PTP Key Request", "padding", "0x30"});
}

TEST(nts_record, association_unicast_types_and_their_lengths) {
    struct sample {
        bytes body;
        association_type type;
    };
    const std::vector<sample> good = {
        {{0x00, 0x01, 192, 0, 2, 1}, association_type::ipv4},
        {{0x00, 0x02, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, association_type::ipv6},
        {{0x00, 0x03, 0x00, 0x1b, 0x19, 0x00, 0x00, 0x01}, association_type::ieee802_3},
        {{0x00, 0x04, 0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, 0x01, 0x00, 0x02}, association_type::port_identity},
    };
    for (const sample& s : good) {
        auto r = decode_association_mode(s.body);
        ASSERT_TRUE(r) << r.message();
        EXPECT_EQ(type_of(*r), s.type);
        const bytes record = written([&](record_writer& w) { append_association_mode(w, *r); });
        EXPECT_EQ(bytes(record.begin() + 4, record.end()), s.body);
    }
    auto decoded = decode_association_mode(good[3].body);
    ASSERT_TRUE(decoded);
    const auto& pid = std::get<port_identity>(*decoded);
    EXPECT_EQ(pid.clock_identity[3], 0xff);
    EXPECT_EQ(pid.port_number, 2);
}

TEST(nts_record, association_value_length_must_match_its_type) {
    // IPv4 with 6 octets (a MAC address's length).
    expect_bad_request(decode_association_mode(bytes{0x00, 0x01, 1, 2, 3, 4, 5, 6}, "PTP Key Request"),
                       {"Association Mode in PTP Key Request", "IPv4 value: 6 octets, 4 expected"});
    expect_bad_request(decode_association_mode(bytes{0x00, 0x04, 1, 2, 3, 4, 5, 6, 7, 8, 9}),
                       {"Association Mode", "PortIdentity value: 9 octets, 10 expected"});
    expect_bad_request(decode_association_mode(bytes{0x00, 0x00, 1, 2, 3, 4}),
                       {"Association Mode", "Group value: 4 octets, 5 expected"});
    expect_bad_request(decode_association_mode(bytes{0x00}), {"Association Mode", "Association Type", "2 needed"});
}

TEST(nts_record, association_type_outside_table_15_is_refused) {
    expect_bad_request(decode_association_mode(bytes{0x00, 0x05, 1, 2, 3, 4}),
                       {"Association Mode", "Association Type 5 unknown"});
    expect_bad_request(decode_association_mode(bytes{0x80, 0x00, 1}), {"Association Type 32768 unknown"});
}

// --- PTP Time Server (§4.2.10) ----------------------------------------------------------

TEST(nts_record, ptp_time_server_lists_addresses) {
    const bytes body = {
        0x00, 0x01, 192,  0,    2,    10,                                       // IPv4 192.0.2.10
        0x00, 0x03, 0x00, 0x1b, 0x19, 0x00, 0x00, 0x0a,                         // 802.3 00:1b:19:00:00:0a
        0x00, 0x04, 0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, 0x0a, 0x00, 0x01, // PortIdentity, port 1
    };
    auto r = decode_ptp_time_server(body);
    ASSERT_TRUE(r) << r.message();
    ASSERT_EQ(r->addresses.size(), 3U);
    EXPECT_EQ(std::get<ipv4_address>(r->addresses[0]).octets[3], 10);
    EXPECT_EQ(type_of(r->addresses[1]), association_type::ieee802_3);
    EXPECT_EQ(std::get<port_identity>(r->addresses[2]).port_number, 1);
    const bytes record = written([&](record_writer& w) { append_ptp_time_server(w, *r); });
    EXPECT_EQ(bytes(record.begin() + 4, record.end()), body);
    EXPECT_EQ(record[0], 0x84);
    EXPECT_EQ(record[1], 0x05);
}

TEST(nts_record, ptp_time_server_refusals) {
    expect_bad_request(decode_ptp_time_server(bytes{}, "Current Parameters"),
                       {"PTP Time Server in Current Parameters", "no entries"});
    expect_bad_request(decode_ptp_time_server(bytes{0x00, 0x00, 1, 0, 0, 0, 0}),
                       {"PTP Time Server", "entry 1", "Group (0) is not allowed"});
    expect_bad_request(decode_ptp_time_server(bytes{0x00, 0x01, 1, 2, 3, 4, 0x00, 0x01, 5, 6, 7, 8}),
                       {"PTP Time Server", "entry 2", "IPv4 (1) twice"});
    expect_bad_request(decode_ptp_time_server(bytes{0x00, 0x01, 1, 2, 3, 4, 0x00, 0x02, 5, 6, 7, 8}),
                       {"PTP Time Server", "entry 2", "IPv6 value: 4 octets left, 16 expected"});
    expect_bad_request(decode_ptp_time_server(bytes{0x00, 0x01, 1, 2, 3, 4, 0x00}),
                       {"PTP Time Server", "entry 2", "Association Type", "1 octets left, 2 needed"});
}

// --- NTS-KE / NTS-TSR records of seeds/001 ----------------------------------------------

TEST(nts_record, heartbeat_timeout_and_message_type) {
    auto t = decode_heartbeat_timeout(bytes{0x03, 0x84});
    ASSERT_TRUE(t);
    EXPECT_EQ(*t, 900);
    expect_bad_request(decode_heartbeat_timeout(bytes{0x03}), {"Heartbeat Timeout", "1 octets, 2 expected"});
    EXPECT_EQ(written([](record_writer& w) { append_heartbeat_timeout(w, 900); }),
              (bytes{0x04, 0x02, 0x00, 0x02, 0x03, 0x84}));

    // Table 21: Message Type (2) || major (1) || minor (1); v1.4 = 0104h.
    auto m = decode_nts_message_type(bytes{0x00, 0x03, 0x01, 0x04});
    ASSERT_TRUE(m);
    EXPECT_EQ(m->type, nts_message_type::heartbeat);
    EXPECT_EQ(m->version_major, 1);
    EXPECT_EQ(m->version_minor, 4);
    expect_bad_request(decode_nts_message_type(bytes{0, 3, 1}), {"NTS Message Type", "3 octets, 4 expected"});
    EXPECT_EQ(written([](record_writer& w) {
                  append_nts_message_type(w, {nts_message_type::registration_revoke, 1, 0});
              }),
              (bytes{0x84, 0x04, 0x00, 0x04, 0x00, 0x02, 0x01, 0x00}));
}

TEST(nts_record, security_association_layout_of_table_23) {
    const bytes body = {
        0x02,                   // Security Parameter Pointer 2
        0x00, 0x02,             // Integrity Algorithm Type 2 (AES-CMAC)
        0x00, 0x00, 0x01, 0x00, // Key ID 256
        0x00, 0x10,             // Key Length 16
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
    };
    auto r = decode_security_association(body);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->spp, 2);
    EXPECT_EQ(r->integrity_algorithm, mac_algorithm::aes_cmac);
    EXPECT_EQ(r->key_id, 256U);
    ASSERT_EQ(r->key.size(), 16U);
    EXPECT_EQ(r->key[15], 0x0f);
    EXPECT_EQ(to_icv_algorithm(r->integrity_algorithm, r->key.size()), icv::algorithm::aes_cmac_128);
    const bytes record = written([&](record_writer& w) { append_security_association(w, *r); });
    EXPECT_EQ(bytes(record.begin() + 4, record.end()), body);
    EXPECT_EQ(record[3], body.size());
}

TEST(nts_record, security_association_refusals) {
    expect_bad_request(decode_security_association(bytes{2, 0, 0, 0, 0, 0, 1, 0}, "Next Parameters"),
                       {"Security Association in Next Parameters", "8 octets, at least 9 expected"});
    expect_bad_request(decode_security_association(bytes{2, 0, 0, 0, 0, 0, 1, 0, 0}), {"Key Length 0"});
    expect_bad_request(decode_security_association(bytes{2, 0, 0, 0, 0, 0, 1, 0, 4, 1, 2, 3}),
                       {"Security Association", "Key Length 4 but 3 octets of Key follow"});
    expect_bad_request(decode_security_association(bytes{2, 0, 0, 0, 0, 0, 1, 0, 1, 1, 2}),
                       {"Key Length 1 but 2 octets"});
}

TEST(nts_record, source_port_identity_is_ten_octets) {
    const bytes body = {0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, 0x01, 0x00, 0x03};
    auto r = decode_source_port_identity(body);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->clock_identity[0], 0x00);
    EXPECT_EQ(r->clock_identity[7], 0x01);
    EXPECT_EQ(r->port_number, 3);
    expect_bad_request(decode_source_port_identity(bytes(11, 0), "PTP Registration Revoke"),
                       {"Source PortIdentity in PTP Registration Revoke", "11 octets, 10 expected"});
}

TEST(nts_record, status_of_table_24) {
    auto load = decode_status(bytes{0x00, 0x00, 0x0f}); // grantor load 15 %
    ASSERT_TRUE(load);
    EXPECT_EQ(load->type, status_type::grantor_load);
    EXPECT_EQ(load->data, bytes{15});
    auto vendor = decode_status(bytes{0x80, 0x00, 1, 2, 3}); // private range: any data
    ASSERT_TRUE(vendor);
    EXPECT_EQ(vendor->data.size(), 3U);
    auto over = decode_status(bytes{0x00, 0x00, 200}); // > 100 %: decoded, the server ignores it
    ASSERT_TRUE(over);
    expect_bad_request(decode_status(bytes{0x00, 0x00, 1, 2}),
                       {"Status", "Status Type 0 (grantor load): 2 octets of Status Data, 1 expected"});
    expect_bad_request(decode_status(bytes{0x00}), {"Status", "1 octets, at least 2 expected"});
    EXPECT_EQ(written([&](record_writer& w) { append_status(w, *load); }),
              (bytes{0x04, 0x08, 0x00, 0x03, 0x00, 0x00, 0x0f}));
}

TEST(nts_record, mac_algorithms_and_the_icv_mapping) {
    auto r = decode_mac_algorithms(bytes{0x00, 0x02, 0x00, 0x00}); // Table 6 example {CMAC || HMAC}
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, (std::vector<mac_algorithm>{mac_algorithm::aes_cmac, mac_algorithm::hmac_sha256_128}));
    expect_bad_request(decode_mac_algorithms(bytes{0, 0, 0}), {"Supported MAC Algorithms", "3 octets"});

    // Table 26 numbers; AES-CMAC-256 is type 2 with a 32-octet key.
    EXPECT_EQ(to_icv_algorithm(mac_algorithm::hmac_sha256_128, 32), icv::algorithm::hmac_sha256_128);
    EXPECT_EQ(to_icv_algorithm(mac_algorithm::hmac_sha256, 32), icv::algorithm::hmac_sha256);
    EXPECT_EQ(to_icv_algorithm(mac_algorithm::aes_cmac, 16), icv::algorithm::aes_cmac_128);
    EXPECT_EQ(to_icv_algorithm(mac_algorithm::aes_cmac, 32), icv::algorithm::aes_cmac_256);
    EXPECT_FALSE(to_icv_algorithm(mac_algorithm::aes_cmac, 24));
    EXPECT_EQ(to_icv_algorithm(mac_algorithm::aes_gmac_192, 24), icv::algorithm::aes_gmac_192);
    EXPECT_FALSE(to_icv_algorithm(static_cast<mac_algorithm>(6), 32));
    for (const icv::algorithm_info& a : icv::all_algorithms()) {
        const size_t key_len = a.key_len != 0 ? a.key_len : 32;
        EXPECT_EQ(to_icv_algorithm(to_mac_algorithm(a.alg), key_len), a.alg) << a.name;
    }
    EXPECT_EQ(to_mac_algorithm(icv::algorithm::aes_cmac_256), mac_algorithm::aes_cmac);
    EXPECT_EQ(to_mac_algorithm(icv::algorithm::aes_gmac_256), mac_algorithm::aes_gmac_256);
}

TEST(nts_record, ticket_layout_of_table_27) {
    const bytes body = {
        0x00, 0x00, 0x01, 0x16,                                     // Ticket Key ID 278
        0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, 0x01, 0x00, 0x01, // Source PortIdentity
        0x00, 0x04,                                                 // Nonce Length 4 (offset 14)
        0xa0, 0xa1, 0xa2, 0xa3,                                     // Nonce (offset 16)
        0x00, 0x03,                                                 // Encrypted SA Length 3 (offset N+16)
        0xe0, 0xe1, 0xe2,                                           // Encrypted SA (offset N+18)
    };
    auto r = decode_ticket(body);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->ticket_key_id, 278U);
    EXPECT_EQ(r->source_port_identity.port_number, 1);
    EXPECT_EQ(r->nonce, (bytes{0xa0, 0xa1, 0xa2, 0xa3}));
    EXPECT_EQ(r->encrypted_sa, (bytes{0xe0, 0xe1, 0xe2}));
    const bytes record = written([&](record_writer& w) { append_ticket(w, *r); });
    EXPECT_EQ(bytes(record.begin() + 4, record.end()), body);
    EXPECT_EQ(record[1], 0x0a); // 1034 = 0x040a
}

TEST(nts_record, ticket_lengths_must_account_for_the_body) {
    bytes body = {0, 0,    1,    0x16, 0,    0x1b, 0x19, 0xff, 0xfe, 0,    0,    1,   0,
                  1, 0x00, 0x04, 0xa0, 0xa1, 0xa2, 0xa3, 0x00, 0x03, 0xe0, 0xe1, 0xe2};
    body[15] = 0x08; // Nonce Length 8: runs into the Encrypted SA
    expect_bad_request(decode_ticket(body, "Current Parameters"),
                       {"Ticket in Current Parameters", "Nonce Length 8 but 7 octets follow"});
    body[15] = 0x04;
    body[21] = 0x02; // Encrypted SA Length 2, 3 follow
    expect_bad_request(decode_ticket(body), {"Ticket", "Encrypted SA Length 2 but 3 octets follow"});
    expect_bad_request(decode_ticket(bytes(17, 0)), {"Ticket", "17 octets, at least 18 expected"});
    // Empty nonce and ciphertext are structurally fine (the AEAD layer judges them).
    EXPECT_TRUE(decode_ticket(bytes(18, 0)));
}

TEST(nts_record, ticket_key_and_id) {
    auto key = decode_ticket_key(bytes{1, 2, 3});
    ASSERT_TRUE(key);
    EXPECT_EQ(key->size(), 3U);
    expect_bad_request(decode_ticket_key(bytes{}, "Next Parameters"), {"Ticket Key in Next Parameters", "empty"});
    auto id = decode_ticket_key_id(bytes{0x00, 0x00, 0x01, 0x16});
    ASSERT_TRUE(id);
    EXPECT_EQ(*id, 278U);
    expect_bad_request(decode_ticket_key_id(bytes{1, 2}), {"Ticket Key ID", "2 octets, 4 expected"});
    EXPECT_EQ(written([](record_writer& w) {
                  append_ticket_key(w, bytes{7, 7});
              }),
              (bytes{0x84, 0x0b, 0x00, 0x02, 0x07, 0x07}));
}

TEST(nts_record, platform_attestation_layout) {
    // One field per line.
    // clang-format off
    const bytes body = {
        0x00, 0x03, 'g', 'm', '1', // Signer ID Length 3, Signer ID
        0x00, 0x02, 0xff, 0x54,    // Attest Length 2, Attest (TPM_GENERATED's first octets)
        0x00, 0x04, 1, 2, 3, 4,    // Signature Length 4, Signature
    };
    // clang-format on
    auto r = decode_platform_attestation(body);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->signer_id, "gm1");
    EXPECT_EQ(r->attest, (bytes{0xff, 0x54}));
    EXPECT_EQ(r->signature, (bytes{1, 2, 3, 4}));
    const bytes record = written([&](record_writer& w) { append_platform_attestation(w, *r); });
    EXPECT_EQ(bytes(record.begin(), record.begin() + 4), (bytes{0x50, 0x41, 0x00, 0x0f})); // not critical
    EXPECT_EQ(bytes(record.begin() + 4, record.end()), body);
}

TEST(nts_record, platform_attestation_refusals) {
    const bytes good = {0x00, 0x03, 'g', 'm', '1', 0x00, 0x02, 0xff, 0x54, 0x00, 0x04, 1, 2, 3, 4};
    auto with = [&](size_t at, uint8_t v) {
        bytes b = good;
        b[at] = v;
        return b;
    };
    expect_bad_request(decode_platform_attestation(bytes{}, "PTP Key Request"),
                       {"Platform Attestation in PTP Key Request", "ends at octet 0, before Signer ID Length"});
    expect_bad_request(decode_platform_attestation(with(1, 0)), {"Signer ID Length 0, 1 to 255 allowed"});
    expect_bad_request(decode_platform_attestation(with(1, 0x20)), {"Signer ID Length 32 but 13 octets follow"});
    expect_bad_request(decode_platform_attestation(with(3, 0x0a)), {"Signer ID holds the control character 0x0a"});
    expect_bad_request(decode_platform_attestation(with(5, 0x04)), {"Attest Length 1026, 1 to 1024 allowed"});
    expect_bad_request(decode_platform_attestation(with(10, 0x05)), {"Signature Length 5 but 4 octets follow"});
    expect_bad_request(decode_platform_attestation(bytes(good.begin(), good.begin() + 9)),
                       {"ends at octet 9, before Signature Length"});
    bytes trailing = good;
    trailing.push_back(0);
    expect_bad_request(decode_platform_attestation(trailing), {"1 octets after the Signature"});
}

TEST(nts_record, validity_period_layout_of_table_28) {
    const bytes body = {
        0x00, 0x00, 0x06, 0x18, // Lifetime 1560 s (Table 5 example)
        0x00, 0x00, 0x01, 0x2c, // Update Period 300 s
        0x00, 0x00, 0x00, 0x03, // Grace Period 3 s
    };
    auto r = decode_validity_period(body);
    ASSERT_TRUE(r);
    EXPECT_EQ(*r, (validity_period{1560, 300, 3}));
    const bytes record = written([&](record_writer& w) { append_validity_period(w, *r); });
    EXPECT_EQ(record,
              (bytes{0x84, 0x0d, 0x00, 0x0c, 0x00, 0x00, 0x06, 0x18, 0x00, 0x00, 0x01, 0x2c, 0x00, 0x00, 0x00, 0x03}));
}

TEST(nts_record, validity_period_refusals) {
    expect_bad_request(decode_validity_period(bytes(10, 0), "Current Parameters"),
                       {"Validity Period in Current Parameters: 10 octets, 12 expected"});
    // §4.2.18: Grace Period not greater than Update Period.
    const bytes grace_too_long = {0, 0, 0x06, 0x18, 0, 0, 0, 2, 0, 0, 0, 3};
    expect_bad_request(decode_validity_period(grace_too_long),
                       {"Validity Period", "Grace Period 3 s greater than Update Period 2 s"});
    // Update Period above the (remaining) Lifetime: the update period has begun, fine here.
    const bytes in_update = {0, 0, 0, 100, 0, 0, 0x01, 0x2c, 0, 0, 0, 3};
    EXPECT_TRUE(decode_validity_period(in_update));
}

} // namespace
} // namespace ptpsec::nts
