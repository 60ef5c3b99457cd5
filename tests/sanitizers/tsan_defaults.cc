// Default TSan suppressions for binaries built with --config=tsan: the text of
// tests/sanitizers/tsan.supp, compiled in so no path has to be passed at run
// time (a suppressions= file in TSAN_OPTIONS would add to it). Why each entry
// is there is written next to it in tsan.supp.
// Linked only into --config=tsan binaries (--custom_malloc in .bazelrc).
extern "C" const char* __tsan_default_suppressions() {
  static const char kSuppressions[] =
#include "tests/sanitizers/tsan_supp.inc"
      ;
  return kSuppressions;
}
