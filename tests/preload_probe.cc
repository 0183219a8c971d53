// A program run under libpager_preload.so by preload_test: it allocates,
// writes page-specific patterns, checks every byte, and says "ok" (exit 0)
// or what went wrong (exit 1). It knows nothing of libpager.
//
//   preload_probe heap MB       every allocation call, MB of heap in total
//   preload_probe mmap MB       big mmaps with mremap, munmap, madvise, mprotect
//   preload_probe threads MB N  N threads, each with MB/N of heap, cross-thread frees
//   preload_probe fork MB       a child checks every page inherited, allocates MB of its own
//   preload_probe spawn         system, popen, posix_spawn
//   preload_probe split MB      a mapping filled, then split into many VMAs
//                               (madvise, mprotect), then read back
//   preload_probe sigunmap N    N mmap/munmap pairs while a timer signal's
//                               handler munmaps paged memory too
//   preload_probe atexit MB     MB filled; an exit handler registered before
//                               the pager started checks and rewrites it all
//   preload_probe dlopen MB     a library dlopened (ld.so's global scope then
//                               lives in paged heap), MB of heap written, read back
//   preload_probe stacks MB     threads on stacks the probe mmaps itself (paged),
//                               started and joined over and over while MB of
//                               memory churns; a join that never returns fails
//   preload_probe plt           prints where every PLT slot of the loaded
//                               libraries leads (object+offset), then "ok"
#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

extern char** environ;

namespace {

constexpr size_t kPage = 4096;
int g_failures = 0;

#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) {                                                     \
      fprintf(stderr, "probe: %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      g_failures++;                                                    \
    }                                                                  \
  } while (0)

uint64_t Word(uint64_t seed, uint64_t i) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + i * 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 29);
}
void Fill(void* p, size_t bytes, uint64_t seed) {
  auto* w = static_cast<uint64_t*>(p);
  for (size_t i = 0; i < bytes / 8; i++) w[i] = Word(seed, i);
}
bool Check(const void* p, size_t bytes, uint64_t seed) {
  auto* w = static_cast<const uint64_t*>(p);
  for (size_t i = 0; i < bytes / 8; i++) {
    if (w[i] != Word(seed, i)) return false;
  }
  return true;
}
// Check() of the part [off, off+bytes) of a range filled from `base`.
bool CheckPart(const void* base, size_t off, size_t bytes, uint64_t seed) {
  auto* w = static_cast<const uint64_t*>(base);
  for (size_t i = off / 8; i < (off + bytes) / 8; i++) {
    if (w[i] != Word(seed, i)) return false;
  }
  return true;
}
bool Zero(const void* p, size_t bytes) {
  auto* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < bytes; i++) {
    if (c[i] != 0) return false;
  }
  return true;
}

struct Block {
  void* p;
  size_t n;
  uint64_t seed;
};

// MB of heap through every allocation call, filled; returns the blocks.
std::vector<Block> AllocHeap(size_t mb, uint64_t seed) {
  std::vector<Block> b;
  size_t total = 0, i = 0;
  while (total < mb << 20) {
    size_t n = (i % 7 == 0) ? (3 << 20) + i * 8 : 512 + (i * 4104) % 200000;
    n &= ~size_t{7};
    void* p = nullptr;
    switch (i % 8) {
      case 0: p = malloc(n); break;
      case 1: p = calloc(1, n); if (p) CHECK(Zero(p, n)); break;
      case 2: CHECK(posix_memalign(&p, 64, n) == 0); CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0); break;
      case 3: p = aligned_alloc(4096, (n + 4095) & ~size_t{4095}); CHECK(reinterpret_cast<uintptr_t>(p) % 4096 == 0); break;
      case 4: p = memalign(256, n); CHECK(reinterpret_cast<uintptr_t>(p) % 256 == 0); break;
      case 5: p = valloc(n); CHECK(reinterpret_cast<uintptr_t>(p) % kPage == 0); break;
      case 6: p = realloc(malloc(100), n); break;
      default: p = malloc(n / 2); p = realloc(p, n); break;
    }
    CHECK(p != nullptr);
    if (p == nullptr) break;
    CHECK(malloc_usable_size(p) >= n);
    Fill(p, n, seed + i);
    b.push_back({p, n, seed + i});
    total += n;
    i++;
  }
  return b;
}

