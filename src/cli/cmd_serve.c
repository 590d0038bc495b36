/* fxscreen serve: argument parsing and signals; the server is
 * fx_serve_start() (include/fxscreen/serve.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "fxscreen/cam.h"
#include "fxscreen/serve.h"

#ifdef FX_NO_SERVE
int fx_cmd_serve(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "serve: this build has no server (static builds leave libmicrohttpd out); "
                    "use the regular build (make)\n");
    return FX_EXIT_USAGE;
}

int fx_cmd_audit(int argc, char **argv)
{
    return fx_cmd_serve(argc, argv);
}
#else
/* fxscreen audit verify FILE [--prev HASH] */
int fx_cmd_audit(int argc, char **argv)
{
    if (argc >= 3 && !strcmp(argv[1], "verify")) {
        const char *prev = argc == 5 && !strcmp(argv[3], "--prev") ? argv[4] : NULL;
        if (argc == 3 || prev) {
            int rc = fx_audit_verify(argv[2], prev, stdout);
            return rc == 0 ? FX_EXIT_OK : rc == 2 ? FX_EXIT_USAGE : FX_EXIT_FAIL;
        }
    }
    fprintf(stderr, "usage: fxscreen audit verify FILE [--prev HASH]\n"
                    "  checks the hash chain of a serve --audit file: exit 0 intact, 1 a line\n"
                    "  edited, removed or inserted (named), 2 unreadable.  --prev: the hash the\n"
                    "  first line follows (the last line's hash of the file before a rotation)\n");
    return FX_EXIT_USAGE;
}

extern char **environ;

#ifndef FX_NO_SERVE
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int saved = errno;
    if (write(sig_pipe[1], &b, 1) < 0) { /* nothing to do: the pipe is full of signals already */
    }
    errno = saved;
}
#endif

static void serve_usage(FILE *f)
{
    fprintf(f,
            "usage: fxscreen serve --model M.onnx [options]\n"
            "Serves the web app at / and the REST API (POST /api/predict, GET /api/results/ID,\n"
            "/api/model, /api/health, /api/ready, /metrics; described at /openapi.json).\n"
            "  --model M         ONNX classifier, as for `fxscreen run`\n"
            "  --config C        sidecar YAML (default: M.yaml beside the model if it exists)\n"
            "  --listen A:P      address and port (default 127.0.0.1:8080; [::1]:8080 for IPv6;\n"
            "                    0.0.0.0:8080 for every interface; port 0: any free port)\n"
            "  --open            listen on a free loopback port and open the default browser\n"
            "  --device D        auto (default), cpu, cuda or cuda:N\n"
            "  --precision P     the GPU's arithmetic: fp32 (default), tf32, fp16, bf16\n"
            "  --method M        CAM method (default: the config's, else gradcam)\n"
            "  --layer NAME      CAM layer (default: the config's, else the suggested one)\n"
            "  --threshold T     prediction = probability >= T (default: the config's, else 0.5)\n"
            "  --max-batch N     images per engine batch (default 8, 1..256)\n"
            "  --max-wait-ms MS  how long a batch waits to fill (default 5)\n"
            "  --queue N         images waiting for the engine before 503 (default 256)\n"
            "  --threads N       HTTP worker threads: decode, preprocess, overlays\n"
            "                    (default: online cores)\n"
            "  --max-upload MB   largest image upload in MiB (default 256)\n"
            "  --result-ttl S    seconds results stay retrievable (default 600)\n"
            "  --result-memory MB  memory for kept results in MiB (default 1024)\n"
            "  --max-connections N concurrent connections (default 1024)\n"
            "  --request-timeout S  the longest an upload may take (default 60)\n"
            "  --auth tokens.yaml  bearer-token sign-in with roles (clinician, service, admin);\n"
            "                    without it only a loopback address is served\n"
            "  --insecure        serve a non-loopback address without --auth anyway\n"
            "  --tls-cert PEM --tls-key PEM   HTTPS (TLS 1.2 and later)\n"
            "  --audit FILE      hash-chained JSON-lines audit trail, fsync'd per request\n"
            "                    (reopened on SIGHUP; check it with fxscreen audit verify)\n"
            "  fxscreen serve token add NAME --role R --file tokens.yaml\n"
            "                    prints a new token once and appends its SHA-256 to the file\n"
            "SIGTERM or SIGINT: stop accepting, finish the requests in flight, exit 0.\n"
            "Nothing uploaded is written to disk.  Research software: not for clinical use.\n");
}

/* Splits "HOST:PORT" or "[V6]:PORT" into host (in buf) and port. */
static int parse_listen(const char *s, char *buf, size_t n, int *port)
{
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= n)
            return 0;
        memcpy(buf, s + 1, (size_t)(close - s - 1));
        buf[close - s - 1] = 0;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= n)
            return 0;
        memcpy(buf, s, (size_t)(colon - s));
        buf[colon - s] = 0;
    }
    return buf[0] && fx_cli_parse_int(colon + 1, 0, 65535, port);
}

