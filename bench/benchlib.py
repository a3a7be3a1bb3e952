"""Shared by bench/run and bench/soak: tools, builds, servers under test, wrk runs and the
figures read from /proc. Standard library only.

Everything binds to 127.0.0.1 on free ports, every process started here is stopped by its
PID, and every run is bounded in time."""

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
WRK_DIR = os.path.join(BENCH, "wrk")
# PRODUCT=/path/to/fake-metadata measures another build (a before/after comparison), as
# bench/callgrind does.
PRODUCT = os.environ.get("PRODUCT") or os.path.join(ROOT, "target", "release", "fake-metadata")
CEILING_TARGET = os.path.join(ROOT, "target", "bench-ceiling")
CEILING = os.path.join(CEILING_TARGET, "release", "fake-metadata-bench-ceiling")
LEAF = "/latest/meta-data/instance-id"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class BenchBroken(Exception):
    """The benchmark itself cannot run (a tool is missing, a server does not start)."""


def log(msg):
    print(msg, flush=True)


def is_root():
    return os.geteuid() == 0


# --- tools -----------------------------------------------------------------------------------

def ensure_tools(need_nginx=True, need_flask=True):
    """Installs wrk and nginx-light (apt, as root) and Flask (pip) when missing."""
    apt = []
    if not shutil.which("wrk"):
        apt.append("wrk")
    if need_nginx and not nginx_binary():
        apt.append("nginx-light")
    if apt:
        if not is_root():
            raise BenchBroken(f"missing {' '.join(apt)}: install them (apt-get install {' '.join(apt)}) or run as root")
        log(f"installing {' '.join(apt)} (apt)")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        # policy-rc.d 101: the package must not start the system nginx service.
        policy = "/usr/sbin/policy-rc.d"
        made_policy = False
        if "nginx-light" in apt and not os.path.exists(policy):
            with open(policy, "w") as f:
                f.write("#!/bin/sh\nexit 101\n")
            os.chmod(policy, 0o755)
            made_policy = True
        # Queued on the test scripts' own apt lock (tests/system/lib.sh's apt_get): tests/all.sh
        # runs tiers side by side, and `apt-get update` fails on a lists lock another one holds.
        apt_get = ["flock", "-w", "1800", "/run/lock/fake-metadata-apt.lock",
                   "apt-get", "-o", "DPkg::Lock::Timeout=300"]
        try:
            subprocess.run([*apt_get, "update", "-qq"], env=env, check=True, stdout=subprocess.DEVNULL)
            subprocess.run([*apt_get, "install", "-y", "-qq", "--no-install-recommends", *apt],
                           env=env, check=True, stdout=subprocess.DEVNULL)
        except subprocess.CalledProcessError as e:
            raise BenchBroken(f"apt-get install {' '.join(apt)} failed: {e}")
        finally:
            if made_policy:
                os.unlink(policy)
    if need_flask and subprocess.run([sys.executable, "-c", "import flask"],
                                     stderr=subprocess.DEVNULL).returncode != 0:
        log("installing flask (pip)")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet",
                            "--disable-pip-version-check", "flask"])
        if r.returncode != 0:
            raise BenchBroken("pip install flask failed")


def nginx_binary():
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


def lock_versions(lock_path, names):
    text = open(lock_path).read()
    out = {}
    for n in names:
        m = re.search(r'\[\[package\]\]\nname = "%s"\nversion = "([^"]+)"' % re.escape(n), text)
        out[n] = m.group(1) if m else None
    return out


def build(log_dir):
    """`cargo build --release` of the product and of bench/ceiling (no-ops when fresh).
    Returns the seconds spent."""
    t = time.monotonic()
    for what, cmd in (
        ("fake-metadata (release)", ["cargo", "build", "--release", "--locked", "--bin", "fake-metadata"]),
        ("bench/ceiling (release)", ["cargo", "build", "--release", "--locked",
                                     "--manifest-path", os.path.join(BENCH, "ceiling", "Cargo.toml"),
                                     "--target-dir", CEILING_TARGET]),
    ):
        logf = os.path.join(log_dir, "build.log")
        with open(logf, "a") as f:
            r = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            raise BenchBroken(f"building {what} failed; see {logf}")
    names = ["hyper", "hyper-util", "tokio", "http-body-util", "bytes"]
    ours = lock_versions(os.path.join(ROOT, "Cargo.lock"), names)
    theirs = lock_versions(os.path.join(BENCH, "ceiling", "Cargo.lock"), names)
    for n in names:
        if ours[n] != theirs[n]:
            log(f"warning: the ceiling uses {n} {theirs[n]}, the product {ours[n]}: "
                f"update the `=` pins in bench/ceiling/Cargo.toml")
    return time.monotonic() - t


# --- /proc -----------------------------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of the whole process (all threads, live and exited), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchBroken(f"no VmRSS for pid {pid}")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def threads(pid):
    return len(os.listdir(f"/proc/{pid}/task"))


