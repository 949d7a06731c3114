// kaizen/reward/sql.hpp - text-to-SQL rewards executed on SQLite: execution accuracy (the
// candidate's result set equals the gold query's) and Reasoning-SQL's partial rewards.
//
// Safety rules (SqlDatabase; every connection):
//   - opened with SQLITE_OPEN_READONLY, then `PRAGMA query_only = 1`; extension loading off,
//     SQLITE_DBCONFIG_DEFENSIVE on, untrusted schema; SQLITE_LIMIT_ATTACHED = 0.
//   - an authorizer allows only SELECT, column reads, function calls (not load_extension) and
//     recursive CTEs; `denied_functions` (load_extension, printf, format) are refused too;
//     everything else is denied at prepare time: ATTACH/DETACH, every PRAGMA,
//     INSERT/UPDATE/DELETE, CREATE/DROP/ALTER (temp objects too), transactions and savepoints,
//     ANALYZE, REINDEX, virtual tables.
//   - exactly one statement, a query (it returns columns): text after the first statement other than whitespace, ';' and
//     comments is an error; the prepared statement must be read-only (sqlite3_stmt_readonly).
//   - a progress handler, called every `progress_ops` VM instructions, interrupts the query once
//     `timeout_seconds` have passed since it started (huge cross joins, runaway recursive CTEs);
//     SQLITE_LIMIT_LENGTH = max_value_bytes bounds every string/blob (zeroblob(1e9), printf
//     padding); more than max_rows result rows is an error. The database file is never written.
//   Any failure makes the candidate's execution accuracy 0 (never an exception): only bad
//   arguments (empty gold query, a gold query that fails, bad options) throw kaizen::Error.
//
// Result comparison: every cell becomes a typed key: NULL; INTEGER; REAL (a REAL with an integral
// value below 2^53 is the INTEGER of that value, so 3 and 3.0 match; others rounded to
// `real_digits` significant digits); TEXT; BLOB. Column order matters, column names do not. Rows
// are compared as ordered lists when the gold query has ORDER BY at the top level (outside
// parentheses; SqlOrder::auto_detect), else as multisets (duplicates count); SqlOrder::ordered /
// unordered force either; `distinct_rows` compares sets instead of multisets.
//
// Reasoning-SQL partial rewards (Pourreza, Talaei et al., 2025, arXiv 2503.23157):
//   execution  1 when the result sets match (above), else 0.
//   syntax     1 when the candidate runs without error within the limits.
//   schema     Jaccard |S_p ∩ S_g| / |S_p ∪ S_g| of the schema items each query reads: the engine's
//              authorizer reports every (table, column) read at prepare time; items are `table` and
//              `table.column`, lower case. A candidate that does not compile has S_p = ∅.
//   ngram      Jaccard of the sets of token n-grams (default bigrams) of the two queries, tokens
//              from sql_tokens (keywords and identifiers lower-cased, literals kept, comments
//              dropped). A query with fewer than n tokens has no n-grams.
//   llm        a caller-given judge(prompt, predicted_sql, gold_sql) in [0, 1] (values outside throw).
//   format     FormatReward's strict template over `format_tags` (default think, answer).
//   Jaccard(∅, ∅) = 1. total = sum_k w_k * term_k (divided by sum_k w_k when `normalize`). With
//   full_credit_when_correct (default), execution = 1 credits syntax, schema, ngram and llm at 1, so
//   an equivalent query written differently is not paid less than the gold text. Default weights:
//   execution 3 (the paper's, from memory), every other term 1, llm 0 (needs a judge); the paper's
//   other weights are not verified: they are options.
// The candidate SQL is read from the completion text: inside the last `<answer>...</answer>` when
// present, then the last ```sql (or ```) fenced block when present, trimmed. The gold SQL is
// Prompt::reference.
#pragma once

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <kaizen/core/error.hpp>
#include <kaizen/core/types.hpp>
#include <kaizen/reward/format.hpp>

