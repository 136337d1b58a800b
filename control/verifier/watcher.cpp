#include <control/verifier/watcher.h>

#include <drivers/base/unique_fd.h>
#include <hsm/evidence_log.h>

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ptpsec::verifier {

namespace {

/// The octets of `path` from `offset` to its end (what it gained).
result<std::vector<uint8_t>> read_from(const std::string& path, uint64_t offset, uint64_t size) {
    unique_fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) {
        return error{fmt::format("{}: {}", path, std::strerror(errno))};
    }
    std::vector<uint8_t> out(size - offset);
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

} // namespace

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
            const auto size = static_cast<uint64_t>(st.st_size);
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
                v.verify_record(path, pos.records, entry, report);
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
        }
    }
}

} // namespace ptpsec::verifier
