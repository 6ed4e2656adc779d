/*
 * mustache_json.c -- jansson backend of the Mustache engine: struct
 * mu_ops over borrowed json_t values, and mu_render_json() for the
 * common case of one JSON document as the whole context.
 */
#include "mustache.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

/* jansson types map one to one, integers and reals are numbers. */
static enum mu_type
jtype(const void *p)
{
    switch (json_typeof((const json_t *)p)) {
    case JSON_OBJECT:  return MU_T_OBJECT;
    case JSON_ARRAY:   return MU_T_LIST;
    case JSON_STRING:  return MU_T_STRING;
    case JSON_INTEGER:
    case JSON_REAL:    return MU_T_NUMBER;
    case JSON_TRUE:    return MU_T_TRUE;
    case JSON_FALSE:   return MU_T_FALSE;
    default:           return MU_T_NULL;
    }
}

/* Decimal digits of v at the end of scratch, without printf's overhead. */
static const char *
int_text(json_int_t v, char *scratch, size_t *len)
{
    char *end = scratch + MU_SCRATCH, *p = end;
    unsigned long long u = v < 0 ? 0ull - (unsigned long long)v
                                 : (unsigned long long)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    *len = (size_t)(end - p);
    return p;
}

/* The shortest of %.15g and %.17g that reads back as the same double,
 * so 1.21 prints as "1.21" and not "1.2099999999999999". */
static const char *
real_text(double d, char *scratch, size_t *len)
{
    int n = snprintf(scratch, MU_SCRATCH, "%.15g", d);

    if (n > 0 && strtod(scratch, NULL) != d)
        n = snprintf(scratch, MU_SCRATCH, "%.17g", d);
    *len = n > 0 ? (size_t)n : 0;
    return scratch;
}

/* Strings are borrowed from jansson; numbers go to scratch. */
static const char *
jtext(const void *p, char *scratch, size_t *len)
{
    const json_t *v = p;

    switch (json_typeof(v)) {
    case JSON_STRING:
        *len = json_string_length(v);
        return json_string_value(v);
    case JSON_INTEGER:
        return int_text(json_integer_value(v), scratch, len);
    case JSON_REAL:
        return real_text(json_real_value(v), scratch, len);
    default:
        *len = 0;
        return "";
    }
}

static struct mu_val
jget(const void *obj, const char *name, size_t len)
{
    return mu_json_val(json_object_getn(obj, name, len));
}

static size_t
jcount(const void *list)
{
    return json_array_size(list);
}

static struct mu_val
jat(const void *list, size_t i)
{
    return mu_json_val(json_array_get(list, i));
}

const struct mu_ops mu_json_ops = {
    .type  = jtype,
    .text  = jtext,
    .get   = jget,
    .count = jcount,
    .at    = jat,
};

struct mu_val
mu_json_val(const struct json_t *v)
{
    struct mu_val r = { v ? &mu_json_ops : NULL, v };

    return r;
}

int
mu_render_json(const struct mu_prog *prog, const struct json_t *data,
               const struct mu_render_opts *opts, struct buf *out,
               struct mu_error *err)
{
    struct mu_val root = mu_json_val(data);

    return mu_render(prog, &root, data ? 1 : 0, opts, out, err);
}
