#include "page_codec.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "log.h"
#include "pager/store.h"

namespace pager {
namespace {

constexpr int kKeyBytes = 32;
constexpr int kTagBytes = 16;

// The GCM nonce: slot (4 bytes) then generation (8 bytes), little-endian. A
// generation is never reused under one key, so neither is a nonce.
void Nonce(uint32_t slot, uint64_t gen, unsigned char iv[12]) {
  for (int i = 0; i < 4; i++) iv[i] = static_cast<unsigned char>(slot >> (8 * i));
  for (int i = 0; i < 8; i++) iv[4 + i] = static_cast<unsigned char>(gen >> (8 * i));
}

}  // namespace

uint64_t PageChecksum(const void* page) { return XXH3_64bits(page, kPageSize); }

void KeepCryptoAtExit() { OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, nullptr); }

Result<std::unique_ptr<PageCodec>> PageCodec::Create(bool encrypt) {
  if (!encrypt) return std::unique_ptr<PageCodec>(new PageCodec(Mapping()));
  KeepCryptoAtExit();
  Mapping key = Mapping::Anonymous(kPageSize);
  if (!key.valid()) return Status::FromErrno("encryption key: mmap", errno);
  // Never on disk: not in swap (locked), not in a core dump, not in a fork
  // child (wiped there: 4.14; before, the child holds a copy of the key, as
  // it holds a copy of every page the key protects).
  if (mlock(key.data(), kPageSize) != 0) {
    PAGER_LOG_WARN("encryption key: mlock failed (%s); the key's page could be swapped by the kernel",
                   strerror(errno));
  }
  madvise(key.data(), kPageSize, MADV_DONTDUMP);
  madvise(key.data(), kPageSize, MADV_WIPEONFORK);
  for (int got = 0; got < kKeyBytes;) {
    ssize_t n = getrandom(key.data() + got, kKeyBytes - got, 0);
    if (n < 0 && errno != EINTR) return Status::FromErrno("encryption key: getrandom", errno);
    if (n > 0) got += static_cast<int>(n);
  }
  std::unique_ptr<PageCodec> codec(new PageCodec(std::move(key)));
  codec->lib_ = OSSL_LIB_CTX_new();
  if (codec->lib_ != nullptr) codec->cipher_ = EVP_CIPHER_fetch(codec->lib_, "AES-256-GCM", nullptr);
  if (codec->cipher_ == nullptr) return Status::Error("encryption: OpenSSL has no AES-256-GCM");
  return codec;
}

PageCodec::~PageCodec() {
  if (key_.valid()) explicit_bzero(key_.data(), kKeyBytes);
  EVP_CIPHER_free(cipher_);
  OSSL_LIB_CTX_free(lib_);
}

PageCodec::Session::Session(const PageCodec* codec) : codec_(codec) {
  if (codec_->encrypting()) ctx_ = EVP_CIPHER_CTX_new();
}

bool PageCodec::Session::Init(bool encrypt, const unsigned char iv[12]) {
  if (ctx_ == nullptr) return false;
  const int dir = encrypt ? 1 : 0;
  const bool first = dir_ != dir;
  dir_ = dir;
  return EVP_CipherInit_ex2(ctx_, first ? codec_->cipher_ : nullptr, first ? codec_->key() : nullptr, iv, dir,
                            nullptr) == 1;
}

// EVP_CIPHER_CTX_free cleanses the key schedule.
PageCodec::Session::~Session() { EVP_CIPHER_CTX_free(ctx_); }

bool PageCodec::Session::Seal(const std::byte* plain, std::byte* out, uint32_t slot, uint64_t gen, uint64_t sum,
                              PageSeal* seal) {
  seal->sum = sum;
  seal->gen = gen;
  if (!codec_->encrypting()) {
    if (out != plain) memcpy(out, plain, kPageSize);
    return true;
  }
  unsigned char iv[12];
  Nonce(slot, gen, iv);
  int n = 0, tail = 0;
  auto* o = reinterpret_cast<unsigned char*>(out);
  return Init(true, iv) && EVP_EncryptUpdate(ctx_, o, &n, reinterpret_cast<const unsigned char*>(plain), kPageSize) == 1 &&
         EVP_EncryptFinal_ex(ctx_, o + n, &tail) == 1 && n + tail == static_cast<int>(kPageSize) &&
         EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_GET_TAG, kTagBytes, seal->tag) == 1;
}

bool PageCodec::Session::Open(std::byte* buf, uint32_t slot, const PageSeal& seal) {
  if (!codec_->encrypting()) return PageChecksum(buf) == seal.sum;
  unsigned char iv[12];
  Nonce(slot, seal.gen, iv);
  int n = 0, tail = 0;
  auto* b = reinterpret_cast<unsigned char*>(buf);
  // The tag is checked by DecryptFinal: until then the buffer holds
  // unauthenticated plaintext, and on failure it is not installed.
  const bool ok = Init(false, iv) && EVP_DecryptUpdate(ctx_, b, &n, b, kPageSize) == 1 &&
                 EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_GCM_SET_TAG, kTagBytes, const_cast<uint8_t*>(seal.tag)) == 1 &&
                 EVP_DecryptFinal_ex(ctx_, b + n, &tail) == 1;
  if (!ok) dir_ = -1;  // a failed page leaves nothing behind for the next one
  return ok;
}

}  // namespace pager
