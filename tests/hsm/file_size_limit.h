#pragma once

// Tests of writers that must survive a failed write(2): the file size limit
// lowered for a scope.

#include <sys/resource.h>

#include <csignal>

namespace ptpsec::test {

/// RLIMIT_FSIZE lowered for a scope, with SIGXFSZ ignored so that a write
/// past it fails with EFBIG instead of killing the process (setrlimit(2)).
/// It works even for root, unlike a read-only directory.
class file_size_limit {
public:
    explicit file_size_limit(rlim_t limit) {
        ::getrlimit(RLIMIT_FSIZE, &_saved);
        _old_handler = std::signal(SIGXFSZ, SIG_IGN);
        rlimit lowered = _saved;
        lowered.rlim_cur = limit;
        ::setrlimit(RLIMIT_FSIZE, &lowered);
    }
    ~file_size_limit() {
        ::setrlimit(RLIMIT_FSIZE, &_saved);
        std::signal(SIGXFSZ, _old_handler);
    }
    file_size_limit(const file_size_limit&) = delete;
    file_size_limit& operator=(const file_size_limit&) = delete;
    file_size_limit(file_size_limit&&) = delete;
    file_size_limit& operator=(file_size_limit&&) = delete;

private:
    rlimit _saved{};
    void (*_old_handler)(int) = nullptr;
};

} // namespace ptpsec::test
