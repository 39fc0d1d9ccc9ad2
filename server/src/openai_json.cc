// server/src/openai_json.cc: request JSON without exceptions (openai_json.h). The DOM is built by
// nlohmann's own SAX DOM builder; a thin layer over it keeps the path of the value being read
// (a stack of frames: an object's current key, an array's current index) so that a parse fault
// can name its field, and bounds the nesting depth.
#include "openai_json.h"

#include <cmath>
#include <limits>
#include <vector>

namespace emoe::server::internal {
namespace {

// nlohmann's DOM builder, with the path of the value being read and a depth bound. Its methods
// hide the base's (sax_parse calls them on this type, not through virtuals).
class PathDomParser : public nlohmann::detail::json_sax_dom_parser<Json> {
 public:
  using Base = nlohmann::detail::json_sax_dom_parser<Json>;
  explicit PathDomParser(Json* root) : Base(*root, /*allow_exceptions=*/false) {}

  bool null() { return Scalar() && Base::null(); }
  bool boolean(bool v) { return Scalar() && Base::boolean(v); }
  bool number_integer(number_integer_t v) { return Scalar() && Base::number_integer(v); }
  bool number_unsigned(number_unsigned_t v) { return Scalar() && Base::number_unsigned(v); }
  bool number_float(number_float_t v, const string_t& s) {
    return Scalar() && Base::number_float(v, s);
  }
  bool string(string_t& v) { return Scalar() && Base::string(v); }
  bool binary(binary_t& v) { return Scalar() && Base::binary(v); }
  bool start_object(std::size_t n) { return Open(false) && Base::start_object(n); }
  bool key(string_t& k) {
    frames_.back().key = k;
    frames_.back().in_value = true;
    return Base::key(k);
  }
  bool end_object() { return Close() && Base::end_object(); }
  bool start_array(std::size_t n) { return Open(true) && Base::start_array(n); }
  bool end_array() { return Close() && Base::end_array(); }

  template <class Exception>
  bool parse_error(std::size_t position, const std::string& /*last_token*/, const Exception& ex) {
    error_ = Reason(ex.what());
    position_ = position > 0 ? position - 1 : 0;
    failed_ = true;
    return false;
  }

  bool failed() const { return failed_; }
  const std::string& error() const { return error_; }
  size_t position() const { return position_; }
  // The path of the value being read when the parser stopped: "messages[0].content"; "" at the
  // top. It stops at the first container that was between values (a fault in a key, a comma).
  std::string Path() const {
    std::string p;
    for (const Frame& f : frames_) {
      if (!f.in_value) {
        // Between an array's elements the fault is in the next one ("prompt[1]": a bad string).
        if (f.array) p += "[" + std::to_string(f.count) + "]";
        break;
      }
      if (f.array) {
        p += "[" + std::to_string(f.index) + "]";
      } else {
        p += (p.empty() ? "" : ".") + f.key;
      }
    }
    return p;
  }

 private:
  struct Frame {
    bool array = false;
    bool in_value = false;  // a member's or element's value is being read
    size_t index = 0;       // arrays: the element being read
    size_t count = 0;       // arrays: elements begun
    std::string key;        // objects: the member being read
  };

  // A value begins inside the top container.
  void Begin() {
    if (frames_.empty()) return;
    Frame& f = frames_.back();
    if (f.array) {
      f.index = f.count++;
      f.in_value = true;
    }
  }
  // A value ended inside the top container.
  void End() {
    if (!frames_.empty()) frames_.back().in_value = false;
  }
  bool Scalar() {
    Begin();
    End();
    return true;
  }
  bool Open(bool array) {
    Begin();
    if (frames_.size() >= static_cast<size_t>(kMaxJsonDepth)) {
      error_ = "containers nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
      failed_ = true;
      return false;
    }
    Frame f;
    f.array = array;
    frames_.push_back(std::move(f));
    return true;
  }
  bool Close() {
    frames_.pop_back();
    End();
    return true;
  }

  // nlohmann's message without its prefix and without the raw bytes it last read (which may be
  // anything): "syntax error while parsing value - invalid literal".
  static std::string Reason(std::string what) {
    const size_t column = what.find("column ");
    if (column != std::string::npos) {
      const size_t colon = what.find(": ", column);
      if (colon != std::string::npos) what = what.substr(colon + 2);
    }
    const size_t last = what.find("; last read: ");
    if (last != std::string::npos) {
      const size_t expected = what.find("'; expected ", last);
      what =
          what.substr(0, last) + (expected == std::string::npos ? "" : what.substr(expected + 1));
    }
    if (what.find("ill-formed UTF-8") != std::string::npos) {
      return "invalid UTF-8 in a string (JSON text must be UTF-8)";
    }
    return what;
  }

