/* Command line, JSON output and small process helpers for mqttload. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "loadgen.h"
#include "options.h"

common_opts_t g_opts = {
    .host = "127.0.0.1",
    .port = 1883,
    .version = 5,
    .duration = 5.0,
    .warmup = 0.5,
    .timeout = 10.0,
    .count = 5000000,
    .broker_pid = 0,
    .prefix = "mqttload",
};

static const option_t common_options[] = {
    {"host", 's', &g_opts.host, "broker IPv4 address (loopback)"},
    {"port", 'i', &g_opts.port, "broker TCP port"},
    {"mqtt", 'i', &g_opts.version, "protocol level: 4 (3.1.1) or 5"},
    {"duration", 'd', &g_opts.duration, "seconds of measurement"},
    {"warmup", 'd', &g_opts.warmup, "seconds of load before measuring"},
    {"timeout", 'd', &g_opts.timeout, "seconds any single wait may take"},
    {"count", 'u', &g_opts.count, "upper bound on messages or connections"},
    {"broker-pid", 'i', &g_opts.broker_pid,
     "broker pid, for its VmRSS and its CPU time while measuring"},
    {"prefix", 's', &g_opts.prefix, "client id and topic prefix"},
    {"turn-us", 'd', &g_opts.turn_us,
     "minimum event-loop turn in microseconds: longer turns let bytes pile "
     "up, so each read(2) and write(2) moves more packets"},
    {NULL, 0, NULL, NULL},
};

static void print_table(const option_t *table)
{
    for (const option_t *o = table; o && o->name; o++)
        fprintf(stderr, "  --%-22s %s\n", o->name, o->help);
}

static void usage(const char *scenario, const option_t *own)
{
    fprintf(stderr, "usage: mqttload %s [OPTIONS]\n\ncommon options:\n",
            scenario);
    print_table(common_options);
    if (own && own->name) {
        fprintf(stderr, "\n%s options:\n", scenario);
        print_table(own);
    }
    exit(2);
}

static const option_t *find_option(const option_t *table, const char *name,
                                   size_t len)
{
    for (const option_t *o = table; o && o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len))
            return o;
    return NULL;
}

static void set_option(const option_t *o, const char *value)
{
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case 's':
        *(const char **)o->target = value;
        return;
    case 'i':
        *(int *)o->target = (int)strtol(value, &end, 10);
        break;
    case 'u':
        *(uint64_t *)o->target = strtoull(value, &end, 10);
        break;
    case 'd':
        *(double *)o->target = strtod(value, &end);
        break;
    }
    if (errno || !end || *end || end == value)
        die("invalid value %s for --%s", value, o->name);
}

void parse_options(int argc, char **argv, const char *scenario,
                   const option_t *own)
{
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help"))
            usage(scenario, own);
        if (strncmp(arg, "--", 2))
            die("unexpected argument %s (options start with --)", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const option_t *o = find_option(own, name, len);
        if (!o)
            o = find_option(common_options, name, len);
        if (!o)
            die("unknown option %s for scenario %s", arg, scenario);
        if (o->type == 'b') {
            *(bool *)o->target = true;
            continue;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value)
            die("option --%s needs a value", o->name);
        set_option(o, value);
    }
    if (g_opts.version != 4 && g_opts.version != 5)
        die("--mqtt must be 4 or 5, not %d", g_opts.version);
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mqttload: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

cpu_mark_t cpu_mark(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (cpu_mark_t){
        .user_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6,
        .sys_s = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6,
        .wall_ns = now_ns(),
    };
}

static bool json_first;

static void json_key(const char *key)
{
    printf("%s\"%s\": ", json_first ? "" : ", ", key);
    json_first = false;
}

void json_begin(const char *scenario)
{
    json_first = true;
    putchar('{');
    json_str("scenario", scenario);
    json_int("port", g_opts.port);
    json_int("mqtt_version", g_opts.version);
}

void json_int(const char *key, long long v)
{
    json_key(key);
    printf("%lld", v);
}

void json_num(const char *key, double v)
{
    json_key(key);
    printf("%.6g", v);
}

void json_bool(const char *key, bool v)
{
    json_key(key);
    fputs(v ? "true" : "false", stdout);
}

void json_str(const char *key, const char *v)
{
    json_key(key);
    putchar('"');
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\')
            printf("\\%c", *p);
        else if ((unsigned char)*p < 0x20)
            printf("\\u%04x", *p);
        else
            putchar(*p);
    }
    putchar('"');
}

void json_end(cpu_mark_t start)
{
    cpu_mark_t end = cpu_mark();
    double wall = (end.wall_ns - start.wall_ns) / 1e9;
    double user = end.user_s - start.user_s;
    double sys = end.sys_s - start.sys_s;
    json_num("loadgen_cpu_user_s", user);
    json_num("loadgen_cpu_sys_s", sys);
    json_num("loadgen_wall_s", wall);
    json_num("loadgen_cpu_fraction", wall > 0 ? (user + sys) / wall : 0);
    puts("}");
    fflush(stdout);
}

long read_vmrss_kib(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

double read_cpu_seconds(int pid)
{
    if (pid <= 0)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[1024];
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    /* The command name may contain spaces; fields resume after its ')'.
     * utime and stime are fields 14 and 15, the 12th and 13th after it. */
    char *p = ok ? strrchr(line, ')') : NULL;
    if (!p)
        return -1;
    unsigned long long utime = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
               &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

