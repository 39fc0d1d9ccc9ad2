// The real tokenizer of a generated model (preset_tokenizer.h).
#include "tools/preset_tokenizer.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/model.h"
#include "tokenizer/tokenizer.h"
#include "tools/mixtral_chat_template.h"
#include "vmm/file.h"

#ifndef EMOE_TOKENIZER_DATA
#error "EMOE_TOKENIZER_DATA (the data/tokenizers folder of the source tree) must be defined"
#endif

namespace emoe::tools {
namespace {

namespace fs = std::filesystem;
using vmm::Status;

constexpr uint64_t kMaxTokenizerFileBytes = 256ull << 20;  // as Tokenizer::Load reads them

// The family's name in messages ("Qwen3's tokenizer").
std::string FamilyName(const std::string& vocabulary) {
  return vocabulary == "qwen3" ? "Qwen3's" : "the Mistral family's";
}

// `config` with "chat_template": `jinja` added as its last member, the rest of the text as it
// was (kDataLoss naming `path` when it is not a JSON object).
vmm::StatusOr<std::string> WithChatTemplate(const std::string& config, const std::string& path,
                                            const std::string& jinja) {
  const nlohmann::json j = nlohmann::json::parse(config, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return Status::DataLoss(path + ": not a JSON object");
  if (j.contains("chat_template")) return config;
  const size_t close = config.rfind('}');  // the object's own: nothing but space follows it
  std::string head = config.substr(0, close);
  while (!head.empty() && std::isspace(static_cast<unsigned char>(head.back()))) head.pop_back();
  return head + (j.empty() ? "" : ",") + "\n  \"chat_template\": " + nlohmann::json(jinja).dump() +
         "\n" + config.substr(close);
}

Status WriteFile(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) return Status::DataLoss("write " + path.string() + " failed");
  return Status::Ok();
}

}  // namespace

std::string DefaultTokenizerDir(const std::string& preset) {
  const std::string vocabulary = engine::PresetVocabulary(preset);
  if (vocabulary.empty()) return "";
  return (fs::path(EMOE_TOKENIZER_DATA) / vocabulary).string();
}

Status CheckPresetTokenizerDir(const std::string& preset, const std::string& dir) {
  const std::string vocabulary = engine::PresetVocabulary(preset);
  if (vocabulary.empty()) return Status::Ok();
  for (const char* name : {"tokenizer.json", "tokenizer_config.json"}) {
    const fs::path path = fs::path(dir) / name;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      return Status::NotFound("preset " + preset + " needs " + FamilyName(vocabulary) +
                              " tokenizer: no " + path.string() +
                              " (run scripts/fetch_tokenizers.sh)");
    }
  }
  return Status::Ok();
}

Status WritePresetTokenizer(const std::string& preset, const std::string& dir,
                            const std::string& model_dir) {
  const std::string vocabulary = engine::PresetVocabulary(preset);
  if (vocabulary.empty()) return Status::Ok();
  VMM_RETURN_IF_ERROR(CheckPresetTokenizerDir(preset, dir));
  const fs::path from(dir), to(model_dir);
  VMM_ASSIGN_OR_RETURN(const std::string tokenizer_json,
                       vmm::ReadRegularFile((from / "tokenizer.json").string(), "tokenizer.json",
                                            kMaxTokenizerFileBytes));
  const std::string config_path = (from / "tokenizer_config.json").string();
  VMM_ASSIGN_OR_RETURN(
      std::string config,
      vmm::ReadRegularFile(config_path, "tokenizer_config.json", kMaxTokenizerFileBytes));
  if (vocabulary == "mistral") {
    VMM_ASSIGN_OR_RETURN(config,
                         WithChatTemplate(config, config_path, kMixtralInstructV01ChatTemplate));
  }
  VMM_RETURN_IF_ERROR(WriteFile(to / "tokenizer.json", tokenizer_json));
  VMM_RETURN_IF_ERROR(WriteFile(to / "tokenizer_config.json", config));
  // What was written serves: it loads, fits the model's embedding rows, and templates chats.
  VMM_ASSIGN_OR_RETURN(const engine::ModelConfig model, engine::LoadModelConfig(model_dir));
  VMM_ASSIGN_OR_RETURN(auto tok, tokenizer::Tokenizer::Load(model_dir));
  if (tok->vocab_size() > model.vocab_size) {
    return Status::InvalidArgument((to / "tokenizer.json").string() + " (from " + dir + ") has " +
                                   std::to_string(tok->vocab_size()) + " ids, more than preset " +
                                   preset + "'s vocab_size " + std::to_string(model.vocab_size) +
                                   ": not " + FamilyName(vocabulary) + " vocabulary");
  }
  const tokenizer::ChatFamily want =
      vocabulary == "qwen3" ? tokenizer::ChatFamily::kChatML : tokenizer::ChatFamily::kMistral;
  if (tok->chat_family() != want) {
    return Status::InvalidArgument((to / "tokenizer_config.json").string() + " (from " + dir +
                                   "): chat template family " +
                                   tokenizer::ChatFamilyName(tok->chat_family()) + ", preset " +
                                   preset + " needs " + tokenizer::ChatFamilyName(want));
  }
  return Status::Ok();
}

}  // namespace emoe::tools
