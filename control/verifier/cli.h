#pragma once

// The Verifier's and the Registrar's command line, for ptpsecctl:
//
//   evidence verify LOG... [--registrar DB] [--audit sqlite:PATH|postgresql:CONNINFO] [--nonce HEX] [--json]
//   evidence query events --signer X --from T1 --to T2 [--audit SPEC] [--json]
//   evidence query seen --gm PORTIDENTITY --seq N [--type sync] [--observer Z] [--audit SPEC] [--json]
//   evidence query correlate [--bound-ns N] [--audit SPEC] [--json]
//   registrar enrol --db DB --signer-id X (--tpm TCTI [--key-handle H] [--pcrs 0,1,2] --expected-pcrs FILE
//                                          [--ek auto|L-1|L-2|H-1|H-2|H-3|H-4|H-6|H-7] [--ek-ca FILE [--ek-crl FILE]]
//                                        | --pkcs11 MODULE --token-label L --key-label K --pin-file F
//                                          --counter-file F
//                                        | --software KEYFILE --allow-software)
//   registrar revoke --db DB SIGNER_ID --reason TEXT
//   registrar check-ek --db DB --ek-ca FILE --ek-crl FILE [--json]
//   registrar list --db DB [--json]
//
// Exit codes as ptpsecctl's: 0 ok; 1 verification failed, an enrolment or
// revocation refused, `query seen` found nothing, `query correlate` flagged
// an observer, `check-ek` revoked a signer or could not check one; 2 a
// usage error or something that could not be opened or read.

#include <CLI/CLI.hpp>

#include <memory>
#include <optional>

namespace ptpsec::verifier {

class cli_commands {
public:
    /// Adds the `evidence` and `registrar` subcommands to `app`. Keep the
    /// object alive until run(): the options are bound to it.
    explicit cli_commands(CLI::App& app);
    ~cli_commands();
    cli_commands(const cli_commands&) = delete;
    cli_commands& operator=(const cli_commands&) = delete;
    cli_commands(cli_commands&&) = delete;
    cli_commands& operator=(cli_commands&&) = delete;

    /// After app.parse(): runs the subcommand that was parsed and returns
    /// its exit code; nullopt when none of these was on the command line.
    std::optional<int> run();

    struct state;

private:
    std::unique_ptr<state> _s;
};

} // namespace ptpsec::verifier
