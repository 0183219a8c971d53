// pagerctl metrics --listen: the exposition over HTTP, for a Prometheus
// scrape (GET /metrics).
//
// HTTP is GNU libmicrohttpd's (Debian's libmicrohttpd12): a small C library,
// maintained for two decades, that parses requests, answers malformed or
// oversized ones itself (400, 413, 431), drops idle connections after a
// timeout and serves any number of them from one internal thread with epoll.
// A few lines over a socket would have had to do all of that to be safe.
// Only the socket is ours: bound here, so that a taken port is an error
// naming the address, and port 0 reports the port it got.
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common.h"
#include "metrics.h"

namespace pagerctl {
namespace {

constexpr unsigned kConnectionTimeoutS = 10;  // an idle or slow client is dropped
constexpr unsigned kConnectionLimit = 64;

struct Server {
  std::string stats_dir;
};

MHD_Result Reply(MHD_Connection* c, unsigned status, const std::string& body, const char* type) {
  MHD_Response* r = MHD_create_response_from_buffer(body.size(), const_cast<char*>(body.data()),
                                                    MHD_RESPMEM_MUST_COPY);
  if (r == nullptr) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  if (status == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  MHD_Result ret = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ret;
}

// Called by libmicrohttpd's thread once a request's headers are in. A body
// sent with it is never read: the reply is queued at once and the
// connection closed after it.
MHD_Result Handle(void* cls, MHD_Connection* c, const char* url, const char* method, const char*, const char*,
                  size_t*, void**) {
  const auto* server = static_cast<const Server*>(cls);
  const char* text = "text/plain; charset=utf-8";
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
    return Reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics\n", text);
  }
  if (strcmp(url, "/metrics") != 0) return Reply(c, MHD_HTTP_NOT_FOUND, "not found: the metrics are at /metrics\n", text);
  auto body = MetricsText(server->stats_dir);
  if (!body.ok()) return Reply(c, MHD_HTTP_INTERNAL_SERVER_ERROR, body.status().message() + "\n", text);
  return Reply(c, MHD_HTTP_OK, *body, kMetricsContentType);
}

// "[HOST:]PORT", "[V6]:PORT": HOST defaults to the loopback address.
sockaddr_storage ParseListen(const std::string& listen, socklen_t* len) {
  std::string host = "127.0.0.1", port = listen;
  size_t colon = listen.rfind(':');
  if (colon != std::string::npos) {
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    if (host.empty()) host = "127.0.0.1";
  }
  char* end = nullptr;
  unsigned long p = strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p > 65535) {
    throw UsageError("--listen: '" + listen + "': expected [HOST:]PORT, e.g. 127.0.0.1:9864");
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int err = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (err != 0) throw UsageError("--listen: '" + host + "': " + gai_strerror(err));
  sockaddr_storage addr{};
  memcpy(&addr, res->ai_addr, res->ai_addrlen);
  *len = res->ai_addrlen;
  freeaddrinfo(res);
  return addr;
}

std::string Describe(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (a.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
  inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
  return std::string(host) + ":" + std::to_string(ntohs(v4->sin_port));
}

}  // namespace

int ServeMetrics(const std::string& listen, const std::string& stats_dir) {
  socklen_t len = 0;
  sockaddr_storage addr = ParseListen(listen, &len);
  int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error(std::string("--listen ") + listen + ": socket: " + strerror(errno));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 64) != 0) {
    int err = errno;
    close(fd);
    throw std::runtime_error("--listen " + listen + ": " + strerror(err));
  }
  len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);

  // SIGINT and SIGTERM are taken by sigwait below, on this thread only:
  // blocked before libmicrohttpd's thread starts, which inherits the mask.
  // A shell starts background jobs with SIGINT ignored, and an ignored
  // signal never reaches sigwait.
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a client gone mid-reply is an error on its socket, not our end

  Server server{stats_dir};
  MHD_Daemon* d = MHD_start_daemon(MHD_USE_AUTO_INTERNAL_THREAD, 0, nullptr, nullptr, &Handle, &server,
                                   MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT,
                                   kConnectionTimeoutS, MHD_OPTION_CONNECTION_LIMIT, kConnectionLimit,
                                   MHD_OPTION_END);
  if (d == nullptr) {
    close(fd);
    throw std::runtime_error("--listen " + listen + ": libmicrohttpd could not start");
  }
  fprintf(stderr, "pagerctl metrics: serving http://%s/metrics\n", Describe(addr).c_str());
  int sig = 0;
  sigwait(&stop, &sig);
  MHD_stop_daemon(d);  // closes the listening socket too
  return kExitOk;
}

}  // namespace pagerctl
