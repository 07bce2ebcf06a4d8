/*
 * abi.c - compile-time checks of the public structs' layout. Public structs
 * only grow at the end; if a field is inserted, moved or resized, a check
 * below fails the build (docs/abi.md).
 */
#include "internal.h"

#include <stddef.h>

#define SLOT(type, first, n) (offsetof(type, first) + (n) * sizeof(void *))
#define CHECK(cond) _Static_assert(cond, #cond)

/* tape_backend_ops: two unsigned ints, then function pointers in order. */
CHECK(offsetof(tape_backend_ops, version) == 0);
CHECK(offsetof(tape_backend_ops, flags) == sizeof(unsigned int));
CHECK(offsetof(tape_backend_ops, save) == SLOT(tape_backend_ops, save, 0));
CHECK(offsetof(tape_backend_ops, load) == SLOT(tape_backend_ops, save, 1));
CHECK(offsetof(tape_backend_ops, remove) == SLOT(tape_backend_ops, save, 2));
CHECK(offsetof(tape_backend_ops, list) == SLOT(tape_backend_ops, save, 3));
CHECK(offsetof(tape_backend_ops, free) == SLOT(tape_backend_ops, save, 4));
CHECK(offsetof(tape_backend_ops, open) == SLOT(tape_backend_ops, save, 5));
CHECK(offsetof(tape_backend_ops, close) == SLOT(tape_backend_ops, save, 6));
CHECK(offsetof(tape_backend_ops, exists) == SLOT(tape_backend_ops, save, 7));
CHECK(offsetof(tape_backend_ops, search) == SLOT(tape_backend_ops, save, 8));
CHECK(offsetof(tape_backend_ops, stats) == SLOT(tape_backend_ops, save, 9));
CHECK(offsetof(tape_backend_ops, writer_begin) == SLOT(tape_backend_ops, save, 10));
CHECK(offsetof(tape_backend_ops, writer_append) == SLOT(tape_backend_ops, save, 11));
CHECK(offsetof(tape_backend_ops, writer_correlate) == SLOT(tape_backend_ops, save, 12));
CHECK(offsetof(tape_backend_ops, writer_end) == SLOT(tape_backend_ops, save, 13));
CHECK(offsetof(tape_backend_ops, frames_open) == SLOT(tape_backend_ops, save, 14));
CHECK(offsetof(tape_backend_ops, frames_next) == SLOT(tape_backend_ops, save, 15));
CHECK(offsetof(tape_backend_ops, frames_close) == SLOT(tape_backend_ops, save, 16));
CHECK(offsetof(tape_backend_ops, control) == SLOT(tape_backend_ops, save, 17));
CHECK(sizeof(tape_backend_ops) == SLOT(tape_backend_ops, save, 18));

/* tape_provider. */
CHECK(offsetof(tape_provider, version) == 0);
CHECK(offsetof(tape_provider, name) == sizeof(void *));
CHECK(offsetof(tape_provider, description) == 2 * sizeof(void *));
CHECK(offsetof(tape_provider, provider_version) == 3 * sizeof(void *));
CHECK(offsetof(tape_provider, capabilities) == 3 * sizeof(void *) + sizeof(unsigned int));
CHECK(offsetof(tape_provider, userdata) == 4 * sizeof(void *));
CHECK(offsetof(tape_provider, validate) == 5 * sizeof(void *));
CHECK(offsetof(tape_provider, create) == 6 * sizeof(void *));
CHECK(offsetof(tape_provider, destroy) == 7 * sizeof(void *));
CHECK(sizeof(tape_provider) == 8 * sizeof(void *));

/* tape_frame_desc. */
CHECK(offsetof(tape_frame_desc, version) == 0);
CHECK(offsetof(tape_frame_desc, direction) == sizeof(unsigned int));
CHECK(offsetof(tape_frame_desc, ts_ms) == 8);
CHECK(offsetof(tape_frame_desc, message) == 16);
CHECK(offsetof(tape_frame_desc, message_len) == 16 + sizeof(void *));
CHECK(offsetof(tape_frame_desc, correlation_id) == 16 + 2 * sizeof(void *));
CHECK(offsetof(tape_frame_desc, transport_json) == 16 + 3 * sizeof(void *));
CHECK(offsetof(tape_frame_desc, flags_json) == 16 + 4 * sizeof(void *));
/* version 2 */
CHECK(offsetof(tape_frame_desc, frame_flags) == 16 + 5 * sizeof(void *));
CHECK(offsetof(tape_frame_desc, prefix_bytes) == 16 + 6 * sizeof(void *));
CHECK(sizeof(tape_frame_desc) == 16 + 7 * sizeof(void *));

/* Stats structs: version, then 64-bit counters. */
CHECK(offsetof(tape_stats, frame_count) == 8);
CHECK(offsetof(tape_stats, duration_ms) == 16);
CHECK(offsetof(tape_stats, last_sequence) == 24);
CHECK(offsetof(tape_stats, client_to_server) == 32);
CHECK(offsetof(tape_stats, server_to_client) == 40);
CHECK(offsetof(tape_stats, error_count) == 48);
CHECK(offsetof(tape_stats, correlation_count) == 56);
CHECK(offsetof(tape_stats, file_size_bytes) == 64);
CHECK(sizeof(tape_stats) == 72);
CHECK(offsetof(tape_store_stats, tape_count) == 8);
CHECK(offsetof(tape_store_stats, frame_count) == 16);
CHECK(offsetof(tape_store_stats, total_bytes) == 24);
CHECK(offsetof(tape_decode_options, mode) == sizeof(unsigned int));
CHECK(offsetof(tape_decode_options, max_line_bytes) == sizeof(void *));
CHECK(offsetof(tape_decode_report, torn_tail) == sizeof(unsigned int));
CHECK(offsetof(tape_decode_report, skipped_lines) == 8);
CHECK(offsetof(tape_decode_report, first_bad_line) == 16);
