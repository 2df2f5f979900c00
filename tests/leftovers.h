/*
 * leftovers.h — what an unfinished write may leave beside its output: any file named after it
 * ("OUT.<anything>", such as the writer's temporary OUT.vkmoe-PID.tmp).
 */
#ifndef VKM_TEST_LEFTOVERS_H
#define VKM_TEST_LEFTOVERS_H

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* True, with the first such name in found, when a file "out.*" exists. */
static inline bool test_leftover(const char *out, char *found, size_t cap)
{
    const char *slash = strrchr(out, '/');
    char dir[1024];
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - out) : 1, slash ? out : ".");
    const char *base = slash ? slash + 1 : out;
    const size_t n = strlen(base);
    DIR *d = opendir(dir);
    if (!d) return false;
    bool any = false;
    for (struct dirent *e; !any && (e = readdir(d));)
        if (!strncmp(e->d_name, base, n) && e->d_name[n] == '.') {
            snprintf(found, cap, "%s/%s", dir, e->d_name);
            any = true;
        }
    closedir(d);
    return any;
}

#endif
