// Binding the pager's libraries before the program runs.
//
// A lazily bound PLT slot is resolved by ld.so at its first call, in the
// calling thread: _dl_fixup walks the global scope, an array ld.so
// reallocates with malloc at the program's first dlopen(RTLD_GLOBAL) (a JVM
// loads libjvm.so so), and the link maps of what the program dlopens, also
// from malloc. Under the preload that malloc is a paged arena. A pager
// thread (or a store thread it waits for) taking its first call through a
// lazy slot can then fault on a page only the pager thread brings back, and
// the process hangs: seen with a JVM paging to NFS, its NFS thread stuck in
// do_lookup_x on the scope's first entry, resolving rpc_nfs3_read_async (our
// call) or zdr_READ3args (libnfs's own), while the pager thread waited for
// that read.
//
// Our own code is linked with -z now. The libraries it calls (libnfs,
// libstdc++, libgcc_s, libm, libc: the preload's dependencies, transitively)
// are bound lazily in their own objects, and ld.so offers no way to bind an
// already loaded object now: dlopen(RTLD_NOW | RTLD_NOLOAD) returns early for
// an open object (glibc elf/dl-open.c, "It was already open"), and
// _dl_relocate_object skips an object already relocated. So their slots are
// bound here, in the preload's constructor, before the program has run or
// dlopened anything, by ld.so's own rules: the first definition in the global
// scope (the objects in load order) that check_match (elf/dl-lookup.c) would
// accept for the slot's symbol and version; an IFUNC's resolver called.
// preload_test checks that the result equals what LD_BIND_NOW=1 binds.
// The preload itself is in that closure: without -z now it is bound here too.
//
// Left lazy: a slot whose symbol is found nowhere (ld.so would fail the call
// too), and every slot of a DT_SYMBOLIC library (its own definitions come
// first; none of the pager's libraries is one). x86_64 only; elsewhere the
// libraries stay lazily bound.
#include <elf.h>
#include <link.h>
#include <sys/auxv.h>

#include <cstring>

#include "preload.h"

