"""The DAW-side clients against a real `jenbridge serve` process on the tiny bundle.

- REAPER: the shipped action scripts run under plain `lua` with a stand-in for REAPER's API
  table (REAPER is not our code; REAPER_STUB below). Rendering writes a real WAV, ExecProcess
  really starts `jenbridge client --request ...`, the defer loop really polls its result file,
  and the test checks what the action did to the (stand-in) project against the daemon's
  files: track, item position, length, take offset, the bext time reference.
- Ableton Live: the companion against a stand-in for the AbletonOSC remote script (FakeLive:
  the few addresses it uses, answered to the listen port as AbletonOSC does).
- Pure Data: plugin_host/puredata/jenbridge_client.pd, headless (`pd -nogui -noaudio`).
- `jenbridge client` itself: CLI pairs, request files, errors, no daemon.

With jackd (jackd2) installed the daemon plays on a private dummy JACK server, so the live
loop action starts and stops a real loop; without it the daemon has no audio and the test
checks the loop request reaches the audio check (`no_audio`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from jack_tools import HAVE_JACK, jack_server
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from test_daemon import Daemon, free_port
from test_daemon_outputs import bext_fields, info_fields, parse_wav

from jenbridge.commands.client import format_request, parse_request

ROOT = Path(__file__).resolve().parent.parent
REAPER_DIR = ROOT / "plugin_host" / "reaper"
PD_PATCH = ROOT / "plugin_host" / "puredata" / "jenbridge_client.pd"
ACTIONS = ("inpaint", "continue", "generate", "variations", "live_loop")
LUA = shutil.which("lua5.4") or shutil.which("lua")
LUAC = shutil.which("luac5.4") or shutil.which("luac")
PD = shutil.which("pd")
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
needs_lua = pytest.mark.skipif(LUA is None, reason="no `lua` (Debian: lua5.4)")


@pytest.fixture(scope="module")
def daemon(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    """The daemon; on a private dummy JACK server (audio, live loops) when jackd is here."""
    tmp = tmp_path_factory.mktemp("daw_daemon")
    if not HAVE_JACK:
        d = Daemon(tiny_bundle, tmp)
        d.audio = False
        yield d
        d.stop()
        return
    with jack_server("jenbridge-daw-test"):
        yaml = tmp / "daemon.yaml"
        yaml.write_text("audio_device: system\naudio_hostapi: JACK\n")
        d = Daemon(tiny_bundle, tmp, "--config", str(yaml))
        d.audio = True
        yield d
        d.stop()


def run_client(daemon: Daemon, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "jenbridge", "client", "--port", str(daemon.port), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV,
                          cwd=ROOT)


def read_result(path: Path) -> dict[str, str]:
    from jenbridge.commands.client import decode

    return dict((k, decode(v)) for k, _, v in
                (line.partition("=") for line in path.read_text().splitlines()))


def bext_ref(path: str | Path) -> int:
    return int(bext_fields(parse_wav(Path(path)))["time_reference"])


# ---- jenbridge client -------------------------------------------------------------------------

def test_client_pairs_result_file_and_errors(daemon: Daemon, tmp_path: Path) -> None:
    res = tmp_path / "r.result"
    p = run_client(daemon, "generate", "--id", "cli-1", "prompt", "dusty boom bap", "seconds",
                   "0.5", "steps", "2", "seed", "9000000000000000001", "start", "90.25",
                   "--result", str(res))
    assert p.returncode == 0, p.stderr
    path = p.stdout.strip()
    r = read_result(res)
    assert (r["state"], r["id"], r["path"], r["seed"]) == ("done", "cli-1", path,
                                                            "9000000000000000001")
    assert (float(r["position"]), int(r["position_sec"]), int(r["position_offset"])) == \
        (90.25, 90, 12000)
    assert bext_ref(path) == 90 * 48000 + 12000 and sf.info(path).frames == 24000
    assert "accepted (queue position 0)" in p.stderr and "100% done" in p.stderr
    # the daemon refuses: exit 1, code and message in the result file and on stderr
    p = run_client(daemon, "vary", "--id", "cli-2", "path", "/etc/hostname", "strength", "0.5",
                   "--result", str(res))
    r = read_result(res)
    assert p.returncode == 1 and (r["state"], r["code"]) == ("error", "forbidden"), p.stderr
    assert "cli-2: forbidden:" in p.stderr
    # a misspelled key is the daemon's bad_request, named
    p = run_client(daemon, "generate", "sekonds", "1")
    assert p.returncode == 1 and "unknown key 'sekonds'" in p.stderr
    # nobody listening: exit 3 after --answer-timeout, with a hint
    p = subprocess.run([sys.executable, "-m", "jenbridge", "client", "ping", "--port",
                        str(free_port()), "--answer-timeout", "0.5", "--result", str(res)],
                       capture_output=True, text=True, timeout=30, env=ENV, cwd=ROOT)
    assert p.returncode == 3 and "is `jenbridge serve` running" in p.stderr
    assert read_result(res)["code"] == "no_answer"


def test_request_file_round_trip(daemon: Daemon, tmp_path: Path) -> None:
    """A request file sends exactly its tags: a d position stays exact past float32."""
    clip = daemon.music / "req.wav"
    sf.write(clip, np.zeros((44100, 2), np.float32), 44100)
    at = 4000.123456789  # float32 would be off by ~25 samples here
    args: list[tuple[str, Any]] = [("s", "req-1"), ("s", "path"), ("s", str(clip)),
                                   ("s", "prompt"), ("s", "odd %0A prompt\nsecond line"),
                                   ("s", "strength"), ("f", 0.25), ("s", "start"), ("d", at),
                                   ("s", "steps"), ("i", 2)]
    text = format_request("/jb/vary", args)
    assert parse_request(text) == ("/jb/vary", args)
    (tmp_path / "r.jbreq").write_text(text)
    p = run_client(daemon, "--request", str(tmp_path / "r.jbreq"), "-q")
    assert p.returncode == 0, p.stderr
    assert bext_ref(p.stdout.strip()) == round(at * 44100)
    assert info_fields(parse_wav(Path(p.stdout.strip())))["INAM"] == \
        "odd %0A prompt\nsecond line"
    with pytest.raises(ValueError, match="r:2: expected 'TAG VALUE'"):
        parse_request("/jb/ping\nnonsense\n", "r")
    with pytest.raises(ValueError, match="does not fit an OSC 'i'"):
        parse_request("/jb/ping\ni 3000000000\n", "r")


# ---- REAPER ---------------------------------------------------------------------------------

@pytest.mark.skipif(LUAC is None, reason="no `luac` (Debian: lua5.4)")
def test_lua_scripts_compile(tmp_path: Path) -> None:
    scripts = sorted(p.name for p in REAPER_DIR.glob("*.lua"))
    assert scripts == sorted(["jenbridge_common.lua", "jenbridge_settings.lua",
                              *(f"jenbridge_{a}.lua" for a in ACTIONS)])
    for name in scripts:
        p = subprocess.run([LUAC, "-p", str(REAPER_DIR / name)], capture_output=True, text=True)
        assert p.returncode == 0, (name, p.stderr)
    broken = tmp_path / "broken.lua"  # the check itself catches a syntax error
    broken.write_text((REAPER_DIR / "jenbridge_common.lua").read_text() + "\nlocal x = = 1\n")
    assert subprocess.run([LUAC, "-p", str(broken)], capture_output=True).returncode != 0


def lua(code: str, tmp_path: Path) -> str:
    script = tmp_path / "snippet.lua"
    script.write_text(f'local jb = dofile("{REAPER_DIR}/jenbridge_common.lua")\n{code}\n')
    p = subprocess.run([LUA, str(script)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    return p.stdout


@needs_lua
def test_lua_plan_and_request_encoding(tmp_path: Path) -> None:
    """The pure half of jenbridge_common.lua: meters, the whole-bar rule, the request file."""
    out = lua(r'''
local bpm, meter = jb.tempo_keys(90, 6, 8)
print(bpm, meter, jb.bar_seconds(90, 6, 8))
local ok, err = pcall(jb.plan, "loop", {start = 0, stop = 2.5, bpm = 120, num = 4, denom = 4,
  prompt = "", folder = "/f", clock = "c", rand = 1}, jb.defaults())
print(ok, err)
local plan = jb.plan("variations", {start = 1.5, stop = 3.5, bpm = 90, num = 6, denom = 8,
  prompt = 'a "b", 100%\nc', folder = "/f", clock = "c", rand = 255},
  setmetatable({variations = "2", seed = "9223372036854775806"}, {__index = jb.defaults()}))
io.write(jb.request_text(plan.jobs[2]))''', tmp_path)
    lines = out.splitlines()
    assert lines[0].split("\t") == ["180.0", "6/8", "2.0"]  # six eighths at 180 = 2 s
    assert lines[1].startswith("false\ta live loop needs a selection of whole bars")
    address, args = parse_request("\n".join(lines[2:]))
    assert address == "/jb/vary"
    assert args == [("s", "rpr-variations-c-00ff-v2"), ("s", "prompt"), ("s", 'a "b", 100%\nc'),
                    ("s", "path"), ("s", "/f/rpr-variations-c-00ff.wav"), ("s", "strength"),
                    ("d", 0.5), ("s", "start"), ("d", 1.5), ("s", "bpm"), ("d", 180.0),
                    ("s", "meter"), ("s", "6/8"), ("s", "out_dir"), ("s", "/f"),
                    ("s", "seed"), ("s", "9223372036854775807")]


# A stand-in for REAPER's API table: enough to run an action under plain Lua. Project changes
# are printed as tab-separated lines; Main_OnCommand(42230) renders a real WAV via Python.
REAPER_STUB = r'''
local sc = dofile(arg[1])
local function out(...)
  local parts = {}
  for i, v in ipairs({ ... }) do parts[i] = (tostring(v):gsub("[\t\n]", " ")) end
  io.stdout:write(table.concat(parts, "\t"), "\n")
  io.stdout:flush()
end
local ext = {}
for k, v in pairs(sc.ext) do ext[k] = v end
local info = { RENDER_SETTINGS = 9, RENDER_BOUNDSFLAG = 1, RENDER_STARTPOS = 3, RENDER_ENDPOS = 4,
  RENDER_CHANNELS = 1, RENDER_SRATE = 22050, RENDER_TAILFLAG = 4, RENDER_ADDTOPROJ = 1,
  RENDER_NORMALIZE = 1 }
local sinfo = { RENDER_FILE = "/user/renders", RENDER_PATTERN = "$project", RENDER_FORMAT = "l3pm" }
local tracks = { { name = "Keys", items = {} } }
local queue, clock = {}, 0
local function target() return sinfo.RENDER_FILE .. "/" .. sinfo.RENDER_PATTERN .. ".wav" end
reaper = {
  get_action_context = function() return false, sc.script, 0, 4242, -1, -1, -1 end,
  ShowConsoleMsg = function(t) out("CONSOLE", t) end,
  MB = function(t) out("MB", t) return 1 end,
  HasExtState = function(_, k) return ext[k] ~= nil end,
  GetExtState = function(_, k) return ext[k] or "" end,
  SetExtState = function(_, k, v) ext[k] = v end,
  DeleteExtState = function(_, k) ext[k] = nil end,
  GetUserInputs = function() return true, sc.prompt end,
  GetSet_LoopTimeRange2 = function() return sc.start, sc.stop end,
  TimeMap_GetTimeSigAtTime = function() return sc.num, sc.denom, sc.bpm end,
  GetSelectedTrack = function() return tracks[1] end,
  GetProjectPath = function() return sc.project_path end,
  RecursiveCreateDirectory = function(p) os.execute('mkdir -p "' .. p .. '"') return 1 end,
  GetSetProjectInfo = function(_, k, v, set) if set then info[k] = v end return info[k] end,
  GetSetProjectInfo_String = function(_, k, v, set)
    if k == "RENDER_TARGETS" then return true, target() end
    if set then sinfo[k] = v end
    return true, sinfo[k]
  end,
  Main_OnCommand = function(cmd)
    out("RENDER", cmd, info.RENDER_BOUNDSFLAG, string.format("%.17g", info.RENDER_STARTPOS),
      string.format("%.17g", info.RENDER_ENDPOS), info.RENDER_SETTINGS, info.RENDER_CHANNELS,
      info.RENDER_SRATE, sinfo.RENDER_FORMAT, target())
    os.execute(string.format('"%s" -c "import sys, numpy as np, soundfile as sf; '
      .. 'n = round(float(sys.argv[2]) * 44100); t = np.arange(n) / 44100; '
      .. 'sf.write(sys.argv[1], 0.3 * np.stack([np.sin(2 * np.pi * 220 * t), '
      .. 'np.sin(2 * np.pi * 330 * t)], 1).astype(np.float32), 44100)" "%s" %.17g',
      sc.python, target(), info.RENDER_ENDPOS - info.RENDER_STARTPOS))
  end,
  file_exists = function(p)
    local f = io.open(p, "rb")
    if f then f:close() return true end
    return false
  end,
  ExecProcess = function(cmd, timeout)
    out("EXEC", timeout, cmd)
    os.execute(cmd .. " >/dev/null 2>&1 &")
    return ""
  end,
  defer = function(f) queue[#queue + 1] = f end,
  time_precise = function() return clock end,
  CountTracks = function() return #tracks end,
  GetMediaTrackInfo_Value = function(tr, k)
    for i, t in ipairs(tracks) do if t == tr and k == "IP_TRACKNUMBER" then return i end end
  end,
  InsertTrackAtIndex = function(i) table.insert(tracks, i + 1, { name = "", items = {} }) end,
  GetTrack = function(_, i) return tracks[i + 1] end,
  GetSetMediaTrackInfo_String = function(tr, _, v, set)
    if set then tr.name = v end
    return true, tr.name
  end,
  AddMediaItemToTrack = function(tr)
    local item = { takes = {}, D_POSITION = 0, D_LENGTH = 0 }
    tr.items[#tr.items + 1] = item
    return item
  end,
  AddTakeToMediaItem = function(item)
    local take = { D_STARTOFFS = 0 }
    item.takes[#item.takes + 1] = take
    return take
  end,
  PCM_Source_CreateFromFile = function(p) return { path = p } end,
  SetMediaItemTake_Source = function(take, src) take.source = src return true end,
  GetSetMediaItemTakeInfo_String = function(take, _, v, set)
    if set then take.name = v end
    return true, take.name
  end,
  SetMediaItemInfo_Value = function(item, k, v) item[k] = v return true end,
  SetMediaItemTakeInfo_Value = function(take, k, v) take[k] = v return true end,
  SetActiveTake = function(take) take.active = true end,
  UpdateItemInProject = function() end,
  UpdateArrange = function() end,
  Undo_BeginBlock = function() end,
  Undo_EndBlock = function(name) out("UNDO", name) end,
  SetToggleCommandState = function(_, cmd, v) out("TOGGLE", cmd, v) end,
  RefreshToolbar2 = function() end,
}
if sc.close_when_running then -- REAPER's gfx: the progress window, closed once a job runs
  gfx = { w = 420, h = 74, x = 0, y = 0, set = function() end, rect = function() end,
    drawstr = function() end, update = function() end,
    init = function(title) out("GFX", "init", title) end,
    quit = function() out("GFX", "quit") end,
    getchar = function()
      if os.execute('grep -qs "^state=running" "' .. sc.project_path
          .. '/jenbridge/requests/"*.result') then return -1 end
      return 0
    end }
end
dofile(sc.script)
while #queue > 0 and clock < sc.max_seconds do
  local q = queue
  queue = {}
  os.execute("sleep 0.05")
  clock = clock + sc.clock_step
  for _, f in ipairs(q) do f() end
end
out("PENDING", #queue)
for i, tr in ipairs(tracks) do
  out("TRACK", i, tr.name)
  for j, item in ipairs(tr.items) do
    for _, take in ipairs(item.takes) do
      out("ITEM", i, j, string.format("%.17g", item.D_POSITION),
        string.format("%.17g", item.D_LENGTH), string.format("%.17g", take.D_STARTOFFS),
        take.source and take.source.path or "",
        take.name or "", take.active and 1 or 0)
    end
  end
end
for k, v in pairs(info) do out("INFO", k, v) end
for k, v in pairs(sinfo) do out("INFO", k, v) end
out("EXT", "loop_id", ext.loop_id or "")
'''
USER_RENDER = {"RENDER_SETTINGS": "9", "RENDER_BOUNDSFLAG": "1", "RENDER_STARTPOS": "3",
               "RENDER_ENDPOS": "4", "RENDER_CHANNELS": "1", "RENDER_SRATE": "22050",
               "RENDER_TAILFLAG": "4", "RENDER_ADDTOPROJ": "1", "RENDER_NORMALIZE": "1",
               "RENDER_FILE": "/user/renders", "RENDER_PATTERN": "$project",
               "RENDER_FORMAT": "l3pm"}


def lua_str(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"


def run_action(daemon: Daemon, tmp_path: Path, action: str, start: float, stop: float,
               bpm: float = 120.0, num: int = 4, denom: int = 4, prompt: str = "drum fill",
               clock_step: float = 0.05, close_when_running: bool = False,
               **settings: str) -> list[list[str]]:
    """Run plugin_host/reaper/jenbridge_<action>.lua against the daemon: the output lines."""
    stub = tmp_path / "reaper_stub.lua"
    stub.write_text(REAPER_STUB)
    ext = {"client": f'"{sys.executable}" -m jenbridge', "port": str(daemon.port),
           "steps": "2", "context": "2", **settings}
    scenario = tmp_path / f"{action}.lua"
    scenario.write_text(
        "return {" + ", ".join([
            f"script = {lua_str(str(REAPER_DIR / f'jenbridge_{action}.lua'))}",
            f"start = {start!r}, stop = {stop!r}, bpm = {bpm!r}, num = {num}, denom = {denom}",
            f"prompt = {lua_str(prompt)}", f"python = {lua_str(sys.executable)}",
            f"project_path = {lua_str(str(daemon.music / 'project'))}",
            f"max_seconds = 90, clock_step = {clock_step!r}",
            f"close_when_running = {'true' if close_when_running else 'false'}",
            "ext = {" + ", ".join(f"{k} = {lua_str(v)}" for k, v in ext.items()) + "}"]) + "}\n")
    p = subprocess.run([LUA, str(stub), str(scenario)], capture_output=True, text=True,
                       timeout=120, env=ENV, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    lines = [line.split("\t") for line in p.stdout.splitlines()]
    assert ["PENDING", "0"] in lines, p.stdout  # the defer loop finished
    info = {ln[1]: ln[2] for ln in lines if ln[0] == "INFO"}
    assert info == USER_RENDER, "the action must put the user's render settings back"
    return lines


def rows(lines: list[list[str]], kind: str) -> list[list[str]]:
    return [ln[1:] for ln in lines if ln[0] == kind]


def request_of(exec_row: list[str]) -> tuple[str, list[tuple[str, Any]]]:
    path = exec_row[1].split("--request ")[1].split('"')[1]
    return parse_request(Path(path).read_text(), path)


# action -> selection, expected (render start, render end) or None, item position, length,
# take offset, bext time reference (seconds), output rate
REAPER_CASES = {
    "inpaint": ((10.0, 11.5), (8.0, 13.5), 10.0, 1.5, 2.0, 8.0, 44100),
    "continue": ((10.0, 11.5), (10.0, 11.5), 11.5, 1.5, 0.0, 11.5, 44100),
    "generate": ((10.25, 12.25), None, 10.25, 2.0, 0.0, 10.25, 48000),
}


@needs_lua
@pytest.mark.parametrize("action", list(REAPER_CASES))
def test_reaper_action(daemon: Daemon, tmp_path: Path, action: str) -> None:
    (start, stop), render, pos, length, offset, ref, rate = REAPER_CASES[action]
    prompt = 'drum fill, "ghost notes" 100%'
    lines = run_action(daemon, tmp_path, action, start, stop, prompt=prompt, seed="7")
    assert not rows(lines, "MB"), rows(lines, "MB")
    renders = rows(lines, "RENDER")
    if render is None:
        assert renders == []
    else:  # action 42230, custom bounds, master mix, stereo, project rate, WAV
        (cmd, bounds, a, b, source, channels, srate, fmt, _path), = renders
        assert (cmd, bounds, source, channels, srate, fmt) == ("42230", "0", "0", "2", "0", "evaw")
        assert (float(a), float(b)) == render
    (execute,) = rows(lines, "EXEC")
    assert execute[0] == "-2"  # ExecProcess does not wait: REAPER's UI never blocks
    address, args = request_of(execute)
    assert address == f"/jb/{action}" and ("s", prompt) in args and ("s", "7") in args
    (_, name), (track, _item, item_pos, item_len, item_off, path, _take, _active) = \
        rows(lines, "TRACK")[1], rows(lines, "ITEM")[0]
    assert track == "2" and name == f"jenbridge {action}: {prompt}"  # a new track below
    assert (float(item_pos), float(item_off)) == (pos, offset)
    assert abs(float(item_len) - length) < 1.0 / rate
    info = sf.info(path)
    assert info.samplerate == rate and Path(path).parent == daemon.music / "project" / "jenbridge"
    assert bext_ref(path) == round(ref * rate)
    assert info_fields(parse_wav(Path(path)))["INAM"] == prompt
    assert rows(lines, "UNDO") == [[f"jenbridge: {action} " + {
        "inpaint": "the time selection", "continue": "from the time selection",
        "generate": "into the time selection"}[action]]]


@needs_lua
def test_reaper_variations_as_takes(daemon: Daemon, tmp_path: Path) -> None:
    lines = run_action(daemon, tmp_path, "variations", 4.0, 5.0, variations="2", seed="11",
                       strength="0.3")
    assert len(rows(lines, "EXEC")) == 2 and len(rows(lines, "RENDER")) == 1
    # one item (track 2, item 1) at the selection, two takes in the order they finished
    items = sorted(rows(lines, "ITEM"), key=lambda it: it[6])
    assert [it[:3] for it in items] == [["2", "1", "4"], ["2", "1", "4"]]
    assert len(rows(lines, "TRACK")) == 2
    assert [it[6].split("-")[-1] for it in items] == ["v1 (seed 11)", "v2 (seed 12)"]
    assert len({it[5] for it in items}) == 2
    for it in items:
        assert bext_ref(it[5]) == 4 * 44100 and sf.info(it[5]).frames == 44100
        icmt = info_fields(parse_wav(Path(it[5])))["ICMT"]
        assert "task=vary" in icmt and f"seed={it[6][-3:-1]}" in icmt
    _, args = request_of(rows(lines, "EXEC")[0])
    assert ("d", 0.3) in args


@needs_lua
def test_reaper_live_loop_toggle(daemon: Daemon, tmp_path: Path) -> None:
    # 2 bars at 120 bpm = 4 s: the rendered selection is iteration 0
    lines = run_action(daemon, tmp_path, "live_loop", 8.0, 12.0, prompt="", loop_mode="vary")
    address, args = request_of(rows(lines, "EXEC")[0])
    assert address == "/jb/loop/start"
    kv = dict(zip([a[1] for a in args[1::2]], args[2::2], strict=True))
    assert (kv["bars"], kv["bpm"], kv["meter"], kv["mode"]) == \
        (("i", 2), ("d", 120.0), ("i", 4), ("s", "vary"))
    if not daemon.audio:
        (mb,) = rows(lines, "MB")
        assert "no_audio" in mb[0]
        return
    assert rows(lines, "MB") == [], rows(lines, "MB")
    assert ["4242", "1"] in rows(lines, "TOGGLE")
    loop_id = rows(lines, "EXT")[0][1]
    assert loop_id == args[0][1]
    stop = run_action(daemon, tmp_path, "live_loop", 8.0, 12.0, loop_id=loop_id)
    address, args = request_of(rows(stop, "EXEC")[0])
    assert (address, args) == ("/jb/loop/stop", [("s", loop_id)])
    assert ["4242", "0"] in rows(stop, "TOGGLE") and rows(stop, "EXT") == [["loop_id", ""]]
    assert any(f"live loop {loop_id} stopped" in c[0] for c in rows(stop, "CONSOLE"))
    assert rows(stop, "MB") == []


@needs_lua
def test_reaper_errors_reach_the_producer(daemon: Daemon, tmp_path: Path) -> None:
    # no time selection: a message, nothing rendered or sent
    lines = run_action(daemon, tmp_path, "inpaint", 3.0, 3.0)
    assert rows(lines, "MB") == [["Make a time selection first."]] and not rows(lines, "EXEC")
    # a work folder the daemon does not allow: forbidden, with the --allow hint
    outside = tmp_path / "elsewhere"
    lines = run_action(daemon, tmp_path, "continue", 1.0, 2.0, folder=str(outside))
    (mb,) = rows(lines, "MB")
    assert ": forbidden:" in mb[0] and f'jenbridge serve --allow "{outside}"' in mb[0]
    assert len(rows(lines, "TRACK")) == 1  # nothing imported
    # a client that cannot start: said so after the start timeout (the stand-in's clock runs
    # 20x fast here), naming the setting
    lines = run_action(daemon, tmp_path, "generate", 1.0, 2.0, clock_step=1.0,
                       client="/nonexistent/jenbridge")
    (mb,) = rows(lines, "MB")
    assert "jenbridge client did not start" in mb[0] and "/nonexistent/jenbridge" in mb[0]


@needs_lua
def test_reaper_closing_the_progress_window_cancels(daemon: Daemon, tmp_path: Path) -> None:
    lines = run_action(daemon, tmp_path, "generate", 0.0, 20.0, steps="1000",
                       close_when_running=True)
    assert rows(lines, "GFX")[0] == ["init", "jenbridge: generate into the time selection"]
    (job, cancel) = rows(lines, "EXEC")
    jid = request_of(job)[1][0][1]
    assert request_of(cancel) == ("/jb/cancel", [("s", jid)])
    assert [f"jenbridge: {jid} cancelled "] in rows(lines, "CONSOLE")  # newline -> space
    assert rows(lines, "MB") == [] and len(rows(lines, "TRACK")) == 1  # nothing imported


# ---- Ableton Live -----------------------------------------------------------------------------

class FakeLive:
    """A stand-in for the AbletonOSC remote script (Ableton Live is not our code): answers
    the song/view getters it is given and arrangement_clips/start_time, records every message,
    and, like AbletonOSC, answers to `reply_port` on the sender's host."""

    def __init__(self, song: dict[str, Any], can_create_clips: bool = True) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.reply_port = free_port()
        self.song = song
        self.can_create_clips = can_create_clips
        self.log: list[tuple[str, list[Any]]] = []
        self.clips: dict[int, list[float]] = {}
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.running:
            try:
                data, sender = self.sock.recvfrom(65536)
            except TimeoutError:
                continue
            msg = OscPacket(data).messages[0].message
            params = list(msg.params)
            self.log.append((msg.address, params))
            answer = None
            if msg.address.startswith(("/live/song/get/", "/live/view/get/")):
                answer = [self.song[msg.address.rsplit("/", 1)[1]]]
            elif msg.address == "/live/track/create_audio_clip" and self.can_create_clips:
                self.clips.setdefault(params[0], []).append(params[2])
            elif msg.address == "/live/track/get/arrangement_clips/start_time":
                answer = [params[0], *self.clips.get(params[0], [])]
            if answer is not None:
                b = OscMessageBuilder(msg.address)
                for v in answer:
                    b.add_arg(v)
                self.sock.sendto(b.build().dgram, (sender[0], self.reply_port))

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()


