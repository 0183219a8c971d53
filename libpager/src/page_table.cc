#include "page_table.h"

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
  }
  return "invalid";
}

PageTable::Chunk* PageTable::ChunkOf(uint64_t page, bool create) {
  uint64_t idx = page >> kChunkShift;
  if (idx == last_index_) return last_chunk_;
  auto it = chunks_.find(idx);
  Chunk* c = nullptr;
  if (it != chunks_.end()) {
    c = it->second.get();
  } else if (create) {
    c = chunks_.emplace(idx, std::make_unique<Chunk>()).first->second.get();
  } else {
    return nullptr;
  }
  last_index_ = idx;
  last_chunk_ = c;
  return c;
}

PageEntry& PageTable::At(uint64_t page) {
  return ChunkOf(page, true)->e[page & (kChunkPages - 1)];
}

PageEntry* PageTable::Find(uint64_t page) {
  Chunk* c = ChunkOf(page, false);
  return c ? &c->e[page & (kChunkPages - 1)] : nullptr;
}

void PageTable::Trim(uint64_t first_page, uint64_t pages) {
  if (pages == 0) return;
  uint64_t first_chunk = first_page >> kChunkShift;
  uint64_t last_chunk = (first_page + pages - 1) >> kChunkShift;
  for (uint64_t idx = first_chunk; idx <= last_chunk; idx++) {
    auto it = chunks_.find(idx);
    if (it == chunks_.end()) continue;
    bool all_empty = true;
    for (const PageEntry& e : it->second->e) {
      if (e.raw() != 0) {
        all_empty = false;
        break;
      }
    }
    if (!all_empty) continue;
    if (idx == last_index_) {
      last_index_ = ~uint64_t{0};
      last_chunk_ = nullptr;
    }
    chunks_.erase(it);
  }
}

}  // namespace pager
