#include <dataplane/worker.h>

#include <dataplane/exception_channel.h>
#include <dataplane/sa_update.h>
#include <drivers/base/bytes.h>

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_mbuf_dyn.h>
#include <rte_pause.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>

#include <algorithm>
#include <cstddef>
#include <cstring>

namespace ptpsec {

namespace {

bool is_sign_drop(sign_status s) noexcept {
    return s != sign_status::signed_ok && s != sign_status::not_ptp && s != sign_status::already_signed;
}

bool is_verify_drop(verify_status s) noexcept {
    return s != verify_status::verified && s != verify_status::not_ptp;
}

bool is_verifying(ptp_policy p) noexcept {
    return p == ptp_policy::verify || p == ptp_policy::verify_strip;
}

/// The frame in the first segment of an mbuf, with the tailroom it may grow into.
ptp::frame_buf frame_of(rte_mbuf* m) noexcept {
    return ptp::frame_buf{rte_pktmbuf_mtod(m, uint8_t*), rte_pktmbuf_data_len(m),
                          static_cast<uint32_t>(rte_pktmbuf_data_len(m) + rte_pktmbuf_tailroom(m))};
}

/// After an edit: the frame's new length is the mbuf's (single segment).
void set_length(rte_mbuf* m, uint32_t len) noexcept {
    m->data_len = static_cast<uint16_t>(len);
    m->pkt_len = len;
}

} // namespace

std::string_view ptp_policy_name(ptp_policy p) noexcept {
    switch (p) {
    case ptp_policy::pass:
        return "pass";
    case ptp_policy::sign:
        return "sign";
    case ptp_policy::verify:
        return "verify";
    case ptp_policy::verify_strip:
        return "verify-strip";
    case ptp_policy::tc:
        return "tc";
    }
    return "?";
}

uint64_t path_counters::dropped() const noexcept {
    uint64_t d = tx_full + non_ptp_dropped + not_editable + handoff_full + exception_full + exception_too_long +
                 reinject_nombuf + reinject_invalid;
    for (size_t i = 0; i < sign_status_count; ++i) {
        d += is_sign_drop(static_cast<sign_status>(i)) ? sign[i] : 0;
    }
    for (size_t i = 0; i < verify_status_count; ++i) {
        d += is_verify_drop(static_cast<verify_status>(i)) ? verify[i] : 0;
    }
    return d;
}

size_t drop_reasons(const path_counters& c, std::span<drop_reason> out) noexcept {
    size_t n = 0;
    auto add = [&](std::string_view name, uint64_t v) {
        if (v != 0 && n < out.size()) {
            out[n++] = drop_reason{name, v};
        }
    };
    for (size_t i = 0; i < verify_status_count; ++i) {
        const auto s = static_cast<verify_status>(i);
        if (is_verify_drop(s)) {
            add(verify_status_name(s), c.verify[i]);
        }
    }
    for (size_t i = 0; i < sign_status_count; ++i) {
        const auto s = static_cast<sign_status>(i);
        if (is_sign_drop(s)) {
            // "malformed" is in both lists; signing's is told apart.
            add(s == sign_status::malformed ? std::string_view("malformed_unsigned") : sign_status_name(s), c.sign[i]);
        }
    }
    add("non_ptp_dropped", c.non_ptp_dropped);
    add("not_editable", c.not_editable);
    add("tx_full", c.tx_full);
    add("handoff_full", c.handoff_full);
    add("exception_full", c.exception_full);
    add("exception_too_long", c.exception_too_long);
    add("reinject_nombuf", c.reinject_nombuf);
    add("reinject_invalid", c.reinject_invalid);
    return n;
}

worker::worker(icv::engine& eng, sa_table& sat, unsigned reader_id, icv::gmac_iv_counter& iv,
               std::span<const path_config> paths, const worker_options& opt, replay_table* replay,
               const event_sink& events) noexcept
    : _sat(&sat), _db(sat.current()), _reader(reader_id), _signer(eng, *_db, iv, opt.wire),
      _verifier(eng, *_db, opt.wire, replay), _replay(replay), _paths(paths.first(std::min(paths.size(), max_paths))),
      _opt(opt), _tsc_hz(rte_get_tsc_hz()), _events(events) {
    _opt.burst = std::clamp<uint16_t>(_opt.burst, 1, max_rx_burst);
    if (_events.ring == nullptr || _events.recorder == nullptr || _events.clock == nullptr) {
        _events.rx = false;
        _events.tx = false;
    }
    // Tickets need a path that verifies here (not one that hands its PTP
    // to another worker) and a pool for the frames given back.
    const auto verifying = std::find_if(_paths.begin(), _paths.end(), [](const path_config& p) {
        return is_verifying(p.policy) && p.handoff == nullptr;
    });
    if (verifying == _paths.end() || _opt.reinject_pool == nullptr) {
        _opt.tickets = nullptr;
    } else {
        _first_verifying_path = static_cast<size_t>(verifying - _paths.begin());
    }
}

uint32_t worker::poll_once() noexcept {
    // Keys retired since the last poll. Taken before the SA version below:
    // the service path publishes the version without a key before it puts
    // the key here, so no frame of this poll can open a window for it again.
    std::array<retired_key_ring_entry, 4> gone;
    unsigned ngone = 0;
    if (_opt.retired_keys != nullptr && _replay != nullptr) {
        ngone = rte_ring_sc_dequeue_burst_elem(_opt.retired_keys, gone.data(), sizeof(retired_key_ring_entry),
                                               gone.size(), nullptr);
    }
    // Frames the control plane gave back, also taken before the SA version
    // below. It gives a frame back only once the SA the frame needs was
    // acknowledged on the SA channel, and the service path acknowledges an
    // update after it published the version holding it: the record's
    // dequeue (acquire) comes after that publication, so the version loaded
    // below is that one or a later one, and the frame verifies against it.
    const uint16_t nback = _opt.tickets != nullptr ? take_reinjected() : 0;
    // One version of the SAs for the whole poll: a new one takes effect at
    // the next burst, and the old one is not freed before the quiescent
    // point below.
    if (sa_database* db = _sat->current(); db != _db) {
        _db = db;
        _signer.use(*db);
        _verifier.use(*db);
    }
    for (unsigned i = 0; i < ngone; ++i) {
        // Rare (a key's end): one walk of the replay table per key.
        (void)_replay->retire_key(gone[i].spp, gone[i].key_id);
    }
    uint32_t received = 0;
    std::array<rte_mbuf*, max_rx_burst> pkts;
    for (size_t i = 0; i < _paths.size(); ++i) {
        const path_config& p = _paths[i];
        const uint16_t n = rte_eth_rx_burst(p.rx_port, p.rx_queue, pkts.data(), _opt.burst);
        if (n != 0) {
            if (p.handoff != nullptr) {
                hand_off(p, _counters[i], pkts.data(), n);
            } else {
                process(p, _counters[i], pkts.data(), n, frame_source::port,
                        p.policy == ptp_policy::tc ? rte_rdtsc() : 0);
            }
            received += n;
        }
        if (p.handin != nullptr) {
            const unsigned m =
                rte_ring_sc_dequeue_burst(p.handin, reinterpret_cast<void**>(pkts.data()), _opt.burst, nullptr);
            if (m != 0) {
                process(p, _counters[i], pkts.data(), static_cast<uint16_t>(m), frame_source::handoff, 0);
                received += m;
            }
        }
    }
    for (size_t i = 0; i < _paths.size() && nback != 0; ++i) {
        uint16_t k = 0;
        for (uint16_t b = 0; b < nback; ++b) {
            if (_back_path[b] == i) {
                pkts[k++] = _back[b];
            }
        }
        if (k != 0) {
            process(_paths[i], _counters[i], pkts.data(), k, frame_source::reinject, 0);
        }
    }
    received += nback;
    _sat->quiescent(_reader);
    return received;
}

uint16_t worker::take_reinjected() noexcept {
    uint16_t n = 0;
    while (n < _opt.burst) {
        const exception_wire::record* r = _opt.tickets->peek_reinject();
        if (r == nullptr) {
            break;
        }
        // Each field is loaded once: the slot is another process's memory,
        // and the length checked must be the length copied.
        const uint32_t magic = __atomic_load_n(&r->magic, __ATOMIC_RELAXED);
        const uint16_t port = __atomic_load_n(&r->port, __ATOMIC_RELAXED);
        const uint16_t len = __atomic_load_n(&r->frame_len, __ATOMIC_RELAXED);
        size_t path = _paths.size();
        for (size_t i = 0; i < _paths.size(); ++i) {
            if (_paths[i].rx_port == port && is_verifying(_paths[i].policy) && _paths[i].handoff == nullptr) {
                path = i;
                break;
            }
        }
        if (magic != exception_wire::record_magic || len == 0 || len > exception_wire::max_frame_len ||
            path == _paths.size()) {
            ++_counters[_first_verifying_path].reinject_invalid;
        } else if (rte_mbuf* m = rte_pktmbuf_alloc(_opt.reinject_pool); m == nullptr) {
            ++_counters[path].reinject_nombuf;
        } else if (char* d = rte_pktmbuf_append(m, len); d == nullptr) {
            // A pool whose buffers are smaller than a record's frame.
            rte_pktmbuf_free(m);
            ++_counters[path].reinject_nombuf;
        } else {
            std::memcpy(d, r->frame, len);
            m->port = port;
            _back[n] = m;
            _back_path[n] = static_cast<uint8_t>(path);
            ++n;
        }
        _opt.tickets->release_reinject();
    }
    return n;
}

bool worker::hand_over_ticket(const path_config& p, path_counters& c, const ptp::frame_buf& f, verify_status s,
                              uint64_t& now_ns) noexcept {
    // The verifier found an AUTHENTICATION TLV it could not look up, so the
    // frame classified and scanned once already; this is the rare path, and
    // it looks again rather than carry the scan out of the burst call.
    ptp::frame_info fi;
    ptp::message_scan sc;
    if (ptp::classify_frame(f.data, f.len, fi) != ptp::error::none) {
        return false;
    }
    const uint8_t* msg = f.data + fi.ptp_offset;
    // seeds/001 §6: the ticket travels in a unicast negotiation request
    // (Signaling), in a TICKET TLV placed before the AUTHENTICATION TLV so
    // that the ICV covers it. scan_message() refuses any TLV after the
    // AUTHENTICATION TLV, so a ticket it found is before it.
    if (static_cast<ptp::message_type>(msg[0] & 0x0F) != ptp::message_type::signaling ||
        ptp::scan_message(msg, fi.ptp_avail, sc, _opt.wire) != ptp::error::none || !sc.has_auth ||
        sc.ticket_offset == 0) {
        return false;
    }
    ++_ticket_requests; // numbered whether or not it fits: a gap tells the control plane
    if (f.len > exception_wire::max_frame_len) {
        ++c.exception_too_long;
        return true;
    }
    exception_wire::record* r = _opt.tickets->exception_slot();
    if (r == nullptr) {
        ++c.exception_full;
        return true;
    }
    if (now_ns == 0) {
        now_ns = monotonic_now_ns();
    }
    // Filled in place in the ring slot, every octet written once.
    std::memset(static_cast<void*>(r), 0, offsetof(exception_wire::record, frame));
    r->magic = exception_wire::record_magic;
    r->port = p.rx_port;
    r->frame_len = static_cast<uint16_t>(f.len);
    r->sequence = _ticket_requests;
    r->rx_ns = now_ns;
    r->reason = static_cast<uint8_t>(s == verify_status::unknown_spp ? exception_wire::reason::unknown_spp
                                                                     : exception_wire::reason::unknown_key);
    r->spp = sc.auth.spp;
    r->key_id = sc.auth.keyID;
    r->ptp_offset = static_cast<uint16_t>(fi.ptp_offset);
    r->ticket_offset = static_cast<uint16_t>(fi.ptp_offset + sc.ticket_offset);
    r->auth_offset = static_cast<uint16_t>(fi.ptp_offset + sc.auth.offset);
    std::memcpy(r->frame, f.data, f.len);
    std::memset(r->frame + f.len, 0, sizeof(exception_wire::record) - offsetof(exception_wire::record, frame) - f.len);
    _opt.tickets->commit_exception();
    ++c.ticket_exceptions;
    return true;
}

void worker::run(const std::atomic<bool>& stop) noexcept {
    _sat->online(_reader);
    while (!stop.load(std::memory_order_relaxed)) {
        const uint32_t got = poll_once();
        if (_opt.between_bursts != nullptr) {
            _opt.between_bursts(_opt.between_bursts_ctx);
        }
        if (got == 0) {
            rte_pause();
        }
    }
    _sat->offline(_reader);
}

void worker::hand_off(const path_config& p, path_counters& c, rte_mbuf** pkts, uint16_t n) noexcept {
    std::array<rte_mbuf*, max_rx_burst> tx;
    std::array<rte_mbuf*, max_rx_burst> ptp;
    std::array<rte_mbuf*, max_rx_burst> drop;
    uint16_t ntx = 0;
    uint16_t nptp = 0;
    uint16_t ndrop = 0;
    c.rx += n;
    const uint64_t tsc = rte_rdtsc();
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        ptp::frame_info fi;
        const ptp::frame_buf f = frame_of(m);
        if (ptp::classify_frame(f.data, f.len, fi) == ptp::error::not_ptp) {
            if (p.drop_non_ptp) {
                ++c.non_ptp_dropped;
                drop[ndrop++] = m;
            } else {
                ++c.non_ptp;
                tx[ntx++] = m;
            }
            continue;
        }
        // Malformed PTP goes too: the PTP worker counts it by cause.
        if (_opt.rx_tsc_offset >= 0) {
            *RTE_MBUF_DYNFIELD(m, _opt.rx_tsc_offset, uint64_t*) = tsc;
        }
        ptp[nptp++] = m;
    }
    if (nptp != 0) {
        const unsigned put =
            rte_ring_mp_enqueue_burst(p.handoff, reinterpret_cast<void* const*>(ptp.data()), nptp, nullptr);
        c.handed_off += put;
        if (put < nptp) {
            c.handoff_full += nptp - put;
            rte_pktmbuf_free_bulk(ptp.data() + put, nptp - put);
        }
    }
    if (ndrop != 0) {
        rte_pktmbuf_free_bulk(drop.data(), ndrop);
    }
    if (ntx != 0) {
        (void)send(p, c, tx.data(), ntx);
    }
}

