// PageEntry's bit packing and PageTable's chunked storage.
#include "page_table.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

namespace pager {
namespace {

constexpr PageState kAllStates[] = {PageState::kEmpty,   PageState::kResident, PageState::kInactive,
                                    PageState::kReading, PageState::kWriting,  PageState::kSwapped,
                                    PageState::kPoisoned};

// Every field of an entry, as a plain struct to compare against.
struct Fields {
  PageState state = PageState::kEmpty;
  bool referenced = false, queued_active = false, queued_inactive = false;
  uint32_t aux = 0;
  bool has_slot = false;
  uint32_t slot = 0;

  bool operator==(const Fields&) const = default;
};

// The entry of `page`, created if needed (the table's Create, checked).
PageEntry& At(PageTable& t, uint64_t page) {
  PageEntry* e = t.Create(page);
  EXPECT_NE(e, nullptr);
  return *e;
}

Fields Read(const PageEntry& e) {
  Fields f;
  f.state = e.state();
  f.referenced = e.referenced();
  f.queued_active = e.queued_active();
  f.queued_inactive = e.queued_inactive();
  f.aux = e.aux();
  f.has_slot = e.has_slot();
  if (f.has_slot) f.slot = e.slot();
  return f;
}

void Write(PageEntry& e, const Fields& f) {
  e.set_state(f.state);
  e.set_referenced(f.referenced);
  e.set_queued_active(f.queued_active);
  e.set_queued_inactive(f.queued_inactive);
  e.set_aux(f.aux);
  if (f.has_slot) {
    e.set_slot(f.slot);
  } else {
    e.clear_slot();
  }
}

std::ostream& operator<<(std::ostream& os, const Fields& f) {
  return os << "{state=" << PageStateName(f.state) << " ref=" << f.referenced << " qa=" << f.queued_active
            << " qi=" << f.queued_inactive << " aux=" << f.aux
            << " slot=" << (f.has_slot ? std::to_string(f.slot) : "none") << "}";
}

constexpr uint32_t kMaxSlot = 0xFFFFFFFEu;  // kNoSlot - 1: the largest slot an entry can hold

TEST(PageEntry, IsEightBytesAndStartsEmptyWithNoSlot) {
  static_assert(sizeof(PageEntry) == 8, "the page table promises 8 bytes a page");
  PageEntry e;
  EXPECT_EQ(e.raw(), 0u);
  EXPECT_EQ(Read(e), Fields{});
  EXPECT_FALSE(e.has_slot());
}

TEST(PageTable, ChunkCostsEightBytesPerEntry) {
  // "8 bytes a page": a chunk's entries sit back to back, 4 KiB per 512 pages.
  PageTable t;
  PageEntry* first = &At(t, 0);
  PageEntry* last = &At(t, PageTable::kChunkPages - 1);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(last) - reinterpret_cast<uintptr_t>(first),
            (PageTable::kChunkPages - 1) * 8);
  EXPECT_EQ(PageTable::kChunkPages * sizeof(PageEntry), 4096u);
}

TEST(PageEntry, EveryStateTransitionKeepsTheOtherFields) {
  // From every state to every state: a setter that ORs instead of replacing
  // the state bits, or touches the flags next to them, shows here.
  Fields other{PageState::kEmpty, true, false, true, 0xABCDEF, true, 0x12345678};
  for (PageState from : kAllStates) {
    for (PageState to : kAllStates) {
      PageEntry e;
      Fields want = other;
      want.state = from;
      Write(e, want);
      e.set_state(to);
      want.state = to;
      EXPECT_EQ(Read(e), want) << PageStateName(from) << " -> " << PageStateName(to);
    }
  }
}

TEST(PageEntry, EachFlagSetsAndClearsAlone) {
  using Setter = void (PageEntry::*)(bool);
  using Getter = bool (PageEntry::*)() const;
  struct Flag {
    const char* name;
    Setter set;
    Getter get;
  };
  const Flag flags[] = {
      {"referenced", &PageEntry::set_referenced, &PageEntry::referenced},
      {"queued_active", &PageEntry::set_queued_active, &PageEntry::queued_active},
      {"queued_inactive", &PageEntry::set_queued_inactive, &PageEntry::queued_inactive},
  };
  // Against an all-clear and an all-set background: a setter that writes the
  // wrong bit, or clears its neighbours, changes some other getter.
  for (bool background : {false, true}) {
    Fields base;
    base.state = PageState::kWriting;
    base.referenced = base.queued_active = base.queued_inactive = background;
    base.aux = PageEntry::kMaxAux;
    base.has_slot = true;
    base.slot = kMaxSlot;
    for (const Flag& f : flags) {
      PageEntry e;
      Write(e, base);
      (e.*f.set)(!background);
      EXPECT_EQ((e.*f.get)(), !background) << f.name;
      for (const Flag& g : flags) {
        if (&g != &f) {
          EXPECT_EQ((e.*g.get)(), background) << f.name << " changed " << g.name;
        }
      }
      EXPECT_EQ(e.state(), PageState::kWriting) << f.name;
      EXPECT_EQ(e.aux(), PageEntry::kMaxAux) << f.name;
      EXPECT_EQ(e.slot(), kMaxSlot) << f.name;
      (e.*f.set)(background);
      EXPECT_EQ(Read(e), base) << f.name << " did not restore";
    }
  }
}

TEST(PageEntry, MaxAuxDoesNotSpillIntoFlagsOrSlot) {
  PageEntry e;
  e.set_aux(PageEntry::kMaxAux);
  EXPECT_EQ(e.aux(), PageEntry::kMaxAux);
  EXPECT_EQ(e.state(), PageState::kEmpty);
  EXPECT_FALSE(e.referenced() || e.queued_active() || e.queued_inactive());
  EXPECT_FALSE(e.has_slot());
  e.set_aux(0);
  EXPECT_EQ(e.raw(), 0u);
}

TEST(PageEntry, OversizedAuxIsCutToItsFieldNotSpilledIntoTheSlot) {
  PageEntry e;
  e.set_slot(5);
  e.set_aux(0xFFFFFFFFu);
  EXPECT_EQ(e.aux(), PageEntry::kMaxAux);
  EXPECT_EQ(e.slot(), 5u);
  EXPECT_EQ(e.state(), PageState::kEmpty);
  EXPECT_FALSE(e.referenced() || e.queued_active() || e.queued_inactive());
}

TEST(PageEntry, AuxChangeKeepsStateFlagsAndSlot) {
  PageEntry e;
  Fields f{PageState::kReading, true, true, true, 7, true, 99};
  Write(e, f);
  for (uint32_t aux : {0u, 1u, 0x800000u, PageEntry::kMaxAux, 0x5A5A5Au}) {
    e.set_aux(aux);
    f.aux = aux;
    EXPECT_EQ(Read(e), f);
  }
}

TEST(PageEntry, SlotZeroIsDistinctFromNoSlot) {
  PageEntry e;
  EXPECT_FALSE(e.has_slot());
  e.set_slot(0);
  EXPECT_TRUE(e.has_slot());
  EXPECT_EQ(e.slot(), 0u);
  e.clear_slot();
  EXPECT_FALSE(e.has_slot());
}

TEST(PageEntry, MaxSlotRoundTrips) {
  PageEntry e;
  e.set_slot(kMaxSlot);
  EXPECT_TRUE(e.has_slot());
  EXPECT_EQ(e.slot(), kMaxSlot);
  EXPECT_EQ(e.aux(), 0u);
  EXPECT_EQ(e.state(), PageState::kEmpty);
}

TEST(PageEntry, SlotChangeKeepsStateFlagsAndAux) {
  PageEntry e;
  Fields f{PageState::kSwapped, true, false, true, PageEntry::kMaxAux, false, 0};
  Write(e, f);
  for (uint32_t slot : {0u, 1u, 0x7FFFFFFFu, 0x80000000u, kMaxSlot, 12345u}) {
    e.set_slot(slot);
    f.has_slot = true;
    f.slot = slot;
    EXPECT_EQ(Read(e), f) << "slot " << slot;
  }
  e.clear_slot();
  f.has_slot = false;
  f.slot = 0;
  EXPECT_EQ(Read(e), f);
}

TEST(PageEntry, RandomFieldCombinationsRoundTrip) {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 100000; i++) {
    Fields f;
    f.state = kAllStates[rng() % 7];
    f.referenced = rng() & 1;
    f.queued_active = rng() & 1;
    f.queued_inactive = rng() & 1;
    f.aux = static_cast<uint32_t>(rng()) & PageEntry::kMaxAux;
    f.has_slot = rng() & 1;
    f.slot = f.has_slot ? static_cast<uint32_t>(rng() % (uint64_t{kMaxSlot} + 1)) : 0;
    // Start from random garbage: every setter must fully overwrite its field.
    PageEntry e(rng());
    Write(e, f);
    ASSERT_EQ(Read(e), f) << "iteration " << i;
    // And the packing survives the raw round trip the table relies on.
    ASSERT_EQ(Read(PageEntry(e.raw())), f);
  }
}

