// The whole group-based key path with real processes: ptpsec-controld as the
// KE server, ptpsec-controld as a node, and ptpsec-dataplane signing the
// stripped linuxptp capture without end (net_pcap) with whatever key the node
// makes current. Lifetimes are seconds long, so the test sees the node fetch
// the next key in the update period and switch to it without a frame going
// unsigned; a data plane that restarts gets its keys pushed again.

#include "../control/test_pki.h"
#include "../linuxptp_capture.h"
#include "../process.h"
#include "app_helpers.h"

#include <dataplane/sa_channel.h>

#include <gtest/gtest.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <optional>
#include <regex>
#include <thread>

namespace ptpsec {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class controld_node : public testing::Test {
protected:
    void SetUp() override {
        _ctl = test::program_from_env("PTPSECCTL");
        _controld = test::program_from_env("PTPSEC_CONTROLD");
        _dataplane = test::program_from_env("PTPSEC_DATAPLANE");
        const auto ca = test::make_identity({.cn = "plant CA", .ca = true});
        const auto server =
            test::make_identity({.cn = "ke", .issuer = &ca, .san = "DNS:localhost,IP:127.0.0.1", .eku = "serverAuth"});
        const auto node =
            test::make_identity({.cn = "node1", .issuer = &ca, .san = "DNS:node1.plant.example", .eku = "clientAuth"});
        test::write_pem_file(_dir.file("ca.pem"), test::cert_pem(ca));
        for (const auto& [name, id] : {std::pair{"server", &server}, std::pair{"node1", &node}}) {
            test::write_pem_file(_dir.file(fmt::format("{}.pem", name)), test::cert_pem(*id));
            test::write_pem_file(_dir.file(fmt::format("{}.key", name)), test::key_pem(*id));
        }
        const auto strip = test::run_program(_dir, _ctl, {"pcap", "strip", test::linuxptp_capture, stripped()});
        ASSERT_EQ(strip.exit_code, 0) << strip.err;
        // Keys of 8 s, the next handed out in the last 4 s, 1 s of grace.
        // Each daemon's admin socket in the test's folder, never the
        // system's default.
        test::write_file(_dir.file("server.toml"), R"([admin]
socket = "server.sock"

[server]
listen = ["127.0.0.1"]
port = 0
certificate = "server.pem"
private-key = "server.key"
ca = "ca.pem"
state = "controld.db"
session-lifetime-s = 3600

[[group]]
name = "plant-a"
domain = 0
algorithm = "hmac-sha256-128"
lifetime = 8
update-period = 4
grace-period = 1

[[client]]
san = "DNS:node1.plant.example"
groups = ["plant-a"]
)");
    }

    std::string stripped() const { return _dir.file("stripped.pcap"); }
    std::string prefix() const { return fmt::format("ptpsec-node-{}", ::getpid()); }

    /// node.toml for the group `group` (domain 0; `group_lines` add to its
    /// table), then `extra`, by default the admin socket node.sock.
    void write_node_config(uint16_t port, const std::string& group = "plant-a", const std::string& group_lines = "",
                           const std::string& extra = "[admin]\nsocket = \"node.sock\"\n") {
        test::write_file(_dir.file("node.toml"), fmt::format(R"([node]
server = "127.0.0.1"
port = {}
server-name = "localhost"
certificate = "node1.pem"
private-key = "node1.key"
ca = "ca.pem"
groups = ["{}"]
dataplane-prefix = "{}"
retry-min-ms = 100
retry-max-ms = 1000

[[group]]
name = "{}"
domain = 0
{}
{})",
                                                             port, group, prefix(), group, group_lines, extra));
    }

    std::unique_ptr<test::background_program> start_dataplane() {
        return std::make_unique<test::background_program>(
            _dir, _dataplane,
            dataplane_command("-l0", prefix(),
                              {fmt::format("--vdev=net_pcap0,rx_pcap={},infinite_rx=1,tx_pcap=/dev/null", stripped()),
                               "--vdev=net_ring0"},
                              {"--sign", "1", "--replay-window", "0"}));
    }