uint16_t worker::send(const path_config& p, path_counters& c, rte_mbuf** tx, uint16_t n) noexcept {
    uint16_t sent = rte_eth_tx_burst(p.tx_port, p.tx_queue, tx, n);
    for (uint16_t r = 0; sent < n && r < _opt.tx_retry; ++r) {
        rte_delay_us_block(1);
        sent += rte_eth_tx_burst(p.tx_port, p.tx_queue, tx + sent, static_cast<uint16_t>(n - sent));
    }
    c.tx += sent;
    if (sent < n) {
        c.tx_full += n - sent;
        rte_pktmbuf_free_bulk(tx + sent, n - sent);
    }
    return sent;
}

uint16_t worker::record_events(rte_mbuf* const* pkts, uint16_t n, event_direction dir, uint16_t port, uint64_t ns,
                               const uint64_t* ns_each, event_record* out, uint16_t* index) noexcept {
    const event_mask mask = _events.recorder->mask();
    uint16_t k = 0;
    for (uint16_t i = 0; i < n; ++i) {
        rte_mbuf* m = pkts[i];
        if (m->nb_segs != 1) {
            continue;
        }
        const ptp::frame_buf f = frame_of(m);
        ptp::frame_info fi;
        if (ptp::classify_frame(f.data, f.len, fi) != ptp::error::none || fi.ptp_avail < ptp::header_len) {
            continue;
        }
        uint8_t* msg = f.data + fi.ptp_offset;
        const auto ml = static_cast<uint16_t>((msg[2] << 8) | msg[3]);
        if (!mask.selects_value(msg[0]) || ml < ptp::header_len || ml > fi.ptp_avail) {
            continue;
        }
        _event_in[k] = event_input{msg, ns_each != nullptr ? ns_each[i] : ns, ml, port, dir, 0};
        if (dir == event_direction::rx && _opt.rx_stamps.any() &&
            port_rx_time(_opt.rx_stamps, m, port, _event_in[k].timestamp_ns)) {
            _event_in[k].flags = event_flag_hw_timestamp;
        }
        index[k] = i;
        ++k;
    }
    // Every input is selected and whole: the records come out one for one,
    // unless the library refused a job (counted by the recorder).
    const uint16_t made = _events.recorder->record_burst(_event_in.data(), k, out);
    return made == k ? made : 0;
}

