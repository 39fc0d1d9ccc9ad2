// Fuzzes the hmmd protocol codec (hbm/src/ipc/codec.h) with arbitrary message text: the text is
// read as hmmd reads a request (ParseJsonObject), then decoded as every request type, as the
// launcher's start message and as every reply and value a client decodes. Nothing may throw or
// crash; a message that decodes must encode back (ToJson), travel as text and decode again to
// the same message.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_check.h"
#include "hbm/json_reader.h"
#include "hbm/wire.h"
#include "ipc/codec.h"

namespace {

using emoe::hbm::JsonReader;
using emoe::hbm::ParseJsonObject;
using nlohmann::json;
namespace ipc = emoe::hbm::ipc;

// `encode(value)` parsed back from its text, as the peer receives it.
template <typename Encode, typename T>
json Sent(const Encode& encode, const T& value) {
  const std::string text = encode(value).dump();
  auto j = ParseJsonObject(text, "round trip");
  FUZZ_CHECK(j.ok());
  return *j;
}

// Decodes `r` as a T with `decode(reader, &out)`; when that succeeds, the encoded value must
// decode again to one that encodes the same.
template <typename T, typename Decode, typename Encode>
void RoundTrip(const JsonReader& r, const Decode& decode, const Encode& encode) {
  T first{};
  if (!decode(r, &first).ok()) return;
  const json sent = Sent(encode, first);
  T second{};
  const vmm::Status again = decode(JsonReader(sent, "round trip"), &second);
  if (!again.ok()) std::fprintf(stderr, "%s\n%s\n", sent.dump().c_str(), again.ToString().c_str());
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(Sent(encode, second) == sent);
}

template <typename T>
void RoundTrip(const JsonReader& r) {
  RoundTrip<T>(
      r, [](const JsonReader& in, T* out) { return ipc::FromJson(in, out); },
      [](const T& v) { return json(ipc::ToJson(v)); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto message = ParseJsonObject(text, "fuzz");
  if (!message.ok()) return 0;
  const JsonReader r(*message, "fuzz");
  (void)r.Str("op");
  (void)r.Int("device", -1);  // "list"
  // Requests (hmmd's side).
  RoundTrip<ipc::AttachRequest>(r);
  RoundTrip<ipc::LoadRequest>(r);
  RoundTrip<ipc::CopyGroupRequest>(r);
  RoundTrip<ipc::RecordRequest>(
      r, [](const JsonReader& in, ipc::RecordRequest* out) { return ipc::FromJson(in, out); },
      [](const ipc::RecordRequest& q) { return ipc::ToJson("find", q); });
  RoundTrip<ipc::ReleaseManyRequest>(r);
  RoundTrip<ipc::ApplyCopiesRequest>(r);
  RoundTrip<ipc::DescribeRequest>(r);
  RoundTrip<ipc::ReleaseMatchingRequest>(r);
  RoundTrip<ipc::KvAllocRequest>(r);
  for (const bool with_bytes : {false, true}) {
    RoundTrip<ipc::KvRequest>(
        r,
        [with_bytes](const JsonReader& in, ipc::KvRequest* out) {
          return ipc::FromJson(in, with_bytes, out);
        },
        [with_bytes](const ipc::KvRequest& q) {
          return ipc::ToJson(with_bytes ? "kv_resize" : "kv_free", q);
        });
  }
  RoundTrip<emoe::hbm::HmmOptions>(
      r,
      [](const JsonReader& in, emoe::hbm::HmmOptions* out) {
        return ipc::StartMessageFromJson(in, out);
      },
      [](const emoe::hbm::HmmOptions& o) { return ipc::StartMessage(o); });
  // Replies and the values in them (the clients' side).
  RoundTrip<ipc::DevicesReply>(r);
  RoundTrip<ipc::StatsReply>(r);
  RoundTrip<ipc::KvAllocReply>(r);
  RoundTrip<emoe::hbm::CopyBatchReport>(r);
  RoundTrip<emoe::hbm::HmmSnapshot>(r);
  RoundTrip<ipc::WireTensor>(r);
  RoundTrip<emoe::hbm::TensorMeta>(r);
  RoundTrip<emoe::hbm::DeviceSpec>(r);
  RoundTrip<vmm::ArenaStats>(r);
  RoundTrip<emoe::hbm::DeviceStats>(r);
  RoundTrip<emoe::hbm::LoadStats>(r);
  RoundTrip<emoe::hbm::LoadReport>(r);
  RoundTrip<emoe::hbm::HmmOptions>(r);
  (void)emoe::hbm::ReplyStatus(text, "fuzz");
  return 0;
}
