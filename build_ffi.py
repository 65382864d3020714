"""The C boundary: the cdef of <sys/msg.h> and the helpers that smooth over platforms.

cffi's setuptools hook imports this file and compiles ``ffibuilder`` into
``sysvmq._sysvmq_cffi`` (API mode, out of line). Every struct layout and
constant below is left for the C compiler to fill in (``...``); the small C
helpers in ``HELPERS`` resolve what differs between Linux, macOS and FreeBSD so
that Python sees one interface and asks ``HAS_*`` flags instead of guessing.
"""

from cffi import FFI

# Our own types, declared alike to cffi and to the compiler.
OWN_TYPES = r"""
/* A receiver's state, one per handle and thread: the queue, the room, and
   the msgbuf msgrcv(2) fills (the type, then the text) at the end, so that the
   hot path hands C one pointer. */
struct sysvmq_rx {
    int msqid;
    size_t maxlen;
    long mtype;
    char mtext[];
};

/* What receive_many fills: texts end to end in out (room bytes, with
   SYSVMQ_HEADROOM more before it), a struct module format that cuts them
   apart again in fmt, each one's type. */
struct sysvmq_batch {
    struct sysvmq_rx *rx;
    char *out;
    size_t room;
    char *fmt;
    long *types;
};

/* The fields of Linux's struct msginfo, for IPC_INFO and MSG_INFO. */
struct sysvmq_msginfo {
    long msgpool;
    long msgmap;
    long msgmax;
    long msgmnb;
    long msgmni;
    long msgssz;
    long msgtql;
    long msgseg;
};
"""

CDEF = r"""
typedef int... key_t;
typedef int... uid_t;
typedef int... gid_t;
typedef int... mode_t;
typedef int... pid_t;
typedef int... time_t;
typedef int... msgqnum_t;
typedef int... msglen_t;

#define IPC_PRIVATE ...
#define IPC_CREAT ...
#define IPC_EXCL ...
#define IPC_NOWAIT ...
#define IPC_RMID ...
#define IPC_SET ...
#define IPC_STAT ...
#define MSG_NOERROR ...

/* Linux only: zero elsewhere, with the matching HAS_ flag false. */
#define IPC_INFO ...
#define MSG_INFO ...
#define MSG_STAT ...
#define MSG_STAT_ANY ...
#define MSG_EXCEPT ...
#define MSG_COPY ...
static const int HAS_IPC_INFO;
static const int HAS_MSG_INFO;
static const int HAS_MSG_STAT;
static const int HAS_MSG_STAT_ANY;
static const int HAS_MSG_EXCEPT;
static const int HAS_MSG_COPY;

/* The POSIX fields; the key and the byte count differ by platform (helpers). */
struct ipc_perm {
    uid_t uid;
    gid_t gid;
    uid_t cuid;
    gid_t cgid;
    mode_t mode;
    ...;
};

struct msqid_ds {
    struct ipc_perm msg_perm;
    msgqnum_t msg_qnum;
    msglen_t msg_qbytes;
    pid_t msg_lspid;
    pid_t msg_lrpid;
    time_t msg_stime;
    time_t msg_rtime;
    time_t msg_ctime;
    ...;
};


int msgget(key_t key, int msgflg);
int msgsnd(int msqid, const void *msgp, size_t msgsz, int msgflg);
ssize_t msgrcv(int msqid, void *msgp, size_t msgsz, long msgtyp, int msgflg);
int msgctl(int msqid, int cmd, struct msqid_ds *buf);

int sysvmq_send(int msqid, long type, const char *data, size_t len, int flags);
size_t sysvmq_send_many(int msqid, long type, const char *data, const size_t *lens,
                        size_t count, size_t start, int flags);
size_t sysvmq_total(const size_t *lens, size_t count);
ssize_t sysvmq_rx(struct sysvmq_rx *rx);
ssize_t sysvmq_rx_type(struct sysvmq_rx *rx, long type);
ssize_t sysvmq_rx_into(struct sysvmq_rx *rx, char *dest, size_t len, long type);
ssize_t sysvmq_receive(struct sysvmq_rx *rx, size_t maxlen, long type, int flags, char *dest);
#define SYSVMQ_FMT_ITEM ...
#define SYSVMQ_HEADROOM ...
size_t sysvmq_receive_many(struct sysvmq_batch *b, long type, int flags, size_t max_count);
long long sysvmq_key(const struct msqid_ds *ds);
unsigned long sysvmq_cbytes(const struct msqid_ds *ds);
int sysvmq_msginfo(int cmd, struct sysvmq_msginfo *out);
int sysvmq_ftok(const char *path, int proj_id, long long *key);
"""

PRELUDE = r"""
#ifdef __linux__
#  ifndef _GNU_SOURCE
#    define _GNU_SOURCE
#  endif
#endif
#include <sys/types.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
"""

