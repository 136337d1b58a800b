#include <hsm/evidence_log.h>

#include <drivers/base/file.h>
#include <drivers/base/unique_fd.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

namespace ptpsec::hsm {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view log_suffix = ".cbor";

std::string errno_text(int e) {
    return std::strerror(e);
}

// A new directory entry (a created file, a rename) is durable only once the
// directory itself is fsynced (fsync(2), NOTES).
status fsync_directory(const fs::path& dir) {
    unique_fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) {
        return error{fmt::format("evidence log: cannot open directory {}: {}", dir.string(), errno_text(errno))};
    }
    if (::fsync(fd.get()) != 0) {
        return error{fmt::format("evidence log: cannot fsync directory {}: {}", dir.string(), errno_text(errno))};
    }
    return ok_status();
}

/// N of "<base>.<N>.cbor", or nothing for any other name.
std::optional<uint64_t> rotated_number(std::string_view name, std::string_view base) {
    if (name.size() <= base.size() + 1 + log_suffix.size() || !name.starts_with(base) || name[base.size()] != '.' ||
        !name.ends_with(log_suffix)) {
        return std::nullopt;
    }
    const std::string_view digits = name.substr(base.size() + 1, name.size() - base.size() - 1 - log_suffix.size());
    if (digits.empty() || digits.size() > 19 || digits.front() == '0' ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    uint64_t n = 0;
    std::from_chars(digits.data(), digits.data() + digits.size(), n);
    return n;
}

result<std::vector<std::pair<uint64_t, fs::path>>> rotated_files(const fs::path& directory, std::string_view base) {
    std::vector<std::pair<uint64_t, fs::path>> out;
    std::error_code ec;
    fs::directory_iterator it(directory, ec);
    if (ec) {
        return error{fmt::format("evidence log: cannot list {}: {}", directory.string(), ec.message())};
    }
    for (const fs::directory_entry& e : it) {
        if (const auto n = rotated_number(e.path().filename().string(), base)) {
            out.emplace_back(*n, e.path());
        }
    }
    std::sort(out.begin(), out.end());
    return out;
}

} // namespace

status check_log_base_name(std::string_view base) {
    if (base.empty() || base == "." || base == ".." || base.find('/') != std::string_view::npos ||
        base.find('\0') != std::string_view::npos) {
        return error{fmt::format("evidence log: the base name '{}' is not a plain file name", base)};
    }
    // "evidence.5.cbor" would be both file 5 of "evidence" and the current
    // file of "evidence.5".
    const size_t dot = base.rfind('.');
    if (dot != std::string_view::npos && dot + 1 < base.size() &&
        std::all_of(base.begin() + static_cast<std::ptrdiff_t>(dot) + 1, base.end(),
                    [](char c) { return c >= '0' && c <= '9'; })) {
        return error{fmt::format("evidence log: the base name '{}' ends in .{}, which reads as a rotated file's number "
                                 "of '{}': choose a name that does not end in a dot and digits",
                                 base, base.substr(dot + 1), base.substr(0, dot))};
    }
    return ok_status();
}

result<std::vector<fs::path>> list_log_files(const fs::path& directory, std::string_view base_name) {
    PTPSEC_TRY(name_ok, check_log_base_name(base_name));
    PTPSEC_TRY(rotated, rotated_files(directory, base_name));
    std::vector<fs::path> out;
    out.reserve(rotated->size() + 1);
    for (auto& [n, path] : *rotated) {
        out.push_back(std::move(path));
    }
    const fs::path current = directory / (std::string(base_name) + std::string(log_suffix));
    std::error_code ec;
    if (fs::exists(current, ec)) {
        out.push_back(current);
    }
    return out;
}

evidence_log::evidence_log(fs::path directory, std::string base_name, uint64_t max_file_bytes)
    : _directory(std::move(directory)), _base_name(std::move(base_name)), _max_file_bytes(max_file_bytes) {}

evidence_log::~evidence_log() {
    close_current();
    if (_lock_fd >= 0) {
        ::close(_lock_fd);
    }
}

fs::path evidence_log::current_path() const {
    return _directory / (_base_name + std::string(log_suffix));
}

void evidence_log::close_current() noexcept {
    if (_fd >= 0) {
        ::close(_fd);
        _fd = -1;
    }
}

status evidence_log::open_current() {
    const fs::path path = current_path();
    bool created = true;
    int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0 && errno == EEXIST) {
        created = false;
        fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    }
    if (fd < 0) {
        return error{fmt::format("evidence log: cannot open {} for appending: {}", path.string(), errno_text(errno))};
    }
    unique_fd guard(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        return error{fmt::format("evidence log: cannot stat {}: {}", path.string(), errno_text(errno))};
    }
    if (!S_ISREG(st.st_mode)) {
        return error{fmt::format("evidence log: {} is not a regular file", path.string())};
    }
    if (created) {
        PTPSEC_TRY(synced, fsync_directory(_directory));
    }
    _fd = guard.release();
    _size = static_cast<uint64_t>(st.st_size);
    return ok_status();
}

status evidence_log::rotate() {
    close_current();
    const fs::path from = current_path();
    PTPSEC_TRY(rotated, rotated_files(_directory, _base_name));
    uint64_t n = rotated->empty() ? 1 : rotated->back().first + 1;
    for (;; ++n) {
        const fs::path to = _directory / fmt::format("{}.{}{}", _base_name, n, log_suffix);
        // RENAME_NOREPLACE: a closed file is never overwritten, even by a
        // name someone else created since the listing.
        if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
            break;
        }
        if (errno != EEXIST) {
            return error{
                fmt::format("evidence log: cannot rename {} to {}: {}", from.string(), to.string(), errno_text(errno))};
        }
    }
    // The damaged file is now a closed one; what follows goes to a new file.
    _damaged = false;
    PTPSEC_TRY(synced, fsync_directory(_directory));
    ++_rotations;
    return open_current();
}

