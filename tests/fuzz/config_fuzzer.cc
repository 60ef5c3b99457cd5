// Fuzzes the daemon's config parser (daemon/config.h): ParseConfig, which runs
// protobuf's text-format parser and then FinalizeConfig (defaults and range
// checks). The input is a config file's text. A config that parses must be a
// fixed point: FinalizeConfig accepts it again without changing it, and its
// text-format print parses back to the same message. Seeds:
// deploy/devmemd.textproto and snippets; dictionary: config.dict.

#include <cstdint>
#include <string>

#include <google/protobuf/stubs/logging.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/message_differencer.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "daemon/config.h"
#include "tests/fuzz/fuzz_check.h"

using google::protobuf::util::MessageDifferencer;

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<devmem::v1::DaemonConfig> config =
      devmem::ParseConfig(text, "fuzz.textproto");
  if (!config.ok()) {
    FUZZ_CHECK(!config.status().message().empty());
    return 0;
  }
  devmem::v1::DaemonConfig again = *config;
  FUZZ_CHECK(devmem::FinalizeConfig(&again, "fuzz.textproto").ok());
  FUZZ_CHECK(MessageDifferencer::Equals(again, *config));

  std::string printed;
  FUZZ_CHECK(google::protobuf::TextFormat::PrintToString(*config, &printed));
  absl::StatusOr<devmem::v1::DaemonConfig> reparsed =
      devmem::ParseConfig(printed, "printed.textproto");
  FUZZ_CHECK(reparsed.ok());
  FUZZ_CHECK(MessageDifferencer::Equals(*reparsed, *config));
  return 0;
}
