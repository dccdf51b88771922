// Store conformance, tasks: idempotency keys, priorities, listing.
#include "conformance.hpp"

// ---- tasks ------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("an idempotency key returns the task it created" * doctest::timeout(30), Store,
                   TASKER_STORES) {
  store_env<Store> env;
  env.register_flow(linear_steps());
  env.register_flow(linear_steps(), "elsewhere", "other");
  task_args args;
  args.idempotency_key = "order-17";
  tk_error err{};
  std::int64_t first = 0;
  std::int64_t second = 0;
  int created = -1;
  REQUIRE(try_create_task(env.core, args, first, &created, err) == TK_OK);
  CHECK(created == 1);
  REQUIRE(try_create_task(env.core, args, second, &created, err) == TK_OK);
  CHECK(created == 0);
  CHECK(second == first);

  task_args other;
  other.ns = "elsewhere";
  other.name = "other";
  other.idempotency_key = "order-17";
  std::int64_t third = 0;
  CHECK(try_create_task(env.core, other, third, &created, err) == TK_CONFLICT);
  CHECK(err.code == TK_CONFLICT);

  CHECK(task_status(env.core, first).at("idempotency_key") == "order-17");
  CHECK(list_tasks(env.core, nullptr).at("tasks").size() == 1);
  const auto plain = create_task(env.core);
  CHECK(plain != first);
  CHECK(task_status(env.core, plain).at("idempotency_key").is_null());
}

TEST_CASE_TEMPLATE("steps of higher priority tasks are handed out first then older ones"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}});
  auto create_at = [&](std::int32_t priority) {
    task_args args;
    args.priority = priority;
    env.clock.advance(10);
    return create_task(env.core, args);
  };
  const auto low_old = create_at(0);
  const auto high_old = create_at(5);
  const auto high_new = create_at(5);
  const auto low_new = create_at(0);
  const auto negative = create_at(-3);
  CHECK(task_status(env.core, high_old).at("priority") == 5);
  env.clock.advance(10);

  worker_handle w(env.core, "w1");
  std::vector<std::int64_t> order;
  for (int i = 0; i < 5; ++i)
    order.push_back(poll_one(w).task_id);
  CHECK(order == std::vector<std::int64_t>{high_old, high_new, low_old, low_new, negative});
  CHECK(poll(w, 10).empty());
}

TEST_CASE_TEMPLATE("tasks are listed by state and namespace one page at a time"
                       * doctest::timeout(30),
                   Store, TASKER_STORES) {
  store_env<Store> env;
  env.register_flow({{"a"}, {"b", {"a"}}}, "alpha", "flow");
  env.register_flow({{"a"}}, "beta", "flow");
  std::vector<std::int64_t> alpha;
  std::vector<std::int64_t> beta;
  task_args in_alpha;
  in_alpha.ns = "alpha";
  task_args in_beta;
  in_beta.ns = "beta";
  for (int i = 0; i < 5; ++i) {
    alpha.push_back(create_task(env.core, in_alpha));
    if (i < 3)
      beta.push_back(create_task(env.core, in_beta));
  }
  worker_handle w(env.core, "w1", 0, {"alpha"});
  auto first = poll(w, 1);
  REQUIRE(first.size() == 1);
  CHECK(first[0].task_id == alpha[0]);
  CHECK(first[0].ns == "alpha");

  auto ids_of = [](const json& list) {
    std::vector<std::int64_t> ids;
    for (const auto& t : list.at("tasks"))
      ids.push_back(t.at("id").get<std::int64_t>());
    return ids;
  };

  auto all = list_tasks(env.core, nullptr);
  auto ids = ids_of(all);
  CHECK(ids.size() == 8);
  CHECK(std::is_sorted(ids.begin(), ids.end()));
  CHECK(all.at("next").is_null());
  const auto& entry = all.at("tasks").at(0);
  CHECK(entry.at("id") == alpha[0]);
  CHECK(entry.at("namespace") == "alpha");
  CHECK(entry.at("name") == "flow");
  CHECK(entry.at("version") == "1");
  CHECK(entry.at("state") == "running");
  CHECK(entry.at("priority") == 0);
  CHECK(entry.at("created_at") == env.clock.now_ms);
  CHECK(entry.at("updated_at") == env.clock.now_ms);

  CHECK(ids_of(list_tasks(env.core, R"({"namespace":"beta"})")) == beta);
  CHECK(ids_of(list_tasks(env.core, R"({"state":"running"})"))
        == std::vector<std::int64_t>{alpha[0]});
  CHECK(ids_of(list_tasks(env.core, R"({"state":"pending","namespace":"alpha"})"))
        == std::vector<std::int64_t>(alpha.begin() + 1, alpha.end()));
  CHECK(ids_of(list_tasks(env.core, R"({"state":"complete"})")).empty());

  // Paging through alpha two at a time.
  std::vector<std::int64_t> paged;
  json after = nullptr;
  int pages = 0;
  while (pages < 10) {
    json filter{{"namespace", "alpha"}, {"limit", 2}};
    if (!after.is_null())
      filter["after"] = after;
    auto page = list_tasks(env.core, filter.dump().c_str());
    ++pages;
    auto page_ids = ids_of(page);
    CHECK(page_ids.size() <= 2);
    paged.insert(paged.end(), page_ids.begin(), page_ids.end());
    after = page.at("next");
    if (after.is_null())
      break;
    CHECK(after == page_ids.back());
  }
  CHECK(pages == 3);
  CHECK(paged == alpha);

  tk_error err{};
  char* text = nullptr;
  CHECK(tk_list_tasks(env.core, R"({"limit":0})", &text, &err) != TK_OK);
  CHECK(tk_list_tasks(env.core, R"({"limit":1001})", &text, &err) != TK_OK);
  CHECK(tk_list_tasks(env.core, R"({"state":"sleeping"})", &text, &err) != TK_OK);
  CHECK(text == nullptr);
}
