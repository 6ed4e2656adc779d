/*
 * log.h -- leveled logging with context. A log_ctx names the module and
 * what is being worked on ("campaign=spring-27 msg=..."), so every line
 * says where it came from. Levels are checked before formatting.
 */
#ifndef GW_LOG_H
#define GW_LOG_H

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };

struct log_ctx {
    const char *module;     /* "intake", "smtp", ... (static string) */
    const char *ctx;        /* optional context suffix, may be NULL */
};

extern enum log_level log_threshold;

/* Parse "error" | "warn" | "info" | "debug"; -1 if unknown. */
int log_level_parse(const char *s);

void log_write(const struct log_ctx *l, enum log_level lv, const char *fmt,
               ...) __attribute__((format(printf, 3, 4)));

#define log_at(l, lv, ...) \
    do { if ((lv) <= log_threshold) log_write((l), (lv), __VA_ARGS__); } \
    while (0)
#define log_error(l, ...) log_at(l, LOG_ERROR, __VA_ARGS__)
#define log_warn(l, ...)  log_at(l, LOG_WARN, __VA_ARGS__)
#define log_info(l, ...)  log_at(l, LOG_INFO, __VA_ARGS__)
#define log_debug(l, ...) log_at(l, LOG_DEBUG, __VA_ARGS__)

/* Start-up only: print and exit(1). */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
