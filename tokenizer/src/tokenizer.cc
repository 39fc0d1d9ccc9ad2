// tokenizer/src/tokenizer.cc: Tokenizer: loading from files, Encode and Decode.
//
// Encode follows the reference's encode_text (tokenizer_impl.h holds the parts):
//   1. invalid UTF-8 is replaced (LossyUtf8), as the reference's string conversion does;
//   2. the text is split at its non-normalized added tokens (raw_matcher); a token with lstrip
//      trims the whitespace before it from the previous segment, rstrip the whitespace after it
//      from the next one (JS trimEnd / trimStart);
//   3. a text segment that spells an added token's content or normalized content as a whole is
//      that token; any other is normalized, split again at the normalized added tokens (same
//      trimming and whole-segment check), pre-tokenized with its section index, and each piece
//      goes through BPE; fuse_unk runs over one such sub-segment;
//   4. the single template (post-processor) puts special tokens around the ids.
// Decode maps ids to their tokens (skipping unknown ids and, with skip_special_tokens, special
// ones), runs the decoder chain, joins, and applies clean_up_tokenization when the config asks.
#include "tokenizer/tokenizer.h"

#include <sys/stat.h>

#include <utility>

#include "tokenizer_impl.h"
#include "utf8.h"
#include "vmm/file.h"

