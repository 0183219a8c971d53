// The state of every page of every paged region: 8 bytes a page.
//
// Owned by the pager thread alone (no locks): every change of page state
// happens there, so "concurrent faults on one page are served once" reduces
// to looking at the state before acting on a fault.
//
// Entry layout (64 bits):
//   bits  0..2   State
//   bit   3      referenced (touched since the clock hand last passed)
//   bit   4      queued on the active ring
//   bit   5      queued on the inactive queue
//   bits  8..31  aux: inactive frame (kInactive) or op id (kReading, kWriting,
//                kSealing)
//   bits 32..63  slot + 1 (0: no slot). For kResident and kInactive a slot,
//                when present, holds a copy that was valid when the page was
//                read; whether it still is, the checksum decides at eviction.
//
// Chunks of 512 entries (one 2 MiB stretch of address space, 4 KiB of table)
// are created on first use, so a region of any size costs nothing until it is
// touched, and an mremap'ed or grown region needs no bookkeeping beyond moving
// entries. Chunks are metadata (meta_alloc.h), never the emergency pool; a
// chunk whose entries are all zero is released by Trim, which the pager calls
// when a range is unmapped.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "meta_alloc.h"
#include "pager/store.h"

namespace pager {

enum class PageState : uint8_t {
  kEmpty = 0,     // never touched or discarded: reads as zeros, no I/O
  kResident = 1,  // mapped in its region
  kInactive = 2,  // unmapped, content in an inactive frame; re-touch = no I/O
  kReading = 3,   // swap-in in flight; faulting threads wait for it
  kWriting = 4,   // write-back in flight; content still in the write buffer
  kSwapped = 5,   // content only in its slot
  kPoisoned = 6,  // its slot failed its checksum; touching it raises SIGBUS
  kSealing = 7,   // inactive, its frame pinned by a write-back batch at the
                  // seal worker (aux: the batch's op id); re-touch = no I/O
};
const char* PageStateName(PageState s);

inline constexpr uint32_t kNoSlot = 0xFFFFFFFFu;

class PageEntry {
 public:
  PageEntry() = default;
  explicit PageEntry(uint64_t raw) : raw_(raw) {}
  uint64_t raw() const { return raw_; }

  PageState state() const { return static_cast<PageState>(raw_ & 7); }
  bool referenced() const { return raw_ & kRef; }
  bool queued_active() const { return raw_ & kQActive; }
  bool queued_inactive() const { return raw_ & kQInactive; }
  // Never evicted while set (Pager::Pin); cleared with the page when it is
  // discarded or unmapped.
  bool pinned() const { return raw_ & kPinned; }
  uint32_t aux() const { return static_cast<uint32_t>((raw_ >> 8) & 0xFFFFFF); }
  bool has_slot() const { return (raw_ >> 32) != 0; }
  uint32_t slot() const { return static_cast<uint32_t>((raw_ >> 32) - 1); }

  void set_state(PageState s) { raw_ = (raw_ & ~uint64_t{7}) | static_cast<uint64_t>(s); }
  void set_referenced(bool on) { SetBit(kRef, on); }
  void set_queued_active(bool on) { SetBit(kQActive, on); }
  void set_queued_inactive(bool on) { SetBit(kQInactive, on); }
  void set_pinned(bool on) { SetBit(kPinned, on); }
  void set_aux(uint32_t a) { raw_ = (raw_ & ~(uint64_t{0xFFFFFF} << 8)) | (uint64_t{a & 0xFFFFFF} << 8); }
  void set_slot(uint32_t s) { raw_ = (raw_ & 0xFFFFFFFFull) | (uint64_t{s + 1ull} << 32); }
  void clear_slot() { raw_ &= 0xFFFFFFFFull; }

  static constexpr uint32_t kMaxAux = 0xFFFFFF;

 private:
  static constexpr uint64_t kRef = 1 << 3, kQActive = 1 << 4, kQInactive = 1 << 5, kPinned = 1 << 6;
  void SetBit(uint64_t bit, bool on) { raw_ = on ? (raw_ | bit) : (raw_ & ~bit); }
  uint64_t raw_ = 0;
};
static_assert(sizeof(PageEntry) == 8);

class PageTable {
 public:
  static constexpr int kChunkShift = 9;  // 512 pages per chunk
  static constexpr uint64_t kChunkPages = uint64_t{1} << kChunkShift;

  static uint64_t PageOf(uintptr_t addr) { return addr / kPageSize; }
  static uintptr_t AddrOf(uint64_t page) { return page * kPageSize; }

  PageTable() = default;
  ~PageTable();
  PageTable(const PageTable&) = delete;
  PageTable& operator=(const PageTable&) = delete;

  // The entry of `page`, created (kEmpty) if needed; nullptr only when the
  // system is out of memory for a new chunk.
  PageEntry* Create(uint64_t page);
  // The entry if its chunk exists, else nullptr (a kEmpty page).
  PageEntry* Find(uint64_t page);
  // The entry of a page known to have one (its state is not kEmpty, or it
  // was found or created before in the same turn).
  PageEntry& At(uint64_t page) { return *Find(page); }

  // Releases the chunks of [first_page, first_page+pages) whose entries are
  // all zero (kEmpty, no queue bits).
  void Trim(uint64_t first_page, uint64_t pages);

  size_t chunk_count() const { return chunks_.size(); }
  uint64_t bytes() const { return chunks_.size() * sizeof(Chunk); }

  // Calls fn(page, entry&) for every page in [first, first+pages) whose chunk
  // exists.
  template <class Fn>
  void ForRange(uint64_t first, uint64_t pages, Fn&& fn) {
    uint64_t end = first + pages;
    for (uint64_t p = first; p < end;) {
      uint64_t chunk_end = ((p >> kChunkShift) + 1) << kChunkShift;
      uint64_t stop = chunk_end < end ? chunk_end : end;
      // The chunk, not the map iterator: fn may create chunks (a rehash
      // moves no chunk). fn must not Trim.
      auto it = chunks_.find(p >> kChunkShift);
      if (it != chunks_.end()) {
        Chunk* c = it->second;
        for (uint64_t q = p; q < stop; q++) fn(q, c->e[q & (kChunkPages - 1)]);
      }
      p = stop;
    }
  }

  // Calls fn(page, entry&) for every existing entry.
  template <class Fn>
  void ForAll(Fn&& fn) {
    for (auto& [idx, chunk] : chunks_) {
      for (uint64_t i = 0; i < kChunkPages; i++) fn((idx << kChunkShift) | i, chunk->e[i]);
    }
  }

 private:
  struct Chunk {
    PageEntry e[kChunkPages];
  };
  Chunk* ChunkOf(uint64_t page, bool create);

  using ChunkMap = std::unordered_map<uint64_t, Chunk*, std::hash<uint64_t>, std::equal_to<uint64_t>,
                                      MetaAllocator<std::pair<const uint64_t, Chunk*>>>;
  ChunkMap chunks_;
  // Faults cluster: most lookups hit the chunk of the previous one.
  uint64_t last_index_ = ~uint64_t{0};
  Chunk* last_chunk_ = nullptr;
};

}  // namespace pager
