// robot: one robot of a kdcc fleet. It receives its own observation over UDP (127.0.0.1), steps
// its own agent with kdcc_agent_step and replies with the action; nothing from other agents.
//
// Usage: robot_<role> --agent I [--port P] [--lib-dir DIR] [--idle-timeout S]
//              [--ignore-every K] [--sleep-every K --sleep-ms M] [--die-after N]
//   --port P          UDP port on 127.0.0.1 (0, the default: any free one). Once the agent is
//                     created and the port bound, prints "ready PORT" on stdout.
//   --lib-dir DIR     the bundle's lib/<device> (default: the one the build was configured with).
//   --idle-timeout S  exit when nothing arrives for S seconds (default 60), so that a robot whose
//                     simulator died does not linger; a BYE datagram ends it at once.
// Fault drills (README.md, "Faults"): count STEP requests from 1 and
//   --ignore-every K  drop every K-th unanswered and unstepped (a lost packet);
//   --sleep-every K   answer every K-th only after sleeping --sleep-ms M (a late packet: the
//                     agent has stepped, but the simulator applies its fallback);
//   --die-after N     answer N, then die by SIGKILL on the next (a robot that crashes mid-episode).
//
// The agent starts from its reset state when a request has the RESET flag (an episode's first
// step) or belongs to an episode other than the last one seen (it missed that first step). A
// restarted robot is a fresh agent: it rejoins at its reset state. Wire format: README.md.
#include <kdcc_agent.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire format is little-endian, as is this host");

namespace {

constexpr char kMagic[4] = {'K', 'D', 'F', 'L'};
constexpr uint8_t kVersion = 1;
constexpr uint8_t kStep = 1, kPing = 2, kBye = 3, kStepReply = 0x81, kPong = 0x82;
constexpr uint8_t kReset = 0x01, kError = 0x02;
constexpr size_t kHeaderSize = 20;

// The 20-byte header (wire.py's `<4sBBBBHHII`), fields after the magic and version.
struct Header {
  uint8_t kind, flags;
  uint16_t agent, count;
  uint32_t episode, step;
};

bool parse(const uint8_t* buf, size_t len, Header* h) {
  if (len < kHeaderSize || std::memcmp(buf, kMagic, 4) != 0 || buf[4] != kVersion) return false;
  h->kind = buf[5];
  h->flags = buf[6];
  std::memcpy(&h->agent, buf + 8, 2);
  std::memcpy(&h->count, buf + 10, 2);
  std::memcpy(&h->episode, buf + 12, 4);
  std::memcpy(&h->step, buf + 16, 4);
  return true;
}

// A reply echoing the request's agent, episode and step; a STEP_REPLY also carries the action.
std::vector<uint8_t> reply(const Header& req, uint8_t kind, uint8_t flags, const int64_t* action) {
  std::vector<uint8_t> out(kHeaderSize + (action ? 8 : 0), 0);
  std::memcpy(out.data(), kMagic, 4);
  out[4] = kVersion;
  out[5] = kind;
  out[6] = flags;
  const uint16_t count = action ? 1 : 0;
  std::memcpy(out.data() + 8, &req.agent, 2);
  std::memcpy(out.data() + 10, &count, 2);
  std::memcpy(out.data() + 12, &req.episode, 4);
  std::memcpy(out.data() + 16, &req.step, 4);
  if (action) std::memcpy(out.data() + kHeaderSize, action, 8);
  return out;
}

struct Options {
  int agent = -1, port = 0;
  std::string lib_dir;
  double idle_timeout_s = 60.0;
  long ignore_every = 0, sleep_every = 0, sleep_ms = 0, die_after = -1;
};

bool parse_options(int argc, char** argv, Options* o) {
#ifdef KDCC_AGENT_LIB_DIR  // the bundle's lib/<device>, from its CMake target
  o->lib_dir = KDCC_AGENT_LIB_DIR;
#endif
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i];
    const char* value = argv[i + 1];
    if (key == "--agent") o->agent = std::atoi(value);
    else if (key == "--port") o->port = std::atoi(value);
    else if (key == "--lib-dir") o->lib_dir = value;
    else if (key == "--idle-timeout") o->idle_timeout_s = std::atof(value);
    else if (key == "--ignore-every") o->ignore_every = std::atol(value);
    else if (key == "--sleep-every") o->sleep_every = std::atol(value);
    else if (key == "--sleep-ms") o->sleep_ms = std::atol(value);
    else if (key == "--die-after") o->die_after = std::atol(value);
    else return false;
  }
  return argc % 2 == 1 && o->agent >= 0 && o->port >= 0 && o->port < 65536 && !o->lib_dir.empty() &&
         o->idle_timeout_s > 0 && o->ignore_every >= 0 && o->sleep_every >= 0 && o->sleep_ms >= 0;
}

