/*
 * A C gRPC provider for the frameworks' interop test: serves helloworld's
 * Greeter.SayHello on a loopback port and registers it through
 * libregistry.so, in the layout REGISTRY_LAYOUT names.
 *
 *   greeter NAME [PORT]    (etcd, TTL and layout from REGISTRY_*; PORT 0 or
 *                           absent: any free port)
 *
 *   stdin            stdout
 *   (start)          listening 127.0.0.1:PORT
 *                    registered KEY
 *   deregister       deregistered KEY     (the server keeps serving)
 *   quit / EOF       bye                  (deregisters, frees the client, exits 0)
 *
 * SayHello answers "Hello NAME from ADDR pid PID", as the Python provider
 * does, so a caller knows who served it.
 *
 * No gRPC library: the little of HTTP/2 a unary gRPC server needs, one
 * thread per connection. It sends its SETTINGS first, acknowledges the
 * client's SETTINGS and PINGs, gives back the connection's flow-control
 * window for every DATA frame, and skips the request's headers (HPACK is
 * never decoded: every request here is SayHello). A reply is three frames:
 * HEADERS (:status 200, content-type application/grpc), DATA (the
 * message), HEADERS (grpc-status 0, END_STREAM).
 */
#define _POSIX_C_SOURCE 200809L
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "registry.h"

enum { FRAME_DATA = 0, FRAME_HEADERS = 1, FRAME_RST_STREAM = 3, FRAME_SETTINGS = 4, FRAME_PING = 6,
       FRAME_GOAWAY = 7, FRAME_WINDOW_UPDATE = 8 };
enum { FLAG_ACK = 0x1, FLAG_END_STREAM = 0x1, FLAG_END_HEADERS = 0x4, FLAG_PADDED = 0x8 };
enum { MAX_FRAME = 16384, MAX_STREAMS = 32, MAX_REQUEST = 512 };

static char served_addr[64];

/* One request being received: its stream and the body so far. */
struct stream {
  uint32_t id; /* 0: free */
  size_t len;
  unsigned char body[MAX_REQUEST];
};

