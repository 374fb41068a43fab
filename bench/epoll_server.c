/* epoll_server: the smallest keep-alive HTTP server, to see what epoll's trigger mode does to
 * a closed loop's latency tail (bench/epoll_order.py).
 *
 *   epoll_server PORT lt|et COST_NS BODY_FILE
 *
 * One thread, one epoll set.  Every complete request (counted by its blank line; requests carry
 * no body) is answered with BODY_FILE as application/json after COST_NS of busy work, which
 * stands in for what a real server does per request.  In "lt" mode each connection is
 * registered level-triggered and read once per event, as libuv does; in "et" mode it is
 * registered edge-triggered and read until EAGAIN, as nginx does.  Nothing else differs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char *resp;
static size_t resp_len;

static void busy(long ns) {
    struct timespec a, b;
    if (ns <= 0) return;
    clock_gettime(CLOCK_MONOTONIC, &a);
    do clock_gettime(CLOCK_MONOTONIC, &b);
    while ((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) < ns);
}

/* Blank lines seen in this read, carrying a partial "\r\n\r" across reads in *tail. */
static int requests_in(const char *p, ssize_t n, unsigned *tail) {
    int found = 0;
    unsigned w = *tail;
    for (ssize_t i = 0; i < n; i++) {
        w = (w << 8) | (unsigned char)p[i];
        if (w == 0x0d0a0d0a) found++;
    }
    *tail = w;
    return found;
}

int main(int argc, char **argv) {
    if (argc != 5 || (strcmp(argv[2], "lt") && strcmp(argv[2], "et"))) {
        fprintf(stderr, "usage: epoll_server PORT lt|et COST_NS BODY_FILE\n");
        return 2;
    }
    int port = atoi(argv[1]), et = strcmp(argv[2], "et") == 0, one = 1;
    long cost = atol(argv[3]);
    FILE *f = fopen(argv[4], "rb");
    if (!f) { perror(argv[4]); return 2; }
    static char body[1 << 20];
    size_t blen = fread(body, 1, sizeof body, f);
    fclose(f);
    resp = malloc(blen + 256);
    resp_len = (size_t)sprintf(resp, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                               "Content-Length: %zu\r\n\r\n", blen);
    memcpy(resp + resp_len, body, blen);
    resp_len += blen;

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 1024)) { perror("bind"); return 1; }
    int ep = epoll_create1(0);
    struct epoll_event le = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &le);
    static unsigned tails[65536];
    static char buf[65536];
    struct epoll_event evs[512];
    for (;;) {
        int k = epoll_wait(ep, evs, 512, -1);
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            if (fd == ls) {
                int c;
                while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (c >= 65536) { close(c); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    tails[c] = 0;
                    struct epoll_event ce = {.events = EPOLLIN | (et ? EPOLLET : 0), .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
                }
                continue;
            }
            for (;;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n < 0 && errno == EAGAIN) break;
                if (n <= 0) { close(fd); break; }
                int reqs = requests_in(buf, n, &tails[fd]);
                for (int r = 0; r < reqs; r++) {
                    busy(cost);
                    if (write(fd, resp, resp_len) != (ssize_t)resp_len) { reqs = -1; break; }
                }
                if (reqs < 0) { close(fd); break; }
                if (!et) break;              /* level-triggered: the next wait reports the rest */
            }
        }
    }
}
