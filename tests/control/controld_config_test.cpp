// ptpsec-controld's configuration file (control/controld/config.h): a full
// file read back, and one test per kind of mistake, each named with its line.

#include <control/controld/config.h>

#include <gtest/gtest.h>

namespace ptpsec::controld {
namespace {

constexpr const char* full = R"(# a KE server for two groups
[server]
listen = ["127.0.0.1", "::1"]
port = 14460
certificate = "server.crt"
private-key = "/etc/ptpsec/server.key"
ca = "ca.crt"
state = "controld.db"
handshake-timeout-ms = 2000
idle-timeout-ms = 3000
max-connections = 64
session-lifetime-s = 7200
crl = "ca.crl"
connections-per-second = 5
connection-burst = 10

[[group]]
name = "plant-a"
domain = 0
sdo-id = 0x000
algorithm = "hmac-sha256-128"
lifetime = 14400
update-period = 300
grace-period = 3

[[group]]
name = "plant-b"
domain = 24
sdo-id = 0x100
subgroup = 7
algorithm = "aes-gmac-256"

[[client]]
subject = "CN=node1,O=plant"
groups = ["plant-a"]

[[client]]
san = "DNS:gm.plant.example"
groups = ["*"]
grantor = true
transparent-clock = false
)";

TEST(controld_config, a_full_file_reads_back) {
    auto c = parse_config(full, "controld.toml", "/etc/ptpsec");
    ASSERT_TRUE(c) << c.message();
    ASSERT_TRUE(c->server);
    const auto& s = *c->server;
    EXPECT_EQ(s.tls.listen_addresses, (std::vector<std::string>{"127.0.0.1", "::1"}));
    EXPECT_EQ(s.tls.port, 14460);
    EXPECT_EQ(s.tls.cert_file, "/etc/ptpsec/server.crt");
    EXPECT_EQ(s.tls.key_file, "/etc/ptpsec/server.key");
    EXPECT_EQ(s.tls.ca_file, "/etc/ptpsec/ca.crt");
    EXPECT_EQ(s.state_file, "/etc/ptpsec/controld.db");
    EXPECT_EQ(s.tls.handshake_timeout, std::chrono::milliseconds(2000));
    EXPECT_EQ(s.tls.idle_timeout, std::chrono::milliseconds(3000));
    EXPECT_EQ(s.tls.max_connections, 64U);
    EXPECT_EQ(s.tls.session_lifetime, std::chrono::hours(2));
    EXPECT_EQ(s.tls.crl_file, "/etc/ptpsec/ca.crl");
    EXPECT_EQ(s.tls.rate.per_second, 5.0);
    EXPECT_EQ(s.tls.rate.burst, 10.0);
    ASSERT_EQ(c->groups.size(), 2U);
    EXPECT_EQ(c->groups[0].name, "plant-a");
    EXPECT_EQ(c->groups[0].lifetime_s, 14400U);
    const auto& b = c->groups[1];
    EXPECT_EQ(b.id, (ke::group_id{24, 0x100, 7}));
    EXPECT_EQ(b.alg, icv::algorithm::aes_gmac_256);
    ASSERT_EQ(c->clients.size(), 2U);
    EXPECT_EQ(c->clients[0].subject, "CN=node1,O=plant");
    EXPECT_EQ(c->clients[1].san, "DNS:gm.plant.example");
    EXPECT_TRUE(c->clients[1].grantor);
}

TEST(controld_config, ticket_mode_reads_back_on_the_server_and_the_grantor) {
    auto s = parse_config(R"([server]
certificate = "c"
private-key = "k"
ca = "a"
state = "s"

[unicast]
lifetime = 1800
update-period = 120
grace-period = 2
heartbeat-timeout = 30
missed-heartbeats = 2
aead-algorithms = ["aes-siv-cmac-256"]
mac-algorithms = ["hmac-sha256-128", "aes-gmac-256"]

[[client]]
subject = "CN=g"
grantor = true

[[client]]
san = "DNS:r.example"
unicast = true
)",
                          "s.toml");
    ASSERT_TRUE(s) << s.message();
    ASSERT_TRUE(s->unicast);
    const auto& u = *s->unicast;
    EXPECT_TRUE(u.enabled);
    EXPECT_EQ(u.lifetime_s, 1800U);
    EXPECT_EQ(u.update_period_s, 120U);
    EXPECT_EQ(u.grace_period_s, 2U);
    EXPECT_EQ(u.heartbeat_timeout_s, 30);
    EXPECT_EQ(u.missed_heartbeats, 2U);
    EXPECT_EQ(u.aead_algorithms, std::vector{nts::aead_algorithm::aes_siv_cmac_256});
    EXPECT_EQ(u.mac_algorithms, (std::vector{nts::mac_algorithm::hmac_sha256_128, nts::mac_algorithm::aes_gmac_256}));
    ASSERT_EQ(s->clients.size(), 2U);
    EXPECT_TRUE(s->clients[0].grantor);
    EXPECT_FALSE(s->clients[0].unicast);
    EXPECT_TRUE(s->clients[1].unicast);
    EXPECT_TRUE(s->groups.empty()) << "a server of ticket-based mode only";

