// doctest's main() for the PostgreSQL suites: without a test server (no
// PostgreSQL binary on the machine) it says so and exits with 77, which ctest
// reports as "skipped" (SKIP_RETURN_CODE), instead of failing or passing.
#define DOCTEST_CONFIG_IMPLEMENT
#include <cstdio>
#include <cstring>

#include <doctest/doctest.h>

#include <tasker/test/pg.hpp>

int main(int argc, char** argv) {
  bool listing = false;
  for (int i = 1; i < argc; ++i)
    listing = listing || std::strncmp(argv[i], "--list-", 7) == 0;
  if (!listing && tasker::test::pg_base_url().empty()) {
    std::printf("SKIPPED: no PostgreSQL test server (install the postgresql package; "
                "scripts/pg-test-server starts one)\n");
    return 77;
  }
  doctest::Context context(argc, argv);
  return context.run();
}
