// kaizen/reward/code_sandbox.hpp - run an untrusted Python program in a sandbox and collect its
// exit status and (capped) output. POSIX only (Linux: bubblewrap and namespaces).
//
// Sandbox rules (run_python):
//   - bubblewrap (`options.bwrap`, default /usr/bin/bwrap) with every namespace unshared (user, pid,
//     network, ipc, uts, cgroup) and --disable-userns: no network at all (a fresh network namespace
//     has only its own loopback: the host's 127.0.0.1 listeners are out of reach), its own process
//     tree (/proc shows only the sandbox), --die-with-parent.
//   - file system: `ro_binds` (default /usr) bound read-only, /bin /lib /lib64 /sbin recreated as the
//     host has them (symlinks into /usr, or read-only binds), a fresh /dev and /proc, the program's
//     own directory at /sandbox read-only (the working directory), and a tmpfs of `tmp_bytes` at
//     /tmp, the only writable place (HOME = TMPDIR = /tmp); the sandbox's root is remounted
//     read-only last (bwrap builds it on a tmpfs, which would otherwise take writes without bound). Nothing else of the host exists inside:
//     no /etc, no /root, no /home, no host /tmp.
//   - environment cleared; PATH=/usr/bin:/bin, HOME, TMPDIR, LANG=C.UTF-8; `python -I -B` (isolated
//     mode: no user site, no PYTHON* variables).
//   - rlimits set before bwrap starts, inherited by everything inside: RLIMIT_CPU `cpu_seconds`
//     (rounded up), RLIMIT_AS `memory_bytes` per process, RLIMIT_FSIZE `file_bytes`, RLIMIT_NPROC,
//     RLIMIT_NOFILE `max_open_files`, RLIMIT_CORE 0.
//   - RLIMIT_NPROC counts every process of a (real) user id, and the kernel does not enforce it for
//     root: as root, each run therefore switches to its own unprivileged uid/gid (uid_base + k,
//     k cycling over uid_count values, so concurrent runs do not share a budget) before starting
//     bwrap, with RLIMIT_NPROC = max_processes + 3 (bwrap's monitor and init processes). As a
//     non-root user the limit is the user's current task count + max_processes + 3 (approximate:
//     other processes of that user share it).
//   - wall clock: the runner polls the pipes; at `wall_seconds` (or when stdout or stderr passes
//     `output_bytes`) it SIGKILLs the run's process group and bwrap; bwrap's pid namespace ends with
//     its init, which kills every process left inside (fork bombs included).
//   - bwrap missing: run_python throws kaizen::Error, unless `allow_unsandboxed` is set, in which
//     case the program runs with the rlimits and the wall-clock kill only (RunResult::sandboxed
//     false). There is no silent fallback. check_sandbox() runs a probe program and throws with
//     bwrap's own message when the sandbox cannot start (e.g. user namespaces disabled).
//
// References: bubblewrap(1); setrlimit(2); user_namespaces(7) (the per-uid RLIMIT_NPROC rule).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <kaizen/core/error.hpp>