/* fxscreen serve token add NAME --role R --file F */
static int token_add(int argc, char **argv)
{
    const char *role = NULL, *file = NULL, *name = NULL;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--role") && i + 1 < argc)
            role = argv[++i];
        else if (!strcmp(argv[i], "--file") && i + 1 < argc)
            file = argv[++i];
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else {
            fprintf(stderr, "serve token add: unexpected '%s'\n", argv[i]);
            return FX_EXIT_USAGE;
        }
    }
    if (!name || !role || !file) {
        fprintf(stderr, "usage: fxscreen serve token add NAME --role clinician|service|admin "
                        "--file tokens.yaml\n");
        return FX_EXIT_USAGE;
    }
    char token[80];
    fx_error err = {0};
    if (fx_serve_token_add(file, name, role, token, sizeof token, &err) != FX_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return FX_EXIT_USAGE;
    }
    printf("%s\n", token);
    fprintf(stderr,
            "serve token add: %s (%s) added to %s; the token above is shown once: give it "
            "to its holder, it is not stored\n",
            name, role, file);
    return FX_EXIT_OK;
}

int fx_cmd_serve(int argc, char **argv)
{
    /* The engine's OpenMP threads must not spin between batches: on a
     * server the HTTP workers need those cores to decode the next uploads
     * (measured: about 20% more requests/s on 2 cores).  libgomp reads the
     * policy when it loads, so serve starts itself once more with it set,
     * unless the caller chose one. */
    if (!getenv("OMP_WAIT_POLICY") && !(argc >= 2 && !strcmp(argv[1], "token"))) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        char **args = calloc((size_t)argc + 3, sizeof *args);
        if (args) {
            args[0] = "fxscreen";
            for (int i = 0; i < argc; i++)
                args[i + 1] = argv[i];
            execv("/proc/self/exe", args);
            free(args); /* exec failed: go on with the default policy */
        }
    }
    if (argc >= 2 && !strcmp(argv[1], "token")) {
        if (argc >= 3 && !strcmp(argv[2], "add"))
            return token_add(argc - 1, argv + 1);
        fprintf(stderr, "serve token: use 'fxscreen serve token add NAME --role R --file F'\n");
        return FX_EXIT_USAGE;
    }
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"config", required_argument, 0, 'c'},
                                         {"listen", required_argument, 0, 'L'},
                                         {"open", no_argument, 0, 'O'},
                                         {"device", required_argument, 0, 'd'},
                                         {"precision", required_argument, 0, 'P'},
                                         {"method", required_argument, 0, 'M'},
                                         {"layer", required_argument, 0, 'l'},
                                         {"threshold", required_argument, 0, 'T'},
                                         {"max-batch", required_argument, 0, 'b'},
                                         {"max-wait-ms", required_argument, 0, 'w'},
                                         {"queue", required_argument, 0, 'q'},
                                         {"threads", required_argument, 0, 't'},
                                         {"max-upload", required_argument, 0, 'u'},
                                         {"result-ttl", required_argument, 0, 'e'},
                                         {"result-memory", required_argument, 0, 'r'},
                                         {"max-connections", required_argument, 0, 'C'},
                                         {"request-timeout", required_argument, 0, 'R'},
                                         {"auth", required_argument, 0, 'A'},
                                         {"insecure", no_argument, 0, 'I'},
                                         {"tls-cert", required_argument, 0, 'K'},
                                         {"tls-key", required_argument, 0, 'k'},
                                         {"audit", required_argument, 0, 'a'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    fx_serve_opts o;
    fx_serve_opts_default(&o);
    char host[256] = "127.0.0.1", *end;
    int open_browser = 0, c, v;
    fx_error err = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "m:c:L:d:P:M:l:T:b:w:q:t:u:e:r:C:R:A:IK:k:a:h", opts,
                            NULL)) != -1) {
        switch (c) {
        case 'A': o.auth = optarg; break;
        case 'I': o.insecure = 1; break;
        case 'K': o.tls_cert = optarg; break;
        case 'k': o.tls_key = optarg; break;
        case 'a': o.audit = optarg; break;
        case 'm': o.model = optarg; break;
        case 'c': o.config = optarg; break;
        case 'l': o.layer = optarg; break;
        case 'O': open_browser = 1; break;
        case 'L':
            if (!parse_listen(optarg, host, sizeof host, &o.port)) {
                fprintf(stderr,
                        "serve: --listen '%s': give ADDRESS:PORT, such as "
                        "127.0.0.1:8080 or [::1]:8080\n",
                        optarg);
                return FX_EXIT_USAGE;
            }
            break;
        case 'd':
            if (!fx_cli_device("serve", optarg, &o.device, &o.device_index))
                return FX_EXIT_USAGE;
            break;
        case 'P':
            if (!fx_cli_precision("serve", optarg, &o.precision))
                return FX_EXIT_USAGE;
            break;
        case 'M': {
            fx_cam_method cm;
            if (fx_cam_method_parse(optarg, &cm, &err) != FX_OK) {
                fprintf(stderr, "serve: --method: %s\n", err.msg);
                return FX_EXIT_USAGE;
            }
            o.method = (int)cm;
            break;
        }
        case 'T':
            o.threshold = strtod(optarg, &end);
            if (*end || !(o.threshold >= 0.0 && o.threshold <= 1.0)) {
                fprintf(stderr, "serve: --threshold '%s': want a number in [0, 1]\n", optarg);
                return FX_EXIT_USAGE;
            }
            break;
#define INT_OPT(ch, name, lo, hi, dst)                                                             \
    case ch:                                                                                       \
        if (!fx_cli_parse_int(optarg, lo, hi, &v)) {                                               \
            fprintf(stderr, "serve: --" name " '%s': give %d..%d\n", optarg, lo, hi);              \
            return FX_EXIT_USAGE;                                                                  \
        }                                                                                          \
        dst;                                                                                       \
        break;
            INT_OPT('b', "max-batch", 1, 256, o.max_batch = v)
            INT_OPT('w', "max-wait-ms", 0, 10000, o.max_wait_ms = v)
            INT_OPT('q', "queue", 1, 1000000, o.queue_max = v)
            INT_OPT('t', "threads", 0, 1024, o.threads = v)
            INT_OPT('u', "max-upload", 1, 65536, o.max_upload = (size_t)v << 20)
            INT_OPT('e', "result-ttl", 1, 86400 * 7, o.result_ttl_s = v)
            INT_OPT('r', "result-memory", 1, 1 << 20, o.result_memory = (size_t)v << 20)
            INT_OPT('C', "max-connections", 1, 100000, o.max_connections = v)
            INT_OPT('R', "request-timeout", 1, 86400, o.request_timeout_s = v)
#undef INT_OPT
        case 'h': serve_usage(stdout); return FX_EXIT_OK;
        default: serve_usage(stderr); return FX_EXIT_USAGE;
        }
    }
    if (!o.model || optind != argc) {
        fprintf(stderr, "serve: %s; usage: fxscreen serve --model M.onnx [--listen A:P]\n",
                !o.model ? "--model M.onnx is required" : "unexpected arguments");
        return FX_EXIT_USAGE;
    }
    if (open_browser) {
        snprintf(host, sizeof host, "127.0.0.1");
        o.port = 0;
    }
    o.host = host;
    o.log = stderr;
    /* SIGINT/SIGTERM/SIGHUP: a handler writes the signal's number into a
     * pipe that this thread reads.  Blocking them is not enough: threads
     * that libraries start before main (OpenBLAS's pool) have them
     * unblocked, and the default action there would kill the process. */
    if (pipe2(sig_pipe, O_CLOEXEC) != 0) {
        fprintf(stderr, "serve: cannot create the signal pipe\n");
        return FX_EXIT_FAIL;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    fx_serve *s;
    fx_status st = fx_serve_start(&o, &s, &err);
    if (st != FX_OK) {
        fprintf(stderr, "serve: %s\n", err.msg);
        return st == FX_ERR_NOMEM || st == FX_ERR_INTERNAL ? FX_EXIT_FAIL : FX_EXIT_USAGE;
    }
    char url[300];
    snprintf(url, sizeof url, strchr(host, ':') ? "%s://[%s]:%d/" : "%s://%s:%d/",
             o.tls_cert ? "https" : "http", host, fx_serve_port(s));
    printf("fxscreen serve: listening on %s\n", url);
    fflush(stdout);
    if (open_browser) {
        char *args[] = {"xdg-open", url, NULL};
        pid_t pid;
        if (posix_spawnp(&pid, "xdg-open", NULL, NULL, args, environ) != 0)
            fprintf(stderr, "serve: could not start xdg-open; open %s yourself\n", url);
    }
    int sig = 0;
    for (;;) {
        unsigned char b;
        ssize_t k = read(sig_pipe[0], &b, 1);
        if (k < 0 && errno == EINTR)
            continue;
        sig = k == 1 ? b : SIGTERM;
        if (sig != SIGHUP)
            break;
        fprintf(stderr, "serve: SIGHUP: %s\n", /* log rotation */
                fx_serve_reopen_audit(s) ? "cannot reopen the audit file; still writing the old one"
                                         : "audit file reopened");
    }
    fprintf(stderr, "serve: %s: finishing the requests in flight\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    fx_serve_stop(s, 30.0);
    fprintf(stderr, "serve: stopped\n");
    return FX_EXIT_OK;
}
#endif
