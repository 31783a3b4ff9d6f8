/*
 * hero-init pre-init: the first program the kernel runs (/init or /sbin/init).
 *
 * Why it exists: a Bun-compiled binary aborts before running any JavaScript
 * when /proc is not mounted (it reads /proc/self/exe to find its embedded
 * program), and Bun opens /dev/null whenever it spawns. So this tiny static
 * program mounts /proc and /dev, makes sure fds 0-2 are the console, sets
 * NO_COLOR=1 (the serial console shows raw ANSI codes otherwise) and execs
 * hero-init as the same PID 1 with the kernel's argv and environment.
 *
 * If no hero-init can be exec'ed it says so on the console and powers the VM
 * off: a PID 1 that exits would end in a kernel panic with no explanation.
 *
 * The binary to run is the first of: `hero.init=PATH` on the kernel command
 * line, HERO_INIT_PATH (compiled in), HERO_INIT_FALLBACK (compiled in).
 * The same binary, invoked as `hero-exec` (a symlink), is the supervisor's
 * exec helper: `hero-exec [-c CGROUP_DIR] [-u UID] [-g GID] -- PROG ARGS...` moves itself into
 * the service's cgroup and then execs PROG, so the service and everything it
 * forks are in the cgroup from the first instruction (Bun.spawn cannot spawn
 * into a cgroup; moving the pid afterwards races with an early fork). Exit
 * codes follow the shell: 127 not found, 126 not executable.
 *
 * Disk boot (host/boot-initramfs.ts): in a tiny initramfs that has
 * /hero-root-modules (absolute .ko paths, dependencies first) and a kernel
 * command line with root=/dev/..., it first loads those modules, mounts the
 * disk (rootfstype=, default ext4; ro/rw), makes it the root and execs the
 * disk's /sbin/init (its pre-init), so hero-init is the disk's, paged in on
 * demand instead of unpacked into RAM. If that fails it says why and, with
 * no hero-init in the tiny initramfs, powers off.
 *
 * Built with musl-gcc -static -Os: no stdio, ~20 KB, no runtime dependencies.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef HERO_INIT_PATH
#define HERO_INIT_PATH "/usr/lib/hero/hero-init"
#endif
#ifndef HERO_INIT_FALLBACK
#define HERO_INIT_FALLBACK "/usr/bin/hero-init"
#endif

extern char **environ;

/* Appends `s` to buf[*n] (bounded); no stdio keeps the static binary small. */
static void put(char *buf, size_t cap, size_t *n, const char *s) {
  while (s && *s && *n + 1 < cap) buf[(*n)++] = *s++;
}

/* Writes the pieces as one line to fd (one write, so a kernel message cannot split it). */
static void line(int fd, const char *prefix, const char *a, const char *b, const char *c) {
  char buf[512];
  size_t n = 0;
  put(buf, sizeof buf, &n, prefix);
  put(buf, sizeof buf, &n, a);
  put(buf, sizeof buf, &n, b);
  put(buf, sizeof buf, &n, c);
  buf[n++] = '\n';
  (void)!write(fd, buf, n);
}

static void say(const char *a, const char *b, const char *c) { line(2, "hero-init preinit: ", a, b, c); }

static int is_dir(const char *p) {
  struct stat st;
  return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void ensure_mount(const char *src, const char *target, const char *type,
                         unsigned long flags, const char *data, const char *probe) {
  if (access(probe, F_OK) == 0) return; /* already there (e.g. an initramfs handed over) */
  if (!is_dir(target)) mkdir(target, 0755);
  if (mount(src, target, type, flags, data) != 0 && errno != EBUSY)
    say("cannot mount ", target, strerror(errno));
}

/* Makes fds 0, 1 and 2 valid: with no /dev/console in the rootfs the kernel
 * starts init with them closed, and every message would vanish. */
static void ensure_console(void) {
  if (fcntl(2, F_GETFD) != -1) return;
  int fd = open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd < 0) fd = open("/dev/null", O_RDWR);
  if (fd < 0) return;
  for (int i = 0; i < 3; i++)
    if (fd != i) dup2(fd, i);
  if (fd > 2) close(fd);
}

/* The value of `key` on the kernel command line ("root=": the text after it;
 * "ro": the bare word, value ""), copied to buf; NULL when absent. */