namespace kaizen::reward {

struct SandboxOptions {
  std::string bwrap = "/usr/bin/bwrap";
  std::string python = "/usr/bin/python3";        ///< path inside the sandbox (under a ro bind)
  std::vector<std::string> ro_binds{"/usr"};      ///< host paths bound read-only at the same place
  double wall_seconds = 10.0;                     ///< > 0
  double cpu_seconds = 10.0;                      ///< > 0; RLIMIT_CPU is its ceiling
  std::uint64_t memory_bytes = 512ULL << 20;      ///< RLIMIT_AS per process; > 0
  std::uint64_t file_bytes = 16ULL << 20;         ///< RLIMIT_FSIZE; > 0
  std::uint64_t tmp_bytes = 64ULL << 20;          ///< size of the writable /tmp; > 0
  std::size_t output_bytes = 1 << 20;             ///< cap of stdout and of stderr each; > 0
  std::size_t max_processes = 16;                 ///< processes/threads the program may add; > 0
  std::size_t max_open_files = 256;               ///< RLIMIT_NOFILE; > 0
  std::uint32_t uid_base = 61000;                 ///< as root: first uid of the per-run pool
  std::uint32_t uid_count = 1000;                 ///< as root: size of the pool; > 0
  std::string host_tmp = "/tmp";                  ///< where the program's directory is created
  bool allow_unsandboxed = false;                 ///< explicit opt-in to run without bwrap
};

inline void validate(const SandboxOptions& o) {
  KAIZEN_CHECK(std::isfinite(o.wall_seconds) && o.wall_seconds > 0.0,
               "SandboxOptions: wall_seconds must be finite and > 0, got ", o.wall_seconds);
  KAIZEN_CHECK(std::isfinite(o.cpu_seconds) && o.cpu_seconds > 0.0,
               "SandboxOptions: cpu_seconds must be finite and > 0, got ", o.cpu_seconds);
  KAIZEN_CHECK(o.memory_bytes > 0, "SandboxOptions: memory_bytes must be > 0");
  KAIZEN_CHECK(o.file_bytes > 0, "SandboxOptions: file_bytes must be > 0");
  KAIZEN_CHECK(o.tmp_bytes > 0, "SandboxOptions: tmp_bytes must be > 0");
  KAIZEN_CHECK(o.output_bytes > 0, "SandboxOptions: output_bytes must be > 0");
  KAIZEN_CHECK(o.max_processes > 0, "SandboxOptions: max_processes must be > 0");
  KAIZEN_CHECK(o.max_open_files > 0, "SandboxOptions: max_open_files must be > 0");
  KAIZEN_CHECK(o.uid_count > 0, "SandboxOptions: uid_count must be > 0");
  KAIZEN_CHECK(!o.python.empty(), "SandboxOptions: python path is empty");
}

/// What one run did.
struct RunResult {
  int exit_code = -1;          ///< exit status, -1 when killed by a signal
  int signal = 0;              ///< the signal that ended it, 0 when it exited
  bool timed_out = false;      ///< killed at wall_seconds
  bool output_limit = false;   ///< killed for output past output_bytes
  bool sandboxed = true;       ///< false only with allow_unsandboxed and no bwrap
  std::string stdout_text;     ///< at most output_bytes
  std::string stderr_text;     ///< at most output_bytes
  double seconds = 0.0;        ///< wall time

