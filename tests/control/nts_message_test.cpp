// control/nts/message: the six NTS4PTP messages of seeds/001 §3. Bytes
// written out from Tables 2-11 parse to the expected structs and build back
// to the same bytes; every message kind and both containers survive build ->
// parse; every rule of §3 and §4 has a test that sends the bad message and
// checks the error code to answer with and that the message names the record.

#include <control/nts/message.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ptpsec::nts {
namespace {

using bytes = std::vector<uint8_t>;

constexpr uint16_t C = 0x8000; // critical bit

/// A record: header (C | type, Body Length) and body.
bytes rec(uint16_t c_type, const bytes& body) {
    bytes out = {static_cast<uint8_t>(c_type >> 8), static_cast<uint8_t>(c_type),
                 static_cast<uint8_t>(body.size() >> 8), static_cast<uint8_t>(body.size())};
    out.insert(out.end(), body.begin(), body.end());
    return out;
}

bytes cat(std::initializer_list<bytes> parts) {
    bytes out;
    for (const bytes& p : parts) {
        out.insert(out.end(), p.begin(), p.end());
    }
    return out;
}

template <typename T>
void expect_refused(const parse_result<T>& r, error_code code, std::initializer_list<std::string_view> words) {
    ASSERT_FALSE(r.ok()) << "accepted";
    EXPECT_EQ(r.code(), code) << r.message();
    for (const std::string_view w : words) {
        EXPECT_NE(r.message().find(w), std::string::npos) << "'" << w << "' not in: " << r.message();
    }
}

template <typename T>
void expect_bad_request(const parse_result<T>& r, std::initializer_list<std::string_view> words) {
    expect_refused(r, error_code::bad_request, words);
}

// Records used by the rejection tests.
const bytes eom = rec(C | 0, {});
const bytes npn_ptp = rec(C | 1, {0x00, 0x01});
const bytes assoc_group = rec(C | 1024, {0x00, 0x00, 0x2c, 0x01, 0x23, 0x00, 0x00});
const bytes assoc_ipv4 = rec(C | 1024, {0x00, 0x01, 192, 0, 2, 1});
const bytes source_pid = rec(C | 1031, {0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, 0x01, 0x00, 0x01});
const bytes sa_rec = rec(C | 1030, {0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x07, 0x00, 0x02, 0xaa, 0xbb});
const bytes validity_rec = rec(C | 1037, {0, 0, 0x06, 0x18, 0, 0, 0x01, 0x2c, 0, 0, 0, 3});
const bytes pts_rec = rec(C | 1029, {0x00, 0x01, 192, 0, 2, 10});
const bytes ticket_rec =
    rec(C | 1034, {0, 0, 1, 0x16, 0, 0x1b, 0x19, 0xff, 0xfe, 0, 0, 1, 0, 1, 0, 1, 0xa0, 0, 1, 0xe0});
const bytes msg_type_request = rec(C | 1028, {0x00, 0x00, 0x01, 0x00});
const bytes msg_type_response = rec(C | 1028, {0x00, 0x01, 0x01, 0x00});
const bytes msg_type_revoke = rec(C | 1028, {0x00, 0x02, 0x01, 0x00});
const bytes msg_type_heartbeat = rec(C | 1028, {0x00, 0x03, 0x01, 0x00});
const bytes aead_256 = rec(C | 4, {0x00, 0x0f});
const bytes macs_hmac = rec(C | 1033, {0x00, 0x00});
const bytes pts_with_pid = rec(C | 1029, {0x00, 0x04, 0x00, 0x1b, 0x19, 0xff, 0xfe, 0, 0, 0x0a, 0x00, 0x01});
const bytes ticket_key_id_rec = rec(C | 1036, {0, 0, 1, 0x16});
const bytes ticket_key_32 = rec(C | 1035, bytes(32, 0x55));

bytes key_container(uint16_t type, std::initializer_list<bytes> records) {
    return rec(C | type, cat(records));
}

// --- Sample messages, filled in field by field ----------------------------------

port_identity pid(uint8_t last, uint16_t port) {
    port_identity id;
    id.clock_identity = {0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, last};
    id.port_number = port;
    return id;
}

key_parameters tim_parameters(uint32_t key_id, uint32_t lifetime) {
    key_parameters p;
    p.sa = security_association{3, mac_algorithm::aes_gmac_128, key_id, secret_bytes(16, 0x42)};
    p.validity = validity_period{lifetime, 300, 3};
    unicast_parameters u;
    u.time_server.addresses = {ipv4_address{{192, 0, 2, 10}}, ipv6_address{{0x20, 0x01, 0x0d, 0xb8, 15, 0}},
                               mac_address{{0, 0x1b, 0x19, 0, 0, 0x0a}}, pid(0x0a, 1)};
    u.ticket = ticket{278, pid(1, 1), bytes(16, 0x11), bytes(16 + 9 + 16, 0xee)};
    p.unicast = std::move(u);
    return p;
}

registration_parameters reg_parameters(uint32_t id, aead_algorithm aead, size_t key_len) {
    return registration_parameters{aead, validity_period{14400, 480, 3}, id, secret_bytes(key_len, 0x33)};
}

// --- Bytes from the draft's tables -------------------------------------------------

TEST(nts_message, key_request_group_bytes_of_table_2) {
    const bytes wire = {
        0x80, 0x01, 0x00, 0x02, // NTS Next Protocol Negotiation (1), C, 2 octets
        0x00, 0x01,             //   PTPv2.1
        0x84, 0x00, 0x00, 0x07, // Association Mode (1024), C, 7 octets
        0x00, 0x00,             //   Association Type 0: Group
        0x2c,                   //   domainNumber 44
        0x01, 0x23,             //   zero padding, sdoId 0x123
        0x00, 0x00,             //   subGroup 0
        0x80, 0x00, 0x00, 0x00, // End of Message, C
    };
    auto r = parse_key_request(wire);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->next_protocols, std::vector<next_protocol>{next_protocol::ptpv2_1});
    EXPECT_FALSE(r->is_unicast());
    EXPECT_EQ(std::get<group_number>(r->association), (group_number{44, 0x123, 0}));
    EXPECT_FALSE(r->source_port_identity);
    EXPECT_FALSE(r->supported_mac_algorithms);
    EXPECT_EQ(build(*r), wire);
}

