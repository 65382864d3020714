/* The C helpers behind sysvmq (declared in _helpers.h; see there). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE /* struct msginfo, MSG_EXCEPT, MSG_COPY, MSG_STAT_ANY in glibc's <sys/msg.h> */
#endif

#include "_helpers.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if SYSVMQ_LINUX
#  include <pthread.h>
#  include <stdatomic.h>
#  include <signal.h>
#  include <time.h>
#  include <unistd.h>
#  include <sys/syscall.h>
#endif

/* msgsnd(2) reads, and msgrcv(2) fills, a long and the text right behind it. */
typedef char sysvmq_call_holds_a_msgbuf[
    offsetof(struct sysvmq_call, mtext) == offsetof(struct sysvmq_call, mtype) + sizeof(long) ? 1 : -1];

/* x32 runs 64-bit syscalls with a 32-bit long: msgsnd would read a type of the
   wrong width. No other ABI in use has this mismatch. */
#if defined(__x86_64__) && defined(__ILP32__)
#  error "sysvmq/_helpers.c: x32 is not supported (the kernel's msgbuf type is 64 bits, C long is 32)"
#endif

/* That msgbuf must be the platform's: glibc types mtype __syscall_slong_t
   (64 bits on x32), musl long; macOS calls it struct mymsg. The BSDs declare
   none in their headers; their msgsnd(2) documents a long mtype. */
#if defined(__linux__)
#  define SYSVMQ_PLATFORM_MSGBUF struct msgbuf
#elif defined(__APPLE__)
#  define SYSVMQ_PLATFORM_MSGBUF struct mymsg
#elif defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) || defined(__DragonFly__)
/* nothing declared to check against */
#else
#  error "sysvmq/_helpers.c: what is this platform's msgbuf? Add it to the list."
#endif
#ifdef SYSVMQ_PLATFORM_MSGBUF
_Static_assert(sizeof(((SYSVMQ_PLATFORM_MSGBUF *)0)->mtype) == sizeof(long)
                   && offsetof(SYSVMQ_PLATFORM_MSGBUF, mtext) == sizeof(long),
               "the platform's msgbuf is not a long and the text right behind it, as struct sysvmq_call's is");
#endif

/* receive_many puts each text straight into its place, its type landing on
   the bytes before it; machines that fault on a misaligned long copy instead. */
#if defined(__x86_64__) || defined(__i386__) || defined(__aarch64__)
#  define SYSVMQ_ANY_ALIGNMENT 1
#else /* any other machine: the copy, right everywhere (not a platform difference) */
#  define SYSVMQ_ANY_ALIGNMENT 0
#endif

static int fail(struct sysvmq_call *c)
{
    c->err = errno;
    return -1;
}

/* msgsnd the texts from c->done on, until all are queued (0) or one fails (-1).
   Each is copied behind c->mtype first (Python sees that room covers them), but
   for a text with gap bytes before it that hold the type already (send_many's
   texts joined with the type between them), which msgsnd reads in place. */
static int send_rest(struct sysvmq_call *c, int flags)
{
    const char *at = c->data + c->used + c->gap * c->done;
    const void *msgp;
    size_t n;

    while (c->done < c->count) {
        n = c->lens[c->done];
        if (SYSVMQ_ANY_ALIGNMENT && c->gap && c->done) {
            msgp = at - sizeof(long);
        } else {
            if (at != c->mtext)
                memcpy(c->mtext, at, n);
            msgp = &c->mtype;
        }
        if (msgsnd(c->msqid, msgp, n, flags) < 0)
            return fail(c);
        at += n + c->gap;
        c->used += n;
        c->done++;
    }
    c->err = 0;
    return 0;
}

/* One msgrcv into c->mtext (copied on into c->dest if there is one). */
static ssize_t receive_one(struct sysvmq_call *c, int flags)
{
    ssize_t n = msgrcv(c->msqid, &c->mtype, c->size, c->type, c->flags | flags);

    c->len = n;
    if (n < 0)
        return fail(c);
    if (c->dest != NULL)
        memcpy(c->dest, c->mtext, (size_t)n);
    c->done = 1;
    c->err = 0;
    return n;
}

