/* Long options of the form --name VALUE or --name=VALUE. */
#ifndef MQTTLOAD_OPTIONS_H
#define MQTTLOAD_OPTIONS_H

typedef struct {
    const char *name;
    char type; /* 's' string, 'i' int, 'u' uint64_t, 'd' double, 'b' flag */
    void *target;
    const char *help;
} option_t;

/* Parse argv against the scenario's table, then the common options. */
void parse_options(int argc, char **argv, const char *scenario,
                   const option_t *own);

#endif
