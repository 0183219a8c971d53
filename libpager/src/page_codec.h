// What a page becomes on its way to the store and back.
//
// Sealed on the way out: its checksum is taken (XXH3-64 of the plaintext),
// and with encryption it is encrypted and authenticated (AES-256-GCM,
// OpenSSL's EVP interface). Opened on the way in: decrypted and its tag
// checked, or, without encryption, its checksum checked. A page that does
// not open is never installed: the pager poisons it (SIGBUS on touch).
//
// The checksum has a second use with or without encryption: a page whose
// content still hashes to its slot's checksum is clean, dropped at eviction
// without a write. 64 bits, not crc32c, because that use trusts equality: a
// modified page mistaken for clean would be a lost write.
//
// Encryption, when on: one fresh random key per pager (getrandom), in a page
// of its own that is locked, excluded from core dumps (MADV_DONTDUMP) and
// wiped in fork children (MADV_WIPEONFORK, 4.14), never written anywhere. The
// nonce is the slot and the write's generation (a per-pager counter, never
// reused), so a page altered, moved to another slot, or replayed from an older
// write of its slot fails its tag. The key schedule lives in a cipher context
// made per call (Session) and cleansed when it ends.
//
// Thread-safe: Seal and Open run on the pager's seal worker and on the
// stores' completion threads at once; each caller uses its own Session.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "pager/status.h"
#include "unique_fd.h"

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace pager {

// What the pager keeps about a slot's content (slot_allocator.h), in memory
// only.
struct PageSeal {
  uint64_t sum = 0;       // XXH3-64 of the plaintext
  uint64_t gen = 0;       // the write's generation: with the slot, the GCM nonce
  uint8_t tag[16] = {};   // the GCM tag (encryption only)
};

uint64_t PageChecksum(const void* page);

class PageCodec {
 public:
  // `encrypt`: a fresh key, as above; else checksums only.
  static Result<std::unique_ptr<PageCodec>> Create(bool encrypt);
  ~PageCodec();
  PageCodec(const PageCodec&) = delete;
  PageCodec& operator=(const PageCodec&) = delete;

  bool encrypting() const { return key_.valid(); }

  // One caller's cipher context, for a batch of pages.
  class Session {
   public:
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    // Seals `plain` for `slot`, write generation `gen`: `out` gets what goes
    // to the store (the ciphertext, or a copy of the page); `seal` gets the
    // plaintext's checksum (which the caller may have computed: `sum`), the
    // generation and the tag. False only if the cipher failed (a bug).
    bool Seal(const std::byte* plain, std::byte* out, uint32_t slot, uint64_t gen, uint64_t sum,
              PageSeal* seal);
    // Opens a page read from `slot` in place: true, with the plaintext in
    // `buf`, if it is what `seal` describes (tag, or checksum, matches).
    bool Open(std::byte* buf, uint32_t slot, const PageSeal& seal);

   private:
    friend class PageCodec;
    explicit Session(const PageCodec* codec);
    const PageCodec* codec_;
    EVP_CIPHER_CTX* ctx_ = nullptr;
  };
  Session Begin() const { return Session(this); }

 private:
  explicit PageCodec(Mapping key) : key_(std::move(key)) {}
  const unsigned char* key() const { return reinterpret_cast<const unsigned char*>(key_.data()); }
  Mapping key_;  // 32 bytes at its start; invalid without encryption
};

}  // namespace pager
