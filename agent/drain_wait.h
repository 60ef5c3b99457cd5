#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>

#include "agent/devmemd_link.h"

namespace devmem::agent {

// ApplyProfile's drain_first: asks devmemd to drain the host (cordon, then
// wait until no binding or reservation remains) and waits for the end,
// following the caller's cancellation. OK once nothing remains;
// DEADLINE_EXCEEDED naming what remains; devmemd's error otherwise.
grpc::Status DrainAndWait(DevmemdLink* link, grpc::ServerContext* ctx,
                          const std::string& by, uint32_t deadline_s);

}  // namespace devmem::agent
