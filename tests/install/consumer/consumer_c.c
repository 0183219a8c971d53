/* Uses the C API of an installed libpager (pager/pager_c.h) from C: a region
 * far over the limit written and read back in full.
 *
 *   consumer_c SWAP
 * Prints "ok ..." and exits 0, or names what is wrong and exits 1. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "pager/pager_c.h"

#define LIMIT (8u << 20)
#define BYTES (64u << 20)

static uint64_t word(uint64_t i) { return i * 0x9e3779b97f4a7c15ull ^ 0x2545f491; }

int main(int argc, char** argv) {
  char err[512];
  pager_config_t cfg;
  pager_stats_t s;
  pager_t* p;
  uint64_t* words;
  uint64_t i;
  if (argc != 2) {
    fprintf(stderr, "usage: consumer_c SWAP\n");
    return 1;
  }
  memset(&cfg, 0, sizeof cfg);
  cfg.memory_limit = LIMIT;
  cfg.swap = argv[1];
  p = pager_create(&cfg, err, sizeof err);
  if (p == NULL) {
    fprintf(stderr, "consumer_c: pager_create: %s\n", err);
    return 1;
  }
  words = pager_map(p, BYTES, err, sizeof err);
  if (words == NULL) {
    fprintf(stderr, "consumer_c: pager_map: %s\n", err);
    return 1;
  }
  for (i = 0; i < BYTES / 8; i++) words[i] = word(i);
  /* The first page stays in memory through the read-back; the C pin calls
   * link and say yes. */
  if (pager_pin(p, words, 4096) != 0 || pager_pin_this_thread(p) != 0) {
    fprintf(stderr, "consumer_c: pager_pin or pager_pin_this_thread failed\n");
    return 1;
  }
  for (i = 0; i < BYTES / 8; i++) {
    if (words[i] != word(i)) {
      fprintf(stderr, "consumer_c: byte %" PRIu64 ": expected %016" PRIx64 ", found %016" PRIx64 "\n", i * 8,
              word(i), words[i]);
      return 1;
    }
  }
  if (pager_unpin(p, words, 4096) != 0 || pager_pin(p, &err, 1) != -1) {
    fprintf(stderr, "consumer_c: pager_unpin failed, or pinning unpaged memory did not fail\n");
    return 1;
  }
  pager_get_stats(p, &s);
  if (s.faults_swapin == 0 || s.evictions_written == 0) {
    fprintf(stderr, "consumer_c: nothing was paged out and back\n");
    return 1;
  }
  if (pager_unmap(p, words, BYTES) != 0) {
    fprintf(stderr, "consumer_c: pager_unmap failed\n");
    return 1;
  }
  pager_destroy(p);
  printf("ok: %u MiB through a %u MiB limit on %s, every byte read back (%" PRIu64 " swap-ins)\n", BYTES >> 20,
         LIMIT >> 20, argv[1], s.faults_swapin);
  return 0;
}
