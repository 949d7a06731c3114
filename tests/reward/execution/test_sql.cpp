// SQL execution rewards on the shop schema (data/shop.sql): execution accuracy, the ordered /
// multiset rule, Reasoning-SQL's partial rewards, hostile queries, errors.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <sys/stat.h>
#include <vector>

#include <kaizen/reward/scorer.hpp>
#include <kaizen/reward/sql.hpp>

#include "support.hpp"

using kaizen::Completion;
using kaizen::Prompt;
using namespace kaizen::reward;

namespace {

std::shared_ptr<const SqlDatabase> shop(SqlLimits limits = {}) {
  static const std::string path = kaizen_test::build_shop_db();
  return std::make_shared<const SqlDatabase>(path, limits);
}

Prompt gold(std::string sql) {
  Prompt p;
  p.reference = std::move(sql);
  return p;
}

Completion answer(std::string text) {
  Completion c;
  c.text = std::move(text);
  return c;
}

}  // namespace

TEST_CASE("sql: equivalent queries written differently score 1", "[sql]") {
  SqlExecutionReward ex(shop());
  const std::string london = "SELECT name FROM customers WHERE city = 'London'";
  CHECK(ex.score_sql("select c.name from customers as c where c.city in ('London')", london) == 1.0);
  CHECK(ex.score_sql("SELECT name FROM customers WHERE city = 'London' ORDER BY name DESC", london) == 1.0);
  CHECK(ex.score_sql("SELECT name FROM customers WHERE id IN (1, 3)", london) == 1.0);
  // join + group vs correlated subquery
  CHECK(ex.score_sql("SELECT name, (SELECT SUM(quantity) FROM orders WHERE customer_id = customers.id) FROM customers "
                     "WHERE id IN (SELECT customer_id FROM orders)",
                     "SELECT c.name, SUM(o.quantity) FROM customers c JOIN orders o ON o.customer_id = c.id GROUP BY "
                     "c.id") == 1.0);
  // 5 and 5.0 are the same value
  CHECK(ex.score_sql("SELECT CAST(COUNT(*) AS REAL) FROM orders WHERE quantity > 1",
                     "SELECT COUNT(*) FROM orders WHERE quantity > 1") == 1.0);
  // a trailing semicolon and a comment are fine
  CHECK(ex.score_sql("SELECT name FROM customers WHERE city = 'London'; -- done", london) == 1.0);
  // from a completion: <answer> + fenced block
  CHECK(ex(gold(london), answer("<think>London customers</think>\n<answer>\n```sql\nSELECT name FROM customers "
                                "WHERE city = 'London'\n```\n</answer>")) == 1.0);
}

TEST_CASE("sql: wrong queries score 0", "[sql]") {
  SqlExecutionReward ex(shop());
  const std::string london = "SELECT name FROM customers WHERE city = 'London'";
  CHECK(ex.score_sql("SELECT name FROM customers WHERE city = 'Boston'", london) == 0.0);
  CHECK(ex.score_sql("SELECT name, city FROM customers WHERE city = 'London'", london) == 0.0);  // extra column
  CHECK(ex.score_sql("SELECT name FROM customers", london) == 0.0);
  CHECK(ex.score_sql("SELEC name FROM customers", london) == 0.0);          // syntax error
  CHECK(ex.score_sql("SELECT nom FROM customers", london) == 0.0);          // no such column
  CHECK(ex.score_sql("", london) == 0.0);                                   // empty candidate
  CHECK(ex.score_sql("SELECT city, name FROM customers WHERE city = 'London'",
                     "SELECT name, city FROM customers WHERE city = 'London'") == 0.0);  // column order
  // 'London' (text) is not 1 (integer) and NULL is not 0
  CHECK(ex.score_sql("SELECT '5'", "SELECT 5") == 0.0);
  CHECK(ex.score_sql("SELECT NULL", "SELECT 0") == 0.0);
}

