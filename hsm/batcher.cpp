#include <hsm/batcher.h>

#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <ctime>
#include <system_error>
#include <utility>

namespace ptpsec::hsm {

namespace {

using steady = std::chrono::steady_clock;

uint64_t realtime_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<uint64_t>(ts.tv_nsec);
}

} // namespace

// ---- latency_histogram ----

size_t latency_histogram::bucket_of(uint64_t v) noexcept {
    v = std::min(v, (uint64_t{1} << max_bits) - 1);
    if (v < (uint64_t{1} << sub_bits)) {
        return static_cast<size_t>(v);
    }
    const unsigned e = 63U - static_cast<unsigned>(std::countl_zero(v)); // >= sub_bits
    const uint64_t sub = (v >> (e - sub_bits)) & ((uint64_t{1} << sub_bits) - 1);
    return (static_cast<size_t>(e - sub_bits + 1) << sub_bits) + static_cast<size_t>(sub);
}

uint64_t latency_histogram::upper_bound_of(size_t bucket) noexcept {
    if (bucket < (size_t{1} << sub_bits)) {
        return bucket;
    }
    const unsigned e = static_cast<unsigned>(bucket >> sub_bits) + sub_bits - 1;
    const uint64_t sub = bucket & ((size_t{1} << sub_bits) - 1);
    const uint64_t lower = ((uint64_t{1} << sub_bits) + sub) << (e - sub_bits);
    return lower + (uint64_t{1} << (e - sub_bits)) - 1;
}

void latency_histogram::add(uint64_t value_us, uint64_t count) noexcept {
    if (count == 0) {
        return;
    }
    _counts[bucket_of(value_us)] += count;
    _count += count;
    _max = std::max(_max, value_us);
}

uint64_t latency_histogram::quantile(double q) const noexcept {
    if (_count == 0) {
        return 0;
    }
    const double wanted = std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(_count));
    const uint64_t target = std::max<uint64_t>(1, static_cast<uint64_t>(wanted));
    uint64_t seen = 0;
    for (size_t b = 0; b < buckets; ++b) {
        seen += _counts[b];
        if (seen >= target) {
            return std::min(upper_bound_of(b), _max);
        }
    }
    return _max;
}

// ---- batcher ----

batcher::batcher(signer& s, evidence_log& log, batcher_settings settings)
    : _signer(s), _log(log), _settings(std::move(settings)) {
    _rng_state = static_cast<uint64_t>(steady::now().time_since_epoch().count()) ^ reinterpret_cast<uintptr_t>(this);
    _writer_rng_state = _rng_state ^ 0x5bd1e995ULL;
}

batcher::~batcher() {
    stop();
}

result<std::unique_ptr<batcher>> batcher::start(signer& s, evidence_log& log, batcher_settings settings) {
    if (settings.max_events == 0) {
        return error{"batcher: max_events must be at least 1"};
    }
    if (settings.max_wait.count() <= 0) {
        return error{"batcher: max_wait must be positive"};
    }
    if (settings.max_open_events < settings.max_events) {
        return error{fmt::format("batcher: max_open_events ({}) must be at least max_events ({})",
                                 settings.max_open_events, settings.max_events)};
    }
    if (settings.signer_id.empty() || settings.signer_id.size() > max_signer_id_len) {
        return error{fmt::format("batcher: the signer_id must be 1 to {} octets", max_signer_id_len)};
    }
    if (settings.pcr_summary && (settings.pcr_summary->empty() || settings.pcr_summary->size() > max_pcr_summary_len)) {
        return error{fmt::format("batcher: a pcr_summary is 1 to {} octets", max_pcr_summary_len)};
    }
    if (settings.builder_threads == 0 || settings.builder_threads > batch_builder::max_threads) {
        return error{fmt::format("batcher: builder_threads must be 1 to {}", batch_builder::max_threads)};
    }
    if (settings.retry_min.count() <= 0 || settings.retry_max < settings.retry_min) {
        return error{"batcher: retry_min must be positive and retry_max at least retry_min"};
    }
    std::unique_ptr<batcher> b(new batcher(s, log, std::move(settings)));
    for (slot& sl : b->_slots) {
        PTPSEC_TRY(builder, batch_builder::create(b->_settings.builder_threads));
        sl.builder = std::move(*builder);
    }

    if (const auto& last = log.last_record()) {
        const batch_payload& p = last->payload;
        const std::string where = log.current_path().parent_path().string();
        if (p.signer_id != b->_settings.signer_id) {
            return error{fmt::format("batcher: the evidence log in {} ends with a batch of signer '{}', not '{}': "
                                     "use another log for another signer",
                                     where, p.signer_id, b->_settings.signer_id)};
        }
        const signer_info& info = s.info();
        if (auto checked = check_batch_record(*last, info.algorithm, info.public_key_der); !checked) {
            return error{fmt::format("batcher: the last batch in the evidence log in {} (counter {}) does not "
                                     "verify under this signer's key ({}): use another log for another key",
                                     where, p.counter, checked.message())};
        }
        auto counter = s.read_counter();
        if (!counter) {
            return error{fmt::format("batcher: cannot read the signer's counter: {}", counter.message())};
        }
        if (*counter < p.counter) {
            return error{fmt::format("batcher: the signer's counter is {} but the evidence log in {} already holds "
                                     "counter {}: the counter was rolled back or replaced",
                                     *counter, where, p.counter)};
        }
        b->_previous_root = p.merkle_root;
        b->_previous_last_index = p.last_event_index;
        b->_next_index = p.last_event_index + 1;
        b->_index_after_last_event = b->_next_index;
        b->_stats.last_counter = p.counter;
    }
    try {
        b->_writer = std::thread([p = b.get()] { p->run_writer(); });
    } catch (const std::system_error& e) {
        return error{fmt::format("batcher: cannot start the writer thread: {}", e.what())};
    }
    try {
        b->_thread = std::thread([p = b.get()] {
            p->run();
            p->end_signing();
        });
    } catch (const std::system_error& e) {
        b->end_signing();
        b->_writer.join();
        return error{fmt::format("batcher: cannot start the signer thread: {}", e.what())};
    }
    return b;
}

