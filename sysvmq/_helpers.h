/* The C helpers behind sysvmq: one msgsnd and one msgrcv loop for every call,
 * with each call's progress recorded in memory the caller owns.
 *
 * build_ffi.py hands cffi the declarations between the "cdef" markers below
 * (plain C, no preprocessor), and compiles _helpers.c beside the binding.
 * Everything a platform changes is settled here or in _helpers.c, so that
 * Python sees one interface and asks the HAS_* flags.
 */
#ifndef SYSVMQ_HELPERS_H
#define SYSVMQ_HELPERS_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <pthread.h>
#include <stdatomic.h>

/* glibc settles what its headers show at the first one included, so
   _GNU_SOURCE (struct msgbuf, struct msginfo) must come before any: build_ffi.py
   passes it with -D, ahead even of the pyconfig.h that the generated C includes
   first, and _helpers.c defines it on its first line. */
#if defined(__GLIBC__) && !defined(__USE_GNU)
#  error "sysvmq/_helpers.h: glibc's headers came before _GNU_SOURCE; define it ahead of every #include"
#endif

#if defined(__linux__)
/* Linux's extra msgctl commands and msgrcv flags are kernel ABI: a libc
   that lacks a name still talks to a kernel that has the number. */
#  define SYSVMQ_LINUX 1
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
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) \
    || defined(__DragonFly__)
/* Not there: 0, so that the cdef compiles, and HAS_* says so. */
#  define SYSVMQ_LINUX 0
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
#else
#  error "sysvmq/_helpers.h: unknown platform; add it to the list (and to the key and byte-count helpers in _helpers.c)"
#endif

#define HAS_IPC_INFO SYSVMQ_LINUX
#define HAS_MSG_INFO SYSVMQ_LINUX
#define HAS_MSG_STAT SYSVMQ_LINUX
#define HAS_MSG_STAT_ANY SYSVMQ_LINUX
#define HAS_MSG_EXCEPT SYSVMQ_LINUX
#define HAS_MSG_COPY SYSVMQ_LINUX

/* What a call asked for, one of these. */
#define SYSVMQ_SEND 1
#define SYSVMQ_RECEIVE 2
#define SYSVMQ_RECEIVE_MANY 3

/* asyncio's watchers (struct sysvmq_watch, below): */
/* what the watcher saw (sysvmq_watch_collect). */
#define SYSVMQ_WATCH_NONE 0   /* nothing yet */
#define SYSVMQ_WATCH_READY 1  /* a message that matches is queued (too long for no room) */
#define SYSVMQ_WATCH_TAKEN 2  /* it took an empty message, of type *type: the loop owns it now */
#define SYSVMQ_WATCH_ERROR 3  /* msgrcv failed with *err (EIDRM, EACCES, ...) */
#define SYSVMQ_WATCH_POLL 4   /* this thread can have no timer: receives must poll */
#define SYSVMQ_WATCH_LOST 5   /* the timer signal is no longer sysvmq's: receives must poll */
/* why sysvmq_watch_run returned: */
#define SYSVMQ_WATCH_IDLE 0   /* not asked to watch for linger_ns */
#define SYSVMQ_WATCH_SLICE 1  /* still asked after slice_ns in the kernel: Python looks at its loop */

/* sysvmq_send_few's texts at most: where a join's copy costs more than passing each text. */
#define SYSVMQ_FEW 4

/* receive_many's format needs this many bytes a message, and one more. */
#define SYSVMQ_FMT_ITEM 22 /* the digits of a size_t, "s" */

/* receive_many's texts area has this much room before it, so that msgrcv(2)
   can put each text in its place with the type in front of it. */
#define SYSVMQ_HEADROOM sizeof(long)

/* asyncio's watchers (see sysvmq_watch_run below). Python allocates it: cffi
   knows its size and alignment, nothing of its fields. */
struct sysvmq_watch {
    pthread_mutex_t lock;    /* guards the wait for wanted, inside and thread, and the pipe's fd */
    pthread_cond_t cond;     /* on CLOCK_MONOTONIC: signalled when asked, or collected while asked */
    atomic_int wanted;       /* the loop has receives waiting: watch (written under the lock) */
    int inside;              /* the thread may be in msgrcv: forget wakes it */
    pthread_t thread;        /* the thread that runs it, while inside */
    atomic_int outcome;      /* SYSVMQ_WATCH_*, until collected */
    long seq;                /* outcomes recorded so far: this one's number */
    long type;               /* TAKEN: the message's type */
    int err;                 /* ERROR: msgrcv's errno */
    long selector;           /* msgrcv's msgtyp */
    int flags;               /* MSG_EXCEPT, or 0 */
    int fd, token;           /* where to tell the loop (-1: nowhere), and what */
    struct sysvmq_call *c;   /* the 0-byte receives' state */
};

/* cdef: begin */