HELPERS = r"""
/* What msgsnd(2) reads: the type, then the text. */
struct sysvmq_msgbuf {
    long mtype;
    char mtext[];
};

/* msgrcv(2) writes the type and the text behind it: rx's must be adjacent. */
typedef char sysvmq_rx_is_a_msgbuf[
    offsetof(struct sysvmq_rx, mtext) == offsetof(struct sysvmq_rx, mtype) + sizeof(long) ? 1 : -1];

/* Linux's msgctl commands and msgrcv flags are kernel ABI: an old libc that
   lacks a name still talks to a kernel that has the number. Elsewhere they do
   not exist; define them as 0 so the cdef compiles, and say so in HAS_. */
#ifdef __linux__
#  define HAS_IPC_INFO 1
#  define HAS_MSG_INFO 1
#  define HAS_MSG_STAT 1
#  define HAS_MSG_STAT_ANY 1
#  define HAS_MSG_EXCEPT 1
#  define HAS_MSG_COPY 1
#  ifndef IPC_INFO
#    define IPC_INFO 3
#  endif
#  ifndef MSG_STAT
#    define MSG_STAT 11
#  endif
#  ifndef MSG_INFO
#    define MSG_INFO 12
#  endif
#  ifndef MSG_STAT_ANY
#    define MSG_STAT_ANY 13
#  endif
#  ifndef MSG_EXCEPT
#    define MSG_EXCEPT 020000
#  endif
#  ifndef MSG_COPY
#    define MSG_COPY 040000
#  endif
#else
#  define HAS_IPC_INFO 0
#  define HAS_MSG_INFO 0
#  define HAS_MSG_STAT 0
#  define HAS_MSG_STAT_ANY 0
#  define HAS_MSG_EXCEPT 0
#  define HAS_MSG_COPY 0
#  undef IPC_INFO
#  undef MSG_INFO
#  undef MSG_STAT
#  undef MSG_STAT_ANY
#  undef MSG_EXCEPT
#  undef MSG_COPY
#  define IPC_INFO 0
#  define MSG_INFO 0
#  define MSG_STAT 0
#  define MSG_STAT_ANY 0
#  define MSG_EXCEPT 0
#  define MSG_COPY 0
#endif

/* Messages up to this size are assembled on the stack: no malloc per send. */
#define SYSVMQ_STACK_TEXT 8192

/* msgsnd(2) messages start..count-1, laid end to end in data (lens[i] bytes
   each), all of one type, until one fails. Returns how many it sent; when that
   is fewer than asked, errno says why. One crossing for the whole batch. */
static size_t sysvmq_send_many(int msqid, long type, const char *data, const size_t *lens,
                               size_t count, size_t start, int flags)
{
    union {
        struct sysvmq_msgbuf msg;
        char raw[offsetof(struct sysvmq_msgbuf, mtext) + SYSVMQ_STACK_TEXT];
    } local;
    struct sysvmq_msgbuf *buf = &local.msg;
    size_t i, longest = 0, sent = 0;
    int saved;

    if (type < 1) {  /* msgsnd(2) would say EINVAL; spare the syscall */
        errno = EINVAL;
        return 0;
    }
    for (i = 0; i < start; i++)
        data += lens[i];
    for (i = start; i < count; i++)
        if (lens[i] > longest)
            longest = lens[i];
    if (longest > SYSVMQ_STACK_TEXT) {
        buf = malloc(offsetof(struct sysvmq_msgbuf, mtext) + longest);
        if (buf == NULL) {
            errno = ENOMEM;
            return 0;
        }
    }
    buf->mtype = type;
    for (i = start; i < count; i++) {
        memcpy(buf->mtext, data, lens[i]);
        if (msgsnd(msqid, buf, lens[i], flags) < 0)
            break;
        data += lens[i];
        sent++;
    }
    if (buf != &local.msg) {
        saved = errno;
        free(buf);
        errno = saved;
    }
    return sent;
}

/* The sum of count lengths: send_many's check that they add up to its text. */
static size_t sysvmq_total(const size_t *lens, size_t count)
{
    size_t i, total = 0;
    for (i = 0; i < count; i++)
        total += lens[i];
    return total;
}

/* One message: copy the caller's bytes behind the type and send. */
static int sysvmq_send(int msqid, long type, const char *data, size_t len, int flags)
{
    return sysvmq_send_many(msqid, type, data, &len, 1, 0, flags) == 1 ? 0 : -1;
}

/* msgrcv(2) up to max_count messages into b: the first with flags, the rest
   with flags | IPC_NOWAIT, so that it never waits once it holds one. The
   format reads like "16s3s..." and needs SYSVMQ_FMT_ITEM bytes a message and
   one more. It stops at the first failure (errno says why), or with errno 0
   when out lacks room for another message of rx->maxlen bytes. Returns how
   many it took. */
#define SYSVMQ_FMT_ITEM 22  /* the digits of a size_t, "s" */

/* b->out has this much room before it, so that msgrcv(2) can put each text
   in its place, its type in front (out has no gap for it between texts).
   Machines that fault on a misaligned long take the text via rx and copy it. */
#define SYSVMQ_HEADROOM sizeof(long)
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
#  define SYSVMQ_ANY_ALIGNMENT 1
#else
#  define SYSVMQ_ANY_ALIGNMENT 0
#endif

static size_t sysvmq_receive_many(struct sysvmq_batch *b, long type, int flags, size_t max_count)
{
    struct sysvmq_rx *rx = b->rx;
    char *fmt = b->fmt;
    size_t taken = 0, used = 0, len;
    char digits[SYSVMQ_FMT_ITEM], *at;
    long saved;
    int d;
    ssize_t n;

    for (;;) {
        if (taken == max_count)
            break;
        if (used + rx->maxlen > b->room) {
            errno = 0;
            break;
        }
        at = b->out + used - SYSVMQ_HEADROOM;
        if (SYSVMQ_ANY_ALIGNMENT || (uintptr_t)at % sizeof(long) == 0) {
            /* Straight into place: the type lands on the headroom or the end
               of the previous text, which is put back afterwards. */
            memcpy(&saved, at, sizeof saved);
            n = msgrcv(rx->msqid, at, rx->maxlen, type, taken ? flags | IPC_NOWAIT : flags);
            memcpy(&b->types[taken], at, sizeof(long));
            memcpy(at, &saved, sizeof saved);
            if (n < 0)
                break;
        } else {
            n = msgrcv(rx->msqid, &rx->mtype, rx->maxlen, type, taken ? flags | IPC_NOWAIT : flags);
            if (n < 0)
                break;
            memcpy(b->out + used, rx->mtext, (size_t)n);
            b->types[taken] = rx->mtype;
        }
        used += (size_t)n;
        taken++;
        len = (size_t)n;
        d = 0;
        do {
            digits[d++] = (char)('0' + len % 10);
            len /= 10;
        } while (len);
        while (d)
            *fmt++ = digits[--d];
        *fmt++ = 's';
    }
    *fmt = '\0';
    return taken;
}

/* The hot path: one message of any type, waiting for it; one argument. */
static ssize_t sysvmq_rx(struct sysvmq_rx *rx)
{
    return msgrcv(rx->msqid, &rx->mtype, rx->maxlen, 0, 0);
}

/* The same, of a chosen type. */
static ssize_t sysvmq_rx_type(struct sysvmq_rx *rx, long type)
{
    return msgrcv(rx->msqid, &rx->mtype, rx->maxlen, type, 0);
}

/* The same, copied on into the caller's buffer of len bytes (rx has room for len). */
static ssize_t sysvmq_rx_into(struct sysvmq_rx *rx, char *dest, size_t len, long type)
{
    ssize_t n = msgrcv(rx->msqid, &rx->mtype, len, type, 0);
    if (n > 0)
        memcpy(dest, rx->mtext, (size_t)n);
    return n;
}

/* Everything else: any flags, any room, and a copy into dest if there is one. */
static ssize_t sysvmq_receive(struct sysvmq_rx *rx, size_t maxlen, long type, int flags, char *dest)
{
    ssize_t n = msgrcv(rx->msqid, &rx->mtype, maxlen, type, flags);
    if (n > 0 && dest != NULL)
        memcpy(dest, rx->mtext, (size_t)n);
    return n;
}

/* The key's field is __key in glibc and musl, _key on macOS, key on the BSDs. */
static long long sysvmq_key(const struct msqid_ds *ds)
{
#if defined(__linux__)
    return (long long)ds->msg_perm.__key;
#elif defined(__APPLE__)
    return (long long)ds->msg_perm._key;
#else
    return (long long)ds->msg_perm.key;
#endif
}

/* Bytes queued now: __msg_cbytes on Linux, msg_cbytes on macOS and the BSDs. */
static unsigned long sysvmq_cbytes(const struct msqid_ds *ds)
{
#if defined(__linux__)
    return (unsigned long)ds->__msg_cbytes;
#else
    return (unsigned long)ds->msg_cbytes;
#endif
}

/* msgctl(IPC_INFO or MSG_INFO): the limits, or the system-wide usage. */
static int sysvmq_msginfo(int cmd, struct sysvmq_msginfo *out)
{
#ifdef __linux__
    struct msginfo info;
    int rc = msgctl(0, cmd, (struct msqid_ds *)(void *)&info);
    if (rc < 0)
        return rc;
    out->msgpool = info.msgpool;
    out->msgmap = info.msgmap;
    out->msgmax = info.msgmax;
    out->msgmnb = info.msgmnb;
    out->msgmni = info.msgmni;
    out->msgssz = info.msgssz;
    out->msgtql = info.msgtql;
    out->msgseg = info.msgseg;
    return rc;
#else
    (void)cmd;
    (void)out;
    errno = ENOSYS;
    return -1;
#endif
}

/* ftok(3) returns -1 both on failure and for one valid key: tell them apart. */
static int sysvmq_ftok(const char *path, int proj_id, long long *key)
{
    key_t k;
    errno = 0;
    k = ftok(path, proj_id);
    if (k == (key_t)-1 && errno != 0)
        return -1;
    *key = (long long)k;
    return 0;
}
"""

ffibuilder = FFI()
ffibuilder.cdef(OWN_TYPES + CDEF)
ffibuilder.set_source("sysvmq._sysvmq_cffi", PRELUDE + OWN_TYPES + HELPERS)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
