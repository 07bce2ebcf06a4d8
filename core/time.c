/* time.c - ISO-8601 UTC text <-> milliseconds since the Unix epoch. */
#include "internal.h"

#include <stdio.h>
#include <string.h>

#define MS_PER_DAY INT64_C(86400000)

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * algorithm: exact for every year, no tables, no timegm/TZ dependence). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned days_in_month(int64_t y, unsigned m)
{
    static const unsigned char dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* n decimal digits at *p; advances *p. -1 if any is not a digit. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9') {
            return -1;
        }
        v = v * 10 + (c - '0');
    }
    *p += n;
    return v;
}

static int bad_time(const char *text, const char *why)
{
    return tape_error_set(TAPE_EINVAL, "invalid ISO-8601 time '%.64s': %s", text, why);
}

int tape__time_parse(int64_t *out, const char *text)
{
    if (out == NULL || text == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape__time_parse: NULL argument");
    }
    const char *p = text;
    int year = digits(&p, 4);
    if (year < 0 || *p++ != '-') {
        return bad_time(text, "expected YYYY-MM-DD");
    }
    int mon = digits(&p, 2);
    if (mon < 0 || *p++ != '-') {
        return bad_time(text, "expected YYYY-MM-DD");
    }
    int day = digits(&p, 2);
    if (day < 0) {
        return bad_time(text, "expected YYYY-MM-DD");
    }
    if (*p != 'T' && *p != 't') {
        return bad_time(text, "expected 'T' between date and time");
    }
    p++;
    int hour = digits(&p, 2);
    if (hour < 0 || *p++ != ':') {
        return bad_time(text, "expected hh:mm:ss");
    }
    int min = digits(&p, 2);
    if (min < 0 || *p++ != ':') {
        return bad_time(text, "expected hh:mm:ss");
    }
    int sec = digits(&p, 2);
    if (sec < 0) {
        return bad_time(text, "expected hh:mm:ss");
    }
    int ms = 0;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9') {
            return bad_time(text, "expected digits after '.'");
        }
        /* Milliseconds are the first three digits; finer digits are
         * truncated (toward the past), never rounded into the next second. */
        int n = 0;
        while (*p >= '0' && *p <= '9') {
            if (n < 3) {
                ms = ms * 10 + (*p - '0');
            }
            n++;
            p++;
        }
        for (; n < 3; n++) {
            ms *= 10;
        }
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        p++;
        int oh = digits(&p, 2);
        if (oh < 0 || *p++ != ':') {
            return bad_time(text, "expected a +hh:mm offset");
        }
        int om = digits(&p, 2);
        if (om < 0 || oh > 23 || om > 59) {
            return bad_time(text, "expected a +hh:mm offset");
        }
        offset_min = sign * (oh * 60 + om);
    } else {
        return bad_time(text, "expected 'Z' or a +hh:mm offset");
    }
    if (*p != '\0') {
        return bad_time(text, "unexpected text after the time");
    }
    if (mon < 1 || mon > 12) {
        return bad_time(text, "month out of range");
    }
    if (day < 1 || (unsigned)day > days_in_month(year, (unsigned)mon)) {
        return bad_time(text, "day out of range");
    }
    /* 60 is a leap second (RFC 3339); it counts as the next minute's 0. */
    if (hour > 23 || min > 59 || sec > 60) {
        return bad_time(text, "time of day out of range");
    }
    int64_t days = days_from_civil(year, (unsigned)mon, (unsigned)day);
    int64_t secs = days * 86400 + hour * 3600 + min * 60 + sec - (int64_t)offset_min * 60;
    *out = secs * 1000 + ms;
    return TAPE_OK;
}

void tape__time_format(char out[32], int64_t ms)
{
    /* Floor division without multiplying back (no overflow at INT64_MIN). */
    int64_t days = ms / MS_PER_DAY;
    int64_t rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    unsigned msec = (unsigned)(rem % 1000);
    unsigned s = (unsigned)(rem / 1000 % 60);
    unsigned mi = (unsigned)(rem / 60000 % 60);
    unsigned h = (unsigned)(rem / 3600000);
    if (y < 0 || y > 9999) {
        /* |year| < 3e8 for any int64 ms, so the text always fits 32 bytes. */
        snprintf(out, 32, "%04d-%02u-%02uT%02u:%02u:%02u.%03uZ", (int)y, m % 100, d % 100,
                 h % 100, mi % 100, s % 100, msec % 1000);
        return;
    }
    /* Every frame's timestamp comes through here: snprintf was a tenth of
     * an append. The same text, digit by digit. */
    unsigned yy = (unsigned)y;
    const unsigned parts[] = { m, d, h, mi, s };
    static const char seps[] = { '-', '-', 'T', ':', ':' }; /* before each part */
    char *p = out;
    *p++ = (char)('0' + yy / 1000);
    *p++ = (char)('0' + yy / 100 % 10);
    *p++ = (char)('0' + yy / 10 % 10);
    *p++ = (char)('0' + yy % 10);
    for (int i = 0; i < 5; i++) {
        *p++ = seps[i];
        *p++ = (char)('0' + parts[i] / 10 % 10);
        *p++ = (char)('0' + parts[i] % 10);
    }
    *p++ = '.';
    *p++ = (char)('0' + msec / 100);
    *p++ = (char)('0' + msec / 10 % 10);
    *p++ = (char)('0' + msec % 10);
    *p++ = 'Z';
    *p = '\0';
}