int CheckHeap(const std::vector<Block>& blocks) {
  int bad = 0;
  for (const Block& b : blocks) bad += !Check(b.p, b.n, b.seed);
  return bad;
}

int Heap(size_t mb) {
  // The heap is jemalloc's: mallctl resolves, and malloc is in the same object.
  void* ctl = dlsym(RTLD_DEFAULT, "mallctl");
  Dl_info a{}, m{};
  CHECK(ctl != nullptr);
  if (ctl != nullptr) {
    CHECK(dladdr(ctl, &a) != 0 && dladdr(reinterpret_cast<void*>(&malloc), &m) != 0 && a.dli_fbase == m.dli_fbase);
  }
  auto blocks = AllocHeap(mb, 1);
  CHECK(CheckHeap(blocks) == 0);
  // Grow every third block in place or not: content kept.
  for (size_t i = 0; i < blocks.size(); i += 3) {
    void* q = realloc(blocks[i].p, blocks[i].n * 2);
    CHECK(q != nullptr && Check(q, blocks[i].n, blocks[i].seed));
    blocks[i].p = q;
  }
  CHECK(CheckHeap(blocks) == 0);
  for (const Block& b : blocks) free(b.p);
  void* pv = pvalloc(10);
  CHECK(pv != nullptr && reinterpret_cast<uintptr_t>(pv) % kPage == 0);
  free(pv);
  void* ra = reallocarray(nullptr, 1000, 1000);
  CHECK(ra != nullptr);
  free(ra);
  return 0;
}