// A UDP socket bound to 127.0.0.1:port whose receive waits at most timeout_s; -1 after saying why.
int open_socket(int port, double timeout_s, int* bound_port) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{static_cast<time_t>(timeout_s), static_cast<suseconds_t>((timeout_s - static_cast<long>(timeout_s)) * 1e6)};
  socklen_t len = sizeof addr;
  if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    std::fprintf(stderr, "robot: cannot bind 127.0.0.1:%d: %s\n", port, std::strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  *bound_port = ntohs(addr.sin_port);
  return fd;
}

// Serves requests until BYE or the idle timeout (0), or a socket error (1).
int serve(int fd, kdcc_agent* agent, const Options& o) {
  const int obs_size = kdcc_agent_obs_size(o.agent);
  std::vector<uint8_t> buf(65536);
  std::vector<float> obs(static_cast<size_t>(obs_size));
  long requests = 0;
  bool seen_episode = false;
  uint32_t episode = 0;
  for (;;) {
    sockaddr_in from{};
    socklen_t from_len = sizeof from;
    const ssize_t n = recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      std::fprintf(stderr, "robot %d: nothing for %g s, exiting\n", o.agent, o.idle_timeout_s);
      return 0;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "robot %d: recvfrom: %s\n", o.agent, std::strerror(errno));
      return 1;
    }
    Header h{};
    if (!parse(buf.data(), static_cast<size_t>(n), &h) || h.agent != o.agent) continue;  // not for this robot
    std::vector<uint8_t> out;
    if (h.kind == kBye) return 0;
    if (h.kind == kPing) {
      out = reply(h, kPong, 0, nullptr);
    } else if (h.kind == kStep) {
      ++requests;
      if (o.die_after >= 0 && requests > o.die_after) std::raise(SIGKILL);
      if (o.ignore_every > 0 && requests % o.ignore_every == 0) continue;
      if (o.sleep_every > 0 && requests % o.sleep_every == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(o.sleep_ms));
      int64_t action = -1;
      int rc = -1;
      if (h.count != obs_size || static_cast<size_t>(n) != kHeaderSize + 4 * static_cast<size_t>(obs_size)) {
        std::fprintf(stderr, "robot %d: episode %u step %u: %u observation floats in %zd bytes, expected %d\n",
                     o.agent, h.episode, h.step, h.count, n, obs_size);
      } else {
        std::memcpy(obs.data(), buf.data() + kHeaderSize, obs.size() * sizeof(float));
        const bool new_episode = (h.flags & kReset) || !seen_episode || h.episode != episode;
        seen_episode = true;
        episode = h.episode;
        rc = new_episode ? kdcc_agent_reset(agent) : 0;
        if (rc == 0) rc = kdcc_agent_step(agent, obs.data(), &action);
        if (rc != 0) std::fprintf(stderr, "robot %d: %s\n", o.agent, kdcc_agent_last_error());
      }
      out = reply(h, kStepReply, static_cast<uint8_t>((h.flags & kReset) | (rc == 0 ? 0 : kError)), &action);
    } else {
      continue;
    }
    sendto(fd, out.data(), out.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse_options(argc, argv, &o)) {
    std::fprintf(stderr,
                 "usage: %s --agent I [--port P] [--lib-dir DIR] [--idle-timeout S]\n"
                 "          [--ignore-every K] [--sleep-every K --sleep-ms M] [--die-after N]\n",
                 argv[0]);
    return 2;
  }
  kdcc_agent* agent = kdcc_agent_create(o.lib_dir.c_str(), o.agent);
  if (!agent) {
    std::fprintf(stderr, "robot: kdcc_agent_create(%s, %d): %s\n", o.lib_dir.c_str(), o.agent,
                 kdcc_agent_last_error());
    return 1;
  }
  int port = 0;
  const int fd = open_socket(o.port, o.idle_timeout_s, &port);
  if (fd < 0) {
    kdcc_agent_destroy(agent);
    return 1;
  }
  std::printf("ready %d\n", port);
  std::fflush(stdout);
  const int status = serve(fd, agent, o);
  close(fd);
  kdcc_agent_destroy(agent);
  return status;
}