    auto n = parse_config(R"([node]
server = "ke"
certificate = "c"
private-key = "k"
ca = "a"

[node.grantor]
port-identity = "001B21fffe000001-7"
addresses = ["10.0.0.1", "2001:db8::1", "02:00:00:00:00:01"]
aead-algorithms = ["aes-siv-cmac-512", "aes-siv-cmac-256"]
)",
                          "n.toml");
    ASSERT_TRUE(n) << n.message();
    ASSERT_TRUE(n->node && n->node->grantor);
    const auto& g = *n->node->grantor;
    ASSERT_EQ(g.time_server.addresses.size(), 4U);
    EXPECT_EQ(std::get<nts::port_identity>(g.time_server.addresses[0]),
              (nts::port_identity{{0x00, 0x1b, 0x21, 0xff, 0xfe, 0x00, 0x00, 0x01}, 7}));
    EXPECT_EQ(std::get<nts::ipv4_address>(g.time_server.addresses[1]), (nts::ipv4_address{{10, 0, 0, 1}}));
    EXPECT_EQ(std::get<nts::ipv6_address>(g.time_server.addresses[2]).octets[1], 0x01);
    EXPECT_EQ(std::get<nts::mac_address>(g.time_server.addresses[3]), (nts::mac_address{{2, 0, 0, 0, 0, 1}}));
    EXPECT_EQ(g.aead_algorithms,
              (std::vector{nts::aead_algorithm::aes_siv_cmac_512, nts::aead_algorithm::aes_siv_cmac_256}));
    EXPECT_EQ(g.mac_algorithms.size(), 6U) << "all by default";
    EXPECT_TRUE(n->node->groups.empty());
}

TEST(controld_config, a_node_reads_back_with_its_groups_resolved) {
    auto c = parse_config(R"([node]
server = "ke.plant.example"
port = 14460
certificate = "node.pem"
private-key = "node.key"
ca = "ca.pem"
crl = "crls/ca.crl"
groups = ["plant-b"]
dataplane-prefix = "dp1"
retry-min-ms = 200
retry-max-ms = 60000
refresh-interval = 600

[[group]]
name = "plant-b"
domain = 24
sdo-id = 0x100
subgroup = 7
)",
                          "node.toml", "/etc/ptpsec");
    ASSERT_TRUE(c) << c.message();
    EXPECT_FALSE(c->server);
    ASSERT_TRUE(c->node);
    const auto& n = *c->node;
    EXPECT_EQ(n.server_host, "ke.plant.example");
    EXPECT_EQ(n.server_port, 14460);
    EXPECT_EQ(n.tls.server_name, "ke.plant.example");
    EXPECT_EQ(n.tls.cert_file, "/etc/ptpsec/node.pem");
    EXPECT_EQ(n.tls.ca_file, "/etc/ptpsec/ca.pem");
    EXPECT_EQ(n.tls.crl_file, "/etc/ptpsec/crls/ca.crl");
    EXPECT_EQ(n.dataplane_prefix, "dp1");
    EXPECT_EQ(n.retry_min, std::chrono::milliseconds(200));
    EXPECT_EQ(n.retry_max, std::chrono::milliseconds(60000));
    EXPECT_EQ(n.refresh_interval, std::chrono::seconds(600));
    ASSERT_EQ(n.groups.size(), 1U);
    EXPECT_EQ(n.groups[0].name, "plant-b");
    EXPECT_EQ(n.groups[0].id, (ke::group_id{24, 0x100, 7}));
}

