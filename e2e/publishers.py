"""Publishers against the real MistServer (SPEC §10): ffmpeg pushes RTMP into the `push://` stream
`live` (stream names `live+…`); MistServer asks usher through STREAM_PUSH (and PUSH_REWRITE when
registered). A push is "accepted" when MistServer lists the stream in `active_streams` and a
viewer plays it; "refused" when ffmpeg fails and the stream never becomes active.

Registered into suite.py's check list by `register(check)`, after the viewer checks.
"""

import hashlib
import os
import time

from harness import Proc, RecordingProxy, play, wait_for

STREAM_KEY = "e2e-" + os.urandom(12).hex()
# Live media over HTTP for a few seconds: the MP4 header and some frames.
LIVE_PLAYS_BYTES = 20_000


def active_streams(w):
    status, body = w.mist.api({"active_streams": True})
    assert status == 200, f"active_streams: HTTP {status}"
    return (body or {}).get("active_streams") or []


def pusher(w, stream, query):
    """ffmpeg pushing the suite's media in real time to rtmp://…/live/STREAM?QUERY."""
    url = f"rtmp://127.0.0.1:{w.mist.rtmp_port}/live/{stream}{query}"
    argv = ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-i", w.media, "-c", "copy",
            "-f", "flv", url]
    return Proc(f"ffmpeg-{stream}", argv, os.path.join(w.workdir, f"{w.name('push')}.ffmpeg.log"))


def assert_push_accepted(w, stream, query):
    proc = pusher(w, stream, query)
    try:
        wait_for(f"MistServer to list {stream} as active",
                 lambda: stream in active_streams(w) or _exited(proc), 30, interval=0.2)
        assert proc.alive(), "ffmpeg's push ended: MistServer refused it"
        assert stream in active_streams(w), f"{stream} is not active"
        return proc
    except BaseException:
        proc.stop(timeout=5)
        raise


def assert_push_refused(w, stream, query, reason=None):
    proc = pusher(w, stream, query)
    seen_active = False
    try:
        deadline = time.monotonic() + 30
        while proc.alive() and time.monotonic() < deadline:
            seen_active = seen_active or stream in active_streams(w)
            time.sleep(0.2)
        assert not proc.alive(), "ffmpeg is still pushing after 30 s"
        assert proc.popen.returncode != 0, "ffmpeg ended without an error"
    finally:
        proc.stop(timeout=5)
    assert not seen_active and stream not in active_streams(w), f"{stream} became active"
    if reason:
        wait_for(f"usher to log a {reason} refusal of {stream}",
                 lambda: any(l.get("message") == "push refused" and l.get("stream") == stream
                             and l.get("reason") == reason for l in w.usher.logs()), 10)


def _exited(proc):
    return not proc.alive()


def watch_live(w, stream, token):
    return play(w.workdir, w.name("live"), w.mist.url(f"/{stream}.mp4?jwt={token}"), seconds=5)


def key_policy(w):
    return {"tenant": "t1", "type": "jwt", "require_permission": True,
            "publish": {"type": "stream_key", "stream_key": STREAM_KEY}}