static const char *cmdline_get(const char *key, char *buf, size_t len) {
  char cmd[4096], *save = NULL;
  int fd = open("/proc/cmdline", O_RDONLY);
  if (fd < 0) return NULL;
  ssize_t n = read(fd, cmd, sizeof cmd - 1);
  close(fd);
  if (n <= 0) return NULL;
  cmd[n] = 0;
  size_t k = strlen(key);
  int prefix = k && key[k - 1] == '=';
  for (char *tok = strtok_r(cmd, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save)) {
    if (prefix ? strncmp(tok, key, k) == 0 : strcmp(tok, key) == 0) {
      size_t m = 0;
      put(buf, len, &m, prefix ? tok + k : "");
      buf[m] = 0;
      return buf;
    }
  }
  return NULL;
}

/* `hero.init=/PATH` from the kernel command line, or NULL. */
static const char *cmdline_override(char *buf, size_t len) {
  const char *p = cmdline_get("hero.init=", buf, len);
  return p && p[0] == '/' ? p : NULL;
}

#define ROOT_MODULES "/hero-root-modules"
#define NEW_ROOT "/newroot"

/* Loads each listed module (finit_module) and deletes its file: the initramfs's RAM is freed. */
static void load_root_modules(void) {
  static char list[8192];
  char *save = NULL;
  int fd = open(ROOT_MODULES, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ssize_t n = read(fd, list, sizeof list - 1);
  close(fd);
  list[n > 0 ? n : 0] = 0;
  for (char *p = strtok_r(list, "\n", &save); p; p = strtok_r(NULL, "\n", &save)) {
    int m = open(p, O_RDONLY | O_CLOEXEC);
    if (m < 0 || (syscall(SYS_finit_module, m, "", 0) != 0 && errno != EEXIST))
      line(2, "hero-init preinit: cannot load module ", p, ": ", strerror(errno));
    if (m >= 0) close(m);
    unlink(p);
  }
}

/* Tiny-initramfs disk boot (see the top): mounts root= and makes it "/", then execs
 * the disk's own init (hero.rootinit=, default /sbin/init: the disk's pre-init, which
 * may be newer than this one); returns only if that could not be done. */
static void switch_to_disk(char **argv) {
  char dev[256], fstype[64], flag[8], init[256];
  if (access(ROOT_MODULES, F_OK) != 0 || !cmdline_get("root=", dev, sizeof dev)) return;
  if (strncmp(dev, "/dev/", 5) != 0) {
    say("root=", dev, ": only /dev/... paths are supported");
    return;
  }
  if (!cmdline_get("rootfstype=", fstype, sizeof fstype) || !fstype[0]) strcpy(fstype, "ext4");
  unsigned long flags = cmdline_get("ro", flag, sizeof flag) && !cmdline_get("rw", flag, sizeof flag)
                            ? MS_RDONLY : 0;
  load_root_modules();
  struct timespec tick = {0, 10 * 1000 * 1000};
  for (int i = 0; i < 1000 && access(dev, F_OK) != 0; i++) nanosleep(&tick, NULL); /* 10 s */
  mkdir(NEW_ROOT, 0755);
  if (mount(dev, NEW_ROOT, fstype, flags, NULL) != 0) {
    line(2, "hero-init preinit: cannot mount root ", dev, ": ", strerror(errno));
    return;
  }
  mkdir(NEW_ROOT "/dev", 0755);
  mkdir(NEW_ROOT "/proc", 0755);
  if (mount("/dev", NEW_ROOT "/dev", NULL, MS_MOVE, NULL) != 0) say("cannot move /dev: ", strerror(errno), "");
  if (mount("/proc", NEW_ROOT "/proc", NULL, MS_MOVE, NULL) != 0) say("cannot move /proc: ", strerror(errno), "");
  if (chdir(NEW_ROOT) != 0 || mount(".", "/", NULL, MS_MOVE, NULL) != 0 || chroot(".") != 0 || chdir("/") != 0) {
    line(2, "hero-init preinit: cannot switch to ", dev, ": ", strerror(errno));
    return;
  }
  if (!cmdline_get("hero.rootinit=", init, sizeof init) || init[0] != '/') strcpy(init, "/sbin/init");
  line(2, "hero-init preinit: switched root to ", dev, ", exec ", init);
  argv[0] = init;
  execve(init, argv, environ);
  line(2, "hero-init preinit: cannot exec ", init, ": ", strerror(errno));
}

/* A decimal id (uid/gid), or -1 when it is not one. */
static long parse_id(const char *s) {
  long v = 0;
  if (!*s) return -1;
  for (; *s; s++) {
    if (*s < '0' || *s > '9' || v > 0x7fffffff / 10) return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

static int hero_exec(int argc, char **argv) {
  int i = 1;
  const char *cg = NULL;
  long uid = -1, gid = -1;
  for (; i < argc; i++) {
    if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) cg = argv[++i];
    else if (strcmp(argv[i], "-u") == 0 && i + 1 < argc) {
      if ((uid = parse_id(argv[++i])) < 0) { line(2, "hero-exec: bad uid ", argv[i], NULL, NULL); return 126; }
    } else if (strcmp(argv[i], "-g") == 0 && i + 1 < argc) {
      if ((gid = parse_id(argv[++i])) < 0) { line(2, "hero-exec: bad gid ", argv[i], NULL, NULL); return 126; }
    } else if (strcmp(argv[i], "--") == 0) { i++; break; }
    else break;
  }
  if (i >= argc) {
    line(2, "usage: hero-exec [-c CGROUP_DIR] [-u UID] [-g GID] -- PROG [ARGS...]", NULL, NULL, NULL);
    return 2;
  }
  if (cg) {
    char path[4096];
    size_t n = 0;
    put(path, sizeof path, &n, cg);
    put(path, sizeof path, &n, "/cgroup.procs");
    path[n] = 0;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1)
      line(2, "hero-exec: cannot join cgroup ", cg, ": ", strerror(errno));
    if (fd >= 0) close(fd);
  }
  /* Drop privileges after joining the cgroup (that needs root); fail closed. */
  if (gid >= 0 || uid >= 0) {
    if (setgroups(0, NULL) != 0) { line(2, "hero-exec: setgroups: ", strerror(errno), NULL, NULL); return 126; }
    if (gid >= 0 && setgid((gid_t)gid) != 0) { line(2, "hero-exec: setgid: ", strerror(errno), NULL, NULL); return 126; }
    if (uid >= 0 && setuid((uid_t)uid) != 0) { line(2, "hero-exec: setuid: ", strerror(errno), NULL, NULL); return 126; }
  }
  execvp(argv[i], argv + i);
  int e = errno;
  char what[1024];
  size_t n = 0;
  put(what, sizeof what, &n, argv[i]);
  put(what, sizeof what, &n, ": ");
  what[n] = 0;
  line(2, "hero-exec: cannot exec ", what, strerror(e), NULL);
  return e == ENOENT ? 127 : 126;
}

/*
 * HERO_PREINIT_EXEC=<seconds since boot, ms precision>: when hero-init is
 * exec'ed, so its boot log can split "kernel + initramfs" from "Bun start"
 * (the task's own start time predates the initramfs unpacking).
 */
static void stamp_exec_time(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0) return;
  char digits[24], out[32];
  size_t d = 0, n = 0;
  unsigned long long v = (unsigned long long)ts.tv_sec * 1000ULL + (unsigned long long)(ts.tv_nsec / 1000000);
  do {
    digits[d++] = (char)('0' + v % 10);
    v /= 10;
  } while (v && d < sizeof digits);
  while (d < 4) digits[d++] = '0';
  while (d > 3) out[n++] = digits[--d];
  out[n++] = '.';
  while (d > 0) out[n++] = digits[--d];
  out[n] = 0;
  setenv("HERO_PREINIT_EXEC", out, 1);
}

