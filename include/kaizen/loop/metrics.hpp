// kaizen/loop/metrics.hpp - how loops report: a callback receiving one JSON object per event
// (training step, evaluation, ...). Library code never prints; JsonLinesWriter is the default sink.
#pragma once

#include <functional>
#include <ostream>

#include <nlohmann/json.hpp>

namespace kaizen::loop {

/// Receives one metrics record (a JSON object with at least "event" and "step").
using MetricsCallback = std::function<void(const nlohmann::json&)>;

/// Writes each record as one line of JSON (JSON Lines) to a stream it does not own, flushing after each.
class JsonLinesWriter {
 public:
  explicit JsonLinesWriter(std::ostream& out) : out_(&out) {}
  void operator()(const nlohmann::json& record) const { *out_ << record.dump() << '\n' << std::flush; }

 private:
  std::ostream* out_;
};

}  // namespace kaizen::loop
