// server/src/openai_unsupported.h (private to server_api): the fields of vLLM's request classes
// this server cannot honour. Each is accepted when absent, null or equal to its neutral value
// (the one that asks for nothing: "n": 1, "echo": false, "frequency_penalty": 0, ...) so that
// clients which send the defaults explicitly keep working; any other value is a 400 naming the
// field and why ("'n' is not supported (one choice per request): only 1 is accepted, got 2").
//
// Thread safety: plain functions.
#ifndef SERVER_SRC_OPENAI_UNSUPPORTED_H_
#define SERVER_SRC_OPENAI_UNSUPPORTED_H_

#include "openai_json.h"

namespace emoe::server::internal {

// The first field of the request object `f` (of /v1/chat/completions when `chat`) that asks for
// what this server cannot do, as a 400; nothing when there is none.
MaybeError CheckUnsupported(const Fields& f, bool chat);

}  // namespace emoe::server::internal

#endif  // SERVER_SRC_OPENAI_UNSUPPORTED_H_
