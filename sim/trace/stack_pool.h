// The host pool and the TDX module of the previous run on this thread, kept for the next run
// over a pool of the same size and reset instead of rebuilt: both hold arrays the size of the
// pool, while a reset costs only what the previous run touched (fuzzing, benchmarks).
#pragma once

#include <memory>

#include "sim/host/pages.h"
#include "sim/tdx/module.h"

namespace trace {

class PooledStack {
 public:
  PooledStack(uint64_t base_pfn, uint64_t npages, const tdx::Options& opts, tdx::Hooks* hooks) {
    Slot& s = slot();
    if (s.host && s.host->base_pfn() == base_pfn && s.host->npages() == npages) {
      host_ = std::move(s.host);
      module_ = std::move(s.module);
      host_->reset();
      module_->reset(opts, hooks);
    } else {
      host_ = std::make_unique<host::HostPages>(base_pfn, npages);
      module_ = std::make_unique<tdx::Module>(*host_, opts, hooks);
    }
  }
  ~PooledStack() {
    module_->set_hooks(nullptr);
    Slot& s = slot();
    s.module = std::move(module_);  // the module first: it refers to its host
    s.host = std::move(host_);
  }
  PooledStack(const PooledStack&) = delete;
  PooledStack& operator=(const PooledStack&) = delete;

  host::HostPages& host() { return *host_; }
  tdx::Module& module() { return *module_; }

 private:
  struct Slot {
    std::unique_ptr<host::HostPages> host;
    std::unique_ptr<tdx::Module> module;  // destroyed before its host
  };
  static Slot& slot() {
    thread_local Slot s;
    return s;
  }
  std::unique_ptr<host::HostPages> host_;
  std::unique_ptr<tdx::Module> module_;
};

}  // namespace trace
