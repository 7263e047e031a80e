"""The parts the end-to-end suite drives: MistServer, usher, curl viewers and a recording proxy.

Every process runs in its own process group and is stopped by that id; `stop_all` (called at
exit and on SIGINT/SIGTERM) stops whatever is still running. Only loopback addresses are used.
"""

import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

_running = []


def free_port():
    """An ephemeral loopback port, free when asked (the kernel picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout, interval=0.05):
    """Polls `predicate` until it returns something truthy; raises with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Proc:
    """A child process in its own process group, its output appended to a log file."""

    def __init__(self, name, argv, log_path, env=None, cwd=None):
        self.name = name
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        self.pgid = self.popen.pid
        _running.append(self)

    def alive(self):
        return self.popen.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Signals the whole process group, waits, then kills what is left of the group."""
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            pass
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        # Children may outlive the leader: nothing of the group survives a stop.
        deadline = time.monotonic() + timeout
        while _group_alive(self.pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.popen.poll() is None:
            self.popen.wait(timeout=5)
        if self in _running:
            _running.remove(self)


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False


def stop_all():
    for proc in list(reversed(_running)):
        proc.stop(timeout=10)


def post_json(url, body, headers=None, timeout=10, method="POST"):
    """Sends JSON, returns (status, parsed JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, None


class Mist:
    """One MistController with its own config file, temp dir and loopback ports."""

    def __init__(self, bindir, workdir, streams, triggers):
        self.bindir = bindir
        self.workdir = workdir
        self.api_port = free_port()
        self.http_port = free_port()
        self.rtmp_port = free_port()  # publishers push here (SPEC §10)
        self.config_path = os.path.join(workdir, "mist.json")
        self.tmp = os.path.join(workdir, "mist-tmp")
        os.makedirs(self.tmp, exist_ok=True)
        config = {
            "config": {
                "controller": {"interface": "127.0.0.1", "port": self.api_port},
                "protocols": [
                    {"connector": "HTTP", "interface": "127.0.0.1", "port": self.http_port},
                    {"connector": "HLS"},
                    {"connector": "MP4"},
                    {"connector": "RTMP", "interface": "127.0.0.1", "port": self.rtmp_port},
                ],
                "triggers": triggers,
            },
            "streams": streams,
        }
        with open(self.config_path, "w") as f:
            json.dump(config, f, indent=1)
        self.proc = None

    @property
    def api_url(self):
        return f"http://127.0.0.1:{self.api_port}/api2"

    @property
    def api1_url(self):
        return f"http://127.0.0.1:{self.api_port}/api"

    def start(self):
        env = dict(os.environ, TMP=self.tmp)
        argv = [
            os.path.join(self.bindir, "MistController"),
            "-c", self.config_path,
            "-i", "127.0.0.1",
            "-p", str(self.api_port),
        ]
        self.proc = Proc("mist", argv, os.path.join(self.workdir, "mist.log"), env=env,
                         cwd=self.workdir)
        wait_for("MistServer's API", self._answers, 60, interval=0.2)
        wait_for("MistServer's HTTP output", lambda: _port_open(self.http_port), 60, 0.2)

    def _answers(self):
        if not self.proc.alive():
            raise AssertionError("MistController exited; see mist.log")
        try:
            status, body = self.api({"config": True})
            return status == 200 and isinstance(body, dict) and "config" in body
        except OSError:
            return False

    def stop(self):
        if self.proc:
            self.proc.stop()
            self.proc = None

    def api(self, command, url=None):
        return post_json(url or self.api_url, command)

    def triggers(self):
        status, body = self.api({"config": True})
        assert status == 200, f"MistServer API answered {status}"
        return body["config"].get("triggers") or {}

    def set_triggers(self, triggers):
        status, _ = self.api({"config": {"triggers": triggers}, "save": True})
        assert status == 200, f"MistServer API answered {status}"

    def url(self, path):
        return f"http://127.0.0.1:{self.http_port}{path}"


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Usher:
    """One `usher serve` on loopback ports, with JSON logs parsed on demand."""

    def __init__(self, binary, workdir, mist_api_url, control_token):
        self.binary = binary
        self.workdir = workdir
        self.trigger_port = free_port()
        self.control_port = free_port()
        self.token = control_token
        self.config_path = os.path.join(workdir, "usher.toml")
        self.log_path = os.path.join(workdir, "usher.log")
        with open(self.config_path, "w") as f:
            f.write(
                f"""[trigger]
listen = "127.0.0.1:{self.trigger_port}"
[control]
listen = "127.0.0.1:{self.control_port}"
tokens = ["{control_token}"]
[state]
dir = "{os.path.join(workdir, 'usher-state')}"
[mist]
api_url = "{mist_api_url}"
[log]
format = "json"
level = "usher=debug"
[default_policy]
type = "deny"
[[tenants]]
id = "t1"
"""
            )
        self.proc = None

    @property
    def handler(self):
        return f"http://127.0.0.1:{self.trigger_port}/trigger"

    def start(self):
        self.proc = Proc("usher", [self.binary, "serve", "--config", self.config_path],
                         self.log_path, env=usher_env(), cwd=self.workdir)
        wait_for("usher's /healthz", self._healthy, 30, interval=0.1)

    def _healthy(self):
        if not self.proc.alive():
            raise AssertionError("usher exited; see usher.log")
        try:
            status, _ = post_json(f"http://127.0.0.1:{self.control_port}/healthz", None,
                                  method="GET", timeout=2)
            return status == 200
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            self.proc.stop(sig)
            self.proc = None

    def api(self, method, path, body=None):
        return post_json(f"http://127.0.0.1:{self.control_port}{path}", body,
                         headers={"Authorization": f"Bearer {self.token}"}, method=method)

    def run(self, *args):
        """Runs a usher subcommand against this usher's config; returns (exit code, stdout)."""
        out = subprocess.run([self.binary, *args, "--config", self.config_path],
                             capture_output=True, text=True, cwd=self.workdir, timeout=60,
                             env=usher_env())
        return out.returncode, out.stdout + out.stderr

    def sign(self, kid, *extra):
        """A fresh token signed with `kid`'s private key (a unique `jti` keeps sessions apart)."""
        code, out = self.run("sign", "--key", os.path.join(self.workdir, "keys", f"{kid}.key.pem"),
                             "--kid", kid, "--claim", f'jti="{os.urandom(8).hex()}"', *extra)
        assert code == 0, "usher sign failed"
        return out.strip().splitlines()[-1]

    def logs(self):
        """Every JSON log line so far, each flattened to one dict (fields merged in)."""
        lines = []
        try:
            with open(self.log_path, errors="replace") as f:
                for raw in f:
                    try:
                        line = json.loads(raw)
                    except ValueError:
                        continue
                    fields = line.pop("fields", {}) or {}
                    line.update(fields)
                    lines.append(line)
        except FileNotFoundError:
            pass
        return lines


def usher_env():
    """The environment without `USHER_*`: usher reads those as config overrides."""
    return {k: v for k, v in os.environ.items() if not k.startswith("USHER_")}


class Download:
    """A curl viewer downloading in the background. MistServer sends VOD at about real time, so a
    download lasts about as long as the video. A `limit_rate` below the video's rate makes the
    viewer read slower than MistServer sends: the cut then reaches it only once it has read what
    the sockets already hold."""

    def __init__(self, workdir, name, url, headers=(), limit_rate=None):
        self.path = os.path.join(workdir, f"{name}.download")
        argv = ["curl", "-sS", "-o", self.path, "--max-time", "120"]
        if limit_rate:
            argv += ["--limit-rate", limit_rate]
        for h in headers:
            argv += ["-H", h]
        argv.append(url)
        self.proc = Proc(f"curl-{name}", argv, os.path.join(workdir, f"{name}.curl.log"))
        self.ended_at = None

    def bytes(self):
        try:
            return os.path.getsize(self.path)
        except FileNotFoundError:
            return 0

    def wait_playing(self, at_least=20_000, timeout=20):
        wait_for(f"the download to pass {at_least} bytes", lambda: self.bytes() >= at_least,
                 timeout, interval=0.05)

    def wait_ended(self, timeout):
        """Seconds until curl exited, or an AssertionError after `timeout`."""
        started = time.monotonic()
        wait_for("the download to be cut", lambda: not self.proc.alive(), timeout, 0.01)
        return time.monotonic() - started

    def stop(self):
        self.proc.stop(timeout=5)


def play(workdir, name, url, headers=(), seconds=4):
    """One curl viewer for at most `seconds`: returns (HTTP status, bytes received)."""
    path = os.path.join(workdir, f"{name}.body")
    argv = ["curl", "-sS", "-o", path, "-w", "%{http_code}", "--max-time", str(seconds)]
    for h in headers:
        argv += ["-H", h]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    size = os.path.getsize(path) if os.path.exists(path) else 0
    code = int(out.stdout.strip() or "0")
    return code, size, path


class RecordingProxy:
    """An HTTP trigger handler that records every body MistServer sends and forwards it to usher."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.records = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with proxy.lock:
                    proxy.records.append({
                        "trigger": self.headers.get("X-Trigger"),
                        "uuid": self.headers.get("X-Trigger-UUID"),
                        "lines": body.decode(errors="replace").split("\n"),
                    })
                req = urllib.request.Request(proxy.upstream, data=body, method="POST")
                for h in ("X-Trigger", "X-Trigger-UUID", "Content-Type"):
                    if self.headers.get(h):
                        req.add_header(h, self.headers.get(h))
                try:
                    with urllib.request.urlopen(req, timeout=10) as resp:
                        status, answer = resp.status, resp.read()
                except urllib.error.HTTPError as e:
                    status, answer = e.code, e.read()
                except OSError:
                    status, answer = 502, b""
                self.send_response(status)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/trigger"

    def user_new(self):
        return self.of("USER_NEW")

    def of(self, trigger):
        with self.lock:
            return [r for r in self.records if r["trigger"] == trigger]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class PausableProxy:
    """A TCP relay in front of MistServer's API that can be made to hang: while paused, connections
    are accepted and held unanswered (a MistServer that does not answer); `resume` drops those and
    relays again."""

    def __init__(self, upstream_port):
        self.upstream_port = upstream_port
        self.paused = threading.Event()
        self.held = []
        self.relays = []
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.paused.is_set():
                with self.lock:
                    self.held.append(conn)
                continue
            threading.Thread(target=self._relay, args=(conn,), daemon=True).start()

    def _relay(self, conn):
        try:
            up = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
        except OSError:
            conn.close()
            return
        with self.lock:
            self.relays += [conn, up]

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pump, args=(up, conn), daemon=True).start()
        pump(conn, up)

    def pause(self):
        """From now on nothing is relayed: open relays (pooled keep-alive connections) are cut,
        new connections are held unanswered."""
        self.paused.set()
        with self.lock:
            relays, self.relays = self.relays, []
        for s in relays:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def resume(self):
        self.paused.clear()
        with self.lock:
            held, self.held = self.held, []
        for conn in held:
            conn.close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/api2"

    def close(self):
        self.closed = True
        self.resume()
        self.sock.close()
