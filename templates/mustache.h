/*
 * mustache.h -- a compiled Mustache engine: parse a template once into a
 * program, render it many times into a capped struct buf. Implements the
 * spec's interpolation, sections, inverted sections, comments, partials,
 * set delimiters, inheritance (parents and blocks) and dynamic names;
 * lambdas are not supported.
 *
 * The renderer does not know any data format: a value is a (ops, handle)
 * pair and struct mu_ops says how to read it. mustache_json.c adapts
 * jansson; other backends (contact records, built-ins) supply their own
 * const table. Rendering allocates nothing when the output buffer already
 * has room.
 */
#ifndef GW_MUSTACHE_H
#define GW_MUSTACHE_H

#include <stddef.h>

#include "buf.h"

struct json_t;                      /* jansson, used by mustache_json.c only */
struct mu_prog;                     /* a compiled template */

/* Limits. A template or render that exceeds one fails with GW_ETOOBIG. */
#define MU_MAX_SOURCE    (1024u * 1024) /* template bytes */
#define MU_MAX_NEST      64     /* sections/blocks nested in one template */
#define MU_MAX_INCLUDE   32     /* partials/parents nested while rendering */
#define MU_MAX_DEPTH     256    /* sections + blocks + includes, in all */
#define MU_MAX_ROOTS     16     /* caller-supplied root frames */
#define MU_DEFAULT_STEPS 10000000ul /* template nodes visited by one render */

/* What a value is. Falsy in sections: NULL, FALSE, an empty list and an
 * empty string. Numbers are always truthy (so "0 points" renders). */
enum mu_type {
    MU_T_NULL,
    MU_T_FALSE,
    MU_T_TRUE,
    MU_T_STRING,
    MU_T_NUMBER,
    MU_T_LIST,
    MU_T_OBJECT,
};

/* A value: ops == NULL means "not found". The handle p belongs to the
 * backend and must stay valid for the whole render. */
struct mu_val {
    const struct mu_ops *ops;
    const void *p;
};

#define MU_SCRATCH 64           /* bytes a text callback may use */

/* A data backend, as a const table. The engine calls get only on
 * objects, count/at only on lists, text only on strings and numbers. */
struct mu_ops {
    enum mu_type (*type)(const void *p);
    /* Bytes of a string or number, not NUL-terminated. The result may
     * point into the value or into scratch (MU_SCRATCH bytes). */
    const char *(*text)(const void *p, char *scratch, size_t *len);
    /* Member name (len bytes, not NUL-terminated), or ops == NULL. */
    struct mu_val (*get)(const void *obj, const char *name, size_t len);
    size_t (*count)(const void *list);
    struct mu_val (*at)(const void *list, size_t i);
};

/* Where and why compile or render failed. */
struct mu_error {
    int code;               /* the value the call returned; 0 if none */
    unsigned line, col;     /* 1-based; col counts UTF-8 characters; 0: n/a */
    char msg[160];
};

enum mu_escape {
    MU_ESC_HTML,            /* {{x}} escapes & < > " ' (the default) */
    MU_ESC_NONE,            /* text, subject and SMS parts */
};

/* Resolves a partial or parent name (len bytes, not NUL-terminated) at
 * render time. Returns a borrowed program that must outlive the render,
 * or NULL when there is none (it then renders as empty). */
typedef const struct mu_prog *mu_partial_cb(void *arg, const char *name,
                                            size_t len);

struct mu_render_opts {
    enum mu_escape escape;
    /* A variable tag whose name is not found, or a partial that is not
     * found, fails the render with GW_ENOTFOUND. Sections still treat a
     * missing name as false. */
    int strict;
    mu_partial_cb *partial;         /* NULL: no partials */
    void *partial_arg;
    unsigned long max_steps;        /* 0: MU_DEFAULT_STEPS */
};

/*
 * Compile len bytes of src (borrowed; the program keeps its own copy of
 * what it needs). On success *out is a new program: mu_prog_free() it.
 * Returns 0, GW_EPARSE (err says where: unclosed tag or section,
 * mismatched end, bad delimiter or name), GW_ETOOBIG or -ENOMEM. err may
 * be NULL.
 */
int mu_compile(struct mu_prog **out, const char *src, size_t len,
               struct mu_error *err);
void mu_prog_free(struct mu_prog *prog);

/*
 * Render prog, appending to out (borrowed; its max caps the output).
 * roots[0..nroots) are the caller's context frames, closest first: a
 * name is looked up in roots[0] before roots[1]. Sections push frames in
 * front of them. opts may be NULL (HTML escaping, not strict, no
 * partials). Returns 0; GW_ETOOBIG (output cap, a limit above, nesting),
 * GW_ENOTFOUND (strict), GW_EINVAL, or -ENOMEM. On failure out->len is
 * restored to its value at entry. Allocates nothing unless out must grow.
 */
int mu_render(const struct mu_prog *prog, const struct mu_val *roots,
              size_t nroots, const struct mu_render_opts *opts,
              struct buf *out, struct mu_error *err);

/* A tag of a compiled program, as reported by mu_prog_tags(). */
enum mu_tag_kind {
    MU_TAG_VAR      = 0x01,     /* {{x}} */
    MU_TAG_RAW      = 0x02,     /* {{{x}}} and {{& x}}: never escaped */
    MU_TAG_SECTION  = 0x04,
    MU_TAG_INVERTED = 0x08,
    MU_TAG_PARTIAL  = 0x10,
    MU_TAG_PARENT   = 0x20,
    MU_TAG_BLOCK    = 0x40,
};

struct mu_tag {
    enum mu_tag_kind kind;
    const char *name;           /* NUL-terminated, owned by the program */
    size_t len;
    int dynamic;                /* {{>*name}}: name is looked up in data */
    unsigned line, col;
};

typedef int mu_tag_cb(void *arg, const struct mu_tag *tag);

/*
 * Call cb for every tag of prog whose kind is in the mask kinds, in
 * source order, including tags inside blocks passed to a parent. Partials
 * are other programs: check them separately. Stops at and returns the
 * first non-zero value cb returns; 0 otherwise. Use MU_TAG_RAW to refuse
 * unescaped recipient data in HTML parts.
 */
int mu_prog_tags(const struct mu_prog *prog, unsigned kinds, mu_tag_cb *cb,
                 void *arg);

/*
 * A named set of programs, e.g. the partials of a template set.
 * mu_lib_add takes prog (on success and on failure) and replaces (frees)
 * a program of the same name: never while a render may use it.
 */
struct mu_lib;

struct mu_lib *mu_lib_new(void);
void mu_lib_free(struct mu_lib *lib);
int mu_lib_add(struct mu_lib *lib, const char *name, size_t len,
               struct mu_prog *prog);
const struct mu_prog *mu_lib_get(const struct mu_lib *lib, const char *name,
                                 size_t len);
/* A mu_partial_cb over a struct mu_lib (pass the lib as arg). */
const struct mu_prog *mu_lib_partial(void *lib, const char *name, size_t len);

/* jansson adapter (mustache_json.c). Values are borrowed json_t. */
extern const struct mu_ops mu_json_ops;
struct mu_val mu_json_val(const struct json_t *v);
/* mu_render() with data as the only root frame. */
int mu_render_json(const struct mu_prog *prog, const struct json_t *data,
                   const struct mu_render_opts *opts, struct buf *out,
                   struct mu_error *err);

#endif
