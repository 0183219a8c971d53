// Integrity and the kernel's quirks: a corrupt or missing swap copy raises
// SIGBUS with a log line naming the address, never silent garbage; an install
// that meets EEXIST still wakes its thread; a missing userfaultfd right is a
// clear error.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <thread>

#include "tampering.h"
#include "test_util.h"
#include "uffd.h"

namespace pager::testing {
namespace {

constexpr uint64_t kLimit = 256;
constexpr size_t kPages = kLimit * 4;

// In a death-test child: pages out a region, corrupts page 0's copy through
// `corrupt`, then touches page 0.
template <class Corrupt>
void TouchCorruptedPage(const char* disable, Corrupt corrupt) {
  auto t = MakePager(kLimit, disable);
  auto* p = static_cast<unsigned char*>(*t.pager->Map(kPages * kPageSize));
  for (size_t i = 0; i < kPages; i++) FillPage(p + i * kPageSize, i, 1);
  t.pager->Sync();
  corrupt(t);
  volatile unsigned char c = p[0];
  (void)c;
  fprintf(stderr, "read a corrupted page without SIGBUS\n");
  _exit(0);
}

class Integrity : public ::testing::TestWithParam<const char*> {};

TEST_P(Integrity, CorruptSwapCopyRaisesSigbusNamingTheAddress) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(TouchCorruptedPage(GetParam(),
                                 [](TestPager& t) {
                                   for (uint64_t s = 0; s < t.store->slots_allocated(); s++) t.store->Corrupt(s);
                                 }),
              ::testing::KilledBySignal(SIGBUS), "page at 0x[0-9a-f]+ .*checksum mismatch.*SIGBUS");
}

TEST_P(Integrity, UnreadableSwapCopyRaisesSigbus) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // A store that lost its data (a truncated file): reads fail with EIO.
  EXPECT_EXIT(TouchCorruptedPage(GetParam(), [](TestPager& t) { t.store->Stop(); }),
              ::testing::KilledBySignal(SIGBUS), "page at 0x[0-9a-f]+ .*swap-in failed.*SIGBUS");
}

// Without UFFDIO_POISON (kernels before 6.6) the SIGBUS is sent by hand.
INSTANTIATE_TEST_SUITE_P(Modes, Integrity, ::testing::Values("", "poison"),
                         [](const auto& info) { return std::string(info.param).empty() ? "Poison" : "Tgkill"; });

// ---- A store that lies ------------------------------------------------------
//
// Issue 10: pages altered in the store, moved to another slot, or replayed
// from an older write (tests/tampering.h). With encryption the GCM tag
// catches all three (the slot and the write's generation are the nonce);
// without, the checksum does (for accidents, not attacks: docs/security.md).

class MemorySlots : public SlotEditor {
 public:
  explicit MemorySlots(MemoryStore& store) : store_(store) {}
  std::vector<std::byte> Read(uint64_t slot) override { return store_.ReadSlot(slot); }
  void Write(uint64_t slot, const std::vector<std::byte>& bytes) override { store_.WriteSlot(slot, bytes); }

 private:
  MemoryStore& store_;
};

class Tampering : public ::testing::TestWithParam<const char*> {};

TEST_P(Tampering, AlteredMovedAndReplayedPagesRaiseSigbusTheRestReadBack) {
  ASSERT_TRUE(FinishesWithin(60, [&] {
    auto t = MakePager(kLimit, GetParam());
    MemorySlots slots(*t.store);
    auto result = TamperedPagesRaiseSigbusTheRestReadBack(*t.pager, slots, kPages);
    if (!result) fprintf(stderr, "%s\n", result.message());
    return static_cast<bool>(result);
  }));
}

INSTANTIATE_TEST_SUITE_P(Seals, Tampering, ::testing::Values("encrypt", ""),
                         [](const auto& info) { return std::string(info.param).empty() ? "Checksum" : "Encrypted"; });

// A directory for the death-test children's swap files.
struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/pager-integrity-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::string cmd = "rm -rf " + path;
    if (system(cmd.c_str()) != 0) fprintf(stderr, "could not remove %s\n", path.c_str());
  }
  std::string path;
};

