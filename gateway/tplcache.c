/*
 * tplcache.c -- compiled template sets by name, for intake (is the job's
 * template usable?) and dispatch (render it). A template is the Redis
 * hash gw:tpl:NAME when that exists, else the folder NAME/ under
 * [templates] dir. Redis templates are reloaded when their `version`
 * field changes (checked at most every check_ms); folders on SIGHUP.
 * Sets are reference-counted: a message being sent keeps the set it was
 * rendered from (its inline images live there), so a reload never
 * changes a message half way.
 */
#include "gw.h"

#include "../common/err.h"
#include "../templates/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct log_ctx lg = { "templates", NULL };

struct tref {
    struct tpl *t;
    unsigned    refs;
};

struct tentry {
    struct tref *ref;           /* NULL: not usable, see error */
    char        *error;
    char        *version;       /* of a Redis template, or NULL */
    int          from_redis;
    uint64_t     checked;       /* uv_now of the last look */
};

struct tplcache {
    GHashTable *entries;        /* name -> struct tentry */
};

struct tref *
tref_get(struct tref *r)
{
    if (r)
        r->refs++;
    return r;
}

void
tref_put(struct tref *r)
{
    if (r && --r->refs == 0) {
        tpl_free(r->t);
        free(r);
    }
}

const struct tpl *
tref_tpl(const struct tref *r)
{
    return r ? r->t : NULL;
}

static void
tentry_free(gpointer p)
{
    struct tentry *e = p;

    tref_put(e->ref);
    free(e->error);
    free(e->version);
    free(e);
}

int
tplcache_init(struct gw *g)
{
    if ((g->tc = calloc(1, sizeof *g->tc)) == NULL)
        return -1;
    g->tc->entries = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                           tentry_free);
    return 0;
}

void
tplcache_free(struct gw *g)
{
    if (!g->tc)
        return;
    g_hash_table_destroy(g->tc->entries);
    free(g->tc);
    g->tc = NULL;
}

void
tplcache_clear(struct gw *g)
{
    g_hash_table_remove_all(g->tc->entries);
}

static void
set_entry(struct gw *g, const char *name, struct tpl *t, const char *error,
          const char *version, int from_redis)
{
    struct tentry *e = calloc(1, sizeof *e);

    if (!e)
        fatal("out of memory");
    if (t) {
        if ((e->ref = calloc(1, sizeof *e->ref)) == NULL)
            fatal("out of memory");
        e->ref->t = t;
        e->ref->refs = 1;
    }
    e->error = error ? strdup(error) : NULL;
    e->version = version ? strdup(version) : NULL;
    e->from_redis = from_redis;
    e->checked = uv_now(g->loop);
    g_hash_table_replace(g->tc->entries, g_strdup(name), e);
}

static void
load_dir(struct gw *g, const char *name)
{
    char path[4096], err[700];
    struct tpl_error te;
    struct tpl *t = NULL;
    int rc;

    snprintf(path, sizeof path, "%s/%s", g->conf->templates_dir, name);
    memset(&te, 0, sizeof te);
    rc = tpl_load_dir(&t, name, path, &te);
    if (rc == 0) {
        log_info(&lg, "loaded %s from %s", name, path);
        set_entry(g, name, t, NULL, NULL, 0);
        return;
    }
    if (rc == -ENOENT)
        snprintf(err, sizeof err, "template: no template '%.100s' (no hash "
                 "%.32stpl:%.100s, no folder %.200s)", name, g->k.prefix,
                 name, path);
    else
        snprintf(err, sizeof err, "template: %s",
                 tpl_error_format(&te, (char[400]){ 0 }, 400));
    log_warn(&lg, "%s", err);
    set_entry(g, name, NULL, err, NULL, 0);
}

static void
load_fields(struct gw *g, const char *name, const redisReply *rep)
{
    size_t n = rep->elements / 2, k = 0;
    struct tpl_field *f = calloc(n ? n : 1, sizeof *f);
    const char *version = NULL;
    struct tpl_error te;
    struct tpl *t = NULL;
    char err[600];

    if (!f)
        fatal("out of memory");
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        f[k].name = rep->element[i]->str;
        f[k].data = rep->element[i + 1]->str;
        f[k].len = rep->element[i + 1]->len;
        if (strcmp(f[k].name, "version") == 0)
            version = rep->element[i + 1]->str;
        k++;
    }
    memset(&te, 0, sizeof te);
    if (tpl_load_fields(&t, name, f, k, &te) == 0) {
        log_info(&lg, "loaded %s from %stpl:%s (version %s)", name,
                 g->k.prefix, name, version ? version : "-");
        set_entry(g, name, t, NULL, version, 1);
    } else {
        snprintf(err, sizeof err, "template: %s",
                 tpl_error_format(&te, (char[400]){ 0 }, 400));
        log_warn(&lg, "%s", err);
        set_entry(g, name, NULL, err, version, 1);
    }
    free(f);
}

