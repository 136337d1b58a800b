#pragma once

// The evidence log on disk (BRIEF "Attestation", docs/attestation.md
// "Evidence log"): log records (hsm::encode_log_record) appended to an RFC
// 8742 CBOR sequence file, durably, one batch at a time, rotated by size.
//
// Files, in a directory of their own or shared with other logs:
//
//   <base>.cbor       the file being appended to
//   <base>.<N>.cbor   earlier files, N = 1, 2, 3, ... in the order they were
//                     closed; list_log_files() returns them oldest first,
//                     then <base>.cbor
//   <base>.lock       held (flock, exclusive) while a log is open, so that
//                     two writers never interleave records in one file
//
// Each file is a complete CBOR sequence of its own: a record never spans two
// files, so a reader can read every file with hsm::read_log, and a damaged
// file does not hide the records of the next one.
//
// Durability: append() returns only once the record's octets are written in
// full (a write(2) loop) and fdatasync(2) has returned; a new file's
// directory entry is made durable with an fsync of the directory (fsync(2):
// "an fsync() on a file descriptor for the file does not necessarily ensure
// that the entry in the directory containing the file has also reached
// disk"), and so is a rotation's rename.
//
// Nothing is ever truncated, rewritten or deleted:
//
//   * Rotation: when appending a record would take the file past
//     max_file_bytes, the file is closed, renamed to the next free
//     <base>.<N>.cbor (renameat2 RENAME_NOREPLACE: never over an existing
//     file) and a new <base>.cbor is started. A record larger than
//     max_file_bytes gets a file of its own.
//   * A torn tail at open (the process or the host died inside a write: the
//     file ends inside a record, hsm::read_log says "truncated"): the file
//     is not appended to, since the next record would then follow the torn
//     octets and the file would be unreadable past them. It is rotated
//     aside as it is, torn tail included (<base>.<N>.cbor), a new file is
//     started, and recovery_note() says what happened; a reader finds the
//     complete records before the tear in that file and reads on in the
//     next. The torn record's batch never reached the log: its counter
//     value is skipped (the chain rules allow gaps in the counter) and the
//     next batch names the last complete record's root as previous_root.
//   * Corruption at open (octets that are not a log record, anywhere in the
//     file that holds the last record): open() fails, naming the file and
//     the offset; an operator must look before anything is added to it.
//   * A failed append (write or fdatasync failed: a full disk, an I/O
//     error): the file may now end in a partial record, or in a complete one
//     whose durability is unknown. append() returns the error; the next
//     append() first rotates that file aside and writes the record to a new
//     file. A record whose write completed but whose fdatasync failed can
//     therefore appear twice, octet for octet, at the end of one file and
//     the start of the next; a reader takes the first record of a file with
//     the counter and merkle_root of the last batch it accepted as that
//     repeat (the second would otherwise fail the counter rule).
//
// One writer (the batching signer's thread); not thread-safe. Control-side
// code: allocates, returns result<>, never throws.

#include <drivers/base/result.h>
#include <hsm/evidence.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace ptpsec::hsm {

/// Whether `base` can name a log: a plain file name that does not end in a
/// dot and digits (the rotated files' "NAME.N.cbor" would be ambiguous).
status check_log_base_name(std::string_view base);

/// The files of the log `base_name` in `directory` in reading order: the
/// closed files <base>.<N>.cbor by increasing N, then <base>.cbor when it
/// exists.
result<std::vector<std::filesystem::path>> list_log_files(const std::filesystem::path& directory,
                                                          std::string_view base_name);

class evidence_log {
public:
    /// Opens (creating the file when absent) the log `base_name` in
    /// `directory`, which must exist. Takes the log's lock; handles a torn
    /// tail as described above; finds the last complete record of the log
    /// (last_record()). `base_name` is a plain file name (no '/'), not
    /// empty; max_file_bytes is at least 1.
    static result<std::unique_ptr<evidence_log>> open(const std::filesystem::path& directory,
                                                      const std::string& base_name, uint64_t max_file_bytes);

    ~evidence_log();
    evidence_log(const evidence_log&) = delete;
    evidence_log& operator=(const evidence_log&) = delete;
    evidence_log(evidence_log&&) = delete;
    evidence_log& operator=(evidence_log&&) = delete;

    /// Appends one encoded log record, rotating first when needed; returns
    /// once it is written and fdatasynced. Errors name the file.
    status append(std::span<const uint8_t> encoded_record);
    /// The same for a record given in parts, written in order with one
    /// writev (batch_builder::log_record(): the leaves are not copied);
    /// at most 128 parts.
    status append_parts(std::span<const std::span<const uint8_t>> record_parts);

    /// The last complete record in the log when it was opened (from the
    /// newest file that holds one), for a signer that continues its chain;
    /// null for a log without records.
    const std::optional<batch_record>& last_record() const noexcept { return _last_record; }

    /// Set when open() had to repair something (a torn tail rotated aside):
    /// what, in words for the operator. Empty otherwise.
    const std::string& recovery_note() const noexcept { return _recovery_note; }

    /// The file being appended to, and its size.
    std::filesystem::path current_path() const;
    uint64_t current_size() const noexcept { return _size; }
    /// How many files this object rotated (by size, torn tail or failure).
    uint64_t rotations() const noexcept { return _rotations; }

private:
    evidence_log(std::filesystem::path directory, std::string base_name, uint64_t max_file_bytes);
    status open_current();
    status rotate();
    void close_current() noexcept;

    std::filesystem::path _directory;
    std::string _base_name;
    uint64_t _max_file_bytes;
    int _lock_fd = -1;
    int _fd = -1;
    uint64_t _size = 0;
    /// The last append failed: the file's tail is uncertain (see above).
    bool _damaged = false;
    uint64_t _rotations = 0;
    std::optional<batch_record> _last_record;
    std::string _recovery_note;
};

} // namespace ptpsec::hsm
