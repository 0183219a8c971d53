// The userfaultfd contract, part 6: what the kernel does to a thread's
// memory as the thread exits. glibc asks the kernel (CLONE_CHILD_CLEARTID)
// to clear the thread's tid word in its control block and wake pthread_join;
// the control block sits at the top of the thread's stack, so a thread whose
// stack is paged has it in a registered range.
//
// Kernel code read for this test (v6.18-era): kernel/fork.c mm_release()
// (put_user(0, tsk->clear_child_tid), then a futex wake), called from
// exit_mm_release() in do_exit() after exit_signals() set PF_EXITING;
// fs/userfaultfd.c handle_userfault(), whose fault from there never reaches
// the handler. The test shows it by behaviour, not by the reason.
#include <gtest/gtest.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>

#include "uffd_contract_util.h"

namespace uffd_contract {
namespace {

struct Exiter {
  int* tid_word = nullptr;
  std::atomic<pid_t> tid{0};
};

// A thread that points its clear-child-tid at `tid_word` and leaves with the
// raw exit system call: between the two it touches nothing but its own
// (unregistered) stack, so the only access to the registered page is the
// kernel's, at exit.
void* ExitThroughTidWord(void* arg) {
  auto* x = static_cast<Exiter*>(arg);
  syscall(SYS_set_tid_address, x->tid_word);
  x->tid.store(static_cast<pid_t>(syscall(SYS_gettid)));
  syscall(SYS_exit, 0);
  return nullptr;
}

// Runs a detached thread that exits through `tid_word`; returns once the
// kernel has reaped it (its /proc entry is gone).
bool RunExiter(int* tid_word) {
  static Exiter x;  // the thread outlives this call's frame only as a zombie
  x.tid_word = tid_word;
  x.tid.store(0);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  const int rc = pthread_create(&t, &attr, ExitThroughTidWord, &x);
  pthread_attr_destroy(&attr);
  if (rc != 0) return false;
  if (!WaitUntil([] { return x.tid.load() != 0; })) return false;
  const std::string task = "/proc/self/task/" + std::to_string(x.tid.load());
  return WaitUntil([&] { return access(task.c_str(), F_OK) != 0; });
}

// The exiting thread's write of 0 to its tid word in a missing page of a
// registered range raises no fault: the handler never hears of it, the
// write is lost, and a pthread_join waiting for that word sleeps forever.
// The same page present: the word is cleared, as always.
// libpager: Pager::PinThisThread (pager.h) and the preload's thread
// trampoline pin the page of a paged stack's control block for this; a
// swapped-out one hung EvictionRace.Issue9CallsFromAThreadWithAPagedStack's
// join about once in ten runs.
TEST(UffdContract, ExitingThreadsClearOfItsTidWordRaisesNoFault) {
  Area a(2);
  Fill(a.page(0), 1, 'p');  // page 0 present, page 1 missing
  RawUffd u;
  if (auto why = u.Open(0); !why.empty()) GTEST_SKIP() << why;
  ASSERT_EQ(u.Register(a.base(), 2 * kPage), 0);

  int* present_word = reinterpret_cast<int*>(a.page(0) + 64);
  ASSERT_TRUE(RunExiter(present_word));
  EXPECT_EQ(*present_word, 0) << "a present tid word is cleared at exit";

  int* missing_word = reinterpret_cast<int*>(a.page(1) + 64);
  ASSERT_TRUE(RunExiter(missing_word));
  EXPECT_FALSE(u.HasMessage()) << "the exiting thread's write raised a userfault";
  Area src(1);
  Fill(src.base(), 1, 'c');
  ASSERT_EQ(u.Copy(a.page(1), src.base(), kPage).rc, 0);
  EXPECT_TRUE(PageIs(a.page(1), 'c')) << "the kernel's write landed after the page was installed";
}

}  // namespace
}  // namespace uffd_contract