namespace kaizen::reward {

/// Limits of every query SqlDatabase runs.
struct SqlLimits {
  double timeout_seconds = 2.0;           ///< wall time of one query; > 0
  int progress_ops = 1000;                ///< VM instructions between two clock checks; > 0
  std::size_t max_rows = 100000;          ///< more result rows is an error; > 0
  int max_value_bytes = 1 << 20;          ///< SQLITE_LIMIT_LENGTH (largest string/blob); > 0
  int max_sql_bytes = 100000;             ///< SQLITE_LIMIT_SQL_LENGTH; > 0
  int real_digits = 12;                   ///< significant digits a REAL is compared with; 1..17
  /// SQL functions the authorizer denies (lower case). printf/format: one call with a huge width
  /// or precision runs inside a single VM instruction, where the progress handler cannot stop it
  /// (`printf('%.*c', 2000000000, 'x')` took 29 s on SQLite 3.40 with the length limit set).
  std::vector<std::string> denied_functions{"load_extension", "printf", "format"};
};

inline void validate(const SqlLimits& l) {
  KAIZEN_CHECK(std::isfinite(l.timeout_seconds) && l.timeout_seconds > 0.0,
               "SqlLimits: timeout_seconds must be finite and > 0, got ", l.timeout_seconds);
  KAIZEN_CHECK(l.progress_ops > 0, "SqlLimits: progress_ops must be > 0, got ", l.progress_ops);
  KAIZEN_CHECK(l.max_rows > 0, "SqlLimits: max_rows must be > 0, got ", l.max_rows);
  KAIZEN_CHECK(l.max_value_bytes > 0, "SqlLimits: max_value_bytes must be > 0, got ", l.max_value_bytes);
  KAIZEN_CHECK(l.max_sql_bytes > 0, "SqlLimits: max_sql_bytes must be > 0, got ", l.max_sql_bytes);
  KAIZEN_CHECK(l.real_digits >= 1 && l.real_digits <= 17, "SqlLimits: real_digits must be in [1, 17], got ",
               l.real_digits);
}

/// The outcome of one query: rows as canonical keys (see the header comment), or an error.
struct SqlResult {
  bool ok = false;
  bool timed_out = false;
  std::string error;
  std::size_t columns = 0;
  std::vector<std::string> rows;
};

/// How rows are compared.
enum class SqlOrder { auto_detect, ordered, unordered };

// ---------------------------------------------------------------------------------------------
// Tokens, n-grams, Jaccard, ORDER BY detection, SQL extraction.

/// SQL tokens: identifiers and keywords lower-cased (quoted identifiers unquoted), numbers and
/// string literals verbatim, operators (`<=` `>=` `<>` `!=` `==` `||`) and single punctuation;
/// whitespace and comments dropped.
[[nodiscard]] inline std::vector<std::string> sql_tokens(std::string_view sql) {
  std::vector<std::string> out;
  const auto ident = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '$' ||
           static_cast<unsigned char>(c) >= 0x80;
  };
  const auto lower = [](std::string s) {
    for (char& c : s)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
  };
  std::size_t i = 0;
  const std::size_t n = sql.size();
  while (i < n) {
    const char c = sql[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      ++i;
    } else if (c == '-' && i + 1 < n && sql[i + 1] == '-') {
      while (i < n && sql[i] != '\n') ++i;
    } else if (c == '/' && i + 1 < n && sql[i + 1] == '*') {
      const std::size_t end = sql.find("*/", i + 2);
      i = end == std::string_view::npos ? n : end + 2;
    } else if (c == '\'') {
      std::size_t j = i + 1;
      while (j < n) {
        if (sql[j] == '\'') {
          if (j + 1 < n && sql[j + 1] == '\'') {
            j += 2;
            continue;
          }
          break;
        }
        ++j;
      }
      out.emplace_back(sql.substr(i, std::min(n, j + 1) - i));
      i = j + 1;
    } else if (c == '"' || c == '`' || c == '[') {
      const char close = c == '[' ? ']' : c;
      const std::size_t end = sql.find(close, i + 1);
      const std::size_t stop = end == std::string_view::npos ? n : end;
      out.push_back(lower(std::string(sql.substr(i + 1, stop - i - 1))));
      i = stop + 1;
    } else if (ident(c)) {
      std::size_t j = i;
      const bool number = c >= '0' && c <= '9';
      while (j < n && (ident(sql[j]) || (number && sql[j] == '.'))) ++j;
      out.push_back(number ? std::string(sql.substr(i, j - i)) : lower(std::string(sql.substr(i, j - i))));
      i = j;
    } else {
      static constexpr std::string_view two[] = {"<=", ">=", "<>", "!=", "==", "||"};
      bool matched = false;
      for (std::string_view op : two) {
        if (sql.substr(i, 2) == op) {
          out.emplace_back(op);
          i += 2;
          matched = true;
          break;
        }
      }
      if (!matched) out.emplace_back(1, sql[i++]);
    }
  }
  return out;
}

