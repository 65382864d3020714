/* A test of sysvmq's C helpers on their own, with no Python: receive_many's
 * in-place layout at every alignment, truncation (MSG_NOERROR), a batch that
 * stops at an error, and a call taken up again where it stopped.
 *
 * Build and run (CI does, natively, in the i386 chroot, and under qemu-user
 * for big-endian and alignment-strict machines):
 *     cc -std=c11 -Wall -Wextra -Werror -Isysvmq tests/c/test_helpers.c sysvmq/_helpers.c -o test_helpers
 *     ./test_helpers
 * It prints each group it checked, ends with "test_helpers: N passed, 0 failed",
 * and exits 1 at the first failure, naming it. It uses one IPC_PRIVATE queue of
 * its own and removes it on every exit (also after a sanitizer's report).
 * It reads no queue statistics (qemu-user misreports some of them): what
 * stays queued is checked by receiving it.
 */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#  define _GNU_SOURCE /* as _helpers.c: glibc's struct msgbuf, MSG_EXCEPT */
#endif

#include "_helpers.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LONG_BYTES sizeof(long)
#define MAXLEN 300 /* the handle's buffer_size in these tests */
#define COUNT 64   /* texts in the layout test: lengths 0..63, every residue mod LONG_BYTES many times */

static int msqid = -1;
static unsigned long checks, groups;

static void remove_queue(void)
{
    if (msqid >= 0)
        msgctl(msqid, IPC_RMID, NULL);
    msqid = -1;
}

/* A sanitizer's report ends the process without atexit handlers: ask it to
   remove the queue too. The symbol exists only in a sanitized build. */
#if defined(__GNUC__) && defined(__ELF__)
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));
#endif

#define CHECK(cond, ...)                                                               \
    do {                                                                               \
        checks++;                                                                      \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                              \
            fprintf(stderr, " (errno %d: %s)\n", errno, strerror(errno));              \
            exit(1);                                                                   \
        }                                                                              \
    } while (0)

/* The byte j of text i: never the fill byte, and different for each text. */
static unsigned char text_byte(size_t i, size_t j)
{
    return (unsigned char)(1 + (i * 37 + j * 11) % 250);
}

#define FILL 0xEE

static struct sysvmq_call *new_call(size_t room)
{
    struct sysvmq_call *c = calloc(1, sizeof *c + room);

    CHECK(c != NULL, "calloc of %zu bytes", sizeof *c + room);
    c->msqid = msqid;
    c->maxlen = MAXLEN;
    c->room = room;
    c->len = -1;
    return c;
}

static void send_text(size_t i, size_t len, long type)
{
    unsigned char buf[sizeof(long) + 4 * MAXLEN];
    size_t j;

    CHECK(len <= 4 * MAXLEN, "text %zu too long for the test", i);
    memcpy(buf, &type, sizeof type);
    for (j = 0; j < len; j++)
        buf[sizeof(long) + j] = text_byte(i, j);
    CHECK(msgsnd(msqid, buf, len, IPC_NOWAIT) == 0, "msgsnd of text %zu (%zu bytes, type %ld)", i, len, type);
}

/* Take the next message (of any type) and check it is text i of len bytes, type type. */
static void expect_next(size_t i, size_t len, long type)
{
    unsigned char buf[sizeof(long) + 4 * MAXLEN];
    long got;
    ssize_t n;
    size_t j;

    n = msgrcv(msqid, buf, sizeof buf - sizeof(long), 0, IPC_NOWAIT);
    CHECK(n == (ssize_t)len, "the next message: %zd bytes, expected text %zu of %zu", n, i, len);
    memcpy(&got, buf, sizeof got);
    CHECK(got == type, "its type %ld, expected %ld", got, type);
    for (j = 0; j < len; j++)
        CHECK(buf[sizeof(long) + j] == text_byte(i, j), "text %zu byte %zu", i, j);
}

static void expect_empty(void)
{
    unsigned char buf[sizeof(long) + 1];

    errno = 0;
    CHECK(msgrcv(msqid, buf, 1, 0, IPC_NOWAIT | MSG_NOERROR) < 0 && errno == ENOMSG, "the queue is not empty");
}

static void passed(const char *group, const char *what)
{
    groups++;
    printf("ok  %-26s %s\n", group, what);
}

/* A batch area as Python's Batch makes it: HEADROOM bytes, then the texts
   area of size bytes, here at offset off from an aligned allocation, with
   every byte filled so that any stray write shows. */
