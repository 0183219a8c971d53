// The system calls the preload interposes, and the raw ones it uses itself.
//
// mmap: a private anonymous mapping of at least LIBPAGER_MMAP_THRESHOLD
// bytes is adopted by the pager right after the kernel creates it (or noted,
// before the pager starts: start.cc). munmap, mremap and MADV_DONTNEED of
// adopted memory need nothing from the preload: the kernel reports them to
// the pager as UNMAP, REMAP and REMOVE events, in order, and a registered
// range grown by mremap is found by the pager at its first fault
// (regions.h). munmap and mremap are interposed only to forget noted ranges
// before the pager starts, with atomics: nothing here takes a lock a signal
// handler's munmap could meet. What the preload adds:
//  - MADV_FREE that succeeded is followed by MADV_DONTNEED: the kernel
//    reports MADV_FREE as a REMOVE but frees lazily, so a paged page would
//    stay resident and uncounted. Reading zeros afterwards is what MADV_FREE
//    allows anyway, and a private anonymous range (the only kind MADV_FREE
//    takes) loses nothing by it, paged or not.
// mprotect is not interposed: a registration survives it, faults on a
// protected page are the program's (SIGSEGV, as without the pager), and the
// evictor leaves alone a page the kernel will not move (read-only, locked).
//
// The link wraps jemalloc's and libpager's own calls to mmap, munmap, mremap
// and madvise to the __wrap_ functions below (raw system calls), so the
// allocator's and the pager's own mappings are never adopted.
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "log.h"  // libpager's own (libpager/src)
#include "pager/pager.h"
#include "preload.h"

namespace pager::preload {

void* RawMmap(void* addr, size_t len, int prot, int flags, int fd, long off) {
  return reinterpret_cast<void*>(syscall(SYS_mmap, addr, len, prot, flags, fd, off));
}
int RawMunmap(void* addr, size_t len) { return static_cast<int>(syscall(SYS_munmap, addr, len)); }
int RawMadvise(void* addr, size_t len, int advice) {
  return static_cast<int>(syscall(SYS_madvise, addr, len, advice));
}
static void* RawMremap(void* old, size_t old_len, size_t new_len, int flags, void* new_addr) {
  return reinterpret_cast<void*>(syscall(SYS_mremap, old, old_len, new_len, flags, new_addr));
}

namespace {

bool Pageable(size_t len, int flags) {
  const uint64_t threshold = settings().mmap_threshold;
  return threshold != 0 && len >= threshold && (flags & MAP_TYPE) == MAP_PRIVATE && (flags & MAP_ANONYMOUS) &&
         !(flags & (MAP_HUGETLB | MAP_GROWSDOWN | MAP_LOCKED));
}

void* Mmap(void* addr, size_t len, int prot, int flags, int fd, long off) {
  if (InPagerContext() || !Pageable(len, flags)) return RawMmap(addr, len, prot, flags, fd, off);
  // Populating before the registration would leave pages the pager does not
  // know of: populate through it instead.
  const bool populate = flags & MAP_POPULATE;
  void* p = RawMmap(addr, len, prot, flags & ~MAP_POPULATE, fd, off);
  if (p == MAP_FAILED) return p;
  AdoptRange(p, len);
  if (populate) RawMadvise(p, len, (prot & PROT_WRITE) ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
  return p;
}

struct ThreadStart {
  void* (*fn)(void*);
  void* arg;
  bool pager;
  bool own_stack;  // the program gave the stack (pthread_attr_setstack)
};

// A stack the program allocated itself may be paged memory, and glibc puts
// the thread's control block at its top. glibc's own stacks come from its
// internal mmap, which the preload never sees, so they are never paged.
bool OwnStack(const pthread_attr_t* attr) {
  void* addr = nullptr;
  size_t size = 0;
  if (attr == nullptr || pthread_attr_getstack(attr, &addr, &size) != 0) return false;
  // Unset, glibc reports its null stack address less the stack size: an
  // address above user space.
  return addr != nullptr && reinterpret_cast<uintptr_t>(addr) < (uintptr_t{1} << 47);
}

void* ThreadTrampoline(void* p) {
  ThreadStart s = *static_cast<ThreadStart*>(p);
  if (s.pager) {
    t_pager_thread = true;
    BindPagerThread();
  } else {
    BindProgramThread();
    // Before any of the program's code: the kernel's write at this thread's
    // exit must find its control block in memory (Pager::PinThisThread).
    if (Pager* pager = s.own_stack ? RunningPager() : nullptr) {
      PagerScope scope;  // an error's message is the pager's allocation, not the program's
      if (Status st = pager->PinThisThread(); !st.ok()) {
        PAGER_LOG_WARN("thread on a paged stack: %s; joining it may hang if its stack top is swapped out",
                       st.message().c_str());
      }
    }
  }
  free(p);
  return s.fn(s.arg);
}

using PthreadCreate = int (*)(pthread_t*, const pthread_attr_t*, void* (*)(void*), void*);

PthreadCreate RealPthreadCreate() {
  static PthreadCreate real = reinterpret_cast<PthreadCreate>(dlsym(RTLD_NEXT, "pthread_create"));
  return real;
}

}  // namespace

void ResolveInterposed() { RealPthreadCreate(); }

}  // namespace pager::preload

using namespace pager::preload;

extern "C" {

// ---- the program's calls ----------------------------------------------------
void* mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) __THROW {
  return Mmap(addr, len, prot, flags, fd, off);
}
void* mmap64(void* addr, size_t len, int prot, int flags, int fd, off64_t off) __THROW {
  return Mmap(addr, len, prot, flags, fd, off);
}

// Before the pager starts, a noted range that goes away must not be adopted
// later (start.cc); after, these are the plain system calls.
int munmap(void* addr, size_t len) __THROW {
  int r = RawMunmap(addr, len);
  if (r == 0 && !InPagerContext()) ForgetPending(reinterpret_cast<uintptr_t>(addr), len);
  return r;
}

void* mremap(void* old, size_t old_len, size_t new_len, int flags, ...) __THROW {
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void*);
    va_end(ap);
  }
  void* r = RawMremap(old, old_len, new_len, flags, new_addr);
  if (r != MAP_FAILED && !InPagerContext()) ForgetPending(reinterpret_cast<uintptr_t>(old), old_len);
  return r;
}

