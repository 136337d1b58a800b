#include <dataplane/shm_segment.h>

#include <drivers/base/bytes.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ptpsec {

result<shm_segment> shm_segment::create(std::string name, size_t size, std::string_view what, bool wipe) {
    shm_segment s;
    s._name = std::move(name);
    s._owner = true;
    s._wipe = wipe;
    // A segment left by a data plane that did not stop cleanly is replaced:
    // EAL's file-prefix lock already keeps two data planes from sharing a prefix.
    (void)::shm_unlink(s._name.c_str());
    s._fd = ::shm_open(s._name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (s._fd < 0) {
        return error{fmt::format("{} {}: shm_open: {}", what, s._name, std::strerror(errno))};
    }
    if (::ftruncate(s._fd, static_cast<off_t>(size)) != 0) {
        return error{fmt::format("{} {}: ftruncate {} octets: {}", what, s._name, size, std::strerror(errno))};
    }
    s._base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, s._fd, 0);
    if (s._base == MAP_FAILED) {
        s._base = nullptr;
        return error{fmt::format("{} {}: mmap: {}", what, s._name, std::strerror(errno))};
    }
    s._size = size;
    return s;
}

result<shm_segment> shm_segment::open(std::string name, size_t min_size, std::string_view what, std::string missing) {
    shm_segment s;
    s._name = std::move(name);
    s._fd = ::shm_open(s._name.c_str(), O_RDWR, 0);
    if (s._fd < 0) {
        if (errno == ENOENT) {
            return error{std::move(missing)};
        }
        return error{fmt::format("{} /dev/shm{}: {}{}", what, s._name, std::strerror(errno),
                                 errno == EACCES ? " (it is root's: run as root)" : "")};
    }
    struct stat st {};
    if (::fstat(s._fd, &st) != 0 || static_cast<size_t>(st.st_size) < min_size) {
        return error{fmt::format("{} /dev/shm{}: too short to be one", what, s._name)};
    }
    const auto size = static_cast<size_t>(st.st_size);
    s._base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, s._fd, 0);
    if (s._base == MAP_FAILED) {
        s._base = nullptr;
        return error{fmt::format("{} /dev/shm{}: mmap: {}", what, s._name, std::strerror(errno))};
    }
    s._size = size;
    return s;
}

shm_segment::shm_segment(shm_segment&& o) noexcept
    : _fd(o._fd), _base(o._base), _size(o._size), _owner(o._owner), _wipe(o._wipe), _name(std::move(o._name)) {
    o._fd = -1;
    o._base = nullptr;
    o._owner = false;
}

shm_segment& shm_segment::operator=(shm_segment&& o) noexcept {
    if (this != &o) {
        release();
        _fd = o._fd;
        _base = o._base;
        _size = o._size;
        _owner = o._owner;
        _wipe = o._wipe;
        _name = std::move(o._name);
        o._fd = -1;
        o._base = nullptr;
        o._owner = false;
    }
    return *this;
}

shm_segment::~shm_segment() {
    release();
}

void shm_segment::release() noexcept {
    if (_base != nullptr) {
        if (_owner && _wipe) {
            secure_wipe(_base, _size);
        }
        ::munmap(_base, _size);
        _base = nullptr;
    }
    if (_fd >= 0) {
        ::close(_fd);
        _fd = -1;
    }
    if (_owner) {
        (void)::shm_unlink(_name.c_str());
        _owner = false;
    }
}

} // namespace ptpsec
