// Fuzzes tokenizer.json loading (tokenizer/tokenizer.h Tokenizer::FromJson) with arbitrary
// bytes: the input is a tokenizer.json and, after a NUL byte if it has one, a
// tokenizer_config.json. Loading must never crash or hang; a tokenizer it accepts must encode
// and decode (fixed texts and the input's own first bytes, which may be invalid UTF-8) without
// crashing, giving ids inside its vocabulary, and Decode must take any ids, known or not.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t nul = input.find('\0');
  const std::string_view json = input.substr(0, nul);
  const std::string_view config = nul == std::string_view::npos ? "" : input.substr(nul + 1);
  auto tok = emoe::tokenizer::Tokenizer::FromJson(json, config, "fuzz");
  if (!tok.ok()) {
    FUZZ_CHECK(!tok.status().message().empty());
    return 0;
  }
  const auto& t = **tok;
  const int32_t vocab = t.vocab_size();
  const std::string texts[] = {"",
                               "Hello world, it's 2024!",
                               "a<s>b</s><|im_start|>user\n\t  x",
                               "\xC3\xA9\xE6\x97\xA5\xF0\x9F\x98\x80 e\xCC\x81",
                               "\xFF\xFE\xC0\x80\xED\xA0\x80",
                               std::string(input.substr(0, 64))};
  for (const std::string& text : texts) {
    for (bool special : {false, true}) {
      const std::vector<int32_t> ids = t.Encode(text, special);
      for (int32_t id : ids) FUZZ_CHECK(id >= 0 && id < vocab);
      (void)t.Decode(ids);
      (void)t.Decode(ids, /*skip_special_tokens=*/true);
    }
  }
  const std::vector<int32_t> odd = {-1, 0, 1, vocab - 1, vocab, vocab + 7, INT32_MAX};
  (void)t.Decode(odd);
  for (int32_t id : odd) (void)t.IdToToken(id);
  return 0;
}