void worker::publish_events(path_counters& c, const event_record* recs, uint16_t n) noexcept {
    if (n == 0) {
        return;
    }
    const unsigned put = rte_ring_enqueue_burst_elem(_events.ring, recs, sizeof(event_record), n, nullptr);
    c.events += put;
    c.events_ring_full += n - put;
    if (_opt.rx_stamps.any()) {
        // The ring takes the first `put` records.
        for (unsigned i = 0; i < put; ++i) {
            c.events_port_stamped += (recs[i].flags & event_flag_hw_timestamp) != 0 ? 1 : 0;
        }
    }
}

void worker::transparent_clock(path_counters& c, uint16_t n) noexcept {
    // Residence time of each frame in the data plane, from its arrival (the
    // RX burst, or the burst of the worker that handed it over) to now: a
    // software transparent clock. In the scaled nanoseconds of
    // correctionField (ns * 2^16, 5.3.2).
    const uint64_t now = rte_rdtsc();
    uint16_t nresign = 0;
    for (uint16_t i = 0; i < n; ++i) {
        if (static_cast<verify_status>(_out[i].status) != verify_status::verified) {
            continue;
        }
        ptp::frame_buf& f = _frames[i];
        ptp::frame_info fi;
        ptp::message_scan sc;
        if (ptp::classify_frame(f.data, f.len, fi) != ptp::error::none ||
            ptp::scan_message(f.data + fi.ptp_offset, fi.ptp_avail, sc) != ptp::error::none || !sc.has_auth) {
            continue; // cannot happen for a verified frame; forwarded as it is
        }
        uint8_t* msg = f.data + fi.ptp_offset;
        if (!ptp::is_event_message(static_cast<ptp::message_type>(msg[0] & 0x0F))) {
            continue; // no residence time to add: forwarded as verified
        }
        const security_association* sa = _db->find(sc.auth.spp);
        const sa_key* key = sa != nullptr ? sa->find_key(sc.auth.keyID) : nullptr;
        if (key == nullptr) {
            continue;
        }
        if (!sa->allow_mutable && key->gmac != nullptr) {
            // Signing again would draw an AES-GMAC IV from this data plane's
            // counter under the sender's subkey, which the sender's own
            // counter may reach too: a repeated IV is never risked.
            ++c.tc_uncorrected;
            continue;
        }
        const uint64_t cycles = now - _work_tsc[i];
        const auto residence_ns = static_cast<int64_t>(_tsc_hz != 0 ? cycles * 1'000'000'000ULL / _tsc_hz : 0);
        const int64_t scaled = residence_ns * 65536;
        const bool udp_ck = ptp::udp_checksum_in_use(f.data, fi);
        const auto correction = static_cast<int64_t>(load_be64(msg + ptp::correction_offset));
        store_be64(msg + ptp::correction_offset, static_cast<uint64_t>(correction + scaled));
        ++c.tc_corrected;
        if (sa->allow_mutable) {
            // correctionField is outside the ICV: the TLV stays valid.
            ptp::fix_checksums(f.data, fi, udp_ck);
            continue;
        }
        // Stripping sums the checksums again, with the new correctionField
        // in them, before signing appends the TLV anew.
        (void)ptp::strip_auth_tlv(f, fi, sc.auth.offset);
        _resign[nresign] = resign_entry{i, sc.auth.spp, sc.auth.keyID};
        _resign_frames[nresign] = f;
        ++nresign;
    }
    // Sign again, each run of frames with the same key in one call.
    for (uint16_t start = 0; start < nresign;) {
        uint16_t end = static_cast<uint16_t>(start + 1);
        while (end < nresign && _resign[end].spp == _resign[start].spp &&
               _resign[end].key_id == _resign[start].key_id) {
            ++end;
        }
        _signer.sign_burst(_resign_frames.data() + start, static_cast<uint16_t>(end - start), _resign[start].spp,
                           _resign[start].key_id, _resign_out.data() + start);
        start = end;
    }
    for (uint16_t r = 0; r < nresign; ++r) {
        const uint16_t i = _resign[r].at;
        if (static_cast<sign_status>(_resign_out[r].status) == sign_status::signed_ok) {
            _frames[i].len = _resign_frames[r].len;
            ++c.tc_resigned;
        } else {
            // The TLV is gone and could not be made again: not forwarded.
            _out[i].status = static_cast<uint8_t>(verify_status::crypto_failed);
        }
    }
}

void worker::process(const path_config& p, path_counters& c, rte_mbuf** pkts, uint16_t n, frame_source src,
                     uint64_t rx_tsc) noexcept {
    std::array<rte_mbuf*, max_rx_burst> tx;
    std::array<rte_mbuf*, max_rx_burst> drop;
    std::array<rte_mbuf*, max_rx_burst> work;   // single-segment frames for sign/verify, in order
    std::array<uint16_t, max_rx_burst> work_at; // index in pkts of work[j]
    std::array<bool, max_rx_burst> forwarded{};
    uint16_t ntx = 0;
    uint16_t ndrop = 0;
    uint16_t nwork = 0;
    // Handed-over frames were counted by the worker that received them,
    // frames given back when they first arrived.
    const bool stamped = src == frame_source::handoff && _opt.rx_tsc_offset >= 0;
    uint64_t rx_ns = 0;
    const uint64_t* rx_ns_each = nullptr;
    if (src == frame_source::reinject) {
        c.reinjected += n;
    }
    if (src == frame_source::port) {
        c.rx += n;
        // Software timestamp of the burst's arrival, read once.
        rx_ns = _events.rx ? _events.clock->now_ns() : 0;
    } else if (_events.rx || p.policy == ptp_policy::tc) {
        rx_ns = _events.rx ? _events.clock->now_ns() : 0;
        const uint64_t now = rte_rdtsc();
        rx_tsc = now;
        if (_events.rx && stamped) {
            // Each frame's arrival on the clock of the events: now, less
            // the time it spent on the ring.
            for (uint16_t i = 0; i < n; ++i) {
                const uint64_t cycles = now - *RTE_MBUF_DYNFIELD(pkts[i], _opt.rx_tsc_offset, uint64_t*);
                _rx_ns[i] = rx_ns - (_tsc_hz != 0 ? cycles * 1'000'000'000ULL / _tsc_hz : 0);
            }
            rx_ns_each = _rx_ns.data();
        }
    }
    // The frames as they arrived, before the policy edits them; published
    // below for the frames that are forwarded.
    const uint16_t nrx_events = _events.rx ? record_events(pkts, n, event_direction::rx, p.rx_port, rx_ns, rx_ns_each,
                                                           _rx_records.data(), _rx_record_of.data())
                                           : 0;
    auto forward = [&](uint16_t at, rte_mbuf* m) {
        forwarded[at] = true;
        tx[ntx++] = m;
    };
    // A frame that is not PTP: forwarded unchanged, or dropped on a path
    // meant for PTP alone.
    auto not_ptp = [&](uint16_t at, rte_mbuf* m) {
        if (p.drop_non_ptp) {
            ++c.non_ptp_dropped;
            drop[ndrop++] = m;
        } else {
            ++c.non_ptp;
            forward(at, m);
        }
    };

    if (p.policy == ptp_policy::pass) {
        for (uint16_t i = 0; i < n; ++i) {
            ptp::frame_info fi;
            const ptp::frame_buf f = frame_of(pkts[i]);
            if (ptp::classify_frame(f.data, f.len, fi) == ptp::error::not_ptp) {
                not_ptp(i, pkts[i]);
            } else {
                ++c.ptp_passed;
                forward(i, pkts[i]);
            }
        }
    } else {
        // A chained, indirect or shared mbuf is not edited in place: forward
        // it if it is not PTP (a jumbo frame, say), drop it otherwise. Order
        // is kept among the frames that leave.
        for (uint16_t i = 0; i < n; ++i) {
            rte_mbuf* m = pkts[i];
            if (m->nb_segs == 1 && RTE_MBUF_DIRECT(m) && rte_mbuf_refcnt_read(m) == 1) {
                _work_tsc[nwork] = stamped ? *RTE_MBUF_DYNFIELD(m, _opt.rx_tsc_offset, uint64_t*) : rx_tsc;
                _frames[nwork] = frame_of(m);
                work_at[nwork] = i;
                work[nwork++] = m;
                continue;
            }
            ptp::frame_info fi;
            const ptp::frame_buf f = frame_of(m);
            if (ptp::classify_frame(f.data, f.len, fi) == ptp::error::not_ptp) {
                not_ptp(i, m);
            } else {
                ++c.not_editable;
                drop[ndrop++] = m;
            }
        }
        if (p.policy == ptp_policy::sign) {
            if (p.sign_current) {
                _signer.sign_burst_current(_frames.data(), nwork, p.spp, _out.data());
            } else {
                _signer.sign_burst(_frames.data(), nwork, p.spp, p.key_id, _out.data());
            }
            for (uint16_t i = 0; i < nwork; ++i) {
                const auto s = static_cast<sign_status>(_out[i].status);
                ++c.sign[static_cast<size_t>(s)];
                switch (s) {
                case sign_status::signed_ok:
                    set_length(work[i], _frames[i].len);
                    ++c.signed_ok;
                    c.tickets_attached += _out[i].ticket_attached ? 1 : 0;
                    forward(work_at[i], work[i]);
                    break;
                case sign_status::not_ptp:
                    not_ptp(work_at[i], work[i]);
                    break;
                case sign_status::already_signed:
                    ++c.already_signed;
                    forward(work_at[i], work[i]);
                    break;
                case sign_status::malformed:
                    ++c.malformed[static_cast<size_t>(_out[i].cause)];
                    drop[ndrop++] = work[i];
                    break;
                default:
                    drop[ndrop++] = work[i];
                    break;
                }
            }
        } else {
            const bool strip = p.policy == ptp_policy::verify_strip;
            const bool tc = p.policy == ptp_policy::tc;
            // A frame given back is never handed over again: still without
            // its SA, it is dropped as unknown_spp / unknown_key.
            const bool tickets = _opt.tickets != nullptr && is_verifying(p.policy) && src != frame_source::reinject;
            uint64_t now_ns = 0;
            if (strip) {
                _verifier.verify_strip_burst(_frames.data(), nwork, _out.data());
            } else {
                _verifier.verify_burst(_frames.data(), nwork, _out.data());
            }
            if (tc) {
                transparent_clock(c, nwork);
            }
            for (uint16_t i = 0; i < nwork; ++i) {
                const auto s = static_cast<verify_status>(_out[i].status);
                if (tickets && (s == verify_status::unknown_spp || s == verify_status::unknown_key) &&
                    hand_over_ticket(p, c, _frames[i], s, now_ns)) {
                    drop[ndrop++] = work[i]; // the copy went (or was counted): the mbuf is freed
                    continue;
                }
                ++c.verify[static_cast<size_t>(s)];
                if (s == verify_status::verified) {
                    ++c.verified;
                    if (strip) {
                        ++c.stripped;
                    }
                    if (strip || tc) {
                        set_length(work[i], _frames[i].len);
                    }
                    forward(work_at[i], work[i]);
                } else if (s == verify_status::not_ptp) {
                    not_ptp(work_at[i], work[i]);
                } else {
                    if (s == verify_status::malformed) {
                        ++c.malformed[static_cast<size_t>(_out[i].cause)];
                    }
                    drop[ndrop++] = work[i];
                }
            }
        }
    }
    if (nrx_events != 0) {
        uint16_t kept = 0;
        for (uint16_t r = 0; r < nrx_events; ++r) {
            if (forwarded[_rx_record_of[r]]) {
                _rx_records[kept++] = _rx_records[r];
            }
        }
        publish_events(c, _rx_records.data(), kept);
    }
    if (ndrop != 0) {
        rte_pktmbuf_free_bulk(drop.data(), ndrop);
    }
    if (ntx != 0) {
        // Hashed before the frames go: once sent they are the port's.
        const uint16_t ntx_events =
            _events.tx ? record_events(tx.data(), ntx, event_direction::tx, p.tx_port, _events.clock->now_ns(), nullptr,
                                       _tx_records.data(), _tx_record_of.data())
                       : 0;
        const uint16_t sent = send(p, c, tx.data(), ntx);
        uint16_t kept = 0;
        for (uint16_t r = 0; r < ntx_events; ++r) {
            if (_tx_record_of[r] < sent) {
                _tx_records[kept++] = _tx_records[r];
            }
        }
        publish_events(c, _tx_records.data(), kept);
    }
}

} // namespace ptpsec
