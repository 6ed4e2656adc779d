/*
 * test_state.c -- tests for the delivery state machine (gateway/state.c)
 * against DESIGN.md section 4: final states go nowhere, a table of allowed
 * and forbidden transitions, "never backwards" over the whole table, state
 * names round trip, and msg_state_lua: every state is in it, its ALLOWED
 * and FINAL tables (read back by a small scanner here) agree with the C
 * functions, the output is capped, and luac5.1/lua5.1 accepts it when one
 * is installed (that part is skipped otherwise).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "err.h"
#include "gateway/state.h"

#define LUA_MAX 8192

static const enum msg_state finals[] = {
    ST_DELIVERED, ST_BOUNCED, ST_FAILED, ST_EXPIRED, ST_SUPPRESSED,
    ST_CAPPED, ST_CANCELLED,
};

static int
is_final(enum msg_state s)
{
    for (size_t i = 0; i < sizeof finals / sizeof finals[0]; i++)
        if (finals[i] == s)
            return 1;
    return 0;
}

static void
test_finals(void **state)
{
    (void)state;
    for (int s = 0; s < ST_COUNT; s++) {
        int outgoing = 0;

        if (msg_state_final((enum msg_state)s) != is_final((enum msg_state)s))
            print_error("msg_state_final(%s)\n", msg_state_name(s));
        assert_int_equal(msg_state_final((enum msg_state)s) != 0,
                         is_final((enum msg_state)s));
        for (int t = 0; t < ST_COUNT; t++)
            if (msg_transition_ok((enum msg_state)s, (enum msg_state)t))
                outgoing++;
        if (is_final((enum msg_state)s) && outgoing)
            print_error("final state %s has %d outgoing transitions\n",
                        msg_state_name(s), outgoing);
        /* a final state goes nowhere; every other state goes somewhere */
        assert_int_equal(outgoing == 0, is_final((enum msg_state)s));
    }
    assert_false(msg_state_final(ST_COUNT));
}

static const struct {
    enum msg_state from, to;
    int ok;
} transitions[] = {
    /* the forward path */
    { ST_NONE, ST_QUEUED, 1 },
    { ST_QUEUED, ST_SENDING, 1 },
    { ST_QUEUED, ST_DEFERRED, 1 },
    { ST_DEFERRED, ST_SENDING, 1 },
    { ST_SENDING, ST_ACCEPTED, 1 },
    { ST_ACCEPTED, ST_DELIVERED, 1 },
    { ST_ACCEPTED, ST_BOUNCED, 1 },
    { ST_ACCEPTED, ST_FAILED, 1 },
    { ST_ACCEPTED, ST_EXPIRED, 1 },
    /* temporary errors go back to deferred; in-doubt resend */
    { ST_SENDING, ST_DEFERRED, 1 },
    { ST_SENDING, ST_SENDING, 1 },
    /* final outcomes straight from a send (5xx, synchronous DLR) */
    { ST_SENDING, ST_FAILED, 1 },
    { ST_SENDING, ST_BOUNCED, 1 },
    { ST_SENDING, ST_DELIVERED, 1 },
    { ST_DEFERRED, ST_EXPIRED, 1 },
    { ST_DEFERRED, ST_FAILED, 1 },
    { ST_QUEUED, ST_EXPIRED, 1 },
    /* terminal skips before a send */
    { ST_QUEUED, ST_SUPPRESSED, 1 },
    { ST_QUEUED, ST_CAPPED, 1 },
    { ST_QUEUED, ST_CANCELLED, 1 },
    { ST_DEFERRED, ST_SUPPRESSED, 1 },
    { ST_DEFERRED, ST_CAPPED, 1 },
    { ST_DEFERRED, ST_CANCELLED, 1 },

    /* never backwards */
    { ST_DELIVERED, ST_SENDING, 0 },
    { ST_ACCEPTED, ST_QUEUED, 0 },
    { ST_FAILED, ST_DEFERRED, 0 },
    { ST_ACCEPTED, ST_SENDING, 0 },
    { ST_ACCEPTED, ST_DEFERRED, 1 },   /* provider retry (busy fax line) */
    { ST_SENDING, ST_QUEUED, 0 },
    { ST_DEFERRED, ST_QUEUED, 0 },
    { ST_QUEUED, ST_NONE, 0 },
    { ST_SENDING, ST_NONE, 0 },
    { ST_BOUNCED, ST_DELIVERED, 0 },
    { ST_DELIVERED, ST_BOUNCED, 0 },
    { ST_EXPIRED, ST_SENDING, 0 },
    { ST_CANCELLED, ST_QUEUED, 0 },
    { ST_SUPPRESSED, ST_SENDING, 0 },
    { ST_CAPPED, ST_DEFERRED, 0 },
    { ST_DELIVERED, ST_DELIVERED, 0 },
    /* sending is written before every network call: no skipping it */
    { ST_QUEUED, ST_ACCEPTED, 0 },
    { ST_QUEUED, ST_DELIVERED, 0 },
    { ST_DEFERRED, ST_ACCEPTED, 0 },
    { ST_DEFERRED, ST_BOUNCED, 0 },
    { ST_NONE, ST_SENDING, 0 },
    { ST_NONE, ST_DELIVERED, 0 },
    /* out of range */
    { ST_COUNT, ST_QUEUED, 0 },
    { ST_QUEUED, ST_COUNT, 0 },
    { (enum msg_state)-1, ST_QUEUED, 0 },
};