TEST(controld_config, the_admin_socket_has_a_default_and_can_be_moved_or_turned_off) {
    const std::string group = "[[group]]\nname = \"g\"\n";
    auto c = parse_config(group, "t.toml", "/etc/ptpsec");
    ASSERT_TRUE(c) << c.message();
    EXPECT_TRUE(c->admin.enabled);
    EXPECT_EQ(c->admin.socket, "/run/ptpsec/controld.sock");
    EXPECT_FALSE(c->admin.configured) << "the default only warns when it cannot be had";

    c = parse_config(group + "[admin]\nsocket = \"/run/ptpsec/node.sock\"\n", "t.toml", "/etc/ptpsec");
    ASSERT_TRUE(c) << c.message();
    EXPECT_TRUE(c->admin.enabled);
    EXPECT_EQ(c->admin.socket, "/run/ptpsec/node.sock");
    EXPECT_TRUE(c->admin.configured);

    // Relative: next to the configuration file, like the other files.
    c = parse_config("[admin]\nsocket = \"run/controld.sock\"\n" + group, "t.toml", "/etc/ptpsec");
    ASSERT_TRUE(c) << c.message();
    EXPECT_EQ(c->admin.socket, "/etc/ptpsec/run/controld.sock");

    c = parse_config(group + "[admin]\nenabled = false\n", "t.toml", "/etc/ptpsec");
    ASSERT_TRUE(c) << c.message();
    EXPECT_FALSE(c->admin.enabled);
    EXPECT_FALSE(c->admin.configured);

    // 107 characters is the most sockaddr_un holds.
    const std::string longest = "/" + std::string(106, 's');
    c = parse_config(group + "[admin]\nsocket = \"" + longest + "\"\n", "t.toml");
    ASSERT_TRUE(c) << c.message();
    EXPECT_EQ(c->admin.socket, longest);
}

TEST(controld_config, the_verifier_reads_back_with_its_files_resolved) {
    auto c = parse_config(R"([verifier]
registrar = "registrar.db"
audit = "sqlite:audit.db"
logs = ["/var/lib/ptpsec/evidence"]
ek-ca = "vendors.pem"
ek-crl = "/etc/ptpsec/vendors.crl"
ek-check-interval = 600
challenge = ["ptpsec-a", "ptpsec-b"]

[verifier.challenge-signers]
ptpsec-a = "gm-observer-1"
)",
                          "controld.toml", "/etc/ptpsec");
    ASSERT_TRUE(c) << c.message();
    ASSERT_TRUE(c->verifier);
    EXPECT_EQ(c->verifier->registrar, "/etc/ptpsec/registrar.db");
    EXPECT_EQ(c->verifier->audit, "sqlite:/etc/ptpsec/audit.db");
    EXPECT_EQ(c->verifier->ek_ca, "/etc/ptpsec/vendors.pem");
    EXPECT_EQ(c->verifier->ek_crl, "/etc/ptpsec/vendors.crl");
    EXPECT_EQ(c->verifier->ek_check_interval_s, 600U);
    EXPECT_EQ(c->verifier->challenge, (std::vector<std::string>{"ptpsec-a", "ptpsec-b"}));
    EXPECT_EQ(c->verifier->challenge_signers, (std::map<std::string, std::string>{{"ptpsec-a", "gm-observer-1"}}));
    auto plain = parse_config("[verifier]\nregistrar = \"r.db\"\naudit = \"sqlite:a.db\"\nlogs = [\"l\"]\n", "t.toml");
    ASSERT_TRUE(plain) << plain.message();
    EXPECT_TRUE(plain->verifier->ek_crl.empty());
    EXPECT_EQ(plain->verifier->ek_check_interval_s, 3600U);
}

