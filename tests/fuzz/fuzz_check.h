#pragma once

// Property checks for the fuzz targets: a failed check prints what was
// violated and aborts, which libFuzzer reports as a crash (and the corpus
// replay as a failed test).

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                    \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::fprintf(stderr, "%s:%d: fuzz property violated: %s\n", __FILE__, \
                   __LINE__, #cond);                                        \
      std::abort();                                                         \
    }                                                                       \
  } while (0)
