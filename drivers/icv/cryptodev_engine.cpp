// Session pools are experimental API in DPDK 22.11 (and the only way to make
// sessions there).
#define ALLOW_EXPERIMENTAL_API 1

#include <drivers/icv/cryptodev_engine.h>

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <rte_crypto.h>
#include <rte_cryptodev.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>

namespace ptpsec::icv {
namespace {

/// The GMAC nonce goes where DPDK convention puts the IV: in the operation's
/// private area, right after the symmetric operation; the request's index in
/// its burst follows it.
constexpr uint16_t iv_offset = sizeof(rte_crypto_op) + sizeof(rte_crypto_sym_op);
constexpr uint16_t index_offset = iv_offset + 16;
constexpr uint16_t op_private = 32;
/// The ICV is written after the message room of each mbuf.
constexpr uint32_t digest_room = 64;
/// HMAC keys longer than the SHA-256 block are hashed first (RFC 2104 §2):
/// the device gets the hash, which gives the same MAC.
constexpr size_t hmac_block = 64;
/// How long a burst may stay in the device before it counts as lost.
constexpr uint64_t device_timeout_ms = 100;

/// op->sym, reached without indexing the zero-length array it is declared as.
rte_crypto_sym_op* sym_of(rte_crypto_op* op) noexcept {
    return reinterpret_cast<rte_crypto_sym_op*>(reinterpret_cast<uint8_t*>(op) + offsetof(rte_crypto_op, sym));
}

rte_crypto_auth_algorithm auth_algorithm(algorithm alg) noexcept {
    if (is_hmac(alg)) {
        return RTE_CRYPTO_AUTH_SHA256_HMAC;
    }
    return is_gmac(alg) ? RTE_CRYPTO_AUTH_AES_GMAC : RTE_CRYPTO_AUTH_AES_CMAC;
}

std::string_view auth_name(algorithm alg) noexcept {
    if (is_hmac(alg)) {
        return "SHA256_HMAC";
    }
    return is_gmac(alg) ? "AES_GMAC" : "AES_CMAC";
}

/// The key the device is given: an HMAC key longer than the block is hashed.
struct device_key {
    std::span<const uint8_t> bytes;
    uint8_t hashed[32] = {};

    explicit device_key(algorithm alg, std::span<const uint8_t> key) noexcept : bytes(key) {
        unsigned int len = 0;
        if (is_hmac(alg) && key.size() > hmac_block &&
            EVP_Digest(key.data(), key.size(), hashed, &len, EVP_sha256(), nullptr) == 1) {
            bytes = std::span<const uint8_t>(hashed, len);
        }
    }
    ~device_key() { OPENSSL_cleanse(hashed, sizeof(hashed)); }
    device_key(const device_key&) = delete;
    device_key& operator=(const device_key&) = delete;
    device_key(device_key&&) = delete;
    device_key& operator=(device_key&&) = delete;
};

size_t device_key_len(algorithm alg, size_t key_len) noexcept {
    return is_hmac(alg) && key_len > hmac_block ? 32 : key_len;
}

class cdev_key final : public prepared_key {
public:
    cdev_key(algorithm alg, std::shared_ptr<crypto_device> d) noexcept
        : prepared_key(alg, backend::cryptodev), dev(std::move(d)) {}
    ~cdev_key() override { drop(); }
    cdev_key(const cdev_key&) = delete;
    cdev_key& operator=(const cdev_key&) = delete;
    cdev_key(cdev_key&&) = delete;
    cdev_key& operator=(cdev_key&&) = delete;

    /// The PMD clears the key material it holds when the session is freed.
    void drop() noexcept {
        if (session != nullptr) {
            rte_cryptodev_sym_session_free(dev->id(), session);
            session = nullptr;
        }
    }

