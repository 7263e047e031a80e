#!/usr/bin/env python3
"""usher's end-to-end suite: a real MistServer 3.10 asks a real usher; viewers are curl.

Each check is named after what it shows and prints PASS or FAIL with its time; the last line is
"N passed, N failed". Checks run in order and share one MistServer and one usher (the order is
part of the story: set up, play, refuse, cut, stop). Run `e2e/run.sh` rather than this file.
"""

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

import harness
import publishers
from harness import Download, Mist, PausableProxy, RecordingProxy, Usher, play, wait_for

CHECKS = []

# A viewer "plays" when MistServer answers 200 and sends at least this much media.
PLAYS_BYTES = 20_000
# How long a revocation or policy change may take to cut a playing viewer (the bound).
CUT_WITHIN_S = 2.0
OTHER_TRIGGER = {"handler": "http://127.0.0.1:9/stream-buffer", "sync": False, "streams": []}


def check(fn):
    CHECKS.append(fn)
    return fn


class World:
    """What the checks share: the processes, the work dir and a few names."""

    def __init__(self, mist_dir, usher_bin, workdir):
        self.workdir = workdir
        self.media = os.path.join(workdir, "vod.mp4")
        make_media(self.media)
        streams = {
            name: {"name": name, "source": self.media}
            for name in ("vod", "vodh", "vodb", "vodr", "vodp", "vode", "vods", "vodk")
        }
        streams["vodq"] = {"name": "vodq", "source": self.media}  # require_permission (SPEC §10)
        streams["live"] = {"name": "live", "source": "push://"}  # publishers push live+… here
        self.mist = Mist(mist_dir, workdir, streams, {"STREAM_BUFFER": [OTHER_TRIGGER]})
        # usher reaches MistServer's API through a relay that a check can make hang.
        self.mist_relay = PausableProxy(self.mist.api_port)
        self.usher = Usher(usher_bin, workdir, self.mist_relay.url, os.urandom(16).hex())
        self.n = 0

    def name(self, what):
        self.n += 1
        return f"{self.n:02d}-{what}"

    def start(self):
        self.mist.start()
        self.usher.start()
        for kid in ("k1", "k2", "k3", "k4"):
            code, _ = self.usher.run("keygen", "--kid", kid, "--out",
                                     os.path.join(self.workdir, "keys"))
            assert code == 0, "usher keygen failed"
        # k1, k3 and k4 belong to tenant t1; k2 is known to nobody (a wrong kid).
        for kid in ("k1", "k3", "k4"):
            pem = open(os.path.join(self.workdir, "keys", f"{kid}.pub.pem")).read()
            status, _ = self.usher.api("PUT", f"/v1/keys/{kid}",
                                       {"tenant": "t1", "alg": "ES256", "public_key_pem": pem})
            assert status == 201, f"PUT key {kid}: {status}"
        for stream in ("vod", "vodh", "vodb", "vodr", "vode", "vods", "vodk"):
            self.set_policy(stream, {"tenant": "t1", "type": "jwt"})

    def set_policy(self, stream, body):
        status, answer = self.usher.api("PUT", f"/v1/policies/{stream}", body)
        assert status in (200, 201), f"PUT policy {stream}: {status} {answer}"
        return answer

    def mist_setup(self, api_url):
        return self.usher.run("mist-setup", "--api", api_url)

    def denial_logged(self, stream, reason, timeout=10):
        """Waits for usher's log line denying `stream` with `reason`."""
        return wait_for(
            f"usher to log a {reason} denial for {stream}",
            lambda: any(l.get("message") == "denied" and l.get("stream") == stream
                        and l.get("reason") == reason for l in self.usher.logs()),
            timeout,
        )

    def stop(self):
        self.usher.stop()
        self.mist.stop()


def make_media(path):
    subprocess.run(
        ["ffmpeg", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
         "-t", "120", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-pix_fmt", "yuv420p",
         "-b:v", "200k", "-maxrate", "200k", "-bufsize", "400k",
         "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart", path],
        check=True, timeout=300,
    )


def usher_entry(triggers, name, handler):
    return [e for e in triggers.get(name, []) if isinstance(e, dict) and e.get("handler") == handler]


def assert_registered(w, triggers):
    new = usher_entry(triggers, "USER_NEW", w.usher.handler)
    assert new == [{"handler": w.usher.handler, "sync": True, "streams": [], "default": "false"}], \
        f"USER_NEW entry: {triggers.get('USER_NEW')}"
    end = usher_entry(triggers, "USER_END", w.usher.handler)
    assert end == [{"handler": w.usher.handler, "sync": True, "streams": []}], \
        f"USER_END entry: {triggers.get('USER_END')}"
    assert triggers.get("STREAM_BUFFER") == [OTHER_TRIGGER], \
        f"the unrelated trigger is gone or changed: {triggers.get('STREAM_BUFFER')}"


