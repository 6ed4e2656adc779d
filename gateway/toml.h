/*
 * toml.h -- our TOML 1.0 parser (no C TOML library is packaged for Debian
 * 12). It parses a whole document into a tree of nodes that remember the
 * line and column where each key was written, so config errors can say
 * file:line:col. Checked against the toml-test suite in tests/unit.
 */
#ifndef GW_TOML_H
#define GW_TOML_H

#include <stddef.h>
#include <stdint.h>

enum toml_type {
    TOML_TABLE,
    TOML_ARRAY,
    TOML_STRING,
    TOML_INT,
    TOML_FLOAT,
    TOML_BOOL,
    TOML_DATETIME,        /* offset date-time, e.g. 1979-05-27T07:32:00Z  */
    TOML_DATETIME_LOCAL,  /* 1979-05-27T07:32:00                           */
    TOML_DATE_LOCAL,      /* 1979-05-27                                    */
    TOML_TIME_LOCAL,      /* 07:32:00                                      */
};

struct toml_node {
    enum toml_type    type;
    char             *key;    /* key in the parent table; NULL in arrays */
    size_t            keylen; /* length of key: a quoted key may hold NULs */
    int               line;   /* 1-based position of the key (or of the  */
    int               col;    /* value, for array elements)              */
    int               vline;  /* 1-based position of the value itself    */
    int               vcol;   /* (0 for tables made by headers, --set)   */
    struct toml_node *parent;
    struct toml_node *next;   /* next sibling, in document order */
    struct toml_node *child;  /* first child of a table or an array */
    size_t            nchild;
    union {
        struct { char *s; size_t len; } str; /* STRING (may hold NULs) and
                                                the four date/time types, as
                                                written after normalising
                                                the 'T' and case */
        int64_t  i;
        double   f;
        int      b;
    } u;
    unsigned          flags;  /* internal: how the table/array was made */
};

struct toml_error {
    int  line;                /* 1-based; 0 if unknown */
    int  col;
    char msg[200];
};

/* Parse len bytes of src. On success *out is a new TABLE root (free with
 * toml_free). On failure returns GW_EPARSE and fills err. */
int toml_parse(struct toml_node **out, const char *src, size_t len,
               struct toml_error *err);

/* Free a tree returned by toml_parse; toml_free(NULL) does nothing. */
void toml_free(struct toml_node *n);

/* Borrowed pointer to the child of table t named key, or NULL. */
struct toml_node *toml_get(const struct toml_node *t, const char *key);

/* Set (or replace) dotted path "a.b.c" in root to the value parsed from
 * the TOML value text v (e.g. "8080", "\"x\"", "[1,2]"). Missing tables are
 * created. Used by --set. Returns 0 or GW_EPARSE (err filled). */
int toml_set_path(struct toml_node *root, const char *path, const char *v,
                  struct toml_error *err);

/* A static name for a type: "table", "array", "string", "integer", ... */
const char *toml_type_name(enum toml_type t);

#endif
