// tests/sanitizers.h: whether the test is built with a sanitizer (scripts/test.sh's clang
// builds, EMOE_SANITIZE), for the few tests that cannot run under one and skip themselves
// saying why. Keep such skips minimal; each names its reason. Today:
//   LimitsTest.MaxMapCountIsNamed (ASan): it exhausts vm.max_map_count, and ASan's allocator
//   then cannot map its own memory and aborts.
#ifndef TESTS_SANITIZERS_H_
#define TESTS_SANITIZERS_H_

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMOE_TEST_UNDER_ASAN 1
#endif
#if __has_feature(thread_sanitizer)
#define EMOE_TEST_UNDER_TSAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define EMOE_TEST_UNDER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#define EMOE_TEST_UNDER_TSAN 1
#endif

namespace emoe::testing {

#ifdef EMOE_TEST_UNDER_ASAN
inline constexpr bool kUnderAsan = true;
#else
inline constexpr bool kUnderAsan = false;
#endif
#ifdef EMOE_TEST_UNDER_TSAN
inline constexpr bool kUnderTsan = true;
#else
inline constexpr bool kUnderTsan = false;
#endif

}  // namespace emoe::testing

#endif  // TESTS_SANITIZERS_H_