def companion(daemon: Daemon, live: FakeLive, *args: str) -> int:
    from plugin_host.ableton.companion import main

    return main([*args, "--steps", "2", "--port", str(daemon.port), "--live-port",
                 str(live.port), "--listen-port", str(live.reply_port)])


SONG = {"tempo": 90.0, "signature_numerator": 6, "signature_denominator": 8,
        "loop_start": 12.0, "loop_length": 6.0, "selected_track": 1}  # 2 bars of 6/8 at 90


def test_ableton_companion(daemon: Daemon, tmp_path: Path, capsys) -> None:
    live = FakeLive(SONG)
    loop = daemon.music / "live_loop.wav"  # the loop brace, exported: 6 beats at 90 = 4 s
    sf.write(loop, np.zeros((4 * 44100, 2), np.float32), 44100)
    try:
        assert companion(daemon, live, "generate", "--prompt", "lo-fi keys") == 0
        path = capsys.readouterr().out.strip()
        assert bext_ref(path) == 8 * 48000 and sf.info(path).frames == 4 * 48000  # beat 12
        assert ("/live/song/create_audio_track", [2]) in live.log  # below the selected track
        assert ("/live/track/create_audio_clip", [2, path, 12.0]) in live.log
        assert companion(daemon, live, "continue", "--source", str(loop), "--bars", "1") == 0
        path = capsys.readouterr().out.strip()
        assert bext_ref(path) == 12 * 44100 and sf.info(path).frames == 2 * 44100
        assert live.log[-2] == ("/live/track/create_audio_clip", [2, path, 18.0])
        assert companion(daemon, live, "inpaint", "--source", str(loop), "--fill", "1:2",
                         "--track", "selected") == 0
        path = capsys.readouterr().out.strip()
        assert bext_ref(path) == 8 * 44100 and sf.info(path).frames == 4 * 44100
        assert ("/live/track/create_audio_clip", [1, path, 12.0]) in live.log
        # the daemon got the meter the way it counts: six eighths at 180 (see tempo_keys)
        assert "task=inpaint" in info_fields(parse_wav(Path(path)))["ICMT"]
        # an export that is not the loop brace: refused before anything is sent
        sf.write(tmp_path / "short.wav", np.zeros((44100, 2), np.float32), 44100)
        assert companion(daemon, live, "vary", "--source", str(tmp_path / "short.wav")) == 2
        assert "export exactly the loop brace" in capsys.readouterr().err
    finally:
        live.close()
    # an AbletonOSC without create_audio_clip: the file is made, the producer told where
    old = FakeLive({**SONG, "signature_numerator": 4, "signature_denominator": 4},
                   can_create_clips=False)
    try:
        assert companion(daemon, old, "generate") == 4
        out = capsys.readouterr()
        assert Path(out.out.strip()).is_file() and "at bar 4" in out.err  # beat 12 in 4/4
    finally:
        old.close()


