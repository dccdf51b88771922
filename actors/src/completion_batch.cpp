#include <tasker/actors/completion_batch.hpp>

namespace tasker::actors {

const tk_step_result* completion_batch::build() {
  batch_.clear();
  for (const auto& p : pending_) {
    tk_step_result r{};
    r.step_id = p.step_id;
    r.fencing_token = p.token;
    switch (p.result.kind) {
      case step_kind::success:
        r.kind = TK_RESULT_SUCCESS;
        r.result_json = p.result.result_json.c_str();
        break;
      case step_kind::failure:
        r.kind = TK_RESULT_FAILURE;
        r.error_message = p.result.error_message.c_str();
        r.error_type = p.result.error_type.c_str();
        r.retryable = p.result.retryable ? 1 : 0;
        r.retry_after_ms = p.result.retry_after_ms;
        break;
      case step_kind::checkpoint:
        r.kind = TK_RESULT_CHECKPOINT;
        r.result_json = p.result.result_json.c_str();
        break;
      case step_kind::wait:
        r.kind = TK_RESULT_WAIT;
        r.wait_signal = p.result.wait_signal.c_str();
        r.wait_timeout_ms = p.result.wait_timeout_ms;
        break;
    }
    batch_.push_back(r);
  }
  outcomes_.assign(batch_.size(), TK_OK);
  return batch_.data();
}

step_result completion_batch::refused(int outcome) {
  return failure(step_error::malformed_result, outcome == TK_TOO_LARGE
                                                   ? "the handler's result is over the size limit"
                                                   : "the handler returned malformed JSON");
}

}  // namespace tasker::actors
