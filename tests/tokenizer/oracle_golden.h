// tests/tokenizer/oracle_golden.h: the reference's answers (tests/tokenizer/node/golden.mjs)
// read back, and the messages tokenizer_oracle_test prints when ours differ.
//
// A golden file is JSONL, one object a line per corpus string, in corpus order:
//   {"category", "text", "ids", "ids_special", "decoded", "decoded_skip", "roundtrip"}
// (golden.mjs says what each field is). Strings are valid UTF-8 after JSON decoding.
//
// A mismatch message shows the string escaped (printable ASCII as is, other characters as
// \u{XXXX}, bytes that are not UTF-8 as \xNN), so that it can be pasted into a test; ids are
// shown around the first difference with their tokens.
//
// Thread safety: plain functions and values; MismatchLog is not for concurrent use.
#ifndef TESTS_TOKENIZER_ORACLE_GOLDEN_H_
#define TESTS_TOKENIZER_ORACLE_GOLDEN_H_

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace emoe::tokenizer::testing {

struct GoldenCase {
  std::string category;
  std::string text;
  std::vector<int32_t> ids;          // encode(text), add_special_tokens false
  std::vector<int32_t> ids_special;  // encode(text), add_special_tokens true
  std::string decoded;               // decode(ids), special tokens kept
  std::string decoded_skip;          // decode(ids, skip_special_tokens)
  bool roundtrip = false;            // decoded == text
};

namespace internal {

inline bool ReadIds(const nlohmann::json& j, std::vector<int32_t>* out) {
  if (!j.is_array()) return false;
  out->reserve(j.size());
  for (const auto& v : j) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX) {
      return false;
    }
    out->push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return true;
}

}  // namespace internal

// Reads a golden file. Returns false with *error naming the file, the line and the field when
// the file cannot be read or a line is not a golden object.
inline bool ReadGoldens(const std::string& path, std::vector<GoldenCase>* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot open";
    return false;
  }
  std::string line;
  for (size_t n = 1; std::getline(in, line); ++n) {
    const std::string where = path + ":" + std::to_string(n);
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) {
      *error = where + ": not a JSON object";
      return false;
    }
    GoldenCase c;
    for (const char* field : {"category", "text", "decoded", "decoded_skip"}) {
      if (!j.contains(field) || !j[field].is_string()) {
        *error = where + ": field '" + field + "' is not a string";
        return false;
      }
    }
    c.category = j["category"].get<std::string>();
    c.text = j["text"].get<std::string>();
    c.decoded = j["decoded"].get<std::string>();
    c.decoded_skip = j["decoded_skip"].get<std::string>();
    if (!j.contains("ids") || !internal::ReadIds(j["ids"], &c.ids) || !j.contains("ids_special") ||
        !internal::ReadIds(j["ids_special"], &c.ids_special)) {
      *error = where + ": 'ids' or 'ids_special' is not an array of non-negative int32";
      return false;
    }
    if (!j.contains("roundtrip") || !j["roundtrip"].is_boolean()) {
      *error = where + ": field 'roundtrip' is not a boolean";
      return false;
    }
    c.roundtrip = j["roundtrip"].get<bool>();
    out->push_back(std::move(c));
  }
  if (out->empty()) {
    *error = path + ": no golden lines";
    return false;
  }
  return true;
}