namespace emoe::tokenizer {
namespace {

using internal::AddedTokenMatcher;

constexpr uint64_t kMaxFileBytes = uint64_t{256} << 20;

// Buffers of one Encode call.
struct EncodeScratch {
  std::vector<AddedTokenMatcher::Segment> segments, sub_segments;
  std::string normalized, key;
  internal::Pieces pieces;
  internal::BpeScratch bpe;
};

bool IsRegularFile(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Segment i of `segments` (plain text) without the whitespace its neighbouring added tokens
// strip (lstrip on the next token, rstrip on the previous one).
std::string_view Trimmed(std::string_view text, const AddedTokenMatcher& matcher,
                         const std::vector<AddedTokenMatcher::Segment>& segments, size_t i) {
  std::string_view view = text.substr(segments[i].start, segments[i].length);
  if (i + 1 < segments.size() && segments[i + 1].token >= 0 &&
      matcher.token(segments[i + 1].token).lstrip) {
    view = internal::TrimJsWhitespaceEnd(view);
  }
  if (i > 0 && segments[i - 1].token >= 0 && matcher.token(segments[i - 1].token).rstrip) {
    view = internal::TrimJsWhitespaceStart(view);
  }
  return view;
}

// Pre-tokenizer and model over normalized text without added tokens.
void EncodeText(const Tokenizer::Impl& m, std::string_view text, uint32_t section_index,
                EncodeScratch* s, std::vector<int32_t>* out) {
  const size_t begin = out->size();
  if (m.pre_tokenizer) {
    s->pieces.text.assign(text.data(), text.size());
    s->pieces.spans.assign(1, {0u, static_cast<uint32_t>(text.size())});
    s->pieces.section_index = section_index;
    m.pre_tokenizer->PreTokenize(&s->pieces);
    for (size_t i = 0; i < s->pieces.spans.size(); ++i) {
      m.model->EncodePiece(s->pieces.piece(i), &s->bpe, out);
    }
  } else {
    m.model->EncodePiece(text, &s->bpe, out);
  }
  if (m.model->fuse_unk() && m.model->unk_id() >= 0) {
    internal::FuseUnk(m.model->unk_id(), begin, out);
  }
}

// The token a whole segment spells (an added token's content or normalized content), or -1.
int32_t SectionKey(const Tokenizer::Impl& m, std::string_view segment, EncodeScratch* s) {
  if (m.section_keys.empty()) return -1;
  s->key.assign(segment.data(), segment.size());
  auto it = m.section_keys.find(s->key);
  return it == m.section_keys.end() ? -1 : it->second;
}

// One segment of the added-token split: normalized, split at normalized added tokens, encoded.
void EncodeSection(const Tokenizer::Impl& m, std::string_view section, uint32_t section_index,
                   EncodeScratch* s, std::vector<int32_t>* out) {
  if (const int32_t id = SectionKey(m, section, s); id >= 0) {
    out->push_back(id);
    return;
  }
  std::string_view text = section;
  if (m.normalizer) {
    s->normalized.assign(section.data(), section.size());
    m.normalizer->Normalize(&s->normalized);
    text = s->normalized;
    if (text.empty()) return;
  }
  if (m.normalized_matcher.empty()) {
    EncodeText(m, text, section_index, s, out);
    return;
  }
  s->sub_segments.clear();
  m.normalized_matcher.Split(text, &s->sub_segments);
  for (size_t j = 0; j < s->sub_segments.size(); ++j) {
    const auto& seg = s->sub_segments[j];
    if (seg.token >= 0) {
      out->push_back(m.normalized_matcher.token(seg.token).id);
      continue;
    }
    const std::string_view part = Trimmed(text, m.normalized_matcher, s->sub_segments, j);
    if (part.empty()) continue;
    if (const int32_t id = SectionKey(m, part, s); id >= 0) {
      out->push_back(id);
    } else {
      EncodeText(m, part, section_index, s, out);
    }
  }
}

void EncodeAll(const Tokenizer::Impl& m, std::string_view text, std::vector<int32_t>* out) {
  if (text.empty()) return;
  EncodeScratch s;
  if (m.raw_matcher.empty()) {
    EncodeSection(m, text, 0, &s, out);
    return;
  }
  m.raw_matcher.Split(text, &s.segments);
  for (size_t i = 0; i < s.segments.size(); ++i) {
    const auto& seg = s.segments[i];
    if (seg.token >= 0) {
      out->push_back(m.raw_matcher.token(seg.token).id);
      continue;
    }
    const std::string_view section = Trimmed(text, m.raw_matcher, s.segments, i);
    if (!section.empty()) EncodeSection(m, section, static_cast<uint32_t>(i), &s, out);
  }
}

}  // namespace

const char* ChatFamilyName(ChatFamily f) {
  switch (f) {
    case ChatFamily::kNone:
      return "none";
    case ChatFamily::kChatML:
      return "chatml";
    case ChatFamily::kMistral:
      return "mistral";
  }
  return "unknown";
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

vmm::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromJson(std::string_view tokenizer_json,
                                                              std::string_view config_json,
                                                              const std::string& origin) {
  auto impl = std::make_unique<Impl>();
  impl->origin = origin;
  vmm::Status status = internal::LoadTokenizerJson(tokenizer_json, impl.get());
  if (!status.ok()) return status.Annotate(origin);
  status = internal::LoadTokenizerConfig(config_json, impl.get());
  if (!status.ok()) return status.Annotate("tokenizer_config.json of " + origin);
  internal::FlagTokens(impl.get());
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

vmm::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& path) {
  std::string json_path = path, config_path;
  if (IsDirectory(path)) {
    json_path = path + "/tokenizer.json";
    config_path = path + "/tokenizer_config.json";
  } else {
    const size_t slash = path.rfind('/');
    config_path = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) +
                  "tokenizer_config.json";
  }
  VMM_ASSIGN_OR_RETURN(std::string json,
                       vmm::ReadRegularFile(json_path, "tokenizer.json", kMaxFileBytes));
  std::string config;
  struct stat st;
  if (::stat(config_path.c_str(), &st) == 0) {
    VMM_ASSIGN_OR_RETURN(config,
                         vmm::ReadRegularFile(config_path, "tokenizer_config.json", kMaxFileBytes));
  }
  return FromJson(json, config, json_path);
}

bool Tokenizer::DirectoryHasTokenizer(const std::string& dir) {
  return IsRegularFile(dir + "/tokenizer.json");
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special_tokens) const {
  std::vector<int32_t> ids;
  EncodeInto(text, add_special_tokens, &ids);
  return ids;
}

void Tokenizer::EncodeInto(std::string_view text, bool add_special_tokens,
                           std::vector<int32_t>* out) const {
  std::string repaired;
  if (!internal::IsValidUtf8(text)) {
    repaired = internal::LossyUtf8(text);
    text = repaired;
  }
  if (!add_special_tokens) {
    EncodeAll(*impl_, text, out);
    return;
  }
  for (int32_t item : impl_->single_template) {
    if (item == Impl::kSequence) {
      EncodeAll(*impl_, text, out);
    } else {
      out->push_back(item);
    }
  }
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special_tokens) const {
  const Impl& m = *impl_;
  const internal::TokenTable& t = m.tokens;
  auto skipped = [&](int32_t id) {
    return !t.present(id) || (skip_special_tokens && (t.flags[id] & t.kSpecial));
  };
  std::string text;
  if (m.decoder_is_byte_level && t.byte_level) {  // the fast path: bytes, then lossy UTF-8
    std::string bytes;
    for (int32_t id : ids) {
      if (skipped(id)) continue;
      if (t.flags[id] & t.kVerbatim) {
        internal::AppendLossy(bytes, false, &text);
        bytes.clear();
        text.append(t.json(id));
      } else {
        bytes.append(t.raw(id));
      }
    }
    internal::AppendLossy(bytes, false, &text);
  } else {
    internal::DecodeTokens tokens;
    tokens.raw = t.byte_level && m.decoder && m.decoder->byte_level_first();
    tokens.tokens.reserve(ids.size());
    tokens.verbatim.reserve(ids.size());
    for (int32_t id : ids) {
      if (skipped(id)) continue;
      const bool verbatim = t.flags[id] & t.kVerbatim;
      tokens.tokens.emplace_back(tokens.raw && !verbatim ? t.raw(id) : t.json(id));
      tokens.verbatim.push_back(verbatim);
    }
    if (m.decoder) {
      m.decoder->DecodeChain(&tokens);
      for (const std::string& token : tokens.tokens) text += token;
    } else {
      for (size_t i = 0; i < tokens.tokens.size(); ++i) {
        if (i > 0) text.push_back(' ');
        text += tokens.tokens[i];
      }
    }
  }
  if (m.clean_up_tokenization_spaces) text = internal::CleanUpTokenization(std::move(text));
  return text;
}

int32_t Tokenizer::vocab_size() const { return impl_->tokens.size(); }

std::optional<int32_t> Tokenizer::TokenToId(std::string_view token) const {
  const int32_t id = internal::FindToken(*impl_, token);
  if (id < 0) return std::nullopt;
  return id;
}

std::string_view Tokenizer::IdToToken(int32_t id) const {
  return impl_->tokens.present(id) ? impl_->tokens.json(id) : std::string_view();
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return impl_->tokens.present(id) && (impl_->tokens.flags[id] & internal::TokenTable::kSpecial);
}

const SpecialTokens& Tokenizer::special_tokens() const { return impl_->special; }
ChatFamily Tokenizer::chat_family() const { return impl_->chat_family; }
const std::string& Tokenizer::chat_template_error() const { return impl_->chat_template_error; }
const std::string& Tokenizer::description() const { return impl_->description; }

}  // namespace emoe::tokenizer
