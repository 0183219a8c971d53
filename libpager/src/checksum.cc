#include "checksum.h"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "pager/store.h"

namespace pager {

uint64_t PageChecksum(const void* page) { return XXH3_64bits(page, kPageSize); }

}  // namespace pager