TEST(PageTable, FindDoesNotCreateAndAtCreatesEmpty) {
  PageTable t;
  EXPECT_EQ(t.Find(12345), nullptr);
  EXPECT_EQ(t.chunk_count(), 0u);
  PageEntry& e = At(t, 12345);
  EXPECT_EQ(t.chunk_count(), 1u);
  EXPECT_EQ(e.raw(), 0u);
  EXPECT_EQ(t.Find(12345), &e);
  // Neighbours in the same chunk exist (kEmpty); the next chunk does not.
  const uint64_t chunk_first = 12345 & ~(PageTable::kChunkPages - 1);
  ASSERT_NE(t.Find(chunk_first), nullptr);
  EXPECT_EQ(t.Find(chunk_first)->raw(), 0u);
  EXPECT_EQ(t.Find(chunk_first + PageTable::kChunkPages), nullptr);
  EXPECT_EQ(t.Find(chunk_first - 1), nullptr);
}

TEST(PageTable, EntriesAcrossChunkBoundariesAreDistinct) {
  PageTable t;
  const uint64_t k = PageTable::kChunkPages;
  const uint64_t pages[] = {0, 1, k - 1, k, k + 1, 2 * k - 1, 2 * k, 1000 * k + 3, (uint64_t{1} << 40) + 7};
  for (uint64_t p : pages) At(t, p).set_slot(static_cast<uint32_t>(p % 1000003));
  // Interleave lookups so the last-chunk cache is exercised in both orders.
  for (uint64_t p : pages) {
    ASSERT_NE(t.Find(p), nullptr) << p;
    EXPECT_EQ(t.Find(p)->slot(), p % 1000003) << p;
    EXPECT_EQ(At(t, p).slot(), p % 1000003) << p;
  }
  for (size_t i = std::size(pages); i-- > 0;) EXPECT_EQ(At(t, pages[i]).slot(), pages[i] % 1000003);
  EXPECT_EQ(t.chunk_count(), 5u);  // {0, 1, 2, 1000, 2^31} chunks
}

