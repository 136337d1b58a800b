// The PCR profile file of `registrar enrol --expected-pcrs` and `registrar
// update-profile`: the forms it takes (tpm2_pcrread's output among them)
// and a test per refusal, each naming the line.

#include <control/verifier/pcr_profile.h>

#include "helpers.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace ptpsec::verifier {
namespace {

const std::string zeros(64, '0');
const std::string ones = "0x" + std::string(64, 'f');

std::vector<uint8_t> filled(uint8_t octet) {
    return std::vector<uint8_t>(32, octet);
}

void expect_refused(std::string_view text, std::string_view says) {
    const auto r = parse_pcr_profile(text, "expected PCR file p.txt");
    ASSERT_FALSE(r.ok()) << "accepted: " << text;
    EXPECT_NE(r.message().find(says), std::string::npos) << r.message();
}

TEST(pcr_profile, takes_index_value_lines_in_the_forms_operators_write_them) {
    const std::string text = "# the boot chain of gm-observer-1\n"
                             "0 " +
                             zeros + "\n" +
                             "\n"
                             "1: " +
                             ones + "   # firmware\r\n" + "2=" + std::string(64, 'A') + "\n" + "\t7\t" + zeros + "\n";
    const auto r = parse_pcr_profile(text, "expected PCR file p.txt");
    ASSERT_TRUE(r.ok()) << r.message();
    const hsm::pcr_values want{{0, filled(0x00)}, {1, filled(0xff)}, {2, filled(0xaa)}, {7, filled(0x00)}};
    EXPECT_EQ(*r, want);
}

TEST(pcr_profile, takes_tpm2_pcrread_output_as_it_is) {
    // tpm2-tools 5.4: `tpm2_pcrread sha256:0,7`
    const std::string text = "  sha256:\n"
                             "    0 : 0x" +
                             std::string(64, '1') + "\n" + "    7 : 0x" + std::string(64, 'B') + "\n";
    const auto r = parse_pcr_profile(text, "expected PCR file p.txt");
    ASSERT_TRUE(r.ok()) << r.message();
    const hsm::pcr_values want{{0, filled(0x11)}, {7, filled(0xbb)}};
    EXPECT_EQ(*r, want);
}

TEST(pcr_profile, every_refusal_names_the_file_the_line_and_what_is_wrong) {
    expect_refused("0 " + zeros + "\nx7 " + zeros + "\n",
                   "expected PCR file p.txt line 2: the index 'x7' is not a number");
    expect_refused("-1 " + zeros, "line 1: the index '-1' is not a number");
    expect_refused("24 " + zeros,
                   "line 1: PCR 24 is out of range; each line is \"INDEX SHA256-HEX\" with an index 0-23");
    expect_refused("99999999999 " + zeros, "line 1: the index '99999999999' is not a number");
    expect_refused("7 " + std::string(63, '0'), "line 1: the value of PCR 7 is not hex");
    expect_refused("7 " + std::string(62, '0') + "zz", "line 1: the value of PCR 7 is not hex");
    expect_refused("7 " + std::string(40, '0'), "line 1: the value of PCR 7 has 20 octets, not 32 (SHA-256)");
    expect_refused("7 " + zeros + " boot", "line 1: more than an index and a value");
    expect_refused("0 " + zeros + "\n0: " + zeros, "line 2: PCR 0 is given twice");
    expect_refused("", "expected PCR file p.txt names no PCR");
    expect_refused("# nothing yet\n  sha256:\n", "names no PCR");
}

TEST(pcr_profile, a_file_that_cannot_be_read_is_named_with_the_reason) {
    test::temp_dir dir;
    const auto missing = read_pcr_profile(dir.file("none.txt"));
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.message(),
              "expected PCR file " + dir.file("none.txt") + ": cannot read it: No such file or directory");
    // A directory opens but does not read: an error, not an exception.
    const auto directory = read_pcr_profile(dir.path().string());
    ASSERT_FALSE(directory.ok());
    EXPECT_EQ(directory.message(), "expected PCR file " + dir.path().string() + ": cannot read it: Is a directory");
    // A file without end is read up to a limit, not until memory runs out.
    const auto endless = read_pcr_profile("/dev/zero");
    ASSERT_FALSE(endless.ok());
    EXPECT_EQ(endless.message(), "expected PCR file /dev/zero: more than 16777216 octets, too large for this file");
    {
        std::ofstream out(dir.file("p.txt"));
        out << "7 " << zeros << "\n7 " << zeros << "\n";
    }
    const auto twice = read_pcr_profile(dir.file("p.txt"));
    ASSERT_FALSE(twice.ok());
    EXPECT_NE(twice.message().find("expected PCR file " + dir.file("p.txt") + " line 2: PCR 7 is given twice"),
              std::string::npos)
        << twice.message();
}

} // namespace
} // namespace ptpsec::verifier
