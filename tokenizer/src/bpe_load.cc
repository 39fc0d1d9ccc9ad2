// tokenizer/src/bpe_load.cc: building the BPE model from tokenizer.json's "model".
//
// Limits, so that no tokenizer.json can make the loader misbehave: ids are integers in
// [0, 2^24); the id range may hold holes but at most as many as there are tokens plus 65536 (a
// 20-byte file naming id 16777215 would otherwise cost hundreds of MB of tables).
#include <cstdio>
#include <utility>

#include "bpe.h"
#include "byte_level.h"
#include "utf8.h"

namespace emoe::tokenizer::internal {
namespace {

constexpr int64_t kMaxIds = int64_t{1} << 24;

std::string VocabPath(const std::string& where, std::string_view token) {
  return where + "[" + Quote(token) + "]";
}

}  // namespace

bool BpeModel::KeyOf(std::string_view json, std::string* key) const {
  if (byte_level_) return AlphabetToBytes(json, key);
  key->assign(json.data(), json.size());
  return true;
}

vmm::Status BpeModel::ReadOptions(const object& model, const std::string& where) {
  element dropout;
  if (OptionalMember(model, "dropout", &dropout)) {
    double p;
    if (dropout.get_double().get(p) != simdjson::SUCCESS) {
      return TypeError(MemberPath(where, "dropout"), "a number or null", dropout);
    }
    if (p != 0.0) return FieldError(MemberPath(where, "dropout"), "BPE dropout is not supported");
  }
  VMM_RETURN_IF_ERROR(OptionalBool(model, "fuse_unk", where, &fuse_unk_));
  VMM_RETURN_IF_ERROR(OptionalBool(model, "byte_fallback", where, &byte_fallback_));
  VMM_RETURN_IF_ERROR(OptionalBool(model, "ignore_merges", where, &ignore_merges_));
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    std::string_view value;
    VMM_RETURN_IF_ERROR(OptionalString(model, key, where, &value));
    if (!value.empty()) {
      return FieldError(MemberPath(where, key),
                        Quote(value) + ": a non-empty " + key + " is not supported");
    }
  }
  return vmm::Status::Ok();
}

vmm::Status BpeModel::ReadVocab(const element& vocab_value, const std::string& where,
                                const std::vector<AddedTokenSpec>& added, TokenTable* table) {
  object vocab;
  VMM_RETURN_IF_ERROR(AsObject(vocab_value, where, &vocab));
  std::vector<std::pair<std::string_view, int32_t>> entries;
  int64_t max_id = -1;
  for (simdjson::dom::key_value_pair kv : vocab) {
    int64_t id;
    if (kv.value.get_int64().get(id) != simdjson::SUCCESS || id < 0 || id >= kMaxIds) {
      // The path is built only for the message: 151k of them would cost milliseconds.
      VMM_RETURN_IF_ERROR(AsInt(kv.value, VocabPath(where, kv.key), 0, kMaxIds - 1, &id));
    }
    if (entries.size() >= static_cast<size_t>(kMaxIds)) {
      return FieldError(where, "more than " + std::to_string(kMaxIds) + " tokens");
    }
    entries.emplace_back(kv.key, static_cast<int32_t>(id));
    max_id = std::max(max_id, id);
  }
  for (const AddedTokenSpec& a : added) max_id = std::max<int64_t>(max_id, a.id);
  const int64_t size = max_id + 1;
  if (size > static_cast<int64_t>(2 * (entries.size() + added.size()) + 65536)) {
    return FieldError(where, "ids reach " + std::to_string(max_id) + " for only " +
                                 std::to_string(entries.size() + added.size()) +
                                 " tokens (a vocabulary this sparse is not supported)");
  }
  vocab_entries_ = entries.size();
  std::vector<std::string_view> spelling(static_cast<size_t>(size));
  table->flags.assign(static_cast<size_t>(size), 0);
  vocab_.Reserve(entries.size() + added.size(), 0);
  std::string key;
  for (const auto& [token, id] : entries) {
    if (table->flags[id] & TokenTable::kPresent) {
      return FieldError(VocabPath(where, token),
                        "id " + std::to_string(id) + " is also " + Quote(spelling[id]) + "'s");
    }
    table->flags[id] = TokenTable::kPresent;
    spelling[id] = token;
    if (!KeyOf(token, &key)) continue;  // decode-only: not in GPT-2's alphabet
    if (vocab_.Set(key, id) >= 0) return FieldError(VocabPath(where, token), "duplicate token");
  }
  // The reference sets tokens_to_ids[content] = id, and maps each token string the model gives
  // through added_tokens_map (contents and normalized contents) first.
  for (const AddedTokenSpec& a : added) {
    table->flags[a.id] |= TokenTable::kPresent | TokenTable::kAdded;
    spelling[a.id] = a.content;
    if (KeyOf(a.content, &key)) vocab_.Set(key, a.id);
    if (!a.normalized_content.empty() && KeyOf(a.normalized_content, &key)) vocab_.Set(key, a.id);
  }
  table->byte_level = byte_level_;
  table->json_offsets.assign(1, 0);
  for (int64_t id = 0; id < size; ++id) {
    table->json_arena.append(spelling[id]);
    table->json_offsets.push_back(static_cast<uint32_t>(table->json_arena.size()));
  }
  if (byte_level_) {
    table->raw_offsets.assign(1, 0);
    for (int64_t id = 0; id < size; ++id) {
      // Added tokens decode verbatim, and a token outside the alphabet as its own UTF-8.
      if ((table->flags[id] & TokenTable::kAdded) || !AlphabetToBytes(spelling[id], &key)) {
        key.assign(spelling[id].data(), spelling[id].size());
      }
      table->raw_arena.append(key);
      table->raw_offsets.push_back(static_cast<uint32_t>(table->raw_arena.size()));
    }
  }
  return vmm::Status::Ok();
}