TEST(PageTable, MatchesAMapUnderRandomAccess) {
  PageTable t;
  std::map<uint64_t, uint64_t> shadow;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100000; i++) {
    // Mostly clustered, sometimes far: both the cache hit and the miss.
    uint64_t page = (rng() % 16 == 0) ? rng() % (uint64_t{1} << 36) : rng() % (8 * PageTable::kChunkPages);
    if (rng() & 1) {
      PageEntry e;
      e.set_state(kAllStates[1 + rng() % 6]);
      e.set_aux(static_cast<uint32_t>(rng()) & PageEntry::kMaxAux);
      e.set_slot(static_cast<uint32_t>(rng() % kMaxSlot));
      At(t, page) = e;
      shadow[page] = e.raw();
    } else {
      PageEntry* e = t.Find(page);
      auto it = shadow.find(page);
      uint64_t want = it == shadow.end() ? 0 : it->second;
      ASSERT_EQ(e ? e->raw() : 0, want) << "page " << page;
    }
  }
}

TEST(PageTable, ForRangeVisitsExactlyTheExistingPagesInOrder) {
  PageTable t;
  const uint64_t k = PageTable::kChunkPages;
  // Chunks 1 and 3 exist; 0, 2 and 4 do not.
  At(t, k + 5).set_state(PageState::kResident);
  At(t, 3 * k + 7).set_state(PageState::kSwapped);
  const uint64_t first = k - 10, pages = 4 * k + 20;  // from chunk 0 into chunk 4
  std::vector<uint64_t> seen;
  t.ForRange(first, pages, [&](uint64_t page, PageEntry& e) {
    seen.push_back(page);
    if (page == k + 5) {
      EXPECT_EQ(e.state(), PageState::kResident);
    }
    if (page == 3 * k + 7) {
      EXPECT_EQ(e.state(), PageState::kSwapped);
    }
    EXPECT_EQ(&e, t.Find(page));
  });
  std::vector<uint64_t> want;
  for (uint64_t p = k; p < 2 * k; p++) want.push_back(p);
  for (uint64_t p = 3 * k; p < 4 * k; p++) want.push_back(p);
  EXPECT_EQ(seen, want);
  EXPECT_EQ(t.chunk_count(), 2u) << "ForRange must not create chunks";
}

