#include <dataplane/sa_table.h>

#include <rte_rcu_qsbr.h>

#include <algorithm>
#include <cstdlib>
#include <new>

namespace ptpsec {

sa_table::sa_table(std::unique_ptr<sa_database> initial, unsigned readers)
    : _owned(std::move(initial)), _current(_owned.get()) {
    const unsigned n = std::clamp(readers, 1U, max_readers);
    const size_t size = rte_rcu_qsbr_get_memsize(n);
    // The QSBR variable wants cache-line alignment; size is a multiple of it.
    void* mem =
        std::aligned_alloc(RTE_CACHE_LINE_SIZE, (size + RTE_CACHE_LINE_SIZE - 1) & ~size_t{RTE_CACHE_LINE_MASK});
    if (mem == nullptr) {
        std::abort(); // start-up only: nothing can run without it
    }
    _qsbr = static_cast<rte_rcu_qsbr*>(mem);
    rte_rcu_qsbr_init(_qsbr, n);
    for (unsigned id = 0; id < n; ++id) {
        rte_rcu_qsbr_thread_register(_qsbr, id);
    }
}

sa_table::~sa_table() {
    _retired.clear();
    std::free(_qsbr);
}

void sa_table::online(unsigned id) noexcept {
    rte_rcu_qsbr_thread_online(_qsbr, id);
}

void sa_table::offline(unsigned id) noexcept {
    rte_rcu_qsbr_thread_offline(_qsbr, id);
}

void sa_table::quiescent(unsigned id) noexcept {
    rte_rcu_qsbr_quiescent(_qsbr, id);
}

void sa_table::publish(std::unique_ptr<sa_database> next) {
    sa_database* raw = next.get();
    std::unique_ptr<sa_database> old = std::move(_owned);
    _owned = std::move(next);
    _current.store(raw, std::memory_order_release);
    _generation.fetch_add(1, std::memory_order_relaxed);
    // Readers that loaded the old pointer report quiescent after the token.
    _retired.push_back(retired_version{std::move(old), rte_rcu_qsbr_start(_qsbr)});
}

size_t sa_table::reclaim() noexcept {
    size_t freed = 0;
    while (!_retired.empty() && rte_rcu_qsbr_check(_qsbr, _retired.front().token, false) == 1) {
        _retired.pop_front(); // drops keys no version holds: their destructors wipe them
        ++freed;
    }
    return freed;
}

} // namespace ptpsec