void json_broker_cpu(double cpu_start, double cpu_end, double wall_s,
                     double count, const char *per_cpu_key)
{
    if (cpu_start < 0 || cpu_end < 0)
        return;
    double cpu = cpu_end - cpu_start;
    json_num("broker_window_cpu_s", cpu);
    json_num("broker_window_cpu_fraction", wall_s > 0 ? cpu / wall_s : 0);
    json_num(per_cpu_key, cpu > 0 ? count / cpu : 0);
}

void raise_fd_limit(long wanted)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("getrlimit failed: %s", strerror(errno));
    if ((long)rl.rlim_cur >= wanted)
        return;
    if ((long)rl.rlim_max < wanted)
        rl.rlim_max = (rlim_t)wanted; /* succeeds only with privilege */
    rl.rlim_cur = (rlim_t)wanted;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        die("cannot raise the open file limit to %ld: %s (try ulimit -n)",
            wanted, strerror(errno));
}

char **read_lines(const char *path, size_t *count)
{
    FILE *f = fopen(path, "r");
    if (!f)
        die("cannot open %s: %s", path, strerror(errno));
    char **lines = NULL;
    size_t n = 0, cap = 0;
    char *line = NULL;
    size_t line_cap = 0;
    ssize_t len;
    while ((len = getline(&line, &line_cap, f)) >= 0) {
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = 0;
        if (!len)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            lines = realloc(lines, cap * sizeof *lines);
            if (!lines)
                die("out of memory reading %s", path);
        }
        lines[n++] = strdup(line);
    }
    free(line);
    fclose(f);
    if (!n)
        die("%s contains no lines", path);
    *count = n;
    return lines;
}

static const struct {
    const char *name;
    int (*run)(int, char **);
    const char *help;
} scenarios[] = {
    {"pubsub", run_pubsub, "publishers and subscribers: fan-in, fan-out"},
    {"connect", run_connect, "connection rate: CONNECT, CONNACK, DISCONNECT"},
    {"idle", run_idle, "broker memory per idle connection"},
    {"latency", run_latency, "end-to-end latency at a fixed message rate"},
    {"reauth", run_reauth, "MQTT 5 re-authentication (AUTH 0x19) rate"},
};

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: mqttload SCENARIO [OPTIONS]  (--help per "
                        "scenario)\n\nscenarios:\n");
        for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++)
            fprintf(stderr, "  %-10s %s\n", scenarios[i].name,
                    scenarios[i].help);
        return 2;
    }
    for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++)
        if (!strcmp(argv[1], scenarios[i].name))
            return scenarios[i].run(argc - 2, argv + 2);
    die("unknown scenario %s", argv[1]);
}
