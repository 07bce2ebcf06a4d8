/* fs_io.c - file primitives of the filesystem provider: whole-file reads,
 * atomic replacement, temp-file cleanup, bounded line reading. Every file
 * is opened relative to the store directory with O_NOFOLLOW, so a symlink
 * inside the store never leads out of it. */
/* madvise(MADV_HUGEPAGE) is a Linux extension outside POSIX. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif
#include "fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

int fs_errno(int err, const char *what, const char *name)
{
    /* Out of space, quota or file size: a limit the caller can act on. */
    return tape_error_set(err == ENOSPC || err == EDQUOT || err == EFBIG ? TAPE_ELIMIT : TAPE_EIO,
                          "filesystem: %s %s: %s", what, name, strerror(err));
}

void fs_stamp_of(fs_stamp *out, int dirfd, const char *name)
{
    struct stat sb;
    if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(sb.st_mode)) {
        out->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        out->size = (int64_t)sb.st_size;
    } else {
        out->mtime_ns = 0;
        out->size = -1;
    }
}

char *fs_name(const char *id, const char *suffix)
{
    size_t a = strlen(id), b = strlen(suffix);
    char *s = malloc(a + b + 1);
    if (s != NULL) {
        memcpy(s, id, a);
        memcpy(s + a, suffix, b + 1);
    }
    return s;
}

/*
 * A buffer for a whole file. Above 2 MiB it is aligned to and advised as
 * huge pages: first-touch page faults (tens of microseconds each on a VM)
 * otherwise cost more than reading the bytes. Released with free().
 */
static char *file_buffer(size_t n)
{
    const size_t huge = (size_t)2 << 20;
    if (n < huge) {
        return malloc(n);
    }
    size_t rounded = (n + huge - 1) & ~(huge - 1);
    void *p = NULL;
    if (rounded < n || posix_memalign(&p, huge, rounded) != 0) {
        return NULL;
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
    return p;
}

int fs_read_file(char **out, size_t *out_len, int dirfd, const char *name)
{
    *out = NULL;
    *out_len = 0;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return tape_error_set(TAPE_ENOTFOUND, "filesystem: no file %s", name);
        }
        return fs_errno(errno, "cannot open", name);
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        return fs_errno(err, "cannot stat", name);
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return tape_error_set(TAPE_ECORRUPT, "filesystem: %s is not a regular file", name);
    }
    /* The file may grow while we read (a recording): read what is there.
     * One spare byte beyond the size lets the final read see end-of-file
     * without growing (and copying) the buffer. */
    size_t cap = (size_t)sb.st_size + 2, len = 0;
    char *buf = file_buffer(cap);
    if (buf == NULL) {
        close(fd);
        return tape_error_set(TAPE_ENOMEM, "out of memory reading %s", name);
    }
    for (;;) {
        if (len + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL) {
                free(buf);
                close(fd);
                return tape_error_set(TAPE_ENOMEM, "out of memory reading %s", name);
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int err = errno;
            free(buf);
            close(fd);
            return fs_errno(err, "cannot read", name);
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return TAPE_OK;
}

int fs_write_all(int fd, const char *a, size_t alen, const char *b, size_t blen)
{
    struct iovec iov[2] = { { (void *)a, alen }, { (void *)b, blen } };
    int n = blen > 0 ? 2 : 1;
    struct iovec *v = iov;
    while (n > 0) {
        ssize_t w = writev(fd, v, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return -1;
        }
        size_t done = (size_t)w;
        while (n > 0 && done >= v->iov_len) {
            done -= v->iov_len;
            v++;
            n--;
        }
        if (n > 0) {
            v->iov_base = (char *)v->iov_base + done;
            v->iov_len -= done;
        }
    }
    return 0;
}

int fs_sync_dir(int dirfd)
{
    if (fsync(dirfd) != 0 && errno != EINVAL) {
        return fs_errno(errno, "cannot sync", "the store directory");
    }
    return TAPE_OK;
}

static atomic_uint temp_counter;

/*
 * Replace n files atomically each: write every one to a temporary file and
 * sync its data, then rename them over their names in order and sync the
 * directory once. A reader sees each file old or new, never a mix; one
 * directory sync serves all n renames.
 */
int fs_replace_files(int dirfd, size_t n, const char *const *names, const char *const *data,
                     const size_t *lens, mode_t mode, int sync)
{
    char tmp[4][TAPE_ID_MAX + 64];
    int err = 0;
    size_t made = 0;
    const char *failed = names[0];
    if (n > 4) {
        return tape_error_set(TAPE_EINVAL, "filesystem: at most 4 files per replace");
    }
    for (; made < n && err == 0; made++) {
        snprintf(tmp[made], sizeof tmp[made], "%s" FS_TMP_MARK "%ld.%u", names[made],
                 (long)getpid(), atomic_fetch_add(&temp_counter, 1));
        int fd = openat(dirfd, tmp[made], O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        mode);
        if (fd < 0) {
            err = errno;
            failed = names[made];
            break;
        }
        if (fchmod(fd, mode) != 0 || fs_write_all(fd, data[made], lens[made], NULL, 0) != 0 ||
            (sync && fdatasync(fd) != 0)) {
            err = errno;
            failed = names[made];
        }
        if (close(fd) != 0 && err == 0) {
            err = errno;
            failed = names[made];
        }
    }
    for (size_t i = 0; err == 0 && i < n; i++) {
        if (renameat(dirfd, tmp[i], dirfd, names[i]) != 0) {
            err = errno;
            failed = names[i];
            /* Earlier renames stand (each is whole); drop the rest. */
            for (size_t k = i; k < n; k++) {
                unlinkat(dirfd, tmp[k], 0);
            }
            return fs_errno(err, "cannot replace", failed);
        }
    }
    if (err != 0) {
        for (size_t i = 0; i < made; i++) {
            unlinkat(dirfd, tmp[i], 0);
        }
        return fs_errno(err, "cannot write", failed);
    }
    return sync ? fs_sync_dir(dirfd) : TAPE_OK;
}

int fs_write_atomic(int dirfd, const char *name, const char *data, size_t len, mode_t mode,
                    int sync)
{
    return fs_replace_files(dirfd, 1, &name, &data, &len, mode, sync);
}

/* Temp files are named NAME.tmp.PID.N: remove those whose writer is gone. */
void fs_clean_temps(int dirfd)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0) close(fd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *mark = strstr(de->d_name, FS_TMP_MARK);
        if (mark == NULL) {
            continue;
        }
        long pid = strtol(mark + strlen(FS_TMP_MARK), NULL, 10);
        if (pid > 0 && (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)) {
            continue; /* a live writer (maybe us): not ours to remove */
        }
        if (unlinkat(dirfd, de->d_name, 0) == 0) {
            tape_log(TAPE_LOG_INFO, "filesystem: removed leftover temporary file %s",
                     de->d_name);
        }
    }
    closedir(d);
}

