/* loadgen: a closed-loop, keep-alive HTTP/1.1 load generator that keeps every request's latency.
 *
 * Why it exists beside wrk: wrk 4.x "corrects" its latency histogram for coordinated omission
 * before it reports anything (stats_correct: a sample of n us adds synthetic samples at
 * n - e, n - 2e, ... where e is the mean per-connection request interval).  On a 2-vCPU VM a few
 * machine-wide stalls of 2-8 ms a second (DAMON's kdamond, the local database and broker
 * daemons) then decide wrk's p99 for every server alike.  This tool reports the recorded
 * latencies as they were, and the same correction applied to the same samples, so both views
 * come from one run.
 *
 *   loadgen HOST PORT CONNECTIONS SECONDS PATHS_FILE [HEADER]...
 *
 * PATHS_FILE holds one request path per line; requests rotate through them.  Each HEADER is a
 * full "Name: value" line.  The result is one JSON line on stdout.  Responses must carry
 * Content-Length (every server compared here does); anything else counts as a read error and
 * the connection is reopened.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKETS 2000000          /* 1 us buckets up to 2 s; slower ones go to `over` */
#define MAX_PATHS 100000
#define BUF 262144

typedef struct {
    int fd;
    uint64_t start_ns;
    size_t have, want;           /* want 0: headers not complete yet */
    int status;
    char buf[BUF];
} conn;

static uint64_t *hist;
static uint64_t over, count, sum_us, max_us, min_us = UINT64_MAX;
static uint64_t err_connect, err_read, err_write, err_status, bytes_total;
static char **reqs;
static size_t *req_len;
static size_t nreqs, next_req;
static struct sockaddr_in addr;

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void record(uint64_t us) {
    if (us < BUCKETS) hist[us]++; else over++;
    count++;
    sum_us += us;
    if (us > max_us) max_us = us;
    if (us < min_us) min_us = us;
}

static int open_conn(int ep, conn *c, uint32_t id) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    if (fd < 0) return -1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = id};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) < 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    c->have = c->want = 0;
    c->start_ns = 0;
    return 0;
}

static void reopen(int ep, conn *c, uint32_t id) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (open_conn(ep, c, id) < 0) {
        err_connect++;
        c->fd = -1;
    }
}

/* Send the next request; the whole request fits a fresh loopback socket buffer. */
static int send_next(conn *c) {
    size_t i = next_req++ % nreqs;
    c->start_ns = now_ns();
    c->have = c->want = 0;
    ssize_t n = write(c->fd, reqs[i], req_len[i]);
    return n == (ssize_t)req_len[i] ? 0 : -1;
}

/* Headers complete: find status and Content-Length; returns 0 or -1 when unusable. */
static int parse_head(conn *c) {
    char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (!end) return c->have < BUF ? 1 : -1;
    *end = '\0';
    if (c->have < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0) return -1;
    c->status = atoi(c->buf + 9);
    char *cl = strcasestr(c->buf, "\r\ncontent-length:");
    if (!cl) return -1;
    c->want = (size_t)(end + 4 - c->buf) + strtoul(cl + 17, NULL, 10);
    return c->want > BUF ? -1 : 0;
}

