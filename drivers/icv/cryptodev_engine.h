#pragma once

// ICV engine on a DPDK crypto device (cryptodev): the crypto block of a
// SmartNIC or an accelerator card where one is present, or a software PMD
// (crypto_aesni_mb, crypto_openssl) on a machine without one. The device is
// opened once (crypto_device) with a queue pair per engine; each engine (one
// per lcore, like the intel-ipsec-mb one) owns a queue pair and a fixed set
// of operations and mbufs, made when it is created and reused for every
// burst. Keys are cryptodev sessions, made in prepare()/rekey().
//
// A burst is synchronous behind the engine interface: every message is
// copied into one of the engine's mbufs (DPDK memory, so that a device can
// reach it by DMA; the ICV is written there too and copied out), enqueued,
// and dequeued before compute_burst() returns. The copy costs what a memcpy
// of the message costs; the wait is the device's latency for the burst.

#include <drivers/icv/engine.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

struct rte_mempool;
struct rte_crypto_op;
struct rte_mbuf;

namespace ptpsec::icv {

/// A crypto device configured and started, with the pools its engines and
/// keys share. Keys and engines hold it; it stops when the last one goes.
class crypto_device : public std::enable_shared_from_this<crypto_device> {
public:
    struct options {
        /// One per engine (each lcore that computes ICVs, and the service
        /// path that expands keys).
        uint16_t queue_pairs = 1;
        /// Keys (sessions) the device may hold at once: SA keys, and for
        /// AES-GMAC one per sender of each key (drivers/icv/gmac.h).
        uint32_t sessions = 8192;
        uint32_t descriptors = 2048; ///< per queue pair
    };

    /// Opens the device EAL probed under `name` (--vdev crypto_aesni_mb0, or
    /// a PCI device allowed with -a), configures its queue pairs, creates the
    /// pools and starts it. EAL must be up. Not for the fast path.
    static result<std::shared_ptr<crypto_device>> open(std::string_view name, const options& opt);

    ~crypto_device();
    crypto_device(const crypto_device&) = delete;
    crypto_device& operator=(const crypto_device&) = delete;
    crypto_device(crypto_device&&) = delete;
    crypto_device& operator=(crypto_device&&) = delete;

    uint8_t id() const noexcept { return _id; }
    const std::string& name() const noexcept { return _name; }
    const std::string& driver() const noexcept { return _driver; }
    uint16_t queue_pairs() const noexcept { return _queue_pairs; }

    /// ok if the device computes `alg` with a key of `key_len` octets (HMAC
    /// keys longer than the SHA-256 block count as their 32-octet hash),
    /// else why not, naming the device and what it offers.
    status supports(algorithm alg, size_t key_len) const;

private:
    friend class cryptodev_engine;
    crypto_device() = default;

    uint8_t _id = 0;
    std::string _name;
    std::string _driver;
    uint16_t _queue_pairs = 0;
    bool _started = false;
    rte_mempool* _sessions = nullptr;
    rte_mempool* _ops = nullptr;
    rte_mempool* _mbufs = nullptr;
};

class cryptodev_engine final : public engine {
public:
    /// Largest burst given to the device at once; longer bursts are split.
    static constexpr uint16_t max_burst = 64;
    /// Longest message an engine's mbuf holds.
    static constexpr uint32_t max_message = 2048;

    /// An engine on queue pair `queue_pair` of `dev` (one engine per queue
    /// pair, used from one thread at a time).
    static result<std::unique_ptr<cryptodev_engine>> create(std::shared_ptr<crypto_device> dev, uint16_t queue_pair);

    ~cryptodev_engine() override;
    cryptodev_engine(const cryptodev_engine&) = delete;
    cryptodev_engine& operator=(const cryptodev_engine&) = delete;
    cryptodev_engine(cryptodev_engine&&) = delete;
    cryptodev_engine& operator=(cryptodev_engine&&) = delete;

    std::string_view name() const noexcept override { return _name; }
    result<key_handle> prepare(algorithm alg, std::span<const uint8_t> key) override;
    bool rekey(prepared_key& pk, std::span<const uint8_t> key) noexcept override;
    uint16_t compute_burst(const mac_request* reqs, uint16_t n) noexcept override;

    /// Operations the device failed or did not give back in time (a device
    /// fault, not a packet error): their requests are not computed.
    uint64_t device_errors() const noexcept { return _device_errors; }

    const crypto_device& device() const noexcept { return *_dev; }

private:
    cryptodev_engine(std::shared_ptr<crypto_device> dev, uint16_t queue_pair);
    uint16_t run(const mac_request* reqs, uint16_t n) noexcept;

    std::shared_ptr<crypto_device> _dev;
    uint16_t _qp;
    std::string _name;
    rte_crypto_op* _op[max_burst] = {};
    rte_mbuf* _mbuf[max_burst] = {};
    uint64_t _device_errors = 0;
    uint16_t _lost = 0; ///< operations a device kept past the deadline (then the engine stops)
};

} // namespace ptpsec::icv
