-- @description jenbridge: AI inpainting, continuation, generation and live loops for REAPER
-- @version 0.1.0
-- @author jenbridge
-- @about
--   Actions that send the time selection to a local jenbridge daemon (`jenbridge serve`) and
--   import the result at the right place. Setup: docs/daw.md in the jenbridge repository.
-- @provides
--   [nomain] .
--   [main] jenbridge_inpaint.lua
--   [main] jenbridge_continue.lua
--   [main] jenbridge_generate.lua
--   [main] jenbridge_variations.lua
--   [main] jenbridge_live_loop.lua
--   [main] jenbridge_settings.lua
--
-- jenbridge_common.lua: the module every jenbridge REAPER action loads with dofile (docs/daw.md).
--
-- REAPER's Lua has no UDP socket, so an action never talks OSC itself. It
--   1. reads the time selection, the selected track and the tempo / time signature there,
--   2. asks for a prompt and renders the selection (with context) to a WAV file
--      (GetSetProjectInfo RENDER_* + action 42230, see M.render),
--   3. writes the exact OSC request to a file and starts `jenbridge client --request FILE
--      --result FILE` without waiting (reaper.ExecProcess with timeout -1),
--   4. polls the result file from a reaper.defer loop, so REAPER's UI never blocks, and
--   5. imports the output where the daemon says it belongs (/jb/done `position`).
-- Everything in "pure" below is plain Lua (no `reaper`), so the tests run it under `lua`.
--
-- REAPER API used (https://www.reaper.fm/sdk/reascript/reascripthelp.html):
--   GetSet_LoopTimeRange2, GetSelectedTrack, TimeMap_GetTimeSigAtTime, GetUserInputs,
--   Get/SetExtState, GetProjectPath, RecursiveCreateDirectory, GetSetProjectInfo(_String)
--   (RENDER_SETTINGS, RENDER_BOUNDSFLAG, RENDER_STARTPOS, RENDER_ENDPOS, RENDER_CHANNELS,
--   RENDER_SRATE, RENDER_TAILFLAG, RENDER_ADDTOPROJ, RENDER_NORMALIZE, RENDER_FILE,
--   RENDER_PATTERN, RENDER_FORMAT, RENDER_TARGETS), Main_OnCommand, ExecProcess, defer,
--   time_precise, InsertTrackAtIndex, AddMediaItemToTrack, AddTakeToMediaItem,
--   PCM_Source_CreateFromFile, SetMediaItemTake_Source, Set*Info_Value, SetActiveTake.

local M = {}

M.VERSION = "0.1.0"
M.SECTION = "jenbridge" -- ExtState section of the settings and the running live loop

-- Settings (ExtState, persistent; the "jenbridge: settings" action edits them). Strings, as
-- ExtState stores them. Order = the settings dialog's fields.
M.SETTINGS = {
  { "client", "jenbridge", "jenbridge executable (absolute path)" },
  { "host", "127.0.0.1", "daemon host" },
  { "port", "9000", "daemon port" },
  { "folder", "", "work folder (empty: <project media>/jenbridge)" },
  { "context", "8", "context seconds around the selection" },
  { "source", "master", "render source: master or tracks" },
  { "steps", "0", "sampler steps (0: model default)" },
  { "guidance", "0", "guidance (0: model default)" },
  { "seed", "", "seed (empty: random)" },
  { "variations", "3", "variations (takes)" },
  { "strength", "0.5", "variation strength 0..1" },
  { "continue_seconds", "0", "continue seconds (0: selection length)" },
  { "loop_mode", "continue", "live loop mode: continue or vary" },
  { "timeout", "1800", "job timeout seconds" },
}
M.START_TIMEOUT = 30 -- seconds for the client to write its first result line
M.POLL = 0.2 -- seconds between reads of the result files
M.RENDER_ACTION = 42230 -- File: Render project, using the most recent render settings,
--                         auto-close render dialog (41824 leaves the dialog open)
M.TITLES = {
  inpaint = "inpaint the time selection",
  continue = "continue from the time selection",
  generate = "generate into the time selection",
  variations = "variations as takes",
  loop = "start/stop live loop on the selection",
}

-- ---- pure: no reaper.* below until "REAPER glue" ------------------------------------------

function M.defaults()
  local s = {}
  for _, row in ipairs(M.SETTINGS) do s[row[1]] = row[2] end
  return s
end

--- Seconds of one bar: `num` notes of 1/denom at `bpm` quarter notes per minute.
function M.bar_seconds(bpm, num, denom)
  return num * (4 / denom) * 60 / bpm
end

--- The daemon's `bpm` and `meter` for REAPER's tempo (quarter notes per minute) and time
--- signature. The daemon counts `meter` beats of `bpm` per bar, so 6/8 is six eighths at
--- twice the quarter-note tempo, sent as the string "6/8"; 4/4 is the number 4.
function M.tempo_keys(bpm, num, denom)
  if denom == 4 then return bpm, num end
  return bpm * denom / 4, string.format("%d/%d", num, denom)
end

local function number_setting(s, key, low, high)
  local v = tonumber(s[key])
  if v == nil or v ~= v or v < low or v > high then
    error(string.format("setting %s = %q: expected a number %g..%g", key, tostring(s[key]),
      low, high), 0)
  end
  return v
end

--- A job id: "rpr-<task>-<clock>-<4 hex>" (the daemon takes up to 64 printable characters).
function M.new_id(task, clock, rand)
  return string.format("rpr-%s-%s-%04x", task, clock, rand % 65536)
end

--- Sampling keys every request carries (only those set: 0 / "" mean the model's default).
local function sampling(args, s)
  local steps = number_setting(s, "steps", 0, 10000)
  if steps > 0 then M.push(args, "steps", "i", math.floor(steps)) end
  local guidance = number_setting(s, "guidance", 0, 100)
  if guidance > 0 then M.push(args, "guidance", "d", guidance) end
end

--- Append KEY VALUE (tag s, i, h, f or d for the value) to an argument list.
function M.push(args, key, tag, value)
  args[#args + 1] = { "s", key }
  args[#args + 1] = { tag, value }
end

local function seed_of(s, k)
  if s.seed == nil or s.seed == "" then return nil end
  if not tostring(s.seed):match("^%d+$") then
    error("setting seed = " .. tostring(s.seed) .. ": expected digits", 0)
  end
  -- a digit string: the daemon takes 63-bit seeds as strings (Lua numbers lose digits)
  if k == 0 then return tostring(s.seed) end
  return tostring(math.tointeger(tonumber(s.seed)) + k)
end

--- Plan an action: the jobs (each one OSC request), what to render first, how to import.
---   task: inpaint | continue | generate | variations | loop
---   ctx: {start, stop (seconds on the time line), bpm, num, denom, prompt, folder, clock,
---         rand}; s: settings (strings).
--- Returns {render = {start, stop, path} or nil, jobs = {{id, address, args, import}...}}
--- where args is the exact OSC argument list, {{tag, value}...}, id first. Errors (a plain
--- message) for selections the daemon would refuse.
function M.plan(task, ctx, s)
  local start, stop = ctx.start, ctx.stop
  if stop - start < 0.05 then error("make a time selection first", 0) end
  local context = number_setting(s, "context", 0, 600)
  local bpm, meter = M.tempo_keys(ctx.bpm, ctx.num, ctx.denom)
  local id = M.new_id(task, ctx.clock, ctx.rand)
  local render_path = ctx.folder .. "/" .. id .. ".wav"
  local plan = { jobs = {} }

  local function job(address, jid, import)
    local args = { { "s", jid } }
    M.push(args, "prompt", "s", ctx.prompt)
    local j = { id = jid, address = address, args = args, import = import }
    plan.jobs[#plan.jobs + 1] = j
    return args
  end
  local function musical(args)
    M.push(args, "bpm", "d", bpm)
    M.push(args, "meter", type(meter) == "number" and "i" or "s", meter)
    sampling(args, s)
    M.push(args, "out_dir", "s", ctx.folder)
  end

  if task == "inpaint" then
    -- the region plus `context` seconds either side; the output is the whole file (outside
    -- the region bit-exact), imported trimmed to the region
    local file_at = math.max(0, start - context)
    plan.render = { start = file_at, stop = stop + context, path = render_path }
    local args = job("/jb/inpaint", id, { mode = "region", start = start, stop = stop })
    M.push(args, "path", "s", render_path)
    M.push(args, "start", "d", start)
    M.push(args, "end", "d", stop)
    M.push(args, "file_at", "d", file_at)
    musical(args)
  elseif task == "continue" then
    -- the selection is the context; new audio starts where the selection ends
    local seconds = number_setting(s, "continue_seconds", 0, 600)
    if seconds == 0 then seconds = stop - start end
    plan.render = { start = start, stop = stop, path = render_path }
    local args = job("/jb/continue", id, { mode = "file" })
    M.push(args, "path", "s", render_path)
    M.push(args, "file_at", "d", start)
    M.push(args, "seconds", "d", seconds)
    musical(args)
  elseif task == "generate" then
    local args = job("/jb/generate", id, { mode = "file" })
    M.push(args, "start", "d", start)
    M.push(args, "end", "d", stop)
    musical(args)
  elseif task == "variations" then
    local n = math.floor(number_setting(s, "variations", 1, 16))
    local strength = number_setting(s, "strength", 0, 1)
    plan.render = { start = start, stop = stop, path = render_path }
    for k = 1, n do
      local args = job("/jb/vary", id .. "-v" .. k, { mode = "takes", group = id })
      M.push(args, "path", "s", render_path)
      M.push(args, "strength", "d", strength)
      M.push(args, "start", "d", start)
      musical(args)
      local seed = seed_of(s, k - 1)
      if seed then M.push(args, "seed", "s", seed) end
    end
    return plan
  elseif task == "loop" then
    -- the selection must be whole bars: the daemon loops `bars` bars at `bpm` and takes the
    -- rendered selection as iteration 0 (its length must match within 0.5 %)
    local bar = M.bar_seconds(ctx.bpm, ctx.num, ctx.denom)
    local bars = math.floor((stop - start) / bar + 0.5)
    if bars < 1 or bars > 64 or math.abs(bars * bar - (stop - start)) > 0.004 * bars * bar then
      error(string.format("a live loop needs a selection of whole bars (1..64); this one is "
        .. "%.3f bars at %g bpm %d/%d", (stop - start) / bar, ctx.bpm, ctx.num, ctx.denom), 0)
    end
    plan.render = { start = start, stop = stop, path = render_path }
    local args = job("/jb/loop/start", id, { mode = "loop" })
    M.push(args, "path", "s", render_path)
    M.push(args, "bars", "i", bars)
    M.push(args, "mode", "s", s.loop_mode)
    M.push(args, "bpm", "d", bpm)
    M.push(args, "meter", type(meter) == "number" and "i" or "s", meter)
    sampling(args, s)
    M.push(args, "out_dir", "s", ctx.folder)
  else
    error("unknown jenbridge task " .. tostring(task), 0)
  end
  local seed = seed_of(s, 0)
  if seed then M.push(plan.jobs[1].args, "seed", "s", seed) end
  return plan
end

--- Percent-encode `%` and control characters (jenbridge client's request/result encoding).
function M.encode(text)
  return (tostring(text):gsub("[%%%c]", function(c) return string.format("%%%02X", c:byte()) end))
end

function M.decode(text)
  return (text:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function number_text(tag, value)
  if tag == "i" or tag == "h" then return string.format("%d", math.tointeger(value) or value) end
  return string.format("%.17g", value) -- round-trips a double exactly
end

--- The request file for one job: the address, then "TAG VALUE" a line (jenbridge client).
function M.request_text(job)
  local lines = { "# jenbridge request (REAPER jenbridge " .. M.VERSION .. ")", job.address }
  for _, a in ipairs(job.args) do
    local tag, value = a[1], a[2]
    local text = (tag == "s") and tostring(value) or number_text(tag, value)
    lines[#lines + 1] = tag .. " " .. M.encode(text)
  end
  return table.concat(lines, "\n") .. "\n"
end

--- The result file (key=value lines) -> table, or nil when empty.
function M.parse_result(text)
  if not text or text == "" then return nil end
  local r = {}
  for line in text:gmatch("[^\n]+") do
    local k, v = line:match("^([%w_]+)=(.*)$")
    if k then r[k] = M.decode(v) end
  end
  if not r.state then return nil end
  return r
end

local function quote(text)
  if text:find('"', 1, true) then error("a path or setting contains a double quote: " .. text, 0) end
  return '"' .. text .. '"'
end

--- The command line that runs the client for one job, detached by the caller.
--- `client` is the jenbridge executable; a value that starts with a quote is used as given
--- (e.g. `"C:\Python311\python.exe" -m jenbridge`).
function M.command(s, request_path, result_path)
  local client = s.client
  if client:sub(1, 1) ~= '"' then client = quote(client) end
  local port = math.floor(number_setting(s, "port", 1, 65535))
  local timeout = number_setting(s, "timeout", 1, 86400)
  return string.format("%s client --request %s --result %s --host %s --port %d --timeout %g -q",
    client, quote(request_path), quote(result_path), quote(s.host), port, timeout)
end

-- ---- REAPER glue -----------------------------------------------------------------------------

local function log(text)
  reaper.ShowConsoleMsg("jenbridge: " .. text .. "\n")
end
M.log = log

function M.fail(text)
  reaper.MB(text, "jenbridge", 0)
end

function M.settings()
  local s = M.defaults()
  for key in pairs(s) do
    if reaper.HasExtState(M.SECTION, key) then s[key] = reaper.GetExtState(M.SECTION, key) end
  end
  return s
end

function M.save_settings(s)
  for _, row in ipairs(M.SETTINGS) do reaper.SetExtState(M.SECTION, row[1], s[row[1]], true) end
end

--- The work folder: renders, requests, results and the daemon's outputs (`out_dir`). It must
--- be inside a folder the daemon allows (`jenbridge serve --allow ...`).
function M.folder(s)
  local folder = s.folder
  if folder == nil or folder == "" then
    folder = reaper.GetProjectPath("") .. "/jenbridge"
  end
  folder = folder:gsub("[/\\]+$", "")
  reaper.RecursiveCreateDirectory(folder, 0)
  reaper.RecursiveCreateDirectory(folder .. "/requests", 0)
  return folder
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("a")
  f:close()
  return text
end

local function write_file(path, text)
  local f, err = io.open(path, "wb")
  if not f then error("cannot write " .. path .. ": " .. tostring(err), 0) end
  f:write(text)
  f:close()
end

--- The time selection, tempo, time signature and selected track, or nil + a message.
function M.project_state()
  local start, stop = reaper.GetSet_LoopTimeRange2(0, false, false, 0, 0, false)
  if stop - start < 0.05 then return nil, "Make a time selection first." end
  local num, denom, bpm = reaper.TimeMap_GetTimeSigAtTime(0, start)
  local track = reaper.GetSelectedTrack(0, 0)
  return { start = start, stop = stop, num = num, denom = denom, bpm = bpm, track = track }
end

function M.ask_prompt(task)
  local last = reaper.GetExtState(M.SECTION, "last_prompt")
  local ok, text = reaper.GetUserInputs("jenbridge: " .. M.TITLES[task], 1,
    "Prompt,separator=\n,extrawidth=360", last)
  if not ok then return nil end
  reaper.SetExtState(M.SECTION, "last_prompt", text, true)
  return text
end

local RENDER_NUMBERS = { "RENDER_SETTINGS", "RENDER_BOUNDSFLAG", "RENDER_STARTPOS",
  "RENDER_ENDPOS", "RENDER_CHANNELS", "RENDER_SRATE", "RENDER_TAILFLAG", "RENDER_ADDTOPROJ",
  "RENDER_NORMALIZE" }
local RENDER_STRINGS = { "RENDER_FILE", "RENDER_PATTERN", "RENDER_FORMAT" }

--- Render [r.start, r.stop) of the master mix (source "master") or of the selected tracks
--- through the master (source "tracks": RENDER_SETTINGS &128) to r.path as a stereo WAV at
--- the project rate, then put the user's render settings back. Returns the path or nil, why.
function M.render(r, s)
  local saved_n, saved_s = {}, {}
  for _, k in ipairs(RENDER_NUMBERS) do saved_n[k] = reaper.GetSetProjectInfo(0, k, 0, false) end
  for _, k in ipairs(RENDER_STRINGS) do
    local _, v = reaper.GetSetProjectInfo_String(0, k, "", false)
    saved_s[k] = v
  end
  local dir, name = r.path:match("^(.*)[/\\]([^/\\]+)%.wav$")
  local settings = (s.source == "tracks") and 128 or 0
  local values = { RENDER_SETTINGS = settings, RENDER_BOUNDSFLAG = 0, -- custom time bounds
    RENDER_STARTPOS = r.start, RENDER_ENDPOS = r.stop, RENDER_CHANNELS = 2,
    RENDER_SRATE = 0, -- the project's rate: imports need no resampling
    RENDER_TAILFLAG = 0, RENDER_ADDTOPROJ = 0, RENDER_NORMALIZE = 0 }
  for k, v in pairs(values) do reaper.GetSetProjectInfo(0, k, v, true) end
  reaper.GetSetProjectInfo_String(0, "RENDER_FILE", dir, true)
  reaper.GetSetProjectInfo_String(0, "RENDER_PATTERN", name, true)
  reaper.GetSetProjectInfo_String(0, "RENDER_FORMAT", "evaw", true) -- WAV, default depth
  local _, targets = reaper.GetSetProjectInfo_String(0, "RENDER_TARGETS", "", false)
  local target = (targets or ""):match("^[^;]+") or r.path
  os.remove(target) -- an existing file would stop the render at an overwrite prompt
  reaper.Main_OnCommand(M.RENDER_ACTION, 0)
  for k, v in pairs(saved_n) do reaper.GetSetProjectInfo(0, k, v, true) end
  for k, v in pairs(saved_s) do reaper.GetSetProjectInfo_String(0, k, v, true) end
  if not reaper.file_exists(target) then
    return nil, "REAPER did not render " .. target .. " (is the selection empty?)"
  end
  return target
end

--- Write the job's request and start its client without waiting.
function M.start_job(job, folder, s)
  job.request = folder .. "/requests/" .. job.id .. ".jbreq"
  job.result = folder .. "/requests/" .. job.id .. ".result"
  write_file(job.request, M.request_text(job))
  os.remove(job.result)
  job.started = reaper.time_precise()
  -- -2: do not wait, minimized (no console window flashes up on Windows)
  reaper.ExecProcess(M.command(s, job.request, job.result), -2)
end

--- A one-off request (cancel, loop stop) through the client, not waited for.
function M.send_quick(address, args, folder, s)
  local job = { id = args[1][2] .. "-" .. address:gsub("%W", ""), address = address, args = args }
  M.start_job(job, folder, s)
  return job
end

local function track_below(track, name)
  local index = track and math.floor(reaper.GetMediaTrackInfo_Value(track, "IP_TRACKNUMBER"))
    or reaper.CountTracks(0)
  reaper.InsertTrackAtIndex(index, true)
  local new = reaper.GetTrack(0, index)
  reaper.GetSetMediaTrackInfo_String(new, "P_NAME", name, true)
  return new
end

local function set_take(take, path, name)
  local source = reaper.PCM_Source_CreateFromFile(path)
  reaper.SetMediaItemTake_Source(take, source)
  reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", name, true)
  return source
end

local function short(text)
  if #text > 40 then return text:sub(1, 37) .. "..." end
  return text
end

--- Import one finished job: a new track below the selected one with an item at the daemon's
--- position (inpaint: trimmed to the region), or a take on the variations' shared item.
function M.import(job, r, state)
  local position = tonumber(r.position)
  local name = string.format("%s: %s", state.task, short(state.prompt ~= "" and state.prompt
    or "(no prompt)"))
  reaper.Undo_BeginBlock()
  if job.import.mode == "takes" then
    if not state.item then
      state.item = reaper.AddMediaItemToTrack(track_below(state.track, "jenbridge " .. name))
      reaper.SetMediaItemInfo_Value(state.item, "D_POSITION", position)
      reaper.SetMediaItemInfo_Value(state.item, "D_LENGTH", tonumber(r.duration))
    end
    local take = reaper.AddTakeToMediaItem(state.item)
    set_take(take, r.path, string.format("%s (seed %s)", job.id, r.seed or "?"))
    reaper.SetActiveTake(take)
    reaper.UpdateItemInProject(state.item)
  else
    local track = track_below(state.track, "jenbridge " .. name)
    local item = reaper.AddMediaItemToTrack(track)
    local take = reaper.AddTakeToMediaItem(item)
    set_take(take, r.path, name)
    if job.import.mode == "region" then -- the region only: the rest is the input, unchanged
      reaper.SetMediaItemInfo_Value(item, "D_POSITION", job.import.start)
      reaper.SetMediaItemInfo_Value(item, "D_LENGTH", job.import.stop - job.import.start)
      reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS", job.import.start - position)
    else
      reaper.SetMediaItemInfo_Value(item, "D_POSITION", position)
      reaper.SetMediaItemInfo_Value(item, "D_LENGTH", tonumber(r.duration))
    end
    reaper.UpdateItemInProject(item)
  end
  reaper.Undo_EndBlock("jenbridge: " .. M.TITLES[state.task], -1)
  reaper.UpdateArrange()
end

-- ---- progress window (REAPER's gfx; absent when the module runs outside REAPER) ---------------

local function ui_open(state)
  if not gfx or not gfx.init then return end
  gfx.init("jenbridge: " .. M.TITLES[state.task], 420, 74)
  state.ui = true
end

local function ui_draw(state, fraction, text)
  if not state.ui then return true end
  if gfx.getchar() < 0 then return false end -- the window was closed: cancel
  gfx.set(0.12, 0.12, 0.12)
  gfx.rect(0, 0, gfx.w, gfx.h, 1)
  gfx.set(0.3, 0.7, 0.5)
  gfx.rect(10, 40, math.floor((gfx.w - 20) * fraction), 18, 1)
  gfx.set(0.9, 0.9, 0.9)
  gfx.rect(10, 40, gfx.w - 20, 18, 0)
  gfx.x, gfx.y = 10, 12
  gfx.drawstr(text)
  gfx.update()
  return true
end

local function ui_close(state)
  if state.ui then gfx.quit() end
  state.ui = false
end

--- Poll the jobs' result files from a defer loop until every one is done or failed; import
--- each output as it arrives. Closing the progress window cancels the jobs still running.
function M.watch(state)
  local last = 0
  local function tick()
    local now = reaper.time_precise()
    if now - last < M.POLL then
      reaper.defer(tick)
      return
    end
    last = now
    local pending, progress, stage = 0, 0, ""
    for _, job in ipairs(state.jobs) do
      if not job.finished then
        local r = M.parse_result(read_file(job.result))
        if r and (r.state == "done" or r.state == "error") then
          job.finished = true
          state.on_result(job, r)
        elseif not r and now - job.started > M.START_TIMEOUT then
          job.finished = true
          state.on_result(job, { state = "error", code = "no_client", message =
            "jenbridge client did not start. Set the full path of the jenbridge executable "
            .. "in \"jenbridge: settings\" (now: " .. state.settings.client .. ")." })
        else
          pending = pending + 1
          progress = progress + (r and tonumber(r.progress) or 0)
          stage = r and r.stage or "starting"
        end
      else
        progress = progress + 1
      end
    end
    if pending == 0 then
      ui_close(state)
      if state.on_finish then state.on_finish() end
      return
    end
    local fraction = progress / #state.jobs
    if not ui_draw(state, fraction, string.format("%s  %d%%  %s", short(state.prompt),
        math.floor(100 * fraction), stage)) then
      for _, job in ipairs(state.jobs) do
        if not job.finished then M.send_quick("/jb/cancel", { { "s", job.id } }, state.folder,
            state.settings) end
      end
      state.ui, state.cancelled = false, true
    end
    reaper.defer(tick)
  end
  ui_open(state)
  reaper.defer(tick)
end

local function describe_error(r, folder)
  local text = string.format("%s: %s", r.code or "error", r.message or "")
  if r.code == "forbidden" then
    text = text .. "\n\nThe daemon may read only inside the folders it allows. Start it with\n"
      .. "  jenbridge serve --allow \"" .. folder .. "\" ...\nor set the work folder in "
      .. "\"jenbridge: settings\" to a folder it allows."
  elseif r.code == "no_answer" then
    text = text .. "\n\nStart the daemon: jenbridge serve --allow \"" .. folder .. "\""
  end
  return text
end

local function loop_running()
  local id = reaper.GetExtState(M.SECTION, "loop_id")
  if id ~= "" then return id end
  return nil
end

local function set_toggle(on)
  local _, _, section, command = reaper.get_action_context()
  if section and command and command > 0 then
    reaper.SetToggleCommandState(section, command, on and 1 or 0)
    reaper.RefreshToolbar2(section, command)
  end
end

--- Stop the running live loop (the loop toggle's second press).
local function stop_loop(id, s)
  local folder = M.folder(s)
  local job = M.send_quick("/jb/loop/stop", { { "s", id } }, folder, s)
  reaper.DeleteExtState(M.SECTION, "loop_id", true)
  set_toggle(false)
  M.watch({ task = "loop", prompt = "stopping the loop", jobs = { job }, settings = s,
    folder = folder, on_result = function(_, r)
      if r.state == "error" and r.code ~= "not_found" then M.fail(describe_error(r, folder))
      else log("live loop " .. id .. " stopped") end
    end })
end

--- An action's whole run: state, prompt, plan, render, start the clients, watch, import.
function M.main(task)
  local s = M.settings()
  if task == "loop" then
    local running = loop_running()
    if running then return stop_loop(running, s) end
  end
  local state, why = M.project_state()
  if not state then return M.fail(why) end
  if not state.track and task ~= "loop" then return M.fail("Select a track first.") end
  local prompt = M.ask_prompt(task)
  if prompt == nil then return end
  local folder = M.folder(s)
  local ok, plan = pcall(M.plan, task, { start = state.start, stop = state.stop,
    bpm = state.bpm, num = state.num, denom = state.denom, prompt = prompt, folder = folder,
    clock = os.date("%Y%m%d-%H%M%S"), rand = math.random(0, 65535) }, s)
  if not ok then return M.fail(tostring(plan)) end
  if plan.render then
    local path, err = M.render(plan.render, s)
    if not path then return M.fail(err) end
    for _, job in ipairs(plan.jobs) do
      for _, a in ipairs(job.args) do if a[2] == plan.render.path then a[2] = path end end
    end
  end
  local failures = {}
  local watch = { task = task, prompt = prompt, jobs = plan.jobs, settings = s, folder = folder,
    track = state.track }
  watch.on_result = function(job, r)
    if r.state ~= "done" and watch.cancelled and r.code == "cancelled" then
      log(job.id .. " cancelled")
    elseif r.state ~= "done" then
      failures[#failures + 1] = job.id .. ": " .. describe_error(r, folder)
    elseif task == "loop" then
      reaper.SetExtState(M.SECTION, "loop_id", job.id, false)
      set_toggle(true)
      log("live loop " .. job.id .. " playing on the daemon's output; run the action again "
        .. "to stop it")
    else
      M.import(job, r, watch)
      log(string.format("%s: %s at %.3f s", job.id, r.path, tonumber(r.position)))
    end
  end
  watch.on_finish = function()
    if #failures > 0 then M.fail(table.concat(failures, "\n\n")) end
  end
  for _, job in ipairs(plan.jobs) do M.start_job(job, folder, s) end
  M.watch(watch)
end

return M
