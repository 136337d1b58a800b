// ptpsec-controld as a program (PTPSEC_CONTROLD, set by meson test): a real
// NTS-KE server on loopback with certificates this test makes, asked for
// group keys over TLS 1.3 by tls::client with the codec's PTP Key Request.
// Admitted clients get the group's key; others get Not Authorized; a
// restart of the server hands out the same key; SIGHUP reloads its
// certificates.

#include "../process.h"
#include "test_pki.h"

#include <control/nts/message.h>
#include <control/tls/client.h>

#include <gtest/gtest.h>

#include <fmt/format.h>

#include <csignal>
#include <regex>
#include <thread>

namespace ptpsec {
namespace {

using namespace std::chrono_literals;

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
        test::write_pem_file(_dir.file("ca.pem"), test::cert_pem(_ca));
        for (const auto& [name, id] :
             {std::pair{"server", &server}, std::pair{"node1", &node}, std::pair{"stranger", &stranger}}) {
            test::write_pem_file(_dir.file(fmt::format("{}.pem", name)), test::cert_pem(*id));
            test::write_pem_file(_dir.file(fmt::format("{}.key", name)), test::key_pem(*id));
        }
        test::write_file(_dir.file("controld.toml"), R"([server]
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

    result<tls::client> connect(uint16_t port, const std::string& who) {
        tls::client_config cc;
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

    test::temp_dir _dir;
    std::string _exe;
    test::identity _ca;
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
        const auto unknown = ask(*node, 9);
        ASSERT_TRUE(unknown.is_error());
        EXPECT_EQ(std::get<nts::error_code>(unknown.outcome), nts::error_code::not_authorized);

        // SIGHUP: the certificates are read again.
        ::kill(server->pid(), SIGHUP);
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        while (server->out().find("certificates reloaded") == std::string::npos &&
               std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(20ms);
        }
        EXPECT_NE(server->out().find("certificates reloaded"), std::string::npos) << server->out();
        EXPECT_TRUE(node->close());
        EXPECT_TRUE(stranger->close());
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

} // namespace
} // namespace ptpsec