int main(int argc, char **argv) {
  const char *base = strrchr(argv[0], '/');
  base = base ? base + 1 : argv[0];
  if (strcmp(base, "hero-exec") == 0) return hero_exec(argc, argv);
  int pid1 = getpid() == 1;
  if (pid1) {
    ensure_mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, "/proc/self");
    ensure_mount("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", "/dev/null");
    ensure_console();
    switch_to_disk(argv);
  }
  setenv("NO_COLOR", "1", 1);
  stamp_exec_time();

  char override[1024];
  const char *candidates[] = {cmdline_override(override, sizeof override), HERO_INIT_PATH,
                              HERO_INIT_FALLBACK};
  int last_errno = ENOENT;
  const char *last = HERO_INIT_PATH;
  for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++) {
    if (!candidates[i]) continue;
    argv[0] = (char *)candidates[i];
    execve(candidates[i], argv, environ);
    last_errno = errno;
    last = candidates[i];
    say("cannot exec ", candidates[i], errno == ENOENT ? ": not found" : ": exec failed");
  }

  say("no hero-init could be started; last error on ", last, "");
  say("reason: ", strerror(last_errno), "");
  if (!pid1) return 127;
  say("powering off (a PID 1 that exits would panic the kernel)", NULL, NULL);
  sync();
  reboot(RB_POWER_OFF);
  for (;;) pause(); /* reboot(2) does not return; never exit as PID 1 */
}
