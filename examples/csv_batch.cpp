// csv_batch — a batchable step splits a products CSV into batches, one
// batch worker instance per batch runs in parallel, and a convergence step
// merges what they found (templates/csv_batch.yaml):
//
//   analyze_csv ─▶ process_csv_batch_001 … _005 ─▶ aggregate_csv_results
//
// The example writes a CSV of 1,000 products (the columns of Tasker's
// products fixture), analyses it in batches of 200, and checks that the
// merged metrics equal those of one pass over the file: total inventory
// value (price × stock), products per category, the most expensive product
// and the average rating. CSV_FILE=path analyses another file of those
// columns instead.
// Run: csv_batch [--store=memory: | --store=sqlite:csv.db]
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "check.hpp"
#include "scratch_dir.hpp"
#include <tasker/runtime/run_main.hpp>

#ifndef TASKER_EXAMPLES_DIR
#error "TASKER_EXAMPLES_DIR (the examples source directory) must be defined by CMake"
#endif

namespace {

using tasker::json;

const char* const header =
    "id,title,description,category,price,discountPercentage,rating,stock,brand,sku,weight";

/// A deterministic products file: `rows` data rows after the header.
void write_products(const std::filesystem::path& file, int rows) {
  static const char* const categories[] = {"beauty",    "fragrances", "furniture",
                                           "groceries", "laptops",    "smartphones"};
  std::ofstream out(file);
  out << header << '\n';
  std::uint32_t seed = 12345;
  auto next = [&] { return seed = seed * 1664525u + 1013904223u; };
  for (int i = 1; i <= rows; ++i) {
    const double price = static_cast<double>(next() % 200000) / 100.0 + 1.0;
    const double rating = static_cast<double>(next() % 500) / 100.0;
    const int stock = static_cast<int>(next() % 150);
    out << i << ",Product " << i << ",A product," << categories[next() % 6] << ',' << price << ','
        << (next() % 2000) / 100.0 << ',' << rating << ',' << stock << ",Brand,SKU-" << i << ','
        << (next() % 10 + 1) << '\n';
  }
}

/// The fields of one CSV line (no quoted commas in these files).
std::vector<std::string> fields_of(const std::string& line) {
  std::vector<std::string> out;
  std::stringstream in(line);
  std::string f;
  while (std::getline(in, f, ','))
    out.push_back(f);
  return out;
}

/// Metrics of data rows [first, end) of the file (1-based, end exclusive).
json metrics(const std::string& path, std::int64_t first, std::int64_t end) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("cannot read " + path);
  std::string line;
  std::getline(in, line);  // the header
  double value = 0, rating_sum = 0, max_price = -1;
  std::string max_title;
  std::map<std::string, int> categories;
  std::int64_t row = 0, count = 0;
  while (std::getline(in, line) && ++row < end) {
    if (row < first || line.empty())
      continue;
    const auto f = fields_of(line);
    if (f.size() < 11)
      throw std::runtime_error("row " + std::to_string(row) + " has " + std::to_string(f.size())
                               + " fields, 11 expected");
    const double price = std::stod(f[4]);
    value += price * std::stod(f[7]);
    rating_sum += std::stod(f[6]);
    categories[f[3]] += 1;
    if (price > max_price) {
      max_price = price;
      max_title = f[1];
    }
    ++count;
  }
  return {{"processed_count", count}, {"total_inventory_value", value},
          {"rating_sum", rating_sum}, {"category_counts", categories},
          {"max_price", max_price},   {"max_price_product", max_title}};
}

std::int64_t data_rows(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    throw std::runtime_error("cannot read " + path);
  std::string line;
  std::int64_t rows = -1;  // the header
  while (std::getline(in, line))
    if (!line.empty())
      ++rows;
  return std::max<std::int64_t>(rows, 0);
}

// The batchable step: one cursor range per batch of rows.
tasker::step_result analyze_csv(const tasker::step_context& ctx) {
  const auto path = ctx.input<std::string>("csv_file_path");
  const auto rows = data_rows(path);
  const auto cursors = tasker::batch_cursors(rows, ctx.config<std::int64_t>("batch_size"),
                                             ctx.config_or<std::int64_t>("max_workers", 0), 1);
  return tasker::create_batches(cursors, {{"total_rows", rows}},
                                ctx.config_or("worker_template_name", ""));
}