def register(check):
    @check
    def mist_setup_registers_stream_push_failing_closed(w):
        triggers = w.mist.triggers()
        ours = [e for e in triggers.get("STREAM_PUSH", []) if isinstance(e, dict)
                and e.get("handler") == w.usher.handler]
        assert ours == [{"handler": w.usher.handler, "sync": True, "streams": [],
                         "default": "false"}], f"STREAM_PUSH: {triggers.get('STREAM_PUSH')}"
        assert not any(isinstance(e, dict) and e.get("handler") == w.usher.handler
                       for e in triggers.get("PUSH_REWRITE", [])), "PUSH_REWRITE only when asked"

    @check
    def push_with_the_stream_key_is_accepted_and_plays(w):
        w.set_policy("live", key_policy(w))
        proc = assert_push_accepted(w, "live+pk", f"?key={STREAM_KEY}")
        try:
            token = w.usher.sign("k1", "--read", "live+*")
            code, size, _ = watch_live(w, "live+pk", token)
            assert code == 200 and size >= LIVE_PLAYS_BYTES, f"live: HTTP {code}, {size} bytes"
        finally:
            proc.stop(timeout=5)

    @check
    def push_with_a_wrong_key_or_none_is_refused(w):
        w.set_policy("live", key_policy(w))
        assert_push_refused(w, "live+pw", "?key=not-the-key", "stream-key-mismatch")
        assert_push_refused(w, "live+pn", "", "stream-key-mismatch")
        text = open(w.usher.log_path, errors="replace").read()
        assert STREAM_KEY not in text and "not-the-key" not in text and "rtmp://" not in text, \
            "a stream key or push URL reached usher's log"

    @check
    def push_with_a_publish_token_is_accepted_and_a_viewer_token_refused(w):
        w.set_policy("live+pt", {"tenant": "t1", "type": "public",
                                 "publish": {"type": "jwt"}})
        w.set_policy("live+pv", {"tenant": "t1", "type": "public",
                                 "publish": {"type": "jwt"}})
        w.set_policy("live+px", {"tenant": "t1", "type": "public",
                                 "publish": {"type": "jwt"}})
        publisher = w.usher.sign("k1", "--publish", "live+pt")
        proc = assert_push_accepted(w, "live+pt", f"?jwt={publisher}")
        try:
            code, size, _ = play(w.workdir, w.name("live-public"), w.mist.url("/live+pt.mp4"),
                                 seconds=5)
            assert code == 200 and size >= LIVE_PLAYS_BYTES, f"live: HTTP {code}, {size} bytes"
        finally:
            proc.stop(timeout=5)
        viewer = w.usher.sign("k1", "--read", "live+*")
        assert_push_refused(w, "live+pv", f"?jwt={viewer}", "jwt-permission-denied")
        assert_push_refused(w, "live+px", "", "missing-token")

    @check
    def stream_push_and_push_rewrite_bodies_are_as_measured(w):
        # With both registered, PUSH_REWRITE fires first; STREAM_PUSH keeps the push URL's query,
        # PUSH_REWRITE's line 3 is the stream name without it.
        w.set_policy("live", key_policy(w))
        saved = w.mist.triggers()
        proxy = RecordingProxy(w.usher.handler)
        proc = None
        try:
            triggers = dict(saved)
            for name in ("STREAM_PUSH", "PUSH_REWRITE"):
                triggers[name] = [{"handler": proxy.url, "sync": True, "streams": [],
                                   "default": "false"}]
            w.mist.set_triggers(triggers)
            proc = assert_push_accepted(w, "live+rec", f"?key={STREAM_KEY}&x=1")
            order = [r["trigger"] for r in proxy.records]
            assert order[:2] == ["PUSH_REWRITE", "STREAM_PUSH"], f"order: {order}"
            sp = proxy.of("STREAM_PUSH")[0]["lines"]
            assert len(sp) == 4 and sp[0] == "live+rec" and sp[2] == "RTMP", _shape(sp)
            assert sp[3].startswith("rtmp://") and sp[3].endswith(f"/live+rec?key={STREAM_KEY}&x=1"), _shape(sp)
            pr = proxy.of("PUSH_REWRITE")[0]["lines"]
            assert len(pr) == 3 and pr[2] == "live+rec", _shape(pr)
            assert pr[0].startswith("rtmp://") and f"key={STREAM_KEY}" in pr[0], _shape(pr)
            print(f"      STREAM_PUSH {_shape(sp)}; PUSH_REWRITE {_shape(pr)}")
        finally:
            if proc:
                proc.stop(timeout=5)
            w.mist.set_triggers(saved)
            proxy.close()

    @check
    def usher_stopped_means_pushes_are_refused(w):
        w.set_policy("live", key_policy(w))
        w.usher.stop()
        try:
            assert_push_refused(w, "live+down", f"?key={STREAM_KEY}")
        finally:
            w.usher.start()
        proc = assert_push_accepted(w, "live+up", f"?key={STREAM_KEY}")
        proc.stop(timeout=5)

    @check
    def stream_push_without_a_default_fails_open_with_usher_down(w):
        # Why mist-setup writes `default: "false"`: without it MistServer accepts the push when
        # usher cannot answer (SPEC §1: an unset default is "true").
        w.set_policy("live", key_policy(w))
        saved = w.mist.triggers()
        try:
            triggers = dict(saved)
            triggers["STREAM_PUSH"] = [{"handler": w.usher.handler, "sync": True, "streams": []}]
            w.mist.set_triggers(triggers)
            w.usher.stop()
            try:
                proc = assert_push_accepted(w, "live+open", "?key=wrong")
                proc.stop(timeout=5)
            finally:
                w.usher.start()
        finally:
            w.mist.set_triggers(saved)

    @check
    def push_rewrite_registered_on_request_fails_closed_with_usher_down(w):
        code, out = w.usher.run("mist-setup", "--api", w.mist.api_url, "--push-rewrite")
        assert code == 0 and "PUSH_REWRITE: added" in out, out
        w.set_policy("live", key_policy(w))
        proc = assert_push_accepted(w, "live+rw", f"?key={STREAM_KEY}")
        proc.stop(timeout=5)
        assert_push_refused(w, "live+rx", "?key=wrong", "stream-key-mismatch")
        w.usher.stop()
        try:
            assert_push_refused(w, "live+rdown", f"?key={STREAM_KEY}")
        finally:
            w.usher.start()

    @check
    def push_rewrite_alone_refuses_on_empty_and_renames_to_true_with_usher_down(w):
        # PUSH_REWRITE on its own (no STREAM_PUSH): usher's empty answer refuses; with usher down
        # and no default, MistServer renames the push to "true" and it is refused only because no
        # stream of that name exists.
        w.set_policy("live", key_policy(w))
        saved = w.mist.triggers()
        try:
            triggers = {k: v for k, v in saved.items() if k not in ("STREAM_PUSH", "PUSH_REWRITE")}
            triggers["PUSH_REWRITE"] = [{"handler": w.usher.handler, "sync": True, "streams": []}]
            w.mist.set_triggers(triggers)
            assert_push_refused(w, "live+re", "?key=wrong", "stream-key-mismatch")
            proc = assert_push_accepted(w, "live+ra", f"?key={STREAM_KEY}")
            proc.stop(timeout=5)
            w.usher.stop()
            try:
                before = os.path.getsize(os.path.join(w.workdir, "mist.log"))
                assert_push_refused(w, "live+rd", f"?key={STREAM_KEY}")
                with open(os.path.join(w.workdir, "mist.log"), errors="replace") as f:
                    f.seek(before)
                    log = f.read()
                # MistServer 3.10: "MistOutRTMP:true … Push rejected - stream true not configured".
                assert "stream true not configured" in log, "the push was not renamed to 'true'"
                print("      usher down: PUSH_REWRITE's default renamed the push to 'true'")
            finally:
                w.usher.start()
        finally:
            w.mist.set_triggers(saved)

    @check
    def viewer_token_without_read_permission_is_refused_playback(w):
        w.set_policy("vodq", {"tenant": "t1", "type": "jwt", "require_permission": True})
        reader = w.usher.sign("k1", "--read", "vodq")
        code, size, _ = play(w.workdir, w.name("read"), w.mist.url(f"/vodq.mp4?jwt={reader}"))
        assert code == 200 and size >= 20_000, f"HTTP {code}, {size} bytes"
        other = w.usher.sign("k1", "--read", "vod", "--publish", "vodq")
        code, size, _ = play(w.workdir, w.name("noread"), w.mist.url(f"/vodq.mp4?jwt={other}"))
        assert size < 20_000, f"played without read permission: HTTP {code}, {size} bytes"
        wait_for("usher to log jwt-permission-denied",
                 lambda: any(l.get("message") == "denied" and l.get("stream") == "vodq"
                             and l.get("reason") == "jwt-permission-denied"
                             for l in w.usher.logs()), 10)


def _shape(lines):
    """A trigger body for a failure message, the stream key masked."""
    return [l.replace(STREAM_KEY, "<key>") for l in lines]


def key_sha256():
    return hashlib.sha256(STREAM_KEY.encode()).hexdigest()
