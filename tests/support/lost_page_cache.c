/*
 * LD_PRELOAD shim for the fault tests: a Redis (or Valkey) process killed under it loses what
 * it wrote to its append-only file but had not fsynced, as if the machine had lost power.
 *
 * Without it, SIGKILLing redis-server loses nothing the kernel was handed: write() has put the
 * bytes in the page cache, which outlives the process. A crash of the machine loses the page
 * cache too; that is what `appendfsync everysec` risks and what MODERATION_DURABILITY=disk
 * must survive. So writes to the AOF's incremental files (names holding "incr" and "aof") are
 * kept in this process's memory and reach the file only on fsync/fdatasync (or close).
 *
 * Build: cc -shared -fPIC -O2 -o lost_page_cache.so lost_page_cache.c -ldl -lpthread
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define MAX_FD 65536

struct pending {
    int tracked;
    char *data;
    size_t length;
    size_t capacity;
};

static struct pending files[MAX_FD];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static ssize_t (*real_write)(int, const void *, size_t);
static int (*real_open)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_close)(int);

static void bind_real(void) {
    if (real_write) return;
    real_open = dlsym(RTLD_NEXT, "open");
    real_openat = dlsym(RTLD_NEXT, "openat");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_close = dlsym(RTLD_NEXT, "close");
    real_write = dlsym(RTLD_NEXT, "write");
}

static int is_incremental_aof(const char *path) {
    return path && strstr(path, "incr") && strstr(path, "aof");
}

static void track(int fd, const char *path) {
    if (fd < 0 || fd >= MAX_FD) return;
    pthread_mutex_lock(&lock);
    files[fd].tracked = is_incremental_aof(path);
    files[fd].length = 0;
    pthread_mutex_unlock(&lock);
}

/* Writes what is held for fd to the file; the caller holds the lock. */
static int flush_held(int fd) {
    size_t done = 0;
    while (done < files[fd].length) {
        ssize_t written = real_write(fd, files[fd].data + done, files[fd].length - done);
        if (written < 0) return -1;
        done += (size_t)written;
    }
    files[fd].length = 0;
    return 0;
}

static int open_mode(int flags, va_list args) {
    return (flags & (O_CREAT | O_TMPFILE)) ? va_arg(args, int) : 0;
}

int open(const char *path, int flags, ...) {
    bind_real();
    va_list args;
    va_start(args, flags);
    int mode = open_mode(flags, args);
    va_end(args);
    int fd = real_open(path, flags, mode);
    track(fd, path);
    return fd;
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int openat(int dirfd, const char *path, int flags, ...) {
    bind_real();
    va_list args;
    va_start(args, flags);
    int mode = open_mode(flags, args);
    va_end(args);
    int fd = real_openat(dirfd, path, flags, mode);
    track(fd, path);
    return fd;
}

int openat64(int dirfd, const char *path, int flags, ...) __attribute__((alias("openat")));

ssize_t write(int fd, const void *buffer, size_t count) {
    bind_real();
    if (fd < 0 || fd >= MAX_FD || !files[fd].tracked) return real_write(fd, buffer, count);
    pthread_mutex_lock(&lock);
    struct pending *held = &files[fd];
    if (held->length + count > held->capacity) {
        size_t capacity = held->capacity ? held->capacity : 1 << 20;
        while (capacity < held->length + count) capacity *= 2;
        char *grown = realloc(held->data, capacity);
        if (!grown) {
            pthread_mutex_unlock(&lock);
            return real_write(fd, buffer, count);
        }
        held->data = grown;
        held->capacity = capacity;
    }
    memcpy(held->data + held->length, buffer, count);
    held->length += count;
    pthread_mutex_unlock(&lock);
    return (ssize_t)count;
}

static int synced(int fd, int (*real_sync)(int)) {
    if (fd >= 0 && fd < MAX_FD && files[fd].tracked) {
        pthread_mutex_lock(&lock);
        int failed = flush_held(fd);
        pthread_mutex_unlock(&lock);
        if (failed) return -1;
    }
    return real_sync(fd);
}

int fsync(int fd) {
    bind_real(); /* before reading real_fsync */
    return synced(fd, real_fsync);
}

int fdatasync(int fd) {
    bind_real();
    return synced(fd, real_fdatasync);
}

int close(int fd) {
    bind_real();
    if (fd >= 0 && fd < MAX_FD && files[fd].tracked) {
        pthread_mutex_lock(&lock);
        flush_held(fd);
        files[fd].tracked = 0;
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}
