// ptpsec-controld as a program (PTPSEC_CONTROLD, set by meson test): a real
// NTS-KE server on loopback with certificates this test makes, asked for
// group keys over TLS 1.3 by tls::client with the codec's PTP Key Request.
// Admitted clients get the group's key; others get Not Authorized; a
// restart of the server hands out the same key; SIGHUP reloads its
// certificates. Its admin socket (control/controld/admin.h) is read raw and
// through ptpsecctl (PTPSECCTL); the admin server's limits are tested in
// process.

#include "../hsm/direct_tpm.h"
#include "../hsm/swtpm.h"
#include "../process.h"
#include "test_pki.h"

#include <control/controld/admin.h>
#include <control/controld/admin_request.h>
#include <control/ke/ticket_crypto.h>
#include <control/nts/message.h>
#include <control/tls/client.h>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <openssl/sha.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <regex>
#include <thread>

namespace ptpsec {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::ordered_json;
namespace admin = ::ptpsec::controld::admin;

/// A client end of a Unix stream socket, closed by its destructor.
class unix_client {
public:
    explicit unix_client(const std::string& path) : _fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
        _connected = ::connect(_fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) == 0;
    }
    ~unix_client() { ::close(_fd); }
    unix_client(const unix_client&) = delete;
    unix_client& operator=(const unix_client&) = delete;
    unix_client(unix_client&&) = delete;
    unix_client& operator=(unix_client&&) = delete;

    bool connected() const noexcept { return _connected; }
    bool send(std::string_view octets) const {
        return ::send(_fd, octets.data(), octets.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(octets.size());
    }
    /// Says that the request is complete without a newline.
    void half_close() const { ::shutdown(_fd, SHUT_WR); }
    /// Everything up to the first newline, or until the server closes; at
    /// most `limit`.
    std::string read_line(std::chrono::milliseconds limit = 5s) const {
        const timeval tv{static_cast<time_t>(limit.count() / 1000),
                         static_cast<suseconds_t>(limit.count() % 1000) * 1000};
        ::setsockopt(_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        std::string out;
        std::array<char, 4096> buf{};
        while (out.find('\n') == std::string::npos) {
            const ssize_t n = ::recv(_fd, buf.data(), buf.size(), 0);
            if (n <= 0) {
                break;
            }
            out.append(buf.data(), static_cast<size_t>(n));
        }
        return out;
    }

private:
    int _fd;
    bool _connected = false;
};

/// One request on an admin socket, its reply parsed (null if it is not JSON).
json ask_admin(const std::string& path, std::string_view request) {
    const unix_client c(path);
    EXPECT_TRUE(c.connected()) << path;
    EXPECT_TRUE(c.send(request));
    return json::parse(c.read_line(), nullptr, false);
}

json ask_admin_command(const std::string& path, std::string_view command) {
    return ask_admin(path, fmt::format("{{\"command\":\"{}\"}}\n", command));
}

/// A socket file with nothing listening on it, as a daemon that was killed
/// leaves behind.
void make_stale_socket(const std::string& path) {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof(a.sun_path) - 1);
    ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(a)), 0) << path << ": " << std::strerror(errno);
    ::close(fd);
}

std::string hex_of(std::span<const uint8_t> bytes, bool upper) {
    std::string out;
    for (const uint8_t b : bytes) {
        out += upper ? fmt::format("{:02X}", b) : fmt::format("{:02x}", b);
    }
    return out;
}

mode_t mode_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
    return st.st_mode;
}

class controld : public testing::Test {
protected:
    void SetUp() override {
        _exe = test::program_from_env("PTPSEC_CONTROLD");
        _ca = test::make_identity({.cn = "plant CA", .ca = true});
        const auto server =
            test::make_identity({.cn = "ke", .issuer = &_ca, .san = "DNS:localhost,IP:127.0.0.1", .eku = "serverAuth"});
        const auto node =
            test::make_identity({.cn = "node1", .issuer = &_ca, .san = "DNS:node1.plant.example", .eku = "clientAuth"});
        const auto stranger = test::make_identity({.cn = "stranger", .issuer = &_ca, .eku = "clientAuth"});
        const auto grantor = test::make_identity({.cn = "grantor1", .issuer = &_ca, .eku = "clientAuth"});
        const auto impostor = test::make_identity({.cn = "impostor", .eku = "clientAuth"}); // self-signed
        test::write_pem_file(_dir.file("ca.pem"), test::cert_pem(_ca));
        for (const auto& [name, id] :
             {std::pair{"server", &server}, std::pair{"node1", &node}, std::pair{"stranger", &stranger},
              std::pair{"grantor1", &grantor}, std::pair{"impostor", &impostor}}) {
            test::write_pem_file(_dir.file(fmt::format("{}.pem", name)), test::cert_pem(*id));
            test::write_pem_file(_dir.file(fmt::format("{}.key", name)), test::key_pem(*id));
        }
        test::write_file(_dir.file("controld.toml"), R"([admin]
socket = "controld.sock"

[server]
listen = ["127.0.0.1"]
port = 0
certificate = "server.pem"
private-key = "server.key"
ca = "ca.pem"
state = "controld.db"
idle-timeout-ms = 2000

[[group]]
name = "plant-a"
domain = 0
sdo-id = 0x000
algorithm = "aes-cmac-128"
lifetime = 3600
update-period = 300
grace-period = 3

[[client]]
san = "DNS:node1.plant.example"
groups = ["plant-a"]
)");
    }

    /// Starts the server and reads the port it bound from its banner.
    std::unique_ptr<test::background_program> start(uint16_t& port) {
        auto p = std::make_unique<test::background_program>(
            _dir, _exe, std::vector<std::string>{"--config", _dir.file("controld.toml")});
        const std::regex banner("NTS-KE server on port ([0-9]+)");
        const auto deadline = std::chrono::steady_clock::now() + 20s;
        while (std::chrono::steady_clock::now() < deadline) {
            std::smatch m;
            const std::string out = p->out();
            if (std::regex_search(out, m, banner)) {
                port = static_cast<uint16_t>(std::stoi(m[1]));
                return p;
            }
            if (!p->running()) {
                ADD_FAILURE() << "ptpsec-controld ended:\n" << p->err() << out;
                return p;
            }
            std::this_thread::sleep_for(20ms);
        }
        ADD_FAILURE() << "no banner within 20 s:\n" << p->out() << p->err();
        return p;
    }

    result<tls::client> connect(uint16_t port, const std::string& who, tls::protocol alpn = tls::protocol::ntske) {
        tls::client_config cc;
        cc.alpn = alpn;
        cc.ca_file = _dir.file("ca.pem");
        cc.cert_file = _dir.file(who + ".pem");
        cc.key_file = _dir.file(who + ".key");
        cc.server_name = "localhost";
        return tls::client::connect("127.0.0.1", port, cc);
    }

    static nts::key_response ask(tls::client& c, uint8_t domain) {
        nts::key_request r;
        r.association = nts::group_number{domain, 0, 0};
        auto bytes = c.request(nts::build(r));
        EXPECT_TRUE(bytes) << bytes.message();
        if (!bytes) {
            return {};
        }
        auto resp = nts::parse_key_response(*bytes);
        EXPECT_TRUE(resp) << resp.err().message;
        return resp ? std::move(resp).value() : nts::key_response{};
    }

