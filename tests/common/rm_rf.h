/* rm_rf.h - remove a scratch directory tree (tests, benchmarks, crash
 * trials clean up after themselves). Symlinks are removed, not followed. */
#ifndef TAPE_TEST_RM_RF_H
#define TAPE_TEST_RM_RF_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d == NULL) {
        unlink(path);
        return;
    }
    struct dirent *de;
    char p[2048];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", path, de->d_name);
        struct stat sb;
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) rm_rf(p); else unlink(p);
    }
    closedir(d);
    rmdir(path);
}

#endif
