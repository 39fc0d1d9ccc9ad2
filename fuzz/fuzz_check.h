// fuzz/fuzz_check.h: the property checks of the fuzz targets. A parser that accepts an input must
// give a result that keeps its contract (in bounds, round-trips); a violated one aborts, which
// libFuzzer reports as a crash with the input that caused it.
#ifndef FUZZ_FUZZ_CHECK_H_
#define FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                      \
    }                                                                                    \
  } while (0)

#endif  // FUZZ_FUZZ_CHECK_H_
