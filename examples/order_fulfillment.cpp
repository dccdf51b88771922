// order_fulfillment — business steps that read their ancestors' results, and
// a payment step that survives a gateway timeout by being retried.
//
//   validate_order ─┬─▶ reserve_inventory ─┬─▶ process_payment ──▶ ship_order
//                   │                      │          ▲                ▲  ▲
//                   ├──────────────────────┼──────────┘                │  │
//                   │                      └───────────────────────────┘  │
//                   └─────────────────────────────────────────────────────┘
//
// process_payment ← validate_order + reserve_inventory; ship_order ← all three.
// The payment gateway times out on the first attempt (a retryable failure);
// the step's retry policy (2 attempts, exponential backoff from 50 ms) runs it
// again and it succeeds. ship_order puts the payment id on the shipment.
// Run: order_fulfillment [--store=memory: | --store=sqlite:orders.db]
#include <chrono>
#include <cstdint>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <string>

#include "check.hpp"
#include <tasker/runtime/run_main.hpp>

namespace {

using tasker::json;
using namespace std::chrono_literals;

std::string money(std::int64_t cents) {
  std::ostringstream out;
  out << '$' << cents / 100 << '.' << std::setw(2) << std::setfill('0') << cents % 100;
  return out.str();
}

/// Checks the line items and totals them (prices in cents, kept exact).
tasker::step_result validate_order(tasker::step_context& ctx) {
  const auto items = ctx.input<json>("items");
  if (!items.is_array() || items.empty())
    return tasker::failure("an order needs at least one line item", "validation_error", false);
  std::int64_t total = 0, units = 0;
  for (const auto& item : items) {
    if (!item.is_object())
      return tasker::failure("bad line item " + item.dump(), "validation_error", false);
    const auto quantity = item.value("quantity", std::int64_t{0});
    const auto price = item.value("unit_price_cents", std::int64_t{-1});
    if (quantity <= 0 || price < 0)
      return tasker::failure("bad line item " + item.dump(), "validation_error", false);
    total += quantity * price;
    units += quantity;
  }
  return tasker::success({{"order_id", ctx.input<std::string>("order_id")},
                          {"customer_id", ctx.input<std::string>("customer_id")},
                          {"line_items", items.size()},
                          {"units", units},
                          {"total_cents", total},
                          {"total", money(total)}});
}

/// Holds the stock of every line item for the order.
tasker::step_result reserve_inventory(tasker::step_context& ctx) {
  const auto order_id = ctx.dependency_field("validate_order", "order_id").get<std::string>();
  return tasker::success(
      {{"reservation_id", "RES-" + order_id + "-" + std::to_string(ctx.step_id())},
       {"units_reserved", ctx.dependency_field("validate_order", "units")},
       {"warehouse", "east-1"},
       {"hold_minutes", 30}});
}

/// Charges the order total; the gateway times out on the first attempt.
tasker::step_result process_payment(tasker::step_context& ctx) {
  if (ctx.attempt() == 1)
    return tasker::failure("payment gateway timeout", "timeout", true);
  const auto total = ctx.dependency_field("validate_order", "total_cents").get<std::int64_t>();
  return tasker::success(
      {{"payment_id", "PAY-" + std::to_string(ctx.task_id()) + "-" + std::to_string(ctx.attempt())},
       {"amount_cents", total},
       {"amount", money(total)},
       {"reservation_id", ctx.dependency_field("reserve_inventory", "reservation_id")},
       {"status", "captured"}});
}

/// Books the shipment of a paid order.
tasker::step_result ship_order(tasker::step_context& ctx) {
  const auto payment_id = ctx.dependency_field("process_payment", "payment_id");
  if (!payment_id.is_string())
    return tasker::failure("ship_order: no payment id from process_payment", "validation_error",
                           false);
  return tasker::success(
      {{"tracking_number", "1Z999AA1" + std::to_string(10'000'000 + ctx.task_id())},
       {"carrier", "UPS"},
       {"order_id", ctx.dependency_field("validate_order", "order_id")},
       {"reservation_id", ctx.dependency_field("reserve_inventory", "reservation_id")},
       {"payment_id", payment_id}});
}

}  // namespace

int main(int argc, char** argv) {
  return tasker::run_main(argc, argv, [](tasker::worker& w) {
    w.handle("validate_order", validate_order)
        .handle("reserve_inventory", reserve_inventory)
        .handle("process_payment", process_payment)
        .handle("ship_order", ship_order);

    tasker::retry_policy payment_retry;
    payment_retry.max_attempts = 2;
    payment_retry.backoff = "exponential";
    payment_retry.base = 50ms;

    tasker::pipeline orders{"examples", "order_fulfillment", "1.0.0"};
    orders.step("validate_order", "validate_order")
        .step("reserve_inventory", "reserve_inventory", tasker::after("validate_order"))
        .step("process_payment", "process_payment",
              tasker::after("validate_order", "reserve_inventory").retry(payment_retry))
        .step("ship_order", "ship_order",
              tasker::after("validate_order", "reserve_inventory", "process_payment"));
    w.register_pipeline(orders);

    const json order = {{"order_id", "ORD-1001"},
                        {"customer_id", "CUST-42"},
                        {"items",
                         {{{"sku", "WIDGET-RED"}, {"quantity", 2}, {"unit_price_cents", 1999}},
                          {{"sku", "GADGET-XL"}, {"quantity", 1}, {"unit_price_cents", 4950}}}}};
    auto& client = w.client();
    const auto task = client.create(orders, order);
    const auto state = client.wait(task);
    const auto status = client.status(task);
    const auto payment = client.result(task, "process_payment");
    const auto shipment = client.result(task, "ship_order");
    std::cout << "order " << order["order_id"].get<std::string>() << " (task " << task << ") "
              << state << ": paid " << examples::show(examples::field(payment, "amount")) << " as "
              << examples::show(examples::field(payment, "payment_id")) << " after "
              << examples::field(examples::step_status(status, "process_payment"), "attempts")
              << " attempts, shipped as "
              << examples::show(examples::field(shipment, "tracking_number")) << '\n';

    examples::checker check;
    check.equal("task state", state, "complete");
    check.equal("validate_order.total_cents",
                examples::field(client.result(task, "validate_order"), "total_cents"), json(8948));
    check.equal("process_payment attempts",
                examples::field(examples::step_status(status, "process_payment"), "attempts"),
                json(2));
    check.that(examples::field(payment, "payment_id").is_string(),
               "process_payment returns a payment id", payment);
    check.equal("ship_order.payment_id", examples::field(shipment, "payment_id"),
                examples::field(payment, "payment_id"));
    return check.exit_code();
  });
}
