#include "page_table.h"

#include <iterator>
#include <new>

namespace pager {

const char* PageStateName(PageState s) {
  switch (s) {
    case PageState::kEmpty: return "empty";
    case PageState::kResident: return "resident";
    case PageState::kInactive: return "inactive";
    case PageState::kReading: return "reading";
    case PageState::kWriting: return "writing";
    case PageState::kSwapped: return "swapped";
    case PageState::kPoisoned: return "poisoned";
    case PageState::kSealing: return "sealing";
  }
  return "invalid";
}

PageTable::~PageTable() {
  for (auto& [idx, c] : chunks_) MetaFree(c, sizeof(Chunk));
}

PageTable::Chunk* PageTable::ChunkOf(uint64_t page, bool create) {
  uint64_t idx = page >> kChunkShift;
  if (idx == last_index_) return last_chunk_;
  auto it = chunks_.find(idx);
  Chunk* c = nullptr;
  if (it != chunks_.end()) {
    c = it->second;
  } else if (create) {
    void* mem = MetaAlloc(sizeof(Chunk));
    if (mem == nullptr) return nullptr;
    c = new (mem) Chunk();  // zeroed: every entry kEmpty
    try {
      chunks_.emplace(idx, c);
    } catch (const std::bad_alloc&) {
      MetaFree(c, sizeof(Chunk));
      return nullptr;
    }
  } else {
    return nullptr;
  }
  last_index_ = idx;
  last_chunk_ = c;
  return c;
}

PageEntry* PageTable::Create(uint64_t page) {
  Chunk* c = ChunkOf(page, true);
  return c ? &c->e[page & (kChunkPages - 1)] : nullptr;
}

PageEntry* PageTable::Find(uint64_t page) {
  Chunk* c = ChunkOf(page, false);
  return c ? &c->e[page & (kChunkPages - 1)] : nullptr;
}

void PageTable::Trim(uint64_t first_page, uint64_t pages) {
  if (pages == 0) return;
  uint64_t first_chunk = first_page >> kChunkShift;
  uint64_t last_chunk = (first_page + pages - 1) >> kChunkShift;
  // Unmapped ranges can be huge and sparse: look up only chunks that exist.
  auto consider = [this](uint64_t idx, Chunk* c) {
    for (const PageEntry& e : c->e) {
      if (e.raw() != 0) return;
    }
    if (idx == last_index_) {
      last_index_ = ~uint64_t{0};
      last_chunk_ = nullptr;
    }
    chunks_.erase(idx);
    MetaFree(c, sizeof(Chunk));
  };
  if (last_chunk - first_chunk + 1 > chunks_.size()) {
    for (auto it = chunks_.begin(); it != chunks_.end();) {
      auto next = std::next(it);
      if (it->first >= first_chunk && it->first <= last_chunk) consider(it->first, it->second);
      it = next;
    }
    return;
  }
  for (uint64_t idx = first_chunk; idx <= last_chunk; idx++) {
    auto it = chunks_.find(idx);
    if (it != chunks_.end()) consider(idx, it->second);
  }
}

}  // namespace pager