def test_ableton_companion_without_live(daemon: Daemon, capsys) -> None:
    from plugin_host.ableton import companion as comp

    port = free_port()
    assert comp.main(["generate", "--port", str(daemon.port), "--live-port", str(port),
                      "--listen-port", str(free_port())]) == 3
    assert "AbletonOSC control surface" in capsys.readouterr().err


# ---- Pure Data --------------------------------------------------------------------------------

HARNESS = """#N canvas 0 0 400 300 12;
#X obj 20 20 r jb-done;
#X obj 150 20 r jb-error;
#X msg 20 80 \\; pd quit;
#X obj 250 20 loadbang;
#X obj 250 50 delay 60000;
#X connect 0 0 2 0;
#X connect 1 0 2 0;
#X connect 3 0 4 0;
#X connect 4 0 2 0;
"""


def run_pd(daemon: Daemon, tmp_path: Path, *sends: str) -> str:
    harness = tmp_path / "harness.pd"
    harness.write_text(HARNESS)  # quits on [r jb-done], [r jb-error] or after 60 s
    cmd = [PD, "-nogui", "-noaudio", "-nomidi", "-stderr", "-open", str(PD_PATCH), "-open",
           str(harness), "-send", f"jb-connect 127.0.0.1 {daemon.port}"]
    for s in sends:
        cmd += ["-send", s]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
    return p.stdout + p.stderr