/// The set of n-grams of a token list (tokens joined by U+001F).
[[nodiscard]] inline std::set<std::string> ngram_set(const std::vector<std::string>& tokens, std::size_t n) {
  KAIZEN_CHECK(n > 0, "ngram_set: n must be > 0, got ", n);
  std::set<std::string> out;
  for (std::size_t i = 0; i + n <= tokens.size(); ++i) {
    std::string g = tokens[i];
    for (std::size_t k = 1; k < n; ++k) g += '\x1f' + tokens[i + k];
    out.insert(std::move(g));
  }
  return out;
}

/// |a ∩ b| / |a ∪ b|; 1 when both are empty.
[[nodiscard]] inline double jaccard(const std::set<std::string>& a, const std::set<std::string>& b) {
  if (a.empty() && b.empty()) return 1.0;
  std::size_t common = 0;
  for (const std::string& x : a) common += b.count(x);
  return static_cast<double>(common) / static_cast<double>(a.size() + b.size() - common);
}

/// True when `ORDER BY` appears outside every parenthesis (it orders the statement's result).
[[nodiscard]] inline bool has_top_level_order_by(std::string_view sql) {
  const std::vector<std::string> t = sql_tokens(sql);
  int depth = 0;
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (t[i] == "(") ++depth;
    if (t[i] == ")") --depth;
    if (depth == 0 && t[i] == "order" && i + 1 < t.size() && t[i + 1] == "by") return true;
  }
  return false;
}

/// The candidate SQL in a completion (see the header comment).
[[nodiscard]] inline std::string extract_sql(std::string_view text) {
  std::string_view s = text;
  if (const std::size_t open = s.rfind("<answer>"); open != std::string_view::npos) {
    s.remove_prefix(open + 8);
    if (const std::size_t close = s.find("</answer>"); close != std::string_view::npos) s = s.substr(0, close);
  }
  if (const std::size_t fence = s.rfind("```"); fence != std::string_view::npos) {
    const std::size_t open = s.substr(0, fence).rfind("```");
    if (open != std::string_view::npos) {
      std::string_view body = s.substr(open + 3, fence - open - 3);
      const std::size_t nl = body.find('\n');
      const std::string_view lang = nl == std::string_view::npos ? std::string_view{} : body.substr(0, nl);
      if (lang.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0-9 \t\r") ==
          std::string_view::npos)
        body.remove_prefix(nl == std::string_view::npos ? 0 : nl + 1);
      s = body;
    }
  }
  return std::string(detail::trim(s));
}

// ---------------------------------------------------------------------------------------------
// The database.

/// A read-only SQLite database; thread-safe (a pool of connections, one per concurrent caller).
class SqlDatabase {
 public:
  explicit SqlDatabase(std::string path, SqlLimits limits = {}) : path_(std::move(path)), limits_(limits) {
    validate(limits_);
    KAIZEN_CHECK(!path_.empty(), "SqlDatabase: the database path is empty");
    release(open());  // fail now, not at the first query, when the file cannot be opened
  }

