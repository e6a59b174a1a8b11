/*
 * termios2 shim for running aarch64 tests under qemu-user.
 *
 * qemu's user-mode emulation (7.x in Debian 12, and later releases too) does
 * not implement the TCGETS2/TCSETS2/TCSETSW2/TCSETSF2 ioctls; it answers
 * ENOSYS. The serialport crate sets the baud rate through them, so every test
 * that opens a pseudo-terminal as a serial port fails under qemu while it
 * works on a real aarch64 kernel.
 *
 * Preloaded into the emulated process (LD_PRELOAD, see env.sh), this shim
 * passes every ioctl through unchanged and, only when a termios2 request
 * fails with ENOSYS, redoes it with the classic TCGETS/TCSETS* requests,
 * which qemu does emulate. Baud rates are mapped to the standard Bnnn
 * constants; a non-standard rate fails with EINVAL. On a PTY the rate has no
 * effect anyway. It is never used outside emulation.
 */
#define _GNU_SOURCE
#include <asm/ioctls.h>
#include <asm/termbits.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

typedef int (*ioctl_fn)(int, unsigned long, ...);

static const struct {
    unsigned int code;
    unsigned int rate;
} rates[] = {
    {B0, 0},           {B50, 50},           {B75, 75},           {B110, 110},
    {B134, 134},       {B150, 150},         {B200, 200},         {B300, 300},
    {B600, 600},       {B1200, 1200},       {B1800, 1800},       {B2400, 2400},
    {B4800, 4800},     {B9600, 9600},       {B19200, 19200},     {B38400, 38400},
    {B57600, 57600},   {B115200, 115200},   {B230400, 230400},   {B460800, 460800},
    {B500000, 500000}, {B576000, 576000},   {B921600, 921600},   {B1000000, 1000000},
    {B1152000, 1152000}, {B1500000, 1500000}, {B2000000, 2000000}, {B2500000, 2500000},
    {B3000000, 3000000}, {B3500000, 3500000}, {B4000000, 4000000},
};

static int code_to_rate(unsigned int code, unsigned int *rate) {
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        if (rates[i].code == code) {
            *rate = rates[i].rate;
            return 0;
        }
    }
    return -1;
}

static int rate_to_code(unsigned int rate, unsigned int *code) {
    for (size_t i = 0; i < sizeof rates / sizeof rates[0]; i++) {
        if (rates[i].rate == rate) {
            *code = rates[i].code;
            return 0;
        }
    }
    return -1;
}

static ioctl_fn real_ioctl(void) {
    static ioctl_fn fn;
    if (!fn) {
        fn = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
    }
    return fn;
}

static int get2(int fd, struct termios2 *t2) {
    struct termios t;
    if (real_ioctl()(fd, TCGETS, &t) != 0) {
        return -1;
    }
    memset(t2, 0, sizeof *t2);
    t2->c_iflag = t.c_iflag;
    t2->c_oflag = t.c_oflag;
    t2->c_cflag = t.c_cflag;
    t2->c_lflag = t.c_lflag;
    t2->c_line = t.c_line;
    memcpy(t2->c_cc, t.c_cc, sizeof t.c_cc);
    unsigned int out = 0, in = 0;
    (void)code_to_rate(t.c_cflag & CBAUD, &out);
    unsigned int icode = (t.c_cflag & CIBAUD) >> IBSHIFT;
    if (icode == B0 || code_to_rate(icode, &in) != 0) {
        in = out;
    }
    t2->c_ospeed = out;
    t2->c_ispeed = in;
    return 0;
}

static int set2(int fd, unsigned long classic, const struct termios2 *t2) {
    struct termios t;
    memset(&t, 0, sizeof t);
    t.c_iflag = t2->c_iflag;
    t.c_oflag = t2->c_oflag;
    t.c_cflag = t2->c_cflag;
    t.c_lflag = t2->c_lflag;
    t.c_line = t2->c_line;
    memcpy(t.c_cc, t2->c_cc, sizeof t.c_cc);
    if ((t2->c_cflag & CBAUD) == BOTHER) {
        unsigned int code;
        if (rate_to_code(t2->c_ospeed, &code) != 0) {
            errno = EINVAL;
            return -1;
        }
        t.c_cflag = (t.c_cflag & ~CBAUD) | code;
    }
    if (((t2->c_cflag & CIBAUD) >> IBSHIFT) == BOTHER) {
        unsigned int code;
        if (rate_to_code(t2->c_ispeed, &code) != 0) {
            errno = EINVAL;
            return -1;
        }
        t.c_cflag = (t.c_cflag & ~CIBAUD) | (code << IBSHIFT);
    }
    return real_ioctl()(fd, classic, &t);
}

int ioctl(int fd, unsigned long request, ...) {
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);

    int rc = real_ioctl()(fd, request, arg);
    if (rc != -1 || errno != ENOSYS) {
        return rc;
    }
    switch (request) {
    case TCGETS2:
        return get2(fd, arg);
    case TCSETS2:
        return set2(fd, TCSETS, arg);
    case TCSETSW2:
        return set2(fd, TCSETSW, arg);
    case TCSETSF2:
        return set2(fd, TCSETSF, arg);
    default:
        errno = ENOSYS;
        return -1;
    }
}
