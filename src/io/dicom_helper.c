/* GDCM's pixel decode in a helper process, one per decoding thread, kept
 * for the thread's life.
 *
 * Why a process: Debian's GDCM keeps its assertions and its codecs abort on
 * damaged streams (found by fuzz_dicom), which would end a whole run or
 * server.  In a helper, an abort kills only the helper: the file becomes an
 * error row and the next DICOM starts a new helper.
 *
 * Why kept: forking for every file cost about 20 ms a 2048 x 2048 image here
 * (the parent's page tables copied, then every page it writes faulted once
 * more as copy-on-write), a quarter of a JPEG Lossless decode.  The helper is
 * forked once per thread, on its first DICOM.
 *
 * Exchange: one memfd shared by both, [message | decoded pixels | file
 * bytes]; the request (sizes and the header) and the reply (0 or -1) go over
 * a SOCK_SEQPACKET pair.  The file bytes and the pixels are zeroed once the
 * caller is done (fx_dcm_helper_done): serve keeps no image after answering.
 *
 * Ending: the helper ignores the terminal's signals (Ctrl-C stops the run,
 * which finishes its in-flight files, not the helper); it dies with the
 * thread that forked it (PR_SET_PDEATHSIG), when that thread's key
 * destructor kills it, or when it reads end-of-file. */
#ifndef FX_NO_DICOM
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/dicom_internal.h"

#define HEAD       4096 /* the helper's message, then the pixels */
#define CHILD_DIED 99   /* the helper's exit status when a sanitizer caught GDCM */

#if defined(__SANITIZE_ADDRESS__)
#define FX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FX_ASAN 1
#endif
#endif
#ifdef FX_ASAN
#include <sanitizer/common_interface_defs.h>
static void child_death(void)
{
    _exit(CHILD_DIED);
}
#endif

typedef struct helper {
    pid_t pid;    /* 0: none running */
    int sock;     /* our end of the pair */
    int memfd;    /* -1 until the first decode */
    uint8_t *map; /* our mapping of memfd, cap bytes */
    size_t cap;
    size_t used; /* bytes to zero when the caller is done */
} helper;

typedef struct request {
    size_t n, bytes, cap; /* file bytes, pixel bytes, the memfd's size */
    fx_dcm_header h;
} request;

static _Thread_local helper tl = {.memfd = -1};
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static size_t in_offset(size_t bytes)
{
    return HEAD + ((bytes + 63) & ~(size_t)63);
}

/* Kill and reap the helper (if any); its wait status, 0 when none. */
static int stop(helper *hp)
{
    int ws = 0;
    if (hp->pid > 0) {
        kill(hp->pid, SIGKILL);
        while (waitpid(hp->pid, &ws, 0) < 0 && errno == EINTR)
            ;
        close(hp->sock);
    }
    hp->pid = 0;
    return ws;
}

/* The thread's end: its helper and memory go with it. */
static void destroy(void *p)
{
    helper *hp = p;
    stop(hp);
    if (hp->map)
        munmap(hp->map, hp->cap);
    if (hp->memfd >= 0)
        close(hp->memfd);
    hp->map = NULL, hp->cap = 0, hp->memfd = -1;
}

static void make_key(void)
{
    pthread_key_create(&key, destroy);
}

/* In the helper: a crash is the helper's alone (default actions, so a
 * sanitizer or libFuzzer in the parent's image does not report GDCM's
 * faults as ours); the terminal's signals are for the parent. */
static void child_signals(void)
{
    static const int dfl[] = {SIGABRT, SIGILL, SIGSEGV, SIGBUS, SIGFPE};
    static const int ign[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof dfl / sizeof dfl[0]; i++)
        signal(dfl[i], SIG_DFL);
    for (size_t i = 0; i < sizeof ign / sizeof ign[0]; i++)
        signal(ign[i], SIG_IGN);
#ifdef FX_ASAN
    __sanitizer_set_death_callback(child_death);
#endif
}

/* The helper's loop; it leaves with _exit (no atexit handlers, no
 * sanitizer leak pass in a copy of the parent's heap). */