struct ensure {
    struct gw *g;
    unsigned   pending;
    void     (*cb)(void *arg, int ok);
    void      *arg;
    int        failed;          /* Redis went away: try again later */
};

struct fetch {
    struct ensure *en;
    char          *name;
    int            step;        /* 0: version check, 1: whole hash */
};

static void fetch_done(struct ensure *en);

static void
on_hash(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct fetch *f = arg;
    struct gw *g = f->en->g;

    (void)r;
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        f->en->failed = 1;
    } else if (rep->elements == 0) {
        load_dir(g, f->name);
    } else {
        load_fields(g, f->name, rep);
    }
    fetch_done(f->en);
    g_free(f->name);
    free(f);
}

static void
on_version(struct gw_redis *r, redisReply *rep, void *arg)
{
    struct fetch *f = arg;
    struct gw *g = f->en->g;
    struct tentry *e = g_hash_table_lookup(g->tc->entries, f->name);
    char *key;

    (void)r;
    if (!rep || (rep->type != REDIS_REPLY_STRING &&
                 rep->type != REDIS_REPLY_NIL)) {
        f->en->failed = 1;
        goto done;
    }
    /* Unchanged version: keep the compiled set. Anything else (no hash,
     * no version field, a failure to retry): read the whole hash. */
    if (e && e->from_redis && e->version &&
        rep->type == REDIS_REPLY_STRING &&
        strcmp(e->version, rep->str) == 0) {
        e->checked = uv_now(g->loop);
        goto done;
    }
    key = g_strdup_printf("%stpl:%s", g->k.prefix, f->name);
    const char *argv[] = { "HGETALL", key };
    f->step = 1;
    if (gw_redis_cmd(g->cmd, on_hash, f, 0, 2, argv, NULL) == 0) {
        g_free(key);
        return;
    }
    g_free(key);
    f->en->failed = 1;
done:
    fetch_done(f->en);
    g_free(f->name);
    free(f);
}

static void
fetch_done(struct ensure *en)
{
    if (--en->pending > 0)
        return;
    en->cb(en->arg, !en->failed);
    free(en);
}

void
tplcache_ensure(struct gw *g, GPtrArray *names, void (*cb)(void *, int),
                void *arg)
{
    struct ensure *en = calloc(1, sizeof *en);
    uint64_t now = uv_now(g->loop);

    if (!en)
        fatal("out of memory");
    en->g = g;
    en->cb = cb;
    en->arg = arg;
    en->pending = 1;            /* held until every fetch is sent */
    for (guint i = 0; i < names->len; i++) {
        const char *name = g_ptr_array_index(names, i);
        struct tentry *e = g_hash_table_lookup(g->tc->entries, name);
        struct fetch *f;
        char *key;

        /* Folder templates stay until SIGHUP; Redis ones and failures are
         * looked at again after check_ms. */
        if (e && ((e->ref && !e->from_redis) ||
                  now - e->checked < (uint64_t)g->conf->templates_check_ms))
            continue;
        if ((f = calloc(1, sizeof *f)) == NULL)
            fatal("out of memory");
        f->en = en;
        f->name = g_strdup(name);
        key = g_strdup_printf("%stpl:%s", g->k.prefix, name);
        const char *argv[] = { "HGET", key, "version" };
        if (gw_redis_cmd(g->cmd, on_version, f, 0, 3, argv, NULL) == 0)
            en->pending++;
        else {
            en->failed = 1;
            g_free(f->name);
            free(f);
        }
        g_free(key);
    }
    fetch_done(en);
}

int
tplcache_get(struct gw *g, const char *name, struct tref **out,
             const char **error)
{
    struct tentry *e = g_hash_table_lookup(g->tc->entries, name);

    *out = NULL;
    if (!e) {
        *error = "template: not loaded yet";
        return GW_ENOTFOUND;
    }
    if (!e->ref) {
        *error = e->error;
        return GW_EINVAL;
    }
    *out = tref_get(e->ref);
    return 0;
}