// One batch worker instance: the rows of its cursor.
tasker::step_result process_csv_batch(const tasker::step_context& ctx) {
  const auto& cursor = ctx.batch_cursor();
  json out = metrics(ctx.input<std::string>("csv_file_path"),
                     cursor.at("start_cursor").get<std::int64_t>(),
                     cursor.at("end_cursor").get<std::int64_t>());
  out["batch_id"] = cursor.at("batch_id");
  return tasker::success(out);
}

/// Merges batch metrics (the same shape as metrics()).
json merge(const json& batches) {
  double value = 0, rating_sum = 0, max_price = -1;
  std::string max_title;
  std::map<std::string, int> categories;
  std::int64_t count = 0;
  for (const auto& [name, b] : batches.items()) {
    count += b.at("processed_count").get<std::int64_t>();
    value += b.at("total_inventory_value").get<double>();
    rating_sum += b.at("rating_sum").get<double>();
    for (const auto& [category, n] : b.at("category_counts").items())
      categories[category] += n.get<int>();
    if (b.at("max_price").get<double>() > max_price) {
      max_price = b.at("max_price").get<double>();
      max_title = b.at("max_price_product").get<std::string>();
    }
  }
  return {{"processed_count", count}, {"total_inventory_value", value},
          {"rating_sum", rating_sum}, {"category_counts", categories},
          {"max_price", max_price},   {"max_price_product", max_title}};
}

// The convergence step: every instance's result, by prefix.
tasker::step_result aggregate_csv_results(const tasker::step_context& ctx) {
  const auto batches = ctx.all_dependency_results("process_csv_batch_");
  json out = merge(batches);
  out["batches"] = batches.size();
  const auto n = out.at("processed_count").get<double>();
  out["average_rating"] = n > 0 ? out.at("rating_sum").get<double>() / n : 0.0;
  return tasker::success(out);
}

bool close(double a, double b) {
  return std::fabs(a - b) <= 1e-6 * std::max(1.0, std::fabs(b));
}

}  // namespace

int main(int argc, char** argv) {
  examples::scratch_dir dir("tasker-csv-batch");
  std::string csv = (dir.path / "products.csv").string();
  if (const char* given = std::getenv("CSV_FILE"); given && *given)
    csv = given;
  else
    write_products(csv, 1000);
  return tasker::run_main(argc, argv, [&](tasker::worker& w) {
    w.handle("analyze_csv", analyze_csv);
    w.handle("process_csv_batch", process_csv_batch);
    w.handle("aggregate_csv_results", aggregate_csv_results);
    const auto inventory = tasker::load_pipeline_yaml(std::filesystem::path{TASKER_EXAMPLES_DIR}
                                                      / "templates" / "csv_batch.yaml");
    w.register_pipeline(inventory);

    auto& client = w.client();
    const auto task = client.create(inventory, {{"csv_file_path", csv}});
    const auto state = client.wait(task);
    const auto status = client.status(task);
    json aggregate;
    int workers = 0;
    for (const auto& s : status.at("steps")) {
      if (s.at("name").get<std::string>().rfind("process_csv_batch_", 0) == 0)
        ++workers;
      if (s.at("name") == "aggregate_csv_results")
        aggregate = s.at("result");
    }
    const auto rows = data_rows(csv);
    const json expected = metrics(csv, 1, rows + 1);  // one pass over the file
    std::cout << "task " << task << " " << state << ": " << rows << " rows in " << workers
              << " batch workers; inventory value "
              << examples::field(aggregate, "total_inventory_value") << ", average rating "
              << examples::field(aggregate, "average_rating") << ", most expensive "
              << examples::field(aggregate, "max_price_product") << '\n';

    examples::checker check;
    check.equal("task state", state, "complete");
    check.equal(
        "batch workers", workers,
        static_cast<int>(std::max<std::int64_t>(1, std::min<std::int64_t>(5, (rows + 199) / 200))));
    if (!check.that(aggregate.is_object(), "the aggregate has a result", aggregate))
      return check.exit_code();
    check.equal("rows processed", aggregate.at("processed_count"), expected.at("processed_count"));
    check.that(close(aggregate.at("total_inventory_value").get<double>(),
                     expected.at("total_inventory_value").get<double>()),
               "inventory value matches one pass", aggregate.at("total_inventory_value"));
    check.equal("category counts", aggregate.at("category_counts"), expected.at("category_counts"));
    check.equal("most expensive", aggregate.at("max_price_product"),
                expected.at("max_price_product"));
    return check.exit_code();
  });
}