  SqlDatabase(const SqlDatabase&) = delete;
  SqlDatabase& operator=(const SqlDatabase&) = delete;

  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] const SqlLimits& limits() const noexcept { return limits_; }

  /// Runs one read-only statement within the limits; errors are reported in the result.
  [[nodiscard]] SqlResult execute(std::string_view sql) const {
    Lease lease(*this);
    Connection& c = *lease.connection;
    SqlResult result;
    Statement st = prepare(c, sql, result.error, nullptr);
    if (!st) return result;
    result.columns = static_cast<std::size_t>(sqlite3_column_count(st.get()));
    std::string row;
    for (;;) {
      const int rc = sqlite3_step(st.get());
      if (rc == SQLITE_DONE) break;
      if (rc != SQLITE_ROW) {
        result.timed_out = rc == SQLITE_INTERRUPT;
        result.error = result.timed_out ? kaizen::detail::concat("interrupted after ", limits_.timeout_seconds, " s")
                                        : std::string(sqlite3_errmsg(c.db));
        result.rows.clear();
        c.deadline = {};
        return result;
      }
      if (result.rows.size() >= limits_.max_rows) {
        result.error = kaizen::detail::concat("more than ", limits_.max_rows, " rows");
        result.rows.clear();
        c.deadline = {};
        return result;
      }
      row.clear();
      for (int k = 0; k < static_cast<int>(result.columns); ++k) append_cell(row, st.get(), k);
      result.rows.push_back(row);
    }
    c.deadline = {};
    result.ok = true;
    return result;
  }

  /// The schema items (`table`, `table.column`, lower case) the statement reads, or nullopt when it
  /// does not compile under the rules.
  [[nodiscard]] std::optional<std::set<std::string>> schema_items(std::string_view sql) const {
    Lease lease(*this);
    std::set<std::string> items;
    std::string error;
    Statement st = prepare(*lease.connection, sql, error, &items);
    lease.connection->deadline = {};
    if (!st) return std::nullopt;
    return items;
  }

 private:
  using Clock = std::chrono::steady_clock;

  struct Connection {
    sqlite3* db = nullptr;
    Clock::time_point deadline{};
    std::set<std::string>* items = nullptr;  // set while preparing for schema_items
    const std::vector<std::string>* denied = nullptr;  // denied function names
    ~Connection() {
      if (db != nullptr) sqlite3_close_v2(db);
    }
  };

  struct StatementDeleter {
    void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
  };
  using Statement = std::unique_ptr<sqlite3_stmt, StatementDeleter>;

  struct Lease {
    explicit Lease(const SqlDatabase& d) : owner(d), connection(d.acquire()) {}
    ~Lease() { owner.release(std::move(connection)); }
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    const SqlDatabase& owner;
    std::unique_ptr<Connection> connection;
  };

  static std::string lower(const char* s) {
    std::string out = s == nullptr ? "" : s;
    for (char& c : out)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return out;
  }

  static int authorize(void* user, int action, const char* a1, const char* a2, const char* /*db*/,
                       const char* /*view*/) {
    auto* c = static_cast<Connection*>(user);
    switch (action) {
      case SQLITE_SELECT:
      case SQLITE_RECURSIVE:
        return SQLITE_OK;
      case SQLITE_READ:
        if (c->items != nullptr && a1 != nullptr && *a1 != '\0') {
          const std::string table = lower(a1);
          c->items->insert(table);
          if (a2 != nullptr && *a2 != '\0') c->items->insert(table + "." + lower(a2));
        }
        return SQLITE_OK;
      case SQLITE_FUNCTION:
        if (a2 != nullptr && c->denied != nullptr) {
          const std::string name = lower(a2);
          for (const std::string& d : *c->denied)
            if (d == name) return SQLITE_DENY;
        }
        return SQLITE_OK;
      default:
        return SQLITE_DENY;
    }
  }

  static int progress(void* user) {
    auto* c = static_cast<Connection*>(user);
    return c->deadline != Clock::time_point{} && Clock::now() >= c->deadline ? 1 : 0;
  }

  [[nodiscard]] std::unique_ptr<Connection> open() const {
    auto c = std::make_unique<Connection>();
    c->denied = &limits_.denied_functions;
    const int rc = sqlite3_open_v2(path_.c_str(), &c->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      const std::string message = c->db != nullptr ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);
      fail("SqlDatabase: cannot open '", path_, "' read-only: ", message);
    }
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, nullptr);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);
    sqlite3_limit(c->db, SQLITE_LIMIT_ATTACHED, 0);
    sqlite3_limit(c->db, SQLITE_LIMIT_LENGTH, limits_.max_value_bytes);
    sqlite3_limit(c->db, SQLITE_LIMIT_SQL_LENGTH, limits_.max_sql_bytes);
    char* err = nullptr;
    if (sqlite3_exec(c->db, "PRAGMA query_only = 1", nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string message = err != nullptr ? err : "unknown error";
      sqlite3_free(err);
      fail("SqlDatabase: cannot set query_only on '", path_, "': ", message);
    }
    // the schema is read once, before the authorizer would see its parsing
    if (sqlite3_exec(c->db, "SELECT count(*) FROM sqlite_schema", nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string message = err != nullptr ? err : "unknown error";
      sqlite3_free(err);
      fail("SqlDatabase: '", path_, "' is not a readable SQLite database: ", message);
    }
    sqlite3_set_authorizer(c->db, &SqlDatabase::authorize, c.get());
    sqlite3_progress_handler(c->db, limits_.progress_ops, &SqlDatabase::progress, c.get());
    return c;
  }

  [[nodiscard]] std::unique_ptr<Connection> acquire() const {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!idle_.empty()) {
        auto c = std::move(idle_.back());
        idle_.pop_back();
        return c;
      }
    }
    return open();
  }

  void release(std::unique_ptr<Connection> c) const {
    if (c == nullptr) return;
    c->items = nullptr;
    c->deadline = {};
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.push_back(std::move(c));
  }

  // Compiles exactly one read-only statement; on failure returns null and sets `error`.
  [[nodiscard]] Statement prepare(Connection& c, std::string_view sql, std::string& error,
                                  std::set<std::string>* items) const {
    if (detail::trim(sql).empty()) {
      error = "empty query";
      return nullptr;
    }
    if (sql.size() > static_cast<std::size_t>(limits_.max_sql_bytes)) {
      error = kaizen::detail::concat("query of ", sql.size(), " bytes exceeds ", limits_.max_sql_bytes);
      return nullptr;
    }
    c.deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(limits_.timeout_seconds));
    c.items = items;
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    const int rc = sqlite3_prepare_v2(c.db, sql.data(), static_cast<int>(sql.size()), &raw, &tail);
    c.items = nullptr;
    Statement st(raw);
    if (rc != SQLITE_OK || raw == nullptr) {
      error = rc != SQLITE_OK ? std::string(sqlite3_errmsg(c.db)) : "no statement";
      return nullptr;
    }
    if (!only_trivia(std::string_view(tail, static_cast<std::size_t>(sql.data() + sql.size() - tail)))) {
      error = "more than one statement";
      return nullptr;
    }
    if (sqlite3_stmt_readonly(raw) == 0) {
      error = "not a read-only statement";
      return nullptr;
    }
    if (sqlite3_column_count(raw) == 0) {  // REINDEX / ANALYZE with nothing to do, BEGIN, ...
      error = "not a query (the statement returns no columns)";
      return nullptr;
    }
    return st;
  }

  static bool only_trivia(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
      const char ch = s[i];
      if (ch == ';' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v') {
        ++i;
      } else if (s.substr(i, 2) == "--") {
        while (i < s.size() && s[i] != '\n') ++i;
      } else if (s.substr(i, 2) == "/*") {
        const std::size_t end = s.find("*/", i + 2);
        i = end == std::string_view::npos ? s.size() : end + 2;
      } else {
        return false;
      }
    }
    return true;
  }

  void append_cell(std::string& row, sqlite3_stmt* st, int k) const {
    std::string cell;
    char tag = 'N';
    switch (sqlite3_column_type(st, k)) {
      case SQLITE_INTEGER:
        tag = 'I';
        cell = std::to_string(sqlite3_column_int64(st, k));
        break;
      case SQLITE_FLOAT: {
        const double v = sqlite3_column_double(st, k);
        if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9007199254740992.0) {
          tag = 'I';
          cell = std::to_string(static_cast<std::int64_t>(v));
        } else {
          tag = 'R';
          char buf[64];
          std::snprintf(buf, sizeof buf, "%.*g", limits_.real_digits, v);
          cell = buf;
        }
        break;
      }
      case SQLITE_TEXT:
        tag = 'T';
        cell.assign(reinterpret_cast<const char*>(sqlite3_column_text(st, k)),
                    static_cast<std::size_t>(sqlite3_column_bytes(st, k)));
        break;
      case SQLITE_BLOB: {
        tag = 'B';
        const void* p = sqlite3_column_blob(st, k);
        const auto bytes = static_cast<std::size_t>(sqlite3_column_bytes(st, k));
        if (p != nullptr) cell.assign(static_cast<const char*>(p), bytes);
        break;
      }
      default:
        break;
    }
    row += tag;
    row += std::to_string(cell.size());
    row += ':';
    row += cell;
  }

  std::string path_;
  SqlLimits limits_;
  mutable std::mutex mutex_;
  mutable std::vector<std::unique_ptr<Connection>> idle_;
};