static uint64_t pct_of(const uint64_t *h, uint64_t total, uint64_t tail_max, double p) {
    uint64_t rank = (uint64_t)(p / 100.0 * (double)total + 0.5), seen = 0;
    if (rank == 0) rank = 1;
    for (uint64_t i = 0; i < BUCKETS; i++) {
        seen += h[i];
        if (seen >= rank) return i;
    }
    return tail_max;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: loadgen HOST PORT CONNECTIONS SECONDS PATHS_FILE [HEADER]...\n");
        return 2;
    }
    int nconn = atoi(argv[3]);
    double seconds = atof(argv[4]);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1 || nconn < 1 || seconds <= 0) {
        fprintf(stderr, "loadgen: bad host, connections or duration\n");
        return 2;
    }
    char extra[8192] = "";
    for (int i = 6; i < argc; i++) {
        if (strlen(extra) + strlen(argv[i]) + 3 >= sizeof extra) return 2;
        strcat(extra, argv[i]);
        strcat(extra, "\r\n");
    }
    FILE *pf = fopen(argv[5], "r");
    if (!pf) { perror(argv[5]); return 2; }
    reqs = calloc(MAX_PATHS, sizeof *reqs);
    req_len = calloc(MAX_PATHS, sizeof *req_len);
    char line[4096];
    while (nreqs < MAX_PATHS && fgets(line, sizeof line, pf)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0]) continue;
        size_t cap = strlen(line) + strlen(extra) + 128;
        reqs[nreqs] = malloc(cap);
        req_len[nreqs] = (size_t)snprintf(reqs[nreqs], cap, "GET %s HTTP/1.1\r\nHost: %s:%s\r\n%s\r\n",
                                          line, argv[1], argv[2], extra);
        nreqs++;
    }
    fclose(pf);
    if (!nreqs) { fprintf(stderr, "loadgen: no paths\n"); return 2; }
    hist = calloc(BUCKETS, sizeof *hist);
    conn *cs = calloc((size_t)nconn, sizeof *cs);
    int ep = epoll_create1(0);
    for (int i = 0; i < nconn; i++)
        if (open_conn(ep, &cs[i], (uint32_t)i) < 0) { err_connect++; cs[i].fd = -1; }

    struct epoll_event evs[1024];
    uint64_t begin = now_ns(), stop = begin + (uint64_t)(seconds * 1e9);
    for (;;) {
        int k = epoll_wait(ep, evs, 1024, 100);
        if (now_ns() >= stop) break;
        for (int j = 0; j < k; j++) {
            uint32_t id = evs[j].data.u32;
            conn *c = &cs[id];
            if (c->fd < 0) continue;
            if (c->start_ns == 0) {                 /* connected: first request */
                if (evs[j].events & (EPOLLERR | EPOLLHUP)) { err_connect++; reopen(ep, c, id); continue; }
                if (evs[j].events & EPOLLOUT) { if (send_next(c) < 0) { err_write++; reopen(ep, c, id); } }
                continue;
            }
            if (!(evs[j].events & (EPOLLIN | EPOLLERR | EPOLLHUP))) continue;
            for (;;) {                              /* edge-triggered: read until EAGAIN */
                ssize_t n = read(c->fd, c->buf + c->have, BUF - c->have);
                if (n < 0 && errno == EAGAIN) break;
                if (n <= 0) { err_read++; reopen(ep, c, id); break; }
                c->have += (size_t)n;
                bytes_total += (uint64_t)n;
                if (!c->want) {
                    int r = parse_head(c);
                    if (r > 0) continue;
                    if (r < 0) { err_read++; reopen(ep, c, id); break; }
                }
                if (c->have < c->want) continue;
                if (c->have > c->want) { err_read++; reopen(ep, c, id); break; }
                record((now_ns() - c->start_ns) / 1000);
                if (c->status < 200 || c->status > 399) err_status++;
                if (send_next(c) < 0) { err_write++; reopen(ep, c, id); break; }
            }
        }
    }
    uint64_t elapsed_us = (now_ns() - begin) / 1000;

    /* wrk's correction, on a copy: each sample of n us >= 2e adds one at n - e, n - 2e, ... > e */
    uint64_t *corr = malloc(BUCKETS * sizeof *corr), ccount = count;
    memcpy(corr, hist, BUCKETS * sizeof *corr);
    uint64_t expected = count / (uint64_t)nconn ? elapsed_us / (count / (uint64_t)nconn) : 0;
    if (expected)
        for (uint64_t v = 2 * expected; v <= max_us && v < BUCKETS; v++)
            for (uint64_t m = v - expected; hist[v] && m > expected; m -= expected) {
                corr[m] += hist[v];
                ccount += hist[v];
            }
    static const double P[] = {50, 90, 99, 99.9};
    static const char *K[] = {"p50", "p90", "p99", "p99_9"};
    printf("{\"requests\":%llu,\"duration_us\":%llu,\"bytes\":%llu,"
           "\"errors\":{\"connect\":%llu,\"read\":%llu,\"write\":%llu,\"status\":%llu,\"timeout\":0},"
           "\"latency_us\":{\"min\":%llu,\"mean\":%.1f,\"max\":%llu",
           (unsigned long long)count, (unsigned long long)elapsed_us,
           (unsigned long long)bytes_total, (unsigned long long)err_connect,
           (unsigned long long)err_read, (unsigned long long)err_write,
           (unsigned long long)err_status, (unsigned long long)(count ? min_us : 0),
           count ? (double)sum_us / (double)count : 0.0, (unsigned long long)max_us);
    for (int i = 0; i < 4; i++)
        printf(",\"%s\":%llu", K[i], (unsigned long long)pct_of(hist, count, max_us, P[i]));
    printf("},\"corrected_us\":{\"expected\":%llu", (unsigned long long)expected);
    for (int i = 0; i < 4; i++)
        printf(",\"%s\":%llu", K[i], (unsigned long long)pct_of(corr, ccount, max_us, P[i]));
    printf("}}\n");
    return 0;
}