int madvise(void* addr, size_t len, int advice) __THROW {
  int r = RawMadvise(addr, len, advice);
  if (r == 0 && advice == MADV_FREE && !InPagerContext()) {
    int saved = errno;
    RawMadvise(addr, len, MADV_DONTNEED);
    errno = saved;
  }
  return r;
}

int pthread_create(pthread_t* thread, const pthread_attr_t* attr, void* (*fn)(void*), void* arg) __THROWNL {
  PthreadCreate real = RealPthreadCreate();
  if (real == nullptr) return EAGAIN;
  // A thread started by the pager (or by a program thread inside a call into
  // it) is the pager's, and so are the threads it starts in turn.
  auto* s = static_cast<ThreadStart*>(malloc(sizeof(ThreadStart)));
  if (s == nullptr) return EAGAIN;
  *s = ThreadStart{fn, arg, InPagerContext(), OwnStack(attr)};
  int r = real(thread, attr, ThreadTrampoline, s);
  if (r != 0) free(s);
  return r;
}

// glibc's, missing from jemalloc: without them these would reach glibc's
// allocator and hand jemalloc a pointer it does not own.
void* pvalloc(size_t n) __THROW { return valloc(PageUp(n == 0 ? 1 : n)); }
void* reallocarray(void* p, size_t n, size_t size) __THROW {
  size_t bytes;
  if (__builtin_mul_overflow(n, size, &bytes)) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, bytes);
}

// ---- jemalloc's and libpager's own calls (see the link options) -------------
void* __wrap_mmap(void* addr, size_t len, int prot, int flags, int fd, off_t off) {
  return RawMmap(addr, len, prot, flags, fd, off);
}
void* __wrap_mmap64(void* addr, size_t len, int prot, int flags, int fd, off64_t off) {
  return RawMmap(addr, len, prot, flags, fd, off);
}
int __wrap_munmap(void* addr, size_t len) { return RawMunmap(addr, len); }
int __wrap_madvise(void* addr, size_t len, int advice) { return RawMadvise(addr, len, advice); }
void* __wrap_mremap(void* old, size_t old_len, size_t new_len, int flags, ...) {
  void* new_addr = nullptr;
  if (flags & MREMAP_FIXED) {
    va_list ap;
    va_start(ap, flags);
    new_addr = va_arg(ap, void*);
    va_end(ap);
  }
  return RawMremap(old, old_len, new_len, flags, new_addr);
}

}  // extern "C"
