#pragma once

// ptpsec-controld's configuration file (TOML, docs/operations.md):
//
//   [server]                      the NTS-KE server role (absent: not a server)
//   listen = ["0.0.0.0"]          numeric addresses; default: dual-stack "::"
//   port = 4460
//   certificate = "server.crt"    PEM, chain allowed
//   private-key = "server.key"
//   ca = "ca.crt"                 the CA client certificates must chain to
//   state = "controld.db"         keys and counters across restarts (SQLite)
//   handshake-timeout-ms = 5000, idle-timeout-ms = 10000, max-connections = 256,
//   connections-per-second = 10, connection-burst = 20 (per client address),
//   max-message-size = 65536, watch-certificates-ms = 0
//
//   [[group]]                     one per PTP group (seeds/001 §4.2.2)
//   name = "plant-a"
//   domain = 0
//   sdo-id = 0x000
//   subgroup = 0
//   algorithm = "hmac-sha256-128" (ptpsecctl's names: hmac-sha256, aes-cmac-128, aes-gmac-256, ...)
//   lifetime = 14400, update-period = 300, grace-period = 3   (seconds)
//
//   [unicast]                     ticket-based mode of the server (absent: off;
//                                 control/ke/grantors.h)
//   lifetime = 3600, update-period = 300, grace-period = 3   (seconds; of
//                                 ticket keys, registrations and unicast keys)
//   heartbeat-timeout = 0         seconds asked of grantors; 0: no heartbeats
//   missed-heartbeats = 3         timeouts without one before a grantor is dropped
//   aead-algorithms = ["aes-siv-cmac-512", "aes-siv-cmac-384", "aes-siv-cmac-256"]
//   mac-algorithms = ["hmac-sha256-128", "hmac-sha256", "aes-cmac",
//                     "aes-gmac-128", "aes-gmac-192", "aes-gmac-256"]
//   enabled = true
//
//   [[client]]                    who may ask for what (seeds/001 §2.5.5.4)
//   subject = "CN=node1,O=plant" and/or san = "DNS:node1.plant.example"
//   groups = ["plant-a"]          or ["*"]
//   grantor = false               may register as a grantor (ticket-based mode)
//   unicast = false               may ask for unicast keys and tickets
//   transparent-clock = false
//
//   [node]                        the node role: fetch keys, feed the local data plane
//   server = "ke.plant.example"   the KE server (host name or address)
//   port = 4460
//   server-name = "ke.plant.example"   the name its certificate must carry (default: server)
//   certificate = "node.pem", private-key = "node.key", ca = "ca.pem"
//   groups = ["plant-a"]          [[group]] names (only name, domain, sdo-id, subgroup matter here)
//   dataplane-prefix = "rte"      the data plane's EAL --file-prefix
//   retry-min-ms = 1000, retry-max-ms = 300000
//
//   [node.grantor]                this node is a grantor of ticket-based mode
//                                 (control/node/grantor.h); [node] groups may then be empty
//   port-identity = "001b21fffe000001-1"   clockIdentity in hex, '-', portNumber
//   addresses = ["10.0.0.1", "2001:db8::1", "02:00:00:00:00:01"]   one of each kind at most
//   aead-algorithms = [...], mac-algorithms = [...]   as in [unicast]; default: all
//
//   [[node.unicast]]              a unicast key and ticket for one grantor (the node
//                                 is a requester of ticket-based mode)
//   grantor = "10.0.0.1"          its IPv4, IPv6 or MAC address, or its PortIdentity
//   port-identity = "001b21fffe000002-1"   this requester's PortIdentity
//   mac-algorithms = ["aes-gmac-256", "hmac-sha256-128"]   optional, descending priority
//
//   [admin]                       the admin socket `ptpsecctl status` and `groups` ask (admin.h)
//   socket = "/run/ptpsec/controld.sock"   the default; relative: next to this file
//   enabled = true                false: no admin socket
//
// Every error names the file, the line and the key, and what would be valid.
// Unknown keys are errors too: a misspelt key is not silently a default.

#include <control/controld/admin.h>
#include <control/ke/grantors.h>
#include <control/ke/group_keys.h>
#include <control/ke/ke_service.h>
#include <control/node/node.h>
#include <control/tls/server.h>
#include <drivers/base/result.h>
#include <hsm/tpm_signer.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ptpsec::controld {

struct server_settings {
    tls::server_config tls;
    std::string state_file;
    /// The Registrar's database: Platform Attestations (client rules with
    /// `attest`) are checked against the signers enrolled there. Empty: none.
    std::string registrar;
};

/// [node.attestation]: the node quotes its platform state with its TPM
/// signer for every TLS session with the KE server (node::attestation_settings).
struct node_attestation_settings {
    /// The signer enrolled in the Registrar: its TCTI, key handle and counter
    /// index (the data plane's --attest-tpm-* when it is the same TPM signer).
    hsm::tpm_settings tpm;
    /// The PCR profile it was enrolled with (SHA-256 bank), ascending.
    std::vector<unsigned> pcrs;
};

struct admin_settings {
    bool enabled = true;
    std::string socket{admin::default_socket};
    /// The file named the socket. A socket that cannot be opened then stops
    /// the daemon; the default only costs a warning, so that two daemons on
    /// one host (a server and a node) that predate [admin] both still start.
    bool configured = false;
};

/// [verifier]: the online Verifier (control/verifier/watcher.h).
struct verifier_settings {
    std::string registrar;             ///< the Registrar's database
    std::string audit;                 ///< sqlite:PATH or postgresql:CONNINFO
    std::vector<std::string> logs;     ///< evidence log directories to watch
    std::string log_name = "evidence"; ///< their files' base name
    uint32_t poll_ms = 500;
    /// EAL file prefixes of data planes on this host that get a fresh
    /// verifier nonce every nonce_interval_s (control/verifier/verifier.h,
    /// "Challenges"); empty: no challenges.
    std::vector<std::string> challenge;
    /// [verifier.challenge-signers]: the signer_id each challenged data plane
    /// (by file prefix) is known to sign as. A nonce's delivery is recorded
    /// for that signer, not for the one the data plane's telemetry names,
    /// and a data plane that names another is reported. A prefix not listed
    /// is taken at its telemetry's word.
    std::map<std::string, std::string> challenge_signers;
    uint32_t nonce_interval_s = 10;
    uint32_t nonce_ttl_s = 0; ///< 0: three intervals
    /// The TPM vendors' CAs and their CRLs (PEM files, both or neither): the
    /// EK certificates of the enrolled TPM signers are checked against them
    /// at start and every ek_check_interval_s, and a signer whose
    /// certificate a CRL lists is revoked (registrar::check_ek_revocations).
    std::string ek_ca;
    std::string ek_crl;
    uint32_t ek_check_interval_s = 3600;
};

struct config {
    std::optional<server_settings> server;
    std::optional<verifier_settings> verifier;
    std::optional<node::settings> node;
    std::optional<node_attestation_settings> node_attestation;
    std::vector<ke::group_policy> groups;
    std::vector<ke::client_rule> clients;
    std::optional<ke::unicast_policy> unicast;
    admin_settings admin;
};

/// Parses TOML text; `origin` names it in messages. Relative file names are
/// taken relative to `base_dir` (the config file's directory).
result<config> parse_config(std::string_view text, std::string_view origin, const std::string& base_dir = "");

/// Reads and parses a file.
result<config> load_config(const std::string& path);

} // namespace ptpsec::controld