TEST(PageTable, ForRangeStopsAtTheRangeInsideAChunk) {
  PageTable t;
  const uint64_t k = PageTable::kChunkPages;
  for (uint64_t p = 0; p < 3 * k; p++) At(t, p).set_aux(static_cast<uint32_t>(p));
  std::vector<uint64_t> seen;
  // Starts mid-chunk 0, crosses all of chunk 1, ends mid-chunk 2.
  t.ForRange(k - 3, k + 6, [&](uint64_t page, PageEntry& e) {
    EXPECT_EQ(e.aux(), page);
    seen.push_back(page);
  });
  ASSERT_EQ(seen.size(), k + 6);
  for (size_t i = 0; i < seen.size(); i++) EXPECT_EQ(seen[i], k - 3 + i);
  // Writes through ForRange land in the table.
  t.ForRange(5, 1, [](uint64_t, PageEntry& e) { e.set_state(PageState::kPoisoned); });
  EXPECT_EQ(At(t, 5).state(), PageState::kPoisoned);
  EXPECT_EQ(At(t, 4).state(), PageState::kEmpty);
  EXPECT_EQ(At(t, 6).state(), PageState::kEmpty);
}

TEST(PageTable, TrimFreesOnlyChunksWhoseEntriesAreAllEmpty) {
  PageTable t;
  const uint64_t k = PageTable::kChunkPages;
  At(t, 0);                                              // chunk 0: all empty
  At(t, k + 511).set_state(PageState::kSwapped);         // chunk 1: last entry in use
  At(t, 2 * k).set_queued_inactive(true);                // chunk 2: only a queue bit
  At(t, 3 * k + 100).set_slot(0);                        // chunk 3: kEmpty state, but a slot
  At(t, 4 * k + 1);                                      // chunk 4: all empty
  At(t, 5 * k + 2).set_referenced(true);                 // chunk 5: only referenced
  ASSERT_EQ(t.chunk_count(), 6u);
  t.Trim(0, 6 * k);
  EXPECT_EQ(t.Find(0), nullptr);
  EXPECT_EQ(t.Find(4 * k + 1), nullptr);
  ASSERT_NE(t.Find(k + 511), nullptr);
  EXPECT_EQ(t.Find(k + 511)->state(), PageState::kSwapped);
  ASSERT_NE(t.Find(2 * k), nullptr);
  EXPECT_TRUE(t.Find(2 * k)->queued_inactive());
  ASSERT_NE(t.Find(3 * k + 100), nullptr);
  EXPECT_TRUE(t.Find(3 * k + 100)->has_slot());
  ASSERT_NE(t.Find(5 * k + 2), nullptr);
  EXPECT_EQ(t.chunk_count(), 4u);
}

TEST(PageTable, TrimLeavesChunksOutsideTheRange) {
  PageTable t;
  const uint64_t k = PageTable::kChunkPages;
  for (uint64_t c = 0; c < 4; c++) At(t, c * k);  // four all-empty chunks
  t.Trim(k, 2 * k);                                // exactly chunks 1 and 2
  EXPECT_NE(t.Find(0), nullptr);
  EXPECT_EQ(t.Find(k), nullptr);
  EXPECT_EQ(t.Find(2 * k), nullptr);
  EXPECT_NE(t.Find(3 * k), nullptr);
  EXPECT_EQ(t.chunk_count(), 2u);
}

TEST(PageTable, TrimmedChunkIsNotReachedThroughTheLookupCache) {
  PageTable t;
  const uint64_t k = PageTable::kChunkPages;
  At(t, k + 3);  // chunk 1 is now the cached chunk
  t.Trim(k, k);
  EXPECT_EQ(t.chunk_count(), 0u);
  // A stale cache would hand back the freed chunk here.
  EXPECT_EQ(t.Find(k + 3), nullptr);
  At(t, k + 3).set_state(PageState::kResident);
  EXPECT_EQ(t.chunk_count(), 1u);
  ASSERT_NE(t.Find(k + 3), nullptr);
  EXPECT_EQ(t.Find(k + 3)->state(), PageState::kResident);
  EXPECT_EQ(t.Find(k + 4)->raw(), 0u) << "a recreated chunk starts empty";
}

TEST(PageTable, ForAllVisitsEveryEntryOfEveryChunk) {
  PageTable t;
  const uint64_t k = PageTable::kChunkPages;
  At(t, 3).set_aux(1);
  At(t, 7 * k + 9).set_aux(2);
  uint64_t count = 0, aux_sum = 0;
  bool saw_3 = false, saw_far = false;
  t.ForAll([&](uint64_t page, PageEntry& e) {
    count++;
    aux_sum += e.aux();
    if (page == 3) saw_3 = e.aux() == 1;
    if (page == 7 * k + 9) saw_far = e.aux() == 2;
  });
  EXPECT_EQ(count, 2 * k);
  EXPECT_EQ(aux_sum, 3u);
  EXPECT_TRUE(saw_3);
  EXPECT_TRUE(saw_far);
}

}  // namespace
}  // namespace pager