TEST_CASE("sql: multiset rule without ORDER BY, ordered rule with it", "[sql]") {
  SqlExecutionReward ex(shop());
  // duplicates count: London appears twice
  CHECK(ex.score_sql("SELECT DISTINCT city FROM customers", "SELECT city FROM customers") == 0.0);
  CHECK(ex.score_sql("SELECT city FROM customers ORDER BY city", "SELECT city FROM customers") == 1.0);
  SqlExecutionReward sets(shop(), {.distinct_rows = true});
  CHECK(sets.score_sql("SELECT DISTINCT city FROM customers", "SELECT city FROM customers") == 1.0);

  const std::string by_price = "SELECT name FROM products ORDER BY price DESC";
  CHECK(ex.ordered(by_price));
  CHECK(ex.score_sql("SELECT name FROM products ORDER BY price DESC, id", by_price) == 1.0);
  CHECK(ex.score_sql("SELECT name FROM products ORDER BY price ASC", by_price) == 0.0);
  CHECK(ex.score_sql("SELECT name FROM products", by_price) == 0.0);
  SqlExecutionReward unordered(shop(), {.order = SqlOrder::unordered});
  CHECK(unordered.score_sql("SELECT name FROM products ORDER BY price ASC", by_price) == 1.0);
  SqlExecutionReward ordered(shop(), {.order = SqlOrder::ordered});
  CHECK(ordered.score_sql("SELECT name FROM customers WHERE city = 'London' ORDER BY name DESC",
                          "SELECT name FROM customers WHERE city = 'London' ORDER BY name") == 0.0);

  // ORDER BY inside a subquery does not order the result; ORDER BY after a compound does
  CHECK_FALSE(has_top_level_order_by("SELECT name FROM (SELECT name FROM products ORDER BY price)"));
  CHECK(has_top_level_order_by("SELECT name FROM products UNION SELECT name FROM customers ORDER BY 1"));
  CHECK_FALSE(has_top_level_order_by("SELECT 'order by' FROM products -- order by\n"));
  CHECK_FALSE(has_top_level_order_by("SELECT \"order\" FROM t"));
}

TEST_CASE("sql: partial-reward helpers match the hand-computed oracles", "[sql]") {
  CHECK(jaccard({"t.a", "t.b", "u.c"}, {"t.a", "u.c", "u.d"}) == Approx(0.5));
  CHECK(jaccard(ngram_set(sql_tokens("SELECT a FROM t"), 2), ngram_set(sql_tokens("SELECT b FROM t"), 2)) ==
        Approx(0.2));
  CHECK(jaccard({}, {}) == 1.0);
  CHECK(jaccard({"a"}, {}) == 0.0);
  CHECK(sql_tokens("SELECT \"Name\" FROM [T] WHERE x<=3 -- c\n AND y = 'It''s' /* c */") ==
        std::vector<std::string>{"select", "name", "from", "t", "where", "x", "<=", "3", "and", "y", "=", "'It''s'"});
  CHECK(ngram_set(sql_tokens("SELECT"), 2).empty());
  CHECK(extract_sql("<answer>```sql\nSELECT 1;\n```</answer>") == "SELECT 1;");
  CHECK(extract_sql("  SELECT 2  ") == "SELECT 2");
  CHECK(extract_sql("text ```\nSELECT 3\n``` more") == "SELECT 3");

  const auto db = shop();
  const auto items = db->schema_items("SELECT name FROM customers WHERE city = 'London'");
  REQUIRE(items.has_value());
  CHECK(*items == std::set<std::string>{"customers", "customers.name", "customers.city"});
  const auto join = db->schema_items("SELECT c.name FROM customers c JOIN orders o ON o.customer_id = c.id");
  REQUIRE(join.has_value());
  CHECK(*join == std::set<std::string>{"customers", "customers.name", "customers.id", "orders",
                                       "orders.customer_id"});
  CHECK_FALSE(db->schema_items("SELEC 1").has_value());
  CHECK_FALSE(db->schema_items("DROP TABLE orders").has_value());
}

TEST_CASE("sql: Reasoning-SQL terms and weights", "[sql]") {
  const std::string london = "SELECT name FROM customers WHERE city = 'London'";
  ReasoningSqlReward r(shop());
  // wrong value, same schema items, 6 of 8 bigrams shared, no tags
  const SqlRewardTerms wrong = r.terms(gold(london), answer("SELECT name FROM customers WHERE city = 'Boston'"));
  CHECK(wrong.execution == 0.0);
  CHECK(wrong.syntax == 1.0);
  CHECK(wrong.schema == Approx(1.0));
  CHECK(wrong.ngram == Approx(6.0 / 8.0));
  CHECK(wrong.format == 0.0);
  CHECK(wrong.total == Approx(0 * 3 + 1 + 1 + 0.75 + 0));
  // right, written differently, with the tag template: full credit
  const SqlRewardTerms right = r.terms(
      gold(london), answer("<think>filter on the city</think>\n<answer>select c.name from customers c where "
                           "c.city in ('London')</answer>"));
  CHECK(right.execution == 1.0);
  CHECK(right.ngram == 1.0);
  CHECK(right.format == 1.0);
  CHECK(right.total == Approx(3 + 1 + 1 + 1 + 1));
  // does not compile: no syntax, empty schema set
  const SqlRewardTerms broken = r.terms(gold(london), answer("SELECT name FROM customer WHERE city = 'London'"));
  CHECK(broken.syntax == 0.0);
  CHECK(broken.schema == 0.0);
  CHECK(broken.ngram == Approx(5.0 / 9.0));  // customer vs customers: 2 of 7 bigrams differ on each side
  // llm judge hook and normalisation
  ReasoningSqlOptions o;
  o.weights.llm = 2.0;
  o.normalize = true;
  o.llm_judge = [](const Prompt&, std::string_view pred, std::string_view) { return pred.find("Boston") != std::string_view::npos ? 0.25 : 0.0; };
  ReasoningSqlReward judged(shop(), o);
  const SqlRewardTerms j = judged.terms(gold(london), answer("SELECT name FROM customers WHERE city = 'Boston'"));
  CHECK(j.llm == 0.25);
  CHECK(j.total == Approx((1 + 1 + 0.75 + 2 * 0.25) / (3 + 1 + 1 + 1 + 2 + 1)));
}

