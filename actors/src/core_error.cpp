#include <tasker/actors/core_error.hpp>

#include <caf/atom.hpp>
#include <caf/message.hpp>

namespace tasker::actors {

std::string to_string(core_errc e) {
  switch (e) {
    case core_errc::invalid_argument: return "invalid_argument";
    case core_errc::malformed_json: return "malformed_json";
    case core_errc::validation: return "validation";
    case core_errc::not_found: return "not_found";
    case core_errc::conflict: return "conflict";
    case core_errc::too_large: return "too_large";
    case core_errc::store_error: return "store_error";
    case core_errc::unsupported: return "unsupported";
    case core_errc::internal: return "internal";
    case core_errc::stale: return "stale";
    case core_errc::duplicate: return "duplicate";
  }
  return "unknown";
}

caf::error core_error(tk_status status, std::string message) {
  return caf::make_error(static_cast<core_errc>(status), std::move(message));
}

caf::error core_error(const tk_error& err) {
  return core_error(err.code, std::string(err.message));
}

tk_status core_status(const caf::error& e) {
  if (!e || e.category() != caf::detail::error_factory<core_errc>::category)
    return TK_OK;
  return static_cast<tk_status>(e.code());
}

}  // namespace tasker::actors
