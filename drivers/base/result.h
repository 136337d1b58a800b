#pragma once

// A small result type for code outside the fast path: a value, or an error
// that carries a message meant for the operator. Exceptions stay at the top
// of programs; libraries return this.

#include <string>
#include <utility>
#include <variant>

namespace ptpsec {

struct error {
    std::string message;
};

/// A value, or an error of type E (anything with a `message` string).
template <typename T, typename E = error>
class [[nodiscard]] result {
public:
    result(T value) : _v(std::move(value)) {}
    result(E e) : _v(std::move(e)) {}

    bool ok() const noexcept { return _v.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & { return std::get<0>(_v); }
    const T& value() const& { return std::get<0>(_v); }
    T&& value() && { return std::get<0>(std::move(_v)); }
    T* operator->() { return &std::get<0>(_v); }
    const T* operator->() const { return &std::get<0>(_v); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const std::string& message() const { return std::get<1>(_v).message; }
    const E& err() const { return std::get<1>(_v); }

private:
    std::variant<T, E> _v;
};

struct ok_t {};

/// result<void> analogue.
using status = result<ok_t>;

inline status ok_status() {
    return ok_t{};
}

/// `auto var = expr;`, returning its error from the enclosing function when
/// it failed (works for result<> and every type with operator bool and err()).
#define PTPSEC_TRY(var, expr)                                                                                          \
    auto var = (expr);                                                                                                 \
    if (!var) {                                                                                                        \
        return var.err();                                                                                              \
    }

} // namespace ptpsec