TEST(nts_message, key_request_unicast_bytes_of_table_2) {
    const bytes wire = {
        0x80, 0x01, 0x00, 0x02, 0x00, 0x01,             // NTS Next Protocol Negotiation: PTPv2.1
        0x84, 0x00, 0x00, 0x06,                         // Association Mode, 6 octets
        0x00, 0x01, 192,  0,    2,    1,                //   IPv4 192.0.2.1 (the grantor)
        0x84, 0x09, 0x00, 0x04,                         // Supported MAC Algorithms (1033), 4 octets
        0x00, 0x02, 0x00, 0x00,                         //   AES-CMAC, HMAC-SHA256-128
        0x84, 0x07, 0x00, 0x0a,                         // Source PortIdentity (1031), 10 octets
        0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, 0x01, //   clockIdentity
        0x00, 0x01,                                     //   portNumber 1
        0x80, 0x00, 0x00, 0x00,                         // End of Message
    };
    auto r = parse_key_request(wire);
    ASSERT_TRUE(r) << r.message();
    EXPECT_TRUE(r->is_unicast());
    EXPECT_EQ(std::get<ipv4_address>(r->association).octets, (std::array<uint8_t, 4>{192, 0, 2, 1}));
    ASSERT_TRUE(r->supported_mac_algorithms);
    EXPECT_EQ(*r->supported_mac_algorithms,
              (std::vector<mac_algorithm>{mac_algorithm::aes_cmac, mac_algorithm::hmac_sha256_128}));
    EXPECT_EQ(r->source_port_identity, pid(1, 1));
    EXPECT_EQ(build(*r), wire);
}

TEST(nts_message, key_response_group_bytes_of_tables_3_and_5) {
    const bytes wire = {
        0x80, 0x01, 0x00, 0x02, 0x00, 0x01, // NTS Next Protocol Negotiation: PTPv2.1
        0x84, 0x01, 0x00, 0x2d,             // Current Parameters (1025), 45 octets
        0x84, 0x06, 0x00, 0x19,             //   Security Association (1030), 25 octets
        0x02,                               //     SPP 2
        0x00, 0x00,                         //     HMAC-SHA256-128
        0x00, 0x00, 0x00, 0x07,             //     Key ID 7
        0x00, 0x10,                         //     Key Length 16
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
        0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x84, 0x0d, 0x00, 0x0c, //   Validity Period (1037), 12 octets
        0x00, 0x00, 0x06, 0x18,                                     //     Lifetime 1560 s (Table 5 example)
        0x00, 0x00, 0x01, 0x2c,                                     //     Update Period 300 s
        0x00, 0x00, 0x00, 0x03,                                     //     Grace Period 3 s
        0x80, 0x00, 0x00, 0x00,                                     // End of Message
    };
    auto r = parse_key_response(wire);
    ASSERT_TRUE(r) << r.message();
    ASSERT_FALSE(r->is_error());
    const key_grant& g = std::get<key_grant>(r->outcome);
    EXPECT_EQ(g.current.sa.spp, 2);
    EXPECT_EQ(g.current.sa.key_id, 7U);
    EXPECT_EQ(g.current.sa.key.size(), 16U);
    EXPECT_EQ(g.current.sa.key[0], 0x10);
    EXPECT_EQ(g.current.validity, (validity_period{1560, 300, 3}));
    EXPECT_FALSE(g.current.unicast);
    EXPECT_FALSE(g.next);
    EXPECT_EQ(build(*r), wire);
}

TEST(nts_message, key_response_error_bytes_of_table_4) {
    const bytes wire = {
        0x80, 0x01, 0x00, 0x02, 0x00, 0x01, // NTS Next Protocol Negotiation: PTPv2.1
        0x80, 0x02, 0x00, 0x02, 0x00, 0x03, // Error (2), C: Not Authorized (3)
        0x80, 0x00, 0x00, 0x00,             // End of Message
    };
    auto r = parse_key_response(wire);
    ASSERT_TRUE(r) << r.message();
    ASSERT_TRUE(r->is_error());
    EXPECT_EQ(std::get<error_code>(r->outcome), error_code::not_authorized);
    EXPECT_EQ(build(*r), wire);
    EXPECT_EQ(build_error_response(sub_protocol::nts_ke, error_code::not_authorized), wire);
}

TEST(nts_message, registration_request_bytes_of_table_6) {
    const bytes wire = {
        0x84, 0x04, 0x00, 0x04,                         // NTS Message Type (1028), 4 octets
        0x00, 0x00, 0x01, 0x00,                         //   PTP Registration Request, v1.0
        0x84, 0x05, 0x00, 0x12,                         // PTP Time Server (1029), 18 octets
        0x00, 0x01, 192,  0,    2,    10,               //   IPv4 192.0.2.10
        0x00, 0x04,                                     //   PortIdentity
        0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, 0x0a, //     clockIdentity
        0x00, 0x01,                                     //     portNumber 1
        0x80, 0x04, 0x00, 0x04,                         // AEAD Algorithm Negotiation (4), 4 octets
        0x00, 0x11, 0x00, 0x0f,                         //   {AEAD_512 || AEAD_256}
        0x84, 0x09, 0x00, 0x04,                         // Supported MAC Algorithms, 4 octets
        0x00, 0x02, 0x00, 0x00,                         //   {CMAC || HMAC}
        0x80, 0x00, 0x00, 0x00,                         // End of Message
    };
    auto r = parse_registration_request(wire);
    ASSERT_TRUE(r) << r.message();
    ASSERT_EQ(r->time_server.addresses.size(), 2U);
    EXPECT_EQ(std::get<port_identity>(r->time_server.addresses[1]), pid(0x0a, 1));
    EXPECT_EQ(r->aead_algorithms,
              (std::vector<aead_algorithm>{aead_algorithm::aes_siv_cmac_512, aead_algorithm::aes_siv_cmac_256}));
    EXPECT_EQ(r->supported_mac_algorithms,
              (std::vector<mac_algorithm>{mac_algorithm::aes_cmac, mac_algorithm::hmac_sha256_128}));
    EXPECT_EQ(build(*r), wire);
    auto any = parse_tsr_request(wire);
    ASSERT_TRUE(any) << any.message();
    EXPECT_EQ(std::get<registration_request>(*any), *r);
}

TEST(nts_message, registration_response_bytes_of_tables_7_and_9) {
    const bytes wire = {
        0x84, 0x04, 0x00, 0x04, 0x00, 0x01, 0x01, 0x00, // NTS Message Type: PTP Registration Response, v1.0
        0x84, 0x01, 0x00, 0x62,                         // Current Parameters, 98 octets
        0x80, 0x04, 0x00, 0x02, 0x00, 0x11,             //   AEAD Algorithm Negotiation: AEAD_AES_SIV_CMAC_512
        0x84, 0x0d, 0x00, 0x0c,                         //   Validity Period {2460s || 400s || 3s}
        0x00, 0x00, 0x09, 0x9c, 0x00, 0x00, 0x01, 0x90, 0x00, 0x00, 0x00, 0x03, 0x84, 0x0c, 0x00, 0x04,
        0x00, 0x00, 0x01, 0x16, //   Ticket Key ID (1036): 278
        0x84, 0x0b, 0x00, 0x40, //   Ticket Key (1035), 64 octets
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, //
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, //
        0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, //
        0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, //
        0x04, 0x02, 0x00, 0x02, 0x03, 0x84, // Heartbeat Timeout (1026), no C: 900 s
        0x80, 0x00, 0x00, 0x00,             // End of Message
    };
    auto r = parse_registration_response(wire);
    ASSERT_TRUE(r) << r.message();
    ASSERT_FALSE(r->is_error());
    const registration_grant& g = std::get<registration_grant>(r->outcome);
    EXPECT_EQ(g.current.aead, aead_algorithm::aes_siv_cmac_512);
    EXPECT_EQ(g.current.validity, (validity_period{2460, 400, 3}));
    EXPECT_EQ(g.current.ticket_key_id, 278U);
    ASSERT_EQ(g.current.ticket_key.size(), 64U);
    EXPECT_EQ(g.current.ticket_key[63], 0x3f);
    EXPECT_EQ(g.heartbeat_timeout, uint16_t{900});
    EXPECT_FALSE(g.next);
    EXPECT_EQ(build(*r), wire);
}

