// csv_analytics — handlers that read and write files through the file actor.
//
//   generate ──┬──▶ by_region ──┐
//              └──▶ totals ─────┴──▶ report
//
// `generate` writes orders.csv (1,000 rows: id, region, amount in cents) into
// a data directory; `by_region` and `totals` read it back as a shared,
// zero-copy view (an mmap) and aggregate it; `report` writes report.json.
// Every path goes through the file actor, which keeps it inside the data
// directory. main() recomputes the expected figures from the same formula
// and checks the pipeline's results and the report file against them.
// Run: csv_analytics [--store=memory: | --store=sqlite:csv.db]
#include <array>
#include <cstdint>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "check.hpp"
#include "scratch_dir.hpp"
#include <tasker/actors/file_actor.hpp>
#include <tasker/runtime/run_main.hpp>

namespace {

constexpr std::array<const char*, 4> regions{"north", "east", "south", "west"};

/// Row i (1-based) of the generated file: a deterministic spread of amounts.
std::int64_t amount_of(int i) {
  return (static_cast<std::int64_t>(i) * 37) % 1000 + 1;
}

/// Calls `row(region, amount)` for each data line of the CSV text.
template <class Row>
bool for_each_row(std::string_view csv, Row&& row) {
  auto eol = csv.find('\n');
  if (eol == std::string_view::npos || csv.substr(0, eol) != "id,region,amount_cents")
    return false;
  csv.remove_prefix(eol + 1);
  while (!csv.empty()) {
    eol = csv.find('\n');
    auto line = csv.substr(0, eol);
    csv.remove_prefix(eol == std::string_view::npos ? csv.size() : eol + 1);
    const auto c1 = line.find(',');
    const auto c2 = line.find(',', c1 + 1);
    if (c1 == std::string_view::npos || c2 == std::string_view::npos)
      return false;
    row(line.substr(c1 + 1, c2 - c1 - 1), std::stoll(std::string(line.substr(c2 + 1))));
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    examples::scratch_dir data{"tasker-csv"};

    // The file actor (opt-in): every path is relative to, and confined in, the data directory.
    tasker::actors::file_actor_config files_cfg;
    files_cfg.roots = {data.path};
    auto files = tasker::actors::spawn_file_actor(w.system(), files_cfg);
    const tasker::actors::file_client fc{w.system(), files, std::chrono::seconds{10}};

    w.handle("generate", [&fc](tasker::step_context& ctx) {
      const int rows = ctx.input<int>("rows");
      std::string csv = "id,region,amount_cents\n";
      for (int i = 1; i <= rows; ++i)
        csv += std::to_string(i) + ',' + regions[static_cast<std::size_t>(i) % regions.size()] + ','
               + std::to_string(amount_of(i)) + '\n';
      auto written = fc.write("orders.csv", csv);
      if (written.error)
        return tasker::failure(written.error.message, "io_error");
      return tasker::success({{"file", "orders.csv"}, {"bytes", written.size}, {"rows", rows}});
    });

    w.handle("by_region", [&fc](tasker::step_context& ctx) {
      auto read = fc.read(ctx.dependency<std::string>("generate", "file"));
      if (read.error)
        return tasker::failure(read.error.message, "io_error");
      std::map<std::string, std::int64_t, std::less<>> cents;
      if (!for_each_row(read.view.view(), [&](std::string_view region, std::int64_t a) {
            cents[std::string(region)] += a;
          }))
        return tasker::failure("orders.csv is not the expected CSV", "validation_error", false);
      tasker::json out = tasker::json::object();
      for (const auto& [region, total] : cents)
        out[region] = total;
      return tasker::success({{"cents_by_region", out}, {"zero_copy", read.view.mapped()}});
    });

    w.handle("totals", [&fc](tasker::step_context& ctx) {
      auto read = fc.read(ctx.dependency<std::string>("generate", "file"));
      if (read.error)
        return tasker::failure(read.error.message, "io_error");
      std::int64_t rows = 0, cents = 0, largest = 0;
      if (!for_each_row(read.view.view(), [&](std::string_view, std::int64_t a) {
            ++rows;
            cents += a;
            largest = std::max(largest, a);
          }))
        return tasker::failure("orders.csv is not the expected CSV", "validation_error", false);
      return tasker::success({{"rows", rows}, {"cents", cents}, {"largest", largest}});
    });

    w.handle("report", [&fc](tasker::step_context& ctx) {
      tasker::json report{{"totals", ctx.dependency_result("totals")},
                          {"by_region", ctx.dependency_field("by_region", "cents_by_region")}};
      auto written = fc.write("report.json", report.dump(2) + '\n');
      if (written.error)
        return tasker::failure(written.error.message, "io_error");
      return tasker::success({{"file", "report.json"}, {"bytes", written.size}});
    });

    tasker::pipeline p{"examples", "csv_analytics", "1.0.0"};
    p.step("generate", "generate")
        .step("by_region", "by_region", tasker::after("generate"))
        .step("totals", "totals", tasker::after("generate"))
        .step("report", "report", tasker::after("by_region", "totals"));
    w.register_pipeline(p);

    auto& client = w.client();
    const int rows = 1000;
    const auto task = client.create(p, {{"rows", rows}});
    const auto state = client.wait(task);

    // What the results must be, from the generator's formula.
    std::int64_t cents = 0, largest = 0;
    std::map<std::string, std::int64_t> by_region;
    for (int i = 1; i <= rows; ++i) {
      cents += amount_of(i);
      largest = std::max(largest, amount_of(i));
      by_region[regions[static_cast<std::size_t>(i) % regions.size()]] += amount_of(i);
    }
    examples::checker check;
    check.equal("task state", state, "complete");
    if (state == "complete") {
      const auto totals = client.result(task, "totals");
      const auto regions_seen = client.result(task, "by_region");
      std::cout << "task " << task << " " << state << ": " << totals.at("rows") << " rows, "
                << totals.at("cents") << " cents, zero copy: " << regions_seen.at("zero_copy")
                << '\n';
      check.equal("rows", totals.at("rows").get<std::int64_t>(), std::int64_t{rows});
      check.equal("cents", totals.at("cents").get<std::int64_t>(), cents);
      check.equal("largest", totals.at("largest").get<std::int64_t>(), largest);
      for (const auto& [region, total] : by_region)
        check.equal("cents in " + region,
                    regions_seen.at("cents_by_region").at(region).get<std::int64_t>(), total);
      check.that(regions_seen.at("zero_copy").get<bool>(), "the read was an mmap");
      // The report, read back through the file actor like any handler would.
      auto report = fc.read("report.json");
      check.that(!report.error, "report.json is readable", report.error.message);
      if (!report.error) {
        auto doc = tasker::json::parse(report.view.view(), nullptr, false);
        check.that(!doc.is_discarded() && doc.at("totals").at("cents") == cents,
                   "report.json holds the totals", doc);
      }
      // And a path outside the data directory is refused.
      auto escape = fc.read("../" + data.path.filename().string() + "/../../etc/passwd");
      check.that(static_cast<bool>(escape.error), "a path out of the data directory is refused");
    }
    return check.exit_code();
  });
}
