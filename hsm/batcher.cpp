#include <hsm/batcher.h>

#include <drivers/base/thread_name.h>

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
    _device_rng_state = _rng_state ^ 0x2545f4914f6cdd1dULL;
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
    // The slots' builders share one pool of helpers: only the builder
    // thread builds, one slot at a time.
    if (b->_settings.builder_threads > 1) {
        PTPSEC_TRY(pool, helper_pool::create(b->_settings.builder_threads - 1));
        b->_helpers = std::move(*pool);
    }
    for (slot& sl : b->_slots) {
        PTPSEC_TRY(builder, batch_builder::create(b->_settings.builder_threads, b->_helpers));
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
        name_thread(b->_writer, "attest-log");
    } catch (const std::system_error& e) {
        return error{fmt::format("batcher: cannot start the writer thread: {}", e.what())};
    }
    try {
        b->_device = std::thread([p = b.get()] {
            p->run_device();
            p->end_sealing();
        });
        name_thread(b->_device, "attest-sign");
    } catch (const std::system_error& e) {
        b->end_sealing();
        b->_writer.join();
        return error{fmt::format("batcher: cannot start the device thread: {}", e.what())};
    }
    try {
        b->_thread = std::thread([p = b.get()] {
            p->run();
            p->end_building();
        });
        name_thread(b->_thread, "attest-build");
    } catch (const std::system_error& e) {
        b->end_building();
        b->_device.join();
        b->_writer.join();
        return error{fmt::format("batcher: cannot start the builder thread: {}", e.what())};
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
            // A waiting builder thread with the device free takes a batch at
            // exactly N: the burst is split there and the rest opens the
            // next batch.
            const size_t open_size = _open_taken + _open.events.size();
            const bool close_at_n =
                _builder_waiting && !device_busy() && _closed.empty() && open_size < _settings.max_events;
            if (close_at_n) {
                chunk = std::min(chunk, _settings.max_events - open_size);
            }
            if (_open.empty()) {
                _open.first_submit = now;
                wake = wake || (_builder_waiting && _open_taken == 0); // it starts the T timer
            }
            const size_t before = _open.events.size();
            for (size_t j = 0; j < chunk; ++j) {
                _open.events.push_back(batch_event{records[i + j], _next_index++});
            }
            _open.bursts.push_back(burst_mark{chunk, now});
            _index_after_last_event = _next_index;
            i += chunk;
            accepted += chunk;
            if (close_at_n && open_size + chunk >= _settings.max_events) {
                std::swap(_open, _closed);
                _open_taken = 0;
                _builder_waiting = false;
                wake = true;
            } else if (_builder_waiting && before < _build_at && _open.events.size() >= _build_at) {
                wake = true; // a whole part to build
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
    out.signer_cpu = std::chrono::nanoseconds(_builder_cpu_ns.load(std::memory_order_relaxed) +
                                              _device_cpu_ns.load(std::memory_order_relaxed) +
                                              _writer_cpu_ns.load(std::memory_order_relaxed));
    if (_helpers) {
        out.signer_cpu += _helpers->cpu();
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
    _device_wake.notify_one();
    _writer_wake.notify_one();
    if (_thread.joinable()) {
        _thread.join();
    }
    if (_device.joinable()) {
        _device.join();
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
    // The batch being built: the events taken from the open batch. Their
    // leaves go into the slot's builder in whole parts as they arrive, while
    // the device signs the previous batch, so that what is left when the
    // batch closes is the last part and the top of the tree.
    batch_buffer working;
    batch_request req;
    req.signer_id = _settings.signer_id;
    req.pcr_summary = _settings.pcr_summary;
    // Advanced for the batch being built and in no batch yet; 0 for none
    // (a counter starts at 1).
    uint64_t counter = 0;
    unsigned failures = 0;
    steady::time_point retry_at{};
    const signer_info& info = _signer.info();
    // The slot this thread builds into next; the device thread and the
    // writer take them in the same order.
    size_t next_slot = 0;

    for (;;) {
        slot& sl = _slots[next_slot];
        batch_builder& b = *sl.builder;
        bool close = false;
        {
            std::unique_lock lk(_mutex);
            // Wait until the writer is done with this slot's builder (the
            // batch three back): meanwhile the open batch grows. The writer
            // always frees it, with the batch appended or, past stop's
            // deadline, given up on.
            _slot_free.wait(lk, [&] { return sl.st == slot::state::free; });
            for (;;) {
                const auto now = steady::now();
                if (failures > 0) {
                    // Holding a batch after a failure: back off, bounded by
                    // stop()'s deadline.
                    if (_stopping && now >= _stop_deadline) {
                        _events_abandoned += working.events.size() + _closed.events.size() + _open.events.size();
                        _events_building = 0;
                        _open_taken = 0;
                        return;
                    }
                    if (now < retry_at) {
                        _wake.wait_until(lk, _stopping ? std::min(retry_at, _stop_deadline) : retry_at);
                        continue;
                    }
                }
                if (!_closed.empty()) {
                    merge_into(working, _closed);
                    close = true;
                    break;
                }
                // The batch closes at N events, when its first is T old, at
                // stop or to retry, but only when the device is free: while
                // it signs the previous batch this one grows.
                const size_t open_size = working.events.size() + _open.events.size();
                const auto first = working.empty() ? _open.first_submit : working.first_submit;
                if (open_size > 0 && !device_busy() &&
                    (failures > 0 || _stopping || open_size >= _settings.max_events ||
                     now >= first + _settings.max_wait)) {
                    merge_into(working, _open); // what arrived meanwhile joins it
                    close = true;
                    break;
                }
                if (open_size == 0 && _stopping) {
                    return;
                }
                const size_t unbuilt = working.events.size() - (b.begun() ? b.leaves_added() : 0);
                if (failures == 0 && unbuilt + _open.events.size() >= batch_builder::part_leaves) {
                    merge_into(working, _open);
                    break; // a whole part to build
                }
                _builder_waiting = true;
                _build_at = failures == 0 ? batch_builder::part_leaves - unbuilt : SIZE_MAX;
                if (open_size == 0 || device_busy()) {
                    _wake.wait(lk);
                } else {
                    _wake.wait_until(lk, first + _settings.max_wait);
                }
                _builder_waiting = false;
            }
            _open_taken = close ? 0 : working.events.size();
            _events_building = working.events.size();
            // Under the lock with set_nonce(): a nonce set before this
            // batch's time is in it (docs/attestation.md, payload key 13).
            req.nonce = _nonce;
            if (close) {
                req.batch_time_ns = realtime_ns();
            }
        }

        req.events = std::move(working.events);
        status built = ok_status();
        if (counter == 0) {
            auto c = take_counter();
            if (c) {
                counter = *c;
            } else {
                built = error{fmt::format("the signer's counter did not advance: {}", c.message())};
            }
        }
        if (built && (!b.begun() || b.counter() != counter || b.nonce() != req.nonce)) {
            // A new batch, or a nonce set since its leaves were begun.
            built = b.begin(counter, req);
        }
        if (built && close) {
            req.previous_root = _previous_root;
            // docs/attestation.md, payload key 12: the indexes skipped since
            // the previous batch (for the key's first batch, since index 0).
            const uint64_t last = req.events.back().event_index;
            const uint64_t span = _previous_last_index ? last - *_previous_last_index : last + 1;
            req.missed_events = span - req.events.size();
            built = b.finish(info, req);
        } else if (built) {
            const size_t before = b.leaves_added();
            built = b.add(req);
            if (built && b.leaves_added() > before) {
                std::lock_guard lk(_stats_mutex);
                _stats.leaves_built_early += b.leaves_added() - before;
            }
        }
        working.events = std::move(req.events);
        _builder_cpu_ns.store(thread_cpu_time().count(), std::memory_order_relaxed);
        if (!built) {
            ++failures;
            record_failure(false, fmt::format("building a batch of {} events failed (attempt {}): {}",
                                              working.events.size(), failures, built.message()));
            retry_at = steady::now() + next_backoff(_rng_state, failures);
            continue;
        }
        if (!close) {
            continue;
        }

        // Built: the chain moves on now (the device thread and the writer
        // take the slots in this order, and stop gives up on a batch only
        // with every later one), and the batch goes to the device.
        _previous_root = b.payload().merkle_root;
        _previous_last_index = b.payload().last_event_index;
        counter = 0;
        failures = 0;
        bool more = false;
        {
            std::lock_guard lk(_mutex);
            more = !_open.empty() || !_closed.empty();
        }
        if (more) {
            // The next batch's counter while the device is free, so that its
            // leaves can be built while the device signs this one. On
            // failure it is asked for again (and counted) when needed.
            if (auto c = take_counter()) {
                counter = *c;
            }
        }
        {
            std::lock_guard lk(_mutex);
            std::swap(sl.batch, working);
            sl.st = slot::state::built;
            _events_sealing += sl.batch.events.size();
            _events_building = 0;
        }
        _device_wake.notify_one();
        working.clear();
        next_slot = (next_slot + 1) % _slots.size();
    }
}

result<uint64_t> batcher::take_counter() {
    std::lock_guard device(_device_mutex);
    return _signer.next_counter();
}

void batcher::end_building() {
    {
        std::lock_guard lk(_mutex);
        _building_done = true;
    }
    _device_wake.notify_one();
}

void batcher::end_sealing() {
    {
        std::lock_guard lk(_mutex);
        _sealing_done = true;
    }
    _writer_wake.notify_one();
}

void batcher::abandon_slot(slot& sl, slot::state next) {
    const size_t n = sl.batch.events.size();
    _events_abandoned += n;
    (sl.st == slot::state::built ? _events_sealing : _events_writing) -= n;
    sl.batch.clear();
    sl.st = next;
}

void batcher::back_off(std::condition_variable& cv, uint64_t& rng_state, unsigned failures) {
    const auto retry_at = steady::now() + next_backoff(rng_state, failures);
    std::unique_lock lk(_mutex);
    for (;;) {
        const auto now = steady::now();
        if (_stopping && now >= _stop_deadline) {
            _gave_up = true;
            return;
        }
        if (now >= retry_at) {
            return;
        }
        cv.wait_until(lk, _stopping ? std::min(retry_at, _stop_deadline) : retry_at);
    }
}

void batcher::run_device() {
    size_t next_slot = 0;
    unsigned failures = 0;
    for (;;) {
        slot& sl = _slots[next_slot];
        {
            std::unique_lock lk(_mutex);
            _device_wake.wait(lk, [&] { return sl.st == slot::state::built || _building_done; });
            if (sl.st != slot::state::built) {
                return; // the builder thread is done and everything is sealed
            }
            if (_gave_up) {
                // Past stop's deadline this batch is given up on like every
                // later one; the writer frees the slot in its turn.
                abandon_slot(sl, slot::state::dropped);
                lk.unlock();
                _writer_wake.notify_one();
                _wake.notify_one();
                next_slot = (next_slot + 1) % _slots.size();
                continue;
            }
        }

        status sealed = ok_status();
        {
            std::lock_guard device(_device_mutex);
            sealed = sl.builder->seal(_signer);
        }
        _device_cpu_ns.store(thread_cpu_time().count(), std::memory_order_relaxed);
        if (!sealed) {
            // The same batch is signed again after the backoff: its counter
            // is in no other signed batch.
            ++failures;
            record_failure(false, fmt::format("signing the batch with counter {} ({} events) failed (attempt {}): {}",
                                              sl.builder->payload().counter, sl.batch.events.size(), failures,
                                              sealed.message()));
            back_off(_device_wake, _device_rng_state, failures);
            continue;
        }
        failures = 0;
        {
            std::lock_guard lk(_mutex);
            sl.st = slot::state::sealed;
            _events_sealing -= sl.batch.events.size();
            _events_writing += sl.batch.events.size();
        }
        _writer_wake.notify_one();
        _wake.notify_one();
        next_slot = (next_slot + 1) % _slots.size();
    }
}

void batcher::run_writer() {
    size_t next_slot = 0;
    unsigned failures = 0;
    for (;;) {
        slot& sl = _slots[next_slot];
        {
            std::unique_lock lk(_mutex);
            _writer_wake.wait(
                lk, [&] { return sl.st == slot::state::sealed || sl.st == slot::state::dropped || _sealing_done; });
            if (sl.st == slot::state::sealed && _gave_up) {
                // Past stop's deadline the writer gives up on this record
                // and on every later one, so the log has no hole.
                abandon_slot(sl, slot::state::free);
            } else if (sl.st == slot::state::dropped) {
                sl.st = slot::state::free;
            } else if (sl.st != slot::state::sealed) {
                return; // the device thread is done and everything is written
            }
            if (sl.st == slot::state::free) {
                lk.unlock();
                _slot_free.notify_one();
                next_slot = (next_slot + 1) % _slots.size();
                continue;
            }
        }

        const batch_payload& payload = sl.builder->payload();
        if (auto appended = _log.append_parts(sl.builder->log_record()); !appended) {
            ++failures;
            record_failure(true, fmt::format("appending the batch with counter {} to the evidence log failed "
                                             "(attempt {}): {}",
                                             payload.counter, failures, appended.message()));
            back_off(_writer_wake, _writer_rng_state, failures);
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
            for (const burst_mark& m : sl.batch.bursts) {
                const auto waited = std::chrono::duration_cast<std::chrono::microseconds>(done - m.submitted);
                _latency.add(static_cast<uint64_t>(std::max<int64_t>(0, waited.count())), m.count);
            }
        }
        _writer_cpu_ns.store(thread_cpu_time().count(), std::memory_order_relaxed);
        failures = 0;
        {
            std::lock_guard lk(_mutex);
            _events_writing -= sl.batch.events.size();
            sl.batch.clear();
            sl.st = slot::state::free;
        }
        _slot_free.notify_one();
        next_slot = (next_slot + 1) % _slots.size();
    }
}

} // namespace ptpsec::hsm
