#include <cstdio>
#include <cstdlib>

#include "pager/pager.h"
#include "pager/pager_c.h"

struct pager_s {
  std::unique_ptr<pager::Pager> p;
};

namespace {

void SetError(char* err, size_t errlen, const std::string& msg) {
  if (err != nullptr && errlen > 0) snprintf(err, errlen, "%s", msg.c_str());
}

pager::Config ToConfig(const pager_config_t* c) {
  pager::Config cfg;
  cfg.memory_limit = c->memory_limit;
  if (c->swap != nullptr) cfg.swap = c->swap;
  cfg.swap_max = c->swap_max;
  cfg.reserve = c->reserve;
  if (c->readahead_pages != 0) cfg.readahead_pages = c->readahead_pages;
  if (c->connect_timeout_ms != 0) cfg.connect_timeout_ms = c->connect_timeout_ms;
  if (c->disable != nullptr) cfg.disable_features = c->disable;
  return cfg;
}

}  // namespace

extern "C" {

int pager_config_from_env(pager_config_t* cfg, char* err, size_t errlen) {
  auto r = pager::Config::FromEnvironment();
  if (!r.ok()) {
    SetError(err, errlen, r.status().message());
    return -1;
  }
  *cfg = pager_config_t{};
  cfg->memory_limit = r->memory_limit;
  cfg->swap = getenv("LIBPAGER_SWAP");
  cfg->swap_max = r->swap_max;
  cfg->reserve = r->reserve;
  cfg->readahead_pages = r->readahead_pages;
  cfg->connect_timeout_ms = r->connect_timeout_ms;
  cfg->disable = getenv("LIBPAGER_DISABLE");
  return 0;
}

pager_t* pager_create(const pager_config_t* cfg, char* err, size_t errlen) {
  auto r = pager::Pager::Create(ToConfig(cfg));
  if (!r.ok()) {
    SetError(err, errlen, r.status().message());
    return nullptr;
  }
  return new pager_s{std::move(*r)};
}

void pager_destroy(pager_t* p) { delete p; }

void* pager_map(pager_t* p, size_t bytes, char* err, size_t errlen) {
  auto r = p->p->Map(bytes);
  if (!r.ok()) {
    SetError(err, errlen, r.status().message());
    return nullptr;
  }
  return *r;
}

int pager_unmap(pager_t* p, void* addr, size_t bytes) { return p->p->Unmap(addr, bytes).ok() ? 0 : -1; }
int pager_adopt(pager_t* p, void* addr, size_t bytes) { return p->p->Adopt(addr, bytes).ok() ? 0 : -1; }
int pager_adopt_new(pager_t* p, void* addr, size_t bytes) { return p->p->AdoptNew(addr, bytes).ok() ? 0 : -1; }
int pager_pin(pager_t* p, const void* addr, size_t bytes) { return p->p->Pin(addr, bytes).ok() ? 0 : -1; }
int pager_unpin(pager_t* p, const void* addr, size_t bytes) { return p->p->Unpin(addr, bytes).ok() ? 0 : -1; }
int pager_pin_this_thread(pager_t* p) { return p->p->PinThisThread().ok() ? 0 : -1; }

void pager_get_stats(const pager_t* p, pager_stats_t* out) {
  pager::Stats s = p->p->GetStats();
  constexpr uint64_t kPage = pager::kPageSize;
  *out = pager_stats_t{};
  out->limit_bytes = s.limit_pages * kPage;
  out->resident_bytes = s.resident_pages * kPage;
  out->swapped_bytes = s.swapped_pages * kPage;
  out->mapped_bytes = s.mapped_bytes;
  out->faults_zero = s.faults_zero;
  out->faults_inactive = s.faults_inactive;
  out->faults_swapin = s.faults_swapin;
  out->evictions_clean = s.evictions_clean;
  out->evictions_written = s.evictions_written;
  out->bytes_read = s.bytes_read;
  out->bytes_written = s.bytes_written;
  out->reserve_bytes = s.reserve_bytes;
  out->reserve_free_bytes = s.reserve_free_bytes;
  out->throttle_events = s.throttle_events;
  out->throttled_ns = s.throttled_ns;
  out->io_errors = s.io_errors;
  out->checksum_failures = s.checksum_failures;
  out->backend_state = static_cast<int>(s.backend);
}

}  // extern "C"