struct area {
    unsigned char *mem;
    size_t total;
    unsigned char *dest;
    size_t size;
};

static struct area new_area(size_t off, size_t size)
{
    struct area a;
    size_t k;

    a.total = off + SYSVMQ_HEADROOM + size + 64;
    a.mem = malloc(a.total);
    CHECK(a.mem != NULL, "malloc");
    for (k = 0; k < a.total; k++)
        a.mem[k] = (unsigned char)(FILL ^ (k & 7));
    a.dest = a.mem + off + SYSVMQ_HEADROOM;
    a.size = size;
    return a;
}

static unsigned char area_fill(const struct area *a, const unsigned char *p)
{
    return (unsigned char)(FILL ^ ((size_t)(p - a->mem) & 7));
}

/* Every byte of the area outside [dest, dest + used) as it was filled. */
static void check_untouched(const struct area *a, size_t used, size_t off)
{
    const unsigned char *p;

    for (p = a->mem; p < a->dest; p++)
        CHECK(*p == area_fill(a, p), "offset %zu: byte %td before the texts changed", off, p - a->dest);
    for (p = a->dest + used; p < a->mem + a->total; p++)
        CHECK(*p == area_fill(a, p), "offset %zu: byte %td after the texts changed", off, p - (a->dest + used));
}

static void batch_call(struct sysvmq_call *c, struct area *a, size_t *sizes, long *types, char *fmt)
{
    c->dest = (char *)a->dest;
    c->size = a->size;
    c->sizes = sizes;
    c->types = types;
    c->fmt = fmt;
}

/* receive_many puts each text straight behind the previous one, msgrcv(2)
   writing each type on the bytes before its text and the helper putting them
   back. Start the texts area at every offset from an aligned address, with
   texts of every length mod sizeof(long), so that the type lands at every
   alignment; types span the range of a C long. */
static void test_layout(void)
{
    static const long far[] = {1, 2, LONG_MAX, LONG_MAX - 1, 0x7FFF, 0x8000};
    size_t sizes[COUNT], total = 0, i, j, off, len[COUNT];
    long types[COUNT], type[COUNT];
    char fmt[COUNT * SYSVMQ_FMT_ITEM + 1], expect_fmt[COUNT * SYSVMQ_FMT_ITEM + 1];
    struct sysvmq_call *c = new_call(MAXLEN);
    int with_fmt;
    ssize_t n;

    for (i = 0; i < COUNT; i++) {
        len[i] = (i * 7) % COUNT; /* 0..63 in a scrambled order */
        type[i] = i < sizeof far / sizeof far[0] ? far[i] : (long)(i + 1);
        total += len[i];
    }
    expect_fmt[0] = '\0';
    for (i = 0; i < COUNT; i++)
        sprintf(expect_fmt + strlen(expect_fmt), "%zus", len[i]);

    for (off = 0; off < 2 * LONG_BYTES; off++) {
        for (with_fmt = 0; with_fmt < 2; with_fmt++) {
            struct area a = new_area(off, total + MAXLEN);

            for (i = 0; i < COUNT; i++)
                send_text(i, len[i], type[i]);
            memset(sizes, 0xAB, sizeof sizes);
            memset(types, 0xAB, sizeof types);
            memset(fmt, 'x', sizeof fmt);
            batch_call(c, &a, sizes, types, with_fmt ? fmt : NULL);
            n = sysvmq_receive_many(c, 0, 0, COUNT);
            CHECK(n == COUNT, "offset %zu: took %zd of %d", off, n, COUNT);
            CHECK(c->done == COUNT && c->used == total && c->err == 0,
                  "offset %zu: done %zu used %zu err %d", off, c->done, c->used, c->err);
            for (i = 0, j = 0; i < COUNT; j += len[i], i++) {
                size_t k;

                CHECK(sizes[i] == len[i], "offset %zu: text %zu: size %zu, sent %zu", off, i, sizes[i], len[i]);
                CHECK(types[i] == type[i], "offset %zu: text %zu: type %ld, sent %ld", off, i, types[i], type[i]);
                for (k = 0; k < len[i]; k++)
                    CHECK(a.dest[j + k] == text_byte(i, k), "offset %zu: text %zu byte %zu", off, i, k);
            }
            check_untouched(&a, total, off);
            if (with_fmt)
                CHECK(strcmp(fmt, expect_fmt) == 0, "offset %zu: format %.40s..., expected %.40s...", off, fmt,
                      expect_fmt);
            expect_empty();
            free(a.mem);
        }
    }
    {
        /* As many texts of the sizes of the last batch: the format stands, and fmt_gen says so;
           another count or another size writes it anew. */
        struct area a = new_area(0, total + MAXLEN);
        long gen = c->fmt_gen;

        batch_call(c, &a, sizes, types, fmt);
        for (i = 0; i < COUNT; i++)
            send_text(i, len[i], type[i]);
        n = sysvmq_receive_many(c, 0, 0, COUNT);
        CHECK(n == COUNT && c->fmt_gen == gen && strcmp(fmt, expect_fmt) == 0, "the same batch again: gen %ld, was %ld",
              c->fmt_gen, gen);
        send_text(0, len[0], 1);
        send_text(1, len[1], 1);
        n = sysvmq_receive_many(c, 0, 0, COUNT);
        sprintf(expect_fmt, "%zus%zus", len[0], len[1]);
        CHECK(n == 2 && c->fmt_gen == gen + 1 && strcmp(fmt, expect_fmt) == 0, "two of them: gen %ld, format %s",
              c->fmt_gen, fmt);
        send_text(0, len[0], 1);
        send_text(1, len[1], 1);
        n = sysvmq_receive_many(c, 0, 0, COUNT);
        CHECK(n == 2 && c->fmt_gen == gen + 1 && strcmp(fmt, expect_fmt) == 0, "the two again: gen %ld", c->fmt_gen);
        send_text(0, len[0], 1);
        send_text(1, len[1] + 1, 1);
        n = sysvmq_receive_many(c, 0, 0, COUNT);
        sprintf(expect_fmt, "%zus%zus", len[0], len[1] + 1);
        CHECK(n == 2 && c->fmt_gen == gen + 2 && strcmp(fmt, expect_fmt) == 0, "one size more: gen %ld, format %s",
              c->fmt_gen, fmt);
        expect_empty();
        free(a.mem);
    }
    free(c);
    printf("ok  %-26s %zu offsets x %d texts of 0..%d bytes (%zu bytes), types up to %ld, with and without a format\n",
           "layout at every alignment", 2 * LONG_BYTES, COUNT, COUNT - 1, total, LONG_MAX);
    groups++;
}

