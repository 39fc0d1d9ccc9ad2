// tokenizer/src/tokenizer.cc: loading tokenizer.json, the Encode/Decode pipeline.
#include "tokenizer/tokenizer.h"

namespace emoe::tokenizer {

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

}  // namespace emoe::tokenizer