TEST(controld_config, platform_attestation_reads_back_on_the_server_and_the_node) {
    auto c = parse_config(R"([server]
certificate = "c.pem"
private-key = "c.key"
ca = "ca.pem"
state = "s.db"
registrar = "registrar.db"

[[group]]
name = "plant-b"
domain = 24

[[client]]
subject = "CN=node1"
groups = ["plant-b"]
attest = "node1-tpm"

[node]
server = "ke"
certificate = "n.pem"
private-key = "n.key"
ca = "ca.pem"
groups = ["plant-b"]

[node.attestation]
signer-id = "node1-tpm"
tcti = "swtpm:host=127.0.0.1,port=2321"
key-handle = 0x81000101
counter-index = 0x01500101
pcrs = [7, 0, 4]
)",
                          "t.toml", "/etc/ptpsec");
    ASSERT_TRUE(c) << c.message();
    EXPECT_EQ(c->server->registrar, "/etc/ptpsec/registrar.db");
    ASSERT_EQ(c->clients.size(), 1U);
    EXPECT_EQ(c->clients[0].attest, "node1-tpm");
    ASSERT_TRUE(c->node_attestation);
    EXPECT_EQ(c->node_attestation->tpm.signer_id, "node1-tpm");
    EXPECT_EQ(c->node_attestation->tpm.tcti, "swtpm:host=127.0.0.1,port=2321");
    EXPECT_EQ(c->node_attestation->tpm.key_handle, 0x81000101U);
    EXPECT_EQ(c->node_attestation->tpm.counter_index, 0x01500101U);
    EXPECT_EQ(c->node_attestation->pcrs, (std::vector<unsigned>{0, 4, 7}));
    // The defaults: the TPM resource manager and the signer's default handles.
    auto d = parse_config("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n"
                          "groups = [\"g\"]\n[node.attestation]\nsigner-id = \"n\"\npcrs = [0]\n"
                          "[[group]]\nname = \"g\"\n",
                          "t.toml", "");
    ASSERT_TRUE(d) << d.message();
    EXPECT_EQ(d->node_attestation->tpm.tcti, "device:/dev/tpmrm0");
    EXPECT_EQ(d->node_attestation->tpm.key_handle, hsm::tpm_settings{}.key_handle);
}

