#pragma once

// The records of the exception channel (dataplane/exception_channel.h): a
// whole frame and where it came from, fixed-size, no pointers, the same
// layout in both processes. Like dataplane/sa_update_wire.h, this header is
// the whole contract and includes only the standard library.
//
// What goes over it (seeds/001 §6): a requester opens a unicast association
// with a Signaling message that carries a REQUEST_UNICAST_TRANSMISSION TLV,
// the TICKET TLV and an AUTHENTICATION TLV made with the unicast key. The
// grantor's data plane holds no SA for that key yet, so it cannot verify the
// frame; with --tickets it hands a copy to the control plane instead of
// dropping it as unknown_spp / unknown_key:
//
//   exceptions  data plane -> control plane: a Signaling message with a
//               TICKET TLV before its AUTHENTICATION TLV, received on a
//               verifying path, whose SPP or key ID the SA table lacks
//   reinject    control plane -> data plane: a frame to process as if it
//               had arrived on `port` again, once the control plane has
//               decrypted the ticket, checked the requester's
//               sourcePortIdentity against it and installed the unicast SA
//               (acknowledged on the SA channel) - in that order, see
//               docs/architecture.md "The exception channel (tickets)"
//
// A reinjected frame goes through the same verify (and strip), replay
// window and forwarding as a received one. It is never handed over again:
// if its SA is still missing it is dropped as unknown_spp / unknown_key.
// Frames are copied, not parked: the mbuf is freed when the record is made,
// so a control plane that is slow or gone costs ring slots, never mbufs.

#include <cstddef>
#include <cstdint>

namespace ptpsec::exception_wire {

inline constexpr uint32_t record_magic = 0x50535831; // "PSX1"
/// IEEE 802.3's largest frame (1518 octets) with two 4-octet VLAN tags
/// (802.1ad). A longer frame is never handed over: it is dropped and
/// counted (exception_too_long). No legitimate unicast request comes near.
inline constexpr size_t max_frame_len = 1518 + 2 * 4;

/// Why the data plane could not verify the frame (record::reason).
enum class reason : uint8_t {
    unknown_spp = 1, ///< no SA with the TLV's SPP
    unknown_key = 2, ///< the SA has no key with the TLV's keyID
};

/// One frame. The data plane fills every field of an exception record
/// (the rest is zero); of a reinject record it reads `magic`, `port`,
/// `frame_len` and `frame` only, so the control plane may push back the
/// record it popped.
struct record {
    uint32_t magic = record_magic;
    uint16_t port = 0;      ///< DPDK port ID the frame arrived on (reinject: is to be taken as arriving on)
    uint16_t frame_len = 0; ///< octets of `frame` used, 1 to max_frame_len
    /// Exceptions: the data plane numbers every ticket request from 1 since
    /// it started, so a gap is a request it dropped (a full ring, a frame
    /// too long). Reinject: not read.
    uint64_t sequence = 0;
    /// CLOCK_MONOTONIC nanoseconds when the data plane handed the frame
    /// over (the burst it arrived in), as sa_wire::update::sent_ns: the same
    /// clock in both processes, never stepped.
    uint64_t rx_ns = 0;
    uint8_t reason = 0; ///< exception_wire::reason
    uint8_t spp = 0;    ///< of the AUTHENTICATION TLV
    /// Offsets within `frame`: the PTP message, its TICKET TLV and its
    /// AUTHENTICATION TLV (of their tlvType field), as the data plane found
    /// them (the TICKET TLV's tlvType is --ticket-tlv-type).
    uint16_t ptp_offset = 0;
    uint32_t key_id = 0; ///< of the AUTHENTICATION TLV
    uint16_t ticket_offset = 0;
    uint16_t auth_offset = 0;
    uint32_t flags = 0; ///< none defined: zero
    uint8_t reserved[24] = {};
    uint8_t frame[max_frame_len] = {};
    uint8_t padding[10] = {};
};
static_assert(sizeof(record) == 1600);
static_assert(offsetof(record, sequence) == 8 && offsetof(record, rx_ns) == 16 && offsetof(record, reason) == 24 &&
              offsetof(record, key_id) == 28 && offsetof(record, ticket_offset) == 32 &&
              offsetof(record, flags) == 36 && offsetof(record, frame) == 64);

} // namespace ptpsec::exception_wire
