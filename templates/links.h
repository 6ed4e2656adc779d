/*
 * links.h -- click and open tracking for rendered HTML email: rewrite
 * every trackable <a href>/<area href> through a callback and add an open
 * pixel, copying every other byte as the marketer wrote it; and tell
 * machine-made opens and clicks (privacy proxies, scanners) from people.
 */
#ifndef GW_LINKS_H
#define GW_LINKS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Longest decoded href handed to the callback, and longest replacement
 * taken back from it; longer ones leave the link as it was. */
#define LINKS_URL_MAX (16u * 1024)

/* Hits sooner than this after delivery are machines (links_is_machine). */
#define LINKS_OPEN_MIN_MS  2000
#define LINKS_CLICK_MIN_MS 5000

/* Called for each <a href> (and <area href>) worth tracking: http(s) URLs
 * only -- not mailto:, tel:, #fragment, relative URLs, the unsubscribe URL
 * (the caller passes it to skip), or hrefs with template-looking leftovers.
 * url is the value as a browser would follow it: character references
 * decoded, leading and trailing spaces and controls and every tab, CR and
 * LF removed; NUL-terminated, borrowed for the call. index counts the
 * links offered so far in this document (0, 1, ...). Writes the
 * replacement URL into out (empty on entry, capped at LINKS_URL_MAX; not
 * escaped: links_rewrite escapes it) and returns 0, or <0 to leave the
 * link as is (so does writing nothing or a NUL byte); a callback whose
 * buf_* call fails must return that error, or a cut URL would be used. */
typedef int links_url_cb(void *arg, const char *url, size_t len, int index,
                         struct buf *out);

/* Rewrite html (len bytes, UTF-8 expected but not required) into out
 * (appended): every trackable href replaced by cb's URL, attribute-escaped
 * in double quotes; everything else byte for byte as it was. Comments,
 * <script>/<style> and the other raw-text elements, CDATA sections,
 * DOCTYPE and processing instructions are skipped; so is a tag left open
 * at the end of the input. skip_url (NULL or "": none) is compared with
 * the decoded URL. pixel_url (NULL or "": none): an <img src="..."
 * width="1" height="1" alt="" style="display:none"> inserted just before
 * the first </body>, or appended at the end when there is none.
 * All pointers are borrowed. Returns 0, GW_ETOOBIG when out's cap is hit,
 * or -ENOMEM; on error out is left as it was. */
int links_rewrite(const char *html, size_t len, const char *skip_url,
                  links_url_cb *cb, void *arg, const char *pixel_url,
                  struct buf *out);

/* 1: the hit is machine-made (mail privacy proxies, image proxies,
 * security scanners, link checkers), 0: likely a person. user_agent and ip
 * (dotted IPv4 or IPv6 text) may be NULL; ms_since_delivery < 0: unknown.
 * The rules are listed in links.c. */
int links_is_machine(const char *user_agent, const char *ip,
                     int64_t ms_since_delivery, int is_click);

/* The same, naming the rule that matched (a static string such as
 * "ua:googleimageproxy", "ip:apple", "time:open"), or NULL for a person:
 * for logs and metrics. */
const char *links_machine_rule(const char *user_agent, const char *ip,
                               int64_t ms_since_delivery, int is_click);

#endif