# --- usher mist-setup against the real MistServer ---------------------------------------------

@check
def mist_setup_against_api2_keeps_an_unrelated_trigger(w):
    code, out = w.mist_setup(w.mist.api_url)
    assert code == 0, out
    assert "USER_NEW: added" in out and "USER_END: added" in out, out
    assert_registered(w, w.mist.triggers())


@check
def mist_setup_is_idempotent(w):
    code, out = w.mist_setup(w.mist.api_url)
    assert code == 0, out
    assert "USER_NEW: unchanged" in out and "USER_END: unchanged" in out, out
    assert_registered(w, w.mist.triggers())


@check
def mist_setup_against_api_keeps_an_unrelated_trigger(w):
    w.mist.set_triggers({"STREAM_BUFFER": [OTHER_TRIGGER]})
    code, out = w.mist_setup(w.mist.api1_url)
    assert code == 0, out
    assert "USER_NEW: added" in out, out
    assert_registered(w, w.mist.triggers())
    code, out = w.mist_setup(w.mist.api_url)
    assert code == 0 and "USER_NEW: unchanged" in out, out


@check
def mist_setup_saves_mistservers_config_file(w):
    import json
    with open(w.mist.config_path) as f:
        saved = json.load(f)
    assert_registered(w, saved["config"].get("triggers") or {})


# --- viewers at the door ---------------------------------------------------------------------

@check
def valid_token_plays_mp4(w):
    token = w.usher.sign("k1")
    code, size, _ = play(w.workdir, w.name("mp4"), w.mist.url(f"/vod.mp4?jwt={token}"))
    assert code == 200 and size >= PLAYS_BYTES, f"HTTP {code}, {size} bytes"


@check
def valid_token_plays_hls(w):
    token = w.usher.sign("k1")
    base = w.mist.url(f"/hls/vodh/index.m3u8?jwt={token}")
    code, _, path = play(w.workdir, w.name("hls"), base, seconds=10)
    master = open(path, errors="replace").read()
    assert code == 200 and "#EXTM3U" in master, f"master playlist: HTTP {code}"
    child = next(l for l in master.splitlines() if l and not l.startswith("#"))
    child_url = urllib.parse.urljoin(base, child)
    code, _, path = play(w.workdir, w.name("hls-child"), child_url, seconds=10)
    playlist = open(path, errors="replace").read()
    assert code == 200 and "#EXTINF" in playlist, f"media playlist: HTTP {code}"
    segment = next(l for l in playlist.splitlines() if l and not l.startswith("#"))
    code, size, _ = play(w.workdir, w.name("hls-seg"), urllib.parse.urljoin(child_url, segment),
                         seconds=20)
    assert code == 200 and size >= 10_000, f"segment: HTTP {code}, {size} bytes"


def assert_refused(w, stream, token_query, reason, headers=()):
    code, size, _ = play(w.workdir, w.name("refused"), w.mist.url(f"/{stream}.mp4{token_query}"),
                         headers=headers)
    assert not (code == 200 and size >= PLAYS_BYTES), f"played: HTTP {code}, {size} bytes"
    assert size < PLAYS_BYTES, f"received {size} bytes of media"
    if reason:
        w.denial_logged(stream, reason)


@check
def forged_token_is_refused(w):
    token = w.usher.sign("k1")
    head, payload, sig = token.split(".")
    forged_payload = payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB")
    assert_refused(w, "vod", f"?jwt={head}.{forged_payload}.{sig}", "jwt-sig-fail")


@check
def expired_token_is_refused(w):
    token = w.usher.sign("k1", "--exp-in", "-3600")
    assert_refused(w, "vode", f"?jwt={token}", "jwt-expired")


@check
def wrong_kid_token_is_refused(w):
    token = w.usher.sign("k2")
    assert_refused(w, "vod", f"?jwt={token}", "jwt-unknown-kid")


@check
def no_token_is_refused(w):
    assert_refused(w, "vod", "", "missing-token")


@check
def bearer_token_plays(w):
    # MistServer 3.10 drops the first character of a Bearer token; usher repairs it.
    token = w.usher.sign("k1")
    code, size, _ = play(w.workdir, w.name("bearer"), w.mist.url("/vodb.mp4"),
                         headers=[f"Authorization: Bearer {token}"])
    assert code == 200 and size >= PLAYS_BYTES, f"HTTP {code}, {size} bytes"