# --- servers ---------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get_status(port, path=LEAF, timeout=1.0):
    """One GET on a new connection; the status code, or None if nothing answered."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            data = s.recv(64)
            m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
            return int(m.group(1)) if m else None
    except OSError:
        return None


def http_put_token(port, ttl=21600):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall((f"PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                   f"X-aws-ec2-metadata-token-ttl-seconds: {ttl}\r\n\r\n").encode())
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise BenchBroken(f"token PUT answered {head[:40]!r}")
    return body.decode()


class Server:
    """A process under test, pinned to `core`, stopped by its PID."""

    def __init__(self, name, argv, port, tmp, core=None, env=None, user=None):
        self.name, self.port = name, port
        pin = ["taskset", "-c", str(core)] if core is not None else []
        self.log = open(os.path.join(tmp, f"{name}.log"), "wb")
        self.started = time.monotonic()
        # taskset execs the server, so the PID is the server's. `user` (a pwd entry) runs it
        # as that user from the start, as systemd does.
        ids = {} if user is None else {"user": user.pw_uid, "group": user.pw_gid,
                                       "extra_groups": []}
        self.proc = subprocess.Popen(pin + argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env, **ids)
        self.pid = self.proc.pid

    def wait_ready(self, timeout=15.0, poll=0.0002):
        """Polls with GETs until a 200; returns the seconds from exec to the first 200."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchBroken(f"{self.name} exited with {self.proc.returncode}; see {self.log.name}")
            if http_get_status(self.port, timeout=0.5) == 200:
                return time.monotonic() - self.started
            time.sleep(poll)
        raise BenchBroken(f"{self.name} did not answer 200 within {timeout} s; see {self.log.name}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def service_user():
    """The user `fake-metadata serve` drops to when started as root."""
    for name in ("fake-metadata", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
    return None


def views_config():
    """Four `[[view]]`s, the last covering the load's own uid: each request is matched
    against all four, each new connection's owner is looked up, and the view's instance
    answers (`views` in `product_config`)."""
    others = "".join(f"""
[[view]]
name = "node-{i}"
sources = ["10.{i}.0.0/16", "172.18.0.{i + 2}"]
[view.instance]
instance-id = "i-0{i}{i}{i}{i}{i}{i}{i}{i}{i}{i}{i}{i}{i}{i}{i}{i}"
""" for i in range(1, 4))
    return others + f"""
[[view]]
name = "load"
uids = [{os.getuid()}]
[view.instance]
instance-id = "i-0123456789abcdef0"
"""


def product_config(tmp, name, port, keep_alive, state_dir, task=None, journal=False,
                   views=False):
    """The product's config: IMDS on `port`, the ECS agent's and Pod Identity's endpoints on
    free ports of their own (not the default `port`+1 and +2, which may be taken). With
    `task`, a `[[task]]` of that name and a control socket (`ctl task env` gives its
    credentials path). `journal`: whether the request journal records (off, as in the built-in
    defaults). `views`: with [`views_config`]'s views."""
    path = os.path.join(tmp, f"{name}.toml")
    # In the state directory: the product runs as the service user from the start.
    control = (f'socket = "{os.path.join(state_dir, name + ".sock")}"' if task
               else "enabled = false")
    extra = f'\n[[task]]\nname = "{task}"\nrole = "{task}-role"\n' if task else ""
    extra += views_config() if views else ""
    with open(path, "w") as f:
        f.write(f"""# bench/run: {name}
[server]
listen = ["127.0.0.1:{port}"]
ecs-listen = ["127.0.0.1:{free_port()}"]
pod-identity-listen = ["127.0.0.1:{free_port()}"]
keep-alive = {str(keep_alive).lower()}
state-directory = "{state_dir}"

[control]
{control}

[log]
level = "warn"

[journal]
enabled = {str(journal).lower()}
{extra}""")
    return path


def ecs_port(cfg):
    """The ECS agent's port in a config `product_config` wrote."""
    with open(cfg) as f:
        for line in f:
            if line.startswith("ecs-listen"):
                return int(line.rsplit(":", 1)[1].split('"')[0])
    raise BenchBroken(f"no ecs-listen in {cfg}")


def task_credentials_path(state_dir, name, task):
    """`AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` of `task`, from `ctl task env`."""
    sock = os.path.join(state_dir, name + ".sock")
    r = subprocess.run([PRODUCT, "ctl", "--socket", sock, "task", "env", task],
                       capture_output=True, text=True, timeout=10)
    for line in r.stdout.splitlines():
        if line.startswith("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI="):
            return line.split("=", 1)[1]
    raise BenchBroken(f"ctl task env {task}: {r.stdout}{r.stderr}")


def make_state_dir(tmp):
    """A state directory the daemon can write (it drops root to the service user), with the
    identity key already made, so start-up times do not include making a key."""
    d = os.path.join(tmp, "state")
    os.makedirs(d, exist_ok=True)
    if is_root():
        u = service_user()
        if u:
            os.chown(d, u.pw_uid, u.pw_gid)
            os.chown(tmp, 0, 0)
            os.chmod(tmp, 0o755)
    port = free_port()
    cfg = product_config(tmp, "keygen", port, False, d)
    s = Server("keygen", [PRODUCT, "serve", "--config", cfg], port, tmp,
               user=service_user() if is_root() else None)
    try:
        s.wait_ready()
    finally:
        s.stop()
    if not any(n.endswith(".pem") for n in os.listdir(d)):
        raise BenchBroken(f"the daemon made no identity key in {d}; see {s.log.name}")
    return d


def start_product(tmp, name, keep_alive, state_dir, core, task=None, journal=False,
                  views=False):
    """The product as its service user (as root: `fake-metadata`, else `nobody`), as the
    systemd unit runs it, so its figures do not include dropping root."""
    port = free_port()
    cfg = product_config(tmp, name, port, keep_alive, state_dir, task, journal, views)
    user = service_user() if is_root() else None
    s = Server(name, [PRODUCT, "serve", "--config", cfg], port, tmp, core, user=user)
    s.ecs_port = ecs_port(cfg)
    return s


def start_ceiling(tmp, core):
    port = free_port()
    return Server("ceiling", [CEILING, f"127.0.0.1:{port}"], port, tmp, core)


def start_nginx(tmp, core):
    """nginx as one process (master_process off) with a private prefix and config, serving
    the leaf as a static file; the system nginx service is not touched."""
    prefix = os.path.join(tmp, "nginx")
    root = os.path.join(prefix, "html")
    os.makedirs(os.path.join(root, "latest", "meta-data"), exist_ok=True)
    with open(os.path.join(root, LEAF.lstrip("/")), "w") as f:
        f.write("i-0123456789abcdef0")
    port = free_port()
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type text/plain;
    keepalive_requests 100000000;
    keepalive_timeout 60s;
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
    }}
}}
""")
    if is_root():
        os.chmod(prefix, 0o755)
    return Server("nginx", [nginx_binary(), "-p", prefix, "-c", conf, "-e", f"{prefix}/error.log"],
                  port, tmp, core)


def start_flask(tmp, core):
    port = free_port()
    return Server("flask", [sys.executable, os.path.join(BENCH, "flask_app.py"), str(port)],
                  port, tmp, core)


# --- wrk -------------------------------------------------------------------------------------

def wrk_script(tmp, scenario):
    """The scenario's Lua with bench/wrk/report.lua appended, as one file for `wrk -s`."""
    out = os.path.join(tmp, f"{scenario}.lua")
    if not os.path.exists(out):
        with open(out, "w") as f:
            for part in (f"{scenario}.lua", "report.lua"):
                f.write(open(os.path.join(WRK_DIR, part)).read())
                f.write("\n")
    return out


