#include "daemon/base/sha256.h"

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace devmem {
namespace {

// FIPS 180-4 examples (NIST CSRC "SHA256.pdf") and the empty message.
TEST(Sha256Test, KnownAnswers) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(
      Sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
      "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// RFC 4231 test cases 1, 2 and 6 (a key longer than the block).
TEST(Sha256Test, HmacKnownAnswers) {
  EXPECT_EQ(HmacSha256Hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(HmacSha256Hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(HmacSha256Hex(std::string(131, '\xaa'),
                          "Test Using Larger Than Block-Size Key - Hash Key "
                          "First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

// Every length around the block and padding boundaries (55, 56, 63, 64, ...)
// against coreutils' sha256sum, an independent implementation.
TEST(Sha256Test, MatchesSha256sumAtEveryPaddingBoundary) {
  if (std::system("command -v sha256sum >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "sha256sum is not installed";
  }
  const std::string dir = std::getenv("TEST_TMPDIR");
  for (size_t len = 0; len <= 200; ++len) {
    std::string data;
    for (size_t i = 0; i < len; ++i) {
      data.push_back(static_cast<char>((i * 131 + len * 7) & 0xff));
    }
    const std::string in = dir + "/in";
    std::ofstream(in, std::ios::binary) << data;
    const std::string cmd = "sha256sum " + in;
    FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    char out[65] = {};
    ASSERT_EQ(std::fread(out, 1, 64, p), 64u);
    ASSERT_EQ(::pclose(p), 0);
    EXPECT_EQ(Sha256Hex(data), std::string(out, 64)) << "length " << len;
  }
}

}  // namespace
}  // namespace devmem
