#pragma once

// The online Verifier (ptpsec-controld [verifier]): watches the evidence
// log directories of running data planes (ptpsec-dataplane --attest-log) and
// verifies each batch once, soon after it is appended, recording it in the
// audit store.
//
// Each poll lists the log files of every directory in reading order
// (hsm::list_log_files), reads what each file gained since the last poll and
// hands every complete record to the Verifier (verifier::verify_record).
// Files are followed by device and inode, so a file renamed by rotation
// (evidence.cbor -> evidence.N.cbor) is not read twice. A record that is still
// being written (a truncated tail of the file being appended to) is left for
// the next poll; a cut or corrupt record anywhere else is reported once, and
// that file is not read further (a CBOR sequence cannot be resynchronised).
//
// A Verifier is made afresh for every poll, so that an enrolment or a
// revocation made meanwhile counts from that poll on; what it must remember
// between polls (each signer's chain) is in the audit store, which is
// therefore required here.
//
// How far each file was read is kept in the audit store too
// (audit_store::log_position), under the SHA-256 of the file's first record,
// which a rename does not change: a restarted Verifier goes on after the
// last record it verified, in whichever file it now is, instead of reading
// the logs again from their start (where every batch would be one it
// accepted before: a replay). A record's findings and the position past it
// are stored in one transaction. A file whose first record is cut or
// corrupt has no name of that kind; its finding is made again after a
// restart. Two files share a first record only when the writer repeated a
// file's only record at the start of the next (a failed write): the next
// is then taken up past that record, which is the copy.

#include <control/verifier/verifier.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <sys/types.h>

namespace ptpsec::verifier {

struct watch_settings {
    std::vector<std::string> directories;
    std::string log_name = "evidence"; ///< the data plane's --attest-log-name
};

class watcher {
public:
    watcher(registrar& reg, audit_store& store, watch_settings settings, verifier_options options = {});

    /// Verifies what was appended since the last poll; adds to `report`.
    void poll(verify_report& report);

private:
    struct position {
        uint64_t offset = 0;  ///< octets verified (whole records)
        size_t records = 0;   ///< records verified
        bool stopped = false; ///< a bad record: not read further
        /// The first record's SHA-256 (hex), once the file holds one whole:
        /// the file's name in the audit store's log_positions.
        std::string key;
        bool stop_saved = false; ///< `stopped` is in the audit store
    };

    /// The position of a file seen for the first time: where the audit
    /// store says this Verifier stopped reading it before, else its start.
    /// Fails only when the file cannot be read.
    status resume(const std::string& path, uint64_t size, position& pos, verify_report& report);

    registrar& _registrar;
    audit_store& _store;
    watch_settings _settings;
    verifier_options _options;
    std::map<std::pair<dev_t, ino_t>, position> _files;
};

} // namespace ptpsec::verifier
