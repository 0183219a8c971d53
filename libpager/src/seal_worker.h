// The seal worker: the part of write-back that reads every byte of a page,
// off the pager thread.
//
// The pager thread picks a batch of inactive pages and pins their frames
// (state kSealing: a re-touch is served from the frame, which stays until the
// batch returns). This thread then, per page: takes its checksum (measured:
// the checksum pass was 48% of the pager thread's CPU on a sequential scan
// over NFS, issue 11), tells an all-zero page and a clean one (its checksum
// is its slot's: no write) from a dirty one, and seals the dirty ones into
// the batch's staging buffer (a copy, or with encryption the ciphertext; each
// at its own slot of the run allocated for the batch). The batch goes back to
// the pager thread, which writes the dirty runs.
//
// Thread-safe: Submit from the pager thread; the worker posts each finished
// batch through `done`.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "frames.h"
#include "page_codec.h"
#include "reserve_arena.h"

namespace pager {

struct Op;

class SealWorker {
 public:
  SealWorker(const Frames& frames, const PageCodec& codec);
  ~SealWorker();
  SealWorker(const SealWorker&) = delete;
  SealWorker& operator=(const SealWorker&) = delete;

  // Starts the thread (with the caller's signal mask), bound to `arena`;
  // `done` is called on it for each finished batch.
  void Start(const ReserveArena* arena, std::function<void(Op*)> done);
  void Submit(Op* batch);

 private:
  void Work(const ReserveArena* arena);
  void Seal(Op* batch);

  const Frames& frames_;
  const PageCodec& codec_;
  std::function<void(Op*)> done_;  // set by Start, before the thread runs
  const uint64_t zero_sum_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Op*> queue_;  // guarded by mu_
  bool stop_ = false;      // guarded by mu_
  std::thread thread_;
};

}  // namespace pager