size_t batcher::submit(std::span<const event_record> records, uint64_t missed) {
    const auto now = steady::now();
    bool wake = false;
    size_t accepted = 0;
    {
        std::lock_guard lk(_mutex);
        _events_submitted += records.size();
        _missed_ring += missed;
        if (_stopping) {
            _events_refused += records.size();
            return 0;
        }
        _next_index += missed;
        size_t i = 0;
        while (i < records.size()) {
            const size_t held = events_held();
            if (held >= _settings.max_open_events) {
                const size_t rest = records.size() - i;
                _missed_overflow += rest;
                _next_index += rest;
                break;
            }
            size_t chunk = std::min(records.size() - i, _settings.max_open_events - held);
            // An idle signer thread takes a batch at exactly N: the burst is
            // split there and the rest opens the next batch.
            const bool close_at_n = _signer_waiting && _closed.empty() && _open.events.size() < _settings.max_events;
            if (close_at_n) {
                chunk = std::min(chunk, _settings.max_events - _open.events.size());
            }
            if (_open.empty()) {
                _open.first_submit = now;
                wake = wake || _signer_waiting; // it starts the T timer
            }
            for (size_t j = 0; j < chunk; ++j) {
                _open.events.push_back(batch_event{records[i + j], _next_index++});
            }
            _open.bursts.push_back(burst_mark{chunk, now});
            _index_after_last_event = _next_index;
            i += chunk;
            accepted += chunk;
            if (close_at_n && _open.events.size() >= _settings.max_events) {
                std::swap(_open, _closed);
                _signer_waiting = false;
                wake = true;
            }
        }
    }
    if (wake) {
        _wake.notify_one();
    }
    return accepted;
}

status batcher::set_nonce(std::optional<std::vector<uint8_t>> nonce) {
    if (nonce && (nonce->size() < min_nonce_len || nonce->size() > max_nonce_len)) {
        return error{
            fmt::format("batcher: a nonce is {} to {} octets, not {}", min_nonce_len, max_nonce_len, nonce->size())};
    }
    std::lock_guard lk(_mutex);
    _nonce = std::move(nonce);
    return ok_status();
}

std::optional<std::vector<uint8_t>> batcher::nonce() const {
    std::lock_guard lk(_mutex);
    return _nonce;
}

batcher_stats batcher::stats() const {
    batcher_stats out;
    {
        std::lock_guard lk(_stats_mutex);
        out = _stats;
        out.latency_p50 = std::chrono::microseconds(_latency.quantile(0.50));
        out.latency_p99 = std::chrono::microseconds(_latency.quantile(0.99));
        out.latency_max = std::chrono::microseconds(_latency.max());
    }
    out.signer_cpu = std::chrono::nanoseconds(_signer_cpu_ns.load(std::memory_order_relaxed) +
                                              _writer_cpu_ns.load(std::memory_order_relaxed));
    for (const slot& sl : _slots) {
        out.signer_cpu += sl.builder->helpers_cpu();
    }
    std::lock_guard lk(_mutex);
    out.events_submitted = _events_submitted;
    out.missed_ring = _missed_ring;
    out.missed_overflow = _missed_overflow;
    out.events_refused = _events_refused;
    out.events_held = events_held();
    out.next_event_index = _next_index;
    return out;
}

