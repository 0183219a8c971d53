#include "tampering.h"

#include <setjmp.h>
#include <signal.h>

#include <cstdio>

#include "test_hooks.h"
#include "test_util.h"

namespace pager::testing {
namespace {

sigjmp_buf g_bus_jump;
void OnBus(int) { siglongjmp(g_bus_jump, 1); }

// Reads the page at `p`: true if that raised SIGBUS.
bool RaisesSigbus(const unsigned char* p) {
  if (sigsetjmp(g_bus_jump, 1) != 0) return true;
  volatile unsigned char c = p[0];
  (void)c;
  return false;
}

}  // namespace

::testing::AssertionResult TamperedPagesRaiseSigbusTheRestReadBack(Pager& pager, SlotEditor& editor,
                                                                    size_t pages) {
  auto mem = pager.Map(pages * kPageSize);
  if (!mem.ok()) return ::testing::AssertionFailure() << "Map: " << mem.status().message();
  auto* p = static_cast<unsigned char*>(*mem);
  auto page = [p](size_t i) { return p + i * kPageSize; };
  auto slot = [&](size_t i) { return static_cast<uint64_t>(PagerTestPeer::SlotOf(pager, page(i))); };
  auto swapped = [&](size_t i) { return PagerTestPeer::StateOf(pager, page(i)) == PageState::kSwapped; };
  const size_t replayed = 10, altered = 20, a = 30, b = 40;

  FillPages(p, pages, 1);
  pager.Sync();
  Settle(pager);
  // Replay: page 10's first copy, kept; the page written again and evicted
  // again (by writing the second half); its old copy put back where the new
  // one went.
  if (!swapped(replayed)) return ::testing::AssertionFailure() << "page " << replayed << " is not swapped out";
  const std::vector<std::byte> old_copy = editor.Read(slot(replayed));
  FillPage(page(replayed), replayed, 2);
  for (size_t i = pages / 2; i < pages; i++) FillPage(page(i), i, 2);
  pager.Sync();
  Settle(pager);
  for (size_t i : {replayed, altered, a, b}) {
    if (!swapped(i)) return ::testing::AssertionFailure() << "page " << i << " is not swapped out";
  }
  editor.Write(slot(replayed), old_copy);
  std::vector<std::byte> bytes = editor.Read(slot(altered));
  bytes[kPageSize / 2] ^= std::byte{1};
  editor.Write(slot(altered), bytes);
  const std::vector<std::byte> copy_a = editor.Read(slot(a)), copy_b = editor.Read(slot(b));
  editor.Write(slot(a), copy_b);
  editor.Write(slot(b), copy_a);

  struct sigaction on_bus {};
  on_bus.sa_handler = OnBus;
  sigaction(SIGBUS, &on_bus, nullptr);
  ::testing::AssertionResult result = ::testing::AssertionSuccess();
  size_t wrong = 0;
  for (size_t i = 0; i < pages; i++) {
    const bool tampered = i == replayed || i == altered || i == a || i == b;
    const bool bus = RaisesSigbus(page(i));
    const uint64_t version = i == replayed || i >= pages / 2 ? 2 : 1;
    if (bus == tampered && (bus || CheckPage(page(i), i, version))) continue;
    if (wrong++ == 0) result = ::testing::AssertionFailure();
    result << "page " << i << ": "
           << (bus        ? "SIGBUS, but it was not tampered with"
               : tampered ? "tampered with, but read without SIGBUS"
                          : "wrong bytes")
           << "\n";
  }
  signal(SIGBUS, SIG_DFL);
  Settle(pager);
  const uint64_t failures = pager.GetStats().checksum_failures;
  if (failures != 4) {
    if (wrong == 0) result = ::testing::AssertionFailure();
    result << failures << " pages failed their check, not 4";
  }
  return result;
}

}  // namespace pager::testing
