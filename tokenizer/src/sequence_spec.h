// tokenizer/src/sequence_spec.h: the "Sequence" component that normalizers, pre-tokenizers and
// decoders share: its list member read once (depth bounded, each item's JSON path named) and its
// description. Internal to the module.
//
// Thread safety: pure functions.
#ifndef TOKENIZER_SRC_SEQUENCE_SPEC_H_
#define TOKENIZER_SRC_SEQUENCE_SPEC_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "json_fields.h"

namespace emoe::tokenizer::internal {

// Sequences nest at most this deep (a document cannot recurse the loader off its stack).
constexpr int kMaxSequenceDepth = 16;

// Calls visit(item, item_where) -> vmm::Status for each element of obj[member] (an array), in
// order; stops at the first error. `depth` is the nesting depth of this Sequence.
template <typename Visit>
vmm::Status ForEachSequenceItem(const object& obj, std::string_view member,
                                const std::string& where, int depth, Visit visit) {
  if (depth >= kMaxSequenceDepth) {
    return FieldError(where, "Sequence nested deeper than " + std::to_string(kMaxSequenceDepth));
  }
  element list_value;
  VMM_RETURN_IF_ERROR(RequiredMember(obj, member, where, &list_value));
  const std::string list_where = MemberPath(where, member);
  array list;
  VMM_RETURN_IF_ERROR(AsArray(list_value, list_where, &list));
  size_t i = 0;
  for (element item : list) {
    VMM_RETURN_IF_ERROR(visit(item, ElementPath(list_where, i++)));
  }
  return vmm::Status::Ok();
}

// "Sequence[A, B]" from the stages' describe().
template <typename Stage>
std::string DescribeSequence(const std::vector<std::unique_ptr<Stage>>& stages) {
  std::string out = "Sequence[";
  for (size_t i = 0; i < stages.size(); ++i) {
    if (i > 0) out += ", ";
    out += stages[i]->describe();
  }
  return out + "]";
}

}  // namespace emoe::tokenizer::internal

#endif  // TOKENIZER_SRC_SEQUENCE_SPEC_H_