/// True when the candidate rows equal the gold rows under `order` (see the header comment).
[[nodiscard]] inline bool same_result(const SqlResult& candidate, const SqlResult& gold, bool ordered,
                                      bool distinct_rows = false) {
  if (!candidate.ok || !gold.ok || candidate.columns != gold.columns) return false;
  if (ordered) {
    if (!distinct_rows) return candidate.rows == gold.rows;
    std::vector<std::string> a, b;
    for (const std::string& r : candidate.rows)
      if (std::find(a.begin(), a.end(), r) == a.end()) a.push_back(r);
    for (const std::string& r : gold.rows)
      if (std::find(b.begin(), b.end(), r) == b.end()) b.push_back(r);
    return a == b;
  }
  std::vector<std::string> a = candidate.rows, b = gold.rows;
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  if (distinct_rows) {
    a.erase(std::unique(a.begin(), a.end()), a.end());
    b.erase(std::unique(b.begin(), b.end()), b.end());
  }
  return a == b;
}

// ---------------------------------------------------------------------------------------------
// Rewards.

struct SqlExecutionOptions {
  SqlOrder order = SqlOrder::auto_detect;
  bool distinct_rows = false;  ///< compare sets (duplicates ignored) instead of multisets
  bool extract = true;         ///< read the SQL with extract_sql; false: the whole completion text
};