TEST(controld_config, every_mistake_is_named_with_its_line) {
    const std::string group = "[[group]]\nname = \"g\"\n";
    const std::string node = "[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n";
    const std::string server = "[server]\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\nstate = \"s\"\n";
    const std::string verifier = "[verifier]\nregistrar = \"r.db\"\naudit = \"sqlite:a.db\"\nlogs = [\"l\"]\n";
    struct bad {
        std::string text;
        std::string says;
    };
    const std::vector<bad> cases = {
        {group + "lifetme = 10\n", "t.toml:3: group[1]: unknown key \"lifetme\""},
        {group + "algorithm = \"md5\"\n", "t.toml:3: group g: algorithm \"md5\": use one of hmac-sha256-128, "},
        {group + "lifetime = 0\n", "t.toml:3: group[1].lifetime = 0: use 1 to 33523200"},
        {group + "lifetime = 100\nupdate-period = 200\n",
         "t.toml:1: group g: update period 200 s: at least 1 s and not more than the lifetime (100 s)"},
        {group + "domain = 256\n", "t.toml:3: group[1].domain = 256: use 0 to 255"},
        {group + "sdo-id = \"x\"\n", "t.toml:3: group[1].sdo-id: expected a number"},
        {"[[group]]\ndomain = 1\n", "t.toml:1: group[1] needs name = \"...\""},
        {group + group, "t.toml: group g is defined twice"},
        {group + "[[client]]\ngroups = [\"g\"]\n", "t.toml:3: client rule 1: names neither a subject nor"},
        {group + "[[client]]\nsubject = \"CN=a\"\ngroups = [\"h\"]\n",
         "t.toml: client[1]: group \"h\" is not defined by any [[group]]"},
        {group + "[[client]]\nsubject = \"CN=a\"\ngroups = \"g\"\n", "t.toml:5: client[1].groups: expected a list"},
        // identity_of() names SANs with their type: a bare name would never match.
        {group + "[[client]]\nsan = \"node1.plant.example\"\ngroups = [\"g\"]\n",
         "t.toml:3: client rule 1: san \"node1.plant.example\": write DNS:NAME, IP:ADDRESS or URI:URI"},
        {"[verifier]\nregistrar = \"r.db\"\naudit = \"sqlit:a.db\"\nlogs = [\"l\"]\n",
         "t.toml:3: verifier.audit: audit store \"sqlit:a.db\": use sqlite:PATH or postgresql:CONNINFO"},
        {"[verifier]\nregistrar = \"r.db\"\naudit = \"a.db\"\nlogs = [\"l\"]\n",
         "t.toml:3: verifier.audit: audit store \"a.db\": use sqlite:PATH or postgresql:CONNINFO"},
        {group + "[[client]]\nsubject = \"CN=a\"\ngrantor = 1\n",
         "t.toml:5: client[1].grantor: expected true or false"},
        {group + "[server]\ncertificate = \"c\"\n", "t.toml:3: [server] needs private-key = \"FILE\""},
        {group + server + "port = 70000\n", "t.toml:8: server.port = 70000: use 0 to 65535"},
        {group + server + "colour = \"red\"\n", "t.toml:8: server: unknown key \"colour\""},
        {group + server + "crl = \"\"\n",
         "t.toml:8: server.crl: give the file of the CRLs of the CAs that issue client certificates (or leave the key "
         "out)"},
        {group + node + "groups = [\"g\"]\ncrl = \"\"\n",
         "t.toml:9: node.crl: give the file of the CRLs of the CAs that issue the KE server's certificate (or leave "
         "the key out)"},
        {group + server + "session-lifetime-s = 86401\n",
         "t.toml:8: server.session-lifetime-s = 86401: use 0 to 86400"},
        {group + server + "handshake-timeout-ms = 0\n", "t.toml:8: server.handshake-timeout-ms = 0: use 1 to 3600000"},
        {group + server + "idle-timeout-ms = 0\n", "t.toml:8: server.idle-timeout-ms = 0: use 1 to 3600000"},
        {server, "t.toml: [server] without any [[group]] or [unicast]: there is nothing to serve"},
        {group + server + "[[client]]\nsubject = \"CN=a\"\ngroups = [\"g\"]\nattest = \"a-tpm\"\n",
         "t.toml: client[1] has attest = \"a-tpm\": the KE server checks Platform Attestations against the Registrar: "
         "add registrar = \"FILE\" to [server]"},
        {group + "[[client]]\nsubject = \"CN=a\"\ngroups = [\"g\"]\nattest = \"\"\n",
         "t.toml:6: client[1].attest: give the signer_id of the client's TPM signer"},
        {group + server + "registrar = \"\"\n", "t.toml:8: server.registrar: give the Registrar's database file"},
        {group + node + "groups = [\"g\"]\n[node.attestation]\npcrs = [0]\n",
         "t.toml:9: [node.attestation] needs signer-id = \"ID\" (1 to 255 characters"},
        {group + node + "groups = [\"g\"]\n[node.attestation]\nsigner-id = \"n\"\n",
         "t.toml:9: [node.attestation] needs pcrs = [N, ...] (the PCR profile the signer was enrolled with"},
        {group + node + "groups = [\"g\"]\n[node.attestation]\nsigner-id = \"n\"\npcrs = [0, 24]\n",
         "t.toml:11: node.attestation.pcrs: PCR indices are 0 to 23"},
        {group + node + "groups = [\"g\"]\n[node.attestation]\nsigner-id = \"n\"\npcrs = [7, 7]\n",
         "t.toml:11: node.attestation.pcrs: PCR 7 is listed twice"},
        {group + node + "groups = [\"g\"]\n[node.attestation]\nsigner-id = \"n\"\npcrs = [0]\nkey-handle = 5\n",
         "t.toml:12: node.attestation.key-handle = 5: use 2164260864 to 2172649471"},
        {group + node + "groups = [\"g\"]\n[node.attestation]\nsigner-id = \"n\"\npcrs = [0]\npcr = 1\n",
         "t.toml:12: node.attestation: unknown key \"pcr\""},
        {"[servr]\n",
         "t.toml:1: unknown key \"servr\" (use [server], [unicast], [node], [verifier], [admin], [[group]] and "
         "[[client]])"},
        {"[unicast]\n", "t.toml:1: [unicast] configures the KE server's ticket-based mode: it needs [server]"},
        {server + "[unicast]\nheartbeat-timeout = 70000\n",
         "t.toml:7: unicast.heartbeat-timeout = 70000: use 0 to 65535"},
        {server + "[unicast]\naead-algorithms = [\"aes-siv-cmac-512\"]\n",
         "[unicast]: the AEAD algorithms must include AEAD_AES_SIV_CMAC_256"},
        {server + "[unicast]\nmac-algorithms = [\"hmac-md5\"]\n",
         "t.toml:7: unicast.mac-algorithms: \"hmac-md5\": use hmac-sha256-128, hmac-sha256, aes-cmac"},
        {server + "[unicast]\nlifetim = 5\n", "t.toml:7: unicast: unknown key \"lifetim\""},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n"),
         "t.toml:1: [node] needs groups = [\"NAME\", ...] (names of [[group]] tables), a "
         "[node.grantor] table or [[node.unicast]] tables"},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[[node.unicast]]\nport-identity = \"001b21fffe000002-1\"\n",
         "t.toml:6: [[node.unicast]] needs grantor = \"ADDRESS\""},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[[node.unicast]]\ngrantor = \"gm1\"\nport-identity = \"001b21fffe000002-1\"\n",
         "t.toml:7: node.unicast[1].grantor = \"gm1\": give an IPv4, IPv6 or MAC address or a PortIdentity"},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[[node.unicast]]\ngrantor = \"10.0.0.1\"\n",
         "t.toml:6: [[node.unicast]] needs port-identity"},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[[node.unicast]]\ngrantor = \"10.0.0.1\"\nport-identity = \"001b21fffe000002-1\"\nmac-algorithms = "
             "[\"aes-cmac\"]\n",
         "node.unicast[1].mac-algorithms must include hmac-sha256-128"},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[node.unicast]\ngrantor = \"10.0.0.1\"\n",
         "t.toml:6: node.unicast: expected tables ([[node.unicast]])"},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[node.grantor]\n",
         "t.toml:6: [node.grantor] needs port-identity"},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[node.grantor]\nport-identity = \"1234-1\"\n",
         "t.toml:7: node.grantor.port-identity = \"1234-1\": write 16 hex digits"},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[node.grantor]\nport-identity = \"001b21fffe000001-1\"\naddresses = [\"10.0.0.300\"]\n",
         "t.toml:8: node.grantor.addresses: \"10.0.0.300\" is no IPv4, IPv6 or MAC address"},
        // sscanf's %2x alone would read "-1" and " 1" as pairs of a MAC address
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[node.grantor]\nport-identity = \"001b21fffe000001-1\"\naddresses = [\"-1:02:03:04:05:06\"]\n",
         "t.toml:8: node.grantor.addresses: \"-1:02:03:04:05:06\" is no IPv4, IPv6 or MAC address"},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[node.grantor]\nport-identity = \"001b21fffe000001-1\"\naddresses = [\"01: 2:03:04:05:06\"]\n",
         "t.toml:8: node.grantor.addresses: \"01: 2:03:04:05:06\" is no IPv4, IPv6 or MAC address"},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[node.grantor]\nport-identity = \"001b21fffe000001-1\"\naddresses = [\"01-02-03-04-05-06\"]\n",
         "t.toml:8: node.grantor.addresses: \"01-02-03-04-05-06\" is no IPv4, IPv6 or MAC address"},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[node.grantor]\nport-identity = \"001b21fffe000001-1\"\naddresses = [\"10.0.0.1\", \"10.0.0.2\"]\n",
         "one address of each kind"},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[node.grantor]\nport-identity = \"001b21fffe000001-1\"\nmac-algorithms = [\"aes-cmac\"]\n",
         "node.grantor.mac-algorithms must include hmac-sha256-128"},
        {"[admin]\nsocket = \"\"\n",
         "t.toml:2: admin.socket: give a path (enabled = false turns the admin socket off)"},
        {"[admin]\nsocket = 7\n", "t.toml:2: admin.socket: expected a string"},
        {"[admin]\nenabled = \"no\"\n", "t.toml:2: admin.enabled: expected true or false"},
        {"[admin]\nsockett = \"/run/x.sock\"\n", "t.toml:2: admin: unknown key \"sockett\""},
        {"[admin]\nsocket = \"/run/" + std::string(110, 'x') + "\"\n", "t.toml:2: admin.socket: /run/xxx"},
        {"[admin]\nsocket = \"/run/" + std::string(110, 'x') + "\"\n",
         " has 115 characters; a Unix socket path has at most 107"},
        {"admin = 1\n", "t.toml:1: admin: expected a table ([admin])"},
        {"admin-socket = \"/run/x.sock\"\n",
         "t.toml:1: admin-socket: write it as socket = \"PATH\" in an [admin] table"},
        {group + "[node]\nport = 4460\n", "t.toml:3: [node] needs server = \"HOST\""},
        {group + node + "groups = [\"h\"]\n", "t.toml:3: node: group \"h\" is not defined by any [[group]]"},
        {group + node, "t.toml:3: [node] needs groups = [\"NAME\", ...]"},
        {group + node + "groups = [\"g\"]\nretry-min-ms = 5000\nretry-max-ms = 1000\n",
         "t.toml:3: [node] retry-max-ms (1000) is below retry-min-ms (5000)"},
        {group + node + "groups = [\"g\"]\nrefresh-interval = 86401\n",
         "t.toml:9: node.refresh-interval = 86401: use 0 to 86400"},
        {"[[group]\nname = 1\n", "t.toml:1:"},
        {verifier + "ek-ca = \"vendors.pem\"\n",
         "t.toml:1: [verifier] ek-ca = \"FILE\" and ek-crl = \"FILE\" go together"},
        {verifier + "ek-crl = \"vendors.crl\"\n", "ek-ca = \"FILE\" and ek-crl = \"FILE\" go together"},
        {verifier + "ek-ca = \"\"\nek-crl = \"vendors.crl\"\n", "ek-ca = \"FILE\" and ek-crl = \"FILE\" go together"},
        {verifier + "ek-ca = \"v.pem\"\nek-crl = \"v.crl\"\nek-check-interval = 59\n",
         "t.toml:7: verifier.ek-check-interval = 59: use 60 to 86400"},
        {verifier + "challenge = [\"dp-a\"]\n[verifier.challenge-signers]\ndp-b = \"gm-b\"\n",
         "t.toml:7: verifier.challenge-signers.dp-b: no data plane with that file prefix is in challenge = [...]"},
        {verifier + "challenge = [\"dp-a\"]\n[verifier.challenge-signers]\ndp-a = 7\n",
         "t.toml:7: verifier.challenge-signers.dp-a: expected the signer_id that data plane signs as"},
        {verifier + "challenge-signers = [\"dp-a\"]\n",
         "t.toml:5: verifier.challenge-signers: expected a table ([verifier.challenge-signers])"},
        {"[verifier]\naudit = \"sqlite:a.db\"\nlogs = [\"l\"]\n",
         "t.toml:1: [verifier] needs registrar = \"FILE\" (the Registrar's database"},
        {"[verifier]\nregistrar = \"r.db\"\nlogs = [\"l\"]\n",
         "t.toml:1: [verifier] needs audit = \"sqlite:FILE\" or \"postgresql:CONNINFO\""},
        {"[verifier]\nregistrar = \"r.db\"\naudit = \"sqlite:a.db\"\n",
         "t.toml:1: [verifier] needs logs = [\"DIR\", ...] (the data planes' --attest-log directories)"},
        {"[verifier]\nregistrar = \"r.db\"\naudit = \"sqlite:a.db\"\nlogs = [\"l\", 7]\n",
         "t.toml:4: verifier.logs: expected a list of strings"},
        {verifier + "log-name = \"evidence.5\"\n",
         "t.toml:1: [verifier] log-name: evidence log: the base name 'evidence.5' ends in .5, which reads as a "
         "rotated file's number of 'evidence'"},
        {verifier + "nonce-interval = 30\nnonce-ttl = 30\n",
         "t.toml:1: [verifier] nonce-ttl = 30 must be longer than nonce-interval = 30"},
        {group + "[node]\nserver = \"ke\"\ncertificate = \"c\"\nca = \"a\"\ngroups = [\"g\"]\n",
         "t.toml:3: [node] needs private-key = \"FILE\""},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[[node.unicast]]\ngrantor = \"10.0.0.1\"\nport-identity = \"001b21fffe00000-1\"\n",
         "t.toml:8: node.unicast[1].port-identity = \"001b21fffe00000-1\": write 16 hex digits, '-', the port "
         "number"},
        {std::string("[node]\nserver = \"ke\"\ncertificate = \"c\"\nprivate-key = \"k\"\nca = \"a\"\n") +
             "[node.grantor]\nport-identity = \"001b21fffe000001-1\"\naead-algorithms = [\"aes-siv-cmac-512\"]\n",
         "t.toml:6: node.grantor.aead-algorithms must include aes-siv-cmac-256 (seeds/001 §4.2.1)"},
        {"server = 1\n", "t.toml:1: server: expected a table ([server])"},
        {"node = \"ke\"\n", "t.toml:1: node: expected a table ([node])"},
        {"verifier = []\n", "t.toml:1: verifier: expected a table ([verifier])"},
        {"unicast = true\n", "t.toml:1: unicast: expected a table ([unicast])"},
        {"group = \"g\"\n", "t.toml:1: group: expected tables ([[group]])"},
        {"[client]\nsubject = \"CN=a\"\n", "t.toml:1: client: expected tables ([[client]])"},
    };
    for (const auto& c : cases) {
        auto r = parse_config(c.text, "t.toml");
        ASSERT_FALSE(r) << c.says;
        EXPECT_NE(r.message().find(c.says), std::string::npos) << "got: " << r.message() << "\nwant: " << c.says;
    }
    auto missing = load_config("/nonexistent/controld.toml");
    ASSERT_FALSE(missing);
    EXPECT_EQ(missing.message(), "/nonexistent/controld.toml: cannot read it: No such file or directory");
    // A directory opens but does not read: named, not read as an empty file.
    auto directory = load_config("/tmp");
    ASSERT_FALSE(directory);
    EXPECT_EQ(directory.message(), "/tmp: cannot read it: Is a directory");
    auto endless = load_config("/dev/zero");
    ASSERT_FALSE(endless);
    EXPECT_EQ(endless.message(), "/dev/zero: more than 16777216 octets, too large for this file");
}

} // namespace
} // namespace ptpsec::controld
