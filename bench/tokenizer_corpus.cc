// bench/tokenizer_corpus.cc: the generator of tokenizer_corpus.h.
#include "tokenizer_corpus.h"

#include <cstdint>
#include <string_view>

namespace emoe::bench {
namespace {

// SplitMix64: a fixed, portable sequence.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  size_t Below(size_t n) { return static_cast<size_t>(Next() % n); }

 private:
  uint64_t state_;
};

template <size_t N>
std::string_view Pick(Rng* rng, const std::string_view (&items)[N]) {
  return items[rng->Below(N)];
}

constexpr std::string_view kEnglish[] = {
    "The committee met on Tuesday to review the budget, which had grown by",
    "percent since the last fiscal year.",
    "She didn't think it'd rain, but they'll bring umbrellas anyway; we've learned that much.",
    "In 1969, Apollo 11 landed on the Moon, and Neil Armstrong's first words were broadcast "
    "worldwide.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "\"Are you sure?\" he asked. \"I'm positive,\" she replied, closing the door behind her.",
    "The quick brown fox jumps over the lazy dog while the cat watches from the windowsill.",
    "Interest rates rose to",
    "percent, the highest level in over a decade, according to the central bank's report.",
    "Machine learning models require large amounts of data, careful evaluation, and patience.",
    "Our train leaves at 7:45 a.m. from platform 9; tickets cost $23.50 each (or $40 return).",
    "It's a truth universally acknowledged that a well-tested program is rarely a fast one "
    "at first.",
    "Dr. Smith's lab published three papers this year -- one of them in Nature.",
    "The population of the city was estimated at",
    "residents in the 2020 census, up from the previous count.",
    "Please send your comments by e-mail to the editors before the end of the month.",
    "Wait... what?! You're telling me the server's been down since 03:00 UTC?",
    "Mountains, rivers, and forests cover most of the northern region of the country.",
};

constexpr std::string_view kCode[] = {
    "#include <stdio.h>\n\nint main(int argc, char** argv) {\n\tfor (int i = 0; i < argc; ++i) "
    "{\n\t\tprintf(\"%d: %s\\n\", i, argv[i]);\n\t}\n\treturn 0;\n}\n",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    "
    "for _ in range(n):\n        a, b = b, a + b\n    return a\n\n\n",
    "class Cache:\n    def __init__(self, capacity=128):\n        self.capacity    = capacity\n"
    "        self.items       = {}\n        self.hits, self.misses = 0, 0\n\n",
    "{\n  \"name\": \"example\",\n  \"version\": \"1.2.3\",\n  \"dependencies\": {\n    "
    "\"lodash\": \"^4.17.21\",\n    \"express\": \"~4.18.2\"\n  }\n}\n",
    "SELECT u.id, u.name, COUNT(o.id) AS orders\n  FROM users u\n  LEFT JOIN orders o ON o.user_id "
    "= u.id\n WHERE u.created_at >= '2023-01-01'\n GROUP BY u.id, u.name\n ORDER BY orders "
    "DESC;\n",
    "fn main() {\n    let v: Vec<u32> = (1..=10).map(|x| x * x).collect();\n    println!(\"{:?}\", "
    "v);\n}\n",
    "\t\t// TODO(someone): handle the error case\n\t\tif (err != nil) {\n\t\t\treturn "
    "fmt.Errorf(\"read %s: %w\", path, err)\n\t\t}\n",
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do\n  wc -l \"$f\"    # count lines\ndone\n",
    "    x = [1, 2, 3,    4,\n         5, 6]        # aligned\n    y = {'a': 1,\t'b': 2}\n\n\n",
    "<div class=\"container\">\n  <p>Hello, <b>world</b>!</p>\n  <!-- comment -->\n</div>\n",
};

constexpr std::string_view kCjk[] = {
    "今天天气很好，我们去公园散步吧。",
    "机器学习是人工智能的一个重要分支。",
    "这个问题的答案并不简单，需要仔细思考。",
    "北京是中华人民共和国的首都，人口超过两千万。",
    "我昨天买了三本书，花了一百二十元。",
    "東京は日本の首都で、世界有数の大都市です。",
    "私は毎朝コーヒーを飲みながらニュースを読みます。",
    "このプログラムはとても速く動きます。",
    "한국어는 한글로 쓰며 세종대왕이 창제하였습니다.",
    "오늘 회의는 오후 세 시에 시작합니다.",
    "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
    "「はい、わかりました」と彼は言った。",
};

constexpr std::string_view kArabic[] = {
    "اللغة العربية من أكثر اللغات انتشاراً في العالم.",  "ذهبت إلى السوق واشتريت الخبز والحليب.",
    "يبلغ عدد سكان المدينة ١٢٣٤٥٦ نسمة حسب آخر إحصاء.", "العلم نور والجهل ظلام.",
    "سيبدأ الاجتماع في الساعة ١٠:٣٠ صباحاً يوم الأحد.",  "مرحباً بكم في موقعنا الإلكتروني!",
    "قال: «إن المعرفة قوة»، ثم أغلق الكتاب.",           "تُعَدُّ القاهرة من أكبر المدن في أفريقيا.",
};

constexpr std::string_view kEmoji[] = {
    "😀",
    "😂",
    "👍",
    "👍🏽",
    "❤️",
    "🎉",
    "🔥",
    "🙏🏾",
    "👨‍👩‍👧‍👦",
    "🏳️‍🌈",
    "🇺🇸",
    "🇯🇵",
    "🤔",
    "✨",
    "🚀",
    "☕",
    "🐍",
    "💯",
    "😭",
    "🥳",
    "👩🏻‍💻",
    "🧑‍🤝‍🧑",
};
constexpr std::string_view kChat[] = {
    "lol that's amazing",
    "omg",
    "see you tmrw!!",
    "congrats on the new job",
    "brb",
    "can't wait for the weekend",
    "happy birthday",
    "that meeting could've been an email",
    "ok ok",
    "thx so much",
    "good morning everyone",
    "who's bringing snacks?",
};

// Words for generated sentences: common ones most of the time, and now and then a made-up one
// (random letters), as real text has a long tail of rare words.
constexpr std::string_view kWords[] = {
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "was",
    "with",
    "be",
    "by",
    "on",
    "not",
    "he",
    "this",
    "are",
    "or",
    "his",
    "from",
    "at",
    "which",
    "but",
    "have",
    "an",
    "had",
    "they",
    "you",
    "were",
    "their",
    "one",
    "all",
    "we",
    "can",
    "her",
    "has",
    "there",
    "been",
    "if",
    "more",
    "when",
    "will",
    "would",
    "who",
    "so",
    "no",
    "system",
    "people",
    "between",
    "government",
    "important",
    "development",
    "however",
    "information",
    "although",
    "research",
    "particular",
    "experience",
    "understanding",
    "university",
    "environment",
    "management",
    "performance",
    "relationship",
    "significant",
    "community",
    "available",
    "conference",
    "temperature",
    "photograph",
    "neighbourhood",
    "Europe",
    "Tuesday",
    "London",
    "Microsoft",
    "Python",
    "Wikipedia",
    "NASA",
    "COVID-19",
};

void AppendMadeUpWord(Rng* rng, std::string* out) {
  const size_t length = 3 + rng->Below(10);
  for (size_t k = 0; k < length; ++k) out->push_back(static_cast<char>('a' + rng->Below(26)));
}

void AppendGeneratedSentence(Rng* rng, std::string* doc) {
  const size_t words = 5 + rng->Below(20);
  for (size_t w = 0; w < words; ++w) {
    if (w > 0) doc->append(rng->Below(12) == 0 ? ", " : " ");
    if (rng->Below(20) == 0) {
      AppendMadeUpWord(rng, doc);
    } else {
      std::string_view word = Pick(rng, kWords);
      if (w == 0 && word[0] >= 'a' && word[0] <= 'z') {
        doc->push_back(static_cast<char>(word[0] - 'a' + 'A'));
        word.remove_prefix(1);
      }
      doc->append(word);
    }
  }
  doc->append(rng->Below(8) == 0 ? "?" : ".");
}

void AppendNumber(Rng* rng, std::string* out) {
  out->append(std::to_string(rng->Below(100000) / (rng->Below(3) == 0 ? 1 : 100)));
}

void AppendEnglish(Rng* rng, std::string* doc) {
  if (rng->Below(2) == 0) {
    AppendGeneratedSentence(rng, doc);
    doc->append(rng->Below(6) == 0 ? "\n\n" : " ");
    return;
  }
  const std::string_view sentence = Pick(rng, kEnglish);
  doc->append(sentence);
  if (sentence.back() != '.' && sentence.back() != '?' && sentence.back() != '!') {
    doc->push_back(' ');
    AppendNumber(rng, doc);
  }
  doc->append(rng->Below(6) == 0 ? "\n\n" : " ");
}

void AppendCode(Rng* rng, std::string* doc) {
  doc->append(Pick(rng, kCode));
  if (rng->Below(3) == 0) doc->append("\n");
}

void AppendCjk(Rng* rng, std::string* doc) {
  if (rng->Below(3) == 0) {
    // A made-up phrase: characters drawn from the sentences (3 bytes each in UTF-8).
    for (size_t k = 4 + rng->Below(12); k > 0; --k) {
      const std::string_view from = Pick(rng, kCjk);
      const size_t chars = from.size() / 3;
      const size_t c = rng->Below(chars) * 3;
      if ((static_cast<unsigned char>(from[c]) & 0xF0) == 0xE0) doc->append(from.substr(c, 3));
    }
    doc->append("。");
    return;
  }
  doc->append(Pick(rng, kCjk));
  if (rng->Below(5) == 0) doc->append("\n");
}

void AppendArabic(Rng* rng, std::string* doc) {
  doc->append(Pick(rng, kArabic));
  doc->append(rng->Below(5) == 0 ? "\n" : " ");
}

void AppendChat(Rng* rng, std::string* doc) {
  doc->append(Pick(rng, kChat));
  for (size_t k = 1 + rng->Below(3); k > 0; --k) doc->append(Pick(rng, kEmoji));
  doc->append(rng->Below(3) == 0 ? "\n" : " ");
}

}  // namespace

std::vector<std::string> MakeTokenizerCorpus(size_t target_bytes) {
  Rng rng(0x70C0A1E5u);
  // Genres by share of documents, per 20: English 8, code 5, CJK 3, Arabic 2, chat/emoji 2.
  using Append = void (*)(Rng*, std::string*);
  constexpr Append kGenres[20] = {AppendEnglish, AppendEnglish, AppendEnglish, AppendEnglish,
                                  AppendEnglish, AppendEnglish, AppendEnglish, AppendEnglish,
                                  AppendCode,    AppendCode,    AppendCode,    AppendCode,
                                  AppendCode,    AppendCjk,     AppendCjk,     AppendCjk,
                                  AppendArabic,  AppendArabic,  AppendChat,    AppendChat};
  std::vector<std::string> docs;
  size_t total = 0;
  while (total < target_bytes) {
    const Append append = kGenres[rng.Below(20)];
    const size_t size = 1024 + rng.Below(5 * 1024);
    std::string doc;
    while (doc.size() < size) append(&rng, &doc);
    total += doc.size();
    docs.push_back(std::move(doc));
  }
  return docs;
}

}  // namespace emoe::bench