TEST(nts_message, registration_response_error_bytes_of_table_8) {
    const bytes wire = {
        0x84, 0x04, 0x00, 0x04, 0x00, 0x01, 0x01, 0x00, // NTS Message Type: PTP Registration Response, v1.0
        0x80, 0x02, 0x00, 0x02, 0x00, 0x03,             // Error: Not Authorized
        0x80, 0x00, 0x00, 0x00,                         // End of Message
    };
    auto r = parse_registration_response(wire);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(std::get<error_code>(r->outcome), error_code::not_authorized);
    EXPECT_EQ(build(*r), wire);
    EXPECT_EQ(build_error_response(sub_protocol::nts_tsr, error_code::not_authorized), wire);
}

TEST(nts_message, registration_revoke_bytes_of_table_10) {
    const bytes wire = {
        0x84, 0x04, 0x00, 0x04, 0x00, 0x02, 0x01, 0x00, // NTS Message Type: PTP Registration Revoke, v1.0
        0x84, 0x07, 0x00, 0x0a,                         // Source PortIdentity, 10 octets
        0x00, 0x1b, 0x19, 0xff, 0xfe, 0x00, 0x00, 0x0a, 0x00, 0x01, 0x80, 0x00, 0x00, 0x00, // End of Message
    };
    auto r = parse_registration_revoke(wire);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->source_port_identity, pid(0x0a, 1));
    EXPECT_EQ(build(*r), wire);
    auto any = parse_tsr_request(wire);
    ASSERT_TRUE(any) << any.message();
    EXPECT_EQ(std::get<registration_revoke>(*any), *r);
}

TEST(nts_message, heartbeat_bytes_of_table_11) {
    const bytes wire = {
        0x84, 0x04, 0x00, 0x04, 0x00, 0x03, 0x01, 0x00, // NTS Message Type: PTP Heartbeat, v1.0
        0x04, 0x08, 0x00, 0x03,                         // Status (1032), no C, 3 octets
        0x00, 0x00, 0x0f,                               //   grantor load 15 %
        0x80, 0x00, 0x00, 0x00,                         // End of Message
    };
    auto r = parse_heartbeat(wire);
    ASSERT_TRUE(r) << r.message();
    ASSERT_EQ(r->statuses.size(), 1U);
    EXPECT_EQ(r->statuses[0], (status_report{status_type::grantor_load, {15}}));
    EXPECT_EQ(build(*r), wire);
    auto any = parse_tsr_request(wire);
    ASSERT_TRUE(any) << any.message();
    EXPECT_EQ(std::get<heartbeat>(*any), *r);
}

// --- Round trips ----------------------------------------------------------------------

template <typename M, typename Parse>
void expect_round_trip(const M& message, Parse parse) {
    auto v = validate(message);
    EXPECT_TRUE(v) << v.message();
    const bytes wire = build(message);
    auto r = parse(wire);
    ASSERT_TRUE(r) << r.message();
    EXPECT_TRUE(*r == message);
    EXPECT_EQ(build(*r), wire);
}

TEST(nts_message, round_trip_key_request_both_modes) {
    key_request group;
    group.association = group_number{0, 0, 7}; // Group-of-2 number 7
    expect_round_trip(group, parse_key_request);

    key_request unicast;
    unicast.next_protocols = {next_protocol::ptpv2_1, static_cast<next_protocol>(0x8001)};
    unicast.association = pid(0x0a, 2);
    unicast.source_port_identity = pid(1, 1);
    expect_round_trip(unicast, parse_key_request);
    unicast.supported_mac_algorithms = {{mac_algorithm::aes_gmac_256, mac_algorithm::hmac_sha256_128}};
    expect_round_trip(unicast, parse_key_request);
    unicast.association = ipv6_address{{0x20, 0x01, 0x0d, 0xb8, 1}};
    expect_round_trip(unicast, parse_key_request);
    unicast.association = mac_address{{2, 0, 0, 0, 0, 1}};
    expect_round_trip(unicast, parse_key_request);
}

TEST(nts_message, round_trip_key_response_every_form) {
    key_response group;
    key_grant g;
    g.current.sa = security_association{1, mac_algorithm::hmac_sha256_128, 10, secret_bytes(32, 1)};
    g.current.validity = validity_period{12389, 300, 3};
    group.outcome = g;
    expect_round_trip(group, parse_key_response);
    g.next = key_parameters{security_association{1, mac_algorithm::hmac_sha256_128, 11, secret_bytes(32, 2)},
                            validity_period{14400, 300, 3}, std::nullopt};
    group.outcome = g;
    expect_round_trip(group, parse_key_response);

    key_response unicast;
    unicast.outcome = key_grant{tim_parameters(20, 200), tim_parameters(21, 14400)};
    expect_round_trip(unicast, parse_key_response);
    // The claim behind max_message_size (types.h): 64-octet keys, four addresses, under 700 octets.
    key_response largest = unicast;
    for (key_parameters* p :
         {&std::get<key_grant>(largest.outcome).current, &*std::get<key_grant>(largest.outcome).next}) {
        p->sa.integrity_algorithm = mac_algorithm::hmac_sha256;
        p->sa.key = secret_bytes(64, 0x42);
        p->unicast->ticket.encrypted_sa = bytes(16 + 9 + 64, 0xee);
    }
    expect_round_trip(largest, parse_key_response);
    const size_t largest_size = build(largest).size();
    EXPECT_GT(largest_size, 500U);
    EXPECT_LT(largest_size, 700U);

    for (uint16_t code = 0; code <= 4; ++code) {
        expect_round_trip(key_response{{next_protocol::ptpv2_1}, static_cast<error_code>(code)}, parse_key_response);
    }
    // RFC 8915 §4.1.2: a response's protocol list may be empty (error form).
    expect_round_trip(key_response{{}, error_code::bad_request}, parse_key_response);
}