    /// The daemon `p`'s status from its admin socket `sock`, asked every 50 ms
    /// for up to 30 s until `done` holds for it; the last one read (null if
    /// none), with a failure when `p` ends before.
    static json await_status(test::background_program& p, const std::string& sock,
                             const std::function<bool(const json&)>& done) {
        json status;
        for (auto deadline = std::chrono::steady_clock::now() + 30s; std::chrono::steady_clock::now() < deadline;) {
            if (std::filesystem::exists(sock)) {
                status = ask_admin_command(sock, "status");
                if (status.is_object() && done(status)) {
                    break;
                }
            }
            if (!p.running()) {
                ADD_FAILURE() << "ptpsec-controld ended:\n" << p.err();
                break;
            }
            std::this_thread::sleep_for(50ms);
        }
        return status;
    }

    /// ptpsecctl (PTPSECCTL, set by meson test) with `args`.
    test::run_result ctl(const std::vector<std::string>& args) const {
        return test::run_program(_dir, test::program_from_env("PTPSECCTL"), args, 30s);
    }

    test::temp_dir _dir;
    std::string _exe;
    test::identity _ca;
    std::string _socket = _dir.file("controld.sock");
};

TEST_F(controld, serves_group_keys_to_admitted_clients_and_keeps_them_across_a_restart) {
    uint16_t port = 0;
    nts::security_association first;
    {
        auto server = start(port);
        ASSERT_NE(port, 0);
        auto node = connect(port, "node1");
        ASSERT_TRUE(node) << node.message();
        const auto resp = ask(*node, 0);
        ASSERT_FALSE(resp.is_error());
        const auto& grant = std::get<nts::key_grant>(resp.outcome);
        first = grant.current.sa;
        EXPECT_EQ(first.spp, 1);
        EXPECT_EQ(first.integrity_algorithm, nts::mac_algorithm::aes_cmac);
        EXPECT_EQ(first.key.size(), 16U);
        EXPECT_LE(grant.current.validity.lifetime, 3600U);
        EXPECT_GE(grant.current.validity.lifetime, 3590U);
        // A second request on the same connection: the same key.
        const auto again = ask(*node, 0);
        ASSERT_FALSE(again.is_error());
        EXPECT_EQ(std::get<nts::key_grant>(again.outcome).current.sa, first);

        // Not in any rule; a group that is not configured.
        auto stranger = connect(port, "stranger");
        ASSERT_TRUE(stranger) << stranger.message();
        const auto refused = ask(*stranger, 0);
        ASSERT_TRUE(refused.is_error());
        EXPECT_EQ(std::get<nts::error_code>(refused.outcome), nts::error_code::not_authorized);
        // After an Error record the server closes the session (close_notify).
        const auto after = stranger->receive();
        ASSERT_FALSE(after);
        EXPECT_NE(after.message().find("closed the session"), std::string::npos) << after.message();
        auto other = connect(port, "node1");
        ASSERT_TRUE(other) << other.message();
        const auto unknown = ask(*other, 9);
        ASSERT_TRUE(unknown.is_error());
        EXPECT_EQ(std::get<nts::error_code>(unknown.outcome), nts::error_code::not_authorized);
        EXPECT_FALSE(other->receive());

        // A certificate of no configured CA: refused in the handshake, and
        // the log says who and why.
        if (auto impostor = connect(port, "impostor"); impostor) {
            EXPECT_FALSE(impostor->request(nts::build(nts::key_request{})));
        }
        const std::regex refusal(
            R"(TLS handshake with 127\.0\.0\.1 port [0-9]+ failed \(client_cert_rejected\): certificate verify )"
            R"(failed: [^;]+; certificate subject "CN=impostor,[^"]*" \(unverified\))");
        for (auto deadline = std::chrono::steady_clock::now() + 10s;
             !std::regex_search(server->err(), refusal) && std::chrono::steady_clock::now() < deadline;) {
            std::this_thread::sleep_for(20ms);
        }
        EXPECT_TRUE(std::regex_search(server->err(), refusal)) << server->err();
        // ... and so does the status.
        const json status = ask_admin_command(_socket, "status");
        EXPECT_NE(status["server"].value("last_handshake_failure", "").find(" failed (client_cert_rejected): "),
                  std::string::npos)
            << status.dump();
        const auto text = ctl({"status", "--controld-socket", _socket});
        EXPECT_TRUE(std::regex_search(
            text.out,
            std::regex(R"(\nlast failed TLS handshake: 127\.0\.0\.1 port [0-9]+ failed \(client_cert_rejected\))")))
            << text.out << text.err;

        // SIGHUP: the certificates are read again.
        ::kill(server->pid(), SIGHUP);
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (server->out().find("certificates reloaded") == std::string::npos &&
               std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(20ms);
        }
        EXPECT_NE(server->out().find("certificates reloaded"), std::string::npos) << server->out();
        EXPECT_TRUE(node->close()) << "a session with grants only stays open";
        ASSERT_EQ(server->stop(), 0) << server->err();
        const std::string log = server->out();
        EXPECT_NE(log.find("key requests 4 granted 2"), std::string::npos) << log;
        EXPECT_NE(log.find("not authorized 2"), std::string::npos) << log;
    }
    // The same state file: the same key for the same epoch.
    auto server = start(port);
    ASSERT_NE(port, 0);
    auto node = connect(port, "node1");
    ASSERT_TRUE(node) << node.message();
    const auto resp = ask(*node, 0);
    ASSERT_FALSE(resp.is_error());
    EXPECT_EQ(std::get<nts::key_grant>(resp.outcome).current.sa, first);
    EXPECT_TRUE(node->close());
    // SIGTERM stops it as cleanly as SIGINT: counters, exit 0.
    ASSERT_EQ(server->stop(SIGTERM), 0) << server->err();
    EXPECT_NE(server->out().find("key requests 1 granted 1"), std::string::npos) << server->out();
}

// Ticket-based mode over the wire: a grantor registers (ntstsr/1), a
// requester gets a unicast key and a ticket that the grantor's ticket key
// opens; heartbeats keep the connection; the registration survives a
// restart; a revoke ends it.
TEST_F(controld, ticket_mode_registers_grantors_and_hands_out_tickets_they_open) {
    test::write_file(_dir.file("controld.toml"), R"([admin]
socket = "controld.sock"

[server]
listen = ["127.0.0.1"]
port = 0
certificate = "server.pem"
private-key = "server.key"
ca = "ca.pem"
state = "controld.db"

[unicast]
heartbeat-timeout = 60
aead-algorithms = ["aes-siv-cmac-256"]

[[client]]
subject = "CN=grantor1,O=ptpsec test"
grantor = true

[[client]]
san = "DNS:node1.plant.example"
unicast = true
)");
    const nts::port_identity gpid{{0x00, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 1}, 1};
    const nts::port_identity rpid{{0x00, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 2}, 1};
    nts::registration_request reg;
    reg.time_server.addresses = {gpid, nts::ipv4_address{{10, 0, 0, 1}}};
    reg.aead_algorithms = {nts::aead_algorithm::aes_siv_cmac_512, nts::aead_algorithm::aes_siv_cmac_256};
    reg.supported_mac_algorithms = {nts::mac_algorithm::hmac_sha256_128, nts::mac_algorithm::aes_gmac_256};
    nts::key_request want;
    want.association = nts::ipv4_address{{10, 0, 0, 1}};
    want.source_port_identity = rpid;
    want.supported_mac_algorithms = {{nts::mac_algorithm::aes_gmac_256, nts::mac_algorithm::hmac_sha256_128}};

    auto unicast_key = [&](uint16_t port) {
        auto node = connect(port, "node1");
        EXPECT_TRUE(node) << node.message();
        if (!node) {
            return nts::key_response{};
        }
        auto bytes = node->request(nts::build(want));
        EXPECT_TRUE(bytes) << bytes.message();
        auto resp =
            bytes ? nts::parse_key_response(*bytes) : nts::parse_result<nts::key_response>(nts::bad_request(""));
        EXPECT_TRUE(resp) << resp.err().message;
        return resp ? std::move(resp).value() : nts::key_response{};
    };

    uint16_t port = 0;
    nts::registration_parameters ticket_key;
    {
        auto server = start(port);
        ASSERT_NE(port, 0);
        EXPECT_NE(server->out().find("ticket-based mode on"), std::string::npos) << server->out();
        auto g = connect(port, "grantor1", tls::protocol::ntstsr);
        ASSERT_TRUE(g) << g.message();
        auto bytes = g->request(nts::build(reg));
        ASSERT_TRUE(bytes) << bytes.message();
        auto resp = nts::parse_registration_response(*bytes);
        ASSERT_TRUE(resp) << resp.err().message;
        ASSERT_FALSE(resp->is_error()) << static_cast<int>(std::get<nts::error_code>(resp->outcome)) << server->out();
        const auto& grant = std::get<nts::registration_grant>(resp->outcome);
        ticket_key = grant.current;
        EXPECT_EQ(ticket_key.aead, nts::aead_algorithm::aes_siv_cmac_256) << "the only one the server offers";
        EXPECT_EQ(ticket_key.ticket_key.size(), 32U);
        EXPECT_EQ(grant.heartbeat_timeout, 60);
        // A heartbeat has no answer, and the connection stays: a renewal on it
        // gets the same ticket key.
        ASSERT_TRUE(g->send(nts::build(nts::heartbeat{})));
        bytes = g->request(nts::build(reg));
        ASSERT_TRUE(bytes) << bytes.message();
        resp = nts::parse_registration_response(*bytes);
        ASSERT_TRUE(resp && !resp->is_error());
        EXPECT_EQ(std::get<nts::registration_grant>(resp->outcome).current.ticket_key_id, ticket_key.ticket_key_id);

        const auto key = unicast_key(port);
        ASSERT_FALSE(key.is_error());
        const auto& current = std::get<nts::key_grant>(key.outcome).current;
        EXPECT_EQ(current.sa.integrity_algorithm, nts::mac_algorithm::aes_gmac_256);
        ASSERT_TRUE(current.unicast);
        EXPECT_EQ(current.unicast->ticket.source_port_identity, rpid);
        EXPECT_EQ(current.unicast->time_server, reg.time_server);
        auto inside = ke::open_ticket(current.unicast->ticket, ticket_key.aead, ticket_key.ticket_key);
        ASSERT_TRUE(inside) << inside.message();
        EXPECT_EQ(*inside, current.sa);

        // The stranger may not register.
        auto s = connect(port, "stranger", tls::protocol::ntstsr);
        ASSERT_TRUE(s) << s.message();
        bytes = s->request(nts::build(reg));
        ASSERT_TRUE(bytes) << bytes.message();
        resp = nts::parse_registration_response(*bytes);
        ASSERT_TRUE(resp && resp->is_error());
        EXPECT_EQ(std::get<nts::error_code>(resp->outcome), nts::error_code::not_authorized);

        const auto listed = ctl({"grantors", "--controld-socket", _socket, "--json"});
        ASSERT_EQ(listed.exit_code, 0) << listed.err;
        const json j = json::parse(listed.out, nullptr, false);
        ASSERT_TRUE(j.is_object()) << listed.out;
        ASSERT_EQ(j["grantors"].size(), 1U) << listed.out;
        EXPECT_EQ(j["grantors"][0]["port_identity"], "001b21fffe000001-1");
        EXPECT_EQ(j["grantors"][0]["owner"], "CN=grantor1,O=ptpsec test");
        EXPECT_EQ(j["grantors"][0]["addresses"][1], "10.0.0.1");
        EXPECT_EQ(j["grantors"][0]["ticket_keys"][0]["ticket_key_id"], ticket_key.ticket_key_id);
        EXPECT_EQ(listed.out.find(hex_of(ticket_key.ticket_key, false)), std::string::npos) << "never a key";
        const auto text = ctl({"grantors", "--controld-socket", _socket});
        ASSERT_EQ(text.exit_code, 0) << text.err;
        EXPECT_NE(text.out.find("001b21fffe000001-1"), std::string::npos) << text.out;
        EXPECT_NE(text.out.find("heartbeat timeout 60 s"), std::string::npos) << text.out;
    }
    // After a restart the registration is still there: tickets are sealed
    // under the same ticket key.
    auto server = start(port);
    ASSERT_NE(port, 0);
    const auto key = unicast_key(port);
    ASSERT_FALSE(key.is_error());
    const auto& current = std::get<nts::key_grant>(key.outcome).current;
    ASSERT_TRUE(current.unicast);
    EXPECT_EQ(current.unicast->ticket.ticket_key_id, ticket_key.ticket_key_id);
    ASSERT_TRUE(ke::open_ticket(current.unicast->ticket, ticket_key.aead, ticket_key.ticket_key));

    // The operator revokes it (`ptpsecctl revoke`): requesters are told at
    // once. A name no grantor has is an error that says where they are
    // listed. The grantor registers again afterwards.
    const auto unknown = ctl({"revoke", "001b21fffe000009-1", "--controld-socket", _socket});
    EXPECT_EQ(unknown.exit_code, 1) << "the daemon refused";
    EXPECT_NE(unknown.err.find("no grantor 001b21fffe000009-1 is registered (`ptpsecctl grantors` lists them)"),
              std::string::npos)
        << unknown.err;
    const auto revoked = ctl({"revoke", "001b21fffe000001-1", "--controld-socket", _socket});
    ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
    EXPECT_NE(revoked.out.find("grantor 001b21fffe000001-1 (registered by CN=grantor1,O=ptpsec test) is revoked"),
              std::string::npos)
        << revoked.out;
    const auto refused = unicast_key(port);
    ASSERT_TRUE(refused.is_error());
    EXPECT_EQ(std::get<nts::error_code>(refused.outcome), nts::error_code::grantor_not_registered);
    const auto listed_after = ctl({"grantors", "--controld-socket", _socket, "--json"});
    ASSERT_EQ(listed_after.exit_code, 0) << listed_after.err;
    EXPECT_EQ(json::parse(listed_after.out, nullptr, false).value("grantors", json::array()), json::array())
        << listed_after.out;
    {
        auto again = connect(port, "grantor1", tls::protocol::ntstsr);
        ASSERT_TRUE(again) << again.message();
        auto bytes = again->request(nts::build(reg));
        ASSERT_TRUE(bytes) << bytes.message();
        const auto resp = nts::parse_registration_response(*bytes);
        ASSERT_TRUE(resp && !resp->is_error());
    }
    ASSERT_FALSE(unicast_key(port).is_error()) << "registered again";

    // Revoke: no answer, the server ends the session; requesters are told.
    auto g = connect(port, "grantor1", tls::protocol::ntstsr);
    ASSERT_TRUE(g) << g.message();
    ASSERT_TRUE(g->send(nts::build(nts::registration_revoke{gpid})));
    auto after = g->receive();
    EXPECT_FALSE(after) << "the server closes after a revoke";
    const auto gone = unicast_key(port);
    ASSERT_TRUE(gone.is_error());
    EXPECT_EQ(std::get<nts::error_code>(gone.outcome), nts::error_code::grantor_not_registered);
    const json status = ask_admin_command(_socket, "status");
    EXPECT_EQ(status["server"]["ke"]["revokes"], 1) << "Registration Revokes, not the operator's: " << status.dump();
}

TEST_F(controld, a_bad_configuration_is_refused_with_its_line) {
    test::write_file(_dir.file("bad.toml"), "[[group]]\nname = \"g\"\nalgorithm = \"md5\"\n");
    auto r = test::run_program(_dir, _exe, {"--config", _dir.file("bad.toml")});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("bad.toml:3: group g: algorithm \"md5\": use one of"), std::string::npos) << r.err;
    r = test::run_program(_dir, _exe, {"--config", _dir.file("controld.toml"), "--check"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("1 group(s), 1 client rule(s), server role on"), std::string::npos) << r.out;
    // A certificate file that is not there: the server does not start, and says which.
    std::filesystem::remove(_dir.file("server.pem"));
    r = test::run_program(_dir, _exe, {"--config", _dir.file("controld.toml")}, 20s);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("server.pem"), std::string::npos) << r.err;
}