static void
test_transition_table(void **state)
{
    int bad = 0;

    (void)state;
    for (size_t i = 0; i < sizeof transitions / sizeof transitions[0];
         i++) {
        int got = msg_transition_ok(transitions[i].from, transitions[i].to);
        if ((got != 0) != transitions[i].ok) {
            print_error("%s -> %s: %s, expected %s\n",
                        msg_state_name(transitions[i].from),
                        msg_state_name(transitions[i].to),
                        got ? "allowed" : "forbidden",
                        transitions[i].ok ? "allowed" : "forbidden");
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* Position along queued -> deferred* -> sending -> accepted -> final. */
static int
rank(enum msg_state s)
{
    switch (s) {
    case ST_NONE:     return 0;
    case ST_QUEUED:   return 1;
    case ST_DEFERRED: return 2;
    case ST_SENDING:  return 3;
    case ST_ACCEPTED: return 4;
    default:          return 5;
    }
}

/* Over the whole table: every allowed move goes forward, except the retry
 * loops (sending -> deferred; accepted -> deferred when the provider could
 * not deliver this time, a busy fax line) and the in-doubt resend
 * (sending -> sending). */
static void
test_never_backwards(void **state)
{
    int bad = 0;

    (void)state;
    for (int f = 0; f < ST_COUNT; f++)
        for (int t = 0; t < ST_COUNT; t++) {
            if (!msg_transition_ok((enum msg_state)f, (enum msg_state)t))
                continue;
            if (f == ST_SENDING && (t == ST_DEFERRED || t == ST_SENDING))
                continue;
            if (f == ST_ACCEPTED && t == ST_DEFERRED)
                continue;
            if (rank((enum msg_state)t) <= rank((enum msg_state)f)) {
                print_error("backwards: %s -> %s\n", msg_state_name(f),
                            msg_state_name(t));
                bad++;
            }
        }
    assert_int_equal(bad, 0);
}

static void
test_names(void **state)
{
    static const char *const want[ST_COUNT] = {
        "", "queued", "deferred", "sending", "accepted", "delivered",
        "bounced", "failed", "expired", "suppressed", "capped", "cancelled"
    };

    (void)state;
    for (int s = 0; s < ST_COUNT; s++) {
        assert_string_equal(msg_state_name((enum msg_state)s), want[s]);
        assert_int_equal(msg_state_parse(msg_state_name((enum msg_state)s)),
                         s);
    }
    assert_int_equal(msg_state_parse(""), ST_NONE);
    assert_int_equal(msg_state_parse("Queued"), -1);
    assert_int_equal(msg_state_parse("queued "), -1);
    assert_int_equal(msg_state_parse("bogus"), -1);
    assert_int_equal(msg_state_parse("?"), -1);
    assert_string_equal(msg_state_name(ST_COUNT), "?");
    assert_string_equal(msg_state_name((enum msg_state)-1), "?");
}

/* ------------------------------------------------------------------ */
/* msg_state_lua */

/* Expect the literal lit at *p and step over it. */
static int
eat(const char **p, const char *lit)
{
    size_t n = strlen(lit);

    if (strncmp(*p, lit, n) != 0)
        return 0;
    *p += n;
    return 1;
}

/* ["name"] -> state, or -1. */
static int
eat_key(const char **p)
{
    const char *q;
    char name[32];
    size_t n;

    if (!eat(p, "[\"") || (q = strchr(*p, '"')) == NULL ||
        (n = (size_t)(q - *p)) >= sizeof name)
        return -1;
    memcpy(name, *p, n);
    name[n] = 0;
    *p = q + 1;
    if (!eat(p, "]"))
        return -1;
    return msg_state_parse(name);
}

/*
 * Read the generated Lua back into allowed[from][to] and final[s]: it is
 * local ALLOWED = {["from"]={["to"]=true,...},...}\nlocal FINAL = {...}\n
 * Returns 0, or the offset + 1 where the text stopped making sense.
 */
static size_t
scan_lua(const char *lua, int allowed[ST_COUNT][ST_COUNT],
         int final[ST_COUNT], int seen[ST_COUNT])
{
    const char *p = lua;
    int f, t;

    memset(allowed, 0, sizeof(int) * ST_COUNT * ST_COUNT);
    memset(final, 0, sizeof(int) * ST_COUNT);
    memset(seen, 0, sizeof(int) * ST_COUNT);
    if (!eat(&p, "local ALLOWED = {"))
        return (size_t)(p - lua) + 1;
    while (!eat(&p, "}")) {
        if ((f = eat_key(&p)) < 0 || !eat(&p, "={"))
            return (size_t)(p - lua) + 1;
        seen[f]++;
        while (!eat(&p, "}")) {
            if ((t = eat_key(&p)) < 0 || !eat(&p, "=true,"))
                return (size_t)(p - lua) + 1;
            allowed[f][t]++;
        }
        if (!eat(&p, ","))
            return (size_t)(p - lua) + 1;
    }
    if (!eat(&p, "\nlocal FINAL = {"))
        return (size_t)(p - lua) + 1;
    while (!eat(&p, "}")) {
        if ((t = eat_key(&p)) < 0 || !eat(&p, "=true,"))
            return (size_t)(p - lua) + 1;
        final[t]++;
    }
    if (!eat(&p, "\n") || *p)
        return (size_t)(p - lua) + 1;
    return 0;
}

static void
test_lua_tables(void **state)
{
    char lua[LUA_MAX];
    int allowed[ST_COUNT][ST_COUNT], final[ST_COUNT], seen[ST_COUNT];
    size_t at;
    char key[40];

    (void)state;
    assert_int_equal(msg_state_lua(lua, sizeof lua), 0);
    /* every state is named */
    for (int s = 0; s < ST_COUNT; s++) {
        snprintf(key, sizeof key, "[\"%s\"]", msg_state_name(s));
        if (!strstr(lua, key))
            print_error("%s not in:\n%s\n", key, lua);
        assert_non_null(strstr(lua, key));
    }
    at = scan_lua(lua, allowed, final, seen);
    if (at)
        print_error("unexpected text at offset %zu: %.40s\n", at - 1,
                    lua + at - 1);
    assert_int_equal(at, 0);
    /* the tables say what the C functions say, each entry once */
    for (int f = 0; f < ST_COUNT; f++) {
        assert_int_equal(seen[f], 1);
        assert_int_equal(final[f], msg_state_final((enum msg_state)f) != 0);
        for (int t = 0; t < ST_COUNT; t++)
            assert_int_equal(allowed[f][t],
                             msg_transition_ok((enum msg_state)f,
                                               (enum msg_state)t) != 0);
    }
}

static void
test_lua_capped(void **state)
{
    char lua[LUA_MAX], small[LUA_MAX];
    size_t len;

    (void)state;
    assert_int_equal(msg_state_lua(lua, sizeof lua), 0);
    len = strlen(lua);
    assert_true(len > 0 && len < sizeof lua - 1);
    /* exactly enough room */
    memset(small, 'x', sizeof small);
    assert_int_equal(msg_state_lua(small, len + 1), 0);
    assert_string_equal(small, lua);
    /* one byte short, and much too short: an error, still terminated
     * within the buffer */
    memset(small, 'x', sizeof small);
    assert_int_equal(msg_state_lua(small, len), GW_ETOOBIG);
    assert_true(memchr(small, 0, len) != NULL);
    assert_int_equal(small[len], 'x');
    memset(small, 'x', sizeof small);
    assert_int_equal(msg_state_lua(small, 10), GW_ETOOBIG);
    assert_true(memchr(small, 0, 10) != NULL);
    assert_int_equal(small[10], 'x');
}

/* The first of luac5.1/lua5.1 on PATH, or NULL. */
static const char *
find_lua(int *is_luac)
{
    static const char *const names[] = { "luac5.1", "lua5.1" };
    const char *path = getenv("PATH");
    char buf[4096];

    for (size_t i = 0; path && i < 2; i++) {
        const char *p = path;
        while (*p) {
            size_t n = strcspn(p, ":");
            snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, names[i]);
            if (n && access(buf, X_OK) == 0) {
                *is_luac = i == 0;
                return names[i];
            }
            p += n;
            if (*p == ':')
                p++;
        }
    }
    return NULL;
}

static void
test_lua_parses(void **state)
{
    char lua[LUA_MAX], file[] = "/tmp/test_state.XXXXXX";
    char cmd[256];
    const char *prog;
    int is_luac = 0, fd, rc;
    FILE *f;

    (void)state;
    if ((prog = find_lua(&is_luac)) == NULL) {
        print_message("no luac5.1 or lua5.1 on PATH: Lua syntax check "
                      "skipped\n");
        skip();
    }
    assert_int_equal(msg_state_lua(lua, sizeof lua), 0);
    fd = mkstemp(file);
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(lua, f);
    /* use the tables so lua5.1 also checks they are what we think */
    if (!is_luac)
        fputs("assert(ALLOWED.sending.sending and ALLOWED.queued.sending)\n"
              "assert(next(ALLOWED.delivered) == nil)\n"
              "assert(FINAL.cancelled and not FINAL.accepted)\n", f);
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof cmd, "%s %s %s", prog, is_luac ? "-p" : "", file);
    rc = system(cmd);
    unlink(file);
    assert_true(rc != -1 && WIFEXITED(rc));
    assert_int_equal(WEXITSTATUS(rc), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_finals),
        cmocka_unit_test(test_transition_table),
        cmocka_unit_test(test_never_backwards),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_lua_tables),
        cmocka_unit_test(test_lua_capped),
        cmocka_unit_test(test_lua_parses),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