def wrk(tmp, port, scenario, args, connections, seconds, core=None, timeout=5):
    """Runs wrk (one thread) and returns its BENCH line as a dict."""
    pin = ["taskset", "-c", str(core)] if core is not None else []
    cmd = pin + ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", f"--timeout={timeout}s",
                 "-s", wrk_script(tmp, scenario), f"http://127.0.0.1:{port}", "--", *args]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        raise BenchBroken(f"wrk did not finish: {' '.join(cmd)}")
    m = re.search(r"^BENCH (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        raise BenchBroken(f"wrk failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}{r.stderr}")
    return {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}


def measure(tmp, server, scenario, args, connections, seconds, wrk_core, warmup=1):
    """Server CPU time per request over one wrk run, with rps and latency."""
    if warmup:
        wrk(tmp, server.port, scenario, args, connections, warmup, wrk_core)
    c0 = cpu_seconds(server.pid)
    w = wrk(tmp, server.port, scenario, args, connections, seconds, wrk_core)
    c1 = cpu_seconds(server.pid)
    n = max(w["requests"], 1)
    errors = w["connect"] + w["read"] + w["write"] + w["timeout"] + max(w["status"], w["non2xx"])
    return {
        "requests": w["requests"],
        "rps": w["requests"] / (w["duration_us"] / 1e6),
        "cpu_s": c1 - c0,
        "cpu_us": (c1 - c0) / n * 1e6,
        "p50_us": w["p50_us"],
        "p99_us": w["p99_us"],
        "errors": errors,
        "non2xx": w["non2xx"],
        "raw": w,
    }


def mktemp():
    return tempfile.mkdtemp(prefix="fake-metadata-bench.")


def cores():
    """(server core, wrk core), or (None, None) on one core."""
    avail = sorted(os.sched_getaffinity(0))
    if len(avail) < 2:
        return None, None
    return avail[0], avail[1]


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