/* Append "<n>s" to a struct format. */
static char *put_item(char *fmt, size_t n)
{
    char digits[SYSVMQ_FMT_ITEM];
    int d = 0;

    do {
        digits[d++] = (char)('0' + n % 10);
        n /= 10;
    } while (n);
    while (d)
        *fmt++ = digits[--d];
    *fmt++ = 's';
    return fmt;
}

/* Up to c->count messages into the texts area: the first with flags, the rest
   with IPC_NOWAIT, so that it never waits once it holds one. It stops at the
   first failure, or with err 0 when dest lacks room for another message of
   maxlen bytes. Returns how many it took, or -1 if it took none. */
static ssize_t receive_batch(struct sysvmq_call *c, int flags)
{
    char *fmt = c->fmt, *at;
    long saved;
    ssize_t n;
    size_t i;
    int f, same = 1;

    c->err = 0;
    while (c->done < c->count && c->used + c->maxlen <= c->size) {
        f = c->flags | (c->done ? flags | IPC_NOWAIT : flags);
        at = c->dest + c->used - SYSVMQ_HEADROOM;
        if (SYSVMQ_ANY_ALIGNMENT || (uintptr_t)at % sizeof(long) == 0) {
            /* The type lands on the headroom or on the end of the previous
               text, which is put back afterwards. */
            memcpy(&saved, at, sizeof saved);
            n = msgrcv(c->msqid, at, c->maxlen, c->type, f);
            memcpy(&c->types[c->done], at, sizeof(long));
            memcpy(at, &saved, sizeof saved);
        } else {
            n = msgrcv(c->msqid, &c->mtype, c->maxlen, c->type, f);
            if (n >= 0) {
                memcpy(c->dest + c->used, c->mtext, (size_t)n);
                c->types[c->done] = c->mtype;
            }
        }
        if (n < 0) {
            c->err = errno;
            break;
        }
        if (c->sizes[c->done] != (size_t)n) {
            same = 0;
            c->sizes[c->done] = (size_t)n;
        }
        c->used += (size_t)n;
        c->done++;
    }
    /* A batch of the sizes of the last one (a stream of one kind of message) keeps its format:
       no digits to write, and Python may keep the struct it made from it (fmt_gen). */
    if (fmt != NULL && !(same && c->done == c->fmt_count && c->fmt_gen != 0)) {
        for (i = 0; i < c->done; i++)
            fmt = put_item(fmt, c->sizes[i]);
        *fmt = '\0';
        c->fmt_count = c->done;
        c->fmt_gen++;
    }
    return c->done ? (ssize_t)c->done : -1;
}

/* What this thread's last sends did, by ticket. A signal handler that raises
   as msgsnd returns costs Python the return value, and it may send again
   before it raises: each outcome survives SYSVMQ_TICKETS - 1 later sends of
   this thread, in a ring filled in turn (tickets come from one counter for
   all threads, so they could not choose the slot). */
#define SYSVMQ_TICKETS 256
static _Thread_local struct sysvmq_outcome {
    long long ticket;
    int err;
} outcomes[SYSVMQ_TICKETS];
static _Thread_local unsigned next_outcome;

/* Messages up to this size are assembled on the stack: no malloc per send. */
#define SYSVMQ_STACK_TEXT 8192

int sysvmq_send1(int msqid, long type, const char *data, size_t len, long long ticket)
{
    union {
        long mtype;
        char raw[sizeof(long) + SYSVMQ_STACK_TEXT];
    } local;
    char *buf = local.raw;
    struct sysvmq_outcome *slot;
    int rc, err;

    if (len > SYSVMQ_STACK_TEXT) {
        buf = malloc(sizeof(long) + len);
        if (buf == NULL) {
            errno = ENOMEM;
            return -1;
        }
    }
    memcpy(buf, &type, sizeof type);
    memcpy(buf + sizeof(long), data, len);
    rc = msgsnd(msqid, buf, len, IPC_NOWAIT);
    err = rc < 0 ? errno : 0;
    if (buf != local.raw)
        free(buf);
    slot = &outcomes[next_outcome++ % SYSVMQ_TICKETS];
    slot->ticket = ticket;
    slot->err = err;
    errno = err;
    return rc;
}