static void serve_requests(int sock, int memfd, pid_t parent)
{
    child_signals();
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the parent went before prctl took */
        _exit(0);
    uint8_t *map = NULL;
    size_t cap = 0;
    for (;;) {
        request rq;
        ssize_t r = recv(sock, &rq, sizeof rq, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != (ssize_t)sizeof rq)
            _exit(0);
        if (rq.cap != cap) {
            if (map)
                munmap(map, cap);
            map = mmap(NULL, rq.cap, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
            if (map == MAP_FAILED)
                _exit(3);
            cap = rq.cap;
        }
        map[0] = 0;
        int rc = fx_dcm_decode_frame0(map + in_offset(rq.bytes), rq.n, &rq.h, map + HEAD,
                                      (char *)map, HEAD);
        if (send(sock, &rc, sizeof rc, MSG_NOSIGNAL) != (ssize_t)sizeof rc)
            _exit(0);
    }
}

static int start(helper *hp)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
        return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        serve_requests(sv[1], hp->memfd, parent);
    }
    close(sv[1]);
    if (pid < 0) {
        close(sv[0]);
        return -1;
    }
    hp->pid = pid, hp->sock = sv[0];
    return 0;
}

/* Room for the exchange: the memfd grows (never shrinks) to the largest image. */
static fx_status reserve(helper *hp, size_t need, fx_error *err)
{
    if (hp->memfd < 0) {
        hp->memfd = memfd_create("fxscreen-dicom", MFD_CLOEXEC);
        if (hp->memfd < 0)
            return fx_error_set(err, FX_ERR_NOMEM, "dicom: memfd_create: %s", strerror(errno));
        pthread_once(&key_once, make_key);
        pthread_setspecific(key, hp);
    }
    if (need <= hp->cap)
        return FX_OK;
    size_t cap = (need + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    if (ftruncate(hp->memfd, (off_t)cap))
        return fx_error_set(err, FX_ERR_NOMEM, "dicom: cannot reserve %zu bytes to decode into: %s",
                            cap, strerror(errno));
    uint8_t *map = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED, hp->memfd, 0);
    if (map == MAP_FAILED)
        return fx_error_set(err, FX_ERR_NOMEM, "dicom: cannot map %zu bytes to decode into", cap);
    if (hp->map)
        munmap(hp->map, hp->cap);
    hp->map = map, hp->cap = cap;
    return FX_OK;
}

fx_status fx_dcm_helper_decode(const uint8_t *b, size_t n, const fx_dcm_header *h, size_t bytes,
                               const void **pix, fx_error *err)
{
    helper *hp = &tl;
    fx_status st = reserve(hp, in_offset(bytes) + n, err);
    if (st != FX_OK)
        return st;
    memcpy(hp->map + in_offset(bytes), b, n);
    hp->used = in_offset(bytes) + n;
    if (hp->pid == 0 && start(hp))
        return fx_error_set(err, FX_ERR_NOMEM, "dicom: cannot start the decoder process: %s",
                            strerror(errno));
    request rq = {.n = n, .bytes = bytes, .cap = hp->cap, .h = *h};
    int rc = -1;
    ssize_t r;
    do
        r = send(hp->sock, &rq, sizeof rq, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof rq) { /* gone since its last file (killed from outside): a new one */
        stop(hp);
        if (start(hp))
            return fx_error_set(err, FX_ERR_NOMEM, "dicom: cannot start the decoder process: %s",
                                strerror(errno));
        do
            r = send(hp->sock, &rq, sizeof rq, MSG_NOSIGNAL);
        while (r < 0 && errno == EINTR);
    }
    if (r == (ssize_t)sizeof rq) {
        do
            r = recv(hp->sock, &rc, sizeof rc, 0);
        while (r < 0 && errno == EINTR);
    }
    if (r != (ssize_t)sizeof rc) { /* the helper died: GDCM aborted or crashed */
        int ws = stop(hp);
        fx_dcm_helper_done();
        int sig = WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
        return fx_error_set(err, FX_ERR_FORMAT,
                            "dicom: GDCM crashed decoding the pixel data (transfer syntax %s, "
                            "signal %d): damaged pixel data",
                            h->ts_uid, sig);
    }
    if (rc != 0) {
        char msg[HEAD];
        memcpy(msg, hp->map, HEAD);
        msg[HEAD - 1] = 0;
        fx_dcm_helper_done();
        return fx_error_set(err, FX_ERR_FORMAT, "%s", msg[0] ? msg : "dicom: GDCM failed");
    }
    *pix = hp->map + HEAD;
    return FX_OK;
}

void fx_dcm_helper_done(void)
{
    helper *hp = &tl;
    if (hp->map && hp->used)
        explicit_bzero(hp->map, hp->used);
    hp->used = 0;
}
#endif /* FX_NO_DICOM */