vmm::Status BpeModel::ReadMerges(const element& merges_value, const std::string& where) {
  array list;
  VMM_RETURN_IF_ERROR(AsArray(merges_value, where, &list));
  merges_.Reserve(list.size());
  int32_t rank = 0;
  std::string left_key, right_key;
  for (element merge : list) {
    auto merge_where = [&] { return ElementPath(where, static_cast<size_t>(rank)); };
    std::string_view left, right;
    std::string_view line;
    array pair;
    if (merge.get_string().get(line) == simdjson::SUCCESS) {
      const size_t space = line.find(' ');
      if (space == std::string_view::npos || line.find(' ', space + 1) != std::string_view::npos) {
        return FieldError(merge_where(), Quote(line) + " is not two tokens separated by one space");
      }
      left = line.substr(0, space);
      right = line.substr(space + 1);
    } else if (merge.get_array().get(pair) == simdjson::SUCCESS) {
      if (pair.size() != 2 || pair.at(0).get_string().get(left) != simdjson::SUCCESS ||
          pair.at(1).get_string().get(right) != simdjson::SUCCESS) {
        return FieldError(merge_where(), "expected an array of two strings");
      }
    } else {
      return TypeError(merge_where(), "a string or an array of two strings", merge);
    }
    const bool keys_ok = KeyOf(left, &left_key) && KeyOf(right, &right_key);
    const int32_t left_id = keys_ok ? vocab_.Find(left_key) : -1;
    const int32_t right_id = keys_ok ? vocab_.Find(right_key) : -1;
    if (left_id < 0 || right_id < 0) {
      return FieldError(merge_where(), "merge names " + Quote(left_id < 0 ? left : right) +
                                           ", which is not in the vocabulary");
    }
    left_key += right_key;
    const int32_t merged_id = vocab_.Find(left_key);
    if (merged_id < 0) {
      return FieldError(merge_where(), "the merge of " + Quote(left) + " and " + Quote(right) +
                                           " is not in the vocabulary");
    }
    merges_.Set(left_id, right_id, {rank, merged_id});
    NoteBoundary(left_key.substr(0, left_key.size() - right_key.size()), right_key);
    if (rank == INT32_MAX) return FieldError(where, "too many merges");
    ++rank;
  }
  return vmm::Status::Ok();
}

void BpeModel::NoteBoundary(std::string_view left_key, std::string_view right_key) {
  if (left_key.empty() || right_key.empty()) return;  // such a merge never applies
  if (byte_level_) {
    const uint32_t a = static_cast<unsigned char>(left_key.back());
    const uint32_t b = static_cast<unsigned char>(right_key[0]);
    byte_bigrams_[(a << 8 | b) >> 6] |= uint64_t{1} << (b & 63);
    return;
  }
  size_t lead = left_key.size() - 1;
  while (lead > 0 && (static_cast<unsigned char>(left_key[lead]) & 0xC0) == 0x80) --lead;
  uint32_t length;
  const char32_t a = DecodeUtf8(left_key, lead, &length);
  const char32_t b = DecodeUtf8(right_key, 0, &length);
  char_bigrams_.Set(static_cast<int32_t>(a), static_cast<int32_t>(b), {0, 0});
}

void BpeModel::FinishTables() {
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    byte_ids_[b] = vocab_.Find(std::string_view(&c, 1));
    if (b < 128) ascii_ids_[b] = byte_ids_[b];
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    fallback_ids_[b] = vocab_.Find(name);
  }
}

vmm::StatusOr<std::unique_ptr<BpeModel>> BpeModel::Build(const element& model,
                                                         const std::string& where,
                                                         const std::vector<AddedTokenSpec>& added,
                                                         bool byte_level, TokenTable* table) {
  object obj;
  VMM_RETURN_IF_ERROR(AsObject(model, where, &obj));
  std::string_view type;
  VMM_RETURN_IF_ERROR(ComponentType(obj, where, &type));
  if (type != "BPE") return UnsupportedType(where, type, "BPE");
  std::unique_ptr<BpeModel> m(new BpeModel());
  m->byte_level_ = byte_level;
  VMM_RETURN_IF_ERROR(m->ReadOptions(obj, where));
  element vocab, merges;
  VMM_RETURN_IF_ERROR(RequiredMember(obj, "vocab", where, &vocab));
  VMM_RETURN_IF_ERROR(m->ReadVocab(vocab, MemberPath(where, "vocab"), added, table));
  VMM_RETURN_IF_ERROR(RequiredMember(obj, "merges", where, &merges));
  VMM_RETURN_IF_ERROR(m->ReadMerges(merges, MemberPath(where, "merges")));
  std::string_view unk;
  bool has_unk = false;
  VMM_RETURN_IF_ERROR(OptionalString(obj, "unk_token", where, &unk, &has_unk));
  if (has_unk) {
    std::string key;
    m->unk_id_ = m->KeyOf(unk, &key) ? m->vocab_.Find(key) : -1;
    if (m->unk_id_ < 0) {
      return FieldError(MemberPath(where, "unk_token"), Quote(unk) + " is not in the vocabulary");
    }
  }
  m->FinishTables();
  return m;
}

}  // namespace emoe::tokenizer::internal