int sysvmq_sent(long long ticket)
{
    size_t i;

    for (i = 0; i < SYSVMQ_TICKETS; i++) /* only after an exception: a search costs nothing that matters */
        if (outcomes[i].ticket == ticket)
            return outcomes[i].err;
    return -1;
}

int sysvmq_send(struct sysvmq_call *c, long type, const char *data, size_t len)
{
    c->op = SYSVMQ_SEND;
    c->mtype = type;
    /* The text is copied once, and tried again from there: Python's pointer
       is good only for this crossing (PyPy pins a bytes argument for one call). */
    memcpy(c->mtext, data, len);
    c->data = c->mtext;
    c->one = len;
    c->lens = &c->one;
    c->gap = 0;
    c->count = 1;
    c->done = 0;
    c->used = 0;
    return send_rest(c, IPC_NOWAIT);
}

size_t sysvmq_send_many(struct sysvmq_call *c, long type, const char *data, const size_t *lens,
                        size_t count, size_t gap, int flags)
{
    c->op = SYSVMQ_SEND;
    c->mtype = type;
    c->data = data;
    c->lens = lens;
    c->gap = gap;
    c->count = count;
    c->done = 0;
    c->used = 0;
    send_rest(c, flags);
    return c->done;
}

/* Whether count lengths, and gap bytes between each two texts, add up to size, the
   bytes at data, and each gap (0, or sizeof(long)) holds type where the lengths put it:
   a length that lies (Python's len() of a bytes subclass may) moves a gap off its type. */
static int adds_up(const char *data, const size_t *lens, size_t count, size_t gap, size_t size, long type)
{
    size_t i, total = 0;

    if (gap != 0 && gap != sizeof type)
        return 0;
    for (i = 0; i < count; i++) {
        if (lens[i] > size - total)
            return 0; /* checked before each addition: the sum never wraps */
        total += lens[i];
        if (i + 1 < count) {
            if (gap > size - total || (gap && memcmp(data + total, &type, gap) != 0))
                return 0;
            total += gap;
        }
    }
    return total == size;
}

/* Whether send_many may send count texts without Python's checks: each no longer than
   longest (the reading) nor than the msgbuf's room, and the reading not stale. */
static int batch_fits(const struct sysvmq_call *c, const size_t *lens, size_t count, size_t longest,
                      double until)
{
    size_t i, limit = longest < c->room ? longest : c->room;
    double now;

    for (i = 0; i < count; i++)
        if (lens[i] > limit)
            return 0;
    now = sysvmq_monotonic();
    return now >= 0 && now <= until;
}

/* Refused before any msgsnd: the state says nothing was done. */
static ssize_t refuse(struct sysvmq_call *c, size_t count, ssize_t why)
{
    c->op = SYSVMQ_SEND;
    c->count = count;
    c->done = 0;
    c->used = 0;
    c->err = 0;
    return why;
}

ssize_t sysvmq_send_batch(struct sysvmq_call *c, long type, const char *data, size_t size, const size_t *lens,
                          size_t count, size_t gap, size_t longest, double until)
{
    if (!adds_up(data, lens, count, gap, size, type))
        return refuse(c, count, -2);
    if (!batch_fits(c, lens, count, longest, until))
        return refuse(c, count, -1);
    return (ssize_t)sysvmq_send_many(c, type, data, lens, count, gap, IPC_NOWAIT);
}

ssize_t sysvmq_send_few(long type, size_t count, size_t longest, double until, const char *t0, size_t n0,
                        const char *t1, size_t n1, const char *t2, size_t n2, const char *t3, size_t n3,
                        struct sysvmq_call *c)
{
    const char *texts[SYSVMQ_FEW] = {t0, t1, t2, t3};
    const size_t lens[SYSVMQ_FEW] = {n0, n1, n2, n3};
    size_t n;

