// tokenizer/tokenizer.h: Hugging Face `tokenizer.json` tokenizers (byte-level BPE as Qwen3 uses,
// SentencePiece-style BPE with byte fallback as Mistral/Mixtral/Llama use), byte-exact with the
// reference implementation (@huggingface/tokenizers; tests/tokenizer/).
//
// The pipeline of Encode (the order the reference uses):
//   1. added tokens (tokenizer.json "added_tokens") are matched first, leftmost-longest, and
//      never split; the text between them is a segment;
//   2. each segment is normalized (NFC; Prepend; Replace; Sequence);
//   3. pre-tokenized into pieces (Split with an Oniguruma regex; ByteLevel; Metaspace;
//      Sequence);
//   4. each piece becomes ids by the BPE model (merge ranks; byte fallback; unk);
//   5. with add_special_tokens, the post-processor adds its tokens (TemplateProcessing "single").
// Decode maps ids to tokens and runs the decoder chain (ByteLevel; Replace; ByteFallback; Fuse;
// Strip; Metaspace; Sequence); bytes that are not UTF-8 become U+FFFD as the reference's lossy
// conversion does (maximal subparts, WHATWG).
//
// A tokenizer.json that uses a component (normalizer, pre-tokenizer, model, decoder,
// post-processor type, or an option of one) this module does not implement is refused at load,
// naming the component: "tokenizer.json: pre_tokenizer.pretokenizers[1]: type 'Digits' is not
// supported (supported: Split, ByteLevel, Metaspace, Whitespace, WhitespaceSplit, Sequence)".
// Malformed input is kDataLoss (not JSON, truncated) or kInvalidArgument (wrong types, merges
// naming unknown tokens, repeated or out-of-range ids: ids are < 2^24) naming the JSON path;
// nothing in a tokenizer.json can crash the loader (fuzz/tokenizer_json_fuzzer).
//
// Where the reference (JS) and the Rust `tokenizers` crate differ, the reference is followed,
// except for options the reference ignores, which keep the Rust crate's meaning: Split's
// behaviors other than Isolated/Removed and its invert flag, Metaspace's split, added tokens'
// single_word (tokenizer/src/*.cc say so where it matters).
//
// Thread safety: a loaded Tokenizer is immutable except for its internal BPE cache, which is
// safe for concurrent Encode calls; share one instance between threads.
#ifndef TOKENIZER_TOKENIZER_H_
#define TOKENIZER_TOKENIZER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "vmm/status.h"

namespace emoe::tokenizer {

// The chat template family named by tokenizer_config.json's "chat_template" (chat_template.h).
enum class ChatFamily {
  kNone,     // no chat_template in tokenizer_config.json (or no tokenizer_config.json)
  kChatML,   // Qwen3: <|im_start|>role\n...<|im_end|>
  kMistral,  // Mixtral / Mistral: <s>[INST] ... [/INST]...</s>
};
const char* ChatFamilyName(ChatFamily f);  // "none", "chatml", "mistral"

// Tokens named by tokenizer_config.json (bos_token, eos_token, pad_token, unk_token), resolved
// to ids; -1 and "" where the config names none (or there is no config).
struct SpecialTokens {
  int32_t bos_id = -1, eos_id = -1, pad_id = -1, unk_id = -1;
  std::string bos, eos, pad, unk;
};

class Tokenizer {
 public:
  // `path` is a model directory holding tokenizer.json (and, optionally, tokenizer_config.json)
  // or the path of a tokenizer.json (its tokenizer_config.json is looked up beside it). Files
  // are read through vmm::ReadRegularFile (a FIFO or directory is refused, 256 MiB at most).
  static vmm::StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);
  // From the two files' contents; `config_json` may be empty (no tokenizer_config.json).
  // `origin` names the source in errors.
  static vmm::StatusOr<std::unique_ptr<Tokenizer>> FromJson(std::string_view tokenizer_json,
                                                            std::string_view config_json,
                                                            const std::string& origin);
  // True when `dir` holds a tokenizer.json (the engine's "use the model's tokenizer" test).
  static bool DirectoryHasTokenizer(const std::string& dir);

  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Ids of `text` (any bytes: invalid UTF-8 is encoded as the reference encodes its lossy
  // conversion). add_special_tokens: run the post-processor (Llama/Mistral's <s>).
  // REQUIRES: text.size() < 2^32.
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens = false) const;
  // Appends the ids of `text` to `out`.
  void EncodeInto(std::string_view text, bool add_special_tokens, std::vector<int32_t>* out) const;

  // Text of `ids`; ids outside [0, vocab_size()) (and ids no token has) are skipped.
  // skip_special_tokens drops the added tokens marked special and tokenizer_config.json's
  // additional_special_tokens, as the reference does.
  std::string Decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // One more than the largest id of the model's vocabulary and the added tokens.
  int32_t vocab_size() const;
  std::optional<int32_t> TokenToId(std::string_view token) const;
  // The token string of `id` (as in the vocabulary: byte-level tokens in their Unicode
  // alphabet); empty for an unknown id.
  std::string_view IdToToken(int32_t id) const;
  // An added token with "special": true, or one of tokenizer_config.json's
  // additional_special_tokens: what skip_special_tokens drops.
  bool IsSpecial(int32_t id) const;

  const SpecialTokens& special_tokens() const;
  ChatFamily chat_family() const;
  // Why tokenizer_config.json's chat_template was not recognized (chat_family() is kNone then);
  // "" when it was, or when there is none.
  const std::string& chat_template_error() const;
  // "byte-level BPE (151643 tokens, 151387 merges, 26 added tokens, NFC,
  // Sequence[Split Regex, ByteLevel])".
  const std::string& description() const;

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace emoe::tokenizer

#endif  // TOKENIZER_TOKENIZER_H_
