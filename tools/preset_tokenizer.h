// tools/preset_tokenizer.h: the real tokenizer of a generated model. A preset with a vocabulary
// (engine::PresetVocabulary: qwen3-text, mixtral-text) gets the family's tokenizer.json and
// tokenizer_config.json beside its weights, copied from a folder of real vocabularies
// (data/tokenizers/<vocabulary>/, fetched by scripts/fetch_tokenizers.sh), so that emoe serves
// text through the real tokenizer. The Mistral family's config has no chat template: the
// Mixtral-8x7B-Instruct-v0.1 one is added (tools/mixtral_chat_template.h).
//
// Thread safety: pure functions of their arguments and the files they name.
#ifndef TOOLS_PRESET_TOKENIZER_H_
#define TOOLS_PRESET_TOKENIZER_H_

#include <string>

#include "vmm/status.h"

namespace emoe::tools {

// Where the vocabulary of `preset` is by default: <source tree>/data/tokenizers/<vocabulary>
// (a path compiled in), "" for a preset with the byte tokenizer.
std::string DefaultTokenizerDir(const std::string& preset);

// Ok when `preset` needs no tokenizer or `dir` holds tokenizer.json and tokenizer_config.json;
// otherwise kNotFound naming the preset, the file missing and how to get it ("preset qwen3-text
// needs Qwen3's tokenizer: no /src/data/tokenizers/qwen3/tokenizer.json (run
// scripts/fetch_tokenizers.sh)").
vmm::Status CheckPresetTokenizerDir(const std::string& preset, const std::string& dir);

// Copies the two files of `dir` into `model_dir` (which holds the generated config.json): the
// tokenizer.json byte for byte, the tokenizer_config.json too, or with the Mixtral chat template
// added when it is the Mistral family's and has none. Then loads the result and checks it: its
// vocabulary fits the model's (config.json vocab_size) and its chat family is the preset's.
// Nothing is done for a preset without a vocabulary. Errors name the file.
vmm::Status WritePresetTokenizer(const std::string& preset, const std::string& dir,
                                 const std::string& model_dir);

}  // namespace emoe::tools

#endif  // TOOLS_PRESET_TOKENIZER_H_
