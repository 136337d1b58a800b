// drivers/base/file.h: whole files read with read(2), and the form of the
// message for each way a file cannot be read. read_regular_file takes
// regular files alone and never opens anything else: each kind of file
// that is not one is named.

#include <drivers/base/file.h>

#include "../process.h"

#include <gtest/gtest.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ptpsec {
namespace {

std::string not_regular(const std::string& path, const char* kind) {
    return fmt::format("evidence log {}: not a regular file but {}, whose reading need not end (give a file: a "
                       "copy of what it gives)",
                       path, kind);
}

/// A block device node under /dev, if the machine has one.
std::optional<std::string> some_block_device() {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator("/dev", ec)) {
        struct stat st {};
        if (::stat(e.path().c_str(), &st) == 0 && S_ISBLK(st.st_mode)) {
            return e.path().string();
        }
    }
    return std::nullopt;
}

TEST(file, a_regular_file_reads_whole_and_every_other_kind_is_named) {
    test::temp_dir dir;
    const std::string file = dir.file("log.cbor");
    std::string content(200'000, '\0');
    for (size_t i = 0; i < content.size(); ++i) {
        content[i] = static_cast<char>(i * 7);
    }
    test::write_file(file, content);
    auto whole = read_regular_file("evidence log", file);
    ASSERT_TRUE(whole) << whole.message();
    EXPECT_EQ(std::string(whole->begin(), whole->end()), content);
    EXPECT_TRUE(check_regular_file("evidence log", file));

    const std::string missing = dir.file("missing.cbor");
    EXPECT_EQ(read_regular_file("evidence log", missing).message(),
              "evidence log " + missing + ": cannot read it: No such file or directory");
    EXPECT_EQ(check_regular_file("", dir.path().string()).message(),
              dir.path().string() + ": cannot read it: Is a directory");

    // A pipe: opening it would wait for a writer, reading it need not end.
    const std::string fifo = dir.file("pipe.cbor");
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    // A socket cannot be opened at all; it is named as what it is.
    const std::string sock_path = dir.file("sock.cbor");
    const int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(sock, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    ASSERT_LT(sock_path.size(), sizeof(addr.sun_path));
    sock_path.copy(addr.sun_path, sock_path.size());
    ASSERT_EQ(::bind(sock, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)), 0);
    std::vector<std::pair<std::string, const char*>> kinds{
        {"/dev/zero", "a character device"}, {fifo, "a pipe"}, {sock_path, "a socket"}};
    // Never opened, so even a disk is safe to name here.
    if (const auto block = some_block_device()) {
        kinds.emplace_back(*block, "a block device");
    }
    for (const auto& [path, kind] : kinds) {
        EXPECT_EQ(read_regular_file("evidence log", path).message(), not_regular(path, kind)) << path;
        EXPECT_EQ(check_regular_file("evidence log", path).message(), not_regular(path, kind)) << path;
    }
    ::close(sock);
}

TEST(file, a_named_file_stops_at_its_limit) {
    // /dev/zero has no end: the limit is the refusal.
    const auto endless = read_named_file("--config", "/dev/zero", 100'000);
    ASSERT_FALSE(endless);
    EXPECT_EQ(endless.message(), "--config /dev/zero: more than 100000 octets, too large for this file");
    test::temp_dir dir;
    const std::string file = dir.file("a.toml");
    test::write_file(file, std::string(100'000, 'x'));
    const auto exact = read_named_file("--config", file, 100'000);
    ASSERT_TRUE(exact) << exact.message();
    EXPECT_EQ(exact->size(), 100'000U);
    EXPECT_EQ(read_named_file("--config", file, 99'999).message(),
              "--config " + file + ": more than 99999 octets, too large for this file");
    EXPECT_EQ(read_text_file("", dir.file("none.toml")).message(),
              dir.file("none.toml") + ": cannot read it: No such file or directory");
}

} // namespace
} // namespace ptpsec