# --- changes reach viewers who are already playing -------------------------------------------

@check
def recheck_after_invalidate_sessions_is_the_six_line_form(w):
    saved = w.mist.triggers()
    proxy = RecordingProxy(w.usher.handler)
    viewer = None
    try:
        triggers = dict(saved)
        triggers["USER_NEW"] = [{"handler": proxy.url, "sync": True, "streams": [],
                                 "default": "false"}]
        w.mist.set_triggers(triggers)
        token = w.usher.sign("k1")
        viewer = Download(w.workdir, w.name("recheck"), w.mist.url(f"/vodr.mp4?jwt={token}"))
        viewer.wait_playing()
        first = [r for r in proxy.user_new() if r["lines"][0] == "vodr"]
        assert len(first) == 1 and len(first[0]["lines"]) == 7, \
            f"first check: {[len(r['lines']) for r in first]} lines"
        session = first[0]["lines"][5]
        status, answer = w.usher.api("POST", "/v1/invalidate", {"streams": ["vodr"]})
        assert status == 200 and answer.get("mist_acknowledged") is True, f"{status} {answer}"
        rechecks = wait_for(
            "MistServer's re-check",
            lambda: [r for r in proxy.user_new()[1:] if r["lines"][0] == "vodr"], 10)
        recheck = rechecks[0]
        assert len(recheck["lines"]) == 6, f"re-check has {len(recheck['lines'])} lines"
        assert recheck["lines"][5] == session, "the re-check names the same session"
        assert recheck["uuid"] != first[0]["uuid"], "a re-check is a new trigger firing"
        assert viewer.proc.alive(), "a still-valid viewer keeps playing after the re-check"
    finally:
        if viewer:
            viewer.stop()
        w.mist.set_triggers(saved)
        proxy.close()


@check
def revoked_key_cuts_a_playing_download_within_2s(w):
    token = w.usher.sign("k3")
    viewer = Download(w.workdir, w.name("revoke"), w.mist.url(f"/vod.mp4?jwt={token}"))
    try:
        viewer.wait_playing()
        other = Download(w.workdir, w.name("revoke-other"),
                         w.mist.url(f"/vod.mp4?jwt={w.usher.sign('k1')}"))
        other.wait_playing()
        started = time.monotonic()
        status, answer = w.usher.api("POST", "/v1/keys/k3/revoke")
        assert status == 200, f"revoke: {status} {answer}"
        viewer.wait_ended(timeout=10)
        took = time.monotonic() - started
        assert took <= CUT_WITHIN_S, f"cut after {took:.2f} s"
        assert viewer.bytes() < os.path.getsize(w.media) // 2, "the download ended by itself"
        assert other.proc.alive(), "a viewer with another key of the tenant keeps playing"
        w.denial_logged("vod", "jwt-unknown-kid")
        print(f"      cut {took:.2f} s after the revoke")
        other.stop()
    finally:
        viewer.stop()


@check
def policy_changed_from_public_to_jwt_cuts_a_tokenless_viewer(w):
    w.set_policy("vodp", {"tenant": "t1", "type": "public"})
    viewer = Download(w.workdir, w.name("public"), w.mist.url("/vodp.mp4"))
    try:
        viewer.wait_playing()
        started = time.monotonic()
        w.set_policy("vodp", {"tenant": "t1", "type": "jwt"})
        viewer.wait_ended(timeout=10)
        took = time.monotonic() - started
        assert took <= CUT_WITHIN_S, f"cut after {took:.2f} s"
        assert viewer.bytes() < os.path.getsize(w.media) // 2, "the download ended by itself"
        w.denial_logged("vodp", "missing-token")
        print(f"      cut {took:.2f} s after the policy change")
    finally:
        viewer.stop()


@check
def user_end_reaches_usher_when_a_viewer_leaves(w):
    token = w.usher.sign("k1")
    viewer = Download(w.workdir, w.name("leave"), w.mist.url(f"/vods.mp4?jwt={token}"))
    viewer.wait_playing()
    sessions = {l.get("session") for l in w.usher.logs()
                if l.get("message") == "decided" and l.get("stream") == "vods"}
    assert len(sessions) == 1, f"{len(sessions)} sessions decided for vods"
    session = sessions.pop()
    viewer.stop()
    wait_for("usher to log the session's USER_END",
             lambda: any(l.get("message") == "session ended" and l.get("session") == session
                         for l in w.usher.logs()), 90, interval=0.5)


