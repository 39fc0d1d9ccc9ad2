// hbm/src/stream_copy.h: the copy loop of the P2P workers (hbm/p2p.h).
//
// A peer-to-peer copy writes memory that this thread never reads again: the instances of the
// destination device read it later, from their own cores (on a multi-node host, another node's).
// So large copies use non-temporal stores (AVX-512, AVX2 or SSE2, whichever the CPU has, picked
// once): they skip the read-for-ownership of every destination line and leave the caches (the
// serving threads' working set) alone, and the bulk goes four pages at a time (stream_copy.cc).
// On this VM that is 9.9-11.1 GB/s for 2 MiB tensors where glibc's memcpy, which streams only
// past a size threshold (a fraction of the last-level cache), moves 5.4-6.6 GB/s (and 8.2-10.9
// GB/s for copies of 192 MiB). An sfence at the end orders the stores before whatever publishes the
// copy. Small copies (under kStreamMinBytes) and other architectures use memcpy. Every byte counts
// in vmm's bytes_copied, as vmm::CopyBytes does.
//
// Thread safety: reentrant.
#ifndef HBM_SRC_STREAM_COPY_H_
#define HBM_SRC_STREAM_COPY_H_

#include <cstdint>

namespace emoe::hbm {

inline constexpr uint64_t kStreamMinBytes = 256 << 10;

// How large copies are stored.
enum class StreamKind { kMemcpy, kSse2, kAvx2, kAvx512 };
bool StreamKindSupported(StreamKind kind);  // by this CPU
StreamKind BestStreamKind();                // the widest supported, picked once
// "avx512 streaming stores", "avx2 ...", "sse2 ...", "memcpy".
const char* StreamKindName(StreamKind kind);

// Copies `n` bytes from `src` to `dst` the best supported way. REQUIRES: the ranges do not overlap.
void StreamCopy(void* dst, const void* src, uint64_t n);
// The same with `kind` (tests run every supported kind). REQUIRES: StreamKindSupported(kind).
void StreamCopyAs(StreamKind kind, void* dst, const void* src, uint64_t n);

}  // namespace emoe::hbm

#endif  // HBM_SRC_STREAM_COPY_H_
