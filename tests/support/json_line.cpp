// Recursive-descent reading of a flat JSON object; strict so malformed server output fails tests.
#include "support/json_line.hpp"

#include <cctype>
#include <cstdlib>

namespace test_support {
namespace {

class reader {
 public:
  explicit reader(const std::string& s) : s_(s) {}

  std::optional<json_object> object() {
    json_object o;
    skip_space();
    if (!eat('{')) return std::nullopt;
    skip_space();
    if (eat('}')) return finish(o);
    for (int i = 0; i < 10000; ++i) {
      skip_space();
      auto key = string();
      if (!key) return std::nullopt;
      skip_space();
      if (!eat(':')) return std::nullopt;
      skip_space();
      auto v = value();
      if (!v || o.fields.count(*key)) return std::nullopt;
      o.fields.emplace(*key, *v);
      skip_space();
      if (eat('}')) return finish(o);
      if (!eat(',')) return std::nullopt;
    }
    return std::nullopt;
  }

 private:
  std::optional<json_object> finish(json_object& o) {
    skip_space();
    if (i_ != s_.size()) return std::nullopt;
    return o;
  }

  bool eat(char c) {
    if (i_ < s_.size() && s_[i_] == c) {
      ++i_;
      return true;
    }
    return false;
  }

  bool literal(const char* word) {
    std::size_t n = std::char_traits<char>::length(word);
    if (s_.compare(i_, n, word) != 0) return false;
    i_ += n;
    return true;
  }

  void skip_space() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n')) ++i_;
  }

  std::optional<json_value> value() {
    if (i_ >= s_.size()) return std::nullopt;
    char c = s_[i_];
    if (c == '"') {
      auto str = string();
      if (!str) return std::nullopt;
      return json_value(*str);
    }
    if (literal("null")) return json_value(nullptr);
    if (literal("true")) return json_value(true);
    if (literal("false")) return json_value(false);
    if (c == '-' || std::isdigit(static_cast<unsigned char>(c))) return number();
    return std::nullopt;
  }

  std::optional<json_value> number() {
    const std::size_t start = i_;
    eat('-');
    if (eat('0')) {
    } else if (!digits()) {
      return std::nullopt;
    }
    if (eat('.') && !digits()) return std::nullopt;
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (!eat('+')) eat('-');
      if (!digits()) return std::nullopt;
    }
    return json_value(std::strtod(s_.substr(start, i_ - start).c_str(), nullptr));
  }

  bool digits() {
    std::size_t start = i_;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    return i_ > start;
  }

  static void append_utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  std::optional<std::string> string() {
    if (!eat('"')) return std::nullopt;
    std::string out;
    while (i_ < s_.size()) {
      unsigned char c = static_cast<unsigned char>(s_[i_++]);
      if (c == '"') return out;
      if (c < 0x20) return std::nullopt;  // control characters must be escaped
      if (c != '\\') {
        out.push_back(static_cast<char>(c));
        continue;
      }
      if (i_ >= s_.size()) return std::nullopt;
      char e = s_[i_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          if (i_ + 4 > s_.size()) return std::nullopt;
          unsigned cp = 0;
          for (int k = 0; k < 4; ++k) {
            char h = s_[i_++];
            if (!std::isxdigit(static_cast<unsigned char>(h))) return std::nullopt;
            cp = cp * 16 + static_cast<unsigned>(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
          }
          append_utf8(out, cp);
          break;
        }
        default: return std::nullopt;
      }
    }
    return std::nullopt;
  }

  const std::string& s_;
  std::size_t i_ = 0;
};

}  // namespace

bool json_object::is_null(const std::string& key) const {
  auto it = fields.find(key);
  return it != fields.end() && std::holds_alternative<std::nullptr_t>(it->second);
}

std::optional<std::string> json_object::string(const std::string& key) const {
  auto it = fields.find(key);
  if (it == fields.end() || !std::holds_alternative<std::string>(it->second)) return std::nullopt;
  return std::get<std::string>(it->second);
}

std::optional<double> json_object::number(const std::string& key) const {
  auto it = fields.find(key);
  if (it == fields.end() || !std::holds_alternative<double>(it->second)) return std::nullopt;
  return std::get<double>(it->second);
}

std::optional<json_object> parse_json_line(const std::string& line) { return reader(line).object(); }

}  // namespace test_support