/// Execution accuracy: 1 when the candidate's result equals the gold query's (Prompt::reference).
/// Gold results are cached by query text. Thread-safe.
class SqlExecutionReward {
 public:
  SqlExecutionReward(std::shared_ptr<const SqlDatabase> db, SqlExecutionOptions options = {})
      : db_(std::move(db)), options_(options), cache_(std::make_shared<Cache>()) {
    KAIZEN_CHECK(db_ != nullptr, "SqlExecutionReward: the database pointer is null");
  }

  [[nodiscard]] const SqlDatabase& database() const noexcept { return *db_; }
  [[nodiscard]] const SqlExecutionOptions& options() const noexcept { return options_; }

  /// The gold query's result (cached); throws kaizen::Error when it is empty or fails.
  [[nodiscard]] std::shared_ptr<const SqlResult> gold(std::string_view gold_sql) const {
    KAIZEN_CHECK(!detail::trim(gold_sql).empty(), "SqlExecutionReward: the gold query (Prompt::reference) is empty");
    const std::string key(gold_sql);
    {
      std::lock_guard<std::mutex> lock(cache_->mutex);
      if (auto it = cache_->results.find(key); it != cache_->results.end()) return it->second;
    }
    auto result = std::make_shared<SqlResult>(db_->execute(gold_sql));
    KAIZEN_CHECK(result->ok, "SqlExecutionReward: the gold query failed (", result->error, "): ", gold_sql);
    std::lock_guard<std::mutex> lock(cache_->mutex);
    cache_->results.emplace(key, result);
    return result;
  }

  /// 1 or 0 for a candidate SQL text against a gold SQL text.
  [[nodiscard]] double score_sql(std::string_view candidate_sql, std::string_view gold_sql) const {
    const std::shared_ptr<const SqlResult> g = gold(gold_sql);
    const SqlResult c = db_->execute(candidate_sql);
    return same_result(c, *g, ordered(gold_sql), options_.distinct_rows) ? 1.0 : 0.0;
  }

  [[nodiscard]] bool ordered(std::string_view gold_sql) const {
    switch (options_.order) {
      case SqlOrder::ordered: return true;
      case SqlOrder::unordered: return false;
      case SqlOrder::auto_detect: return has_top_level_order_by(gold_sql);
    }
    return false;
  }

  [[nodiscard]] double operator()(const Prompt& prompt, const Completion& completion) const {
    return score_sql(options_.extract ? extract_sql(completion.text) : completion.text, prompt.reference);
  }

 private:
  struct Cache {
    std::mutex mutex;
    std::map<std::string, std::shared_ptr<const SqlResult>, std::less<>> results;
  };
  std::shared_ptr<const SqlDatabase> db_;
  SqlExecutionOptions options_;
  std::shared_ptr<Cache> cache_;
};

/// Weights of Reasoning-SQL's terms (see the header comment).
struct SqlRewardWeights {
  double execution = 3.0;
  double syntax = 1.0;
  double schema = 1.0;
  double ngram = 1.0;
  double llm = 0.0;
  double format = 1.0;
};

struct ReasoningSqlOptions {
  SqlRewardWeights weights{};
  SqlExecutionOptions execution{};
  std::size_t ngram = 2;                  ///< n of the n-gram term; > 0
  bool full_credit_when_correct = true;   ///< execution = 1 => syntax, schema, ngram, llm = 1
  bool normalize = false;                 ///< divide by the weight sum
  std::vector<std::string> format_tags{"think", "answer"};
  /// judge(prompt, predicted_sql, gold_sql) in [0, 1]; required when weights.llm != 0.
  std::function<double(const Prompt&, std::string_view, std::string_view)> llm_judge;
};

