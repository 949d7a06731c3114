// Multi-process test support: a test program starts copies of itself as the ranks of a job on 127.0.0.1.
//
// The parent picks a free port (binds port 0, reads it, closes), then starts `world` children running one hidden
// Catch2 test case (`[.worker]`) with RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR=127.0.0.1, MASTER_PORT and the
// scenario's own variables; each child's stdout+stderr go to <dir>/rank<r>.log. wait_all() waits for every
// child up to a deadline and kills (SIGKILL) the ones still running, so no test hangs.
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace kaizen_test {

/// A TCP port on 127.0.0.1 that was free a moment ago.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct ChildResult {
  int rank = 0;
  int status = -1;      ///< exit status, or 128 + signal, or -1 when killed at the deadline
  bool timed_out = false;
  double seconds = 0.0;  ///< from the start of all children until this one ended
  std::string log;
};

/// A job of `world` copies of this program running the hidden test case `worker_test`.
class Job {
 public:
  Job(std::string worker_test, int world, std::filesystem::path dir, std::map<std::string, std::string> extra_env = {})
      : dir_(std::move(dir)), port_(free_port()), start_(std::chrono::steady_clock::now()) {
    std::filesystem::create_directories(dir_);
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    for (int r = 0; r < world; ++r) {
      std::map<std::string, std::string> env;
      for (char** e = environ; *e != nullptr; ++e) {
        const std::string kv = *e;
        const auto eq = kv.find('=');
        if (eq != std::string::npos) env[kv.substr(0, eq)] = kv.substr(eq + 1);
      }
      env["RANK"] = std::to_string(r);
      env["WORLD_SIZE"] = std::to_string(world);
      env["LOCAL_RANK"] = std::to_string(r);
      env["MASTER_ADDR"] = "127.0.0.1";
      env["MASTER_PORT"] = std::to_string(port_);
      env["KAIZEN_TEST_DIR"] = dir_.string();
      for (const auto& [k, v] : extra_env) env[k] = v;
      std::vector<std::string> env_strings;
      for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
      std::vector<char*> envp;
      for (auto& s : env_strings) envp.push_back(s.data());
      envp.push_back(nullptr);
      // "-w NoTests": a worker name that matches no test case fails instead of passing with nothing run.
      std::string arg0 = self, arg1 = worker_test, arg2 = "-w", arg3 = "NoTests";
      std::vector<char*> argv{arg0.data(), arg1.data(), arg2.data(), arg3.data(), nullptr};
      posix_spawn_file_actions_t actions;
      posix_spawn_file_actions_init(&actions);
      const std::string log = (dir_ / ("rank" + std::to_string(r) + ".log")).string();
      posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      posix_spawn_file_actions_adddup2(&actions, 1, 2);
      pid_t pid = 0;
      const int rc = posix_spawn(&pid, self.c_str(), &actions, nullptr, argv.data(), envp.data());
      posix_spawn_file_actions_destroy(&actions);
      REQUIRE(rc == 0);
      pids_.push_back(pid);
    }
  }
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;
  ~Job() {
    for (pid_t pid : pids_)
      if (pid > 0) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
  }

  [[nodiscard]] int port() const noexcept { return port_; }

  /// Waits for every child until `deadline_seconds` after the start, then kills the rest.
  std::vector<ChildResult> wait_all(double deadline_seconds) {
    std::vector<ChildResult> out(pids_.size());
    std::size_t left = pids_.size();
    while (left > 0) {
      const double now = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      for (std::size_t r = 0; r < pids_.size(); ++r) {
        if (pids_[r] <= 0) continue;
        int status = 0;
        const pid_t got = ::waitpid(pids_[r], &status, WNOHANG);
        if (got == pids_[r] || now > deadline_seconds) {
          if (got != pids_[r]) {
            ::kill(pids_[r], SIGKILL);
            ::waitpid(pids_[r], nullptr, 0);
            out[r].timed_out = true;
            out[r].status = -1;
          } else {
            out[r].status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
          }
          out[r].rank = static_cast<int>(r);
          out[r].seconds = now;
          pids_[r] = 0;
          --left;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (std::size_t r = 0; r < out.size(); ++r) out[r].log = read_file(dir_ / ("rank" + std::to_string(r) + ".log"));
    return out;
  }

 private:
  std::filesystem::path dir_;
  int port_;
  std::chrono::steady_clock::time_point start_;
  std::vector<pid_t> pids_;
};

/// Integer value of an environment variable (the workers' parameters).
inline int env_int(const char* name, int fallback = 0) {
  const char* v = std::getenv(name);
  return v == nullptr ? fallback : std::atoi(v);
}

}  // namespace kaizen_test
