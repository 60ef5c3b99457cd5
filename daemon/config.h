#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "proto/devmem/v1/config.pb.h"

namespace devmem {

inline constexpr char kDefaultStateDir[] = "/var/lib/devmemd";
inline constexpr char kDaemonRuntimeDir[] = "/run/devmemd";

// Parses a DaemonConfig from textproto. Errors name `source` (the file path),
// the line and column, and the reason, e.g.
//   "/etc/devmemd/devmemd.textproto:3:12: Message type "devmem.v1.DaemonConfig"
//    has no field named "allow_uid"."
// Defaults are filled in and ranges checked (see config.proto).
absl::StatusOr<devmem::v1::DaemonConfig> ParseConfig(absl::string_view text,
                                                     absl::string_view source);

// Reads and parses a config file. NOT_FOUND / PERMISSION_DENIED name the path.
absl::StatusOr<devmem::v1::DaemonConfig> LoadConfigFile(
    const std::string& path);

// One NIC profile (of the config, or of ApplyProfile): a NIC name, a pool
// and channel count in range. INVALID_ARGUMENT starts with `where`.
absl::Status CheckProfile(const devmem::v1::NicProfile& profile,
                          absl::string_view where);

// Fills defaults for unset fields and validates ranges. `source` names the
// origin for messages.
absl::Status FinalizeConfig(devmem::v1::DaemonConfig* config,
                            absl::string_view source);

}  // namespace devmem