// Length of the UTF-8 sequence at s[i] when it is a valid one, else 0.
inline size_t Utf8SequenceLength(std::string_view s, size_t i, uint32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  uint32_t v = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xc0) != 0x80) return 0;
    v = (v << 6) | (b(i + k) & 0x3f);
  }
  static constexpr uint32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (v < kMin[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
  *cp = v;
  return n;
}

inline bool IsValidUtf8(std::string_view s) {
  uint32_t cp;
  for (size_t i = 0; i < s.size();) {
    const size_t n = Utf8SequenceLength(s, i, &cp);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// `s` for a one-line message (see the file comment), cut after `max_chars` characters with
// the total length in bytes. With `raw_letters`, printable characters past Latin-1's controls
// stay as they are (for vocabulary tokens: "\u{120}Hello" reads better as "ĠHello").
inline std::string Escape(std::string_view s, size_t max_chars = 160, bool raw_letters = false) {
  std::string out = "\"";
  char buf[16];
  size_t chars = 0, i = 0;
  for (; i < s.size() && chars < max_chars; ++chars) {
    uint32_t cp = 0;
    const size_t n = Utf8SequenceLength(s, i, &cp);
    if (n == 0) {
      std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned char>(s[i]));
      out += buf;
      ++i;
      continue;
    }
    i += n;
    const char* named = cp == '\n'   ? "\\n"
                        : cp == '\r' ? "\\r"
                        : cp == '\t' ? "\\t"
                        : cp == '\\' ? "\\\\"
                        : cp == '"'  ? "\\\""
                                     : nullptr;
    const bool raw =
        (cp >= 0x20 && cp < 0x7f) || (raw_letters && cp >= 0xa1 && cp != 0xad &&
                                      (cp < 0x2000 || cp > 0x206f) && cp != 0xfeff && cp != 0xfffd);
    if (named != nullptr) {
      out += named;
    } else if (raw) {
      out.append(s.substr(i - n, n));
    } else {
      std::snprintf(buf, sizeof buf, "\\u{%X}", cp);
      out += buf;
    }
  }
  out += "\"";
  if (i < s.size()) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

// The first index where `a` and `b` differ; the shorter size when one is a prefix of the
// other; npos when they are equal.
template <class A, class B>
size_t FirstDifference(const A& a, const B& b) {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    if (a[i] != b[i]) return i;
  }
  return a.size() == b.size() ? std::string::npos : n;
}

// Up to 12 ids of `ids` around `pos`, each with its token: "[.. 9707 "Hello" 1879 " world"]".
inline std::string IdsAround(const Tokenizer& tok, std::span<const int32_t> ids, size_t pos) {
  const size_t from = pos > 4 ? pos - 4 : 0, to = std::min(ids.size(), from + 12);
  std::string out = "[";
  if (from > 0) out += "... ";
  for (size_t i = from; i < to; ++i) {
    out += std::string(i > from ? " " : "") + std::to_string(ids[i]) + " " +
           Escape(tok.IdToToken(ids[i]), 40, /*raw_letters=*/true);
  }
  if (to < ids.size()) out += " ...";
  return out + "] (" + std::to_string(ids.size()) + " ids)";
}

// What two texts look like from a little before their first difference on.
inline std::string TextDiff(std::string_view ours, std::string_view reference,
                            const std::string& ours_name = "ours",
                            const std::string& reference_name = "reference") {
  const size_t at = FirstDifference(ours, reference);
  const size_t from = at > 16 ? at - 16 : 0;
  std::string a = ours_name + ":", b = reference_name + ":";
  const size_t width = std::max(a.size(), b.size()) + 1;
  a.resize(width, ' ');
  b.resize(width, ' ');
  return "first difference at byte " + std::to_string(at) + " (of " + std::to_string(ours.size()) +
         " " + ours_name + ", " + std::to_string(reference.size()) + " " + reference_name +
         "), from byte " + std::to_string(from) + ":\n      " + a +
         Escape(ours.substr(std::min(from, ours.size())), 60) + "\n      " + b +
         Escape(reference.substr(std::min(from, reference.size())), 60);
}

// The mismatches of one check over the corpus: counts per category and the first few in
// detail.
class MismatchLog {
 public:
  explicit MismatchLog(std::string check, size_t shown = 12)
      : check_(std::move(check)), shown_(shown) {}
  // One string checked.
  void Checked(const std::string& category) { ++per_category_[category].second; }
  // One string that differs; `detail` is shown when it is among the first.
  void Mismatch(const std::string& category, const std::string& detail) {
    ++per_category_[category].first;
    if (details_.size() < shown_) details_.push_back("  [" + category + "] " + detail);
    ++mismatches_;
  }
  size_t mismatches() const { return mismatches_; }
  size_t checked() const {
    size_t n = 0;
    for (const auto& [category, counts] : per_category_) n += counts.second;
    return n;
  }
  // "<check>: 3 of 11407 strings differ; per category (differ/checked): cjk 2/801, ...;
  // the first 3: ...".
  std::string Report() const {
    std::ostringstream out;
    out << check_ << ": " << mismatches_ << " of " << checked()
        << " strings differ; per category (differ/checked):";
    for (const auto& [category, counts] : per_category_) {
      if (counts.first > 0) out << " " << category << " " << counts.first << "/" << counts.second;
    }
    out << "\nthe first " << details_.size() << ":\n";
    for (const std::string& d : details_) out << d << "\n";
    return out.str();
  }

 private:
  std::string check_;
  size_t shown_;
  size_t mismatches_ = 0;
  std::map<std::string, std::pair<size_t, size_t>> per_category_;  // {differ, checked}
  std::vector<std::string> details_;
};

}  // namespace emoe::tokenizer::testing

#endif  // TESTS_TOKENIZER_ORACLE_GOLDEN_H_
