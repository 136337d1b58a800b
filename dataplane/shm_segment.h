#pragma once

// A POSIX shared-memory segment mapped read-write: what the SA channel and
// the exception channel (sa_channel.h, exception_channel.h) are laid out
// in. The creator (the data plane) makes it fresh, mode 0600, replacing one a
// data plane that did not stop cleanly left behind, and removes it when it
// goes; others attach to it. The layout inside is the channel's.

#include <drivers/base/result.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ptpsec {

class shm_segment {
public:
    /// A fresh segment `name` ("/ptpsec-sa.rte") of `size` zeroed octets.
    /// `what` names it in errors ("SA channel"); with `wipe`, its octets are
    /// overwritten before it is unmapped (it held keys).
    static result<shm_segment> create(std::string name, size_t size, std::string_view what, bool wipe);
    /// The existing segment `name`, at least `min_size` octets; `missing` is
    /// the error when there is none.
    static result<shm_segment> open(std::string name, size_t min_size, std::string_view what, std::string missing);

    shm_segment(shm_segment&& o) noexcept;
    shm_segment& operator=(shm_segment&& o) noexcept;
    shm_segment(const shm_segment&) = delete;
    shm_segment& operator=(const shm_segment&) = delete;
    /// Unmaps and closes; the creator also removes the segment.
    ~shm_segment();

    uint8_t* base() const noexcept { return static_cast<uint8_t*>(_base); }
    size_t size() const noexcept { return _size; }
    int fd() const noexcept { return _fd; }
    const std::string& name() const noexcept { return _name; }

private:
    shm_segment() = default;
    void release() noexcept;

    int _fd = -1;
    void* _base = nullptr;
    size_t _size = 0;
    bool _owner = false;
    bool _wipe = false;
    std::string _name;
};

} // namespace ptpsec
