/* An unmodified program, for pagerctl run: mallocs MIB MiB (one block, so
 * an mmap the preload pages), writes a pattern in every word, reads it all
 * back twice (the second pass after everything was written, so swapped
 * pages come back). Exits 0, or 1 naming the first wrong byte.
 *
 *   touch MIB */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static uint64_t word(uint64_t i) { return i * 0x9e3779b97f4a7c15ull ^ 0x68e31da4; }

int main(int argc, char** argv) {
  uint64_t n, i, pass;
  uint64_t* words;
  if (argc != 2) {
    fprintf(stderr, "usage: touch MIB\n");
    return 2;
  }
  n = strtoull(argv[1], NULL, 10) << 20;
  words = malloc(n);
  if (words == NULL) {
    fprintf(stderr, "touch: malloc of %" PRIu64 " bytes failed\n", n);
    return 1;
  }
  for (i = 0; i < n / 8; i++) words[i] = word(i);
  for (pass = 0; pass < 2; pass++) {
    for (i = 0; i < n / 8; i++) {
      if (words[i] != word(i)) {
        fprintf(stderr, "touch: byte %" PRIu64 ": expected %016" PRIx64 ", found %016" PRIx64 "\n", i * 8, word(i),
                words[i]);
        return 1;
      }
    }
  }
  free(words);
  printf("touch: %" PRIu64 " MiB written and read back twice\n", n >> 20);
  return 0;
}
