#pragma once

// The SA database the workers read, replaced while traffic flows without a
// lock on the worker path: the service path builds a new version
// (dataplane/sa_update.h), publishes it with one atomic store, and frees the
// old one once every worker has passed a quiescent point after the store
// (DPDK's QSBR RCU, rte_rcu_qsbr). A worker loads the current version once
// per burst and reports quiescent after it; it never waits.

#include <dataplane/sa.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>

struct rte_rcu_qsbr;

namespace ptpsec {

class sa_table {
public:
    static constexpr unsigned max_readers = 64;

    /// `readers` worker threads will read it (ids 0..readers-1).
    sa_table(std::unique_ptr<sa_database> initial, unsigned readers);
    ~sa_table();
    sa_table(const sa_table&) = delete;
    sa_table& operator=(const sa_table&) = delete;
    sa_table(sa_table&&) = delete;
    sa_table& operator=(sa_table&&) = delete;

    // Worker side: lock-free, wait-free.
    /// Starts reporting for reader `id` (on its own thread, before its loop).
    void online(unsigned id) noexcept;
    /// Stops reporting: the writer no longer waits for `id`.
    void offline(unsigned id) noexcept;
    sa_database* current() const noexcept { return _current.load(std::memory_order_acquire); }
    /// Reader `id` holds no version it loaded before this call.
    void quiescent(unsigned id) noexcept;

    // Service side: one thread.
    /// Makes `next` the current version; the old one is freed by reclaim()
    /// once no reader can hold it.
    void publish(std::unique_ptr<sa_database> next);
    /// Frees the versions no reader can hold any more; returns how many.
    size_t reclaim() noexcept;
    /// Versions waiting for readers to pass a quiescent point.
    size_t retired() const noexcept { return _retired.size(); }
    /// How many versions were published.
    uint64_t generation() const noexcept { return _generation.load(std::memory_order_relaxed); }

private:
    struct retired_version {
        std::unique_ptr<sa_database> db;
        uint64_t token;
    };

    rte_rcu_qsbr* _qsbr = nullptr;
    std::unique_ptr<sa_database> _owned; ///< what _current points to
    std::atomic<sa_database*> _current;
    std::atomic<uint64_t> _generation{0};
    std::deque<retired_version> _retired;
};

} // namespace ptpsec
