#pragma once

// What a fuzz target checks beyond "no crash, no sanitizer report": a
// property every input must keep. A broken one names itself and where it
// was checked, then aborts, which libFuzzer reports as a crash and keeps the
// input for.

#include <cstdio>
#include <cstdlib>
#include <string>

namespace ptpsec::fuzz {

[[noreturn]] inline void broken(const char* what, const std::string& detail = {}, const char* file = __builtin_FILE(),
                                int line = __builtin_LINE()) {
    std::fprintf(stderr, "%s:%d: invariant broken: %s%s%s\n", file, line, what, detail.empty() ? "" : ": ",
                 detail.c_str());
    std::abort();
}

inline void require(bool ok, const char* what, const char* file = __builtin_FILE(), int line = __builtin_LINE()) {
    if (!ok) {
        broken(what, {}, file, line);
    }
}

} // namespace ptpsec::fuzz
