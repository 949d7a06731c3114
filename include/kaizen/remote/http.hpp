// kaizen/remote/http.hpp - a small HTTP POST client over libcurl's multi interface: many requests in
// flight on one thread, each with a connect and a total timeout, retried with exponential backoff
// under a per-request attempt limit and a per-call retry budget. Needs libcurl (kaizen::remote).
//
// Rules:
//   in flight     at most HttpOptions::max_in_flight requests are open at once; the rest wait in order.
//   timeouts      a connection not made in connect_timeout_s, or a request not answered in full in
//                 request_timeout_s, is a transport failure (curl's own timers: no call ever hangs).
//   retryable     a transport failure (refused, reset, timed out, DNS), HTTP 408, 429 and every 5xx.
//                 Any other status (2xx included) is an answer and is returned as it is.
//   backoff       attempt a (a = 1, 2, ...) that failed waits min(backoff_max_s, backoff_initial_s * 2^(a-1))
//                 before the next attempt, unless a Retry-After header (seconds) asks for longer.
//   giving up     a request that failed max_attempts times, or whose next attempt would start more than
//                 retry_budget_s after the call's first failure, makes post_all throw kaizen::Error naming
//                 the URL, the attempts made and the last failure. Requests still open are abandoned
//                 (their handles are closed). So a dead server costs at most about retry_budget_s +
//                 request_timeout_s, never a hang.
//
// Usage:
//   kaizen::remote::HttpClient http({.max_in_flight = 8, .request_timeout_s = 120});
//   std::vector<kaizen::remote::HttpRequest> reqs = {{.url = "http://127.0.0.1:8080/v1/completions",
//                                                     .body = R"({"prompt": "1+1=", "max_tokens": 4})"}};
//   std::vector<kaizen::remote::HttpResponse> res = http.post_all(reqs);   // res[i] answers reqs[i]
//
// References: libcurl's multi interface (curl_multi_perform / curl_multi_poll / curl_multi_info_read),
// RFC 9110 (status codes 408, 429, 5xx; Retry-After).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <curl/curl.h>

#include <kaizen/core/error.hpp>

