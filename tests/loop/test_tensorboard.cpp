// TensorBoardWriter (loop/tensorboard.hpp): event files read back by the tensorboard package's own reader
// (tests/loop/read_tensorboard.py run with KAIZEN_PYTHON; KAIZEN_SKIP when tensorboard is missing), the CRC32C
// against the standard check value, and the error paths.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <system_error>

#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <kaizen/loop/tensorboard.hpp>

namespace fs = std::filesystem;
using kaizen::loop::TensorBoardWriter;

namespace {

// Torch-free binary: std::filesystem::remove_all is safe here (it crashes only under the torch wheel).
void remove_tree(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
}

fs::path fresh_dir(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("kaizen_tb_" + name + "_" + std::to_string(::getpid()));
  remove_tree(dir);
  return dir;
}

// The tensorboard package's reading of `dir`, or nullopt (after KAIZEN_SKIP) when it is not installed.
std::optional<nlohmann::json> read_back(const fs::path& dir) {
  const std::string python = KAIZEN_TB_PYTHON;
  if (python.empty() || !fs::exists(python)) {
    std::cout << "KAIZEN_SKIP: no Python interpreter (KAIZEN_PYTHON)\n";
    return std::nullopt;
  }
  const fs::path out = dir.string() + ".json";
  const std::string cmd = "'" + python + "' '" KAIZEN_TB_READER "' '" + dir.string() + "' > '" + out.string() + "'";
  const int status = std::system(cmd.c_str());
  const int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (rc == 77) {
    std::cout << "KAIZEN_SKIP: the tensorboard package is not installed in KAIZEN_PYTHON\n";
    return std::nullopt;
  }
  REQUIRE(rc == 0);
  std::FILE* f = std::fopen(out.c_str(), "rb");
  REQUIRE(f != nullptr);
  std::string text;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  std::fclose(f);
  fs::remove(out);
  return nlohmann::json::parse(text);
}

}  // namespace

TEST_CASE("tensorboard: CRC32C and its mask match the standard values", "[tensorboard]") {
  namespace d = kaizen::loop::tensorboard_detail;
  CHECK(d::crc32c("123456789") == 0xE3069283U);  // the CRC-32C check value
  CHECK(d::crc32c("") == 0U);
  const std::uint32_t c = 0xE3069283U;
  CHECK(d::masked_crc32c("123456789") == ((c >> 15U) | (c << 17U)) + 0xa282ead8U);
  // Varints: 300 = 0xAC 0x02 (the protobuf guide's example); -1 as int64 takes 10 bytes.
  std::string v;
  d::put_varint(v, 300);
  CHECK(v == std::string("\xAC\x02", 2));
  v.clear();
  d::put_varint(v, static_cast<std::uint64_t>(std::int64_t{-1}));
  CHECK(v.size() == 10);
}

TEST_CASE("tensorboard: scalars are read back by tensorboard with their tags, steps and values", "[tensorboard]") {
  const fs::path dir = fresh_dir("scalars");
  fs::path file;
  {
    TensorBoardWriter tb(dir);
    file = tb.file();
    CHECK(file.filename().string().starts_with("events.out.tfevents."));
    for (int step = 0; step < 50; ++step) tb.add_scalar("loss", 1.0 / (step + 1), step, 1000.0 + step);
    tb.add_scalar("reward/mean", -0.25, 7);
    tb.add_scalar("big_step", 3.5, std::int64_t{1} << 40);
    tb({{"event", "train"}, {"step", 3}, {"loss", 0.5}, {"kl", 1e-3}, {"lr", 2e-6}, {"timing", {{"sample_s", 1.25}}},
        {"note", "text is skipped"}, {"done", true}, {"list", {1, 2}}});
  }
  const auto got = read_back(dir);
  if (!got) return;
  CHECK(got->at("file_version") == "brain.Event:2");
  const auto& s = got->at("scalars");
  const auto& loss = s.at("loss");
  REQUIRE(loss.size() == 50);
  for (int step = 0; step < 50; ++step) {
    CHECK(loss[step][0] == step);
    CHECK(loss[step][1].get<double>() == Approx(static_cast<float>(1.0 / (step + 1))).epsilon(0));  // float exactly
    CHECK(loss[step][2].get<double>() == 1000.0 + step);
  }
  CHECK(s.at("reward/mean")[0][0] == 7);
  CHECK(s.at("reward/mean")[0][1] == -0.25);
  CHECK(s.at("big_step")[0][0] == (std::int64_t{1} << 40));
  CHECK(s.at("train/loss")[0][0] == 3);
  CHECK(s.at("train/loss")[0][1] == 0.5);
  CHECK(s.at("train/kl")[0][1].get<double>() == Approx(1e-3));
  CHECK(s.at("train/lr")[0][1].get<double>() == Approx(2e-6));
  CHECK(s.at("train/timing/sample_s")[0][1] == 1.25);
  CHECK(!s.contains("train/note"));
  CHECK(!s.contains("train/done"));
  CHECK(!s.contains("train/list"));
  CHECK(s.size() == 7);
  remove_tree(dir);
}

TEST_CASE("tensorboard: bad folders and records are refused", "[tensorboard]") {
  const fs::path dir = fresh_dir("bad");
  fs::create_directories(dir);
  { std::FILE* f = std::fopen((dir / "plain_file").c_str(), "w"); std::fclose(f); }
  REQUIRE_THROWS_WITH(TensorBoardWriter(dir / "plain_file"),
                      Catch::Contains("TensorBoardWriter: cannot create the folder '" + (dir / "plain_file").string()));
  TensorBoardWriter tb(dir / "run");
  REQUIRE_THROWS_WITH(tb({{"event", "train"}, {"loss", 1.0}}), Catch::Contains("needs an integer \"step\""));
  REQUIRE_THROWS_WITH(tb({{"step", 1.5}}), Catch::Contains("needs an integer \"step\""));
  REQUIRE_THROWS_WITH(tb.add_scalar("", 1.0, 4), Catch::Contains("the tag is empty (step 4)"));
  // Two writers in one folder get two files.
  TensorBoardWriter other(dir / "run");
  CHECK(other.file() != tb.file());
  remove_tree(dir);
}