TEST(nts_message, round_trip_registration_messages) {
    registration_request req;
    req.time_server.addresses = {ipv4_address{{10, 0, 0, 1}}, pid(0x0a, 1)};
    req.aead_algorithms = {aead_algorithm::aes_siv_cmac_512, aead_algorithm::aes_siv_cmac_256};
    req.supported_mac_algorithms = {mac_algorithm::hmac_sha256_128, mac_algorithm::aes_gmac_128};
    expect_round_trip(req, parse_registration_request);

    registration_response resp;
    resp.outcome = registration_grant{reg_parameters(278, aead_algorithm::aes_siv_cmac_256, 32),
                                      reg_parameters(279, aead_algorithm::aes_siv_cmac_384, 48), uint16_t{900}};
    expect_round_trip(resp, parse_registration_response);
    resp.outcome =
        registration_grant{reg_parameters(278, static_cast<aead_algorithm>(0x8000), 5), std::nullopt, std::nullopt};
    expect_round_trip(resp, parse_registration_response);
    expect_round_trip(registration_response{error_code::grantor_not_registered}, parse_registration_response);

    expect_round_trip(registration_revoke{pid(9, 4)}, parse_registration_revoke);
    expect_round_trip(heartbeat{}, parse_heartbeat);
    expect_round_trip(heartbeat{{{status_type::grantor_load, {100}}, {static_cast<status_type>(0x9000), {1, 2, 3}}}},
                      parse_heartbeat);
}

// --- Framing rules ----------------------------------------------------------------------

TEST(nts_message, truncated_record_header) {
    bytes wire = cat({npn_ptp, assoc_group, eom});
    wire.pop_back();
    expect_bad_request(parse_key_request(wire), {"PTP Key Request", "record header", "3 octets left, 4 needed"});
}

TEST(nts_message, body_longer_than_the_message) {
    const bytes wire = cat({npn_ptp, rec(C | 1024, {0x00, 0x00, 0x2c}), eom});
    bytes cut = wire;
    cut[npn_ptp.size() + 3] = 0x20; // Association Mode claims 32 octets
    expect_bad_request(parse_key_request(cut), {"Association Mode in PTP Key Request", "Body Length 32"});
}

TEST(nts_message, missing_end_of_message) {
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_group})), {"PTP Key Request", "End of Message missing"});
    expect_bad_request(parse_heartbeat(bytes{}), {"PTP Heartbeat", "End of Message missing"});
}

TEST(nts_message, end_of_message_not_last) {
    expect_bad_request(parse_key_request(cat({npn_ptp, eom, assoc_group, eom})),
                       {"End of Message in PTP Key Request", "not the last record", "15 octets follow"});
    // A second message in the same buffer is not read either.
    const bytes one = cat({npn_ptp, assoc_group, eom});
    expect_bad_request(parse_key_request(cat({one, one})), {"End of Message", "not the last record"});
}

TEST(nts_message, end_of_message_must_be_critical_and_empty) {
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_group, rec(0, {})})),
                       {"End of Message in PTP Key Request", "Critical Bit not set"});
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_group, rec(C, {0})})),
                       {"End of Message in PTP Key Request", "1 octets, 0 expected"});
}

TEST(nts_message, oversize_message) {
    // A valid request padded with a skippable record to one octet over the limit.
    const size_t pad = max_message_size + 1 - (npn_ptp.size() + assoc_group.size() + eom.size() + 4);
    const bytes wire = cat({npn_ptp, assoc_group, rec(2000, bytes(pad, 0)), eom});
    ASSERT_EQ(wire.size(), max_message_size + 1);
    expect_bad_request(parse_key_request(wire), {"PTP Key Request", "16385 octets, more than the 16384 accepted"});
    // At the limit it parses.
    const bytes at_limit = cat({npn_ptp, assoc_group, rec(2000, bytes(pad - 1, 0)), eom});
    EXPECT_TRUE(parse_key_request(at_limit));
}

TEST(nts_message, too_many_records) {
    bytes filler;
    for (size_t i = 0; i < max_records - 2; ++i) { // with NPN, Association Mode, End of Message: 65
        filler = cat({filler, rec(2000, {})});
    }
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_group, filler, eom})),
                       {"PTP Key Request", "more than 64 records"});
    // One fewer is fine.
    filler.resize(filler.size() - 4);
    EXPECT_TRUE(parse_key_request(cat({npn_ptp, assoc_group, filler, eom})));
}

TEST(nts_message, records_inside_containers_count_towards_the_limit) {
    bytes inner;
    for (size_t i = 0; i < max_records; ++i) {
        inner = cat({inner, rec(2000, {})});
    }
    const bytes wire = cat({npn_ptp, key_container(1025, {sa_rec, validity_rec, inner}), eom}); // 3 + 2 + 64 records
    expect_bad_request(parse_key_response(wire), {"Current Parameters", "more than 64 records"});
}

TEST(nts_message, list_too_long) {
    bytes list;
    for (size_t i = 0; i <= max_list_entries; ++i) {
        list.push_back(0x00);
        list.push_back(0x01);
    }
    expect_bad_request(parse_key_request(cat({rec(C | 1, list), assoc_group, eom})),
                       {"NTS Next Protocol Negotiation in PTP Key Request", "33 entries, at most 32"});
}

// --- Unknown and NTP-only records -----------------------------------------------------

TEST(nts_message, unknown_critical_record_is_error_code_0) {
    expect_refused(parse_key_request(cat({npn_ptp, rec(C | 2000, {1, 2}), assoc_group, eom})),
                   error_code::unrecognized_critical_record, {"PTP Key Request", "unknown record type 2000"});
    expect_refused(parse_key_request(cat({npn_ptp, rec(C | 0x7fff, {}), assoc_group, eom})),
                   error_code::unrecognized_critical_record, {"record type 32767"});
    // Inside a container too.
    const bytes wire = cat({npn_ptp, key_container(1025, {sa_rec, rec(C | 1500, {}), validity_rec}), eom});
    expect_refused(parse_key_response(wire), error_code::unrecognized_critical_record,
                   {"Current Parameters", "unknown record type 1500"});
}

TEST(nts_message, unknown_non_critical_record_is_skipped) {
    const bytes plain = cat({npn_ptp, assoc_group, eom});
    const bytes with_unknown = cat({rec(2000, {1, 2, 3}), npn_ptp, rec(16384, {}), assoc_group, rec(8, {9}), eom});
    auto a = parse_key_request(plain);
    auto b = parse_key_request(with_unknown);
    ASSERT_TRUE(a) << a.message();
    ASSERT_TRUE(b) << b.message();
    EXPECT_EQ(*a, *b);
    EXPECT_EQ(build(*b), plain);
    // In a container as well.
    auto r = parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, rec(1500, {0}), validity_rec}), eom}));
    EXPECT_TRUE(r) << r.message();
}