    c->op = SYSVMQ_SEND;
    c->mtype = type;
    c->data = NULL;
    c->lens = NULL;
    c->gap = 0;
    c->count = count;
    c->done = 0;
    c->used = 0;
    c->err = 0;
    if (count > SYSVMQ_FEW || !batch_fits(c, lens, count, longest, until))
        return -1; /* refused before any msgsnd: the state says nothing was done */
    while (c->done < count) {
        n = lens[c->done];
        memcpy(c->mtext, texts[c->done], n);
        if (msgsnd(c->msqid, &c->mtype, n, IPC_NOWAIT) < 0) {
            c->err = errno;
            break;
        }
        c->used += n;
        c->done++;
    }
    return (ssize_t)c->done;
}

double sysvmq_monotonic(void)
{
    struct timespec ts;

    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
        return -1.0;
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The hot path: one message of any type, waiting for it. */
ssize_t sysvmq_rx(struct sysvmq_call *c)
{
    c->op = SYSVMQ_RECEIVE;
    c->type = 0;
    c->flags = 0;
    c->dest = NULL;
    c->size = c->maxlen;
    return receive_one(c, 0);
}

/* The same, of a chosen type. */
ssize_t sysvmq_rx_type(struct sysvmq_call *c, long type)
{
    c->op = SYSVMQ_RECEIVE;
    c->type = type;
    c->flags = 0;
    c->dest = NULL;
    c->size = c->maxlen;
    return receive_one(c, 0);
}

/* The same, copied on into the caller's buffer of len bytes (c has room for len). */
ssize_t sysvmq_rx_into(struct sysvmq_call *c, char *dest, size_t len, long type)
{
    c->op = SYSVMQ_RECEIVE;
    c->type = type;
    c->flags = 0;
    c->dest = dest;
    c->size = len;
    return receive_one(c, 0);
}

ssize_t sysvmq_try_rx(struct sysvmq_call *c)
{
    return sysvmq_try_rx_type(c, 0);
}

ssize_t sysvmq_try_rx_type(struct sysvmq_call *c, long type)
{
    c->op = SYSVMQ_RECEIVE;
    c->type = type;
    c->flags = 0;
    c->dest = NULL;
    c->size = c->maxlen;
    return receive_one(c, IPC_NOWAIT);
}

ssize_t sysvmq_try_rx_into(struct sysvmq_call *c, char *dest, size_t len, long type)
{
    c->op = SYSVMQ_RECEIVE;
    c->type = type;
    c->flags = 0;
    c->dest = dest;
    c->size = len;
    return receive_one(c, IPC_NOWAIT);
}

/* Any single receive: flags (IPC_NOWAIT for one try), size bytes at most, into dest if not NULL. */
ssize_t sysvmq_receive(struct sysvmq_call *c, long type, int flags, char *dest, size_t size)
{
    c->op = SYSVMQ_RECEIVE;
    c->type = type;
    c->flags = flags & ~IPC_NOWAIT;
    c->dest = dest;
    c->size = size;
    return receive_one(c, flags & IPC_NOWAIT);
}

ssize_t sysvmq_receive_many(struct sysvmq_call *c, long type, int flags, size_t max_count)
{
    c->op = SYSVMQ_RECEIVE_MANY;
    c->type = type;
    c->flags = flags & ~IPC_NOWAIT;
    c->count = max_count;
    c->done = 0;
    c->used = 0;
    return receive_batch(c, flags & IPC_NOWAIT);
}

ssize_t sysvmq_again(struct sysvmq_call *c, int nowait)
{
    int flags = nowait ? IPC_NOWAIT : 0;

    switch (c->op) {
    case SYSVMQ_SEND:
        return send_rest(c, flags) == 0 ? (ssize_t)c->done : -1;
    case SYSVMQ_RECEIVE:
        return receive_one(c, flags);
    case SYSVMQ_RECEIVE_MANY:
        return receive_batch(c, flags);
    default:
        c->err = EINVAL;
        errno = EINVAL;
        return -1;
    }
}

/* -- timed waits --------------------------------------------------------------

   Each thread that makes a timed call gets one POSIX timer, on first use, that
   sends the timer signal to that thread alone (SIGEV_THREAD_ID). Its handler
   does nothing: the point is the EINTR it causes in msgsnd or msgrcv. The
   timer is deleted when the thread exits (a pthread key's destructor); a
   forked child, which inherits no timers, makes its own. */

#if SYSVMQ_LINUX

static volatile sig_atomic_t timer_signal; /* 0: off */
static volatile sig_atomic_t fork_generation;
static pthread_key_t timer_key;
static pthread_once_t timer_once = PTHREAD_ONCE_INIT;
static int timer_key_ok;

/* How often the timer fires again after the deadline, if the call still waits: only
   when its first signal came before msgrcv or msgsnd slept (see sysvmq_again_until),
   so this is what a thread descheduled across its deadline waits on top. */
#define SYSVMQ_TIMER_REPEAT_NS 100000

struct sysvmq_timer {
    timer_t id;
    int sig;                 /* the signal it was made for */
    sig_atomic_t generation; /* the process it belongs to: fork_generation then */
};

static void timer_fired(int sig)
{
    (void)sig;
}

static void timer_forget(void *p)
{
    struct sysvmq_timer *t = p;

    if (t->generation == fork_generation)
        timer_delete(t->id);
    free(t);
}

static void timer_after_fork(void)
{
    fork_generation++; /* the child's copies of the parent's timers name nothing */
}

static void timer_setup(void)
{
    timer_key_ok = pthread_key_create(&timer_key, timer_forget) == 0
                   && pthread_atfork(NULL, NULL, timer_after_fork) == 0;
}

int sysvmq_timer_use(int sig)
{
    struct sigaction cur, ours;

    pthread_once(&timer_once, timer_setup);
    if (!timer_key_ok)
        return -1;
    if (sig == 0) {
        timer_signal = 0;
        return 0;
    }
    if (sigaction(sig, NULL, &cur) < 0)
        return -1;
    if (!(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == timer_fired) {
        timer_signal = sig;
        return 0;
    }
    if ((cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL)
        return 1; /* the application's, or ignored (which would not interrupt): never replaced */
    memset(&ours, 0, sizeof ours);
    ours.sa_handler = timer_fired;
    sigemptyset(&ours.sa_mask);
    ours.sa_flags = SA_RESTART;
    if (sigaction(sig, &ours, NULL) < 0)
        return -1;
    timer_signal = sig;
    return 0;
}

int sysvmq_timer_intact(void)
{
    struct sigaction cur;
    int sig = timer_signal;

    return sig != 0 && sigaction(sig, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO)
           && cur.sa_handler == timer_fired;
}

/* This thread's timer for sig, made if need be; NULL with errno if it cannot be had. */
static struct sysvmq_timer *thread_timer(int sig)
{
    struct sysvmq_timer *t = pthread_getspecific(timer_key);
    struct sigevent ev;

    if (t != NULL && t->generation == fork_generation && t->sig == sig)
        return t;
    if (t == NULL) {
        t = malloc(sizeof *t);
        if (t == NULL)
            return NULL;
        if (pthread_setspecific(timer_key, t) != 0) {
            free(t);
            errno = ENOMEM;
            return NULL;
        }
    } else if (t->generation == fork_generation) {
        timer_delete(t->id); /* made for another signal */
    }
    t->generation = -1; /* no timer until one is made */
    memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_THREAD_ID;
    ev.sigev_signo = sig;
#  ifdef sigev_notify_thread_id
    ev.sigev_notify_thread_id = (pid_t)syscall(SYS_gettid);
#  else
    ev._sigev_un._tid = (pid_t)syscall(SYS_gettid); /* glibc before 2.35 names it so */
#  endif
    if (timer_create(CLOCK_MONOTONIC, &ev, &t->id) < 0)
        return NULL;
    t->sig = sig;
    t->generation = fork_generation;
    return t;
}

ssize_t sysvmq_again_until(struct sysvmq_call *c, long long deadline_ns)
{
    struct itimerspec at, off;
    struct sysvmq_timer *t;
    sigset_t only, before;
    int sig = timer_signal, unblocked;
    ssize_t rc;

    if (sig == 0 || !timer_key_ok) {
        c->err = ENOTSUP;
        return -2;
    }
    if (!sysvmq_timer_intact()) {
        /* The application gave the signal a disposition of its own since:
           arming would call its handler, or kill, or sleep past the deadline. */
        c->err = ENOTSUP;
        return -3;
    }
    t = thread_timer(sig);
    if (t == NULL) {
        c->err = errno ? errno : ENOTSUP;
        return -2;
    }
    /* A thread that blocks the signal would sleep past its deadline: let it through, for this call only. */
    sigemptyset(&only);
    sigaddset(&only, sig);
    unblocked = pthread_sigmask(SIG_UNBLOCK, &only, &before) == 0 && sigismember(&before, sig) == 1;
    memset(&at, 0, sizeof at);
    at.it_value.tv_sec = (time_t)(deadline_ns / 1000000000);
    at.it_value.tv_nsec = (long)(deadline_ns % 1000000000);
    /* The signal may come between arming and msgrcv's sleep (the thread was
       descheduled past its deadline): it is then handled in user space and
       msgrcv would sleep on. So the timer goes on firing after the deadline,
       never before it, until it is disarmed. */
    at.it_interval.tv_nsec = SYSVMQ_TIMER_REPEAT_NS;
    if (timer_settime(t->id, TIMER_ABSTIME, &at, NULL) < 0) {
        c->err = errno;
        rc = -2;
    } else {
        rc = sysvmq_again(c, 0);
        memset(&off, 0, sizeof off);
        timer_settime(t->id, 0, &off, NULL); /* disarmed before the mask comes back: a late one is caught here */
    }
    if (unblocked)
        pthread_sigmask(SIG_BLOCK, &only, NULL);
    return rc;
}

/* -- asyncio's watchers (see _helpers.h) --------------------------------------

   The loop's thread collects an outcome without the lock: it runs the moment
   the pipe wakes it, while the watcher thread may still be on its way back to
   sleep, and must not wait for that thread to let go of the lock. So the
   outcome is atomic: the thread writes type and err, then the outcome
   (release); collect reads the outcome (acquire), then type and err, then
   clears it. The thread writes no new outcome until it is cleared. */

static long long monotonic_ns(void)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000 + now.tv_nsec;
}

int sysvmq_watch_init(struct sysvmq_watch *w, struct sysvmq_call *c, long type, int flags, int fd, int token)
{
    pthread_condattr_t attr;
    int err;

    memset(w, 0, sizeof *w);
    w->c = c;
    w->selector = type;
    w->flags = flags;
    w->fd = fd;
    w->token = token;
    atomic_init(&w->wanted, 0);
    atomic_init(&w->outcome, SYSVMQ_WATCH_NONE);
    if ((err = pthread_mutex_init(&w->lock, NULL)) != 0)
        return err;
    if ((err = pthread_condattr_init(&attr)) != 0)
        return err;
    err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (err == 0)
        err = pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    return err;
}

void sysvmq_watch_unpipe(struct sysvmq_watch *w)
{
    pthread_mutex_lock(&w->lock);
    w->fd = -1;
    pthread_mutex_unlock(&w->lock);
}

static atomic_uint watch_overflows;

unsigned sysvmq_watch_overflows(void)
{
    return atomic_load(&watch_overflows);
}

/* Whether the thread may watch: asked, and the last outcome collected. */
static int watch_may(struct sysvmq_watch *w)
{
    return atomic_load(&w->wanted) && atomic_load(&w->outcome) == SYSVMQ_WATCH_NONE;
}

/* Record what msgrcv said (n, c->err), and tell the loop. */
static void watch_saw(struct sysvmq_watch *w, ssize_t n)
{
    struct sysvmq_call *c = w->c;
    int outcome;
    ssize_t wrote;

    if (n >= 0) {
        outcome = SYSVMQ_WATCH_TAKEN;
        w->type = c->mtype;
    } else if (n == -2) {
        outcome = SYSVMQ_WATCH_POLL;
    } else if (n == -3) {
        outcome = SYSVMQ_WATCH_LOST;
    } else if (c->err == E2BIG) {
        outcome = SYSVMQ_WATCH_READY;
    } else {
        outcome = SYSVMQ_WATCH_ERROR;
        w->err = c->err;
    }
    pthread_mutex_lock(&w->lock);
    atomic_store(&w->wanted, 0); /* until the loop has collected this and asks again */
    w->seq++;
    atomic_store(&w->outcome, outcome);
    /* Under the lock, so that the pipe cannot be closed (and its number
       reused) meanwhile; the loop collects without it. A pipe takes an int
       whole, and holds thousands; a full one (EAGAIN: more watchers than it
       holds tokens, or a loop that reads no more) is counted, and the loop,
       which a full pipe wakes, then looks at every watch. */
    if (w->fd >= 0) {
        do
            wrote = write(w->fd, &w->token, sizeof w->token);
        while (wrote < 0 && errno == EINTR);
        if (wrote < 0 && errno == EAGAIN)
            atomic_fetch_add(&watch_overflows, 1);
    }
    pthread_mutex_unlock(&w->lock);
}

int sysvmq_watch_run(struct sysvmq_watch *w, long long linger_ns, long long slice_ns)
{
    struct sysvmq_call *c = w->c;
    struct timespec until;
    long long end;
    ssize_t n;

    for (;;) {
        if (!watch_may(w)) {
            end = monotonic_ns() + linger_ns;
            until.tv_sec = (time_t)(end / 1000000000);
            until.tv_nsec = (long)(end % 1000000000);
            pthread_mutex_lock(&w->lock);
            while (!watch_may(w)) {
                if (pthread_cond_timedwait(&w->cond, &w->lock, &until) == ETIMEDOUT && !watch_may(w)) {
                    pthread_mutex_unlock(&w->lock);
                    return SYSVMQ_WATCH_IDLE;
                }
            }
            pthread_mutex_unlock(&w->lock);
        }
        pthread_mutex_lock(&w->lock);
        w->thread = pthread_self();
        w->inside = 1;
        pthread_mutex_unlock(&w->lock);

        end = monotonic_ns() + slice_ns;
        n = sysvmq_receive(c, w->selector, w->flags | IPC_NOWAIT, NULL, 0);
        while (n == -1 && (c->err == ENOMSG || c->err == EINTR) && atomic_load(&w->wanted)) {
            if (monotonic_ns() >= end) {
                pthread_mutex_lock(&w->lock);
                w->inside = 0; /* under the lock: forget never signals a thread that left */
                pthread_mutex_unlock(&w->lock);
                return SYSVMQ_WATCH_SLICE;
            }
            /* A slice at a time: a wake-up sent as the thread went to sleep is not missed for long. */
            n = sysvmq_again_until(c, end);
        }
        pthread_mutex_lock(&w->lock);
        w->inside = 0;
        pthread_mutex_unlock(&w->lock);
        if (!(n == -1 && (c->err == ENOMSG || c->err == EINTR)))
            watch_saw(w, n); /* else no longer asked: wait to be */
    }
}

void sysvmq_watch_ask(struct sysvmq_watch *w)
{
    pthread_mutex_lock(&w->lock);
    atomic_store(&w->wanted, 1);
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void sysvmq_watch_forget(struct sysvmq_watch *w)
{
    int sig = timer_signal;

    pthread_mutex_lock(&w->lock);
    atomic_store(&w->wanted, 0);
    if (w->inside && sysvmq_timer_intact())
        pthread_kill(w->thread, sig);
    pthread_mutex_unlock(&w->lock);
}

int sysvmq_watch_collect(struct sysvmq_watch *w, long *type, int *err)
{
    int outcome = atomic_load(&w->outcome);

    if (outcome == SYSVMQ_WATCH_NONE)
        return outcome;
    *type = w->type;
    *err = w->err;
    atomic_store(&w->outcome, SYSVMQ_WATCH_NONE);
    if (atomic_load(&w->wanted)) { /* asked again before this was collected: the thread waits for it */
        pthread_mutex_lock(&w->lock);
        pthread_cond_signal(&w->cond);
        pthread_mutex_unlock(&w->lock);
    }
    return outcome;
}

int sysvmq_watch_seen(struct sysvmq_watch *w, long *type, int *err, long *seq)
{
    int outcome = atomic_load(&w->outcome);

    if (outcome != SYSVMQ_WATCH_NONE) { /* the thread records no other until this is collected */
        *type = w->type;
        *err = w->err;
        *seq = w->seq;
    }
    return outcome;
}

int sysvmq_watch_busy(struct sysvmq_watch *w)
{
    return atomic_load(&w->wanted) || atomic_load(&w->outcome) != SYSVMQ_WATCH_NONE;
}

#else /* no POSIX timers with SIGEV_THREAD_ID: timed calls poll */

ssize_t sysvmq_again_until(struct sysvmq_call *c, long long deadline_ns)
{
    (void)deadline_ns;
    c->err = ENOTSUP;
    return -2;
}

int sysvmq_timer_use(int sig)
{
    (void)sig;
    return -2;
}

int sysvmq_timer_intact(void)
{
    return 0;
}

/* No watchers where timed calls poll: asyncio's receives poll too. */
int sysvmq_watch_init(struct sysvmq_watch *w, struct sysvmq_call *c, long type, int flags, int fd, int token)
{
    (void)w, (void)c, (void)type, (void)flags, (void)fd, (void)token;
    return ENOTSUP;
}

void sysvmq_watch_unpipe(struct sysvmq_watch *w)
{
    (void)w;
}

unsigned sysvmq_watch_overflows(void)
{
    return 0;
}

int sysvmq_watch_run(struct sysvmq_watch *w, long long linger_ns, long long slice_ns)
{
    (void)w, (void)linger_ns, (void)slice_ns;
    return SYSVMQ_WATCH_IDLE;
}

void sysvmq_watch_ask(struct sysvmq_watch *w)
{
    (void)w;
}

void sysvmq_watch_forget(struct sysvmq_watch *w)
{
    (void)w;
}

int sysvmq_watch_collect(struct sysvmq_watch *w, long *type, int *err)
{
    (void)w, (void)type, (void)err;
    return SYSVMQ_WATCH_NONE;
}

int sysvmq_watch_seen(struct sysvmq_watch *w, long *type, int *err, long *seq)
{
    (void)w, (void)type, (void)err, (void)seq;
    return SYSVMQ_WATCH_NONE;
}

int sysvmq_watch_busy(struct sysvmq_watch *w)
{
    (void)w;
    return 0;
}

#endif

void sysvmq_reset(struct sysvmq_call *c)
{
    c->done = 0;
    c->used = 0;
    c->len = -1;
    c->err = 0;
}

/* The key's field: __key in glibc and musl, _key on macOS and NetBSD, key on the other BSDs. */
long long sysvmq_key(const struct msqid_ds *ds)
{
#if defined(__linux__)
    return (long long)ds->msg_perm.__key;
#elif defined(__APPLE__) || defined(__NetBSD__)
    return (long long)ds->msg_perm._key;
#elif defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__DragonFly__)
    return (long long)ds->msg_perm.key;
#else
#  error "sysvmq_key: which field of struct ipc_perm holds the key on this platform?"
#endif
}

/* Bytes queued now: __msg_cbytes on Linux, _msg_cbytes on NetBSD, msg_cbytes on macOS and the other BSDs. */
unsigned long sysvmq_cbytes(const struct msqid_ds *ds)
{
#if defined(__linux__)
    return (unsigned long)ds->__msg_cbytes;
#elif defined(__NetBSD__)
    return (unsigned long)ds->_msg_cbytes;
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__DragonFly__)
    return (unsigned long)ds->msg_cbytes;
#else
#  error "sysvmq_cbytes: which field of struct msqid_ds counts the bytes queued on this platform?"
#endif
}

/* msgctl(IPC_INFO or MSG_INFO): the limits, or the system-wide usage. */
int sysvmq_msginfo(int cmd, struct sysvmq_msginfo *out)
{
#if defined(__linux__)
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
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || defined(__NetBSD__) \
    || defined(__DragonFly__)
    /* No IPC_INFO or MSG_INFO: HAS_IPC_INFO and HAS_MSG_INFO are 0 there. */
    (void)cmd;
    (void)out;
    errno = ENOSYS;
    return -1;
#else
#  error "sysvmq_msginfo: does this platform have msgctl(IPC_INFO)? Add it to a list."
#endif
}

/* ftok(3) returns -1 both on failure and for one valid key: tell them apart. */
int sysvmq_ftok(const char *path, int proj_id, long long *key)
{
    key_t k;

    errno = 0;
    k = ftok(path, proj_id);
    if (k == (key_t)-1 && errno != 0)
        return -1;
    *key = (long long)k;
    return 0;
}
