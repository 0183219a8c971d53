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
// made per batch (Session) and cleansed when it ends; each page then only
// sets its nonce.
//
// OpenSSL and exit: by default OpenSSL frees its global state in an atexit
// handler. The pager's threads outlive exit handlers (the preload never stops
// its pager: a late swap-in must still work), and a cipher used after that
// cleanup hung python at exit and crashed the JVM. So the codec keeps
// everything it uses to itself — its own library context, its cipher fetched
// once — and asks OpenSSL not to clean up at exit (KeepCryptoAtExit), which
// only works if asked before anything else initialises OpenSSL: the preload
// does so in its constructor. Either alone made the test pass; both stay,
// since a program that initialised OpenSSL first still gets the cleanup.
// Test: EncryptedExit.Issue10EncryptedProgramsExitCleanly (preload_test),
// which segfaults and hangs with neither.
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
typedef struct evp_cipher_st EVP_CIPHER;
typedef struct ossl_lib_ctx_st OSSL_LIB_CTX;

namespace pager {

// What the pager keeps about a slot's content (slot_allocator.h), in memory
// only.
struct PageSeal {
  uint64_t sum = 0;       // XXH3-64 of the plaintext
  uint64_t gen = 0;       // the write's generation: with the slot, the GCM nonce
  uint8_t tag[16] = {};   // the GCM tag (encryption only)
};

uint64_t PageChecksum(const void* page);

// Asks OpenSSL not to free its global state at exit (OPENSSL_INIT_NO_ATEXIT,
// 1.1.1b). Effective only before the process's first use of OpenSSL.
void KeepCryptoAtExit();

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
    // Sets the nonce, and the key and direction the first time (or when
    // the direction changes): the key schedule is computed once a session.
    bool Init(bool encrypt, const unsigned char iv[12]);
    const PageCodec* codec_;
    EVP_CIPHER_CTX* ctx_ = nullptr;
    int dir_ = -1;  // 1 encrypting, 0 decrypting, -1 no key set yet
  };
  Session Begin() const { return Session(this); }

 private:
  explicit PageCodec(Mapping key) : key_(std::move(key)) {}
  const unsigned char* key() const { return reinterpret_cast<const unsigned char*>(key_.data()); }
  Mapping key_;  // 32 bytes at its start; invalid without encryption
  OSSL_LIB_CTX* lib_ = nullptr;    // the codec's own: no global OpenSSL state
  EVP_CIPHER* cipher_ = nullptr;   // AES-256-GCM, fetched once
};

}  // namespace pager