// ptpsec's Platform Attestation (0x5041): read in a PTP Key Request of
// either mode, at most once; in any other message an unknown record.
TEST(nts_message, platform_attestation_in_a_key_request) {
    const bytes attestation = rec(0x5041, {0x00, 0x02, 'n', '1', 0x00, 0x01, 0xaa, 0x00, 0x01, 0xbb});
    auto group = parse_key_request(cat({npn_ptp, assoc_group, attestation, eom}));
    ASSERT_TRUE(group) << group.message();
    ASSERT_TRUE(group->attestation);
    EXPECT_EQ(group->attestation->signer_id, "n1");
    EXPECT_EQ(group->attestation->attest, bytes{0xaa});
    EXPECT_EQ(group->attestation->signature, bytes{0xbb});
    EXPECT_EQ(build(*group), cat({npn_ptp, assoc_group, attestation, eom}));
    EXPECT_TRUE(validate(*group));
    auto unicast = parse_key_request(cat({npn_ptp, assoc_ipv4, source_pid, attestation, eom}));
    ASSERT_TRUE(unicast) << unicast.message();
    EXPECT_TRUE(unicast->attestation);
    // Critical or not, it is read (the bit only matters to a recipient that does not know it).
    EXPECT_TRUE(parse_key_request(cat({npn_ptp, assoc_group, rec(C | 0x5041, {0, 1, 'n', 0, 1, 0, 0, 1, 0}), eom})));

    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_group, attestation, attestation, eom})),
                       {"Platform Attestation in PTP Key Request", "2 records, at most one allowed"});
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_group, rec(0x5041, {0, 9}), eom})),
                       {"Platform Attestation in PTP Key Request", "Signer ID Length 9 but 0 octets follow"});
    // Elsewhere: skipped when not critical, code 0 when critical.
    auto response = parse_key_response(cat({npn_ptp, attestation, rec(C | 2, {0, 3}), eom}));
    EXPECT_TRUE(response) << response.message();
    expect_refused(parse_key_response(cat({npn_ptp, rec(C | 0x5041, {}), rec(C | 2, {0, 3}), eom})),
                   error_code::unrecognized_critical_record, {"unknown record type 20545"});
    // A signer ID too long to encode does not pass validate().
    key_request too_long = *group;
    too_long.attestation->signer_id.assign(256, 'x');
    EXPECT_FALSE(validate(too_long));
}

// A grantor shows its platform state in its PTP Registration Request (NTS-TSR).
TEST(nts_message, platform_attestation_in_a_registration_request) {
    const bytes attestation = rec(0x5041, {0x00, 0x02, 'g', '1', 0x00, 0x01, 0xaa, 0x00, 0x01, 0xbb});
    auto reg = parse_registration_request(cat({msg_type_request, pts_with_pid, aead_256, macs_hmac, attestation, eom}));
    ASSERT_TRUE(reg) << reg.message();
    ASSERT_TRUE(reg->attestation);
    EXPECT_EQ(reg->attestation->signer_id, "g1");
    EXPECT_EQ(reg->attestation->attest, bytes{0xaa});
    EXPECT_EQ(reg->attestation->signature, bytes{0xbb});
    EXPECT_EQ(build(*reg), cat({msg_type_request, pts_with_pid, aead_256, macs_hmac, attestation, eom}));
    EXPECT_TRUE(validate(*reg));
    auto plain = parse_registration_request(cat({msg_type_request, pts_with_pid, aead_256, macs_hmac, eom}));
    ASSERT_TRUE(plain) << plain.message();
    EXPECT_FALSE(plain->attestation);
    expect_bad_request(parse_registration_request(
                           cat({msg_type_request, pts_with_pid, aead_256, macs_hmac, attestation, attestation, eom})),
                       {"Platform Attestation in PTP Registration Request", "2 records, at most one allowed"});
    expect_bad_request(parse_registration_request(
                           cat({msg_type_request, pts_with_pid, aead_256, macs_hmac, rec(0x5041, {0, 1, 'g'}), eom})),
                       {"Platform Attestation in PTP Registration Request", "Attest Length"});
}

TEST(nts_message, ntp_only_records_are_skipped_unless_critical) {
    const bytes cookie = rec(5, {1, 2, 3, 4});
    const bytes server = rec(6, {'n', 't', 'p'});
    const bytes port = rec(7, {0, 123});
    auto r = parse_key_request(cat({npn_ptp, cookie, server, port, assoc_group, eom}));
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(build(*r), cat({npn_ptp, assoc_group, eom}));
    expect_bad_request(parse_key_request(cat({npn_ptp, rec(C | 6, {'n', 't', 'p'}), assoc_group, eom})),
                       {"NTPv4 Server Negotiation in PTP Key Request", "not used for PTP"});
    expect_bad_request(parse_key_response(cat({npn_ptp, rec(C | 3, {0, 1}), rec(C | 2, {0, 1}), eom})),
                       {"Warning in PTP Key Response", "not used for PTP"});
}

// --- Records a message does not allow -------------------------------------------------

TEST(nts_message, error_in_a_request) {
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_group, rec(C | 2, {0, 1}), eom})),
                       {"Error is not allowed in PTP Key Request"});
    expect_bad_request(
        parse_registration_request(cat({msg_type_request, pts_with_pid, aead_256, macs_hmac, rec(C | 2, {0, 1}), eom})),
        {"Error is not allowed in PTP Registration Request"});
    expect_bad_request(parse_heartbeat(cat({msg_type_heartbeat, rec(C | 2, {0, 1}), eom})),
                       {"Error is not allowed in PTP Heartbeat"});
}

TEST(nts_message, next_parameters_in_a_request) {
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_group, key_container(1027, {sa_rec, validity_rec}), eom})),
                       {"Next Parameters is not allowed in PTP Key Request"});
    expect_bad_request(parse_registration_revoke(cat({msg_type_revoke, source_pid, rec(C | 1025, {}), eom})),
                       {"Current Parameters is not allowed in PTP Registration Revoke"});
}

TEST(nts_message, protocol_records_in_the_other_sub_protocol) {
    // NTS Next Protocol Negotiation is not part of NTS-TSR (§3.3-§3.6).
    expect_bad_request(parse_registration_revoke(cat({msg_type_revoke, npn_ptp, source_pid, eom})),
                       {"NTS Next Protocol Negotiation is not allowed in PTP Registration Revoke"});
    // NTS Message Type is not part of NTS-KE (Table 12).
    expect_bad_request(parse_key_request(cat({npn_ptp, msg_type_request, assoc_group, eom})),
                       {"NTS Message Type is not allowed in PTP Key Request"});
    // Records of the other message of the same protocol.
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_group, validity_rec, eom})),
                       {"Validity Period is not allowed in PTP Key Request"});
    expect_bad_request(
        parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, validity_rec}), rec(1026, {0, 10}), eom})),
        {"Heartbeat Timeout is not allowed in PTP Key Response"});
    expect_bad_request(
        parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, validity_rec, ticket_key_id_rec}), eom})),
        {"Ticket Key ID is not allowed in Current Parameters"});
}

TEST(nts_message, nested_container) {
    const bytes inner = key_container(1025, {sa_rec, validity_rec});
    const bytes wire = cat({npn_ptp, key_container(1025, {sa_rec, validity_rec}),
                            key_container(1027, {sa_rec, validity_rec, inner}), eom});
    expect_bad_request(parse_key_response(wire), {"Current Parameters in Next Parameters", "containers do not nest"});
}

// --- Occurrence rules -------------------------------------------------------------------