// In a death-test child: pages a region out to a swap file in `dir`, damages
// the file with `damage(path)`, then touches page 0.
template <class Damage>
void TouchAfterDamagingSwapFile(const std::string& dir, Damage damage) {
  auto store = OpenStore(dir, 0, 0);
  Store* raw = store->get();
  auto pr = Pager::Create(TestConfig(kLimit), std::move(*store));
  std::string path = SwapFd(*raw);  // the file is unlinked: reach it through our fd
  auto* p = static_cast<unsigned char*>(*(*pr)->Map(kPages * kPageSize));
  for (size_t i = 0; i < kPages; i++) FillPage(p + i * kPageSize, i, 1);
  (*pr)->Sync();
  if (!damage(path)) _exit(3);
  volatile unsigned char x = p[0];
  (void)x;
  _exit(0);
}

TEST(IntegrityFile, CorruptedSwapFileRaisesSigbus) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir dir;
  EXPECT_EXIT(TouchAfterDamagingSwapFile(dir.path,
                                         [](const std::string& path) {
                                           int fd = open(path.c_str(), O_RDWR);
                                           std::vector<char> junk(1 << 20, 0x5a);
                                           bool ok = fd >= 0 && pwrite(fd, junk.data(), junk.size(), 0) ==
                                                                    static_cast<ssize_t>(junk.size());
                                           close(fd);
                                           return ok;
                                         }),
              ::testing::KilledBySignal(SIGBUS), "checksum mismatch");
}

TEST(IntegrityFile, TruncatedSwapFileRaisesSigbus) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  TempDir dir;
  EXPECT_EXIT(TouchAfterDamagingSwapFile(dir.path,
                                         [](const std::string& path) { return truncate(path.c_str(), 0) == 0; }),
              ::testing::KilledBySignal(SIGBUS), "swap-in failed");
}

// The kernel quirk: an install that fails with EEXIST leaves the faulting
// thread asleep. Uffd::Copy must wake it.
TEST(UffdQuirks, EexistOnInstallStillWakesTheFaultingThread) {
  auto uffd = Uffd::Open("");
  ASSERT_TRUE(uffd.ok()) << uffd.status().message();
  void* mem = mmap(nullptr, kPageSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(mem, MAP_FAILED);
  ASSERT_TRUE(uffd->Register(mem, kPageSize).ok());
  auto toucher = std::async(std::launch::async, [mem] { return static_cast<volatile unsigned char*>(mem)[0]; });
  // Wait for the fault message, then install without waking (as a first,
  // lost install would), then install again through the wrapper.
  pollfd pfd{uffd->fd(), POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 5000), 1);
  uffd_msg msg;
  ASSERT_EQ(uffd->Read(&msg, 1), 1);
  alignas(4096) static unsigned char src[kPageSize] = {42};
  uffdio_copy c{};
  c.dst = reinterpret_cast<uintptr_t>(mem);
  c.src = reinterpret_cast<uintptr_t>(src);
  c.len = kPageSize;
  c.mode = UFFDIO_COPY_MODE_DONTWAKE;
  ASSERT_EQ(ioctl(uffd->fd(), UFFDIO_COPY, &c), 0);
  ASSERT_EQ(toucher.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout)
      << "DONTWAKE must leave the thread asleep, or this test proves nothing";
  UffdRun r = uffd->Copy(reinterpret_cast<uintptr_t>(mem), src, 1);
  EXPECT_EQ(r.done, 1u);
  ASSERT_EQ(toucher.wait_for(std::chrono::seconds(5)), std::future_status::ready)
      << "the faulting thread was not woken after EEXIST";
  EXPECT_EQ(toucher.get(), 42);
  uffd->Unregister(mem, kPageSize);
  munmap(mem, kPageSize);
}

TEST(Permissions, NoUserfaultfdRightIsAClearError) {
  // A child that is not root, without CAP_SYS_PTRACE, with the default
  // vm.unprivileged_userfaultfd=0 and /dev/userfaultfd root-only.
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
    auto p = Pager::Create(TestConfig(kLimit));
    std::string msg = p.ok() ? "created" : p.status().message();
    ssize_t w = write(fds[1], msg.data(), msg.size());
    (void)w;
    _exit(p.ok() ? 1 : 0);
  }
  close(fds[1]);
  char buf[1024] = {};
  ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  std::string msg(buf, n > 0 ? n : 0);
  if (msg == "created") {
    GTEST_SKIP() << "this machine lets unprivileged users handle kernel faults "
                    "(vm.unprivileged_userfaultfd=1 or /dev/userfaultfd open to all)";
  }
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(msg.find("userfaultfd: permission denied"), std::string::npos) << msg;
  EXPECT_NE(msg.find("/dev/userfaultfd"), std::string::npos) << msg;
  EXPECT_NE(msg.find("vm.unprivileged_userfaultfd=1"), std::string::npos) << msg;
}

}  // namespace
}  // namespace pager::testing
