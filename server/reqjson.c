/*
 * reqjson.c — see reqjson.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/timefmt.h"
#include "server/reqjson.h"

void api_error_set(struct api_error *e, int status, const char *code, const char *field,
                   const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    snprintf(e->field, sizeof e->field, "%s", field ? field : "");
    e->allow[0] = '\0';
}

int reqjson_depth(const char *s, size_t len)
{
    int depth = 0, max = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            continue;
        }
        if (c == '"')
            in_str = 1;
        else if (c == '{' || c == '[') {
            if (++depth > max)
                max = depth;
        } else if (c == '}' || c == ']')
            depth--;
    }
    return max;
}

int reqjson_parse(const char *body, size_t len, json_t **out, struct api_error *err)
{
    json_error_t je;
    *out = NULL;
    if (len == 0) {
        api_error_set(err, 400, "invalid_json", NULL, "request body must be a JSON object");
        return -1;
    }
    if (reqjson_depth(body, len) > REQJSON_MAX_DEPTH) {
        api_error_set(err, 400, "invalid_json", NULL, "JSON nesting deeper than %d",
                      REQJSON_MAX_DEPTH);
        return -1;
    }
    /* \u0000 is valid JSON: it is parsed, and refused by the field it is in (has_nul). */
    json_t *v = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!v) {
        api_error_set(err, 400, "invalid_json", NULL, "invalid JSON at line %d column %d: %s",
                      je.line, je.column, je.text);
        return -1;
    }
    if (!json_is_object(v)) {
        json_decref(v);
        api_error_set(err, 400, "invalid_json", NULL, "request body must be a JSON object");
        return -1;
    }
    *out = v;
    return 0;
}

static int charset_ok(const char *s, enum jf_charset cs)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned char c = *p;
        switch (cs) {
        case JC_ANY:
            if (c < 0x20 || c == 0x7f)
                return 0;
            break;
        case JC_TOKEN:
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-'))
                return 0;
            break;
        case JC_ID:
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
                return 0;
            break;
        }
    }
    return 1;
}

/* A string value with a NUL in it (C would see only what comes before). */
static int has_nul(json_t *v)
{
    return strlen(json_string_value(v)) != json_string_length(v);
}

static int check_str(json_t *v, const struct jfield *f, const char *name, struct api_error *err)
{
    if (!json_is_string(v)) {
        api_error_set(err, 400, "invalid_request", name, "%s must be a string", name);
        return -1;
    }
    if (has_nul(v)) {
        api_error_set(err, 400, "invalid_request", name, "%s must not contain NUL", name);
        return -1;
    }
    size_t l = json_string_length(v);
    if ((int64_t)l < f->min || (int64_t)l > f->max) {
        api_error_set(err, 400, "invalid_request", name, "%s must be %lld to %lld characters", name,
                      (long long)f->min, (long long)f->max);
        return -1;
    }
    if (!charset_ok(json_string_value(v), f->charset)) {
        api_error_set(err, 400, "invalid_request", name, "%s has characters that are not allowed",
                      name);
        return -1;
    }
    return 0;
}

int reqjson_decode(json_t *obj, const struct jfield *fields, size_t n, void *dst, uint64_t *present,
                   struct api_error *err)
{
    const char *key;
    json_t *v;
    CAPX_ASSERT(n <= 64);
    *present = 0;
    json_object_foreach(obj, key, v)
    {
        size_t i;
        for (i = 0; i < n; i++)
            if (!strcmp(fields[i].name, key))
                break;
        if (i == n) {
            char shown[48];
            snprintf(shown, sizeof shown, "%s", key);
            for (char *c = shown; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == '"')
                    *c = '?';
            api_error_set(err, 400, "invalid_request", shown, "unknown field \"%s\"", shown);
            return -1;
        }
        const struct jfield *f = &fields[i];
        char *d = (char *)dst + f->off;
        switch (f->type) {
        case JF_INT: {
            if (!json_is_integer(v)) {
                api_error_set(err, 400, "invalid_request", key, "%s must be an integer", key);
                return -1;
            }
            json_int_t x = json_integer_value(v);
            if (x < f->min || x > f->max) {
                api_error_set(err, 400, "invalid_request", key, "%s must be between %lld and %lld",
                              key, (long long)f->min, (long long)f->max);
                return -1;
            }
            *(int64_t *)d = x;
            break;
        }
        case JF_BOOL:
            if (!json_is_boolean(v)) {
                api_error_set(err, 400, "invalid_request", key, "%s must be true or false", key);
                return -1;
            }
            *(int *)d = json_is_true(v);
            break;
        case JF_STR:
            if (check_str(v, f, key, err) < 0)
                return -1;
            *(const char **)d = json_string_value(v);
            break;
        case JF_TIME:
        case JF_HOUR: {
            int64_t t;
            if (!json_is_string(v) || has_nul(v) || capx_time_parse(json_string_value(v), &t) < 0) {
                api_error_set(err, 400, "invalid_request", key,
                              "%s must be an RFC 3339 UTC time like 2027-01-04T00:00:00Z", key);
                return -1;
            }
            if (f->type == JF_HOUR && t % 3600 != 0) {
                api_error_set(err, 400, "invalid_request", key, "%s must be a whole hour", key);
                return -1;
            }
            *(int64_t *)d = t;
            break;
        }
        case JF_STRARR: {
            if (!json_is_array(v) || (int64_t)json_array_size(v) < f->min ||
                (int64_t)json_array_size(v) > f->max) {
                api_error_set(err, 400, "invalid_request", key,
                              "%s must be an array of %lld to %lld strings", key, (long long)f->min,
                              (long long)f->max);
                return -1;
            }
            size_t j;
            json_t *e;
            struct jfield sf = {key, JF_STR, 0, 1, 64, 0, f->charset};
            json_array_foreach(v, j, e)
            {
                if (check_str(e, &sf, key, err) < 0)
                    return -1;
            }
            *(json_t **)d = v;
            break;
        }
        }
        *present |= (uint64_t)1 << i;
    }
    for (size_t i = 0; i < n; i++)
        if (fields[i].required && !(*present & ((uint64_t)1 << i))) {
            api_error_set(err, 400, "invalid_request", fields[i].name, "%s is required",
                          fields[i].name);
            return -1;
        }
    return 0;
}