int fs_lines_init(fs_lines *r, int fd, size_t max_line)
{
    memset(r, 0, sizeof *r);
    r->fd = fd;
    r->max_line = max_line;
    r->cap = 64 * 1024;
    r->buf = malloc(r->cap);
    return r->buf == NULL ? tape_error_set(TAPE_ENOMEM, "out of memory") : TAPE_OK;
}

int fs_lines_next(fs_lines *r, const char **out, size_t *out_len, int *out_torn)
{
    *out_torn = 0;
    for (;;) {
        char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
        if (nl != NULL) {
            size_t len = (size_t)(nl - (r->buf + r->start));
            r->lineno++;
            if (len > r->max_line) {
                return tape_error_set(TAPE_ECORRUPT,
                                      "line %llu is %zu bytes, over the limit of %zu",
                                      (unsigned long long)r->lineno, len, r->max_line);
            }
            *out = r->buf + r->start;
            *out_len = len;
            r->start += len + 1;
            return TAPE_OK;
        }
        if (r->eof) {
            if (r->start == r->end) {
                return TAPE_DONE;
            }
            r->lineno++;
            *out = r->buf + r->start;
            *out_len = r->end - r->start;
            *out_torn = 1; /* no newline: a write that may not have finished */
            r->start = r->end;
            return TAPE_OK;
        }
        if (r->end - r->start > r->max_line) {
            return tape_error_set(TAPE_ECORRUPT, "line %llu is over the limit of %zu bytes",
                                  (unsigned long long)r->lineno + 1, r->max_line);
        }
        /* Make room: slide the partial line down, grow if it fills the buffer. */
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        if (r->end == r->cap) {
            char *nb = realloc(r->buf, r->cap * 2);
            if (nb == NULL) {
                return tape_error_set(TAPE_ENOMEM, "out of memory");
            }
            r->buf = nb;
            r->cap *= 2;
        }
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return fs_errno(errno, "cannot read", "tape");
        }
        if (n == 0) {
            r->eof = 1;
        }
        r->end += (size_t)n;
    }
}

void fs_lines_free(fs_lines *r)
{
    free(r->buf);
    r->buf = NULL;
}
