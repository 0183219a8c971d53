// Swap file names (swap_file.h): what a fresh name holds, that the parser
// takes exactly what ToString writes and nothing else, and how a name's
// owner is judged alive or gone.
#include "swap_file.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <string>
#include <vector>

#include "process_id.h"

namespace pager {
namespace {

constexpr const char* kHex = "0123456789abcdef0123456789abcdef";

SwapFileName Name(std::string host, pid_t pid, uint64_t start, uint64_t ns, std::string random = kHex) {
  SwapFileName n;
  n.host = std::move(host);
  n.pid = pid;
  n.start_time = start;
  n.pid_ns = ns;
  n.random = std::move(random);
  return n;
}

TEST(SwapFileName, FreshNameIsThisProcessWithRandomBits) {
  auto a = NewSwapFileName();
  ASSERT_TRUE(a.ok()) << a.status().message();
  const ProcessIdentity me = ThisProcess();
  EXPECT_EQ(a->host, SwapFileHost());
  EXPECT_EQ(a->pid, getpid());
  EXPECT_EQ(a->start_time, me.start_time);
  EXPECT_NE(a->start_time, 0u) << "/proc/self/stat gave no start time";
  EXPECT_EQ(a->pid_ns, me.pid_ns);
  EXPECT_EQ(a->random.size(), 32u);
  // 128 random bits: a thousand names never repeat.
  std::set<std::string> seen;
  for (int i = 0; i < 1000; i++) seen.insert(NewSwapFileName()->random);
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(SwapFileName, ParseIsTheInverseOfToString) {
  auto fresh = NewSwapFileName();
  ASSERT_TRUE(fresh.ok());
  for (const SwapFileName& n :
       {*fresh, Name("vm", 1, 0, 0), Name("my-build-host-01", 4194304, 18446744073709551615ull, 4026531836),
        Name("a.b_c-d", 77, 123, 456, "ffffffffffffffffffffffffffffffff"), Name("7-8-9", 12, 34, 56)}) {
    const std::string s = n.ToString();
    SwapFileName back;
    ASSERT_TRUE(ParseSwapFileName(s, &back)) << s;
    EXPECT_EQ(back, n) << s;
    EXPECT_EQ(back.ToString(), s);
    EXPECT_EQ(s, back.Stem() + ".swap");
  }
}

TEST(SwapFileName, RejectsEverythingElse) {
  const std::string good = Name("vm", 1234, 5678, 4026531836).ToString();
  SwapFileName n;
  ASSERT_TRUE(ParseSwapFileName(good, &n));
  const std::string hex(kHex);
  const std::vector<std::string> bads = {
           "libpager-vm-1234-0.swap",  // the old format
           "libpager-otherhost-1234-0.swap",        // another host's, our pid inside
           "libpager-vm-1234-5678-4026531836-" + hex,               // no suffix
           "libpager-vm-1234-5678-4026531836-" + hex + ".swap.tmp",
           "libpager-vm-1234-5678-4026531836-" + hex + ".swp",
           "xlibpager-vm-1234-5678-4026531836-" + hex + ".swap",
           "libpagervm-1234-5678-4026531836-" + hex + ".swap",
           " " + good, good + " ", "/tmp/" + good, good + "/",
           "libpager--1234-5678-4026531836-" + hex + ".swap",       // empty host
           "libpager-1234-5678-4026531836-" + hex + ".swap",        // no host at all
           "libpager-v m-1234-5678-4026531836-" + hex + ".swap",    // a byte a host never has
           "libpager-v/m-1234-5678-4026531836-" + hex + ".swap",
           "libpager-" + std::string(65, 'h') + "-1234-5678-4026531836-" + hex + ".swap",
           "libpager-vm-01234-5678-4026531836-" + hex + ".swap",    // not canonical
           "libpager-vm-+1234-5678-4026531836-" + hex + ".swap",
           "libpager-vm-0-5678-4026531836-" + hex + ".swap",        // no pid 0
           "libpager-vm-4194305-5678-4026531836-" + hex + ".swap",  // past PID_MAX_LIMIT
           "libpager-vm-1234--4026531836-" + hex + ".swap",
           "libpager-vm-1234-18446744073709551616-1-" + hex + ".swap",  // 2^64
           "libpager-vm-1234-5678-0x10-" + hex + ".swap",
           "libpager-vm-1234-5678-4026531836-" + hex.substr(1) + ".swap",
           "libpager-vm-1234-5678-4026531836-" + hex + "0.swap",
           "libpager-vm-1234-5678-4026531836-0123456789ABCDEF0123456789abcdef.swap",
           "libpager-vm-1234-5678-4026531836-0123456789abcdeg0123456789abcdef.swap",
           "libpager-vm-1234-5678-" + hex + ".swap",                // a field missing
           "libpager-.swap", ".swap", "",
  };
  for (const std::string& bad : bads) {
    EXPECT_FALSE(ParseSwapFileName(bad, &n)) << "took '" << bad << "'";
  }
}

// A name is compared whole, never searched for a pid: our pid inside
// another host's name, or inside a host name, is not ours.
TEST(SwapFileName, AnotherNameHoldingOurPidIsNotOurs) {
  const std::string pid = std::to_string(getpid());
  const SwapFileName ours = *NewSwapFileName();
  SwapFileName n;
  ASSERT_TRUE(ParseSwapFileName("libpager-otherhost-" + pid + "-1-2-" + kHex + ".swap", &n));
  EXPECT_EQ(n.host, "otherhost");
  EXPECT_NE(n, ours);
  ASSERT_TRUE(ParseSwapFileName("libpager-x-" + pid + "-y-7-1-2-" + kHex + ".swap", &n));
  EXPECT_EQ(n.host, "x-" + pid + "-y");
  EXPECT_EQ(n.pid, 7);
}

// ---- owners ----------------------------------------------------------------

SwapFile::Owner Judge(const SwapFileName& n) {
  std::string why;
  SwapFile::Owner o = JudgeOwner(n, &why);
  EXPECT_FALSE(why.empty());
  return o;
}

TEST(SwapFileOwner, OwnNameIsLive) { EXPECT_EQ(Judge(*NewSwapFileName()), SwapFile::Owner::kLive); }

TEST(SwapFileOwner, GonePidOrAnotherStartTimeIsGone) {
  SwapFileName n = *NewSwapFileName();
  pid_t child = fork();
  if (child == 0) _exit(0);
  ASSERT_GT(child, 0);
  waitpid(child, nullptr, 0);
  n.pid = child;  // reaped: gone (a new process reusing it this fast has another start time)
  EXPECT_EQ(Judge(n), SwapFile::Owner::kGone);
  n = *NewSwapFileName();
  n.start_time += 1;  // our pid, another process's start
  std::string why;
  EXPECT_EQ(JudgeOwner(n, &why), SwapFile::Owner::kGone);
  EXPECT_NE(why.find("another process"), std::string::npos) << why;
  n.start_time = 0;  // a name made without /proc: cannot be compared
  EXPECT_EQ(Judge(n), SwapFile::Owner::kUnknown);
}

TEST(SwapFileOwner, AnotherHostsIsUnknownEvenWithOurPid) {
  SwapFileName n = *NewSwapFileName();
  n.host = SwapFileHost() + "x";
  EXPECT_EQ(Judge(n), SwapFile::Owner::kUnknown);
}

// pid 1 of a PID namespace that no longer exists: gone, when this process
// can see every process of the host (root in the initial namespace);
// otherwise it cannot tell.
TEST(SwapFileOwner, VanishedPidNamespaceIsGoneOnlyWhenAllIsVisible) {
  SwapFileName n = *NewSwapFileName();
  n.pid = 1;
  n.pid_ns = 1234;  // no namespace has this inode (they start near 2^32)
  const bool sees_all = getuid() == 0 && ThisProcess().pid_ns == 0xEFFFFFFCu;
  EXPECT_EQ(Judge(n), sees_all ? SwapFile::Owner::kGone : SwapFile::Owner::kUnknown);
  n.pid_ns = 0;  // unknown namespace
  EXPECT_EQ(Judge(n), SwapFile::Owner::kUnknown);
}

}  // namespace
}  // namespace pager
