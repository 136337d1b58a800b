#pragma once

// The timing-event record: what the fast path hands to the attestation
// signer for each selected PTP message (BRIEF "Attestation"). Shared by the
// data plane, which fills it, and hsm/, which batches it into a Merkle tree;
// it needs nothing but the standard library.
//
// A record is a fixed 96-octet, trivially copyable struct that crosses a
// lock-free queue between processes of one host, never a network: integers
// are in host byte order and every field sits at its natural alignment. The
// attestation side encodes the claims it signs in CBOR; this layout is not a
// wire format. Byte layout (version 1):
//
//   offset size field               source (octets of the common header, IEEE 1588-2019 Table 35)
//        0    1 version             event_record_version
//        1    1 direction           event_direction: 0 rx, 1 tx
//        2    1 messageType         low nibble of octet 0 (Table 36)
//        3    1 domainNumber        octet 4
//        4    2 sdoId               majorSdoId (high nibble of octet 0) << 8 | minorSdoId (octet 5)
//        6    2 port_id             the DPDK port the frame came in or went out on
//        8    8 timestamp_ns        when the port saw the frame, ns since the clock's epoch (see flags)
//       16    8 correctionField     octets 8-15 as they were on the wire (scaled ns, x 2^16)
//       24   10 sourcePortIdentity  octets 20-29 in wire order (clockIdentity, portNumber)
//       34    2 sequenceId          octets 30-31
//       36    2 messageLength       octets 2-3: the octets the digest covers
//       38    2 flagField           octets 6-7 (twoStepFlag, unicastFlag, ...)
//       40    1 flags               event_flag_* below
//       41   23 reserved            zero
//       64   32 digest              SHA-256 (FIPS 180-4) of the messageLength octets of the
//                                   message with correctionField taken as zero
//
// Why correctionField is left out of the digest: a transparent clock adds
// its residence time to it in flight, so two honest observers of the same
// message see different values. With it zeroed, every observer of one
// message computes the same digest, which is what lets the Verifier
// correlate observations of one event from several hosts (BRIEF
// "Attestation", multi-observer correlation); the value each observer saw is
// kept beside the digest.

#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace ptpsec {

enum class event_direction : uint8_t {
    rx = 0, ///< received on port_id
    tx = 1, ///< sent on port_id
};

inline constexpr uint8_t event_record_version = 1;
inline constexpr size_t event_digest_len = 32;

/// event_record::flags: the NIC latched timestamp_ns when the frame crossed
/// the wire; clear when software read the clock afterwards.
inline constexpr uint8_t event_flag_hw_timestamp = 0x01;

struct event_record {
    uint8_t version;
    event_direction direction;
    uint8_t messageType;
    uint8_t domainNumber;
    uint16_t sdoId;
    uint16_t port_id;
    uint64_t timestamp_ns;
    int64_t correctionField;
    std::array<uint8_t, 10> sourcePortIdentity;
    uint16_t sequenceId;
    uint16_t messageLength;
    uint16_t flagField;
    uint8_t flags;
    std::array<uint8_t, 23> reserved;
    std::array<uint8_t, event_digest_len> digest;
};

static_assert(sizeof(event_record) == 96, "event_record layout is part of the attestation interface");
static_assert(alignof(event_record) == 8);
static_assert(std::is_trivially_copyable_v<event_record>);
static_assert(std::is_standard_layout_v<event_record>);
static_assert(offsetof(event_record, version) == 0);
static_assert(offsetof(event_record, direction) == 1);
static_assert(offsetof(event_record, messageType) == 2);
static_assert(offsetof(event_record, domainNumber) == 3);
static_assert(offsetof(event_record, sdoId) == 4);
static_assert(offsetof(event_record, port_id) == 6);
static_assert(offsetof(event_record, timestamp_ns) == 8);
static_assert(offsetof(event_record, correctionField) == 16);
static_assert(offsetof(event_record, sourcePortIdentity) == 24);
static_assert(offsetof(event_record, sequenceId) == 34);
static_assert(offsetof(event_record, messageLength) == 36);
static_assert(offsetof(event_record, flagField) == 38);
static_assert(offsetof(event_record, flags) == 40);
static_assert(offsetof(event_record, reserved) == 41);
static_assert(offsetof(event_record, digest) == 64);

} // namespace ptpsec