  std::vector<Frame> frames_;
  std::string error_;
  size_t position_ = 0;
  bool failed_ = false;
};

// A bound as a person writes it: "0", "2", "0.5" (nlohmann writes "0.0").
std::string Decimal(double d) {
  std::string s = Json(d).dump();
  if (s.size() > 2 && s.compare(s.size() - 2, 2, ".0") == 0) s.resize(s.size() - 2);
  return s;
}

}  // namespace

std::variant<Json, ApiError> ParseBody(std::string_view body) {
  if (body.empty()) return BadRequest("the request body is empty (expected a JSON object)");
  Json root;
  PathDomParser sax(&root);
  const bool ok = Json::sax_parse(body.data(), body.data() + body.size(), &sax);
  if (!ok || sax.failed()) {
    const std::string path = sax.Path();
    std::string msg = "the request body is not valid JSON: ";
    if (!path.empty()) msg += "'" + path + "': ";
    msg += (sax.error().empty() ? std::string("parse error") : sax.error()) + " at byte " +
           std::to_string(sax.position());
    return BadRequest(std::move(msg), path);
  }
  if (!root.is_object()) {
    return BadRequest(std::string("the request body must be a JSON object, got ") + KindOf(root) +
                      " " + Shown(root));
  }
  return root;
}

std::string Shown(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  constexpr size_t kMax = 40;
  if (s.size() <= kMax) return s;
  size_t cut = kMax;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

const char* KindOf(const Json& v) {
  switch (v.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
      return "an integer";
    case Json::value_t::number_float:
      return "a number";
    case Json::value_t::object:
      return "an object";
    case Json::value_t::array:
      return "an array";
    default:
      return "a binary value";
  }
}

std::optional<int64_t> IntegerOf(const Json& v) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_float()) {
    // pydantic (vLLM) takes 16.0 for an int field; so do we, within int64_t.
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::trunc(d) || d < -9.223372036854775808e18 ||
        d >= 9.223372036854775808e18) {
      return std::nullopt;
    }
    return static_cast<int64_t>(d);
  }
  return std::nullopt;
}

const Json* Fields::Get(std::string_view key) const {
  const auto it = obj_->find(key);
  if (it == obj_->end() || it->is_null()) return nullptr;
  return &*it;
}

bool Fields::Present(std::string_view key) const { return obj_->find(key) != obj_->end(); }

std::string Fields::Name(std::string_view key) const { return prefix_ + std::string(key); }

ApiError Fields::Wrong(std::string_view key, const std::string& expected, const Json& got) const {
  return BadRequest("'" + Name(key) + "' must be " + expected + ", got " + Shown(got), Name(key));
}

MaybeError Fields::Bool(std::string_view key, bool* out) const {
  const Json* v = Get(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) return Wrong(key, "true or false", *v);
  *out = v->get<bool>();
  return std::nullopt;
}

MaybeError Fields::String(std::string_view key, std::string* out) const {
  const Json* v = Get(key);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) return Wrong(key, "a string", *v);
  *out = v->get<std::string>();
  return std::nullopt;
}

MaybeError Fields::Int(std::string_view key, int64_t lo, int64_t hi, int64_t* out) const {
  const Json* v = Get(key);
  if (v == nullptr) return std::nullopt;
  const std::optional<int64_t> i = IntegerOf(*v);
  if (!i || *i < lo || *i > hi) {
    return Wrong(key, "an integer between " + std::to_string(lo) + " and " + std::to_string(hi),
                 *v);
  }
  *out = *i;
  return std::nullopt;
}

MaybeError Fields::Number(std::string_view key, double lo, double hi, bool lo_open,
                          double* out) const {
  const Json* v = Get(key);
  if (v == nullptr) return std::nullopt;
  const std::string range = lo_open ? "in (" + Decimal(lo) + ", " + Decimal(hi) + "]"
                                    : "between " + Decimal(lo) + " and " + Decimal(hi);
  if (!v->is_number()) return Wrong(key, "a number " + range, *v);
  const double d = v->get<double>();
  if (!(lo_open ? d > lo : d >= lo) || !(d <= hi)) return Wrong(key, "a number " + range, *v);
  *out = d;
  return std::nullopt;
}

}  // namespace emoe::server::internal
