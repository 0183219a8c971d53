// Page checksums: XXH3-64 of a 4 KiB page.
//
// One checksum per slot serves two purposes: integrity (checked at every
// swap-in; a mismatch poisons the page instead of returning garbage) and
// cleanliness (a page whose content still hashes to its slot's checksum is
// dropped without write-back). 64 bits, not crc32c, because the second use
// trusts equality: a modified page mistaken for clean would be a lost write,
// so the odds must be 2^-64, not 2^-32.
#pragma once

#include <cstdint>

namespace pager {

uint64_t PageChecksum(const void* page);

}  // namespace pager