int Mmap(size_t mb) {
  const size_t len = mb << 20;
  auto* p = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  CHECK(p != MAP_FAILED);
  Fill(p, len, 7);
  CHECK(Check(p, len, 7));
  // MADV_DONTNEED: zeros, then usable again.
  CHECK(madvise(p, 64 * kPage, MADV_DONTNEED) == 0);
  CHECK(Zero(p, 64 * kPage));
  Fill(p, 64 * kPage, 7);
  // MADV_FREE: zeros or the old bytes; here, as DONTNEED, zeros.
  CHECK(madvise(p + 64 * kPage, 64 * kPage, MADV_FREE) == 0);
  CHECK(Zero(p + 64 * kPage, 64 * kPage) || CheckPart(p, 64 * kPage, 64 * kPage, 7));
  Fill(p, 128 * kPage, 7);
  // mprotect read-only and back: reads see the data, writes work again.
  CHECK(mprotect(p, len / 2, PROT_READ) == 0);
  CHECK(Check(p, len, 7));
  CHECK(mprotect(p, len / 2, PROT_READ | PROT_WRITE) == 0);
  Fill(p, len, 8);
  // mremap: grow (moving), the old bytes follow, the tail is zero and paged.
  auto* q = static_cast<char*>(mremap(p, len, len * 2, MREMAP_MAYMOVE));
  CHECK(q != MAP_FAILED);
  CHECK(Check(q, len, 8));
  CHECK(Zero(q + len, len));
  Fill(q + len, len, 9);
  CHECK(Check(q, len, 8) && Check(q + len, len, 9));
  // Shrink in place, unmap a hole, and the rest is intact.
  q = static_cast<char*>(mremap(q, len * 2, len + len / 2, 0));
  CHECK(q != MAP_FAILED);
  CHECK(munmap(q + len / 4, len / 4) == 0);
  CHECK(CheckPart(q, 0, len / 4, 8) && CheckPart(q, len / 2, len / 2, 8) && CheckPart(q + len, 0, len / 2, 9));
  // A new mapping over the hole (MAP_FIXED) reads zeros.
  void* f = mmap(q + len / 4, len / 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
  CHECK(f == q + len / 4 && Zero(f, len / 4));
  Fill(f, len / 4, 10);
  CHECK(CheckPart(q, 0, len / 4, 8) && Check(f, len / 4, 10) && CheckPart(q, len / 2, len / 2, 8));
  CHECK(munmap(q, len + len / 2) == 0);
  // A small mapping (below the threshold) is ordinary and works as ever.
  auto* s = static_cast<char*>(mmap(nullptr, 16 * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(s, 16 * kPage, 11);
  CHECK(Check(s, 16 * kPage, 11));
  munmap(s, 16 * kPage);
  return 0;
}

struct ThreadArg {
  size_t mb;
  uint64_t seed;
  std::vector<Block> blocks;
  int bad = 0;
};

void* ThreadMain(void* p) {
  auto* a = static_cast<ThreadArg*>(p);
  a->blocks = AllocHeap(a->mb, a->seed);
  for (int round = 0; round < 2; round++) a->bad += CheckHeap(a->blocks);
  return nullptr;
}

int Threads(size_t mb, int n) {
  // The main thread's heap first, then threads started after the pager.
  auto mine = AllocHeap(mb / (n + 1), 1000);
  std::vector<ThreadArg> args(n);
  std::vector<pthread_t> t(n);
  for (int i = 0; i < n; i++) {
    args[i].mb = mb / (n + 1);
    args[i].seed = 2000 + 1000 * i;
    CHECK(pthread_create(&t[i], nullptr, ThreadMain, &args[i]) == 0);
  }
  for (int i = 0; i < n; i++) pthread_join(t[i], nullptr);
  CHECK(CheckHeap(mine) == 0);
  for (auto& a : args) {
    CHECK(a.bad == 0);
    CHECK(CheckHeap(a.blocks) == 0);
    for (const Block& b : a.blocks) free(b.p);  // freed by another thread
  }
  for (const Block& b : mine) free(b.p);
  return 0;
}

// Threads on stacks the program mapped itself: glibc puts each thread's
// control block, with the tid word the kernel clears when the thread exits,
// at the top of that paged stack (Pager::PinThisThread).
int Stacks(size_t mb) {
  constexpr int kThreads = 8;
  constexpr size_t kStack = 1 << 20;
  std::vector<char*> stacks;
  for (int i = 0; i < kThreads; i++) {
    void* p = mmap(nullptr, kStack, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    CHECK(p != MAP_FAILED);
    if (p == MAP_FAILED) return 1;
    stacks.push_back(static_cast<char*>(p));
  }
  const size_t len = mb << 20;
  auto* m = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  CHECK(m != MAP_FAILED);
  static std::atomic<bool> stop{false};
  struct Churn {
    char* m;
    size_t len;
    uint64_t passes = 0;
  } churn{m, len};
  pthread_t churner;
  CHECK(pthread_create(&churner, nullptr, [](void* p) -> void* {
          auto* c = static_cast<Churn*>(p);
          while (!stop.load()) Fill(c->m, c->len, 7 + c->passes++);
          return nullptr;
        }, &churn) == 0);
  for (int round = 0; round < 300; round++) {
    pthread_t t[kThreads];
    for (int i = 0; i < kThreads; i++) {
      pthread_attr_t attr;
      pthread_attr_init(&attr);
      pthread_attr_setstack(&attr, stacks[i], kStack);
      CHECK(pthread_create(&t[i], &attr, [](void*) -> void* {
              volatile char buf[16384];
              for (size_t k = 0; k < sizeof buf; k += 512) buf[k] = static_cast<char>(k);
              usleep(5000);  // the churn evicts what went cold meanwhile
              return nullptr;
            }, nullptr) == 0);
      pthread_attr_destroy(&attr);
    }
    for (int i = 0; i < kThreads; i++) {
      timespec deadline;
      clock_gettime(CLOCK_REALTIME, &deadline);
      deadline.tv_sec += 10;
      if (pthread_timedjoin_np(t[i], nullptr, &deadline) != 0) {
        fprintf(stderr, "probe: a thread on its own stack exited but was never joined (round %d)\n", round);
        _exit(1);
      }
    }
  }
  stop = true;
  pthread_join(churner, nullptr);
  CHECK(churn.passes > 0 && Check(m, len, 7 + churn.passes - 1));
  return 0;
}

int Fork(size_t mb) {
  auto heap = AllocHeap(mb / 2, 3);
  const size_t len = (mb / 2) << 20;
  auto* m = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  Fill(m, len, 4);
  // Everything written twice over the limit: most of it is swapped now.
  CHECK(CheckHeap(heap) == 0 && Check(m, len, 4));
  pid_t pid = fork();
  if (pid == 0) {
    // Every page the parent had, heap and mmap, evicted or not.
    int bad = CheckHeap(heap) + !Check(m, len, 4);
    // The child's own memory, more than its limit: paged by its own pager.
    auto mine = AllocHeap(mb, 5);
    auto* mm = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    Fill(mm, len, 6);
    bad += CheckHeap(mine) + !Check(mm, len, 6) + CheckHeap(heap) + !Check(m, len, 4);
    // Writing inherited memory is the child's alone.
    Fill(m, kPage, 99);
    printf("child pid=%d bad=%d\n", getpid(), bad);
    fflush(stdout);
    exit(bad == 0 ? 0 : 1);
  }
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  // The parent's memory is untouched by the child and still paged.
  CHECK(CheckHeap(heap) == 0 && Check(m, len, 4));
  printf("parent pid=%d\n", getpid());
  return 0;
}

int Spawn() {
  CHECK(system("exit 3") != -1);
  FILE* f = popen("echo hello", "r");
  char buf[64] = {};
  CHECK(f != nullptr && fgets(buf, sizeof buf, f) != nullptr && strcmp(buf, "hello\n") == 0);
  CHECK(pclose(f) == 0);
  pid_t pid;
  char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
  CHECK(posix_spawn(&pid, "/bin/true", nullptr, nullptr, argv, environ) == 0);
  int st = 0;
  CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  return 0;
}

// Issue 9's first report: a program that only mmaps, fills, then splits its
// own mapping (madvise(MADV_RANDOM) of alternate slices, mprotect of a few
// pages read-only) before reading everything back read zeros under the
// pager.
int Split(size_t mb) {
  const size_t len = mb << 20, pages = len / kPage;
  auto* p = static_cast<char*>(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  CHECK(p != MAP_FAILED);
  Fill(p, len, 21);
  for (size_t i = 0; i < pages; i += 64) CHECK(madvise(p + i * kPage, 32 * kPage, MADV_RANDOM) == 0);
  for (size_t i = 17; i < pages; i += 501) CHECK(mprotect(p + i * kPage, kPage, PROT_READ) == 0);
  for (int pass = 0; pass < 2; pass++) CHECK(Check(p, len, 21));
  return 0;
}

// munmap from a signal handler while the program maps and unmaps: the
// preload must take no lock on the way (issue 9: a handler's munmap met the
// lock its own thread held in the interrupted munmap, and the process hung).
volatile sig_atomic_t g_next_victim = 0;
void* g_victims[4096];
void UnmapOne(int) {
  int i = g_next_victim;
  if (i < 4096 && g_victims[i] != nullptr) {
    munmap(g_victims[i], 2 << 20);
    g_victims[i] = nullptr;
    g_next_victim = i + 1;
  }
}

int SigUnmap(size_t n) {
  for (auto& v : g_victims) {
    v = mmap(nullptr, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(v != MAP_FAILED);
    static_cast<char*>(v)[0] = 1;
  }
  struct sigaction sa {};
  sa.sa_handler = UnmapOne;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, nullptr);
  itimerval it{{0, 200}, {0, 200}};
  setitimer(ITIMER_REAL, &it, nullptr);
  for (size_t i = 0; i < n; i++) {
    void* m = mmap(nullptr, 2 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED);
    static_cast<char*>(m)[i % (2 << 20)] = 1;
    CHECK(munmap(m, 2 << 20) == 0);
  }
  itimerval off{};
  setitimer(ITIMER_REAL, &off, nullptr);
  CHECK(g_next_victim > 0);
  return 0;
}

// Exit handlers run in reverse order of registration: this one, registered
// before the first paged mapping, runs after any the pager's libraries
// registered when it started (libcrypto's cleanup among them), so its
// swap-ins and write-backs are served by a pager whose libraries have
// already run their own exit handlers.
unsigned char* g_exit_mem = nullptr;
size_t g_exit_bytes = 0;
void CheckAtExit() {
  if (g_exit_mem == nullptr) return;
  bool ok = Check(g_exit_mem, g_exit_bytes, 41);
  Fill(g_exit_mem, g_exit_bytes, 42);
  ok = ok && Check(g_exit_mem, g_exit_bytes, 42);
  if (!ok) {
    fprintf(stderr, "probe: at exit: memory reads back wrong\n");
    _exit(1);
  }
  printf("at exit: ok\n");
}

int AtExit(size_t mb) {
  atexit(CheckAtExit);
  g_exit_bytes = mb << 20;
  void* m = mmap(nullptr, g_exit_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(m != MAP_FAILED);
  if (m == MAP_FAILED) return 1;
  g_exit_mem = static_cast<unsigned char*>(m);
  Fill(g_exit_mem, g_exit_bytes, 41);
  return 0;
}

// dlopen(RTLD_GLOBAL) makes ld.so copy its global scope (the array every
// symbol lookup walks) into memory from malloc: paged here. MB of heap, more
// than the limit, is then written in blocks of its own (so the scope's page
// goes cold and is evicted) and read back: the first swap-ins, served by the
// store's thread, come after.
int Dlopen(size_t mb) {
  void* lib = dlopen("libpthread.so.0", RTLD_NOW | RTLD_GLOBAL);
  CHECK(lib != nullptr);
  std::vector<void*> blocks;
  for (size_t i = 0; i < mb; i++) {
    void* p = malloc(1 << 20);
    CHECK(p != nullptr);
    if (p == nullptr) return 1;
    Fill(p, 1 << 20, 500 + i);
    blocks.push_back(p);
  }
  for (size_t i = 0; i < mb; i++) CHECK(Check(blocks[i], 1 << 20, 500 + i));
  for (void* p : blocks) free(p);
  return 0;
}

// For each library (not the program, not the vDSO), each PLT slot: where it
// leads now, as "library slot -> object+offset". A slot not bound yet leads
// into its own library's PLT.
int PrintPltSlot(dl_phdr_info* info, size_t, void*) {
  if (info->dlpi_name[0] == '\0' || strstr(info->dlpi_name, "linux-vdso") != nullptr) return 0;
  const ElfW(Dyn)* dyn = nullptr;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    if (info->dlpi_phdr[i].p_type == PT_DYNAMIC) {
      dyn = reinterpret_cast<const ElfW(Dyn)*>(info->dlpi_addr + info->dlpi_phdr[i].p_vaddr);
    }
  }
  if (dyn == nullptr) return 0;
  ElfW(Addr) jmprel = 0;
  size_t bytes = 0;
  for (; dyn->d_tag != DT_NULL; dyn++) {
    if (dyn->d_tag == DT_JMPREL) jmprel = dyn->d_un.d_ptr;
    if (dyn->d_tag == DT_PLTRELSZ) bytes = dyn->d_un.d_val;
  }
  if (jmprel == 0) return 0;
  if (jmprel < info->dlpi_addr) jmprel += info->dlpi_addr;
  const char* name = strrchr(info->dlpi_name, '/') != nullptr ? strrchr(info->dlpi_name, '/') + 1 : info->dlpi_name;
  const auto* rela = reinterpret_cast<const ElfW(Rela)*>(jmprel);
  for (size_t i = 0; i < bytes / sizeof(ElfW(Rela)); i++) {
    const uintptr_t target = *reinterpret_cast<const uintptr_t*>(info->dlpi_addr + rela[i].r_offset);
    Dl_info where;
    if (dladdr(reinterpret_cast<void*>(target), &where) != 0 && where.dli_fname != nullptr) {
      const char* def = strrchr(where.dli_fname, '/') != nullptr ? strrchr(where.dli_fname, '/') + 1 : where.dli_fname;
      printf("%s %zu -> %s+%#lx\n", name, i, def, static_cast<unsigned long>(target - reinterpret_cast<uintptr_t>(where.dli_fbase)));
    } else {
      printf("%s %zu -> ?\n", name, i);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  size_t mb = argc > 2 ? strtoul(argv[2], nullptr, 10) : 0;
  if (mode == "heap") {
    Heap(mb);
  } else if (mode == "mmap") {
    Mmap(mb);
  } else if (mode == "threads") {
    Threads(mb, argc > 3 ? atoi(argv[3]) : 4);
  } else if (mode == "fork") {
    Fork(mb);
  } else if (mode == "spawn") {
    Spawn();
  } else if (mode == "split") {
    Split(mb);
  } else if (mode == "sigunmap") {
    SigUnmap(mb);
  } else if (mode == "atexit") {
    AtExit(mb);
  } else if (mode == "dlopen") {
    Dlopen(mb);
  } else if (mode == "stacks") {
    Stacks(mb);
  } else if (mode == "plt") {
    dl_iterate_phdr(PrintPltSlot, nullptr);
  } else if (mode == "hello") {
    // Does nothing: for start-up and refusal tests.
  } else {
    fprintf(stderr, "usage: preload_probe heap|mmap|threads|fork|spawn|split|sigunmap|atexit|dlopen|stacks|plt|hello [MB|N] [N]\n");
    return 2;
  }
  if (g_failures != 0) return 1;
  printf("ok\n");
  return 0;
}