namespace pager::preload {

#if defined(__x86_64__)

namespace {

constexpr int kMaxObjects = 512;

struct Object {
  ElfW(Addr) base = 0;
  const char* path = nullptr;
  const char* soname = nullptr;
  const ElfW(Dyn)* dynamic = nullptr;
  const ElfW(Sym)* symtab = nullptr;
  const char* strtab = nullptr;
  const ElfW(Half)* versym = nullptr;
  const char* verdef = nullptr;   // ElfW(Verdef) chain
  const char* verneed = nullptr;  // ElfW(Verneed) chain
  const uint32_t* gnu_hash = nullptr;
  const ElfW(Word)* sysv_hash = nullptr;
  const ElfW(Rela)* jmprel = nullptr;
  size_t jmprel_count = 0;
  ElfW(Addr) relro_start = 0, relro_end = 0;
  bool bound = false;     // DF_BIND_NOW / DF_1_NOW: ld.so bound it at load
  bool symbolic = false;  // DT_SYMBOLIC: its own definitions first
  bool in_closure = false;
  bool holds_this_code = false;  // the preload itself
};

Object g_objects[kMaxObjects];
int g_count = 0;

// ld.so adjusts most address tags of a writable .dynamic in place (and not
// those of the vDSO's); an unadjusted one is below the load address.
template <typename T>
const T* At(const Object& o, ElfW(Addr) v) {
  return reinterpret_cast<const T*>(v < o.base ? o.base + v : v);
}

int Collect(dl_phdr_info* info, size_t, void*) {
  if (g_count == kMaxObjects) return 1;
  if (info->dlpi_addr != 0 && info->dlpi_addr == getauxval(AT_SYSINFO_EHDR)) return 0;  // not in the scope
  Object& o = g_objects[g_count];
  o = Object();
  o.base = info->dlpi_addr;
  o.path = info->dlpi_name;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    const ElfW(Addr) code = reinterpret_cast<ElfW(Addr)>(&Collect);
    if (ph.p_type == PT_LOAD && code >= o.base + ph.p_vaddr && code < o.base + ph.p_vaddr + ph.p_memsz) {
      o.holds_this_code = true;
    }
    if (ph.p_type == PT_DYNAMIC) o.dynamic = reinterpret_cast<const ElfW(Dyn)*>(o.base + ph.p_vaddr);
    if (ph.p_type == PT_GNU_RELRO) {
      o.relro_start = o.base + ph.p_vaddr;
      o.relro_end = o.relro_start + ph.p_memsz;
    }
  }
  if (o.dynamic == nullptr) return 0;
  size_t pltrelsz = 0;
  ElfW(Addr) soname = 0;
  bool rela = true;
  for (const ElfW(Dyn)* d = o.dynamic; d->d_tag != DT_NULL; d++) {
    switch (d->d_tag) {
      case DT_SYMTAB: o.symtab = At<ElfW(Sym)>(o, d->d_un.d_ptr); break;
      case DT_STRTAB: o.strtab = At<char>(o, d->d_un.d_ptr); break;
      case DT_VERSYM: o.versym = At<ElfW(Half)>(o, d->d_un.d_ptr); break;
      case DT_VERDEF: o.verdef = At<char>(o, d->d_un.d_ptr); break;
      case DT_VERNEED: o.verneed = At<char>(o, d->d_un.d_ptr); break;
      case DT_GNU_HASH: o.gnu_hash = At<uint32_t>(o, d->d_un.d_ptr); break;
      case DT_HASH: o.sysv_hash = At<ElfW(Word)>(o, d->d_un.d_ptr); break;
      case DT_JMPREL: o.jmprel = At<ElfW(Rela)>(o, d->d_un.d_ptr); break;
      case DT_PLTRELSZ: pltrelsz = d->d_un.d_val; break;
      case DT_PLTREL: rela = d->d_un.d_val == DT_RELA; break;
      case DT_SONAME: soname = d->d_un.d_val; break;
      case DT_SYMBOLIC: o.symbolic = true; break;
      case DT_FLAGS:
        o.bound |= (d->d_un.d_val & DF_BIND_NOW) != 0;
        o.symbolic |= (d->d_un.d_val & DF_SYMBOLIC) != 0;
        break;
      case DT_FLAGS_1: o.bound |= (d->d_un.d_val & DF_1_NOW) != 0; break;
    }
  }
  if (o.symtab == nullptr || o.strtab == nullptr) return 0;
  if (!rela) o.jmprel = nullptr;
  o.jmprel_count = pltrelsz / sizeof(ElfW(Rela));
  if (soname != 0) o.soname = o.strtab + soname;
  g_count++;
  return 0;
}

const char* BaseName(const char* path) {
  const char* slash = strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

Object* ByNeededName(const char* name) {
  for (int i = 0; i < g_count; i++) {
    Object& o = g_objects[i];
    if ((o.soname != nullptr && strcmp(o.soname, name) == 0) || strcmp(BaseName(o.path), name) == 0) return &o;
  }
  return nullptr;
}

// Marks `root` and what it needs, transitively.
void MarkClosure(Object* root) {
  Object* queue[kMaxObjects];
  int head = 0, tail = 0;
  root->in_closure = true;
  queue[tail++] = root;
  while (head < tail) {
    Object* o = queue[head++];
    for (const ElfW(Dyn)* d = o->dynamic; d->d_tag != DT_NULL; d++) {
      if (d->d_tag != DT_NEEDED) continue;
      Object* dep = ByNeededName(o->strtab + d->d_un.d_val);
      if (dep != nullptr && !dep->in_closure) {
        dep->in_closure = true;
        queue[tail++] = dep;
      }
    }
  }
}

// The version a definition carries, as ld.so's l_versions has it: the
// non-base Verdef of that index, or none (hash 0).
const char* DefinedVersion(const Object& o, ElfW(Half) ndx, ElfW(Word)* hash) {
  *hash = 0;
  if (o.verdef == nullptr) return nullptr;
  for (const char* p = o.verdef;;) {
    auto* vd = reinterpret_cast<const ElfW(Verdef)*>(p);
    if ((vd->vd_ndx & 0x7fff) == ndx && (vd->vd_flags & VER_FLG_BASE) == 0) {
      *hash = vd->vd_hash;
      return o.strtab + reinterpret_cast<const ElfW(Verdaux)*>(p + vd->vd_aux)->vda_name;
    }
    if (vd->vd_next == 0) return nullptr;
    p += vd->vd_next;
  }
}

// The version a reference asks for, as ld.so's l_versions has it: a Vernaux
// of the referencing object or, for its own symbols, one of its Verdefs.
const char* RequestedVersion(const Object& o, ElfW(Half) ndx, ElfW(Word)* hash, bool* hidden) {
  *hidden = false;
  if (o.verneed == nullptr) return DefinedVersion(o, ndx, hash);
  for (const char* p = o.verneed;;) {
    auto* vn = reinterpret_cast<const ElfW(Verneed)*>(p);
    const char* a = p + vn->vn_aux;
    for (int i = 0; i < vn->vn_cnt; i++) {
      auto* aux = reinterpret_cast<const ElfW(Vernaux)*>(a);
      if ((aux->vna_other & 0x7fff) == ndx) {
        *hash = aux->vna_hash;
        *hidden = (aux->vna_other & 0x8000) != 0;
        return o.strtab + aux->vna_name;
      }
      a += aux->vna_next;
    }
    if (vn->vn_next == 0) return DefinedVersion(o, ndx, hash);
    p += vn->vn_next;
  }
}

struct Wanted {
  const char* name;
  uint32_t gnu_hash;
  ElfW(Word) sysv_hash;
  const char* version;  // nullptr: an unversioned reference
  ElfW(Word) version_hash;
  bool hidden;
};

// elf/dl-lookup.c's check_match for a PLT reference. 1: accepted;
// 2: a versioned definition an unversioned reference takes if it is the
// only one in the object; 0: not this one.
int Match(const Object& o, ElfW(Word) idx, const Wanted& w) {
  const ElfW(Sym)& s = o.symtab[idx];
  const unsigned type = ELF64_ST_TYPE(s.st_info);
  if ((s.st_value == 0 && s.st_shndx != SHN_ABS && type != STT_TLS) || s.st_shndx == SHN_UNDEF) return 0;
  constexpr unsigned kAllowed = (1u << STT_NOTYPE) | (1u << STT_OBJECT) | (1u << STT_FUNC) | (1u << STT_COMMON) |
                                (1u << STT_TLS) | (1u << STT_GNU_IFUNC);
  if (((1u << type) & kAllowed) == 0) return 0;
  // do_lookup_x: hidden and internal symbols are local.
  const unsigned vis = ELF64_ST_VISIBILITY(s.st_other);
  if (vis == STV_HIDDEN || vis == STV_INTERNAL) return 0;
  if (strcmp(o.strtab + s.st_name, w.name) != 0) return 0;
  if (o.versym == nullptr) return 1;
  const ElfW(Half) raw = o.versym[idx], ndx = raw & 0x7fff;
  if (w.version != nullptr) {
    ElfW(Word) hash;
    const char* v = DefinedVersion(o, ndx, &hash);
    const bool same = v != nullptr && hash == w.version_hash && strcmp(v, w.version) == 0;
    return same || (!w.hidden && hash == 0 && (raw & 0x8000) == 0) ? 1 : 0;
  }
  if (ndx >= 3) return (raw & 0x8000) == 0 ? 2 : 0;
  return 1;
}

const ElfW(Sym)* FindIn(const Object& o, const Wanted& w) {
  const ElfW(Sym)* versioned = nullptr;
  int versions = 0;
  auto consider = [&](ElfW(Word) idx) -> const ElfW(Sym)* {
    const int m = Match(o, idx, w);
    if (m == 1) return &o.symtab[idx];
    if (m == 2 && versions++ == 0) versioned = &o.symtab[idx];
    return nullptr;
  };
  if (o.gnu_hash != nullptr) {
    const uint32_t nbuckets = o.gnu_hash[0], symoffset = o.gnu_hash[1], bloom_size = o.gnu_hash[2];
    if (nbuckets == 0) return nullptr;
    const uint32_t* buckets = o.gnu_hash + 4 + bloom_size * (sizeof(ElfW(Addr)) / 4);
    const uint32_t* chain = buckets + nbuckets;
    for (uint32_t i = buckets[w.gnu_hash % nbuckets]; i != 0; i++) {
      const uint32_t h = chain[i - symoffset];
      if ((h | 1) == (w.gnu_hash | 1)) {
        if (const ElfW(Sym)* s = consider(i)) return s;
      }
      if (h & 1) break;
    }
  } else if (o.sysv_hash != nullptr) {
    const ElfW(Word) nbucket = o.sysv_hash[0];
    const ElfW(Word)* bucket = o.sysv_hash + 2;
    const ElfW(Word)* chain = bucket + nbucket;
    if (nbucket == 0) return nullptr;
    for (ElfW(Word) i = bucket[w.sysv_hash % nbucket]; i != STN_UNDEF; i = chain[i]) {
      if (const ElfW(Sym)* s = consider(i)) return s;
    }
  }
  return versions == 1 ? versioned : nullptr;
}

uint32_t GnuHash(const char* s) {
  uint32_t h = 5381;
  for (; *s != '\0'; s++) h = h * 33 + static_cast<unsigned char>(*s);
  return h;
}

ElfW(Word) SysvHash(const char* s) {
  ElfW(Word) h = 0;
  for (; *s != '\0'; s++) {
    h = (h << 4) + static_cast<unsigned char>(*s);
    const ElfW(Word) g = h & 0xf0000000;
    h ^= g >> 24;
    h &= ~g;
  }
  return h;
}

// What ld.so would bind the slot to; false if it would find nothing (the
// slot is then left to it).
bool Resolve(const Object& from, const ElfW(Rela)& r, ElfW(Addr)* out) {
  const ElfW(Word) idx = ELF64_R_SYM(r.r_info);
  const ElfW(Sym)& ref = from.symtab[idx];
  const ElfW(Sym)* def = nullptr;
  const Object* owner = nullptr;
  if (ELF64_ST_VISIBILITY(ref.st_other) != STV_DEFAULT) {
    // _dl_fixup: not subject to the normal lookup rules, it is its own.
    def = &ref;
    owner = &from;
  } else {
    Wanted w{from.strtab + ref.st_name, 0, 0, nullptr, 0, false};
    w.gnu_hash = GnuHash(w.name);
    w.sysv_hash = SysvHash(w.name);
    if (from.versym != nullptr && (from.versym[idx] & 0x7fff) >= 2) {
      w.version = RequestedVersion(from, from.versym[idx] & 0x7fff, &w.version_hash, &w.hidden);
      if (w.version == nullptr) return false;
    }
    for (int i = 0; i < g_count && def == nullptr; i++) {
      def = FindIn(g_objects[i], w);
      owner = &g_objects[i];
    }
    if (def == nullptr) {
      // A weak reference found nowhere is 0; any other is an error ld.so
      // reports if the slot is ever called.
      *out = 0;
      return ELF64_ST_BIND(ref.st_info) == STB_WEAK;
    }
  }
  ElfW(Addr) value = (def->st_shndx == SHN_ABS ? 0 : owner->base) + def->st_value;
  if (ELF64_ST_TYPE(def->st_info) == STT_GNU_IFUNC) value = reinterpret_cast<ElfW(Addr) (*)()>(value)();
  *out = value;
  return true;
}

}  // namespace

void BindPagerLibrariesNow() {
  g_count = 0;
  dl_iterate_phdr(Collect, nullptr);
  Object* self = nullptr;
  for (int i = 0; i < g_count; i++) {
    if (g_objects[i].holds_this_code) self = &g_objects[i];
  }
  if (self == nullptr) return;
  MarkClosure(self);
  for (int i = 0; i < g_count; i++) {
    const Object& o = g_objects[i];
    if (!o.in_closure || o.bound || o.symbolic || o.jmprel == nullptr) continue;
    for (size_t k = 0; k < o.jmprel_count; k++) {
      const ElfW(Rela)& r = o.jmprel[k];
      if (ELF64_R_TYPE(r.r_info) != R_X86_64_JUMP_SLOT) continue;
      const ElfW(Addr) slot = o.base + r.r_offset;
      if (slot >= o.relro_start && slot < o.relro_end) continue;  // read-only: bound already
      ElfW(Addr) value;
      if (!Resolve(o, r, &value)) continue;
      __atomic_store_n(reinterpret_cast<ElfW(Addr)*>(slot), value, __ATOMIC_RELAXED);
    }
  }
}

#else

void BindPagerLibrariesNow() {}

#endif

}  // namespace pager::preload