TEST(nts_message, duplicate_exactly_once_record) {
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_group, assoc_group, eom})),
                       {"Association Mode in PTP Key Request", "2 records, exactly one allowed"});
    expect_bad_request(parse_key_request(cat({npn_ptp, npn_ptp, assoc_group, eom})),
                       {"NTS Next Protocol Negotiation in PTP Key Request", "2 records"});
    expect_bad_request(parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, validity_rec, sa_rec}), eom})),
                       {"Security Association in Current Parameters", "2 records, exactly one allowed"});
    expect_bad_request(parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, validity_rec}),
                                               key_container(1027, {sa_rec, validity_rec, validity_rec}), eom})),
                       {"Validity Period in Next Parameters", "2 records, exactly one allowed"});
    expect_bad_request(parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, validity_rec}),
                                               key_container(1025, {sa_rec, validity_rec}), eom})),
                       {"Current Parameters in PTP Key Response", "2 records"});
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_ipv4, source_pid, macs_hmac, macs_hmac, eom})),
                       {"Supported MAC Algorithms in PTP Key Request", "2 records, at most one allowed"});
}

TEST(nts_message, missing_mandatory_record) {
    expect_bad_request(parse_key_request(cat({npn_ptp, eom})),
                       {"Association Mode missing from PTP Key Request (mandatory)"});
    expect_bad_request(parse_key_request(cat({assoc_group, eom})),
                       {"NTS Next Protocol Negotiation missing from PTP Key Request"});
    expect_bad_request(parse_key_response(cat({npn_ptp, eom})), {"Current Parameters missing from PTP Key Response"});
    expect_bad_request(parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec}), eom})),
                       {"Validity Period missing from Current Parameters"});
    expect_bad_request(parse_registration_request(cat({msg_type_request, pts_with_pid, aead_256, eom})),
                       {"Supported MAC Algorithms missing from PTP Registration Request"});
    expect_bad_request(parse_registration_revoke(cat({msg_type_revoke, eom})),
                       {"Source PortIdentity missing from PTP Registration Revoke"});
    expect_bad_request(parse_registration_response(cat(
                           {msg_type_response, key_container(1025, {aead_256, validity_rec, ticket_key_id_rec}), eom})),
                       {"Ticket Key missing from Current Parameters"});
}

TEST(nts_message, critical_bit_required_by_the_draft) {
    expect_bad_request(parse_key_request(cat({rec(1, {0, 1}), assoc_group, eom})),
                       {"NTS Next Protocol Negotiation in PTP Key Request", "Critical Bit not set", "§4.2.8"});
    expect_bad_request(parse_key_response(cat({npn_ptp, rec(2, {0, 1}), eom})),
                       {"Error in PTP Key Response", "Critical Bit not set"});
    expect_bad_request(parse_heartbeat(cat({rec(1028, {0, 3, 1, 0}), eom})),
                       {"NTS Message Type in PTP Heartbeat", "Critical Bit not set", "§4.2.9"});
    // Records where the bit MAY be set parse either way.
    EXPECT_TRUE(parse_key_request(cat({npn_ptp, rec(1024, {0x00, 0x00, 0x2c, 0x01, 0x23, 0x00, 0x00}), eom})));
    EXPECT_TRUE(parse_heartbeat(cat({msg_type_heartbeat, rec(C | 1032, {0, 0, 5}), eom})));
}

// --- PTP Key Request (§3.1) ---------------------------------------------------------------

TEST(nts_message, key_request_must_name_ptp) {
    expect_bad_request(parse_key_request(cat({rec(C | 1, {0, 0}), assoc_group, eom})),
                       {"NTS Next Protocol Negotiation in PTP Key Request", "PTPv2.1 (1) not listed"});
    expect_bad_request(parse_key_request(cat({rec(C | 1, {}), assoc_group, eom})), {"PTPv2.1 (1) not listed"});
}

TEST(nts_message, key_request_source_port_identity_by_mode) {
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_group, source_pid, eom})),
                       {"Source PortIdentity in PTP Key Request", "not allowed with Association Type Group"});
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_ipv4, eom})),
                       {"Source PortIdentity missing from PTP Key Request (mandatory in TiM)"});
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_ipv4, rec(C | 1031, bytes(9, 0)), eom})),
                       {"Source PortIdentity in PTP Key Request: 9 octets, 10 expected"});
}

TEST(nts_message, key_request_mac_list_by_mode) {
    // TiM: must list HMAC-SHA256-128.
    expect_bad_request(parse_key_request(cat({npn_ptp, assoc_ipv4, source_pid, rec(C | 1033, {0, 2}), eom})),
                       {"Supported MAC Algorithms in PTP Key Request", "HMAC-SHA256-128 (0) not listed"});
    // GrM: ignored unread (§4.2.14), even malformed or twice.
    auto r = parse_key_request(cat({npn_ptp, rec(C | 1033, {0}), assoc_group, rec(C | 1033, {0, 2}), eom}));
    ASSERT_TRUE(r) << r.message();
    EXPECT_FALSE(r->supported_mac_algorithms);
}

TEST(nts_message, key_request_association_value_length) {
    expect_bad_request(parse_key_request(cat({npn_ptp, rec(C | 1024, {0, 1, 1, 2, 3, 4, 5, 6}), source_pid, eom})),
                       {"Association Mode in PTP Key Request: IPv4 value: 6 octets, 4 expected"});
    expect_bad_request(parse_key_request(cat({npn_ptp, rec(C | 1024, {0, 9, 1, 2}), eom})),
                       {"Association Mode in PTP Key Request", "Association Type 9 unknown"});
}

// --- PTP Key Response (§3.2) ---------------------------------------------------------------

TEST(nts_message, key_response_fixed_size_record_in_container) {
    const bytes short_validity = rec(C | 1037, bytes(10, 0));
    expect_bad_request(parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, short_validity}), eom})),
                       {"Validity Period in Current Parameters: 10 octets, 12 expected"});
}

TEST(nts_message, key_response_error_form_is_exclusive) {
    expect_bad_request(
        parse_key_response(cat({npn_ptp, rec(C | 2, {0, 3}), key_container(1025, {sa_rec, validity_rec}), eom})),
        {"Error in PTP Key Response", "error form has neither"});
    expect_bad_request(parse_key_response(cat({npn_ptp, rec(C | 2, {0, 3}), rec(C | 2, {0, 1}), eom})),
                       {"Error in PTP Key Response", "2 records"});
    expect_bad_request(parse_key_response(cat({npn_ptp, rec(C | 2, {3}), eom})),
                       {"Error in PTP Key Response", "1 octets"});
}

TEST(nts_message, key_response_must_name_ptp_unless_error) {
    expect_bad_request(parse_key_response(cat({rec(C | 1, {0, 0}), key_container(1025, {sa_rec, validity_rec}), eom})),
                       {"NTS Next Protocol Negotiation in PTP Key Response", "PTPv2.1 (1) not listed"});
}