batcher_stop_report batcher::stop() {
    std::lock_guard stop_lock(_stop_mutex);
    if (_stop_report) {
        return *_stop_report;
    }
    {
        std::lock_guard lk(_mutex);
        _stopping = true;
        _stop_deadline = steady::now() + _settings.stop_timeout;
    }
    _wake.notify_one();
    _writer_wake.notify_one();
    if (_thread.joinable()) {
        _thread.join();
    }
    if (_writer.joinable()) {
        _writer.join();
    }
    batcher_stop_report report;
    {
        std::lock_guard lk(_mutex);
        report.events_unsigned = _events_abandoned;
        report.trailing_missed = _next_index - _index_after_last_event;
    }
    {
        std::lock_guard lk(_stats_mutex);
        report.last_error = _stats.last_error;
    }
    _stop_report = report;
    return report;
}

void batcher::merge_into(batch_buffer& to, batch_buffer& from) {
    if (from.empty()) {
        return;
    }
    if (to.empty()) {
        to.first_submit = from.first_submit;
    }
    to.events.insert(to.events.end(), from.events.begin(), from.events.end());
    to.bursts.insert(to.bursts.end(), from.bursts.begin(), from.bursts.end());
    from.clear();
}

std::chrono::milliseconds batcher::next_backoff(uint64_t& rng_state, unsigned failures) {
    // Bounded exponential backoff with "equal jitter": d = min(max, min *
    // 2^(failures-1)), the wait drawn from [d/2, d], so that signers that
    // failed together do not retry in step.
    const unsigned doublings = std::min(failures == 0 ? 0U : failures - 1, 20U);
    const int64_t d = std::min<int64_t>(_settings.retry_max.count(), _settings.retry_min.count() << doublings);
    // splitmix64 (Steele, Lea, Flood 2014).
    rng_state += 0x9e3779b97f4a7c15ULL;
    uint64_t z = rng_state;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    const int64_t half = d / 2;
    return std::chrono::milliseconds(half + static_cast<int64_t>(z % static_cast<uint64_t>(d - half + 1)));
}

void batcher::record_failure(bool log_failure, const std::string& message) {
    std::lock_guard lk(_stats_mutex);
    if (log_failure) {
        ++_stats.log_failures;
    } else {
        ++_stats.sign_failures;
    }
    _stats.last_error = message;
}

void batcher::run() {
    batch_buffer working;
    std::optional<std::vector<uint8_t>> working_nonce;
    uint64_t batch_time_ns = 0;
    unsigned failures = 0;
    steady::time_point retry_at{};
    // The slot this thread signs into next; the writer appends in the same
    // order.
    size_t next_slot = 0;

    for (;;) {
        {
            std::unique_lock lk(_mutex);
            if (working.empty()) {
                // Wait until the writer is done with the builder this batch
                // will be signed into (the batch before last): meanwhile the
                // open batch grows. The writer always frees it, with the
                // batch appended or, past stop's deadline, given up on.
                _slot_free.wait(lk, [&] { return !_slots[next_slot].pending; });
                // Free: wait for the producer to close a batch at N, for the
                // open batch's first event to be T old, or for stop().
                for (;;) {
                    if (!_closed.empty()) {
                        std::swap(working, _closed);
                        break;
                    }
                    if (!_open.empty() && (_stopping || _open.events.size() >= _settings.max_events ||
                                           steady::now() >= _open.first_submit + _settings.max_wait)) {
                        std::swap(working, _open);
                        break;
                    }
                    if (_stopping) {
                        return;
                    }
                    _signer_waiting = true;
                    if (_open.empty()) {
                        _wake.wait(lk);
                    } else {
                        _wake.wait_until(lk, _open.first_submit + _settings.max_wait);
                    }
                    _signer_waiting = false;
                }
                _events_signing = working.events.size();
                // Under the lock with set_nonce(): a nonce set before this
                // batch's time is in it (docs/attestation.md, payload key 13).
                working_nonce = _nonce;
                batch_time_ns = realtime_ns();
            } else {
                // Holding a batch after a failure: back off, bounded by
                // stop()'s deadline.
                for (;;) {
                    const auto now = steady::now();
                    if (_stopping && now >= _stop_deadline) {
                        _events_abandoned += working.events.size() + _closed.events.size() + _open.events.size();
                        _events_signing = 0;
                        return;
                    }
                    if (now >= retry_at) {
                        break;
                    }
                    _wake.wait_until(lk, _stopping ? std::min(retry_at, _stop_deadline) : retry_at);
                }
                // Not signed yet: what arrived meanwhile joins the batch, so
                // one signature covers the outage.
                merge_into(working, _closed);
                merge_into(working, _open);
                _events_signing = working.events.size();
                working_nonce = _nonce;
                batch_time_ns = realtime_ns();
            }
        }

        slot& sl = _slots[next_slot];
        batch_request req;
        req.signer_id = _settings.signer_id;
        req.batch_time_ns = batch_time_ns;
        req.events = std::move(working.events);
        req.previous_root = _previous_root;
        // docs/attestation.md, payload key 12: the indexes skipped since the
        // previous batch (for the key's first batch, since index 0).
        const uint64_t last = req.events.back().event_index;
        const uint64_t span = _previous_last_index ? last - *_previous_last_index : last + 1;
        req.missed_events = span - req.events.size();
        req.nonce = working_nonce;
        req.pcr_summary = _settings.pcr_summary;
        auto signed_batch = sl.builder->sign(_signer, req);
        working.events = std::move(req.events);
        _signer_cpu_ns.store(thread_cpu_time().count(), std::memory_order_relaxed);
        if (!signed_batch) {
            ++failures;
            record_failure(false, fmt::format("signing a batch of {} events failed (attempt {}): {}",
                                              working.events.size(), failures, signed_batch.message()));
            retry_at = steady::now() + next_backoff(_rng_state, failures);
            continue;
        }

        // Signed: the chain moves on now (the writer appends in this order,
        // and retries a record until it is in the log or stop gives up on
        // it and on every later one), and the batch goes to the writer.
        _previous_root = sl.builder->payload().merkle_root;
        _previous_last_index = sl.builder->payload().last_event_index;
        working_nonce.reset();
        failures = 0;
        {
            std::lock_guard lk(_mutex);
            std::swap(sl.batch, working);
            sl.pending = true;
            _events_writing += sl.batch.events.size();
            _events_signing = 0;
        }
        _writer_wake.notify_one();
        working.clear();
        next_slot ^= 1U;
    }
}