    /// The KE server's port from its banner (it listens on port 0); 0 if it
    /// ended or said nothing within 20 s.
    static uint16_t server_port(test::background_program& server) {
        const std::regex banner("NTS-KE server on port ([0-9]+)");
        for (auto deadline = std::chrono::steady_clock::now() + 20s;
             server.running() && std::chrono::steady_clock::now() < deadline;) {
            std::smatch m;
            const std::string out = server.out();
            if (std::regex_search(out, m, banner)) {
                return static_cast<uint16_t>(std::stoi(m[1]));
            }
            std::this_thread::sleep_for(20ms);
        }
        return 0;
    }

    /// `ptpsecctl sa list --json` once; nullopt (and why in `why`) while the
    /// data plane does not answer.
    std::optional<json> try_sa_list(std::string* why = nullptr) {
        const auto r = test::run_program(_dir, _ctl, {"sa", "list", "--json", "--file-prefix", prefix()});
        if (r.exit_code != 0) {
            if (why != nullptr) {
                *why = r.err;
            }
            return std::nullopt;
        }
        return json::parse(r.out);
    }

    /// `ptpsecctl sa list --json`, once it answers.
    json sa_list() {
        const auto deadline = std::chrono::steady_clock::now() + 10s;
        std::string why;
        do {
            if (auto sas = try_sa_list(&why)) {
                return *sas;
            }
            std::this_thread::sleep_for(50ms);
        } while (std::chrono::steady_clock::now() < deadline);
        ADD_FAILURE() << "sa list: " << why;
        return json::object();
    }

    /// The key ID current for SPP 1, once there is one (0 if none within
    /// `limit`, the data plane's start included).
    uint64_t current_key(std::chrono::seconds limit = 20s) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (std::chrono::steady_clock::now() < deadline) {
            const json sas = try_sa_list().value_or(json::object());
            if (sas.contains("1")) {
                for (const auto& [id, k] : sas.at("1").at("keys").items()) {
                    if (k.at("current") == 1) {
                        return std::stoull(id);
                    }
                }
            }
            std::this_thread::sleep_for(100ms);
        }
        return 0;
    }

    json signing_stats() { return path_stats("inside_to_outside"); }
    /// The path that verifies what the signing path sent round the net_ring
    /// loop.
    json verifying_stats() { return path_stats("outside_to_inside"); }

    json path_stats(const char* path) {
        const auto r = test::run_program(_dir, _ctl, {"stats", "--json", "--file-prefix", prefix()});
        EXPECT_EQ(r.exit_code, 0) << r.err;
        return r.exit_code == 0 ? json::parse(r.out).at("paths").at(path) : json::object();
    }

    test::temp_dir _dir;
    std::string _ctl;
    std::string _controld;
    std::string _dataplane;
};

