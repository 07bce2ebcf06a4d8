/* tape_test.h - assertions shared by the cmocka unit tests: a call must
 * succeed, or fail with a given code and a message naming the problem. */
#ifndef TAPE_TEST_H
#define TAPE_TEST_H

#include <string.h>

#include "tapestore/tapestore.h"

#define EXPECT_ERR(call, code, needle)                                                       \
    do {                                                                                     \
        int rc_ = (call);                                                                    \
        if (rc_ != (code) || strstr(tape_errmsg(), (needle)) == NULL) {                      \
            fail_msg("%s: got %d (%s) '%s', want %d with '%s'", #call, rc_,                  \
                     tape_strerror(rc_), tape_errmsg(), (code), (needle));                    \
        }                                                                                    \
    } while (0)

#define EXPECT_OK(call)                                                                      \
    do {                                                                                     \
        int rc_ = (call);                                                                    \
        if (rc_ != TAPE_OK) {                                                                \
            fail_msg("%s: got %d (%s) '%s'", #call, rc_, tape_strerror(rc_), tape_errmsg()); \
        }                                                                                    \
    } while (0)

#endif