/* With MSG_NOERROR a text longer than maxlen arrives cut to maxlen, and its
   tail is gone; without it, the call fails with E2BIG and the message stays. */
static void test_truncation(void)
{
    static const size_t lens[] = {MAXLEN + 1, MAXLEN + 3, 2 * MAXLEN, MAXLEN, 5};
    size_t nlens = sizeof lens / sizeof lens[0], sizes[8], i, j, at, off;
    long types[8];
    char fmt[8 * SYSVMQ_FMT_ITEM + 1];
    struct sysvmq_call *c = new_call(4 * MAXLEN);
    ssize_t n;

    for (off = 0; off < LONG_BYTES; off++) {
        struct area a = new_area(off, nlens * MAXLEN + MAXLEN);

        for (i = 0; i < nlens; i++)
            send_text(i, lens[i], (long)(i + 1));
        batch_call(c, &a, sizes, types, fmt);
        n = sysvmq_receive_many(c, 0, MSG_NOERROR, nlens);
        CHECK(n == (ssize_t)nlens && c->err == 0, "offset %zu: took %zd of %zu, err %d", off, n, nlens, c->err);
        for (i = 0, at = 0; i < nlens; at += sizes[i], i++) {
            size_t want = lens[i] < MAXLEN ? lens[i] : MAXLEN;

            CHECK(sizes[i] == want, "offset %zu: text %zu of %zu bytes arrived as %zu", off, i, lens[i], sizes[i]);
            CHECK(types[i] == (long)(i + 1), "offset %zu: text %zu type %ld", off, i, types[i]);
            for (j = 0; j < want; j++)
                CHECK(a.dest[at + j] == text_byte(i, j), "offset %zu: text %zu byte %zu", off, i, j);
        }
        check_untouched(&a, at, off);
        expect_empty(); /* the tails were dropped, not left queued */
        free(a.mem);
    }

    /* A single receive: cut with MSG_NOERROR; refused (E2BIG) and kept without. */
    send_text(0, MAXLEN + 10, 7);
    send_text(1, MAXLEN + 10, 8);
    errno = 0;
    n = sysvmq_receive(c, 0, IPC_NOWAIT, NULL, MAXLEN);
    CHECK(n == -1 && c->err == E2BIG && c->len == -1, "a long text without MSG_NOERROR: %zd, err %d", n, c->err);
    n = sysvmq_receive(c, 0, IPC_NOWAIT | MSG_NOERROR, NULL, MAXLEN);
    CHECK(n == MAXLEN && c->mtype == 7 && c->err == 0, "with MSG_NOERROR: %zd bytes, type %ld", n, c->mtype);
    for (j = 0; j < MAXLEN; j++)
        CHECK((unsigned char)c->mtext[j] == text_byte(0, j), "byte %zu of the cut text", j);
    expect_next(1, MAXLEN + 10, 8);
    expect_empty();
    free(c);
    passed("truncation (MSG_NOERROR)",
           "texts of maxlen+1..2*maxlen cut to maxlen in a batch at every offset, tails dropped; E2BIG without");
}

