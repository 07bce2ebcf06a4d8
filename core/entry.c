/* entry.c - entries: immutable, reference-counted tape metadata + stats.
 * An entry holds a frameless clone of the tape that nobody modifies after
 * creation, so any thread may read it without locks; only the reference
 * count changes, atomically. */
#include "codec_internal.h"

#include <stdlib.h>

/* Takes ownership of the frameless tape `t` (freed on failure). */
static int entry_wrap(tape_entry **out, tape *t)
{
    tape_entry *e = malloc(sizeof *e);
    if (e == NULL) {
        tape_free(t);
        return tape__oom();
    }
    tape_stats st = TAPE_STATS_INIT;
    int rc = tape__stats(&st, t);
    if (rc != TAPE_OK) {
        free(e);
        tape_free(t);
        return rc;
    }
    atomic_init(&e->refs, 1);
    e->t = t;
    e->stats = st;
    *out = e;
    return TAPE_OK;
}

int tape_entry_from_tape(tape_entry **out, const tape *t)
{
    if (out != NULL) {
        *out = NULL;
    }
    if (out == NULL || t == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_entry_from_tape: %s is NULL",
                              out == NULL ? "out" : "tape");
    }
    tape *c;
    int rc = tape_clone_meta(&c, t);
    return rc != TAPE_OK ? rc : entry_wrap(out, c);
}

int tape__entry_from_frameless(tape_entry **out, tape *t)
{
    return entry_wrap(out, t);
}

tape_entry *tape_entry_ref(const tape_entry *e)
{
    /* Entries are immutable apart from their count: sharing one through a
     * const pointer is safe, so the count is the one thing we cast for. */
    tape_entry *m = (tape_entry *)(uintptr_t)e;
    if (m != NULL) {
        atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    }
    return m;
}

void tape_entry_free(tape_entry *e)
{
    if (e == NULL) {
        return;
    }
    /* acq_rel: the last owner must see every other owner's reads done. */
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1) {
        tape_free(e->t);
        free(e);
    }
}

const char *tape_entry_id(const tape_entry *e)
{
    return e == NULL ? NULL : e->t->id;
}

const char *tape_entry_name(const tape_entry *e)
{
    return e == NULL ? NULL : e->t->name;
}

const char *tape_entry_description(const tape_entry *e)
{
    return e == NULL ? NULL : e->t->description;
}

const char *tape_entry_session_id(const tape_entry *e)
{
    return e == NULL ? NULL : e->t->session_id;
}

int tape_entry_status(const tape_entry *e)
{
    return e == NULL ? 0 : e->t->status;
}

int64_t tape_entry_created_at(const tape_entry *e)
{
    return e == NULL ? TAPE_TIME_NONE : e->t->created_at;
}

int64_t tape_entry_updated_at(const tape_entry *e)
{
    return e == NULL ? TAPE_TIME_NONE : e->t->updated_at;
}

size_t tape_entry_tag_count(const tape_entry *e)
{
    return e == NULL ? 0 : e->t->ntags;
}

const char *tape_entry_tag_at(const tape_entry *e, size_t i)
{
    return e == NULL ? NULL : tape_tag_at(e->t, i);
}

int tape_entry_has_tag(const tape_entry *e, const char *tag)
{
    return e == NULL ? 0 : tape_has_tag(e->t, tag);
}

int tape_entry_get_stats(tape_stats *out, const tape_entry *e)
{
    if (out == NULL || e == NULL) {
        return tape_error_set(TAPE_EINVAL, "tape_entry_get_stats: %s is NULL",
                              out == NULL ? "out" : "entry");
    }
    if (out->version < 1) {
        return tape_error_set(TAPE_EINVAL,
                              "tape_entry_get_stats: out->version is %u (initialise with "
                              "TAPE_STATS_INIT)",
                              out->version);
    }
    unsigned int v = out->version;
    *out = e->stats;
    out->version = v;
    return TAPE_OK;
}