TEST_F(controld, version_needs_no_config) {
    const auto r = test::run_program(_dir, _exe, {"--version"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(r.out.starts_with("ptpsec-controld 0.")) << r.out;
}

TEST_F(controld, check_finds_what_the_start_would_refuse) {
    const std::string conf = test::read_file(_dir.file("controld.toml"));
    auto check = [&](const std::string& text) {
        test::write_file(_dir.file("c.toml"), text);
        return test::run_program(_dir, _exe, {"--config", _dir.file("c.toml"), "--check"}, 20s);
    };
    auto with = [&](const std::string& from, const std::string& to) {
        std::string t = conf;
        const size_t at = t.find(from);
        EXPECT_NE(at, std::string::npos) << from;
        return at == std::string::npos ? t : t.replace(at, from.size(), to);
    };
    struct bad {
        std::string text;
        std::string says;
    };
    const std::vector<bad> cases = {
        {with("certificate = \"server.pem\"", "certificate = \"gone.pem\""), "gone.pem"},
        {with("ca = \"ca.pem\"", "ca = \"server.key\""), "server.key"},
        {with("listen = [\"127.0.0.1\"]", "listen = [\"1.2.3.999\"]"),
         "[server]: listen address '1.2.3.999' is not a numeric IPv4 or IPv6 address"},
        {with("ca = \"ca.pem\"", "ca = \"ca.pem\"\ncrl = \"gone.crl\""), "CRL file " + _dir.file("gone.crl")},
        {conf + "\n[node]\nserver = \"127.0.0.1\"\ncertificate = \"node1.pem\"\nprivate-key = \"node1.key\"\n"
                "ca = \"gone-ca.pem\"\ngroups = [\"plant-a\"]\n",
         "[node]: "},
        {"[admin]\nenabled = false\n", "neither [server], [node] nor [verifier]: nothing to run"},
        {"[verifier]\nregistrar = \"gone.db\"\naudit = \"sqlite:audit.db\"\nlogs = [\"evidence\"]\n",
         "verifier.registrar " + _dir.file("gone.db") +
             ": no such file (enrol the signers with ptpsecctl registrar "
             "enrol first)"},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.says);
        const auto r = check(c.text);
        EXPECT_EQ(r.exit_code, 2) << r.out;
        EXPECT_NE(r.err.find(_dir.file("c.toml") + ": "), std::string::npos) << r.err;
        EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    }
    EXPECT_NE(check(cases[4].text).err.find("gone-ca.pem"), std::string::npos);
    // Started, not checked: refused the same way, and no empty Registrar made.
    test::write_file(_dir.file("c.toml"), cases.back().text);
    const auto r = test::run_program(_dir, _exe, {"--config", _dir.file("c.toml")}, 20s);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find("verifier.registrar"), std::string::npos) << r.err;
    EXPECT_FALSE(std::filesystem::exists(_dir.file("gone.db")));
    // The file as it was still passes.
    EXPECT_EQ(check(conf).exit_code, 0);
}

