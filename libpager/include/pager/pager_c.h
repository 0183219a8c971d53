/* libpager's C API: the same pager as pager.h, for C programs and the
 * preload. Errors are returned as text in a caller's buffer. */
#ifndef PAGER_PAGER_C_H_
#define PAGER_PAGER_C_H_

#include <stddef.h>
#include <stdint.h>

#include "pager/export.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pager_s pager_t;

typedef struct {
  uint64_t memory_limit;     /* bytes; required */
  const char* swap;          /* dir, file:///dir, nfs://..., memory:; NULL = default */
  uint64_t swap_max;         /* bytes; 0 = no cap */
  uint64_t reserve;          /* bytes; 0 = 1% of limit, 8 MiB to 64 MiB */
  uint32_t readahead_pages;  /* 0 = default (64) */
  uint32_t connect_timeout_ms; /* 0 = default (10000) */
  const char* disable;       /* features to treat as absent; NULL = none */
} pager_config_t;

typedef struct {
  uint64_t limit_bytes, resident_bytes, swapped_bytes, mapped_bytes;
  uint64_t faults_zero, faults_inactive, faults_swapin;
  uint64_t evictions_clean, evictions_written, bytes_read, bytes_written;
  uint64_t reserve_bytes, reserve_free_bytes, throttle_events, throttled_ns;
  uint64_t io_errors, checksum_failures;
  int backend_state; /* 0 ok, 1 reconnecting, 2 paused */
} pager_stats_t;

/* Fills `cfg` with defaults overlaid by the LIBPAGER_* environment. Returns 0,
 * or -1 with the offending variable named in `err`. The strings point into
 * the environment. */
PAGER_EXPORT int pager_config_from_env(pager_config_t* cfg, char* err, size_t errlen);

/* NULL on failure, with the reason in `err`. */
PAGER_EXPORT pager_t* pager_create(const pager_config_t* cfg, char* err, size_t errlen);
/* Faults every swapped page back, then stops the pager. */
PAGER_EXPORT void pager_destroy(pager_t* p);

PAGER_EXPORT void* pager_map(pager_t* p, size_t bytes, char* err, size_t errlen);
PAGER_EXPORT int pager_unmap(pager_t* p, void* addr, size_t bytes);
PAGER_EXPORT int pager_adopt(pager_t* p, void* addr, size_t bytes);
/* pager_adopt for a mapping just made with mmap (Pager::AdoptNew). */
PAGER_EXPORT int pager_adopt_new(pager_t* p, void* addr, size_t bytes);
/* Keep pages in memory (Pager::Pin/Unpin); pager_pin_this_thread first thing
 * on a thread whose stack is paged (Pager::PinThisThread). 0, or -1. */
PAGER_EXPORT int pager_pin(pager_t* p, const void* addr, size_t bytes);
PAGER_EXPORT int pager_unpin(pager_t* p, const void* addr, size_t bytes);
PAGER_EXPORT int pager_pin_this_thread(pager_t* p);
PAGER_EXPORT void pager_get_stats(const pager_t* p, pager_stats_t* out);

#ifdef __cplusplus
}
#endif

#endif /* PAGER_PAGER_C_H_ */