TEST_F(controld_node, keys_flow_from_the_server_through_the_node_into_the_data_plane) {
    test::background_program server(_dir, _controld, {"--config", _dir.file("server.toml")});
    const uint16_t port = server_port(server);
    ASSERT_NE(port, 0) << server.out() << server.err();
    write_node_config(port);

    runtime_dir_guard runtime(prefix());
    auto dp = start_dataplane();
    test::background_program node(_dir, _controld, {"--config", _dir.file("node.toml")});

    // The node fetches the group key and makes it current: signing starts.
    const uint64_t first = current_key();
    ASSERT_NE(first, 0U) << node.out() << node.err();
    const json sas = sa_list();
    const json& k = sas.at("1").at("keys").at(std::to_string(first));
    EXPECT_EQ(k.at("algorithm"), "hmac-sha256-128");
    ASSERT_TRUE(k.at("remaining_lifetime_s").is_number_unsigned()) << k.dump();
    EXPECT_LE(k.at("remaining_lifetime_s").get<uint64_t>(), 9U) << "lifetime plus grace";
    std::this_thread::sleep_for(300ms);
    // Frames before the first key were dropped as no_sa (the data plane
    // started with none); from now on none may be.
    const json before = signing_stats();
    EXPECT_GT(before.at("signed").get<uint64_t>(), 0U);

    // Within one lifetime the node has fetched the next key in the update
    // period and switched to it when the first ended.
    uint64_t second = 0;
    for (auto deadline = std::chrono::steady_clock::now() + 15s; std::chrono::steady_clock::now() < deadline;) {
        second = current_key();
        if (second != 0 && second != first) {
            break;
        }
        std::this_thread::sleep_for(200ms);
    }
    EXPECT_NE(second, first) << node.out();
    EXPECT_GT(second, first);
    // Not a frame went unsigned across the switch.
    const json st = signing_stats();
    EXPECT_EQ(st.at("drops").at("no_sa"), before.at("drops").at("no_sa")) << st.dump();
    EXPECT_EQ(st.at("drops").at("expired_key_unsigned"), 0) << st.dump();
    EXPECT_GT(st.at("signed").get<uint64_t>(), before.at("signed").get<uint64_t>());

    // A data plane that restarts gets its keys again.
    ASSERT_EQ(dp->stop(), 0) << dp->err();
    dp.reset();
    dp = start_dataplane();
    EXPECT_NE(current_key(), 0U) << node.out();
    EXPECT_EQ(node.stop(), 0) << node.err();
    EXPECT_NE(node.out().find("data plane restarts 1"), std::string::npos) << node.out();
    // One TLS session per renewal, each after the first resumed from the
    // ticket of the one before (seeds/001 §2.1), and not one fetch failed.
    std::smatch m;
    const std::string node_out = node.out();
    ASSERT_TRUE(std::regex_search(
        node_out, m,
        std::regex(R"(\(at exit\): fetches ([0-9]+) failed ([0-9]+) .* TLS sessions ([0-9]+) \(resumed ([0-9]+)\))")))
        << node_out;
    EXPECT_EQ(m[2], "0") << node_out;
    EXPECT_GE(std::stoi(m[3]), 2) << node_out;
    EXPECT_EQ(std::stoi(m[4]), std::stoi(m[3]) - 1) << node_out;
    EXPECT_EQ(server.stop(), 0) << server.err();
    EXPECT_NE(server.out().find("not authorized 0"), std::string::npos) << server.out();
    EXPECT_NE(server.out().find(fmt::format("(resumed {})", m[4].str())), std::string::npos) << server.out();
}

// A Group-of-2 (seeds/001 §4.2.2: a subGroup of a group number, for two
// members) end to end: its own key, beside the plain group's, reaches the
// data plane of a member, which signs with it.
TEST_F(controld_node, a_group_of_2_gets_its_own_key_into_the_data_plane) {
    test::write_file(_dir.file("go2.toml"), R"([server]
listen = ["127.0.0.1"]
port = 0
certificate = "server.pem"
private-key = "server.key"
ca = "ca.pem"
state = "go2.db"

[[group]]
name = "plant-a"
domain = 0
algorithm = "hmac-sha256-128"

[[group]]
name = "gm1-node1"
domain = 0
subgroup = 7
algorithm = "aes-cmac-128"

[[client]]
san = "DNS:node1.plant.example"
groups = ["plant-a", "gm1-node1"]

[admin]
enabled = false
)");
    test::background_program server(_dir, _controld, {"--config", _dir.file("go2.toml")});
    const uint16_t port = server_port(server);
    ASSERT_NE(port, 0) << server.out() << server.err();
    const std::regex spp_of(R"(gm1-node1 \(domain 0 sdoId 0x000 subGroup 7, SPP ([0-9]+), aes-cmac-128\))");
    std::smatch m;
    const std::string banner = server.out();
    ASSERT_TRUE(std::regex_search(banner, m, spp_of)) << banner;
    const std::string spp = m[1];
    ASSERT_NE(spp, "1") << "the plain group has SPP 1";
    write_node_config(port, "gm1-node1", "subgroup = 7", "[admin]\nenabled = false\n");
    runtime_dir_guard runtime(prefix());
    test::background_program dp(
        _dir, _dataplane,
        dataplane_command("-l0", prefix(),
                          {fmt::format("--vdev=net_pcap0,rx_pcap={},infinite_rx=1,tx_pcap=/dev/null", stripped()),
                           "--vdev=net_ring0"},
                          {"--sign", spp, "--replay-window", "0"}));
    test::background_program node(_dir, _controld, {"--config", _dir.file("node.toml")});
    json key;
    for (auto deadline = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < deadline;) {
        const json sas = try_sa_list().value_or(json::object());
        if (sas.contains(spp)) {
            for (const auto& [id, k] : sas.at(spp).at("keys").items()) {
                if (k.at("current") == 1) {
                    key = k;
                }
            }
        }
        if (!key.is_null()) {
            break;
        }
        std::this_thread::sleep_for(100ms);
    }
    ASSERT_FALSE(key.is_null()) << node.out() << node.err();
    EXPECT_EQ(key.at("algorithm"), "aes-cmac-128");
    EXPECT_FALSE(sa_list().contains("1")) << "the plain group's key went to a node that did not ask for it";
    std::this_thread::sleep_for(300ms);
    EXPECT_GT(signing_stats().at("signed").get<uint64_t>(), 0U);
    EXPECT_EQ(node.stop(), 0) << node.err();
    EXPECT_EQ(server.stop(), 0) << server.err();
    EXPECT_NE(server.out().find("not authorized 0"), std::string::npos) << server.out();
}

