#include <control/verifier/watcher.h>

#include <drivers/base/file.h>
#include <drivers/base/hex.h>
#include <drivers/base/unique_fd.h>
#include <hsm/evidence_log.h>
#include <hsm/merkle.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <new>

namespace ptpsec::verifier {

namespace {

/// The octets of `path` from `offset` to its end (what it gained). The
/// error says "evidence log PATH: cannot read it: REASON", as every other
/// reader of evidence logs; more than memory holds (a sparse file) is
/// ENOMEM for this file, not an exception that ends the Verifier.
result<std::vector<uint8_t>> read_from(const std::string& path, uint64_t offset, uint64_t size) {
    // O_NONBLOCK: a pipe put in the file's place since poll's stat does
    // not hold the open (its pread then fails); a file reads as without it.
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (!fd) {
        return cannot_read_file("evidence log", path, errno);
    }
    std::vector<uint8_t> out;
    try {
        out.resize(size - offset);
    } catch (const std::bad_alloc&) {
        return cannot_read_file("evidence log", path, ENOMEM);
    }
    size_t got = 0;
    while (got < out.size()) {
        const ssize_t n = ::pread(fd.get(), out.data() + got, out.size() - got, static_cast<off_t>(offset + got));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break; // shorter than stat said: read the rest next time
        }
        got += static_cast<size_t>(n);
    }
    out.resize(got);
    return out;
}

/// The SHA-256 (hex) of the first record of the `size` octets of `path`,
/// or nothing while it holds no whole first record (or a corrupt one).
result<std::optional<std::string>> first_record_key(const std::string& path, uint64_t size) {
    for (uint64_t chunk = std::min<uint64_t>(size, uint64_t{64} * 1024);; chunk = std::min(size, chunk * 4)) {
        auto bytes = read_from(path, 0, chunk);
        if (!bytes) {
            return bytes.err();
        }
        const hsm::log_contents contents = hsm::read_log(*bytes);
        if (!contents.records.empty()) {
            const hsm::log_entry& first = contents.records.front();
            PTPSEC_TRY(digest, hsm::sha256(std::span<const uint8_t>(*bytes).subspan(first.offset, first.length)));
            return std::optional<std::string>(to_hex(*digest));
        }
        if (chunk >= size || bytes->size() < chunk || (contents.problem && !contents.problem->truncated)) {
            return std::optional<std::string>{};
        }
    }
}

} // namespace

status watcher::resume(const std::string& path, uint64_t size, position& pos, verify_report& report) {
    PTPSEC_TRY(key, first_record_key(path, size));
    if (!*key) {
        return ok_status(); // no whole first record yet: read from the start
    }
    pos.key = std::move(**key);
    auto saved = _store.position_of(pos.key);
    if (!saved) {
        report.store_errors.push_back(saved.message());
        return ok_status();
    }
    if (*saved) {
        pos.offset = (*saved)->offset;
        pos.records = (*saved)->records;
        pos.stopped = (*saved)->stopped;
        pos.stop_saved = pos.stopped;
    }
    return ok_status();
}

watcher::watcher(registrar& reg, audit_store& store, watch_settings settings, verifier_options options)
    : _registrar(reg), _store(store), _settings(std::move(settings)), _options(std::move(options)) {}

void watcher::poll(verify_report& report) {
    verifier v(_registrar, &_store, _options);
    for (const auto& dir : _settings.directories) {
        auto files = hsm::list_log_files(dir, _settings.log_name);
        if (!files) {
            report.store_errors.push_back(files.message());
            continue;
        }
        const std::string current = _settings.log_name + ".cbor";
        for (const auto& f : *files) {
            const std::string path = f.string();
            struct stat st {};
            if (::stat(path.c_str(), &st) != 0) {
                continue; // renamed between the listing and now: the next poll finds it
            }
            position& pos = _files[{st.st_dev, st.st_ino}];
            if (!S_ISREG(st.st_mode)) {
                // A device or a pipe under a log's name is never opened;
                // said once (it has no first record to be saved by).
                if (!pos.stopped) {
                    report.failures.push_back(finding{path,
                                                      0,
                                                      0,
                                                      {},
                                                      {},
                                                      {},
                                                      "cannot read",
                                                      not_regular_file("evidence log", path, st.st_mode).message,
                                                      false});
                    pos.stopped = true;
                }
                continue;
            }
            const auto size = static_cast<uint64_t>(st.st_size);
            if (pos.key.empty() && pos.offset == 0 && size != 0 && !pos.stopped) {
                if (auto resumed = resume(path, size, pos, report); !resumed) {
                    report.failures.push_back(finding{path, 0, 0, {}, {}, {}, "cannot read", resumed.message(), false});
                    continue;
                }
            }
            if (pos.stopped || size <= pos.offset) {
                continue;
            }
            auto bytes = read_from(path, pos.offset, size);
            if (!bytes) {
                report.failures.push_back(
                    finding{path, pos.offset, pos.records, {}, {}, {}, "cannot read", bytes.message(), false});
                continue;
            }
            const hsm::log_contents contents = hsm::read_log(*bytes);
            for (const auto& rec : contents.records) {
                hsm::log_entry entry = rec;
                entry.offset += pos.offset;
                ++report.records;
                if (pos.key.empty()) {
                    v.verify_record(path, pos.records, entry, report);
                } else {
                    const log_position after{pos.key, path, entry.offset + entry.length, pos.records + 1, false};
                    const size_t errors = report.store_errors.size();
                    auto saved = _store.record_with_position(after, [&]() -> status {
                        v.verify_record(path, pos.records, entry, report);
                        if (report.store_errors.size() != errors) {
                            return error{"not recorded"};
                        }
                        return ok_status();
                    });
                    if (!saved && report.store_errors.size() == errors) {
                        report.store_errors.push_back(saved.message());
                    }
                }
                ++pos.records;
            }
            const uint64_t consumed =
                contents.records.empty() ? 0 : contents.records.back().offset + contents.records.back().length;
            if (contents.problem) {
                // The file being appended to may end inside a record that is
                // being written: wait for the rest. Anywhere else it is final.
                const bool writing = contents.problem->truncated && f.filename() == current;
                if (!writing) {
                    report.failures.push_back(
                        finding{path,
                                pos.offset + consumed,
                                pos.records,
                                {},
                                {},
                                {},
                                contents.problem->truncated ? "truncated record" : "corrupt record",
                                fmt::format("{} (the rest of this file is not read)", contents.problem->message),
                                false});
                    pos.stopped = true;
                }
            }
            pos.offset += consumed;
            if (pos.stopped && !pos.stop_saved && !pos.key.empty()) {
                if (auto saved = _store.save_position({pos.key, path, pos.offset, pos.records, true}); !saved) {
                    report.store_errors.push_back(saved.message());
                } else {
                    pos.stop_saved = true;
                }
            }
        }
    }
}

} // namespace ptpsec::verifier