static int read_full(int fd, unsigned char *buf, size_t n) {
  for (size_t got = 0; got < n;) {
    ssize_t r = read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

static int write_full(int fd, const unsigned char *buf, size_t n) {
  for (size_t sent = 0; sent < n;) {
    ssize_t w = send(fd, buf + sent, n - sent, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    sent += (size_t)w;
  }
  return 0;
}

/* Appends a frame header and payload to out (sized by the caller); returns the new length. */
static size_t put_frame(unsigned char *out, size_t at, uint8_t type, uint8_t flags, uint32_t stream,
                        const unsigned char *payload, size_t len) {
  unsigned char *h = out + at;
  h[0] = (unsigned char)(len >> 16);
  h[1] = (unsigned char)(len >> 8);
  h[2] = (unsigned char)len;
  h[3] = type;
  h[4] = flags;
  h[5] = (unsigned char)((stream >> 24) & 0x7f);
  h[6] = (unsigned char)(stream >> 16);
  h[7] = (unsigned char)(stream >> 8);
  h[8] = (unsigned char)stream;
  if (len > 0) memcpy(h + 9, payload, len);
  return at + 9 + len;
}

static int send_frame(int fd, uint8_t type, uint8_t flags, uint32_t stream, const unsigned char *payload,
                      size_t len) {
  unsigned char frame[9 + 64];
  if (len > 64) return -1;
  return write_full(fd, frame, put_frame(frame, 0, type, flags, stream, payload, len));
}

static size_t put_varint(unsigned char *out, size_t value) {
  size_t n = 0;
  for (; value >= 0x80; value >>= 7) out[n++] = (unsigned char)(value | 0x80);
  out[n++] = (unsigned char)value;
  return n;
}

/* HelloRequest.name (field 1) from a gRPC message: 5-byte prefix, then protobuf. */
static void request_name(const unsigned char *body, size_t len, char *name, size_t cap) {
  name[0] = '\0';
  if (len < 7 || body[0] != 0 || body[5] != 0x0a) return;
  size_t n = body[6]; /* names here are short: a one-byte length */
  if (n >= 0x80 || 7 + n > len || n >= cap) return;
  memcpy(name, body + 7, n);
  name[n] = '\0';
}

/* Answers stream `id`: response headers, the HelloReply, the trailers. */
static int reply(int fd, uint32_t id, const char *name) {
  /* :status 200 (static index 8); content-type (static name 31) application/grpc, not indexed. */
  static const unsigned char headers[] = {0x88, 0x0f, 0x10, 0x10, 'a', 'p', 'p', 'l', 'i', 'c', 'a',
                                          't',  'i',  'o',  'n',  '/', 'g', 'r', 'p', 'c'};
  /* grpc-status: 0, a new name, not indexed. */
  static const unsigned char trailers[] = {0x00, 0x0b, 'g', 'r', 'p', 'c', '-', 's', 't',
                                           'a',  't',  'u', 's', 0x01, '0'};
  char text[256];
  int n = snprintf(text, sizeof text, "Hello %s from %s pid %ld", name, served_addr, (long)getpid());
  if (n < 0 || (size_t)n >= sizeof text) return -1;
  unsigned char message[5 + 1 + 2 + sizeof text];
  message[5] = 0x0a; /* HelloReply.message, field 1 */
  size_t prefix = put_varint(message + 6, (size_t)n);
  memcpy(message + 6 + prefix, text, (size_t)n);
  size_t body = 1 + prefix + (size_t)n;
  message[0] = 0; /* not compressed */
  message[1] = (unsigned char)(body >> 24);
  message[2] = (unsigned char)(body >> 16);
  message[3] = (unsigned char)(body >> 8);
  message[4] = (unsigned char)body;
  unsigned char out[3 * 9 + sizeof headers + sizeof message + sizeof trailers];
  size_t at = put_frame(out, 0, FRAME_HEADERS, FLAG_END_HEADERS, id, headers, sizeof headers);
  at = put_frame(out, at, FRAME_DATA, 0, id, message, 5 + body);
  at = put_frame(out, at, FRAME_HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, id, trailers, sizeof trailers);
  return write_full(fd, out, at);
}

static struct stream *find(struct stream *streams, uint32_t id, int create) {
  for (int i = 0; i < MAX_STREAMS; i++)
    if (streams[i].id == id) return &streams[i];
  if (!create) return NULL;
  for (int i = 0; i < MAX_STREAMS; i++)
    if (streams[i].id == 0) {
      streams[i].id = id;
      streams[i].len = 0;
      return &streams[i];
    }
  return NULL;
}

/* The request on `s` is complete: answer it and free the slot. */
static int finish(int fd, struct stream *s) {
  char name[128];
  request_name(s->body, s->len, name, sizeof name);
  uint32_t id = s->id;
  s->id = 0;
  return reply(fd, id, name);
}

static int serve_frame(int fd, struct stream *streams, uint8_t type, uint8_t flags, uint32_t id,
                       const unsigned char *payload, size_t len) {
  struct stream *s;
  switch (type) {
    case FRAME_SETTINGS:
      return (flags & FLAG_ACK) ? 0 : send_frame(fd, FRAME_SETTINGS, FLAG_ACK, 0, NULL, 0);
    case FRAME_PING:
      return (flags & FLAG_ACK) || len != 8 ? 0 : send_frame(fd, FRAME_PING, FLAG_ACK, 0, payload, 8);
    case FRAME_HEADERS:
      s = find(streams, id, 1);
      if (s == NULL) { /* too many at once: REFUSED_STREAM */
        static const unsigned char refused[4] = {0, 0, 0, 7};
        return send_frame(fd, FRAME_RST_STREAM, 0, id, refused, 4);
      }
      return (flags & FLAG_END_STREAM) ? finish(fd, s) : 0;
    case FRAME_DATA: {
      if (len > 0) { /* give the connection's window back at once */
        unsigned char increment[4] = {(unsigned char)(len >> 24), (unsigned char)(len >> 16),
                                      (unsigned char)(len >> 8), (unsigned char)len};
        if (send_frame(fd, FRAME_WINDOW_UPDATE, 0, 0, increment, 4)) return -1;
      }
      size_t skip = 0, pad = 0;
      if ((flags & FLAG_PADDED) && len > 0) skip = 1, pad = payload[0];
      if (skip + pad > len || (s = find(streams, id, 0)) == NULL) return 0;
      size_t n = len - skip - pad;
      if (s->len + n <= MAX_REQUEST) memcpy(s->body + s->len, payload + skip, n), s->len += n;
      return (flags & FLAG_END_STREAM) ? finish(fd, s) : 0;
    }
    case FRAME_RST_STREAM:
      if ((s = find(streams, id, 0)) != NULL) s->id = 0;
      return 0;
    case FRAME_GOAWAY:
      return -1;
    default: /* CONTINUATION, WINDOW_UPDATE, PRIORITY...: nothing to do */
      return 0;
  }
}

static void *serve_connection(void *arg) {
  int fd = (int)(intptr_t)arg;
  static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
  unsigned char head[9], payload[MAX_FRAME];
  struct stream *streams = calloc(MAX_STREAMS, sizeof *streams);
  if (streams != NULL && read_full(fd, payload, sizeof preface - 1) == 0 &&
      memcmp(payload, preface, sizeof preface - 1) == 0 && send_frame(fd, FRAME_SETTINGS, 0, 0, NULL, 0) == 0) {
    while (read_full(fd, head, 9) == 0) {
      size_t len = ((size_t)head[0] << 16) | ((size_t)head[1] << 8) | head[2];
      uint32_t id = ((uint32_t)(head[5] & 0x7f) << 24) | ((uint32_t)head[6] << 16) | ((uint32_t)head[7] << 8) |
                    head[8];
      if (len > MAX_FRAME || read_full(fd, payload, len) != 0) break;
      if (serve_frame(fd, streams, head[3], head[4], id, payload, len) != 0) break;
    }
  }
  free(streams);
  close(fd);
  return NULL;
}

static void *accept_loop(void *arg) {
  int listener = (int)(intptr_t)arg;
  for (;;) {
    int fd = accept(listener, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return NULL;
    }
    int on = 1; /* small frames go out at once, not after the peer's delayed ACK */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
    pthread_t thread;
    if (pthread_create(&thread, NULL, serve_connection, (void *)(intptr_t)fd) != 0) {
      close(fd);
      continue;
    }
    pthread_detach(thread);
  }
}

static int fail(const char *what, registry_status status) {
  fprintf(stderr, "c greeter: %s: %s: %s\n", what, registry_status_name((int)status), registry_last_error());
  return 1;
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s NAME [PORT]\n", argv[0]);
    return 2;
  }
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in at;
  memset(&at, 0, sizeof at);
  at.sin_family = AF_INET;
  at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  at.sin_port = htons((uint16_t)(argc == 3 ? atoi(argv[2]) : 0));
  socklen_t size = sizeof at;
  if (listener < 0 || bind(listener, (struct sockaddr *)&at, sizeof at) != 0 || listen(listener, 64) != 0 ||
      getsockname(listener, (struct sockaddr *)&at, &size) != 0) {
    perror("c greeter: listening");
    return 1;
  }
  snprintf(served_addr, sizeof served_addr, "127.0.0.1:%u", (unsigned)ntohs(at.sin_port));
  pthread_t thread;
  if (pthread_create(&thread, NULL, accept_loop, (void *)(intptr_t)listener) != 0) {
    fprintf(stderr, "c greeter: cannot start the server thread\n");
    return 1;
  }
  printf("listening %s\n", served_addr);
  fflush(stdout);

  registry_client *client = NULL;
  registry_status st = registry_client_new(NULL, &client);
  if (st != REGISTRY_OK) return fail("connecting to etcd", st);
  registry_service *svc = NULL;
  st = registry_service_new(argv[1], served_addr, &svc);
  if (st != REGISTRY_OK) return fail("describing the service", st);
  registry_registration *reg = NULL;
  st = registry_register(client, svc, &reg);
  registry_service_free(svc);
  if (st != REGISTRY_OK) return fail("registering", st);
  char key[512];
  snprintf(key, sizeof key, "%s", registry_registration_key(reg));
  printf("registered %s\n", key);
  fflush(stdout);

  char line[256];
  while (fgets(line, sizeof line, stdin) != NULL) {
    if (strncmp(line, "quit", 4) == 0) break;
    if (strncmp(line, "deregister", 10) == 0 && reg != NULL) {
      st = registry_deregister(reg);
      reg = NULL;
      if (st != REGISTRY_OK) return fail("deregistering", st);
      printf("deregistered %s\n", key);
      fflush(stdout);
    }
  }
  if (reg != NULL && (st = registry_deregister(reg)) != REGISTRY_OK) return fail("deregistering", st);
  registry_client_free(client);
  printf("bye\n");
  return 0;
}
