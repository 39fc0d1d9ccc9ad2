// tokenizer/src/decoders.h: tokenizer.json's decoders: token strings back to text (internal).
//
// A decoder rewrites the list of token strings (the reference's decode_chain); Decode joins the
// final list. As in the reference (@huggingface/tokenizers):
//   ByteLevel     each run of tokens that are not added tokens becomes the bytes their
//                 characters spell in GPT-2's alphabet, decoded lossily (U+FFFD for ill-formed
//                 UTF-8; a character outside the alphabet stands for its own UTF-8, as in the
//                 Rust crate); an added token (by content) is passed through as text.
//   Replace       every match of the pattern in each token replaced by content.
//   ByteFallback  each run of <0xNN> tokens becomes the text of those bytes (lossy, and a
//                 leading U+FEFF dropped: the reference's default TextDecoder); NN is read as
//                 the reference's parseInt(NN, 16) reads it (decoders.cc ByteToken).
//   Fuse          all tokens joined into one.
//   Strip         up to `start` leading and `stop` trailing `content` characters removed from
//                 each token.
//   Metaspace     the replacement character becomes ' ' in each token, and token 0 loses one
//                 leading ' ' (the reference ignores prepend_scheme here).
//   Sequence      each in turn.
//
// Thread safety: immutable after Make.
#ifndef TOKENIZER_SRC_DECODERS_H_
#define TOKENIZER_SRC_DECODERS_H_

#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "json_fields.h"
#include "vmm/status.h"

namespace emoe::tokenizer::internal {

// The tokens being decoded. `raw` (only as the first stage's input): tokens hold the bytes of
// a byte-level vocabulary's tokens instead of their alphabet spelling. `verbatim[i]` (when not
// empty): token i is an added token's content.
struct DecodeTokens {
  std::vector<std::string> tokens;
  std::vector<bool> verbatim;
  bool raw = false;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(DecodeTokens* tokens) const = 0;
  // True for a ByteLevel decoder (alone or first in a Sequence): it accepts raw tokens.
  virtual bool byte_level_first() const { return false; }
  virtual std::string describe() const = 0;
};

// `spec` is tokenizer.json's "decoder" (null gives nullptr: tokens joined with ' ').
// `added_contents` are the added tokens' contents (ByteLevel passes them through).
vmm::StatusOr<std::unique_ptr<Decoder>> MakeDecoder(
    const element& spec, const std::string& where,
    const std::unordered_set<std::string>& added_contents);

// The reference's clean_up_tokenization: " ." -> ".", " ?" -> "?", " !" -> "!", " ," -> ",",
// " ' " -> "'", " n't" -> "n't", " 'm" -> "'m", " 's" -> "'s", " 've" -> "'ve", " 're" -> "'re".
std::string CleanUpTokenization(std::string text);

// Lossy UTF-8 of `bytes` appended to *out, with one leading U+FEFF dropped when strip_bom.
void AppendLossy(std::string_view bytes, bool strip_bom, std::string* out);

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_DECODERS_H_