result<std::unique_ptr<evidence_log>> evidence_log::open(const fs::path& directory, const std::string& base_name,
                                                         uint64_t max_file_bytes) {
    PTPSEC_TRY(name_ok, check_log_base_name(base_name));
    if (max_file_bytes == 0) {
        return error{"evidence log: max_file_bytes must be at least 1"};
    }
    std::error_code ec;
    if (!fs::exists(directory, ec)) {
        return error{fmt::format("evidence log: directory {} does not exist (create it first)", directory.string())};
    }
    if (!fs::is_directory(directory, ec)) {
        return error{fmt::format("evidence log: {} is not a directory", directory.string())};
    }
    std::unique_ptr<evidence_log> log(new evidence_log(directory, base_name, max_file_bytes));

    const fs::path lock_path = directory / (base_name + ".lock");
    log->_lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (log->_lock_fd < 0) {
        return error{fmt::format("evidence log: cannot open {}: {}", lock_path.string(), errno_text(errno))};
    }
    if (::flock(log->_lock_fd, LOCK_EX | LOCK_NB) != 0) {
        const int e = errno;
        return error{fmt::format("evidence log: {} is locked ({}): another writer has the log {} open",
                                 lock_path.string(), errno_text(e), (directory / base_name).string())};
    }

    // The current file: refuse corruption, move a torn tail aside.
    const fs::path current = log->current_path();
    if (fs::exists(current, ec)) {
        PTPSEC_TRY(octets, read_regular_file("evidence log", current.string()));
        const log_contents contents = read_log(*octets);
        if (contents.problem) {
            if (!contents.problem->truncated) {
                return error{fmt::format("evidence log: {} is corrupt at offset {} ({}); not appending to it",
                                         current.string(), contents.problem->offset, contents.problem->message)};
            }
            PTPSEC_TRY(rotated, log->rotate());
            const auto files = rotated_files(directory, base_name);
            const std::string aside =
                files && !files->empty() ? files->back().second.filename().string() : std::string("?");
            log->_recovery_note = fmt::format(
                "{} ended in a torn record at offset {} ({} octets after {} complete records): the file was moved "
                "aside as {} unchanged and a new {} was started",
                current.string(), contents.problem->offset, octets->size() - contents.problem->offset,
                contents.records.size(), aside, current.filename().string());
        }
    }

    // The last complete record: from the newest file that has one.
    PTPSEC_TRY(files, list_log_files(directory, base_name));
    for (auto it = files->rbegin(); it != files->rend(); ++it) {
        PTPSEC_TRY(octets, read_regular_file("evidence log", it->string()));
        log_contents contents = read_log(*octets);
        if (contents.problem && !contents.problem->truncated) {
            return error{fmt::format("evidence log: {} is corrupt at offset {} ({})", it->string(),
                                     contents.problem->offset, contents.problem->message)};
        }
        if (!contents.records.empty()) {
            log->_last_record = std::move(contents.records.back().record);
            break;
        }
    }

    if (log->_fd < 0) {
        PTPSEC_TRY(opened, log->open_current());
    }
    return log;
}

status evidence_log::append(std::span<const uint8_t> encoded_record) {
    const std::span<const uint8_t> parts[] = {encoded_record};
    return append_parts(parts);
}

status evidence_log::append_parts(std::span<const std::span<const uint8_t>> record_parts) {
    constexpr size_t max_parts = 128;
    if (record_parts.size() > max_parts) {
        return error{fmt::format("evidence log: a record in {} parts; at most {}", record_parts.size(), max_parts)};
    }
    size_t total = 0;
    for (const auto& part : record_parts) {
        total += part.size();
    }
    if (total == 0) {
        return error{"evidence log: refusing to append an empty record"};
    }
    if (_fd < 0 && !_damaged) {
        // A rotation renamed the file but could not open the next one.
        PTPSEC_TRY(opened, open_current());
    }
    if (_damaged || (_size > 0 && _size + total > _max_file_bytes)) {
        PTPSEC_TRY(rotated, rotate());
    }
    const fs::path path = current_path();
    // writev of what is left: the parts not yet written, the first of them
    // from where a short write stopped.
    size_t done = 0;
    while (done < total) {
        iovec iov[max_parts];
        int count = 0;
        size_t skip = done;
        for (const auto& part : record_parts) {
            if (skip >= part.size()) {
                skip -= part.size();
                continue;
            }
            iov[count].iov_base = const_cast<uint8_t*>(part.data() + skip);
            iov[count].iov_len = part.size() - skip;
            ++count;
            skip = 0;
        }
        const ssize_t n = ::writev(_fd, iov, count);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            const int e = errno;
            _damaged = true;
            return error{fmt::format("evidence log: cannot write {} octets to {} ({} written): {}", total,
                                     path.string(), done, errno_text(e))};
        }
        done += static_cast<size_t>(n);
    }
    if (::fdatasync(_fd) != 0) {
        const int e = errno;
        _damaged = true;
        return error{fmt::format("evidence log: cannot fdatasync {}: {}", path.string(), errno_text(e))};
    }
    _size += total;
    return ok_status();
}

} // namespace ptpsec::hsm