void batcher::end_signing() {
    {
        std::lock_guard lk(_mutex);
        _signer_done = true;
    }
    _writer_wake.notify_one();
}

void batcher::abandon_slot(slot& sl) {
    _events_abandoned += sl.batch.events.size();
    _events_writing -= sl.batch.events.size();
    sl.batch.clear();
    sl.pending = false;
}

void batcher::run_writer() {
    size_t next_slot = 0;
    unsigned failures = 0;
    for (;;) {
        slot& sl = _slots[next_slot];
        {
            std::unique_lock lk(_mutex);
            _writer_wake.wait(lk, [&] { return sl.pending || _signer_done; });
            if (!sl.pending) {
                return; // the signer thread is done and everything is written
            }
            if (_writer_gave_up) {
                // Past stop's deadline the writer gives up on this record
                // and on every later one, so the log has no hole.
                abandon_slot(sl);
                lk.unlock();
                _slot_free.notify_one();
                next_slot ^= 1U;
                continue;
            }
        }

        const batch_payload& payload = sl.builder->payload();
        if (auto appended = _log.append_parts(sl.builder->log_record()); !appended) {
            ++failures;
            record_failure(true, fmt::format("appending the batch with counter {} to the evidence log failed "
                                             "(attempt {}): {}",
                                             payload.counter, failures, appended.message()));
            const auto retry_at = steady::now() + next_backoff(_writer_rng_state, failures);
            std::unique_lock lk(_mutex);
            for (;;) {
                const auto now = steady::now();
                if (_stopping && now >= _stop_deadline) {
                    _writer_gave_up = true;
                    break;
                }
                if (now >= retry_at) {
                    break;
                }
                _writer_wake.wait_until(lk, _stopping ? std::min(retry_at, _stop_deadline) : retry_at);
            }
            _writer_cpu_ns.store(thread_cpu_time().count(), std::memory_order_relaxed);
            continue;
        }

        const auto done = steady::now();
        {
            std::lock_guard lk(_stats_mutex);
            _stats.events_signed += sl.batch.events.size();
            ++_stats.batches_signed;
            _stats.largest_batch = std::max<uint64_t>(_stats.largest_batch, sl.batch.events.size());
            _stats.last_counter = payload.counter;
            for (const burst_mark& b : sl.batch.bursts) {
                const auto waited = std::chrono::duration_cast<std::chrono::microseconds>(done - b.submitted);
                _latency.add(static_cast<uint64_t>(std::max<int64_t>(0, waited.count())), b.count);
            }
        }
        _writer_cpu_ns.store(thread_cpu_time().count(), std::memory_order_relaxed);
        failures = 0;
        {
            std::lock_guard lk(_mutex);
            _events_writing -= sl.batch.events.size();
            sl.batch.clear();
            sl.pending = false;
        }
        _slot_free.notify_one();
        next_slot ^= 1U;
    }
}

} // namespace ptpsec::hsm
