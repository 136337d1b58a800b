#include <hsm/batch_builder.h>

#include <hsm/cose.h>
#include <hsm/deterministic_cbor.h>
#include <hsm/leaf_writer.h>

#include <fmt/format.h>

#include <cstring>

namespace ptpsec::hsm {

namespace {

constexpr uint8_t major_bytes = 2;
constexpr size_t max_bytes_head = 3; // a leaf is below 64 KiB

} // namespace

result<std::unique_ptr<batch_builder>> batch_builder::create() {
    PTPSEC_TRY(tree, merkle_root_hasher::create());
    return std::unique_ptr<batch_builder>(new batch_builder(std::move(*tree)));
}

std::array<std::span<const uint8_t>, 2> batch_builder::log_record() const noexcept {
    return {std::span<const uint8_t>(_record_head), std::span<const uint8_t>(_items.data(), _items_len)};
}

std::span<const uint8_t> batch_builder::leaf(size_t i) const noexcept {
    return {_items.data() + _leaves[i].claims, _leaves[i].length};
}

batch_record batch_builder::to_record() const {
    batch_record rec;
    rec.token = _token;
    rec.payload = _payload;
    rec.leaves.reserve(_leaves.size());
    for (size_t i = 0; i < _leaves.size(); ++i) {
        const auto l = leaf(i);
        rec.leaves.emplace_back(l.begin(), l.end());
    }
    return rec;
}

status batch_builder::sign(signer& s, const batch_request& req) {
    _holds = false;
    if (req.events.empty()) {
        return error{"batch: no events to sign"};
    }
    if (req.signer_id.empty() || req.signer_id.size() > max_signer_id_len) {
        return error{fmt::format("batch: a signer_id is 1 to {} octets", max_signer_id_len)};
    }
    PTPSEC_TRY(nonce_ok, check_nonce_length(req.nonce, "batch"));
    if (req.pcr_summary && (req.pcr_summary->empty() || req.pcr_summary->size() > max_pcr_summary_len)) {
        return error{fmt::format("batch: a pcr_summary is 1 to {} octets", max_pcr_summary_len)};
    }
    for (size_t i = 0; i < req.events.size(); ++i) {
        if (i > 0 && req.events[i].event_index <= req.events[i - 1].event_index) {
            return error{fmt::format("batch: event {} has index {}, not above the previous {}", i,
                                     req.events[i].event_index, req.events[i - 1].event_index)};
        }
        const event_record& r = req.events[i].record;
        if (r.version != event_record_version ||
            (r.direction != event_direction::rx && r.direction != event_direction::tx) || r.messageType > 15) {
            // claims_from_record says exactly what is wrong.
            PTPSEC_TRY(refused,
                       claims_from_record(r, req.events[i].event_index, 1, req.signer_id, req.nonce, req.pcr_summary));
        }
    }
    const signer_info& info = s.info();
    auto counter = s.next_counter();
    if (!counter) {
        return error{fmt::format("batch: the signer's counter did not advance: {}", counter.message())};
    }

    // The leaves, each as the byte string the log holds, with the last
    // octet of its head standing in for the leaf prefix 0x00 until the tree
    // is hashed. A leaf's head is as long as the previous one's, which is
    // nearly always right; when it is not, the claims move.
    const std::vector<uint8_t> batch_part = encode_batch_claims(req.nonce, *counter, req.signer_id, req.pcr_summary);
    const size_t room = max_bytes_head + max_claims_len_besides_batch_part + batch_part.size();
    const size_t n = req.events.size();
    if (_items.size() < n * room) {
        _items.resize(n * room);
    }
    _leaves.resize(n);
    _hash_inputs.resize(n);
    uint8_t* const items = _items.data();
    size_t at = 0;
    size_t head_len = 2;
    for (size_t i = 0; i < n; ++i) {
        const leaf_fields f = leaf_fields_of(req.events[i].record, req.events[i].event_index);
        uint8_t* claims = items + at + head_len;
        const auto length = static_cast<size_t>(put_claims(claims, f, batch_part) - claims);
        if (const size_t need = cbor::shortest_head_length(length); need != head_len) {
            std::memmove(items + at + need, claims, length);
            head_len = need;
            claims = items + at + need;
        }
        cbor::put_head(items + at, major_bytes, length);
        claims[-1] = 0x00;
        _leaves[i] = leaf_at{at, at + head_len, length};
        _hash_inputs[i] = std::span<const uint8_t>(claims - 1, length + 1);
        at += head_len + length;
    }
    _items_len = at;
    auto root = _tree->root_of_prefixed(_hash_inputs);
    for (const leaf_at& l : _leaves) {
        cbor::put_head(items + l.head, major_bytes, l.length);
    }
    if (!root) {
        return root.err();
    }

    batch_payload& p = _payload;
    p.version = evidence_version;
    p.signer_id = req.signer_id;
    p.backend = info.kind;
    p.hardware_rooted = info.hardware_rooted && info.kind != backend_kind::software;
    p.counter = *counter;
    p.batch_time_ns = req.batch_time_ns;
    p.merkle_root = *root;
    p.event_count = n;
    p.first_event_index = req.events.front().event_index;
    p.last_event_index = req.events.back().event_index;
    p.previous_root = req.previous_root;
    p.missed_events = req.missed_events;
    p.nonce = req.nonce;
    PTPSEC_TRY(payload, encode_batch_payload(p));
    const auto* kid = reinterpret_cast<const uint8_t*>(req.signer_id.data());
    PTPSEC_TRY(token, sign_cose_sign1(s, {kid, req.signer_id.size()}, *payload));
    _token = std::move(*token);

    // The record's head as encode_log_record() writes it (keys 1, 2, 3).
    PTPSEC_TRY(token_octets, cbor::encode(to_item(_token)));
    _record_head.clear();
    cbor::writer w(_record_head);
    w.map_head(3);
    w.uint(record_key::type);
    w.uint(record_type_batch);
    w.uint(record_key::token);
    w.raw(*token_octets);
    w.uint(record_key::leaves);
    w.array_head(n);
    _holds = true;
    return ok_status();
}

} // namespace ptpsec::hsm
