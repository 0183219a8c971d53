// Where the pages of a store over several servers live: the extent map.
//
// Slots are grouped in extents of kExtentPages consecutive slots (1 MiB), so
// that a write-back run stays whole on few servers and sequential there. Each
// extent has up to two copies, each on another server, at the same offset of
// that server's swap file (the files are sparse: an extent takes room only on
// the servers that hold it). An extent is placed when it is first written, on
// `replicas` servers: the usable ones with the fewest extents, so that
// servers fill evenly, a server back from an outage catches up, and
// consecutive extents stripe across them.
//
// Owned by the store's coordinating thread (replicated_store_impl.h); not
// thread-safe. Grows with the swap in use, from metadata memory (meta_alloc.h).
//
// Invariants (Check() verifies them; the unit tests call it):
//   - an extent's two copy slots hold kNoServer or a server, never the same
//     server twice;
//   - extents_on(s) == the number of extents with a copy on s;
//   - under_replicated_pages() == the sum of high_water over the extents
//     with at least one copy and fewer than `replicas`.
#pragma once

#include <cstdint>
#include <vector>

#include "meta_alloc.h"
#include "stats.h"

namespace pager::replicated {

inline constexpr uint32_t kExtentPages = 256;  // 1 MiB: one full run of the pager, one NFS transfer
inline constexpr uint8_t kNoServer = 0xff;
inline constexpr int kMaxCopies = 2;

// How usable a server is for new copies, best first.
enum class Usability : uint8_t {
  kGood = 0,       // answering (if late)
  kDegraded = 1,   // reconnecting: a first copy only if no good server is left
  kUnusable = 2,   // down: a first copy only if no other server is left at all
};

struct Extent {
  uint8_t server[kMaxCopies] = {kNoServer, kNoServer};  // copy slots
  uint16_t high_water = 0;        // pages written at least once, from the extent's start
  uint16_t writes_in_flight = 0;  // write pieces on the way to its copies
  bool copying = false;           // a copy to another server is under way: writes wait
  // A bit per page: its last read was answered by copy slot 1 (else 0). A
  // read retried after a failed check asks the other copy (StoreOp::attempt).
  uint64_t served_by_second[kExtentPages / 64] = {};

  int copies() const { return (server[0] != kNoServer) + (server[1] != kNoServer); }
  bool placed() const { return copies() > 0; }
  int SlotOf(int s) const { return server[0] == s ? 0 : server[1] == s ? 1 : -1; }
  bool ServedBySecond(uint32_t page) const { return (served_by_second[page / 64] >> (page % 64)) & 1; }
};

class ExtentMap {
 public:
  ExtentMap(int servers, int replicas);

  int servers() const { return servers_; }
  int replicas() const { return replicas_; }
  uint64_t size() const { return extents_.size(); }

  // The extent, or nullptr if it was never placed.
  const Extent* Find(uint64_t e) const;
  // The extent, the map grown to hold it.
  Extent& At(uint64_t e);

  // Places an extent that has no copy on min(replicas, servers) servers:
  // the best usable ones (`usability[s]`), with the fewest extents (so that
  // consecutive extents land on other servers), ties broken by the order of
  // the list. Copies after the first go to good servers only: with none
  // left the extent starts under-replicated.
  void Place(uint64_t e, const Usability* usability);

  // Adds a copy on server `s` to a placed extent with a free slot.
  void AddCopy(uint64_t e, int s);
  // Removes the copy on `s`, if the extent has another one: an extent never
  // loses its last copy (its pages would be gone). True if removed.
  bool DropCopy(uint64_t e, int s);
  // DropCopy(e, s) for every extent; returns how many lost their copy on s.
  uint64_t DropServer(int s);

  // A write of pages [first, first + pages) of the extent has reached its copies.
  void NoteWritten(uint64_t e, uint32_t first, uint32_t pages);
  // The pages [first, first + pages) were read from copy slot `slot`.
  void NoteServed(uint64_t e, uint32_t first, uint32_t pages, int slot);

  // The next placed extent at or after `*cursor` (wrapping around the map)
  // with fewer copies than `replicas` and not being copied; *cursor moves
  // past it. Looks at `*budget` extents at most, counting them down: -1 when
  // the budget runs out first.
  int64_t NextUnderReplicated(uint64_t* cursor, uint64_t* budget) const;

  uint64_t extents_on(int s) const { return extents_on_[s]; }
  uint64_t under_replicated_pages() const { return under_replicated_pages_; }

  // Whether every invariant of the header holds (tests).
  bool Check() const;

 private:
  // Pages an extent adds to under_replicated_pages_.
  uint64_t Shortfall(const Extent& x) const;
  void SetServer(Extent& x, int slot, uint8_t s);

  const int servers_;
  const int replicas_;
  std::vector<Extent, MetaAllocator<Extent>> extents_;
  uint64_t extents_on_[kMaxServers] = {};
  uint64_t under_replicated_pages_ = 0;
};

}  // namespace pager::replicated