TEST_F(controld, status_and_groups_show_what_clients_got_and_never_a_key) {
    uint16_t port = 0;
    auto server = start(port);
    ASSERT_NE(port, 0);
    EXPECT_NE(server->out().find(fmt::format("admin socket {}", _socket)), std::string::npos) << server->out();
    // One key granted, one request refused.
    auto node = connect(port, "node1");
    ASSERT_TRUE(node) << node.message();
    const auto resp = ask(*node, 0);
    ASSERT_FALSE(resp.is_error());
    const nts::security_association got = std::get<nts::key_grant>(resp.outcome).current.sa;
    auto stranger = connect(port, "stranger");
    ASSERT_TRUE(stranger) << stranger.message();
    ASSERT_TRUE(ask(*stranger, 0).is_error());

    const json status = ask_admin_command(_socket, "status");
    ASSERT_TRUE(status.is_object()) << status;
    EXPECT_EQ(status.at("pid"), server->pid());
    EXPECT_EQ(status.at("roles"), (json{{"server", true}, {"node", false}, {"verifier", false}}));
    EXPECT_FALSE(status.contains("node"));
    EXPECT_EQ(status.at("config"), _dir.file("controld.toml"));
    const json& srv = status.at("server");
    EXPECT_EQ(srv.at("port"), port);
    EXPECT_EQ(srv.at("ke"), json::parse(R"({"requests": 2, "granted": 1, "granted_with_next": 0,
        "granted_to_transparent_clocks": 0, "unicast_granted": 0, "tsr_requests": 0, "registrations": 0, "revokes": 0, "heartbeats": 0,
        "heartbeats_discarded": 0, "attestations_verified": 0, "attestations_failed": 0, "refused_unattested": 0,
        "refused": {"unrecognized_critical_record": 0, "bad_request": 0, "internal_server_error": 0, "not_authorized": 1,
         "grantor_not_registered": 0}})"));
    const json& tls = srv.at("tls");
    EXPECT_EQ(tls.size(), 30U) << "every field of tls::server_stats: " << tls;
    EXPECT_EQ(tls.at("handshakes_ok"), 2);
    EXPECT_EQ(tls.at("requests"), 2);
    EXPECT_EQ(status.at("admin").at("socket"), _socket);

    const json groups = ask_admin_command(_socket, "groups");
    ASSERT_TRUE(groups.is_object()) << groups;
    ASSERT_EQ(groups.at("groups").size(), 1U) << groups;
    const json& g = groups.at("groups").at(0);
    EXPECT_EQ(g.at("name"), "plant-a");
    EXPECT_EQ(g.at("spp"), got.spp);
    EXPECT_EQ(g.at("algorithm"), "aes-cmac-128");
    EXPECT_EQ(g.at("lifetime_s"), 3600);
    EXPECT_EQ(g.at("update_period_s"), 300);
    EXPECT_EQ(g.at("grace_period_s"), 3);
    EXPECT_EQ(g.at("current").at("key_id"), got.key_id);
    EXPECT_LE(g.at("current").at("remaining_lifetime_s").get<uint32_t>(), 3600U);
    EXPECT_GE(g.at("current").at("remaining_lifetime_s").get<uint32_t>(), 3590U);
    EXPECT_TRUE(g.at("next").is_null()) << "not in the update period yet";
    const std::string key_hex = hex_of(got.key, false);
    const std::string key_hex_upper = hex_of(got.key, true);
    ASSERT_EQ(key_hex.size(), 32U);
    EXPECT_EQ(groups.dump().find(key_hex), std::string::npos);
    EXPECT_EQ(groups.dump().find(key_hex_upper), std::string::npos);
    EXPECT_EQ(status.dump().find(key_hex), std::string::npos);
    // Asking made no key: the client that asks again gets the same.
    EXPECT_EQ(std::get<nts::key_grant>(ask(*node, 0).outcome).current.sa, got);

    // The same through ptpsecctl, as a table and as the daemon's JSON.
    auto r = ctl({"status", "--controld-socket", _socket});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find(fmt::format("ptpsec-controld 0.1.0, pid {}, up ", server->pid())), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(fmt::format("roles: server on (NTS-KE port {}, 1 group(s), state ", port)), std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("key requests 3: granted 2 (with next 0, to transparent clocks 0) | refused: unrecognized "
                         "critical record 0, bad "
                         "request 0, internal server error 0, not authorized 1, grantor not registered 0"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("TLS: accepted 2, rate limited 0, "), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("handshakes ok 2, resumed 0, handshakes failed 0"), std::string::npos) << r.out;
    r = ctl({"status", "--controld-socket", _socket, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const json via_ctl = json::parse(r.out, nullptr, false);
    ASSERT_TRUE(via_ctl.is_object()) << r.out;
    EXPECT_EQ(via_ctl.at("server").at("ke").at("granted"), 2);
    EXPECT_EQ(via_ctl.at("server").at("ke").at("refused").at("not_authorized"), 1);

    r = ctl({"groups", "--controld-socket", _socket});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::regex row(fmt::format(
        R"((^|\n)plant-a +{} +0 +0x000 +0 +aes-cmac-128 +3600 s +300 s +3 s +{} +[0-9]+ s +-\n)", got.spp, got.key_id));
    EXPECT_TRUE(std::regex_search(r.out, row)) << r.out;
    EXPECT_NE(r.out.find("GROUP    SPP  DOMAIN"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find(key_hex), std::string::npos);
    EXPECT_EQ(r.out.find(key_hex_upper), std::string::npos);
    r = ctl({"groups", "--controld-socket", _socket, "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const json groups_via_ctl = json::parse(r.out, nullptr, false);
    ASSERT_TRUE(groups_via_ctl.is_object()) << r.out;
    EXPECT_EQ(groups_via_ctl.at("groups").at(0).at("current").at("key_id"), got.key_id);
    EXPECT_EQ(r.out.find(key_hex), std::string::npos);

    // Commands with wrong arguments, or none this daemon can carry out, are
    // answered with what to do; nothing changes.
    const std::vector<std::pair<std::string, std::string>> refused = {
        {R"({"command":"rotate","in_s":0})", "rotate: \"in_s\" is whole seconds from 1 to 33523200"},
        {R"({"command":"rotate","in_s":-5})", "rotate: \"in_s\" is whole seconds from 1 to 33523200"},
        {R"({"command":"rotate","group":7})", "rotate: \"group\" is a group's name (`ptpsecctl groups` lists them)"},
        {R"({"command":"rotate","group":"plant-z"})", "no group plant-z here: `ptpsecctl groups` lists"},
        {R"({"command":"rotate","group":""})", "rotate: \"group\" is empty; name a group"},
        {R"({"command":"revoke","grantor":"001b21fffe000001-1"})",
         "ticket-based mode is off on this server: there is no grantor to revoke"},
        {R"({"command":"frobnicate"})", "unknown command \"frobnicate\": ptpsec-controld answers status, groups"},
    };
    for (const auto& [request, says] : refused) {
        const json reply = ask_admin(_socket, request + "\n");
        ASSERT_TRUE(reply.is_object()) << request;
        EXPECT_NE(reply.value("error", "").find(says), std::string::npos) << request << " -> " << reply.dump();
    }
    EXPECT_EQ(ask_admin_command(_socket, "groups").at("groups").at(0).at("current").at("key_id"), got.key_id)
        << "no rotation happened";

    EXPECT_TRUE(node->close());
    EXPECT_TRUE(stranger->close());
    ASSERT_EQ(server->stop(), 0) << server->err();
    EXPECT_FALSE(std::filesystem::exists(_socket)) << "the socket file outlived the daemon";
    r = ctl({"status", "--controld-socket", _socket});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_NE(r.err.find(fmt::format("no ptpsec-controld answers on {}", _socket)), std::string::npos) << r.err;
}

TEST_F(controld, the_admin_socket_is_private_and_a_second_daemon_on_it_is_refused) {
    uint16_t port = 0;
    auto first = start(port);
    ASSERT_NE(port, 0);
    EXPECT_TRUE(S_ISSOCK(mode_of(_socket)));
    EXPECT_EQ(mode_of(_socket) & 07777, 0600U);
    const auto second = test::run_program(_dir, _exe, {"--config", _dir.file("controld.toml")}, 20s);
    EXPECT_EQ(second.exit_code, 2);
    EXPECT_NE(second.err.find(fmt::format("admin socket {}: another ptpsec-controld answers there; stop it first, or "
                                          "give this one its own [admin] socket",
                                          _socket)),
              std::string::npos)
        << second.err;
    EXPECT_EQ(second.out.find("NTS-KE server on port"), std::string::npos) << "refused before serving";
    // The first keeps its socket and answers on it.
    const json status = ask_admin_command(_socket, "status");
    ASSERT_TRUE(status.is_object());
    EXPECT_EQ(status.at("pid"), first->pid());
    EXPECT_EQ(status.at("admin").at("refused"), 0) << "the second daemon's check is not a refused request";
    EXPECT_EQ(first->stop(), 0) << first->err();
}

TEST_F(controld, a_stale_socket_file_is_replaced) {
    make_stale_socket(_socket);
    ASSERT_TRUE(S_ISSOCK(mode_of(_socket)));
    ASSERT_FALSE(unix_client(_socket).connected()) << "nothing listens on the stale file";
    uint16_t port = 0;
    auto server = start(port);
    ASSERT_NE(port, 0) << server->err();
    const json status = ask_admin_command(_socket, "status");
    ASSERT_TRUE(status.is_object());
    EXPECT_EQ(status.at("pid"), server->pid());
    EXPECT_EQ(server->stop(), 0) << server->err();
    EXPECT_FALSE(std::filesystem::exists(_socket));
}

TEST_F(controld, a_node_only_daemon_shows_its_node_and_has_no_groups_to_serve) {
    // A KE server that is not there: the node keeps failing, and says why.
    test::write_file(_dir.file("node.toml"), fmt::format(R"([admin]
socket = "{}"

[node]
server = "127.0.0.1"
port = 1
certificate = "node1.pem"
private-key = "node1.key"
ca = "ca.pem"
groups = ["plant-b"]
dataplane-prefix = "ptpsec-controld-test-none"
retry-min-ms = 50
retry-max-ms = 100

[[group]]
name = "plant-b"
domain = 24
sdo-id = 0x100
subgroup = 7
)",
                                                         _dir.file("run/node.sock")));
    test::background_program n(_dir, _exe, {"--config", _dir.file("node.toml")});
    const std::string sock = _dir.file("run/node.sock");
    const json status = await_status(
        n, sock, [](const json& st) { return st.at("node").at("counters").at("fetch_failures").get<uint64_t>() > 0; });
    // The admin socket is served by a thread of its own, named for it.
    const auto threads = test::thread_names(n.pid());
    EXPECT_TRUE(std::ranges::any_of(threads, [](const auto& t) { return t.second == "ctld-admin"; }));
    // The directory was made for the socket, private.
    EXPECT_EQ(mode_of(_dir.file("run")) & 07777, 0700U);
    ASSERT_TRUE(status.is_object()) << n.out() << n.err();
    EXPECT_EQ(status.at("roles"), (json{{"server", false}, {"node", true}, {"verifier", false}}));
    EXPECT_FALSE(status.contains("server"));
    const json& node = status.at("node");
    EXPECT_EQ(node.at("server"), "127.0.0.1:1");
    EXPECT_EQ(node.at("dataplane_prefix"), "ptpsec-controld-test-none");
    ASSERT_EQ(node.at("groups").size(), 1U);
    const json& g = node.at("groups").at(0);
    EXPECT_EQ(g.at("name"), "plant-b");
    EXPECT_EQ(g.at("domain"), 24);
    EXPECT_EQ(g.at("sdo_id"), 0x100);
    EXPECT_EQ(g.at("subgroup"), 7);
    EXPECT_EQ(g.at("keys_held"), 0);
    EXPECT_TRUE(g.at("signing_key_id").is_null());
    EXPECT_FALSE(g.at("last_error").get<std::string>().empty()) << g;

    auto r = ctl({"status", "--controld-socket", sock});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.out.find("roles: server off, node on"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("node: keys from 127.0.0.1:1 into the data plane of file prefix ptpsec-controld-test-none"),
              std::string::npos)
        << r.out;
    EXPECT_TRUE(std::regex_search(r.out, std::regex(R"(\n  plant-b +24 +0x100 +7 +0 +- +- +[0-9]+ s +\S)"))) << r.out;
    // No [server]: no group keys to show, and it says where to look instead.
    r = ctl({"groups", "--controld-socket", sock});
    EXPECT_EQ(r.exit_code, 1) << r.out;
    EXPECT_NE(r.err.find("has no [server] role, so it hands out no group keys; `ptpsecctl status` shows"),
              std::string::npos)
        << r.err;
    EXPECT_EQ(n.stop(), 0) << n.err();
    EXPECT_FALSE(std::filesystem::exists(sock));
}

// seeds/004 over the wire: a rule with `attest` gives keys only to a node
// whose TPM quotes its enrolled platform state for the TLS session it asks
// in. The node quotes with swtpm ([node.attestation]); the server checks
// against the Registrar that `ptpsecctl registrar enrol` filled.
TEST_F(controld, a_node_gets_keys_only_while_its_tpm_quotes_the_enrolled_platform_state) {
    if (!test::swtpm::available()) {
        GTEST_FAIL() << "swtpm is not installed (make deps installs it)";
    }
    test::swtpm tpm;
    // A fresh TPM: PCRs 0 and 7 are zero, the state an operator writes down.
    test::write_file(_dir.file("pcrs.txt"), fmt::format("0 {}\n7 {}\n", std::string(64, '0'), std::string(64, '0')));
    const auto enrolled = ctl({"registrar", "enrol", "--db", _dir.file("registrar.db"), "--signer-id", "node1-tpm",
                               "--tpm", tpm.tcti(), "--expected-pcrs", _dir.file("pcrs.txt")});
    ASSERT_EQ(enrolled.exit_code, 0) << enrolled.out << enrolled.err;
    test::write_file(_dir.file("controld.toml"), R"([admin]
socket = "controld.sock"

[server]
listen = ["127.0.0.1"]
port = 0
certificate = "server.pem"
private-key = "server.key"
ca = "ca.pem"
state = "controld.db"
registrar = "registrar.db"

[[group]]
name = "plant-a"
domain = 0

[unicast]

[[client]]
san = "DNS:node1.plant.example"
groups = ["plant-a"]
attest = "node1-tpm"

[[client]]
subject = "CN=node1,O=ptpsec test"
grantor = true
attest = "node1-tpm"
)");
    uint16_t port = 0;
    auto server = start(port);
    ASSERT_NE(port, 0);

    // A node config, with or without [node.attestation].
    const auto write_node = [&](const std::string& name, bool attest) {
        test::write_file(_dir.file(name + ".toml"),
                         fmt::format(R"([admin]
socket = "{}.sock"

[node]
server = "127.0.0.1"
port = {}
server-name = "localhost"
certificate = "node1.pem"
private-key = "node1.key"
ca = "ca.pem"
groups = ["plant-a"]
dataplane-prefix = "ptpsec-controld-test-none"
retry-min-ms = 50
retry-max-ms = 100
{}
[[group]]
name = "plant-a"
domain = 0
)",
                                     name, port,
                                     attest ? fmt::format("\n[node.attestation]\nsigner-id = \"node1-tpm\"\ntcti = "
                                                          "\"{}\"\npcrs = [7, 0]\n",
                                                          tpm.tcti())
                                            : std::string()));
    };
    // Runs the node until its status satisfies `done`; returns that status.
    const auto run_node = [&](const std::string& name, const std::function<bool(const json&)>& done) {
        test::background_program n(_dir, _exe, {"--config", _dir.file(name + ".toml")});
        const std::string sock = _dir.file(name + ".sock");
        const json status = await_status(n, sock, [&](const json& st) { return done(st.at("node")); });
        EXPECT_EQ(n.stop(), 0) << n.err();
        return status.is_object() ? status.at("node") : json();
    };
    const auto counter = [](const json& node, const char* name) {
        return node.at("counters").at(name).get<uint64_t>();
    };

    // With its quote: the group's key.
    write_node("attested", true);
    const json got = run_node("attested", [&](const json& n) { return counter(n, "keys_received") > 0; });
    ASSERT_TRUE(got.is_object()) << server->err();
    EXPECT_GE(counter(got, "quotes"), 1U) << got;
    EXPECT_EQ(got.at("groups").at(0).at("keys_held"), 1) << got;

    // The same certificate without a quote: Not Authorized, and the server says why.
    write_node("plain", false);
    const json refused = run_node("plain", [&](const json& n) { return counter(n, "fetch_failures") > 0; });
    ASSERT_TRUE(refused.is_object());
    EXPECT_NE(refused.at("groups").at(0).at("last_error").get<std::string>().find("Not Authorized"), std::string::npos)
        << refused;
    EXPECT_EQ(counter(refused, "keys_received"), 0U);

    // The platform changes (PCR 7 extended, as a new boot loader would):
    // its quotes no longer match what was enrolled.
    {
        test::direct_tpm direct(tpm.tcti());
        direct.extend(7, std::vector<uint8_t>(32, 0x07));
    }
    const json changed = run_node("attested", [&](const json& n) { return counter(n, "fetch_failures") > 0; });
    ASSERT_TRUE(changed.is_object());
    EXPECT_GE(counter(changed, "quotes"), 1U);
    EXPECT_EQ(counter(changed, "keys_received"), 0U) << changed;

    // The change was intended (a new boot loader): the operator records the
    // new values with `ptpsecctl registrar update-profile`, which has the
    // TPM quote them first, and the node is admitted again.
    std::array<uint8_t, 64> extend_input{}; // PCR 7 was zero; extended by 32 octets of 0x07
    std::fill(extend_input.begin() + 32, extend_input.end(), uint8_t{0x07});
    std::array<uint8_t, SHA256_DIGEST_LENGTH> pcr7{};
    SHA256(extend_input.data(), extend_input.size(), pcr7.data());
    test::write_file(_dir.file("pcrs-new.txt"),
                     fmt::format("0 {}\n7 {:02x}\n", std::string(64, '0'), fmt::join(pcr7, "")));
    const auto updated =
        ctl({"registrar", "update-profile", "--db", _dir.file("registrar.db"), "--signer-id", "node1-tpm", "--tpm",
             tpm.tcti(), "--expected-pcrs", _dir.file("pcrs-new.txt"), "--reason", "boot loader 2.1"});
    ASSERT_EQ(updated.exit_code, 0) << updated.out << updated.err;
    EXPECT_NE(updated.out.find("signer \"node1-tpm\": PCR profile replaced by the values of"), std::string::npos)
        << updated.out;
    const json readmitted = run_node("attested", [&](const json& n) { return counter(n, "keys_received") > 0; });
    ASSERT_TRUE(readmitted.is_object()) << server->err();
    EXPECT_EQ(readmitted.at("groups").at(0).at("keys_held"), 1) << readmitted;
    const auto listed = ctl({"registrar", "list", "--db", _dir.file("registrar.db")});
    EXPECT_EQ(listed.exit_code, 0) << listed.err;
    EXPECT_TRUE(std::regex_search(listed.out, std::regex(R"(PCR profile: 0,7 \(updated 1 time\(s\), last \S+: boot )"
                                                         R"(loader 2\.1\))")))
        << listed.out;

    const json status = ask_admin_command(_socket, "status");
    ASSERT_TRUE(status.is_object());
    const json& ke = status.at("server").at("ke");
    EXPECT_GE(ke.at("attestations_verified").get<uint64_t>(), 1U) << ke;
    EXPECT_GE(ke.at("attestations_failed").get<uint64_t>(), 1U) << ke;
    EXPECT_GE(ke.at("refused_unattested").get<uint64_t>(), 2U) << ke;
    EXPECT_NE(status.at("server")
                  .at("last_attestation_refusal")
                  .get<std::string>()
                  .find("the quote's pcrDigest does not match the expected PCR values: the platform state differs"),
              std::string::npos)
        << status.at("server");
    const auto text = ctl({"status", "--controld-socket", _socket});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    EXPECT_TRUE(
        std::regex_search(text.out, std::regex(R"(\nplatform attestations \(registrar \S+registrar\.db\): verified )"
                                               R"([1-9][0-9]* failed [1-9][0-9]* \| keys withheld for want of )"
                                               R"(one [2-9][0-9]* \| last: CN=node1)")))
        << text.out;

    // The same certificate registering as a grantor (NTS-TSR) without a
    // quote: Not Authorized, and the server says why as for key requests.
    {
        auto g = connect(port, "node1", tls::protocol::ntstsr);
        ASSERT_TRUE(g) << g.message();
        nts::registration_request reg;
        reg.time_server.addresses = {nts::port_identity{{0x00, 0x1b, 0x21, 0xff, 0xfe, 0, 0, 1}, 1}};
        auto bytes = g->request(nts::build(reg));
        ASSERT_TRUE(bytes) << bytes.message();
        auto resp = nts::parse_registration_response(*bytes);
        ASSERT_TRUE(resp && resp->is_error());
        EXPECT_EQ(std::get<nts::error_code>(resp->outcome), nts::error_code::not_authorized);
    }
    ASSERT_EQ(server->stop(), 0) << server->err();
    const std::string err = server->err();
    EXPECT_NE(err.find("keys withheld from CN=node1,O=ptpsec test: client rule 2 admits it only with a Platform "
                       "Attestation of signer \"node1-tpm\"; its request carried no Platform Attestation"),
              std::string::npos)
        << err;
    EXPECT_NE(
        err.find(
            "keys withheld from CN=node1,O=ptpsec test: client rule 1 admits it only with a Platform Attestation of "
            "signer \"node1-tpm\"; its request carried no Platform Attestation"),
        std::string::npos)
        << err;
    EXPECT_NE(err.find("its Platform Attestation of signer \"node1-tpm\" failed: signer \"node1-tpm\": the quote's "
                       "pcrDigest does not match"),
              std::string::npos)
        << err;
    EXPECT_NE(server->out().find("platform attestations: verified "), std::string::npos) << server->out();
}

// The admin server in process: its limits, without a daemon.
class controld_admin : public testing::Test {
protected:
    std::unique_ptr<admin::server> serve(const std::string& path) {
        auto s = admin::server::open(path);
        EXPECT_TRUE(s) << s.message();
        if (!s) {
            return nullptr;
        }
        auto srv = std::move(s).value();
        srv->start([](const std::string& command, const nlohmann::json&) -> json {
            if (command == "throw") {
                throw std::runtime_error("handler failed");
            }
            return {{"echo", command}};
        });
        return srv;
    }

    test::temp_dir _dir;
};

// The request line and the arguments of rotate and revoke, read without a
// socket (control/controld/admin_request.h): each refusal says what to send.
TEST(controld_admin_request, reads_a_command_and_its_arguments_and_refuses_each_mistake) {
    auto r = admin::parse_request(R"({"command":"rotate","group":"plant-a","in_s":30})"
                                  "\r");
    ASSERT_TRUE(r) << r.message();
    EXPECT_EQ(r->command, "rotate");
    const auto rot = admin::parse_rotate(r->object);
    ASSERT_TRUE(rot) << rot.message();
    EXPECT_EQ(rot->group, "plant-a");
    EXPECT_EQ(rot->in_s, 30U);
    const auto every = admin::parse_rotate(json{{"command", "rotate"}});
    ASSERT_TRUE(every);
    EXPECT_TRUE(every->group.empty()) << "every group";
    EXPECT_FALSE(every->in_s) << "each group's update period";
    EXPECT_EQ(admin::parse_rotate(json{{"in_s", 33523200}})->in_s, 33523200U) << "388 days";
    const auto rev = admin::parse_revoke(json{{"command", "revoke"}, {"grantor", "001b21fffe000001-1"}});
    ASSERT_TRUE(rev);
    EXPECT_EQ(*rev, "001b21fffe000001-1");

    constexpr std::string_view one_line = R"(a request is one JSON line such as {"command":"status"})";
    for (const char* bad : {"", "status", "[1,2]", "{\"command\":7}", "{\"cmd\":\"status\"}",
                            "{\"command\":", "\"status\"", "{\"command\":\"status\"} {}"}) {
        const auto refused = admin::parse_request(bad);
        ASSERT_FALSE(refused) << bad;
        EXPECT_EQ(refused.message(), one_line) << bad;
    }
    constexpr std::string_view in_s = "rotate: \"in_s\" is whole seconds from 1 to 33523200";
    for (const json& bad : {json{{"in_s", 0}}, json{{"in_s", -1}}, json{{"in_s", 1.5}}, json{{"in_s", "30"}},
                            json{{"in_s", 33523201}}, json{{"in_s", nullptr}}}) {
        const auto refused = admin::parse_rotate(bad);
        ASSERT_FALSE(refused) << bad;
        EXPECT_EQ(refused.message(), in_s) << bad;
    }
    const auto group = admin::parse_rotate(json{{"group", json::array({"plant-a"})}});
    ASSERT_FALSE(group);
    EXPECT_EQ(group.message(), "rotate: \"group\" is a group's name (`ptpsecctl groups` lists them)");
    // An empty name is not "every group": that is the request without one.
    const auto empty = admin::parse_rotate(json{{"group", ""}});
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.message(), "rotate: \"group\" is empty; name a group (`ptpsecctl groups` lists them), or leave "
                               "\"group\" out to rotate every group");
    for (const json& bad : {json{{"command", "revoke"}}, json{{"grantor", 1}}}) {
        const auto refused = admin::parse_revoke(bad);
        ASSERT_FALSE(refused) << bad;
        EXPECT_EQ(refused.message(), "revoke needs the grantor's PortIdentity (\"001b21fffe000001-1\")");
    }
}

TEST_F(controld_admin, answers_one_json_line_and_refuses_what_is_not_one) {
    const std::string path = _dir.file("a.sock");
    auto srv = serve(path);
    ASSERT_TRUE(srv);
    EXPECT_EQ(ask_admin(path, "{\"command\":\"status\"}\n"), (json{{"echo", "status"}}));
    // Without the newline, ended by a half-close; with CRLF.
    {
        const unix_client c(path);
        ASSERT_TRUE(c.send("{\"command\":\"groups\"}"));
        c.half_close();
        EXPECT_EQ(json::parse(c.read_line(), nullptr, false), (json{{"echo", "groups"}}));
    }
    EXPECT_EQ(ask_admin(path, "{\"command\":\"groups\"}\r\n"), (json{{"echo", "groups"}}));
    for (const char* bad : {"status\n", "[1,2]\n", "{\"command\":7}\n", "{\"cmd\":\"status\"}\n", "\n"}) {
        const json r = ask_admin(path, bad);
        ASSERT_TRUE(r.is_object()) << bad;
        EXPECT_EQ(r.value("error", ""), R"(a request is one JSON line such as {"command":"status"})") << bad;
    }
    const json thrown = ask_admin(path, "{\"command\":\"throw\"}\n");
    EXPECT_EQ(thrown.value("error", ""), "internal error: handler failed");
    const admin::counters c = srv->stats();
    EXPECT_EQ(c.answered, 4U) << "the handler's failure was answered too";
    EXPECT_EQ(c.refused, 5U);
    EXPECT_EQ(c.timeouts, 0U);
}

TEST_F(controld_admin, a_request_over_4_kib_is_refused_and_the_next_client_is_served) {
    const std::string path = _dir.file("a.sock");
    auto srv = serve(path);
    ASSERT_TRUE(srv);
    // Exactly the limit, newline included, is a request (padded with spaces).
    std::string fits = "{\"command\":\"status\"}";
    fits += std::string(admin::max_request_size - fits.size() - 1, ' ') + "\n";
    ASSERT_EQ(fits.size(), admin::max_request_size);
    EXPECT_EQ(ask_admin(path, fits), (json{{"echo", "status"}}));
    {
        const unix_client c(path);
        ASSERT_TRUE(c.connected());
        ASSERT_TRUE(c.send(std::string(admin::max_request_size, 'x')));
        const auto before = std::chrono::steady_clock::now();
        const json r = json::parse(c.read_line(), nullptr, false);
        EXPECT_EQ(r.value("error", ""), "a request is one line of at most 4096 octets");
        EXPECT_LT(std::chrono::steady_clock::now() - before, 900ms) << "refused at once, not at the timeout";
    }
    EXPECT_EQ(ask_admin(path, "{\"command\":\"next\"}\n"), (json{{"echo", "next"}}));
    EXPECT_EQ(srv->stats().refused, 1U);
}

TEST_F(controld_admin, a_silent_or_trickling_client_is_cut_off_after_one_second) {
    const std::string path = _dir.file("a.sock");
    auto srv = serve(path);
    ASSERT_TRUE(srv);
    for (const bool trickle : {false, true}) {
        const unix_client c(path);
        ASSERT_TRUE(c.connected());
        const auto start = std::chrono::steady_clock::now();
        std::string reply;
        if (trickle) {
            // An octet every 200 ms does not extend the deadline.
            std::thread t([&c] {
                for (int i = 0; i < 15; ++i) {
                    if (!c.send("{")) {
                        return;
                    }
                    std::this_thread::sleep_for(200ms);
                }
            });
            reply = c.read_line();
            t.join();
        } else {
            reply = c.read_line();
        }
        const auto took = std::chrono::steady_clock::now() - start;
        EXPECT_EQ(json::parse(reply, nullptr, false).value("error", ""), "no complete request line within 1000 ms")
            << reply;
        EXPECT_GE(took, 900ms) << trickle;
        EXPECT_LT(took, 2500ms) << trickle;
    }
    // Meanwhile nobody else was served; now the next one is.
    EXPECT_EQ(ask_admin(path, "{\"command\":\"after\"}\n"), (json{{"echo", "after"}}));
    EXPECT_EQ(srv->stats().timeouts, 2U);
}

TEST_F(controld_admin, the_socket_file_is_made_private_replaced_when_stale_and_removed_at_the_end) {
    const std::string dir = _dir.file("run/ptpsec");
    const std::string path = dir + "/controld.sock";
    {
        auto srv = serve(path);
        ASSERT_TRUE(srv);
        EXPECT_EQ(mode_of(_dir.file("run")) & 07777, 0700U);
        EXPECT_EQ(mode_of(dir) & 07777, 0700U);
        EXPECT_EQ(mode_of(path) & 07777, 0600U);
        // A live one is not taken over, and is left in place.
        auto again = admin::server::open(path);
        ASSERT_FALSE(again);
        EXPECT_NE(again.message().find("another ptpsec-controld answers there"), std::string::npos) << again.message();
        EXPECT_EQ(ask_admin(path, "{\"command\":\"still\"}\n"), (json{{"echo", "still"}}));
    }
    EXPECT_FALSE(std::filesystem::exists(path));
    make_stale_socket(path);
    {
        auto srv = serve(path);
        ASSERT_TRUE(srv) << "a stale socket is replaced";
        EXPECT_EQ(ask_admin(path, "{\"command\":\"fresh\"}\n"), (json{{"echo", "fresh"}}));
    }
    // Not a socket: not ours to remove.
    test::write_file(path, "notes");
    auto file = admin::server::open(path);
    ASSERT_FALSE(file);
    EXPECT_NE(file.message().find(fmt::format("admin socket {}: the file exists and is not a socket", path)),
              std::string::npos)
        << file.message();
    EXPECT_EQ(test::read_file(path), "notes");
    const std::string too_long = _dir.file(std::string(120, 'x'));
    auto long_path = admin::server::open(too_long);
    ASSERT_FALSE(long_path);
    EXPECT_NE(long_path.message().find("a Unix socket path has 1 to 107 characters"), std::string::npos)
        << long_path.message();
}

TEST_F(controld_admin, a_socket_replaced_by_another_daemon_is_not_removed) {
    const std::string path = _dir.file("a.sock");
    auto srv = serve(path);
    ASSERT_TRUE(srv);
    // Someone removed ours and put another file there.
    ASSERT_EQ(::unlink(path.c_str()), 0);
    test::write_file(path, "someone else's");
    srv.reset();
    EXPECT_EQ(test::read_file(path), "someone else's");
}

} // namespace
} // namespace ptpsec