/* A batch stops at the first failure and reports what it took: the message
   that failed (here, too long for maxlen) and those behind it stay queued, in
   order. At the head of the queue, the batch takes nothing. */
static void test_error_mid_batch(void)
{
    size_t sizes[16], off;
    long types[16];
    char fmt[16 * SYSVMQ_FMT_ITEM + 1];
    struct sysvmq_call *c = new_call(MAXLEN);
    ssize_t n;

    for (off = 0; off < LONG_BYTES; off++) {
        struct area a = new_area(off, 16 * MAXLEN);

        send_text(0, 5, 1);
        send_text(1, 6, 2);
        send_text(2, MAXLEN + 1, 3);
        send_text(3, 3, 4);
        batch_call(c, &a, sizes, types, fmt);
        n = sysvmq_receive_many(c, 0, IPC_NOWAIT, 16);
        CHECK(n == 2 && c->done == 2 && c->used == 11 && c->err == E2BIG,
              "offset %zu: took %zd (done %zu, used %zu), err %d; expected 2, 11 bytes, E2BIG", off, n, c->done,
              c->used, c->err);
        CHECK(strcmp(fmt, "5s6s") == 0, "offset %zu: format %s", off, fmt);
        check_untouched(&a, 11, off);

        /* Now the long one is first: nothing taken. */
        n = sysvmq_receive_many(c, 0, IPC_NOWAIT, 16);
        CHECK(n == -1 && c->done == 0 && c->err == E2BIG, "offset %zu: at the head: %zd, err %d", off, n, c->err);
        CHECK(strcmp(fmt, "") == 0, "offset %zu: format %s after taking nothing", off, fmt);
        expect_next(2, MAXLEN + 1, 3);
        expect_next(3, 3, 4);
        expect_empty();

        /* An empty queue: ENOMSG, nothing taken; a batch that empties it: ENOMSG after what it took. */
        n = sysvmq_receive_many(c, 0, IPC_NOWAIT, 16);
        CHECK(n == -1 && c->err == ENOMSG, "offset %zu: empty queue: %zd, err %d", off, n, c->err);
        send_text(4, 9, 9);
        n = sysvmq_receive_many(c, 0, IPC_NOWAIT, 16);
        CHECK(n == 1 && c->err == ENOMSG && sizes[0] == 9 && types[0] == 9, "offset %zu: drained: %zd, err %d", off,
              n, c->err);

        /* Room for a text of maxlen after two of 10 bytes, not after three: the
           batch stops at two with err 0. */
        a.size = MAXLEN + 15;
        send_text(5, 10, 1);
        send_text(6, 10, 1);
        send_text(7, 10, 1);
        batch_call(c, &a, sizes, types, fmt);
        n = sysvmq_receive_many(c, 0, IPC_NOWAIT, 16);
        CHECK(n == 2 && c->err == 0, "offset %zu: a full area: took %zd, err %d", off, n, c->err);
        expect_next(7, 10, 1);
        expect_empty();
        free(a.mem);
    }
    free(c);
    passed("error in the middle", "E2BIG stops a batch after 2, the rest queued in order; ENOMSG; a full area");
}

/* Type selectors in a batch: a positive type takes only that type, a negative
   one the lowest type up to it first, MSG_EXCEPT (Linux) any but it. */