// The control plane restarts: the data plane keeps signing with the keys it
// holds meanwhile, and the restarted node, told by the data plane that it
// holds them already, takes them as held: nothing is counted as rejected and
// not a frame goes unsigned.
TEST_F(controld_node, a_node_that_restarts_takes_the_keys_the_data_plane_kept) {
    test::background_program server(_dir, _controld, {"--config", _dir.file("server.toml")});
    const uint16_t port = server_port(server);
    ASSERT_NE(port, 0) << server.out() << server.err();
    write_node_config(port);

    runtime_dir_guard runtime(prefix());
    auto dp = start_dataplane();
    auto node = std::make_unique<test::background_program>(
        _dir, _controld, std::vector<std::string>{"--config", _dir.file("node.toml")});
    const uint64_t first = current_key();
    ASSERT_NE(first, 0U) << node->out() << node->err();
    std::this_thread::sleep_for(300ms);
    const json before = signing_stats();

    // The node goes; the data plane signs on with the key it holds.
    ASSERT_EQ(node->stop(), 0) << node->err();
    std::this_thread::sleep_for(500ms);
    const json alone = signing_stats();
    EXPECT_GT(alone.at("signed").get<uint64_t>(), before.at("signed").get<uint64_t>());
    EXPECT_NE(current_key(), 0U);

    // The node comes back and pushes what it fetches: the same key, held already.
    node = std::make_unique<test::background_program>(_dir, _controld,
                                                      std::vector<std::string>{"--config", _dir.file("node.toml")});
    const std::regex pushed(R"(SA updates pushed [0-9]+ rejected ([0-9]+))");
    bool signing = false;
    for (auto deadline = std::chrono::steady_clock::now() + 10s;
         !signing && std::chrono::steady_clock::now() < deadline;) {
        const auto r = test::run_program(_dir, _ctl, {"status", "--json", "--controld-socket", _dir.file("node.sock")});
        if (r.exit_code == 0) {
            const json groups = json::parse(r.out).value("node", json::object()).value("groups", json::array());
            signing = !groups.empty() && groups[0].value("signing_key_id", json()).is_number();
        }
        if (!signing) {
            std::this_thread::sleep_for(100ms);
        }
    }
    EXPECT_TRUE(signing) << node->out() << node->err();
    EXPECT_EQ(node->stop(), 0) << node->err();
    const std::string out = node->out();
    std::smatch m;
    ASSERT_TRUE(std::regex_search(out, m, pushed)) << out;
    EXPECT_EQ(m[1], "0") << "a key the data plane kept was counted as rejected:\n" << out;
    EXPECT_EQ(out.find("last error"), std::string::npos) << out;
    EXPECT_NE(out.find(", signing with key "), std::string::npos) << out;
    const json after = signing_stats();
    EXPECT_EQ(after.at("drops").at("no_sa"), before.at("drops").at("no_sa")) << after.dump();
    EXPECT_EQ(after.at("drops").at("expired_key_unsigned"), 0) << after.dump();
    EXPECT_EQ(server.stop(), 0) << server.err();
}

