// tokenizer/src/tokenizer_impl.h: Tokenizer::Impl, the loaded tokenizer (internal; shared by
// tokenizer_load.cc, which builds it, and tokenizer.cc, which runs it).
//
// Thread safety: immutable after loading (the BPE cache inside `model` locks itself).
#ifndef TOKENIZER_SRC_TOKENIZER_IMPL_H_
#define TOKENIZER_SRC_TOKENIZER_IMPL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "added_tokens.h"
#include "bpe.h"
#include "decoders.h"
#include "text_pipeline.h"
#include "token_table.h"
#include "tokenizer/tokenizer.h"

namespace emoe::tokenizer {

struct Tokenizer::Impl {
  std::string origin;  // names the tokenizer.json in messages

  std::unique_ptr<internal::Normalizer> normalizer;       // null: none
  std::unique_ptr<internal::PreTokenizer> pre_tokenizer;  // null: the segment is one piece
  std::unique_ptr<internal::BpeModel> model;
  internal::TokenTable tokens;

  // Added tokens matched on the input text (normalized: false, or no normalizer) and on the
  // normalized text of each segment (normalized: true; their normalized content).
  internal::AddedTokenMatcher raw_matcher;
  internal::AddedTokenMatcher normalized_matcher;
  std::unordered_set<std::string> added_contents;             // for the ByteLevel decoder
  std::unordered_map<std::string, int32_t> added_by_content;  // for TokenToId
  // Contents and normalized contents: a whole segment equal to one is that token, unnormalized
  // (the reference's added_tokens_map.has(section) checks).
  std::unordered_map<std::string, int32_t> section_keys;
  // Strings the reference treats as special when decoding with skip_special_tokens: special
  // added tokens' contents and tokenizer_config.json's additional_special_tokens.
  std::unordered_set<std::string> special_strings;

  std::unique_ptr<internal::Decoder> decoder;  // null: tokens joined with ' '
  bool decoder_is_byte_level = false;          // the decoder is one ByteLevel (a fast path)

  // The post-processor's "single" template with add_special_tokens: ids, and kSequence where
  // the text's ids go. Without a post-processor: just kSequence.
  static constexpr int32_t kSequence = -1;
  std::vector<int32_t> single_template{kSequence};

  bool clean_up_tokenization_spaces = true;  // tokenizer_config.json; the reference's default
  SpecialTokens special;
  ChatFamily chat_family = ChatFamily::kNone;
  std::string chat_template_error;  // why a chat_template was not recognized ("" if it was)
  std::string description;
};

namespace internal {

// Builds *impl from the two documents (`config_json` may be empty). Errors are not yet
// prefixed with the origin.
vmm::Status LoadTokenizerJson(std::string_view tokenizer_json, Tokenizer::Impl* impl);
vmm::Status LoadTokenizerConfig(std::string_view config_json, Tokenizer::Impl* impl);
// Sets kSpecial (ids spelled as one of special_strings) and kVerbatim (ids spelled as an added
// token's content) in impl->tokens.
void FlagTokens(Tokenizer::Impl* impl);
// The id of a token spelled as tokenizer.json spells it, or -1.
int32_t FindToken(const Tokenizer::Impl& impl, std::string_view token);

}  // namespace internal
}  // namespace emoe::tokenizer

#endif  // TOKENIZER_SRC_TOKENIZER_IMPL_H_