static void test_selectors(void)
{
    size_t sizes[8];
    long types[8];
    struct sysvmq_call *c = new_call(MAXLEN);
    struct area a = new_area(1, 8 * MAXLEN);
    ssize_t n;

    send_text(0, 1, 3);
    send_text(1, 2, 1);
    send_text(2, 3, 2);
    send_text(3, 4, 1);
    batch_call(c, &a, sizes, types, NULL);
    n = sysvmq_receive_many(c, 1, IPC_NOWAIT, 8);
    CHECK(n == 2 && sizes[0] == 2 && sizes[1] == 4 && types[0] == 1 && types[1] == 1, "type 1: took %zd", n);
    send_text(4, 5, 1);
    n = sysvmq_receive_many(c, -2, IPC_NOWAIT, 8);
    CHECK(n == 2 && types[0] == 1 && types[1] == 2 && sizes[0] == 5 && sizes[1] == 3, "type -2: took %zd", n);
#if HAS_MSG_EXCEPT
    send_text(5, 6, 4);
    n = sysvmq_receive_many(c, 3, IPC_NOWAIT | MSG_EXCEPT, 8);
    CHECK(n == 1 && types[0] == 4 && sizes[0] == 6, "MSG_EXCEPT 3: took %zd", n);
#endif
    expect_next(0, 1, 3);
    expect_empty();
    free(a.mem);
    free(c);
    passed("type selectors", HAS_MSG_EXCEPT ? "1, -2, MSG_EXCEPT 3" : "1, -2 (no MSG_EXCEPT here)");
}

/* send_many stops where the queue is full and records how far it got;
   sysvmq_again takes it up from there. Single sends record their outcome by ticket. */
static void test_progress(void)
{
    enum { N = 6, LEN = 200 };
    char data[N * LEN];
    size_t lens[N], i, j;
    struct sysvmq_call *c = new_call(LEN);
    struct msqid_ds ds;
    ssize_t n;

    memset(&ds, 0, sizeof ds);
    CHECK(msgctl(msqid, IPC_STAT, &ds) == 0, "IPC_STAT");
    ds.msg_qbytes = 3 * LEN; /* room for three texts */
    CHECK(msgctl(msqid, IPC_SET, &ds) == 0, "IPC_SET of msg_qbytes");
    for (i = 0; i < N; i++) {
        lens[i] = LEN;
        for (j = 0; j < LEN; j++)
            data[i * LEN + j] = (char)text_byte(i, j);
    }
    CHECK(sysvmq_send_many(c, LONG_MAX, data, lens, N, 0, IPC_NOWAIT) == 3, "send_many into room for 3: %zu", c->done);
    CHECK(c->err == EAGAIN && c->used == 3 * LEN, "err %d, used %zu", c->err, c->used);
    expect_next(0, LEN, LONG_MAX);
    expect_next(1, LEN, LONG_MAX);
    n = sysvmq_again(c, 1);
    CHECK(n == -1 && c->done == 5 && c->err == EAGAIN, "again: %zd, done %zu, err %d", n, c->done, c->err);
    for (i = 2; i < 5; i++)
        expect_next(i, LEN, LONG_MAX);
    n = sysvmq_again(c, 1);
    CHECK(n == N && c->done == N && c->err == 0, "again: %zd, done %zu, err %d", n, c->done, c->err);
    expect_next(5, LEN, LONG_MAX);
    expect_empty();

    /* A few texts, each from where it is: the same progress, and again goes on from the
       texts end to end once data and lens are pointed at them. */
    n = sysvmq_send_few(9, 2, LEN - 1, 1e300, data, LEN, data + LEN, LEN, NULL, 0, NULL, 0, c);
    CHECK(n == -1 && c->done == 0 && c->used == 0, "send_few of a text above longest: %zd", n);
    n = sysvmq_send_few(9, 4, LEN, -1.0, data, LEN, data + LEN, LEN, data, 0, data, 0, c);
    CHECK(n == -1 && c->done == 0, "send_few with a stale reading: %zd", n);
    expect_empty();
    n = sysvmq_send_few(9, 4, LEN, 1e300, data, LEN, data + LEN, LEN, data + 2 * LEN, LEN, data + 3 * LEN, LEN, c);
    CHECK(n == 3 && c->err == EAGAIN && c->used == 3 * LEN, "send_few into room for 3: %zd, used %zu", n, c->used);
    expect_next(0, LEN, 9);
    c->data = data;
    c->lens = lens;
    n = sysvmq_again(c, 1);
    CHECK(n == 4 && c->done == 4 && c->err == 0, "again after send_few: %zd, done %zu", n, c->done);
    for (i = 1; i < 4; i++)
        expect_next(i, LEN, 9);
    expect_empty();

    CHECK(sysvmq_send1(msqid, 5, data, LEN, 41) == 0 && sysvmq_sent(41) == 0, "send1 with ticket 41");
    CHECK(sysvmq_sent(42) == -1, "ticket 42 never ran");
    CHECK(sysvmq_send1(msqid, 0, data, 1, 43) == -1 && sysvmq_sent(43) == EINVAL, "send1 of type 0: EINVAL");
    expect_next(0, LEN, 5);
    free(c);
    passed("progress and again", "send_many and send_few stop at a full queue (EAGAIN) and resume; send1 tickets");
}

