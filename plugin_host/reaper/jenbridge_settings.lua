-- @noindex
-- jenbridge: settings (docs/daw.md). One dialog for every setting the jenbridge actions use,
-- stored in REAPER's ExtState (section "jenbridge", kept across sessions).
local dir = ({ reaper.get_action_context() })[2]:match("^(.*)[/\\]")
local jb = dofile(dir .. "/jenbridge_common.lua")

local s = jb.settings()
local captions, values = {}, {}
for i, row in ipairs(jb.SETTINGS) do
  captions[i] = row[3]
  values[i] = s[row[1]]
end
local ok, text = reaper.GetUserInputs("jenbridge: settings", #jb.SETTINGS,
  table.concat(captions, ",") .. ",separator=\n,extrawidth=260", table.concat(values, "\n"))
if not ok then return end
local i = 0
for value in (text .. "\n"):gmatch("([^\n]*)\n") do
  i = i + 1
  if jb.SETTINGS[i] then s[jb.SETTINGS[i][1]] = value end
end
-- every setting checked the way the actions read it (a 1-bar selection at 120 bpm)
local check, err = pcall(function()
  for task in pairs(jb.TITLES) do
    jb.plan(task, { start = 0, stop = 2, bpm = 120, num = 4, denom = 4, prompt = "",
      folder = "/", clock = "0", rand = 0 }, s)
  end
  jb.command(s, "/request", "/result")
  if s.source ~= "master" and s.source ~= "tracks" then error("render source: master or tracks", 0) end
  if s.loop_mode ~= "continue" and s.loop_mode ~= "vary" then
    error("live loop mode: continue or vary", 0)
  end
end)
if not check then
  reaper.MB(tostring(err), "jenbridge: settings not saved", 0)
  return
end
jb.save_settings(s)