TEST_CASE("sql: Reasoning-SQL ngram term for the broken query is exact", "[sql]") {
  // tokens: select name from customer(s) where city = 'London': 7 bigrams each, 2 differ on each side
  const auto a = ngram_set(sql_tokens("SELECT name FROM customer WHERE city = 'London'"), 2);
  const auto b = ngram_set(sql_tokens("SELECT name FROM customers WHERE city = 'London'"), 2);
  CHECK(a.size() == 7);
  CHECK(jaccard(a, b) == Approx(5.0 / 9.0));
}

TEST_CASE("sql: hostile queries change nothing and score 0 within the limit", "[sql]") {
  const std::string path = kaizen_test::build_shop_db("shop_hostile.db");
  const std::string before = kaizen_test::read_file(path);
  struct stat st_before {};
  REQUIRE(::stat(path.c_str(), &st_before) == 0);
  const double limit = 0.5;
  const auto db = std::make_shared<const SqlDatabase>(path, SqlLimits{.timeout_seconds = limit});
  SqlExecutionReward ex(db);
  const std::string target = "SELECT name FROM customers WHERE city = 'London'";
  const std::string evil = std::string(KAIZEN_EXEC_BUILD_DIR) + "/evil.db";
  std::remove(evil.c_str());
  const std::vector<std::string> hostile = {
      "DROP TABLE orders",
      "SELECT name FROM customers WHERE city = 'London'; DROP TABLE orders",
      "DELETE FROM orders",
      "UPDATE products SET price = 0",
      "INSERT INTO customers VALUES (99, 'Mallory', 'London', 2024)",
      "REPLACE INTO products VALUES (1, 'x', 'y', 1)",
      "ATTACH DATABASE '" + evil + "' AS evil",
      "ATTACH ':memory:' AS m",
      "DETACH main",
      "PRAGMA query_only = 0",
      "PRAGMA writable_schema = 1",
      "PRAGMA journal_mode = WAL",
      "PRAGMA user_version = 7",
      "PRAGMA main.locking_mode = EXCLUSIVE",
      "VACUUM",
      "VACUUM INTO '" + evil + "'",
      "CREATE TABLE t (x)",
      "CREATE TEMP TABLE t (x)",
      "CREATE TEMP VIEW v AS SELECT 1",
      "CREATE TRIGGER tr AFTER INSERT ON orders BEGIN DELETE FROM orders; END",
      "CREATE INDEX i ON orders (day)",
      "ALTER TABLE orders RENAME TO o",
      "BEGIN EXCLUSIVE",
      "SAVEPOINT s",
      "REINDEX",
      "ANALYZE",
      "SELECT load_extension('/nonexistent/evil.so')",
      "SELECT writefile('" + evil + "', 'x')",
      // huge cross join: 12^9 rows
      "SELECT count(*) FROM orders a, orders b, orders c, orders d, orders e, orders f, orders g, orders h, orders i",
      // runaway recursive CTEs
      "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r",
      "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT x FROM r",
      // more rows than max_rows: 12^5
      "SELECT a.id FROM orders a, orders b, orders c, orders d, orders e",
      // memory: values above SQLITE_LIMIT_LENGTH
      "SELECT zeroblob(2000000000)",
      "SELECT randomblob(1000000000)",
      "SELECT printf('%.*c', 2000000000, 'x')",
      "SELECT group_concat(hex(randomblob(1000))) FROM orders a, orders b, orders c, orders d",
  };
  double worst = 0.0;
  for (const std::string& q : hostile) {
    INFO(q);
    const auto t0 = std::chrono::steady_clock::now();
    CHECK(ex.score_sql(q, target) == 0.0);
    const SqlResult r = db->execute(q);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    CHECK_FALSE(r.ok);
    worst = std::max(worst, s);
    CHECK(s < 2 * limit + 1.0);  // two runs (score_sql + execute), each bounded by the limit
  }
  WARN("hostile queries: worst time for two runs " << worst << " s (limit " << limit << " s each)");
  // the file is byte-for-byte the same, nothing was created next to it, the data is intact
  CHECK(kaizen_test::read_file(path) == before);
  struct stat st_after {};
  REQUIRE(::stat(path.c_str(), &st_after) == 0);
  CHECK(st_after.st_mtime == st_before.st_mtime);
  struct stat other {};
  CHECK(::stat((path + "-wal").c_str(), &other) != 0);
  CHECK(::stat((path + "-journal").c_str(), &other) != 0);
  CHECK(::stat(evil.c_str(), &other) != 0);
  CHECK(ex.score_sql("SELECT name FROM customers WHERE id IN (1, 3)", target) == 1.0);
  CHECK(db->execute("SELECT count(*) FROM orders").rows == std::vector<std::string>{"I2:12"});
}

