/*
 * The steady job in C, the yardstick of `plantmeter bench steady --c-program`: N meters polled over
 * Modbus TCP (libmodbus, one connection each, unit 1, the SDM630 map: one read of input registers
 * 0..73, ten big-endian f32), every reading written as the agent's JSON payload to a journal file with
 * one fdatasync per round, then published at QoS 1 to an MQTT broker (libmosquitto, its own network
 * thread, at most 100 in flight). No store to read back and no audit: the least a gateway can do.
 *
 * Build (Debian: apt-get install -y libmodbus-dev libmosquitto-dev):
 *   cc -O2 -o steady-c agent/bench-c/steady.c $(pkg-config --cflags --libs libmodbus libmosquitto)
 * Run (until SIGTERM or SIGINT):
 *   steady-c SIM_HOST SIM_PORT BROKER_HOST BROKER_PORT METERS INTERVAL_S JOURNAL_FILE
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <modbus.h>
#include <mosquitto.h>

#define REGS 74
#define POINTS 10
#define PAYLOAD_MAX 1024
#define JOURNAL_MAX (4L << 20) /* rewound past this: the file stays bounded */

static const struct { const char *name; int addr; } POINT[POINTS] = {
    {"voltage_l1", 0},  {"voltage_l2", 2},    {"voltage_l3", 4},    {"current_l1", 6},
    {"current_l2", 8},  {"current_l3", 10},   {"total_power", 52},  {"power_factor", 62},
    {"frequency", 70},  {"energy_import", 72},
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static modbus_t *meter_connect(const char *host, int port) {
    modbus_t *ctx = modbus_new_tcp(host, port);
    if (ctx == NULL) return NULL;
    modbus_set_slave(ctx, 1);
    modbus_set_response_timeout(ctx, 1, 0);
    if (modbus_connect(ctx) == -1) {
        modbus_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The agent's payload: {"seq":..,"ts":"..","meter":"..","points":[{"name":..,"value":..,"unit":"x","quality":..},..]} */
static int payload(char *out, size_t cap, uint64_t seq, const struct timespec *wall, const char *meter,
                   const uint16_t *regs) {
    struct tm tm;
    gmtime_r(&wall->tv_sec, &tm);
    int n = snprintf(out, cap, "{\"seq\":%llu,\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\",\"meter\":\"%s\",\"points\":[",
                     (unsigned long long)seq, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, wall->tv_nsec / 1000000, meter);
    for (int p = 0; p < POINTS && n > 0 && (size_t)n < cap; p++) {
        if (regs != NULL)
            n += snprintf(out + n, cap - n, "%s{\"name\":\"%s\",\"value\":%.9g,\"unit\":\"x\",\"quality\":\"good\"}",
                          p ? "," : "", POINT[p].name, (double)modbus_get_float_abcd(regs + POINT[p].addr));
        else
            n += snprintf(out + n, cap - n, "%s{\"name\":\"%s\",\"value\":null,\"unit\":\"x\",\"quality\":\"comm_error\"}",
                          p ? "," : "", POINT[p].name);
    }
    if (n > 0 && (size_t)n < cap) n += snprintf(out + n, cap - n, "]}");
    return (n > 0 && (size_t)n < cap) ? n : -1;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s SIM_HOST SIM_PORT BROKER_HOST BROKER_PORT METERS INTERVAL_S JOURNAL_FILE\n", argv[0]);
        return 2;
    }
    const char *sim_host = argv[1], *broker_host = argv[3], *journal = argv[7];
    int sim_port = atoi(argv[2]), broker_port = atoi(argv[4]), meters = atoi(argv[5]);
    double interval = atof(argv[6]);
    if (meters < 1 || meters > 1000 || !(interval > 0)) {
        fprintf(stderr, "steady-c: METERS 1..1000 and a positive INTERVAL_S\n");
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    mosquitto_lib_init();
    struct mosquitto *mq = mosquitto_new("plantmeter-steady-c", true, NULL);
    if (mq == NULL) { fprintf(stderr, "steady-c: mosquitto_new failed\n"); return 1; }
    mosquitto_int_option(mq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    mosquitto_max_inflight_messages_set(mq, 100);
    if (mosquitto_connect(mq, broker_host, broker_port, 30) != MOSQ_ERR_SUCCESS ||
        mosquitto_loop_start(mq) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "steady-c: cannot connect to the broker %s:%d\n", broker_host, broker_port);
        return 1;
    }
    int fd = open(journal, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd == -1) { fprintf(stderr, "steady-c: %s: %s\n", journal, strerror(errno)); return 1; }

    modbus_t **ctx = calloc(meters, sizeof *ctx);
    char *round = malloc((size_t)meters * PAYLOAD_MAX);
    int *len = calloc(meters, sizeof *len);
    if (ctx == NULL || round == NULL || len == NULL) return 1;
    char topic[64], name[16];
    uint64_t seq = 1;
    off_t journal_at = 0;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (!stop) {
        size_t used = 0;
        for (int i = 0; i < meters; i++) {
            uint16_t regs[REGS];
            if (ctx[i] == NULL) ctx[i] = meter_connect(sim_host, sim_port);
            int ok = ctx[i] != NULL && modbus_read_input_registers(ctx[i], 0, REGS, regs) == REGS;
            if (!ok && ctx[i] != NULL) { modbus_close(ctx[i]); modbus_free(ctx[i]); ctx[i] = NULL; }
            struct timespec wall;
            clock_gettime(CLOCK_REALTIME, &wall);
            snprintf(name, sizeof name, "m%03d", i);
            len[i] = payload(round + used, PAYLOAD_MAX - 1, seq++, &wall, name, ok ? regs : NULL);
            if (len[i] < 0) len[i] = 0;
            round[used + len[i]] = '\n';
            used += (size_t)len[i] + 1;
        }
        /* The round on stable storage before it is published: one write, one fdatasync. */
        if (journal_at > JOURNAL_MAX) { lseek(fd, 0, SEEK_SET); journal_at = 0; }
        if (write(fd, round, used) == (ssize_t)used) journal_at += (off_t)used;
        fdatasync(fd);
        size_t at = 0;
        for (int i = 0; i < meters; i++) {
            snprintf(topic, sizeof topic, "plantmeter/plant-a/gw-c/data/m%03d", i);
            mosquitto_publish(mq, NULL, topic, len[i], round + at, 1, false);
            at += (size_t)len[i] + 1;
        }
        long ns = (long)(interval * 1e9);
        next.tv_sec += ns / 1000000000L;
        next.tv_nsec += ns % 1000000000L;
        if (next.tv_nsec >= 1000000000L) { next.tv_sec++; next.tv_nsec -= 1000000000L; }
        while (!stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {}
    }
    for (int i = 0; i < meters; i++)
        if (ctx[i] != NULL) { modbus_close(ctx[i]); modbus_free(ctx[i]); }
    mosquitto_disconnect(mq);
    mosquitto_loop_stop(mq, false);
    mosquitto_destroy(mq);
    mosquitto_lib_cleanup();
    close(fd);
    free(ctx); free(round); free(len);
    return 0;
}
