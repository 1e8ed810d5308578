// What the fuzz targets share: an invariant check that stops the run, and a reader that
// takes the fuzzer's bytes apart.
#pragma once

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

// An invariant: when it fails, say which and where, and abort so libFuzzer keeps the input.
#define FUZZ_CHECK(condition)                                                                   \
  do {                                                                                          \
    if (!(condition)) {                                                                         \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                             \
    }                                                                                           \
  } while (0)

namespace fuzz {

// The input split on NUL bytes: a command line's words, or several strings at once.
inline std::vector<std::string> split_on_nul(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> parts(1);
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) parts.emplace_back();
    else parts.back().push_back(static_cast<char>(data[i]));
  }
  return parts;
}

// Bytes taken from the front (small numbers) while the rest stays for the parser.
class reader {
 public:
  reader(const std::uint8_t* data, std::size_t size) : data_(data), size_(size) {}
  std::uint8_t byte() {
    if (size_ == 0) return 0;
    --size_;
    return *data_++;
  }
  std::string_view rest() const { return {reinterpret_cast<const char*>(data_), size_}; }

 private:
  const std::uint8_t* data_;
  std::size_t size_;
};

// A strict JSON reader, enough for the one-line objects the outputs write: true if text is
// one object, nothing after it, and no raw control character inside a string.
class json_checker {
 public:
  explicit json_checker(std::string_view text) : t_(text) {}
  bool one_object() {
    if (!object()) return false;
    return i_ == t_.size();
  }

 private:
  bool eat(char c) {
    if (i_ < t_.size() && t_[i_] == c) return ++i_, true;
    return false;
  }
  bool string() {
    if (!eat('"')) return false;
    while (i_ < t_.size()) {
      const auto c = static_cast<unsigned char>(t_[i_++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') continue;
      if (i_ >= t_.size()) return false;
      const char e = t_[i_++];
      if (e == 'u') {
        for (int k = 0; k < 4; ++k)
          if (i_ >= t_.size() || !std::isxdigit(static_cast<unsigned char>(t_[i_++]))) return false;
      } else if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) {
        return false;
      }
    }
    return false;
  }
  bool number() {
    const std::size_t start = i_;
    eat('-');
    while (i_ < t_.size() && (std::isdigit(static_cast<unsigned char>(t_[i_])) || t_[i_] == '.' || t_[i_] == 'e' ||
                              t_[i_] == 'E' || t_[i_] == '+' || t_[i_] == '-'))
      ++i_;
    return i_ > start;
  }
  bool value() {
    if (i_ >= t_.size()) return false;
    if (t_[i_] == '"') return string();
    if (t_[i_] == '{') return object();
    if (t_.substr(i_, 4) == "null") return i_ += 4, true;
    if (t_.substr(i_, 4) == "true") return i_ += 4, true;
    if (t_.substr(i_, 5) == "false") return i_ += 5, true;
    return number();
  }
  bool object() {
    if (++depth_ > 8 || !eat('{')) return false;
    if (eat('}')) return --depth_, true;
    do {
      if (!string() || !eat(':') || !value()) return false;
    } while (eat(','));
    return eat('}') && (--depth_, true);
  }
  std::string_view t_;
  std::size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace fuzz
