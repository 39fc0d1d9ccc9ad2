// tests/tokenizer/chat_template_test.cc: ApplyChatTemplate against the strings the families' own
// Jinja templates render, and the refusals.
//
// The goldens: tests/tokenizer/data/chat_golden.json, written by
// tests/tokenizer/node/render_chat.mjs, which renders Qwen3's tokenizer_config.json
// "chat_template" and Mixtral-8x7B-Instruct-v0.1's (tests/tokenizer/data/
// mixtral-8x7b-instruct-v0.1.chat_template.jinja, whose header says where it comes from) with
// @huggingface/jinja 0.5.11 for each case's messages and options. A case the template refuses
// (raise_exception) records the template's message, which ApplyChatTemplate's error must hold.
// The file also holds both templates' text, which ChatFamilyOfTemplate must classify.
#include "tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace emoe::tokenizer {
namespace {

const char kGolden[] = EMOE_TOKENIZER_TESTDATA "/chat_golden.json";

nlohmann::json LoadGolden() {
  std::ifstream in(kGolden, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  return j;
}

std::vector<ChatMessage> Messages(const nlohmann::json& list) {
  std::vector<ChatMessage> out;
  for (const nlohmann::json& m : list) {
    out.push_back({m.at("role").get<std::string>(), m.at("content").get<std::string>()});
  }
  return out;
}

ChatOptions Options(const nlohmann::json& o) {
  ChatOptions opts;
  opts.add_generation_prompt = o.at("add_generation_prompt").get<bool>();
  opts.enable_thinking = o.at("enable_thinking").get<bool>();
  opts.bos_token = o.at("bos_token").get<std::string>();
  opts.eos_token = o.at("eos_token").get<std::string>();
  return opts;
}

TEST(ChatTemplateTest, EveryRecordedStringOfBothTemplates) {
  const nlohmann::json golden = LoadGolden();
  ASSERT_FALSE(golden.is_discarded()) << kGolden << ": missing or not JSON";
  const nlohmann::json& cases = golden.at("cases");
  std::set<std::string> families;
  size_t rendered = 0, refused = 0;
  for (const nlohmann::json& c : cases) {
    const std::string name =
        c.at("family").get<std::string>() + ": " + c.at("name").get<std::string>();
    SCOPED_TRACE(name);
    const ChatFamily family =
        c.at("family") == "chatml" ? ChatFamily::kChatML : ChatFamily::kMistral;
    families.insert(c.at("family").get<std::string>());
    const vmm::StatusOr<std::string> got =
        ApplyChatTemplate(family, Messages(c.at("messages")), Options(c.at("options")));
    if (c.contains("error")) {
      ++refused;
      ASSERT_FALSE(got.ok()) << "the template refuses this, but ApplyChatTemplate gave:\n"
                             << got.value();
      EXPECT_EQ(got.status().code(), vmm::StatusCode::kInvalidArgument);
      EXPECT_NE(got.status().message().find(c.at("error").get<std::string>()), std::string::npos)
          << got.status().message();
    } else {
      ++rendered;
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(got.value(), c.at("expected").get<std::string>());
    }
  }
  EXPECT_EQ(families, (std::set<std::string>{"chatml", "mistral"}));
  EXPECT_GE(rendered, 35u);
  EXPECT_GE(refused, 5u);
}

TEST(ChatTemplateTest, RecordedTemplatesAreClassified) {
  const nlohmann::json golden = LoadGolden();
  ASSERT_FALSE(golden.is_discarded()) << kGolden;
  const vmm::StatusOr<ChatFamily> qwen =
      ChatFamilyOfTemplate(golden.at("templates").at("qwen3").at("text").get<std::string>());
  ASSERT_TRUE(qwen.ok()) << qwen.status().ToString();
  EXPECT_EQ(qwen.value(), ChatFamily::kChatML);
  const vmm::StatusOr<ChatFamily> mixtral =
      ChatFamilyOfTemplate(golden.at("templates").at("mixtral").at("text").get<std::string>());
  ASSERT_TRUE(mixtral.ok()) << mixtral.status().ToString();
  EXPECT_EQ(mixtral.value(), ChatFamily::kMistral);
}

// Other families' templates (their tokenizer_config.json "chat_template" as published).
TEST(ChatTemplateTest, OtherFamiliesAreRefused) {
  const std::string llama3 =
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
      "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
      "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% "
      "endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
      "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
  const std::string gemma =
      "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
      "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != "
      "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
      "user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') "
      "%}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ "
      "'<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% "
      "endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}";
  const std::string llama2 =
      "{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\\n' + "
      "messages[0]['content'] | trim + '\\n<</SYS>>\\n\\n' %}{% endif %}{% for message in "
      "messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] "
      "| trim + ' [/INST]' }}{% endif %}{% endfor %}";
  for (const std::string* t : {&llama3, &gemma, &llama2}) {
    const vmm::StatusOr<ChatFamily> f = ChatFamilyOfTemplate(*t);
    ASSERT_FALSE(f.ok()) << *t;
    EXPECT_EQ(f.status().code(), vmm::StatusCode::kInvalidArgument);
    // The message quotes the template's start.
    EXPECT_NE(f.status().message().find(t->substr(0, 20)), std::string::npos)
        << f.status().message();
  }
  EXPECT_NE(ChatFamilyOfTemplate(llama2).status().message().find("<<SYS>>"), std::string::npos);
  EXPECT_FALSE(ChatFamilyOfTemplate("").ok());
  EXPECT_FALSE(ChatFamilyOfTemplate("<|im_start|>[INST][/INST]<|im_end|>").ok());
}

TEST(ChatTemplateTest, NoTemplateAndEmptyListsAreRefused) {
  const std::vector<ChatMessage> one = {{"user", "hi"}};
  const vmm::StatusOr<std::string> none = ApplyChatTemplate(ChatFamily::kNone, one, {});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), vmm::StatusCode::kInvalidArgument);
  EXPECT_NE(none.status().message().find("no chat template"), std::string::npos);
  for (ChatFamily f : {ChatFamily::kChatML, ChatFamily::kMistral}) {
    const vmm::StatusOr<std::string> empty = ApplyChatTemplate(f, {}, {});
    ASSERT_FALSE(empty.ok()) << ChatFamilyName(f);
    EXPECT_NE(empty.status().message().find("empty"), std::string::npos);
  }
}

// Qwen3's template renders nothing for a role it does not know; ApplyChatTemplate refuses the
// message instead of dropping it (chat_template.cc), naming its index and role.
TEST(ChatTemplateTest, ChatMLRefusesRolesItWouldDrop) {
  const std::vector<ChatMessage> msgs = {{"user", "a"}, {"developer", "b"}};
  const vmm::StatusOr<std::string> got = ApplyChatTemplate(ChatFamily::kChatML, msgs, {});
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("message 1 has role 'developer'"), std::string::npos)
      << got.status().message();
}

TEST(ChatTemplateTest, MistralRefusalsNameTheMessage) {
  const std::vector<ChatMessage> msgs = {{"system", "s"}, {"user", "a"}};
  const vmm::StatusOr<std::string> got = ApplyChatTemplate(ChatFamily::kMistral, msgs, {});
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.status().message().find("message 0 (role 'system')"), std::string::npos)
      << got.status().message();
  EXPECT_NE(got.status().message().find("Conversation roles must alternate"), std::string::npos);
}

}  // namespace
}  // namespace emoe::tokenizer