TEST(nts_message, key_response_unicast_records_come_together) {
    expect_bad_request(parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, validity_rec, pts_rec}), eom})),
                       {"Ticket missing from Current Parameters", "PTP Time Server"});
    expect_bad_request(parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, validity_rec, ticket_rec}), eom})),
                       {"PTP Time Server missing from Current Parameters"});
    auto tim =
        parse_key_response(cat({npn_ptp, key_container(1025, {ticket_rec, validity_rec, pts_rec, sa_rec}), eom}));
    ASSERT_TRUE(tim) << tim.message();
    EXPECT_TRUE(std::get<key_grant>(tim->outcome).current.unicast);
    // Next Parameters in GrM while Current is TiM.
    expect_bad_request(
        parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, validity_rec, pts_rec, ticket_rec}),
                                key_container(1027, {sa_rec, validity_rec}), eom})),
        {"Next Parameters in PTP Key Response", "GrM but Current Parameters TiM"});
}

TEST(nts_message, key_response_time_server_rules) {
    const bytes group_server = rec(C | 1029, {0, 0, 1, 0, 0, 0, 0});
    expect_bad_request(
        parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, validity_rec, group_server, ticket_rec}), eom})),
        {"PTP Time Server in Current Parameters", "Group (0) is not allowed"});
}

TEST(nts_message, end_of_message_inside_a_container_is_ignored) {
    const bytes plain = cat({npn_ptp, key_container(1025, {sa_rec, validity_rec}), eom});
    const bytes with_eom = cat({npn_ptp, key_container(1025, {sa_rec, eom, validity_rec, rec(0, {})}), eom});
    auto a = parse_key_response(plain);
    auto b = parse_key_response(with_eom);
    ASSERT_TRUE(a) << a.message();
    ASSERT_TRUE(b) << b.message();
    EXPECT_EQ(*a, *b);
    EXPECT_EQ(build(*b), plain);
    // It still must be empty.
    expect_bad_request(
        parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, rec(C, {1}), validity_rec}), eom})),
        {"End of Message in Current Parameters", "1 octets, 0 expected"});
}

TEST(nts_message, container_body_overrun) {
    bytes container = key_container(1025, {sa_rec, validity_rec});
    container[4 + 3] = 0x40; // the Security Association inside claims 64 octets
    expect_bad_request(parse_key_response(cat({npn_ptp, container, eom})),
                       {"Security Association in Current Parameters", "Body Length 64"});
}

TEST(nts_message, validity_rules_by_container) {
    // Current: remaining Lifetime below the Update Period means the update period has begun: fine.
    const bytes in_update = rec(C | 1037, {0, 0, 0, 100, 0, 0, 0x01, 0x2c, 0, 0, 0, 3});
    EXPECT_TRUE(parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, in_update}), eom})));
    // Next: the Lifetime is the full one; Update Period above it is refused.
    expect_bad_request(
        parse_key_response(
            cat({npn_ptp, key_container(1025, {sa_rec, in_update}), key_container(1027, {sa_rec, in_update}), eom})),
        {"Validity Period in Next Parameters", "Update Period 300 s greater than the full Lifetime 100 s"});
    const bytes grace_over = rec(C | 1037, {0, 0, 0x06, 0x18, 0, 0, 0, 2, 0, 0, 0, 3});
    expect_bad_request(parse_key_response(cat({npn_ptp, key_container(1025, {sa_rec, grace_over}), eom})),
                       {"Validity Period in Current Parameters", "Grace Period 3 s greater than Update Period 2 s"});
}

// --- NTS-TSR (§3.3-§3.6) ----------------------------------------------------------------

TEST(nts_message, wrong_nts_message_type_or_version) {
    const bytes revoke = cat({msg_type_revoke, source_pid, eom});
    expect_bad_request(parse_heartbeat(revoke), {"NTS Message Type in PTP Heartbeat",
                                                 "PTP Registration Revoke (2), PTP Heartbeat (3) expected"});
    expect_bad_request(parse_heartbeat(cat({rec(C | 1028, {0, 3, 1, 1}), eom})),
                       {"NTS Message Type in PTP Heartbeat", "version 1.1, 1.0 expected"});
    expect_bad_request(parse_heartbeat(cat({rec(C | 1028, {0, 3, 2, 0}), eom})), {"version 2.0, 1.0 expected"});
    expect_bad_request(parse_heartbeat(cat({msg_type_heartbeat, msg_type_heartbeat, eom})),
                       {"NTS Message Type in PTP Heartbeat", "2 records, exactly one allowed"});
    expect_bad_request(parse_registration_revoke(cat({source_pid, eom})),
                       {"NTS Message Type missing from PTP Registration Revoke"});
    expect_bad_request(parse_heartbeat(cat({rec(C | 1028, {0, 3, 1}), eom})),
                       {"NTS Message Type in PTP Heartbeat: 3 octets, 4 expected"});
    // The type is checked before the other records, so the message says what it is.
    expect_bad_request(parse_registration_revoke(cat({msg_type_request, pts_with_pid, aead_256, macs_hmac, eom})),
                       {"PTP Registration Request (0), PTP Registration Revoke (2) expected"});
}

TEST(nts_message, tsr_request_dispatch) {
    expect_bad_request(parse_tsr_request(build_error_response(sub_protocol::nts_tsr, error_code::bad_request)),
                       {"NTS Message Type", "PTP Registration Response (1) is not a grantor's request"});
    expect_bad_request(parse_tsr_request(cat({rec(C | 1028, {0, 9, 1, 0}), eom})), {"message type 9"});
    expect_bad_request(parse_tsr_request(cat({source_pid, eom})), {"NTS Message Type missing from NTS-TSR request"});
    // A dispatched message gets its own full check.
    expect_bad_request(parse_tsr_request(cat({msg_type_revoke, eom})),
                       {"Source PortIdentity missing from PTP Registration Revoke"});
}

TEST(nts_message, registration_request_rules) {
    const bytes pts_ipv4_only = rec(C | 1029, {0, 1, 10, 0, 0, 1});
    expect_bad_request(parse_registration_request(cat({msg_type_request, pts_ipv4_only, aead_256, macs_hmac, eom})),
                       {"PTP Time Server in PTP Registration Request", "no PortIdentity entry"});
    expect_bad_request(
        parse_registration_request(cat({msg_type_request, pts_with_pid, rec(C | 4, {0, 16}), macs_hmac, eom})),
        {"AEAD Algorithm Negotiation in PTP Registration Request", "AEAD_AES_SIV_CMAC_256 (15) not listed"});
    expect_bad_request(
        parse_registration_request(cat({msg_type_request, pts_with_pid, aead_256, rec(C | 1033, {0, 1}), eom})),
        {"Supported MAC Algorithms in PTP Registration Request", "HMAC-SHA256-128 (0) not listed"});
    expect_bad_request(
        parse_registration_request(cat({msg_type_request, pts_with_pid, pts_with_pid, aead_256, macs_hmac, eom})),
        {"PTP Time Server in PTP Registration Request", "2 records, exactly one allowed"});
}

