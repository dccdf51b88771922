#include <tasker/runtime/run_main.hpp>

#include <exception>
#include <iostream>

namespace tasker {

int run_main(int argc, char** argv, const worker_main& body) {
  worker_config cfg;
  return run_main(cfg, argc, argv, body);
}

int run_main(worker_config& cfg, int argc, char** argv, const worker_main& body) {
  int code = 0;
  if (!cfg.parse_args(argc, argv, &code))
    return code;
  try {
    worker w{cfg};
    return body(w);
  } catch (const template_error& e) {  // wrong input, as a bad setting is
    for (const auto& problem : e.problems())
      std::cerr << problem << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << '\n';
    return 1;
  }
}

}  // namespace tasker