/// An early rotation ordered by the operator: `ptpsecctl rotate` on the
/// server shortens the current key and hands out the next at once;
/// `ptpsecctl rotate` on the node fetches now. The data plane switches to the
/// next key when the shortened one ends, without an unsigned frame, and the
/// node takes the old key out of the data plane when its grace period ends
/// (the data plane was told it lived an hour).
TEST_F(controld_node, an_early_rotation_ordered_by_the_operator_reaches_the_data_plane_without_loss) {
    // Keys of an hour, the next handed out in the last 30 s, 1 s of grace.
    std::string server_toml = test::read_file(_dir.file("server.toml"));
    server_toml.replace(server_toml.find("lifetime = 8\nupdate-period = 4"), 30, "lifetime = 3600\nupdate-period = 30");
    test::write_file(_dir.file("server.toml"), server_toml);
    test::background_program server(_dir, _controld, {"--config", _dir.file("server.toml")});
    const uint16_t port = server_port(server);
    ASSERT_NE(port, 0) << server.out() << server.err();
    write_node_config(port);
    // The node also asks every 1 to 2 s: a later rotation reaches it alone.
    std::string node_toml = test::read_file(_dir.file("node.toml"));
    node_toml.insert(node_toml.find("retry-min-ms"), "refresh-interval = 2\n");
    test::write_file(_dir.file("node.toml"), node_toml);
    runtime_dir_guard runtime(prefix());
    auto dp = start_dataplane();
    test::background_program node(_dir, _controld, {"--config", _dir.file("node.toml")});
    auto ctl = [&](std::vector<std::string> args) { return test::run_program(_dir, _ctl, args, 30s); };

    const uint64_t first = current_key();
    ASSERT_NE(first, 0U) << node.out() << node.err();
    std::this_thread::sleep_for(300ms);
    const json before = signing_stats();

    // The server: key `first` now ends in 3 s, and its successor is out.
    const auto rotated =
        ctl({"rotate", "plant-a", "--in", "3", "--controld-socket", _dir.file("server.sock"), "--json"});
    ASSERT_EQ(rotated.exit_code, 0) << rotated.out << rotated.err;
    const json r = json::parse(rotated.out).at("server").at(0);
    EXPECT_EQ(r.at("key_id"), first);
    EXPECT_EQ(r.at("ends_in_s"), 3);
    EXPECT_GT(r.at("was_ending_in_s").get<uint64_t>(), 3500U);
    const uint64_t second = r.at("next_key_id");
    EXPECT_GT(second, first);
    // Not twice: the group is rotating already.
    const auto twice = ctl({"rotate", "plant-a", "--controld-socket", _dir.file("server.sock")});
    EXPECT_EQ(twice.exit_code, 1);
    EXPECT_NE(
        twice.out.find(fmt::format("group plant-a: not rotated: group plant-a is rotating already: key {}", first)),
        std::string::npos)
        << twice.out;
    const auto unknown = ctl({"rotate", "plant-b", "--controld-socket", _dir.file("server.sock")});
    EXPECT_EQ(unknown.exit_code, 1);
    EXPECT_NE(unknown.err.find("no group plant-b here"), std::string::npos) << unknown.err;
    // An empty name ("$GROUP" unset) is not "every group".
    const auto empty = ctl({"rotate", "", "--controld-socket", _dir.file("server.sock")});
    EXPECT_EQ(empty.exit_code, 1);
    EXPECT_NE(empty.err.find("rotate: \"group\" is empty; name a group"), std::string::npos) << empty.err;

    // The node: fetches now, and has both keys in the data plane when it answers.
    const auto fetched = ctl({"rotate", "--controld-socket", _dir.file("node.sock"), "--json"});
    ASSERT_EQ(fetched.exit_code, 0) << fetched.out << fetched.err;
    const json n = json::parse(fetched.out).at("node");
    EXPECT_EQ(n.at("fetched"), 1);
    const json& keys = n.at("groups").at(0).at("keys");
    ASSERT_EQ(keys.size(), 2U) << keys.dump();
    EXPECT_EQ(keys.at(0).at("key_id"), first);
    EXPECT_EQ(keys.at(0).at("state"), "current");
    EXPECT_LE(keys.at(0).at("ends_in_s").get<uint64_t>(), 3U);
    EXPECT_EQ(keys.at(0).at("signing"), true);
    EXPECT_EQ(keys.at(1).at("key_id"), second);
    EXPECT_EQ(keys.at(1).at("state"), "next");
    EXPECT_EQ(keys.at(1).at("in_dataplane"), true);

    // The server's view of the same keys.
    const auto server_sas = ctl({"sa", "list", "--controld", "--controld-socket", _dir.file("server.sock"), "--json"});
    ASSERT_EQ(server_sas.exit_code, 0) << server_sas.err;
    const json held = json::parse(server_sas.out).at("server").at("groups").at(0).at("keys");
    ASSERT_EQ(held.size(), 2U) << held.dump();
    EXPECT_EQ(held.at(1).at("key_id"), second);
    EXPECT_EQ(held.at(1).at("state"), "next");
    const auto text = ctl({"sa", "list", "--controld", "--controld-socket", _dir.file("node.sock")});
    EXPECT_EQ(text.exit_code, 0) << text.err;
    EXPECT_NE(text.out.find("node group plant-a:"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("installed, signing"), std::string::npos) << text.out;

    // The data plane signs with the next key once the first has ended ...
    uint64_t now_signing = 0;
    for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;) {
        now_signing = current_key();
        if (now_signing == second) {
            break;
        }
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(now_signing, second) << node.out();
    // ... and loses the first at the end of its grace period (1 s later),
    // not an hour later as it was first told.
    bool gone = false;
    for (auto deadline = std::chrono::steady_clock::now() + 10s;
         !gone && std::chrono::steady_clock::now() < deadline;) {
        const json sas = sa_list();
        gone = sas.contains("1") && !sas.at("1").at("keys").contains(std::to_string(first));
        if (!gone) {
            std::this_thread::sleep_for(100ms);
        }
    }
    EXPECT_TRUE(gone) << sa_list().dump();
    const json st = signing_stats();
    EXPECT_EQ(st.at("drops").at("no_sa"), before.at("drops").at("no_sa")) << st.dump();
    EXPECT_EQ(st.at("drops").at("expired_key_unsigned"), 0) << st.dump();
    EXPECT_EQ(st.at("dropped"), before.at("dropped")) << st.dump();
    // What the old key signed just before the switch reached the verifying
    // path after it, and verified with the old key in its grace period:
    // nothing signed was dropped there.
    const json vs = verifying_stats();
    EXPECT_EQ(vs.at("dropped"), 0) << vs.dump();
    EXPECT_GT(vs.at("verified").get<uint64_t>(), 0U) << vs.dump();

    // A second rotation, with nobody at the node: its refresh interval brings the third key.
    const auto again = ctl({"rotate", "plant-a", "--in", "3", "--controld-socket", _dir.file("server.sock"), "--json"});
    ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
    const uint64_t third = json::parse(again.out).at("server").at(0).at("next_key_id");
    for (auto deadline = std::chrono::steady_clock::now() + 15s; std::chrono::steady_clock::now() < deadline;) {
        now_signing = current_key();
        if (now_signing == third) {
            break;
        }
        std::this_thread::sleep_for(100ms);
    }
    EXPECT_EQ(now_signing, third) << node.out();
    const json st2 = signing_stats();
    EXPECT_EQ(st2.at("dropped"), before.at("dropped")) << st2.dump();
    EXPECT_GT(st2.at("signed").get<uint64_t>(), st.at("signed").get<uint64_t>());
    const json vs2 = verifying_stats();
    EXPECT_EQ(vs2.at("dropped"), 0) << vs2.dump();
    EXPECT_GT(vs2.at("verified").get<uint64_t>(), vs.at("verified").get<uint64_t>()) << vs2.dump();

    const auto status = ctl({"status", "--controld-socket", _dir.file("node.sock"), "--json"});
    ASSERT_EQ(status.exit_code, 0) << status.err;
    const json c = json::parse(status.out).at("node").at("counters");
    EXPECT_EQ(c.at("refreshes"), 1);
    EXPECT_GE(c.at("keys_removed").get<uint64_t>(), 1U);
    // The node removes a key at the end of its grace period, when the data
    // plane may have retired it by itself: found gone, that is no refusal.
    ASSERT_EQ(dp->stop(), 0) << dp->err();
    EXPECT_NE(dp->out().find(" rejected 0 acks dropped 0 "), std::string::npos) << dp->out();
    EXPECT_EQ(dp->out().find("last rejected:"), std::string::npos) << dp->out();
    EXPECT_EQ(node.stop(), 0) << node.err();
    EXPECT_EQ(server.stop(), 0) << server.err();
}

} // namespace
} // namespace ptpsec
