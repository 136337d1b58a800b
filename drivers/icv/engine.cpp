#include <drivers/icv/engine.h>

#include <fmt/format.h>

namespace ptpsec::icv {

status check_key_length(algorithm alg, size_t key_len) {
    const auto& ai = info(alg);
    if (key_len == 0) {
        return error{fmt::format("{}: the key is empty", ai.name)};
    }
    if (key_len > max_key_len) {
        return error{
            fmt::format("{}: key of {} octets is longer than the {} octets supported", ai.name, key_len, max_key_len)};
    }
    if (ai.key_len != 0 && key_len != ai.key_len) {
        return error{fmt::format("{}: key must be {} octets, got {}", ai.name, ai.key_len, key_len)};
    }
    return ok_status();
}

} // namespace ptpsec::icv
