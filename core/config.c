/* config.c - JSON config objects, typed accessors, one-string specs. */
#include "internal.h"

#include <cjson/cJSON.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct tape_config {
    cJSON *root; /* always an object */
};

static int config_from_object(tape_config **out, cJSON *root)
{
    tape_config *c = malloc(sizeof *c);
    if (c == NULL) {
        cJSON_Delete(root);
        return tape__oom();
    }
    c->root = root;
    *out = c;
    return TAPE_OK;
}

int tape_config_parse(tape_config **out, const char *json)
{
    if (out == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_config_parse: out is NULL");
    }
    *out = NULL;
    if (json == NULL || json[strspn(json, " \t\r\n")] == '\0') {
        cJSON *empty = cJSON_CreateObject();
        return empty == NULL ? tape__oom() : config_from_object(out, empty);
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(json, &end, 1);
    if (root == NULL) {
        size_t at = end != NULL ? (size_t)(end - json) : 0;
        return tape_error_set(TAPE_ECONFIG, "config is not valid JSON (error at byte %zu)", at);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return tape_error_set(TAPE_ECONFIG, "config must be a JSON object");
    }
    return config_from_object(out, root);
}

void tape_config_free(tape_config *c)
{
    if (c != NULL) {
        cJSON_Delete(c->root);
        free(c);
    }
}

int tape_config_to_json(char **out, const tape_config *c)
{
    if (out == NULL || c == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_config_to_json: NULL argument");
    }
    *out = cJSON_PrintUnformatted(c->root);
    return *out == NULL ? tape__oom() : TAPE_OK;
}

/* Provider names double as spec prefixes and registry keys. */
static int name_valid(const char *s, size_t n)
{
    if (n == 0 || n > 64) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-')) {
            return 0;
        }
    }
    return 1;
}

int tape__provider_name_valid(const char *name)
{
    return name != NULL && name_valid(name, strlen(name));
}

int tape_config_parse_spec(char **out_provider, tape_config **out_config, const char *spec)
{
    if (out_provider == NULL || out_config == NULL || spec == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_config_parse_spec: NULL argument");
    }
    *out_provider = NULL;
    *out_config = NULL;
    const char *colon = strchr(spec, ':');
    size_t name_len = colon != NULL ? (size_t)(colon - spec) : strlen(spec);
    if (!name_valid(spec, name_len)) {
        return tape_error_set(TAPE_ECONFIG,
                              "store spec \"%.80s\": expected PROVIDER:[PATH|{json}] with a "
                              "provider name of [a-z0-9_-]",
                              spec);
    }
    const char *rest = colon != NULL ? colon + 1 : "";
    tape_config *cfg = NULL;
    int rc;
    if (rest[strspn(rest, " \t")] == '{' || *rest == '\0') {
        rc = tape_config_parse(&cfg, rest);
    } else {
        /* Anything else is a path: "filesystem:./tapes". */
        cJSON *root = cJSON_CreateObject();
        if (root == NULL || cJSON_AddStringToObject(root, "path", rest) == NULL) {
            cJSON_Delete(root);
            return tape__oom();
        }
        rc = config_from_object(&cfg, root);
    }
    if (rc != TAPE_OK) {
        return rc;
    }
    char *name = tape__strndup(spec, name_len);
    if (name == NULL) {
        tape_config_free(cfg);
        return tape__oom();
    }
    *out_provider = name;
    *out_config = cfg;
    return TAPE_OK;
}

int tape_config_check_keys(const tape_config *c, const char *const *allowed)
{
    if (c == NULL || allowed == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_config_check_keys: NULL argument");
    }
    for (const cJSON *it = c->root->child; it != NULL; it = it->next) {
        int known = 0;
        for (const char *const *a = allowed; *a != NULL; a++) {
            if (strcmp(*a, it->string) == 0) {
                known = 1;
                break;
            }
        }
        if (!known) {
            return tape_error_set(TAPE_ECONFIG, "unknown config key \"%s\"", it->string);
        }
    }
    return TAPE_OK;
}

/* Case-sensitive: config keys are exact. */
static const cJSON *lookup(const tape_config *c, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(c->root, key);
}

int tape_config_has(const tape_config *c, const char *key)
{
    return c != NULL && key != NULL && lookup(c, key) != NULL;
}

int tape_config_get_string(const char **out, const tape_config *c, const char *key,
                           const char *def)
{
    if (out == NULL || c == NULL || key == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_config_get_string: NULL argument");
    }
    const cJSON *v = lookup(c, key);
    if (v == NULL || cJSON_IsNull(v)) {
        *out = def;
        return TAPE_OK;
    }
    if (!cJSON_IsString(v)) {
        return tape_error_set(TAPE_ECONFIG, "config key \"%s\": expected a string", key);
    }
    *out = v->valuestring;
    return TAPE_OK;
}

int tape_config_get_int(int64_t *out, const tape_config *c, const char *key, int64_t def)
{
    if (out == NULL || c == NULL || key == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_config_get_int: NULL argument");
    }
    const cJSON *v = lookup(c, key);
    if (v == NULL || cJSON_IsNull(v)) {
        *out = def;
        return TAPE_OK;
    }
    /* cJSON keeps numbers as doubles: only exactly representable integers. */
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!cJSON_IsNumber(v) || d != floor(d) || fabs(d) > 9007199254740992.0) {
        return tape_error_set(TAPE_ECONFIG, "config key \"%s\": expected an integer", key);
    }
    *out = (int64_t)d;
    return TAPE_OK;
}

int tape_config_get_bool(int *out, const tape_config *c, const char *key, int def)
{
    if (out == NULL || c == NULL || key == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_config_get_bool: NULL argument");
    }
    const cJSON *v = lookup(c, key);
    if (v == NULL || cJSON_IsNull(v)) {
        *out = def;
        return TAPE_OK;
    }
    if (!cJSON_IsBool(v)) {
        return tape_error_set(TAPE_ECONFIG, "config key \"%s\": expected true or false", key);
    }
    *out = cJSON_IsTrue(v) ? 1 : 0;
    return TAPE_OK;
}

int tape_config_get_json(char **out, const tape_config *c, const char *key)
{
    if (out == NULL || c == NULL || key == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_config_get_json: NULL argument");
    }
    const cJSON *v = lookup(c, key);
    if (v == NULL) {
        *out = NULL;
        return TAPE_OK;
    }
    *out = cJSON_PrintUnformatted(v);
    return *out == NULL ? tape__oom() : TAPE_OK;
}