@pytest.mark.skipif(PD is None, reason="no `pd` (Debian: puredata-core)")
def test_pure_data_patch_headless(daemon: Daemon, tmp_path: Path) -> None:
    out = run_pd(daemon, tmp_path, "jb-prompt warm lo-fi 808 piano", "jb-seconds 0.5",
                 "jb-extra steps 2 seed 7", "jb-generate pd-test-1")
    assert "error:" not in out, out  # a patch that loads clean
    done = [ln for ln in out.splitlines() if ln.startswith("jenbridge: done pd-test-1 ")]
    assert len(done) == 1, out
    path = Path(done[0].split()[-1])
    assert path.is_file() and sf.info(path).frames == 24000  # 0.5 s at 48 kHz
    assert "jenbridge: accepted pd-test-1 queue 0" in out
    assert "jenbridge: progress pd-test-1 1 done" in out
    icmt = info_fields(parse_wav(path))
    assert icmt["INAM"] == "warm lo-fi 808 piano" and "seed=7" in icmt["ICMT"]
    # a refused request: the error is printed and sent to [r jb-error]; ids count up
    out = run_pd(daemon, tmp_path, "jb-seconds 0.5", "jb-extra steps 0", "jb-generate bang")
    assert "jenbridge: error pd-1 out_of_range steps" in out, out
