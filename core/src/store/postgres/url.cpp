#include "store/postgres/url.hpp"

#include <cctype>
#include <string_view>

#include "abi/error.hpp"

namespace tasker::core {

void check_schema_name(const std::string& s) {
  bool ok = !s.empty() && s.size() <= 48
            && (std::islower(static_cast<unsigned char>(s[0])) || s[0] == '_');
  for (char c : s)
    ok = ok
         && (std::islower(static_cast<unsigned char>(c))
             || std::isdigit(static_cast<unsigned char>(c)) || c == '_');
  if (!ok)
    fail(TK_INVALID_ARGUMENT, "postgresql: schema \"" + s
                                  + "\" must be 1-48 characters of a-z, 0-9 and _, "
                                    "starting with a letter or _");
}

pg_options parse_pg_url(const std::string& url) {
  pg_options o;
  auto q = url.find('?');
  if (q == std::string::npos) {
    o.conninfo = url;
    return o;
  }
  std::string kept;
  std::string_view rest = std::string_view(url).substr(q + 1);
  while (!rest.empty()) {
    auto amp = rest.find('&');
    auto item = rest.substr(0, amp);
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    if (item.rfind("schema=", 0) == 0) {
      o.schema = std::string(item.substr(7));
      continue;
    }
    if (item.rfind("async_worker_commits=", 0) == 0) {
      auto v = item.substr(21);
      if (v != "true" && v != "false" && v != "on" && v != "off" && v != "1" && v != "0")
        fail(TK_INVALID_ARGUMENT, "postgresql: async_worker_commits must be true or false");
      o.async_worker_commits = v == "true" || v == "on" || v == "1";
      continue;
    }
    if (!kept.empty())
      kept += '&';
    kept.append(item);
  }
  o.conninfo = url.substr(0, q) + (kept.empty() ? "" : "?" + kept);
  return o;
}

}  // namespace tasker::core
