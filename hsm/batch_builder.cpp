#include <hsm/batch_builder.h>

#include <drivers/base/thread_name.h>
#include <hsm/cose.h>
#include <hsm/deterministic_cbor.h>
#include <hsm/leaf_writer.h>

#include <fmt/format.h>

#include <bit>
#include <cstring>
#include <ctime>
#include <system_error>

namespace ptpsec::hsm {

namespace {

constexpr uint8_t major_bytes = 2;
constexpr size_t max_bytes_head = 3; // a leaf is below 64 KiB
constexpr size_t parts_per_thread = 4;

/// Events [from, end) are in index order after the one before them, and
/// each can be claimed.
status check_events(const batch_request& req, size_t from, size_t end) {
    for (size_t i = from; i < end; ++i) {
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
    return ok_status();
}

/// What every leaf of the batch holds besides its event: signer_id, nonce,
/// pcr_summary.
status check_header(const batch_request& req) {
    if (req.signer_id.empty() || req.signer_id.size() > max_signer_id_len) {
        return error{fmt::format("batch: a signer_id is 1 to {} octets", max_signer_id_len)};
    }
    PTPSEC_TRY(nonce_ok, check_nonce_length(req.nonce, "batch"));
    if (req.pcr_summary && (req.pcr_summary->empty() || req.pcr_summary->size() > max_pcr_summary_len)) {
        return error{fmt::format("batch: a pcr_summary is 1 to {} octets", max_pcr_summary_len)};
    }
    return ok_status();
}

} // namespace

std::chrono::nanoseconds thread_cpu_time() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

result<std::shared_ptr<helper_pool>> helper_pool::create(unsigned helpers) {
    if (helpers == 0) {
        return error{"helper pool: at least one helper"};
    }
    std::shared_ptr<helper_pool> p(new helper_pool());
    try {
        for (unsigned id = 1; id <= helpers; ++id) {
            p->_threads.emplace_back([q = p.get(), id] { q->helper(id); });
            name_thread(p->_threads.back(), fmt::format("attest-help-{}", id));
        }
    } catch (const std::system_error& e) {
        return error{fmt::format("batch builder: cannot start a helper thread: {}", e.what())};
    }
    return p;
}

helper_pool::~helper_pool() {
    {
        std::lock_guard lk(_mutex);
        _quit = true;
    }
    _work.notify_all();
    for (auto& t : _threads) {
        t.join();
    }
}

void helper_pool::run(void (*job)(void* ctx, unsigned id) noexcept, void* ctx) {
    std::lock_guard turn(_run_mutex);
    {
        std::lock_guard lk(_mutex);
        _job = job;
        _ctx = ctx;
        ++_generation;
        _busy = helpers();
    }
    _work.notify_all();
    job(ctx, 0);
    std::unique_lock lk(_mutex);
    _done.wait(lk, [&] { return _busy == 0; });
}

void helper_pool::helper(unsigned id) {
    uint64_t seen = 0;
    std::chrono::nanoseconds counted{0}; // this thread's CPU time already in _cpu_ns
    for (;;) {
        void (*job)(void*, unsigned) noexcept = nullptr;
        void* ctx = nullptr;
        {
            std::unique_lock lk(_mutex);
            _work.wait(lk, [&] { return _quit || _generation != seen; });
            if (_quit) {
                return;
            }
            seen = _generation;
            job = _job;
            ctx = _ctx;
        }
        job(ctx, id);
        const std::chrono::nanoseconds now = thread_cpu_time();
        _cpu_ns.fetch_add((now - counted).count(), std::memory_order_relaxed);
        counted = now;
        {
            std::lock_guard lk(_mutex);
            --_busy;
        }
        _done.notify_one();
    }
}

result<std::unique_ptr<batch_builder>> batch_builder::create(unsigned threads, std::shared_ptr<helper_pool> pool) {
    if (threads == 0 || threads > max_threads) {
        return error{fmt::format("batch builder: 1 to {} threads, not {}", max_threads, threads)};
    }
    if (pool && pool->helpers() != threads - 1) {
        return error{fmt::format("batch builder: {} threads need a pool of {} helpers, not {}", threads, threads - 1,
                                 pool->helpers())};
    }
    std::unique_ptr<batch_builder> b(new batch_builder());
    for (unsigned i = 0; i < threads; ++i) {
        PTPSEC_TRY(hasher, merkle_root_hasher::create());
        b->_hashers.push_back(std::move(*hasher));
    }
    if (threads > 1 && !pool) {
        PTPSEC_TRY(own, helper_pool::create(threads - 1));
        pool = std::move(*own);
    }
    b->_pool = std::move(pool);
    return b;
}

batch_builder::~batch_builder() = default;

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

void batch_builder::run_parts(unsigned id) noexcept {
    for (;;) {
        const size_t j = _next_part.fetch_add(1, std::memory_order_relaxed);
        if (j >= _parts.size()) {
            return;
        }
        build_part(_parts[j], *_hashers[id]);
    }
}

void batch_builder::build_part(part& p, merkle_root_hasher& hasher) noexcept {
    // Each leaf as the byte string the log holds, with the last octet of its
    // head standing in for the leaf prefix 0x00 until the part is hashed. A
    // leaf's head is as long as the previous one's, which is nearly always
    // right; when it is not, the claims move.
    uint8_t* const items = _items.data();
    size_t at = p.first * _room;
    size_t head_len = 2;
    for (size_t i = p.first; i < p.first + p.count; ++i) {
        const batch_event& e = _req->events[i];
        const leaf_fields f = leaf_fields_of(e.record, e.event_index);
        uint8_t* claims = items + at + head_len;
        const auto length = static_cast<size_t>(put_claims(claims, f, _batch_part) - claims);
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
    p.end = at;
    auto root = hasher.root_of_prefixed({_hash_inputs.data() + p.first, p.count});
    for (size_t i = p.first; i < p.first + p.count; ++i) {
        cbor::put_head(items + _leaves[i].head, major_bytes, _leaves[i].length);
    }
    if (root) {
        p.root = *root;
    } else {
        try {
            p.error = root.message();
        } catch (...) {
            // Out of memory for the message: the empty root is checked too.
        }
        p.root = first_batch_previous_root;
    }
}

status batch_builder::sign(signer& s, const batch_request& req) {
    _holds = false;
    _begun = false;
    if (req.events.empty()) {
        return error{"batch: no events to sign"};
    }
    // Everything that can be refused is refused before the counter moves.
    PTPSEC_TRY(header_ok, check_header(req));
    PTPSEC_TRY(events_ok, check_events(req, 0, req.events.size()));
    auto counter = s.next_counter();
    if (!counter) {
        return error{fmt::format("batch: the signer's counter did not advance: {}", counter.message())};
    }
    PTPSEC_TRY(begun, begin(*counter, req));
    PTPSEC_TRY(finished, finish(s.info(), req));
    return seal(s);
}

status batch_builder::begin(uint64_t counter, const batch_request& req) {
    _holds = false;
    _begun = false;
    _finished = false;
    PTPSEC_TRY(header_ok, check_header(req));
    _counter = counter;
    _nonce = req.nonce;
    _batch_part = encode_batch_claims(req.nonce, counter, req.signer_id, req.pcr_summary);
    _room = max_bytes_head + max_claims_len_besides_batch_part + _batch_part.size();
    _parts.clear();
    _added = 0;
    _begun = true;
    return ok_status();
}

status batch_builder::add(const batch_request& req) {
    if (!_begun) {
        return error{"batch: add() before begin()"};
    }
    const size_t whole = _added + (req.events.size() - _added) / part_leaves * part_leaves;
    if (whole == _added) {
        return ok_status();
    }
    return add_parts(req, whole, part_leaves);
}

status batch_builder::add_parts(const batch_request& req, size_t end, size_t size) {
    const auto fail = [&](error e) {
        _begun = false;
        return e;
    };
    if (auto checked = check_events(req, _added, end); !checked) {
        return fail(checked.err());
    }
    if (_items.size() < end * _room) {
        _items.resize(end * _room);
    }
    _leaves.resize(end);
    _hash_inputs.resize(end);

    const size_t first_part = _parts.size();
    for (size_t first = _added; first < end; first += size) {
        _parts.push_back(part{first, std::min(size, end - first), 0, {}, {}});
    }
    _req = &req;
    _next_part.store(first_part, std::memory_order_relaxed);
    if (_parts.size() - first_part > 1 && _pool) {
        _pool->run([](void* self, unsigned id) noexcept { static_cast<batch_builder*>(self)->run_parts(id); }, this);
    } else {
        run_parts(0);
    }
    _req = nullptr;
    for (size_t j = first_part; j < _parts.size(); ++j) {
        if (!_parts[j].error.empty()) {
            return fail(error{_parts[j].error});
        }
    }
    _added = end;
    return ok_status();
}

status batch_builder::finish(const signer_info& info, const batch_request& req) {
    if (!_begun) {
        return error{"batch: finish() before begin()"};
    }
    const size_t n = req.events.size();
    if (n == 0) {
        _begun = false;
        return error{"batch: no events to sign"};
    }
    if (_added < n) {
        // The parts: one, or 2^k leaves each so that a part's root is a node
        // of the tree. A batch begun in parts of part_leaves goes on in
        // them; one built at once is cut for the threads.
        size_t size = part_leaves;
        if (_added == 0) {
            size = n;
            if (threads() > 1) {
                const size_t wanted = threads() * parts_per_thread;
                size = std::max(min_part_leaves, std::bit_ceil((n + wanted - 1) / wanted));
            }
        }
        PTPSEC_TRY(added, add_parts(req, n, size));
    }
    _begun = false;

    _part_roots.clear();
    for (const part& p : _parts) {
        _part_roots.push_back(p.root);
    }
    digest root = _part_roots[0];
    if (_parts.size() > 1) {
        PTPSEC_TRY(top, _hashers[0]->root_of_nodes(_part_roots));
        root = *top;
    }

    batch_payload& p = _payload;
    p.version = evidence_version;
    p.signer_id = req.signer_id;
    p.backend = info.kind;
    p.hardware_rooted = info.hardware_rooted && info.kind != backend_kind::software;
    p.counter = _counter;
    p.batch_time_ns = req.batch_time_ns;
    p.merkle_root = root;
    p.event_count = n;
    p.first_event_index = req.events.front().event_index;
    p.last_event_index = req.events.back().event_index;
    p.previous_root = req.previous_root;
    p.missed_events = req.missed_events;
    p.nonce = req.nonce;
    PTPSEC_TRY(payload, encode_batch_payload(p));
    _payload_octets = std::move(*payload);
    _finished = true;
    return ok_status();
}

status batch_builder::seal(signer& s) {
    if (!_finished) {
        return error{"batch: seal() before finish()"};
    }
    const std::string& id = _payload.signer_id;
    const auto* kid = reinterpret_cast<const uint8_t*>(id.data());
    PTPSEC_TRY(token, sign_cose_sign1(s, {kid, id.size()}, _payload_octets));
    _token = std::move(*token);

    // The record's head as encode_log_record() writes it (keys 1, 2, 3),
    // then the parts' runs of leaves.
    PTPSEC_TRY(token_octets, cbor::encode(to_item(_token)));
    _record_head.clear();
    write_log_record_head(_record_head, *token_octets, _leaves.size());
    _record_parts.clear();
    _record_parts.emplace_back(_record_head);
    for (const part& run : _parts) {
        const size_t start = run.first * _room;
        _record_parts.emplace_back(_items.data() + start, run.end - start);
    }
    _finished = false;
    _holds = true;
    return ok_status();
}

} // namespace ptpsec::hsm
