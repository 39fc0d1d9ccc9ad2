// tokenizer/src/text_pipeline.h: the seam between the tokenizer's core (tokenizer.cc: loading,
// added tokens, the BPE model, decoders) and the text stages before the model: normalizers and
// pre-tokenizers (normalizers.cc, pre_tokenizers.cc, regex.cc). Internal to the module.
//
// Both stages are built from their tokenizer.json object (a simdjson DOM element) by a factory
// that refuses, naming `where` (e.g. "pre_tokenizer.pretokenizers[0]"), any type or option it
// does not implement, and validates every field it reads (wrong types are kInvalidArgument).
//
// Byte-level alphabets: when the pipeline holds a ByteLevel pre-tokenizer, the core maps the
// vocabulary's tokens from GPT-2's byte-to-Unicode alphabet back to raw bytes at load, so the
// pieces a pre-tokenizer emits are raw bytes of the normalized text and no stage ever builds
// the Unicode-alphabet string. The ByteLevel pre-tokenizer itself only adds the prefix space
// (add_prefix_space) and splits with GPT-2's regex (use_regex).
//
// Thread safety: built once, then const and safe for concurrent use.
#ifndef TOKENIZER_SRC_TEXT_PIPELINE_H_
#define TOKENIZER_SRC_TEXT_PIPELINE_H_

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/status.h"

namespace emoe::tokenizer::internal {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  // Replaces *text by its normalized form (valid UTF-8 in, valid UTF-8 out).
  virtual void Normalize(std::string* text) const = 0;
  // "NFC", "Sequence[Prepend, Replace String]": for Tokenizer::description.
  virtual std::string describe() const = 0;
};

// Pieces of one segment: byte ranges into `text`. A stage that rewrites text (Metaspace's
// replacement, ByteLevel's prefix space) rebuilds `text` and the spans.
struct Pieces {
  std::string text;
  std::vector<std::pair<uint32_t, uint32_t>> spans;  // {offset, length}, in order, non-empty
  // Index of this segment among the sections of the added-token split (the reference's
  // section_index: Metaspace's prepend_scheme "first" prepends only in section 0).
  uint32_t section_index = 0;
  std::string_view piece(size_t i) const {
    return std::string_view(text).substr(spans[i].first, spans[i].second);
  }
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every span of *pieces further (spans are replaced in place, order kept). The input
  // is one span covering the normalized segment, or the output of the previous stage of a
  // Sequence.
  virtual void PreTokenize(Pieces* pieces) const = 0;
  // True for ByteLevel (or a Sequence holding one): the model's alphabet is raw bytes.
  virtual bool byte_level() const { return false; }
  // "Split regex", "ByteLevel", "Sequence[Split regex, ByteLevel]": for Tokenizer::description.
  virtual std::string describe() const = 0;
};

// `spec` is tokenizer.json's "normalizer" / "pre_tokenizer" value; null gives nullptr (no
// stage). Supported normalizers: NFC, NFD, NFKC, NFKD, Prepend, Replace (String or Regex
// pattern), Lowercase, Strip, StripAccents, Sequence. Pre-tokenizers: Split (String or Regex
// pattern; behaviors Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous;
// invert), ByteLevel, Metaspace (replacement, prepend_scheme first/always/never, split),
// Whitespace, WhitespaceSplit, Sequence.
vmm::StatusOr<std::unique_ptr<Normalizer>> MakeNormalizer(simdjson::dom::element spec,
                                                          const std::string& where);
vmm::StatusOr<std::unique_ptr<PreTokenizer>> MakePreTokenizer(simdjson::dom::element spec,
                                                              const std::string& where);

// Is `text` valid UTF-8? (The core replaces invalid input with U+FFFD, maximal subparts, before
// the pipeline, as the reference's string conversion does.)
bool IsValidUtf8(std::string_view text);
// `bytes` with each maximal invalid subpart replaced by U+FFFD (WHATWG / Rust from_utf8_lossy).
std::string LossyUtf8(std::string_view bytes);

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_TEXT_PIPELINE_H_