/* One call's state. Python keeps a pool of them per handle (a call takes one,
 * so threads never share one) and owns their memory.
 *
 * The first crossing of a call records what it asks for; sysvmq_again()
 * repeats it, waiting as told, until it is done. Before every return the C
 * side writes what it did (done, used, len, err), so that Python can read
 * it even when a signal handler that raises has cost it the return value. */
struct sysvmq_call {
    /* What to do. */
    int op;                 /* SYSVMQ_SEND, SYSVMQ_RECEIVE or SYSVMQ_RECEIVE_MANY */
    int msqid;
    int flags;              /* msgflg bits kept on every try: MSG_NOERROR, MSG_EXCEPT */
    long type;              /* send: the type of every message; receive: the selector */
    const char *data;       /* send: the texts, gap bytes apart (a single text: mtext); must stay
                               valid until the call is done, which a bytes argument is only
                               for one crossing on PyPy */
    const size_t *lens;     /* send: each text's length */
    size_t gap;             /* send: the bytes between two texts in data: 0, or sizeof(long)
                               holding the type, for msgsnd(2) to read the text in place */
    size_t count;           /* send: how many texts; receive_many: the most to take */
    char *dest;             /* receive: where the text goes besides mtext (or NULL);
                               receive_many: the texts area, with SYSVMQ_HEADROOM before it */
    size_t size;            /* receive: msgsz, the longest text taken whole;
                               receive_many: the room in dest */
    size_t maxlen;          /* the handle's buffer_size: receive_many's msgsz */
    size_t *sizes;          /* receive_many: each text's length, filled in */
    long *types;            /* receive_many: each message's type, filled in */
    char *fmt;              /* receive_many: a struct module format that cuts the texts
                               apart ("16s3s..."), filled in (left as it is if it already
                               says so: see fmt_gen), or NULL */
    size_t fmt_count;       /* receive_many: the messages fmt describes (sizes[0..fmt_count)) */
    long fmt_gen;           /* receive_many: counts the times fmt was written anew; a crossing
                               that took as many texts of the same sizes leaves it as it was */
    size_t one;             /* a single send's length: lens points here */

    /* What it did, written before every return. */
    size_t done;            /* messages queued, or taken */
    size_t used;            /* send: bytes of texts queued (gaps not counted); receive_many: bytes
                               of dest filled */
    ssize_t len;            /* a single receive: the text's length, or -1 */
    int err;                /* errno of the try that failed, 0 after a success */