/* send_many's texts joined with the type between them (gap sizeof(long)): msgsnd reads
   each after the first in place; progress, again and the texts are those of gap 0.
   send_batch refuses (-2) lengths that do not add up to the bytes it was given. */
static void test_gaps(void)
{
    enum { N = 6, LEN = 200, GAP = sizeof(long) };
    char data[N * (LEN + GAP)];
    size_t lens[N], i, j;
    struct sysvmq_call *c = new_call(LEN);
    long type = LONG_MAX - 1;
    ssize_t n;

    for (i = 0; i < N; i++) {
        lens[i] = LEN;
        for (j = 0; j < LEN; j++)
            data[i * (LEN + GAP) + j] = (char)text_byte(i, j);
        memcpy(data + i * (LEN + GAP) + LEN, &type, GAP); /* the type between this text and the next */
    }
    /* The queue holds three texts (msg_qbytes from test_progress). */
    n = sysvmq_send_batch(c, type, data, N * (LEN + GAP) - GAP + 1, lens, N, GAP, LEN, 1e300);
    CHECK(n == -2 && c->done == 0 && c->used == 0, "send_batch, a byte too many: %zd", n);
    n = sysvmq_send_batch(c, type, data, N * LEN, lens, N, GAP, LEN, 1e300);
    CHECK(n == -2 && c->done == 0, "send_batch, lengths without the gaps: %zd", n);
    lens[2] = (size_t)-1;
    n = sysvmq_send_batch(c, type, data, N * (LEN + GAP) - GAP, lens, N, GAP, LEN, 1e300);
    CHECK(n == -2 && c->done == 0, "send_batch, a length past the end: %zd", n);
    lens[2] = LEN;
    lens[1] = LEN + 1; /* the right sum, a gap moved off its type */
    lens[2] = LEN - 1;
    n = sysvmq_send_batch(c, type, data, N * (LEN + GAP) - GAP, lens, N, GAP, LEN, 1e300);
    CHECK(n == -2 && c->done == 0, "send_batch, two lengths that lie and add up: %zd", n);
    lens[1] = lens[2] = LEN;
    n = sysvmq_send_batch(c, type + 1, data, N * (LEN + GAP) - GAP, lens, N, GAP, LEN, 1e300);
    CHECK(n == -2 && c->done == 0, "send_batch, gaps that hold another type: %zd", n);
    expect_empty();
    n = sysvmq_send_batch(c, type, data, N * (LEN + GAP) - GAP, lens, N, GAP, LEN, 1e300);
    CHECK(n == 3 && c->err == EAGAIN && c->used == 3 * LEN, "send_batch into room for 3: %zd, used %zu", n, c->used);
    expect_next(0, LEN, type);
    expect_next(1, LEN, type);
    n = sysvmq_again(c, 1);
    CHECK(n == -1 && c->done == 5 && c->err == EAGAIN, "again: %zd, done %zu, err %d", n, c->done, c->err);
    for (i = 2; i < 5; i++)
        expect_next(i, LEN, type);
    n = sysvmq_again(c, 1);
    CHECK(n == N && c->done == N && c->err == 0, "again: %zd, done %zu, err %d", n, c->done, c->err);
    expect_next(5, LEN, type);
    expect_empty();
    free(c);
    passed("types between texts", "sent in place, resumed after a full queue; lengths that do not add up, or move a gap, refused");
}

int main(void)
{
    msqid = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    CHECK(msqid >= 0, "msgget(IPC_PRIVATE)");
    atexit(remove_queue);
#if defined(__GNUC__) && defined(__ELF__)
    if (__sanitizer_set_death_callback)
        __sanitizer_set_death_callback(remove_queue);
#endif
    printf("test_helpers: queue %d; long %zu bytes, key_t %zu, HEADROOM %zu, %s-endian\n", msqid, LONG_BYTES,
           sizeof(key_t), (size_t)SYSVMQ_HEADROOM, *(const unsigned char *)&(int){1} ? "little" : "big");

    test_layout();
    test_truncation();
    test_error_mid_batch();
    test_selectors();
    test_progress();
    test_gaps();

    remove_queue();
    printf("test_helpers: %lu passed, 0 failed (%lu checks)\n", groups, checks);
    return 0;
}
