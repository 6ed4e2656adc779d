/*
 * test_inbound.c -- MO keyword matching: the STOP-type words in any case
 * with surrounding punctuation and space, START/UNSTOP, HELP, and texts
 * that merely contain a keyword.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "gateway/gw.h"

static void
test_keywords(void **state)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        { "STOP", "stop" }, { "stop", "stop" }, { " Stop! ", "stop" },
        { "STOPALL", "stop" }, { "stop all", "stop" },
        { "Unsubscribe.", "stop" }, { "CANCEL", "stop" }, { "end", "stop" },
        { "Quit", "stop" }, { "REVOKE", "stop" }, { "opt out", "stop" },
        { "Opt  Out!!", "stop" }, { "optout", "stop" }, { "\"stop\"", "stop" },
        { "stop \xf0\x9f\x99\x8f", "stop" },            /* with an emoji */
        { "START", "start" }, { "unstop", "start" }, { "help", "help" },
        { "HELP?", "help" },
        { "please stop sending", "none" }, { "stopped", "none" },
        { "", "none" }, { "!!!", "none" }, { "yes", "none" },
        { "a very long message that is certainly not a keyword at all",
          "none" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = mo_keyword(cases[i].text);
        if (strcmp(got, cases[i].want) != 0)
            fail_msg("'%s': got %s, want %s", cases[i].text, got,
                     cases[i].want);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keywords),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