    /* The msgbuf that msgsnd(2) reads and msgrcv(2) fills: the type, then room bytes. */
    size_t room;
    long mtype;
    char mtext[];
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

/* A single send's first try (IPC_NOWAIT), with no call state: the msgbuf is
   on the stack (malloc'd above 8 KiB), and the outcome is recorded by ticket
   in this thread's own memory, for sysvmq_sent() to tell. */
int sysvmq_send1(int msqid, long type, const char *data, size_t len, long long ticket);
/* The outcome of this thread's send with that ticket: 0 queued, an errno if
   it failed, -1 if no send with that ticket ran (or 255 others of this
   thread ran since). Tickets are > 0. */
int sysvmq_sent(long long ticket);

/* The first crossing of each call: records the operation, tries it once. */
int sysvmq_send(struct sysvmq_call *c, long type, const char *data, size_t len);
/* count texts from data, gap bytes between each two (0, or sizeof(long) holding type: see
   the field), with flags (IPC_NOWAIT, or 0 to wait): how many were queued. */
size_t sysvmq_send_many(struct sysvmq_call *c, long type, const char *data, const size_t *lens,
                        size_t count, size_t gap, int flags);
/* send_many's first crossing (IPC_NOWAIT) with the checks it would otherwise make in Python
   first. Nothing tried, -2: the lengths and gaps do not add up to size, the bytes at data,
   or a gap does not hold type where the lengths put it (Python's len() of a text disagreed
   with the bytes join copied). Nothing tried, -1: a text
   is longer than longest or than the msgbuf's room, or now (sysvmq_monotonic) is past until,
   when the reading of longest is stale; then Python checks anew and calls sysvmq_send_many.
   Else what sysvmq_send_many returns. */
ssize_t sysvmq_send_batch(struct sysvmq_call *c, long type, const char *data, size_t size, const size_t *lens,
                          size_t count, size_t gap, size_t longest, double until);
/* The same for up to SYSVMQ_FEW texts, each read where its bytes object holds it: no join,
   one copy a text, as a single send makes. Unused slots: any pointer, length 0. Records its
   progress as sysvmq_send_many does (used counts the bytes sent as if the texts were end to
   end), but leaves data and lens NULL: before sysvmq_again, Python points them at the texts
   joined and their lengths. The state comes last: Python binds it as the crossing's last
   operand, after the len() of each text, where no signal handler can run before C. */
ssize_t sysvmq_send_few(long type, size_t count, size_t longest, double until, const char *t0, size_t n0,
                        const char *t1, size_t n1, const char *t2, size_t n2, const char *t3, size_t n3,
                        struct sysvmq_call *c);
/* CLOCK_MONOTONIC in seconds: the clock of every reading's "until" (-1.0 if it fails). */
double sysvmq_monotonic(void);
ssize_t sysvmq_rx(struct sysvmq_call *c);
ssize_t sysvmq_rx_type(struct sysvmq_call *c, long type);
ssize_t sysvmq_rx_into(struct sysvmq_call *c, char *dest, size_t len, long type);
/* The same, trying once without waiting (the first try of timed and non-blocking receives). */
ssize_t sysvmq_try_rx(struct sysvmq_call *c);
ssize_t sysvmq_try_rx_type(struct sysvmq_call *c, long type);
ssize_t sysvmq_try_rx_into(struct sysvmq_call *c, char *dest, size_t len, long type);
ssize_t sysvmq_receive(struct sysvmq_call *c, long type, int flags, char *dest, size_t size);
ssize_t sysvmq_receive_many(struct sysvmq_call *c, long type, int flags, size_t max_count);

/* The same operation again: once without waiting, or blocking in the kernel. */
ssize_t sysvmq_again(struct sysvmq_call *c, int nowait);

/* Timed waits (Linux): block in the kernel like sysvmq_again(c, 0), with this
   thread's POSIX timer armed to deliver the timer signal at deadline_ns on
   CLOCK_MONOTONIC; msgsnd and msgrcv are never restarted after a handler, so
   the call then fails with EINTR, having moved nothing. Arm, call and disarm
   in one crossing. Returns what sysvmq_again does, or -2 if the thread
   cannot have a timer (err says why: ENOTSUP, or timer_create's errno), or
   -3 if the signal's handler is no longer sysvmq's (the application changed
   its disposition): in both cases nothing was tried, wait another way. */
ssize_t sysvmq_again_until(struct sysvmq_call *c, long long deadline_ns);
/* Use sig for the timer, installing a handler that does nothing (with
   SA_RESTART, so a late expiry restarts the application's other system calls)
   unless another is installed: 0 done, 1 the signal has another handler or is
   ignored, -1 an error (errno), -2 no timers on this platform. sig 0 turns
   the timer off. */
int sysvmq_timer_use(int sig);
/* Whether the handler on the timer signal is still sysvmq's: 1 yes, 0 no. */
int sysvmq_timer_intact(void);
/* asyncio's watchers (Linux): a thread asleep in msgrcv(2) with no room for a
 * text, for an event loop's receives of one queue and type selector. It runs
 * sysvmq_watch_run() without the GIL and tells the loop what it saw by writing
 * the watch's token (an int) to a pipe the loop reads: so the loop wakes while
 * the watcher thread stays in C, and neither waits on the other for the GIL.
 * The loop's thread calls ask, forget and collect; a watch holds at most one
 * outcome, and watches for no more until the loop has collected it. */

/* Set up a watch Python allocated (and keeps while any thread may use it),
   for msgrcv(2) on c->msqid with that msgtyp and flags (MSG_EXCEPT or 0),
   telling fd (the pipe's write end) the token: 0, or an errno. c: a state
   with room for 1 byte, the watch's alone. Nothing to free after. */
int sysvmq_watch_init(struct sysvmq_watch *w, struct sysvmq_call *c, long type, int flags, int fd, int token);
/* The pipe is closing: the watch tells the loop no more. */
void sysvmq_watch_unpipe(struct sysvmq_watch *w);
/* How many tokens a full pipe has refused, in the whole process: when it
   changes, a loop looks at every watch it has. */
unsigned sysvmq_watch_overflows(void);
/* In the watcher thread: watch while asked, returning as above. */
int sysvmq_watch_run(struct sysvmq_watch *w, long long linger_ns, long long slice_ns);
/* Watch once more (until an outcome); and stop watching, waking the thread from msgrcv. */
void sysvmq_watch_ask(struct sysvmq_watch *w);
void sysvmq_watch_forget(struct sysvmq_watch *w);
/* Take the outcome (SYSVMQ_WATCH_*), filling *type and *err as it says. */
int sysvmq_watch_collect(struct sysvmq_watch *w, long *type, int *err);
/* The outcome, as collect returns it, left uncollected; *seq numbers the outcomes 1, 2, ... (the
   loop acts on one before it collects it, so that it can act again if cut short). */
int sysvmq_watch_seen(struct sysvmq_watch *w, long *type, int *err, long *seq);
/* Whether the thread has more to do: asked to watch, or an outcome not collected yet. */
int sysvmq_watch_busy(struct sysvmq_watch *w);

/* Forget what the last call did: nothing done yet. */
void sysvmq_reset(struct sysvmq_call *c);

/* Readings of the kernel's structs whose field names differ by platform. */
long long sysvmq_key(const struct msqid_ds *ds);
unsigned long sysvmq_cbytes(const struct msqid_ds *ds);
int sysvmq_msginfo(int cmd, struct sysvmq_msginfo *out);
int sysvmq_ftok(const char *path, int proj_id, long long *key);

/* cdef: end */

#endif
