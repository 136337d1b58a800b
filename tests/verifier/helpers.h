#pragma once

// What the Verifier tests share: event records, chains of batches signed by
// a real signer, logs made of them, and a registrar and signers in a
// temporary directory.

#include "../process.h"

#include <control/verifier/registrar.h>
#include <hsm/evidence.h>
#include <hsm/software_signer.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace ptpsec::verifier::test {

using ptpsec::test::temp_dir;

inline constexpr std::array<uint8_t, 10> gm_port{0x00, 0x1b, 0x21, 0xff, 0xfe, 0x01, 0x02, 0x03, 0x00, 0x01};
inline constexpr uint64_t base_time_ns = 1'700'000'000'000'000'000ULL;

/// A Sync (or another message) from the grandmaster: every observer of
/// sequenceId `seq` sees the same digest; `delay_ns` shifts the timestamp
/// this observer took.
inline event_record make_record(uint16_t seq, uint8_t message_type = 0, event_direction dir = event_direction::rx,
                                int64_t delay_ns = 0) {
    event_record r{};
    r.version = event_record_version;
    r.direction = dir;
    r.messageType = message_type;
    r.domainNumber = 24;
    r.sdoId = 0x100;
    r.port_id = 1;
    r.timestamp_ns = static_cast<uint64_t>(static_cast<int64_t>(base_time_ns + seq * 125'000'000ULL) + delay_ns);
    r.correctionField = int64_t{seq} << 16;
    r.sourcePortIdentity = gm_port;
    r.sequenceId = seq;
    r.messageLength = 44;
    r.flagField = 0x0200;
    r.flags = event_flag_hw_timestamp;
    for (size_t i = 0; i < r.digest.size(); ++i) {
        r.digest[i] = static_cast<uint8_t>(size_t{seq} * 7 + size_t{message_type} * 3 + i);
    }
    return r;
}

/// A signer's chain: each batch names the previous root and continues the
/// event indexes.
class chain {
public:
    chain(hsm::signer& s, std::string signer_id) : _signer(s), _signer_id(std::move(signer_id)) {}

    /// Signs the next batch: `n` Syncs starting at sequenceId `first_seq`,
    /// closed at `time_ns` (default: after the last one).
    hsm::batch_record next(size_t n, std::optional<std::vector<uint8_t>> nonce = std::nullopt,
                           std::optional<uint64_t> time_ns = std::nullopt, int64_t delay_ns = 0) {
        hsm::batch_request req;
        req.signer_id = _signer_id;
        req.batch_time_ns = time_ns ? *time_ns : base_time_ns + (_next_seq + n) * 125'000'000ULL;
        for (size_t i = 0; i < n; ++i) {
            req.events.push_back(
                {make_record(static_cast<uint16_t>(_next_seq + i), 0, event_direction::rx, delay_ns), _next_index + i});
        }
        req.previous_root = _previous;
        req.missed_events = 0;
        req.nonce = std::move(nonce);
        auto r = hsm::sign_batch(_signer, req);
        EXPECT_TRUE(r) << r.message();
        if (!r) {
            return {};
        }
        _previous = r->payload.merkle_root;
        _next_index += n;
        _next_seq += n;
        return std::move(*r);
    }

    /// The next batch's first event index (a faulty signer's, when lower
    /// than the last).
    void set_next_index(uint64_t index) noexcept { _next_index = index; }

private:
    hsm::signer& _signer;
    std::string _signer_id;
    hsm::digest _previous = hsm::first_batch_previous_root;
    uint64_t _next_index = 0;
    uint64_t _next_seq = 1000;
};

/// The log holding `records` in order, and where each starts.
struct log_bytes {
    std::vector<uint8_t> bytes;
    std::vector<size_t> offsets;
};

inline log_bytes make_log(const std::vector<hsm::batch_record>& records) {
    log_bytes out;
    for (const auto& r : records) {
        auto enc = hsm::encode_log_record(r);
        EXPECT_TRUE(enc) << enc.message();
        out.offsets.push_back(out.bytes.size());
        out.bytes.insert(out.bytes.end(), enc->begin(), enc->end());
    }
    return out;
}

inline void write_bytes(const std::string& path, const std::vector<uint8_t>& b) {
    ptpsec::test::write_file(path, std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

/// A software signer with its key and counter in `dir`.
inline std::unique_ptr<hsm::software_signer> software(const temp_dir& dir, const std::string& name,
                                                      hsm::signature_algorithm alg = hsm::signature_algorithm::eddsa) {
    auto s = hsm::software_signer::open({dir.file(name + ".pem"), dir.file(name + ".counter"), alg});
    EXPECT_TRUE(s) << s.message();
    return s ? std::move(*s) : nullptr;
}

inline std::unique_ptr<registrar> open_registrar(const temp_dir& dir, const std::string& name = "registrar.db") {
    auto r = registrar::open(dir.file(name));
    EXPECT_TRUE(r) << r.message();
    return r ? std::move(*r) : nullptr;
}

inline void enrol(registrar& reg, const hsm::signer& s, const std::string& signer_id) {
    auto st = reg.enrol_software(signer_id, s.info().algorithm, s.info().public_key_der, "test.pem", true);
    ASSERT_TRUE(st) << st.message();
}

} // namespace ptpsec::verifier::test