TEST_CASE("sql: many threads through the scorer get the right rewards", "[sql]") {
  SqlExecutionReward ex(shop());
  std::vector<Prompt> prompts;
  std::vector<Completion> completions;
  std::vector<double> expected;
  for (int i = 0; i < 400; ++i) {
    prompts.push_back(gold("SELECT name FROM customers WHERE city = 'London'"));
    const bool right = i % 3 != 0;
    completions.push_back(answer(right ? "SELECT name FROM customers WHERE id IN (1, 3)"
                                       : "SELECT name FROM customers WHERE id IN (1, 2)"));
    expected.push_back(right ? 1.0 : 0.0);
  }
  Scorer scorer(ex, {.threads = 4, .timeout_seconds = 10.0});
  const ScoreReport report = scorer.score(prompts, completions);
  CHECK(report.failures.empty());
  CHECK(report.rewards == expected);
}

TEST_CASE("sql: bad input throws kaizen::Error with the values", "[sql]") {
  using Catch::Contains;
  SqlExecutionReward ex(shop());
  REQUIRE_THROWS_WITH(ex.score_sql("SELECT 1", "  "), Contains("the gold query (Prompt::reference) is empty"));
  REQUIRE_THROWS_WITH(ex.score_sql("SELECT 1", "SELECT nope FROM customers"),
                      Contains("the gold query failed") && Contains("no such column: nope"));
  REQUIRE_THROWS_WITH(ex(Prompt{}, answer("SELECT 1")), Contains("is empty"));
  REQUIRE_THROWS_WITH(SqlDatabase("/nonexistent/shop.db"), Contains("cannot open '/nonexistent/shop.db' read-only"));
  REQUIRE_THROWS_WITH(SqlDatabase("", {}), Contains("the database path is empty"));
  REQUIRE_THROWS_WITH(shop(SqlLimits{.timeout_seconds = 0.0}), Contains("timeout_seconds must be finite and > 0, got 0"));
  REQUIRE_THROWS_WITH(shop(SqlLimits{.timeout_seconds = -1.0}), Contains("got -1"));
  REQUIRE_THROWS_WITH(shop(SqlLimits{.max_rows = 0}), Contains("max_rows must be > 0, got 0"));
  REQUIRE_THROWS_WITH(shop(SqlLimits{.real_digits = 30}), Contains("real_digits must be in [1, 17], got 30"));
  REQUIRE_THROWS_WITH(SqlExecutionReward(nullptr), Contains("the database pointer is null"));
  ReasoningSqlOptions no_judge;
  no_judge.weights.llm = 1.0;
  REQUIRE_THROWS_WITH(ReasoningSqlReward(shop(), no_judge), Contains("weights.llm = 1 but no llm_judge"));
  ReasoningSqlOptions negative;
  negative.weights.schema = -1.0;
  REQUIRE_THROWS_WITH(ReasoningSqlReward(shop(), negative), Contains("weights must be finite and >= 0, got -1"));
  ReasoningSqlOptions zero;
  zero.weights = {0, 0, 0, 0, 0, 0};
  REQUIRE_THROWS_WITH(ReasoningSqlReward(shop(), zero), Contains("every weight is 0"));
  ReasoningSqlOptions bad_judge;
  bad_judge.weights.llm = 1.0;
  bad_judge.llm_judge = [](const Prompt&, std::string_view, std::string_view) { return 1.5; };
  ReasoningSqlReward r(shop(), bad_judge);
  REQUIRE_THROWS_WITH(r(gold("SELECT 1"), answer("SELECT 2")), Contains("llm_judge returned 1.5"));
  REQUIRE_THROWS_WITH(ngram_set({}, 0), Contains("n must be > 0, got 0"));
}
