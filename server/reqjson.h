/*
 * reqjson.h — request bodies: JSON text to a typed C struct, hostile input assumed.
 *
 * reqjson_parse accepts exactly one JSON object: no duplicate keys, nesting at most 32
 * deep (checked on the raw bytes before jansson builds anything), no NUL in strings.
 * reqjson_decode then walks a field table: every field of the body must be in the table
 * (an unknown field is refused), each has a type and a range, and required ones must be
 * there. Failures fill a struct api_error with the contract's status, code and field.
 */
#ifndef CAPX_SERVER_REQJSON_H
#define CAPX_SERVER_REQJSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/capx.h"

#define REQJSON_MAX_DEPTH 32

/* An answer that is not 2xx: status, contract code, human message, field at fault. */
struct api_error {
    int status;
    const char *code;
    char message[256];
    char field[64];
    char allow[40]; /* 405: the methods the path takes, for the Allow header ("" otherwise) */
};

void api_error_set(struct api_error *e, int status, const char *code, const char *field,
                   const char *fmt, ...) PRINTF(5, 6);

enum jf_type {
    JF_INT,    /* int64_t; a JSON integer (not real, not string) within [min, max] */
    JF_STR,    /* const char * into the json_t; length [min, max] bytes; charset below */
    JF_BOOL,   /* int */
    JF_TIME,   /* int64_t Unix seconds from an RFC 3339 "Z" string */
    JF_HOUR,   /* like JF_TIME, and a whole hour */
    JF_STRARR, /* json_t * (borrowed) of strings, length [min, max], each a str with charset */
};

/* Character sets for JF_STR / JF_STRARR. */
enum jf_charset {
    JC_ANY = 0, /* printable UTF-8 without control characters */
    JC_TOKEN,   /* A-Z a-z 0-9 . _ - */
    JC_ID,      /* lower-case a-z 0-9 _ (object ids like ord_...) */
};

struct jfield {
    const char *name;
    enum jf_type type;
    int required;
    int64_t min, max;
    size_t off; /* offsetof in the destination struct */
    enum jf_charset charset;
};

/* Parse the body. 0 with *out (caller json_decref), or -1 with err (400 invalid_json). */
MUSTCHECK int reqjson_parse(const char *body, size_t len, json_t **out, struct api_error *err);

/* Max nesting depth of the JSON text (strings skipped). */
int reqjson_depth(const char *body, size_t len);

/*
 * Decode obj into dst by the table. *present gets bit i set for each field i found.
 * 0 ok, -1 with err (400 invalid_request with field).
 */
MUSTCHECK int reqjson_decode(json_t *obj, const struct jfield *fields, size_t n, void *dst,
                             uint64_t *present, struct api_error *err);

#endif