TEST(nts_message, registration_response_rules) {
    const bytes aead_two = rec(C | 4, {0, 15, 0, 16});
    expect_bad_request(
        parse_registration_response(cat(
            {msg_type_response, key_container(1025, {aead_two, validity_rec, ticket_key_id_rec, ticket_key_32}), eom})),
        {"AEAD Algorithm Negotiation in Current Parameters", "2 algorithms, exactly one"});
    const bytes key_16 = rec(C | 1035, bytes(16, 1));
    expect_bad_request(
        parse_registration_response(
            cat({msg_type_response, key_container(1025, {aead_256, validity_rec, ticket_key_id_rec, key_16}), eom})),
        {"Ticket Key in Current Parameters", "16 octets, 32 expected"});
    const bytes current = key_container(1025, {aead_256, validity_rec, ticket_key_id_rec, ticket_key_32});
    expect_bad_request(parse_registration_response(cat({msg_type_response, rec(C | 2, {0, 4}), current, eom})),
                       {"Error in PTP Registration Response", "the error form has none"});
    expect_bad_request(
        parse_registration_response(cat({msg_type_response, rec(C | 2, {0, 4}), rec(1026, {0, 5}), eom})),
        {"Error in PTP Registration Response"});
    expect_bad_request(
        parse_registration_response(cat({msg_type_response, current, rec(1026, {0, 5}), rec(1026, {0, 6}), eom})),
        {"Heartbeat Timeout in PTP Registration Response", "2 records, at most one allowed"});
    expect_bad_request(parse_registration_response(cat({msg_type_response, current, rec(C | 1037, bytes(12, 0)), eom})),
                       {"Validity Period is not allowed in PTP Registration Response"});
}

TEST(nts_message, heartbeat_timeout_zero_is_ignored) {
    const bytes current = key_container(1025, {aead_256, validity_rec, ticket_key_id_rec, ticket_key_32});
    auto r = parse_registration_response(cat({msg_type_response, current, rec(1026, {0, 0}), eom}));
    ASSERT_TRUE(r) << r.message();
    EXPECT_FALSE(std::get<registration_grant>(r->outcome).heartbeat_timeout);
    auto one = parse_registration_response(cat({msg_type_response, current, rec(1026, {0, 1}), eom}));
    ASSERT_TRUE(one) << one.message();
    EXPECT_EQ(std::get<registration_grant>(one->outcome).heartbeat_timeout, uint16_t{1});
}

TEST(nts_message, heartbeat_status_rules) {
    expect_bad_request(parse_heartbeat(cat({msg_type_heartbeat, rec(1032, {0, 0, 10}), rec(1032, {0, 0, 20}), eom})),
                       {"Status in PTP Heartbeat", "Status Type 0 twice"});
    expect_bad_request(parse_heartbeat(cat({msg_type_heartbeat, rec(1032, {0, 0}), eom})),
                       {"Status in PTP Heartbeat", "0 octets of Status Data, 1 expected"});
    auto two = parse_heartbeat(cat({msg_type_heartbeat, rec(1032, {0, 0, 10}), rec(1032, {0x80, 0, 7, 7}), eom}));
    ASSERT_TRUE(two) << two.message();
    EXPECT_EQ(two->statuses.size(), 2U);
}

// --- Stream framing, error answers, validate ---------------------------------------------

TEST(nts_message, find_message_end_splits_a_stream) {
    const bytes first = cat({npn_ptp, key_container(1025, {sa_rec, eom, validity_rec}), eom});
    const bytes second = cat({npn_ptp, assoc_group, eom});
    const bytes stream = cat({first, second});
    auto whole = find_message_end(stream);
    ASSERT_TRUE(whole) << whole.message();
    EXPECT_EQ(*whole, first.size()); // the End of Message inside the container did not end it
    for (size_t n = 0; n < first.size(); ++n) {
        auto part = find_message_end(std::span<const uint8_t>(stream).first(n));
        ASSERT_TRUE(part) << part.message();
        EXPECT_FALSE(part->has_value()) << n;
    }
    const bytes huge = rec(2000, bytes(max_message_size, 0));
    expect_bad_request(find_message_end(std::span<const uint8_t>(huge).first(4)), {"longer than 16384 octets"});
    bytes many;
    for (size_t i = 0; i <= max_records; ++i) {
        many = cat({many, rec(2000, {})});
    }
    expect_bad_request(find_message_end(many), {"more than 64 records"});
}

TEST(nts_message, error_response_for_a_failed_request) {
    auto bad = parse_key_request(cat({npn_ptp, rec(C | 2000, {}), assoc_group, eom}));
    ASSERT_FALSE(bad);
    const bytes answer = build_error_response(sub_protocol::nts_ke, bad.err());
    auto r = parse_key_response(answer);
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(std::get<error_code>(r->outcome), error_code::unrecognized_critical_record);
    EXPECT_EQ(r->next_protocols, std::vector<next_protocol>{next_protocol::ptpv2_1});

    auto bad_tsr = parse_tsr_request(cat({msg_type_heartbeat, rec(C | 1033, {0, 0}), eom}));
    ASSERT_FALSE(bad_tsr);
    EXPECT_EQ(bad_tsr.code(), error_code::bad_request);
    auto tsr_answer = parse_registration_response(build_error_response(sub_protocol::nts_tsr, bad_tsr.err()));
    ASSERT_TRUE(tsr_answer) << tsr_answer.message();
    EXPECT_EQ(std::get<error_code>(tsr_answer->outcome), error_code::bad_request);
}

TEST(nts_message, validate_refuses_what_the_parser_would) {
    key_request group;
    group.association = group_number{};
    group.source_port_identity = pid(1, 1);
    expect_refused(validate(group), error_code::internal_server_error,
                   {"Source PortIdentity in PTP Key Request", "Association Type Group"});
    group.source_port_identity.reset();
    group.supported_mac_algorithms = {{mac_algorithm::hmac_sha256_128}};
    expect_refused(validate(group), error_code::internal_server_error,
                   {"Supported MAC Algorithms in PTP Key Request", "Group"});

    registration_response zero_timeout{
        registration_grant{reg_parameters(1, aead_algorithm::aes_siv_cmac_256, 32), std::nullopt, uint16_t{0}}};
    expect_refused(validate(zero_timeout), error_code::internal_server_error,
                   {"Heartbeat Timeout in PTP Registration Response", "0 s"});

    key_response bad_validity;
    key_grant g;
    g.current.sa = security_association{1, mac_algorithm::hmac_sha256_128, 1, secret_bytes(16, 1)};
    g.current.validity = validity_period{100, 10, 11};
    bad_validity.outcome = g;
    expect_refused(validate(bad_validity), error_code::internal_server_error,
                   {"Validity Period in Current Parameters", "Grace Period 11 s"});

    key_response empty_key = bad_validity;
    std::get<key_grant>(empty_key.outcome).current.validity = validity_period{100, 10, 1};
    std::get<key_grant>(empty_key.outcome).current.sa.key.clear();
    expect_refused(validate(empty_key), error_code::internal_server_error, {"Security Association", "Key Length 0"});

    registration_revoke ok{pid(1, 1)};
    EXPECT_TRUE(validate(ok));
}

} // namespace
} // namespace ptpsec::nts