    std::shared_ptr<crypto_device> dev;
    void* session = nullptr;
};

/// A session for `key` on the device, or nullptr (rte_errno says why).
void* make_session(uint8_t dev_id, rte_mempool* pool, algorithm alg, std::span<const uint8_t> key) noexcept {
    const device_key dk(alg, key);
    rte_crypto_sym_xform x{};
    x.next = nullptr;
    x.type = RTE_CRYPTO_SYM_XFORM_AUTH;
    x.auth.op = RTE_CRYPTO_AUTH_OP_GENERATE;
    x.auth.algo = auth_algorithm(alg);
    x.auth.key.data = dk.bytes.data();
    x.auth.key.length = static_cast<uint16_t>(dk.bytes.size());
    x.auth.digest_length = icv_length(alg);
    if (is_gmac(alg)) {
        x.auth.iv.offset = iv_offset;
        x.auth.iv.length = gmac_nonce_len;
    }
    return rte_cryptodev_sym_session_create(dev_id, &x, pool);
}

/// Pool names are unique in a process; a device opened again gets new ones.
std::string pool_name(uint8_t dev_id, char kind) {
    static std::atomic<unsigned> serial{0};
    return fmt::format("ptpsec-cd{}{}{}", dev_id, kind, serial.fetch_add(1));
}

} // namespace

result<std::shared_ptr<crypto_device>> crypto_device::open(std::string_view name, const options& opt) {
    const std::string n(name);
    const int id = rte_cryptodev_get_dev_id(n.c_str());
    if (id < 0) {
        return error{fmt::format("no crypto device named {}: create a software one with EAL's --vdev "
                                 "(crypto_aesni_mb0, crypto_openssl0) or allow the device's PCI address with -a",
                                 n)};
    }
    rte_cryptodev_info info{};
    rte_cryptodev_info_get(static_cast<uint8_t>(id), &info);
    if ((info.feature_flags & RTE_CRYPTODEV_FF_SYMMETRIC_CRYPTO) == 0) {
        return error{fmt::format("crypto device {} ({}) does no symmetric crypto", n, info.driver_name)};
    }
    if (opt.queue_pairs == 0 || opt.queue_pairs > info.max_nb_queue_pairs) {
        return error{fmt::format("crypto device {} ({}) has {} queue pair(s); {} are needed (one per worker and "
                                 "one for the service path)",
                                 n, info.driver_name, info.max_nb_queue_pairs, opt.queue_pairs)};
    }
    std::shared_ptr<crypto_device> d(new crypto_device());
    d->_id = static_cast<uint8_t>(id);
    d->_name = n;
    d->_driver = info.driver_name;
    d->_queue_pairs = opt.queue_pairs;
    int socket = rte_cryptodev_socket_id(d->_id);
    if (socket < 0) {
        socket = SOCKET_ID_ANY;
    }
    auto failed = [&](std::string_view what) {
        return error{fmt::format("crypto device {} ({}): {}: {}", n, d->_driver, what, rte_strerror(rte_errno))};
    };
    // Configured before the session pool is made: a PMD's session size may
    // depend on its queue pairs (crypto_openssl keeps a context per pair).
    rte_cryptodev_config conf{};
    conf.socket_id = socket;
    conf.nb_queue_pairs = opt.queue_pairs;
    if (rte_cryptodev_configure(d->_id, &conf) != 0) {
        return error{fmt::format("crypto device {} ({}): cannot configure {} queue pair(s) (is it started "
                                 "already, by another ptpsec engine?)",
                                 n, d->_driver, opt.queue_pairs)};
    }
    d->_sessions = rte_cryptodev_sym_session_pool_create(
        pool_name(d->_id, 's').c_str(), opt.sessions, rte_cryptodev_sym_get_private_session_size(d->_id), 0, 0, socket);
    if (d->_sessions == nullptr) {
        return failed(fmt::format("a pool of {} sessions", opt.sessions));
    }
    const unsigned ops = (unsigned{opt.queue_pairs} + 2U) * cryptodev_engine::max_burst;
    d->_ops = rte_crypto_op_pool_create(pool_name(d->_id, 'o').c_str(), RTE_CRYPTO_OP_TYPE_SYMMETRIC, ops, 0,
                                        op_private, socket);
    if (d->_ops == nullptr) {
        return failed("the operation pool");
    }
    d->_mbufs = rte_pktmbuf_pool_create(pool_name(d->_id, 'm').c_str(), ops, 0, 0,
                                        RTE_PKTMBUF_HEADROOM + cryptodev_engine::max_message + digest_room, socket);
    if (d->_mbufs == nullptr) {
        return failed("the mbuf pool");
    }
    rte_cryptodev_qp_conf qp{};
    qp.nb_descriptors = opt.descriptors;
    qp.mp_session = d->_sessions;
    for (uint16_t q = 0; q < opt.queue_pairs; ++q) {
        if (rte_cryptodev_queue_pair_setup(d->_id, q, &qp, socket) != 0) {
            return error{fmt::format("crypto device {} ({}): cannot set up queue pair {} with {} descriptors", n,
                                     d->_driver, q, opt.descriptors)};
        }
    }
    if (rte_cryptodev_start(d->_id) != 0) {
        return error{fmt::format("crypto device {} ({}): cannot start", n, d->_driver)};
    }
    d->_started = true;
    return d;
}

crypto_device::~crypto_device() {
    if (_started) {
        // Stopped, not closed: a device that is closed cannot be configured
        // again in this process.
        rte_cryptodev_stop(_id);
    }
    rte_mempool_free(_mbufs);
    rte_mempool_free(_ops);
    rte_mempool_free(_sessions);
}

status crypto_device::supports(algorithm alg, size_t key_len) const {
    rte_cryptodev_sym_capability_idx idx{};
    idx.type = RTE_CRYPTO_SYM_XFORM_AUTH;
    idx.algo.auth = auth_algorithm(alg);
    const rte_cryptodev_symmetric_capability* cap = rte_cryptodev_sym_capability_get(_id, &idx);
    if (cap == nullptr) {
        return error{
            fmt::format("crypto device {} ({}) does not do {} ({})", _name, _driver, auth_name(alg), info(alg).name)};
    }
    const size_t dkl = device_key_len(alg, key_len);
    const uint16_t iv = is_gmac(alg) ? gmac_nonce_len : 0;
    if (dkl > UINT16_MAX ||
        rte_cryptodev_sym_capability_check_auth(cap, static_cast<uint16_t>(dkl), icv_length(alg), iv) != 0) {
        return error{fmt::format("crypto device {} ({}) does not do {} with a {}-octet key, a {}-octet ICV and a "
                                 "{}-octet IV (it takes keys of {} to {} octets, ICVs of {} to {})",
                                 _name, _driver, info(alg).name, dkl, icv_length(alg), iv, cap->auth.key_size.min,
                                 cap->auth.key_size.max, cap->auth.digest_size.min, cap->auth.digest_size.max)};
    }
    return ok_status();
}

result<std::unique_ptr<cryptodev_engine>> cryptodev_engine::create(std::shared_ptr<crypto_device> dev,
                                                                   uint16_t queue_pair) {
    if (queue_pair >= dev->queue_pairs()) {
        return error{fmt::format("crypto device {} has queue pairs 0 to {}, not {}", dev->name(),
                                 dev->queue_pairs() - 1, queue_pair)};
    }
    std::unique_ptr<cryptodev_engine> e(new cryptodev_engine(std::move(dev), queue_pair));
    const crypto_device& d = *e->_dev;
    if (rte_crypto_op_bulk_alloc(d._ops, RTE_CRYPTO_OP_TYPE_SYMMETRIC, e->_op, max_burst) != max_burst) {
        std::fill(std::begin(e->_op), std::end(e->_op), nullptr);
        return error{fmt::format("crypto device {}: no {} operations left in its pool", d.name(), max_burst)};
    }
    if (rte_pktmbuf_alloc_bulk(d._mbufs, e->_mbuf, max_burst) != 0) {
        std::fill(std::begin(e->_mbuf), std::end(e->_mbuf), nullptr);
        return error{fmt::format("crypto device {}: no {} mbufs left in its pool", d.name(), max_burst)};
    }
    // Each mbuf spans its whole room once and for all: the message at
    // offset 0, the ICV at max_message.
    for (rte_mbuf* m : e->_mbuf) {
        if (rte_pktmbuf_append(m, max_message + digest_room) == nullptr) {
            return error{fmt::format("crypto device {}: mbufs too small", d.name())};
        }
    }
    return e;
}

cryptodev_engine::cryptodev_engine(std::shared_ptr<crypto_device> dev, uint16_t queue_pair)
    : _dev(std::move(dev)), _qp(queue_pair),
      _name(fmt::format("cryptodev {} ({}) qp {}", _dev->name(), _dev->driver(), queue_pair)) {}

cryptodev_engine::~cryptodev_engine() {
    if (_lost != 0) {
        return; // operations are still in a device that stopped answering: not ours to free
    }
    for (rte_crypto_op* op : _op) {
        if (op != nullptr) {
            rte_crypto_op_free(op);
        }
    }
    for (rte_mbuf* m : _mbuf) {
        if (m != nullptr) {
            rte_pktmbuf_free(m);
        }
    }
}

result<key_handle> cryptodev_engine::prepare(algorithm alg, std::span<const uint8_t> key) {
    if (auto st = check_key_length(alg, key.size()); !st) {
        return st.err();
    }
    if (auto st = _dev->supports(alg, key.size()); !st) {
        return st.err();
    }
    auto k = std::make_unique<cdev_key>(alg, _dev);
    k->session = make_session(_dev->id(), _dev->_sessions, alg, key);
    if (k->session == nullptr) {
        return error{fmt::format("crypto device {} ({}): no session for {}: {}", _dev->name(), _dev->driver(),
                                 info(alg).name, rte_strerror(rte_errno))};
    }
    return key_handle(std::move(k));
}

bool cryptodev_engine::rekey(prepared_key& pk, std::span<const uint8_t> key) noexcept {
    if (pk.made_by() != prepared_key::backend::cryptodev) {
        return false;
    }
    auto& k = static_cast<cdev_key&>(pk);
    if (k.dev != _dev || !key_length_fits(k.alg(), key.size())) {
        return false;
    }
    // The new session first: a failure keeps the old key working.
    void* s = make_session(_dev->id(), _dev->_sessions, k.alg(), key);
    if (s == nullptr) {
        return false;
    }
    k.drop();
    k.session = s;
    return true;
}

uint16_t cryptodev_engine::compute_burst(const mac_request* reqs, uint16_t n) noexcept {
    uint16_t done = 0;
    for (uint16_t base = 0; base < n; base = static_cast<uint16_t>(base + max_burst)) {
        const auto count = static_cast<uint16_t>(std::min<int>(max_burst, n - base));
        done = static_cast<uint16_t>(done + run(reqs + base, count));
    }
    return done;
}

uint16_t cryptodev_engine::run(const mac_request* reqs, uint16_t n) noexcept {
    if (_lost != 0) {
        return 0;
    }
    const uint8_t dev = _dev->id();
    uint16_t m = 0;
    for (uint16_t i = 0; i < n; ++i) {
        const mac_request& r = reqs[i];
        if (r.key == nullptr || r.key->made_by() != prepared_key::backend::cryptodev) {
            continue;
        }
        const auto& k = static_cast<const cdev_key&>(*r.key);
        if (k.dev != _dev || k.session == nullptr || r.len > max_message || (is_gmac(k.alg()) && r.nonce == nullptr)) {
            continue;
        }
        rte_crypto_op* op = _op[m];
        rte_mbuf* mb = _mbuf[m];
        op->status = RTE_CRYPTO_OP_STATUS_NOT_PROCESSED;
        rte_crypto_op_attach_sym_session(op, k.session);
        rte_crypto_sym_op* sym = sym_of(op);
        sym->m_src = mb;
        sym->m_dst = nullptr;
        sym->auth.data.offset = 0;
        sym->auth.data.length = r.len;
        sym->auth.digest.data = rte_pktmbuf_mtod_offset(mb, uint8_t*, max_message);
        sym->auth.digest.phys_addr = rte_pktmbuf_iova_offset(mb, max_message);
        if (r.len != 0) { // an empty message may come without a pointer
            std::memcpy(rte_pktmbuf_mtod(mb, uint8_t*), r.msg, r.len);
        }
        if (is_gmac(k.alg())) {
            std::memcpy(rte_crypto_op_ctod_offset(op, uint8_t*, iv_offset), r.nonce, gmac_nonce_len);
        }
        std::memcpy(rte_crypto_op_ctod_offset(op, uint8_t*, index_offset), &i, sizeof(i));
        ++m;
    }
    if (m == 0) {
        return 0;
    }
    const uint64_t deadline = rte_get_timer_cycles() + rte_get_timer_hz() / 1000 * device_timeout_ms;
    uint16_t sent = 0;
    uint16_t got = 0;
    rte_crypto_op* back[max_burst];
    // Enqueue what the queue takes, dequeue what is done, until every
    // enqueued operation is back.
    while (got < m) {
        if (sent < m) {
            sent = static_cast<uint16_t>(sent + rte_cryptodev_enqueue_burst(dev, _qp, _op + sent, m - sent));
        }
        const uint16_t d = rte_cryptodev_dequeue_burst(dev, _qp, back + got, static_cast<uint16_t>(sent - got));
        got = static_cast<uint16_t>(got + d);
        if (d == 0 && got < m && rte_get_timer_cycles() > deadline) {
            break;
        }
    }
    uint16_t done = 0;
    for (uint16_t j = 0; j < got; ++j) {
        rte_crypto_op* op = back[j];
        if (op->status != RTE_CRYPTO_OP_STATUS_SUCCESS) {
            ++_device_errors;
            continue;
        }
        uint16_t i = 0;
        std::memcpy(&i, rte_crypto_op_ctod_offset(op, uint8_t*, index_offset), sizeof(i));
        const auto& k = static_cast<const cdev_key&>(*reqs[i].key);
        std::memcpy(reqs[i].icv_out, sym_of(op)->auth.digest.data, k.icv_len());
        ++done;
    }
    if (got < sent) {
        // The device kept operations past the deadline: they are its now,
        // and this engine computes nothing more (every later burst fails and
        // is counted by the caller).
        _lost = static_cast<uint16_t>(sent - got);
        _device_errors += _lost;
    }
    // The order the device gave them back in is the order they are used in next.
    std::copy(back, back + got, _op);
    return done;
}

} // namespace ptpsec::icv