/// Every term of one scored completion.
struct SqlRewardTerms {
  double execution = 0, syntax = 0, schema = 0, ngram = 0, llm = 0, format = 0;
  double total = 0;
};

/// Reasoning-SQL's reward: weighted sum of execution accuracy and the partial rewards. Thread-safe
/// when the judge is.
class ReasoningSqlReward {
 public:
  ReasoningSqlReward(std::shared_ptr<const SqlDatabase> db, ReasoningSqlOptions options = {})
      : exec_(std::move(db), options.execution), options_(std::move(options)) {
    const SqlRewardWeights& w = options_.weights;
    const double ws[] = {w.execution, w.syntax, w.schema, w.ngram, w.llm, w.format};
    double total = 0.0;
    for (double x : ws) {
      KAIZEN_CHECK(std::isfinite(x) && x >= 0.0, "ReasoningSqlReward: weights must be finite and >= 0, got ", x);
      total += x;
    }
    KAIZEN_CHECK(total > 0.0, "ReasoningSqlReward: every weight is 0");
    KAIZEN_CHECK(options_.ngram > 0, "ReasoningSqlReward: ngram must be > 0, got ", options_.ngram);
    KAIZEN_CHECK(w.llm == 0.0 || static_cast<bool>(options_.llm_judge), "ReasoningSqlReward: weights.llm = ", w.llm,
                 " but no llm_judge was given");
    KAIZEN_CHECK(w.format == 0.0 || !options_.format_tags.empty(),
                 "ReasoningSqlReward: weights.format = ", w.format, " but format_tags is empty");
    weight_sum_ = total;
  }

  [[nodiscard]] SqlRewardTerms terms(const Prompt& prompt, const Completion& completion) const {
    const std::string& gold_sql = prompt.reference;
    const std::string sql = options_.execution.extract ? extract_sql(completion.text) : completion.text;
    const SqlRewardWeights& w = options_.weights;
    SqlRewardTerms t;
    const std::shared_ptr<const SqlResult> g = exec_.gold(gold_sql);
    const SqlResult c = exec_.database().execute(sql);
    t.execution = same_result(c, *g, exec_.ordered(gold_sql), options_.execution.distinct_rows) ? 1.0 : 0.0;
    if (t.execution == 1.0 && options_.full_credit_when_correct) {
      t.syntax = t.schema = t.ngram = t.llm = 1.0;
    } else {
      t.syntax = c.ok ? 1.0 : 0.0;
      if (w.schema != 0.0) {
        const std::optional<std::set<std::string>> sg = exec_.database().schema_items(gold_sql);
        KAIZEN_CHECK(sg.has_value(), "ReasoningSqlReward: the gold query does not compile: ", gold_sql);
        const std::optional<std::set<std::string>> sp = exec_.database().schema_items(sql);
        t.schema = jaccard(sp.value_or(std::set<std::string>{}), *sg);
      }
      if (w.ngram != 0.0)
        t.ngram = jaccard(ngram_set(sql_tokens(sql), options_.ngram), ngram_set(sql_tokens(gold_sql), options_.ngram));
      if (w.llm != 0.0) {
        t.llm = options_.llm_judge(prompt, sql, gold_sql);
        KAIZEN_CHECK(std::isfinite(t.llm) && t.llm >= 0.0 && t.llm <= 1.0,
                     "ReasoningSqlReward: llm_judge returned ", t.llm, ", expected a value in [0, 1]");
      }
    }
    if (w.format != 0.0) t.format = matches_template(completion.text, options_.format_tags) ? 1.0 : 0.0;
    t.total = w.execution * t.execution + w.syntax * t.syntax + w.schema * t.schema + w.ngram * t.ngram +
              w.llm * t.llm + w.format * t.format;
    if (options_.normalize) t.total /= weight_sum_;
    return t;
  }

  [[nodiscard]] double operator()(const Prompt& prompt, const Completion& completion) const {
    return terms(prompt, completion).total;
  }

 private:
  SqlExecutionReward exec_;
  ReasoningSqlOptions options_;
  double weight_sum_ = 0.0;
};

}  // namespace kaizen::reward
