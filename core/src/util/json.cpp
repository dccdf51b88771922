#include "util/json.hpp"

#include "abi/error.hpp"

namespace tasker::core {

namespace {

// Recursive-descent checker: accepts exactly RFC 8259 JSON text, with
// well-formed UTF-8 in strings. No document is built.
class checker {
public:
  explicit checker(std::string_view s) : p_(s.data()), end_(s.data() + s.size()), begin_(p_) {}

  std::string run() {
    skip_ws();
    if (!value(0))
      return error_;
    skip_ws();
    if (p_ != end_)
      return where("unexpected data after the JSON value");
    return {};
  }

private:
  const char* p_;
  const char* end_;
  const char* begin_;
  std::string error_;

  std::string where(const char* what) {
    return std::string(what) + " at byte " + std::to_string(p_ - begin_);
  }
  bool bad(const char* what) {
    if (error_.empty())
      error_ = where(what);
    return false;
  }
  void skip_ws() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t'))
      ++p_;
  }
  bool literal(const char* word, std::size_t n) {
    if (static_cast<std::size_t>(end_ - p_) < n || std::string_view(p_, n) != word)
      return bad("invalid literal");
    p_ += n;
    return true;
  }
  static bool digit(char c) { return c >= '0' && c <= '9'; }

  bool number() {
    if (p_ != end_ && *p_ == '-')
      ++p_;
    if (p_ == end_)
      return bad("truncated number");
    if (*p_ == '0')
      ++p_;
    else if (digit(*p_))
      while (p_ != end_ && digit(*p_))
        ++p_;
    else
      return bad("invalid number");
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || !digit(*p_))
        return bad("invalid number fraction");
      while (p_ != end_ && digit(*p_))
        ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-'))
        ++p_;
      if (p_ == end_ || !digit(*p_))
        return bad("invalid number exponent");
      while (p_ != end_ && digit(*p_))
        ++p_;
    }
    return true;
  }

  static bool hex(char c) { return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

  // Checks one UTF-8 sequence starting at p_ (a non-ASCII lead byte).
  bool utf8() {
    auto b = static_cast<unsigned char>(*p_);
    int extra;
    unsigned min;
    unsigned cp;
    if (b >= 0xC2 && b <= 0xDF) {
      extra = 1, min = 0x80, cp = b & 0x1Fu;
    } else if (b >= 0xE0 && b <= 0xEF) {
      extra = 2, min = 0x800, cp = b & 0x0Fu;
    } else if (b >= 0xF0 && b <= 0xF4) {
      extra = 3, min = 0x10000, cp = b & 0x07u;
    } else {
      return bad("invalid UTF-8 in string");
    }
    if (end_ - p_ <= extra)
      return bad("truncated UTF-8 in string");
    for (int i = 1; i <= extra; ++i) {
      auto c = static_cast<unsigned char>(p_[i]);
      if ((c & 0xC0u) != 0x80u)
        return bad("invalid UTF-8 in string");
      cp = (cp << 6) | (c & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return bad("invalid UTF-8 in string");
    p_ += extra + 1;
    return true;
  }

  bool string() {
    ++p_;  // opening quote
    while (true) {
      if (p_ == end_)
        return bad("unterminated string");
      char c = *p_;
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c == '\\') {
        ++p_;
        if (p_ == end_)
          return bad("unterminated string");
        switch (*p_) {
          case '"':
          case '\\':
          case '/':
          case 'b':
          case 'f':
          case 'n':
          case 'r':
          case 't': ++p_; break;
          case 'u':
            if (end_ - p_ < 5 || !hex(p_[1]) || !hex(p_[2]) || !hex(p_[3]) || !hex(p_[4]))
              return bad("invalid \\u escape");
            p_ += 5;
            break;
          default: return bad("invalid escape in string");
        }
      } else if (static_cast<unsigned char>(c) < 0x20) {
        return bad("control character in string");
      } else if (static_cast<unsigned char>(c) >= 0x80) {
        if (!utf8())
          return false;
      } else {
        ++p_;
      }
    }
  }

  bool value(int depth) {
    if (depth >= 512)
      return bad("nesting deeper than 512 levels");
    if (p_ == end_)
      return bad("unexpected end of input");
    switch (*p_) {
      case '{': {
        ++p_;
        skip_ws();
        if (p_ != end_ && *p_ == '}') {
          ++p_;
          return true;
        }
        while (true) {
          skip_ws();
          if (p_ == end_ || *p_ != '"')
            return bad("expected a string key");
          if (!string())
            return false;
          skip_ws();
          if (p_ == end_ || *p_ != ':')
            return bad("expected ':'");
          ++p_;
          skip_ws();
          if (!value(depth + 1))
            return false;
          skip_ws();
          if (p_ != end_ && *p_ == ',') {
            ++p_;
            continue;
          }
          if (p_ != end_ && *p_ == '}') {
            ++p_;
            return true;
          }
          return bad("expected ',' or '}'");
        }
      }
      case '[': {
        ++p_;
        skip_ws();
        if (p_ != end_ && *p_ == ']') {
          ++p_;
          return true;
        }
        while (true) {
          skip_ws();
          if (!value(depth + 1))
            return false;
          skip_ws();
          if (p_ != end_ && *p_ == ',') {
            ++p_;
            continue;
          }
          if (p_ != end_ && *p_ == ']') {
            ++p_;
            return true;
          }
          return bad("expected ',' or ']'");
        }
      }
      case '"': return string();
      case 't': return literal("true", 4);
      case 'f': return literal("false", 5);
      case 'n': return literal("null", 4);
      default:
        if (*p_ == '-' || digit(*p_))
          return number();
        return bad("unexpected character");
    }
  }
};

}  // namespace

std::string json_error(std::string_view text) {
  return checker{text}.run();
}

bool json_is_object(std::string_view text) {
  for (char c : text) {
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
      continue;
    return c == '{' && json_error(text).empty();
  }
  return false;
}

void append_json_string(std::string& out, std::string_view s) {
  static const char* hexdigits = "0123456789abcdef";
  out.push_back('"');
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20) {
          out += "\\u00";
          out.push_back(hexdigits[u >> 4]);
          out.push_back(hexdigits[u & 0xF]);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

void require_json(std::string_view text, std::size_t max_bytes, const char* what) {
  if (text.size() > max_bytes)
    fail(TK_TOO_LARGE, std::string(what) + " is " + std::to_string(text.size())
                           + " bytes, over the limit of " + std::to_string(max_bytes)
                           + " (option max_json_bytes)");
  auto e = json_error(text);
  if (!e.empty())
    fail(TK_MALFORMED_JSON, std::string(what) + " is not valid JSON: " + e);
}

}  // namespace tasker::core