@check
def invalidation_is_durable_across_kill_9_while_mistserver_hangs(w):
    # SPEC §5: the names a change invalidates are committed with the change and sent after a
    # restart. MistServer's API hangs, a key is revoked, usher is killed before MistServer heard
    # of it; the viewer plays on until usher is back and sends what was pending.
    token = w.usher.sign("k4")
    viewer = Download(w.workdir, w.name("durable"), w.mist.url(f"/vodk.mp4?jwt={token}"))
    try:
        viewer.wait_playing()
        w.mist_relay.pause()
        status, answer = w.usher.api("POST", "/v1/keys/k4/revoke")
        assert status == 200, f"revoke: {status} {answer}"
        assert answer.get("mist_acknowledged") is False, "MistServer cannot have acknowledged"
        w.usher.stop(signal.SIGKILL)
        before = viewer.bytes()
        wait_for("the viewer to keep playing while usher is down",
                 lambda: viewer.bytes() >= before + 20_000, 15)
        assert viewer.proc.alive(), "MistServer heard of the revocation while usher was down"
        w.mist_relay.resume()
        started = time.monotonic()
        w.usher.start()
        viewer.wait_ended(timeout=20)
        took = time.monotonic() - started
        w.denial_logged("vodk", "jwt-unknown-kid")
        print(f"      cut {took:.2f} s after usher restarted")
    finally:
        w.mist_relay.resume()
        viewer.stop()


# --- failing closed ----------------------------------------------------------------------------

@check
def usher_stopped_means_new_viewers_are_refused(w):
    w.usher.stop()
    try:
        token = w.usher.sign("k1")
        code, size, _ = play(w.workdir, w.name("down"), w.mist.url(f"/vod.mp4?jwt={token}"),
                             seconds=60)
        assert size < PLAYS_BYTES, f"played with usher down: HTTP {code}, {size} bytes"
    finally:
        w.usher.start()


@check
def mist_setup_survives_a_mistserver_restart(w):
    w.mist.stop()
    w.mist.start()
    assert_registered(w, w.mist.triggers())
    token = w.usher.sign("k1")
    code, size, _ = play(w.workdir, w.name("after-restart"), w.mist.url(f"/vod.mp4?jwt={token}"))
    assert code == 200 and size >= PLAYS_BYTES, f"HTTP {code}, {size} bytes"
    assert_refused(w, "vode", "", "missing-token")


# --- publishers (SPEC §10) ------------------------------------------------------------------------

publishers.register(check)


# Three base64url parts: a JWT, also one that lost its first character to a Bearer header.
JWS = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def redact(line):
    """Log lines are printed on failure; tokens never are."""
    return JWS.sub("<token>", line)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mist", required=True, help="folder with MistServer's binaries")
    parser.add_argument("--usher", required=True, help="the usher binary")
    parser.add_argument("--keep", action="store_true", help="keep the work dir")
    parser.add_argument("only", nargs="*", help="run only these checks (and the set-up ones)")
    args = parser.parse_args()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(130))
    workdir = tempfile.mkdtemp(prefix="usher-e2e-")
    started = time.monotonic()
    passed = failed = 0
    world = None
    try:
        world = World(os.path.abspath(args.mist), os.path.abspath(args.usher), workdir)
        world.start()
        print(f"e2e: MistServer API {world.mist.api_port}, HTTP {world.mist.http_port}; "
              f"usher trigger {world.usher.trigger_port}, control {world.usher.control_port}; "
              f"work dir {workdir}", flush=True)
        for fn in CHECKS:
            name = fn.__name__
            if args.only and name not in args.only and not name.startswith("mist_setup_against_api2"):
                continue
            t = time.monotonic()
            try:
                fn(world)
                passed += 1
                print(f"PASS {name} ({time.monotonic() - t:.1f} s)", flush=True)
            except Exception as e:  # noqa: BLE001 — every failure is reported, the run goes on
                failed += 1
                detail = str(e) or type(e).__name__
                print(f"FAIL {name} ({time.monotonic() - t:.1f} s): {detail}", flush=True)
                if not isinstance(e, AssertionError):
                    traceback.print_exc()
    except Exception:
        failed += 1
        print("FAIL setup:", flush=True)
        traceback.print_exc()
    finally:
        harness.stop_all()
        if failed:
            for log in ("usher.log", "mist.log"):
                path = os.path.join(workdir, log)
                if os.path.exists(path):
                    print(f"--- last lines of {log}")
                    with open(path, errors="replace") as f:
                        for line in f.readlines()[-40:]:
                            print("   ", redact(line.rstrip())[:400])
        if args.keep or failed:
            print(f"e2e: work dir kept at {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"e2e: {time.monotonic() - started:.0f} s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