namespace kaizen::remote {

/// How an HttpClient sends, waits and retries.
struct HttpOptions {
  int max_in_flight = 8;            ///< requests open at once (>= 1)
  double connect_timeout_s = 5.0;   ///< to establish a connection (> 0)
  double request_timeout_s = 300.0; ///< to receive a whole answer, connection included (> 0)
  int max_attempts = 4;             ///< per request, the first included (>= 1)
  double backoff_initial_s = 0.25;  ///< wait after the first failed attempt (>= 0)
  double backoff_max_s = 4.0;       ///< cap of one wait (>= backoff_initial_s)
  double retry_budget_s = 30.0;     ///< no attempt starts later than this after the call's first failure (>= 0)
};

/// One POST: the URL, the body and extra header lines ("Name: value"). Content-Type defaults to JSON.
struct HttpRequest {
  std::string url;
  std::string body;
  std::vector<std::string> headers;
};

/// The answer to one request: its status and body, and how many attempts it took.
struct HttpResponse {
  long status = 0;
  std::string body;
  int attempts = 0;
};

/// Throws kaizen::Error unless the options are usable.
inline void validate(const HttpOptions& o) {
  KAIZEN_CHECK(o.max_in_flight >= 1, "HttpOptions: max_in_flight must be >= 1, got ", o.max_in_flight);
  KAIZEN_CHECK(o.connect_timeout_s > 0, "HttpOptions: connect_timeout_s must be > 0, got ", o.connect_timeout_s);
  KAIZEN_CHECK(o.request_timeout_s > 0, "HttpOptions: request_timeout_s must be > 0, got ", o.request_timeout_s);
  KAIZEN_CHECK(o.max_attempts >= 1, "HttpOptions: max_attempts must be >= 1, got ", o.max_attempts);
  KAIZEN_CHECK(o.backoff_initial_s >= 0, "HttpOptions: backoff_initial_s must be >= 0, got ", o.backoff_initial_s);
  KAIZEN_CHECK(o.backoff_max_s >= o.backoff_initial_s, "HttpOptions: backoff_max_s (", o.backoff_max_s,
               ") must be >= backoff_initial_s (", o.backoff_initial_s, ")");
  KAIZEN_CHECK(o.retry_budget_s >= 0, "HttpOptions: retry_budget_s must be >= 0, got ", o.retry_budget_s);
}

/// Whether an HTTP status is worth another attempt (408, 429, 5xx).
[[nodiscard]] constexpr bool retryable_status(long status) noexcept {
  return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

namespace detail {

inline void curl_global() {
  static std::once_flag once;
  std::call_once(once, [] {
    const CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    KAIZEN_CHECK(rc == CURLE_OK, "HttpClient: curl_global_init failed: ", curl_easy_strerror(rc));
  });
}

struct EasyDeleter {
  void operator()(CURL* h) const noexcept { curl_easy_cleanup(h); }
};
struct MultiDeleter {
  void operator()(CURLM* m) const noexcept { curl_multi_cleanup(m); }
};
struct SlistDeleter {
  void operator()(curl_slist* s) const noexcept { curl_slist_free_all(s); }
};

inline std::size_t append_body(char* data, std::size_t size, std::size_t count, void* user) {
  static_cast<std::string*>(user)->append(data, size * count);
  return size * count;
}

// Retry-After: <seconds> (the HTTP-date form is ignored).
inline std::size_t read_header(char* data, std::size_t size, std::size_t count, void* user) {
  const std::string_view line(data, size * count);
  constexpr std::string_view key = "retry-after:";
  if (line.size() > key.size()) {
    bool match = true;
    for (std::size_t i = 0; i < key.size() && match; ++i) {
      const char c = line[i];
      match = (c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) == key[i];
    }
    if (match) {
      double seconds = 0;
      bool digits = false;
      for (char c : line.substr(key.size())) {
        if (c >= '0' && c <= '9') {
          seconds = seconds * 10 + (c - '0');
          digits = true;
        } else if (digits) {
          break;
        }
      }
      if (digits) *static_cast<double*>(user) = seconds;
    }
  }
  return size * count;
}

}  // namespace detail

/// Sends batches of POST requests concurrently (see the file comment for the rules). Not thread-safe:
/// one post_all at a time per client.
class HttpClient {
 public:
  explicit HttpClient(HttpOptions options = {}) : options_(options) {
    validate(options_);
    detail::curl_global();
  }

  [[nodiscard]] const HttpOptions& options() const noexcept { return options_; }

  /// Answers every request, res[i] for reqs[i]. Throws kaizen::Error when a request runs out of
  /// attempts or of retry budget (naming its URL, the attempts and the last failure).
  [[nodiscard]] std::vector<HttpResponse> post_all(std::span<const HttpRequest> requests) {
    using Clock = std::chrono::steady_clock;
    struct Waiting {
      std::size_t index;
      Clock::time_point not_before;
    };

    std::vector<HttpResponse> out(requests.size());
    std::vector<std::string> last_failure(requests.size());
    std::deque<Waiting> queue;
    for (std::size_t i = 0; i < requests.size(); ++i) queue.push_back({i, Clock::now()});
    std::unique_ptr<CURLM, detail::MultiDeleter> multi(curl_multi_init());
    KAIZEN_CHECK(multi != nullptr, "HttpClient::post_all: curl_multi_init failed");
    std::vector<std::unique_ptr<Slot>> open;  // handles attached to `multi`
    // Detach every open handle before `multi` is cleaned up (also on the way out by an exception).
    struct Detach {
      CURLM* m;
      std::vector<std::unique_ptr<Slot>>* slots;
      ~Detach() {
        for (auto& s : *slots) curl_multi_remove_handle(m, s->easy.get());
      }
    } detach{multi.get(), &open};

    std::optional<Clock::time_point> first_failure;
    std::size_t done = 0;
    const auto seconds = [](double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };

    while (done < requests.size()) {
      // Start what may start: in order, up to max_in_flight, only those whose wait is over.
      const auto now = Clock::now();
      for (auto it = queue.begin(); it != queue.end() && static_cast<int>(open.size()) < options_.max_in_flight;) {
        if (it->not_before > now) {
          ++it;
          continue;
        }
        open.push_back(start(requests[it->index], it->index));
        ++out[it->index].attempts;
        const CURLMcode mc = curl_multi_add_handle(multi.get(), open.back()->easy.get());
        KAIZEN_CHECK(mc == CURLM_OK, "HttpClient::post_all: curl_multi_add_handle failed: ", curl_multi_strerror(mc));
        it = queue.erase(it);
      }

      int running = 0;
      CURLMcode mc = curl_multi_perform(multi.get(), &running);
      KAIZEN_CHECK(mc == CURLM_OK, "HttpClient::post_all: curl_multi_perform failed: ", curl_multi_strerror(mc));
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi.get(), &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        const auto found = std::find_if(open.begin(), open.end(), [&](const auto& s) { return s->easy.get() == msg->easy_handle; });
        if (found == open.end()) continue;
        std::unique_ptr<Slot> slot = std::move(*found);
        open.erase(found);
        curl_multi_remove_handle(multi.get(), slot->easy.get());
        const std::size_t i = slot->index;
        const CURLcode rc = msg->data.result;
        long status = 0;
        if (rc == CURLE_OK) curl_easy_getinfo(slot->easy.get(), CURLINFO_RESPONSE_CODE, &status);
        if (rc == CURLE_OK && !retryable_status(status)) {
          out[i].status = status;
          out[i].body = std::move(slot->body);
          ++done;
          continue;
        }
        // A failed attempt: retry after the backoff, or give up.
        last_failure[i] = rc != CURLE_OK
                              ? std::string(curl_easy_strerror(rc)) + (slot->error[0] ? std::string(" (") + slot->error + ")" : "")
                              : "HTTP " + std::to_string(status) + ": " + slot->body.substr(0, 200);
        const auto t = Clock::now();
        if (!first_failure) first_failure = t;
        const int attempts = out[i].attempts;
        double wait = std::min(options_.backoff_max_s, options_.backoff_initial_s * std::pow(2.0, attempts - 1));
        if (slot->retry_after > wait) wait = slot->retry_after;
        const auto next = t + seconds(wait);
        const bool out_of_attempts = attempts >= options_.max_attempts;
        const bool out_of_budget = next - *first_failure > seconds(options_.retry_budget_s);
        if (out_of_attempts || out_of_budget) {
          fail("HttpClient: POST ", requests[i].url, " failed after ", attempts, " attempt", attempts == 1 ? "" : "s",
               out_of_attempts ? " (max_attempts reached)" : " (retry budget of " + std::to_string(options_.retry_budget_s) + " s spent)",
               "; last failure: ", last_failure[i]);
        }
        queue.push_back({i, next});
      }
      if (done == requests.size()) break;
      // Wait for network activity, or until the earliest queued request may start.
      int wait_ms = 100;
      if (!queue.empty() && static_cast<int>(open.size()) < options_.max_in_flight) {
        auto earliest = queue.front().not_before;
        for (const auto& w : queue) earliest = std::min(earliest, w.not_before);
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(earliest - Clock::now()).count();
        wait_ms = static_cast<int>(std::clamp<long long>(ms, 0, 100));
      }
      if (wait_ms > 0) {
        mc = curl_multi_poll(multi.get(), nullptr, 0, wait_ms, nullptr);
        KAIZEN_CHECK(mc == CURLM_OK, "HttpClient::post_all: curl_multi_poll failed: ", curl_multi_strerror(mc));
      }
    }
    return out;
  }

  /// One request (see post_all).
  [[nodiscard]] HttpResponse post(const HttpRequest& request) { return post_all(std::span(&request, 1)).front(); }

 private:
  struct Slot {
    std::size_t index = 0;
    std::unique_ptr<CURL, detail::EasyDeleter> easy;
    std::unique_ptr<curl_slist, detail::SlistDeleter> headers;
    std::string body;
    double retry_after = -1;
    char error[CURL_ERROR_SIZE] = {};
  };

  // A fresh easy handle for one attempt of request `r`.
  [[nodiscard]] std::unique_ptr<Slot> start(const HttpRequest& r, std::size_t index) const {
    auto slot = std::make_unique<Slot>();
    slot->index = index;
    slot->easy.reset(curl_easy_init());
    KAIZEN_CHECK(slot->easy != nullptr, "HttpClient: curl_easy_init failed");
    CURL* h = slot->easy.get();
    curl_slist* list = curl_slist_append(nullptr, "Content-Type: application/json");
    for (const auto& line : r.headers) list = curl_slist_append(list, line.c_str());
    list = curl_slist_append(list, "Expect:");  // no 100-continue round trip for large bodies
    slot->headers.reset(list);
    const auto ms = [](double s) { return static_cast<long>(std::ceil(s * 1000.0)); };
    curl_easy_setopt(h, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, r.body.data());
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.body.size()));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &detail::append_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &slot->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &detail::read_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &slot->retry_after);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, slot->error);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms(options_.connect_timeout_s));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms(options_.request_timeout_s));
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");  // servers are named directly: ignore http_proxy variables
    return slot;
  }

  HttpOptions options_;
};

}  // namespace kaizen::remote
