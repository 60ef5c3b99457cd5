#pragma once

#include <google/protobuf/message.h>

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace devmem {

// Parses a textproto config into `out`. INVALID_ARGUMENT lists every error
// as "SOURCE:LINE:COLUMN: message" (lines and columns from 1, as editors
// count), so an unknown field names its file and line.
absl::Status ParseTextProto(absl::string_view text, absl::string_view source,
                            google::protobuf::Message* out);

// The whole file; an error naming `path` and the errno if it cannot be read.
absl::Status ReadTextFile(const std::string& path, std::string* out);

}  // namespace devmem
