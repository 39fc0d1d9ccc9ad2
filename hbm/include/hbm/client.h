// hbm/client.h: attaching to an HMM's memory, in the same process or through hmmd's socket.
//
// Attach() receives the arenas (memfds) and the layout (tensor name -> arena, offset, shape,
// dtype), imports every arena and maps it into a reservation of its own: read-only by default,
// one mapping per arena, nothing copied. TensorView::data points into those mappings.
// Detach (or destroying the Attachment) unmaps them; the HMM's pages stay with the HMM.
// The API is the same for both transports.
//
// Thread safety: an HmmClient is used by one thread at a time. Attachments are immutable after
// creation and may be read from any thread.
#ifndef HBM_CLIENT_H_
#define HBM_CLIENT_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "hbm/safetensors.h"
#include "hbm/server.h"
#include "vmm/reservation.h"

namespace emoe::hbm {

struct TensorView {
  std::string name;
  int device = 0;
  std::string usage;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
  uint64_t size_bytes = 0;
  int arena = -1;              // index into Attachment::arena()
  uint64_t offset = 0;         // of the data in its arena
  uint64_t extent_offset = 0;  // the pages it lives in (shared with its group, e.g. one expert)
  uint64_t extent_size = 0;
};

class Attachment {
 public:
  // Maps the arenas of an "attach" reply (received over any connection: RemoteHmmControl maps
  // the KV arenas through hmmd's control connection with it). `writable`: weights read-write.
  static StatusOr<std::unique_ptr<Attachment>> FromReply(vmm::ReceivedMessage reply, bool writable);

  const TensorView* Find(const std::string& name, int device) const;
  const std::vector<TensorView>& tensors() const { return tensors_; }
  bool writable() const { return writable_; }
  uint64_t mapped_bytes() const;
  int num_arenas() const { return static_cast<int>(arenas_.size()); }
  // The imported arena (no direct map): View() it to map parts elsewhere (expert slots).
  const std::shared_ptr<vmm::Arena>& arena(int i) const { return arenas_.at(i); }
  // A device's KV arena, mapped read-write (attached with kv = true), or null.
  uint8_t* kv_base(int device) const;
  uint64_t kv_bytes(int device) const;
  // Fills the page tables of `t`'s pages (its extent) in this attachment's mapping now, so that
  // the first read does not fault (vmm::Reservation::Populate). REQUIRES: t is one of tensors().
  Status Populate(const TensorView& t) const;
  // The same for `bytes` at `offset` of `device`'s KV arena (read-write).
  Status PopulateKv(int device, uint64_t offset, uint64_t bytes) const;

 private:
  std::vector<std::shared_ptr<vmm::Arena>> arenas_;
  std::vector<std::unique_ptr<vmm::Reservation>> maps_;  // one per arena
  std::vector<TensorView> tensors_;
  std::map<std::pair<std::string, int>, size_t> index_;
  std::map<int, int> kv_;  // device -> arena index
  bool writable_ = false;
};

class HmmClient {
 public:
  // In-process: requests go straight to HandleRequest(hmm).
  static std::unique_ptr<HmmClient> InProcess(Hmm* hmm);
  // Over hmmd's socket.
  static StatusOr<std::unique_ptr<HmmClient>> Connect(const std::string& socket_path);

  // device -1: every device. writable maps weights read-write (the server must allow it); kv
  // also maps the devices' KV arenas, read-write.
  StatusOr<std::unique_ptr<Attachment>> Attach(int device = -1, bool writable = false,
                                               bool kv = false);
  // The raw JSON reply of "list" / "stats", and "release".
  StatusOr<std::string> Call(const std::string& request_json);
  Status Release(const std::string& name, int device);

 private:
  StatusOr<vmm::ReceivedMessage> Roundtrip(const std::string& request);
  Hmm* hmm_ = nullptr;
  vmm::UniqueFd socket_;
};

}  // namespace emoe::hbm

#endif  // HBM_CLIENT_H_