  [[nodiscard]] bool clean_exit() const noexcept {
    return exit_code == 0 && signal == 0 && !timed_out && !output_limit;
  }
};

namespace detail {

[[nodiscard]] inline bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// Tasks (threads) owned by `uid`, from /proc (approximate: a snapshot).
[[nodiscard]] inline std::size_t count_user_tasks(uid_t uid) {
  std::size_t tasks = 0;
  DIR* dir = ::opendir("/proc");
  if (dir == nullptr) return 0;
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    const std::string base = std::string("/proc/") + e->d_name;
    struct stat st {};
    if (::stat(base.c_str(), &st) != 0 || st.st_uid != uid) continue;
    std::ifstream status(base + "/status");
    std::string line;
    std::size_t threads = 1;
    while (std::getline(status, line))
      if (line.rfind("Threads:", 0) == 0) threads = static_cast<std::size_t>(std::strtoull(line.c_str() + 8, nullptr, 10));
    tasks += threads;
  }
  ::closedir(dir);
  return tasks;
}

// A temporary directory removed on destruction (the files it lists, then the directory).
class TempDir {
 public:
  explicit TempDir(const std::string& parent) {
    std::string templ = parent + "/kaizen-sandbox-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    KAIZEN_CHECK(::mkdtemp(buf.data()) != nullptr, "run_python: cannot create a directory under '", parent,
                 "': ", std::strerror(errno));
    path_ = buf.data();
    ::chmod(path_.c_str(), 0755);  // readable by the sandbox's unprivileged uid
  }
  ~TempDir() {
    for (const std::string& f : files_) ::unlink(f.c_str());
    ::rmdir(path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  [[nodiscard]] const std::string& path() const noexcept { return path_; }

  std::string write(const std::string& name, std::string_view content) {
    const std::string file = path_ + "/" + name;
    files_.push_back(file);
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    KAIZEN_CHECK(fd >= 0, "run_python: cannot write '", file, "': ", std::strerror(errno));
    std::size_t done = 0;
    while (done < content.size()) {
      const ssize_t w = ::write(fd, content.data() + done, content.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        ::close(fd);
        fail("run_python: cannot write '", file, "': ", std::strerror(errno));
      }
      done += static_cast<std::size_t>(w);
    }
    ::close(fd);
    return file;
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

inline std::atomic<std::uint32_t>& sandbox_uid_counter() {
  static std::atomic<std::uint32_t> counter{0};
  return counter;
}

inline void add_system_dir(std::vector<std::string>& args, const char* dir) {
  struct stat st {};
  if (::lstat(dir, &st) != 0) return;
  if (S_ISLNK(st.st_mode)) {
    char target[4096];
    const ssize_t n = ::readlink(dir, target, sizeof target - 1);
    if (n <= 0) return;
    target[n] = '\0';
    args.insert(args.end(), {"--symlink", target, dir});
  } else if (S_ISDIR(st.st_mode)) {
    args.insert(args.end(), {"--ro-bind", dir, dir});
  }
}

}  // namespace detail

/// Runs `program` with python in the sandbox, stdin from `stdin_text` (see the header comment).
[[nodiscard]] inline RunResult run_python(std::string_view program, std::string_view stdin_text,
                                          const SandboxOptions& options = {}) {
  validate(options);
  const bool have_bwrap = detail::executable(options.bwrap);
  KAIZEN_CHECK(have_bwrap || options.allow_unsandboxed, "run_python: bubblewrap not found or not executable at '",
               options.bwrap,
               "'; install it (Debian: apt-get install bubblewrap) or set SandboxOptions::allow_unsandboxed to run "
               "untrusted code with rlimits only");
  detail::TempDir dir(options.host_tmp);
  dir.write("main.py", program);
  const std::string input = dir.write("stdin.txt", stdin_text);

  std::vector<std::string> args;
  const bool root = ::geteuid() == 0;
  const std::uint32_t uid = options.uid_base + detail::sandbox_uid_counter().fetch_add(1) % options.uid_count;
  if (have_bwrap) {
    args = {options.bwrap, "--unshare-all", "--unshare-user", "--disable-userns", "--die-with-parent"};
    for (const std::string& b : options.ro_binds) args.insert(args.end(), {"--ro-bind", b, b});
    for (const char* d : {"/bin", "/lib", "/lib64", "/lib32", "/sbin"}) detail::add_system_dir(args, d);
    args.insert(args.end(), {"--proc", "/proc", "--dev", "/dev", "--size", std::to_string(options.tmp_bytes),
                             "--tmpfs", "/tmp", "--ro-bind", dir.path(), "/sandbox", "--chdir", "/sandbox",
                             "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
                             "--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8", "--remount-ro", "/", options.python, "-I",
                             "-B", "main.py"});
  } else {
    args = {options.python, "-I", "-B", dir.path() + "/main.py"};
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string env_path = "PATH=/usr/bin:/bin";
  std::string env_home = have_bwrap ? std::string("HOME=/") : "HOME=" + dir.path();
  std::string env_lang = "LANG=C.UTF-8";
  char* envp[] = {env_path.data(), env_home.data(), env_lang.data(), nullptr};
  const std::string workdir = dir.path();

  const std::size_t extra = 3;  // bwrap's monitor + init + the program itself
  const std::size_t nproc = root ? options.max_processes + extra
                                 : detail::count_user_tasks(::geteuid()) + options.max_processes + extra;
  const auto cpu = static_cast<rlim_t>(std::ceil(options.cpu_seconds));

  const int in_fd = ::open(input.c_str(), O_RDONLY | O_CLOEXEC);
  KAIZEN_CHECK(in_fd >= 0, "run_python: cannot open '", input, "': ", std::strerror(errno));
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in_fd);
    fail("run_python: pipe2 failed: ", std::strerror(errno));
  }
  if (::pipe2(err, O_CLOEXEC) != 0) {
    ::close(in_fd);
    ::close(out[0]);
    ::close(out[1]);
    fail("run_python: pipe2 failed: ", std::strerror(errno));
  }

  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    for (int fd : {in_fd, out[0], out[1], err[0], err[1]}) ::close(fd);
    fail("run_python: fork failed: ", std::strerror(e));
  }
  if (pid == 0) {
    // child: async-signal-safe calls only
    ::setpgid(0, 0);
    const auto lim = [](int resource, rlim_t soft, rlim_t hard) {
      struct rlimit r {soft, hard};
      if (::setrlimit(resource, &r) != 0) ::_exit(126);
    };
    lim(RLIMIT_CPU, cpu, cpu + 1);
    lim(RLIMIT_AS, static_cast<rlim_t>(options.memory_bytes), static_cast<rlim_t>(options.memory_bytes));
    lim(RLIMIT_FSIZE, static_cast<rlim_t>(options.file_bytes), static_cast<rlim_t>(options.file_bytes));
    lim(RLIMIT_NOFILE, static_cast<rlim_t>(options.max_open_files), static_cast<rlim_t>(options.max_open_files));
    lim(RLIMIT_CORE, 0, 0);
    if (::dup2(in_fd, 0) < 0 || ::dup2(out[1], 1) < 0 || ::dup2(err[1], 2) < 0) ::_exit(126);
    ::close_range(3, ~0U, 0);
    if (root) {
      const gid_t g = static_cast<gid_t>(uid);
      if (::setgroups(0, nullptr) != 0 || ::setgid(g) != 0 || ::setuid(static_cast<uid_t>(uid)) != 0) ::_exit(126);
    }
    lim(RLIMIT_NPROC, static_cast<rlim_t>(nproc), static_cast<rlim_t>(nproc));
    if (!have_bwrap && ::chdir(workdir.c_str()) != 0) ::_exit(126);
    ::execve(argv[0], argv.data(), envp);
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also from the parent, so the group exists before any kill
  ::close(in_fd);
  ::close(out[1]);
  ::close(err[1]);

  RunResult result;
  result.sandboxed = have_bwrap;
  const auto deadline = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                 std::chrono::duration<double>(options.wall_seconds));
  const auto kill_all = [&] {
    ::kill(-pid, SIGKILL);
    ::kill(pid, SIGKILL);
  };
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.stdout_text, &result.stderr_text};
  bool open_fd[2] = {true, true};
  bool killed = false;
  char buf[65536];
  int status = 0;
  bool reaped = false;
  while (!killed) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      result.timed_out = true;
      kill_all();
      killed = true;
      break;
    }
    if (!open_fd[0] && !open_fd[1]) {
      // output closed: wait for the exit, still bounded by the deadline
      const pid_t w = ::waitpid(pid, &status, WNOHANG);
      if (w == pid) {
        reaped = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      continue;
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    const int rc = ::poll(fds, 2, static_cast<int>(std::min<long long>(left + 1, 100)));
    if (rc < 0 && errno != EINTR) {
      kill_all();
      killed = true;
      break;
    }
    for (int k = 0; k < 2; ++k) {
      if (!open_fd[k] || (fds[k].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      const ssize_t n = ::read(fds[k].fd, buf, sizeof buf);
      if (n > 0) {
        const std::size_t room = options.output_bytes - std::min(options.output_bytes, sinks[k]->size());
        sinks[k]->append(buf, std::min(room, static_cast<std::size_t>(n)));
        if (static_cast<std::size_t>(n) > room) {
          result.output_limit = true;
          kill_all();
          killed = true;
        }
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        open_fd[k] = false;
        fds[k].fd = -1;
      }
    }
  }
  if (!reaped) {
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  ::close(out[0]);
  ::close(err[0]);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  if (killed) {
    result.exit_code = -1;
    if (result.signal == 0) result.signal = SIGKILL;
  }
  return result;
}

/// Throws kaizen::Error (with bwrap's message) unless a trivial program runs in the sandbox.
inline void check_sandbox(const SandboxOptions& options = {}) {
  validate(options);
  KAIZEN_CHECK(detail::executable(options.bwrap) || options.allow_unsandboxed,
               "check_sandbox: bubblewrap not found or not executable at '", options.bwrap,
               "'; install it (Debian: apt-get install bubblewrap) or set SandboxOptions::allow_unsandboxed");
  const RunResult r = run_python("print('kaizen-sandbox-ok')", "", options);
  KAIZEN_CHECK(r.clean_exit() && r.stdout_text == "kaizen-sandbox-ok\n",
               "check_sandbox: the probe program did not run in the sandbox (exit ", r.exit_code, ", signal ",
               r.signal, ", timed out ", r.timed_out, "): ", r.stderr_text);
}

}  // namespace kaizen::reward
